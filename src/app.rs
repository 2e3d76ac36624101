//! `AppState` built from `Config`, and `serve`: the HTTP server with graceful shutdown.

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::auth::Authenticator;
use crate::catalog::Catalog;
use crate::catalog::glue::GlueCatalog;
use crate::config::Config;
use crate::metrics::HttpMetrics;

/// Name of the generated HS256 key in `server_secret`.
pub const JWT_SECRET_NAME: &str = "jwt_hs256";

/// Everything a request handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<Config>,
    pub auth: Arc<Authenticator>,
    pub catalog: Arc<dyn Catalog>,
    pub metrics: Arc<HttpMetrics>,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl AppState {
    /// Connects to Postgres, applies migrations and builds the AWS clients.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = crate::db::connect(&config).await?;
        crate::db::migrate(&db).await?;
        let secret = hs256_secret(&db, &config).await?;
        let auth = Authenticator::new(&config.auth, &secret)?;
        let sdk = crate::aws::sdk_config(&config.aws).await;
        Ok(Self {
            db,
            auth: Arc::new(auth),
            catalog: Arc::new(GlueCatalog::new(&sdk)),
            metrics: Arc::default(),
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
    let router = crate::api::router(state);
    tracing::info!(addr = %listener.local_addr()?, "listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
