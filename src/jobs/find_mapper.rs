//! `find.mapper` (one per data mapper of a job): resolve the table (Glue or a `path`
//! layout) and its locations, then list them page by page: each page's objects are placed
//! in their partitions, pruned where no queued match can be, skipped (markers, empty
//! objects), set aside (hidden ones, `find_hidden`), and the rest enqueued as
//! `find.objects` tasks of a few objects each — in the transaction that saves where the
//! listing stands (`db::job_listing`). A killed worker's successor resumes after the last
//! recorded page, and memory holds one page, whatever the table's size.
//!
//! Only the table's own objects are listed as its: a projected table's are those at the
//! paths its projection generates (`domain::projection`); an object of a partitioned
//! table in no partition is searched but marked never to be rewritten.
//!
//! A missing table, denied access or a table format's metadata folder over any of the
//! table's objects (checked on each page before hiding: `_delta_log/` is hidden) fails
//! the mapper (the job ends `find_failed`, nothing written: searches already enqueued only
//! read, and forget starts only once every mapper's listing is recorded).
//! Events carry keys and counts, never match ids.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::db::job::{self as jobs, JobStats};
use crate::db::job_data_mapper::{self as mappers, MapperSnapshot, TableReading};
use crate::db::job_listing as progress_db;
use crate::db::task::{begin_bookkeeping, mark_recorded, progressed};
use crate::domain::data_mapper::{CatalogRef, GlueTable, PathTable, TableDef, TableFormat};
use crate::domain::hidden::{is_hidden, temporary_prefix};
use crate::domain::job::{EventLevel, MapperState};
use crate::domain::partition::{PartitionKey, may_hold, values_from_path};
use crate::domain::prefix::dir_prefix;
use crate::domain::projection::Projection;
use crate::jobs::find_hidden::{HiddenObjects, MAX_TEMPORARY_EVENTS};
use crate::jobs::find_objects::{FindObjects, ListedObject, OldVersion};
use crate::jobs::lifecycle::{self, event};
use crate::jobs::matches::{Matches, load_matches, records_for, table_reading};
use crate::jobs::tasks::{Task, TaskError};
use crate::jobs::{Context, Engine, JobTask, enqueue_all};
use crate::storage::{ObjectMeta, Place, skip_reason};

/// Objects per `find.objects` task.
const OBJECTS_PER_TASK: usize = 16;
/// Skipped objects named one by one in the events, per mapper (the rest are counted).
const MAX_SKIP_EVENTS: usize = 50;
/// Keys under a projection's prefix that are not the table's, named in its events.
const MAX_NOT_THE_TABLES_EXAMPLES: usize = 5;
/// Table-format roots whose check is remembered across pages (a projected table's).
const MAX_FORMAT_ROOTS_KEPT: usize = 1000;

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

/// How a table is listed: its locations and how each listed object is placed.
struct Plan {
    /// Listed one after the other, page by page; none inside another.
    locations: Vec<String>,
    keys: Vec<PartitionKey>,
    layout: Layout,
    /// A Glue table's types, SerDe and columns as read now (kept in the job's snapshot).
    read_at_find: Option<TableReading>,
    /// Warnings about how the table is listed (events).
    notes: Vec<(&'static str, String)>,
}

/// How a listed object finds its partition.
enum Layout {
    /// Unpartitioned: every object in the one partition of no values.
    Unpartitioned,
    /// A `path` table: the `key=value` segments below the location.
    Path { names: Vec<String> },
    /// A projected Glue table: the paths its projection generates; any other object under
    /// its prefix is not the table's.
    Projected(Projection),
    /// A partitioned Glue table: an object in a registered partition's folder takes its
    /// values (`homes`, longest first), any other its path's `key=value` values (a
    /// partition the crawler has not registered yet), else it is in no partition.
    Registered {
        names: Vec<String>,
        homes: Vec<(String, String, Vec<String>)>,
        table_place: Option<(String, String)>,
        registered: BTreeSet<Vec<String>>,
    },
}

impl Layout {
    /// Partitions are counted from the catalog (plus those discovered by path), not per
    /// listed group.
    fn counted(&self) -> bool {
        matches!(self, Layout::Registered { .. })
    }

