//! How a CSV object's records and fields are read: from a Glue table's SerDe and its
//! parameters, as Hive and Athena read them, or from a path mapper's declared format.
//!
//! - LazySimpleSerDe (also a table that names no SerDe, Hive's default for text):
//!   `field.delim`, else `serialization.format`, else `\x01`; a value that reads as a
//!   signed byte (`"1"`, `"9"`, `"-2"`) is that byte, as Hive's `getByte` reads it, else
//!   its one character. `escape.delim` (when present, even empty: `\`) escapes the next
//!   byte. `serialization.null.format` (default `\N`) is NULL.
//!   `serialization.last.column.takes.rest`. Every value is read as its column's type.
//! - OpenCSVSerde: `separatorChar` (`,`), `quoteChar` (`"`), `escapeChar` (`\`; an
//!   explicit `"` reads as `\`, as Hive's reader and Athena's do). No null text. Values
//!   are strings that Athena casts to the column's declared type.
//!
//! Both: `skip.header.line.count` (a table property, passed with the parameters) header
//! lines are kept verbatim. Refused, never guessed: another SerDe (Regex, Grok,
//! MultiDelimit, JSON, …); a delimiter, quote or escape of several characters (Hive
//! would silently take the first) or outside ASCII (a byte inside UTF-8 text); a
//! delimiter that is a line ending or equals the quote or escape; `line.delim` other than
//! `\n`; `serialization.encoding` other than UTF-8 (Hive transcodes such text);
//! `skip.footer.line.count`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The LazySimpleSerDe's class.
pub const LAZY_SIMPLE: &str = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe";
/// The OpenCSV SerDe's class.
pub const OPEN_CSV: &str = "org.apache.hadoop.hive.serde2.OpenCSVSerde";

/// Which SerDe's rules split a record into fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DialectKind {
    /// Hive's LazySimpleSerDe: a line split on a byte, with an optional escape byte.
    LazySimple,
    /// Hive's OpenCSVSerde (opencsv's parser): quoted fields, doubled or escaped quotes.
    OpenCsv,
}

/// How records and fields are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dialect {
    pub kind: DialectKind,
    /// The field delimiter.
    pub delimiter: u8,
    /// The quote character (OpenCSV only).
    pub quote: Option<u8>,
    /// The escape character.
    pub escape: Option<u8>,
    /// The text that is NULL (LazySimple's `serialization.null.format`).
    pub null_text: Option<String>,
    /// Physical lines at the top of the object that are not records, kept verbatim.
    pub header_lines: u64,
    /// Column names by position, lowercase; empty: the first header line names them.
    pub columns: Vec<String>,
    /// Each column's declared Glue type, when known (same positions as `columns`).
    #[serde(default)]
    pub types: Vec<Option<String>>,
    /// The last column takes the rest of the line, delimiters and all (LazySimple's
    /// `serialization.last.column.takes.rest`).
    #[serde(default)]
    pub last_column_takes_rest: bool,
}

/// A parameter's one character, as Hive reads it; refused when it is several.
fn one_char(key: &str, value: &str) -> Result<u8, String> {
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii() => Ok(c as u8),
        (Some(_), None) => Err(format!(
            "the SerDe parameter {key} is a character outside ASCII, which Lethe does not split UTF-8 text on; refused"
        )),
        (None, _) => Err(format!("the SerDe parameter {key} is empty; refused")),
        (Some(_), Some(_)) => Err(format!(
            "the SerDe parameter {key} has several characters (Hive reads only the first; a multi-character delimiter needs MultiDelimitSerDe); refused"
        )),
    }
}

/// A LazySimpleSerDe separator parameter as Hive's `getByte` reads it: a signed byte's
/// decimal text is that byte, else the one character.
fn hive_byte(key: &str, value: Option<&str>, default: u8) -> Result<u8, String> {
    match value {
        None | Some("") => Ok(default),
        Some(v) => match v.parse::<i8>() {
            Ok(b) => Ok(b as u8),
            Err(_) => one_char(key, v),
        },
    }
}

