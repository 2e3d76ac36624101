//! What one process serves at once and for how long: a global limit on requests in
//! flight (503 + `Retry-After` beyond it), a time limit on each request until its response
//! starts, a limit on open event streams and on how long each stays open, and a limit on
//! report streams (downloads). Connections are bounded in `connections`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::connections::OverConnectionLimit;
use crate::api::error::ApiError;
use crate::app::AppState;
use crate::config::LimitsConfig;

/// The live state of the limits: permits for requests and event streams, and the
/// `/metrics` database gauges last read.
pub struct Limits {
    pub config: LimitsConfig,
    requests: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    reports: Arc<Semaphore>,
    gauges: tokio::sync::Mutex<Option<(Instant, String)>>,
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            config: config.clone(),
            requests: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            streams: Arc::new(Semaphore::new(config.max_event_streams)),
            reports: Arc::new(Semaphore::new(config.max_report_streams)),
            gauges: Default::default(),
        }
    }

    /// A permit for one more event stream, held for as long as the stream is open (None:
    /// every stream is taken; answer [`Limits::streams_busy`]).
    pub fn event_stream(&self) -> Option<OwnedSemaphorePermit> {
        self.streams.clone().try_acquire_owned().ok()
    }

    /// The answer when every event stream is taken: 503 with `Retry-After`.
    pub fn streams_busy(&self) -> Response {
        busy(&format!(
            "this server already streams {} event streams; retry, or read the events as pages",
            self.config.max_event_streams
        ))
    }

    /// A permit for one more report stream, held until its body is sent or dropped (None:
    /// every one is taken; answer [`Limits::reports_busy`]). A report is read from the
    /// database page by page while it is sent, so each open one costs work for as long
    /// as its client takes.
    pub fn report_stream(&self) -> Option<OwnedSemaphorePermit> {
        self.reports.clone().try_acquire_owned().ok()
    }

    /// The answer when every report stream is taken: 503 with `Retry-After`.
    pub fn reports_busy(&self) -> Response {
        busy(&format!(
            "this server already streams {} job reports (LETHE_MAX_REPORT_STREAMS); retry shortly",
            self.config.max_report_streams
        ))
    }

    /// How long an event stream stays open before the client must resume it.
    pub fn event_stream_max(&self) -> Duration {
        Duration::from_secs(self.config.event_stream_max_secs)
    }

    /// The `/metrics` database gauges: those read less than `metrics_cache_secs` ago, else
    /// read again with `read` (one reader at a time; a failed read is not kept).
    pub async fn gauges<F, Fut, E>(&self, read: F) -> Result<String, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String, E>>,
    {
        let mut cached = self.gauges.lock().await;
        let fresh = Duration::from_secs(self.config.metrics_cache_secs);
        if let Some((at, text)) = cached.as_ref()
            && at.elapsed() < fresh
        {
            return Ok(text.clone());
        }
        let text = read().await?;
        *cached = Some((Instant::now(), text.clone()));
        Ok(text)
    }
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
    let Ok(_permit) = limits.requests.clone().try_acquire_owned() else {
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
