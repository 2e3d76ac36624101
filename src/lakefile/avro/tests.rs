//! Container files built by hand, byte by byte, for what a writer never makes: every
//! codec and block layout, typed match columns, hostile and truncated bytes; and a
//! property test that forget then check round-trips.

use std::io::Write;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::cursor::put_long;
use super::*;
use crate::lakefile::match_set::MatchSet;

const SYNC: [u8; 16] = *b"0123456789abcdef";
const MAX: usize = 1 << 20;
const CODECS: [Codec; 6] = [
    Codec::Null,
    Codec::Deflate,
    Codec::Snappy,
    Codec::Zstandard,
    Codec::Bzip2,
    Codec::Xz,
];

fn long(v: i64) -> Vec<u8> {
    let mut out = Vec::new();
    put_long(&mut out, v);
    out
}

fn string(s: &[u8]) -> Vec<u8> {
    let mut out = long(s.len() as i64);
    out.extend_from_slice(s);
    out
}

fn header(schema: &Value, codec: Codec, meta: &[(&str, &[u8])]) -> Vec<u8> {
    let schema = schema.to_string();
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("avro.schema", schema.as_bytes()),
        ("avro.codec", codec.name().as_bytes()),
    ];
    entries.extend_from_slice(meta);
    let mut out = b"Obj\x01".to_vec();
    out.extend(long(entries.len() as i64));
    for (key, value) in entries {
        out.extend(string(key.as_bytes()));
        out.extend(string(value));
    }
    out.extend(long(0));
    out.extend(SYNC);
    out
}

fn block(records: &[Vec<u8>], codec: Codec) -> Vec<u8> {
    let data = codec.compress(&records.concat()).unwrap();
    let mut out = long(records.len() as i64);
    out.extend(long(data.len() as i64));
    out.extend(data);
    out.extend(SYNC);
    out
}

fn file(schema: &Value, codec: Codec, blocks: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let mut out = header(schema, codec, &[("owner", b"team")]);
    for records in blocks {
        out.extend(block(records, codec));
    }
    out
}

fn cols(c: &[&str]) -> Vec<String> {
    c.iter().map(|s| s.to_string()).collect()
}

/// A row of the test schema.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    email: Option<String>,
    phone: String,
    cents: i64,
    tags: Vec<String>,
}

fn rows_schema() -> Value {
    json!({"type": "record", "name": "Row", "namespace": "t", "fields": [
        {"name": "id", "type": "long"},
        {"name": "email", "type": ["null", "string"]},
        {"name": "contact", "type": {"type": "record", "name": "Contact", "fields": [
            {"name": "phone", "type": "string"}]}},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}},
        {"name": "tags", "type": {"type": "array", "items": "string"}}]})
}

/// The shortest two's complement bytes of `v`.
fn twos(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = (0..7)
        .take_while(|i| {
            let (lead, next) = (bytes[*i], bytes[i + 1]);
            (lead == 0 && next & 0x80 == 0) || (lead == 0xff && next & 0x80 != 0)
        })
        .count();
    bytes[skip..].to_vec()
}

fn encode(row: &Row) -> Vec<u8> {
    let mut out = long(row.id);
    match &row.email {
        None => out.extend(long(0)),
        Some(email) => {
            out.extend(long(1));
            out.extend(string(email.as_bytes()));
        }
    }
    out.extend(string(row.phone.as_bytes()));
    out.extend(string(&twos(row.cents)));
    if !row.tags.is_empty() {
        out.extend(long(row.tags.len() as i64));
        for tag in &row.tags {
            out.extend(string(tag.as_bytes()));
        }
    }
    out.extend(long(0));
    out
}

fn row(id: i64, email: Option<&str>) -> Row {
    Row {
        id,
        email: email.map(str::to_owned),
        phone: format!("555-{id:04}"),
        cents: id * 101 - 500,
        tags: (0..id % 3).map(|t| format!("t{t}")).collect(),
    }
}