/// The header lines a table skips (`skip.header.line.count`); a footer is refused.
fn header_lines(parameters: &BTreeMap<String, String>) -> Result<u64, String> {
    let footer = parameters.get("skip.footer.line.count").map(|v| v.trim());
    if footer.is_some_and(|v| v != "0") {
        return Err("the table skips footer lines (skip.footer.line.count), which Lethe does not keep apart from records; refused".to_owned());
    }
    match parameters.get("skip.header.line.count") {
        None => Ok(0),
        Some(v) => v.trim().parse().map_err(|_| {
            "the table property skip.header.line.count is not a whole number; refused".to_owned()
        }),
    }
}

/// Checks the characters a dialect splits on: distinct, none a line ending.
fn distinct(delimiter: u8, quote: Option<u8>, escape: Option<u8>) -> Result<(), String> {
    let endings = [b'\n', b'\r'];
    if [Some(delimiter), quote, escape]
        .iter()
        .flatten()
        .any(|b| endings.contains(b))
    {
        return Err("a delimiter, quote or escape character is a line ending; refused".to_owned());
    }
    if quote == Some(delimiter) || escape == Some(delimiter) || (quote.is_some() && quote == escape)
    {
        return Err(
            "the delimiter, quote and escape characters are not all different; refused".to_owned(),
        );
    }
    Ok(())
}

impl Dialect {
    /// The dialect of a Glue table: its SerDe class (None: Hive's default,
    /// LazySimpleSerDe), its SerDe parameters and table properties, and its
    /// non-partition columns (name, Glue type) in order. Err says why it is refused.
    pub fn of_glue(
        serde_library: Option<&str>,
        parameters: &BTreeMap<String, String>,
        columns: &[(String, String)],
    ) -> Result<Dialect, String> {
        let mut dialect = match serde_library.map(str::trim) {
            None | Some(LAZY_SIMPLE) => lazy_simple(parameters)?,
            Some(OPEN_CSV) => open_csv(parameters)?,
            Some(other) => {
                return Err(format!(
                    "the table's SerDe {other} is not one Lethe reads delimited text as (LazySimpleSerDe, OpenCSVSerde); refused"
                ));
            }
        };
        if columns.is_empty() {
            return Err("the table declares no columns; refused".to_owned());
        }
        dialect.header_lines = header_lines(parameters)?;
        dialect.columns = columns.iter().map(|(n, _)| n.to_lowercase()).collect();
        dialect.types = columns
            .iter()
            .map(|(_, t)| Some(t.trim().to_owned()))
            .collect();
        Ok(dialect)
    }

    /// The dialect of a path mapper's objects (no catalog): quoted (OpenCSV rules) when
    /// `quote` is given, else split on the delimiter (LazySimple rules, no null text).
    /// The first line is a header when `header`; it names the columns unless `columns`
    /// does. Every value compares as text.
    pub fn of_path(
        delimiter: u8,
        quote: Option<u8>,
        escape: Option<u8>,
        header: bool,
        columns: Option<Vec<String>>,
    ) -> Result<Dialect, String> {
        if [Some(delimiter), quote, escape]
            .iter()
            .flatten()
            .any(|b| !b.is_ascii())
        {
            return Err("a delimiter, quote or escape byte outside ASCII; refused".to_owned());
        }
        distinct(delimiter, quote, escape)?;
        let columns = match (columns, header) {
            (Some(c), _) if c.is_empty() => return Err("no column names; refused".to_owned()),
            (Some(c), _) => c.iter().map(|n| n.to_lowercase()).collect(),
            (None, true) => Vec::new(),
            (None, false) => {
                return Err("without a header line the columns must be named; refused".to_owned());
            }
        };
        Ok(Dialect {
            kind: if quote.is_some() {
                DialectKind::OpenCsv
            } else {
                DialectKind::LazySimple
            },
            delimiter,
            quote,
            escape,
            null_text: None,
            header_lines: u64::from(header),
            columns,
            types: Vec::new(),
            last_column_takes_rest: false,
        })
    }

    /// The declared Glue type of the column at `index`, if known.
    pub fn type_at(&self, index: usize) -> Option<&str> {
        self.types.get(index).and_then(|t| t.as_deref())
    }
}

