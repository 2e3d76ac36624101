//! One typed configuration tree, built from defaults, an optional TOML file and the
//! environment (`LETHE_*`, plus `DATABASE_URL`), in that order of precedence (env wins).
//! Each setting is declared once, in the `settings!` table below: its file key, type,
//! default, environment variable and check; `ENV_VARS`, the file's form and the reading
//! come from that table (`setting`).
//!
//! Invariants: this is the only module that reads the process environment; secrets are
//! wrapped in [`Secret`] so they never appear in `Debug` output or logs; a bad value fails
//! start-up with a message naming the setting.

mod setting;
mod tree;

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use setting::{Env, absolute, any, at_least, at_most, between, min_chars, settings, when_set};
use tree::{external_id, kms_key_id, postgres_url, role_patterns, sts_session};

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"[redacted]\")")
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Postgres URL; may hold a password, hence secret.
    pub database_url: Secret,
    /// The owner role's Postgres URL, for `lethe migrate` only (`serve` and `worker` never
    /// read it); `database_url` when unset.
    pub migration_database_url: Option<Secret>,
    pub db_max_connections: u32,
    pub listen_addr: SocketAddr,
    pub log_format: LogFormat,
    /// `tracing` filter directive, e.g. `info,lethe=debug`.
    pub log_filter: String,
    /// Largest accepted request body (the queue's batch add has its own, larger limit).
    pub max_body_bytes: usize,
    /// What one process serves at once and for how long.
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub aws: AwsConfig,
    /// Seconds between grant reconciliations (drift checks); 0 disables them.
    pub grant_reconcile_interval_secs: u64,
    pub jobs: JobsConfig,
    /// The directory `file://` locations must lie in (None: they are refused).
    pub local_lake_root: Option<PathBuf>,
    /// The bearer token `/metrics` asks for on the API port (None: it is not served there).
    pub metrics_token: Option<Secret>,
    pub receipts: ReceiptsConfig,
}

/// How erasure receipts are signed and who they name as their issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptsConfig {
    /// The ECDSA P-256 private key (PEM: PKCS#8 or SEC 1) receipts are signed with. None:
    /// the key Lethe generates at its first start and keeps in Postgres.
    pub key_file: Option<PathBuf>,
    /// An AWS KMS key (id, ARN or alias; `ECC_NIST_P256`, `SIGN_VERIFY`) receipts are
    /// signed with through `kms:Sign`. Never set together with `key_file`.
    pub kms_key_id: Option<String>,
    /// The deployment's name: each receipt's `issuer`.
    pub deployment_name: String,
}

/// Server limits: how long a client may take, how much it may ask at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Seconds a connection may take to send a request's headers: its first from the
    /// moment it is accepted (whatever the protocol), a later one (HTTP/1) from its first byte.
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may stay open with no request in flight after its last one.
    pub idle_timeout_secs: u64,
    /// Seconds between HTTP/2 keep-alive pings; a ping unanswered this long closes the
    /// connection.
    pub http2_keepalive_secs: u64,
    /// Streams (requests) one HTTP/2 connection may have open at once.
    pub http2_max_streams: u32,
    /// Seconds a request may take until its response starts (not event streams).
    pub request_timeout_secs: u64,
    /// Requests served at once; more get 503 with `Retry-After`.
    pub max_concurrent_requests: usize,
    /// Open connections; more wait in the listen backlog.
    pub max_connections: usize,
    /// Event streams open at once; more get 503 with `Retry-After`.
    pub max_event_streams: usize,
    /// Seconds an event stream stays open; the client resumes with `Last-Event-ID`.
    pub event_stream_max_secs: u64,
    /// Job reports streamed at once (all report downloads share them); more get 503 with
    /// `Retry-After`.
    pub max_report_streams: usize,
    /// Largest body of `PATCH /v1/queue/matches` (10,000 matches).
    pub queue_max_body_bytes: usize,
    /// Seconds `/metrics` reuses its database gauges.
    pub metrics_cache_secs: u64,
}

impl Default for LimitsConfig {
    /// Each limit's declared default.
    fn default() -> Self {
        Settings::defaults().limits()
    }
}

