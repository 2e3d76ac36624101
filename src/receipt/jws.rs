//! Compact JWS (RFC 7515 §7.1) with `ES256` (RFC 7518 §3.4): `BASE64URL(header) .
//! BASE64URL(payload) . BASE64URL(r || s)`, the header naming the key (`kid`). Verification
//! goes through `jsonwebtoken`'s ES256 verifier with the key taken from a JWKS.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use super::key::{ALG, b64url};
use super::key::{Jwks, KeyError, Signer};

/// The `typ` of a receipt's header.
pub const TYP: &str = "lethe-receipt+jws";

/// Lowercase hex SHA-256 of a compact JWS: what the next receipt's `prev` names.
pub fn sha256_hex(compact: &str) -> String {
    hex(&Sha256::digest(compact.as_bytes()))
}

/// Lowercase hex of `bytes` (a digest), as receipts, checkpoints and the audit chain
/// write every hash.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A receipt's protected header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub alg: String,
    pub kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
}

/// Signs `payload` (JSON bytes) into a compact JWS.
pub async fn sign(signer: &dyn Signer, payload: &[u8]) -> Result<String, KeyError> {
    sign_typed(signer, TYP, payload).await
}

/// Signs `payload` into a compact JWS whose header's `typ` is `typ` (what else the key
/// signs, e.g. an audit checkpoint, says what it is).
pub async fn sign_typed(
    signer: &dyn Signer,
    typ: &str,
    payload: &[u8],
) -> Result<String, KeyError> {
    let header = Header {
        alg: ALG.to_owned(),
        kid: signer.jwk().kid.clone(),
        typ: Some(typ.to_owned()),
    };
    let header = serde_json::to_vec(&header).map_err(|e| KeyError::Sign(e.to_string()))?;
    let input = format!("{}.{}", b64url(&header), b64url(payload));
    let signature = signer.sign(input.as_bytes()).await?;
    Ok(format!("{input}.{}", b64url(&signature)))
}

/// Why a compact JWS does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("not a compact JWS (three base64url parts): {0}")]
    Malformed(String),
    #[error("algorithm {0:?} (receipts are ES256)")]
    Algorithm(String),
    #[error("no key {0:?} in the JWKS")]
    UnknownKey(String),
    #[error("the signature does not verify with key {0:?}")]
    BadSignature(String),
}

/// A compact JWS taken apart.
#[derive(Debug, Clone)]
pub struct Parsed<'a> {
    pub header: Header,
    pub payload: Vec<u8>,
    signing_input: &'a str,
    signature: &'a str,
}

/// Takes a compact JWS apart (no signature check).
pub fn parse(compact: &str) -> Result<Parsed<'_>, JwsError> {
    let bad = |why: &str| JwsError::Malformed(why.to_owned());
    let (signing_input, signature) = compact.rsplit_once('.').ok_or_else(|| bad("no dots"))?;
    let (header, payload) = signing_input
        .split_once('.')
        .ok_or_else(|| bad("two parts"))?;
    if payload.contains('.') {
        return Err(bad("more than three parts"));
    }
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|e| bad(&format!("{what}: {e}")))
    };
    let header: Header = serde_json::from_slice(&decode(header, "header")?)
        .map_err(|e| bad(&format!("header: {e}")))?;
    Ok(Parsed {
        header,
        payload: decode(payload, "payload")?,
        signing_input,
        signature,
    })
}

/// Checks a compact JWS against the key its `kid` names in `keys`; returns its payload.
pub fn verify(compact: &str, keys: &Jwks) -> Result<Vec<u8>, JwsError> {
    let parsed = parse(compact)?;
    if parsed.header.alg != ALG {
        return Err(JwsError::Algorithm(parsed.header.alg));
    }
    let kid = parsed.header.kid.clone();
    let jwk = keys
        .get(&kid)
        .ok_or_else(|| JwsError::UnknownKey(kid.clone()))?;
    let key = jsonwebtoken::DecodingKey::from_ec_components(&jwk.x, &jwk.y)
        .map_err(|_| JwsError::UnknownKey(kid.clone()))?;
    let ok = jsonwebtoken::crypto::verify(
        parsed.signature,
        parsed.signing_input.as_bytes(),
        &key,
        jsonwebtoken::Algorithm::ES256,
    )
    .unwrap_or(false);
    if !ok {
        return Err(JwsError::BadSignature(kid));
    }
    Ok(parsed.payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::key::LocalKey;

    #[tokio::test]
    async fn a_signed_payload_verifies_and_a_changed_byte_or_another_key_does_not() {
        let key = LocalKey::generate().unwrap();
        let keys = Jwks {
            keys: vec![key.jwk().clone()],
        };
        let payload = br#"{"v":1,"seq":1}"#;
        let jws = sign(&key, payload).await.unwrap();
        assert_eq!(verify(&jws, &keys).unwrap(), payload);
        let parsed = parse(&jws).unwrap();
        assert_eq!(parsed.header.kid, key.jwk().kid);
        assert_eq!(parsed.header.alg, "ES256");
        assert_eq!(URL_SAFE_NO_PAD.decode(parsed.signature).unwrap().len(), 64);
        // Every single character changed, in each part, fails.
        for i in 0..jws.len() {
            let mut bytes = jws.clone().into_bytes();
            if bytes[i] == b'.' {
                continue;
            }
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            assert!(
                verify(&changed, &keys).is_err(),
                "byte {i} changed: {changed}"
            );
        }
        // Another key with the same kid, an unknown kid, another alg.
        let other = LocalKey::generate().unwrap();
        let mut forged = other.jwk().clone();
        forged.kid = key.jwk().kid.clone();
        let swapped = Jwks { keys: vec![forged] };
        assert_eq!(
            verify(&jws, &swapped),
            Err(JwsError::BadSignature(key.jwk().kid.clone()))
        );
        let unknown = Jwks {
            keys: vec![other.jwk().clone()],
        };
        assert!(matches!(
            verify(&jws, &unknown),
            Err(JwsError::UnknownKey(_))
        ));
        let none = format!(
            "{}.{}.",
            b64url(br#"{"alg":"none","kid":"k"}"#),
            b64url(payload)
        );
        assert!(matches!(verify(&none, &keys), Err(JwsError::Algorithm(_))));
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(matches!(verify(bad, &keys), Err(JwsError::Malformed(_))));
        }
    }

    #[test]
    fn the_chain_hash_is_the_sha256_of_the_compact_text() {
        // SHA-256("abc") (FIPS 180-2, appendix B.1).
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
