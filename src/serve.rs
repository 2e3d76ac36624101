//! Serving: the HTTP API with graceful shutdown (plus the job engine and the grant
//! reconciler in the same process), the ops server of a `lethe worker`, and
//! `lethe healthcheck`.

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::governance::record_drift;

/// Serves the API on `listener` until `shutdown` is cancelled, then drains requests.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if state.auth.uses_jwks() {
        tokio::spawn(refresh_jwks(state.clone(), shutdown.clone()));
    }
    let interval = state.config.grant_reconcile_interval_secs;
    if interval > 0 {
        tokio::spawn(reconcile_grants(state.clone(), interval, shutdown.clone()));
    }
    let engine = tokio::spawn(crate::jobs::runtime::run(
        state.engine(),
        state.runtime_config(),
        shutdown.clone(),
    ));
    let limits = state.config.limits.clone();
    let router = crate::api::router(state);
    tracing::info!(addr = %listener.local_addr()?, "listening");
    crate::api::connections::serve_connections(listener, router, &limits, shutdown, DRAIN).await?;
    engine.await?;
    Ok(())
}

/// How long open requests (event streams included) may go on after shutdown begins.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads the JWKS document again every `LETHE_JWT_JWKS_REFRESH_SECS`, so a key the
/// identity provider rotates in is accepted (and one it removed refused) without a
/// restart. A failed read keeps the keys there are.
async fn refresh_jwks(state: AppState, shutdown: CancellationToken) {
    let every = std::time::Duration::from_secs(state.config.auth.jwks_refresh_secs);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let wanted = state.auth.refresh_wanted().unwrap_or_default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
            // A token named an unknown key (at most once a minute).
            _ = wanted.notified() => {}
        }
        let read = crate::auth::read_jwks(&state.config.auth).await;
        match read.and_then(|doc| state.auth.replace_keys(doc.as_deref().unwrap_or_default())) {
            Ok(keys) => tracing::debug!(keys, "JWKS read again"),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the JWKS document again; keeping the keys")
            }
        }
    }
}

/// Checks grant drift every `interval` seconds until shutdown.
async fn reconcile_grants(state: AppState, interval: u64, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs(interval));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match record_drift(&state.governance()).await {
            Ok(Some(drifted)) => state.metrics.set_drifted_grants(drifted),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not record grant drift"),
        }
    }
}

/// Serves `/health/*` and `/metrics` on `addr` for a `lethe worker` (its connections bounded
/// as the API's are), so probes and Prometheus reach it; the worker runs without them (with a warning) when the address is
/// taken, e.g. by a `lethe serve` on the same host with the default address.
pub async fn spawn_ops(state: AppState, addr: std::net::SocketAddr, shutdown: CancellationToken) {
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            let limits = state.config.limits.clone();
            let ops = crate::api::ops_router(state);
            tracing::info!(%addr, "serving /health and /metrics");
            tokio::spawn(async move {
                crate::api::connections::serve_connections(listener, ops, &limits, shutdown, DRAIN)
                    .await
            });
        }
        Err(e) => {
            tracing::warn!(%addr, error = %e, "cannot listen; no /health or /metrics in this worker")
        }
    }
}

/// `lethe healthcheck`: exits 0 when this host's Lethe answers `/health/live`.
pub async fn healthcheck(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let host = if addr.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let response = reqwest::Client::new()
        .get(format!("http://{host}/health/live"))
        .timeout(std::time::Duration::from_secs(3))
        .send()
        .await
        .with_context(|| format!("no answer from {host}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "{host} answered {}",
        response.status()
    );
    Ok(())
}
