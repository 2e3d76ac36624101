//! `verify.object`: re-read a rewritten object's new version with ranged reads, as find
//! reads: the row count must be rows before minus rows removed, and no match may remain.
//! The record of a verified object enqueues its `cleanup.object`; a failed verification
//! keeps the old versions.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::cleanup::Cleanup;
use super::{Loaded, ObjectTask, Record, load};
use crate::db::job::JobStats;
use crate::db::job_object::ObjectUpdate;
use crate::domain::data_mapper::Format;
use crate::domain::job::{EventLevel, ForgetState};
use crate::jobs::find::{ObjectFindError, ObjectRef, find_jsonl, find_parquet};
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
            Ok(()) => {
                let update = ObjectUpdate {
                    forget_state: Some(ForgetState::Verified),
                    ..ObjectUpdate::default()
                };
                let stats = JobStats {
                    objects_verified: 1,
                    ..JobStats::default()
                };
                Record::new(update)
                    .stats(stats)
                    .then(prepare(&Cleanup(l.p))?)
            }
            Err(e) => {
                tracing::error!(job.id = %l.p.job_id, object.key = %l.object.key, error = %e, "verification failed");
                let message = format!(
                    "VERIFY FAILED for {}: {e}; its old versions are kept",
                    l.object.key
                );
                let update = ObjectUpdate {
                    forget_state: Some(ForgetState::VerifyFailed),
                    forget_error: Some(&e),
                    ..ObjectUpdate::default()
                };
                let stats = JobStats {
                    objects_verify_failed: 1,
                    ..JobStats::default()
                };
                let r = Record::new(update).stats(stats);
                return l
                    .record(
                        ctx,
                        task,
                        r.event(EventLevel::Error, "verify_failed", message),
                    )
                    .await;
            }
        };
        l.record(ctx, task, r).await
    }
}

/// Reads the new version: Ok(Err(why)) when it fails verification.
async fn check(l: &Loaded) -> Result<Result<(), String>, TaskError> {
    let o = &l.object;
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
            } else if matched > 0 || (l.every_row && rows > 0) {
                Err(format!(
                    "{matched} matching row(s) remain in the new version"
                ))
            } else {
                Ok(())
            }
        }
    })
}