    fn projection(&self) -> Option<&Projection> {
        match self {
            Layout::Projected(p) => Some(p),
            _ => None,
        }
    }
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
    /// Table-format roots found holding none of the table's objects (projected tables).
    format_roots_checked: Vec<String>,
}

/// What a listing is for: the table's plan, the mapper and the queued matches.
struct Scope<'a> {
    plan: &'a Plan,
    mapper: &'a MapperSnapshot,
    matches: &'a Matches,
}

/// One listed page, placed.
struct Page {
    found: Vec<Found>,
    /// Partitions found by path, not registered.
    discovered: Vec<Vec<String>>,
    /// The token of the location's next page (None: its last).
    next: Option<String>,
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

    /// A data object of the current listing (not a marker, hidden or old version).
    fn is_current_data(&self) -> bool {
        skip_reason(&self.meta).is_none() && !self.hidden && self.meta.noncurrent.is_none()
    }
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
        found: Vec<Found>,
        mapper: &MapperSnapshot,
        matches: &Matches,
        counted: bool,
        is_new: impl Fn(&[String]) -> bool,
    ) {
        let has_simple = !matches.simple.is_empty();
        let mut groups: BTreeMap<Option<Vec<String>>, Vec<Found>> = BTreeMap::new();
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

/// Resolves a mapper's table: its locations and layout.
async fn plan(engine: &Engine, mapper: &MapperSnapshot) -> Result<Plan, TaskError> {
    match &mapper.catalog {
        CatalogRef::Glue(table) => plan_glue(engine, table, mapper).await,
        CatalogRef::Path(PathTable {
            location,
            partition_keys,
            ..
        }) => {
            // Options a format cannot read exactly fail the mapper before any search.
            records_for(mapper.format, None, &mapper.catalog).map_err(TaskError::Fatal)?;
            Ok(Plan {
                locations: vec![location.clone()],
                keys: PartitionKey::untyped(partition_keys),
                layout: Layout::Path {
                    names: partition_keys.clone(),
                },
                read_at_find: None,
                notes: Vec::new(),
            })
        }
    }
}

/// A Glue table. Every object of the table is searched, wherever the catalog puts it:
/// an unpartitioned table's location; for a projected table (`projection.enabled`), the
/// objects at the paths its projection generates (under the fixed prefix of its template);
/// otherwise the table location *and* every registered partition's location outside it
/// (see [`Layout::Registered`]). Partitions are then pruned by value.
async fn plan_glue(
    engine: &Engine,
    GlueTable { database, table }: &GlueTable,
    mapper: &MapperSnapshot,
) -> Result<Plan, TaskError> {
    let def = engine.catalog.get_table(database, table).await?;
    if let Some(format) = def.table_format() {
        return Err(TaskError::Fatal(format!(
            "table {database}.{table}: {}",
            format.refusal()
        )));
    }
    // How the table's objects are read (a SerDe or settings Lethe cannot read exactly
    // fail the mapper here, before any object is searched).
    let reading = table_reading(&mapper.columns, &def);
    let records = records_for(mapper.format, Some(&reading), &mapper.catalog)
        .map_err(|why| TaskError::Fatal(format!("table {database}.{table}: {why}")))?;
    let read_at_find = Some(reading);
    let keys = def.keys();
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
        return Ok(Plan {
            locations: vec![location],
            keys,
            layout: Layout::Unpartitioned,
            read_at_find,
            notes: Vec::new(),
        });
    }
    if def.projection_enabled() {
        let (root, projection, notes) = Projection::of_table(&def)
            .map_err(|e| TaskError::Fatal(format!("table {database}.{table}: {e}")))?;
        return Ok(Plan {
            locations: vec![root],
            keys,
            layout: Layout::Projected(projection),
            read_at_find,
            notes: notes
                .into_iter()
                .map(|n| ("partition_projection", n))
                .collect(),
        });
    }
    let reads_serde = records.reads_serde();
    let (locations, layout) = plan_registered(engine, (database, table), &def, reads_serde).await?;
    Ok(Plan {
        locations,
        keys,
        layout,
        read_at_find,
        notes: Vec::new(),
    })
}

