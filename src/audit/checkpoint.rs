//! Audit checkpoints: a compact JWS (`ES256`, signed with the receipt key, header `typ`
//! [`TYP`]) over the chain's head at a moment: `{"v":1,"seq":…,"hash":"<hex>","rows":…,
//! "at":"<RFC 3339>","issuer":"…"}`. Whoever keeps one holds the chain to it: the row at
//! `seq` must still have that hash, so a later rewrite of any row it covers shows, even
//! one that recomputed every hash after it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::chain::{Claim, hex};
use crate::receipt::jws::{self, JwsError};
use crate::receipt::{Jwks, KeyError, Signer};

/// The header's `typ`: a checkpoint is never taken for a receipt, nor a receipt for one.
pub const TYP: &str = "lethe-audit-checkpoint+jws";

/// The payload version.
pub const VERSION: u32 = 1;

/// What a checkpoint states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub v: u32,
    /// The head's seq (0: an empty chain).
    pub seq: i64,
    /// The head's hash, lowercase hex (64 zeros: an empty chain).
    pub hash: String,
    /// Audit rows counted with the head.
    pub rows: i64,
    pub at: DateTime<Utc>,
    /// The deployment (`LETHE_DEPLOYMENT_NAME`).
    pub issuer: String,
}

/// Why a checkpoint does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Jws(#[from] JwsError),
    #[error("not an audit checkpoint (typ {0:?})")]
    Typ(Option<String>),
    #[error("not a checkpoint payload: {0}")]
    Payload(String),
}

impl Checkpoint {
    /// A checkpoint, now, of the head at `seq` with `hash` (bytes) and `rows` counted.
    pub fn new(seq: i64, hash: &[u8], rows: i64, issuer: &str) -> Self {
        Self {
            v: VERSION,
            seq,
            hash: hex(hash),
            rows,
            at: Utc::now(),
            issuer: issuer.to_owned(),
        }
    }

    /// The signed compact JWS.
    pub async fn sign(&self, signer: &dyn Signer) -> Result<String, KeyError> {
        let body = serde_json::to_vec(self).map_err(|e| KeyError::Sign(e.to_string()))?;
        jws::sign_typed(signer, TYP, &body).await
    }

    /// What the chain is held to (`at` names where the checkpoint came from).
    pub fn claim(&self, at: &str) -> Claim {
        Claim {
            seq: self.seq,
            hash: self.hash.clone(),
            rows: self.rows,
            at: at.to_owned(),
        }
    }
}

/// Checks a checkpoint's signature against `keys` and its type; returns what it states.
pub fn verify(compact: &str, keys: &Jwks) -> Result<Checkpoint, CheckpointError> {
    let payload = jws::verify(compact, keys)?;
    let typ = jws::parse(compact)?.header.typ;
    if typ.as_deref() != Some(TYP) {
        return Err(CheckpointError::Typ(typ));
    }
    let cp: Checkpoint =
        serde_json::from_slice(&payload).map_err(|e| CheckpointError::Payload(e.to_string()))?;
    let hex_ok = cp.hash.len() == 64 && cp.hash.bytes().all(|b| b.is_ascii_hexdigit());
    if cp.v != VERSION || cp.seq < 0 || cp.rows < 0 || !hex_ok {
        return Err(CheckpointError::Payload(format!(
            "v {}, seq {}, rows {}, hash {:?}",
            cp.v, cp.seq, cp.rows, cp.hash
        )));
    }
    Ok(Checkpoint {
        hash: cp.hash.to_ascii_lowercase(),
        ..cp
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::LocalKey;

    #[tokio::test]
    async fn a_checkpoint_verifies_with_its_key_and_a_receipt_or_a_changed_one_does_not() {
        let key = LocalKey::generate().unwrap();
        let keys = Jwks {
            keys: vec![key.jwk().clone()],
        };
        let cp = Checkpoint::new(3, &[7; 32], 3, "test");
        let compact = cp.sign(&key).await.unwrap();
        assert_eq!(verify(&compact, &keys).unwrap(), cp);
        assert_eq!(cp.claim("f:1").hash, "07".repeat(32));

        let receipt = jws::sign(&key, br#"{"v":1}"#).await.unwrap();
        assert!(matches!(
            verify(&receipt, &keys),
            Err(CheckpointError::Typ(Some(t))) if t == jws::TYP
        ));
        let other = Jwks {
            keys: vec![LocalKey::generate().unwrap().jwk().clone()],
        };
        assert!(matches!(
            verify(&compact, &other),
            Err(CheckpointError::Jws(JwsError::UnknownKey(_)))
        ));
        let bad = Checkpoint {
            hash: "zz".into(),
            ..cp
        };
        let signed_bad = bad.sign(&key).await.unwrap();
        assert!(matches!(
            verify(&signed_bad, &keys),
            Err(CheckpointError::Payload(_))
        ));
    }
}
