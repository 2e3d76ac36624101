//! Forget in one Parquet object: write a new object without the rows that match.
//!
//! Row groups without matches (statistics, bloom filters or a decode of the match
//! columns prove it) are copied as their encoded column chunks — bytes, statistics, page
//! indexes and bloom filters as they were, nothing decoded. Row groups with matches are
//! written again at the Parquet level (`parquet::rewrite`): every leaf keeps its exact
//! physical and logical type, and its statistics, page indexes, dictionaries and bloom
//! filters are computed from the surviving rows only, so no trace of an erased row
//! remains. The footer keeps the key-value metadata (the embedded Arrow schema included)
//! and `created_by`. Memory holds about one column chunk of one row group.
//!
//! [`forget_file`] then runs the full check (`check`) on the output: only an
//! output that passes it may be uploaded.
//!
//! Invariants: every row that does not match is written, in order; a row group whose
//! every row matches is dropped; a file whose every row matches becomes a valid file of
//! the same schema with no row groups.

use std::io::Write;
use std::sync::Arc;

use parquet::bloom_filter::Sbbf;
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{
    PageIndexPolicy, ParquetMetaData, ParquetMetaDataOptions, ParquetMetaDataReader,
};
use parquet::file::reader::{ChunkReader, FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;

use super::check::{CheckReport, Fate, check};
use super::find::{
    FindError, FindPlan, RowGroupFind, arrow_metadata, check_row_counts, find_in_row_group, guarded,
};
use super::local::SharedFile;
use super::rewrite::{rewrite_row_group, uses_page_v2, writer_properties};
use crate::domain::field_ids::FieldIds;
use crate::lakefile::match_set::MatchSet;

/// What a rewrite did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgetReport {
    pub rows_before: u64,
    pub rows_removed: u64,
    pub row_groups_before: usize,
    /// Row groups decoded, filtered and encoded again.
    pub row_groups_rewritten: usize,
    /// Row groups copied as encoded bytes.
    pub row_groups_copied: usize,
    /// Rewritten row groups left empty, hence dropped.
    pub row_groups_dropped: usize,
    /// What happened to each source row group, for the full check.
    pub fates: Vec<Fate>,
}

/// Writes `reader`'s object without the rows matching `ids` (in `columns`) to `out`.
pub fn forget<R: ChunkReader + Clone + 'static, W: Write + Send>(
    reader: R,
    out: W,
    columns: &[String],
    ids: &MatchSet,
) -> Result<ForgetReport, FindError> {
    forget_by(reader, out, (columns, None), (ids, &[]))
}

/// [`forget`], the match columns found by their field-id paths when `field_ids` is
/// given (`parquet::schema`), and the rows at the positions `drop` (0-based in the file,
/// ascending: an Iceberg table's position deletes) left out too, whatever they hold.
pub fn forget_by<R: ChunkReader + Clone + 'static, W: Write + Send>(
    reader: R,
    out: W,
    columns: (&[String], Option<&FieldIds>),
    (ids, dropped_rows): (&MatchSet, &[u64]),
) -> Result<ForgetReport, FindError> {
    // Full page encoding statistics (not the default mask), so copied chunks keep them.
    let meta = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .with_metadata_options(Some(
            ParquetMetaDataOptions::new().with_encoding_stats_as_mask(false),
        ))
        .parse_and_finish(&reader)?;
    refuse_unsupported(&meta)?;
    let meta = Arc::new(meta);
    let plan = FindPlan::new(&meta, columns, ids)?;
    let mut dropped = Dropped::new(dropped_rows, meta.file_metadata().num_rows())?;
    let file = SerializedFileReader::new(reader.clone())?;
    // The page version of the first row group written again (for matches or drops).
    let first = match (plan.candidates.first(), dropped.first_row_group(&meta)) {
        (Some(&a), Some(b)) => Some(a.min(b)),
        (a, b) => a.copied().or(b),
    };
    let page_v2 = match first {
        Some(rg) => uses_page_v2(file.get_row_group(rg)?.as_ref())?,
        None => false,
    };
    let props = Arc::new(writer_properties(&meta, page_v2));
    let schema = meta.file_metadata().schema_descr().root_schema_ptr();
    let mut writer = SerializedFileWriter::new(out, schema, props)?;
    let arrow_meta = arrow_metadata(meta.clone())?;
    let mut report = ForgetReport {
        rows_before: meta.file_metadata().num_rows().max(0) as u64,
        row_groups_before: meta.num_row_groups(),
        ..ForgetReport::default()
    };
    for rg in 0..meta.num_row_groups() {
        // The match columns of each candidate row group are decoded once, here.
        let found = if plan.candidates.contains(&rg) && !ids.is_empty() {
            find_in_row_group(reader.clone(), &meta, &arrow_meta, &plan, rg, ids)?
        } else {
            RowGroupFind::PrunedByBloomFilter
        };
        let hits = match found {
            RowGroupFind::Searched { hits, .. } => Some(hits),
            _ => None,
        };
        let removed = match dropped.in_row_group(meta.row_group(rg).num_rows(), hits) {
            Some(removed) if removed.contains(&true) => removed,
            _ => {
                copy_row_group(&reader, &meta, rg, &mut writer)?;
                report.row_groups_copied += 1;
                report.fates.push(Fate::Copied);
                continue;
            }
        };
        let count = removed.iter().filter(|r| **r).count();
        report.rows_removed += count as u64;
        report.row_groups_rewritten += 1;
        if count == removed.len() {
            report.row_groups_dropped += 1;
            report.fates.push(Fate::Dropped);
            continue;
        }
        rewrite_row_group(file.get_row_group(rg)?.as_ref(), &removed, &mut writer)?;
        report.fates.push(Fate::Rewritten { removed });
    }
    if !dropped.positions.is_empty() {
        return Err(FindError::Refused(
            "a row position to delete lies beyond the file's row groups".into(),
        ));
    }
    writer.close()?;
    Ok(report)
}

