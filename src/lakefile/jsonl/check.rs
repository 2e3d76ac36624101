//! The read-back of a JSON Lines rewrite before its upload, as Parquet has
//! (`parquet::check`): the rewritten file is read in full (decompressed by the caller) and
//! compared with the source, line by line, in one pass over both. It must be exactly the
//! source without its matching lines:
//!
//! - every source line that does not match is in the rewrite, byte for byte (its line
//!   ending too), in the source's order, and nothing else is;
//! - a blank (whitespace-only) line is not a row: the rewrite keeps it as it is, except
//!   when every row goes (the rewrite is then empty);
//! - no line of the rewrite matches, and its rows are the rows before minus the rows
//!   removed, as the rewrite reported them.
//!
//! Whether a line matches is decided by `jsonl::find`'s scanner, as find and verify decide
//! it. Memory holds one line of each file, of at most `max_line` bytes (a longer one fails
//! the check). Errors name line numbers, never line contents.

use std::io::BufRead;

use super::find::{JsonFindError, LineRead, line_bytes_match, read_line};
use crate::lakefile::match_set::MatchSet;

/// What the rewrite said it did (rows are non-blank lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub lines_before: u64,
    pub lines_removed: u64,
    /// Every row goes (the subject owns the whole partition): the rewrite is empty.
    pub every_row: bool,
}

/// Why a rewrite is not the source without exactly its matching lines.
#[derive(Debug, thiserror::Error)]
pub enum JsonCheckError {
    #[error("cannot read the {which} back: {error}")]
    Read {
        which: &'static str,
        error: std::io::Error,
    },
    #[error("line {line} of the source is not a JSON object")]
    Malformed { line: u64 },
    #[error(transparent)]
    Find(JsonFindError),
    #[error("the rewrite ends before line {line} of the source, which it must keep")]
    Short { line: u64 },
    #[error("line {line} of the rewrite is not line {source_line} of the source byte for byte")]
    Differs { line: u64, source_line: u64 },
    #[error("the rewrite has more lines than the {kept} it must keep")]
    Long { kept: u64 },
    #[error("line {line} of the rewrite matches")]
    Matches { line: u64 },
    #[error("{what}: the rewrite reported {reported}, the read-back counts {counted}")]
    Count {
        what: &'static str,
        reported: u64,
        counted: u64,
    },
}

fn blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Whether one (non-blank) line matches, as find decides it; None when it is malformed.
fn matches(
    line: &[u8],
    columns: &[String],
    ids: &MatchSet,
    number: u64,
) -> Result<Option<bool>, JsonCheckError> {
    match line_bytes_match(line, columns, ids, number) {
        Ok(matched) => Ok(Some(matched)),
        Err(JsonFindError::Malformed { .. }) => Ok(None),
        Err(error) => Err(JsonCheckError::Find(error)),
    }
}

