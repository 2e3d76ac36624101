//! `job`, its queue snapshot (`job_queue_item`), its mappers (`job_data_mapper`), the
//! objects find recorded (`job_object`) and its event log (`job_event`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgExecutor, Row};
use uuid::Uuid;

use crate::domain::job::{JobStatus, JobTrigger};

/// A job row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRecord {
    pub job_id: Uuid,
    pub status: String,
    pub dry_run: bool,
    pub requested_data_mappers: Vec<String>,
    pub settings: Value,
    pub trigger: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    pub stats: JobStats,
    /// Items in the job's snapshot of the queue.
    pub queue_items: i64,
    /// The data mappers the job searches.
    pub data_mappers: Vec<String>,
}

impl JobRecord {
    pub fn status(&self) -> JobStatus {
        JobStatus::parse(&self.status).unwrap_or(JobStatus::Failed)
    }
}

/// The job's counters (find figures; forget figures come with the forget phase).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct JobStats {
    /// Partitions the catalog (or the path layout) listed.
    pub partitions_listed: i64,
    /// Partitions skipped because no queued match can live in them.
    pub partitions_pruned: i64,
    /// Objects listed in the partitions searched.
    pub objects_listed: i64,
    /// Objects not searched: markers, temporary output, empty or archived objects.
    pub objects_skipped: i64,
    /// Objects searched (footer read at least).
    pub objects_scanned: i64,
    /// Objects whose every row group statistics or bloom filters excluded.
    pub objects_pruned: i64,
    /// Objects that could not be searched (corrupt, unreadable, wrong schema).
    pub objects_failed: i64,
    /// Objects holding at least one matching row.
    pub objects_matched: i64,
    /// Bytes of match columns decoded.
    pub bytes_scanned: i64,
    pub row_groups_scanned: i64,
    pub row_groups_pruned: i64,
    pub rows_matched: i64,
    /// Objects written again without the matching rows.
    pub objects_rewritten: i64,
    /// Objects whose rows no longer matched when forget read them (nothing written).
    pub objects_unchanged: i64,
    /// Objects forget could not rewrite (left as they were).
    pub objects_forget_failed: i64,
    /// Rewritten objects whose new version passed verification.
    pub objects_verified: i64,
    /// Rewritten objects whose new version failed verification (old version kept).
    pub objects_verify_failed: i64,
    /// Rows erased.
    pub rows_removed: i64,
    /// Bytes of the new versions.
    pub bytes_written: i64,
    /// Old object versions deleted by cleanup.
    pub versions_deleted: i64,
    /// Objects whose old versions could not all be deleted.
    pub cleanup_failures: i64,
    /// Queue items erased and taken off the queue.
    pub matches_erased: i64,
}

impl JobStats {
    /// Adds `other` to these counters.
    pub fn add(&mut self, other: &JobStats) {
        self.partitions_listed += other.partitions_listed;
        self.partitions_pruned += other.partitions_pruned;
        self.objects_listed += other.objects_listed;
        self.objects_skipped += other.objects_skipped;
        self.objects_scanned += other.objects_scanned;
        self.objects_pruned += other.objects_pruned;
        self.objects_failed += other.objects_failed;
        self.objects_matched += other.objects_matched;
        self.bytes_scanned += other.bytes_scanned;
        self.row_groups_scanned += other.row_groups_scanned;
        self.row_groups_pruned += other.row_groups_pruned;
        self.rows_matched += other.rows_matched;
        self.objects_rewritten += other.objects_rewritten;
        self.objects_unchanged += other.objects_unchanged;
        self.objects_forget_failed += other.objects_forget_failed;
        self.objects_verified += other.objects_verified;
        self.objects_verify_failed += other.objects_verify_failed;
        self.rows_removed += other.rows_removed;
        self.bytes_written += other.bytes_written;
        self.versions_deleted += other.versions_deleted;
        self.cleanup_failures += other.cleanup_failures;
        self.matches_erased += other.matches_erased;
    }
}

