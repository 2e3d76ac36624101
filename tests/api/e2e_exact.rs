//! Every id compared exactly, every column resolved by its exact name, end to end against
//! Postgres and moto through the REST API: JSON integers beyond 64 bits of precision,
//! long decimals, `float` columns, texts against integer columns, and Parquet files whose
//! column names differ only in case. After each job the lake is read back by independent
//! readers (`readback`: Python's json line by line, pyarrow for Parquet).

use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch};
use aws_sdk_glue::types::{Column, PartitionInput, TableInput};
use aws_sdk_s3::primitives::ByteStream;
use axum::http::StatusCode;
use lethe::catalog::glue::GlueCatalog;
use lethe::storage::Stores;
use serde_json::{Value, json};

use crate::common::TestApp;
use crate::e2e_jobs::{descriptor, glue_database, object_bytes, run_job};
use crate::e2e_storage::new_versioned_bucket;
use crate::jobs::queue;

/// A versioned bucket, a Glue database in moto and an app over both.
struct Lake {
    app: TestApp,
    db: sqlx::PgPool,
    s3: aws_sdk_s3::Client,
    glue: aws_sdk_glue::Client,
    bucket: String,
    database: String,
}

impl Lake {
    async fn new(db: sqlx::PgPool) -> Self {
        let (sdk, s3, bucket) = new_versioned_bucket().await;
        let glue = aws_sdk_glue::Client::new(&sdk);
        let database = glue_database(&glue, "exact").await;
        let app = TestApp::with_stores(
            db.clone(),
            Arc::new(GlueCatalog::new(&sdk)),
            Stores::new(&sdk, true),
        );
        Self {
            app,
            db,
            s3,
            glue,
            bucket,
            database,
        }
    }

    async fn put(&self, key: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
    }

