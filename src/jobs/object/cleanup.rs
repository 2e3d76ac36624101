//! `cleanup.object`: delete the versions older than the one Lethe wrote (never it, never
//! a newer one), when the mapper says so.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Loaded, ObjectTask, Record, load};
use crate::db::job::JobStats;
use crate::db::job_object::{self as objects, ObjectUpdate};
use crate::domain::job::{CleanupState, EventLevel, ForgetState};
use crate::jobs::tasks::{Task, TaskError};
use crate::jobs::{Context, JobTask};
use crate::storage::StorageError;

/// Deletes one verified object's old versions.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cleanup(pub ObjectTask);

#[async_trait]
impl JobTask for Cleanup {
    const KIND: &'static str = "cleanup.object";
    const MAX_ATTEMPTS: i32 = super::MAX_ATTEMPTS;

    fn job_id(&self) -> Uuid {
        self.0.job_id
    }

    async fn run(&self, ctx: &Context, task: &Task) -> Result<(), TaskError> {
        let Some(l) = load(ctx, self.0, ForgetState::Verified).await? else {
            return Ok(());
        };
        let o = &l.object;
        if o.cleanup_state.is_some() {
            return Ok(());
        }
        if !l.mapper.delete_old_versions {
            let update = ObjectUpdate {
                cleanup_state: Some(CleanupState::Skipped),
                ..ObjectUpdate::default()
            };
            return l.record(ctx, task, Record::new(update)).await;
        }
        let older = match versions_to_delete(&l).await {
            Ok(v) => v,
            Err(StorageError::Unavailable(e)) => return Err(TaskError::Retryable(e)),
            Err(e) => return failed(ctx, task, &l, &[], &e.to_string()).await,
        };
        // Saved before deleting: a retry after a crash mid-way still deletes and reports
        // every version (deleting a version that is already gone succeeds).
        let pending = ObjectUpdate {
            versions_to_delete: Some(&older),
            ..ObjectUpdate::default()
        };
        objects::update(&ctx.engine.db, o.job_object_id, &pending).await?;
        let mut deleted = Vec::new();
        for version in &older {
            match l.store.delete_version(&o.bucket, &o.key, version).await {
                Ok(()) | Err(StorageError::NotFound) => deleted.push(version.clone()),
                Err(StorageError::Unavailable(e)) if !task.is_last_attempt() => {
                    return Err(TaskError::Retryable(e));
                }
                Err(e) => return failed(ctx, task, &l, &deleted, &e.to_string()).await,
            }
        }
        let update = ObjectUpdate {
            cleanup_state: Some(CleanupState::Done),
            versions_deleted: Some(&deleted),
            ..ObjectUpdate::default()
        };
        let stats = JobStats {
            versions_deleted: deleted.len() as i64,
            ..JobStats::default()
        };
        let message = format!("deleted {} old version(s) of {}", deleted.len(), o.key);
        let r =
            Record::new(update)
                .stats(stats)
                .event(EventLevel::Info, "versions_deleted", message);
        l.record(ctx, task, r).await
    }
}

/// The versions older than the one Lethe wrote (never it, never a newer one), plus those
/// an earlier attempt saved before it died.
async fn versions_to_delete(l: &Loaded) -> Result<Vec<String>, StorageError> {
    let o = &l.object;
    let versions = l.store.list_versions(&o.bucket, &o.key).await?;
    let ours = o.new_version_id.as_deref();
    let mut older: Vec<String> =
        match ours.and_then(|ours| versions.iter().position(|v| v.version_id == ours)) {
            Some(pos) => versions[pos + 1..]
                .iter()
                .map(|v| v.version_id.clone())
                .collect(),
            // The version Lethe wrote and verified is gone while others remain: someone
            // deleted it, so the current version may be the original again. Nothing is
            // deleted and the cleanup fails, which keeps the subjects queued.
            None if ours.is_some() && !versions.is_empty() => {
                return Err(StorageError::Other(format!(
                    "the version Lethe wrote ({}) is no longer among the key's versions; \
                     the others (which may hold erased rows) are left for the next job",
                    ours.unwrap_or_default()
                )));
            }
            None => Vec::new(),
        };
    for saved in &o.versions_to_delete {
        if !older.contains(saved) {
            older.push(saved.clone());
        }
    }
    Ok(older)
}

async fn failed(
    ctx: &Context,
    task: &Task,
    l: &Loaded,
    deleted: &[String],
    error: &str,
) -> Result<(), TaskError> {
    let update = ObjectUpdate {
        cleanup_state: Some(CleanupState::Failed),
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
    let r = Record::new(update)
        .stats(stats)
        .event(EventLevel::Error, "cleanup_failed", message);
    l.record(ctx, task, r).await
}
