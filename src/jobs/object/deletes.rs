//! The rows of an Iceberg data file that its table's position delete files delete.
//!
//! Such a row is still in the data file (merge-on-read: Athena's and Spark's `DELETE`
//! write a delete file naming its position), so its rewrite must leave it out too: the
//! new file is a new path that no delete file names, and would bring the row back. Forget
//! reads the position delete files live in the current snapshot of the metadata find read
//! (only the delete manifests of that snapshot), keeps the positions each names in this
//! data file, and records which files it applied: the commit refuses a rewrite whose data
//! file a delete file it did not apply (committed since) deletes rows of, and retires the
//! delete files whose every data file the new snapshot replaces.

use std::path::Path;

use crate::catalog::source::SourceError;
use crate::catalog::source::iceberg_files::{current_position_deletes, s3};
use crate::jobs::Context;
use crate::jobs::find::cpu_bound;
use crate::lakefile::iceberg::deletes::{Wanted, read_position_deletes};
use crate::lakefile::parquet::local::{SharedFile, row_count};
use crate::storage::StorageError;

use super::Loaded;

/// The position delete files that delete rows of one data file, and those rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableDeletes {
    /// The delete files naming this data file (as the metadata names them).
    pub files: Vec<String>,
    /// The positions they delete in it: ascending, no repeats.
    pub positions: Vec<u64>,
}

/// Why the deletes could not be read.
#[derive(Debug)]
pub enum DeletesError {
    /// The store stays unavailable (throttling, 5xx): the task runs again.
    Unavailable(String),
    /// The table's files cannot be read as they must: the object fails, kept.
    Failed(String),
}

impl From<SourceError> for DeletesError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Storage(StorageError::Unavailable(e)) => DeletesError::Unavailable(e),
            other => DeletesError::Failed(other.to_string()),
        }
    }
}

impl From<StorageError> for DeletesError {
    fn from(e: StorageError) -> Self {
        SourceError::Storage(e).into()
    }
}

/// The position deletes of `l`'s data file, downloaded at `src` (none for an object
/// outside a table format), each delete file downloaded into `dir` within the worker's
/// temporary space.
pub async fn table_deletes(
    ctx: &Context,
    l: &Loaded,
    (src, dir): (&Path, &Path),
) -> Result<TableDeletes, DeletesError> {
    let Some(location) = l
        .mapper
        .read_at_find
        .as_ref()
        .filter(|r| r.table_format.is_some())
        .and_then(|r| r.metadata_location.as_deref())
    else {
        return Ok(TableDeletes::default());
    };
    let engine = ctx
        .engine
        .for_mapper(&l.mapper, l.p.job_id)
        .map_err(|e| DeletesError::Failed(e.to_string()))?;
    let data_file = format!("s3://{}/{}", l.object.bucket, l.object.key);
    let mut out = TableDeletes::default();
    let files = current_position_deletes(&engine.stores, location).await?;
    if files.is_empty() {
        return Ok(out);
    }
    let rows = cpu_bound(|| row_count(src)).map_err(DeletesError::Failed)?;
    for (n, file) in files.into_iter().enumerate() {
        let place = engine.stores.place(&s3(&file))?;
        let size = place.store.head(&place.bucket, &place.prefix).await?.size;
        let _space = ctx
            .engine
            .temp
            .reserve(size)
            .map_err(|e| DeletesError::Failed(e.to_string()))?;
        let local = dir.join(format!("position-deletes-{n}"));
        place
            .store
            .download(&place.bucket, &place.prefix, None, &local)
            .await?;
        let wanted = Wanted::Positions {
            data_file: &data_file,
            rows,
        };
        let read = cpu_bound(|| {
            let reader = SharedFile::open(&local).map_err(|e| e.to_string())?;
            read_position_deletes(reader, wanted)
        })
        .map_err(|e| DeletesError::Failed(format!("position delete file {file}: {e}")))?;
        // Gone with its reservation: only one delete file at a time takes space.
        let _ = std::fs::remove_file(&local);
        if !read.positions.is_empty() {
            out.files.push(file);
            out.positions.extend(read.positions);
        }
    }
    out.positions.sort_unstable();
    out.positions.dedup();
    Ok(out)
}
