//! The file-format seam: everything the job engine asks of an object's bytes, whatever
//! the format. `jobs/` builds one [`Records`] per mapper (the format with the table
//! settings it is read by) and only orchestrates: it never matches on the format.
//!
//! Each format says
//! - how an object is searched ([`Records::search`]): by ranges (Parquet: the footer,
//!   then only the row groups and columns it needs, fetched by the caller), or streamed
//!   (JSON Lines, CSV, Avro: every byte pushed through a [`StreamSearch`] in order);
//! - how an object is rewritten without the records that match ([`Records::rewrite`]),
//!   from a downloaded copy to a new file, and read back in full against the source
//!   before anything may be uploaded.
//!
//! A text format's compression (gzip, zstd, bzip2, by the key's extension) is its own
//! layer ([`compression`]), applied here around the format's own reader and writer, and
//! kept on rewrite.
//!
//! A new format is one folder under `lakefile/` (its search, forget and check), a variant
//! of [`Records`] with the table settings it needs, and its arms in the four methods here.

pub mod compression;

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::domain::data_mapper::{Format, PathTable};

use super::jsonl::{check as jsonl_check, find as jsonl_find, forget as jsonl_forget};
use super::match_set::MatchSet;
use super::parquet::forget as parquet_forget;
use compression::Compression;

/// How a mapper's objects are read: the format, with the table settings it needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Records {
    /// Apache Parquet: self-describing; searched by ranges.
    Parquet,
    /// JSON Lines (one object per line), compressed by extension.
    JsonLines,
}

/// The table settings a format may need, as the catalog gives them (a Glue table's
/// SerDe and columns) or as a `path` mapper declares them.
#[derive(Debug, Clone, Default)]
pub struct TableSettings<'a> {
    /// The SerDe class and its parameters (with the table's own parameters, such as
    /// `skip.header.line.count`).
    pub serde_library: Option<&'a str>,
    pub serde_parameters: Option<&'a BTreeMap<String, String>>,
    /// The table's data columns in order, with their Glue types.
    pub columns: &'a [(String, String)],
    /// A `path` mapper's table (its own format options).
    pub path: Option<&'a PathTable>,
}

/// What to match, and how far a record may go.
#[derive(Debug, Clone, Copy)]
pub struct Matching<'a> {
    /// The mapper's match columns (dotted paths).
    pub columns: &'a [String],
    pub ids: &'a MatchSet,
    /// Every record matches (a composite names only this object's partition values).
    pub every_row: bool,
    /// The longest record a streamed format holds in memory (a longer one fails).
    pub max_record: usize,
}

/// What a streamed search found in one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub records_total: u64,
    /// Every record when `every_row`.
    pub records_matched: u64,
    /// Matching records per queued match (its index in the job's list).
    pub rows_by_match: BTreeMap<u32, u64>,
}

/// Why an object's records could not be read. Messages name record numbers, never values.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Json(#[from] jsonl_find::JsonFindError),
    #[error("cannot decompress the object: {0}")]
    Compression(std::io::Error),
    /// The table's settings cannot be read exactly (see [`Records::new`]).
    #[error("{0}")]
    Refused(String),
}

/// A search fed an object's bytes in order.
pub trait StreamSearch: Write + Send {
    /// What the search found, once every byte was written (a truncated stream fails).
    fn finish(self: Box<Self>) -> Result<Found, RecordError>;
}

/// How an object is searched.
pub enum Search<'a> {
    /// By ranged reads the caller makes (Parquet).
    Ranged,
    /// Write every byte of the object, in order, then finish.
    Streamed(Box<dyn StreamSearch + 'a>),
}

/// What a rewrite did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewritten {
    pub records_before: u64,
    pub records_removed: u64,
    /// Row groups (Parquet) or blocks (Avro) rewritten and copied as they were.
    pub groups_rewritten: usize,
    pub groups_copied: usize,
}

impl Records {
    /// The records of a mapper of `format` on a table with these settings; Err: why the
    /// table cannot be read exactly (refused loudly, never guessed).
    pub fn new(format: Format, table: &TableSettings<'_>) -> Result<Self, String> {
        Ok(match format {
            Format::Parquet => Records::Parquet,
            Format::Json => {
                let none = BTreeMap::new();
                let parameters = table.serde_parameters.unwrap_or(&none);
                if let Some(why) = super::jsonl::serde::refusal(table.serde_library, parameters) {
                    return Err(why);
                }
                Records::JsonLines
            }
            Format::Csv | Format::Avro => {
                return Err(format!("{} objects are not read yet", format.as_str()));
            }
        })
    }

