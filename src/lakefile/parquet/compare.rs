//! The full check's comparison of a rewritten row group through the Arrow reader: a
//! reader path independent of both the Parquet-level rewrite (which reads with the
//! column readers) and the writer. The source row group, filtered by the removal marks,
//! must equal the output row group, every column, value for value (primitive values
//! compared by their bytes, so floats by bits), in order.
//!
//! Where Arrow cannot represent the source's schema the caller falls back to the
//! record-by-record comparison of `check`.

use std::collections::VecDeque;

use arrow_array::{BooleanArray, RecordBatch};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::file::reader::ChunkReader;

use super::error::CheckError;

const BATCH: usize = 8192;

fn arrow_error(e: impl std::fmt::Display) -> CheckError {
    CheckError(format!("unreadable: {e}"))
}

/// Compares source row group `i` minus the rows marked in `removed` with output row group
/// `j`.
pub fn compare_row_group<S, O>(
    (source, source_meta, i): (S, &ArrowReaderMetadata, usize),
    (output, output_meta, j): (O, &ArrowReaderMetadata, usize),
    removed: &[bool],
) -> Result<(), CheckError>
where
    S: ChunkReader + 'static,
    O: ChunkReader + 'static,
{
    let read = |meta: &ArrowReaderMetadata| meta.clone();
    let src = ParquetRecordBatchReaderBuilder::new_with_metadata(source, read(source_meta))
        .with_row_groups(vec![i])
        .with_batch_size(BATCH)
        .build()
        .map_err(arrow_error)?;
    let mut out = ParquetRecordBatchReaderBuilder::new_with_metadata(output, read(output_meta))
        .with_row_groups(vec![j])
        .with_batch_size(BATCH)
        .build()
        .map_err(arrow_error)?;
    let mut expected: VecDeque<RecordBatch> = VecDeque::new();
    let mut row = 0usize;
    let mut compared = 0usize;
    for batch in src {
        let batch = batch.map_err(arrow_error)?;
        let marks = removed
            .get(row..row + batch.num_rows())
            .ok_or_else(|| CheckError("the source has more rows than its footer says".into()))?;
        row += batch.num_rows();
        let keep = BooleanArray::from(marks.iter().map(|r| !r).collect::<Vec<_>>());
        let kept = arrow_select::filter::filter_record_batch(&batch, &keep).map_err(arrow_error)?;
        if kept.num_rows() > 0 {
            expected.push_back(kept);
        }
        // Compare what the output has for the rows expected so far.
        while expected.iter().map(RecordBatch::num_rows).sum::<usize>() >= BATCH {
            compared += match_output(&mut out, &mut expected, compared)?;
        }
    }
    while !expected.is_empty() {
        compared += match_output(&mut out, &mut expected, compared)?;
    }
    if row != removed.len() {
        return Err(CheckError(format!(
            "the source has {row} rows, its footer {}",
            removed.len()
        )));
    }
    if let Some(extra) = out.next() {
        let extra = extra.map_err(arrow_error)?;
        if extra.num_rows() > 0 {
            return Err(CheckError(format!(
                "the output has rows the source lacks after row {compared}"
            )));
        }
    }
    Ok(())
}

/// Names the first column and kept row where two equally long batches differ.
fn first_difference(want: &RecordBatch, have: &RecordBatch, first_row: usize) -> CheckError {
    for (c, field) in want.schema().fields().iter().enumerate() {
        let (a, b) = (want.column(c), have.column(c));
        if a == b {
            continue;
        }
        let row = (0..a.len())
            .find(|r| a.slice(*r, 1) != b.slice(*r, 1))
            .unwrap_or(0);
        return CheckError(format!(
            "column {:?}: kept row {} differs in the output",
            field.name(),
            first_row + row
        ));
    }
    CheckError(format!("kept rows from {first_row} differ in the output"))
}

/// Reads the next output batch and compares it with as many expected rows; returns how
/// many rows were compared.
fn match_output(
    out: &mut impl Iterator<Item = Result<RecordBatch, arrow_schema::ArrowError>>,
    expected: &mut VecDeque<RecordBatch>,
    compared: usize,
) -> Result<usize, CheckError> {
    let got = match out.next() {
        Some(batch) => batch.map_err(arrow_error)?,
        None => {
            return Err(CheckError(format!(
                "the output ends at row {compared}, before the source's kept rows do"
            )));
        }
    };
    let mut at = 0;
    while at < got.num_rows() {
        let Some(front) = expected.front_mut() else {
            return Err(CheckError(format!(
                "the output has rows the source lacks after row {}",
                compared + at
            )));
        };
        let n = front.num_rows().min(got.num_rows() - at);
        let (want, have) = (front.slice(0, n), got.slice(at, n));
        if want.columns() != have.columns() {
            return Err(first_difference(&want, &have, compared + at));
        }
        at += n;
        if n == front.num_rows() {
            expected.pop_front();
        } else {
            *front = front.slice(n, front.num_rows() - n);
        }
    }
    Ok(got.num_rows())
}

#[cfg(test)]
mod tests {
    use arrow_array::{Array, Float64Array};

    #[test]
    fn arrow_equality_compares_floats_by_bits() {
        // What the check relies on: a changed sign of zero or NaN payload is a difference,
        // the same NaN is not.
        let a = Float64Array::from(vec![0.0, f64::NAN]);
        assert_eq!(
            a.to_data(),
            Float64Array::from(vec![0.0, f64::NAN]).to_data()
        );
        assert_ne!(
            a.to_data(),
            Float64Array::from(vec![-0.0, f64::NAN]).to_data()
        );
        assert_ne!(
            a.to_data(),
            Float64Array::from(vec![0.0, -f64::NAN]).to_data()
        );
    }
}
