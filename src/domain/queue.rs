//! The deletion queue: one item per data subject to erase.
//!
//! Invariants of a parsed [`NewQueueItem`]: a simple match id is a non-empty string or a
//! finite number; a composite one has distinct columns, each a column of its one data
//! mapper, each with a scalar value; every named data mapper exists. Match ids are subject
//! data: they are never logged, never audited, never echoed in error messages.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;

use super::data_mapper::DataMapperId;
use super::validation::Errors;

/// Most items one add call may carry.
pub const MAX_ITEMS_PER_CALL: usize = 10_000;
/// Longest accepted string match id or composite value, in bytes.
pub const MAX_MATCH_ID_BYTES: usize = 4096;
/// Most data mappers one item may name (none = all).
pub const MAX_MAPPERS_PER_ITEM: usize = 32;
/// Deadline when the caller gives none: received + 30 days.
pub const DEFAULT_DEADLINE_DAYS: i64 = 30;

pub use super::match_id::{MatchId, MatchType, Part, Scalar};

/// A queue item ready to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewQueueItem {
    pub match_id: MatchId,
    pub data_mappers: Vec<DataMapperId>,
    pub deadline: DateTime<Utc>,
    pub reference: Option<String>,
}

/// One item as the caller sent it; its match id still the JSON text sent.
#[derive(Debug, Clone)]
pub struct QueueItemDraft {
    pub match_id: Box<RawValue>,
    pub data_mappers: Vec<String>,
    pub deadline: Option<DateTime<Utc>>,
    pub reference: Option<String>,
}

/// Parses a batch of items. `mapper_columns` maps each existing data mapper to its match
/// columns. Every error is named by its path, e.g. `matches[3].match_id`.
pub fn parse_items(
    drafts: Vec<QueueItemDraft>,
    mapper_columns: &HashMap<String, Vec<String>>,
    now: DateTime<Utc>,
) -> Result<Vec<NewQueueItem>, Vec<super::validation::FieldError>> {
    let mut errors = Errors::new();
    if drafts.is_empty() {
        errors.add("matches", "must hold at least one item");
    }
    if drafts.len() > MAX_ITEMS_PER_CALL {
        errors.add(
            "matches",
            format!("at most {MAX_ITEMS_PER_CALL} items per call"),
        );
        return Err(errors.into_vec());
    }
    let items = drafts
        .into_iter()
        .enumerate()
        .filter_map(|(i, draft)| parse_item(i, draft, mapper_columns, now, &mut errors))
        .collect();
    errors.finish(items)
}

