//! A copy-on-write snapshot of an Iceberg table (format versions 1 and 2), built as files
//! before anything is written: data files holding subjects were rewritten (by the exact
//! Parquet rewrite, to new names: data files are immutable), and this builds the new
//! manifests, the new manifest list and the new `metadata.json` whose snapshot (operation
//! `overwrite`) replaces each old file by its rewrite. Pure: the caller reads the current
//! files, writes these new ones, and commits the metadata location (Glue `UpdateTable`).
//!
//! What the new snapshot holds, manifest by manifest of the current snapshot:
//! - a manifest naming no replaced file is carried over as it is (same file);
//! - one that names some is written again: each replaced file's entry left out (no
//!   `DELETED` entry: its partition tuple and bounds could hold the erased rows' values,
//!   the subject's id itself under `identity(<match column>)`; scans never read one), its
//!   rewrite (if any row is left) as `ADDED` with the rewrite's record count and size and
//!   no column metrics yet (optional: a reader then never skips the file), every other
//!   live entry as `EXISTING` with its inherited snapshot id and sequence numbers written
//!   out, and entries already deleted dropped; its partition summary is left out (it may
//!   bound the erased rows' partition values; optional too).
//!
//! Each file is written in the Avro schema of the one it replaces (its fields, its
//! `format-version` metadata), so a table keeps its format version. Version 1 has no
//! sequence numbers: its manifest entries carry their `snapshot_id` (required there),
//! its manifest-list entries no `sequence_number` / `min_sequence_number`, its metadata
//! no `last-sequence-number` and its snapshots no `sequence-number`; the new snapshot is
//! named by a manifest list (valid in version 1 too). A version 1 current snapshot that
//! names its manifests directly (the legacy `manifests` array, no manifest list) is the
//! caller's to refuse: there is no manifest list to carry over.
//!
//! Everything else in the metadata (schemas, specs, properties, other snapshots, refs;
//! version 1's legacy `schema` and `partition-spec` with them, unchanged and so still
//! consistent) is kept as it is; `main` moves to the new snapshot.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::lakefile::avro::datum::{Datum, Records, read_all};
use crate::lakefile::avro::write::write_container;

use super::MAX_METADATA_BYTES;
use super::metrics::DataFileMetrics;

/// A data file replaced by its rewrite.
#[derive(Debug, Clone, PartialEq)]
pub struct Replacement {
    /// The rewrite's path; None when no row was left (the file is only deleted).
    pub new_path: Option<String>,
    pub record_count: i64,
    pub file_size: i64,
    /// The rewrite's metrics, computed from it under the table's metrics mode
    /// (`super::metrics`); None: left out (optional: a reader then never skips it).
    pub metrics: Option<DataFileMetrics>,
}

/// The current snapshot as read: its manifest list and its manifests (by path).
pub struct Current<'a> {
    pub metadata: &'a Value,
    pub metadata_location: &'a str,
    pub manifest_list: &'a [u8],
    pub manifests: &'a BTreeMap<String, Vec<u8>>,
}

/// Names and numbers of the new snapshot (the caller draws them: ids and uuids).
pub struct NewSnapshot {
    pub snapshot_id: i64,
    pub timestamp_ms: i64,
    /// A fresh UUID text, for the new files' names.
    pub uuid: String,
    /// Properties added to the snapshot's summary (Lethe names the job and mapper it
    /// committed for, by which a rerun recognises its own commit).
    pub properties: Vec<(String, String)>,
}

/// The files of the new snapshot, to write before committing `metadata_location`.
#[derive(Debug, Clone)]
pub struct Commit {
    /// (location, bytes): the rewritten manifests, then the manifest list.
    pub files: Vec<(String, Vec<u8>)>,
    pub metadata_location: String,
    pub metadata: Vec<u8>,
    /// Data files the new snapshot no longer references.
    pub removed: Vec<String>,
}

/// Builds the snapshot replacing each data file of `replaced` (by path).
pub fn overwrite(
    current: &Current<'_>,
    replaced: &BTreeMap<String, Replacement>,
    new: &NewSnapshot,
) -> Result<Commit, String> {
    overwrite_retiring(current, replaced, &BTreeSet::new(), new)
}

