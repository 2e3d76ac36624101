//! The find phase's tasks.
//!
//! `find.mapper` (one per data mapper of a job): resolve the table (Glue or a `path`
//! layout), list its partitions, prune those no queued match can live in, list the
//! objects of the rest, skip markers / temporary / empty / archived objects, and enqueue
//! `find.objects` tasks of a few objects each.
//! `find.objects`: HEAD each object (its current version and etag), search that exact
//! version with ranged reads, and record the objects with matches (and the ones that
//! failed) with the job's stats.
//!
//! Invariants: a task's effects (stats, recorded objects, events, follow-up tasks) commit
//! in one transaction fenced by [`tasks::mark_recorded`], so a rerun after a crash never
//! counts or enqueues twice. A corrupt or unreadable object fails only itself; a missing
//! table or denied access fails its mapper. Events carry keys and counts, never match ids.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

use crate::catalog::{Catalog, CatalogError};
use crate::db::job::{self as db, JobObject, JobStats, MapperSnapshot};
use crate::domain::data_mapper::{CatalogRef, Format, GlueTable, PathTable};
use crate::domain::partition::{Partition, may_hold, reduce_composite, values_from_path};
use crate::jobs::find::{ObjectFindError, ObjectRef, every_row_parquet, find_jsonl, find_parquet};
use crate::jobs::lifecycle::{self, FIND_MAX_ATTEMPTS};
use crate::jobs::tasks::{self, Task, TaskError, TaskHandler};
use crate::lakefile::match_set::MatchSet;
use crate::storage::{
    ObjectMeta, ObjectStore, StorageError, Stores, dir_prefix, list_all, skip_reason,
};

pub const FIND_MAPPER: &str = "find.mapper";
pub const FIND_OBJECTS: &str = "find.objects";
/// Objects per `find.objects` task.
const OBJECTS_PER_TASK: usize = 16;
/// Skipped objects named one by one in the events, per mapper (the rest are counted).
const MAX_SKIP_EVENTS: usize = 50;

/// What the job tasks need: the database, the catalog, the object stores and the
/// process metrics.
#[derive(Clone)]
pub struct Engine {
    pub db: PgPool,
    pub catalog: Arc<dyn Catalog>,
    pub stores: Stores,
    pub metrics: Arc<crate::metrics::Metrics>,
}

#[derive(Debug, Serialize, Deserialize)]
struct MapperPayload {
    job_id: Uuid,
    data_mapper_id: String,
}

/// One object to search, as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ListedObject {
    key: String,
    size: u64,
    /// Partition values from the catalog or the path; None when the path carries none.
    partition: Option<Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ObjectsPayload {
    job_id: Uuid,
    data_mapper_id: String,
    /// `s3` or `file`.
    scheme: String,
    bucket: String,
    /// The table's partition keys, in the order of each object's `partition` values.
    partition_keys: Vec<String>,
    objects: Vec<ListedObject>,
}

/// The job's match ids for one mapper.
struct Matches {
    simple: Vec<Value>,
    composites: Vec<Value>,
}

async fn load_matches(db: &PgPool, job_id: Uuid, mapper: &str) -> sqlx::Result<Matches> {
    let mut m = Matches {
        simple: Vec::new(),
        composites: Vec::new(),
    };
    for (value, kind) in db::job_match_ids(db, job_id, mapper).await? {
        if kind == "composite" {
            m.composites.push(value);
        } else {
            m.simple.push(value);
        }
    }
    Ok(m)
}

fn catalog_error(e: CatalogError) -> TaskError {
    match e {
        CatalogError::Unavailable(m) => TaskError::Retryable(format!("catalog unavailable: {m}")),
        other => TaskError::Fatal(other.to_string()),
    }
}

fn storage_error(e: StorageError) -> TaskError {
    match e {
        StorageError::Unavailable(m) => TaskError::Retryable(format!("storage unavailable: {m}")),
        StorageError::NotFound => TaskError::Fatal("bucket or location not found".to_owned()),
        other => TaskError::Fatal(other.to_string()),
    }
}

