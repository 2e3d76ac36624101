//! `lethe bench forget`: one rewrite of a local Parquet file without the rows matching the
//! ids in a file (one per line), one pass, printing MB/s, rows removed and row groups
//! rewritten / copied. Run it under `/usr/bin/time -f %M` for peak RSS.

use std::path::Path;
use std::time::Instant;

use crate::lakefile::match_set::MatchSet;
use crate::lakefile::parquet::check::check;
use crate::lakefile::parquet::forget::forget;
use crate::lakefile::parquet::local::SharedFile;

pub fn run(input: &Path, columns: &[String], ids_file: &Path, output: &Path) -> anyhow::Result<()> {
    let ids = MatchSet::from_lines(&std::fs::read_to_string(ids_file)?);
    let reader = SharedFile::open(input)?;
    let size = parquet::file::reader::Length::len(&reader);
    let start = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(output)?);
    let r = forget(reader.clone(), &mut out, columns, &ids)?;
    std::io::Write::flush(&mut out)?;
    drop(out);
    let rewritten = start.elapsed().as_secs_f64();
    let checked = check(reader, SharedFile::open(output)?, &r.fates)?;
    let secs = start.elapsed().as_secs_f64();
    let written = std::fs::metadata(output)?.len();
    println!("object size             {:.1} MB", size as f64 / 1e6);
    println!("match ids               {}", ids.len());
    println!("elapsed                 {secs:.3} s (full check included)");
    println!(
        "full check              {:.3} s ({:.0}% of the time): {} row groups compared value for value, {} byte for byte",
        secs - rewritten,
        (secs - rewritten) / secs * 100.0,
        checked.row_groups_compared,
        checked.row_groups_byte_compared
    );
    println!(
        "throughput              {:.1} MB/s (object bytes / elapsed)",
        size as f64 / 1e6 / secs
    );
    println!(
        "rows                    {} before, {} removed",
        r.rows_before, r.rows_removed
    );
    println!(
        "row groups              {} total, {} rewritten, {} copied, {} dropped",
        r.row_groups_before, r.row_groups_rewritten, r.row_groups_copied, r.row_groups_dropped
    );
    println!("written                 {:.1} MB", written as f64 / 1e6);
    Ok(())
}
