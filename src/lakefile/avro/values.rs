//! A match column's value as a comparable key, by the column's Avro type (see the module
//! docs of `lakefile::avro` for the table): exact everywhere, a float only in a `float`
//! or `double` column.

use crate::domain::exact::parse_number;
use crate::lakefile::match_set::{Exact, Key, KeyKind};

use super::cursor::{Cursor, Stop};
use super::schema::{Logical, Node, Type};

/// Widest decimal read (bytes, sign extension left out): 128 bytes, over 300 digits.
const MAX_DECIMAL_BYTES: usize = 128;

/// How a match column's value is read into a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conv {
    Int,
    Long,
    Text,
    Enum,
    Float,
    Double,
    DecimalBytes(i8),
    DecimalFixed(u64, i8),
    UuidFixed,
    Date,
}

impl Conv {
    /// How a value of `node` is read, and the kind of column it is; the type's name when
    /// ids cannot be compared with it.
    pub(crate) fn of(node: &Node) -> Result<(Conv, KeyKind), String> {
        let scale = |scale: u64| {
            i8::try_from(scale).map_err(|_| format!("decimal of scale {scale} (at most 127)"))
        };
        Ok(match (&node.ty, node.logical) {
            (Type::Int, Some(Logical::Date)) => (Conv::Date, KeyKind::Text),
            (Type::Int, _) => (Conv::Int, KeyKind::Int),
            (Type::Long, _) => (Conv::Long, KeyKind::Int),
            (Type::String, _) => (Conv::Text, KeyKind::Text),
            (Type::Enum { .. }, _) => (Conv::Enum, KeyKind::Text),
            (Type::Float, _) => (Conv::Float, KeyKind::Float),
            (Type::Double, _) => (Conv::Double, KeyKind::Double),
            (Type::Bytes, Some(Logical::Decimal { scale: s })) => {
                (Conv::DecimalBytes(scale(s)?), KeyKind::Decimal(scale(s)?))
            }
            (Type::Fixed { size }, Some(Logical::Decimal { scale: s })) => (
                Conv::DecimalFixed(*size, scale(s)?),
                KeyKind::Decimal(scale(s)?),
            ),
            (Type::Fixed { size: 16 }, Some(Logical::Uuid)) => (Conv::UuidFixed, KeyKind::Text),
            (ty, _) => return Err(type_name(ty).to_owned()),
        })
    }
}

/// The name of a type in the specification's words.
pub(crate) fn type_name(ty: &Type) -> &'static str {
    match ty {
        Type::Null => "null",
        Type::Boolean => "boolean",
        Type::Int => "int",
        Type::Long => "long",
        Type::Float => "float",
        Type::Double => "double",
        Type::Bytes => "bytes",
        Type::String => "string",
        Type::Record { .. } => "record",
        Type::Enum { .. } => "enum",
        Type::Array(_) => "array",
        Type::Map(_) => "map",
        Type::Union(_) => "union",
        Type::Fixed { .. } => "fixed",
    }
}

/// Reads one value of `node` (the type `conv` was made for) as a key; None where no id can
/// equal it (a string that is not UTF-8, a NaN).
pub(crate) fn read(c: &mut Cursor<'_>, conv: Conv, node: &Node) -> Result<Option<Key>, Stop> {
    Ok(match conv {
        Conv::Int => Some(Key::Num(Exact::from_i64(i64::from(c.int()?)))),
        Conv::Long => Some(Key::Num(Exact::from_i64(c.long()?))),
        Conv::Text => std::str::from_utf8(c.bytes()?)
            .ok()
            .map(|s| Key::Str(s.to_owned())),
        Conv::Enum => {
            let Type::Enum { symbols } = &node.ty else {
                return Err(Stop::Bad("an enum column is not an enum"));
            };
            let index = usize::try_from(c.int()?).ok();
            let symbol = index.and_then(|i| symbols.get(i));
            Some(Key::Str(
                symbol
                    .ok_or(Stop::Bad("an enum index is out of range"))?
                    .clone(),
            ))
        }
        Conv::Float => Key::f32(c.float()?),
        Conv::Double => Key::f64(c.double()?),
        Conv::DecimalBytes(scale) => Some(Key::Num(decimal(c.bytes()?, scale)?)),
        Conv::DecimalFixed(size, scale) => Some(Key::Num(decimal(c.take(size)?, scale)?)),
        Conv::UuidFixed => Some(Key::Str(uuid_text(c.take(16)?))),
        Conv::Date => Some(Key::Str(date_text(c.int()?))),
    })
}

