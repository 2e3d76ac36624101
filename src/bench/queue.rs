//! `lethe bench queue`: fills a scratch database's deletion queue through the real router
//! (JSON parsing, validation, auth, SQL) in 10,000-item add calls, and at 1k, 10k, 100k
//! and 1M items prints the add-call latency and the list latency (first page, a page deep
//! in the queue, and the two filters), median of repeated calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sqlx::migrate::MigrateDatabase;
use tower::ServiceExt;

use crate::api::auth::{Authenticator, Role, mint_hs256};
use crate::app::AppState;
use crate::catalog::MemoryCatalog;
use crate::config::{Config, Secret};

const MAPPERS: usize = 10;
const LIST_REPEATS: usize = 21;

/// Runs the benchmark up to `total` items in the database `lethe_bench_queue`.
pub async fn run(config: Config, total: usize) -> anyhow::Result<()> {
    let (client, db) = scratch(config).await?;
    for m in 0..MAPPERS {
        let body = json!({"catalog": {"provider": "path", "location": format!("s3://bench/m{m}/")}, "format": "parquet", "columns": ["id"]});
        client
            .call("PUT", format!("/v1/data_mappers/m{m}"), Some(body))
            .await?;
    }

    println!(
        "queue size | add call (items) | add ms | list first page ms | list deep page ms | list ?data_mapper ms | list ?deadline_before ms"
    );
    let mut added = 0usize;
    let mut checkpoints = [1_000usize, 10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|c| *c <= total)
        .peekable();
    while let Some(&checkpoint) = checkpoints.peek() {
        let batch = (checkpoint - added).min(10_000);
        let items: Vec<Value> = (added..added + batch).map(item).collect();
        let body = Some(json!({"matches": items}));
        let (add_time, _) = client
            .call("PATCH", "/v1/queue/matches".to_owned(), body)
            .await?;
        added += batch;
        if added < checkpoint {
            continue;
        }
        checkpoints.next();
        let lists = list_times(&client, &db, added).await?;
        println!(
            "{added:>10} | {batch:>16} | {:>6.1} | {:>18.2} | {:>17.2} | {:>20.2} | {:>24.2}",
            ms(add_time),
            ms(lists[0]),
            ms(lists[1]),
            ms(lists[2]),
            ms(lists[3])
        );
    }
    db.close().await;
    Ok(())
}

/// The router over the scratch database `lethe_bench_queue` (dropped and created
/// again), with an admin's token; and the database.
async fn scratch(mut config: Config) -> anyhow::Result<(Client, sqlx::PgPool)> {
    let url = config.database_url.expose().to_owned();
    let (server, _) = url.rsplit_once('/').unwrap_or((&url, ""));
    let bench_url = format!("{server}/lethe_bench_queue");
    let _ = sqlx::Postgres::drop_database(&bench_url).await;
    config.database_url = Secret::new(bench_url);
    let db = crate::db::connect(&config).await?;
    crate::db::migrate(&db).await?;
    let secret = b"benchmark-secret-benchmark-secret!".to_vec();
    let state = AppState {
        db: db.clone(),
        auth: Arc::new(Authenticator::new(&config.auth, &secret)?),
        catalog: Arc::new(MemoryCatalog::default()),
        lake_formation: Arc::new(crate::catalog::lake_formation::MemoryLakeFormation::default()),
        stores: crate::storage::Stores::offline(),
        metrics: Arc::default(),
        limits: Arc::new(crate::app::limits::Limits::new(&config.limits)),
        temp: Arc::new(crate::jobs::object::temp::TempSpace::of(&config.jobs)),
        receipts: Arc::new(crate::app::receipt_issuer(&db, &config).await?),
        config: Arc::new(config.clone()),
    };
    let token = mint_hs256(
        &secret,
        &config.auth,
        "bench",
        &[Role::Admin],
        chrono::Duration::hours(4),
    )?;
    let router = crate::api::router(state);
    Ok((Client { router, token }, db))
}

/// Median times of the four list calls at `added` items: the first page, a page deep in
/// the queue (checked to be full), by mapper, by deadline.
async fn list_times(
    client: &Client,
    db: &sqlx::PgPool,
    added: usize,
) -> anyhow::Result<[Duration; 4]> {
    let deep = || async {
        let cursor = deep_cursor(db, added / 2).await?;
        Ok::<_, anyhow::Error>(format!("/v1/queue?page_size=100&start_at={cursor}"))
    };
    let (_, page) = client.call("GET", deep().await?, None).await?;
    anyhow::ensure!(
        page["matches"].as_array().is_some_and(|m| m.len() == 100),
        "deep page is short"
    );
    let deep = deep().await?;
    Ok([
        client.median("/v1/queue?page_size=100".to_owned()).await?,
        client.median(deep).await?,
        client
            .median("/v1/queue?page_size=100&data_mapper=m3".to_owned())
            .await?,
        client
            .median("/v1/queue?page_size=100&deadline_before=2027-01-01T00:00:00Z".to_owned())
            .await?,
    ])
}

/// The API's router with a bearer token: every call timed.
struct Client {
    router: axum::Router,
    token: String,
}

impl Client {
    /// `method path`, with `body` as JSON: its time and its JSON answer (null when empty);
    /// an error unless it succeeded.
    async fn call(
        &self,
        method: &str,
        path: String,
        body: Option<Value>,
    ) -> anyhow::Result<(Duration, Value)> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {}", self.token));
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(serde_json::to_vec(&b)?)
            }
            None => Body::empty(),
        };
        let start = Instant::now();
        let response = self.router.clone().oneshot(req.body(body)?).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        let elapsed = start.elapsed();
        anyhow::ensure!(
            status.is_success(),
            "{status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        let value: Value = if bytes.is_empty() || status == StatusCode::NO_CONTENT {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)?
        };
        Ok((elapsed, value))
    }

    /// The median time of `LIST_REPEATS` GETs of `path`.
    async fn median(&self, path: String) -> anyhow::Result<Duration> {
        let mut times = Vec::with_capacity(LIST_REPEATS);
        for _ in 0..LIST_REPEATS {
            times.push(self.call("GET", path.clone(), None).await?.0);
        }
        times.sort();
        Ok(times[LIST_REPEATS / 2])
    }
}

/// Item n: every tenth names one mapper; one in a hundred is due within weeks.
fn item(n: usize) -> Value {
    let mappers = if n.is_multiple_of(10) {
        json!([format!("m{}", (n / 10) % MAPPERS)])
    } else {
        json!([])
    };
    let deadline = if n.is_multiple_of(100) {
        "2026-12-31T00:00:00Z"
    } else {
        "2030-01-01T00:00:00Z"
    };
    json!({"match_id": format!("subject-{n}@example.com"), "data_mappers": mappers, "deadline": deadline, "reference": "BENCH"})
}

async fn deep_cursor(db: &sqlx::PgPool, offset: usize) -> anyhow::Result<uuid::Uuid> {
    Ok(crate::db::deletion_queue_item::id_at(db, i64::try_from(offset)?).await?)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
