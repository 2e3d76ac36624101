//! `lethe bench find`: one pass of find over local Parquet files, one core, printing
//! throughput, rows matched and row-group pruning.

use std::path::PathBuf;
use std::time::Instant;

use crate::lakefile::local::SharedFile;
use crate::lakefile::match_set::MatchSet;
use crate::lakefile::parquet_find::{FindReport, find};

/// Runs find over `inputs` for the ids in `ids_file` (one per line).
pub fn run(inputs: &[PathBuf], columns: &[String], ids_file: &PathBuf) -> anyhow::Result<()> {
    let ids = MatchSet::from_lines(&std::fs::read_to_string(ids_file)?);
    let mut total = FindReport::default();
    let mut object_bytes = 0u64;
    let mut objects_with_matches = 0usize;
    let start = Instant::now();
    for input in inputs {
        let file = SharedFile::open(input)?;
        object_bytes += parquet::file::reader::Length::len(&file);
        let r = find(file, columns, &ids)?;
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
