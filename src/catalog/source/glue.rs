//! A Glue table as a source. Every object of the table is searched, wherever the catalog
//! puts it: an unpartitioned table's location; for a projected table
//! (`projection.enabled`), the objects at the paths its projection generates (under the
//! fixed prefix of its template); otherwise the table location *and* every registered
//! partition's location outside it. Partitions are then pruned by value (by the caller).
//!
//! A catalog entry that names Apache Iceberg is read as an Iceberg source (`iceberg`);
//! one that names another table format is refused here.

use super::plain::{Layout, PlainTable};
use super::{ReadCheck, SourceError, TableSource};
use crate::catalog::Catalog;
use crate::domain::data_mapper::{GlueTable, TableDef, TableFormat};
use crate::domain::prefix::dir_prefix;
use crate::domain::projection::Projection;
use crate::storage::Stores;

/// Resolves a Glue table: its definition (a table format refused), how the mapper's
/// format reads it (`reads`), its locations and layout.
pub(super) async fn resolve(
    catalog: &dyn Catalog,
    stores: &Stores,
    GlueTable { database, table }: &GlueTable,
    columns: &[String],
    reads: ReadCheck<'_>,
) -> Result<Box<dyn TableSource>, SourceError> {
    let refused = |why: String| SourceError::Refused(format!("table {database}.{table}: {why}"));
    let def = catalog.get_table(database, table).await?;
    match def.table_format() {
        Some(TableFormat::Iceberg) => {
            reads(Some(&def)).map_err(refused)?;
            let metadata = def.metadata_location().ok_or_else(|| {
                refused("an Iceberg table whose Glue entry names no metadata_location".into())
            })?;
            require_s3(database, table, metadata)?;
            return Ok(Box::new(
                super::iceberg::resolve(stores, (database, table), metadata, columns).await?,
            ));
        }
        Some(format) => return Err(refused(format.refusal())),
        None => {}
    }
    // How the table's objects are read (a SerDe or settings Lethe cannot read exactly
    // fail the mapper here, before any object is searched).
    let reads_serde = reads(Some(&def)).map_err(refused)?;
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
    let (locations, layout, notes) = if keys.is_empty() {
        let location = (def.location.clone()).ok_or_else(|| no_location(database, table))?;
        (vec![location], Layout::Unpartitioned, Vec::new())
    } else if def.projection_enabled() {
        let (root, projection, notes) = Projection::of_table(&def).map_err(refused)?;
        let notes = notes
            .into_iter()
            .map(|n| ("partition_projection", n))
            .collect();
        (vec![root], Layout::Projected(projection), notes)
    } else {
        let (locations, layout) =
            registered(catalog, stores, (database, table), &def, reads_serde).await?;
        (locations, layout, Vec::new())
    };
    Ok(Box::new(PlainTable {
        locations,
        keys,
        layout,
        notes,
    }))
}

/// A partitioned Glue table without projection: the table location and every registered
/// partition's location outside it are listed, and each registered partition's folder
/// places its objects (see [`Layout::Registered`]).
async fn registered(
    catalog: &dyn Catalog,
    stores: &Stores,
    (database, table): (&str, &str),
    def: &TableDef,
    reads_serde: bool,
) -> Result<(Vec<String>, Layout), SourceError> {
    let refused = |why: String| SourceError::Refused(format!("table {database}.{table}: {why}"));
    let registered = catalog.list_partitions(database, table).await?;
    // A text table's partition read through another SerDe or delimiter than the table's
    // would be misread (every row a silent miss): refused.
    let table_serde = (def.serde_library.as_deref(), &def.serde_parameters);
    if let Some(why) = registered
        .iter()
        .filter(|_| reads_serde)
        .find_map(|p| p.serde_differs(table_serde.0, table_serde.1))
    {
        return Err(refused(why));
    }
    let table_place = match &def.location {
        Some(location) => {
            let place = stores.place(location)?;
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
        let place = stores.place(&p.location)?;
        let prefix = dir_prefix(&place.prefix);
        locations.push((place.bucket.clone(), prefix.clone(), p.location.clone()));
        homes.push((place.bucket, prefix, p.values.clone()));
    }
    homes.sort_by_key(|(_, prefix, _)| std::cmp::Reverse(prefix.len()));
    let locations = outermost(locations);
    if locations.is_empty() {
        return Err(no_location(database, table));
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

/// A table with neither a location nor a partition's.
fn no_location(database: &str, table: &str) -> SourceError {
    SourceError::Refused(format!("table {database}.{table} has no location"))
}

/// Fails unless a Glue location is on S3.
fn require_s3(database: &str, table: &str, location: &str) -> Result<(), SourceError> {
    if location.starts_with("s3://") {
        Ok(())
    } else {
        Err(SourceError::Refused(format!(
            "table {database}.{table}: the Glue location {location:?} is not s3://"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
