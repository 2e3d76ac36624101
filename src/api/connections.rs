//! The connection loop: every connection accepted is bounded in time and in number.
//!
//! Invariants: a connection must send its first request's headers within
//! `header_read_timeout_secs` of being accepted, whatever the protocol (the HTTP/1 or
//! HTTP/2 sniffing included); with nothing in flight it is closed `idle_timeout_secs` after
//! its last response, and an HTTP/1 request's headers must be complete
//! `header_read_timeout_secs` after their first byte; HTTP/2 connections are pinged and
//! carry at most `http2_max_streams` streams. At most `max_connections` connections are
//! served; beyond them a reserve of [`HEALTH_RESERVE`] HTTP/1 connections, each answered
//! once, serves `/health/*` only (503 to anything else), and when the reserve is full the
//! oldest of its connections gives way to the newest, so a flood of silent sockets cannot
//! keep a health probe out. The accept loop never waits on a permit.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::LimitsConfig;

/// Connections kept for health probes while every one of `max_connections` is taken.
pub const HEALTH_RESERVE: usize = 8;

/// Request extension: the request came on a reserve connection (every connection was
/// taken), so only `/health/*` is served (see `limits::limit_requests`).
#[derive(Debug, Clone, Copy)]
pub struct OverConnectionLimit;

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish (for at
/// most `drain`), within the bounds of `config` (see the module documentation).
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    config: &LimitsConfig,
    shutdown: CancellationToken,
    drain: Duration,
) -> anyhow::Result<()> {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let reserve = Arc::new(Reserve::default());
    let timeouts = Timeouts::of(config);
    let (main, health_only) = builders(config);
    loop {
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
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        if let Ok(permit) = connections.clone().try_acquire_owned() {
            let service = ConnectionService {
                router: router.clone(),
                activity: activity.clone(),
                reserve: false,
            };
            let connection = graceful.watch(main.serve_connection(io, service).into_owned());
            tokio::spawn(async move {
                supervise(connection, &activity, timeouts, CancellationToken::new()).await;
                drop(permit);
            });
        } else {
            let slot = Reserve::admit(&reserve);
            let service = ConnectionService {
                router: router.clone(),
                activity: activity.clone(),
                reserve: true,
            };
            let connection = graceful.watch(health_only.serve_connection(io, service).into_owned());
            tokio::spawn(async move {
                supervise(connection, &activity, timeouts, slot.evicted.clone()).await;
                drop(slot);
            });
        }
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

/// The builder of ordinary connections (HTTP/1 or HTTP/2, pinged, streams capped) and that
/// of reserve connections (HTTP/1, one request each).
fn builders(config: &LimitsConfig) -> (Builder<TokioExecutor>, Builder<TokioExecutor>) {
    let ping = Duration::from_secs(config.http2_keepalive_secs);
    let mut main = Builder::new(TokioExecutor::new());
    // The supervisor times headers and idleness; hyper's own header timer would close an
    // idle keep-alive connection at the header timeout.
    main.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    main.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(ping)
        .keep_alive_timeout(ping)
        .max_concurrent_streams(config.http2_max_streams);
    let mut health_only = Builder::new(TokioExecutor::new()).http1_only();
    health_only
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(false);
    (main, health_only)
}

/// The time limits of one connection.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header: Duration,
    idle: Duration,
}

impl Timeouts {
    fn of(config: &LimitsConfig) -> Self {
        Self {
            header: Duration::from_secs(config.header_read_timeout_secs),
            idle: Duration::from_secs(config.idle_timeout_secs),
        }
    }
}

/// Polls `connection` until it ends, it passes its deadline (see [`State::deadline`]) or
/// it is `evicted`; dropping it closes the socket.
async fn supervise<F: Future>(
    connection: F,
    activity: &Activity,
    timeouts: Timeouts,
    evicted: CancellationToken,
) {
    tokio::pin!(connection);
    loop {
        let deadline = activity.deadline(timeouts);
        let expiry = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut connection => return,
            _ = activity.changed.notified() => {}
            _ = expiry => {
                if activity.deadline(timeouts).is_some_and(|at| at <= Instant::now()) {
                    return;
                }
            }
            _ = evicted.cancelled() => return,
        }
    }
}

/// What the supervisor of one connection knows of it.
struct Activity {
    state: Mutex<State>,
    /// Woken when the deadline may have moved earlier or appeared.
    changed: Notify,
}

#[derive(Debug)]
struct State {
    accepted: Instant,
    in_flight: usize,
    /// When the last request in flight ended (None: no request yet).
    idle_since: Option<Instant>,
    /// The first byte read since `idle_since`: a request's headers have begun.
    head_started: Option<Instant>,
    http2: bool,
}

