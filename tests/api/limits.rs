//! Server limits, as a client that asks too much would meet them: slow headers, too many
//! requests or event streams at once, streams that never end, large bodies, and scrapes
//! that would each query the database.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::common::{METRICS_TOKEN, TestApp, catalog};
use crate::jobs::{local_lake, people_mapper, queue, start_dry_run};

/// Serves `app` on a loopback port through Lethe's connection loop; returns the address.
pub(crate) async fn serve(app: &TestApp, shutdown: CancellationToken) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let router = app.router.clone();
    let limits = app.config.limits.clone();
    tokio::spawn(async move {
        lethe::api::connections::serve_connections(
            listener,
            router,
            &limits,
            shutdown,
            Duration::from_secs(1),
        )
        .await
    });
    address
}

/// Reads what the server sends until it closes the connection (a hang guard of 60 s
/// stops a broken test; it is not a timing assertion).
pub(crate) async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut out))
        .await
        .expect("the server never closed the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) async fn get_over_tcp(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    read_to_close(&mut stream).await
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_client_that_never_finishes_its_headers_is_dropped_and_others_are_served(
    db: sqlx::PgPool,
) {
    let app = TestApp::with(db, Arc::new(catalog()), |c| {
        c.limits.header_read_timeout_secs = 1;
    });
    let shutdown = CancellationToken::new();
    let address = serve(&app, shutdown.clone()).await;
    let mut slow = TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // The server closes the connection without answering the request it never got.
    let answer = read_to_close(&mut slow).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    let live = get_over_tcp(&address, "/health/live").await;
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    shutdown.cancel();
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn requests_beyond_the_concurrency_limit_get_503_with_retry_after_and_slow_ones_time_out(
    db: sqlx::PgPool,
) {
    let app = TestApp::with(db, Arc::new(catalog()), |c| {
        c.limits.max_concurrent_requests = 1;
        c.limits.request_timeout_secs = 2;
    });
    let shutdown = CancellationToken::new();
    let address = serve(&app, shutdown.clone()).await;
    // A request whose body never finishes arriving holds the only permit.
    let mut holder = TcpStream::connect(&address).await.unwrap();
    holder
        .write_all(
            format!(
                "PATCH /v1/queue/matches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"matches\": [",
                app.admin()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Until the permit is taken, others may still get through: ask until one is refused.
    let mut refused = String::new();
    for _ in 0..200 {
        let answer = get_over_tcp(&address, "/v1/settings").await;
        if answer.starts_with("HTTP/1.1 503") {
            refused = answer;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 1"),
        "{refused}"
    );
    assert!(refused.contains("application/problem+json"), "{refused}");
    // Health probes are never refused.
    let live = get_over_tcp(&address, "/health/live").await;
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    // The slow request is abandoned at its time limit, with a problem, and wrote nothing.
    let answer = read_to_close(&mut holder).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("did not finish within 2 s"), "{answer}");
    assert_eq!(app.count("deletion_queue_item").await, 0);
    // The permit is back.
    let settings = get_over_tcp(&address, "/v1/settings").await;
    assert!(!settings.starts_with("HTTP/1.1 503"), "{settings}");
    shutdown.cancel();
}

fn stream_request(app: &TestApp, job: &str) -> Request<Body> {
    Request::builder()
        .uri(format!("/v1/jobs/{job}/events"))
        .header("authorization", format!("Bearer {}", app.admin()))
        .header("accept", "text/event-stream")
        .body(Body::empty())
        .unwrap()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn the_101st_event_stream_gets_503_and_a_stream_ends_at_its_maximum_duration(
    db: sqlx::PgPool,
) {
    let root = local_lake();
    let app = TestApp::with(db, Arc::new(catalog()), |c| {
        c.limits.event_stream_max_secs = 1;
    });
    app.put("/v1/data_mappers/people", people_mapper(&root, &["id"]))
        .await;
    queue(&app, json!([{"match_id": 5}])).await;
    // Never run: the job stays active, so its streams would never end by themselves.
    let job = start_dry_run(&app, &[]).await;
    let mut open = Vec::new();
    for _ in 0..app.config.limits.max_event_streams {
        let response = app
            .router
            .clone()
            .oneshot(stream_request(&app, &job))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        open.push(response);
    }
    let refused = app.send(stream_request(&app, &job)).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    assert_eq!(refused.headers["retry-after"], "1");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("100 event streams")
    );
    // A stream ends at the maximum duration (the client resumes with Last-Event-ID), and
    // its place is free again.
    let first = open.pop().unwrap();
    let body = tokio::time::timeout(Duration::from_secs(60), first.into_body().collect())
        .await
        .expect("the stream never ended")
        .unwrap()
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("event: job_created"), "{text}");
    assert!(text.contains("id: "), "{text}");
    let again = app
        .router
        .clone()
        .oneshot(stream_request(&app, &job))
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    drop(open);
    std::fs::remove_dir_all(root).unwrap();
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn bodies_are_limited_to_2_mib_except_the_queues_which_bounds_composites(db: sqlx::PgPool) {
    let app = TestApp::new(db);
    assert_eq!(app.config.max_body_bytes, 2 * 1024 * 1024);
    let mut mapper = crate::common::glue_mapper();
    mapper["padding"] = json!("x".repeat(3 * 1024 * 1024));
    app.put("/v1/data_mappers/big", mapper).await.problem(413);
    // The queue takes up to 16 MiB; a composite of 300,000 parts is refused by
    // its part limit, after a linear read of the body.
    let parts: Vec<_> = (0..300_000)
        .map(|i| json!({"column": "customer_id", "value": i}))
        .collect();
    let body = json!({"matches": [{"match_id": parts}]});
    let size = serde_json::to_vec(&body).unwrap().len();
    assert!(size > 8 * 1024 * 1024 && size < 16 * 1024 * 1024, "{size}");
    let r = app.patch("/v1/queue/matches", body).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.body.to_string().contains("at most 32 parts"),
        "{}",
        r.body
    );
    assert_eq!(app.count("deletion_queue_item").await, 0);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn metrics_read_the_database_gauges_once_per_cache_period(db: sqlx::PgPool) {
    let scrape = |app: &TestApp| {
        let app_router = app.router.clone();
        async move {
            let response = app_router
                .oneshot(
                    Request::get("/metrics")
                        .header("authorization", format!("Bearer {METRICS_TOKEN}"))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let jobs: Vec<String> = String::from_utf8_lossy(&body)
                .lines()
                .filter(|l| l.starts_with("lethe_jobs{"))
                .map(str::to_owned)
                .collect();
            assert!(!jobs.is_empty());
            jobs
        }
    };
    let root = local_lake();
    let cached = TestApp::with(db.clone(), Arc::new(catalog()), |c| {
        c.limits.metrics_cache_secs = 3600;
    });
    let before = scrape(&cached).await;
    cached
        .put("/v1/data_mappers/people", people_mapper(&root, &["id"]))
        .await;
    queue(&cached, json!([{"match_id": 5}])).await;
    start_dry_run(&cached, &[]).await;
    assert_eq!(
        scrape(&cached).await,
        before,
        "a scrape within the period reuses the gauges"
    );
    let uncached = TestApp::with(db, Arc::new(catalog()), |c| {
        c.limits.metrics_cache_secs = 0;
    });
    assert_ne!(
        scrape(&uncached).await,
        before,
        "a fresh read sees the new job"
    );
    std::fs::remove_dir_all(root).unwrap();
}

/// Clients that open report downloads and read them slowly (or never): every caller's
/// reports share `LETHE_MAX_REPORT_STREAMS`. One more is refused with 503 and
/// `Retry-After` while they are open, and served again once one of them is done.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn report_streams_share_a_limit_and_the_next_one_waits_for_a_free_place(db: sqlx::PgPool) {
    let root = local_lake();
    let app = TestApp::with(db, Arc::new(catalog()), |c| {
        c.limits.max_report_streams = 2;
    });
    app.put("/v1/data_mappers/people", people_mapper(&root, &["id"]))
        .await;
    queue(&app, json!([{"match_id": 5}])).await;
    let job = start_dry_run(&app, &[]).await;
    let report = |who: &str, role: lethe::api::auth::Role| {
        Request::builder()
            .uri(format!("/v1/jobs/{job}/report"))
            .header(
                "authorization",
                format!("Bearer {}", app.token(who, &[role])),
            )
            .body(Body::empty())
            .unwrap()
    };
    use lethe::api::auth::Role;
    // Two callers each open a download and do not read it.
    let mut open = Vec::new();
    for (who, role) in [("ann", Role::Auditor), ("otto", Role::Operator)] {
        let response = app.router.clone().oneshot(report(who, role)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        open.push(response);
    }
    // A third caller is refused while they are open.
    let refused = app.send(report("ada", Role::Admin)).await;
    refused.problem(503);
    assert_eq!(refused.headers["retry-after"], "1");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("2 job reports"),
        "{}",
        refused.body
    );
    // One download read to its end frees its place; the held one is still whole.
    let done = open.pop().unwrap();
    let body = tokio::time::timeout(Duration::from_secs(60), done.into_body().collect())
        .await
        .expect("the report never ended")
        .unwrap()
        .to_bytes();
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(parsed["job"]["job_id"], job.as_str());
    let again = app.send(report("ada", Role::Admin)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["job"]["job_id"], job.as_str());
    // A download dropped half-way (the client went away) frees its place too.
    drop(open);
    let mut reopened = Vec::new();
    for _ in 0..2 {
        let response = app
            .router
            .clone()
            .oneshot(report("ann", Role::Auditor))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        reopened.push(response);
    }
    app.send(report("ann", Role::Auditor)).await.problem(503);
    std::fs::remove_dir_all(root).unwrap();
}
