//! What a receipt proves against the lake itself: the SHA-256 of each version rewritten
//! and written (equal to a plain SDK read of those versions), what find read per mapper,
//! verify's re-read, the operator's declared backups as residue with their end, and
//! `lethe receipt verify --check-lake`, which reads the lake and names a version that is
//! not as the receipts say. Parquet and JSON Lines files under path mappers; an Iceberg
//! table through Glue.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use lethe::api::auth::Role;
use lethe::receipt::verify::Input;
use lethe::receipt::{Jwks, Payload};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::e2e_find::{Lake, lake};
use crate::jobs::queue;
use crate::lake::{people_parquet, person};
use crate::receipts::payload_of;

const SUBJECT: i64 = 8_110_001;
const OTHER: i64 = 8_110_002;

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn lines(ids: &[i64]) -> Vec<u8> {
    let text: String = ids
        .iter()
        .map(|i| format!("{{\"id\": {i}, \"note\": \"n\"}}\n"))
        .collect();
    text.into_bytes()
}

/// One version's bytes, read with the plain SDK.
async fn version_bytes(lake: &Lake, key: &str, version: &str) -> Vec<u8> {
    let o = lake
        .s3
        .get_object()
        .bucket(&lake.bucket)
        .key(key)
        .version_id(version);
    let body = o.send().await.unwrap().body.collect().await.unwrap();
    body.into_bytes().to_vec()
}