/// [`overwrite`], the position delete files of `retired` (by path) left out of the new
/// snapshot too: every data file they delete rows of is replaced, by a rewrite that left
/// those rows out.
pub fn overwrite_retiring(
    current: &Current<'_>,
    replaced: &BTreeMap<String, Replacement>,
    retired: &BTreeSet<String>,
    new: &NewSnapshot,
) -> Result<Commit, String> {
    let m = current.metadata;
    let sequence = next_sequence(m)?;
    let location = m["location"]
        .as_str()
        .ok_or("the metadata names no location")?;
    let location = location.trim_end_matches('/');
    let parent = m["current-snapshot-id"]
        .as_i64()
        .ok_or("the table has no current snapshot")?;
    let list = read_all(current.manifest_list, MAX_METADATA_BYTES)
        .map_err(|e| format!("the manifest list cannot be read: {e}"))?;
    let mut files = Vec::new();
    let mut records = Vec::with_capacity(list.records.len());
    let mut removed = Vec::new();
    let mut retired_rows = Vec::new();
    let ctx = Context {
        new,
        sequence,
        replaced,
        retired,
    };
    for (n, record) in list.records.iter().enumerate() {
        let path = text(record, "manifest_path")?;
        let bytes = current
            .manifests
            .get(path)
            .ok_or_else(|| format!("manifest {path} was not read"))?;
        let manifest = read_all(bytes, MAX_METADATA_BYTES)
            .map_err(|e| format!("manifest {path} cannot be read: {e}"))?;
        if !names_replaced(&manifest, |p| {
            replaced.contains_key(p) || retired.contains(p)
        }) {
            records.push(record.clone());
            continue;
        }
        let new_path = format!("{location}/metadata/{}-m{n}.avro", new.uuid);
        let (bytes, entry, gone) = ctx.rewrite_manifest(record, &manifest, &new_path)?;
        removed.extend(gone.data);
        retired_rows.extend(gone.deletes);
        // A manifest left with no entry (each of its files replaced by none) is dropped.
        if is_empty(&entry) {
            continue;
        }
        files.push((new_path, bytes));
        records.push(entry);
    }
    if removed.len() != replaced.len() {
        return Err("a replaced data file is live in no manifest of the current snapshot".into());
    }
    if retired_rows.len() != retired.len() {
        return Err("a retired delete file is live in no manifest of the current snapshot".into());
    }
    let list_path = format!(
        "{location}/metadata/snap-{}-1-{}.avro",
        new.snapshot_id, new.uuid
    );
    let list_bytes = ctx.manifest_list(&list.metadata, &records, parent)?;
    files.push((list_path.clone(), list_bytes));
    let (metadata_location, metadata) =
        ctx.metadata(current, (location, &list_path), parent, &retired_rows)?;
    Ok(Commit {
        files,
        metadata_location,
        metadata,
        removed,
    })
}

/// The new snapshot's sequence number: the table's last one plus one in format version
/// 2; None in version 1, which numbers no sequence (none is read or written).
fn next_sequence(metadata: &Value) -> Result<Option<i64>, String> {
    match metadata["format-version"].as_i64() {
        Some(1) => Ok(None),
        Some(2) => {
            let last = metadata["last-sequence-number"].as_i64().unwrap_or(0);
            Ok(Some(last.saturating_add(1)))
        }
        other => Err(format!(
            "the table's format version {other:?} is not 1 or 2"
        )),
    }
}

struct Context<'a> {
    new: &'a NewSnapshot,
    /// The new snapshot's sequence number; None in format version 1.
    sequence: Option<i64>,
    replaced: &'a BTreeMap<String, Replacement>,
    retired: &'a BTreeSet<String>,
}

/// The files a rewritten manifest no longer holds: replaced data files, and retired
/// delete files with their record counts (the positions they deleted).
#[derive(Default)]
struct Gone {
    data: Vec<String>,
    deletes: Vec<(String, i64)>,
}