impl State {
    /// When the connection is to be closed: none while a request is in flight; else its
    /// first request's headers are due `header` after it was accepted, a later request's
    /// (HTTP/1) `header` after their first byte, and with nothing begun it may idle `idle`.
    fn deadline(&self, timeouts: Timeouts) -> Option<Instant> {
        if self.in_flight > 0 {
            return None;
        }
        Some(match (self.idle_since, self.head_started) {
            (None, _) => self.accepted + timeouts.header,
            (Some(_), Some(head)) if !self.http2 => head + timeouts.header,
            (Some(idle), _) => idle + timeouts.idle,
        })
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(State {
                accepted: Instant::now(),
                in_flight: 0,
                idle_since: None,
                head_started: None,
                http2: false,
            }),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain data, consistent after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deadline(&self, timeouts: Timeouts) -> Option<Instant> {
        self.state().deadline(timeouts)
    }

    /// Bytes arrived: on an idle HTTP/1 connection, the next request's headers began.
    fn read(&self) {
        let mut state = self.state();
        if state.in_flight == 0
            && state.idle_since.is_some()
            && state.head_started.is_none()
            && !state.http2
        {
            state.head_started = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// A request's headers were read; it is in flight until the returned guard drops (with
    /// its response body).
    fn request_started(self: &Arc<Self>, version: Version) -> InFlight {
        let mut state = self.state();
        state.in_flight += 1;
        state.head_started = None;
        state.http2 = version == Version::HTTP_2;
        InFlight(self.clone())
    }
}

/// One request in flight on a connection.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.idle_since = Some(Instant::now());
            state.head_started = None;
        }
        drop(state);
        self.0.changed.notify_one();
    }
}

/// A response body that keeps its request in flight until it is sent or dropped.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The service of one connection: `router`, each request counted in flight (requests on a
/// reserve connection marked [`OverConnectionLimit`]).
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    activity: Arc<Activity>,
    reserve: bool,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.request_started(req.version());
        if self.reserve {
            req.extensions_mut().insert(OverConnectionLimit);
        }
        let router = self.router.clone();
        Box::pin(async move {
            let response = router.oneshot(req).await?;
            Ok(response.map(|body| {
                Body::new(Tracked {
                    body,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// A socket whose reads are reported to its connection's [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The reserve connections open, oldest first.
#[derive(Default)]
struct Reserve {
    open: Mutex<VecDeque<(u64, CancellationToken)>>,
    next: std::sync::atomic::AtomicU64,
}

/// One reserve connection's place; dropping it frees the place.
struct ReserveSlot {
    id: u64,
    evicted: CancellationToken,
    reserve: Arc<Reserve>,
}

impl Reserve {
    /// A place for one more connection; when all [`HEALTH_RESERVE`] are taken, the oldest
    /// connection is told to close.
    fn admit(reserve: &Arc<Self>) -> ReserveSlot {
        let id = reserve
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let evicted = CancellationToken::new();
        let mut open = reserve.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.len() >= HEALTH_RESERVE
            && let Some((_, oldest)) = open.pop_front()
        {
            oldest.cancel();
        }
        open.push_back((id, evicted.clone()));
        ReserveSlot {
            id,
            evicted,
            reserve: reserve.clone(),
        }
    }
}

impl Drop for ReserveSlot {
    fn drop(&mut self) {
        let mut open = self
            .reserve
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    fn state() -> State {
        State {
            accepted: Instant::now(),
            in_flight: 0,
            idle_since: None,
            head_started: None,
            http2: false,
        }
    }

    #[test]
    fn a_first_request_is_due_the_header_timeout_after_accept_and_none_while_one_runs() {
        let mut s = state();
        assert_eq!(s.deadline(T), Some(s.accepted + T.header));
        s.in_flight = 1;
        assert_eq!(s.deadline(T), None);
    }

    #[test]
    fn an_idle_connection_gets_the_idle_timeout_until_a_next_head_begins() {
        let mut s = state();
        let idle = s.accepted + Duration::from_secs(1);
        s.idle_since = Some(idle);
        assert_eq!(s.deadline(T), Some(idle + T.idle));
        let head = idle + Duration::from_secs(55);
        s.head_started = Some(head);
        assert_eq!(s.deadline(T), Some(head + T.header));
        // HTTP/2 frames (pings, window updates) are not a request's headers.
        s.http2 = true;
        assert_eq!(s.deadline(T), Some(idle + T.idle));
    }

    #[tokio::test]
    async fn a_full_reserve_evicts_its_oldest_connection_and_a_closed_one_frees_its_place() {
        let reserve = Arc::new(Reserve::default());
        let mut slots: Vec<ReserveSlot> = (0..HEALTH_RESERVE)
            .map(|_| Reserve::admit(&reserve))
            .collect();
        assert!(slots.iter().all(|s| !s.evicted.is_cancelled()));
        let newest = Reserve::admit(&reserve);
        assert!(slots[0].evicted.is_cancelled());
        assert!(slots[1..].iter().all(|s| !s.evicted.is_cancelled()));
        drop(slots.remove(0));
        drop(slots.remove(0));
        // A place was free: nobody else is evicted.
        let another = Reserve::admit(&reserve);
        assert!(slots.iter().all(|s| !s.evicted.is_cancelled()));
        assert!(!newest.evicted.is_cancelled() && !another.evicted.is_cancelled());
    }
}
