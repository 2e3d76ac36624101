//! `lethe`: parse the subcommand, load the configuration, call the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lethe::api::auth::{Role, mint_hs256};
use lethe::app::{AppState, hs256_secret};
use lethe::config::Config;
use lethe::receipt::verify::Input;
use lethe::serve::serve;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "lethe",
    version,
    about = "Privacy operations for S3 data lakes"
)]
struct Cli {
    /// TOML configuration file (environment variables override it).
    #[arg(long, global = true, env = "LETHE_CONFIG_FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations, then serve the REST API.
    Serve,
    /// Run job workers and the scheduler only (no HTTP API).
    Worker,
    /// Exit 0 when the Lethe process on this host (`LETHE_LISTEN_ADDR`) is alive (for
    /// container health checks).
    Healthcheck,
    /// Apply pending database migrations and exit, as the owner role
    /// (`LETHE_MIGRATION_DATABASE_URL`, else `DATABASE_URL`).
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Mint a bearer token signed with the server's HS256 secret.
    Token {
        /// Token subject (who is calling).
        #[arg(long)]
        sub: String,
        /// Role to grant; repeat for several (admin, operator, requester, governance, auditor).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Lifetime, e.g. 30m, 1h (at most 24h unless --force).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Allow a lifetime over 24 hours (a long-lived bearer token is a standing key).
        #[arg(long)]
        force: bool,
    },
    /// Run the whole main job on a generated local lake, end to end, and check the result
    /// (needs only Postgres).
    Demo {
        /// Directory for the generated lake (must be empty); a temporary one by default.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Scratch database on the configured Postgres server, dropped and created again.
        #[arg(long, default_value = "lethe_demo")]
        database: String,
        /// Keep the temporary lake instead of removing it at the end.
        #[arg(long)]
        keep: bool,
    },
    /// Benchmarks that print numbers.
    #[command(subcommand)]
    Bench(Bench),
    /// Erasure receipts, offline.
    #[command(subcommand)]
    Receipt(Receipt),
    /// The audit trail's hash chain.
    #[command(subcommand)]
    Audit(Audit),
}

