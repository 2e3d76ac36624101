//! `task`: the work queue every process shares (see `jobs::tasks` for how workers use it).
//!
//! A task's row changes state `queued → running → succeeded | failed | cancelled` (a
//! retry goes back to `queued` with a later `run_at`). The record transaction of a task
//! ([`mark_recorded`]) also marks it `succeeded`, so a task costs one claim and one record.

use std::time::Duration;

use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

/// A claimed task.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Task {
    pub task_id: i64,
    pub kind: String,
    pub payload: Value,
    pub attempts: i32,
    pub max_attempts: i32,
    /// The job the task works for, if any.
    pub job_id: Option<Uuid>,
    /// The worker holding the lease (fences [`mark_recorded`]).
    pub lease_owner: Option<String>,
    /// Set once the task's effects were recorded; a rerun must then do nothing.
    pub recorded_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the task became runnable (its place in the queue).
    pub run_at: chrono::DateTime<chrono::Utc>,
    /// Workers lost in a row while running this task (this run included when it is a
    /// re-run after a crash; reset by [`progressed`]).
    pub crashes: i32,
}

impl Task {
    /// True on the last allowed attempt: a retryable error will not be retried.
    pub fn is_last_attempt(&self) -> bool {
        self.attempts >= self.max_attempts
    }
}

/// Inserts a task (call it in the transaction of the write that causes it).
pub async fn insert(
    db: impl PgExecutor<'_>,
    job_id: Option<Uuid>,
    kind: &str,
    payload: &Value,
    max_attempts: i32,
) -> sqlx::Result<i64> {
    insert_at(db, job_id, kind, payload, max_attempts, None).await
}

/// Inserts a task runnable from `run_at` (default now); claims take the earliest first,
/// so a task's follow-up enqueued just ahead of it runs before the rest of the queue.
pub async fn insert_at(
    db: impl PgExecutor<'_>,
    job_id: Option<Uuid>,
    kind: &str,
    payload: &Value,
    max_attempts: i32,
    run_at: Option<chrono::DateTime<chrono::Utc>>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        r#"insert into task (kind, payload, max_attempts, job_id, run_at)
           values ($1, $2, $3, $4, coalesce($5, now()))
           returning task_id"#,
    )
    .bind(kind)
    .bind(payload)
    .bind(max_attempts)
    .bind(job_id)
    .bind(run_at)
    .fetch_one(db)
    .await
}

/// Begins a transaction for a worker's bookkeeping (claims, heartbeats, finishes, task
/// records) whose commit does not wait for the WAL to reach disk. Safe because every
/// such write is redone if a Postgres crash loses it: a lost claim or heartbeat ends in
/// a lease that expires, and a lost record re-runs its task, which is idempotent (a
/// rewrite recognises its own upload by the figures saved, durably, before it). The
/// writes that precede an irreversible effect outside Postgres (the figures before an
/// upload, the versions before they are deleted) commit durably, outside these.
pub async fn begin_bookkeeping(
    pool: &sqlx::PgPool,
) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    pool.begin_with("begin; set local synchronous_commit = off")
        .await
}

/// Inserts many tasks of one kind for a job in one statement.
pub async fn insert_many(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    kind: &str,
    payloads: &[Value],
    max_attempts: i32,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        r#"insert into task (kind, payload, max_attempts, job_id)
           select $1, p, $2, $3 from unnest($4::jsonb[]) with ordinality as t(p, n) order by n"#,
    )
    .bind(kind)
    .bind(max_attempts)
    .bind(job_id)
    .bind(payloads)
    .execute(db)
    .await?
    .rows_affected())
}