const STAT_COLUMNS: [&str; 22] = [
    "partitions_listed",
    "partitions_pruned",
    "objects_listed",
    "objects_skipped",
    "objects_scanned",
    "objects_pruned",
    "objects_failed",
    "objects_matched",
    "bytes_scanned",
    "row_groups_scanned",
    "row_groups_pruned",
    "rows_matched",
    "objects_rewritten",
    "objects_unchanged",
    "objects_forget_failed",
    "objects_verified",
    "objects_verify_failed",
    "rows_removed",
    "bytes_written",
    "versions_deleted",
    "cleanup_failures",
    "matches_erased",
];

fn select_job() -> String {
    format!(
        r#"select j.job_id, j.status, j.dry_run, j.requested_data_mappers, j.settings, j.trigger,
               j.created_by, j.created_at, j.started_at, j.finished_at, {stats},
               (select count(*) from job_queue_item q where q.job_id = j.job_id) as queue_items,
               array(select m.data_mapper_id from job_data_mapper m where m.job_id = j.job_id
                     order by m.data_mapper_id) as data_mappers
           from job j"#,
        stats = STAT_COLUMNS.map(|c| format!("j.{c}")).join(", ")
    )
}

/// What a new job needs.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub dry_run: bool,
    /// Empty = every mapper the queued items name.
    pub data_mappers: &'a [String],
    pub settings: Value,
    pub trigger: JobTrigger,
    pub created_by: &'a str,
}

/// Why a job could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateJobError {
    #[error("a job is already running")]
    AlreadyRunning,
    #[error("no queued item applies to the chosen data mappers")]
    NothingQueued,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Creates a job over a snapshot of the queue (items that apply to the chosen mappers) and
/// records its mappers with their current definitions. Call in a transaction.
pub async fn insert_job(
    tx: &mut sqlx::PgConnection,
    job_id: Uuid,
    new: &NewJob<'_>,
) -> Result<(), CreateJobError> {
    let inserted = sqlx::query(
        r#"insert into job (job_id, dry_run, requested_data_mappers, settings, trigger, created_by)
           values ($1, $2, $3, $4, $5, $6)"#,
    )
    .bind(job_id)
    .bind(new.dry_run)
    .bind(new.data_mappers)
    .bind(&new.settings)
    .bind(new.trigger.as_str())
    .bind(new.created_by)
    .execute(&mut *tx)
    .await;
    if let Err(e) = inserted {
        return Err(if super::is_constraint(&e, "job_one_active_idx") {
            CreateJobError::AlreadyRunning
        } else {
            e.into()
        });
    }
    let subset = !new.data_mappers.is_empty();
    let items = sqlx::query(
        r#"insert into job_queue_item (job_id, deletion_queue_item_id)
           select $1, deletion_queue_item_id from deletion_queue_item
           where not $3 or cardinality(data_mappers) = 0 or data_mappers && $2"#,
    )
    .bind(job_id)
    .bind(new.data_mappers)
    .bind(subset)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if items == 0 {
        return Err(CreateJobError::NothingQueued);
    }
    // The mappers searched: those named by snapshot items, or every mapper when an item
    // names none; within the chosen subset.
    sqlx::query(
        r#"insert into job_data_mapper (job_id, data_mapper_id, definition)
           select $1, m.data_mapper_id, jsonb_build_object(
                      'catalog', m.catalog, 'format', m.format, 'columns', m.columns,
                      'partition_keys', m.partition_keys, 'role_arn', m.role_arn,
                      'delete_old_versions', m.delete_old_versions,
                      'ignore_object_not_found', m.ignore_object_not_found)
           from data_mapper m
           where (not $3 or m.data_mapper_id = any($2))
             and exists (select 1 from job_queue_item j
                         join deletion_queue_item q using (deletion_queue_item_id)
                         where j.job_id = $1
                           and (cardinality(q.data_mappers) = 0 or m.data_mapper_id = any(q.data_mappers)))
           for share of m"#,
    )
    .bind(job_id)
    .bind(new.data_mappers)
    .bind(subset)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn get_job(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<JobRecord> {
    sqlx::query_as(AssertSqlSafe(format!(
        "{} where j.job_id = $1",
        select_job()
    )))
    .bind(job_id)
    .fetch_one(db)
    .await
}

/// Jobs newest first; `before` is the `(created_at, job_id)` of the last job seen.
pub async fn list_jobs(
    db: impl PgExecutor<'_>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<JobRecord>> {
    sqlx::query_as(AssertSqlSafe(format!(
        r#"{} where $1::uuid is null or (j.created_at, j.job_id) <=
               (select created_at, job_id from job where job_id = $1)
           order by j.created_at desc, j.job_id desc limit $2"#,
        select_job()
    )))
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The active job, if any.
pub async fn active_job(db: impl PgExecutor<'_>) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "select job_id from job where status in ({})",
        JobStatus::active_sql()
    )))
    .fetch_optional(db)
    .await
}

