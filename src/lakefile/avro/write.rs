//! Writing whole container files from values ([`Datum`]): what an Apache Iceberg commit
//! writes (manifests, manifest lists), with the writer's schema, codec and metadata of the
//! file it follows, so a reader sees the same kind of file the table's writer made.
//!
//! Invariants: a value is encoded only when it fits its schema node exactly (an `int` in
//! range, a `fixed` of its size, an enum symbol the enum has, a record with the schema's
//! fields in order): anything else is an error, never a file a reader would misread; a
//! union's branch is the first that fits the value. Every file written reads back, with
//! [`super::datum::read_all`], as the values given.

use super::AvroError;
use super::codec::Codec;
use super::cursor::put_long;
use super::datum::Datum;
use super::schema::{MAX_DEPTH, NodeId, Schema, Type};

/// Records per block: manifests are small; blocks bound what a reader holds at once.
const BLOCK_RECORDS: usize = 4096;

/// Writes `records` as a container file whose header holds `metadata` as given (it must
/// name the schema, `avro.schema`; `avro.codec` names the codec, `null` when absent) and
/// the sync marker `sync`.
pub fn write_container(
    metadata: &[(String, Vec<u8>)],
    records: &[Datum],
    sync: [u8; 16],
) -> Result<Vec<u8>, AvroError> {
    let value = |key: &str| metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let schema = value("avro.schema")
        .ok_or_else(|| AvroError::Header("no avro.schema".into()))
        .and_then(|json| Schema::parse(json).map_err(AvroError::Schema))?;
    let codec = match value("avro.codec") {
        None => Codec::Null,
        Some(name) => Codec::of_name(name)
            .ok_or_else(|| AvroError::UnknownCodec(String::from_utf8_lossy(name).into_owned()))?,
    };
    let mut out = b"Obj\x01".to_vec();
    if !metadata.is_empty() {
        put_long(&mut out, metadata.len() as i64);
        for (key, value) in metadata {
            put_bytes(&mut out, key.as_bytes());
            put_bytes(&mut out, value);
        }
    }
    put_long(&mut out, 0);
    out.extend_from_slice(&sync);
    for (number, block) in records.chunks(BLOCK_RECORDS).enumerate() {
        let data = encode_records(&schema, block)
            .map_err(|reason| AvroError::Encode(format!("block {}: {reason}", number + 1)))?;
        let data = codec.compress(&data)?;
        put_long(&mut out, block.len() as i64);
        put_long(&mut out, data.len() as i64);
        out.extend_from_slice(&data);
        out.extend_from_slice(&sync);
    }
    Ok(out)
}

/// The binary encoding of `records` under the schema's top-level type, one after the
/// other (a block's data before compression).
pub(crate) fn encode_records(schema: &Schema, records: &[Datum]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for record in records {
        encode(schema, schema.root, record, &mut out, 1)?;
    }
    Ok(out)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

fn node_type(schema: &Schema, id: NodeId) -> Result<&Type, String> {
    schema
        .node(id)
        .map(|n| &n.ty)
        .ok_or_else(|| "the schema is broken".to_owned())
}

fn encode(
    schema: &Schema,
    id: NodeId,
    value: &Datum,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("values nest deeper than 100".into());
    }
    let ty = node_type(schema, id)?;
    match (ty, value) {
        (Type::Union(branches), _) => {
            let (index, branch) = branches
                .iter()
                .enumerate()
                .find(|(_, b)| fits(schema, **b, value))
                .ok_or_else(|| format!("no branch of a union takes {}", kind(value)))?;
            put_long(out, index as i64);
            encode(schema, *branch, value, out, depth + 1)?;
        }
        (Type::Record { fields }, Datum::Record(values)) => {
            if fields.len() != values.len() {
                return Err("a record's fields are not its schema's".into());
            }
            for (field, (name, value)) in fields.iter().zip(values) {
                if &field.name != name {
                    return Err(format!(
                        "field {name:?} is not the schema's {:?}",
                        field.name
                    ));
                }
                encode(schema, field.ty, value, out, depth + 1)?;
            }
        }
        (Type::Array(items), Datum::Array(values)) => {
            if !values.is_empty() {
                put_long(out, values.len() as i64);
                for v in values {
                    encode(schema, *items, v, out, depth + 1)?;
                }
            }
            put_long(out, 0);
        }
        (Type::Map(items), Datum::Map(entries)) => {
            if !entries.is_empty() {
                put_long(out, entries.len() as i64);
                for (key, v) in entries {
                    put_bytes(out, key.as_bytes());
                    encode(schema, *items, v, out, depth + 1)?;
                }
            }
            put_long(out, 0);
        }
        _ => scalar(ty, value, out)?,
    }
    Ok(())
}

