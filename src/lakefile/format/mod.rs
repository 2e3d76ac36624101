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
//! kept on rewrite. An Avro object is read as it is whatever its key (its codec is inside
//! the file, and Hive's Avro reader never decodes by extension).
//!
//! A new format is one folder under `lakefile/` (its search, forget and check), a variant
//! of [`Records`] with the table settings it needs, and its arms in the four methods here.

pub mod compression;

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use crate::domain::data_mapper::{CsvOptions, Format, PathTable};
use crate::domain::field_ids::FieldIds;

use super::jsonl::{check as jsonl_check, find as jsonl_find, forget as jsonl_forget};
use super::match_set::MatchSet;
use super::parquet::forget as parquet_forget;
use super::{avro, csv};
use compression::Compression;

/// How a mapper's objects are read: the format, with the table settings it needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Records {
    /// Apache Parquet: self-describing; searched by ranges.
    Parquet,
    /// JSON Lines (one object per line), compressed by extension.
    JsonLines,
    /// CSV and other delimited text read as the table's SerDe (or a `path` mapper's
    /// options) says, compressed by extension.
    Csv(Box<csv::Dialect>),
    /// Avro object container files (the codec is inside the file).
    Avro,
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
    /// The match columns' field-id paths (an Apache Iceberg table's): Parquet finds each
    /// column by them, whatever a data file names it. None: by name.
    pub field_ids: Option<&'a FieldIds>,
    /// Rows a rewrite leaves out whatever they hold, by position in the object (0-based,
    /// ascending): the rows an Iceberg table's position delete files delete from a data
    /// file, which its rewrite must not bring back. Parquet only; empty for a search.
    pub drop_rows: &'a [u64],
}

pub use super::found::Found;

/// Why an object's records could not be read. Messages name record numbers, never values.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Json(#[from] jsonl_find::JsonFindError),
    #[error(transparent)]
    Csv(#[from] csv::CsvError),
    #[error(transparent)]
    Avro(#[from] avro::AvroError),
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
                if let Some(why) =
                    crate::domain::json_serde::refusal(table.serde_library, parameters)
                {
                    return Err(why);
                }
                Records::JsonLines
            }
            Format::Csv => Records::Csv(Box::new(csv_dialect(table)?)),
            Format::Avro => Records::Avro,
        })
    }

    /// Whether records are read through the table's SerDe settings (delimiters, JSON key
    /// rules): text formats. Parquet and Avro files describe themselves.
    pub fn reads_serde(&self) -> bool {
        matches!(self, Records::JsonLines | Records::Csv(_))
    }

    /// Whether values are read by the table's declared column types (text formats): the
    /// match set is then built with them ([`MatchSet::with_declared`]).
    pub fn reads_declared_types(&self) -> bool {
        matches!(self, Records::JsonLines)
    }

    /// How the object at `key` is searched.
    pub fn search<'a>(&'a self, key: &str, m: Matching<'a>) -> Result<Search<'a>, RecordError> {
        let compression = self.compression(key);
        let (columns, ids, max) = (m.columns, m.ids, m.max_record);
        let scan: Box<dyn StreamSearch + 'a> = match self {
            Records::Parquet => return Ok(Search::Ranged),
            Records::JsonLines => {
                let scanner = jsonl_find::LineScanner::new(columns, ids).with_max_line(max);
                streamed(compression, scanner, m.every_row)?
            }
            Records::Csv(dialect) => {
                let scanner = csv::Scanner::new(dialect, columns, ids, max);
                streamed(compression, scanner, m.every_row)?
            }
            Records::Avro => {
                let scanner = avro::Scanner::new(columns, ids, max);
                streamed(compression, scanner, m.every_row)?
            }
        };
        Ok(Search::Streamed(scan))
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
        let compression = self.compression(key);
        if !m.drop_rows.is_empty() && *self != Records::Parquet {
            return Err("rows are deleted by position in Parquet data files only".into());
        }
        match self {
            Records::Parquet => {
                let (r, _) = parquet_forget::forget_file_to(
                    src,
                    (out, dst),
                    (m.columns, m.field_ids),
                    (m.ids, m.drop_rows),
                    m.every_row,
                )
                .map_err(|e| e.to_string())?;
                Ok(Rewritten {
                    records_before: r.rows_before,
                    records_removed: r.rows_removed,
                    groups_rewritten: r.row_groups_rewritten,
                    groups_copied: r.row_groups_copied,
                })
            }
            Records::JsonLines => {
                rewrite_streamed(compression, src, (out, dst), m, &JsonLinesRewrite)
            }
            Records::Csv(dialect) => {
                rewrite_streamed(compression, src, (out, dst), m, dialect.as_ref())
            }
            Records::Avro => rewrite_streamed(compression, src, (out, dst), m, &AvroRewrite),
        }
    }

    /// How the object at `key` is compressed around the format: by the key's extension
    /// for a text format, never for Avro (nor Parquet).
    fn compression(&self, key: &str) -> Compression {
        match self {
            Records::JsonLines | Records::Csv(_) => Compression::of_key(key),
            Records::Parquet | Records::Avro => Compression::None,
        }
    }
}

