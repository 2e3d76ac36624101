//! The test harness: the real router over a fresh migrated database, with an in-memory
//! Glue catalog, and tokens for every role.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use lethe::api::auth::{Authenticator, Role, mint_hs256};
use lethe::app::AppState;
use lethe::catalog::lake_formation::{LakeFormation, MemoryLakeFormation};
use lethe::catalog::{Catalog, MemoryCatalog};
use lethe::config::Config;
use lethe::domain::data_mapper::{Format, TableDef};
use lethe::domain::hive_type::HiveType;
use lethe::storage::Stores;
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

/// The `LETHE_METRICS_TOKEN` of every test app.
pub const METRICS_TOKEN: &str = "metrics-token-metrics-token-metrics!";

pub struct TestApp {
    pub router: axum::Router,
    pub config: Config,
    pub db: PgPool,
    pub state: AppState,
}

/// A response, with its body parsed as JSON when there is one.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// The Glue tables the in-memory catalog knows.
pub fn catalog() -> MemoryCatalog {
    let columns = vec![
        ("customer_id".to_owned(), HiveType::parse("bigint").unwrap()),
        ("first_name".to_owned(), HiveType::parse("string").unwrap()),
        ("last_name".to_owned(), HiveType::parse("string").unwrap()),
        (
            "contact".to_owned(),
            HiveType::parse("struct<email:string,phone:string>").unwrap(),
        ),
    ];
    MemoryCatalog::default()
        .with_table(
            "lake",
            "people",
            TableDef {
                location: Some("s3://lake-bucket/people/".into()),
                columns: columns.clone(),
                partition_keys: vec!["year".into()],
                format: Some(Format::Parquet),
                ..Default::default()
            },
        )
        .with_table(
            "lake",
            "events",
            TableDef {
                location: Some("s3://lake-bucket/events/".into()),
                columns,
                partition_keys: vec![],
                format: Some(Format::Json),
                ..Default::default()
            },
        )
}

/// The roles tests may name as a mapper's `role_arn`.
pub const ALLOWED_ROLES: [&str; 2] = [
    "arn:aws:iam::123456789012:role/*",
    "arn:aws:iam::111111111111:role/lethe-*",
];

impl TestApp {
    pub fn new(db: PgPool) -> Self {
        Self::with(db, Arc::new(catalog()), |_| {})
    }

    /// With real AWS clients (the emulator) for Glue and Lake Formation.
    pub fn with_aws(db: PgPool, catalog: Arc<dyn Catalog>, lf: Arc<dyn LakeFormation>) -> Self {
        Self::build(db, catalog, lf, local_stores(), |_| {})
    }

    pub fn with(db: PgPool, catalog: Arc<dyn Catalog>, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::build(
            db,
            catalog,
            Arc::new(MemoryLakeFormation::default()),
            local_stores(),
            tweak,
        )
    }

    /// With this Lake Formation and the in-memory catalog, the configuration tweaked.
    pub fn with_lake_formation(
        db: PgPool,
        lf: Arc<dyn LakeFormation>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        Self::build(db, Arc::new(catalog()), lf, local_stores(), tweak)
    }

    /// With these object stores (S3 in the emulator, local files).
    pub fn with_stores(db: PgPool, catalog: Arc<dyn Catalog>, stores: Stores) -> Self {
        Self::build(
            db,
            catalog,
            Arc::new(MemoryLakeFormation::default()),
            stores,
            |_| {},
        )
    }

    /// [`TestApp::with_stores`] with its configuration changed by `tweak`.
    pub fn with_stores_and(
        db: PgPool,
        catalog: Arc<dyn Catalog>,
        stores: Stores,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        Self::build(
            db,
            catalog,
            Arc::new(MemoryLakeFormation::default()),
            stores,
            tweak,
        )
    }

    /// This app with its receipts signed by `issuer` (a KMS key, a key file).
    pub fn with_receipts(mut self, issuer: lethe::receipt::Issuer) -> Self {
        self.state.receipts = Arc::new(issuer);
        self.router = lethe::api::router(self.state.clone());
        self
    }

