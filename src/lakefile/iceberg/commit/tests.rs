//! The snapshot built on a hand-built format version 1 table (the schemas Iceberg Java
//! writes for version 1: `snapshot_id` required, `block_size_in_bytes` required, no
//! `content`, no sequence numbers anywhere), read back through Lethe's own reader: the
//! files stay version 1 files and the metadata a version 1 metadata.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Current, NewSnapshot, Replacement, overwrite};
use crate::lakefile::avro::datum::{Datum, Records, read_all};
use crate::lakefile::avro::write::write_container;
use crate::lakefile::iceberg::metrics::DataFileMetrics;
use crate::lakefile::iceberg::{TableMetadata, live_in, manifest_entries};

const MANIFEST_V1: &str = r#"{"type": "record", "name": "manifest_entry", "fields": [
    {"name": "status", "type": "int", "field-id": 0},
    {"name": "snapshot_id", "type": "long", "field-id": 1},
    {"name": "data_file", "field-id": 2, "type": {"type": "record", "name": "r2", "fields": [
        {"name": "file_path", "type": "string", "field-id": 100},
        {"name": "file_format", "type": "string", "field-id": 101},
        {"name": "partition", "field-id": 102, "type": {"type": "record", "name": "r102", "fields": [
            {"name": "country", "type": ["null", "string"], "default": null, "field-id": 1000}]}},
        {"name": "record_count", "type": "long", "field-id": 103},
        {"name": "file_size_in_bytes", "type": "long", "field-id": 104},
        {"name": "block_size_in_bytes", "type": "long", "field-id": 105},
        {"name": "value_counts", "default": null, "field-id": 109, "type": ["null", {"type": "array",
            "logicalType": "map", "items": {"type": "record", "name": "k119_v120", "fields": [
                {"name": "key", "type": "int", "field-id": 119},
                {"name": "value", "type": "long", "field-id": 120}]}}]},
        {"name": "lower_bounds", "default": null, "field-id": 125, "type": ["null", {"type": "array",
            "logicalType": "map", "items": {"type": "record", "name": "k126_v127", "fields": [
                {"name": "key", "type": "int", "field-id": 126},
                {"name": "value", "type": "bytes", "field-id": 127}]}}]},
        {"name": "split_offsets", "default": null, "field-id": 132,
            "type": ["null", {"type": "array", "items": "long", "element-id": 133}]}]}}]}"#;

const LIST_V1: &str = r#"{"type": "record", "name": "manifest_file", "fields": [
    {"name": "manifest_path", "type": "string", "field-id": 500},
    {"name": "manifest_length", "type": "long", "field-id": 501},
    {"name": "partition_spec_id", "type": "int", "field-id": 502},
    {"name": "added_snapshot_id", "type": "long", "field-id": 503},
    {"name": "added_data_files_count", "type": ["null", "int"], "default": null, "field-id": 504},
    {"name": "existing_data_files_count", "type": ["null", "int"], "default": null, "field-id": 505},
    {"name": "deleted_data_files_count", "type": ["null", "int"], "default": null, "field-id": 506},
    {"name": "partitions", "default": null, "field-id": 507, "type": ["null", {"type": "array",
        "items": {"type": "record", "name": "r508", "fields": [
            {"name": "contains_null", "type": "boolean", "field-id": 509},
            {"name": "lower_bound", "type": ["null", "bytes"], "default": null, "field-id": 510},
            {"name": "upper_bound", "type": ["null", "bytes"], "default": null, "field-id": 511}]}}]},
    {"name": "added_rows_count", "type": ["null", "long"], "default": null, "field-id": 512},
    {"name": "existing_rows_count", "type": ["null", "long"], "default": null, "field-id": 513},
    {"name": "deleted_rows_count", "type": ["null", "long"], "default": null, "field-id": 514}]}"#;

const UUID: &str = "3c1d2e4f-5555-4666-8777-988899990000";
const NEW_SNAPSHOT: i64 = 8_000_000_000_000_000_003;

fn avro(schema: &str, records: Vec<Datum>) -> Vec<u8> {
    let metadata = vec![
        ("avro.schema".to_owned(), schema.as_bytes().to_vec()),
        ("format-version".to_owned(), b"1".to_vec()),
        ("partition-spec-id".to_owned(), b"0".to_vec()),
    ];
    write_container(&metadata, &records, [3; 16]).unwrap()
}

fn path(name: &str) -> String {
    format!("s3://b/t/{name}")
}