/// What only operators and admins may queue, and when: a composite match made only of
/// its mapper's partition keys (it erases whole partitions), and a deadline so near
/// (in the past, or within the scheduler's `margin`) that a real job would start at once.
pub fn check_privileged(
    items: &[NewQueueItem],
    partition_keys: &HashMap<String, Vec<String>>,
    now: DateTime<Utc>,
    (margin, requester_min): (Duration, Duration),
    privileged: bool,
) -> Result<(), Vec<super::validation::FieldError>> {
    let mut errors = Errors::new();
    for (i, item) in items.iter().enumerate() {
        if !privileged && item.deadline < now + requester_min {
            errors.add(
                format!("matches[{i}].deadline"),
                format!(
                    "must be at least {} day(s) ahead for a requester (LETHE_REQUESTER_MIN_DEADLINE_DAYS): an operator decides sooner erasures",
                    requester_min.num_days()
                ),
            );
            continue;
        }
        if item.deadline < now + margin {
            errors.add(
                format!("matches[{i}].deadline"),
                format!(
                    "must be at least {} hour(s) ahead: the scheduler starts a job for a nearer deadline at once (to erase now, queue it and start a job)",
                    margin.num_hours()
                ),
            );
        }
        if privileged {
            continue;
        }
        let (MatchId::Composite(parts), Some(mapper)) = (&item.match_id, item.data_mappers.first())
        else {
            continue;
        };
        let keys = partition_keys
            .get(mapper.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let only_keys = !parts.is_empty()
            && parts
                .iter()
                .all(|p| keys.iter().any(|k| k.eq_ignore_ascii_case(&p.column)));
        if only_keys {
            // Names nothing the caller did not send; says why a requester cannot.
            errors.add(
                format!("matches[{i}].match_id"),
                "a composite match made only of partition keys erases whole partitions: only operators and admins may queue one",
            );
        }
    }
    errors.finish(())
}

/// Refuses ids that cannot be cast to any match column of any mapper they apply to
/// (`types`: each mapper's match column types; a mapper without types accepts every id),
/// and composite parts that cannot be cast to their column's type. `items` are the
/// parsed items in request order.
pub fn check_casts(
    items: &[NewQueueItem],
    types: &HashMap<String, std::collections::BTreeMap<String, String>>,
) -> Result<(), Vec<super::validation::FieldError>> {
    let mut errors = Errors::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("matches[{i}].match_id");
        match &item.match_id {
            MatchId::Composite(parts) => {
                let Some(columns) = item
                    .data_mappers
                    .first()
                    .and_then(|m| types.get(m.as_str()))
                else {
                    continue;
                };
                for (j, Part { column, value }) in parts.iter().enumerate() {
                    let ty = columns
                        .iter()
                        .find(|(c, _)| c.eq_ignore_ascii_case(column))
                        .map(|(_, t)| t);
                    if let Some(ty) = ty
                        && !value.castable(ty)
                    {
                        errors.add_about_mappers(
                            format!("{field}[{j}].value"),
                            format!("cannot be cast to {column}'s type {ty}"),
                        );
                    }
                }
            }
            MatchId::Simple(value) => {
                let applies: Vec<&str> = if item.data_mappers.is_empty() {
                    types.keys().map(String::as_str).collect()
                } else {
                    item.data_mappers.iter().map(|m| m.as_str()).collect()
                };
                let mut described = Vec::new();
                let fits = applies.iter().any(|m| match types.get(*m) {
                    None => true,
                    Some(columns) if columns.is_empty() => true,
                    Some(columns) => {
                        let fits = columns.values().any(|t| value.castable(t));
                        if !fits {
                            let list: Vec<String> =
                                columns.iter().map(|(c, t)| format!("{c} {t}")).collect();
                            described.push(format!("{m}: {}", list.join(", ")));
                        }
                        fits
                    }
                });
                if !fits && !applies.is_empty() {
                    errors.add_about_mappers(
                        field,
                        format!(
                            "cannot be cast to the type of any match column of the data mappers it applies to ({})",
                            described.join("; ")
                        ),
                    );
                }
            }
        }
    }
    errors.finish(())
}

fn parse_item(
    i: usize,
    draft: QueueItemDraft,
    mapper_columns: &HashMap<String, Vec<String>>,
    now: DateTime<Utc>,
    errors: &mut Errors,
) -> Option<NewQueueItem> {
    let count_before = errors.len();
    let mut mappers = Vec::new();
    for (j, name) in draft.data_mappers.iter().enumerate() {
        let field = format!("matches[{i}].data_mappers[{j}]");
        match DataMapperId::parse(name) {
            Err(message) => errors.add(field, message),
            Ok(_) if !mapper_columns.contains_key(name) => {
                errors.add_about_mappers(field, format!("no data mapper {name:?}"))
            }
            Ok(id) if mappers.contains(&id) => errors.add(field, format!("duplicate {name:?}")),
            Ok(id) => mappers.push(id),
        }
    }
    let match_field = format!("matches[{i}].match_id");
    let match_id = check_match_id(
        &draft.match_id,
        &match_field,
        &draft.data_mappers,
        mapper_columns,
        errors,
    );
    if let Some(reference) = &draft.reference
        && reference.chars().count() > 256
    {
        errors.add(
            format!("matches[{i}].reference"),
            "must be at most 256 characters",
        );
    }
    let deadline = draft
        .deadline
        .unwrap_or(now + Duration::days(DEFAULT_DEADLINE_DAYS));
    if !super::validation::is_storable_time(deadline) {
        errors.add(
            format!("matches[{i}].deadline"),
            "must be between the years 1970 and 9999",
        );
    }
    // Only build the item when this draft added no error.
    let match_id = match_id.filter(|_| errors.len() == count_before)?;
    Some(NewQueueItem {
        match_id,
        data_mappers: mappers,
        deadline,
        reference: draft.reference,
    })
}

/// The match id sent as `raw` (named `field` in errors), checked for the mappers it
/// names (a composite: exactly one, whose columns it must name when they are known).
fn check_match_id(
    raw: &RawValue,
    field: &str,
    mappers: &[String],
    mapper_columns: &HashMap<String, Vec<String>>,
    errors: &mut Errors,
) -> Option<MatchId> {
    match read_match_id(raw, field, errors) {
        None => None,
        Some(Value::String(s)) => check_scalar_string(&s, field, errors).map(MatchId::Simple),
        Some(Value::Number(n)) => check_number(&n, field, errors).map(MatchId::Simple),
        Some(Value::Array(parts)) => check_composite(parts, field, mappers, mapper_columns, errors),
        Some(_) => {
            errors.add(
                field,
                "must be a string, a number, or a list of {column, value}",
            );
            None
        }
    }
}

