//! The live state of one process's limits: permits for requests in flight, event streams
//! and report streams, and the `/metrics` database gauges last read. `AppState` holds it;
//! the HTTP side (the middleware, 503 with `Retry-After` when a permit is refused) is
//! `api::limits`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::LimitsConfig;

/// Permits for requests, event streams and report streams, and the cached gauges.
pub struct Limits {
    pub config: LimitsConfig,
    requests: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    reports: Arc<Semaphore>,
    gauges: tokio::sync::Mutex<Option<(Instant, String)>>,
}

impl Limits {
    /// Every permit free, no gauges read yet.
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            config: config.clone(),
            requests: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            streams: Arc::new(Semaphore::new(config.max_event_streams)),
            reports: Arc::new(Semaphore::new(config.max_report_streams)),
            gauges: Default::default(),
        }
    }

    /// A permit for one more request in flight, held until its response starts (None:
    /// `max_concurrent_requests` are in flight).
    pub fn request(&self) -> Option<OwnedSemaphorePermit> {
        self.requests.clone().try_acquire_owned().ok()
    }

    /// A permit for one more event stream, held for as long as the stream is open (None:
    /// every stream is taken).
    pub fn event_stream(&self) -> Option<OwnedSemaphorePermit> {
        self.streams.clone().try_acquire_owned().ok()
    }

    /// A permit for one more report stream, held until its body is sent or dropped (None:
    /// every one is taken). A report is read from the database page by page while it is
    /// sent, so each open one costs work for as long as its client takes.
    pub fn report_stream(&self) -> Option<OwnedSemaphorePermit> {
        self.reports.clone().try_acquire_owned().ok()
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