/// Three blocks: one without a match, one with a match among others, one all matches.
fn three_blocks() -> Vec<Vec<Row>> {
    vec![
        vec![row(1, Some("a@x")), row(2, None)],
        vec![row(3, Some("jane@x")), row(4, Some("b@x")), row(5, None)],
        vec![row(6, Some("jane@x")), row(7, Some("c@x"))],
    ]
}

fn encoded(blocks: &[Vec<Row>]) -> Vec<Vec<Vec<u8>>> {
    blocks
        .iter()
        .map(|b| b.iter().map(encode).collect())
        .collect()
}

fn scan(
    bytes: &[u8],
    columns: &[String],
    ids: &MatchSet,
    chunk: usize,
) -> Result<Found, AvroError> {
    let mut scanner = Scanner::new(columns, ids, MAX);
    for part in bytes.chunks(chunk.max(1)) {
        scanner.feed(part)?;
    }
    scanner.finish()
}

#[test]
fn the_scanner_counts_matches_whatever_the_chunks() {
    let ids = MatchSet::from_values(&[json!("jane@x"), json!(4), json!(99)]);
    let columns = cols(&["email", "ID"]);
    for codec in CODECS {
        let bytes = file(&rows_schema(), codec, &encoded(&three_blocks()));
        let whole = scan(&bytes, &columns, &ids, bytes.len()).unwrap();
        assert_eq!(
            (whole.records_total, whole.records_matched),
            (7, 3),
            "{codec:?}"
        );
        assert_eq!(whole.rows_by_match, [(0, 2), (1, 1)].into());
        for chunk in [1, 2, 7, 64, 333] {
            assert_eq!(
                scan(&bytes, &columns, &ids, chunk).unwrap(),
                whole,
                "{codec:?} {chunk}"
            );
        }
    }
}

#[test]
fn the_scanner_holds_at_most_the_header_or_one_block() {
    let rows: Vec<Vec<Row>> = (0..20)
        .map(|b| (0..30).map(|i| row(b * 30 + i, Some("x@y"))).collect())
        .collect();
    let bytes = file(&rows_schema(), Codec::Null, &encoded(&rows));
    let largest = 30 * rows[0].iter().map(|r| encode(r).len()).max().unwrap();
    let (columns, ids) = (cols(&["id"]), MatchSet::from_values(&[json!(7)]));
    let max = largest + 64;
    let mut scanner = Scanner::new(&columns, &ids, max);
    for part in bytes.chunks(1000) {
        scanner.write_all(part).unwrap();
        assert!(
            scanner.buffered() <= max + 16 + 20,
            "{}",
            scanner.buffered()
        );
    }
    assert_eq!(scanner.finish().unwrap().records_matched, 1);
    // A cap below the first block (above the header) is an error naming it.
    let head = header(&rows_schema(), Codec::Null, &[("owner", b"team")]).len();
    assert!(head + 16 < largest);
    let mut small = Scanner::new(&columns, &ids, head + 16);
    let err = bytes
        .chunks(100)
        .try_for_each(|c| small.write_all(c))
        .unwrap_err();
    assert!(matches!(
        AvroError::from_io(err),
        AvroError::BlockTooLarge { block: 1, .. }
    ));
    assert!(matches!(small.feed(b"x"), Err(AvroError::Failed)));
}

#[test]
fn forget_copies_blocks_without_matches_and_rewrites_the_others() {
    let ids = MatchSet::from_values(&[json!("jane@x")]);
    let columns = cols(&["email"]);
    for codec in CODECS {
        let blocks = encoded(&three_blocks());
        let source = file(&rows_schema(), codec, &blocks);
        let mut out = Vec::new();
        let report = forget(&source[..], &mut out, &columns, &ids, false, MAX).unwrap();
        let want = Forgot {
            records_before: 7,
            records_removed: 2,
            blocks_before: 3,
            blocks_rewritten: 2,
            blocks_copied: 1,
            blocks_dropped: 0,
        };
        assert_eq!(report, want, "{codec:?}");
        // The header and block 1 as they were, block 2 without its first record, block 3
        // with its one kept record.
        let expected = file(
            &rows_schema(),
            codec,
            &[
                blocks[0].clone(),
                blocks[1][1..].to_vec(),
                blocks[2][1..].to_vec(),
            ],
        );
        assert_eq!(out, expected, "{codec:?}");
        let first = header(&rows_schema(), codec, &[("owner", b"team")]).len();
        let untouched = block(&blocks[0], codec);
        assert_eq!(
            out[first..first + untouched.len()],
            source[first..first + untouched.len()]
        );
        let expected = Expected {
            records_before: 7,
            records_removed: 2,
            every_row: false,
        };
        check(&source[..], &out[..], &columns, &ids, expected, MAX).unwrap();
    }
}

