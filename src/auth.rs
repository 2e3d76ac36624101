//! Who is calling: roles, the role matrix, token verification and minting. The HTTP side
//! (the `Auth<P>` extractor, the audit trail of a request) is `api::auth`.
//!
//! Tokens are JWTs verified with an HS256 secret, an RS256 public key, or the keys of a
//! JWKS document (file or URL, re-read periodically; a token's `kid` picks its key, and
//! each key accepts only its own algorithm). `alg: none`, symmetric keys in a JWKS and any
//! algorithm a key was not published for are refused. `exp` and `sub` are required, `nbf`
//! is checked (with a small leeway); `iss` and `aud` are checked when configured, and an
//! audience is required with public keys. Roles come from a configurable claim (a dotted
//! path reaches nested claims, e.g. `realm_access.roles`).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use crate::config::AuthConfig;

/// Why a token was refused (safe to show the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unauthenticated(pub String);

/// A role a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Operator,
    Requester,
    Governance,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Operator,
        Role::Requester,
        Role::Governance,
        Role::Auditor,
    ];
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Requester => "requester",
            Role::Governance => "governance",
            Role::Auditor => "auditor",
        }
    }
}

/// A class of routes, for authorisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    DataMapperRead,
    DataMapperWrite,
    QueueRead,
    QueueAdd,
    QueueDelete,
    SettingsRead,
    SettingsWrite,
    AuditRead,
    /// The audit chain's head and its signed checkpoints (hashes and counts, no content).
    AuditChainRead,
    GovernanceRead,
    GovernanceWrite,
    JobRead,
    /// Start and cancel jobs.
    JobWrite,
    /// Browse the Glue catalog (databases, tables, columns), e.g. to write a data mapper.
    CatalogRead,
}

impl Action {
    pub const ALL: [Action; 14] = [
        Action::DataMapperRead,
        Action::DataMapperWrite,
        Action::QueueRead,
        Action::QueueAdd,
        Action::QueueDelete,
        Action::SettingsRead,
        Action::SettingsWrite,
        Action::AuditRead,
        Action::AuditChainRead,
        Action::GovernanceRead,
        Action::GovernanceWrite,
        Action::JobRead,
        Action::JobWrite,
        Action::CatalogRead,
    ];

    /// The snake_case name `GET /v1/me` lists.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::DataMapperRead => "data_mapper_read",
            Action::DataMapperWrite => "data_mapper_write",
            Action::QueueRead => "queue_read",
            Action::QueueAdd => "queue_add",
            Action::QueueDelete => "queue_delete",
            Action::SettingsRead => "settings_read",
            Action::SettingsWrite => "settings_write",
            Action::AuditRead => "audit_read",
            Action::AuditChainRead => "audit_chain_read",
            Action::GovernanceRead => "governance_read",
            Action::GovernanceWrite => "governance_write",
            Action::JobRead => "job_read",
            Action::JobWrite => "job_write",
            Action::CatalogRead => "catalog_read",
        }
    }
}

/// The role matrix: who may do what.
pub fn allows(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::Admin => true,
        Role::Operator => !matches!(action, AuditRead | GovernanceRead | GovernanceWrite),
        Role::Requester => matches!(action, QueueRead | QueueAdd),
        Role::Governance => matches!(action, GovernanceRead | GovernanceWrite | CatalogRead),
        Role::Auditor => matches!(
            action,
            DataMapperRead
                | QueueRead
                | SettingsRead
                | AuditRead
                | AuditChainRead
                | GovernanceRead
                | JobRead
                | CatalogRead
        ),
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's `sub`.
    pub subject: String,
    pub roles: Vec<Role>,
}

/// Verifies tokens.
pub struct Authenticator {
    keys: Keys,
    validation: Validation,
    roles_claim: String,
}

/// The keys tokens are checked against.
enum Keys {
    /// One key of one algorithm (HS256 secret, RS256 PEM).
    Single(DecodingKey),
    /// A JWKS document's signing keys, replaced whole when the document is read again.
    Set(
        std::sync::RwLock<std::sync::Arc<Vec<PublishedKey>>>,
        Freshness,
    ),
}

