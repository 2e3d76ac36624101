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
pub async fn run(mut config: Config, total: usize) -> anyhow::Result<()> {
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
        config: Arc::new(config.clone()),
    };
    let router = crate::api::router(state);
    let token = mint_hs256(
        &secret,
        &config.auth,
        "bench",
        &[Role::Admin],
        chrono::Duration::hours(4),
    )?;
    let call = |method: &str, path: String, body: Option<Value>| {
        let router = router.clone();
        let token = token.clone();
        let method = method.to_owned();
        async move {
            let mut req = Request::builder()
                .method(method.as_str())
                .uri(path)
                .header("authorization", format!("Bearer {token}"));
            let body = match body {
                Some(b) => {
                    req = req.header("content-type", "application/json");
                    Body::from(serde_json::to_vec(&b)?)
                }
                None => Body::empty(),
            };
            let start = Instant::now();
            let response = router.oneshot(req.body(body)?).await?;
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
            Ok::<_, anyhow::Error>((elapsed, value))
        }
    };
    for m in 0..MAPPERS {
        let body = json!({"catalog": {"provider": "path", "location": format!("s3://bench/m{m}/")}, "format": "parquet", "columns": ["id"]});
        call("PUT", format!("/v1/data_mappers/m{m}"), Some(body)).await?;
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
        let (add_time, _) = call(
            "PATCH",
            "/v1/queue/matches".to_owned(),
            Some(json!({"matches": items})),
        )
        .await?;
        added += batch;
        if added < checkpoint {
            continue;
        }
        checkpoints.next();
        let (_, page) = call(
            "GET",
            format!(
                "/v1/queue?page_size=100&start_at={}",
                deep_cursor(&db, added / 2).await?
            ),
            None,
        )
        .await?;
        anyhow::ensure!(
            page["matches"].as_array().is_some_and(|m| m.len() == 100),
            "deep page is short"
        );
        let deep = format!(
            "/v1/queue?page_size=100&start_at={}",
            deep_cursor(&db, added / 2).await?
        );
        let first = median(&call, "/v1/queue?page_size=100".to_owned()).await?;
        let deep = median(&call, deep).await?;
        let mapper = median(&call, "/v1/queue?page_size=100&data_mapper=m3".to_owned()).await?;
        let deadline = median(
            &call,
            "/v1/queue?page_size=100&deadline_before=2027-01-01T00:00:00Z".to_owned(),
        )
        .await?;
        println!(
            "{added:>10} | {batch:>16} | {:>6.1} | {:>18.2} | {:>17.2} | {:>20.2} | {:>24.2}",
            ms(add_time),
            ms(first),
            ms(deep),
            ms(mapper),
            ms(deadline)
        );
    }
    db.close().await;
    Ok(())
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

async fn median<F, Fut>(call: &F, path: String) -> anyhow::Result<Duration>
where
    F: Fn(&str, String, Option<Value>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Duration, Value)>>,
{
    let mut times = Vec::with_capacity(LIST_REPEATS);
    for _ in 0..LIST_REPEATS {
        times.push(call("GET", path.clone(), None).await?.0);
    }
    times.sort();
    Ok(times[LIST_REPEATS / 2])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
