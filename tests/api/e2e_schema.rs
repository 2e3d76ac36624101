//! Schema evolution end to end against Postgres and moto through the REST API: a match
//! column added to a Glue Parquet table after some of its files were written is NULL in
//! those files, as Athena reads it. An old file is searched and erased on the match
//! columns it has; a file with none of them fails and keeps the items queued. The lake is
//! read back by pyarrow after each job.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use serde_json::{Value, json};

use crate::e2e_find::{Lake, lake};
use crate::e2e_jobs::{object_bytes, read_ids};
use crate::jobs::queue;
use crate::readback::parquet_rows;

/// A Parquet file of these columns, written by the arrow writer.
fn parquet_of(columns: Vec<(&str, ArrayRef)>) -> Vec<u8> {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

fn ints(values: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

fn texts(values: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// The table `people` (`id bigint, email string`, partitioned by `dt`) with the
/// partition `dt=1` registered, and the mapper `people` over `id` and `email`.
async fn people_table(lake: &Lake) {
    let location = format!("s3://{}/people/", lake.bucket);
    lake.table("people", &location, ("dt", "string"), &[]).await;
    lake.partition("people", "1", &format!("{location}dt=1/"))
        .await;
    lake.mapper("people", "people", "dt").await;
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn an_old_file_without_the_newer_match_column_is_searched_and_erased_on_the_one_it_has(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    people_table(&lake).await;
    let old = "people/dt=1/old.parquet";
    let new = "people/dt=1/new.parquet";
    lake.put(old, &parquet_of(vec![("id", ints(&[1, 2, 3]))]))
        .await;
    lake.put(
        new,
        &parquet_of(vec![
            ("id", ints(&[4, 5, 6])),
            ("email", texts(&["a@x", "b@x", "c@x"])),
        ]),
    )
    .await;
    // The email is only in the new file; the id only in the old one.
    queue(&lake.app, json!([{"match_id": "b@x"}, {"match_id": 2}])).await;
    let job = lake.run_job(&["people"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stats"]["rows_removed"], 2, "{job}");
    let objects = lake.objects(&job).await;
    for key in [old, new] {
        assert_eq!(objects[key]["rows_matched"], 1, "{key}: {}", objects[key]);
    }

    assert_eq!(read_ids(&lake.s3, &lake.bucket, old).await, [1, 3]);
    let old_rows = parquet_rows(&object_bytes(&lake.s3, &lake.bucket, old).await);
    assert_eq!(
        old_rows,
        [json!({"id": 1}), json!({"id": 3})],
        "no column added"
    );
    let new_rows = parquet_rows(&object_bytes(&lake.s3, &lake.bucket, new).await);
    assert_eq!(
        new_rows,
        [
            json!({"id": 4, "email": "a@x"}),
            json!({"id": 6, "email": "c@x"})
        ]
    );
    assert_eq!(lake.queued().await, Vec::<Value>::new());
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_file_with_none_of_the_match_columns_fails_and_keeps_the_items_queued(db: sqlx::PgPool) {
    let lake = lake(db).await;
    people_table(&lake).await;
    let names = "people/dt=1/names.parquet";
    let file = parquet_of(vec![("name", texts(&["Ann", "Bob"]))]);
    lake.put(names, &file).await;
    lake.put(
        "people/dt=1/new.parquet",
        &parquet_of(vec![("id", ints(&[4])), ("email", texts(&["b@x"]))]),
    )
    .await;
    queue(&lake.app, json!([{"match_id": "b@x"}])).await;
    let job = lake.run_job(&["people"]).await;
    assert_eq!(job["status"], "forget_partially_failed", "{job}");
    assert_eq!(job["stats"]["objects_failed"], 1, "{job}");
    let objects = lake.objects(&job).await;
    assert_eq!(objects[names]["status"], "failed", "{}", objects[names]);
    let error = objects[names]["error"].as_str().unwrap();
    assert!(
        error.contains("none of the match columns") && error.contains("email"),
        "{error}"
    );
    // Nothing written to it, and the subject is still queued.
    let now = object_bytes(&lake.s3, &lake.bucket, names).await;
    assert_eq!(now.as_ref(), file.as_slice());
    assert_eq!(lake.versions(names).await, 1);
    assert_eq!(lake.queued().await, [json!("b@x")]);
}