/// How fresh a JWKS key set is: when it was last read, how stale it may grow before its
/// keys stop being accepted (an identity provider that revoked a key Lethe can no longer
/// hear about), and the refresh an unknown `kid` asks for (at most once a minute).
struct Freshness {
    read_at: std::sync::Mutex<std::time::Instant>,
    max_stale: std::time::Duration,
    /// Seconds since `started` when an unknown kid last asked for a refresh.
    asked_at: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
    wanted: std::sync::Arc<tokio::sync::Notify>,
}

/// Least time between two refreshes an unknown `kid` asks for.
const UNKNOWN_KID_REFRESH: std::time::Duration = std::time::Duration::from_secs(60);

impl Freshness {
    fn new(max_stale: std::time::Duration) -> Self {
        let now = std::time::Instant::now();
        Self {
            read_at: std::sync::Mutex::new(now),
            max_stale,
            asked_at: std::sync::atomic::AtomicU64::new(0),
            started: now,
            wanted: Default::default(),
        }
    }

    fn stale(&self) -> bool {
        let read_at = *self.read_at.lock().unwrap_or_else(|e| e.into_inner());
        read_at.elapsed() > self.max_stale
    }

    /// Asks the refresh loop to read the document now, unless an unknown kid asked less
    /// than a minute ago (a stream of forged kids must not hammer the identity provider).
    fn ask_refresh(&self) {
        use std::sync::atomic::Ordering;
        let now = self.started.elapsed().as_secs() + UNKNOWN_KID_REFRESH.as_secs();
        let last = self.asked_at.load(Ordering::Relaxed);
        if now >= last + UNKNOWN_KID_REFRESH.as_secs()
            && self
                .asked_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.wanted.notify_one();
        }
    }
}

/// One signing key of a JWKS document.
struct PublishedKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The signing keys of a JWKS document: RSA, EC and Ed25519 keys whose use is `sig` (or
/// unstated), each with its algorithm (stated, or the usual one for its type). Symmetric
/// (`oct`) and encryption keys are ignored; a document with no usable key is an error.
fn published_keys(document: &str) -> anyhow::Result<Vec<PublishedKey>> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
    let set: JwkSet = serde_json::from_str(document)
        .map_err(|e| anyhow::anyhow!("the JWKS document cannot be read: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        if matches!(
            jwk.common.public_key_use,
            Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
        ) {
            continue;
        }
        let inferred = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Some(Algorithm::ES256),
                EllipticCurve::P384 => Some(Algorithm::ES384),
                _ => None,
            },
            AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
            // Symmetric keys do not belong in a published key set.
            _ => continue,
        };
        let algorithm = match jwk.common.key_algorithm {
            Some(stated) => match Algorithm::try_from(stated) {
                Ok(a) if !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => a,
                _ => continue,
            },
            None => match inferred {
                Some(a) => a,
                None => continue,
            },
        };
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        keys.push(PublishedKey {
            kid: jwk.common.key_id.clone(),
            algorithm,
            key,
        });
    }
    anyhow::ensure!(
        !keys.is_empty(),
        "the JWKS document has no signing key Lethe can use (RSA, EC P-256/P-384 or Ed25519)"
    );
    Ok(keys)
}

/// The largest JWKS document read.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Reads the configured JWKS document (None when none is configured).
pub async fn read_jwks(config: &AuthConfig) -> anyhow::Result<Option<String>> {
    use crate::config::JwksSource;
    match &config.jwks {
        None => Ok(None),
        Some(JwksSource::File(path)) => {
            Ok(Some(tokio::fs::read_to_string(path).await.map_err(
                |e| anyhow::anyhow!("LETHE_JWT_JWKS_FILE {}: {e}", path.display()),
            )?))
        }
        Some(JwksSource::Url(url)) => {
            // No redirect is followed: it could lead to another host or to plain HTTP.
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
            let mut response = client
                .get(url)
                .timeout(std::time::Duration::from_secs(10))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("LETHE_JWT_JWKS_URL {url}: {e}"))?;
            anyhow::ensure!(
                response.status().is_success(),
                "LETHE_JWT_JWKS_URL {url} answered {} (redirects are not followed)",
                response.status()
            );
            // Read in chunks, refusing past the cap (never the whole body first).
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                anyhow::ensure!(
                    body.len() + chunk.len() <= MAX_JWKS_BYTES,
                    "LETHE_JWT_JWKS_URL {url}: over 1 MiB"
                );
                body.extend_from_slice(&chunk);
            }
            Ok(Some(String::from_utf8_lossy(&body).into_owned()))
        }
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithms", &self.validation.algorithms)
            .field("roles_claim", &self.roles_claim)
            .finish_non_exhaustive()
    }
}

