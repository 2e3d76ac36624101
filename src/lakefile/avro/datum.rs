//! Whole records decoded into values ([`Datum`]): for small Avro files read in full, such
//! as Apache Iceberg's manifest lists and manifests, whose every field matters. Data files
//! are never read this way (find and forget decode match columns only, in `decode`).
//!
//! The same guards as the rest of this module: every length is checked against the bytes
//! left, values nest at most [`MAX_DEPTH`] deep, the header and each block are at most
//! `max` bytes, and items that encode to nothing (`null`) count against `max` too, so a
//! file can never make this allocate more than a small multiple of `max` per block.

use super::AvroError;
use super::container::{Event, Framer};
use super::cursor::{Cursor, Stop};
use super::decode::blocks;
use super::schema::{MAX_DEPTH, NodeId, Schema, Type};

/// One decoded value. A union's value is its branch's value (a `null` branch: `Null`).
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    Null,
    Boolean(bool),
    /// `int` and `long`.
    Long(i64),
    Float(f32),
    Double(f64),
    Bytes(Vec<u8>),
    String(String),
    /// The fields, in the writer's order.
    Record(Vec<(String, Datum)>),
    Enum(String),
    Array(Vec<Datum>),
    Map(Vec<(String, Datum)>),
    Fixed(Vec<u8>),
}

