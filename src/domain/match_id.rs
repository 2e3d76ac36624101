//! A data subject's match id: parsed once at the API edge (`domain::queue::parse_items`)
//! into a [`MatchId`], stored as `jsonb` in its canonical JSON, read back into the same
//! type by the job engine, and compared with columns by [`Scalar::cast`] (the typing
//! rules of `domain::key`). Nothing after the edge reads an id's JSON by hand.
//!
//! The keyed hash of a match id is the only trace of a subject in reports, audit events
//! and the queue's listings for roles that may not see ids. It is a protocol, not a
//! detail: reports of past jobs, audit trails and (soon) receipts are compared against it,
//! so its input must never change.
//!
//! The input is the match id's **canonical JSON text**: the value as Postgres `jsonb`
//! gives it back (the queue stores ids as `jsonb`), rendered by `serde_json` without
//! whitespace — strings with JSON escapes, integers as their digits, decimals as
//! `serde_json` prints the `f64` Postgres returned, and a composite
//! `[{"column": …, "value": …}]` with each part's keys in byte order (`column` before
//! `value`), parts in the order sent. The HMAC key is the server's `report_key` secret.
//! The test vectors below pin both the text and the hash.

use serde_json::{Number, Value};

use super::exact::{Exact, Form, parse_number};
use super::key::{Key, KeyKind, cast_number, cast_text};

text_enum! {
    /// Whether a match names one value for any match column, or one value per column.
    pub enum MatchType {
        Simple = "simple",
        Composite = "composite",
    }
}

/// One value of a match id: an exact text or an exact number (kept as its JSON number,
/// whose text is compared digit for digit, never through a float).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scalar {
    Text(String),
    Number(Number),
}

impl Scalar {
    /// A JSON string or number; None for anything else.
    pub fn from_json(v: &Value) -> Option<Scalar> {
        match v {
            Value::String(s) => Some(Scalar::Text(s.clone())),
            Value::Number(n) => Some(Scalar::Number(n.clone())),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Scalar::Text(s) => Value::String(s.clone()),
            Scalar::Number(n) => Value::Number(n.clone()),
        }
    }

    /// The id cast to a column of `kind` (None: compared as it is, a text as text and a
    /// number by its exact value); None when the cast fails (it equals no value there).
    pub fn cast(&self, kind: Option<KeyKind>) -> Option<Key> {
        match self {
            Scalar::Text(s) => cast_text(s, kind),
            Scalar::Number(n) => cast_number(&n.to_string(), kind),
        }
    }

    /// The exact value the id has as a decimal (a decimal text, or a number) whatever the
    /// column's scale; None for other texts.
    pub fn decimal_exact(&self) -> Option<Exact> {
        match self {
            Scalar::Text(s) => parse_number(s)
                .filter(|(_, form)| *form != Form::Scientific)
                .map(|(e, _)| e),
            Scalar::Number(n) => parse_number(&n.to_string()).map(|(e, _)| e),
        }
    }

    /// Whether the id can be cast to a column of the Glue type `ty`, as S3 Find and
    /// Forget casts a match id. Types ids are not cast to (dates, booleans, …) accept any
    /// id: the comparison decides.
    pub fn castable(&self, ty: &str) -> bool {
        KeyKind::of_hive(ty).is_none_or(|kind| self.cast(Some(kind)).is_some())
    }
}

/// One part of a composite match: a column (as the caller named it) and its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Part {
    pub column: String,
    pub value: Scalar,
}

/// A match id, as queued.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MatchId {
    /// One value, compared with every match column of the mappers it applies to.
    Simple(Scalar),
    /// One value per column, all in the same row, of its one mapper.
    Composite(Vec<Part>),
}

impl MatchId {
    pub fn match_type(&self) -> MatchType {
        match self {
            MatchId::Simple(_) => MatchType::Simple,
            MatchId::Composite(_) => MatchType::Composite,
        }
    }

    pub fn as_simple(&self) -> Option<&Scalar> {
        match self {
            MatchId::Simple(s) => Some(s),
            MatchId::Composite(_) => None,
        }
    }

    pub fn as_composite(&self) -> Option<&[Part]> {
        match self {
            MatchId::Composite(parts) => Some(parts),
            MatchId::Simple(_) => None,
        }
    }

