//! `AppState`: everything a request handler or a worker needs, built from `Config`.

pub mod limits;

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::PgPool;

use crate::auth::Authenticator;
use crate::catalog::Catalog;
use crate::catalog::glue::GlueCatalog;
use crate::catalog::lake_formation::LakeFormation;
use crate::catalog::lake_formation_sdk::SdkLakeFormation;
use crate::config::Config;
use crate::governance::Governance;
use crate::jobs::Engine;
use crate::jobs::object::temp::TempSpace;
use crate::jobs::runtime::RuntimeConfig;
use crate::metrics::Metrics;
use crate::receipt::{Issuer, KeySource, LocalKey, Signer};
use crate::storage::Stores;
use limits::Limits;
use std::time::Duration;

/// Name of the generated HS256 key in `server_secret`.
pub const JWT_SECRET_NAME: &str = "jwt_hs256";

/// Name of the generated receipt signing key (PKCS#8) in `server_secret`.
pub const RECEIPT_KEY_NAME: &str = "receipt_es256";

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
    pub limits: Arc<Limits>,
    /// The temporary space of this process's workers.
    pub temp: Arc<TempSpace>,
    /// What signs this deployment's erasure receipts.
    pub receipts: Arc<Issuer>,
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
            max_line_bytes: self.config.jobs.max_line_bytes,
            temp: self.temp.clone(),
            receipts: self.receipts.clone(),
        }
    }

    /// How this process runs the job engine.
    pub fn runtime_config(&self) -> RuntimeConfig {
        let jobs = &self.config.jobs;
        RuntimeConfig {
            workers: jobs.workers,
            poll: Duration::from_millis(jobs.poll_ms),
            lease: Duration::from_secs(jobs.lease_secs),
            max_crashes: jobs.max_crashes as i32,
            backoff: Duration::from_secs(1),
            scheduler_interval: Duration::from_secs(jobs.scheduler_interval_secs),
            deadline_margin: chrono::Duration::hours(jobs.deadline_margin_hours as i64),
        }
    }

    /// Connects to Postgres, applies migrations (or, as the runtime role, checks that
    /// `lethe migrate` did: `db::prepare_schema`) and builds the AWS clients.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = crate::db::connect(&config).await?;
        crate::db::prepare_schema(&db).await?;
        let secret = hs256_secret(&db, &config).await?;
        let auth = Authenticator::load(&config.auth, &secret).await?;
        let receipts = receipt_issuer(&db, &config).await?;
        let sdk = crate::aws::sdk_config(&config.aws).await;
        let metrics = Arc::<Metrics>::default();
        let path_style = config.aws.s3_force_path_style;
        Ok(Self {
            db,
            auth: Arc::new(auth),
            catalog: Arc::new(GlueCatalog::with_metrics(&sdk, metrics.clone())),
            lake_formation: Arc::new(SdkLakeFormation::with_metrics(&sdk, metrics.clone())),
            stores: Stores::with_roles(&sdk, path_style, metrics.clone(), &config.aws)
                .with_local_root(config.local_lake_root.as_deref())?,
            metrics,
            limits: Arc::new(Limits::new(&config.limits)),
            temp: Arc::new(TempSpace::of(&config.jobs)),
            receipts: Arc::new(receipts),
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

/// The receipt signer: the key in `LETHE_RECEIPT_KEY_FILE`, else the AWS KMS key
/// `LETHE_RECEIPT_KMS_KEY_ID`, else the one generated at the first start and kept in
/// Postgres (concurrent first starts keep one). Says which in the log; a key file that
/// cannot be read or is no P-256 private key, or a KMS key that cannot be read or is no
/// P-256 signing key, stops start-up.
pub async fn receipt_issuer(db: &PgPool, config: &Config) -> anyhow::Result<Issuer> {
    let (signer, source) = receipt_signer(db, config).await?;
    let kid = signer.jwk().kid.clone();
    match source {
        KeySource::File => {
            tracing::info!(kid = %kid, "receipts are signed with LETHE_RECEIPT_KEY_FILE's key")
        }
        KeySource::Kms => tracing::info!(
            kid = %kid,
            kms.key_id = config.receipts.kms_key_id.as_deref().unwrap_or_default(),
            "receipts are signed with the AWS KMS key LETHE_RECEIPT_KMS_KEY_ID"
        ),
        KeySource::Generated => tracing::warn!(
            kid = %kid,
            "receipts are signed with a key Lethe generated at its first start and keeps in Postgres (set LETHE_RECEIPT_KEY_FILE or LETHE_RECEIPT_KMS_KEY_ID to sign with a key of your own)"
        ),
    }
    Ok(Issuer {
        signer,
        name: config.receipts.deployment_name.clone(),
        source,
    })
}

/// The configured signer and where its key comes from.
async fn receipt_signer(
    db: &PgPool,
    config: &Config,
) -> anyhow::Result<(Arc<dyn Signer>, KeySource)> {
    use anyhow::Context as _;
    if let Some(path) = &config.receipts.key_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("LETHE_RECEIPT_KEY_FILE: cannot read {}", path.display()))?;
        let key = LocalKey::from_pem(&pem).context("LETHE_RECEIPT_KEY_FILE")?;
        return Ok((Arc::new(key), KeySource::File));
    }
    if let Some(key_id) = &config.receipts.kms_key_id {
        let sdk = crate::aws::sdk_config(&config.aws).await;
        let api = Arc::new(crate::receipt::kms::SdkKms::new(&sdk));
        let key = crate::receipt::kms::KmsKey::connect(api, key_id)
            .await
            .context("LETHE_RECEIPT_KMS_KEY_ID")?;
        return Ok((Arc::new(key), KeySource::Kms));
    }
    let fresh = LocalKey::generate_pkcs8()?;
    let mut conn = db.acquire().await?;
    let der =
        crate::db::server_secret::get_or_create(&mut conn, RECEIPT_KEY_NAME, || fresh).await?;
    Ok((Arc::new(LocalKey::from_der(&der)?), KeySource::Generated))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(key_file: Option<std::path::PathBuf>) -> Config {
        let mut config = Config::from_sources(None, &Default::default()).unwrap();
        config.receipts.key_file = key_file;
        config.receipts.deployment_name = "lake-prod".into();
        config
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_receipt_key_is_the_file_s_else_one_generated_once_and_kept(db: PgPool) {
        let generated = receipt_issuer(&db, &config(None)).await.unwrap();
        let again = receipt_issuer(&db, &config(None)).await.unwrap();
        assert_eq!(generated.source, KeySource::Generated);
        assert_eq!(generated.name, "lake-prod");
        assert_eq!(
            generated.signer.jwk(),
            again.signer.jwk(),
            "kept in Postgres"
        );

        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("key.pem");
        let der = LocalKey::generate_pkcs8().unwrap();
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.encode(&der);
        std::fs::write(
            &pem,
            format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
        )
        .unwrap();
        let file = receipt_issuer(&db, &config(Some(pem.clone())))
            .await
            .unwrap();
        assert_eq!(file.source, KeySource::File);
        assert_eq!(file.signer.jwk(), LocalKey::from_der(&der).unwrap().jwk());

        std::fs::write(&pem, "not a key").unwrap();
        let err = receipt_issuer(&db, &config(Some(pem))).await.unwrap_err();
        assert!(
            format!("{err:#}").starts_with("LETHE_RECEIPT_KEY_FILE"),
            "{err:#}"
        );
        let missing = dir.path().join("missing.pem");
        let err = receipt_issuer(&db, &config(Some(missing)))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("LETHE_RECEIPT_KEY_FILE: cannot read"),
            "{err}"
        );
    }
}
