//! Position delete files (Iceberg format version 2): Parquet files of `(file_path, pos)`
//! rows, each deleting the row at position `pos` (0-based) of the data file `file_path`.
//! A data file's rewrite must leave those rows out too (the new file would otherwise
//! bring them back: the delete file names the old path), and a delete file all of whose
//! data files are replaced is no longer needed by the new snapshot.
//!
//! A delete file is read whole, column by column (`file_path`, `pos`), batch by batch;
//! what it holds is checked, never trusted: a null, a negative position or a file that is
//! not such Parquet is an error, never "deletes nothing".

use std::collections::BTreeSet;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, RecordBatch};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::ChunkReader;

use super::canonical;
use crate::lakefile::parquet::find::{FindError, guarded};

/// The columns of a position delete file, by the spec's names.
const FILE_PATH: &str = "file_path";
const POS: &str = "pos";

/// Most distinct data files one delete file may name (their paths are held in memory).
pub const MAX_TARGETS: usize = 1_000_000;

/// What one position delete file deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PositionDeletes {
    /// Every data file it deletes rows of (canonical paths, see [`canonical`]).
    pub targets: BTreeSet<String>,
    /// The positions it deletes in the data file asked about: ascending, no repeats.
    pub positions: Vec<u64>,
}

/// Reads the position delete file `reader`: the data files it names, and the positions
/// it deletes in `data_file` (a path as the metadata names it; None: none asked about).
pub fn read_position_deletes<R: ChunkReader + 'static>(
    reader: R,
    data_file: Option<&str>,
) -> Result<PositionDeletes, String> {
    let wanted = data_file.map(canonical);
    let read = guarded(|| {
        let builder = ParquetRecordBatchReaderBuilder::try_new(reader)?;
        let schema = builder.parquet_schema();
        let leaves = [FILE_PATH, POS].map(|name| {
            (0..schema.num_columns()).find(|&i| schema.column(i).path().string() == name)
        });
        let [Some(path), Some(pos)] = leaves else {
            return Err(FindError::Refused(
                "it has no file_path and pos columns".into(),
            ));
        };
        let mask = ProjectionMask::leaves(schema, [path, pos]);
        let mut out = PositionDeletes::default();
        for batch in builder.with_projection(mask).build()? {
            let batch = batch.map_err(|e| FindError::Refused(e.to_string()))?;
            add(&mut out, &batch, wanted.as_deref()).map_err(FindError::Refused)?;
        }
        Ok(out)
    });
    let mut out = read.map_err(|e| format!("a position delete file cannot be read: {e}"))?;
    out.positions.sort_unstable();
    out.positions.dedup();
    Ok(out)
}

/// Adds one batch's rows.
fn add(out: &mut PositionDeletes, batch: &RecordBatch, wanted: Option<&str>) -> Result<(), String> {
    let (Some(paths), Some(positions)) =
        (batch.column_by_name(FILE_PATH), batch.column_by_name(POS))
    else {
        return Err("a batch lacks file_path or pos".into());
    };
    let positions = positions
        .as_primitive_opt::<Int64Type>()
        .ok_or("its pos column is not a long")?;
    let paths = arrow_cast::cast(paths, &arrow_schema::DataType::Utf8)
        .map_err(|e| format!("its file_path column is not text: {e}"))?;
    let paths = paths.as_string::<i32>();
    if paths.null_count() > 0 || positions.null_count() > 0 {
        return Err("a row has no file_path or no pos".into());
    }
    // Rows are sorted by path: each run of one path is canonicalised once.
    let mut last: Option<(&str, bool)> = None;
    for (path, pos) in paths.iter().zip(positions.iter()) {
        let (Some(path), Some(pos)) = (path, pos) else {
            return Err("a row has no file_path or no pos".into());
        };
        let pos = u64::try_from(pos).map_err(|_| "a row's pos is negative".to_owned())?;
        let is_wanted = match last {
            Some((p, is_wanted)) if p == path => is_wanted,
            _ => {
                let path_now = canonical(path);
                let is_wanted = wanted == Some(path_now.as_str());
                out.targets.insert(path_now);
                if out.targets.len() > MAX_TARGETS {
                    return Err(format!("it names more than {MAX_TARGETS} data files"));
                }
                last = Some((path, is_wanted));
                is_wanted
            }
        };
        if is_wanted {
            out.positions.push(pos);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use bytes::Bytes;

    use super::*;

    fn file(rows: &[(&str, Option<i64>)]) -> Bytes {
        let paths: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)));
        let pos: ArrayRef = Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1)));
        let batch = RecordBatch::try_from_iter([("file_path", paths), ("pos", pos)]).unwrap();
        let mut out = Vec::new();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        Bytes::from(out)
    }

    #[test]
    fn the_positions_of_one_data_file_and_every_file_named_are_read() {
        let bytes = file(&[
            ("s3a://b/t/data/a.parquet", Some(7)),
            ("s3a://b/t/data/a.parquet", Some(2)),
            ("s3://b/t/data/a.parquet", Some(7)),
            ("s3://b/t/data/b.parquet", Some(0)),
            ("s3://b/t/data/c.parquet", Some(4)),
        ]);
        let read = read_position_deletes(bytes.clone(), Some("s3://b/t/data/a.parquet")).unwrap();
        assert_eq!(read.positions, vec![2, 7]);
        let targets: Vec<&str> = read.targets.iter().map(String::as_str).collect();
        assert_eq!(
            targets,
            [
                "s3://b/t/data/a.parquet",
                "s3://b/t/data/b.parquet",
                "s3://b/t/data/c.parquet"
            ]
        );
        let b = read_position_deletes(bytes.clone(), Some("s3a://b/t/data/b.parquet")).unwrap();
        assert_eq!(b.positions, vec![0]);
        let none = read_position_deletes(bytes, Some("s3://b/t/data/z.parquet")).unwrap();
        assert!(none.positions.is_empty());
        assert_eq!(none.targets.len(), 3);
    }

    #[test]
    fn a_null_a_negative_position_or_a_file_of_other_columns_is_an_error() {
        for rows in [
            vec![("s3://b/a.parquet", None)],
            vec![("s3://b/a.parquet", Some(-1))],
        ] {
            let err = read_position_deletes(file(&rows), Some("s3://b/a.parquet")).unwrap_err();
            assert!(err.contains("cannot be read"), "{err}");
        }
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        let batch = RecordBatch::try_from_iter([("id", ids)]).unwrap();
        let mut out = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let err = read_position_deletes(Bytes::from(out), None).unwrap_err();
        assert!(err.contains("no file_path and pos"), "{err}");
        let err = read_position_deletes(Bytes::from_static(b"not parquet"), None).unwrap_err();
        assert!(err.contains("cannot be read"), "{err}");
    }
}