    /// An id as stored (the queue's `jsonb`): a string, a number, or a list of
    /// `{column, value}` objects with nothing else. None for any other shape (the queue
    /// only stores parsed ids: another shape is corruption, and its reader fails loudly).
    pub fn from_stored(v: &Value) -> Option<MatchId> {
        let Value::Array(parts) = v else {
            return Scalar::from_json(v).map(MatchId::Simple);
        };
        parts
            .iter()
            .map(|p| {
                let obj = p.as_object().filter(|o| o.len() == 2)?;
                Some(Part {
                    column: obj.get("column")?.as_str()?.to_owned(),
                    value: Scalar::from_json(obj.get("value")?)?,
                })
            })
            .collect::<Option<Vec<Part>>>()
            .filter(|parts| !parts.is_empty())
            .map(MatchId::Composite)
    }

    /// The id's JSON, as stored and as shown to the roles that may see it.
    pub fn to_json(&self) -> Value {
        match self {
            MatchId::Simple(s) => s.to_json(),
            MatchId::Composite(parts) => Value::Array(
                parts
                    .iter()
                    .map(|p| serde_json::json!({"column": p.column, "value": p.value.to_json()}))
                    .collect(),
            ),
        }
    }
}

/// A stored match id of no shape the queue stores (corruption: its reader fails).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored match id of an unknown shape")]
pub struct UnknownShape;

impl TryFrom<Value> for MatchId {
    type Error = UnknownShape;
    fn try_from(v: Value) -> Result<Self, UnknownShape> {
        MatchId::from_stored(&v).ok_or(UnknownShape)
    }
}

