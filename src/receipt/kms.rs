//! A receipt signing key held in AWS KMS (`LETHE_RECEIPT_KMS_KEY_ID`): an asymmetric key
//! of spec `ECC_NIST_P256` and usage `SIGN_VERIFY`. Its public half is read once at start
//! (`kms:GetPublicKey`, a DER SubjectPublicKeyInfo, published as a JWK named by its
//! RFC 7638 thumbprint, exactly as a local key is); each signature is one `kms:Sign`
//! (`ECDSA_SHA_256`) whose DER `ECDSA-Sig-Value` becomes the 64 bytes `r || s` JWS wants.
//!
//! Invariants: every signature is checked against the published key before it is used
//! (a key id that came to name another key signs nothing); signing calls name the key by
//! the ARN `GetPublicKey` returned, not by an alias that could be moved. KMS is reached
//! through [`KmsApi`], so the conversion and the checks are tested without AWS.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use sha2::{Digest, Sha256};

use super::key::{Jwk, KeyError, Signer, jwk_of_point};

/// The key spec, usage and algorithm Lethe needs of a KMS key.
pub const KEY_SPEC: &str = "ECC_NIST_P256";
pub const KEY_USAGE: &str = "SIGN_VERIFY";
pub const SIGNING_ALGORITHM: &str = "ECDSA_SHA_256";

/// The largest message `kms:Sign` takes as `RAW`; a longer one is sent as its SHA-256
/// (`DIGEST`). Both give an ECDSA-SHA-256 signature of the same input.
pub const RAW_MAX_BYTES: usize = 4096;

/// The DER of a P-256 SubjectPublicKeyInfo up to its point: SEQUENCE { SEQUENCE {
/// id-ecPublicKey, prime256v1 }, BIT STRING (no unused bits) }. DER is canonical, so every
/// such key with an uncompressed point starts with exactly these bytes.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// What `kms:GetPublicKey` says of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsPublicKey {
    /// The key's ARN (what later calls name it by).
    pub key_arn: Option<String>,
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// `KeySpec` (else the older `CustomerMasterKeySpec`, all some emulators send).
    pub key_spec: Option<String>,
    pub key_usage: Option<String>,
    pub signing_algorithms: Vec<String>,
}

/// How the message of a `kms:Sign` call is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// The message itself (KMS hashes it).
    Raw,
    /// Its SHA-256.
    Digest,
}

/// The two KMS calls Lethe makes.
#[async_trait]
pub trait KmsApi: Send + Sync {
    async fn get_public_key(&self, key_id: &str) -> Result<KmsPublicKey, KeyError>;
    /// An `ECDSA_SHA_256` signature of `message`, as KMS returns it (DER).
    async fn sign(
        &self,
        key_id: &str,
        message: Vec<u8>,
        message_type: MessageType,
    ) -> Result<Vec<u8>, KeyError>;
}

/// A KMS key that signs receipts.
pub struct KmsKey {
    api: Arc<dyn KmsApi>,
    /// The ARN (else the id configured).
    key_id: String,
    jwk: Jwk,
}

impl std::fmt::Debug for KmsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsKey")
            .field("key_id", &self.key_id)
            .field("kid", &self.jwk.kid)
            .finish_non_exhaustive()
    }
}

impl KmsKey {
    /// Reads the key's public half and checks it is a P-256 signing key.
    pub async fn connect(api: Arc<dyn KmsApi>, key_id: &str) -> Result<Self, KeyError> {
        let info = api.get_public_key(key_id).await?;
        let wrong = |what: &str, got: &Option<String>, want: &str| {
            KeyError::Kms(format!(
                "KMS key {key_id}: {what} is {}, not {want}",
                got.as_deref().unwrap_or("unknown")
            ))
        };
        if info.key_spec.as_deref() != Some(KEY_SPEC) {
            return Err(wrong("the key spec", &info.key_spec, KEY_SPEC));
        }
        if info.key_usage.as_deref() != Some(KEY_USAGE) {
            return Err(wrong("the key usage", &info.key_usage, KEY_USAGE));
        }
        if !info
            .signing_algorithms
            .iter()
            .any(|a| a == SIGNING_ALGORITHM)
        {
            return Err(KeyError::Kms(format!(
                "KMS key {key_id} does not sign with {SIGNING_ALGORITHM}"
            )));
        }
        Ok(Self {
            jwk: jwk_of_spki(&info.spki_der)?,
            key_id: info.key_arn.unwrap_or_else(|| key_id.to_owned()),
            api,
        })
    }

