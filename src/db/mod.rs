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
pub mod receipt;
pub mod scheduler;
pub mod server_secret;
pub mod setting;
pub mod task;
pub mod types;

use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, MigrateError};
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::config::Config;

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a starting process waits for a Postgres that does not answer yet (starting,
/// restarting, failing over) before it gives up: a worker started during a failover
/// waits for it instead of exiting.
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// Connects, creating the database first when it does not exist; waits up to
/// [`STARTUP_PATIENCE`] for a Postgres that is away.
pub async fn connect(config: &Config) -> anyhow::Result<PgPool> {
    let pool = patiently("connect", || connect_once(config))
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach Postgres at DATABASE_URL: {e}"))?;
    Ok(pool)
}

async fn connect_once(config: &Config) -> sqlx::Result<PgPool> {
    let url = config.database_url.expose();
    if !sqlx::Postgres::database_exists(url).await? {
        sqlx::Postgres::create_database(url).await?;
        tracing::info!("created the database");
    }
    PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
}

/// Applies pending migrations (forward-only); waits, as [`connect`] does, for a Postgres
/// that goes away meanwhile (each migration is one transaction: an interrupted one is
/// applied again from its start).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    // Outer error: Postgres went away (tried again); inner: the migrations' own verdict.
    let ran = patiently("migrate", || async {
        match MIGRATOR.run(pool).await {
            Err(MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _))
                if is_transient(&e) =>
            {
                Err(e)
            }
            verdict => Ok(verdict),
        }
    })
    .await;
    match ran {
        Ok(verdict) => Ok(verdict?),
        Err(e) => Err(anyhow::Error::new(e).context("while executing migrations")),
    }
}

/// Runs `op` again while it fails for a reason that passes (see [`is_transient`]), with
/// a pause that doubles from 250 ms to 4 s, for up to [`STARTUP_PATIENCE`].
async fn patiently<T, F, Fut>(what: &str, mut op: F) -> sqlx::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = sqlx::Result<T>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        match op().await {
            Err(e) if is_transient(&e) && started.elapsed() < STARTUP_PATIENCE => {
                tracing::warn!(error = %e, retry_ms = pause.as_millis() as u64, "{what}: Postgres does not answer; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(4));
            }
            done => return done,
        }
    }
}

/// True when an error says the connection to Postgres failed or the server is shutting
/// down or starting (a restart, a crash, a failover, a terminated backend), not that a
/// statement was wrong: the same work may succeed on a new connection.
pub fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // 08: connection exception; 57P01-57P03: admin / crash shutdown, cannot connect
        // now (starting up); 53300: too many connections (the old ones not yet gone).
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08") || ["57P01", "57P02", "57P03", "53300"].contains(&&*code)
        }),
        _ => false,
    }
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