/// Locks the job row and returns its status and dry-run flag.
pub async fn lock_job(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<Option<(JobStatus, bool)>> {
    let row: Option<(String, bool)> =
        sqlx::query_as("select status, dry_run from job where job_id = $1 for update")
            .bind(job_id)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(s, d)| (JobStatus::parse(&s).unwrap_or(JobStatus::Failed), d)))
}

/// Moves the job from one of `from` to `to`; false when it was in another state.
pub async fn transition(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    from: &[JobStatus],
    to: JobStatus,
) -> sqlx::Result<bool> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let r = sqlx::query(
        r#"update job set status = $3, updated_at = now(),
               started_at = case when $3 = 'finding' then coalesce(started_at, now()) else started_at end,
               finished_at = case when $4 then now() else finished_at end
           where job_id = $1 and status = any($2)"#,
    )
    .bind(job_id)
    .bind(&from)
    .bind(to.as_str())
    .bind(!to.is_active())
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Adds to the job's counters.
pub async fn add_stats(db: impl PgExecutor<'_>, job_id: Uuid, s: &JobStats) -> sqlx::Result<()> {
    let values = [
        s.partitions_listed,
        s.partitions_pruned,
        s.objects_listed,
        s.objects_skipped,
        s.objects_scanned,
        s.objects_pruned,
        s.objects_failed,
        s.objects_matched,
        s.bytes_scanned,
        s.row_groups_scanned,
        s.row_groups_pruned,
        s.rows_matched,
        s.objects_rewritten,
        s.objects_unchanged,
        s.objects_forget_failed,
        s.objects_verified,
        s.objects_verify_failed,
        s.rows_removed,
        s.bytes_written,
        s.versions_deleted,
        s.cleanup_failures,
        s.matches_erased,
    ];
    let sets: Vec<String> = STAT_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = {c} + ${}", i + 2))
        .collect();
    let sql = format!(
        "update job set {}, updated_at = now() where job_id = $1",
        sets.join(", ")
    );
    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(job_id);
    for v in values {
        q = q.bind(v);
    }
    q.execute(db).await?;
    Ok(())
}

