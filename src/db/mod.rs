//! All SQL. One file per table; functions take `impl PgExecutor` so the caller owns the
//! transaction. No `sqlx::query` outside this module.
//!
//! Queries are runtime-checked (`sqlx::query_as` with `const` SQL, not `sqlx::query!`):
//! the build must not need a database or a committed `.sqlx/` cache to stay in step
//! with the migrations, so instead every query is exercised by a `#[sqlx::test]` against
//! a freshly migrated database (the tests in these files, and the API tests that drive
//! each endpoint).

pub mod access_policy;
pub mod audit_event;
pub mod column_classification;
pub mod data_mapper;
pub mod deletion_queue_item;
pub mod job;
pub mod job_data_mapper;
pub mod job_event;
pub mod job_listing;
pub mod job_match;
pub mod job_object;
pub mod job_stats;
pub mod maintenance;
pub mod scheduler;
pub mod server_secret;
pub mod setting;
pub mod task;
pub mod types;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::config::Config;

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects, creating the database first when it does not exist.
pub async fn connect(config: &Config) -> anyhow::Result<PgPool> {
    let url = config.database_url.expose();
    if !sqlx::Postgres::database_exists(url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach Postgres at DATABASE_URL: {e}"))?
    {
        sqlx::Postgres::create_database(url).await?;
        tracing::info!("created the database");
    }
    let pool = PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(url)
        .await?;
    Ok(pool)
}

/// Applies pending migrations (forward-only).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// A round trip to Postgres (readiness).
pub async fn ping(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::query("select 1").execute(pool).await?;
    Ok(())
}

/// True when an error is a violation of the named constraint.
pub fn is_constraint(err: &sqlx::Error, name: &str) -> bool {
    err.as_database_error()
        .and_then(|e| e.constraint())
        .is_some_and(|c| c == name)
}
