//! Classification and access-policy API through the router, with the in-memory Glue
//! catalog and Lake Formation (the emulator scenario is in e2e_governance).

use axum::http::StatusCode;
use serde_json::json;

use crate::common::TestApp;

fn policy() -> serde_json::Value {
    json!({"principal": "arn:aws:iam::123456789012:role/NonPIIAnalyst",
           "tables": [{"database": "lake", "table": "people"}],
           "access": "non_pii_columns", "permissions": ["SELECT"]})
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn columns_list_nested_fields_and_partition_keys_unclassified_by_default(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let reply = app.get("/v1/catalog/lake/people/columns").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let cols: Vec<(String, String, String)> = reply.body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().into(),
                c["kind"].as_str().unwrap().into(),
                c["classification"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(cols.contains(&(
        "contact.email".into(),
        "nested_field".into(),
        "unclassified".into()
    )));
    assert!(cols.contains(&("year".into(), "partition_key".into(), "unclassified".into())));
    app.get("/v1/catalog/lake/nope/columns").await.problem(404);
    app.get("/v1/catalog/nope/people/columns")
        .await
        .problem(404);

    let body = json!({"columns": [{"name": "contact", "classification": "non_pii"},
                                   {"name": "contact.email", "classification": "pii", "category": "contact.email"}]});
    let reply = app
        .put("/v1/catalog/lake/people/classifications", body)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let phone = reply.body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "contact.phone")
        .unwrap();
    assert_eq!(
        (phone["classification"].clone(), phone["inherited"].clone()),
        (json!("non_pii"), json!(true))
    );
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn invalid_classifications_are_named_and_change_nothing(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let body = json!({"columns": [{"name": "first_name", "classification": "pii"},
                                   {"name": "ghost", "classification": "pii"},
                                   {"name": "first_name", "classification": "non_pii"}]});
    assert_eq!(
        app.put("/v1/catalog/lake/people/classifications", body)
            .await
            .invalid_fields(),
        ["columns[1].name", "columns[2].name"]
    );
    let body = json!({"columns": [{"name": "first_name", "classification": "secret"}]});
    assert_eq!(
        app.put("/v1/catalog/lake/people/classifications", body)
            .await
            .invalid_fields(),
        ["columns[0].classification"]
    );
    assert_eq!(app.count("column_classification").await, 0);
    assert_eq!(app.count("audit_event").await, 0);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn access_policies_are_validated_against_glue(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let cases = [
        (json!({"principal": "bob"}), vec!["principal"]),
        (
            json!({"tables": [{"database": "lake", "table": "ghost"}]}),
            vec!["tables[0].table"],
        ),
        (
            json!({"tables": [{"database": "ghost", "table": "*"}]}),
            vec!["tables[0].database"],
        ),
        (
            json!({"access": {"columns": ["first_name", "ghost"]}}),
            vec!["access.columns[1]"],
        ),
        (json!({"access": "some_columns"}), vec!["access"]),
        (json!({"permissions": ["DROP"]}), vec!["permissions[0]"]),
        (json!({"permissions": []}), vec!["permissions"]),
        (json!({"tables": []}), vec!["tables"]),
    ];
    for (patch, fields) in cases {
        let mut body = policy();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        assert_eq!(
            app.put("/v1/access_policies/analysts", body.clone())
                .await
                .invalid_fields(),
            fields,
            "{body}"
        );
    }
    // The reconciliation routes' names cannot be policy names.
    app.put("/v1/access_policies/plan", policy())
        .await
        .problem(405);
    assert_eq!(
        app.put("/v1/access_policies/Bad%20Name", policy())
            .await
            .invalid_fields(),
        ["name"]
    );
    assert_eq!(app.count("access_policy").await, 0);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn policies_crud_and_plan_apply_against_an_in_memory_lake_formation(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    assert_eq!(
        app.put("/v1/access_policies/analysts", policy())
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put("/v1/access_policies/analysts", policy())
            .await
            .status,
        StatusCode::OK
    );
    let got = app.get("/v1/access_policies/analysts").await;
    assert_eq!(got.body["access"], "non_pii_columns");
    assert_eq!(
        app.get("/v1/access_policies").await.body["access_policies"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Nothing is classified yet: no column may be granted, and the plan says why.
    let plan = app.post("/v1/access_policies/plan", None).await;
    assert_eq!(plan.body["to_grant"], json!([]));
    assert!(
        plan.body["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("no non_pii column"))
    );

    app.put("/v1/catalog/lake/people/classifications", json!({"columns": [
        {"name": "customer_id", "classification": "non_pii"}, {"name": "year", "classification": "non_pii"}]})).await;
    let applied = app.post("/v1/access_policies/apply", Some(json!({}))).await;
    assert_eq!(
        applied.body["outcomes"][0]["grant"]["target"],
        json!({"kind": "columns", "columns": ["customer_id", "year"]})
    );
    let plan = app.post("/v1/access_policies/plan", None).await;
    assert_eq!(
        (
            plan.body["to_grant"].clone(),
            plan.body["to_revoke"].clone()
        ),
        (json!([]), json!([]))
    );

    // A reviewed plan that has gone stale is not applied.
    let stale = json!({"plan": {"to_grant": [{"principal": "123456789012", "database": "lake", "table": "people",
        "target": {"kind": "all_columns"}, "permissions": ["SELECT"], "grant_option": false}], "to_revoke": []}});
    let applied = app.post("/v1/access_policies/apply", Some(stale)).await;
    assert_eq!(applied.body["outcomes"], json!([]));
    assert_eq!(applied.body["skipped_stale"].as_array().unwrap().len(), 1);

    // Deleting the policy makes its grant drift, revoked by the next apply.
    assert_eq!(
        app.delete("/v1/access_policies/analysts", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    app.get("/v1/access_policies/analysts").await.problem(404);
    let applied = app.post("/v1/access_policies/apply", Some(json!({}))).await;
    assert_eq!(applied.body["outcomes"][0]["action"], "revoke");
    app.get("/v1/access_policies/drift").await.problem(404);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn the_reconciler_records_drift_only_once_something_is_governed(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let catalog = crate::common::catalog();
    let lf = lethe::catalog::lake_formation::MemoryLakeFormation::default();
    let gov = || lethe::governance::Governance {
        db: &app.db,
        catalog: &catalog,
        lf: &lf,
    };
    assert_eq!(
        lethe::governance::record_drift(&gov()).await.unwrap(),
        Some(0)
    );
    app.get("/v1/access_policies/drift").await.problem(404);
    app.put(
        "/v1/catalog/lake/people/classifications",
        json!({"columns": [{"name": "customer_id", "classification": "non_pii"}]}),
    )
    .await;
    app.put("/v1/access_policies/analysts", policy()).await;
    assert_eq!(
        lethe::governance::record_drift(&gov()).await.unwrap(),
        Some(1)
    );
    let drift = app.get("/v1/access_policies/drift").await;
    assert_eq!(drift.body["drifted_grants"], 1);
    assert_eq!(
        drift.body["drift"]["to_grant"][0]["target"],
        json!({"kind": "columns", "columns": ["customer_id"]})
    );
}

/// Lake Formation answering the first batch of grants, then never again (throttled, or a
/// network that went quiet): the request timeout cuts the apply half-way.
struct StallsAfterFirstBatch {
    inner: lethe::catalog::lake_formation::MemoryLakeFormation,
    batches: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl lethe::catalog::lake_formation::LakeFormation for StallsAfterFirstBatch {
    async fn list_permissions_page(
        &self,
        next_token: Option<String>,
    ) -> Result<
        (Vec<lethe::domain::grants::LfPermission>, Option<String>),
        lethe::catalog::lake_formation::LfError,
    > {
        self.inner.list_permissions_page(next_token).await
    }
    async fn batch_grant(
        &self,
        entries: &[(String, lethe::domain::grants::LfPermission)],
    ) -> Result<
        Vec<lethe::catalog::lake_formation::EntryFailure>,
        lethe::catalog::lake_formation::LfError,
    > {
        if self
            .batches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            >= 1
        {
            std::future::pending::<()>().await;
        }
        self.inner.batch_grant(entries).await
    }
    async fn batch_revoke(
        &self,
        entries: &[(String, lethe::domain::grants::LfPermission)],
    ) -> Result<
        Vec<lethe::catalog::lake_formation::EntryFailure>,
        lethe::catalog::lake_formation::LfError,
    > {
        self.inner.batch_revoke(entries).await
    }
    async fn grant(
        &self,
        entry: &lethe::domain::grants::LfPermission,
    ) -> Result<(), lethe::catalog::lake_formation::LfError> {
        self.inner.grant(entry).await
    }
    async fn registered_locations(
        &self,
    ) -> Result<Vec<String>, lethe::catalog::lake_formation::LfError> {
        self.inner.registered_locations().await
    }
    async fn default_table_principals(
        &self,
    ) -> Result<Vec<String>, lethe::catalog::lake_formation::LfError> {
        self.inner.default_table_principals().await
    }
}

/// An apply of 25 grants (two batches) whose second batch never gets an answer: the
/// request times out, and the audit trail still names exactly the 20 grants Lake
/// Formation holds from the first batch (recorded as that batch was applied).
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn an_apply_cut_by_the_request_timeout_keeps_the_audit_rows_of_the_batches_it_applied(
    pool: sqlx::PgPool,
) {
    let lf = std::sync::Arc::new(StallsAfterFirstBatch {
        inner: Default::default(),
        batches: Default::default(),
    });
    let app = TestApp::with_lake_formation(pool, lf.clone(), |c| {
        c.limits.request_timeout_secs = 1;
    });
    for i in 0..25 {
        let mut body = policy();
        body["principal"] = json!(format!("arn:aws:iam::123456789012:role/Analyst{i:02}"));
        let r = app
            .put(&format!("/v1/access_policies/analysts-{i:02}"), body)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    app.put(
        "/v1/catalog/lake/people/classifications",
        json!({"columns": [{"name": "customer_id", "classification": "non_pii"}]}),
    )
    .await;
    let plan = app.post("/v1/access_policies/plan", None).await;
    assert_eq!(plan.body["to_grant"].as_array().unwrap().len(), 25);

    let cut = app.post("/v1/access_policies/apply", Some(json!({}))).await;
    cut.problem(503);
    let held: std::collections::BTreeSet<String> = lf
        .inner
        .held
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.principal.clone())
        .collect();
    assert_eq!(held.len(), 20, "the first batch reached Lake Formation");
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "select action, target_id from audit_event
         where action like 'lake_formation.%' order by audit_event_id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let actions: Vec<&str> = rows.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions[0], "lake_formation.apply_started");
    assert!(!actions.contains(&"lake_formation.apply_finished"));
    let audited: std::collections::BTreeSet<String> = rows
        .iter()
        .filter(|(a, _)| a == "lake_formation.grant")
        .map(|(_, target)| {
            let target = target.as_deref().unwrap();
            target.split(' ').next().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        audited, held,
        "every grant applied is audited, and only those"
    );
    assert_eq!(
        rows.iter()
            .filter(|(a, _)| a == "lake_formation.grant")
            .count(),
        20
    );
}
