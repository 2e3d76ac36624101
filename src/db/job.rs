//! `job` (one row per job: its state, settings snapshot and counters) and its queue
//! snapshot (`job_queue_item`). The job's other tables have their own files:
//! `job_data_mapper`, `job_object`, `job_event`, `job_match`.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgExecutor, Row};
use uuid::Uuid;

pub use super::job_stats::{JobStats, STAT_COLUMNS};
use crate::domain::job::{JobStatus, JobTrigger};
use crate::domain::settings::JobSettings;

/// A job row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRecord {
    pub job_id: Uuid,
    pub status: JobStatus,
    pub dry_run: bool,
    pub requested_data_mappers: Vec<String>,
    pub settings: Json<JobSettings>,
    pub trigger: JobTrigger,
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

fn select_job() -> String {
    format!(
        r#"select j.job_id, j.status, j.dry_run, j.requested_data_mappers, j.settings, j.trigger,
               j.created_by, j.created_at, j.started_at, j.finished_at, {stats},
               (select count(*) from job_queue_item q where q.job_id = j.job_id) as queue_items,
               array(select m.data_mapper_id from job_data_mapper m where m.job_id = j.job_id
                     order by m.data_mapper_id) as data_mappers
           from job j"#,
        stats = STAT_COLUMNS
            .iter()
            .map(|c| format!("j.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// What a new job needs.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub dry_run: bool,
    /// Empty = every mapper the queued items name.
    pub data_mappers: &'a [String],
    pub settings: JobSettings,
    pub trigger: JobTrigger,
    /// Who starts it: a caller, or the scheduler (audited with the job, in its transaction).
    pub actor: crate::db::audit_event::Actor<'a>,
    /// Only the items whose deadline is at or before this (a deadline-triggered job).
    pub deadline_before: Option<chrono::DateTime<chrono::Utc>>,
    /// What the audit row names as the job's cause (the triggering items of a deadline
    /// job: keyed hashes, creators, deadlines); null for a job a caller started.
    pub cause: serde_json::Value,
}

/// Why a job could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateJobError {
    #[error("a job is already running")]
    AlreadyRunning,
    #[error("no queued item applies to the chosen data mappers")]
    NothingQueued,
    /// A cancelled job still owes its items their receipts (a task of it still runs): a
    /// new job could erase an item before that job's receipt of it is issued.
    #[error("a cancelled job's receipts are not issued yet")]
    Settling,
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
    .bind(Json(&new.settings))
    .bind(new.trigger)
    .bind(new.actor.subject)
    .execute(&mut *tx)
    .await;
    if let Err(e) = inserted {
        return Err(if super::is_constraint(&e, "job_one_active_idx") {
            CreateJobError::AlreadyRunning
        } else {
            e.into()
        });
    }
    // After the insert: a cancel that committed meanwhile is seen (read committed).
    let settling: bool =
        sqlx::query_scalar("select exists (select 1 from job where receipts_due and job_id <> $1)")
            .bind(job_id)
            .fetch_one(&mut *tx)
            .await?;
    if settling {
        return Err(CreateJobError::Settling);
    }
    let subset = !new.data_mappers.is_empty();
    let items = sqlx::query(
        r#"insert into job_queue_item (job_id, deletion_queue_item_id)
           select $1, deletion_queue_item_id from deletion_queue_item
           where (not $3 or cardinality(data_mappers) = 0 or data_mappers && $2)
             and ($4::timestamptz is null or deadline <= $4)"#,
    )
    .bind(job_id)
    .bind(new.data_mappers)
    .bind(subset)
    .bind(new.deadline_before)
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
                      'ignore_object_not_found', m.ignore_object_not_found,
                      'allow_unversioned', m.allow_unversioned,
                      'skip_archived', m.skip_archived,
                      'expire_tagged_snapshots', m.expire_tagged_snapshots,
                      'column_types', m.column_types)
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

/// The job's status, without a lock (None: no such job).
pub async fn status(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<Option<JobStatus>> {
    sqlx::query_scalar("select status from job where job_id = $1")
        .bind(job_id)
        .fetch_optional(db)
        .await
}

/// The job's status and counters (what a worker reads after each task).
pub async fn progress(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<Option<(JobStatus, JobStats)>> {
    #[derive(sqlx::FromRow)]
    struct Progress {
        status: JobStatus,
        #[sqlx(flatten)]
        stats: JobStats,
    }
    let row: Option<Progress> = sqlx::query_as(AssertSqlSafe(format!(
        "select status, {} from job where job_id = $1",
        STAT_COLUMNS.join(", ")
    )))
    .bind(job_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|p| (p.status, p.stats)))
}

/// The job's settings snapshot.
pub async fn settings(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<JobSettings> {
    let Json(settings) = sqlx::query_scalar("select settings from job where job_id = $1")
        .bind(job_id)
        .fetch_one(db)
        .await?;
    Ok(settings)
}

/// Locks the job row and returns its status and dry-run flag.
pub async fn lock_job(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<Option<(JobStatus, bool)>> {
    sqlx::query_as("select status, dry_run from job where job_id = $1 for update")
        .bind(job_id)
        .fetch_optional(db)
        .await
}

/// Moves the job from one of `from` to `to`; false when it was in another state.
pub async fn transition(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    from: &[JobStatus],
    to: JobStatus,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        r#"update job set status = $3, updated_at = now(),
               started_at = case when $3 = 'finding' then coalesce(started_at, now()) else started_at end,
               finished_at = case when $4 then now() else finished_at end
           where job_id = $1 and status = any($2)"#,
    )
    .bind(job_id)
    .bind(from)
    .bind(to)
    .bind(!to.is_active())
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks (`true`) or clears the job's debt of receipts (a cancelled real job owes them
/// until its last running task has ended).
pub async fn set_receipts_due(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    due: bool,
) -> sqlx::Result<()> {
    sqlx::query("update job set receipts_due = $2 where job_id = $1")
        .bind(job_id)
        .bind(due)
        .execute(db)
        .await?;
    Ok(())
}

/// The jobs that owe their items receipts (a partial index keeps this cheap).
pub async fn receipts_due(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("select job_id from job where receipts_due order by job_id limit 100")
        .fetch_all(db)
        .await
}

/// Whether the job owes receipts, under its row lock (taken by the caller).
pub async fn owes_receipts(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<bool> {
    Ok(
        sqlx::query_scalar::<_, bool>("select receipts_due from job where job_id = $1")
            .bind(job_id)
            .fetch_optional(db)
            .await?
            .unwrap_or(false),
    )
}

/// Adds to the job's counters (nothing when every counter is zero).
pub async fn add_stats(db: impl PgExecutor<'_>, job_id: Uuid, s: &JobStats) -> sqlx::Result<()> {
    if *s == JobStats::default() {
        return Ok(());
    }
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
    for v in s.values() {
        q = q.bind(v);
    }
    q.execute(db).await?;
    Ok(())
}

/// Work done by every job so far (live jobs plus the counters of jobs deleted by
/// retention), in [`STAT_COLUMNS`] order.
pub async fn lifetime_totals(db: impl PgExecutor<'_>) -> sqlx::Result<JobStats> {
    let sql = format!(
        "select {} from job",
        STAT_COLUMNS
            .iter()
            .map(|c| format!(
                "(coalesce(sum({c}), 0) + coalesce((select total from job_stats_retired \
                 where stat = '{c}'), 0))::int8 as {c}"
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    sqlx::query_as(AssertSqlSafe(sql)).fetch_one(db).await
}

#[cfg(test)]
/// A retired counter (counters of jobs deleted by retention; `jobs` counts the jobs).
pub async fn retired_total(db: impl PgExecutor<'_>, stat: &str) -> sqlx::Result<i64> {
    let total: Option<i64> =
        sqlx::query_scalar("select total from job_stats_retired where stat = $1")
            .bind(stat)
            .fetch_optional(db)
            .await?;
    Ok(total.unwrap_or(0))
}

/// Jobs by status.
pub async fn counts_by_status(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(JobStatus, i64)>> {
    sqlx::query_as("select status, count(*) from job group by status order by status")
        .fetch_all(db)
        .await
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

/// The queue items in the job's snapshot: id, match id and the mappers each names.
pub async fn queue_snapshot(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<Vec<(Uuid, crate::domain::match_id::MatchId, Vec<String>)>> {
    let rows: Vec<(Uuid, serde_json::Value, Vec<String>)> = sqlx::query_as(
        "select q.deletion_queue_item_id, q.match_id, q.data_mappers from job_queue_item j
         join deletion_queue_item q using (deletion_queue_item_id) where j.job_id = $1",
    )
    .bind(job_id)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|(id, match_id, mappers)| {
            Ok((
                id,
                super::deletion_queue_item::stored_match_id(match_id)?,
                mappers,
            ))
        })
        .collect()
}

/// What a receipt says of a job's queue item besides its account: its reference, when it
/// was queued, its deadline.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ItemRequest {
    pub deletion_queue_item_id: Uuid,
    pub reference: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub deadline: chrono::DateTime<chrono::Utc>,
}

/// [`ItemRequest`] of each item of the job's queue snapshot still queued.
pub async fn item_requests(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<Vec<ItemRequest>> {
    sqlx::query_as(
        "select q.deletion_queue_item_id, q.reference, q.created_at, q.deadline
         from job_queue_item j join deletion_queue_item q using (deletion_queue_item_id)
         where j.job_id = $1",
    )
    .bind(job_id)
    .fetch_all(db)
    .await
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A job row in `forgetting` with default settings and 5 rows removed.
    pub(crate) async fn a_job(db: &sqlx::PgPool) -> Uuid {
        insert_bare(db, JobStatus::Forgetting, None).await
    }

    /// A job row in `status`, ended `finished` if given.
    pub(crate) async fn insert_bare(
        db: &sqlx::PgPool,
        status: JobStatus,
        finished: Option<DateTime<Utc>>,
    ) -> Uuid {
        let job_id = Uuid::now_v7();
        sqlx::query(
            "insert into job (job_id, status, dry_run, requested_data_mappers, settings, trigger,
                              created_by, finished_at, rows_removed)
             values ($1, $2, false, '{}', $3, 'api', 't', $4, 5)",
        )
        .bind(job_id)
        .bind(status)
        .bind(Json(JobSettings::default()))
        .bind(finished)
        .execute(db)
        .await
        .unwrap();
        job_id
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn counters_add_up_transitions_are_conditional_and_totals_survive_retention(
        db: sqlx::PgPool,
    ) {
        let job_id = a_job(&db).await;
        let mut delta = JobStats {
            objects_rewritten: 2,
            rows_removed: 7,
            ..JobStats::default()
        };
        add_stats(&db, job_id, &delta).await.unwrap();
        add_stats(&db, job_id, &JobStats::default()).await.unwrap();
        let job = get_job(&db, job_id).await.unwrap();
        delta.rows_removed += 5;
        assert_eq!(job.stats, delta);
        assert_eq!(job.settings.0, JobSettings::default());
        assert_eq!(settings(&db, job_id).await.unwrap(), JobSettings::default());
        assert_eq!(active_job(&db).await.unwrap(), Some(job_id));
        assert_eq!(
            status(&db, job_id).await.unwrap(),
            Some(JobStatus::Forgetting)
        );
        let (now, counters) = progress(&db, job_id).await.unwrap().unwrap();
        assert_eq!((now, counters.rows_removed), (JobStatus::Forgetting, 12));
        assert!(
            !transition(&db, job_id, &[JobStatus::Finding], JobStatus::Verifying)
                .await
                .unwrap()
        );
        assert!(
            transition(&db, job_id, &[JobStatus::Forgetting], JobStatus::Completed)
                .await
                .unwrap()
        );
        let ended = get_job(&db, job_id).await.unwrap();
        assert_eq!(ended.status, JobStatus::Completed);
        assert!(ended.finished_at.is_some());
        assert_eq!(
            lock_job(&db, job_id).await.unwrap(),
            Some((JobStatus::Completed, false))
        );
        assert_eq!(
            counts_by_status(&db).await.unwrap(),
            [(JobStatus::Completed, 1)]
        );
        assert_eq!(list_jobs(&db, None, 10).await.unwrap().len(), 1);
        assert_eq!(lifetime_totals(&db).await.unwrap().rows_removed, 12);
        sqlx::query("update job set finished_at = now() - interval '40 days'")
            .execute(&db)
            .await
            .unwrap();
        assert_eq!(delete_expired(&db, 30).await.unwrap(), 1);
        assert_eq!(lifetime_totals(&db).await.unwrap().rows_removed, 12);
        assert!(queue_snapshot(&db, job_id).await.unwrap().is_empty());
        assert!(!mapper_in_active_job(&db, "m").await.unwrap());
    }
}