/// The positions of rows to leave out whatever they hold, walked row group by row group.
struct Dropped<'a> {
    positions: &'a [u64],
    /// The first row of the next row group.
    start: u64,
}

impl<'a> Dropped<'a> {
    /// Refuses positions that are not ascending or lie beyond the file's `rows`: a
    /// position delete file that does not describe this file.
    fn new(positions: &'a [u64], rows: i64) -> Result<Self, FindError> {
        let rows = rows.max(0) as u64;
        if positions.windows(2).any(|w| w[0] >= w[1]) {
            return Err(FindError::Refused(
                "the row positions to delete are not ascending".into(),
            ));
        }
        if positions.last().is_some_and(|&p| p >= rows) {
            return Err(FindError::Refused(format!(
                "a row position to delete lies beyond the file's {rows} rows"
            )));
        }
        Ok(Self {
            positions,
            start: 0,
        })
    }

    /// The row group holding the first position, if any.
    fn first_row_group(&self, meta: &ParquetMetaData) -> Option<usize> {
        let first = *self.positions.first()?;
        let mut end = 0u64;
        meta.row_groups().iter().position(|rg| {
            end = end.saturating_add(rg.num_rows().max(0) as u64);
            first < end
        })
    }

    /// The rows of the next row group (`rows` of them) to leave out: those `hits` marks
    /// (its matches, when searched) and those at a dropped position. None: no row.
    fn in_row_group(&mut self, rows: i64, hits: Option<Vec<bool>>) -> Option<Vec<bool>> {
        let rows = rows.max(0) as u64;
        let (start, end) = (self.start, self.start.saturating_add(rows));
        self.start = end;
        let here = self.positions.partition_point(|&p| p < end);
        let (inside, rest) = self.positions.split_at(here);
        self.positions = rest;
        if inside.is_empty() {
            return hits;
        }
        let mut removed = hits.unwrap_or_else(|| vec![false; rows as usize]);
        for &p in inside {
            if let Some(r) = removed.get_mut((p - start) as usize) {
                *r = true;
            }
        }
        Some(removed)
    }
}

/// Footer key-value metadata that tables formats keep about their rows (Hudi's record-key
/// range and bloom filter): a rewrite would leave erased keys in them, and dropping them
/// breaks the table format's index, so such objects are refused (erase through the
/// table format instead).
const ROW_METADATA_PREFIXES: [&str; 2] = ["hoodie_", "org.apache.hudi"];

/// Refuses objects Lethe cannot rewrite without a trace or without breaking them.
fn refuse_unsupported(meta: &ParquetMetaData) -> Result<(), FindError> {
    let file = meta.file_metadata();
    if let Some(kv) = file.key_value_metadata()
        && let Some(key) = kv
            .iter()
            .map(|kv| kv.key.as_str())
            .find(|k| ROW_METADATA_PREFIXES.iter().any(|p| k.starts_with(p)))
    {
        return Err(FindError::Refused(format!(
            "footer metadata {key:?} holds row keys of a Hudi table (record-key range, bloom filter): erase through Hudi"
        )));
    }
    if let Some(path) = unknown_logical_type(file.schema_descr().root_schema(), "") {
        return Err(FindError::Refused(format!(
            "{path:?} has a logical type this version of Lethe does not know: a rewrite could lose it"
        )));
    }
    // Encrypted footers are refused where the footer is read (`sparse::footer_len`, and
    // the footer parser); encrypted columns under a plaintext footer fail to decode and
    // fail the full check.
    Ok(())
}

/// The path of the first schema node annotated with a logical type unknown to the
/// Parquet library (its parameters would not survive a rewrite).
fn unknown_logical_type(node: &parquet::schema::types::Type, parent: &str) -> Option<String> {
    let path = if parent.is_empty() {
        node.name().to_owned()
    } else {
        format!("{parent}.{}", node.name())
    };
    if matches!(
        node.get_basic_info().logical_type_ref(),
        Some(parquet::basic::LogicalType::_Unknown { .. })
    ) {
        return Some(path);
    }
    if node.is_group() {
        let parent = if node.get_basic_info().has_repetition() {
            path
        } else {
            String::new()
        };
        return node
            .get_fields()
            .iter()
            .find_map(|f| unknown_logical_type(f, &parent));
    }
    None
}

