//! A rewrite that fails verification is rolled back, end to end against moto through the
//! REST API: a store wrapper makes Lethe's upload carry a matching line (as a
//! faulty disk or a broken writer would), so the uploaded version fails verify. The
//! version Lethe read must be current again, byte for byte (read with the plain SDK), the
//! rollback reported, the item kept on the queue, and no version deleted; a newer writer
//! after Lethe's upload is never overwritten.

use std::io::Write;
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use lethe::storage::{
    Fetched, ListPage, ObjectAttributes, ObjectMeta, ObjectStore, Precondition, StorageError,
    Stores, VersionMeta, Written,
};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::TestApp;
use crate::e2e_jobs::{object_bytes, run_job, versions};
use crate::e2e_storage::new_versioned_bucket;
use crate::jobs::queue;

/// The line of the subject the uploads carry back in.
const MATCHING: &[u8] = b"{\"id\": 5, \"name\": \"subject\"}\n";
/// What someone else writes after Lethe's upload, when the store plays a newer writer.
const NEWER: &[u8] = b"{\"id\": 9, \"name\": \"newer writer\"}\n";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// What else happens around the spoiled upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Nothing,
    /// Someone writes the object right after Lethe's upload.
    NewerWriter,
    /// The verify worker dies right after the rollback's upload, before its record (once).
    KilledAfterRestore,
}