/// A data file of `country`: its path, rows and bounds (the subject's id in `a`'s).
fn data_file(name: &str, country: &str, rows: i64) -> Datum {
    let bound = Datum::Record(vec![
        ("key".into(), Datum::Long(2)),
        (
            "value".into(),
            Datum::Bytes(format!("{name}@example.com").into()),
        ),
    ]);
    Datum::Record(vec![
        (
            "file_path".into(),
            Datum::String(path(&format!("data/{name}.parquet"))),
        ),
        ("file_format".into(), Datum::String("PARQUET".into())),
        (
            "partition".into(),
            Datum::Record(vec![("country".into(), Datum::String(country.into()))]),
        ),
        ("record_count".into(), Datum::Long(rows)),
        ("file_size_in_bytes".into(), Datum::Long(100 * rows)),
        ("block_size_in_bytes".into(), Datum::Long(67_108_864)),
        ("value_counts".into(), Datum::Null),
        ("lower_bounds".into(), Datum::Array(vec![bound])),
        ("split_offsets".into(), Datum::Array(vec![Datum::Long(4)])),
    ])
}

fn entry(status: i64, snapshot: i64, file: Datum) -> Datum {
    Datum::Record(vec![
        ("status".into(), Datum::Long(status)),
        ("snapshot_id".into(), Datum::Long(snapshot)),
        ("data_file".into(), file),
    ])
}

fn list_entry(manifest: &str, length: usize, snapshot: i64, added: i64) -> Datum {
    let count = |n: i64| Datum::Long(n);
    Datum::Record(vec![
        ("manifest_path".into(), Datum::String(manifest.to_owned())),
        ("manifest_length".into(), Datum::Long(length as i64)),
        ("partition_spec_id".into(), Datum::Long(0)),
        ("added_snapshot_id".into(), Datum::Long(snapshot)),
        ("added_data_files_count".into(), count(added)),
        ("existing_data_files_count".into(), count(0)),
        ("deleted_data_files_count".into(), count(0)),
        ("partitions".into(), Datum::Null),
        ("added_rows_count".into(), count(3 * added)),
        ("existing_rows_count".into(), count(0)),
        ("deleted_rows_count".into(), count(0)),
    ])
}

/// A version 1 table of two appends (snapshot 1: `a` and `b`; snapshot 2: `c`), the
/// metadata as Iceberg Java writes version 1 (legacy `schema` and `partition-spec` beside
/// `schemas` and `partition-specs`, no sequence numbers).
struct Table {
    metadata: Value,
    list: Vec<u8>,
    manifests: BTreeMap<String, Vec<u8>>,
}

fn table() -> Table {
    let m1 = path("metadata/m1.avro");
    let m2 = path("metadata/m2.avro");
    let first = avro(
        MANIFEST_V1,
        vec![
            entry(1, 1, data_file("a", "de", 3)),
            entry(1, 1, data_file("b", "fr", 3)),
        ],
    );
    let second = avro(MANIFEST_V1, vec![entry(1, 2, data_file("c", "de", 3))]);
    let list = avro(
        LIST_V1,
        vec![
            list_entry(&m2, second.len(), 2, 1),
            list_entry(&m1, first.len(), 1, 2),
        ],
    );
    let schema = json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": true, "type": "long"},
        {"id": 2, "name": "email", "required": false, "type": "string"},
        {"id": 3, "name": "country", "required": false, "type": "string"}]});
    let spec =
        json!([{"name": "country", "transform": "identity", "source-id": 3, "field-id": 1000}]);
    let snapshot = |id: i64| {
        let parent = if id > 1 { json!(id - 1) } else { Value::Null };
        json!({"snapshot-id": id, "parent-snapshot-id": parent, "timestamp-ms": 1000 * id,
               "manifest-list": path(&format!("metadata/snap-{id}.avro")),
               "summary": {"operation": "append", "total-data-files": (id + 1).to_string()},
               "schema-id": 0})
    };
    let metadata = json!({
        "format-version": 1, "table-uuid": "u", "location": path(""),
        "last-updated-ms": 2000, "last-column-id": 3,
        "schema": schema, "schemas": [schema], "current-schema-id": 0,
        "partition-spec": spec, "partition-specs": [{"spec-id": 0, "fields": spec}],
        "default-spec-id": 0, "last-partition-id": 1000,
        "properties": {}, "current-snapshot-id": 2,
        "snapshots": [snapshot(1), snapshot(2)],
        "snapshot-log": [{"timestamp-ms": 1000, "snapshot-id": 1}, {"timestamp-ms": 2000, "snapshot-id": 2}],
        "metadata-log": [{"timestamp-ms": 1000, "metadata-file": path("metadata/00000-x.metadata.json")}],
        "refs": {"main": {"snapshot-id": 2, "type": "branch"}}
    });
    Table {
        metadata,
        list,
        manifests: BTreeMap::from([(m1, first), (m2, second)]),
    }
}

