//! `find.mapper` (one per data mapper of a job): resolve the table's source
//! (`catalog::source`: a Glue table or a `path` table, its locations and how its objects
//! are placed in their partitions), then ask it for the table's objects page by page: each
//! page's objects are pruned where no queued match can be, skipped (markers, empty
//! objects), set aside (hidden ones, `find_hidden`), and the rest enqueued as
//! `find.objects` tasks of a few objects each — in the transaction that saves where the
//! listing stands (`db::job_listing`). A killed worker's successor resumes after the last
//! recorded page, and memory holds one page, whatever the table's size.
//!
//! The source says which objects are the table's (a projected table's prefix holds
//! others' too; an object of a partitioned table in no partition is searched but marked
//! never to be rewritten); this task names and counts them in its events.
//!
//! A missing table, denied access or a table format over any of the table's objects (the
//! source refuses it) fails the mapper (the job ends `find_failed`, nothing written: searches already enqueued only
//! read, and forget starts only once every mapper's listing is recorded).
//! Events carry keys and counts, never match ids.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::catalog::source::{ListAt, SourcePage, TableObject, TableSource, resolve};
use crate::db::job::{self as jobs, JobStats};
use crate::db::job_data_mapper::{self as mappers, MapperSnapshot, TableReading};
use crate::db::job_listing as progress_db;
use crate::db::task::{begin_bookkeeping, mark_recorded, progressed};
use crate::domain::data_mapper::TableDef;
use crate::domain::job::{EventLevel, MapperState};
use crate::domain::partition::{PartitionKey, may_hold};
use crate::jobs::find_hidden::{HiddenObjects, MAX_TEMPORARY_EVENTS};
use crate::jobs::find_objects::{FindObjects, ListedObject, OldVersion};
use crate::jobs::lifecycle::{self, event};
use crate::jobs::matches::{Matches, load_matches, records_for, table_reading};
use crate::jobs::tasks::{Task, TaskError};
use crate::jobs::{Context, Engine, JobTask, enqueue_all};
use crate::storage::skip_reason;

/// Objects per `find.objects` task.
const OBJECTS_PER_TASK: usize = 16;
/// Skipped objects named one by one in the events, per mapper (the rest are counted).
const MAX_SKIP_EVENTS: usize = 50;
/// Keys under a projection's prefix that are not the table's, named in its events.
const MAX_NOT_THE_TABLES_EXAMPLES: usize = 5;

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
        let listed = match ctx.engine.for_mapper(&mapper, self.job_id) {
            Ok(engine) => self.list(ctx, task, &engine, &mapper, &matches).await,
            Err(e) => Err(e.into()),
        };
        match listed {
            Ok(()) => Ok(()),
            Err(e @ TaskError::Interrupted(_)) => Err(e),
            Err(TaskError::Retryable(e)) if !task.is_last_attempt() => Err(TaskError::Retryable(e)),
            Err(TaskError::Retryable(e) | TaskError::Fatal(e)) => {
                tracing::warn!(job.id = %self.job_id, data_mapper = %self.data_mapper_id, error = %e, "data mapper failed");
                Ok(self.record_failure(ctx, task, &e).await?)
            }
        }
    }
}

/// A mapper's table as this listing reads it: its source, and how find read a Glue
/// table (kept in the job's snapshot).
struct Plan {
    source: Box<dyn TableSource>,
    read_at_find: Option<TableReading>,
}

/// Where a mapper's listing stands, saved with each page (`db::job_listing`): the next
/// page to list and the totals of the pages before it.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Progress {
    locations: Vec<String>,
    /// Index in `locations` of the one being listed, and its next page's token.
    location: usize,
    next: Option<String>,
    pages: u64,
    stats: JobStats,
    tasks: u64,
    objects_to_search: u64,
    skipped_named: usize,
    skipped_not_named: usize,
    hidden: usize,
    hidden_recorded: usize,
    /// `_temporary/` folders and their hidden objects (the first ones), and how many
    /// objects under folders beyond them.
    temporaries: BTreeMap<String, usize>,
    temporaries_not_named: usize,
    not_the_tables: usize,
    not_the_tables_examples: Vec<String>,
    /// Objects in partition folders not registered in the catalog, and those folders.
    unregistered: usize,
    discovered: i64,
    /// Objects of a partitioned table in no partition.
    unplaced: usize,
    /// What the table source remembers from page to page (`TableSource::list_page`: a
    /// projected table's table-format roots found holding none of its objects).
    format_roots_checked: Vec<String>,
    /// Current objects of the table listed (markers and empty objects aside): a source
    /// that knows its objects beforehand (Iceberg's metadata) must have shown them all.
    current_listed: usize,
}

