//! `job_listing` and `job_listed_partition`: where a mapper's page-by-page listing stands
//! (see `jobs::find_mapper`), written in the transaction of each page.

use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

/// The saved progress of a mapper's listing, if one started.
pub async fn get(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    mapper: &str,
) -> sqlx::Result<Option<Value>> {
    sqlx::query_scalar("select progress from job_listing where job_id = $1 and data_mapper_id = $2")
        .bind(job_id)
        .bind(mapper)
        .fetch_optional(db)
        .await
}

/// Saves the progress of a mapper's listing (call it in the page's transaction).
pub async fn save(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    mapper: &str,
    progress: &Value,
) -> sqlx::Result<()> {
    sqlx::query(
        r#"insert into job_listing (job_id, data_mapper_id, progress) values ($1, $2, $3)
           on conflict (job_id, data_mapper_id)
           do update set progress = excluded.progress, updated_at = now()"#,
    )
    .bind(job_id)
    .bind(mapper)
    .bind(progress)
    .execute(db)
    .await?;
    Ok(())
}

/// Of `values` (partitions, each encoded as one string), those not seen before by this
/// mapper's listing as `kind`; all are then seen.
pub async fn first_seen(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    mapper: &str,
    kind: &str,
    values: &[String],
) -> sqlx::Result<Vec<String>> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(
        r#"insert into job_listed_partition (job_id, data_mapper_id, kind, partition_values)
           select $1, $2, $3, v from unnest($4::text[]) v
           on conflict do nothing
           returning partition_values"#,
    )
    .bind(job_id)
    .bind(mapper)
    .bind(kind)
    .bind(values)
    .fetch_all(db)
    .await
}

/// Drops a finished listing's progress.
pub async fn delete(db: &mut sqlx::PgConnection, job_id: Uuid, mapper: &str) -> sqlx::Result<()> {
    for table in ["job_listing", "job_listed_partition"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "delete from {table} where job_id = $1 and data_mapper_id = $2"
        )))
        .bind(job_id)
        .bind(mapper)
        .execute(&mut *db)
        .await?;
    }
    Ok(())
}
