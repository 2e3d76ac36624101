//! A column chunk's min and max as Iceberg bounds: read from Parquet statistics in the
//! field's Iceberg unit (timestamps in microseconds or nanoseconds, decimals unscaled), ordered
//! as Iceberg orders the type, and written in Iceberg's binary single-value serialization,
//! strings and binaries truncated as Java's `UnicodeUtil` / `BinaryUtil` truncate them.
//!
//! Every function here answers `None` when the bound is not certain (a NaN, a physical type
//! the Iceberg type does not allow, deprecated byte-array statistics, a decimal of another
//! scale, a length that does not fit): no bound is then written, never a wrong one.

use std::cmp::Ordering;

use parquet::basic::{ConvertedType, LogicalType, TimeUnit, Type as Physical};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnDescriptor;

/// An Iceberg primitive type, as far as its bounds need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Primitive {
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Date,
    Time,
    Timestamp,
    TimestampNs,
    String,
    Uuid,
    Fixed(usize),
    Binary,
    Decimal {
        scale: i32,
    },
    /// Types without bounds here (variant, geometry, unknown).
    Other,
}

impl Primitive {
    pub(super) fn parse(name: &str) -> Self {
        let name = name.trim();
        let inside = |open: &str, close: char| name.strip_prefix(open)?.strip_suffix(close);
        match name {
            "boolean" => Self::Boolean,
            "int" => Self::Int,
            "long" => Self::Long,
            "float" => Self::Float,
            "double" => Self::Double,
            "date" => Self::Date,
            "time" => Self::Time,
            "timestamp" | "timestamptz" => Self::Timestamp,
            "timestamp_ns" | "timestamptz_ns" => Self::TimestampNs,
            "string" => Self::String,
            "uuid" => Self::Uuid,
            "binary" => Self::Binary,
            _ => {
                if let Some(len) = inside("fixed[", ']').and_then(|l| l.trim().parse().ok()) {
                    Self::Fixed(len)
                } else if let Some(scale) = inside("decimal(", ')')
                    .and_then(|ps| ps.split_once(','))
                    .and_then(|(_, s)| s.trim().parse().ok())
                {
                    Self::Decimal { scale }
                } else {
                    Self::Other
                }
            }
        }
    }

    /// Whether Iceberg writes this type as this physical type (or one it promotes from).
    fn stored_as(self, physical: Physical) -> bool {
        use Physical as P;
        match self {
            Self::Boolean => physical == P::BOOLEAN,
            Self::Int | Self::Date => physical == P::INT32,
            Self::Long | Self::Time => matches!(physical, P::INT32 | P::INT64),
            Self::Timestamp | Self::TimestampNs => physical == P::INT64,
            Self::Float => physical == P::FLOAT,
            Self::Double => matches!(physical, P::FLOAT | P::DOUBLE),
            Self::String | Self::Binary => physical == P::BYTE_ARRAY,
            Self::Uuid | Self::Fixed(_) => physical == P::FIXED_LEN_BYTE_ARRAY,
            Self::Decimal { .. } => matches!(
                physical,
                P::INT32 | P::INT64 | P::FIXED_LEN_BYTE_ARRAY | P::BYTE_ARRAY
            ),
            Self::Other => false,
        }
    }
}

/// A statistic in the field's Iceberg unit, ordered as Iceberg orders the type.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Stat {
    Bool(bool),
    Int(i128),
    Float(f64),
    /// Strings (UTF-8 byte order is code point order), binaries, uuids, fixed.
    Bytes(Vec<u8>),
}

