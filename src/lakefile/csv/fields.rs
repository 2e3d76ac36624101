//! Splitting a record into fields, as the SerDes do.
//!
//! - LazySimple ([`split_simple`]): on the delimiter byte; an escape byte keeps the byte
//!   after it from splitting. A string value is then unescaped: Athena takes the byte
//!   after an escape as it is, Hive reads `\n` and `\r` after it as a line feed and a
//!   carriage return ([`unescaped`] gives both readings).
//! - OpenCSV ([`tokenize`]): opencsv's parser, as Hive's OpenCSVSerde runs it and
//!   Athena's reader copies it bug for bug: a quote toggles quoting (a doubled one, or one
//!   after the escape, is a literal quote), an escape before anything else vanishes, a
//!   quote in the middle of a field (`a"b"c`) stays in the value and toggles quoting
//!   too, and a field still quoted at the end of a line is NULL when the line is read
//!   alone. Across lines the state carries on, as opencsv's multi-line reader does.
//!
//! The writer's rules, which decide where a CSV record ends, are in `written`.

use std::ops::Range;

/// The characters opencsv's parser splits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quoting {
    pub separator: char,
    pub quote: Option<char>,
    pub escape: Option<char>,
}

/// opencsv's parser state between characters (and between the lines of a record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuoteState {
    pub in_quotes: bool,
    pub in_field: bool,
}

/// The values of a record's first `needed` fields (later ones are not kept).
#[derive(Debug, Default)]
pub struct Fields {
    pub values: Vec<String>,
    current: String,
    needed: usize,
}

impl Fields {
    pub fn new(needed: usize) -> Self {
        Self {
            needed,
            ..Self::default()
        }
    }

    fn keeping(&self) -> bool {
        self.values.len() < self.needed
    }

    pub fn push(&mut self, c: char) {
        if self.keeping() {
            self.current.push(c);
        }
    }

    /// Adds text to the field being read (a line ending inside quotes).
    pub fn push_str(&mut self, s: &str) {
        if self.keeping() {
            self.current.push_str(s);
        }
    }

    /// Ends the field being read.
    pub fn end(&mut self) {
        if self.keeping() {
            self.values.push(std::mem::take(&mut self.current));
        }
    }
}

/// Java's `Character.isWhitespace` for one UTF-16 unit (opencsv's test).
fn java_whitespace(c: char) -> bool {
    matches!(c, '\t'..='\r' | '\u{1C}'..='\u{1F}' | ' ' | '\u{1680}' | '\u{2000}'..='\u{2006}')
        || matches!(
            c,
            '\u{2008}'..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{205F}' | '\u{3000}'
        )
}

/// Parses one physical line (no line ending) from `state`, adding its fields to
/// `fields`; the field being read when the line ends is left open (the caller ends it,
/// or continues it on the next line when `state.in_quotes`).
pub fn tokenize(line: &str, q: Quoting, state: &mut QuoteState, fields: &mut Fields) {
    let mut chars = line.chars().peekable();
    // The UTF-16 position of the current character and the one before it, as opencsv
    // indexes a Java string.
    let (mut position, mut previous) = (0usize, None::<char>);
    while let Some(c) = chars.next() {
        let (here, before) = (position, previous);
        position += c.len_utf16();
        previous = Some(c);
        let next = chars.peek().copied();
        if Some(c) == q.escape {
            let special = next.filter(|n| Some(*n) == q.quote || Some(*n) == q.escape);
            if let (true, Some(n)) = (state.in_quotes || state.in_field, special) {
                fields.push(n);
                chars.next();
                position += n.len_utf16();
                previous = Some(n);
            }
        } else if Some(c) == q.quote {
            if (state.in_quotes || state.in_field) && next == Some(c) {
                fields.push(c);
                chars.next();
                position += c.len_utf16();
            } else {
                // A quote inside a field (`a,bc"d"ef,g`), not within the line's first
                // three characters nor next to a separator, stays in the value.
                let inside = next.is_some_and(|n| n != q.separator);
                if here > 2 && before != Some(q.separator) && inside {
                    let blank =
                        !fields.current.is_empty() && fields.current.chars().all(java_whitespace);
                    if blank {
                        fields.current.clear();
                    } else {
                        fields.push(c);
                    }
                }
                state.in_quotes = !state.in_quotes;
            }
            state.in_field = !state.in_field;
        } else if c == q.separator && !state.in_quotes {
            fields.end();
            state.in_field = false;
        } else {
            fields.push(c);
            state.in_field = true;
        }
    }
}

/// The physical lines of a record, each with its line ending (`\n`, `\r\n`, `\r`, or
/// none for the last).
pub fn lines(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some(at) = rest.find(['\n', '\r']) else {
            return Some((std::mem::take(&mut rest), ""));
        };
        let ending = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        let (line, tail) = rest.split_at(at);
        let (ending, tail) = tail.split_at(ending);
        rest = tail;
        Some((line, ending))
    })
}

/// A record's fields as opencsv's multi-line reader reads it: one row across its lines.
pub fn record_fields(text: &str, q: Quoting, needed: usize) -> Fields {
    let mut state = QuoteState::default();
    let mut fields = Fields::new(needed);
    for (line, ending) in lines(text) {
        tokenize(line, q, &mut state, &mut fields);
        if state.in_quotes {
            fields.push_str(ending);
        }
    }
    if !state.in_quotes {
        fields.end();
    }
    fields
}

