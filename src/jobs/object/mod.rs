//! The per-object steps after find, one task kind each: `forget` rewrites the object
//! without the matching rows, `verify` re-reads the new version, `cleanup` deletes the
//! versions older than it. Each step's record enqueues the next step of the same object
//! in its transaction, so objects move through the steps on their own.
//!
//! Invariants: each task's record is one transaction fenced by its lease; a failure fails
//! its object only, leaving the object as it was.

pub mod cleanup;
pub mod deletes;
pub mod forget;
pub mod rewrite;
pub mod rollback;
pub mod temp;
pub mod verify;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::job::{self as jobs, JobStats};
use crate::db::job_data_mapper::MapperSnapshot;
use crate::db::job_object::{self as objects, JobObject, ObjectUpdate};
use crate::db::task::{begin_bookkeeping, mark_recorded};
use crate::domain::job::{EventLevel, ForgetState};
use crate::domain::partition::PartitionKey;
use crate::jobs::lifecycle::event;
use crate::jobs::tasks::{Task, TaskError};
use crate::jobs::{Context, Prepared, enqueue_next};
use crate::lakefile::format::{Matching, RecordError};
use crate::lakefile::match_set::MatchSet;
use crate::storage::ObjectStore;

/// User metadata key naming the job object a version was written for (forget's writes).
pub const MARKER: &str = "lethe-job-object";

/// Whether S3 keeps a version when a new one is written over it: it has a version id
/// other than `null` (a PUT replaces a `null` version, in a suspended bucket too).
pub fn has_version(version_id: Option<&str>) -> bool {
    version_id.is_some_and(|v| !v.is_empty() && v != "null")
}

/// The payload of every per-object task: which object of which job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectTask {
    pub job_id: Uuid,
    pub job_object_id: i64,
}

impl ObjectTask {
    /// The tasks of these objects of a job.
    pub fn of(job_id: Uuid, ids: &[i64]) -> impl Iterator<Item = ObjectTask> + '_ {
        ids.iter().map(move |&job_object_id| ObjectTask {
            job_id,
            job_object_id,
        })
    }
}

/// The key of a table format's data file `key` rewritten for job object `p`: beside it,
/// `<name>-lethe-<job>-<object>.<ext>` (an earlier Lethe suffix replaced, so names do not
/// grow from job to job). Always the same for one job object, so a retry after a crash
/// finds its own upload there.
pub fn new_file_key(key: &str, p: ObjectTask) -> String {
    let (dir, name) = key.rsplit_once('/').map_or(("", key), |(d, n)| (d, n));
    let (stem, ext) = name.split_once('.').unwrap_or((name, ""));
    let stem = stem.split("-lethe-").next().unwrap_or(stem);
    let job = p.job_id.simple();
    let name = match ext {
        "" => format!("{stem}-lethe-{job}-{}", p.job_object_id),
        ext => format!("{stem}-lethe-{job}-{}.{ext}", p.job_object_id),
    };
    match dir {
        "" => name,
        dir => format!("{dir}/{name}"),
    }
}

/// Attempts of a per-object task before it fails for good.
pub const MAX_ATTEMPTS: i32 = 5;

/// An event of an object's step (details name the mapper and key).
pub struct ObjectEvent {
    pub level: EventLevel,
    pub kind: &'static str,
    pub message: String,
}

impl ObjectEvent {
    pub fn new(level: EventLevel, kind: &'static str, message: String) -> Self {
        Self {
            level,
            kind,
            message,
        }
    }
}

/// What a step records for its object, in one transaction fenced by its lease.
pub struct Record<'a> {
    pub update: ObjectUpdate<'a>,
    pub stats: JobStats,
    pub event: Option<ObjectEvent>,
    /// The object's next step, enqueued in the same transaction.
    pub next: Option<Prepared>,
}

impl<'a> Record<'a> {
    pub fn new(update: ObjectUpdate<'a>) -> Self {
        Self {
            update,
            stats: JobStats::default(),
            event: None,
            next: None,
        }
    }