#[test]
fn a_block_whose_every_record_matches_is_dropped_and_every_row_leaves_the_header() {
    let ids = MatchSet::from_values(&[json!(6), json!(7)]);
    let columns = cols(&["id"]);
    let blocks = encoded(&three_blocks());
    let source = file(&rows_schema(), Codec::Deflate, &blocks);
    let mut out = Vec::new();
    let report = forget(&source[..], &mut out, &columns, &ids, false, MAX).unwrap();
    assert_eq!((report.blocks_dropped, report.blocks_copied), (1, 2));
    assert_eq!(out, file(&rows_schema(), Codec::Deflate, &blocks[..2]));
    let expected = Expected {
        records_before: 7,
        records_removed: 2,
        every_row: false,
    };
    check(&source[..], &out[..], &columns, &ids, expected, MAX).unwrap();
    // Every row: the header alone, whatever the columns.
    let mut all = Vec::new();
    let report = forget(&source[..], &mut all, &cols(&["nope"]), &ids, true, MAX).unwrap();
    assert_eq!((report.records_removed, report.blocks_dropped), (7, 3));
    assert_eq!(
        all,
        header(&rows_schema(), Codec::Deflate, &[("owner", b"team")])
    );
    let every = Expected {
        records_before: 7,
        records_removed: 7,
        every_row: true,
    };
    check(&source[..], &all[..], &cols(&["nope"]), &ids, every, MAX).unwrap();
    let not_every = Expected {
        every_row: false,
        ..every
    };
    assert!(check(&source[..], &all[..], &columns, &ids, not_every, MAX).is_err());
}

/// Blocks of `three_blocks` with codec snappy: the source, and its rewrite without the
/// records of `jane@x`.
fn jane() -> (Vec<Vec<Vec<u8>>>, Vec<u8>, Vec<u8>) {
    let blocks = encoded(&three_blocks());
    let source = file(&rows_schema(), Codec::Snappy, &blocks);
    let good = file(
        &rows_schema(),
        Codec::Snappy,
        &[
            blocks[0].clone(),
            blocks[1][1..].to_vec(),
            blocks[2][1..].to_vec(),
        ],
    );
    (blocks, source, good)
}

const JANE: Expected = Expected {
    records_before: 7,
    records_removed: 2,
    every_row: false,
};

fn check_jane(source: &[u8], rewrite: &[u8], expected: Expected) -> Result<(), AvroError> {
    let ids = MatchSet::from_values(&[json!("jane@x")]);
    check(source, rewrite, &cols(&["email"]), &ids, expected, MAX)
}

