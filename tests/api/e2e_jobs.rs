//! A dry-run job end to end against moto: Glue tables with partitions, a versioned S3
//! bucket, the real aws-sdk-glue and aws-sdk-s3, through the REST API. The report must
//! equal what plain Rust computes from the generated rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_glue::types::{
    Column, DatabaseInput, PartitionInput, SerDeInfo, StorageDescriptor, TableInput,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::StorageClass;
use axum::http::StatusCode;
use lethe::catalog::glue::GlueCatalog;
use lethe::domain::retention::{LifecycleRule, ReplicationRule, VersionLock};
use lethe::storage::{
    Fetched, ListPage, ObjectAttributes, ObjectMeta, ObjectStore, Precondition, StorageError,
    Stores, VersionMeta, Written,
};
use serde_json::json;
use sqlx::PgPool;

use crate::common::TestApp;
use crate::e2e_storage::new_versioned_bucket;
use crate::jobs::{
    events_matches, expected_events, expected_people, full_matrix, queue, start_dry_run,
};
use crate::lake;

pub fn descriptor(location: String, columns: &[(&str, &str)], json: bool) -> StorageDescriptor {
    let (input, serde) = if json {
        (
            "org.apache.hadoop.mapred.TextInputFormat",
            "org.openx.data.jsonserde.JsonSerDe",
        )
    } else {
        (
            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        )
    };
    let mut sd = StorageDescriptor::builder()
        .location(location)
        .input_format(input)
        .serde_info(SerDeInfo::builder().serialization_library(serde).build());
    for (name, ty) in columns {
        sd = sd.columns(Column::builder().name(*name).r#type(*ty).build().unwrap());
    }
    sd.build()
}

/// A fresh Glue database in the emulator, named `{prefix}_<uuid>`.
pub async fn glue_database(glue: &aws_sdk_glue::Client, prefix: &str) -> String {
    let database = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    glue.create_database()
        .database_input(DatabaseInput::builder().name(&database).build().unwrap())
        .send()
        .await
        .unwrap();
    database
}

/// Creates a partitioned table and its partitions (one per value of its one key).
pub async fn glue_table(
    glue: &aws_sdk_glue::Client,
    database: &str,
    table: &str,
    location: &str,
    columns: &[(&str, &str)],
    (key, values): (&str, &[&str]),
    json: bool,
) {
    glue.create_table()
        .database_name(database)
        .table_input(
            TableInput::builder()
                .name(table)
                .storage_descriptor(descriptor(location.to_owned(), columns, json))
                .partition_keys(
                    Column::builder()
                        .name(key)
                        .r#type("string")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    for value in values {
        glue.create_partition()
            .database_name(database)
            .table_name(table)
            .partition_input(
                PartitionInput::builder()
                    .values(*value)
                    .storage_descriptor(descriptor(
                        format!("{location}{key}={value}/"),
                        columns,
                        json,
                    ))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
}

/// The generated lake in moto (versioned bucket, Glue tables and partitions), with the
/// `people` and `events` mappers registered.
pub struct GlueLake {
    pub app: TestApp,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub people: Vec<lake::PeopleObject>,
    pub glue: aws_sdk_glue::Client,
    pub database: String,
    /// The response to the second PUT of the first object (its current version).
    pub current: aws_sdk_s3::operation::put_object::PutObjectOutput,
}

pub async fn glue_lake(
    db: PgPool,
    stores: impl FnOnce(&aws_config::SdkConfig) -> Stores,
) -> GlueLake {
    let (sdk, s3, bucket) = new_versioned_bucket().await;
    let put = |key: String, body: Vec<u8>, class: Option<StorageClass>| {
        let s3 = s3.clone();
        let bucket = bucket.clone();
        async move {
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .set_storage_class(class)
                .body(ByteStream::from(body))
                .send()
                .await
                .unwrap()
        }
    };
    let people = lake::people();
    for o in &people {
        put(format!("people/{}", o.key), o.bytes.clone(), None).await;
    }
    // A second version: find must read (and record) the current one.
    let current = put(
        format!("people/{}", people[0].key),
        people[0].bytes.clone(),
        None,
    )
    .await;
    put("people/country=fr/_SUCCESS".into(), vec![], None).await;
    put(
        "people/country=us/corrupt.parquet".into(),
        b"not parquet at all".to_vec(),
        None,
    )
    .await;
    put(
        "people/country=us/archived.parquet".into(),
        people[5].bytes.clone(),
        Some(StorageClass::Glacier),
    )
    .await;
    for (key, _, bytes) in lake::events() {
        put(format!("events/{key}"), bytes, None).await;
    }

    let glue = aws_sdk_glue::Client::new(&sdk);
    let database = glue_database(&glue, "lake").await;
    glue_table(
        &glue,
        &database,
        "people",
        &format!("s3://{bucket}/people/"),
        &[
            ("id", "bigint"),
            ("email", "string"),
            ("name", "string"),
            ("account", "decimal(12,2)"),
            ("contact", "struct<email:string,phone:string>"),
        ],
        ("country", &lake::COUNTRIES),
        false,
    )
    .await;
    glue_table(
        &glue,
        &database,
        "events",
        &format!("s3://{bucket}/events/"),
        &[
            ("user", "struct<id:bigint,email:string>"),
            ("kind", "string"),
        ],
        ("dt", &["2026-11-00", "2026-11-01"]),
        true,
    )
    .await;

    let app = TestApp::with_stores(db, Arc::new(GlueCatalog::new(&sdk)), stores(&sdk));
    for (id, table, columns, keys) in [
        (
            "people",
            "people",
            json!(["id", "email", "account", "contact.email"]),
            json!(["country"]),
        ),
        (
            "events",
            "events",
            json!(["user.id", "user.email"]),
            json!([]),
        ),
    ] {
        let body = json!({
            "catalog": {"provider": "glue", "database": database, "table": table},
            "format": if id == "events" { "json" } else { "parquet" },
            "columns": columns,
            "partition_keys": keys,
        });
        let r = app.put(&format!("/v1/data_mappers/{id}"), body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    GlueLake {
        app,
        s3,
        bucket,
        people,
        glue,
        database,
        current,
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_dry_run_over_a_glue_lake_in_the_emulator_finds_exactly_the_generated_rows(db: PgPool) {
    let GlueLake {
        app,
        bucket,
        people,
        glue,
        database,
        current,
        ..
    } = glue_lake(db, |sdk| Stores::new(sdk, true)).await;
    let (items, matches) = full_matrix();
    queue(&app, items).await;
    let job = start_dry_run(&app, &[]).await;
    app.worker("w").run_until_idle().await.unwrap();

    let got = app.get(&format!("/v1/jobs/{job}")).await;
    // The Glacier object could not be read: the dry run says so.
    assert_eq!(
        got.body["status"], "completed_not_searchable",
        "{}",
        got.body
    );
    let mut expected = expected_people(&matches, "people/");
    expected.extend(expected_events(&events_matches(), "events/"));
    // The report lists matched objects; the corrupt one is reported as failed, the
    // archived one as not searchable, with the reason.
    let objects = app
        .get(&format!("/v1/jobs/{job}/objects?page_size=1000"))
        .await;
    let all = objects.body["objects"].as_array().unwrap().clone();
    let failed: Vec<_> = all.iter().filter(|o| o["status"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["key"], "people/country=us/corrupt.parquet");
    assert!(failed[0]["error"].as_str().unwrap().contains("Parquet"));
    let unread: Vec<_> = all
        .iter()
        .filter(|o| o["status"] == "not_searchable")
        .collect();
    assert_eq!(unread.len(), 1, "{all:?}");
    assert_eq!(unread[0]["key"], "people/country=us/archived.parquet");
    assert_eq!(unread[0]["error"], "archived in GLACIER");
    let matched: std::collections::BTreeMap<String, i64> = all
        .iter()
        .filter(|o| o["status"] == "matched")
        .map(|o| {
            (
                o["key"].as_str().unwrap().to_owned(),
                o["rows_matched"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(matched, expected);
    // The version find read is the current one, as S3 reports it; the first version of
    // the same key (identical rows) is searched as an old version.
    let first_key = format!("people/{}", people[0].key);
    let first = all
        .iter()
        .find(|o| o["key"] == first_key && o["noncurrent"] == false)
        .expect("the first object holds id 5");
    let old = all
        .iter()
        .find(|o| o["key"] == first_key && o["noncurrent"] == true)
        .expect("its old version holds id 5 too");
    assert_ne!(old["version_id"], first["version_id"]);
    assert_eq!(old["rows_matched"], first["rows_matched"]);
    assert_eq!(first["version_id"], current.version_id().unwrap());
    assert_eq!(first["etag"], current.e_tag().unwrap());
    assert_eq!(first["bucket"], bucket.as_str());

    let stats = &got.body["stats"];
    assert_eq!(stats["partitions_listed"], 3 + 2);
    assert_eq!(stats["objects_listed"], 6 + 3 + 2);
    assert_eq!(stats["objects_skipped"], 1, "the marker");
    assert_eq!(stats["objects_not_searchable"], 1, "the archived object");
    assert_eq!(stats["objects_failed"], 1);
    assert_eq!(stats["objects_scanned"], 6 + 2 + 1, "the old version too");
    assert_eq!(stats["old_versions_listed"], 1);
    assert_eq!(stats["old_versions_matched"], 1);
    assert_eq!(stats["objects_matched"], expected.len() as i64);
    assert_eq!(stats["rows_matched"], expected.values().sum::<i64>());
    let events = app
        .get(&format!("/v1/jobs/{job}/events?page_size=1000"))
        .await;
    let kinds: Vec<&str> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "job_created",
        "find_started",
        "mapper_listed",
        "object_skipped",
        "object_failed",
        "find_finished",
        "job_finished",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    // No match id appears in the events.
    let text = events.body.to_string();
    for id in ["user42@example.com", "c9001@example.com", "123456789"] {
        assert!(!text.contains(id), "events must not carry match ids");
    }

    // A table that vanished from the catalog fails its mapper, and the job.
    glue.delete_table()
        .database_name(&database)
        .name("events")
        .send()
        .await
        .unwrap();
    let job = start_dry_run(&app, &["events"]).await;
    app.worker("w").run_until_idle().await.unwrap();
    let got = app.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(got.body["status"], "find_failed", "{}", got.body);
    let events = app.get(&format!("/v1/jobs/{job}/events")).await;
    let failure = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "mapper_failed")
        .expect("a mapper_failed event")
        .clone();
    assert!(
        failure["message"].as_str().unwrap().contains("events"),
        "{failure}"
    );
}

/// Where a simulated worker death strikes: the task holding the lease loses it right
/// after that call (exactly what a worker killed there leaves behind), once. `DenyEvents`
/// answers AccessDenied to every read under `events/` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    AfterGet,
    AfterPut,
    /// The first upload lands but its answer is lost, and the retried PUT gets a 412.
    PutAnswerLost,
    /// Every version find recorded of `people/` is gone (a newer one holds the rows).
    PinnedGone,
    AfterVerifyGet,
    DuringCleanup,
    /// The worker dies right after deleting an old version (one find listed), before it
    /// records the delete (once).
    DuringOldVersionCleanup,
    DenyEvents,
    /// Deleting versions is denied while the first job runs.
    DenyDeletesInFirstJob,
    /// Someone deletes the version Lethe wrote just before cleanup lists the versions
    /// (once per key).
    OwnVersionDeleted,
    /// Another writer puts a new version over a key right before forget's first download
    /// of it (once): the version find read is no longer current.
    OverwriteBeforeForget,
    /// Another writer puts a new version over a key right before cleanup first lists its
    /// versions (once): on top of Lethe's verified rewrite.
    OverwriteBeforeCleanup,
    /// Forget's first upload lands, then its task waits at the [`Gate`] before recording
    /// it (once).
    PauseAfterUpload,
    /// Listings come in pages of three, and the worker listing a table dies (its lease
    /// ends) right after reading its second page, before recording it (once).
    KilledMidListing,
    /// The worker purging a table format's old files dies (its lease ends) right after
    /// its first delete of a version, before recording the purge (once).
    DuringPurge,
}

/// What another writer puts over `key` (with the plain SDK, not through Lethe's store).
pub struct OtherWriter {
    pub key: String,
    pub body: Vec<u8>,
}

/// Where a forget task paused after its upload waits: `landed` is notified once the
/// upload landed, and the task records it once `go_on` is.
#[derive(Default)]
pub struct Gate {
    pub landed: tokio::sync::Notify,
    pub go_on: tokio::sync::Notify,
}

struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    db: PgPool,
    fault: Fault,
    fired: std::sync::atomic::AtomicBool,
    sabotaged: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The plain SDK client and what it writes, for `OverwriteBeforeForget`.
    other_writer: Option<(aws_sdk_s3::Client, OtherWriter)>,
    gate: Arc<Gate>,
}

impl FaultyStore {
    async fn kill(&self, point: Fault, kind: &str) {
        if self.fault == point && !self.fired.swap(true, std::sync::atomic::Ordering::SeqCst) {
            sqlx::query(
                "update task set lease_owner = 'killed', lease_until = now() - interval '1 second'
                 where state = 'running' and kind = $1",
            )
            .bind(kind)
            .execute(&self.db)
            .await
            .unwrap();
        }
    }

    /// At `point`, the other writer puts its version over its key (once).
    async fn other_writer(&self, point: Fault, b: &str, k: &str) {
        let Some((s3, writer)) = &self.other_writer else {
            return;
        };
        if self.fault == point
            && writer.key == k
            && !self.fired.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            s3.put_object()
                .bucket(b)
                .key(k)
                .body(ByteStream::from(writer.body.clone()))
                .send()
                .await
                .unwrap();
        }
    }
}

#[async_trait::async_trait]
impl ObjectStore for FaultyStore {
    async fn list_page(
        &self,
        b: &str,
        p: &str,
        n: Option<String>,
    ) -> Result<ListPage, StorageError> {
        self.inner.list_page(b, p, n).await
    }
    async fn list_versions_page(
        &self,
        b: &str,
        p: &str,
        n: Option<String>,
    ) -> Result<ListPage, StorageError> {
        if self.fault != Fault::KilledMidListing {
            return self.inner.list_versions_page(b, p, n).await;
        }
        let all = lethe::storage::list_all(self.inner.as_ref(), b, p, true).await?;
        let start = n.as_deref().map_or(0, |t| t.parse::<usize>().unwrap());
        let end = (start + 3).min(all.len());
        if start > 0 {
            self.kill(Fault::KilledMidListing, "find.mapper").await;
        }
        Ok(ListPage {
            objects: all[start..end].to_vec(),
            next: (end < all.len()).then(|| end.to_string()),
        })
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
        let bytes = self.inner.get_range(b, k, v, r).await?;
        // Verify reads the new version with ranged reads.
        if self.fault == Fault::AfterVerifyGet {
            let verifying: bool = sqlx::query_scalar(
                "select exists (select 1 from task where state = 'running' and kind = 'verify.object')",
            )
            .fetch_one(&self.db)
            .await
            .unwrap();
            if verifying {
                self.kill(Fault::AfterVerifyGet, "verify.object").await;
            }
        }
        Ok(bytes)
    }
    async fn download(
        &self,
        b: &str,
        k: &str,
        v: Option<&str>,
        to: &std::path::Path,
    ) -> Result<Fetched, StorageError> {
        if self.fault == Fault::PinnedGone && v.is_some() && k.starts_with("people/") {
            return Err(StorageError::NotFound);
        }
        if self.fault == Fault::DenyEvents && k.starts_with("events/") {
            return Err(StorageError::AccessDenied {
                code: "AccessDenied".into(),
            });
        }
        self.other_writer(Fault::OverwriteBeforeForget, b, k).await;
        let fetched = self.inner.download(b, k, v, to).await?;
        self.kill(Fault::AfterGet, "forget.object").await;
        Ok(fetched)
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
        let written = self.inner.upload(b, k, from, m, a, t).await?;
        self.kill(Fault::AfterPut, "forget.object").await;
        if self.fault == Fault::PauseAfterUpload
            && !self.fired.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            self.gate.landed.notify_one();
            self.gate.go_on.notified().await;
        }
        if self.fault == Fault::PutAnswerLost
            && !self.fired.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(StorageError::PreconditionFailed);
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
    async fn lifecycle_rules(&self, b: &str) -> Result<Vec<LifecycleRule>, StorageError> {
        self.inner.lifecycle_rules(b).await
    }
    async fn replication_rules(&self, b: &str) -> Result<Vec<ReplicationRule>, StorageError> {
        self.inner.replication_rules(b).await
    }
    async fn version_lock(&self, b: &str, k: &str, v: &str) -> Result<VersionLock, StorageError> {
        self.inner.version_lock(b, k, v).await
    }
    async fn list_versions(&self, b: &str, k: &str) -> Result<Vec<VersionMeta>, StorageError> {
        self.other_writer(Fault::OverwriteBeforeCleanup, b, k).await;
        if self.fault == Fault::OwnVersionDeleted {
            let cleaning: i64 = sqlx::query_scalar(
                "select count(*) from task where state = 'running' and kind = 'cleanup.object'",
            )
            .fetch_one(&self.db)
            .await
            .unwrap();
            let first_time = self.sabotaged.lock().unwrap().insert(k.to_owned());
            if cleaning > 0 && first_time {
                let newest = self.inner.list_versions(b, k).await?[0].version_id.clone();
                self.inner.delete_version(b, k, &newest).await?;
            }
        }
        self.inner.list_versions(b, k).await
    }
    async fn delete_version(&self, b: &str, k: &str, v: &str) -> Result<(), StorageError> {
        if self.fault == Fault::DenyDeletesInFirstJob {
            let jobs: i64 = sqlx::query_scalar("select count(*) from job")
                .fetch_one(&self.db)
                .await
                .unwrap();
            if jobs == 1 {
                return Err(StorageError::AccessDenied {
                    code: "AccessDenied".into(),
                });
            }
        }
        self.inner.delete_version(b, k, v).await?;
        self.kill(Fault::DuringCleanup, "cleanup.object").await;
        self.kill(Fault::DuringPurge, "purge.table").await;
        if self.fault == Fault::DuringOldVersionCleanup {
            let old: bool = sqlx::query_scalar(
                "select exists (select 1 from job_object where bucket = $1 and key = $2
                   and version_id = $3 and forget_state = 'old_version')",
            )
            .bind(b)
            .bind(k)
            .bind(v)
            .fetch_one(&self.db)
            .await
            .unwrap();
            if old {
                self.kill(Fault::DuringOldVersionCleanup, "cleanup.object")
                    .await;
            }
        }
        Ok(())
    }
}

fn faulty(db: &PgPool, fault: Fault) -> impl FnOnce(&aws_config::SdkConfig) -> Stores {
    faulty_with(db, fault, None, Arc::default())
}

/// Stores whose S3 store lets `writer` put its version over its key right before
/// forget's first download of it.
pub fn overwritten_before_forget(
    db: &PgPool,
    writer: OtherWriter,
) -> impl FnOnce(&aws_config::SdkConfig) -> Stores {
    faulty_with(
        db,
        Fault::OverwriteBeforeForget,
        Some(writer),
        Arc::default(),
    )
}

/// Stores whose S3 store lets `writer` put its version over its key right before
/// cleanup first lists the key's versions (on top of Lethe's verified rewrite).
pub fn overwritten_before_cleanup(
    db: &PgPool,
    writer: OtherWriter,
) -> impl FnOnce(&aws_config::SdkConfig) -> Stores {
    faulty_with(
        db,
        Fault::OverwriteBeforeCleanup,
        Some(writer),
        Arc::default(),
    )
}

/// Stores whose S3 store kills the worker purging a table format's old files right
/// after its first delete (once).
pub fn killed_during_purge(db: &PgPool) -> impl FnOnce(&aws_config::SdkConfig) -> Stores {
    faulty_with(db, Fault::DuringPurge, None, Arc::default())
}

/// Stores whose S3 store holds forget's first task, its upload landed, at `gate`.
pub fn paused_after_upload(
    db: &PgPool,
    gate: Arc<Gate>,
) -> impl FnOnce(&aws_config::SdkConfig) -> Stores {
    faulty_with(db, Fault::PauseAfterUpload, None, gate)
}

fn faulty_with(
    db: &PgPool,
    fault: Fault,
    writer: Option<OtherWriter>,
    gate: Arc<Gate>,
) -> impl FnOnce(&aws_config::SdkConfig) -> Stores {
    let db = db.clone();
    move |sdk| {
        let s3: Arc<dyn ObjectStore> = Arc::new(lethe::storage::s3::S3Store::new(sdk, true));
        let plain = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(true)
                .build(),
        );
        Stores {
            s3: Arc::new(FaultyStore {
                inner: s3,
                db,
                fault,
                fired: Default::default(),
                sabotaged: Default::default(),
                other_writer: writer.map(|w| (plain, w)),
                gate,
            }),
            file: Stores::offline().file,
            file_root: None,
            roles: None,
        }
    }
}

/// Starts a real job over `mappers`, runs it to its end with one worker, returns it.
pub async fn run_job(app: &TestApp, mappers: &[&str]) -> serde_json::Value {
    let r = app
        .post("/v1/jobs", Some(json!({"data_mappers": mappers})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job = r.body["job_id"].as_str().unwrap().to_owned();
    app.worker("w").run_until_idle().await.unwrap();
    app.get(&format!("/v1/jobs/{job}")).await.body
}

/// The current version's bytes, read with the plain SDK.
pub async fn object_bytes(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bytes::Bytes {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
}

pub async fn read_ids(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<i64> {
    // Read back by pyarrow, not by the Parquet code under test.
    let body = object_bytes(s3, bucket, key).await;
    crate::readback::parquet_rows(&body)
        .iter()
        .map(|row| row["id"].as_i64().expect("an integer id"))
        .collect()
}

/// The versions S3 holds of `key`, newest first.
pub async fn versions(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<String> {
    let out = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .unwrap();
    out.versions()
        .iter()
        .filter(|v| v.key() == Some(key))
        .map(|v| v.version_id().unwrap().to_owned())
        .collect()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_job_over_a_glue_lake_rewrites_exactly_the_matches_survives_a_writer_and_a_crash(
    db: PgPool,
) {
    let GlueLake {
        app,
        s3,
        bucket,
        people,
        ..
    } = glue_lake(db.clone(), faulty(&db, Fault::AfterPut)).await;
    let (items, matches) = full_matrix();
    queue(&app, items).await;
    let r = app.post("/v1/jobs", Some(json!({"dry_run": false}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job = r.body["job_id"].as_str().unwrap().to_owned();
    let worker = app.worker("w");
    while app.get(&format!("/v1/jobs/{job}")).await.body["status"] == "finding"
        || app.get(&format!("/v1/jobs/{job}")).await.body["status"] == "queued"
    {
        let (_, outcome) = worker
            .run_once()
            .await
            .unwrap()
            .expect("find has tasks left");
        outcome.unwrap();
    }
    // A writer replaces an object between find and forget, adding a matching row.
    let changed = &people[2];
    let mut rows = changed.rows.clone();
    rows.push(lake::person(100_000));
    rows.push(lake::Person {
        email: Some("user42@example.com".into()),
        ..lake::person(100_001)
    });
    let key = format!("people/{}", changed.key);
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .content_type("application/vnd.apache.parquet")
        .metadata("owner", "team-a")
        .body(ByteStream::from(lake::people_parquet(
            &rows,
            lake::codec(2),
        )))
        .send()
        .await
        .unwrap();
    worker.run_until_idle().await.unwrap();

    let got = app.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(
        got.body["status"], "forget_partially_failed",
        "{}",
        got.body
    );
    for o in &people {
        let key = format!("people/{}", o.key);
        let source = if o.key == changed.key { &rows } else { &o.rows };
        let expected: Vec<i64> = source
            .iter()
            .filter(|p| !matches.person(o.country, p))
            .map(|p| p.id)
            .collect();
        assert_eq!(read_ids(&s3, &bucket, &key).await, expected, "{key}");
        let rewritten = expected.len() < source.len();
        if rewritten {
            assert_eq!(
                versions(&s3, &bucket, &key).await.len(),
                1,
                "old versions of {key} are deleted"
            );
        }
    }
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("application/vnd.apache.parquet"));
    assert_eq!(
        head.metadata().unwrap().get("owner").map(String::as_str),
        Some("team-a")
    );
    // The corrupt object is untouched; its mapper's items stay queued.
    let corrupt = s3
        .get_object()
        .bucket(&bucket)
        .key("people/country=us/corrupt.parquet")
        .send()
        .await
        .unwrap();
    assert_eq!(
        corrupt.body.collect().await.unwrap().into_bytes().as_ref(),
        b"not parquet at all"
    );
    assert_eq!(
        app.count("deletion_queue_item").await,
        9,
        "only the events-only item left the queue"
    );
    let stats = &got.body["stats"];
    let mut expected = expected_people(&matches, "people/");
    *expected.get_mut(&key).unwrap() += 1;
    expected.extend(expected_events(&events_matches(), "events/"));
    assert_eq!(stats["objects_rewritten"], expected.len() as i64, "{stats}");
    assert_eq!(
        stats["rows_removed"],
        expected.values().sum::<i64>(),
        "{stats}"
    );
    assert_eq!(stats["objects_verified"], expected.len() as i64);
    let task_states: Vec<(String, String)> =
        sqlx::query_as("select kind, state from task where state <> 'succeeded'")
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(task_states.is_empty(), "{task_states:?}");
    // The crash really happened (a forget task ran twice, the second run recognised its
    // own upload) and the writer really raced (a 412, then a re-read).
    let retried: i64 = sqlx::query_scalar(
        "select count(*) from task where kind = 'forget.object' and attempts + crashes > 1",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(retried, 1);
    let events = app
        .get(&format!("/v1/jobs/{job}/events?page_size=1000"))
        .await;
    let kinds: Vec<&str> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"object_changed"), "{kinds:?}");
    assert!(kinds.contains(&"versions_deleted"), "{kinds:?}");
}

/// What a job over the glue lake's full matrix must come to.
pub struct MatrixExpectation {
    pub matches: lake::Matches,
    /// Objects to rewrite and the rows each loses.
    pub rewritten: BTreeMap<String, i64>,
    /// Versions of them there are before the job (all deleted by it).
    pub old_versions: i64,
}

/// Queues the full matrix over the glue lake (`with_events`: its events objects are
/// expected rewritten too) and tells what the job must come to.
pub async fn queue_full_matrix(lake: &GlueLake, with_events: bool) -> MatrixExpectation {
    let (items, matches) = full_matrix();
    queue(&lake.app, items).await;
    let mut rewritten = expected_people(&matches, "people/");
    if with_events {
        rewritten.extend(expected_events(&events_matches(), "events/"));
    }
    let mut old_versions = 0;
    for key in rewritten.keys() {
        old_versions += versions(&lake.s3, &lake.bucket, key).await.len() as i64;
    }
    MatrixExpectation {
        matches,
        rewritten,
        old_versions,
    }
}

/// Checks a job over the full matrix came out exactly as without faults: its status
/// (the corrupt object fails alone), counters, the lake read back, old versions gone, no
/// task left, every object listed once. Returns its stats.
pub async fn assert_matrix_outcome(
    db: &PgPool,
    lake: &GlueLake,
    e: &MatrixExpectation,
    job: &str,
    label: &str,
) -> serde_json::Value {
    let got = lake.app.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(
        got.body["status"], "forget_partially_failed",
        "{label}: {}",
        got.body
    );
    let stats = got.body["stats"].clone();
    assert_eq!(
        stats["objects_rewritten"],
        e.rewritten.len() as i64,
        "{label}: {stats}"
    );
    assert_eq!(
        stats["objects_verified"],
        e.rewritten.len() as i64,
        "{label}: {stats}"
    );
    assert_eq!(
        stats["rows_removed"],
        e.rewritten.values().sum::<i64>(),
        "{label}: {stats}"
    );
    assert_eq!(
        stats["versions_deleted"], e.old_versions,
        "{label}: {stats}"
    );
    for o in &lake.people {
        let key = format!("people/{}", o.key);
        assert_eq!(
            read_ids(&lake.s3, &lake.bucket, &key).await,
            kept_ids(o, &e.matches),
            "{label}: {key}"
        );
        if e.rewritten.contains_key(&key) {
            let left = versions(&lake.s3, &lake.bucket, &key).await;
            assert_eq!(
                left.len(),
                1,
                "{label}: only the new version of {key} is left"
            );
        }
    }
    let open: i64 =
        sqlx::query_scalar("select count(*) from task where state not in ('succeeded')")
            .fetch_one(db)
            .await
            .unwrap();
    assert_eq!(open, 0, "{label}");
    // Every object listed once, whatever the pages and the deaths.
    let mut keys = 0;
    for prefix in ["people/", "events/"] {
        let listed = lake
            .s3
            .list_objects_v2()
            .bucket(&lake.bucket)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        keys += listed.key_count().unwrap_or_default() as i64;
    }
    assert_eq!(stats["objects_listed"], keys, "{label}: {stats}");
    stats
}

/// Runs a whole job under `fault` and checks the lake, the old versions, the stats and
/// the queue come out exactly as without it.
async fn job_survives(db: PgPool, fault: Fault) {
    let lake = glue_lake(db.clone(), faulty(&db, fault)).await;
    let e = queue_full_matrix(&lake, fault != Fault::DenyEvents).await;
    let app = &lake.app;
    let r = app.post("/v1/jobs", Some(json!({}))).await;
    let job = r.body["job_id"].as_str().unwrap().to_owned();
    app.worker("w").run_until_idle().await.unwrap();
    let _ = assert_matrix_outcome(&db, &lake, &e, &job, &format!("{fault:?}")).await;
    if fault == Fault::KilledMidListing {
        // The killed listing went on from its last recorded page, as the same attempt.
        // (Its recorded pages since reset the crash count; the dead owner stays named.)
        let runs: Vec<(i32, i32, Vec<String>)> = sqlx::query_as(
            "select attempts, crashes, crashed_on from task where kind = 'find.mapper'
             order by cardinality(crashed_on) desc",
        )
        .fetch_all(&db)
        .await
        .unwrap();
        assert_eq!(runs[0], (1, 0, vec!["killed".to_owned()]), "{runs:?}");
        assert!(runs[1..].iter().all(|r| r.2.is_empty()), "{runs:?}");
        let listed = app
            .get(&format!("/v1/jobs/{job}/events?page_size=1000"))
            .await
            .body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "mapper_listed")
            .map(|e| e["details"]["pages"].as_i64().unwrap())
            .collect::<Vec<_>>();
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed.iter().any(|pages| *pages > 2), "{listed:?}");
    }
    if fault == Fault::DenyEvents {
        let failed: Vec<serde_json::Value> = app
            .get(&format!("/v1/jobs/{job}/events?page_size=1000"))
            .await
            .body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "object_failed")
            .cloned()
            .collect();
        assert_eq!(
            failed.len(),
            expected_events(&events_matches(), "events/").len() + 1,
            "the events objects and the corrupt one"
        );
        assert!(
            failed
                .iter()
                .any(|e| e["message"].as_str().unwrap().contains("AccessDenied"))
        );
    } else {
        let retried: i64 =
            sqlx::query_scalar("select count(*) from task where attempts + crashes > 1")
                .fetch_one(&db)
                .await
                .unwrap();
        // A lost answer kills nobody; a listing's recorded pages reset its crash count
        // (its death is checked above).
        let expected = match fault {
            Fault::PutAnswerLost | Fault::KilledMidListing => 0,
            _ => 1,
        };
        assert_eq!(retried, expected, "{fault:?}: the killed task ran again");
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_worker_killed_after_get_changes_nothing_in_the_outcome(db: PgPool) {
    job_survives(db, Fault::AfterGet).await;
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_worker_killed_mid_listing_resumes_after_its_last_recorded_page(db: PgPool) {
    job_survives(db, Fault::KilledMidListing).await;
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_worker_killed_after_put_changes_nothing_in_the_outcome(db: PgPool) {
    job_survives(db, Fault::AfterPut).await;
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn an_upload_whose_answer_was_lost_is_recognised_as_its_own_and_its_old_versions_go(
    db: PgPool,
) {
    job_survives(db, Fault::PutAnswerLost).await;
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_vanished_version_is_read_again_even_when_the_mapper_ignores_missing_objects(db: PgPool) {
    let GlueLake {
        app,
        s3,
        bucket,
        people,
        database,
        ..
    } = glue_lake(db.clone(), faulty(&db, Fault::PinnedGone)).await;
    let body = json!({
        "catalog": {"provider": "glue", "database": database, "table": "people"},
        "format": "parquet",
        "columns": ["id", "email", "account", "contact.email"],
        "partition_keys": ["country"],
        "ignore_object_not_found": true,
    });
    let r = app.put("/v1/data_mappers/people", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (items, matches) = full_matrix();
    queue(&app, items).await;
    let expected = expected_people(&matches, "people/");
    let r = app
        .post("/v1/jobs", Some(json!({"data_mappers": ["people"]})))
        .await;
    let job = r.body["job_id"].as_str().unwrap().to_owned();
    app.worker("w").run_until_idle().await.unwrap();
    let stats = app.get(&format!("/v1/jobs/{job}")).await.body["stats"].clone();
    assert_eq!(stats["objects_rewritten"], expected.len() as i64, "{stats}");
    assert_eq!(stats["objects_unchanged"], 0, "nothing skipped: {stats}");
    for o in &people {
        let key = format!("people/{}", o.key);
        assert_eq!(
            read_ids(&s3, &bucket, &key).await,
            kept_ids(o, &matches),
            "{key}"
        );
    }
}

/// The ids of an object's rows that no queued match names (what must be left after a job).
pub fn kept_ids(o: &lake::PeopleObject, matches: &lake::Matches) -> Vec<i64> {
    o.rows
        .iter()
        .filter(|p| !matches.person(o.country, p))
        .map(|p| p.id)
        .collect()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_worker_killed_while_verifying_changes_nothing_in_the_outcome(db: PgPool) {
    job_survives(db, Fault::AfterVerifyGet).await;
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_worker_killed_during_cleanup_changes_nothing_in_the_outcome(db: PgPool) {
    job_survives(db, Fault::DuringCleanup).await;
}

/// The rerun deletes the old version again (already gone: a success) and counts it once:
/// before, it found the version gone and counted nothing (seen as `versions_deleted` one
/// short while connections were terminated).
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_worker_killed_after_deleting_an_old_version_counts_it_once(db: PgPool) {
    job_survives(db, Fault::DuringOldVersionCleanup).await;
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn access_denied_on_some_objects_fails_only_those_with_the_aws_code(db: PgPool) {
    job_survives(db, Fault::DenyEvents).await;
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_written_version_someone_deleted_before_cleanup_fails_it_and_the_next_job_erases_again(
    db: PgPool,
) {
    let GlueLake {
        app,
        s3,
        bucket,
        people,
        ..
    } = glue_lake(db.clone(), faulty(&db, Fault::OwnVersionDeleted)).await;
    let (items, matches) = full_matrix();
    queue(&app, items).await;
    let expected = expected_people(&matches, "people/");
    let first = run_job(&app, &["people"]).await;
    assert_eq!(
        first["stats"]["objects_verified"],
        expected.len() as i64,
        "{first}"
    );
    // Only the old version below people[0]'s current one (`glue_lake` puts it twice) is
    // deleted: find listed it, and it is not the key's current version.
    assert_eq!(first["stats"]["old_versions_matched"], 1, "{first}");
    assert_eq!(first["stats"]["versions_deleted"], 1, "{first}");
    assert_eq!(
        first["stats"]["cleanup_failures"],
        expected.len() as i64,
        "{first}"
    );
    // The originals are current again and hold the rows: every subject stays queued.
    let queued = app.get("/v1/queue?page_size=1000").await;
    assert_eq!(queued.body["matches"].as_array().unwrap().len(), 10);
    for o in &people {
        let key = format!("people/{}", o.key);
        if expected.contains_key(&key) {
            assert_ne!(
                read_ids(&s3, &bucket, &key).await,
                kept_ids(o, &matches),
                "{key}"
            );
        }
    }
    // The next job erases them again and cleans up for good.
    let second = run_job(&app, &["people"]).await;
    assert_eq!(
        second["stats"]["objects_rewritten"],
        expected.len() as i64,
        "{second}"
    );
    assert_eq!(second["stats"]["cleanup_failures"], 0, "{second}");
    for o in &people {
        let key = format!("people/{}", o.key);
        assert_eq!(
            read_ids(&s3, &bucket, &key).await,
            kept_ids(o, &matches),
            "{key}"
        );
        if expected.contains_key(&key) {
            assert_eq!(versions(&s3, &bucket, &key).await.len(), 1, "{key}");
        }
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn old_versions_an_earlier_job_could_not_delete_are_deleted_by_the_next_job(db: PgPool) {
    let GlueLake {
        app,
        s3,
        bucket,
        people,
        ..
    } = glue_lake(db.clone(), faulty(&db, Fault::DenyDeletesInFirstJob)).await;
    let (items, matches) = full_matrix();
    queue(&app, items).await;
    let expected = expected_people(&matches, "people/");
    let first = run_job(&app, &["people"]).await;
    assert_eq!(
        first["stats"]["objects_rewritten"],
        expected.len() as i64,
        "{first}"
    );
    // Each rewritten object's cleanup fails, and so does that of the old version below
    // people[0]'s current one (`glue_lake` puts it twice).
    assert_eq!(first["stats"]["old_versions_matched"], 1, "{first}");
    assert_eq!(
        first["stats"]["cleanup_failures"],
        expected.len() as i64 + 1,
        "{first}"
    );
    for key in expected.keys() {
        assert!(
            versions(&s3, &bucket, key).await.len() > 1,
            "{key} keeps its old versions"
        );
    }
    // A failed cleanup keeps the items: old versions still hold their rows.
    let queued = app.get("/v1/queue?page_size=1000").await;
    assert_eq!(queued.body["matches"].as_array().unwrap().len(), 10);

    // The next job finds no rows in the current versions; it lists the old versions the
    // first job could not delete, finds the rows in them and deletes them (as its own old
    // versions: none is adopted as an earlier job's leftover).
    let second = run_job(&app, &["people"]).await;
    assert_eq!(second["stats"]["objects_rewritten"], 0, "{second}");
    let old = expected.len() as i64 + 1;
    assert_eq!(second["stats"]["old_versions_matched"], old, "{second}");
    assert_eq!(second["stats"]["versions_deleted"], old, "{second}");
    let job = second["job_id"].as_str().unwrap();
    let objects = app
        .get(&format!("/v1/jobs/{job}/objects?page_size=1000"))
        .await;
    let old_keys: std::collections::BTreeSet<&str> = objects.body["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["noncurrent"] == true)
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    let keys: std::collections::BTreeSet<&str> = expected.keys().map(String::as_str).collect();
    assert_eq!(old_keys, keys, "{}", objects.body);
    for o in &people {
        let key = format!("people/{}", o.key);
        if expected.contains_key(&key) {
            assert_eq!(versions(&s3, &bucket, &key).await.len(), 1, "{key}");
        }
        assert_eq!(
            read_ids(&s3, &bucket, &key).await,
            kept_ids(o, &matches),
            "{key}"
        );
    }
    // A third job finds nothing left behind.
    let third = run_job(&app, &["people"]).await;
    assert_eq!(third["stats"]["versions_deleted"], 0, "{third}");
}
