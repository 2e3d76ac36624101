//! Offline verification of receipts (`lethe receipt verify`): each signature against a
//! JWKS, then the chain — ordered by `seq`, each `seq` one more than the one before and
//! each `prev` the SHA-256 of the one before — naming the first broken link.

use super::jws::{self, sha256_hex};
use super::key::Jwks;
use super::payload::Payload;

/// A receipt as read, with where it was read from (`file:line`).
#[derive(Debug, Clone)]
pub struct Input {
    pub at: String,
    pub compact: String,
}

/// What a set of receipts that verified covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub count: usize,
    pub first_seq: i64,
    pub last_seq: i64,
    /// The keys that signed them.
    pub kids: Vec<String>,
}

/// The first thing wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("{at}: {why}")]
    Signature { at: String, why: String },
    #[error("{at}: the payload is not a receipt: {why}")]
    Payload { at: String, why: String },
    #[error("{at}: seq {seq} appears twice (also {other})")]
    Duplicate { at: String, seq: i64, other: String },
    #[error("{at}: seq {seq} follows seq {before}: {missing} missing")]
    Gap {
        at: String,
        seq: i64,
        before: i64,
        missing: String,
    },
    #[error("{at}: seq {seq}'s prev is not the SHA-256 of seq {before} ({expected})")]
    Prev {
        at: String,
        seq: i64,
        before: i64,
        expected: String,
    },
    #[error("no receipt to verify")]
    Empty,
}

/// Verifies every receipt's signature, then the chain they form, ordered by `seq`.
pub fn verify(inputs: &[Input], keys: &Jwks) -> Result<Verified, Broken> {
    let mut receipts: Vec<(&Input, Payload, String)> = Vec::with_capacity(inputs.len());
    for input in inputs {
        let payload = jws::verify(&input.compact, keys).map_err(|e| Broken::Signature {
            at: input.at.clone(),
            why: e.to_string(),
        })?;
        let payload: Payload = serde_json::from_slice(&payload).map_err(|e| Broken::Payload {
            at: input.at.clone(),
            why: e.to_string(),
        })?;
        let kid = jws::parse(&input.compact)
            .map(|p| p.header.kid)
            .unwrap_or_default();
        receipts.push((input, payload, kid));
    }
    receipts.sort_by_key(|(_, p, _)| p.seq);
    let (Some(first), Some(last)) = (receipts.first(), receipts.last()) else {
        return Err(Broken::Empty);
    };
    let (first_seq, last_seq) = (first.1.seq, last.1.seq);
    for pair in receipts.windows(2) {
        let [(before_in, before, _), (input, payload, _)] = pair else {
            continue;
        };
        link(before_in, before, input, payload)?;
    }
    if first_seq == 1 && first.1.prev.is_some() {
        return Err(Broken::Prev {
            at: first.0.at.clone(),
            seq: 1,
            before: 0,
            expected: "none: the first receipt has no prev".to_owned(),
        });
    }
    let mut kids: Vec<String> = receipts.iter().map(|(_, _, k)| k.clone()).collect();
    kids.sort();
    kids.dedup();
    Ok(Verified {
        count: receipts.len(),
        first_seq,
        last_seq,
        kids,
    })
}

