//! Creating a job and moving it on: the transitions that enqueue a phase's tasks.
//!
//! After each task the worker calls [`after_task`]: one read of the job row, and only
//! when the job's counters say its phase may be over (or the task failed for good) an
//! [`advance`], which probes the open tasks of the phase and, when none is left, moves
//! the job on under its row lock. The cost a task adds is O(1) in the size of the job.

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::db::job::{self as jobs, CreateJobError, NewJob};
use crate::db::{job_data_mapper, job_object, task};
use crate::domain::job::{EventLevel, ForgetState, JobStatus};
use crate::jobs::finalize::Ending;
use crate::jobs::find_mapper::FindMapper;
use crate::jobs::find_objects::FindObjects;
use crate::jobs::lifecycle::{self, event};
use crate::jobs::object::ObjectTask;
use crate::jobs::object::cleanup::Cleanup;
use crate::jobs::object::forget::Forget;
use crate::jobs::object::verify::Verify;
use crate::jobs::table_commit::CommitTable;
use crate::jobs::table_purge::PurgeTable;
use crate::jobs::{JobTask, enqueue, enqueue_all};
use crate::receipt::Issuer;

/// Creates a job and enqueues its find tasks; returns the job id.
/// `issuer` signs the receipts of a job that ends at once (nothing to search).
pub async fn create_job(
    pool: &PgPool,
    issuer: &Issuer,
    new: &NewJob<'_>,
) -> Result<Uuid, CreateJobError> {
    let job_id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    jobs::insert_job(&mut tx, job_id, new).await?;
    let mappers = job_data_mapper::list(&mut *tx, job_id).await?;
    for mapper in &mappers {
        let find = FindMapper {
            job_id,
            data_mapper_id: mapper.clone(),
        };
        enqueue(&mut *tx, &find).await?;
    }
    event(
        &mut *tx,
        job_id,
        EventLevel::Info,
        "job_created",
        &format!(
            "job created by {} ({}) over {} data mapper(s)",
            new.actor.subject,
            new.trigger,
            mappers.len()
        ),
        json!({"data_mappers": mappers, "dry_run": new.dry_run}),
    )
    .await?;
    let job = job_id.to_string();
    crate::db::audit_event::insert_audit_event(
        &mut *tx,
        new.actor.event(
            "job.start",
            "job",
            Some(&job),
            json!({
                "dry_run": new.dry_run,
                "trigger": new.trigger,
                "data_mappers": mappers,
                "settings": new.settings,
                "cause": new.cause,
            }),
        ),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(job.id = %job_id, dry_run = new.dry_run, trigger = %new.trigger, "job created");
    // A job with nothing to search is over at once.
    advance(pool, issuer, job_id).await?;
    Ok(job_id)
}

/// Called after each of the job's tasks ends: O(1) unless the job's phase may be over.
pub async fn after_task(
    pool: &PgPool,
    issuer: &Issuer,
    job_id: Uuid,
    failed_for_good: bool,
) -> sqlx::Result<()> {
    let Some((status, stats)) = jobs::progress(pool, job_id).await? else {
        return Ok(());
    };
    if status == JobStatus::Cancelled
        || (status.is_active() && (failed_for_good || lifecycle::phase_may_be_over(status, &stats)))
    {
        advance_from(pool, issuer, job_id, status).await?;
    }
    Ok(())
}

/// The task kinds whose open tasks keep the job in `status` (None: any task does).
fn phase_kinds(status: JobStatus) -> Option<&'static [&'static str]> {
    match status {
        JobStatus::Forgetting => Some(&[Forget::KIND]),
        JobStatus::Verifying => Some(&[Forget::KIND, CommitTable::KIND, Verify::KIND]),
        _ => None,
    }
}

async fn phase_has_open_tasks(
    db: impl sqlx::PgExecutor<'_>,
    job_id: Uuid,
    status: JobStatus,
) -> sqlx::Result<bool> {
    task::has_open(db, job_id, phase_kinds(status).unwrap_or(ALL_KINDS)).await
}

/// Every kind of a job's tasks.
const ALL_KINDS: &[&str] = &[
    FindMapper::KIND,
    FindObjects::KIND,
    Forget::KIND,
    CommitTable::KIND,
    Verify::KIND,
    Cleanup::KIND,
    PurgeTable::KIND,
];

