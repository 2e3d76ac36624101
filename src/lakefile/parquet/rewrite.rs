//! A row group written again without some rows, at the Parquet level: each column chunk's
//! values are read with their definition and repetition levels, the removed rows' records
//! are dropped, and the rest is written by the typed column writer of the same physical
//! type under the source's own schema — so every leaf keeps its physical type, type
//! length, logical and converted type, repetition and field id, whatever wrote the file.
//!
//! Writer settings follow the source column by column: codec, dictionary, data encoding,
//! page version, statistics level (page indexes where the source has them), bloom
//! filters, sorting columns, key-value metadata and `created_by`.
//!
//! Invariants: records are kept whole and in order; nothing is converted; a file whose
//! levels disagree with its footer is an error.

use std::io::Write;

use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::column::page::{Page, PageReader};
use parquet::column::reader::ColumnReaderImpl;
use parquet::column::writer::ColumnWriter;
use parquet::data_type::DataType;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::reader::RowGroupReader;
use parquet::file::writer::SerializedFileWriter;

use super::columns::{BATCH_RECORDS, Batch, Records, read_batch};
use crate::with_typed_reader;

/// Writer settings that reproduce the source's, column by column. `page_v2`: the source's
/// data pages are version 2.
pub fn writer_properties(meta: &ParquetMetaData, page_v2: bool) -> WriterProperties {
    let file = meta.file_metadata();
    let mut props = WriterProperties::builder()
        .set_key_value_metadata(file.key_value_metadata().cloned())
        .set_created_by(file.created_by().unwrap_or("lethe").to_owned())
        .set_max_row_group_row_count(None)
        .set_writer_version(if page_v2 {
            WriterVersion::PARQUET_2_0
        } else {
            WriterVersion::PARQUET_1_0
        });
    let Some(rg) = meta.row_groups().first() else {
        return props.build();
    };
    props = props.set_sorting_columns(rg.sorting_columns().cloned());
    let mut any_offset_index = false;
    for col in rg.columns() {
        let path = col.column_path().clone();
        let page_index = col.column_index_offset().is_some();
        any_offset_index |= col.offset_index_offset().is_some();
        let statistics = if page_index {
            EnabledStatistics::Page
        } else if col.statistics().is_some() {
            EnabledStatistics::Chunk
        } else {
            EnabledStatistics::None
        };
        props = props
            .set_column_compression(path.clone(), col.compression())
            .set_column_dictionary_enabled(path.clone(), is_dictionary(col))
            .set_column_encoding(path.clone(), data_encoding(col))
            .set_column_statistics_enabled(path.clone(), statistics)
            .set_column_bloom_filter_enabled(path.clone(), col.bloom_filter_offset().is_some());
        if col.bloom_filter_offset().is_some() {
            props = props.set_column_bloom_filter_max_ndv(path, rg.num_rows().max(1) as u64);
        }
    }
    props.set_offset_index_disabled(!any_offset_index).build()
}

fn is_dictionary(col: &ColumnChunkMetaData) -> bool {
    col.dictionary_page_offset().is_some()
        || col
            .encodings()
            .any(|e| matches!(e, Encoding::PLAIN_DICTIONARY | Encoding::RLE_DICTIONARY))
}

/// The source's non-dictionary data encoding where the writer supports it for the
/// column's physical type, else PLAIN (the value encoding changes no value).
fn data_encoding(col: &ColumnChunkMetaData) -> Encoding {
    use Encoding::*;
    let physical = col.column_type();
    let used =
        |e: Encoding| data_pages_use(col, e).unwrap_or_else(|| col.encodings().any(|x| x == e));
    let candidates = [
        DELTA_BINARY_PACKED,
        DELTA_LENGTH_BYTE_ARRAY,
        DELTA_BYTE_ARRAY,
        BYTE_STREAM_SPLIT,
    ];
    let fits = |e: Encoding| match e {
        DELTA_BINARY_PACKED => matches!(physical, PhysicalType::INT32 | PhysicalType::INT64),
        DELTA_LENGTH_BYTE_ARRAY => physical == PhysicalType::BYTE_ARRAY,
        DELTA_BYTE_ARRAY => matches!(
            physical,
            PhysicalType::BYTE_ARRAY | PhysicalType::FIXED_LEN_BYTE_ARRAY
        ),
        BYTE_STREAM_SPLIT => !matches!(
            physical,
            PhysicalType::BOOLEAN | PhysicalType::BYTE_ARRAY | PhysicalType::INT96
        ),
        _ => false,
    };
    if physical == PhysicalType::BOOLEAN && data_pages_use(col, RLE) == Some(true) {
        return RLE;
    }
    candidates
        .into_iter()
        .find(|e| used(*e) && fits(*e))
        .unwrap_or(PLAIN)
}

/// Whether the chunk's data pages use `encoding`, when the footer says (full page
/// encoding statistics or their mask).
fn data_pages_use(col: &ColumnChunkMetaData, encoding: Encoding) -> Option<bool> {
    if let Some(stats) = col.page_encoding_stats() {
        return Some(stats.iter().any(|s| {
            s.encoding == encoding
                && matches!(
                    s.page_type,
                    parquet::basic::PageType::DATA_PAGE | parquet::basic::PageType::DATA_PAGE_V2
                )
        }));
    }
    col.page_encoding_stats_mask()
        .map(|mask| mask.is_set(encoding))
}

