//! `lethe bench job --objects N`: one real job over a generated local lake of N small
//! Parquet objects (1,000 rows each, the subject in every one), through `lethe serve` with
//! embedded workers on a scratch database (`lethe_bench_job`), driven by the REST API.
//! Prints the seconds and objects/s of each step from the job's `phase_started` /
//! `job_finished` events (find; then forget, verify and cleanup, which overlap since each
//! object moves through them on its own): the figure that shows whether the cost per
//! object grows with the size of a job.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::demo::{Api, demo_config, start_private_server};
use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;
use serde_json::{Value, json};

/// Rows per generated object; row 0 of every object is the subject.
const ROWS: i64 = 1000;
const SUBJECT: i64 = 42;

/// Writes `objects` Parquet files under `dir`, afresh (a job rewrites them).
fn generate(dir: &Path, objects: usize) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new("email", DataType::Utf8, false),
    ]));
    for n in 0..objects {
        let base = 1_000 + n as i64 * ROWS;
        let ids: Vec<i64> = (0..ROWS)
            .map(|r| if r == 0 { SUBJECT } else { base + r })
            .collect();
        let emails = StringArray::from_iter_values(ids.iter().map(|i| format!("u{i}@example.com")));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(ids)), Arc::new(emails)],
        )?;
        // 100 objects per directory keeps listings realistic.
        let sub = dir.join(format!("part={:05}", n / 100));
        std::fs::create_dir_all(&sub)?;
        let file = std::fs::File::create(sub.join(format!("object-{n:07}.parquet")))?;
        let mut w = ArrowWriter::try_new(file, schema.clone(), None)?;
        w.write(&batch)?;
        w.close()?;
    }
    Ok(())
}

/// How the benchmark's workers run.
#[derive(Debug, Clone, Copy)]
pub struct Workers {
    /// Worker loops in all.
    pub count: usize,
    /// As that many `lethe worker` processes of one loop each, rather than loops
    /// embedded in the server.
    pub processes: bool,
    /// SIGKILL one of the processes at random about this often (0.5–1.5×), and start
    /// another in its place: the fleet a spot reclaim or the OOM killer leaves.
    pub kill_every: Option<Duration>,
}

