use axum::http::{Method, StatusCode};
use lethe::api::auth::Role;
use serde_json::json;

use crate::common::{TestApp, glue_mapper};

fn settings() -> serde_json::Value {
    json!({"find_concurrency": 16, "multipart_threshold_bytes": 67108864,
           "report_retention_days": 30, "job_schedule": "0 3 * * *"})
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn settings_start_at_defaults_and_replace_whole(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let defaults = app.get("/v1/settings").await;
    assert_eq!(defaults.status, StatusCode::OK);
    assert_eq!(defaults.body["find_concurrency"], 8);
    assert_eq!(defaults.body["job_schedule"], json!(null));
    assert_eq!(defaults.body["updated_by"], json!(null));
    let operator = app.token("olga", &[Role::Operator]);
    let reply = app
        .call(
            Method::PUT,
            "/v1/settings",
            Some(&operator),
            Some(settings()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let got = app.get("/v1/settings").await.body;
    for key in [
        "find_concurrency",
        "multipart_threshold_bytes",
        "report_retention_days",
        "job_schedule",
    ] {
        assert_eq!(got[key], settings()[key], "{key}");
    }
    assert_eq!(got["updated_by"], "olga");
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn invalid_settings_are_named_and_change_nothing(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let cases = [
        ("find_concurrency", json!(0)),
        ("forget_concurrency", json!(1000)),
        ("multipart_threshold_bytes", json!(1024)),
        ("report_retention_days", json!(-1)),
        ("job_schedule", json!("whenever")),
        ("job_schedule", json!("* * *")),
        ("find_concurrency", json!("eight")),
        ("find_concurrency", json!(1e100)),
    ];
    for (field, value) in cases {
        let mut body = settings();
        body[field] = value.clone();
        let reply = app.put("/v1/settings", body).await;
        assert_eq!(reply.invalid_fields(), [field], "{field} = {value}");
    }
    let mut missing = settings();
    missing.as_object_mut().unwrap().remove("job_schedule");
    app.put("/v1/settings", missing).await.problem(422);
    let mut extra = settings();
    extra["colour"] = json!("red");
    assert_eq!(
        app.put("/v1/settings", extra).await.invalid_fields(),
        ["colour"]
    );
    assert_eq!(app.get("/v1/settings").await.body["find_concurrency"], 8);
    assert_eq!(app.count("audit_event").await, 0);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn every_mutation_is_audited_with_actor_target_and_request_id(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let operator = app.token("olga", &[Role::Operator]);
    let put = |path: &'static str, body: serde_json::Value| {
        let app = &app;
        let token = operator.clone();
        async move { app.call(Method::PUT, path, Some(&token), Some(body)).await }
    };
    let created = put("/v1/data_mappers/people", glue_mapper()).await;
    put("/v1/data_mappers/people", glue_mapper()).await;
    put("/v1/settings", settings()).await;
    app.call(
        Method::DELETE,
        "/v1/data_mappers/people",
        Some(&operator),
        None,
    )
    .await;

    let auditor = app.token("audrey", &[Role::Auditor]);
    let reply = app
        .call(Method::GET, "/v1/audit_events", Some(&auditor), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let events = reply.body["audit_events"].as_array().unwrap();
    let summary: Vec<(&str, &str, Option<&str>)> = events
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["target_id"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("olga", "data_mapper.delete", Some("people")),
            ("olga", "settings.update", None),
            ("olga", "data_mapper.replace", Some("people")),
            ("olga", "data_mapper.create", Some("people")),
        ]
    );
    let request_id = created.headers["x-request-id"].to_str().unwrap();
    assert_eq!(events[3]["request_id"], request_id);

    let filtered = app
        .call(
            Method::GET,
            "/v1/audit_events?action=data_mapper.create&actor=olga",
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(filtered.body["audit_events"].as_array().unwrap().len(), 1);
    let paged = app
        .call(
            Method::GET,
            "/v1/audit_events?page_size=3",
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(paged.body["audit_events"].as_array().unwrap().len(), 3);
    let next = paged.body["next_start"].as_i64().unwrap();
    let rest = app
        .call(
            Method::GET,
            &format!("/v1/audit_events?page_size=3&start_at={next}"),
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(rest.body["audit_events"][0]["action"], "data_mapper.create");
    assert_eq!(rest.body["next_start"], json!(null));
    let future = app
        .call(
            Method::GET,
            "/v1/audit_events?since=2999-01-01T00:00:00Z",
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(future.body["audit_events"], json!([]));
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn audit_rows_carry_before_and_after_server_request_ids_and_the_scheduler_as_actor(
    pool: sqlx::PgPool,
) {
    use axum::body::Body;
    use axum::http::Request;
    let app = TestApp::new(pool.clone());
    let admin = app.admin();
    let put = |path: &str, body: serde_json::Value, client_id: &str| {
        Request::builder()
            .method(Method::PUT)
            .uri(path)
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/json")
            .header("x-request-id", client_id)
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let created = app
        .send(put("/v1/data_mappers/people", glue_mapper(), "client-1"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let mut changed = glue_mapper();
    changed["columns"] = json!(["customer_id"]);
    let replaced = app
        .send(put("/v1/data_mappers/people", changed, "client-2"))
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    let mut longer = settings();
    longer["report_retention_days"] = json!(400);
    app.send(put("/v1/settings", longer, "client-3")).await;
    // A retention shorter than the documented minimum is refused.
    let mut short = settings();
    short["report_retention_days"] = json!(7);
    assert_eq!(
        app.put("/v1/settings", short).await.invalid_fields(),
        ["report_retention_days"]
    );

    let events = app.get("/v1/audit_events").await.body["audit_events"].clone();
    let by_action = |action: &str| -> serde_json::Value {
        events
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == action)
            .cloned()
            .unwrap_or_else(|| panic!("no {action} in {events}"))
    };
    let create = by_action("data_mapper.create");
    assert_eq!(create["details"]["before"], json!(null));
    assert_eq!(
        create["details"]["after"]["columns"],
        json!(["customer_id", "contact.email"])
    );
    let replace = by_action("data_mapper.replace");
    assert_eq!(
        replace["details"]["before"]["columns"],
        json!(["customer_id", "contact.email"])
    );
    assert_eq!(
        replace["details"]["after"]["columns"],
        json!(["customer_id"])
    );
    // The server's request id is the response's; the client's is kept beside it.
    assert_eq!(
        replace["request_id"],
        replaced.headers["x-request-id"].to_str().unwrap()
    );
    assert_ne!(replace["request_id"], "client-2");
    assert_eq!(replace["client_request_id"], "client-2");
    let update = by_action("settings.update");
    assert_eq!(update["details"]["before"]["report_retention_days"], 90);
    assert_eq!(update["details"]["after"]["report_retention_days"], 400);
    assert_eq!(update["client_request_id"], "client-3");

    // A job started by the scheduler (a deadline is due) is audited as `scheduler`, in
    // the job's own transaction.
    let queued = app
        .patch(
            "/v1/queue/matches",
            json!({"matches": [{"match_id": 738291046}]}),
        )
        .await;
    assert_eq!(queued.status, StatusCode::CREATED, "{}", queued.body);
    sqlx::query("update deletion_queue_item set deadline = now() + interval '1 hour'")
        .execute(&pool)
        .await
        .unwrap();
    let issuer = app.state.receipts.clone();
    let schedule = || lethe::jobs::runtime::schedule(&pool, &issuer, chrono::Duration::hours(72));
    // No mapper is enabled for automatic jobs: no job, but an alert naming the item by its
    // keyed hash and creator (once an hour, not every tick).
    assert_eq!(schedule().await.unwrap(), None, "no erasure nobody decided");
    assert_eq!(schedule().await.unwrap(), None);
    let alerts = app
        .get("/v1/audit_events?action=scheduler.deadline_alert")
        .await
        .body["audit_events"]
        .clone();
    assert_eq!(alerts.as_array().unwrap().len(), 1, "{alerts}");
    assert_eq!(alerts[0]["actor"], "scheduler");
    let alerted = &alerts[0]["details"]["items"][0];
    assert_eq!(alerted["created_by"], "admin-user", "{alerted}");
    assert_eq!(
        alerted["match_hash"].as_str().unwrap().len(),
        64,
        "{alerted}"
    );
    assert!(
        !alerts[0].to_string().contains("738291046"),
        "never the id: {alerts}"
    );
    // An operator enables the mapper: a job over the near item only (a far one waits).
    let far = app
        .patch(
            "/v1/queue/matches",
            json!({"matches": [{"match_id": 738291047}]}),
        )
        .await;
    assert_eq!(far.status, StatusCode::CREATED, "{}", far.body);
    sqlx::query("update data_mapper set automatic_jobs = true")
        .execute(&pool)
        .await
        .unwrap();
    let job = schedule()
        .await
        .unwrap()
        .expect("a deadline within the margin starts a job over an automatic mapper");
    let started = app.get(&format!("/v1/jobs/{job}")).await.body;
    assert_eq!(started["queue_items"], 1, "only the near item: {started}");
    let events = app.get("/v1/audit_events?action=job.start").await.body["audit_events"].clone();
    assert_eq!(events[0]["actor"], "scheduler");
    assert_eq!(events[0]["target_id"], job.to_string());
    assert_eq!(events[0]["details"]["trigger"], "deadline");
    assert_eq!(events[0]["request_id"], json!(null));
    assert_eq!(
        events[0]["details"]["cause"]["deadline_items"][0]["match_hash"], alerted["match_hash"],
        "the audit row names the item that triggered it"
    );
    // A cancel is audited with its caller, also in the job's transaction.
    let cancelled = app.post(&format!("/v1/jobs/{job}/cancel"), None).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    let cancel =
        app.get("/v1/audit_events?action=job.cancel").await.body["audit_events"][0].clone();
    assert_eq!(cancel["actor"], "admin-user");
    assert_eq!(
        cancel["request_id"],
        cancelled.headers["x-request-id"].to_str().unwrap()
    );
    assert!(cancel["details"]["status_before"].is_string(), "{cancel}");
}
