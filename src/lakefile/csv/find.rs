//! Find in one CSV object: a push-based [`Scanner`] fed the object's (decompressed) bytes
//! in any chunks, which counts its records and the matching ones per queued match. It
//! holds at most one partial record (of at most `max_record` bytes) and one chunk of
//! [`super::records::CHUNK`] bytes between writes, so behind a streaming decompressor it
//! bounds the inflated bytes it keeps.

use std::io::BufRead;

use crate::lakefile::match_set::MatchSet;

use super::dialect::Dialect;
use super::error::CsvError;
use super::records::{CHUNK, Framer, Next, Span, UnitKind};
use super::row::{Plan, header_names, record_owners};

/// Longest record read unless configured, its final line ending not counted.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

pub use crate::lakefile::found::Found;

/// Decides which queued matches a record is, resolving the match columns once: from the
/// dialect's columns, or from the first header line when the dialect names none.
pub(super) struct Matcher<'a> {
    dialect: &'a Dialect,
    columns: &'a [String],
    ids: &'a MatchSet,
    plan: Option<Plan>,
}

impl<'a> Matcher<'a> {
    pub fn new(dialect: &'a Dialect, columns: &'a [String], ids: &'a MatchSet) -> Self {
        Self {
            dialect,
            columns,
            ids,
            plan: None,
        }
    }

    /// Notes header line `line`: the first names the columns when the dialect does not.
    pub fn header(&mut self, line: u64, body: &[u8]) -> Result<(), CsvError> {
        if line == 1 && self.dialect.columns.is_empty() {
            let names = header_names(self.dialect, body);
            self.plan = Some(Plan::resolve(self.dialect, &names, self.columns, self.ids)?);
        }
        Ok(())
    }

    fn plan(&mut self) -> Result<&Plan, CsvError> {
        if self.plan.is_none() {
            if self.dialect.columns.is_empty() {
                return Err(CsvError::NoHeader);
            }
            let names = &self.dialect.columns;
            self.plan = Some(Plan::resolve(self.dialect, names, self.columns, self.ids)?);
        }
        self.plan.as_ref().ok_or(CsvError::NoHeader)
    }

    /// The queued matches record `record` (its bytes without its final line ending) is.
    pub fn owners(&mut self, body: &[u8], record: u64) -> Result<Vec<u32>, CsvError> {
        let (dialect, ids) = (self.dialect, self.ids);
        record_owners(dialect, self.plan()?, ids, body, record)
    }

    /// Fails when the dialect's own columns lack a match column, even in an object with
    /// no record (a misconfigured mapper is loud, never "no match").
    pub fn validate(&mut self) -> Result<(), CsvError> {
        if !self.dialect.columns.is_empty() {
            self.plan()?;
        }
        Ok(())
    }
}

/// A push-based find: write the object's bytes to it in any chunks, then
/// [`Scanner::finish`]. As a `Write` it can sit behind a streaming decompressor (an error
/// then travels as an `io::Error`; [`CsvError::from_io`] recovers it).
pub struct Scanner<'a> {
    matcher: Matcher<'a>,
    framer: Framer,
    found: Found,
    failed: bool,
}

impl<'a> Scanner<'a> {
    /// A scanner of objects read as `dialect`, matching `columns` (the mapper's match
    /// columns) and the composite groups of `ids`; records of at most `max_record` bytes.
    pub fn new(
        dialect: &'a Dialect,
        columns: &'a [String],
        ids: &'a MatchSet,
        max_record: usize,
    ) -> Self {
        Self {
            matcher: Matcher::new(dialect, columns, ids),
            framer: Framer::new(dialect, max_record),
            found: Found::default(),
            failed: false,
        }
    }

    /// Scans the complete records in `bytes`, keeping a trailing partial one.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), CsvError> {
        if self.failed {
            return Err(CsvError::Failed);
        }
        let fed = bytes.chunks(CHUNK).try_for_each(|chunk| {
            self.framer.push(chunk);
            self.drain()
        });
        self.failed = fed.is_err();
        fed
    }

    /// Scans the last record (one without a final line ending) and returns the counts.
    pub fn finish(mut self) -> Result<Found, CsvError> {
        if self.failed {
            return Err(CsvError::Failed);
        }
        self.framer.finish();
        self.drain()?;
        self.matcher.validate()?;
        Ok(self.found)
    }

    fn drain(&mut self) -> Result<(), CsvError> {
        loop {
            match self.framer.next_unit()? {
                Next::Unit(span) => self.unit(span)?,
                Next::More | Next::End => return Ok(()),
            }
        }
    }

    fn unit(&mut self, span: Span) -> Result<(), CsvError> {
        match span.kind {
            UnitKind::Mark => Ok(()),
            UnitKind::Header(line) => self.matcher.header(line, self.framer.body(&span)),
            UnitKind::Record(record) => {
                let owners = self.matcher.owners(self.framer.body(&span), record)?;
                self.found.count(&owners);
                Ok(())
            }
        }
    }
}

