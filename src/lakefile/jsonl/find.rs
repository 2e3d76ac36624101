//! Find in one JSON Lines object (plain or gzip, decided by the caller): streamed line by
//! line, nested object fields reached by dotted path. Values compare as `MatchSet` says:
//! by value across numbers and numeric texts, and, where the column's type is declared
//! (Glue), as the JSON SerDe reads the line's value for that type (`"42"` in an `int`
//! column is 42). Where the table's SerDe is known (`domain::json_serde`, read by
//! `jsonl::serde`), a column's values are every key the SerDe may read it from (mapping,
//! case, dots, duplicate keys).
//!
//! A line is held whole while it is searched, so lines are capped (`LETHE_MAX_LINE_BYTES`):
//! a longer one fails its object with "line too long" as soon as the cap is passed, never
//! buffered beyond it, however far the object would inflate.

use std::io::BufRead;

pub use super::object::{Ambiguous, JsonObject, line_key, value_at};
use crate::lakefile::match_set::{Key, MatchSet, tuple_owners};

/// Why an object could not be searched.
#[derive(Debug, thiserror::Error)]
pub enum JsonFindError {
    #[error("cannot read the object: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line} is not a JSON object")]
    Malformed { line: u64 },
    #[error("line too long: line {line} is longer than {max} bytes (LETHE_MAX_LINE_BYTES)")]
    LineTooLong { line: u64, max: usize },
    #[error(
        "line {line}: match column {column:?} names no field exactly, and several fields whose names differ from it only in case; refused (which one Athena reads is not certain)"
    )]
    AmbiguousColumn { line: u64, column: String },
}

/// What find learnt about one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonFindReport {
    pub lines_total: u64,
    pub lines_matched: u64,
    pub bytes_scanned: u64,
    /// Matching lines per queued match (when the set counts them).
    pub rows_by_match: std::collections::BTreeMap<u32, u64>,
}

/// The queued matches (indexes) a line is, each once: a column any of whose values equals
/// a simple id, a composite group whose columns' values form one of its tuples.
pub fn line_owners(
    line: &JsonObject,
    columns: &[String],
    ids: &MatchSet,
    number: u64,
) -> Result<Vec<u32>, JsonFindError> {
    let mut owners: Vec<u32> = Vec::new();
    for c in columns {
        let kind = ids.declared(c);
        for key in column_keys(line, c, ids, number)? {
            owners.extend_from_slice(ids.owners_of(&key, kind));
        }
    }
    for group in ids.composites() {
        let mut candidates = Vec::with_capacity(group.columns.len());
        for c in &group.columns {
            let keys = column_keys(line, c, ids, number)?;
            if keys.is_empty() {
                break;
            }
            candidates.push(keys);
        }
        if candidates.len() == group.columns.len() {
            tuple_owners(&candidates, &group.tuples, &mut owners);
        }
    }
    owners.sort_unstable();
    owners.dedup();
    Ok(owners)
}

/// The values a column has on a line, read as its declared type: as the table's SerDe
/// reads the line (every occurrence of every key it may read the column from), else the
/// field of exactly its name, else the only one equal to it ignoring case.
fn column_keys(
    line: &JsonObject,
    column: &str,
    ids: &MatchSet,
    number: u64,
) -> Result<Vec<Key>, JsonFindError> {
    let kind = ids.declared(column);
    if let Some(serde) = ids.serde() {
        let values = serde.values_at(line, column).into_iter();
        return Ok(values.filter_map(|v| line_key(v, kind)).collect());
    }
    match value_at(line, column) {
        Ok(value) => Ok(value.and_then(|v| line_key(v, kind)).into_iter().collect()),
        Err(Ambiguous) => Err(JsonFindError::AmbiguousColumn {
            line: number,
            column: column.to_owned(),
        }),
    }
}

/// Whether one line (its bytes) matches; an error when it is not a JSON object. `number`
/// names the line in errors.
pub fn line_bytes_match(
    line: &[u8],
    columns: &[String],
    ids: &MatchSet,
    number: u64,
) -> Result<bool, JsonFindError> {
    let object = JsonObject::parse(line).ok_or(JsonFindError::Malformed { line: number })?;
    line_matches(&object, columns, ids, number)
}