impl Context<'_> {
    /// The new manifest list: the old one's header with the new snapshot's ids and
    /// sequence number, over `records`.
    fn manifest_list(
        &self,
        old: &[(String, Vec<u8>)],
        records: &[Datum],
        parent: i64,
    ) -> Result<Vec<u8>, String> {
        let mut metadata = old.to_vec();
        let mut keys = vec![
            ("snapshot-id", self.new.snapshot_id.to_string()),
            ("parent-snapshot-id", parent.to_string()),
        ];
        keys.extend(self.sequence.map(|s| ("sequence-number", s.to_string())));
        for (key, value) in keys {
            set_metadata(&mut metadata, key, value.into_bytes());
        }
        write_container(&metadata, records, sync(self.new, 0))
            .map_err(|e| format!("the manifest list cannot be written: {e}"))
    }

    /// A manifest naming replaced (or retired) files, written again; its new
    /// manifest-list entry; the files it no longer holds.
    fn rewrite_manifest(
        &self,
        list_entry: &Datum,
        manifest: &Records,
        new_path: &str,
    ) -> Result<(Vec<u8>, Datum, Gone), String> {
        let inherited_snapshot = field(list_entry, "added_snapshot_id")?.as_long();
        let inherited_sequence = self.sequence_of(list_entry, "sequence_number")?;
        let mut entries = Vec::new();
        let mut counts = Counts::default();
        let mut gone = Gone::default();
        for entry in &manifest.records {
            if field(entry, "status")?.as_long() == Some(2) {
                continue;
            }
            let file = field(entry, "data_file")?;
            let path = text(file, "file_path")?;
            let rows = field(file, "record_count")?.as_long().unwrap_or(0);
            let sequences = (
                self.sequence_of(entry, "sequence_number")?
                    .or(inherited_sequence),
                self.sequence_of(entry, "file_sequence_number")?
                    .or(inherited_sequence),
            );
            let snapshot = field(entry, "snapshot_id")?
                .as_long()
                .or(inherited_snapshot);
            if self.retired.contains(path) {
                gone.deletes.push((path.to_owned(), rows));
                continue;
            }
            let Some(replacement) = self.replaced.get(path) else {
                counts.existing(rows, sequences.0);
                entries.push(with(entry, 0, snapshot, sequences, None)?);
                continue;
            };
            // No `DELETED` entry: it would keep the old file's partition tuple (the
            // subject's id itself under `identity(<match column>)`) in a manifest the
            // current snapshot uses; scans never read one, and the snapshot summary
            // counts the files deleted.
            gone.data.push(path.to_owned());
            if let Some(new_file) = &replacement.new_path {
                counts.added(replacement.record_count, self.sequence);
                let file = replaced_file(file, new_file, replacement)?;
                let added = with(
                    entry,
                    1,
                    Some(self.new.snapshot_id),
                    (None, None),
                    Some(file),
                )?;
                entries.push(added);
            }
        }
        let n = 1 + gone.data.len() + gone.deletes.len();
        let bytes = write_container(&manifest.metadata, &entries, sync(self.new, n))
            .map_err(|e| format!("a manifest cannot be written: {e}"))?;
        let entry = counts.list_entry(list_entry, new_path, bytes.len(), self)?;
        Ok((bytes, entry, gone))
    }

    /// A record's sequence number `name`: a field its schema must have in format version
    /// 2 (null: inherited), and none in version 1.
    fn sequence_of(&self, record: &Datum, name: &str) -> Result<Option<i64>, String> {
        match self.sequence {
            Some(_) => Ok(field(record, name)?.as_long()),
            None => Ok(None),
        }
    }

    /// The new `metadata.json`: the old one with the new snapshot current.
    fn metadata(
        &self,
        current: &Current<'_>,
        (location, list_path): (&str, &str),
        parent: i64,
        retired: &[(String, i64)],
    ) -> Result<(String, Vec<u8>), String> {
        let mut m = current.metadata.clone();
        let now = self.new.timestamp_ms;
        let parent_summary = m["snapshots"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["snapshot-id"] == parent))
            .map(|s| s["summary"].clone())
            .unwrap_or(Value::Null);
        let mut snapshot = json!({
            "snapshot-id": self.new.snapshot_id,
            "parent-snapshot-id": parent,
            "timestamp-ms": now,
            "manifest-list": list_path,
            "summary": summary(&parent_summary, (self.replaced, retired), &self.new.properties),
        });
        if !m["current-schema-id"].is_null() {
            snapshot["schema-id"] = m["current-schema-id"].clone();
        }
        let previous_update = m["last-updated-ms"].clone();
        let obj = m.as_object_mut().ok_or("the metadata is not an object")?;
        if let Some(sequence) = self.sequence {
            snapshot["sequence-number"] = json!(sequence);
            obj.insert("last-sequence-number".into(), json!(sequence));
        }
        obj.insert("last-updated-ms".into(), json!(now));
        obj.insert("current-snapshot-id".into(), json!(self.new.snapshot_id));
        push(obj, "snapshots", snapshot)?;
        push(
            obj,
            "snapshot-log",
            json!({"timestamp-ms": now, "snapshot-id": self.new.snapshot_id}),
        )?;
        push(
            obj,
            "metadata-log",
            json!({"timestamp-ms": previous_update, "metadata-file": current.metadata_location}),
        )?;
        let refs = obj.entry("refs").or_insert_with(|| json!({}));
        let main = refs
            .as_object_mut()
            .ok_or("the metadata's refs are not an object")?
            .entry("main")
            .or_insert_with(|| json!({"type": "branch"}));
        main["snapshot-id"] = json!(self.new.snapshot_id);
        let name = next_metadata_name(current.metadata_location, &self.new.uuid);
        let bytes = serde_json::to_vec(&m).map_err(|e| e.to_string())?;
        Ok((format!("{location}/metadata/{name}"), bytes))
    }
}