/// A partitioned Glue table without projection: the table location and every registered
/// partition's location outside it are listed, and each registered partition's folder
/// places its objects (see [`Layout::Registered`]).
async fn plan_registered(
    engine: &Engine,
    (database, table): (&str, &str),
    def: &TableDef,
    reads_serde: bool,
) -> Result<(Vec<String>, Layout), TaskError> {
    let no_location = || TaskError::Fatal(format!("table {database}.{table} has no location"));
    let registered = engine.catalog.list_partitions(database, table).await?;
    // A text table's partition read through another SerDe or delimiter than the table's
    // would be misread (every row a silent miss): refused.
    let table_serde = (def.serde_library.as_deref(), &def.serde_parameters);
    if let Some(why) = registered
        .iter()
        .filter(|_| reads_serde)
        .find_map(|p| p.serde_differs(table_serde.0, table_serde.1))
    {
        return Err(TaskError::Fatal(format!("table {database}.{table}: {why}")));
    }
    let table_place = match &def.location {
        Some(location) => {
            let place = engine.stores.place(location)?;
            Some((place.bucket, dir_prefix(&place.prefix)))
        }
        None => None,
    };
    // Where each registered partition lives (longest first: a nested location wins),
    // and the locations to list: the table's, and each partition's outside it.
    let mut homes: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut locations: Vec<(String, String, String)> = Vec::new();
    if let (Some(location), Some((bucket, prefix))) = (&def.location, &table_place) {
        locations.push((bucket.clone(), prefix.clone(), location.clone()));
    }
    for p in registered.iter().filter(|p| !p.location.is_empty()) {
        require_s3(database, table, &p.location)?;
        let place = engine.stores.place(&p.location)?;
        let prefix = dir_prefix(&place.prefix);
        locations.push((place.bucket.clone(), prefix.clone(), p.location.clone()));
        homes.push((place.bucket, prefix, p.values.clone()));
    }
    homes.sort_by_key(|(_, prefix, _)| std::cmp::Reverse(prefix.len()));
    let locations = outermost(locations);
    if locations.is_empty() {
        return Err(no_location());
    }
    let layout = Layout::Registered {
        names: def.partition_keys.clone(),
        homes,
        table_place,
        registered: registered.into_iter().map(|p| p.values).collect(),
    };
    Ok((locations, layout))
}

/// The locations (bucket, key prefix, location) none of which lies inside another, in
/// their first order: an object is listed once, under the outermost location holding it.
fn outermost(locations: Vec<(String, String, String)>) -> Vec<String> {
    let mut kept: Vec<(String, String, String)> = Vec::new();
    for (i, (bucket, prefix, location)) in locations.iter().enumerate() {
        let inside = locations.iter().enumerate().any(|(j, (b, p, _))| {
            j != i && b == bucket && prefix.starts_with(p.as_str()) && (p != prefix || j < i)
        });
        if !inside {
            kept.push((bucket.clone(), prefix.clone(), location.clone()));
        }
    }
    kept.into_iter().map(|(_, _, location)| location).collect()
}

