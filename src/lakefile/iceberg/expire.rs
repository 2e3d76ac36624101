//! Snapshot expiry of an Iceberg table (format versions 1 and 2), planned as files: after
//! Lethe's copy-on-write commit ([`super::commit`]) the current snapshot no longer holds
//! a subject's data files, but older snapshots still do (time travel reaches them, and
//! the files stay until no snapshot references them). This plans taking those snapshots
//! out: the new `metadata.json` without them, and the files to delete once it is
//! committed. Pure: the caller reads every file passed in, then writes, commits and
//! deletes. Both versions expire alike: the new metadata only drops snapshots, refs and
//! log entries (no sequence number is written; version 1's legacy `schema` and
//! `partition-spec` stay as they are), and a version 1 snapshot naming its manifests
//! directly (legacy `manifests`) is indexed by them as others are by their manifest list.
//!
//! Invariants:
//! - a snapshot is expired only when a manifest it names has a live entry (added or
//!   existing) of a purged file; the current snapshot (`current-snapshot-id`, `refs.main`)
//!   never is: it referencing a purged file is an error (its commit did not replace it);
//! - a snapshot a tag or another branch points at is held, not expired, unless the caller
//!   expires held snapshots too (their refs then go); a snapshot only reachable as the
//!   parent of a kept one is expired (Iceberg allows a dangling `parent-snapshot-id`);
//! - nothing a kept snapshot references (its manifest list, manifests, live data and
//!   delete files, statistics) is ever to be deleted, comparing `s3a://` and `s3n://` as
//!   `s3://`; data files other than the purged ones are never deleted, only reported;
//! - whatever cannot be read (a manifest list or manifest not passed or not Avro, an entry
//!   without a status, metadata not shaped as the specification says) is an error, never
//!   a guess.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::commit::next_metadata_name;

mod index;

use super::canonical;
use index::{Index, array};

/// The table as read: its metadata and every file its snapshots name.
pub struct Table<'a> {
    /// The current `metadata.json`.
    pub metadata: &'a Value,
    pub metadata_location: &'a str,
    /// Every snapshot's manifest list (format v2; v1 `manifests` arrays also count), by path.
    pub manifest_lists: &'a BTreeMap<String, Vec<u8>>,
    /// Every manifest any of those lists names, by path.
    pub manifests: &'a BTreeMap<String, Vec<u8>>,
    /// The metadata files of the table's `metadata-log` (bytes of each that could be
    /// read), by path. A log entry not given is left in the log and not deleted.
    pub old_metadata: &'a BTreeMap<String, Vec<u8>>,
}

/// A snapshot referencing a purged file that a ref other than `main` points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Held {
    pub snapshot_id: i64,
    /// The ref's name.
    pub reference: String,
    /// `tag` or `branch`.
    pub kind: String,
}

/// The plan: the new metadata to commit, then what to delete.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expiry {
    /// The snapshots expired (sorted).
    pub expired: Vec<i64>,
    /// Snapshots referencing a purged file that a tag or another branch keeps: not
    /// expired (empty when held snapshots are expired too).
    pub held: Vec<Held>,
    /// When held snapshots are expired too: the refs removed with them.
    pub removed_refs: Vec<Held>,
    /// The new `metadata.json` (location, bytes); None when nothing is expired.
    pub metadata: Option<(String, Vec<u8>)>,
    /// To delete after the commit: the manifest lists of expired snapshots, the manifests
    /// no kept snapshot names, statistics files of expired snapshots, and the purged data
    /// files no kept snapshot references.
    pub delete_files: Vec<String>,
    /// The metadata files (the current one and `metadata-log` ones) that list an expired
    /// snapshot: deleted after the commit.
    pub delete_metadata: Vec<String>,
    /// Data and delete files only expired snapshots referenced, other than the purged
    /// ones: not Lethe's to remove, reported.
    pub left_unreferenced: Vec<String>,
}

