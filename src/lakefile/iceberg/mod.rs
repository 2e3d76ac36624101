//! Apache Iceberg table metadata, read (format versions 1 and 2): the table's
//! `metadata.json`, each snapshot's manifest list and the manifests they name (Avro, read
//! whole by `avro::datum`), down to every file the table's snapshots reference.
//!
//! What a search needs is [`Referenced`]: every data file any snapshot still in the
//! metadata references (the current one and the older ones time travel reaches: each
//! holds its rows until the snapshot is expired and the file deleted), and the delete
//! files. Lethe reads this and nothing else as the table: the objects under the table's
//! location that no snapshot references (orphans of failed writes, old metadata) are not
//! its rows.
//!
//! Refused with a reason, never guessed: a data file that is not Parquet, equality
//! delete files (a row they delete may still match elsewhere: applying them is not built),
//! format version 3 and later (deletion vectors), a manifest list or manifest that cannot
//! be read.
//!
//! Written by [`commit`] (Lethe's copy-on-write snapshot) and [`expire`] (the expiry of
//! the snapshots still holding the replaced files), both for format versions 1 and 2,
//! each table in its own version's files: a version 1 table stays version 1.

pub mod commit;
pub mod deletes;
pub mod expire;
pub mod field_ids;
#[cfg(test)]
mod interop;

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::avro::datum::{Datum, read_all};

pub mod metrics;

/// Largest manifest list, manifest or metadata file read (they are read whole).
pub const MAX_METADATA_BYTES: usize = 256 * 1024 * 1024;

/// A path as compared: `s3a://` and `s3n://` (Hadoop writers' names) are `s3://`.
pub fn canonical(path: &str) -> String {
    for scheme in ["s3a://", "s3n://"] {
        if let Some(rest) = path.strip_prefix(scheme) {
            return format!("s3://{rest}");
        }
    }
    path.to_owned()
}

/// The parts of `metadata.json` Lethe reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TableMetadata {
    pub format_version: u32,
    pub location: String,
    #[serde(default)]
    pub current_snapshot_id: Option<i64>,
    #[serde(default)]
    pub snapshots: Vec<Snapshot>,
    #[serde(default)]
    pub refs: BTreeMap<String, SnapshotRef>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Every schema the table had (version 2; version 1 writers often keep them too).
    #[serde(default)]
    pub schemas: Vec<IcebergSchema>,
    /// Version 1's one schema.
    #[serde(default)]
    pub schema: Option<IcebergSchema>,
    #[serde(default)]
    pub current_schema_id: Option<i64>,
}

/// A table schema: its fields (nested structs inside their types).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IcebergSchema {
    #[serde(default)]
    pub schema_id: Option<i64>,
    #[serde(default)]
    pub fields: Vec<SchemaField>,
}

/// A field of a schema or of a struct: its id, name and type (a primitive's name, or a
/// struct, list or map as JSON).
#[derive(Debug, Clone, Deserialize)]
pub struct SchemaField {
    pub id: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub ty: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Snapshot {
    pub snapshot_id: i64,
    #[serde(default)]
    pub timestamp_ms: i64,
    /// Format version 2 (and most version 1 writers): the manifest list's location.
    #[serde(default)]
    pub manifest_list: Option<String>,
    /// Format version 1 without a manifest list: the manifests themselves.
    #[serde(default)]
    pub manifests: Option<Vec<String>>,
}

/// A branch or tag: it keeps its snapshot from expiry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SnapshotRef {
    pub snapshot_id: i64,
    #[serde(rename = "type")]
    pub kind: String,
}

