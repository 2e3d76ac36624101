//! A set of simple match ids, indexed for row checks (hash sets) and for row-group pruning
//! (sorted vectors, so a [min, max] range test is two binary searches whatever the size).
//!
//! Comparison follows Athena: a string id matches string columns; a numeric id matches
//! integer, floating-point and decimal columns by value; never across the two.

use std::collections::{HashMap, HashSet};

/// Row checks hash every value of a column: a fast non-cryptographic hasher matters (ids
/// come from the queue, not from an adversary choosing collisions against us).
type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;

use serde_json::Value;

/// A comparable value of a composite match: text, or a number (integral numbers compare
/// as integers, so 42 and 42.0 are one key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Str(String),
    Int(i64),
    /// Integers above `i64::MAX`.
    UInt(u64),
    Float(u64),
}

impl Key {
    pub fn from_f64(f: f64) -> Self {
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            Key::Int(f as i64)
        } else {
            Key::Float(if f == 0.0 { 0 } else { f.to_bits() })
        }
    }
    /// The key of a JSON string or number.
    pub fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::String(s) => Some(Key::Str(s.clone())),
            Value::Number(n) => n
                .as_i64()
                .map(Key::Int)
                .or_else(|| n.as_u64().map(Key::UInt))
                .or_else(|| n.as_f64().map(Key::from_f64)),
            _ => None,
        }
    }
}

/// Composite matches that name the same columns: a row matches when its values at
/// `columns` form one of `tuples`.
#[derive(Debug, Clone, Default)]
pub struct CompositeGroup {
    /// Lowercased column paths, sorted.
    pub columns: Vec<String>,
    pub tuples: HashSet<Vec<Key>>,
}

/// Simple match ids.
#[derive(Debug, Clone, Default)]
pub struct MatchSet {
    strings: FastSet<String>,
    sorted_strings: Vec<String>,
    ints: FastSet<i64>,
    sorted_ints: Vec<i64>,
    /// Every numeric id as f64 (for float and decimal columns).
    floats: Vec<f64>,
    /// Integral ids above `i64::MAX` (unsigned 64-bit columns), sorted.
    big_uints: Vec<u64>,
    composites: Vec<CompositeGroup>,
    /// Never skip row groups (benchmarks measure what pruning saves).
    no_pruning: bool,
}

