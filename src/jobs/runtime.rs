//! Runs the job engine in a process: worker loops that claim tasks, and a supervisor that
//! advances the active job (in case a worker died between finishing its task and
//! advancing the job) and runs the scheduler.
//!
//! The scheduler starts jobs on the `job_schedule` cron setting and when a queued item's
//! deadline comes within the configured margin. Any number of processes run it; a
//! transaction-level Postgres advisory lock lets one act per tick, and the last cron
//! check time lives in the database so an occurrence starts one job, not one per replica.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db::job::{CreateJobError, NewJob};
use crate::domain::job::JobTrigger;
use crate::jobs::Engine;
use crate::jobs::find_phase::{FIND_MAPPER, FIND_OBJECTS, FindMapper, FindObjects};
use crate::jobs::forget_phase::{
    CLEANUP_OBJECT, CleanupObject, FORGET_OBJECT, ForgetObject, VERIFY_OBJECT, VerifyObject,
};
use crate::jobs::lifecycle;
use crate::jobs::tasks::{JobHook, TaskHandler, Worker};

/// The advisory lock key of the scheduler ("lethe" in ASCII).
const SCHEDULER_LOCK: i64 = 0x006c_6574_6865;
/// A deadline-triggered job is not started again within this time of the last job.
const DEADLINE_RETRY: chrono::Duration = chrono::Duration::hours(1);

/// How a process runs the engine.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Worker loops in this process (0 = none).
    pub workers: usize,
    /// Wait between claims when the queue is empty.
    pub poll: Duration,
    /// Task lease; heartbeats extend it every third of it.
    pub lease: Duration,
    /// Base delay of retry backoff.
    pub backoff: Duration,
    /// Supervisor and scheduler tick (0 = no scheduler in this process).
    pub scheduler_interval: Duration,
    /// Start a job when a queued item's deadline is this close.
    pub deadline_margin: chrono::Duration,
}

/// Advances a job after each of its tasks.
struct Advance(PgPool);

#[async_trait]
impl JobHook for Advance {
    async fn task_finished(&self, job_id: uuid::Uuid) {
        if let Err(e) = lifecycle::advance(&self.0, job_id).await {
            tracing::warn!(job.id = %job_id, error = %e, "could not advance the job");
        }
    }
}

/// A worker with every task handler of the engine.
pub fn worker(engine: &Engine, id: String, config: &RuntimeConfig) -> Worker {
    let mut handlers: HashMap<String, Arc<dyn TaskHandler>> = HashMap::new();
    handlers.insert(FIND_MAPPER.into(), Arc::new(FindMapper(engine.clone())));
    handlers.insert(
        FIND_OBJECTS.into(),
        Arc::new(FindObjects::new(engine.clone())),
    );
    handlers.insert(
        FORGET_OBJECT.into(),
        Arc::new(ForgetObject::new(engine.clone())),
    );
    handlers.insert(
        VERIFY_OBJECT.into(),
        Arc::new(VerifyObject::new(engine.clone())),
    );
    handlers.insert(
        CLEANUP_OBJECT.into(),
        Arc::new(CleanupObject::new(engine.clone())),
    );
    Worker {
        db: engine.db.clone(),
        id,
        lease: config.lease,
        backoff: config.backoff,
        handlers: Arc::new(handlers),
        job_hook: Some(Arc::new(Advance(engine.db.clone()))),
        metrics: engine.metrics.clone(),
    }
}

/// Runs the worker loops and the supervisor until `shutdown`; returns when all stopped.
pub async fn run(engine: Engine, config: RuntimeConfig, shutdown: CancellationToken) {
    let process = uuid::Uuid::new_v4().simple().to_string();
    let mut loops = tokio::task::JoinSet::new();
    for n in 0..config.workers {
        let w = worker(&engine, format!("{}-{n}", &process[..12]), &config);
        loops.spawn(work(w, config.poll, shutdown.clone()));
    }
    if !config.scheduler_interval.is_zero() {
        loops.spawn(supervise(
            engine.db.clone(),
            config.clone(),
            shutdown.clone(),
        ));
    }
    tracing::info!(workers = config.workers, "job engine running");
    while loops.join_next().await.is_some() {}
}

async fn work(worker: Worker, poll: Duration, shutdown: CancellationToken) {
    loop {
        // A task interrupted by shutdown loses its lease and runs again elsewhere.
        let ran = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = worker.run_once() => r,
        };
        let idle = match ran {
            Ok(Some(_)) => false,
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(error = %e, "task queue unavailable");
                true
            }
        };
        if idle {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}

