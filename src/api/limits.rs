//! What one process serves at once and for how long: a global limit on requests in
//! flight (503 + `Retry-After` beyond it), a time limit on each request until its response
//! starts, a limit on open event streams and on how long each stays open, and the
//! connection loop that drops clients too slow to send their headers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::api::error::ApiError;
use crate::app::AppState;
use crate::config::LimitsConfig;

/// The live state of the limits: permits for requests and event streams, and the
/// `/metrics` database gauges last read.
pub struct Limits {
    pub config: LimitsConfig,
    requests: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    gauges: tokio::sync::Mutex<Option<(Instant, String)>>,
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            config: config.clone(),
            requests: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            streams: Arc::new(Semaphore::new(config.max_event_streams)),
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
/// the response: a stream's body is not limited here).
pub async fn limit_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/health/") {
        return next.run(req).await;
    }
    let limits = &state.limits;
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

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish (for at
/// most `drain`). A connection that has not sent a request's headers within
/// `header_read_timeout_secs` is closed; at most `max_connections` are open at once.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    config: &LimitsConfig,
    shutdown: CancellationToken,
    drain: Duration,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let header_timeout = Duration::from_secs(config.header_read_timeout_secs);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit?,
            _ = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait, then accept again.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        builder.http2().timer(TokioTimer::new());
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(drain) => {
            tracing::warn!(seconds = drain.as_secs(), "requests still open after the drain time; stopping");
        }
    }
    Ok(())
}
