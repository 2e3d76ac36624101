//! CSV end to end against Postgres and moto through the REST API: objects written at test
//! time by pandas and by Python's `csv` (quoted fields holding delimiters and line
//! breaks, escaped delimiters, `\N` nulls, CRLF, header lines, gzip and zstd), read
//! through a Glue table's LazySimpleSerDe (an `int` id) and OpenCSVSerde (a `string` id),
//! and through a `path` mapper's CSV options. After a real job every rewrite, decompressed
//! by Python, is byte for byte the source without exactly the subjects' records (cut out
//! by Python from the writer's own output), untouched objects keep their only version,
//! and no old version is left. Glue tables Lethe cannot read exactly are refused.

use aws_sdk_glue::types::{Column, PartitionInput, SerDeInfo, StorageDescriptor, TableInput};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::e2e_find::{Lake, lake};
use crate::e2e_jobs::object_bytes;
use crate::jobs::queue;
use crate::readback::python;

/// How a Glue table's objects are read: its input format, SerDe and SerDe parameters,
/// and its data columns (name, Glue type).
pub struct Storage<'a> {
    pub input: &'a str,
    pub serde: &'a str,
    pub serde_parameters: &'a [(&'a str, &'a str)],
    pub columns: &'a [(&'a str, &'a str)],
}

pub const TEXT_INPUT: &str = "org.apache.hadoop.mapred.TextInputFormat";
const LAZY_SIMPLE: &str = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe";
const OPEN_CSV: &str = "org.apache.hadoop.hive.serde2.OpenCSVSerde";
const REGEX: &str = "org.apache.hadoop.hive.serde2.RegexSerDe";

impl Storage<'_> {
    fn descriptor(&self, location: String) -> StorageDescriptor {
        let mut serde = SerDeInfo::builder().serialization_library(self.serde);
        for (k, v) in self.serde_parameters {
            serde = serde.parameters(*k, *v);
        }
        let mut sd = StorageDescriptor::builder()
            .location(location)
            .input_format(self.input)
            .serde_info(serde.build());
        for (name, ty) in self.columns {
            sd = sd.columns(Column::builder().name(*name).r#type(*ty).build().unwrap());
        }
        sd.build()
    }

    fn table(
        &self,
        name: &str,
        location: &str,
        parameters: &[(&str, &str)],
        key: &str,
    ) -> TableInput {
        let mut input = TableInput::builder()
            .name(name)
            .storage_descriptor(self.descriptor(location.to_owned()))
            .partition_keys(
                Column::builder()
                    .name(key)
                    .r#type("string")
                    .build()
                    .unwrap(),
            );
        for (k, v) in parameters {
            input = input.parameters(*k, *v);
        }
        input.build().unwrap()
    }
}