/// The `path` mapper's CSV options, else the Glue table's SerDe, as a dialect.
fn csv_dialect(table: &TableSettings<'_>) -> Result<csv::Dialect, String> {
    let Some(path) = table.path else {
        let none = BTreeMap::new();
        let parameters = table.serde_parameters.unwrap_or(&none);
        return csv::Dialect::of_glue(table.serde_library, parameters, table.columns);
    };
    let options = path
        .csv
        .as_ref()
        .ok_or("a csv mapper's catalog says how its objects are read (catalog.csv)")?;
    let byte = |v: &str, name| CsvOptions::byte(v, name);
    let delimiter = byte(&options.delimiter, "delimiter")?.ok_or("delimiter must not be empty")?;
    let escape = match &options.escape {
        Some(e) => byte(e, "escape")?,
        None => None,
    };
    let quote = byte(&options.quote, "quote")?;
    csv::Dialect::of_path(
        delimiter,
        quote,
        escape,
        options.header,
        options.columns.clone(),
    )
}

impl RecordError {
    /// The error a streamed search returned from a write: the format's own error carried
    /// in the `io::Error`, else a decompression error.
    pub fn from_io(e: std::io::Error) -> Self {
        let Some(inner) = e.get_ref() else {
            return RecordError::Compression(e);
        };
        if inner.is::<jsonl_find::JsonFindError>() {
            RecordError::Json(jsonl_find::unwrap_io(e))
        } else if inner.is::<csv::CsvError>() {
            RecordError::Csv(csv::CsvError::from_io(e))
        } else if inner.is::<avro::AvroError>() {
            RecordError::Avro(avro::AvroError::from_io(e))
        } else {
            RecordError::Compression(e)
        }
    }
}

/// A format's scanner, fed the decompressed bytes.
trait Scan: Write + Send {
    fn done(self) -> Result<Found, RecordError>;
}

impl Scan for jsonl_find::LineScanner<'_> {
    fn done(self) -> Result<Found, RecordError> {
        let r = self.finish()?;
        Ok(Found {
            records_total: r.lines_total,
            records_matched: r.lines_matched,
            rows_by_match: r.rows_by_match,
        })
    }
}

impl Scan for csv::Scanner<'_> {
    fn done(self) -> Result<Found, RecordError> {
        Ok(self.finish()?)
    }
}

impl Scan for avro::Scanner<'_> {
    fn done(self) -> Result<Found, RecordError> {
        Ok(self.finish()?)
    }
}

/// A streamed search: a scanner behind the object's decompression.
struct Streamed<S: Scan> {
    decoder: compression::Decoder<S>,
    every_row: bool,
}

fn streamed<'a, S: Scan + 'a>(
    compression: Compression,
    scanner: S,
    every_row: bool,
) -> Result<Box<dyn StreamSearch + 'a>, RecordError> {
    let decoder = compression
        .decoder(scanner)
        .map_err(RecordError::Compression)?;
    Ok(Box::new(Streamed { decoder, every_row }))
}

