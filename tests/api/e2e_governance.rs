//! End to end against moto (Glue + Lake Formation) through the REST API: classify, declare,
//! plan, apply, evolve the schema, detect and revoke drift.

use std::sync::Arc;

use aws_sdk_glue::types::{Column, StorageDescriptor, TableInput};
use aws_sdk_lakeformation::types::{
    DataLakePrincipal, DataLakeResourceType, Permission, Resource, TableResource,
};
use axum::http::{Method, StatusCode};
use lethe::api::auth::Role;
use lethe::catalog::glue::GlueCatalog;
use lethe::catalog::lake_formation_sdk::SdkLakeFormation;
use lethe::domain::grants::{Grant, normalize};
use serde_json::{Value, json};

use crate::common::TestApp;

const LIMITED: &str = "arn:aws:iam::123456789012:role/LimitedPIIAnalyst";
const NON_PII: &str = "arn:aws:iam::123456789012:role/NonPIIAnalyst";
const INTRUDER: &str = "arn:aws:iam::123456789012:role/Intruder";

async fn sdk() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL must point at a moto server; run the suite with scripts/test");
    lethe::aws::sdk_config(&lethe::config::AwsConfig {
        endpoint_url: Some(endpoint),
        region: Some("us-east-1".into()),
        s3_force_path_style: true,
        ..Default::default()
    })
    .await
}

