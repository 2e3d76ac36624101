//! The keyed hash of a match id: the only trace of a subject in reports, audit events and
//! the queue's listings for roles that may not see ids. It is a protocol, not a detail:
//! reports of past jobs, audit trails and (soon) receipts are compared against it, so its
//! input must never change.
//!
//! The input is the match id's **canonical JSON text**: the value as Postgres `jsonb`
//! gives it back (the queue stores ids as `jsonb`), rendered by `serde_json` without
//! whitespace — strings with JSON escapes, integers as their digits, decimals as
//! `serde_json` prints the `f64` Postgres returned, and a composite
//! `[{"column": …, "value": …}]` with each part's keys in byte order (`column` before
//! `value`), parts in the order sent. The HMAC key is the server's `report_key` secret.
//! The test vectors below pin both the text and the hash.

/// HMAC-SHA256 of `match_id`'s canonical JSON text under `key`, as lowercase hex.
pub fn match_hash(key: &[u8], match_id: &serde_json::Value) -> String {
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

/// The text [`match_hash`] is computed over.
pub fn canonical_text(match_id: &serde_json::Value) -> String {
    match_id.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &[u8] = b"lethe-match-hash-test-vector-key";

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
            assert_eq!(canonical_text(&value), text);
            assert_eq!(match_hash(KEY, &value), hash, "{text}");
        }
        // The key matters.
        assert_ne!(match_hash(b"another key", &json!(4711)), VECTORS[1]);
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
                .bind(&value)
                .fetch_one(&db)
                .await
                .unwrap();
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
