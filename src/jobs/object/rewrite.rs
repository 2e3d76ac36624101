//! The local half of a forget: rewriting a downloaded object to a new file without the
//! matching rows (Parquet through `lakefile::parquet::forget` with its full pre-upload
//! check; JSON Lines line by line, gzip by extension, read back in full against the source
//! by `lakefile::jsonl::check`). Every write error fails the rewrite, the final flush's too.
//! The new file is written within a [`Reservation`] of the worker's temporary space.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use crate::db::job_object::ObjectUpdate;
use crate::domain::data_mapper::Format;
use crate::lakefile::match_set::MatchSet;
use crate::lakefile::jsonl::{check as jsonl_check, find as jsonl_find, forget as jsonl_forget};
use crate::lakefile::parquet::forget as parquet_forget;
use crate::storage::Fetched;

use super::temp::{BoundedWriter, Reservation};

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
    /// The object's update recording this rewrite of `fetched` (the version rewritten;
    /// the version find read stays recorded apart).
    pub fn update<'a>(&self, fetched: &'a Fetched, size_after: i64) -> ObjectUpdate<'a> {
        ObjectUpdate {
            read_version_id: fetched.version_id.as_deref(),
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

/// How a rewrite goes: which rows, and how long a JSON Lines line may be.
#[derive(Debug, Clone, Copy)]
pub struct RewriteOptions {
    /// Every row goes (the subject owns the whole partition).
    pub every_row: bool,
    /// Longest JSON Lines line read (`LETHE_MAX_LINE_BYTES`); a longer one fails the rewrite.
    pub max_line: usize,
}

/// Rewrites `src` to `dst` without the matching rows (all rows when `every_row`), each
/// byte of `dst` reserved in `space` first ("temporary space exhausted" when refused).
pub fn rewrite(
    format: Format,
    key: &str,
    src: &Path,
    (dst, space): (&Path, &mut Reservation),
    columns: &[String],
    ids: &MatchSet,
    options: RewriteOptions,
) -> Result<Figures, String> {
    let every_row = options.every_row;
    let file = std::fs::File::create(dst).map_err(|e| e.to_string())?;
    let out = BoundedWriter::new(file, space);
    match format {
        Format::Parquet => {
            let (r, _) = parquet_forget::forget_file_to(src, (out, dst), columns, ids, every_row)
                .map_err(|e| e.to_string())?;
            Ok(Figures {
                rows_before: r.rows_before,
                rows_removed: r.rows_removed,
                row_groups_rewritten: r.row_groups_rewritten,
                row_groups_copied: r.row_groups_copied,
            })
        }
        Format::Json => rewrite_json(key, src, (out, dst), columns, ids, options),
    }
}

/// A JSON Lines object's lines (decompressed when `gzip`).
fn lines(path: &Path, gzip: bool) -> Result<Box<dyn BufRead>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    Ok(if gzip {
        Box::new(BufReader::new(MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    })
}

/// Rewrites a JSON Lines object, then reads the rewrite back in full against the source
/// (`jsonl_check`) before anything may be uploaded.
fn rewrite_json(
    key: &str,
    src: &Path,
    (out, dst): (impl Write, &Path),
    columns: &[String],
    ids: &MatchSet,
    options: RewriteOptions,
) -> Result<Figures, String> {
    let gzip = gz(key);
    let r = write_json(lines(src, gzip)?, out, gzip, columns, ids, options)?;
    let expected = jsonl_check::Expected {
        lines_before: r.lines_before,
        lines_removed: r.lines_removed,
        every_row: options.every_row,
    };
    let (source, rewrite) = (lines(src, gzip)?, lines(dst, gzip)?);
    jsonl_check::check(source, rewrite, columns, ids, expected, options.max_line)
        .map_err(|e| format!("the rewrite failed its read-back: {e}"))?;
    Ok(Figures {
        rows_before: r.lines_before,
        rows_removed: r.lines_removed,
        ..Figures::default()
    })
}

/// Writes the rewrite to `out` (gzip when `gzip`). Every write error fails it, the last
/// ones too: gzip's trailer and the buffer's final flush.
fn write_json<W: Write>(
    input: Box<dyn BufRead>,
    out: W,
    gzip: bool,
    columns: &[String],
    ids: &MatchSet,
    options: RewriteOptions,
) -> Result<jsonl_forget::JsonForgetReport, String> {
    let everything = MatchSet::default();
    let ids = if options.every_row { &everything } else { ids };
    let mut out = BufWriter::new(out);
    let r = if gzip {
        let mut encoder = GzEncoder::new(out, flate2::Compression::default());
        let r = forget_json(input, &mut encoder, columns, ids, options)?;
        out = encoder.finish().map_err(|e| e.to_string())?;
        r
    } else {
        forget_json(input, &mut out, columns, ids, options)?
    };
    out.into_inner().map_err(|e| e.error().to_string())?;
    Ok(r)
}

fn forget_json(
    input: Box<dyn BufRead>,
    out: impl Write,
    columns: &[String],
    ids: &MatchSet,
    options: RewriteOptions,
) -> Result<jsonl_forget::JsonForgetReport, String> {
    if options.every_row {
        let mut scanner =
            jsonl_find::LineScanner::new(columns, ids).with_max_line(options.max_line);
        let mut input = input;
        std::io::copy(&mut input, &mut scanner).map_err(|e| e.to_string())?;
        let r = scanner.finish().map_err(|e| e.to_string())?;
        drop(out);
        return Ok(jsonl_forget::JsonForgetReport {
            lines_before: r.lines_total,
            lines_removed: r.lines_total,
        });
    }
    jsonl_forget::forget_lines(input, out, columns, ids, options.max_line)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use std::sync::Arc;

    use serde_json::json;

    use super::super::temp::TempSpace;
    use super::*;

    const SOURCE: &str = "{\"id\": 1}\n\n{\"id\": 2, \"x\": \"b\"}\n{\"id\": 3}\n";

    /// A writer whose every write fails: behind the rewrite's buffer, the first write it
    /// sees is the final flush.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("no space left"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn opts(every_row: bool) -> RewriteOptions {
        RewriteOptions {
            every_row,
            max_line: crate::lakefile::jsonl::find::DEFAULT_MAX_LINE_BYTES,
        }
    }

    fn columns() -> Vec<String> {
        vec!["id".to_owned()]
    }

    fn ids() -> MatchSet {
        MatchSet::from_values(&[json!(1)])
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_failing_final_flush_fails_the_write_gzip_or_plain() {
        for (gzip, every_row) in [(true, false), (false, false), (true, true)] {
            let input: Box<dyn BufRead> = Box::new(SOURCE.as_bytes());
            let err =
                write_json(input, Full, gzip, &columns(), &ids(), opts(every_row)).unwrap_err();
            assert!(err.contains("no space left"), "{err}");
        }
    }

    #[test]
    fn a_gzip_rewrite_is_read_back_and_holds_exactly_the_kept_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("s"), dir.path().join("d"));
        std::fs::write(&src, gzip(SOURCE)).unwrap();
        let f = rewrite(
            Format::Json,
            "t/a.json.gz",
            &src,
            (&dst, &mut unbounded()),
            &columns(),
            &ids(),
            opts(false),
        )
        .unwrap();
        assert_eq!((f.rows_before, f.rows_removed), (3, 1));
        let mut text = String::new();
        MultiGzDecoder::new(std::fs::File::open(&dst).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "\n{\"id\": 2, \"x\": \"b\"}\n{\"id\": 3}\n");
        // Every row gone: an empty (valid) gzip.
        let f = rewrite(
            Format::Json,
            "t/a.json.gz",
            &src,
            (&dst, &mut unbounded()),
            &columns(),
            &ids(),
            opts(true),
        )
        .unwrap();
        assert_eq!((f.rows_before, f.rows_removed), (3, 3));
        let mut text = String::new();
        MultiGzDecoder::new(std::fs::File::open(&dst).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "");
    }

    /// `/dev/full` takes the file but refuses every write (ENOSPC): nothing is produced
    /// to upload, and the object fails.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_rewrite_whose_final_write_fails_produces_nothing_to_upload() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("s");
        for (key, bytes) in [
            ("t/a.json.gz", gzip(SOURCE)),
            ("t/a.json", SOURCE.as_bytes().to_vec()),
        ] {
            std::fs::write(&src, bytes).unwrap();
            let full = Path::new("/dev/full");
            let err = rewrite(
                Format::Json,
                key,
                &src,
                (full, &mut unbounded()),
                &columns(),
                &ids(),
                opts(false),
            )
            .unwrap_err();
            // A real ENOSPC reads as the budget's refusal does.
            assert!(err.contains("temporary space exhausted"), "{key}: {err}");
        }
    }

    fn unbounded() -> Reservation {
        Arc::new(TempSpace::default()).reserve(0).unwrap()
    }

    /// A Parquet object of `rows` rows with ids 0.., `per_group` rows per row group.
    fn parquet(rows: i64, per_group: usize) -> Vec<u8> {
        use arrow_array::{ArrayRef, Int64Array, RecordBatch};
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
        let batch = RecordBatch::try_from_iter([("id", ids)]).unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(per_group))
            .build();
        let mut out = Vec::new();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        out
    }

    #[test]
    fn a_rewrite_beyond_the_temporary_budget_fails_saying_so_and_gives_its_space_back() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("s"), dir.path().join("d"));
        let source = parquet(20_000, 5_000);
        std::fs::write(&src, &source).unwrap();
        let size = source.len() as u64;
        // Room for the download, not for its rewrite.
        let space = Arc::new(TempSpace::new(None, Some(size + size / 4)));
        let held = space.reserve(size).unwrap();
        let mut output = space.reserve(0).unwrap();
        for (format, key, file) in [
            (Format::Parquet, "t/a.parquet", &src),
            (Format::Json, "t/a.json", &src),
        ] {
            if format == Format::Json {
                let lines: String = (0..20_000).map(|i| format!("{{\"id\": {i}}}\n")).collect();
                std::fs::write(file, lines).unwrap();
            }
            let err = rewrite(
                format,
                key,
                file,
                (&dst, &mut output),
                &columns(),
                &ids(),
                opts(false),
            )
            .unwrap_err();
            assert!(err.contains("temporary space exhausted"), "{key}: {err}");
            assert!(output.bytes() <= size / 4, "{key}: never beyond the budget");
            let written = std::fs::metadata(&dst).unwrap().len();
            assert!(written <= size / 4, "{key}: {written} bytes written");
        }
        drop((held, output));
        assert_eq!(space.in_use(), 0);
        // With the budget for it, the same rewrite goes through.
        let space = Arc::new(TempSpace::new(None, Some(4 * size)));
        std::fs::write(&src, &source).unwrap();
        let f = rewrite(
            Format::Parquet,
            "t/a.parquet",
            &src,
            (&dst, &mut space.reserve(0).unwrap()),
            &columns(),
            &ids(),
            opts(false),
        )
        .unwrap();
        assert_eq!((f.rows_before, f.rows_removed), (20_000, 1));
    }
}