/// Writes a valid object of `reader`'s schema and footer metadata with no rows (every
/// row matched).
pub fn empty_like<R: ChunkReader + 'static, W: Write + Send>(
    reader: R,
    out: W,
) -> Result<ForgetReport, FindError> {
    let meta = ParquetMetaDataReader::new().parse_and_finish(&reader)?;
    refuse_unsupported(&meta)?;
    check_row_counts(&meta)?;
    let props = Arc::new(writer_properties(&meta, false));
    let schema = meta.file_metadata().schema_descr().root_schema_ptr();
    SerializedFileWriter::new(out, schema, props)?.close()?;
    let rows = meta.file_metadata().num_rows().max(0) as u64;
    Ok(ForgetReport {
        rows_before: rows,
        rows_removed: rows,
        row_groups_before: meta.num_row_groups(),
        row_groups_dropped: meta.num_row_groups(),
        fates: vec![Fate::Dropped; meta.num_row_groups()],
        ..ForgetReport::default()
    })
}

/// Rewrites the local file `src` to `dst` without the matching rows (every row when
/// `every_row`), then runs the full check on `dst`: only an `Ok` output may be uploaded.
pub fn forget_file(
    src: &std::path::Path,
    dst: &std::path::Path,
    columns: &[String],
    ids: &MatchSet,
    every_row: bool,
) -> Result<(ForgetReport, CheckReport), FindError> {
    let out = std::fs::File::create(dst).map_err(external)?;
    forget_file_to(src, (out, dst), (columns, None), (ids, &[]), every_row)
}

/// [`forget_file`] writing through `out`, a writer of the file `dst` (read back once
/// written), e.g. one that keeps to a budget of temporary space; the match columns found
/// by their field-id paths when given.
pub fn forget_file_to<W: Write + Send>(
    src: &std::path::Path,
    (out, dst): (W, &std::path::Path),
    columns: (&[String], Option<&FieldIds>),
    (ids, dropped_rows): (&MatchSet, &[u64]),
    every_row: bool,
) -> Result<(ForgetReport, CheckReport), FindError> {
    let reader = SharedFile::open(src).map_err(external)?;
    let len = parquet::file::reader::Length::len(&reader);
    super::sparse::footer_len(&reader.get_bytes(len.saturating_sub(8), 8.min(len as usize))?)?;
    let mut out = std::io::BufWriter::new(out);
    // A panic inside the Parquet library on some file's bytes fails this object with a
    // reason instead of unwinding through the worker (and being retried).
    let report = guarded(|| {
        if every_row {
            empty_like(reader.clone(), &mut out)
        } else {
            forget_by(reader.clone(), &mut out, columns, (ids, dropped_rows))
        }
    })?;
    out.flush().map_err(external)?;
    drop(out);
    let output = SharedFile::open(dst).map_err(external)?;
    let checked = guarded(|| Ok(check(reader, output, &report.fates)?))?;
    Ok((report, checked))
}

fn external(e: std::io::Error) -> FindError {
    FindError::Parquet(parquet::errors::ParquetError::External(Box::new(e)))
}

