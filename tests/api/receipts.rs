//! Erasure receipts end to end: a JSON Lines job in the emulator's versioned bucket gives
//! every queue item one receipt; they verify with the published JWKS (through Lethe's own
//! check and through Python's `cryptography`, an independent ES256 implementation), chain
//! across jobs, state the versions S3 holds, and name no match id.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use axum::http::{Method, StatusCode};
use lethe::api::auth::Role;
use lethe::catalog::glue::GlueCatalog;
use lethe::receipt::verify::{Broken, Input, verify};
use lethe::receipt::{Jwks, Payload};
use lethe::storage::Stores;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::TestApp;
use crate::e2e_jobs::{run_job, versions};
use crate::e2e_storage::new_versioned_bucket;
use crate::jobs::queue;

/// The ids rows hold: distinctive, so the test can tell none is in a receipt.
const ERASED: i64 = 7_340_001;
const ALSO_ERASED: i64 = 7_340_002;
const ABSENT: i64 = 7_340_099;

fn lines(ids: &[i64]) -> String {
    ids.iter()
        .map(|i| format!("{{\"id\": {i}, \"note\": \"n\"}}\n"))
        .collect()
}

/// The receipts `path` returns, as `lethe receipt verify` reads them.
pub async fn receipts(app: &TestApp, path: &str, token: &str) -> Vec<Input> {
    let r = app.call(Method::GET, path, Some(token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "text/plain; charset=utf-8"
    );
    let text = r.body.as_str().map(str::to_owned).unwrap_or_default();
    text.lines()
        .enumerate()
        .map(|(n, l)| Input {
            at: format!("{path}:{}", n + 1),
            compact: l.to_owned(),
        })
        .collect()
}

/// The receipts' payloads by their item's reference.
fn by_reference(inputs: &[Input]) -> BTreeMap<String, Payload> {
    inputs
        .iter()
        .map(payload)
        .map(|p| (p.reference.clone().unwrap(), p))
        .collect()
}

fn payload(input: &Input) -> Payload {
    payload_of(&input.compact)
}

/// A receipt's payload, read without checking its signature.
pub fn payload_of(compact: &str) -> Payload {
    let part = compact.split('.').nth(1).unwrap();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn every_item_gets_one_signed_chained_receipt_that_verifies_with_the_published_keys(
    db: PgPool,
) {
    let (sdk, s3, bucket) = new_versioned_bucket().await;
    for (key, ids) in [
        ("t/a.json", vec![1, ERASED, 2]),
        ("t/b.json", vec![ERASED, ALSO_ERASED, 3]),
        // Not the table's data, not searched: every receipt names it as residue.
        ("t/_temporary/0/a.json", vec![ERASED]),
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(lines(&ids).into_bytes()))
            .send()
            .await
            .unwrap();
    }
    let before: BTreeMap<&str, String> = [
        (
            "t/a.json",
            versions(&s3, &bucket, "t/a.json").await[0].clone(),
        ),
        (
            "t/b.json",
            versions(&s3, &bucket, "t/b.json").await[0].clone(),
        ),
    ]
    .into();
    let app = TestApp::with_stores(
        db.clone(),
        Arc::new(GlueCatalog::new(&sdk)),
        Stores::new(&sdk, true),
    );
    let mapper = json!({
        "catalog": {"provider": "path", "location": format!("s3://{bucket}/t/"), "format": "json"},
        "format": "json",
        "columns": ["id"],
    });
    let r = app.put("/v1/data_mappers/events", mapper).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    queue(
        &app,
        json!([
            {"match_id": ERASED, "reference": "T-1"},
            {"match_id": ALSO_ERASED, "reference": "T-2"},
            {"match_id": ABSENT, "reference": "T-3"},
        ]),
    )
    .await;
    let job = run_job(&app, &[]).await;
    assert_eq!(job["status"], "completed", "{job}");
    let job_id = job["job_id"].as_str().unwrap().to_owned();

    // The keys need no token; the receipts need a reader of jobs (an auditor here).
    let keys = app.call(Method::GET, "/v1/receipts/keys", None, None).await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.body);
    let jwks: Jwks = serde_json::from_value(keys.body.clone()).unwrap();
    assert_eq!(jwks.keys.len(), 1);
    let auditor = app.token("audit-1", &[Role::Auditor]);
    let path = format!("/v1/jobs/{job_id}/receipts");
    let first = receipts(&app, &path, &auditor).await;
    assert_eq!(first.len(), 3, "one receipt per item");
    let ok = verify(&first, &jwks).unwrap();
    assert_eq!((ok.first_seq, ok.last_seq), (1, 3));
    let requester = app.token("req-1", &[Role::Requester]);
    let r = app.call(Method::GET, &path, Some(&requester), None).await;
    r.problem(403);

    // What they state: the report's hashes and statuses, S3's versions, no match id.
    let report = app.get(&format!("/v1/jobs/{job_id}/report")).await.body;
    let statuses: BTreeMap<String, String> = report["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["match_hash"].as_str().unwrap().to_owned(),
                m["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let by_ref = by_reference(&first);
    for p in by_ref.values() {
        assert_eq!(statuses[&p.match_hash], p.status);
        assert_eq!(p.job_id.to_string(), job_id);
        assert_eq!(p.issuer, "lethe");
        assert_eq!(p.searched.len(), 1);
        assert_eq!(p.searched[0].objects_searched, 2);
        let table = p.searched[0].table.as_ref().unwrap();
        assert_eq!(table["location"], format!("s3://{bucket}/t/"), "{table}");
    }
    assert_eq!(by_ref["T-3"].status, "not_found");
    assert!(by_ref["T-3"].changed.is_empty());
    let erased = &by_ref["T-1"];
    assert_eq!(erased.status, "erased");
    let changed: Vec<(&str, i64, Option<i64>, Option<i64>)> = erased
        .changed
        .iter()
        .map(|c| (c.key.as_str(), c.rows, c.rows_before, c.rows_after))
        .collect();
    assert_eq!(
        changed,
        [
            ("t/a.json", 1, Some(3), Some(2)),
            // Both subjects' rows left it.
            ("t/b.json", 1, Some(3), Some(1))
        ]
    );
    for c in &erased.changed {
        assert_eq!(c.outcome, "verified");
        assert_eq!(c.version_before.as_ref(), Some(&before[c.key.as_str()]));
        // The version written is the one S3 holds now; the one before is deleted.
        let now = versions(&s3, &bucket, &c.key).await;
        assert_eq!(now, [c.version_after.clone().unwrap()]);
        assert!(
            erased
                .deleted
                .iter()
                .any(|d| d.key == c.key && Some(&d.version_id) == c.version_before.as_ref())
        );
    }
    for p in by_ref.values() {
        let residue: Vec<(&str, Option<&str>)> = p
            .residue
            .iter()
            .map(|r| (r.kind.as_str(), r.key.as_deref()))
            .collect();
        assert_eq!(
            residue,
            [("hidden", Some("t/_temporary/0/a.json"))],
            "{p:?}"
        );
    }
    assert_eq!(by_ref["T-2"].changed.len(), 1);
    let all: String = first.iter().map(|i| i.compact.as_str()).collect();
    let decoded: String = first.iter().map(|i| format!("{:?}", payload(i))).collect();
    for id in [ERASED, ALSO_ERASED, ABSENT] {
        assert!(!decoded.contains(&id.to_string()) && !all.contains(&id.to_string()));
    }

    // A second job's receipts continue the chain; all four verify together.
    queue(&app, json!([{"match_id": 1, "reference": "T-4"}])).await;
    let second = run_job(&app, &[]).await;
    assert_eq!(second["status"], "completed", "{second}");
    let next = receipts(
        &app,
        &format!("/v1/jobs/{}/receipts", second["job_id"].as_str().unwrap()),
        &auditor,
    )
    .await;
    assert_eq!(next.len(), 1);
    let mut chain = first.clone();
    chain.extend(next.clone());
    assert_eq!(verify(&chain, &jwks).unwrap().last_seq, 4);
    // Without the middle of the chain, the link after the gap is named.
    let mut gap = chain.clone();
    gap.remove(2);
    assert!(matches!(
        verify(&gap, &jwks).unwrap_err(),
        Broken::Gap {
            seq: 4,
            before: 2,
            ..
        }
    ));

    // Lookups by reference and by keyed hash; a bad query changes nothing and says why.
    let found = receipts(&app, "/v1/receipts?reference=T-4", &auditor).await;
    assert_eq!(
        found.iter().map(|i| &i.compact).collect::<Vec<_>>(),
        [&next[0].compact]
    );
    let hash = &erased.match_hash;
    let found = receipts(&app, &format!("/v1/receipts?match_hash={hash}"), &auditor).await;
    assert_eq!(found.len(), 1);
    assert_eq!(payload(&found[0]).reference.as_deref(), Some("T-1"));
    for bad in [
        "",
        "?reference=T-1&match_hash=ab",
        "?match_hash=XYZ",
        "?reference=",
    ] {
        let r = app.get(&format!("/v1/receipts{bad}")).await;
        r.problem(422);
    }
    let r = app
        .get("/v1/jobs/00000000-0000-0000-0000-000000000000/receipts")
        .await;
    r.problem(404);

    python_verifies(&jwks, &chain);
    cli_verifies(&jwks, &chain);

    // Readiness names the key receipts are signed with.
    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.body["receipts"]["kid"], jwks.keys[0].kid.as_str());
    assert_eq!(ready.body["receipts"]["key"], "generated");
}

/// `lethe receipt verify` passes the chain, and names the first broken link of the chain
/// without its third receipt (exit status 1).
fn cli_verifies(jwks: &Jwks, chain: &[Input]) {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, serde_json::to_vec(jwks).unwrap()).unwrap();
    let run = |receipts: &[&Input]| {
        let file = dir.path().join("receipts.txt");
        let text: String = receipts
            .iter()
            .map(|i| format!("{}\n", i.compact))
            .collect();
        std::fs::write(&file, text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_lethe"))
            .args(["receipt", "verify"])
            .arg(&file)
            .arg("--keys")
            .arg(&keys)
            .output()
            .unwrap()
    };
    let all: Vec<&Input> = chain.iter().collect();
    let ok = run(&all);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let said = String::from_utf8_lossy(&ok.stdout);
    assert!(
        said.starts_with("4 receipt(s) verified: seq 1 to 4, chain intact"),
        "{said}"
    );
    let mut gap = all.clone();
    gap.remove(2);
    let broken = run(&gap);
    assert_eq!(broken.status.code(), Some(1));
    let said = String::from_utf8_lossy(&broken.stderr);
    assert!(
        said.contains("receipts.txt:3: seq 4 follows seq 2: seq 3 is missing"),
        "{said}"
    );
}

/// Python's `cryptography` (moto's virtualenv holds it) checks every signature with the
/// JWKS and recomputes the chain's hashes; a receipt with one byte changed fails there too.
pub fn python_verifies(jwks: &Jwks, chain: &[Input]) {
    let venv = std::env::var_os("LETHE_MOTO_VENV")
        .map_or_else(|| "/var/tmp/lethe/venv".into(), std::path::PathBuf::from);
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, serde_json::to_vec(jwks).unwrap()).unwrap();
    let mut lines: Vec<String> = chain.iter().map(|i| i.compact.clone()).collect();
    let mut tampered = lines[1].clone().into_bytes();
    // A byte of the signature (not its last, whose low bits base64url leaves unused).
    let at = lines[1].rfind('.').unwrap() + 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    lines.push(String::from_utf8(tampered).unwrap());
    let file = dir.path().join("receipts.txt");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = std::process::Command::new(venv.join("bin/python"))
        .args(["-c", PYTHON_CHECK])
        .arg(&keys)
        .arg(&file)
        .output()
        .expect("the moto virtualenv's python (scripts/services.sh start_moto)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(checked.len(), chain.len() + 1);
    for (n, c) in checked.iter().take(chain.len()).enumerate() {
        assert_eq!(c["valid"], true, "{c}");
        assert_eq!(c["seq"], n as i64 + 1);
        let prev = if n == 0 {
            Value::Null
        } else {
            checked[n - 1]["sha256"].clone()
        };
        assert_eq!(c["prev"], prev, "seq {}", n + 1);
    }
    assert_eq!(checked[chain.len()]["valid"], false);
}

/// An ES256 compact JWS checked with `cryptography` alone: the README's recipe.
const PYTHON_CHECK: &str = r#"
import base64, hashlib, json, sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

def b64(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
def num(b): return int.from_bytes(b, "big")

keys = {k["kid"]: ec.EllipticCurvePublicNumbers(num(b64(k["x"])), num(b64(k["y"])),
                                                ec.SECP256R1()).public_key()
        for k in json.load(open(sys.argv[1]))["keys"]}
out = []
for line in open(sys.argv[2]).read().split():
    header, payload, sig = line.split(".")
    kid = json.loads(b64(header))["kid"]
    raw = b64(sig)
    try:
        keys[kid].verify(utils.encode_dss_signature(num(raw[:32]), num(raw[32:])),
                         f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
        valid = True
    except InvalidSignature:
        valid = False
    body = json.loads(b64(payload))
    out.append({"valid": valid, "seq": body["seq"], "prev": body["prev"],
                "sha256": hashlib.sha256(line.encode()).hexdigest()})
print(json.dumps(out))
"#;

/// The receipts of job `job` (as an auditor), with the published keys.
async fn job_receipts(app: &TestApp, job: &str) -> (Vec<Input>, Jwks) {
    let auditor = app.token("audit-1", &[Role::Auditor]);
    let got = receipts(app, &format!("/v1/jobs/{job}/receipts"), &auditor).await;
    let keys = app.call(Method::GET, "/v1/receipts/keys", None, None).await;
    (got, serde_json::from_value(keys.body).unwrap())
}

/// Puts `ids` as JSON Lines at each key, and registers a `path` mapper over `prefix`.
async fn json_lake(
    app: &TestApp,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    mapper: &str,
    objects: &[(&str, Vec<i64>)],
) {
    for (key, ids) in objects {
        s3.put_object()
            .bucket(bucket)
            .key(*key)
            .body(ByteStream::from(lines(ids).into_bytes()))
            .send()
            .await
            .unwrap();
    }
    let prefix = objects[0].0.split('/').next().unwrap();
    let body = json!({
        "catalog": {"provider": "path", "location": format!("s3://{bucket}/{prefix}/"), "format": "json"},
        "format": "json",
        "columns": ["id"],
    });
    let r = app.put(&format!("/v1/data_mappers/{mapper}"), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// A job cancelled after forget rewrote an object but before cleanup: every item still
/// gets its receipt, `kept` with the cancel as reason, stays queued, and the receipt names
/// what the job changed and each version that still holds the rows (the one it rewrote,
/// the one it never reached), which S3 confirms. The next job's receipts continue the
/// chain, and the whole chain verifies (Lethe's check, its CLI, Python's `cryptography`).
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_cancelled_job_gives_each_item_a_kept_receipt_naming_what_still_holds_its_rows(
    db: PgPool,
) {
    let (sdk, s3, bucket) = new_versioned_bucket().await;
    let app = TestApp::with_stores(
        db.clone(),
        Arc::new(GlueCatalog::new(&sdk)),
        Stores::new(&sdk, true),
    );
    json_lake(
        &app,
        &s3,
        &bucket,
        "events",
        &[("t/a.json", vec![1, ERASED]), ("t/b.json", vec![ERASED, 2])],
    )
    .await;
    queue(
        &app,
        json!([
            {"match_id": ERASED, "reference": "C-1"},
            {"match_id": ABSENT, "reference": "C-2"},
        ]),
    )
    .await;
    let r = app
        .post("/v1/jobs", Some(json!({"data_mappers": []})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job = r.body["job_id"].as_str().unwrap().to_owned();
    // Run tasks one at a time until forget has written one object's new version.
    let worker = app.worker("w");
    let written = || {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from job_object
             where job_id = $1::uuid and new_version_id is not null",
        )
        .bind(&job)
        .fetch_one(&db)
    };
    while written().await.unwrap() == 0 {
        assert!(
            worker.run_once().await.unwrap().is_some(),
            "the job ran out of tasks"
        );
    }
    let rewritten: (String, String, String) = sqlx::query_as(
        "select key, coalesce(read_version_id, version_id), new_version_id from job_object
         where job_id = $1::uuid and new_version_id is not null",
    )
    .bind(&job)
    .fetch_one(&db)
    .await
    .unwrap();
    // A worker holds the next task when the cancel comes: the receipts wait for it, as
    // it may still upload or delete (its lease runs out here; the task then ends).
    let held = lethe::jobs::tasks::claim(&db, "elsewhere", std::time::Duration::from_secs(1), 3)
        .await
        .unwrap();
    assert!(held.is_some(), "a task was left to run");
    let cancelled = app.post(&format!("/v1/jobs/{job}/cancel"), None).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    let (none_yet, _) = job_receipts(&app, &job).await;
    assert!(none_yet.is_empty(), "issued while a task of the job ran");
    // No job starts meanwhile: it could take an item off the queue before its receipt.
    let r = app
        .post("/v1/jobs", Some(json!({"data_mappers": []})))
        .await;
    r.problem(409);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    worker.run_until_idle().await.unwrap();

    let (first, jwks) = job_receipts(&app, &job).await;
    assert_eq!(first.len(), 2, "one receipt per item");
    verify(&first, &jwks).unwrap();
    let by_ref = by_reference(&first);
    for p in by_ref.values() {
        assert_eq!(p.status, "kept", "{p:?}");
        let reason = p.reason.as_deref().unwrap();
        assert!(
            reason.contains("the job was cancelled while forgetting"),
            "{reason}"
        );
        assert!(p.deleted.is_empty(), "cleanup never ran: {p:?}");
    }
    let held = &by_ref["C-1"];
    let (key, before, after) = &rewritten;
    let change = held.changed.iter().find(|c| &c.key == key).unwrap();
    assert_eq!(
        (
            change.version_before.as_ref(),
            change.version_after.as_ref()
        ),
        (Some(before), Some(after))
    );
    // What still holds the rows, as S3 has it: the version rewritten (not deleted) and
    // the other object's current version (never rewritten).
    let not_erased: BTreeMap<String, String> = held
        .residue
        .iter()
        .filter(|r| r.kind == "not_erased")
        .map(|r| (r.key.clone().unwrap(), r.version_id.clone().unwrap()))
        .collect();
    let other = if key == "t/a.json" {
        "t/b.json"
    } else {
        "t/a.json"
    };
    let other_now = versions(&s3, &bucket, other).await;
    assert_eq!(
        not_erased,
        BTreeMap::from([
            (key.clone(), before.clone()),
            (other.to_owned(), other_now[0].clone())
        ]),
        "{:?}",
        held.residue
    );
    assert_eq!(
        versions(&s3, &bucket, key).await,
        [after.clone(), before.clone()]
    );
    assert!(by_ref["C-2"].residue.iter().all(|r| r.kind != "not_erased"));
    // Both stay queued; the report says so too.
    let queued = app.get("/v1/queue").await;
    assert_eq!(
        queued.body["matches"].as_array().unwrap().len(),
        2,
        "{}",
        queued.body
    );
    let report = app.get(&format!("/v1/jobs/{job}/report")).await;
    assert!(
        report.body["matches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["status"] == "kept"),
        "{}",
        report.body
    );

    // The next job erases; its receipts continue the chain.
    let second = run_job(&app, &[]).await;
    assert_eq!(second["status"], "completed", "{second}");
    let (next, _) = job_receipts(&app, second["job_id"].as_str().unwrap()).await;
    let statuses: BTreeMap<String, String> = by_reference(&next)
        .into_iter()
        .map(|(reference, p)| (reference, p.status))
        .collect();
    assert_eq!(
        statuses,
        BTreeMap::from([
            ("C-1".into(), "erased".into()),
            ("C-2".into(), "not_found".into())
        ])
    );
    let mut chain = first;
    chain.extend(next);
    assert_eq!(verify(&chain, &jwks).unwrap().last_seq, 4);
    python_verifies(&jwks, &chain);
    cli_verifies(&jwks, &chain);
}

/// A job whose find fails writes nothing, and still gives each item a receipt: `kept`,
/// the failed mapper's reason and, for the mapper that found its rows, the job's.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_find_failed_job_gives_each_item_a_kept_receipt(db: PgPool) {
    let (sdk, s3, bucket) = new_versioned_bucket().await;
    let app = TestApp::with_stores(
        db.clone(),
        Arc::new(GlueCatalog::new(&sdk)),
        Stores::new(&sdk, true),
    );
    json_lake(&app, &s3, &bucket, "good", &[("t/a.json", vec![1, ERASED])]).await;
    json_lake(&app, &s3, &bucket, "delta", &[("d/a.json", vec![ERASED])]).await;
    // A Delta log appears after registration: the mapper fails in find.
    s3.put_object()
        .bucket(&bucket)
        .key("d/_delta_log/00000000000000000000.json")
        .body(ByteStream::from_static(b"{\"commitInfo\":{}}\n"))
        .send()
        .await
        .unwrap();
    let source = versions(&s3, &bucket, "t/a.json").await;
    queue(&app, json!([{"match_id": ERASED, "reference": "F-1"}])).await;
    let job = run_job(&app, &[]).await;
    assert_eq!(job["status"], "find_failed", "{job}");
    let (got, jwks) = job_receipts(&app, job["job_id"].as_str().unwrap()).await;
    assert_eq!(got.len(), 1);
    verify(&got, &jwks).unwrap();
    let p = payload(&got[0]);
    assert_eq!(p.status, "kept");
    let accounts: BTreeMap<&str, (&str, Option<&str>, i64)> = p
        .searched
        .iter()
        .map(|s| {
            (
                s.data_mapper_id.as_str(),
                (s.status.as_str(), s.reason.as_deref(), s.rows),
            )
        })
        .collect();
    assert_eq!(
        accounts,
        BTreeMap::from([
            (
                "delta",
                ("kept", Some("find failed for the data mapper"), 0)
            ),
            ("good", ("kept", Some(lethe::jobs::advance::FIND_FAILED), 1)),
        ])
    );
    assert!(p.changed.iter().all(|c| c.version_after.is_none()), "{p:?}");
    assert_eq!(
        versions(&s3, &bucket, "t/a.json").await,
        source,
        "nothing written"
    );
    let residue: Vec<(&str, Option<&str>)> = p
        .residue
        .iter()
        .map(|r| (r.kind.as_str(), r.key.as_deref()))
        .collect();
    assert!(
        residue.contains(&("not_erased", Some("t/a.json"))),
        "{residue:?}"
    );
    assert_eq!(
        app.get("/v1/queue").await.body["matches"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
