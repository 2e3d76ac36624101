//! Reading and writing an Apache Iceberg table's metadata files in the lake: the I/O the
//! pure builders of `lakefile::iceberg` (the copy-on-write snapshot, the snapshot expiry)
//! need. A table is read whole from the `metadata.json` its Glue entry names: every
//! snapshot's manifest list and every manifest they name (each read once), and on request
//! the older metadata files of its `metadata-log`. New files are written only where no
//! object is (`If-None-Match: *`), so nothing of the table is ever overwritten.

use std::collections::BTreeMap;

use serde_json::Value;

use super::SourceError;
use crate::catalog::{Catalog, CatalogError};
use crate::lakefile::iceberg::{MAX_METADATA_BYTES, ManifestSource, TableMetadata, manifest_list};
use crate::storage::{ObjectAttributes, Precondition, StorageError, Stores};

/// An Iceberg table as its metadata files hold it.
#[derive(Debug, Clone)]
pub struct TableFiles {
    pub metadata_location: String,
    pub metadata: Value,
    pub parsed: TableMetadata,
    /// Every snapshot's manifest list, by location.
    pub manifest_lists: BTreeMap<String, Vec<u8>>,
    /// Every manifest those lists (or a version 1 snapshot) name, by location.
    pub manifests: BTreeMap<String, Vec<u8>>,
    /// The metadata files of `metadata-log` still in the lake, by location (read only on
    /// request; one already deleted is left out).
    pub old_metadata: BTreeMap<String, Vec<u8>>,
}

impl TableFiles {
    /// The current snapshot's manifest list (its location and bytes); Err with the reason
    /// when there is none: no current snapshot, or a format version 1 snapshot naming its
    /// manifests directly (the legacy `manifests` array: no manifest list to build on).
    pub fn current_list(&self) -> Result<(&str, &[u8]), String> {
        let snapshot = self
            .parsed
            .current_snapshot_id
            .and_then(|id| self.parsed.snapshots.iter().find(|s| s.snapshot_id == id));
        let Some(snapshot) = snapshot else {
            return Err("the table has no current snapshot".into());
        };
        let Some(list) = snapshot.manifest_list.as_deref() else {
            return Err(format!(
                "its current snapshot {} names its manifests directly (format version 1's legacy `manifests`, no manifest list): committing on top of it is not built",
                snapshot.snapshot_id
            ));
        };
        let bytes = self
            .manifest_lists
            .get(list)
            .ok_or_else(|| format!("manifest list {list} was not read"))?;
        Ok((list, bytes.as_slice()))
    }

    /// The snapshot whose summary names `key` = `value` (Lethe's own commits carry the
    /// job and mapper they were made for), if any.
    pub fn snapshot_with(&self, key: &str, value: &str) -> Option<i64> {
        self.metadata["snapshots"]
            .as_array()?
            .iter()
            .find(|s| s["summary"][key].as_str() == Some(value))
            .and_then(|s| s["snapshot-id"].as_i64())
    }
}

/// The `metadata_location` the table's Glue entry names now.
pub async fn metadata_location(
    catalog: &dyn Catalog,
    (database, table): (&str, &str),
) -> Result<String, SourceError> {
    let def = catalog.get_table(database, table).await?;
    def.metadata_location().map(str::to_owned).ok_or_else(|| {
        SourceError::Catalog(CatalogError::Invalid(format!(
            "{database}.{table} names no metadata_location: it is no longer an Iceberg table"
        )))
    })
}

/// Reads the table whose current metadata file is `metadata_location`, down to every
/// manifest (and the older metadata files when `with_log`).
pub async fn read_table(
    stores: &Stores,
    metadata_location: &str,
    with_log: bool,
) -> Result<TableFiles, SourceError> {
    let bytes = read_whole(stores, metadata_location).await?;
    let parsed = TableMetadata::parse(&bytes).map_err(SourceError::Refused)?;
    let metadata: Value =
        serde_json::from_slice(&bytes).map_err(|e| SourceError::Refused(e.to_string()))?;
    let mut files = TableFiles {
        metadata_location: metadata_location.to_owned(),
        metadata,
        parsed,
        manifest_lists: BTreeMap::new(),
        manifests: BTreeMap::new(),
        old_metadata: BTreeMap::new(),
    };
    for source in files.parsed.manifest_sources() {
        let manifests = match source {
            ManifestSource::Manifests(paths) => paths,
            ManifestSource::List(list) => {
                if files.manifest_lists.contains_key(&list) {
                    continue;
                }
                let bytes = read_whole(stores, &list).await?;
                let named = manifest_list(&bytes).map_err(SourceError::Refused)?;
                files.manifest_lists.insert(list, bytes.to_vec());
                named.into_iter().map(|m| m.path).collect()
            }
        };
        for manifest in manifests {
            if let std::collections::btree_map::Entry::Vacant(e) = files.manifests.entry(manifest) {
                let bytes = read_whole(stores, e.key()).await?;
                e.insert(bytes.to_vec());
            }
        }
    }
    if with_log {
        read_log(stores, &mut files).await?;
    }
    Ok(files)
}