#[test]
fn check_refuses_a_rewrite_that_keeps_a_match_or_loses_a_kept_record() {
    let (blocks, source, good) = jane();
    check_jane(&source, &good, JANE).unwrap();
    // The source itself: its matching record is still there.
    let err = check_jane(&source, &source, JANE).unwrap_err();
    assert!(
        matches!(
            err,
            AvroError::RecordDiffers {
                block: 2,
                record: 2
            }
        ),
        "{err}"
    );
    // A kept record missing.
    let short = file(
        &rows_schema(),
        Codec::Snappy,
        &[
            blocks[0].clone(),
            blocks[1][2..].to_vec(),
            blocks[2][1..].to_vec(),
        ],
    );
    let err = check_jane(&source, &short, JANE).unwrap_err();
    assert!(
        matches!(
            err,
            AvroError::RecordDiffers {
                block: 2,
                record: 2
            }
        ),
        "{err}"
    );
    // A matching record kept after the kept ones.
    let extra = file(
        &rows_schema(),
        Codec::Snappy,
        &[
            blocks[0].clone(),
            blocks[1][1..].to_vec(),
            blocks[2].clone(),
        ],
    );
    let err = check_jane(&source, &extra, JANE).unwrap_err();
    assert!(
        matches!(
            err,
            AvroError::RecordDiffers {
                block: 3,
                record: 2
            }
        ),
        "{err}"
    );
    let more = [&blocks[1][1..], &blocks[0][..1]].concat();
    let longer = file(
        &rows_schema(),
        Codec::Snappy,
        &[blocks[0].clone(), more, blocks[2][1..].to_vec()],
    );
    let err = check_jane(&source, &longer, JANE).unwrap_err();
    assert!(matches!(err, AvroError::BlockLong { block: 2 }), "{err}");
}

#[test]
fn check_refuses_other_bytes_for_an_untouched_block_or_the_header() {
    let (_, source, good) = jane();
    // An untouched block written again: the same records, its count as a longer varint.
    let head = header(&rows_schema(), Codec::Snappy, &[("owner", b"team")]);
    let first = block(&encoded(&three_blocks())[0], Codec::Snappy);
    assert_eq!(first[0], 4, "a count of 2");
    let rest = &good[head.len() + first.len()..];
    let recoded = [&head[..], &[0x84, 0x00], &first[1..], rest].concat();
    let err = check_jane(&source, &recoded, JANE).unwrap_err();
    assert!(matches!(err, AvroError::BlockDiffers { block: 1 }), "{err}");
    let other = header(&rows_schema(), Codec::Snappy, &[("owner", b"tean")]);
    let other = [&other[..], &good[head.len()..]].concat();
    assert!(matches!(
        check_jane(&source, &other, JANE),
        Err(AvroError::HeaderDiffers)
    ));
}

#[test]
fn check_refuses_a_block_too_many_a_truncated_rewrite_and_other_counts() {
    let (blocks, source, good) = jane();
    let mut long_file = good.clone();
    long_file.extend(block(&blocks[0], Codec::Snappy));
    assert!(matches!(
        check_jane(&source, &long_file, JANE),
        Err(AvroError::RewriteLong)
    ));
    let err = check_jane(&source, &good[..good.len() - 1], JANE).unwrap_err();
    assert!(
        matches!(&err, AvroError::InRewrite(e) if matches!(**e, AvroError::TruncatedBlock { block: 3 })),
        "{err}"
    );
    let head = header(&rows_schema(), Codec::Snappy, &[("owner", b"team")]);
    let err = check_jane(&source, &head, JANE).unwrap_err();
    assert!(matches!(err, AvroError::RewriteShort { block: 1 }), "{err}");
    let miscounted = Expected {
        records_removed: 1,
        ..JANE
    };
    let err = check_jane(&source, &good, miscounted).unwrap_err();
    assert!(
        matches!(
            err,
            AvroError::Count {
                what: "records removed",
                reported: 1,
                counted: 2
            }
        ),
        "{err}"
    );
}

/// A record of `typed_file`'s schema.
struct Typed {
    ints: [i64; 3],
    s: &'static str,
    f: f32,
    d: f64,
    cents: i64,
    big: Vec<u8>,
    uuid_step: u8,
    day: i64,
    ts: i64,
    n: Option<i64>,
}

impl Typed {
    fn encode(&self) -> Vec<u8> {
        let [i, l, e] = self.ints;
        let mut out = [long(i), long(l), string(self.s.as_bytes()), long(e)].concat();
        out.extend(self.f.to_le_bytes());
        out.extend(self.d.to_le_bytes());
        out.extend(string(&twos(self.cents)));
        out.extend(&self.big);
        out.extend((0..16u8).map(|k| k.wrapping_mul(self.uuid_step)));
        out.extend(long(self.day));
        out.extend(long(self.ts));
        out.extend(self.n.map_or(long(0), |n| [long(1), long(n)].concat()));
        out
    }
}

