//! The local half of a forget: rewriting a downloaded object to a new file without the
//! matching rows (Parquet through `lakefile::parquet_forget` with its full pre-upload
//! check; JSON Lines line by line, gzip by extension).

use std::path::Path;

use crate::db::job_object::ObjectUpdate;
use crate::domain::data_mapper::Format;
use crate::lakefile::match_set::MatchSet;
use crate::lakefile::{jsonl_find, jsonl_forget, parquet_forget};
use crate::storage::Fetched;

fn gz(key: &str) -> bool {
    key.ends_with(".gz")
}

/// What a rewrite of one object came to.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub rows_before: u64,
    pub rows_removed: u64,
    row_groups_rewritten: usize,
    row_groups_copied: usize,
}

impl Figures {
    /// The object's update recording this rewrite of `fetched` (read at `etag`).
    pub fn update<'a>(
        &self,
        fetched: &'a Fetched,
        etag: &'a str,
        size_after: i64,
    ) -> ObjectUpdate<'a> {
        ObjectUpdate {
            version_id: Some(fetched.version_id.as_deref()),
            etag: Some(etag),
            rows_total: Some(self.rows_before as i64),
            rows_removed: Some(self.rows_removed as i64),
            rows_after: Some((self.rows_before - self.rows_removed) as i64),
            size_after: Some(size_after),
            row_groups_rewritten: Some(self.row_groups_rewritten as i32),
            row_groups_copied: Some(self.row_groups_copied as i32),
            ..ObjectUpdate::default()
        }
    }
}

/// Rewrites `src` to `dst` without the matching rows (all rows when `every_row`).
pub fn rewrite(
    format: Format,
    key: &str,
    src: &Path,
    dst: &Path,
    columns: &[String],
    ids: &MatchSet,
    every_row: bool,
) -> Result<Figures, String> {
    match format {
        Format::Parquet => {
            let (r, _) = parquet_forget::forget_file(src, dst, columns, ids, every_row)
                .map_err(|e| e.to_string())?;
            Ok(Figures {
                rows_before: r.rows_before,
                rows_removed: r.rows_removed,
                row_groups_rewritten: r.row_groups_rewritten,
                row_groups_copied: r.row_groups_copied,
            })
        }
        Format::Json => {
            let out =
                std::io::BufWriter::new(std::fs::File::create(dst).map_err(|e| e.to_string())?);
            let file = std::fs::File::open(src).map_err(|e| e.to_string())?;
            let input: Box<dyn std::io::BufRead> = if gz(key) {
                Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
                    file,
                )))
            } else {
                Box::new(std::io::BufReader::new(file))
            };
            let everything = MatchSet::default();
            let (ids, drop_all) = if every_row {
                (&everything, true)
            } else {
                (ids, false)
            };
            let r = if gz(key) {
                let mut encoder =
                    flate2::write::GzEncoder::new(out, flate2::Compression::default());
                let r = forget_json(input, &mut encoder, columns, ids, drop_all)?;
                encoder.finish().map_err(|e| e.to_string())?;
                r
            } else {
                forget_json(input, out, columns, ids, drop_all)?
            };
            Ok(Figures {
                rows_before: r.lines_before,
                rows_removed: r.lines_removed,
                ..Figures::default()
            })
        }
    }
}

fn forget_json(
    input: Box<dyn std::io::BufRead>,
    out: impl std::io::Write,
    columns: &[String],
    ids: &MatchSet,
    drop_all: bool,
) -> Result<jsonl_forget::JsonForgetReport, String> {
    if drop_all {
        let mut scanner = jsonl_find::LineScanner::new(columns, ids);
        let mut input = input;
        std::io::copy(&mut input, &mut scanner).map_err(|e| e.to_string())?;
        let r = scanner.finish().map_err(|e| e.to_string())?;
        drop(out);
        return Ok(jsonl_forget::JsonForgetReport {
            lines_before: r.lines_total,
            lines_removed: r.lines_total,
        });
    }
    jsonl_forget::forget_lines(input, out, columns, ids).map_err(|e| e.to_string())
}