impl<S: Scan> Write for Streamed<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.decoder.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.decoder.flush()
    }
}

impl<S: Scan> StreamSearch for Streamed<S> {
    fn finish(self: Box<Self>) -> Result<Found, RecordError> {
        let scanner = self.decoder.finish().map_err(RecordError::from_io)?;
        let mut found = scanner.done()?;
        if self.every_row {
            found.records_matched = found.records_total;
        }
        Ok(found)
    }
}

/// A streamed format's rewrite: forget from the decompressed source into the output
/// (compressed as the source), then the full read-back of both, decompressed.
trait StreamRewrite {
    /// Copies every kept record of `input` to `out`; what it did.
    fn forget(
        &self,
        input: &mut dyn BufRead,
        out: &mut dyn Write,
        m: Matching<'_>,
    ) -> Result<Rewritten, String>;
    /// Checks that `rewrite` is `source` without exactly its matching records, as `done`
    /// says.
    fn check(
        &self,
        source: &mut dyn BufRead,
        rewrite: &mut dyn BufRead,
        m: Matching<'_>,
        done: Rewritten,
    ) -> Result<(), String>;
}

fn counted(before: u64, removed: u64) -> Rewritten {
    Rewritten {
        records_before: before,
        records_removed: removed,
        ..Rewritten::default()
    }
}

struct JsonLinesRewrite;

impl StreamRewrite for JsonLinesRewrite {
    fn forget(
        &self,
        input: &mut dyn BufRead,
        out: &mut dyn Write,
        m: Matching<'_>,
    ) -> Result<Rewritten, String> {
        if m.every_row {
            // Nothing is kept; the lines are still read in full (a malformed object fails).
            let mut scanner =
                jsonl_find::LineScanner::new(m.columns, m.ids).with_max_line(m.max_record);
            std::io::copy(input, &mut scanner).map_err(|e| e.to_string())?;
            let r = scanner.finish().map_err(|e| e.to_string())?;
            return Ok(counted(r.lines_total, r.lines_total));
        }
        let r = jsonl_forget::forget_lines(input, out, m.columns, m.ids, m.max_record)
            .map_err(|e| e.to_string())?;
        Ok(counted(r.lines_before, r.lines_removed))
    }
    fn check(
        &self,
        source: &mut dyn BufRead,
        rewrite: &mut dyn BufRead,
        m: Matching<'_>,
        done: Rewritten,
    ) -> Result<(), String> {
        let expected = jsonl_check::Expected {
            lines_before: done.records_before,
            lines_removed: done.records_removed,
            every_row: m.every_row,
        };
        jsonl_check::check(source, rewrite, m.columns, m.ids, expected, m.max_record)
            .map_err(|e| e.to_string())
    }
}

impl StreamRewrite for csv::Dialect {
    fn forget(
        &self,
        input: &mut dyn BufRead,
        out: &mut dyn Write,
        m: Matching<'_>,
    ) -> Result<Rewritten, String> {
        let r = csv::forget(
            input,
            out,
            self,
            m.columns,
            m.ids,
            m.every_row,
            m.max_record,
        )
        .map_err(|e| e.to_string())?;
        Ok(counted(r.records_before, r.records_removed))
    }
    fn check(
        &self,
        source: &mut dyn BufRead,
        rewrite: &mut dyn BufRead,
        m: Matching<'_>,
        done: Rewritten,
    ) -> Result<(), String> {
        let expected = csv::Expected {
            records_before: done.records_before,
            records_removed: done.records_removed,
            every_row: m.every_row,
        };
        csv::check(
            source,
            rewrite,
            self,
            m.columns,
            m.ids,
            expected,
            m.max_record,
        )
        .map_err(|e| e.to_string())
    }
}

struct AvroRewrite;