    /// Whether values are read by the table's declared column types (text formats): the
    /// match set is then built with them ([`MatchSet::with_declared`]).
    pub fn reads_declared_types(&self) -> bool {
        matches!(self, Records::JsonLines)
    }

    /// How the object at `key` is searched.
    pub fn search<'a>(&'a self, key: &str, m: Matching<'a>) -> Result<Search<'a>, RecordError> {
        let compression = Compression::of_key(key);
        Ok(match self {
            Records::Parquet => Search::Ranged,
            Records::JsonLines => {
                let scanner =
                    jsonl_find::LineScanner::new(m.columns, m.ids).with_max_line(m.max_record);
                let decoder = compression
                    .decoder(scanner)
                    .map_err(RecordError::Compression)?;
                Search::Streamed(Box::new(Lines {
                    decoder,
                    every_row: m.every_row,
                }))
            }
        })
    }

    /// Rewrites the downloaded object `src` (stored at `key`) to `out` (the file `dst`)
    /// without its matching records (all of them when `every_row`), then reads `dst` back
    /// in full against `src`. Every write error fails it, the final flush's too.
    pub fn rewrite<W: Write + Send>(
        &self,
        key: &str,
        src: &Path,
        (out, dst): (W, &Path),
        m: Matching<'_>,
    ) -> Result<Rewritten, String> {
        match self {
            Records::Parquet => {
                let (r, _) =
                    parquet_forget::forget_file_to(src, (out, dst), m.columns, m.ids, m.every_row)
                        .map_err(|e| e.to_string())?;
                Ok(Rewritten {
                    records_before: r.rows_before,
                    records_removed: r.rows_removed,
                    groups_rewritten: r.row_groups_rewritten,
                    groups_copied: r.row_groups_copied,
                })
            }
            Records::JsonLines => rewrite_lines(Compression::of_key(key), src, (out, dst), m),
        }
    }
}

/// A JSON Lines search behind its decompression.
struct Lines<'a> {
    decoder: compression::Decoder<jsonl_find::LineScanner<'a>>,
    every_row: bool,
}

impl Write for Lines<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.decoder.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.decoder.flush()
    }
}

impl StreamSearch for Lines<'_> {
    fn finish(self: Box<Self>) -> Result<Found, RecordError> {
        let scanner = self.decoder.finish().map_err(unwrap_io)?;
        let r = scanner.finish()?;
        Ok(Found {
            records_total: r.lines_total,
            records_matched: if self.every_row {
                r.lines_total
            } else {
                r.lines_matched
            },
            rows_by_match: r.rows_by_match,
        })
    }
}

impl RecordError {
    /// The error a streamed search of `records` returned from a write: the format's own
    /// error carried in the `io::Error`, else a decompression error.
    pub fn from_io(e: std::io::Error, _records: &Records) -> Self {
        unwrap_io(e)
    }
}

/// A scanner's own error carried through a decoder's `io::Error`, else a decompression
/// error.
fn unwrap_io(e: std::io::Error) -> RecordError {
    if e.get_ref()
        .is_some_and(|inner| inner.is::<jsonl_find::JsonFindError>())
    {
        return RecordError::Json(jsonl_find::unwrap_io(e));
    }
    RecordError::Compression(e)
}

/// Opens a downloaded object decompressed.
fn open(path: &Path, compression: Compression) -> Result<Box<dyn std::io::BufRead>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    compression.reader(file).map_err(|e| e.to_string())
}

/// Rewrites a JSON Lines object, then reads the rewrite back in full against the source
/// (`jsonl::check`) before anything may be uploaded.
fn rewrite_lines<W: Write>(
    compression: Compression,
    src: &Path,
    (out, dst): (W, &Path),
    m: Matching<'_>,
) -> Result<Rewritten, String> {
    let r = write_lines(open(src, compression)?, out, compression, m)?;
    let expected = jsonl_check::Expected {
        lines_before: r.lines_before,
        lines_removed: r.lines_removed,
        every_row: m.every_row,
    };
    let (source, rewrite) = (open(src, compression)?, open(dst, compression)?);
    jsonl_check::check(source, rewrite, m.columns, m.ids, expected, m.max_record)
        .map_err(|e| format!("the rewrite failed its read-back: {e}"))?;
    Ok(Rewritten {
        records_before: r.lines_before,
        records_removed: r.lines_removed,
        ..Rewritten::default()
    })
}

