//! One `SdkConfig` for every AWS client, from the SDK's default chain plus Lethe's
//! overrides (endpoint for emulators and S3-compatible servers, region, adaptive retry),
//! and the interceptor that counts every call (and every throttled one) in the process
//! metrics.
//!
//! Throttling slows Lethe down, it never fails a job: every client (S3, Glue, Lake
//! Formation, STS) retries throttled and failed requests up to `LETHE_AWS_MAX_ATTEMPTS`
//! attempts with exponential backoff and jitter (`LETHE_AWS_RETRY_MODE=standard`), or the
//! SDK's adaptive mode (`adaptive`: that plus a client-side rate limiter, one per service
//! and process, enabled by the first throttle); S3 requests are also held to a per-bucket
//! concurrency limit that halves on throttles (`storage::s3::limit`).

use std::sync::Arc;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::config::AwsConfig;
use crate::metrics::Metrics;

/// Loads the shared SDK configuration.
pub async fn sdk_config(config: &AwsConfig) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(endpoint) = &config.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    // Configured region first, then the SDK's chain, then us-east-1 so a machine with no
    // AWS set-up still gets working clients (for emulators).
    let region = RegionProviderChain::first_try(config.region.clone().map(Region::new))
        .or_default_provider()
        .or_else(Region::from_static("us-east-1"));
    loader = loader.region(region);
    loader.retry_config(retry_config(config)).load().await
}

/// The configured retry mode, attempts and base backoff.
pub fn retry_config(config: &AwsConfig) -> RetryConfig {
    let mode = match config.retry_mode {
        crate::config::RetryMode::Standard => RetryConfig::standard(),
        crate::config::RetryMode::Adaptive => RetryConfig::adaptive(),
    };
    mode.with_max_attempts(config.max_attempts.max(1))
        .with_initial_backoff(std::time::Duration::from_millis(config.initial_backoff_ms))
}

/// AWS error codes that mean "slow down" (the SDK's own list of throttling errors).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Whether an answer of `service` (lowercase) with this error code and status is a
/// throttle: a throttling code, a 429, or any S3 503 (S3's `SlowDown`; a HEAD's 503 has
/// no body to name it).
pub fn is_throttle(service: &str, code: &str, status: Option<u16>) -> bool {
    THROTTLING_CODES.contains(&code)
        || status == Some(429)
        || (service == "s3" && status == Some(503))
}

/// How one attempt of a call ended: `ok`, an AWS error code, `http_<status>`,
/// `timeout`, `dispatch_failure` or `no_response`; and the HTTP status when there was one.
pub(crate) fn attempt_outcome(
    context: &FinalizerInterceptorContextRef<'_>,
) -> (String, Option<u16>) {
    let status = context.response().map(|r| r.status().as_u16());
    let code = match context.output_or_error() {
        Some(Ok(_)) => "ok".to_owned(),
        Some(Err(e)) if e.is_timeout_error() => "timeout".to_owned(),
        Some(Err(e)) if e.is_connector_error() => "dispatch_failure".to_owned(),
        _ => context.response().map_or_else(
            || "no_response".to_owned(),
            |r| {
                error_code(
                    r.headers().get("x-amzn-errortype"),
                    r.body().bytes(),
                    r.status().as_u16(),
                )
            },
        ),
    };
    (code, status)
}

/// Credentials of an assumed role: STS `AssumeRole` through the SDK's STS client (its
/// calls counted like every other), as a credentials provider for the SDK's identity
/// cache, which keeps them and asks again before they expire.
#[derive(Debug, Clone)]
pub struct AssumedRole {
    client: aws_sdk_sts::Client,
    pub role_arn: String,
    session_name: String,
    source_identity: Option<String>,
    tags: Vec<aws_sdk_sts::types::Tag>,
    external_id: Option<String>,
    session_secs: u32,
}

/// Why a role could not be assumed: the STS error code (`AccessDenied`, ...) and whether
/// asking again may help.
#[derive(Debug, thiserror::Error)]
#[error("cannot assume {role_arn}: {code}")]
pub struct AssumeRoleFailed {
    pub role_arn: String,
    pub code: String,
    pub transient: bool,
}