fn new_snapshot() -> NewSnapshot {
    NewSnapshot {
        snapshot_id: NEW_SNAPSHOT,
        timestamp_ms: 3000,
        uuid: UUID.into(),
        properties: vec![("lethe.commit".into(), "job/people".into())],
    }
}

/// `a` (the subject's rows in it) rewritten to `a2` with its own bounds; `b` untouched.
fn replaced() -> BTreeMap<String, Replacement> {
    let metrics = DataFileMetrics {
        record_count: 2,
        file_size_in_bytes: 150,
        lower_bounds: BTreeMap::from([(2, b"bob@example.com".to_vec())]),
        split_offsets: vec![4],
        ..DataFileMetrics::default()
    };
    let replacement = Replacement {
        new_path: Some(path("data/a2.parquet")),
        record_count: 2,
        file_size: 150,
        metrics: Some(metrics),
    };
    BTreeMap::from([(path("data/a.parquet"), replacement)])
}

fn read(bytes: &[u8]) -> Records {
    read_all(bytes, 1 << 24).unwrap()
}

fn names(record: &Datum) -> Vec<&str> {
    match record {
        Datum::Record(fields) => fields.iter().map(|(n, _)| n.as_str()).collect(),
        _ => Vec::new(),
    }
}

/// Lethe's commit of `replaced` on [`table`]: the table, the commit, and every file of
/// both (by location).
fn commit(
    replaced: &BTreeMap<String, Replacement>,
) -> (Table, super::Commit, BTreeMap<String, Vec<u8>>) {
    let t = table();
    let location = path("metadata/00001-y.metadata.json");
    let current = Current {
        metadata: &t.metadata,
        metadata_location: &location,
        manifest_list: &t.list,
        manifests: &t.manifests,
    };
    let commit = overwrite(&current, replaced, &new_snapshot()).unwrap();
    let mut all = t.manifests.clone();
    all.extend(commit.files.iter().cloned());
    (t, commit, all)
}

/// The new snapshot's manifest list location.
fn list_of(commit: &super::Commit) -> String {
    let parsed = TableMetadata::parse(&commit.metadata).unwrap();
    parsed.snapshots[2].manifest_list.clone().unwrap()
}

