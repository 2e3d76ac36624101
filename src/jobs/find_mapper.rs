//! `find.mapper` (one per data mapper of a job): resolve the table (Glue or a `path`
//! layout), list its partitions, prune those no queued match can live in, list the
//! objects of the rest, skip markers / temporary / empty / archived objects, and enqueue
//! `find.objects` tasks of a few objects each.
//!
//! A missing table or denied access fails the mapper (the job ends `find_failed`).
//! Events carry keys and counts, never match ids.

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::db::job::{self as jobs, JobStats};
use crate::db::job_data_mapper::{self as mappers, MapperSnapshot};
use crate::db::task::{begin_bookkeeping, mark_recorded};
use crate::domain::data_mapper::{CatalogRef, GlueTable, PathTable};
use crate::domain::job::{EventLevel, MapperState};
use crate::domain::partition::{Partition, may_hold, values_from_path};
use crate::jobs::find_objects::{FindObjects, ListedObject};
use crate::jobs::lifecycle::{self, event};
use crate::jobs::matches::{Matches, load_matches};
use crate::jobs::tasks::{Task, TaskError};
use crate::jobs::{Context, Engine, JobTask, enqueue_all};
use crate::storage::{ObjectMeta, dir_prefix, list_all, skip_reason};

/// Objects per `find.objects` task.
const OBJECTS_PER_TASK: usize = 16;
/// Skipped objects named one by one in the events, per mapper (the rest are counted).
const MAX_SKIP_EVENTS: usize = 50;

/// Lists one data mapper's table for a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindMapper {
    pub job_id: Uuid,
    pub data_mapper_id: String,
}

#[async_trait]
impl JobTask for FindMapper {
    const KIND: &'static str = "find.mapper";
    const MAX_ATTEMPTS: i32 = 5;

    fn job_id(&self) -> Uuid {
        self.job_id
    }

    async fn run(&self, ctx: &Context, task: &Task) -> Result<(), TaskError> {
        let db = &ctx.engine.db;
        lifecycle::mark_started(db, self.job_id).await?;
        let mapper = mappers::get(db, self.job_id, &self.data_mapper_id).await?;
        let matches = load_matches(db, self.job_id, &self.data_mapper_id).await?;
        let concurrency = ctx.settings(self.job_id).await?.find_concurrency();
        match list(&ctx.engine, &mapper, &matches, concurrency).await {
            Ok(listing) => Ok(self.record(ctx, task, listing).await?),
            Err(TaskError::Retryable(e)) if !task.is_last_attempt() => Err(TaskError::Retryable(e)),
            Err(TaskError::Retryable(e) | TaskError::Fatal(e)) => {
                tracing::warn!(job.id = %self.job_id, data_mapper = %self.data_mapper_id, error = %e, "data mapper failed");
                Ok(self.record_failure(ctx, task, &e).await?)
            }
        }
    }
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
async fn list(
    engine: &Engine,
    mapper: &MapperSnapshot,
    matches: &Matches,
    concurrency: usize,
) -> Result<MapperListing, TaskError> {
    match &mapper.catalog {
        CatalogRef::Glue(table) => list_glue(engine, table, mapper, matches, concurrency).await,
        CatalogRef::Path(table) => list_path(engine, table, mapper, matches).await,
    }
}

/// A Glue table: its partitions from the catalog (or its location), pruned, then listed
/// `concurrency` at a time.
async fn list_glue(
    engine: &Engine,
    GlueTable { database, table }: &GlueTable,
    mapper: &MapperSnapshot,
    matches: &Matches,
    concurrency: usize,
) -> Result<MapperListing, TaskError> {
    let mut out = MapperListing::default();
    let def = engine.catalog.get_table(database, table).await?;
    let location = def
        .location
        .clone()
        .ok_or_else(|| TaskError::Fatal(format!("table {database}.{table} has no location")))?;
    let partitions = if def.partition_keys.is_empty() {
        vec![Partition {
            values: vec![],
            location,
        }]
    } else {
        let all = engine.catalog.list_partitions(database, table).await?;
        out.stats.partitions_listed = all.len() as i64;
        all
    };
    let has_simple = !matches.simple.is_empty();
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
            let place = stores.place(&p.location)?;
            let metas = list_all(
                place.store.as_ref(),
                &place.bucket,
                &dir_prefix(&place.prefix),
            )
            .await?;
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
    Ok(out)
}

/// A `path` table: one listing, grouped and pruned by the `key=value` path segments.
async fn list_path(
    engine: &Engine,
    PathTable {
        location,
        partition_keys,
        ..
    }: &PathTable,
    mapper: &MapperSnapshot,
    matches: &Matches,
) -> Result<MapperListing, TaskError> {
    let mut out = MapperListing::default();
    let place = engine.stores.place(location)?;
    let prefix = dir_prefix(&place.prefix);
    let metas = list_all(place.store.as_ref(), &place.bucket, &prefix).await?;
    let values_of =
        |key: &str| values_from_path(key.strip_prefix(&prefix).unwrap_or(key), partition_keys);
    // Group by partition, prune whole partitions, keep the rest in key order.
    let mut groups: BTreeMap<Option<Vec<String>>, Vec<ObjectMeta>> = BTreeMap::new();
    for meta in metas {
        groups.entry(values_of(&meta.key)).or_default().push(meta);
    }
    let has_simple = !matches.simple.is_empty();
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
    Ok(out)
}

fn scheme_of(location: &str) -> &'static str {
    if location.starts_with("file://") {
        "file"
    } else {
        "s3"
    }
}

