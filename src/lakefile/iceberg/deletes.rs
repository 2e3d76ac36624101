//! Position delete files (Iceberg format version 2): Parquet files of `(file_path, pos)`
//! rows, each deleting the row at position `pos` (0-based) of the data file `file_path`.
//! A data file's rewrite must leave those rows out too (the new file would otherwise
//! bring them back: the delete file names the old path), and a delete file all of whose
//! data files are replaced is no longer needed by the new snapshot.
//!
//! A delete file is read whole, column by column (`file_path`, `pos`), batch by batch;
//! what it holds is checked, never trusted: a null, a negative position or a file that is
//! not such Parquet is an error, never "deletes nothing".

use std::collections::{BTreeMap, BTreeSet};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, RecordBatch};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::ChunkReader;

use super::{MAX_METADATA_BYTES, canonical};
use crate::lakefile::avro::datum::{Datum, read_all};
use crate::lakefile::parquet::find::{FindError, guarded};

/// The columns of a position delete file, by the spec's names.
const FILE_PATH: &str = "file_path";
const POS: &str = "pos";

/// Most distinct data files one delete file may name (their paths are held in memory).
pub const MAX_TARGETS: usize = 1_000_000;

/// What one position delete file deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PositionDeletes {
    /// Every data file it deletes rows of, exactly as it names them (readers compare a
    /// delete's `file_path` with the manifest's exactly). Only read when no data file is
    /// asked about.
    pub targets: BTreeSet<String>,
    /// The positions it deletes in the data file asked about: ascending, no repeats.
    pub positions: Vec<u64>,
}

/// What to read of a position delete file.
#[derive(Debug, Clone, Copy)]
pub enum Wanted<'a> {
    /// Every data file it names.
    Targets,
    /// The positions it deletes in this data file (compared by canonical path, see
    /// [`canonical`]), each below `rows` (the file's row count): one at or beyond it is
    /// an error, so no delete file makes more positions than the data file has rows.
    Positions { data_file: &'a str, rows: u64 },
}

/// Reads the position delete file `reader`: the data files it names, or the positions
/// it deletes in one data file.
pub fn read_position_deletes<R: ChunkReader + 'static>(
    reader: R,
    wanted: Wanted<'_>,
) -> Result<PositionDeletes, String> {
    let wanted = match wanted {
        Wanted::Targets => None,
        Wanted::Positions { data_file, rows } => Some((canonical(data_file), rows)),
    };
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
            let wanted = wanted.as_ref().map(|(path, rows)| (path.as_str(), *rows));
            add(&mut out, &batch, wanted).map_err(FindError::Refused)?;
        }
        Ok(out)
    });
    let mut out = read.map_err(|e| format!("a position delete file cannot be read: {e}"))?;
    out.positions.sort_unstable();
    out.positions.dedup();
    Ok(out)
}

/// Adds one batch's rows: the targets (no `wanted`), or the positions of `wanted`.
fn add(
    out: &mut PositionDeletes,
    batch: &RecordBatch,
    wanted: Option<(&str, u64)>,
) -> Result<(), String> {
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
    // Rows are sorted by path: each run of one path is looked at once.
    let mut last: Option<(&str, bool)> = None;
    for (path, pos) in paths.iter().zip(positions.iter()) {
        let (Some(path), Some(pos)) = (path, pos) else {
            return Err("a row has no file_path or no pos".into());
        };
        let pos = u64::try_from(pos).map_err(|_| "a row's pos is negative".to_owned())?;
        let is_wanted = match (last, wanted) {
            (Some((p, is_wanted)), _) if p == path => is_wanted,
            (_, None) => {
                out.targets.insert(path.to_owned());
                if out.targets.len() > MAX_TARGETS {
                    return Err(format!("it names more than {MAX_TARGETS} data files"));
                }
                last = Some((path, false));
                false
            }
            (_, Some((data_file, _))) => {
                let is_wanted = canonical(path) == data_file;
                last = Some((path, is_wanted));
                is_wanted
            }
        };
        let Some((_, rows)) = wanted.filter(|_| is_wanted) else {
            continue;
        };
        if pos >= rows {
            return Err(format!(
                "it deletes row {pos} of a data file of {rows} rows"
            ));
        }
        // Sorted by position within a path: a repeat is the last one pushed.
        if out.positions.last() != Some(&pos) {
            // More than `rows` of them: repeats out of order (the spec sorts them).
            if out.positions.len() as u64 >= rows {
                return Err("it names more positions than the data file has rows".into());
            }
            out.positions.push(pos);
        }
    }
    Ok(())
}

/// Where a live file of a snapshot sits: its data sequence number (inherited from its
/// manifest when the entry leaves it out; None in format version 1, where every delete
/// applies), its partition spec and partition tuple.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub sequence: Option<i64>,
    pub spec_id: i64,
    pub partition: Datum,
}

