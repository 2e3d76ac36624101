//! One typed configuration tree, built from defaults, an optional TOML file and the
//! environment (`LETHE_*`, plus `DATABASE_URL`), in that order of precedence (env wins).
//!
//! Invariants: this is the only module that reads the process environment; secrets are
//! wrapped in [`Secret`] so they never appear in `Debug` output or logs; a bad value fails
//! start-up with a message naming the setting.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
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
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            http2_keepalive_secs: 20,
            http2_max_streams: 100,
            request_timeout_secs: 60,
            max_concurrent_requests: 256,
            max_connections: 1024,
            max_event_streams: 100,
            event_stream_max_secs: 300,
            max_report_streams: 8,
            queue_max_body_bytes: 16 * 1024 * 1024,
            metrics_cache_secs: 5,
        }
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
    fn default() -> Self {
        Self {
            endpoint_url: None,
            region: None,
            s3_force_path_style: false,
            role_external_id: None,
            role_session_secs: DEFAULT_ROLE_SESSION_SECS,
            principal_arn: None,
            allowed_role_arns: Vec::new(),
            retry_mode: RetryMode::Standard,
            max_attempts: DEFAULT_AWS_MAX_ATTEMPTS,
            initial_backoff_ms: DEFAULT_AWS_INITIAL_BACKOFF_MS,
            s3_max_concurrency_per_bucket: DEFAULT_S3_MAX_CONCURRENCY_PER_BUCKET,
        }
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

/// Lifetime asked of assumed-role sessions unless configured.
pub const DEFAULT_ROLE_SESSION_SECS: u32 = 3600;
/// Attempts of one AWS request unless configured.
pub const DEFAULT_AWS_MAX_ATTEMPTS: u32 = 8;
/// Base backoff of AWS retries unless configured (the SDK's own default).
pub const DEFAULT_AWS_INITIAL_BACKOFF_MS: u64 = 1000;
/// Requests in flight per S3 bucket unless configured.
pub const DEFAULT_S3_MAX_CONCURRENCY_PER_BUCKET: u32 = 64;

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

/// The file form: every field optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    db_max_connections: Option<u32>,
    listen_addr: Option<String>,
    log_format: Option<String>,
    log_filter: Option<String>,
    max_body_bytes: Option<usize>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    http2_keepalive_secs: Option<u64>,
    http2_max_streams: Option<u32>,
    request_timeout_secs: Option<u64>,
    max_concurrent_requests: Option<usize>,
    max_connections: Option<usize>,
    max_event_streams: Option<usize>,
    event_stream_max_secs: Option<u64>,
    max_report_streams: Option<usize>,
    queue_max_body_bytes: Option<usize>,
    metrics_cache_secs: Option<u64>,
    metrics_token: Option<String>,
    jwt_secret: Option<String>,
    jwt_public_key_file: Option<PathBuf>,
    jwt_jwks_file: Option<PathBuf>,
    jwt_jwks_url: Option<String>,
    jwt_jwks_refresh_secs: Option<u64>,
    jwt_jwks_max_stale_secs: Option<u64>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    jwt_roles_claim: Option<String>,
    aws_endpoint_url: Option<String>,
    aws_region: Option<String>,
    s3_force_path_style: Option<bool>,
    aws_role_external_id: Option<String>,
    aws_role_session_secs: Option<u32>,
    aws_principal_arn: Option<String>,
    aws_allowed_role_arns: Option<String>,
    aws_retry_mode: Option<String>,
    aws_max_attempts: Option<u32>,
    aws_initial_backoff_ms: Option<u64>,
    s3_max_concurrency_per_bucket: Option<u32>,
    grant_reconcile_interval_secs: Option<u64>,
    workers: Option<usize>,
    worker_poll_ms: Option<u64>,
    task_lease_secs: Option<u64>,
    task_max_crashes: Option<u32>,
    scheduler_interval_secs: Option<u64>,
    deadline_margin_hours: Option<u64>,
    requester_min_deadline_days: Option<u64>,
    max_line_bytes: Option<usize>,
    temp_dir: Option<PathBuf>,
    temp_max_bytes: Option<u64>,
    local_lake_root: Option<PathBuf>,
}