/// How this process runs the job engine.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Worker loops `lethe serve` runs (0 = API only); `lethe worker` runs at least one.
    pub workers: usize,
    /// Milliseconds between claims while the task queue is empty.
    pub poll_ms: u64,
    /// Seconds a claimed task stays leased without a heartbeat.
    pub lease_secs: u64,
    /// Workers lost in a row while running one task before it fails (a poison task).
    pub max_crashes: u32,
    /// Seconds between scheduler ticks (cron schedule, deadlines); 0 disables them here.
    pub scheduler_interval_secs: u64,
    /// Start a job when a queued item's deadline is this many hours away.
    pub deadline_margin_hours: u64,
    /// A requester's deadline must be at least this many days ahead.
    pub requester_min_deadline_days: u64,
    /// Longest JSON Lines line find and forget read (decompressed, line ending not
    /// counted); a longer one fails its object ("line too long"), never buffered whole.
    pub max_line_bytes: usize,
    /// Where forget and rollback put their temporary files (None: the OS temp dir).
    pub temp_dir: Option<PathBuf>,
    /// Bytes of temporary files this process may hold at once (None: unbounded).
    pub temp_max_bytes: Option<u64>,
}

/// Where a JWKS document is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    /// `https://` (or `http://` on a loopback address, for tests and sidecars).
    Url(String),
}

/// How bearer tokens are verified.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// HS256 shared secret. When neither this nor a public key is set, Lethe generates a
    /// random secret on first start and keeps it in Postgres (`lethe token` reads it there).
    pub jwt_secret: Option<Secret>,
    /// RS256 public key (PEM). Takes precedence over the HS256 secret.
    pub jwt_public_key_pem: Option<String>,
    /// Where the identity provider's keys are: a JWKS document (file or URL), keys picked
    /// by `kid`, several at once for rotation. Takes precedence over both of the above.
    pub jwks: Option<JwksSource>,
    /// Seconds between reads of the JWKS document (a rotated key is picked up).
    pub jwks_refresh_secs: u64,
    /// Seconds a JWKS key set may go unread (failed refreshes) before its keys stop being
    /// accepted.
    pub jwks_max_stale_secs: u64,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Claim that holds the caller's roles (array of strings, or one space-separated string).
    pub roles_claim: String,
}

/// AWS client settings; credentials and region also follow the SDK's default chain.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// Endpoint override for S3/Glue/Lake Formation emulators or S3-compatible servers.
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub s3_force_path_style: bool,
    /// The external id Lethe passes when it assumes a mapper's `role_arn`.
    pub role_external_id: Option<String>,
    /// Lifetime asked of assumed-role sessions (900..=43200 seconds).
    pub role_session_secs: u32,
    /// Lethe's own IAM principal, named in the trust policies it generates (else asked of
    /// STS `GetCallerIdentity`).
    pub principal_arn: Option<String>,
    /// The roles a mapper's `role_arn` may name (`*` only in the role name); empty: no
    /// `role_arn` is accepted.
    pub allowed_role_arns: Vec<String>,
    /// How the SDK retries a failed or throttled request.
    pub retry_mode: RetryMode,
    /// Attempts of one AWS request (the first included).
    pub max_attempts: u32,
    /// Base of the SDK's exponential backoff between attempts (throttling errors).
    pub initial_backoff_ms: u64,
    /// Requests in flight to one S3 bucket at most (the limit throttling lowers).
    pub s3_max_concurrency_per_bucket: u32,
}

impl Default for AwsConfig {
    /// Each AWS setting's declared default.
    fn default() -> Self {
        Settings::defaults().aws()
    }
}

/// How the AWS SDK retries (`LETHE_AWS_RETRY_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryMode {
    /// Exponential backoff with jitter; S3 load is shed by the per-bucket concurrency limit.
    Standard,
    /// The SDK's adaptive mode: backoff plus a client-side rate limiter, one per AWS service
    /// and process (every bucket's requests), enabled by the first throttle.
    Adaptive,
}

/// Requests in flight per S3 bucket unless configured.
pub const DEFAULT_S3_MAX_CONCURRENCY_PER_BUCKET: u32 = 64;

/// Default Postgres URL: the local server with trust auth, database `lethe`
/// (created on first start when missing).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/lethe";

/// A configuration error, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("{name}: {message}")]
    Invalid { name: &'static str, message: String },
}

const MIB: usize = 1024 * 1024;

