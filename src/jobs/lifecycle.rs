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
/// finishing its task and calling this). Enqueues the next phase's tasks in the same
/// transaction; a phase with nothing to do is passed through at once.
pub async fn advance(pool: &PgPool, job_id: Uuid) -> sqlx::Result<()> {
    // The common case, a phase with tasks still open, costs one index probe and no lock.
    // Safe without the lock: every task advances after its own record committed, so the
    // last one to finish sees no open task and takes the locked path below.
    if db::has_open_tasks(pool, job_id).await? {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    let Some((mut status, dry_run)) = db::lock_job(&mut *tx, job_id).await? else {
        return Ok(());
    };
    let (open, failed_tasks, task_error) = db::task_counts(&mut *tx, job_id).await?;
    if !status.is_active() || open > 0 {
        return Ok(());
    }
    loop {
        let next = match status {
            JobStatus::Queued | JobStatus::Finding => {
                let failed_mappers = db::failed_mappers(&mut *tx, job_id).await?;
                let next = after_find(dry_run, failed_mappers as u64, failed_tasks as u64);
                find_finished(
                    &mut tx,
                    job_id,
                    next,
                    failed_mappers,
                    failed_tasks,
                    task_error.as_deref(),
                )
                .await?;
                next
            }
            JobStatus::Forgetting => {
                // Objects whose forget task failed for good are failed objects.
                let lost = sqlx::query(
                    "update job_object set forget_state = 'failed', forget_error = 'the forget task failed'
                     where job_id = $1 and forget_state = 'found'",
                )
                .bind(job_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if lost > 0 {
                    db::add_stats(
                        &mut *tx,
                        job_id,
                        &db::JobStats {
                            objects_forget_failed: lost as i64,
                            ..Default::default()
                        },
                    )
                    .await?;
                }
                JobStatus::Verifying
            }
            JobStatus::Verifying => {
                sqlx::query(
                    "update job_object set forget_state = 'verify_failed', forget_error = 'the verify task failed'
                     where job_id = $1 and forget_state = 'written'",
                )
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
                JobStatus::CleaningUp
            }
            _ => finalize(&mut tx, job_id).await?,
        };
        db::transition(&mut *tx, job_id, &[status], next).await?;
        status = next;
        if !next.is_active() {
            finished_event(&mut tx, job_id, next).await?;
            break;
        }
        let (state, kind) = match next {
            JobStatus::Forgetting => ("found", crate::jobs::forget_phase::FORGET_OBJECT),
            JobStatus::Verifying => ("written", crate::jobs::forget_phase::VERIFY_OBJECT),
            _ => ("verified", crate::jobs::forget_phase::CLEANUP_OBJECT),
        };
        let ids = db::object_ids_in_state(&mut *tx, job_id, state).await?;
        for id in &ids {
            crate::jobs::tasks::enqueue_for_job(
                &mut *tx,
                Some(job_id),
                kind,
                &json!({"job_id": job_id, "job_object_id": id}),
                FIND_MAX_ATTEMPTS,
            )
            .await?;
        }
        db::insert_event(
            &mut *tx,
            job_id,
            "info",
            "phase_started",
            &format!("{} ({} object(s))", next.as_str(), ids.len()),
            json!({"status": next.as_str(), "objects": ids.len()}),
        )
        .await?;
        if !ids.is_empty() {
            break;
        }
    }
    tx.commit().await?;
    tracing::info!(job.id = %job_id, status = status.as_str(), "job advanced");
    Ok(())
}

async fn find_finished(
    tx: &mut sqlx::PgConnection,
    job_id: Uuid,
    next: JobStatus,
    failed_mappers: i64,
    failed_tasks: i64,
    task_error: Option<&str>,
) -> sqlx::Result<()> {
    if failed_tasks > 0 {
        db::insert_event(
            &mut *tx,
            job_id,
            "error",
            "task_failed",
            &format!(
                "{failed_tasks} find task(s) failed; first error: {}",
                task_error.unwrap_or_default()
            ),
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
    .await
}

/// Ends a job after cleanup: takes the items every mapper of which succeeded off the
/// queue, keeping only a keyed hash of each in the report, and decides the final state.
async fn finalize(tx: &mut sqlx::PgConnection, job_id: Uuid) -> sqlx::Result<JobStatus> {
    let failed_mappers: Vec<String> = sqlx::query_scalar(
        "select distinct data_mapper_id from job_object
         where job_id = $1 and (status = 'failed' or forget_state in ('failed', 'verify_failed'))",
    )
    .bind(job_id)
    .fetch_all(&mut *tx)
    .await?;
    let job_mappers = db::list_job_mappers(&mut *tx, job_id).await?;
    // An item naming no mapper applies to every mapper, searched by this job or not.
    let all_mappers: Vec<String> = sqlx::query_scalar("select data_mapper_id from data_mapper")
        .fetch_all(&mut *tx)
        .await?;
    let key = crate::db::server_secret::get_or_create(&mut *tx, REPORT_KEY, random_key).await?;
    let items: Vec<(Uuid, serde_json::Value, Vec<String>)> = sqlx::query_as(
        "select q.deletion_queue_item_id, q.match_id, q.data_mappers from job_queue_item j
         join deletion_queue_item q using (deletion_queue_item_id) where j.job_id = $1",
    )
    .bind(job_id)
    .fetch_all(&mut *tx)
    .await?;
    let (mut erased, mut hashes, mut mappers, mut statuses) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, match_id, named) in items {
        let applies: Vec<String> = if named.is_empty() {
            all_mappers.iter().chain(&job_mappers).cloned().collect()
        } else {
            named
        };
        let ok = applies
            .iter()
            .all(|m| job_mappers.contains(m) && !failed_mappers.contains(m));
        let mut applies: Vec<String> = applies
            .into_iter()
            .filter(|m| job_mappers.contains(m))
            .collect();
        applies.sort();
        applies.dedup();
        if ok {
            erased.push(id);
        }
        hashes.push(match_hash(&key, &match_id));
        mappers.push(applies.join(","));
        statuses.push(if ok { "erased" } else { "kept" });
    }
    sqlx::query(
        "insert into job_match (job_id, match_hash, data_mappers, status)
         select $1, h, case when m = '' then '{}'::text[] else string_to_array(m, ',') end, s
         from unnest($2::text[], $3::text[], $4::text[]) as t(h, m, s)
         on conflict do nothing",
    )
    .bind(job_id)
    .bind(&hashes)
    .bind(&mappers)
    .bind(&statuses)
    .execute(&mut *tx)
    .await?;
    sqlx::query("delete from deletion_queue_item where deletion_queue_item_id = any($1)")
        .bind(&erased)
        .execute(&mut *tx)
        .await?;
    db::add_stats(
        &mut *tx,
        job_id,
        &db::JobStats {
            matches_erased: erased.len() as i64,
            ..Default::default()
        },
    )
    .await?;
    let counts = db::forget_state_counts(&mut *tx, job_id).await?;
    let get = |s: &str| counts.get(s).copied().unwrap_or(0);
    let failed = get("failed") + get("verify_failed");
    let done = get("verified") + get("unchanged") + get("skipped");
    let cleanup_failed: i64 = sqlx::query_scalar(
        "select count(*) from job_object where job_id = $1 and cleanup_state = 'failed'",
    )
    .bind(job_id)
    .fetch_one(&mut *tx)
    .await?;
    let status = match (failed, done, cleanup_failed) {
        (0, _, 0) => JobStatus::Completed,
        (0, _, _) => JobStatus::CompletedCleanupFailed,
        (_, 0, _) => JobStatus::ForgetFailed,
        _ => JobStatus::ForgetPartiallyFailed,
    };
    db::insert_event(
        &mut *tx,
        job_id,
        if failed > 0 { "error" } else { "info" },
        "queue_updated",
        &format!(
            "{} queue item(s) erased and taken off the queue; {} kept for the next job",
            erased.len(),
            hashes.len() - erased.len()
        ),
        json!({"erased": erased.len(), "kept": hashes.len() - erased.len()}),
    )
    .await?;
    Ok(status)
}

/// Name of the report's HMAC key in `server_secret`.
pub const REPORT_KEY: &str = "report_hmac";

fn random_key() -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    while key.len() < 64 {
        key.extend_from_slice(Uuid::new_v4().as_bytes());
    }
    key
}

/// HMAC-SHA256 of a match id's JSON text, hex: the report's only trace of it.
pub fn match_hash(key: &[u8], match_id: &serde_json::Value) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(match_id.to_string().as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
