//! The full check of a rewritten Parquet object, run before anything is uploaded: the
//! output is read back through the Parquet reader (not the writer that made it) and must
//! equal the source minus exactly the removed rows.
//!
//! - the footer parses (with its page indexes and bloom filters) and the schema equals the
//!   source's leaf for leaf (physical type, length, logical and converted type,
//!   repetition, field id, group structure); key-value metadata is what the rewrite meant;
//! - each copied row group has the source's column chunks, byte for byte;
//! - each rewritten row group, every column, is read record by record beside the source:
//!   each record the rewrite kept must have the same definition levels, repetition levels
//!   and values (floating point by bits) in the same order, and nothing more;
//! - row counts add up.
//!
//! Invariant: any difference, or any error reading the output, is a [`CheckError`]; the
//! caller must then not upload. Messages name row groups, columns and record numbers,
//! never values.

use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::DataType;
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use parquet::file::properties::ReaderProperties;
use parquet::file::reader::{ChunkReader, FileReader, RowGroupReader, SerializedFileReader};
use parquet::file::serialized_reader::ReadOptionsBuilder;

use std::sync::Arc;

use super::columns::{BATCH_RECORDS, Batch, Records, SameValue, read_batch, same_kind};
use super::compare::compare_row_group;
use super::error::CheckError;
use super::find::arrow_metadata;
use crate::with_typed_reader;

/// What the rewrite did with one source row group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Copied as encoded column chunks.
    Copied,
    /// Decoded and written again without the rows marked true.
    Rewritten { removed: Vec<bool> },
    /// Every row removed: not in the output.
    Dropped,
}

fn fail<T>(message: String) -> Result<T, CheckError> {
    Err(CheckError(message))
}

/// What the check read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub row_groups_compared: usize,
    pub row_groups_byte_compared: usize,
    pub rows_compared: u64,
}

/// Checks `output` against `source` and the rewrite's `fates` (one per source row group).
/// The output must carry the source's footer key-value metadata.
pub fn check<S, O>(source: S, output: O, fates: &[Fate]) -> Result<CheckReport, CheckError>
where
    S: ChunkReader + Clone + 'static,
    O: ChunkReader + Clone + 'static,
{
    check_with(source, output, fates, true)
}

/// [`check`], comparing rewritten row groups through Arrow only when `use_arrow` (and
/// Arrow can represent the schema), else with the column readers.
fn check_with<S, O>(
    source: S,
    output: O,
    fates: &[Fate],
    use_arrow: bool,
) -> Result<CheckReport, CheckError>
where
    S: ChunkReader + Clone + 'static,
    O: ChunkReader + Clone + 'static,
{
    let options = || {
        ReadOptionsBuilder::new()
            .with_page_index()
            .with_reader_properties(
                ReaderProperties::builder()
                    .set_read_bloom_filter(true)
                    .build(),
            )
            .build()
    };
    let src = SerializedFileReader::new_with_options(source.clone(), options())?;
    let out = SerializedFileReader::new_with_options(output.clone(), options())?;
    let (sm, om) = (src.metadata(), out.metadata());
    check_footer(sm, om, fates)?;
    // The Arrow reader compares rewritten row groups where it can represent the schema;
    // elsewhere the column readers compare them record by record.
    let arrow = match arrow_metadata(Arc::new(sm.clone())) {
        Ok(_) if !use_arrow => None,
        Ok(sa) => Some((
            sa,
            arrow_metadata(Arc::new(om.clone()))
                .map_err(|e| CheckError(format!("unreadable: {e}")))?,
        )),
        Err(_) => None,
    };
    let mut report = CheckReport::default();
    let mut buffers = (Vec::new(), Vec::new());
    let mut j = 0;
    for (i, fate) in fates.iter().enumerate() {
        match fate {
            Fate::Dropped => continue,
            Fate::Copied => {
                compare_copied(
                    (&source, sm.row_group(i)),
                    (&output, om.row_group(j)),
                    i,
                    &mut buffers,
                )?;
                compare_page_indexes(sm, om, (i, j))?;
                report.row_groups_byte_compared += 1;
            }
            Fate::Rewritten { removed } => {
                match &arrow {
                    Some((sa, oa)) => {
                        compare_row_group((source.clone(), sa, i), (output.clone(), oa, j), removed)
                            .map_err(|e| CheckError(format!("row group {i}: {}", e.0)))?
                    }
                    None => compare_by_column_readers(
                        src.get_row_group(i)?.as_ref(),
                        out.get_row_group(j)?.as_ref(),
                        i,
                        removed,
                    )?,
                }
                report.row_groups_compared += 1;
                report.rows_compared += om.row_group(j).num_rows().max(0) as u64;
            }
        }
        j += 1;
    }
    Ok(report)
}