/// Reads one line (with its ending) into `buf`; false at the end. A line longer than
/// `max` bytes is an error naming its number (`line`: the lines read before it).
fn next(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    (which, line): (&'static str, u64),
    max: usize,
) -> Result<bool, JsonCheckError> {
    match read_line(input, buf, max) {
        Ok(LineRead::Line) => Ok(true),
        Ok(LineRead::End) => Ok(false),
        Ok(LineRead::TooLong) => Err(JsonCheckError::Find(JsonFindError::LineTooLong {
            line: line + 1,
            max,
        })),
        Err(error) => Err(JsonCheckError::Read { which, error }),
    }
}

/// Checks that `rewrite` is `source` without exactly its matching lines (see the module
/// docs), and that the rewrite's figures are the ones counted. Lines are at most
/// `max_line` bytes.
pub fn check(
    mut source: impl BufRead,
    mut rewrite: impl BufRead,
    columns: &[String],
    ids: &MatchSet,
    expected: Expected,
    max_line: usize,
) -> Result<(), JsonCheckError> {
    let (mut line, mut out) = (Vec::new(), Vec::new());
    let (mut source_line, mut rewrite_line) = (0u64, 0u64);
    let (mut rows, mut removed, mut kept) = (0u64, 0u64, 0u64);
    while next(&mut source, &mut line, ("source", source_line), max_line)? {
        source_line += 1;
        if !blank(&line) {
            rows += 1;
            let matched = matches(&line, columns, ids, source_line)?
                .ok_or(JsonCheckError::Malformed { line: source_line })?;
            if expected.every_row || matched {
                removed += 1;
                continue;
            }
        } else if expected.every_row {
            continue;
        }
        kept += 1;
        if !next(&mut rewrite, &mut out, ("rewrite", rewrite_line), max_line)? {
            return Err(JsonCheckError::Short { line: source_line });
        }
        rewrite_line += 1;
        if out != line {
            return Err(JsonCheckError::Differs {
                line: rewrite_line,
                source_line,
            });
        }
        // Identical to a line that does not match; asked of the rewrite's own bytes too.
        if !blank(&out) && matches(&out, columns, ids, rewrite_line)? != Some(false) {
            return Err(JsonCheckError::Matches { line: rewrite_line });
        }
    }
    if next(&mut rewrite, &mut out, ("rewrite", rewrite_line), max_line)? {
        return Err(JsonCheckError::Long { kept });
    }
    let counts = [
        ("rows before", expected.lines_before, rows),
        ("rows removed", expected.lines_removed, removed),
    ];
    for (what, reported, counted) in counts {
        if reported != counted {
            return Err(JsonCheckError::Count {
                what,
                reported,
                counted,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use serde_json::json;

    use super::*;
    use crate::lakefile::jsonl::find::DEFAULT_MAX_LINE_BYTES as MAX;
    use crate::lakefile::jsonl::forget::forget_lines;

    const SOURCE: &str = "{\"id\": 1, \"x\": \"a\"}\n\n{\"id\": 2,  \"x\": \"b\"}\n   \n{\"id\": 3}\n{\"id\": 1}\n{\"id\": 4}";

    fn columns() -> Vec<String> {
        vec!["id".to_owned()]
    }

    fn ids() -> MatchSet {
        MatchSet::from_values(&[json!(1)])
    }

    fn expected(before: u64, removed: u64) -> Expected {
        Expected {
            lines_before: before,
            lines_removed: removed,
            every_row: false,
        }
    }

    fn check_text(rewrite: &str, e: Expected) -> Result<(), JsonCheckError> {
        check(
            SOURCE.as_bytes(),
            rewrite.as_bytes(),
            &columns(),
            &ids(),
            e,
            MAX,
        )
    }

    /// The source without its matching lines, as the rewrite writes it.
    fn rewritten() -> String {
        let mut out = Vec::new();
        forget_lines(SOURCE.as_bytes(), &mut out, &columns(), &ids(), MAX).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> impl BufRead + '_ {
        std::io::BufReader::new(flate2::read::MultiGzDecoder::new(bytes))
    }

    #[test]
    fn the_source_without_its_matching_lines_passes_blank_lines_and_all() {
        let out = rewritten();
        assert_eq!(
            out,
            "\n{\"id\": 2,  \"x\": \"b\"}\n   \n{\"id\": 3}\n{\"id\": 4}"
        );
        check_text(&out, expected(5, 2)).unwrap();
        let (source, rewrite) = (gzip(SOURCE), gzip(&out));
        check(
            gunzip(&source),
            gunzip(&rewrite),
            &columns(),
            &ids(),
            expected(5, 2),
            MAX,
        )
        .unwrap();
    }

    #[test]
    fn when_every_row_goes_the_rewrite_must_be_empty() {
        let every = Expected {
            every_row: true,
            ..expected(5, 5)
        };
        check_text("", every).unwrap();
        assert!(matches!(
            check_text("\n", every),
            Err(JsonCheckError::Long { kept: 0 })
        ));
    }

    #[test]
    fn figures_other_than_the_counted_ones_fail() {
        let out = rewritten();
        let err = check_text(&out, expected(6, 2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rows before: the rewrite reported 6, the read-back counts 5"
        );
        assert!(matches!(
            check_text(&out, expected(5, 1)),
            Err(JsonCheckError::Count {
                what: "rows removed",
                ..
            })
        ));
    }

    #[test]
    fn a_matching_line_left_in_the_rewrite_fails() {
        let out = format!("{{\"id\": 1}}\n{}", rewritten());
        assert!(matches!(
            check_text(&out, expected(5, 2)),
            Err(JsonCheckError::Differs {
                line: 1,
                source_line: 2
            })
        ));
        // Left at the end, the line is one too many.
        let source = format!("{SOURCE}\n");
        let mut out = Vec::new();
        forget_lines(source.as_bytes(), &mut out, &columns(), &ids(), MAX).unwrap();
        out.extend_from_slice(b"{\"id\": 1}\n");
        assert!(matches!(
            check(
                source.as_bytes(),
                &out[..],
                &columns(),
                &ids(),
                expected(5, 2),
                MAX,
            ),
            Err(JsonCheckError::Long { kept: 5 })
        ));
    }

    #[test]
    fn a_reordered_line_fails() {
        let out = "\n{\"id\": 2,  \"x\": \"b\"}\n   \n{\"id\": 4}\n{\"id\": 3}\n";
        assert!(matches!(
            check_text(out, expected(5, 2)),
            Err(JsonCheckError::Differs { line: 4, .. })
        ));
    }

    #[test]
    fn a_changed_byte_or_line_ending_fails() {
        let out = rewritten().replacen("\"b\"", "\"c\"", 1);
        assert!(matches!(
            check_text(&out, expected(5, 2)),
            Err(JsonCheckError::Differs { line: 2, .. })
        ));
        let out = rewritten().replacen("  \"x\"", " \"x\"", 1);
        assert!(check_text(&out, expected(5, 2)).is_err(), "whitespace too");
        let out = format!("{}\n", rewritten());
        assert!(
            check_text(&out, expected(5, 2)).is_err(),
            "a line ending too"
        );
    }

    #[test]
    fn a_missing_line_fails_and_names_no_content() {
        let out = rewritten();
        let short = &out[..out.rfind('\n').unwrap() + 1];
        let err = check_text(short, expected(5, 2)).unwrap_err();
        assert!(matches!(err, JsonCheckError::Short { line: 7 }));
        assert!(!err.to_string().contains('{'));
    }

    #[test]
    fn a_truncated_gzip_rewrite_fails_to_read_back() {
        let source = gzip(SOURCE);
        let whole = gzip(&rewritten());
        let cut = &whole[..whole.len() - 6];
        let err = check(
            gunzip(&source),
            gunzip(cut),
            &columns(),
            &ids(),
            expected(5, 2),
            MAX,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                JsonCheckError::Read {
                    which: "rewrite",
                    ..
                }
            ),
            "{err}"
        );
        // The truncation is there: a plain reader stops early too.
        let mut text = String::new();
        assert!(gunzip(cut).read_to_string(&mut text).is_err());
    }

    #[test]
    fn a_malformed_source_line_fails() {
        let err = check(
            "{}\nnope\n".as_bytes(),
            "{}\n".as_bytes(),
            &columns(),
            &ids(),
            expected(2, 0),
            MAX,
        );
        assert!(matches!(err, Err(JsonCheckError::Malformed { line: 2 })));
    }

    #[test]
    fn a_line_longer_than_the_cap_fails_the_read_back() {
        let out = rewritten();
        let err = check(
            SOURCE.as_bytes(),
            out.as_bytes(),
            &columns(),
            &ids(),
            expected(5, 2),
            10,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("line too long: line 1"),
            "{err}"
        );
    }
}
