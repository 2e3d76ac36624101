//! A set of simple match ids, indexed for row checks (hash sets) and for row-group pruning
//! (sorted vectors, so a [min, max] range test is two binary searches whatever the size),
//! and the composite matches.
//!
//! Each id is kept once per kind of column it can be compared with, cast as `key` says:
//! as text, as a 64-bit integer, as an exact decimal, as a `double`, as a `float`, and (for
//! JSON Lines columns of no declared type) as an exact number. A row value is looked up
//! among the ids of its column's kind only, so `"4.0"` never meets an integer column and
//! `12345678901234567891` never meets `12345678901234567890`.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

pub use crate::domain::exact::Exact;
use crate::domain::exact::{kept_exactly, parse_number};
use crate::domain::json_serde::JsonSerde;
pub use crate::domain::key::{Key, KeyKind, cast_number, cast_text, numeric_text, unscaled};
use crate::domain::match_id::{MatchId, Part, Scalar};

/// Row checks hash every value of a column: a fast non-cryptographic hasher matters (ids
/// come from the queue, not from an adversary choosing collisions against us).
type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Which kind of column an id was cast for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Class {
    Text,
    Int,
    Decimal,
    Double,
    Float,
    /// A JSON Lines number in a column of no declared type: by exact value.
    Number,
}

impl Class {
    /// The ids a row value of this key, in a column of `kind`, is compared with.
    fn of(kind: Option<KeyKind>, key: &Key) -> Class {
        match (kind, key) {
            (Some(KeyKind::Text), _) | (None, Key::Str(_)) => Class::Text,
            (Some(KeyKind::Int), _) => Class::Int,
            (Some(KeyKind::Decimal(_)), _) => Class::Decimal,
            (Some(KeyKind::Double), _) | (None, Key::F64(_)) => Class::Double,
            (Some(KeyKind::Float), _) | (None, Key::F32(_)) => Class::Float,
            (None, Key::Num(_)) => Class::Number,
        }
    }
}

/// Which queued matches (by their index in the job's list) a key or tuple is.
pub type Owners = Vec<u32>;

/// A composite group's tuples, each with the matches it is.
pub type Tuples = HashMap<Vec<Key>, Owners>;

/// Composite matches that name the same columns: a row matches when its values at
/// `columns` form one of `tuples` (each with the matches it is).
#[derive(Debug, Clone, Default)]
pub struct CompositeGroup {
    /// Lowercased column paths, sorted.
    pub columns: Vec<String>,
    /// The tuples as queued (values in `columns` order), with their matches.
    queued: Vec<(Vec<Scalar>, Owners)>,
    /// The tuples cast to the declared kinds of their columns (JSON Lines), else as queued.
    pub tuples: Tuples,
}

impl CompositeGroup {
    /// The tuples with each part cast to its column's kind (None: as queued); a tuple
    /// with a part that cannot be cast is dropped (it matches no row).
    pub fn cast(&self, kinds: &[Option<KeyKind>]) -> Tuples {
        let mut out = Tuples::new();
        for (values, owners) in &self.queued {
            let cast: Option<Vec<Key>> = values
                .iter()
                .zip(kinds)
                .map(|(v, kind)| v.cast(*kind))
                .collect();
            if let Some(cast) = cast {
                out.entry(cast).or_default().extend(owners);
            }
        }
        out
    }
}

/// Combinations of a composite's column values tried one by one; beyond this the
/// group's tuples are scanned instead.
const MAX_COMBINATIONS: usize = 64;

/// Adds the matches of every tuple the columns' values (one non-empty list per column:
/// the values a record has there, in every reading of it) form.
pub fn tuple_owners(candidates: &[Vec<Key>], tuples: &Tuples, owners: &mut Vec<u32>) {
    let combinations = candidates
        .iter()
        .try_fold(1usize, |n, c| n.checked_mul(c.len()));
    match combinations {
        Some(n) if n <= MAX_COMBINATIONS => {
            for mut rest in 0..n {
                let tuple: Option<Vec<Key>> = candidates
                    .iter()
                    .map(|c| {
                        let key = c.get(rest.checked_rem(c.len())?).cloned();
                        rest = rest.checked_div(c.len())?;
                        key
                    })
                    .collect();
                if let Some(found) = tuple.and_then(|t| tuples.get(&t)) {
                    owners.extend_from_slice(found);
                }
            }
        }
        _ => {
            for (tuple, found) in tuples {
                if tuple.iter().zip(candidates).all(|(k, c)| c.contains(k)) {
                    owners.extend_from_slice(found);
                }
            }
        }
    }
}

