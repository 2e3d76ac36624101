//! Which keys of a JSON line a Glue table's JSON SerDe reads a column from, and every value
//! a match column may therefore have on that line.
//!
//! - OpenX (`org.openx.data.jsonserde.JsonSerDe`): `mapping.<field>` = the JSON key the
//!   field is read from (at any depth: struct fields are mapped by their name too, as
//!   the SerDe does); `case.insensitive` (default true: keys compare ignoring case);
//!   `dots.in.keys` (default false; when true a key's dots read as underscores, so
//!   `"a.b"` is the field `a_b`).
//! - Hive (`org.apache.hive.hcatalog.data.JsonSerDe`, `org.apache.hadoop.hive.serde2.JsonSerDe`):
//!   keys compare ignoring case; it has no mapping nor dots parameter (any `mapping.*`
//!   is ignored, as the SerDe ignores it).
//!
//! A line may hold a field several times (`{"id": 7, "id": 8}`, or `ID` and `id` when
//! case does not count). Hive's OpenX SerDe refuses such a line (`Duplicate key`) or reads
//! it as NULLs (`ignore.malformed.json`), Trino's readers keep the last value: so every
//! occurrence is a value of the column, and a line matches when any of them equals an id
//! (no silent miss, whatever value a reader picks).

use serde_json::value::RawValue;

use super::object::JsonObject;
use crate::domain::json_serde::JsonSerde;