/// Checks that `payload` directly follows `before`.
fn link(
    before_in: &Input,
    before: &Payload,
    input: &Input,
    payload: &Payload,
) -> Result<(), Broken> {
    let at = input.at.clone();
    let seq = payload.seq;
    if seq == before.seq {
        return Err(Broken::Duplicate {
            at,
            seq,
            other: before_in.at.clone(),
        });
    }
    if seq != before.seq + 1 {
        let missing = if seq == before.seq + 2 {
            format!("seq {} is", before.seq + 1)
        } else {
            format!("seq {} to {} are", before.seq + 1, seq - 1)
        };
        return Err(Broken::Gap {
            at,
            seq,
            before: before.seq,
            missing,
        });
    }
    let expected = sha256_hex(&before_in.compact);
    if payload.prev.as_deref() != Some(expected.as_str()) {
        return Err(Broken::Prev {
            at,
            seq,
            before: before.seq,
            expected,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::key::{LocalKey, Signer};
    use crate::receipt::payload::VERSION;

    fn payload(seq: i64, prev: Option<String>) -> Payload {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-07T06:00:00Z")
            .unwrap()
            .to_utc();
        Payload {
            v: VERSION,
            receipt_id: uuid::Uuid::now_v7(),
            seq,
            prev,
            issued_at: at,
            issuer: "test".into(),
            lethe_version: "0.1.0".into(),
            job_id: uuid::Uuid::nil(),
            item_id: uuid::Uuid::now_v7(),
            match_hash: format!("{seq:064x}"),
            reference: Some(format!("T-{seq}")),
            requested_at: at,
            deadline: at,
            status: "erased".into(),
            reason: None,
            searched: vec![],
            changed: vec![],
            verified: None,
            deleted: vec![],
            residue: vec![],
        }
    }

    /// A chain of `n` receipts signed by `key`, as `lethe receipt verify` reads them.
    async fn chain(key: &LocalKey, n: i64) -> Vec<Input> {
        let mut out: Vec<Input> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map(|i| sha256_hex(&i.compact));
            let body = serde_json::to_vec(&payload(seq, prev)).unwrap();
            out.push(Input {
                at: format!("receipts.jsonl:{seq}"),
                compact: jws::sign(key, &body).await.unwrap(),
            });
        }
        out
    }

    #[tokio::test]
    async fn a_whole_chain_verifies_in_any_order() {
        let key = LocalKey::generate().unwrap();
        let keys = Jwks {
            keys: vec![key.jwk().clone()],
        };
        let mut inputs = chain(&key, 5).await;
        inputs.reverse();
        let ok = verify(&inputs, &keys).unwrap();
        assert_eq!((ok.count, ok.first_seq, ok.last_seq), (5, 1, 5));
        assert_eq!(ok.kids, [key.jwk().kid.clone()]);
        // A tail of the chain verifies on its own (its first prev is not checkable).
        assert_eq!(verify(&inputs[..2], &keys).unwrap().first_seq, 4);
        assert_eq!(verify(&[], &keys), Err(Broken::Empty));
    }

    #[tokio::test]
    async fn a_removed_receipt_is_named_at_the_seq_after_the_gap() {
        let key = LocalKey::generate().unwrap();
        let keys = Jwks {
            keys: vec![key.jwk().clone()],
        };
        let mut inputs = chain(&key, 5).await;
        inputs.remove(2);
        let err = verify(&inputs, &keys).unwrap_err();
        assert_eq!(
            err,
            Broken::Gap {
                at: "receipts.jsonl:4".into(),
                seq: 4,
                before: 2,
                missing: "seq 3 is".into(),
            }
        );
        assert_eq!(
            err.to_string(),
            "receipts.jsonl:4: seq 4 follows seq 2: seq 3 is missing"
        );
    }

    #[tokio::test]
    async fn a_changed_byte_is_named_by_its_place_and_a_replaced_receipt_by_the_next_link() {
        let key = LocalKey::generate().unwrap();
        let keys = Jwks {
            keys: vec![key.jwk().clone()],
        };
        let inputs = chain(&key, 4).await;
        // One byte of receipt 3's payload changed: its signature fails.
        let mut changed = inputs.clone();
        let mut bytes = changed[2].compact.clone().into_bytes();
        let dot = changed[2].compact.find('.').unwrap();
        bytes[dot + 5] = if bytes[dot + 5] == b'A' { b'B' } else { b'A' };
        changed[2].compact = String::from_utf8(bytes).unwrap();
        let err = verify(&changed, &keys).unwrap_err();
        assert!(
            matches!(&err, Broken::Signature { at, .. } if at == "receipts.jsonl:3"),
            "{err}"
        );
        // Receipt 3 re-signed by its holder of the key with other content: it verifies,
        // but receipt 4's prev no longer matches.
        let mut replaced = inputs.clone();
        let mut other = payload(3, Some(sha256_hex(&inputs[1].compact)));
        other.status = "not_found".into();
        replaced[2].compact = jws::sign(&key, &serde_json::to_vec(&other).unwrap())
            .await
            .unwrap();
        let err = verify(&replaced, &keys).unwrap_err();
        assert!(
            matches!(&err, Broken::Prev { at, seq: 4, before: 3, .. } if at == "receipts.jsonl:4"),
            "{err}"
        );
        // Twice the same seq.
        let mut twice = inputs.clone();
        twice.push(inputs[1].clone());
        assert!(matches!(
            verify(&twice, &keys).unwrap_err(),
            Broken::Duplicate { seq: 2, .. }
        ));
    }
}
