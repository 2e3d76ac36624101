//! Test helper: Parquet files built with the parquet crate's low-level writer, for what no
//! Arrow-based writer makes (legacy converted types, unannotated repeated fields, INT96,
//! fixed-length decimals of any width, deprecated statistics).

use std::sync::Arc;

use bytes::Bytes;
use parquet::column::writer::ColumnWriter;
use parquet::data_type::{ByteArray, FixedLenByteArray, Int96};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// The values of one leaf in one row group.
#[derive(Debug, Clone)]
pub enum Values {
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    I96(Vec<Int96>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bytes(Vec<ByteArray>),
    Fixed(Vec<FixedLenByteArray>),
}

/// A leaf's values with its levels (None where the leaf has none).
#[derive(Debug, Clone)]
pub struct Leaf {
    pub values: Values,
    pub def: Option<Vec<i16>>,
    pub rep: Option<Vec<i16>>,
}

impl Leaf {
    pub fn required(values: Values) -> Self {
        Self {
            values,
            def: None,
            rep: None,
        }
    }
    pub fn optional(values: Values, def: Vec<i16>) -> Self {
        Self {
            values,
            def: Some(def),
            rep: None,
        }
    }
    pub fn repeated(values: Values, def: Vec<i16>, rep: Vec<i16>) -> Self {
        Self {
            values,
            def: Some(def),
            rep: Some(rep),
        }
    }
}

pub fn text(values: &[&str]) -> Values {
    Values::Bytes(values.iter().map(|s| ByteArray::from(*s)).collect())
}

/// Writes `row_groups` (each a leaf list in schema order) under the message type `schema`.
pub fn write(schema: &str, row_groups: &[Vec<Leaf>], props: WriterProperties) -> Bytes {
    let schema = Arc::new(parse_message_type(schema).expect("schema"));
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, Arc::new(props)).unwrap();
    for leaves in row_groups {
        let mut rg = writer.next_row_group().unwrap();
        for leaf in leaves {
            let mut col = rg.next_column().unwrap().expect("a leaf per column");
            let (def, rep) = (leaf.def.as_deref(), leaf.rep.as_deref());
            match (col.untyped(), &leaf.values) {
                (ColumnWriter::BoolColumnWriter(w), Values::Bool(v)) => w.write_batch(v, def, rep),
                (ColumnWriter::Int32ColumnWriter(w), Values::I32(v)) => w.write_batch(v, def, rep),
                (ColumnWriter::Int64ColumnWriter(w), Values::I64(v)) => w.write_batch(v, def, rep),
                (ColumnWriter::Int96ColumnWriter(w), Values::I96(v)) => w.write_batch(v, def, rep),
                (ColumnWriter::FloatColumnWriter(w), Values::F32(v)) => w.write_batch(v, def, rep),
                (ColumnWriter::DoubleColumnWriter(w), Values::F64(v)) => w.write_batch(v, def, rep),
                (ColumnWriter::ByteArrayColumnWriter(w), Values::Bytes(v)) => {
                    w.write_batch(v, def, rep)
                }
                (ColumnWriter::FixedLenByteArrayColumnWriter(w), Values::Fixed(v)) => {
                    w.write_batch(v, def, rep)
                }
                _ => panic!("values do not fit the leaf's physical type"),
            }
            .unwrap();
            col.close().unwrap();
        }
        rg.close().unwrap();
    }
    writer.close().unwrap();
    Bytes::from(out)
}

/// A big-endian two's-complement unscaled decimal of `width` bytes.
pub fn fixed_decimal(unscaled: i128, width: usize) -> FixedLenByteArray {
    let bytes = unscaled.to_be_bytes();
    FixedLenByteArray::from(bytes[16 - width..].to_vec())
}

/// An INT96 timestamp (Spark, Impala): nanoseconds of the day and the Julian day.
pub fn int96(nanos_of_day: u64, julian_day: u32) -> Int96 {
    let mut v = Int96::new();
    v.set_data(nanos_of_day as u32, (nanos_of_day >> 32) as u32, julian_day);
    v
}
