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

use crate::lakefile::match_set::MatchSet;

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
            (Some(a), Some(b)) if !a.is_nan() && !b.is_nan() => ids.any_f32_in(*a, *b),
            _ => true,
        },
        (LeafKind::Float, Statistics::Double(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(a), Some(b)) if !a.is_nan() && !b.is_nan() => ids.any_f64_in(*a, *b),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lakefile::test_files::legacy_leaf;
    use parquet::basic::Repetition;
    use parquet::data_type::ByteArray;
    use parquet::schema::types::{ColumnPath, Type};
    use serde_json::json;
    use std::sync::Arc;

    fn descr(leaf: Arc<Type>) -> ColumnDescriptor {
        ColumnDescriptor::new(leaf, 1, 0, ColumnPath::from("c"))
    }
    fn legacy(
        physical: PhysicalType,
        converted: ConvertedType,
        dims: (i32, i32, i32),
    ) -> ColumnDescriptor {
        descr(legacy_leaf(
            "c",
            physical,
            Repetition::OPTIONAL,
            converted,
            dims,
        ))
    }
    const TYPED: ColumnOrder = ColumnOrder::TYPE_DEFINED_ORDER(SortOrder::SIGNED);
    const UNSIGNED: ColumnOrder = ColumnOrder::TYPE_DEFINED_ORDER(SortOrder::UNSIGNED);
    fn ids(v: &[serde_json::Value]) -> MatchSet {
        MatchSet::from_values(v)
    }

    #[test]
    fn a_converted_type_only_decimal_is_pruned_by_its_unscaled_range_at_its_scale() {
        let d = legacy(PhysicalType::INT32, ConvertedType::DECIMAL, (0, 9, 2));
        assert_eq!(leaf_kind(&d), LeafKind::Decimal { scale: 2 });
        // Values 1.00 ..= 2.00 stored as 100 ..= 200.
        let stats = Statistics::int32(Some(100), Some(200), None, Some(0), false);
        assert!(stats_may_match(
            &d,
            TYPED,
            Some(&stats),
            10,
            &ids(&[json!(1.5)])
        ));
        assert!(!stats_may_match(
            &d,
            TYPED,
            Some(&stats),
            10,
            &ids(&[json!(150)])
        ));
        assert!(!stats_may_match(
            &d,
            TYPED,
            Some(&stats),
            10,
            &ids(&[json!(2.001)])
        ));
    }

    #[test]
    fn byte_array_and_fixed_decimals_use_big_endian_twos_complement_bounds() {
        let d = legacy(
            PhysicalType::FIXED_LEN_BYTE_ARRAY,
            ConvertedType::DECIMAL,
            (16, 20, 2),
        );
        let be = |v: i128| parquet::data_type::FixedLenByteArray::from(v.to_be_bytes().to_vec());
        let stats =
            Statistics::fixed_len_byte_array(Some(be(-500)), Some(be(12345)), None, Some(0), false);
        assert!(stats_may_match(
            &d,
            TYPED,
            Some(&stats),
            4,
            &ids(&[json!(-4.99)])
        ));
        assert!(!stats_may_match(
            &d,
            TYPED,
            Some(&stats),
            4,
            &ids(&[json!(123.46)])
        ));
        // The same bounds in deprecated fields (signed byte order in old parquet-mr): read.
        let old =
            Statistics::fixed_len_byte_array(Some(be(-500)), Some(be(12345)), None, Some(0), true);
        assert!(stats_may_match(
            &d,
            TYPED,
            Some(&old),
            4,
            &ids(&[json!(123.46)])
        ));
        assert_eq!(be_signed(&[0xff, 0x38]), Some(-200));
        assert_eq!(be_signed(&[0; 17]), None);
    }

    #[test]
    fn unsigned_statistics_are_read_as_unsigned_and_never_from_deprecated_fields() {
        let d = legacy(PhysicalType::INT32, ConvertedType::UINT_32, (0, 0, 0));
        // 4_000_000_000 ..= 4_294_967_295, stored as negative i32 bit patterns.
        let stats = Statistics::int32(
            Some(4_000_000_000u32 as i32),
            Some(-1),
            None,
            Some(0),
            false,
        );
        let big = ids(&[json!(4_100_000_000u64)]);
        assert!(stats_may_match(&d, UNSIGNED, Some(&stats), 4, &big));
        assert!(!stats_may_match(
            &d,
            UNSIGNED,
            Some(&stats),
            4,
            &ids(&[json!(5)])
        ));
        let old = Statistics::int32(Some(4_000_000_000u32 as i32), Some(-1), None, Some(0), true);
        assert!(stats_may_match(
            &d,
            UNSIGNED,
            Some(&old),
            4,
            &ids(&[json!(5)])
        ));
    }

    #[test]
    fn string_statistics_need_typed_fields_under_a_known_order() {
        let d = legacy(PhysicalType::BYTE_ARRAY, ConvertedType::UTF8, (0, 0, 0));
        let bounds = |deprecated| {
            Statistics::byte_array(
                Some(ByteArray::from("b")),
                Some(ByteArray::from("d")),
                None,
                Some(0),
                deprecated,
            )
        };
        let a = ids(&[json!("a")]);
        assert!(!stats_may_match(&d, UNSIGNED, Some(&bounds(false)), 4, &a));
        assert!(stats_may_match(&d, UNSIGNED, Some(&bounds(true)), 4, &a));
        assert!(stats_may_match(
            &d,
            ColumnOrder::UNDEFINED,
            Some(&bounds(false)),
            4,
            &a
        ));
        // Signed integers are safe in either field.
        let i = descr(Arc::new(
            Type::primitive_type_builder("c", PhysicalType::INT64)
                .build()
                .unwrap(),
        ));
        let s = Statistics::int64(Some(10), Some(20), None, Some(0), true);
        assert!(!stats_may_match(
            &i,
            ColumnOrder::UNDEFINED,
            Some(&s),
            4,
            &ids(&[json!(5)])
        ));
        assert!(stats_may_match(
            &i,
            ColumnOrder::UNDEFINED,
            Some(&s),
            4,
            &ids(&[json!(15)])
        ));
    }

    #[test]
    fn leaves_of_other_kinds_and_missing_statistics_are_never_pruned() {
        let date = legacy(PhysicalType::INT32, ConvertedType::DATE, (0, 0, 0));
        assert_eq!(leaf_kind(&date), LeafKind::Other);
        let stats = Statistics::int32(Some(100), Some(200), None, Some(0), false);
        assert!(stats_may_match(
            &date,
            TYPED,
            Some(&stats),
            4,
            &ids(&[json!(5)])
        ));
        assert!(stats_may_match(
            &date,
            TYPED,
            Some(&stats),
            4,
            &ids(&[json!("x")])
        ));
        let int = legacy(PhysicalType::INT32, ConvertedType::NONE, (0, 0, 0));
        assert!(stats_may_match(&int, TYPED, None, 4, &ids(&[json!(5)])));
        // NaN bounds say nothing.
        let f = legacy(PhysicalType::DOUBLE, ConvertedType::NONE, (0, 0, 0));
        let nan = Statistics::double(Some(f64::NAN), Some(1.0), None, Some(0), false);
        assert!(stats_may_match(
            &f,
            TYPED,
            Some(&nan),
            4,
            &ids(&[json!(7.5)])
        ));
    }

    #[test]
    fn float_leaves_are_pruned_by_the_id_cast_to_their_own_width_and_read_when_unsure() {
        let float = legacy(PhysicalType::FLOAT, ConvertedType::NONE, (0, 0, 0));
        let double = legacy(PhysicalType::DOUBLE, ConvertedType::NONE, (0, 0, 0));
        let may = |leaf: &ColumnDescriptor, stats: &Statistics, id: serde_json::Value| {
            stats_may_match(leaf, TYPED, Some(stats), 4, &ids(&[id]))
        };
        let f32s = |a: f32, b: f32| Statistics::float(Some(a), Some(b), None, Some(0), false);
        let f64s = |a: f64, b: f64| Statistics::double(Some(a), Some(b), None, Some(0), false);
        // The float 0.1 is the id 0.1 cast to float: it must be read.
        assert!(may(&float, &f32s(0.1, 0.1), json!(0.1)));
        assert!(may(&float, &f32s(0.1, 0.1), json!("0.1")));
        // The next float up excludes it; so does the double 0.1f for the double id 0.1.
        let above = f32::from_bits(0.1f32.to_bits() + 1);
        assert!(!may(&float, &f32s(above, 1.0), json!(0.1)));
        assert!(!may(&double, &f64s(f64::from(0.1f32), 1.0), json!(0.1)));
        assert!(may(&double, &f64s(0.1, 0.1), json!(0.1)));
        // Signed zeros are one value, NaN bounds say nothing.
        assert!(may(&float, &f32s(-0.0, -0.0), json!(0)));
        assert!(may(&float, &f32s(0.0, 0.0), json!("-0")));
        assert!(may(&float, &f32s(f32::NAN, 0.0), json!(5)));
        assert!(may(&float, &f32s(-1.0, f32::NAN), json!(5)));
    }

    #[test]
    fn wide_decimal_ids_given_as_text_are_pruned_exactly() {
        let d = legacy(
            PhysicalType::FIXED_LEN_BYTE_ARRAY,
            ConvertedType::DECIMAL,
            (16, 38, 0),
        );
        let bound = |v: i128| Some(FixedLenByteArray::from(v.to_be_bytes().to_vec()));
        let value = 12_345_678_901_234_567_890_123i128;
        let stats =
            Statistics::fixed_len_byte_array(bound(value), bound(value), None, Some(0), false);
        let may = |id: &str| stats_may_match(&d, TYPED, Some(&stats), 4, &ids(&[json!(id)]));
        assert!(may("12345678901234567890123"));
        assert!(!may("12345678901234567890124"));
        assert!(!may("12345678901234567890122"));
    }

    #[test]
    fn all_null_shortcut_holds_for_flat_leaves_only() {
        let flat = legacy(PhysicalType::INT64, ConvertedType::NONE, (0, 0, 0));
        let nulls = Statistics::int64(None, None, None, Some(4), false);
        assert!(!stats_may_match(
            &flat,
            TYPED,
            Some(&nulls),
            4,
            &ids(&[json!(1)])
        ));
        let leaf = legacy_leaf(
            "c",
            PhysicalType::INT64,
            Repetition::REPEATED,
            ConvertedType::NONE,
            (0, 0, 0),
        );
        let repeated = ColumnDescriptor::new(leaf, 1, 1, ColumnPath::from("c"));
        assert!(stats_may_match(
            &repeated,
            TYPED,
            Some(&nulls),
            4,
            &ids(&[json!(1)])
        ));
    }

    #[test]
    fn bloom_probes_use_the_stored_encoding() {
        let mut bloom = Sbbf::new_with_ndv_fpp(100, 0.01).unwrap();
        // A DECIMAL(9,2) in INT32 holding 12.34 stores 1234.
        bloom.insert(&1234i32);
        let d = legacy(PhysicalType::INT32, ConvertedType::DECIMAL, (0, 9, 2));
        assert!(bloom_may_match(&bloom, &d, &ids(&[json!(12.34)])));
        // A FLBA(16) decimal: the id's 16-byte big-endian unscaled value.
        let mut fixed = Sbbf::new_with_ndv_fpp(100, 0.01).unwrap();
        fixed.insert(&parquet::data_type::FixedLenByteArray::from(
            1234i128.to_be_bytes().to_vec(),
        ));
        let f = legacy(
            PhysicalType::FIXED_LEN_BYTE_ARRAY,
            ConvertedType::DECIMAL,
            (16, 20, 2),
        );
        assert!(bloom_may_match(&fixed, &f, &ids(&[json!(12.34)])));
        // Doubles and byte-array decimals: never excluded by a bloom filter.
        let empty = Sbbf::new_with_ndv_fpp(100, 0.01).unwrap();
        let dbl = legacy(PhysicalType::DOUBLE, ConvertedType::NONE, (0, 0, 0));
        assert!(bloom_may_match(&empty, &dbl, &ids(&[json!(1.5)])));
        let bin = legacy(PhysicalType::BYTE_ARRAY, ConvertedType::DECIMAL, (0, 30, 3));
        assert!(bloom_may_match(&empty, &bin, &ids(&[json!(1.5)])));
        // And an id that is absent is excluded where the encoding is certain.
        assert!(!bloom_may_match(&empty, &d, &ids(&[json!(12.34)])));
    }
}