/// Passes every call through, except Lethe's rewrite uploads (user metadata
/// `lethe-job-object`), whose body is spoiled so that the version uploaded fails
/// verification: a gzip object gets the matching line appended (a gzip member), a plain
/// one has a kept line's id turned into the subject's (same size).
struct Sabotage {
    inner: Arc<dyn ObjectStore>,
    then: Then,
    db: PgPool,
    killed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl ObjectStore for Sabotage {
    async fn list_page(
        &self,
        b: &str,
        p: &str,
        n: Option<String>,
    ) -> Result<ListPage, StorageError> {
        self.inner.list_page(b, p, n).await
    }
    async fn head(&self, b: &str, k: &str) -> Result<ObjectMeta, StorageError> {
        self.inner.head(b, k).await
    }
    async fn get_range(
        &self,
        b: &str,
        k: &str,
        v: Option<&str>,
        r: std::ops::Range<u64>,
    ) -> Result<bytes::Bytes, StorageError> {
        self.inner.get_range(b, k, v, r).await
    }
    async fn download(
        &self,
        b: &str,
        k: &str,
        v: Option<&str>,
        to: &std::path::Path,
    ) -> Result<Fetched, StorageError> {
        self.inner.download(b, k, v, to).await
    }
    async fn upload(
        &self,
        b: &str,
        k: &str,
        from: &std::path::Path,
        m: Precondition<'_>,
        a: &ObjectAttributes,
        t: u64,
    ) -> Result<Written, StorageError> {
        if !a.metadata.contains_key("lethe-job-object") {
            let written = self.inner.upload(b, k, from, m, a, t).await?;
            let restore = a.metadata.contains_key("lethe-restored-for");
            if restore && self.then == Then::KilledAfterRestore {
                self.kill_verify().await;
            }
            return Ok(written);
        }
        let mut body = std::fs::read(from).unwrap();
        if k.ends_with(".gz") {
            body.extend(gzip(MATCHING));
        } else {
            // The same size: only the rows tell.
            let at = body.windows(7).position(|w| w == b"\"id\": 7").unwrap();
            body[at + 6] = b'5';
        }
        let dir = tempfile::tempdir().unwrap();
        let spoiled = dir.path().join("spoiled");
        std::fs::write(&spoiled, body).unwrap();
        let written = self.inner.upload(b, k, &spoiled, m, a, t).await?;
        if self.then == Then::NewerWriter {
            let newer = dir.path().join("newer");
            std::fs::write(&newer, NEWER).unwrap();
            let etag = written.etag.as_deref().unwrap();
            let plain = ObjectAttributes::default();
            self.inner
                .upload(b, k, &newer, Precondition::Match(etag), &plain, t)
                .await?;
        }
        Ok(written)
    }
    async fn head_with_metadata(
        &self,
        b: &str,
        k: &str,
    ) -> Result<(ObjectMeta, std::collections::HashMap<String, String>), StorageError> {
        self.inner.head_with_metadata(b, k).await
    }
    async fn version_size(&self, b: &str, k: &str, v: &str) -> Result<Option<u64>, StorageError> {
        self.inner.version_size(b, k, v).await
    }
    async fn list_versions(&self, b: &str, k: &str) -> Result<Vec<VersionMeta>, StorageError> {
        self.inner.list_versions(b, k).await
    }
    async fn delete_version(&self, b: &str, k: &str, v: &str) -> Result<(), StorageError> {
        self.inner.delete_version(b, k, v).await
    }
}

impl Sabotage {
    /// The running verify task loses its lease (what a worker killed now leaves), once.
    async fn kill_verify(&self) {
        if self.killed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        sqlx::query(
            "update task set lease_owner = 'killed', lease_until = now() - interval '1 second'
             where state = 'running' and kind = 'verify.object'",
        )
        .execute(&self.db)
        .await
        .unwrap();
    }
}

/// A versioned bucket in moto and an app whose S3 store is [`Sabotage`].
async fn lake(db: PgPool, then: Then) -> (TestApp, aws_sdk_s3::Client, String) {
    let (sdk, s3, bucket) = new_versioned_bucket().await;
    let stores = Stores {
        s3: Arc::new(Sabotage {
            inner: Arc::new(lethe::storage::s3::S3Store::new(&sdk, true)),
            then,
            db: db.clone(),
            killed: Default::default(),
        }),
        file: Stores::offline().file,
        file_root: None,
        roles: None,
    };
    let catalog = Arc::new(lethe::catalog::glue::GlueCatalog::new(&sdk));
    (TestApp::with_stores(db, catalog, stores), s3, bucket)
}

/// Puts `body` at `key` and a JSON Lines `path` mapper `id` over its folder (old versions
/// deleted after a verified rewrite).
async fn object_and_mapper(
    app: &TestApp,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    (id, key, body): (&str, &str, &[u8]),
) -> String {
    let put = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap();
    let folder = key.rsplit_once('/').unwrap().0;
    let mapper = json!({
        "catalog": {"provider": "path", "location": format!("s3://{bucket}/{folder}/")},
        "format": "json",
        "columns": ["id"],
        "delete_old_versions": true,
    });
    let r = app.put(&format!("/v1/data_mappers/{id}"), mapper).await;
    assert!(r.status.is_success(), "{}", r.body);
    put.version_id().unwrap().to_owned()
}

/// The objects of the job's report, by key.
async fn objects(app: &TestApp, job: &Value) -> std::collections::BTreeMap<String, Value> {
    let id = job["job_id"].as_str().unwrap();
    let r = app.get(&format!("/v1/jobs/{id}/report")).await;
    r.body["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["key"].as_str().unwrap().to_owned(), o.clone()))
        .collect()
}

async fn event_kinds(app: &TestApp, job: &Value) -> Vec<String> {
    let id = job["job_id"].as_str().unwrap();
    let r = app
        .get(&format!("/v1/jobs/{id}/events?page_size=1000"))
        .await;
    r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

async fn queued(app: &TestApp) -> Vec<Value> {
    let r = app.get("/v1/queue?page_size=1000").await;
    r.body["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["match_id"].clone())
        .collect()
}

fn source() -> Vec<u8> {
    let mut lines = b"{\"id\": 1, \"name\": \"a\"}\n\n".to_vec();
    lines.extend_from_slice(MATCHING);
    lines.extend_from_slice(b"{\"id\": 7,  \"name\": \"b\"}\n");
    lines
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_json_rewrite_that_fails_verification_is_rolled_back_to_the_version_read(db: PgPool) {
    let (app, s3, bucket) = lake(db, Then::Nothing).await;
    let plain = source();
    let gz = gzip(&source());
    let objects_put = [
        ("plain", "plain/a.json", &plain[..]),
        ("gz", "gz/a.json.gz", &gz[..]),
    ];
    let mut read = std::collections::BTreeMap::new();
    for o in objects_put {
        read.insert(o.1, object_and_mapper(&app, &s3, &bucket, o).await);
    }
    queue(&app, json!([{"match_id": 5}])).await;

    let job = run_job(&app, &["plain", "gz"]).await;

    assert_eq!(job["status"], "forget_failed", "{job}");
    let report = objects(&app, &job).await;
    for (_, key, original) in objects_put {
        // The version read is current again, byte for byte, as a new version on top.
        assert_eq!(
            &object_bytes(&s3, &bucket, key).await[..],
            original,
            "{key}"
        );
        let head = s3
            .head_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let meta = head.metadata().cloned().unwrap_or_default();
        assert!(meta.contains_key("lethe-restored-for"), "{meta:?}");
        assert!(
            !meta.contains_key("lethe-job-object"),
            "not Lethe's rewrite: {meta:?}"
        );
        let o = &report[key];
        assert_eq!(o["status"], "verify_failed", "{o}");
        assert_eq!(o["rollback_version_id"].as_str(), head.version_id(), "{o}");
        let error = o["error"].as_str().unwrap();
        assert!(error.contains("rolled back"), "{error}");
        let why = if key.ends_with(".gz") {
            "Lethe uploaded"
        } else {
            "1 matching row(s) remain"
        };
        assert!(error.contains(why), "{error}");
        assert!(
            error.contains(&read[key]),
            "names the version read: {error}"
        );
        assert!(!error.contains("subject"), "no row data: {error}");
        // Nothing deleted: the version read, Lethe's, and the copy on top.
        let all = versions(&s3, &bucket, key).await;
        assert_eq!(all.len(), 3, "{all:?}");
        assert_eq!(all.last(), Some(&read[key]));
        assert_eq!(Some(all[0].as_str()), head.version_id());
        assert_eq!(o["versions_deleted"], json!([]), "{o}");
    }
    let kinds = event_kinds(&app, &job).await;
    assert_eq!(kinds.iter().filter(|k| *k == "rolled_back").count(), 2);
    assert_eq!(queued(&app).await, vec![json!(5)], "the item stays queued");
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_newer_writer_after_a_failed_rewrite_is_never_overwritten_by_the_rollback(db: PgPool) {
    let (app, s3, bucket) = lake(db, Then::NewerWriter).await;
    let plain = source();
    let o = ("plain", "plain/a.json", &plain[..]);
    let read = object_and_mapper(&app, &s3, &bucket, o).await;
    queue(&app, json!([{"match_id": 5}])).await;

    let job = run_job(&app, &["plain"]).await;

    assert_eq!(job["status"], "forget_failed", "{job}");
    assert_eq!(&object_bytes(&s3, &bucket, o.1).await[..], NEWER);
    let report = objects(&app, &job).await;
    let object = &report[o.1];
    assert_eq!(object["status"], "verify_failed", "{object}");
    assert_eq!(object["rollback_version_id"], Value::Null, "{object}");
    let error = object["error"].as_str().unwrap();
    assert!(error.contains("not rolled back"), "{error}");
    assert!(error.contains("412"), "{error}");
    let all = versions(&s3, &bucket, o.1).await;
    assert_eq!(
        all.len(),
        3,
        "the version read, Lethe's, the newer one: {all:?}"
    );
    assert_eq!(all.last(), Some(&read));
    let kinds = event_kinds(&app, &job).await;
    assert!(kinds.contains(&"verify_failed".to_owned()), "{kinds:?}");
    assert!(!kinds.contains(&"rolled_back".to_owned()), "{kinds:?}");
    assert_eq!(queued(&app).await, vec![json!(5)], "the item stays queued");
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_verify_rerun_after_a_crash_recognises_its_own_rollback_and_copies_nothing_twice(
    db: PgPool,
) {
    let (app, s3, bucket) = lake(db, Then::KilledAfterRestore).await;
    let plain = source();
    let o = ("plain", "plain/a.json", &plain[..]);
    let read = object_and_mapper(&app, &s3, &bucket, o).await;
    queue(&app, json!([{"match_id": 5}])).await;

    let job = run_job(&app, &["plain"]).await;

    assert_eq!(job["status"], "forget_failed", "{job}");
    let attempts: i32 =
        sqlx::query_scalar("select attempts + crashes from task where kind = 'verify.object'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(attempts, 2, "the verify task ran again after the crash");
    assert_eq!(&object_bytes(&s3, &bucket, o.1).await[..], &plain[..]);
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(o.1)
        .send()
        .await
        .unwrap();
    let report = objects(&app, &job).await;
    let object = &report[o.1];
    assert_eq!(object["rollback_version_id"].as_str(), head.version_id());
    let all = versions(&s3, &bucket, o.1).await;
    assert_eq!(all.len(), 3, "one copy on top, not two: {all:?}");
    assert_eq!(all.last(), Some(&read));
    let kinds = event_kinds(&app, &job).await;
    assert_eq!(kinds.iter().filter(|k| *k == "rolled_back").count(), 1);
    assert_eq!(queued(&app).await, vec![json!(5)], "the item stays queued");
}
