//! The job engine.
//!
//! - `tasks`: the Postgres work queue every process shares (claim with a lease,
//!   heartbeats, retries, the record fence).
//! - One module per task kind, each a payload type implementing [`JobTask`] (its `KIND`,
//!   its attempt limit, its handler): `find_mapper`, `find_objects`, `object::forget`,
//!   `object::verify`, `object::cleanup`. A payload is enqueued with [`enqueue`] /
//!   [`prepare`] and decoded by [`handler`], so a payload and its handler cannot disagree.
//! - `lifecycle`: the job's state machine (typed transitions, no task module); `advance`
//!   moves a job on when a phase is done and enqueues the next phase; `finalize` ends it.
//! - `matches`: the match sets a task searches with, cached per worker.
//! - `receipts`: each queue item's signed receipt, issued when the job ends;
//!   `audit_checkpoint`: the audit chain's signed head, at each job's end and hourly.
//! - `find`: ranged reads of one object; `report`: the streamed job report; `runtime`:
//!   worker loops, the supervisor and the scheduler.

pub mod advance;
pub mod audit_checkpoint;
pub mod finalize;
pub mod find;
pub mod find_hidden;
pub mod find_mapper;
pub mod find_objects;
pub mod lifecycle;
pub mod matches;
pub mod object;
pub mod receipts;
pub mod report;
pub mod runtime;
pub mod table_commit;
pub mod table_purge;
pub mod tasks;

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::catalog::Catalog;
use crate::domain::settings::JobSettings;
use crate::storage::Stores;
use matches::SetCache;
use tasks::{Task, TaskError, TaskHandler};

/// What the job tasks need: the database, the catalog, the object stores and the
/// process metrics.
#[derive(Clone)]
pub struct Engine {
    pub db: PgPool,
    pub catalog: Arc<dyn Catalog>,
    pub stores: Stores,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Longest JSON Lines line find and forget read (`LETHE_MAX_LINE_BYTES`).
    pub max_line_bytes: usize,
    /// The process's temporary space (`LETHE_TEMP_DIR`, `LETHE_TEMP_MAX_BYTES`), shared
    /// by all its workers.
    pub temp: Arc<object::temp::TempSpace>,
    /// What signs the receipts of a job that ends in this process.
    pub receipts: Arc<crate::receipt::Issuer>,
}

impl Engine {
    /// This engine as a mapper's tasks of `job_id` use it: S3 calls signed with the
    /// mapper's `role_arn` (sessions named after the job) when it has one.
    pub fn for_mapper(
        &self,
        mapper: &crate::db::job_data_mapper::MapperSnapshot,
        job_id: uuid::Uuid,
    ) -> Result<Engine, crate::storage::StorageError> {
        Ok(Engine {
            stores: self
                .stores
                .for_role(mapper.role_arn.as_deref(), &role_session(mapper, job_id))?,
            ..self.clone()
        })
    }
}

/// The STS session of a job's assumed roles: its name names Lethe and the job, its source
/// identity the person who started it (`scheduler` for a scheduled job), its tags the
/// mapper and the job, so the lake account's CloudTrail tells who and which job made each
/// call, and the role's trust policy can require them.
fn role_session(
    mapper: &crate::db::job_data_mapper::MapperSnapshot,
    job_id: uuid::Uuid,
) -> crate::storage::RoleSession {
    let mut tags = vec![("lethe:job".to_owned(), job_id.to_string())];
    if let Some(id) = &mapper.data_mapper_id {
        tags.push(("lethe:mapper".to_owned(), id.clone()));
    }
    crate::storage::RoleSession {
        name: format!("lethe-job-{job_id}"),
        source_identity: mapper.started_by.clone(),
        tags,
    }
}

/// What a task handler runs with: the engine and this worker's caches of what does not
/// change during a job (its match sets, its settings snapshot).
pub struct Context {
    pub engine: Engine,
    pub sets: SetCache,
    settings: std::sync::Mutex<Option<(Uuid, Arc<JobSettings>)>>,
}

impl Context {
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            sets: SetCache::default(),
            settings: Default::default(),
        }
    }

    /// The job's settings snapshot (read once per job and worker).
    pub async fn settings(&self, job_id: Uuid) -> sqlx::Result<Arc<JobSettings>> {
        if let Ok(cached) = self.settings.lock()
            && let Some((id, settings)) = cached.as_ref()
            && *id == job_id
        {
            return Ok(settings.clone());
        }
        let settings = Arc::new(crate::db::job::settings(&self.engine.db, job_id).await?);
        if let Ok(mut cached) = self.settings.lock() {
            *cached = Some((job_id, settings.clone()));
        }
        Ok(settings)
    }
}

