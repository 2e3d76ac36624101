//! The metrics held against pyiceberg's for the files its own writer writes
//! (tests/fixtures/iceberg_metrics.py, in the corpus virtualenv: `LETHE_CORPUS_VENV`), and
//! the footers no writer at hand writes: missing, partial, deprecated or odd statistics.

use std::process::Command;
use std::sync::Arc;

use parquet::data_type::{ByteArray, FixedLenByteArray};
use parquet::file::metadata::{FileMetaData, ParquetMetaDataReader};
use parquet::file::statistics::ValueStatistics;
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::SchemaDescriptor;
use serde_json::{Value, json};

use super::bounds::*;
use super::*;
use crate::lakefile::test_files::python;

const SCRIPT: &str = include_str!("../../../../tests/fixtures/iceberg_metrics.py");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The metrics as pyiceberg's `DataFile` prints them (tests/fixtures/iceberg_metrics.py).
fn as_printed(m: &DataFileMetrics) -> Value {
    let ints = |map: &BTreeMap<i32, i64>| -> Value {
        map.iter().map(|(k, v)| (k.to_string(), json!(v))).collect()
    };
    let bytes = |map: &BTreeMap<i32, Vec<u8>>| -> Value {
        map.iter()
            .map(|(k, v)| (k.to_string(), json!(hex(v))))
            .collect()
    };
    json!({
        "record_count": m.record_count, "file_size_in_bytes": m.file_size_in_bytes,
        "column_sizes": ints(&m.column_sizes), "value_counts": ints(&m.value_counts),
        "null_value_counts": ints(&m.null_value_counts),
        "nan_value_counts": ints(&m.nan_value_counts),
        "lower_bounds": bytes(&m.lower_bounds), "upper_bounds": bytes(&m.upper_bounds),
        "split_offsets": m.split_offsets,
    })
}

#[test]
fn metrics_equal_pyicebergs_for_the_files_its_writer_wrote_under_every_mode() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(python())
        .arg("-c")
        .arg(SCRIPT)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyiceberg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let schema: IcebergSchema = serde_json::from_value(printed["schema"].clone()).unwrap();
    let files = printed["files"].as_object().unwrap();
    assert_eq!(files.len(), 6);
    for (variant, expected) in files {
        let bytes = bytes::Bytes::from(std::fs::read(expected["path"].as_str().unwrap()).unwrap());
        let footer = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .unwrap();
        let properties: BTreeMap<String, String> =
            serde_json::from_value(expected["properties"].clone()).unwrap();
        let ours = data_file_metrics(&footer, bytes.len() as u64, &schema, &properties).unwrap();
        let ours = as_printed(&ours);
        for (key, value) in ours.as_object().unwrap() {
            assert_eq!(value, &expected[key], "{variant}: {key}");
        }
    }
}

/// A footer over `message` with one row group per entry: each column's value count and
/// statistics (`None`: none written).
fn footer(message: &str, row_groups: Vec<Vec<(i64, Option<Statistics>)>>) -> ParquetMetaData {
    let descr = Arc::new(SchemaDescriptor::new(Arc::new(
        parse_message_type(message).unwrap(),
    )));
    let mut offset = 4;
    let mut built = Vec::new();
    for chunks in row_groups {
        let mut columns = Vec::new();
        for (i, (values, stats)) in chunks.into_iter().enumerate() {
            let mut chunk = ColumnChunkMetaData::builder(descr.column(i))
                .set_num_values(values)
                .set_total_compressed_size(10)
                .set_data_page_offset(offset);
            if let Some(stats) = stats {
                chunk = chunk.set_statistics(stats);
            }
            columns.push(chunk.build().unwrap());
            offset += 10;
        }
        let rows = columns[0].num_values();
        built.push(
            RowGroupMetaData::builder(descr.clone())
                .set_num_rows(rows)
                .set_column_metadata(columns)
                .build()
                .unwrap(),
        );
    }
    let rows = built.iter().map(RowGroupMetaData::num_rows).sum();
    ParquetMetaData::new(FileMetaData::new(2, rows, None, None, descr, None), built)
}

fn schema(fields: Value) -> IcebergSchema {
    serde_json::from_value(json!({"schema-id": 0, "type": "struct", "fields": fields})).unwrap()
}

fn stats_i32(min: Option<i32>, max: Option<i32>, nulls: u64) -> Option<Statistics> {
    Some(Statistics::int32(min, max, None, Some(nulls), false))
}

fn stats_i64(min: i64, max: i64) -> Option<Statistics> {
    Some(Statistics::int64(
        Some(min),
        Some(max),
        None,
        Some(0),
        false,
    ))
}

fn stats_text(min: Option<&str>, max: Option<&str>, deprecated: bool) -> Option<Statistics> {
    let (min, max) = (min.map(ByteArray::from), max.map(ByteArray::from));
    Some(Statistics::byte_array(min, max, None, Some(0), deprecated))
}

fn stats_f64(
    min: Option<f64>,
    max: Option<f64>,
    nulls: u64,
    nans: Option<u64>,
) -> Option<Statistics> {
    let stats = ValueStatistics::new(min, max, None, Some(nulls), false).with_nan_count(nans);
    Some(Statistics::Double(stats))
}

