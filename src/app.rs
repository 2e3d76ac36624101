//! `AppState` built from `Config`, and `serve`: the HTTP server with graceful shutdown.

use std::sync::Arc;

use anyhow::Context;
use axum::extract::FromRef;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::auth::Authenticator;
use crate::catalog::Catalog;
use crate::catalog::glue::GlueCatalog;
use crate::catalog::lake_formation::LakeFormation;
use crate::catalog::lake_formation_sdk::SdkLakeFormation;
use crate::config::Config;
use crate::governance::{Governance, record_drift};
use crate::jobs::Engine;
use crate::jobs::runtime::RuntimeConfig;
use crate::metrics::Metrics;
use crate::storage::Stores;
use std::time::Duration;

/// Name of the generated HS256 key in `server_secret`.
pub const JWT_SECRET_NAME: &str = "jwt_hs256";

/// Everything a request handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub auth: Arc<Authenticator>,
    pub catalog: Arc<dyn Catalog>,
    pub lake_formation: Arc<dyn LakeFormation>,
    pub stores: Stores,
    pub metrics: Arc<Metrics>,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl AppState {
    /// The governance service over this state's database, catalog and Lake Formation.
    pub fn governance(&self) -> Governance<'_> {
        Governance {
            db: &self.db,
            catalog: self.catalog.as_ref(),
            lf: self.lake_formation.as_ref(),
        }
    }

    /// The job engine over this state's database, catalog and stores.
    pub fn engine(&self) -> Engine {
        Engine {
            db: self.db.clone(),
            catalog: self.catalog.clone(),
            stores: self.stores.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// How this process runs the job engine.
    pub fn runtime_config(&self) -> RuntimeConfig {
        let jobs = &self.config.jobs;
        RuntimeConfig {
            workers: jobs.workers,
            poll: Duration::from_millis(jobs.poll_ms),
            lease: Duration::from_secs(jobs.lease_secs),
            backoff: Duration::from_secs(1),
            scheduler_interval: Duration::from_secs(jobs.scheduler_interval_secs),
            deadline_margin: chrono::Duration::hours(jobs.deadline_margin_hours as i64),
        }
    }

    /// Connects to Postgres, applies migrations and builds the AWS clients.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = crate::db::connect(&config).await?;
        crate::db::migrate(&db).await?;
        let secret = hs256_secret(&db, &config).await?;
        let auth = Authenticator::new(&config.auth, &secret)?;
        let sdk = crate::aws::sdk_config(&config.aws).await;
        let metrics = Arc::<Metrics>::default();
        let path_style = config.aws.s3_force_path_style;
        Ok(Self {
            db,
            auth: Arc::new(auth),
            catalog: Arc::new(GlueCatalog::with_metrics(&sdk, metrics.clone())),
            lake_formation: Arc::new(SdkLakeFormation::with_metrics(&sdk, metrics.clone())),
            stores: Stores::with_metrics(&sdk, path_style, metrics.clone()),
            metrics,
            config: Arc::new(config),
        })
    }
}

/// The HS256 key: the configured secret, else the one generated and kept in Postgres.
pub async fn hs256_secret(db: &PgPool, config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &config.auth.jwt_secret {
        return Ok(secret.expose().as_bytes().to_vec());
    }
    let mut conn = db.acquire().await?;
    let secret = crate::db::server_secret::get_or_create(&mut conn, JWT_SECRET_NAME, || {
        let mut key = Vec::with_capacity(64);
        while key.len() < 64 {
            key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        }
        key
    })
    .await?;
    Ok(secret)
}

/// Serves the API on `listener` until `shutdown` is cancelled, then drains requests.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let interval = state.config.grant_reconcile_interval_secs;
    if interval > 0 {
        tokio::spawn(reconcile_grants(state.clone(), interval, shutdown.clone()));
    }
    let engine = tokio::spawn(crate::jobs::runtime::run(
        state.engine(),
        state.runtime_config(),
        shutdown.clone(),
    ));
    let router = crate::api::router(state);
    tracing::info!(addr = %listener.local_addr()?, "listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    engine.await?;
    Ok(())
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

/// Serves `/health/*` and `/metrics` on `addr` for a `lethe worker`, so probes and
/// Prometheus reach it; the worker runs without them (with a warning) when the address is
/// taken, e.g. by a `lethe serve` on the same host with the default address.
pub async fn spawn_ops(state: AppState, addr: std::net::SocketAddr, shutdown: CancellationToken) {
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            let ops = crate::api::ops_router(state);
            tracing::info!(%addr, "serving /health and /metrics");
            tokio::spawn(async move {
                axum::serve(listener, ops)
                    .with_graceful_shutdown(async move { shutdown.cancelled().await })
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