impl FindMapper {
    /// Records the listing: stats, events, follow-up tasks, the mapper's state.
    async fn record(&self, ctx: &Context, task: &Task, listing: MapperListing) -> sqlx::Result<()> {
        let mut tx = begin_bookkeeping(&ctx.engine.db).await?;
        if !mark_recorded(&mut *tx, task).await? {
            return Ok(());
        }
        let mut searches = Vec::new();
        for l in &listing.listings {
            for chunk in l.objects.chunks(OBJECTS_PER_TASK) {
                searches.push(FindObjects {
                    job_id: self.job_id,
                    data_mapper_id: self.data_mapper_id.clone(),
                    scheme: l.scheme.to_owned(),
                    bucket: l.bucket.clone(),
                    partition_keys: l.partition_keys.clone(),
                    objects: chunk.to_vec(),
                });
            }
        }
        let objects: usize = searches.iter().map(|s| s.objects.len()).sum();
        enqueue_all(&mut *tx, self.job_id, &searches).await?;
        let mapper = &self.data_mapper_id;
        for (key, reason) in listing.skipped.iter().take(MAX_SKIP_EVENTS) {
            event(
                &mut *tx,
                self.job_id,
                EventLevel::Info,
                "object_skipped",
                &format!("skipped {key} ({reason})"),
                json!({"data_mapper_id": mapper, "key": key, "reason": reason}),
            )
            .await?;
        }
        let s = &listing.stats;
        event(
            &mut *tx,
            self.job_id,
            EventLevel::Info,
            "mapper_listed",
            &format!(
                "data mapper {mapper}: {} partition(s) listed, {} pruned; {} object(s) listed, {} skipped, {objects} to search",
                s.partitions_listed, s.partitions_pruned, s.objects_listed, s.objects_skipped,
            ),
            json!({"data_mapper_id": mapper, "tasks": searches.len(), "objects_to_search": objects,
                   "skipped_not_named": listing.skipped.len().saturating_sub(MAX_SKIP_EVENTS)}),
        )
        .await?;
        jobs::add_stats(&mut *tx, self.job_id, s).await?;
        mappers::set_state(&mut *tx, self.job_id, mapper, MapperState::Listed, None).await?;
        tx.commit().await
    }

    /// Records that the mapper failed: the job will end `find_failed`.
    async fn record_failure(&self, ctx: &Context, task: &Task, error: &str) -> sqlx::Result<()> {
        let mut tx = begin_bookkeeping(&ctx.engine.db).await?;
        if !mark_recorded(&mut *tx, task).await? {
            return Ok(());
        }
        let mapper = &self.data_mapper_id;
        mappers::set_state(
            &mut *tx,
            self.job_id,
            mapper,
            MapperState::Failed,
            Some(error),
        )
        .await?;
        event(
            &mut *tx,
            self.job_id,
            EventLevel::Error,
            "mapper_failed",
            &format!("data mapper {mapper} failed: {error}"),
            json!({"data_mapper_id": mapper}),
        )
        .await?;
        tx.commit().await
    }
}