/// Marks the task's effects as recorded and the task as succeeded, in the transaction
/// that records them. False when the task is no longer this worker's or was recorded
/// already: roll back then, so nothing is recorded twice.
pub async fn mark_recorded(db: impl PgExecutor<'_>, task: &Task) -> sqlx::Result<bool> {
    let r = sqlx::query(
        r#"update task set recorded_at = now(), updated_at = now(), state = 'succeeded',
               lease_owner = null, lease_until = null
           where task_id = $1 and lease_owner = $2 and state = 'running' and recorded_at is null"#,
    )
    .bind(task.task_id)
    .bind(task.lease_owner.as_deref())
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Claims the next runnable task in one statement: first fails running tasks whose
/// worker died once too often in a row (`$3`, the crash budget: a poison task that kills
/// its worker) and names each in a job event, then takes a running task whose lease
/// expired (its worker died: the same attempt runs again, one crash counted), else the
/// queued task due first. Each part is served by its own partial index
/// (`task_lease_idx`, `task_claimable_idx`); one `or` of the two could use neither and
/// would sort every candidate on each claim.
const CLAIM: &str = r#"
with poisoned as (
    update task set state = 'failed', lease_owner = null, lease_until = null, updated_at = now(),
        crashes = crashes + 1, crashed_on = (crashed_on || lease_owner)[greatest(1, cardinality(crashed_on) - 6):],
        last_error = format('the worker running this task was lost %s times in a row (it may be what kills them): failed after the crash budget', crashes + 1)
    where state = 'running' and lease_until < now() and crashes + 1 >= $3
    returning task_id, job_id, kind, crashes
), poison_events as (
    insert into job_event (job_id, level, kind, message, details)
    select job_id, 'error', 'task_poison',
           format('task %s (%s) failed: its worker was lost %s times in a row while running it', task_id, kind, crashes),
           jsonb_build_object('task_id', task_id, 'task_kind', kind, 'crashes', crashes)
    from poisoned where job_id is not null
), expired as (
    update task set crashes = crashes + 1,
        crashed_on = (crashed_on || lease_owner)[greatest(1, cardinality(crashed_on) - 6):],
        lease_owner = $1, lease_until = now() + $2 * interval '1 millisecond', updated_at = now()
    where task_id = (
        select task_id from task
        where state = 'running' and lease_until < now() and crashes + 1 < $3
        order by lease_until, task_id
        for update skip locked
        limit 1)
    returning task_id, kind, payload, attempts, max_attempts, job_id, lease_owner, recorded_at, run_at, crashes
), due as (
    update task set state = 'running', attempts = attempts + 1, lease_owner = $1,
        lease_until = now() + $2 * interval '1 millisecond', updated_at = now()
    where not exists (select 1 from expired) and task_id = (
        select task_id from task
        where state = 'queued' and run_at <= now()
        order by run_at, task_id
        for update skip locked
        limit 1)
    returning task_id, kind, payload, attempts, max_attempts, job_id, lease_owner, recorded_at, run_at, crashes
)
select * from expired union all select * from due
"#;

/// Claims the next runnable task (see [`CLAIM`]), if any.
pub async fn claim(
    db: impl PgExecutor<'_>,
    owner: &str,
    lease: Duration,
    max_crashes: i32,
) -> sqlx::Result<Option<Task>> {
    sqlx::query_as(CLAIM)
        .bind(owner)
        .bind(lease.as_millis() as f64)
        .bind(max_crashes)
        .fetch_optional(db)
        .await
}

/// Extends the lease; false when the task is no longer this worker's. A task recorded
/// by this attempt (succeeded, lease released) still counts as held.
pub async fn heartbeat(
    db: impl PgExecutor<'_> + Copy,
    task_id: i64,
    owner: &str,
    lease: Duration,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        r#"update task set lease_until = now() + $3 * interval '1 millisecond', updated_at = now()
           where task_id = $1 and lease_owner = $2 and state = 'running'"#,
    )
    .bind(task_id)
    .bind(owner)
    .bind(lease.as_millis() as f64)
    .execute(db)
    .await?;
    if r.rows_affected() == 1 {
        return Ok(true);
    }
    recorded(db, task_id).await
}

/// Gives up the lease of a task this worker could not finish because the database went
/// away: the next claim takes it at once as a lost worker's (the same attempt, one crash
/// counted against the budget). False when the task is no longer this worker's.
pub async fn give_up(db: impl PgExecutor<'_>, task_id: i64, owner: &str) -> sqlx::Result<bool> {
    let r = sqlx::query(
        r#"update task set lease_until = now() - interval '1 millisecond', updated_at = now()
           where task_id = $1 and lease_owner = $2 and state = 'running'"#,
    )
    .bind(task_id)
    .bind(owner)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Records that the task made progress that survives a crash (a page listed and its
/// follow-ups enqueued, in the caller's transaction): the workers lost before it no longer
/// count against the crash budget. False when the task is no longer this worker's.
pub async fn progressed(db: impl PgExecutor<'_>, task: &Task) -> sqlx::Result<bool> {
    let r = sqlx::query(
        r#"update task set crashes = 0, updated_at = now()
           where task_id = $1 and lease_owner = $2 and state = 'running'"#,
    )
    .bind(task.task_id)
    .bind(task.lease_owner.as_deref())
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// True once the task's effects are recorded.
pub async fn recorded(db: impl PgExecutor<'_>, task_id: i64) -> sqlx::Result<bool> {
    let at: Option<Option<chrono::DateTime<chrono::Utc>>> =
        sqlx::query_scalar("select recorded_at from task where task_id = $1")
            .bind(task_id)
            .fetch_optional(db)
            .await?;
    Ok(at.flatten().is_some())
}

/// Ends an attempt: `state` is `succeeded`, `failed` or `queued` (a retry after
/// `delay`). False when the task is no longer this worker's (or its record already
/// marked it succeeded).
pub async fn finish(
    db: impl PgExecutor<'_>,
    task: &Task,
    owner: &str,
    state: &str,
    delay: Duration,
    error: Option<&str>,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        r#"update task set state = $3, run_at = now() + $4 * interval '1 millisecond',
               last_error = coalesce($5, last_error), lease_owner = null, lease_until = null,
               updated_at = now()
           where task_id = $1 and lease_owner = $2 and state = 'running'"#,
    )
    .bind(task.task_id)
    .bind(owner)
    .bind(state)
    .bind(delay.as_millis() as f64)
    .bind(error)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Whether the job has a task of one of `kinds` queued or running: a probe of
/// `task_open_idx`, not a count.
pub async fn has_open(db: impl PgExecutor<'_>, job_id: Uuid, kinds: &[&str]) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "select exists (select 1 from task where job_id = $1 and kind = any($2)
                                              and state in ('queued', 'running'))",
    )
    .bind(job_id)
    .bind(kinds)
    .fetch_one(db)
    .await
}

/// Whether a task of the job, of any kind, is running (claimed, its lease perhaps run
/// out: it is claimed again, and runs to its end).
pub async fn has_running(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("select exists (select 1 from task where job_id = $1 and state = 'running')")
        .bind(job_id)
        .fetch_one(db)
        .await
}

/// How many of the job's tasks of `kind` are queued or running.
pub async fn count_open(db: impl PgExecutor<'_>, job_id: Uuid, kind: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select count(*) from task where job_id = $1 and kind = $2 and state in ('queued', 'running')",
    )
    .bind(job_id)
    .bind(kind)
    .fetch_one(db)
    .await
}

