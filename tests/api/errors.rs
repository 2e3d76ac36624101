use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use crate::common::TestApp;

fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", app.admin()));
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.body(Body::from(body)).unwrap()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn unreadable_bodies_get_4xx_problems_and_write_nothing(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let json_ct = Some("application/json");
    let cases: Vec<(Option<&str>, Vec<u8>, u16)> = vec![
        (json_ct, b"{not json".to_vec(), 400),
        (json_ct, b"".to_vec(), 400),
        (json_ct, b"{\"matches\": []} trailing".to_vec(), 400),
        (json_ct, vec![0xff, 0xfe, 0x00], 400),
        (None, br#"{"matches":[{"match_id":"x"}]}"#.to_vec(), 415),
        (
            Some("text/plain"),
            br#"{"matches":[{"match_id":"x"}]}"#.to_vec(),
            415,
        ),
        (json_ct, br#"{"matches": {"match_id": "x"}}"#.to_vec(), 422),
        (json_ct, br#"[1, 2]"#.to_vec(), 422),
        (json_ct, vec![b' '; 17 * 1024 * 1024], 413),
    ];
    for (ct, body, status) in cases {
        let reply = app
            .send(raw(
                &app,
                Method::PATCH,
                "/v1/queue/matches",
                ct,
                body.clone(),
            ))
            .await;
        reply.problem(status);
    }
    assert_eq!(app.count("deletion_queue_item").await, 0);
    assert_eq!(app.count("audit_event").await, 0);
    // application/problem+json style suffixes and charset parameters are JSON too.
    let ok = app
        .send(raw(
            &app,
            Method::PATCH,
            "/v1/queue/matches",
            Some("application/json; charset=utf-8"),
            br#"{"matches":[{"match_id":"x"}]}"#.to_vec(),
        ))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn nul_characters_and_unstorable_times_are_refused_not_crashed_on(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let reply = app
        .patch(
            "/v1/queue/matches",
            json!({"matches": [{"match_id": "a\u{0}b"}]}),
        )
        .await;
    assert_eq!(reply.invalid_fields(), ["matches[0].match_id"]);
    let reply = app
        .patch(
            "/v1/queue/matches",
            json!({"matches": [{"match_id": "a", "data_mappers": ["\u{0}"]}]}),
        )
        .await;
    assert_eq!(reply.invalid_fields(), ["matches[0].data_mappers[0]"]);
    let reply = app
        .patch(
            "/v1/queue/matches",
            json!({"matches": [{"match_id": "a", "deadline": "-2000-01-01T00:00:00Z"}]}),
        )
        .await;
    assert_eq!(reply.invalid_fields(), ["matches[0].deadline"]);
    for query in [
        "/v1/queue?data_mapper=%00",
        "/v1/data_mappers?start_at=a%00",
        "/v1/audit_events?actor=%00",
        "/v1/queue?deadline_before=0001-01-01T00:00:00Z",
        "/v1/audit_events?since=0001-01-01T00:00:00Z",
    ] {
        app.get(query).await.problem(400);
    }
    app.get("/v1/data_mappers/a%00").await.problem(404);
    app.get("/v1/data_mappers/a%00/access_policy")
        .await
        .problem(404);
    app.delete("/v1/data_mappers/a%00", None).await.problem(404);
    assert_eq!(app.count("deletion_queue_item").await, 0);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn unknown_routes_and_methods_get_problems(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    app.get("/v1/nothing-here").await.problem(404);
    app.call(
        Method::POST,
        "/v1/settings",
        Some(&app.admin()),
        Some(json!({})),
    )
    .await
    .problem(405);
    app.get("/v1/data_mappers/ghost").await.problem(404);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn health_metrics_docs_and_request_ids_are_served(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let live = app.call(Method::GET, "/health/live", None, None).await;
    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(live.body, json!({"status": "ok"}));
    assert_eq!(
        app.call(Method::GET, "/health/ready", None, None)
            .await
            .status,
        StatusCode::OK
    );
    assert!(live.headers.contains_key("x-request-id"));
    let given = app
        .send(
            Request::builder()
                .uri("/health/live")
                .header("x-request-id", "abc-123")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    // The server names every request; the client's id is echoed beside it, not used.
    assert_ne!(given.headers["x-request-id"], "abc-123");
    assert_eq!(given.headers["x-client-request-id"], "abc-123");

    app.get("/v1/data_mappers/ghost").await;
    let metrics = app.metrics().await;
    let text = metrics.body.as_str().unwrap();
    assert!(text.contains(r#"lethe_http_requests_total{method="GET",route="/v1/data_mappers/{data_mapper_id}",status="404"} 1"#), "{text}");
    assert!(text.contains("lethe_http_request_duration_seconds_bucket"));
    assert!(!text.contains("ghost"), "raw paths must not become labels");

    let spec = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(spec.status, StatusCode::OK);
    assert_eq!(spec.body["info"]["title"], "Lethe");
    let docs = app.call(Method::GET, "/docs/", None, None).await;
    assert_eq!(docs.status, StatusCode::OK);
    assert!(docs.body.as_str().unwrap().contains("swagger"));
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn readiness_fails_when_postgres_is_gone(pool: sqlx::PgPool) {
    let app = TestApp::new(pool.clone());
    pool.close().await;
    app.call(Method::GET, "/health/ready", None, None)
        .await
        .problem(503);
}
