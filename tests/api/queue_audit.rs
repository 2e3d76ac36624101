//! Every queue change is attributable: the audit rows of `queue.add` and `queue.delete`
//! name each item (id, keyed hash, reference, creator, deadline; never the match id), and
//! withdrawing another principal's item takes a reason, which is recorded.

use axum::http::{Method, StatusCode};
use lethe::api::auth::Role;
use serde_json::{Value, json};

use crate::common::TestApp;

/// Queues `items` as `token`; returns the created items.
async fn add(app: &TestApp, token: &str, items: Value) -> Vec<Value> {
    let body = json!({"matches": items});
    let r = app
        .call(Method::PATCH, "/v1/queue/matches", Some(token), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["matches"].as_array().unwrap().clone()
}

async fn remove(app: &TestApp, token: &str, body: Value) -> crate::common::Reply {
    app.call(Method::DELETE, "/v1/queue/matches", Some(token), Some(body))
        .await
}

fn refs(items: &[&Value]) -> Value {
    let refs: Vec<Value> = items
        .iter()
        .map(|i| json!({"deletion_queue_item_id": i["deletion_queue_item_id"]}))
        .collect();
    Value::from(refs)
}

/// The newest audit event of `action`.
async fn last(app: &TestApp, action: &str) -> Value {
    let r = app
        .get(&format!("/v1/audit_events?action={action}&page_size=1"))
        .await;
    r.body["audit_events"][0].clone()
}

/// The hashes the listing shows, by item id.
async fn hashes(app: &TestApp) -> std::collections::BTreeMap<String, String> {
    let r = app.get("/v1/queue?page_size=1000").await;
    r.body["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let id = m["deletion_queue_item_id"].as_str().unwrap().to_owned();
            (id, m["match_hash"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn added_and_deleted_items_are_named_in_the_audit_trail_by_hash_reference_and_creator(
    db: sqlx::PgPool,
) {
    let app = TestApp::new(db);
    let rita = app.token("rita", &[Role::Requester]);
    let otto = app.token("otto", &[Role::Operator]);
    let added = add(
        &app,
        &rita,
        json!([{"match_id": "rita-secret-1@example.com", "reference": "T-1"},
               {"match_id": 987_654_321_987_i64, "reference": "T-2", "deadline": "2031-01-01T00:00:00Z"}]),
    )
    .await;
    let own = add(
        &app,
        &otto,
        json!([{"match_id": "otto-secret@example.com"}]),
    )
    .await;
    let hashes = hashes(&app).await;

    let event = last(&app, "queue.add").await;
    assert_eq!(event["actor"], "otto");
    let event = app.get("/v1/audit_events?action=queue.add").await.body["audit_events"][1].clone();
    assert_eq!(event["actor"], "rita");
    assert_eq!(event["details"]["count"], 2);
    let audited = event["details"]["items"].as_array().unwrap();
    assert_eq!(audited.len(), 2);
    for (item, row) in added.iter().zip(audited) {
        let id = item["deletion_queue_item_id"].as_str().unwrap();
        assert_eq!(row["deletion_queue_item_id"], id);
        assert_eq!(row["match_hash"], hashes[id].as_str());
        assert_eq!(row["reference"], item["reference"]);
        assert_eq!(row["created_by"], "rita");
        assert_eq!(row["deadline"], item["deadline"]);
    }
    assert_eq!(audited[1]["deadline"], "2031-01-01T00:00:00Z");

    // An operator withdrawing a requester's item must say why: nothing goes without it.
    for reason in [None, Some("  ")] {
        let mut body = json!({"matches": refs(&[&added[0], &own[0]])});
        if let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        let r = remove(&app, &otto, body).await;
        assert_eq!(r.invalid_fields(), ["reason"], "{}", r.body);
    }
    assert_eq!(app.count("deletion_queue_item").await, 3);
    // Its own item needs none.
    let r = remove(&app, &otto, json!({"matches": refs(&[&own[0]])})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        last(&app, "queue.delete").await["details"]["reason"],
        Value::Null
    );
    let body = json!({"matches": refs(&[&added[0]]), "reason": " duplicate of T-2 "});
    let r = remove(&app, &otto, body).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    let event = last(&app, "queue.delete").await;
    assert_eq!(event["actor"], "otto");
    let details = &event["details"];
    assert_eq!(details["reason"], "duplicate of T-2");
    assert_eq!(
        (details["requested"].clone(), details["deleted"].clone()),
        (json!(1), json!(1))
    );
    let id = added[0]["deletion_queue_item_id"].as_str().unwrap();
    assert_eq!(
        details["items"],
        json!([{
            "deletion_queue_item_id": id,
            "match_hash": hashes[id],
            "reference": "T-1",
            "created_by": "rita",
            "deadline": added[0]["deadline"],
        }])
    );
    // No match id anywhere in the trail.
    let trail = app
        .get("/v1/audit_events?page_size=100")
        .await
        .body
        .to_string();
    for secret in ["rita-secret", "otto-secret", "987654321987"] {
        assert!(!trail.contains(secret), "{secret} in {trail}");
    }
    let left: Vec<String> = self::hashes(&app).await.into_keys().collect();
    assert_eq!(left, [added[1]["deletion_queue_item_id"].as_str().unwrap()]);
}
