//! Row-group pruning decisions for find: may this row group hold a match id in this leaf?
//! Each decision is `true` ("read it") unless the footer proves otherwise.
//!
//! A leaf's meaning comes from its logical type, else its legacy converted type, else its
//! physical type ([`leaf_kind`]). Statistics are used only where their order is certain
//! for that meaning: signed integers and floats in any statistics field; strings, unsigned
//! integers and byte-array decimals only in the `min_value` / `max_value` fields (old
//! parquet-mr wrote the deprecated `min` / `max` in signed byte order), never under an
//! undefined column order for those kinds. Decimals are compared as unscaled integers at
//! the column's scale, exactly. Bloom filters are probed with the id encoded exactly as the
//! column stores it, and not at all where that encoding is not certain (floats, byte-array
//! decimals). A leaf of another kind (dates, timestamps, booleans, binary) is never
//! pruned: reading it is where an uncomparable type becomes a loud error.

use parquet::basic::{ColumnOrder, ConvertedType, LogicalType, SortOrder, Type as PhysicalType};
use parquet::bloom_filter::Sbbf;
use parquet::data_type::FixedLenByteArray;
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnDescriptor;

use super::match_set::MatchSet;

/// What a leaf's values mean, for comparing them with match ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafKind {
    Text,
    Int {
        signed: bool,
    },
    Decimal {
        scale: i8,
    },
    Float,
    /// Anything else: never pruned.
    Other,
}

/// The leaf's kind from its logical type, else its converted type, else its physical type.
pub fn leaf_kind(descr: &ColumnDescriptor) -> LeafKind {
    let physical = descr.physical_type();
    let scale =
        |s: i32| i8::try_from(s).map_or(LeafKind::Other, |scale| LeafKind::Decimal { scale });
    match descr.logical_type_ref() {
        Some(LogicalType::String | LogicalType::Enum | LogicalType::Json) => LeafKind::Text,
        Some(LogicalType::Integer(int)) => LeafKind::Int {
            signed: int.is_signed,
        },
        Some(LogicalType::Decimal(d)) => scale(d.scale),
        Some(_) => LeafKind::Other,
        None => match descr.converted_type() {
            ConvertedType::UTF8 | ConvertedType::ENUM | ConvertedType::JSON => LeafKind::Text,
            ConvertedType::INT_8
            | ConvertedType::INT_16
            | ConvertedType::INT_32
            | ConvertedType::INT_64 => LeafKind::Int { signed: true },
            ConvertedType::UINT_8
            | ConvertedType::UINT_16
            | ConvertedType::UINT_32
            | ConvertedType::UINT_64 => LeafKind::Int { signed: false },
            ConvertedType::DECIMAL => scale(descr.type_scale()),
            ConvertedType::NONE => match physical {
                PhysicalType::INT32 | PhysicalType::INT64 => LeafKind::Int { signed: true },
                PhysicalType::FLOAT | PhysicalType::DOUBLE => LeafKind::Float,
                // Untyped byte arrays (Hive strings without an annotation) are text.
                PhysicalType::BYTE_ARRAY => LeafKind::Text,
                _ => LeafKind::Other,
            },
            _ => LeafKind::Other,
        },
    }
}

/// Whether some id can equal some value of this kind under the comparison rules of
/// `MatchSet` (strings with text, numbers with numbers).
fn kind_can_match(kind: LeafKind, ids: &MatchSet) -> bool {
    match kind {
        LeafKind::Text => ids.has_strings(),
        LeafKind::Int { .. } | LeafKind::Decimal { .. } | LeafKind::Float => ids.has_numbers(),
        LeafKind::Other => true,
    }
}

/// Whether a row group whose leaf has these statistics may hold an id. `order` is the
/// file's column order for the leaf; `rows` the row group's row count.
pub fn stats_may_match(
    descr: &ColumnDescriptor,
    order: ColumnOrder,
    stats: Option<&Statistics>,
    rows: i64,
    ids: &MatchSet,
) -> bool {
    let kind = leaf_kind(descr);
    if !kind_can_match(kind, ids) {
        return false;
    }
    let Some(stats) = stats else { return true };
    // Every row null (a flat leaf only: a repeated leaf counts null elements, not rows).
    if descr.max_rep_level() == 0 && rows > 0 && stats.null_count_opt() == Some(rows as u64) {
        return false;
    }
    if kind == LeafKind::Other {
        return true;
    }
    // Orders that only hold in the typed fields: text bytes unsigned, unsigned integers,
    // decimals stored as bytes.
    let signed_order_safe = match kind {
        LeafKind::Text | LeafKind::Int { signed: false } => false,
        LeafKind::Decimal { .. } => {
            matches!(
                descr.physical_type(),
                PhysicalType::INT32 | PhysicalType::INT64
            )
        }
        _ => true,
    };
    let order_known = matches!(
        order,
        ColumnOrder::TYPE_DEFINED_ORDER(SortOrder::SIGNED | SortOrder::UNSIGNED)
    );
    if !signed_order_safe && (stats.is_min_max_deprecated() || !order_known) {
        return true;
    }
    range_may_match(kind, stats, ids)
}