async fn find_concurrency(db: &PgPool, job_id: Uuid) -> sqlx::Result<usize> {
    let n: Option<i64> = sqlx::query_scalar(
        "select (settings->>'find_concurrency')::bigint from job where job_id = $1",
    )
    .bind(job_id)
    .fetch_one(db)
    .await?;
    Ok(n.unwrap_or(8).clamp(1, 256) as usize)
}

/// Objects of one storage place, grouped for tasks.
struct Listing {
    scheme: &'static str,
    bucket: String,
    partition_keys: Vec<String>,
    objects: Vec<ListedObject>,
}

/// What listing a mapper's table found.
#[derive(Default)]
struct MapperListing {
    stats: JobStats,
    listings: Vec<Listing>,
    skipped: Vec<(String, &'static str)>,
}

impl MapperListing {
    fn add_objects(
        &mut self,
        scheme: &'static str,
        bucket: &str,
        partition_keys: &[String],
        metas: Vec<ObjectMeta>,
        partition: impl Fn(&str) -> Option<Vec<String>>,
    ) {
        let mut objects = Vec::new();
        for meta in metas {
            self.stats.objects_listed += 1;
            if let Some(reason) = skip_reason(&meta) {
                self.stats.objects_skipped += 1;
                self.skipped.push((meta.key, reason));
                continue;
            }
            objects.push(ListedObject {
                partition: partition(&meta.key),
                key: meta.key,
                size: meta.size,
            });
        }
        if !objects.is_empty() {
            self.listings.push(Listing {
                scheme,
                bucket: bucket.to_owned(),
                partition_keys: partition_keys.to_vec(),
                objects,
            });
        }
    }
}

/// Resolves and lists one mapper's table.
pub struct FindMapper(pub Engine);

impl FindMapper {
    async fn list(
        &self,
        job_id: Uuid,
        mapper: &MapperSnapshot,
        matches: &Matches,
    ) -> Result<MapperListing, TaskError> {
        let engine = &self.0;
        let concurrency = find_concurrency(&engine.db, job_id)
            .await
            .map_err(|e| TaskError::Retryable(e.to_string()))?;
        let has_simple = !matches.simple.is_empty();
        let mut out = MapperListing::default();
        match &mapper.catalog {
            CatalogRef::Glue(GlueTable { database, table }) => {
                let def = engine
                    .catalog
                    .get_table(database, table)
                    .await
                    .map_err(catalog_error)?;
                let location = def.location.clone().ok_or_else(|| {
                    TaskError::Fatal(format!("table {database}.{table} has no location"))
                })?;
                let partitions = if def.partition_keys.is_empty() {
                    vec![Partition {
                        values: vec![],
                        location,
                    }]
                } else {
                    let all = engine
                        .catalog
                        .list_partitions(database, table)
                        .await
                        .map_err(catalog_error)?;
                    out.stats.partitions_listed = all.len() as i64;
                    all
                };
                let keep: Vec<Partition> = partitions
                    .into_iter()
                    .filter(|p| {
                        let hold = may_hold(
                            p,
                            &def.partition_keys,
                            &mapper.partition_keys,
                            has_simple,
                            &matches.composites,
                        );
                        if !hold {
                            out.stats.partitions_pruned += 1;
                        }
                        hold
                    })
                    .collect();
                let stores = &engine.stores;
                let listed: Vec<_> = stream::iter(keep)
                    .map(|p| async move {
                        let place = stores.place(&p.location).map_err(storage_error)?;
                        let metas = list_all(
                            place.store.as_ref(),
                            &place.bucket,
                            &dir_prefix(&place.prefix),
                        )
                        .await
                        .map_err(storage_error)?;
                        Ok::<_, TaskError>((p, place, metas))
                    })
                    .buffered(concurrency)
                    .collect()
                    .await;
                for item in listed {
                    let (p, place, metas) = item?;
                    let values = p.values.clone();
                    out.add_objects(
                        scheme_of(&p.location),
                        &place.bucket,
                        &def.partition_keys,
                        metas,
                        |_| Some(values.clone()),
                    );
                }
            }
            CatalogRef::Path(PathTable {
                location,
                partition_keys,
                ..
            }) => {
                let place = engine.stores.place(location).map_err(storage_error)?;
                let prefix = dir_prefix(&place.prefix);
                let metas = list_all(place.store.as_ref(), &place.bucket, &prefix)
                    .await
                    .map_err(storage_error)?;
                let values_of = |key: &str| {
                    values_from_path(key.strip_prefix(&prefix).unwrap_or(key), partition_keys)
                };
                // Group by partition, prune whole partitions, keep the rest in key order.
                let mut groups: BTreeMap<Option<Vec<String>>, Vec<ObjectMeta>> = BTreeMap::new();
                for meta in metas {
                    groups.entry(values_of(&meta.key)).or_default().push(meta);
                }
                for (values, metas) in groups {
                    if let Some(values) = values.as_ref().filter(|_| !partition_keys.is_empty()) {
                        out.stats.partitions_listed += 1;
                        let p = Partition {
                            values: values.clone(),
                            location: String::new(),
                        };
                        if !may_hold(
                            &p,
                            partition_keys,
                            &mapper.partition_keys,
                            has_simple,
                            &matches.composites,
                        ) {
                            out.stats.partitions_pruned += 1;
                            continue;
                        }
                    }
                    out.add_objects(
                        scheme_of(location),
                        &place.bucket,
                        partition_keys,
                        metas,
                        |key| values_of(key),
                    );
                }
            }
        }
        Ok(out)
    }

