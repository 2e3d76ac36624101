//! Liveness, readiness (checks Postgres) and Prometheus metrics. Unauthenticated.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
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
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health", operation_id = "health_live",
    responses((status = 200, description = "Alive", body = HealthStatus)))]
async fn live() -> axum::Json<HealthStatus> {
    axum::Json(HealthStatus {
        status: "ok".to_owned(),
    })
}

/// The service can serve requests: Postgres answers.
#[utoipa::path(get, path = "/health/ready", tag = "health", operation_id = "health_ready",
    responses(
        (status = 200, description = "Ready", body = HealthStatus),
        (status = 503, description = "Postgres is unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn ready(State(state): State<AppState>) -> Result<axum::Json<HealthStatus>, ApiError> {
    crate::db::ping(&state.db)
        .await
        .map_err(|_| ApiError::Unavailable("the database is unavailable".to_owned()))?;
    Ok(axum::Json(HealthStatus {
        status: "ok".to_owned(),
    }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "health", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    // Job and task gauges come from Postgres (every process sees the same), read at most
    // once per `LETHE_METRICS_CACHE_SECS` however often Prometheus (or anyone) scrapes.
    match state
        .limits
        .gauges(|| crate::metrics::job_gauges(&state.db))
        .await
    {
        Ok(g) => text.push_str(&g),
        Err(e) => tracing::warn!(error = %e, "could not read job gauges"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