impl std::io::Write for Scanner<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Streams a reader through a [`Scanner`].
pub fn find(
    mut reader: impl BufRead,
    dialect: &Dialect,
    columns: &[String],
    ids: &MatchSet,
    max_record: usize,
) -> Result<Found, CsvError> {
    let mut scanner = Scanner::new(dialect, columns, ids, max_record);
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CsvError::Io(e)),
        };
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
    use std::collections::BTreeMap;
    use std::io::Write;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::lakefile::csv::dialect::{LAZY_SIMPLE, OPEN_CSV};

    const MAX: usize = DEFAULT_MAX_RECORD_BYTES;

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    fn glue(library: &str, params: &[(&str, &str)], columns: &[(&str, &str)]) -> Dialect {
        let params: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let columns: Vec<(String, String)> = columns
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        Dialect::of_glue(Some(library), &params, &columns).unwrap()
    }

    fn scan(
        text: &[u8],
        dialect: &Dialect,
        columns: &[&str],
        ids: &MatchSet,
    ) -> Result<Found, CsvError> {
        find(text, dialect, &cols(columns), ids, MAX)
    }

    fn matched(text: &str, dialect: &Dialect, columns: &[&str], ids: &MatchSet) -> (u64, u64) {
        let found = scan(text.as_bytes(), dialect, columns, ids).unwrap();
        (found.records_total, found.records_matched)
    }

    fn tsv() -> Dialect {
        let columns = [("id", "bigint"), ("email", "string"), ("code", "int")];
        glue(
            LAZY_SIMPLE,
            &[("field.delim", "\t"), ("escape.delim", "\\")],
            &columns,
        )
    }

    #[test]
    fn lazy_simple_records_are_lines_whatever_their_endings() {
        let text = "7\ta@x\t1\r\n8\tb@x\t2\r9\t\\N\t3\n\n007\tc@x\t4\n7.9\td\\\te@x\t5";
        let ids = MatchSet::from_values(&[json!(7)]);
        // 7, 007 and 7.9 are 7 to a bigint column, as Athena reads them; the empty line
        // is a record too (its id is NULL).
        assert_eq!(matched(text, &tsv(), &["id"], &ids), (6, 3));
        let ids = MatchSet::from_values(&[json!("d\te@x"), json!("\\N"), json!("")]);
        // An escaped delimiter stays in the value; the null text and a missing field
        // are NULL, never an id.
        assert_eq!(matched(text, &tsv(), &["email"], &ids), (6, 1));
        let ids = MatchSet::from_values(&[json!("")]);
        assert_eq!(
            matched(text, &tsv(), &["id", "code"], &ids),
            (6, 0),
            "an empty number is NULL"
        );
    }

    #[test]
    fn each_match_counts_the_records_it_is_once() {
        let ids = MatchSet::from_values(&[json!(7), json!("a@x"), json!("7"), json!(9)]);
        let text = "7\ta@x\t1\n7\tb@x\t2\n8\ta@x\t7\n";
        let found = scan(text.as_bytes(), &tsv(), &["id", "email", "code"], &ids).unwrap();
        assert_eq!((found.records_total, found.records_matched), (3, 3));
        assert_eq!(found.rows_by_match, [(0, 3), (1, 2), (2, 3)].into());
    }

    #[test]
    fn the_last_column_takes_the_rest_when_told() {
        let columns = [("id", "int"), ("rest", "string")];
        let rest = [
            ("field.delim", ","),
            ("serialization.last.column.takes.rest", "TRUE"),
        ];
        let ids = MatchSet::from_values(&[json!("b,c")]);
        let text = "1,b,c\n2,b\n";
        let dialect = glue(LAZY_SIMPLE, &rest, &columns);
        assert_eq!(matched(text, &dialect, &["rest"], &ids), (2, 1));
        let dialect = glue(LAZY_SIMPLE, &rest[..1], &columns);
        assert_eq!(matched(text, &dialect, &["rest"], &ids), (2, 0));
    }

    #[test]
    fn typing_follows_the_declared_column_type() {
        let dialect = glue(
            LAZY_SIMPLE,
            &[("field.delim", ",")],
            &[("n", "int"), ("s", "string")],
        );
        let text = "007,007\n7.0,7.0\n7,7\n";
        let count = |column: &str, id: serde_json::Value| {
            matched(text, &dialect, &[column], &MatchSet::from_values(&[id])).1
        };
        assert_eq!(count("n", json!(7)), 3);
        assert_eq!(count("n", json!("7")), 3);
        assert_eq!(count("s", json!(7)), 1, "a string column compares the text");
        assert_eq!(count("s", json!("007")), 1);
        // OpenCSV: Athena casts the string: "7.0" is no int.
        let csv = glue(OPEN_CSV, &[], &[("n", "int"), ("s", "string")]);
        let open =
            |column: &str, id| matched(text, &csv, &[column], &MatchSet::from_values(&[id])).1;
        assert_eq!(open("n", json!(7)), 2);
        assert_eq!(open("s", json!("7.0")), 1);
    }

    #[test]
    fn integers_beyond_sixty_four_bits_compare_exactly_or_not_at_all() {
        let columns = [("b", "bigint"), ("d", "decimal(38,0)"), ("s", "string")];
        let dialect = glue(LAZY_SIMPLE, &[("field.delim", ",")], &columns);
        let text = "12345678901234567890,12345678901234567890,12345678901234567890\n\
                    12345678901234567891,12345678901234567891,12345678901234567891\n";
        let ids = MatchSet::from_values(&[json!(12345678901234567890u64)]);
        assert_eq!(
            matched(text, &dialect, &["b"], &ids).1,
            0,
            "beyond bigint is NULL"
        );
        assert_eq!(matched(text, &dialect, &["d"], &ids).1, 1);
        assert_eq!(matched(text, &dialect, &["s"], &ids).1, 1);
        let ids = MatchSet::from_values(&[json!("9223372036854775807")]);
        let text = "9223372036854775807,1,x\n9223372036854775806,1,x\n";
        assert_eq!(matched(text, &dialect, &["b"], &ids).1, 1);
    }

    #[test]
    fn open_csv_reads_quotes_escapes_and_fields_spanning_lines() {
        let dialect = glue(
            OPEN_CSV,
            &[("skip.header.line.count", "1")],
            &[("id", "string"), ("note", "string"), ("email", "string")],
        );
        let text = "id,note,email\r\n\
                    1,\"a, b\",x@y\r\n\
                    2,\"say \"\"hi\"\"\",\"q\\\"z\"\r\n\
                    3,\"two\r\nlines, 7\",z@y\r\n\
                    4,plain,\"w@y\"";
        let ids = MatchSet::from_values(&[json!("a, b"), json!("say \"hi\""), json!("q\"z")]);
        assert_eq!(matched(text, &dialect, &["note", "email"], &ids), (4, 2));
        // The record spanning two lines is one record, matched by its CSV reading…
        let ids = MatchSet::from_values(&[json!("two\r\nlines, 7")]);
        assert_eq!(matched(text, &dialect, &["note"], &ids), (4, 1));
        // …and by what Athena reads on its second line alone: "lines" as its id (and the
        // rest as an unterminated quoted field, NULL).
        let ids = MatchSet::from_values(&[json!("lines"), json!(" 7")]);
        assert_eq!(matched(text, &dialect, &["id"], &ids), (4, 1));
        assert_eq!(matched(text, &dialect, &["note"], &ids), (4, 0));
        let ids = MatchSet::from_values(&[json!("w@y"), json!("x@y")]);
        assert_eq!(matched(text, &dialect, &["email"], &ids), (4, 2));
    }

    #[test]
    fn a_stray_quote_never_joins_lines_and_an_escaped_one_keeps_a_field_open() {
        let dialect = glue(
            OPEN_CSV,
            &[],
            &[("id", "string"), ("name", "string"), ("email", "string")],
        );
        // opencsv reads the quote in O"Brien as opening a field (so Athena reads that
        // row's email as NULL); the writer's rules, and Python, read it as a letter.
        let text = "5,O\"Brien,x@y\n6,D\"Arcy,z@y\n7,plain,w@y\n";
        let ids = MatchSet::from_values(&[json!("x@y")]);
        assert_eq!(matched(text, &dialect, &["email"], &ids), (3, 1));
        let ids = MatchSet::from_values(&[json!("O\"Brien")]);
        assert_eq!(matched(text, &dialect, &["name"], &ids), (3, 1));
        // Spark escapes quotes with the table's escape (`\`): the field stays open
        // across the line ending, one record.
        let text = "1,\"say \\\"hi\\\"\nthere\",x@y\n2,y,z@y\n";
        let ids = MatchSet::from_values(&[json!("say \"hi\"\nthere")]);
        assert_eq!(matched(text, &dialect, &["name"], &ids), (2, 1));
    }

    #[test]
    fn a_header_names_the_columns_when_the_dialect_does_not() {
        let dialect = Dialect::of_path(b',', Some(b'"'), None, true, None).unwrap();
        let text = "\u{FEFF}\"ID\",Email\n1,a@x\n2,b@x\n";
        let ids = MatchSet::from_values(&[json!("b@x"), json!(1)]);
        assert_eq!(matched(text, &dialect, &["email"], &ids), (2, 1));
        assert_eq!(
            matched(text, &dialect, &["id"], &ids),
            (2, 1),
            "the mark is not part of the name"
        );
        let err = scan(text.as_bytes(), &dialect, &["phone"], &ids).unwrap_err();
        assert!(
            matches!(&err, CsvError::UnknownColumn { column, count: 2 } if column == "phone"),
            "{err}"
        );
        let twice = "id,ID\n1,2\n";
        let err = scan(twice.as_bytes(), &dialect, &["id"], &ids).unwrap_err();
        assert!(matches!(err, CsvError::DuplicateColumn { .. }), "{err}");
        // An empty object has no columns to miss; a declared table always has.
        assert_eq!(
            scan(b"", &dialect, &["phone"], &ids).unwrap(),
            Found::default()
        );
        let declared = Dialect::of_path(b',', None, None, false, Some(vec!["id".into()])).unwrap();
        assert!(matches!(
            scan(b"", &declared, &["phone"], &ids),
            Err(CsvError::UnknownColumn { .. })
        ));
    }

    #[test]
    fn a_match_column_of_a_complex_type_is_refused() {
        let dialect = glue(
            LAZY_SIMPLE,
            &[],
            &[("tags", "array<string>"), ("id", "int")],
        );
        let ids = MatchSet::from_values(&[json!(1)]);
        let err = scan(b"a\x02b\x011\n", &dialect, &["tags"], &ids).unwrap_err();
        assert!(err.to_string().contains("array<string>"), "{err}");
        assert_eq!(
            scan(b"a\x02b\x011\n", &dialect, &["id"], &ids)
                .unwrap()
                .records_matched,
            1
        );
    }

    #[test]
    fn composites_need_every_column_and_compare_as_declared() {
        let dialect = glue(
            LAZY_SIMPLE,
            &[("field.delim", ",")],
            &[("id", "int"), ("kind", "string")],
        );
        let ids = MatchSet::default().with_composites(&[
            json!([{"column": "ID", "value": "0042"}, {"column": "kind", "value": "a"}]),
            json!([{"column": "id", "value": 7}, {"column": "kind", "value": 1}]),
        ]);
        let text = "42,a\n042,a\n42,b\n\\N,a\n7,1\n7,01\n";
        let found = scan(text.as_bytes(), &dialect, &[], &ids).unwrap();
        assert_eq!((found.records_total, found.records_matched), (6, 3));
        assert_eq!(found.rows_by_match, [(0, 2), (1, 1)].into());
        let absent = MatchSet::default()
            .with_composites(&[json!([{"column": "id", "value": 1}, {"column": "x", "value": 1}])]);
        assert!(matches!(
            scan(text.as_bytes(), &dialect, &[], &absent),
            Err(CsvError::UnknownColumn { .. })
        ));
    }

    #[test]
    fn chunk_boundaries_never_change_the_result() {
        let dialect = glue(
            OPEN_CSV,
            &[("skip.header.line.count", "1")],
            &[("id", "int"), ("note", "string")],
        );
        let text = "\u{FEFF}id,note\r\n1,\"x\r\ny\"\r2,z\r\n\r\n3,\"q\"\"\"\r";
        let ids = MatchSet::from_values(&[json!(1), json!(3), json!("z")]);
        let columns = cols(&["id", "note"]);
        let whole = find(text.as_bytes(), &dialect, &columns, &ids, MAX).unwrap();
        assert_eq!((whole.records_total, whole.records_matched), (4, 3));
        for size in 1..text.len() {
            let mut scanner = Scanner::new(&dialect, &columns, &ids, MAX);
            for chunk in text.as_bytes().chunks(size) {
                scanner.write_all(chunk).unwrap();
            }
            assert_eq!(scanner.finish().unwrap(), whole, "chunks of {size}");
        }
    }

    #[test]
    fn a_record_longer_than_the_cap_fails_in_any_chunks_and_is_never_held_whole() {
        let dialect = Dialect::of_path(b',', Some(b'"'), None, false, Some(cols(&["id"]))).unwrap();
        let ids = MatchSet::from_values(&[json!("1")]);
        let fits = format!("1,\"{}\"", "x\n".repeat(50));
        let max = fits.len();
        let text = format!("{fits}\r\n{fits}x\n{fits}\n");
        let columns = columns_id();
        for size in [1, 7, max, text.len()] {
            let mut scanner = Scanner::new(&dialect, &columns, &ids, max);
            let err = text.as_bytes().chunks(size).try_for_each(|c| {
                let r = scanner.feed(c);
                if r.is_ok() {
                    assert!(scanner.framer_len() <= max + 1);
                }
                r
            });
            let err = err.unwrap_err();
            assert!(
                matches!(err, CsvError::RecordTooLong { record: 2, max: m } if m == max),
                "{err}"
            );
            assert!(matches!(scanner.feed(b"1\n"), Err(CsvError::Failed)));
        }
        let found = find(
            format!("{fits}\r\n{fits}").as_bytes(),
            &dialect,
            &columns_id(),
            &ids,
            max,
        )
        .unwrap();
        assert_eq!((found.records_total, found.records_matched), (2, 2));
    }

    fn columns_id() -> Vec<String> {
        cols(&["id"])
    }

    impl Scanner<'_> {
        fn framer_len(&self) -> usize {
            self.framer.bytes_held()
        }
    }

    #[test]
    fn a_quoted_field_never_closed_is_an_error_not_a_guess() {
        let dialect = glue(OPEN_CSV, &[], &[("id", "string"), ("note", "string")]);
        let ids = MatchSet::from_values(&[json!("1")]);
        let err = scan(b"1,ok\n2,\"secret\n3,x\n", &dialect, &["id"], &ids).unwrap_err();
        assert!(matches!(err, CsvError::Unterminated { record: 2 }), "{err}");
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn a_gzip_object_inflating_far_beyond_the_cap_fails_after_inflating_only_the_cap() {
        let mut member = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        member.write_all(&vec![b'x'; 1 << 20]).unwrap();
        let member = member.finish().unwrap();
        let dialect = Dialect::of_path(b',', None, None, false, Some(cols(&["id"]))).unwrap();
        let (ids, columns) = (MatchSet::from_values(&[json!("1")]), cols(&["id"]));
        let max = 4 << 20;
        let mut gunzip =
            flate2::write::MultiGzDecoder::new(Scanner::new(&dialect, &columns, &ids, max));
        let mut fed = 0;
        let err = (0..256)
            .try_for_each(|_| {
                fed += 1;
                gunzip.write_all(&member)
            })
            .map_err(CsvError::from_io)
            .unwrap_err();
        assert!(
            matches!(err, CsvError::RecordTooLong { record: 1, .. }),
            "{err}"
        );
        assert!(fed <= 6, "stopped after {fed} MiB inflated");
    }

    proptest! {
        #[test]
        fn any_bytes_in_any_chunks_give_one_answer_and_never_panic(
            bytes in prop::collection::vec(prop::sample::select(b"ab1,\"\\\r\n\t\x01 \xEF\xBB\xBF".to_vec()), 0..120),
            size in 1usize..40,
            open in any::<bool>(),
        ) {
            let dialect = match open {
                true => glue(OPEN_CSV, &[("skip.header.line.count", "1")], &[("a", "int"), ("b", "string")]),
                false => glue(LAZY_SIMPLE, &[("escape.delim", "\\")], &[("a", "double"), ("b", "string")]),
            };
            let ids = MatchSet::from_values(&[json!(1), json!("a"), json!("b,1")]);
            let columns = cols(&["a", "b"]);
            let whole = find(&bytes[..], &dialect, &columns, &ids, 64).map_err(|e| e.to_string());
            let mut scanner = Scanner::new(&dialect, &columns, &ids, 64);
            let chunked = bytes
                .chunks(size)
                .try_for_each(|c| scanner.feed(c))
                .and_then(|()| scanner.finish())
                .map_err(|e| e.to_string());
            prop_assert_eq!(whole, chunked);
        }
    }
}
