//! Writers and cancels racing a job, end to end against Postgres and moto through the
//! REST API (issue 22): another writer replaces an object between find and forget; a job
//! is cancelled while a rewrite is in flight, and the next job has to finish the work.
//! After each job every version under the table is listed with `ListObjectVersions`,
//! fetched with `GetObject` and its version id, and read back by pyarrow.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::e2e_find::{Lake, lake_with, without};
use crate::e2e_jobs::{
    Gate, OtherWriter, object_bytes, overwritten_before_cleanup, overwritten_before_forget,
    paused_after_upload, versions,
};
use crate::jobs::queue;
use crate::lake::{self, Person};

/// The object another writer replaces (people[0]: ids 0..3000, 5 among them).
const A: &str = "races/dt=1/a.parquet";
/// An object nobody else writes (people[1]: ids 3000..6000, 3007 among them).
const B: &str = "races/dt=1/b.parquet";

/// Puts `a` and `b`, the Glue table `races` (partitioned by `dt`) and its mapper (with
/// `extra` fields), and queues `ids`. Returns the version of `a` find will read.
async fn races(lake: &Lake, extra: Value, ids: &[Value]) -> String {
    let people = lake::people();
    lake.put(A, &people[0].bytes).await;
    lake.put(B, &people[1].bytes).await;
    let location = format!("s3://{}/races/", lake.bucket);
    lake.table("races", &location, ("dt", "string"), &[]).await;
    lake.partition("races", "1", &format!("{location}dt=1/"))
        .await;
    lake.mapper_with("races", "races", "dt", extra).await;
    let items: Vec<Value> = ids.iter().map(|id| json!({"match_id": id})).collect();
    queue(&lake.app, Value::Array(items)).await;
    versions(&lake.s3, &lake.bucket, A).await.remove(0)
}

/// A version of `a` another writer puts: `a`'s rows without id 5, or with them, one row
/// more and a second row of 5 (two in all); written with another codec, so its etag
/// differs.
fn replacement(with_subject: bool) -> (Vec<Person>, Vec<u8>) {
    let mut rows = lake::people().remove(0).rows;
    if with_subject {
        rows.push(lake::person(100_000));
        rows.push(lake::person(5));
    } else {
        rows.retain(|p| p.id != 5);
    }
    let bytes = lake::people_parquet(&rows, lake::codec(1));
    (rows, bytes)
}

/// Every version S3 holds under `prefix` (delete markers aside), fetched by version id
/// with the plain SDK and read by pyarrow: (key, version id, rows).
async fn every_version(lake: &Lake, prefix: &str) -> Vec<(String, String, Vec<Value>)> {
    let listed = lake
        .s3
        .list_object_versions()
        .bucket(&lake.bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    assert_ne!(listed.is_truncated(), Some(true), "one page holds them all");
    let mut all = Vec::new();
    for v in listed.versions() {
        let (key, version) = (v.key().unwrap(), v.version_id().unwrap());
        let body = lake
            .s3
            .get_object()
            .bucket(&lake.bucket)
            .key(key)
            .version_id(version)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        let rows = crate::readback::parquet_rows(&body);
        all.push((key.to_owned(), version.to_owned(), rows));
    }
    all
}

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter()
        .map(|r| r["id"].as_i64().expect("an integer id"))
        .collect()
}

/// The report's row of `key` (exactly one) in `report`.
fn object<'r>(report: &'r Value, key: &str) -> &'r Value {
    let rows: Vec<&Value> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["key"] == key)
        .collect();
    assert_eq!(rows.len(), 1, "{key}: {}", report["objects"]);
    rows[0]
}

/// The versions a report row says were deleted, sorted.
fn deleted(row: &Value) -> Vec<String> {
    let mut v: Vec<String> = serde_json::from_value(row["versions_deleted"].clone()).unwrap();
    v.sort();
    v
}

/// A job with another writer between find and forget: `a` is replaced by
/// [`replacement`] right before forget's first download of it.
async fn raced_job(db: PgPool, with_subject: bool, extra: Value) -> RacedJob {
    let (rows, body) = replacement(with_subject);
    let writer = OtherWriter {
        key: A.to_owned(),
        body: body.clone(),
    };
    let lake = lake_with(db.clone(), overwritten_before_forget(&db, writer)).await;
    let searched = races(&lake, extra, &[json!(5), json!(3007)]).await;
    let job = lake.run_job(&["races"]).await;
    let report = lake.report(&job).await;
    RacedJob {
        lake,
        searched,
        rows,
        body,
        job,
        report,
    }
}

