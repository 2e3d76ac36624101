//! `lethe bench memory`: the peak resident memory of a `lethe serve` process while it
//! refuses `PATCH /v1/queue/matches` bodies of the queue's largest size, several at once,
//! from a requester. Each kind of body goes to a fresh server (a peak only grows); the
//! server's RSS before and its peak (`VmRSS`, `VmHWM` of /proc, Linux) are printed with
//! the answers. Scratch database `lethe_bench_memory`. Prints numbers, asserts nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::auth::{Role, mint_hs256};
use crate::config::Config;

/// The HS256 key the benchmark's servers verify its token with.
const SECRET: &str = "benchmark-secret-benchmark-secret!";

/// What to run.
pub struct MemoryOptions {
    /// Bodies sent at once.
    pub bodies: usize,
    /// The `lethe` binary to run `serve` from (another build, to compare).
    pub serve_binary: PathBuf,
}

/// Runs the benchmark.
pub async fn run(config: Config, options: MemoryOptions) -> anyhow::Result<()> {
    let config = crate::demo::demo_config(config, "lethe_bench_memory").await?;
    let size = config.limits.queue_max_body_bytes;
    let token = mint_hs256(
        SECRET.as_bytes(),
        &config.auth,
        "bench-requester",
        &[Role::Requester],
        chrono::Duration::hours(1),
    )?;
    println!(
        "{} bodies of {:.1} MiB at once to PATCH /v1/queue/matches (requester), a fresh `lethe serve` for each kind",
        options.bodies,
        mib(size as u64)
    );
    println!(
        "{:<38} | {:<34} | {:>10} | {:>12} | {:>14} | {:>15}",
        "body", "answers", "RSS before", "peak RSS", "peak - before", "per body / size"
    );
    for (name, body) in bodies(size) {
        let server = Server::start(&options.serve_binary, &config).await?;
        let (before, _) = server.memory()?;
        let answers = server.send(&token, body, options.bodies).await?;
        let (_, peak) = server.memory()?;
        let per_body = (peak.saturating_sub(before)) as f64 / options.bodies.max(1) as f64;
        println!(
            "{name:<38} | {answers:<34} | {:>6.1} MiB | {:>8.1} MiB | {:>10.1} MiB | {:>14.2}x",
            mib(before),
            mib(peak),
            mib(peak.saturating_sub(before)),
            per_body / size as f64
        );
    }
    Ok(())
}

/// The bodies sent, by name: each fills `size` bytes (at most) and is refused (422); the
/// API tests send them too.
pub fn bodies(size: usize) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            r#"{"matches":[0,0,…]}"#,
            fill(r#"{"matches":["#, "0,", "0]}", size),
        ),
        (
            r#"{"matches":[{"match_id":0},…]}"#,
            fill(
                r#"{"matches":["#,
                r#"{"match_id":0},"#,
                r#"{"match_id":0}]}"#,
                size,
            ),
        ),
        (
            r#"{"matches":[{"match_id":[0,0,…]}]}"#,
            fill(r#"{"matches":[{"match_id":["#, "0,", "0]}]}", size),
        ),
        (
            r#"{"matches":[{"data_mappers":["a",…]}]}"#,
            fill(
                r#"{"matches":[{"match_id":0,"data_mappers":["#,
                r#""a","#,
                r#""a"]}]}"#,
                size,
            ),
        ),
    ]
}

/// `head`, then `unit` as often as fits in `size` bytes with `tail`, then `tail`.
fn fill(head: &str, unit: &str, tail: &str, size: usize) -> Vec<u8> {
    let n = size.saturating_sub(head.len() + tail.len()) / unit.len();
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(head.as_bytes());
    for _ in 0..n {
        body.extend_from_slice(unit.as_bytes());
    }
    body.extend_from_slice(tail.as_bytes());
    body
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A `lethe serve` child process on a loopback port, killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Starts `serve` (API only: no workers, no scheduler) and waits until it is ready.
    async fn start(binary: &Path, config: &Config) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(binary)
            .arg("serve")
            .env("DATABASE_URL", config.database_url.expose())
            .env("LETHE_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("LETHE_WORKERS", "0")
            .env("LETHE_SCHEDULER_INTERVAL_SECS", "0")
            .env("LETHE_GRANT_RECONCILE_INTERVAL_SECS", "0")
            .env("LETHE_JWT_SECRET", SECRET)
            .env("LETHE_LOG", "error")
            .env_remove("LETHE_JWT_PUBLIC_KEY")
            .env_remove("LETHE_JWT_PUBLIC_KEY_FILE")
            .env_remove("LETHE_JWT_JWKS_URL")
            .env_remove("LETHE_JWT_JWKS_FILE")
            .stdout(Stdio::null())
            .spawn()?;
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        let http = reqwest::Client::new();
        loop {
            let ready = http.get(format!("{}/health/ready", server.base)).send();
            if ready.await.is_ok_and(|r| r.status().is_success()) {
                return Ok(server);
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "`lethe serve` did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process's resident memory now and its peak so far, in bytes.
    fn memory(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .ok_or_else(|| anyhow::anyhow!("no {name} in /proc (Linux only)"))?;
            let kb: u64 = line[name.len()..].trim().trim_end_matches(" kB").parse()?;
            Ok(kb * 1024)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Sends `body` `n` times at once; the answers, e.g. `4 x 422 matches[0]`.
    async fn send(&self, token: &str, body: Vec<u8>, n: usize) -> anyhow::Result<String> {
        let (http, body) = (reqwest::Client::new(), bytes::Bytes::from(body));
        let calls = (0..n).map(|_| {
            let request = http
                .patch(format!("{}/v1/queue/matches", self.base))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.clone());
            async move {
                let response = request.send().await?;
                let status = response.status().as_u16();
                let problem: Value = response.json().await.unwrap_or_default();
                let field = problem["errors"][0]["field"].as_str().unwrap_or("-");
                Ok::<_, anyhow::Error>(format!("{status} {field}"))
            }
        });
        let mut answers: Vec<String> = futures_util::future::try_join_all(calls).await?;
        answers.dedup();
        Ok(match answers.as_slice() {
            [one] => format!("{n} x {one}"),
            _ => answers.join(", "),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_fills_the_size_and_is_json() {
        for (name, body) in bodies(64 * 1024) {
            assert!(body.len() <= 64 * 1024 && body.len() > 60 * 1024, "{name}");
            serde_json::from_slice::<Value>(&body).unwrap();
        }
    }
}
