//! Table partitions, and which of them can hold a queued subject's rows.
//!
//! Partition values are text (in the catalog and in `key=value` paths); a match value is
//! compared with one by the partition key's declared type, as Athena compares a typed
//! partition column: `month=01` equals the int `1` when `month` is an `int`. Pruning only
//! ever drops a partition when the comparison is certain to fail.

use std::collections::HashMap;

use super::hive_type::HiveType;
use super::match_id::{Part, Scalar};
use crate::domain::key::{numeric_text, unscaled};

/// One partition: its key values (in the table's partition-key order), location, and the
/// SerDe its storage descriptor names (Hive reads each partition through its own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partition {
    pub values: Vec<String>,
    pub location: String,
    /// The partition's SerDe class and parameters; None when its storage descriptor
    /// names no SerDe (it is read as the table is).
    pub serde: Option<(Option<String>, std::collections::BTreeMap<String, String>)>,
}

impl Partition {
    /// Why this partition cannot be read with the table's SerDe (`library`, `parameters`):
    /// its storage descriptor names another SerDe class or other parameters (a
    /// delimiter, a JSON key mapping). Hive and Athena read a partition through its own
    /// storage descriptor; Lethe reads every partition with the table's settings, so such
    /// a partition is refused, never misread (a wrong delimiter would match no row).
    /// None when it names no SerDe (it is read as the table is) or the table's own.
    pub fn serde_differs(
        &self,
        library: Option<&str>,
        parameters: &std::collections::BTreeMap<String, String>,
    ) -> Option<String> {
        let (own_library, own_parameters) = self.serde.as_ref()?;
        let name = |l: Option<&str>| l.map_or("none".to_owned(), |l| l.trim().to_owned());
        let what = if name(own_library.as_deref()) != name(library) {
            format!(
                "SerDe {} where the table has {}",
                name(own_library.as_deref()),
                name(library)
            )
        } else if own_parameters != parameters {
            let keys: std::collections::BTreeSet<&String> = own_parameters
                .iter()
                .filter(|(k, v)| parameters.get(*k) != Some(*v))
                .map(|(k, _)| k)
                .chain(
                    parameters
                        .keys()
                        .filter(|k| !own_parameters.contains_key(*k)),
                )
                .collect();
            let keys: Vec<&str> = keys.into_iter().map(String::as_str).collect();
            format!(
                "SerDe parameters that differ from the table's ({})",
                keys.join(", ")
            )
        } else {
            return None;
        };
        Some(format!(
            "partition ({}) is stored with {what}: Athena reads it through its own storage descriptor, Lethe reads every partition as the table, so it is refused rather than misread; align the partition's SerDe with the table's",
            self.values.join(", ")
        ))
    }
}

/// A partition key and its declared type (None for `path` tables: untyped).
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionKey {
    pub name: String,
    pub ty: Option<HiveType>,
}

impl PartitionKey {
    /// Keys from names and type texts (as a task carries them; an empty or unparseable
    /// text is untyped).
    pub fn from_texts(names: &[String], types: &[String]) -> Vec<Self> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| PartitionKey {
                name: name.clone(),
                ty: types
                    .get(i)
                    .filter(|t| !t.is_empty())
                    .and_then(|t| HiveType::parse(t).ok()),
            })
            .collect()
    }

    /// Untyped keys.
    pub fn untyped(names: &[String]) -> Vec<Self> {
        Self::from_texts(names, &[])
    }
}

/// The value Hive writes for a null partition value.
const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// How a partition's stored value compares with a match value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Equal,
    Different,
    /// One side cannot be read as the key's type: neither prune nor decide by the path.
    Unknown,
}

