//! Hidden files as Athena sees them, end to end against moto through the REST API: a
//! `_temporary/` copy of the data, Spark summary files and `.crc` checksums under a
//! partitioned Glue table are not the table's data. They are never searched or written
//! and fail nothing; the report lists them `hidden`, and the `_temporary/` folder raises
//! a warning. The lake is read back with pyarrow and the plain SDK.

use serde_json::{Value, json};

use crate::e2e_find::{lake, without};
use crate::e2e_jobs::{object_bytes, read_ids};
use crate::jobs::queue;

const DATA: &str = "t/dt=1/part-0.parquet";
const TEMPORARY: &str = "t/dt=1/_temporary/0/part-0.parquet";
/// Non-data files of garbage bytes: searched, each would fail.
const SUMMARIES: [&str; 3] = [
    "t/dt=1/_metadata",
    "t/_common_metadata",
    "t/dt=1/.part-0.parquet.crc",
];

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn hidden_files_are_reported_hidden_never_searched_or_written_and_fail_nothing(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let people = crate::lake::people();
    let b = lake.bucket.clone();
    lake.put(DATA, &people[0].bytes).await;
    // A failed Spark job's output: a full copy of the data, the subject's rows included.
    lake.put(TEMPORARY, &people[0].bytes).await;
    for key in SUMMARIES {
        lake.put(key, b"PAR1 not a footer, not json\x00\xff").await;
    }
    lake.table("t", &format!("s3://{b}/t/"), ("dt", "string"), &[])
        .await;
    lake.partition("t", "1", &format!("s3://{b}/t/dt=1/")).await;
    lake.mapper("t", "t", "dt").await;
    // Id 5 is in part-0 and in its `_temporary/` copy.
    queue(&lake.app, json!([{"match_id": 5}])).await;

    let job = lake.run_job(&["t"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stats"]["objects_failed"], 0, "{job}");
    assert_eq!(
        job["stats"]["objects_scanned"], 1,
        "only the data file: {job}"
    );
    assert_eq!(job["stats"]["objects_rewritten"], 1, "{job}");
    assert_eq!(
        read_ids(&lake.s3, &b, DATA).await,
        without(&people[0], &[5])
    );
    assert!(lake.queued().await.is_empty(), "the subject left the queue");

    // Untouched, byte for byte, with its single version.
    assert_eq!(
        object_bytes(&lake.s3, &b, TEMPORARY).await.as_ref(),
        people[0].bytes.as_slice()
    );
    let hidden_keys: Vec<&str> = SUMMARIES.iter().copied().chain([TEMPORARY]).collect();
    for key in &hidden_keys {
        assert_eq!(lake.versions(key).await, 1, "{key} was never written");
    }

    let objects = lake.objects(&job).await;
    assert_eq!(objects[DATA]["status"], "matched");
    for key in &hidden_keys {
        let o = &objects[*key];
        assert_eq!(o["status"], "hidden", "{key}: {o}");
        assert_eq!(o["rows_matched"], 0, "{key}: never searched");
    }
    let id = job["job_id"].as_str().unwrap();
    let report = lake.app.get(&format!("/v1/jobs/{id}/report")).await.body;
    let mut reported_hidden: Vec<&str> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["find_status"] == "hidden")
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    reported_hidden.sort();
    let mut expected = hidden_keys.clone();
    expected.sort();
    assert_eq!(reported_hidden, expected);
    assert_eq!(report["matches"][0]["status"], "erased", "{report}");

    let events = events(&lake.app, id).await;
    let listed = events
        .iter()
        .find(|e| e["kind"] == "mapper_listed")
        .expect("a mapper_listed event");
    assert_eq!(listed["details"]["objects_hidden"], 4, "{listed}");
    assert_eq!(listed["details"]["temporary_prefixes"], 1, "{listed}");
    let warnings: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "temporary_output")
        .collect();
    assert_eq!(warnings.len(), 1, "once per _temporary folder");
    assert_eq!(warnings[0]["level"], "warning");
    let prefix = format!("s3://{b}/t/dt=1/_temporary/");
    assert_eq!(warnings[0]["details"]["prefix"], prefix.as_str());
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .starts_with(&prefix)
    );
    assert!(
        events.iter().all(|e| e["kind"] != "object_failed"),
        "no hidden file fails"
    );
}

async fn events(app: &crate::common::TestApp, job: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/v1/jobs/{job}/events?page_size=1000"))
        .await;
    r.body["events"].as_array().unwrap().clone()
}
