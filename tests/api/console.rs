//! The console's server side: its embedded files with a strict content security policy,
//! and the API it needs (who am I, the Glue browser, the queue summary).

use axum::http::{Method, StatusCode};
use lethe::api::auth::Role;
use serde_json::json;

use crate::common::TestApp;

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn the_console_is_served_from_the_binary_with_a_strict_policy(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let page = app.call(Method::GET, "/console", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = page.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
    assert!(!policy.contains("unsafe-inline"));
    assert_eq!(page.headers["x-frame-options"], "DENY");
    let html = page.body.as_str().unwrap();
    assert!(html.contains("/console/app.js"));
    // No inline script (the policy would refuse it anyway).
    assert!(!html.contains("<script>") && !html.contains("<script type=\"module\">"));
    for file in [
        "app.js",
        "style.css",
        "vendor/preact.js",
        "vendor/hooks.js",
        "vendor/htm.js",
    ] {
        let r = app
            .call(Method::GET, &format!("/console/{file}"), None, None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{file}");
    }
    let js = app.call(Method::GET, "/console/app.js", None, None).await;
    assert!(
        js.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    // Only the embedded files: no path reaches anything else.
    for path in [
        "/console/../Cargo.toml",
        "/console/%2e%2e/Cargo.toml",
        "/console/nope.js",
    ] {
        app.call(Method::GET, path, None, None).await.problem(404);
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn me_glue_browsing_and_the_queue_summary_answer_what_the_console_shows(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let operator = app.token("olga", &[Role::Operator]);
    let me = app.call(Method::GET, "/v1/me", Some(&operator), None).await;
    assert_eq!(me.body["subject"], "olga");
    assert_eq!(me.body["roles"], json!(["operator"]));
    let actions: Vec<&str> = me.body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(actions.contains(&"job_write") && actions.contains(&"catalog_read"));
    assert!(!actions.contains(&"audit_read") && !actions.contains(&"governance_write"));
    app.call(Method::GET, "/v1/me", None, None)
        .await
        .problem(401);

    let dbs = app
        .call(Method::GET, "/v1/glue/databases", Some(&operator), None)
        .await;
    assert_eq!(dbs.body["databases"], json!(["lake"]));
    let tables = app
        .call(
            Method::GET,
            "/v1/glue/databases/lake/tables",
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(tables.body["tables"], json!(["events", "people"]));
    let people = app
        .call(
            Method::GET,
            "/v1/glue/databases/lake/tables/people",
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(people.status, StatusCode::OK, "{}", people.body);
    let names: Vec<&str> = people.body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"contact.email"),
        "nested fields as paths: {names:?}"
    );
    assert_eq!(people.body["partition_keys"][0]["name"], "year");
    assert_eq!(people.body["format"], "parquet");
    app.call(
        Method::GET,
        "/v1/glue/databases/ghost/tables",
        Some(&operator),
        None,
    )
    .await
    .problem(404);
    app.call(
        Method::GET,
        "/v1/glue/databases/lake/tables/ghost",
        Some(&operator),
        None,
    )
    .await
    .problem(404);

    // The summary: a requester counts only its own items.
    let requester = app.token("rita", &[Role::Requester]);
    let queue = |token: &str, id: &str| {
        let token = token.to_owned();
        let body = json!({"matches": [{"match_id": id}]});
        let app = &app;
        async move {
            app.call(Method::PATCH, "/v1/queue/matches", Some(&token), Some(body))
                .await
        }
    };
    assert_eq!(
        queue(&operator, "a@example.com").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        queue(&requester, "b@example.com").await.status,
        StatusCode::CREATED
    );
    let all = app
        .call(Method::GET, "/v1/queue/summary", Some(&operator), None)
        .await;
    assert_eq!(all.body["items"], 2);
    assert_eq!(all.body["overdue"], 0);
    assert!(all.body["oldest_created_at"].is_string());
    let own = app
        .call(Method::GET, "/v1/queue/summary", Some(&requester), None)
        .await;
    assert_eq!(own.body["items"], 1);
}
