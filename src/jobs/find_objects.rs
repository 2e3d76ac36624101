//! `find.objects`: HEAD each object of a batch (its current version and etag), search
//! that exact version with ranged reads, and record the objects with matches (and the
//! ones that failed) with the job's stats.
//!
//! A corrupt or unreadable object fails only itself. Events carry keys and counts, never
//! match ids.

use async_trait::async_trait;
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

use crate::db::job::{self as jobs, JobStats};
use crate::db::job_data_mapper::{self as mappers, MapperSnapshot};
use crate::db::job_object::{self as objects, JobObject};
use crate::db::task::{begin_bookkeeping, mark_recorded};
use crate::db::{job_match, server_secret};
use crate::domain::job::{EventLevel, ObjectStatus};
use crate::domain::match_id::{MatchId, match_hash};
use crate::domain::partition::PartitionKey;
use crate::jobs::finalize::{REPORT_KEY, random_key};
use crate::jobs::find::{ObjectFindError, ObjectRef, search_object};
use crate::jobs::lifecycle::event;
use crate::jobs::matches::PartitionSets;
use crate::jobs::tasks::{Task, TaskError};
use crate::jobs::{Context, JobTask};
use crate::lakefile::format::Matching;
use crate::lakefile::parquet::find::FindReport;
use crate::storage::{ObjectMeta, ObjectStore, StorageError, skip_reason};

/// One object to search, as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    /// Partition values from the catalog or the path; None when the path carries none.
    pub partition: Option<Vec<String>>,
    /// Under a partitioned table's location in no partition: searched, never rewritten.
    #[serde(default)]
    pub outside_partitions: bool,
    /// Set for a noncurrent version (a newer version or a delete marker is on top): that
    /// version is searched as listed (no HEAD), never rewritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_version: Option<OldVersion>,
}

/// A noncurrent version to search, as the listing of versions gave it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OldVersion {
    pub version_id: String,
    pub etag: Option<String>,
    pub storage_class: Option<String>,
    /// When it stopped being current, when known.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub behind_delete_marker: bool,
}

impl OldVersion {
    /// The old version a listed version is, if it is one (and has a version id).
    pub fn of(meta: &ObjectMeta) -> Option<Self> {
        let noncurrent = meta.noncurrent.as_ref()?;
        Some(Self {
            version_id: meta.version_id.clone()?,
            etag: meta.etag.clone(),
            storage_class: meta.storage_class.clone(),
            since: noncurrent.since,
            behind_delete_marker: noncurrent.behind_delete_marker,
        })
    }

    /// The version as find searches it.
    fn meta(&self, listed: &ListedObject) -> ObjectMeta {
        ObjectMeta {
            key: listed.key.clone(),
            size: listed.size,
            etag: self.etag.clone(),
            version_id: Some(self.version_id.clone()),
            storage_class: self.storage_class.clone(),
            archive_status: None,
            restore: None,
            noncurrent: Some(crate::storage::Noncurrent {
                since: self.since,
                behind_delete_marker: self.behind_delete_marker,
            }),
        }
    }
}

/// Why an object in no partition of its table is not rewritten (its report row).
pub const OUTSIDE_PARTITIONS: &str = "not rewritten: the object lies under the table location in no partition, where Athena does not read it; the items it holds stay queued (rows outside the table's partitions)";

/// Searches a batch of listed objects of one mapper and storage place.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindObjects {
    pub job_id: Uuid,
    pub data_mapper_id: String,
    /// `s3` or `file`.
    pub scheme: String,
    pub bucket: String,
    /// The table's partition keys, in the order of each object's `partition` values.
    pub partition_keys: Vec<String>,
    /// Their declared types (Glue type text; empty when untyped).
    #[serde(default)]
    pub partition_types: Vec<String>,
    pub objects: Vec<ListedObject>,
}

#[async_trait]
impl JobTask for FindObjects {
    const KIND: &'static str = "find.objects";
    const MAX_ATTEMPTS: i32 = 5;

    fn job_id(&self) -> Uuid {
        self.job_id
    }

