use axum::http::Method;
use lethe::api::auth::Role;
use serde_json::{Value, json};

use crate::common::TestApp;

/// How an allowed call must end: in success, or past authorisation (a 404 for a missing
/// resource, a 409 for a job already running, ...), never 401 or 403.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Allowed {
    Succeeds,
    Reaches,
}

type RouteCase = (&'static str, Method, String, Option<Value>, Allowed);

/// Every route, by class, with a request an allowed caller may make (`job` is an ended
/// job's id).
fn routes(job: &str) -> Vec<RouteCase> {
    use Allowed::*;
    let s = |p: &str| p.to_owned();
    vec![
        (
            "mapper-read",
            Method::GET,
            s("/v1/data_mappers"),
            None,
            Succeeds,
        ),
        (
            "mapper-read",
            Method::GET,
            s("/v1/data_mappers/people"),
            None,
            Succeeds,
        ),
        (
            "mapper-read",
            Method::GET,
            s("/v1/data_mappers/people/access_policy"),
            None,
            Succeeds,
        ),
        (
            "mapper-write",
            Method::PUT,
            s("/v1/data_mappers/people"),
            Some(crate::common::glue_mapper()),
            Succeeds,
        ),
        (
            "mapper-write",
            Method::DELETE,
            s("/v1/data_mappers/ghost"),
            None,
            Reaches,
        ),
        ("queue-read", Method::GET, s("/v1/queue"), None, Succeeds),
        (
            "queue-read",
            Method::GET,
            s("/v1/queue/summary"),
            None,
            Succeeds,
        ),
        (
            "catalog-read",
            Method::GET,
            s("/v1/glue/databases"),
            None,
            Succeeds,
        ),
        (
            "catalog-read",
            Method::GET,
            s("/v1/glue/databases/lake/tables"),
            None,
            Succeeds,
        ),
        (
            "catalog-read",
            Method::GET,
            s("/v1/glue/databases/lake/tables/people"),
            None,
            Succeeds,
        ),
        ("any", Method::GET, s("/v1/me"), None, Succeeds),
        (
            "queue-add",
            Method::PATCH,
            s("/v1/queue/matches"),
            Some(json!({"matches": [{"match_id": "x"}]})),
            Succeeds,
        ),
        (
            "queue-delete",
            Method::DELETE,
            s("/v1/queue/matches"),
            Some(
                json!({"matches": [{"deletion_queue_item_id": "0190a0a0-0000-7000-8000-000000000000"}]}),
            ),
            Succeeds,
        ),
        (
            "settings-read",
            Method::GET,
            s("/v1/settings"),
            None,
            Succeeds,
        ),
        (
            "settings-write",
            Method::PUT,
            s("/v1/settings"),
            Some(json!({
            "find_concurrency": 8, "multipart_threshold_bytes": 104857600,
            "report_retention_days": 90, "job_schedule": null})),
            Succeeds,
        ),
        (
            "audit-read",
            Method::GET,
            s("/v1/audit_events"),
            None,
            Succeeds,
        ),
        (
            "audit-chain-read",
            Method::GET,
            s("/v1/audit_events/head"),
            None,
            Succeeds,
        ),
        (
            "audit-chain-read",
            Method::GET,
            s("/v1/audit_events/checkpoints"),
            None,
            Succeeds,
        ),
        (
            "governance-read",
            Method::GET,
            s("/v1/catalog/lake/people/columns"),
            None,
            Succeeds,
        ),
        (
            "governance-read",
            Method::GET,
            s("/v1/access_policies"),
            None,
            Succeeds,
        ),
        (
            "governance-read",
            Method::GET,
            s("/v1/access_policies/ghost"),
            None,
            Reaches,
        ),
        (
            "governance-read",
            Method::POST,
            s("/v1/access_policies/plan"),
            None,
            Succeeds,
        ),
        (
            "governance-read",
            Method::GET,
            s("/v1/access_policies/enforcement"),
            None,
            Succeeds,
        ),
        (
            "governance-read",
            Method::GET,
            s("/v1/access_policies/drift"),
            None,
            Reaches,
        ),
        (
            "governance-write",
            Method::PUT,
            s("/v1/catalog/lake/people/classifications"),
            Some(json!({"columns": [{"name": "first_name", "classification": "pii"}]})),
            Succeeds,
        ),
        (
            "governance-write",
            Method::PUT,
            s("/v1/access_policies/analysts"),
            Some(json!({
            "principal": "123456789012", "tables": [{"database": "lake", "table": "*"}],
            "access": "non_pii_columns", "permissions": ["SELECT"]})),
            Succeeds,
        ),
        (
            "governance-write",
            Method::DELETE,
            s("/v1/access_policies/ghost"),
            None,
            Reaches,
        ),
        (
            "governance-write",
            Method::POST,
            s("/v1/access_policies/apply"),
            Some(json!({})),
            Succeeds,
        ),
        ("job-read", Method::GET, s("/v1/jobs"), None, Succeeds),
        (
            "job-read",
            Method::GET,
            format!("/v1/jobs/{job}"),
            None,
            Succeeds,
        ),
        (
            "job-read",
            Method::GET,
            format!("/v1/jobs/{job}/events"),
            None,
            Succeeds,
        ),
        (
            "job-read",
            Method::GET,
            format!("/v1/jobs/{job}/objects"),
            None,
            Succeeds,
        ),
        (
            "job-read",
            Method::GET,
            format!("/v1/jobs/{job}/report"),
            None,
            Succeeds,
        ),
        (
            "job-read",
            Method::GET,
            format!("/v1/jobs/{job}/receipts"),
            None,
            Succeeds,
        ),
        // A subject's receipts: readers of the queue (a requester, of its own items).
        (
            "queue-read",
            Method::GET,
            s("/v1/receipts?reference=T-1"),
            None,
            Succeeds,
        ),
        (
            "queue-read",
            Method::POST,
            s("/v1/receipts/lookup"),
            Some(json!({"match_id": "someone@example.com"})),
            Succeeds,
        ),
        (
            "job-write",
            Method::POST,
            s("/v1/jobs"),
            Some(json!({"dry_run": true})),
            Reaches,
        ),
        (
            "job-write",
            Method::POST,
            format!("/v1/jobs/{job}/cancel"),
            None,
            Reaches,
        ),
    ]
}

/// Whether `path` is an instance of the OpenAPI path `template` (`{x}` matches a segment).
fn instance_of(path: &str, template: &str) -> bool {
    let path: Vec<&str> = path.split('?').next().unwrap_or(path).split('/').collect();
    let template: Vec<&str> = template.split('/').collect();
    path.len() == template.len()
        && path
            .iter()
            .zip(&template)
            .all(|(p, t)| t.starts_with('{') || p == t)
}

#[test]
fn the_matrix_covers_every_secured_operation_of_the_openapi_document() {
    let spec = serde_json::to_value(lethe::api::openapi()).unwrap();
    let cases = routes("0190a0a0-0000-7000-8000-000000000000");
    let mut secured = 0;
    for (template, operations) in spec["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            if operation.get("security").is_none() {
                assert!(
                    template.starts_with("/health")
                        || template == "/metrics"
                        // Anyone holding a receipt may fetch the keys to check it.
                        || template == "/v1/receipts/keys",
                    "{template} is open"
                );
                continue;
            }
            secured += 1;
            assert!(
                cases
                    .iter()
                    .any(|(_, m, path, _, _)| m.as_str().eq_ignore_ascii_case(method)
                        && instance_of(path, template)),
                "{method} {template} is not in the auth matrix"
            );
        }
    }
    assert!(secured >= 28, "{secured}");
}

