//! `cleanup.object`: deletes the old versions holding an object's matches, when the
//! mapper says so, and names every such version it keeps.
//!
//! - A rewritten, verified object: every version older than the one Lethe wrote (never
//!   it, never a newer one, never a version this job recorded as an old version of its
//!   own: that one's own cleanup deletes it). A version written on top of Lethe's since is
//!   searched: when it holds matches the items stay queued (`newer_holds`).
//! - An old version (`old_version`: noncurrent when find listed it, or the version find
//!   read when another writer replaced it before forget): exactly that version, unless it
//!   is the key's current version again, or the key's rewrite in this job failed
//!   verification without being rolled back (then it may be the only good copy).
//!
//! Kept versions (the mapper keeps old versions) are recorded with the reason and the
//! date a lifecycle rule expires them, for the accounts of the subjects they hold.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Loaded, ObjectTask, Record, load_in};
use crate::db::job::JobStats;
use crate::db::job_object::{self as objects, KeptVersion, ObjectUpdate};
use crate::domain::job::{CleanupState, EventLevel, ForgetState};
use crate::domain::retention::{noncurrent_expiry, replicated_to};
use crate::jobs::find::ObjectFindError;
use crate::jobs::object::MARKER;
use crate::jobs::tasks::{Task, TaskError};
use crate::jobs::{Context, JobTask};
use crate::storage::StorageError;

/// Why a version holding matches is kept when the mapper keeps old versions.
pub const KEEPS_OLD_VERSIONS: &str =
    "the data mapper keeps old versions (delete_old_versions is false)";

/// Deletes one object's old versions.
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
        let states = [ForgetState::Verified, ForgetState::OldVersion];
        let Some(l) = load_in(ctx, self.0, &states).await? else {
            return Ok(());
        };
        if l.object.cleanup_state.is_some() {
            return Ok(());
        }
        let plan = match plan(ctx, &l).await {
            Ok(plan) => plan,
            // The database went away: run again (as the same attempt when it is away).
            Err(PlanError::Database(e)) => return Err(e.into()),
            Err(PlanError::Storage(StorageError::Unavailable(e))) => {
                return Err(TaskError::Retryable(e));
            }
            Err(PlanError::Storage(e)) => return failed(ctx, task, &l, &[], &e.to_string()).await,
        };
        if !l.mapper.delete_old_versions {
            let kept = match kept_by_mapper(&l, &plan).await {
                Ok(kept) => kept,
                Err(StorageError::Unavailable(e)) => return Err(TaskError::Retryable(e)),
                Err(e) => return failed(ctx, task, &l, &[], &e.to_string()).await,
            };
            let update = ObjectUpdate {
                cleanup_state: Some(CleanupState::Skipped),
                versions_kept: Some(&kept),
                newer_holds: Some(plan.newer_holds),
                replicated_to: plan.replicated_to.as_deref(),
                ..ObjectUpdate::default()
            };
            return l.record(ctx, task, Record::new(update)).await;
        }
        delete(ctx, task, &l, &plan).await
    }
}

/// The versions holding matches that a mapper keeping old versions keeps, each with the
/// date the bucket's lifecycle rules expire it (counted from when it became noncurrent:
/// as listed for an old version, now for the version below Lethe's new one).
async fn kept_by_mapper(l: &Loaded, plan: &Plan) -> Result<Vec<KeptVersion>, StorageError> {
    let o = &l.object;
    if plan.holding.is_empty() {
        return Ok(Vec::new());
    }
    let rules = l.store.lifecycle_rules(&o.bucket).await?;
    let since = o.noncurrent_since.unwrap_or_else(chrono::Utc::now);
    let expiry = noncurrent_expiry(&rules, &o.key, o.size_bytes.max(0) as u64, since);
    Ok(plan
        .holding
        .iter()
        .map(|v| {
            let mut kept = kept(v, KEEPS_OLD_VERSIONS);
            if let Some(e) = &expiry {
                kept.until = Some(e.at);
                kept.not_before = !e.certain;
                kept.reason = format!(
                    "{KEEPS_OLD_VERSIONS}; the bucket's lifecycle rule {} expires it",
                    e.rule.as_deref().unwrap_or("(unnamed)")
                );
            }
            kept
        })
        .collect())
}

