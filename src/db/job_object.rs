//! `job_object`: the objects find recorded (those holding matches and those that failed),
//! and what forget, verify and cleanup did with each.

use std::collections::HashMap;

use sqlx::{AssertSqlSafe, PgExecutor};
use uuid::Uuid;

use crate::domain::job::{CleanupState, ForgetState, ObjectStatus};

/// An object find recorded, and what forget, verify and cleanup did with it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobObject {
    pub job_object_id: i64,
    pub data_mapper_id: String,
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub size_bytes: i64,
    pub status: ObjectStatus,
    pub rows_total: Option<i64>,
    pub rows_matched: i64,
    pub row_groups: Vec<i32>,
    pub error: Option<String>,
    pub partition_keys: Option<Vec<String>>,
    pub partition_values: Option<Vec<String>>,
    /// The partition keys' declared types (Glue type text; empty when untyped).
    pub partition_types: Option<Vec<String>>,
    pub forget_state: ForgetState,
    pub rows_removed: Option<i64>,
    pub rows_after: Option<i64>,
    pub size_after: Option<i64>,
    pub new_version_id: Option<String>,
    pub new_etag: Option<String>,
    pub row_groups_rewritten: Option<i32>,
    pub row_groups_copied: Option<i32>,
    pub versions_deleted: Vec<String>,
    pub cleanup_state: Option<CleanupState>,
    pub forget_error: Option<String>,
    /// Versions cleanup is about to delete (saved before it deletes them).
    pub versions_to_delete: Vec<String>,
    /// In no partition of its (partitioned) table: searched, recorded `skipped`, never
    /// rewritten; the items it holds stay queued.
    pub outside_partitions: bool,
    /// A rewrite that failed verification, rolled back: the version id of the copy of
    /// the version read that was put back on top.
    pub rollback_version_id: Option<String>,
    /// Not its key's current version when find listed it: never rewritten (forget state
    /// `old_version`), deleted by cleanup or kept.
    pub noncurrent: bool,
    /// When it stopped being current, when known (lifecycle rules count from it).
    pub noncurrent_since: Option<chrono::DateTime<chrono::Utc>>,
    /// The version forget rewrote when it was not the one find read (`version_id`).
    pub read_version_id: Option<String>,
    /// Versions holding its subjects' rows that cleanup did not delete.
    pub versions_kept: sqlx::types::Json<Vec<KeptVersion>>,
    /// A version written on top of Lethe's holds matching rows (found at cleanup).
    pub newer_holds: bool,
    /// The bucket a replication rule copies the key to (the replica keeps the rows).
    pub replicated_to: Option<String>,
    /// Where forget wrote the rewrite when it is a new file (a table format's data file,
    /// never rewritten in place); None: written over `key`.
    pub new_key: Option<String>,
    /// The table's position delete files its rewrite applied (their rows left out too).
    pub deletes_applied: Vec<String>,
}

/// A version cleanup did not delete although it holds (or may hold) matching rows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct KeptVersion {
    pub version_id: String,
    /// Why it is kept.
    pub reason: String,
    /// When it ends (a lifecycle rule's expiry, the end of an Object Lock retention),
    /// when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether `until` is only a lower bound ("not before"): the lifecycle rule's filter
    /// or `NewerNoncurrentVersions` may keep it longer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_before: bool,
    /// Kept with no end Lethe can tell (an Object Lock legal hold): the subject's
    /// account is `kept`, not `retained`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hold: bool,
}

const OBJECT_COLUMNS: &str = "job_object_id, data_mapper_id, bucket, key, version_id, etag, \
    size_bytes, status, rows_total, rows_matched, row_groups, error, partition_keys, \
    partition_values, forget_state, rows_removed, rows_after, size_after, new_version_id, \
    new_etag, row_groups_rewritten, row_groups_copied, versions_deleted, cleanup_state, \
    forget_error, versions_to_delete, partition_types, outside_partitions, \
    rollback_version_id, noncurrent, noncurrent_since, read_version_id, versions_kept, \
    newer_holds, replicated_to, new_key, deletes_applied";

