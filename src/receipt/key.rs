//! Receipt signing keys: ECDSA P-256 (`ES256`), a key read from a PEM file or one Lethe
//! generates (PKCS#8, kept in Postgres by the caller), named by its RFC 7638 thumbprint,
//! and published as a JWK. Signing goes through the [`Signer`] trait, so a key held
//! elsewhere (an AWS KMS key) is one more implementation.

use async_trait::async_trait;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The one algorithm receipts are signed with.
pub const ALG: &str = "ES256";

/// base64url without padding (RFC 7515 §2).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A public key as a JWK (RFC 7517): EC P-256, for `ES256` signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    /// `EC`
    pub kty: String,
    /// `P-256`
    pub crv: String,
    /// The point's coordinates, base64url without padding.
    pub x: String,
    pub y: String,
    /// The RFC 7638 SHA-256 thumbprint of the key (base64url): the JWS header's `kid`.
    pub kid: String,
    /// `ES256`
    pub alg: String,
    /// `sig`
    #[serde(rename = "use")]
    pub key_use: String,
}

/// A JWK Set (RFC 7517 §5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// Why a key could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM private key: {0}")]
    Pem(String),
    #[error("not an ECDSA P-256 private key (PKCS#8 or SEC 1): {0}")]
    Rejected(String),
    #[error("signing failed: {0}")]
    Sign(String),
    /// A call to AWS KMS failed.
    #[error("{0}")]
    Kms(String),
}

/// What signs receipts: a key's public half and its `ES256` signatures (the 64 bytes
/// `r || s`, as JWS wants them).
#[async_trait]
pub trait Signer: Send + Sync {
    /// The public key, with its `kid`.
    fn jwk(&self) -> &Jwk;
    /// Signs `message` (the JWS signing input).
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError>;
}

/// An ECDSA P-256 key held in this process.
pub struct LocalKey {
    pair: EcdsaKeyPair,
    jwk: Jwk,
}

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKey")
            .field("kid", &self.jwk.kid)
            .finish_non_exhaustive()
    }
}

impl LocalKey {
    /// A new key, as PKCS#8 DER (what Lethe keeps when no key is configured).
    pub fn generate_pkcs8() -> Result<Vec<u8>, KeyError> {
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|e| KeyError::Sign(e.to_string()))
    }

    /// A new key held only by this value (tests, a one-off signer).
    pub fn generate() -> Result<Self, KeyError> {
        Self::from_der(&Self::generate_pkcs8()?)
    }

    /// A key from its DER: PKCS#8 or SEC 1 (RFC 5915).
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        let jwk = jwk_of_point(pair.public_key().as_ref())?;
        Ok(Self { pair, jwk })
    }

    /// A key from a PEM file: `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC 1, as
    /// `openssl ecparam -genkey` writes it; an `EC PARAMETERS` block before it is skipped).
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let text = std::str::from_utf8(pem).map_err(|_| KeyError::Pem("not text".into()))?;
        let der = pem_block(text, &["PRIVATE KEY", "EC PRIVATE KEY"])?;
        Self::from_der(&der)
    }
}

#[async_trait]
impl Signer for LocalKey {
    fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|e| KeyError::Sign(e.to_string()))
    }
}

/// The DER of the first PEM block labelled one of `labels`.
fn pem_block(text: &str, labels: &[&str]) -> Result<Vec<u8>, KeyError> {
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        if !labels.contains(&label) {
            continue;
        }
        let end = format!("-----END {label}-----");
        let body: String = lines.by_ref().take_while(|l| *l != end).collect();
        return base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| KeyError::Pem(e.to_string()));
    }
    Err(KeyError::Pem(format!("no {} block", labels.join(" or "))))
}

/// The JWK of an uncompressed P-256 point (`04 || x || y`).
pub fn jwk_of_point(point: &[u8]) -> Result<Jwk, KeyError> {
    let (x, y) = match point {
        [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
        _ => return Err(KeyError::Rejected("not an uncompressed P-256 point".into())),
    };
    let (x, y) = (b64url(x), b64url(y));
    Ok(Jwk {
        kid: thumbprint(&x, &y),
        kty: "EC".into(),
        crv: "P-256".into(),
        x,
        y,
        alg: ALG.into(),
        key_use: "sig".into(),
    })
}

/// The RFC 7638 thumbprint of an EC P-256 key: SHA-256 over its required members in
/// lexicographic order, no whitespace, base64url.
pub fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    b64url(&Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key `openssl ecparam -name prime256v1 -genkey` wrote (SEC 1, after an
    /// `EC PARAMETERS` block); its coordinates and RFC 7638 thumbprint as `openssl ec
    /// -pubout` and Python's `hashlib` computed them.
    const OPENSSL_SEC1: &str = "-----BEGIN EC PARAMETERS-----
BggqhkjOPQMBBw==
-----END EC PARAMETERS-----
-----BEGIN EC PRIVATE KEY-----
MHcCAQEEII8fnq9mCjw58pIyXRP30zWYCg6/SJLlHSk7ujQcmX2voAoGCCqGSM49
AwEHoUQDQgAElCMCpu/++VS6iB5GRsRel5Fur9m1kn+0uNZ72UvHRn5ZGE60CTnm
ngvJT3fWPS+mA9FoqJWRmvEbV3u+fIY/mw==
-----END EC PRIVATE KEY-----
";

    #[test]
    fn an_openssl_key_reads_with_its_coordinates_and_the_rfc_7638_kid() {
        let key = LocalKey::from_pem(OPENSSL_SEC1.as_bytes()).unwrap();
        let jwk = key.jwk();
        assert_eq!(jwk.x, "lCMCpu_--VS6iB5GRsRel5Fur9m1kn-0uNZ72UvHRn4");
        assert_eq!(jwk.y, "WRhOtAk55p4LyU931j0vpgPRaKiVkZrxG1d7vnyGP5s");
        assert_eq!(jwk.kid, "kjnVs4UNM4Fabk72QMpgnQ0jqOFEVBYEC0vWd-oxLi8");
        assert_eq!((jwk.kty.as_str(), jwk.crv.as_str()), ("EC", "P-256"));
        let json = serde_json::to_value(jwk).unwrap();
        assert_eq!(json["use"], "sig");
        assert_eq!(json["alg"], "ES256");
    }

    #[test]
    fn a_pkcs8_pem_key_reads_and_anything_else_is_refused() {
        let key = LocalKey::generate().unwrap();
        let der = LocalKey::generate_pkcs8().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
        let read = LocalKey::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(read.jwk(), LocalKey::from_der(&der).unwrap().jwk());
        assert_ne!(read.jwk().kid, key.jwk().kid);
        assert_eq!(read.jwk().kid.len(), 43);
        for bad in [
            "no pem at all",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(LocalKey::from_pem(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
