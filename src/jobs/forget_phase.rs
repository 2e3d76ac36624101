//! Forget, verify and cleanup: one task per object and phase.
//!
//! `forget.object`: download the version find recorded, rewrite it without the matching
//! rows (`lakefile`), upload it with `If-Match: <etag read>` keeping the object's headers,
//! metadata, tags, storage class and encryption. A 412 (someone wrote the object since)
//! or a vanished version means re-reading the current version and trying again (bounded).
//! The new version carries user metadata `lethe-job-object: <job>/<object>`, and the
//! rewrite's figures are saved before the upload: a retry after a crash between the
//! upload and its record recognises its own version and records it, never rewriting twice.
//! `verify.object`: re-read the new version: the row count must be rows before minus rows
//! removed, and no match may remain. `cleanup.object`: delete the versions older than the
//! one Lethe wrote (never it, never a newer one), when the mapper says so.
//!
//! Invariants: as in `find_phase`, each task's record is one transaction fenced by its
//! lease; a failure fails its object only, leaving the object as it was.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::job::{self as db, JobObject, JobStats, MapperSnapshot, ObjectUpdate};
use crate::domain::data_mapper::Format;
use crate::jobs::Engine;
use crate::jobs::find::{ObjectFindError, ObjectRef, cpu_bound, find_jsonl, find_parquet};
use crate::jobs::find_phase::{SetCache, db_error};
use crate::jobs::lifecycle;
use crate::jobs::tasks::{self, Task, TaskError, TaskHandler};
use crate::lakefile::match_set::MatchSet;
use crate::lakefile::{jsonl_find, jsonl_forget, parquet_forget};
use crate::storage::{ObjectStore, StorageError};

pub const FORGET_OBJECT: &str = "forget.object";
pub const VERIFY_OBJECT: &str = "verify.object";
pub const CLEANUP_OBJECT: &str = "cleanup.object";
/// User metadata key naming the job object a version was written for.
pub const MARKER: &str = "lethe-job-object";
/// Re-reads of an object that keeps changing under a rewrite, before it fails.
const MAX_REFINDS: usize = 3;

/// The payload of every per-object task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectTask {
    pub job_id: Uuid,
    pub job_object_id: i64,
}

fn payload(task: &Task) -> Result<ObjectTask, TaskError> {
    serde_json::from_value(task.payload.clone())
        .map_err(|e| TaskError::Fatal(format!("bad payload: {e}")))
}

fn store_for(engine: &Engine, bucket: &str) -> Arc<dyn ObjectStore> {
    if bucket.is_empty() {
        engine.stores.file.clone()
    } else {
        engine.stores.s3.clone()
    }
}

fn gz(key: &str) -> bool {
    key.ends_with(".gz")
}

/// What a rewrite of one object came to.
#[derive(Debug, Clone, Default)]
struct Figures {
    rows_before: u64,
    rows_removed: u64,
    row_groups_rewritten: usize,
    row_groups_copied: usize,
}

/// Rewrites `src` to `dst` without the matching rows (all rows when `every_row`).
fn rewrite(
    format: Format,
    key: &str,
    src: &Path,
    dst: &Path,
    columns: &[String],
    ids: &MatchSet,
    every_row: bool,
) -> Result<Figures, String> {
    match format {
        Format::Parquet => {
            let (r, _) = parquet_forget::forget_file(src, dst, columns, ids, every_row)
                .map_err(|e| e.to_string())?;
            Ok(Figures {
                rows_before: r.rows_before,
                rows_removed: r.rows_removed,
                row_groups_rewritten: r.row_groups_rewritten,
                row_groups_copied: r.row_groups_copied,
            })
        }
        Format::Json => {
            let out =
                std::io::BufWriter::new(std::fs::File::create(dst).map_err(|e| e.to_string())?);
            let file = std::fs::File::open(src).map_err(|e| e.to_string())?;
            let input: Box<dyn std::io::BufRead> = if gz(key) {
                Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
                    file,
                )))
            } else {
                Box::new(std::io::BufReader::new(file))
            };
            let everything = MatchSet::default();
            let (ids, drop_all) = if every_row {
                (&everything, true)
            } else {
                (ids, false)
            };
            let r = if gz(key) {
                let mut encoder =
                    flate2::write::GzEncoder::new(out, flate2::Compression::default());
                let r = forget_json(input, &mut encoder, columns, ids, drop_all)?;
                encoder.finish().map_err(|e| e.to_string())?;
                r
            } else {
                forget_json(input, out, columns, ids, drop_all)?
            };
            Ok(Figures {
                rows_before: r.lines_before,
                rows_removed: r.lines_removed,
                ..Figures::default()
            })
        }
    }
}

