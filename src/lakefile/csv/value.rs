//! How one field compares with the queued ids: its text read as its column's declared
//! Glue type, as Athena reads it, then looked up among the ids cast to that type.
//!
//! - LazySimple (Athena's text decoders, which follow Hive's `Lazy*` classes): an
//!   integer column reads an optional sign and digits, and ignores a fraction of digits
//!   (`"007"` and `"7.9"` are 7, `"+7"` is 7; out of the column's range, NULL); a decimal
//!   column reads Java's `BigDecimal` text (`1.5`, `.5`, `1e3`), rounded half up to the
//!   column's scale as Hive does, NULL beyond its precision; a `double` / `float` column
//!   reads Java's `Double.parseDouble` text (surrounding blanks and an `f`/`d` suffix
//!   allowed; a hexadecimal float is refused, not guessed); a string column reads the
//!   unescaped text, cut to a `varchar(n)` / `char(n)` length (`char` without trailing
//!   spaces). An empty field is NULL in a numeric column, the empty string in a string
//!   column.
//! - OpenCSV: every field is a string that Athena casts to the column's declared type
//!   (`CAST(.. AS bigint)`: `"007"` is 7, `"7.0"` is nothing), so it goes through
//!   [`cast_text`]; an undeclared column compares as text.
//!
//! Types ids are not cast to (`date`, `timestamp`, `boolean`) compare as their text;
//! complex types and `binary` are refused (no id equals such a value).

use crate::domain::exact::{Exact, parse_number};
use crate::lakefile::match_set::{Key, KeyKind, cast_text};

use super::dialect::DialectKind;
use super::fields::unescaped;

/// How a column's field becomes a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// OpenCSV: the string cast to the column's kind, as Athena casts a varchar.
    Cast(KeyKind),
    /// LazySimple text: unescaped, cut to `length` characters (`char`: and trimmed).
    Text {
        length: Option<usize>,
        char_type: bool,
    },
    /// LazySimple integer of this range.
    Int {
        min: i64,
        max: i64,
    },
    /// LazySimple decimal.
    Decimal {
        precision: u32,
        scale: i8,
    },
    Double,
    Float,
}

/// A Glue type's base name (lowercase) and its numeric arguments (`decimal(10,2)`).
fn type_parts(glue_type: &str) -> (String, Vec<u32>) {
    let t = glue_type.trim().to_ascii_lowercase();
    match t.split_once('(') {
        Some((base, args)) => (
            base.trim().to_owned(),
            args.trim_end_matches(')')
                .split(',')
                .filter_map(|a| a.trim().parse().ok())
                .collect(),
        ),
        None => (t, Vec::new()),
    }
}

impl Reader {
    /// The reader of a column of this declared type (None: undeclared); Err for a type
    /// no id is compared with.
    pub fn of(kind: DialectKind, glue_type: Option<&str>) -> Result<Reader, ()> {
        let (base, args) = type_parts(glue_type.unwrap_or("string"));
        let complex = ["array", "map", "struct", "uniontype"].iter().any(|c| {
            base.strip_prefix(c)
                .is_some_and(|rest| rest.trim_start().starts_with('<'))
        });
        if complex || base == "binary" {
            return Err(());
        }
        if kind == DialectKind::OpenCsv {
            let key_kind = glue_type.and_then(KeyKind::of_hive);
            return Ok(Reader::Cast(key_kind.unwrap_or(KeyKind::Text)));
        }
        let range = |min: i64, max: i64| Ok(Reader::Int { min, max });
        match base.as_str() {
            "tinyint" => range(i8::MIN.into(), i8::MAX.into()),
            "smallint" => range(i16::MIN.into(), i16::MAX.into()),
            "int" | "integer" => range(i32::MIN.into(), i32::MAX.into()),
            "bigint" => range(i64::MIN, i64::MAX),
            "double" => Ok(Reader::Double),
            "float" | "real" => Ok(Reader::Float),
            "decimal" | "numeric" => Ok(Reader::Decimal {
                precision: args.first().copied().unwrap_or(10).min(38),
                scale: args.get(1).and_then(|s| i8::try_from(*s).ok()).unwrap_or(0),
            }),
            "varchar" | "char" => Ok(Reader::Text {
                length: args.first().and_then(|n| usize::try_from(*n).ok()),
                char_type: base == "char",
            }),
            _ => Ok(Reader::Text {
                length: None,
                char_type: false,
            }),
        }
    }