    pub fn stats(mut self, stats: JobStats) -> Self {
        self.stats = stats;
        self
    }

    pub fn event(mut self, level: EventLevel, kind: &'static str, message: String) -> Self {
        self.event = Some(ObjectEvent::new(level, kind, message));
        self
    }

    pub fn then(mut self, next: Prepared) -> Self {
        self.next = Some(next);
        self
    }

    /// Commits the record (nothing when the task is no longer this worker's or was
    /// recorded already).
    pub async fn commit(
        self,
        db: &PgPool,
        task: &Task,
        object: &JobObject,
        job_id: Uuid,
    ) -> sqlx::Result<()> {
        let mut tx = begin_bookkeeping(db).await?;
        if !mark_recorded(&mut *tx, task).await? {
            return Ok(());
        }
        objects::update(&mut *tx, object.job_object_id, &self.update).await?;
        if let Some(e) = self.event {
            event(
                &mut *tx,
                job_id,
                e.level,
                e.kind,
                &e.message,
                json!({"data_mapper_id": object.data_mapper_id, "key": object.key}),
            )
            .await?;
        }
        if let Some(next) = &self.next {
            enqueue_next(&mut *tx, task, next).await?;
        }
        // Last: the job row is the one row every record updates; its lock is held only
        // for the commit.
        jobs::add_stats(&mut *tx, job_id, &self.stats).await?;
        tx.commit().await
    }
}

/// What every per-object task loads first.
pub struct Loaded {
    pub p: ObjectTask,
    pub object: JobObject,
    pub mapper: Arc<MapperSnapshot>,
    /// The job's matches for the object's table (by partition).
    pub sets: Arc<crate::jobs::matches::PartitionSets>,
    pub ids: Arc<MatchSet>,
    pub every_row: bool,
    pub store: Arc<dyn ObjectStore>,
    /// Longest JSON Lines line read (`LETHE_MAX_LINE_BYTES`).
    pub max_line: usize,
}

impl Loaded {
    /// This job object's marker (`<job>/<object>`): the value of the user metadata key
    /// (forget's `lethe-job-object`, the rollback's `lethe-restored-for`) that Lethe's own
    /// writes of the object carry, so a rerun recognises them.
    pub fn marker(&self) -> String {
        format!("{}/{}", self.p.job_id, self.p.job_object_id)
    }

    /// Whether the object is a data file of a table format's table (Apache Iceberg): its
    /// rewrite is a new data file, made the table's by one commit of the mapper's
    /// rewrites (`jobs::table_commit`), never written over the old one.
    pub fn in_table_format(&self) -> bool {
        self.mapper
            .read_at_find
            .as_ref()
            .is_some_and(|r| r.table_format.is_some())
    }

    /// The key forget writes the rewrite to: the object's own, or for a table format's
    /// data file a new key beside it, named after the job object (see [`new_file_key`]).
    pub fn write_key(&self) -> String {
        if self.in_table_format() {
            new_file_key(&self.object.key, self.p)
        } else {
            self.object.key.clone()
        }
    }