    /// The key's ARN as KMS named it (else the id configured).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

#[async_trait]
impl Signer for KmsKey {
    fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let (sent, message_type) = if message.len() <= RAW_MAX_BYTES {
            (message.to_vec(), MessageType::Raw)
        } else {
            (Sha256::digest(message).to_vec(), MessageType::Digest)
        };
        let der = self.api.sign(&self.key_id, sent, message_type).await?;
        let fixed = fixed_of_der(&der)?;
        let point = [&[4u8][..], &decode(&self.jwk.x)?, &decode(&self.jwk.y)?].concat();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(message, &fixed)
            .map_err(|_| {
                KeyError::Sign(format!(
                    "KMS key {} returned a signature its published key does not verify",
                    self.key_id
                ))
            })?;
        Ok(fixed.to_vec())
    }
}

fn decode(b64: &str) -> Result<Vec<u8>, KeyError> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|e| KeyError::Sign(e.to_string()))
}

/// The JWK of a DER SubjectPublicKeyInfo of a P-256 key with an uncompressed point (what
/// `kms:GetPublicKey` returns for an `ECC_NIST_P256` key).
pub fn jwk_of_spki(der: &[u8]) -> Result<Jwk, KeyError> {
    der.strip_prefix(&P256_SPKI_PREFIX[..])
        .and_then(|point| jwk_of_point(point).ok())
        .ok_or_else(|| {
            KeyError::Kms("the public key is no DER SubjectPublicKeyInfo of a P-256 key".into())
        })
}

/// The JWS form (RFC 7518 §3.4: `r` and `s`, each 32 bytes big-endian, left-padded with
/// zeros) of a DER `ECDSA-Sig-Value` (RFC 3279: SEQUENCE { INTEGER r, INTEGER s }, each
/// minimal, with a leading zero byte when its high bit is set). Anything else is refused.
pub fn fixed_of_der(der: &[u8]) -> Result<[u8; 64], KeyError> {
    let bad = |why: &str| KeyError::Sign(format!("KMS returned a malformed signature: {why}"));
    let body = match der {
        [0x30, len, body @ ..] if *len < 0x80 && usize::from(*len) == body.len() => body,
        _ => return Err(bad("not a DER SEQUENCE of its length")),
    };
    let (r, rest) = der_uint(body).ok_or_else(|| bad("r is not a positive 256-bit INTEGER"))?;
    let (s, rest) = der_uint(rest).ok_or_else(|| bad("s is not a positive 256-bit INTEGER"))?;
    if !rest.is_empty() {
        return Err(bad("bytes after s"));
    }
    let mut fixed = [0u8; 64];
    fixed[32 - r.len()..32].copy_from_slice(r);
    fixed[64 - s.len()..].copy_from_slice(s);
    Ok(fixed)
}

/// The magnitude (at most 32 bytes, no sign byte) of the minimal DER INTEGER `bytes`
/// starts with, and what follows it; None for a zero, a negative, a non-minimal or a
/// longer one.
fn der_uint(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let [0x02, len, rest @ ..] = bytes else {
        return None;
    };
    let len = usize::from(*len);
    if len == 0 || len >= 0x80 || len > rest.len() {
        return None;
    }
    let (int, rest) = rest.split_at(len);
    let magnitude = match int {
        // The sign byte before a high bit.
        [0x00, tail @ ..] if tail.first().is_some_and(|b| *b >= 0x80) => tail,
        // Zero, or a zero byte that is not needed.
        [0x00, ..] => return None,
        [first, ..] if *first >= 0x80 => return None,
        _ => int,
    };
    (magnitude.len() <= 32).then_some((magnitude, rest))
}

/// [`KmsApi`] over the AWS SDK.
pub struct SdkKms(aws_sdk_kms::Client);

impl SdkKms {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self(aws_sdk_kms::Client::new(sdk))
    }
}

