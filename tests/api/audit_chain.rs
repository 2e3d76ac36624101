//! The audit trail's hash chain through the API: `GET /v1/audit_events/head` names the head
//! the chain walk computes, a job's end writes a checkpoint that `GET
//! /v1/audit_events/checkpoints` exports and the published JWKS verifies, and `lethe audit
//! verify` (the binary) passes the chain and the checkpoint, then names the row a
//! superuser edited (exit status 1).

use axum::http::{Method, StatusCode};
use lethe::api::auth::Role;
use lethe::audit::checkpoint::verify;
use lethe::receipt::Jwks;
use serde_json::json;
use sqlx::PgPool;

use crate::common::TestApp;
use crate::jobs::{events_mapper, local_lake, queue};

/// The checkpoints the API exports, one compact JWS per line.
async fn checkpoints(app: &TestApp, token: &str) -> Vec<String> {
    let r = app
        .call(
            Method::GET,
            "/v1/audit_events/checkpoints",
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "text/plain; charset=utf-8"
    );
    let text = r.body.as_str().map(str::to_owned).unwrap_or_default();
    text.lines().map(str::to_owned).collect()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn the_head_and_the_checkpoints_a_job_writes_hold_the_chain_until_a_superuser_edits_it(
    db: PgPool,
) {
    let app = TestApp::new(db.clone());
    let operator = app.token("ops", &[Role::Operator]);
    let auditor = app.token("aud", &[Role::Auditor]);
    let empty = app
        .call(Method::GET, "/v1/audit_events/head", Some(&operator), None)
        .await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert_eq!(
        empty.body,
        json!({"seq": 0, "hash": "0".repeat(64), "audit_event_id": null, "rows": 0})
    );

    // A job over a local lake: its mapper, its queue item and its start are audited; its
    // end writes a checkpoint.
    let root = local_lake();
    let r = app
        .put("/v1/data_mappers/events", events_mapper(&root))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    queue(&app, json!([{"match_id": 1234}])).await;
    let job = crate::e2e_jobs::run_job(&app, &["events"]).await;
    assert_eq!(job["status"], "completed", "{job}");

    let head = app
        .call(Method::GET, "/v1/audit_events/head", Some(&auditor), None)
        .await;
    assert_eq!(head.status, StatusCode::OK, "{}", head.body);
    let rows = app.count("audit_event").await;
    assert!(rows >= 3, "{rows}");
    assert_eq!(head.body["seq"], rows);
    assert_eq!(head.body["rows"], rows);
    let walked = lethe::db::audit_event::verify_chain(&db, vec![])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.body["hash"], walked.head_hash.as_str());

    let jwks: Jwks = serde_json::from_value(app.get("/v1/receipts/keys").await.body).unwrap();
    let exported = checkpoints(&app, &operator).await;
    assert_eq!(exported.len(), 1, "one checkpoint, at the job's end");
    let cp = verify(&exported[0], &jwks).unwrap();
    assert_eq!((cp.seq, cp.rows), (rows, rows));
    assert_eq!(cp.hash, walked.head_hash);
    assert_eq!(cp.issuer, app.config.receipts.deployment_name);
    let later = checkpoints_since(&app, "2999-01-01T00:00:00Z").await;
    assert!(later.is_empty());

    // Requesters and governance see neither; a bad query is a 400 that names it.
    for role in [Role::Requester, Role::Governance] {
        let token = app.token("x", &[role]);
        for path in ["/v1/audit_events/head", "/v1/audit_events/checkpoints"] {
            app.call(Method::GET, path, Some(&token), None)
                .await
                .problem(403);
        }
    }
    app.get("/v1/audit_events/checkpoints?until=now")
        .await
        .problem(400);

    cli_verifies(&db, &jwks, &exported[0], walked.head_seq).await;
}

