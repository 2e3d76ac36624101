//! The task queue: claim with `for update skip locked` and a lease, extend the lease with
//! heartbeats while working, finish in a short transaction. No transaction is held while a
//! handler runs. A task whose worker died is claimed again once its lease has ended, as
//! the same attempt: a crash is not a failure. Workers lost in a row on one task are
//! counted apart, and a task over that crash budget (it kills its worker) ends `failed`,
//! named in a job event; progress a task records (`db::task::progressed`) resets the count.
//! Retryable errors back off exponentially; fatal errors and panics fail the task.
//! A task interrupted because the database went away (a restart, a failover, a
//! terminated connection) is treated as its worker's death, not as a failure: its lease
//! is given up (or left to expire) and it runs again as the same attempt, one crash
//! counted; a heartbeat that cannot reach the database keeps the task running until the
//! lease it holds has run out.
//! Handlers must be idempotent: a task may run again after a crash.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::PgPool;
use tracing::Instrument;

use crate::catalog::CatalogError;
use crate::catalog::source::SourceError;
use crate::db::task as db;
use crate::metrics::{Metrics, TaskOutcome};
use crate::storage::StorageError;

pub use crate::db::task::Task;

/// How a task failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Throttling, timeouts, 5xx: try again later.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Schema mismatch, access denied, corrupt input: do not try again.
    #[error("fatal: {0}")]
    Fatal(String),
    /// The database went away mid-task (its connection lost, the server restarting):
    /// not the task's failure; it runs again as the same attempt, counted as a crash.
    #[error("interrupted: {0}")]
    Interrupted(String),
}

impl From<sqlx::Error> for TaskError {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_transient(&e) {
            TaskError::Interrupted(format!("database: {e}"))
        } else {
            TaskError::Retryable(format!("database: {e}"))
        }
    }
}

impl From<StorageError> for TaskError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Unavailable(m) => {
                TaskError::Retryable(format!("storage unavailable: {m}"))
            }
            StorageError::NotFound => TaskError::Fatal("bucket or location not found".to_owned()),
            other => TaskError::Fatal(other.to_string()),
        }
    }
}

impl From<CatalogError> for TaskError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Unavailable(m) => {
                TaskError::Retryable(format!("catalog unavailable: {m}"))
            }
            other => TaskError::Fatal(other.to_string()),
        }
    }
}

impl From<SourceError> for TaskError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Catalog(e) => e.into(),
            SourceError::Storage(e) => e.into(),
            other => TaskError::Fatal(other.to_string()),
        }
    }
}

/// Runs tasks of one kind.
#[async_trait]
pub trait TaskHandler: Send + Sync + 'static {
    async fn run(&self, task: &Task) -> Result<(), TaskError>;
}

/// Told after a job's task finished (whatever its outcome), so the job can advance.
#[async_trait]
pub trait JobHook: Send + Sync + 'static {
    /// `failed_for_good`: the task ended `failed` (no retry left).
    async fn task_finished(&self, job_id: uuid::Uuid, failed_for_good: bool);
}

/// Enqueues a task that works for no job; call it in the transaction of the write that
/// causes it. Job tasks are enqueued through `jobs::enqueue`, typed.
pub async fn enqueue(
    db: impl sqlx::PgExecutor<'_>,
    kind: &str,
    payload: &Value,
    max_attempts: i32,
) -> sqlx::Result<i64> {
    db::insert(db, None, kind, payload, max_attempts).await
}

/// Claims the next runnable task: a running task whose lease expired (its worker died)
/// first, else the queued task due first (one statement, `db::task::claim`); a task whose
/// worker died `max_crashes` times in a row is failed instead.
pub async fn claim(
    pool: &PgPool,
    owner: &str,
    lease: Duration,
    max_crashes: i32,
) -> sqlx::Result<Option<Task>> {
    let mut tx = db::begin_bookkeeping(pool).await?;
    let task = db::claim(&mut *tx, owner, lease, max_crashes).await?;
    tx.commit().await?;
    Ok(task)
}

