//! The read-back of a CSV rewrite before its upload: the rewrite (decompressed by the
//! caller) is framed and compared with the source unit by unit, in one pass over both.
//! It must be exactly the source without its matching records:
//!
//! - the byte-order mark and every header line of the source, byte for byte;
//! - every source record that does not match (none when every row goes), byte for byte
//!   with its line ending, in the source's order, and nothing else;
//! - no record of the rewrite matches (asked of its own bytes), and the records before
//!   and removed are the ones the rewrite reported.
//!
//! Whether a record matches is decided as find decides it. Memory holds one record of
//! each file, of at most `max_record` bytes. Errors name record numbers, never contents.

use std::io::BufRead;

use crate::lakefile::match_set::MatchSet;

use super::dialect::Dialect;
use super::error::CsvError;
use super::find::Matcher;
use super::records::{UnitKind, UnitReader};

/// What the rewrite said it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub records_before: u64,
    pub records_removed: u64,
    /// Every row goes (the subject owns the whole partition): no record is kept.
    pub every_row: bool,
}

/// Checks that `rewrite` is `source` without exactly its matching records (see the
/// module docs), and that the rewrite's figures are the ones counted.
pub fn check(
    source: impl BufRead,
    rewrite: impl BufRead,
    dialect: &Dialect,
    columns: &[String],
    ids: &MatchSet,
    expected: Expected,
    max_record: usize,
) -> Result<(), CsvError> {
    let mut source = UnitReader::new(source, dialect, max_record, Some("source"));
    let mut rewrite = UnitReader::new(rewrite, dialect, max_record, Some("rewrite"));
    let mut matcher = Matcher::new(dialect, columns, ids);
    let (mut before, mut removed, mut kept) = (0u64, 0u64, 0u64);
    while let Some(span) = source.next()? {
        let (bytes, body) = (source.framer.bytes(&span), source.framer.body(&span));
        let UnitKind::Record(record) = span.kind else {
            same_unit(&mut rewrite, span.kind, bytes)?;
            if let (UnitKind::Header(line), false) = (span.kind, expected.every_row) {
                matcher.header(line, body)?;
            }
            continue;
        };
        before += 1;
        if expected.every_row || !matcher.owners(body, record)?.is_empty() {
            removed += 1;
            continue;
        }
        kept += 1;
        kept_record(&mut rewrite, &mut matcher, record, bytes)?;
    }
    if rewrite.next()?.is_some() {
        return Err(CsvError::Long { kept });
    }
    let counts = [
        ("records before", expected.records_before, before),
        ("records removed", expected.records_removed, removed),
    ];
    for (what, reported, counted) in counts {
        if reported != counted {
            return Err(CsvError::Count {
                what,
                reported,
                counted,
            });
        }
    }
    Ok(())
}

/// The rewrite's next unit is the source's mark or header line `kind`, byte for byte.
fn same_unit(
    rewrite: &mut UnitReader<impl BufRead>,
    kind: UnitKind,
    bytes: &[u8],
) -> Result<(), CsvError> {
    let same = rewrite.next()?.filter(|o| o.kind == kind);
    if same.is_none_or(|o| rewrite.framer.bytes(&o) != bytes) {
        return Err(match kind {
            UnitKind::Header(line) => CsvError::HeaderDiffers { line },
            _ => CsvError::MarkDiffers,
        });
    }
    Ok(())
}