/// Deletes the jobs that ended more than `retention_days` ago, with their reports
/// (objects, events, matches, tasks), after adding their counters to
/// `job_stats_retired`. Returns how many jobs went.
pub async fn delete_expired(db: &sqlx::PgPool, retention_days: i32) -> sqlx::Result<u64> {
    let mut tx = db.begin().await?;
    let sql = format!(
        "delete from job where finished_at < now() - make_interval(days => $1) returning {}",
        STAT_COLUMNS.join(", ")
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(retention_days)
        .fetch_all(&mut *tx)
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut stats: Vec<&str> = STAT_COLUMNS.to_vec();
    let mut totals: Vec<i64> = (0..STAT_COLUMNS.len())
        .map(|i| rows.iter().map(|r| r.try_get::<i64, _>(i)).sum())
        .collect::<sqlx::Result<_>>()?;
    stats.push("jobs");
    totals.push(rows.len() as i64);
    sqlx::query(
        r#"insert into job_stats_retired (stat, total) select * from unnest($1::text[], $2::int8[])
           on conflict (stat) do update set total = job_stats_retired.total + excluded.total"#,
    )
    .bind(&stats)
    .bind(&totals)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// A mapper as the job snapshotted it.
#[derive(Debug, Clone, Deserialize)]
pub struct MapperSnapshot {
    pub catalog: crate::domain::data_mapper::CatalogRef,
    pub format: crate::domain::data_mapper::Format,
    pub columns: Vec<String>,
    pub partition_keys: Vec<String>,
    pub ignore_object_not_found: bool,
    pub delete_old_versions: bool,
}

pub async fn get_job_mapper(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    mapper: &str,
) -> sqlx::Result<MapperSnapshot> {
    let Json(snapshot): Json<MapperSnapshot> = sqlx::query_scalar(
        "select definition from job_data_mapper where job_id = $1 and data_mapper_id = $2",
    )
    .bind(job_id)
    .bind(mapper)
    .fetch_one(db)
    .await?;
    Ok(snapshot)
}

/// The job's mappers, in id order.
pub async fn list_job_mappers(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select data_mapper_id from job_data_mapper where job_id = $1 order by data_mapper_id",
    )
    .bind(job_id)
    .fetch_all(db)
    .await
}

/// Sets a mapper's find state (`listed` or `failed`).
pub async fn set_mapper_state(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    mapper: &str,
    state: &str,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "update job_data_mapper set state = $3, error = $4 where job_id = $1 and data_mapper_id = $2",
    )
    .bind(job_id)
    .bind(mapper)
    .bind(state)
    .bind(error)
    .execute(db)
    .await?;
    Ok(())
}

/// The queued match ids that apply to `mapper` in the job's snapshot, with their types.
pub async fn job_match_ids(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    mapper: &str,
) -> sqlx::Result<Vec<(Value, String)>> {
    sqlx::query_as(
        r#"select q.match_id, q.match_type from job_queue_item j
           join deletion_queue_item q using (deletion_queue_item_id)
           where j.job_id = $1 and (cardinality(q.data_mappers) = 0 or $2 = any(q.data_mappers))"#,
    )
    .bind(job_id)
    .bind(mapper)
    .fetch_all(db)
    .await
}

/// An object find recorded, and what forget, verify and cleanup did with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct JobObject {
    pub job_object_id: i64,
    pub data_mapper_id: String,
    pub bucket: String,
    pub key: String,
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub size_bytes: i64,
    pub status: String,
    pub rows_total: Option<i64>,
    pub rows_matched: i64,
    pub row_groups: Vec<i32>,
    pub error: Option<String>,
    pub partition_keys: Option<Vec<String>>,
    pub partition_values: Option<Vec<String>>,
    pub forget_state: String,
    pub rows_removed: Option<i64>,
    pub rows_after: Option<i64>,
    pub size_after: Option<i64>,
    pub new_version_id: Option<String>,
    pub new_etag: Option<String>,
    pub row_groups_rewritten: Option<i32>,
    pub row_groups_copied: Option<i32>,
    pub versions_deleted: Vec<String>,
    pub cleanup_state: Option<String>,
    pub forget_error: Option<String>,
}

const OBJECT_COLUMNS: &str = "job_object_id, data_mapper_id, bucket, key, version_id, etag, \
    size_bytes, status, rows_total, rows_matched, row_groups, error, partition_keys, \
    partition_values, forget_state, rows_removed, rows_after, size_after, new_version_id, \
    new_etag, row_groups_rewritten, row_groups_copied, versions_deleted, cleanup_state, \
    forget_error";

/// Records an object (once: a second record of the same object is ignored).
pub async fn insert_object(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    o: &JobObject,
) -> sqlx::Result<()> {
    sqlx::query(
        r#"insert into job_object (job_id, data_mapper_id, bucket, key, version_id, etag,
               size_bytes, status, rows_total, rows_matched, row_groups, error,
               partition_keys, partition_values, forget_state)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                   case when $8 = 'failed' then 'failed' else 'found' end)
           on conflict on constraint job_object_unique do nothing"#,
    )
    .bind(job_id)
    .bind(&o.data_mapper_id)
    .bind(&o.bucket)
    .bind(&o.key)
    .bind(&o.version_id)
    .bind(&o.etag)
    .bind(o.size_bytes)
    .bind(&o.status)
    .bind(o.rows_total)
    .bind(o.rows_matched)
    .bind(&o.row_groups)
    .bind(&o.error)
    .bind(&o.partition_keys)
    .bind(&o.partition_values)
    .execute(db)
    .await?;
    Ok(())
}