    /// A worker with every task handler, for driving jobs deterministically.
    pub fn worker(&self, id: &str) -> lethe::jobs::tasks::Worker {
        let config = self.state.runtime_config();
        lethe::jobs::runtime::worker(&self.state.engine(), id.to_owned(), &config)
    }

    fn build(
        db: PgPool,
        catalog: Arc<dyn Catalog>,
        lf: Arc<dyn LakeFormation>,
        stores: Stores,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        // A request that fails with a 500 logs why: shown with the failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_max_level(tracing::Level::ERROR)
            .try_init();
        let mut config = Config::from_sources(None, &HashMap::new()).unwrap();
        // The test accounts' roles (LETHE_ALLOWED_ROLE_ARNS).
        config.aws.allowed_role_arns = ALLOWED_ROLES.iter().map(|r| r.to_string()).collect();
        config.metrics_token = Some(lethe::config::Secret::new(METRICS_TOKEN));
        tweak(&mut config);
        let auth = Authenticator::new(&config.auth, SECRET).unwrap();
        let state = AppState {
            db: db.clone(),
            config: Arc::new(config.clone()),
            auth: Arc::new(auth),
            catalog,
            lake_formation: lf,
            stores,
            metrics: Arc::default(),
            limits: Arc::new(lethe::app::limits::Limits::new(&config.limits)),
            temp: Arc::new(lethe::jobs::object::temp::TempSpace::of(&config.jobs)),
            receipts: Arc::new(
                lethe::receipt::Issuer::ephemeral(&config.receipts.deployment_name).unwrap(),
            ),
        };
        Self {
            router: lethe::api::router(state.clone()),
            config,
            db,
            state,
        }
    }

    pub fn token(&self, subject: &str, roles: &[Role]) -> String {
        mint_hs256(
            SECRET,
            &self.config.auth,
            subject,
            roles,
            chrono::Duration::hours(1),
        )
        .unwrap()
    }

    pub fn admin(&self) -> String {
        self.token("admin-user", &[Role::Admin])
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = match body {
            Some(body) => req
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&body).unwrap())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A Prometheus scrape with the metrics token.
    pub async fn metrics(&self) -> Reply {
        self.call(Method::GET, "/metrics", Some(METRICS_TOKEN), None)
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, Some(&self.admin()), None)
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(&self.admin()), Some(body))
            .await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> Reply {
        self.call(Method::POST, path, Some(&self.admin()), body)
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(&self.admin()), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, body: Option<Value>) -> Reply {
        self.call(Method::DELETE, path, Some(&self.admin()), body)
            .await
    }

    /// Rows in a table, to prove rejected requests wrote nothing.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("select count(*) from {table}");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

impl Reply {
    /// Asserts a problem+json response with this status, returning the body.
    #[track_caller]
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
        );
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:lethe:problem:")
        );
        &self.body
    }

    /// The fields named by a 422.
    #[track_caller]
    pub fn invalid_fields(&self) -> Vec<String> {
        self.problem(422)["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A valid Glue-backed mapper body.
pub fn glue_mapper() -> Value {
    serde_json::json!({
        "catalog": {"provider": "glue", "database": "lake", "table": "people"},
        "format": "parquet",
        "columns": ["customer_id", "contact.email"],
        "partition_keys": ["year"],
    })
}

/// A valid path-backed mapper body.
pub fn path_mapper() -> Value {
    serde_json::json!({
        "catalog": {"provider": "path", "location": "s3://lake-bucket/orders/", "format": "json", "partition_keys": ["dt"]},
        "format": "json",
        "columns": ["user.id", "first_name", "last_name"],
    })
}

/// Local lakes confined to the system's temporary directory (where tests make theirs).
pub fn local_stores() -> Stores {
    Stores::offline()
        .with_local_root(Some(&std::env::temp_dir()))
        .unwrap()
}