/// Writes the rewrite to `out`, compressed as the source. Every write error fails it, the
/// last ones too: the compression's trailer and the buffer's final flush.
fn write_lines<W: Write>(
    mut input: Box<dyn std::io::BufRead>,
    out: W,
    compression: Compression,
    m: Matching<'_>,
) -> Result<jsonl_forget::JsonForgetReport, String> {
    let mut encoder = compression
        .encoder(BufWriter::new(out))
        .map_err(|e| e.to_string())?;
    let r = if m.every_row {
        // Nothing is kept; the lines are still read in full (a malformed object fails).
        let mut scanner =
            jsonl_find::LineScanner::new(m.columns, m.ids).with_max_line(m.max_record);
        std::io::copy(&mut input, &mut scanner).map_err(|e| e.to_string())?;
        let r = scanner.finish().map_err(|e| e.to_string())?;
        jsonl_forget::JsonForgetReport {
            lines_before: r.lines_total,
            lines_removed: r.lines_total,
        }
    } else {
        jsonl_forget::forget_lines(input, &mut encoder, m.columns, m.ids, m.max_record)
            .map_err(|e| e.to_string())?
    };
    let out = encoder.finish().map_err(|e| e.to_string())?;
    out.into_inner().map_err(|e| e.error().to_string())?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use serde_json::json;

    use super::*;

    const SOURCE: &str = "{\"id\": 1}\n\n{\"id\": 2, \"x\": \"b\"}\r\n{\"id\": 3}";

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

    const KINDS: [(&str, Compression); 4] = [
        ("t/a.json", Compression::None),
        ("t/a.json.gz", Compression::Gzip),
        ("t/a.json.zst", Compression::Zstd),
        ("t/a.json.bz2", Compression::Bzip2),
    ];

    fn compressed(c: Compression, text: &str) -> Vec<u8> {
        let mut e = c.encoder(Vec::new()).unwrap();
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    fn matching<'a>(columns: &'a [String], ids: &'a MatchSet, every_row: bool) -> Matching<'a> {
        Matching {
            columns,
            ids,
            every_row,
            max_record: 1 << 20,
        }
    }

    #[test]
    fn a_failing_final_flush_fails_the_write_whatever_the_compression() {
        let (columns, ids) = (vec!["id".to_owned()], MatchSet::from_values(&[json!(1)]));
        for (_, c) in KINDS {
            // With every row gone a plain rewrite writes nothing at all, so nothing fails.
            let cases: &[bool] = if c == Compression::None {
                &[false]
            } else {
                &[false, true]
            };
            for &every_row in cases {
                let input: Box<dyn std::io::BufRead> = Box::new(SOURCE.as_bytes());
                let m = matching(&columns, &ids, every_row);
                let err = write_lines(input, Full, c, m).unwrap_err();
                assert!(err.contains("no space left"), "{c:?}: {err}");
            }
        }
    }

    /// Each compression is kept: the rewrite decodes to the source's kept lines, byte for
    /// byte (the CRLF too), and a search of the rewrite finds no match.
    #[test]
    fn a_rewrite_keeps_its_compression_and_exactly_the_kept_lines() {
        let (columns, ids) = (vec!["id".to_owned()], MatchSet::from_values(&[json!(1)]));
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("s"), dir.path().join("d"));
        for (key, c) in KINDS {
            std::fs::write(&src, compressed(c, SOURCE)).unwrap();
            let out = std::fs::File::create(&dst).unwrap();
            let m = matching(&columns, &ids, false);
            let r = Records::JsonLines
                .rewrite(key, &src, (out, &dst), m)
                .unwrap();
            assert_eq!((r.records_before, r.records_removed), (3, 1), "{key}");
            let raw = std::fs::read(&dst).unwrap();
            let mut text = String::new();
            c.reader(&raw[..])
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            assert_eq!(text, "\n{\"id\": 2, \"x\": \"b\"}\r\n{\"id\": 3}", "{key}");
            assert_eq!(
                compressed(c, &text).get(..2),
                raw.get(..2),
                "{key}: same kind"
            );
            let Search::Streamed(mut search) = Records::JsonLines.search(key, m).unwrap() else {
                panic!("JSON Lines is streamed");
            };
            search.write_all(&raw).unwrap();
            let found = search.finish().unwrap();
            assert_eq!(
                (found.records_total, found.records_matched),
                (2, 0),
                "{key}"
            );
        }
    }

    #[test]
    fn a_json_table_whose_serde_is_not_read_exactly_is_refused() {
        let params = BTreeMap::new();
        let table = TableSettings {
            serde_library: Some("com.amazon.ionhiveserde.IonHiveSerDe"),
            serde_parameters: Some(&params),
            ..TableSettings::default()
        };
        let err = Records::new(Format::Json, &table).unwrap_err();
        assert!(err.contains("not a JSON SerDe"), "{err}");
        assert_eq!(
            Records::new(Format::Parquet, &table),
            Ok(Records::Parquet),
            "a Parquet file carries its own schema"
        );
    }
}