/// Issues the receipts a cancelled real job owes its items (`finalize::stopped`: every
/// item `kept`), once none of its tasks is running — a task running when the cancel came
/// runs to its end, and may upload or delete: the receipts state what it did. No new job
/// starts meanwhile (`CreateJobError::Settling`), so no item leaves the queue first.
/// Once per job (the debt is cleared in the same transaction); true when it issued them.
/// Called after the cancel, after each task of the job, and by the supervisor's tick.
pub async fn settle(pool: &PgPool, issuer: &Issuer, job_id: Uuid) -> sqlx::Result<bool> {
    if task::has_running(pool, job_id).await? {
        return Ok(false);
    }
    let mut tx = pool.begin().await?;
    let Some((status, _)) = jobs::lock_job(&mut *tx, job_id).await? else {
        return Ok(false);
    };
    if status != JobStatus::Cancelled || !jobs::owes_receipts(&mut *tx, job_id).await? {
        return Ok(false);
    }
    // Tasks queued since the cancel (a retry, a step a running task enqueued) would do
    // nothing: cancelled now, so only a running one is waited for.
    task::cancel_queued(&mut *tx, job_id).await?;
    if task::has_running(&mut *tx, job_id).await? {
        return Ok(false);
    }
    let before = crate::db::job_event::details_of(&mut *tx, job_id, "job_cancelled")
        .await?
        .and_then(|d| d["status_before"].as_str().map(str::to_owned));
    let while_ = before.map(|s| format!(" while {s}")).unwrap_or_default();
    let why = format!(
        "the job was cancelled{while_}: its rows may still be in the lake, and the next job searches again"
    );
    crate::jobs::finalize::stopped(&mut tx, issuer, job_id, &why).await?;
    jobs::set_receipts_due(&mut *tx, job_id, false).await?;
    tx.commit().await?;
    Ok(true)
}

/// [`settle`] for every job that owes receipts (the supervisor's tick: a cancelled job
/// whose last task ended on a worker that died, or whose settle failed).
pub async fn settle_cancelled(pool: &PgPool, issuer: &Issuer) -> sqlx::Result<usize> {
    let mut settled = 0;
    for job_id in jobs::receipts_due(pool).await? {
        // One job's failure (the signer unreachable) leaves the others to settle.
        match settle(pool, issuer, job_id).await {
            Ok(done) => settled += usize::from(done),
            Err(e) => {
                tracing::warn!(job.id = %job_id, error = %e, "could not issue a cancelled job's receipts; trying again at the next tick");
            }
        }
    }
    Ok(settled)
}

/// Moves the job on when its current phase has no task left to run. Idempotent: call it
/// after any of the job's tasks, and periodically (a worker may die between finishing its
/// task and calling this). Enqueues the next phase's tasks in the same transaction; a
/// phase with nothing to do is passed through at once.
pub async fn advance(pool: &PgPool, issuer: &Issuer, job_id: Uuid) -> sqlx::Result<()> {
    match jobs::status(pool, job_id).await? {
        Some(status) => advance_from(pool, issuer, job_id, status).await,
        None => Ok(()),
    }
}

