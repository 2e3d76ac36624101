//! `job_match`: what became of each queue item a finished job processed, by its keyed
//! hash only (the match id itself leaves with the item).

use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

/// One queue item a finished job processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct ReportMatch {
    /// HMAC-SHA256 of the match id (keyed with a server secret), hex.
    pub match_hash: String,
    pub data_mappers: Vec<String>,
    /// `erased` (left the queue) or `kept` (a data mapper it applies to failed).
    pub status: String,
}

/// Records the job's matches (once: a second record of the same hash is ignored).
pub async fn insert_many(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    matches: &[ReportMatch],
) -> sqlx::Result<()> {
    let hashes: Vec<&str> = matches.iter().map(|m| m.match_hash.as_str()).collect();
    let mappers: Vec<String> = matches.iter().map(|m| m.data_mappers.join(",")).collect();
    let statuses: Vec<&str> = matches.iter().map(|m| m.status.as_str()).collect();
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
    .execute(db)
    .await?;
    Ok(())
}

/// The job's matches after `after` (exclusive, "" for the first page), by hash.
pub async fn list(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<ReportMatch>> {
    sqlx::query_as(
        "select match_hash, data_mappers, status from job_match
         where job_id = $1 and match_hash > $2 order by match_hash limit $3",
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
    async fn matches_are_recorded_once_and_paged_by_hash(db: sqlx::PgPool) {
        let job_id = crate::db::job::tests::a_job(&db).await;
        let m = |h: &str, mappers: &[&str], s: &str| ReportMatch {
            match_hash: h.into(),
            data_mappers: mappers.iter().map(|m| m.to_string()).collect(),
            status: s.into(),
        };
        let all = [m("b", &["m1", "m2"], "erased"), m("a", &[], "kept")];
        insert_many(&db, job_id, &all).await.unwrap();
        insert_many(&db, job_id, &all).await.unwrap();
        let first = list(&db, job_id, "", 1).await.unwrap();
        assert_eq!(first, [all[1].clone()]);
        let rest = list(&db, job_id, "a", 10).await.unwrap();
        assert_eq!(rest, [all[0].clone()]);
    }
}