/// A rewritten row group (source row group `rg`) beside its output, column by column
/// with the column readers, record by record.
fn compare_by_column_readers(
    s: &dyn RowGroupReader,
    o: &dyn RowGroupReader,
    rg: usize,
    removed: &[bool],
) -> Result<(), CheckError> {
    for c in 0..s.num_columns() {
        let descr = s.metadata().column(c).column_descr_ptr();
        let levels = (descr.max_def_level(), descr.max_rep_level());
        let out_column = o.get_column_reader(c)?;
        with_typed_reader!(
            s.get_column_reader(c)?,
            compare_column(out_column, removed, levels)
        )
        .map_err(|e| CheckError(format!("row group {rg}, column {}: {}", descr.path(), e.0)))?;
    }
    Ok(())
}

/// Schema, metadata and row counts.
fn check_footer(
    sm: &ParquetMetaData,
    om: &ParquetMetaData,
    fates: &[Fate],
) -> Result<(), CheckError> {
    let (sf, of) = (sm.file_metadata(), om.file_metadata());
    if sf.schema_descr().root_schema() != of.schema_descr().root_schema() {
        return fail("the schema differs from the source's".into());
    }
    if of.key_value_metadata() != sf.key_value_metadata() {
        return fail("the footer's key-value metadata is not the source's".into());
    }
    if fates.len() != sm.num_row_groups() {
        return fail("the rewrite did not account for every source row group".into());
    }
    let kept: Vec<usize> = (0..fates.len())
        .filter(|i| fates[*i] != Fate::Dropped)
        .collect();
    if kept.len() != om.num_row_groups() {
        return fail(format!(
            "{} row groups written, {} expected",
            om.num_row_groups(),
            kept.len()
        ));
    }
    let mut total = 0i64;
    for (j, &i) in kept.iter().enumerate() {
        let source_rows = sm.row_group(i).num_rows();
        let expected = match &fates[i] {
            Fate::Rewritten { removed } => {
                if removed.len() as i64 != source_rows {
                    return fail(format!(
                        "row group {i}: removal marks do not cover its rows"
                    ));
                }
                source_rows - removed.iter().filter(|r| **r).count() as i64
            }
            _ => source_rows,
        };
        if om.row_group(j).num_rows() != expected {
            return fail(format!(
                "row group {i}: {} rows written, {expected} expected",
                om.row_group(j).num_rows()
            ));
        }
        total += expected;
    }
    if of.num_rows() != total {
        return fail(format!(
            "{} rows in the footer, {total} expected",
            of.num_rows()
        ));
    }
    Ok(())
}

/// A copied row group: the same chunk metadata (but offsets) and the same bytes.
fn compare_copied<S: ChunkReader, O: ChunkReader>(
    (source, s): (&S, &RowGroupMetaData),
    (output, o): (&O, &RowGroupMetaData),
    rg: usize,
    buffers: &mut (Vec<u8>, Vec<u8>),
) -> Result<(), CheckError> {
    for (c, (sc, oc)) in s.columns().iter().zip(o.columns()).enumerate() {
        let same_meta = sc.num_values() == oc.num_values()
            && sc.compression() == oc.compression()
            && sc.compressed_size() == oc.compressed_size()
            && sc.uncompressed_size() == oc.uncompressed_size()
            && sc.statistics() == oc.statistics()
            && sc.encodings().collect::<Vec<_>>() == oc.encodings().collect::<Vec<_>>();
        if !same_meta {
            return fail(format!(
                "row group {rg}, column {}: copied chunk metadata differs",
                sc.column_path()
            ));
        }
        let ((ss, len), (os, olen)) = (sc.byte_range(), oc.byte_range());
        if len != olen {
            return fail(format!(
                "row group {rg}, column {c}: copied chunk length differs"
            ));
        }
        if !same_bytes((source, ss), (output, os), len, buffers)? {
            return fail(format!(
                "row group {rg}, column {}: copied bytes differ",
                sc.column_path()
            ));
        }
    }
    Ok(())
}