fn forget_json(
    input: Box<dyn std::io::BufRead>,
    out: impl std::io::Write,
    columns: &[String],
    ids: &MatchSet,
    drop_all: bool,
) -> Result<jsonl_forget::JsonForgetReport, String> {
    if drop_all {
        let mut scanner = jsonl_find::LineScanner::new(columns, ids);
        let mut input = input;
        std::io::copy(&mut input, &mut scanner).map_err(|e| e.to_string())?;
        let r = scanner.finish().map_err(|e| e.to_string())?;
        drop(out);
        return Ok(jsonl_forget::JsonForgetReport {
            lines_before: r.lines_total,
            lines_removed: r.lines_total,
        });
    }
    jsonl_forget::forget_lines(input, out, columns, ids).map_err(|e| e.to_string())
}

/// Records an object's outcome with its stats and event, fenced by the task's lease.
async fn record(
    db: &PgPool,
    task: &Task,
    job_id: Uuid,
    object: &JobObject,
    update: &ObjectUpdate<'_>,
    stats: &JobStats,
    event: Option<(&str, &str, String)>,
) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    if !tasks::mark_recorded(&mut *tx, task).await? {
        return Ok(());
    }
    db::update_object(&mut *tx, object.job_object_id, update).await?;
    db::add_stats(&mut *tx, job_id, stats).await?;
    if let Some((level, kind, message)) = event {
        db::insert_event(
            &mut *tx,
            job_id,
            level,
            kind,
            &message,
            json!({"data_mapper_id": object.data_mapper_id, "key": object.key}),
        )
        .await?;
    }
    tx.commit().await
}

/// What every per-object task loads first.
struct Loaded {
    p: ObjectTask,
    object: JobObject,
    mapper: Arc<MapperSnapshot>,
    ids: Arc<MatchSet>,
    every_row: bool,
    store: Arc<dyn ObjectStore>,
}

async fn load(
    engine: &Engine,
    cache: &SetCache,
    task: &Task,
    state: &str,
) -> Result<Option<Loaded>, TaskError> {
    let p = payload(task)?;
    let db = &engine.db;
    if !lifecycle::is_active(db, p.job_id).await.map_err(db_error)? {
        return Ok(None);
    }
    let object = db::get_object(db, p.job_id, p.job_object_id)
        .await
        .map_err(db_error)?;
    if object.forget_state != state {
        return Ok(None);
    }
    tracing::Span::current().record("object.key", object.key.as_str());
    let keys = object.partition_keys.clone().unwrap_or_default();
    let (sets, mapper) = cache
        .get(db, p.job_id, &object.data_mapper_id, &keys)
        .await?;
    let (ids, every_row) = sets.for_partition(object.partition_values.as_deref());
    let store = store_for(engine, &object.bucket);
    Ok(Some(Loaded {
        p,
        object,
        mapper,
        ids,
        every_row,
        store,
    }))
}

fn failed_update(error: &str) -> ObjectUpdate<'_> {
    ObjectUpdate {
        forget_state: Some("failed"),
        forget_error: Some(error),
        ..ObjectUpdate::default()
    }
}

/// Rewrites one object.
pub struct ForgetObject {
    pub engine: Engine,
    cache: SetCache,
}