    /// Records the listing: stats, events, follow-up tasks, the mapper's state.
    async fn record(
        &self,
        task: &Task,
        p: &MapperPayload,
        listing: MapperListing,
    ) -> sqlx::Result<()> {
        let mut tx = self.0.db.begin().await?;
        if !tasks::mark_recorded(&mut *tx, task).await? {
            return Ok(());
        }
        let mut tasks_enqueued = 0;
        let mut objects = 0;
        for l in &listing.listings {
            for chunk in l.objects.chunks(OBJECTS_PER_TASK) {
                let payload = ObjectsPayload {
                    job_id: p.job_id,
                    data_mapper_id: p.data_mapper_id.clone(),
                    scheme: l.scheme.to_owned(),
                    bucket: l.bucket.clone(),
                    partition_keys: l.partition_keys.clone(),
                    objects: chunk.to_vec(),
                };
                tasks::enqueue_for_job(
                    &mut *tx,
                    Some(p.job_id),
                    FIND_OBJECTS,
                    &serde_json::to_value(&payload).unwrap_or_default(),
                    FIND_MAX_ATTEMPTS,
                )
                .await?;
                tasks_enqueued += 1;
                objects += chunk.len();
            }
        }
        for (key, reason) in listing.skipped.iter().take(MAX_SKIP_EVENTS) {
            db::insert_event(
                &mut *tx,
                p.job_id,
                "info",
                "object_skipped",
                &format!("skipped {key} ({reason})"),
                json!({"data_mapper_id": p.data_mapper_id, "key": key, "reason": reason}),
            )
            .await?;
        }
        let s = &listing.stats;
        db::insert_event(
            &mut *tx,
            p.job_id,
            "info",
            "mapper_listed",
            &format!(
                "data mapper {}: {} partition(s) listed, {} pruned; {} object(s) listed, {} skipped, {} to search",
                p.data_mapper_id,
                s.partitions_listed,
                s.partitions_pruned,
                s.objects_listed,
                s.objects_skipped,
                objects
            ),
            json!({"data_mapper_id": p.data_mapper_id, "tasks": tasks_enqueued,
                   "objects_to_search": objects, "skipped_not_named": listing.skipped.len().saturating_sub(MAX_SKIP_EVENTS)}),
        )
        .await?;
        db::add_stats(&mut *tx, p.job_id, s).await?;
        db::set_mapper_state(&mut *tx, p.job_id, &p.data_mapper_id, "listed", None).await?;
        tx.commit().await
    }

    /// Records that the mapper failed: the job will end `find_failed`.
    async fn record_failure(
        &self,
        task: &Task,
        p: &MapperPayload,
        error: &str,
    ) -> sqlx::Result<()> {
        let mut tx = self.0.db.begin().await?;
        if !tasks::mark_recorded(&mut *tx, task).await? {
            return Ok(());
        }
        db::set_mapper_state(&mut *tx, p.job_id, &p.data_mapper_id, "failed", Some(error)).await?;
        db::insert_event(
            &mut *tx,
            p.job_id,
            "error",
            "mapper_failed",
            &format!("data mapper {} failed: {error}", p.data_mapper_id),
            json!({"data_mapper_id": p.data_mapper_id}),
        )
        .await?;
        tx.commit().await
    }
}

fn scheme_of(location: &str) -> &'static str {
    if location.starts_with("file://") {
        "file"
    } else {
        "s3"
    }
}

