//! One `SdkConfig` for every AWS client, from the SDK's default chain plus Lethe's
//! overrides (endpoint for emulators and S3-compatible servers, region), and the
//! interceptor that counts every call in the process metrics.

use std::sync::Arc;

use aws_config::meta::region::RegionProviderChain;
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
    loader.load().await
}

/// Counts every AWS API call (each HTTP attempt, SDK retries included) in the process
/// metrics, by service, operation and outcome code. Added to every SDK client Lethe builds.
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
        self.0
            .count_aws_call(&service.to_ascii_lowercase(), operation, &code);
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
}