/// Plans expiring every snapshot that references a file of `purged`; `expire_held` also
/// expires those a tag or another branch points at (and removes those refs); `now_ms` is
/// the new metadata's `last-updated-ms`, `uuid` names it.
pub fn expire(
    table: &Table<'_>,
    purged: &BTreeSet<String>,
    expire_held: bool,
    (now_ms, uuid): (i64, &str),
) -> Result<Expiry, String> {
    supported(table.metadata)?;
    let index = Index::read(table)?;
    let purged: BTreeSet<String> = purged.iter().map(|p| canonical(p)).collect();
    let hits = index.referencing(&purged);
    let current = current_ids(table.metadata)?;
    if let Some(id) = hits.intersection(&current).next() {
        return Err(format!(
            "the current snapshot {id} still references a purged data file: the commit before did not replace it"
        ));
    }
    let (expired, pinned) = decide(table.metadata, &hits, expire_held)?;
    let mut out = Expiry {
        expired: expired.iter().copied().collect(),
        ..Expiry::default()
    };
    if expire_held {
        out.removed_refs = pinned;
    } else {
        out.held = pinned;
    }
    if expired.is_empty() {
        return Ok(out);
    }
    (out.delete_files, out.left_unreferenced) = index.deletes(&expired, &purged);
    out.delete_metadata = metadata_to_delete(table, &expired)?;
    let removed: BTreeSet<&str> = out.removed_refs.iter().map(|h| &*h.reference).collect();
    let plan = (&expired, &removed, &out.delete_metadata);
    out.metadata = Some(new_metadata(table, plan, (now_ms, uuid))?);
    Ok(out)
}

/// Every file the given metadata references: manifest lists, manifests, data and delete
/// files (live entries), statistics files, and the metadata files of its `metadata-log`.
/// The caller's last guard before any delete.
pub fn referenced_files(table: &Table<'_>) -> Result<BTreeSet<String>, String> {
    supported(table.metadata)?;
    let index = Index::read(table)?;
    let mut out = index.files_of(index.snapshots.iter());
    out.extend(index.statistics.into_iter().map(|(_, path)| path));
    for entry in array(table.metadata, "metadata-log")? {
        out.insert(log_file(entry)?.to_owned());
    }
    Ok(out)
}

/// Format versions 1 and 2 (see the module's doc).
fn supported(metadata: &Value) -> Result<(), String> {
    match metadata["format-version"].as_i64() {
        Some(1 | 2) => Ok(()),
        other => Err(format!(
            "the table's format version {other:?} is not 1 or 2"
        )),
    }
}

/// The snapshots to expire, and the refs other than `main` pointing at one that
/// references a purged file (held back unless `expire_held`).
fn decide(
    metadata: &Value,
    hits: &BTreeSet<i64>,
    expire_held: bool,
) -> Result<(BTreeSet<i64>, Vec<Held>), String> {
    let mut pinned: Vec<Held> = refs(metadata)?
        .into_iter()
        .filter(|h| h.reference != "main" && hits.contains(&h.snapshot_id))
        .collect();
    pinned.sort();
    let mut expired = hits.clone();
    if !expire_held {
        for h in &pinned {
            expired.remove(&h.snapshot_id);
        }
    }
    Ok((expired, pinned))
}

/// The current snapshot: `current-snapshot-id` (unless -1) and where `refs.main` points.
fn current_ids(metadata: &Value) -> Result<BTreeSet<i64>, String> {
    let mut ids = BTreeSet::new();
    match metadata.get("current-snapshot-id") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let id = v
                .as_i64()
                .ok_or("the metadata's current-snapshot-id is not a number")?;
            if id >= 0 {
                ids.insert(id);
            }
        }
    }
    let main = refs(metadata)?
        .into_iter()
        .filter(|h| h.reference == "main");
    ids.extend(main.map(|h| h.snapshot_id));
    Ok(ids)
}

/// Every ref of the metadata.
fn refs(metadata: &Value) -> Result<Vec<Held>, String> {
    let refs = match metadata.get("refs") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(refs)) => refs,
        Some(_) => return Err("the metadata's refs are not an object".into()),
    };
    refs.iter()
        .map(|(name, r)| {
            let snapshot_id = r["snapshot-id"].as_i64();
            let kind = r["type"].as_str();
            let (Some(snapshot_id), Some(kind)) = (snapshot_id, kind) else {
                return Err(format!("ref {name} names no snapshot-id and type"));
            };
            Ok(Held {
                snapshot_id,
                reference: name.clone(),
                kind: kind.to_owned(),
            })
        })
        .collect()
}

