//! Files written by the writers users have (pandas, Python's `csv`), forgotten here and
//! read back by those same libraries: the rewrite must be the source's records without
//! the matching ones, as pandas and `csv` read both. The interpreter is the corpus
//! virtualenv (`LETHE_CORPUS_VENV`, default `/var/tmp/lethe/corpus-venv`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use super::dialect::{LAZY_SIMPLE, OPEN_CSV};
use super::{DEFAULT_MAX_RECORD_BYTES as MAX, Dialect, Expected, check, forget};
use crate::lakefile::match_set::MatchSet;
use crate::lakefile::test_files::python;

/// Runs a script with `dir` as its argument; its stdout as JSON.
fn run(script: &str, dir: &Path) -> Value {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Python writer or reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Writes the same 300 rows (commas, quotes, line breaks, tabs, accents, NAs in them) with
/// pandas and with `csv`, in several dialects.
const WRITE: &str = r#"
import csv, sys, os, math
import pandas as pd
d = sys.argv[1]
notes = ["plain", "Doe, Jane", 'say "hi"', "two\nlines", "cr\r\nlf", "café ☕", "", "tab\there", "u7"]
rows = [{"id": f"u{i}", "note": notes[i % len(notes)], "email": f"user{i}@example.com",
         "amount": (None if i % 11 == 0 else i * 1.5)} for i in range(300)]
df = pd.DataFrame(rows)
df.to_csv(os.path.join(d, "pandas_crlf.csv"), index=False, na_rep="\\N", lineterminator="\r\n")
flat = df.assign(note=df.note.str.replace("\n", " ").str.replace("\r", " "))
flat.to_csv(os.path.join(d, "pandas.tsv"), sep="\t", index=False, na_rep="\\N",
            quoting=csv.QUOTE_NONE, escapechar="\\")
for name, quoting, ending in [("csv_minimal.csv", csv.QUOTE_MINIMAL, "\r\n"), ("csv_all.csv", csv.QUOTE_ALL, "\n")]:
    with open(os.path.join(d, name), "w", newline="") as f:
        w = csv.writer(f, quoting=quoting, lineterminator=ending)
        w.writerow(["id", "note", "email", "amount"])
        for r in rows:
            w.writerow([r["id"], r["note"], r["email"], "" if r["amount"] is None else r["amount"]])
print("{}")
"#;

/// Reads each source and its rewrite back (pandas for pandas files, `csv` for the
/// others) and checks the rewrite is the source without the rows whose id or email is
/// queued; prints the rows read and removed per file.
const READ: &str = r#"
import csv, sys, os, json
import pandas as pd
d = sys.argv[1]
ids = {"u3", "u17", "u297", "user42@example.com", "u7"}
def frame(path, **kw):
    df = pd.read_csv(path, dtype=str, keep_default_na=False, **kw)
    return list(df.columns), df.values.tolist()
def rows(path):
    with open(path, newline="") as f:
        r = list(csv.reader(f))
    return r[0], r[1:]
readers = {"pandas_crlf.csv": lambda p: frame(p),
           "pandas.tsv": lambda p: frame(p, sep="\t", quoting=csv.QUOTE_NONE, escapechar="\\"),
           "csv_minimal.csv": rows, "csv_all.csv": rows}
out = {}
for name, read in readers.items():
    head, source = read(os.path.join(d, name))
    head2, rewrite = read(os.path.join(d, name + ".out"))
    assert head == head2, name
    want = [r for r in source if r[0] not in ids and r[2] not in ids]
    assert rewrite == want, name
    assert any("\n" in r[1] for r in rewrite) or name == "pandas.tsv", name
    out[name] = {"rows": len(source), "removed": len(source) - len(want)}
print(json.dumps(out))
"#;

fn glue(library: &str, params: &[(&str, &str)]) -> Dialect {
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let columns = [
        ("id", "string"),
        ("note", "string"),
        ("email", "string"),
        ("amount", "double"),
    ]
    .map(|(n, t)| (n.to_owned(), t.to_owned()));
    Dialect::of_glue(Some(library), &params, &columns).unwrap()
}

#[test]
fn files_from_pandas_and_pythons_csv_lose_exactly_the_matching_rows() {
    let dir = tempfile::tempdir().unwrap();
    run(WRITE, dir.path());
    let path_csv = Dialect::of_path(b',', Some(b'"'), None, true, None).unwrap();
    let dialects = [
        ("pandas_crlf.csv", path_csv.clone()),
        ("csv_all.csv", path_csv),
        (
            "csv_minimal.csv",
            glue(OPEN_CSV, &[("skip.header.line.count", "1")]),
        ),
        (
            "pandas.tsv",
            glue(
                LAZY_SIMPLE,
                &[
                    ("field.delim", "\t"),
                    ("escape.delim", "\\"),
                    ("skip.header.line.count", "1"),
                ],
            ),
        ),
    ];
    let queued = ["u3", "u17", "u297", "user42@example.com", "u7"].map(|s| json!(s));
    let ids = MatchSet::from_values(&queued);
    let columns = ["id".to_owned(), "email".to_owned()];
    let mut forgot = BTreeMap::new();
    for (name, dialect) in &dialects {
        let source = std::fs::read(dir.path().join(name)).unwrap();
        let mut out = Vec::new();
        let f = forget(&source[..], &mut out, dialect, &columns, &ids, false, MAX).unwrap();
        let expected = Expected {
            records_before: f.records_before,
            records_removed: f.records_removed,
            every_row: false,
        };
        check(
            &source[..],
            &out[..],
            dialect,
            &columns,
            &ids,
            expected,
            MAX,
        )
        .unwrap();
        std::fs::write(dir.path().join(format!("{name}.out")), &out).unwrap();
        forgot.insert(name.to_string(), f);
    }
    let read = run(READ, dir.path());
    for (name, f) in forgot {
        let counts = &read[&name];
        assert_eq!(counts["rows"], json!(f.records_before), "{name}");
        assert_eq!(counts["removed"], json!(f.records_removed), "{name}");
        // u7's note is "u7" on other rows too: only the id and email columns count.
        assert_eq!(f.records_removed, 5, "{name}");
    }
}