/// How a rewritten manifest's entries add up (its manifest-list entry).
#[derive(Default)]
struct Counts {
    added: (i64, i64),
    existing: (i64, i64),
    min_sequence: Option<i64>,
}

impl Counts {
    fn existing(&mut self, rows: i64, sequence: Option<i64>) {
        self.existing = (self.existing.0 + 1, self.existing.1.saturating_add(rows));
        self.seen(sequence);
    }
    fn added(&mut self, rows: i64, sequence: Option<i64>) {
        self.added = (self.added.0 + 1, self.added.1.saturating_add(rows));
        self.seen(sequence);
    }
    fn seen(&mut self, sequence: Option<i64>) {
        if let Some(s) = sequence {
            self.min_sequence = Some(self.min_sequence.map_or(s, |m| m.min(s)));
        }
    }

    fn list_entry(
        &self,
        old: &Datum,
        path: &str,
        length: usize,
        ctx: &Context<'_>,
    ) -> Result<Datum, String> {
        let Datum::Record(fields) = old else {
            return Err("a manifest-list entry is not a record".into());
        };
        let long = |v: i64| Datum::Long(v);
        let mut out = Vec::with_capacity(fields.len());
        for (name, value) in fields {
            let value = match name.as_str() {
                "manifest_path" => Datum::String(path.to_owned()),
                "manifest_length" => long(length as i64),
                // Fields of version 2's schema only: ctx.sequence is then set.
                "sequence_number" => ctx.sequence.map_or_else(|| value.clone(), long),
                "min_sequence_number" => self
                    .min_sequence
                    .or(ctx.sequence)
                    .map_or_else(|| value.clone(), long),
                "added_snapshot_id" => long(ctx.new.snapshot_id),
                "added_files_count" | "added_data_files_count" => long(self.added.0),
                "existing_files_count" | "existing_data_files_count" => long(self.existing.0),
                // No `DELETED` entry is written (see `rewrite_manifest`).
                "deleted_files_count" | "deleted_data_files_count" => long(0),
                "added_rows_count" => long(self.added.1),
                "existing_rows_count" => long(self.existing.1),
                "deleted_rows_count" => long(0),
                "partitions" => Datum::Null,
                _ => value.clone(),
            };
            out.push((name.clone(), value));
        }
        Ok(Datum::Record(out))
    }
}