pub(crate) fn db_error(e: sqlx::Error) -> TaskError {
    TaskError::Retryable(format!("database: {e}"))
}

#[async_trait]
impl TaskHandler for FindMapper {
    async fn run(&self, task: &Task) -> Result<(), TaskError> {
        let p: MapperPayload = serde_json::from_value(task.payload.clone())
            .map_err(|e| TaskError::Fatal(format!("bad payload: {e}")))?;
        let db = &self.0.db;
        if !lifecycle::is_active(db, p.job_id).await.map_err(db_error)? {
            return Ok(());
        }
        lifecycle::mark_started(db, p.job_id)
            .await
            .map_err(db_error)?;
        let mapper = db::get_job_mapper(db, p.job_id, &p.data_mapper_id)
            .await
            .map_err(db_error)?;
        let matches = load_matches(db, p.job_id, &p.data_mapper_id)
            .await
            .map_err(db_error)?;
        match self.list(p.job_id, &mapper, &matches).await {
            Ok(listing) => self.record(task, &p, listing).await.map_err(db_error),
            Err(TaskError::Retryable(e)) if !task.is_last_attempt() => Err(TaskError::Retryable(e)),
            Err(TaskError::Retryable(e) | TaskError::Fatal(e)) => {
                tracing::warn!(job.id = %p.job_id, data_mapper = %p.data_mapper_id, error = %e, "data mapper failed");
                self.record_failure(task, &p, &e).await.map_err(db_error)
            }
        }
    }
}

/// Match sets per partition: composite matches on partition keys reduce to their data
/// parts (or to "every row") inside a partition.
pub struct PartitionSets {
    simple: Vec<Value>,
    composites: Vec<Value>,
    table_partition_keys: Vec<String>,
    matchable: Vec<String>,
    base: Arc<MatchSet>,
    /// Some composite names a partition key.
    by_partition: bool,
}

impl PartitionSets {
    fn new(m: Matches, table_partition_keys: Vec<String>, matchable: Vec<String>) -> Self {
        let by_partition = m.composites.iter().any(|c| {
            c.as_array().is_some_and(|parts| {
                parts.iter().any(|p| {
                    p.get("column").and_then(Value::as_str).is_some_and(|col| {
                        matchable.iter().any(|k| k.eq_ignore_ascii_case(col))
                            && table_partition_keys
                                .iter()
                                .any(|k| k.eq_ignore_ascii_case(col))
                    })
                })
            })
        });
        let base = Arc::new(MatchSet::from_values(&m.simple).with_composites(&m.composites));
        Self {
            simple: m.simple,
            composites: m.composites,
            table_partition_keys,
            matchable,
            base,
            by_partition,
        }
    }

