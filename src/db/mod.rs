//! All SQL. One file per table; functions take `impl PgExecutor` so the caller owns the
//! transaction. No `sqlx::query` outside this module.
//!
//! Queries are runtime-checked (`sqlx::query_as` with `const` SQL, not `sqlx::query!`):
//! the build must not need a database or a committed `.sqlx/` cache to stay in step
//! with the migrations, so instead every query is exercised by a `#[sqlx::test]` against
//! a freshly migrated database (the tests in these files, and the API tests that drive
//! each endpoint).

pub mod access_policy;
pub mod audit_checkpoint;
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

/// Connects as the owner role, for `lethe migrate`: `LETHE_MIGRATION_DATABASE_URL`, else
/// `DATABASE_URL` (one role for everything: a development set-up).
pub async fn connect_for_migrations(config: &Config) -> anyhow::Result<PgPool> {
    let Some(url) = &config.migration_database_url else {
        return connect(config).await;
    };
    let owner = Config {
        database_url: url.clone(),
        db_max_connections: 2,
        ..config.clone()
    };
    patiently("connect", || connect_once(&owner))
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach Postgres at LETHE_MIGRATION_DATABASE_URL: {e}"))
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

/// What a starting `serve` or `worker` does about the schema: apply pending migrations
/// when its role owns them (one role for everything, or a fresh database), else (the
/// runtime role, see README "Audit trail") check that every migration this binary knows
/// was applied by `lethe migrate`, and refuse to start, naming it, when one was not.
pub async fn prepare_schema(pool: &PgPool) -> anyhow::Result<()> {
    let owns: bool = sqlx::query_scalar(
        r#"select coalesce((select pg_has_role(current_user, c.relowner, 'USAGE')
                            from pg_class c where c.oid = to_regclass('_sqlx_migrations')), true)"#,
    )
    .fetch_one(pool)
    .await?;
    if owns {
        return migrate(pool).await.map_err(|e| {
            e.context("cannot apply the migrations (if this role is the runtime role, run `lethe migrate` with the owner role's LETHE_MIGRATION_DATABASE_URL first)")
        });
    }
    let pending = pending_migrations(pool).await?;
    if let Some(first) = pending.first() {
        anyhow::bail!(
            "the database schema lacks {} migration(s) this binary needs (first: {first}); this role does not own the schema: run `lethe migrate` with the owner role (LETHE_MIGRATION_DATABASE_URL)",
            pending.len()
        );
    }
    tracing::info!(
        "schema up to date (migrations are applied by `lethe migrate`: this role does not own them)"
    );
    Ok(())
}

/// The embedded migrations the database has not applied (`version_description`).
pub async fn pending_migrations(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    let applied: Vec<i64> =
        sqlx::query_scalar("select version from _sqlx_migrations where success")
            .fetch_all(pool)
            .await?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .map(|m| format!("{}_{}", m.version, m.description))
        .collect())
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

/// The runtime role of tests: a login member of `lethe_runtime` (created once per cluster).
#[cfg(test)]
pub(crate) async fn runtime_pool(owner: &PgPool) -> PgPool {
    const LOGIN: &str = "lethe_runtime_test";
    let created = sqlx::query(
        "do $$ begin
             if not exists (select 1 from pg_roles where rolname = 'lethe_runtime_test') then
                 create role lethe_runtime_test login in role lethe_runtime;
             end if;
         exception when duplicate_object or unique_violation then null;
         end $$",
    )
    .execute(owner)
    .await;
    created.expect("create the test's runtime login");
    let options = owner.connect_options().as_ref().clone().username(LOGIN);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .expect("connect as the runtime role");
    let me: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(me, LOGIN);
    pool
}

/// Creates (or gives a new password to) `login`, a login member of `lethe_runtime`
/// (`lethe demo`). `login` and `password` must be plain identifiers / hex: they are
/// written into the statement (role statements take no parameters).
pub async fn ensure_runtime_login(pool: &PgPool, login: &str, password: &str) -> sqlx::Result<()> {
    let plain =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !plain(login) || !plain(password) {
        return Err(sqlx::Error::Protocol(
            "a role name or password that is not plain".into(),
        ));
    }
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_roles where rolname = $1)")
            .bind(login)
            .fetch_one(pool)
            .await?;
    let verb = if exists { "alter" } else { "create" };
    let sql = format!("{verb} role {login} login password '{password}'");
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await?;
    let grant = format!("grant lethe_runtime to {login}");
    sqlx::query(sqlx::AssertSqlSafe(grant))
        .execute(pool)
        .await?;
    Ok(())
}

/// True when an error is a violation of the named constraint.
pub fn is_constraint(err: &sqlx::Error, name: &str) -> bool {
    err.as_database_error()
        .and_then(|e| e.constraint())
        .is_some_and(|c| c == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The evidence tables: the runtime role may only read and append.
    const APPEND_ONLY: [&str; 4] = ["audit_event", "audit_checkpoint", "receipt", "receipt_key"];

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_runtime_role_appends_to_evidence_and_changes_every_other_table(pool: PgPool) {
        let tables: Vec<(String, bool, bool, bool, bool)> = sqlx::query_as(
            "select tablename::text,
                    has_table_privilege('lethe_runtime', quote_ident(tablename), 'SELECT'),
                    has_table_privilege('lethe_runtime', quote_ident(tablename), 'INSERT'),
                    has_table_privilege('lethe_runtime', quote_ident(tablename), 'UPDATE'),
                    has_table_privilege('lethe_runtime', quote_ident(tablename), 'DELETE')
             from pg_tables where schemaname = current_schema() order by 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(tables.len() > 20, "{tables:?}");
        for (table, select, insert, update, delete) in tables {
            let expected = if table == "_sqlx_migrations" {
                (true, false, false, false)
            } else if APPEND_ONLY.contains(&table.as_str()) {
                (true, true, false, false)
            } else {
                (true, true, true, true)
            };
            assert_eq!((select, insert, update, delete), expected, "{table}");
        }
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_runtime_role_starts_on_a_current_schema_and_refuses_an_old_one(pool: PgPool) {
        let runtime = runtime_pool(&pool).await;
        prepare_schema(&runtime).await.unwrap();
        assert!(pending_migrations(&runtime).await.unwrap().is_empty());
        // The runtime-role migration (it may run again) taken off the list of those applied.
        const ROLES: i64 = 20261213100300;
        sqlx::query("delete from _sqlx_migrations where version = $1")
            .bind(ROLES)
            .execute(&pool)
            .await
            .unwrap();
        let err = prepare_schema(&runtime).await.unwrap_err().to_string();
        assert!(
            err.contains("lethe migrate") && err.contains(&ROLES.to_string()),
            "{err}"
        );
        // The owner (one role for everything) applies it at start, and the runtime role
        // then starts.
        prepare_schema(&pool).await.unwrap();
        assert!(pending_migrations(&pool).await.unwrap().is_empty());
        prepare_schema(&runtime).await.unwrap();
    }
}
