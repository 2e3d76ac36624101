//! Jobs through the REST API over a generated local lake (`file://`, `path` catalog):
//! the find report equals what plain Rust computes from the generated rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::http::{Method, StatusCode};
use lethe::api::auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::TestApp;
use crate::lake::{self, Matches};

/// Writes `people` and `events` under a fresh directory; returns it.
pub fn local_lake() -> PathBuf {
    let root = std::env::temp_dir().join(format!("lethe-jobs-{}", uuid::Uuid::new_v4()));
    for o in lake::people() {
        write(&root.join("people").join(&o.key), &o.bytes);
    }
    for (key, _, bytes) in lake::events() {
        write(&root.join("events").join(key), &bytes);
    }
    // Skipped: a marker, temporary output (hidden: not the table's data), an empty object.
    write(&root.join("people/country=fr/_SUCCESS"), b"");
    write(&root.join("people/_temporary/0/part-9.parquet"), b"junk");
    write(&root.join("people/country=us/empty.parquet"), b"");
    root
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

pub fn people_mapper(root: &Path, columns: &[&str]) -> Value {
    json!({
        "catalog": {"provider": "path", "location": format!("file://{}/people", root.display()),
                    "format": "parquet", "partition_keys": ["country"]},
        "format": "parquet",
        "columns": columns,
        "partition_keys": ["country"],
        // A local directory has no versions.
        "allow_unversioned": true,
    })
}

pub fn events_mapper(root: &Path) -> Value {
    json!({
        "catalog": {"provider": "path", "location": format!("file://{}/events", root.display()),
                    "partition_keys": ["dt"]},
        "format": "json",
        "columns": ["user.id", "user.email"],
        "allow_unversioned": true,
    })
}

/// (key relative to the lake root → rows matched), from the generated rows.
pub fn expected_people(m: &Matches, prefix: &str) -> BTreeMap<String, i64> {
    lake::people()
        .into_iter()
        .filter_map(|o| {
            let n = o.rows.iter().filter(|p| m.person(o.country, p)).count() as i64;
            (n > 0).then(|| (format!("{prefix}{}", o.key), n))
        })
        .collect()
}

pub fn expected_events(m: &Matches, prefix: &str) -> BTreeMap<String, i64> {
    lake::events()
        .into_iter()
        .filter_map(|(key, events, _)| {
            let n = events.iter().filter(|e| m.event(e)).count() as i64;
            (n > 0).then(|| (format!("{prefix}{key}"), n))
        })
        .collect()
}

/// The job's recorded objects with matches: key → rows matched.
pub async fn reported(app: &TestApp, job: &str, strip: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let mut start = None::<i64>;
    loop {
        let path = match start {
            Some(s) => format!("/v1/jobs/{job}/objects?page_size=5&start_at={s}"),
            None => format!("/v1/jobs/{job}/objects?page_size=5"),
        };
        let page = app.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for o in page.body["objects"].as_array().unwrap() {
            // Hidden files are listed too; they are never searched.
            if o["status"] == "hidden" {
                assert_eq!(o["rows_matched"], 0, "{o}");
                continue;
            }
            assert_eq!(o["status"], "matched", "{o}");
            let key = o["key"]
                .as_str()
                .unwrap()
                .trim_start_matches(strip)
                .to_owned();
            assert!(
                out.insert(key, o["rows_matched"].as_i64().unwrap())
                    .is_none()
            );
        }
        match page.body["next_start"].as_i64() {
            Some(s) => start = Some(s),
            None => return out,
        }
    }
}

/// Queues items (as admin) and checks they were accepted.
pub async fn queue(app: &TestApp, items: Value) {
    let r = app
        .patch("/v1/queue/matches", json!({"matches": items}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// Starts a dry run and returns its id.
pub async fn start_dry_run(app: &TestApp, mappers: &[&str]) -> String {
    let r = app
        .post(
            "/v1/jobs",
            Some(json!({"dry_run": true, "data_mappers": mappers})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["status"], "queued");
    r.body["job_id"].as_str().unwrap().to_owned()
}

/// The matches the full test queues, as (JSON item, how it matches).
pub fn full_matrix() -> (Value, Matches) {
    let items = json!([
        {"match_id": 5, "data_mappers": ["people"]},
        {"match_id": 3001, "data_mappers": ["people"]},
        {"match_id": 7.5, "data_mappers": ["people"]},
        {"match_id": "user42@example.com"},
        {"match_id": "c9001@example.com", "data_mappers": ["people"]},
        {"match_id": 123456789},
        {"match_id": [{"column": "country", "value": "us"}, {"column": "id", "value": 15000}],
         "data_mappers": ["people"]},
        {"match_id": [{"column": "country", "value": "de"}, {"column": "id", "value": 15001}],
         "data_mappers": ["people"]},
        {"match_id": [{"column": "id", "value": 6007}, {"column": "email", "value": "user7@example.com"}],
         "data_mappers": ["people"]},
        {"match_id": 1234, "data_mappers": ["events"]},
    ]);
    let people = Matches {
        ints: vec![5, 3001, 123456789],
        cents: vec![750],
        strings: vec!["user42@example.com".into(), "c9001@example.com".into()],
        composites: vec![
            (Some("us"), Some(15000), None),
            (Some("de"), Some(15001), None),
            (None, Some(6007), Some("user7@example.com".into())),
        ],
    };
    (items, people)
}

pub fn events_matches() -> Matches {
    Matches {
        ints: vec![123456789, 1234],
        strings: vec!["user42@example.com".into()],
        ..Matches::default()
    }
}

/// A local lake, an app with its `people` and `events` mappers, and the full matrix of
/// matches queued; returns the lake root, the app and how the matches hit `people`.
async fn full_matrix_app(db: PgPool) -> (PathBuf, TestApp, Matches) {
    let root = local_lake();
    let app = TestApp::new(db);
    for (id, body) in [
        (
            "people",
            people_mapper(&root, &["id", "email", "account", "contact.email"]),
        ),
        ("events", events_mapper(&root)),
    ] {
        let r = app.put(&format!("/v1/data_mappers/{id}"), body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let (items, people) = full_matrix();
    queue(&app, items).await;
    (root, app, people)
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_dry_run_over_a_local_lake_reports_exactly_the_matching_objects(db: PgPool) {
    let (root, app, people) = full_matrix_app(db).await;
    let job = start_dry_run(&app, &[]).await;
    app.worker("w").run_until_idle().await.unwrap();

    let got = app.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(got.body["status"], "completed", "{}", got.body);
    let prefix = local_key_prefix(&root);
    let mut expected = expected_people(&people, "people/");
    expected.extend(expected_events(&events_matches(), "events/"));
    assert!(
        expected.len() >= 5,
        "the matrix should touch several objects"
    );
    assert_eq!(reported(&app, &job, &prefix).await, expected);
    let objects = app
        .get(&format!("/v1/jobs/{job}/objects?page_size=100"))
        .await;
    let hidden: Vec<&str> = objects.body["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["status"] == "hidden")
        .map(|o| o["key"].as_str().unwrap().trim_start_matches(&prefix))
        .collect();
    assert_eq!(hidden, ["people/_temporary/0/part-9.parquet"]);
    let stats = &got.body["stats"];
    assert_eq!(stats["objects_matched"], expected.len() as i64);
    assert_eq!(stats["rows_matched"], expected.values().sum::<i64>());
    assert_eq!(stats["partitions_listed"], 3 + 2);
    assert_eq!(stats["partitions_pruned"], 0);
    assert_eq!(stats["objects_listed"], 6 + 3 + 2);
    assert_eq!(stats["objects_skipped"], 3);
    assert_eq!(stats["objects_scanned"], 6 + 2);
    assert_eq!(stats["objects_failed"], 0);
    assert_eq!(
        stats["row_groups_scanned"].as_i64().unwrap()
            + stats["row_groups_pruned"].as_i64().unwrap(),
        6 * 3
    );
    assert_eq!(got.body["queue_items"], 10);
    assert_eq!(got.body["data_mappers"], json!(["events", "people"]));
    assert_eq!(got.body["settings"]["find_concurrency"], 8);
    assert!(got.body["started_at"].is_string() && got.body["finished_at"].is_string());
    assert_no_open_tasks(&app).await;
    std::fs::remove_dir_all(root).unwrap();
}

async fn assert_no_open_tasks(app: &TestApp) {
    let open: i64 = sqlx::query_scalar(
        "select count(*) from task where state not in ('succeeded', 'cancelled')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(open, 0, "no task may be left queued, running or failed");
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn statistics_prune_row_groups_and_partition_keys_prune_partitions(db: PgPool) {
    let root = local_lake();
    let app = TestApp::new(db);
    app.put("/v1/data_mappers/ids", people_mapper(&root, &["id"]))
        .await;
    app.put("/v1/data_mappers/by_country", people_mapper(&root, &["id"]))
        .await;
    queue(
        &app,
        json!([
            {"match_id": 5, "data_mappers": ["ids"]},
            {"match_id": 3001, "data_mappers": ["ids"]},
            {"match_id": [{"column": "country", "value": "fr"}, {"column": "id", "value": 7000}],
             "data_mappers": ["by_country"]},
            {"match_id": [{"column": "country", "value": "fr"}], "data_mappers": ["by_country"]},
        ]),
    )
    .await;
    // Ids 5 and 3001 live in one row group each of the first two objects.
    let job = start_dry_run(&app, &["ids"]).await;
    app.worker("w").run_until_idle().await.unwrap();
    let stats = app.get(&format!("/v1/jobs/{job}")).await.body["stats"].clone();
    assert_eq!(stats["rows_matched"], 2);
    assert_eq!(stats["row_groups_scanned"], 2);
    assert_eq!(stats["row_groups_pruned"], 6 * 3 - 2);
    assert_eq!(stats["objects_pruned"], 4);
    assert_eq!(stats["partitions_pruned"], 0);

    // Composite matches on the partition key: only country=fr is searched, and the
    // composite on the key alone matches every row there.
    let job = start_dry_run(&app, &["by_country"]).await;
    app.worker("w").run_until_idle().await.unwrap();
    let got = app.get(&format!("/v1/jobs/{job}")).await;
    let stats = &got.body["stats"];
    assert_eq!(got.body["status"], "completed");
    assert_eq!(stats["partitions_listed"], 3);
    assert_eq!(stats["partitions_pruned"], 2);
    assert_eq!(stats["objects_scanned"], 2);
    assert_eq!(stats["rows_matched"], 2 * lake::ROWS_PER_OBJECT);
    std::fs::remove_dir_all(root).unwrap();
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn job_requests_are_checked_and_one_job_runs_at_a_time(db: PgPool) {
    let root = local_lake();
    let app = TestApp::new(db);
    let empty = app.post("/v1/jobs", Some(json!({"dry_run": true}))).await;
    assert_eq!(empty.invalid_fields(), ["data_mappers"]);
    app.put("/v1/data_mappers/people", people_mapper(&root, &["id"]))
        .await;
    queue(&app, json!([{"match_id": 5}])).await;
    let ghost = app
        .post(
            "/v1/jobs",
            Some(json!({"dry_run": true, "data_mappers": ["ghost"]})),
        )
        .await;
    assert_eq!(ghost.invalid_fields(), ["data_mappers[0]"]);
    app.post("/v1/jobs", Some(json!({"dry_run": "yes"})))
        .await
        .problem(422);
    let requester = app.token("r", &[Role::Requester]);
    let bad_mapper_list = app
        .post(
            "/v1/jobs",
            Some(json!({"dry_run": true, "data_mappers": "people"})),
        )
        .await;
    bad_mapper_list.problem(422);
    let denied = app
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&requester),
            Some(json!({"dry_run": true})),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(app.count("job").await, 0, "rejected requests start nothing");

    let job = start_dry_run(&app, &[]).await;
    app.post("/v1/jobs", Some(json!({"dry_run": true})))
        .await
        .problem(409);
    app.delete("/v1/data_mappers/people", None)
        .await
        .problem(409);
    // Items queued now wait for the next job.
    queue(&app, json!([{"match_id": 3001}])).await;
    app.worker("w").run_until_idle().await.unwrap();
    let got = app.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(
        (
            got.body["queue_items"].clone(),
            got.body["stats"]["rows_matched"].clone()
        ),
        (json!(1), json!(1))
    );
    let next = start_dry_run(&app, &[]).await;
    app.worker("w").run_until_idle().await.unwrap();
    assert_eq!(
        app.get(&format!("/v1/jobs/{next}")).await.body["stats"]["rows_matched"],
        2
    );

    let list = app.get("/v1/jobs?page_size=1").await;
    assert_eq!(
        list.body["jobs"][0]["job_id"],
        next.as_str(),
        "newest first"
    );
    let start = list.body["next_start"].as_str().unwrap().to_owned();
    let rest = app
        .get(&format!("/v1/jobs?page_size=1&start_at={start}"))
        .await;
    assert_eq!(rest.body["jobs"][0]["job_id"], job.as_str());
    assert!(rest.body["next_start"].is_null());
    app.get("/v1/jobs/not-a-uuid").await.problem(404);
    app.get(&format!("/v1/jobs/{}", uuid::Uuid::nil()))
        .await
        .problem(404);
    std::fs::remove_dir_all(root).unwrap();
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_cancelled_job_runs_no_more_tasks_and_its_events_stream_to_the_end(db: PgPool) {
    let root = local_lake();
    let app = TestApp::new(db);
    app.put("/v1/data_mappers/people", people_mapper(&root, &["id"]))
        .await;
    queue(&app, json!([{"match_id": 5}])).await;
    let job = start_dry_run(&app, &[]).await;
    let cancelled = app.post(&format!("/v1/jobs/{job}/cancel"), None).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(app.worker("w").run_until_idle().await.unwrap(), 0);
    app.post(&format!("/v1/jobs/{job}/cancel"), None)
        .await
        .problem(409);
    assert_no_open_tasks(&app).await;
    let events = app.get(&format!("/v1/jobs/{job}/events")).await;
    let kinds: Vec<&str> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["job_created", "job_cancelled", "job_finished"]);

    // A finished job's stream sends every event, then ends.
    let req = axum::http::Request::builder()
        .uri(format!("/v1/jobs/{job}/events"))
        .header("authorization", format!("Bearer {}", app.admin()))
        .header("accept", "text/event-stream")
        .body(axum::body::Body::empty())
        .unwrap();
    let stream = app.send(req).await;
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    let text = stream.body.as_str().unwrap();
    assert_eq!(text.matches("event: ").count(), 3, "{text}");
    assert!(text.contains("event: job_cancelled"));
    std::fs::remove_dir_all(root).unwrap();
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn workers_killed_mid_find_still_leave_an_exact_report(db: PgPool) {
    use lethe::jobs::tasks::claim;
    use std::time::Duration;
    let (root, app, people) = full_matrix_app(db.clone()).await;
    let job = start_dry_run(&app, &[]).await;

    // Worker A claims a mapper task and dies holding it: its lease ends at once.
    let lost = claim(&db, "dead-a", Duration::ZERO, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lost.kind, "find.mapper");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let worker = app.worker("b");
    // Both mapper tasks run (one of them for the second time): objects get enqueued.
    for _ in 0..2 {
        let (task, outcome) = worker.run_once().await.unwrap().unwrap();
        assert_eq!(task.kind, "find.mapper");
        outcome.unwrap();
    }

    // Worker C records a batch of objects, then dies before marking its task done.
    let task = claim(&db, "dead-c", Duration::ZERO, 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(task.kind, "find.objects");
    let handler = worker.handlers.get("find.objects").unwrap().clone();
    handler.run(&task).await.unwrap();

    // Worker D is dropped in the middle of a task.
    let mut dropped = app.worker("d");
    dropped.lease = Duration::from_millis(300);
    let _ = tokio::time::timeout(Duration::from_millis(2), dropped.run_once()).await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    worker.run_until_idle().await.unwrap();
    // Worker C's task was the last of find: nobody advanced the job after it. The
    // supervisor's tick does (as in every `serve` / `worker` process).
    lethe::jobs::advance::advance_active(&db, &app.state.receipts)
        .await
        .unwrap();
    worker.run_until_idle().await.unwrap();
    let got = app.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(got.body["status"], "completed", "{}", got.body);
    let prefix = local_key_prefix(&root);
    let mut expected = expected_people(&people, "people/");
    expected.extend(expected_events(&events_matches(), "events/"));
    assert_eq!(reported(&app, &job, &prefix).await, expected);
    let stats = &got.body["stats"];
    assert_eq!(stats["rows_matched"], expected.values().sum::<i64>());
    assert_eq!(stats["objects_scanned"], 6 + 2, "nothing counted twice");
    assert_eq!(stats["objects_listed"], 6 + 3 + 2, "nothing listed twice");
    assert_no_open_tasks(&app).await;
    std::fs::remove_dir_all(root).unwrap();
}

/// Every object of the local lake, read back with the plain Arrow reader (people) or line
/// by line (events), must equal the generated rows minus exactly the matched ones.
fn assert_lake_is_original_minus_matches(root: &Path, people: &Matches, events: &Matches) {
    use arrow_array::cast::AsArray;
    for o in lake::people() {
        let path = root.join("people").join(&o.key);
        let file = std::fs::File::open(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let ids: Vec<i64> = reader
            .flat_map(|b| {
                b.unwrap()
                    .column(0)
                    .as_primitive::<arrow_array::types::Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        let expected: Vec<i64> = o
            .rows
            .iter()
            .filter(|p| !people.person(o.country, p))
            .map(|p| p.id)
            .collect();
        assert_eq!(ids, expected, "{}", o.key);
    }
    for (key, rows, _) in lake::events() {
        use std::io::Read;
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(
            std::fs::File::open(root.join("events").join(&key)).unwrap(),
        )
        .read_to_string(&mut text)
        .unwrap();
        let kept: Vec<i64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["user"]["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        let expected: Vec<i64> = rows
            .iter()
            .filter(|e| !events.event(e))
            .map(|e| e.user_id)
            .collect();
        assert_eq!(kept, expected, "{key}");
    }
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_job_over_a_local_lake_erases_exactly_the_matched_rows_and_the_queue_items(db: PgPool) {
    let (root, app, people) = full_matrix_app(db.clone()).await;
    let r = app.post("/v1/jobs", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job = r.body["job_id"].as_str().unwrap().to_owned();
    app.worker("w").run_until_idle().await.unwrap();
    let got = app.get(&format!("/v1/jobs/{job}")).await;
    assert_eq!(got.body["status"], "completed", "{}", got.body);
    assert_lake_is_original_minus_matches(&root, &people, &events_matches());
    let mut expected = expected_people(&people, "people/");
    expected.extend(expected_events(&events_matches(), "events/"));
    let stats = &got.body["stats"];
    assert_eq!(stats["objects_rewritten"], expected.len() as i64);
    assert_eq!(stats["objects_verified"], expected.len() as i64);
    assert_eq!(stats["rows_removed"], expected.values().sum::<i64>());
    assert_eq!(stats["matches_erased"], 10);
    assert_eq!(
        app.count("deletion_queue_item").await,
        0,
        "erased items leave the queue"
    );
    assert_eq!(app.count("job_match").await, 10);
    assert_no_open_tasks(&app).await;
    // No match id is left in plain text anywhere in the database.
    let dump: String = sqlx::query_scalar(
        "select coalesce(string_agg(t::text, ' '), '') from (
             select payload::text as t from task union all
             select message || details::text from job_event union all
             select match_hash || status from job_match union all
             select key || coalesce(error, '') || coalesce(forget_error, '') from job_object) x",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    for id in [
        "user42@example.com",
        "c9001@example.com",
        "123456789",
        "user7@example.com",
    ] {
        assert!(!dump.contains(id), "{id} left in the database");
    }
    let report = app.get(&format!("/v1/jobs/{job}/report")).await;
    assert_eq!(report.status, StatusCode::OK);
    assert_eq!(report.body["job"]["job_id"], job.as_str());
    let (hidden, objects): (Vec<&Value>, Vec<&Value>) = report.body["objects"]
        .as_array()
        .unwrap()
        .iter()
        .partition(|o| o["find_status"] == "hidden");
    assert_eq!(objects.len(), expected.len());
    // The `_temporary/` output is listed, never written.
    assert_eq!(hidden.len(), 1, "{hidden:?}");
    assert_eq!(hidden[0]["status"], "skipped");
    assert!(hidden[0]["version_id_after"].is_null());
    for o in &objects {
        assert_eq!(o["status"], "verified", "{o}");
        assert_eq!(
            o["rows_after"].as_i64().unwrap(),
            o["rows_before"].as_i64().unwrap() - o["rows_removed"].as_i64().unwrap()
        );
        assert_ne!(o["etag_after"], o["etag_before"]);
    }
    let matches = report.body["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 10);
    // Each match has an account per mapper: erased where it had rows (all removed and
    // verified), not found where every object was searched and none held it.
    let mut removed = 0;
    for m in matches {
        assert_eq!(m["match_hash"].as_str().unwrap().len(), 64);
        let accounts = m["accounts"].as_array().unwrap();
        assert!(!accounts.is_empty(), "{m}");
        for a in accounts {
            assert!(a["objects_searched"].as_i64().unwrap() > 0, "{a}");
            assert_eq!(a["rows"], a["rows_removed"], "{a}");
            match a["status"].as_str().unwrap() {
                "erased" => assert!(a["objects"].as_i64().unwrap() > 0, "{a}"),
                "not_found" => assert_eq!(a["objects"], 0, "{a}"),
                other => panic!("{other}: {a}"),
            }
            removed += a["rows_removed"].as_i64().unwrap();
        }
        let any_rows = accounts.iter().any(|a| a["status"] == "erased");
        assert_eq!(
            m["status"],
            if any_rows { "erased" } else { "not_found" },
            "{m}"
        );
    }
    // Every removed row is some match's (a row two matches name counts for both).
    assert!(removed >= got.body["stats"]["rows_removed"].as_i64().unwrap());
    assert!(
        matches.iter().any(|m| m["status"] == "not_found"),
        "123456789 is nowhere"
    );
    let metrics = app.metrics().await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains("lethe_jobs{status=\"completed\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("lethe_task_oldest_runnable_seconds 0.000"),
        "{text}"
    );
    assert!(
        text.contains("lethe_queue_items_deadline{window=\"overdue\"} 0"),
        "{text}"
    );
    // Work done, summed over jobs, and the tasks this process ran.
    let removed: i64 = objects
        .iter()
        .map(|o| o["rows_removed"].as_i64().unwrap())
        .sum();
    for line in [
        format!("lethe_job_rows_total{{kind=\"removed\"}} {removed}"),
        format!(
            "lethe_job_objects_total{{outcome=\"rewritten\"}} {}",
            objects.len()
        ),
        format!(
            "lethe_job_objects_total{{outcome=\"verified\"}} {}",
            objects.len()
        ),
        format!(
            "lethe_task_duration_seconds_count{{kind=\"forget.object\",outcome=\"ok\"}} {}",
            objects.len()
        ),
        format!(
            "lethe_task_duration_seconds_count{{kind=\"verify.object\",outcome=\"ok\"}} {}",
            objects.len()
        ),
    ] {
        assert!(text.contains(&line), "missing {line} in\n{text}");
    }
    // A second job finds nothing: the queue is empty.
    app.post("/v1/jobs", Some(json!({}))).await.problem(422);
    std::fs::remove_dir_all(root).unwrap();
}

/// The key prefix of a local lake's objects: its path under the local lake root (the
/// system's temp dir in tests).
fn local_key_prefix(root: &std::path::Path) -> String {
    let base = std::fs::canonicalize(std::env::temp_dir()).unwrap();
    let root = std::fs::canonicalize(root).unwrap();
    format!("{}/", root.strip_prefix(base).unwrap().display())
}