impl AssumedRole {
    /// A provider for `role_arn` whose sessions are named `session_name` (STS allows
    /// `[\w+=,.@-]`, 2 to 64 characters; other characters become `-`, in the source
    /// identity too), with `source_identity` and the session tags `tags`.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        metrics: Arc<Metrics>,
        role_arn: &str,
        session_name: &str,
        source_identity: Option<&str>,
        tags: &[(String, String)],
        config: &AwsConfig,
    ) -> Self {
        let tags = tags
            .iter()
            .filter_map(|(k, v)| {
                let value: String = v.chars().take(256).collect();
                aws_sdk_sts::types::Tag::builder()
                    .key(k)
                    .value(value)
                    .build()
                    .ok()
            })
            .collect();
        Self {
            client: sts_client(sdk, metrics),
            role_arn: role_arn.to_owned(),
            session_name: session_name_of(session_name),
            source_identity: source_identity.map(session_name_of),
            tags,
            external_id: config.role_external_id.clone(),
            session_secs: config.role_session_secs,
        }
    }

    async fn assume(&self) -> aws_credential_types::provider::Result {
        use aws_credential_types::provider::error::CredentialsError;
        use aws_sdk_sts::error::ProvideErrorMetadata;
        let answer = self
            .client
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .set_source_identity(self.source_identity.clone())
            .set_tags(Some(self.tags.clone()).filter(|t| !t.is_empty()))
            .set_external_id(self.external_id.clone())
            .duration_seconds(self.session_secs as i32)
            .send()
            .await;
        let failed = |code: String, transient: bool| {
            CredentialsError::provider_error(AssumeRoleFailed {
                role_arn: self.role_arn.clone(),
                code,
                transient,
            })
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let code = e.code().map(str::to_owned);
                let transient = status.is_none_or(|s| s >= 500 || s == 429)
                    || code.as_deref().is_some_and(|c| c.contains("Throttl"));
                return Err(failed(
                    code.unwrap_or_else(|| {
                        status.map_or("no answer".into(), |s| format!("http_{s}"))
                    }),
                    transient,
                ));
            }
        };
        let Some(c) = answer.credentials else {
            return Err(failed("no credentials in the answer".into(), true));
        };
        let expires = std::time::SystemTime::try_from(c.expiration).ok();
        Ok(aws_credential_types::Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            expires,
            "LetheAssumeRole",
        ))
    }
}

impl aws_credential_types::provider::ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(self.assume())
    }
}

/// An STS client whose calls are counted in `metrics`.
fn sts_client(sdk: &aws_config::SdkConfig, metrics: Arc<Metrics>) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::config::Builder::from(sdk)
        .interceptor(CallMetrics(metrics))
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

/// A valid STS session name: `[\w+=,.@-]`, at most 64 characters, at least 2.
fn session_name_of(name: &str) -> String {
    let mut name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    while name.len() < 2 {
        name.push('-');
    }
    name
}

/// Lethe's own principal as IAM names it (the role, for an assumed-role session), asked
/// of STS `GetCallerIdentity`.
pub async fn caller_principal(
    sdk: &aws_config::SdkConfig,
    metrics: Arc<Metrics>,
) -> Result<String, String> {
    use aws_sdk_sts::error::ProvideErrorMetadata;
    let identity = sts_client(sdk, metrics)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| e.code().unwrap_or("no answer").to_owned())?;
    let arn = identity.arn.ok_or("no ARN in the answer")?;
    Ok(principal_of(&arn))
}

/// `arn:aws:sts::1:assumed-role/R/session` → `arn:aws:iam::1:role/R` (a trust policy
/// names the role, not one of its sessions); other ARNs as they are.
fn principal_of(arn: &str) -> String {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if let [_, partition, "sts", _, account, resource] = parts.as_slice()
        && let Some(rest) = resource.strip_prefix("assumed-role/")
        && let Some((role, _session)) = rest.rsplit_once('/')
    {
        return format!("arn:{partition}:iam::{account}:role/{role}");
    }
    arn.to_owned()
}

/// Counts every AWS API call (each HTTP attempt, SDK retries included) in the process
/// metrics, by service, operation and outcome code, and the throttled ones by service.
/// Added to every SDK client Lethe builds.
#[derive(Debug, Clone)]
pub struct CallMetrics(pub Arc<Metrics>);

impl Intercept for CallMetrics {
    fn name(&self) -> &'static str {
        "LetheCallMetrics"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map_or(("unknown", "unknown"), |m| (m.service(), m.name()));
        let service = service.to_ascii_lowercase();
        let (code, status) = attempt_outcome(context);
        self.0.count_aws_call(&service, operation, &code);
        if code != "ok" && is_throttle(&service, &code, status) {
            self.0.count_throttle(&service);
        }
        Ok(())
    }
}