impl Plan {
    /// Places one page's objects listed under `place` in their partitions, counting in
    /// `progress` what the listing's events tell (objects not the table's, unregistered
    /// and unplaced ones); also returns the partitions found by path, not registered.
    fn place_objects(
        &self,
        place: &Arc<Place>,
        metas: Vec<ObjectMeta>,
        progress: &mut Progress,
    ) -> (Vec<Found>, Vec<Vec<String>>) {
        let mut found = Vec::with_capacity(metas.len());
        let mut discovered = Vec::new();
        let prefix = dir_prefix(&place.prefix);
        for meta in metas {
            match &self.layout {
                Layout::Unpartitioned => {
                    let below = below_start(&meta.key, &prefix);
                    found.push(Found::new(place, meta, Some(vec![]), below, &[]));
                }
                Layout::Path { names } => {
                    let below = below_start(&meta.key, &prefix);
                    let values = values_from_path(&meta.key[below..], names);
                    found.push(Found::new(place, meta, values, below, names));
                }
                Layout::Projected(projection) => {
                    match projection.split(relative_to(place, &meta.key)) {
                        Some((values, name)) => {
                            let below = meta.key.len() - name.len();
                            found.push(Found::new(place, meta, Some(values), below, &[]));
                        }
                        None if meta.noncurrent.is_some() => {}
                        None => {
                            progress.not_the_tables += 1;
                            if progress.not_the_tables_examples.len() < MAX_NOT_THE_TABLES_EXAMPLES
                            {
                                progress.not_the_tables_examples.push(meta.key);
                            }
                        }
                    }
                }
                Layout::Registered {
                    names,
                    homes,
                    table_place,
                    registered,
                } => {
                    let home = homes
                        .iter()
                        .find(|(b, p, _)| *b == place.bucket && meta.key.starts_with(p.as_str()));
                    // Hidden is judged below the partition's location, else the table's.
                    let (values, below, by_path) = match home {
                        Some((_, p, values)) => (Some(values.clone()), p.len(), false),
                        None => {
                            let below = match table_place {
                                Some((_, p)) if meta.key.starts_with(p.as_str()) => p.len(),
                                _ => below_start(&meta.key, &prefix),
                            };
                            (values_from_path(&meta.key[below..], names), below, true)
                        }
                    };
                    let mut f = Found::new(place, meta, values, below, names);
                    f.outside = f.values.is_none();
                    if f.is_current_data() {
                        match &f.values {
                            Some(v) if by_path => {
                                progress.unregistered += 1;
                                if !registered.contains(v) {
                                    discovered.push(v.clone());
                                }
                            }
                            Some(_) => {}
                            None => progress.unplaced += 1,
                        }
                    }
                    found.push(f);
                }
            }
        }
        (found, discovered)
    }
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
/// `metadata/`) lies among `metas` (listed under `place`) and an object of the table
/// (`of_table`) among them lies under that format table's root: its data files must not be
/// rewritten in place.
fn refuse_table_formats(
    place: &Place,
    metas: &[ObjectMeta],
    of_table: impl Fn(&Place, &ObjectMeta) -> bool,
) -> Result<(), TaskError> {
    let mut roots = BTreeMap::new();
    // A format's old metadata (noncurrent, or behind a delete marker) is not a table.
    for meta in metas.iter().filter(|m| m.noncurrent.is_none()) {
        if let Some((format, root)) = TableFormat::locate(&meta.key) {
            roots
                .entry(root.to_owned())
                .or_insert((format, meta.key.as_str()));
        }
    }
    for (root, (format, key)) in roots {
        let holds = metas
            .iter()
            .any(|m| m.key.starts_with(root.as_str()) && of_table(place, m));
        if holds {
            return Err(TaskError::Fatal(format!(
                "{} holds {key}: {}",
                place.location_of(&root),
                format.refusal()
            )));
        }
    }
    Ok(())
}

/// [`refuse_table_formats`] for one page: any format metadata fails a table that is not
/// projected (its location holds it); under a projection, each format root the page
/// shows is listed whole (once per listing, remembered in `checked`) for an object at a
/// path the projection generates.
async fn refuse_formats_in_page(
    place: &Place,
    metas: &[ObjectMeta],
    projection: Option<&Projection>,
    checked: &mut Vec<String>,
) -> Result<(), TaskError> {
    let Some(projection) = projection else {
        return refuse_table_formats(place, metas, |_, _| true);
    };
    let of_table = |p: &Place, m: &ObjectMeta| projection.values(relative_to(p, &m.key)).is_some();
    let mut seen = HashSet::new();
    for meta in metas.iter().filter(|m| m.noncurrent.is_none()) {
        let Some((_, root)) = TableFormat::locate(&meta.key) else {
            continue;
        };
        if checked.iter().any(|c| c == root) || !seen.insert(root.to_owned()) {
            continue;
        }
        let mut next = None;
        loop {
            let mut page = place
                .store
                .list_versions_page(&place.bucket, root, next)
                .await?;
            page.objects.push(meta.clone());
            refuse_table_formats(place, &page.objects, of_table)?;
            match page.next {
                Some(token) => next = Some(token),
                None => break,
            }
        }
        if checked.len() < MAX_FORMAT_ROOTS_KEPT {
            checked.push(root.to_owned());
        }
    }
    Ok(())
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
                locations: plan.locations.clone(),
                ..Progress::default()
            },
        };
        if progress.pages > 0 {
            tracing::info!(job.id = %self.job_id, data_mapper = %self.data_mapper_id, pages = progress.pages, "resuming a listing");
        }
        while let Some(location) = progress.locations.get(progress.location).cloned() {
            let place = Arc::new(engine.stores.place(&location)?);
            let page = place
                .store
                .list_versions_page(
                    &place.bucket,
                    &dir_prefix(&place.prefix),
                    progress.next.clone(),
                )
                .await?;
            refuse_formats_in_page(
                &place,
                &page.objects,
                plan.layout.projection(),
                &mut progress.format_roots_checked,
            )
            .await?;
            let (found, discovered) = plan.place_objects(&place, page.objects, &mut progress);
            let page = Page {
                found,
                discovered,
                next: page.next,
            };
            let scope = Scope {
                plan: &plan,
                mapper,
                matches,
            };
            self.record_page(ctx, task, &scope, page, &mut progress)
                .await?;
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
        Page {
            found,
            discovered,
            next,
        }: Page,
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
            .filter(|_| !plan.keys.is_empty())
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
            &plan.keys,
            found,
            mapper,
            matches,
            plan.layout.counted(),
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
                &format!("{key} is at no path the table's partition projection generates: not the table's, not searched"),
                json!({"data_mapper_id": mapper, "key": key}),
            )
            .await?;
        }
        HiddenObjects::record_temporaries(&mut tx, job_id, mapper, &progress.temporaries).await?;
        // Registered partitions are counted from the catalog, once.
        let mut end = JobStats::default();
        if let Layout::Registered { registered, .. } = &plan.layout {
            end.partitions_listed = registered.len() as i64;
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
        let mut notes = plan.notes.clone();
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
        n => format!(
            "; {n} object(s) under the projection's prefix are not the table's (not searched)"
        ),
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
        let listed = listed(keys);
        let (place, metas) = &listed[0];
        match refuse_table_formats(place, metas, of_table) {
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
        let names = vec!["dt".to_owned()];
        let plan = Plan {
            locations: vec!["s3://lake/_raw/t/".into()],
            keys: PartitionKey::untyped(&names),
            layout: Layout::Path { names },
            read_at_find: None,
            notes: Vec::new(),
        };
        let (place, metas) = listed_at("s3://lake/_raw/t/", &keys).remove(0);
        let (found, _) = plan.place_objects(&place, metas, &mut Progress::default());
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
    fn a_location_inside_another_is_not_listed_again() {
        let at = |b: &str, p: &str| (b.to_owned(), p.to_owned(), format!("s3://{b}/{p}"));
        let kept = outermost(vec![
            at("lake", "t/"),
            at("lake", "t/dt=1/"),
            at("other", "p/"),
            at("other", "p/x/"),
            at("other", "p/"),
            at("other", "pq/"),
        ]);
        assert_eq!(kept, ["s3://lake/t/", "s3://other/p/", "s3://other/pq/"]);
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
