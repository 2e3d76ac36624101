//! What one process serves at once and for how long, as HTTP: a global limit on requests
//! in flight (503 + `Retry-After` beyond it), a time limit on each request until its
//! response starts, and the answers when an event stream or a report stream is refused.
//! The permits themselves are `app::limits::Limits`; connections are bounded in
//! `connections`.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::connections::OverConnectionLimit;
use crate::api::error::ApiError;
use crate::app::AppState;
use crate::app::limits::Limits;

/// The answer when every event stream is taken: 503 with `Retry-After`.
pub fn streams_busy(limits: &Limits) -> Response {
    busy(&format!(
        "this server already streams {} event streams; retry, or read the events as pages",
        limits.config.max_event_streams
    ))
}

/// The answer when every report stream is taken: 503 with `Retry-After`.
pub fn reports_busy(limits: &Limits) -> Response {
    busy(&format!(
        "this server already streams {} job reports (LETHE_MAX_REPORT_STREAMS); retry shortly",
        limits.config.max_report_streams
    ))
}

/// 503 with `Retry-After: 1` and a problem document saying why.
fn busy(detail: &str) -> Response {
    let mut response = ApiError::Unavailable(detail.to_owned()).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Middleware: at most `max_concurrent_requests` requests in flight (health probes are
/// never refused), each answered within `request_timeout_secs` (the time to the start of
/// the response: a stream's body is not limited here). A connection of the health reserve
/// (every connection was taken) is answered only for `/health/*`.
pub async fn limit_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/health/") {
        return next.run(req).await;
    }
    let limits = &state.limits;
    if req.extensions().get::<OverConnectionLimit>().is_some() {
        return busy(&format!(
            "this server has {} connections open already; retry shortly",
            limits.config.max_connections
        ));
    }
    let Some(_permit) = limits.request() else {
        return busy(&format!(
            "this server is serving {} requests already; retry shortly",
            limits.config.max_concurrent_requests
        ));
    };
    let timeout = Duration::from_secs(limits.config.request_timeout_secs);
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable(format!(
            "the request did not finish within {} s and was abandoned (its transaction rolled back)",
            timeout.as_secs()
        ))
        .into_response(),
    }
}
