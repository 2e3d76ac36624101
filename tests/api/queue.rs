use axum::http::{Method, StatusCode};
use lethe::api::auth::Role;
use serde_json::{Value, json};

use crate::common::{TestApp, glue_mapper, path_mapper};

async fn app_with_mappers(pool: sqlx::PgPool) -> TestApp {
    let app = TestApp::new(pool);
    assert_eq!(
        app.put("/v1/data_mappers/people", glue_mapper())
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put("/v1/data_mappers/orders", path_mapper())
            .await
            .status,
        StatusCode::CREATED
    );
    app
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn adding_simple_and_composite_matches_returns_the_created_items(pool: sqlx::PgPool) {
    let app = app_with_mappers(pool).await;
    let requester = app.token("rita", &[Role::Requester]);
    let before = chrono::Utc::now();
    let reply = app
        .call(Method::PATCH, "/v1/queue/matches", Some(&requester), Some(json!({"matches": [
            {"match_id": "jane"},
            {"match_id": 42, "data_mappers": ["people"], "deadline": "2030-01-02T03:04:05Z", "reference": "TICKET-1"},
            {"match_id": [{"column": "first_name", "value": "Jane"}, {"column": "last_name", "value": "Doe"}],
             "data_mappers": ["orders"]},
        ]})))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let items = reply.body["matches"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["match_id"], "jane");
    assert_eq!(items[0]["type"], "simple");
    assert_eq!(items[0]["data_mappers"], json!([]));
    assert_eq!(items[0]["created_by"], "rita");
    let deadline: chrono::DateTime<chrono::Utc> =
        items[0]["deadline"].as_str().unwrap().parse().unwrap();
    let days = (deadline - before).num_hours();
    assert!((719..=721).contains(&days), "default deadline {deadline}");
    assert_eq!(items[1]["match_id"], 42);
    assert_eq!(items[1]["deadline"], "2030-01-02T03:04:05Z");
    assert_eq!(items[1]["reference"], "TICKET-1");
    assert_eq!(items[2]["type"], "composite");
    assert_eq!(
        items[2]["match_id"][1],
        json!({"column": "last_name", "value": "Doe"})
    );
    assert!(
        items
            .iter()
            .all(|i| i["deletion_queue_item_id"].as_str().unwrap().len() == 36)
    );
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn one_invalid_item_rejects_the_whole_batch_and_names_it(pool: sqlx::PgPool) {
    let app = app_with_mappers(pool).await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"match_id": "x", "data_mappers": ["ghost"]}),
            vec!["matches[1].data_mappers[0]"],
        ),
        (json!({"match_id": ""}), vec!["matches[1].match_id"]),
        (json!({"match_id": true}), vec!["matches[1].match_id"]),
        (
            json!({"match_id": 1.7976931348623157e308}),
            vec!["matches[1].match_id"],
        ),
        (json!({"match_id": null}), vec!["matches[1].match_id"]),
        (
            json!({"match_id": [{"column": "first_name", "value": "J"}]}),
            vec!["matches[1].data_mappers"],
        ),
        (
            json!({"match_id": [{"column": "first_name", "value": "J"}], "data_mappers": ["orders", "people"]}),
            vec!["matches[1].data_mappers"],
        ),
        (
            json!({"match_id": [{"column": "email", "value": "J"}], "data_mappers": ["orders"]}),
            vec!["matches[1].match_id[0].column"],
        ),
        (
            json!({"match_id": [{"column": "first_name", "value": {"a": 1}}], "data_mappers": ["orders"]}),
            vec!["matches[1].match_id[0].value"],
        ),
        (
            json!({"match_id": [], "data_mappers": ["orders"]}),
            vec!["matches[1].match_id"],
        ),
        (
            json!({"match_id": "x", "deadline": "tomorrow"}),
            vec!["matches[1].deadline"],
        ),
        (
            json!({"match_id": "x", "reference": "r".repeat(300)}),
            vec!["matches[1].reference"],
        ),
        (
            json!({"match_id": "x", "colour": "red"}),
            vec!["matches[1].colour"],
        ),
        (
            json!({"match_id": "x".repeat(5000)}),
            vec!["matches[1].match_id"],
        ),
    ];
    for (bad, fields) in cases {
        let body = json!({"matches": [{"match_id": "fine"}, bad, {"match_id": "also fine"}]});
        let reply = app.patch("/v1/queue/matches", body).await;
        assert_eq!(reply.invalid_fields(), fields, "{bad}");
        let text = reply.body.to_string();
        assert!(
            !text.contains("fine"),
            "a match id leaked into an error: {text}"
        );
    }
    assert_eq!(app.count("deletion_queue_item").await, 0);
    assert_eq!(
        app.count("audit_event where action like 'queue.%'").await,
        0
    );
    for empty in [json!({"matches": []}), json!({})] {
        app.patch("/v1/queue/matches", empty).await.problem(422);
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn ten_thousand_items_fit_in_one_call_and_one_more_does_not(pool: sqlx::PgPool) {
    let app = app_with_mappers(pool).await;
    let items = |n: usize| {
        Value::from(
            (0..n)
                .map(|i| json!({"match_id": format!("user-{i}")}))
                .collect::<Vec<_>>(),
        )
    };
    let reply = app
        .patch("/v1/queue/matches", json!({"matches": items(10_001)}))
        .await;
    assert_eq!(reply.invalid_fields(), ["matches"]);
    let reply = app
        .patch("/v1/queue/matches", json!({"matches": items(10_000)}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["matches"].as_array().unwrap().len(), 10_000);
    assert_eq!(app.count("deletion_queue_item").await, 10_000);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn list_pages_in_insertion_order_with_filters(pool: sqlx::PgPool) {
    let app = app_with_mappers(pool).await;
    let mut sent = Vec::new();
    for i in 0..25 {
        let mappers = match i % 3 {
            0 => json!([]),
            1 => json!(["people"]),
            _ => json!(["orders"]),
        };
        let deadline = if i < 5 {
            "2027-01-01T00:00:00Z"
        } else {
            "2030-01-01T00:00:00Z"
        };
        sent.push(
            json!({"match_id": format!("s{i}"), "data_mappers": mappers, "deadline": deadline}),
        );
    }
    // Two calls, so order across calls is covered too.
    assert_eq!(
        app.patch("/v1/queue/matches", json!({"matches": sent[..10]}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.patch("/v1/queue/matches", json!({"matches": sent[10..]}))
            .await
            .status,
        StatusCode::CREATED
    );

    let collect = |query: &'static str| {
        let app = &app;
        async move {
            let mut got = Vec::new();
            let mut url = format!("/v1/queue?page_size=4{query}");
            loop {
                let reply = app.get(&url).await;
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
                let page = reply.body["matches"].as_array().unwrap();
                assert!(page.len() <= 4);
                got.extend(
                    page.iter()
                        .map(|m| m["match_id"].as_str().unwrap().to_owned()),
                );
                match reply.body["next_start"].as_str() {
                    Some(next) => url = format!("/v1/queue?page_size=4{query}&start_at={next}"),
                    None => return got,
                }
            }
        }
    };
    let all = collect("").await;
    assert_eq!(all, (0..25).map(|i| format!("s{i}")).collect::<Vec<_>>());
    let people = collect("&data_mapper=people").await;
    assert_eq!(
        people,
        (0..25)
            .filter(|i| i % 3 != 2)
            .map(|i| format!("s{i}"))
            .collect::<Vec<_>>()
    );
    let urgent = collect("&deadline_before=2028-01-01T00:00:00Z").await;
    assert_eq!(urgent, (0..5).map(|i| format!("s{i}")).collect::<Vec<_>>());
    app.get("/v1/queue?start_at=not-a-uuid").await.problem(400);
    app.get("/v1/queue?deadline_before=soon").await.problem(400);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn delete_is_idempotent_and_audited_without_match_ids(pool: sqlx::PgPool) {
    let app = app_with_mappers(pool).await;
    let reply = app
        .patch(
            "/v1/queue/matches",
            json!({"matches": [
        {"match_id": "secret-subject-1"}, {"match_id": "secret-subject-2"}]}),
        )
        .await;
    let ids: Vec<Value> = reply.body["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| json!({"deletion_queue_item_id": m["deletion_queue_item_id"]}))
        .collect();
    let body = json!({"matches": [ids[0]]});
    assert_eq!(
        app.delete("/v1/queue/matches", Some(body.clone()))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete("/v1/queue/matches", Some(body)).await.status,
        StatusCode::NO_CONTENT
    );
    let left = app.get("/v1/queue").await;
    assert_eq!(left.body["matches"].as_array().unwrap().len(), 1);
    assert_eq!(left.body["matches"][0]["match_id"], "secret-subject-2");
    app.delete("/v1/queue/matches", Some(json!({"matches": []})))
        .await
        .problem(422);
    app.delete(
        "/v1/queue/matches",
        Some(json!({"matches": [{"deletion_queue_item_id": "nope"}]})),
    )
    .await
    .problem(422);

    let audit = app.get("/v1/audit_events").await;
    let text = audit.body.to_string();
    assert!(!text.contains("secret-subject"), "{text}");
    let actions: Vec<&str> = audit.body["audit_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(&actions[..3], ["queue.delete", "queue.delete", "queue.add"]);
    assert_eq!(audit.body["audit_events"][2]["details"]["count"], 2);
    assert_eq!(audit.body["audit_events"][1]["details"]["deleted"], 1);
    assert_eq!(audit.body["audit_events"][0]["details"]["deleted"], 0);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn requesters_list_only_their_items_and_auditors_see_hashes_not_match_ids(
    pool: sqlx::PgPool,
) {
    let app = app_with_mappers(pool).await;
    let rita = app.token("rita", &[Role::Requester]);
    let rob = app.token("rob", &[Role::Requester]);
    let auditor = app.token("ada", &[Role::Auditor]);
    let operator = app.token("otto", &[Role::Operator]);
    for (token, id) in [(&rita, "rita@example.com"), (&rob, "rob@example.com")] {
        let r = app
            .call(
                Method::PATCH,
                "/v1/queue/matches",
                Some(token),
                Some(json!({"matches": [{"match_id": id}]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let list = |token: &String| {
        let app = &app;
        let token = token.clone();
        async move {
            let r = app.call(Method::GET, "/v1/queue", Some(&token), None).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body["matches"].as_array().unwrap().clone()
        }
    };
    let mine = list(&rita).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["match_id"], "rita@example.com");
    let audited = list(&auditor).await;
    assert_eq!(audited.len(), 2);
    for item in &audited {
        assert!(item["match_id"].is_null(), "{item}");
        assert_eq!(item["match_hash"].as_str().unwrap().len(), 64);
    }
    let text = serde_json::to_string(&audited).unwrap();
    assert!(!text.contains("example.com"), "{text}");
    let operated = list(&operator).await;
    assert_eq!(operated.len(), 2);
    assert!(operated.iter().all(|i| i["match_id"].is_string()));
    assert_eq!(operated[0]["match_hash"], audited[0]["match_hash"]);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn whole_partitions_and_deadlines_that_start_a_job_at_once_need_more_than_a_requester(
    pool: sqlx::PgPool,
) {
    let app = app_with_mappers(pool).await;
    let rita = app.token("rita", &[Role::Requester]);
    let otto = app.token("otto", &[Role::Operator]);
    let add = |token: &String, item: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            app.call(
                Method::PATCH,
                "/v1/queue/matches",
                Some(&token),
                Some(json!({"matches": [item]})),
            )
            .await
        }
    };
    let whole =
        json!({"match_id": [{"column": "year", "value": 2024}], "data_mappers": ["people"]});
    let r = add(&rita, whole.clone()).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.body.to_string().contains("whole partitions"),
        "{}",
        r.body
    );
    // With a data column it is one subject's rows: fine.
    let one = json!({"match_id": [{"column": "year", "value": 2024}, {"column": "customer_id", "value": 7}],
                     "data_mappers": ["people"]});
    assert_eq!(add(&rita, one).await.status, StatusCode::CREATED);
    assert_eq!(add(&otto, whole).await.status, StatusCode::CREATED);
    // A deadline in the past (or inside the scheduler's margin) would start a real job at once.
    for token in [&rita, &otto] {
        let past = json!({"match_id": "x", "deadline": "2020-01-01T00:00:00Z"});
        let r = add(token, past).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(
            r.body["errors"].to_string().contains("matches[0].deadline"),
            "{}",
            r.body
        );
    }
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let r = add(&otto, json!({"match_id": "x", "deadline": soon})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
}

/// PATCHes a body given as text, so its numbers reach the server exactly as written.
async fn patch_text(app: &TestApp, body: &str) -> crate::common::Reply {
    let req = axum::http::Request::builder()
        .method(Method::PATCH)
        .uri("/v1/queue/matches")
        .header("authorization", format!("Bearer {}", app.admin()))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_owned()))
        .unwrap();
    app.send(req).await
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_number_id_that_cannot_be_kept_exactly_is_refused_with_a_request_for_a_string(
    pool: sqlx::PgPool,
) {
    let app = app_with_mappers(pool).await;
    let reply = patch_text(
        &app,
        r#"{"matches": [
            {"match_id": 12345678901234567891},
            {"match_id": 12345678901234567890123},
            {"match_id": [{"column": "first_name", "value": 0.12345678901234567891}], "data_mappers": ["orders"]},
            {"match_id": 0.1}
        ]}"#,
    )
    .await;
    assert_eq!(
        reply.invalid_fields(),
        ["matches[1].match_id", "matches[2].match_id[0].value"]
    );
    let text = reply.body.to_string();
    assert!(text.contains("as a string"), "{text}");
    assert!(
        !text.contains("1234567890") && !text.contains("0.1234"),
        "a match id leaked into an error: {text}"
    );
    assert_eq!(app.count("deletion_queue_item").await, 0);
    // The same ids as strings, and numbers serde_json keeps exactly, are queued as sent.
    let reply = patch_text(
        &app,
        r#"{"matches": [
            {"match_id": 12345678901234567891},
            {"match_id": "12345678901234567890123"},
            {"match_id": [{"column": "first_name", "value": "0.12345678901234567891"}], "data_mappers": ["orders"]},
            {"match_id": 0.1}
        ]}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let stored: Vec<String> = sqlx::query_scalar(
        "select match_id::text from deletion_queue_item order by created_at, deletion_queue_item_id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut stored = stored;
    stored.sort();
    let mut sent = vec![
        "12345678901234567891".to_owned(),
        "\"12345678901234567890123\"".to_owned(),
        r#"[{"value": "0.12345678901234567891", "column": "first_name"}]"#.to_owned(),
        "0.1".to_owned(),
    ];
    sent.sort();
    assert_eq!(stored, sent);
}

/// A requester probing the mappers through 422s: unknown mapper names, columns that are
/// not the mapper's, values of the wrong type. It learns which field failed, never a
/// mapper's name, columns or types; an operator sending the same items gets the precise
/// messages. (A whole-partition composite is still refused with its reason, which names
/// nothing the requester did not send.)
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_requester_probing_mappers_through_422s_learns_only_the_failing_fields(
    pool: sqlx::PgPool,
) {
    let app = app_with_mappers(pool).await;
    let requester = app.token("mallory", &[Role::Requester]);
    let operator = app.token("olga", &[Role::Operator]);
    let probes = [
        json!({"matches": [
            {"match_id": "x", "data_mappers": ["secret_mapper"]},
            {"match_id": [{"column": "ssn", "value": "1"}], "data_mappers": ["people"]},
            {"match_id": "y", "reference": "r".repeat(300)},
        ]}),
        json!({"matches": [
            {"match_id": "z"},
            {"match_id": [{"column": "customer_id", "value": "not a number"}], "data_mappers": ["people"]},
        ]}),
        json!({"matches": [
            {"match_id": [{"column": "year", "value": 2024}], "data_mappers": ["people"]},
        ]}),
    ];
    let expected_fields = [
        vec![
            "matches[0].data_mappers[0]",
            "matches[1].match_id[0].column",
            "matches[2].reference",
        ],
        vec!["matches[1].match_id[0].value"],
        vec!["matches[0].match_id"],
    ];
    for (i, (probe, fields)) in probes.iter().zip(&expected_fields).enumerate() {
        let reply = app
            .call(
                Method::PATCH,
                "/v1/queue/matches",
                Some(&requester),
                Some(probe.clone()),
            )
            .await;
        assert_eq!(reply.invalid_fields(), *fields, "{}", reply.body);
        let text = reply.body.to_string();
        for secret in [
            "people",
            "orders",
            "customer_id",
            "first_name",
            "contact",
            "bigint",
            "secret_mapper",
            "ssn",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        for error in reply.body["errors"].as_array().unwrap() {
            if error["field"] == "matches[2].reference" {
                // Not about the mappers: the precise message.
                assert_eq!(error["message"], "must be at most 256 characters");
            } else if i == 2 {
                assert!(error["message"].to_string().contains("whole partitions"));
            } else {
                assert_eq!(
                    error["message"],
                    lethe::domain::validation::GENERIC_MAPPER_MESSAGE
                );
            }
        }
        if i == 2 {
            // Operators may queue a whole-partition composite: nothing to compare.
            continue;
        }
        let precise = app
            .call(
                Method::PATCH,
                "/v1/queue/matches",
                Some(&operator),
                Some(probe.clone()),
            )
            .await;
        assert_eq!(precise.invalid_fields(), *fields);
        assert!(
            !precise.body.to_string().contains("the reason is shown"),
            "{}",
            precise.body
        );
    }
    let precise = app
        .call(
            Method::PATCH,
            "/v1/queue/matches",
            Some(&operator),
            Some(probes[0].clone()),
        )
        .await;
    let messages: Vec<&str> = precise.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages[0], r#"no data mapper "secret_mapper""#);
    assert_eq!(
        messages[1],
        r#""ssn" is not a column of data mapper "people""#
    );
    assert_eq!(app.count("deletion_queue_item").await, 0);
}

/// A subject's id sent where another type belongs (a mapper list, a reference, a deadline)
/// is refused naming the field, and the problem document does not repeat the id.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn an_id_sent_in_the_wrong_place_is_not_echoed_by_the_422(pool: sqlx::PgPool) {
    let app = app_with_mappers(pool).await;
    let requester = app.token("rita", &[Role::Requester]);
    let id = "alice.victim@example.com";
    for (item, field) in [
        (
            json!({"match_id": "x", "data_mappers": id}),
            "matches[0].data_mappers",
        ),
        (
            json!({"match_id": "x", "reference": 12345678987654321u64}),
            "matches[0].reference",
        ),
        (
            json!({"match_id": "x", "deadline": id}),
            "matches[0].deadline",
        ),
        (
            json!({"match_id": "x", "data_mappers": [true]}),
            "matches[0].data_mappers[0]",
        ),
    ] {
        let reply = app
            .call(
                Method::PATCH,
                "/v1/queue/matches",
                Some(&requester),
                Some(json!({"matches": [item]})),
            )
            .await;
        assert_eq!(reply.invalid_fields(), [field], "{}", reply.body);
        let text = reply.body.to_string();
        assert!(
            !text.contains("alice") && !text.contains("12345678987654321"),
            "{text}"
        );
    }
    let reply = app
        .call(
            Method::PATCH,
            "/v1/queue/matches",
            Some(&requester),
            Some(json!({"matches": [{"match_id": "x", "data_mappers": id}]})),
        )
        .await;
    assert_eq!(
        reply.body["errors"][0]["message"],
        "invalid type: string, expected a list of at most 32 items"
    );
    assert_eq!(app.count("deletion_queue_item").await, 0);
}