/// Appends row group `rg` of the source as encoded chunks, with its bloom filters and
/// page indexes.
fn copy_row_group<R: ChunkReader, W: Write + Send>(
    reader: &R,
    meta: &ParquetMetaData,
    rg: usize,
    writer: &mut SerializedFileWriter<W>,
) -> Result<(), FindError> {
    let group = meta.row_group(rg);
    let page_index = meta.page_index_for_row_group(rg);
    let mut out = writer.next_row_group()?;
    for (i, column) in group.columns().iter().enumerate() {
        let close = ColumnCloseResult {
            bytes_written: column.compressed_size() as u64,
            rows_written: group.num_rows() as u64,
            metadata: column.clone(),
            bloom_filter: Sbbf::read_from_column_chunk(column, reader)?,
            column_index: page_index.column_index(i).cloned(),
            offset_index: page_index.offset_index(i).cloned(),
        };
        out.append_column(reader, close)?;
    }
    out.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
    use arrow_schema::{DataType, Field, Fields, Schema};
    use bytes::Bytes;
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    use serde_json::json;

    /// 4 row groups of 1000 rows: id 0..4000 (sorted), email, nested contact.email.
    pub(super) fn source(codec: Compression) -> Bytes {
        let fields = Fields::from(vec![Field::new("email", DataType::Utf8, true)]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("email", DataType::Utf8, true),
            Field::new("contact", DataType::Struct(fields.clone()), true),
        ]));
        let n = 4000i64;
        let contact = StructArray::new(
            fields,
            vec![Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("c{i}")),
            )) as ArrayRef],
            None,
        );
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..n)),
                Arc::new(StringArray::from_iter(
                    (0..n).map(|i| (i % 7 != 0).then(|| format!("u{}", i % 100))),
                )),
                Arc::new(contact),
            ],
        )
        .unwrap();
        let props = WriterProperties::builder()
            .set_compression(codec)
            .set_max_row_group_row_count(Some(1000))
            .set_column_bloom_filter_enabled("email".into(), true)
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "owner".into(),
                "team-a".to_owned(),
            )]))
            .build();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        Bytes::from(buf)
    }

    /// [`forget_file`] over bytes (full check included): the output and the report.
    pub(super) fn forget_checked(
        src: &Bytes,
        columns: &[&str],
        ids: &MatchSet,
    ) -> Result<(Bytes, ForgetReport), FindError> {
        let dir = tempfile::tempdir().unwrap();
        let (s, d) = (dir.path().join("src"), dir.path().join("dst"));
        std::fs::write(&s, src).unwrap();
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        let (report, _) = forget_file(&s, &d, &columns, ids, false)?;
        Ok((Bytes::from(std::fs::read(&d).unwrap()), report))
    }

    /// The first column's values, as Int64.
    pub(super) fn ids_of(file: Bytes) -> Vec<i64> {
        ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .flat_map(|b| {
                b.unwrap()
                    .column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    fn rewrite(src: &Bytes, ids: &MatchSet, columns: &[&str]) -> (Bytes, ForgetReport) {
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        let mut out = Vec::new();
        let report = forget(src.clone(), &mut out, &columns, ids).unwrap();
        (Bytes::from(out), report)
    }

    #[test]
    fn rewrite_removes_exactly_the_matching_rows_and_keeps_everything_else() {
        let src = source(Compression::ZSTD(ZstdLevel::default()));
        let ids = MatchSet::from_values(&[json!(1500), json!("c2500")]);
        let (out, report) = rewrite(&src, &ids, &["id", "contact.email"]);
        assert_eq!(report.rows_removed, 2);
        assert_eq!(
            (report.row_groups_rewritten, report.row_groups_copied),
            (2, 2)
        );
        let expected: Vec<i64> = (0..4000).filter(|&i| i != 1500 && i != 2500).collect();
        assert_eq!(ids_of(out.clone()), expected);
        let before = ParquetMetaDataReader::new().parse_and_finish(&src).unwrap();
        let after = ParquetMetaDataReader::new().parse_and_finish(&out).unwrap();
        assert_eq!(
            after.file_metadata().key_value_metadata(),
            before.file_metadata().key_value_metadata()
        );
        assert_eq!(
            after.file_metadata().schema_descr().root_schema(),
            before.file_metadata().schema_descr().root_schema()
        );
        assert_eq!(after.num_row_groups(), 4);
        for rg in 0..4 {
            for c in 0..3 {
                let (a, b) = (
                    after.row_group(rg).column(c),
                    before.row_group(rg).column(c),
                );
                assert_eq!(a.compression(), b.compression());
                assert_eq!(
                    a.bloom_filter_offset().is_some(),
                    b.bloom_filter_offset().is_some()
                );
            }
        }
    }

    #[test]
    fn untouched_row_groups_are_byte_identical_column_chunks() {
        let src = source(Compression::SNAPPY);
        let ids = MatchSet::from_values(&[json!(10)]);
        let (out, report) = rewrite(&src, &ids, &["id"]);
        assert_eq!(
            (report.row_groups_rewritten, report.row_groups_copied),
            (1, 3)
        );
        let before = ParquetMetaDataReader::new().parse_and_finish(&src).unwrap();
        let after = ParquetMetaDataReader::new().parse_and_finish(&out).unwrap();
        for rg in 1..4 {
            for c in 0..3 {
                let (a, b) = (
                    after.row_group(rg).column(c),
                    before.row_group(rg).column(c),
                );
                let a_bytes = out.slice(
                    a.byte_range().0 as usize..(a.byte_range().0 + a.byte_range().1) as usize,
                );
                let b_bytes = src.slice(
                    b.byte_range().0 as usize..(b.byte_range().0 + b.byte_range().1) as usize,
                );
                assert_eq!(a_bytes, b_bytes, "row group {rg} column {c}");
            }
        }
    }

    #[test]
    fn no_trace_of_an_erased_value_remains_in_statistics_dictionaries_or_bloom_filters() {
        let src = source(Compression::UNCOMPRESSED);
        // u42 is in many rows of every row group: all of them go.
        let ids = MatchSet::from_values(&[json!("u42")]);
        let (out, report) = rewrite(&src, &ids, &["email"]);
        assert!(report.rows_removed > 0 && report.row_groups_rewritten == 4);
        assert!(
            !out.windows(3).any(|w| w == b"u42"),
            "erased value still in the bytes"
        );
        let found = super::super::find::find(out, &["email".to_owned()], &ids).unwrap();
        assert_eq!(found.rows_matched, 0);
    }

    #[test]
    fn an_object_whose_every_row_matches_becomes_a_valid_empty_file_of_the_same_schema() {
        let src = source(Compression::SNAPPY);
        let all: Vec<serde_json::Value> = (0..4000).map(|i| json!(i)).collect();
        let (out, report) = rewrite(&src, &MatchSet::from_values(&all), &["id"]);
        assert_eq!(report.rows_removed, 4000);
        assert_eq!(report.row_groups_dropped, 4);
        let meta = ParquetMetaDataReader::new().parse_and_finish(&out).unwrap();
        assert_eq!(
            (meta.num_row_groups(), meta.file_metadata().num_rows()),
            (0, 0)
        );
        let reader = ParquetRecordBatchReaderBuilder::try_new(out).unwrap();
        assert_eq!(reader.schema().fields().len(), 3);
    }

    /// Rows dropped by position (an Iceberg table's position deletes) go with the
    /// matches: in a row group with matches, in one without (rewritten for them alone),
    /// and the full check passes on the output; positions that do not describe the file
    /// are refused.
    #[test]
    fn rows_at_dropped_positions_are_left_out_with_the_matches() {
        let src = source(Compression::SNAPPY);
        let dir = tempfile::tempdir().unwrap();
        let (s, d) = (dir.path().join("src"), dir.path().join("dst"));
        std::fs::write(&s, &src).unwrap();
        let columns = vec!["id".to_owned()];
        let ids = MatchSet::from_values(&[json!(1500)]);
        let out = std::fs::File::create(&d).unwrap();
        let drop = [5, 1499, 1500, 3999];
        let (report, _) =
            forget_file_to(&s, (out, &d), (&columns, None), (&ids, &drop), false).unwrap();
        assert_eq!(report.rows_removed, 4);
        assert_eq!(
            (report.row_groups_rewritten, report.row_groups_copied),
            (3, 1)
        );
        let expected: Vec<i64> = (0..4000)
            .filter(|i| ![5, 1499, 1500, 3999].contains(i))
            .collect();
        assert_eq!(ids_of(Bytes::from(std::fs::read(&d).unwrap())), expected);
        for bad in [&[4000][..], &[7, 3][..], &[3, 3][..]] {
            let out = std::fs::File::create(&d).unwrap();
            let err =
                forget_file_to(&s, (out, &d), (&columns, None), (&ids, bad), false).unwrap_err();
            assert!(
                matches!(err, crate::lakefile::parquet::find::FindError::Refused(_)),
                "{bad:?}: {err}"
            );
        }
    }
}

/// The Arrow-written source of the unit tests (4 row groups, ids 0..4000).
#[cfg(test)]
fn tests_source() -> bytes::Bytes {
    tests::source(parquet::basic::Compression::SNAPPY)
}

#[cfg(test)]
mod writer_tests {
    //! Files no Arrow writer makes, built with the low-level writer.
    use super::*;
    use crate::lakefile::test_files::{Leaf, Values, fixed_decimal, write};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use serde_json::json;

    fn forget_bytes(
        src: &bytes::Bytes,
        column: &str,
        ids: &[serde_json::Value],
    ) -> Result<(bytes::Bytes, ForgetReport), FindError> {
        super::tests::forget_checked(src, &[column], &MatchSet::from_values(ids))
    }

    /// Row strings through the parquet crate's record reader (no Arrow).
    fn rows(file: bytes::Bytes) -> Vec<String> {
        let reader = SerializedFileReader::new(file).unwrap();
        reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_duckdb_style_sixteen_byte_decimal_column_keeps_its_width() {
        let schema = "message duckdb_schema {
            required int64 id;
            optional fixed_len_byte_array(16) amount (DECIMAL(20,2));
        }";
        let group = |base: i64| {
            vec![
                Leaf::required(Values::I64((base..base + 4).collect())),
                Leaf::optional(
                    Values::Fixed(
                        (base..base + 3)
                            .map(|i| fixed_decimal(i as i128 * 12345 - 7, 16))
                            .collect(),
                    ),
                    vec![1, 1, 0, 1],
                ),
            ]
        };
        let src = write(schema, &[group(0), group(4)], Default::default());
        let (out, report) = forget_bytes(&src, "id", &[json!(5)]).unwrap();
        assert_eq!((report.rows_removed, report.row_groups_rewritten), (1, 1));
        let mut expected = rows(src.clone());
        expected.remove(5);
        assert_eq!(rows(out.clone()), expected);
        let meta = ParquetMetaDataReader::new().parse_and_finish(&out).unwrap();
        assert_eq!(
            meta.file_metadata().schema_descr().column(1).type_length(),
            16
        );
    }
}

#[cfg(test)]
mod legacy_tests {
    use super::*;
    use crate::lakefile::parquet::find::find;
    use crate::lakefile::test_files::legacy_parquet_mr;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn legacy_parquet_mr_files_are_found_and_erased_exactly_on_every_match_column() {
        for with_map in [false, true] {
            let (src, erasures) = legacy_parquet_mr(with_map);
            for e in erasures {
                let ids = MatchSet::from_values(&e.ids);
                let columns = vec![e.column.to_owned()];
                let pruned = find(src.clone(), &columns, &ids).unwrap();
                let full = find(src.clone(), &columns, &ids.clone().without_pruning()).unwrap();
                assert_eq!(
                    (pruned.rows_matched, full.rows_matched),
                    (e.expected, e.expected),
                    "{} map={with_map}",
                    e.column
                );
                let dir = tempfile::tempdir().unwrap();
                let (s, d) = (dir.path().join("s"), dir.path().join("d"));
                std::fs::write(&s, &src).unwrap();
                let (report, checked) = forget_file(&s, &d, &columns, &ids, false)
                    .unwrap_or_else(|err| panic!("{} map={with_map}: {err}", e.column));
                assert_eq!(report.rows_removed, e.expected);
                assert_eq!(checked.row_groups_compared, 1);
                let out = SerializedFileReader::new(SharedFile::open(&d).unwrap()).unwrap();
                assert_eq!(
                    out.metadata().file_metadata().num_rows(),
                    12 - e.expected as i64
                );
            }
        }
    }
}

#[cfg(test)]
mod fuzz_tests {
    //! Mutated files: find and forget answer with an error or a result, never a panic, and
    //! a forget that succeeds passed its full check.
    use super::*;
    use crate::lakefile::parquet::find::find;
    use crate::lakefile::test_files::legacy_parquet_mr;
    use serde_json::json;

    /// Deterministic pseudo-random bits: the same cases on every run.
    fn mix(x: u64) -> u64 {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(0x5eed).hash_one(x)
    }

    #[test]
    fn mutated_files_never_panic_find_or_forget() {
        let (legacy, _) = legacy_parquet_mr(true);
        let sources = [legacy, super::tests_source()];
        let ids = MatchSet::from_values(&[json!(5), json!(7)]);
        let columns = vec!["id".to_owned()];
        let dir = tempfile::tempdir().unwrap();
        let (s, d) = (dir.path().join("s"), dir.path().join("d"));
        let mut panics = Vec::new();
        let mut outcomes = [0usize; 2];
        for case in 0..400u64 {
            let src = &sources[(case % 2) as usize];
            let mut bytes = src.to_vec();
            let r = mix(case);
            match r % 4 {
                // Flip up to 4 bytes anywhere.
                0 | 1 => {
                    for k in 0..=(r >> 8) % 4 {
                        let at = (mix(r + k) % bytes.len() as u64) as usize;
                        bytes[at] ^= 1 << (mix(r ^ k) % 8);
                    }
                }
                // Overwrite a byte of the footer (the metadata drives every read).
                2 => {
                    let footer = (bytes.len() - 8).saturating_sub(200);
                    let at = footer + (mix(r) % 200) as usize;
                    bytes[at] = (r >> 16) as u8;
                }
                // Cut the file short, keeping a valid-looking tail.
                _ => {
                    let tail = bytes[bytes.len() - 8..].to_vec();
                    let cut = (mix(r) % bytes.len() as u64) as usize;
                    bytes.truncate(cut);
                    bytes.extend_from_slice(&tail);
                }
            }
            let bytes = bytes::Bytes::from(bytes);
            std::fs::write(&s, &bytes).unwrap();
            let found = std::panic::catch_unwind(|| find(bytes.clone(), &columns, &ids).is_ok());
            let forgot = forget_file(&s, &d, &columns, &ids, false);
            match (found, forgot) {
                (Err(_), _) => panics.push(format!("case {case}: find panicked")),
                (_, Err(FindError::Panicked)) => {
                    panics.push(format!("case {case}: forget panicked"))
                }
                (_, Ok(_)) => outcomes[0] += 1,
                (_, Err(_)) => outcomes[1] += 1,
            }
        }
        assert!(panics.is_empty(), "{panics:?}");
        // Both outcomes occur: the mutations reach the decoders, not only the magic.
        assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;
    use crate::lakefile::test_files::{Leaf, Values, write};
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    use serde_json::json;

    fn forget_err(src: &bytes::Bytes) -> FindError {
        let ids = MatchSet::from_values(&[json!(1)]);
        super::tests::forget_checked(src, &["id"], &ids).unwrap_err()
    }

    #[test]
    fn hudi_files_encrypted_footers_and_unknown_logical_types_are_refused_with_a_reason() {
        let rows = vec![vec![Leaf::required(Values::I64(vec![1, 2]))]];
        let hudi = WriterProperties::builder()
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "hoodie_min_record_key".into(),
                "1".to_owned(),
            )]))
            .build();
        let file = write("message m { required int64 id; }", &rows, hudi);
        let err = forget_err(&file);
        assert!(
            matches!(err, FindError::Refused(_)) && err.to_string().contains("Hudi"),
            "{err}"
        );

        let mut encrypted = write(
            "message m { required int64 id; }",
            &rows,
            Default::default(),
        )
        .to_vec();
        let n = encrypted.len();
        encrypted[n - 4..].copy_from_slice(b"PARE");
        let err = forget_err(&bytes::Bytes::from(encrypted));
        assert!(err.to_string().contains("encryption"), "{err}");

        let leaf =
            parquet::schema::types::Type::primitive_type_builder("x", parquet::basic::Type::INT64)
                .with_repetition(parquet::basic::Repetition::REQUIRED)
                .with_logical_type(Some(parquet::basic::LogicalType::_Unknown { field_id: 99 }))
                .build()
                .unwrap();
        let id =
            parquet::schema::types::Type::primitive_type_builder("id", parquet::basic::Type::INT64)
                .with_repetition(parquet::basic::Repetition::REQUIRED)
                .build()
                .unwrap();
        let schema = parquet::schema::types::Type::group_type_builder("m")
            .with_fields(vec![Arc::new(id), Arc::new(leaf)])
            .build()
            .unwrap();
        // The library cannot write such a file (it refuses to write the unknown variant),
        // so the decision is tested on the schema: the rewrite would refuse, naming it.
        assert_eq!(unknown_logical_type(&schema, ""), Some("x".to_owned()));
    }
}

