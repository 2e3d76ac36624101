//! The table's snapshots read down to each manifest's live files, and what expiring some
//! of them leaves to delete: nothing a kept snapshot references (compared with `s3a://`
//! and `s3n://` read as `s3://`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::lakefile::avro::datum::{Datum, read_all};
use crate::lakefile::iceberg::{MAX_METADATA_BYTES, canonical, manifest_list};

use super::Table;

/// A snapshot's manifest list (None: a version 1 `manifests` array) and manifests.
pub(super) struct SnapshotFiles {
    id: i64,
    list: Option<String>,
    manifests: Vec<String>,
}

/// The table's snapshots, read down to each manifest's live files.
pub(super) struct Index {
    pub(super) snapshots: Vec<SnapshotFiles>,
    /// Each manifest's live entries' files, as written.
    live: BTreeMap<String, Vec<String>>,
    /// (snapshot id, path) of each `statistics` and `partition-statistics` entry.
    pub(super) statistics: Vec<(i64, String)>,
}

impl Index {
    pub(super) fn read(table: &Table<'_>) -> Result<Self, String> {
        let mut snapshots = Vec::new();
        let mut live = BTreeMap::new();
        for snapshot in array(table.metadata, "snapshots")? {
            let id = snapshot["snapshot-id"]
                .as_i64()
                .ok_or("a snapshot of the metadata has no snapshot-id")?;
            let (list, manifests) = snapshot_manifests(table, snapshot, id)?;
            for manifest in &manifests {
                if live.contains_key(manifest) {
                    continue;
                }
                let bytes = table
                    .manifests
                    .get(manifest)
                    .ok_or_else(|| format!("manifest {manifest} was not read"))?;
                live.insert(manifest.clone(), live_files(manifest, bytes)?);
            }
            snapshots.push(SnapshotFiles {
                id,
                list,
                manifests,
            });
        }
        let statistics = statistics(table.metadata)?;
        Ok(Self {
            snapshots,
            live,
            statistics,
        })
    }

    fn live_of<'a>(&'a self, manifest: &str) -> impl Iterator<Item = &'a String> {
        self.live.get(manifest).into_iter().flatten()
    }

    /// The snapshots with a live entry of a purged file (`purged` canonical).
    pub(super) fn referencing(&self, purged: &BTreeSet<String>) -> BTreeSet<i64> {
        let hit = |m: &String| self.live_of(m).any(|f| purged.contains(&canonical(f)));
        self.snapshots
            .iter()
            .filter(|s| s.manifests.iter().any(hit))
            .map(|s| s.id)
            .collect()
    }

    /// The manifest lists, manifests and live files of `snapshots`, as written.
    pub(super) fn files_of<'a>(
        &self,
        snapshots: impl Iterator<Item = &'a SnapshotFiles>,
    ) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for s in snapshots {
            out.extend(s.list.iter().cloned());
            for m in &s.manifests {
                out.insert(m.clone());
                out.extend(self.live_of(m).cloned());
            }
        }
        out
    }

    /// (files to delete, files left unreferenced) once `expired` are gone: nothing a kept
    /// snapshot references.
    pub(super) fn deletes(
        &self,
        expired: &BTreeSet<i64>,
        purged: &BTreeSet<String>,
    ) -> (Vec<String>, Vec<String>) {
        let (gone, kept): (Vec<&SnapshotFiles>, Vec<&SnapshotFiles>) =
            self.snapshots.iter().partition(|s| expired.contains(&s.id));
        let mut keep: BTreeSet<String> = self
            .files_of(kept.into_iter())
            .iter()
            .map(|p| canonical(p))
            .collect();
        let (mut delete, mut left) = (BTreeSet::new(), BTreeSet::new());
        for (id, path) in &self.statistics {
            if expired.contains(id) {
                delete.insert(path.clone());
            } else {
                keep.insert(canonical(path));
            }
        }
        for s in gone {
            delete.extend(s.list.iter().cloned());
            for m in &s.manifests {
                delete.insert(m.clone());
                for file in self.live_of(m) {
                    if purged.contains(&canonical(file)) {
                        delete.insert(file.clone());
                    } else {
                        left.insert(file.clone());
                    }
                }
            }
        }
        let unkept = |set: BTreeSet<String>| -> Vec<String> {
            set.into_iter()
                .filter(|p| !keep.contains(&canonical(p)))
                .collect()
        };
        (unkept(delete), unkept(left))
    }
}

/// A snapshot's manifest list and the manifests it names (or its version 1 `manifests`).
fn snapshot_manifests(
    table: &Table<'_>,
    snapshot: &Value,
    id: i64,
) -> Result<(Option<String>, Vec<String>), String> {
    match (snapshot.get("manifest-list"), snapshot.get("manifests")) {
        (Some(Value::String(list)), _) => {
            let bytes = table
                .manifest_lists
                .get(list)
                .ok_or_else(|| format!("manifest list {list} of snapshot {id} was not read"))?;
            let manifests = manifest_list(bytes).map_err(|e| format!("{list}: {e}"))?;
            Ok((
                Some(list.clone()),
                manifests.into_iter().map(|m| m.path).collect(),
            ))
        }
        (None | Some(Value::Null), Some(Value::Array(manifests))) => {
            let paths = manifests.iter().map(|m| {
                m.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("snapshot {id} names a manifest that is not text"))
            });
            Ok((None, paths.collect::<Result<_, _>>()?))
        }
        _ => Err(format!("snapshot {id} names no manifest list")),
    }
}

/// The files of a manifest's live entries (status 0 existing, 1 added), as written.
fn live_files(path: &str, bytes: &[u8]) -> Result<Vec<String>, String> {
    let read = read_all(bytes, MAX_METADATA_BYTES)
        .map_err(|e| format!("manifest {path} cannot be read: {e}"))?;
    let mut out = Vec::new();
    for entry in &read.records {
        let status = entry.field("status").and_then(Datum::as_long);
        let file = entry
            .field("data_file")
            .and_then(|f| f.field("file_path"))
            .and_then(Datum::as_str);
        match (status, file) {
            (Some(0 | 1), Some(file)) => out.push(file.to_owned()),
            (Some(2), Some(_)) => {}
            _ => {
                return Err(format!(
                    "manifest {path} has an entry without a known status and a file_path"
                ));
            }
        }
    }
    Ok(out)
}

/// (snapshot id, path) of the metadata's `statistics` and `partition-statistics`.
pub(super) fn statistics(metadata: &Value) -> Result<Vec<(i64, String)>, String> {
    let mut out = Vec::new();
    for key in ["statistics", "partition-statistics"] {
        for entry in array(metadata, key)? {
            let id = entry["snapshot-id"].as_i64();
            let path = entry["statistics-path"].as_str();
            let (Some(id), Some(path)) = (id, path) else {
                return Err(format!(
                    "an entry of the metadata's {key} names no snapshot-id and statistics-path"
                ));
            };
            out.push((id, path.to_owned()));
        }
    }
    Ok(out)
}

/// A list of the metadata (absent or null: empty).
pub(super) fn array<'a>(metadata: &'a Value, key: &str) -> Result<&'a [Value], String> {
    match metadata.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(format!("the metadata's {key} is not a list")),
    }
}