async fn checkpoints_since(app: &TestApp, since: &str) -> Vec<String> {
    let r = app
        .get(&format!("/v1/audit_events/checkpoints?since={since}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let text = r.body.as_str().map(str::to_owned).unwrap_or_default();
    text.lines().map(str::to_owned).collect()
}

/// `lethe audit verify` over the test's database: intact with the checkpoint; after a
/// superuser edits row 2 (trigger off and on again), exit status 1 naming it.
async fn cli_verifies(db: &PgPool, jwks: &Jwks, checkpoint: &str, head_seq: i64) {
    let name: String = sqlx::query_scalar("select current_database()::text")
        .fetch_one(db)
        .await
        .unwrap();
    let mut url = url::Url::parse(&std::env::var("DATABASE_URL").unwrap()).unwrap();
    url.set_path(&name);
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, serde_json::to_vec(jwks).unwrap()).unwrap();
    let cps = dir.path().join("checkpoints.txt");
    std::fs::write(&cps, format!("{checkpoint}\n")).unwrap();
    let run = |with_checkpoint: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lethe"));
        cmd.args(["audit", "verify"])
            .env("DATABASE_URL", url.as_str())
            .env("LETHE_LOG", "error");
        if with_checkpoint {
            cmd.arg("--checkpoint").arg(&cps).arg("--keys").arg(&keys);
        }
        cmd.output().unwrap()
    };
    let ok = run(true);
    let said = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        said.starts_with(&format!(
            "{head_seq} audit row(s) verified: chain intact, head seq {head_seq}"
        )) && said.contains("1 checkpoint(s) matched"),
        "{said}"
    );

    let id: i64 = sqlx::query_scalar("select audit_event_id from audit_event where seq = 2")
        .fetch_one(db)
        .await
        .unwrap();
    for sql in [
        "alter table audit_event disable trigger audit_event_no_update_or_delete",
        "update audit_event set actor = 'mallory' where seq = 2",
        "alter table audit_event enable trigger audit_event_no_update_or_delete",
    ] {
        sqlx::query(sql).execute(db).await.unwrap();
    }
    let broken = run(false);
    assert_eq!(broken.status.code(), Some(1));
    let said = String::from_utf8_lossy(&broken.stderr);
    assert!(
        said.contains(&format!(
            "audit chain broken: seq 2 (audit_event_id {id}): its hash does not match its content"
        )),
        "{said}"
    );
}

/// Every end of a job writes a checkpoint, not only a completed erasure: a dry run that
/// ends by itself, and a job an operator cancels (its `job.cancel` audit row covered).
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_dry_run_and_a_cancelled_job_each_end_with_a_checkpoint_of_the_head(db: PgPool) {
    let app = TestApp::new(db.clone());
    let operator = app.token("ops", &[Role::Operator]);
    let root = local_lake();
    let r = app
        .put("/v1/data_mappers/events", events_mapper(&root))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    queue(&app, json!([{"match_id": 1234}])).await;
    let jwks: Jwks = serde_json::from_value(app.get("/v1/receipts/keys").await.body).unwrap();

    let dry = crate::jobs::start_dry_run(&app, &["events"]).await;
    app.worker("w").run_until_idle().await.unwrap();
    let ended = app.get(&format!("/v1/jobs/{dry}")).await;
    assert_eq!(ended.body["status"], "completed", "{}", ended.body);
    let after_dry = checkpoints(&app, &operator).await;
    assert_eq!(after_dry.len(), 1, "the dry run's end wrote one");
    let cp = verify(&after_dry[0], &jwks).unwrap();
    assert_eq!(cp.rows, app.count("audit_event").await);

    let job = crate::jobs::start_dry_run(&app, &["events"]).await;
    let cancelled = app.post(&format!("/v1/jobs/{job}/cancel"), None).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    let after_cancel = checkpoints(&app, &operator).await;
    assert_eq!(after_cancel.len(), 2, "the cancel wrote one more");
    let cp = verify(&after_cancel[1], &jwks).unwrap();
    let rows = app.count("audit_event").await;
    assert_eq!(
        (cp.seq, cp.rows),
        (rows, rows),
        "it covers the cancel's own audit row"
    );
    let walked = lethe::db::audit_event::verify_chain(&db, vec![])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cp.hash, walked.head_hash);
    std::fs::remove_dir_all(root).unwrap();
}