impl ForgetObject {
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            cache: SetCache::default(),
        }
    }

    async fn fail(&self, task: &Task, l: &Loaded, error: String) -> Result<(), TaskError> {
        tracing::warn!(job.id = %l.p.job_id, object.key = %l.object.key, error = %error, "forget failed");
        let stats = JobStats {
            objects_forget_failed: 1,
            ..JobStats::default()
        };
        let message = format!("cannot rewrite {}: {error}", l.object.key);
        record(
            &self.engine.db,
            task,
            l.p.job_id,
            &l.object,
            &failed_update(&error),
            &stats,
            Some(("error", "object_failed", message)),
        )
        .await
        .map_err(db_error)
    }

    async fn written(
        &self,
        task: &Task,
        l: &Loaded,
        version: Option<&str>,
        etag: Option<&str>,
        object: &JobObject,
    ) -> Result<(), TaskError> {
        let stats = JobStats {
            objects_rewritten: 1,
            rows_removed: object.rows_removed.unwrap_or(0),
            bytes_written: object.size_after.unwrap_or(0),
            ..JobStats::default()
        };
        let update = ObjectUpdate {
            forget_state: Some("written"),
            new_version_id: version,
            new_etag: etag,
            ..ObjectUpdate::default()
        };
        let message = format!(
            "rewrote {} without {} row(s)",
            l.object.key,
            object.rows_removed.unwrap_or(0)
        );
        record(
            &self.engine.db,
            task,
            l.p.job_id,
            &l.object,
            &update,
            &stats,
            Some(("info", "object_rewritten", message)),
        )
        .await
        .map_err(db_error)
    }

    /// One attempt: Ok(true) when the object is settled, Ok(false) to re-read and retry.
    async fn attempt(
        &self,
        task: &Task,
        l: &Loaded,
        pinned: bool,
        marker: &str,
        threshold: u64,
    ) -> Result<bool, TaskError> {
        let (db, o) = (&self.engine.db, &l.object);
        let dir = tempfile::tempdir().map_err(|e| TaskError::Retryable(e.to_string()))?;
        let (src, dst) = (dir.path().join("source"), dir.path().join("rewritten"));
        let version = if pinned {
            o.version_id.as_deref()
        } else {
            None
        };
        let fetched = match l.store.download(&o.bucket, &o.key, version, &src).await {
            Ok(f) => f,
            Err(StorageError::NotFound) if l.mapper.ignore_object_not_found => {
                let stats = JobStats {
                    objects_unchanged: 1,
                    ..JobStats::default()
                };
                let update = ObjectUpdate {
                    forget_state: Some("skipped"),
                    ..ObjectUpdate::default()
                };
                let message = format!("skipped {}: not found (ignore_object_not_found)", o.key);
                record(
                    db,
                    task,
                    l.p.job_id,
                    o,
                    &update,
                    &stats,
                    Some(("warning", "object_skipped", message)),
                )
                .await
                .map_err(db_error)?;
                return Ok(true);
            }
            Err(StorageError::NotFound) if pinned => return Ok(false),
            Err(StorageError::Unavailable(e)) => return Err(TaskError::Retryable(e)),
            Err(e) => {
                self.fail(task, l, e.to_string()).await?;
                return Ok(true);
            }
        };
        let Some(etag) = fetched.etag.clone() else {
            self.fail(task, l, "the store gave no etag to write against".into())
                .await?;
            return Ok(true);
        };
        let (format, key, columns, ids, every) = (
            l.mapper.format,
            o.key.clone(),
            l.mapper.columns.clone(),
            l.ids.clone(),
            l.every_row,
        );
        let figures = match cpu_bound(|| rewrite(format, &key, &src, &dst, &columns, &ids, every)) {
            Ok(f) => f,
            Err(e) => {
                self.fail(task, l, e).await?;
                return Ok(true);
            }
        };
        let size_after = std::fs::metadata(&dst).map(|m| m.len()).unwrap_or(0) as i64;
        let figures_update = ObjectUpdate {
            version_id: Some(fetched.version_id.as_deref()),
            etag: Some(&etag),
            rows_total: Some(figures.rows_before as i64),
            rows_removed: Some(figures.rows_removed as i64),
            rows_after: Some((figures.rows_before - figures.rows_removed) as i64),
            size_after: Some(size_after),
            row_groups_rewritten: Some(figures.row_groups_rewritten as i32),
            row_groups_copied: Some(figures.row_groups_copied as i32),
            ..ObjectUpdate::default()
        };
        if figures.rows_removed == 0 {
            let stats = JobStats {
                objects_unchanged: 1,
                ..JobStats::default()
            };
            let update = ObjectUpdate {
                forget_state: Some("unchanged"),
                ..figures_update
            };
            let message = format!("{} holds no matching row any more; left as it is", o.key);
            record(
                db,
                task,
                l.p.job_id,
                o,
                &update,
                &stats,
                Some(("info", "object_unchanged", message)),
            )
            .await
            .map_err(db_error)?;
            return Ok(true);
        }
        // Saved before the upload: a retry after a crash right after it needs them.
        db::update_object(db, o.job_object_id, &figures_update)
            .await
            .map_err(db_error)?;
        let mut attributes = fetched.attributes.clone();
        attributes
            .metadata
            .insert(MARKER.to_owned(), marker.to_owned());
        match l
            .store
            .upload(&o.bucket, &o.key, &dst, &etag, &attributes, threshold)
            .await
        {
            Ok(w) => {
                let saved = db::get_object(db, l.p.job_id, o.job_object_id)
                    .await
                    .map_err(db_error)?;
                self.written(task, l, w.version_id.as_deref(), w.etag.as_deref(), &saved)
                    .await?;
                Ok(true)
            }
            Err(StorageError::PreconditionFailed) => {
                db::insert_event(
                    db,
                    l.p.job_id,
                    "warning",
                    "object_changed",
                    &format!("{} changed while it was rewritten; reading it again", o.key),
                    json!({"key": o.key}),
                )
                .await
                .map_err(db_error)?;
                Ok(false)
            }
            Err(StorageError::Unavailable(e)) => Err(TaskError::Retryable(e)),
            Err(e) => {
                self.fail(task, l, e.to_string()).await?;
                Ok(true)
            }
        }
    }
}