async fn supervise(db: PgPool, config: RuntimeConfig, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(config.scheduler_interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(e) = lifecycle::advance_active(&db).await {
            tracing::warn!(error = %e, "could not advance the active job");
        }
        match schedule(&db, config.deadline_margin).await {
            Ok(Some(job_id)) => tracing::info!(job.id = %job_id, "scheduler started a job"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "scheduler failed"),
        }
        match expire_reports(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "deleted job reports past their retention"),
            Err(e) => tracing::warn!(error = %e, "could not delete expired job reports"),
        }
    }
}

/// Deletes the jobs (and their reports) that ended more than `report_retention_days` ago.
/// Safe in every process at once: each job row is deleted, and counted, once.
pub async fn expire_reports(db: &PgPool) -> sqlx::Result<u64> {
    let settings = crate::db::setting::get_settings(db).await?.settings();
    crate::db::job::delete_expired(db, settings.report_retention_days).await
}

/// One scheduler tick: starts a job when [`due`] says one is due. Returns the job.
pub async fn schedule(db: &PgPool, margin: chrono::Duration) -> anyhow::Result<Option<uuid::Uuid>> {
    let Some((trigger, settings)) = due(db, margin, Utc::now()).await? else {
        return Ok(None);
    };
    let new = NewJob {
        dry_run: false,
        data_mappers: &[],
        settings: lifecycle::settings_snapshot(&settings),
        trigger,
        created_by: "scheduler",
    };
    match lifecycle::create_job(db, &new).await {
        Ok(job_id) => Ok(Some(job_id)),
        Err(CreateJobError::AlreadyRunning | CreateJobError::NothingQueued) => Ok(None),
        Err(CreateJobError::Db(e)) => Err(e.into()),
    }
}

