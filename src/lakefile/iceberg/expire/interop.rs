//! Expiry checked by the writer users have: pyiceberg (a SQL catalog on SQLite, files in a
//! folder) makes a table of three appends, Lethe replaces the first append's data file by
//! its copy-on-write commit ([`crate::lakefile::iceberg::commit`]), plans the expiry of the
//! snapshots still holding it, writes the new `metadata.json` and deletes what the plan
//! says; pyiceberg, given the new metadata, reads the current rows as they were, and the
//! expired snapshots no longer.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{Expiry, Held, Table, expire, referenced_files};
use crate::lakefile::iceberg::commit::{Current, NewSnapshot, Replacement, overwrite};
use crate::lakefile::iceberg::interop::{local, read, run_script};
use crate::lakefile::iceberg::{manifest_entries, manifest_list};
use crate::lakefile::test_files::python;

const PYTHON: &str = r#"
import sys, json
import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField, LongType, StringType
d, mode = sys.argv[1], sys.argv[2]
cat = SqlCatalog("t", uri=f"sqlite:///{d}/catalog.db", warehouse=f"file://{d}")
def rows(t):
    return sorted(t.to_pylist(), key=lambda r: r["id"])
if mode == "make":
    cat.create_namespace("db")
    schema = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "email", StringType()))
    version = sys.argv[4] if len(sys.argv) > 4 else "2"
    t = cat.create_table("db.t", schema=schema, properties={"format-version": version})
    arrow = pa.schema([pa.field("id", pa.int64(), nullable=False), ("email", pa.string())])
    for start in (0, 10, 20):
        ids = list(range(start, start + 10))
        t.append(pa.table({"id": ids, "email": [f"u{i}@example.com" for i in ids]}, schema=arrow))
    if sys.argv[3] == "tag":
        t.manage_snapshots().create_tag(t.snapshots()[0].snapshot_id, "audit").commit()
    t = cat.load_table("db.t")
    print(json.dumps({"metadata_location": t.metadata_location, "rows": rows(t.scan().to_arrow()),
                      "snapshots": [s.snapshot_id for s in t.snapshots()]}))
else:
    t = cat.register_table(f"db.{sys.argv[3]}", sys.argv[4])
    def scan(snapshot_id):
        try:
            return rows(t.scan(snapshot_id=snapshot_id).to_arrow())
        except ValueError as e:
            return str(e)
    print(json.dumps({"rows": rows(t.scan().to_arrow()),
                      "snapshots": [s.snapshot_id for s in t.snapshots()],
                      "history": [h.snapshot_id for h in t.history()],
                      "refs": sorted(t.refs()),
                      "format_version": t.metadata.format_version,
                      "scans": {s: scan(int(s)) for s in sys.argv[5:]}}))
"#;

const LETHE_SNAPSHOT: i64 = 7_000_000_000_000_000_001;

/// A table's metadata and every file it names, read from the folder (a `metadata-log`
/// file deleted is left out, as a caller passes only what it could read).
struct Files {
    metadata: Value,
    location: String,
    lists: BTreeMap<String, Vec<u8>>,
    manifests: BTreeMap<String, Vec<u8>>,
    old: BTreeMap<String, Vec<u8>>,
}

impl Files {
    fn read(location: &str) -> Self {
        let metadata: Value = serde_json::from_slice(&read(location)).unwrap();
        let (mut lists, mut manifests) = (BTreeMap::new(), BTreeMap::new());
        for s in metadata["snapshots"].as_array().unwrap() {
            let list = s["manifest-list"].as_str().unwrap();
            let bytes = read(list);
            for m in manifest_list(&bytes).unwrap() {
                manifests.insert(m.path.clone(), read(&m.path));
            }
            lists.insert(list.to_owned(), bytes);
        }
        let log = metadata["metadata-log"].as_array().unwrap().iter();
        let old = log
            .map(|e| e["metadata-file"].as_str().unwrap().to_owned())
            .filter_map(|p| std::fs::read(local(&p)).ok().map(|b| (p, b)))
            .collect();
        Files {
            metadata,
            location: location.to_owned(),
            lists,
            manifests,
            old,
        }
    }