/// Compares a stored partition value with a match value by the key's type: integers,
/// decimals (exactly, at the type's scale), floating point and booleans by value; strings
/// by text (a number by its JSON text); other types equal when the texts are; an untyped
/// key by the match value's JSON type (a number compares by value with a numeric text).
pub fn compare(ty: Option<&HiveType>, stored: &str, wanted: &Scalar) -> Comparison {
    use Comparison::*;
    if stored == HIVE_NULL {
        return Different;
    }
    let text = match wanted {
        Scalar::Text(s) => s.clone(),
        Scalar::Number(n) => n.to_string(),
    };
    let by = |a: Option<i128>, b: Option<i128>| match (a, b) {
        (Some(a), Some(b)) if a == b => Equal,
        (Some(_), Some(_)) => Different,
        _ => Unknown,
    };
    let name = match ty {
        Some(HiveType::Primitive(name)) => name.as_str(),
        Some(_) => return Unknown,
        None if matches!(wanted, Scalar::Number(_)) => {
            return match by(unscaled(stored, 9), unscaled(&text, 9)) {
                Unknown if stored == text => Equal,
                // A number that cannot be compared exactly (`1e3`, more than 9 decimals):
                // not certain. Only text that is no number at all certainly differs.
                Unknown if numeric_text(stored).is_some() => Unknown,
                Unknown => Different,
                other => other,
            };
        }
        None => return if stored == text { Equal } else { Different },
    };
    let base = name.split('(').next().unwrap_or(name).trim();
    match base {
        "string" | "varchar" | "char" => {
            if stored == text {
                Equal
            } else {
                Different
            }
        }
        "tinyint" | "smallint" | "int" | "integer" | "bigint" => {
            by(unscaled(stored.trim(), 0), unscaled(text.trim(), 0))
        }
        "decimal" => {
            let scale = decimal_scale(name).unwrap_or(0);
            by(unscaled(stored.trim(), scale), unscaled(text.trim(), scale))
        }
        // A 32-bit key compares both sides cast to f32, as Athena casts to `real`: in f64
        // the stored `0.10000000149011612` and the id 0.1 would differ, and the partition
        // would be pruned although it holds the id.
        "float" | "real" => by_value(stored.trim().parse::<f32>(), text.trim().parse::<f32>()),
        "double" => by_value(stored.trim().parse::<f64>(), text.trim().parse::<f64>()),
        "boolean" => match (bool_text(stored), bool_text(&text)) {
            (Some(a), Some(b)) if a == b => Equal,
            (Some(_), Some(_)) => Different,
            _ => Unknown,
        },
        _ if stored == text => Equal,
        _ => Unknown,
    }
}

/// Equal, different, or unknown when either side is no number of the type.
fn by_value<T: PartialEq, E>(a: Result<T, E>, b: Result<T, E>) -> Comparison {
    match (a, b) {
        (Ok(a), Ok(b)) if a == b => Comparison::Equal,
        (Ok(_), Ok(_)) => Comparison::Different,
        _ => Comparison::Unknown,
    }
}

/// The scale of `decimal(p,s)` (0 when absent, as Hive's `decimal` is `decimal(10,0)`).
fn decimal_scale(name: &str) -> Option<i8> {
    let params = name.split_once('(')?.1.trim_end_matches(')');
    params.split(',').nth(1)?.trim().parse().ok()
}

fn bool_text(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Reads `key=value` segments of an object key (relative to the table location) for the
/// table's partition keys, in order; None when the key does not carry all of them.
/// Values are percent-decoded as Hive writes them (`%3A` → `:`).
pub fn values_from_path(relative_key: &str, partition_keys: &[String]) -> Option<Vec<String>> {
    let segments: HashMap<String, String> = relative_key
        .split('/')
        .filter_map(|s| s.split_once('='))
        .map(|(k, v)| (k.to_ascii_lowercase(), percent_decode(v)))
        .collect();
    partition_keys
        .iter()
        .map(|k| segments.get(&k.to_ascii_lowercase()).cloned())
        .collect()
}

/// The fixed prefix of a `storage.location.template` (up to the folder holding the first
/// `${…}`) and the rest; None when it has no placeholder.
pub fn split_template(template: &str) -> Option<(&str, &str)> {
    let first = template.find("${")?;
    let cut = template[..first].rfind('/')? + 1;
    Some((&template[..cut], &template[cut..]))
}

pub(crate) fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = v.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A composite's parts on matchable partition keys: (key index, wanted value).
fn partition_parts<'a>(
    parts: &'a [Part],
    keys: &[PartitionKey],
    matchable: &[String],
) -> Vec<(Option<usize>, &'a Part)> {
    parts
        .iter()
        .map(|p| {
            let column = p.column.as_str();
            let key = keys
                .iter()
                .position(|k| k.name.eq_ignore_ascii_case(column))
                .filter(|_| matchable.iter().any(|m| m.eq_ignore_ascii_case(column)));
            (key, p)
        })
        .collect()
}