    /// The kind of column the ids are cast to for this reader.
    pub fn kind(&self) -> KeyKind {
        match self {
            Reader::Cast(kind) => *kind,
            Reader::Text { .. } => KeyKind::Text,
            Reader::Int { .. } => KeyKind::Int,
            Reader::Decimal { scale, .. } => KeyKind::Decimal(*scale),
            Reader::Double => KeyKind::Double,
            Reader::Float => KeyKind::Float,
        }
    }

    /// The keys a (non-NULL) field reads as: none when it is no value of the type, two
    /// when Athena and Hive unescape a string differently. Err names a value Lethe
    /// refuses to guess.
    pub fn keys(&self, raw: &[u8], escape: Option<u8>) -> Result<Vec<Key>, &'static str> {
        Ok(match self {
            Reader::Cast(kind) => std::str::from_utf8(raw)
                .ok()
                .and_then(|s| cast_text(s, Some(*kind)))
                .into_iter()
                .collect(),
            Reader::Text { length, char_type } => unescaped(raw, escape)
                .into_iter()
                .filter_map(|v| String::from_utf8(v).ok())
                .map(|s| Key::Str(cut(s, *length, *char_type)))
                .collect(),
            Reader::Int { min, max } => hive_long(raw)
                .filter(|v| (*min..=*max).contains(v))
                .map(|v| Key::Num(Exact::from_i64(v)))
                .into_iter()
                .collect(),
            Reader::Decimal { precision, scale } => hive_decimal(raw, *precision, *scale)
                .map(Key::Num)
                .into_iter()
                .collect(),
            Reader::Double => java_float(raw)?
                .and_then(|e| Key::f64(e.to_f64()?))
                .into_iter()
                .collect(),
            Reader::Float => java_float(raw)?
                .and_then(|e| Key::f32(e.to_f32()?))
                .into_iter()
                .collect(),
        })
    }
}

/// A string cut to `length` characters; a `char` value without its trailing spaces.
fn cut(mut s: String, length: Option<usize>, char_type: bool) -> String {
    if let Some((at, _)) = length.and_then(|n| s.char_indices().nth(n)) {
        s.truncate(at);
    }
    if char_type {
        let kept = s.trim_end_matches(' ').len();
        s.truncate(kept);
    }
    s
}

/// An integer column's value as Athena's text reader (and Hive's `LazyLong`) reads it:
/// an optional sign, digits, and a fraction of digits that is ignored.
fn hive_long(raw: &[u8]) -> Option<i64> {
    let (negative, body) = match raw.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, raw),
    };
    if body.is_empty() {
        return None;
    }
    let (whole, fraction) = match body.iter().position(|b| *b == b'.') {
        Some(at) => body.split_at(at),
        None => (body, &b""[..]),
    };
    let fraction = fraction.get(1..).unwrap_or_default();
    let whole = &whole[whole.iter().take_while(|b| **b == b'0').count()..];
    if whole.len() > 19 || !whole.iter().chain(fraction).all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = whole
        .iter()
        .fold(0i128, |v, d| v * 10 + i128::from(d - b'0'));
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// Java's `BigDecimal` text, `[+-]?(D+(.D*)?|.D+)([eE][+-]?D+)?`: its sign, its digits
/// and the power of ten they are multiplied by.
fn java_decimal(text: &str) -> Option<(bool, String, i64)> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
            if unsigned.is_empty() || !digits(unsigned) {
                return None;
            }
            e.parse().ok()?
        }
    };
    let exponent = exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    Some((negative, format!("{whole}{fraction}"), exponent))
}