impl JsonSerde {
    /// Every value the column at a dotted `path` may have on the line: at each segment
    /// every field the SerDe may read it from (every occurrence), inside each object
    /// value found so far.
    pub fn values_at<'a>(&self, object: &JsonObject<'a>, path: &str) -> Vec<&'a RawValue> {
        let mut segments = path.split('.');
        let first = segments.next().unwrap_or_default().to_lowercase();
        let mut values = self.fields(object, &first);
        for segment in segments {
            let segment = segment.to_lowercase();
            let mut inner = Vec::new();
            for value in values {
                if let Ok(object) = serde_json::from_str::<JsonObject<'a>>(value.get()) {
                    inner.extend(self.fields(&object, &segment));
                }
            }
            values = inner;
        }
        values
    }

    fn fields<'a>(&self, object: &JsonObject<'a>, field: &str) -> Vec<&'a RawValue> {
        object
            .fields()
            .filter(|(key, _)| self.reads(field, key))
            .map(|(_, value)| value)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::json_serde::{HIVE, OPENX, refusal};

    fn serde(library: &str, params: &[(&str, &str)]) -> Option<JsonSerde> {
        let params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        JsonSerde::of_table(Some(library), &params)
    }

    fn values(serde: &JsonSerde, line: &str, path: &str) -> Vec<String> {
        let object = JsonObject::parse(line.as_bytes()).unwrap();
        serde
            .values_at(&object, path)
            .iter()
            .map(|v| v.get().to_owned())
            .collect()
    }

    #[test]
    fn openx_parameters_are_read_as_the_serde_reads_them() {
        let s = serde(OPENX, &[]).unwrap();
        assert!(s.case_insensitive && !s.dots_in_keys && s.mapping.is_empty());
        let s = serde(
            OPENX,
            &[
                ("case.insensitive", "FALSE"),
                ("dots.in.keys", "TRUE"),
                ("mapping.customer_id", "CustomerID"),
                ("serialization.format", "1"),
            ],
        )
        .unwrap();
        assert!(!s.case_insensitive && s.dots_in_keys);
        assert_eq!(
            s.mapping,
            BTreeMap::from([("customer_id".to_owned(), "CustomerID".to_owned())])
        );
        // Anything but `true` is false, as in the SerDe.
        assert!(
            !serde(OPENX, &[("case.insensitive", "yes")])
                .unwrap()
                .case_insensitive
        );
        // Hive's SerDe ignores case and has no mapping.
        let hive = serde(HIVE[0], &[("mapping.id", "ID")]).unwrap();
        assert!(hive.case_insensitive && hive.mapping.is_empty());
        assert_eq!(serde("org.example.OtherJsonSerDe", &[]), None);
        assert_eq!(JsonSerde::of_table(None, &BTreeMap::new()), None);
    }

    #[test]
    fn a_mapped_column_is_read_from_its_key_ignoring_case_unless_told_otherwise() {
        let line = r#"{"customer_id": 1, "CustomerID": 2, "customerid": 3, "CUSTOMERID": 4}"#;
        let mapped = serde(OPENX, &[("mapping.customer_id", "CustomerID")]).unwrap();
        assert_eq!(values(&mapped, line, "customer_id"), ["2", "3", "4"]);
        let exact = serde(
            OPENX,
            &[
                ("mapping.customer_id", "CustomerID"),
                ("case.insensitive", "false"),
            ],
        )
        .unwrap();
        assert_eq!(values(&exact, line, "customer_id"), ["2"]);
        // Without a mapping the column is its own name, in any case unless told otherwise.
        let line = r#"{"Email": "a@x", "email": "b@x", "e_mail": "c@x"}"#;
        let plain = serde(OPENX, &[]).unwrap();
        assert_eq!(values(&plain, line, "email"), [r#""a@x""#, r#""b@x""#]);
        let sensitive = serde(OPENX, &[("case.insensitive", "false")]).unwrap();
        assert_eq!(values(&sensitive, line, "email"), [r#""b@x""#]);
        assert!(values(&plain, line, "phone").is_empty(), "no key: NULL");
    }

    #[test]
    fn dots_in_keys_read_as_underscores_only_when_the_table_says_so() {
        let line = r#"{"a.b": 1, "A.B": 2, "a_b": 3, "x": {"c.d": 4}}"#;
        let dots = serde(OPENX, &[("dots.in.keys", "true")]).unwrap();
        assert_eq!(values(&dots, line, "a_b"), ["1", "2", "3"]);
        assert_eq!(values(&dots, line, "x.c_d"), ["4"]);
        let plain = serde(OPENX, &[]).unwrap();
        assert_eq!(values(&plain, line, "a_b"), ["3"]);
        assert!(values(&plain, line, "x.c_d").is_empty());
    }

    #[test]
    fn every_occurrence_of_a_duplicate_key_is_a_value_of_the_column() {
        let hive = serde(HIVE[0], &[]).unwrap();
        assert_eq!(values(&hive, r#"{"id": 7, "id": 8}"#, "id"), ["7", "8"]);
        assert_eq!(values(&hive, r#"{"Id": 7, "ID": 8}"#, "id"), ["7", "8"]);
        // Nested: every occurrence at every level.
        let line = r#"{"user": {"id": 1, "ID": 2}, "User": {"Id": 3}, "user": 5}"#;
        assert_eq!(values(&hive, line, "user.id"), ["1", "2", "3"]);
        // A mapping applies to struct fields by their name too.
        let mapped = serde(OPENX, &[("mapping.id", "UserId")]).unwrap();
        let line = r#"{"user": {"userid": 9, "id": 10}}"#;
        assert_eq!(values(&mapped, line, "user.id"), ["9"]);
    }

    #[test]
    fn serdes_and_mappings_lethe_cannot_read_as_the_serde_does_are_refused() {
        let none = BTreeMap::new();
        assert_eq!(refusal(None, &none), None, "no SerDe named: exact names");
        assert_eq!(refusal(Some(OPENX), &none), None);
        assert_eq!(refusal(Some(HIVE[0]), &none), None);
        assert_eq!(refusal(Some(HIVE[1]), &none), None);
        let ion = refusal(Some("com.amazon.ionhiveserde.IonHiveSerDe"), &none).unwrap();
        assert!(ion.contains("IonHiveSerDe"), "{ion}");
        let mut alternatives = BTreeMap::new();
        alternatives.insert(
            "mapping.customer_id".to_owned(),
            "customerId|cid".to_owned(),
        );
        let why = refusal(Some(OPENX), &alternatives).unwrap();
        assert!(why.contains("mapping.customer_id"), "{why}");
        // The Hive JSON SerDe ignores mapping parameters altogether.
        assert_eq!(refusal(Some(HIVE[0]), &alternatives), None);
    }
}
