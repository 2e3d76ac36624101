//! `commit.table`: one data mapper's rewrites of a table format's data files (Apache
//! Iceberg), made the table's by one copy-on-write snapshot, after every forget of the
//! job has ended (the forget barrier).
//!
//! Forget wrote each rewrite to a new data file beside the old one and recorded it
//! `written` (`object::forget`). This task then, against the table as its Glue entry
//! names it now (never as find read it: a writer may have committed since):
//! 1. reads the current metadata, every manifest list and manifest;
//! 2. plans: a rewrite whose old data file is live in the current snapshot replaces it
//!    (with its own metrics, computed from the new file's footer under the table's
//!    metrics mode); one whose every row was removed only drops the old file; an old data
//!    file only older snapshots hold needs no new snapshot (the purge expires them). What
//!    the plan cannot do exactly is refused: a position delete file committed since
//!    forget applied the live ones (`object::deletes`) that deletes rows of a replaced
//!    file, one the rewrite applied that the table no longer holds (rolled back), a
//!    format version 1 current snapshot naming its manifests
//!    directly (legacy `manifests`, no manifest list). Format versions 1 and 2 are
//!    committed alike, each in its own version's files (`lakefile::iceberg::commit`);
//! 3. writes the new manifests, manifest list and `metadata.json` where no object is,
//!    then moves the Glue entry from the metadata read to the new one (`UpdateTable`
//!    conditioned on it). Another commit in between makes it read the table again and
//!    plan anew on top of it (bounded): the other writer's snapshot is kept, never
//!    overwritten;
//! 4. reads the committed metadata back: every new file live, no old one;
//! 5. records the commit, the objects needing no snapshot as verified (their unneeded
//!    new files deleted), and enqueues `verify.object` for each committed rewrite, in one
//!    transaction fenced by the task's lease.
//!
//! The snapshot's summary names the job and mapper (`lethe.commit`): a rerun after a
//! crash between the Glue update and its record finds its own snapshot and records it,
//! never committing twice. A refused commit deletes the job's new files (nothing of the
//! table changes) and fails its objects: their subjects stay queued.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::catalog::source::iceberg_files::{
    TableFiles, all_data_files, metadata_location, read_table, s3 as s3_path, write_new,
};
use crate::catalog::{CommitError, source::SourceError};
use crate::db::job::JobStats;
use crate::db::job_data_mapper::{self, MapperSnapshot, TableCommit};
use crate::db::job_object::{self as objects, JobObject, ObjectUpdate};
use crate::db::task::{begin_bookkeeping, mark_recorded};
use crate::domain::data_mapper::CatalogRef;
use crate::domain::job::{EventLevel, ForgetState};
use crate::jobs::lifecycle::event;
use crate::jobs::object::ObjectTask;
use crate::jobs::object::verify::Verify;
use crate::jobs::tasks::{Task, TaskError};
use crate::jobs::{Context, Engine, JobTask, enqueue_all};
use crate::lakefile::iceberg::commit::{
    Commit, Current, NewSnapshot, Replacement, overwrite_retiring,
};
use crate::lakefile::iceberg::metrics::data_file_metrics;
use crate::lakefile::iceberg::{Referenced, TableMetadata, live_in};
use crate::storage::StorageError;

/// The snapshot summary property naming the job and mapper a commit was made for.
pub const COMMIT_PROPERTY: &str = "lethe.commit";

/// Plans made again when other writers keep committing, before the objects fail.
const MAX_MOVES: usize = 5;

/// Commits one mapper's rewritten data files as one snapshot of its table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitTable {
    pub job_id: Uuid,
    pub data_mapper_id: String,
}

#[async_trait]
impl JobTask for CommitTable {
    const KIND: &'static str = "commit.table";
    const MAX_ATTEMPTS: i32 = 5;

    fn job_id(&self) -> Uuid {
        self.job_id
    }

