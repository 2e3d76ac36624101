//! The job's state machine: which status follows which, when a phase may be over, and
//! the transitions that enqueue nothing (start, cancel, the end event). Imports no task
//! module: `advance` does the transitions that enqueue a phase's tasks.
//!
//! ```text
//! queued → finding ─┬─ (dry run) ────────────────────────────────→ completed
//!                   ├─ (a mapper or find task failed) ───────────→ find_failed
//!                   └→ forgetting → verifying → cleaning_up ─┬──→ completed
//!                                                            ├──→ completed_cleanup_failed
//!                                                            ├──→ forget_partially_failed
//!                                                            └──→ forget_failed
//! any active state → cancelled (on request)
//! ```
//!
//! After find, every matched object goes through forget → verify → cleanup on its own
//! (each step's record enqueues the next), so the three phases overlap; the job's status
//! names the earliest step some object is still in.
//!
//! Invariants: at most one job is active (a unique partial index); every transition is a
//! conditional update under the job's row lock, so concurrent workers advancing the same
//! job move it once; each transition writes its event in the same transaction.

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::db::job::{self as jobs, JobStats};
use crate::db::task;
use crate::domain::job::{EventLevel, ForgetState, JobStatus};

pub use crate::domain::job::after_find;

/// The status that follows a finished forget, verify or cleanup phase (cleanup's follower
/// is decided by `finalize`).
pub fn after_phase(status: JobStatus) -> Option<JobStatus> {
    match status {
        JobStatus::Forgetting => Some(JobStatus::Verifying),
        JobStatus::Verifying => Some(JobStatus::CleaningUp),
        _ => None,
    }
}

/// The objects a phase's end marks failed (their task failed for good, so no record ever
/// moved them on), as (state left in, state given, error).
pub fn left_behind(status: JobStatus) -> Option<(ForgetState, ForgetState, &'static str)> {
    match status {
        JobStatus::Forgetting => Some((
            ForgetState::Found,
            ForgetState::Failed,
            "the forget task failed",
        )),
        JobStatus::Verifying => Some((
            ForgetState::Written,
            ForgetState::VerifyFailed,
            "the verify task failed",
        )),
        _ => None,
    }
}

/// Whether the job's current phase may be over, from its counters alone (an O(1) check
/// after every task; `advance` then looks at the open tasks).
/// Forget is over when every matched object has a forget outcome, verify when every
/// rewritten object has a verify outcome; find and cleanup have no countdown.
pub fn phase_may_be_over(status: JobStatus, s: &JobStats) -> bool {
    match status {
        JobStatus::Queued | JobStatus::Finding | JobStatus::CleaningUp => true,
        JobStatus::Forgetting => {
            s.objects_rewritten + s.objects_unchanged + s.objects_forget_failed >= s.objects_matched
        }
        JobStatus::Verifying => s.objects_verified + s.objects_verify_failed >= s.objects_rewritten,
        _ => false,
    }
}

/// Appends to the job's event log (`db::job_event::insert`). Never pass match ids or
/// row data.
pub use crate::db::job_event::insert as event;

/// Marks the job as started (`queued → finding`) when a worker first works on it.
pub async fn mark_started(pool: &PgPool, job_id: Uuid) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    if jobs::transition(&mut *tx, job_id, &[JobStatus::Queued], JobStatus::Finding).await? {
        event(
            &mut *tx,
            job_id,
            EventLevel::Info,
            "find_started",
            "find started",
            json!({}),
        )
        .await?;
    }
    tx.commit().await
}

/// True when the job is still active (tasks of ended jobs do nothing).
pub async fn is_active(pool: &PgPool, job_id: Uuid) -> sqlx::Result<bool> {
    Ok(jobs::status(pool, job_id)
        .await?
        .is_some_and(JobStatus::is_active))
}

/// The `job_finished` event of a job that ended in `status`.
pub async fn finished_event(
    tx: &mut PgConnection,
    job_id: Uuid,
    status: JobStatus,
) -> sqlx::Result<()> {
    let level = if status == JobStatus::Completed {
        EventLevel::Info
    } else {
        EventLevel::Error
    };
    event(
        &mut *tx,
        job_id,
        level,
        "job_finished",
        &format!("job {status}"),
        json!({"status": status}),
    )
    .await
}

/// Why a job could not be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no such job")]
    NotFound,
    #[error("the job already ended ({0})")]
    Ended(JobStatus),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Cancels an active job: its queued tasks never run; a running one runs to its end (its
/// handler checked the job was active when it started). A real job then owes its items
/// their `kept` accounts and receipts, issued by `advance::settle` once no task of it is
/// running. As every job's end, the cancel writes an audit checkpoint (signed by
/// `issuer`).
pub async fn cancel(
    pool: &PgPool,
    issuer: &crate::receipt::Issuer,
    job_id: Uuid,
    actor: crate::db::audit_event::Actor<'_>,
) -> Result<(), CancelError> {
    let mut tx = pool.begin().await?;
    let (status, dry_run) = jobs::lock_job(&mut *tx, job_id)
        .await?
        .ok_or(CancelError::NotFound)?;
    if !status.is_active() {
        return Err(CancelError::Ended(status));
    }
    jobs::transition(&mut *tx, job_id, &[status], JobStatus::Cancelled).await?;
    let tasks = task::cancel_queued(&mut *tx, job_id).await?;
    event(
        &mut *tx,
        job_id,
        EventLevel::Warning,
        "job_cancelled",
        &format!("cancelled by {} while {status}", actor.subject),
        json!({"tasks_cancelled": tasks, "status_before": status}),
    )
    .await?;
    if !dry_run {
        // Its items' receipts, once its last running task has ended (`advance::settle`):
        // such a task may still upload or delete, and the receipts say what it did.
        jobs::set_receipts_due(&mut *tx, job_id, true).await?;
    }
    let job = job_id.to_string();
    crate::db::audit_event::insert_audit_event(
        &mut *tx,
        actor.event(
            "job.cancel",
            "job",
            Some(&job),
            json!({"status_before": status, "tasks_cancelled": tasks}),
        ),
    )
    .await?;
    finished_event(&mut tx, job_id, JobStatus::Cancelled).await?;
    crate::jobs::audit_checkpoint::write(&mut tx, issuer).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forget_and_verify_count_down_and_the_other_phases_always_look() {
        let mut s = JobStats {
            objects_matched: 3,
            objects_rewritten: 1,
            objects_unchanged: 1,
            ..JobStats::default()
        };
        assert!(!phase_may_be_over(JobStatus::Forgetting, &s));
        s.objects_forget_failed = 1;
        assert!(phase_may_be_over(JobStatus::Forgetting, &s));
        assert!(!phase_may_be_over(JobStatus::Verifying, &s));
        s.objects_verify_failed = 1;
        assert!(phase_may_be_over(JobStatus::Verifying, &s));
        assert!(phase_may_be_over(JobStatus::Finding, &JobStats::default()));
        assert!(phase_may_be_over(
            JobStatus::CleaningUp,
            &JobStats::default()
        ));
        assert!(!phase_may_be_over(
            JobStatus::Completed,
            &JobStats::default()
        ));
        assert_eq!(
            after_phase(JobStatus::Forgetting),
            Some(JobStatus::Verifying)
        );
        assert_eq!(
            after_phase(JobStatus::Verifying),
            Some(JobStatus::CleaningUp)
        );
        assert_eq!(after_phase(JobStatus::CleaningUp), None);
        assert_eq!(
            left_behind(JobStatus::Verifying).map(|l| l.1),
            Some(ForgetState::VerifyFailed)
        );
    }
}
