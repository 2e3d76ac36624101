//! A real job against moto over objects written by other writers (the corpus that
//! `scripts/test` generates: DuckDB's 16-byte decimals, Spark-style INT96 from pyarrow and
//! fastparquet, data page v2, polars): after find, forget (full check), verify and cleanup,
//! each object's only version decodes in full and equals its source minus the subjects'
//! rows, column for column, with the source's Parquet schema.

use std::sync::Arc;

use arrow_array::RecordBatch;
use aws_sdk_glue::types::DatabaseInput;
use aws_sdk_s3::primitives::ByteStream;
use axum::http::StatusCode;
use bytes::Bytes;
use lethe::catalog::glue::GlueCatalog;
use lethe::storage::Stores;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::ParquetMetaDataReader;
use serde_json::json;
use sqlx::PgPool;

use crate::common::TestApp;
use crate::e2e_jobs::glue_table;
use crate::e2e_storage::new_versioned_bucket;
use crate::jobs::queue;

/// Corpus files (by writer) and the ids their `id` column holds once each.
const FILES: [(&str, &str); 5] = [
    ("duckdb", "duckdb-snappy.parquet"),
    ("pyarrow_int96", "pyarrow-int96.parquet"),
    ("pyarrow_v2", "pyarrow-page-v2.parquet"),
    ("fastparquet", "fastparquet-int96-GZIP.parquet"),
    ("polars", "polars-zstd.parquet"),
];
const ERASED: [i64; 2] = [1234, 1500];

fn corpus(file: &str) -> Bytes {
    let dir = std::env::var("LETHE_CORPUS_DIR")
        .expect("LETHE_CORPUS_DIR is not set: run scripts/test (it writes the corpus first)");
    Bytes::from(std::fs::read(format!("{dir}/in/{file}")).expect("corpus file"))
}

/// Every row of a file, decoded, as one batch; the rows whose id is erased removed when
/// `erase`.
fn rows(file: Bytes, erase: bool) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let batch = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
    if !erase {
        return batch;
    }
    let ids = batch
        .column_by_name("id")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap();
    let keep: arrow_array::BooleanArray = ids
        .iter()
        .map(|i| Some(!i.is_some_and(|i| ERASED.contains(&i))))
        .collect();
    arrow_select::filter::filter_record_batch(&batch, &keep).unwrap()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_job_erases_exactly_from_duckdb_spark_int96_page_v2_fastparquet_and_polars_files(
    db: PgPool,
) {
    let (sdk, s3, bucket) = new_versioned_bucket().await;
    for (writer, file) in FILES {
        s3.put_object()
            .bucket(&bucket)
            .key(format!("lake/writer={writer}/{file}"))
            .body(ByteStream::from(corpus(file)))
            .send()
            .await
            .unwrap();
    }
    let glue = aws_sdk_glue::Client::new(&sdk);
    let database = format!("writers_{}", uuid::Uuid::new_v4().simple());
    glue.create_database()
        .database_input(DatabaseInput::builder().name(&database).build().unwrap())
        .send()
        .await
        .unwrap();
    let writers: Vec<&str> = FILES.iter().map(|(w, _)| *w).collect();
    let location = format!("s3://{bucket}/lake/");
    glue_table(
        &glue,
        &database,
        "t",
        &location,
        &[("id", "bigint")],
        ("writer", &writers),
        false,
    )
    .await;
    let stores = Stores::new(&sdk, true);
    let app = TestApp::with_stores(db.clone(), Arc::new(GlueCatalog::new(&sdk)), stores);
    let mapper = json!({
        "catalog": {"provider": "glue", "database": database, "table": "t"},
        "format": "parquet",
        "columns": ["id"],
    });
    let r = app.put("/v1/data_mappers/writers", mapper).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    queue(&app, json!(ERASED.map(|id| json!({"match_id": id})))).await;
    let r = app.post("/v1/jobs", Some(json!({"dry_run": false}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job = r.body["job_id"].as_str().unwrap().to_owned();
    app.worker("w").run_until_idle().await.unwrap();

    let got = app.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(got.body["status"], "completed", "{}", got.body);
    assert_eq!(
        got.body["stats"]["objects_rewritten"],
        FILES.len() as i64,
        "{}",
        got.body
    );
    assert_eq!(
        got.body["stats"]["rows_removed"],
        2 * FILES.len() as i64,
        "{}",
        got.body
    );
    for (writer, file) in FILES {
        let key = format!("lake/writer={writer}/{file}");
        let listed = s3
            .list_object_versions()
            .bucket(&bucket)
            .prefix(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            listed.versions().len(),
            1,
            "{key}: the old version is deleted"
        );
        let after = s3
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        let after = after.body.collect().await.unwrap().into_bytes();
        let source = corpus(file);
        assert_eq!(
            rows(after.clone(), false),
            rows(source.clone(), true),
            "{key}"
        );
        let schema = |b: &Bytes| {
            ParquetMetaDataReader::new()
                .parse_and_finish(b)
                .unwrap()
                .file_metadata()
                .schema_descr()
                .root_schema()
                .clone()
        };
        assert_eq!(schema(&after), schema(&source), "{key}: Parquet schema");
    }
    assert_eq!(app.count("deletion_queue_item").await, 0);
}
