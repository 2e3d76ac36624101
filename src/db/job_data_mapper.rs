//! `job_data_mapper`: the data mappers a job searches, each as it was when the job was
//! created (a later edit does not change a running job), with its find state, and how
//! find read a Glue JSON table (its types and SerDe at find time).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::data_mapper::{CatalogRef, Format};
use crate::domain::field_ids::FieldIds;
use crate::domain::job::MapperState;
use crate::domain::match_id::MatchId;

/// A mapper as the job snapshotted it.
#[derive(Debug, Clone, Deserialize)]
pub struct MapperSnapshot {
    pub catalog: CatalogRef,
    pub format: Format,
    pub columns: Vec<String>,
    pub partition_keys: Vec<String>,
    pub ignore_object_not_found: bool,
    pub delete_old_versions: bool,
    #[serde(default)]
    pub allow_unversioned: bool,
    #[serde(default)]
    pub skip_archived: bool,
    /// Apache Iceberg: the purge may expire snapshots a tag or another branch keeps.
    #[serde(default)]
    pub expire_tagged_snapshots: bool,
    /// The catalog types of the match columns (dotted path → Glue type).
    #[serde(default)]
    pub column_types: std::collections::BTreeMap<String, String>,
    /// The role whose credentials sign the mapper's S3 calls (None: Lethe's own).
    #[serde(default)]
    pub role_arn: Option<String>,
    /// How find.mapper read the Glue table of a JSON Lines mapper (None before it
    /// did, and for other mappers): lines are read by these, not by `column_types`.
    #[serde(default)]
    pub read_at_find: Option<TableReading>,
    /// The mapper's id and who started the job (its `created_by`), filled in when the
    /// snapshot is read: an assumed role's session names them.
    #[serde(default)]
    pub data_mapper_id: Option<String>,
    #[serde(default)]
    pub started_by: Option<String>,
}

/// A Glue table as find.mapper read it: the match columns' types (dotted path → Glue
/// type), a JSON SerDe's key rules (None: a SerDe whose rules are not known), and the
/// SerDe and columns a text format is read by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableReading {
    #[serde(default)]
    pub column_types: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub serde: Option<crate::domain::json_serde::JsonSerde>,
    /// The SerDe class, and its parameters with the table's own (CSV's delimiters,
    /// `skip.header.line.count`).
    #[serde(default)]
    pub serde_library: Option<String>,
    #[serde(default)]
    pub serde_parameters: std::collections::BTreeMap<String, String>,
    /// The table's data columns in order, with their Glue types (CSV reads by position).
    #[serde(default)]
    pub table_columns: Vec<(String, String)>,
    /// The table format the Glue entry names (`Apache Iceberg`), if any: its data files
    /// are searched through its metadata, and never rewritten in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_format: Option<String>,
    /// The table format's metadata find read (Iceberg's `metadata_location`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_location: Option<String>,
    /// The match columns' field-id paths in the table's current schema at find (Iceberg):
    /// every later search and rewrite finds the columns by them. Empty: by name (jobs
    /// found before columns were found by field id, whose columns were never renamed).
    #[serde(default, skip_serializing_if = "FieldIds::is_empty")]
    pub field_ids: FieldIds,
}

impl MapperSnapshot {
    /// The match columns' field-id paths find recorded (None: the columns are found by
    /// name).
    pub fn field_ids(&self) -> Option<&FieldIds> {
        self.read_at_find
            .as_ref()
            .map(|r| &r.field_ids)
            .filter(|ids| !ids.is_empty())
    }
}

pub async fn get(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    mapper: &str,
) -> sqlx::Result<MapperSnapshot> {
    let Json(snapshot): Json<MapperSnapshot> = sqlx::query_scalar(
        "select m.definition || jsonb_build_object('data_mapper_id', m.data_mapper_id,
                                                   'started_by', j.created_by)
         from job_data_mapper m join job j using (job_id)
         where m.job_id = $1 and m.data_mapper_id = $2",
    )
    .bind(job_id)
    .bind(mapper)
    .fetch_one(db)
    .await?;
    Ok(snapshot)
}

/// Records how find read the mapper's table (in its snapshot: every later task reads it).
pub async fn set_read_at_find(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    mapper: &str,
    reading: &TableReading,
) -> sqlx::Result<()> {
    // The metadata location first recorded stays: a find resumed after a crash may read a
    // newer one, and the commit re-searches every data file the first one did not hold.
    sqlx::query(
        "update job_data_mapper set definition = jsonb_set(definition, '{read_at_find}',
             case when definition->'read_at_find'->'metadata_location' is not null
                  then $3 || jsonb_build_object('metadata_location',
                                                definition->'read_at_find'->'metadata_location')
                  else $3 end)
         where job_id = $1 and data_mapper_id = $2",
    )
    .bind(job_id)
    .bind(mapper)
    .bind(Json(reading))
    .execute(db)
    .await?;
    Ok(())
}

