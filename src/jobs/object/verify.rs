//! `verify.object`: re-read a rewritten object's new version with ranged reads, as find
//! reads: its size must be the size uploaded, the row count rows before minus rows
//! removed, and no match may remain.
//! The record of a verified object enqueues its `cleanup.object`; a failed verification
//! keeps the old versions and is rolled back (`rollback`: the version read is copied back
//! on top, unless someone wrote the object since), its items staying queued.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::cleanup::Cleanup;
use super::rollback::{Rollback, roll_back};
use super::{Loaded, ObjectTask, Record, load};
use crate::db::job::JobStats;
use crate::db::job_object::ObjectUpdate;
use crate::domain::job::{EventLevel, ForgetState};
use crate::jobs::find::ObjectFindError;
use crate::jobs::tasks::{Task, TaskError};
use crate::jobs::{Context, JobTask, prepare};
use crate::storage::StorageError;

/// Verifies one rewritten object's new version.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Verify(pub ObjectTask);

#[async_trait]
impl JobTask for Verify {
    const KIND: &'static str = "verify.object";
    const MAX_ATTEMPTS: i32 = super::MAX_ATTEMPTS;

    fn job_id(&self) -> Uuid {
        self.0.job_id
    }

    async fn run(&self, ctx: &Context, task: &Task) -> Result<(), TaskError> {
        let Some(l) = load(ctx, self.0, ForgetState::Written).await? else {
            return Ok(());
        };
        let r = match check(&l).await? {
            Ok(reread) => {
                let update = ObjectUpdate {
                    forget_state: Some(ForgetState::Verified),
                    verified_rows: Some(reread.rows),
                    verified_bytes: Some(reread.bytes),
                    ..ObjectUpdate::default()
                };
                let stats = JobStats {
                    objects_verified: 1,
                    ..JobStats::default()
                };
                Record::new(update).stats(stats)
            }
            Err(e) => return failed(ctx, task, &l, &e).await,
        };
        // A table format's old data file stays while older snapshots reference it: the
        // mapper's purge (`jobs::table_purge`) retires it, not a per-object cleanup.
        let r = match l.in_table_format() {
            true => r,
            false => r.then(prepare(&Cleanup(l.p))?),
        };
        l.record(ctx, task, r).await
    }
}

/// Records a new version that failed verification, after rolling it back (the version
/// read is current again) where that can be done safely.
async fn failed(ctx: &Context, task: &Task, l: &Loaded, e: &str) -> Result<(), TaskError> {
    let key = &l.object.key;
    let read = l.object.rewritten_version().unwrap_or("none");
    let rollback = if l.in_table_format() {
        Rollback::Refused(
            "the table's snapshot with the new data file is committed, and the old data file stays in the snapshots before it (the next job plans again)"
                .to_owned(),
        )
    } else {
        roll_back(ctx, task, l).await?
    };
    let (error, restored, kind, message) = match &rollback {
        Rollback::Done(restored) => {
            let copy = restored.as_deref().unwrap_or("no version id");
            (
                format!("{e}; rolled back: the version read ({read}) is current again as {copy}"),
                restored.as_deref(),
                "rolled_back",
                format!(
                    "VERIFY FAILED for {key}: {e}; rolled back: the version read ({read}) is \
                     current again as {copy}; its items stay queued"
                ),
            )
        }
        Rollback::Refused(why) => (
            format!("{e}; not rolled back: {why}"),
            None,
            "verify_failed",
            format!(
                "VERIFY FAILED for {key}: {e}; not rolled back: {why}; its old versions are kept"
            ),
        ),
    };
    tracing::error!(job.id = %l.p.job_id, object.key = %key, error = %error, "verification failed");
    let update = ObjectUpdate {
        forget_state: Some(ForgetState::VerifyFailed),
        forget_error: Some(&error),
        rollback_version_id: restored,
        ..ObjectUpdate::default()
    };
    let stats = JobStats {
        objects_verify_failed: 1,
        ..JobStats::default()
    };
    let r = Record::new(update)
        .stats(stats)
        .event(EventLevel::Error, kind, message);
    l.record(ctx, task, r).await
}

/// The size of the new version as the store holds it, which must be the size uploaded
/// (else bytes past it would go unread): Ok(Err(why)) when it is not, or the version is
/// gone. A store that cannot tell has only the size uploaded.
async fn stored_size(l: &Loaded) -> Result<Result<u64, String>, StorageError> {
    let o = &l.object;
    let uploaded = o.size_after.unwrap_or(0).max(0) as u64;
    let Some(ours) = o.new_version_id.as_deref() else {
        return Ok(Ok(uploaded));
    };
    Ok(
        match l.store.version_size(&o.bucket, &l.write_key(), ours).await {
            Ok(None) => Ok(uploaded),
            Ok(Some(size)) if size == uploaded => Ok(uploaded),
            Ok(Some(size)) => Err(format!(
                "the new version has {size} bytes, Lethe uploaded {uploaded}"
            )),
            Err(StorageError::NotFound) => Err(format!("the version Lethe wrote ({ours}) is gone")),
            Err(e) => return Err(e),
        },
    )
}

/// What a re-read that found the new version clean counted (the receipts' evidence).
struct Reread {
    rows: i64,
    bytes: i64,
}

/// Reads the new version: Ok(Err(why)) when it fails verification.
async fn check(l: &Loaded) -> Result<Result<Reread, String>, TaskError> {
    let o = &l.object;
    let size = match stored_size(l).await {
        Ok(Ok(size)) => size,
        Ok(Err(e)) => return Ok(Err(e)),
        Err(StorageError::Unavailable(e)) => return Err(TaskError::Retryable(e)),
        Err(e) => return Ok(Err(format!("cannot read the new version's size: {e}"))),
    };
    let key = l.write_key();
    let found = l
        .count_rows((&key, o.new_version_id.as_deref()), size)
        .await;
    Ok(match found {
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
            } else if l.holds(rows, matched) {
                Err(format!(
                    "{matched} matching row(s) remain in the new version"
                ))
            } else {
                Ok(Reread {
                    rows: rows as i64,
                    bytes: size as i64,
                })
            }
        }
    })
}
