//! Forget in one CSV object: every record that matches goes, every other byte stays. The
//! byte-order mark, the header lines and each kept record are copied as they are, line
//! ending and all; quoting, number formats and line endings are never rewritten. Memory
//! holds one record of at most `max_record` bytes.

use std::io::{BufRead, Write};

use crate::lakefile::match_set::MatchSet;

use super::dialect::Dialect;
use super::error::CsvError;
use super::find::Matcher;
use super::records::{UnitKind, UnitReader};

/// What a rewrite did. Header lines are not records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forgot {
    pub records_before: u64,
    pub records_removed: u64,
}

/// Streams `input` to `out` without its matching records (without any record when
/// `every_row`: the subject owns the whole partition; the mark and header lines stay).
pub fn forget(
    input: impl BufRead,
    mut out: impl Write,
    dialect: &Dialect,
    columns: &[String],
    ids: &MatchSet,
    every_row: bool,
    max_record: usize,
) -> Result<Forgot, CsvError> {
    let mut reader = UnitReader::new(input, dialect, max_record, None);
    let mut matcher = Matcher::new(dialect, columns, ids);
    let mut forgot = Forgot::default();
    while let Some(span) = reader.next()? {
        let (bytes, body) = (reader.framer.bytes(&span), reader.framer.body(&span));
        match span.kind {
            UnitKind::Mark => out.write_all(bytes)?,
            UnitKind::Header(line) => {
                if !every_row {
                    matcher.header(line, body)?;
                }
                out.write_all(bytes)?;
            }
            UnitKind::Record(record) => {
                forgot.records_before += 1;
                if every_row || !matcher.owners(body, record)?.is_empty() {
                    forgot.records_removed += 1;
                } else {
                    out.write_all(bytes)?;
                }
            }
        }
    }
    if !every_row {
        matcher.validate()?;
    }
    out.flush()?;
    Ok(forgot)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::lakefile::csv::DEFAULT_MAX_RECORD_BYTES as MAX;
    use crate::lakefile::csv::dialect::{LAZY_SIMPLE, OPEN_CSV};

    fn dialect(library: &str, params: &[(&str, &str)]) -> Dialect {
        let params: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let columns =
            [("id", "bigint"), ("email", "string")].map(|(n, t)| (n.to_owned(), t.to_owned()));
        Dialect::of_glue(Some(library), &params, &columns).unwrap()
    }

    fn run(text: &str, d: &Dialect, ids: &MatchSet, every_row: bool) -> (Forgot, String) {
        let mut out = Vec::new();
        let columns = ["id".to_owned(), "email".to_owned()];
        let forgot = forget(text.as_bytes(), &mut out, d, &columns, ids, every_row, MAX).unwrap();
        (forgot, String::from_utf8(out).unwrap())
    }

    #[test]
    fn matching_records_go_and_every_other_byte_stays() {
        let d = dialect(
            LAZY_SIMPLE,
            &[("field.delim", ","), ("skip.header.line.count", "1")],
        );
        let text = "\u{FEFF}id,email\r\n1,a@x\r\n2,b@x\r3,c@x\n\n007,d@x\n4,\"e\"";
        let ids = MatchSet::from_values(&[json!(7), json!("b@x"), json!("\"e\"")]);
        let (forgot, out) = run(text, &d, &ids, false);
        assert_eq!(
            forgot,
            Forgot {
                records_before: 6,
                records_removed: 3
            }
        );
        assert_eq!(out, "\u{FEFF}id,email\r\n1,a@x\r\n3,c@x\n\n");
        // Every row: the mark and the header stay.
        let (forgot, out) = run(text, &d, &MatchSet::default(), true);
        assert_eq!(
            (forgot.records_removed, out.as_str()),
            (6, "\u{FEFF}id,email\r\n")
        );
    }

    #[test]
    fn a_record_spanning_lines_goes_whole_or_stays_whole() {
        let d = dialect(OPEN_CSV, &[]);
        let text = "1,\"a\r\nb\"\r\n2,\"c\nd\"\n3,x";
        let ids = MatchSet::from_values(&[json!("c\nd")]);
        let (forgot, out) = run(text, &d, &ids, false);
        assert_eq!((forgot.records_before, forgot.records_removed), (3, 1));
        assert_eq!(out, "1,\"a\r\nb\"\r\n3,x");
        let ids = MatchSet::from_values(&[json!(1), json!(3)]);
        assert_eq!(run(text, &d, &ids, false).1, "2,\"c\nd\"\n");
    }

    #[test]
    fn a_malformed_object_stops_the_rewrite() {
        let d = dialect(OPEN_CSV, &[]);
        let ids = MatchSet::from_values(&[json!(1)]);
        let columns = ["id".to_owned()];
        let err = forget(&b"1,\"x\n"[..], Vec::new(), &d, &columns, &ids, false, MAX).unwrap_err();
        assert!(matches!(err, CsvError::Unterminated { record: 1 }), "{err}");
        let err = forget(
            &b"1,xxxxxxxx\n"[..],
            Vec::new(),
            &d,
            &columns,
            &ids,
            false,
            4,
        )
        .unwrap_err();
        assert!(
            matches!(err, CsvError::RecordTooLong { record: 1, max: 4 }),
            "{err}"
        );
    }
}