/// Three records with a column of each comparable type.
fn typed_file() -> Vec<u8> {
    let schema = json!({"type": "record", "name": "T", "fields": [
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "s", "type": "string"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "big", "type": {"type": "fixed", "name": "Big", "size": 20, "logicalType": "decimal", "precision": 40}},
        {"name": "u", "type": {"type": "fixed", "name": "U", "size": 16, "logicalType": "uuid"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "n", "type": ["null", "long"]}]});
    let mut two_100 = vec![0u8; 20];
    two_100[7] = 0x10; // 2^100: byte 7 of 20 holds bit 100.
    let mut minus_five = vec![0xffu8; 20];
    minus_five[19] = 0xfb;
    let rows = [
        Typed {
            ints: [42, 12_345_678_901_234_567, 1],
            s: "42",
            f: 0.1,
            d: 0.1,
            cents: 1234,
            big: two_100,
            uuid_step: 1,
            day: 19_723,
            ts: 1_704_067_200_000,
            n: None,
        },
        Typed {
            ints: [-7, 42, 0],
            s: "Jane",
            f: 2.5,
            d: 2.5,
            cents: -1,
            big: minus_five,
            uuid_step: 255,
            day: 0,
            ts: 5,
            n: Some(7),
        },
        Typed {
            ints: [0, 0, 0],
            s: "0042",
            f: f32::NAN,
            d: -0.0,
            cents: 0,
            big: vec![0; 20],
            uuid_step: 0,
            day: -1,
            ts: 0,
            n: Some(42),
        },
    ];
    let records = rows.iter().map(Typed::encode).collect();
    file(&schema, Codec::Zstandard, &[records])
}

#[test]
fn values_compare_by_their_columns_avro_type_exactly() {
    let bytes = typed_file();
    let count = |column: &str, id: &Value| {
        let ids = MatchSet::from_values(std::slice::from_ref(id));
        scan(&bytes, &cols(&[column]), &ids, bytes.len())
            .unwrap()
            .records_matched
    };
    for (column, id, matched) in [
        ("i", json!(42), 1),
        ("i", json!("42"), 1),
        ("i", json!("42.0"), 0),
        ("l", json!(42), 1),
        ("l", json!(12_345_678_901_234_567i64), 1),
        ("l", json!(12_345_678_901_234_568i64), 0),
        ("s", json!(42), 1),
        ("e", json!("B"), 1),
        ("e", json!("b"), 0),
        ("f", json!(0.1), 1),
        ("d", json!(0.1), 1),
        ("d", json!(0.10000000149011612), 0),
        ("d", json!(0), 1),
        ("dec", json!("12.34"), 1),
        ("dec", json!(12.34), 1),
        ("dec", json!("12.340"), 1),
        ("dec", json!("-0.01"), 1),
        ("dec", json!("12.3"), 0),
        ("big", json!("1267650600228229401496703205376"), 1),
        ("big", json!("1267650600228229401496703205377"), 0),
        ("big", json!(-5), 1),
        ("u", json!("00010203-0405-0607-0809-0a0b0c0d0e0f"), 1),
        ("u", json!("00010203-0405-0607-0809-0A0B0C0D0E0F"), 0),
        ("day", json!("2024-01-01"), 1),
        ("day", json!("1969-12-31"), 1),
        ("day", json!(19_723), 0),
        ("ts", json!(1_704_067_200_000i64), 1),
        ("ts", json!("2024-01-01T00:00:00Z"), 0),
        ("n", json!(42), 1),
        ("n", json!(7), 1),
    ] {
        assert_eq!(count(column, &id), matched, "{column} = {id}");
    }
}