    async fn run(&self, ctx: &Context, task: &Task) -> Result<(), TaskError> {
        let db = &ctx.engine.db;
        let (sets, mapper) = ctx
            .sets
            .get(
                db,
                self.job_id,
                &self.data_mapper_id,
                &PartitionKey::from_texts(&self.partition_keys, &self.partition_types),
            )
            .await?;
        let store = ctx
            .engine
            .for_mapper(&mapper, self.job_id)?
            .stores
            .of_scheme(&self.scheme);
        let concurrency = ctx.settings(self.job_id).await?.find_concurrency();
        let outcomes: Vec<Outcome> = stream::iter(self.objects.clone())
            .map(|o| {
                let (store, mapper, sets, bucket) = (
                    store.clone(),
                    mapper.clone(),
                    sets.clone(),
                    self.bucket.clone(),
                );
                let span = tracing::info_span!("object", object.key = %o.key);
                let max_line = ctx.engine.max_line_bytes;
                async move { search(store.as_ref(), &bucket, &o, &mapper, &sets, max_line).await }
                    .instrument(span)
            })
            .buffered(concurrency)
            .collect()
            .await;
        if !task.is_last_attempt()
            && let Some(Outcome::Failed { error, .. }) = outcomes.iter().find(|o| {
                matches!(
                    o,
                    Outcome::Failed {
                        retryable: true,
                        ..
                    }
                )
            })
        {
            return Err(TaskError::Retryable(error.clone()));
        }
        Ok(record_objects(db, task, self, outcomes).await?)
    }
}