/// Clock skew tolerated on `exp` and `nbf`, seconds.
pub const JWT_LEEWAY_SECS: u64 = 30;

impl Authenticator {
    /// The configured verifier: the JWKS document's keys (read now), else RS256 with the
    /// public key, else HS256 with `hs256_secret`.
    pub async fn load(config: &AuthConfig, hs256_secret: &[u8]) -> anyhow::Result<Self> {
        match read_jwks(config).await? {
            Some(document) => Self::with_jwks(config, &document),
            None => Self::new(config, hs256_secret),
        }
    }

    /// Verifies with the keys of a JWKS `document`.
    pub fn with_jwks(config: &AuthConfig, document: &str) -> anyhow::Result<Self> {
        let keys = published_keys(document)?;
        let max_stale = std::time::Duration::from_secs(config.jwks_max_stale_secs);
        Self::build(
            config,
            Keys::Set(
                std::sync::RwLock::new(std::sync::Arc::new(keys)),
                Freshness::new(max_stale),
            ),
            Algorithm::RS256,
            "LETHE_JWT_JWKS_FILE / LETHE_JWT_JWKS_URL",
        )
    }

    /// Replaces the JWKS keys with those of `document` (a rotation); returns how many.
    /// The old keys stay when the document has none usable.
    pub fn replace_keys(&self, document: &str) -> anyhow::Result<usize> {
        let Keys::Set(keys, freshness) = &self.keys else {
            anyhow::bail!("this server does not verify with a JWKS document");
        };
        let fresh = published_keys(document)?;
        let n = fresh.len();
        *keys.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(fresh);
        *freshness.read_at.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
        Ok(n)
    }

    /// RS256 when a public key is configured, else HS256 with `hs256_secret`.
    pub fn new(config: &AuthConfig, hs256_secret: &[u8]) -> anyhow::Result<Self> {
        let (key, algorithm) = match &config.jwt_public_key_pem {
            Some(pem) => (
                DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
                    anyhow::anyhow!("LETHE_JWT_PUBLIC_KEY: not an RSA public key PEM: {e}")
                })?,
                Algorithm::RS256,
            ),
            None => (DecodingKey::from_secret(hs256_secret)?, Algorithm::HS256),
        };
        Self::build(config, Keys::Single(key), algorithm, "LETHE_JWT_PUBLIC_KEY")
    }

    fn build(
        config: &AuthConfig,
        keys: Keys,
        algorithm: Algorithm,
        setting: &str,
    ) -> anyhow::Result<Self> {
        // A shared identity provider's token for another application must not pass
        // because it carries `roles: ["admin"]`: public keys need an audience.
        if algorithm != Algorithm::HS256 && config.audience.is_none() {
            anyhow::bail!(
                "LETHE_JWT_AUDIENCE is required with {setting}: without it a token the identity provider issued for any application would be accepted"
            );
        }
        // A multi-tenant identity provider signs every tenant's tokens with the same keys:
        // without an issuer, another tenant's token for the same audience would pass.
        if algorithm != Algorithm::HS256 && config.issuer.is_none() {
            anyhow::bail!(
                "LETHE_JWT_ISSUER is required with {setting}: without it a token another tenant of the identity provider issued would be accepted"
            );
        }
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // `nbf` (not before) is checked, with a small leeway for clock skew.
        validation.validate_nbf = true;
        validation.leeway = JWT_LEEWAY_SECS;
        match &config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Self {
            keys,
            validation,
            roles_claim: config.roles_claim.clone(),
        })
    }

    /// Whether keys come from a JWKS document (and so are worth reading again).
    pub fn uses_jwks(&self) -> bool {
        matches!(self.keys, Keys::Set(..))
    }

    /// Signalled when a token named a key the set does not hold (at most once a minute):
    /// the refresh loop reads the document then, so a key the identity provider just
    /// rotated in is accepted without waiting for the next period.
    pub fn refresh_wanted(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        match &self.keys {
            Keys::Set(_, freshness) => Some(freshness.wanted.clone()),
            Keys::Single(_) => None,
        }
    }

    /// Verifies a token and reads its subject and roles.
    pub fn verify(&self, token: &str) -> Result<Principal, Unauthenticated> {
        let decoded = match &self.keys {
            Keys::Single(key) => {
                jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation)
            }
            Keys::Set(keys, freshness) => {
                if freshness.stale() {
                    return Err(Unauthenticated(
                        "the identity provider's key set could not be read for too long (LETHE_JWT_JWKS_MAX_STALE_SECS)".to_owned(),
                    ));
                }
                let header = jsonwebtoken::decode_header(token)
                    .map_err(|e| Unauthenticated(describe_jwt_error(&e)))?;
                let keys = keys.read().unwrap_or_else(|e| e.into_inner()).clone();
                // The token's `kid` names its key; without one, only a set of one key.
                let key = match &header.kid {
                    Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
                    None if keys.len() == 1 => keys.first(),
                    None => {
                        return Err(Unauthenticated(
                            "the token names no key (kid) and the key set has several".to_owned(),
                        ));
                    }
                }
                .ok_or_else(|| {
                    freshness.ask_refresh();
                    Unauthenticated("the token's key (kid) is not in the key set".to_owned())
                })?;
                let mut validation = self.validation.clone();
                validation.algorithms = vec![key.algorithm];
                jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            }
        };
        let data = decoded.map_err(|e| Unauthenticated(describe_jwt_error(&e)))?;
        let claims = data.claims;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Unauthenticated("the token has no subject".to_owned()))?
            .to_owned();
        let mut node = Some(&Value::Object(claims.clone()));
        for segment in self.roles_claim.split('.') {
            node = node.and_then(|v| v.get(segment));
        }
        let names: Vec<&str> = match node {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(s)) => s.split_whitespace().collect(),
            _ => Vec::new(),
        };
        Ok(Principal {
            subject,
            roles: names.into_iter().filter_map(Role::parse).collect(),
        })
    }
}

