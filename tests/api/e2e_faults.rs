//! The faults production brings, end to end with real `lethe worker` processes over the
//! moto lake of `e2e_jobs` (the full matrix: Parquet and JSON Lines, a corrupt object, an
//! archived one, old versions): workers SIGKILLed at random and replaced, and every
//! database connection of the workers terminated again and again. Each job must end as it
//! ends without faults, the lake read back exactly, nothing lost or counted twice
//! (`assert_matrix_outcome`). The random schedule is seeded (`LETHE_FAULT_SEED`) and
//! printed, so a failure can be replayed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::e2e_glue::{KillOnDrop, database_url, endpoint};
use crate::e2e_jobs::{assert_matrix_outcome, glue_lake, queue_full_matrix};
use lethe::storage::Stores;

/// How long a faulty job may take before the test gives up on it.
const PATIENCE: Duration = Duration::from_secs(240);
/// The application name the workers connect with (the terminator picks them by it).
const APP_NAME: &str = "lethe-fault-worker";

/// A small deterministic generator (xorshift64*), seeded per run.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let seed = std::env::var("LETHE_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            .max(1);
        eprintln!("LETHE_FAULT_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.next() % (to - from))
    }
}

/// `lethe worker` processes over the test's database, replaced when they die.
struct Fleet {
    db_url: String,
    workers: Vec<KillOnDrop>,
    started: usize,
}

impl Fleet {
    fn new(db: &str, size: usize) -> Self {
        let mut fleet = Fleet {
            db_url: format!("{db}?application_name={APP_NAME}"),
            workers: Vec::new(),
            started: 0,
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
            .env("LETHE_AWS_ENDPOINT_URL", endpoint())
            .env("LETHE_AWS_REGION", "us-east-1")
            .env("LETHE_S3_FORCE_PATH_STYLE", "true")
            .env("LETHE_LISTEN_ADDR", "127.0.0.1:0")
            .env("LETHE_WORKERS", "1")
            .env("LETHE_WORKER_POLL_MS", "50")
            .env("LETHE_TASK_LEASE_SECS", "3")
            .env("LETHE_SCHEDULER_INTERVAL_SECS", "1")
            .env("LETHE_LOG", "error")
            .env_remove("LETHE_JWT_SECRET")
            .env_remove("LETHE_CONFIG_FILE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
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
            if self.workers[n].0.try_wait().ok().flatten().is_some() {
                let fresh = self.spawn();
                self.workers[n] = fresh;
            }
        }
    }
}

async fn job_is_over(db: &PgPool, job: &str) -> bool {
    let status: String = sqlx::query_scalar("select status from job where job_id = $1::uuid")
        .bind(job)
        .fetch_one(db)
        .await
        .unwrap();
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
    let mut rng = Rng::seeded();
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
        let victim = rng.next() as usize;
        fleet.kill_and_replace(victim);
        kills += 1;
    }
    drop(fleet);
    eprintln!("{kills} workers killed in {:?}", since.elapsed());
    assert!(kills >= 1, "no fault was injected");
    let stats = assert_matrix_outcome(&db, &lake, &e, &job, "workers killed").await;
    assert_no_poison(&db, &job).await;
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
    let mut rng = Rng::seeded();
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
        let n: i64 = sqlx::query_scalar(
            "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
              where datname = current_database() and application_name = $1) t",
        )
        .bind(APP_NAME)
        .fetch_one(&db)
        .await
        .unwrap();
        terminated += n;
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
}