impl MatchSet {
    /// Adds composite matches (`[{"column":..,"value":..}]`, as queued); malformed ones are
    /// ignored (the queue validated them).
    pub fn with_composites<'a>(mut self, matches: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut groups: HashMap<Vec<String>, HashSet<Vec<Key>>> = HashMap::new();
        for m in matches {
            let Some(parts) = m.as_array() else { continue };
            let mut pairs: Vec<(String, Key)> = parts
                .iter()
                .filter_map(|p| {
                    Some((
                        p.get("column")?.as_str()?.to_ascii_lowercase(),
                        Key::from_json(p.get("value")?)?,
                    ))
                })
                .collect();
            if pairs.is_empty() || pairs.len() != parts.len() {
                continue;
            }
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            let (columns, keys): (Vec<String>, Vec<Key>) = pairs.into_iter().unzip();
            groups.entry(columns).or_default().insert(keys);
        }
        self.composites = groups
            .into_iter()
            .map(|(columns, tuples)| CompositeGroup { columns, tuples })
            .collect();
        self.composites.sort_by(|a, b| a.columns.cmp(&b.columns));
        self
    }

    /// The same set, with row-group pruning by statistics and bloom filters turned off.
    pub fn without_pruning(mut self) -> Self {
        self.no_pruning = true;
        self
    }

    /// Whether row groups may be skipped by statistics and bloom filters: not with
    /// composite matches (conservative) nor when turned off.
    pub fn prunable(&self) -> bool {
        self.composites.is_empty() && !self.no_pruning
    }

    pub fn composites(&self) -> &[CompositeGroup] {
        &self.composites
    }

    /// Builds the set from queue match ids (JSON strings and numbers; others are ignored).
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut set = MatchSet::default();
        for v in values {
            match v {
                Value::String(s) => {
                    set.strings.insert(s.clone());
                }
                Value::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        set.ints.insert(i);
                    } else if let Some(u) = n.as_u64() {
                        set.big_uints.push(u);
                    }
                    if let Some(f) = n.as_f64() {
                        set.floats.push(f);
                        // An integral float id also matches integer columns.
                        if f.fract() == 0.0 && f.abs() < 9.0e15 && n.as_i64().is_none() {
                            set.ints.insert(f as i64);
                        }
                    }
                }
                _ => {}
            }
        }
        set.sorted_strings = set.strings.iter().cloned().collect();
        set.sorted_strings.sort();
        set.sorted_ints = set.ints.iter().copied().collect();
        set.sorted_ints.sort_unstable();
        set.floats.sort_by(f64::total_cmp);
        set.floats.dedup();
        set.big_uints.sort_unstable();
        set.big_uints.dedup();
        set
    }

    /// Parses one id per line: integers and decimals as numbers, anything else as a string.
    pub fn from_lines(text: &str) -> Self {
        let values: Vec<Value> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| match serde_json::from_str::<serde_json::Number>(l) {
                Ok(n) => Value::Number(n),
                Err(_) => Value::String(l.to_owned()),
            })
            .collect();
        Self::from_values(&values)
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty() && self.floats.is_empty() && self.composites.is_empty()
    }
    pub fn len(&self) -> usize {
        self.strings.len()
            + self.floats.len()
            + self
                .composites
                .iter()
                .map(|g| g.tuples.len())
                .sum::<usize>()
    }
    /// Whether a JSON value equals a simple id.
    pub fn contains_json(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => self.contains_str(s),
            Value::Number(n) => match n.as_i64() {
                Some(i) => self.contains_int(i),
                None => n.as_f64().is_some_and(|f| self.contains_float(f)),
            },
            _ => false,
        }
    }
    pub fn contains_str(&self, s: &str) -> bool {
        self.strings.contains(s)
    }
    pub fn contains_int(&self, i: i64) -> bool {
        self.ints.contains(&i)
    }
    pub fn contains_float(&self, f: f64) -> bool {
        self.floats.binary_search_by(|x| x.total_cmp(&f)).is_ok()
    }
    pub fn has_strings(&self) -> bool {
        !self.strings.is_empty()
    }
    pub fn has_numbers(&self) -> bool {
        !self.floats.is_empty()
    }
    pub fn strings(&self) -> &[String] {
        &self.sorted_strings
    }
    pub fn ints(&self) -> &[i64] {
        &self.sorted_ints
    }
    /// Whether an unsigned 64-bit value is an id.
    pub fn contains_uint(&self, u: u64) -> bool {
        i64::try_from(u).map_or_else(
            |_| self.big_uints.binary_search(&u).is_ok(),
            |i| self.ints.contains(&i),
        )
    }
    /// The non-negative integral ids as unsigned values, ascending.
    pub fn uints(&self) -> impl Iterator<Item = u64> + '_ {
        let start = self.sorted_ints.partition_point(|i| *i < 0);
        self.sorted_ints[start..]
            .iter()
            .map(|i| *i as u64)
            .chain(self.big_uints.iter().copied())
    }
    /// Numeric ids as decimals of `scale`: the unscaled values of those that are exact at
    /// that scale (an id with more fractional digits than the scale is in no such column).
    /// Exact: non-integral ids are read from their shortest decimal text, never through
    /// f64 arithmetic.
    pub fn decimals(&self, scale: i8) -> HashSet<i128> {
        let mut out: HashSet<i128> = self
            .floats
            .iter()
            .filter(|f| f.is_finite())
            .filter_map(|f| unscaled(&f.to_string(), scale))
            .collect();
        // Integers exactly, beyond f64's 53 bits.
        out.extend(
            self.sorted_ints
                .iter()
                .filter_map(|i| unscaled(&i.to_string(), scale)),
        );
        out.extend(
            self.big_uints
                .iter()
                .filter_map(|u| unscaled(&u.to_string(), scale)),
        );
        out
    }
    /// Whether some decimal id at `scale` has its unscaled value in [min, max].
    pub fn any_decimal_in(&self, scale: i8, min: i128, max: i128) -> bool {
        self.decimals(scale).iter().any(|d| (min..=max).contains(d))
    }
    /// Whether some unsigned integral id lies in [min, max].
    pub fn any_uint_in(&self, min: u64, max: u64) -> bool {
        self.uints().any(|u| (min..=max).contains(&u))
    }

    /// Whether some string id lies in [min, max] (byte order, as Parquet statistics are).
    pub fn any_string_in(&self, min: &[u8], max: &[u8]) -> bool {
        let start = self.sorted_strings.partition_point(|s| s.as_bytes() < min);
        self.sorted_strings
            .get(start)
            .is_some_and(|s| s.as_bytes() <= max)
    }
    /// Whether some integer id lies in [min, max].
    pub fn any_int_in(&self, min: i64, max: i64) -> bool {
        let start = self.sorted_ints.partition_point(|i| *i < min);
        self.sorted_ints.get(start).is_some_and(|i| *i <= max)
    }
    /// Whether some numeric id lies in [min, max].
    pub fn any_float_in(&self, min: f64, max: f64) -> bool {
        let start = self.floats.partition_point(|f| *f < min);
        self.floats.get(start).is_some_and(|f| *f <= max)
    }
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
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn strings_and_numbers_never_match_each_other() {
        let set = MatchSet::from_values(&[json!("42"), json!(7), json!(2.5)]);
        assert!(set.contains_str("42") && !set.contains_int(42));
        assert!(set.contains_int(7) && !set.contains_str("7"));
        assert!(set.contains_float(2.5) && set.contains_float(7.0));
        assert!(!set.contains_int(2));
    }

    #[test]
    fn lines_parse_numbers_as_numbers() {
        let set = MatchSet::from_lines("jane@example.com\n42\n\n 3.5 \n");
        assert!(
            set.contains_str("jane@example.com") && set.contains_int(42) && set.contains_float(3.5)
        );
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn decimal_texts_convert_exactly_or_not_at_all() {
        assert_eq!(unscaled("12.34", 2), Some(1234));
        assert_eq!(unscaled("-0.5", 3), Some(-500));
        assert_eq!(unscaled("7", 4), Some(70000));
        assert_eq!(unscaled("1.230", 2), Some(123));
        assert_eq!(unscaled("1.235", 2), None);
        assert_eq!(
            unscaled("99999999999999999999999999999999999999999", 0),
            None
        );
        assert_eq!(unscaled("1e5", 0), None);
        assert_eq!(unscaled("", 0), None);
        // 0.1 + 0.2 is not 0.3 in f64, but an id written 0.3 is 0.3.
        let set = MatchSet::from_values(&[json!(0.3), json!(18446744073709551615u64)]);
        assert!(set.decimals(1).contains(&3));
        assert!(set.decimals(0).contains(&18446744073709551615));
        assert!(set.contains_uint(u64::MAX) && !set.contains_int(-1));
    }

    #[test]
    fn decimals_are_matched_exactly_at_the_column_scale() {
        let set = MatchSet::from_values(&[json!(12.34), json!(5)]);
        let at2 = set.decimals(2);
        assert!(at2.contains(&1234) && at2.contains(&500));
        assert!(!set.decimals(1).contains(&123));
    }

    proptest! {
        #[test]
        fn range_tests_agree_with_a_linear_scan(ids in prop::collection::vec(-1000i64..1000, 0..50), a in -1100i64..1100, b in -1100i64..1100) {
            let (min, max) = (a.min(b), a.max(b));
            let values: Vec<Value> = ids.iter().map(|i| json!(i)).collect();
            let strings: Vec<Value> = ids.iter().map(|i| json!(format!("{i:05}"))).collect();
            let set = MatchSet::from_values(values.iter().chain(strings.iter()));
            prop_assert_eq!(set.any_int_in(min, max), ids.iter().any(|i| (min..=max).contains(i)));
            prop_assert_eq!(set.any_float_in(min as f64, max as f64), ids.iter().any(|i| (min..=max).contains(i)));
            let (smin, smax) = (format!("{min:05}"), format!("{max:05}"));
            let linear = ids.iter().map(|i| format!("{i:05}")).any(|s| s.as_bytes() >= smin.as_bytes() && s.as_bytes() <= smax.as_bytes());
            prop_assert_eq!(set.any_string_in(smin.as_bytes(), smax.as_bytes()), linear);
        }
    }
}
