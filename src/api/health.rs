//! Liveness, readiness (checks Postgres) and Prometheus metrics. Health is
//! unauthenticated; `/metrics` on the API port asks for `LETHE_METRICS_TOKEN` (on a
//! worker's port, which serves nothing else, it does not).

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, Problem};
use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

/// Health status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthStatus {
    /// `ok`
    pub status: String,
    /// Readiness only: the key this process signs erasure receipts with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipts: Option<ReceiptKeyStatus>,
}

/// The receipt signing key: its `kid` and where it comes from (`file`:
/// `LETHE_RECEIPT_KEY_FILE`; `kms`: the AWS KMS key `LETHE_RECEIPT_KMS_KEY_ID`;
/// `generated`: by Lethe at its first start, kept in Postgres).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReceiptKeyStatus {
    pub kid: String,
    pub key: crate::receipt::KeySource,
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health", operation_id = "health_live",
    responses((status = 200, description = "Alive", body = HealthStatus)))]
async fn live() -> axum::Json<HealthStatus> {
    axum::Json(HealthStatus {
        status: "ok".to_owned(),
        receipts: None,
    })
}

/// How long readiness waits for Postgres. A pool asked for a connection while the
/// database is away keeps trying for its whole acquire timeout (10 s); a probe (the
/// kubelet's gives up after 1 s by default) must get an answer, not a hang.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The service can serve requests: Postgres answers.
#[utoipa::path(get, path = "/health/ready", tag = "health", operation_id = "health_ready",
    responses(
        (status = 200, description = "Ready", body = HealthStatus),
        (status = 503, description = "Postgres is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn ready(State(state): State<AppState>) -> Result<axum::Json<HealthStatus>, ApiError> {
    let unavailable = |why: &str| {
        tracing::warn!(error = why, "not ready: the database is unavailable");
        ApiError::Unavailable("the database is unavailable".to_owned())
    };
    match tokio::time::timeout(READY_TIMEOUT, crate::db::ping(&state.db)).await {
        Ok(Ok(())) => Ok(axum::Json(HealthStatus {
            status: "ok".to_owned(),
            receipts: Some(ReceiptKeyStatus {
                kid: state.receipts.signer.jwk().kid.clone(),
                key: state.receipts.source,
            }),
        })),
        Ok(Err(e)) => Err(unavailable(&e.to_string())),
        Err(_) => Err(unavailable("no answer within 1 s")),
    }
}

/// Prometheus metrics. On the API port (`lethe serve`) only with `Authorization: Bearer`
/// and the `LETHE_METRICS_TOKEN` (never when none is set); on a worker's port, open.
#[utoipa::path(get, path = "/metrics", tag = "health", operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "No metrics token, or not the configured one", body = Problem, content_type = "application/problem+json"),
    ))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    // Job and task gauges come from Postgres (every process sees the same), read at most
    // once per `LETHE_METRICS_CACHE_SECS` however often Prometheus (or anyone) scrapes.
    match state
        .limits
        .gauges(|| super::job_gauges::job_gauges(&state.db))
        .await
    {
        Ok(g) => text.push_str(&g),
        Err(e) => tracing::warn!(error = %e, "could not read job gauges"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// Middleware of the API port: `/metrics` answers only a request bearing the configured
/// `LETHE_METRICS_TOKEN` (compared in constant time); without one configured, none.
pub async fn metrics_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.uri().path() != "/metrics" {
        return next.run(req).await;
    }
    let Some(expected) = &state.config.metrics_token else {
        return ApiError::Unauthorized(
            "/metrics is served on this port only with LETHE_METRICS_TOKEN set".to_owned(),
        )
        .into_response();
    };
    match super::auth::bearer_token(req.headers()) {
        Ok(token) if same_secret(token.as_bytes(), expected.expose().as_bytes()) => {
            next.run(req).await
        }
        Ok(_) => ApiError::Unauthorized("not the metrics token".to_owned()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Equal byte strings, in a time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn same_secret_needs_every_byte_and_the_length() {
        assert!(same_secret(b"token-token", b"token-token"));
        assert!(!same_secret(b"token-token", b"token-tokem"));
        assert!(!same_secret(b"token-token", b"token-toke"));
        assert!(!same_secret(b"", b"x"));
    }
}