/// Records an object (once: a second record of the same object is ignored). Returns its
/// id, None when it was recorded before.
pub async fn insert(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    o: &JobObject,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        r#"insert into job_object (job_id, data_mapper_id, bucket, key, version_id, etag,
               size_bytes, status, rows_total, rows_matched, row_groups, error,
               partition_keys, partition_values, partition_types, outside_partitions,
               noncurrent, noncurrent_since, forget_state)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                   $17, $18,
                   case when $8 = 'failed' then 'failed'
                        when $8 <> 'matched' or $16 then 'skipped'
                        when $17 then 'old_version'
                        else 'found' end)
           on conflict (job_id, data_mapper_id, bucket, key, (coalesce(version_id, '')))
           do nothing
           returning job_object_id"#,
    )
    .bind(job_id)
    .bind(&o.data_mapper_id)
    .bind(&o.bucket)
    .bind(&o.key)
    .bind(&o.version_id)
    .bind(&o.etag)
    .bind(o.size_bytes)
    .bind(o.status)
    .bind(o.rows_total)
    .bind(o.rows_matched)
    .bind(&o.row_groups)
    .bind(&o.error)
    .bind(&o.partition_keys)
    .bind(&o.partition_values)
    .bind(&o.partition_types)
    .bind(o.outside_partitions)
    .bind(o.noncurrent)
    .bind(o.noncurrent_since)
    .fetch_optional(db)
    .await
}

/// The objects find recorded, in record order, from `start_at` (inclusive).
pub async fn list(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    start_at: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<JobObject>> {
    sqlx::query_as(AssertSqlSafe(format!(
        r#"select {OBJECT_COLUMNS}
           from job_object where job_id = $1 and ($2::bigint is null or job_object_id >= $2)
           order by job_object_id limit $3"#
    )))
    .bind(job_id)
    .bind(start_at)
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn get(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    job_object_id: i64,
) -> sqlx::Result<JobObject> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {OBJECT_COLUMNS} from job_object where job_id = $1 and job_object_id = $2"
    )))
    .bind(job_id)
    .bind(job_object_id)
    .fetch_one(db)
    .await
}

/// The ids of the job's objects in `forget_state`, for the next phase's tasks.
pub async fn ids_in_state(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    state: ForgetState,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "select job_object_id from job_object where job_id = $1 and forget_state = $2 order by job_object_id",
    )
    .bind(job_id)
    .bind(state)
    .fetch_all(db)
    .await
}

/// The objects of one mapper of the job in `forget_state` (a table format's data files,
/// which the mapper's commit and purge handle together).
pub async fn of_mapper_in_state(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    mapper: &str,
    state: ForgetState,
) -> sqlx::Result<Vec<JobObject>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {OBJECT_COLUMNS} from job_object
         where job_id = $1 and data_mapper_id = $2 and forget_state = $3
         order by job_object_id"
    )))
    .bind(job_id)
    .bind(mapper)
    .bind(state)
    .fetch_all(db)
    .await
}

/// The `s3://` locations of one mapper's objects holding matches that were not erased
/// (their forget, commit or verification failed, or never ran).
pub async fn unerased_of_mapper(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    mapper: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select 's3://' || bucket || '/' || key from job_object
         where job_id = $1 and data_mapper_id = $2
           and forget_state in ('found', 'written', 'failed', 'verify_failed')",
    )
    .bind(job_id)
    .bind(mapper)
    .fetch_all(db)
    .await
}

/// Forgets an object's new file (a table format's rewrite no snapshot needed, deleted):
/// its key, version, etag and hash.
pub async fn clear_new_file(db: impl PgExecutor<'_>, job_object_id: i64) -> sqlx::Result<()> {
    sqlx::query(
        "update job_object set new_key = null, new_version_id = null, new_etag = null,
                               sha256_after = null
         where job_object_id = $1",
    )
    .bind(job_object_id)
    .execute(db)
    .await?;
    Ok(())
}