/// A match id to look up (`POST /v1/receipts/lookup`), checked as the queue checks one
/// (shape, sizes; errors name `match_id…`), except that a composite names no mapper: its
/// keyed hash does not depend on one. `match_type`, when given, must be the id's. Like the
/// queue's checks, no message echoes the id. As for an addition, the caller first checks
/// its numbers on the text sent (`queue_exact::check_exact_number`).
pub fn parse_lookup(
    raw: &RawValue,
    match_type: Option<MatchType>,
) -> Result<MatchId, Vec<super::validation::FieldError>> {
    let mut errors = Errors::new();
    // One mapper whose columns are unknown: a composite then needs none named, and
    // takes any column, as a lookup should.
    let any_mapper = [String::new()];
    let id = check_match_id(raw, "match_id", &any_mapper, &HashMap::new(), &mut errors);
    if let (Some(id), Some(wanted)) = (&id, match_type)
        && id.match_type() != wanted
    {
        errors.add(
            "match_type",
            format!("is {wanted}, but match_id is a {} match", id.match_type()),
        );
    }
    match id {
        Some(id) if errors.is_empty() => Ok(id),
        _ if errors.is_empty() => Err(vec![super::validation::FieldError {
            field: "match_id".to_owned(),
            message: "must be a string, a number, or a list of {column, value}".to_owned(),
            about_mappers: false,
        }]),
        _ => Err(errors.into_vec()),
    }
}

/// Values a match id's JSON may hold (counted as [`holds_at_most`] counts them): a valid
/// one holds at most 1 + 32 × 3. A larger one is refused without being read into a tree.
pub const MAX_MATCH_ID_VALUES: usize = 256;

/// Whether a JSON text holds at most `max` values, counted cheaply as one plus its commas
/// and openings outside strings (an upper bound, exact but for empty lists and objects).
pub fn holds_at_most(json: &str, max: usize) -> bool {
    let (mut count, mut in_string, mut escaped) = (1usize, false, false);
    for b in json.bytes() {
        match (in_string, b) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') => in_string = false,
            (true, _) => {}
            (false, b'"') => in_string = true,
            (false, b',' | b'[' | b'{') => count += 1,
            (false, _) => {}
        }
        if count > max {
            return false;
        }
    }
    true
}

/// The match id sent, read into a `Value` only when its JSON is small enough to be a
/// valid one; else refused (an oversized list by its part count).
fn read_match_id(raw: &RawValue, field: &str, errors: &mut Errors) -> Option<Value> {
    let text = raw.get();
    if holds_at_most(text, MAX_MATCH_ID_VALUES) {
        return serde_json::from_str(text).ok();
    }
    // Counting a list's elements keeps none of them (`IgnoredAny` has no size).
    match serde_json::from_str::<Vec<IgnoredAny>>(text) {
        Ok(parts) if parts.len() > MAX_COMPOSITE_PARTS => errors.add(
            field,
            format!("a composite match has at most {MAX_COMPOSITE_PARTS} parts"),
        ),
        _ => errors.add(
            field,
            "is too large: must be a string, a number, or a list of {column, value}",
        ),
    }
    None
}

fn check_scalar_string(s: &str, field: &str, errors: &mut Errors) -> Option<Scalar> {
    if s.is_empty() {
        errors.add(field, "must not be empty");
        return None;
    }
    if s.len() > MAX_MATCH_ID_BYTES {
        errors.add(field, format!("must be at most {MAX_MATCH_ID_BYTES} bytes"));
        return None;
    }
    Some(Scalar::Text(s.to_owned()))
}

/// Largest magnitude of a non-integer numeric match id: beyond any decimal(38) or
/// identifier, and safely inside what Postgres and f64 both round-trip.
const MAX_FLOAT_MATCH_ID: f64 = 1e38;

fn check_number(n: &serde_json::Number, field: &str, errors: &mut Errors) -> Option<Scalar> {
    let ok = n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.abs() < MAX_FLOAT_MATCH_ID);
    if ok {
        Some(Scalar::Number(n.clone()))
    } else {
        errors.add(
            field,
            "must be a 64-bit integer or a number of magnitude below 1e38 (send larger identifiers as strings)",
        );
        None
    }
}

