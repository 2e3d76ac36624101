//! `find.mapper` (one per data mapper of a job): resolve the table (Glue or a `path`
//! layout), list its partitions, prune those no queued match can live in, list the
//! objects of the rest, skip markers / empty objects, set hidden ones aside
//! (`find_hidden`), and enqueue `find.objects` tasks of a few objects each.
//!
//! Only the table's own objects are listed as its: a projected table's are those at the
//! paths its projection generates (`domain::projection`); an object of a partitioned
//! table in no partition is searched but marked never to be rewritten.
//!
//! A missing table, denied access or a table format's metadata folder over any of the
//! table's objects (checked before hiding: `_delta_log/` is hidden) fails the mapper
//! (the job ends `find_failed`, nothing written).
//! Events carry keys and counts, never match ids.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::db::job::{self as jobs, JobStats};
use crate::db::job_data_mapper::{self as mappers, MapperSnapshot, TableReading};
use crate::db::task::{begin_bookkeeping, mark_recorded};
use crate::domain::data_mapper::{CatalogRef, Format, GlueTable, PathTable, TableFormat};
use crate::domain::hidden::{is_hidden, temporary_prefix};
use crate::domain::job::{EventLevel, MapperState};
use crate::domain::partition::{PartitionKey, may_hold, values_from_path};
use crate::domain::projection::Projection;
use crate::jobs::find_hidden::HiddenObjects;
use crate::jobs::find_objects::{FindObjects, ListedObject, OldVersion};
use crate::jobs::lifecycle::{self, event};
use crate::jobs::matches::{Matches, load_matches, table_reading};
use crate::jobs::tasks::{Task, TaskError};
use crate::jobs::{Context, Engine, JobTask, enqueue_all};
use crate::lakefile::jsonl_serde::refusal;
use crate::storage::{ObjectMeta, Place, dir_prefix, list_all, skip_reason};

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
        let concurrency = ctx.settings(self.job_id).await?.find_concurrency();
        let listed = match ctx.engine.for_mapper(&mapper, self.job_id) {
            Ok(engine) => list(&engine, &mapper, &matches, concurrency).await,
            Err(e) => Err(e.into()),
        };
        match listed {
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
    keys: Vec<PartitionKey>,
    objects: Vec<ListedObject>,
}

