//! Extractors that turn every malformed input into our problem+json error:
//! [`ApiJson`] (body), [`ApiQuery`] (query string). A body is deserialised straight into
//! its typed request, never through a `serde_json::Value` of the whole document, so what
//! a request costs is bounded by its body and the types it is read into.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use std::fmt::Write as _;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use super::error::ApiError;

/// A JSON body. Syntax errors → 400; unknown fields, wrong types and missing fields →
/// 422 naming the field (`matches[3].deadline`); wrong content type → 415; too large → 413.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The bytes of a JSON body: wrong content type → 415; too large → 413.
async fn json_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let is_json = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        })
        .unwrap_or(false);
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    Bytes::from_request(req, state)
        .await
        .map_err(|rejection: BytesRejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("could not read the request body".to_owned())
            }
        })
}

/// Parses JSON straight into `T`, with a path to the failing field: memory is the body
/// and what `T` holds, never a tree of the whole document. A first pass builds nothing:
/// it checks the syntax (400) and refuses strings or keys holding NUL characters (422,
/// Postgres text cannot store them); the second deserialises.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed = |e: serde_json::Error| ApiError::BadRequest(format!("malformed JSON: {e}"));
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let (mut path, mut nul) = (String::new(), None);
    NulScan {
        path: &mut path,
        found: &mut nul,
    }
    .deserialize(&mut de)
    .map_err(malformed)?;
    de.end().map_err(malformed)?;
    if let Some(path) = nul {
        return Err(ApiError::field(path, "must not contain NUL characters"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." { String::new() } else { path };
        ApiError::field(field, data_message(&err.into_inner()))
    })
}

/// Walks a JSON value without keeping it, noting the path (`matches[3].reference`) of the
/// first string or key that holds a NUL character. Memory: the current path.
struct NulScan<'s> {
    path: &'s mut String,
    found: &'s mut Option<String>,
}

impl NulScan<'_> {
    fn check(&mut self, text: &str) {
        if self.found.is_none() && text.contains('\0') {
            *self.found = Some(self.path.clone());
        }
    }
    fn child(&mut self) -> NulScan<'_> {
        NulScan {
            path: &mut *self.path,
            found: &mut *self.found,
        }
    }
}

impl<'de> DeserializeSeed<'de> for NulScan<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NulScan<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(mut self, text: &str) -> Result<(), E> {
        self.check(text);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let base = self.path.len();
        for i in 0usize.. {
            let _ = write!(self.path, "[{i}]");
            let more = seq.next_element_seed(self.child())?;
            self.path.truncate(base);
            if more.is_none() {
                break;
            }
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let base = self.path.len();
        while let Some(key) = map.next_key::<String>()? {
            if base > 0 {
                self.path.push('.');
            }
            self.path.push_str(&key);
            self.check(&key);
            map.next_value_seed(self.child())?;
            self.path.truncate(base);
        }
        Ok(())
    }
}

/// Deserialises a list of at most `max` items; one more fails the list (not an item) with
/// `message`, before that item is read. Memory stays bounded whatever the body holds.
pub fn at_most<'de, D, T>(deserializer: D, max: usize, message: &str) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct AtMost<'m, T> {
        max: usize,
        message: &'m str,
        item: PhantomData<T>,
    }
    impl<'de, T: Deserialize<'de>> Visitor<'de> for AtMost<'_, T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {} items", self.max)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while items.len() < self.max {
                match seq.next_element()? {
                    Some(item) => items.push(item),
                    None => return Ok(items),
                }
            }
            match seq.next_element::<IgnoredAny>()? {
                Some(_) => Err(serde::de::Error::custom(self.message)),
                None => Ok(items),
            }
        }
    }
    deserializer.deserialize_seq(AtMost {
        max,
        message,
        item: PhantomData,
    })
}

/// serde's message without its trailing position, which means nothing to a caller, and
/// without the value sent ([`without_value`]).
fn data_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => without_value(&text[..i]),
        None => without_value(&text),
    }
}

/// Longest message a problem detail repeats from serde, in bytes (a field name can be
/// long); a longer one is cut at a character boundary and ends with `…`.
const MAX_SERDE_MESSAGE_BYTES: usize = 300;

