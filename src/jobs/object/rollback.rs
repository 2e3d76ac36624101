//! The rollback of a rewrite that failed verification: the version Lethe read is copied
//! back on top as the new current version, so no reader of the lake goes on reading a
//! version Lethe itself judged wrong. The copy is uploaded with `If-Match: <the etag of
//! Lethe's upload>`, so a newer writer is never overwritten (a 412 leaves their version
//! and is reported). It keeps the read version's headers, metadata, tags, storage class
//! and encryption (the upload path forget uses), plus user metadata
//! `lethe-restored-for: <job>/<object>`: a rerun after a crash between the copy's upload
//! and its record recognises its own copy and records it, never copying twice. Nothing
//! is deleted: a failed verification keeps every version (no cleanup runs for it).

use super::Loaded;
use super::has_version;
use crate::jobs::Context;
use crate::jobs::tasks::{Task, TaskError};
use crate::storage::{Precondition, StorageError};

/// User metadata key naming the job object whose rollback wrote a version.
pub const RESTORED: &str = "lethe-restored-for";

/// What became of a rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollback {
    /// The version read is current again, as this copy (its version id).
    Done(Option<String>),
    /// Not rolled back, and why.
    Refused(String),
}

/// The version id of the current version when it is this job object's own copy.
async fn own_copy(l: &Loaded) -> Result<Option<Option<String>>, StorageError> {
    Ok(l.current_if_marked(RESTORED).await?.map(|c| c.version_id))
}

/// A storage error: retried while attempts remain, else reported as why not.
fn storage(task: &Task, e: StorageError) -> Result<Rollback, TaskError> {
    match e {
        StorageError::Unavailable(e) if !task.is_last_attempt() => Err(TaskError::Retryable(e)),
        e => Ok(Rollback::Refused(e.to_string())),
    }
}

/// Copies the version read back on top of Lethe's own, if that is still current.
pub async fn roll_back(ctx: &Context, task: &Task, l: &Loaded) -> Result<Rollback, TaskError> {
    let o = &l.object;
    let marker = l.marker();
    match own_copy(l).await {
        Ok(Some(version)) => return Ok(Rollback::Done(version)),
        Ok(None) => {}
        Err(e) => return storage(task, e),
    }
    let read = o.rewritten_version().filter(|v| has_version(Some(v)));
    let (Some(read), Some(ours)) = (read, o.new_etag.as_deref()) else {
        let why = "the version read has no version id (the bucket is not versioned), or \
                   Lethe's upload no etag: there is nothing to copy back";
        return Ok(Rollback::Refused(why.to_owned()));
    };
    // The version read, in the worker's temporary space (its bytes reserved first).
    let _space = match ctx.engine.temp.reserve(o.size_bytes.max(0) as u64) {
        Ok(space) => space,
        Err(e) if !task.is_last_attempt() => return Err(TaskError::Retryable(e.to_string())),
        Err(e) => return Ok(Rollback::Refused(e.to_string())),
    };
    let dir = (ctx.engine.temp.dir()).map_err(|e| TaskError::Retryable(e.to_string()))?;
    let file = dir.path().join("restored");
    let fetched = match l.store.download(&o.bucket, &o.key, Some(read), &file).await {
        Ok(f) => f,
        Err(StorageError::NotFound) => {
            return Ok(Rollback::Refused(format!(
                "the version read ({read}) is gone"
            )));
        }
        Err(e) => return storage(task, e),
    };
    let mut attributes = fetched.attributes;
    attributes
        .metadata
        .insert(RESTORED.to_owned(), marker.clone());
    let threshold = ctx.settings(l.p.job_id).await?.multipart_threshold();
    let uploaded = l
        .store
        .upload(
            &o.bucket,
            &o.key,
            &file,
            Precondition::Match(ours),
            &attributes,
            threshold,
        )
        .await;
    match uploaded {
        Ok(w) => Ok(Rollback::Done(w.version_id)),
        // Someone wrote the object after Lethe's upload, or a retried PUT whose first try
        // landed got the 412: a HEAD tells which.
        Err(StorageError::PreconditionFailed) => match own_copy(l).await {
            Ok(Some(version)) => Ok(Rollback::Done(version)),
            Ok(None) => Ok(Rollback::Refused(
                "someone wrote the object after Lethe's upload (412 on If-Match): their \
                 version is kept"
                    .to_owned(),
            )),
            Err(e) => storage(task, e),
        },
        Err(e) => storage(task, e),
    }
}
