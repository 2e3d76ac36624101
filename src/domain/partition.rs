//! Table partitions, and which of them can hold a queued subject's rows.

use std::collections::HashMap;

use serde_json::Value;

/// One partition: its key values (in the table's partition-key order) and location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub values: Vec<String>,
    pub location: String,
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

fn percent_decode(v: &str) -> String {
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

/// Whether a partition can hold rows of the queued matches. Simple matches search data
/// columns, so they can be anywhere; a composite match that names partition keys (among
/// the mapper's `matchable` ones) lives only where those keys have its values.
pub fn may_hold(
    partition: &Partition,
    partition_keys: &[String],
    matchable: &[String],
    has_simple: bool,
    composites: &[Value],
) -> bool {
    if has_simple {
        return true;
    }
    composites.iter().any(|c| {
        c.as_array().is_none_or(|parts| {
            parts.iter().all(|p| {
                let column = p
                    .get("column")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let Some(i) = partition_keys
                    .iter()
                    .position(|k| k.eq_ignore_ascii_case(&column))
                else {
                    return true;
                };
                if !matchable.iter().any(|m| m.eq_ignore_ascii_case(&column)) {
                    return true;
                }
                let wanted = match p.get("value") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => return true,
                };
                partition.values.get(i) == Some(&wanted)
            })
        })
    })
}

/// What of a composite match is left to check inside the objects of a partition with
/// `values` (None when the object's path carries no partition values): the parts that
/// name data columns, or None when a part on a matchable partition key excludes the
/// partition. An empty result means every row of the partition matches.
pub fn reduce_composite(
    values: Option<&[String]>,
    partition_keys: &[String],
    matchable: &[String],
    composite: &Value,
) -> Option<Vec<Value>> {
    let parts = composite.as_array()?;
    let mut rest = Vec::new();
    for part in parts {
        let column = part
            .get("column")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let key = partition_keys
            .iter()
            .position(|k| k.eq_ignore_ascii_case(column))
            .filter(|_| matchable.iter().any(|m| m.eq_ignore_ascii_case(column)));
        let Some(i) = key else {
            rest.push(part.clone());
            continue;
        };
        let wanted = match part.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => return None,
        };
        if values?.get(i) != Some(&wanted) {
            return None;
        }
    }
    Some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys() -> Vec<String> {
        vec!["dt".into(), "country".into()]
    }

    #[test]
    fn composites_reduce_to_their_data_parts_inside_a_matching_partition() {
        let keys = keys();
        let matchable = vec!["country".to_owned()];
        let c = json!([{"column": "country", "value": "fr"}, {"column": "id", "value": 7}]);
        let fr = vec!["2024-01-01".to_owned(), "fr".to_owned()];
        let de = vec!["2024-01-01".to_owned(), "de".to_owned()];
        assert_eq!(
            reduce_composite(Some(&fr), &keys, &matchable, &c),
            Some(vec![json!({"column": "id", "value": 7})])
        );
        assert_eq!(reduce_composite(Some(&de), &keys, &matchable, &c), None);
        assert_eq!(reduce_composite(None, &keys, &matchable, &c), None);
        // Only partition parts: every row of the partition matches.
        let whole = json!([{"column": "country", "value": "fr"}]);
        assert_eq!(
            reduce_composite(Some(&fr), &keys, &matchable, &whole),
            Some(vec![])
        );
        // A key the mapper does not allow matching on stays a data part.
        let dt = json!([{"column": "dt", "value": "x"}]);
        assert_eq!(
            reduce_composite(Some(&fr), &keys, &matchable, &dt),
            Some(vec![json!({"column": "dt", "value": "x"})])
        );
        // Numbers compare with their text form.
        let year = json!([{"column": "country", "value": 2024}]);
        let y = vec!["x".to_owned(), "2024".to_owned()];
        assert_eq!(
            reduce_composite(Some(&y), &keys, &matchable, &year),
            Some(vec![])
        );
    }

    #[test]
    fn partition_values_come_from_hive_style_paths() {
        assert_eq!(
            values_from_path("dt=2024-01-01/country=fr/part-0.parquet", &keys()),
            Some(vec!["2024-01-01".into(), "fr".into()])
        );
        assert_eq!(
            values_from_path("DT=2024-01-01%3A00/country=fr/x", &keys()).unwrap()[0],
            "2024-01-01:00"
        );
        assert_eq!(
            values_from_path("dt=2024-01-01/part-0.parquet", &keys()),
            None
        );
        assert_eq!(values_from_path("part-0.parquet", &[]), Some(vec![]));
    }

    #[test]
    fn only_composites_on_matchable_partition_keys_prune() {
        let fr = Partition {
            values: vec!["2024-01-01".into(), "fr".into()],
            location: "s3://b/t/dt=2024-01-01/country=fr/".into(),
        };
        let de_match =
            json!([{"column": "country", "value": "de"}, {"column": "email", "value": "x"}]);
        let fr_match =
            json!([{"column": "country", "value": "fr"}, {"column": "email", "value": "x"}]);
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
        // Numbers compare by their text, as partition values are text.
        let p = Partition {
            values: vec!["7".into(), "fr".into()],
            location: String::new(),
        };
        assert!(may_hold(
            &p,
            &keys(),
            &["dt".into()],
            false,
            &[json!([{"column": "dt", "value": 7}])]
        ));
    }
}
