//! Every version and every copy, end to end against moto through the REST API: old
//! versions behind a delete marker or under another writer's version are searched and
//! deleted (or, when the mapper keeps old versions, named with the date the bucket's
//! lifecycle rule expires them: `retained`); a version under an Object Lock legal hold
//! and a replicated bucket keep the subject queued with the reason. After each job every
//! version of every key under the table is listed with `list_object_versions` and read
//! back with pyarrow (`get_object(VersionId=…)`).

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    ExpirationStatus, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration,
    ObjectLockLegalHold, ObjectLockLegalHoldStatus,
};
use chrono::{DateTime, Duration, Timelike, Utc};
use serde_json::{Value, json};

use crate::e2e_find::{Lake, lake, lake_in};
use crate::e2e_retention::{object_lock_bucket, replicate_every_key};
use crate::e2e_storage::new_versioned_bucket;
use crate::jobs::queue;

/// Held the subject, then deleted by the lake's writer: only a delete marker is current.
const DELETED: &str = "t/dt=1/deleted.parquet";
/// Held the subject, then overwritten by another writer with rows that do not.
const REPLACED: &str = "t/dt=1/replaced.parquet";
/// Holds the subject now.
const CURRENT: &str = "t/dt=1/current.parquet";
/// The subject: a row of `people()[0]`, in no other object.
const SUBJECT: i64 = 5;

/// The app's plain S3 stores.
fn plain(sdk: &aws_config::SdkConfig) -> lethe::storage::Stores {
    lethe::storage::Stores::new(sdk, true)
}

/// Every version (no delete marker) of every key under `t/`: key → versions, newest first.
async fn all_versions(lake: &Lake) -> BTreeMap<String, Vec<String>> {
    let out = lake
        .s3
        .list_object_versions()
        .bucket(&lake.bucket)
        .prefix("t/")
        .send()
        .await
        .unwrap();
    let mut all: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in out.versions() {
        all.entry(v.key().unwrap().to_owned())
            .or_default()
            .push(v.version_id().unwrap().to_owned());
    }
    all
}

async fn version_bytes(lake: &Lake, key: &str, version: &str) -> Vec<u8> {
    let out = lake
        .s3
        .get_object()
        .bucket(&lake.bucket)
        .key(key)
        .version_id(version)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// The ids of one version, read back by pyarrow.
async fn ids_of(lake: &Lake, key: &str, version: &str) -> Vec<i64> {
    let bytes = version_bytes(lake, key, version).await;
    crate::readback::parquet_rows(&bytes)
        .iter()
        .map(|row| row["id"].as_i64().expect("an integer id"))
        .collect()
}

/// The versions under the table still holding the subject's rows.
async fn versions_holding_the_subject(lake: &Lake) -> Vec<(String, String)> {
    let mut holding = Vec::new();
    for (key, versions) in all_versions(lake).await {
        for v in versions {
            if ids_of(lake, &key, &v).await.contains(&SUBJECT) {
                holding.push((key.clone(), v));
            }
        }
    }
    holding
}

/// A lake with the three keys, a partitioned table over them, a mapper (with `extra`
/// fields) and the subject queued. Returns the version of each key that holds it.
async fn three_keys(lake: &Lake, extra: Value) -> BTreeMap<&'static str, String> {
    let people = crate::lake::people();
    let (holds, other) = (&people[0], &people[1]);
    assert!(holds.rows.iter().any(|p| p.id == SUBJECT));
    assert!(!other.rows.iter().any(|p| p.id == SUBJECT));
    let mut holding = BTreeMap::new();
    for key in [DELETED, REPLACED, CURRENT] {
        lake.put(key, &holds.bytes).await;
        holding.insert(key, all_versions(lake).await[key][0].clone());
    }
    let s3 = &lake.s3;
    let b = &lake.bucket;
    s3.delete_object()
        .bucket(b)
        .key(DELETED)
        .send()
        .await
        .unwrap();
    lake.put(REPLACED, &other.bytes).await;
    lake.table("t", &format!("s3://{b}/t/"), ("dt", "string"), &[])
        .await;
    lake.partition("t", "1", &format!("s3://{b}/t/dt=1/")).await;
    lake.mapper_with("t", "t", "dt", extra).await;
    queue(&lake.app, json!([{"match_id": SUBJECT}])).await;
    holding
}