/// The mappers of the job with objects written to new files (a table format's rewrites,
/// each mapper's to commit as one snapshot).
pub async fn mappers_with_new_files(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select distinct data_mapper_id from job_object
         where job_id = $1 and forget_state = 'written' and new_key is not null
         order by data_mapper_id",
    )
    .bind(job_id)
    .fetch_all(db)
    .await
}

/// Counts of the job's objects by forget state (hidden objects, never the table's data,
/// are none of forget's work and not counted).
pub async fn forget_state_counts(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<HashMap<ForgetState, i64>> {
    let rows: Vec<(ForgetState, i64)> = sqlx::query_as(
        "select forget_state, count(*) from job_object where job_id = $1 and status <> 'hidden'
         group by forget_state",
    )
    .bind(job_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Updates an object's forget progress (only the fields given).
#[derive(Debug, Clone, Default)]
pub struct ObjectUpdate<'a> {
    pub forget_state: Option<ForgetState>,
    pub version_id: Option<Option<&'a str>>,
    pub etag: Option<&'a str>,
    pub rows_total: Option<i64>,
    pub rows_removed: Option<i64>,
    pub rows_after: Option<i64>,
    pub size_after: Option<i64>,
    pub new_version_id: Option<&'a str>,
    pub new_etag: Option<&'a str>,
    pub row_groups_rewritten: Option<i32>,
    pub row_groups_copied: Option<i32>,
    pub versions_deleted: Option<&'a [String]>,
    pub cleanup_state: Option<CleanupState>,
    pub forget_error: Option<&'a str>,
    pub versions_to_delete: Option<&'a [String]>,
    pub rollback_version_id: Option<&'a str>,
    pub read_version_id: Option<&'a str>,
    pub versions_kept: Option<&'a [KeptVersion]>,
    pub newer_holds: Option<bool>,
    pub replicated_to: Option<&'a str>,
    /// Where the rewrite goes when it is a new file (`clear_new_file` forgets it).
    pub new_key: Option<&'a str>,
    /// The table's position delete files the rewrite applied.
    pub deletes_applied: Option<&'a [String]>,
    /// Lowercase hex SHA-256 of the version rewritten and of the version written.
    pub sha256_before: Option<&'a str>,
    pub sha256_after: Option<&'a str>,
    /// Verify's re-read that found no match left: the rows it counted and the stored
    /// size of the version (its time is the update's).
    pub verified_rows: Option<i64>,
    pub verified_bytes: Option<i64>,
}

pub async fn update(
    db: impl PgExecutor<'_>,
    job_object_id: i64,
    u: &ObjectUpdate<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        r#"update job_object set
               forget_state = coalesce($2, forget_state),
               version_id = case when $3 then $4 else version_id end,
               etag = coalesce($5, etag),
               rows_total = coalesce($6, rows_total),
               rows_removed = coalesce($7, rows_removed),
               rows_after = coalesce($8, rows_after),
               size_after = coalesce($9, size_after),
               new_version_id = coalesce($10, new_version_id),
               new_etag = coalesce($11, new_etag),
               row_groups_rewritten = coalesce($12, row_groups_rewritten),
               row_groups_copied = coalesce($13, row_groups_copied),
               versions_deleted = coalesce($14, versions_deleted),
               cleanup_state = coalesce($15, cleanup_state),
               forget_error = coalesce($16, forget_error),
               versions_to_delete = coalesce($17, versions_to_delete),
               rollback_version_id = coalesce($18, rollback_version_id),
               read_version_id = coalesce($19, read_version_id),
               versions_kept = coalesce($20, versions_kept),
               newer_holds = coalesce($21, newer_holds),
               replicated_to = coalesce($22, replicated_to),
               new_key = coalesce($23, new_key),
               deletes_applied = coalesce($24, deletes_applied),
               sha256_before = coalesce($25, sha256_before),
               sha256_after = coalesce($26, sha256_after),
               verified_rows = coalesce($27, verified_rows),
               verified_bytes = coalesce($28, verified_bytes),
               verified_at = case when $27::bigint is null then verified_at else now() end
           where job_object_id = $1"#,
    )
    .bind(job_object_id)
    .bind(u.forget_state)
    .bind(u.version_id.is_some())
    .bind(u.version_id.flatten())
    .bind(u.etag)
    .bind(u.rows_total)
    .bind(u.rows_removed)
    .bind(u.rows_after)
    .bind(u.size_after)
    .bind(u.new_version_id)
    .bind(u.new_etag)
    .bind(u.row_groups_rewritten)
    .bind(u.row_groups_copied)
    .bind(u.versions_deleted)
    .bind(u.cleanup_state)
    .bind(u.forget_error)
    .bind(u.versions_to_delete)
    .bind(u.rollback_version_id)
    .bind(u.read_version_id)
    .bind(u.versions_kept.map(sqlx::types::Json))
    .bind(u.newer_holds)
    .bind(u.replicated_to)
    .bind(u.new_key)
    .bind(u.deletes_applied)
    .bind(u.sha256_before)
    .bind(u.sha256_after)
    .bind(u.verified_rows)
    .bind(u.verified_bytes)
    .execute(db)
    .await?;
    Ok(())
}

impl JobObject {
    /// The version forget rewrote: the one find read unless someone wrote the key since.
    pub fn rewritten_version(&self) -> Option<&str> {
        self.read_version_id
            .as_deref()
            .or(self.version_id.as_deref())
    }

    /// A new object of `mapper` as find records it (forget fields empty).
    pub fn found(mapper: &str, bucket: &str, key: &str, status: ObjectStatus) -> Self {
        Self {
            job_object_id: 0,
            data_mapper_id: mapper.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: None,
            etag: None,
            size_bytes: 0,
            status,
            rows_total: None,
            rows_matched: 0,
            row_groups: Vec::new(),
            error: None,
            partition_keys: None,
            partition_values: None,
            partition_types: None,
            forget_state: ForgetState::Found,
            rows_removed: None,
            rows_after: None,
            size_after: None,
            new_version_id: None,
            new_etag: None,
            row_groups_rewritten: None,
            row_groups_copied: None,
            versions_deleted: Vec::new(),
            cleanup_state: None,
            forget_error: None,
            versions_to_delete: Vec::new(),
            outside_partitions: false,
            rollback_version_id: None,
            noncurrent: false,
            noncurrent_since: None,
            read_version_id: None,
            versions_kept: sqlx::types::Json(Vec::new()),
            newer_holds: false,
            replicated_to: None,
            new_key: None,
            deletes_applied: Vec::new(),
        }
    }
}

/// Marks the cleanup of the job's verified objects that never got a cleanup outcome
/// (their task failed for good) as failed; returns how many.
pub async fn fail_unfinished_cleanups(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "update job_object set cleanup_state = 'failed',
                forget_error = coalesce(forget_error, 'the cleanup task failed')
         where job_id = $1 and forget_state in ('verified', 'old_version')
           and cleanup_state is null",
    )
    .bind(job_id)
    .execute(db)
    .await?
    .rows_affected())
}