    /// The set to search an object of this partition with, and whether every row matches.
    pub fn for_partition(&self, values: Option<&[String]>) -> (Arc<MatchSet>, bool) {
        if !self.by_partition {
            return (self.base.clone(), false);
        }
        let reduced: Vec<Value> = self
            .composites
            .iter()
            .filter_map(|c| {
                reduce_composite(values, &self.table_partition_keys, &self.matchable, c)
            })
            .map(Value::Array)
            .collect();
        let every_row = reduced
            .iter()
            .any(|c| c.as_array().is_some_and(Vec::is_empty));
        let set = MatchSet::from_values(&self.simple).with_composites(&reduced);
        (Arc::new(set), every_row)
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
}

#[derive(Debug, Default)]
struct ObjectReport {
    rows_total: u64,
    rows_matched: u64,
    row_groups_total: usize,
    row_groups_pruned: usize,
    matching_row_groups: Vec<usize>,
    bytes_read: u64,
}

/// A job mapper's match sets and definition, keyed by (job, mapper).
type Cached = ((Uuid, String), Arc<PartitionSets>, Arc<MapperSnapshot>);

/// The last job/mapper's match sets (loading 100k ids once per task would dominate).
#[derive(Default)]
pub struct SetCache(Mutex<Option<Cached>>);

impl SetCache {
    /// The match sets and definition of `mapper` in the job; `table_keys` are the table's
    /// partition keys (the order of the objects' partition values).
    pub async fn get(
        &self,
        db: &PgPool,
        job_id: Uuid,
        mapper: &str,
        table_keys: &[String],
    ) -> Result<(Arc<PartitionSets>, Arc<MapperSnapshot>), TaskError> {
        let key = (job_id, mapper.to_owned());
        if let Ok(cache) = self.0.lock()
            && let Some((k, sets, snapshot)) = cache.as_ref()
            && *k == key
        {
            return Ok((sets.clone(), snapshot.clone()));
        }
        let snapshot = db::get_job_mapper(db, job_id, mapper)
            .await
            .map_err(db_error)?;
        let matches = load_matches(db, job_id, mapper).await.map_err(db_error)?;
        let sets = Arc::new(PartitionSets::new(
            matches,
            table_keys.to_vec(),
            snapshot.partition_keys.clone(),
        ));
        let snapshot = Arc::new(snapshot);
        if let Ok(mut cache) = self.0.lock() {
            *cache = Some((key, sets.clone(), snapshot.clone()));
        }
        Ok((sets, snapshot))
    }
}

/// Searches a batch of objects.
pub struct FindObjects {
    pub engine: Engine,
    cache: SetCache,
}

impl FindObjects {
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            cache: SetCache::default(),
        }
    }
}

async fn search(
    store: &dyn ObjectStore,
    bucket: &str,
    listed: &ListedObject,
    mapper: &MapperSnapshot,
    sets: &PartitionSets,
) -> Outcome {
    let meta = match store.head(bucket, &listed.key).await {
        Ok(meta) => meta,
        Err(StorageError::NotFound) => return Outcome::Vanished,
        Err(e) => {
            return Outcome::Failed {
                meta: None,
                retryable: matches!(e, StorageError::Unavailable(_)),
                error: e.to_string(),
            };
        }
    };
    if let Some(reason) = skip_reason(&meta) {
        return Outcome::Skipped(reason);
    }
    let (ids, every_row) = sets.for_partition(listed.partition.as_deref());
    let object = ObjectRef {
        bucket,
        key: &listed.key,
        version_id: meta.version_id.as_deref(),
        size: meta.size,
    };
    let result = match (mapper.format, every_row) {
        (Format::Parquet, true) => every_row_parquet(store, &object).await,
        (Format::Parquet, false) => find_parquet(store, &object, &mapper.columns, &ids).await,
        (Format::Json, _) => find_jsonl(store, &object, &mapper.columns, &ids)
            .await
            .map(|r| {
                let matched = if every_row {
                    r.lines_total
                } else {
                    r.lines_matched
                };
                (
                    crate::lakefile::parquet_find::FindReport {
                        rows_total: r.lines_total,
                        rows_matched: matched,
                        ..Default::default()
                    },
                    meta.size,
                )
            }),
    };
    match result {
        Ok((r, read)) => Outcome::Searched {
            report: ObjectReport {
                rows_total: r.rows_total,
                rows_matched: r.rows_matched,
                row_groups_total: r.row_groups_total,
                row_groups_pruned: r.row_groups_pruned_by_statistics
                    + r.row_groups_pruned_by_bloom_filter,
                matching_row_groups: r.matching_row_groups,
                bytes_read: read,
            },
            meta,
        },
        Err(ObjectFindError::Storage(StorageError::NotFound)) => Outcome::Vanished,
        Err(e) => Outcome::Failed {
            retryable: matches!(e, ObjectFindError::Storage(StorageError::Unavailable(_))),
            error: e.to_string(),
            meta: Some(meta),
        },
    }
}