    async fn run(&self, ctx: &Context, task: &Task) -> Result<(), TaskError> {
        let db = &ctx.engine.db;
        if job_data_mapper::table_commit(db, self.job_id, &self.data_mapper_id)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let (mapper, table, engine) = glue_table(ctx, self.job_id, &self.data_mapper_id).await?;
        let written = objects::of_mapper_in_state(
            db,
            self.job_id,
            &self.data_mapper_id,
            ForgetState::Written,
        )
        .await?;
        let c = Committer {
            ctx,
            p: self,
            engine,
            table,
            mapper: &mapper,
            written,
            searched: Default::default(),
        };
        for _ in 0..MAX_MOVES {
            match c.attempt().await {
                Ok(Attempt::Done(outcome)) => return c.record(task, *outcome).await,
                Ok(Attempt::Moved(now)) => c.moved(now.as_deref()).await?,
                Err(Failure::Refused(why)) => return c.refuse(task, &why).await,
                Err(Failure::Task(e)) => return Err(e),
            }
        }
        let why = format!("the table changed {MAX_MOVES} times while Lethe committed to it");
        c.refuse(task, &why).await
    }
}

/// A table task's mapper as the job snapshotted it, its Glue table (database, name) and
/// the engine signing as the mapper's role.
pub(super) async fn glue_table(
    ctx: &Context,
    job_id: Uuid,
    mapper: &str,
) -> Result<(MapperSnapshot, (String, String), Engine), TaskError> {
    let mapper = job_data_mapper::get(&ctx.engine.db, job_id, mapper).await?;
    let CatalogRef::Glue(glue) = &mapper.catalog else {
        return Err(TaskError::Fatal(
            "a table format's table is a Glue table".into(),
        ));
    };
    let table = (glue.database.clone(), glue.table.clone());
    let engine = ctx.engine.for_mapper(&mapper, job_id)?;
    Ok((mapper, table, engine))
}

/// Whether the data file at `location` (its current version) holds any of the queued
/// matches of mapper `name` of job `job`, searched as find searches.
pub(super) async fn holds_matches(
    (ctx, engine, mapper): (&Context, &Engine, &MapperSnapshot),
    (job, name): (Uuid, &str),
    location: &str,
) -> Result<bool, Failure> {
    use crate::jobs::find::{ObjectFindError, ObjectRef, search_object};
    use crate::lakefile::format::Matching;
    let place = engine.stores.place(location)?;
    let size = place.store.head(&place.bucket, &place.prefix).await?.size;
    let (sets, _) =
        (ctx.sets.get(&engine.db, job, name, &[]).await).map_err(|e| Failure::Task(e.into()))?;
    let (ids, _) = sets.for_partition(None);
    let records = sets.records().map_err(Failure::Refused)?;
    let m = Matching {
        columns: &mapper.columns,
        ids: &ids,
        every_row: false,
        max_record: engine.max_line_bytes,
        field_ids: mapper.field_ids(),
        drop_rows: &[],
    };
    let object = ObjectRef {
        bucket: &place.bucket,
        key: &place.prefix,
        version_id: None,
        size,
    };
    match search_object(place.store.as_ref(), &object, records, m).await {
        Ok((r, _)) => Ok(r.rows_matched > 0),
        Err(ObjectFindError::Storage(e)) => Err(e.into()),
        Err(e) => Err(Failure::Refused(format!(
            "data file {location}, committed by another writer, cannot be searched: {e}"
        ))),
    }
}

/// The snapshot as built, read back from its own bytes before anything is written: its
/// metadata parses with the new snapshot current, and the data files it holds live are
/// exactly those of the current snapshot (`before`) with each replaced file swapped for
/// its rewrite (none when every row was erased), no other gained or lost.
fn check_built(
    manifests: &BTreeMap<String, Vec<u8>>,
    (commit, snapshot): (&Commit, i64),
    before: &Referenced,
    (replaced, retired): (&BTreeMap<String, Replacement>, &BTreeSet<String>),
) -> Result<(), String> {
    let parsed = TableMetadata::parse(&commit.metadata)?;
    let list = parsed
        .snapshots
        .iter()
        .find(|s| Some(s.snapshot_id) == parsed.current_snapshot_id && s.snapshot_id == snapshot)
        .and_then(|s| s.manifest_list.as_deref())
        .ok_or("the metadata built does not make its new snapshot current")?;
    let mut all = manifests.clone();
    all.extend(commit.files.iter().cloned());
    let bytes = all
        .get(list)
        .ok_or("the manifest list built is not among the files built")?;
    let live = live_in(bytes, &all)?;
    let mut expected = before.data_files.clone();
    for (old, r) in replaced {
        expected.remove(old);
        expected.extend(r.new_path.clone());
    }
    if live.data_files != expected {
        return Err("the snapshot built does not hold exactly the current data files with each replaced one swapped for its rewrite".into());
    }
    let deletes: BTreeSet<String> = before
        .position_deletes
        .difference(retired)
        .cloned()
        .collect();
    if live.position_deletes != deletes {
        return Err("the snapshot built does not hold exactly the current position delete files less those retired".into());
    }
    Ok(())
}