/// What a listing is for: the table's plan, the mapper and the queued matches.
struct Scope<'a> {
    plan: &'a Plan,
    mapper: &'a MapperSnapshot,
    matches: &'a Matches,
}

/// What one page's objects come to.
#[derive(Default)]
struct PageListing {
    stats: JobStats,
    listings: Vec<Listing>,
    skipped: Vec<(String, &'static str)>,
    hidden: HiddenObjects,
}

/// Objects of one storage place, grouped for tasks.
struct Listing {
    scheme: &'static str,
    bucket: String,
    keys: Vec<PartitionKey>,
    objects: Vec<ListedObject>,
}

/// A partition's values as one string (`job_listed_partition`).
fn encode(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_default()
}

impl PageListing {
    /// Groups a page's objects by partition, prunes whole partitions no queued match can
    /// be in (counting a partition as listed, unless `counted`, and as pruned only the
    /// first time it is seen: `is_new`), skips markers and empty objects, sets hidden ones
    /// aside, and keeps the rest for search.
    fn add_found(
        &mut self,
        keys: &[PartitionKey],
        found: Vec<TableObject>,
        mapper: &MapperSnapshot,
        matches: &Matches,
        counted: bool,
        is_new: impl Fn(&[String]) -> bool,
    ) {
        let has_simple = !matches.simple.is_empty();
        let mut groups: BTreeMap<Option<Vec<String>>, Vec<TableObject>> = BTreeMap::new();
        for f in found {
            groups.entry(f.values.clone()).or_default().push(f);
        }
        let mut by_place: BTreeMap<(&'static str, String), Vec<ListedObject>> = BTreeMap::new();
        for (values, group) in groups {
            if let Some(values) = values.as_ref().filter(|_| !keys.is_empty()) {
                let new = is_new(values);
                if !counted && new {
                    self.stats.partitions_listed += 1;
                }
                let hold = may_hold(
                    values,
                    keys,
                    &mapper.partition_keys,
                    has_simple,
                    &matches.composites,
                );
                if !hold {
                    if new {
                        self.stats.partitions_pruned += 1;
                    }
                    continue;
                }
            }
            for f in group {
                if f.meta.noncurrent.is_some() {
                    // Old versions of markers, empty and hidden objects are none of the
                    // table's data; the others are searched like current objects.
                    if skip_reason(&f.meta).is_some() || f.hidden {
                        continue;
                    }
                    self.stats.old_versions_listed += 1;
                } else {
                    self.stats.objects_listed += 1;
                }
                if let Some(reason) = skip_reason(&f.meta) {
                    self.stats.objects_skipped += 1;
                    self.skipped.push((f.meta.key, reason));
                    continue;
                }
                if f.hidden {
                    self.stats.objects_skipped += 1;
                    let (place, temporary) = (f.place.clone(), f.temporary.as_deref());
                    self.hidden.add(&place, keys, f.meta, f.values, temporary);
                    continue;
                }
                let scheme = f.place.scheme;
                by_place
                    .entry((scheme, f.place.bucket.clone()))
                    .or_default()
                    .push(ListedObject {
                        old_version: OldVersion::of(&f.meta),
                        key: f.meta.key,
                        size: f.meta.size,
                        partition: f.values,
                        outside_partitions: f.outside,
                    });
            }
        }
        for ((scheme, bucket), mut objects) in by_place {
            objects.sort_by(|a, b| a.key.cmp(&b.key));
            self.listings.push(Listing {
                scheme,
                bucket,
                keys: keys.to_vec(),
                objects,
            });
        }
    }
}

/// Resolves a mapper's table (`catalog::source`), judging on the way whether the mapper's
/// format reads it exactly.
async fn plan(engine: &Engine, mapper: &MapperSnapshot) -> Result<Plan, TaskError> {
    let mut read_at_find = None;
    let mut reads = |def: Option<&TableDef>| {
        let reading = def.map(|def| table_reading(&mapper.columns, def));
        let records = records_for(mapper.format, reading.as_ref(), &mapper.catalog)?;
        read_at_find = reading;
        Ok(records.reads_serde())
    };
    let source = resolve(
        &*engine.catalog,
        &engine.stores,
        (&mapper.catalog, &mapper.columns),
        &mut reads,
    )
    .await?;
    // A table format's columns are found by field id in every later search and rewrite.
    match (read_at_find.as_mut(), source.field_ids()) {
        (Some(reading), Some(field_ids)) => reading.field_ids = field_ids.clone(),
        (None, Some(_)) => {
            return Err(TaskError::Fatal(
                "the table finds its columns by field id, but no catalog reading records them"
                    .to_owned(),
            ));
        }
        (_, None) => {}
    }
    Ok(Plan {
        source,
        read_at_find,
    })
}

impl FindMapper {
    /// Lists the mapper's table page by page from where a previous run stopped, recording
    /// each page, then records the listing's end.
    async fn list(
        &self,
        ctx: &Context,
        task: &Task,
        engine: &Engine,
        mapper: &MapperSnapshot,
        matches: &Matches,
    ) -> Result<(), TaskError> {
        let db = &ctx.engine.db;
        let plan = plan(engine, mapper).await?;
        let saved = progress_db::get(db, self.job_id, &self.data_mapper_id).await?;
        let mut progress = match saved.map(serde_json::from_value::<Progress>) {
            Some(Ok(progress)) => progress,
            // Listing again from the start would enqueue searches twice.
            Some(Err(e)) => {
                return Err(TaskError::Fatal(format!(
                    "the saved progress of this listing is unreadable: {e}"
                )));
            }
            None => Progress {
                locations: plan.source.locations().to_vec(),
                ..Progress::default()
            },
        };
        if progress.pages > 0 {
            tracing::info!(job.id = %self.job_id, data_mapper = %self.data_mapper_id, pages = progress.pages, "resuming a listing");
        }
        while let Some(location) = progress.locations.get(progress.location).cloned() {
            // A cancelled job's listing stops at a page boundary (its receipts wait for it).
            if !crate::jobs::lifecycle::is_active(db, self.job_id).await? {
                return Ok(());
            }
            let at = ListAt {
                location: &location,
                next: progress.next.as_deref(),
            };
            let mut page = plan
                .source
                .list_page(&engine.stores, at, &mut progress.format_roots_checked)
                .await?;
            progress.count(&mut page);
            let scope = Scope {
                plan: &plan,
                mapper,
                matches,
            };
            self.record_page(ctx, task, &scope, page, &mut progress)
                .await?;
        }
        // A data file the table's metadata names but the listing never showed (deleted,
        // or named otherwise than its key) would go unsearched: the mapper fails.
        if let Some(expected) = plan.source.expected_objects()
            && progress.current_listed < expected
        {
            return Err(TaskError::Fatal(format!(
                "{} of the {expected} data file(s) the table's metadata references were not found under its location: not searched, so the mapper fails",
                expected - progress.current_listed
            )));
        }
        Ok(self.record(ctx, task, &plan, progress).await?)
    }