/// The job's tasks that failed for good: how many, and one of their errors.
pub async fn failed(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<(i64, Option<String>)> {
    sqlx::query_as(
        "select count(*), min(last_error) from task where job_id = $1 and state = 'failed'",
    )
    .bind(job_id)
    .fetch_one(db)
    .await
}

/// Cancels the job's tasks that have not started.
pub async fn cancel_queued(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "update task set state = 'cancelled', updated_at = now() where job_id = $1 and state = 'queued'",
    )
    .bind(job_id)
    .execute(db)
    .await?
    .rows_affected())
}

/// Tasks queued, running or failed, by kind and state.
pub async fn counts_by_kind(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, String, i64)>> {
    sqlx::query_as(
        "select kind, state, count(*) from task where state in ('queued', 'running', 'failed')
         group by kind, state order by kind, state",
    )
    .fetch_all(db)
    .await
}

/// Age in seconds of the oldest runnable queued task (0 when none).
pub async fn oldest_runnable_age(db: impl PgExecutor<'_>) -> sqlx::Result<f64> {
    sqlx::query_scalar(
        "select coalesce(extract(epoch from now() - min(run_at))::float8, 0) from task
         where state = 'queued' and run_at <= now()",
    )
    .fetch_one(db)
    .await
}

#[cfg(test)]
/// Seconds until the earliest queued task becomes runnable (negative when one is due).
pub async fn seconds_until_next_run(db: impl PgExecutor<'_>) -> sqlx::Result<Option<f64>> {
    sqlx::query_scalar(
        "select extract(epoch from min(run_at) - now())::float8 from task where state = 'queued'",
    )
    .fetch_one(db)
    .await
}

#[cfg(test)]
/// Every task's state and attempts, in task order (tests look at the queue with it).
pub async fn states(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, i32, Option<String>)>> {
    sqlx::query_as("select state, attempts, last_error from task order by task_id")
        .fetch_all(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_recorded_task_is_succeeded_and_no_longer_open(db: sqlx::PgPool) {
        let job_id = crate::db::job::tests::a_job(&db).await;
        insert(&db, Some(job_id), "forget.object", &json!({"n": 1}), 3)
            .await
            .unwrap();
        let n = insert_many(&db, job_id, "verify.object", &[json!(1), json!(2)], 3)
            .await
            .unwrap();
        assert_eq!(n, 2);
        assert!(has_open(&db, job_id, &["forget.object"]).await.unwrap());
        let task = claim(&db, "w", Duration::from_secs(30), 3)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(task.kind, "forget.object");
        assert!(
            heartbeat(&db, task.task_id, "w", Duration::from_secs(30))
                .await
                .unwrap()
        );
        assert!(mark_recorded(&db, &task).await.unwrap());
        assert!(!mark_recorded(&db, &task).await.unwrap(), "recorded once");
        // The attempt that recorded still holds the task; its finish changes nothing.
        assert!(
            heartbeat(&db, task.task_id, "w", Duration::from_secs(30))
                .await
                .unwrap()
        );
        assert!(
            !finish(&db, &task, "w", "failed", Duration::ZERO, Some("late"))
                .await
                .unwrap()
        );
        assert!(!has_open(&db, job_id, &["forget.object"]).await.unwrap());
        assert!(
            has_open(&db, job_id, &["forget.object", "verify.object"])
                .await
                .unwrap()
        );
        assert_eq!(cancel_queued(&db, job_id).await.unwrap(), 2);
        assert_eq!(failed(&db, job_id).await.unwrap(), (0, None));
        let s = states(&db).await.unwrap();
        assert_eq!(s[0].0, "succeeded");
        assert_eq!(s[1].0, "cancelled");
        assert_eq!(counts_by_kind(&db).await.unwrap(), vec![]);
        assert_eq!(oldest_runnable_age(&db).await.unwrap(), 0.0);
    }
}