/// Runs the benchmark.
pub async fn run(
    config: Config,
    objects: usize,
    workers: Workers,
    dir: PathBuf,
) -> anyhow::Result<()> {
    let started = Instant::now();
    generate(&dir, objects)?;
    println!(
        "lake                    {objects} objects under {} ({:.1} s to prepare)",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    let mut config = demo_config(config, "lethe_bench_job").await?;
    let processes = workers.processes || workers.kill_every.is_some();
    config.jobs.workers = if processes { 0 } else { workers.count };
    config.local_lake_root = Some(std::fs::canonicalize(&dir)?);
    let (api, shutdown, server) = start_private_server(&config, "lethe-bench").await?;
    let outcome = if processes {
        let mut fleet = Fleet::start(&config, workers.count)?;
        let outcome = tokio::select! {
            outcome = drive(&api, &dir, objects, workers.count) => outcome,
            never = fleet.kill_at_random(workers.kill_every) => match never {},
        };
        fleet.report(&config).await?;
        outcome
    } else {
        drive(&api, &dir, objects, workers.count).await
    };
    shutdown.cancel();
    server.await??;
    outcome
}

/// `lethe worker` processes (this binary) of one worker loop each, over the benchmark's
/// database and lake; killed when dropped.
struct Fleet {
    command: std::process::Command,
    processes: Vec<std::process::Child>,
    kills: usize,
    since: Instant,
}

impl Fleet {
    fn start(config: &Config, count: usize) -> anyhow::Result<Self> {
        let mut command = std::process::Command::new(std::env::current_exe()?);
        command
            .arg("worker")
            .env("DATABASE_URL", config.database_url.expose())
            .env("LETHE_WORKERS", "1")
            .env("LETHE_WORKER_POLL_MS", config.jobs.poll_ms.to_string())
            .env("LETHE_LISTEN_ADDR", "127.0.0.1:0")
            .env("LETHE_SCHEDULER_INTERVAL_SECS", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(root) = &config.local_lake_root {
            command.env("LETHE_LOCAL_LAKE_ROOT", root);
        }
        let mut fleet = Fleet {
            command,
            processes: Vec::new(),
            kills: 0,
            since: Instant::now(),
        };
        for _ in 0..count.max(1) {
            let child = fleet.command.spawn()?;
            fleet.processes.push(child);
        }
        Ok(fleet)
    }

    /// Kills a process at random about every `every` and starts another; with no
    /// period, waits forever (the fleet runs undisturbed). Never returns.
    async fn kill_at_random(&mut self, every: Option<Duration>) -> std::convert::Infallible {
        let Some(every) = every else {
            return std::future::pending().await;
        };
        let mut rng = super::FaultRng::seeded();
        loop {
            let wait = every.mul_f64(0.5 + (rng.next_u64() % 1000) as f64 / 1000.0);
            tokio::time::sleep(wait).await;
            let n = (rng.next_u64() % self.processes.len() as u64) as usize;
            // SIGKILL, as the OOM killer or a spot reclaim would.
            let _ = self.processes[n].kill();
            let _ = self.processes[n].wait();
            self.kills += 1;
            match self.command.spawn() {
                Ok(child) => self.processes[n] = child,
                Err(e) => tracing::warn!(error = %e, "could not start a worker process"),
            }
        }
    }

    /// Prints the kills and what they cost: tasks re-run after their worker died.
    async fn report(&mut self, config: &Config) -> anyhow::Result<()> {
        let db = sqlx::PgPool::connect(config.database_url.expose()).await?;
        let (crashes, failed): (i64, i64) = sqlx::query_as(
            "select coalesce(sum(cardinality(crashed_on)), 0)::bigint,
                    count(*) filter (where state = 'failed')
             from task",
        )
        .fetch_one(&db)
        .await?;
        println!(
            "worker processes        {} killed in {:.0} s; tasks re-run after a lost worker: {crashes}; tasks failed: {failed}",
            self.kills,
            self.since.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn drive(api: &Api, dir: &Path, objects: usize, workers: usize) -> anyhow::Result<()> {
    use reqwest::Method;
    let mapper = json!({"catalog": {"provider": "path", "location": format!("file://{}", dir.display()),
                                    "partition_keys": ["part"]},
                        "format": "parquet", "columns": ["customer_id"],
                        // A local directory has no versions.
                        "allow_unversioned": true});
    api.call(Method::PUT, "/v1/data_mappers/bench", Some(mapper))
        .await?;
    api.call(
        Method::PATCH,
        "/v1/queue/matches",
        Some(json!({"matches": [{"match_id": SUBJECT}]})),
    )
    .await?;
    let job = api
        .call(Method::POST, "/v1/jobs", Some(json!({"dry_run": false})))
        .await?;
    let id = job["job_id"].as_str().unwrap_or_default().to_owned();
    let job = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let job = api
            .call(Method::GET, &format!("/v1/jobs/{id}"), None)
            .await?;
        let status = job["status"].as_str().unwrap_or_default();
        if !matches!(
            status,
            "queued" | "finding" | "forgetting" | "verifying" | "cleaning_up"
        ) {
            break job;
        }
    };
    let marks = phase_times(api, &id).await?;
    let at = |k: &str| marks.iter().find(|(s, _)| s == k).map(|(_, t)| *t);
    let start: Option<DateTime<Utc>> = job["started_at"].as_str().and_then(|t| t.parse().ok());
    println!(
        "job                     {} ({} workers): {}",
        id, workers, job["status"]
    );
    // Objects go through forget → verify → cleanup on their own, so the three overlap:
    // `forget` runs until every object has its forget outcome, `verify` and `cleanup`
    // are what is left after it.
    let steps = [
        ("find", start, at("forgetting")),
        ("forget", at("forgetting"), at("verifying")),
        ("verify (what is left)", at("verifying"), at("cleaning_up")),
        ("cleanup (what is left)", at("cleaning_up"), at("finished")),
        ("forget → cleanup", at("forgetting"), at("finished")),
        ("whole job", start, at("finished")),
    ];
    for (step, from, to) in steps {
        if let (Some(from), Some(to)) = (from, to) {
            let secs = (to - from).num_milliseconds().max(1) as f64 / 1000.0;
            println!(
                "{step:<24}{secs:>8.2} s {:>10.0} objects/s",
                objects as f64 / secs
            );
        }
    }
    println!("stats                   {}", job["stats"]);
    Ok(())
}

/// When each phase started and the job finished, from its events.
async fn phase_times(api: &Api, id: &str) -> anyhow::Result<Vec<(String, DateTime<Utc>)>> {
    let mut marks = Vec::new();
    let mut start: Option<i64> = None;
    loop {
        let path = match start {
            Some(s) => format!("/v1/jobs/{id}/events?page_size=1000&start_at={s}"),
            None => format!("/v1/jobs/{id}/events?page_size=1000"),
        };
        let page: Value = api.call(reqwest::Method::GET, &path, None).await?;
        for e in page["events"].as_array().into_iter().flatten() {
            let at: Option<DateTime<Utc>> = e["created_at"].as_str().and_then(|t| t.parse().ok());
            let name = match e["kind"].as_str() {
                Some("phase_started") => e["details"]["status"].as_str().map(str::to_owned),
                Some("job_finished") => Some("finished".to_owned()),
                _ => None,
            };
            if let (Some(name), Some(at)) = (name, at) {
                marks.push((name, at));
            }
        }
        match page["next_start"].as_i64() {
            Some(next) if Some(next) != start => start = Some(next),
            _ => break,
        }
    }
    Ok(marks)
}