    /// A Glue table `name` at `s3://bucket/name/` of these columns, partitioned by `dt`
    /// with the partitions `values`, and a mapper `name` over `columns`.
    async fn table(&self, name: &str, columns: &[(&str, &str)], json: bool, values: &[&str]) {
        let location = format!("s3://{}/{name}/", self.bucket);
        let input = TableInput::builder()
            .name(name)
            .storage_descriptor(descriptor(location.clone(), columns, json))
            .partition_keys(
                Column::builder()
                    .name("dt")
                    .r#type("string")
                    .build()
                    .unwrap(),
            );
        self.glue
            .create_table()
            .database_name(&self.database)
            .table_input(input.build().unwrap())
            .send()
            .await
            .unwrap();
        for value in values {
            let sd = descriptor(format!("{location}dt={value}/"), columns, json);
            self.glue
                .create_partition()
                .database_name(&self.database)
                .table_name(name)
                .partition_input(
                    PartitionInput::builder()
                        .values(*value)
                        .storage_descriptor(sd)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        let body = json!({
            "catalog": {"provider": "glue", "database": self.database, "table": name},
            "format": if json { "json" } else { "parquet" },
            "columns": columns.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        });
        let r = self
            .app
            .put(&format!("/v1/data_mappers/{name}"), body)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }

    /// Queues items given as JSON text, so their numbers reach the API as written.
    async fn queue_text(&self, items: &str) {
        let req = axum::http::Request::builder()
            .method(axum::http::Method::PATCH)
            .uri("/v1/queue/matches")
            .header("authorization", format!("Bearer {}", self.app.admin()))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(format!("{{\"matches\": {items}}}")))
            .unwrap();
        let r = self.app.send(req).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }

    /// Rows removed per queued match id, from the job's report (its accounts).
    async fn removed_by(&self, job: &Value, ids: &[Value]) -> Vec<i64> {
        use lethe::db::server_secret;
        use lethe::domain::match_id::{MatchId, match_hash};
        use lethe::jobs::finalize::{REPORT_KEY, random_key};
        let mut conn = self.db.acquire().await.unwrap();
        let key = server_secret::get_or_create(&mut conn, REPORT_KEY, random_key)
            .await
            .unwrap();
        let id = job["job_id"].as_str().unwrap();
        let report = self.app.get(&format!("/v1/jobs/{id}/report")).await.body;
        let matches = report["matches"].as_array().unwrap();
        ids.iter()
            .map(|id| {
                let m = matches
                    .iter()
                    .find(|m| {
                        m["match_hash"] == match_hash(&key, &MatchId::from_stored(id).unwrap())
                    })
                    .unwrap_or_else(|| panic!("no account for {id}: {report}"));
                m["accounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["rows_removed"].as_i64().unwrap_or(0))
                    .sum()
            })
            .collect()
    }

    /// The queue's items left (their match ids).
    async fn queued(&self) -> Vec<Value> {
        let r = self.app.get("/v1/queue?page_size=1000").await;
        r.body["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["match_id"].clone())
            .collect()
    }
}

/// A Parquet file of these Int64 / Float32 columns, written by the arrow writer.
fn parquet_of(columns: Vec<(&str, ArrayRef)>) -> Vec<u8> {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn json_lines_ids_are_compared_by_their_exact_value_whatever_their_width(db: sqlx::PgPool) {
    let lake = Lake::new(db).await;
    let columns = [
        ("id", "bigint"),
        ("amount", "decimal(38,10)"),
        ("score", "float"),
        ("code", "int"),
    ];
    lake.table("events", &columns, true, &["1"]).await;
    let lines = [
        // 12345678901234567890 and …891 are one f64.
        r#"{"id": 12345678901234567891, "amount": 1, "score": 0.5, "code": 1}"#,
        r#"{"id": 12345678901234567890, "amount": 2, "score": 0.5, "code": 2}"#,
        // 25 significant digits; the next line differs in the last one.
        r#"{"id": 3, "amount": 123456789012345.6789012345, "score": 0.5, "code": 3}"#,
        r#"{"id": 4, "amount": 123456789012345.6789012346, "score": 0.5, "code": 4}"#,
        // A float column holds 0.1 as the float 0.1f.
        r#"{"id": 5, "amount": 5, "score": 0.1, "code": 5}"#,
        r#"{"id": 6, "amount": 6, "score": 0.5, "code": 4}"#,
    ];
    let text = format!("{}\n", lines.join("\n"));
    lake.put("events/dt=1/part-0.json", text.clone().into_bytes())
        .await;
    // "4.0" is admitted by the decimal and float columns, but CAST('4.0' AS int) fails.
    lake.queue_text(
        r#"[{"match_id": 12345678901234567890}, {"match_id": "123456789012345.6789012345"},
            {"match_id": 0.1}, {"match_id": "4.0"}]"#,
    )
    .await;
    let job = run_job(&lake.app, &["events"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stats"]["rows_removed"], 3, "{job}");

    // Read back by Python's json: exactly the three lines are gone, the rest byte for byte.
    let left = object_bytes(&lake.s3, &lake.bucket, "events/dt=1/part-0.json").await;
    assert_eq!(
        crate::readback::json_lines(&left, false),
        [lines[0], lines[3], lines[5]]
    );
    assert!(left.ends_with(b"\n"));

    let ids = [
        json!(12345678901234567890u64),
        json!("123456789012345.6789012345"),
        json!(0.1),
        json!("4.0"),
    ];
    let removed = lake.removed_by(&job, &ids).await;
    assert_eq!(removed, [1, 1, 1, 0]);
    assert_eq!(
        removed.iter().sum::<i64>(),
        job["stats"]["rows_removed"].as_i64().unwrap(),
        "the accounts add up to the job's stats"
    );
    assert_eq!(lake.queued().await, Vec::<Value>::new());
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_parquet_match_column_is_the_column_of_exactly_its_name_and_floats_compare_as_floats(
    db: sqlx::PgPool,
) {
    let lake = Lake::new(db).await;
    lake.table(
        "people",
        &[("id", "bigint"), ("score", "float")],
        false,
        &["1"],
    )
    .await;
    let ints = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
    let file = parquet_of(vec![
        ("ID", ints(vec![1, 2, 3])),
        ("id", ints(vec![3, 4, 5])),
        (
            "score",
            Arc::new(Float32Array::from(vec![0.3f32, 0.2, 0.1])) as ArrayRef,
        ),
    ]);
    lake.put("people/dt=1/a.parquet", file).await;
    // 1 is only in `ID`; 4 is in `id` (row 1); 0.1 is the float in row 2.
    queue(
        &lake.app,
        json!([{"match_id": 1}, {"match_id": 4}, {"match_id": 0.1}]),
    )
    .await;
    let job = run_job(&lake.app, &["people"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stats"]["rows_removed"], 2, "{job}");
    // Read back by pyarrow: one row left, its float exactly the stored 0.3f32.
    let left = object_bytes(&lake.s3, &lake.bucket, "people/dt=1/a.parquet").await;
    assert_eq!(
        crate::readback::parquet_rows(&left),
        [json!({"ID": 1, "id": 3, "score": f64::from(0.3f32)})]
    );
    let ids = [json!(1), json!(4), json!(0.1)];
    assert_eq!(lake.removed_by(&job, &ids).await, [0, 1, 1]);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_match_column_no_column_names_exactly_and_several_name_ignoring_case_fails_the_object(
    db: sqlx::PgPool,
) {
    let lake = Lake::new(db).await;
    lake.table("people", &[("id", "bigint")], false, &["1"])
        .await;
    let ints = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
    let file = parquet_of(vec![("ID", ints(vec![1, 2])), ("Id", ints(vec![2, 3]))]);
    lake.put("people/dt=1/a.parquet", file.clone()).await;
    queue(&lake.app, json!([{"match_id": 2}])).await;
    let job = run_job(&lake.app, &["people"]).await;
    assert_eq!(job["status"], "forget_failed", "{job}");
    assert_eq!(job["stats"]["objects_failed"], 1, "{job}");
    assert_eq!(job["stats"]["rows_removed"], 0, "{job}");
    let id = job["job_id"].as_str().unwrap();
    let objects = lake
        .app
        .get(&format!("/v1/jobs/{id}/objects?page_size=1000"))
        .await
        .body;
    let object = &objects["objects"][0];
    assert_eq!(object["status"], "failed", "{objects}");
    let error = object["error"].as_str().unwrap();
    assert!(
        error.contains("\"id\"") && error.contains("case"),
        "{error}"
    );
    // Nothing written, the subject still queued.
    let now = object_bytes(&lake.s3, &lake.bucket, "people/dt=1/a.parquet").await;
    assert_eq!(now.as_ref(), file.as_slice());
    let key = "people/dt=1/a.parquet";
    assert_eq!(
        crate::e2e_jobs::versions(&lake.s3, &lake.bucket, key)
            .await
            .len(),
        1
    );
    assert_eq!(lake.queued().await, [json!(2)]);
}
