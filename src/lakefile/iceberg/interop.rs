//! Commits checked by the writer users have: pyiceberg makes a table (a SQL catalog on
//! SQLite, files in a folder), Lethe rewrites the data files holding a subject with its
//! exact Parquet rewrite and builds the copy-on-write snapshot ([`super::commit`]), and
//! pyiceberg and DuckDB's iceberg extension, given the new `metadata.json`, read the table:
//! the rows are the source's without the subject's, and the snapshot before still reads as
//! it was. Tables of format versions 1 and 2 alike.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::commit::{Current, NewSnapshot, Replacement, overwrite};
use super::{TableMetadata, manifest_list};
use crate::lakefile::format::{Matching, Records};
use crate::lakefile::match_set::MatchSet;
use crate::lakefile::test_files::python;

const PYTHON: &str = r#"
import sys, json, datetime
import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField, LongType, StringType
from pyiceberg.partitioning import PartitionSpec, PartitionField
from pyiceberg.transforms import IdentityTransform
d, mode = sys.argv[1], sys.argv[2]
cat = SqlCatalog("t", uri=f"sqlite:///{d}/catalog.db", warehouse=f"file://{d}")
def rows(t):
    return sorted(t.to_pylist(), key=lambda r: r["id"])
if mode == "make":
    cat.create_namespace("db")
    schema = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "email", StringType()),
                    NestedField(3, "country", StringType()))
    spec = PartitionSpec(PartitionField(source_id=3, field_id=1000, transform=IdentityTransform(), name="country"))
    t = cat.create_table("db.t", schema=schema, partition_spec=spec,
                         properties={"format-version": sys.argv[3]})
    arrow = pa.schema([pa.field("id", pa.int64(), nullable=False), ("email", pa.string()), ("country", pa.string())])
    for ids in (range(0, 40), range(40, 70)):
        t.append(pa.table({"id": list(ids),
                           "email": ["ann@example.com" if i % 18 == 5 else f"u{i}@example.com" for i in ids],
                           "country": ["de" if i % 2 else "fr" for i in ids]}, schema=arrow))
    t = cat.load_table("db.t")
    print(json.dumps({"metadata_location": t.metadata_location, "rows": rows(t.scan().to_arrow()),
                      "format_version": t.metadata.format_version}))
else:
    t = cat.register_table("db.after", sys.argv[3])
    old = int(sys.argv[4])
    print(json.dumps({"rows": rows(t.scan().to_arrow()),
                      "u7": rows(t.scan(row_filter="email = 'u7@example.com'").to_arrow()),
                      "before": rows(t.scan(snapshot_id=old).to_arrow()),
                      "snapshots": [s.snapshot_id for s in t.snapshots()],
                      "operation": t.current_snapshot().summary.operation.value,
                      "format_version": t.metadata.format_version}))
"#;

/// DuckDB's own reader, from PyPI's packaged extensions (`INSTALL` would download them):
/// the rows of the new snapshot, of the snapshot before by its id, and of the previous
/// `metadata.json`. Autoloading is off, so a missing extension fails rather than fetches.
const DUCKDB: &str = r#"
import sys, json, glob, os, importlib
import duckdb
def extension(name):
    package = importlib.import_module(f"duckdb_extension_{name}")
    found = glob.glob(os.path.join(os.path.dirname(package.__file__), "extensions", "*",
                                   f"{name}.duckdb_extension"))
    assert len(found) == 1, found
    return found[0]
con = duckdb.connect(config={"autoinstall_known_extensions": False,
                             "autoload_known_extensions": False})
con.execute(f"LOAD '{extension('avro')}'")  # iceberg reads its manifests through avro
con.execute(f"LOAD '{extension('iceberg')}'")
def rows(options, params):
    cur = con.execute(f"SELECT id, email, country FROM iceberg_scan(?{options}) ORDER BY id", params)
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]
new, old_id, old = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print(json.dumps({"rows": rows("", [new]),
                  "before": rows(", snapshot_from_id = ?", [new, old_id]),
                  "before_file": rows("", [old])}))
"#;

/// The interpreter of the DuckDB virtualenv (`LETHE_DUCKDB_ICEBERG_VENV`, made by
/// `scripts/test`): DuckDB 1.5 with its iceberg and avro extensions from PyPI, apart from
/// the corpus venv, whose newer DuckDB the packaged extensions do not fit.
fn duckdb_python() -> PathBuf {
    let venv = std::env::var_os("LETHE_DUCKDB_ICEBERG_VENV").map_or_else(
        || PathBuf::from("/var/tmp/lethe/duckdb-iceberg-venv"),
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test (its make_duckdb_iceberg step makes the virtualenv)",
        python.display()
    );
    python
}

fn run(args: &[&str]) -> Value {
    run_script(python(), PYTHON, args)
}

