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
use crate::jobs::lifecycle;
use crate::jobs::tasks::{JobHook, TaskHandler, Worker};

/// The advisory lock key of the scheduler ("lethe" in ASCII).
const SCHEDULER_LOCK: i64 = 0x6c65_7468_65;
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
    Worker {
        db: engine.db.clone(),
        id,
        lease: config.lease,
        backoff: config.backoff,
        handlers: Arc::new(handlers),
        job_hook: Some(Arc::new(Advance(engine.db.clone()))),
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
    }
}

/// One scheduler tick: starts a job when the cron schedule fired since the last check or
/// a queued item's deadline is within `margin`. Returns the job it started.
pub async fn schedule(db: &PgPool, margin: chrono::Duration) -> anyhow::Result<Option<uuid::Uuid>> {
    let mut tx = db.begin().await?;
    let leader: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
        .bind(SCHEDULER_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !leader {
        return Ok(None);
    }
    let now = Utc::now();
    let checked_at: chrono::DateTime<Utc> = sqlx::query_scalar(
        r#"with previous as (select cron_checked_at from scheduler_state for update)
           update scheduler_state set cron_checked_at = $1
           returning (select cron_checked_at from previous)"#,
    )
    .bind(now)
    .fetch_one(&mut *tx)
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
    let trigger = match (cron_fired, deadline_near) {
        (true, _) => JobTrigger::Schedule,
        (false, true) => JobTrigger::Deadline,
        (false, false) => return Ok(None),
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
        Err(CreateJobError::ForgetUnavailable) => {
            tracing::warn!(
                trigger = trigger.as_str(),
                "scheduled job not started: this build runs dry runs only"
            );
            Ok(None)
        }
        Err(CreateJobError::Db(e)) => Err(e.into()),
    }
}