/// What cleanup deletes of one object.
#[derive(Debug, Default)]
struct Plan {
    /// The versions to delete.
    delete: Vec<String>,
    /// Those of them known to hold the object's matches (the version find read, the one
    /// forget rewrote, an old version).
    holding: Vec<String>,
    /// A version written on top of Lethe's holds matches.
    newer_holds: bool,
    /// The bucket a replication rule copies the key to.
    replicated_to: Option<String>,
}

/// Why cleanup could not make its plan: the store's answer, or the database's (kept
/// apart so that a database gone away interrupts the task rather than failing it).
#[derive(Debug)]
enum PlanError {
    Storage(StorageError),
    Database(sqlx::Error),
}

impl From<StorageError> for PlanError {
    fn from(e: StorageError) -> Self {
        PlanError::Storage(e)
    }
}

impl From<sqlx::Error> for PlanError {
    fn from(e: sqlx::Error) -> Self {
        PlanError::Database(e)
    }
}

async fn plan(ctx: &Context, l: &Loaded) -> Result<Plan, PlanError> {
    let o = &l.object;
    let versions: Vec<String> = l
        .store
        .list_versions(&o.bucket, &o.key)
        .await?
        .into_iter()
        .map(|v| v.version_id)
        .collect();
    let rules = l.store.replication_rules(&o.bucket).await?;
    let replicated_to = replicated_to(&rules, &o.key);
    if o.forget_state == ForgetState::OldVersion {
        let plan = old_version_plan(ctx, l, &versions).await?;
        return Ok(Plan {
            replicated_to,
            ..plan
        });
    }
    let ours = o.new_version_id.as_deref();
    let (newer, older): (&[String], &[String]) =
        match ours.and_then(|ours| versions.iter().position(|v| v == ours)) {
            Some(pos) => (&versions[..pos], &versions[pos + 1..]),
            // The version Lethe wrote and verified is gone while others remain: someone
            // deleted it, so the current version may be the original again. Nothing is
            // deleted and the cleanup fails, which keeps the subjects queued.
            None if ours.is_some() && !versions.is_empty() => {
                return Err(StorageError::Other(format!(
                    "the version Lethe wrote ({}) is no longer among the key's versions; \
                     the others (which may hold erased rows) are left for the next job",
                    ours.unwrap_or_default()
                ))
                .into());
            }
            None => (&[], &[]),
        };
    let own_old = objects::old_versions_of(&ctx.engine.db, l.p.job_id, &o.bucket, &o.key).await?;
    let mut delete: Vec<String> = older
        .iter()
        .filter(|v| !own_old.contains(v))
        .cloned()
        .collect();
    // Saved by an earlier attempt that died mid-way.
    for saved in &o.versions_to_delete {
        if !delete.contains(saved) {
            delete.push(saved.clone());
        }
    }
    let read = [o.version_id.as_deref(), o.read_version_id.as_deref()];
    let mut holding: Vec<String> = read.into_iter().flatten().map(str::to_owned).collect();
    holding.dedup();
    holding.retain(|v| delete.contains(v));
    let newer_holds = match newer.first() {
        Some(current) => newer_holds(l, current).await?,
        None => false,
    };
    Ok(Plan {
        delete,
        holding,
        newer_holds,
        replicated_to,
    })
}