/// What searching one object came to.
enum Outcome {
    /// Deleted between listing and search.
    Vanished,
    Skipped(&'static str),
    Searched {
        meta: ObjectMeta,
        report: ObjectReport,
    },
    Failed {
        meta: Option<ObjectMeta>,
        error: String,
        retryable: bool,
    },
    /// Could not be read at all (archived, access or KMS denied): its items stay queued.
    NotSearchable {
        meta: Option<ObjectMeta>,
        reason: String,
    },
    /// Archived, and the mapper puts archived objects out of scope.
    OutOfScope {
        meta: ObjectMeta,
        reason: String,
    },
}

/// The outcome of a storage error: denied access is "not searchable", the rest failed.
fn storage_outcome(meta: Option<ObjectMeta>, e: StorageError) -> Outcome {
    match e {
        StorageError::AccessDenied { code } => Outcome::NotSearchable {
            meta,
            reason: match code.as_str() {
                "InvalidObjectState" => "archived (InvalidObjectState)".to_owned(),
                c if c.starts_with("KMS.") => format!("the object's KMS key denies access ({c})"),
                c => format!("access denied ({c})"),
            },
        },
        e => Outcome::Failed {
            meta,
            retryable: matches!(e, StorageError::Unavailable(_)),
            error: e.to_string(),
        },
    }
}

#[derive(Debug, Default)]
struct ObjectReport {
    rows_total: u64,
    rows_matched: u64,
    row_groups_total: usize,
    row_groups_pruned: usize,
    matching_row_groups: Vec<usize>,
    bytes_read: u64,
    /// The rows of each queued match the object holds.
    by_match: Vec<(MatchId, u64)>,
}

/// The version of a listed object to search (its HEAD; an old version as listed), or
/// the outcome when it is not to be searched: gone, a marker or empty, archived.
async fn readable_version(
    store: &dyn ObjectStore,
    bucket: &str,
    listed: &ListedObject,
    mapper: &MapperSnapshot,
) -> Result<ObjectMeta, Outcome> {
    let head = match &listed.old_version {
        Some(old) => Ok(old.meta(listed)),
        None => store.head(bucket, &listed.key).await,
    };
    let meta = match head {
        Ok(meta) => meta,
        Err(StorageError::NotFound) => return Err(Outcome::Vanished),
        Err(e) => return Err(storage_outcome(None, e)),
    };
    if let Some(reason) = skip_reason(&meta) {
        return Err(Outcome::Skipped(reason));
    }
    if let Some(reason) = meta.archived() {
        return Err(if mapper.skip_archived {
            Outcome::OutOfScope {
                meta,
                reason: format!("{reason}; the mapper puts archived objects out of scope"),
            }
        } else {
            Outcome::NotSearchable {
                meta: Some(meta),
                reason,
            }
        });
    }
    Ok(meta)
}

/// Searches one listed object (the version listed) as its mapper's format says.
async fn search(
    store: &dyn ObjectStore,
    bucket: &str,
    listed: &ListedObject,
    mapper: &MapperSnapshot,
    sets: &PartitionSets,
    max_line: usize,
) -> Outcome {
    let meta = match readable_version(store, bucket, listed, mapper).await {
        Ok(meta) => meta,
        Err(outcome) => return outcome,
    };
    let (ids, every_row_owners) = sets.for_partition(listed.partition.as_deref());
    let every_row = !every_row_owners.is_empty();
    let object = ObjectRef {
        bucket,
        key: &listed.key,
        version_id: meta.version_id.as_deref(),
        size: meta.size,
    };
    let records = match sets.records() {
        Ok(records) => records,
        Err(reason) => {
            return Outcome::NotSearchable {
                meta: Some(meta),
                reason,
            };
        }
    };
    let m = Matching {
        columns: &mapper.columns,
        ids: &ids,
        every_row,
        max_record: max_line,
        field_ids: mapper.field_ids(),
        drop_rows: &[],
    };
    let result = search_object(store, &object, records, m).await;
    match result {
        Ok((mut r, read)) => {
            // Every row is each match a composite on partition keys alone names.
            for owner in &every_row_owners {
                r.rows_by_match.insert(*owner, r.rows_total);
            }
            let by_match = r
                .rows_by_match
                .iter()
                .filter_map(|(owner, rows)| Some((sets.value_of(*owner)?, *rows)))
                .collect();
            Outcome::Searched {
                report: ObjectReport {
                    by_match,
                    ..ObjectReport::from_find(r, read)
                },
                meta,
            }
        }
        Err(ObjectFindError::Storage(StorageError::NotFound)) => Outcome::Vanished,
        Err(ObjectFindError::Storage(e @ StorageError::AccessDenied { .. })) => {
            storage_outcome(Some(meta), e)
        }
        Err(e) => Outcome::Failed {
            retryable: matches!(e, ObjectFindError::Storage(StorageError::Unavailable(_))),
            error: e.to_string(),
            meta: Some(meta),
        },
    }
}

/// The rows each queued match (its value) has in one exact version of an object, read as
/// find reads it: forget recounts them when it rewrites a newer version than the one
/// find read, so the accounts speak of the rows really removed.
pub async fn rows_by_match(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    (version_id, size): (&str, u64),
    partition: Option<Vec<String>>,
    (mapper, sets): (&MapperSnapshot, &PartitionSets),
    max_line: usize,
) -> Result<Vec<(MatchId, u64)>, String> {
    let listed = ListedObject {
        key: key.to_owned(),
        size,
        partition,
        outside_partitions: false,
        old_version: Some(OldVersion {
            version_id: version_id.to_owned(),
            etag: None,
            storage_class: None,
            since: None,
            behind_delete_marker: false,
        }),
    };
    match search(store, bucket, &listed, mapper, sets, max_line).await {
        Outcome::Searched { report, .. } => Ok(report.by_match),
        Outcome::Failed { error, .. } => Err(error),
        Outcome::NotSearchable { reason, .. } | Outcome::OutOfScope { reason, .. } => Err(reason),
        Outcome::Vanished => Err("the version is gone".to_owned()),
        Outcome::Skipped(why) => Err(why.to_owned()),
    }
}

impl ObjectReport {
    fn from_find(r: FindReport, bytes_read: u64) -> Self {
        Self {
            rows_total: r.rows_total,
            rows_matched: r.rows_matched,
            row_groups_total: r.row_groups_total,
            row_groups_pruned: r.row_groups_pruned_by_statistics
                + r.row_groups_pruned_by_bloom_filter,
            matching_row_groups: r.matching_row_groups,
            bytes_read,
            by_match: Vec::new(),
        }
    }
}

async fn record_objects(
    db: &PgPool,
    task: &Task,
    p: &FindObjects,
    outcomes: Vec<Outcome>,
) -> sqlx::Result<()> {
    let mut tx = begin_bookkeeping(db).await?;
    if !mark_recorded(&mut *tx, task).await? {
        return Ok(());
    }
    let mut stats = JobStats::default();
    let key = server_secret::get_or_create(&mut tx, REPORT_KEY, random_key).await?;
    let noncurrent = p
        .objects
        .iter()
        .zip(&outcomes)
        .filter(|(l, o)| l.old_version.is_some() && matches!(o, Outcome::Searched { .. }))
        .count() as i64;
    for (listed, outcome) in p.objects.iter().zip(outcomes) {
        record_outcome(&mut tx, p, listed, outcome, &mut stats, &key).await?;
    }
    jobs::add_stats(&mut *tx, p.job_id, &stats).await?;
    let reads = mappers::Reads {
        versions: stats.objects_scanned,
        noncurrent,
        bytes: stats.bytes_scanned,
    };
    mappers::add_searched(&mut *tx, p.job_id, &p.data_mapper_id, reads).await?;
    tx.commit().await
}

/// Records one object's outcome: a report row when it matched or failed, an event when
/// it was skipped or failed, and its counts.
async fn record_outcome(
    tx: &mut sqlx::PgConnection,
    p: &FindObjects,
    listed: &ListedObject,
    outcome: Outcome,
    stats: &mut JobStats,
    hmac_key: &[u8],
) -> sqlx::Result<()> {
    let key = listed.key.as_str();
    let mapper = &p.data_mapper_id;
    let with_reason =
        |reason: &str| json!({"data_mapper_id": mapper, "key": key, "reason": reason});
    // The report row of an object that was not searched in full, with why.
    let failed_row = |meta: &Option<ObjectMeta>, status, why: &str| {
        let mut row = report_row(p, listed, meta, status);
        row.error = Some(why.to_owned());
        row
    };
    let (level, kind, message, details) = match outcome {
        Outcome::Vanished | Outcome::Skipped(_) => {
            let reason = match outcome {
                Outcome::Skipped(reason) => reason,
                _ => "deleted since it was listed",
            };
            stats.objects_skipped += 1;
            let message = format!("skipped {key} ({reason})");
            (
                EventLevel::Warning,
                "object_skipped",
                message,
                with_reason(reason),
            )
        }
        Outcome::Failed { meta, error, .. } => {
            stats.objects_failed += 1;
            objects::insert(
                &mut *tx,
                p.job_id,
                &failed_row(&meta, ObjectStatus::Failed, &error),
            )
            .await?;
            tracing::warn!(job.id = %p.job_id, object.key = key, error = %error, "object failed");
            let message = format!("cannot search {key}: {error}");
            let details = json!({"data_mapper_id": mapper, "key": key});
            (EventLevel::Error, "object_failed", message, details)
        }
        Outcome::NotSearchable { meta, reason } => {
            stats.objects_not_searchable += 1;
            let row = failed_row(&meta, ObjectStatus::NotSearchable, &reason);
            objects::insert(&mut *tx, p.job_id, &row).await?;
            tracing::warn!(job.id = %p.job_id, object.key = key, reason = %reason, "object not searchable");
            let message = format!("cannot read {key}: {reason}; the items it may hold stay queued");
            let kind = "object_not_searchable";
            (EventLevel::Warning, kind, message, with_reason(&reason))
        }
        Outcome::OutOfScope { meta, reason } => {
            stats.objects_skipped += 1;
            let row = failed_row(&Some(meta), ObjectStatus::Skipped, &reason);
            objects::insert(&mut *tx, p.job_id, &row).await?;
            let message = format!("skipped {key} ({reason})");
            (
                EventLevel::Info,
                "object_skipped",
                message,
                with_reason(&reason),
            )
        }
        Outcome::Searched { meta, report } => {
            return record_searched(tx, p, listed, (meta, report), stats, hmac_key).await;
        }
    };
    event(&mut *tx, p.job_id, level, kind, &message, details).await
}

/// Records a searched object: its counts, and when it holds matches its report row (an
/// object outside the table's partitions is left as it is, with an event saying so) and
/// the rows each match has in it, by keyed hash.
async fn record_searched(
    tx: &mut sqlx::PgConnection,
    p: &FindObjects,
    listed: &ListedObject,
    (meta, report): (ObjectMeta, ObjectReport),
    stats: &mut JobStats,
    hmac_key: &[u8],
) -> sqlx::Result<()> {
    let key = listed.key.as_str();
    let old = listed.old_version.as_ref();
    report.count(stats, old.is_some());
    if report.rows_matched == 0 {
        return Ok(());
    }
    let mut row = report_row(p, listed, &Some(meta), ObjectStatus::Matched);
    row.noncurrent = old.is_some();
    row.noncurrent_since = old.and_then(|o| o.since);
    if listed.outside_partitions {
        // Its forget outcome now: left unchanged (the forget countdown counts the
        // current versions).
        stats.objects_unchanged += i64::from(old.is_none());
        row.outside_partitions = true;
        row.error = Some(OUTSIDE_PARTITIONS.to_owned());
        let message = format!(
            "{key} holds matching rows outside the table's partitions: {OUTSIDE_PARTITIONS}"
        );
        let details = json!({"data_mapper_id": p.data_mapper_id, "key": key});
        let (level, kind) = (EventLevel::Warning, "object_outside_partitions");
        event(&mut *tx, p.job_id, level, kind, &message, details).await?;
    }
    row.rows_total = Some(report.rows_total as i64);
    row.rows_matched = report.rows_matched as i64;
    row.row_groups = report
        .matching_row_groups
        .iter()
        .map(|&g| g as i32)
        .collect();
    let Some(id) = objects::insert(&mut *tx, p.job_id, &row).await? else {
        return Ok(());
    };
    let rows: Vec<(String, i64)> = report
        .by_match
        .iter()
        .map(|(value, rows)| (match_hash(hmac_key, value), *rows as i64))
        .collect();
    job_match::insert_object_matches(&mut *tx, p.job_id, id, &rows).await
}

/// The report row of a listed object as find saw it (`meta` from its HEAD, if any).
fn report_row(
    p: &FindObjects,
    listed: &ListedObject,
    meta: &Option<ObjectMeta>,
    status: ObjectStatus,
) -> JobObject {
    JobObject {
        version_id: meta.as_ref().and_then(|m| m.version_id.clone()),
        etag: meta.as_ref().and_then(|m| m.etag.clone()),
        size_bytes: meta.as_ref().map_or(listed.size, |m| m.size) as i64,
        partition_keys: Some(p.partition_keys.clone()),
        partition_types: Some(p.partition_types.clone()),
        partition_values: listed.partition.clone(),
        ..JobObject::found(&p.data_mapper_id, &p.bucket, &listed.key, status)
    }
}

impl ObjectReport {
    /// Adds this search's figures to the job's counters (an old version's match is
    /// counted apart: it is never rewritten).
    fn count(&self, stats: &mut JobStats, old_version: bool) {
        stats.objects_scanned += 1;
        stats.bytes_scanned += self.bytes_read as i64;
        stats.row_groups_pruned += self.row_groups_pruned as i64;
        stats.row_groups_scanned += (self.row_groups_total - self.row_groups_pruned) as i64;
        if self.row_groups_total > 0 && self.row_groups_pruned == self.row_groups_total {
            stats.objects_pruned += 1;
        }
        if self.rows_matched > 0 && old_version {
            stats.old_versions_matched += 1;
        } else if self.rows_matched > 0 {
            stats.objects_matched += 1;
            stats.rows_matched += self.rows_matched as i64;
        }
    }
}