/// `digits × 10^shift` as a whole number, rounded half up (away from zero).
fn rounded(digits: &str, shift: i64) -> Option<i128> {
    let digits = digits.trim_start_matches('0');
    let parse = |s: &str| -> Option<i128> {
        match s.len() {
            0 => Some(0),
            1..=38 => s.parse().ok(),
            _ => None,
        }
    };
    if shift >= 0 {
        let zeros = usize::try_from(shift).ok()?;
        if digits.is_empty() {
            return Some(0);
        }
        (0..zeros).try_fold(parse(digits)?, |v, _| v.checked_mul(10))
    } else {
        let drop = usize::try_from(shift.unsigned_abs()).ok()?;
        let Some(keep) = digits.len().checked_sub(drop) else {
            return Some(0);
        };
        let (kept, dropped) = digits.split_at(keep);
        let up = dropped.bytes().next().is_some_and(|d| d >= b'5');
        parse(kept)?.checked_add(i128::from(up))
    }
}

/// A decimal column's value as Hive's `LazyHiveDecimal` reads it: blanks trimmed, Java's
/// decimal text, rounded half up to the scale, NULL beyond the precision. (Athena reads
/// the same value when it is exact at the scale, and fails the query otherwise.)
fn hive_decimal(raw: &[u8], precision: u32, scale: i8) -> Option<Exact> {
    let text = std::str::from_utf8(raw).ok()?.trim_matches(' ');
    let (negative, digits, exponent) = java_decimal(text)?;
    let unscaled = rounded(&digits, exponent.checked_add(i64::from(scale))?)?;
    if unscaled.unsigned_abs() >= 10u128.checked_pow(precision)? {
        return None;
    }
    Some(Exact::from_unscaled(
        if negative { -unscaled } else { unscaled },
        scale,
    ))
}

