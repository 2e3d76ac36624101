//! Files written by fastavro, the writer users have, at test time: every codec, several
//! blocks, nested records, nullable unions, decimals on bytes and on fixed, uuids, dates,
//! timestamps and user metadata. After forget, fastavro reads the rewrite back: its
//! records are the source's without the subjects' (decided by Python on the values it
//! reads), its schema and metadata are the source's, and every block without a subject is
//! byte for byte the source's block. The interpreter is the corpus virtualenv
//! (`LETHE_CORPUS_VENV`, default `/var/tmp/lethe/corpus-venv`), as the API tests use it.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use super::*;
use crate::lakefile::match_set::MatchSet;
use crate::lakefile::test_files::python;

/// The Python every script starts with: fastavro's `zstandard` codec on the `zstandard`
/// package (tests/fixtures/fastavro_zstandard.py), then the helpers the scripts share.
const PRELUDE: &str = concat!(
    include_str!("../../../tests/fixtures/fastavro_zstandard.py"),
    r#"
CODECS = ["null", "deflate", "snappy", "zstandard", "bzip2", "xz"]
UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
def ms(t): return (t - EPOCH) // datetime.timedelta(milliseconds=1)
def us(t): return (t - EPOCH) // datetime.timedelta(microseconds=1)
def local_ms(t): return (t - datetime.datetime(1970, 1, 1)) // datetime.timedelta(milliseconds=1)
"#,
);