/// The objects find recorded, in record order, from `start_at` (inclusive).
pub async fn list_objects(
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

pub async fn get_object(
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
pub async fn object_ids_in_state(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    state: &str,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "select job_object_id from job_object where job_id = $1 and forget_state = $2 order by job_object_id",
    )
    .bind(job_id)
    .bind(state)
    .fetch_all(db)
    .await
}

/// Counts of the job's objects by forget state.
pub async fn forget_state_counts(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<std::collections::HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select forget_state, count(*) from job_object where job_id = $1 group by forget_state",
    )
    .bind(job_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Updates an object's forget progress (only the fields given).
#[derive(Debug, Clone, Default)]
pub struct ObjectUpdate<'a> {
    pub forget_state: Option<&'a str>,
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
    pub cleanup_state: Option<&'a str>,
    pub forget_error: Option<&'a str>,
}

pub async fn update_object(
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
               forget_error = coalesce($16, forget_error)
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
    .execute(db)
    .await?;
    Ok(())
}

/// One entry of a job's event log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobEvent {
    pub job_event_id: i64,
    pub level: String,
    pub kind: String,
    pub message: String,
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

/// Appends to the job's event log. Never pass match ids or row data.
pub async fn insert_event(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    level: &str,
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

/// Events after `after` (exclusive), oldest first.
pub async fn list_events(
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

/// Whether the job has a task queued or running (an index probe, not a count).
pub async fn has_open_tasks(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "select exists (select 1 from task where job_id = $1 and state in ('queued', 'running'))",
    )
    .bind(job_id)
    .fetch_one(db)
    .await
}

/// Counts of the job's tasks that are still to run, and that failed (with one error).
pub async fn task_counts(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<(i64, i64, Option<String>)> {
    sqlx::query_as(
        r#"select count(*) filter (where state in ('queued', 'running')),
                  count(*) filter (where state = 'failed'),
                  min(last_error) filter (where state = 'failed')
           from task where job_id = $1"#,
    )
    .bind(job_id)
    .fetch_one(db)
    .await
}

/// Mappers whose find failed.
pub async fn failed_mappers(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select count(*) from job_data_mapper where job_id = $1 and state = 'failed'",
    )
    .bind(job_id)
    .fetch_one(db)
    .await
}

/// Cancels the job's tasks that have not started.
pub async fn cancel_tasks(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "update task set state = 'cancelled', updated_at = now() where job_id = $1 and state = 'queued'",
    )
    .bind(job_id)
    .execute(db)
    .await?
    .rows_affected())
}

/// True when an active job searches this mapper.
pub async fn mapper_in_active_job(db: impl PgExecutor<'_>, mapper: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        r#"select exists (select 1 from job_data_mapper m join job j using (job_id)
               where m.data_mapper_id = $1 and j.status in ({}))"#,
        JobStatus::active_sql()
    )))
    .bind(mapper)
    .fetch_one(db)
    .await
}