impl StreamRewrite for AvroRewrite {
    fn forget(
        &self,
        input: &mut dyn BufRead,
        out: &mut dyn Write,
        m: Matching<'_>,
    ) -> Result<Rewritten, String> {
        let r = avro::forget(input, out, m.columns, m.ids, m.every_row, m.max_record)
            .map_err(|e| e.to_string())?;
        Ok(Rewritten {
            records_before: r.records_before,
            records_removed: r.records_removed,
            groups_rewritten: r.blocks_rewritten as usize,
            groups_copied: r.blocks_copied as usize,
        })
    }
    fn check(
        &self,
        source: &mut dyn BufRead,
        rewrite: &mut dyn BufRead,
        m: Matching<'_>,
        done: Rewritten,
    ) -> Result<(), String> {
        let expected = avro::Expected {
            records_before: done.records_before,
            records_removed: done.records_removed,
            every_row: m.every_row,
        };
        avro::check(source, rewrite, m.columns, m.ids, expected, m.max_record)
            .map_err(|e| e.to_string())
    }
}

/// Opens a downloaded object decompressed.
fn open(path: &Path, compression: Compression) -> Result<Box<dyn BufRead>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    compression.reader(file).map_err(|e| e.to_string())
}

/// Rewrites a streamed format's object (compressed as its key says, and kept so), then
/// reads the rewrite back in full against the source before anything may be uploaded.
fn rewrite_streamed<W: Write>(
    compression: Compression,
    src: &Path,
    (out, dst): (W, &Path),
    m: Matching<'_>,
    format: &dyn StreamRewrite,
) -> Result<Rewritten, String> {
    let done = write_streamed(&mut open(src, compression)?, out, compression, m, format)?;
    let (mut source, mut rewrite) = (open(src, compression)?, open(dst, compression)?);
    format
        .check(&mut source, &mut rewrite, m, done)
        .map_err(|e| format!("the rewrite failed its read-back: {e}"))?;
    Ok(done)
}

/// Writes the rewrite to `out`, compressed as the source. Every write error fails it, the
/// last ones too: the compression's trailer and the buffer's final flush.
fn write_streamed<W: Write>(
    input: &mut dyn BufRead,
    out: W,
    compression: Compression,
    m: Matching<'_>,
    format: &dyn StreamRewrite,
) -> Result<Rewritten, String> {
    let mut encoder = compression
        .encoder(BufWriter::new(out))
        .map_err(|e| e.to_string())?;
    let done = format.forget(input, &mut encoder, m)?;
    let out = encoder.finish().map_err(|e| e.to_string())?;
    out.into_inner().map_err(|e| e.error().to_string())?;
    Ok(done)
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
            field_ids: None,
            drop_rows: &[],
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
                let m = matching(&columns, &ids, every_row);
                let mut input = SOURCE.as_bytes();
                let err = write_streamed(&mut input, Full, c, m, &JsonLinesRewrite).unwrap_err();
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

    /// A text object whose key names a Hadoop codec Lethe does not decode is refused,
    /// searched or rewritten; an Avro object is read as it is whatever its key.
    #[test]
    fn a_text_object_of_an_undecoded_codec_is_refused_and_an_avro_key_names_no_codec() {
        let (columns, ids) = (vec!["id".to_owned()], MatchSet::from_values(&[json!(1)]));
        let m = matching(&columns, &ids, false);
        let key = "t/a.json.deflate";
        match Records::JsonLines.search(key, m) {
            Err(RecordError::Compression(e)) => assert!(e.to_string().contains("deflate"), "{e}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a .deflate object is searched as plain text"),
        }
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("s"), dir.path().join("d"));
        std::fs::write(&src, SOURCE).unwrap();
        let out = std::fs::File::create(&dst).unwrap();
        let err = Records::JsonLines
            .rewrite(key, &src, (out, &dst), m)
            .unwrap_err();
        assert!(err.contains("deflate codec"), "{err}");
        for key in ["t/a.avro.deflate", "t/a.avro.gz", "t/a.snappy"] {
            assert_eq!(Records::Avro.compression(key), Compression::None, "{key}");
        }
        assert_eq!(
            Records::JsonLines.compression("t/a.json.gz"),
            Compression::Gzip
        );
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