/// Refuses a rewrite that applied a delete file readers do not apply to its data file
/// (older than it, or of another partition): the rewrite would drop rows the table shows.
/// `applied`: each replaced file's delete files by `s3://` location; `replaced`: those
/// locations to the paths the manifests write.
fn check_applicable(
    (files, list): (&TableFiles, &[u8]),
    replaced: &BTreeMap<String, &String>,
    applied: &BTreeMap<String, BTreeSet<String>>,
) -> Result<(), String> {
    use crate::lakefile::iceberg::deletes::{applies, placements};
    if applied.values().all(BTreeSet::is_empty) {
        return Ok(());
    }
    let placed = placements(list, &files.manifests)?;
    let by_location: BTreeMap<String, &crate::lakefile::iceberg::deletes::Placement> =
        placed.iter().map(|(p, at)| (s3_path(p), at)).collect();
    for (location, deletes) in applied {
        let data = replaced
            .get(location)
            .and_then(|raw| placed.get(*raw))
            .ok_or_else(|| format!("data file {location} is not live in the current snapshot"))?;
        for delete in deletes {
            let at = by_location
                .get(delete)
                .ok_or_else(|| format!("position delete file {delete} is not live"))?;
            if !applies(at, data, unpartitioned(&files.metadata, at.spec_id)) {
                return Err(format!(
                    "position delete file {delete} does not apply to {location} as readers decide (older than it, or of another partition), but its rewrite left out the rows it names"
                ));
            }
        }
    }
    Ok(())
}

/// Whether partition spec `spec_id` of the table has no field.
fn unpartitioned(metadata: &serde_json::Value, spec_id: i64) -> bool {
    let specs = metadata["partition-specs"].as_array();
    let spec = specs.and_then(|s| s.iter().find(|s| s["spec-id"].as_i64() == Some(spec_id)));
    match spec {
        Some(spec) => spec["fields"].as_array().is_none_or(Vec::is_empty),
        None => metadata["partition-spec"]
            .as_array()
            .is_some_and(Vec::is_empty),
    }
}

/// The position delete files snapshot `id` of `files` holds live; None when it cannot be
/// read (then no delete file counts as retired: the purge leaves them unreferenced rather
/// than delete one still needed).
fn deletes_of(files: &TableFiles, id: i64) -> Option<BTreeSet<String>> {
    let list = files
        .parsed
        .snapshots
        .iter()
        .find(|s| s.snapshot_id == id)
        .and_then(|s| s.manifest_list.as_deref())
        .and_then(|list| files.manifest_lists.get(list))?;
    live_in(list, &files.manifests)
        .ok()
        .map(|live| live.position_deletes)
}

/// What one attempt came to.
enum Attempt {
    Done(Box<Outcome>),
    /// Another writer committed first (the entry's location now, when known).
    Moved(Option<String>),
}

/// Why an attempt stopped: the table cannot take the commit (the objects fail, nothing
/// of the table changes), or the task's own error.
pub(super) enum Failure {
    Refused(String),
    Task(TaskError),
}

impl From<SourceError> for Failure {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Refused(why) => Failure::Refused(why),
            other => Failure::Task(other.into()),
        }
    }
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        Failure::Task(e.into())
    }
}

/// An error once the table may hold Lethe's commit: the task's (it runs again and finds
/// its commit), never a refusal (which would delete the new files).
fn after_commit(why: String) -> Failure {
    Failure::Task(TaskError::Retryable(format!(
        "reading the table after Lethe's commit: {why}"
    )))
}

/// A commit that is the table's: the snapshots and metadata before and after, the
/// objects it made the table's and those that needed no new file.
struct Outcome {
    record: TableCommit,
    committed: Vec<i64>,
    settled: Vec<i64>,
}

struct Committer<'a> {
    ctx: &'a Context,
    p: &'a CommitTable,
    engine: Engine,
    table: (String, String),
    mapper: &'a MapperSnapshot,
    written: Vec<JobObject>,
    /// The data files known to hold no queued match: those find searched (read from its
    /// metadata when first needed) and those this task searched since.
    searched: std::sync::Mutex<Option<BTreeSet<String>>>,
}