/// An old version: deleted unless it is current again, or this job's rewrite of the key
/// failed verification and was not rolled back (the old version may be the only good
/// copy). Gone already: nothing to delete.
async fn old_version_plan(
    ctx: &Context,
    l: &Loaded,
    versions: &[String],
) -> Result<Plan, PlanError> {
    let o = &l.object;
    let Some(version) = o.version_id.clone() else {
        return Ok(Plan::default());
    };
    // The versions listed leave delete markers out: whether it is current again is the
    // current version's own answer (none when a delete marker is on top).
    let current = match l.store.head_with_metadata(&o.bucket, &o.key).await {
        Ok(current) => Some(current),
        Err(StorageError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some((meta, metadata)) = &current
        && let Some(why) = unverified_current(ctx, l, meta, metadata).await?
    {
        return Err(StorageError::Other(format!(
            "the key's current version is a rewrite by Lethe that was never verified (its \
             job was cancelled or died) and fails verification now ({why}): the old \
             versions are kept"
        ))
        .into());
    }
    if current.and_then(|(meta, _)| meta.version_id).as_ref() == Some(&version) {
        return Err(StorageError::Other(format!(
            "the old version {version} is the key's current version again (a newer one was \
             deleted): it is left for the next job, which rewrites it"
        ))
        .into());
    }
    let unsafe_rewrite =
        objects::unverified_rewrite(&ctx.engine.db, l.p.job_id, &o.bucket, &o.key).await?;
    if unsafe_rewrite {
        return Err(StorageError::Other(
            "this job's rewrite of the key failed verification and was not rolled back: \
             its old versions are kept"
                .to_owned(),
        )
        .into());
    }
    // Gone already: nothing to delete, unless an earlier attempt saved it and died after
    // deleting it and before recording that (it is deleted again, as a success, and
    // counted once).
    if !versions.contains(&version) && !o.versions_to_delete.contains(&version) {
        return Ok(Plan::default());
    }
    Ok(Plan {
        delete: vec![version.clone()],
        holding: vec![version],
        ..Plan::default()
    })
}

/// Why the current version fails verification when it is a rewrite by Lethe that was
/// never verified (its job was cancelled, or died, between the upload and the verify; or
/// it failed verification): verified now as verify does, against the figures its job
/// object saved before the upload. None when it passes, or is not such a rewrite.
async fn unverified_current(
    ctx: &Context,
    l: &Loaded,
    meta: &crate::storage::ObjectMeta,
    metadata: &std::collections::HashMap<String, String>,
) -> Result<Option<String>, PlanError> {
    let Some((job_id, object_id)) = metadata.get(MARKER).and_then(|m| parse_marker(m)) else {
        return Ok(None);
    };
    let writer = match objects::get(&ctx.engine.db, job_id, object_id).await {
        Ok(w) => w,
        // Its job's report is gone (retention): nothing to verify against.
        Err(sqlx::Error::RowNotFound) => {
            return Ok(Some("its job's record is gone".to_owned()));
        }
        Err(e) => return Err(e.into()),
    };
    if writer.forget_state == ForgetState::Verified {
        return Ok(None);
    }
    if writer.size_after != Some(meta.size as i64) {
        return Ok(Some("its size is not the size uploaded".to_owned()));
    }
    match l
        .count_rows((&l.object.key, meta.version_id.as_deref()), meta.size)
        .await
    {
        Ok((rows, _)) if Some(rows as i64) != writer.rows_after => {
            Ok(Some("its row count is not the count uploaded".to_owned()))
        }
        Ok((rows, matched)) if l.holds(rows, matched) => {
            Ok(Some("it holds matching rows".to_owned()))
        }
        Ok(_) => Ok(None),
        Err(ObjectFindError::Storage(e)) => Err(e.into()),
        Err(e) => Ok(Some(format!("it cannot be read: {e}"))),
    }
}

/// The job object a `lethe-job-object` marker names (`<job id>/<job object id>`).
fn parse_marker(marker: &str) -> Option<(Uuid, i64)> {
    let (job, object) = marker.split_once('/')?;
    Some((job.parse().ok()?, object.parse().ok()?))
}

/// Whether `version`, written on top of Lethe's since it was verified (by a writer that
/// read the object before the rewrite, say), holds the object's matches.
async fn newer_holds(l: &Loaded, version: &str) -> Result<bool, StorageError> {
    let o = &l.object;
    let size = l
        .store
        .version_size(&o.bucket, &o.key, version)
        .await?
        .ok_or_else(|| {
            StorageError::Other("the store gave no size for the newer version".into())
        })?;
    match l.count_rows((&l.object.key, Some(version)), size).await {
        Ok((rows, matched)) => Ok(l.holds(rows, matched)),
        Err(ObjectFindError::Storage(e)) => Err(e),
        Err(e) => Err(StorageError::Other(format!(
            "cannot search the version written on top of Lethe's ({version}): {e}"
        ))),
    }
}

/// A version under Object Lock (a legal or event hold: no end date; a retention: until
/// its date), as a kept version; None when nothing locks it.
async fn locked(l: &Loaded, version: &str) -> Result<Option<KeptVersion>, StorageError> {
    let o = &l.object;
    let lock = l.store.version_lock(&o.bucket, &o.key, version).await?;
    Ok(lock.delete_blocked(chrono::Utc::now()).map(|block| {
        let until = block.until();
        KeptVersion {
            until,
            hold: until.is_none(),
            ..kept(version, &format!("S3 Object Lock: {block}"))
        }
    }))
}

/// A version kept for `reason`.
fn kept(version: &str, reason: &str) -> KeptVersion {
    KeptVersion {
        version_id: version.to_owned(),
        reason: reason.to_owned(),
        until: None,
        not_before: false,
        hold: false,
    }
}

/// Deletes the plan's versions, saving them first: a retry after a crash mid-way still
/// deletes and reports every one (deleting a version that is already gone succeeds).
async fn delete(ctx: &Context, task: &Task, l: &Loaded, plan: &Plan) -> Result<(), TaskError> {
    let o = &l.object;
    let pending = ObjectUpdate {
        versions_to_delete: Some(&plan.delete),
        ..ObjectUpdate::default()
    };
    objects::update(&ctx.engine.db, o.job_object_id, &pending).await?;
    let (mut deleted, mut kept) = (Vec::new(), Vec::new());
    for version in &plan.delete {
        let error = match l.store.delete_version(&o.bucket, &o.key, version).await {
            Ok(()) | Err(StorageError::NotFound) => {
                deleted.push(version.clone());
                continue;
            }
            Err(StorageError::Unavailable(e)) if !task.is_last_attempt() => {
                return Err(TaskError::Retryable(e));
            }
            Err(e @ StorageError::AccessDenied { .. }) => e,
            Err(e) => return failed(ctx, task, l, &deleted, &e.to_string()).await,
        };
        // Refused: Object Lock (retention or a hold) says so, or the delete failed.
        match locked(l, version).await {
            Ok(Some(lock)) => kept.extend(Some(lock).filter(|_| plan.holding.contains(version))),
            Ok(None) => return failed(ctx, task, l, &deleted, &error.to_string()).await,
            Err(StorageError::Unavailable(e)) => return Err(TaskError::Retryable(e)),
            Err(e) => return failed(ctx, task, l, &deleted, &e.to_string()).await,
        }
    }
    let update = ObjectUpdate {
        cleanup_state: Some(CleanupState::Done),
        versions_deleted: Some(&deleted),
        versions_kept: Some(&kept),
        newer_holds: Some(plan.newer_holds),
        replicated_to: plan.replicated_to.as_deref(),
        ..ObjectUpdate::default()
    };
    let stats = JobStats {
        versions_deleted: deleted.len() as i64,
        ..JobStats::default()
    };
    let mut message = format!("deleted {} old version(s) of {}", deleted.len(), o.key);
    let refused = plan.delete.len() - deleted.len();
    if refused > 0 {
        message = format!("{message}; {refused} kept: S3 Object Lock refuses their delete");
    }
    let r = if plan.newer_holds {
        let message = format!(
            "{message}; a version written on top of Lethe's since holds matching rows: its items stay queued"
        );
        Record::new(update).event(EventLevel::Warning, "newer_version_holds", message)
    } else {
        Record::new(update).event(EventLevel::Info, "versions_deleted", message)
    };
    l.record(ctx, task, r.stats(stats)).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_names_its_job_object_or_nothing() {
        let job = Uuid::now_v7();
        assert_eq!(parse_marker(&format!("{job}/42")), Some((job, 42)));
        for bad in [
            "",
            "42",
            &format!("{job}/"),
            &format!("{job}/x"),
            "not-a-uuid/1",
        ] {
            assert_eq!(parse_marker(bad), None, "{bad}");
        }
    }
}
