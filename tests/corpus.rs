//! The Parquet writer corpus: files written by pyarrow, DuckDB, polars and fastparquet
//! (`tests/corpus/make_corpus.py`, run by `scripts/corpus-test` before this test) and files
//! built here with the parquet crate's low-level writer for what none of them writes. For
//! each file and erasure: find with pruning and without agrees with the count pyarrow (or
//! the builder) gives; forget, full check included, removes exactly that many rows. The
//! outputs and a manifest go to `$LETHE_CORPUS_DIR/out`, where
//! `tests/corpus/verify_corpus.py` compares them with pyarrow, value for value and schema
//! leaf for leaf.

#[path = "../src/lakefile/test_files.rs"]
#[allow(dead_code)]
mod test_files;

use std::path::{Path, PathBuf};

use lethe::lakefile::match_set::MatchSet;
use lethe::lakefile::parquet::find::find;
use lethe::lakefile::parquet::forget::forget_file;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    file: String,
    writer: String,
    version: String,
    options: String,
    column: String,
    ids: Vec<Value>,
    expected_matches: u64,
    #[serde(default)]
    output: Option<String>,
}

/// The parquet crate's version, from the lock file.
fn parquet_version() -> String {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
        .unwrap_or_default();
    lock.split("[[package]]")
        .find(|p| p.contains("name = \"parquet\""))
        .and_then(|p| p.lines().find(|l| l.starts_with("version = ")))
        .map(|l| {
            l.trim_start_matches("version = ")
                .trim_matches('"')
                .to_owned()
        })
        .unwrap_or_else(|| "?".into())
}

/// Writes the hand-built files into `input` and returns their entries.
fn hand_built(input: &Path) -> Vec<Entry> {
    let version = parquet_version();
    let mut entries = Vec::new();
    for (with_map, name) in [
        (false, "parquet-rs-legacy.parquet"),
        (true, "parquet-rs-legacy-key-only-map.parquet"),
    ] {
        let (bytes, erasures) = test_files::legacy_parquet_mr(with_map);
        std::fs::write(input.join(name), &bytes).unwrap();
        for e in erasures {
            entries.push(Entry {
                file: name.into(),
                writer: "parquet-rs low-level writer".into(),
                version: version.clone(),
                options: format!(
                    "converted-type-only decimals (INT32, INT64, BYTE_ARRAY, FLBA(11)), UTF8, UINT_32, \
                     INT96, 2-level list, unannotated repeated{}",
                    if with_map { ", key-only MAP" } else { "" }
                ),
                column: e.column.into(),
                ids: e.ids,
                expected_matches: e.expected,
                output: None,
            });
        }
    }
    entries
}

/// Runs one entry; the error says what went wrong.
fn run(input: &Path, output: &Path, entry: &Entry) -> Result<String, String> {
    let src = input.join(&entry.file);
    let dst = output.join(entry.output.as_deref().unwrap_or_default());
    let bytes = bytes::Bytes::from(std::fs::read(&src).map_err(|e| e.to_string())?);
    let ids = MatchSet::from_values(&entry.ids);
    let columns = vec![entry.column.clone()];
    let pruned = find(bytes.clone(), &columns, &ids).map_err(|e| format!("find: {e}"))?;
    let full = find(bytes, &columns, &ids.clone().without_pruning())
        .map_err(|e| format!("find without pruning: {e}"))?;
    if (pruned.rows_matched, full.rows_matched) != (entry.expected_matches, entry.expected_matches)
    {
        return Err(format!(
            "find matched {} rows with pruning and {} without, pyarrow {}",
            pruned.rows_matched, full.rows_matched, entry.expected_matches
        ));
    }
    let (report, checked) =
        forget_file(&src, &dst, &columns, &ids, false).map_err(|e| format!("forget: {e}"))?;
    if report.rows_removed != entry.expected_matches {
        return Err(format!("forget removed {} rows", report.rows_removed));
    }
    Ok(format!(
        "{} rows removed; row groups {} rewritten, {} copied; full check: {} compared, {} byte-compared",
        report.rows_removed,
        report.row_groups_rewritten,
        report.row_groups_copied,
        checked.row_groups_compared,
        checked.row_groups_byte_compared
    ))
}

#[test]
fn every_file_of_every_writer_is_found_and_erased_exactly() {
    let dir = PathBuf::from(std::env::var("LETHE_CORPUS_DIR").expect(
        "LETHE_CORPUS_DIR is not set: run scripts/test (scripts/corpus-test writes the corpus first)",
    ));
    let (input, output) = (dir.join("in"), dir.join("out"));
    std::fs::create_dir_all(&output).unwrap();
    let manifest = std::fs::read_to_string(input.join("manifest.json")).unwrap();
    let mut entries: Vec<Entry> = serde_json::from_str(&manifest).unwrap();
    assert!(entries.len() >= 20, "the generated corpus is incomplete");
    entries.extend(hand_built(&input));
    let mut failures = Vec::new();
    for entry in &mut entries {
        let stem = entry.file.trim_end_matches(".parquet");
        entry.output = Some(format!("{stem}--{}.parquet", entry.column));
        let name = format!(
            "{} {} [{}] {}: match on {}",
            entry.writer, entry.version, entry.options, entry.file, entry.column
        );
        match run(&input, &output, entry) {
            Ok(summary) => println!("ok    {name}: {summary}"),
            Err(e) => {
                println!("FAIL  {name}: {e}");
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    std::fs::write(
        output.join("manifest.json"),
        serde_json::to_string_pretty(&entries).unwrap(),
    )
    .unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
}