/// Whether a partition can hold rows of the queued matches. Simple matches search data
/// columns, so they can be anywhere; a composite match that names partition keys (among
/// the mapper's `matchable` ones) lives only where those keys may have its values (a
/// comparison that is not certain keeps the partition).
pub fn may_hold(
    values: &[String],
    keys: &[PartitionKey],
    matchable: &[String],
    has_simple: bool,
    composites: &[Vec<Part>],
) -> bool {
    if has_simple {
        return true;
    }
    composites.iter().any(|parts| {
        partition_parts(parts, keys, matchable)
            .into_iter()
            .all(|(key, part)| {
                let Some(i) = key else {
                    return true;
                };
                values.get(i).is_none_or(|stored| {
                    compare(keys[i].ty.as_ref(), stored, &part.value) != Comparison::Different
                })
            })
    })
}

/// What of a composite match is left to check inside the objects of a partition with
/// `values` (None when the object's path carries no partition values): the parts that
/// name data columns, or None when a part on a matchable partition key excludes the
/// partition. An empty result means every row of the partition matches. A part whose
/// comparison is not certain (or an object in no partition) stays a data part: the
/// object's own column decides, and an object without it fails rather than being passed.
pub fn reduce_composite(
    values: Option<&[String]>,
    keys: &[PartitionKey],
    matchable: &[String],
    parts: &[Part],
) -> Option<Vec<Part>> {
    let mut rest = Vec::new();
    for (key, part) in partition_parts(parts, keys, matchable) {
        let stored = key.and_then(|i| Some((i, values?.get(i)?)));
        let Some((i, stored)) = stored else {
            rest.push(part.clone());
            continue;
        };
        match compare(keys[i].ty.as_ref(), stored, &part.value) {
            Comparison::Equal => {}
            Comparison::Different => return None,
            Comparison::Unknown => rest.push(part.clone()),
        }
    }
    Some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn sc(v: Value) -> Scalar {
        Scalar::from_json(&v).unwrap()
    }

    /// A composite's parts, from its JSON.
    fn parts(v: Value) -> Vec<Part> {
        let id = crate::domain::match_id::MatchId::from_stored(&v).unwrap();
        id.as_composite().unwrap().to_vec()
    }

    fn names() -> Vec<String> {
        vec!["dt".into(), "country".into()]
    }

    fn keys() -> Vec<PartitionKey> {
        PartitionKey::untyped(&names())
    }

    fn typed(ty: &str) -> Option<HiveType> {
        Some(HiveType::parse(ty).unwrap())
    }

    #[test]
    fn composites_reduce_to_their_data_parts_inside_a_matching_partition() {
        let keys = keys();
        let matchable = vec!["country".to_owned()];
        let c = parts(json!([{"column": "country", "value": "fr"}, {"column": "id", "value": 7}]));
        let fr = vec!["2024-01-01".to_owned(), "fr".to_owned()];
        let de = vec!["2024-01-01".to_owned(), "de".to_owned()];
        assert_eq!(
            reduce_composite(Some(&fr), &keys, &matchable, &c),
            Some(parts(json!([{"column": "id", "value": 7}])))
        );
        assert_eq!(reduce_composite(Some(&de), &keys, &matchable, &c), None);
        // An object in no partition: its own columns decide (never passed over).
        assert_eq!(
            reduce_composite(None, &keys, &matchable, &c),
            Some(c.clone())
        );
        // Only partition parts: every row of the partition matches.
        let whole = parts(json!([{"column": "country", "value": "fr"}]));
        assert_eq!(
            reduce_composite(Some(&fr), &keys, &matchable, &whole),
            Some(vec![])
        );
        // A key the mapper does not allow matching on stays a data part.
        let dt = parts(json!([{"column": "dt", "value": "x"}]));
        assert_eq!(
            reduce_composite(Some(&fr), &keys, &matchable, &dt),
            Some(dt.clone())
        );
        // Numbers compare with their value on an untyped key.
        let year = parts(json!([{"column": "country", "value": 2024}]));
        let y = vec!["x".to_owned(), "02024".to_owned()];
        assert_eq!(
            reduce_composite(Some(&y), &keys, &matchable, &year),
            Some(vec![])
        );
    }

    #[test]
    fn partition_values_compare_by_the_keys_declared_type() {
        use Comparison::*;
        let int = typed("int");
        assert_eq!(compare(int.as_ref(), "01", &sc(json!(1))), Equal);
        assert_eq!(compare(int.as_ref(), "01", &sc(json!("1"))), Equal);
        assert_eq!(compare(int.as_ref(), "02", &sc(json!(1))), Different);
        assert_eq!(compare(int.as_ref(), "x", &sc(json!(1))), Unknown);
        assert_eq!(compare(int.as_ref(), "1", &sc(json!("one"))), Unknown);
        let string = typed("string");
        assert_eq!(compare(string.as_ref(), "01", &sc(json!(1))), Different);
        assert_eq!(compare(string.as_ref(), "1", &sc(json!(1))), Equal);
        assert_eq!(compare(string.as_ref(), "fr", &sc(json!("fr"))), Equal);
        let decimal = typed("decimal(6,3)");
        assert_eq!(
            compare(decimal.as_ref(), "123.45", &sc(json!("123.450"))),
            Equal
        );
        assert_eq!(
            compare(decimal.as_ref(), "123.451", &sc(json!(123.45))),
            Different
        );
        assert_eq!(
            compare(typed("double").as_ref(), "1.50", &sc(json!(1.5))),
            Equal
        );
        // A float key holds 0.1f32, written out as a double: the id 0.1 is that float
        // (never pruned), though not that double.
        let f32_text = f64::from(0.1f32).to_string();
        assert_eq!(
            compare(typed("float").as_ref(), &f32_text, &sc(json!(0.1))),
            Equal
        );
        assert_eq!(
            compare(typed("real").as_ref(), &f32_text, &sc(json!("0.1"))),
            Equal
        );
        assert_eq!(
            compare(typed("double").as_ref(), &f32_text, &sc(json!(0.1))),
            Different
        );
        assert_eq!(
            compare(typed("float").as_ref(), "0.2", &sc(json!(0.1))),
            Different
        );
        assert_eq!(
            compare(typed("float").as_ref(), "x", &sc(json!(0.1))),
            Unknown
        );
        assert_eq!(
            compare(typed("boolean").as_ref(), "TRUE", &sc(json!("true"))),
            Equal
        );
        assert_eq!(
            compare(
                typed("date").as_ref(),
                "2024-01-01",
                &sc(json!("2024-01-01"))
            ),
            Equal
        );
        assert_eq!(
            compare(typed("date").as_ref(), "2024-1-1", &sc(json!("2024-01-01"))),
            Unknown
        );
        // A null partition equals nothing.
        assert_eq!(compare(int.as_ref(), HIVE_NULL, &sc(json!(1))), Different);
        // Untyped: by the match value's JSON type.
        assert_eq!(compare(None, "01", &sc(json!(1))), Equal);
        assert_eq!(compare(None, "01", &Scalar::Text("1".into())), Different);
        assert_eq!(compare(None, "fr", &Scalar::Number(1.into())), Different);
        // Numbers that cannot be compared exactly are never pruned on.
        assert_eq!(compare(None, "1e0", &Scalar::Number(1.into())), Unknown);
        assert_eq!(
            compare(None, "0.0000000001", &Scalar::Number(0.into())),
            Unknown
        );
    }

    #[test]
    fn a_comparison_that_is_not_certain_neither_prunes_nor_decides() {
        let keys = vec![PartitionKey {
            name: "month".into(),
            ty: typed("date"),
        }];
        let matchable = vec!["month".to_owned()];
        let c = parts(json!([{"column": "month", "value": "2024-01-01"}]));
        let odd = vec!["2024-1-1".to_owned()];
        assert!(may_hold(
            &odd,
            &keys,
            &matchable,
            false,
            std::slice::from_ref(&c)
        ));
        assert_eq!(
            reduce_composite(Some(&odd), &keys, &matchable, &c),
            Some(c.clone())
        );
    }

    #[test]
    fn partition_values_come_from_hive_style_paths() {
        assert_eq!(
            values_from_path("dt=2024-01-01/country=fr/part-0.parquet", &names()),
            Some(vec!["2024-01-01".into(), "fr".into()])
        );
        assert_eq!(
            values_from_path("DT=2024-01-01%3A00/country=fr/x", &names()).unwrap()[0],
            "2024-01-01:00"
        );
        assert_eq!(
            values_from_path("dt=2024-01-01/part-0.parquet", &names()),
            None
        );
        assert_eq!(values_from_path("part-0.parquet", &[]), Some(vec![]));
    }

    #[test]
    fn a_location_template_splits_at_the_folder_of_its_first_key() {
        assert_eq!(
            split_template("s3://b/logs/${country}/${dt}/"),
            Some(("s3://b/logs/", "${country}/${dt}/"))
        );
        assert_eq!(
            split_template("s3://b/logs/day-${dt}/"),
            Some(("s3://b/logs/", "day-${dt}/"))
        );
        assert_eq!(split_template("s3://b/logs/"), None);
    }

    #[test]
    fn only_composites_on_matchable_partition_keys_prune() {
        let fr = vec!["2024-01-01".to_owned(), "fr".to_owned()];
        let de_match =
            parts(json!([{"column": "country", "value": "de"}, {"column": "email", "value": "x"}]));
        let fr_match =
            parts(json!([{"column": "country", "value": "fr"}, {"column": "email", "value": "x"}]));
        let matchable = vec!["country".to_owned()];
        assert!(!may_hold(
            &fr,
            &keys(),
            &matchable,
            false,
            std::slice::from_ref(&de_match)
        ));
        assert!(may_hold(
            &fr,
            &keys(),
            &matchable,
            false,
            &[de_match.clone(), fr_match]
        ));
        assert!(may_hold(
            &fr,
            &keys(),
            &matchable,
            true,
            std::slice::from_ref(&de_match)
        ));
        // A partition key the mapper does not allow matching on never prunes.
        assert!(may_hold(&fr, &keys(), &[], false, &[de_match]));
        // An int key stored as `07` holds the match value 7.
        let int_keys = vec![
            PartitionKey {
                name: "dt".into(),
                ty: typed("int"),
            },
            PartitionKey {
                name: "country".into(),
                ty: typed("string"),
            },
        ];
        let p = vec!["07".to_owned(), "fr".to_owned()];
        assert!(may_hold(
            &p,
            &int_keys,
            &["dt".into()],
            false,
            &[parts(json!([{"column": "dt", "value": 7}]))]
        ));
        assert!(!may_hold(
            &p,
            &int_keys,
            &["dt".into()],
            false,
            &[parts(json!([{"column": "dt", "value": 8}]))]
        ));
    }

    #[test]
    fn a_partition_with_its_own_serde_or_parameters_is_named_and_one_without_is_the_tables() {
        let table: std::collections::BTreeMap<String, String> =
            [("field.delim".to_owned(), "|".to_owned())].into();
        let lazy = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe";
        let partition = |serde| Partition {
            values: vec!["2024".into(), "eu".into()],
            location: "s3://b/t/y=2024/r=eu/".into(),
            serde,
        };
        assert_eq!(partition(None).serde_differs(Some(lazy), &table), None);
        let same = partition(Some((Some(lazy.to_owned()), table.clone())));
        assert_eq!(same.serde_differs(Some(lazy), &table), None);
        let comma = partition(Some((
            Some(lazy.to_owned()),
            [("field.delim".to_owned(), ",".to_owned())].into(),
        )));
        let why = comma.serde_differs(Some(lazy), &table).unwrap();
        assert!(
            why.contains("partition (2024, eu)") && why.contains("(field.delim)"),
            "{why}"
        );
        let bare = partition(Some((Some(lazy.to_owned()), Default::default())));
        assert!(
            bare.serde_differs(Some(lazy), &table)
                .unwrap()
                .contains("field.delim")
        );
        let other = partition(Some((
            Some("org.apache.hadoop.hive.serde2.OpenCSVSerde".into()),
            table.clone(),
        )));
        let why = other.serde_differs(Some(lazy), &table).unwrap();
        assert!(
            why.contains("SerDe org.apache.hadoop.hive.serde2.OpenCSVSerde where the table has"),
            "{why}"
        );
    }
}