async fn multipart_threshold(db: &PgPool, job_id: Uuid) -> sqlx::Result<u64> {
    let n: Option<i64> = sqlx::query_scalar(
        "select (settings->>'multipart_threshold_bytes')::bigint from job where job_id = $1",
    )
    .bind(job_id)
    .fetch_one(db)
    .await?;
    Ok(n.unwrap_or(100 * 1024 * 1024).max(5 * 1024 * 1024) as u64)
}

#[async_trait]
impl TaskHandler for ForgetObject {
    async fn run(&self, task: &Task) -> Result<(), TaskError> {
        let Some(l) = load(&self.engine, &self.cache, task, "found").await? else {
            return Ok(());
        };
        let db = &self.engine.db;
        let marker = format!("{}/{}", l.p.job_id, l.p.job_object_id);
        // A previous attempt may have uploaded and died before recording it.
        if l.object.rows_removed.is_some() {
            let head = l
                .store
                .head_with_metadata(&l.object.bucket, &l.object.key)
                .await;
            match head {
                Ok((current, meta)) if meta.get(MARKER) == Some(&marker) => {
                    return self
                        .written(
                            task,
                            &l,
                            current.version_id.as_deref(),
                            current.etag.as_deref(),
                            &l.object,
                        )
                        .await;
                }
                Ok(_) | Err(StorageError::NotFound) => {}
                Err(e) => return Err(TaskError::Retryable(e.to_string())),
            }
        }
        let threshold = multipart_threshold(db, l.p.job_id)
            .await
            .map_err(db_error)?;
        for attempt in 0..=MAX_REFINDS {
            if self
                .attempt(task, &l, attempt == 0, &marker, threshold)
                .await?
            {
                return Ok(());
            }
        }
        self.fail(
            task,
            &l,
            format!(
                "the object changed {} times while it was rewritten",
                MAX_REFINDS + 1
            ),
        )
        .await
    }
}

/// Re-reads a rewritten object's new version.
pub struct VerifyObject {
    pub engine: Engine,
    cache: SetCache,
}

impl VerifyObject {
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            cache: SetCache::default(),
        }
    }
}

#[async_trait]
impl TaskHandler for VerifyObject {
    async fn run(&self, task: &Task) -> Result<(), TaskError> {
        let Some(l) = load(&self.engine, &self.cache, task, "written").await? else {
            return Ok(());
        };
        let o = &l.object;
        // Ranged reads of the new version, as find reads: footer row count + match columns.
        let object = ObjectRef {
            bucket: &o.bucket,
            key: &o.key,
            version_id: o.new_version_id.as_deref(),
            size: o.size_after.unwrap_or(0).max(0) as u64,
        };
        let columns = &l.mapper.columns;
        let found = match l.mapper.format {
            Format::Parquet => find_parquet(l.store.as_ref(), &object, columns, &l.ids)
                .await
                .map(|(r, _)| (r.rows_total, r.rows_matched)),
            Format::Json => find_jsonl(l.store.as_ref(), &object, columns, &l.ids)
                .await
                .map(|r| (r.lines_total, r.lines_matched)),
        };
        let outcome = match found {
            Err(ObjectFindError::Storage(StorageError::Unavailable(e))) => {
                return Err(TaskError::Retryable(e));
            }
            Err(e) => Err(format!("cannot read the new version: {e}")),
            Ok((rows, matched)) => {
                let expected = o.rows_after.unwrap_or(-1);
                if rows as i64 != expected {
                    Err(format!(
                        "the new version has {rows} rows, expected {expected}"
                    ))
                } else if matched > 0 || (l.every_row && rows > 0) {
                    Err(format!(
                        "{matched} matching row(s) remain in the new version"
                    ))
                } else {
                    Ok(())
                }
            }
        };
        let (update, stats, event) = match &outcome {
            Ok(()) => (
                ObjectUpdate {
                    forget_state: Some("verified"),
                    ..ObjectUpdate::default()
                },
                JobStats {
                    objects_verified: 1,
                    ..JobStats::default()
                },
                None,
            ),
            Err(e) => (
                ObjectUpdate {
                    forget_state: Some("verify_failed"),
                    forget_error: Some(e),
                    ..ObjectUpdate::default()
                },
                JobStats {
                    objects_verify_failed: 1,
                    ..JobStats::default()
                },
                Some((
                    "error",
                    "verify_failed",
                    format!(
                        "VERIFY FAILED for {}: {e}; its old versions are kept",
                        o.key
                    ),
                )),
            ),
        };
        if let Err(e) = &outcome {
            tracing::error!(job.id = %l.p.job_id, object.key = %o.key, error = %e, "verification failed");
        }
        record(&self.engine.db, task, l.p.job_id, o, &update, &stats, event)
            .await
            .map_err(db_error)
    }
}

