//! The expiry planned on a hand-built table: four snapshots (append `a`, append `b`,
//! delete `b` and append `c`, then Lethe's overwrite of `a` by `a2`), with statistics,
//! a snapshot log and a metadata log.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{Expiry, Held, Table, expire, referenced_files};
use crate::lakefile::avro::datum::Datum;
use crate::lakefile::avro::write::write_container;

const LIST_SCHEMA: &str = r#"{"type": "record", "name": "manifest_file", "fields": [
    {"name": "manifest_path", "type": "string"},
    {"name": "manifest_length", "type": "long"},
    {"name": "content", "type": "int"},
    {"name": "added_snapshot_id", "type": "long"}]}"#;

const MANIFEST_SCHEMA: &str = r#"{"type": "record", "name": "manifest_entry", "fields": [
    {"name": "status", "type": "int"},
    {"name": "snapshot_id", "type": ["null", "long"]},
    {"name": "data_file", "type": {"type": "record", "name": "r2", "fields": [
        {"name": "content", "type": "int"},
        {"name": "file_path", "type": "string"},
        {"name": "file_format", "type": "string"},
        {"name": "record_count", "type": "long"}]}}]}"#;

const UUID: &str = "9f0e5c1a-2222-4333-8444-955566667777";
const NOW: i64 = 1_800_000_000_000;

fn avro(schema: &str, records: Vec<Datum>) -> Vec<u8> {
    let metadata = vec![("avro.schema".to_owned(), schema.as_bytes().to_vec())];
    write_container(&metadata, &records, [7; 16]).unwrap()
}

fn list(manifests: &[String]) -> Vec<u8> {
    let record = |path: &String| {
        Datum::Record(vec![
            ("manifest_path".into(), Datum::String(path.clone())),
            ("manifest_length".into(), Datum::Long(100)),
            ("content".into(), Datum::Long(0)),
            ("added_snapshot_id".into(), Datum::Long(1)),
        ])
    };
    avro(LIST_SCHEMA, manifests.iter().map(record).collect())
}

fn manifest(entries: &[(i64, String)]) -> Vec<u8> {
    let record = |(status, path): &(i64, String)| {
        let file = Datum::Record(vec![
            ("content".into(), Datum::Long(0)),
            ("file_path".into(), Datum::String(path.clone())),
            ("file_format".into(), Datum::String("PARQUET".into())),
            ("record_count".into(), Datum::Long(10)),
        ]);
        Datum::Record(vec![
            ("status".into(), Datum::Long(*status)),
            ("snapshot_id".into(), Datum::Long(1)),
            ("data_file".into(), file),
        ])
    };
    avro(MANIFEST_SCHEMA, entries.iter().map(record).collect())
}

/// The table, under `prefix` (`s3://` or `s3a://`).
struct Fixture {
    prefix: String,
    metadata: Value,
    location: String,
    lists: BTreeMap<String, Vec<u8>>,
    manifests: BTreeMap<String, Vec<u8>>,
    old: BTreeMap<String, Vec<u8>>,
}

