//! The writer's rules: RFC 4180 as pandas, Python's `csv` and Spark write and read it,
//! with the dialect's quote and escape. A quote opens a quoted field only at the start
//! of a field and is literal anywhere else outside quotes; inside, a doubled quote or an
//! escaped character is literal and a lone quote closes the field. They decide where an
//! OpenCSV record ends (a stray quote inside a field, `O"Brien`, never joins lines,
//! though opencsv reads it as opening a quoted field), and give a CSV reader's values.

use super::fields::{Fields, Quoting, lines};

/// Where the writer's rules are in a field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Written {
    /// At the start of a field.
    #[default]
    Start,
    /// In a field that did not open with a quote.
    Unquoted,
    /// In a quoted field: a line ending here is part of the value.
    Quoted,
    /// After a quoted field's closing quote.
    Closed,
}

/// Parses one physical line by the writer's rules from `state`, adding its fields to
/// `fields`; the field being read when the line ends is left open (quoted: it continues
/// on the next line).
pub fn tokenize_written(line: &str, q: Quoting, state: &mut Written, fields: &mut Fields) {
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        match *state {
            Written::Quoted if Some(c) == q.quote && next == Some(c) => {
                fields.push(c);
                chars.next();
            }
            Written::Quoted if Some(c) == q.quote => *state = Written::Closed,
            _ if Some(c) == q.escape => {
                // The escape makes the next character literal (at the end of a line it
                // escapes nothing and goes).
                if let Some(n) = chars.next() {
                    fields.push(n);
                }
                if *state != Written::Quoted {
                    *state = Written::Unquoted;
                }
            }
            Written::Quoted => fields.push(c),
            _ if c == q.separator => {
                fields.end();
                *state = Written::Start;
            }
            Written::Start if Some(c) == q.quote => *state = Written::Quoted,
            _ => {
                fields.push(c);
                *state = Written::Unquoted;
            }
        }
    }
}

/// Whether a record that ends a line in this state goes on to the next line.
pub fn continues(state: Written) -> bool {
    state == Written::Quoted
}

/// A record's fields as a CSV reader (pandas, Python's `csv`) reads it.
pub fn written_fields(text: &str, q: Quoting, needed: usize) -> Fields {
    let mut state = Written::default();
    let mut fields = Fields::new(needed);
    for (line, ending) in lines(text) {
        tokenize_written(line, q, &mut state, &mut fields);
        if continues(state) {
            fields.push_str(ending);
        }
    }
    if !continues(state) {
        fields.end();
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lakefile::csv::fields::{QuoteState, tokenize};

    const CSV: Quoting = Quoting {
        separator: ',',
        quote: Some('"'),
        escape: Some('\\'),
    };

    #[test]
    fn the_writers_rules_open_quotes_only_at_the_start_of_a_field() {
        let written = |text: &str| written_fields(text, CSV, usize::MAX).values;
        assert_eq!(
            written(r#"1,"a,b","say ""hi""",x"#),
            ["1", "a,b", "say \"hi\"", "x"]
        );
        assert_eq!(written("5,O\"Brien,x"), ["5", "O\"Brien", "x"]);
        assert_eq!(
            written("1,\"two\nlines\",\"q\\\"z\""),
            ["1", "two\nlines", "q\"z"]
        );
        assert_eq!(written(r#""a"b,c"#), ["ab", "c"]);
        assert_eq!(written(""), [""]);
        let mut state = Written::default();
        tokenize_written("1,\"open", CSV, &mut state, &mut Fields::new(0));
        assert!(continues(state));
        let mut state = Written::default();
        tokenize_written("1,a\"b", CSV, &mut state, &mut Fields::new(0));
        assert!(!continues(state), "a stray quote does not open a field");
        // opencsv reads the stray quote as opening one.
        let mut state = QuoteState::default();
        tokenize("1,a\"b", CSV, &mut state, &mut Fields::new(0));
        assert!(state.in_quotes);
    }
}