#[cfg(test)]
mod float_tests {
    use super::*;
    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use serde_json::json;

    #[test]
    fn nans_and_signed_zeros_survive_a_rewrite_and_its_check_bit_for_bit() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("x", DataType::Float64, true),
        ]));
        let xs = [f64::NAN, -0.0, 0.0, f64::NEG_INFINITY, 1.5, -f64::NAN];
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..6)) as ArrayRef,
                Arc::new(Float64Array::from_iter_values(xs)),
            ],
        )
        .unwrap();
        let mut src = Vec::new();
        let mut w = ArrowWriter::try_new(&mut src, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (s, d) = (dir.path().join("s"), dir.path().join("d"));
        std::fs::write(&s, &src).unwrap();
        let ids = MatchSet::from_values(&[json!(4)]);
        let (report, checked) = forget_file(&s, &d, &["id".to_owned()], &ids, false).unwrap();
        assert_eq!((report.rows_removed, checked.row_groups_compared), (1, 1));
        let out = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(std::fs::read(&d).unwrap()),
        )
        .unwrap()
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
        let got: Vec<u64> = out
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .values()
            .iter()
            .map(|f| f.to_bits())
            .collect();
        let want: Vec<u64> = [0, 1, 2, 3, 5].iter().map(|&i| xs[i].to_bits()).collect();
        assert_eq!(got, want);
    }
}