impl Fixture {
    fn new(prefix: &str) -> Self {
        let p = |s: &str| format!("{prefix}b/t/{s}");
        let (d, m, l) = (
            |x: &str| p(&format!("data/{x}.parquet")),
            |x: &str| p(&format!("metadata/{x}.avro")),
            |n: i64| p(&format!("metadata/snap-{n}.avro")),
        );
        let v = |n: i64| p(&format!("metadata/0000{n}-v.metadata.json"));
        let manifests = BTreeMap::from([
            (m("m1"), manifest(&[(1, d("a"))])),
            (m("m2"), manifest(&[(1, d("b"))])),
            (m("m3"), manifest(&[(2, d("b")), (1, d("c"))])),
            (m("m4"), manifest(&[(2, d("a")), (1, d("a2"))])),
        ]);
        let lists = BTreeMap::from([
            (l(1), list(&[m("m1")])),
            (l(2), list(&[m("m1"), m("m2")])),
            (l(3), list(&[m("m1"), m("m3")])),
            (l(4), list(&[m("m4"), m("m3")])),
        ]);
        let snapshot = |n: i64| {
            let parent = if n > 1 { json!(n - 1) } else { Value::Null };
            json!({"snapshot-id": n, "parent-snapshot-id": parent, "sequence-number": n,
                   "timestamp-ms": 1000 * n, "manifest-list": l(n), "summary": {"operation": "append"}})
        };
        let metadata = |n: i64| {
            json!({"format-version": 2, "table-uuid": "u", "location": p(""),
                "last-sequence-number": n, "last-updated-ms": 1000 * n,
                "current-snapshot-id": if n > 0 { json!(n) } else { json!(-1) },
                "snapshots": (1..=n).map(snapshot).collect::<Vec<_>>(),
                "snapshot-log": (1..=n).map(|i| json!({"timestamp-ms": 1000 * i, "snapshot-id": i})).collect::<Vec<_>>(),
                "metadata-log": (0..n).map(|i| json!({"timestamp-ms": 1000 * i, "metadata-file": v(i)})).collect::<Vec<_>>(),
                "refs": if n > 0 { json!({"main": {"snapshot-id": n, "type": "branch"}}) } else { json!({}) },
                "properties": {}})
        };
        let old = (0..4)
            .map(|n| (v(n), serde_json::to_vec(&metadata(n)).unwrap()))
            .collect();
        let mut current = metadata(4);
        current["statistics"] = json!([
            {"snapshot-id": 2, "statistics-path": p("metadata/2.stats"), "file-size-in-bytes": 1},
            {"snapshot-id": 4, "statistics-path": p("metadata/4.stats"), "file-size-in-bytes": 1}]);
        current["partition-statistics"] = json!([
            {"snapshot-id": 1, "statistics-path": p("metadata/1.pstats"), "file-size-in-bytes": 1}]);
        Fixture {
            prefix: prefix.to_owned(),
            metadata: current,
            location: v(4),
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

    fn path(&self, s: &str) -> String {
        format!("{}b/t/{s}", self.prefix)
    }

    /// Paths of the table, by their names under its location.
    fn paths(&self, names: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = names.iter().map(|n| self.path(n)).collect();
        out.sort();
        out
    }

    fn expire(&self, purged: &[&str], expire_held: bool) -> Result<Expiry, String> {
        let purged: BTreeSet<String> = purged.iter().map(|p| p.to_string()).collect();
        expire(&self.table(), &purged, expire_held, (NOW, UUID))
    }

    /// The new metadata, parsed, and what it references.
    fn after(&self, expiry: &Expiry) -> (Value, BTreeSet<String>) {
        let (location, bytes) = expiry.metadata.as_ref().unwrap();
        let metadata: Value = serde_json::from_slice(bytes).unwrap();
        let table = Table {
            metadata: &metadata,
            metadata_location: location,
            ..self.table()
        };
        let referenced = referenced_files(&table).unwrap();
        for gone in expiry.delete_files.iter().chain(&expiry.delete_metadata) {
            assert!(!referenced.contains(gone), "{gone} is still referenced");
        }
        (metadata, referenced)
    }
}

fn ids(metadata: &Value, key: &str) -> Vec<i64> {
    metadata[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["snapshot-id"].as_i64().unwrap())
        .collect()
}

fn log_files(metadata: &Value) -> Vec<String> {
    let log = metadata["metadata-log"].as_array().unwrap();
    log.iter()
        .map(|e| e["metadata-file"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn snapshots_referencing_a_purged_file_are_expired_with_their_files_and_metadata() {
    let f = Fixture::new("s3://");
    let e = f.expire(&["s3://b/t/data/a.parquet"], false).unwrap();
    assert_eq!(e.expired, [1, 2, 3]);
    assert!(e.held.is_empty() && e.removed_refs.is_empty());
    let deleted = [
        "metadata/snap-1.avro",
        "metadata/snap-2.avro",
        "metadata/snap-3.avro",
        "metadata/m1.avro",
        "metadata/m2.avro",
        "metadata/2.stats",
        "metadata/1.pstats",
        "data/a.parquet",
    ];
    assert_eq!(e.delete_files, f.paths(&deleted));
    assert_eq!(
        e.left_unreferenced,
        f.paths(&["data/b.parquet"]),
        "only s2 held b"
    );
    let metadata_files = [1, 2, 3, 4].map(|n| format!("metadata/0000{n}-v.metadata.json"));
    let metadata_files: Vec<&str> = metadata_files.iter().map(String::as_str).collect();
    assert_eq!(e.delete_metadata, f.paths(&metadata_files));
    let (location, _) = e.metadata.as_ref().unwrap();
    assert_eq!(
        *location,
        f.path(&format!("metadata/00005-{UUID}.metadata.json"))
    );
    let (m, referenced) = f.after(&e);
    assert_eq!(ids(&m, "snapshots"), [4]);
    assert_eq!(ids(&m, "snapshot-log"), [4]);
    assert_eq!(ids(&m, "statistics"), [4]);
    assert_eq!(ids(&m, "partition-statistics"), Vec::<i64>::new());
    assert_eq!(log_files(&m), f.paths(&["metadata/00000-v.metadata.json"]));
    assert_eq!(m["last-updated-ms"], NOW);
    assert_eq!(m["current-snapshot-id"], 4);
    assert_eq!(
        m["refs"],
        json!({"main": {"snapshot-id": 4, "type": "branch"}})
    );
    let kept = [
        "metadata/snap-4.avro",
        "metadata/m3.avro",
        "metadata/m4.avro",
    ];
    let kept = kept
        .iter()
        .chain(&["data/a2.parquet", "data/c.parquet", "metadata/4.stats"]);
    assert!(
        kept.clone().all(|k| referenced.contains(&f.path(k))),
        "{referenced:?}"
    );
}

#[test]
fn the_snapshot_log_loses_every_entry_before_an_expired_snapshot_as_iceberg_java_does() {
    let f = Fixture::new("s3://");
    let e = f.expire(&["s3://b/t/data/b.parquet"], false).unwrap();
    assert_eq!(e.expired, [2], "s3 lists b as deleted only");
    let deleted = [
        "metadata/snap-2.avro",
        "metadata/m2.avro",
        "metadata/2.stats",
        "data/b.parquet",
    ];
    assert_eq!(e.delete_files, f.paths(&deleted));
    assert!(e.left_unreferenced.is_empty(), "a is still s1's");
    let metadata_files = [
        "metadata/00002-v.metadata.json",
        "metadata/00003-v.metadata.json",
    ];
    let mut expected = f.paths(&metadata_files);
    expected.push(f.location.clone());
    assert_eq!(e.delete_metadata, expected);
    let (m, _) = f.after(&e);
    assert_eq!(ids(&m, "snapshots"), [1, 3, 4], "s3's parent dangles");
    assert_eq!(ids(&m, "snapshot-log"), [3, 4]);
    let log = f.paths(&[
        "metadata/00000-v.metadata.json",
        "metadata/00001-v.metadata.json",
    ]);
    assert_eq!(log_files(&m), log);
    assert_eq!(ids(&m, "partition-statistics"), [1]);
}

#[test]
fn a_tagged_snapshot_is_held_unless_held_ones_are_expired_too_and_its_tag_removed() {
    let mut f = Fixture::new("s3://");
    f.metadata["refs"]["audit"] = json!({"snapshot-id": 1, "type": "tag"});
    let e = f.expire(&["s3://b/t/data/a.parquet"], false).unwrap();
    let audit = Held {
        snapshot_id: 1,
        reference: "audit".into(),
        kind: "tag".into(),
    };
    assert_eq!(e.held, std::slice::from_ref(&audit));
    assert_eq!(e.expired, [2, 3]);
    let deleted = [
        "metadata/snap-2.avro",
        "metadata/snap-3.avro",
        "metadata/m2.avro",
        "metadata/2.stats",
    ];
    assert_eq!(
        e.delete_files,
        f.paths(&deleted),
        "a and m1 stay: the tag keeps s1"
    );
    let (m, _) = f.after(&e);
    assert_eq!(m["refs"]["audit"]["snapshot-id"], 1);
    assert_eq!(ids(&m, "snapshots"), [1, 4]);

    let e = f.expire(&["s3://b/t/data/a.parquet"], true).unwrap();
    assert_eq!(
        (e.expired.as_slice(), e.held.len()),
        ([1, 2, 3].as_slice(), 0)
    );
    assert_eq!(e.removed_refs, [audit]);
    assert!(e.delete_files.contains(&f.path("data/a.parquet")));
    let (m, _) = f.after(&e);
    assert_eq!(
        m["refs"],
        json!({"main": {"snapshot-id": 4, "type": "branch"}})
    );
}

#[test]
fn a_snapshot_another_branch_points_at_is_held_and_nothing_is_expired_when_all_are_held() {
    let mut f = Fixture::new("s3://");
    f.metadata["refs"]["dev"] = json!({"snapshot-id": 2, "type": "branch"});
    let e = f.expire(&["s3://b/t/data/b.parquet"], false).unwrap();
    let dev = Held {
        snapshot_id: 2,
        reference: "dev".into(),
        kind: "branch".into(),
    };
    let nothing = Expiry {
        held: vec![dev],
        ..Expiry::default()
    };
    assert_eq!(e, nothing);
}

#[test]
fn nothing_is_planned_when_no_snapshot_references_a_purged_file() {
    let f = Fixture::new("s3://");
    let gone_already = ["s3://b/t/data/zz.parquet", "s3://other/a.parquet"];
    assert_eq!(f.expire(&gone_already, false).unwrap(), Expiry::default());
    assert_eq!(f.expire(&[], true).unwrap(), Expiry::default());
}

#[test]
fn hadoop_schemes_match_purged_paths_and_deletes_keep_the_metadata_spelling() {
    let f = Fixture::new("s3a://");
    let e = f.expire(&["s3://b/t/data/a.parquet"], false).unwrap();
    assert_eq!(e.expired, [1, 2, 3]);
    assert!(
        e.delete_files
            .contains(&"s3a://b/t/data/a.parquet".to_owned())
    );
    let f = Fixture::new("s3://");
    let e = f.expire(&["s3n://b/t/data/a.parquet"], false).unwrap();
    assert_eq!(e.expired, [1, 2, 3]);
    assert!(
        e.delete_files
            .contains(&"s3://b/t/data/a.parquet".to_owned())
    );
}

#[test]
fn a_file_a_kept_snapshot_references_under_another_scheme_is_not_deleted() {
    let mut f = Fixture::new("s3://");
    // s4 names `b` as s3a:// (as a Hadoop writer would): it still holds it.
    let m5 = f.path("metadata/m5.avro");
    f.manifests.insert(
        m5.clone(),
        manifest(&[(0, "s3a://b/t/data/b.parquet".into())]),
    );
    let l4 = f.path("metadata/snap-4.avro");
    f.lists.insert(
        l4,
        list(&[f.path("metadata/m4.avro"), f.path("metadata/m3.avro"), m5]),
    );
    let e = f.expire(&["s3://b/t/data/a.parquet"], false).unwrap();
    assert_eq!(e.expired, [1, 2, 3]);
    assert!(e.left_unreferenced.is_empty(), "{:?}", e.left_unreferenced);
    let e = f.expire(&["s3://b/t/data/b.parquet"], false);
    assert!(e.unwrap_err().contains("current snapshot 4"));
}

#[test]
fn the_current_snapshot_referencing_a_purged_file_is_an_error() {
    let f = Fixture::new("s3://");
    for purged in ["s3://b/t/data/a2.parquet", "s3://b/t/data/c.parquet"] {
        let err = f.expire(&[purged], false).unwrap_err();
        assert!(err.contains("current snapshot 4"), "{err}");
    }
    // `refs.main` counts even where current-snapshot-id is gone.
    let mut f = Fixture::new("s3://");
    f.metadata["current-snapshot-id"] = json!(-1);
    assert!(f.expire(&["s3://b/t/data/c.parquet"], true).is_err());
}

#[test]
fn what_cannot_be_read_is_an_error_never_a_guess() {
    let purged = ["s3://b/t/data/a.parquet"];
    let err = |change: &dyn Fn(&mut Fixture)| {
        let mut f = Fixture::new("s3://");
        change(&mut f);
        f.expire(&purged, false).unwrap_err()
    };
    assert!(err(&|f| f.metadata["format-version"] = json!(3)).contains("not 1 or 2"));
    let m1 = "s3://b/t/metadata/m1.avro";
    assert!(err(&|f| drop(f.manifests.remove(m1))).contains("was not read"));
    let l2 = "s3://b/t/metadata/snap-2.avro";
    assert!(err(&|f| drop(f.lists.remove(l2))).contains("was not read"));
    let garbage = err(&|f| drop(f.manifests.insert(m1.into(), b"Obj\x01garbage".to_vec())));
    assert!(garbage.contains("cannot be read"), "{garbage}");
    let status = err(&|f| drop(f.manifests.insert(m1.into(), manifest(&[(5, "x".into())]))));
    assert!(status.contains("known status"), "{status}");
    let v2 = "s3://b/t/metadata/00002-v.metadata.json";
    assert!(err(&|f| drop(f.old.insert(v2.into(), b"{".to_vec()))).contains("not JSON"));
    assert!(err(&|f| f.metadata["snapshot-log"] = json!({})).contains("snapshot-log"));
    assert!(
        err(&|f| f.metadata["statistics"] = json!([{"snapshot-id": 1}])).contains("statistics")
    );
    assert!(err(&|f| f.metadata["refs"]["x"] = json!({"type": "tag"})).contains("ref x"));
    let no_list = err(&|f| f.metadata["snapshots"][0]["manifest-list"] = json!(7));
    assert!(
        no_list.contains("snapshot 1 names no manifest list"),
        "{no_list}"
    );
}

#[test]
fn a_metadata_log_file_not_read_stays_in_the_log() {
    let mut f = Fixture::new("s3://");
    let v2 = f.path("metadata/00002-v.metadata.json");
    f.old.remove(&v2);
    let e = f.expire(&["s3://b/t/data/a.parquet"], false).unwrap();
    assert!(!e.delete_metadata.contains(&v2));
    let (m, _) = f.after(&e);
    assert!(log_files(&m).contains(&v2));
}

/// The fixture as a format version 1 table: no sequence numbers, the legacy `schema` and
/// `partition-spec` beside their lists.
fn version_1(f: &mut Fixture) {
    let schema = json!({"type": "struct", "schema-id": 0, "fields": [
        {"id": 1, "name": "id", "required": true, "type": "long"}]});
    let m = f.metadata.as_object_mut().unwrap();
    m.insert("format-version".into(), json!(1));
    m.remove("last-sequence-number");
    m.insert("schema".into(), schema.clone());
    m.insert("schemas".into(), json!([schema]));
    m.insert("partition-spec".into(), json!([]));
    m.insert(
        "partition-specs".into(),
        json!([{"spec-id": 0, "fields": []}]),
    );
    for s in m["snapshots"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("sequence-number");
    }
}

#[test]
fn a_version_1_table_expires_alike_and_its_new_metadata_stays_version_1() {
    let mut f = Fixture::new("s3://");
    let v2 = f.expire(&["s3://b/t/data/a.parquet"], false).unwrap();
    version_1(&mut f);
    let e = f.expire(&["s3://b/t/data/a.parquet"], false).unwrap();
    assert_eq!(
        (&e.expired, &e.delete_files, &e.delete_metadata),
        (&v2.expired, &v2.delete_files, &v2.delete_metadata)
    );
    let (m, _) = f.after(&e);
    assert_eq!(m["format-version"], 1);
    assert!(m.get("last-sequence-number").is_none(), "{m}");
    assert_eq!(ids(&m, "snapshots"), [4]);
    assert!(m["snapshots"][0].get("sequence-number").is_none());
    for key in ["schema", "schemas", "partition-spec", "partition-specs"] {
        assert_eq!(m[key], f.metadata[key], "{key}");
    }
}

#[test]
fn a_version_one_manifests_array_counts_as_the_snapshots_manifests() {
    let mut f = Fixture::new("s3://");
    let snapshot = &mut f.metadata["snapshots"][0];
    snapshot.as_object_mut().unwrap().remove("manifest-list");
    snapshot["manifests"] = json!(["s3://b/t/metadata/m1.avro"]);
    let e = f.expire(&["s3://b/t/data/a.parquet"], false).unwrap();
    assert_eq!(e.expired, [1, 2, 3]);
    assert!(!e.delete_files.contains(&f.path("metadata/snap-1.avro")));
    assert!(e.delete_files.contains(&f.path("metadata/m1.avro")));
}

#[test]
fn any_bytes_in_place_of_a_manifest_or_list_are_an_error_or_a_plan_never_a_panic() {
    let f = Fixture::new("s3://");
    let purged: BTreeSet<String> = ["s3://b/t/data/a.parquet".to_owned()].into();
    let m1 = f.path("metadata/m1.avro");
    let l2 = f.path("metadata/snap-2.avro");
    for (key, is_list) in [(m1, false), (l2, true)] {
        let bytes = if is_list {
            &f.lists[&key]
        } else {
            &f.manifests[&key]
        };
        for cut in 0..bytes.len() {
            let mut broken = bytes.clone();
            broken[cut] ^= 0x5a;
            for version in [broken, bytes[..cut].to_vec()] {
                let (mut lists, mut manifests) = (f.lists.clone(), f.manifests.clone());
                let map = if is_list { &mut lists } else { &mut manifests };
                map.insert(key.clone(), version);
                let table = Table {
                    manifest_lists: &lists,
                    manifests: &manifests,
                    ..f.table()
                };
                let _ = expire(&table, &purged, false, (NOW, UUID));
                let _ = referenced_files(&table);
            }
        }
    }
}
