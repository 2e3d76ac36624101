//! `forget.object`: download the version find recorded, rewrite it without the matching
//! rows (`lakefile`, with its full pre-upload check), upload it with `If-Match: <etag
//! read>` keeping the object's headers, metadata, tags, storage class and encryption (a
//! version read from GLACIER or DEEP_ARCHIVE, so restored, is written as STANDARD). A
//! 412 (someone wrote the object since) or a vanished version means re-reading the
//! current version and trying again (bounded). The new version carries user metadata
//! `lethe-job-object: <job>/<object>`, and the rewrite's figures are saved before the
//! upload: a retry after a crash between the upload and its record recognises its own
//! version and records it, never rewriting twice. The record of a rewritten object
//! enqueues its `verify.object`.
//!
//! A table format's data file (Apache Iceberg) is immutable and named by the table's
//! metadata: its rewrite goes to a new key beside it (`new_file_key`, `If-None-Match: *`,
//! never over anything) and is recorded `written` without a verify: the mapper's commit
//! (`jobs::table_commit`) makes the new files the table's and enqueues their verification.
//!
//! The downloaded version and its rewrite live in a fresh directory of the worker's
//! temporary space (removed when the attempt ends, whatever its outcome), each byte
//! reserved in its budget. Storage that stays unavailable (throttling, 5xx) after the SDK's
//! retries and the task's, and temporary space that runs out, fail the object (its
//! subjects stay queued), never the job.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::deletes::{DeletesError, table_deletes};
use super::rewrite::rewrite;
use super::temp::{Exhausted, Reservation, TempSpace};
use super::verify::Verify;
use super::{Loaded, MARKER, ObjectTask, Record, has_version, load};
use crate::db::job::JobStats;
use crate::db::job_object::{self as objects, JobObject, ObjectUpdate};
use crate::db::{job_match, server_secret};
use crate::domain::job::{EventLevel, ForgetState};
use crate::domain::match_id::match_hash;
use crate::jobs::finalize::{REPORT_KEY, random_key};
use crate::jobs::find::cpu_bound;
use crate::jobs::lifecycle::event;
use crate::jobs::tasks::{Task, TaskError};
use crate::jobs::{Context, JobTask, prepare};
use crate::lakefile::format::Matching;
use crate::storage::{Fetched, NO_TEMP_SPACE, Precondition, StorageError, restore_completed};

/// Why a version without a version id is not rewritten.
const UNVERSIONED: &str = "bucket versioning is not enabled: this version has no version id (versioning never enabled, or suspended when it was written), so a rewrite would replace the only copy; set allow_unversioned on the data mapper to accept that";

/// Re-reads of an object that keeps changing under a rewrite, before it fails.
const MAX_REFINDS: usize = 3;

/// Rewrites one object without its matching rows.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Forget(pub ObjectTask);

#[async_trait]
impl JobTask for Forget {
    const KIND: &'static str = "forget.object";
    const MAX_ATTEMPTS: i32 = super::MAX_ATTEMPTS;

    fn job_id(&self) -> Uuid {
        self.0.job_id
    }

    async fn run(&self, ctx: &Context, task: &Task) -> Result<(), TaskError> {
        let Some(l) = load(ctx, self.0, ForgetState::Found).await? else {
            return Ok(());
        };
        let marker = l.marker();
        // A previous attempt may have uploaded and died before recording it.
        if l.object.rows_removed.is_some() {
            match l.current_if_marked(MARKER).await {
                Ok(Some(current)) => {
                    let (version, etag) = (current.version_id.as_deref(), current.etag.as_deref());
                    return written(ctx, task, &l, version, etag, &l.object, None).await;
                }
                Ok(None) => {}
                Err(e) => return Err(TaskError::Retryable(e.to_string())),
            }
        }
        let threshold = ctx.settings(l.p.job_id).await?.multipart_threshold();
        for n in 0..=MAX_REFINDS {
            if attempt(ctx, task, &l, n == 0, &marker, threshold).await? == Settled::Yes {
                return Ok(());
            }
        }
        let error = format!(
            "the object changed {} times while it was rewritten",
            MAX_REFINDS + 1
        );
        fail(ctx, task, &l, error).await
    }
}

