//! Comparable values and the casts between them, as Athena compares a match id with a
//! column after S3 Find and Forget's casts: the id is cast to the column's type.
//!
//! Exact everywhere but in floating columns: numbers (JSON numbers by their text, numeric
//! texts) compare by their exact decimal value ([`Exact`]); a `double` column compares the
//! id rounded once to an `f64`, a `float` (`real`) column the id rounded once to an `f32`,
//! as `CAST(id AS double)` / `CAST(id AS real)` would. A text is cast to an integer only
//! when it is an integer text (`"0042"`; not `"4.0"` nor `"1e3"`), to a decimal only when
//! it is a plain decimal exact at the column's scale, to a float when it is any number
//! text. A number is cast to text as its JSON text.

use super::exact::{Exact, Form, parse_number};

/// A comparable value: text, an exact number, or a float as its column stores it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Str(String),
    Num(Exact),
    /// A `double` value's bits (zero without sign; never NaN).
    F64(u64),
    /// A `float` value's bits (zero without sign; never NaN).
    F32(u32),
}

impl Key {
    /// The key of a `double` value; None for NaN and infinities (no id equals them).
    pub fn f64(f: f64) -> Option<Self> {
        f.is_finite().then(|| Key::F64((f + 0.0).to_bits()))
    }
    /// The key of a `float` value; None for NaN and infinities.
    pub fn f32(f: f32) -> Option<Self> {
        f.is_finite().then(|| Key::F32((f + 0.0).to_bits()))
    }
}

/// The kind of value a column holds, as far as comparing keys goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Text,
    Int,
    /// Decimal of this scale.
    Decimal(i8),
    /// 64-bit floating point.
    Double,
    /// 32-bit floating point (`float`, `real`).
    Float,
}

impl KeyKind {
    /// The kind of a Glue / Hive scalar type; None for types ids are not cast to.
    pub fn of_hive(ty: &str) -> Option<KeyKind> {
        let t = ty.trim().to_ascii_lowercase();
        let base = t.split('(').next().unwrap_or_default().trim();
        Some(match base {
            "string" | "varchar" | "char" => KeyKind::Text,
            "tinyint" | "smallint" | "int" | "integer" | "bigint" => KeyKind::Int,
            "double" => KeyKind::Double,
            "float" | "real" => KeyKind::Float,
            "decimal" => {
                let scale = t
                    .split_once('(')
                    .and_then(|(_, p)| p.trim_end_matches(')').split(',').nth(1))
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                KeyKind::Decimal(scale)
            }
            _ => return None,
        })
    }
}

/// A text (a string id, a JSON Lines string value) cast to `kind`: Athena's CAST of a
/// varchar.
pub fn cast_text(s: &str, kind: Option<KeyKind>) -> Option<Key> {
    let kind = match kind {
        None | Some(KeyKind::Text) => return Some(Key::Str(s.to_owned())),
        Some(kind) => kind,
    };
    let (exact, form) = parse_number(s)?;
    match kind {
        KeyKind::Int if form != Form::Integer => None,
        KeyKind::Decimal(_) if form == Form::Scientific => None,
        _ => cast_exact(exact, kind),
    }
}

/// A number, given by its JSON text, cast to `kind`; as text it is that JSON text.
pub fn cast_number(text: &str, kind: Option<KeyKind>) -> Option<Key> {
    let (exact, _) = parse_number(text)?;
    match kind {
        None => Some(Key::Num(exact)),
        Some(KeyKind::Text) => Some(Key::Str(text.to_owned())),
        Some(kind) => cast_exact(exact, kind),
    }
}

/// An exact number cast to a numeric kind: an integer column holds whole numbers of 64
/// bits, a decimal column numbers exact at its scale, a float column the rounded value.
fn cast_exact(exact: Exact, kind: KeyKind) -> Option<Key> {
    match kind {
        KeyKind::Int => {
            (exact.to_i64().is_some() || exact.to_u64().is_some()).then_some(Key::Num(exact))
        }
        KeyKind::Decimal(scale) => exact.unscaled(scale).map(|_| Key::Num(exact)),
        KeyKind::Double => Key::f64(exact.to_f64()?),
        KeyKind::Float => Key::f32(exact.to_f32()?),
        KeyKind::Text => None,
    }
}