/// The AWS error code of a failed response: the `x-amzn-ErrorType` header (JSON
/// protocols), `<Code>` of an XML error body (S3), `__type` / `code` of a JSON body, else
/// `http_<status>` (S3 answers HEAD errors without a body).
fn error_code(header: Option<&str>, body: Option<&[u8]>, status: u16) -> String {
    let clean = |code: &str| {
        let code = code.split(':').next().unwrap_or(code);
        let code = code.rsplit('#').next().unwrap_or(code);
        code.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .take(64)
            .collect::<String>()
    };
    if let Some(code) = header.map(clean).filter(|c| !c.is_empty()) {
        return code;
    }
    let body = body.map(String::from_utf8_lossy).unwrap_or_default();
    if let Some(start) = body.find("<Code>")
        && let Some(len) = body[start + 6..].find("</Code>")
    {
        return clean(&body[start + 6..start + 6 + len]);
    }
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(&body)
        && let Some(code) = ["__type", "code", "Code"]
            .iter()
            .find_map(|k| fields.get(*k).and_then(|v| v.as_str()))
    {
        return clean(code);
    }
    format!("http_{status}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_are_what_sts_accepts_and_sessions_name_their_role() {
        assert_eq!(session_name_of("lethe-job-1/2 x"), "lethe-job-1-2-x");
        assert_eq!(session_name_of(""), "--");
        assert_eq!(session_name_of(&"a".repeat(80)).len(), 64);
        assert_eq!(
            principal_of("arn:aws:sts::123456789012:assumed-role/Lethe/i-0abc"),
            "arn:aws:iam::123456789012:role/Lethe"
        );
        assert_eq!(
            principal_of("arn:aws-cn:sts::1:assumed-role/a/b/c"),
            "arn:aws-cn:iam::1:role/a/b"
        );
        assert_eq!(
            principal_of("arn:aws:iam::1:user/ops"),
            "arn:aws:iam::1:user/ops"
        );
    }

    #[test]
    fn error_codes_come_from_header_xml_or_json_else_the_status() {
        assert_eq!(
            error_code(
                Some("EntityNotFoundException:http://internal.amazon.com/coral/"),
                None,
                400
            ),
            "EntityNotFoundException"
        );
        let xml = b"<?xml version=\"1.0\"?><Error><Code>PreconditionFailed</Code><Message>x</Message></Error>";
        assert_eq!(error_code(None, Some(xml), 412), "PreconditionFailed");
        let json =
            br#"{"__type":"com.amazonaws.glue#ConcurrentModificationException","message":"m"}"#;
        assert_eq!(
            error_code(None, Some(json), 400),
            "ConcurrentModificationException"
        );
        assert_eq!(error_code(None, Some(b""), 404), "http_404");
        assert_eq!(error_code(None, None, 503), "http_503");
    }

    #[test]
    fn throttles_are_named_by_code_or_status_and_any_s3_503_is_one() {
        assert!(is_throttle("s3", "SlowDown", Some(503)));
        assert!(is_throttle("s3", "http_503", Some(503)));
        assert!(is_throttle("glue", "ThrottlingException", Some(400)));
        assert!(is_throttle("sts", "Throttling", Some(400)));
        assert!(is_throttle("lakeformation", "http_429", Some(429)));
        // Not throttles: a Glue 503 without a throttling code, denials, missing objects.
        assert!(!is_throttle("glue", "InternalServiceException", Some(503)));
        assert!(!is_throttle("s3", "AccessDenied", Some(403)));
        assert!(!is_throttle("s3", "NoSuchKey", Some(404)));
        assert!(!is_throttle("s3", "timeout", None));
    }

    #[test]
    fn the_retry_config_has_the_configured_mode_attempts_and_backoff() {
        let config = AwsConfig {
            retry_mode: crate::config::RetryMode::Adaptive,
            max_attempts: 5,
            initial_backoff_ms: 250,
            ..AwsConfig::default()
        };
        let retry = retry_config(&config);
        assert_eq!(retry.mode(), aws_config::retry::RetryMode::Adaptive);
        assert_eq!(retry.max_attempts(), 5);
        assert_eq!(
            retry.initial_backoff(),
            std::time::Duration::from_millis(250)
        );
        let default = retry_config(&AwsConfig::default());
        assert_eq!(default.mode(), aws_config::retry::RetryMode::Standard);
        assert_eq!(default.max_attempts(), 8);
        assert_eq!(default.initial_backoff(), std::time::Duration::from_secs(1));
    }
}
