//! Column chunks at the Parquet level, below Arrow: each leaf is read as its physical
//! values with their definition and repetition levels, in batches of whole records
//! (rows), so any physical type (INT96, FIXED_LEN_BYTE_ARRAY of any length, BYTE_ARRAY
//! decimals) and any nesting (legacy 2-level lists, unannotated repeated fields) is
//! handled the same way, with no type conversion in between.
//!
//! Invariants: a record's levels and values are never split across batches; every read
//! is bounded by a batch of records; a file whose levels or values disagree with its
//! metadata is an error, never a panic.

use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::DataType;
use parquet::errors::{ParquetError, Result};

/// Records read per batch: small enough to bound memory, large enough to amortise calls.
pub const BATCH_RECORDS: usize = 8192;

/// Equality of physical values, floating point by bits (NaN equals the same NaN, 0.0
/// differs from -0.0): a rewrite must reproduce the exact bits.
pub trait SameValue {
    fn same(&self, other: &Self) -> bool;
}

macro_rules! same_by_eq {
    ($($t:ty),*) => { $(impl SameValue for $t { fn same(&self, other: &Self) -> bool { self == other } })* };
}
same_by_eq!(
    bool,
    i32,
    i64,
    parquet::data_type::Int96,
    parquet::data_type::ByteArray,
    parquet::data_type::FixedLenByteArray
);
impl SameValue for f32 {
    fn same(&self, other: &Self) -> bool {
        self.to_bits() == other.to_bits()
    }
}
impl SameValue for f64 {
    fn same(&self, other: &Self) -> bool {
        self.to_bits() == other.to_bits()
    }
}

/// Calls `$f::<T>(typed_reader, $args…)` for the physical type of `$reader`.
#[macro_export]
#[doc(hidden)]
macro_rules! with_typed_reader {
    ($reader:expr, $f:ident ( $($args:expr),* )) => {{
        use parquet::column::reader::ColumnReader as CR;
        use parquet::data_type as dt;
        match $reader {
            CR::BoolColumnReader(r) => $f::<dt::BoolType>(r, $($args),*),
            CR::Int32ColumnReader(r) => $f::<dt::Int32Type>(r, $($args),*),
            CR::Int64ColumnReader(r) => $f::<dt::Int64Type>(r, $($args),*),
            CR::Int96ColumnReader(r) => $f::<dt::Int96Type>(r, $($args),*),
            CR::FloatColumnReader(r) => $f::<dt::FloatType>(r, $($args),*),
            CR::DoubleColumnReader(r) => $f::<dt::DoubleType>(r, $($args),*),
            CR::ByteArrayColumnReader(r) => $f::<dt::ByteArrayType>(r, $($args),*),
            CR::FixedLenByteArrayColumnReader(r) => $f::<dt::FixedLenByteArrayType>(r, $($args),*),
        }
    }};
}

/// `other` as a reader of `T`'s physical type, or an error when it is of another type
/// (two files whose leaves disagree).
pub fn same_kind<T: DataType>(other: ColumnReader) -> Result<ColumnReaderImpl<T>> {
    T::get_column_reader(other).ok_or_else(|| {
        ParquetError::General(format!(
            "physical types differ: expected {}",
            T::get_physical_type()
        ))
    })
}

/// One batch of whole records of a leaf: levels (empty where the leaf has none) and its
/// non-null values.
pub struct Batch<V> {
    pub def: Vec<i16>,
    pub rep: Vec<i16>,
    pub values: Vec<V>,
    pub records: usize,
    pub levels: usize,
}

impl<V> Default for Batch<V> {
    fn default() -> Self {
        Self {
            def: Vec::new(),
            rep: Vec::new(),
            values: Vec::new(),
            records: 0,
            levels: 0,
        }
    }
}

/// Reads the next batch of up to `max` records (0 records: the chunk is done).
pub fn read_batch<T: DataType>(
    reader: &mut ColumnReaderImpl<T>,
    max: usize,
    batch: &mut Batch<T::T>,
) -> Result<()> {
    batch.def.clear();
    batch.rep.clear();
    batch.values.clear();
    let (records, values, levels) = reader.read_records(
        max,
        Some(&mut batch.def),
        Some(&mut batch.rep),
        &mut batch.values,
    )?;
    if values != batch.values.len() {
        return Err(ParquetError::General(
            "column reader returned fewer values than it counted".into(),
        ));
    }
    batch.records = records;
    batch.levels = levels;
    Ok(())
}

/// Walks the records of a batch: for each, its level range and value range.
pub struct Records<'a> {
    def: &'a [i16],
    rep: &'a [i16],
    max_def: i16,
    levels: usize,
    level: usize,
    value: usize,
}

impl<'a> Records<'a> {
    pub fn new<V>(batch: &'a Batch<V>, max_def: i16, max_rep: i16) -> Self {
        Self {
            def: if max_def > 0 { &batch.def } else { &[] },
            rep: if max_rep > 0 { &batch.rep } else { &[] },
            max_def,
            levels: batch.levels,
            level: 0,
            value: 0,
        }
    }
}

/// One record's span in a batch: levels `levels`, non-null values `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub levels: std::ops::Range<usize>,
    pub values: std::ops::Range<usize>,
}

impl Iterator for Records<'_> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        if self.level >= self.levels {
            return None;
        }
        let start = self.level;
        let mut end = start + 1;
        if !self.rep.is_empty() {
            while end < self.levels && self.rep.get(end).is_some_and(|r| *r != 0) {
                end += 1;
            }
        }
        let values = if self.def.is_empty() {
            end - start
        } else {
            self.def
                .get(start..end)
                .map_or(0, |d| d.iter().filter(|l| **l == self.max_def).count())
        };
        let span = Span {
            levels: start..end,
            values: self.value..self.value + values,
        };
        self.level = end;
        self.value += values;
        Some(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_on_repetition_level_zero_and_count_defined_values() {
        // Three records of a list<int> (max_def 3, max_rep 1): [1, 2], null list, [3].
        let batch = Batch::<i32> {
            def: vec![3, 3, 0, 3],
            rep: vec![0, 1, 0, 0],
            values: vec![1, 2, 3],
            records: 3,
            levels: 4,
        };
        let spans: Vec<Span> = Records::new(&batch, 3, 1).collect();
        assert_eq!(
            spans,
            [
                Span {
                    levels: 0..2,
                    values: 0..2
                },
                Span {
                    levels: 2..3,
                    values: 2..2
                },
                Span {
                    levels: 3..4,
                    values: 2..3
                },
            ]
        );
    }

    #[test]
    fn a_required_flat_leaf_is_one_value_per_record() {
        let batch = Batch::<i64> {
            values: vec![7, 8],
            records: 2,
            levels: 2,
            ..Batch::default()
        };
        let spans: Vec<Span> = Records::new(&batch, 0, 0).collect();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].values, 1..2);
    }

    #[test]
    fn floats_compare_by_bits() {
        assert!(f64::NAN.same(&f64::NAN));
        assert!(!0.0f64.same(&-0.0));
        assert!(!1.0f32.same(&2.0));
    }
}