fn describe_jwt_error(err: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::InvalidSignature => "the token's signature is invalid",
        ErrorKind::InvalidAudience => "the token is for another audience",
        ErrorKind::InvalidIssuer => "the token is from another issuer",
        ErrorKind::InvalidAlgorithm => "the token uses an algorithm this server does not accept",
        ErrorKind::ImmatureSignature => "the token is not valid yet",
        ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (exp, sub)",
        _ => "the token is malformed",
    }
    .to_owned()
}

/// Mints an HS256 token (for `lethe token` and tests).
pub fn mint_hs256(
    secret: &[u8],
    config: &AuthConfig,
    subject: &str,
    roles: &[Role],
    ttl: chrono::Duration,
) -> anyhow::Result<String> {
    let now = chrono::Utc::now();
    let mut claims = serde_json::json!({
        "sub": subject,
        "iat": now.timestamp(),
        "exp": (now + ttl).timestamp(),
    });
    // The roles go where the verifier reads them, nested for a dotted claim path.
    let mut slot = &mut claims;
    for segment in config.roles_claim.split('.') {
        slot = &mut slot[segment];
    }
    *slot = roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().into();
    if let Some(iss) = &config.issuer {
        claims["iss"] = iss.clone().into();
    }
    if let Some(aud) = &config.audience {
        claims["aud"] = aud.clone().into();
    }
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret)?,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        AuthConfig {
            jwt_secret: None,
            jwt_public_key_pem: None,
            jwks: None,
            jwks_refresh_secs: 300,
            jwks_max_stale_secs: 86_400,
            issuer: Some("lethe-test".into()),
            audience: Some("lethe".into()),
            roles_claim: "roles".into(),
        }
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn minted_tokens_verify_with_subject_and_roles() {
        let auth = Authenticator::new(&config(), SECRET).unwrap();
        let token = mint_hs256(
            SECRET,
            &config(),
            "alice",
            &[Role::Operator, Role::Auditor],
            chrono::Duration::hours(1),
        )
        .unwrap();
        let principal = auth.verify(&token).unwrap();
        assert_eq!(principal.subject, "alice");
        assert_eq!(principal.roles, [Role::Operator, Role::Auditor]);
    }

    #[test]
    fn expired_foreign_and_unsigned_tokens_are_refused() {
        let auth = Authenticator::new(&config(), SECRET).unwrap();
        let expired = mint_hs256(
            SECRET,
            &config(),
            "a",
            &[Role::Admin],
            chrono::Duration::hours(-2),
        )
        .unwrap();
        assert!(matches!(auth.verify(&expired), Err(Unauthenticated(m)) if m.contains("expired")));
        let other_key = mint_hs256(
            b"another-secret-another-secret-xx",
            &config(),
            "a",
            &[Role::Admin],
            chrono::Duration::hours(1),
        )
        .unwrap();
        assert!(
            matches!(auth.verify(&other_key), Err(Unauthenticated(m)) if m.contains("signature"))
        );
        let other_aud = AuthConfig {
            audience: Some("else".into()),
            ..config()
        };
        let wrong_aud = mint_hs256(
            SECRET,
            &other_aud,
            "a",
            &[Role::Admin],
            chrono::Duration::hours(1),
        )
        .unwrap();
        assert!(
            matches!(auth.verify(&wrong_aud), Err(Unauthenticated(m)) if m.contains("audience"))
        );
        // alg: none, with a valid-looking payload and an empty signature.
        let b64 = base64_url_no_pad;
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(format!(
                r#"{{"sub":"a","roles":["admin"],"exp":{},"iss":"lethe-test","aud":"lethe"}}"#,
                chrono::Utc::now().timestamp() + 3600
            )
            .as_bytes())
        );
        assert!(matches!(auth.verify(&none), Err(Unauthenticated(_))));
    }

    fn base64_url_no_pad(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn roles_can_come_from_a_nested_claim_or_a_space_separated_string() {
        let nested = AuthConfig {
            roles_claim: "realm_access.roles".into(),
            issuer: None,
            audience: None,
            ..config()
        };
        let auth = Authenticator::new(&nested, SECRET).unwrap();
        // `lethe token` puts roles where a nested claim path says.
        let minted = mint_hs256(
            SECRET,
            &nested,
            "ann",
            &[Role::Auditor],
            chrono::Duration::hours(1),
        )
        .unwrap();
        assert_eq!(auth.verify(&minted).unwrap().roles, [Role::Auditor]);
        let claims = serde_json::json!({"sub": "bob", "exp": chrono::Utc::now().timestamp() + 60,
            "realm_access": {"roles": ["requester", "unknown"]}});
        let token = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        assert_eq!(auth.verify(&token).unwrap().roles, [Role::Requester]);

        let flat = AuthConfig {
            issuer: None,
            audience: None,
            ..config()
        };
        let auth = Authenticator::new(&flat, SECRET).unwrap();
        let claims = serde_json::json!({"sub": "bob", "exp": chrono::Utc::now().timestamp() + 60, "roles": "auditor operator"});
        let token = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        assert_eq!(
            auth.verify(&token).unwrap().roles,
            [Role::Auditor, Role::Operator]
        );
    }

    #[test]
    fn rs256_tokens_verify_and_the_public_key_cannot_be_used_as_an_hs256_secret() {
        let public = include_str!("../tests/fixtures/rs256-test-public.pem");
        let private = include_bytes!("../tests/fixtures/rs256-test-private.pem");
        let rs = AuthConfig {
            jwt_public_key_pem: Some(public.to_owned()),
            issuer: Some("https://idp.example".into()),
            audience: Some("lethe".into()),
            ..config()
        };
        // Without an audience, or without an issuer, RS256 is refused at start.
        let open = AuthConfig {
            audience: None,
            ..rs.clone()
        };
        let err = Authenticator::new(&open, SECRET).unwrap_err().to_string();
        assert!(err.contains("LETHE_JWT_AUDIENCE"), "{err}");
        let any_tenant = AuthConfig {
            issuer: None,
            ..rs.clone()
        };
        let err = Authenticator::new(&any_tenant, SECRET)
            .unwrap_err()
            .to_string();
        assert!(err.contains("LETHE_JWT_ISSUER"), "{err}");
        let auth = Authenticator::new(&rs, SECRET).unwrap();
        let claims = serde_json::json!({"sub": "carol", "exp": chrono::Utc::now().timestamp() + 60, "roles": ["governance"], "aud": "lethe", "iss": "https://idp.example"});
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(private).unwrap(),
        )
        .unwrap();
        assert_eq!(auth.verify(&token).unwrap().roles, [Role::Governance]);
        // Algorithm confusion: an HS256 token keyed with the public key must fail.
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(public.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(matches!(auth.verify(&forged), Err(Unauthenticated(_))));
        // And the HS256 secret is not accepted either once RS256 is configured.
        let hs = mint_hs256(
            SECRET,
            &rs,
            "carol",
            &[Role::Admin],
            chrono::Duration::hours(1),
        )
        .unwrap();
        assert!(matches!(auth.verify(&hs), Err(Unauthenticated(_))));
        let bad = AuthConfig {
            jwt_public_key_pem: Some("not a key".into()),
            ..rs
        };
        assert!(Authenticator::new(&bad, SECRET).is_err());
    }

    #[test]
    fn the_role_matrix_matches_the_documented_classes() {
        use Action::*;
        assert!(Role::ALL.iter().all(|_| allows(Role::Admin, AuditRead)));
        assert!(allows(Role::Operator, DataMapperWrite) && !allows(Role::Operator, AuditRead));
        assert!(allows(Role::Requester, QueueAdd) && allows(Role::Requester, QueueRead));
        assert!(!allows(Role::Requester, QueueDelete) && !allows(Role::Requester, DataMapperRead));
        assert!(allows(Role::Auditor, AuditRead) && !allows(Role::Auditor, QueueAdd));
        assert!(!allows(Role::Governance, DataMapperRead));
        assert!(allows(Role::Governance, GovernanceWrite) && allows(Role::Auditor, GovernanceRead));
        assert!(!allows(Role::Operator, GovernanceRead) && !allows(Role::Auditor, GovernanceWrite));
        // The audit chain's head and checkpoints show hashes and counts, no content.
        assert!(allows(Role::Operator, AuditChainRead) && allows(Role::Auditor, AuditChainRead));
        assert!(
            !allows(Role::Requester, AuditChainRead) && !allows(Role::Governance, AuditChainRead)
        );
    }

    #[test]
    fn a_token_that_is_not_valid_yet_is_refused() {
        let auth = Authenticator::new(&config(), SECRET).unwrap();
        let now = chrono::Utc::now().timestamp();
        let token = |nbf: i64| {
            let claims = serde_json::json!({"sub": "a", "roles": ["admin"], "exp": now + 3600,
                                            "nbf": nbf, "iss": "lethe-test", "aud": "lethe"});
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(SECRET).unwrap(),
            )
            .unwrap()
        };
        assert!(
            matches!(auth.verify(&token(now + 600)), Err(Unauthenticated(m)) if m.contains("not valid yet"))
        );
        // Within the clock-skew leeway, and in the past: fine.
        assert!(auth.verify(&token(now + 5)).is_ok());
        assert!(auth.verify(&token(now - 60)).is_ok());
    }

    /// A token signed by `key` of the test JWKS (`kid` in the header when given).
    fn signed(algorithm: Algorithm, key: &EncodingKey, kid: Option<&str>, sub: &str) -> String {
        let mut header = Header::new(algorithm);
        header.kid = kid.map(str::to_owned);
        let claims = serde_json::json!({"sub": sub, "roles": ["auditor"], "aud": "lethe",
                                        "iss": "lethe-test", "exp": chrono::Utc::now().timestamp() + 600});
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    #[tokio::test]
    async fn an_unknown_kid_asks_for_one_refresh_a_minute_and_a_stale_set_is_refused() {
        let document = include_str!("../tests/fixtures/jwks-test.json");
        let k1 =
            EncodingKey::from_rsa_pem(include_bytes!("../tests/fixtures/rs256-test-private.pem"))
                .unwrap();
        let auth = Authenticator::with_jwks(&config(), document).unwrap();
        let wanted = auth.refresh_wanted().expect("a key set");
        let unknown = signed(Algorithm::RS256, &k1, Some("rotated-in"), "x");
        assert!(auth.verify(&unknown).is_err());
        // The first unknown kid signals the refresh loop ...
        tokio::time::timeout(std::time::Duration::from_secs(1), wanted.notified())
            .await
            .expect("a refresh was asked for");
        // ... the next ones within the minute do not.
        for _ in 0..100 {
            assert!(auth.verify(&unknown).is_err());
        }
        let again =
            tokio::time::timeout(std::time::Duration::from_millis(200), wanted.notified()).await;
        assert!(again.is_err(), "at most one refresh a minute");
        // A set not read for longer than the staleness allowed accepts nothing.
        let stale = AuthConfig {
            jwks_max_stale_secs: 0,
            ..config()
        };
        let auth = Authenticator::with_jwks(&stale, document).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let good = signed(Algorithm::RS256, &k1, Some("k1"), "k1");
        assert!(auth.verify(&good).unwrap_err().0.contains("too long"));
    }

    #[test]
    fn a_jwks_with_several_keys_accepts_each_by_kid_and_only_with_its_algorithm() {
        let document = include_str!("../tests/fixtures/jwks-test.json");
        let k1 =
            EncodingKey::from_rsa_pem(include_bytes!("../tests/fixtures/rs256-test-private.pem"))
                .unwrap();
        let k2 =
            EncodingKey::from_rsa_pem(include_bytes!("../tests/fixtures/rs256-test-2-private.pem"))
                .unwrap();
        let e1 =
            EncodingKey::from_ec_pem(include_bytes!("../tests/fixtures/es256-test-private.pem"))
                .unwrap();
        // An audience is required, as with one public key.
        let open = AuthConfig {
            audience: None,
            ..config()
        };
        let err = Authenticator::with_jwks(&open, document)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("LETHE_JWT_AUDIENCE"), "{err}");
        let auth = Authenticator::with_jwks(&config(), document).unwrap();
        assert!(auth.uses_jwks());
        for (algorithm, key, kid) in [
            (Algorithm::RS256, &k1, "k1"),
            (Algorithm::RS256, &k2, "k2"),
            (Algorithm::ES256, &e1, "e1"),
        ] {
            let principal = auth
                .verify(&signed(algorithm, key, Some(kid), kid))
                .unwrap();
            assert_eq!(
                (principal.subject.as_str(), principal.roles.as_slice()),
                (kid, &[Role::Auditor][..])
            );
        }
        let refused = |token: String| auth.verify(&token).unwrap_err().0;
        // The kid names another key than the one that signed.
        assert!(refused(signed(Algorithm::RS256, &k1, Some("k2"), "x")).contains("signature"));
        // No kid with several keys; an unknown kid; an encryption key's kid.
        assert!(refused(signed(Algorithm::RS256, &k1, None, "x")).contains("names no key"));
        assert!(
            refused(signed(Algorithm::RS256, &k1, Some("k9"), "x")).contains("not in the key set")
        );
        assert!(
            refused(signed(Algorithm::RS256, &k1, Some("enc"), "x")).contains("not in the key set")
        );
        // A key accepts only its own algorithm: not RS384 with an RS256 key, not HS256
        // keyed with the public modulus.
        assert!(refused(signed(Algorithm::RS384, &k1, Some("k1"), "x")).contains("algorithm"));
        let modulus = EncodingKey::from_secret(document.as_bytes()).unwrap();
        assert!(refused(signed(Algorithm::HS256, &modulus, Some("k1"), "x")).contains("algorithm"));

        // Rotation: the document read again without k1 refuses k1's tokens at once.
        let mut rotated: serde_json::Value = serde_json::from_str(document).unwrap();
        rotated["keys"]
            .as_array_mut()
            .unwrap()
            .retain(|k| k["kid"] != "k1");
        assert_eq!(auth.replace_keys(&rotated.to_string()).unwrap(), 2);
        assert!(
            refused(signed(Algorithm::RS256, &k1, Some("k1"), "x")).contains("not in the key set")
        );
        assert!(
            auth.verify(&signed(Algorithm::RS256, &k2, Some("k2"), "y"))
                .is_ok()
        );
        // A document with no usable key is refused and the keys there are stay.
        let symmetric = r#"{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}"#;
        assert!(auth.replace_keys(symmetric).is_err());
        assert!(auth.replace_keys("not json").is_err());
        assert!(
            auth.verify(&signed(Algorithm::RS256, &k2, Some("k2"), "y"))
                .is_ok()
        );
        // One key: a token without kid is fine.
        let mut single = rotated.clone();
        single["keys"]
            .as_array_mut()
            .unwrap()
            .retain(|k| k["kid"] == "k2");
        let one = Authenticator::with_jwks(&config(), &single.to_string()).unwrap();
        assert!(
            one.verify(&signed(Algorithm::RS256, &k2, None, "z"))
                .is_ok()
        );
    }
}
