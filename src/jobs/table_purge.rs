//! `purge.table`: after a table format's commit (`table_commit`) and the verification of
//! every new data file, takes the old data files out of the table for good: the purge
//! chain Iceberg leaves to its users (expire snapshots, delete the files only they used,
//! delete every old version), run for exactly the files the job replaced.
//!
//! Each step is recorded (`job_data_mapper.table_commit.purge`) before it runs, so a
//! crash resumes from it:
//! 1. **plan** (`lakefile::iceberg::expire`) on the table as its Glue entry names it now:
//!    every snapshot still referencing an old data file expires, unless a tag or a branch
//!    other than `main` keeps one of them (and the mapper does not allow expiring those,
//!    `expire_tagged_snapshots`, which removes the references): then nothing is expired (it would take time
//!    travel from the table's readers and erase nothing for good) and the subjects are
//!    `kept` with the reason; the new `metadata.json` without them is written where no
//!    object is; the plan is recorded (`planned`);
//! 2. **commit** the new metadata through Glue, conditioned on the metadata planned from
//!    (moved: the plan is dropped and made again on the table as it is); recorded
//!    (`committed`);
//! 3. **delete** every version of each old data file no kept snapshot references, of the
//!    manifests and manifest lists only expired snapshots used, and of the metadata files
//!    that list an expired snapshot; a file the table's current metadata still references
//!    is never deleted (checked against it just before). Recorded (`done`) with each
//!    object's deleted versions, in one transaction fenced by the task's lease.

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::catalog::CommitError;
use crate::catalog::source::iceberg_files::{
    TableFiles, all_data_files, metadata_location, read_table, s3, write_new,
};
use crate::db::job::JobStats;
use crate::db::job_data_mapper::{
    self, FileVersions, MapperSnapshot, Purge, SnapshotRef, TableCommit,
};
use crate::db::job_object::{self as objects, JobObject, KeptVersion, ObjectUpdate};
use crate::db::task::{begin_bookkeeping, mark_recorded, progressed};
use crate::domain::job::{CleanupState, EventLevel, ForgetState};
use crate::jobs::lifecycle::event;
use crate::jobs::object::cleanup::KEEPS_OLD_VERSIONS;
use crate::jobs::table_commit::{Failure, holds_matches};
use crate::jobs::tasks::{Task, TaskError};
use crate::jobs::{Context, Engine, JobTask};
use crate::lakefile::iceberg::expire::{Expiry, Table, expire, referenced_files};
use crate::storage::StorageError;

/// Plans made again when other writers keep committing, before the purge fails.
const MAX_MOVES: usize = 5;

/// Expires the snapshots holding one mapper's replaced data files and deletes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PurgeTable {
    pub job_id: Uuid,
    pub data_mapper_id: String,
}

#[async_trait]
impl JobTask for PurgeTable {
    const KIND: &'static str = "purge.table";
    const MAX_ATTEMPTS: i32 = 5;

    fn job_id(&self) -> Uuid {
        self.job_id
    }

    async fn run(&self, ctx: &Context, task: &Task) -> Result<(), TaskError> {
        let db = &ctx.engine.db;
        let (job, name) = (self.job_id, self.data_mapper_id.as_str());
        let Some(mut record) = job_data_mapper::table_commit(db, job, name).await? else {
            return Ok(());
        };
        if record.purge.as_ref().is_some_and(|p| p.step == "done") {
            return Ok(());
        }
        let (mapper, table, engine) = super::table_commit::glue_table(ctx, job, name).await?;
        let old = objects::of_mapper_in_state(db, job, name, ForgetState::Verified).await?;
        let p = Purger {
            ctx,
            task,
            p: self,
            engine,
            table,
            mapper: &mapper,
            old: old
                .into_iter()
                .filter(|o| o.cleanup_state.is_none())
                .collect(),
            retired: record.retired_deletes.clone(),
        };
        for _ in 0..MAX_MOVES {
            let purge = match record.purge.take() {
                Some(purge) => purge,
                None => p.plan(&mut record).await?,
            };
            match p.commit(&purge).await? {
                Committed::Yes if purge.step == "planned" => {
                    let purge = Purge {
                        step: "committed".into(),
                        ..purge
                    };
                    p.save(&purge).await?;
                    return p.delete(task, &purge).await;
                }
                Committed::Yes => return p.delete(task, &purge).await,
                Committed::Moved => {
                    record.purge = None;
                    p.write(&record).await?;
                }
            }
        }
        Err(TaskError::Retryable(format!(
            "the table changed {MAX_MOVES} times while Lethe expired its snapshots"
        )))
    }
}

