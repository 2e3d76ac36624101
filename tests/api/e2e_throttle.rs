//! Throttling slows a job down and never fails it: a loopback proxy between Lethe and
//! moto answers a share of S3 requests with `503 SlowDown` and of Glue requests with
//! `ThrottlingException`, and the job still ends `completed` with the lake, the queue and
//! the stats exactly as without them; what stays throttled after every retry fails its
//! object alone, its subjects kept. The proxy (`faulty_proxy`, which can also drop
//! connections unanswered and delay requests) serves `e2e_faults` too.

use std::convert::Infallible;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use lethe::catalog::glue::GlueCatalog;
use lethe::metrics::Metrics;
use lethe::storage::Stores;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::TestApp;
use crate::e2e_jobs::{glue_database, glue_table, kept_ids, read_ids, versions};
use crate::e2e_storage::new_versioned_bucket;
use crate::jobs::{events_matches, expected_events, expected_people, full_matrix, queue};
use crate::lake;

/// What the proxy does to a request instead of forwarding it at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `503 SlowDown`, as S3 answers (no body to a HEAD).
    SlowDown,
    /// `400 ThrottlingException`, as Glue answers.
    GlueThrottle,
    /// `400 ConcurrentModificationException`: Glue's answer to an `UpdateTable` whose
    /// `VersionId` is no longer the table's (moto never gives it).
    GlueConcurrent,
    /// The connection closed without an answer (the request is not forwarded), as a
    /// load balancer or a NAT that drops a connection does.
    Reset,
    /// Forwarded after this long.
    Delay(Duration),
}

/// Which AWS service a request is for: `glue` names its operation in `X-Amz-Target`, STS
/// in a form body; the rest (signed for `s3`) is S3.
pub(crate) fn service_of(headers: &HeaderMap) -> &'static str {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if header("x-amz-target").starts_with("AWSGlue.") {
        "glue"
    } else if header("authorization").contains("/s3/aws4_request") {
        "s3"
    } else {
        "other"
    }
}

pub(crate) type Rule = dyn Fn(&Method, &Uri, &HeaderMap) -> Option<Fault> + Send + Sync;

/// A loopback HTTP proxy to `upstream` (moto) that does to each request what `rule`
/// names (answers it with a fault, closes its connection, delays it), else forwards it;
/// returns its `http://` address. Served connection by connection (HTTP/1.1), so a
/// [`Fault::Reset`] can drop the connection with nothing written.
pub(crate) async fn faulty_proxy(upstream: String, rule: Arc<Rule>) -> String {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (client, upstream, rule) = (client.clone(), upstream.clone(), rule.clone());
            tokio::spawn(async move {
                let reset = Arc::new(tokio::sync::Notify::new());
                let service = hyper::service::service_fn({
                    let reset = reset.clone();
                    move |req: Request<hyper::body::Incoming>| {
                        let (client, upstream, rule) =
                            (client.clone(), upstream.clone(), rule.clone());
                        let reset = reset.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            match rule(&parts.method, &parts.uri, &parts.headers) {
                                Some(Fault::Reset) => {
                                    // The connection task drops the connection: no answer.
                                    reset.notify_one();
                                    return Ok(std::future::pending().await);
                                }
                                Some(Fault::Delay(latency)) => tokio::time::sleep(latency).await,
                                Some(fault) => {
                                    return Ok::<_, Infallible>(fault_answer(fault, &parts.method));
                                }
                                None => {}
                            }
                            Ok(forward(&client, &upstream, parts, body).await)
                        }
                    }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::select! {
                    _ = connection => {}
                    _ = reset.notified() => {}
                }
            });
        }
    });
    address
}