/// Whether one line matches ([`line_owners`] is not empty). `number` names the line in
/// errors.
pub fn line_matches(
    line: &JsonObject,
    columns: &[String],
    ids: &MatchSet,
    number: u64,
) -> Result<bool, JsonFindError> {
    Ok(!line_owners(line, columns, ids, number)?.is_empty())
}

/// Longest line read unless configured (`LETHE_MAX_LINE_BYTES`), line ending not counted.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// A push-based scanner: feed it the object's (decompressed) bytes in any chunks; it
/// keeps at most one partial line, of at most its maximum length, between chunks. As a
/// `Write` it can sit behind a streaming decompressor, whose output it then bounds.
pub struct LineScanner<'a> {
    columns: &'a [String],
    ids: &'a MatchSet,
    pending: Vec<u8>,
    max_line: usize,
    report: JsonFindReport,
}

impl<'a> LineScanner<'a> {
    pub fn new(columns: &'a [String], ids: &'a MatchSet) -> Self {
        Self {
            columns,
            ids,
            pending: Vec::new(),
            max_line: DEFAULT_MAX_LINE_BYTES,
            report: JsonFindReport::default(),
        }
    }

    /// With lines of at most `max_line` bytes (line ending not counted).
    pub fn with_max_line(self, max_line: usize) -> Self {
        Self { max_line, ..self }
    }

    /// The line being read is longer than the cap.
    fn too_long(&self) -> JsonFindError {
        JsonFindError::LineTooLong {
            line: self.report.lines_total + 1,
            max: self.max_line,
        }
    }

    /// Scans the complete lines in `bytes`, keeping a trailing partial line.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), JsonFindError> {
        while let Some(nl) = bytes.iter().position(|b| *b == b'\n') {
            if self.pending.len() + nl > self.max_line {
                return Err(self.too_long());
            }
            if self.pending.is_empty() {
                self.line(&bytes[..=nl])?;
            } else {
                let mut line = std::mem::take(&mut self.pending);
                line.extend_from_slice(&bytes[..=nl]);
                self.line(&line)?;
            }
            bytes = &bytes[nl + 1..];
        }
        if self.pending.len() + bytes.len() > self.max_line {
            return Err(self.too_long());
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    /// Scans the last line (one without a final newline) and returns the report.
    pub fn finish(mut self) -> Result<JsonFindReport, JsonFindError> {
        let last = std::mem::take(&mut self.pending);
        if !last.is_empty() {
            self.line(&last)?;
        }
        Ok(self.report)
    }

    fn line(&mut self, line: &[u8]) -> Result<(), JsonFindError> {
        self.report.bytes_scanned += line.len() as u64;
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        self.report.lines_total += 1;
        let number = self.report.lines_total;
        let object = JsonObject::parse(line).ok_or(JsonFindError::Malformed { line: number })?;
        let owners = line_owners(&object, self.columns, self.ids, number)?;
        if !owners.is_empty() {
            self.report.lines_matched += 1;
            for owner in owners {
                *self.report.rows_by_match.entry(owner).or_default() += 1;
            }
        }
        Ok(())
    }
}

impl std::io::Write for LineScanner<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Recovers a scanner error that travelled through an `io::Error`.
pub fn unwrap_io(err: std::io::Error) -> JsonFindError {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<JsonFindError>())
    {
        Some(JsonFindError::Malformed { line }) => JsonFindError::Malformed { line: *line },
        Some(JsonFindError::LineTooLong { line, max }) => JsonFindError::LineTooLong {
            line: *line,
            max: *max,
        },
        Some(JsonFindError::AmbiguousColumn { line, column }) => JsonFindError::AmbiguousColumn {
            line: *line,
            column: column.clone(),
        },
        _ => JsonFindError::Io(err),
    }
}

/// What [`read_line`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineRead {
    /// A line, with its `\n` unless it is the last one.
    Line,
    /// The end of the input: nothing was read.
    End,
    /// A line longer than the cap: its first bytes were read, the rest is left unread.
    TooLong,
}