pub(super) fn run_script(python: PathBuf, script: &str, args: &[&str]) -> Value {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(super) fn local(location: &str) -> &Path {
    Path::new(
        location
            .strip_prefix("file://")
            .expect("a file:// location"),
    )
}

pub(super) fn read(location: &str) -> Vec<u8> {
    std::fs::read(local(location)).unwrap()
}

/// The table's current snapshot as pyiceberg left it: its metadata, manifest list,
/// manifests (by location) and data files.
struct Source {
    metadata: Value,
    parsed: TableMetadata,
    parent: i64,
    list: Vec<u8>,
    manifests: BTreeMap<String, Vec<u8>>,
    data_files: Vec<String>,
}

fn load(metadata_location: &str) -> Source {
    let metadata_bytes = read(metadata_location);
    let metadata: Value = serde_json::from_slice(&metadata_bytes).unwrap();
    let parsed = TableMetadata::parse(&metadata_bytes).unwrap();
    let parent = parsed.current_snapshot_id.unwrap();
    let current = parsed
        .snapshots
        .iter()
        .find(|s| s.snapshot_id == parent)
        .unwrap();
    let list = read(current.manifest_list.as_ref().unwrap());
    let mut manifests = BTreeMap::new();
    let mut data_files = Vec::new();
    for m in manifest_list(&list).unwrap() {
        let bytes = read(&m.path);
        data_files.extend(
            super::manifest_entries(&bytes)
                .unwrap()
                .into_iter()
                .map(|e| e.path),
        );
        manifests.insert(m.path, bytes);
    }
    Source {
        metadata,
        parsed,
        parent,
        list,
        manifests,
        data_files,
    }
}

#[test]
fn pyiceberg_and_duckdb_read_the_copy_on_write_snapshot_without_the_subjects_rows() {
    commit_and_read_back(2);
}

/// A format version 1 table (pyiceberg's `format-version` property): Lethe's snapshot is
/// written in version 1's files, and both readers read it as version 1.
#[test]
fn a_format_version_1_table_is_committed_as_version_1_and_read_back_by_both_readers() {
    let (made, commit) = commit_and_read_back(1);
    assert_eq!(made["format_version"], 1);
    let metadata: Value = serde_json::from_slice(&commit.metadata).unwrap();
    assert_eq!(metadata["format-version"], 1);
    assert!(metadata.get("last-sequence-number").is_none(), "{metadata}");
    for (location, bytes) in &commit.files {
        let read = crate::lakefile::avro::datum::read_all(bytes, 1 << 24).unwrap();
        assert_eq!(
            read.metadata_text("format-version"),
            Some("1"),
            "{location}"
        );
        let schema = read.metadata_text("avro.schema").unwrap();
        assert!(!schema.contains("sequence_number"), "{location}: {schema}");
    }
}

/// Makes the pyiceberg table of format `version`, commits Lethe's snapshot erasing the
/// subject, and checks what pyiceberg and DuckDB read; what pyiceberg made, and the commit.
fn commit_and_read_back(version: u8) -> (Value, super::commit::Commit) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let made = run(&[d, "make", &version.to_string()]);
    let metadata_location = made["metadata_location"].as_str().unwrap();
    let source = load(metadata_location);
    assert_eq!(source.data_files.len(), 4, "two countries, two appends");
    let replaced = rewrite_subjects(&source.data_files, &source.parsed);
    assert_eq!(replaced.len(), 2, "the two files of `de`: {replaced:?}");
    let current = Current {
        metadata: &source.metadata,
        metadata_location,
        manifest_list: &source.list,
        manifests: &source.manifests,
    };
    let new = NewSnapshot {
        snapshot_id: 7_000_000_000_000_000_001,
        timestamp_ms: source.metadata["last-updated-ms"].as_i64().unwrap() + 1,
        uuid: "0b5e7c2a-1111-4222-8333-944455556666".into(),
        properties: Vec::new(),
    };
    let commit = overwrite(&current, &replaced, &new).unwrap();
    assert_eq!(commit.removed.len(), replaced.len());
    for (location, bytes) in &commit.files {
        std::fs::write(local(location), bytes).unwrap();
    }
    std::fs::write(local(&commit.metadata_location), &commit.metadata).unwrap();
    // Nothing the new snapshot's manifests or metadata hold names the subject (bounds
    // included), decompressed; the old manifests did.
    assert!(
        source.manifests.values().any(|m| holds(m)),
        "the old bounds name her"
    );
    for (location, bytes) in &commit.files {
        assert!(!holds(bytes), "{location}");
    }
    assert!(!contains(&commit.metadata, b"ann@example.com"));
    assert_eq!(
        added_with_bounds(&commit.files),
        replaced.len(),
        "each rewrite's own metrics"
    );
    let parent = source.parent.to_string();
    let after = run(&[d, "read", &commit.metadata_location, &parent]);
    check_pyiceberg(&after, &made["rows"], new.snapshot_id);
    assert_eq!(
        after["format_version"], version,
        "the table keeps its version"
    );
    let args = [
        commit.metadata_location.as_str(),
        &parent,
        metadata_location,
    ];
    let duck = run_script(duckdb_python(), DUCKDB, &args);
    assert_eq!(
        duck["rows"], after["rows"],
        "DuckDB reads what pyiceberg reads"
    );
    assert_eq!(duck["before"], made["rows"], "the snapshot before, by id");
    assert_eq!(duck["before_file"], made["rows"], "the old metadata.json");
    (made, commit)
}