/// The current metadata file and each `metadata-log` file given that lists an expired
/// snapshot.
fn metadata_to_delete(table: &Table<'_>, expired: &BTreeSet<i64>) -> Result<Vec<String>, String> {
    let mut out = BTreeSet::from([table.metadata_location.to_owned()]);
    for entry in array(table.metadata, "metadata-log")? {
        let path = log_file(entry)?;
        let Some(bytes) = table.old_metadata.get(path) else {
            continue;
        };
        let old: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("metadata file {path} is not JSON: {e}"))?;
        for snapshot in array(&old, "snapshots").map_err(|e| format!("{path}: {e}"))? {
            let id = snapshot["snapshot-id"]
                .as_i64()
                .ok_or_else(|| format!("a snapshot of metadata file {path} has no snapshot-id"))?;
            if expired.contains(&id) {
                out.insert(path.to_owned());
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// The current metadata without the expired snapshots, their log and statistics entries,
/// the removed refs and the deleted metadata files' log entries.
fn new_metadata(
    table: &Table<'_>,
    (expired, removed_refs, deleted): (&BTreeSet<i64>, &BTreeSet<&str>, &Vec<String>),
    (now_ms, uuid): (i64, &str),
) -> Result<(String, Vec<u8>), String> {
    let location = table.metadata["location"]
        .as_str()
        .ok_or("the metadata names no location")?
        .trim_end_matches('/');
    let mut m = table.metadata.clone();
    let obj = m.as_object_mut().ok_or("the metadata is not an object")?;
    let of_expired = |e: &Value| {
        e["snapshot-id"]
            .as_i64()
            .is_some_and(|id| expired.contains(&id))
    };
    for key in ["snapshots", "statistics", "partition-statistics"] {
        retain(obj, key, |e| !of_expired(e))?;
    }
    retain(obj, "metadata-log", |e| {
        !e["metadata-file"]
            .as_str()
            .is_some_and(|f| deleted.iter().any(|d| d == f))
    })?;
    let kept: BTreeSet<i64> = array(table.metadata, "snapshots")?
        .iter()
        .filter_map(|s| s["snapshot-id"].as_i64())
        .filter(|id| !expired.contains(id))
        .collect();
    snapshot_log(obj, &kept)?;
    if let Some(refs) = obj.get_mut("refs") {
        let refs = refs
            .as_object_mut()
            .ok_or("the metadata's refs are not an object")?;
        refs.retain(|name, _| !removed_refs.contains(name.as_str()));
    }
    obj.insert("last-updated-ms".into(), json!(now_ms));
    let name = next_metadata_name(table.metadata_location, uuid);
    let bytes = serde_json::to_vec(&m).map_err(|e| e.to_string())?;
    Ok((format!("{location}/metadata/{name}"), bytes))
}

/// The snapshot log without entries of snapshots gone, nor any entry before one (as
/// Iceberg Java does: else the history shows a snapshot current that no longer exists).
fn snapshot_log(obj: &mut Map<String, Value>, kept: &BTreeSet<i64>) -> Result<(), String> {
    let Some(log) = obj.get_mut("snapshot-log") else {
        return Ok(());
    };
    let entries = log
        .as_array_mut()
        .ok_or("the metadata's snapshot-log is not a list")?;
    let mut out = Vec::new();
    for entry in entries.iter() {
        let id = entry["snapshot-id"]
            .as_i64()
            .ok_or("a snapshot-log entry names no snapshot-id")?;
        if kept.contains(&id) {
            out.push(entry.clone());
        } else {
            out.clear();
        }
    }
    *entries = out;
    Ok(())
}

fn retain(
    obj: &mut Map<String, Value>,
    key: &str,
    keep: impl Fn(&Value) -> bool,
) -> Result<(), String> {
    match obj.get_mut(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) => {
            items.retain(|e| keep(e));
            Ok(())
        }
        Some(_) => Err(format!("the metadata's {key} is not a list")),
    }
}

fn log_file(entry: &Value) -> Result<&str, String> {
    entry["metadata-file"]
        .as_str()
        .ok_or_else(|| "a metadata-log entry names no metadata-file".to_owned())
}

#[cfg(test)]
mod interop;
#[cfg(test)]
mod tests;