/// A kind of job task: its payload (this type), its kind name and attempt limit, and
/// what running it does.
#[async_trait]
pub trait JobTask: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The `task.kind` of this payload.
    const KIND: &'static str;
    /// Claims before the task fails for good.
    const MAX_ATTEMPTS: i32;
    /// The job the task works for.
    fn job_id(&self) -> Uuid;
    /// Runs the task (only while its job is active); its effects are recorded in one transaction fenced by
    /// `db::task::mark_recorded`.
    async fn run(&self, ctx: &Context, task: &Task) -> Result<(), TaskError>;
}

/// A task ready to insert: built only from a [`JobTask`], so its kind matches its payload.
#[derive(Debug, Clone)]
pub struct Prepared {
    kind: &'static str,
    job_id: Uuid,
    payload: Value,
    max_attempts: i32,
}

/// Prepares a typed task for [`enqueue_prepared`].
pub fn prepare<T: JobTask>(task: &T) -> sqlx::Result<Prepared> {
    Ok(Prepared {
        kind: T::KIND,
        job_id: task.job_id(),
        payload: serde_json::to_value(task).map_err(|e| sqlx::Error::Encode(e.into()))?,
        max_attempts: T::MAX_ATTEMPTS,
    })
}

/// Enqueues a prepared task, in the transaction of the write that causes it.
pub async fn enqueue_prepared(db: impl sqlx::PgExecutor<'_>, p: &Prepared) -> sqlx::Result<i64> {
    crate::db::task::insert(db, Some(p.job_id), p.kind, &p.payload, p.max_attempts).await
}

/// Enqueues `next`, a step that follows `task`, just ahead of `task`'s place in the queue:
/// an object's steps then run one after the other instead of waiting behind every other
/// object's first step (the queue stays short and objects finish early).
pub async fn enqueue_next(
    db: impl sqlx::PgExecutor<'_>,
    task: &Task,
    next: &Prepared,
) -> sqlx::Result<i64> {
    let ahead = task.run_at - chrono::Duration::milliseconds(1);
    crate::db::task::insert_at(
        db,
        Some(next.job_id),
        next.kind,
        &next.payload,
        next.max_attempts,
        Some(ahead),
    )
    .await
}

/// Enqueues a typed task, in the transaction of the write that causes it.
pub async fn enqueue<T: JobTask>(db: impl sqlx::PgExecutor<'_>, task: &T) -> sqlx::Result<i64> {
    enqueue_prepared(db, &prepare(task)?).await
}

/// Enqueues many tasks of one kind for one job in one statement.
pub async fn enqueue_all<T: JobTask>(
    db: impl sqlx::PgExecutor<'_>,
    job_id: Uuid,
    tasks: &[T],
) -> sqlx::Result<u64> {
    if tasks.is_empty() {
        return Ok(0);
    }
    let payloads = tasks
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Encode(e.into()))?;
    crate::db::task::insert_many(db, job_id, T::KIND, &payloads, T::MAX_ATTEMPTS).await
}

/// Decodes `T` from a claimed task and runs it while its job is active.
struct Handler<T> {
    ctx: Arc<Context>,
    kind: PhantomData<fn() -> T>,
}

#[async_trait]
impl<T: JobTask> TaskHandler for Handler<T> {
    async fn run(&self, task: &Task) -> Result<(), TaskError> {
        let payload: T = serde_json::from_value(task.payload.clone())
            .map_err(|e| TaskError::Fatal(format!("bad {} payload: {e}", T::KIND)))?;
        // Tasks of an ended (or cancelled) job do nothing.
        if !lifecycle::is_active(&self.ctx.engine.db, payload.job_id()).await? {
            return Ok(());
        }
        payload.run(&self.ctx, task).await
    }
}

/// The handler of `T`'s kind, for a worker's handler table.
pub fn handler<T: JobTask>(ctx: &Arc<Context>) -> (String, Arc<dyn TaskHandler>) {
    let handler = Handler::<T> {
        ctx: ctx.clone(),
        kind: PhantomData,
    };
    (T::KIND.to_owned(), Arc::new(handler))
}