fn fault_answer(fault: Fault, method: &Method) -> Response<Body> {
    let builder = Response::builder().header("x-amz-request-id", "proxy");
    match fault {
        Fault::SlowDown if method == Method::HEAD => builder
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(Body::empty()),
        Fault::SlowDown => builder
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .header("content-type", "application/xml")
            .body(Body::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>proxy</RequestId></Error>",
            )),
        Fault::GlueThrottle => builder
            .status(StatusCode::BAD_REQUEST)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amzn-errortype", "ThrottlingException")
            .body(Body::from(
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            )),
        Fault::GlueConcurrent => builder
            .status(StatusCode::BAD_REQUEST)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amzn-errortype", "ConcurrentModificationException")
            .body(Body::from(
                r#"{"__type":"ConcurrentModificationException","message":"Update table failed due to concurrent modifications."}"#,
            )),
        Fault::Reset | Fault::Delay(_) => unreachable!("not an answer"),
    }
    .unwrap()
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    parts: axum::http::request::Parts,
    body: bytes::Bytes,
) -> Response<Body> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = client.request(parts.method.clone(), format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if ![
            "host",
            "content-length",
            "connection",
            "expect",
            "transfer-encoding",
        ]
        .contains(&name.as_str())
        {
            request = request.header(name, value);
        }
    }
    let answer = request.body(body).send().await.unwrap();
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        // The length is kept: a HEAD's says the object's size.
        if !["connection", "transfer-encoding"].contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from(answer.bytes().await.unwrap()))
        .unwrap()
}

/// A worker that runs a failed task again at once (no backoff), for a quick test.
fn eager_worker(app: &TestApp) -> lethe::jobs::tasks::Worker {
    let config = lethe::jobs::runtime::RuntimeConfig {
        backoff: Duration::ZERO,
        ..app.state.runtime_config()
    };
    lethe::jobs::runtime::worker(&app.state.engine(), "w".to_owned(), &config)
}