/// The snapshot summary: the operation, what it changed, and the parent's totals moved.
fn summary(
    parent: &Value,
    (replaced, retired): (&BTreeMap<String, Replacement>, &[(String, i64)]),
    properties: &[(String, String)],
) -> Value {
    let added = replaced.values().filter(|r| r.new_path.is_some());
    let added_files = added.clone().count() as i64;
    let added_records: i64 = added.clone().map(|r| r.record_count).sum();
    let added_size: i64 = added.map(|r| r.file_size).sum();
    let mut s = json!({
        "operation": "overwrite",
        "added-data-files": added_files.to_string(),
        "deleted-data-files": replaced.len().to_string(),
        "added-records": added_records.to_string(),
        "added-files-size": added_size.to_string(),
    });
    let total = |key: &str| parent[key].as_str().and_then(|v| v.parse::<i64>().ok());
    if let Some(files) = total("total-data-files") {
        let total = files
            .saturating_sub(replaced.len() as i64)
            .saturating_add(added_files);
        s["total-data-files"] = json!(total.to_string());
    }
    let positions: i64 = retired.iter().map(|(_, rows)| rows).sum();
    if !retired.is_empty() {
        let files = retired.len().to_string();
        s["removed-delete-files"] = json!(files);
        s["removed-position-delete-files"] = json!(files);
        s["removed-position-deletes"] = json!(positions.to_string());
    }
    let less = [
        ("total-delete-files", retired.len() as i64),
        ("total-position-deletes", positions),
        ("total-equality-deletes", 0),
    ];
    for (key, gone) in less {
        if let Some(v) = total(key) {
            s[key] = json!(v.saturating_sub(gone).max(0).to_string());
        }
    }
    for (key, value) in properties {
        s[key.as_str()] = json!(value);
    }
    s
}

fn push(obj: &mut serde_json::Map<String, Value>, key: &str, value: Value) -> Result<(), String> {
    obj.entry(key)
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or_else(|| format!("the metadata's {key} is not a list"))?
        .push(value);
    Ok(())
}

/// `NNNNN-<uuid>.metadata.json` after the current one's number (00000 when it has none).
pub(super) fn next_metadata_name(current: &str, uuid: &str) -> String {
    let name = current.rsplit('/').next().unwrap_or_default();
    let number = name
        .split('-')
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .map_or(0, |n| n.saturating_add(1));
    format!("{number:05}-{uuid}.metadata.json")
}

fn set_metadata(metadata: &mut Vec<(String, Vec<u8>)>, key: &str, value: Vec<u8>) {
    match metadata.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => metadata.push((key.to_owned(), value)),
    }
}

/// A sync marker drawn from the snapshot's UUID (each file's own).
fn sync(new: &NewSnapshot, n: usize) -> [u8; 16] {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{}:{n}", new.uuid).as_bytes());
    let mut out = [0; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// Whether a manifest-list entry counts no added and no existing file.
fn is_empty(entry: &Datum) -> bool {
    let count = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| entry.field(n).and_then(Datum::as_long))
            .unwrap_or(0)
    };
    count(&["added_files_count", "added_data_files_count"]) == 0
        && count(&["existing_files_count", "existing_data_files_count"]) == 0
}

fn names_replaced(manifest: &Records, leaves: impl Fn(&str) -> bool) -> bool {
    manifest.records.iter().any(|e| {
        e.field("status").and_then(Datum::as_long) != Some(2)
            && e.field("data_file")
                .and_then(|f| f.field("file_path"))
                .and_then(Datum::as_str)
                .is_some_and(&leaves)
    })
}

fn field<'a>(record: &'a Datum, name: &str) -> Result<&'a Datum, String> {
    record
        .field(name)
        .ok_or_else(|| format!("a manifest record has no field {name}"))
}

