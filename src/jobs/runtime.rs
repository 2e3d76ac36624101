//! Runs the job engine in a process: worker loops that claim tasks, and a supervisor that
//! advances the active job (in case a worker died between finishing its task and
//! advancing the job), runs the scheduler and writes the hourly audit checkpoint
//! (`jobs::audit_checkpoint`).
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
use crate::db::scheduler;
use crate::domain::job::JobTrigger;
use crate::domain::settings::{JobSettings, Settings};
use crate::jobs::advance;
use crate::jobs::find_mapper::FindMapper;
use crate::jobs::find_objects::FindObjects;
use crate::jobs::object::cleanup::Cleanup;
use crate::jobs::object::forget::Forget;
use crate::jobs::object::verify::Verify;
use crate::jobs::tasks::{JobHook, Worker};
use crate::jobs::{Context, Engine, handler};
use crate::receipt::Issuer;

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
    /// Workers lost in a row on one task before it fails (a poison task).
    pub max_crashes: i32,
    /// Base delay of retry backoff.
    pub backoff: Duration,
    /// Supervisor and scheduler tick (0 = no scheduler in this process).
    pub scheduler_interval: Duration,
    /// Start a job when a queued item's deadline is this close.
    pub deadline_margin: chrono::Duration,
}

/// Advances a job after each of its tasks.
struct Advance(PgPool, Arc<Issuer>);

#[async_trait]
impl JobHook for Advance {
    async fn task_finished(&self, job_id: uuid::Uuid, failed_for_good: bool) {
        if let Err(e) = advance::after_task(&self.0, &self.1, job_id, failed_for_good).await {
            tracing::warn!(job.id = %job_id, error = %e, "could not advance the job");
        }
    }
}