/// Creates table `name` at `s3://<bucket>/<name>/` with table `parameters`, partitioned
/// by `key`, and one registered partition per value (at `<location><key>=<value>/`).
pub async fn serde_table(
    lake: &Lake,
    name: &str,
    storage: &Storage<'_>,
    parameters: &[(&str, &str)],
    (key, values): (&str, &[&str]),
) {
    let location = format!("s3://{}/{name}/", lake.bucket);
    lake.glue
        .create_table()
        .database_name(&lake.database)
        .table_input(storage.table(name, &location, parameters, key))
        .send()
        .await
        .unwrap();
    for value in values {
        let sd = storage.descriptor(format!("{location}{key}={value}/"));
        lake.glue
            .create_partition()
            .database_name(&lake.database)
            .table_name(name)
            .partition_input(
                PartitionInput::builder()
                    .values(*value)
                    .storage_descriptor(sd)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
}

/// The current version's ETag.
pub async fn etag(lake: &Lake, key: &str) -> String {
    let head = lake
        .s3
        .head_object()
        .bucket(&lake.bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    head.e_tag().unwrap().to_owned()
}

/// The queued subjects, by index: an integer id, a string id, an email.
const SEVEN: usize = 0;
const U7: usize = 1;
const ANN: usize = 2;

fn subjects() -> [Value; 3] {
    [json!(7), json!("u7"), json!("ann@x.org")]
}

/// One object written at test time: its key, its writer (`pandas` or `csv`) with the
/// options it is called with, its columns, whether it writes a header line, how it is
/// packed, and its rows, each with the subject it holds (by index), as the table's reader
/// reads it.
struct Written {
    key: &'static str,
    writer: &'static str,
    options: Value,
    columns: [&'static str; 3],
    header: bool,
    packing: Packing,
    rows: Vec<(Value, Option<usize>)>,
}

/// How an object's text becomes its bytes.
#[derive(Clone, Copy, Default)]
struct Packing {
    /// `gzip` or `zstd` (by the key's extension too), or none.
    compression: Option<&'static str>,
    /// Compressed as two members / frames, concatenated (the second from the second
    /// record on).
    two_members: bool,
    /// A UTF-8 byte-order mark opens the object (Python's `utf-8-sig`).
    bom: bool,
}

const GZIP: Packing = Packing {
    compression: Some("gzip"),
    two_members: false,
    bom: false,
};
const ZSTD: Packing = Packing {
    compression: Some("zstd"),
    ..GZIP
};

/// The columns of the LazySimpleSerDe table: the integer id last, after a line's other
/// fields, where a CR of a CRLF ending would be if lines were split on LF alone.
const LAZY_COLUMNS: [&str; 3] = ["email", "note", "id"];
/// The columns of the other objects.
const COLUMNS: [&str; 3] = ["id", "email", "note"];

fn lazy_pandas() -> Value {
    // Hive's text: no quoting, `\N` for NULL, Windows line endings.
    json!({"quoting": 3, "na_rep": "\\N", "lineterminator": "\r\n"})
}

fn lazy_csv(lineterminator: &str) -> Value {
    // No quoting: a delimiter inside a field is escaped with a backslash.
    json!({"quoting": 3, "escapechar": "\\", "lineterminator": lineterminator})
}

/// The LazySimpleSerDe table's objects (`int` id: `007` and `+7` are 7; `u7` is NULL).
fn lazy_objects() -> Vec<Written> {
    let r = |row: Value, holds: Option<usize>| (row, holds);
    let lazy = |key, writer, options, packing, rows| Written {
        key,
        writer,
        options,
        columns: LAZY_COLUMNS,
        header: true,
        packing,
        rows,
    };
    vec![
        lazy(
            "lazy/dt=1/a.csv",
            "pandas",
            lazy_pandas(),
            Packing::default(),
            vec![
                r(json!(["ann@x.org", "first", "7"]), Some(SEVEN)),
                r(json!(["bob@x.org", "zero padded", "007"]), Some(SEVEN)),
                r(json!(["carl@x.org", "seventy", "70"]), None),
                r(json!(["dora@x.org", "a NULL id", null]), None),
                r(json!(["eve@x.org", "a plus sign", "+7"]), Some(SEVEN)),
                r(json!(["fay@x.org", null, "17"]), None),
                r(json!(["gus@x.org", "no integer", "u7"]), None),
            ],
        ),
        lazy(
            "lazy/dt=2/b.csv.gz",
            "csv",
            lazy_csv("\n"),
            Packing {
                two_members: true,
                ..GZIP
            },
            vec![
                r(json!(["hal@x.org", "commas, escaped", "8"]), None),
                r(
                    json!(["ivy@x.org", "also, escaped, twice", "7"]),
                    Some(SEVEN),
                ),
                r(json!(["jon@x.org", "plain", "9"]), None),
            ],
        ),
        lazy(
            "lazy/dt=2/c.csv.zst",
            "csv",
            lazy_csv("\r\n"),
            ZSTD,
            vec![
                r(json!(["kim@x.org", "x, y", "70"]), None),
                r(json!(["lee@x.org", "z", "77"]), None),
            ],
        ),
    ]
}

/// The OpenCSVSerde table's objects (`string` id: only the exact text; the queued number
/// 7 is the text `7`). A record's line that Athena reads as a row of its own holds the
/// subject it names.
fn open_objects() -> Vec<Written> {
    let r = |row: Value, holds: Option<usize>| (row, holds);
    let open = |key, writer, options, packing, rows| Written {
        key,
        writer,
        options,
        columns: COLUMNS,
        header: false,
        packing,
        rows,
    };
    vec![
        open(
            "open/region=eu/a.csv",
            "csv",
            // Python's default dialect (CRLF) with a backslash escape instead of doubling.
            json!({"doublequote": false, "escapechar": "\\"}),
            Packing::default(),
            vec![
                r(json!(["u7", "ann@x.org", "line one\nline two"]), Some(U7)),
                r(json!(["u8", "max@x.org", "a, b"]), None),
                r(json!(["U7", "ned@x.org", "case differs"]), None),
                r(json!(["007", "oli@x.org", "7 is the text 7 here"]), None),
                r(json!(["u07", "pam@x.org", "zero"]), None),
                r(json!(["u7", "quin@x.org", "says \"hi\""]), Some(U7)),
                r(json!(["u11", "xa@x.org", "one\nu7,read alone"]), Some(U7)),
                r(json!(["u9", "rob@x.org", "last"]), None),
            ],
        ),
        open(
            "open/region=us/b.csv.gz",
            "pandas",
            json!({"lineterminator": "\n"}),
            GZIP,
            vec![
                r(json!(["u9", "sam@x.org", "multi\r\nline"]), None),
                r(json!(["u7", "tom@x.org", "say \"yo\", twice\n"]), Some(U7)),
                r(
                    json!(["7", "uma@x.org", "the queued 7 as text"]),
                    Some(SEVEN),
                ),
            ],
        ),
        open(
            "open/region=us/c.csv.zst",
            "csv",
            json!({}),
            Packing {
                two_members: true,
                bom: true,
                ..ZSTD
            },
            vec![
                r(json!(["u7", "vic@x.org", "after the BOM"]), Some(U7)),
                r(json!(["u10", "wes@x.org", "y"]), None),
            ],
        ),
        // Every record goes: the rewrite is empty.
        open(
            "open/region=us/d.csv",
            "csv",
            json!({}),
            Packing::default(),
            vec![
                r(json!(["u7", "yan@x.org", "one"]), Some(U7)),
                r(json!(["u7", "yan@x.org", "two\nlines"]), Some(U7)),
            ],
        ),
        open(
            "open/region=eu/big.csv",
            "csv",
            json!({"lineterminator": "\n"}),
            Packing::default(),
            big_rows(),
        ),
    ]
}

/// Many records (about 1 MiB), so that records and their quoted line breaks cross the
/// buffers the object is read through; one in 997 is the subject's.
fn big_rows() -> Vec<(Value, Option<usize>)> {
    (0..20_000)
        .map(|i| {
            let subject = i % 997 == 500;
            let id = if subject {
                "u7".to_owned()
            } else {
                format!("u{}", 100 + i % 1000)
            };
            let note = if i % 3 == 0 {
                format!("row {i}, quoted\nover two lines")
            } else {
                format!("row {i} and some text of its own")
            };
            (
                json!([id, format!("p{i}@x.org"), note]),
                subject.then_some(U7),
            )
        })
        .collect()
}

/// The `path` mapper's objects (header line; the email compares as text).
fn plain_objects() -> Vec<Written> {
    let r = |row: Value, holds: Option<usize>| (row, holds);
    vec![
        Written {
            key: "plain/x.csv",
            writer: "pandas",
            options: json!({"lineterminator": "\n"}),
            columns: COLUMNS,
            header: true,
            packing: Packing::default(),
            rows: vec![
                r(json!(["1", "ann@x.org", "first, with a comma"]), Some(ANN)),
                r(json!(["2", "Ann@x.org", "case differs"]), None),
                r(json!(["3", "bob@x.org", "multi\nline \"quoted\""]), None),
                r(json!(["4", "ann@x.org", ""]), Some(ANN)),
                r(json!(["5", " ann@x.org", "a leading space"]), None),
            ],
        },
        Written {
            key: "plain/y.csv.gz",
            writer: "csv",
            options: json!({}),
            columns: COLUMNS,
            header: true,
            packing: Packing { bom: true, ..GZIP },
            rows: vec![
                r(json!(["6", "ann@x.org", "z"]), Some(ANN)),
                r(json!(["8", "zed@x.org", "z"]), None),
            ],
        },
        // Every record goes: the header alone is left.
        Written {
            key: "plain/z.csv.zst",
            writer: "pandas",
            options: json!({}),
            columns: COLUMNS,
            header: true,
            packing: ZSTD,
            rows: vec![r(json!(["9", "ann@x.org", "only"]), Some(ANN))],
        },
    ]
}

/// Writes each object `i` of the spec as `<dir>/<i>.src` (packed), and
/// `<dir>/<i>.expected`: its byte-order mark, header and the records the spec keeps, each
/// record's bytes as the writer wrote it alone (checked to be the slice of the whole file
/// it is). Prints what the objects hold.
const WRITE: &str = r#"
import sys, json, csv, io, gzip, zstandard, pandas as pd
spec = json.load(open(sys.argv[1])); out = sys.argv[2]
def by_csv(o, rows):
    s = io.StringIO(newline="")
    csv.writer(s, **o["options"]).writerows(rows)
    return s.getvalue()
def by_pandas(o, rows, header):
    frame = pd.DataFrame(rows, columns=o["columns"], dtype=object)
    return frame.to_csv(index=False, header=header, **o["options"])
compress = {"gzip": lambda b: gzip.compress(b, mtime=0),
            "zstd": lambda b: zstandard.ZstdCompressor().compress(b), None: lambda b: b}
report = []
for i, o in enumerate(spec):
    rows, p = o["rows"], o["packing"]
    if o["writer"] == "pandas":
        whole = by_pandas(o, rows, o["header"])
        head = by_pandas(o, [], True) if o["header"] else ""
        records = [by_pandas(o, [r], False) for r in rows]
    else:
        head = by_csv(o, [o["columns"]]) if o["header"] else ""
        records = [by_csv(o, [r]) for r in rows]
        whole = by_csv(o, ([o["columns"]] if o["header"] else []) + rows)
    assert whole == head + "".join(records), (o["key"], whole)
    encoding = "utf-8-sig" if p["bom"] else "utf-8"
    kept = head + "".join(r for r, k in zip(records, o["keep"]) if k)
    first = (head + records[0]).encode(encoding) if p["two_members"] else whole.encode(encoding)
    rest = "".join(records[1:]).encode() if p["two_members"] else b""
    pack = compress[p["compression"]]
    open(f"{out}/{i}.src", "wb").write(pack(first) + (pack(rest) if rest else b""))
    open(f"{out}/{i}.expected", "wb").write(kept.encode(encoding))
    report.append({"crlf": "\r\n" in whole, "escaped": "\\," in whole, "null": "\\N" in whole,
                   "quoted_breaks": sum(r.count("\n") > 1 for r in records)})
print(json.dumps(report))
"#;

/// Decompresses each `<dir>/<i>.out` (`sys.argv[2]`: `[[i, compression], ..]`) into
/// `<dir>/<i>.raw`, every member or frame; a rewrite that lost its compression fails to
/// decompress.
const DECOMPRESS: &str = r#"
import sys, io, json, gzip, zstandard
def unzstd(b):
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(b), read_across_frames=True).read()
unpack = {"gzip": gzip.decompress, "zstd": unzstd, None: lambda b: b}
for i, c in json.loads(sys.argv[2]):
    raw = unpack[c](open(f"{sys.argv[1]}/{i}.out", "rb").read())
    open(f"{sys.argv[1]}/{i}.raw", "wb").write(raw)
print("[]")
"#;

/// Writes the lake's objects with pandas and `csv`; what Python says each holds.
fn write_objects(dir: &std::path::Path, objects: &[Written]) -> Vec<Value> {
    let spec: Vec<Value> = objects
        .iter()
        .map(|o| {
            json!({
                "key": o.key, "writer": o.writer, "options": o.options, "header": o.header,
                "columns": o.columns, "packing": {"compression": o.packing.compression,
                    "two_members": o.packing.two_members, "bom": o.packing.bom},
                "rows": o.rows.iter().map(|(row, _)| row.clone()).collect::<Vec<_>>(),
                "keep": o.rows.iter().map(|(_, holds)| holds.is_none()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let report = python(WRITE, &[spec_path.to_str().unwrap(), dir.to_str().unwrap()]);
    report.as_array().unwrap().clone()
}

/// The three tables: LazySimpleSerDe (`int` id, one header line), OpenCSVSerde (`string`
/// id) and a `path` mapper's options (header), each with its mapper.
async fn tables_and_mappers(lake: &Lake) {
    let lazy = Storage {
        input: TEXT_INPUT,
        serde: LAZY_SIMPLE,
        serde_parameters: &[
            ("field.delim", ","),
            ("escape.delim", "\\"),
            ("serialization.null.format", "\\N"),
        ],
        columns: &[("email", "string"), ("note", "string"), ("id", "int")],
    };
    let header = [("skip.header.line.count", "1")];
    serde_table(lake, "lazy", &lazy, &header, ("dt", &["1", "2"])).await;
    let open = Storage {
        input: TEXT_INPUT,
        serde: OPEN_CSV,
        serde_parameters: &[
            ("separatorChar", ","),
            ("quoteChar", "\""),
            ("escapeChar", "\\"),
        ],
        columns: &[("id", "string"), ("email", "string"), ("note", "string")],
    };
    serde_table(lake, "open", &open, &[], ("region", &["eu", "us"])).await;
    for (id, table) in [("lazy", "lazy"), ("open", "open")] {
        let body = json!({
            "catalog": {"provider": "glue", "database": lake.database, "table": table},
            "format": "csv", "columns": ["id"],
        });
        let r = lake.app.put(&format!("/v1/data_mappers/{id}"), body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["format"], "csv", "{}", r.body);
    }
    let csv = json!({"delimiter": ",", "quote": "\"", "escape": null, "header": true});
    let body = json!({
        "catalog": {"provider": "path", "location": format!("s3://{}/plain/", lake.bucket),
                    "format": "csv", "csv": csv},
        "format": "csv", "columns": ["email"],
    });
    let r = lake.app.put("/v1/data_mappers/plain", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Stored as sent (a null escape is no escape, and is left out).
    let stored = json!({"delimiter": ",", "quote": "\"", "header": true});
    assert_eq!(r.body["catalog"]["csv"], stored, "{}", r.body);
}

/// Queues each id for every mapper.
pub async fn queue_ids(lake: &Lake, ids: &[Value]) {
    let items: Vec<Value> = ids.iter().map(|id| json!({"match_id": id})).collect();
    queue(&lake.app, json!(items)).await;
}

/// What a job must have done.
pub struct Done {
    /// Objects searched.
    pub scanned: usize,
    /// Objects rewritten (each had its old version deleted).
    pub rewritten: usize,
    /// Records removed.
    pub removed: u64,
}

/// Asserts the job's counters and each queued id's account (`per_id[k]`: the records
/// holding `ids[k]`), every id erased and off the queue.
pub async fn assert_erased(lake: &Lake, job: &Value, ids: &[Value], per_id: &[u64], done: Done) {
    for (id, held) in ids.iter().zip(per_id) {
        let account = lake.account(job, id).await;
        assert_eq!(account["status"], "erased", "{account}");
        let accounts = account["accounts"].as_array().unwrap().iter();
        let removed: u64 = accounts
            .map(|a| a["rows_removed"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(removed, *held, "{id}");
    }
    let stats = &job["stats"];
    assert_eq!(stats["rows_removed"], done.removed, "{job}");
    assert_eq!(stats["rows_matched"], done.removed, "{job}");
    assert_eq!(stats["objects_scanned"], done.scanned, "{job}");
    let rewritten = [
        "objects_matched",
        "objects_rewritten",
        "objects_verified",
        "versions_deleted",
    ];
    for counter in rewritten {
        assert_eq!(stats[counter], done.rewritten, "{counter}: {job}");
    }
    for counter in [
        "objects_failed",
        "objects_forget_failed",
        "objects_verify_failed",
    ] {
        assert_eq!(stats[counter], 0, "{counter}: {job}");
    }
    assert_eq!(stats["matches_erased"], ids.len(), "{job}");
    assert!(lake.queued().await.is_empty());
}

/// The job's events.
pub async fn events(lake: &Lake, job: &Value) -> Vec<Value> {
    let id = job["job_id"].as_str().unwrap();
    let r = lake
        .app
        .get(&format!("/v1/jobs/{id}/events?page_size=1000"))
        .await;
    r.body["events"].as_array().unwrap().clone()
}

/// The messages of the job's events of `kind`.
pub async fn messages(lake: &Lake, job: &Value, kind: &str) -> Vec<String> {
    let all = events(lake, job).await;
    let of_kind = all.iter().filter(|e| e["kind"] == kind);
    of_kind
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

/// Uploads each object `i` (`<dir>/<i>.src`); the ETags of those without a subject.
async fn upload(lake: &Lake, dir: &std::path::Path, objects: &[Written]) -> Vec<(usize, String)> {
    let mut untouched = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        lake.put(o.key, &std::fs::read(dir.join(format!("{i}.src"))).unwrap())
            .await;
        if o.rows.iter().all(|(_, holds)| holds.is_none()) {
            untouched.push((i, etag(lake, o.key).await));
        }
    }
    untouched
}

/// Each rewrite `i`, decompressed by Python, is `<dir>/<i>.expected` byte for byte, and
/// its only version.
async fn assert_rewrites(
    lake: &Lake,
    dir: &std::path::Path,
    objects: &[Written],
    rewritten: &[usize],
) {
    let mut which = Vec::new();
    for i in rewritten {
        let o = &objects[*i];
        let bytes = object_bytes(&lake.s3, &lake.bucket, o.key).await;
        std::fs::write(dir.join(format!("{i}.out")), &bytes).unwrap();
        which.push(json!([i, o.packing.compression]));
    }
    python(
        DECOMPRESS,
        &[dir.to_str().unwrap(), &json!(which).to_string()],
    );
    for i in rewritten {
        let key = objects[*i].key;
        let read = |ext: &str| std::fs::read(dir.join(format!("{i}.{ext}"))).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&read("raw")),
            String::from_utf8_lossy(&read("expected")),
            "{key}: the kept records, byte for byte"
        );
        assert_eq!(lake.versions(key).await, 1, "{key}: old version gone");
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_job_cuts_exactly_the_subjects_records_out_of_pandas_and_csv_module_files_through_both_serdes_and_a_path_mapper(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let dir = tempfile::tempdir().unwrap();
    let objects: Vec<Written> = [lazy_objects(), open_objects(), plain_objects()]
        .into_iter()
        .flatten()
        .collect();
    let written = write_objects(dir.path(), &objects);
    // The writers did write what this test is about.
    let any = |what: &str| written.iter().any(|w| w[what] == json!(true));
    assert!(any("crlf") && any("escaped") && any("null"), "{written:?}");
    let breaks = written
        .iter()
        .any(|w| w["quoted_breaks"].as_u64() > Some(0));
    assert!(breaks, "{written:?}");
    let untouched = upload(&lake, dir.path(), &objects).await;
    assert!(!untouched.is_empty());
    tables_and_mappers(&lake).await;

    let ids = subjects();
    queue_ids(&lake, &ids).await;
    let job = lake.run_job(&["lazy", "open", "plain"]).await;
    assert_eq!(job["status"], "completed", "{job}");

    let rewritten: Vec<usize> = (0..objects.len())
        .filter(|i| untouched.iter().all(|(u, _)| u != i))
        .collect();
    assert_rewrites(&lake, dir.path(), &objects, &rewritten).await;
    for (i, before) in &untouched {
        let key = objects[*i].key;
        assert_eq!(&etag(&lake, key).await, before, "{key}");
        let now = object_bytes(&lake.s3, &lake.bucket, key).await;
        let source = std::fs::read(dir.path().join(format!("{i}.src"))).unwrap();
        assert_eq!(now.as_ref(), source, "{key}");
        assert_eq!(lake.versions(key).await, 1, "{key}: never rewritten");
    }
    let per_id: Vec<u64> = (0..ids.len())
        .map(|k| {
            let rows = objects.iter().flat_map(|o| &o.rows);
            rows.filter(|(_, holds)| *holds == Some(k)).count() as u64
        })
        .collect();
    let done = Done {
        scanned: objects.len(),
        rewritten: rewritten.len(),
        removed: per_id.iter().sum(),
    };
    assert_erased(&lake, &job, &ids, &per_id, done).await;
}

/// A text table read by RegexSerDe, as Glue declares it.
const REGEX_TABLE: Storage = Storage {
    input: TEXT_INPUT,
    serde: REGEX,
    serde_parameters: &[("input.regex", "([^,]*),(.*)")],
    columns: &[("id", "string"), ("note", "string")],
};

/// A csv mapper on `table`, matching `id`.
fn csv_mapper(lake: &Lake, table: &str) -> Value {
    json!({
        "catalog": {"provider": "glue", "database": lake.database, "table": table},
        "format": "csv", "columns": ["id"],
    })
}

/// A Glue table whose SerDe Lethe does not read CSV as (RegexSerDe) is refused when a
/// mapper is saved on it, as problem+json naming the format; an ORC table is refused
/// with ORC's reason.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_mapper_on_a_regex_serde_or_orc_table_is_refused_at_save_with_its_reason(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    serde_table(&lake, "regex", &REGEX_TABLE, &[], ("dt", &["1"])).await;
    let orc = Storage {
        input: "org.apache.hadoop.hive.ql.io.orc.OrcInputFormat",
        serde: "org.apache.hadoop.hive.ql.io.orc.OrcSerde",
        serde_parameters: &[],
        ..REGEX_TABLE
    };
    serde_table(&lake, "orc", &orc, &[], ("dt", &["1"])).await;
    let reasons = [
        ("regex", "not one Lethe reads exactly"),
        ("orc", "ORC data, which Lethe refuses"),
    ];
    for (table, reason) in reasons {
        let path = format!("/v1/data_mappers/{table}");
        let r = lake.app.put(&path, csv_mapper(&lake, table)).await;
        let body = r.problem(422).clone();
        assert_eq!(r.invalid_fields(), ["format"], "{body}");
        assert!(body["errors"].to_string().contains(reason), "{body}");
        lake.app.get(&path).await.problem(404);
    }
}

/// A mapper saved on a LazySimpleSerDe table whose table is then read by RegexSerDe
/// fails at find, loudly (the event names the SerDe, never an id), and its subject stays
/// queued; nothing is rewritten.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_table_that_turns_regex_serde_after_the_mapper_was_saved_fails_the_mapper_at_find(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let lazy = Storage {
        serde: LAZY_SIMPLE,
        serde_parameters: &[("field.delim", ",")],
        ..REGEX_TABLE
    };
    serde_table(&lake, "later", &lazy, &[], ("dt", &["1"])).await;
    let r = lake
        .app
        .put("/v1/data_mappers/later", csv_mapper(&lake, "later"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (key, text) = ("later/dt=1/a.csv", b"u7,first\nu8,second\n");
    lake.put(key, text).await;
    let location = format!("s3://{}/later/", lake.bucket);
    let regex = REGEX_TABLE.table("later", &location, &[], "dt");
    let update = lake.glue.update_table().database_name(&lake.database);
    update.table_input(regex).send().await.unwrap();
    queue(&lake.app, json!([{"match_id": "u7"}])).await;
    let job = lake.run_job(&["later"]).await;

    assert_eq!(job["status"], "find_failed", "{job}");
    let failed = messages(&lake, &job, "mapper_failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains(REGEX) && failed[0].contains("refused"),
        "{failed:?}"
    );
    let all = json!(events(&lake, &job).await).to_string();
    assert!(!all.contains("u7"), "events never carry ids: {all}");
    let queued = lake.queued().await;
    assert_eq!(queued, [json!("u7")], "the subject stays queued");
    let now = object_bytes(&lake.s3, &lake.bucket, key).await;
    assert_eq!(now.as_ref(), text);
    assert_eq!(lake.versions(key).await, 1);
}

/// Athena reads a text object by the codec its extension names, as Hadoop does
/// (`.deflate`, `.snappy`, `.lz4`, `.lzo` besides gzip, zstd and bzip2). An object of a
/// codec Lethe does not decode must not be read as plain text: its compressed bytes hold
/// no subject, so the subject would be reported erased while Athena still shows the row.
/// It fails, loudly, and its subject stays queued; the table's other objects are erased.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_csv_object_of_a_codec_lethe_does_not_decode_fails_and_its_subject_stays_queued(
    db: sqlx::PgPool,
) {
    use std::io::Write;
    let lake = lake(db).await;
    let storage = Storage {
        input: TEXT_INPUT,
        serde: LAZY_SIMPLE,
        serde_parameters: &[("field.delim", ",")],
        columns: &[("id", "int"), ("note", "string")],
    };
    serde_table(&lake, "t", &storage, &[], ("dt", &["1"])).await;
    let r = lake
        .app
        .put("/v1/data_mappers/t", csv_mapper(&lake, "t"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Hadoop's DefaultCodec (`.deflate`) writes a zlib stream.
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(b"7,in a deflate object\n8,other\n").unwrap();
    let deflated = zlib.finish().unwrap();
    let (odd, plain) = ("t/dt=1/a.csv.deflate", "t/dt=1/b.csv");
    lake.put(odd, &deflated).await;
    lake.put(plain, b"7,plain\n8,other\n").await;
    queue(&lake.app, json!([{"match_id": 7}])).await;
    let job = lake.run_job(&["t"]).await;

    // The object fails its search; the job goes on with the others, and says so.
    assert_eq!(job["status"], "forget_partially_failed", "{job}");
    assert_eq!(job["stats"]["objects_failed"], 1, "{job}");
    assert_eq!(job["stats"]["rows_removed"], 1, "{job}");
    assert_eq!(job["stats"]["matches_erased"], 0, "{job}");
    let rest = object_bytes(&lake.s3, &lake.bucket, plain).await;
    assert_eq!(rest.as_ref(), b"8,other\n");
    let failed = messages(&lake, &job, "object_failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains(odd) && failed[0].contains("deflate"),
        "{failed:?}"
    );
    assert_eq!(lake.queued().await, [json!(7)], "the subject stays queued");
    assert_eq!(
        object_bytes(&lake.s3, &lake.bucket, odd).await.as_ref(),
        deflated
    );
    assert_eq!(lake.versions(odd).await, 1);
}

/// Hive and Athena read a partition through its own storage descriptor. A partition of a
/// `|`-delimited table registered with `,` holds rows Athena reads with commas, while
/// Lethe reads every partition as the table: it would split `7,x` on `|`, see no id 7,
/// and report the subject erased. The mapper fails at find instead, naming the partition
/// and the parameter; the subject stays queued and nothing is written.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_partition_registered_with_another_delimiter_than_its_table_fails_the_mapper(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let pipes = Storage {
        input: TEXT_INPUT,
        serde: LAZY_SIMPLE,
        serde_parameters: &[("field.delim", "|")],
        columns: &[("id", "int"), ("note", "string")],
    };
    serde_table(&lake, "mixed", &pipes, &[], ("dt", &["1"])).await;
    let location = format!("s3://{}/mixed/", lake.bucket);
    let commas = Storage {
        serde_parameters: &[("field.delim", ",")],
        ..pipes
    };
    let sd = commas.descriptor(format!("{location}dt=2/"));
    let partition = PartitionInput::builder().values("2").storage_descriptor(sd);
    lake.glue
        .create_partition()
        .database_name(&lake.database)
        .table_name("mixed")
        .partition_input(partition.build())
        .send()
        .await
        .unwrap();
    let r = lake
        .app
        .put("/v1/data_mappers/mixed", csv_mapper(&lake, "mixed"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (piped, comma) = ("mixed/dt=1/a.csv", "mixed/dt=2/b.csv");
    lake.put(piped, b"8|kept\n").await;
    lake.put(comma, b"7,athena reads this row as id 7\n").await;
    queue(&lake.app, json!([{"match_id": 7}])).await;
    let job = lake.run_job(&["mixed"]).await;

    assert_eq!(job["status"], "find_failed", "{job}");
    let failed = messages(&lake, &job, "mapper_failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("partition (2)") && failed[0].contains("field.delim"),
        "{failed:?}"
    );
    assert_eq!(lake.queued().await, [json!(7)], "the subject stays queued");
    for key in [piped, comma] {
        assert_eq!(lake.versions(key).await, 1, "{key} untouched");
    }
}