/// Records the outcome; false when the task is no longer this worker's (its result is
/// dropped: whoever holds it now will finish it), or its record already ended it.
async fn finish(
    pool: &PgPool,
    task: &Task,
    owner: &str,
    outcome: &Result<(), TaskError>,
    backoff: Duration,
) -> sqlx::Result<bool> {
    let (state, delay, error) = match outcome {
        Ok(()) => ("succeeded", Duration::ZERO, None),
        // An interrupted task is given up before (`Worker::run_once`); should one get
        // here, it is retried as a retryable failure would be.
        Err(TaskError::Retryable(e) | TaskError::Interrupted(e))
            if task.attempts < task.max_attempts =>
        {
            let factor = 2u32.pow(task.attempts.saturating_sub(1).clamp(0, 16) as u32);
            ("queued", backoff.saturating_mul(factor), Some(e.clone()))
        }
        Err(e) => ("failed", Duration::ZERO, Some(e.to_string())),
    };
    // One statement: after a record it changes nothing (and writes no WAL).
    db::finish(pool, task, owner, state, delay, error.as_deref()).await
}

/// A worker: claims tasks and runs their handlers.
#[derive(Clone)]
pub struct Worker {
    pub db: PgPool,
    pub id: String,
    pub lease: Duration,
    /// Workers lost in a row on one task before it fails (a poison task).
    pub max_crashes: i32,
    /// Base delay of the exponential retry backoff.
    pub backoff: Duration,
    pub handlers: Arc<HashMap<String, Arc<dyn TaskHandler>>>,
    /// Told when a job's task finishes.
    pub job_hook: Option<Arc<dyn JobHook>>,
    /// Task durations, outcomes and re-runs.
    pub metrics: Arc<Metrics>,
}

impl Worker {
    /// Claims and runs one task; None when nothing was runnable.
    pub async fn run_once(&self) -> sqlx::Result<Option<(Task, Result<(), TaskError>)>> {
        let claimed = tokio::time::Instant::now();
        let Some(task) = claim(&self.db, &self.id, self.lease, self.max_crashes).await? else {
            return Ok(None);
        };
        if task.attempts > 1 || task.crashes > 0 {
            self.metrics.count_task_rerun(&task.kind);
        }
        let started = std::time::Instant::now();
        let outcome = match self.handlers.get(&task.kind).cloned() {
            // A previous attempt recorded its effects, then its worker died: done.
            _ if task.recorded_at.is_some() => Ok(()),
            None => Err(TaskError::Fatal(format!(
                "no handler for task kind {:?}",
                task.kind
            ))),
            Some(handler) => self.run_with_heartbeat(handler, &task, claimed).await,
        };
        let label = match &outcome {
            Ok(()) => TaskOutcome::Ok,
            Err(TaskError::Interrupted(_)) => TaskOutcome::Retry,
            Err(TaskError::Retryable(_)) if !task.is_last_attempt() => TaskOutcome::Retry,
            Err(_) => TaskOutcome::Failed,
        };
        self.metrics
            .observe_task(&task.kind, label, started.elapsed());
        if let Err(TaskError::Interrupted(e)) = &outcome {
            tracing::warn!(task.id = task.task_id, task.kind = %task.kind, job.id = ?task.job_id, attempt = task.attempts, error = %e, "task interrupted: the database went away; it runs again as the same attempt");
            // Claimable at once, as a lost worker's task. Should the database still be
            // away, the lease runs out by itself.
            db::give_up(&self.db, task.task_id, &self.id).await?;
            return Ok(Some((task, outcome)));
        }
        if let Err(e) = &outcome {
            tracing::warn!(task.id = task.task_id, task.kind = %task.kind, job.id = ?task.job_id, attempt = task.attempts, error = %e, "task failed");
        }
        finish(&self.db, &task, &self.id, &outcome, self.backoff).await?;
        if let (Some(hook), Some(job_id)) = (&self.job_hook, task.job_id) {
            hook.task_finished(job_id, label == TaskOutcome::Failed)
                .await;
        }
        Ok(Some((task, outcome)))
    }