/// Whether the purge's metadata is the table's.
enum Committed {
    Yes,
    /// Another writer committed since the plan: plan again.
    Moved,
}

struct Purger<'a> {
    ctx: &'a Context,
    task: &'a Task,
    p: &'a PurgeTable,
    engine: Engine,
    table: (String, String),
    mapper: &'a MapperSnapshot,
    /// The mapper's verified objects not yet cleaned: the old data files to take out.
    old: Vec<JobObject>,
    /// The position delete files the commit retired (they named only old data files).
    retired: Vec<String>,
}

impl Purger<'_> {
    /// The old data files, and the position delete files the commit retired, by `s3://`
    /// location.
    fn purged(&self) -> BTreeSet<String> {
        let old = self
            .old
            .iter()
            .map(|o| format!("s3://{}/{}", o.bucket, o.key));
        old.chain(self.retired.iter().map(|d| s3(d))).collect()
    }

    /// Reads the table now, plans the expiry, writes its new metadata file and records
    /// the plan (`planned`).
    async fn plan(&self, record: &mut TableCommit) -> Result<Purge, TaskError> {
        let (database, table) = (&self.table.0, &self.table.1);
        let location = metadata_location(self.engine.catalog.as_ref(), (database, table)).await?;
        let files = read_table(&self.engine.stores, &location, true).await?;
        let t = table_of(&files);
        let now = chrono::Utc::now().timestamp_millis();
        let uuid = Uuid::new_v4().to_string();
        let allowed = self.mapper.expire_tagged_snapshots;
        let mut expiry = expire(&t, &self.purged(), allowed, (now, &uuid))
            .map_err(|why| TaskError::Fatal(format!("cannot plan the expiry: {why}")))?;
        // A snapshot a tag or branch keeps still holds the rows: expiring the others
        // would take time travel from the table's readers and erase nothing for good.
        let blocked = self.blocked(&files, &expiry).await?;
        if !expiry.held.is_empty() || blocked.is_some() {
            expiry = Expiry {
                held: expiry.held,
                ..Expiry::default()
            };
        }
        if let Some((_, bytes)) = &expiry.metadata {
            check_expiry(&files, bytes, &expiry).map_err(|why| {
                TaskError::Fatal(format!("the expiry built fails its own check: {why}"))
            })?;
        }
        if let Some((to, bytes)) = &expiry.metadata {
            let dir = (self.engine.temp.dir()).map_err(|e| TaskError::Retryable(e.to_string()))?;
            write_new(&self.engine.stores, dir.path(), (to, bytes)).await?;
        }
        let mut delete = expiry.delete_files.clone();
        delete.extend(expiry.delete_metadata.iter().cloned());
        let purge = Purge {
            step: "planned".into(),
            metadata_from: location,
            metadata_to: expiry.metadata.as_ref().map(|(to, _)| to.clone()),
            expired: expiry.expired.clone(),
            held: refs(&expiry.held),
            removed_refs: refs(&expiry.removed_refs),
            blocked,
            newer_holds: self.newer_holds(&files, record).await?,
            left_unreferenced: expiry.left_unreferenced.clone(),
            delete,
            deleting: Vec::new(),
            versions_deleted: 0,
        };
        record.purge = Some(purge.clone());
        self.write(record).await?;
        Ok(purge)
    }

    /// Whether a data file of the table now (`files`) that neither Lethe's committed
    /// metadata nor the metadata find read held (another writer's, committed after
    /// Lethe's snapshot) holds the job's subjects.
    async fn newer_holds(
        &self,
        files: &TableFiles,
        record: &TableCommit,
    ) -> Result<bool, TaskError> {
        let reading = self.mapper.read_at_find.as_ref();
        let known = [
            record.metadata_after.as_deref(),
            reading.and_then(|r| r.metadata_location.as_deref()),
        ];
        let mut seen = BTreeSet::new();
        for location in known.into_iter().flatten() {
            let then = read_table(&self.engine.stores, location, false).await?;
            seen.extend(all_data_files(&then).map_err(TaskError::Fatal)?);
        }
        let now = all_data_files(files).map_err(TaskError::Fatal)?;
        let who = (self.ctx, &self.engine, self.mapper);
        let job = (self.p.job_id, self.p.data_mapper_id.as_str());
        for location in now.iter().filter(|f| !seen.contains(*f)) {
            match holds_matches(who, job, location).await {
                Ok(false) => {}
                Ok(true) => return Ok(true),
                Err(Failure::Task(e)) => return Err(e),
                Err(Failure::Refused(why)) => return Err(TaskError::Fatal(why)),
            }
        }
        Ok(false)
    }

    /// Why the expiry may not run at all: the table forbids it (`gc.enabled=false`), or it
    /// would leave unreferenced a data file holding the job's subjects that was not erased
    /// (its object failed): no later job would search it again.
    async fn blocked(
        &self,
        files: &TableFiles,
        expiry: &Expiry,
    ) -> Result<Option<String>, TaskError> {
        let gc = files.parsed.properties.get("gc.enabled");
        if gc.is_some_and(|v| v.eq_ignore_ascii_case("false")) {
            return Ok(Some(
                "the table's gc.enabled is false: Iceberg forbids expiring its snapshots and deleting their files (they may be shared with another table)".into(),
            ));
        }
        let db = &self.engine.db;
        let unerased =
            objects::unerased_of_mapper(db, self.p.job_id, &self.p.data_mapper_id).await?;
        let left: Vec<String> = expiry.left_unreferenced.iter().map(|f| s3(f)).collect();
        Ok(unerased.iter().find(|f| left.contains(f)).map(|f| {
            format!(
                "expiring the snapshots would leave the data file {f}, which holds the job's subjects and was not erased (its object failed), in no snapshot, where no later job would search it: nothing expired"
            )
        }))
    }

    /// Commits the planned metadata (conditioned on the metadata planned from), or finds
    /// it committed.
    async fn commit(&self, purge: &Purge) -> Result<Committed, TaskError> {
        if purge.step != "planned" {
            return Ok(Committed::Yes);
        }
        let Some(to) = &purge.metadata_to else {
            return Ok(Committed::Yes);
        };
        let (database, table) = (&self.table.0, &self.table.1);
        let catalog = self.engine.catalog.as_ref();
        let now = metadata_location(catalog, (database, table)).await?;
        if &now == to || self.logs(&now, to).await? {
            return Ok(Committed::Yes);
        }
        match catalog
            .commit_iceberg(database, table, (&purge.metadata_from, to))
            .await
        {
            Ok(()) => Ok(Committed::Yes),
            // Moved, or committed with its answer lost and another writer on top: the
            // table's metadata log then names the planned metadata.
            Err(CommitError::Moved { .. }) => {
                let now = metadata_location(catalog, (database, table)).await?;
                Ok(if now == *to || self.logs(&now, to).await? {
                    Committed::Yes
                } else {
                    Committed::Moved
                })
            }
            Err(CommitError::Catalog(e)) => Err(e.into()),
        }
    }

    /// Whether the table's metadata at `now` logs `to` as an earlier metadata file (the
    /// purge's commit landed, and another writer committed on top).
    async fn logs(&self, now: &str, to: &str) -> Result<bool, TaskError> {
        let files = read_table(&self.engine.stores, now, false).await?;
        Ok(files.metadata["metadata-log"]
            .as_array()
            .is_some_and(|log| log.iter().any(|e| e["metadata-file"].as_str() == Some(to))))
    }

    /// Deletes every version of each planned file the table no longer references, then
    /// records the purge done and each old data file's outcome.
    async fn delete(&self, task: &Task, purge: &Purge) -> Result<(), TaskError> {
        let (database, table) = (&self.table.0, &self.table.1);
        let location = metadata_location(self.engine.catalog.as_ref(), (database, table)).await?;
        let files = read_table(&self.engine.stores, &location, false).await?;
        let still: BTreeSet<String> = referenced_files(&table_of(&files))
            .map_err(|why| {
                TaskError::Fatal(format!("cannot read what the table references: {why}"))
            })?
            .iter()
            .map(|p| s3(p))
            .collect();
        let inside = format!("{}/", s3(files.parsed.location.trim_end_matches('/')));
        // What an earlier attempt saved before it deleted, with what is there now.
        let mut deleting = purge.deleting.clone();
        let mut kept = Vec::new();
        for file in purge.delete.iter().map(|f| s3(f)) {
            if still.contains(&file) || !file.starts_with(&inside) || file == s3(&location) {
                kept.push(file);
                continue;
            }
            if !self.mapper.delete_old_versions && self.purged().contains(&file) {
                continue;
            }
            self.add_versions(&mut deleting, file).await?;
        }
        if !kept.is_empty() {
            let message = format!(
                "{} file(s) planned for deletion are still referenced by the table or lie outside it: kept",
                kept.len()
            );
            let details = json!({"data_mapper_id": self.p.data_mapper_id, "files": kept});
            let db = &self.engine.db;
            event(
                db,
                self.p.job_id,
                EventLevel::Warning,
                "table_files_kept",
                &message,
                details,
            )
            .await?;
        }
        // Saved before anything is deleted: a rerun after a crash still accounts for
        // every version this one deletes.
        let purge = Purge {
            step: "deleting".into(),
            deleting,
            ..purge.clone()
        };
        self.save(&purge).await?;
        for FileVersions { file, versions } in &purge.deleting {
            let place = self.engine.stores.place(file)?;
            for v in versions {
                match place
                    .store
                    .delete_version(&place.bucket, &place.prefix, v)
                    .await
                {
                    Ok(()) | Err(StorageError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.record_done(task, &purge).await
    }

    /// Adds the versions S3 lists of `file` to its entry in `deleting` (the versions of
    /// each file to delete, as saved before the first is deleted).
    async fn add_versions(
        &self,
        deleting: &mut Vec<FileVersions>,
        file: String,
    ) -> Result<(), TaskError> {
        let place = self.engine.stores.place(&file)?;
        let listed = place
            .store
            .list_versions(&place.bucket, &place.prefix)
            .await?;
        let at = match deleting.iter().position(|f| f.file == file) {
            Some(at) => at,
            None => {
                deleting.push(FileVersions {
                    file,
                    versions: Vec::new(),
                });
                deleting.len() - 1
            }
        };
        let versions = &mut deleting[at].versions;
        for v in listed {
            if !versions.contains(&v.version_id) {
                versions.push(v.version_id);
            }
        }
        Ok(())
    }

    /// Saves where the purge stands.
    async fn save(&self, purge: &Purge) -> Result<(), TaskError> {
        let (job, name) = (self.p.job_id, self.p.data_mapper_id.as_str());
        let db = &self.engine.db;
        let mut record = job_data_mapper::table_commit(db, job, name)
            .await?
            .unwrap_or_default();
        record.purge = Some(purge.clone());
        self.write(&record).await
    }

    /// Records where the purge stands, only while the task is this worker's: a worker
    /// whose lease ended (taken for dead) never writes over a newer record.
    async fn write(&self, record: &TableCommit) -> Result<(), TaskError> {
        let (job, name) = (self.p.job_id, self.p.data_mapper_id.as_str());
        let mut tx = self.engine.db.begin().await?;
        if !progressed(&mut *tx, self.task).await? {
            return Err(TaskError::Retryable(
                "the purge task is no longer this worker's".into(),
            ));
        }
        job_data_mapper::set_table_commit(&mut *tx, job, name, record).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the purge `done`: each old data file's deleted versions, or why its rows
    /// stay (a snapshot a tag or branch keeps; the mapper keeping old versions).
    async fn record_done(&self, task: &Task, purge: &Purge) -> Result<(), TaskError> {
        let deleted = &purge.deleting;
        let (job, name) = (self.p.job_id, self.p.data_mapper_id.as_str());
        let db = &self.engine.db;
        let mut record = job_data_mapper::table_commit(db, job, name)
            .await?
            .unwrap_or_default();
        let versions: i64 = deleted.iter().map(|f| f.versions.len() as i64).sum();
        record.purge = Some(Purge {
            step: "done".into(),
            versions_deleted: versions,
            ..purge.clone()
        });
        // A replication rule copies the old files elsewhere: their replicas keep the rows.
        let store = self.engine.stores.of_scheme("s3");
        let mut replicas = Vec::with_capacity(self.old.len());
        for o in &self.old {
            let rules = store.replication_rules(&o.bucket).await?;
            replicas.push(crate::domain::retention::replicated_to(&rules, &o.key));
        }
        let mut tx = begin_bookkeeping(db).await?;
        if !mark_recorded(&mut *tx, task).await? {
            return Ok(());
        }
        job_data_mapper::set_table_commit(&mut *tx, job, name, &record).await?;
        for (o, replica) in self.old.iter().zip(&replicas) {
            let location = format!("s3://{}/{}", o.bucket, o.key);
            let gone = deleted.iter().find(|f| f.file == location);
            let kept = self.kept_of(o, purge, gone.is_some());
            let update = ObjectUpdate {
                cleanup_state: Some(match kept.is_empty() {
                    true => CleanupState::Done,
                    false => CleanupState::Skipped,
                }),
                versions_deleted: gone.map(|f| f.versions.as_slice()),
                versions_kept: Some(&kept),
                replicated_to: replica.as_deref(),
                newer_holds: Some(purge.newer_holds),
                ..ObjectUpdate::default()
            };
            objects::update(&mut *tx, o.job_object_id, &update).await?;
        }
        let message = format!(
            "purged {}.{}: {} snapshot(s) expired, {} kept by a tag or branch, {} tag(s) or branch(es) removed; {} file(s) deleted ({versions} version(s))",
            self.table.0,
            self.table.1,
            purge.expired.len(),
            purge.held.len(),
            purge.removed_refs.len(),
            deleted.len()
        );
        let details = json!({"data_mapper_id": name, "purge": record.purge});
        event(
            &mut *tx,
            job,
            EventLevel::Info,
            "table_purged",
            &message,
            details,
        )
        .await?;
        let stats = JobStats {
            versions_deleted: versions,
            ..JobStats::default()
        };
        crate::db::job::add_stats(&mut *tx, job, &stats).await?;
        tx.commit().await?;
        Ok(())
    }

    /// What still holds an old data file's rows after the purge: the snapshots a tag or
    /// branch keeps (a hold: its subjects are `kept`), or its versions when the mapper
    /// keeps old versions (`retained`).
    fn kept_of(&self, o: &JobObject, purge: &Purge, gone: bool) -> Vec<KeptVersion> {
        let version = o.version_id.clone().unwrap_or_else(|| "null".into());
        if let Some(why) = purge.blocked.as_ref().filter(|_| !gone) {
            return vec![KeptVersion {
                version_id: version,
                reason: why.clone(),
                until: None,
                not_before: false,
                hold: true,
            }];
        }
        if !purge.held.is_empty() && !gone {
            let refs: Vec<String> = purge
                .held
                .iter()
                .map(|h| format!("snapshot {} (kept by {})", h.snapshot_id, h.reference))
                .collect();
            return vec![KeptVersion {
                version_id: version,
                reason: format!(
                    "the table's {} still reference this data file: Lethe does not expire a snapshot a tag or branch keeps (remove the reference, then run again)",
                    refs.join(", ")
                ),
                until: None,
                not_before: false,
                hold: true,
            }];
        }
        if !gone {
            let reason = match self.mapper.delete_old_versions {
                false => format!(
                    "{KEEPS_OLD_VERSIONS}: the old data file is out of the table, its versions are kept"
                ),
                true => "the old data file was not deleted (the table still references it)".into(),
            };
            return vec![KeptVersion {
                version_id: version,
                reason,
                until: None,
                not_before: false,
                hold: self.mapper.delete_old_versions,
            }];
        }
        Vec::new()
    }
}

/// Snapshots and the tags or branches naming them, as the record says them (`tag audit`).
fn refs(held: &[crate::lakefile::iceberg::expire::Held]) -> Vec<SnapshotRef> {
    held.iter()
        .map(|h| SnapshotRef {
            snapshot_id: h.snapshot_id,
            reference: format!("{} {}", h.kind, h.reference),
        })
        .collect()
}

/// The expiry as built, read back from its bytes before anything is written: the new
/// metadata parses with the same current snapshot, holds none of the expired snapshots,
/// and references none of the files the purge deletes.
fn check_expiry(files: &TableFiles, metadata: &[u8], expiry: &Expiry) -> Result<(), String> {
    let parsed = crate::lakefile::iceberg::TableMetadata::parse(metadata)?;
    if parsed.current_snapshot_id != files.parsed.current_snapshot_id {
        return Err("its current snapshot is not the table's".into());
    }
    if parsed
        .snapshots
        .iter()
        .any(|s| expiry.expired.contains(&s.snapshot_id))
    {
        return Err("it still lists an expired snapshot".into());
    }
    let value: serde_json::Value = serde_json::from_slice(metadata).map_err(|e| e.to_string())?;
    let after = Table {
        metadata: &value,
        ..table_of(files)
    };
    let referenced: BTreeSet<String> = referenced_files(&after)?.iter().map(|p| s3(p)).collect();
    let deleted = expiry.delete_files.iter().chain(&expiry.delete_metadata);
    match deleted.map(|f| s3(f)).find(|f| referenced.contains(f)) {
        Some(f) => Err(format!("it still references {f}, which the purge deletes")),
        None => Ok(()),
    }
}

/// The expiry planner's view of the table's files.
fn table_of(files: &TableFiles) -> Table<'_> {
    Table {
        metadata: &files.metadata,
        metadata_location: &files.metadata_location,
        manifest_lists: &files.manifest_lists,
        manifests: &files.manifests,
        old_metadata: &files.old_metadata,
    }
}