/// Reads one line into `buf` (cleared first) as `read_until(b'\n')` does, but stops once
/// the line passes `max` bytes (line ending not counted): memory holds at most `max`
/// bytes and the reader's buffer, however long the line.
pub fn read_line(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    buf.clear();
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(if buf.is_empty() {
                LineRead::End
            } else {
                LineRead::Line
            });
        }
        let newline = chunk.iter().position(|b| *b == b'\n');
        let take = newline.map_or(chunk.len(), |i| i + 1);
        if buf.len() + take - usize::from(newline.is_some()) > max {
            return Ok(LineRead::TooLong);
        }
        buf.extend_from_slice(&chunk[..take]);
        input.consume(take);
        if newline.is_some() {
            return Ok(LineRead::Line);
        }
    }
}

/// Streams a reader through a [`LineScanner`].
pub fn find<R: BufRead>(
    mut reader: R,
    columns: &[String],
    ids: &MatchSet,
) -> Result<JsonFindReport, JsonFindError> {
    let mut scanner = LineScanner::new(columns, ids);
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return scanner.finish();
        }
        let n = chunk.len();
        scanner.feed(chunk)?;
        reader.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    const LINES: &str = r#"{"user": {"id": 42, "email": "a@x"}, "name": "Jane", "last": "Doe"}
{"user": {"id": "42", "email": "b@x"}, "name": "Joe", "last": "Doe"}