#[cfg(test)]
mod row_count_tests {
    use super::*;
    use crate::lakefile::parquet::find::find;
    use crate::lakefile::test_files::{Leaf, Values, with_row_counts, write};
    use parquet::file::properties::WriterProperties;
    use serde_json::json;

    /// Six rows in one row group, an unannotated repeated group beside the id (the shape
    /// of parquet-testing's `repeated_no_annotation.parquet`).
    fn six_rows() -> bytes::Bytes {
        let schema =
            "message m { required int64 id; repeated group phones { required int64 number; } }";
        let phones = Leaf::repeated(
            Values::I64(vec![10, 20, 21, 30, 40]),
            vec![0, 0, 1, 1, 1, 1, 1],
            vec![0, 0, 0, 0, 1, 0, 0],
        );
        let ids = Leaf::required(Values::I64(vec![1, 2, 3, 4, 5, 6]));
        write(schema, &[vec![ids, phones]], WriterProperties::default())
    }

    fn forget_bytes(src: &bytes::Bytes) -> Result<ForgetReport, FindError> {
        let ids = MatchSet::from_values(&[json!(4)]);
        super::tests::forget_checked(src, &["id"], &ids).map(|(_, r)| r)
    }

    #[test]
    fn a_footer_whose_row_count_is_not_its_row_groups_sum_fails_find_and_forget() {
        let ids = MatchSet::from_values(&[json!(4)]);
        let columns = ["id".to_owned()];
        // The honest file (counts patched to what they already are) is found and erased.
        let honest = with_row_counts(&six_rows(), 6, &[6]);
        assert_eq!(
            find(honest.clone(), &columns, &ids).unwrap().rows_matched,
            1
        );
        assert_eq!(forget_bytes(&honest).unwrap().rows_removed, 1);
        // 0 rows in the file, 6 in its row group: refused, never "no match".
        let zero = with_row_counts(&six_rows(), 0, &[6]);
        let found = find(zero.clone(), &columns, &ids);
        assert!(matches!(found, Err(FindError::RowCount(_))), "{found:?}");
        assert!(matches!(forget_bytes(&zero), Err(FindError::RowCount(_))));
        let every_row = {
            let dir = tempfile::tempdir().unwrap();
            let (s, d) = (dir.path().join("s"), dir.path().join("d"));
            std::fs::write(&s, &zero).unwrap();
            forget_file(&s, &d, &columns, &ids, true)
        };
        assert!(matches!(every_row, Err(FindError::RowCount(_))));
        // A negative row group count that makes the sum come out right is no better.
        let negative = with_row_counts(&six_rows(), 0, &[-6]);
        assert!(matches!(
            find(negative, &columns, &ids),
            Err(FindError::RowCount(_))
        ));
    }