/// A value of a type that holds no other value.
fn scalar(ty: &Type, value: &Datum, out: &mut Vec<u8>) -> Result<(), String> {
    match (ty, value) {
        (Type::Null, Datum::Null) => {}
        (Type::Boolean, Datum::Boolean(b)) => out.push(u8::from(*b)),
        (Type::Int, Datum::Long(v)) => {
            let v = i32::try_from(*v).map_err(|_| format!("{v} does not fit an int"))?;
            put_long(out, i64::from(v));
        }
        (Type::Long, Datum::Long(v)) => put_long(out, *v),
        (Type::Float, Datum::Float(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (Type::Double, Datum::Double(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (Type::Bytes, Datum::Bytes(b)) => put_bytes(out, b),
        (Type::String, Datum::String(s)) => put_bytes(out, s.as_bytes()),
        (Type::Fixed { size }, Datum::Fixed(b)) if b.len() as u64 == *size => {
            out.extend_from_slice(b);
        }
        (Type::Enum { symbols }, Datum::Enum(symbol)) => {
            let index = symbols
                .iter()
                .position(|s| s == symbol)
                .ok_or_else(|| format!("{symbol:?} is no symbol of its enum"))?;
            put_long(out, index as i64);
        }
        (_, value) => return Err(format!("{} does not fit its schema's type", kind(value))),
    }
    Ok(())
}

/// Whether `value` can be encoded as the type `id` (a union branch's test: its shape).
fn fits(schema: &Schema, id: NodeId, value: &Datum) -> bool {
    let Ok(ty) = node_type(schema, id) else {
        return false;
    };
    match (ty, value) {
        (Type::Null, Datum::Null)
        | (Type::Boolean, Datum::Boolean(_))
        | (Type::Long, Datum::Long(_))
        | (Type::Float, Datum::Float(_))
        | (Type::Double, Datum::Double(_))
        | (Type::Bytes, Datum::Bytes(_))
        | (Type::String, Datum::String(_))
        | (Type::Array(_), Datum::Array(_))
        | (Type::Map(_), Datum::Map(_)) => true,
        (Type::Int, Datum::Long(v)) => i32::try_from(*v).is_ok(),
        (Type::Fixed { size }, Datum::Fixed(b)) => b.len() as u64 == *size,
        (Type::Enum { symbols }, Datum::Enum(s)) => symbols.contains(s),
        (Type::Record { fields }, Datum::Record(values)) => {
            fields.len() == values.len()
                && fields
                    .iter()
                    .zip(values)
                    .all(|(f, (name, _))| &f.name == name)
        }
        _ => false,
    }
}

fn kind(value: &Datum) -> &'static str {
    match value {
        Datum::Null => "a null",
        Datum::Boolean(_) => "a boolean",
        Datum::Long(_) => "an integer",
        Datum::Float(_) | Datum::Double(_) => "a floating-point number",
        Datum::Bytes(_) | Datum::Fixed(_) => "bytes",
        Datum::String(_) => "a string",
        Datum::Record(_) => "a record",
        Datum::Enum(_) => "an enum symbol",
        Datum::Array(_) => "an array",
        Datum::Map(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::super::container::{Event, Framer};
    use super::super::datum::read_all;
    use super::*;
    use crate::lakefile::test_files::python;

    /// Writes a partitioned table with pyiceberg (a SQL catalog on SQLite, files in a
    /// folder: no AWS needed) with two appends and an overwrite, and prints its Avro files.
    const PYICEBERG: &str = r#"
import sys, json, glob, datetime
import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField, LongType, StringType, DateType
from pyiceberg.partitioning import PartitionSpec, PartitionField
from pyiceberg.transforms import IdentityTransform, DayTransform
from pyiceberg.expressions import EqualTo
d = sys.argv[1]
cat = SqlCatalog("t", uri=f"sqlite:///{d}/catalog.db", warehouse=f"file://{d}")
cat.create_namespace("db")
schema = Schema(NestedField(1, "id", LongType(), required=True), NestedField(2, "email", StringType()),
                NestedField(3, "day", DateType()))
spec = PartitionSpec(PartitionField(source_id=3, field_id=1000, transform=DayTransform(), name="day_day"))
t = cat.create_table("db.t", schema=schema, partition_spec=spec)
def rows(ids):
    return pa.table({"id": pa.array(ids, pa.int64()).cast(pa.int64()),
                     "email": [f"u{i}@example.com" if i % 3 else None for i in ids],
                     "day": [datetime.date(2026, 1, 1 + i % 4) for i in ids]},
                    schema=pa.schema([pa.field("id", pa.int64(), nullable=False), ("email", pa.string()), ("day", pa.date32())]))
t.append(rows(list(range(10))))
t.append(rows(list(range(10, 25))))
t.delete(EqualTo("id", 3))
print(json.dumps(sorted(glob.glob(f"{d}/**/metadata/*.avro", recursive=True))))
"#;

    /// The header's bytes and each block's decompressed data, as the file has them.
    fn framed(bytes: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>, Schema, [u8; 16]) {
        let mut framer = Framer::new(1 << 24);
        let (mut header, mut blocks, mut schema, mut sync) =
            (Vec::new(), Vec::new(), None, [0; 16]);
        framer
            .push(bytes, &mut |event| {
                match event {
                    Event::Header(h) => {
                        header = h.bytes.clone();
                        schema = Some(h.schema.clone());
                        sync = h.sync;
                    }
                    Event::Block(h, b) => blocks.push(
                        h.codec
                            .decompress(b.data(), 1 << 24, b.number)
                            .unwrap()
                            .into_owned(),
                    ),
                }
                Ok(())
            })
            .unwrap();
        (header, blocks, schema.unwrap(), sync)
    }

    /// Every manifest and manifest list pyiceberg writes is encoded again byte for byte
    /// from the values read (each block's records, before compression), and a file
    /// written with its header's metadata and sync marker has its header byte for byte
    /// and reads back as the same values.
    #[test]
    fn pyiceberg_manifests_encode_again_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(python())
            .arg("-c")
            .arg(PYICEBERG)
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let files: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            files.len() >= 6,
            "manifests and lists of three snapshots: {files:?}"
        );
        for file in &files {
            let bytes = std::fs::read(file).unwrap();
            let read = read_all(&bytes, 1 << 24).unwrap();
            let (header, blocks, schema, sync) = framed(&bytes);
            let mut at = 0;
            for block in &blocks {
                let n = (at + 1..=read.records.len())
                    .find(|&end| {
                        encode_records(&schema, &read.records[at..end])
                            .unwrap()
                            .len()
                            == block.len()
                    })
                    .expect("the block's records");
                assert_eq!(
                    &encode_records(&schema, &read.records[at..n]).unwrap(),
                    block,
                    "{file}"
                );
                at = n;
            }
            assert_eq!(at, read.records.len(), "{file}");
            let written = write_container(&read.metadata, &read.records, sync).unwrap();
            assert_eq!(framed(&written).0, header, "{file}");
            assert_eq!(
                read_all(&written, 1 << 24).unwrap().records,
                read.records,
                "{file}"
            );
        }
    }

    #[test]
    fn a_value_that_does_not_fit_its_schema_is_refused() {
        let schema = Schema::parse(
            br#"{"type": "record", "name": "r", "fields": [
                {"name": "a", "type": "int"}, {"name": "b", "type": ["null", "string"]}]}"#,
        )
        .unwrap();
        let record = |a: Datum, b: Datum| Datum::Record(vec![("a".into(), a), ("b".into(), b)]);
        assert!(encode_records(&schema, &[record(Datum::Long(1), Datum::Null)]).is_ok());
        assert_eq!(
            encode_records(
                &schema,
                &[record(Datum::Long(1), Datum::String("x".into()))]
            )
            .unwrap(),
            [2, 2, 2, b'x']
        );
        for bad in [
            record(Datum::Long(1 << 40), Datum::Null),
            record(Datum::String("1".into()), Datum::Null),
            record(Datum::Long(1), Datum::Long(2)),
            Datum::Record(vec![
                ("b".into(), Datum::Null),
                ("a".into(), Datum::Long(1)),
            ]),
        ] {
            assert!(
                encode_records(&schema, std::slice::from_ref(&bad)).is_err(),
                "{bad:?}"
            );
        }
    }
}
