//! `lethe demo`: the whole main job on one machine with only Postgres at hand.
//!
//! It generates a small partitioned lake on local disk (Parquet customers, gzip JSON Lines
//! events; `file://` storage, `path` catalog), starts the real server with embedded
//! workers on a loopback port over a scratch database (`lethe_demo`, recreated each run),
//! and then acts as a client would, through the REST API only: registers two data mappers,
//! queues three subjects, starts a job, follows its Server-Sent Events to the end, reads
//! the report — and finally checks the lake with an independent reader
//! ([`lake::DemoLake::check`]). Any difference is an error (non-zero exit). It migrates as
//! the configured role and serves as a runtime-role login, as a deployment does, and ends
//! with the audit chain checked against the job's signed checkpoint (`roles`).

pub mod lake;
mod roles;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use sqlx::migrate::MigrateDatabase;
use tokio_util::sync::CancellationToken;

use crate::api::auth::{Role, mint_hs256};
use crate::app::{AppState, hs256_secret};
use crate::config::{Config, Secret};
use crate::serve::serve;
use lake::DemoLake;

/// What `lethe demo` was asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where to write the lake; a fresh temporary directory when None.
    pub dir: Option<PathBuf>,
    /// Scratch database on the configured Postgres server (dropped and created again).
    pub database: String,
    /// Keep the generated lake (a temporary one is removed at the end otherwise).
    pub keep: bool,
}

/// Runs the demo; returns an error when any step or the independent check fails.
pub async fn run(config: Config, options: DemoOptions) -> anyhow::Result<()> {
    let (root, temp) = match &options.dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new().prefix("lethe-demo-").tempdir()?;
            (temp.path().to_owned(), Some(temp))
        }
    };
    anyhow::ensure!(
        !root.exists() || std::fs::read_dir(&root)?.next().is_none(),
        "--dir {} is not empty",
        root.display()
    );
    let lake = generate(&root)?;
    let mut config = demo_config(config, &options.database).await?;
    // The demo's server reads and rewrites only its own lake.
    config.local_lake_root = Some(std::fs::canonicalize(&lake.root)?);
    let config = roles::split(config).await?;
    let (api, shutdown, server) = start_private_server(&config, "lethe-demo").await?;
    say(&format!(
        "2. started lethe serve on {} with 2 embedded workers (database {:?})",
        api.base, options.database
    ));
    let mut outcome = drive(&api, &lake).await;
    if outcome.is_ok() {
        outcome = roles::check_audit(&api, &config).await;
    }
    shutdown.cancel();
    server.await??;
    outcome?;
    say(
        "demo passed: the job completed, the lake holds exactly what it should, the audit trail is intact",
    );
    match temp {
        Some(t) if options.keep => say(&format!("   lake kept at {}", t.keep().display())),
        Some(_) => {}
        None => say(&format!("   lake kept at {}", root.display())),
    }
    Ok(())
}