/// Moves the job's objects still in `from` to `to` with `error` (objects whose task
/// failed for good); returns how many.
pub async fn fail_left_in(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    from: ForgetState,
    to: ForgetState,
    error: &str,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "update job_object set forget_state = $3, forget_error = $4
         where job_id = $1 and forget_state = $2",
    )
    .bind(job_id)
    .bind(from)
    .bind(to)
    .bind(error)
    .execute(db)
    .await?
    .rows_affected())
}

/// Records, for this job, the objects of its mappers whose old versions an earlier job
/// left behind: the latest verified record of the key whose cleanup failed or never
/// ran, with no later cleanup of the key done, and no record of the key in this job.
/// They are recorded `leftover`, verified, with the earlier new version (cleanup deletes
/// the versions older than it). Returns their ids.
pub async fn adopt_leftovers(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        r#"insert into job_object (job_id, data_mapper_id, bucket, key, version_id, etag,
               size_bytes, status, rows_matched, forget_state, new_version_id, new_etag,
               error)
           select $1, o.data_mapper_id, o.bucket, o.key, o.version_id, o.etag, o.size_bytes,
                  'leftover', 0, 'verified', o.new_version_id, o.new_etag,
                  'old versions left by job ' || o.job_id::text
           from job_object o
           join job_data_mapper m on m.job_id = $1 and m.data_mapper_id = o.data_mapper_id
           where o.job_id <> $1
             and o.forget_state = 'verified'
             and o.new_key is null
             and (o.cleanup_state is null or o.cleanup_state = 'failed')
             and not exists (select 1 from job_object later
                             where later.bucket = o.bucket and later.key = o.key
                               and later.job_object_id > o.job_object_id
                               and later.cleanup_state = 'done')
             and not exists (select 1 from job_object mine
                             where mine.job_id = $1 and mine.bucket = o.bucket
                               and mine.key = o.key)
           order by o.job_object_id desc
           on conflict (job_id, data_mapper_id, bucket, key, (coalesce(version_id, '')))
           do nothing
           returning job_object_id"#,
    )
    .bind(job_id)
    .fetch_all(db)
    .await
}