/// [`advance`] for a job last seen in `status` (re-read under the lock).
async fn advance_from(
    pool: &PgPool,
    issuer: &Issuer,
    job_id: Uuid,
    status: JobStatus,
) -> sqlx::Result<()> {
    // The common case, a phase with tasks still open, costs one index probe and no lock.
    // Safe without the lock: every task advances after its own record committed, so the
    // last one to finish sees no open task and takes the locked path below.
    if status == JobStatus::Cancelled {
        return settle(pool, issuer, job_id).await.map(drop);
    }
    if !status.is_active() || phase_has_open_tasks(pool, job_id, status).await? {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    let Some((mut status, dry_run)) = jobs::lock_job(&mut *tx, job_id).await? else {
        return Ok(());
    };
    while status.is_active() && !phase_has_open_tasks(&mut *tx, job_id, status).await? {
        let next = match status {
            JobStatus::Queued | JobStatus::Finding => {
                find_finished(&mut tx, issuer, job_id, dry_run).await?
            }
            JobStatus::CleaningUp => {
                crate::jobs::finalize::finalize(&mut tx, issuer, job_id).await?
            }
            _ => phase_finished(&mut tx, job_id, status).await?,
        };
        jobs::transition(&mut *tx, job_id, &[status], next).await?;
        status = next;
        if !next.is_active() {
            lifecycle::finished_event(&mut tx, job_id, next).await?;
            // Every end (completed, failed, a dry run's) signs the audit chain's head.
            crate::jobs::audit_checkpoint::write(&mut tx, issuer).await?;
        }
    }
    tx.commit().await?;
    tracing::info!(job.id = %job_id, status = %status, "job advanced");
    Ok(())
}

/// Why a find-failed job's items stay queued (beside a failed mapper's own reason).
pub const FIND_FAILED: &str =
    "the job's find failed (see its events): it wrote nothing, and the next job searches again";

/// Find is over: decides what follows and, for a real job, enqueues one forget task per
/// matched object (one statement).
async fn find_finished(
    tx: &mut PgConnection,
    issuer: &Issuer,
    job_id: Uuid,
    dry_run: bool,
) -> sqlx::Result<JobStatus> {
    let (failed_tasks, task_error) = task::failed(&mut *tx, job_id).await?;
    let failed_mappers = job_data_mapper::count_failed(&mut *tx, job_id).await?;
    let not_searchable = job_object::count_not_searchable(&mut *tx, job_id).await?;
    let next = lifecycle::after_find(
        dry_run,
        failed_mappers as u64,
        failed_tasks as u64,
        not_searchable as u64,
    );
    if failed_tasks > 0 {
        event(
            &mut *tx,
            job_id,
            EventLevel::Error,
            "task_failed",
            &format!(
                "{failed_tasks} find task(s) failed; first error: {}",
                task_error.unwrap_or_default()
            ),
            json!({"failed_tasks": failed_tasks}),
        )
        .await?;
    }
    if dry_run && !matches!(next, JobStatus::FindFailed) {
        // The blast radius: each item's rows per mapper, before anything is written.
        crate::jobs::finalize::record_accounts(&mut *tx, job_id, Ending::DryRun).await?;
    } else if !dry_run && next == JobStatus::FindFailed {
        // Nothing was written (find is one barrier): every item is kept, with a receipt.
        crate::jobs::finalize::stopped(tx, issuer, job_id, FIND_FAILED).await?;
    }
    let (level, message) = match next {
        JobStatus::Completed => (
            EventLevel::Info,
            "dry run completed: find finished".to_owned(),
        ),
        JobStatus::CompletedNotSearchable => (
            EventLevel::Warning,
            format!("dry run completed: {not_searchable} object(s) could not be read"),
        ),
        JobStatus::FindFailed => (
            EventLevel::Error,
            format!("find failed ({failed_mappers} data mapper(s) failed)"),
        ),
        other => (EventLevel::Info, format!("find finished; job is {other}")),
    };
    event(
        &mut *tx,
        job_id,
        level,
        "find_finished",
        &message,
        json!({"status": next}),
    )
    .await?;
    if next == JobStatus::Forgetting {
        let ids = job_object::ids_in_state(&mut *tx, job_id, ForgetState::Found).await?;
        let forgets: Vec<Forget> = ObjectTask::of(job_id, &ids).map(Forget).collect();
        enqueue_all(&mut *tx, job_id, &forgets).await?;
        adopt_leftovers(tx, job_id).await?;
        phase_started(tx, job_id, next, ids.len()).await?;
    }
    Ok(next)
}

/// Old versions an earlier job left behind on keys of this job's mappers: recorded as
/// `leftover` objects whose cleanup runs now.
async fn adopt_leftovers(tx: &mut PgConnection, job_id: Uuid) -> sqlx::Result<()> {
    let ids = job_object::adopt_leftovers(&mut *tx, job_id).await?;
    if ids.is_empty() {
        return Ok(());
    }
    let cleanups: Vec<Cleanup> = ObjectTask::of(job_id, &ids).map(Cleanup).collect();
    enqueue_all(&mut *tx, job_id, &cleanups).await?;
    event(
        &mut *tx,
        job_id,
        EventLevel::Warning,
        "versions_left_behind",
        &format!(
            "{} object(s) keep old versions an earlier job did not delete: deleting them now",
            ids.len()
        ),
        json!({"objects": ids.len()}),
    )
    .await
}

/// Forget or verify is over: objects their failed tasks left behind fail.
async fn phase_finished(
    tx: &mut PgConnection,
    job_id: Uuid,
    status: JobStatus,
) -> sqlx::Result<JobStatus> {
    if let Some((from, to, error)) = lifecycle::left_behind(status) {
        let lost = job_object::fail_left_in(&mut *tx, job_id, from, to, error).await? as i64;
        // Objects whose forget task failed for good are failed objects.
        if to == ForgetState::Failed {
            let stats = jobs::JobStats {
                objects_forget_failed: lost,
                ..Default::default()
            };
            jobs::add_stats(&mut *tx, job_id, &stats).await?;
        }
    }
    let next = lifecycle::after_phase(status).unwrap_or(JobStatus::CleaningUp);
    if next == JobStatus::Verifying {
        commit_tables(tx, job_id).await?;
    }
    if next == JobStatus::CleaningUp {
        clean_old_versions(tx, job_id).await?;
        purge_tables(tx, job_id).await?;
    }
    let kind = match next {
        JobStatus::Verifying => Verify::KIND,
        _ => Cleanup::KIND,
    };
    let open = task::count_open(&mut *tx, job_id, kind).await?;
    phase_started(tx, job_id, next, open as usize).await?;
    Ok(next)
}

/// Enqueues the commit of each mapper's rewrites of a table format's data files (one
/// snapshot per table), now that every forget of the job has ended.
async fn commit_tables(tx: &mut PgConnection, job_id: Uuid) -> sqlx::Result<()> {
    let mappers = job_object::mappers_with_new_files(&mut *tx, job_id).await?;
    let commits: Vec<CommitTable> = mappers
        .into_iter()
        .map(|data_mapper_id| CommitTable {
            job_id,
            data_mapper_id,
        })
        .collect();
    enqueue_all(&mut *tx, job_id, &commits).await.map(drop)
}

/// Enqueues the purge of each table a commit of the job changed: the snapshots that still
/// hold the old data files expire, and the files go. Only now: every new data file of
/// the table has been verified (or failed) by then.
async fn purge_tables(tx: &mut PgConnection, job_id: Uuid) -> sqlx::Result<()> {
    let mappers = job_data_mapper::with_table_commit(&mut *tx, job_id).await?;
    let purges: Vec<PurgeTable> = mappers
        .into_iter()
        .map(|data_mapper_id| PurgeTable {
            job_id,
            data_mapper_id,
        })
        .collect();
    enqueue_all(&mut *tx, job_id, &purges).await.map(drop)
}

/// Enqueues the cleanup of each old version holding matches (noncurrent when find listed
/// it, or replaced by another writer before forget). Only now: every rewrite of the job
/// has been verified (or failed) by then, so an old version is never deleted while the
/// key's current version is an unverified rewrite.
async fn clean_old_versions(tx: &mut PgConnection, job_id: Uuid) -> sqlx::Result<()> {
    let ids = job_object::ids_in_state(&mut *tx, job_id, ForgetState::OldVersion).await?;
    let cleanups: Vec<Cleanup> = ObjectTask::of(job_id, &ids).map(Cleanup).collect();
    enqueue_all(&mut *tx, job_id, &cleanups).await.map(drop)
}

async fn phase_started(
    tx: &mut PgConnection,
    job_id: Uuid,
    status: JobStatus,
    objects: usize,
) -> sqlx::Result<()> {
    event(
        &mut *tx,
        job_id,
        EventLevel::Info,
        "phase_started",
        &format!("{status} ({objects} object(s))"),
        json!({"status": status, "objects": objects}),
    )
    .await
}

/// Advances the active job, if any (the periodic safety net for [`advance`]).
pub async fn advance_active(pool: &PgPool, issuer: &Issuer) -> sqlx::Result<()> {
    if let Some(job_id) = jobs::active_job(pool).await? {
        advance(pool, issuer, job_id).await?;
    }
    Ok(())
}