/// HMAC-SHA256 of `match_id`'s canonical JSON text under `key`, as lowercase hex.
pub fn match_hash(key: &[u8], match_id: &MatchId) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(canonical_text(match_id).as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The text [`match_hash`] is computed over: the id's JSON without whitespace, object
/// keys in byte order.
pub fn canonical_text(match_id: &MatchId) -> String {
    match_id.to_json().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &[u8] = b"lethe-match-hash-test-vector-key";

    fn id(v: Value) -> MatchId {
        MatchId::from_stored(&v).unwrap()
    }

    #[test]
    fn stored_ids_of_another_shape_are_refused() {
        for bad in [
            json!(null),
            json!(true),
            json!({"column": "a", "value": 1}),
            json!([]),
            json!(["a"]),
            json!([{"column": "a"}]),
            json!([{"column": "a", "value": null}]),
            json!([{"column": 1, "value": 1}]),
            json!([{"column": "a", "value": 1, "extra": 2}]),
        ] {
            assert_eq!(MatchId::from_stored(&bad), None, "{bad}");
        }
        let composite = id(json!([{"value": 7, "column": "ID"}]));
        assert_eq!(composite.match_type(), MatchType::Composite);
        assert_eq!(
            composite.as_composite().unwrap()[0],
            Part {
                column: "ID".into(),
                value: Scalar::Number(7.into())
            }
        );
        assert_eq!(id(json!("x")).as_simple(), Some(&Scalar::Text("x".into())));
    }

    #[test]
    fn queued_values_are_castable_as_s3_find_and_forget_casts_them() {
        assert!(id_castable(&json!("abc"), "string") && id_castable(&json!(7.5), "varchar(10)"));
        assert!(id_castable(&json!("0042"), "bigint") && id_castable(&json!(42), "int"));
        assert!(!id_castable(&json!("abc"), "int") && !id_castable(&json!(4.5), "int"));
        assert!(
            !id_castable(&json!("4.0"), "int"),
            "CAST('4.0' AS int) fails"
        );
        assert!(
            !id_castable(&json!("1e3"), "bigint"),
            "CAST('1e3' AS bigint) fails"
        );
        assert!(
            id_castable(&json!("123.450"), "decimal(6,3)")
                && id_castable(&json!(12.5), "decimal(4,2)")
        );
        assert!(
            !id_castable(&json!("123.4501"), "decimal(6,3)")
                && !id_castable(&json!(1.234), "decimal(4,2)")
        );
        assert!(id_castable(
            &json!("12345678901234567890123"),
            "decimal(38,0)"
        ));
        assert!(!id_castable(&json!("12345678901234567890123"), "bigint"));
        assert!(id_castable(&json!("1e3"), "double") && !id_castable(&json!("x"), "double"));
        assert!(id_castable(&json!(0.1), "float") && !id_castable(&json!("1e999"), "float"));
        assert!(
            id_castable(&json!("2024-01-01"), "date"),
            "types ids are not cast to accept"
        );
    }

    fn id_castable(v: &Value, ty: &str) -> bool {
        Scalar::from_json(v).unwrap().castable(ty)
    }

    /// The typing rules, through the type: a text id meets an integer column only when it
    /// is an integer text; a number keeps its exact digits.
    #[test]
    fn scalars_cast_as_the_typing_rules_say() {
        let text = |s: &str| Scalar::Text(s.into());
        let number = |v: Value| Scalar::from_json(&v).unwrap();
        assert!(text("0042").castable("bigint"));
        assert!(!text("4.0").castable("bigint"));
        assert!(!text("abc").castable("int"));
        assert!(text("abc").castable("string"));
        assert!(number(json!(12.5)).castable("decimal(10,1)"));
        assert!(!number(json!(12.55)).castable("decimal(10,1)"));
        assert_eq!(
            text("0042").cast(Some(KeyKind::Int)),
            number(json!(42)).cast(Some(KeyKind::Int))
        );
        assert_ne!(
            number(json!(18_446_744_073_709_551_615_u64)).cast(None),
            number(json!(18_446_744_073_709_551_614_u64)).cast(None)
        );
        assert_eq!(
            number(json!(7)).cast(Some(KeyKind::Text)),
            Some(Key::Str("7".into()))
        );
    }

    /// Text and hash of each kind of id. Computed independently with Python's
    /// `hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()`. These must never change:
    /// a change orphans every report and audit event written before it.
    #[test]
    fn test_vectors_never_change() {
        let vectors = [
            (
                json!("jane@example.com"),
                r#""jane@example.com""#,
                VECTORS[0],
            ),
            (json!(4711), "4711", VECTORS[1]),
            (
                json!(-9_007_199_254_740_993_i64),
                "-9007199254740993",
                VECTORS[2],
            ),
            (
                json!(18_446_744_073_709_551_615_u64),
                "18446744073709551615",
                VECTORS[3],
            ),
            (json!(12.5), "12.5", VECTORS[4]),
            (
                json!("Zoë \"Q\" \u{1}"),
                r#""Zoë \"Q\" \u0001""#,
                VECTORS[5],
            ),
            (
                json!([{"value": 4712, "column": "customer.id"}, {"column": "email", "value": "joe@example.com"}]),
                r#"[{"column":"customer.id","value":4712},{"column":"email","value":"joe@example.com"}]"#,
                VECTORS[6],
            ),
        ];
        for (value, text, hash) in vectors {
            let value = MatchId::from_stored(&value).unwrap();
            assert_eq!(canonical_text(&value), text);
            assert_eq!(match_hash(KEY, &value), hash, "{text}");
        }
        // The key matters.
        assert_ne!(match_hash(b"another key", &id(json!(4711))), VECTORS[1]);
    }

    /// What the queue stores (`jsonb`) and gives back hashes as what was sent: the
    /// canonical text survives the round trip, for every kind of id above.
    #[sqlx::test]
    async fn the_canonical_text_survives_postgres_jsonb(db: sqlx::PgPool) {
        for value in [
            json!("jane@example.com"),
            json!(4711),
            json!(-9_007_199_254_740_993_i64),
            json!(18_446_744_073_709_551_615_u64),
            json!(12.5),
            json!("Zoë \"Q\" \u{1}"),
            json!([{"column": "customer.id", "value": 4712}, {"column": "email", "value": "joe@example.com"}]),
        ] {
            let back: serde_json::Value = sqlx::query_scalar("select $1::jsonb")
                .bind(id(value.clone()).to_json())
                .fetch_one(&db)
                .await
                .unwrap();
            let (back, value) = (id(back), id(value));
            assert_eq!(canonical_text(&back), canonical_text(&value));
            assert_eq!(match_hash(KEY, &back), match_hash(KEY, &value));
        }
    }

    const VECTORS: [&str; 7] = [
        "ce08bf7511a2c374a034ff5b0ede00fab1058e9bda95cbe9c14f5d2b9879adeb",
        "92a57a6ad84e7c5b560805e83b531963d7a12596694875d90a66fda07e42f108",
        "4065403eb633aa58619813f92afa76f90c05f1a567ac5811020832b615d6a94b",
        "72b45e213d1a34146835220ce19e8486ef4efae7456a0556d6d6050890be555f",
        "6a6d985a32c6c468fc5f6eecf1a7e4993071700118648757166b614e3b0df6e9",
        "5125a7f98ce4c08c502f6a055d2f1aef8f1d024539224ce73347b7ac836c6225",
        "3b6a7f1967d8716f47de26d6df930debe7637c1204dea825f7b8213ed7b6d7d3",
    ];
}