/// A copied row group's page indexes: the same column indexes, and the same page
/// locations relative to each chunk's start (the copy moved the chunk, not its pages).
fn compare_page_indexes(
    sm: &ParquetMetaData,
    om: &ParquetMetaData,
    (i, j): (usize, usize),
) -> Result<(), CheckError> {
    let (si, oi) = (
        sm.page_index_for_row_group(i),
        om.page_index_for_row_group(j),
    );
    let start = |m: &ParquetMetaData, rg: usize, c: usize| {
        let col = m.row_group(rg).column(c);
        col.dictionary_page_offset()
            .unwrap_or_else(|| col.data_page_offset())
    };
    for c in 0..sm.row_group(i).num_columns() {
        let path = sm.row_group(i).column(c).column_path();
        if si.column_index(c) != oi.column_index(c) {
            return fail(format!(
                "row group {i}, column {path}: copied column index differs"
            ));
        }
        let (sl, ol) = (si.offset_index(c), oi.offset_index(c));
        let same = match (sl, ol) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                let (a, b) = (a.page_locations(), b.page_locations());
                let (sa, sb) = (start(sm, i, c), start(om, j, c));
                a.len() == b.len()
                    && a.iter().zip(b).all(|(x, y)| {
                        x.offset - sa == y.offset - sb
                            && x.compressed_page_size == y.compressed_page_size
                            && x.first_row_index == y.first_row_index
                    })
            }
            _ => false,
        };
        if !same {
            return fail(format!(
                "row group {i}, column {path}: copied offset index differs"
            ));
        }
    }
    Ok(())
}

/// Whether `len` bytes at `a_start` of `a` equal those at `b_start` of `b` (streamed
/// through two reused buffers).
fn same_bytes<A: ChunkReader, B: ChunkReader>(
    (a, a_start): (&A, u64),
    (b, b_start): (&B, u64),
    len: u64,
    (x, y): &mut (Vec<u8>, Vec<u8>),
) -> Result<bool, CheckError> {
    use std::io::Read;
    const STEP: usize = 1 << 20;
    let (mut ra, mut rb) = (
        a.get_read(a_start)?.take(len),
        b.get_read(b_start)?.take(len),
    );
    x.resize(STEP, 0);
    y.resize(STEP, 0);
    let mut left = len;
    while left > 0 {
        let step = left.min(STEP as u64) as usize;
        let io = |e: std::io::Error| CheckError(format!("unreadable: {e}"));
        ra.read_exact(&mut x[..step]).map_err(io)?;
        rb.read_exact(&mut y[..step]).map_err(io)?;
        if x[..step] != y[..step] {
            return Ok(false);
        }
        left -= step as u64;
    }
    Ok(true)
}

