//! A set of simple match ids, indexed for row checks (hash sets) and for row-group pruning
//! (sorted vectors, so a [min, max] range test is two binary searches whatever the size).
//!
//! Comparison follows Athena after S3 Find and Forget's casts: an id is compared with a
//! column by the column's type. A string id that reads as an integer / decimal / floating
//! point number also matches numeric columns by value (`"0042"` is the int 42; decimals
//! exactly at the column's scale); a numeric id also matches string columns by its JSON
//! text (`42` is `"42"`, `7.5` is `"7.5"`). For JSON Lines the declared (Glue) type of a
//! column says how a line's value is read, as the Hive / OpenX JSON SerDe reads it.

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

/// The kind of value a column holds, as far as comparing keys goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Text,
    Int,
    /// Decimal of this scale.
    Decimal(i8),
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
            "float" | "double" | "real" => KeyKind::Float,
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

/// A queued key cast to a column's kind, as S3 Find and Forget casts a match id to the
/// column's type (None: it cannot be, so it matches nothing there).
pub fn cast_key(key: &Key, kind: KeyKind) -> Option<Key> {
    match (kind, key) {
        (KeyKind::Text, Key::Str(_)) => Some(key.clone()),
        (KeyKind::Text, Key::Int(i)) => Some(Key::Str(i.to_string())),
        (KeyKind::Text, Key::UInt(u)) => Some(Key::Str(u.to_string())),
        (KeyKind::Text, Key::Float(bits)) => Some(Key::Str(f64::from_bits(*bits).to_string())),
        (_, Key::Int(_) | Key::UInt(_) | Key::Float(_)) => Some(key.clone()),
        (KeyKind::Int, Key::Str(s)) => integer_text(s).and_then(|_| {
            s.parse::<i64>()
                .map(Key::Int)
                .or_else(|_| s.parse::<u64>().map(Key::UInt))
                .ok()
        }),
        (KeyKind::Float, Key::Str(s)) => {
            numeric_text(s).and_then(|n| n.as_f64()).map(Key::from_f64)
        }
        (KeyKind::Decimal(scale), Key::Str(s)) => {
            unscaled(s, scale.max(0)).and_then(|u| decimal_key(u, scale))
        }
    }
}

/// The composite key of a decimal: exactly the key of the queued number that equals it
/// (an integer, or the f64 whose shortest text is this decimal), or none when no queued
/// number can equal it exactly.
pub fn decimal_key(value: i128, scale: i8) -> Option<Key> {
    let text = decimal_text(value, scale);
    let whole = text
        .strip_suffix(".0")
        .or((scale <= 0).then_some(text.as_str()));
    if let Some(Ok(i)) = whole.map(str::parse::<i64>) {
        return Some(Key::Int(i));
    }
    let f: f64 = text.parse().ok()?;
    (unscaled(&f.to_string(), scale.max(0)) == Some(value) || scale < 0).then(|| Key::from_f64(f))
}

/// A decimal's plain text (`-12.34`), without trailing fractional zeros beyond one.
pub fn decimal_text(unscaled: i128, scale: i8) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale <= 0 {
        return format!(
            "{sign}{digits}{}",
            "0".repeat(usize::from(scale.unsigned_abs()))
        );
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    let fraction = fraction.trim_end_matches('0');
    format!(
        "{sign}{whole}.{}",
        if fraction.is_empty() { "0" } else { fraction }
    )
}

