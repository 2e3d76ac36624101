//! A job's life: created over a snapshot of the queue (with one `find.mapper` task per
//! data mapper, in the same transaction), advanced when its last task of a phase
//! finishes, cancelled on request.
//!
//! Invariants: at most one job is active (a unique partial index); every transition is a
//! conditional update under the job's row lock, so concurrent workers advancing the same
//! job move it once; each transition writes its event in the same transaction.

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::job::{self as db, CreateJobError, NewJob};
use crate::domain::job::{JobStatus, after_find};

/// Attempts of a find task before it fails.
pub const FIND_MAX_ATTEMPTS: i32 = 5;

/// Creates a job and enqueues its find tasks; returns the job id.
pub async fn create_job(pool: &PgPool, new: &NewJob<'_>) -> Result<Uuid, CreateJobError> {
    if !new.dry_run {
        return Err(CreateJobError::ForgetUnavailable);
    }
    let job_id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    db::insert_job(&mut tx, job_id, new).await?;
    let mappers = db::list_job_mappers(&mut *tx, job_id).await?;
    for mapper in &mappers {
        crate::jobs::tasks::enqueue_for_job(
            &mut *tx,
            Some(job_id),
            crate::jobs::find_phase::FIND_MAPPER,
            &json!({"job_id": job_id, "data_mapper_id": mapper}),
            FIND_MAX_ATTEMPTS,
        )
        .await?;
    }
    db::insert_event(
        &mut *tx,
        job_id,
        "info",
        "job_created",
        &format!(
            "job created by {} ({}) over {} data mapper(s)",
            new.created_by,
            new.trigger.as_str(),
            mappers.len()
        ),
        json!({"data_mappers": mappers, "dry_run": new.dry_run}),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(job.id = %job_id, dry_run = new.dry_run, trigger = new.trigger.as_str(), "job created");
    // A job with nothing to search is over at once.
    advance(pool, job_id).await?;
    Ok(job_id)
}

/// Marks the job as started (`queued → finding`) when a worker first works on it.
pub async fn mark_started(pool: &PgPool, job_id: Uuid) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    if db::transition(&mut *tx, job_id, &[JobStatus::Queued], JobStatus::Finding).await? {
        db::insert_event(
            &mut *tx,
            job_id,
            "info",
            "find_started",
            "find started",
            json!({}),
        )
        .await?;
    }
    tx.commit().await
}

/// Moves the job on when its current phase has no task left to run. Idempotent: call it
/// after any of the job's tasks finishes, and periodically (a worker may die between
/// finishing its task and calling this).
pub async fn advance(pool: &PgPool, job_id: Uuid) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    let Some((status, dry_run)) = db::lock_job(&mut *tx, job_id).await? else {
        return Ok(());
    };
    if !matches!(status, JobStatus::Queued | JobStatus::Finding) {
        return Ok(());
    }
    let (open, failed_tasks, task_error) = db::task_counts(&mut *tx, job_id).await?;
    if open > 0 {
        return Ok(());
    }
    let failed_mappers = db::failed_mappers(&mut *tx, job_id).await?;
    let next = after_find(dry_run, failed_mappers as u64, failed_tasks as u64);
    db::transition(&mut *tx, job_id, &[status], next).await?;
    if failed_tasks > 0 {
        let error = task_error.unwrap_or_default();
        db::insert_event(
            &mut *tx,
            job_id,
            "error",
            "task_failed",
            &format!("{failed_tasks} find task(s) failed; first error: {error}"),
            json!({"failed_tasks": failed_tasks}),
        )
        .await?;
    }
    let (level, message) = match next {
        JobStatus::Completed => ("info", "dry run completed: find finished".to_owned()),
        JobStatus::FindFailed => (
            "error",
            format!("find failed ({failed_mappers} data mapper(s) failed)"),
        ),
        other => ("info", format!("find finished; job is {}", other.as_str())),
    };
    db::insert_event(
        &mut *tx,
        job_id,
        level,
        "find_finished",
        &message,
        json!({"status": next.as_str()}),
    )
    .await?;
    if !next.is_active() {
        finished_event(&mut tx, job_id, next).await?;
    }
    tx.commit().await?;
    tracing::info!(job.id = %job_id, status = next.as_str(), "job advanced");
    Ok(())
}

async fn finished_event(
    tx: &mut sqlx::PgConnection,
    job_id: Uuid,
    status: JobStatus,
) -> sqlx::Result<()> {
    let level = if status == JobStatus::Completed {
        "info"
    } else {
        "error"
    };
    db::insert_event(
        &mut *tx,
        job_id,
        level,
        "job_finished",
        &format!("job {}", status.as_str()),
        json!({"status": status.as_str()}),
    )
    .await
}

/// Why a job could not be cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no such job")]
    NotFound,
    #[error("the job already ended ({0})")]
    Ended(&'static str),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Cancels an active job: its queued tasks never run, running ones record nothing more.
pub async fn cancel(pool: &PgPool, job_id: Uuid, actor: &str) -> Result<(), CancelError> {
    let mut tx = pool.begin().await?;
    let (status, _) = db::lock_job(&mut *tx, job_id)
        .await?
        .ok_or(CancelError::NotFound)?;
    if !status.is_active() {
        return Err(CancelError::Ended(status.as_str()));
    }
    db::transition(&mut *tx, job_id, &[status], JobStatus::Cancelled).await?;
    let tasks = db::cancel_tasks(&mut *tx, job_id).await?;
    db::insert_event(
        &mut *tx,
        job_id,
        "warning",
        "job_cancelled",
        &format!("cancelled by {actor} while {}", status.as_str()),
        json!({"tasks_cancelled": tasks}),
    )
    .await?;
    finished_event(&mut tx, job_id, JobStatus::Cancelled).await?;
    tx.commit().await?;
    Ok(())
}

/// True when the job is still active (tasks of ended jobs do nothing).
pub async fn is_active(pool: &PgPool, job_id: Uuid) -> sqlx::Result<bool> {
    let status: Option<String> = sqlx::query_scalar("select status from job where job_id = $1")
        .bind(job_id)
        .fetch_optional(pool)
        .await?;
    Ok(status
        .as_deref()
        .and_then(JobStatus::parse)
        .is_some_and(JobStatus::is_active))
}

/// Advances every active job (the periodic safety net for [`advance`]).
pub async fn advance_active(pool: &PgPool) -> sqlx::Result<()> {
    if let Some(job_id) = db::active_job(pool).await? {
        advance(pool, job_id).await?;
    }
    Ok(())
}

/// The settings snapshot stored with a job.
pub fn settings_snapshot(settings: &crate::domain::settings::Settings) -> Value {
    json!({
        "find_concurrency": settings.find_concurrency,
        "forget_concurrency": settings.forget_concurrency,
        "multipart_threshold_bytes": settings.multipart_threshold_bytes,
        "report_retention_days": settings.report_retention_days,
        "job_schedule": settings.job_schedule,
    })
}