/// `s` as a JSON number when it is a plain number text (`-12`, `0042`, `1.50`, `1e3`):
/// what Athena's CAST of a string to a numeric type accepts.
pub fn numeric_text(s: &str) -> Option<serde_json::Number> {
    let body = s.strip_prefix('-').unwrap_or(s);
    if body.is_empty() || !body.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let digits_only = body.trim_start_matches('0');
    let canonical = if s.starts_with('-') {
        format!(
            "-{}",
            if digits_only.is_empty() || digits_only.starts_with('.') {
                format!("0{digits_only}")
            } else {
                digits_only.to_owned()
            }
        )
    } else if digits_only.is_empty() || digits_only.starts_with('.') {
        format!("0{digits_only}")
    } else {
        digits_only.to_owned()
    };
    serde_json::from_str::<serde_json::Number>(&canonical)
        .ok()
        .filter(|n| n.as_f64().is_some_and(f64::is_finite))
}

/// The unscaled value at `scale` of a plain decimal text (`-12.340`), when exact.
pub fn unscaled(text: &str, scale: i8) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let scale = usize::try_from(scale).ok()?;
    let significant = fraction.trim_end_matches('0');
    if significant.len() > scale {
        return None;
    }
    let mut value: i128 = 0;
    let padded = fraction.bytes().chain(std::iter::repeat(b'0')).take(scale);
    for b in whole.bytes().chain(padded) {
        value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(text: &str) -> Option<Key> {
        cast_number(text, None)
    }

    #[test]
    fn keys_cast_to_a_columns_kind_exactly_or_not_at_all() {
        assert_eq!(cast_text("0042", Some(KeyKind::Int)), num("42"));
        assert_eq!(cast_text("4.2", Some(KeyKind::Int)), None);
        assert_eq!(cast_text("4.0", Some(KeyKind::Int)), None);
        assert_eq!(cast_number("4.0", Some(KeyKind::Int)), num("4"));
        assert_eq!(
            cast_number("42", Some(KeyKind::Text)),
            Some(Key::Str("42".into()))
        );
        assert_eq!(
            cast_text("123.450", Some(KeyKind::Decimal(3))),
            num("123.45")
        );
        assert_eq!(cast_text("123.4501", Some(KeyKind::Decimal(3))), None);
        assert_eq!(cast_text("12.000", Some(KeyKind::Decimal(2))), num("12"));
        assert_eq!(cast_text("1e1", Some(KeyKind::Decimal(2))), None);
        assert_eq!(cast_text("2.5", Some(KeyKind::Double)), Key::f64(2.5));
        assert_eq!(cast_number("0.1", Some(KeyKind::Float)), Key::f32(0.1));
        assert_ne!(num("12345678901234567890"), num("12345678901234567891"));
        assert_eq!(KeyKind::of_hive("decimal(6,3)"), Some(KeyKind::Decimal(3)));
        assert_eq!(KeyKind::of_hive("BIGINT"), Some(KeyKind::Int));
        assert_eq!(KeyKind::of_hive("float"), Some(KeyKind::Float));
        assert_eq!(KeyKind::of_hive("double"), Some(KeyKind::Double));
        assert_eq!(KeyKind::of_hive("array<int>"), None);
    }

    #[test]
    fn numeric_and_decimal_texts_convert_exactly_or_not_at_all() {
        assert_eq!(numeric_text("abc"), None);
        assert_eq!(numeric_text("-007").unwrap().as_i64(), Some(-7));
        assert_eq!(numeric_text(" 1"), None);
        assert_eq!(unscaled("12.34", 2), Some(1234));
        assert_eq!(unscaled("1.235", 2), None);
        assert_eq!(unscaled("1e5", 0), None);
        assert_eq!(unscaled("", 0), None);
    }
}