    /// The key's current version when its user metadata `key` is this job object's
    /// marker (the key forget writes); None when it is another writer's, or there is none.
    pub async fn current_if_marked(
        &self,
        key: &str,
    ) -> Result<Option<crate::storage::ObjectMeta>, crate::storage::StorageError> {
        let o = &self.object;
        match self
            .store
            .head_with_metadata(&o.bucket, &self.write_key())
            .await
        {
            Ok((current, meta)) if meta.get(key) == Some(&self.marker()) => Ok(Some(current)),
            Ok(_) | Err(crate::storage::StorageError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The rows of `version` of the object at `key` (the current one when None; `size`
    /// bytes) and those matching, read as find reads.
    pub async fn count_rows(
        &self,
        (key, version): (&str, Option<&str>),
        size: u64,
    ) -> Result<(u64, u64), crate::jobs::find::ObjectFindError> {
        use crate::jobs::find::{ObjectFindError, ObjectRef, search_object};
        let o = &self.object;
        let object = ObjectRef {
            bucket: &o.bucket,
            key,
            version_id: version,
            size,
        };
        let records = self
            .sets
            .records()
            .map_err(|e| ObjectFindError::Records(RecordError::Refused(e)))?;
        let m = Matching {
            columns: &self.mapper.columns,
            ids: &self.ids,
            // Counted as find counts a search: every matching row, not every row.
            every_row: false,
            max_record: self.max_line,
            field_ids: self.mapper.field_ids(),
            drop_rows: &[],
        };
        let (r, _) = search_object(self.store.as_ref(), &object, records, m).await?;
        Ok((r.rows_total, r.rows_matched))
    }

    /// Whether a version of `rows` rows, `matched` of them matching, holds the object's
    /// matches (every row does when a composite names only partition values).
    pub fn holds(&self, rows: u64, matched: u64) -> bool {
        matched > 0 || (self.every_row && rows > 0)
    }

    /// Records the step's outcome for this object.
    pub async fn record(&self, ctx: &Context, task: &Task, r: Record<'_>) -> Result<(), TaskError> {
        Ok(r.commit(&ctx.engine.db, task, &self.object, self.p.job_id)
            .await?)
    }
}

/// Loads the object of `p` when it is in `state` (None: nothing to do, e.g. a rerun
/// after the step was recorded).
pub async fn load(
    ctx: &Context,
    p: ObjectTask,
    state: ForgetState,
) -> Result<Option<Loaded>, TaskError> {
    load_in(ctx, p, &[state]).await
}

/// [`load`] for an object in any of `states`.
pub async fn load_in(
    ctx: &Context,
    p: ObjectTask,
    states: &[ForgetState],
) -> Result<Option<Loaded>, TaskError> {
    let db = &ctx.engine.db;
    let object = objects::get(db, p.job_id, p.job_object_id).await?;
    if !states.contains(&object.forget_state) {
        return Ok(None);
    }
    tracing::Span::current().record("object.key", object.key.as_str());
    let keys = PartitionKey::from_texts(
        object.partition_keys.as_deref().unwrap_or_default(),
        object.partition_types.as_deref().unwrap_or_default(),
    );
    let (sets, mapper) = ctx
        .sets
        .get(db, p.job_id, &object.data_mapper_id, &keys)
        .await?;
    let (ids, every_row) = sets.for_partition(object.partition_values.as_deref());
    let every_row = !every_row.is_empty();
    // Local objects have no bucket; S3 ones are reached as the mapper's role when it has one.
    let scheme = if object.bucket.is_empty() {
        "file"
    } else {
        "s3"
    };
    let store = ctx
        .engine
        .for_mapper(&mapper, p.job_id)?
        .stores
        .of_scheme(scheme);
    Ok(Some(Loaded {
        p,
        object,
        mapper,
        sets,
        ids,
        every_row,
        store,
        max_line: ctx.engine.max_line_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_data_files_key_lies_beside_the_old_one_and_never_grows() {
        let p = ObjectTask {
            job_id: Uuid::parse_str("01a24e94-fc85-73d8-b6c8-e5dcfde492ae").unwrap(),
            job_object_id: 7,
        };
        let job = "01a24e94fc8573d8b6c8e5dcfde492ae";
        let key = "t/data/country=de/00000-0-abc.parquet";
        let new = new_file_key(key, p);
        assert_eq!(
            new,
            format!("t/data/country=de/00000-0-abc-lethe-{job}-7.parquet")
        );
        // Rewritten again by a later job object: one Lethe suffix, not two.
        let later = ObjectTask {
            job_object_id: 9,
            ..p
        };
        assert_eq!(
            new_file_key(&new, later),
            format!("t/data/country=de/00000-0-abc-lethe-{job}-9.parquet")
        );
        assert_eq!(new_file_key("a", p), format!("a-lethe-{job}-7"));
        assert_eq!(
            new_file_key("d/a.gz.parquet", p),
            format!("d/a-lethe-{job}-7.gz.parquet")
        );
    }
}
