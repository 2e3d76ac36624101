use axum::http::Method;
use lethe::api::auth::Role;
use serde_json::{Value, json};

use crate::common::TestApp;

/// Each route class with a request that succeeds for an allowed caller.
fn routes() -> Vec<(&'static str, Method, &'static str, Option<Value>)> {
    vec![
        ("mapper-read", Method::GET, "/v1/data_mappers", None),
        (
            "mapper-read",
            Method::GET,
            "/v1/data_mappers/people/access_policy",
            None,
        ),
        (
            "mapper-write",
            Method::PUT,
            "/v1/data_mappers/people",
            Some(crate::common::glue_mapper()),
        ),
        ("queue-read", Method::GET, "/v1/queue", None),
        (
            "queue-add",
            Method::PATCH,
            "/v1/queue/matches",
            Some(json!({"matches": [{"match_id": "x"}]})),
        ),
        (
            "queue-delete",
            Method::DELETE,
            "/v1/queue/matches",
            Some(
                json!({"matches": [{"deletion_queue_item_id": "0190a0a0-0000-7000-8000-000000000000"}]}),
            ),
        ),
        ("settings-read", Method::GET, "/v1/settings", None),
        (
            "settings-write",
            Method::PUT,
            "/v1/settings",
            Some(json!({
            "find_concurrency": 8, "multipart_threshold_bytes": 104857600,
            "report_retention_days": 90, "job_schedule": null})),
        ),
        ("audit-read", Method::GET, "/v1/audit_events", None),
        (
            "governance-read",
            Method::GET,
            "/v1/catalog/lake/people/columns",
            None,
        ),
        ("governance-read", Method::GET, "/v1/access_policies", None),
        (
            "governance-read",
            Method::POST,
            "/v1/access_policies/plan",
            None,
        ),
        (
            "governance-read",
            Method::GET,
            "/v1/access_policies/enforcement",
            None,
        ),
        (
            "governance-write",
            Method::PUT,
            "/v1/catalog/lake/people/classifications",
            Some(json!({"columns": [{"name": "first_name", "classification": "pii"}]})),
        ),
        (
            "governance-write",
            Method::PUT,
            "/v1/access_policies/analysts",
            Some(json!({
            "principal": "123456789012", "tables": [{"database": "lake", "table": "*"}],
            "access": "non_pii_columns", "permissions": ["SELECT"]})),
        ),
        (
            "governance-write",
            Method::POST,
            "/v1/access_policies/apply",
            Some(json!({})),
        ),
    ]
}

/// The documented matrix, written out independently of the code's.
fn allowed(role: Role, class: &str) -> bool {
    match role {
        Role::Admin => true,
        Role::Operator => class != "audit-read" && !class.starts_with("governance"),
        Role::Requester => matches!(class, "queue-read" | "queue-add"),
        Role::Governance => class.starts_with("governance"),
        Role::Auditor => class.ends_with("-read"),
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn every_role_reaches_exactly_its_route_classes(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    // The access-policy route needs the mapper to exist.
    assert_eq!(
        app.put("/v1/data_mappers/people", crate::common::glue_mapper())
            .await
            .status,
        201
    );
    for role in Role::ALL {
        let token = app.token("someone", &[role]);
        for (class, method, path, body) in routes() {
            let reply = app.call(method.clone(), path, Some(&token), body).await;
            if allowed(role, class) {
                assert!(
                    reply.status.is_success(),
                    "{role:?} {method} {path}: {} {}",
                    reply.status,
                    reply.body
                );
            } else {
                reply.problem(403);
            }
        }
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_token_without_roles_is_forbidden_everywhere(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let token = app.token("nobody", &[]);
    for (_, method, path, body) in routes() {
        app.call(method, path, Some(&token), body)
            .await
            .problem(403);
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn bad_credentials_get_401_with_a_challenge_and_change_nothing(pool: sqlx::PgPool) {
    let app = TestApp::with(pool, std::sync::Arc::new(crate::common::catalog()), |c| {
        c.auth.audience = Some("lethe".into());
        c.auth.issuer = Some("https://idp.example".into());
    });
    let good = app.token("alice", &[Role::Admin]);
    let expired = lethe::api::auth::mint_hs256(
        crate::common::SECRET,
        &app.config.auth,
        "alice",
        &[Role::Admin],
        chrono::Duration::hours(-1),
    )
    .unwrap();
    let foreign = lethe::api::auth::mint_hs256(
        b"some-other-secret-some-other-secret!",
        &app.config.auth,
        "alice",
        &[Role::Admin],
        chrono::Duration::hours(1),
    )
    .unwrap();
    let mut other_aud = app.config.auth.clone();
    other_aud.audience = Some("someone-else".into());
    let wrong_aud = lethe::api::auth::mint_hs256(
        crate::common::SECRET,
        &other_aud,
        "alice",
        &[Role::Admin],
        chrono::Duration::hours(1),
    )
    .unwrap();
    let mut other_iss = app.config.auth.clone();
    other_iss.issuer = Some("https://evil.example".into());
    let wrong_iss = lethe::api::auth::mint_hs256(
        crate::common::SECRET,
        &other_iss,
        "alice",
        &[Role::Admin],
        chrono::Duration::hours(1),
    )
    .unwrap();
    let unsigned = {
        let mut parts: Vec<&str> = good.split('.').collect();
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
        parts[0] = header;
        format!("{}.{}.", parts[0], parts[1])
    };
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        parts[2] = parts[2].chars().rev().collect();
        parts.join(".")
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("garbage", Some("Bearer not-a-jwt".into())),
        ("basic scheme", Some(format!("Basic {good}"))),
        ("expired", Some(format!("Bearer {expired}"))),
        ("foreign key", Some(format!("Bearer {foreign}"))),
        ("wrong audience", Some(format!("Bearer {wrong_aud}"))),
        ("wrong issuer", Some(format!("Bearer {wrong_iss}"))),
        ("alg none", Some(format!("Bearer {unsigned}"))),
        ("tampered", Some(format!("Bearer {tampered}"))),
    ];
    for (name, header) in cases {
        let mut req = axum::http::Request::builder()
            .method(Method::PUT)
            .uri("/v1/data_mappers/people")
            .header("content-type", "application/json");
        if let Some(h) = header {
            req = req.header("authorization", h);
        }
        let reply = app
            .send(
                req.body(axum::body::Body::from(
                    crate::common::glue_mapper().to_string(),
                ))
                .unwrap(),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 401, "{name}: {}", reply.body);
        reply.problem(401);
        let challenge = reply
            .headers
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Bearer "), "{name}: {challenge}");
    }
    assert_eq!(app.count("data_mapper").await, 0);
    assert_eq!(app.count("audit_event").await, 0);
    // The good token does work.
    let reply = app
        .call(
            Method::PUT,
            "/v1/data_mappers/people",
            Some(&good),
            Some(crate::common::glue_mapper()),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.body);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn unauthorised_callers_learn_nothing_about_their_request_body(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let requester = app.token("r", &[Role::Requester]);
    let reply = app
        .call(
            Method::PUT,
            "/v1/data_mappers/BAD%20ID",
            Some(&requester),
            Some(json!({"nonsense": true})),
        )
        .await;
    reply.problem(403);
    let reply = app
        .call(
            Method::PATCH,
            "/v1/queue/matches",
            None,
            Some(json!("not an object")),
        )
        .await;
    reply.problem(401);
}
