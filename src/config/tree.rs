//! The configuration tree from the flat settings: each section of [`Config`](super::Config)
//! from its settings, the settings read together (the public key file, the JWKS source),
//! the checks that weigh one setting against another, and the checks of single settings
//! that the table names.

use super::{AuthConfig, AwsConfig, ConfigError, JobsConfig, JwksSource, LimitsConfig, Secret};
use super::{Settings, invalid};

impl Settings {
    /// The limits.
    pub(super) fn limits(&self) -> LimitsConfig {
        LimitsConfig {
            header_read_timeout_secs: self.header_read_timeout_secs,
            idle_timeout_secs: self.idle_timeout_secs,
            http2_keepalive_secs: self.http2_keepalive_secs,
            http2_max_streams: self.http2_max_streams,
            request_timeout_secs: self.request_timeout_secs,
            max_concurrent_requests: self.max_concurrent_requests,
            max_connections: self.max_connections,
            max_event_streams: self.max_event_streams,
            event_stream_max_secs: self.event_stream_max_secs,
            max_report_streams: self.max_report_streams,
            queue_max_body_bytes: self.queue_max_body_bytes,
            metrics_cache_secs: self.metrics_cache_secs,
        }
    }

    /// How this process runs the job engine.
    pub(super) fn jobs(&self) -> JobsConfig {
        JobsConfig {
            workers: self.workers,
            poll_ms: self.worker_poll_ms,
            lease_secs: self.task_lease_secs,
            max_crashes: self.task_max_crashes,
            scheduler_interval_secs: self.scheduler_interval_secs,
            deadline_margin_hours: self.deadline_margin_hours,
            requester_min_deadline_days: self.requester_min_deadline_days,
            max_line_bytes: self.max_line_bytes,
            temp_dir: self.temp_dir.clone(),
            temp_max_bytes: self.temp_max_bytes,
        }
    }

    /// The AWS client settings.
    pub(super) fn aws(&self) -> AwsConfig {
        AwsConfig {
            endpoint_url: self.aws_endpoint_url.clone(),
            region: self.aws_region.clone(),
            s3_force_path_style: self.s3_force_path_style,
            role_external_id: self.aws_role_external_id.clone(),
            role_session_secs: self.aws_role_session_secs,
            principal_arn: self.aws_principal_arn.clone(),
            allowed_role_arns: self.aws_allowed_role_arns.clone(),
            retry_mode: self.aws_retry_mode,
            max_attempts: self.aws_max_attempts,
            initial_backoff_ms: self.aws_initial_backoff_ms,
            s3_max_concurrency_per_bucket: self.s3_max_concurrency_per_bucket,
        }
    }

    /// The auth settings; reads the public key file, and fails when both JWKS sources are
    /// set or the URL is not one Lethe reads.
    pub(super) fn auth(&self) -> Result<AuthConfig, ConfigError> {
        let jwt_public_key_pem = match (&self.jwt_public_key, &self.jwt_public_key_file) {
            (Some(pem), _) => Some(pem.clone()),
            (None, Some(path)) => Some(std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    "LETHE_JWT_PUBLIC_KEY_FILE",
                    &format!("cannot read {}: {e}", path.display()),
                )
            })?),
            (None, None) => None,
        };
        let jwks = match (&self.jwt_jwks_file, &self.jwt_jwks_url) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "LETHE_JWT_JWKS_URL",
                    "set either LETHE_JWT_JWKS_FILE or LETHE_JWT_JWKS_URL, not both",
                ));
            }
            (Some(path), None) => Some(JwksSource::File(path.clone())),
            (None, Some(url)) if !jwks_url_allowed(url) => {
                return Err(invalid(
                    "LETHE_JWT_JWKS_URL",
                    "must be an https:// URL (http:// only on a loopback address)",
                ));
            }
            (None, Some(url)) => Some(JwksSource::Url(url.clone())),
            (None, None) => None,
        };
        Ok(AuthConfig {
            jwt_secret: self.jwt_secret.clone(),
            jwt_public_key_pem,
            jwks,
            jwks_refresh_secs: self.jwt_jwks_refresh_secs,
            jwks_max_stale_secs: self.jwt_jwks_max_stale_secs,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            roles_claim: self.jwt_roles_claim.clone(),
        })
    }

    /// The checks that weigh one setting against another.
    pub(super) fn check_together(&self) -> Result<(), ConfigError> {
        if self.jwt_jwks_max_stale_secs < self.jwt_jwks_refresh_secs {
            return Err(invalid(
                "LETHE_JWT_JWKS_MAX_STALE_SECS",
                "must be at least LETHE_JWT_JWKS_REFRESH_SECS",
            ));
        }
        if self.receipt_key_file.is_some() && self.receipt_kms_key_id.is_some() {
            return Err(invalid(
                "LETHE_RECEIPT_KMS_KEY_ID",
                "set either LETHE_RECEIPT_KEY_FILE or LETHE_RECEIPT_KMS_KEY_ID, not both",
            ));
        }
        if self.queue_max_body_bytes < self.max_body_bytes {
            return Err(invalid(
                "LETHE_QUEUE_MAX_BODY_BYTES",
                "must be at least LETHE_MAX_BODY_BYTES",
            ));
        }
        Ok(())
    }
}

/// A Postgres URL.
pub(super) fn postgres_url(url: &Secret) -> Result<(), String> {
    let url = url.expose();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(())
    } else {
        Err("must be a postgres:// URL".to_owned())
    }
}

/// A session lifetime STS grants.
pub(super) fn sts_session(secs: &u32) -> Result<(), String> {
    if (900..=43_200).contains(secs) {
        Ok(())
    } else {
        Err("must be between 900 and 43200 (what STS allows)".to_owned())
    }
}

/// A KMS key id as `kms:Sign` takes one: a key id, key ARN, alias name or alias ARN
/// (1 to 2048 visible ASCII characters).
pub(super) fn kms_key_id(id: &impl AsRef<str>) -> Result<(), String> {
    let id = id.as_ref();
    if (1..=2048).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("must be a KMS key id, key ARN, alias name or alias ARN".to_owned())
    }
}

/// An external id STS accepts.
pub(super) fn external_id(id: &impl AsRef<str>) -> Result<(), String> {
    let id = id.as_ref();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c);
    if (2..=1224).contains(&id.len()) && id.chars().all(allowed) {
        Ok(())
    } else {
        Err("must be 2 to 1224 characters of letters, digits and +=,.@:/-_".to_owned())
    }
}

/// IAM role ARNs, `*` in the role name only.
pub(super) fn role_patterns(patterns: &impl AsRef<[String]>) -> Result<(), String> {
    match patterns
        .as_ref()
        .iter()
        .find(|p| !crate::domain::data_mapper::is_role_pattern(p))
    {
        Some(bad) => Err(format!(
            "{bad:?} is not an IAM role ARN (`*` is allowed in the role name only)"
        )),
        None => Ok(()),
    }
}

/// An https URL, or http on a loopback host; never with user info (`http://localhost:x@
/// evil/` names the host `evil`): the URL is parsed as a URL, not split as text.
fn jwks_url_allowed(url: &str) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}
