//! Apache Iceberg tables for end-to-end tests, written by pyiceberg (from PyPI, in the
//! corpus virtualenv) through its Glue catalog against moto: the writer users have, so
//! the tables are what Lethe meets in a lake, not what Lethe's own code believes a table
//! is. `tests/fixtures/iceberg_table.py` does the work (its docstring is the reference of
//! the spec); every call is a fresh Python process that loads the table from Glue, so a
//! table made here can be appended to or read back after a job changed it.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::e2e_find::Lake;
use crate::readback::interpreter;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/iceberg_table.py"
);

/// The columns most tables use: `id` (required), `email`, `country`, `ts`.
pub const PEOPLE: [(&str, &str); 4] = [
    ("id", "long"),
    ("email", "string"),
    ("country", "string"),
    ("ts", "timestamp"),
];

/// What pyiceberg is asked to make: the table (in the lake's Glue database, at
/// `s3://<lake bucket>/<prefix>`), then one append (one snapshot) per `appends` entry.
#[derive(Debug, Clone, Serialize)]
pub struct Spec {
    pub table: String,
    /// Under the lake's bucket; the table's name when empty.
    #[serde(skip)]
    pub prefix: String,
    pub columns: Vec<Column>,
    pub partition: Vec<Partition>,
    /// Rows keyed by the column names current at that append; dates and timestamps as
    /// ISO 8601 text.
    pub appends: Vec<Vec<Value>>,
    pub rename: Option<Rename>,
    pub tag: Option<Tag>,
    /// pyiceberg's own (2) when unset.
    pub format_version: Option<u8>,
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub required: bool,
}

/// A partition field: its source column and transform (`identity`, `day`, `bucket[4]`…).
#[derive(Debug, Clone, Serialize)]
pub struct Partition {
    pub source: String,
    pub transform: String,
}

/// Renames column `from` to `to` after append number `after` (from 0).
#[derive(Debug, Clone, Serialize)]
pub struct Rename {
    pub after: usize,
    pub from: String,
    pub to: String,
}

/// Tags the snapshot of append number `snapshot` (from 0).
#[derive(Debug, Clone, Serialize)]
pub struct Tag {
    pub name: String,
    pub snapshot: usize,
}

impl Spec {
    /// An unpartitioned table of these columns (`id` required), no append yet.
    pub fn new(table: &str, columns: &[(&str, &str)]) -> Self {
        Spec {
            table: table.to_owned(),
            prefix: String::new(),
            columns: columns
                .iter()
                .map(|(name, ty)| Column {
                    name: (*name).to_owned(),
                    ty: (*ty).to_owned(),
                    required: *name == "id",
                })
                .collect(),
            partition: Vec::new(),
            appends: Vec::new(),
            rename: None,
            tag: None,
            format_version: None,
            properties: BTreeMap::new(),
        }
    }

    pub fn partition(mut self, source: &str, transform: &str) -> Self {
        self.partition.push(Partition {
            source: source.to_owned(),
            transform: transform.to_owned(),
        });
        self
    }

    pub fn append(mut self, rows: Vec<Value>) -> Self {
        self.appends.push(rows);
        self
    }

    pub fn rename_after(mut self, after: usize, from: &str, to: &str) -> Self {
        self.rename = Some(Rename {
            after,
            from: from.to_owned(),
            to: to.to_owned(),
        });
        self
    }

    pub fn tag(mut self, name: &str, snapshot: usize) -> Self {
        self.tag = Some(Tag {
            name: name.to_owned(),
            snapshot,
        });
        self
    }

    pub fn format_version(mut self, version: u8) -> Self {
        self.format_version = Some(version);
        self
    }
}