/// One rewritten column chunk beside its source, record by record.
fn compare_column<T: DataType>(
    mut src: ColumnReaderImpl<T>,
    out: ColumnReader,
    removed: &[bool],
    (max_def, max_rep): (i16, i16),
) -> Result<(), CheckError>
where
    T::T: SameValue,
{
    let mut out: ColumnReaderImpl<T> = same_kind(out)?;
    let (mut sb, mut ob) = (Batch::default(), Batch::default());
    let mut row = 0usize;
    loop {
        read_batch(&mut src, BATCH_RECORDS, &mut sb)?;
        if sb.records == 0 {
            break;
        }
        let marks = removed
            .get(row..row + sb.records)
            .ok_or_else(|| CheckError("the source has more rows than its footer says".into()))?;
        let kept = marks.iter().filter(|r| !**r).count();
        ob = Batch::default();
        if kept > 0 {
            read_batch(&mut out, kept, &mut ob)?;
            if ob.records != kept {
                return fail(format!("the output ends before source row {row}"));
            }
        }
        let mut outs = Records::new(&ob, max_def, max_rep);
        for (k, span) in Records::new(&sb, max_def, max_rep).enumerate() {
            if marks.get(k).copied().unwrap_or(true) {
                continue;
            }
            let Some(o) = outs.next() else {
                return fail(format!("source row {} has no output row", row + k));
            };
            let same = (max_def == 0
                || sb.def.get(span.levels.clone()) == ob.def.get(o.levels.clone()))
                && (max_rep == 0
                    || sb.rep.get(span.levels.clone()) == ob.rep.get(o.levels.clone()))
                && same_values(sb.values.get(span.values), ob.values.get(o.values));
            if !same {
                return fail(format!("source row {} differs in the output", row + k));
            }
        }
        if outs.next().is_some() {
            return fail(format!(
                "the output has rows the source lacks near row {row}"
            ));
        }
        row += sb.records;
    }
    if row != removed.len() {
        return fail(format!(
            "the source has {row} rows, its footer {}",
            removed.len()
        ));
    }
    read_batch(&mut out, 1, &mut ob)?;
    if ob.records != 0 {
        return fail("the output has more rows than expected".into());
    }
    Ok(())
}

