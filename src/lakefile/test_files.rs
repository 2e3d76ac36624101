//! Test helper: Parquet files built with the parquet crate's low-level writer, for what no
//! Arrow-based writer makes (legacy converted types, unannotated repeated fields, INT96,
//! fixed-length decimals of any width, deprecated statistics).

use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{ConvertedType, Repetition, Type as Physical};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::{ByteArray, FixedLenByteArray, Int96};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::{Type, TypePtr};

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
    write_schema(
        Arc::new(parse_message_type(schema).expect("schema")),
        row_groups,
        props,
    )
}

/// [`write`] with a schema built by hand (converted types without logical types).
pub fn write_schema(schema: TypePtr, row_groups: &[Vec<Leaf>], props: WriterProperties) -> Bytes {
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

/// `file` with its footer's row counts replaced: `file_rows` for the file and
/// `group_rows[i]` for row group `i` (a footer no honest writer makes, but some do).
pub fn with_row_counts(file: &Bytes, file_rows: i64, group_rows: &[i64]) -> Bytes {
    use parquet::file::metadata::{
        FileMetaData, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter,
    };
    let meta = ParquetMetaDataReader::new().parse_and_finish(file).unwrap();
    let footer = u32::from_le_bytes(file[file.len() - 8..file.len() - 4].try_into().unwrap());
    let data_end = file.len() - 8 - footer as usize;
    let f = meta.file_metadata();
    let file_meta = FileMetaData::new(
        f.version(),
        file_rows,
        f.created_by().map(str::to_owned),
        f.key_value_metadata().cloned(),
        f.schema_descr_ptr(),
        f.column_orders().cloned(),
    );
    let groups = meta
        .row_groups()
        .iter()
        .zip(group_rows)
        .map(|(g, rows)| {
            g.clone()
                .into_builder()
                .set_num_rows(*rows)
                .build()
                .unwrap()
        })
        .collect();
    let patched = ParquetMetaData::new(file_meta, groups);
    let mut out = file[..data_end].to_vec();
    ParquetMetaDataWriter::new(&mut out, &patched)
        .finish()
        .unwrap();
    // The writer counts the file's rows from its row groups: a different file count is
    // patched into the Thrift bytes (FileMetaData's field 3, the first i64 field header
    // of the footer, since schema elements have none), keeping the varint's length.
    let sum: i64 = group_rows.iter().sum();
    if file_rows != sum {
        let zigzag = |v: i64| ((v << 1) ^ (v >> 63)) as u8;
        assert!(
            zigzag(sum) < 0x80 && zigzag(file_rows) < 0x80,
            "one-byte varints only"
        );
        let at = (data_end..out.len() - 1)
            .find(|&i| out[i] == 0x16 && out[i + 1] == zigzag(sum))
            .expect("FileMetaData.num_rows");
        out[at + 1] = zigzag(file_rows);
    }
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

/// A leaf with only a legacy converted type (no logical type), as parquet-mr, Hive and
/// Impala write them.
pub fn legacy_leaf(
    name: &str,
    physical: Physical,
    repetition: Repetition,
    converted: ConvertedType,
    (length, precision, scale): (i32, i32, i32),
) -> TypePtr {
    let mut b = Type::primitive_type_builder(name, physical)
        .with_repetition(repetition)
        .with_converted_type(converted);
    if length > 0 {
        b = b.with_length(length);
    }
    if converted == ConvertedType::DECIMAL {
        b = b.with_precision(precision).with_scale(scale);
    }
    Arc::new(b.build().expect("legacy leaf"))
}

/// A group of `fields`.
pub fn group(
    name: &str,
    repetition: Option<Repetition>,
    converted: ConvertedType,
    fields: Vec<TypePtr>,
) -> TypePtr {
    let mut b = Type::group_type_builder(name)
        .with_converted_type(converted)
        .with_fields(fields);
    if let Some(r) = repetition {
        b = b.with_repetition(r);
    }
    Arc::new(b.build().expect("group"))
}

/// One erasure to try on a built file: the match column, the ids (as queued) and how many
/// rows they match by construction.
pub struct Erasure {
    pub column: &'static str,
    pub ids: Vec<serde_json::Value>,
    pub expected: u64,
}

/// What parquet-mr, Hive and Impala write that Arrow writers do not: decimals with only the
/// converted type in INT32 / INT64 / BYTE_ARRAY / FIXED_LEN_BYTE_ARRAY(11), UTF8 and
/// UINT_32 converted types, INT96, a legacy 2-level list and an unannotated repeated
/// field. 3 row groups of 4 rows (ids 0..12). `with_key_only_map` adds a MAP whose entries
/// have no value field.
pub fn legacy_parquet_mr(with_key_only_map: bool) -> (Bytes, Vec<Erasure>) {
    use ConvertedType as C;
    const OPTIONAL: Repetition = Repetition::OPTIONAL;
    const REPEATED: Repetition = Repetition::REPEATED;
    const REQUIRED: Repetition = Repetition::REQUIRED;
    let mut fields = vec![
        legacy_leaf("id", Physical::INT64, REQUIRED, C::NONE, (0, 0, 0)),
        legacy_leaf("d9", Physical::INT32, OPTIONAL, C::DECIMAL, (0, 9, 2)),
        legacy_leaf("d18", Physical::INT64, OPTIONAL, C::DECIMAL, (0, 18, 4)),
        legacy_leaf(
            "dbin",
            Physical::BYTE_ARRAY,
            OPTIONAL,
            C::DECIMAL,
            (0, 30, 3),
        ),
        legacy_leaf(
            "dfix",
            Physical::FIXED_LEN_BYTE_ARRAY,
            OPTIONAL,
            C::DECIMAL,
            (11, 25, 2),
        ),
        legacy_leaf("name", Physical::BYTE_ARRAY, OPTIONAL, C::UTF8, (0, 0, 0)),
        legacy_leaf("ts", Physical::INT96, OPTIONAL, C::NONE, (0, 0, 0)),
        legacy_leaf("u32", Physical::INT32, OPTIONAL, C::UINT_32, (0, 0, 0)),
        group(
            "tags",
            Some(OPTIONAL),
            C::LIST,
            vec![legacy_leaf(
                "array",
                Physical::BYTE_ARRAY,
                REPEATED,
                C::UTF8,
                (0, 0, 0),
            )],
        ),
        legacy_leaf("scores", Physical::INT32, REPEATED, C::NONE, (0, 0, 0)),
    ];
    if with_key_only_map {
        let entry = group(
            "map",
            Some(REPEATED),
            C::MAP_KEY_VALUE,
            vec![legacy_leaf(
                "key",
                Physical::BYTE_ARRAY,
                REQUIRED,
                C::UTF8,
                (0, 0, 0),
            )],
        );
        fields.push(group("m", Some(OPTIONAL), C::MAP, vec![entry]));
    }
    let schema = group("hive_schema", None, C::NONE, fields);
    let groups: Vec<Vec<Leaf>> = (0..3)
        .map(|g| legacy_group(g * 4, with_key_only_map))
        .collect();
    let file = write_schema(schema, &groups, WriterProperties::default());
    let erasures = vec![
        Erasure {
            column: "id",
            ids: vec![serde_json::json!(5)],
            expected: 1,
        },
        Erasure {
            column: "d9",
            ids: vec![serde_json::json!(7.05)],
            expected: 1,
        },
        Erasure {
            column: "d18",
            ids: vec![serde_json::json!(9.9997)],
            expected: 1,
        },
        Erasure {
            column: "dbin",
            ids: vec![serde_json::json!(3.001)],
            expected: 1,
        },
        Erasure {
            column: "dfix",
            ids: vec![serde_json::json!(6.88)],
            expected: 1,
        },
        Erasure {
            column: "name",
            ids: vec![serde_json::json!("name8")],
            expected: 1,
        },
        Erasure {
            column: "u32",
            ids: vec![serde_json::json!(u64::from(u32::MAX) - 2)],
            expected: 1,
        },
    ];
    (file, erasures)
}

/// Rows `first..first + 4` of [`legacy_parquet_mr`]; row i's nullable leaves are null
/// when i % 5 == 4.
fn legacy_group(first: i64, with_key_only_map: bool) -> Vec<Leaf> {
    let rows: Vec<i64> = (first..first + 4).collect();
    let present: Vec<i64> = rows.iter().copied().filter(|i| i % 5 != 4).collect();
    let def: Vec<i16> = rows.iter().map(|i| i16::from(i % 5 != 4)).collect();
    let opt = |values: Values| Leaf::optional(values, def.clone());
    let minimal = |v: i128| {
        let b = v.to_be_bytes();
        let skip = b.iter().take(15).take_while(|x| **x == 0).count();
        ByteArray::from(b[skip..].to_vec())
    };
    let (mut tag_def, mut tag_rep, mut tags) = (Vec::new(), Vec::new(), Vec::new());
    let (mut score_def, mut score_rep, mut scores) = (Vec::new(), Vec::new(), Vec::new());
    for &i in &rows {
        let n = (i % 3) as usize;
        if n == 0 {
            tag_def.push(1);
            tag_rep.push(0);
        }
        for k in 0..n {
            tag_def.push(2);
            tag_rep.push(i16::from(k > 0));
            tags.push(ByteArray::from(
                format!("tag{}", (i + k as i64) % 4).as_str(),
            ));
        }
        if i % 2 == 0 {
            score_def.extend([1, 1]);
            score_rep.extend([0, 1]);
            scores.extend([i as i32, i as i32 * 2]);
        } else {
            score_def.push(0);
            score_rep.push(0);
        }
    }
    let mut leaves = vec![
        Leaf::required(Values::I64(rows.clone())),
        opt(Values::I32(
            present.iter().map(|i| (i * 100 + 5) as i32).collect(),
        )),
        opt(Values::I64(present.iter().map(|i| i * 10000 - 3).collect())),
        opt(Values::Bytes(
            present
                .iter()
                .map(|i| minimal(i128::from(*i) * 1000 + 1))
                .collect(),
        )),
        opt(Values::Fixed(
            present
                .iter()
                .map(|i| fixed_decimal(i128::from(*i) * 123 - 50, 11))
                .collect(),
        )),
        opt(Values::Bytes(
            present
                .iter()
                .map(|i| ByteArray::from(format!("name{i}").as_str()))
                .collect(),
        )),
        opt(Values::I96(
            present
                .iter()
                .map(|i| int96(*i as u64 * 1_000_000_000, 2_460_000))
                .collect(),
        )),
        opt(Values::I32(
            present
                .iter()
                .map(|i| (u32::MAX - *i as u32) as i32)
                .collect(),
        )),
        Leaf::repeated(Values::Bytes(tags), tag_def, tag_rep),
        Leaf::repeated(Values::I32(scores), score_def, score_rep),
    ];
    if with_key_only_map {
        let keys = rows
            .iter()
            .map(|i| ByteArray::from(format!("k{i}").as_str()))
            .collect();
        leaves.push(Leaf::repeated(
            Values::Bytes(keys),
            vec![2; rows.len()],
            vec![0; rows.len()],
        ));
    }
    leaves
}

/// The corpus virtualenv's interpreter (`LETHE_CORPUS_VENV`, made by `scripts/test`):
/// the real writers (pandas, fastavro, …) the format tests write their files with.
pub fn python() -> std::path::PathBuf {
    let venv = std::env::var_os("LETHE_CORPUS_VENV").map_or_else(
        || std::path::PathBuf::from("/var/tmp/lethe/corpus-venv"),
        std::path::PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test (its make_corpus step makes the virtualenv)",
        python.display()
    );
    python
}