fn range_may_match(kind: LeafKind, stats: &Statistics, ids: &MatchSet) -> bool {
    match (kind, stats) {
        (LeafKind::Int { signed: true }, Statistics::Int32(s)) => {
            match (s.min_opt(), s.max_opt()) {
                (Some(a), Some(b)) => ids.any_int_in(i64::from(*a), i64::from(*b)),
                _ => true,
            }
        }
        (LeafKind::Int { signed: true }, Statistics::Int64(s)) => {
            match (s.min_opt(), s.max_opt()) {
                (Some(a), Some(b)) => ids.any_int_in(*a, *b),
                _ => true,
            }
        }
        (LeafKind::Int { signed: false }, Statistics::Int32(s)) => match (s.min_opt(), s.max_opt())
        {
            (Some(a), Some(b)) => ids.any_int_in(i64::from(*a as u32), i64::from(*b as u32)),
            _ => true,
        },
        (LeafKind::Int { signed: false }, Statistics::Int64(s)) => match (s.min_opt(), s.max_opt())
        {
            (Some(a), Some(b)) => ids.any_uint_in(*a as u64, *b as u64),
            _ => true,
        },
        (LeafKind::Decimal { scale }, stats) => match unscaled_range(stats) {
            Some((a, b)) => ids.any_decimal_in(scale, a, b),
            None => true,
        },
        (LeafKind::Float, Statistics::Float(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(a), Some(b)) if !a.is_nan() && !b.is_nan() => {
                ids.any_float_in(f64::from(*a), f64::from(*b))
            }
            _ => true,
        },
        (LeafKind::Float, Statistics::Double(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(a), Some(b)) if !a.is_nan() && !b.is_nan() => ids.any_float_in(*a, *b),
            _ => true,
        },
        (LeafKind::Text, Statistics::ByteArray(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(a), Some(b)) => ids.any_string_in(a.data(), b.data()),
            _ => true,
        },
        _ => true,
    }
}

/// A decimal leaf's statistics as unscaled integers, when exactly known.
fn unscaled_range(stats: &Statistics) -> Option<(i128, i128)> {
    match stats {
        Statistics::Int32(s) => Some((i128::from(*s.min_opt()?), i128::from(*s.max_opt()?))),
        Statistics::Int64(s) => Some((i128::from(*s.min_opt()?), i128::from(*s.max_opt()?))),
        Statistics::FixedLenByteArray(s) => Some((
            be_signed(s.min_opt()?.data())?,
            be_signed(s.max_opt()?.data())?,
        )),
        Statistics::ByteArray(s) => Some((
            be_signed(s.min_opt()?.data())?,
            be_signed(s.max_opt()?.data())?,
        )),
        _ => None,
    }
}

/// A big-endian two's-complement integer of 1 to 16 bytes.
pub fn be_signed(bytes: &[u8]) -> Option<i128> {
    if bytes.is_empty() || bytes.len() > 16 {
        return None;
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut full = [fill; 16];
    full[16 - bytes.len()..].copy_from_slice(bytes);
    Some(i128::from_be_bytes(full))
}

/// Whether the bloom filter admits some id, probed in the leaf's stored encoding; `true`
/// wherever that encoding is not certain.
pub fn bloom_may_match(bloom: &Sbbf, descr: &ColumnDescriptor, ids: &MatchSet) -> bool {
    let physical = descr.physical_type();
    match (leaf_kind(descr), physical) {
        (LeafKind::Text, PhysicalType::BYTE_ARRAY) => {
            ids.strings().iter().any(|s| bloom.check(s.as_str()))
        }
        (LeafKind::Int { signed: true }, PhysicalType::INT64) => {
            ids.ints().iter().any(|i| bloom.check(i))
        }
        (LeafKind::Int { signed: true }, PhysicalType::INT32) => ids
            .ints()
            .iter()
            .filter_map(|i| i32::try_from(*i).ok())
            .any(|i| bloom.check(&i)),
        (LeafKind::Int { signed: false }, PhysicalType::INT32) => ids
            .ints()
            .iter()
            .filter_map(|i| u32::try_from(*i).ok())
            .any(|u| bloom.check(&(u as i32))),
        (LeafKind::Int { signed: false }, PhysicalType::INT64) => {
            ids.uints().any(|u| bloom.check(&(u as i64)))
        }
        (LeafKind::Decimal { scale }, PhysicalType::INT32) => ids
            .decimals(scale)
            .iter()
            .filter_map(|d| i32::try_from(*d).ok())
            .any(|d| bloom.check(&d)),
        (LeafKind::Decimal { scale }, PhysicalType::INT64) => ids
            .decimals(scale)
            .iter()
            .filter_map(|d| i64::try_from(*d).ok())
            .any(|d| bloom.check(&d)),
        (LeafKind::Decimal { scale }, PhysicalType::FIXED_LEN_BYTE_ARRAY) => {
            let width = usize::try_from(descr.type_length()).unwrap_or(0);
            if width == 0 || width > 16 {
                return true;
            }
            ids.decimals(scale).iter().any(|d| {
                let bytes = d.to_be_bytes();
                let fits = be_signed(&bytes[16 - width..]) == Some(*d);
                // An id too wide for the column cannot be in it.
                fits && bloom.check(&FixedLenByteArray::from(bytes[16 - width..].to_vec()))
            })
        }
        _ => true,
    }
}