fn same_values<V: SameValue>(a: Option<&[V]>, b: Option<&[V]>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(y)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Float64Array, Int64Array, ListArray, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use bytes::Bytes;
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    use std::sync::Arc;

    fn schema() -> Arc<Schema> {
        let item = Arc::new(Field::new("item", DataType::Int64, true));
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new("tags", DataType::List(item), true),
        ]))
    }

    /// Rows `ids` of a table whose row i is (i, "n{i}" or null, i / 2, [i, i + 1] or null).
    fn rows(ids: &[i64], tweak: Option<i64>) -> RecordBatch {
        let name = |i: i64| (i % 3 != 0).then(|| format!("n{i}"));
        let tags = ids
            .iter()
            .map(|&i| (i % 4 != 1).then(|| vec![Some(i), Some(i + 1)]));
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
                Arc::new(StringArray::from_iter(ids.iter().map(|&i| {
                    if Some(i) == tweak {
                        Some("changed".to_owned())
                    } else {
                        name(i)
                    }
                }))),
                Arc::new(Float64Array::from_iter_values(
                    ids.iter().map(|&i| i as f64 / 2.0),
                )),
                Arc::new(ListArray::from_iter_primitive::<
                    arrow_array::types::Int64Type,
                    _,
                    _,
                >(tags)),
            ],
        )
        .unwrap()
    }

    fn file(batches: &[RecordBatch], rows_per_group: usize) -> Bytes {
        file_with(batches, rows_per_group, None)
    }

    fn file_with(
        batches: &[RecordBatch],
        rows_per_group: usize,
        kv: Option<Vec<KeyValue>>,
    ) -> Bytes {
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(rows_per_group))
            .set_key_value_metadata(kv)
            .build();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, schema(), Some(props)).unwrap();
        for b in batches {
            w.write(b).unwrap();
            w.flush().unwrap();
        }
        w.close().unwrap();
        Bytes::from(out)
    }

    /// Source: 3 row groups of 10 rows (0..30).
    fn source() -> Bytes {
        file(&[rows(&(0..30).collect::<Vec<_>>(), None)], 10)
    }

    fn removing(rows: &[usize]) -> Fate {
        Fate::Rewritten {
            removed: (0..10).map(|r| rows.contains(&r)).collect(),
        }
    }

    #[test]
    fn an_output_equal_to_the_source_minus_the_removed_rows_passes() {
        let src = source();
        // Row group 1 loses rows 12 and 15; group 0 is copied; group 2 loses every row.
        let kept: Vec<i64> = (10..20).filter(|i| *i != 12 && *i != 15).collect();
        let expected = Fate::Rewritten {
            removed: (10..20).map(|i| i == 12 || i == 15).collect(),
        };
        // The copied group must be byte-identical: write it with the same writer settings.
        let out = file(
            &[rows(&(0..10).collect::<Vec<_>>(), None), rows(&kept, None)],
            10,
        );
        let fates = [Fate::Copied, expected, Fate::Dropped];
        let report = check(src.clone(), out, &fates).unwrap();
        assert_eq!(report.row_groups_compared, 1);
        assert_eq!(report.row_groups_byte_compared, 1);
        assert_eq!(report.rows_compared, 8);
    }

    #[test]
    fn a_wrong_row_removed_a_changed_value_or_a_missing_row_fails() {
        wrong_rows_fail(true);
    }

    #[test]
    fn the_column_reader_comparison_catches_the_same_differences() {
        wrong_rows_fail(false);
    }

    fn wrong_rows_fail(use_arrow: bool) {
        let check = |s: Bytes, o: Bytes, f: &[Fate]| check_with(s, o, f, use_arrow);
        let src = source();
        let fates = |f: Fate| [Fate::Copied, f, Fate::Copied];
        let with = |middle: &[i64], tweak| {
            file(
                &[
                    rows(&(0..10).collect::<Vec<_>>(), None),
                    rows(middle, tweak),
                    rows(&(20..30).collect::<Vec<_>>(), None),
                ],
                10,
            )
        };
        let all_but = |skip: i64| (10..20).filter(|i| *i != skip).collect::<Vec<_>>();
        // Row 13 removed where 12 was meant.
        let out = with(&all_but(13), None);
        let err = check(src.clone(), out, &fates(removing(&[2]))).unwrap_err();
        assert!(err.0.contains("row group 1"), "{err}");
        // The right row removed, but another row's name changed.
        let out = with(&all_but(12), Some(14));
        let err = check(src.clone(), out, &fates(removing(&[2]))).unwrap_err();
        let at = if use_arrow {
            "column \"name\": kept row 3"
        } else {
            "column \"name\": source row 4"
        };
        assert!(err.0.contains(at), "{err}");
        // A row too few.
        let out = with(&(10..19).filter(|i| *i != 12).collect::<Vec<_>>(), None);
        assert!(check(src.clone(), out, &fates(removing(&[2]))).is_err());
        // And the right output passes, so the failures above are the check's doing.
        let out = with(&all_but(12), None);
        check(src, out, &fates(removing(&[2]))).unwrap();
    }

    #[test]
    fn a_different_schema_metadata_or_copied_byte_fails() {
        let src = source();
        let copied = [Fate::Copied, Fate::Copied, Fate::Copied];
        check(src.clone(), src.clone(), &copied).unwrap();
        // Flip one byte inside a copied chunk's data (after the first page header).
        let meta = parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&src)
            .unwrap();
        let (start, len) = meta.row_group(2).column(0).byte_range();
        let mut bytes = src.to_vec();
        bytes[(start + len - 1) as usize] ^= 0x01;
        assert!(check(src.clone(), Bytes::from(bytes), &copied).is_err());
        // Metadata the rewrite did not mean: the same rows with one more footer key.
        let extra = Some(vec![KeyValue::new("x".into(), "y".to_owned())]);
        let out = file_with(&[rows(&(0..30).collect::<Vec<_>>(), None)], 10, extra);
        let err = check(src.clone(), out, &copied).unwrap_err();
        assert!(err.0.contains("key-value"), "{err}");
        // Another schema: the name column written as an integer.
        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, other.clone(), None).unwrap();
        w.write(
            &RecordBatch::try_new(
                other,
                vec![Arc::new(arrow_array::Int32Array::from(vec![1]))],
            )
            .unwrap(),
        )
        .unwrap();
        w.close().unwrap();
        let err = check(src, Bytes::from(out), &copied).unwrap_err();
        assert!(err.0.contains("schema"), "{err}");
    }
}