/// Whether a job is due at `now`, and why: the cron schedule fired since the last check
/// (which this records), or a queued item's deadline is within `margin` and no job was
/// created in the last hour (so a failing job is not restarted in a loop). None when
/// another process holds the scheduler lock this tick.
pub async fn due(
    db: &PgPool,
    margin: chrono::Duration,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<Option<(JobTrigger, crate::domain::settings::Settings)>> {
    let mut tx = db.begin().await?;
    let leader: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
        .bind(SCHEDULER_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !leader {
        return Ok(None);
    }
    let checked_at: chrono::DateTime<Utc> =
        sqlx::query_scalar("select cron_checked_at from scheduler_state for update")
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query("update scheduler_state set cron_checked_at = $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let settings = crate::db::setting::get_settings(&mut *tx).await?.settings();
    let cron_fired = settings
        .job_schedule
        .as_deref()
        .and_then(|expr| crate::domain::settings::parse_cron(expr).ok())
        .and_then(|cron| cron.find_next_occurrence(&checked_at, false).ok())
        .is_some_and(|next| next <= now);
    let deadline_near: bool = sqlx::query_scalar(
        r#"select exists (select 1 from deletion_queue_item where deadline <= $1)
              and not exists (select 1 from job where created_at > $2)"#,
    )
    .bind(now + margin)
    .bind(now - DEADLINE_RETRY)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(match (cron_fired, deadline_near) {
        (true, _) => Some((JobTrigger::Schedule, settings)),
        (false, true) => Some((JobTrigger::Deadline, settings)),
        (false, false) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration as Span;

    async fn queue_item(db: &PgPool, deadline: chrono::DateTime<Utc>) {
        sqlx::query(
            "insert into deletion_queue_item (deletion_queue_item_id, match_id, match_type, deadline, created_by)
             values ($1, '1', 'simple', $2, 't')",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(deadline)
        .execute(db)
        .await
        .unwrap();
    }

    /// A job that ended `days_ago` (None: still running), with 5 rows removed and an event.
    async fn job(db: &PgPool, days_ago: Option<i64>) -> uuid::Uuid {
        let job_id = uuid::Uuid::now_v7();
        let (status, finished) = match days_ago {
            Some(d) => ("completed", Some(Utc::now() - Span::days(d))),
            None => ("forgetting", None),
        };
        sqlx::query(
            "insert into job (job_id, status, dry_run, requested_data_mappers, settings, trigger, created_by, finished_at, rows_removed)
             values ($1, $2, false, '{}', '{}', 'api', 't', $3, 5)",
        )
        .bind(job_id)
        .bind(status)
        .bind(finished)
        .execute(db)
        .await
        .unwrap();
        crate::db::job::insert_event(
            db,
            job_id,
            "info",
            "job_created",
            "created",
            serde_json::json!({}),
        )
        .await
        .unwrap();
        job_id
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn reports_past_their_retention_go_and_the_work_totals_stay(db: PgPool) {
        sqlx::query("update setting set report_retention_days = 30")
            .execute(&db)
            .await
            .unwrap();
        let old = job(&db, Some(31)).await;
        let recent = job(&db, Some(29)).await;
        let running = job(&db, None).await;
        let before = crate::db::job::gauges(&db).await.unwrap();
        assert!(
            before.contains("lethe_job_rows_total{kind=\"removed\"} 15"),
            "{before}"
        );

        assert_eq!(expire_reports(&db).await.unwrap(), 1);
        let left: Vec<uuid::Uuid> = sqlx::query_scalar("select job_id from job order by job_id")
            .fetch_all(&db)
            .await
            .unwrap();
        assert_eq!(left, [recent, running]);
        let events: i64 = sqlx::query_scalar("select count(*) from job_event where job_id = $1")
            .bind(old)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(events, 0, "the report went with its job");
        let after = crate::db::job::gauges(&db).await.unwrap();
        assert!(
            after.contains("lethe_job_rows_total{kind=\"removed\"} 15"),
            "{after}"
        );
        // Nothing more to delete; a second process running the same tick changes nothing.
        assert_eq!(expire_reports(&db).await.unwrap(), 0);
        let retired: i64 =
            sqlx::query_scalar("select total from job_stats_retired where stat = 'jobs'")
                .fetch_one(&db)
                .await
                .unwrap();
        assert_eq!(retired, 1);
    }

    async fn set_schedule(db: &PgPool, cron: &str, checked_at: chrono::DateTime<Utc>) {
        sqlx::query("update setting set job_schedule = $1")
            .bind(cron)
            .execute(db)
            .await
            .unwrap();
        sqlx::query("update scheduler_state set cron_checked_at = $1")
            .bind(checked_at)
            .execute(db)
            .await
            .unwrap();
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_cron_occurrence_since_the_last_check_is_due_once(db: PgPool) {
        let t0 = "2026-11-28T02:59:00Z".parse().unwrap();
        set_schedule(&db, "0 3 * * *", t0).await;
        let before = t0 + Span::seconds(30);
        assert!(due(&db, Span::hours(72), before).await.unwrap().is_none());
        let after = t0 + Span::minutes(2);
        let (trigger, _) = due(&db, Span::hours(72), after).await.unwrap().unwrap();
        assert_eq!(trigger, JobTrigger::Schedule);
        // The next tick (here or on another replica) sees the occurrence handled.
        assert!(
            due(&db, Span::hours(72), after + Span::seconds(30))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_near_deadline_is_due_unless_a_job_started_within_the_hour(db: PgPool) {
        let now = Utc::now();
        queue_item(&db, now + Span::hours(100)).await;
        assert!(due(&db, Span::hours(72), now).await.unwrap().is_none());
        queue_item(&db, now + Span::hours(10)).await;
        let (trigger, _) = due(&db, Span::hours(72), now).await.unwrap().unwrap();
        assert_eq!(trigger, JobTrigger::Deadline);
        sqlx::query(
            "insert into job (job_id, dry_run, settings, trigger, created_by, status)
             values ($1, true, '{}', 'deadline', 'scheduler', 'find_failed')",
        )
        .bind(uuid::Uuid::now_v7())
        .execute(&db)
        .await
        .unwrap();
        assert!(due(&db, Span::hours(72), now).await.unwrap().is_none());
        assert!(
            due(&db, Span::hours(72), now + Span::hours(2))
                .await
                .unwrap()
                .is_some()
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn only_the_process_holding_the_scheduler_lock_acts(db: PgPool) {
        let now = Utc::now();
        queue_item(&db, now).await;
        let mut other = db.begin().await.unwrap();
        let held: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
            .bind(SCHEDULER_LOCK)
            .fetch_one(&mut *other)
            .await
            .unwrap();
        assert!(held);
        assert!(due(&db, Span::hours(72), now).await.unwrap().is_none());
        other.rollback().await.unwrap();
        assert!(due(&db, Span::hours(72), now).await.unwrap().is_some());
    }
}