/// Writes `<dir>/<codec>.avro` for every codec (the same 60 records, blocks of about
/// four), and prints the ids to forget: `[column, value]` pairs taken from the records
/// as fastavro reads them, one per kind of column, and every id of one whole block.
const WRITE: &str = r#"
schema = {"type": "record", "name": "Customer", "namespace": "lethe.test", "fields": [
  {"name": "id", "type": "long"},
  {"name": "contact", "type": {"type": "record", "name": "Contact", "fields": [
      {"name": "email", "type": ["null", "string"]},
      {"name": "phone", "type": ["null", "string"], "default": None}]}},
  {"name": "previous", "type": ["null", "Contact"]},
  {"name": "balance", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
  {"name": "limit", "type": {"type": "fixed", "name": "Money", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 3}},
  {"name": "account", "type": {"type": "string", "logicalType": "uuid"}},
  {"name": "token", "type": ["null", {"type": "fixed", "name": "Token", "size": 16, "logicalType": "uuid"}]},
  {"name": "born", "type": {"type": "int", "logicalType": "date"}},
  {"name": "seen_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "seen_us", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
  {"name": "local_ms", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
  {"name": "tags", "type": {"type": "array", "items": "string"}},
  {"name": "attrs", "type": {"type": "map", "values": "int"}},
  {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["FREE", "PRO"]}},
  {"name": "score", "type": "double"},
  {"name": "ratio", "type": "float"}]}
def rec(i):
    return {"id": 1000 + i,
      "contact": {"email": None if i % 7 == 0 else f"u{i}@example.com", "phone": None},
      "previous": None if i % 2 else {"email": f"old{i}@example.com", "phone": "555"},
      "balance": decimal.Decimal(i * 1234 - 5000).scaleb(-2),
      "limit": decimal.Decimal(i * 10**13 + 7).scaleb(-3),
      "account": str(uuid.UUID(int=i * 0x1234567)),
      "token": None if i % 3 == 0 else uuid.UUID(int=(i << 64) + 0xABCDEF).bytes,
      "born": datetime.date(1980, 1, 1) + datetime.timedelta(days=i * 100),
      "seen_ms": EPOCH.replace(year=2024) + datetime.timedelta(milliseconds=i * 1001),
      "seen_us": None if i % 5 == 0 else EPOCH.replace(year=2024) + datetime.timedelta(microseconds=i * 1000001),
      "local_ms": datetime.datetime(2023, 6, 1) + datetime.timedelta(milliseconds=i),
      "tags": [f"t{j}" for j in range(i % 4)],
      "attrs": {f"k{j}": j for j in range(i % 3)},
      "tier": "PRO" if i % 2 else "FREE",
      "score": i / 3, "ratio": i / 8}
for codec in CODECS:
    with open(f"{sys.argv[1]}/{codec}.avro", "wb") as f:
        fastavro.writer(f, schema, [rec(i) for i in range(60)], codec=codec, sync_interval=600,
                        metadata={"lethe.owner": "team-x", "note": ""})
with open(f"{sys.argv[1]}/null.avro", "rb") as f:
    recs = list(fastavro.reader(f))
with open(f"{sys.argv[1]}/null.avro", "rb") as f:
    sizes = [b.num_records for b in fastavro.block_reader(f)]
pairs = [["contact.email", recs[3]["contact"]["email"]], ["id", recs[17]["id"]],
    ["balance", str(recs[5]["balance"])], ["limit", str(recs[8]["limit"])],
    ["account", str(recs[11]["account"])], ["token", str(uuid.UUID(bytes=recs[13]["token"]))],
    ["born", recs[20]["born"].isoformat()], ["seen_ms", ms(recs[30]["seen_ms"])],
    ["seen_us", us(recs[31]["seen_us"])], ["local_ms", local_ms(recs[33]["local_ms"])],
    ["score", recs[19]["score"]], ["ratio", recs[41]["ratio"]]]
start = sum(sizes[:10])
pairs += [["id", r["id"]] for r in recs[start:start + sizes[10]]]
print(json.dumps(pairs))
"#;

/// Reads each codec's source and rewrite (`<codec>.out.avro`) with fastavro, decides
/// the subjects itself, and prints what it found.
const VERIFY: &str = r#"
pairs = json.loads(sys.argv[2])
def value(r, column):
    v = r
    for part in column.split("."): v = v[part]
    return v
def equal(r, column, want):
    v = value(r, column)
    if v is None: return False
    if column in ("balance", "limit"): return v == decimal.Decimal(want)
    if column == "token": return str(uuid.UUID(bytes=v)) == want
    if column in ("account",): return str(v) == want
    if column == "born": return v.isoformat() == want
    if column == "seen_ms": return ms(v) == want
    if column == "seen_us": return us(v) == want
    if column == "local_ms": return local_ms(v) == want
    return v == want
def read(path):
    with open(path, "rb") as f:
        r = fastavro.reader(f); recs = list(r)
    with open(path, "rb") as f:
        blocks = [[b.offset, b.size, b.num_records] for b in fastavro.block_reader(f)]
    return r, recs, blocks
report = {}
for codec in CODECS:
    src, recs, src_blocks = read(f"{sys.argv[1]}/{codec}.avro")
    out, out_recs, out_blocks = read(f"{sys.argv[1]}/{codec}.out.avro")
    owners = [[k for k, (c, v) in enumerate(pairs) if equal(r, c, v)] for r in recs]
    subject = [bool(o) for o in owners]
    per_block, at = [], 0
    for b in src_blocks:
        per_block.append(sum(subject[at:at + b[2]])); at += b[2]
    report[codec] = {
        "kept_equal": out_recs == [r for r, s in zip(recs, subject) if not s],
        "records": len(recs), "removed": sum(subject), "out_records": len(out_recs),
        "per_id": [sum(k in o for o in owners) for k in range(len(pairs))],
        "schema_equal": src.writer_schema == out.writer_schema,
        "metadata_equal": src.metadata == out.metadata,
        "codec": out.metadata.get("avro.codec"), "owner": out.metadata.get("lethe.owner"),
        "source_blocks": [b + [s] for b, s in zip(src_blocks, per_block)],
        "out_blocks": out_blocks}
print(json.dumps(report))
"#;

fn run(script: &str, args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg("-c")
        .arg(format!("{PRELUDE}{script}"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fastavro failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Forgets the subjects in `<dir>/<codec>.avro` into `<dir>/<codec>.out.avro`, checked.
fn forget_file(dir: &Path, codec: &str, columns: &[String], ids: &MatchSet) -> (Found, Forgot) {
    let source = std::fs::read(dir.join(format!("{codec}.avro"))).unwrap();
    let mut scanner = Scanner::new(columns, ids, DEFAULT_MAX_BLOCK);
    for chunk in source.chunks(997) {
        scanner.feed(chunk).unwrap();
    }
    let found = scanner.finish().unwrap();
    let mut out = Vec::new();
    let report = forget(
        &source[..],
        &mut out,
        columns,
        ids,
        false,
        DEFAULT_MAX_BLOCK,
    )
    .unwrap();
    let expected = Expected {
        records_before: report.records_before,
        records_removed: report.records_removed,
        every_row: false,
    };
    check(
        &source[..],
        &out[..],
        columns,
        ids,
        expected,
        DEFAULT_MAX_BLOCK,
    )
    .unwrap();
    std::fs::write(dir.join(format!("{codec}.out.avro")), &out).unwrap();
    (found, report)
}

#[test]
fn fastavro_files_of_every_codec_lose_exactly_the_subjects_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let pairs = run(WRITE, &[path]);
    let pairs = pairs.as_array().unwrap();
    let values: Vec<Value> = pairs.iter().map(|p| p[1].clone()).collect();
    let mut columns: Vec<String> = Vec::new();
    for pair in pairs {
        let column = pair[0].as_str().unwrap().to_owned();
        if !columns.contains(&column) {
            columns.push(column);
        }
    }
    let ids = MatchSet::from_values(&values);
    let codecs = ["null", "deflate", "snappy", "zstandard", "bzip2", "xz"];
    let mut results = Vec::new();
    for codec in codecs {
        results.push(forget_file(dir.path(), codec, &columns, &ids));
    }
    let report = run(VERIFY, &[path, &json!(pairs).to_string()]);
    for (codec, (found, forgot)) in codecs.iter().zip(&results) {
        let r = &report[codec];
        assert_eq!(
            r["kept_equal"],
            json!(true),
            "{codec}: fastavro reads other records"
        );
        assert_eq!(r["schema_equal"], json!(true), "{codec}");
        assert_eq!(r["metadata_equal"], json!(true), "{codec}");
        assert_eq!(
            (r["codec"].as_str(), r["owner"].as_str()),
            (Some(*codec), Some("team-x"))
        );
        let removed = r["removed"].as_u64().unwrap();
        assert_eq!(forgot.records_removed, removed, "{codec}");
        assert_eq!(found.records_matched, removed, "{codec}");
        assert_eq!(found.records_total, r["records"].as_u64().unwrap());
        // Every id names at least one record, and as many as Python counts.
        let per_id: Vec<u64> = serde_json::from_value(r["per_id"].clone()).unwrap();
        assert!(per_id.iter().all(|n| *n >= 1), "{codec}: {per_id:?}");
        let by_match: Vec<u64> = (0..per_id.len() as u32)
            .map(|k| found.rows_by_match.get(&k).copied().unwrap_or(0))
            .collect();
        assert_eq!(by_match, per_id, "{codec}");
        assert_blocks(dir.path(), codec, r, forgot);
    }
}

/// Walks the source's blocks with the rewrite's: one without a subject is the rewrite's
/// next block byte for byte, one with subjects and other records is the next block with
/// those records, one of subjects only is gone.
fn assert_blocks(dir: &Path, codec: &str, r: &Value, forgot: &Forgot) {
    let source = std::fs::read(dir.join(format!("{codec}.avro"))).unwrap();
    let out = std::fs::read(dir.join(format!("{codec}.out.avro"))).unwrap();
    let slice = |bytes: &[u8], b: &Value| {
        let (offset, size) = (
            b[0].as_u64().unwrap() as usize,
            b[1].as_u64().unwrap() as usize,
        );
        bytes[offset..offset + size].to_vec()
    };
    let mut out_blocks = r["out_blocks"].as_array().unwrap().iter();
    let (mut copied, mut rewritten, mut dropped) = (0, 0, 0);
    for b in r["source_blocks"].as_array().unwrap() {
        let (records, subjects) = (b[2].as_u64().unwrap(), b[3].as_u64().unwrap());
        if subjects == records {
            dropped += 1;
            continue;
        }
        let next = out_blocks.next().expect("a block of the rewrite");
        if subjects == 0 {
            copied += 1;
            assert_eq!(
                slice(&out, next),
                slice(&source, b),
                "{codec}: untouched block"
            );
        } else {
            rewritten += 1;
            assert_eq!(next[2].as_u64().unwrap(), records - subjects, "{codec}");
        }
    }
    assert!(out_blocks.next().is_none(), "{codec}: a block too many");
    assert!(
        copied > 0 && rewritten > 0 && dropped > 0,
        "{codec}: {copied} {rewritten} {dropped}"
    );
    assert_eq!(
        (
            forgot.blocks_copied,
            forgot.blocks_rewritten,
            forgot.blocks_dropped
        ),
        (copied, rewritten + dropped, dropped)
    );
}

/// A container file fastavro writes of `rows` (JSON; a string `b64:…` is that base64's
/// bytes) under `schema`, with `codec`: for the readers of whole files (`datum`).
pub(super) fn fastavro_file(schema: &str, rows: &str, codec: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.avro");
    let script = r#"
import base64
def b(v):
    if isinstance(v, str) and v.startswith("b64:"): return base64.b64decode(v[4:])
    if isinstance(v, dict): return {k: b(x) for k, x in v.items()}
    if isinstance(v, list): return [b(x) for x in v]
    return v
schema = fastavro.parse_schema(json.loads(sys.argv[1]))
with open(sys.argv[4], "wb") as f:
    fastavro.writer(f, schema, b(json.loads(sys.argv[2])), codec=sys.argv[3], sync_interval=64)
print(json.dumps({"written": sys.argv[4]}))
"#;
    run(script, &[schema, rows, codec, path.to_str().unwrap()]);
    std::fs::read(path).unwrap()
}