/// A worker with every task handler of the engine.
pub fn worker(engine: &Engine, id: String, config: &RuntimeConfig) -> Worker {
    let ctx = Arc::new(Context::new(engine.clone()));
    let handlers: HashMap<_, _> = [
        handler::<FindMapper>(&ctx),
        handler::<FindObjects>(&ctx),
        handler::<Forget>(&ctx),
        handler::<Verify>(&ctx),
        handler::<Cleanup>(&ctx),
        handler::<crate::jobs::table_commit::CommitTable>(&ctx),
        handler::<crate::jobs::table_purge::PurgeTable>(&ctx),
    ]
    .into_iter()
    .collect();
    Worker {
        db: engine.db.clone(),
        id,
        lease: config.lease,
        max_crashes: config.max_crashes,
        backoff: config.backoff,
        handlers: Arc::new(handlers),
        job_hook: Some(Arc::new(Advance(
            engine.db.clone(),
            engine.receipts.clone(),
        ))),
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
    if config.workers > 0 {
        loops.spawn(maintain(engine.db.clone(), shutdown.clone()));
    }
    if !config.scheduler_interval.is_zero() {
        loops.spawn(supervise(
            engine.db.clone(),
            engine.receipts.clone(),
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

/// How often a process with workers checks the job tables for dead rows.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(2);

/// Vacuums the job tables when dead rows pile up (`db::maintenance`), so the cost of a
/// claim does not grow with the job even where autovacuum is off or behind.
async fn maintain(db: PgPool, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(MAINTENANCE_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match crate::db::maintenance::vacuum_if_needed(&db).await {
            Ok(tables) if !tables.is_empty() => tracing::debug!(?tables, "vacuumed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not vacuum the job tables"),
        }
    }
}

async fn supervise(
    db: PgPool,
    issuer: Arc<Issuer>,
    config: RuntimeConfig,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(config.scheduler_interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(e) = advance::advance_active(&db, &issuer).await {
            tracing::warn!(error = %e, "could not advance the active job");
        }
        match advance::settle_cancelled(&db, &issuer).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "receipts issued for cancelled jobs"),
            Err(e) => tracing::warn!(error = %e, "could not list the jobs that owe receipts"),
        }
        match schedule(&db, &issuer, config.deadline_margin).await {
            Ok(Some(job_id)) => tracing::info!(job.id = %job_id, "scheduler started a job"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "scheduler failed"),
        }
        match expire_reports(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "deleted job reports past their retention"),
            Err(e) => tracing::warn!(error = %e, "could not delete expired job reports"),
        }
        // Hourly, counting the checkpoints jobs write as they end.
        let every = crate::jobs::audit_checkpoint::EVERY;
        match crate::jobs::audit_checkpoint::write_if_due(&db, &issuer, every).await {
            Ok(Some(cp)) => tracing::info!(seq = cp.seq, "audit checkpoint written"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not write the audit checkpoint"),
        }
        match crate::db::deletion_queue_item::expire_add_keys(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(keys = n, "forgot idempotency keys past their day"),
            Err(e) => tracing::warn!(error = %e, "could not forget old idempotency keys"),
        }
    }
}

/// Deletes the jobs (and their reports) that ended more than `report_retention_days` ago.
/// Safe in every process at once: each job row is deleted, and counted, once.
pub async fn expire_reports(db: &PgPool) -> sqlx::Result<u64> {
    let settings = crate::db::setting::get_settings(db).await?.settings();
    crate::db::job::delete_expired(db, settings.report_retention_days).await
}

/// Near-deadline items weighed per tick (the rest wait for the next).
const MAX_NEAR_ITEMS: i64 = 10_000;

/// One scheduler tick: starts a job when [`due`] says one is due. Returns the job.
///
/// A `job_schedule` job is an operator's decision and covers the whole queue. A deadline
/// job is the scheduler's own: it covers only the items whose deadline is near, and only
/// over the mappers an operator enabled for automatic jobs (`automatic_jobs`); near items
/// no such mapper covers raise an alert instead (an audit row naming them by keyed hash
/// and creator, at most once an hour, and the `lethe_queue_items_deadline_unattended`
/// gauge). So a requester's deadline never starts an erasure nobody reviewed.
pub async fn schedule(
    db: &PgPool,
    issuer: &Issuer,
    margin: chrono::Duration,
) -> anyhow::Result<Option<uuid::Uuid>> {
    let now = Utc::now();
    let Some((trigger, settings)) = due(db, margin, now).await? else {
        return Ok(None);
    };
    let (automatic, deadline_before, cause) = match trigger {
        JobTrigger::Deadline => match deadline_cause(db, now + margin, now).await? {
            Some(decided) => decided,
            None => return Ok(None),
        },
        _ => (Vec::new(), None, serde_json::Value::Null),
    };
    let new = NewJob {
        dry_run: false,
        data_mappers: &automatic,
        settings: JobSettings::from(&settings),
        trigger,
        actor: crate::db::audit_event::Actor::SCHEDULER,
        deadline_before,
        cause,
    };
    match advance::create_job(db, issuer, &new).await {
        Ok(job_id) => Ok(Some(job_id)),
        Err(
            CreateJobError::AlreadyRunning
            | CreateJobError::NothingQueued
            | CreateJobError::Settling,
        ) => Ok(None),
        Err(CreateJobError::Db(e)) => Err(e.into()),
    }
}

/// For a deadline job: the automatic mappers, the deadline bound, and the cause its audit
/// row names (the near items they cover: keyed hash, creator, deadline). None when no
/// automatic mapper covers a near item; items none covers are alerted on.
async fn deadline_cause(
    db: &PgPool,
    deadline: chrono::DateTime<Utc>,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<
    Option<(
        Vec<String>,
        Option<chrono::DateTime<Utc>>,
        serde_json::Value,
    )>,
> {
    use crate::db::server_secret;
    use crate::domain::match_id::match_hash;
    use crate::jobs::finalize::{REPORT_KEY, random_key};
    let mut tx = db.begin().await?;
    let (items, automatic) = scheduler::near_items(&mut tx, deadline, MAX_NEAR_ITEMS).await?;
    let key = server_secret::get_or_create(&mut tx, REPORT_KEY, random_key).await?;
    let (covered, alone): (Vec<_>, Vec<_>) = items.iter().partition(|i| {
        !automatic.is_empty()
            && (i.data_mappers.is_empty() || i.data_mappers.iter().any(|m| automatic.contains(m)))
    });
    let named = |items: &[&scheduler::NearItem]| -> Vec<serde_json::Value> {
        items
            .iter()
            .map(|i| {
                serde_json::json!({"match_hash": match_hash(&key, &i.match_id),
                                   "created_by": i.created_by, "deadline": i.deadline,
                                   "data_mappers": i.data_mappers})
            })
            .collect()
    };
    if !alone.is_empty()
        && scheduler::claim_deadline_alert(&mut tx, now, now - DEADLINE_RETRY).await?
    {
        tracing::warn!(
            items = alone.len(),
            "queued items are near their deadline and no data mapper enabled for automatic jobs covers them: start a job"
        );
        let details = serde_json::json!({"items": named(&alone), "deadline_before": deadline});
        let event = crate::db::audit_event::Actor::SCHEDULER.event(
            "scheduler.deadline_alert",
            "deletion_queue",
            None,
            details,
        );
        crate::db::audit_event::insert_audit_event(&mut *tx, event).await?;
    }
    tx.commit().await?;
    if covered.is_empty() {
        return Ok(None);
    }
    let cause = serde_json::json!({"deadline_items": named(&covered)});
    Ok(Some((automatic, Some(deadline), cause)))
}

/// Whether a job is due at `now`, and why: the cron schedule fired since the last check
/// (which this records), or a queued item's deadline is within `margin` and no job was
/// created in the last hour (so a failing job is not restarted in a loop). None when
/// another process holds the scheduler lock this tick.
pub async fn due(
    db: &PgPool,
    margin: chrono::Duration,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<Option<(JobTrigger, Settings)>> {
    let mut tx = db.begin().await?;
    if !scheduler::try_lead(&mut tx).await? {
        return Ok(None);
    }
    let checked_at = scheduler::swap_cron_checked_at(&mut tx, now).await?;
    let settings = crate::db::setting::get_settings(&mut *tx).await?.settings();
    let cron_fired = settings
        .job_schedule
        .as_deref()
        .and_then(|expr| crate::domain::settings::parse_cron(expr).ok())
        .and_then(|cron| cron.find_next_occurrence(&checked_at, false).ok())
        .is_some_and(|next| next <= now);
    let deadline_near =
        scheduler::deadline_near(&mut tx, now + margin, now - DEADLINE_RETRY).await?;
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
    use crate::db::job::tests::insert_bare;
    use crate::db::{job as jobs, job_event, setting};
    use crate::domain::job::{EventLevel, JobStatus};
    use crate::domain::queue::{MatchId, NewQueueItem, Scalar};
    use chrono::Duration as Span;

    async fn queue_item(db: &PgPool, deadline: chrono::DateTime<Utc>) {
        let item = NewQueueItem {
            match_id: MatchId::Simple(Scalar::Text("1".into())),
            data_mappers: vec![],
            deadline,
            reference: None,
        };
        crate::db::deletion_queue_item::insert_queue_items(db, &[item], "t")
            .await
            .unwrap();
    }

    /// A job that ended `days_ago` (None: still running), with 5 rows removed and an event.
    async fn job(db: &PgPool, days_ago: Option<i64>) -> uuid::Uuid {
        let job_id = match days_ago {
            Some(d) => {
                insert_bare(db, JobStatus::Completed, Some(Utc::now() - Span::days(d))).await
            }
            None => insert_bare(db, JobStatus::Forgetting, None).await,
        };
        job_event::insert(
            db,
            job_id,
            EventLevel::Info,
            "job_created",
            "created",
            serde_json::json!({}),
        )
        .await
        .unwrap();
        job_id
    }

    async fn update_settings(db: &PgPool, change: impl FnOnce(&mut Settings)) {
        let mut settings = setting::get_settings(db).await.unwrap().settings();
        change(&mut settings);
        setting::update_settings(db, &settings, "t").await.unwrap();
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn reports_past_their_retention_go_and_the_work_totals_stay(db: PgPool) {
        update_settings(&db, |s| s.report_retention_days = 30).await;
        let old = job(&db, Some(31)).await;
        let recent = job(&db, Some(29)).await;
        let running = job(&db, None).await;
        let before = jobs::lifetime_totals(&db).await.unwrap();
        assert_eq!(before.rows_removed, 15, "{before:?}");

        assert_eq!(expire_reports(&db).await.unwrap(), 1);
        let mut left: Vec<uuid::Uuid> = jobs::list_jobs(&db, None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.job_id)
            .collect();
        left.sort();
        assert_eq!(left, [recent, running]);
        let events = job_event::list(&db, old, None, 10).await.unwrap();
        assert_eq!(events.len(), 0, "the report went with its job");
        let after = jobs::lifetime_totals(&db).await.unwrap();
        assert_eq!(after.rows_removed, 15, "{after:?}");
        // Nothing more to delete; a second process running the same tick changes nothing.
        assert_eq!(expire_reports(&db).await.unwrap(), 0);
        assert_eq!(jobs::retired_total(&db, "jobs").await.unwrap(), 1);
    }

    async fn set_schedule(db: &PgPool, cron: &str, checked_at: chrono::DateTime<Utc>) {
        update_settings(db, |s| s.job_schedule = Some(cron.to_owned())).await;
        let mut conn = db.acquire().await.unwrap();
        scheduler::set_cron_checked_at(&mut conn, checked_at)
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
        insert_bare(&db, JobStatus::FindFailed, None).await;
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
        assert!(scheduler::try_lead(&mut other).await.unwrap());
        assert!(due(&db, Span::hours(72), now).await.unwrap().is_none());
        other.rollback().await.unwrap();
        assert!(due(&db, Span::hours(72), now).await.unwrap().is_some());
    }
}