/// A floating column's value as Java's `Double.parseDouble` reads it (surrounding blanks,
/// a type suffix): its exact decimal value, rounded by the caller to the column's width.
/// None for NaN, infinities and what is no number; Err for a hexadecimal float.
fn java_float(raw: &[u8]) -> Result<Option<Exact>, &'static str> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Ok(None);
    };
    let text = text.trim_matches(|c: char| c <= ' ');
    let body = text.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(text);
    let unsigned = body.strip_prefix(['+', '-']).unwrap_or(body);
    if unsigned.starts_with("0x") || unsigned.starts_with("0X") {
        return Err("a hexadecimal floating-point value, which Lethe does not read; refused");
    }
    let Some((negative, digits, exponent)) = java_decimal(body) else {
        return Ok(None);
    };
    let sign = if negative { "-" } else { "" };
    Ok(parse_number(&format!("{sign}{digits}e{exponent}")).map(|(e, _)| e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(glue_type: &str, raw: &str) -> Vec<Key> {
        Reader::of(DialectKind::LazySimple, Some(glue_type))
            .unwrap()
            .keys(raw.as_bytes(), Some(b'\\'))
            .unwrap()
    }

    fn num(text: &str) -> Key {
        Key::Num(parse_number(text).unwrap().0)
    }

    #[test]
    fn integer_columns_read_as_athenas_text_reader_does() {
        for (raw, want) in [
            ("007", Some("7")),
            ("+7", Some("7")),
            ("7.9", Some("7")),
            ("-7.", Some("-7")),
            (".5", Some("0")),
            ("-0", Some("0")),
        ] {
            assert_eq!(
                keys("bigint", raw),
                want.map(num).into_iter().collect::<Vec<_>>(),
                "{raw}"
            );
        }
        for raw in ["", "-", "7.x", " 7", "7e1", "1,000", "99999999999999999999"] {
            assert!(keys("bigint", raw).is_empty(), "{raw}");
        }
        assert_eq!(
            keys("bigint", "9223372036854775807"),
            [num("9223372036854775807")]
        );
        assert_eq!(
            keys("bigint", "-9223372036854775808"),
            [num("-9223372036854775808")]
        );
        assert!(keys("bigint", "9223372036854775808").is_empty());
        assert!(keys("int", "2147483648").is_empty(), "beyond int is NULL");
        assert!(keys("tinyint", "128").is_empty() && !keys("tinyint", "127").is_empty());
    }

    #[test]
    fn decimal_and_float_columns_read_java_number_texts() {
        assert_eq!(keys("decimal(10,2)", "1.5"), [num("1.5")]);
        assert_eq!(keys("decimal(10,2)", " 1.50 "), [num("1.5")]);
        assert_eq!(keys("decimal(10,2)", "1.235"), [num("1.24")], "half up");
        assert_eq!(keys("decimal(10,2)", "-1.235"), [num("-1.24")]);
        assert_eq!(keys("decimal(10,2)", "1e2"), [num("100")]);
        assert_eq!(keys("decimal(10,2)", ".5"), [num("0.5")]);
        assert!(
            keys("decimal(4,2)", "100.00").is_empty(),
            "beyond the precision"
        );
        assert_eq!(
            keys("decimal(38,0)", "12345678901234567890123"),
            [num("12345678901234567890123")]
        );
        assert!(keys("decimal(10,2)", "x").is_empty() && keys("decimal", "").is_empty());
        assert_eq!(keys("double", " 2.5d "), [Key::f64(2.5).unwrap()]);
        assert_eq!(keys("double", "1e3"), [Key::f64(1000.0).unwrap()]);
        assert_eq!(keys("double", "+.5"), [Key::f64(0.5).unwrap()]);
        assert_eq!(keys("float", "0.1"), [Key::f32(0.1).unwrap()]);
        assert!(keys("double", "NaN").is_empty() && keys("double", "-Infinity").is_empty());
        let hex = Reader::Double.keys(b"0x1p3", None);
        assert!(hex.unwrap_err().contains("hexadecimal"));
    }

    #[test]
    fn string_columns_read_both_unescapings_and_their_declared_length() {
        assert_eq!(keys("string", r"a\,b"), [Key::Str("a,b".into())]);
        assert_eq!(
            keys("string", r"a\nb"),
            [Key::Str("anb".into()), Key::Str("a\nb".into())]
        );
        assert_eq!(keys("varchar(3)", "abcdé"), [Key::Str("abc".into())]);
        assert_eq!(keys("char(5)", "ab   x"), [Key::Str("ab".into())]);
        assert_eq!(keys("date", "2024-01-05"), [Key::Str("2024-01-05".into())]);
        assert_eq!(keys("string", ""), [Key::Str("".into())]);
        assert!(keys("string", "\u{FFFF}").len() == 1);
        assert!(
            Reader::of(DialectKind::LazySimple, Some("string"))
                .unwrap()
                .keys(&[0xff], None)
                .unwrap()
                .is_empty()
        );
        for complex in ["array<int>", "map<string,int>", "struct<a:int>", "binary"] {
            assert!(
                Reader::of(DialectKind::LazySimple, Some(complex)).is_err(),
                "{complex}"
            );
            assert!(
                Reader::of(DialectKind::OpenCsv, Some(complex)).is_err(),
                "{complex}"
            );
        }
    }

    #[test]
    fn open_csv_values_are_cast_as_athena_casts_a_varchar() {
        let int = Reader::of(DialectKind::OpenCsv, Some("int")).unwrap();
        assert_eq!(int.keys(b"007", None).unwrap(), [num("7")]);
        assert!(
            int.keys(b"7.0", None).unwrap().is_empty() && int.keys(b"", None).unwrap().is_empty()
        );
        let text = Reader::of(DialectKind::OpenCsv, None).unwrap();
        assert_eq!(text.kind(), KeyKind::Text);
        assert_eq!(text.keys(b"007", None).unwrap(), [Key::Str("007".into())]);
    }
}