/// Two row groups (2 rows, then 1) whose statistics are each uncertain in their own way.
fn uncertain_footer() -> ParquetMetaData {
    let message = "message t {
        required int64 id = 1;
        optional int64 ts (TIMESTAMP(MILLIS,true)) = 2;
        optional int64 tsn (TIMESTAMP(NANOS,false)) = 3;
        optional fixed_len_byte_array(16) uid (UUID) = 4;
        optional binary legacy (STRING) = 5;
        optional int32 mistyped = 6;
        optional int32 noid;
        optional double d = 7;
        optional binary gap (STRING) = 8;
        optional int32 nostats = 9;
    }";
    let uuid15 = Some(FixedLenByteArray::from(vec![7u8; 15]));
    let uuid15 = Statistics::fixed_len_byte_array(uuid15.clone(), uuid15, None, Some(0), false);
    let first = vec![
        (2, stats_i64(5, 9)),
        (2, stats_i64(1_500, 2_000)),
        (2, stats_i64(-1_500, 2_001)),
        (2, Some(uuid15)),
        (2, stats_text(Some("a"), Some("é"), true)),
        (2, stats_i32(Some(1), Some(2), 0)),
        (2, stats_i32(Some(1), Some(2), 0)),
        (2, stats_f64(Some(f64::NAN), Some(1.0), 0, None)),
        (2, stats_text(Some("b"), Some("c"), false)),
        (2, stats_i32(Some(3), Some(4), 1)),
    ];
    let second = vec![
        (1, stats_i64(1, 1)),
        (1, stats_i64(1_000, 1_000)),
        (1, stats_i64(0, 0)),
        (1, None),
        (1, None),
        (1, stats_i32(None, None, 1)),
        (1, stats_i32(None, None, 1)),
        (1, stats_f64(None, None, 1, None)),
        (1, stats_text(None, None, false)),
        (1, None),
    ];
    footer(message, vec![first, second])
}

#[test]
fn uncertain_statistics_give_no_bound_and_never_panic() {
    let fields = json!([
        {"id": 1, "name": "id", "required": true, "type": "long"},
        {"id": 2, "name": "ts", "required": false, "type": "timestamptz"},
        {"id": 3, "name": "tsn", "required": false, "type": "timestamp"},
        {"id": 4, "name": "uid", "required": false, "type": "uuid"},
        {"id": 5, "name": "legacy", "required": false, "type": "string"},
        {"id": 6, "name": "mistyped", "required": false, "type": "string"},
        {"id": 7, "name": "d", "required": false, "type": "double"},
        {"id": 8, "name": "gap", "required": false, "type": "string"},
        {"id": 9, "name": "nostats", "required": false, "type": "int"},
        {"id": 10, "name": "noid", "required": false, "type": "int"}]);
    let m = data_file_metrics(&uncertain_footer(), 100, &schema(fields), &BTreeMap::new()).unwrap();
    assert_eq!(m.record_count, 3);
    assert_eq!(m.file_size_in_bytes, 100);
    assert_eq!(m.split_offsets, [4, 104]);
    let ids = |map: &BTreeMap<i32, Vec<u8>>| map.keys().copied().collect::<Vec<_>>();
    let sized: Vec<i32> = m.column_sizes.keys().copied().collect();
    assert_eq!(
        sized,
        (1..=9).collect::<Vec<_>>(),
        "the leaf without a field id has none"
    );
    assert_eq!(m.value_counts[&9], 3);
    assert_eq!(
        m.null_value_counts.get(&9),
        None,
        "a row group without statistics"
    );
    assert_eq!(m.null_value_counts.get(&4), None);
    assert_eq!(m.null_value_counts[&6], 1);
    assert!(
        m.nan_value_counts.is_empty(),
        "no NaN count in these footers"
    );
    // Bounds only where certain: ids; milliseconds to microseconds; nanoseconds rounded
    // outwards. Not: a uuid of 15 bytes, deprecated text statistics, an int column the
    // schema says is a string, a NaN, a row group with values but no min/max.
    let long = |v: i64| v.to_le_bytes().to_vec();
    assert_eq!(ids(&m.lower_bounds), [1, 2, 3]);
    assert_eq!(ids(&m.upper_bounds), [1, 2, 3]);
    assert_eq!(
        [&m.lower_bounds[&1], &m.upper_bounds[&1]],
        [&long(1), &long(9)]
    );
    assert_eq!(
        [&m.lower_bounds[&2], &m.upper_bounds[&2]],
        [&long(1_000_000), &long(2_000_000)]
    );
    assert_eq!(
        [&m.lower_bounds[&3], &m.upper_bounds[&3]],
        [&long(-2), &long(3)]
    );
}