/// The running `serve` of the demo or a benchmark: its client (an operator's token signed
/// with the scratch database's own key), the token that stops it and its task.
pub(crate) type PrivateServer = (
    Api,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

/// Starts `serve` with `config` on a loopback port.
pub(crate) async fn start_private_server(
    config: &Config,
    subject: &str,
) -> anyhow::Result<PrivateServer> {
    let state = AppState::build(config.clone()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let secret = hs256_secret(&state.db, config).await?;
    let token = mint_hs256(
        &secret,
        &config.auth,
        subject,
        &[Role::Operator],
        chrono::Duration::hours(12),
    )?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(state, listener, shutdown.clone()));
    let api = Api {
        http: reqwest::Client::new(),
        base,
        token,
    };
    Ok((api, shutdown, server))
}

fn say(line: &str) {
    println!("{line}");
}

fn generate(root: &std::path::Path) -> anyhow::Result<DemoLake> {
    let bar = ProgressBar::new(DemoLake::FILES as u64).with_style(
        ProgressStyle::with_template("   {bar:30} {pos}/{len} files {msg}")
            .expect("a valid template"),
    );
    let lake = DemoLake::generate(root, |path| {
        bar.set_message(path.display().to_string());
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    say(&format!(
        "1. generated a lake at {}: customers/country=*/ (Parquet, 120,000 rows), \
         events/dt=*/ (gzip JSON Lines, 30,000 events); {} rows belong to the 3 demo subjects",
        root.display(),
        lake.subject_rows()
    ));
    Ok(lake)
}

/// The configuration with a scratch database, quiet logs and a fast engine.
pub(crate) async fn demo_config(mut config: Config, database: &str) -> anyhow::Result<Config> {
    let url = with_database(config.database_url.expose(), database)?;
    if sqlx::Postgres::database_exists(&url)
        .await
        .context("cannot reach Postgres at DATABASE_URL")?
    {
        sqlx::Postgres::force_drop_database(&url).await?;
    }
    config.database_url = Secret::new(url);
    config.jobs.workers = 2;
    config.jobs.poll_ms = 50;
    config.jobs.scheduler_interval_secs = 1;
    config.grant_reconcile_interval_secs = 0;
    // The demo's server is private to it: it signs its own HS256 token with the key it
    // generates in the scratch database, whatever the configured identity provider.
    config.auth.jwt_public_key_pem = None;
    config.auth.jwks = None;
    config.auth.jwt_secret = None;
    // No AWS call is made; a fixed region keeps the SDK from probing for one.
    config.aws.region.get_or_insert_with(|| "us-east-1".into());
    Ok(config)
}

/// Prefixes a scratch database name must have: the demo drops and recreates it, so it
/// may never be a real one (`lethe demo --database lethe` would drop the service's).
const SCRATCH_PREFIXES: [&str; 2] = ["lethe_demo", "lethe_bench_"];

/// `url` with its database name replaced by a scratch database's.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !database.is_empty()
            && database
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "the demo database name must be letters, digits and underscores"
    );
    anyhow::ensure!(
        SCRATCH_PREFIXES.iter().any(|p| database.starts_with(p)),
        "the demo drops and recreates its database, so its name must start with lethe_demo (got {database:?})"
    );
    let scheme_end = url.find("://").context("DATABASE_URL has no scheme")? + 3;
    let (head, query) = match url.find('?') {
        Some(q) => url.split_at(q),
        None => (url, ""),
    };
    let host_end = head[scheme_end..]
        .find('/')
        .map_or(head.len(), |i| scheme_end + i);
    anyhow::ensure!(
        head.get(host_end + 1..) != Some(database),
        "{database:?} is the database DATABASE_URL names: the demo will not drop it"
    );
    Ok(format!("{}/{database}{query}", &head[..host_end]))
}

/// A minimal client of the REST API.
pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token: String,
}

impl Api {
    /// A GET whose body is text (compact JWS, one per line).
    pub(crate) async fn text(&self, path: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(status.is_success(), "GET {path} answered {status}: {text}");
        Ok(text)
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "{method} {path} answered {status}: {text}"
        );
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }
}

async fn drive(api: &Api, lake: &DemoLake) -> anyhow::Result<()> {
    use reqwest::Method;
    set_up(api, lake).await?;
    let job = api.call(Method::POST, "/v1/jobs", Some(json!({}))).await?;
    let job_id = job["job_id"].as_str().context("job_id")?.to_owned();
    say(&format!("5. started job {job_id}; its events, live:"));
    follow_events(api, &job_id).await?;
    let job = api
        .call(Method::GET, &format!("/v1/jobs/{job_id}"), None)
        .await?;
    let report = api
        .call(Method::GET, &format!("/v1/jobs/{job_id}/report"), None)
        .await?;
    summarize(&job, &report, &lake.root.to_string_lossy());
    anyhow::ensure!(
        job["status"] == "completed",
        "the job ended {}",
        job["status"]
    );
    let removed = job["stats"]["rows_removed"].as_u64().unwrap_or_default();
    anyhow::ensure!(
        removed as usize == lake.subject_rows(),
        "the job removed {removed} rows; the subjects had {}",
        lake.subject_rows()
    );
    let queue = api.call(Method::GET, "/v1/queue", None).await?;
    let left = queue["matches"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(left == 0, "{left} items are still queued");
    let checked = lake.check()?;
    say(&format!(
        "7. independent check (plain Arrow Parquet reader, gzip line reader): {} files read, \
         {} rewritten, the other {} byte-identical; no row of a subject left; all {} other rows \
         present and in order; queue empty",
        checked.files,
        checked.files_changed,
        checked.files - checked.files_changed,
        checked.rows_left
    ));
    Ok(())
}

/// Registers the lake's two data mappers and queues its subjects.
async fn set_up(api: &Api, lake: &DemoLake) -> anyhow::Result<()> {
    use reqwest::Method;
    let root = lake.root.display();
    for (id, body) in [
        (
            "customers",
            json!({"catalog": {"provider": "path", "location": format!("file://{root}/customers"),
                               "partition_keys": ["country"]},
                   "format": "parquet", "columns": ["customer_id", "email"],
                   "allow_unversioned": true}),
        ),
        (
            "events",
            json!({"catalog": {"provider": "path", "location": format!("file://{root}/events"),
                               "partition_keys": ["dt"]},
                   "format": "json", "columns": ["user.id", "user.email"],
                   "allow_unversioned": true}),
        ),
    ] {
        api.call(Method::PUT, &format!("/v1/data_mappers/{id}"), Some(body))
            .await?;
    }
    say("3. registered data mappers `customers` (Parquet) and `events` (JSON Lines)");
    let matches: Vec<Value> = lake
        .subjects
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let id = if s.by_email {
                json!(s.email)
            } else {
                json!(s.customer_id)
            };
            json!({"match_id": id, "reference": format!("DEMO-{}", n + 1)})
        })
        .collect();
    api.call(
        Method::PATCH,
        "/v1/queue/matches",
        Some(json!({ "matches": matches })),
    )
    .await?;
    say("4. queued 3 subjects: two customer ids and one email, for every data mapper");
    Ok(())
}

