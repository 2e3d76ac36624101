//! Independent readers for end-to-end tests: a lake object's bytes read back by pyarrow
//! (Parquet) or by Python's own `json` and `gzip` (JSON Lines), never by the code under
//! test; and the writers users have (pandas, Python's `csv`, fastavro) run at test time
//! ([`python`]). The interpreter is the corpus virtualenv `scripts/test` makes (pyarrow,
//! DuckDB, polars, fastparquet, pandas, fastavro, zstandard, pyiceberg);
//! `LETHE_CORPUS_VENV` names it.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The corpus virtualenv's python.
pub fn interpreter() -> PathBuf {
    let venv = std::env::var_os("LETHE_CORPUS_VENV").map_or_else(
        || PathBuf::from("/var/tmp/lethe/corpus-venv"),
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test (its make_corpus step makes the virtualenv)",
        python.display()
    );
    python
}

/// Runs `script` with the bytes in a file named by `sys.argv[1]` (then `args`); its
/// stdout as JSON.
fn run(script: &str, bytes: &[u8], args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("object");
    std::fs::write(&path, bytes).unwrap();
    let mut all = vec![path.to_str().unwrap()];
    all.extend_from_slice(args);
    python(script, &all)
}

/// Runs the Python `script` with `args` (`sys.argv[1..]`); its stdout as JSON.
pub fn python(script: &str, args: &[&str]) -> Value {
    let out = Command::new(interpreter())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Python script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every row of a Parquet object, as pyarrow reads it (integers exact; other values
/// by their Python text).
pub fn parquet_rows(bytes: &[u8]) -> Vec<Value> {
    let script = "import sys, json, pyarrow.parquet as pq\n\
                  t = pq.read_table(sys.argv[1])\n\
                  print(json.dumps(t.to_pylist(), default=str))";
    run(script, bytes, &[])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The lines of a JSON Lines object (gunzipped when `gz`), as Python reads them: each
/// line's text, after checking that it parses as a JSON object (numbers exactly, as
/// `int` and `Decimal`). Blank lines are left out.
pub fn json_lines(bytes: &[u8], gz: bool) -> Vec<String> {
    let script = "import sys, json, gzip, decimal\n\
                  raw = open(sys.argv[1], 'rb').read()\n\
                  text = (gzip.decompress(raw) if sys.argv[2] == 'gz' else raw).decode('utf-8')\n\
                  lines = [l for l in text.split('\\n') if l.strip()]\n\
                  for l in lines:\n    assert isinstance(json.loads(l, parse_float=decimal.Decimal), dict), l\n\
                  print(json.dumps(lines))";
    let lines = run(script, bytes, &[if gz { "gz" } else { "plain" }]);
    serde_json::from_value(lines).unwrap()
}