#[test]
fn a_composite_matches_where_all_its_columns_do_and_each_match_is_counted() {
    let bytes = typed_file();
    let ids = MatchSet::from_values(&[json!("Jane")]).with_composites(&[
        json!([{"column": "s", "value": "Jane"}, {"column": "l", "value": 42}]),
        json!([{"column": "s", "value": "Jane"}, {"column": "l", "value": 43}]),
        json!([{"column": "day", "value": "2024-01-01"}, {"column": "dec", "value": "12.34"}]),
    ]);
    let found = scan(&bytes, &cols(&["s", "l", "day", "dec"]), &ids, 5).unwrap();
    assert_eq!(found.records_matched, 2);
    assert_eq!(found.rows_by_match, [(0, 1), (1, 1), (3, 1)].into());
}

#[test]
fn hostile_headers_are_errors_never_panics() {
    let good = file(&rows_schema(), Codec::Deflate, &encoded(&three_blocks()));
    let ids = MatchSet::from_values(&[json!(1)]);
    let columns = cols(&["id"]);
    let run = |bytes: &[u8]| scan(bytes, &columns, &ids, 3);
    let head = header(&rows_schema(), Codec::Deflate, &[("owner", b"team")]).len();
    for cut in 0..head {
        assert!(
            matches!(run(&good[..cut]), Err(AvroError::TruncatedHeader)),
            "cut at {cut}"
        );
    }
    assert!(matches!(
        run(b"PAR1xxxxxxxxxxxxxxxxxxxxxxxxxx"),
        Err(AvroError::BadMagic)
    ));
    // A metadata value claiming an exabyte: refused at the cap, nothing allocated.
    let mut huge = b"Obj\x01".to_vec();
    huge.extend(long(1));
    huge.extend(string(b"avro.schema"));
    huge.extend(long(i64::MAX));
    huge.extend([b'x'; 100]);
    assert!(matches!(
        run(&huge),
        Err(AvroError::HeaderTooLarge { max: MAX })
    ));
    let unknown = header(&rows_schema(), Codec::Null, &[("avro.codec", b"lz4")]);
    assert!(
        matches!(run(&unknown), Err(AvroError::Header(_))),
        "avro.codec twice"
    );
    let mut lz4 = b"Obj\x01".to_vec();
    lz4.extend(long(2));
    lz4.extend(string(b"avro.schema"));
    lz4.extend(string(rows_schema().to_string().as_bytes()));
    lz4.extend(string(b"avro.codec"));
    lz4.extend(string(b"lz4"));
    lz4.extend(long(0));
    lz4.extend(SYNC);
    assert!(matches!(run(&lz4), Err(AvroError::UnknownCodec(c)) if c == "lz4"));
    let no_schema = [&b"Obj\x01"[..], &long(0)[..], &SYNC[..]].concat();
    assert!(matches!(run(&no_schema), Err(AvroError::Header(_))));
    let bad_schema = header(
        &json!({"type": "record", "name": "r", "fields": [{"name": "a", "type": "Nope"}]}),
        Codec::Null,
        &[],
    );
    assert!(matches!(run(&bad_schema), Err(AvroError::Schema(_))));
}

