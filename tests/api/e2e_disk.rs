//! A full disk under the rewrite's temporary files: past the worker's temporary budget
//! (`LETHE_TEMP_MAX_BYTES`), a rewrite fails its object cleanly — its subjects kept, its
//! files removed from `LETHE_TEMP_DIR` — and the worker goes on with the next object.

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use axum::http::StatusCode;
use lethe::catalog::glue::GlueCatalog;
use lethe::storage::Stores;
use serde_json::json;
use sqlx::PgPool;

use crate::common::TestApp;
use crate::e2e_jobs::{object_bytes, run_job, versions};
use crate::e2e_storage::new_versioned_bucket;
use crate::jobs::queue;

/// JSON Lines of ids `from..to`.
fn lines(ids: std::ops::Range<i64>) -> String {
    ids.map(|i| format!("{{\"id\": {i}, \"note\": \"padding padding padding\"}}\n"))
        .collect()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_rewrite_beyond_the_temporary_budget_fails_its_object_alone_and_leaves_no_file(
    db: PgPool,
) {
    let (sdk, s3, bucket) = new_versioned_bucket().await;
    let (big, small) = (lines(0..5000), lines(0..10));
    for (key, body) in [("big/a.json", &big), ("small/a.json", &small)] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .unwrap();
    }
    // Room for the big object's download, not for its rewrite besides.
    let budget = big.len() as u64 + big.len() as u64 / 2;
    let temp = tempfile::tempdir().unwrap();
    let temp_dir = temp.path().to_owned();
    let app = TestApp::with_stores_and(
        db.clone(),
        Arc::new(GlueCatalog::new(&sdk)),
        Stores::new(&sdk, true),
        |config| {
            config.jobs.temp_dir = Some(temp_dir);
            config.jobs.temp_max_bytes = Some(budget);
        },
    );
    for id in ["big", "small"] {
        let mapper = json!({
            "catalog": {"provider": "path", "location": format!("s3://{bucket}/{id}/"), "format": "json"},
            "format": "json",
            "columns": ["id"],
        });
        let r = app.put(&format!("/v1/data_mappers/{id}"), mapper).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    queue(
        &app,
        json!([{"match_id": 3, "data_mappers": ["big"]}, {"match_id": 4, "data_mappers": ["small"]}]),
    )
    .await;

    let job = run_job(&app, &[]).await;
    assert_eq!(job["status"], "forget_partially_failed", "{job}");
    // The big object is as it was, one version; the small one lost its row.
    let body = object_bytes(&s3, &bucket, "big/a.json").await;
    assert_eq!(body.as_ref(), big.as_bytes());
    assert_eq!(versions(&s3, &bucket, "big/a.json").await.len(), 1);
    let body = object_bytes(&s3, &bucket, "small/a.json").await;
    let expected: String = small
        .lines()
        .filter(|l| !l.starts_with("{\"id\": 4,"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(String::from_utf8_lossy(&body), expected);
    // Why the big one failed, in its event; its subject kept, the other erased.
    let id = job["job_id"].as_str().unwrap();
    let events = app
        .get(&format!("/v1/jobs/{id}/events?page_size=1000"))
        .await;
    let failed: Vec<&str> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "object_failed")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("big/a.json") && failed[0].contains("temporary space exhausted"),
        "{failed:?}"
    );
    let left: Vec<serde_json::Value> = app.get("/v1/queue?page_size=10").await.body["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["match_id"].clone())
        .collect();
    assert_eq!(left, [json!(3)]);
    // Nothing left in the temporary directory, nothing held of the budget, no task open.
    let files: Vec<_> = std::fs::read_dir(temp.path()).unwrap().collect();
    assert!(files.is_empty(), "{files:?}");
    assert_eq!(app.state.temp.in_use(), 0);
    let open: i64 = sqlx::query_scalar("select count(*) from task where state <> 'succeeded'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(open, 0);
}

/// `/dev/full` takes the file but refuses every write (`ENOSPC`): the download fails as
/// this machine's failure ("temporary space exhausted", not a retryable storage error).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_download_onto_a_full_disk_says_temporary_space_exhausted_not_unavailable() {
    use lethe::storage::{ObjectStore, StorageError};
    let (sdk, s3, bucket) = new_versioned_bucket().await;
    s3.put_object()
        .bucket(&bucket)
        .key("t/a.json")
        .body(ByteStream::from(lines(0..100).into_bytes()))
        .send()
        .await
        .unwrap();
    let store = lethe::storage::s3::S3Store::new(&sdk, true);
    let full = std::path::Path::new("/dev/full");
    match store.download(&bucket, "t/a.json", None, full).await {
        Err(StorageError::Other(m)) => assert!(m.contains("temporary space exhausted"), "{m}"),
        other => panic!("{other:?}"),
    }
}