/// What pyiceberg reads from the new snapshot: the source's rows without the subject's,
/// the snapshot before as it was, and a filtered scan finding what is there.
fn check_pyiceberg(after: &Value, source_rows: &Value, snapshot_id: i64) {
    let source = source_rows.as_array().unwrap();
    let kept: Vec<&Value> = source
        .iter()
        .filter(|r| r["email"] != "ann@example.com")
        .collect();
    assert_eq!(
        after["rows"].as_array().unwrap().iter().collect::<Vec<_>>(),
        kept
    );
    assert_eq!(
        &after["before"], source_rows,
        "the snapshot before is as it was"
    );
    assert_eq!(after["operation"], "overwrite");
    // A filtered scan (pruned by the rewrites' bounds) finds what is there.
    let u7: Vec<&Value> = source
        .iter()
        .filter(|r| r["email"] == "u7@example.com")
        .collect();
    assert_eq!(
        after["u7"].as_array().unwrap().iter().collect::<Vec<_>>(),
        u7
    );
    assert_eq!(
        after["snapshots"].as_array().unwrap().last(),
        Some(&json!(snapshot_id))
    );
}

/// Each data file rewritten by Lethe's exact Parquet rewrite to a new name, when it holds
/// the subject.
fn rewrite_subjects(
    data_files: &[String],
    metadata: &TableMetadata,
) -> BTreeMap<String, Replacement> {
    let ids = MatchSet::from_values(&[json!("ann@example.com")]);
    let columns = vec!["email".to_owned()];
    let mut replaced = BTreeMap::new();
    for file in data_files {
        let new_path = file.replace(".parquet", "-lethe.parquet");
        let out = std::fs::File::create(local(&new_path)).unwrap();
        let m = Matching {
            columns: &columns,
            ids: &ids,
            every_row: false,
            max_record: 1 << 20,
            field_ids: None,
            drop_rows: &[],
        };
        let r = Records::Parquet
            .rewrite(file, local(file), (out, local(&new_path)), m)
            .unwrap();
        if r.records_removed == 0 {
            std::fs::remove_file(local(&new_path)).unwrap();
            continue;
        }
        let size = std::fs::metadata(local(&new_path)).unwrap().len() as i64;
        let left = (r.records_before - r.records_removed) as i64;
        let metrics = metrics_of(local(&new_path), size, metadata);
        assert_eq!(metrics.record_count, left);
        assert!(
            metrics.lower_bounds.len() >= 2,
            "field ids kept by the rewrite: {metrics:?}"
        );
        let replacement = Replacement {
            new_path: Some(new_path),
            record_count: left,
            file_size: size,
            metrics: Some(metrics),
        };
        replaced.insert(file.clone(), replacement);
    }
    replaced
}

/// A rewrite's metrics under the table's current schema and properties.
fn metrics_of(path: &Path, size: i64, metadata: &TableMetadata) -> super::metrics::DataFileMetrics {
    use parquet::file::reader::FileReader;
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(
        std::fs::File::open(path).unwrap(),
    )
    .unwrap();
    let schema = metadata.schemas.last().unwrap();
    super::metrics::data_file_metrics(reader.metadata(), size as u64, schema, &metadata.properties)
        .unwrap()
}

/// The `ADDED` manifest entries among `files` whose data file carries lower bounds.
fn added_with_bounds(files: &[(String, Vec<u8>)]) -> usize {
    use crate::lakefile::avro::datum::Datum;
    let entries = files.iter().flat_map(|(_, b)| {
        crate::lakefile::avro::datum::read_all(b, 1 << 24)
            .unwrap()
            .records
    });
    entries
        .filter(|e| e.field("status").and_then(Datum::as_long) == Some(1))
        .filter(|e| {
            let bounds = e.field("data_file").and_then(|f| f.field("lower_bounds"));
            bounds
                .and_then(Datum::as_array)
                .is_some_and(|b| !b.is_empty())
        })
        .count()
}

/// Whether an Avro file names the subject in any value, decompressed.
fn holds(bytes: &[u8]) -> bool {
    let read = crate::lakefile::avro::datum::read_all(bytes, 1 << 24).unwrap();
    read.records.iter().any(|r| names(r, b"ann@example.com"))
}

/// Whether a value holds `needle` in any text or bytes (a bound is bytes).
fn names(value: &crate::lakefile::avro::datum::Datum, needle: &[u8]) -> bool {
    use crate::lakefile::avro::datum::Datum;
    match value {
        Datum::String(s) => contains(s.as_bytes(), needle),
        Datum::Bytes(b) | Datum::Fixed(b) => contains(b, needle),
        Datum::Record(fields) | Datum::Map(fields) => fields.iter().any(|(_, v)| names(v, needle)),
        Datum::Array(items) => items.iter().any(|v| names(v, needle)),
        _ => false,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