/// Whether the first data page of the row group's first column is a version 2 page.
pub fn uses_page_v2(group: &dyn RowGroupReader) -> Result<bool> {
    if group.num_columns() == 0 {
        return Ok(false);
    }
    let mut pages: Box<dyn PageReader> = group.get_column_page_reader(0)?;
    while let Some(page) = pages.get_next_page()? {
        match page {
            Page::DictionaryPage { .. } => continue,
            Page::DataPageV2 { .. } => return Ok(true),
            Page::DataPage { .. } => return Ok(false),
        }
    }
    Ok(false)
}

/// Writes `group` without the rows marked in `removed` as the next row group of `writer`.
pub fn rewrite_row_group<W: Write + Send>(
    group: &dyn RowGroupReader,
    removed: &[bool],
    writer: &mut SerializedFileWriter<W>,
) -> Result<()> {
    if removed.len() as i64 != group.metadata().num_rows() {
        return Err(ParquetError::General(
            "removal marks do not cover the row group".into(),
        ));
    }
    let mut out = writer.next_row_group()?;
    for c in 0..group.num_columns() {
        let descr = group.metadata().column(c).column_descr_ptr();
        let levels = (descr.max_def_level(), descr.max_rep_level());
        let mut column = out
            .next_column()?
            .ok_or_else(|| ParquetError::General("the writer has fewer columns".into()))?;
        with_typed_reader!(
            group.get_column_reader(c)?,
            filter_column(column.untyped(), removed, levels)
        )?;
        column.close()?;
    }
    out.close()?;
    Ok(())
}

/// Copies one column chunk's records but the removed ones, batch by batch.
fn filter_column<T: DataType>(
    mut src: ColumnReaderImpl<T>,
    out: &mut ColumnWriter<'_>,
    removed: &[bool],
    (max_def, max_rep): (i16, i16),
) -> Result<()> {
    let writer = T::get_column_writer_mut(out)
        .ok_or_else(|| ParquetError::General("writer of another physical type".into()))?;
    let mut batch = Batch::default();
    let mut kept: Batch<T::T> = Batch::default();
    let mut row = 0usize;
    loop {
        read_batch(&mut src, BATCH_RECORDS, &mut batch)?;
        if batch.records == 0 {
            break;
        }
        let marks = removed.get(row..row + batch.records).ok_or_else(|| {
            ParquetError::General("the column has more rows than its row group".into())
        })?;
        row += batch.records;
        let source = if marks.iter().any(|m| *m) {
            keep(&batch, marks, (max_def, max_rep), &mut kept)?;
            &kept
        } else {
            &batch
        };
        writer.write_batch(
            &source.values,
            (max_def > 0).then_some(&source.def[..]),
            (max_rep > 0).then_some(&source.rep[..]),
        )?;
    }
    if row != removed.len() {
        return Err(ParquetError::General(
            "the column has fewer rows than its row group".into(),
        ));
    }
    Ok(())
}

/// The records of `batch` whose mark is false, into `kept`.
fn keep<V: Clone>(
    batch: &Batch<V>,
    marks: &[bool],
    (max_def, max_rep): (i16, i16),
    kept: &mut Batch<V>,
) -> Result<()> {
    kept.def.clear();
    kept.rep.clear();
    kept.values.clear();
    let bad = || ParquetError::General("levels and values disagree".into());
    for (span, removed) in Records::new(batch, max_def, max_rep).zip(marks) {
        if *removed {
            continue;
        }
        if max_def > 0 {
            kept.def
                .extend_from_slice(batch.def.get(span.levels.clone()).ok_or_else(bad)?);
        }
        if max_rep > 0 {
            kept.rep
                .extend_from_slice(batch.rep.get(span.levels.clone()).ok_or_else(bad)?);
        }
        kept.values
            .extend_from_slice(batch.values.get(span.values).ok_or_else(bad)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_drops_whole_records_with_their_levels_and_values() {
        // list<int>: [1, 2], null list, [3], [4, 5]
        let batch = Batch::<i32> {
            def: vec![3, 3, 0, 3, 3, 3],
            rep: vec![0, 1, 0, 0, 0, 1],
            values: vec![1, 2, 3, 4, 5],
            records: 4,
            levels: 6,
        };
        let mut kept = Batch::default();
        keep(&batch, &[true, false, false, true], (3, 1), &mut kept).unwrap();
        assert_eq!(kept.def, [0, 3]);
        assert_eq!(kept.rep, [0, 0]);
        assert_eq!(kept.values, [3]);
        keep(&batch, &[false, true, true, false], (3, 1), &mut kept).unwrap();
        assert_eq!(kept.values, [1, 2, 4, 5]);
        assert_eq!(kept.rep, [0, 1, 0, 1]);
    }

    #[test]
    fn keep_reports_levels_that_promise_more_values_than_there_are() {
        let batch = Batch::<i32> {
            def: vec![1, 1, 1],
            rep: vec![],
            values: vec![1],
            records: 3,
            levels: 3,
        };
        let mut kept = Batch::default();
        assert!(keep(&batch, &[false, false, false], (1, 0), &mut kept).is_err());
    }
}