#[async_trait]
impl TaskHandler for FindObjects {
    async fn run(&self, task: &Task) -> Result<(), TaskError> {
        let p: ObjectsPayload = serde_json::from_value(task.payload.clone())
            .map_err(|e| TaskError::Fatal(format!("bad payload: {e}")))?;
        let db = &self.engine.db;
        if !lifecycle::is_active(db, p.job_id).await.map_err(db_error)? {
            return Ok(());
        }
        let (sets, mapper) = self
            .cache
            .get(db, p.job_id, &p.data_mapper_id, &p.partition_keys)
            .await?;
        let store = match p.scheme.as_str() {
            "file" => self.engine.stores.file.clone(),
            _ => self.engine.stores.s3.clone(),
        };
        let concurrency = find_concurrency(db, p.job_id).await.map_err(db_error)?;
        let outcomes: Vec<Outcome> = stream::iter(p.objects.clone())
            .map(|o| {
                let (store, mapper, sets, bucket) = (
                    store.clone(),
                    mapper.clone(),
                    sets.clone(),
                    p.bucket.clone(),
                );
                let span = tracing::info_span!("object", object.key = %o.key);
                async move { search(store.as_ref(), &bucket, &o, &mapper, &sets).await }
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
        record_objects(db, task, &p, outcomes)
            .await
            .map_err(db_error)
    }
}

async fn record_objects(
    db: &PgPool,
    task: &Task,
    p: &ObjectsPayload,
    outcomes: Vec<Outcome>,
) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    if !tasks::mark_recorded(&mut *tx, task).await? {
        return Ok(());
    }
    let mut stats = JobStats::default();
    let mut failed: HashMap<&str, usize> = HashMap::new();
    for (listed, outcome) in p.objects.iter().zip(outcomes) {
        let key = listed.key.as_str();
        let object = |meta: &Option<ObjectMeta>, status: &str| JobObject {
            data_mapper_id: p.data_mapper_id.clone(),
            bucket: p.bucket.clone(),
            key: key.to_owned(),
            version_id: meta.as_ref().and_then(|m| m.version_id.clone()),
            etag: meta.as_ref().and_then(|m| m.etag.clone()),
            size_bytes: meta.as_ref().map_or(listed.size, |m| m.size) as i64,
            status: status.to_owned(),
            partition_keys: Some(p.partition_keys.clone()),
            partition_values: listed.partition.clone(),
            ..JobObject::default()
        };
        match outcome {
            Outcome::Vanished | Outcome::Skipped(_) => {
                let reason = match outcome {
                    Outcome::Skipped(reason) => reason,
                    _ => "deleted since it was listed",
                };
                stats.objects_skipped += 1;
                db::insert_event(
                    &mut *tx,
                    p.job_id,
                    "warning",
                    "object_skipped",
                    &format!("skipped {key} ({reason})"),
                    json!({"data_mapper_id": p.data_mapper_id, "key": key, "reason": reason}),
                )
                .await?;
            }
            Outcome::Failed { meta, error, .. } => {
                stats.objects_failed += 1;
                *failed.entry(key).or_default() += 1;
                let mut row = object(&meta, "failed");
                row.error = Some(error.clone());
                db::insert_object(&mut *tx, p.job_id, &row).await?;
                db::insert_event(
                    &mut *tx,
                    p.job_id,
                    "error",
                    "object_failed",
                    &format!("cannot search {key}: {error}"),
                    json!({"data_mapper_id": p.data_mapper_id, "key": key}),
                )
                .await?;
                tracing::warn!(job.id = %p.job_id, object.key = key, error = %error, "object failed");
            }
            Outcome::Searched { meta, report } => {
                stats.objects_scanned += 1;
                stats.bytes_scanned += report.bytes_read as i64;
                stats.row_groups_pruned += report.row_groups_pruned as i64;
                stats.row_groups_scanned +=
                    (report.row_groups_total - report.row_groups_pruned) as i64;
                if report.row_groups_total > 0
                    && report.row_groups_pruned == report.row_groups_total
                {
                    stats.objects_pruned += 1;
                }
                if report.rows_matched > 0 {
                    stats.objects_matched += 1;
                    stats.rows_matched += report.rows_matched as i64;
                    let mut row = object(&Some(meta), "matched");
                    row.rows_total = Some(report.rows_total as i64);
                    row.rows_matched = report.rows_matched as i64;
                    row.row_groups = report
                        .matching_row_groups
                        .iter()
                        .map(|&g| g as i32)
                        .collect();
                    db::insert_object(&mut *tx, p.job_id, &row).await?;
                }
            }
        }
    }
    db::add_stats(&mut *tx, p.job_id, &stats).await?;
    tx.commit().await
}
