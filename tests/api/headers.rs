//! Response headers as a browser or a cache in between would read them: every route
//! carries the security headers, `/docs` a policy Swagger UI works under, `/v1/*` is never
//! stored; `/metrics` on the API port needs its token.

use std::sync::Arc;

use axum::http::{Method, StatusCode};

use crate::common::{METRICS_TOKEN, Reply, TestApp, catalog};

#[track_caller]
fn assert_security_headers(path: &str, reply: &Reply) {
    let h = &reply.headers;
    assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    assert_eq!(h["x-frame-options"], "DENY", "{path}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    let policy = h["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("frame-ancestors 'none'"),
        "{path}: {policy}"
    );
    assert!(!policy.contains("unsafe-eval"), "{path}: {policy}");
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn every_route_carries_the_security_headers_and_v1_answers_are_never_stored(
    db: sqlx::PgPool,
) {
    let app = TestApp::new(db);
    let admin = app.admin();
    let cases: [(&str, Option<&str>, u16); 11] = [
        ("/v1/queue", Some(&admin), 200),
        ("/v1/queue", None, 401),
        ("/v1/nope", Some(&admin), 404),
        ("/metrics", Some(METRICS_TOKEN), 200),
        ("/metrics", None, 401),
        ("/health/live", None, 200),
        ("/openapi.json", None, 200),
        ("/docs/", None, 200),
        ("/docs/swagger-initializer.js", None, 200),
        ("/console", None, 200),
        ("/nope", None, 404),
    ];
    for (path, token, status) in cases {
        let reply = app.call(Method::GET, path, token, None).await;
        assert_eq!(reply.status.as_u16(), status, "{path}: {}", reply.body);
        assert_security_headers(path, &reply);
        let cache = reply
            .headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap());
        if path.starts_with("/v1/") {
            assert_eq!(cache, Some("no-store"), "{path}");
        } else {
            assert_ne!(cache, Some("no-store"), "{path}");
        }
    }
    // JSON and text answers may load nothing; /docs loads only its own files (Swagger UI
    // sets inline styles, never inline scripts); the console keeps its stricter policy.
    assert!(
        policy(&app, "/v1/queue")
            .await
            .starts_with("default-src 'none';")
    );
    assert!(
        policy(&app, "/metrics")
            .await
            .starts_with("default-src 'none';")
    );
    let docs = policy(&app, "/docs/").await;
    assert!(docs.contains("script-src 'self';"), "{docs}");
    assert!(docs.contains("connect-src 'self';"), "{docs}");
    assert!(
        !docs.contains("script-src 'self' 'unsafe-inline'"),
        "{docs}"
    );
    let console = policy(&app, "/console").await;
    assert!(!console.contains("unsafe-inline"), "{console}");
    // Swagger UI's page loads its scripts as files, which that policy allows.
    let page = app.call(Method::GET, "/docs/", None, None).await;
    let html = page.body.as_str().unwrap();
    assert!(
        html.contains("<script src=\"./swagger-initializer.js\""),
        "{html}"
    );
    assert!(!html.contains("<script>"), "no inline script: {html}");
}

async fn scrape(app: &TestApp, token: Option<&str>) -> Reply {
    app.call(Method::GET, "/metrics", token, None).await
}

async fn policy(app: &TestApp, path: &str) -> String {
    let reply = app.call(Method::GET, path, Some(&app.admin()), None).await;
    reply.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn metrics_on_the_api_port_need_the_metrics_token_and_a_workers_port_does_not(
    db: sqlx::PgPool,
) {
    let app = TestApp::new(db.clone());
    let ok = scrape(&app, Some(METRICS_TOKEN)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.body.as_str().unwrap().contains("lethe_jobs{"));
    for token in [None, Some("not-the-token"), Some(&app.admin() as &str)] {
        let refused = scrape(&app, token).await;
        refused.problem(401);
        assert!(refused.headers.contains_key("www-authenticate"));
    }
    // No token configured: /metrics is not served on the API port at all.
    let none = TestApp::with(db, Arc::new(catalog()), |c| c.metrics_token = None);
    let refused = scrape(&none, Some(METRICS_TOKEN)).await;
    assert!(
        refused.problem(401)["detail"]
            .as_str()
            .unwrap()
            .contains("LETHE_METRICS_TOKEN")
    );
    // A worker's port (health and metrics only) serves them without a token.
    let ops = TestApp {
        router: lethe::api::ops_router(none.state.clone()),
        config: none.config.clone(),
        db: none.db.clone(),
        state: none.state.clone(),
    };
    let open = scrape(&ops, None).await;
    assert_eq!(open.status, StatusCode::OK);
    assert_security_headers("/metrics (worker)", &open);
}