struct RacedJob {
    lake: Lake,
    /// The version of `a` find read.
    searched: String,
    /// The other writer's version of `a`: its rows and bytes.
    rows: Vec<Person>,
    body: Vec<u8>,
    job: Value,
    report: Value,
}

impl RacedJob {
    /// The other writer's version id (it wrote exactly one).
    async fn other_version(&self) -> String {
        let row = object(&self.report, A);
        row["version_id_before"].as_str().unwrap().to_owned()
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_version_replaced_between_find_and_forget_by_one_without_the_rows_is_deleted(db: PgPool) {
    let r = raced_job(db, false, json!({})).await;
    let lake = &r.lake;
    assert_eq!(r.job["status"], "completed", "{}", r.job);
    // Forget met the other writer (its upload got a 412) and read the object again.
    let kinds = lake.event_kinds(&r.job).await;
    assert!(kinds.contains(&"object_changed".to_owned()), "{kinds:?}");

    // `a`: the version find read is gone; the other writer's is current, byte for byte.
    let other = r.other_version().await;
    assert_ne!(other, r.searched);
    assert_eq!(
        versions(&lake.s3, &lake.bucket, A).await,
        vec![other.clone()]
    );
    assert_eq!(
        &object_bytes(&lake.s3, &lake.bucket, A).await[..],
        &r.body[..]
    );
    let row = object(&r.report, A);
    assert_eq!(row["version_id_searched"], r.searched.as_str(), "{row}");
    assert_eq!(row["status"], "old_version", "{row}");
    assert_eq!(row["noncurrent"], false, "{row}");
    assert_eq!(row["cleanup"], "done", "{row}");
    assert_eq!(deleted(row), vec![r.searched.clone()], "{row}");
    assert_eq!(
        row["version_id_after"],
        Value::Null,
        "nothing written: {row}"
    );
    // `b` was rewritten as usual.
    assert_eq!(versions(&lake.s3, &lake.bucket, B).await.len(), 1);

    // No version under the table holds either subject; `a` is the other writer's rows.
    let people = lake::people();
    for (key, version, rows) in every_version(lake, "races/").await {
        let expected = match key.as_str() {
            A => r.rows.iter().map(|p| p.id).collect(),
            B => without(&people[1], &[3007]),
            other => panic!("unexpected key {other}"),
        };
        assert_eq!(ids(&rows), expected, "{key} {version}");
    }

    // 5's account: one object, its one row as find counted it; nothing removed by a
    // rewrite (the rows went with the version find read), and no version kept.
    let five = lake.account(&r.job, &json!(5)).await;
    assert_eq!(five["status"], "erased", "{five}");
    let a = &five["accounts"][0];
    assert_eq!(a["status"], "erased", "{a}");
    assert_eq!((&a["objects"], &a["rows"]), (&json!(1), &json!(1)), "{a}");
    assert_eq!(a["rows_removed"], 0, "{a}");
    assert_eq!(a["old_versions"], 0, "{a}");
    assert_eq!(a.get("versions_kept"), None, "{a}");
    let other_subject = lake.account(&r.job, &json!(3007)).await;
    assert_eq!(other_subject["status"], "erased", "{other_subject}");
    assert_eq!(other_subject["accounts"][0]["rows_removed"], 1);
    assert!(lake.queued().await.is_empty(), "both left the queue");
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_version_replaced_between_find_and_forget_by_one_with_the_rows_is_rewritten_and_both_deleted(
    db: PgPool,
) {
    let r = raced_job(db, true, json!({})).await;
    let lake = &r.lake;
    assert_eq!(r.job["status"], "completed", "{}", r.job);
    let kinds = lake.event_kinds(&r.job).await;
    assert!(kinds.contains(&"object_changed".to_owned()), "{kinds:?}");

    // Forget rewrote the other writer's version; cleanup deleted it and the one find read.
    let other = r.other_version().await;
    assert_ne!(other, r.searched);
    let row = object(&r.report, A);
    assert_eq!(row["status"], "verified", "{row}");
    assert_eq!(row["version_id_searched"], r.searched.as_str(), "{row}");
    let ours = row["version_id_after"].as_str().unwrap().to_owned();
    let mut both = vec![r.searched.clone(), other.clone()];
    both.sort();
    assert_eq!(deleted(row), both, "{row}");
    assert_eq!(
        row["rows_removed"], 2,
        "both rows of 5 in the version rewritten: {row}"
    );
    assert_eq!(
        versions(&lake.s3, &lake.bucket, A).await,
        vec![ours.clone()]
    );

    // Every version left under the table, read back: none holds a subject; `a` is the
    // other writer's rows without 5 (its extra row kept).
    let people = lake::people();
    let left = every_version(lake, "races/").await;
    assert_eq!(left.len(), 2, "one version of each key");
    for (key, version, rows) in left {
        let expected = match key.as_str() {
            A => {
                assert_eq!(version, ours);
                r.rows.iter().map(|p| p.id).filter(|&id| id != 5).collect()
            }
            B => without(&people[1], &[3007]),
            other => panic!("unexpected key {other}"),
        };
        assert_eq!(ids(&rows), expected, "{key} {version}");
        assert!(ids(&rows).contains(&100_000) || key != A, "{key}");
    }

    let five = lake.account(&r.job, &json!(5)).await;
    assert_eq!(five["status"], "erased", "{five}");
    let a = &five["accounts"][0];
    // Counted again in the version rewritten: its two rows, both removed.
    assert_eq!((&a["objects"], &a["rows"]), (&json!(1), &json!(2)), "{a}");
    assert_eq!(a["rows_removed"], 2, "{a}");
    assert!(lake.queued().await.is_empty(), "both left the queue");
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn the_account_of_a_subject_rewritten_out_of_a_newer_version_counts_the_rows_removed_from_it(
    db: PgPool,
) {
    let r = raced_job(db, true, json!({})).await;
    assert_eq!(r.job["status"], "completed", "{}", r.job);
    // The version find read held one row of 5, the version rewritten two: both removed.
    let row = object(&r.report, A);
    assert_eq!(row["rows_removed"], 2, "{row}");
    assert_eq!(r.job["stats"]["rows_removed"], 2 + 1, "{}", r.job);
    // The accounts say so, and add up to the job's stats.
    let five = r.lake.account(&r.job, &json!(5)).await;
    let other_subject = r.lake.account(&r.job, &json!(3007)).await;
    let removed = [&five, &other_subject].map(|m| m["accounts"][0]["rows_removed"].clone());
    assert_eq!(removed, [json!(2), json!(1)], "{five} {other_subject}");
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_replaced_version_a_mapper_keeps_is_retained_and_named_in_the_account(db: PgPool) {
    let r = raced_job(db, false, json!({"delete_old_versions": false})).await;
    let lake = &r.lake;
    assert_eq!(r.job["status"], "completed", "{}", r.job);

    // Nothing deleted: the other writer's version on top of the one find read.
    let other = r.other_version().await;
    assert_eq!(
        versions(&lake.s3, &lake.bucket, A).await,
        vec![other, r.searched.clone()]
    );
    assert_eq!(
        &object_bytes(&lake.s3, &lake.bucket, A).await[..],
        &r.body[..]
    );
    let row = object(&r.report, A);
    assert_eq!(row["status"], "old_version", "{row}");
    assert_eq!(row["cleanup"], "skipped", "{row}");
    assert_eq!(deleted(row), Vec::<String>::new(), "{row}");
    // The version find read still holds 5, as the account says.
    let kept: Vec<_> = every_version(lake, A)
        .await
        .into_iter()
        .filter(|(_, v, _)| *v == r.searched)
        .collect();
    assert_eq!(kept.len(), 1);
    assert!(ids(&kept[0].2).contains(&5));

    let five = lake.account(&r.job, &json!(5)).await;
    assert_eq!(five["status"], "retained", "{five}");
    let a = &five["accounts"][0];
    assert_eq!(a["status"], "retained", "{a}");
    assert_eq!((&a["objects"], &a["rows"]), (&json!(1), &json!(1)), "{a}");
    let versions_kept = a["versions_kept"].as_array().unwrap();
    assert_eq!(versions_kept.len(), 1, "{a}");
    let v = &versions_kept[0];
    assert_eq!(
        (&v["bucket"], &v["key"], &v["version_id"]),
        (&json!(lake.bucket), &json!(A), &json!(r.searched)),
        "{v}"
    );
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("delete_old_versions is false"),
        "{v}"
    );
    assert_eq!(v.get("until"), None, "no lifecycle rule: {v}");
    // 3007's rows were rewritten out of `b`, and its version before is kept too.
    let other_subject = lake.account(&r.job, &json!(3007)).await;
    assert_eq!(other_subject["status"], "retained", "{other_subject}");
    assert!(
        lake.queued().await.is_empty(),
        "retained items leave the queue"
    );
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_version_written_on_top_of_lethes_rewrite_holding_the_rows_keeps_the_subject_queued_for_the_next_job(
    db: PgPool,
) {
    // A writer working from data read before the rewrite puts `a` back, 5 included, once
    // Lethe's rewrite is verified (right before cleanup lists the key's versions).
    let (stale, body) = replacement(true);
    let writer = OtherWriter {
        key: A.to_owned(),
        body,
    };
    let lake = lake_with(db.clone(), overwritten_before_cleanup(&db, writer)).await;
    let searched = races(&lake, json!({}), &[json!(5), json!(3007)]).await;
    let first = lake.run_job(&["races"]).await;
    assert_eq!(first["status"], "completed", "{first}");
    let kinds = lake.event_kinds(&first).await;
    assert!(
        kinds.contains(&"newer_version_holds".to_owned()),
        "{kinds:?}"
    );

    // Cleanup deleted the version find read, kept Lethe's and the one on top of it.
    let report = lake.report(&first).await;
    let row = object(&report, A);
    assert_eq!(row["status"], "verified", "{row}");
    assert_eq!(deleted(row), vec![searched.clone()], "{row}");
    let ours = row["version_id_after"].as_str().unwrap().to_owned();
    let left = versions(&lake.s3, &lake.bucket, A).await;
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(left[1], ours, "Lethe's is below the newer one");
    let stale_ids: Vec<i64> = stale.iter().map(|p| p.id).collect();
    let on_top = every_version(&lake, A).await;
    assert_eq!(on_top[0].1, left[0]);
    assert_eq!(ids(&on_top[0].2), stale_ids, "the newer version holds 5");

    // 5 is kept, with the reason; 3007 is erased.
    let five = lake.account(&first, &json!(5)).await;
    assert_eq!(five["status"], "kept", "{five}");
    let reason = five["accounts"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("a version written on top of Lethe's rewrite"),
        "{reason}"
    );
    assert_eq!(lake.account(&first, &json!(3007)).await["status"], "erased");
    assert_eq!(lake.queued().await, vec![json!(5)]);

    // The next job rewrites the newer version; no version under the table holds 5.
    let second = lake.run_job(&["races"]).await;
    assert_eq!(second["status"], "completed", "{second}");
    let people = lake::people();
    let all = every_version(&lake, "races/").await;
    assert_eq!(all.len(), 2, "one version of each key: {all:?}");
    for (key, version, rows) in &all {
        let expected = match key.as_str() {
            A => stale_ids.iter().copied().filter(|&id| id != 5).collect(),
            B => without(&people[1], &[3007]),
            other => panic!("unexpected key {other}"),
        };
        assert_eq!(ids(rows), expected, "{key} {version}");
    }
    let five = lake.account(&second, &json!(5)).await;
    assert_eq!(five["status"], "erased", "{five}");
    assert!(lake.queued().await.is_empty());
}

/// The subject of the cancelled job: six rows in each of `a` and `b`.
const SUBJECT: &str = "user7@example.com";

/// The ids of an object's rows holding [`SUBJECT`].
fn subject_rows(o: &lake::PeopleObject) -> Vec<i64> {
    o.rows
        .iter()
        .filter(|p| p.email.as_deref() == Some(SUBJECT))
        .map(|p| p.id)
        .collect()
}

/// Runs a job over `races` whose first forget's upload lands, then is held at `gate`
/// while the job is cancelled. Returns the key rewritten and the version Lethe wrote.
async fn cancelled_mid_rewrite(lake: &Lake, gate: &Gate) -> (String, String) {
    let people = lake::people();
    let originals = [(A, &people[0]), (B, &people[1])];
    let r = lake
        .app
        .post("/v1/jobs", Some(json!({"data_mappers": ["races"]})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let first = r.body["job_id"].as_str().unwrap().to_owned();
    let worker = lake.app.worker("w");
    let cancel = async {
        gate.landed.notified().await;
        let r = lake
            .app
            .post(&format!("/v1/jobs/{first}/cancel"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        gate.go_on.notify_one();
    };
    let run = async { tokio::join!(worker.run_until_idle(), cancel).0 };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the paused upload was reached")
        .unwrap();
    let job = lake.app.get(&format!("/v1/jobs/{first}")).await.body;
    assert_eq!(job["status"], "cancelled", "{job}");
    // The rewrite was in flight: recorded after the cancel.
    let kinds = lake.event_kinds(&job).await;
    let at = |kind: &str| kinds.iter().position(|k| k == kind);
    assert!(at("job_cancelled") < at("object_rewritten"), "{kinds:?}");
    assert!(at("job_cancelled").is_some(), "{kinds:?}");

    // Lethe's version of one key is current, never verified nor cleaned up; the other
    // key was never rewritten. Both originals still hold the subject.
    let report = lake.report(&json!({"job_id": first})).await;
    let written: Vec<&Value> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["status"] == "written")
        .collect();
    assert_eq!(written.len(), 1, "{}", report["objects"]);
    let rewritten = written[0]["key"].as_str().unwrap().to_owned();
    let ours = written[0]["version_id_after"].as_str().unwrap().to_owned();
    assert_eq!(written[0]["cleanup"], Value::Null);
    for (key, o) in originals {
        let left = versions(&lake.s3, &lake.bucket, key).await;
        let all = every_version(lake, key).await;
        let original = &all.last().unwrap().2;
        assert_eq!(
            ids(original),
            o.rows.iter().map(|p| p.id).collect::<Vec<_>>()
        );
        if key == rewritten {
            assert_eq!(left.len(), 2, "{key}: the original and Lethe's");
            assert_eq!(left[0], ours);
        } else {
            assert_eq!(left.len(), 1, "{key}");
        }
    }
    assert_eq!(lake.queued().await, vec![json!(SUBJECT)]);
    (rewritten, ours)
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_job_cancelled_while_a_rewrite_is_in_flight_leaves_nothing_the_next_job_does_not_erase(
    db: PgPool,
) {
    let gate = Arc::new(Gate::default());
    let lake = lake_with(db.clone(), paused_after_upload(&db, gate.clone())).await;
    races(&lake, json!({}), &[json!(SUBJECT)]).await;
    let people = lake::people();
    let originals = [(A, &people[0]), (B, &people[1])];
    for (_, o) in originals {
        assert_eq!(subject_rows(o).len(), 6);
    }
    let (rewritten, ours) = cancelled_mid_rewrite(&lake, &gate).await;

    // The next job over the same mapper: no version of any key holds the subject.
    let second = lake.run_job(&["races"]).await;
    assert_eq!(second["status"], "completed", "{second}");
    let left = every_version(&lake, "races/").await;
    assert_eq!(left.len(), 2, "one version of each key: {left:?}");
    for (key, version, rows) in &left {
        assert!(
            rows.iter().all(|r| r["email"] != SUBJECT),
            "{key} {version} holds the subject"
        );
        let o = originals.iter().find(|(k, _)| k == key).unwrap().1;
        assert_eq!(ids(rows), without(o, &subject_rows(o)), "{key} {version}");
    }
    // The key rewritten before the cancel keeps Lethe's first version; the original
    // below it was found as an old version and deleted.
    let kept = left.iter().find(|(k, _, _)| *k == rewritten).unwrap();
    assert_eq!(kept.1, ours);
    let report = lake.report(&second).await;
    let old = object(&report, &rewritten);
    assert_eq!(old["noncurrent"], true, "{old}");
    assert_eq!(old["status"], "old_version", "{old}");
    assert_eq!(
        old["versions_deleted"].as_array().unwrap().len(),
        1,
        "{old}"
    );

    let account = lake.account(&second, &json!(SUBJECT)).await;
    assert_eq!(account["status"], "erased", "{account}");
    let a = &account["accounts"][0];
    assert_eq!(
        (
            &a["objects"],
            &a["rows"],
            &a["rows_removed"],
            &a["old_versions"]
        ),
        (&json!(1), &json!(6), &json!(6), &json!(1)),
        "{a}"
    );
    assert!(lake.queued().await.is_empty(), "the subject left the queue");
    let open: i64 = sqlx::query_scalar(
        "select count(*) from task where state not in ('succeeded', 'cancelled')",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(open, 0, "no task left queued, running or failed");
}