/// Whether an attempt settled the object, or it must be read again.
#[derive(Debug, PartialEq, Eq)]
enum Settled {
    Yes,
    ReadAgain,
}

async fn fail(ctx: &Context, task: &Task, l: &Loaded, error: String) -> Result<(), TaskError> {
    tracing::warn!(job.id = %l.p.job_id, object.key = %l.object.key, error = %error, "forget failed");
    let update = ObjectUpdate {
        forget_state: Some(ForgetState::Failed),
        forget_error: Some(&error),
        ..ObjectUpdate::default()
    };
    let stats = JobStats {
        objects_forget_failed: 1,
        ..JobStats::default()
    };
    let message = format!("cannot rewrite {}: {error}", l.object.key);
    let r = Record::new(update)
        .stats(stats)
        .event(EventLevel::Error, "object_failed", message);
    l.record(ctx, task, r).await
}

/// Storage unavailable after the SDK's retries (throttling, 5xx): the task runs again
/// while attempts remain; on its last, the object fails with why (its subjects stay
/// queued), not the job.
async fn unavailable(
    ctx: &Context,
    task: &Task,
    l: &Loaded,
    e: String,
) -> Result<Settled, TaskError> {
    if !task.is_last_attempt() {
        return Err(TaskError::Retryable(e));
    }
    let error = format!("storage unavailable after every retry: {e}");
    fail(ctx, task, l, error).await?;
    Ok(Settled::Yes)
}

/// Temporary space ran out (`error`) for an object of `size` bytes. Another worker of the
/// process may be holding it: the task runs again while attempts remain, if the whole
/// budget could hold the download and its rewrite (twice the size); else the object
/// fails, its subjects kept.
async fn no_space(
    ctx: &Context,
    task: &Task,
    l: &Loaded,
    size: u64,
    error: String,
) -> Result<Settled, TaskError> {
    if ctx.engine.temp.could_hold(size.saturating_mul(2)) && !task.is_last_attempt() {
        return Err(TaskError::Retryable(error));
    }
    fail(ctx, task, l, error).await?;
    Ok(Settled::Yes)
}

/// Records the new version and enqueues its verification.
async fn written(
    ctx: &Context,
    task: &Task,
    l: &Loaded,
    version: Option<&str>,
    etag: Option<&str>,
    saved: &JobObject,
    note: Option<&str>,
) -> Result<(), TaskError> {
    let removed = saved.rows_removed.unwrap_or(0);
    let stats = JobStats {
        objects_rewritten: 1,
        rows_removed: removed,
        bytes_written: saved.size_after.unwrap_or(0),
        ..JobStats::default()
    };
    let new_key = l.write_key();
    let in_table = l.in_table_format();
    let update = ObjectUpdate {
        forget_state: Some(ForgetState::Written),
        new_version_id: version,
        new_etag: etag,
        new_key: in_table.then_some(new_key.as_str()),
        ..ObjectUpdate::default()
    };
    let mut message = match in_table {
        false => format!("rewrote {} without {removed} row(s)", l.object.key),
        true => format!(
            "rewrote {} without {removed} row(s) to the new data file {new_key} (the table's commit makes it the table's)",
            l.object.key
        ),
    };
    if let Some(note) = note {
        message = format!("{message}, {note}");
    }
    let r = Record::new(update)
        .stats(stats)
        .event(EventLevel::Info, "object_rewritten", message);
    // A table format's rewrite is verified once the mapper's commit made it the table's.
    let r = match in_table {
        true => r,
        false => r.then(prepare(&Verify(l.p))?),
    };
    l.record(ctx, task, r).await
}