/// The job's mappers, in id order.
pub async fn list(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select data_mapper_id from job_data_mapper where job_id = $1 order by data_mapper_id",
    )
    .bind(job_id)
    .fetch_all(db)
    .await
}

/// Sets a mapper's find state.
pub async fn set_state(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    mapper: &str,
    state: MapperState,
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

/// What one find task read of a mapper's objects: the versions it searched (current
/// and noncurrent), how many of them were noncurrent, and the bytes it fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reads {
    pub versions: i64,
    pub noncurrent: i64,
    pub bytes: i64,
}

/// Adds to what a mapper's find searched.
pub async fn add_searched(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    mapper: &str,
    reads: Reads,
) -> sqlx::Result<()> {
    sqlx::query(
        "update job_data_mapper set objects_searched = objects_searched + $3,
                                    noncurrent_searched = noncurrent_searched + $4,
                                    bytes_read = bytes_read + $5
         where job_id = $1 and data_mapper_id = $2",
    )
    .bind(job_id)
    .bind(mapper)
    .bind(reads.versions)
    .bind(reads.noncurrent)
    .bind(reads.bytes)
    .execute(db)
    .await?;
    Ok(())
}

/// What each mapper of the job's find read, by mapper.
pub async fn reads(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<Vec<(String, Reads)>> {
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "select data_mapper_id, objects_searched, noncurrent_searched, bytes_read
         from job_data_mapper where job_id = $1 order by data_mapper_id",
    )
    .bind(job_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(m, versions, noncurrent, bytes)| {
            let reads = Reads {
                versions,
                noncurrent,
                bytes,
            };
            (m, reads)
        })
        .collect())
}

/// Each mapper of the job: whether its find failed, and the objects it searched.
pub async fn searched(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<Vec<(String, bool, i64)>> {
    sqlx::query_as(
        "select data_mapper_id, state = 'failed', objects_searched from job_data_mapper
         where job_id = $1 order by data_mapper_id",
    )
    .bind(job_id)
    .fetch_all(db)
    .await
}

/// Mappers whose find failed.
pub async fn count_failed(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select count(*) from job_data_mapper where job_id = $1 and state = 'failed'",
    )
    .bind(job_id)
    .fetch_one(db)
    .await
}

/// The queued match ids that apply to `mapper` in the job's snapshot, with their types.
pub async fn match_ids(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    mapper: &str,
) -> sqlx::Result<Vec<MatchId>> {
    let ids: Vec<Value> = sqlx::query_scalar(
        r#"select q.match_id from job_queue_item j
           join deletion_queue_item q using (deletion_queue_item_id)
           where j.job_id = $1 and (cardinality(q.data_mappers) = 0 or $2 = any(q.data_mappers))"#,
    )
    .bind(job_id)
    .bind(mapper)
    .fetch_all(db)
    .await?;
    ids.into_iter()
        .map(super::deletion_queue_item::stored_match_id)
        .collect()
}

/// What a table format's erasure did to one mapper's table (`job_data_mapper.table_commit`):
/// the commit that made the rewrites the table's, then the purge of what still held the
/// old data files, each step recorded before it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TableCommit {
    pub metadata_before: Option<String>,
    pub snapshot_before: Option<i64>,
    pub metadata_after: Option<String>,
    pub snapshot_after: Option<i64>,
    /// Position delete files the new snapshot left out: each named only data files it
    /// replaced (by rewrites that left those rows out). The purge deletes them with the
    /// old data files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_deletes: Vec<String>,
    #[serde(default)]
    pub purge: Option<Purge>,
}

/// Where a purge stands, and what it expires and deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Purge {
    /// `planned` (the plan is recorded, nothing done), `committed` (the metadata without
    /// the expired snapshots is the table's), `deleting` (the versions to delete are
    /// saved), `done` (every one deleted).
    pub step: String,
    /// The metadata the plan was made from, and the one it commits (None: nothing to
    /// expire).
    pub metadata_from: String,
    pub metadata_to: Option<String>,
    pub expired: Vec<i64>,
    /// Snapshots that still reference an old data file but a tag or branch keeps, as
    /// (snapshot, `tag name` / `branch name`).
    pub held: Vec<SnapshotRef>,
    /// Why nothing is expired although snapshots hold the old files (the table's
    /// `gc.enabled` is false; the expiry would leave a data file holding the job's
    /// subjects that was not rewritten unreferenced, never to be searched again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// A data file another writer committed after Lethe's snapshot holds the job's
    /// subjects (rows added again by a writer that read before the commit): they stay
    /// queued for the next job.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub newer_holds: bool,
    /// Data files only the expired snapshots referenced, other than the job's: left in
    /// place (not Lethe's to delete), named here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_unreferenced: Vec<String>,
    /// The tags and branches removed with the snapshots they kept (the mapper allows it:
    /// `expire_tagged_snapshots`), as (snapshot, `tag name` / `branch name`).
    #[serde(default)]
    pub removed_refs: Vec<SnapshotRef>,
    /// The files to delete (every version of each), data files first.
    pub delete: Vec<String>,
    /// Each file's versions, saved before any is deleted (`deleting`, then `done`).
    #[serde(default)]
    pub deleting: Vec<FileVersions>,
    #[serde(default)]
    pub versions_deleted: i64,
}