/// Every version of every key under `prefix` (key, version id) with its bytes.
async fn all_versions(lake: &Lake, prefix: &str) -> BTreeMap<(String, String), Vec<u8>> {
    let out = lake
        .s3
        .list_object_versions()
        .bucket(&lake.bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    let mut all = BTreeMap::new();
    for v in out.versions() {
        let (key, id) = (v.key().unwrap(), v.version_id().unwrap());
        let bytes = version_bytes(lake, key, id).await;
        all.insert((key.to_owned(), id.to_owned()), bytes);
    }
    all
}

async fn path_mapper(lake: &Lake, id: &str, prefix: &str, format: &str) {
    let location = format!("s3://{}/{prefix}", lake.bucket);
    let body = json!({
        "catalog": {"provider": "path", "location": location, "format": format},
        "format": format,
        "columns": ["id"],
    });
    let r = lake.app.put(&format!("/v1/data_mappers/{id}"), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// The job's receipts as `lethe receipt verify` reads them, and the JWKS.
async fn receipts_of(lake: &Lake, job: &Value) -> (Vec<Input>, Jwks) {
    let auditor = lake.app.token("audit-1", &[Role::Auditor]);
    let path = format!("/v1/jobs/{}/receipts", job["job_id"].as_str().unwrap());
    let r = lake
        .app
        .call(Method::GET, &path, Some(&auditor), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let inputs = r
        .body
        .as_str()
        .unwrap()
        .lines()
        .enumerate()
        .map(|(n, l)| Input {
            at: format!("{path}:{}", n + 1),
            compact: l.to_owned(),
        })
        .collect();
    let keys = lake
        .app
        .call(Method::GET, "/v1/receipts/keys", None, None)
        .await;
    (inputs, serde_json::from_value(keys.body).unwrap())
}

/// boto3 (the moto virtualenv's, an S3 client that is not Lethe's) reads what `p` claims:
/// each `version_after` is there with its `sha256_after`, each deleted version answers 404.
fn boto3_agrees(bucket: &str, p: &Payload) {
    const CHECK: &str = r#"
import hashlib, json, sys
import boto3, botocore
s3 = boto3.client("s3")
claims = json.load(sys.stdin)
out = {"written": [], "gone": []}
for c in claims["changed"]:
    if c.get("version_after"):
        key = c.get("key_after") or c["key"]
        body = s3.get_object(Bucket=sys.argv[1], Key=key, VersionId=c["version_after"])["Body"].read()
        out["written"].append(hashlib.sha256(body).hexdigest() == c["sha256_after"])
for d in claims["deleted"]:
    try:
        s3.head_object(Bucket=d["bucket"], Key=d["key"], VersionId=d["version_id"])
        out["gone"].append(False)
    except botocore.exceptions.ClientError as e:
        out["gone"].append(e.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 404))
print(json.dumps(out))
"#;
    use std::io::Write;
    let venv = std::env::var_os("LETHE_MOTO_VENV")
        .map_or_else(|| "/var/tmp/lethe/venv".into(), std::path::PathBuf::from);
    let mut child = std::process::Command::new(venv.join("bin/python"))
        .args(["-c", CHECK, bucket])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the moto virtualenv's python (scripts/services.sh start_moto)");
    let claims = serde_json::to_vec(p).unwrap();
    child.stdin.take().unwrap().write_all(&claims).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said: Value = serde_json::from_slice(&out.stdout).unwrap();
    let written = said["written"].as_array().unwrap();
    let gone = said["gone"].as_array().unwrap();
    let claimed = p.changed.iter().filter(|c| c.version_after.is_some());
    assert_eq!(written.len(), claimed.count(), "{said}");
    assert_eq!(gone.len(), p.deleted.len(), "{said}");
    assert!(written.iter().chain(gone).all(|v| v == true), "{said}");
}

/// Runs `lethe receipt verify --check-lake` on `receipts`: (success, stdout, stderr).
fn check_lake(jwks: &Jwks, receipts: &[Input]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (keys, file) = (dir.path().join("keys.json"), dir.path().join("r.txt"));
    std::fs::write(&keys, serde_json::to_vec(jwks).unwrap()).unwrap();
    let text: String = receipts
        .iter()
        .map(|i| format!("{}\n", i.compact))
        .collect();
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lethe"))
        .args(["receipt", "verify", "--check-lake"])
        .arg(&file)
        .arg("--keys")
        .arg(&keys)
        // The emulator answers on one host: path-style addressing (AWS_ENDPOINT_URL and
        // the credentials come from the test's environment).
        .env("LETHE_S3_FORCE_PATH_STYLE", "true")
        .output()
        .unwrap();
    let said = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), said(&out.stdout), said(&out.stderr))
}

/// Declares the backups; a bad declaration is refused and changes nothing.
async fn declare_backups(lake: &Lake) {
    let settings = |backups: Value| {
        json!({"find_concurrency": 8, "multipart_threshold_bytes": 104857600,
               "report_retention_days": 90, "job_schedule": null, "backups": backups})
    };
    let good = json!([{"name": "lake-daily", "retention_days": 35,
                       "description": "AWS Backup vault lake-daily"}]);
    let r = lake.app.put("/v1/settings", settings(good.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["backups"], good);
    for bad in [
        json!([{"name": "", "retention_days": 35}]),
        json!([{"name": "x", "retention_days": 0}]),
        json!([{"name": "x", "retention_days": 1}, {"name": "x", "retention_days": 2}]),
    ] {
        let r = lake.app.put("/v1/settings", settings(bad)).await;
        r.problem(422);
    }
    for malformed in [
        json!([{"name": "x", "retention_days": "35"}]),
        json!([{"name": "x", "retention_days": 1, "until": "never"}]),
        json!({"name": "x"}),
    ] {
        let r = lake.app.put("/v1/settings", settings(malformed)).await;
        assert!(r.status.is_client_error(), "{}", r.body);
    }
    // A replace that omits them keeps them.
    let mut omitted = settings(Value::Null);
    omitted.as_object_mut().unwrap().remove("backups");
    let r = lake.app.put("/v1/settings", omitted).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(lake.app.get("/v1/settings").await.body["backups"], good);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn receipts_state_the_lakes_hashes_reads_and_backups_and_check_lake_holds_them_to_it(
    db: PgPool,
) {
    let lake = lake(db).await;
    // Parquet: the subject in one of two objects. JSON Lines: in one object, and in an
    // old version of another (overwritten without it).
    let people: Vec<_> = [1, SUBJECT, 2, 3].into_iter().map(person).collect();
    let codec = parquet::basic::Compression::SNAPPY;
    lake.put("p/a.parquet", &people_parquet(&people, codec))
        .await;
    lake.put("p/b.parquet", &people_parquet(&[person(4)], codec))
        .await;
    lake.put("j/a.json", &lines(&[1, SUBJECT, OTHER])).await;
    lake.put("j/b.json", &lines(&[SUBJECT, 5])).await;
    lake.put("j/b.json", &lines(&[5])).await;
    let before = all_versions(&lake, "").await;
    path_mapper(&lake, "people", "p/", "parquet").await;
    path_mapper(&lake, "events", "j/", "json").await;
    declare_backups(&lake).await;
    queue(
        &lake.app,
        json!([{"match_id": SUBJECT, "reference": "S-1"},
               {"match_id": OTHER, "reference": "S-2"}]),
    )
    .await;
    let job = lake.run_job(&[]).await;
    assert_eq!(job["status"], "completed", "{job}");
    let (inputs, jwks) = receipts_of(&lake, &job).await;
    assert_eq!(inputs.len(), 2);
    let by_ref: BTreeMap<String, Payload> = inputs
        .iter()
        .map(|i| payload_of(&i.compact))
        .map(|p| (p.reference.clone().unwrap(), p))
        .collect();
    let p = &by_ref["S-1"];
    assert_eq!(p.status, "erased", "{p:?}");

    // changed[]: each hash is the SDK's read of that version.
    let keys: Vec<&str> = p.changed.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["j/a.json", "p/a.parquet"], "{p:?}");
    for c in &p.changed {
        let v_before = c.version_before.clone().unwrap();
        let read_before = &before[&(c.key.clone(), v_before)];
        assert_eq!(
            c.sha256_before.as_deref(),
            Some(sha256(read_before).as_str())
        );
        let after = version_bytes(&lake, &c.key, c.version_after.as_deref().unwrap()).await;
        assert_eq!(c.sha256_after.as_deref(), Some(sha256(&after).as_str()));
        assert_ne!(c.sha256_before, c.sha256_after);
    }

    // searched[]: versions read (the old version of j/b.json among them) and bytes read;
    // a JSON Lines object is read whole.
    let searched: BTreeMap<&str, _> = p
        .searched
        .iter()
        .map(|s| (s.data_mapper_id.as_str(), s))
        .collect();
    let events = searched["events"];
    assert_eq!(
        (
            events.versions_searched,
            events.noncurrent_versions_searched
        ),
        (Some(3), Some(1))
    );
    let json_bytes: usize = before
        .iter()
        .filter(|((k, _), _)| k.starts_with("j/"))
        .map(|(_, b)| b.len())
        .sum();
    assert_eq!(events.bytes_read, Some(json_bytes as i64));
    let parquet = searched["people"];
    assert_eq!(
        (
            parquet.versions_searched,
            parquet.noncurrent_versions_searched
        ),
        (Some(2), Some(0))
    );
    let parquet_bytes: usize = before
        .iter()
        .filter(|((k, _), _)| k.starts_with("p/"))
        .map(|(_, b)| b.len())
        .sum();
    // Footers and the id column's chunks: some of the bytes, never more than there are.
    let read = parquet.bytes_read.unwrap();
    assert!(
        read > 0 && read <= parquet_bytes as i64,
        "{read} of {parquet_bytes}"
    );

    // verified: each version written, re-read with its rows and stored size.
    let verified = p.verified.as_ref().unwrap();
    assert_eq!(verified.objects, 2);
    for (c, v) in p.changed.iter().zip(&verified.versions) {
        assert_eq!((&v.key, &v.version_id), (&c.key, &c.version_after));
        assert_eq!(Some(v.rows), c.rows_after);
        let after = version_bytes(&lake, &c.key, c.version_after.as_deref().unwrap()).await;
        assert_eq!(v.size_bytes, after.len() as i64);
    }
    assert_eq!(verified.rows, 1 + 3, "j/a.json keeps 1 row, p/a.parquet 3");
    // deleted: the versions rewritten and the old version holding the subject.
    let mut deleted: Vec<&str> = p.deleted.iter().map(|d| d.key.as_str()).collect();
    deleted.sort();
    assert_eq!(deleted, ["j/a.json", "j/b.json", "p/a.parquet"]);

    // residue: the declared backup, until the job's end plus its 35 days.
    let backups: Vec<_> = p.residue.iter().filter(|r| r.kind == "backup").collect();
    assert_eq!(backups.len(), 1, "{:?}", p.residue);
    assert_eq!(backups[0].name.as_deref(), Some("lake-daily"));
    assert_eq!(
        backups[0].until,
        Some(p.issued_at + chrono::TimeDelta::days(35))
    );
    assert!(by_ref["S-2"].residue.iter().any(|r| r.kind == "backup"));

    // --check-lake: the lake as the receipts say (and as boto3 reads it); then a version
    // written is deleted.
    let (ok, out, err) = check_lake(&jwks, &inputs);
    assert!(ok, "{err}");
    boto3_agrees(&lake.bucket, p);
    assert!(
        out.contains("the lake agrees: 2 version(s) written are there with the SHA-256 stated, 3 deleted version(s) are gone"),
        "{out}"
    );
    let gone = &p.changed[0];
    let version = gone.version_after.clone().unwrap();
    let delete = lake.s3.delete_object().bucket(&lake.bucket).key(&gone.key);
    delete.version_id(&version).send().await.unwrap();
    let (ok, _, err) = check_lake(&jwks, &inputs);
    assert!(!ok);
    let bucket = &lake.bucket;
    assert!(
        err.contains(&format!(
            "seq {}: s3://{bucket}/j/a.json version {version} (version_after) is not in the lake",
            p.seq
        )),
        "{err}"
    );
    // S-2's receipt names j/a.json too: both disagreements are named.
    assert!(err.contains("disagrees with 2 of"), "{err}");

    // The bucket itself removed (or a wrong endpoint): a deleted version's 404 no longer
    // confirms anything, and no deletion passes as gone.
    let listed = lake.s3.list_object_versions().bucket(bucket).send().await;
    let listed = listed.unwrap();
    let versions = listed.versions().iter().map(|v| (v.key(), v.version_id()));
    let markers = listed
        .delete_markers()
        .iter()
        .map(|m| (m.key(), m.version_id()));
    for (key, version) in versions.chain(markers) {
        let delete = lake.s3.delete_object().bucket(bucket).key(key.unwrap());
        delete.version_id(version.unwrap()).send().await.unwrap();
    }
    lake.s3.delete_bucket().bucket(bucket).send().await.unwrap();
    let (ok, _, err) = check_lake(&jwks, &inputs);
    assert!(!ok);
    assert!(
        err.contains("the bucket does not answer") && !err.contains("deleted version(s) are gone"),
        "{err}"
    );
}

/// An Iceberg table (pyiceberg through Glue): one receipt per item; the subject's names
/// the snapshots before and after the job's commit and those its purge expired, each data
/// file that held her with its SHA-256, and the one rewritten to a new file (`key_after`)
/// with the new file's, as the SDK reads them; `--check-lake` agrees.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn an_iceberg_jobs_receipts_name_its_snapshots_and_new_data_files_with_their_hashes(
    db: PgPool,
) {
    let lake = lake(db).await;
    let (table, _, _) = crate::e2e_iceberg::people_with_ann(&lake);
    let old_snapshots: Vec<i64> = table.snapshots.iter().map(|s| s.id).collect();
    crate::e2e_iceberg::iceberg_mapper(&lake, &table).await;
    let (ann, nobody) = (json!("ann@example.com"), json!("nobody@example.com"));
    // Bob's rows are in a data file of their own: his file is not in her receipt.
    let bob = json!("bob@example.com");
    crate::e2e_csv::queue_ids(&lake, &[ann.clone(), nobody.clone(), bob.clone()]).await;
    let prefix = format!("{}/", crate::iceberg::IcebergTable::key(&table.location));
    let before = all_versions(&lake, &prefix).await;
    let job = lake.run_job(&["people"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    let (inputs, jwks) = receipts_of(&lake, &job).await;
    assert_eq!(inputs.len(), 3, "one receipt per item");
    let hash_of = |account: Value| account["match_hash"].as_str().unwrap().to_owned();
    let (ann_hash, nobody_hash) = (
        hash_of(lake.account(&job, &ann).await),
        hash_of(lake.account(&job, &nobody).await),
    );
    let payloads: BTreeMap<String, Payload> = inputs
        .iter()
        .map(|i| payload_of(&i.compact))
        .map(|p| (p.match_hash.clone(), p))
        .collect();
    let (p, none) = (&payloads[&ann_hash], &payloads[&nobody_hash]);
    assert_eq!(
        (p.status.as_str(), none.status.as_str()),
        ("erased", "not_found")
    );
    assert!(none.changed.is_empty() && none.verified.as_ref().unwrap().versions.is_empty());

    let report = lake.report(&job).await;
    let t = &report["tables"][0];
    let snapshots = p.searched[0].snapshots.as_ref().unwrap();
    assert_eq!(snapshots.before, Some(old_snapshots[1]), "{t}");
    assert_eq!(json!(snapshots.after), t["snapshot_after"], "{t}");
    assert!(snapshots.after.is_some_and(|s| !old_snapshots.contains(&s)));
    let mut expired = snapshots.expired.clone();
    expired.sort();
    let mut old = old_snapshots.clone();
    old.sort();
    assert_eq!(expired, old);

    // Her two data files: the first held only her row, so the commit removed it without a
    // new file; the second was rewritten to a new data file.
    assert_eq!(p.changed.len(), 2, "{:?}", p.changed);
    let mut rewritten = Vec::new();
    for c in &p.changed {
        assert_eq!(c.outcome, "verified", "{c:?}");
        let read_before = &before[&(c.key.clone(), c.version_before.clone().unwrap())];
        assert_eq!(
            c.sha256_before.as_deref(),
            Some(sha256(read_before).as_str())
        );
        let Some(key_after) = c.key_after.as_deref() else {
            assert_eq!(
                (c.rows_after, &c.version_after, &c.sha256_after),
                (Some(0), &None, &None)
            );
            continue;
        };
        assert!(key_after != c.key && key_after.contains("-lethe-"), "{c:?}");
        let after = version_bytes(&lake, key_after, c.version_after.as_deref().unwrap()).await;
        assert_eq!(c.sha256_after.as_deref(), Some(sha256(&after).as_str()));
        rewritten.push(key_after);
    }
    assert_eq!(rewritten.len(), 1, "{:?}", p.changed);
    let verified = p.verified.as_ref().unwrap();
    let reread: Vec<&str> = verified.versions.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(reread, rewritten, "verify re-read the new data file");
    assert_eq!((verified.objects, verified.rows), (1, 1), "cyd's row");

    // `deleted` names, beside her old data files, every other file the purge deleted
    // (manifests whose column bounds may hold her id, manifest lists, old metadata files),
    // each version — as the report's purge has them; the other subject's names none.
    let bobs = &payloads[&hash_of(lake.account(&job, &bob).await)];
    assert_eq!(bobs.status, "erased");
    let data: Vec<&str> = p
        .changed
        .iter()
        .chain(&bobs.changed)
        .map(|c| c.key.as_str())
        .collect();
    assert_eq!(data.len(), 3, "her two data files and his");
    assert!(
        p.deleted.iter().all(|d| d.key != bobs.changed[0].key),
        "{:?}",
        p.deleted
    );
    let mut named: Vec<(String, String)> = p
        .deleted
        .iter()
        .filter(|d| !data.contains(&d.key.as_str()))
        .map(|d| (format!("s3://{}/{}", d.bucket, d.key), d.version_id.clone()))
        .collect();
    named.sort();
    let mut purged: Vec<(String, String)> = t["purge"]["deleting"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            !data
                .iter()
                .any(|k| f["file"].as_str().unwrap().ends_with(&format!("/{k}")))
        })
        .flat_map(|f| {
            let file = f["file"].as_str().unwrap().to_owned();
            f["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |v| (file.clone(), v.as_str().unwrap().to_owned()))
        })
        .collect();
    purged.sort();
    assert_eq!(named, purged, "{t}");
    assert!(
        named.iter().any(|(f, _)| f.ends_with(".avro"))
            && named.iter().any(|(f, _)| f.ends_with(".metadata.json")),
        "{named:?}"
    );
    assert!(none.deleted.is_empty(), "{:?}", none.deleted);
    boto3_agrees(&lake.bucket, p);

    let (ok, out, err) = check_lake(&jwks, &inputs);
    assert!(ok, "{err}");
    assert!(
        out.contains("the lake agrees: 1 version(s) written"),
        "{out}"
    );
    // An independent JWS implementation (Python `cryptography`) verifies them and the chain.
    crate::receipts::python_verifies(&jwks, &inputs);
}

/// A table commit refused (the subject's rows appended again since find): Lethe deletes
/// the new data files it wrote, so her receipt names no version written (no
/// `key_after`, `version_after` or `sha256_after` of a file that is gone), and
/// `--check-lake` finds nothing the lake contradicts.
#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_refused_table_commit_names_no_deleted_data_file_as_written(db: PgPool) {
    let lake = lake(db).await;
    let (table, _, _, ann) = crate::e2e_iceberg::ann_queued(&lake).await;
    let job = crate::e2e_iceberg::start_job(&lake).await;
    crate::e2e_iceberg::run_forgets(&lake, 2).await;
    let again = crate::e2e_iceberg::person(6, "ann@example.com", "fr", "2026-01-05T08:00:00");
    table.append(vec![again]);
    lake.app.worker("w").run_until_idle().await.unwrap();
    let account = lake.account(&job, &ann).await;
    assert_eq!(account["status"], "kept", "{account}");

    let (inputs, jwks) = receipts_of(&lake, &job).await;
    let p = inputs
        .iter()
        .map(|i| payload_of(&i.compact))
        .find(|p| account["match_hash"] == p.match_hash.as_str())
        .expect("her receipt");
    assert_eq!(p.changed.len(), 2, "{:?}", p.changed);
    for c in &p.changed {
        assert_eq!(c.outcome, "verify_failed", "{c:?}");
        assert_eq!(
            (&c.key_after, &c.version_after, &c.sha256_after),
            (&None, &None, &None),
            "{c:?}"
        );
        assert!(c.sha256_before.is_some(), "{c:?}");
    }
    assert!(p.verified.as_ref().unwrap().versions.is_empty());
    let (ok, out, err) = check_lake(&jwks, &inputs);
    assert!(ok, "{out}{err}");
}