/// The rewrite's next record is the source's kept record `record` byte for byte, and
/// does not match (asked of its own bytes).
fn kept_record(
    rewrite: &mut UnitReader<impl BufRead>,
    matcher: &mut Matcher,
    record: u64,
    bytes: &[u8],
) -> Result<(), CsvError> {
    let out = rewrite.next()?.ok_or(CsvError::Short { record })?;
    let UnitKind::Record(out_record) = out.kind else {
        return Err(CsvError::Short { record });
    };
    if rewrite.framer.bytes(&out) != bytes {
        return Err(CsvError::Differs {
            record: out_record,
            source_record: record,
        });
    }
    if !matcher
        .owners(rewrite.framer.body(&out), out_record)?
        .is_empty()
    {
        return Err(CsvError::Matches { record: out_record });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::lakefile::csv::DEFAULT_MAX_RECORD_BYTES as MAX;
    use crate::lakefile::csv::forget::forget;

    const SOURCE: &str = "\u{FEFF}id,note\r\n1,\"a\r\nb\"\r\n2,x\r3,\"y\"\n\n1,z\n4,w";

    fn dialect() -> Dialect {
        Dialect::of_path(b',', Some(b'"'), None, true, None).unwrap()
    }

    fn columns() -> Vec<String> {
        vec!["id".to_owned()]
    }

    fn ids() -> MatchSet {
        MatchSet::from_values(&[json!("1")])
    }

    fn expected(before: u64, removed: u64) -> Expected {
        Expected {
            records_before: before,
            records_removed: removed,
            every_row: false,
        }
    }

    fn rewritten() -> String {
        let mut out = Vec::new();
        forget(
            SOURCE.as_bytes(),
            &mut out,
            &dialect(),
            &columns(),
            &ids(),
            false,
            MAX,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn check_text(rewrite: &str, e: Expected) -> Result<(), CsvError> {
        check(
            SOURCE.as_bytes(),
            rewrite.as_bytes(),
            &dialect(),
            &columns(),
            &ids(),
            e,
            MAX,
        )
    }

    #[test]
    fn the_source_without_its_matching_records_passes() {
        let out = rewritten();
        assert_eq!(out, "\u{FEFF}id,note\r\n2,x\r3,\"y\"\n\n4,w");
        check_text(&out, expected(6, 2)).unwrap();
        let every = Expected {
            every_row: true,
            ..expected(6, 6)
        };
        check_text("\u{FEFF}id,note\r\n", every).unwrap();
        assert!(matches!(
            check_text(&out, every),
            Err(CsvError::Long { kept: 0 })
        ));
    }

    #[test]
    fn any_change_to_the_rewrite_fails_and_names_no_content() {
        let out = rewritten();
        let cases = [
            (
                out.replacen("2,x", "2,y", 1),
                "record 1 of the rewrite is not record 2",
            ),
            (
                out.replacen("\r3", "\n3", 1),
                "record 1 of the rewrite is not record 2",
            ),
            (out.replacen("4,w", "", 1), "ends before record 6"),
            (out.replacen("\u{FEFF}", "", 1), "byte-order mark"),
            (out.replacen("note", "Note", 1), "header line 1"),
            (
                out.replacen("2,x\r", "", 1)
                    .replacen("\n\n", "\n\n2,x\r", 1),
                "record 1 of the rewrite is not record 2",
            ),
        ];
        for (bad, message) in cases {
            let err = check_text(&bad, expected(6, 2)).unwrap_err().to_string();
            assert!(err.contains(message), "{err:?} for {bad:?}");
            assert!(!err.contains(",x") && !err.contains("\"y\""), "{err}");
        }
        let err = check_text(&out, expected(7, 2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "records before: the rewrite reported 7, the read-back counts 6"
        );
    }

    #[test]
    fn a_matching_record_left_in_the_rewrite_fails() {
        let out = rewritten().replacen("2,x\r", "1,z\n2,x\r", 1);
        assert!(matches!(
            check_text(&out, expected(6, 2)),
            Err(CsvError::Differs {
                record: 1,
                source_record: 2
            })
        ));
        // Left at the end, the record is one too many.
        let source = "id,note\n1,a\n2,b\n";
        let err = check(
            source.as_bytes(),
            "id,note\n2,b\n1,a\n".as_bytes(),
            &dialect(),
            &columns(),
            &ids(),
            expected(2, 1),
            MAX,
        );
        assert!(matches!(err, Err(CsvError::Long { kept: 1 })), "{err:?}");
    }

    /// One CSV field as RFC 4180 writers write it: quoted when it must be.
    fn quoted(field: &str, alone: bool) -> String {
        match field.contains([',', '"', '\r', '\n']) || (alone && field.is_empty()) {
            true => format!("\"{}\"", field.replace('"', "\"\"")),
            false => field.to_owned(),
        }
    }

    fn record() -> impl Strategy<Value = (Vec<String>, &'static str)> {
        let first = prop_oneof!["[xyz]{1,2}", "[abc,\"\r\n \\\\]{0,4}"];
        let rest = prop::collection::vec("[abc,\"\r\n \\\\é]{0,5}", 0..3);
        let ending = prop::sample::select(vec!["\n", "\r\n", "\r"]);
        (
            (first, rest).prop_map(|(f, mut r)| {
                r.insert(0, f);
                r
            }),
            ending,
        )
    }

    /// A record as a writer writes it; `sloppy` leaves a stray quote inside a field
    /// unquoted (`a"b`), as hand-made files have them.
    fn line(fields: &[String], sloppy: bool) -> String {
        let alone = fields.len() == 1;
        let field =
            |f: &String| match sloppy && !f.starts_with('"') && !f.contains([',', '\r', '\n']) {
                true if !(alone && f.is_empty()) => f.clone(),
                _ => quoted(f, alone),
            };
        fields.iter().map(field).collect::<Vec<_>>().join(",")
    }

    proptest! {
        #[test]
        fn forget_then_check_keeps_exactly_the_records_that_do_not_match(
            records in prop::collection::vec(record(), 0..12),
            header in any::<bool>(),
            last_ending in any::<bool>(),
            wanted in prop::collection::btree_set("[xyz]{1,2}", 0..4),
            flip in any::<prop::sample::Index>(),
            sloppy in any::<bool>(),
        ) {
            let dialect = Dialect::of_path(b',', Some(b'"'), None, header, Some(vec!["c0".into(), "c1".into()])).unwrap();
            let texts: Vec<String> = records.iter().enumerate().map(|(i, (fields, ending))| {
                let ending = if i + 1 == records.len() && !last_ending { "" } else { ending };
                format!("{}{ending}", line(fields, sloppy))
            }).collect();
            let head = if header { "c0,c1\n" } else { "" };
            let source = format!("{head}{}", texts.concat());
            let ids = MatchSet::from_values(wanted.iter().map(|w| json!(w)).collect::<Vec<_>>().iter());
            let columns = vec!["c0".to_owned()];
            let mut out = Vec::new();
            let forgot = forget(source.as_bytes(), &mut out, &dialect, &columns, &ids, false, MAX).unwrap();
            let kept: String = records.iter().zip(&texts).filter(|((f, _), _)| !wanted.contains(&f[0])).map(|(_, t)| t.as_str()).collect();
            prop_assert_eq!(String::from_utf8(out.clone()).unwrap(), format!("{head}{kept}"));
            prop_assert_eq!(forgot.records_before, records.len() as u64);
            let removed = records.iter().filter(|(f, _)| wanted.contains(&f[0])).count() as u64;
            prop_assert_eq!(forgot.records_removed, removed);
            let e = Expected { records_before: forgot.records_before, records_removed: removed, every_row: false };
            prop_assert!(check(source.as_bytes(), &out[..], &dialect, &columns, &ids, e, MAX).is_ok());
            if !out.is_empty() {
                let mut bad = out.clone();
                let at = flip.index(bad.len());
                bad[at] = if bad[at] == b'a' { b'b' } else { b'a' };
                prop_assert!(check(source.as_bytes(), &bad[..], &dialect, &columns, &ids, e, MAX).is_err());
            }
        }
    }
}