impl TableMetadata {
    /// Parses `metadata.json`; a format version above 2 is refused.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let metadata: TableMetadata = serde_json::from_slice(bytes)
            .map_err(|e| format!("its metadata file is not Iceberg table metadata: {e}"))?;
        if !(1..=2).contains(&metadata.format_version) {
            return Err(format!(
                "it is an Iceberg table of format version {}: its deletion vectors and row lineage are not read yet (versions 1 and 2 are)",
                metadata.format_version
            ));
        }
        let format = metadata
            .properties
            .get("write.format.default")
            .map_or("parquet", String::as_str);
        if !format.eq_ignore_ascii_case("parquet") {
            return Err(format!(
                "its data files are written as {format}: only Parquet data files are searched"
            ));
        }
        Ok(metadata)
    }

    /// The table's current schema.
    pub fn current_schema(&self) -> Result<&IcebergSchema, String> {
        self.schemas
            .iter()
            .find(|s| s.schema_id.is_some() && s.schema_id == self.current_schema_id)
            .or(self.schema.as_ref())
            .or(self.schemas.last())
            .ok_or_else(|| "its metadata holds no schema".to_owned())
    }

    /// The snapshots whose files a search covers: every snapshot still in the metadata.
    pub fn manifest_sources(&self) -> Vec<ManifestSource> {
        self.snapshots
            .iter()
            .filter_map(|s| match (&s.manifest_list, &s.manifests) {
                (Some(list), _) => Some(ManifestSource::List(list.clone())),
                (None, Some(manifests)) => Some(ManifestSource::Manifests(manifests.clone())),
                (None, None) => None,
            })
            .collect()
    }
}

/// Where a snapshot's manifests are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestSource {
    List(String),
    Manifests(Vec<String>),
}

/// A manifest a manifest list names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ManifestFile {
    pub path: String,
    /// 0: data files, 1: delete files (version 2; version 1 lists only data manifests).
    pub content: i64,
}

/// The manifests a manifest list names.
pub fn manifest_list(bytes: &[u8]) -> Result<Vec<ManifestFile>, String> {
    let read = read_all(bytes, MAX_METADATA_BYTES)
        .map_err(|e| format!("a manifest list cannot be read: {e}"))?;
    read.records
        .iter()
        .map(|r| {
            let path = r
                .field("manifest_path")
                .and_then(Datum::as_str)
                .ok_or("a manifest list entry names no manifest_path")?;
            Ok(ManifestFile {
                path: path.to_owned(),
                content: r.field("content").and_then(Datum::as_long).unwrap_or(0),
            })
        })
        .collect()
}

/// What kind of file a manifest entry adds to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileContent {
    Data,
    PositionDeletes,
    EqualityDeletes,
}

/// A live file (added or existing) of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub path: String,
    pub content: FileContent,
    pub format: String,
    pub record_count: i64,
}

/// The live entries of a manifest (status 0 existing or 1 added; 2 deleted ones are
/// dropped: the snapshots that still hold such a file list it in their own manifests).
pub fn manifest_entries(bytes: &[u8]) -> Result<Vec<ManifestEntry>, String> {
    let read = read_all(bytes, MAX_METADATA_BYTES)
        .map_err(|e| format!("a manifest cannot be read: {e}"))?;
    let mut out = Vec::new();
    for r in &read.records {
        let status = r.field("status").and_then(Datum::as_long);
        if status == Some(2) {
            continue;
        }
        let file = r
            .field("data_file")
            .ok_or("a manifest entry has no data_file")?;
        let path = file
            .field("file_path")
            .and_then(Datum::as_str)
            .ok_or("a manifest entry names no file_path")?;
        let content = match file.field("content").and_then(Datum::as_long).unwrap_or(0) {
            0 => FileContent::Data,
            1 => FileContent::PositionDeletes,
            2 => FileContent::EqualityDeletes,
            other => return Err(format!("a manifest entry has unknown content {other}")),
        };
        let format = match file.field("file_format") {
            Some(Datum::String(s) | Datum::Enum(s)) => s.clone(),
            _ => String::new(),
        };
        out.push(ManifestEntry {
            path: path.to_owned(),
            content,
            format,
            record_count: file
                .field("record_count")
                .and_then(Datum::as_long)
                .unwrap_or(-1),
        });
    }
    Ok(out)
}

/// The files one snapshot holds live: its manifest list `list` read, and each manifest
/// it names from `manifests` (by location; one not there is an error, never "empty").
pub fn live_in(list: &[u8], manifests: &BTreeMap<String, Vec<u8>>) -> Result<Referenced, String> {
    let mut live = Referenced::default();
    for manifest in manifest_list(list)? {
        let bytes = manifests
            .get(&manifest.path)
            .ok_or_else(|| format!("manifest {} was not read", manifest.path))?;
        live.add(&manifest.path, manifest_entries(bytes)?)?;
    }
    Ok(live)
}