/// LazySimpleSerDe's parameters.
fn lazy_simple(p: &BTreeMap<String, String>) -> Result<Dialect, String> {
    let get = |k: &str| p.get(k).map(String::as_str);
    // A present `field.delim`, even empty, wins over `serialization.format`.
    let delimiter = match get("field.delim") {
        Some(v) => hive_byte("field.delim", Some(v), 1)?,
        None => hive_byte("serialization.format", get("serialization.format"), 1)?,
    };
    let escape = match get("escape.delim") {
        None => None,
        Some(v) => Some(hive_byte("escape.delim", Some(v), b'\\')?),
    };
    if get("line.delim").is_some_and(|v| v != "\n" && v != "10") {
        return Err(
            "the table's line.delim is not \\n, which Hive's text reader does not support; refused"
                .to_owned(),
        );
    }
    if let Some(encoding) = get("serialization.encoding") {
        let e = encoding.trim().to_ascii_lowercase();
        if e != "utf-8" && e != "utf8" {
            return Err(format!(
                "the table's text is in {encoding} (serialization.encoding), which Lethe does not transcode; refused"
            ));
        }
    }
    distinct(delimiter, None, escape)?;
    Ok(Dialect {
        kind: DialectKind::LazySimple,
        delimiter,
        quote: None,
        escape,
        null_text: Some(get("serialization.null.format").unwrap_or("\\N").to_owned()),
        header_lines: 0,
        columns: Vec::new(),
        types: Vec::new(),
        last_column_takes_rest: get("serialization.last.column.takes.rest")
            .is_some_and(|v| v.eq_ignore_ascii_case("true")),
    })
}

