//! `lethe bench find`: one pass of find over local Parquet files, one core, printing
//! throughput, rows matched and row-group pruning. With `--ranged`, through the job's
//! object path instead (ranged reads over the `file` store, one row group's match
//! columns in memory at a time), to measure find's and verify's peak RSS.

use std::path::PathBuf;
use std::time::Instant;

use crate::lakefile::match_set::MatchSet;
use crate::lakefile::parquet::find::{FindReport, find};
use crate::lakefile::parquet::local::SharedFile;

/// One object through the job's find (ranged reads from a `file` store).
fn find_ranged(
    input: &std::path::Path,
    columns: &[String],
    ids: &MatchSet,
) -> anyhow::Result<FindReport> {
    use crate::jobs::find::{ObjectRef, find_parquet};
    let dir = input.parent().unwrap_or(std::path::Path::new("."));
    let key = input
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let store = crate::storage::file::FileStore::new(dir);
    let object = ObjectRef {
        bucket: "",
        key,
        version_id: None,
        size: std::fs::metadata(input)?.len(),
    };
    // A runtime of its own on a thread of its own: the caller may be inside one.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let (report, _) =
                    runtime.block_on(find_parquet(&store, &object, (columns, None), ids))?;
                Ok(report)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the ranged find panicked"))?
    })
}

/// Runs find over `inputs` for the ids in `ids_file` (one per line).
pub fn run(
    inputs: &[PathBuf],
    columns: &[String],
    ids_file: &PathBuf,
    ranged: bool,
) -> anyhow::Result<()> {
    let ids = MatchSet::from_lines(&std::fs::read_to_string(ids_file)?);
    let mut total = FindReport::default();
    let mut object_bytes = 0u64;
    let mut objects_with_matches = 0usize;
    let start = Instant::now();
    for input in inputs {
        let file = SharedFile::open(input)?;
        object_bytes += parquet::file::reader::Length::len(&file);
        let r = if ranged {
            find_ranged(input, columns, &ids)?
        } else {
            find(file, columns, &ids)?
        };
        objects_with_matches += usize::from(r.rows_matched > 0);
        total.rows_total += r.rows_total;
        total.rows_matched += r.rows_matched;
        total.row_groups_total += r.row_groups_total;
        total.row_groups_pruned_by_statistics += r.row_groups_pruned_by_statistics;
        total.row_groups_pruned_by_bloom_filter += r.row_groups_pruned_by_bloom_filter;
        total.matching_row_groups.extend(r.matching_row_groups);
        total.bytes_scanned += r.bytes_scanned;
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = object_bytes as f64 / 1e6;
    let scanned = total.row_groups_total
        - total.row_groups_pruned_by_statistics
        - total.row_groups_pruned_by_bloom_filter;
    println!(
        "objects                 {} ({objects_with_matches} with matches)",
        inputs.len()
    );
    println!("match ids               {}", ids.len());
    println!("object size             {mb:.1} MB");
    println!(
        "match-column bytes read {:.1} MB",
        total.bytes_scanned as f64 / 1e6
    );
    println!("elapsed                 {:.3} s", secs);
    println!(
        "throughput              {:.1} MB/s (object bytes / elapsed)",
        mb / secs
    );
    println!(
        "rows                    {} total, {} matched",
        total.rows_total, total.rows_matched
    );
    println!(
        "row groups              {} total, {} scanned, {} pruned by statistics, {} pruned by bloom filters, {} with matches",
        total.row_groups_total,
        scanned,
        total.row_groups_pruned_by_statistics,
        total.row_groups_pruned_by_bloom_filter,
        total.matching_row_groups.len()
    );
    Ok(())
}