/// One physical line's fields as Athena reads it alone: a field still quoted at the end
/// of the line is NULL.
pub fn line_fields(line: &str, q: Quoting, needed: usize) -> Fields {
    let mut state = QuoteState::default();
    let mut fields = Fields::new(needed);
    tokenize(line, q, &mut state, &mut fields);
    if !state.in_quotes {
        fields.end();
    }
    fields
}

/// The byte ranges of a LazySimple line's first `needed` fields. With `rest_from`, the
/// field at that position takes the rest of the line (`last.column.takes.rest`).
pub fn split_simple(
    line: &[u8],
    delimiter: u8,
    escape: Option<u8>,
    rest_from: Option<usize>,
    needed: usize,
) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < line.len() && out.len() < needed {
        let b = line.get(i).copied();
        if b == Some(delimiter) {
            out.push(start..i);
            start = i + 1;
            if Some(out.len()) == rest_from {
                break;
            }
        } else if b.is_some() && b == escape {
            i += 1;
        }
        i += 1;
    }
    if out.len() < needed {
        out.push(start..line.len());
    }
    out
}

/// A LazySimple string value's readings after unescaping: Athena's (the byte after an
/// escape as it is) and, when it differs, Hive's (`\n`, `\r` after an escape are a line
/// feed and a carriage return).
pub fn unescaped(raw: &[u8], escape: Option<u8>) -> Vec<Vec<u8>> {
    let Some(escape) = escape.filter(|e| raw.contains(e)) else {
        return vec![raw.to_vec()];
    };
    let (mut athena, mut hive) = (Vec::with_capacity(raw.len()), Vec::with_capacity(raw.len()));
    let mut bytes = raw.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match (b == escape, bytes.peek().copied()) {
            (true, Some(next)) => {
                bytes.next();
                athena.push(next);
                hive.push(match next {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    other => other,
                });
            }
            _ => {
                athena.push(b);
                hive.push(b);
            }
        }
    }
    if athena == hive {
        vec![athena]
    } else {
        vec![athena, hive]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: Quoting = Quoting {
        separator: ',',
        quote: Some('"'),
        escape: Some('\\'),
    };

    fn line(text: &str) -> Vec<String> {
        line_fields(text, CSV, usize::MAX).values
    }

    #[test]
    fn quoted_fields_hold_separators_and_doubled_or_escaped_quotes() {
        assert_eq!(
            line(r#"1,"a,b","say ""hi""",x"#),
            ["1", "a,b", "say \"hi\"", "x"]
        );
        assert_eq!(line(r#""a\"b",c\d,"e\\f""#), ["a\"b", "cd", "e\\f"]);
        assert_eq!(line(r#","",,"#), ["", "", "", ""]);
        assert_eq!(line(""), [""]);
        // A quote inside a field stays; one at the line's first characters does not.
        assert_eq!(line(r#"ab,cd"e"f,g"#), ["ab", "cd\"e\"f", "g"]);
        assert_eq!(line(r#"a"b",c"#), ["ab", "c"]);
        // A field still quoted at the end of the line is NULL, and so are those after.
        assert_eq!(line(r#"1,2,"open"#), ["1", "2"]);
        // Whitespace before an inner quote is dropped, as opencsv drops it.
        assert_eq!(line("1,  \"x\"y,2"), ["1", "x\"y", "2"]);
    }

    #[test]
    fn a_record_reads_across_its_lines_and_each_line_reads_alone() {
        let text = "7,\"two\r\nlines\",x";
        let fields = record_fields(text, CSV, usize::MAX).values;
        assert_eq!(fields, ["7", "two\r\nlines", "x"]);
        let alone: Vec<Vec<String>> = lines(text).map(|(l, _)| line(l)).collect();
        assert_eq!(alone, [vec!["7".to_owned()], vec![]]);
        assert_eq!(
            lines("a\r\nb\rc\n\nd")
                .map(|(l, e)| format!("{l}|{e}"))
                .collect::<Vec<_>>(),
            ["a|\r\n", "b|\r", "c|\n", "|\n", "d|"]
        );
        // Only the needed fields are kept.
        assert_eq!(record_fields("a,b,c", CSV, 2).values, ["a", "b"]);
    }

    #[test]
    fn lazy_simple_splits_on_the_delimiter_unless_escaped() {
        let text = br"a,b\,c,,d\";
        let fields = |rest, needed| -> Vec<&[u8]> {
            split_simple(text, b',', Some(b'\\'), rest, needed)
                .into_iter()
                .map(|r| &text[r])
                .collect()
        };
        assert_eq!(fields(None, 9), [&b"a"[..], br"b\,c", b"", br"d\"]);
        assert_eq!(fields(None, 2), [&b"a"[..], br"b\,c"]);
        assert_eq!(fields(Some(1), 9), [&b"a"[..], br"b\,c,,d\"]);
        assert_eq!(split_simple(b"", b',', None, None, 3), vec![0..0; 1]);
        assert_eq!(
            unescaped(br"a\,b\nc\\", Some(b'\\')),
            [b"a,bnc\\".to_vec(), b"a,b\nc\\".to_vec()]
        );
        assert_eq!(unescaped(br"a\,b", Some(b'\\')), [b"a,b".to_vec()]);
        assert_eq!(unescaped(br"a\", Some(b'\\')), [br"a\".to_vec()]);
    }
}