/// A serde message without the value it quotes, which may be a subject's id: keeps the
/// kind sent and what was expected (`invalid type: string, expected u64`). serde's
/// messages quote a value as `string "…"` (escaped, so a quote inside is `\"`),
/// `integer `…``, `floating point `…``, `boolean `…``, `character `…`` and
/// `unknown variant `…``; the expectation after them is the type's, never the caller's.
/// Field names (`unknown field `x``, `missing field `x``) are kept. Messages of other shapes
/// are kept, cut to [`MAX_SERDE_MESSAGE_BYTES`].
pub fn without_value(message: &str) -> String {
    let stripped = ["invalid type: ", "invalid value: "]
        .into_iter()
        .find_map(|prefix| {
            let rest = message.strip_prefix(prefix)?;
            let (kind, after) = unquote_value(rest)?;
            Some(format!("{prefix}{kind}{after}"))
        })
        .or_else(|| {
            let rest = message.strip_prefix("unknown variant `")?;
            let end = rest.rfind("`, expected ")?;
            Some(format!("unknown variant{}", &rest[end + 1..]))
        });
    let text = stripped.unwrap_or_else(|| message.to_owned());
    if text.len() <= MAX_SERDE_MESSAGE_BYTES {
        return text;
    }
    let mut cut = MAX_SERDE_MESSAGE_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// Splits `string "…", expected X` (or `integer `…`, expected X`, …) into the kind
/// (`string`) and what follows the value (`, expected X`). `None` when `rest` quotes no
/// value.
fn unquote_value(rest: &str) -> Option<(&str, &str)> {
    if let Some(quoted) = rest.strip_prefix("string \"") {
        // Debug-escaped: `\\` and `\"` are escapes, the first bare `"` closes.
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => return Some(("string", &quoted[i + 1..])),
                _ => {}
            }
        }
        // No closing quote: nothing after the value can be told from it.
        return Some(("string", ""));
    }
    ["integer", "floating point", "boolean", "character"]
        .into_iter()
        .find_map(|kind| {
            let value = rest.strip_prefix(kind)?.strip_prefix(" `")?;
            // The expectation is ours; the last "`, expected " is where the value ends.
            match value.rfind("`, expected ") {
                Some(end) => Some((kind, &value[end + 1..])),
                None => Some((kind, "")),
            }
        })
}

