//! The faults production brings, end to end with real `lethe worker` processes over the
//! moto lake of `e2e_jobs` (the full matrix: Parquet and JSON Lines, a corrupt object, an
//! archived one, old versions): workers SIGKILLed at random and replaced, every database
//! connection of the workers terminated again and again, Postgres itself crashed or
//! restarted (a private cluster, `pg_cluster`), and all of these at once with S3 and Glue
//! behind a proxy that throttles, drops connections and delays. Each job must end as it
//! ends without faults, the lake read back exactly, nothing lost or counted twice
//! (`assert_matrix_outcome`), and every fault must have been injected (counted). The
//! random schedule is seeded (`LETHE_FAULT_SEED`) and printed, so a failure can be
//! replayed; `LETHE_FAULT_LOG_DIR` keeps each process's log there.

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::json;
use sqlx::PgPool;

use crate::e2e_glue::{KillOnDrop, database_url, endpoint};
use crate::e2e_jobs::{assert_matrix_outcome, glue_lake, queue_full_matrix};
use crate::e2e_throttle::{Fault, Rule, faulty_proxy, service_of};
use crate::pg_cluster::{PgCluster, Stop};
use lethe::bench::FaultRng;
use lethe::storage::Stores;

/// How long a faulty job may take before the test gives up on it.
const PATIENCE: Duration = Duration::from_secs(240);
/// The application name the workers connect with (the terminator picks them by it).
const APP_NAME: &str = "lethe-fault-worker";

/// Where a process of the test writes its log: `LETHE_FAULT_LOG_DIR/<name>.log` when that
/// is set (to read after a failure), else nowhere.
fn log_to(name: &str) -> Stdio {
    match std::env::var_os("LETHE_FAULT_LOG_DIR") {
        Some(dir) => {
            let path = std::path::Path::new(&dir).join(format!("{name}.log"));
            std::fs::File::create(path).map_or_else(|_| Stdio::null(), Stdio::from)
        }
        None => Stdio::null(),
    }
}

/// `lethe worker` processes over the test's database, replaced when they die.
struct Fleet {
    db_url: String,
    /// Where the workers reach S3 and Glue (moto, or a faulty proxy in front of it).
    aws_endpoint: String,
    workers: Vec<KillOnDrop>,
    started: usize,
    /// Workers that exited without being killed.
    exited: usize,
}

impl Fleet {
    fn new(db: &str, size: usize) -> Self {
        Self::through(db, size, endpoint())
    }

    /// A fleet that reaches S3 and Glue at `aws_endpoint`.
    fn through(db: &str, size: usize, aws_endpoint: String) -> Self {
        let mut fleet = Fleet {
            db_url: format!("{db}?application_name={APP_NAME}"),
            aws_endpoint,
            workers: Vec::new(),
            started: 0,
            exited: 0,
        };
        for _ in 0..size {
            let worker = fleet.spawn();
            fleet.workers.push(worker);
        }
        fleet
    }

    fn spawn(&mut self) -> KillOnDrop {
        self.started += 1;
        let child: Child = Command::new(env!("CARGO_BIN_EXE_lethe"))
            .arg("worker")
            .env("DATABASE_URL", &self.db_url)
            .env("LETHE_AWS_ENDPOINT_URL", &self.aws_endpoint)
            .env("LETHE_AWS_REGION", "us-east-1")
            // Quick retries, enough of them that no request runs out under the proxy's
            // faults (a request that does fails its object, and the outcome with it).
            .env("LETHE_AWS_MAX_ATTEMPTS", "10")
            .env("LETHE_AWS_INITIAL_BACKOFF_MS", "20")
            .env("LETHE_S3_FORCE_PATH_STYLE", "true")
            .env("LETHE_LISTEN_ADDR", "127.0.0.1:0")
            .env("LETHE_WORKERS", "1")
            .env("LETHE_WORKER_POLL_MS", "50")
            .env("LETHE_TASK_LEASE_SECS", "3")
            // Kills every 50-1200 ms land on the same task many times in a row when a
            // loaded machine slows each worker's start and each task: the crash budget
            // (10 by default) would fail it as a poison task, which is not what these
            // tests are about (they assert no task is failed so).
            .env("LETHE_TASK_MAX_CRASHES", "200")
            .env("LETHE_SCHEDULER_INTERVAL_SECS", "1")
            .env("LETHE_LOG", "warn")
            .env_remove("LETHE_JWT_SECRET")
            .env_remove("LETHE_CONFIG_FILE")
            .stdout(Stdio::null())
            .stderr(log_to(&format!("worker-{}", self.started)))
            .spawn()
            .expect("lethe worker starts");
        KillOnDrop(child)
    }

