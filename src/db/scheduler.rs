//! `scheduler_state` and the scheduler's questions to the database: who leads this tick
//! (a transaction-level advisory lock), when cron was last checked, whether a deadline
//! is near.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// The advisory lock key of the scheduler ("lethe" in ASCII).
pub const SCHEDULER_LOCK: i64 = 0x006c_6574_6865;

/// Takes the scheduler lock for the rest of the transaction; false when another
/// process holds it.
pub async fn try_lead(tx: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
        .bind(SCHEDULER_LOCK)
        .fetch_one(tx)
        .await
}

/// When cron was last checked (locked for the transaction), and records `now` as the
/// new check time.
pub async fn swap_cron_checked_at(
    tx: &mut PgConnection,
    now: DateTime<Utc>,
) -> sqlx::Result<DateTime<Utc>> {
    let checked_at = sqlx::query_scalar("select cron_checked_at from scheduler_state for update")
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("update scheduler_state set cron_checked_at = $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    Ok(checked_at)
}

/// True when a queued item's deadline is at or before `deadline` and no job was created
/// after `quiet_since`.
pub async fn deadline_near(
    tx: &mut PgConnection,
    deadline: DateTime<Utc>,
    quiet_since: DateTime<Utc>,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        r#"select exists (select 1 from deletion_queue_item where deadline <= $1)
              and not exists (select 1 from job where created_at > $2)"#,
    )
    .bind(deadline)
    .bind(quiet_since)
    .fetch_one(tx)
    .await
}

/// A queued item whose deadline is near, as the scheduler weighs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NearItem {
    #[sqlx(try_from = "serde_json::Value")]
    pub match_id: crate::domain::match_id::MatchId,
    pub data_mappers: Vec<String>,
    pub created_by: String,
    pub deadline: DateTime<Utc>,
}

/// The queued items whose deadline is at or before `deadline` (at most `limit`), and the
/// mappers an operator enabled for automatic jobs.
pub async fn near_items(
    tx: &mut PgConnection,
    deadline: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<(Vec<NearItem>, Vec<String>)> {
    let items = sqlx::query_as(
        "select match_id, data_mappers, created_by, deadline from deletion_queue_item
         where deadline <= $1 order by deadline limit $2",
    )
    .bind(deadline)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let automatic = sqlx::query_scalar(
        "select data_mapper_id from data_mapper where automatic_jobs order by data_mapper_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok((items, automatic))
}

/// Records an alert about near deadlines no automatic job covers, unless one was recorded
/// after `quiet_since`; true when this one is recorded.
pub async fn claim_deadline_alert(
    tx: &mut PgConnection,
    now: DateTime<Utc>,
    quiet_since: DateTime<Utc>,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "update scheduler_state set deadline_alerted_at = $1
         where deadline_alerted_at is null or deadline_alerted_at < $2",
    )
    .bind(now)
    .bind(quiet_since)
    .execute(tx)
    .await?
    .rows_affected()
        > 0)
}

#[cfg(test)]
/// Sets when cron was last checked (tests move the clock with it).
pub async fn set_cron_checked_at(tx: &mut PgConnection, at: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("update scheduler_state set cron_checked_at = $1")
        .bind(at)
        .execute(tx)
        .await?;
    Ok(())
}