/// Starts a job over every mapper and runs it to its end, calling `each` after every task.
async fn run_job(app: &TestApp, mut each: impl FnMut()) -> Value {
    let r = app.post("/v1/jobs", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job = r.body["job_id"].as_str().unwrap().to_owned();
    let worker = eager_worker(app);
    for _ in 0..600 {
        while worker.run_once().await.unwrap().is_some() {
            each();
        }
        let got = app.get(&format!("/v1/jobs/{job}")).await.body;
        let status = got["status"].as_str().unwrap().to_owned();
        if ![
            "queued",
            "finding",
            "forgetting",
            "verifying",
            "cleaning_up",
        ]
        .contains(&&*status)
        {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the job did not end");
}

/// AWS settings for clients that go through `proxy`: few waits, a small bucket limit.
pub(crate) fn through(proxy: String, attempts: u32) -> lethe::config::AwsConfig {
    lethe::config::AwsConfig {
        endpoint_url: Some(proxy),
        region: Some("us-east-1".into()),
        s3_force_path_style: true,
        max_attempts: attempts,
        initial_backoff_ms: 20,
        s3_max_concurrency_per_bucket: 8,
        ..Default::default()
    }
}

/// The value of a metric line, if rendered.
fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_job_through_s3_slowdowns_and_glue_throttles_completes_with_the_lake_exact(db: PgPool) {
    let (plain, s3, bucket) = new_versioned_bucket().await;
    let people = lake::people();
    let put = |key: String, body: Vec<u8>| {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        async move {
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from(body))
                .send()
                .await
                .unwrap();
        }
    };
    for o in &people {
        put(format!("people/{}", o.key), o.bytes.clone()).await;
    }
    for (key, _, bytes) in lake::events() {
        put(format!("events/{key}"), bytes).await;
    }
    let glue = aws_sdk_glue::Client::new(&plain);
    let database = glue_database(&glue, "throttle").await;
    let people_columns = [
        ("id", "bigint"),
        ("email", "string"),
        ("name", "string"),
        ("account", "decimal(12,2)"),
        ("contact", "struct<email:string,phone:string>"),
    ];
    let location = format!("s3://{bucket}/people/");
    let partitions = ("country", &lake::COUNTRIES[..]);
    glue_table(
        &glue,
        &database,
        "people",
        &location,
        &people_columns,
        partitions,
        false,
    )
    .await;
    let columns = [
        ("user", "struct<id:bigint,email:string>"),
        ("kind", "string"),
    ];
    let location = format!("s3://{bucket}/events/");
    let partitions = ("dt", &["2026-11-00", "2026-11-01"][..]);
    glue_table(
        &glue, &database, "events", &location, &columns, partitions, true,
    )
    .await;

    // Every 7th S3 request answered `503 SlowDown`, every 3rd Glue one throttled.
    let moto = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let (s3_seen, s3_faults) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (glue_seen, glue_faults) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let rule: Arc<Rule> = Arc::new({
        let (s3_seen, s3_faults) = (s3_seen.clone(), s3_faults.clone());
        let (glue_seen, glue_faults) = (glue_seen.clone(), glue_faults.clone());
        move |_: &Method, _: &Uri, headers: &HeaderMap| match service_of(headers) {
            "s3" if s3_seen.fetch_add(1, Ordering::SeqCst) % 7 == 6 => {
                s3_faults.fetch_add(1, Ordering::SeqCst);
                Some(Fault::SlowDown)
            }
            "glue" if glue_seen.fetch_add(1, Ordering::SeqCst) % 3 == 2 => {
                glue_faults.fetch_add(1, Ordering::SeqCst);
                Some(Fault::GlueThrottle)
            }
            _ => None,
        }
    });
    let aws = through(faulty_proxy(moto, rule).await, 8);
    let sdk = lethe::aws::sdk_config(&aws).await;
    let metrics = Arc::<Metrics>::default();
    let stores = Stores::with_roles(&sdk, true, metrics.clone(), &aws);
    let catalog = Arc::new(GlueCatalog::with_metrics(&sdk, metrics.clone()));
    let app = TestApp::with_stores(db.clone(), catalog, stores);
    for (id, table, columns, keys) in [
        (
            "people",
            "people",
            json!(["id", "email", "account", "contact.email"]),
            json!(["country"]),
        ),
        (
            "events",
            "events",
            json!(["user.id", "user.email"]),
            json!([]),
        ),
    ] {
        let body = json!({
            "catalog": {"provider": "glue", "database": database, "table": table},
            "format": if id == "events" { "json" } else { "parquet" },
            "columns": columns,
            "partition_keys": keys,
        });
        let r = app.put(&format!("/v1/data_mappers/{id}"), body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let (items, matches) = full_matrix();
    queue(&app, items).await;

    let gauge = format!("lethe_s3_concurrency_limit{{bucket=\"{bucket}\"}}");
    let mut lowest = u64::MAX;
    let started = std::time::Instant::now();
    let job = run_job(&app, || {
        if let Some(limit) = metric(&metrics.render(), &gauge) {
            lowest = lowest.min(limit);
        }
    })
    .await;
    let elapsed = started.elapsed();
    assert_eq!(job["status"], "completed", "{job}");

    // The lake: each object without exactly its matching rows, one version left.
    let mut expected = expected_people(&matches, "people/");
    let events_expected = expected_events(&events_matches(), "events/");
    expected.extend(events_expected.clone());
    for o in &people {
        let key = format!("people/{}", o.key);
        assert_eq!(
            read_ids(&s3, &bucket, &key).await,
            kept_ids(o, &matches),
            "{key}"
        );
        assert_eq!(versions(&s3, &bucket, &key).await.len(), 1, "{key}");
    }
    for (key, events, _) in lake::events() {
        let key = format!("events/{key}");
        let body = crate::e2e_jobs::object_bytes(&s3, &bucket, &key).await;
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        let kept: Vec<i64> = events
            .iter()
            .filter(|e| !events_matches().event(e))
            .map(|e| e.user_id)
            .collect();
        let read: Vec<i64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["user"]["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert_eq!(read, kept, "{key}");
        assert_eq!(versions(&s3, &bucket, &key).await.len(), 1, "{key}");
    }
    // The stats and the queue: as without throttling; no task ran twice.
    let stats = &job["stats"];
    assert_eq!(stats["objects_rewritten"], expected.len() as i64, "{stats}");
    assert_eq!(stats["objects_verified"], expected.len() as i64, "{stats}");
    assert_eq!(
        stats["rows_removed"],
        expected.values().sum::<i64>(),
        "{stats}"
    );
    assert_eq!(stats["versions_deleted"], expected.len() as i64, "{stats}");
    assert_eq!(stats["objects_forget_failed"], 0, "{stats}");
    assert_eq!(
        app.count("deletion_queue_item").await,
        0,
        "every item erased"
    );
    let (not_done, retried): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where state <> 'succeeded'), count(*) filter (where attempts > 1) from task",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        (not_done, retried),
        (0, 0),
        "the SDK absorbed every throttle"
    );

    // The faults happened, each was counted once, and the bucket's limit came down.
    let (s3_faults, glue_faults) = (
        s3_faults.load(Ordering::SeqCst),
        glue_faults.load(Ordering::SeqCst),
    );
    assert!(
        s3_faults > 10 && glue_faults > 0,
        "{s3_faults} {glue_faults}"
    );
    let text = metrics.render();
    assert_eq!(
        metric(&text, "lethe_aws_throttles_total{service=\"s3\"}"),
        Some(s3_faults)
    );
    assert_eq!(
        metric(&text, "lethe_aws_throttles_total{service=\"glue\"}"),
        Some(glue_faults)
    );
    assert!(lowest < 8, "the limit was lowered (to {lowest})");
    assert!(
        metric(&text, &gauge).is_some_and(|l| (1..=8).contains(&l)),
        "{text}"
    );
    eprintln!(
        "throttled job: {} S3 requests ({s3_faults} SlowDown), {} Glue requests ({glue_faults} throttled), lowest limit {lowest}, {elapsed:?}",
        s3_seen.load(Ordering::SeqCst),
        glue_seen.load(Ordering::SeqCst),
    );
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn what_s3_keeps_throttling_after_every_retry_fails_its_object_alone_and_keeps_its_subjects(
    db: PgPool,
) {
    let (_, s3, bucket) = new_versioned_bucket().await;
    for (key, body) in [
        ("t/a.json", "{\"id\": 1}\n{\"id\": 2}\n"),
        ("t/b.json", "{\"id\": 3}\n{\"id\": 4}\n"),
        ("t/c.json", "{\"id\": 5}\n{\"id\": 6}\n"),
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .unwrap();
    }
    // S3 throttles every upload of b (forget) and every read of c (find), for good.
    let moto = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let rule: Arc<Rule> = Arc::new(|method: &Method, uri: &Uri, _: &HeaderMap| {
        let path = uri.path();
        let b = method == Method::PUT && path.ends_with("/t/b.json");
        let c = method == Method::GET && path.ends_with("/t/c.json");
        (b || c).then_some(Fault::SlowDown)
    });
    let aws = through(faulty_proxy(moto, rule).await, 2);
    let sdk = lethe::aws::sdk_config(&aws).await;
    let metrics = Arc::<Metrics>::default();
    let stores = Stores::with_roles(&sdk, true, metrics.clone(), &aws);
    let app = TestApp::with_stores(db.clone(), Arc::new(GlueCatalog::new(&sdk)), stores);
    let mapper = json!({
        "catalog": {"provider": "path", "location": format!("s3://{bucket}/t/"), "format": "json"},
        "format": "json",
        "columns": ["id"],
    });
    let r = app.put("/v1/data_mappers/t", mapper).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    queue(
        &app,
        json!([{"match_id": 2}, {"match_id": 4}, {"match_id": 6}]),
    )
    .await;

    let job = run_job(&app, || {}).await;
    // The job went on without them: a rewritten, b and c failed with why.
    assert_eq!(job["status"], "forget_partially_failed", "{job}");
    let body = |key: &str| {
        let s3 = s3.clone();
        let (bucket, key) = (bucket.clone(), key.to_owned());
        async move { crate::e2e_jobs::object_bytes(&s3, &bucket, &key).await }
    };
    assert_eq!(body("t/a.json").await.as_ref(), b"{\"id\": 1}\n");
    assert_eq!(
        body("t/b.json").await.as_ref(),
        b"{\"id\": 3}\n{\"id\": 4}\n"
    );
    assert_eq!(
        body("t/c.json").await.as_ref(),
        b"{\"id\": 5}\n{\"id\": 6}\n"
    );
    let id = job["job_id"].as_str().unwrap();
    let events = app
        .get(&format!("/v1/jobs/{id}/events?page_size=1000"))
        .await;
    let failed: Vec<String> = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "object_failed")
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    for key in ["t/b.json", "t/c.json"] {
        assert!(
            failed
                .iter()
                .any(|m| m.contains(key) && m.contains("SlowDown")),
            "{key}: {failed:?}"
        );
    }
    // The mapper's subjects stay queued (a failed object may hold any of them), and no task
    // failed: each object's failure is recorded, the job advanced past it.
    assert_eq!(app.count("deletion_queue_item").await, 3);
    let states: Vec<(String, String, i32)> =
        sqlx::query_as("select kind, state, attempts from task order by kind")
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(
        states.iter().all(|(_, s, _)| s == "succeeded"),
        "{states:?}"
    );
    // Retried to the last attempt: the task's, each with the SDK's.
    assert!(
        states
            .iter()
            .any(|(k, _, a)| k == "forget.object" && *a == 5),
        "{states:?}"
    );
    let text = metrics.render();
    assert!(
        metric(&text, "lethe_aws_throttles_total{service=\"s3\"}").is_some_and(|n| n >= 20),
        "{text}"
    );
}