/// A decimal's value: big-endian two's complement `bytes` unscaled by `scale`, exact at
/// any width up to [`MAX_DECIMAL_BYTES`] (wider is an error, never a rounded value).
pub(crate) fn decimal(bytes: &[u8], scale: i8) -> Result<Exact, Stop> {
    let Some(&first) = bytes.first() else {
        return Err(Stop::Bad("a decimal has no bytes"));
    };
    let negative = first & 0x80 != 0;
    let mut b = bytes;
    // Sign extension carries no value.
    while let [lead, next, ..] = b {
        if (*lead == 0 && next & 0x80 == 0) || (*lead == 0xff && next & 0x80 != 0) {
            b = b.get(1..).unwrap_or_default();
        } else {
            break;
        }
    }
    if b.len() <= 16 {
        let mut value: i128 = if negative { -1 } else { 0 };
        for byte in b {
            value = (value << 8) | i128::from(*byte);
        }
        return Ok(Exact::from_unscaled(value, scale));
    }
    if b.len() > MAX_DECIMAL_BYTES {
        return Err(Stop::Bad("a decimal is wider than 128 bytes"));
    }
    // The magnitude (two's complement negated), then its decimal digits.
    let mut magnitude: Vec<u8> = b.iter().map(|x| if negative { !x } else { *x }).collect();
    if negative {
        for byte in magnitude.iter_mut().rev() {
            let (sum, carry) = byte.overflowing_add(1);
            *byte = sum;
            if !carry {
                break;
            }
        }
    }
    let sign = if negative { "-" } else { "" };
    let text = format!("{sign}{}e-{scale}", decimal_digits(magnitude));
    parse_number(&text)
        .map(|(exact, _)| exact)
        .ok_or(Stop::Bad("a decimal cannot be read"))
}

/// The decimal digits of a big-endian unsigned number.
fn decimal_digits(mut number: Vec<u8>) -> String {
    let mut chunks: Vec<u32> = Vec::new();
    while number.iter().any(|b| *b != 0) {
        // number /= 10^9, keeping the remainder.
        let mut rest: u64 = 0;
        for byte in number.iter_mut() {
            let cur = (rest << 8) | u64::from(*byte);
            *byte = (cur / 1_000_000_000) as u8;
            rest = cur % 1_000_000_000;
        }
        chunks.push(rest as u32);
    }
    let mut text = chunks.last().map_or("0".to_owned(), u32::to_string);
    for chunk in chunks.iter().rev().skip(1) {
        text.push_str(&format!("{chunk:09}"));
    }
    text
}

/// A 16-byte UUID as canonical text: lowercase, hyphenated 8-4-4-4-12.
pub(crate) fn uuid_text(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// The proleptic Gregorian day `days` after 1970-01-01 as `YYYY-MM-DD` (years outside
/// 0000–9999 with their sign and at least four digits, as ISO 8601 extends them).
pub(crate) fn date_text(days: i32) -> String {
    // Howard Hinnant's civil_from_days.
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if (0..=9999).contains(&year) {
        format!("{year:04}-{month:02}-{day:02}")
    } else {
        format!("{year:+05}-{month:02}-{day:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(text: &str) -> Exact {
        parse_number(text).unwrap().0
    }

    #[test]
    fn decimals_read_their_twos_complement_exactly_at_any_width() {
        assert_eq!(decimal(&[0x04, 0xd2], 2).unwrap(), exact("12.34"));
        assert_eq!(decimal(&[0xfb, 0x2e], 2).unwrap(), exact("-12.34"));
        assert_eq!(decimal(&[0xff; 40], 0).unwrap(), exact("-1"));
        assert_eq!(decimal(&[0x00; 40], 3).unwrap(), exact("0"));
        // 2^200 and -2^200: 26 significant bytes.
        let mut big = vec![0u8; 26];
        big[0] = 1;
        let two_200 = "1606938044258990275541962092341162602522202993782792835301376";
        assert_eq!(decimal(&big, 0).unwrap(), exact(two_200));
        let mut minus = vec![0xffu8];
        minus.extend(vec![0u8; 25]);
        assert_eq!(
            decimal(&minus, 3).unwrap(),
            exact(&format!("-{two_200}e-3"))
        );
        assert!(decimal(&[], 0).is_err());
        assert!(decimal(&[0x40; 200], 0).is_err(), "wider than 128 bytes");
    }

    #[test]
    fn uuids_and_dates_have_their_canonical_texts() {
        let bytes: Vec<u8> = (0..16).map(|i| i * 17).collect();
        assert_eq!(uuid_text(&bytes), "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(date_text(0), "1970-01-01");
        assert_eq!(date_text(-1), "1969-12-31");
        assert_eq!(date_text(19_723), "2024-01-01");
        assert_eq!(date_text(-719_528), "0000-01-01");
        assert_eq!(date_text(2_932_897), "+10000-01-01");
        assert_eq!(date_text(-719_529), "-0001-12-31");
        assert!(date_text(i32::MIN).starts_with('-') && date_text(i32::MAX).starts_with('+'));
    }

    proptest! {
        #[test]
        fn every_i128_reads_back_from_its_bytes_at_every_width(v in any::<i128>(), pad in 0usize..20, scale in 0i8..40) {
            let mut bytes = vec![if v < 0 { 0xff } else { 0 }; pad];
            bytes.extend_from_slice(&v.to_be_bytes());
            prop_assert_eq!(decimal(&bytes, scale).unwrap(), Exact::from_unscaled(v, scale));
        }

        #[test]
        fn dates_agree_with_chrono(days in -3_000_000i32..3_000_000) {
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
            let date = epoch + chrono::Duration::days(i64::from(days));
            let year = chrono::Datelike::year(&date);
            prop_assume!((0..=9999).contains(&year));
            prop_assert_eq!(date_text(days), date.format("%Y-%m-%d").to_string());
        }
    }
}
