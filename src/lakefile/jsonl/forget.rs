//! Forget in one JSON Lines object: copy every line that does not match byte for byte,
//! drop the ones that do. The caller wraps the streams in gunzip / gzip for `.gz` objects.
//! Memory holds one line, of at most `max_line` bytes: a longer one fails the rewrite.

use std::io::{BufRead, Write};

use super::find::{JsonFindError, LineRead, line_bytes_match, read_line};
use crate::lakefile::match_set::MatchSet;

/// What a rewrite did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonForgetReport {
    pub lines_before: u64,
    pub lines_removed: u64,
}

/// Streams `input` to `out` without the matching lines. Blank lines are kept as they are;
/// a line longer than `max_line` bytes fails the rewrite.
pub fn forget_lines(
    mut input: impl BufRead,
    mut out: impl Write,
    columns: &[String],
    ids: &MatchSet,
    max_line: usize,
) -> Result<JsonForgetReport, JsonFindError> {
    let mut report = JsonForgetReport::default();
    let mut line = Vec::new();
    loop {
        match read_line(&mut input, &mut line, max_line)? {
            LineRead::Line => {}
            LineRead::End => break,
            LineRead::TooLong => {
                return Err(JsonFindError::LineTooLong {
                    line: report.lines_before + 1,
                    max: max_line,
                });
            }
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            out.write_all(&line)?;
            continue;
        }
        report.lines_before += 1;
        if line_bytes_match(&line, columns, ids, report.lines_before)? {
            report.lines_removed += 1;
        } else {
            out.write_all(&line)?;
        }
    }
    out.flush()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lakefile::jsonl::find::DEFAULT_MAX_LINE_BYTES as MAX;
    use serde_json::json;

    #[test]
    fn matching_lines_go_and_every_other_byte_stays() {
        let input = "{\"user\": {\"id\": 1}, \"x\": \"a\"}\n\n{\"user\": {\"id\": 2},   \"x\":\"b\"}\n{\"user\": {\"id\": \"01\"}}";
        let ids = MatchSet::from_values(&[json!(1)]);
        let mut out = Vec::new();
        let r = forget_lines(
            input.as_bytes(),
            &mut out,
            &["user.id".to_owned()],
            &ids,
            MAX,
        )
        .unwrap();
        assert_eq!(
            r,
            JsonForgetReport {
                lines_before: 3,
                lines_removed: 1
            }
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\n{\"user\": {\"id\": 2},   \"x\":\"b\"}\n{\"user\": {\"id\": \"01\"}}"
        );
        // Declared an int (Glue), "01" is read as 1, as the JSON SerDe reads it.
        let ids = ids.with_declared([("user.id", "int")]);
        let mut out = Vec::new();
        let r = forget_lines(
            input.as_bytes(),
            &mut out,
            &["user.id".to_owned()],
            &ids,
            MAX,
        )
        .unwrap();
        assert_eq!(r.lines_removed, 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\n{\"user\": {\"id\": 2},   \"x\":\"b\"}\n"
        );
    }

    #[test]
    fn a_malformed_line_stops_the_rewrite() {
        let ids = MatchSet::from_values(&[json!(1)]);
        let err = forget_lines(
            "{}\nnope\n".as_bytes(),
            Vec::new(),
            &["a".to_owned()],
            &ids,
            MAX,
        );
        assert!(matches!(err, Err(JsonFindError::Malformed { line: 2 })));
    }

    #[test]
    fn only_the_line_of_exactly_the_id_goes_when_neighbours_share_an_f64() {
        let input = "{\"id\": 12345678901234567891}\n{\"id\": 12345678901234567890}\n{\"id\": 1.2345678901234567e19}\n";
        let ids = MatchSet::from_values(&[json!(12345678901234567890u64)]);
        let mut out = Vec::new();
        let r = forget_lines(input.as_bytes(), &mut out, &["id".to_owned()], &ids, MAX).unwrap();
        assert_eq!(r.lines_removed, 1);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"id\": 12345678901234567891}\n{\"id\": 1.2345678901234567e19}\n"
        );
    }

    #[test]
    fn a_line_longer_than_the_cap_fails_the_rewrite() {
        let ids = MatchSet::from_values(&[json!(1)]);
        let long = format!("{{\"id\": 2, \"p\": \"{}\"}}", "x".repeat(2000));
        let input = format!("{{\"id\": 1}}\n\n{long}\n{{\"id\": 3}}\n");
        let err =
            forget_lines(input.as_bytes(), Vec::new(), &["id".to_owned()], &ids, 1024).unwrap_err();
        assert!(
            matches!(err, JsonFindError::LineTooLong { line: 2, max: 1024 }),
            "{err}"
        );
        let mut out = Vec::new();
        let r = forget_lines(
            input.as_bytes(),
            &mut out,
            &["id".to_owned()],
            &ids,
            long.len(),
        );
        assert_eq!(r.unwrap().lines_removed, 1);
    }
}
