//! One JSON Lines line as an object whose values keep their exact JSON text (numbers keep
//! every digit they were written with), and how a match column finds its field: the field
//! of exactly its name, else the only one equal to it ignoring case.

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::lakefile::match_set::{Key, KeyKind, cast_number, cast_text};

/// A JSON object's fields in order: names as written, values as their exact JSON text
/// (numbers keep every digit). Parsing it validates the whole object.
pub struct JsonObject<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

/// Several fields differ from a column's name only in case, none is exactly it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ambiguous;

impl<'a> JsonObject<'a> {
    /// The object a line holds; None when the line is not one JSON object.
    pub fn parse(line: &'a [u8]) -> Option<Self> {
        serde_json::from_slice(line).ok()
    }

    /// Every field in order: its name as written (escapes decoded) and its value.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &'a RawValue)> + '_ {
        self.fields.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// The field named exactly `name` (the last one, as JSON readers keep it), else the
    /// one field whose name differs only in case; an error when several do.
    pub fn field(&self, name: &str) -> Result<Option<&'a RawValue>, Ambiguous> {
        if let Some((_, v)) = self.fields.iter().rev().find(|(k, _)| k == name) {
            return Ok(Some(*v));
        }
        let mut folded = self
            .fields
            .iter()
            .rev()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name));
        let Some((first, value)) = folded.next() else {
            return Ok(None);
        };
        match folded.all(|(k, _)| k == first) {
            true => Ok(Some(*value)),
            false => Err(Ambiguous),
        }
    }
}

impl<'de> Deserialize<'de> for JsonObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = JsonObject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::new();
                while let Some((Name(k), v)) = map.next_entry::<Name<'de>, &'de RawValue>()? {
                    fields.push((k, v));
                }
                Ok(JsonObject { fields })
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// A field name, borrowed from the line unless it holds escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// The value at a dotted path: at each segment the field of exactly that name, else the
/// only one equal to it ignoring case ([`JsonObject::field`]).
pub fn value_at<'a>(
    object: &JsonObject<'a>,
    path: &str,
) -> Result<Option<&'a RawValue>, Ambiguous> {
    let mut segments = path.split('.');
    let Some(mut value) = object.field(segments.next().unwrap_or_default())? else {
        return Ok(None);
    };
    for segment in segments {
        let Ok(inner) = serde_json::from_str::<JsonObject<'a>>(value.get()) else {
            return Ok(None);
        };
        match inner.field(segment)? {
            Some(v) => value = v,
            None => return Ok(None),
        }
    }
    Ok(Some(value))
}

/// A line's value read as `kind` (its column's declared type), as the JSON SerDe reads
/// it: a string as text cast to the type, a number by its exact text. None for null,
/// booleans, objects and arrays, and for what the type cannot read.
pub fn line_key(value: &RawValue, kind: Option<KeyKind>) -> Option<Key> {
    let text = value.get().trim();
    match text.as_bytes().first()? {
        b'"' => cast_text(&serde_json::from_str::<String>(text).ok()?, kind),
        b'-' | b'0'..=b'9' => cast_number(text, kind),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(line: &str, name: &str) -> Result<Option<String>, Ambiguous> {
        let object = JsonObject::parse(line.as_bytes()).unwrap();
        Ok(object.field(name)?.map(|v| v.get().to_owned()))
    }

    #[test]
    fn a_name_is_found_exactly_else_alone_ignoring_case_else_refused() {
        assert_eq!(field(r#"{"ID": 1, "id": 2}"#, "id"), Ok(Some("2".into())));
        assert_eq!(field(r#"{"ID": 1, "id": 2}"#, "Id"), Err(Ambiguous));
        assert_eq!(field(r#"{"ID": 1}"#, "id"), Ok(Some("1".into())));
        // A repeated name is one field (the last, as JSON readers keep it).
        assert_eq!(field(r#"{"Id": 1, "Id": 3}"#, "id"), Ok(Some("3".into())));
        assert_eq!(field(r#"{"\u0069d": 5}"#, "id"), Ok(Some("5".into())));
        assert_eq!(field(r#"{"x": 1}"#, "id"), Ok(None));
        let object = JsonObject::parse(br#"{"User": {"ID": 12345678901234567891}}"#).unwrap();
        assert_eq!(
            value_at(&object, "user.id").unwrap().map(RawValue::get),
            Some("12345678901234567891")
        );
        assert!(matches!(value_at(&object, "user.id.x"), Ok(None)));
    }

    proptest::proptest! {
        #[test]
        fn fields_read_from_the_text_agree_with_a_full_parse(
            fields in proptest::collection::btree_map("[a-c]{1,2}", proptest::prelude::any::<i64>(), 0..6),
            wanted in "[a-c]{1,2}",
        ) {
            let line = serde_json::to_vec(&fields).unwrap();
            let object = JsonObject::parse(&line).unwrap();
            let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
            let text = object.field(&wanted).unwrap().map(|v| v.get().to_owned());
            proptest::prop_assert_eq!(text, value.get(&wanted).map(|v| v.to_string()));
        }
    }
}