/// The placement of every live file of the snapshot whose manifest list is `list` (its
/// manifests in `manifests`), by path as the manifests name it.
pub fn placements(
    list: &[u8],
    manifests: &BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, Placement>, String> {
    let listed = read_all(list, MAX_METADATA_BYTES)
        .map_err(|e| format!("a manifest list cannot be read: {e}"))?;
    let mut out = BTreeMap::new();
    for m in &listed.records {
        let path = m
            .field("manifest_path")
            .and_then(Datum::as_str)
            .ok_or("a manifest list entry names no manifest_path")?;
        let inherited = m.field("sequence_number").and_then(Datum::as_long);
        let spec_id = m
            .field("partition_spec_id")
            .and_then(Datum::as_long)
            .unwrap_or(0);
        let bytes = manifests
            .get(path)
            .ok_or_else(|| format!("manifest {path} was not read"))?;
        let read = read_all(bytes, MAX_METADATA_BYTES)
            .map_err(|e| format!("manifest {path} cannot be read: {e}"))?;
        for e in read
            .records
            .iter()
            .filter(|e| e.field("status").and_then(Datum::as_long) != Some(2))
        {
            let file = e
                .field("data_file")
                .ok_or("a manifest entry has no data_file")?;
            let Some(file_path) = file.field("file_path").and_then(Datum::as_str) else {
                return Err("a manifest entry names no file_path".into());
            };
            let sequence = e
                .field("sequence_number")
                .and_then(Datum::as_long)
                .or(inherited);
            let partition = file.field("partition").cloned().unwrap_or(Datum::Null);
            out.insert(
                file_path.to_owned(),
                Placement {
                    sequence,
                    spec_id,
                    partition,
                },
            );
        }
    }
    Ok(out)
}

/// Whether a position delete file placed at `delete` applies to a data file placed at
/// `data`, as readers decide (the spec's rule): not older than the data file (data
/// sequence numbers), and in its partition or in an unpartitioned spec (`unpartitioned`:
/// whether the delete file's spec has no field).
pub fn applies(delete: &Placement, data: &Placement, unpartitioned: bool) -> bool {
    let newer = match (delete.sequence, data.sequence) {
        (Some(d), Some(f)) => d >= f,
        _ => true,
    };
    let same_partition = delete.spec_id == data.spec_id && delete.partition == data.partition;
    newer && (unpartitioned || same_partition)
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
        let of = |data_file| Wanted::Positions { data_file, rows: 8 };
        let read = read_position_deletes(bytes.clone(), of("s3://b/t/data/a.parquet")).unwrap();
        assert_eq!(read.positions, vec![2, 7]);
        assert!(read.targets.is_empty(), "only the positions are read");
        let b = read_position_deletes(bytes.clone(), of("s3a://b/t/data/b.parquet")).unwrap();
        assert_eq!(b.positions, vec![0]);
        let none = read_position_deletes(bytes.clone(), of("s3://b/t/data/z.parquet")).unwrap();
        assert!(none.positions.is_empty());
        let all = read_position_deletes(bytes.clone(), Wanted::Targets).unwrap();
        let targets: Vec<&str> = all.targets.iter().map(String::as_str).collect();
        assert_eq!(
            targets,
            [
                "s3://b/t/data/a.parquet",
                "s3://b/t/data/b.parquet",
                "s3://b/t/data/c.parquet",
                "s3a://b/t/data/a.parquet",
            ],
            "as named, not canonical"
        );
        // A position at or beyond the data file's rows: the delete file does not
        // describe it.
        let short = Wanted::Positions {
            data_file: "s3://b/t/data/a.parquet",
            rows: 7,
        };
        let err = read_position_deletes(bytes, short).unwrap_err();
        assert!(err.contains("row 7 of a data file of 7 rows"), "{err}");
    }

    #[test]
    fn a_null_a_negative_position_or_a_file_of_other_columns_is_an_error() {
        for rows in [
            vec![("s3://b/a.parquet", None)],
            vec![("s3://b/a.parquet", Some(-1))],
        ] {
            let wanted = Wanted::Positions {
                data_file: "s3://b/a.parquet",
                rows: 10,
            };
            let err = read_position_deletes(file(&rows), wanted).unwrap_err();
            assert!(err.contains("cannot be read"), "{err}");
        }
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        let batch = RecordBatch::try_from_iter([("id", ids)]).unwrap();
        let mut out = Vec::new();
        let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let err = read_position_deletes(Bytes::from(out), Wanted::Targets).unwrap_err();
        assert!(err.contains("no file_path and pos"), "{err}");
        let not_parquet = Bytes::from_static(b"not parquet");
        let err = read_position_deletes(not_parquet, Wanted::Targets).unwrap_err();
        assert!(err.contains("cannot be read"), "{err}");
    }

    #[test]
    fn a_delete_applies_when_not_older_and_in_the_data_files_partition() {
        let at = |sequence, spec_id, country: &str| Placement {
            sequence,
            spec_id,
            partition: Datum::Record(vec![("country".into(), Datum::String(country.into()))]),
        };
        let data = at(Some(3), 0, "de");
        assert!(
            applies(&at(Some(3), 0, "de"), &data, false),
            "same sequence"
        );
        assert!(applies(&at(Some(4), 0, "de"), &data, false));
        assert!(!applies(&at(Some(2), 0, "de"), &data, false), "older");
        assert!(
            !applies(&at(Some(4), 0, "fr"), &data, false),
            "other partition"
        );
        assert!(!applies(&at(Some(4), 1, "de"), &data, false), "other spec");
        assert!(
            applies(&at(Some(4), 1, "fr"), &data, true),
            "unpartitioned spec"
        );
        assert!(
            applies(&at(None, 0, "de"), &at(None, 0, "de"), false),
            "version 1"
        );
    }
}