// Every setting, one declaration each: its file key, type, default, environment variable
// (and an alias the environment may use instead) and check. `#[serde(skip)]`: the
// environment's only. The order is the file's keys' in error messages.
settings! {
    // The server.
    database_url: Secret = Secret::new(DEFAULT_DATABASE_URL),
        env "DATABASE_URL" | "LETHE_DATABASE_URL", check postgres_url;
    db_max_connections: u32 = 10, env "LETHE_DB_MAX_CONNECTIONS", check at_least(1);
    migration_database_url: Option<Secret> = None,
        env "LETHE_MIGRATION_DATABASE_URL", check when_set(postgres_url);
    listen_addr: SocketAddr = SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
        env "LETHE_LISTEN_ADDR", check any;
    log_format: LogFormat = LogFormat::Json, env "LETHE_LOG_FORMAT", check any;
    log_filter: String = "info,sqlx=warn".to_owned(), env "LETHE_LOG", check any;
    max_body_bytes: usize = 2 * MIB, env "LETHE_MAX_BODY_BYTES", check any;
    // Limits (`LimitsConfig`).
    header_read_timeout_secs: u64 = 10,
        env "LETHE_HEADER_READ_TIMEOUT_SECS", check at_least(1);
    idle_timeout_secs: u64 = 60, env "LETHE_IDLE_TIMEOUT_SECS", check at_least(1);
    http2_keepalive_secs: u64 = 20, env "LETHE_HTTP2_KEEPALIVE_SECS", check at_least(1);
    http2_max_streams: u32 = 100, env "LETHE_HTTP2_MAX_STREAMS", check at_least(1);
    request_timeout_secs: u64 = 60, env "LETHE_REQUEST_TIMEOUT_SECS", check at_least(1);
    max_concurrent_requests: usize = 256,
        env "LETHE_MAX_CONCURRENT_REQUESTS", check at_least(1);
    max_connections: usize = 1024, env "LETHE_MAX_CONNECTIONS", check at_least(1);
    max_event_streams: usize = 100, env "LETHE_MAX_EVENT_STREAMS", check at_least(1);
    event_stream_max_secs: u64 = 300, env "LETHE_EVENT_STREAM_MAX_SECS", check at_least(1);
    max_report_streams: usize = 8, env "LETHE_MAX_REPORT_STREAMS", check at_least(1);
    queue_max_body_bytes: usize = 16 * MIB, env "LETHE_QUEUE_MAX_BODY_BYTES", check any;
    metrics_cache_secs: u64 = 5, env "LETHE_METRICS_CACHE_SECS", check any;
    // The `/metrics` token; auth (`AuthConfig`).
    metrics_token: Option<Secret> = None,
        env "LETHE_METRICS_TOKEN", check when_set(min_chars(32));
    jwt_secret: Option<Secret> = None, env "LETHE_JWT_SECRET", check when_set(min_chars(32));
    #[serde(skip)]
    jwt_public_key: Option<String> = None, env "LETHE_JWT_PUBLIC_KEY", check any;
    jwt_public_key_file: Option<PathBuf> = None, env "LETHE_JWT_PUBLIC_KEY_FILE", check any;
    jwt_jwks_file: Option<PathBuf> = None, env "LETHE_JWT_JWKS_FILE", check any;
    jwt_jwks_url: Option<String> = None, env "LETHE_JWT_JWKS_URL", check any;
    jwt_jwks_refresh_secs: u64 = 300, env "LETHE_JWT_JWKS_REFRESH_SECS", check at_least(10);
    jwt_jwks_max_stale_secs: u64 = 86_400, env "LETHE_JWT_JWKS_MAX_STALE_SECS", check any;
    jwt_issuer: Option<String> = None, env "LETHE_JWT_ISSUER", check any;
    jwt_audience: Option<String> = None, env "LETHE_JWT_AUDIENCE", check any;
    jwt_roles_claim: String = "roles".to_owned(), env "LETHE_JWT_ROLES_CLAIM", check any;
    // AWS (`AwsConfig`).
    aws_endpoint_url: Option<String> = None, env "LETHE_AWS_ENDPOINT_URL", check any;
    aws_region: Option<String> = None, env "LETHE_AWS_REGION", check any;
    s3_force_path_style: bool = false, env "LETHE_S3_FORCE_PATH_STYLE", check any;
    aws_role_external_id: Option<String> = None,
        env "LETHE_AWS_ROLE_EXTERNAL_ID", check when_set(external_id);
    aws_role_session_secs: u32 = 3600, env "LETHE_AWS_ROLE_SESSION_SECS", check sts_session;
    aws_principal_arn: Option<String> = None, env "LETHE_AWS_PRINCIPAL_ARN", check any;
    aws_allowed_role_arns: Vec<String> = Vec::new(),
        env "LETHE_ALLOWED_ROLE_ARNS", check role_patterns;
    aws_retry_mode: RetryMode = RetryMode::Standard, env "LETHE_AWS_RETRY_MODE", check any;
    aws_max_attempts: u32 = 8, env "LETHE_AWS_MAX_ATTEMPTS", check between(1, 100);
    aws_initial_backoff_ms: u64 = 1000,
        env "LETHE_AWS_INITIAL_BACKOFF_MS", check between(1, 60_000);
    s3_max_concurrency_per_bucket: u32 = DEFAULT_S3_MAX_CONCURRENCY_PER_BUCKET,
        env "LETHE_S3_MAX_CONCURRENCY_PER_BUCKET", check between(1, 10_000);
    // Grant reconciliation; the job engine (`JobsConfig`).
    grant_reconcile_interval_secs: u64 = 300,
        env "LETHE_GRANT_RECONCILE_INTERVAL_SECS", check any;
    workers: usize = 2, env "LETHE_WORKERS", check any;
    worker_poll_ms: u64 = 500, env "LETHE_WORKER_POLL_MS", check at_least(1);
    task_lease_secs: u64 = 60, env "LETHE_TASK_LEASE_SECS", check at_least(3);
    task_max_crashes: u32 = 10, env "LETHE_TASK_MAX_CRASHES", check between(1, 1000);
    scheduler_interval_secs: u64 = 30, env "LETHE_SCHEDULER_INTERVAL_SECS", check any;
    deadline_margin_hours: u64 = 72, env "LETHE_DEADLINE_MARGIN_HOURS", check any;
    requester_min_deadline_days: u64 = 7,
        env "LETHE_REQUESTER_MIN_DEADLINE_DAYS", check at_most(3650);
    max_line_bytes: usize = crate::lakefile::jsonl::find::DEFAULT_MAX_LINE_BYTES,
        env "LETHE_MAX_LINE_BYTES", check at_least(1024);
    temp_dir: Option<PathBuf> = None, env "LETHE_TEMP_DIR", check when_set(absolute);
    temp_max_bytes: Option<u64> = None, env "LETHE_TEMP_MAX_BYTES", check when_set(at_least(1));
    local_lake_root: Option<PathBuf> = None,
        env "LETHE_LOCAL_LAKE_ROOT", check when_set(absolute);
    // Erasure receipts (`ReceiptsConfig`).
    receipt_key_file: Option<PathBuf> = None, env "LETHE_RECEIPT_KEY_FILE", check any;
    receipt_kms_key_id: Option<String> = None,
        env "LETHE_RECEIPT_KMS_KEY_ID", check when_set(kms_key_id);
    deployment_name: String = "lethe".to_owned(),
        env "LETHE_DEPLOYMENT_NAME", check any;
}