/// What listing a mapper's table found.
#[derive(Default)]
struct MapperListing {
    stats: JobStats,
    listings: Vec<Listing>,
    skipped: Vec<(String, &'static str)>,
    /// Warnings about how the table was listed (events).
    notes: Vec<(&'static str, String)>,
    /// Objects under a projection's prefix at no path it generates: not the table's, never
    /// searched (a count, and a few keys).
    not_the_tables: usize,
    not_the_tables_examples: Vec<String>,
    /// A Glue JSON table's types and SerDe as read now (kept in the job's snapshot).
    read_at_find: Option<TableReading>,
    /// Objects not the table's data as Athena reads it (`_` / `.` below the location).
    hidden: HiddenObjects,
}

/// One listed object and the partition values it belongs to (None: in no partition).
struct Found {
    place: Arc<Place>,
    meta: ObjectMeta,
    values: Option<Vec<String>>,
    /// Under a partitioned table's location in no partition: searched, never rewritten.
    outside: bool,
    /// Hidden (a `_` or `.` folder or name below its location; never a marker or empty
    /// object, which are skipped), and the `_temporary/` folder it is in, if any.
    hidden: bool,
    temporary: Option<String>,
}

impl Found {
    /// An object listed under `place`; its part below the table or partition location
    /// starts at byte `below` of its key; `names` are the table's partition keys.
    fn new(
        place: &Arc<Place>,
        meta: ObjectMeta,
        values: Option<Vec<String>>,
        below: usize,
        names: &[String],
    ) -> Self {
        let rest = meta.key.get(below..).unwrap_or(&meta.key);
        let hidden = skip_reason(&meta).is_none() && is_hidden(rest, names);
        let temporary = temporary_prefix(&meta.key, rest)
            .filter(|_| hidden)
            .map(str::to_owned);
        Self {
            place: place.clone(),
            meta,
            values,
            outside: false,
            hidden,
            temporary,
        }
    }
}

impl MapperListing {
    /// Groups objects by partition, prunes whole partitions no queued match can be in
    /// (counting each distinct partition as listed unless `counted`), skips markers and
    /// empty objects, sets hidden ones aside, and keeps the rest for search.
    fn add_found(
        &mut self,
        keys: &[PartitionKey],
        found: Vec<Found>,
        mapper: &MapperSnapshot,
        matches: &Matches,
        counted: bool,
    ) {
        let has_simple = !matches.simple.is_empty();
        let mut groups: BTreeMap<Option<Vec<String>>, Vec<Found>> = BTreeMap::new();
        for f in found {
            groups.entry(f.values.clone()).or_default().push(f);
        }
        let mut by_place: BTreeMap<(&'static str, String), Vec<ListedObject>> = BTreeMap::new();
        for (values, group) in groups {
            if let Some(values) = values.as_ref().filter(|_| !keys.is_empty()) {
                if !counted {
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
                    self.stats.partitions_pruned += 1;
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

/// Lists every object under each location, `concurrency` locations at a time: every
/// version of it, old ones (below a newer version or a delete marker) included.
async fn list_places(
    engine: &Engine,
    locations: Vec<String>,
    concurrency: usize,
) -> Result<Vec<(Arc<Place>, Vec<ObjectMeta>)>, TaskError> {
    let stores = &engine.stores;
    stream::iter(locations)
        .map(|location| async move {
            let place = Arc::new(stores.place(&location)?);
            let metas = list_all(
                place.store.as_ref(),
                &place.bucket,
                &dir_prefix(&place.prefix),
                true,
            )
            .await?;
            Ok::<_, TaskError>((place, metas))
        })
        .buffered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, TaskError>>()
}

/// A Glue table. Every object of the table is searched, wherever the catalog puts it:
/// an unpartitioned table's location; for a projected table (`projection.enabled`), the
/// objects at the paths its projection generates (see [`list_projected`]); otherwise the
/// table location *and* every registered partition's location, an object in a registered
/// partition's folder taking its values, any other its path's `key=value` values (a
/// partition the crawler has not registered yet), and an object in no partition at all
/// searched but never rewritten. Partitions are then pruned by value.
async fn list_glue(
    engine: &Engine,
    GlueTable { database, table }: &GlueTable,
    mapper: &MapperSnapshot,
    matches: &Matches,
    concurrency: usize,
) -> Result<MapperListing, TaskError> {
    let mut out = MapperListing::default();
    let def = engine.catalog.get_table(database, table).await?;
    if let Some(format) = def.table_format() {
        return Err(TaskError::Fatal(format!(
            "table {database}.{table}: {}",
            format.refusal()
        )));
    }
    if mapper.format == Format::Json {
        if let Some(why) = refusal(def.serde_library.as_deref(), &def.serde_parameters) {
            return Err(TaskError::Fatal(format!("table {database}.{table}: {why}")));
        }
        out.read_at_find = Some(table_reading(&mapper.columns, &def));
    }
    let keys = def.keys();
    let names = &def.partition_keys;
    // Glue places data on S3: a catalog entry naming a local path is refused (anyone
    // who can write the catalog could otherwise point Lethe at the host's files).
    for location in def
        .location
        .as_deref()
        .into_iter()
        .chain(def.location_template())
    {
        require_s3(database, table, location)?;
    }
    let no_location = || TaskError::Fatal(format!("table {database}.{table} has no location"));
    if keys.is_empty() {
        let location = def.location.clone().ok_or_else(no_location)?;
        let listed = list_places(engine, vec![location], 1).await?;
        refuse_table_formats(&listed, |_, _| true)?;
        let found = found_under(listed, &[], |_, _| Some(vec![]));
        out.add_found(&keys, found, mapper, matches, false);
        return Ok(out);
    }
    if def.projection_enabled() {
        let (root, projection, notes) = Projection::of_table(&def)
            .map_err(|e| TaskError::Fatal(format!("table {database}.{table}: {e}")))?;
        for note in notes {
            out.notes.push(("partition_projection", note));
        }
        let found = list_projected(engine, &root, &projection, &mut out).await?;
        out.add_found(&keys, found, mapper, matches, false);
        return Ok(out);
    }
    let registered = engine.catalog.list_partitions(database, table).await?;
    let table_place = match &def.location {
        Some(location) => {
            let place = engine.stores.place(location)?;
            Some((place.bucket, dir_prefix(&place.prefix)))
        }
        None => None,
    };
    // Where each registered partition lives (longest first: a nested location wins),
    // and the locations to list: the table's, and each partition's outside it.
    let mut homes: Vec<(String, String, &Vec<String>)> = Vec::new();
    let mut locations: Vec<String> = def.location.iter().cloned().collect();
    for p in registered.iter().filter(|p| !p.location.is_empty()) {
        require_s3(database, table, &p.location)?;
        let place = engine.stores.place(&p.location)?;
        let prefix = dir_prefix(&place.prefix);
        let inside = table_place
            .as_ref()
            .is_some_and(|(b, t)| *b == place.bucket && prefix.starts_with(t.as_str()));
        if !inside && !locations.contains(&p.location) {
            locations.push(p.location.clone());
        }
        homes.push((place.bucket, prefix, &p.values));
    }
    homes.sort_by_key(|(_, prefix, _)| std::cmp::Reverse(prefix.len()));
    if locations.is_empty() {
        return Err(no_location());
    }
    let listed = list_places(engine, locations, concurrency).await?;
    refuse_table_formats(&listed, |_, _| true)?;
    let mut seen = std::collections::HashSet::new();
    let mut unregistered = 0usize;
    let mut discovered = std::collections::BTreeSet::new();
    let mut found = Vec::new();
    for (place, metas) in listed {
        for meta in metas {
            let version = meta.version_id.clone();
            if !seen.insert((place.bucket.clone(), meta.key.clone(), version)) {
                continue;
            }
            let home = homes
                .iter()
                .find(|(b, prefix, _)| *b == place.bucket && meta.key.starts_with(prefix));
            // Hidden is judged below the partition's location, else the table's.
            let (values, below, by_path) = match home {
                Some((_, prefix, values)) => (Some((*values).clone()), prefix.len(), false),
                None => {
                    let below = match &table_place {
                        Some((_, p)) if meta.key.starts_with(p.as_str()) => p.len(),
                        _ => below_start(&meta.key, &dir_prefix(&place.prefix)),
                    };
                    (values_from_path(&meta.key[below..], names), below, true)
                }
            };
            let mut f = Found::new(&place, meta, values, below, names);
            f.outside = f.values.is_none();
            if let Some(v) = f.values.as_ref().filter(|_| by_path)
                && skip_reason(&f.meta).is_none()
                && !f.hidden
                && f.meta.noncurrent.is_none()
            {
                unregistered += 1;
                discovered.insert(v.clone());
            }
            found.push(f);
        }
    }
    let known: std::collections::BTreeSet<&Vec<String>> =
        registered.iter().map(|p| &p.values).collect();
    out.stats.partitions_listed =
        (known.len() + discovered.iter().filter(|v| !known.contains(v)).count()) as i64;
    if unregistered > 0 {
        out.notes.push((
            "unregistered_partition",
            format!(
                "{unregistered} object(s) in {} partition folder(s) not registered in the catalog: searched with the values of their path",
                discovered.len()
            ),
        ));
    }
    let location = def.location.clone().unwrap_or_default();
    note_unplaced(&mut out, &found, &location);
    out.add_found(&keys, found, mapper, matches, true);
    Ok(out)
}

/// A projected table: the objects under the fixed prefix of its template (or its location)
/// at the paths its projection generates, each with its values; any other object there is
/// not the table's: counted in `out`, never searched.
async fn list_projected(
    engine: &Engine,
    root: &str,
    projection: &Projection,
    out: &mut MapperListing,
) -> Result<Vec<Found>, TaskError> {
    let listed = list_places(engine, vec![root.to_owned()], 1).await?;
    refuse_table_formats(&listed, |place, meta| {
        projection.values(relative_to(place, &meta.key)).is_some()
    })?;
    let mut found = Vec::new();
    for (place, metas) in listed {
        for meta in metas {
            match projection.split(relative_to(&place, &meta.key)) {
                Some((values, name)) => {
                    let below = meta.key.len() - name.len();
                    found.push(Found::new(&place, meta, Some(values), below, &[]));
                }
                None if meta.noncurrent.is_some() => {}
                None => {
                    out.not_the_tables += 1;
                    if out.not_the_tables_examples.len() < MAX_NOT_THE_TABLES_EXAMPLES {
                        out.not_the_tables_examples.push(meta.key);
                    }
                }
            }
        }
    }
    Ok(found)
}

/// Where in `key` its part below `prefix` starts (0 when it is not under it).
fn below_start(key: &str, prefix: &str) -> usize {
    if key.starts_with(prefix) {
        prefix.len()
    } else {
        0
    }
}

/// A key relative to its listed place.
fn relative_to<'a>(place: &Place, key: &'a str) -> &'a str {
    let prefix = dir_prefix(&place.prefix);
    key.strip_prefix(prefix.as_str()).unwrap_or(key)
}

/// Fails when a table format's metadata folder (`_delta_log/`, `.hoodie/`, Iceberg's
/// `metadata/`) lies anywhere among the listed objects and an object of the table
/// (`of_table`) lies under that format table's root: its data files must not be
/// rewritten in place. Checked before anything of the mapper is searched.
fn refuse_table_formats(
    listed: &[(Arc<Place>, Vec<ObjectMeta>)],
    of_table: impl Fn(&Place, &ObjectMeta) -> bool,
) -> Result<(), TaskError> {
    let mut roots = std::collections::BTreeMap::new();
    for (i, (_, metas)) in listed.iter().enumerate() {
        // A format's old metadata (noncurrent, or behind a delete marker) is not a table.
        for meta in metas.iter().filter(|m| m.noncurrent.is_none()) {
            if let Some((format, root)) = TableFormat::locate(&meta.key) {
                roots
                    .entry((i, root.to_owned()))
                    .or_insert((format, meta.key.as_str()));
            }
        }
    }
    for ((i, root), (format, key)) in roots {
        let (place, metas) = &listed[i];
        let holds = metas
            .iter()
            .any(|m| m.key.starts_with(root.as_str()) && of_table(place, m));
        if holds {
            return Err(TaskError::Fatal(format!(
                "{} holds {key}: {}",
                place_name(place, &root),
                format.refusal()
            )));
        }
    }
    Ok(())
}

/// A key prefix of a place as a location (`s3://bucket/prefix`, `file:///prefix`).
pub(crate) fn place_name(place: &Place, prefix: &str) -> String {
    match place.scheme {
        "file" => format!("file:///{prefix}"),
        scheme => format!("{scheme}://{}/{prefix}", place.bucket),
    }
}

/// Fails unless a Glue location is on S3.
fn require_s3(database: &str, table: &str, location: &str) -> Result<(), TaskError> {
    if location.starts_with("s3://") {
        Ok(())
    } else {
        Err(TaskError::Fatal(format!(
            "table {database}.{table}: the Glue location {location:?} is not s3://"
        )))
    }
}

/// The listed objects with the partition values `values_of(relative key, place)` reads
/// (`names`: the table's partition keys).
fn found_under(
    listed: Vec<(Arc<Place>, Vec<ObjectMeta>)>,
    names: &[String],
    values_of: impl Fn(&str, &Place) -> Option<Vec<String>>,
) -> Vec<Found> {
    let mut found = Vec::new();
    for (place, metas) in listed {
        let prefix = dir_prefix(&place.prefix);
        for meta in metas {
            let below = below_start(&meta.key, &prefix);
            let values = values_of(&meta.key[below..], &place);
            found.push(Found::new(&place, meta, values, below, names));
        }
    }
    found
}

/// Warns about data objects under a partitioned table's location that sit in no partition
/// (none registered there, no `key=value` folders for every key): Athena does not read
/// them, so they are searched (their own columns deciding composite matches on partition
/// keys) but never rewritten, and the items they hold stay queued.
fn note_unplaced(out: &mut MapperListing, found: &[Found], location: &str) {
    let unplaced = found
        .iter()
        .filter(|f| f.values.is_none() && skip_reason(&f.meta).is_none() && !f.hidden)
        .filter(|f| f.meta.noncurrent.is_none())
        .count();
    if unplaced > 0 {
        out.notes.push((
            "object_outside_partitions",
            format!(
                "{unplaced} object(s) under {location} are in no partition: searched but never rewritten (rows outside the table's partitions keep their items queued)"
            ),
        ));
    }
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
    let listed = list_places(engine, vec![location.clone()], 1).await?;
    refuse_table_formats(&listed, |_, _| true)?;
    let found = found_under(listed, partition_keys, |relative, _| {
        values_from_path(relative, partition_keys)
    });
    out.add_found(
        &PartitionKey::untyped(partition_keys),
        found,
        mapper,
        matches,
        false,
    );
    Ok(out)
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
        let objects: usize = searches.iter().map(|s| s.objects.len()).sum();
        let mapper = &self.data_mapper_id;
        if let Some(reading) = &listing.read_at_find {
            mappers::set_read_at_find(&mut *tx, self.job_id, mapper, reading).await?;
        }
        enqueue_all(&mut *tx, self.job_id, &searches).await?;
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
        for (kind, message) in &listing.notes {
            event(
                &mut *tx,
                self.job_id,
                EventLevel::Warning,
                kind,
                message,
                json!({"data_mapper_id": mapper}),
            )
            .await?;
        }
        for key in &listing.not_the_tables_examples {
            event(
                &mut *tx,
                self.job_id,
                EventLevel::Info,
                "object_not_the_tables",
                &format!("{key} is at no path the table's partition projection generates: not the table's, not searched"),
                json!({"data_mapper_id": mapper, "key": key}),
            )
            .await?;
        }
        listing.hidden.record(&mut tx, self.job_id, mapper).await?;
        let s = &listing.stats;
        let others = listing.not_the_tables;
        let not_the_tables = match others {
            0 => String::new(),
            n => format!(
                "; {n} object(s) under the projection's prefix are not the table's (not searched)"
            ),
        };
        let hidden = &listing.hidden;
        let (temporaries, temporaries_not_named) = hidden.temporaries();
        event(
            &mut *tx,
            self.job_id,
            EventLevel::Info,
            "mapper_listed",
            &format!(
                "data mapper {mapper}: {} partition(s) listed, {} pruned; {} object(s) and {} old version(s) listed, {} skipped ({} of them hidden: not the table's data), {objects} to search{not_the_tables}",
                s.partitions_listed, s.partitions_pruned, s.objects_listed, s.old_versions_listed,
                s.objects_skipped, hidden.count,
            ),
            json!({"data_mapper_id": mapper, "tasks": searches.len(), "objects_to_search": objects,
                   "old_versions_listed": s.old_versions_listed,
                   "skipped_not_named": listing.skipped.len().saturating_sub(MAX_SKIP_EVENTS),
                   "objects_not_the_tables": others, "objects_hidden": hidden.count,
                   "hidden_not_recorded": hidden.not_recorded(),
                   "temporary_prefixes": temporaries,
                   "temporary_prefixes_not_named": temporaries_not_named}),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::data_mapper::TableDef;

    fn listed(keys: &[&str]) -> Vec<(Arc<Place>, Vec<ObjectMeta>)> {
        listed_at("s3://lake/", keys)
    }

    /// Objects of one byte under `location` (empty when the key ends with `_SUCCESS`).
    fn listed_at(location: &str, keys: &[&str]) -> Vec<(Arc<Place>, Vec<ObjectMeta>)> {
        let place = crate::storage::Stores::offline()
            .place(location)
            .expect("an s3 place");
        let metas = keys
            .iter()
            .map(|k| ObjectMeta {
                key: k.to_string(),
                size: u64::from(!k.ends_with("_SUCCESS")),
                etag: None,
                version_id: None,
                storage_class: None,
                archive_status: None,
                restore: None,
                noncurrent: None,
            })
            .collect();
        vec![(Arc::new(place), metas)]
    }

    fn tenant_first() -> Projection {
        let def = TableDef {
            partition_keys: vec!["tenant".into(), "dt".into()],
            parameters: [(
                "storage.location.template".to_owned(),
                "s3://lake/${tenant}/events/${dt}/".to_owned(),
            )]
            .into(),
            ..Default::default()
        };
        Projection::of_table(&def).expect("a projection").1
    }

    fn refused(keys: &[&str], projection: Option<&Projection>) -> Option<String> {
        let of_table = |place: &Place, meta: &ObjectMeta| {
            projection.is_none_or(|p| p.values(relative_to(place, &meta.key)).is_some())
        };
        match refuse_table_formats(&listed(keys), of_table) {
            Ok(()) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    #[test]
    fn a_table_format_at_any_depth_under_a_location_fails_the_mapper() {
        let keys = [
            "pm/plain/a.parquet",
            "pm/x/sales/a.parquet",
            "pm/x/sales/_delta_log/0.json",
        ];
        let error = refused(&keys, None).expect("refused");
        assert!(error.contains("s3://lake/pm/x/sales/"), "{error}");
        assert!(error.contains("Delta Lake"), "{error}");
        let iceberg = ["a/b/ice/data/a.parquet", "a/b/ice/metadata/1.metadata.json"];
        assert!(refused(&iceberg, None).unwrap().contains("Apache Iceberg"));
        assert_eq!(refused(&["pm/metadata/a.parquet"], None), None);
    }

    #[test]
    fn under_a_projection_only_a_format_over_the_tables_objects_fails_it() {
        let p = tenant_first();
        let own = "acme/events/2024-01-01/a.json";
        // A Delta table beside the projected one, under the same prefix: not its concern.
        let beside = [
            own,
            "acme/orders/a.parquet",
            "acme/orders/_delta_log/0.json",
        ];
        assert_eq!(refused(&beside, Some(&p)), None);
        // A Delta table whose root holds the table's objects, or a log inside a partition.
        let above = [own, "acme/_delta_log/0.json"];
        assert!(refused(&above, Some(&p)).is_some());
        let inside = [own, "acme/events/2024-01-01/_delta_log/0.json"];
        assert!(refused(&inside, Some(&p)).is_some());
    }

    #[test]
    fn hidden_objects_are_judged_below_the_location_they_were_listed_under() {
        let keys = [
            "_raw/t/dt=1/part-0.parquet",
            "_raw/t/dt=__HIVE_DEFAULT_PARTITION__/part-0.parquet",
            "_raw/t/dt=1/_temporary/0/part-0.parquet",
            "_raw/t/dt=1/.part-0.parquet.crc",
            "_raw/t/_common_metadata",
            "_raw/t/dt=1/_SUCCESS",
        ];
        let names = ["dt".to_owned()];
        let found = found_under(listed_at("s3://lake/_raw/t/", &keys), &names, |r, _| {
            values_from_path(r, &names)
        });
        let hidden: Vec<(&str, Option<&str>)> = found
            .iter()
            .filter(|f| f.hidden)
            .map(|f| (f.meta.key.as_str(), f.temporary.as_deref()))
            .collect();
        assert_eq!(
            hidden,
            [
                (keys[2], Some("_raw/t/dt=1/_temporary/")),
                (keys[3], None),
                (keys[4], None),
            ],
            "the location's own `_raw` hides nothing; a marker is skipped, not hidden"
        );
    }

    #[test]
    fn a_delta_log_fails_the_mapper_though_it_is_hidden() {
        // The format check runs on the listing before anything is hidden.
        assert!(crate::domain::hidden::is_hidden("_delta_log/0.json", &[]));
        let keys = ["t/dt=1/part-0.parquet", "t/_delta_log/0.json"];
        let error = refused(&keys, None).expect("refused");
        assert!(error.contains("Delta Lake"), "{error}");
    }
}
