//! Memory bounded by design, as an attacker would probe it: queue bodies of the largest
//! size are refused with the field named (their peak memory is `lethe bench memory`'s
//! figure), and a JSON Lines object whose one line inflates to 1 GiB fails its object
//! with "line too long" after inflating only `LETHE_MAX_LINE_BYTES`, its subject queued.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use lethe::api::auth::Role;
use serde_json::json;

use crate::common::{TestApp, catalog};

fn patch_as(token: &str, body: Vec<u8>) -> Request<Body> {
    Request::builder()
        .method(Method::PATCH)
        .uri("/v1/queue/matches")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn queue_bodies_of_16_mib_are_refused_naming_the_field(db: sqlx::PgPool) {
    let app = TestApp::new(db);
    let requester = app.token("rita", &[Role::Requester]);
    let size = app.config.limits.queue_max_body_bytes;
    assert_eq!(size, 16 * 1024 * 1024);
    let expected = [
        ("matches[0]", "expected struct NewMatch"),
        ("matches", "at most 10000 items per call"),
        (
            "matches[0].match_id",
            "a composite match has at most 32 parts",
        ),
        (
            "matches[0].data_mappers",
            "at most 32 data mappers per item",
        ),
    ];
    let bodies = lethe::bench::memory::bodies(size);
    assert_eq!(bodies.len(), expected.len());
    for ((name, body), (field, message)) in bodies.into_iter().zip(expected) {
        assert!(body.len() > size - 64, "{name}");
        let reply = app.send(patch_as(&requester, body)).await;
        assert_eq!(reply.invalid_fields(), [field], "{name}: {}", reply.body);
        let text = reply.body["errors"][0]["message"].as_str().unwrap();
        assert!(text.contains(message), "{name}: {text}");
    }
    // 10,000 items of 1,600-byte ids (16 MiB): every item is read, the last one's
    // reference is refused by name.
    let mut items: Vec<_> = (0..10_000)
        .map(|i| json!({"match_id": format!("{i:05}{}", "x".repeat(1600))}))
        .collect();
    items[9_999]["reference"] = json!("r".repeat(300));
    let body = serde_json::to_vec(&json!({"matches": items})).unwrap();
    assert!(
        body.len() > 16_000_000 && body.len() <= size,
        "{}",
        body.len()
    );
    let reply = app.send(patch_as(&requester, body)).await;
    assert_eq!(reply.invalid_fields(), ["matches[9999].reference"]);
    assert_eq!(app.count("deletion_queue_item").await, 0);
}

/// Peak resident memory of this process so far (Linux), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line["VmHWM:".len()..]
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    kb * 1024
}

/// Writes a gzip object of one line, `{"id": 1, "pad": "xxx…"}`, whose pad inflates to
/// `mib` MiB: one member of 1 MiB of `x` deflates to about 1 KiB and is repeated (gzip
/// members concatenate), so the object is written, streaming, in a blink.
fn inflating_line(path: &std::path::Path, mib: usize) {
    let member = |bytes: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    };
    let x = member(&vec![b'x'; 1 << 20]);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    file.write_all(&member(br#"{"id": 1, "pad": ""#)).unwrap();
    for _ in 0..mib {
        file.write_all(&x).unwrap();
    }
    file.write_all(&member(b"\"}\n")).unwrap();
    file.flush().unwrap();
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_gzip_line_inflating_to_1_gib_fails_its_object_and_keeps_the_subject_queued(
    db: sqlx::PgPool,
) {
    let max = 8 << 20;
    let app = TestApp::with(db, Arc::new(catalog()), |c| c.jobs.max_line_bytes = max);
    let root = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let table = root.path().join("events");
    std::fs::create_dir_all(&table).unwrap();
    inflating_line(&table.join("bomb.json.gz"), 1024);
    let size = std::fs::metadata(table.join("bomb.json.gz")).unwrap().len();
    assert!(size < 2 << 20, "{size} bytes inflate to 1 GiB");
    let mapper = json!({
        "catalog": {"provider": "path", "location": format!("file://{}", table.display())},
        "format": "json",
        "columns": ["id"],
        "allow_unversioned": true,
    });
    let r = app.put("/v1/data_mappers/events", mapper).await;
    assert!(r.status.is_success(), "{}", r.body);
    crate::jobs::queue(&app, json!([{"match_id": 1, "reference": "T-1"}])).await;

    let before = peak_rss();
    let job = crate::e2e_jobs::run_job(&app, &["events"]).await;
    let grown = peak_rss().saturating_sub(before);

    let id = job["job_id"].as_str().unwrap();
    let objects = app.get(&format!("/v1/jobs/{id}/objects")).await;
    let bomb = &objects.body["objects"][0];
    assert_eq!(bomb["status"], "failed", "{}", objects.body);
    let error = bomb["error"].as_str().unwrap();
    assert!(error.contains("line too long"), "{error}");
    assert!(error.contains(&max.to_string()), "{error}");
    // The subject stays queued, the object as it was.
    let queued = app.get("/v1/queue").await;
    assert_eq!(
        queued.body["matches"][0]["reference"], "T-1",
        "{}",
        queued.body
    );
    assert_eq!(
        std::fs::metadata(table.join("bomb.json.gz")).unwrap().len(),
        size
    );
    // Buffering the line would hold 1 GiB; the scan held at most the cap.
    assert!(grown < 512 << 20, "peak memory grew by {grown} bytes");
    assert_ne!(job["status"], "completed", "{job}");
    assert_eq!(
        app.get(&format!("/v1/jobs/{id}")).await.status,
        StatusCode::OK
    );
}