/// Every file the table's snapshots reference.
#[derive(Debug, Clone, Default)]
pub struct Referenced {
    pub data_files: BTreeSet<String>,
    pub position_deletes: BTreeSet<String>,
    /// Manifests and manifest lists read (for the account of what holds the table).
    pub manifests: BTreeSet<String>,
}

impl Referenced {
    /// Adds a manifest's live entries; refuses what a search cannot cover exactly.
    pub fn add(&mut self, manifest: &str, entries: Vec<ManifestEntry>) -> Result<(), String> {
        self.manifests.insert(manifest.to_owned());
        for e in entries {
            match e.content {
                FileContent::EqualityDeletes => {
                    return Err(format!(
                        "it has equality delete files ({}): applying them is not built yet, so which rows the table still holds is not certain",
                        e.path
                    ));
                }
                FileContent::PositionDeletes => {
                    self.position_deletes.insert(e.path);
                }
                FileContent::Data if !e.format.eq_ignore_ascii_case("parquet") => {
                    return Err(format!(
                        "data file {} is {}: only Parquet data files are searched",
                        e.path, e.format
                    ));
                }
                FileContent::Data => {
                    self.data_files.insert(e.path);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_of_versions_one_and_two_is_read_and_later_ones_refused() {
        let v2 = br#"{"format-version": 2, "table-uuid": "u", "location": "s3://b/db/t",
            "last-sequence-number": 2, "current-snapshot-id": 2,
            "snapshots": [
              {"snapshot-id": 1, "timestamp-ms": 10, "manifest-list": "s3://b/db/t/metadata/snap-1.avro"},
              {"snapshot-id": 2, "parent-snapshot-id": 1, "timestamp-ms": 20, "manifest-list": "s3://b/db/t/metadata/snap-2.avro"}],
            "refs": {"main": {"snapshot-id": 2, "type": "branch"}, "audit": {"snapshot-id": 1, "type": "tag"}},
            "properties": {}}"#;
        let m = TableMetadata::parse(v2).unwrap();
        assert_eq!(m.current_snapshot_id, Some(2));
        assert_eq!(
            m.manifest_sources(),
            [
                ManifestSource::List("s3://b/db/t/metadata/snap-1.avro".into()),
                ManifestSource::List("s3://b/db/t/metadata/snap-2.avro".into())
            ]
        );
        assert_eq!(m.refs["audit"].kind, "tag");
        let v1 = br#"{"format-version": 1, "location": "s3://b/t",
            "snapshots": [{"snapshot-id": 5, "manifests": ["s3://b/t/metadata/m1.avro"]}]}"#;
        assert_eq!(
            TableMetadata::parse(v1).unwrap().manifest_sources(),
            [ManifestSource::Manifests(vec![
                "s3://b/t/metadata/m1.avro".into()
            ])]
        );
        let v3 = br#"{"format-version": 3, "location": "s3://b/t"}"#;
        assert!(TableMetadata::parse(v3).unwrap_err().contains("version 3"));
        let orc = br#"{"format-version": 2, "location": "s3://b/t", "properties": {"write.format.default": "orc"}}"#;
        assert!(TableMetadata::parse(orc).unwrap_err().contains("orc"));
        assert!(TableMetadata::parse(b"{").is_err());
    }

    #[test]
    fn equality_deletes_and_other_file_formats_are_refused_and_deleted_entries_dropped() {
        let entry = |path: &str, content, format: &str| ManifestEntry {
            path: path.into(),
            content,
            format: format.into(),
            record_count: 1,
        };
        let mut r = Referenced::default();
        r.add(
            "m1",
            vec![
                entry("a.parquet", FileContent::Data, "PARQUET"),
                entry("d.parquet", FileContent::PositionDeletes, "PARQUET"),
            ],
        )
        .unwrap();
        assert_eq!(r.data_files.len(), 1);
        assert_eq!(r.position_deletes.len(), 1);
        let eq = r.add(
            "m2",
            vec![entry("e.parquet", FileContent::EqualityDeletes, "PARQUET")],
        );
        assert!(eq.unwrap_err().contains("equality delete"));
        let orc = r.add("m3", vec![entry("o.orc", FileContent::Data, "ORC")]);
        assert!(orc.unwrap_err().contains("only Parquet"));
    }
}