    #[test]
    fn a_row_group_that_decodes_to_another_count_than_its_footer_says_fails() {
        let ids = MatchSet::from_values(&[json!(4)]);
        let columns = ["id".to_owned()];
        // The footer agrees with itself (3 and 3) but the pages hold 6 rows.
        let short = with_row_counts(&six_rows(), 3, &[3]);
        let found = find(short.clone(), &columns, &ids);
        assert!(matches!(found, Err(FindError::RowCount(_))), "{found:?}");
        assert!(matches!(forget_bytes(&short), Err(FindError::RowCount(_))));
        // More rows promised than the pages hold.
        let long = with_row_counts(&six_rows(), 9, &[9]);
        let found = find(long, &columns, &ids);
        assert!(found.is_err(), "{found:?}");
    }
}

#[cfg(test)]
mod schema_tests {
    //! Objects written before a match column was added to the table.
    use super::tests::{forget_checked, ids_of};
    use super::*;
    use crate::lakefile::parquet::find::find;
    use crate::lakefile::parquet::schema::SchemaError;
    use arrow_array::{ArrayRef, Int64Array, RecordBatch};
    use parquet::arrow::ArrowWriter;
    use serde_json::json;

    /// An old object: ids 0..300 and no email column, 3 row groups.
    fn old_file() -> bytes::Bytes {
        let batch = RecordBatch::try_from_iter([(
            "id",
            Arc::new(Int64Array::from_iter_values(0..300)) as ArrayRef,
        )])
        .unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(100))
            .build();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        bytes::Bytes::from(out)
    }

    #[test]
    fn an_object_lacking_a_match_column_is_erased_exactly_on_the_one_it_has() {
        let src = old_file();
        let columns = ["id", "email"];
        let ids = MatchSet::from_values(&[json!("u5@example.com"), json!(150)]).with_composites(&[
            json!([{"column": "id", "value": 3}, {"column": "email", "value": "u3@example.com"}]),
        ]);
        let (out, report) = forget_checked(&src, &columns, &ids).unwrap();
        assert_eq!(
            (
                report.rows_removed,
                report.row_groups_rewritten,
                report.row_groups_copied
            ),
            (1, 1, 2)
        );
        let expected: Vec<i64> = (0..300).filter(|&i| i != 150).collect();
        assert_eq!(ids_of(out.clone()), expected);
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        assert_eq!(find(out, &columns, &ids).unwrap().rows_matched, 0);
    }

    #[test]
    fn an_object_with_none_of_the_match_columns_or_an_ambiguous_one_is_not_rewritten() {
        let src = old_file();
        let ids = MatchSet::from_values(&[json!(150)]);
        assert!(matches!(
            forget_checked(&src, &["email", "customer_id"], &ids),
            Err(FindError::Schema(SchemaError::NoMatchColumn(_)))
        ));
        let ambiguous = RecordBatch::try_from_iter([
            ("ID", Arc::new(Int64Array::from(vec![150, 1])) as ArrayRef),
            ("Id", Arc::new(Int64Array::from(vec![2, 150])) as ArrayRef),
            ("email", Arc::new(Int64Array::from(vec![3, 4])) as ArrayRef),
        ])
        .unwrap();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, ambiguous.schema(), None).unwrap();
        w.write(&ambiguous).unwrap();
        w.close().unwrap();
        assert!(matches!(
            forget_checked(&bytes::Bytes::from(out), &["id", "email"], &ids),
            Err(FindError::Schema(SchemaError::AmbiguousColumn(c))) if c == "id"
        ));
    }

    /// A file whose `email` (field id 2) sits in struct `contact` (id 3), written by Arrow
    /// with field ids as pyiceberg writes them, is erased on `info.mail`.
    #[test]
    fn rows_are_found_and_erased_through_renamed_columns() {
        use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
        use arrow_schema::{DataType, Field};
        let with_id =
            |f: Field, id: &str| f.with_metadata([("PARQUET:field_id".to_owned(), id.to_owned())]);
        let email = std::sync::Arc::new(with_id(Field::new("email", DataType::Utf8, true), "2"));
        let emails: ArrayRef =
            std::sync::Arc::new(StringArray::from(vec!["ann@x", "bob@x", "ann@x"]));
        let contact = StructArray::from(vec![(email, emails)]);
        let contact_field = with_id(
            Field::new("contact", contact.data_type().clone(), true),
            "3",
        );
        let id_field = with_id(Field::new("id", DataType::Int64, false), "1");
        let batch = RecordBatch::try_new(
            std::sync::Arc::new(arrow_schema::Schema::new(vec![id_field, contact_field])),
            vec![
                std::sync::Arc::new(Int64Array::from(vec![1, 2, 3])),
                std::sync::Arc::new(contact),
            ],
        )
        .unwrap();
        let mut bytes = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let path = crate::domain::field_ids::FieldPath {
            ids: vec![3, 2],
            renamed: true,
        };
        let field_ids: FieldIds = [("info.mail".to_owned(), path)].into();
        let set = crate::lakefile::match_set::MatchSet::from_values(&[json!("ann@x")]);
        let cols = vec!["info.mail".to_owned()];
        let bytes = bytes::Bytes::from(bytes);
        let r = forget_by(
            bytes.clone(),
            Vec::new(),
            (&cols, Some(&field_ids)),
            (&set, &[]),
        )
        .unwrap();
        assert_eq!((r.rows_before, r.rows_removed), (3, 2));
        let by_name = forget(bytes, Vec::new(), &cols, &set);
        assert!(matches!(
            by_name,
            Err(crate::lakefile::parquet::find::FindError::Schema(_))
        ));
    }
}