impl Config {
    /// Loads from the process environment and, when `LETHE_CONFIG_FILE` (or `file`) names
    /// one, a TOML file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::from_sources(file, &env)
    }

    /// Builds the configuration from an explicit environment map (testable).
    pub fn from_sources(
        file: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        Self::from_env(file, &|name| env.get(name).cloned())
    }

    fn from_env(file: Option<&Path>, env: Env<'_>) -> Result<Self, ConfigError> {
        let file_path = file
            .map(Path::to_path_buf)
            .or_else(|| env("LETHE_CONFIG_FILE").map(PathBuf::from));
        let f = match file_path {
            Some(path) => read_file(&path)?,
            None => FileConfig::default(),
        };
        let s = Settings::read(env, f)?;
        let auth = s.auth()?;
        s.check_together()?;
        Ok(Config {
            database_url: s.database_url.clone(),
            migration_database_url: s.migration_database_url.clone(),
            db_max_connections: s.db_max_connections,
            listen_addr: s.listen_addr,
            log_format: s.log_format,
            log_filter: s.log_filter.clone(),
            max_body_bytes: s.max_body_bytes,
            limits: s.limits(),
            auth,
            aws: s.aws(),
            grant_reconcile_interval_secs: s.grant_reconcile_interval_secs,
            jobs: s.jobs(),
            local_lake_root: s.local_lake_root.clone(),
            metrics_token: s.metrics_token.clone(),
            receipts: ReceiptsConfig {
                key_file: s.receipt_key_file.clone(),
                kms_key_id: s.receipt_kms_key_id.clone(),
                deployment_name: s.deployment_name.clone(),
            },
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::ParseFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn invalid(name: &'static str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_vars_lists_exactly_the_variables_the_loader_reads() {
        let read = std::cell::RefCell::new(Vec::new());
        Config::from_env(None, &|name| {
            read.borrow_mut().push(name);
            None
        })
        .unwrap();
        let mut read = read.into_inner();
        read.sort();
        read.dedup();
        let mut listed = ENV_VARS.to_vec();
        listed.sort();
        assert_eq!(read, listed);
        listed.dedup();
        assert_eq!(listed.len(), ENV_VARS.len(), "a name is listed twice");
    }

    #[test]
    fn the_readme_states_the_default_the_loader_uses() {
        let readme = include_str!("../README.md");
        let section = &readme[readme.find("## Configuration").unwrap()..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
        let defaults = format!("{:?}", Config::from_sources(None, &env(&[])).unwrap());
        let mut checked = Vec::new();
        for row in section.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.split('|').collect();
            // Only a default written as one value: `10`, not "the OS temporary directory".
            let Some(value) = cells[2]
                .trim()
                .strip_prefix('`')
                .and_then(|v| v.strip_suffix('`'))
                .filter(|v| !v.contains('`'))
            else {
                continue;
            };
            for name in cells[1].split('`').skip(1).step_by(2) {
                let config = Config::from_sources(None, &env(&[(name, value)])).unwrap();
                assert_eq!(format!("{config:?}"), defaults, "README: {name} = {value}");
                checked.push(name);
            }
        }
        // Each of the 37 rows with a value as its default today was read.
        assert!(checked.len() >= 37, "only {checked:?}");
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_environment() {
        let config = Config::from_sources(None, &env(&[])).unwrap();
        assert_eq!(config.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(config.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.auth.roles_claim, "roles");
        assert!(config.auth.jwt_secret.is_none());
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let config = Config::from_sources(
            None,
            &env(&[
                (
                    "LETHE_JWT_SECRET",
                    "a-very-long-secret-that-must-not-leak-0123",
                ),
                ("DATABASE_URL", "postgres://u:hunter2@db/lethe"),
            ]),
        )
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("must-not-leak"));
        assert!(!debug.contains("hunter2"));
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = Config::from_sources(None, &env(&[("LETHE_LISTEN_ADDR", "nope")])).unwrap_err();
        assert!(err.to_string().starts_with("LETHE_LISTEN_ADDR"), "{err}");
        let err = Config::from_sources(None, &env(&[("LETHE_JWT_SECRET", "short")])).unwrap_err();
        assert!(err.to_string().starts_with("LETHE_JWT_SECRET"), "{err}");
        let err =
            Config::from_sources(None, &env(&[("LETHE_MAX_BODY_BYTES", "lots")])).unwrap_err();
        assert!(err.to_string().contains("LETHE_MAX_BODY_BYTES"), "{err}");
    }

    #[test]
    fn retry_concurrency_and_temporary_space_settings_are_read_and_checked() {
        let defaults = Config::from_sources(None, &env(&[])).unwrap();
        assert_eq!(defaults.aws.max_attempts, 8);
        assert_eq!(defaults.aws.retry_mode, RetryMode::Standard);
        assert_eq!(defaults.aws.initial_backoff_ms, 1000);
        assert_eq!(defaults.aws.s3_max_concurrency_per_bucket, 64);
        assert_eq!(defaults.jobs.temp_dir, None);
        assert_eq!(defaults.jobs.temp_max_bytes, None);
        let set = Config::from_sources(
            None,
            &env(&[
                ("LETHE_AWS_MAX_ATTEMPTS", "3"),
                ("LETHE_AWS_RETRY_MODE", "adaptive"),
                ("LETHE_AWS_INITIAL_BACKOFF_MS", "50"),
                ("LETHE_S3_MAX_CONCURRENCY_PER_BUCKET", "16"),
                ("LETHE_TEMP_DIR", "/var/tmp/lethe"),
                ("LETHE_TEMP_MAX_BYTES", "1073741824"),
            ]),
        )
        .unwrap();
        assert_eq!(set.aws.max_attempts, 3);
        assert_eq!(set.aws.retry_mode, RetryMode::Adaptive);
        assert_eq!(set.aws.initial_backoff_ms, 50);
        assert_eq!(set.aws.s3_max_concurrency_per_bucket, 16);
        assert_eq!(set.jobs.temp_dir, Some(PathBuf::from("/var/tmp/lethe")));
        assert_eq!(set.jobs.temp_max_bytes, Some(1 << 30));
        for (name, bad) in [
            ("LETHE_AWS_MAX_ATTEMPTS", "0"),
            ("LETHE_AWS_RETRY_MODE", "eager"),
            ("LETHE_AWS_INITIAL_BACKOFF_MS", "0"),
            ("LETHE_S3_MAX_CONCURRENCY_PER_BUCKET", "0"),
            ("LETHE_TEMP_DIR", "relative/dir"),
            ("LETHE_TEMP_MAX_BYTES", "0"),
            ("LETHE_TEMP_MAX_BYTES", "a lot"),
        ] {
            let err = Config::from_sources(None, &env(&[(name, bad)])).unwrap_err();
            assert!(err.to_string().starts_with(name), "{name}={bad}: {err}");
        }
    }

    #[test]
    fn connection_bounds_and_the_metrics_token_are_read_and_checked() {
        let defaults = Config::from_sources(None, &env(&[])).unwrap();
        assert_eq!(defaults.limits.header_read_timeout_secs, 10);
        assert_eq!(defaults.limits.idle_timeout_secs, 60);
        assert_eq!(defaults.limits.http2_keepalive_secs, 20);
        assert_eq!(defaults.limits.http2_max_streams, 100);
        assert!(defaults.metrics_token.is_none());
        let token = "m".repeat(32);
        let set = Config::from_sources(
            None,
            &env(&[
                ("LETHE_IDLE_TIMEOUT_SECS", "5"),
                ("LETHE_HTTP2_KEEPALIVE_SECS", "7"),
                ("LETHE_HTTP2_MAX_STREAMS", "9"),
                ("LETHE_METRICS_TOKEN", &token),
            ]),
        )
        .unwrap();
        assert_eq!(set.limits.idle_timeout_secs, 5);
        assert_eq!(set.limits.http2_keepalive_secs, 7);
        assert_eq!(set.limits.http2_max_streams, 9);
        assert_eq!(set.metrics_token.unwrap().expose(), token);
        for name in [
            "LETHE_IDLE_TIMEOUT_SECS",
            "LETHE_HTTP2_KEEPALIVE_SECS",
            "LETHE_HTTP2_MAX_STREAMS",
        ] {
            let err = Config::from_sources(None, &env(&[(name, "0")])).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
        let err =
            Config::from_sources(None, &env(&[("LETHE_METRICS_TOKEN", "short")])).unwrap_err();
        assert!(err.to_string().starts_with("LETHE_METRICS_TOKEN"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file_and_unknown_file_keys_are_rejected() {
        let dir = std::env::temp_dir().join(format!("lethe-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lethe.toml");
        std::fs::write(
            &path,
            "listen_addr = \"0.0.0.0:9000\"\nlog_format = \"text\"\n",
        )
        .unwrap();
        let config =
            Config::from_sources(Some(&path), &env(&[("LETHE_LOG_FORMAT", "json")])).unwrap();
        assert_eq!(config.listen_addr.to_string(), "0.0.0.0:9000");
        assert_eq!(config.log_format, LogFormat::Json);

        std::fs::write(&path, "listen_adress = \"0.0.0.0:9000\"\n").unwrap();
        let err = Config::from_sources(Some(&path), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("listen_adress"), "{err}");
    }

    #[test]
    fn receipts_are_signed_by_a_key_file_or_a_kms_key_never_both() {
        let alias = "alias/lethe-receipts";
        let config =
            Config::from_sources(None, &env(&[("LETHE_RECEIPT_KMS_KEY_ID", alias)])).unwrap();
        assert_eq!(config.receipts.kms_key_id.as_deref(), Some(alias));
        assert_eq!(config.receipts.key_file, None);
        let both = env(&[
            ("LETHE_RECEIPT_KMS_KEY_ID", alias),
            ("LETHE_RECEIPT_KEY_FILE", "/etc/lethe/receipt.pem"),
        ]);
        let err = Config::from_sources(None, &both).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("LETHE_RECEIPT_KMS_KEY_ID: set either LETHE_RECEIPT_KEY_FILE"),
            "{err}"
        );
        let bad = env(&[("LETHE_RECEIPT_KMS_KEY_ID", "alias/two words")]);
        let err = Config::from_sources(None, &bad).unwrap_err();
        assert!(
            err.to_string().starts_with("LETHE_RECEIPT_KMS_KEY_ID"),
            "{err}"
        );
    }
}
