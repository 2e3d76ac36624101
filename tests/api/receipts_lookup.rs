//! Receipts looked up by match id (`POST /v1/receipts/lookup`: the server hashes it as the
//! queue and reports do) and who reads which: operators and auditors every receipt, a
//! requester those of the items it queued (another's: an empty list, as if there were
//! none), by match id, reference or hash alike.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use lethe::api::auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::TestApp;
use crate::e2e_jobs::run_job;
use crate::receipts::payload_of;
use crate::receipts_kms::lake_app;

const FIRST: i64 = 8_100_001;
const SECOND: i64 = 8_100_002;
const THIRD: i64 = 8_100_003;

/// Queues `items` as the caller of `token`.
async fn queue_as(app: &TestApp, token: &str, items: Value) {
    let body = json!({ "matches": items });
    let r = app
        .call(Method::PATCH, "/v1/queue/matches", Some(token), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// The compact JWS lines of a 200 text body.
fn jws_lines(r: &crate::common::Reply) -> Vec<String> {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "text/plain; charset=utf-8"
    );
    r.body
        .as_str()
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

async fn lookup(app: &TestApp, token: &str, body: Value) -> Vec<String> {
    let r = app
        .call(Method::POST, "/v1/receipts/lookup", Some(token), Some(body))
        .await;
    jws_lines(&r)
}

async fn find(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let r = app
        .call(
            Method::GET,
            &format!("/v1/receipts?{query}"),
            Some(token),
            None,
        )
        .await;
    jws_lines(&r)
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_match_id_finds_its_subjects_receipts_and_a_requester_reads_only_its_own(db: PgPool) {
    let (app, _) = lake_app(db, &[1, FIRST, SECOND, THIRD]).await;
    let (alice, bob) = (
        app.token("req-alice", &[Role::Requester]),
        app.token("req-bob", &[Role::Requester]),
    );
    queue_as(
        &app,
        &alice,
        json!([{"match_id": FIRST, "reference": "R-1"}]),
    )
    .await;
    queue_as(
        &app,
        &bob,
        json!([{"match_id": SECOND, "reference": "R-2"}]),
    )
    .await;
    let composite = json!([{"column": "id", "value": THIRD}]);
    queue_as(
        &app,
        &app.admin(),
        json!([{"match_id": composite, "data_mappers": ["events"], "reference": "R-3"}]),
    )
    .await;
    let job = run_job(&app, &[]).await;
    assert_eq!(job["status"], "completed", "{job}");
    // Alice's subject again: its second receipt (nothing left to find) joins the first.
    queue_as(
        &app,
        &alice,
        json!([{"match_id": FIRST, "reference": "R-1b"}]),
    )
    .await;
    let job = run_job(&app, &[]).await;
    assert_eq!(job["status"], "completed", "{job}");

    // By match id, the same receipts as by the keyed hash the report names, chain order.
    let auditor = app.token("audit-1", &[Role::Auditor]);
    let first = lookup(&app, &auditor, json!({"match_id": FIRST})).await;
    assert_eq!(first.len(), 2, "one per job");
    let (a, b) = (payload_of(&first[0]), payload_of(&first[1]));
    assert!(a.seq < b.seq);
    assert_eq!(
        (a.status.as_str(), b.status.as_str()),
        ("erased", "not_found")
    );
    assert_eq!(a.match_hash, b.match_hash);
    assert_eq!(
        find(&app, &auditor, &format!("match_hash={}", a.match_hash)).await,
        first
    );
    let typed = json!({"match_id": FIRST, "match_type": "simple"});
    assert_eq!(lookup(&app, &auditor, typed).await, first);
    let third = lookup(
        &app,
        &auditor,
        json!({"match_id": composite, "match_type": "composite"}),
    )
    .await;
    assert_eq!(third.len(), 1);
    assert_eq!(payload_of(&third[0]).reference.as_deref(), Some("R-3"));
    assert_eq!(payload_of(&third[0]).status, "erased");
    // A subject never queued has none; an operator reads every subject's too.
    assert!(
        lookup(&app, &auditor, json!({"match_id": "nobody@example.com"}))
            .await
            .is_empty()
    );
    let operator = app.token("op-1", &[Role::Operator]);
    let second = lookup(&app, &operator, json!({"match_id": SECOND})).await;
    assert_eq!(second.len(), 1);
    let second_hash = payload_of(&second[0]).match_hash;

    // A requester: its own items' receipts, by match id, reference or hash; another's
    // are left out (an empty list), however it asks.
    assert_eq!(
        lookup(&app, &alice, json!({"match_id": FIRST})).await,
        first
    );
    assert_eq!(find(&app, &alice, "reference=R-1").await, first[..1]);
    assert_eq!(
        find(&app, &alice, &format!("match_hash={}", a.match_hash)).await,
        first
    );
    assert!(
        lookup(&app, &alice, json!({"match_id": SECOND}))
            .await
            .is_empty()
    );
    assert!(find(&app, &alice, "reference=R-2").await.is_empty());
    assert!(
        find(&app, &alice, &format!("match_hash={second_hash}"))
            .await
            .is_empty()
    );
    assert!(
        lookup(&app, &alice, json!({"match_id": composite}))
            .await
            .is_empty()
    );
    assert_eq!(
        lookup(&app, &bob, json!({"match_id": SECOND})).await,
        second
    );
    assert!(
        lookup(&app, &bob, json!({"match_id": FIRST}))
            .await
            .is_empty()
    );
    // A requester still reads no job's receipts; governance reads none at all.
    let path = format!("/v1/jobs/{}/receipts", a.job_id);
    app.call(Method::GET, &path, Some(&alice), None)
        .await
        .problem(403);
    let governance = app.token("gov-1", &[Role::Governance]);
    let body = json!({"match_id": FIRST});
    let r = app
        .call(
            Method::POST,
            "/v1/receipts/lookup",
            Some(&governance),
            Some(body),
        )
        .await;
    r.problem(403);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_lookup_that_is_not_a_match_id_is_a_4xx_problem_naming_the_field(db: PgPool) {
    let app = TestApp::new(db);
    let secret = "subject-never-echoed@example.com";
    // Serde's own refusals (a missing or unknown field, a wrong type) name no field of ours.
    for (body, field) in [
        (json!({}), None),
        (json!({"match_id": secret, "extra": 1}), None),
        (json!({"match_id": secret, "match_type": "fuzzy"}), None),
        (json!([secret]), None),
        (json!({"match_id": ""}), Some("match_id")),
        (json!({"match_id": null}), Some("match_id")),
        (
            json!({"match_id": {"column": "id", "value": 1}}),
            Some("match_id"),
        ),
        (json!({"match_id": []}), Some("match_id")),
        (
            json!({"match_id": [{"column": "id"}]}),
            Some("match_id[0].value"),
        ),
        (
            json!({"match_id": secret, "match_type": "composite"}),
            Some("match_type"),
        ),
    ] {
        let r = app.post("/v1/receipts/lookup", Some(body.clone())).await;
        let problem = r.problem(422);
        if let Some(field) = field {
            assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
        }
        assert!(!problem.to_string().contains(secret), "{problem}");
    }
    let send = |content_type: &'static str, body: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri("/v1/receipts/lookup")
            .header("authorization", format!("Bearer {}", app.admin()))
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap()
    };
    app.send(send("application/json", r#"{"match_id": "#))
        .await
        .problem(400);
    // A number serde_json would round: refused on its text, as the queue refuses it.
    let r = app
        .send(send(
            "application/json",
            r#"{"match_id": 12345678901234567890123}"#,
        ))
        .await;
    assert_eq!(r.problem(422)["errors"][0]["field"], "match_id");
    app.send(send("text/plain", r#"{"match_id": "x"}"#))
        .await
        .problem(415);
    let r = app
        .call(
            Method::POST,
            "/v1/receipts/lookup",
            None,
            Some(json!({"match_id": "x"})),
        )
        .await;
    r.problem(401);
}