    /// Runs the handler while a heartbeat extends the lease taken at `claimed`.
    async fn run_with_heartbeat(
        &self,
        handler: Arc<dyn TaskHandler>,
        task: &Task,
        claimed: tokio::time::Instant,
    ) -> Result<(), TaskError> {
        // Every log line of the handler carries the task, its job and (once the handler
        // records it) the object it works on.
        let span = tracing::info_span!(
            "task",
            task.id = task.task_id,
            task.kind = %task.kind,
            job.id = tracing::field::Empty,
            object.key = tracing::field::Empty,
        );
        if let Some(job_id) = task.job_id {
            span.record("job.id", tracing::field::display(job_id));
        }
        let running = {
            let task = task.clone();
            tokio::spawn(async move { handler.run(&task).await }.instrument(span))
        };
        let mut beat = tokio::time::interval((self.lease / 3).max(Duration::from_millis(10)));
        beat.tick().await;
        // Until when the lease is surely this worker's (from before the claim's answer).
        let mut held_until = claimed + self.lease;
        tokio::pin!(running);
        loop {
            tokio::select! {
                joined = &mut running => {
                    return match joined {
                        Ok(result) => result,
                        Err(e) if e.is_panic() => Err(TaskError::Retryable("the task panicked".to_owned())),
                        Err(e) => Err(TaskError::Retryable(format!("the task was cancelled: {e}"))),
                    };
                }
                _ = beat.tick() => {
                    let sent = tokio::time::Instant::now();
                    let beat = db::heartbeat(&self.db, task.task_id, &self.id, self.lease);
                    match tokio::time::timeout_at(held_until, beat).await {
                        Ok(Ok(true)) => held_until = sent + self.lease,
                        Ok(Ok(false)) => {
                            running.abort();
                            return Err(TaskError::Retryable("lease lost".to_owned()));
                        }
                        // The database is away: go on while the lease lasts.
                        Ok(Err(e)) if tokio::time::Instant::now() < held_until => {
                            tracing::warn!(task.id = task.task_id, error = %e, "could not extend the lease; trying again");
                        }
                        Ok(Err(_)) | Err(_) => {
                            // Another worker may claim it now: stop, as a dead worker would.
                            running.abort();
                            return Err(TaskError::Interrupted(
                                "the lease ran out while the database was away".to_owned(),
                            ));
                        }
                    }
                }
            }
        }
    }

