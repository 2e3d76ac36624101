use axum::http::StatusCode;
use serde_json::json;

use crate::common::{TestApp, glue_mapper, path_mapper};

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn put_creates_then_replaces_and_get_returns_the_mapper(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let created = app.put("/v1/data_mappers/people", glue_mapper()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.headers["location"], "/v1/data_mappers/people");
    let body = &created.body;
    assert_eq!(body["data_mapper_id"], "people");
    assert_eq!(
        body["catalog"],
        json!({"provider": "glue", "database": "lake", "table": "people"})
    );
    assert_eq!(body["columns"], json!(["customer_id", "contact.email"]));
    assert_eq!(body["delete_old_versions"], true);
    assert_eq!(body["ignore_object_not_found"], false);
    assert_eq!(body["find_engine"], "embedded");
    assert_eq!(body["created_by"], "admin-user");

    let mut changed = glue_mapper();
    changed["delete_old_versions"] = json!(false);
    changed["data_mapper_id"] = json!("people");
    let replaced = app.put("/v1/data_mappers/people", changed).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.body["delete_old_versions"], false);
    assert_eq!(replaced.body["created_at"], created.body["created_at"]);

    let got = app.get("/v1/data_mappers/people").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, replaced.body);
    let path = app.put("/v1/data_mappers/orders", path_mapper()).await;
    assert_eq!(path.status, StatusCode::CREATED, "{}", path.body);
    assert_eq!(path.body["catalog"]["location"], "s3://lake-bucket/orders/");
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn glue_mappers_are_checked_against_the_table(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let cases = [
        (
            json!({"catalog": {"provider": "glue", "database": "nope", "table": "people"}}),
            vec!["catalog.database"],
        ),
        (
            json!({"catalog": {"provider": "glue", "database": "lake", "table": "nope"}}),
            vec!["catalog.table"],
        ),
        (
            json!({"columns": ["customer_id", "contact.fax", "email"]}),
            vec!["columns[1]", "columns[2]"],
        ),
        (json!({"columns": ["contact"]}), vec!["columns[0]"]),
        (
            json!({"partition_keys": ["month"]}),
            vec!["partition_keys[0]"],
        ),
        (json!({"format": "json"}), vec!["format"]),
    ];
    for (patch, fields) in cases {
        let mut body = glue_mapper();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let reply = app.put("/v1/data_mappers/people", body.clone()).await;
        assert_eq!(reply.invalid_fields(), fields, "{body}");
    }
    assert_eq!(app.count("data_mapper").await, 0);
    assert_eq!(app.count("audit_event").await, 0);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn invalid_mapper_fields_are_named(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let cases = [
        (
            "/v1/data_mappers/Bad%20Id",
            glue_mapper(),
            vec!["data_mapper_id"],
        ),
        (
            "/v1/data_mappers/people",
            json!({"catalog": {"provider": "glue", "database": "lake", "table": "people"}, "format": "orc", "columns": ["a"]}),
            vec!["format"],
        ),
        (
            "/v1/data_mappers/people",
            json!({"catalog": {"provider": "hive"}, "format": "json", "columns": ["a"]}),
            vec!["catalog.provider"],
        ),
        (
            "/v1/data_mappers/people",
            json!({"catalog": {"provider": "path", "location": "ftp://x/y"}, "format": "json", "columns": ["a"]}),
            vec!["catalog.location"],
        ),
        (
            "/v1/data_mappers/people",
            json!({"catalog": {"provider": "path", "location": "s3://bkt/x"}, "format": "json", "columns": []}),
            vec!["columns"],
        ),
        (
            "/v1/data_mappers/people",
            json!({"catalog": {"provider": "path", "location": "s3://bkt/x"}, "format": "json", "columns": ["a", "a.", "a"]}),
            vec!["columns[2]", "columns[1]"],
        ),
        (
            "/v1/data_mappers/people",
            json!({"catalog": {"provider": "path", "location": "s3://bkt/x"}, "format": "json", "columns": ["a"], "role_arn": "admin"}),
            vec!["role_arn"],
        ),
        (
            "/v1/data_mappers/people",
            json!({"catalog": {"provider": "path", "location": "s3://bkt/x"}, "format": "json", "columns": ["a"], "colour": "red"}),
            vec!["colour"],
        ),
        (
            "/v1/data_mappers/people",
            json!({"catalog": {"provider": "path", "location": "s3://bkt/x"}, "format": "json", "columns": "a"}),
            vec!["columns"],
        ),
        (
            "/v1/data_mappers/people",
            json!({"catalog": {"provider": "path", "location": "s3://bkt/x"}, "format": "json"}),
            vec![""],
        ),
        (
            "/v1/data_mappers/people",
            json!({"data_mapper_id": "other", "catalog": {"provider": "path", "location": "s3://bkt/x"}, "format": "json", "columns": ["a"]}),
            vec!["data_mapper_id"],
        ),
        (
            "/v1/data_mappers/people",
            json!({"catalog": {"provider": "path", "location": "s3://bkt/x"}, "format": "json", "columns": ["a"], "find_engine": "athena"}),
            vec!["find_engine"],
        ),
    ];
    for (path, body, mut fields) in cases {
        let reply = app.put(path, body.clone()).await;
        let mut got = reply.invalid_fields();
        got.sort();
        fields.sort();
        assert_eq!(got, fields, "{body}: {}", reply.body);
    }
    assert_eq!(app.count("data_mapper").await, 0);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn list_pages_through_every_mapper_once(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    let mut ids: Vec<String> = (0..7).map(|i| format!("mapper-{i}")).collect();
    for id in &ids {
        assert_eq!(
            app.put(&format!("/v1/data_mappers/{id}"), path_mapper())
                .await
                .status,
            StatusCode::CREATED
        );
    }
    let mut seen = Vec::new();
    let mut url = "/v1/data_mappers?page_size=3".to_owned();
    let mut pages = 0;
    loop {
        let reply = app.get(&url).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        pages += 1;
        for m in reply.body["data_mappers"].as_array().unwrap() {
            seen.push(m["data_mapper_id"].as_str().unwrap().to_owned());
        }
        match reply.body["next_start"].as_str() {
            Some(next) => url = format!("/v1/data_mappers?page_size=3&start_at={next}"),
            None => break,
        }
    }
    ids.sort();
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);
    for bad in ["page_size=0", "page_size=1001", "page_size=abc", "limit=3"] {
        app.get(&format!("/v1/data_mappers?{bad}"))
            .await
            .problem(400);
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn delete_removes_a_mapper_unless_queued_items_name_it(pool: sqlx::PgPool) {
    let app = TestApp::new(pool);
    app.put("/v1/data_mappers/people", glue_mapper()).await;
    app.put("/v1/data_mappers/orders", path_mapper()).await;
    let queued = app
        .patch(
            "/v1/queue/matches",
            json!({"matches": [{"match_id": 42, "data_mappers": ["people"]}]}),
        )
        .await;
    assert_eq!(queued.status, StatusCode::CREATED);

    app.delete("/v1/data_mappers/people", None)
        .await
        .problem(409);
    assert_eq!(
        app.get("/v1/data_mappers/people").await.status,
        StatusCode::OK
    );

    assert_eq!(
        app.delete("/v1/data_mappers/orders", None).await.status,
        StatusCode::NO_CONTENT
    );
    app.get("/v1/data_mappers/orders").await.problem(404);
    app.delete("/v1/data_mappers/orders", None)
        .await
        .problem(404);

    let id = queued.body["matches"][0]["deletion_queue_item_id"].clone();
    let removed = app
        .delete(
            "/v1/queue/matches",
            Some(json!({"matches": [{"deletion_queue_item_id": id}]})),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.delete("/v1/data_mappers/people", None).await.status,
        StatusCode::NO_CONTENT
    );
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_role_outside_the_allowed_list_is_refused_and_none_is_allowed_by_default(
    pool: sqlx::PgPool,
) {
    for (allowed, arn, ok) in [
        (vec![], "arn:aws:iam::123456789012:role/LetheJobs", false),
        (
            vec!["arn:aws:iam::123456789012:role/lethe-*"],
            "arn:aws:iam::123456789012:role/lethe-jobs",
            true,
        ),
        (
            vec!["arn:aws:iam::123456789012:role/lethe-*"],
            "arn:aws:iam::999999999999:role/lethe-jobs",
            false,
        ),
    ] {
        let app = TestApp::with(
            pool.clone(),
            std::sync::Arc::new(crate::common::catalog()),
            |c| c.aws.allowed_role_arns = allowed.iter().map(|r| r.to_string()).collect(),
        );
        let mut body = glue_mapper();
        body["role_arn"] = json!(arn);
        let before = app.count("data_mapper").await;
        let reply = app.put("/v1/data_mappers/people", body).await;
        if ok {
            assert!(reply.status.is_success(), "{arn}: {}", reply.body);
        } else {
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{arn}");
            assert_eq!(reply.invalid_fields(), ["role_arn"], "{}", reply.body);
            assert_eq!(app.count("data_mapper").await, before, "nothing saved");
        }
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn access_policy_grants_exactly_the_table_prefix(pool: sqlx::PgPool) {
    let app = TestApp::with(pool, std::sync::Arc::new(crate::common::catalog()), |c| {
        c.aws.principal_arn = Some("arn:aws:iam::210987654321:role/Lethe".into());
        c.aws.role_external_id = Some("ext-1".into());
        c.aws.region = Some("eu-west-1".into());
    });
    let mut body = glue_mapper();
    body["role_arn"] = json!("arn:aws:iam::123456789012:role/LetheJobs");
    app.put("/v1/data_mappers/people", body).await;
    let reply = app.get("/v1/data_mappers/people/access_policy").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["location"], "s3://lake-bucket/people/");
    let statements = reply.body["iam_policy"]["Statement"].as_array().unwrap();
    let resources: Vec<String> = statements
        .iter()
        .flat_map(|s| match &s["Resource"] {
            serde_json::Value::Array(items) => items
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect(),
            r => vec![r.as_str().unwrap().to_owned()],
        })
        .collect();
    assert!(resources.contains(&"arn:aws:s3:::lake-bucket/people/*".to_owned()));
    // The role reads S3; Lethe itself reads Glue and assumes the role, which trusts it.
    assert!(!resources.iter().any(|r| r.starts_with("arn:aws:glue")));
    assert_eq!(
        reply.body["lethe_policy"]["Statement"][1]["Resource"][2],
        "arn:aws:glue:eu-west-1:210987654321:table/lake/people",
        "Glue ARNs name Lethe's region and account"
    );
    assert_eq!(
        reply.body["trust_policy"]["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::210987654321:role/Lethe"
    );
    assert_eq!(
        reply.body["trust_policy"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        "ext-1"
    );
    assert!(!resources.iter().any(|r| r == "arn:aws:s3:::lake-bucket/*"));
    assert_eq!(
        reply.body["bucket_policy"]["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::123456789012:role/LetheJobs"
    );

    let mut local = path_mapper();
    local["catalog"]["location"] = json!("file:///tmp/lake");
    app.put("/v1/data_mappers/local", local).await;
    app.get("/v1/data_mappers/local/access_policy")
        .await
        .problem(409);
    app.get("/v1/data_mappers/ghost/access_policy")
        .await
        .problem(404);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn local_locations_must_lie_in_the_local_lake_root(pool: sqlx::PgPool) {
    let body = |location: &str| {
        json!({"catalog": {"provider": "path", "location": location},
               "format": "json", "columns": ["id"]})
    };
    // No root configured: every file:// location is refused.
    let closed = crate::common::TestApp::with_stores(
        pool.clone(),
        std::sync::Arc::new(crate::common::catalog()),
        lethe::storage::Stores::offline(),
    );
    let r = closed.put("/v1/data_mappers/host", body("file:///")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(
        r.body.to_string().contains("LETHE_LOCAL_LAKE_ROOT"),
        "{}",
        r.body
    );
    // The tests' root is the temp dir: /etc and .. escapes are refused, inside is fine.
    let app = crate::common::TestApp::new(pool);
    for location in ["file:///etc", "file:///", "file:///tmp/../etc"] {
        let r = app.put("/v1/data_mappers/host", body(location)).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{location}: {}",
            r.body
        );
        assert!(
            r.body["errors"].to_string().contains("catalog.location"),
            "{}",
            r.body
        );
    }
    let inside = tempfile::tempdir().unwrap();
    let location = format!("file://{}", inside.path().display());
    let r = app.put("/v1/data_mappers/inside", body(&location)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// An operator points a local mapper at a symlink inside the root that leads out of it
/// (to a folder holding another system's files): refused at save. Saved at a real folder
/// that is then swapped for such a symlink, the listing refuses it and fails the mapper
/// instead of following it.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_symlink_at_a_local_location_leading_out_of_the_root_is_refused_at_save_and_listing(
    pool: sqlx::PgPool,
) {
    let body = |location: &str| {
        json!({"catalog": {"provider": "path", "location": location, "format": "json"},
               "format": "json", "columns": ["id"]})
    };
    // The tests' local root is the temp dir; the target dir's tmp lies outside it.
    let outside = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    assert!(!outside.path().starts_with(std::env::temp_dir()));
    std::fs::create_dir(outside.path().join("sub")).unwrap();
    let secret = b"{\"id\": \"victim@example.com\"}\n";
    std::fs::write(outside.path().join("sub/part-0.json"), secret).unwrap();
    let lake = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), lake.path().join("link")).unwrap();
    let app = TestApp::new(pool);
    for location in [
        format!("file://{}/link", lake.path().display()),
        format!("file://{}/link/sub/", lake.path().display()),
    ] {
        let r = app.put("/v1/data_mappers/escape", body(&location)).await;
        assert_eq!(r.invalid_fields(), ["catalog.location"], "{location}");
        assert!(r.body.to_string().contains("symlink"), "{}", r.body);
    }
    assert_eq!(app.count("data_mapper").await, 0);

    // Saved at a real folder, then swapped for a symlink out of the root.
    let folder = lake.path().join("table");
    std::fs::create_dir(&folder).unwrap();
    let location = format!("file://{}", folder.display());
    let r = app.put("/v1/data_mappers/swapped", body(&location)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    std::fs::remove_dir(&folder).unwrap();
    std::os::unix::fs::symlink(outside.path(), &folder).unwrap();
    crate::jobs::queue(&app, json!([{"match_id": "victim@example.com"}])).await;
    let job = crate::jobs::start_dry_run(&app, &["swapped"]).await;
    app.worker("w").run_until_idle().await.unwrap();
    let got = app.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(got.body["status"], "find_failed", "{}", got.body);
    let events = app
        .get(&format!("/v1/jobs/{job}/events?page_size=1000"))
        .await;
    let failure = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "mapper_failed")
        .cloned()
        .expect("a mapper_failed event");
    let message = failure["message"].as_str().unwrap();
    assert!(
        message.contains("access denied") && message.contains("symlink"),
        "{failure}"
    );
    // Nothing outside was listed or read.
    let objects = app.get(&format!("/v1/jobs/{job}/objects")).await;
    assert!(
        !objects.body.to_string().contains("part-0.json"),
        "{}",
        objects.body
    );
    assert_eq!(
        std::fs::read(outside.path().join("sub/part-0.json")).unwrap(),
        secret
    );
    assert_eq!(
        app.count("deletion_queue_item").await,
        1,
        "the subject stays queued"
    );
}