{"user": {"id": 7.5}, "name": "Jane", "last": "Roe"}
"#;

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn numbers_and_their_texts_match_each_other_through_nested_paths() {
        // 42 is the number and the text "42".
        let ids = MatchSet::from_values(&[json!(42)]);
        let r = find(LINES.as_bytes(), &cols(&["user.id"]), &ids).unwrap();
        assert_eq!((r.lines_total, r.lines_matched), (3, 2));
        let ids = MatchSet::from_values(&[json!("42"), json!(7.5), json!("b@x")]);
        let r = find(LINES.as_bytes(), &cols(&["USER.ID", "user.email"]), &ids).unwrap();
        assert_eq!(r.lines_matched, 3);
        assert_eq!(r.bytes_scanned, LINES.len() as u64);
        // Text that is not the id's text stays apart: "42.0" is not the string "42".
        let ids = MatchSet::from_values(&[json!("42.0")]);
        let r = find(LINES.as_bytes(), &cols(&["user.id"]), &ids).unwrap();
        assert_eq!(r.lines_matched, 1, "only the number 42 equals 42.0");
    }

    #[test]
    fn a_declared_type_reads_each_value_as_the_json_serde_does() {
        let lines = r#"{"id": "0042", "code": 7}
{"id": 42, "code": "007"}
{"id": "x", "code": "7"}
"#;
        let undeclared = MatchSet::from_values(&[json!(42)]);
        let r = find(lines.as_bytes(), &cols(&["id"]), &undeclared).unwrap();
        assert_eq!(
            r.lines_matched, 1,
            "\"0042\" is text without a declared type"
        );
        let declared = MatchSet::from_values(&[json!(42)]).with_declared([("id", "bigint")]);
        let r = find(lines.as_bytes(), &cols(&["id"]), &declared).unwrap();
        assert_eq!(r.lines_matched, 2);
        // A string column: the number 7 is read as "7", so "007" stays.
        let text = MatchSet::from_values(&[json!("7")]).with_declared([("code", "string")]);
        let r = find(lines.as_bytes(), &cols(&["code"]), &text).unwrap();
        assert_eq!(r.lines_matched, 2);
        // Composites are read the same way.
        let composite = MatchSet::default()
            .with_composites(&[
                json!([{"column": "id", "value": 42}, {"column": "code", "value": "7"}]),
            ])
            .with_declared([("id", "int"), ("code", "int")]);
        let r = find(lines.as_bytes(), &cols(&[]), &composite).unwrap();
        assert_eq!(r.lines_matched, 2);
    }

    #[test]
    fn chunk_boundaries_never_change_the_result() {
        let ids = MatchSet::from_values(&[json!("Jane"), json!(42)]);
        let columns = cols(&["name", "user.id"]);
        let whole = find(LINES.as_bytes(), &columns, &ids).unwrap();
        for size in 1..LINES.len() {
            let mut scanner = LineScanner::new(&columns, &ids);
            for chunk in LINES.as_bytes().chunks(size) {
                scanner.feed(chunk).unwrap();
            }
            assert_eq!(scanner.finish().unwrap(), whole, "chunks of {size}");
        }
        let unterminated = "{\"name\": \"Jane\"}";
        assert_eq!(
            find(unterminated.as_bytes(), &columns, &ids)
                .unwrap()
                .lines_matched,
            1
        );
    }

    #[test]
    fn composite_matches_need_every_column() {
        let ids = MatchSet::default().with_composites(&[json!([
            {"column": "last", "value": "Doe"}, {"column": "name", "value": "Jane"}])]);
        let r = find(LINES.as_bytes(), &cols(&["name", "last"]), &ids).unwrap();
        assert_eq!(r.lines_matched, 1);
    }

    #[test]
    fn a_missing_field_is_no_value_and_never_an_error() {
        // Old lines lack "email" (and "user"); newer ones have it.
        let lines = r#"{"id": 1}
{"id": 2, "user": {"id": 9}}
{"id": 3, "email": "a@x", "user": {}}
"#;
        let columns = cols(&["id", "email", "user.id"]);
        let ids = MatchSet::from_values(&[json!(2), json!("a@x")]).with_composites(&[
            json!([{"column": "id", "value": 1}, {"column": "email", "value": "a@x"}]),
        ]);
        let r = find(lines.as_bytes(), &columns, &ids).unwrap();
        assert_eq!((r.lines_total, r.lines_matched), (3, 2));
        assert_eq!(
            r.rows_by_match.into_iter().collect::<Vec<_>>(),
            [(0, 1), (1, 1)]
        );
        // No line has any match column: searched, nothing found.
        let r = find(lines.as_bytes(), &cols(&["phone"]), &ids).unwrap();
        assert_eq!((r.lines_total, r.lines_matched), (3, 0));
    }

    #[test]
    fn gzip_streams_and_a_malformed_line_is_an_error() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(LINES.as_bytes()).unwrap();
        let bytes = gz.finish().unwrap();
        let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(&bytes[..]));
        let r = find(
            reader,
            &cols(&["name"]),
            &MatchSet::from_values(&[json!("Jane")]),
        )
        .unwrap();
        assert_eq!(r.lines_matched, 2);
        let bad = "{\"a\": 1}\n[1, 2]\n";
        assert!(matches!(
            find(
                bad.as_bytes(),
                &cols(&["a"]),
                &MatchSet::from_values(&[json!(1)])
            ),
            Err(JsonFindError::Malformed { line: 2 })
        ));
    }

    #[test]
    fn numbers_compare_by_their_exact_text_whatever_their_width() {
        let lines = r#"{"id": 12345678901234567891}
{"id": 12345678901234567890}
{"id": 1234567890123456789012345}
{"id": 1234567890123456789012346}
{"id": 0.1000000000000000000000001}
{"id": 1.2345678901234567890123e24}
"#;
        let count = |ids: &[serde_json::Value]| {
            find(
                lines.as_bytes(),
                &cols(&["id"]),
                &MatchSet::from_values(ids),
            )
            .unwrap()
            .lines_matched
        };
        assert_eq!(count(&[json!(12345678901234567890u64)]), 1);
        assert_eq!(count(&[json!("1234567890123456789012345")]), 1);
        assert_eq!(
            count(&[json!("1234567890123456789012300")]),
            1,
            "1.2345678901234567890123e24"
        );
        assert_eq!(
            count(&[json!(0.1)]),
            0,
            "0.1 is not 0.1000000000000000000000001"
        );
        assert_eq!(count(&[json!("0.1000000000000000000000001")]), 1);
        // Declared decimal: exact too.
        let ids = MatchSet::from_values(&[json!("1234567890123456789012346")])
            .with_declared([("id", "decimal(38,0)")]);
        let r = find(lines.as_bytes(), &cols(&["id"]), &ids).unwrap();
        assert_eq!(r.lines_matched, 1);
    }

    #[test]
    fn declared_float_and_int_columns_read_values_as_athena_casts_them() {
        let lines = r#"{"f": 0.1, "i": 4}
{"f": 0.10000000149011612, "i": "4.0"}
{"f": "0.1", "i": "0004"}
"#;
        // `float` is 32 bits: 0.1 and 0.10000000149011612 are one float.
        let ids = MatchSet::from_values(&[json!(0.1)]).with_declared([("f", "float")]);
        let r = find(lines.as_bytes(), &cols(&["f"]), &ids).unwrap();
        assert_eq!(r.lines_matched, 3);
        let ids = MatchSet::from_values(&[json!(0.1)]).with_declared([("f", "double")]);
        let r = find(lines.as_bytes(), &cols(&["f"]), &ids).unwrap();
        assert_eq!(r.lines_matched, 2);
        // "4.0" is no bigint, neither as an id nor as a line's value.
        let ids = MatchSet::from_values(&[json!("4.0")]).with_declared([("i", "int")]);
        let r = find(lines.as_bytes(), &cols(&["i"]), &ids).unwrap();
        assert_eq!(r.lines_matched, 0);
        let ids = MatchSet::from_values(&[json!(4)]).with_declared([("i", "int")]);
        let r = find(lines.as_bytes(), &cols(&["i"]), &ids).unwrap();
        assert_eq!(r.lines_matched, 2);
    }

    #[test]
    fn a_column_is_the_field_of_exactly_its_name_else_the_only_one_ignoring_case() {
        let lines = r#"{"ID": 1, "id": 2, "Id": 3}
{"ID": 2, "user": {"Email": "a@x"}}
"#;
        let ids = MatchSet::from_values(&[json!(2), json!("a@x")]);
        let r = find(lines.as_bytes(), &cols(&["id", "user.email"]), &ids).unwrap();
        assert_eq!(
            r.lines_matched, 2,
            "id is \"id\" on line 1, the only \"ID\" on line 2"
        );
        let r = find(lines.as_bytes(), &cols(&["iD"]), &ids);
        assert!(
            matches!(&r, Err(JsonFindError::AmbiguousColumn { line: 1, column }) if column == "iD"),
            "{r:?}"
        );
        assert!(r.unwrap_err().to_string().contains("\"iD\""));
    }

    fn openx(params: &[(&str, &str)]) -> Option<crate::domain::json_serde::JsonSerde> {
        let params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::domain::json_serde::JsonSerde::of_table(
            Some(crate::domain::json_serde::OPENX),
            &params,
        )
    }

    #[test]
    fn a_duplicate_key_matches_on_its_first_and_on_its_last_occurrence() {
        let lines = r#"{"id": 7, "id": 8}
{"id": 8, "id": 7}
{"ID": 7, "id": 9}
{"id": 9}
"#;
        let ids = MatchSet::from_values(&[json!(7), json!(8)]).with_serde(openx(&[]));
        let r = find(lines.as_bytes(), &cols(&["id"]), &ids).unwrap();
        assert_eq!(r.lines_matched, 3);
        // Each match counts a line once, however many of its values equal it.
        assert_eq!(r.rows_by_match, [(0, 3), (1, 2)].into());
        // Without the SerDe: the last value of a repeated name, and "ID" beside "id" is
        // not the column.
        let plain = MatchSet::from_values(&[json!(7)]);
        let r = find(lines.as_bytes(), &cols(&["id"]), &plain).unwrap();
        assert_eq!(r.lines_matched, 1);
    }

    #[test]
    fn a_mapped_column_is_searched_in_its_key_and_composites_try_every_occurrence() {
        let lines = r#"{"CustomerID": 5, "kind": "a"}
{"customerid": 5, "kind": "b", "Kind": "a"}
{"customer_id": 5, "kind": "a"}
"#;
        let serde = openx(&[("mapping.customer_id", "CustomerID")]);
        let ids = MatchSet::from_values(&[json!(5)])
            .with_declared([("customer_id", "bigint")])
            .with_serde(serde.clone());
        let r = find(lines.as_bytes(), &cols(&["customer_id"]), &ids).unwrap();
        assert_eq!(r.lines_matched, 2, "customer_id is read from CustomerID");
        let pair = MatchSet::default()
            .with_composites(&[json!([
                {"column": "customer_id", "value": 5}, {"column": "kind", "value": "a"}])])
            .with_serde(serde);
        let r = find(lines.as_bytes(), &cols(&[]), &pair).unwrap();
        assert_eq!(r.lines_matched, 2);
        // 4 ids × 21 kinds: the tuples are scanned instead of every combination.
        let kinds: Vec<String> = (0..20).map(|i| format!(r#""kind": "k{i}""#)).collect();
        let line = |last_id: i64| {
            format!(
                r#"{{"CustomerID": 1, "customerid": 2, "CUSTOMERID": 3, "CustomerId": {last_id}, {}, "KIND": "a"}}"#,
                kinds.join(", ")
            )
        };
        let text = format!("{}\n{}\n", line(5), line(4));
        let r = find(text.as_bytes(), &cols(&[]), &pair).unwrap();
        assert_eq!((r.lines_total, r.lines_matched), (2, 1));
    }

    #[test]
    fn a_line_keeps_every_validation_a_full_parse_has() {
        let ids = MatchSet::from_values(&[json!(1)]);
        for bad in [
            "{\"a\": 1,}\n",
            "{\"a\": 1} x\n",
            "{\"a\": [1, }\n",
            "{\"a\": \"\\q\"}\n",
            "{\"a\": 01}\n",
            "[1]\n",
        ] {
            assert!(
                matches!(
                    find(bad.as_bytes(), &cols(&["a"]), &ids),
                    Err(JsonFindError::Malformed { line: 1 })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_line_longer_than_the_cap_fails_in_any_chunks_and_is_never_held_whole() {
        let ids = MatchSet::from_values(&[json!(1)]);
        let columns = cols(&["id"]);
        let fits = format!("{{\"id\": 1, \"p\": \"{}\"}}", "x".repeat(100));
        let max = fits.len();
        let text = format!("{fits}\n{fits}x\n{fits}\n");
        for size in [1, 7, max, text.len()] {
            let mut scanner = LineScanner::new(&columns, &ids).with_max_line(max);
            let err = text
                .as_bytes()
                .chunks(size)
                .try_for_each(|chunk| {
                    let r = scanner.feed(chunk);
                    assert!(scanner.pending.len() <= max);
                    r
                })
                .unwrap_err();
            assert!(
                matches!(err, JsonFindError::LineTooLong { line: 2, max: m } if m == max),
                "{err}"
            );
            assert!(err.to_string().starts_with("line too long"), "{err}");
        }
        // A line of exactly the cap, and a last line without its ending, are read.
        let scanner = LineScanner::new(&columns, &ids).with_max_line(max);
        let r = find(format!("{fits}\n{fits}").as_bytes(), &columns, &ids).unwrap();
        let mut bounded = scanner;
        bounded.feed(format!("{fits}\n{fits}").as_bytes()).unwrap();
        assert_eq!(bounded.finish().unwrap(), r);
        assert_eq!(r.lines_matched, 2);
    }

    #[test]
    fn a_gzip_line_inflating_far_beyond_the_cap_fails_after_inflating_only_the_cap() {
        // 1 MiB of one byte deflates to about 1 KiB; 256 gzip members of it are one
        // 256 MiB line, fed to the scanner through a streaming gunzip.
        let mut member = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        member.write_all(&vec![b'x'; 1 << 20]).unwrap();
        let member = member.finish().unwrap();
        let ids = MatchSet::from_values(&[json!(1)]);
        let columns = cols(&["id"]);
        let max = 4 << 20;
        let scanner = LineScanner::new(&columns, &ids).with_max_line(max);
        let mut gunzip = flate2::write::MultiGzDecoder::new(scanner);
        let mut fed = 0;
        let err = (0..256)
            .try_for_each(|_| {
                fed += 1;
                gunzip.write_all(&member)
            })
            .map_err(unwrap_io)
            .unwrap_err();
        assert!(
            matches!(err, JsonFindError::LineTooLong { line: 1, .. }),
            "{err}"
        );
        assert!(fed <= 6, "stopped after {fed} MiB inflated");
        assert!(gunzip.get_ref().pending.len() <= max);
    }

    #[test]
    fn read_line_reads_as_read_until_does_up_to_the_cap() {
        let text = "ab\n\nabcd\nabc";
        let mut input = std::io::BufReader::with_capacity(2, text.as_bytes());
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        loop {
            match read_line(&mut input, &mut buf, 4).unwrap() {
                LineRead::End => break,
                LineRead::Line => lines.push(String::from_utf8(buf.clone()).unwrap()),
                LineRead::TooLong => panic!("no line is over 4 bytes"),
            }
        }
        assert_eq!(lines, ["ab\n", "\n", "abcd\n", "abc"]);
        let mut input = std::io::BufReader::with_capacity(2, "abcde\nx".as_bytes());
        assert_eq!(
            read_line(&mut input, &mut buf, 4).unwrap(),
            LineRead::TooLong
        );
        assert!(buf.len() <= 4);
    }
}