    /// Runs tasks until none is runnable (tests drive the engine deterministically).
    pub async fn run_until_idle(&self) -> sqlx::Result<usize> {
        let mut ran = 0;
        while self.run_once().await?.is_some() {
            ran += 1;
        }
        Ok(ran)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Fails the first `failures` runs with the given error, then succeeds; records runs.
    struct Flaky {
        failures: Mutex<u32>,
        fatal: bool,
        panics: bool,
        runs: Mutex<Vec<i64>>,
    }

    #[async_trait]
    impl TaskHandler for Flaky {
        async fn run(&self, task: &Task) -> Result<(), TaskError> {
            self.runs.lock().unwrap().push(task.task_id);
            let mut left = self.failures.lock().unwrap();
            if *left == 0 {
                return Ok(());
            }
            *left -= 1;
            if self.panics {
                panic!("boom");
            }
            Err(if self.fatal {
                TaskError::Fatal("bad input".into())
            } else {
                TaskError::Retryable("throttled".into())
            })
        }
    }

    fn worker(db: &PgPool, id: &str, handler: Arc<Flaky>) -> Worker {
        let mut handlers: HashMap<String, Arc<dyn TaskHandler>> = HashMap::new();
        handlers.insert("test".into(), handler);
        Worker {
            db: db.clone(),
            id: id.into(),
            lease: Duration::from_secs(30),
            max_crashes: 3,
            backoff: Duration::ZERO,
            handlers: Arc::new(handlers),
            job_hook: None,
            metrics: Arc::default(),
        }
    }

    fn flaky(failures: u32) -> Arc<Flaky> {
        Arc::new(Flaky {
            failures: Mutex::new(failures),
            fatal: false,
            panics: false,
            runs: Mutex::default(),
        })
    }

    async fn states(db: &PgPool) -> Vec<(String, i32)> {
        let s = db::states(db).await.unwrap();
        s.into_iter()
            .map(|(state, attempts, _)| (state, attempts))
            .collect()
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn concurrent_claims_never_take_the_same_task(pool: PgPool) {
        for _ in 0..20 {
            enqueue(&pool, "test", &serde_json::json!({}), 3)
                .await
                .unwrap();
        }
        let claims = futures_claims(&pool).await;
        let mut ids: Vec<i64> = claims.iter().map(|t| t.task_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 20);
    }

    async fn futures_claims(pool: &PgPool) -> Vec<Task> {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    claim(&pool, &format!("w{i}"), Duration::from_secs(30), 3)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.extend(h.await.unwrap());
        }
        out
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn retryable_errors_retry_until_success_and_leave_nothing_queued(pool: PgPool) {
        enqueue(&pool, "test", &serde_json::json!({}), 5)
            .await
            .unwrap();
        let handler = flaky(2);
        let w = worker(&pool, "w", handler.clone());
        let ran = w.run_until_idle().await.unwrap();
        assert_eq!(ran, 3);
        assert_eq!(states(&pool).await, [("succeeded".to_owned(), 3)]);
        let text = w.metrics.render();
        for line in [
            "lethe_task_duration_seconds_count{kind=\"test\",outcome=\"retry\"} 2",
            "lethe_task_duration_seconds_count{kind=\"test\",outcome=\"ok\"} 1",
            "lethe_task_reruns_total{kind=\"test\"} 2",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn exhausted_retries_and_fatal_errors_and_panics_fail_the_task(pool: PgPool) {
        enqueue(&pool, "test", &serde_json::json!({}), 2)
            .await
            .unwrap();
        worker(&pool, "w", flaky(10))
            .run_until_idle()
            .await
            .unwrap();
        let fatal = Arc::new(Flaky {
            failures: Mutex::new(1),
            fatal: true,
            panics: false,
            runs: Mutex::default(),
        });
        enqueue(&pool, "test", &serde_json::json!({}), 5)
            .await
            .unwrap();
        worker(&pool, "w", fatal).run_until_idle().await.unwrap();
        let panics = Arc::new(Flaky {
            failures: Mutex::new(1),
            fatal: false,
            panics: true,
            runs: Mutex::default(),
        });
        enqueue(&pool, "test", &serde_json::json!({}), 1)
            .await
            .unwrap();
        worker(&pool, "w", panics).run_until_idle().await.unwrap();
        enqueue(&pool, "unknown-kind", &serde_json::json!({}), 5)
            .await
            .unwrap();
        worker(&pool, "w", flaky(0)).run_until_idle().await.unwrap();
        let s = states(&pool).await;
        assert_eq!(
            s,
            [
                ("failed".to_owned(), 2),
                ("failed".to_owned(), 1),
                ("failed".to_owned(), 1),
                ("failed".to_owned(), 1)
            ]
        );
        let errors: Vec<String> = db::states(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, _, e)| e.unwrap_or_default())
            .collect();
        assert!(
            errors[1].contains("bad input")
                && errors[2].contains("panicked")
                && errors[3].contains("no handler"),
            "{errors:?}"
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_dead_workers_task_is_claimed_again_after_its_lease_and_its_late_result_is_dropped(
        pool: PgPool,
    ) {
        let id = enqueue(&pool, "test", &serde_json::json!({}), 3)
            .await
            .unwrap();
        // Worker A claims with a lease that ends at once, then "dies".
        let a = claim(&pool, "a", Duration::ZERO, 3).await.unwrap().unwrap();
        assert_eq!(a.task_id, id);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let handler = flaky(0);
        worker(&pool, "b", handler.clone())
            .run_until_idle()
            .await
            .unwrap();
        assert_eq!(*handler.runs.lock().unwrap(), [id]);
        // The same attempt ran again: a crash spends no attempt.
        assert_eq!(states(&pool).await, [("succeeded".to_owned(), 1)]);
        // A comes back: its heartbeat and its result no longer count.
        assert!(
            !db::heartbeat(&pool, id, "a", Duration::from_secs(30))
                .await
                .unwrap()
        );
        assert!(
            !finish(
                &pool,
                &a,
                "a",
                &Err(TaskError::Fatal("late".into())),
                Duration::ZERO
            )
            .await
            .unwrap()
        );
        assert_eq!(states(&pool).await, [("succeeded".to_owned(), 1)]);
    }

    /// A job for the task, so that its poison event has somewhere to go.
    async fn job_task(pool: &PgPool) -> (uuid::Uuid, i64) {
        let job_id = crate::db::job::tests::a_job(pool).await;
        let id = db::insert(pool, Some(job_id), "test", &serde_json::json!({}), 2)
            .await
            .unwrap();
        (job_id, id)
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_task_that_keeps_killing_its_worker_ends_failed_after_the_crash_budget(pool: PgPool) {
        let (job_id, _) = job_task(&pool).await;
        // Two attempts allowed, but deaths are not attempts: the first two workers die
        // and the task is still claimable (as its first attempt).
        for owner in ["a", "b", "c"] {
            let t = claim(&pool, owner, Duration::ZERO, 3).await.unwrap();
            assert_eq!(t.map(|t| t.attempts), Some(1), "{owner}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The third death in a row is over the budget of 3: failed, and named.
        assert!(
            claim(&pool, "d", Duration::ZERO, 3)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(states(&pool).await, [("failed".to_owned(), 1)]);
        let (error, crashed_on): (String, Vec<String>) =
            sqlx::query_as("select last_error, crashed_on from task")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(error.contains("lost 3 times"), "{error}");
        assert_eq!(crashed_on, ["a", "b", "c"]);
        let events: Vec<(String, serde_json::Value)> =
            sqlx::query_as("select kind, details from job_event where job_id = $1")
                .bind(job_id)
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].0, "task_poison");
        assert_eq!(events[0].1["crashes"], 3);
        assert_eq!(events[0].1["task_kind"], "test");
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn progress_recorded_between_crashes_resets_the_crash_budget(pool: PgPool) {
        let (_, id) = job_task(&pool).await;
        // Many workers die on it, but each made progress first: never poison.
        for n in 0..8 {
            let t = claim(&pool, &format!("w{n}"), Duration::ZERO, 3)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("claim {n}"));
            assert_eq!(t.task_id, id);
            assert!(db::progressed(&pool, &t).await.unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let handler = flaky(0);
        worker(&pool, "last", handler.clone())
            .run_until_idle()
            .await
            .unwrap();
        assert_eq!(*handler.runs.lock().unwrap(), [id]);
        assert_eq!(states(&pool).await, [("succeeded".to_owned(), 1)]);
        // A worker that lost the task cannot reset its count.
        let stale = Task {
            lease_owner: Some("w0".into()),
            ..claim_row(&pool, id).await
        };
        assert!(!db::progressed(&pool, &stale).await.unwrap());
    }

    async fn claim_row(pool: &PgPool, id: i64) -> Task {
        sqlx::query_as(
            "select task_id, kind, payload, attempts, max_attempts, job_id, lease_owner,
                    recorded_at, run_at, crashes from task where task_id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
    }

    /// Loses the database `left` times (as a restart does), then succeeds.
    struct LosesTheDatabase(Mutex<u32>);

    #[async_trait]
    impl TaskHandler for LosesTheDatabase {
        async fn run(&self, _: &Task) -> Result<(), TaskError> {
            let mut left = self.0.lock().unwrap();
            if *left == 0 {
                return Ok(());
            }
            *left -= 1;
            let lost = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
            Err(sqlx::Error::Io(lost).into())
        }
    }

    fn losing(pool: &PgPool, times: u32) -> Worker {
        let mut handlers: HashMap<String, Arc<dyn TaskHandler>> = HashMap::new();
        handlers.insert("test".into(), Arc::new(LosesTheDatabase(Mutex::new(times))));
        Worker {
            handlers: Arc::new(handlers),
            ..worker(pool, "w", flaky(0))
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_task_the_database_interrupted_runs_again_at_once_as_the_same_attempt(pool: PgPool) {
        // One attempt allowed: an interruption must not spend it.
        enqueue(&pool, "test", &serde_json::json!({}), 1)
            .await
            .unwrap();
        let w = losing(&pool, 2);
        // Given up, not waited for: runnable again at once, twice, then it succeeds.
        assert_eq!(w.run_until_idle().await.unwrap(), 3);
        assert_eq!(states(&pool).await, [("succeeded".to_owned(), 1)]);
        let crashes: i32 = sqlx::query_scalar("select crashes from task")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(crashes, 2, "counted as lost workers");
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_task_that_always_loses_the_database_fails_after_the_crash_budget(pool: PgPool) {
        let (_, id) = job_task(&pool).await;
        // A budget of 3: three interruptions in a row, and the next claim fails it.
        assert_eq!(losing(&pool, 100).run_until_idle().await.unwrap(), 3);
        let row = claim_row(&pool, id).await;
        assert_eq!((row.attempts, row.crashes), (1, 3));
        assert_eq!(states(&pool).await, [("failed".to_owned(), 1)]);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn retries_back_off_before_they_are_claimable(pool: PgPool) {
        enqueue(&pool, "test", &serde_json::json!({}), 5)
            .await
            .unwrap();
        let mut w = worker(&pool, "w", flaky(1));
        w.backoff = Duration::from_secs(60);
        assert_eq!(w.run_until_idle().await.unwrap(), 1);
        let wait = db::seconds_until_next_run(&pool).await.unwrap().unwrap();
        assert!(wait > 50.0, "{wait}");
        assert_eq!(states(&pool).await, [("queued".to_owned(), 1)]);
    }
}