/// Simple match ids.
#[derive(Debug, Clone, Default)]
pub struct MatchSet {
    strings: FastSet<String>,
    sorted_strings: Vec<String>,
    ints: FastSet<i64>,
    sorted_ints: Vec<i64>,
    /// Integral ids above `i64::MAX` (unsigned 64-bit columns), sorted.
    big_uints: Vec<u64>,
    /// Ids as exact decimals (numbers, plain decimal texts), whatever the scale.
    decimals: Vec<Exact>,
    /// Ids cast to `double` / `float`, sorted, zero without sign.
    doubles: Vec<f64>,
    floats: Vec<f32>,
    /// Which simple ids each key is, per class (row checks and the per-match account).
    owners: [FastMap<Key, Owners>; 6],
    /// The ids as given (before their casts), for counting.
    given: usize,
    /// Declared kinds of JSON columns (lowercased paths): how a line's value is read.
    declared: HashMap<String, KeyKind>,
    /// How the table's JSON SerDe finds a column's keys (None: the field of exactly its
    /// name, else the only one equal to it ignoring case).
    serde: Option<JsonSerde>,
    composites: Vec<CompositeGroup>,
    /// Never skip row groups (benchmarks measure what pruning saves).
    no_pruning: bool,
}

impl MatchSet {
    /// Adds composite matches given as JSON (`[{"column":..,"value":..}]`: tests,
    /// benchmarks); ids of another shape are ignored.
    pub fn with_composites<'a>(self, matches: impl IntoIterator<Item = &'a Value>) -> Self {
        let first = self.given as u32;
        let ids: Vec<MatchId> = matches
            .into_iter()
            .filter_map(MatchId::from_stored)
            .collect();
        self.with_composites_owned(
            ids.iter()
                .filter_map(MatchId::as_composite)
                .enumerate()
                .map(|(i, parts)| (first + i as u32, parts)),
        )
    }

    /// Adds composite matches, each with its index in the job's list of matches.
    pub fn with_composites_owned<'a>(
        mut self,
        matches: impl IntoIterator<Item = (u32, &'a [Part])>,
    ) -> Self {
        let mut groups: HashMap<Vec<String>, Vec<(Vec<Scalar>, Owners)>> = HashMap::new();
        for (owner, parts) in matches {
            let mut pairs: Vec<(String, Scalar)> = parts
                .iter()
                .map(|p| (p.column.to_ascii_lowercase(), p.value.clone()))
                .collect();
            if pairs.is_empty() {
                continue;
            }
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            let (columns, values): (Vec<String>, Vec<Scalar>) = pairs.into_iter().unzip();
            let queued = groups.entry(columns).or_default();
            match queued.iter_mut().find(|(v, _)| *v == values) {
                Some((_, owners)) => owners.push(owner),
                None => queued.push((values, vec![owner])),
            }
        }
        self.composites = groups
            .into_iter()
            .map(|(columns, queued)| {
                let mut group = CompositeGroup {
                    columns,
                    queued,
                    tuples: Tuples::new(),
                };
                group.tuples = group.cast(&vec![None; group.columns.len()]);
                group
            })
            .collect();
        self.composites.sort_by(|a, b| a.columns.cmp(&b.columns));
        self.recast_composites();
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

    /// Builds the set from ids given as JSON strings and numbers (tests, benchmarks, id
    /// files); values of another kind are ignored but keep their index.
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a Value>) -> Self {
        let ids: Vec<Option<Scalar>> = values.into_iter().map(Scalar::from_json).collect();
        Self::from_indexed(
            ids.iter()
                .enumerate()
                .filter_map(|(i, v)| Some((i, v.as_ref()?))),
        )
    }

    /// Builds the set from the job's simple match ids, each owning its index.
    pub fn from_ids<'a>(ids: impl IntoIterator<Item = &'a Scalar>) -> Self {
        Self::from_indexed(ids.into_iter().enumerate())
    }

    fn from_indexed<'a>(ids: impl IntoIterator<Item = (usize, &'a Scalar)>) -> Self {
        let mut set = MatchSet::default();
        for (i, v) in ids {
            set.given += 1;
            set.add(v, i as u32);
        }
        set.sorted_strings = set.strings.iter().cloned().collect();
        set.sorted_strings.sort();
        set.sorted_ints = set.ints.iter().copied().collect();
        set.sorted_ints.sort_unstable();
        set.big_uints.sort_unstable();
        set.big_uints.dedup();
        set.doubles.sort_by(f64::total_cmp);
        set.doubles.dedup();
        set.floats.sort_by(f32::total_cmp);
        set.floats.dedup();
        set
    }

    /// Adds one id, cast to every kind of column it can be compared with.
    fn add(&mut self, v: &Scalar, owner: u32) {
        let number = match v {
            Scalar::Text(s) => parse_number(s).map(|(e, _)| e),
            Scalar::Number(n) => parse_number(&n.to_string()).map(|(e, _)| e),
        };
        if let Some(Key::Str(s)) = v.cast(Some(KeyKind::Text)) {
            self.strings.insert(s.clone());
            self.own(Class::Text, Key::Str(s), owner);
        }
        if let Some(exact) = number {
            self.own(Class::Number, Key::Num(exact), owner);
        }
        if let Some(Key::Num(exact)) = v.cast(Some(KeyKind::Int)) {
            match exact.to_i64() {
                Some(i) => {
                    self.ints.insert(i);
                }
                None => self.big_uints.extend(exact.to_u64()),
            }
            self.own(Class::Int, Key::Num(exact), owner);
        }
        if let Some(exact) = v.decimal_exact() {
            self.decimals.push(exact.clone());
            self.own(Class::Decimal, Key::Num(exact), owner);
        }
        if let Some(key @ Key::F64(bits)) = v.cast(Some(KeyKind::Double)) {
            self.doubles.push(f64::from_bits(bits));
            self.own(Class::Double, key, owner);
        }
        if let Some(key @ Key::F32(bits)) = v.cast(Some(KeyKind::Float)) {
            self.floats.push(f32::from_bits(bits));
            self.own(Class::Float, key, owner);
        }
    }

    fn own(&mut self, class: Class, key: Key, owner: u32) {
        let owners = self.owners[class as usize].entry(key).or_default();
        if owners.last() != Some(&owner) {
            owners.push(owner);
        }
    }

    /// Whether a row value (its key, in a column of `kind`; None: a JSON Lines column of
    /// no declared type) equals a simple id.
    pub fn contains_key(&self, key: &Key, kind: Option<KeyKind>) -> bool {
        !self.owners_of(key, kind).is_empty()
    }

    /// Which simple ids a row value (its key, in a column of `kind`) is.
    pub fn owners_of(&self, key: &Key, kind: Option<KeyKind>) -> &[u32] {
        self.owners[Class::of(kind, key) as usize]
            .get(key)
            .map_or(&[], Vec::as_slice)
    }

    /// Declares the types of JSON columns (dotted path → Glue type text): a line's value
    /// is read as its column's type before it is compared.
    pub fn with_declared<'a>(
        mut self,
        types: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        self.declared = types
            .into_iter()
            .filter_map(|(path, ty)| Some((path.to_ascii_lowercase(), KeyKind::of_hive(ty)?)))
            .collect();
        self.recast_composites();
        self
    }

    /// Casts the composite tuples to their columns' declared kinds.
    fn recast_composites(&mut self) {
        for group in &mut self.composites {
            let kinds: Vec<Option<KeyKind>> = group
                .columns
                .iter()
                .map(|c| self.declared.get(c).copied())
                .collect();
            group.tuples = group.cast(&kinds);
        }
    }

    /// Reads JSON lines as the table's SerDe does (every key it may read a column from).
    pub fn with_serde(mut self, serde: Option<JsonSerde>) -> Self {
        self.serde = serde;
        self
    }

    /// The table's JSON SerDe rules, when known.
    pub fn serde(&self) -> Option<&JsonSerde> {
        self.serde.as_ref()
    }

    /// The declared kind of a JSON column, if any.
    pub fn declared(&self, path: &str) -> Option<KeyKind> {
        if self.declared.is_empty() {
            return None;
        }
        self.declared.get(&path.to_ascii_lowercase()).copied()
    }

    /// Parses one id per line: integers and decimals as numbers, anything else as a string.
    pub fn from_lines(text: &str) -> Self {
        let values: Vec<Value> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| match serde_json::from_str::<serde_json::Number>(l) {
                // A number a `Number` would round stays the text it is.
                Ok(n) if kept_exactly(l) => Value::Number(n),
                _ => Value::String(l.to_owned()),
            })
            .collect();
        Self::from_values(&values)
    }

    pub fn is_empty(&self) -> bool {
        self.given == 0 && self.composites.is_empty()
    }
    pub fn len(&self) -> usize {
        self.given
            + self
                .composites
                .iter()
                .map(|g| g.queued.iter().map(|(_, o)| o.len()).sum::<usize>())
                .sum::<usize>()
    }
    pub fn contains_str(&self, s: &str) -> bool {
        self.strings.contains(s)
    }
    pub fn contains_int(&self, i: i64) -> bool {
        self.ints.contains(&i)
    }
    /// Whether an unsigned 64-bit value is an id.
    pub fn contains_uint(&self, u: u64) -> bool {
        i64::try_from(u).map_or_else(
            |_| self.big_uints.binary_search(&u).is_ok(),
            |i| self.ints.contains(&i),
        )
    }
    /// Whether a `double` value is an id cast to `double`.
    pub fn contains_f64(&self, f: f64) -> bool {
        f.is_finite()
            && self
                .doubles
                .binary_search_by(|x| x.total_cmp(&(f + 0.0)))
                .is_ok()
    }
    /// Whether a `float` value is an id cast to `float`.
    pub fn contains_f32(&self, f: f32) -> bool {
        f.is_finite()
            && self
                .floats
                .binary_search_by(|x| x.total_cmp(&(f + 0.0)))
                .is_ok()
    }
    pub fn has_strings(&self) -> bool {
        !self.strings.is_empty()
    }
    /// Whether some id is a number or a numeric text (it may match numeric columns).
    pub fn has_numbers(&self) -> bool {
        !self.owners[Class::Number as usize].is_empty()
    }
    pub fn strings(&self) -> &[String] {
        &self.sorted_strings
    }
    pub fn ints(&self) -> &[i64] {
        &self.sorted_ints
    }
    /// The non-negative integral ids as unsigned values, ascending.
    pub fn uints(&self) -> impl Iterator<Item = u64> + '_ {
        let start = self.sorted_ints.partition_point(|i| *i < 0);
        self.sorted_ints[start..]
            .iter()
            .map(|i| *i as u64)
            .chain(self.big_uints.iter().copied())
    }
    /// The ids a decimal column of `scale` can hold, as unscaled values: those exact at
    /// that scale, read from their text, never through a float.
    pub fn decimals(&self, scale: i8) -> HashSet<i128> {
        self.decimals
            .iter()
            .filter_map(|e| e.unscaled(scale))
            .collect()
    }
    /// Whether some decimal id at `scale` has its unscaled value in [min, max].
    pub fn any_decimal_in(&self, scale: i8, min: i128, max: i128) -> bool {
        self.decimals
            .iter()
            .filter_map(|e| e.unscaled(scale))
            .any(|d| (min..=max).contains(&d))
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
    /// Whether some id cast to `double` lies in [min, max] (signed zeros are equal).
    pub fn any_f64_in(&self, min: f64, max: f64) -> bool {
        let start = self.doubles.partition_point(|f| *f < min);
        self.doubles.get(start).is_some_and(|f| *f <= max)
    }
    /// Whether some id cast to `float` lies in [min, max] (signed zeros are equal).
    pub fn any_f32_in(&self, min: f32, max: f32) -> bool {
        let start = self.floats.partition_point(|f| *f < min);
        self.floats.get(start).is_some_and(|f| *f <= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn num(text: &str) -> Key {
        cast_number(text, None).unwrap()
    }

    #[test]
    fn ids_are_cast_to_each_columns_type_as_s3_find_and_forget_casts_them() {
        let set = MatchSet::from_values(&[
            json!("42"),
            json!(7),
            json!(2.5),
            json!("0013"),
            json!("abc"),
            json!("1.50"),
        ]);
        assert_eq!(set.len(), 6);
        // A numeric text is its number; a number its JSON text.
        assert!(set.contains_str("42") && set.contains_int(42));
        assert!(set.contains_int(7) && set.contains_str("7"));
        assert!(set.contains_str("2.5") && set.contains_f64(2.5) && set.contains_f64(7.0));
        assert!(set.contains_int(13) && set.contains_str("0013") && !set.contains_str("13"));
        assert!(!set.contains_int(2) && !set.contains_int(1));
        assert!(set.contains_f64(1.5) && set.decimals(2).contains(&150));
        assert!(!set.contains_str("1.5"), "the text \"1.50\" is not \"1.5\"");
    }

    #[test]
    fn a_text_meets_an_integer_column_only_when_cast_as_bigint_succeeds() {
        let set = MatchSet::from_values(&[json!("4.0"), json!("1e3"), json!("0042")]);
        assert!(!set.contains_int(4) && !set.contains_int(1000));
        assert!(set.contains_int(42));
        let int = Some(KeyKind::Int);
        assert!(!set.contains_key(&num("4"), int) && !set.contains_key(&num("1000"), int));
        // A double column admits all three, a decimal column the plain texts.
        assert!(set.contains_f64(4.0) && set.contains_f64(1000.0));
        assert!(set.decimals(1).contains(&40) && !set.decimals(0).contains(&1000));
        // A column of no declared type (JSON Lines) compares numbers by value.
        assert!(set.contains_key(&num("4"), None) && set.contains_key(&num("1e3"), None));
    }

    #[test]
    fn numbers_beyond_sixty_four_bits_and_long_decimals_compare_exactly() {
        let set = MatchSet::from_values(&[
            json!(12345678901234567890u64),
            json!("1234567890123456789012345"),
            json!("0.1000000000000000000000001"),
        ]);
        for kind in [None, Some(KeyKind::Int)] {
            assert!(set.contains_key(&num("12345678901234567890"), kind));
            assert!(!set.contains_key(&num("12345678901234567891"), kind));
        }
        assert!(
            set.contains_uint(12345678901234567890) && !set.contains_uint(12345678901234567891)
        );
        assert!(set.decimals(0).contains(&1_234_567_890_123_456_789_012_345));
        assert!(!set.decimals(0).contains(&1_234_567_890_123_456_789_012_346));
        assert!(
            set.decimals(25)
                .contains(&1_000_000_000_000_000_000_000_001)
        );
        assert!(
            !set.decimals(25)
                .contains(&1_000_000_000_000_000_000_000_000)
        );
        let d = Some(KeyKind::Decimal(0));
        assert!(set.contains_key(&num("1234567890123456789012345"), d));
        assert!(!set.contains_key(&num("1234567890123456789012346"), d));
        // The text as written: never through a float, so no neighbour equals it.
        assert!(!set.contains_key(&num("0.1"), None));
    }

    #[test]
    fn float_columns_compare_the_id_cast_to_float_and_double_columns_to_double() {
        let set = MatchSet::from_values(&[json!(0.1), json!("-0")]);
        assert!(set.contains_f32(0.1f32) && set.contains_f64(0.1f64));
        assert!(!set.contains_f64(f64::from(0.1f32)));
        assert!(set.contains_f32(-0.0) && set.contains_f64(0.0));
        assert!(!set.contains_f64(f64::NAN));
        assert!(set.contains_key(&Key::f32(0.1).unwrap(), Some(KeyKind::Float)));
        assert!(set.any_f32_in(0.1, 0.1) && !set.any_f32_in(0.11, 1.0));
        assert!(set.any_f64_in(-0.0, -0.0), "signed zeros are one value");
    }

    #[test]
    fn each_row_value_is_owned_by_the_ids_of_its_columns_kind_only() {
        let set = MatchSet::from_values(&[json!(4), json!("4.0"), json!("4")]);
        let four = num("4");
        assert_eq!(set.owners_of(&four, Some(KeyKind::Int)), [0, 2]);
        assert_eq!(set.owners_of(&four, Some(KeyKind::Decimal(1))), [0, 1, 2]);
        assert_eq!(set.owners_of(&Key::Str("4".into()), None), [0, 2]);
        assert_eq!(
            set.owners_of(&Key::Str("4.0".into()), Some(KeyKind::Text)),
            [1]
        );
    }

    #[test]
    fn lines_parse_numbers_as_numbers() {
        let set = MatchSet::from_lines("jane@example.com\n42\n\n 3.5 \n12345678901234567890123\n");
        assert!(
            set.contains_str("jane@example.com") && set.contains_int(42) && set.contains_f64(3.5)
        );
        assert_eq!(set.len(), 4);
        assert!(
            set.contains_str("12345678901234567890123"),
            "kept as its text"
        );
        assert!(set.decimals(0).contains(&12_345_678_901_234_567_890_123));
    }

    #[test]
    fn decimals_are_matched_exactly_at_the_column_scale() {
        let set = MatchSet::from_values(&[json!(12.34), json!(5), json!(0.3)]);
        let at2 = set.decimals(2);
        assert!(at2.contains(&1234) && at2.contains(&500) && at2.contains(&30));
        assert!(!set.decimals(1).contains(&123));
        let set = MatchSet::from_values(&[json!(18446744073709551615u64)]);
        assert!(set.decimals(0).contains(&18446744073709551615));
        assert!(set.contains_uint(u64::MAX) && !set.contains_int(-1));
    }

    #[test]
    fn composite_tuples_are_cast_to_their_declared_kinds() {
        let set = MatchSet::default()
            .with_composites(&[
                json!([{"column": "id", "value": "4.0"}, {"column": "code", "value": 7}]),
                json!([{"column": "id", "value": "0042"}, {"column": "code", "value": 7}]),
            ])
            .with_declared([("id", "int"), ("code", "string")]);
        let tuples = &set.composites()[0].tuples;
        assert_eq!(tuples.len(), 1, "\"4.0\" is no int");
        assert!(tuples.contains_key(&vec![Key::Str("7".into()), num("42")]));
        assert_eq!(set.len(), 2);
    }

    proptest! {
        #[test]
        fn range_tests_agree_with_a_linear_scan(ids in prop::collection::vec(-1000i64..1000, 0..50), a in -1100i64..1100, b in -1100i64..1100) {
            let (min, max) = (a.min(b), a.max(b));
            let values: Vec<Value> = ids.iter().map(|i| json!(i)).collect();
            let strings: Vec<Value> = ids.iter().map(|i| json!(format!("{i:05}"))).collect();
            let set = MatchSet::from_values(values.iter().chain(strings.iter()));
            prop_assert_eq!(set.any_int_in(min, max), ids.iter().any(|i| (min..=max).contains(i)));
            prop_assert_eq!(set.any_f64_in(min as f64, max as f64), ids.iter().any(|i| (min..=max).contains(i)));
            prop_assert_eq!(set.any_f32_in(min as f32, max as f32), ids.iter().any(|i| (min..=max).contains(i)));
            let (smin, smax) = (format!("{min:05}"), format!("{max:05}"));
            // Each id is also its number's text.
            let linear = ids.iter().flat_map(|i| [format!("{i:05}"), i.to_string()]).any(|s| s.as_bytes() >= smin.as_bytes() && s.as_bytes() <= smax.as_bytes());
            prop_assert_eq!(set.any_string_in(smin.as_bytes(), smax.as_bytes()), linear);
        }

        #[test]
        fn wide_integers_match_only_themselves(a in any::<u128>(), b in any::<u128>()) {
            let set = MatchSet::from_values(&[json!(a.to_string())]);
            let wanted = i128::try_from(a).ok();
            prop_assert_eq!(set.decimals(0).iter().next().copied(), wanted);
            prop_assert_eq!(set.contains_key(&num(&b.to_string()), None), a == b);
        }
    }

    #[test]
    fn many_combinations_scan_the_tuples_and_find_what_the_odometer_finds() {
        let key = |s: &str| Key::Str(s.to_owned());
        let tuple = |parts: &[&str]| parts.iter().map(|p| key(p)).collect::<Vec<_>>();
        let mut tuples = Tuples::new();
        tuples.insert(tuple(&["a", "b", "a", "b", "a", "b", "a"]), vec![3]);
        tuples.insert(tuple(&["a", "a", "a", "a", "a", "a", "c"]), vec![4]);
        // Two readings per column: 128 combinations, beyond the odometer's 64.
        let wide: Vec<Vec<Key>> = (0..7).map(|_| vec![key("a"), key("b")]).collect();
        let (mut scanned, mut tried) = (Vec::new(), Vec::new());
        tuple_owners(&wide, &tuples, &mut scanned);
        assert_eq!(scanned, [3]);
        let narrow: Vec<Vec<Key>> = tuple(&["a", "b", "a", "b", "a", "b", "a"])
            .into_iter()
            .map(|k| vec![k, key("z")])
            .take(6)
            .chain(std::iter::once(vec![key("a")]))
            .collect();
        tuple_owners(&narrow, &tuples, &mut tried);
        assert_eq!(tried, [3]);
    }
}