/// A table as pyiceberg describes it after writing.
#[derive(Debug, Clone, Deserialize)]
pub struct IcebergTable {
    #[serde(skip)]
    pub database: String,
    #[serde(skip)]
    pub name: String,
    /// `s3://bucket/prefix/metadata/NNNNN-<uuid>.metadata.json`, as Glue holds it.
    pub metadata_location: String,
    /// `s3://bucket/prefix`.
    pub location: String,
    pub format_version: u8,
    /// Every snapshot, oldest first.
    pub snapshots: Vec<Snapshot>,
    /// `main` and any tag or branch, by name.
    pub refs: BTreeMap<String, Ref>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub sequence_number: Option<i64>,
    pub operation: Option<String>,
    pub manifest_list: String,
    /// The data files this snapshot added (`s3://…` paths, sorted).
    pub added_files: Vec<String>,
    /// Every data file live in this snapshot (sorted).
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Ref {
    pub snapshot_id: i64,
    /// `branch` or `tag`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Makes the table `spec` describes in the lake's bucket and Glue database.
pub fn make_table(lake: &Lake, spec: &Spec) -> IcebergTable {
    let prefix = if spec.prefix.is_empty() {
        &spec.table
    } else {
        &spec.prefix
    };
    let mut request = serde_json::to_value(spec).unwrap();
    request["mode"] = json!("create");
    request["database"] = json!(lake.database);
    request["location"] = json!(format!("s3://{}/{prefix}", lake.bucket));
    described(&lake.database, &spec.table, &request)
}

fn described(database: &str, name: &str, request: &Value) -> IcebergTable {
    let out = run(request).unwrap_or_else(|e| panic!("pyiceberg refused: {e}"));
    let mut table: IcebergTable = serde_json::from_value(out).unwrap();
    table.database = database.to_owned();
    table.name = name.to_owned();
    table
}

impl IcebergTable {
    /// The key of an `s3://bucket/key` path of this table.
    pub fn key(path: &str) -> &str {
        let rest = path.strip_prefix("s3://").expect("an s3:// path");
        rest.split_once('/').expect("s3://bucket/key").1
    }

    pub fn current(&self) -> &Snapshot {
        self.snapshots.last().expect("the table has a snapshot")
    }

    /// The rows of the current snapshot, as pyiceberg reads them (dates and timestamps as
    /// ISO 8601 text), in pyiceberg's order.
    pub fn read(&self) -> Vec<Value> {
        let out = run(&self.request("read")).unwrap_or_else(|e| panic!("{e}"));
        out["rows"].as_array().cloned().unwrap_or_default()
    }

    /// The rows of snapshot `id`; Err with pyiceberg's reason when the table's current
    /// metadata no longer holds it (expired).
    pub fn read_at(&self, id: i64) -> Result<Vec<Value>, String> {
        let mut request = self.request("read_at");
        request["snapshot_id"] = json!(id);
        run(&request).map(|out| out["rows"].as_array().cloned().unwrap_or_default())
    }

    /// Appends `rows` as a new snapshot (a writer racing Lethe, say); the table as it is
    /// after.
    pub fn append(&self, rows: Vec<Value>) -> IcebergTable {
        let mut request = self.request("append");
        request["appends"] = json!([rows]);
        described(&self.database, &self.name, &request)
    }

    /// Deletes rows by position as a merge-on-read `DELETE` (Athena's, Spark's) does: one
    /// position delete file naming `(data file, positions)` in the partition of the first
    /// file, added by a snapshot of its own. The table as it is after, and the delete
    /// file's path.
    pub fn delete_positions(&self, deletes: &[(&str, &[i64])]) -> (IcebergTable, String) {
        let mut request = self.request("delete_positions");
        let deletes: Vec<Value> = deletes
            .iter()
            .map(|(file, positions)| json!({"file": file, "positions": positions}))
            .collect();
        request["deletes"] = json!(deletes);
        let out = run(&request).unwrap_or_else(|e| panic!("pyiceberg refused: {e}"));
        let file = out["delete_file"]
            .as_str()
            .expect("the delete file")
            .to_owned();
        let mut table: IcebergTable = serde_json::from_value(out).unwrap();
        table.database = self.database.clone();
        table.name = self.name.clone();
        (table, file)
    }

    /// Makes snapshot `id` (an ancestor of the current one) current again, as
    /// `rollback_to_snapshot` does; the table as it is after.
    pub fn rollback_to(&self, id: i64) -> IcebergTable {
        let mut request = self.request("rollback");
        request["snapshot_id"] = json!(id);
        described(&self.database, &self.name, &request)
    }

    fn request(&self, mode: &str) -> Value {
        json!({"mode": mode, "database": self.database, "table": self.name})
    }
}

/// Runs the script with `request` on stdin (tables of many rows exceed an argument's
/// size); its JSON stdout, or Err with the reason it printed when it exited with 3 (a
/// snapshot the metadata does not hold). Any other failure panics with its stderr.
fn run(request: &Value) -> Result<Value, String> {
    let mut child = Command::new(interpreter())
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(request.to_string().as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stdout: Option<Value> = serde_json::from_slice(&out.stdout).ok();
    match (out.status.code(), stdout) {
        (Some(0), Some(v)) => Ok(v),
        (Some(3), Some(v)) => Err(v["error"].as_str().unwrap_or_default().to_owned()),
        _ => panic!(
            "iceberg_table.py failed ({}; pyiceberg is in the corpus virtualenv that \
             scripts/test makes): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// DuckDB's own Iceberg reader (the iceberg and avro extensions PyPI packages: nothing is
/// downloaded), over a copy of the table's current objects: `id`, `email` and `country`
/// of each row of the snapshot the table's Glue entry names, by id.
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
con.execute(f"LOAD '{extension('avro')}'")
con.execute(f"LOAD '{extension('iceberg')}'")
table, version = sys.argv[1], sys.argv[2]
cur = con.execute("SELECT id, email, country FROM iceberg_scan(?, allow_moved_paths = true, version = ?) ORDER BY id", [table, version])
names = [c[0] for c in cur.description]
print(json.dumps([dict(zip(names, r)) for r in cur.fetchall()]))
"#;

impl IcebergTable {
    /// The `metadata_location` the table's Glue entry names now (after a job, say).
    pub async fn metadata_location_now(&self, lake: &Lake) -> String {
        let def = lake
            .glue
            .get_table()
            .database_name(&self.database)
            .name(&self.name)
            .send()
            .await
            .unwrap();
        let parameters = def.table().unwrap().parameters().unwrap();
        parameters["metadata_location"].clone()
    }

    /// The current snapshot's rows as DuckDB's iceberg extension reads them (`id`,
    /// `email`, `country`, by id): the table's current objects are copied from S3 to a
    /// local folder, read there (`allow_moved_paths`) at the metadata Glue names now.
    pub async fn read_with_duckdb(&self, lake: &Lake) -> Vec<Value> {
        let metadata = self.metadata_location_now(lake).await;
        let dir = tempfile::tempdir().unwrap();
        let prefix = Self::key(&self.location).to_owned();
        let listed = lake
            .s3
            .list_objects_v2()
            .bucket(&lake.bucket)
            .prefix(format!("{prefix}/"))
            .send()
            .await
            .unwrap();
        for o in listed.contents() {
            let key = o.key().unwrap();
            let bytes = crate::e2e_jobs::object_bytes(&lake.s3, &lake.bucket, key).await;
            let path = dir.path().join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let version = metadata
            .rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".metadata.json");
        let table = dir.path().join(&prefix);
        let venv = std::env::var("LETHE_DUCKDB_ICEBERG_VENV")
            .unwrap_or_else(|_| "/var/tmp/lethe/duckdb-iceberg-venv".into());
        let out = Command::new(format!("{venv}/bin/python"))
            .args(["-c", DUCKDB, table.to_str().unwrap(), version])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "DuckDB: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}
