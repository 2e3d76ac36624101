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
    /// `erased` (rows removed from every current version and verified, every old version
    /// holding them deleted; left the queue), `retained` (removed from every current
    /// version, but old versions Lethe may not delete still hold them, each listed with
    /// the date it ends when known; left the queue), `not_found` (every version it may be
    /// in was searched, no row; left the queue), `kept` (stays queued; each account says
    /// why), or `matched` (a dry run found rows; nothing was written).
    pub status: String,
    /// The account per data mapper it applies to.
    #[schema(value_type = Vec<MapperAccount>)]
    pub accounts: sqlx::types::Json<Vec<MapperAccount>>,
}

/// What one data mapper's part of a job did for one match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct MapperAccount {
    pub data_mapper_id: String,
    /// Objects the mapper's find searched (all of them, not only those holding it).
    pub objects_searched: i64,
    /// Objects holding at least one of its rows, and those rows.
    pub objects: i64,
    pub rows: i64,
    /// Rows removed in rewrites that passed verification.
    pub rows_removed: i64,
    /// Noncurrent versions holding its rows (a newer version or a delete marker on top):
    /// deleted by cleanup when the mapper deletes old versions, else listed in
    /// `versions_kept`.
    #[serde(default)]
    pub old_versions: i64,
    /// The versions holding its rows that Lethe did not delete, each with the reason and
    /// the date it ends when known (`retained`; a legal hold makes it `kept`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions_kept: Vec<AccountVersion>,
    /// `erased`, `retained`, `not_found`, `kept` or `matched` (dry run).
    pub status: String,
    /// Why it is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Records the rows each match has in one object.
pub async fn insert_object_matches(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    job_object_id: i64,
    rows: &[(String, i64)],
) -> sqlx::Result<()> {
    let hashes: Vec<&str> = rows.iter().map(|(h, _)| h.as_str()).collect();
    let counts: Vec<i64> = rows.iter().map(|(_, n)| *n).collect();
    sqlx::query(
        "insert into job_object_match (job_id, job_object_id, match_hash, rows)
         select $1, $2, h, n from unnest($3::text[], $4::bigint[]) as t(h, n)
         on conflict do nothing",
    )
    .bind(job_id)
    .bind(job_object_id)
    .bind(&hashes)
    .bind(&counts)
    .execute(db)
    .await?;
    Ok(())
}

/// Replaces the rows each match has in one object (forget recounted them in the version
/// it rewrote).
pub async fn replace_object_matches(
    tx: &mut sqlx::PgConnection,
    job_id: Uuid,
    job_object_id: i64,
    rows: &[(String, i64)],
) -> sqlx::Result<()> {
    sqlx::query("delete from job_object_match where job_id = $1 and job_object_id = $2")
        .bind(job_id)
        .bind(job_object_id)
        .execute(&mut *tx)
        .await?;
    insert_object_matches(&mut *tx, job_id, job_object_id, rows).await
}

/// The rows per match of each of these objects, by object.
pub async fn object_matches(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    objects: &[i64],
) -> sqlx::Result<std::collections::HashMap<i64, Vec<(String, i64)>>> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "select job_object_id, match_hash, rows from job_object_match
         where job_id = $1 and job_object_id = any($2) order by job_object_id, match_hash",
    )
    .bind(job_id)
    .bind(objects)
    .fetch_all(db)
    .await?;
    let mut out: std::collections::HashMap<i64, Vec<(String, i64)>> = Default::default();
    for (id, hash, n) in rows {
        out.entry(id).or_default().push((hash, n));
    }
    Ok(out)
}

/// What one mapper's objects hold of one match (by keyed hash).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Holding {
    pub data_mapper_id: String,
    pub match_hash: String,
    /// Objects (current versions) holding its rows, and those rows.
    pub objects: i64,
    pub rows: i64,
    /// Rows removed in rewrites that passed verification.
    pub rows_removed: i64,
    /// Noncurrent versions holding its rows.
    pub old_versions: i64,
    /// The cleanup of an object or version holding it failed.
    pub cleanup_failed: bool,
    /// An object holding it lies outside the table's partitions (never rewritten).
    pub outside: bool,
    /// A version written on top of Lethe's holds it.
    pub newer_holds: bool,
    /// A bucket a replication rule copies an object holding it to.
    pub replicated_to: Option<String>,
}

/// Every (mapper, match hash) with rows in the job's objects.
pub async fn holdings(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<Vec<Holding>> {
    sqlx::query_as(
        "select o.data_mapper_id, m.match_hash,
                count(*) filter (where not o.noncurrent) as objects,
                coalesce(sum(m.rows) filter (where not o.noncurrent), 0)::bigint as rows,
                coalesce(sum(m.rows) filter (where o.forget_state = 'verified'), 0)::bigint
                    as rows_removed,
                count(*) filter (where o.noncurrent) as old_versions,
                coalesce(bool_or(o.cleanup_state = 'failed'), false) as cleanup_failed,
                bool_or(o.outside_partitions) as outside,
                bool_or(o.newer_holds) as newer_holds,
                min(o.replicated_to) as replicated_to
         from job_object_match m join job_object o using (job_object_id)
         where m.job_id = $1 group by 1, 2",
    )
    .bind(job_id)
    .fetch_all(db)
    .await
}

/// A version holding (or possibly holding) a match's rows that the job did not delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AccountVersion {
    pub bucket: String,
    pub key: String,
    #[serde(flatten)]
    pub version: crate::db::job_object::KeptVersion,
}