/// A query string. Unknown parameters and bad values → 400 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if form_urlencoded::parse(query.as_bytes())
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::BadRequest(
                "invalid query string: NUL characters are not allowed".to_owned(),
            ));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|err| {
                let message = without_value(&err.into_inner().to_string());
                ApiError::BadRequest(format!("invalid query string: {message}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        id: Box<RawValue>,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "three")]
        items: Vec<Item>,
    }

    fn three<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Item>, D::Error> {
        at_most(d, 3, "at most 3 items")
    }

    fn problem(body: &str) -> (String, String) {
        match parse_json::<Body>(body.as_bytes()) {
            Err(ApiError::Validation(errors)) => {
                (errors[0].field.clone(), errors[0].message.clone())
            }
            Err(ApiError::BadRequest(message)) => ("400".to_owned(), message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_body_is_read_into_its_type_keeping_raw_values_exactly() {
        let body = r#"{"items": [{"id": 12345678901234567890123.0}, {"id": [{"v": 1e300}], "tags": ["a"]}]}"#;
        let parsed = parse_json::<Body>(body.as_bytes()).unwrap();
        assert_eq!(parsed.items[0].id.get(), "12345678901234567890123.0");
        assert_eq!(parsed.items[1].id.get(), r#"[{"v": 1e300}]"#);
        assert_eq!(parsed.items[1].tags, ["a"]);
    }

    #[test]
    fn errors_name_their_field_and_syntax_comes_first() {
        assert_eq!(
            problem(r#"{"items": [{"id": 1}, {"id": 2, "tags": [3]}]}"#),
            (
                "items[1].tags[0]".to_owned(),
                "invalid type: integer, expected a string".to_owned()
            )
        );
        assert_eq!(problem(r#"{"items": [{"id": 1, "x": 2}]}"#).0, "items[0].x");
        assert_eq!(problem(r#"{"items": 5}"#).0, "items");
        // A data error before a syntax error is still a syntax error (400).
        assert_eq!(problem(r#"{"items": [0, }"#).0, "400");
        assert_eq!(problem(r#"{"items": []} x"#).0, "400");
        // One item beyond the limit fails the list, before that item is read.
        assert_eq!(
            problem(r#"{"items": [{"id": 1}, {"id": 2}, {"id": 3}, "not an item"]}"#),
            ("items".to_owned(), "at most 3 items".to_owned())
        );
    }

    #[test]
    fn nul_characters_are_refused_in_strings_and_keys_wherever_they_are() {
        let nul = |body: &str| problem(body);
        let message = "must not contain NUL characters".to_owned();
        assert_eq!(
            nul(r#"{"items": [{"id": 1}, {"id": {"a": ["x", "y\u0000"]}}]}"#),
            ("items[1].id.a[1]".to_owned(), message.clone())
        );
        assert_eq!(
            nul(r#"{"items": [{"id": 1, "tags": ["ok"]}], "k\u0000": 1}"#),
            ("k\0".to_owned(), message.clone())
        );
        // Found before the types are looked at: a NUL in an unknown field is named too.
        assert_eq!(
            nul(r#"{"items": [{"other": "\u0000"}]}"#),
            ("items[0].other".to_owned(), message)
        );
        // An escaped backslash before "u0000" is no NUL.
        assert!(parse_json::<Body>(br#"{"items": [{"id": "\\u0000"}]}"#).is_ok());
    }

    #[test]
    fn serde_messages_keep_the_kind_and_the_expectation_but_not_the_value() {
        let cases = [
            (
                r#"invalid type: string "alice@example.com", expected u64"#,
                "invalid type: string, expected u64",
            ),
            (
                r#"invalid value: string "x\", expected \"y", expected a date"#,
                "invalid value: string, expected a date",
            ),
            (
                "invalid type: integer `123456789`, expected a string",
                "invalid type: integer, expected a string",
            ),
            (
                "invalid value: integer `-5`, expected u32",
                "invalid value: integer, expected u32",
            ),
            (
                "invalid type: floating point `1.5`, expected i64",
                "invalid type: floating point, expected i64",
            ),
            (
                "invalid type: boolean `true`, expected a string",
                "invalid type: boolean, expected a string",
            ),
            (
                "invalid value: character ```, expected a digit",
                "invalid value: character, expected a digit",
            ),
            (
                "unknown variant `alice@example.com`, expected one of `simple`, `composite`",
                "unknown variant, expected one of `simple`, `composite`",
            ),
            (
                "unknown variant `a`, expected `b`, expected one of `simple`",
                "unknown variant, expected one of `simple`",
            ),
            // Field names are the caller's schema, not its data: kept.
            (
                "unknown field `colour`, expected `column` or `value`",
                "unknown field `colour`, expected `column` or `value`",
            ),
            ("missing field `matches`", "missing field `matches`"),
            // Kinds without a value are kept as they are.
            (
                "invalid type: map, expected a string",
                "invalid type: map, expected a string",
            ),
            (
                "invalid length 2, expected a tuple of 3",
                "invalid length 2, expected a tuple of 3",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(without_value(message), expected, "{message}");
        }
    }

    #[test]
    fn a_very_long_value_is_dropped_and_a_very_long_message_is_cut() {
        let id = "alice@example.com".repeat(100_000);
        let message = format!("invalid type: string {id:?}, expected u64");
        assert_eq!(
            without_value(&message),
            "invalid type: string, expected u64"
        );
        let unterminated = format!("invalid value: string \"{id}");
        assert_eq!(without_value(&unterminated), "invalid value: string");
        // A long field name is kept only up to the cap, cut on a character boundary.
        let field = "é".repeat(1000);
        let cut = without_value(&format!("unknown field `{field}`, expected `a`"));
        assert!(
            cut.len() <= MAX_SERDE_MESSAGE_BYTES + '…'.len_utf8(),
            "{}",
            cut.len()
        );
        assert!(cut.ends_with('…') && cut.starts_with("unknown field `éé"));
    }

    #[test]
    fn a_body_of_the_wrong_type_is_refused_without_echoing_the_value() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Typed {
            count: u64,
            kind: Kind,
        }
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            Simple,
        }
        for body in [
            r#"{"count": "alice@example.com", "kind": "simple"}"#,
            r#"{"count": 1, "kind": "alice@example.com"}"#,
            r#"{"count": -42424242, "kind": "simple"}"#,
        ] {
            let Err(ApiError::Validation(errors)) = parse_json::<Typed>(body.as_bytes()) else {
                panic!("{body} was accepted");
            };
            let message = &errors[0].message;
            assert!(
                !message.contains("alice") && !message.contains("42424242"),
                "{message}"
            );
            assert!(message.contains("expected"), "{message}");
        }
    }
}