/// Whether a queued value (string or number) can be cast to a column of this Glue type,
/// as S3 Find and Forget casts a match id: any value to a string type; an integer text or
/// integral number to an integer type; a number or numeric text to a floating type; one
/// exact at the scale to a decimal. Types ids are not cast to (dates, booleans, …) accept
/// any value: the comparison decides.
pub fn castable(value: &Value, hive_type: &str) -> bool {
    let Some(kind) = KeyKind::of_hive(hive_type) else {
        return true;
    };
    let Some(key) = Key::from_json(value) else {
        return false;
    };
    match (kind, &key) {
        (KeyKind::Int, Key::Float(_)) => false,
        (KeyKind::Decimal(scale), Key::Float(_)) => value
            .as_number()
            .is_some_and(|n| unscaled(&n.to_string(), scale.max(0)).is_some()),
        (KeyKind::Decimal(_), Key::Int(_) | Key::UInt(_)) => true,
        _ => cast_key(&key, kind).is_some(),
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

/// Whether `s` is an integer text (`-12`, `0042`).
fn integer_text(s: &str) -> Option<()> {
    let body = s.strip_prefix('-').unwrap_or(s);
    (!body.is_empty() && body.bytes().all(|b| b.is_ascii_digit())).then_some(())
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
    pub tuples: Tuples,
}

impl CompositeGroup {
    /// The tuples with each part cast to its column's kind (None: as queued); a tuple
    /// with a part that cannot be cast is dropped (it matches no row).
    pub fn cast(&self, kinds: &[Option<KeyKind>]) -> Tuples {
        let mut out = Tuples::new();
        for (t, owners) in &self.tuples {
            let cast: Option<Vec<Key>> = t
                .iter()
                .zip(kinds)
                .map(|(k, kind)| match kind {
                    Some(kind) => cast_key(k, *kind),
                    None => Some(k.clone()),
                })
                .collect();
            if let Some(cast) = cast {
                out.entry(cast).or_default().extend(owners);
            }
        }
        out
    }
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
    /// Every id that is a plain decimal text (numbers by their JSON text), for exact
    /// decimal comparison.
    decimal_texts: Vec<String>,
    /// The ids as given (before their casts), for counting.
    given: usize,
    /// Declared kinds of JSON columns (lowercased paths): how a line's value is read.
    declared: HashMap<String, KeyKind>,
    composites: Vec<CompositeGroup>,
    /// Never skip row groups (benchmarks measure what pruning saves).
    no_pruning: bool,
    /// Which simple ids each key a row value can have is (for the per-match account).
    owners: HashMap<Key, Owners>,
}

impl MatchSet {
    /// Adds composite matches (`[{"column":..,"value":..}]`, as queued); malformed ones are
    /// ignored (the queue validated them).
    pub fn with_composites<'a>(self, matches: impl IntoIterator<Item = &'a Value>) -> Self {
        let first = self.given as u32;
        self.with_composites_owned(
            matches
                .into_iter()
                .enumerate()
                .map(|(i, m)| (first + i as u32, m)),
        )
    }

    /// Adds composite matches, each with its index in the job's list of matches.
    pub fn with_composites_owned<'a>(
        mut self,
        matches: impl IntoIterator<Item = (u32, &'a Value)>,
    ) -> Self {
        let mut groups: HashMap<Vec<String>, HashMap<Vec<Key>, Owners>> = HashMap::new();
        for (owner, m) in matches {
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
            groups
                .entry(columns)
                .or_default()
                .entry(keys)
                .or_default()
                .push(owner);
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
        for (i, v) in values.into_iter().enumerate() {
            let owner = i as u32;
            match v {
                Value::String(s) => {
                    set.given += 1;
                    set.strings.insert(s.clone());
                    set.own(Key::Str(s.clone()), owner);
                    // Cast to the numeric types it reads as.
                    if let Some(n) = numeric_text(s) {
                        set.add_number(&n, owner);
                    }
                }
                Value::Number(n) => {
                    set.given += 1;
                    set.add_number(n, owner);
                    // Cast to text: its JSON text.
                    set.strings.insert(n.to_string());
                    set.own(Key::Str(n.to_string()), owner);
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
        set.decimal_texts.sort();
        set.decimal_texts.dedup();
        set
    }

    fn own(&mut self, key: Key, owner: u32) {
        let owners = self.owners.entry(key).or_default();
        if owners.last() != Some(&owner) {
            owners.push(owner);
        }
    }

    /// Which simple ids a row value's key is.
    pub fn owners_of(&self, key: &Key) -> &[u32] {
        self.owners.get(key).map_or(&[], Vec::as_slice)
    }

    fn add_number(&mut self, n: &serde_json::Number, owner: u32) {
        if let Some(key) = Key::from_json(&Value::Number(n.clone())) {
            self.own(key, owner);
        }
        if let Some(i) = n.as_i64() {
            self.ints.insert(i);
        } else if let Some(u) = n.as_u64() {
            self.big_uints.push(u);
        }
        if let Some(f) = n.as_f64() {
            self.floats.push(f);
            // An integral float id also matches integer columns.
            if f.fract() == 0.0 && f.abs() < 9.0e15 && n.as_i64().is_none() {
                self.ints.insert(f as i64);
            }
        }
        self.decimal_texts.push(n.to_string());
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
        for group in &mut self.composites {
            let kinds: Vec<Option<KeyKind>> = group
                .columns
                .iter()
                .map(|c| self.declared.get(c).copied())
                .collect();
            group.tuples = group.cast(&kinds);
        }
        self
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
        self.given
            + self
                .composites
                .iter()
                .map(|g| g.tuples.values().map(Vec::len).sum::<usize>())
                .sum::<usize>()
    }
    /// Whether a JSON line's value equals a simple id, the value read as `kind` (the
    /// column's declared type) when given: a string in an integer column is its integer,
    /// a number in a string column its text.
    pub fn contains_json_as(&self, v: &Value, kind: Option<KeyKind>) -> bool {
        match (kind, v) {
            (Some(kind), Value::String(s)) if kind != KeyKind::Text => {
                match cast_key(&Key::Str(s.clone()), kind) {
                    Some(Key::Int(i)) => self.contains_int(i),
                    Some(Key::UInt(u)) => self.contains_uint(u),
                    Some(Key::Float(_)) | Some(Key::Str(_)) | None => numeric_text(s)
                        .and_then(|n| n.as_f64())
                        .is_some_and(|f| self.contains_float(f)),
                }
            }
            (Some(KeyKind::Text), Value::Number(n)) => self.contains_str(&n.to_string()),
            _ => self.contains_json(v),
        }
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
            .decimal_texts
            .iter()
            .filter_map(|t| unscaled(t, scale))
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
        assert!(set.contains_str("2.5") && set.contains_float(2.5) && set.contains_float(7.0));
        assert!(set.contains_int(13) && set.contains_str("0013") && !set.contains_str("13"));
        assert!(!set.contains_int(2) && !set.contains_int(1));
        assert!(set.contains_float(1.5) && set.decimals(2).contains(&150));
        assert!(!set.contains_str("1.5"), "the text \"1.50\" is not \"1.5\"");
        assert_eq!(numeric_text("abc"), None);
        assert_eq!(numeric_text("-007").unwrap().as_i64(), Some(-7));
        assert_eq!(numeric_text("1e3").unwrap().as_f64(), Some(1000.0));
        assert_eq!(numeric_text(" 1"), None);
        assert_eq!(numeric_text("NaN"), None);
    }

    #[test]
    fn queued_values_are_castable_as_s3_find_and_forget_casts_them() {
        assert!(castable(&json!("abc"), "string") && castable(&json!(7.5), "varchar(10)"));
        assert!(castable(&json!("0042"), "bigint") && castable(&json!(42), "int"));
        assert!(!castable(&json!("abc"), "int") && !castable(&json!(4.5), "int"));
        assert!(!castable(&json!("4.0"), "int"), "CAST('4.0' AS int) fails");
        assert!(
            castable(&json!("123.450"), "decimal(6,3)") && castable(&json!(12.5), "decimal(4,2)")
        );
        assert!(
            !castable(&json!("123.4501"), "decimal(6,3)")
                && !castable(&json!(1.234), "decimal(4,2)")
        );
        assert!(castable(&json!("1e3"), "double") && !castable(&json!("x"), "double"));
        assert!(
            castable(&json!("2024-01-01"), "date"),
            "types ids are not cast to accept"
        );
    }

    #[test]
    fn keys_cast_to_a_columns_kind_exactly_or_not_at_all() {
        assert_eq!(
            cast_key(&Key::Str("0042".into()), KeyKind::Int),
            Some(Key::Int(42))
        );
        assert_eq!(cast_key(&Key::Str("4.2".into()), KeyKind::Int), None);
        assert_eq!(
            cast_key(&Key::Int(42), KeyKind::Text),
            Some(Key::Str("42".into()))
        );
        assert_eq!(
            cast_key(&Key::Str("123.450".into()), KeyKind::Decimal(3)),
            decimal_key(123_450, 3)
        );
        assert_eq!(
            cast_key(&Key::Str("123.4501".into()), KeyKind::Decimal(3)),
            None
        );
        assert_eq!(
            cast_key(&Key::Str("12.000".into()), KeyKind::Decimal(2)),
            Some(Key::Int(12))
        );
        assert_eq!(
            cast_key(&Key::Str("2.5".into()), KeyKind::Float),
            Some(Key::from_f64(2.5))
        );
        assert_eq!(KeyKind::of_hive("decimal(6,3)"), Some(KeyKind::Decimal(3)));
        assert_eq!(KeyKind::of_hive("BIGINT"), Some(KeyKind::Int));
        assert_eq!(KeyKind::of_hive("array<int>"), None);
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
            // Each id is also its number's text.
            let linear = ids.iter().flat_map(|i| [format!("{i:05}"), i.to_string()]).any(|s| s.as_bytes() >= smin.as_bytes() && s.as_bytes() <= smax.as_bytes());
            prop_assert_eq!(set.any_string_in(smin.as_bytes(), smax.as_bytes()), linear);
        }
    }
}