/// Prometheus gauges of jobs by status, tasks by state and kind, the age of the oldest
/// runnable task, and queue items by deadline (overdue / within a day).
pub async fn gauges(db: &sqlx::PgPool) -> sqlx::Result<String> {
    use std::fmt::Write;
    let mut out = String::new();
    let jobs: Vec<(String, i64)> =
        sqlx::query_as("select status, count(*) from job group by status order by status")
            .fetch_all(db)
            .await?;
    out.push_str("# HELP lethe_jobs Jobs by status.\n# TYPE lethe_jobs gauge\n");
    for status in JobStatus::ALL {
        let n = jobs
            .iter()
            .find(|(s, _)| s == status.as_str())
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "lethe_jobs{{status=\"{}\"}} {n}", status.as_str());
    }
    let tasks: Vec<(String, String, i64)> = sqlx::query_as(
        "select kind, state, count(*) from task where state in ('queued', 'running', 'failed')
         group by kind, state order by kind, state",
    )
    .fetch_all(db)
    .await?;
    out.push_str(
        "# HELP lethe_tasks Tasks queued, running or failed, by kind.\n# TYPE lethe_tasks gauge\n",
    );
    for (kind, state, n) in tasks {
        let _ = writeln!(out, "lethe_tasks{{kind=\"{kind}\",state=\"{state}\"}} {n}");
    }
    let age: f64 = sqlx::query_scalar(
        "select coalesce(extract(epoch from now() - min(run_at))::float8, 0) from task
         where state = 'queued' and run_at <= now()",
    )
    .fetch_one(db)
    .await?;
    out.push_str("# HELP lethe_task_oldest_runnable_seconds Age of the oldest runnable queued task.\n# TYPE lethe_task_oldest_runnable_seconds gauge\n");
    let _ = writeln!(out, "lethe_task_oldest_runnable_seconds {age:.3}");
    let (overdue, soon): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where deadline < now()),
                count(*) filter (where deadline >= now() and deadline < now() + interval '1 day')
         from deletion_queue_item",
    )
    .fetch_one(db)
    .await?;
    out.push_str("# HELP lethe_queue_items_deadline Queued items past their deadline or due within a day.\n# TYPE lethe_queue_items_deadline gauge\n");
    let _ = writeln!(
        out,
        "lethe_queue_items_deadline{{window=\"overdue\"}} {overdue}"
    );
    let _ = writeln!(
        out,
        "lethe_queue_items_deadline{{window=\"within_1d\"}} {soon}"
    );
    totals(db, &mut out).await?;
    Ok(out)
}

/// Work done by every job so far, summed from the jobs' stats (cluster-wide counters:
/// every process reports the same values).
async fn totals(db: &sqlx::PgPool, out: &mut String) -> sqlx::Result<()> {
    use std::fmt::Write;
    /// (metric, help, label, [(label value, stat column)]).
    type Family = (
        &'static str,
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    );
    const FAMILIES: [Family; 4] = [
        (
            "lethe_job_objects_total",
            "Objects by what jobs did with them.",
            "outcome",
            &[
                ("scanned", "objects_scanned"),
                ("matched", "objects_matched"),
                ("failed", "objects_failed"),
                ("rewritten", "objects_rewritten"),
                ("unchanged", "objects_unchanged"),
                ("forget_failed", "objects_forget_failed"),
                ("verified", "objects_verified"),
                ("verify_failed", "objects_verify_failed"),
            ],
        ),
        (
            "lethe_job_bytes_total",
            "Bytes of match columns scanned by find, and bytes of new versions written by forget.",
            "kind",
            &[("scanned", "bytes_scanned"), ("written", "bytes_written")],
        ),
        (
            "lethe_job_rows_total",
            "Rows found matching and rows removed.",
            "kind",
            &[("matched", "rows_matched"), ("removed", "rows_removed")],
        ),
        (
            "lethe_job_versions_deleted_total",
            "Old object versions deleted by cleanup.",
            "kind",
            &[("deleted", "versions_deleted")],
        ),
    ];
    let columns: Vec<&str> = FAMILIES
        .iter()
        .flat_map(|(_, _, _, series)| series.iter().map(|(_, column)| *column))
        .collect();
    // Live jobs plus the counters of jobs deleted by retention.
    let sql = format!(
        "select {} from job",
        columns
            .iter()
            .map(|c| {
                format!(
                    "(coalesce(sum({c}), 0) + coalesce((select total from job_stats_retired \
                     where stat = '{c}'), 0))::int8"
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(db).await?;
    let mut at = 0;
    for (name, help, label, series) in FAMILIES {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (value, _) in series {
            let n: i64 = sqlx::Row::try_get(&row, at)?;
            at += 1;
            if series.len() == 1 {
                let _ = writeln!(out, "{name} {n}");
            } else {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
            }
        }
    }
    Ok(())
}
