//! `audit_checkpoint`: signed heads of the audit chain (`audit::checkpoint`), appended at
//! the end of every job and every hour; nothing here updates or deletes one.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

/// The advisory lock key of the hourly checkpoint ("lethec" in ASCII): one process at a
/// time decides whether one is due.
const HOURLY_LOCK: i64 = 0x6c65_7468_6563;

/// A checkpoint to append.
#[derive(Debug, Clone)]
pub struct NewCheckpoint<'a> {
    pub seq: i64,
    pub hash: &'a [u8],
    pub row_count: i64,
    pub jws: &'a str,
    pub kid: &'a str,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_checkpoint(
    db: impl PgExecutor<'_>,
    cp: &NewCheckpoint<'_>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        r#"insert into audit_checkpoint (seq, hash, row_count, jws, kid, created_at)
           values ($1, $2, $3, $4, $5, $6) returning audit_checkpoint_id"#,
    )
    .bind(cp.seq)
    .bind(cp.hash)
    .bind(cp.row_count)
    .bind(cp.jws)
    .bind(cp.kid)
    .bind(cp.created_at)
    .fetch_one(db)
    .await
}

/// Takes the hourly checkpoint's lock for the transaction, if no one holds it.
pub async fn try_lock_hourly(tx: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
        .bind(HOURLY_LOCK)
        .fetch_one(tx)
        .await
}

/// When the last checkpoint was written.
pub async fn latest_at(db: impl PgExecutor<'_>) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar("select max(created_at) from audit_checkpoint")
        .fetch_one(db)
        .await
}

/// Up to `limit` checkpoints after id `after` (written at or after `since`), oldest
/// first: `(id, compact JWS)`.
pub async fn page(
    db: impl PgExecutor<'_>,
    since: Option<DateTime<Utc>>,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<(i64, String)>> {
    sqlx::query_as(
        r#"select audit_checkpoint_id, jws from audit_checkpoint
           where audit_checkpoint_id > $1 and ($2::timestamptz is null or created_at >= $2)
           order by audit_checkpoint_id limit $3"#,
    )
    .bind(after)
    .bind(since)
    .bind(limit)
    .fetch_all(db)
    .await
}