/// Per mapper with any: objects that failed (find or rewrite or verification), that
/// could not be read, and whose cleanup failed.
pub async fn failure_counts(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<Vec<(String, i64, i64, i64)>> {
    sqlx::query_as(
        "select data_mapper_id,
                count(*) filter (where status = 'failed'
                                 or forget_state in ('failed', 'verify_failed')),
                count(*) filter (where status = 'not_searchable'),
                count(*) filter (where cleanup_state = 'failed')
         from job_object where job_id = $1
           and (status in ('failed', 'not_searchable')
                or forget_state in ('failed', 'verify_failed') or cleanup_state = 'failed')
         group by data_mapper_id",
    )
    .bind(job_id)
    .fetch_all(db)
    .await
}

/// Per mapper, the hidden objects find recorded (`_` or `.` names below the table
/// location: not searched) and one of their keys: (mapper, bucket, a key, count).
pub async fn hidden_counts(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<Vec<(String, String, String, i64)>> {
    sqlx::query_as(
        "select data_mapper_id, min(bucket), min(key), count(*) from job_object
         where job_id = $1 and status = 'hidden' group by data_mapper_id",
    )
    .bind(job_id)
    .fetch_all(db)
    .await
}

/// The versions of a key this job recorded as old versions of their own (each deleted by
/// its own cleanup).
pub async fn old_versions_of(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    bucket: &str,
    key: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select version_id from job_object
         where job_id = $1 and bucket = $2 and key = $3 and forget_state = 'old_version'
           and version_id is not null",
    )
    .bind(job_id)
    .bind(bucket)
    .bind(key)
    .fetch_all(db)
    .await
}

/// Whether this job's rewrite of a key failed verification without being rolled back
/// (Lethe's unverified version may be current: the old versions may be the only good
/// copy).
pub async fn unverified_rewrite(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    bucket: &str,
    key: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "select exists (select 1 from job_object
         where job_id = $1 and bucket = $2 and key = $3
           and forget_state in ('written', 'verify_failed') and rollback_version_id is null)",
    )
    .bind(job_id)
    .bind(bucket)
    .bind(key)
    .fetch_one(db)
    .await
}

/// Objects find could not read (they keep their items queued).
pub async fn count_not_searchable(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select count(*) from job_object where job_id = $1 and status = 'not_searchable'",
    )
    .bind(job_id)
    .fetch_one(db)
    .await
}