#[test]
fn a_version_1_table_gets_version_1_metadata_that_lethes_reader_reads_back() {
    let (t, commit, all) = commit(&replaced());
    assert_eq!(commit.removed, [path("data/a.parquet")]);
    assert_eq!(
        commit.metadata_location,
        path(&format!("metadata/00002-{UUID}.metadata.json"))
    );

    // The metadata: still version 1, no sequence number, the legacy fields as they were.
    let m: Value = serde_json::from_slice(&commit.metadata).unwrap();
    assert_eq!(m["format-version"], 1);
    assert!(m.get("last-sequence-number").is_none(), "{m}");
    for key in ["schema", "schemas", "partition-spec", "partition-specs"] {
        assert_eq!(m[key], t.metadata[key], "{key}");
    }
    assert_eq!(m["current-snapshot-id"], NEW_SNAPSHOT);
    assert_eq!(m["refs"]["main"]["snapshot-id"], NEW_SNAPSHOT);
    let snapshots = m["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 3);
    assert!(snapshots.iter().all(|s| s.get("sequence-number").is_none()));
    let ours = &snapshots[2];
    assert_eq!(ours["parent-snapshot-id"], 2);
    assert_eq!(ours["schema-id"], 0);
    assert_eq!(ours["summary"]["operation"], "overwrite");
    assert_eq!(ours["summary"]["total-data-files"], "3");
    assert_eq!(ours["summary"]["lethe.commit"], "job/people");

    // Read back as Lethe reads a table: exactly `a2`, `b` and `c` live.
    let list_path = list_of(&commit);
    let live = live_in(&all[&list_path], &all).unwrap();
    let expected = ["data/a2.parquet", "data/b.parquet", "data/c.parquet"].map(path);
    assert_eq!(live.data_files.into_iter().collect::<Vec<_>>(), expected);
}

#[test]
fn the_manifest_and_manifest_list_written_for_a_version_1_table_are_version_1_files() {
    let (t, commit, all) = commit(&replaced());
    let list_path = list_of(&commit);
    // The manifest list: version 1's fields only, the untouched manifest carried over.
    let list = read(&all[&list_path]);
    assert_eq!(list.metadata_text("format-version"), Some("1"));
    assert_eq!(list.metadata_text("sequence-number"), None);
    assert_eq!(
        list.metadata_text("snapshot-id"),
        Some("8000000000000000003")
    );
    assert_eq!(list.metadata_text("parent-snapshot-id"), Some("2"));
    let original = read(&t.list);
    assert_eq!(names(&list.records[0]), names(&original.records[0]));
    assert_eq!(list.records[0], original.records[0], "m2 carried over");
    let rewritten = &list.records[1];
    let long = |r: &Datum, n: &str| r.field(n).and_then(Datum::as_long);
    assert_eq!(long(rewritten, "added_snapshot_id"), Some(NEW_SNAPSHOT));
    assert_eq!(long(rewritten, "added_data_files_count"), Some(1));
    assert_eq!(long(rewritten, "existing_data_files_count"), Some(1));
    assert_eq!(long(rewritten, "added_rows_count"), Some(2));
    assert_eq!(long(rewritten, "existing_rows_count"), Some(3));

    // The rewritten manifest: version 1's entries, each with its snapshot id.
    let manifest_path = rewritten.field("manifest_path").unwrap().as_str().unwrap();
    let manifest = read(&all[manifest_path]);
    assert_eq!(manifest.metadata_text("format-version"), Some("1"));
    let schema = manifest.metadata_text("avro.schema").unwrap();
    assert!(!schema.contains("sequence_number") && !schema.contains("\"content\""));
    let by_path: BTreeMap<&str, &Datum> = manifest
        .records
        .iter()
        .map(|e| {
            let file = e.field("data_file").unwrap();
            (file.field("file_path").unwrap().as_str().unwrap(), e)
        })
        .collect();
    let (a2, b) = (&path("data/a2.parquet"), &path("data/b.parquet"));
    assert_eq!(by_path.len(), 2, "no DELETED entry for `a`");
    let (added, existing) = (by_path[a2.as_str()], by_path[b.as_str()]);
    assert_eq!(
        (long(added, "status"), long(added, "snapshot_id")),
        (Some(1), Some(NEW_SNAPSHOT))
    );
    assert_eq!(
        (long(existing, "status"), long(existing, "snapshot_id")),
        (Some(0), Some(1)),
        "its own snapshot id kept"
    );
    let file = added.field("data_file").unwrap();
    assert_eq!(long(file, "record_count"), Some(2));
    assert_eq!(long(file, "block_size_in_bytes"), Some(67_108_864));
    let entries = manifest_entries(&all[manifest_path]).unwrap();
    assert_eq!(entries.len(), 2);
    // Nothing of the new files names the subject (`a`'s bound): `a2` carries its own.
    for (location, bytes) in &commit.files {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains("a@example.com"), "{location}");
    }
}

#[test]
fn a_version_1_manifest_whose_only_file_lost_every_row_is_dropped() {
    // `c`, alone in its manifest, loses every row: the manifest is dropped.
    let none = Replacement {
        new_path: None,
        record_count: 0,
        file_size: 0,
        metrics: None,
    };
    let (_, commit, all) = commit(&BTreeMap::from([(path("data/c.parquet"), none)]));
    let list_path = list_of(&commit);
    let list = read(&all[&list_path]);
    assert_eq!(list.records.len(), 1, "m2 dropped, m1 carried over");
    let live = live_in(&all[&list_path], &all).unwrap();
    let expected = ["data/a.parquet", "data/b.parquet"].map(path);
    assert_eq!(live.data_files.into_iter().collect::<Vec<_>>(), expected);
}

#[test]
fn format_versions_other_than_1_and_2_are_refused() {
    let mut t = table();
    let location = path("metadata/00001-y.metadata.json");
    for version in [json!(3), json!(0), Value::Null] {
        t.metadata["format-version"] = version;
        let current = Current {
            metadata: &t.metadata,
            metadata_location: &location,
            manifest_list: &t.list,
            manifests: &t.manifests,
        };
        let err = overwrite(&current, &replaced(), &new_snapshot()).unwrap_err();
        assert!(err.contains("not 1 or 2"), "{err}");
    }
}