/// The job's report: its objects by (key, noncurrent) and its only match.
async fn report(lake: &Lake, job: &Value) -> (BTreeMap<(String, bool), Value>, Value) {
    let id = job["job_id"].as_str().unwrap();
    let report = lake.app.get(&format!("/v1/jobs/{id}/report")).await.body;
    let objects = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let at = (
                o["key"].as_str().unwrap().to_owned(),
                o["noncurrent"] == true,
            );
            (at, o.clone())
        })
        .collect();
    let matches = report["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 1, "{report}");
    (objects, matches[0].clone())
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn old_versions_behind_a_delete_marker_or_another_writers_version_are_searched_and_deleted(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let holding = three_keys(&lake, json!({})).await;
    let other_writers = all_versions(&lake).await[REPLACED][0].clone();

    let job = lake.run_job(&["t"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    let stats = &job["stats"];
    assert_eq!(
        stats["objects_listed"], 2,
        "{job}: the deleted key is not current"
    );
    assert_eq!(stats["old_versions_listed"], 2, "{job}");
    assert_eq!(stats["old_versions_matched"], 2, "{job}");
    assert_eq!(stats["objects_rewritten"], 1, "{job}");

    // No version under the table holds the subject; the old versions are gone, the
    // other writer's version is untouched.
    assert_eq!(versions_holding_the_subject(&lake).await, []);
    let after = all_versions(&lake).await;
    assert!(!after.contains_key(DELETED), "{after:?}");
    assert_eq!(after[REPLACED], std::slice::from_ref(&other_writers));
    assert_eq!(
        version_bytes(&lake, REPLACED, &other_writers).await,
        crate::lake::people()[1].bytes
    );
    assert_eq!(after[CURRENT].len(), 1, "only Lethe's version: {after:?}");
    assert!(lake.queued().await.is_empty(), "the subject left the queue");

    let (objects, subject) = report(&lake, &job).await;
    assert_eq!(subject["status"], "erased", "{subject}");
    let account = &subject["accounts"][0];
    assert_eq!(
        (&account["objects"], &account["old_versions"]),
        (&json!(1), &json!(2))
    );
    assert!(account.get("versions_kept").is_none(), "{account}");
    for key in [DELETED, REPLACED] {
        let o = &objects[&(key.to_owned(), true)];
        assert_eq!(o["status"], "old_version", "{o}");
        assert_eq!(o["cleanup"], "done", "{o}");
        assert_eq!(o["version_id_searched"], holding[key], "{o}");
        assert_eq!(o["versions_deleted"], json!([holding[key]]), "{o}");
        assert_eq!(o["version_id_after"], Value::Null, "never rewritten: {o}");
    }
    let current = &objects[&(CURRENT.to_owned(), false)];
    assert_eq!(current["status"], "verified", "{current}");
    assert_eq!(current["versions_deleted"], json!([holding[CURRENT]]));
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_mapper_keeping_old_versions_reports_the_subject_retained_with_each_version_and_its_expiry(
    db: sqlx::PgPool,
) {
    let lake = lake(db).await;
    let rule = LifecycleRule::builder()
        .id("tables-30d")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("t/").build())
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(30)
                .build(),
        )
        .build()
        .unwrap();
    lake.s3
        .put_bucket_lifecycle_configuration()
        .bucket(&lake.bucket)
        .lifecycle_configuration(
            aws_sdk_s3::types::BucketLifecycleConfiguration::builder()
                .rules(rule)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let holding = three_keys(&lake, json!({"delete_old_versions": false})).await;
    let started = Utc::now();

    let job = lake.run_job(&["t"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["stats"]["versions_deleted"], 0, "{job}");
    assert!(lake.queued().await.is_empty(), "retained leaves the queue");

    // Nothing deleted: each version holding the subject is still there, and the current
    // version of the key that held it is Lethe's, without it.
    let mut still: Vec<(String, String)> = versions_holding_the_subject(&lake).await;
    still.sort();
    let mut expected: Vec<(String, String)> = holding
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    expected.sort();
    assert_eq!(still, expected);

    let (_, subject) = report(&lake, &job).await;
    assert_eq!(subject["status"], "retained", "{subject}");
    let account = &subject["accounts"][0];
    assert_eq!(account["status"], "retained");
    assert_eq!(account["reason"], Value::Null, "{account}");
    let kept = account["versions_kept"].as_array().unwrap();
    let mut named: Vec<(String, String)> = kept
        .iter()
        .map(|v| {
            let key = v["key"].as_str().unwrap().to_owned();
            (key, v["version_id"].as_str().unwrap().to_owned())
        })
        .collect();
    named.sort();
    assert_eq!(named, expected, "{account}");
    for v in kept {
        assert_eq!(v["bucket"], lake.bucket.as_str());
        assert!(v["reason"].as_str().unwrap().contains("tables-30d"), "{v}");
        // S3 expires a version 30 days after it became noncurrent, at the next midnight.
        let until: DateTime<Utc> = v["until"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            (until.hour(), until.minute(), until.second()),
            (0, 0, 0),
            "{v}"
        );
        assert!(until > started + Duration::days(30), "{v}");
        assert!(until <= Utc::now() + Duration::days(31), "{v}");
        assert!(
            v.get("not_before").is_none() && v.get("hold").is_none(),
            "{v}"
        );
    }
    // The subject's receipt names the same versions as its residue, each with its end.
    let receipt = the_receipt(&lake, &job).await;
    assert_eq!(receipt.status, "retained");
    let residue: Vec<(String, String, Option<DateTime<Utc>>)> = receipt
        .residue
        .iter()
        .map(|r| {
            assert_eq!(r.kind, "version_kept", "{r:?}");
            assert_eq!(r.bucket.as_deref(), Some(lake.bucket.as_str()));
            let version = r.version_id.clone().unwrap();
            (r.key.clone().unwrap(), version, r.until)
        })
        .collect();
    let reported: Vec<(String, String, Option<DateTime<Utc>>)> = kept
        .iter()
        .map(|v| {
            let until = v["until"].as_str().map(|u| u.parse().unwrap());
            let key = v["key"].as_str().unwrap().to_owned();
            (key, v["version_id"].as_str().unwrap().to_owned(), until)
        })
        .collect();
    assert_eq!(residue, reported);
    assert!(receipt.deleted.is_empty(), "{receipt:?}");
}

/// The one receipt of a job of one queue item.
async fn the_receipt(lake: &Lake, job: &Value) -> lethe::receipt::Payload {
    let path = format!("/v1/jobs/{}/receipts", job["job_id"].as_str().unwrap());
    let receipts = lake.app.get(&path).await;
    let lines: Vec<&str> = receipts.body.as_str().unwrap().lines().collect();
    assert_eq!(lines.len(), 1, "one item, one receipt");
    crate::receipts::payload_of(lines[0])
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn an_old_version_under_a_legal_hold_keeps_the_subject_queued_with_the_reason(
    db: sqlx::PgPool,
) {
    let lake = lake_in(db, object_lock_bucket().await, plain).await;
    let holding = three_keys(&lake, json!({})).await;
    lake.s3
        .put_object_legal_hold()
        .bucket(&lake.bucket)
        .key(REPLACED)
        .version_id(&holding[REPLACED])
        .legal_hold(
            ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::On)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let job = lake.run_job(&["t"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    // The held version is the only one still holding the subject.
    let still = versions_holding_the_subject(&lake).await;
    assert_eq!(still, [(REPLACED.to_owned(), holding[REPLACED].clone())]);
    assert_eq!(lake.queued().await, [json!(SUBJECT)], "kept in the queue");

    let (objects, subject) = report(&lake, &job).await;
    assert_eq!(subject["status"], "kept", "{subject}");
    let account = &subject["accounts"][0];
    let reason = account["reason"].as_str().unwrap();
    assert!(reason.contains("legal hold"), "{reason}");
    assert!(reason.contains(holding[REPLACED].as_str()), "{reason}");
    let held = &objects[&(REPLACED.to_owned(), true)];
    assert_eq!(held["versions_deleted"], json!([]), "{held}");
    assert_eq!(held["versions_kept"][0]["hold"], true, "{held}");
    assert_eq!(account["versions_kept"][0]["version_id"], holding[REPLACED]);
    // Its receipt says kept, why, and names the held version, with no end date.
    let receipt = the_receipt(&lake, &job).await;
    assert_eq!(receipt.status, "kept");
    assert!(receipt.reason.unwrap().contains("legal hold"));
    let residue: Vec<_> = receipt
        .residue
        .iter()
        .map(|r| {
            (
                r.kind.as_str(),
                r.key.as_deref(),
                r.version_id.as_deref(),
                r.until,
            )
        })
        .collect();
    assert_eq!(
        residue,
        [(
            "version_kept",
            Some(REPLACED),
            Some(holding[REPLACED].as_str()),
            None
        )]
    );
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_replicated_bucket_keeps_the_subject_queued_naming_the_replica(db: sqlx::PgPool) {
    let (sdk, s3, bucket) = new_versioned_bucket().await;
    let (_, _, replica) = new_versioned_bucket().await;
    replicate_every_key(&s3, &bucket, &replica).await;
    let lake = lake_in(db, (sdk, s3, bucket), plain).await;
    three_keys(&lake, json!({})).await;

    let job = lake.run_job(&["t"]).await;
    assert_eq!(job["status"], "completed", "{job}");
    // The source bucket is clean; its replica may not be.
    assert_eq!(versions_holding_the_subject(&lake).await, []);
    assert_eq!(lake.queued().await, [json!(SUBJECT)], "kept in the queue");
    let (_, subject) = report(&lake, &job).await;
    assert_eq!(subject["status"], "kept", "{subject}");
    let reason = subject["accounts"][0]["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("bucket {replica}")), "{reason}");
    // Its receipt names the replica as residue.
    let receipt = the_receipt(&lake, &job).await;
    assert_eq!(receipt.status, "kept");
    let replicas: Vec<_> = receipt
        .residue
        .iter()
        .filter(|r| r.kind == "replica")
        .map(|r| r.bucket.clone())
        .collect();
    assert_eq!(replicas, [Some(replica.clone())], "{:?}", receipt.residue);
}