    /// SIGKILLs worker `n` (as the OOM killer or a spot reclaim would) and starts another.
    fn kill_and_replace(&mut self, n: usize) {
        let n = n % self.workers.len();
        let fresh = self.spawn();
        // Dropping kills (SIGKILL) and reaps it.
        drop(std::mem::replace(&mut self.workers[n], fresh));
    }

    /// Starts a new worker in place of each one that exited by itself (a worker whose
    /// database went away while it started may give up).
    fn replace_exited(&mut self) {
        for n in 0..self.workers.len() {
            if let Some(status) = self.workers[n].0.try_wait().ok().flatten() {
                eprintln!("a worker exited by itself: {status}");
                self.exited += 1;
                let fresh = self.spawn();
                self.workers[n] = fresh;
            }
        }
    }
}

/// How long the test's own queries wait for a database that is restarting.
const DB_PATIENCE: Duration = Duration::from_secs(60);

/// Runs `query` until the database answers it (it may be down or restarting).
async fn patiently<T, F, Fut>(what: &str, mut query: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = sqlx::Result<T>>,
{
    let since = Instant::now();
    loop {
        match query().await {
            Ok(answer) => return answer,
            Err(e) if since.elapsed() < DB_PATIENCE => {
                eprintln!("{what}: {e}; again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{what}: no answer in {DB_PATIENCE:?}: {e}"),
        }
    }
}

async fn job_is_over(db: &PgPool, job: &str) -> bool {
    let status: String = patiently("job status", || {
        sqlx::query_scalar("select status from job where job_id = $1::uuid")
            .bind(job)
            .fetch_one(db)
    })
    .await;
    !matches!(
        status.as_str(),
        "queued" | "finding" | "forgetting" | "verifying" | "cleaning_up"
    )
}

/// Starts a real job over the full matrix; returns the lake, what it must come to and the
/// job's id.
async fn start(
    db: &PgPool,
) -> (
    crate::e2e_jobs::GlueLake,
    crate::e2e_jobs::MatrixExpectation,
    String,
) {
    let lake = glue_lake(db.clone(), |sdk| Stores::new(sdk, true)).await;
    let e = queue_full_matrix(&lake, true).await;
    let r = lake.app.post("/v1/jobs", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let job = r.body["job_id"].as_str().unwrap().to_owned();
    (lake, e, job)
}

/// Each record was committed once, whatever was redone: one `object_rewritten` event
/// per rewritten object, `versions_deleted` events that name each old version once
/// ("deleted N old version(s) of …", N summing to the versions there were), one
/// `object_failed` (the corrupt object), one `job_finished`.
async fn assert_recorded_once(db: &PgPool, e: &crate::e2e_jobs::MatrixExpectation, job: &str) {
    let events: Vec<(String, String)> =
        sqlx::query_as("select kind, message from job_event where job_id = $1::uuid")
            .bind(job)
            .fetch_all(db)
            .await
            .unwrap();
    let of = |kind: &'static str| events.iter().filter(move |(k, _)| k == kind);
    assert_eq!(
        of("object_rewritten").count(),
        e.rewritten.len(),
        "{events:?}"
    );
    let deleted: i64 = of("versions_deleted")
        .map(|(_, m)| {
            let n = m.strip_prefix("deleted ").and_then(|m| m.split(' ').next());
            n.and_then(|n| n.parse::<i64>().ok())
                .unwrap_or_else(|| panic!("{m}"))
        })
        .sum();
    assert_eq!(deleted, e.old_versions, "{events:?}");
    assert_eq!(of("object_failed").count(), 1, "{events:?}");
    assert_eq!(of("job_finished").count(), 1, "{events:?}");
}

/// Terminates every database connection of the workers; returns how many there were.
async fn terminate_workers_connections(db: &PgPool) -> i64 {
    patiently("pg_terminate_backend", || {
        sqlx::query_scalar(
            "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
              where datname = current_database() and application_name = $1) t",
        )
        .bind(APP_NAME)
        .fetch_one(db)
    })
    .await
}

/// No task was failed as a poison task: every death was survived.
async fn assert_no_poison(db: &PgPool, job: &str) {
    let poison: i64 = sqlx::query_scalar(
        "select count(*) from job_event where job_id = $1::uuid and kind = 'task_poison'",
    )
    .bind(job)
    .fetch_one(db)
    .await
    .unwrap();
    assert_eq!(poison, 0);
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_job_ends_exactly_while_its_worker_processes_are_killed_at_random_and_replaced(
    db: PgPool,
) {
    let (lake, e, job) = start(&db).await;
    let mut rng = FaultRng::seeded();
    let mut fleet = Fleet::new(&database_url(&db).await, 2);
    let since = Instant::now();
    let mut kills = 0;
    while !job_is_over(&db, &job).await {
        assert!(
            since.elapsed() < PATIENCE,
            "the job did not end after {kills} kills"
        );
        tokio::time::sleep(rng.millis(50, 1200)).await;
        fleet.replace_exited();
        let victim = rng.next_u64() as usize;
        fleet.kill_and_replace(victim);
        kills += 1;
    }
    drop(fleet);
    eprintln!("{kills} workers killed in {:?}", since.elapsed());
    assert!(kills >= 1, "no fault was injected");
    let stats = assert_matrix_outcome(&db, &lake, &e, &job, "workers killed").await;
    assert_no_poison(&db, &job).await;
    assert_recorded_once(&db, &e, &job).await;
    // Deaths cost no attempts: no task spent more than its retryable failures would.
    let lost: i64 = sqlx::query_scalar(
        "select coalesce(sum(cardinality(crashed_on)), 0) from task where job_id = $1::uuid",
    )
    .bind(&job)
    .fetch_one(&db)
    .await
    .unwrap();
    eprintln!("tasks re-run after a lost worker: {lost}; stats {stats}");
}

#[sqlx::test(migrator = "lethe::db::MIGRATOR")]
async fn a_job_ends_exactly_while_its_workers_database_connections_are_terminated(db: PgPool) {
    let (lake, e, job) = start(&db).await;
    let mut rng = FaultRng::seeded();
    let mut fleet = Fleet::new(&database_url(&db).await, 2);
    let since = Instant::now();
    let (mut rounds, mut terminated) = (0, 0i64);
    while !job_is_over(&db, &job).await {
        assert!(
            since.elapsed() < PATIENCE,
            "the job did not end after {rounds} rounds"
        );
        tokio::time::sleep(rng.millis(100, 1500)).await;
        fleet.replace_exited();
        terminated += terminate_workers_connections(&db).await;
        rounds += 1;
    }
    drop(fleet);
    eprintln!(
        "{terminated} connections terminated in {rounds} rounds, {:?}",
        since.elapsed()
    );
    assert!(terminated >= 1, "no connection was terminated");
    assert_matrix_outcome(&db, &lake, &e, &job, "connections terminated").await;
    assert_no_poison(&db, &job).await;
    assert_recorded_once(&db, &e, &job).await;
}

/// Workers that are still running (none exited by itself since the last look).
fn assert_every_worker_runs(fleet: &mut Fleet) {
    for worker in &mut fleet.workers {
        let exited = worker.0.try_wait().unwrap();
        assert!(exited.is_none(), "a worker exited by itself: {exited:?}");
    }
}

/// A crash (`immediate`) or an orderly restart (`fast`), alternately.
fn stop_mode(restarts: usize) -> Stop {
    if restarts.is_multiple_of(2) {
        Stop::Immediate
    } else {
        Stop::Fast
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_ends_exactly_while_postgres_restarts_again_and_again() {
    let cluster = PgCluster::start().await;
    let (db, url) = cluster.database("lethe_restarts").await;
    let (lake, e, job) = start(&db).await;
    let mut rng = FaultRng::seeded();
    let mut fleet = Fleet::new(&url, 2);
    let since = Instant::now();
    let (mut restarts, mut down) = (0, Duration::ZERO);
    while !job_is_over(&db, &job).await {
        assert!(
            since.elapsed() < PATIENCE,
            "the job did not end after {restarts} restarts"
        );
        assert_every_worker_runs(&mut fleet);
        tokio::time::sleep(rng.millis(300, 1500)).await;
        let away = rng.millis(500, 2000);
        cluster.restart(stop_mode(restarts), away).await;
        restarts += 1;
        down += away;
    }
    // Every worker lived through every restart.
    assert_every_worker_runs(&mut fleet);
    drop(fleet);
    eprintln!(
        "{restarts} Postgres restarts (crash and fast, alternately; {down:?} down in all) in {:?}",
        since.elapsed()
    );
    assert!(restarts >= 1, "Postgres was never restarted");
    let stats = assert_matrix_outcome(&db, &lake, &e, &job, "Postgres restarted").await;
    assert_no_poison(&db, &job).await;
    assert_recorded_once(&db, &e, &job).await;
    // Postgres going away is nobody's failure: no task spent a second attempt on it (the
    // interrupted ones ran again as the same attempt, counted as crashes).
    let spent: Vec<(String, i32, Option<String>)> = sqlx::query_as(
        "select kind, attempts, last_error from task where job_id = $1::uuid and attempts > 1",
    )
    .bind(&job)
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(spent.is_empty(), "attempts spent on a restart: {spent:?}");
    eprintln!("stats {stats}");
}

/// `GET /health/ready` of the `lethe serve` at `base`, answered within `WAIT`.
async fn ready(http: &reqwest::Client, base: &str) -> reqwest::Response {
    /// Longer than the server's own bound on its readiness ping, well under a probe's
    /// patience: an answer, not a hang.
    const WAIT: Duration = Duration::from_secs(3);
    http.get(format!("{base}/health/ready"))
        .timeout(WAIT)
        .send()
        .await
        .unwrap_or_else(|e| panic!("/health/ready gave no answer within {WAIT:?}: {e}"))
}

/// Waits (up to a minute) until `lethe serve` says it is ready.
async fn until_ready(http: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{base}/health/ready")).send().await
            && r.status() == reqwest::StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("lethe serve did not become ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lethe_serve_is_not_ready_while_its_database_is_away_and_ready_again_after() {
    let cluster = PgCluster::start().await;
    let (_db, url) = cluster.database("lethe_ready").await;
    let port = crate::e2e_glue::free_port();
    let mut server = KillOnDrop(
        crate::e2e_glue::lethe(&url)
            .arg("serve")
            .env("LETHE_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("LETHE_WORKERS", "0")
            .env("LETHE_SCHEDULER_INTERVAL_SECS", "0")
            .stdout(Stdio::null())
            .stderr(log_to("serve"))
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    until_ready(&http, &base).await;
    assert_eq!(ready(&http, &base).await.status(), 200);

    for (n, mode) in [Stop::Immediate, Stop::Fast].into_iter().enumerate() {
        cluster.stop_server(mode).await;
        // Twice: the first look may find a pooled connection that died, the second one
        // asks for a new connection that cannot be made.
        for _ in 0..2 {
            let r = ready(&http, &base).await;
            assert_eq!(r.status(), 503, "{mode:?}");
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            let problem: serde_json::Value = r.json().await.unwrap();
            assert_eq!(problem["status"], 503, "{problem}");
            assert!(
                problem["detail"].as_str().unwrap().contains("database"),
                "{problem}"
            );
            // Alive all the same: restarting it would not bring the database back.
            let live = http
                .get(format!("{base}/health/live"))
                .send()
                .await
                .unwrap();
            assert_eq!(live.status(), 200, "{mode:?}");
        }
        cluster.start_server().await;
        until_ready(&http, &base).await;
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "lethe serve exited after restart {n}"
        );
    }
}

/// Faults the proxy injected, by kind.
#[derive(Default)]
struct ProxyFaults {
    s3: AtomicU64,
    glue: AtomicU64,
    slowdowns: AtomicU64,
    glue_throttles: AtomicU64,
    resets: AtomicU64,
    delays: AtomicU64,
}

/// Every 12th S3 request answered `503 SlowDown` and every 3rd Glue request throttled,
/// every 37th S3 and 7th Glue request's connection closed unanswered (each from a
/// seeded offset), and a quarter of the rest delayed 0–50 ms. Periodic rather than
/// drawn, so each kind surely happens in a job's hundreds of S3 and dozens of Glue
/// requests.
fn chaos_rule(mut rng: FaultRng, counts: Arc<ProxyFaults>) -> Arc<Rule> {
    let (slow_at, s3_reset_at, glue_reset_at) = (
        rng.next_u64() % 12,
        rng.next_u64() % 37,
        1 + rng.next_u64() % 6,
    );
    let rng = Mutex::new(rng);
    Arc::new(move |_: &Method, _: &Uri, headers: &HeaderMap| {
        let fault = match service_of(headers) {
            "s3" => {
                let n = counts.s3.fetch_add(1, Ordering::SeqCst);
                if n % 12 == slow_at {
                    Some(Fault::SlowDown)
                } else if n % 37 == s3_reset_at {
                    Some(Fault::Reset)
                } else {
                    None
                }
            }
            "glue" => {
                let n = counts.glue.fetch_add(1, Ordering::SeqCst);
                if n.is_multiple_of(3) {
                    Some(Fault::GlueThrottle)
                } else if n % 7 == glue_reset_at {
                    Some(Fault::Reset)
                } else {
                    None
                }
            }
            _ => return None,
        };
        let fault = fault.or_else(|| {
            let mut rng = rng.lock().unwrap();
            rng.next_u64()
                .is_multiple_of(4)
                .then(|| Fault::Delay(rng.millis(0, 50)))
        });
        let counter = match fault? {
            Fault::SlowDown => &counts.slowdowns,
            Fault::GlueThrottle | Fault::GlueConcurrent => &counts.glue_throttles,
            Fault::Reset => &counts.resets,
            Fault::Delay(_) => &counts.delays,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        fault
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_ends_exactly_under_every_fault_at_once() {
    let cluster = PgCluster::start().await;
    let (db, url) = cluster.database("lethe_chaos").await;
    let (lake, e, job) = start(&db).await;
    let mut rng = FaultRng::seeded();
    let proxied = Arc::new(ProxyFaults::default());
    let proxy = faulty_proxy(
        endpoint(),
        chaos_rule(FaultRng::with_seed(rng.next_u64()), proxied.clone()),
    )
    .await;
    let mut fleet = Fleet::through(&url, 2, proxy);
    let since = Instant::now();
    let (mut kills, mut terminated, mut restarts) = (0, 0i64, 0);
    // Round by round, a kill, a termination of every worker connection, a Postgres
    // restart (crash and fast alternately), a kill, at random intervals: the first three
    // rounds inject each kind.
    let mut round = 0;
    while !job_is_over(&db, &job).await {
        assert!(
            since.elapsed() < PATIENCE,
            "the job did not end after {round} rounds"
        );
        tokio::time::sleep(rng.millis(100, 1200)).await;
        fleet.replace_exited();
        match round % 4 {
            0 | 3 => {
                let victim = rng.next_u64() as usize;
                fleet.kill_and_replace(victim);
                kills += 1;
            }
            1 => terminated += terminate_workers_connections(&db).await,
            _ => {
                cluster
                    .restart(stop_mode(restarts), rng.millis(500, 2000))
                    .await;
                restarts += 1;
            }
        }
        round += 1;
    }
    let exited = fleet.exited;
    drop(fleet);
    let count = |c: &AtomicU64| c.load(Ordering::SeqCst);
    let (slowdowns, throttles, resets, delays) = (
        count(&proxied.slowdowns),
        count(&proxied.glue_throttles),
        count(&proxied.resets),
        count(&proxied.delays),
    );
    eprintln!(
        "in {:?}: {kills} workers killed, {terminated} connections terminated, {restarts} Postgres restarts; \
         of {} S3 and {} Glue requests, {slowdowns} SlowDown, {throttles} Glue throttled, {resets} connections \
         closed unanswered, {delays} delayed; {exited} workers exited by themselves",
        since.elapsed(),
        count(&proxied.s3),
        count(&proxied.glue),
    );
    for (fault, n) in [
        ("worker kills", kills as u64),
        ("terminated connections", terminated as u64),
        ("Postgres restarts", restarts as u64),
        ("S3 SlowDowns", slowdowns),
        ("Glue throttles", throttles),
        ("connections closed unanswered", resets),
        ("delayed requests", delays),
    ] {
        assert!(n >= 1, "no {fault} were injected");
    }
    let stats = assert_matrix_outcome(&db, &lake, &e, &job, "every fault at once").await;
    assert_no_poison(&db, &job).await;
    assert_recorded_once(&db, &e, &job).await;
    eprintln!("stats {stats}");
}