fn text<'a>(record: &'a Datum, name: &str) -> Result<&'a str, String> {
    field(record, name)?
        .as_str()
        .ok_or_else(|| format!("a manifest record's {name} is not text"))
}

/// `entry` with its status, snapshot id and sequence numbers set (and its data file, when
/// given).
fn with(
    entry: &Datum,
    status: i64,
    snapshot: Option<i64>,
    (sequence, file_sequence): (Option<i64>, Option<i64>),
    file: Option<Datum>,
) -> Result<Datum, String> {
    let Datum::Record(fields) = entry else {
        return Err("a manifest entry is not a record".into());
    };
    let opt = |v: Option<i64>| v.map_or(Datum::Null, Datum::Long);
    let mut file = file;
    Ok(Datum::Record(
        fields
            .iter()
            .map(|(name, value)| {
                let value = match name.as_str() {
                    "status" => Datum::Long(status),
                    "snapshot_id" => opt(snapshot),
                    "sequence_number" => opt(sequence),
                    "file_sequence_number" => opt(file_sequence),
                    "data_file" => file.take().unwrap_or_else(|| value.clone()),
                    _ => value.clone(),
                };
                (name.clone(), value)
            })
            .collect(),
    ))
}

/// The data file record of a rewrite: the old one's, at the new path with its counts and
/// its own metrics (none of the old file's).
fn replaced_file(old: &Datum, path: &str, r: &Replacement) -> Result<Datum, String> {
    let old = without_metrics(old)?;
    let counts = |m: &std::collections::BTreeMap<i32, i64>| {
        map_datum(m.iter().map(|(k, v)| (*k, Datum::Long(*v))))
    };
    let bounds = |m: &std::collections::BTreeMap<i32, Vec<u8>>| {
        map_datum(m.iter().map(|(k, v)| (*k, Datum::Bytes(v.clone()))))
    };
    map_fields(&old, |name, value| match (name, &r.metrics) {
        ("file_path", _) => Datum::String(path.to_owned()),
        ("record_count", _) => Datum::Long(r.record_count),
        ("file_size_in_bytes", _) => Datum::Long(r.file_size),
        ("split_offsets", None) => Datum::Null,
        ("split_offsets", Some(m)) => {
            Datum::Array(m.split_offsets.iter().map(|o| Datum::Long(*o)).collect())
        }
        ("column_sizes", Some(m)) => counts(&m.column_sizes),
        ("value_counts", Some(m)) => counts(&m.value_counts),
        ("null_value_counts", Some(m)) => counts(&m.null_value_counts),
        ("nan_value_counts", Some(m)) => counts(&m.nan_value_counts),
        ("lower_bounds", Some(m)) => bounds(&m.lower_bounds),
        ("upper_bounds", Some(m)) => bounds(&m.upper_bounds),
        _ => value.clone(),
    })
}

/// A manifest's map of field id to value: an array of `{key, value}` records (Iceberg's
/// int-keyed maps); an empty map is null (left out).
fn map_datum(entries: impl Iterator<Item = (i32, Datum)>) -> Datum {
    let items: Vec<Datum> = entries
        .map(|(k, v)| {
            Datum::Record(vec![
                ("key".into(), Datum::Long(i64::from(k))),
                ("value".into(), v),
            ])
        })
        .collect();
    if items.is_empty() {
        Datum::Null
    } else {
        Datum::Array(items)
    }
}

/// A data file record without its column metrics (optional fields, left null).
fn without_metrics(file: &Datum) -> Result<Datum, String> {
    map_fields(file, |name, value| match name {
        "column_sizes" | "value_counts" | "null_value_counts" | "nan_value_counts"
        | "lower_bounds" | "upper_bounds" => Datum::Null,
        _ => value.clone(),
    })
}

fn map_fields(record: &Datum, f: impl Fn(&str, &Datum) -> Datum) -> Result<Datum, String> {
    let Datum::Record(fields) = record else {
        return Err("a data file is not a record".into());
    };
    Ok(Datum::Record(
        fields.iter().map(|(n, v)| (n.clone(), f(n, v))).collect(),
    ))
}

#[cfg(test)]
mod tests;