/// Objects whose cleanup failed.
pub async fn count_cleanup_failed(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select count(*) from job_object where job_id = $1 and cleanup_state = 'failed'",
    )
    .bind(job_id)
    .fetch_one(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn an_object_is_recorded_once_and_moves_through_its_states(db: sqlx::PgPool) {
        let job_id = crate::db::job::tests::a_job(&db).await;
        let mut o = JobObject::found("m", "b", "k1", ObjectStatus::Matched);
        o.rows_matched = 3;
        insert(&db, job_id, &o).await.unwrap();
        insert(&db, job_id, &o).await.unwrap();
        let mut failed = JobObject::found("m", "b", "k2", ObjectStatus::Failed);
        failed.error = Some("corrupt".into());
        insert(&db, job_id, &failed).await.unwrap();
        let all = list(&db, job_id, None, 10).await.unwrap();
        assert_eq!(all.len(), 2, "recorded once");
        assert_eq!(
            all[1].forget_state,
            ForgetState::Failed,
            "a failed find is a failed object"
        );
        let id = all[0].job_object_id;
        assert_eq!(
            ids_in_state(&db, job_id, ForgetState::Found).await.unwrap(),
            [id]
        );
        let written = ObjectUpdate {
            forget_state: Some(ForgetState::Written),
            version_id: Some(None),
            rows_removed: Some(3),
            new_version_id: Some("v2"),
            ..ObjectUpdate::default()
        };
        update(&db, id, &written).await.unwrap();
        let got = get(&db, job_id, id).await.unwrap();
        assert_eq!(
            (got.forget_state, got.rows_removed),
            (ForgetState::Written, Some(3))
        );
        assert_eq!(got.new_version_id.as_deref(), Some("v2"));
        let moved = fail_left_in(
            &db,
            job_id,
            ForgetState::Written,
            ForgetState::VerifyFailed,
            "lost",
        )
        .await
        .unwrap();
        assert_eq!(moved, 1);
        let counts = forget_state_counts(&db, job_id).await.unwrap();
        assert_eq!(counts.get(&ForgetState::VerifyFailed), Some(&1));
        assert_eq!(counts.get(&ForgetState::Failed), Some(&1));
        let failures = failure_counts(&db, job_id).await.unwrap();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].0, "m");
        let cleanup = ObjectUpdate {
            cleanup_state: Some(CleanupState::Failed),
            ..ObjectUpdate::default()
        };
        update(&db, id, &cleanup).await.unwrap();
        assert_eq!(count_cleanup_failed(&db, job_id).await.unwrap(), 1);
        // A verified object whose cleanup never ended is a failed cleanup.
        let mut verified = JobObject::found("m", "b", "k3", ObjectStatus::Matched);
        verified.rows_matched = 1;
        insert(&db, job_id, &verified).await.unwrap();
        let k3 = list(&db, job_id, None, 10).await.unwrap()[2].job_object_id;
        let pending = ["v1".to_owned()];
        let state = ObjectUpdate {
            forget_state: Some(ForgetState::Verified),
            versions_to_delete: Some(&pending),
            ..ObjectUpdate::default()
        };
        update(&db, k3, &state).await.unwrap();
        assert_eq!(fail_unfinished_cleanups(&db, job_id).await.unwrap(), 1);
        let k3 = get(&db, job_id, k3).await.unwrap();
        assert_eq!(k3.cleanup_state, Some(CleanupState::Failed));
        assert!(k3.versions_deleted.is_empty(), "nothing was deleted");
        assert_eq!(k3.versions_to_delete, pending);
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_hidden_object_is_recorded_but_is_neither_forget_work_nor_a_failure(
        db: sqlx::PgPool,
    ) {
        let job_id = crate::db::job::tests::a_job(&db).await;
        let mut hidden = JobObject::found("m", "b", "t/_metadata", ObjectStatus::Hidden);
        hidden.error = Some("hidden".into());
        insert(&db, job_id, &hidden).await.unwrap();
        let all = list(&db, job_id, None, 10).await.unwrap();
        assert_eq!(all[0].status, ObjectStatus::Hidden);
        assert_eq!(all[0].forget_state, ForgetState::Skipped, "never rewritten");
        assert!(forget_state_counts(&db, job_id).await.unwrap().is_empty());
        assert!(failure_counts(&db, job_id).await.unwrap().is_empty());
        assert_eq!(count_not_searchable(&db, job_id).await.unwrap(), 0);
    }
}
