//! `job_event`: a job's event log (never match ids or row data).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::job::EventLevel;

/// One entry of a job's event log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobEvent {
    pub job_event_id: i64,
    pub level: EventLevel,
    pub kind: String,
    pub message: String,
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

/// Appends to the job's event log. Never pass match ids or row data.
pub async fn insert(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    level: EventLevel,
    kind: &str,
    message: &str,
    details: Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into job_event (job_id, level, kind, message, details) values ($1, $2, $3, $4, $5)",
    )
    .bind(job_id)
    .bind(level)
    .bind(kind)
    .bind(message)
    .bind(details)
    .execute(db)
    .await?;
    Ok(())
}

/// The details of the job's first event of `kind` (None: no such event).
pub async fn details_of(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    kind: &str,
) -> sqlx::Result<Option<serde_json::Value>> {
    sqlx::query_scalar(
        "select details from job_event where job_id = $1 and kind = $2
         order by job_event_id limit 1",
    )
    .bind(job_id)
    .bind(kind)
    .fetch_optional(db)
    .await
}

/// Events after `after` (exclusive), oldest first.
pub async fn list(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    after: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<JobEvent>> {
    sqlx::query_as(
        r#"select job_event_id, level, kind, message, details, created_at from job_event
           where job_id = $1 and ($2::bigint is null or job_event_id > $2)
           order by job_event_id limit $3"#,
    )
    .bind(job_id)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn events_list_in_order_after_a_cursor(db: sqlx::PgPool) {
        let job_id = crate::db::job::tests::a_job(&db).await;
        for (level, kind) in [
            (EventLevel::Info, "a"),
            (EventLevel::Error, "b"),
            (EventLevel::Warning, "c"),
        ] {
            insert(
                &db,
                job_id,
                level,
                kind,
                kind,
                serde_json::json!({"k": kind}),
            )
            .await
            .unwrap();
        }
        let all = list(&db, job_id, None, 10).await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(all[1].level, EventLevel::Error);
        let after = list(&db, job_id, Some(all[0].job_event_id), 1)
            .await
            .unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].kind, "b");
    }
}