    fn table(&self) -> Table<'_> {
        Table {
            metadata: &self.metadata,
            metadata_location: &self.location,
            manifest_lists: &self.lists,
            manifests: &self.manifests,
            old_metadata: &self.old,
        }
    }

    fn now(&self) -> i64 {
        self.metadata["last-updated-ms"].as_i64().unwrap() + 1
    }

    /// The manifest list of the table's `n`th snapshot.
    fn list_of(&self, n: usize) -> String {
        self.metadata["snapshots"][n]["manifest-list"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Lethe's commit replacing the first snapshot's data file by a copy (as a rewrite):
/// the new metadata location and the replaced file.
fn replace_first_file(metadata_location: &str) -> (String, String) {
    let source = Files::read(metadata_location);
    let first = &source.lists[&source.list_of(0)];
    let manifest = &manifest_list(first).unwrap()[0].path;
    let entries = manifest_entries(&source.manifests[manifest]).unwrap();
    assert_eq!(entries.len(), 1, "one data file per append");
    let old = entries[0].path.clone();
    let copy = old.replace(".parquet", "-lethe.parquet");
    let size = std::fs::copy(local(&old), local(&copy)).unwrap() as i64;
    let replacement = Replacement {
        new_path: Some(copy),
        record_count: entries[0].record_count,
        file_size: size,
        metrics: None,
    };
    let current_list = source.metadata["snapshots"].as_array().unwrap().len() - 1;
    let current = Current {
        metadata: &source.metadata,
        metadata_location,
        manifest_list: &source.lists[&source.list_of(current_list)],
        manifests: &source.manifests,
    };
    let new = NewSnapshot {
        snapshot_id: LETHE_SNAPSHOT,
        timestamp_ms: source.now(),
        uuid: "0b5e7c2a-1111-4222-8333-944455556666".into(),
        properties: Vec::new(),
    };
    let commit = overwrite(
        &current,
        &BTreeMap::from([(old.clone(), replacement)]),
        &new,
    )
    .unwrap();
    for (location, bytes) in &commit.files {
        std::fs::write(local(location), bytes).unwrap();
    }
    std::fs::write(local(&commit.metadata_location), &commit.metadata).unwrap();
    (commit.metadata_location, old)
}

/// Plans the expiry of the snapshots holding `purged`.
fn plan(files: &Files, purged: &str, expire_held: bool, uuid: &str) -> Expiry {
    let purged = BTreeSet::from([purged.to_owned()]);
    expire(&files.table(), &purged, expire_held, (files.now(), uuid)).unwrap()
}

/// Does what the caller of the plan does: checks nothing the new metadata references is
/// to be deleted, writes it, deletes. The new metadata's location.
fn apply(files: &Files, expiry: &Expiry) -> String {
    let (location, bytes) = expiry.metadata.clone().unwrap();
    let metadata: Value = serde_json::from_slice(&bytes).unwrap();
    let table = Table {
        metadata: &metadata,
        metadata_location: &location,
        ..files.table()
    };
    let referenced = referenced_files(&table).unwrap();
    for gone in expiry.delete_files.iter().chain(&expiry.delete_metadata) {
        assert!(!referenced.contains(gone), "{gone} is still referenced");
        std::fs::remove_file(local(gone)).unwrap();
    }
    std::fs::write(local(&location), bytes).unwrap();
    location
}

fn ids(made: &Value) -> Vec<i64> {
    let snapshots = made["snapshots"].as_array().unwrap();
    snapshots.iter().map(|s| s.as_i64().unwrap()).collect()
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort();
    v
}

/// pyiceberg's reading of the table at `location`, and of each snapshot of `scans`.
fn read_back(d: &str, name: &str, location: &str, scans: &[i64]) -> Value {
    let scans: Vec<String> = scans.iter().map(i64::to_string).collect();
    let mut args = vec![d, "read", name, location];
    args.extend(scans.iter().map(String::as_str));
    run_script(python(), PYTHON, &args)
}

fn not_found(after: &Value, snapshot: i64) -> bool {
    let scan = &after["scans"][snapshot.to_string()];
    scan.as_str()
        .is_some_and(|e| e.contains("Snapshot not found"))
}

#[test]
fn pyiceberg_reads_the_table_after_the_snapshots_holding_a_purged_file_are_expired() {
    expire_and_read_back("2");
}

/// A format version 1 table expires alike, and its new metadata stays version 1 (no
/// sequence number written).
#[test]
fn a_format_version_1_table_expires_and_stays_version_1() {
    let metadata = expire_and_read_back("1");
    assert_eq!(metadata["format-version"], 1);
    assert!(metadata.get("last-sequence-number").is_none(), "{metadata}");
    let snapshots = metadata["snapshots"].as_array().unwrap();
    assert!(snapshots.iter().all(|s| s.get("sequence-number").is_none()));
}

/// Makes the pyiceberg table of format `version` (three appends), replaces the first
/// append's file, expires every snapshot holding it and checks what pyiceberg reads; the
/// new metadata.
fn expire_and_read_back(version: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let made = run_script(python(), PYTHON, &[d, "make", "plain", version]);
    let snapshots = ids(&made);
    let (location, purged) = replace_first_file(made["metadata_location"].as_str().unwrap());
    let files = Files::read(&location);
    let e = plan(
        &files,
        &purged,
        false,
        "5d6c1f0e-aaaa-4bbb-8ccc-9ddd0eee1fff",
    );
    assert_eq!(e.expired, sorted(snapshots.clone()));
    assert!(e.held.is_empty() && e.left_unreferenced.is_empty(), "{e:?}");
    assert!(e.delete_files.contains(&purged));
    for n in 0..3 {
        assert!(
            e.delete_files.contains(&files.list_of(n)),
            "snapshot {n}'s list"
        );
    }
    assert_eq!(
        e.delete_metadata.len(),
        4,
        "each append's metadata and Lethe's"
    );
    let new = apply(&files, &e);
    let after = read_back(d, "after", &new, &snapshots);
    assert_eq!(after["rows"], made["rows"], "the current rows are intact");
    assert_eq!(after["snapshots"], json!([LETHE_SNAPSHOT]));
    assert_eq!(after["history"], json!([LETHE_SNAPSHOT]));
    assert_eq!(after["refs"], json!(["main"]));
    assert_eq!(after["format_version"], version.parse::<i64>().unwrap());
    for s in snapshots {
        assert!(not_found(&after, s), "{s}: {}", after["scans"]);
    }
    serde_json::from_slice(&read(&new)).unwrap()
}

#[test]
fn pyiceberg_reads_a_tagged_snapshot_held_then_expired_when_held_ones_are_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let made = run_script(python(), PYTHON, &[d, "make", "tag"]);
    let snapshots = ids(&made);
    let (location, purged) = replace_first_file(made["metadata_location"].as_str().unwrap());
    let files = Files::read(&location);
    let e = plan(
        &files,
        &purged,
        false,
        "5d6c1f0e-aaaa-4bbb-8ccc-9ddd0eee1fff",
    );
    let audit = Held {
        snapshot_id: snapshots[0],
        reference: "audit".into(),
        kind: "tag".into(),
    };
    assert_eq!(e.held, std::slice::from_ref(&audit));
    assert_eq!(
        e.expired,
        sorted(snapshots[1..].to_vec()),
        "the appends after it still held the file"
    );
    let lists = sorted_paths(vec![files.list_of(1), files.list_of(2)]);
    assert_eq!(
        e.delete_files, lists,
        "the tag keeps the file and its manifest"
    );
    let new = apply(&files, &e);
    let after = read_back(d, "after", &new, &snapshots);
    assert_eq!(after["rows"], made["rows"]);
    assert_eq!(after["snapshots"], json!([snapshots[0], LETHE_SNAPSHOT]));
    assert_eq!(after["refs"], json!(["audit", "main"]));
    let first: Vec<&Value> = made["rows"].as_array().unwrap()[..10].iter().collect();
    assert_eq!(
        after["scans"][snapshots[0].to_string()],
        json!(first),
        "the tag reads"
    );
    assert!(not_found(&after, snapshots[1]) && not_found(&after, snapshots[2]));

    // The held snapshot too, planned on the expiry's own metadata.
    let files = Files::read(&new);
    let e = plan(
        &files,
        &purged,
        true,
        "6e7d2a1f-bbbb-4ccc-8ddd-9eee0fff2aaa",
    );
    assert_eq!(
        (e.expired.as_slice(), e.held.len()),
        ([snapshots[0]].as_slice(), 0)
    );
    assert_eq!(e.removed_refs, [audit]);
    assert!(e.delete_files.contains(&purged) && e.delete_files.contains(&files.list_of(0)));
    let new = apply(&files, &e);
    let after = read_back(d, "after2", &new, &snapshots[..1]);
    assert_eq!(after["rows"], made["rows"]);
    assert_eq!(after["snapshots"], json!([LETHE_SNAPSHOT]));
    assert_eq!(after["refs"], json!(["main"]));
    assert!(not_found(&after, snapshots[0]), "{}", after["scans"]);
}

fn sorted_paths(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