/// A snapshot and the tag or branch pointing at it (`tag audit-2026`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotRef {
    pub snapshot_id: i64,
    pub reference: String,
}

/// One file's versions (to delete, or deleted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileVersions {
    pub file: String,
    pub versions: Vec<String>,
}

/// The mapper's table commit record, if any.
pub async fn table_commit(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    mapper: &str,
) -> sqlx::Result<Option<TableCommit>> {
    let record: Option<Option<Json<TableCommit>>> = sqlx::query_scalar(
        "select table_commit from job_data_mapper where job_id = $1 and data_mapper_id = $2",
    )
    .bind(job_id)
    .bind(mapper)
    .fetch_optional(db)
    .await?;
    Ok(record.flatten().map(|Json(c)| c))
}

/// Records the mapper's table commit (the whole record, replacing the one before).
pub async fn set_table_commit(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    mapper: &str,
    record: &TableCommit,
) -> sqlx::Result<()> {
    sqlx::query(
        "update job_data_mapper set table_commit = $3 where job_id = $1 and data_mapper_id = $2",
    )
    .bind(job_id)
    .bind(mapper)
    .bind(Json(record))
    .execute(db)
    .await?;
    Ok(())
}

/// Every table commit of the job, by mapper.
pub async fn table_commits(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<Vec<(String, TableCommit)>> {
    let rows: Vec<(String, Json<TableCommit>)> = sqlx::query_as(
        "select data_mapper_id, table_commit from job_data_mapper
         where job_id = $1 and table_commit is not null order by data_mapper_id",
    )
    .bind(job_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(m, Json(c))| (m, c)).collect())
}

/// Each mapper of the job and where its table is described (the `catalog` of its
/// definition at job start: a Glue database and table, or a location).
pub async fn catalogs(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
) -> sqlx::Result<Vec<(String, serde_json::Value)>> {
    sqlx::query_as(
        "select data_mapper_id, definition->'catalog' from job_data_mapper
         where job_id = $1 order by data_mapper_id",
    )
    .bind(job_id)
    .fetch_all(db)
    .await
}

/// The mappers of the job whose table commit is recorded (their purge follows verify).
pub async fn with_table_commit(db: impl PgExecutor<'_>, job_id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select data_mapper_id from job_data_mapper
         where job_id = $1 and table_commit is not null order by data_mapper_id",
    )
    .bind(job_id)
    .fetch_all(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resumed find records what it read again, but the table format's metadata
    /// location first recorded stays (the commit re-searches from it); the table commit
    /// record is read back whole.
    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_first_metadata_location_stays_and_a_table_commit_reads_back(db: sqlx::PgPool) {
        let job_id = crate::db::job::tests::a_job(&db).await;
        sqlx::query(
            "insert into job_data_mapper (job_id, data_mapper_id, definition)
             values ($1, 'm', '{}'::jsonb)",
        )
        .bind(job_id)
        .execute(&db)
        .await
        .unwrap();
        let reading = |location: &str| TableReading {
            table_format: Some("Apache Iceberg".into()),
            metadata_location: Some(location.into()),
            ..TableReading::default()
        };
        set_read_at_find(&db, job_id, "m", &reading("s3://b/t/metadata/1.json"))
            .await
            .unwrap();
        set_read_at_find(&db, job_id, "m", &reading("s3://b/t/metadata/2.json"))
            .await
            .unwrap();
        let stored: Option<Json<TableReading>> = sqlx::query_scalar(
            "select definition->'read_at_find' from job_data_mapper where job_id = $1",
        )
        .bind(job_id)
        .fetch_one(&db)
        .await
        .unwrap();
        let stored = stored.unwrap().0;
        assert_eq!(
            stored.metadata_location.as_deref(),
            Some("s3://b/t/metadata/1.json")
        );
        assert_eq!(table_commit(&db, job_id, "m").await.unwrap(), None);
        let record = TableCommit {
            snapshot_before: Some(1),
            snapshot_after: Some(2),
            purge: Some(Purge {
                step: "planned".into(),
                expired: vec![1],
                held: vec![SnapshotRef {
                    snapshot_id: 0,
                    reference: "tag audit".into(),
                }],
                ..Purge::default()
            }),
            ..TableCommit::default()
        };
        set_table_commit(&db, job_id, "m", &record).await.unwrap();
        assert_eq!(
            table_commit(&db, job_id, "m").await.unwrap(),
            Some(record.clone())
        );
        assert_eq!(with_table_commit(&db, job_id).await.unwrap(), ["m"]);
        assert_eq!(
            table_commits(&db, job_id).await.unwrap(),
            [("m".to_owned(), record)]
        );
    }
}