/// Records an object that needs no rewrite (`unchanged`, or `skipped` when gone).
async fn left_as_is(
    ctx: &Context,
    task: &Task,
    l: &Loaded,
    update: ObjectUpdate<'_>,
    event: (EventLevel, &'static str, String),
) -> Result<Settled, TaskError> {
    let stats = JobStats {
        objects_unchanged: 1,
        ..JobStats::default()
    };
    let r = Record::new(update)
        .stats(stats)
        .event(event.0, event.1, event.2);
    l.record(ctx, task, r).await?;
    Ok(Settled::Yes)
}

/// Downloads the version to rewrite (the recorded one when `pinned`, else the current).
async fn download(
    ctx: &Context,
    task: &Task,
    l: &Loaded,
    pinned: bool,
    src: &Path,
) -> Result<Result<(Fetched, String), Settled>, TaskError> {
    let o = &l.object;
    let version = if pinned {
        o.version_id.as_deref()
    } else {
        None
    };
    let fetched = match l.store.download(&o.bucket, &o.key, version, src).await {
        Ok(f) => f,
        // The version find read is gone: a newer one may hold the rows, read the current.
        Err(StorageError::NotFound) if pinned => return Ok(Err(Settled::ReadAgain)),
        Err(StorageError::NotFound) if l.mapper.ignore_object_not_found => {
            let update = ObjectUpdate {
                forget_state: Some(ForgetState::Skipped),
                ..ObjectUpdate::default()
            };
            let message = format!("skipped {}: not found (ignore_object_not_found)", o.key);
            let event = (EventLevel::Warning, "object_skipped", message);
            return Ok(Err(left_as_is(ctx, task, l, update, event).await?));
        }
        Err(StorageError::Unavailable(e)) => return Ok(Err(unavailable(ctx, task, l, e).await?)),
        Err(e) if e.to_string().contains(NO_TEMP_SPACE) => {
            let size = l.object.size_bytes.max(0) as u64;
            return Ok(Err(no_space(ctx, task, l, size, e.to_string()).await?));
        }
        Err(e) => {
            fail(ctx, task, l, e.to_string()).await?;
            return Ok(Err(Settled::Yes));
        }
    };
    // A table format's rewrite is a new file: the old one stays until the purge.
    let replaces = !l.in_table_format();
    if replaces && !l.mapper.allow_unversioned && !has_version(fetched.version_id.as_deref()) {
        fail(ctx, task, l, UNVERSIONED.to_owned()).await?;
        return Ok(Err(Settled::Yes));
    }
    match fetched.etag.clone() {
        Some(etag) => Ok(Ok((fetched, etag))),
        None => {
            fail(
                ctx,
                task,
                l,
                "the store gave no etag to write against".into(),
            )
            .await?;
            Ok(Err(Settled::Yes))
        }
    }
}

/// One attempt: download, rewrite, upload against the etag read.
async fn attempt(
    ctx: &Context,
    task: &Task,
    l: &Loaded,
    pinned: bool,
    marker: &str,
    threshold: u64,
) -> Result<Settled, TaskError> {
    let o = &l.object;
    let size = o.size_bytes.max(0) as u64;
    let mut scratch = match Scratch::new(&ctx.engine.temp, size)? {
        Ok(scratch) => scratch,
        Err(e) => return no_space(ctx, task, l, size, e.to_string()).await,
    };
    let (src, dst) = (scratch.path("source"), scratch.path("rewritten"));
    let (fetched, etag) = match download(ctx, task, l, pinned, &src).await? {
        Ok(f) => f,
        Err(settled) => return Ok(settled),
    };
    // A version larger than the one find saw.
    if let Err(e) = scratch.source.grow_to(fetched.size) {
        return no_space(ctx, task, l, fetched.size, e.to_string()).await;
    }
    if is_ours(&fetched.attributes.metadata, marker) {
        // The current version is this object's own rewrite: an earlier attempt's upload
        // landed although its answer was lost. Recorded as written, so that verify and
        // cleanup run (rewriting it again would find nothing and keep the old versions).
        let (version, etag) = (fetched.version_id.as_deref(), fetched.etag.as_deref());
        return own_version(ctx, task, l, version, etag, None).await;
    }
    let deletes = match table_deletes(ctx, l, (&src, scratch.dir.path())).await {
        Ok(deletes) => deletes,
        Err(DeletesError::Unavailable(e)) => return unavailable(ctx, task, l, e).await,
        Err(DeletesError::Failed(e)) => {
            fail(ctx, task, l, e).await?;
            return Ok(Settled::Yes);
        }
    };
    let out = (dst.as_path(), &mut scratch.output);
    let source = (src.as_path(), fetched.sha256.as_deref());
    let rewritten = rewrite_local(l, source, out, &deletes.positions);
    let figures = match rewritten {
        Ok(f) => f,
        Err(e) if e.contains(NO_TEMP_SPACE) => {
            return no_space(ctx, task, l, fetched.size, e).await;
        }
        Err(e) => {
            fail(ctx, task, l, e).await?;
            return Ok(Settled::Yes);
        }
    };
    let size_after = std::fs::metadata(&dst).map(|m| m.len()).unwrap_or(0) as i64;
    let figures_update = ObjectUpdate {
        deletes_applied: Some(deletes.files.as_slice()),
        ..figures.update(&fetched, size_after)
    };
    if figures.rows_removed == 0 {
        return nothing_removed(ctx, task, l, &fetched, figures_update).await;
    }
    if replaced_since_find(o, &fetched)
        && let Err(e) = recount(ctx, l, &fetched).await?
    {
        fail(ctx, task, l, e).await?;
        return Ok(Settled::Yes);
    }
    // Saved before the upload: a retry after a crash right after it needs them.
    objects::update(&ctx.engine.db, o.job_object_id, &figures_update).await?;
    let upload = Upload {
        file: &dst,
        fetched: &fetched,
        precondition: match l.in_table_format() {
            true => Precondition::Absent,
            false => Precondition::Match(&etag),
        },
        marker,
        threshold,
    };
    upload.run(ctx, task, l, &figures_update).await
}

/// The downloaded object `src` (with its SHA-256 when the download computed it)
/// rewritten to `dst` without its matches and the rows at `drop_rows` (its table's
/// position deletes), as its format says (on a blocking thread); Err: why not.
fn rewrite_local(
    l: &Loaded,
    src: (&Path, Option<&str>),
    out: (&Path, &mut Reservation),
    drop_rows: &[u64],
) -> Result<super::rewrite::Figures, String> {
    let records = l.sets.records()?;
    let m = Matching {
        columns: &l.mapper.columns,
        ids: &l.ids,
        every_row: l.every_row,
        max_record: l.max_line,
        field_ids: l.mapper.field_ids(),
        drop_rows,
    };
    cpu_bound(|| rewrite(records, &l.object.key, src, out, m))
}

/// Records an object whose current version holds no matching row any more: left as it
/// is (unchanged, or an old version now when another writer replaced the version find
/// read).
async fn nothing_removed(
    ctx: &Context,
    task: &Task,
    l: &Loaded,
    fetched: &Fetched,
    figures_update: ObjectUpdate<'_>,
) -> Result<Settled, TaskError> {
    let o = &l.object;
    // Another writer replaced the version find read (which holds matches) with one
    // that holds none: the version find read is an old version now, for cleanup.
    let (state, message) = if replaced_since_find(o, fetched) {
        let message = format!(
            "{} was replaced since find read it, and its current version holds no matching row: left as it is; the version find read ({}) holds them and is an old version now",
            o.key,
            o.version_id.as_deref().unwrap_or_default()
        );
        (ForgetState::OldVersion, message)
    } else {
        let message = format!("{} holds no matching row any more; left as it is", o.key);
        (ForgetState::Unchanged, message)
    };
    // The rewrite is not uploaded: no version is written, nothing to hash.
    let update = ObjectUpdate {
        forget_state: Some(state),
        sha256_after: None,
        ..figures_update
    };
    let event = (EventLevel::Info, "object_unchanged", message);
    return left_as_is(ctx, task, l, update, event).await;
}

/// One attempt's temporary files: a fresh directory in the worker's temporary space, and
/// the bytes reserved for the download (as find saw the object) and for the rewrite (as
/// it is written).
struct Scratch {
    // First field, dropped first: the files are gone before their bytes are given back.
    dir: tempfile::TempDir,
    source: Reservation,
    output: Reservation,
}

impl Scratch {
    /// Ok(Err(why)) when the download's `size` bytes cannot be reserved.
    fn new(temp: &Arc<TempSpace>, size: u64) -> Result<Result<Self, Exhausted>, TaskError> {
        let source = match temp.reserve(size) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let output = temp
            .reserve(0)
            .map_err(|e| TaskError::Fatal(e.to_string()))?;
        let dir =
            (temp.dir()).map_err(|e| TaskError::Retryable(format!("temporary directory: {e}")))?;
        Ok(Ok(Self {
            dir,
            source,
            output,
        }))
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

/// The storage class a rewrite is written with, and a note when it is not the class of
/// the version read: a GLACIER or DEEP_ARCHIVE version can only have been read restored,
/// and a rewrite in that class would be archived at once, never to be verified, so it is
/// written as STANDARD.
fn rewrite_class(fetched: &Fetched) -> (Option<String>, Option<String>) {
    let class = fetched.attributes.storage_class.clone();
    let Some(archive @ ("GLACIER" | "DEEP_ARCHIVE")) = class.as_deref() else {
        return (class, None);
    };
    let read = if restore_completed(fetched.restore.as_deref()) {
        format!("a restored {archive} object")
    } else {
        format!("stored as {archive}")
    };
    let note = format!("written as STANDARD: the version read was {read}");
    (Some("STANDARD".to_owned()), Some(note))
}

/// Whether the version read is not the one find read (another writer replaced it).
fn replaced_since_find(o: &JobObject, fetched: &Fetched) -> bool {
    has_version(o.version_id.as_deref()) && fetched.version_id.as_deref() != o.version_id.as_deref()
}

/// Counts again, in the version about to be rewritten (newer than the one find read),
/// the rows each queued match has, and records them for the accounts: they are the rows
/// this rewrite removes. Ok(Err(why)) when that version cannot be searched.
async fn recount(
    ctx: &Context,
    l: &Loaded,
    fetched: &Fetched,
) -> Result<Result<(), String>, TaskError> {
    let o = &l.object;
    let Some(version) = fetched.version_id.as_deref() else {
        return Ok(Ok(()));
    };
    let by_match = crate::jobs::find_objects::rows_by_match(
        l.store.as_ref(),
        &o.bucket,
        &o.key,
        (version, fetched.size),
        o.partition_values.clone(),
        (&l.mapper, &l.sets),
        ctx.engine.max_line_bytes,
    )
    .await;
    let by_match = match by_match {
        Ok(rows) => rows,
        Err(e) => return Ok(Err(format!("cannot search the newer version: {e}"))),
    };
    let mut tx = ctx.engine.db.begin().await?;
    let key = server_secret::get_or_create(&mut tx, REPORT_KEY, random_key).await?;
    let rows: Vec<(String, i64)> = by_match
        .iter()
        .map(|(value, rows)| (match_hash(&key, value), *rows as i64))
        .collect();
    job_match::replace_object_matches(&mut tx, l.p.job_id, o.job_object_id, &rows).await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// True when object metadata names this job object (`marker`) as its writer.
fn is_ours(metadata: &std::collections::HashMap<String, String>, marker: &str) -> bool {
    metadata.get(MARKER).map(String::as_str) == Some(marker)
}

/// Records the current version, found to be this job object's own upload, as written
/// (with the figures saved before that upload).
async fn own_version(
    ctx: &Context,
    task: &Task,
    l: &Loaded,
    version: Option<&str>,
    etag: Option<&str>,
    note: Option<&str>,
) -> Result<Settled, TaskError> {
    let saved = objects::get(&ctx.engine.db, l.p.job_id, l.p.job_object_id).await?;
    if saved.rows_removed.is_none() {
        let error = "found its own version without the figures saved before the upload";
        fail(ctx, task, l, error.to_owned()).await?;
        return Ok(Settled::Yes);
    }
    written(ctx, task, l, version, etag, &saved, note).await?;
    Ok(Settled::Yes)
}

/// The upload of a rewritten object, against the etag it was read at.
struct Upload<'a> {
    file: &'a Path,
    fetched: &'a Fetched,
    /// Against the etag read (in place), or no object at the new key (a new file).
    precondition: Precondition<'a>,
    marker: &'a str,
    threshold: u64,
}

impl Upload<'_> {
    /// A 412: someone wrote the object since it was read, or a retried PUT whose first
    /// try landed got it. A HEAD tells which: our own version is recorded as written,
    /// any other means reading the object again.
    async fn after_412(
        &self,
        ctx: &Context,
        task: &Task,
        l: &Loaded,
    ) -> Result<Settled, TaskError> {
        let o = &l.object;
        match l.current_if_marked(MARKER).await {
            Ok(Some(current)) => {
                let (version, etag) = (current.version_id.as_deref(), current.etag.as_deref());
                let note = rewrite_class(self.fetched).1;
                return own_version(ctx, task, l, version, etag, note.as_deref()).await;
            }
            Ok(None) if l.in_table_format() => {
                let error = format!(
                    "another object already has the new data file's name {}: nothing was written",
                    l.write_key()
                );
                fail(ctx, task, l, error).await?;
                return Ok(Settled::Yes);
            }
            Ok(None) => {}
            Err(StorageError::Unavailable(e)) => return unavailable(ctx, task, l, e).await,
            Err(e) => {
                fail(ctx, task, l, e.to_string()).await?;
                return Ok(Settled::Yes);
            }
        }
        let message = format!("{} changed while it was rewritten; reading it again", o.key);
        let details = json!({"key": o.key});
        let db = &ctx.engine.db;
        event(
            db,
            l.p.job_id,
            EventLevel::Warning,
            "object_changed",
            &message,
            details,
        )
        .await?;
        Ok(Settled::ReadAgain)
    }

    async fn run(
        &self,
        ctx: &Context,
        task: &Task,
        l: &Loaded,
        figures: &ObjectUpdate<'_>,
    ) -> Result<Settled, TaskError> {
        let o = &l.object;
        let mut attributes = self.fetched.attributes.clone();
        attributes
            .metadata
            .insert(MARKER.to_owned(), self.marker.to_owned());
        let (class, note) = rewrite_class(self.fetched);
        attributes.storage_class = class;
        let uploaded = l
            .store
            .upload(
                &o.bucket,
                &l.write_key(),
                self.file,
                self.precondition,
                &attributes,
                self.threshold,
            )
            .await;
        match uploaded {
            Ok(w) => {
                let saved = JobObject {
                    rows_removed: figures.rows_removed,
                    size_after: figures.size_after,
                    ..o.clone()
                };
                let (version, etag) = (w.version_id.as_deref(), w.etag.as_deref());
                written(ctx, task, l, version, etag, &saved, note.as_deref()).await?;
                Ok(Settled::Yes)
            }
            Err(StorageError::PreconditionFailed) => self.after_412(ctx, task, l).await,
            Err(StorageError::Unavailable(e)) => unavailable(ctx, task, l, e).await,
            Err(e) => {
                fail(ctx, task, l, e.to_string()).await?;
                Ok(Settled::Yes)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ObjectAttributes;

    fn read_as(class: Option<&str>, restore: Option<&str>) -> Fetched {
        Fetched {
            attributes: ObjectAttributes {
                storage_class: class.map(str::to_owned),
                ..ObjectAttributes::default()
            },
            restore: restore.map(str::to_owned),
            ..Fetched::default()
        }
    }

    #[test]
    fn a_restored_archived_version_is_rewritten_as_standard_and_says_so() {
        let done = Some("ongoing-request=\"false\", expiry-date=\"Fri, 21 Dec 2012 00:00:00 GMT\"");
        for archive in ["GLACIER", "DEEP_ARCHIVE"] {
            let (class, note) = rewrite_class(&read_as(Some(archive), done));
            assert_eq!(class.as_deref(), Some("STANDARD"));
            assert_eq!(
                note.unwrap(),
                format!("written as STANDARD: the version read was a restored {archive} object")
            );
        }
        // A store that served an archived version without a restore header: still not
        // written back to the archive.
        let (class, note) = rewrite_class(&read_as(Some("GLACIER"), None));
        assert_eq!(class.as_deref(), Some("STANDARD"));
        assert!(note.unwrap().ends_with("was stored as GLACIER"));
    }

    #[test]
    fn other_classes_are_kept_as_read() {
        for class in [
            None,
            Some("STANDARD_IA"),
            Some("GLACIER_IR"),
            Some("INTELLIGENT_TIERING"),
        ] {
            assert_eq!(
                rewrite_class(&read_as(class, None)),
                (class.map(str::to_owned), None)
            );
        }
    }
}