impl Stat {
    /// Iceberg's order; floats as Java's `Double.compare` (-0.0 below 0.0; NaN is never a
    /// bound here). `None` between values of different kinds.
    fn order(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Self::Bool(a), Self::Bool(b)) => Some(a.cmp(b)),
            (Self::Int(a), Self::Int(b)) => Some(a.cmp(b)),
            (Self::Float(a), Self::Float(b)) => Some(a.total_cmp(b)),
            (Self::Bytes(a), Self::Bytes(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

pub(super) fn widen(lo: Stat, hi: Stat, l: Stat, h: Stat) -> Option<Option<(Stat, Stat)>> {
    let lo = if l.order(&lo)? == Ordering::Less {
        l
    } else {
        lo
    };
    let hi = if h.order(&hi)? == Ordering::Greater {
        h
    } else {
        hi
    };
    Some(Some((lo, hi)))
}

/// A chunk's min and max in the field's Iceberg unit, or `None` when not certain.
pub(super) fn chunk_bounds(
    stats: &Statistics,
    descr: &ColumnDescriptor,
    ty: Primitive,
) -> Option<(Stat, Stat)> {
    if !ty.stored_as(descr.physical_type()) {
        return None;
    }
    let (min, max) = match stats {
        Statistics::Boolean(s) => (Stat::Bool(*s.min_opt()?), Stat::Bool(*s.max_opt()?)),
        Statistics::Int32(s) => (
            Stat::Int((*s.min_opt()?).into()),
            Stat::Int((*s.max_opt()?).into()),
        ),
        Statistics::Int64(s) => (
            Stat::Int((*s.min_opt()?).into()),
            Stat::Int((*s.max_opt()?).into()),
        ),
        Statistics::Float(s) => (
            Stat::Float((*s.min_opt()?).into()),
            Stat::Float((*s.max_opt()?).into()),
        ),
        Statistics::Double(s) => (Stat::Float(*s.min_opt()?), Stat::Float(*s.max_opt()?)),
        // Before `min_value`/`max_value`, byte arrays were compared as signed bytes.
        Statistics::ByteArray(_) | Statistics::FixedLenByteArray(_)
            if stats.is_min_max_deprecated() =>
        {
            return None;
        }
        Statistics::ByteArray(_) | Statistics::FixedLenByteArray(_) => (
            Stat::Bytes(stats.min_bytes_opt()?.to_vec()),
            Stat::Bytes(stats.max_bytes_opt()?.to_vec()),
        ),
        Statistics::Int96(_) => return None,
    };
    if let (Stat::Float(a), Stat::Float(b)) = (&min, &max)
        && (a.is_nan() || b.is_nan())
    {
        return None;
    }
    match ty {
        Primitive::Time | Primitive::Timestamp | Primitive::TimestampNs => {
            let (from, to) = (source_unit(descr, ty), target_unit(ty));
            Some((
                rescale(min, from, to, false)?,
                rescale(max, from, to, true)?,
            ))
        }
        Primitive::Decimal { scale } => {
            decimal_scale_is(descr, scale).then_some(())?;
            Some((unscaled(min)?, unscaled(max)?))
        }
        _ => Some((min, max)),
    }
}

/// Nanoseconds per unit of the column's time or timestamp annotation.
fn source_unit(descr: &ColumnDescriptor, ty: Primitive) -> i128 {
    let unit = |u: &TimeUnit| match u {
        TimeUnit::MILLIS => 1_000_000,
        TimeUnit::MICROS => 1_000,
        TimeUnit::NANOS => 1,
    };
    match (descr.logical_type_ref(), descr.converted_type()) {
        (Some(LogicalType::Timestamp(t)), _) | (Some(LogicalType::Time(t)), _) => unit(&t.unit),
        (_, ConvertedType::TIMESTAMP_MILLIS | ConvertedType::TIME_MILLIS) => 1_000_000,
        (_, ConvertedType::TIMESTAMP_MICROS | ConvertedType::TIME_MICROS) => 1_000,
        _ => target_unit(ty),
    }
}

fn target_unit(ty: Primitive) -> i128 {
    if ty == Primitive::TimestampNs {
        1
    } else {
        1_000
    }
}

/// Converts a time value between units; a lower bound rounds down, an upper bound up.
fn rescale(stat: Stat, from: i128, to: i128, upper: bool) -> Option<Stat> {
    let Stat::Int(v) = stat else { return None };
    let nanos = v.checked_mul(from)?;
    let (q, r) = (nanos.div_euclid(to), nanos.rem_euclid(to));
    Some(Stat::Int(if upper && r != 0 { q + 1 } else { q }))
}

/// Whether the column is a decimal of this scale (Iceberg never changes a scale).
fn decimal_scale_is(descr: &ColumnDescriptor, scale: i32) -> bool {
    match descr.logical_type_ref() {
        Some(LogicalType::Decimal(d)) => d.scale == scale,
        _ => descr.converted_type() == ConvertedType::DECIMAL && descr.type_scale() == scale,
    }
}

/// A decimal's unscaled value: an integer, or big-endian two's complement bytes.
pub(super) fn unscaled(stat: Stat) -> Option<Stat> {
    match stat {
        Stat::Int(v) => Some(Stat::Int(v)),
        Stat::Bytes(b) if !b.is_empty() && b.len() <= 16 => {
            let fill = if b[0] & 0x80 != 0 { 0xff } else { 0 };
            let mut full = [fill; 16];
            full[16 - b.len()..].copy_from_slice(&b);
            Some(Stat::Int(i128::from_be_bytes(full)))
        }
        _ => None,
    }
}

/// Iceberg's binary single-value serialization of a bound; strings and binaries
/// truncated to `width` code points / bytes.
pub(super) fn serialize(
    ty: Primitive,
    stat: &Stat,
    width: Option<usize>,
    upper: bool,
) -> Option<Vec<u8>> {
    match (ty, stat) {
        (Primitive::Boolean, Stat::Bool(b)) => Some(vec![u8::from(*b)]),
        (Primitive::Int | Primitive::Date, Stat::Int(v)) => {
            Some(i32::try_from(*v).ok()?.to_le_bytes().to_vec())
        }
        (
            Primitive::Long | Primitive::Time | Primitive::Timestamp | Primitive::TimestampNs,
            Stat::Int(v),
        ) => Some(i64::try_from(*v).ok()?.to_le_bytes().to_vec()),
        (Primitive::Float, Stat::Float(v)) => Some((*v as f32).to_le_bytes().to_vec()),
        (Primitive::Double, Stat::Float(v)) => Some(v.to_le_bytes().to_vec()),
        (Primitive::Decimal { .. }, Stat::Int(v)) => Some(minimal_be(*v)),
        (Primitive::String, Stat::Bytes(b)) => {
            let s = std::str::from_utf8(b).ok()?;
            let s = match width {
                Some(n) if upper => truncate_str_upper(s, n)?,
                Some(n) => s.chars().take(n).collect(),
                None => s.to_owned(),
            };
            Some(s.into_bytes())
        }
        (Primitive::Binary, Stat::Bytes(b)) => match width {
            Some(n) if upper => truncate_bytes_upper(b, n),
            Some(n) => Some(b[..n.min(b.len())].to_vec()),
            None => Some(b.clone()),
        },
        (Primitive::Uuid, Stat::Bytes(b)) => (b.len() == 16).then(|| b.clone()),
        (Primitive::Fixed(len), Stat::Bytes(b)) => (b.len() == len).then(|| b.clone()),
        _ => None,
    }
}

/// The shortest big-endian two's complement of `v` (Java's `BigInteger.toByteArray`).
pub(super) fn minimal_be(v: i128) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let sign = if v < 0 { 0xff } else { 0 };
    let mut start = 0;
    while start < 15 && bytes[start] == sign && (bytes[start + 1] & 0x80) == (sign & 0x80) {
        start += 1;
    }
    bytes[start..].to_vec()
}

/// The first `n` code points with the last one that can be incremented incremented (the
/// ones after it dropped, as Java's `UnicodeUtil.truncateStringMax`): the smallest such
/// string above every string it stands for. `None` when none can be.
pub(super) fn truncate_str_upper(s: &str, n: usize) -> Option<String> {
    if s.chars().nth(n).is_none() {
        return Some(s.to_owned());
    }
    let chars: Vec<char> = s.chars().take(n).collect();
    for i in (0..chars.len()).rev() {
        let next = match u32::from(chars[i]) + 1 {
            0xD800 => 0xE000,
            next => next,
        };
        if let Some(next) = char::from_u32(next) {
            let mut out: String = chars[..i].iter().collect();
            out.push(next);
            return Some(out);
        }
    }
    None
}

/// The first `n` bytes with the last one below 0xff incremented (the ones after it
/// dropped, as Java's `BinaryUtil.truncateBinaryMax`). `None` when none can be.
pub(super) fn truncate_bytes_upper(b: &[u8], n: usize) -> Option<Vec<u8>> {
    if b.len() <= n {
        return Some(b.to_vec());
    }
    let i = b[..n].iter().rposition(|&byte| byte < 0xff)?;
    let mut out = b[..=i].to_vec();
    out[i] += 1;
    Some(out)
}