impl Datum {
    /// A record's field by name (None: not a record, or no such field).
    pub fn field(&self, name: &str) -> Option<&Datum> {
        match self {
            Datum::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn as_long(&self) -> Option<i64> {
        match self {
            Datum::Long(v) => Some(*v),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Datum::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Datum::Bytes(b) | Datum::Fixed(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Datum]> {
        match self {
            Datum::Array(items) => Some(items),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }
}

/// A file read in full: its header's metadata (`avro.schema` and `avro.codec` included)
/// and every record.
#[derive(Debug, Clone)]
pub struct Records {
    pub metadata: Vec<(String, Vec<u8>)>,
    pub records: Vec<Datum>,
}

impl Records {
    /// A header metadata entry as text.
    pub fn metadata_text(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Reads a whole container file: header and block at most `max` bytes each (decompressed
/// too).
pub fn read_all(bytes: &[u8], max: usize) -> Result<Records, AvroError> {
    let mut framer = Framer::new(max);
    let mut records = Vec::new();
    let mut metadata = Vec::new();
    framer.push(bytes, &mut |event| {
        match event {
            Event::Header(header) => metadata = header_metadata(&header.bytes),
            Event::Block(header, block) => {
                let data = header.codec.decompress(block.data(), max, block.number)?;
                let mut budget = max;
                let mut c = Cursor::new(&data);
                for record in 1..=block.count {
                    let value = decode(&header.schema, header.schema.root, &mut c, 1, &mut budget)
                        .map_err(|stop| AvroError::CorruptRecord {
                            block: block.number,
                            record,
                            reason: match stop {
                                Stop::Bad(reason) => reason,
                                Stop::Short(_) => "it runs past the end of its block",
                            },
                        })?;
                    records.push(value);
                }
                if !c.is_empty() {
                    return Err(AvroError::CorruptBlock {
                        block: block.number,
                        reason: "it has bytes after its last record",
                    });
                }
            }
        }
        Ok(())
    })?;
    framer.finish()?;
    Ok(Records { metadata, records })
}

/// The header's metadata map, read again from its bytes (the framer checked them).
fn header_metadata(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut c = Cursor::at(bytes, 4);
    let mut out = Vec::new();
    while let Ok(count) = c.long() {
        if count == 0 {
            break;
        }
        if count < 0 && c.len().is_err() {
            break;
        }
        for _ in 0..count.unsigned_abs() {
            let (Ok(key), Ok(value)) = (c.bytes(), c.bytes()) else {
                return out;
            };
            out.push((String::from_utf8_lossy(key).into_owned(), value.to_vec()));
        }
    }
    out
}

fn decode(
    schema: &Schema,
    id: NodeId,
    c: &mut Cursor<'_>,
    depth: usize,
    budget: &mut usize,
) -> Result<Datum, Stop> {
    if depth > MAX_DEPTH {
        return Err(Stop::Bad("its values nest deeper than 100"));
    }
    // Every value costs at least one unit, so items that encode to nothing are bounded.
    *budget = budget.checked_sub(1).ok_or(Stop::Bad(
        "it holds more values than the block's size allows",
    ))?;
    let ty = &schema.node(id).ok_or(Stop::Bad("the schema is broken"))?.ty;
    Ok(match ty {
        Type::Null => Datum::Null,
        Type::Boolean => Datum::Boolean(c.boolean()?),
        Type::Int => Datum::Long(i64::from(c.int()?)),
        Type::Long => Datum::Long(c.long()?),
        Type::Float => Datum::Float(c.float()?),
        Type::Double => Datum::Double(c.double()?),
        Type::Bytes => Datum::Bytes(c.bytes()?.to_vec()),
        Type::String => Datum::String(
            std::str::from_utf8(c.bytes()?)
                .map_err(|_| Stop::Bad("a string is not UTF-8"))?
                .to_owned(),
        ),
        Type::Fixed { size } => Datum::Fixed(c.take(*size)?.to_vec()),
        Type::Enum { symbols } => {
            let index = usize::try_from(c.int()?).ok();
            let symbol = index.and_then(|i| symbols.get(i));
            Datum::Enum(
                symbol
                    .ok_or(Stop::Bad("an enum index is out of range"))?
                    .clone(),
            )
        }
        Type::Record { fields } => Datum::Record(
            fields
                .iter()
                .map(|f| Ok((f.name.clone(), decode(schema, f.ty, c, depth + 1, budget)?)))
                .collect::<Result<_, Stop>>()?,
        ),
        Type::Array(items) => {
            let mut out = Vec::new();
            blocks(c, false, |c| {
                out.push(decode(schema, *items, c, depth + 1, budget)?);
                Ok(())
            })?;
            Datum::Array(out)
        }
        Type::Map(values) => {
            let mut out = Vec::new();
            blocks(c, false, |c| {
                let key = std::str::from_utf8(c.bytes()?)
                    .map_err(|_| Stop::Bad("a map key is not UTF-8"))?
                    .to_owned();
                out.push((key, decode(schema, *values, c, depth + 1, budget)?));
                Ok(())
            })?;
            Datum::Map(out)
        }
        Type::Union(branches) => {
            let index = usize::try_from(c.long()?).ok();
            let chosen = index
                .and_then(|i| branches.get(i).copied())
                .ok_or(Stop::Bad("a union branch is out of range"))?;
            decode(schema, chosen, c, depth + 1, budget)?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container file written by fastavro (the interop tests' writer) of a nested record,
    /// read back whole, with a union, a map, an array and an enum; a truncated copy is an
    /// error, never fewer records.
    #[test]
    fn a_whole_file_reads_into_values_and_a_truncated_one_fails() {
        let schema = r#"{"type": "record", "name": "entry", "fields": [
            {"name": "status", "type": "int"},
            {"name": "snapshot_id", "type": ["null", "long"]},
            {"name": "data_file", "type": {"type": "record", "name": "data_file", "fields": [
                {"name": "file_path", "type": "string"},
                {"name": "content", "type": {"type": "enum", "name": "c", "symbols": ["DATA", "DELETES"]}},
                {"name": "bounds", "type": {"type": "map", "values": "bytes"}},
                {"name": "split_offsets", "type": ["null", {"type": "array", "items": "long"}]}
            ]}}
        ]}"#;
        let rows = r#"[
            {"status": 1, "snapshot_id": 7, "data_file": {"file_path": "s3://b/t/data/a.parquet", "content": "DATA", "bounds": {"1": "b64:AQ=="}, "split_offsets": [4, 100]}},
            {"status": 2, "snapshot_id": null, "data_file": {"file_path": "s3://b/t/data/b.parquet", "content": "DELETES", "bounds": {}, "split_offsets": null}}
        ]"#;
        let bytes = super::super::interop::fastavro_file(schema, rows, "deflate");
        let read = read_all(&bytes, 1 << 20).unwrap();
        assert_eq!(read.records.len(), 2);
        let first = &read.records[0];
        assert_eq!(first.field("status").and_then(Datum::as_long), Some(1));
        assert_eq!(first.field("snapshot_id").and_then(Datum::as_long), Some(7));
        let file = first.field("data_file").unwrap();
        assert_eq!(
            file.field("file_path").and_then(Datum::as_str),
            Some("s3://b/t/data/a.parquet")
        );
        assert_eq!(file.field("content"), Some(&Datum::Enum("DATA".into())));
        assert_eq!(
            file.field("bounds"),
            Some(&Datum::Map(vec![("1".into(), Datum::Bytes(vec![1]))]))
        );
        assert_eq!(
            file.field("split_offsets").and_then(Datum::as_array),
            Some(&[Datum::Long(4), Datum::Long(100)][..])
        );
        assert!(read.records[1].field("snapshot_id").unwrap().is_null());
        assert_eq!(read.metadata_text("avro.codec"), Some("deflate"));
        assert!(read.metadata_text("avro.schema").is_some());
        for cut in [bytes.len() - 1, bytes.len() / 2, 10] {
            assert!(read_all(&bytes[..cut], 1 << 20).is_err(), "cut at {cut}");
        }
    }

    /// Hostile bytes: every single-byte change of a file either reads or fails cleanly.
    #[test]
    fn no_byte_change_panics() {
        let schema = r#"{"type": "record", "name": "r", "fields": [
            {"name": "a", "type": {"type": "array", "items": "null"}},
            {"name": "m", "type": {"type": "map", "values": ["null", "string"]}}
        ]}"#;
        let rows = r#"[{"a": [null, null, null], "m": {"k": "v", "n": null}}]"#;
        let bytes = super::super::interop::fastavro_file(schema, rows, "null");
        for i in 0..bytes.len() {
            for b in [0u8, 0x7f, 0xff] {
                let mut bad = bytes.clone();
                bad[i] = b;
                let _ = read_all(&bad, 4096);
            }
        }
        assert!(read_all(&bytes, 4096).is_ok());
    }
}