/// The documented matrix, written out independently of the code's.
fn allowed(role: Role, class: &str) -> bool {
    if class == "any" {
        return true;
    }
    match role {
        Role::Admin => true,
        Role::Operator => class != "audit-read" && !class.starts_with("governance"),
        Role::Requester => matches!(class, "queue-read" | "queue-add"),
        Role::Governance => class.starts_with("governance") || class == "catalog-read",
        Role::Auditor => class.ends_with("-read"),
    }
}

/// An app with the mapper the routes name and an ended job; returns the job's id.
async fn app_with_a_job(pool: sqlx::PgPool) -> (TestApp, String) {
    let app = TestApp::new(pool);
    assert_eq!(
        app.put("/v1/data_mappers/people", crate::common::glue_mapper())
            .await
            .status,
        201
    );
    crate::jobs::queue(&app, json!([{"match_id": "someone@example.com"}])).await;
    let job = crate::jobs::start_dry_run(&app, &[]).await;
    let cancelled = app.post(&format!("/v1/jobs/{job}/cancel"), None).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    (app, job)
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn every_role_reaches_exactly_its_route_classes(pool: sqlx::PgPool) {
    let (app, job) = app_with_a_job(pool).await;
    for role in Role::ALL {
        let token = app.token("someone", &[role]);
        for (class, method, path, body, allowed_as) in routes(&job) {
            let reply = app.call(method.clone(), &path, Some(&token), body).await;
            if allowed(role, class) {
                match allowed_as {
                    Allowed::Succeeds => assert!(
                        reply.status.is_success(),
                        "{role:?} {method} {path}: {} {}",
                        reply.status,
                        reply.body
                    ),
                    Allowed::Reaches => assert!(
                        ![401, 403].contains(&reply.status.as_u16()),
                        "{role:?} {method} {path}: {} {}",
                        reply.status,
                        reply.body
                    ),
                }
            } else {
                reply.problem(403);
            }
        }
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_token_without_roles_is_forbidden_everywhere(pool: sqlx::PgPool) {
    let (app, job) = app_with_a_job(pool).await;
    let token = app.token("nobody", &[]);
    for (class, method, path, body, _) in routes(&job) {
        let reply = app.call(method, &path, Some(&token), body).await;
        if class == "any" {
            // Who am I answers even a token without a Lethe role: with no roles.
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert_eq!(reply.body["roles"], json!([]));
            assert_eq!(reply.body["actions"], json!([]));
        } else {
            reply.problem(403);
        }
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

#[tokio::test]
async fn a_jwks_from_a_url_or_a_file_accepts_tokens_of_each_of_its_keys() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let document = include_str!("../fixtures/jwks-test.json");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let idp = axum::Router::new()
        .route(
            "/.well-known/jwks.json",
            axum::routing::get(move || async move { document }),
        )
        .route(
            "/moved",
            axum::routing::get(|| async {
                axum::response::Redirect::temporary("/.well-known/jwks.json")
            }),
        )
        .route(
            "/huge",
            axum::routing::get(|| async { "x".repeat(1024 * 1024 + 1) }),
        );
    tokio::spawn(async move { axum::serve(listener, idp).await });
    let file = std::env::temp_dir().join(format!("lethe-jwks-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, document).unwrap();
    let token = |pem: &[u8], kid: &str| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let claims = json!({"sub": kid, "roles": ["operator"], "aud": "lethe",
                            "iss": "https://idp.example",
                            "exp": chrono::Utc::now().timestamp() + 600});
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(pem).unwrap()).unwrap()
    };
    let k1 = token(include_bytes!("../fixtures/rs256-test-private.pem"), "k1");
    let k2 = token(include_bytes!("../fixtures/rs256-test-2-private.pem"), "k2");
    for source in [
        lethe::config::JwksSource::Url(url.clone()),
        lethe::config::JwksSource::File(file.clone()),
    ] {
        let env: std::collections::HashMap<String, String> = [
            ("LETHE_JWT_AUDIENCE".to_owned(), "lethe".to_owned()),
            (
                "LETHE_JWT_ISSUER".to_owned(),
                "https://idp.example".to_owned(),
            ),
        ]
        .into();
        let mut config = lethe::config::Config::from_sources(None, &env)
            .unwrap()
            .auth;
        config.jwks = Some(source);
        let auth = lethe::api::auth::Authenticator::load(&config, b"unused")
            .await
            .unwrap();
        assert_eq!(auth.verify(&k1).unwrap().subject, "k1");
        assert_eq!(auth.verify(&k2).unwrap().roles, [Role::Operator]);
        // The HS256 secret is not a way in once a JWKS is configured.
        let hs = lethe::api::auth::mint_hs256(
            crate::common::SECRET,
            &config,
            "x",
            &[Role::Admin],
            chrono::Duration::hours(1),
        )
        .unwrap();
        assert!(auth.verify(&hs).is_err());
    }
    std::fs::remove_file(file).unwrap();
    // A redirect is not followed (it could lead anywhere); a document over 1 MiB is
    // refused while it is read.
    let base = url.trim_end_matches("/.well-known/jwks.json").to_owned();
    for (path, why) in [
        ("/moved", "redirects are not followed"),
        ("/huge", "over 1 MiB"),
    ] {
        let mut config = lethe::config::Config::from_sources(None, &Default::default())
            .unwrap()
            .auth;
        config.jwks = Some(lethe::config::JwksSource::Url(format!("{base}{path}")));
        let err = lethe::api::auth::read_jwks(&config).await.unwrap_err();
        assert!(err.to_string().contains(why), "{path}: {err}");
    }
    // Only https, or http on loopback, is accepted as a JWKS URL.
    for (value, ok) in [
        ("http://idp.example/jwks", false),
        ("https://idp.example/jwks", true),
        ("http://127.0.0.1:9/jwks", true),
        ("http://[::1]:9/jwks", true),
        // User info hides the real host: a string split would see `localhost`.
        ("http://localhost:x@evil.example/jwks.json", false),
        ("https://user@idp.example/jwks", false),
        ("http://localhost.evil.example/jwks", false),
        ("ftp://127.0.0.1/jwks", false),
    ] {
        let env: std::collections::HashMap<String, String> =
            [("LETHE_JWT_JWKS_URL".to_owned(), value.to_owned())].into();
        assert_eq!(
            lethe::config::Config::from_sources(None, &env).is_ok(),
            ok,
            "{value}"
        );
    }
}
