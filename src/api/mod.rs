//! The HTTP API: router, middleware (request ids, metrics, body limit, panics → 500
//! problem), the OpenAPI document and the docs UI.

pub mod auth;
pub mod connections;
pub mod console;
pub mod error;
pub mod extract;
pub mod headers;
pub mod health;
pub mod job_gauges;
pub mod limits;
pub mod spec;
pub mod v1;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::app::AppState;
use error::ApiError;

/// Paging by a numeric id (events, a job's objects).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IdPageQuery {
    /// 1 to 1000, default 100.
    pub page_size: Option<u32>,
    /// `next_start` of the previous page.
    pub start_at: Option<i64>,
}

/// Default and largest page sizes of list endpoints.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lethe",
        description = "Privacy operations for S3 data lakes: data mappers, the deletion queue, \
                       erasure jobs and Lake Formation column grants.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "data_mappers", description = "Which tables hold subject data"),
        (name = "queue", description = "Subjects waiting to be erased"),
        (name = "settings", description = "Operator-tunable settings"),
        (name = "jobs", description = "Find, forget, verify and cleanup runs over the queue"),
        (name = "receipts", description = "Signed, hash-chained erasure receipts and their keys"),
        (name = "audit", description = "Who changed what"),
        (name = "governance", description = "PII classification and Lake Formation column grants"),
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "auth", description = "Who is calling"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The routes and their OpenAPI document, before state is attached.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    api_with_limits(crate::config::LimitsConfig::default().queue_max_body_bytes)
}

/// [`api`], the queue's batch add taking bodies of up to `queue_body` bytes.
fn api_with_limits(queue_body: usize) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut spec) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(v1::router_with(queue_body))
        .merge(health::router())
        .split_for_parts();
    spec::name_tagged_variants(&mut spec);
    (routes, spec)
}

/// The OpenAPI document (`lethe openapi`, `/openapi.json`, `openapi/lethe.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The operations endpoints alone (`/health/live`, `/health/ready`, `/metrics`), which
/// `lethe worker` serves so probes and Prometheus reach worker processes too (`/metrics`
/// without a token: a worker's port serves nothing else).
pub fn ops_router(state: AppState) -> Router {
    let (routes, _) = OpenApiRouter::new()
        .merge(health::router())
        .split_for_parts();
    routes
        .fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
        .layer(middleware::from_fn(headers::security_headers))
        .with_state(state)
}

/// The complete application router.
pub fn router(state: AppState) -> Router {
    let (routes, spec) = api_with_limits(state.config.limits.queue_max_body_bytes);
    routes
        .merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
        .merge(console::router())
        .fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            health::metrics_token,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::limit_requests,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), track_metrics))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            // The route template, never the raw path: paths may carry identifiers.
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            tracing::info_span!("request", method = %req.method(), route, request.id = id)
        }))
        .layer(middleware::from_fn(request_ids))
        .layer(middleware::from_fn(headers::security_headers))
        .with_state(state)
}

/// The `x-request-id` a client sent (when it is a reasonable id: 1 to 128 visible ASCII
/// characters), kept beside the server's own in the audit trail.
#[derive(Debug, Clone)]
pub struct ClientRequestId(pub String);

/// Middleware: every request gets an id of the server's (a UUIDv7, in `x-request-id` of
/// the request as handlers see it and of the response); the client's, if any, is moved to
/// [`ClientRequestId`] and echoed as `x-client-request-id`.
async fn request_ids(mut req: Request, next: Next) -> Response {
    let client = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned);
    // A UUID's text is always a valid header value.
    let value = HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    req.headers_mut().insert(REQUEST_ID, value.clone());
    if let Some(client) = &client {
        req.extensions_mut().insert(ClientRequestId(client.clone()));
    }
    let mut response = next.run(req).await;
    response.headers_mut().insert(REQUEST_ID, value);
    if let Some(client) = client.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-client-request-id"), client);
    }
    response
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

async fn track_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    state
        .metrics
        .observe(&method, &route, response.status().as_u16(), start.elapsed());
    response
}

/// Parses `page_size`.
pub fn page_size(raw: Option<u32>) -> Result<i64, ApiError> {
    match raw.unwrap_or(DEFAULT_PAGE_SIZE) {
        n @ 1..=MAX_PAGE_SIZE => Ok(i64::from(n)),
        _ => Err(ApiError::BadRequest(format!(
            "page_size must be between 1 and {MAX_PAGE_SIZE}"
        ))),
    }
}

/// Checks a timestamp query parameter.
pub fn time_param(
    name: &str,
    value: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    match value {
        Some(t) if !crate::domain::validation::is_storable_time(t) => Err(ApiError::BadRequest(
            format!("{name} must be between the years 1970 and 9999"),
        )),
        other => Ok(other),
    }
}

/// Splits a page fetched with `limit + 1` rows into the page and the next cursor.
pub fn split_page<T, K>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> K,
) -> (Vec<T>, Option<K>) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() > limit {
        let next = rows.get(limit).map(&key);
        rows.truncate(limit);
        (rows, next)
    } else {
        (rows, None)
    }
}