/// The older metadata files `metadata-log` names that are still in the lake.
async fn read_log(stores: &Stores, files: &mut TableFiles) -> Result<(), SourceError> {
    let logged: Vec<String> = files.metadata["metadata-log"]
        .as_array()
        .map(|log| {
            log.iter()
                .filter_map(|e| e["metadata-file"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for location in logged {
        match read_whole(stores, &location).await {
            Ok(bytes) => {
                files.old_metadata.insert(location, bytes.to_vec());
            }
            Err(SourceError::Storage(StorageError::NotFound)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A metadata object read whole (at most [`MAX_METADATA_BYTES`]).
pub async fn read_whole(stores: &Stores, location: &str) -> Result<bytes::Bytes, SourceError> {
    let place = stores.place(location)?;
    let head = place.store.head(&place.bucket, &place.prefix).await?;
    if head.size > MAX_METADATA_BYTES as u64 {
        return Err(SourceError::Refused(format!(
            "{location} is larger than {MAX_METADATA_BYTES} bytes"
        )));
    }
    Ok(place
        .store
        .get_range(&place.bucket, &place.prefix, None, 0..head.size)
        .await?)
}

/// Writes a new metadata file at `location`, only where no object is. A file already
/// there with exactly these bytes (an earlier attempt's write) is taken as written.
pub async fn write_new(
    stores: &Stores,
    temp: &std::path::Path,
    (location, bytes): (&str, &[u8]),
) -> Result<(), StorageError> {
    let place = stores.place(location)?;
    let file = temp.join("metadata-file");
    std::fs::write(&file, bytes).map_err(|e| StorageError::Other(e.to_string()))?;
    let attributes = ObjectAttributes::default();
    let written = place
        .store
        .upload(
            &place.bucket,
            &place.prefix,
            &file,
            Precondition::Absent,
            &attributes,
            u64::MAX,
        )
        .await;
    match written {
        Ok(_) => Ok(()),
        Err(StorageError::PreconditionFailed) => {
            let there = read_whole(stores, location)
                .await
                .map_err(|e| StorageError::Other(e.to_string()))?;
            if there.as_ref() == bytes {
                Ok(())
            } else {
                Err(StorageError::Other(format!(
                    "another object already has the new metadata file's name {location}"
                )))
            }
        }
        Err(e) => Err(e),
    }
}

/// The `s3://` location of a path the metadata writes (`s3a://`, `s3n://` too).
pub use crate::lakefile::iceberg::canonical as s3;

/// Every data file any snapshot of `files` holds live, by `s3://` location (a format
/// version 1 snapshot naming its manifests directly included).
pub fn all_data_files(files: &TableFiles) -> Result<std::collections::BTreeSet<String>, String> {
    use crate::lakefile::iceberg::{Referenced, live_in, manifest_entries};
    let mut all = std::collections::BTreeSet::new();
    for list in files.manifest_lists.values() {
        let live = live_in(list, &files.manifests)?;
        all.extend(live.data_files.iter().map(|p| s3(p)));
    }
    for source in files.parsed.manifest_sources() {
        let ManifestSource::Manifests(paths) = source else {
            continue;
        };
        let mut live = Referenced::default();
        for path in paths {
            let bytes = files
                .manifests
                .get(&path)
                .ok_or_else(|| format!("manifest {path} was not read"))?;
            live.add(&path, manifest_entries(bytes)?)?;
        }
        all.extend(live.data_files.iter().map(|p| s3(p)));
    }
    Ok(all)
}

/// The position delete files the current snapshot of the table at `metadata_location`
/// holds live (only its delete manifests are read; none in format version 1).
pub async fn current_position_deletes(
    stores: &Stores,
    metadata_location: &str,
) -> Result<Vec<String>, SourceError> {
    use crate::lakefile::iceberg::{FileContent, manifest_entries};
    let refused = |why: String| SourceError::Refused(format!("Iceberg table: {why}"));
    let parsed =
        TableMetadata::parse(&read_whole(stores, metadata_location).await?).map_err(refused)?;
    let Some(id) = parsed.current_snapshot_id else {
        return Ok(Vec::new());
    };
    let Some(list) = parsed
        .snapshots
        .iter()
        .find(|s| s.snapshot_id == id)
        .and_then(|s| s.manifest_list.clone())
    else {
        return Ok(Vec::new());
    };
    let mut deletes = Vec::new();
    for manifest in manifest_list(&read_whole(stores, &list).await?).map_err(refused)? {
        if manifest.content != 1 {
            continue;
        }
        let entries =
            manifest_entries(&read_whole(stores, &manifest.path).await?).map_err(refused)?;
        deletes.extend(
            entries
                .into_iter()
                .filter(|e| e.content == FileContent::PositionDeletes)
                .map(|e| e.path),
        );
    }
    Ok(deletes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lakefile::avro::datum::Datum;
    use crate::lakefile::avro::write::write_container;

    const MANIFEST: &str = r#"{"type": "record", "name": "manifest_entry", "fields": [
        {"name": "status", "type": "int"},
        {"name": "snapshot_id", "type": "long"},
        {"name": "data_file", "type": {"type": "record", "name": "r2", "fields": [
            {"name": "file_path", "type": "string"},
            {"name": "file_format", "type": "string"},
            {"name": "record_count", "type": "long"}]}}]}"#;

    fn manifest(path: &str) -> Vec<u8> {
        let file = Datum::Record(vec![
            ("file_path".into(), Datum::String(path.into())),
            ("file_format".into(), Datum::String("PARQUET".into())),
            ("record_count".into(), Datum::Long(1)),
        ]);
        let entry = Datum::Record(vec![
            ("status".into(), Datum::Long(1)),
            ("snapshot_id".into(), Datum::Long(1)),
            ("data_file".into(), file),
        ]);
        let metadata = vec![("avro.schema".to_owned(), MANIFEST.as_bytes().to_vec())];
        write_container(&metadata, &[entry], [1; 16]).unwrap()
    }

    /// A version 1 table whose only snapshot names its manifest directly (legacy
    /// `manifests`, no manifest list).
    fn legacy() -> TableFiles {
        let bytes = br#"{"format-version": 1, "location": "s3a://b/t", "current-snapshot-id": 1,
            "snapshots": [{"snapshot-id": 1, "timestamp-ms": 1, "manifests": ["s3a://b/t/metadata/m1.avro"]}]}"#;
        TableFiles {
            metadata_location: "s3a://b/t/metadata/00000-x.metadata.json".into(),
            metadata: serde_json::from_slice(bytes).unwrap(),
            parsed: TableMetadata::parse(bytes).unwrap(),
            manifest_lists: BTreeMap::new(),
            manifests: BTreeMap::from([(
                "s3a://b/t/metadata/m1.avro".into(),
                manifest("s3a://b/t/data/a.parquet"),
            )]),
            old_metadata: BTreeMap::new(),
        }
    }

    #[test]
    fn a_current_snapshot_naming_its_manifests_directly_is_refused_with_the_reason() {
        let files = legacy();
        let why = files.current_list().unwrap_err();
        assert!(why.contains("names its manifests directly"), "{why}");
        let mut none = legacy();
        none.parsed.current_snapshot_id = None;
        assert_eq!(
            none.current_list().unwrap_err(),
            "the table has no current snapshot"
        );
    }

    #[test]
    fn the_data_files_of_a_snapshot_naming_its_manifests_directly_count_as_the_tables() {
        let files = legacy();
        let all = all_data_files(&files).unwrap();
        assert_eq!(
            all.into_iter().collect::<Vec<_>>(),
            ["s3://b/t/data/a.parquet"]
        );
        let mut missing = legacy();
        missing.manifests.clear();
        assert!(
            all_data_files(&missing)
                .unwrap_err()
                .contains("was not read")
        );
    }
}