fn table_input(columns: &[(&str, &str)]) -> TableInput {
    let mut sd = StorageDescriptor::builder()
        .location("s3://governed-lake/customers/")
        .input_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat");
    for (name, ty) in columns {
        sd = sd.columns(Column::builder().name(*name).r#type(*ty).build().unwrap());
    }
    TableInput::builder()
        .name("customers")
        .storage_descriptor(sd.build())
        .build()
        .unwrap()
}

/// The grants Lake Formation holds on the test's database, read independently of Lethe.
async fn held(lf: &aws_sdk_lakeformation::Client, database: &str) -> Vec<Grant> {
    let out = lf
        .list_permissions()
        .resource_type(DataLakeResourceType::Table)
        .send()
        .await
        .unwrap();
    let mut grants: Vec<Grant> = out
        .principal_resource_permissions()
        .iter()
        .filter_map(|p| {
            let r = p.resource()?;
            let (db, name, columns) = if let Some(t) = r.table_with_columns() {
                let cols = if t.column_wildcard().is_some() {
                    None
                } else {
                    Some(t.column_names().to_vec())
                };
                (t.database_name(), t.name(), cols)
            } else {
                let t = r.table()?;
                (t.database_name(), t.name()?, None)
            };
            if db != database {
                return None;
            }
            let resource = match columns {
                Some(cols) => lethe::domain::grants::LfResource::TableWithColumns {
                    database: db.into(),
                    name: name.into(),
                    columns: lethe::domain::grants::LfColumns::Names(cols),
                },
                None if r.table_with_columns().is_some() => {
                    lethe::domain::grants::LfResource::TableWithColumns {
                        database: db.into(),
                        name: name.into(),
                        columns: lethe::domain::grants::LfColumns::Wildcard { excluded: vec![] },
                    }
                }
                None => lethe::domain::grants::LfResource::Table {
                    database: db.into(),
                    name: name.into(),
                },
            };
            Some(normalize(&lethe::domain::grants::LfPermission {
                principal: p.principal()?.data_lake_principal_identifier()?.to_owned(),
                resource,
                permissions: p
                    .permissions()
                    .iter()
                    .map(|x| x.as_str().to_owned())
                    .collect(),
                grantable: vec![],
            }))
        })
        .flatten()
        .collect();
    grants.sort();
    grants
}

fn summary(grants: &[Grant]) -> Vec<String> {
    let mut out: Vec<String> = grants
        .iter()
        .map(|g| {
            let target = match &g.target {
                lethe::domain::grants::Target::Columns { columns } => {
                    columns.iter().cloned().collect::<Vec<_>>().join(",")
                }
                other => format!("{other:?}"),
            };
            format!(
                "{} {} {}",
                g.principal.rsplit('/').next().unwrap(),
                g.permissions.iter().cloned().collect::<Vec<_>>().join(","),
                target
            )
        })
        .collect();
    out.sort();
    out
}

fn plan_summary(plan: &Value, key: &str) -> Vec<String> {
    let grants: Vec<Grant> = serde_json::from_value(plan[key].clone()).unwrap();
    summary(&grants)
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn declared_grants_reach_lake_formation_and_drift_is_reverted(pool: sqlx::PgPool) {
    let sdk = sdk().await;
    let glue = aws_sdk_glue::Client::new(&sdk);
    let lf = aws_sdk_lakeformation::Client::new(&sdk);
    let db = crate::e2e_jobs::glue_database(&glue, "gov").await;
    let mut columns = vec![
        ("customer_id", "bigint"),
        ("country", "string"),
        ("signup_date", "date"),
        ("email", "string"),
        ("phone", "string"),
    ];
    glue.create_table()
        .database_name(&db)
        .table_input(table_input(&columns))
        .send()
        .await
        .unwrap();

    let app = TestApp::with_aws(
        pool,
        Arc::new(GlueCatalog::new(&sdk)),
        Arc::new(SdkLakeFormation::new(&sdk)),
    );
    let gov = app.token("gina", &[Role::Governance]);
    let call = |method: Method, path: String, body: Option<Value>| {
        let app = &app;
        let gov = gov.clone();
        async move {
            let reply = app.call(method, &path, Some(&gov), body).await;
            assert!(
                reply.status.is_success(),
                "{path}: {} {}",
                reply.status,
                reply.body
            );
            reply.body
        }
    };
    // Lake Formation already equals the declaration.
    let assert_no_changes = || {
        let plan = call(Method::POST, "/v1/access_policies/plan".into(), None);
        async move {
            let plan = plan.await;
            assert!(
                plan["to_grant"] == json!([]) && plan["to_revoke"] == json!([]),
                "{plan}"
            );
        }
    };
    // Replaces the Glue table's columns (schema evolution).
    let set_columns = |columns: &[(&str, &str)]| {
        glue.update_table()
            .database_name(&db)
            .table_input(table_input(columns))
            .send()
    };
    let classify = |pairs: Vec<(&'static str, &'static str)>| {
        let body = json!({"columns": pairs.iter().map(|(n, c)| json!({"name": n, "classification": c})).collect::<Vec<_>>()});
        call(
            Method::PUT,
            format!("/v1/catalog/{db}/customers/classifications"),
            Some(body),
        )
    };

    classify(vec![
        ("customer_id", "non_pii"),
        ("country", "non_pii"),
        ("signup_date", "non_pii"),
        ("email", "pii"),
        ("phone", "pii"),
    ])
    .await;
    call(
        Method::PUT,
        "/v1/access_policies/limited-pii".into(),
        Some(json!({
        "principal": LIMITED, "tables": [{"database": db, "table": "customers"}],
        "access": "all_columns", "permissions": ["SELECT"]})),
    )
    .await;
    call(
        Method::PUT,
        "/v1/access_policies/non-pii".into(),
        Some(json!({
        "principal": NON_PII, "tables": [{"database": db, "table": "*"}],
        "access": "non_pii_columns", "permissions": ["SELECT", "DESCRIBE"]})),
    )
    .await;

    let plan = call(Method::POST, "/v1/access_policies/plan".into(), None).await;
    let expected = vec![
        "LimitedPIIAnalyst SELECT AllColumns".to_owned(),
        "NonPIIAnalyst DESCRIBE Table".to_owned(),
        "NonPIIAnalyst SELECT country,customer_id,signup_date".to_owned(),
    ];
    assert_eq!(plan_summary(&plan, "to_grant"), expected);
    let applied = call(
        Method::POST,
        "/v1/access_policies/apply".into(),
        Some(json!({})),
    )
    .await;
    assert_eq!(applied["failed"], 0, "{applied}");
    assert_eq!(summary(&held(&lf, &db).await), expected);
    let plan = call(Method::POST, "/v1/access_policies/plan".into(), None).await;
    assert_eq!(plan["to_grant"], json!([]));
    assert_eq!(plan["to_revoke"], json!([]));
    assert_eq!(plan["unchanged"].as_array().unwrap().len(), 3);

    // A new column stays hidden until classified, and after being classified PII.
    columns.push(("ssn", "string"));
    set_columns(&columns).await.unwrap();
    let listed = call(
        Method::GET,
        format!("/v1/catalog/{db}/customers/columns"),
        None,
    )
    .await;
    let ssn = listed["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ssn")
        .unwrap()
        .clone();
    assert_eq!(ssn["classification"], "unclassified");
    assert_no_changes().await;
    classify(vec![("ssn", "pii")]).await;
    assert_no_changes().await;

    // A new non-PII column reaches the non-PII role.
    columns.push(("loyalty_tier", "string"));
    set_columns(&columns).await.unwrap();
    classify(vec![("loyalty_tier", "non_pii")]).await;
    let applied = call(
        Method::POST,
        "/v1/access_policies/apply".into(),
        Some(json!({})),
    )
    .await;
    assert_eq!(applied["failed"], 0, "{applied}");
    let now = summary(&held(&lf, &db).await);
    assert!(
        now.contains(
            &"NonPIIAnalyst SELECT country,customer_id,loyalty_tier,signup_date".to_owned()
        ),
        "{now:?}"
    );
    assert_eq!(now.len(), 3, "{now:?}");

    // A grant made directly in Lake Formation is drift: reported, then revoked by apply.
    lf.grant_permissions()
        .principal(
            DataLakePrincipal::builder()
                .data_lake_principal_identifier(INTRUDER)
                .build(),
        )
        .resource(
            Resource::builder()
                .table(
                    TableResource::builder()
                        .database_name(&db)
                        .name("customers")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .permissions(Permission::Select)
        .send()
        .await
        .unwrap();
    let plan = call(Method::POST, "/v1/access_policies/plan".into(), None).await;
    assert_eq!(
        plan_summary(&plan, "to_revoke"),
        ["Intruder SELECT AllColumns"]
    );
    let drifted = lethe::governance::record_drift(&lethe::governance::Governance {
        db: &app.db,
        catalog: &GlueCatalog::new(&sdk),
        lf: &SdkLakeFormation::new(&sdk),
    })
    .await
    .unwrap();
    assert_eq!(drifted, Some(1));
    let drift = call(Method::GET, "/v1/access_policies/drift".into(), None).await;
    assert_eq!(drift["drifted_grants"], 1);
    let applied = call(
        Method::POST,
        "/v1/access_policies/apply".into(),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        applied["outcomes"].as_array().unwrap().len(),
        1,
        "{applied}"
    );
    assert_eq!(applied["outcomes"][0]["action"], "revoke");
    assert!(
        !summary(&held(&lf, &db).await)
            .iter()
            .any(|g| g.starts_with("Intruder"))
    );

    // A second apply is a no-op; Lake Formation equals the declaration.
    let again = call(
        Method::POST,
        "/v1/access_policies/apply".into(),
        Some(json!({})),
    )
    .await;
    assert_eq!(again["outcomes"], json!([]));
    assert_no_changes().await;

    // Every grant and revoke was audited.
    let auditor = app.token("audrey", &[Role::Auditor]);
    let audit = app
        .call(
            Method::GET,
            "/v1/audit_events?action=lake_formation.grant",
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(audit.body["audit_events"].as_array().unwrap().len(), 4);
    let audit = app
        .call(
            Method::GET,
            "/v1/audit_events?action=lake_formation.revoke",
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(audit.body["audit_events"].as_array().unwrap().len(), 2);

    // A column that vanishes from Glue keeps its classification and is reported.
    columns.retain(|(n, _)| *n != "phone");
    set_columns(&columns).await.unwrap();
    let listed = call(
        Method::GET,
        format!("/v1/catalog/{db}/customers/columns"),
        None,
    )
    .await;
    assert_eq!(
        listed["vanished_columns"],
        json!([{"name": "phone", "classification": "pii", "category": null}])
    );

    // Preflight: the location is not registered; once it is, that issue is gone.
    let issues = call(Method::GET, "/v1/access_policies/enforcement".into(), None).await;
    assert!(
        issues["issues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["issue"] == "unregistered_location" && i["database"] == db.as_str()),
        "{issues}"
    );
    lf.register_resource()
        .resource_arn("arn:aws:s3:::governed-lake/customers")
        .send()
        .await
        .unwrap();
    let issues = call(Method::GET, "/v1/access_policies/enforcement".into(), None).await;
    assert!(
        !issues["issues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["issue"] == "unregistered_location" && i["database"] == db.as_str()),
        "{issues}"
    );
    lf.deregister_resource()
        .resource_arn("arn:aws:s3:::governed-lake/customers")
        .send()
        .await
        .unwrap();
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_table_whose_schema_cannot_be_parsed_is_a_warning_in_the_plan_not_an_abort(
    pool: sqlx::PgPool,
) {
    let sdk = sdk().await;
    let glue = aws_sdk_glue::Client::new(&sdk);
    let db = crate::e2e_jobs::glue_database(&glue, "gov").await;
    glue.create_table()
        .database_name(&db)
        .table_input(table_input(&[("customer_id", "bigint")]))
        .send()
        .await
        .unwrap();
    // 10,000 levels of nesting: parsing it recursively would overflow the stack.
    let deep = format!("{}int{}", "array<".repeat(10_000), ">".repeat(10_000));
    let mut input = table_input(&[("customer_id", "bigint"), ("deep", &deep)]);
    input.name = "deep".into();
    glue.create_table()
        .database_name(&db)
        .table_input(input)
        .send()
        .await
        .unwrap();
    let app = TestApp::with_aws(
        pool,
        Arc::new(GlueCatalog::new(&sdk)),
        Arc::new(SdkLakeFormation::new(&sdk)),
    );
    let gov = app.token("gina", &[Role::Governance]);
    let policy = json!({"principal": NON_PII, "tables": [{"database": db, "table": "*"}],
                        "access": "all_columns", "permissions": ["SELECT"]});
    let r = app
        .call(
            Method::PUT,
            "/v1/access_policies/all",
            Some(&gov),
            Some(policy),
        )
        .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.body);
    let plan = app
        .call(Method::POST, "/v1/access_policies/plan", Some(&gov), None)
        .await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    let warnings = plan.body["warnings"].to_string();
    assert!(
        warnings.contains(".deep has a schema Lethe cannot read"),
        "{warnings}"
    );
    assert!(
        plan.body["to_grant"].to_string().contains("customers"),
        "the readable table is still planned: {}",
        plan.body
    );
    // The service is still up.
    let live = app.call(Method::GET, "/health/live", None, None).await;
    assert_eq!(live.status, StatusCode::OK);
}
