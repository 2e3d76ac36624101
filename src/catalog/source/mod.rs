//! The table-source seam: what a data mapper's table is, as its catalog says (DESIGN.md,
//! principle 5: the table is what its catalog says). `jobs::find_mapper` resolves one
//! [`TableSource`] per mapper and a job then only asks it, page by page, for the table's
//! objects with their partition values; it never matches on which source it is.
//!
//! - [`resolve`] builds the source from the mapper's catalog reference: a Glue table
//!   (`glue`: unpartitioned, projected, or its registered partitions plus the folders
//!   the crawler has not registered yet) or a `path` table (`plain`).
//! - [`TableSource::list_page`] lists one page of one of its locations and places each
//!   object in its partition, or finds it not the table's (a projected table's prefix
//!   holds other tables' objects too), or in no partition (searched, never rewritten).
//! - A table format's metadata (`_delta_log/`, `.hoodie/`, Iceberg's `metadata/`) over
//!   the table's objects, or a catalog entry naming a table format, refuses the table
//!   (`formats`): rewriting such a table's data files in place would break it.
//! - A table format's erasure is not this seam's: Apache Iceberg's data files are
//!   rewritten to new files and committed as one snapshot per table
//!   (`jobs::table_commit`), then the snapshots that still hold the old files expired
//!   and the files deleted (`jobs::table_purge`), both through `iceberg_files` (its
//!   metadata files read and written) and `lakefile::iceberg` (the pure builders). Plain
//!   tables' objects are rewritten in place and their old versions deleted by cleanup.
//!
//! **A new table source** (Apache Iceberg next) is one more folder here with its own
//! `TableSource` impl: [`resolve`] builds it where a Glue entry names its format (today
//! `glue` refuses it), its `list_page` pages through the format's data files instead of a
//! prefix listing (its locations and page tokens are its own: the caller only saves them),
//! and it implements the two commit operations.
//!
//! The file formats are not this module's: how the mapper's format reads a Glue table is
//! judged by the caller ([`ReadCheck`]), at the same point of the resolution as before.

mod formats;
mod glue;
mod iceberg;
pub mod iceberg_files;
mod plain;

use std::sync::Arc;

use async_trait::async_trait;

use super::{Catalog, CatalogError};
use crate::domain::data_mapper::{CatalogRef, TableDef};
use crate::domain::field_ids::FieldIds;
use crate::domain::partition::PartitionKey;
use crate::domain::prefix::dir_prefix;
use crate::storage::{ObjectMeta, Place, StorageError, Stores, skip_reason};

pub use plain::PlainTable;

/// Why a table cannot be listed as a source, or an operation is not done.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The table cannot be searched or rewritten safely (a table format, a location off
    /// S3, a projection or SerDe Lethe cannot read exactly): the whole message.
    #[error("{0}")]
    Refused(String),
}

/// How the mapper's file format reads a table, judged by the caller: given the Glue
/// table's definition (None for a `path` table), whether its objects are read through
/// the table's SerDe (a text format: a partition registered with another SerDe is then
/// refused), or why they cannot be read exactly.
pub type ReadCheck<'a> = &'a mut (dyn FnMut(Option<&TableDef>) -> Result<bool, String> + Send);

/// Where a listing stands: the location being listed (one of
/// [`TableSource::locations`]) and its next page's token (None: its first page).
#[derive(Debug, Clone, Copy)]
pub struct ListAt<'a> {
    pub location: &'a str,
    pub next: Option<&'a str>,
}

/// One listed object of the table and the partition values it belongs to.
pub struct TableObject {
    pub place: Arc<Place>,
    pub meta: ObjectMeta,
    /// None: in no partition.
    pub values: Option<Vec<String>>,
    /// Under a partitioned table's location in no partition: searched, never rewritten.
    pub outside: bool,
    /// Hidden (a `_` or `.` folder or name below its location; never a marker or empty
    /// object, which are skipped), and the `_temporary/` folder it is in, if any.
    pub hidden: bool,
    pub temporary: Option<String>,
}

impl TableObject {
    /// A data object of the current listing (not a marker, hidden or old version).
    pub fn is_current_data(&self) -> bool {
        skip_reason(&self.meta).is_none() && !self.hidden && self.meta.noncurrent.is_none()
    }
}