    /// Records one page: its searches, skips, hidden rows and counts, and the progress
    /// past it, in one transaction fenced by the task's lease (which it also marks as
    /// progress: the crash budget starts again).
    async fn record_page(
        &self,
        ctx: &Context,
        task: &Task,
        Scope {
            plan,
            mapper,
            matches,
        }: &Scope<'_>,
        SourcePage {
            objects: found,
            discovered,
            next,
            ..
        }: SourcePage,
        progress: &mut Progress,
    ) -> Result<(), TaskError> {
        let (job_id, mapper_id) = (self.job_id, self.data_mapper_id.as_str());
        let mut tx = begin_bookkeeping(&ctx.engine.db).await?;
        if !progressed(&mut *tx, task).await? {
            return Err(TaskError::Retryable("lease lost".to_owned()));
        }
        let groups: BTreeSet<String> = found
            .iter()
            .filter_map(|f| f.values.as_deref())
            .filter(|_| !plan.source.keys().is_empty())
            .map(encode)
            .collect();
        let groups: Vec<String> = groups.into_iter().collect();
        let new: HashSet<String> =
            progress_db::first_seen(&mut *tx, job_id, mapper_id, "group", &groups)
                .await?
                .into_iter()
                .collect();
        let discovered: BTreeSet<String> = discovered.iter().map(|v| encode(v)).collect();
        let discovered: Vec<String> = discovered.into_iter().collect();
        let newly_discovered =
            progress_db::first_seen(&mut *tx, job_id, mapper_id, "discovered", &discovered)
                .await?
                .len() as i64;
        let mut page = PageListing {
            hidden: HiddenObjects::after(progress.hidden_recorded),
            ..PageListing::default()
        };
        page.add_found(
            plan.source.keys(),
            found,
            mapper,
            matches,
            plan.source.registered_partitions().is_some(),
            |v| new.contains(&encode(v)),
        );
        page.stats.partitions_listed += newly_discovered;
        let searches = page.searches(job_id, mapper_id);
        enqueue_all(&mut *tx, job_id, &searches).await?;
        progress.tasks += searches.len() as u64;
        progress.objects_to_search += searches.iter().map(|s| s.objects.len() as u64).sum::<u64>();
        let skipped = std::mem::take(&mut page.skipped);
        name_skipped(&mut tx, (job_id, mapper_id), skipped, progress).await?;
        page.hidden.record(&mut tx, job_id, mapper_id).await?;
        progress.hidden += page.hidden.count;
        progress.hidden_recorded += page.hidden.recorded();
        progress.add_temporaries(std::mem::take(&mut page.hidden.temporaries));
        jobs::add_stats(&mut *tx, job_id, &page.stats).await?;
        progress.stats.add(&page.stats);
        progress.pages += 1;
        // Past this page: the next one of this location, else the next location.
        match next {
            Some(token) => progress.next = Some(token),
            None => {
                progress.location += 1;
                progress.next = None;
            }
        }
        let saved =
            serde_json::to_value(&*progress).map_err(|e| TaskError::Fatal(e.to_string()))?;
        progress_db::save(&mut *tx, job_id, mapper_id, &saved).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the end of the listing: its warnings and summary events, the counts only
    /// the whole listing knows, the mapper's state; the listing's progress goes.
    async fn record(
        &self,
        ctx: &Context,
        task: &Task,
        plan: &Plan,
        progress: Progress,
    ) -> sqlx::Result<()> {
        let mut tx = begin_bookkeeping(&ctx.engine.db).await?;
        if !mark_recorded(&mut *tx, task).await? {
            return Ok(());
        }
        let (job_id, mapper) = (self.job_id, self.data_mapper_id.as_str());
        if let Some(reading) = &plan.read_at_find {
            mappers::set_read_at_find(&mut *tx, job_id, mapper, reading).await?;
        }
        let notes = progress.notes(plan);
        for (kind, message) in &notes {
            event(
                &mut *tx,
                job_id,
                EventLevel::Warning,
                kind,
                message,
                json!({"data_mapper_id": mapper}),
            )
            .await?;
        }
        for key in &progress.not_the_tables_examples {
            event(
                &mut *tx,
                job_id,
                EventLevel::Info,
                "object_not_the_tables",
                &format!("{key} is not the table's as its catalog defines it (at no path its partition projection generates, or a file no snapshot of its Iceberg metadata references): not searched"),
                json!({"data_mapper_id": mapper, "key": key}),
            )
            .await?;
        }
        HiddenObjects::record_temporaries(&mut tx, job_id, mapper, &progress.temporaries).await?;
        // Registered partitions are counted from the catalog, once.
        let mut end = JobStats::default();
        if let Some(registered) = plan.source.registered_partitions() {
            end.partitions_listed = registered as i64;
        }
        jobs::add_stats(&mut *tx, job_id, &end).await?;
        let mut s = progress.stats.clone();
        s.add(&end);
        listed_event(&mut tx, (job_id, mapper), &progress, &s).await?;
        progress_db::delete(&mut tx, job_id, mapper).await?;
        mappers::set_state(&mut *tx, job_id, mapper, MapperState::Listed, None).await?;
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

impl PageListing {
    /// The find.objects tasks searching this page's objects, a few objects each.
    fn searches(&self, job_id: Uuid, mapper_id: &str) -> Vec<FindObjects> {
        let mut searches = Vec::new();
        for l in &self.listings {
            for chunk in l.objects.chunks(OBJECTS_PER_TASK) {
                searches.push(FindObjects {
                    job_id,
                    data_mapper_id: mapper_id.to_owned(),
                    scheme: l.scheme.to_owned(),
                    bucket: l.bucket.clone(),
                    partition_keys: l.keys.iter().map(|k| k.name.clone()).collect(),
                    partition_types: l
                        .keys
                        .iter()
                        .map(|k| k.ty.as_ref().map(ToString::to_string).unwrap_or_default())
                        .collect(),
                    objects: chunk.to_vec(),
                });
            }
        }
        searches
    }
}

impl Progress {
    /// Counts what the listing's events tell of a page (taken from it): objects not the
    /// table's (the first few by key), objects in unregistered partitions, objects in no
    /// partition.
    fn count(&mut self, page: &mut SourcePage) {
        for key in std::mem::take(&mut page.not_the_tables) {
            self.not_the_tables += 1;
            if self.not_the_tables_examples.len() < MAX_NOT_THE_TABLES_EXAMPLES {
                self.not_the_tables_examples.push(key);
            }
        }
        self.unregistered += page.unregistered;
        self.unplaced += page.unplaced;
        self.current_listed += page
            .objects
            .iter()
            .filter(|o| o.meta.noncurrent.is_none() && skip_reason(&o.meta).is_none())
            .count();
    }

    /// Counts a page's `_temporary/` folders: the first ones by name, the rest in all.
    fn add_temporaries(&mut self, temporaries: impl IntoIterator<Item = (String, usize)>) {
        for (prefix, objects) in temporaries {
            if self.temporaries.contains_key(&prefix)
                || self.temporaries.len() < MAX_TEMPORARY_EVENTS
            {
                *self.temporaries.entry(prefix).or_default() += objects;
            } else {
                self.temporaries_not_named += objects;
            }
        }
    }
}

/// An `object_skipped` event for each of a page's skipped objects, up to
/// `MAX_SKIP_EVENTS` per mapper (the rest counted).
async fn name_skipped(
    tx: &mut sqlx::PgConnection,
    (job_id, mapper_id): (Uuid, &str),
    skipped: Vec<(String, &'static str)>,
    progress: &mut Progress,
) -> sqlx::Result<()> {
    for (key, reason) in skipped {
        if progress.skipped_named >= MAX_SKIP_EVENTS {
            progress.skipped_not_named += 1;
            continue;
        }
        progress.skipped_named += 1;
        event(
            &mut *tx,
            job_id,
            EventLevel::Info,
            "object_skipped",
            &format!("skipped {key} ({reason})"),
            json!({"data_mapper_id": mapper_id, "key": key, "reason": reason}),
        )
        .await?;
    }
    Ok(())
}

impl Progress {
    /// The listing's warnings: the plan's, unregistered partitions, objects in no
    /// partition.
    fn notes(&self, plan: &Plan) -> Vec<(&'static str, String)> {
        let mut notes = plan.source.notes().to_vec();
        if self.unregistered > 0 {
            notes.push((
                "unregistered_partition",
                format!(
                    "{} object(s) in {} partition folder(s) not registered in the catalog: searched with the values of their path",
                    self.unregistered, self.discovered
                ),
            ));
        }
        if self.unplaced > 0 {
            let location = self.locations.first().cloned().unwrap_or_default();
            notes.push((
                "object_outside_partitions",
                format!(
                    "{} object(s) under {location} are in no partition: searched but never rewritten (rows outside the table's partitions keep their items queued)",
                    self.unplaced
                ),
            ));
        }
        notes
    }
}

/// The `mapper_listed` event: what the listing of one mapper came to (`s`: its stats).
async fn listed_event(
    tx: &mut sqlx::PgConnection,
    (job_id, mapper): (Uuid, &str),
    progress: &Progress,
    s: &JobStats,
) -> sqlx::Result<()> {
    let others = progress.not_the_tables;
    let not_the_tables = match others {
        0 => String::new(),
        n => format!("; {n} object(s) under the table's prefix are not the table's (not searched)"),
    };
    let objects = progress.objects_to_search;
    let temporaries = progress.temporaries.len();
    event(
        &mut *tx,
        job_id,
        EventLevel::Info,
        "mapper_listed",
        &format!(
            "data mapper {mapper}: {} partition(s) listed, {} pruned; {} object(s) and {} old version(s) listed, {} skipped ({} of them hidden: not the table's data), {objects} to search{not_the_tables}",
            s.partitions_listed, s.partitions_pruned, s.objects_listed, s.old_versions_listed,
            s.objects_skipped, progress.hidden,
        ),
        json!({"data_mapper_id": mapper, "tasks": progress.tasks, "objects_to_search": objects,
               "old_versions_listed": s.old_versions_listed,
               "pages": progress.pages,
               "skipped_not_named": progress.skipped_not_named,
               "objects_not_the_tables": others, "objects_hidden": progress.hidden,
               "hidden_not_recorded": progress.hidden - progress.hidden_recorded.min(progress.hidden),
               "temporary_prefixes": temporaries,
               "temporary_prefixes_not_named": temporaries.saturating_sub(MAX_TEMPORARY_EVENTS),
               "temporary_objects_not_named": progress.temporaries_not_named}),
    )
    .await
}