/// Default Postgres URL: the local server with trust auth, database `lethe`
/// (created on first start when missing).
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/lethe";

/// Every environment variable Lethe reads (the README's configuration reference lists
/// each; a test checks this list against the code, the README and deploy/).
pub const ENV_VARS: &[&str] = &[
    "DATABASE_URL",
    "LETHE_ALLOWED_ROLE_ARNS",
    "LETHE_AWS_ENDPOINT_URL",
    "LETHE_AWS_INITIAL_BACKOFF_MS",
    "LETHE_AWS_MAX_ATTEMPTS",
    "LETHE_AWS_PRINCIPAL_ARN",
    "LETHE_AWS_REGION",
    "LETHE_AWS_RETRY_MODE",
    "LETHE_AWS_ROLE_EXTERNAL_ID",
    "LETHE_AWS_ROLE_SESSION_SECS",
    "LETHE_CONFIG_FILE",
    "LETHE_DATABASE_URL",
    "LETHE_DB_MAX_CONNECTIONS",
    "LETHE_DEADLINE_MARGIN_HOURS",
    "LETHE_EVENT_STREAM_MAX_SECS",
    "LETHE_GRANT_RECONCILE_INTERVAL_SECS",
    "LETHE_HEADER_READ_TIMEOUT_SECS",
    "LETHE_HTTP2_KEEPALIVE_SECS",
    "LETHE_HTTP2_MAX_STREAMS",
    "LETHE_IDLE_TIMEOUT_SECS",
    "LETHE_JWT_AUDIENCE",
    "LETHE_JWT_ISSUER",
    "LETHE_JWT_JWKS_FILE",
    "LETHE_JWT_JWKS_MAX_STALE_SECS",
    "LETHE_JWT_JWKS_REFRESH_SECS",
    "LETHE_JWT_JWKS_URL",
    "LETHE_JWT_PUBLIC_KEY",
    "LETHE_JWT_PUBLIC_KEY_FILE",
    "LETHE_JWT_ROLES_CLAIM",
    "LETHE_JWT_SECRET",
    "LETHE_LISTEN_ADDR",
    "LETHE_LOCAL_LAKE_ROOT",
    "LETHE_LOG",
    "LETHE_LOG_FORMAT",
    "LETHE_MAX_BODY_BYTES",
    "LETHE_MAX_CONCURRENT_REQUESTS",
    "LETHE_MAX_CONNECTIONS",
    "LETHE_MAX_EVENT_STREAMS",
    "LETHE_MAX_LINE_BYTES",
    "LETHE_MAX_REPORT_STREAMS",
    "LETHE_METRICS_CACHE_SECS",
    "LETHE_METRICS_TOKEN",
    "LETHE_QUEUE_MAX_BODY_BYTES",
    "LETHE_REQUESTER_MIN_DEADLINE_DAYS",
    "LETHE_REQUEST_TIMEOUT_SECS",
    "LETHE_S3_FORCE_PATH_STYLE",
    "LETHE_S3_MAX_CONCURRENCY_PER_BUCKET",
    "LETHE_SCHEDULER_INTERVAL_SECS",
    "LETHE_TASK_LEASE_SECS",
    "LETHE_TASK_MAX_CRASHES",
    "LETHE_TEMP_DIR",
    "LETHE_TEMP_MAX_BYTES",
    "LETHE_WORKERS",
    "LETHE_WORKER_POLL_MS",
];

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
        let file_path = file
            .map(Path::to_path_buf)
            .or_else(|| env.get("LETHE_CONFIG_FILE").map(PathBuf::from));
        let f = match file_path {
            Some(path) => read_file(&path)?,
            None => FileConfig::default(),
        };
        let get = |key: &str| env.get(key).filter(|v| !v.is_empty()).cloned();

        let database_url = get("DATABASE_URL")
            .or_else(|| get("LETHE_DATABASE_URL"))
            .or(f.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(invalid("DATABASE_URL", "must be a postgres:// URL"));
        }
        let listen_addr = get("LETHE_LISTEN_ADDR")
            .or(f.listen_addr)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen_addr = listen_addr.parse().map_err(|_| {
            invalid(
                "LETHE_LISTEN_ADDR",
                "must be host:port, e.g. 127.0.0.1:8080",
            )
        })?;
        let log_format = match get("LETHE_LOG_FORMAT")
            .or(f.log_format)
            .as_deref()
            .unwrap_or("json")
        {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            _ => return Err(invalid("LETHE_LOG_FORMAT", "must be json or text")),
        };
        let public_key_file = get("LETHE_JWT_PUBLIC_KEY_FILE")
            .map(PathBuf::from)
            .or(f.jwt_public_key_file);
        let jwt_public_key_pem = match (get("LETHE_JWT_PUBLIC_KEY"), public_key_file) {
            (Some(pem), _) => Some(pem),
            (None, Some(path)) => Some(std::fs::read_to_string(&path).map_err(|e| {
                invalid(
                    "LETHE_JWT_PUBLIC_KEY_FILE",
                    &format!("cannot read {}: {e}", path.display()),
                )
            })?),
            (None, None) => None,
        };
        let jwks = match (
            get("LETHE_JWT_JWKS_FILE")
                .map(PathBuf::from)
                .or(f.jwt_jwks_file),
            get("LETHE_JWT_JWKS_URL").or(f.jwt_jwks_url),
        ) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "LETHE_JWT_JWKS_URL",
                    "set either LETHE_JWT_JWKS_FILE or LETHE_JWT_JWKS_URL, not both",
                ));
            }
            (Some(path), None) => Some(JwksSource::File(path)),
            (None, Some(url)) => {
                if !jwks_url_allowed(&url) {
                    return Err(invalid(
                        "LETHE_JWT_JWKS_URL",
                        "must be an https:// URL (http:// only on a loopback address)",
                    ));
                }
                Some(JwksSource::Url(url))
            }
            (None, None) => None,
        };
        let jwks_refresh_secs = parse_or(
            "LETHE_JWT_JWKS_REFRESH_SECS",
            get("LETHE_JWT_JWKS_REFRESH_SECS"),
            f.jwt_jwks_refresh_secs,
            300,
        )?;
        if jwks_refresh_secs < 10 {
            return Err(invalid(
                "LETHE_JWT_JWKS_REFRESH_SECS",
                "must be at least 10",
            ));
        }
        let jwks_max_stale_secs = parse_or(
            "LETHE_JWT_JWKS_MAX_STALE_SECS",
            get("LETHE_JWT_JWKS_MAX_STALE_SECS"),
            f.jwt_jwks_max_stale_secs,
            86_400,
        )?;
        if jwks_max_stale_secs < jwks_refresh_secs {
            return Err(invalid(
                "LETHE_JWT_JWKS_MAX_STALE_SECS",
                "must be at least LETHE_JWT_JWKS_REFRESH_SECS",
            ));
        }
        let jwt_secret = get("LETHE_JWT_SECRET").or(f.jwt_secret).map(Secret::new);
        if jwt_secret.as_ref().is_some_and(|s| s.expose().len() < 32) {
            return Err(invalid(
                "LETHE_JWT_SECRET",
                "must be at least 32 characters",
            ));
        }
        let metrics_token = get("LETHE_METRICS_TOKEN")
            .or(f.metrics_token)
            .map(Secret::new);
        if metrics_token
            .as_ref()
            .is_some_and(|s| s.expose().len() < 32)
        {
            return Err(invalid(
                "LETHE_METRICS_TOKEN",
                "must be at least 32 characters",
            ));
        }
        let roles_claim = get("LETHE_JWT_ROLES_CLAIM")
            .or(f.jwt_roles_claim)
            .unwrap_or_else(|| "roles".to_owned());
        let max_body_bytes = parse_or(
            "LETHE_MAX_BODY_BYTES",
            get("LETHE_MAX_BODY_BYTES"),
            f.max_body_bytes,
            2 * 1024 * 1024,
        )?;
        let d = LimitsConfig::default();
        let limits = LimitsConfig {
            header_read_timeout_secs: parse_or(
                "LETHE_HEADER_READ_TIMEOUT_SECS",
                get("LETHE_HEADER_READ_TIMEOUT_SECS"),
                f.header_read_timeout_secs,
                d.header_read_timeout_secs,
            )?,
            idle_timeout_secs: parse_or(
                "LETHE_IDLE_TIMEOUT_SECS",
                get("LETHE_IDLE_TIMEOUT_SECS"),
                f.idle_timeout_secs,
                d.idle_timeout_secs,
            )?,
            http2_keepalive_secs: parse_or(
                "LETHE_HTTP2_KEEPALIVE_SECS",
                get("LETHE_HTTP2_KEEPALIVE_SECS"),
                f.http2_keepalive_secs,
                d.http2_keepalive_secs,
            )?,
            http2_max_streams: parse_or(
                "LETHE_HTTP2_MAX_STREAMS",
                get("LETHE_HTTP2_MAX_STREAMS"),
                f.http2_max_streams,
                d.http2_max_streams,
            )?,
            request_timeout_secs: parse_or(
                "LETHE_REQUEST_TIMEOUT_SECS",
                get("LETHE_REQUEST_TIMEOUT_SECS"),
                f.request_timeout_secs,
                d.request_timeout_secs,
            )?,
            max_concurrent_requests: parse_or(
                "LETHE_MAX_CONCURRENT_REQUESTS",
                get("LETHE_MAX_CONCURRENT_REQUESTS"),
                f.max_concurrent_requests,
                d.max_concurrent_requests,
            )?,
            max_connections: parse_or(
                "LETHE_MAX_CONNECTIONS",
                get("LETHE_MAX_CONNECTIONS"),
                f.max_connections,
                d.max_connections,
            )?,
            max_event_streams: parse_or(
                "LETHE_MAX_EVENT_STREAMS",
                get("LETHE_MAX_EVENT_STREAMS"),
                f.max_event_streams,
                d.max_event_streams,
            )?,
            event_stream_max_secs: parse_or(
                "LETHE_EVENT_STREAM_MAX_SECS",
                get("LETHE_EVENT_STREAM_MAX_SECS"),
                f.event_stream_max_secs,
                d.event_stream_max_secs,
            )?,
            max_report_streams: parse_or(
                "LETHE_MAX_REPORT_STREAMS",
                get("LETHE_MAX_REPORT_STREAMS"),
                f.max_report_streams,
                d.max_report_streams,
            )?,
            queue_max_body_bytes: parse_or(
                "LETHE_QUEUE_MAX_BODY_BYTES",
                get("LETHE_QUEUE_MAX_BODY_BYTES"),
                f.queue_max_body_bytes,
                d.queue_max_body_bytes,
            )?,
            metrics_cache_secs: parse_or(
                "LETHE_METRICS_CACHE_SECS",
                get("LETHE_METRICS_CACHE_SECS"),
                f.metrics_cache_secs,
                d.metrics_cache_secs,
            )?,
        };
        for (name, zero) in [
            (
                "LETHE_HEADER_READ_TIMEOUT_SECS",
                limits.header_read_timeout_secs == 0,
            ),
            ("LETHE_IDLE_TIMEOUT_SECS", limits.idle_timeout_secs == 0),
            (
                "LETHE_HTTP2_KEEPALIVE_SECS",
                limits.http2_keepalive_secs == 0,
            ),
            ("LETHE_HTTP2_MAX_STREAMS", limits.http2_max_streams == 0),
            (
                "LETHE_REQUEST_TIMEOUT_SECS",
                limits.request_timeout_secs == 0,
            ),
            (
                "LETHE_MAX_CONCURRENT_REQUESTS",
                limits.max_concurrent_requests == 0,
            ),
            ("LETHE_MAX_CONNECTIONS", limits.max_connections == 0),
            ("LETHE_MAX_EVENT_STREAMS", limits.max_event_streams == 0),
            ("LETHE_MAX_REPORT_STREAMS", limits.max_report_streams == 0),
            (
                "LETHE_EVENT_STREAM_MAX_SECS",
                limits.event_stream_max_secs == 0,
            ),
        ] {
            if zero {
                return Err(invalid(name, "must be at least 1"));
            }
        }
        if limits.queue_max_body_bytes < max_body_bytes {
            return Err(invalid(
                "LETHE_QUEUE_MAX_BODY_BYTES",
                "must be at least LETHE_MAX_BODY_BYTES",
            ));
        }
        let db_max_connections = parse_or(
            "LETHE_DB_MAX_CONNECTIONS",
            get("LETHE_DB_MAX_CONNECTIONS"),
            f.db_max_connections,
            10,
        )?;
        if db_max_connections == 0 {
            return Err(invalid("LETHE_DB_MAX_CONNECTIONS", "must be at least 1"));
        }
        let s3_force_path_style = parse_or(
            "LETHE_S3_FORCE_PATH_STYLE",
            get("LETHE_S3_FORCE_PATH_STYLE"),
            f.s3_force_path_style,
            false,
        )?;
        let grant_reconcile_interval_secs = parse_or(
            "LETHE_GRANT_RECONCILE_INTERVAL_SECS",
            get("LETHE_GRANT_RECONCILE_INTERVAL_SECS"),
            f.grant_reconcile_interval_secs,
            300,
        )?;
        let jobs = JobsConfig {
            workers: parse_or("LETHE_WORKERS", get("LETHE_WORKERS"), f.workers, 2)?,
            poll_ms: parse_or(
                "LETHE_WORKER_POLL_MS",
                get("LETHE_WORKER_POLL_MS"),
                f.worker_poll_ms,
                500,
            )?,
            lease_secs: parse_or(
                "LETHE_TASK_LEASE_SECS",
                get("LETHE_TASK_LEASE_SECS"),
                f.task_lease_secs,
                60,
            )?,
            max_crashes: parse_or(
                "LETHE_TASK_MAX_CRASHES",
                get("LETHE_TASK_MAX_CRASHES"),
                f.task_max_crashes,
                crate::jobs::tasks::MAX_CRASHES as u32,
            )?,
            scheduler_interval_secs: parse_or(
                "LETHE_SCHEDULER_INTERVAL_SECS",
                get("LETHE_SCHEDULER_INTERVAL_SECS"),
                f.scheduler_interval_secs,
                30,
            )?,
            deadline_margin_hours: parse_or(
                "LETHE_DEADLINE_MARGIN_HOURS",
                get("LETHE_DEADLINE_MARGIN_HOURS"),
                f.deadline_margin_hours,
                72,
            )?,
            requester_min_deadline_days: parse_or(
                "LETHE_REQUESTER_MIN_DEADLINE_DAYS",
                get("LETHE_REQUESTER_MIN_DEADLINE_DAYS"),
                f.requester_min_deadline_days,
                7,
            )?,
            max_line_bytes: parse_or(
                "LETHE_MAX_LINE_BYTES",
                get("LETHE_MAX_LINE_BYTES"),
                f.max_line_bytes,
                crate::lakefile::jsonl::find::DEFAULT_MAX_LINE_BYTES,
            )?,
            temp_dir: get("LETHE_TEMP_DIR").map(PathBuf::from).or(f.temp_dir),
            temp_max_bytes: match get("LETHE_TEMP_MAX_BYTES") {
                Some(raw) => Some(raw.parse().map_err(|_| {
                    invalid("LETHE_TEMP_MAX_BYTES", &format!("cannot parse {raw:?}"))
                })?),
                None => f.temp_max_bytes,
            },
        };
        if jobs.temp_dir.as_ref().is_some_and(|d| !d.is_absolute()) {
            return Err(invalid("LETHE_TEMP_DIR", "must be an absolute path"));
        }
        if jobs.temp_max_bytes == Some(0) {
            return Err(invalid("LETHE_TEMP_MAX_BYTES", "must be at least 1"));
        }
        if jobs.requester_min_deadline_days > 3650 {
            return Err(invalid(
                "LETHE_REQUESTER_MIN_DEADLINE_DAYS",
                "must be at most 3650",
            ));
        }
        if jobs.lease_secs < 3 {
            return Err(invalid("LETHE_TASK_LEASE_SECS", "must be at least 3"));
        }
        if !(1..=1000).contains(&jobs.max_crashes) {
            return Err(invalid(
                "LETHE_TASK_MAX_CRASHES",
                "must be between 1 and 1000",
            ));
        }
        if jobs.max_line_bytes < 1024 {
            return Err(invalid("LETHE_MAX_LINE_BYTES", "must be at least 1024"));
        }
        if jobs.poll_ms == 0 {
            return Err(invalid("LETHE_WORKER_POLL_MS", "must be at least 1"));
        }
        let role_session_secs = parse_or(
            "LETHE_AWS_ROLE_SESSION_SECS",
            get("LETHE_AWS_ROLE_SESSION_SECS"),
            f.aws_role_session_secs,
            DEFAULT_ROLE_SESSION_SECS,
        )?;
        if !(900..=43_200).contains(&role_session_secs) {
            return Err(invalid(
                "LETHE_AWS_ROLE_SESSION_SECS",
                "must be between 900 and 43200 (what STS allows)",
            ));
        }
        let role_external_id = get("LETHE_AWS_ROLE_EXTERNAL_ID").or(f.aws_role_external_id);
        if role_external_id.as_ref().is_some_and(|id| {
            !(2..=1224).contains(&id.len())
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c))
        }) {
            return Err(invalid(
                "LETHE_AWS_ROLE_EXTERNAL_ID",
                "must be 2 to 1224 characters of letters, digits and +=,.@:/-_",
            ));
        }
        let allowed_role_arns: Vec<String> = get("LETHE_ALLOWED_ROLE_ARNS")
            .or(f.aws_allowed_role_arns)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = allowed_role_arns
            .iter()
            .find(|p| !crate::domain::data_mapper::is_role_pattern(p))
        {
            return Err(invalid(
                "LETHE_ALLOWED_ROLE_ARNS",
                &format!("{bad:?} is not an IAM role ARN (`*` is allowed in the role name only)"),
            ));
        }
        let retry_mode = match get("LETHE_AWS_RETRY_MODE")
            .or(f.aws_retry_mode)
            .as_deref()
            .unwrap_or("standard")
        {
            "standard" => RetryMode::Standard,
            "adaptive" => RetryMode::Adaptive,
            _ => {
                return Err(invalid(
                    "LETHE_AWS_RETRY_MODE",
                    "must be standard or adaptive",
                ));
            }
        };
        let max_attempts = parse_or(
            "LETHE_AWS_MAX_ATTEMPTS",
            get("LETHE_AWS_MAX_ATTEMPTS"),
            f.aws_max_attempts,
            DEFAULT_AWS_MAX_ATTEMPTS,
        )?;
        if !(1..=100).contains(&max_attempts) {
            return Err(invalid(
                "LETHE_AWS_MAX_ATTEMPTS",
                "must be between 1 and 100",
            ));
        }
        let initial_backoff_ms = parse_or(
            "LETHE_AWS_INITIAL_BACKOFF_MS",
            get("LETHE_AWS_INITIAL_BACKOFF_MS"),
            f.aws_initial_backoff_ms,
            DEFAULT_AWS_INITIAL_BACKOFF_MS,
        )?;
        if !(1..=60_000).contains(&initial_backoff_ms) {
            return Err(invalid(
                "LETHE_AWS_INITIAL_BACKOFF_MS",
                "must be between 1 and 60000",
            ));
        }
        let s3_max_concurrency_per_bucket = parse_or(
            "LETHE_S3_MAX_CONCURRENCY_PER_BUCKET",
            get("LETHE_S3_MAX_CONCURRENCY_PER_BUCKET"),
            f.s3_max_concurrency_per_bucket,
            DEFAULT_S3_MAX_CONCURRENCY_PER_BUCKET,
        )?;
        if !(1..=10_000).contains(&s3_max_concurrency_per_bucket) {
            return Err(invalid(
                "LETHE_S3_MAX_CONCURRENCY_PER_BUCKET",
                "must be between 1 and 10000",
            ));
        }
        let local_lake_root = get("LETHE_LOCAL_LAKE_ROOT")
            .map(PathBuf::from)
            .or(f.local_lake_root);
        if local_lake_root.as_ref().is_some_and(|r| !r.is_absolute()) {
            return Err(invalid("LETHE_LOCAL_LAKE_ROOT", "must be an absolute path"));
        }
        Ok(Config {
            local_lake_root,
            metrics_token,
            jobs,
            grant_reconcile_interval_secs,
            database_url: Secret::new(database_url),
            db_max_connections,
            listen_addr,
            log_format,
            log_filter: get("LETHE_LOG")
                .or(f.log_filter)
                .unwrap_or_else(|| "info,sqlx=warn".to_owned()),
            max_body_bytes,
            limits,
            auth: AuthConfig {
                jwt_secret,
                jwt_public_key_pem,
                jwks,
                jwks_refresh_secs,
                jwks_max_stale_secs,
                issuer: get("LETHE_JWT_ISSUER").or(f.jwt_issuer),
                audience: get("LETHE_JWT_AUDIENCE").or(f.jwt_audience),
                roles_claim,
            },
            aws: AwsConfig {
                endpoint_url: get("LETHE_AWS_ENDPOINT_URL").or(f.aws_endpoint_url),
                region: get("LETHE_AWS_REGION").or(f.aws_region),
                s3_force_path_style,
                role_external_id,
                role_session_secs,
                principal_arn: get("LETHE_AWS_PRINCIPAL_ARN").or(f.aws_principal_arn),
                allowed_role_arns,
                retry_mode,
                max_attempts,
                initial_backoff_ms,
                s3_max_concurrency_per_bucket,
            },
        })
    }
}

/// An https URL, or http on a loopback host; never with user info (`http://localhost:x@
/// evil/` names the host `evil`): the URL is parsed as a URL, not split as text.
fn jwks_url_allowed(url: &str) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
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

fn parse_or<T: std::str::FromStr>(
    name: &'static str,
    env: Option<String>,
    file: Option<T>,
    default: T,
) -> Result<T, ConfigError> {
    match env {
        Some(raw) => raw
            .parse()
            .map_err(|_| invalid(name, &format!("cannot parse {raw:?}"))),
        None => Ok(file.unwrap_or(default)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_vars_lists_exactly_the_variables_the_loader_reads() {
        let source = include_str!("config.rs");
        let code = &source[..source.find("#[cfg(test)]").unwrap()];
        let mut read: Vec<&str> = code
            .match_indices("get(\"")
            .map(|(i, _)| {
                let rest = &code[i + 5..];
                &rest[..rest.find('"').unwrap()]
            })
            .collect();
        read.sort();
        read.dedup();
        assert_eq!(read, ENV_VARS);
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
}
