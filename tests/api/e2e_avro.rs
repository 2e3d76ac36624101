//! Avro end to end against Postgres and moto through the REST API: object container files
//! written by fastavro at test time with every codec, several blocks each, nested records,
//! nullable unions, decimals on bytes and on fixed, uuids and timestamps, read through a
//! Glue table of the Avro SerDe and through a `path` mapper. After a real job fastavro
//! reads each rewrite: its records are the source's without the subjects' (decided by
//! Python on the values it reads), its header (schema, metadata, sync marker) is the
//! source's byte for byte, so is every block without a subject; untouched objects keep
//! their only version, and no old version is left.

use std::path::Path;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::e2e_csv::{Done, Storage, assert_erased, etag, queue_ids, serde_table};
use crate::e2e_find::{Lake, lake};
use crate::e2e_jobs::object_bytes;
use crate::readback::python;

/// The Python every script starts with: fastavro's `zstandard` codec on the `zstandard`
/// package (tests/fixtures/fastavro_zstandard.py, shared with `lakefile::avro::interop`),
/// then the schema and helpers of this test.
const PRELUDE: &str = concat!(
    include_str!("../fixtures/fastavro_zstandard.py"),
    r#"
UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
def ms(t): return (t - EPOCH) // datetime.timedelta(milliseconds=1)
SCHEMA = {"type": "record", "name": "Customer", "namespace": "lethe.e2e", "fields": [
  {"name": "id", "type": "long"},
  {"name": "contact", "type": {"type": "record", "name": "Contact", "fields": [
      {"name": "email", "type": ["null", "string"]},
      {"name": "phone", "type": ["null", "string"], "default": None}]}},
  {"name": "previous", "type": ["null", "Contact"]},
  {"name": "balance", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
  {"name": "limit", "type": {"type": "fixed", "name": "Money", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 3}},
  {"name": "account", "type": {"type": "string", "logicalType": "uuid"}},
  {"name": "token", "type": ["null", {"type": "fixed", "name": "Token", "size": 16, "logicalType": "uuid"}]},
  {"name": "seen_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "seen_us", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
  {"name": "tags", "type": {"type": "array", "items": "string"}},
  {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["FREE", "PRO"]}},
  {"name": "score", "type": "double"}]}
"#,
);

/// The Glue columns of the schema, as a crawler would declare them.
const COLUMNS: [(&str, &str); 12] = [
    ("id", "bigint"),
    ("contact", "struct<email:string,phone:string>"),
    ("previous", "struct<email:string,phone:string>"),
    ("balance", "decimal(12,2)"),
    ("limit", "decimal(18,3)"),
    ("account", "string"),
    ("token", "binary"),
    ("seen_ms", "timestamp"),
    ("seen_us", "timestamp"),
    ("tags", "array<string>"),
    ("tier", "string"),
    ("score", "double"),
];

/// Writes `sys.argv[2]`'s objects (`[[name, codec, salt, subjects]]`) into the directory
/// `sys.argv[1]`: 60 records each (the salt varies their values), blocks of a few records (a small sync interval), user
/// metadata. With `subjects`, the queued values are in some records: an email (in
/// `contact.email`, also in a run of consecutive records so that a block may hold only
/// subjects) and an account uuid. Prints the queued ids: those two, and a decimal on
/// bytes, one on fixed and a timestamp taken from the records of the file `sys.argv[3]`
/// as fastavro reads them back; and the schema.
const WRITE: &str = r#"
SUBJECT = "carol@example.com"
ACCOUNT = str(uuid.UUID(int=0xC0FFEE))
def rec(i, salt, subjects):
    n = i + 100 * salt
    subject_email = subjects and (i % 13 == 5 or 40 <= i < 47)
    return {"id": 1000 + n,
      "contact": {"email": SUBJECT if subject_email else (None if i % 7 == 0 else f"u{n}@example.com"),
                  "phone": None if i % 2 else "555"},
      "previous": None if i % 2 else {"email": f"old{n}@example.com", "phone": None},
      "balance": decimal.Decimal(n * 1234 - 5000).scaleb(-2),
      "limit": decimal.Decimal(n * 10**13 + 7).scaleb(-3),
      "account": ACCOUNT if subjects and i % 17 == 3 else str(uuid.UUID(int=n * 0x1234567 + 1)),
      "token": None if i % 3 == 0 else uuid.UUID(int=(n << 64) + 0xABCDEF).bytes,
      "seen_ms": EPOCH.replace(year=2024) + datetime.timedelta(milliseconds=n * 1001),
      "seen_us": None if i % 5 == 0 else EPOCH.replace(year=2024) + datetime.timedelta(microseconds=n * 1000001),
      "tags": [f"t{j}" for j in range(i % 4)],
      "tier": "PRO" if i % 2 else "FREE",
      "score": n / 3}
for name, codec, salt, subjects in json.loads(sys.argv[2]):
    with open(f"{sys.argv[1]}/{name}", "wb") as f:
        fastavro.writer(f, SCHEMA, [rec(i, salt, subjects) for i in range(60)], codec=codec,
                        sync_interval=300, metadata={"lethe.owner": "team-x"})
with open(f"{sys.argv[1]}/{sys.argv[3]}", "rb") as f:
    recs = list(fastavro.reader(f))
ids = [SUBJECT, ACCOUNT, str(recs[8]["balance"]), str(recs[21]["limit"]), ms(recs[30]["seen_ms"])]
print(json.dumps({"ids": ids, "schema": json.dumps(fastavro.parse_schema(SCHEMA), default=str)}))
"#;

/// Reads each source `<name>` and rewrite `<name>.out` (`sys.argv[2]`: `[[name,
/// columns]]`, the mapper's match columns) with fastavro, decides the subjects itself
/// (`sys.argv[3]`: the queued ids, each compared with each column by its type), and
/// prints what it found.
const VERIFY: &str = r#"
ids = json.loads(sys.argv[3])
def value(r, column):
    v = r
    for part in column.split("."):
        if v is None: return None
        v = v[part]
    return v
def equal(v, column, want):
    if v is None: return False
    if column in ("balance", "limit"):
        try: return isinstance(want, (str, int)) and v == decimal.Decimal(str(want))
        except decimal.InvalidOperation: return False
    if column == "seen_ms": return isinstance(want, int) and ms(v) == want
    return isinstance(want, str) and str(v) == want
def read(path):
    with open(path, "rb") as f:
        r = fastavro.reader(f); recs = list(r)
    with open(path, "rb") as f:
        blocks = [[b.offset, b.size, b.num_records] for b in fastavro.block_reader(f)]
    return r, recs, blocks
report = {}
for name, columns in json.loads(sys.argv[2]):
    src, recs, src_blocks = read(f"{sys.argv[1]}/{name}")
    out, out_recs, out_blocks = read(f"{sys.argv[1]}/{name}.out")
    owners = [[k for k, want in enumerate(ids) if any(equal(value(r, c), c, want) for c in columns)]
              for r in recs]
    subject = [bool(o) for o in owners]
    per_block, at = [], 0
    for b in src_blocks:
        per_block.append(sum(subject[at:at + b[2]])); at += b[2]
    source, rewrite = (open(f"{sys.argv[1]}/{n}", "rb").read() for n in (name, name + ".out"))
    report[name] = {
        "kept_equal": out_recs == [r for r, s in zip(recs, subject) if not s],
        "records": len(recs), "removed": sum(subject),
        "per_id": [sum(k in o for o in owners) for k in range(len(ids))],
        "header_equal": source[:src_blocks[0][0]] == rewrite[:out_blocks[0][0]] if out_blocks else None,
        "schema_equal": src.writer_schema == out.writer_schema,
        "metadata_equal": src.metadata == out.metadata,
        "source_blocks": [b + [s] for b, s in zip(src_blocks, per_block)],
        "out_blocks": out_blocks}
print(json.dumps(report))
"#;

/// One object: its key under the bucket, its codec, whether it holds subjects.
struct Object {
    key: &'static str,
    codec: &'static str,
    subjects: bool,
    /// The mapper reading it (the Glue table `ev` or the path mapper `money`).
    mapper: &'static str,
}

const GLUE_COLUMNS: [&str; 2] = ["contact.email", "account"];
const PATH_COLUMNS: [&str; 3] = ["balance", "limit", "seen_ms"];

fn objects() -> Vec<Object> {
    let o = |key, codec, subjects, mapper| Object {
        key,
        codec,
        subjects,
        mapper,
    };
    vec![
        o("ev/dt=1/null.avro", "null", true, "ev"),
        o("ev/dt=1/deflate.avro", "deflate", true, "ev"),
        o("ev/dt=1/snappy.avro", "snappy", true, "ev"),
        o("ev/dt=2/zstandard.avro", "zstandard", true, "ev"),
        o("ev/dt=2/bzip2.avro", "bzip2", true, "ev"),
        o("ev/dt=2/xz.avro", "xz", true, "ev"),
        o("ev/dt=2/untouched.avro", "deflate", false, "ev"),
        o("money/part-0.avro", "snappy", false, "money"),
        o("money/part-1.avro", "xz", false, "money"),
    ]
}

/// A file name for an object's key.
fn file(key: &str) -> String {
    key.replace('/', "_")
}

/// Creates the Glue table `ev` (Avro SerDe, the schema as `avro.schema.literal` in both
/// SerDe and table parameters) and the mappers `ev` and `money` (a path mapper).
async fn tables_and_mappers(lake: &Lake, schema: &str) {
    let literal = [("avro.schema.literal", schema)];
    let storage = Storage {
        input: "org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat",
        serde: "org.apache.hadoop.hive.serde2.avro.AvroSerDe",
        serde_parameters: &literal,
        columns: &COLUMNS,
    };
    serde_table(lake, "ev", &storage, &literal, ("dt", &["1", "2"])).await;
    let glue = json!({"provider": "glue", "database": lake.database, "table": "ev"});
    // The table stores Avro: a csv mapper on it is refused, naming the format.
    let wrong = json!({"catalog": glue, "format": "csv", "columns": GLUE_COLUMNS});
    let r = lake.app.put("/v1/data_mappers/ev", wrong).await;
    assert_eq!(r.invalid_fields(), ["format"], "{}", r.body);
    assert!(
        r.body.to_string().contains("stores avro data"),
        "{}",
        r.body
    );
    let body = json!({"catalog": glue, "format": "avro", "columns": GLUE_COLUMNS});
    let r = lake.app.put("/v1/data_mappers/ev", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["format"], "avro", "{}", r.body);
    assert_eq!(
        r.body["column_types"],
        json!({"contact.email": "string", "account": "string"})
    );
    let location = format!("s3://{}/money/", lake.bucket);
    let body = json!({
        "catalog": {"provider": "path", "location": location, "format": "avro"},
        "format": "avro", "columns": PATH_COLUMNS,
    });
    let r = lake.app.put("/v1/data_mappers/money", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// Writes the objects with fastavro into `dir` (the money files hold the same records,
/// salt 0, whose decimals and timestamps are queued); the queued ids and the schema.
fn write_objects(dir: &str, objects: &[Object]) -> (Vec<Value>, String) {
    let spec: Vec<Value> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let salt = if o.mapper == "money" { 0 } else { i + 1 };
            json!([file(o.key), o.codec, salt, o.subjects])
        })
        .collect();
    let args = [dir, &json!(spec).to_string(), &file("money/part-0.avro")];
    let written = python(&format!("{PRELUDE}{WRITE}"), &args);
    let ids = written["ids"].as_array().unwrap().clone();
    (ids, written["schema"].as_str().unwrap().to_owned())
}

/// Reads back each rewritten object with fastavro and checks it against its source;
/// the records each id was found in, summed over the objects, and the records removed.
async fn assert_rewrites(
    lake: &Lake,
    dir: &Path,
    rewritten: &[&Object],
    ids: &[Value],
) -> (Vec<u64>, u64) {
    let mut verify = Vec::new();
    for o in rewritten {
        let bytes = object_bytes(&lake.s3, &lake.bucket, o.key).await;
        std::fs::write(dir.join(format!("{}.out", file(o.key))), &bytes).unwrap();
        let columns: &[&str] = if o.mapper == "ev" {
            &GLUE_COLUMNS
        } else {
            &PATH_COLUMNS
        };
        verify.push(json!([file(o.key), columns]));
        assert_eq!(lake.versions(o.key).await, 1, "{}: old version gone", o.key);
    }
    let args = [
        dir.to_str().unwrap(),
        &json!(verify).to_string(),
        &json!(ids).to_string(),
    ];
    let report = python(&format!("{PRELUDE}{VERIFY}"), &args);
    let (mut per_id, mut removed) = (vec![0u64; ids.len()], 0);
    for o in rewritten {
        let r = &report[file(o.key)];
        for flag in [
            "kept_equal",
            "header_equal",
            "schema_equal",
            "metadata_equal",
        ] {
            assert_eq!(r[flag], json!(true), "{}: {flag}", o.key);
        }
        removed += r["removed"].as_u64().unwrap();
        for (k, n) in r["per_id"].as_array().unwrap().iter().enumerate() {
            per_id[k] += n.as_u64().unwrap();
        }
        let read = |name: String| std::fs::read(dir.join(name)).unwrap();
        let (source, rewrite) = (read(file(o.key)), read(format!("{}.out", file(o.key))));
        assert_blocks(o.key, r, &source, &rewrite);
    }
    (per_id, removed)
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_job_removes_exactly_the_subjects_records_from_fastavro_files_of_every_codec_and_keeps_the_rest_byte_for_byte(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let dir = tempfile::tempdir().unwrap();
    let objects = objects();
    let (ids, schema) = write_objects(dir.path().to_str().unwrap(), &objects);
    for o in &objects {
        let bytes = std::fs::read(dir.path().join(file(o.key))).unwrap();
        lake.put(o.key, &bytes).await;
    }
    let untouched = "ev/dt=2/untouched.avro";
    let before = etag(&lake, untouched).await;
    tables_and_mappers(&lake, &schema).await;

    queue_ids(&lake, &ids).await;
    let job = lake.run_job(&["ev", "money"]).await;
    assert_eq!(job["status"], "completed", "{job}");

    let rewritten: Vec<&Object> = objects.iter().filter(|o| o.key != untouched).collect();
    let (per_id, removed) = assert_rewrites(&lake, dir.path(), &rewritten, &ids).await;
    assert!(
        per_id.iter().all(|n| *n > 0),
        "every id names a record: {per_id:?}"
    );
    assert_eq!(etag(&lake, untouched).await, before);
    let now = object_bytes(&lake.s3, &lake.bucket, untouched).await;
    let source = std::fs::read(dir.path().join(file(untouched))).unwrap();
    assert_eq!(now.as_ref(), source);
    assert_eq!(lake.versions(untouched).await, 1, "never rewritten");
    let done = Done {
        scanned: objects.len(),
        rewritten: rewritten.len(),
        removed,
    };
    assert_erased(&lake, &job, &ids, &per_id, done).await;
}

/// Walks the source's blocks (fastavro's offsets and sizes) with the rewrite's: one
/// without a subject is the rewrite's next block byte for byte (its sync marker too), one
/// with subjects and other records is the next block with those records, one of
/// subjects only is gone. Some block is copied and some rewritten.
fn assert_blocks(key: &str, r: &Value, source: &[u8], rewrite: &[u8]) {
    let slice = |bytes: &'_ [u8], b: &Value| -> Vec<u8> {
        let offset = b[0].as_u64().unwrap() as usize;
        let size = b[1].as_u64().unwrap() as usize;
        bytes[offset..offset + size].to_vec()
    };
    let mut out_blocks = r["out_blocks"].as_array().unwrap().iter();
    let (mut copied, mut rewritten) = (0, 0);
    for b in r["source_blocks"].as_array().unwrap() {
        let (records, subjects) = (b[2].as_u64().unwrap(), b[3].as_u64().unwrap());
        if subjects == records {
            continue;
        }
        let next = out_blocks.next().expect("a block of the rewrite");
        assert_eq!(next[2].as_u64().unwrap(), records - subjects, "{key}");
        if subjects == 0 {
            copied += 1;
            assert_eq!(
                slice(rewrite, next),
                slice(source, b),
                "{key}: untouched block"
            );
        } else {
            rewritten += 1;
        }
    }
    assert!(out_blocks.next().is_none(), "{key}: a block too many");
    assert!(copied > 0 && rewritten > 0, "{key}: {copied} {rewritten}");
}