/// The new file `key` (beside the old one) as the metadata writes the old file's `path`:
/// in its folder, with its scheme (`s3a://` stays `s3a://`: Hadoop S3A readers know no
/// other).
fn beside(path: &str, key: &str) -> String {
    let name = key.rsplit('/').next().unwrap_or(key);
    match path.rsplit_once('/') {
        Some((folder, _)) => format!("{folder}/{name}"),
        None => name.to_owned(),
    }
}

/// The location of `key` in the object's bucket.
fn s3(o: &JobObject, key: &str) -> String {
    format!("s3://{}/{key}", o.bucket)
}

impl Committer<'_> {
    fn tag(&self) -> String {
        format!("{}/{}", self.p.job_id, self.p.data_mapper_id)
    }

    /// Reads the table as it is now and commits to it, or finds the commit made.
    async fn attempt(&self) -> Result<Attempt, Failure> {
        let (database, table) = (&self.table.0, &self.table.1);
        let catalog = self.engine.catalog.as_ref();
        let location = metadata_location(catalog, (database, table)).await?;
        let files = read_table(&self.engine.stores, &location, false).await?;
        if let Some(snapshot) = files.snapshot_with(COMMIT_PROPERTY, &self.tag()) {
            return Ok(Attempt::Done(Box::new(self.outcome_of(&files, snapshot)?)));
        }
        let (_, list) = files.current_list().map_err(Failure::Refused)?;
        let live = live_in(list, &files.manifests).map_err(Failure::Refused)?;
        let raw: BTreeMap<String, String> = live
            .data_files
            .iter()
            .map(|p| (s3_path(p), p.clone()))
            .collect();
        let every = all_data_files(&files).map_err(Failure::Refused)?;
        self.refuse_unsearched(&location, &every).await?;
        let replaced = self.replacements(&files, &raw).await?;
        if replaced.is_empty() {
            // Only older snapshots hold the old files: no new snapshot is needed.
            return Ok(Attempt::Done(Box::new(self.outcome_of(&files, i64::MIN)?)));
        }
        let dir = self.engine.temp.dir().map_err(|e| {
            Failure::Task(TaskError::Retryable(format!("temporary directory: {e}")))
        })?;
        let retired = (self.retired_deletes((&files, list), &live, &replaced, dir.path())).await?;
        let new = self.new_snapshot(&files);
        let current = Current {
            metadata: &files.metadata,
            metadata_location: &location,
            manifest_list: list,
            manifests: &files.manifests,
        };
        let commit =
            overwrite_retiring(&current, &replaced, &retired, &new).map_err(Failure::Refused)?;
        check_built(
            &files.manifests,
            (&commit, new.snapshot_id),
            &live,
            (&replaced, &retired),
        )
        .map_err(Failure::Refused)?;
        for (path, bytes) in &commit.files {
            write_new(&self.engine.stores, dir.path(), (path, bytes)).await?;
        }
        let metadata = (
            commit.metadata_location.as_str(),
            commit.metadata.as_slice(),
        );
        write_new(&self.engine.stores, dir.path(), metadata).await?;
        let moved = (location.as_str(), commit.metadata_location.as_str());
        match catalog.commit_iceberg(database, table, moved).await {
            Ok(()) => {}
            Err(CommitError::Moved { current }) => return Ok(Attempt::Moved(current)),
            Err(CommitError::Catalog(e)) => return Err(Failure::Task(e.into())),
        }
        // Committed: from here on no error may refuse (and delete the new files).
        let committed = read_table(&self.engine.stores, &commit.metadata_location, false)
            .await
            .map_err(|e| after_commit(e.to_string()))?;
        self.check_read_back(&committed, (&replaced, &retired))
            .map_err(|e| match e {
                Failure::Refused(why) => after_commit(why),
                other => other,
            })?;
        Ok(Attempt::Done(Box::new(
            self.outcome_of(&committed, new.snapshot_id)?,
        )))
    }

    /// Refuses a commit on top of data files find did not search that hold the job's
    /// subjects: another writer's snapshot since find (`now`, whose snapshots hold
    /// `every` data file) may have added their rows again, or moved them (a compaction);
    /// erasing what find saw would then leave them, and the purge would call them erased.
    /// Each data file any snapshot holds now that no snapshot of the metadata find read
    /// held is searched.
    async fn refuse_unsearched(&self, now: &str, every: &BTreeSet<String>) -> Result<(), Failure> {
        let found_at = self.mapper.read_at_find.as_ref();
        let Some(found_at) = found_at.and_then(|r| r.metadata_location.as_deref()) else {
            return Err(Failure::Refused(
                "find recorded no metadata location".into(),
            ));
        };
        if found_at == now {
            return Ok(());
        }
        // Find's files are read once per task run, and a file found clean is not searched
        // again when the table moves on and the commit is planned anew.
        let known = self.searched.lock().ok().and_then(|s| s.clone());
        let mut searched = match known {
            Some(searched) => searched,
            None => {
                let then = read_table(&self.engine.stores, found_at, false).await?;
                all_data_files(&then).map_err(Failure::Refused)?
            }
        };
        let mut holding = 0;
        let unseen: Vec<&String> = every.iter().filter(|l| !searched.contains(*l)).collect();
        for location in unseen {
            let who = (self.ctx, &self.engine, self.mapper);
            if holds_matches(who, (self.p.job_id, &self.p.data_mapper_id), location).await? {
                holding += 1;
            } else {
                searched.insert(location.clone());
            }
        }
        if let Ok(mut known) = self.searched.lock() {
            *known = Some(searched);
        }
        match holding {
            0 => Ok(()),
            n => Err(Failure::Refused(format!(
                "{n} data file(s) committed by another writer since find hold the job's subjects (rows added again, or moved by a compaction): the next job searches them"
            ))),
        }
    }

    /// The replacement of each old data file live in the current snapshot (`raw`: live
    /// files by their `s3://` location, to the path the manifests write), with the new
    /// file's metrics read from its footer.
    async fn replacements(
        &self,
        files: &TableFiles,
        raw: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, Replacement>, Failure> {
        let schema = files
            .parsed
            .current_schema()
            .map_err(Failure::Refused)?
            .clone();
        let mut replaced = BTreeMap::new();
        for o in &self.written {
            let Some(path) = raw.get(&s3(o, &o.key)) else {
                continue;
            };
            let rows = o.rows_after.unwrap_or(0);
            let size = o.size_after.unwrap_or(0).max(0) as u64;
            let replacement = match (&o.new_key, rows > 0) {
                (Some(key), true) => {
                    let footer = self.footer(o, key, size).await?;
                    let metrics =
                        data_file_metrics(&footer, size, &schema, &files.parsed.properties)
                            .map_err(Failure::Refused)?;
                    Replacement {
                        new_path: Some(beside(path, key)),
                        record_count: rows,
                        file_size: size as i64,
                        metrics: Some(metrics),
                    }
                }
                _ => Replacement {
                    new_path: None,
                    record_count: 0,
                    file_size: 0,
                    metrics: None,
                },
            };
            replaced.insert(path.clone(), replacement);
        }
        Ok(replaced)
    }

    /// The position delete files the new snapshot no longer needs, each live one read:
    /// those deleting rows of replaced data files only (or of files no longer live).
    /// Refused: a replaced file whose rewrite applied a delete file the current snapshot
    /// no longer holds (rolled back since: the rewrite would drop rows readers see) or
    /// one naming it otherwise than the manifest does (readers compare paths exactly and
    /// do not apply it), and a replaced file that a delete file its rewrite did not apply
    /// deletes rows of (committed since forget read the table: the rewrite would bring
    /// those rows back).
    async fn retired_deletes(
        &self,
        (files, list): (&TableFiles, &[u8]),
        live: &Referenced,
        replaced: &BTreeMap<String, Replacement>,
        dir: &std::path::Path,
    ) -> Result<BTreeSet<String>, Failure> {
        let replaced: BTreeMap<String, &String> =
            replaced.keys().map(|p| (s3_path(p), p)).collect();
        let applied = self.applied_deletes(live, &replaced)?;
        check_applicable((files, list), &replaced, &applied).map_err(Failure::Refused)?;
        let data: BTreeSet<String> = live.data_files.iter().map(|p| s3_path(p)).collect();
        let mut retired = BTreeSet::new();
        for (n, file) in live.position_deletes.iter().enumerate() {
            let local = dir.join(format!("deletes-{n}"));
            let targets = self.delete_targets(file, &local).await?;
            let mut names_replaced = false;
            for target in &targets {
                let canonical = s3_path(target);
                let Some(raw) = replaced.get(&canonical) else {
                    continue;
                };
                names_replaced = true;
                let ours = applied.get(&canonical);
                if !ours.is_some_and(|a| a.contains(&s3_path(file))) {
                    return Err(Failure::Refused(format!(
                        "position delete file {file}, committed since Lethe rewrote {raw}, deletes rows of it that the rewrite keeps: the next job rewrites it again"
                    )));
                }
                if target != *raw {
                    return Err(Failure::Refused(format!(
                        "position delete file {file} names the data file {raw} as {target}: readers compare the two exactly and do not apply it, Lethe's rewrite did"
                    )));
                }
            }
            let needed = (targets.iter().map(|t| s3_path(t)))
                .any(|t| data.contains(&t) && !replaced.contains_key(&t));
            if names_replaced && !needed {
                retired.insert(file.clone());
            }
        }
        Ok(retired)
    }

    /// The delete files each replaced data file's rewrite applied (by `s3://` location),
    /// each still live in the current snapshot (`live`).
    fn applied_deletes(
        &self,
        live: &Referenced,
        replaced: &BTreeMap<String, &String>,
    ) -> Result<BTreeMap<String, BTreeSet<String>>, Failure> {
        let now: BTreeSet<String> = live.position_deletes.iter().map(|d| s3_path(d)).collect();
        let mut applied = BTreeMap::new();
        for o in &self.written {
            let location = s3(o, &o.key);
            if !replaced.contains_key(&location) {
                continue;
            }
            let files: BTreeSet<String> = o.deletes_applied.iter().map(|d| s3_path(d)).collect();
            if let Some(gone) = files.iter().find(|d| !now.contains(*d)) {
                return Err(Failure::Refused(format!(
                    "position delete file {gone}, whose rows the rewrite of {location} left out, is no longer in the table's current snapshot (rolled back or rewritten since): the rewrite would drop rows the table shows"
                )));
            }
            applied.insert(location, files);
        }
        Ok(applied)
    }

    /// The data files the position delete file at `file` deletes rows of (by `s3://`
    /// location), downloaded to `local` and read there.
    async fn delete_targets(
        &self,
        file: &str,
        local: &std::path::Path,
    ) -> Result<BTreeSet<String>, Failure> {
        use crate::lakefile::iceberg::deletes::{Wanted, read_position_deletes};
        let place = self.engine.stores.place(&s3_path(file))?;
        let size = place.store.head(&place.bucket, &place.prefix).await?.size;
        let _space =
            self.ctx.engine.temp.reserve(size).map_err(|e| {
                Failure::Task(TaskError::Retryable(format!("temporary space: {e}")))
            })?;
        place
            .store
            .download(&place.bucket, &place.prefix, None, local)
            .await?;
        let read = crate::jobs::find::cpu_bound(|| {
            let reader = crate::lakefile::parquet::local::SharedFile::open(local)
                .map_err(|e| e.to_string())?;
            read_position_deletes(reader, Wanted::Targets)
        });
        let _ = std::fs::remove_file(local);
        read.map(|r| r.targets)
            .map_err(|e| Failure::Refused(format!("position delete file {file}: {e}")))
    }

    /// The Parquet footer of a new data file, as written.
    async fn footer(
        &self,
        o: &JobObject,
        key: &str,
        size: u64,
    ) -> Result<parquet::file::metadata::ParquetMetaData, Failure> {
        use crate::jobs::find::{ObjectFindError, ObjectRef, read_footer};
        let store = self.engine.stores.of_scheme("s3");
        let object = ObjectRef {
            bucket: &o.bucket,
            key,
            version_id: o.new_version_id.as_deref(),
            size,
        };
        match read_footer(store.as_ref(), &object).await {
            Ok((_, footer)) => Ok(footer),
            Err(ObjectFindError::Storage(e)) => Err(e.into()),
            Err(e) => Err(Failure::Refused(format!(
                "the new data file {key} cannot be read back: {e}"
            ))),
        }
    }

    fn new_snapshot(&self, files: &TableFiles) -> NewSnapshot {
        let last = files.metadata["last-updated-ms"].as_i64().unwrap_or(0);
        let id = (Uuid::new_v4().as_u128() as u64 >> 1) as i64;
        NewSnapshot {
            snapshot_id: id.max(1),
            timestamp_ms: chrono::Utc::now()
                .timestamp_millis()
                .max(last.saturating_add(1)),
            uuid: Uuid::new_v4().to_string(),
            properties: vec![(COMMIT_PROPERTY.to_owned(), self.tag())],
        }
    }

    /// The committed metadata, read back: every rewrite live, no replaced file, no
    /// retired delete file.
    fn check_read_back(
        &self,
        committed: &TableFiles,
        (replaced, retired): (&BTreeMap<String, Replacement>, &BTreeSet<String>),
    ) -> Result<(), Failure> {
        let (_, list) = committed.current_list().map_err(|why| {
            Failure::Task(TaskError::Fatal(format!(
                "the committed metadata read back: {why}"
            )))
        })?;
        let live = live_in(list, &committed.manifests).map_err(Failure::Refused)?;
        for (old, r) in replaced {
            let new_live = r
                .new_path
                .as_ref()
                .is_none_or(|p| live.data_files.contains(p));
            if live.data_files.contains(old) || !new_live {
                return Err(Failure::Task(TaskError::Fatal(format!(
                    "the committed snapshot read back does not replace {old} by its rewrite"
                ))));
            }
        }
        if let Some(kept) = retired.iter().find(|d| live.position_deletes.contains(*d)) {
            return Err(Failure::Task(TaskError::Fatal(format!(
                "the committed snapshot read back still holds the retired delete file {kept}"
            ))));
        }
        Ok(())
    }

    /// The outcome of the commit whose snapshot is `snapshot` in `files` (`i64::MIN`: no
    /// snapshot was needed): the objects whose new file it holds are committed, the
    /// others settled.
    fn outcome_of(&self, files: &TableFiles, snapshot: i64) -> Result<Outcome, Failure> {
        let ours = files
            .parsed
            .snapshots
            .iter()
            .find(|s| s.snapshot_id == snapshot);
        // A new file any snapshot references is committed (even when maintenance
        // expired Lethe's own snapshot since): never taken for an unneeded upload.
        let live: BTreeSet<String> = all_data_files(files).map_err(after_commit)?;
        let (committed, settled): (Vec<&JobObject>, Vec<&JobObject>) = self
            .written
            .iter()
            .partition(|o| o.new_key.as_ref().is_some_and(|k| live.contains(&s3(o, k))));
        let parent = ours.and_then(|s| {
            files.metadata["snapshots"]
                .as_array()?
                .iter()
                .find(|j| j["snapshot-id"] == s.snapshot_id)?["parent-snapshot-id"]
                .as_i64()
        });
        let before = self.mapper.read_at_find.as_ref();
        let retired = match (parent, ours) {
            (Some(parent), Some(ours)) => deletes_of(files, parent)
                .zip(deletes_of(files, ours.snapshot_id))
                .map(|(then, now)| then.difference(&now).cloned().collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        Ok(Outcome {
            record: TableCommit {
                metadata_before: before.and_then(|r| r.metadata_location.clone()),
                snapshot_before: parent.or(files.parsed.current_snapshot_id),
                metadata_after: ours.map(|_| files.metadata_location.clone()),
                snapshot_after: ours.map(|s| s.snapshot_id),
                retired_deletes: retired,
                purge: None,
            },
            committed: committed.iter().map(|o| o.job_object_id).collect(),
            settled: settled.iter().map(|o| o.job_object_id).collect(),
        })
    }

    async fn moved(&self, now: Option<&str>) -> Result<(), TaskError> {
        let message = format!(
            "the Iceberg table {}.{} moved on while Lethe committed to it (another writer's snapshot, now {}): planning again on top of it",
            self.table.0,
            self.table.1,
            now.unwrap_or("unknown")
        );
        let details = json!({"data_mapper_id": self.p.data_mapper_id});
        let db = &self.engine.db;
        event(
            db,
            self.p.job_id,
            EventLevel::Warning,
            "table_moved",
            &message,
            details,
        )
        .await?;
        Ok(())
    }

    /// Deletes every version of the new files of `ids` (Lethe's own uploads, which no
    /// snapshot references).
    async fn delete_new_files(&self, ids: &[i64]) -> Result<(), TaskError> {
        // The table as it is now: a new file it references is never deleted (a commit
        // that landed although its answer was lost, say).
        let (database, table) = (&self.table.0, &self.table.1);
        let location = metadata_location(self.engine.catalog.as_ref(), (database, table)).await?;
        let files = read_table(&self.engine.stores, &location, false).await?;
        let referenced = all_data_files(&files).map_err(TaskError::Fatal)?;
        let store = self.engine.stores.of_scheme("s3");
        for o in self
            .written
            .iter()
            .filter(|o| ids.contains(&o.job_object_id))
        {
            let Some(key) = &o.new_key else { continue };
            if referenced.contains(&s3(o, key)) {
                return Err(TaskError::Retryable(format!(
                    "the table references Lethe's new data file {key}: its commit is read again"
                )));
            }
            for v in store.list_versions(&o.bucket, key).await? {
                store.delete_version(&o.bucket, key, &v.version_id).await?;
            }
        }
        Ok(())
    }

    /// Records the commit: its record, the settled objects verified, a verify task for
    /// each committed one.
    async fn record(&self, task: &Task, outcome: Outcome) -> Result<(), TaskError> {
        self.delete_new_files(&outcome.settled).await?;
        let db = &self.engine.db;
        let mut tx = begin_bookkeeping(db).await?;
        if !mark_recorded(&mut *tx, task).await? {
            return Ok(());
        }
        let (job, name) = (self.p.job_id, &self.p.data_mapper_id);
        job_data_mapper::set_table_commit(&mut *tx, job, name, &outcome.record).await?;
        for id in &outcome.settled {
            let update = ObjectUpdate {
                forget_state: Some(ForgetState::Verified),
                ..ObjectUpdate::default()
            };
            objects::update(&mut *tx, *id, &update).await?;
            objects::clear_new_file(&mut *tx, *id).await?;
        }
        let verifies: Vec<Verify> = ObjectTask::of(job, &outcome.committed)
            .map(Verify)
            .collect();
        enqueue_all(&mut *tx, job, &verifies).await?;
        let r = &outcome.record;
        let message = match r.snapshot_after {
            Some(after) => format!(
                "committed snapshot {after} to {}.{}: {} data file(s) replaced by their rewrites (parent snapshot {}); {} removed without one (every row erased, or only older snapshots hold it)",
                self.table.0,
                self.table.1,
                outcome.committed.len(),
                r.snapshot_before.map_or("none".into(), |s| s.to_string()),
                outcome.settled.len()
            ),
            None => format!(
                "{}.{}: no new snapshot needed: the {} old data file(s) are held only by older snapshots, which the purge expires",
                self.table.0,
                self.table.1,
                outcome.settled.len()
            ),
        };
        let details = json!({"data_mapper_id": name, "commit": r});
        event(
            &mut *tx,
            job,
            EventLevel::Info,
            "table_committed",
            &message,
            details,
        )
        .await?;
        let stats = JobStats {
            objects_verified: outcome.settled.len() as i64,
            ..JobStats::default()
        };
        crate::db::job::add_stats(&mut *tx, job, &stats).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Fails the mapper's written objects (nothing of the table changed) after deleting
    /// their new files; their subjects stay queued.
    async fn refuse(&self, task: &Task, why: &str) -> Result<(), TaskError> {
        let ids: Vec<i64> = self.written.iter().map(|o| o.job_object_id).collect();
        self.delete_new_files(&ids).await?;
        let error = format!("not committed to the table: {why}; its new data file was deleted");
        tracing::warn!(job.id = %self.p.job_id, error = %error, "table commit refused");
        let db = &self.engine.db;
        let mut tx = begin_bookkeeping(db).await?;
        if !mark_recorded(&mut *tx, task).await? {
            return Ok(());
        }
        for id in &ids {
            let update = ObjectUpdate {
                forget_state: Some(ForgetState::VerifyFailed),
                forget_error: Some(&error),
                ..ObjectUpdate::default()
            };
            objects::update(&mut *tx, *id, &update).await?;
            // Its new file is deleted: no receipt or report may name it as written.
            objects::clear_new_file(&mut *tx, *id).await?;
        }
        let message = format!(
            "cannot commit to the Iceberg table {}.{}: {why}; nothing of the table changed and its {} rewritten data file(s) were deleted",
            self.table.0,
            self.table.1,
            ids.len()
        );
        let details = json!({"data_mapper_id": self.p.data_mapper_id});
        event(
            &mut *tx,
            self.p.job_id,
            EventLevel::Error,
            "table_commit_refused",
            &message,
            details,
        )
        .await?;
        let stats = JobStats {
            objects_verify_failed: ids.len() as i64,
            ..JobStats::default()
        };
        crate::db::job::add_stats(&mut *tx, self.p.job_id, &stats).await?;
        tx.commit().await?;
        Ok(())
    }
}