/// A KMS call's failure, with the SDK's whole cause chain.
fn kms_error(call: &str, e: impl std::error::Error) -> KeyError {
    let e = aws_smithy_types::error::display::DisplayErrorContext(e);
    KeyError::Kms(format!("kms:{call}: {e}"))
}

/// The key's spec: `KeySpec`, else `CustomerMasterKeySpec`, which AWS documents as the
/// same value under its older name (moto sends only that one).
#[allow(deprecated)]
fn key_spec(out: &aws_sdk_kms::operation::get_public_key::GetPublicKeyOutput) -> Option<String> {
    (out.key_spec().map(|s| s.as_str()))
        .or_else(|| out.customer_master_key_spec().map(|s| s.as_str()))
        .map(str::to_owned)
}

#[async_trait]
impl KmsApi for SdkKms {
    async fn get_public_key(&self, key_id: &str) -> Result<KmsPublicKey, KeyError> {
        let out = self
            .0
            .get_public_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| kms_error("GetPublicKey", e))?;
        Ok(KmsPublicKey {
            key_arn: out.key_id().map(str::to_owned),
            spki_der: out
                .public_key()
                .map(|b| b.as_ref().to_vec())
                .unwrap_or_default(),
            key_spec: key_spec(&out),
            key_usage: out.key_usage().map(|u| u.as_str().to_owned()),
            signing_algorithms: out
                .signing_algorithms()
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
        })
    }

    async fn sign(
        &self,
        key_id: &str,
        message: Vec<u8>,
        message_type: MessageType,
    ) -> Result<Vec<u8>, KeyError> {
        use aws_sdk_kms::types::{MessageType as Sdk, SigningAlgorithmSpec};
        let out = self
            .0
            .sign()
            .key_id(key_id)
            .message(aws_smithy_types::Blob::new(message))
            .message_type(match message_type {
                MessageType::Raw => Sdk::Raw,
                MessageType::Digest => Sdk::Digest,
            })
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| kms_error("Sign", e))?;
        out.signature()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| KeyError::Kms("kms:Sign returned no signature".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::digest::{Digest as LcDigest, SHA256};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
    use std::sync::Mutex;

    fn asn1_key() -> EcdsaKeyPair {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap()
    }

    fn spki(pair: &EcdsaKeyPair) -> Vec<u8> {
        [&P256_SPKI_PREFIX[..], pair.public_key().as_ref()].concat()
    }

    /// KMS as its API documents it: RAW messages are hashed, DIGEST ones signed as given;
    /// `signer` signs (another key than the published one when a test wants).
    struct FakeKms {
        published: EcdsaKeyPair,
        signer: Option<EcdsaKeyPair>,
        key_spec: &'static str,
        reply: Option<Vec<u8>>,
        calls: Mutex<Vec<(String, MessageType, Vec<u8>)>>,
    }

    impl FakeKms {
        fn new() -> Self {
            Self {
                published: asn1_key(),
                signer: None,
                key_spec: KEY_SPEC,
                reply: None,
                calls: Mutex::default(),
            }
        }
    }

    const ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    #[async_trait]
    impl KmsApi for FakeKms {
        async fn get_public_key(&self, _key_id: &str) -> Result<KmsPublicKey, KeyError> {
            Ok(KmsPublicKey {
                key_arn: Some(ARN.into()),
                spki_der: spki(&self.published),
                key_spec: Some(self.key_spec.into()),
                key_usage: Some(KEY_USAGE.into()),
                signing_algorithms: vec![SIGNING_ALGORITHM.into()],
            })
        }

        async fn sign(
            &self,
            key_id: &str,
            message: Vec<u8>,
            message_type: MessageType,
        ) -> Result<Vec<u8>, KeyError> {
            let calls = &mut self.calls.lock().unwrap();
            calls.push((key_id.to_owned(), message_type, message.clone()));
            if let Some(reply) = &self.reply {
                return Ok(reply.clone());
            }
            let pair = self.signer.as_ref().unwrap_or(&self.published);
            let digest = match message_type {
                MessageType::Raw => aws_lc_rs::digest::digest(&SHA256, &message),
                MessageType::Digest => LcDigest::import_less_safe(&message, &SHA256).unwrap(),
            };
            Ok(pair.sign_digest(&digest).unwrap().as_ref().to_vec())
        }
    }

    fn verifies(jwk: &Jwk, message: &[u8], fixed: &[u8]) -> bool {
        let point = [
            &[4u8][..],
            &decode(&jwk.x).unwrap(),
            &decode(&jwk.y).unwrap(),
        ]
        .concat();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(message, fixed)
            .is_ok()
    }

    #[test]
    fn a_der_signature_becomes_r_and_s_left_padded_to_32_bytes_each() {
        let full = |b: u8| [b; 32];
        // r with its high bit set (a sign byte before it), s of one byte.
        let mut der = vec![0x30, 0x26, 0x02, 0x21, 0x00];
        der.extend(full(0x80));
        der.extend([0x02, 0x01, 0x01]);
        let fixed = fixed_of_der(&der).unwrap();
        assert_eq!(fixed[..32], full(0x80));
        assert_eq!(fixed[32..63], [0u8; 31]);
        assert_eq!(fixed[63], 1);
        // r of 31 bytes (its leading zero byte stripped by DER), s of 32 without sign byte.
        let mut der = vec![0x30, 0x43, 0x02, 0x1f];
        der.extend([0x7f; 31]);
        der.extend([0x02, 0x20]);
        der.extend(full(0x7f));
        let fixed = fixed_of_der(&der).unwrap();
        assert_eq!(fixed[0], 0);
        assert_eq!(fixed[1..32], [0x7f; 31]);
        assert_eq!(fixed[32..], full(0x7f));
        // Both at their longest: 33 bytes each with sign bytes (72 bytes of DER).
        let mut der = vec![0x30, 0x46, 0x02, 0x21, 0x00];
        der.extend(full(0xff));
        der.extend([0x02, 0x21, 0x00]);
        der.extend(full(0xfe));
        let fixed = fixed_of_der(&der).unwrap();
        assert_eq!(
            (&fixed[..32], &fixed[32..]),
            (&full(0xff)[..], &full(0xfe)[..])
        );
    }

    #[test]
    fn a_der_signature_that_is_not_two_positive_minimal_256_bit_integers_is_refused() {
        let int = |bytes: &[u8]| [&[0x02, bytes.len() as u8][..], bytes].concat();
        let seq = |body: Vec<u8>| [&[0x30, body.len() as u8][..], &body].concat();
        let one = int(&[1]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("not a sequence", [&[0x31, 6][..], &one, &one].concat()),
            ("length too long", [&[0x30, 7][..], &one, &one].concat()),
            ("length too short", [&[0x30, 5][..], &one, &one].concat()),
            (
                "long-form length",
                [&[0x30, 0x81, 6][..], &one, &one].concat(),
            ),
            ("one integer", seq(one.clone())),
            ("trailing bytes", seq([&one[..], &one, &[0]].concat())),
            ("not an integer", seq([&[0x04, 1, 1][..], &one].concat())),
            ("empty integer", seq([&[0x02, 0][..], &one].concat())),
            ("zero", seq([int(&[0]), one.clone()].concat())),
            ("negative", seq([int(&[0x80]), one.clone()].concat())),
            ("non-minimal", seq([int(&[0, 0x7f]), one.clone()].concat())),
            ("33 bytes", seq([int(&[0x7f; 33]), one.clone()].concat())),
            (
                "34 bytes with a sign byte",
                seq([int(&[&[0u8][..], &[0xff; 33]].concat()), one.clone()].concat()),
            ),
            (
                "integer past the end",
                seq([&[0x02, 9, 1][..], &one].concat()),
            ),
        ];
        for (what, der) in cases {
            assert!(fixed_of_der(&der).is_err(), "{what}: {der:02x?}");
        }
    }

    #[test]
    fn converted_signatures_of_a_real_ecdsa_implementation_verify_as_jws_signatures() {
        let pair = asn1_key();
        let jwk = jwk_of_spki(&spki(&pair)).unwrap();
        // Until both edge cases came up: an `r` or `s` whose top byte is zero (DER strips
        // it; ~1 signature in 128) and one whose high bit is set (DER adds a sign byte).
        let (mut short, mut high) = (0, 0);
        for n in 0..20_000u32 {
            let message = format!("header.payload-{n}");
            let der = pair.sign(&SystemRandom::new(), message.as_bytes()).unwrap();
            let fixed = fixed_of_der(der.as_ref()).unwrap();
            assert!(verifies(&jwk, message.as_bytes(), &fixed), "{n}");
            assert!(!verifies(&jwk, b"another message", &fixed));
            short += usize::from(fixed[0] == 0 || fixed[32] == 0);
            high += usize::from(fixed[0] >= 0x80 || fixed[32] >= 0x80);
            if n >= 200 && short > 0 && high > 0 {
                break;
            }
        }
        assert!(short > 0 && high > 0, "{short} short, {high} high");
    }

    #[test]
    fn a_kms_public_key_becomes_the_jwk_and_kid_a_local_key_gives() {
        // `openssl ec -pubout -outform der` of key.rs's OPENSSL_SEC1 key (Python's
        // `cryptography` wrote it): the same coordinates and RFC 7638 thumbprint.
        use base64::Engine as _;
        let der = base64::engine::general_purpose::STANDARD
            .decode("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAElCMCpu/++VS6iB5GRsRel5Fur9m1kn+0uNZ72UvHRn5ZGE60CTnmngvJT3fWPS+mA9FoqJWRmvEbV3u+fIY/mw==")
            .unwrap();
        let jwk = jwk_of_spki(&der).unwrap();
        assert_eq!(jwk.x, "lCMCpu_--VS6iB5GRsRel5Fur9m1kn-0uNZ72UvHRn4");
        assert_eq!(jwk.y, "WRhOtAk55p4LyU931j0vpgPRaKiVkZrxG1d7vnyGP5s");
        assert_eq!(jwk.kid, "kjnVs4UNM4Fabk72QMpgnQ0jqOFEVBYEC0vWd-oxLi8");
        let local = super::super::LocalKey::generate_pkcs8().unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &local).unwrap();
        let local = super::super::LocalKey::from_der(&local).unwrap();
        assert_eq!(&jwk_of_spki(&spki(&pair)).unwrap(), local.jwk());
        let longer = [der.as_slice(), &[0]].concat();
        for bad in [&der[..90], &der[1..], longer.as_slice()] {
            assert!(jwk_of_spki(bad).is_err());
        }
        let mut compressed = der.clone();
        compressed[26] = 2;
        assert!(jwk_of_spki(&compressed).is_err());
    }

    #[tokio::test]
    async fn short_inputs_are_signed_raw_long_ones_as_their_digest_and_both_verify() {
        let kms = Arc::new(FakeKms::new());
        let key = KmsKey::connect(kms.clone(), "alias/lethe-receipts")
            .await
            .unwrap();
        assert_eq!(key.key_id(), ARN, "signing names the key, not an alias");
        let short = vec![b'a'; RAW_MAX_BYTES];
        let long = vec![b'b'; RAW_MAX_BYTES + 1];
        for message in [&short, &long] {
            let fixed = key.sign(message).await.unwrap();
            assert_eq!(fixed.len(), 64);
            assert!(verifies(key.jwk(), message, &fixed));
        }
        let calls = kms.calls.lock().unwrap();
        assert_eq!(calls[0], (ARN.to_owned(), MessageType::Raw, short.clone()));
        let digest = Sha256::digest(&long).to_vec();
        assert_eq!(calls[1], (ARN.to_owned(), MessageType::Digest, digest));
    }

    #[tokio::test]
    async fn a_key_of_another_kind_or_a_signature_the_published_key_refuses_is_an_error() {
        let mut kms = FakeKms::new();
        kms.key_spec = "ECC_NIST_P384";
        let err = KmsKey::connect(Arc::new(kms), "k").await.unwrap_err();
        assert!(err.to_string().contains("ECC_NIST_P384"), "{err}");

        // The key id came to name another key: its signatures are not used.
        let mut kms = FakeKms::new();
        kms.signer = Some(asn1_key());
        let key = KmsKey::connect(Arc::new(kms), "k").await.unwrap();
        let err = key.sign(b"h.p").await.unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");

        let mut kms = FakeKms::new();
        kms.reply = Some(vec![0x30, 0x00]);
        let key = KmsKey::connect(Arc::new(kms), "k").await.unwrap();
        let err = key.sign(b"h.p").await.unwrap_err();
        assert!(err.to_string().contains("malformed"), "{err}");
    }
}