/// One listed page, placed.
#[derive(Default)]
pub struct SourcePage {
    /// The page's objects that are the table's (also markers, empty and hidden objects,
    /// which the caller skips or sets aside).
    pub objects: Vec<TableObject>,
    /// Current objects listed that are not the table's (not searched).
    pub not_the_tables: Vec<String>,
    /// Current data objects placed by the `key=value` folders of their path in a partition
    /// the catalog does not register, and those partitions (not yet known to be new).
    pub unregistered: usize,
    pub discovered: Vec<Vec<String>>,
    /// Current data objects of a partitioned table in no partition.
    pub unplaced: usize,
    /// The token of the location's next page (None: its last).
    pub next: Option<String>,
}

/// A mapper's table, resolved: where its objects are and how each is placed.
#[async_trait]
pub trait TableSource: Send + Sync {
    /// The locations a listing goes through, one after the other, none inside another
    /// (the caller saves them with its progress, so a resumed listing keeps them).
    fn locations(&self) -> &[String];
    /// The table's partition keys, in the order of each object's values.
    fn keys(&self) -> &[PartitionKey];
    /// Warnings about how the table is listed, as (event kind, message).
    fn notes(&self) -> &[(&'static str, String)];
    /// The number of partitions the catalog registers, when partitions are counted from
    /// it (None: count each partition as its objects are listed).
    fn registered_partitions(&self) -> Option<usize>;
    /// How many current objects the listing must show, when the source knows them
    /// beforehand (a table format's metadata); None: whatever is there.
    fn expected_objects(&self) -> Option<usize> {
        None
    }
    /// The match columns' field-id paths, when the table format finds columns by field id
    /// (Apache Iceberg); None: by name.
    fn field_ids(&self) -> Option<&FieldIds> {
        None
    }
    /// One page of the listing at `at`, placed; `checked` is what the source remembers
    /// from page to page of one listing (saved by the caller with its progress).
    async fn list_page(
        &self,
        stores: &Stores,
        at: ListAt<'_>,
        checked: &mut Vec<String>,
    ) -> Result<SourcePage, SourceError>;
}

/// Resolves a mapper's table from its catalog reference: a Glue table's definition and
/// partitions are read from `catalog`, partition locations placed with `stores`; `reads`
/// judges whether the mapper's format reads the table exactly; `columns` are the mapper's
/// match columns (a table format checks it can find them in every data file).
pub async fn resolve(
    catalog: &dyn Catalog,
    stores: &Stores,
    (table, columns): (&CatalogRef, &[String]),
    reads: ReadCheck<'_>,
) -> Result<Box<dyn TableSource>, SourceError> {
    match table {
        CatalogRef::Glue(table) => glue::resolve(catalog, stores, table, columns, reads).await,
        CatalogRef::Path(table) => {
            // Options a format cannot read exactly fail the mapper before any search.
            reads(None).map_err(SourceError::Refused)?;
            Ok(Box::new(PlainTable::path(table)))
        }
    }
}

/// One page of every version under the listing's location, and the place listed.
async fn list_versions(
    stores: &Stores,
    at: ListAt<'_>,
) -> Result<(Arc<Place>, crate::storage::ListPage), SourceError> {
    let place = Arc::new(stores.place(at.location)?);
    let listed = place
        .store
        .list_versions_page(
            &place.bucket,
            &dir_prefix(&place.prefix),
            at.next.map(str::to_owned),
        )
        .await?;
    Ok((place, listed))
}

/// A key relative to the place it was listed under.
fn relative_to<'a>(place: &Place, key: &'a str) -> &'a str {
    let prefix = dir_prefix(&place.prefix);
    key.strip_prefix(prefix.as_str()).unwrap_or(key)
}

/// Listings for the unit tests of this seam.
#[cfg(test)]
mod listing {
    use std::sync::Arc;

    use crate::storage::{ObjectMeta, Place};

    /// Objects of one byte under `location` (empty when the key ends with `_SUCCESS`).
    pub fn listed_at(location: &str, keys: &[&str]) -> (Arc<Place>, Vec<ObjectMeta>) {
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
        (Arc::new(place), metas)
    }
}