#[derive(Subcommand)]
enum Audit {
    /// Walk the audit chain in the database (`DATABASE_URL`), recomputing every hash;
    /// exits 1 naming the first broken row (seq and id). With `--checkpoint`, also checks
    /// each checkpoint's signature and that the chain still has its head at its seq.
    Verify {
        /// Checkpoints, one compact JWS per line (`GET /v1/audit_events/checkpoints`).
        #[arg(long, requires = "keys")]
        checkpoint: Option<PathBuf>,
        /// The JWKS that signed them (`GET /v1/receipts/keys`).
        #[arg(long, requires = "checkpoint")]
        keys: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Receipt {
    /// Check receipts without Lethe: each signature against a JWKS, then the chain (each
    /// `seq` one more than the one before, each `prev` the SHA-256 of the one before).
    /// Exits non-zero naming the first broken link.
    Verify {
        /// Files of receipts, one compact JWS per line (as `GET /v1/jobs/{id}/receipts`
        /// returns them).
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// The JWKS (`GET /v1/receipts/keys`).
        #[arg(long)]
        keys: PathBuf,
        /// Then read the lake (plain S3 GETs and HEADs by version id, with the AWS
        /// settings `serve` uses): each `version_after` must exist with its
        /// `sha256_after`, each deleted version must be gone. Exits non-zero naming every
        /// disagreement.
        #[arg(long)]
        check_lake: bool,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// Find: which of these local Parquet files hold these ids, and how many rows (one core).
    Find {
        /// Parquet files.
        #[arg(long, required = true, num_args = 1..)]
        input: Vec<PathBuf>,
        /// Match column (dotted path for nested fields); repeat for several.
        #[arg(long = "column", required = true)]
        columns: Vec<String>,
        /// File with one match id per line.
        #[arg(long)]
        match_ids: PathBuf,
        /// Through the job's object path: ranged reads, one row group at a time.
        #[arg(long)]
        ranged: bool,
    },
    /// Forget: rewrite one local Parquet file without the rows matching these ids.
    Forget {
        /// The Parquet file.
        #[arg(long)]
        input: PathBuf,
        /// Match column (dotted path for nested fields); repeat for several.
        #[arg(long = "column", required = true)]
        columns: Vec<String>,
        /// File with one match id per line.
        #[arg(long)]
        match_ids: PathBuf,
        /// Where to write the rewritten file.
        #[arg(long)]
        output: PathBuf,
    },
    /// Find over a generated local lake (generated on first use): MB/s and objects/s with
    /// and without statistics pruning, for 1, 100 and 100,000 match ids.
    Lake {
        /// Directory of the lake (created and filled when empty).
        #[arg(long, default_value = "/var/tmp/lethe/bench/lake")]
        dir: PathBuf,
        /// Lake size in MB.
        #[arg(long, default_value_t = 2048)]
        size_mb: usize,
        /// Object size in MB (16 row groups each).
        #[arg(long, default_value_t = 64)]
        object_mb: usize,
        /// Objects searched at once.
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
    },
    /// One real job over a generated local lake of small objects (the subject in each),
    /// embedded workers, scratch database `lethe_bench_job`: seconds and objects/s per step.
    Job {
        /// Objects in the lake (1,000 rows each).
        #[arg(long, default_value_t = 1000)]
        objects: usize,
        /// Worker loops.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Run the workers as `lethe worker` processes (one loop each), not embedded.
        #[arg(long)]
        worker_processes: bool,
        /// SIGKILL a worker process at random about every this many seconds (0.5–1.5×,
        /// seeded by LETHE_FAULT_SEED) and start another; implies --worker-processes.
        #[arg(long)]
        kill_every_secs: Option<f64>,
        /// Directory of the generated lake (emptied and generated again each run).
        #[arg(long, default_value = "/var/tmp/lethe/bench/job-lake")]
        dir: PathBuf,
    },
    /// Deletion queue: add-call and list latency from 1k to 1M items (scratch database
    /// `lethe_bench_queue` on the configured server).
    Queue {
        /// Fill the queue up to this many items.
        #[arg(long, default_value_t = 1_000_000)]
        items: usize,
    },
    /// Peak resident memory of `lethe serve` (Linux) while it refuses queue bodies of the
    /// largest size, several at once (scratch database `lethe_bench_memory`).
    Memory {
        /// Bodies sent at once.
        #[arg(long, default_value_t = 4)]
        bodies: usize,
        /// The `lethe` binary to run `serve` from (this one by default).
        #[arg(long, default_value = "/proc/self/exe")]
        serve_binary: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(done) = run_without_config(&cli.command).await {
        return done;
    }
    let mut config = Config::load(cli.config.as_deref()).context("invalid configuration")?;
    if matches!(cli.command, Command::Demo { .. }) {
        // The demo's own output tells the story; logs only for trouble.
        config.log_filter = "warn,sqlx=error".into();
        config.log_format = lethe::config::LogFormat::Text;
    }
    lethe::telemetry::init(&config);
    run(cli.command, config).await
}

/// Runs the commands that need no configuration (None: `command` needs one).
async fn run_without_config(command: &Command) -> Option<anyhow::Result<()>> {
    Some(match command {
        Command::Openapi => lethe::api::openapi()
            .to_pretty_json()
            .map(|json| println!("{json}"))
            .map_err(Into::into),
        Command::Bench(Bench::Find {
            input,
            columns,
            match_ids,
            ranged,
        }) => lethe::bench::find::run(input, columns, match_ids, *ranged),
        Command::Bench(Bench::Forget {
            input,
            columns,
            match_ids,
            output,
        }) => lethe::bench::forget::run(input, columns, match_ids, output),
        Command::Bench(Bench::Lake {
            dir,
            size_mb,
            object_mb,
            concurrency,
        }) => lethe::bench::lake::run(dir, *size_mb, *object_mb, (*concurrency).max(1)).await,
        Command::Receipt(Receipt::Verify {
            files,
            keys,
            check_lake: false,
        }) => verify_receipts(files, keys).map(drop),
        _ => return None,
    })
}

/// Runs a command that needs the configuration.
async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => run_server(config).await,
        Command::Worker => run_worker(config).await,
        Command::Healthcheck => lethe::serve::healthcheck(config.listen_addr).await,
        Command::Migrate => {
            let db = lethe::db::connect_for_migrations(&config).await?;
            lethe::db::migrate(&db).await?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Audit(Audit::Verify { checkpoint, keys }) => {
            verify_audit(&config, checkpoint.as_deref(), keys.as_deref()).await
        }
        Command::Token {
            sub,
            roles,
            ttl,
            force,
        } => mint_token(&config, &sub, &roles, &ttl, force).await,
        Command::Demo {
            dir,
            database,
            keep,
        } => {
            let options = lethe::demo::DemoOptions {
                dir,
                database,
                keep,
            };
            lethe::demo::run(config, options).await
        }
        Command::Bench(Bench::Queue { items }) => lethe::bench::queue::run(config, items).await,
        Command::Bench(Bench::Memory {
            bodies,
            serve_binary,
        }) => {
            let options = lethe::bench::memory::MemoryOptions {
                bodies,
                serve_binary,
            };
            lethe::bench::memory::run(config, options).await
        }
        Command::Bench(Bench::Job {
            objects,
            workers,
            worker_processes,
            kill_every_secs,
            dir,
        }) => {
            let workers = lethe::bench::job::Workers {
                count: workers,
                processes: worker_processes,
                kill_every: kill_every(kill_every_secs)?,
            };
            lethe::bench::job::run(config, objects, workers, dir).await
        }
        Command::Receipt(Receipt::Verify {
            files,
            keys,
            check_lake: true,
        }) => {
            let (inputs, jwks) = verify_receipts(&files, &keys)?;
            lake::check_lake(&config.aws, &inputs, &jwks).await
        }
        Command::Openapi
        | Command::Receipt(_)
        | Command::Bench(Bench::Find { .. } | Bench::Lake { .. } | Bench::Forget { .. }) => {
            unreachable!("run without the configuration")
        }
    }
}

/// `lethe receipt verify`: reads the JWKS and every receipt (`file:line` names each),
/// verifies them, and says what they cover; returns them for `--check-lake`.
fn verify_receipts(
    files: &[PathBuf],
    keys: &std::path::Path,
) -> anyhow::Result<(Vec<Input>, lethe::receipt::Jwks)> {
    let jwks = std::fs::read(keys).with_context(|| format!("cannot read {}", keys.display()))?;
    let jwks: lethe::receipt::Jwks = serde_json::from_slice(&jwks)
        .with_context(|| format!("{} is not a JWKS", keys.display()))?;
    let mut inputs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        for (n, line) in text.lines().enumerate() {
            if !line.trim().is_empty() {
                inputs.push(Input {
                    at: format!("{}:{}", file.display(), n + 1),
                    compact: line.trim().to_owned(),
                });
            }
        }
    }
    let ok = lethe::receipt::verify::verify(&inputs, &jwks)
        .map_err(|broken| anyhow::anyhow!("receipt chain broken: {broken}"))?;
    println!(
        "{} receipt(s) verified: seq {} to {}, chain intact, signed by {}",
        ok.count,
        ok.first_seq,
        ok.last_seq,
        ok.kids.join(", ")
    );
    Ok((inputs, jwks))
}

/// `lethe audit verify`: the checkpoints (`file:line` names each) checked against the
/// JWKS, then the chain walked and held to them.
async fn verify_audit(
    config: &Config,
    checkpoint: Option<&std::path::Path>,
    keys: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let claims = match (checkpoint, keys) {
        (Some(file), Some(keys)) => read_checkpoints(file, keys)?,
        _ => Vec::new(),
    };
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(config.database_url.expose())
        .await
        .context("cannot reach Postgres at DATABASE_URL")?;
    let intact = lethe::db::audit_event::verify_chain(&db, claims)
        .await?
        .map_err(|broken| anyhow::anyhow!("audit chain broken: {broken}"))?;
    println!(
        "{} audit row(s) verified: chain intact, head seq {} hash {}; {} checkpoint(s) matched",
        intact.rows, intact.head_seq, intact.head_hash, intact.checkpoints
    );
    Ok(())
}

/// Each checkpoint of `file`, its signature checked with the JWKS in `keys`.
fn read_checkpoints(
    file: &std::path::Path,
    keys: &std::path::Path,
) -> anyhow::Result<Vec<lethe::audit::chain::Claim>> {
    let jwks = std::fs::read(keys).with_context(|| format!("cannot read {}", keys.display()))?;
    let jwks: lethe::receipt::Jwks = serde_json::from_slice(&jwks)
        .with_context(|| format!("{} is not a JWKS", keys.display()))?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut claims = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", file.display(), n + 1);
        let cp = lethe::audit::checkpoint::verify(line.trim(), &jwks)
            .map_err(|e| anyhow::anyhow!("{at}: checkpoint does not verify: {e}"))?;
        claims.push(cp.claim(&at));
    }
    anyhow::ensure!(!claims.is_empty(), "{} holds no checkpoint", file.display());
    Ok(claims)
}

/// `lethe token`: a token for `sub` with `roles`, signed with the server's HS256 key.
async fn mint_token(
    config: &Config,
    sub: &str,
    roles: &[String],
    ttl: &str,
    force: bool,
) -> anyhow::Result<()> {
    let roles = roles
        .iter()
        .map(|r| Role::parse(r).with_context(|| format!("unknown role {r:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ttl = parse_ttl(ttl)?;
    anyhow::ensure!(
        force || ttl <= chrono::Duration::hours(24),
        "--ttl over 24h makes a standing key; pass --force to mint it anyway"
    );
    anyhow::ensure!(
        config.auth.jwt_public_key_pem.is_none() && config.auth.jwks.is_none(),
        "tokens are verified with your identity provider's keys (LETHE_JWT_PUBLIC_KEY or a JWKS); mint them there"
    );
    let db = lethe::db::connect(config).await?;
    lethe::db::prepare_schema(&db).await?;
    let secret = hs256_secret(&db, config).await?;
    println!("{}", mint_hs256(&secret, &config.auth, sub, &roles, ttl)?);
    Ok(())
}

/// `--kill-every-secs`: at least 0.1 s.
fn kill_every(secs: Option<f64>) -> anyhow::Result<Option<std::time::Duration>> {
    match secs {
        Some(s) if s.is_finite() && s >= 0.1 => Ok(Some(std::time::Duration::from_secs_f64(s))),
        Some(_) => anyhow::bail!("--kill-every-secs must be at least 0.1"),
        None => Ok(None),
    }
}

async fn run_server(config: Config) -> anyhow::Result<()> {
    let addr = config.listen_addr;
    let state = AppState::build(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    serve(state, listener, shutdown).await
}

async fn run_worker(mut config: Config) -> anyhow::Result<()> {
    config.jobs.workers = config.jobs.workers.max(1);
    let addr = config.listen_addr;
    let state = AppState::build(config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    lethe::serve::spawn_ops(state.clone(), addr, shutdown.clone()).await;
    lethe::jobs::runtime::run(state.engine(), state.runtime_config(), shutdown).await;
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
    shutdown.cancel();
}

/// Parses `90s`, `30m`, `1h`, `7d`.
fn parse_ttl(raw: &str) -> anyhow::Result<chrono::Duration> {
    let (number, unit) = raw.split_at(raw.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .with_context(|| format!("--ttl {raw:?}: expected e.g. 30m, 1h, 7d"))?;
    anyhow::ensure!(n > 0, "--ttl must be positive");
    match unit {
        "s" => Ok(chrono::Duration::seconds(n)),
        "m" => Ok(chrono::Duration::minutes(n)),
        "h" => Ok(chrono::Duration::hours(n)),
        "d" => Ok(chrono::Duration::days(n)),
        _ => anyhow::bail!("--ttl {raw:?}: unit must be s, m, h or d"),
    }
}

/// `lethe receipt verify --check-lake`: the lake read plainly (GetObject / HeadObject by
/// version id through the SDK set up as `serve` sets it up), for `receipt::lake`.
mod lake {
    use aws_sdk_s3::config::http::HttpResponse;
    use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
    use lethe::receipt::lake::{Expect, Found, Lake, Version, check, claims, payloads};
    use sha2::{Digest, Sha256};

    use super::Input;

    struct S3Lake(aws_sdk_s3::Client);

    #[async_trait::async_trait]
    impl Lake for S3Lake {
        async fn read(&self, v: &Version, hash: bool) -> Found {
            let (bucket, key, version) = (&v.bucket, &v.key, &v.version_id);
            if !hash {
                let head = self
                    .0
                    .head_object()
                    .bucket(bucket)
                    .key(key)
                    .version_id(version);
                return match head.send().await {
                    Ok(_) => Found::Present(None),
                    Err(e) => match missing_or_unreadable(e) {
                        Found::Missing => self.bucket_answers(bucket).await,
                        other => other,
                    },
                };
            }
            let get = self
                .0
                .get_object()
                .bucket(bucket)
                .key(key)
                .version_id(version);
            let mut body = match get.send().await {
                Ok(o) => o.body,
                Err(e) => return missing_or_unreadable(e),
            };
            let mut sha = Sha256::new();
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(bytes) => sha.update(&bytes),
                    Err(e) => return Found::Unreadable(e.to_string()),
                }
            }
            Found::Present(Some(lethe::receipt::jws::hex(&sha.finalize())))
        }
    }

    impl S3Lake {
        /// A version's 404 says it is gone only if its bucket answers: a HEAD's 404 names
        /// no code, and a wrong endpoint or a removed bucket must not pass as deleted.
        async fn bucket_answers(&self, bucket: &str) -> Found {
            match self.0.head_bucket().bucket(bucket).send().await {
                Ok(_) => Found::Missing,
                Err(e) => Found::Unreadable(format!(
                    "the bucket does not answer ({}): the version's absence is not confirmed",
                    match missing_or_unreadable(e) {
                        Found::Unreadable(why) => why,
                        _ => "no such bucket".to_owned(),
                    }
                )),
            }
        }
    }

    /// A 404 (`NoSuchVersion`, `NoSuchKey`, a HEAD's bare `NotFound`) is "no such
    /// version"; anything else neither confirms nor refutes.
    fn missing_or_unreadable<E: ProvideErrorMetadata>(e: SdkError<E, HttpResponse>) -> Found {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code().map(str::to_owned);
        if status == Some(404) || matches!(code.as_deref(), Some("NoSuchVersion" | "NoSuchKey")) {
            return Found::Missing;
        }
        let status = status.map_or_else(|| "no response".to_owned(), |s| format!("HTTP {s}"));
        Found::Unreadable(format!(
            "{} ({status})",
            code.unwrap_or_else(|| e.to_string())
        ))
    }

    /// Checks what the receipts (already verified) say the lake holds; Err names every
    /// disagreement.
    pub async fn check_lake(
        aws: &lethe::config::AwsConfig,
        inputs: &[Input],
        jwks: &lethe::receipt::Jwks,
    ) -> anyhow::Result<()> {
        let claims = claims(&payloads(inputs, jwks).map_err(anyhow::Error::msg)?);
        let sdk = lethe::aws::sdk_config(aws).await;
        let s3 = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(aws.s3_force_path_style)
            .build();
        let wrong = check(&S3Lake(aws_sdk_s3::Client::from_conf(s3)), &claims).await;
        for w in &wrong {
            eprintln!("{w}");
        }
        anyhow::ensure!(
            wrong.is_empty(),
            "the lake disagrees with {} of {} claim(s) of the receipts",
            wrong.len(),
            claims.len()
        );
        let count = |gone: bool| {
            let of = claims.iter().filter(|c| (c.expect == Expect::Gone) == gone);
            of.map(|c| &c.version)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        };
        println!(
            "the lake agrees: {} version(s) written are there with the SHA-256 stated, {} deleted version(s) are gone",
            count(false),
            count(true)
        );
        Ok(())
    }
}