/// Parts a composite match may have.
pub const MAX_COMPOSITE_PARTS: usize = 32;

fn check_composite(
    parts: Vec<Value>,
    field: &str,
    mappers: &[String],
    mapper_columns: &HashMap<String, Vec<String>>,
    errors: &mut Errors,
) -> Option<MatchId> {
    let count_before = errors.len();
    if parts.is_empty() {
        errors.add(
            field,
            "a composite match needs at least one {column, value}",
        );
    }
    if parts.len() > MAX_COMPOSITE_PARTS {
        errors.add(
            field,
            format!("a composite match has at most {MAX_COMPOSITE_PARTS} parts"),
        );
        return None;
    }
    if mappers.len() != 1 {
        errors.add(
            field.replace("match_id", "data_mappers"),
            "a composite match needs exactly one data mapper",
        );
    }
    let columns = mappers.first().and_then(|m| mapper_columns.get(m));
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut typed = Vec::with_capacity(parts.len());
    for (k, part) in parts.iter().enumerate() {
        let part_field = format!("{field}[{k}]");
        let Some(obj) = part.as_object() else {
            errors.add(part_field, "must be an object {column, value}");
            continue;
        };
        if let Some(extra) = obj.keys().find(|key| *key != "column" && *key != "value") {
            errors.add(format!("{part_field}.{extra}"), "unknown field");
        }
        let column = obj.get("column").and_then(Value::as_str);
        match column {
            None => errors.add(format!("{part_field}.column"), "must be a column name"),
            Some(c) if seen.contains(c) => errors.add(
                format!("{part_field}.column"),
                format!("duplicate column {c:?}"),
            ),
            Some(c) => {
                seen.insert(c);
                if columns.is_some_and(|cols| !cols.iter().any(|x| x == c)) {
                    errors.add_about_mappers(
                        format!("{part_field}.column"),
                        format!("{c:?} is not a column of data mapper {:?}", mappers[0]),
                    );
                }
            }
        }
        let value_field = format!("{part_field}.value");
        let value = match obj.get("value") {
            Some(Value::String(s)) => check_scalar_string(s, &value_field, errors),
            Some(Value::Number(n)) => check_number(n, &value_field, errors),
            _ => {
                errors.add(value_field, "must be a string or a number");
                None
            }
        };
        if let (Some(column), Some(value)) = (column, value) {
            typed.push(Part {
                column: column.to_owned(),
                value,
            });
        }
    }
    (errors.len() == count_before).then_some(MatchId::Composite(typed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requesters_deadline_must_leave_an_operator_time_to_decide() {
        let now = Utc::now();
        let item = |days: i64| NewQueueItem {
            match_id: MatchId::Simple(Scalar::Text("1".into())),
            data_mappers: vec![],
            deadline: now + Duration::days(days),
            reference: None,
        };
        let limits = (Duration::hours(72), Duration::days(7));
        let keys = HashMap::new();
        let errors = check_privileged(&[item(5)], &keys, now, limits, false).unwrap_err();
        assert_eq!(errors[0].field, "matches[0].deadline");
        assert!(
            errors[0].message.contains("7 day(s)"),
            "{}",
            errors[0].message
        );
        assert!(check_privileged(&[item(8)], &keys, now, limits, false).is_ok());
        // An operator may set a nearer one (still beyond the scheduler's margin).
        assert!(check_privileged(&[item(5)], &keys, now, limits, true).is_ok());
        assert!(check_privileged(&[item(2)], &keys, now, limits, true).is_err());
    }
    use serde_json::json;

    fn mappers() -> HashMap<String, Vec<String>> {
        HashMap::from([
            (
                "people".to_owned(),
                vec!["first_name".to_owned(), "last_name".to_owned()],
            ),
            ("orders".to_owned(), vec!["customer_id".to_owned()]),
        ])
    }

    fn draft(match_id: Value, data_mappers: &[&str]) -> QueueItemDraft {
        QueueItemDraft {
            match_id: serde_json::value::to_raw_value(&match_id).unwrap(),
            data_mappers: data_mappers.iter().map(|s| s.to_string()).collect(),
            deadline: None,
            reference: None,
        }
    }

    fn fields(
        result: Result<Vec<NewQueueItem>, Vec<super::super::validation::FieldError>>,
    ) -> Vec<String> {
        result.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn simple_and_composite_items_parse_with_a_default_deadline() {
        let now = Utc::now();
        let items = parse_items(
            vec![
                draft(json!("jane"), &[]),
                draft(json!(42), &["orders"]),
                draft(
                    json!([{"column": "first_name", "value": "Jane"}, {"column": "last_name", "value": "Doe"}]),
                    &["people"],
                ),
            ],
            &mappers(),
            now,
        )
        .unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].match_id.match_type(), MatchType::Simple);
        assert_eq!(items[1].data_mappers[0].as_str(), "orders");
        assert_eq!(items[2].match_id.match_type(), MatchType::Composite);
        assert_eq!(
            items[2].match_id.to_json(),
            json!([{"column": "first_name", "value": "Jane"}, {"column": "last_name", "value": "Doe"}])
        );
        assert_eq!(items[0].deadline, now + Duration::days(30));
    }

    #[test]
    fn invalid_items_are_named_by_their_path() {
        let result = parse_items(
            vec![
                draft(json!(1.7976931348623157e308), &[]),
                draft(json!("x"), &["nope"]),
                draft(json!({"a": 1}), &[]),
                draft(json!([{"column": "customer_id", "value": 1}]), &["people"]),
                draft(
                    json!([{"column": "first_name", "value": "J"}]),
                    &["people", "orders"],
                ),
                draft(
                    json!([{"column": "first_name", "value": null}]),
                    &["people"],
                ),
                QueueItemDraft {
                    deadline: Some("0099-01-01T00:00:00Z".parse().unwrap()),
                    ..draft(json!("x"), &[])
                },
            ],
            &mappers(),
            Utc::now(),
        );
        assert_eq!(
            fields(result),
            [
                "matches[0].match_id",
                "matches[1].data_mappers[0]",
                "matches[2].match_id",
                "matches[3].match_id[0].column",
                "matches[4].data_mappers",
                "matches[5].match_id[0].value",
                "matches[6].deadline",
            ]
        );
    }

    #[test]
    fn batches_must_hold_between_one_and_ten_thousand_items() {
        assert_eq!(
            fields(parse_items(vec![], &mappers(), Utc::now())),
            ["matches"]
        );
        let many = vec![draft(json!("x"), &[]); MAX_ITEMS_PER_CALL + 1];
        assert_eq!(
            fields(parse_items(many, &mappers(), Utc::now())),
            ["matches"]
        );
        let max = vec![draft(json!("x"), &[]); MAX_ITEMS_PER_CALL];
        assert_eq!(
            parse_items(max, &mappers(), Utc::now()).unwrap().len(),
            MAX_ITEMS_PER_CALL
        );
    }

    #[test]
    fn error_messages_never_echo_the_match_id() {
        let secret = "jane.doe@example.com";
        let result = parse_items(
            vec![
                draft(json!(secret), &["nope"]),
                draft(json!([{"column": "bogus", "value": secret}]), &["people"]),
            ],
            &mappers(),
            Utc::now(),
        );
        for error in result.unwrap_err() {
            assert!(!error.message.contains(secret), "{error:?}");
        }
    }

    #[test]
    fn ids_no_match_column_can_take_are_refused_and_untyped_mappers_take_any() {
        let item = |v: Value, mappers: &[&str]| NewQueueItem {
            match_id: MatchId::from_stored(&v).unwrap(),
            data_mappers: mappers
                .iter()
                .map(|m| DataMapperId::parse(m).unwrap())
                .collect(),
            deadline: Utc::now(),
            reference: None,
        };
        let typed = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(c, t)| (c.to_string(), t.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let types: HashMap<_, _> = [
            ("ids".to_owned(), typed(&[("id", "bigint")])),
            (
                "mixed".to_owned(),
                typed(&[("id", "bigint"), ("email", "string")]),
            ),
            ("local".to_owned(), typed(&[])),
        ]
        .into();
        assert!(
            check_casts(
                &[item(json!("42"), &["ids"]), item(json!("abc"), &["mixed"])],
                &types
            )
            .is_ok()
        );
        let errors = check_casts(
            &[item(json!(1), &["ids"]), item(json!("abc"), &["ids"])],
            &types,
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "matches[1].match_id");
        assert!(
            errors[0].message.contains("ids: id bigint"),
            "{}",
            errors[0].message
        );
        // Naming no mapper: any mapper that can take it (here the untyped one) will do.
        assert!(check_casts(&[item(json!("abc"), &[])], &types).is_ok());
        let composite = json!([{"column": "ID", "value": "x"}, {"column": "email", "value": 5}]);
        let errors = check_casts(&[item(composite, &["mixed"])], &types).unwrap_err();
        assert_eq!(errors[0].field, "matches[0].match_id[0].value");
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn composites_have_at_most_32_parts() {
        let parts: Vec<Value> = (0..100_000)
            .map(|i| json!({"column": format!("c{i}"), "value": i}))
            .collect();
        let draft = draft(Value::Array(parts), &["people"]);
        let started = std::time::Instant::now();
        let errors = parse_items(vec![draft], &mappers(), Utc::now()).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.message.contains("at most 32 parts")),
            "{errors:?}"
        );
        // A bound on work, not a timing target: far below the quadratic cost.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn an_oversized_match_id_is_refused_without_being_read() {
        // One plus the commas and openings outside strings.
        assert!(holds_at_most(r#"[{"column": "a,[{\",", "value": 1}]"#, 4));
        assert!(!holds_at_most("[1,2,3,4]", 4));
        assert!(holds_at_most(r#""[,,,,""#, 1));
        let refused = |text: String| {
            let raw = RawValue::from_string(text).unwrap();
            let item = QueueItemDraft {
                match_id: raw,
                ..draft(json!(1), &["people"])
            };
            let errors = parse_items(vec![item], &mappers(), Utc::now()).unwrap_err();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].field, "matches[0].match_id");
            errors[0].message.clone()
        };
        let zeros = format!("[{}]", vec!["0"; 100_000].join(","));
        assert!(refused(zeros).contains("at most 32 parts"));
        let nested = format!("[[{}]]", vec!["0"; 300].join(","));
        assert!(refused(nested).contains("too large"));
        let object = format!("{{\"a\": [{}]}}", vec!["0"; 300].join(","));
        assert!(refused(object).contains("too large"));
        // 33 parts are read as a list, and refused by their number.
        let parts: Vec<Value> = (0..33)
            .map(|i| json!({"column": "first_name", "value": i}))
            .collect();
        let text = serde_json::to_string(&parts).unwrap();
        assert!(holds_at_most(&text, MAX_MATCH_ID_VALUES));
        assert!(refused(text).contains("at most 32 parts"));
    }

    #[test]
    fn a_lookup_takes_any_id_the_queue_takes_and_a_composite_without_its_mapper() {
        let raw = |text: &str| RawValue::from_string(text.to_owned()).unwrap();
        let ok = |text: &str, ty: Option<MatchType>| parse_lookup(&raw(text), ty).unwrap();
        assert_eq!(
            ok(r#""a@example.com""#, None),
            MatchId::Simple(Scalar::Text("a@example.com".into()))
        );
        assert_eq!(
            ok("42", Some(MatchType::Simple)),
            MatchId::Simple(Scalar::Number(42.into()))
        );
        let composite = ok(
            r#"[{"column": "first_name", "value": "Ann"}, {"column": "age", "value": 7}]"#,
            Some(MatchType::Composite),
        );
        assert_eq!(
            crate::domain::match_id::canonical_text(&composite),
            r#"[{"column":"first_name","value":"Ann"},{"column":"age","value":7}]"#
        );
    }

    #[test]
    fn a_lookup_refuses_what_the_queue_refuses_naming_the_field_never_the_id() {
        let raw = |text: &str| RawValue::from_string(text.to_owned()).unwrap();
        let parts: Vec<String> = (0..33)
            .map(|i| format!(r#"{{"column": "c{i}", "value": 1}}"#))
            .collect();
        let too_many = format!("[{}]", parts.join(","));
        let long = format!("\"{}\"", "x".repeat(MAX_MATCH_ID_BYTES + 1));
        for (text, ty, field) in [
            (r#""""#, None, "match_id"),
            ("true", None, "match_id"),
            (r#"{"column": "a", "value": 1}"#, None, "match_id"),
            ("[]", None, "match_id"),
            (r#"[{"column": "a"}]"#, None, "match_id[0].value"),
            (
                r#"[{"column": "a", "value": 1}, {"column": "a", "value": 2}]"#,
                None,
                "match_id[1].column",
            ),
            ("1e400", None, "match_id"),
            (too_many.as_str(), None, "match_id"),
            (long.as_str(), None, "match_id"),
            (
                r#""secret-subject""#,
                Some(MatchType::Composite),
                "match_type",
            ),
        ] {
            let errors = parse_lookup(&raw(text), ty).unwrap_err();
            assert_eq!(errors[0].field, field, "{text}: {errors:?}");
            assert!(
                errors.iter().all(|e| !e.message.contains("secret-subject")),
                "{errors:?}"
            );
        }
    }
}