#[test]
fn hostile_blocks_are_errors_naming_the_block_never_panics() {
    let ids = MatchSet::from_values(&[json!(1)]);
    let columns = cols(&["id"]);
    let run = |bytes: &[u8]| scan(bytes, &columns, &ids, 5);
    let blocks = encoded(&three_blocks());
    let good = file(&rows_schema(), Codec::Snappy, &blocks);
    let head = header(&rows_schema(), Codec::Snappy, &[("owner", b"team")]);
    let mut ends = vec![head.len()];
    for records in &blocks {
        ends.push(ends[ends.len() - 1] + block(records, Codec::Snappy).len());
    }
    for cut in head.len()..good.len() {
        match ends.iter().position(|end| *end == cut) {
            Some(whole) => {
                let found = run(&good[..cut]).unwrap();
                let records: usize = blocks[..whole].iter().map(Vec::len).sum();
                assert_eq!(found.records_total, records as u64);
            }
            None => {
                let err = run(&good[..cut]).unwrap_err();
                let block = ends.iter().filter(|end| **end < cut).count() as u64;
                assert!(
                    matches!(err, AvroError::TruncatedBlock { block: b } if b == block),
                    "cut at {cut}: {err}"
                );
            }
        }
    }
    let with = |tail: &[u8]| [&head[..], tail].concat();
    // A size beyond the cap, a negative count, a wrong marker, a wrong CRC.
    let big = [long(1), long(i64::MAX)].concat();
    assert!(matches!(
        run(&with(&big)),
        Err(AvroError::BlockTooLarge { block: 1, .. })
    ));
    assert!(matches!(
        run(&with(&long(-1))),
        Err(AvroError::CorruptBlock { block: 1, .. })
    ));
    let mut bad_sync = block(&blocks[0], Codec::Snappy);
    let last = bad_sync.len() - 1;
    bad_sync[last] ^= 1;
    assert!(matches!(
        run(&with(&bad_sync)),
        Err(AvroError::BadSync { block: 1 })
    ));
    let mut bad_crc = block(&blocks[0], Codec::Snappy);
    bad_crc[last - 16] ^= 1;
    assert!(matches!(
        run(&with(&bad_crc)),
        Err(AvroError::Crc { block: 1 })
    ));
    // Counts that disagree with the data.
    let null_head = header(&rows_schema(), Codec::Null, &[]);
    let records = blocks[0].concat();
    for (count, reason) in [
        (1, "after its last record"),
        (3, "past the end"),
        (i64::MAX, "more records"),
    ] {
        let mut bytes = null_head.clone();
        bytes.extend(
            [
                long(count),
                long(records.len() as i64),
                records.clone(),
                SYNC.to_vec(),
            ]
            .concat(),
        );
        let err = run(&bytes).unwrap_err();
        assert!(err.to_string().contains(reason), "{count}: {err}");
    }
}

#[test]
fn records_nested_past_the_depth_cap_or_encoding_nothing_stay_bounded() {
    let schema = json!({"type": "record", "name": "List", "fields": [
        {"name": "value", "type": "long"},
        {"name": "next", "type": ["null", "List"]}]});
    let mut record = Vec::new();
    for i in 0..500 {
        record.extend(long(i));
        record.extend(long(1));
    }
    record.extend(long(0));
    record.extend(long(0));
    let bytes = file(&schema, Codec::Null, &[vec![record]]);
    let err = scan(
        &bytes,
        &cols(&["value"]),
        &MatchSet::from_values(&[json!(1)]),
        99,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            AvroError::CorruptRecord {
                block: 1,
                record: 1,
                ..
            }
        ),
        "{err}"
    );
    // Records of nulls: a count of them is not looped over past the cap.
    let nulls = json!({"type": "record", "name": "N", "fields": [{"name": "a", "type": "null"}]});
    let mut bytes = header(&nulls, Codec::Null, &[]);
    bytes.extend([long(1000), long(0), SYNC.to_vec()].concat());
    let mut out = Vec::new();
    let report = forget(&bytes[..], &mut out, &[], &MatchSet::default(), true, MAX).unwrap();
    assert_eq!(report.records_removed, 1000);
    let mut huge = header(&nulls, Codec::Null, &[]);
    huge.extend([long(i64::MAX), long(0), SYNC.to_vec()].concat());
    let err = forget(&huge[..], Vec::new(), &[], &MatchSet::default(), true, MAX).unwrap_err();
    assert!(
        matches!(err, AvroError::CorruptBlock { block: 1, .. }),
        "{err}"
    );
    // An array of nulls counting 2^62 items, in a record that has bytes.
    let arrays = json!({"type": "record", "name": "A", "fields": [
        {"name": "id", "type": "long"},
        {"name": "xs", "type": {"type": "array", "items": "null"}}]});
    let record = [long(1), long(1 << 62), long(0)].concat();
    let bytes = file(&arrays, Codec::Null, &[vec![record]]);
    let found = scan(
        &bytes,
        &cols(&["id"]),
        &MatchSet::from_values(&[json!(1)]),
        4,
    )
    .unwrap();
    assert_eq!(found.records_matched, 1);
}

