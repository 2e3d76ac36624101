//! Match ids sent as JSON numbers are kept as serde_json keeps them (a 64-bit integer or
//! an `f64`), so the queue refuses a number whose exact value that would change:
//! `12345678901234567890123` would become `1.2345678901234568e22` and match its
//! neighbours. Such ids must be sent as strings, which compare exactly. The check reads
//! each id's text as sent, before any number in it has been rounded.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::queue::{MAX_MATCH_ID_VALUES, holds_at_most};
use super::validation::{Errors, FieldError};
use crate::domain::exact::kept_exactly;

/// What the caller is told (never the id itself).
pub const INEXACT_NUMBER: &str = "is a number that cannot be kept exactly (more than 17 significant digits, or beyond ±2^64 with a fraction): send the id as a string";

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow)]
    value: Option<&'a RawValue>,
}

/// Refuses every match id (or composite value) of an add request (`ids`, each the JSON
/// text sent, in request order) written as a number that serde_json's `Value` would not
/// keep exactly, naming its field (`matches[3].match_id`, `matches[3].match_id[1].value`).
/// Ids of another shape, or too large to be valid, are left to the other checks.
pub fn check_exact_numbers<'a>(
    ids: impl IntoIterator<Item = &'a RawValue>,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Errors::new();
    for (i, id) in ids.into_iter().enumerate() {
        check_exact(id, &format!("matches[{i}].match_id"), &mut errors);
    }
    errors.finish(())
}

/// [`check_exact_numbers`] of one id, named `field` (a lookup's `match_id`).
pub fn check_exact_number(id: &RawValue, field: &str) -> Result<(), Vec<FieldError>> {
    let mut errors = Errors::new();
    check_exact(id, field, &mut errors);
    errors.finish(())
}

fn check_exact(id: &RawValue, field: &str, errors: &mut Errors) {
    if !holds_at_most(id.get(), MAX_MATCH_ID_VALUES) {
        return;
    }
    match serde_json::from_str::<Vec<Part>>(id.get()) {
        Ok(parts) => {
            for (j, part) in parts.iter().enumerate() {
                if part.value.is_some_and(|v| !kept_exactly(v.get())) {
                    errors.add(format!("{field}[{j}].value"), INEXACT_NUMBER);
                }
            }
        }
        Err(_) if !kept_exactly(id.get()) => errors.add(field, INEXACT_NUMBER),
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields(body: &str) -> Vec<String> {
        #[derive(Deserialize)]
        struct Item {
            match_id: Box<RawValue>,
        }
        #[derive(Deserialize)]
        struct Body {
            matches: Vec<Item>,
        }
        let body: Body = serde_json::from_str(body).unwrap();
        check_exact_numbers(body.matches.iter().map(|m| &*m.match_id))
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn numbers_serde_json_keeps_exactly_are_accepted() {
        for text in [
            "42",
            "-9223372036854775808",
            "18446744073709551615",
            "0.1",
            "4.0",
            "1e3",
            "0.30000000000000004",
            "1e20",
            "\"12345678901234567890123\"",
        ] {
            assert!(kept_exactly(text), "{text}");
        }
    }

    #[test]
    fn numbers_it_would_round_are_refused() {
        for text in [
            "18446744073709551616",
            "12345678901234567890123",
            "0.1000000000000000055511151231257827",
            "1234567890.12345678901",
            "-18446744073709551617",
        ] {
            assert!(!kept_exactly(text), "{text}");
        }
    }

    #[test]
    fn a_lookups_inexact_id_or_composite_value_is_named_by_its_field() {
        let raw = |text: &str| RawValue::from_string(text.to_owned()).unwrap();
        let field = |text: &str| {
            let errors = check_exact_number(&raw(text), "match_id").unwrap_err();
            errors.into_iter().map(|e| e.field).collect::<Vec<_>>()
        };
        assert_eq!(field("12345678901234567890123"), ["match_id"]);
        assert_eq!(
            field(r#"[{"column": "a", "value": 1}, {"column": "b", "value": 1e400}]"#),
            ["match_id[1].value"]
        );
        assert!(check_exact_number(&raw("42"), "match_id").is_ok());
    }

    #[test]
    fn each_inexact_id_or_composite_value_is_named_by_its_field() {
        let body = r#"{"matches": [
            {"match_id": 12345678901234567890123},
            {"match_id": "12345678901234567890123"},
            {"match_id": [{"column": "a", "value": 1}, {"column": "b", "value": 0.12345678901234567891}]},
            {"match_id": 7},
            {"match_id": {"value": 12345678901234567890123}}
        ]}"#;
        assert_eq!(
            fields(body),
            ["matches[0].match_id", "matches[2].match_id[1].value"]
        );
    }

    proptest! {
        #[test]
        fn every_64_bit_integer_and_every_short_decimal_is_kept_exactly(
            i in any::<i64>(),
            u in any::<u64>(),
            mantissa in -999_999_999_999_999i64..=999_999_999_999_999,
            exponent in -22i32..=22,
        ) {
            prop_assert!(kept_exactly(&i.to_string()) && kept_exactly(&u.to_string()));
            // Decimals of 15 significant digits: an f64 tells every two of them apart.
            let text = format!("{mantissa}e{exponent}");
            prop_assert!(kept_exactly(&text));
        }
    }
}
