//! Queue additions a client can retry: `Idempotency-Key` on `PATCH /v1/queue/matches`.
//! The first request under a key creates its items; every retry of it (same caller, key
//! and body) creates nothing and is answered with those items; a key reused for another
//! request is refused; a request that failed leaves its key unused.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use lethe::api::auth::Role;
use serde_json::{Value, json};

use crate::common::{Reply, TestApp};

/// Sends an addition under `key` with `token`.
async fn add(app: &TestApp, token: &str, key: Option<&str>, body: &Value) -> Reply {
    let mut req = Request::builder()
        .method(Method::PATCH)
        .uri("/v1/queue/matches")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    app.send(
        req.body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    )
    .await
}

async fn queued(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from deletion_queue_item")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

fn ids(reply: &Reply) -> Vec<String> {
    let mut ids: Vec<String> = reply.body["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["deletion_queue_item_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn body(n: i64) -> Value {
    json!({"matches": (0..n).map(|i| json!({"match_id": 5_550_000 + i, "reference": "T-9"})).collect::<Vec<_>>()})
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_retried_addition_creates_its_items_once_and_answers_with_them(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let rita = app.token("rita", &[Role::Requester]);
    let first = add(&app, &rita, Some("order-77-erase"), &body(3)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    for _ in 0..3 {
        let again = add(&app, &rita, Some("order-77-erase"), &body(3)).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
        assert_eq!(again.headers["idempotent-replayed"], "true");
        assert_eq!(ids(&again), ids(&first));
        assert_eq!(
            again.body["matches"][0]["match_id"],
            first.body["matches"][0]["match_id"]
        );
    }
    assert_eq!(queued(&app).await, 3);
    // One audit row: the retries changed nothing.
    let audited: i64 =
        sqlx::query_scalar("select count(*) from audit_event where action = 'queue.add'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(audited, 1);

    // Another caller's key of the same name is its own.
    let olga = app.token("olga", &[Role::Requester]);
    let theirs = add(&app, &olga, Some("order-77-erase"), &body(3)).await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert_eq!(queued(&app).await, 6);

    // Without a key, every call adds (as before).
    assert_eq!(
        add(&app, &rita, None, &body(1)).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        add(&app, &rita, None, &body(1)).await.status,
        StatusCode::CREATED
    );
    assert_eq!(queued(&app).await, 8);

    // The items already taken from the queue are no longer listed by a retry.
    let taken = ids(&first)[0].clone();
    sqlx::query("delete from deletion_queue_item where deletion_queue_item_id = $1::uuid")
        .bind(&taken)
        .execute(&app.db)
        .await
        .unwrap();
    let later = add(&app, &rita, Some("order-77-erase"), &body(3)).await;
    assert_eq!(later.status, StatusCode::OK);
    assert_eq!(ids(&later).len(), 2);
    assert!(!ids(&later).contains(&taken));
    assert_eq!(queued(&app).await, 7);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_key_reused_for_another_request_is_refused_and_a_failed_request_leaves_it_unused(
    pool: sqlx::PgPool,
) {
    let app = TestApp::new(pool);
    let rita = app.token("rita", &[Role::Requester]);
    assert_eq!(
        add(&app, &rita, Some("k-1"), &body(2)).await.status,
        StatusCode::CREATED
    );
    let other = add(&app, &rita, Some("k-1"), &body(3)).await;
    assert_eq!(
        other.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        other.body
    );
    assert_eq!(other.body["errors"][0]["field"], "Idempotency-Key");
    // The value is not echoed back.
    assert!(!other.body.to_string().contains("5550002"));
    assert_eq!(queued(&app).await, 2);

    // A request refused as invalid takes no key: the corrected one goes through.
    let bad = json!({"matches": [{"match_id": 5_550_100, "data_mappers": ["no-such-mapper"]}]});
    let refused = add(&app, &rita, Some("k-2"), &bad).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fixed = add(&app, &rita, Some("k-2"), &body(1)).await;
    assert_eq!(fixed.status, StatusCode::CREATED, "{}", fixed.body);
    assert_eq!(queued(&app).await, 3);

    // Malformed keys are a 400 and change nothing.
    for key in ["", "has space", &"x".repeat(256), "tab\there"] {
        let r = add(&app, &rita, Some(key), &body(1)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{key:?}: {}", r.body);
        assert_eq!(r.headers["content-type"], "application/problem+json");
    }
    assert_eq!(queued(&app).await, 3);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn concurrent_requests_under_one_key_create_the_items_once(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let rita = app.token("rita", &[Role::Requester]);
    let burst = body(50);
    let replies =
        futures_util::future::join_all((0..8).map(|_| add(&app, &rita, Some("burst"), &burst)))
            .await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one request created the items");
    for r in &replies {
        assert!(
            matches!(r.status, StatusCode::OK | StatusCode::CREATED),
            "{}",
            r.body
        );
        assert_eq!(ids(r).len(), 50);
        assert_eq!(ids(r), ids(&replies[0]));
    }
    assert_eq!(queued(&app).await, 50);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_key_is_forgotten_after_a_day(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let rita = app.token("rita", &[Role::Requester]);
    assert_eq!(
        add(&app, &rita, Some("daily"), &body(1)).await.status,
        StatusCode::CREATED
    );
    // Nothing is forgotten within the day.
    assert_eq!(
        lethe::db::deletion_queue_item::expire_add_keys(&app.db)
            .await
            .unwrap(),
        0
    );
    sqlx::query("update queue_add_key set created_at = now() - interval '25 hours'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        lethe::db::deletion_queue_item::expire_add_keys(&app.db)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        add(&app, &rita, Some("daily"), &body(1)).await.status,
        StatusCode::CREATED
    );
    assert_eq!(queued(&app).await, 2);
}