/// Streams the job's events (`text/event-stream`) until the job ends.
async fn follow_events(api: &Api, job_id: &str) -> anyhow::Result<()> {
    let mut response = api
        .http
        .get(format!("{}/v1/jobs/{job_id}/events", api.base))
        .bearer_auth(&api.token)
        .header("accept", "text/event-stream")
        .timeout(Duration::from_secs(600))
        .send()
        .await?
        .error_for_status()?;
    let spinner = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("   {spinner} {elapsed} {msg}").expect("a valid template"),
    );
    spinner.enable_steady_tick(Duration::from_millis(100));
    let mut buffer = String::new();
    while let Some(chunk) = response.chunk().await? {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue;
            };
            let event: Value = serde_json::from_str(data.trim())?;
            let line = format!(
                "   {:<7} {:<18} {}",
                event["level"].as_str().unwrap_or_default(),
                event["kind"].as_str().unwrap_or_default(),
                event["message"].as_str().unwrap_or_default()
            );
            spinner.suspend(|| say(&line));
            spinner.set_message(event["kind"].as_str().unwrap_or_default().to_owned());
        }
    }
    spinner.finish_and_clear();
    Ok(())
}

fn summarize(job: &Value, report: &Value, root: &str) {
    let stat = |name: &str| job["stats"][name].as_i64().unwrap_or_default();
    say(&format!(
        "6. job {}: {} objects listed, {} searched ({} pruned by statistics or bloom filters), \
         {} held matches; {} rewritten and verified, {} rows removed",
        job["status"].as_str().unwrap_or_default(),
        stat("objects_listed"),
        stat("objects_scanned"),
        stat("objects_pruned"),
        stat("objects_matched"),
        stat("objects_verified"),
        stat("rows_removed"),
    ));
    for object in report["objects"].as_array().into_iter().flatten() {
        let n = |name: &str| object[name].as_i64().unwrap_or_default();
        let groups = match (
            object["row_groups_rewritten"].as_i64(),
            object["row_groups_copied"].as_i64(),
        ) {
            (Some(r), Some(c)) if r + c > 0 => format!(", row groups {r} rewritten / {c} copied"),
            _ => String::new(),
        };
        // Keys are relative to the filesystem root; show them relative to the lake.
        let key = object["key"].as_str().unwrap_or_default();
        let key = key
            .strip_prefix(root.trim_start_matches('/'))
            .unwrap_or(key);
        say(&format!(
            "   {:<36} {:>6} → {:>6} rows{groups} [{}]",
            key.trim_start_matches('/'),
            n("rows_before"),
            n("rows_after"),
            object["status"].as_str().unwrap_or_default(),
        ));
    }
    let erased = report["matches"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["status"] == "erased").count());
    say(&format!(
        "   {erased} matches erased (the report keeps a keyed hash of each, never the id)"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_database_replaces_the_name_in_the_url() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/lethe",
                "postgres://postgres@127.0.0.1:5432/lethe_demo",
            ),
            (
                "postgres://u:p@db/x?sslmode=require",
                "postgres://u:p@db/lethe_demo?sslmode=require",
            ),
            ("postgresql://db:5432", "postgresql://db:5432/lethe_demo"),
        ];
        for (url, expected) in cases {
            assert_eq!(with_database(url, "lethe_demo").unwrap(), expected);
        }
        assert!(with_database("postgres://db/x", "x; drop").is_err());
        // Never a database the demo does not own.
        assert!(with_database("postgres://db/lethe", "lethe").is_err());
        assert!(with_database("postgres://db/lethe_demo", "lethe_demo").is_err());
        assert!(with_database("postgres://db/lethe", "lethe_demo_2").is_ok());
    }
}