/// OpenCSVSerde's parameters.
fn open_csv(p: &BTreeMap<String, String>) -> Result<Dialect, String> {
    let char_of = |key: &str, default: u8| match p.get(key) {
        None => Ok(default),
        Some(v) => one_char(key, v),
    };
    let delimiter = char_of("separatorChar", b',')?;
    let quote = char_of("quoteChar", b'"')?;
    let mut escape = char_of("escapeChar", b'\\')?;
    // Hive's OpenCSVSerde reads with opencsv's default escape (`\`) when the escape is
    // its writer's default (`"`), and Athena copies that.
    if escape == b'"' {
        escape = b'\\';
    }
    distinct(delimiter, Some(quote), Some(escape))?;
    Ok(Dialect {
        kind: DialectKind::OpenCsv,
        delimiter,
        quote: Some(quote),
        escape: Some(escape),
        null_text: None,
        header_lines: 0,
        columns: Vec::new(),
        types: Vec::new(),
        last_column_takes_rest: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn cols() -> Vec<(String, String)> {
        vec![
            ("ID".into(), "bigint".into()),
            ("email".into(), "string".into()),
        ]
    }

    #[test]
    fn lazy_simple_reads_its_parameters_as_hive_does() {
        let d = Dialect::of_glue(Some(LAZY_SIMPLE), &params(&[]), &cols()).unwrap();
        assert_eq!((d.delimiter, d.escape, d.quote), (1, None, None));
        assert_eq!(d.null_text.as_deref(), Some("\\N"));
        assert_eq!(d.columns, ["id", "email"]);
        assert_eq!(d.type_at(0), Some("bigint"));
        let p = params(&[
            ("field.delim", ","),
            ("escape.delim", "\\"),
            ("serialization.null.format", ""),
            ("skip.header.line.count", "2"),
        ]);
        let d = Dialect::of_glue(None, &p, &cols()).unwrap();
        assert_eq!(
            (d.delimiter, d.escape, d.header_lines),
            (b',', Some(b'\\'), 2)
        );
        assert_eq!(d.null_text.as_deref(), Some(""));
        // A signed byte's text is that byte: "9" is a tab, as Hive reads it.
        let d = Dialect::of_glue(None, &params(&[("serialization.format", "9")]), &cols());
        assert_eq!(d.unwrap().delimiter, b'\t');
        let d = Dialect::of_glue(
            None,
            &params(&[("field.delim", "|"), ("serialization.format", "1")]),
            &cols(),
        );
        assert_eq!(d.unwrap().delimiter, b'|');
        let d = Dialect::of_glue(None, &params(&[("escape.delim", "")]), &cols()).unwrap();
        assert_eq!(
            d.escape,
            Some(b'\\'),
            "an empty escape.delim is a backslash"
        );
    }

    #[test]
    fn open_csv_reads_its_parameters_as_athena_does() {
        let d = Dialect::of_glue(Some(OPEN_CSV), &params(&[]), &cols()).unwrap();
        assert_eq!(d.kind, DialectKind::OpenCsv);
        assert_eq!(
            (d.delimiter, d.quote, d.escape),
            (b',', Some(b'"'), Some(b'\\'))
        );
        assert_eq!(d.null_text, None);
        let p = params(&[
            ("separatorChar", "\t"),
            ("quoteChar", "'"),
            ("escapeChar", "\""),
        ]);
        let d = Dialect::of_glue(Some(OPEN_CSV), &p, &cols()).unwrap();
        assert_eq!(
            (d.delimiter, d.quote, d.escape),
            (b'\t', Some(b'\''), Some(b'\\'))
        );
    }

    #[test]
    fn what_lethe_cannot_read_exactly_is_refused() {
        let refused = |library: Option<&str>, p: &[(&str, &str)]| {
            Dialect::of_glue(library, &params(p), &cols()).unwrap_err()
        };
        for serde in [
            "org.apache.hadoop.hive.serde2.RegexSerDe",
            "com.amazonaws.glue.serde.GrokSerDe",
            "org.apache.hadoop.hive.serde2.MultiDelimitSerDe",
            "org.openx.data.jsonserde.JsonSerDe",
        ] {
            assert!(refused(Some(serde), &[]).contains(serde));
        }
        assert!(refused(None, &[("field.delim", "||")]).contains("several characters"));
        assert!(refused(None, &[("field.delim", "§")]).contains("outside ASCII"));
        assert!(refused(None, &[("field.delim", "\n")]).contains("line ending"));
        assert!(
            refused(None, &[("field.delim", ","), ("escape.delim", ",")]).contains("different")
        );
        assert!(refused(None, &[("serialization.encoding", "ISO-8859-1")]).contains("transcode"));
        assert!(refused(None, &[("line.delim", "\r")]).contains("line.delim"));
        assert!(refused(None, &[("skip.footer.line.count", "1")]).contains("footer"));
        assert!(refused(None, &[("skip.header.line.count", "x")]).contains("whole number"));
        assert!(refused(Some(OPEN_CSV), &[("separatorChar", "")]).contains("empty"));
        assert!(refused(Some(OPEN_CSV), &[("quoteChar", ",")]).contains("different"));
        // `"` as escape reads as `\`, so a `\` separator would be the escape too.
        assert!(
            refused(
                Some(OPEN_CSV),
                &[("separatorChar", "\\"), ("escapeChar", "\"")]
            )
            .contains("different")
        );
        assert!(
            Dialect::of_glue(None, &params(&[]), &[])
                .unwrap_err()
                .contains("no columns")
        );
    }

    #[test]
    fn a_path_mapper_names_its_columns_or_takes_them_from_its_header() {
        let d = Dialect::of_path(b',', Some(b'"'), None, true, None).unwrap();
        assert_eq!(
            (d.kind, d.header_lines, d.columns.len()),
            (DialectKind::OpenCsv, 1, 0)
        );
        let d = Dialect::of_path(b'\t', None, Some(b'\\'), false, Some(vec!["Id".into()])).unwrap();
        assert_eq!(
            (d.kind, d.columns.as_slice()),
            (DialectKind::LazySimple, ["id".to_owned()].as_slice())
        );
        assert!(Dialect::of_path(b',', None, None, false, None).is_err());
        assert!(Dialect::of_path(b',', Some(b','), None, true, None).is_err());
        assert!(Dialect::of_path(0xA7, None, None, true, None).is_err());
        // A dialect travels in a job payload.
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Dialect>(&json).unwrap(), d);
    }
}