/// Per (mapper, match hash): the versions holding its rows that the job's cleanup kept.
pub async fn kept_versions(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<Vec<(String, String, sqlx::types::Json<Vec<AccountVersion>>)>> {
    sqlx::query_as(
        "select o.data_mapper_id, m.match_hash,
                jsonb_agg(jsonb_build_object('bucket', o.bucket, 'key', o.key) || v
                          order by o.key, v->>'version_id')
         from job_object_match m join job_object o using (job_object_id)
              cross join lateral jsonb_array_elements(o.versions_kept) v
         where m.job_id = $1 group by 1, 2",
    )
    .bind(job_id)
    .fetch_all(db)
    .await
}

/// One object (or old version) of a job holding a match's rows, as a receipt states it.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct SubjectObject {
    pub match_hash: String,
    pub data_mapper_id: String,
    pub bucket: String,
    pub key: String,
    /// Where the rewrite went when it is a new file.
    pub new_key: Option<String>,
    /// The version rewritten (or, for an old version, the version itself).
    pub version_before: Option<String>,
    pub version_after: Option<String>,
    /// The match's rows find counted in it.
    pub rows: i64,
    /// The object's rows before the rewrite and in the version written, as verify
    /// counted them (None until known).
    pub rows_before: Option<i64>,
    pub rows_after: Option<i64>,
    pub forget_state: String,
    pub noncurrent: bool,
    pub versions_deleted: Vec<String>,
    pub replicated_to: Option<String>,
    /// Lowercase hex SHA-256 of `version_before` as forget downloaded it, and of
    /// `version_after` as it uploaded it (None when nothing was written).
    pub sha256_before: Option<String>,
    pub sha256_after: Option<String>,
    /// Verify's re-read of `version_after` that found no match left: the rows it
    /// counted, the version's stored size, and when (None unless it passed).
    pub verified_rows: Option<i64>,
    pub verified_bytes: Option<i64>,
    pub verified_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The version find read (`version_before` is the one forget read, when another).
    pub version_found: Option<String>,
    /// What cleanup did with its old versions (`done`, `skipped`, `failed`; None: it
    /// never ran).
    pub cleanup_state: Option<String>,
    /// A rewrite that failed verification, rolled back: the copy put back on top.
    pub rollback_version_id: Option<String>,
    /// In no partition of its table: never rewritten.
    pub outside_partitions: bool,
}

/// Every (match, object) of the job, by match hash, then mapper and key.
pub async fn subject_objects(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<Vec<SubjectObject>> {
    sqlx::query_as(
        "select m.match_hash, o.data_mapper_id, o.bucket, o.key, o.new_key,
                coalesce(o.read_version_id, o.version_id) as version_before,
                o.new_version_id as version_after, m.rows, o.rows_total as rows_before,
                o.rows_after, o.forget_state, o.noncurrent,
                o.versions_deleted, o.replicated_to, o.sha256_before,
                case when o.forget_state in ('written', 'verified', 'verify_failed')
                     then o.sha256_after end as sha256_after,
                o.verified_rows, o.verified_bytes, o.verified_at,
                o.version_id as version_found, o.cleanup_state, o.rollback_version_id,
                o.outside_partitions
         from job_object_match m join job_object o using (job_object_id)
         where m.job_id = $1 order by m.match_hash, o.data_mapper_id, o.key, o.job_object_id",
    )
    .bind(job_id)
    .fetch_all(db)
    .await
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
    let accounts: Vec<serde_json::Value> = matches
        .iter()
        .map(|m| serde_json::to_value(&m.accounts.0).unwrap_or_default())
        .collect();
    sqlx::query(
        "insert into job_match (job_id, match_hash, data_mappers, status, accounts)
         select $1, h, case when m = '' then '{}'::text[] else string_to_array(m, ',') end, s, a
         from unnest($2::text[], $3::text[], $4::text[], $5::jsonb[]) as t(h, m, s, a)
         on conflict do nothing",
    )
    .bind(job_id)
    .bind(&hashes)
    .bind(&mappers)
    .bind(&statuses)
    .bind(&accounts)
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
        "select match_hash, data_mappers, status, accounts from job_match
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
            accounts: sqlx::types::Json(vec![MapperAccount {
                data_mapper_id: "m1".into(),
                objects_searched: 3,
                objects: 1,
                rows: 2,
                rows_removed: 2,
                status: s.into(),
                reason: None,
                ..MapperAccount::default()
            }]),
        };
        let all = [
            m("b", &["m1", "m2"], "erased"),
            m("a", &[], "kept"),
            m("c", &["m1"], "retained"),
        ];
        insert_many(&db, job_id, &all).await.unwrap();
        insert_many(&db, job_id, &all).await.unwrap();
        let first = list(&db, job_id, "", 1).await.unwrap();
        assert_eq!(first, [all[1].clone()]);
        let rest = list(&db, job_id, "a", 10).await.unwrap();
        assert_eq!(
            rest,
            [all[0].clone(), all[2].clone()],
            "retained is a status it keeps"
        );
    }
}