#[test]
fn nan_counts_are_kept_only_when_every_row_group_has_one() {
    let message = "message t { optional double a = 1; optional double b = 2; }";
    let footer = footer(
        message,
        vec![
            vec![
                (3, stats_f64(Some(-1.0), Some(2.0), 0, Some(1))),
                (3, stats_f64(Some(0.0), Some(0.0), 0, Some(0))),
            ],
            // Only NaNs and nulls: no min/max, and the bounds stay those of the others.
            vec![
                (2, stats_f64(None, None, 1, Some(1))),
                (2, stats_f64(Some(-0.0), Some(5.0), 0, None)),
            ],
        ],
    );
    let fields = json!([
        {"id": 1, "name": "a", "required": false, "type": "double"},
        {"id": 2, "name": "b", "required": false, "type": "double"}]);
    let m = data_file_metrics(&footer, 1, &schema(fields), &BTreeMap::new()).unwrap();
    assert_eq!(m.nan_value_counts, BTreeMap::from([(1, 2)]));
    assert_eq!(m.lower_bounds[&1], (-1.0f64).to_le_bytes());
    assert_eq!(m.upper_bounds[&1], 2.0f64.to_le_bytes());
    assert_eq!(
        m.lower_bounds[&2],
        (-0.0f64).to_le_bytes(),
        "-0.0 is below 0.0"
    );
}

#[test]
fn metrics_modes_parse_as_icebergs_and_a_bad_one_is_refused() {
    assert_eq!(
        MetricsMode::parse(" Truncate(4) "),
        Ok(MetricsMode::Truncate(4))
    );
    assert_eq!(MetricsMode::parse("FULL"), Ok(MetricsMode::Full));
    assert_eq!(MetricsMode::parse("counts"), Ok(MetricsMode::Counts));
    assert_eq!(MetricsMode::parse("none"), Ok(MetricsMode::None));
    for bad in [
        "truncate(0)",
        "truncate()",
        "truncate(-1)",
        "truncate",
        "",
        "all",
    ] {
        assert!(MetricsMode::parse(bad).is_err(), "{bad}");
    }
    let footer = footer("message t { required int64 id = 1; }", vec![]);
    let s = schema(json!([{"id": 1, "name": "id", "required": true, "type": "long"}]));
    let bad = BTreeMap::from([(format!("{COLUMN_MODE_PREFIX}id"), "truncate(x)".to_owned())]);
    assert!(data_file_metrics(&footer, 0, &s, &bad).is_err());
    let empty = data_file_metrics(&footer, 0, &s, &BTreeMap::new()).unwrap();
    assert_eq!(
        empty,
        DataFileMetrics::default(),
        "no row group, no metrics"
    );
}

#[test]
fn truncated_upper_bounds_increment_the_last_code_point_or_byte_that_can_be() {
    assert_eq!(truncate_str_upper("abc", 2).as_deref(), Some("ac"));
    assert_eq!(truncate_str_upper("ab", 2).as_deref(), Some("ab"));
    assert_eq!(truncate_str_upper("ü€𝄞x", 3).as_deref(), Some("ü€𝄟"));
    // As Java: the code points after the incremented one go (pyiceberg keeps them,
    // "b\u{10FFFF}": both are upper bounds).
    assert_eq!(truncate_str_upper("a\u{10FFFF}bc", 2).as_deref(), Some("b"));
    assert_eq!(truncate_str_upper("\u{10FFFF}\u{10FFFF}x", 2), None);
    assert_eq!(
        truncate_str_upper("\u{D7FF}x", 1).as_deref(),
        Some("\u{E000}")
    );
    assert_eq!(truncate_bytes_upper(&[1, 0xff, 3], 2), Some(vec![2]));
    assert_eq!(truncate_bytes_upper(&[0xff, 0xff, 1], 2), None);
    assert_eq!(truncate_bytes_upper(&[1, 2], 2), Some(vec![1, 2]));
    let lower = serialize(
        Primitive::String,
        &Stat::Bytes("ü€𝄞x".into()),
        Some(2),
        false,
    );
    assert_eq!(lower, Some("ü€".as_bytes().to_vec()));
    let invalid = serialize(Primitive::String, &Stat::Bytes(vec![0xff]), None, false);
    assert_eq!(invalid, None, "a string bound that is not UTF-8");
}

#[test]
fn decimals_serialize_to_their_shortest_twos_complement() {
    let cases: [(i128, &[u8]); 8] = [
        (0, &[0]),
        (-1, &[0xff]),
        (127, &[0x7f]),
        (128, &[0, 0x80]),
        (-128, &[0x80]),
        (-129, &[0xff, 0x7f]),
        (1234, &[0x04, 0xd2]),
        (-99999, &[0xfe, 0x79, 0x61]),
    ];
    for (v, bytes) in cases {
        assert_eq!(minimal_be(v), bytes, "{v}");
    }
    assert_eq!(minimal_be(i128::MIN).len(), 16);
    let padded = unscaled(Stat::Bytes(vec![0xff, 0xff, 0xfe, 0x79, 0x61])).unwrap();
    assert_eq!(padded, Stat::Int(-99999));
    assert_eq!(unscaled(Stat::Bytes(vec![0; 17])), None);
    assert_eq!(unscaled(Stat::Bytes(vec![])), None);
}