/// Deletes the versions older than the one Lethe wrote.
pub struct CleanupObject {
    pub engine: Engine,
    cache: SetCache,
}

impl CleanupObject {
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            cache: SetCache::default(),
        }
    }
}

#[async_trait]
impl TaskHandler for CleanupObject {
    async fn run(&self, task: &Task) -> Result<(), TaskError> {
        let Some(l) = load(&self.engine, &self.cache, task, "verified").await? else {
            return Ok(());
        };
        let o = &l.object;
        if o.cleanup_state.is_some() {
            return Ok(());
        }
        let db = &self.engine.db;
        if !l.mapper.delete_old_versions {
            let update = ObjectUpdate {
                cleanup_state: Some("skipped"),
                ..ObjectUpdate::default()
            };
            return record(db, task, l.p.job_id, o, &update, &JobStats::default(), None)
                .await
                .map_err(db_error);
        }
        let versions = match l.store.list_versions(&o.bucket, &o.key).await {
            Ok(v) => v,
            Err(StorageError::Unavailable(e)) => return Err(TaskError::Retryable(e)),
            Err(e) => {
                return self.cleanup_failed(task, &l, &[], &e.to_string()).await;
            }
        };
        let older: Vec<String> = match o
            .new_version_id
            .as_deref()
            .and_then(|ours| versions.iter().position(|v| v.version_id == ours))
        {
            Some(pos) => versions[pos + 1..]
                .iter()
                .map(|v| v.version_id.clone())
                .collect(),
            None => Vec::new(),
        };
        // Saved before deleting: a retry after a crash mid-way still reports every version
        // deleted (deleting a version that is already gone succeeds).
        let mut older = older;
        for saved in &o.versions_deleted {
            if !older.contains(saved) {
                older.push(saved.clone());
            }
        }
        let pending = ObjectUpdate {
            versions_deleted: Some(&older),
            ..ObjectUpdate::default()
        };
        db::update_object(db, o.job_object_id, &pending)
            .await
            .map_err(db_error)?;
        let mut deleted = Vec::new();
        for version in &older {
            match l.store.delete_version(&o.bucket, &o.key, version).await {
                Ok(()) | Err(StorageError::NotFound) => deleted.push(version.clone()),
                Err(StorageError::Unavailable(e)) if !task.is_last_attempt() => {
                    return Err(TaskError::Retryable(e));
                }
                Err(e) => {
                    return self
                        .cleanup_failed(task, &l, &deleted, &e.to_string())
                        .await;
                }
            }
        }
        let update = ObjectUpdate {
            cleanup_state: Some("done"),
            versions_deleted: Some(&deleted),
            ..ObjectUpdate::default()
        };
        let stats = JobStats {
            versions_deleted: deleted.len() as i64,
            ..JobStats::default()
        };
        let message = format!("deleted {} old version(s) of {}", deleted.len(), o.key);
        record(
            db,
            task,
            l.p.job_id,
            o,
            &update,
            &stats,
            Some(("info", "versions_deleted", message)),
        )
        .await
        .map_err(db_error)
    }
}

impl CleanupObject {
    async fn cleanup_failed(
        &self,
        task: &Task,
        l: &Loaded,
        deleted: &[String],
        error: &str,
    ) -> Result<(), TaskError> {
        let update = ObjectUpdate {
            cleanup_state: Some("failed"),
            versions_deleted: Some(deleted),
            forget_error: Some(error),
            ..ObjectUpdate::default()
        };
        let stats = JobStats {
            versions_deleted: deleted.len() as i64,
            cleanup_failures: 1,
            ..JobStats::default()
        };
        let message = format!(
            "cannot delete the old versions of {}: {error}",
            l.object.key
        );
        record(
            &self.engine.db,
            task,
            l.p.job_id,
            &l.object,
            &update,
            &stats,
            Some(("error", "cleanup_failed", message)),
        )
        .await
        .map_err(db_error)
    }
}