/// Rows, their split into blocks, the ids to forget and a codec.
fn case() -> impl Strategy<Value = (Vec<Row>, Vec<usize>, Vec<i64>, Vec<u8>, usize)> {
    let row = (
        0i64..40,
        prop::option::of(0u8..12),
        -100_000i64..100_000,
        0usize..3,
    )
        .prop_map(|(id, email, cents, tags)| Row {
            id,
            email: email.map(|e| format!("u{e}@x")),
            phone: format!("p{id}"),
            cents,
            tags: (0..tags).map(|t| format!("tag{t}")).collect(),
        });
    (
        prop::collection::vec(row, 0..40),
        prop::collection::vec(1usize..8, 1..12),
        prop::collection::vec(0i64..40, 0..4),
        prop::collection::vec(0u8..12, 0..3),
        0usize..CODECS.len(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn forget_then_check_round_trips(
        (rows, sizes, id_ints, emails, codec) in case(),
        every_row in prop::bool::weighted(0.1),
    ) {
        let codec = CODECS[codec];
        let mut blocks: Vec<Vec<Row>> = Vec::new();
        let mut rest = rows.as_slice();
        for size in sizes.iter().cycle() {
            if rest.is_empty() { break; }
            let (now, later) = rest.split_at((*size).min(rest.len()));
            blocks.push(now.to_vec());
            rest = later;
        }
        let emails: Vec<String> = emails.iter().map(|e| format!("u{e}@x")).collect();
        let values: Vec<Value> = id_ints.iter().map(|i| json!(i)).chain(emails.iter().map(|e| json!(e))).collect();
        let ids = MatchSet::from_values(&values);
        let columns = cols(&["id", "email"]);
        let matches = |r: &Row| every_row || id_ints.contains(&r.id) || r.email.as_ref().is_some_and(|e| emails.contains(e));
        let source = file(&rows_schema(), codec, &encoded(&blocks));
        let mut out = Vec::new();
        let report = forget(&source[..], &mut out, &columns, &ids, every_row, MAX).unwrap();
        let removed = rows.iter().filter(|r| matches(r)).count() as u64;
        prop_assert_eq!((report.records_before, report.records_removed), (rows.len() as u64, removed));
        // Blocks without a match as they were, the others without their matches.
        let kept: Vec<Vec<Row>> = blocks
            .iter()
            .map(|b| b.iter().filter(|r| !matches(r)).cloned().collect::<Vec<_>>())
            .filter(|b| !b.is_empty())
            .collect();
        prop_assert_eq!(&out, &file(&rows_schema(), codec, &encoded(&kept)));
        let expected = Expected { records_before: rows.len() as u64, records_removed: removed, every_row };
        prop_assert!(check(&source[..], &out[..], &columns, &ids, expected, MAX).is_ok());
        if !every_row {
            let found = scan(&source, &columns, &ids, 17).unwrap();
            prop_assert_eq!(found.records_matched, removed);
            let after = scan(&out, &columns, &ids, 17).unwrap();
            prop_assert_eq!((after.records_total, after.records_matched), (rows.len() as u64 - removed, 0));
        }
    }

    #[test]
    fn damaged_files_are_refused_or_read_never_a_panic(
        (rows, sizes, _, _, codec) in case(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let blocks: Vec<Vec<Row>> = rows.chunks(sizes[0]).map(<[Row]>::to_vec).collect();
        let mut bytes = file(&rows_schema(), CODECS[codec], &encoded(&blocks));
        for (at, flip) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= flip;
        }
        let ids = MatchSet::from_values(&[json!(3), json!("u1@x")]);
        let columns = cols(&["id", "email"]);
        let _ = scan(&bytes, &columns, &ids, 64);
        let mut out = Vec::new();
        if let Ok(report) = forget(&bytes[..], &mut out, &columns, &ids, false, MAX) {
            let expected = Expected { records_before: report.records_before, records_removed: report.records_removed, every_row: false };
            prop_assert!(check(&bytes[..], &out[..], &columns, &ids, expected, MAX).is_ok());
        }
    }
}
