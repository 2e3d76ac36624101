//! Lethe: a control plane for privacy operations on S3 data lakes.
//!
//! The module map: each module may use the modules its line names, all on lines below
//! it, so nothing points back up. `⇢` marks an edge that runs back up today and is to go,
//! with what it takes. `tests/module_map/` reads this map and fails on any other edge
//! between top-level modules, on a `⇢` edge that is gone, and on any import cycle, among
//! top-level modules or among the files of one folder.
//!
//! ```text
//! main       → bench, demo, serve, api, app, audit, auth, aws, config, db, jobs, receipt, telemetry
//! bench      → demo, api, app, auth, catalog, config, db, jobs, lakefile, storage
//! demo       → serve, api, app, audit, auth, config, db, receipt
//! serve      → api, app, auth, governance, jobs
//! api        → app, audit, auth, catalog, config, db, domain, governance, jobs, metrics, receipt, storage
//! app        → auth, aws, catalog, config, db, governance, jobs, metrics, receipt, storage
//! jobs       → audit, catalog, config, db, domain, lakefile, metrics, receipt, storage
//! governance → catalog, db, domain
//! catalog    → aws, domain, lakefile, metrics, storage
//! storage    → aws, config, domain, metrics
//! aws        → config, metrics
//! auth       → config
//! telemetry  → config
//! db         → audit, config, domain, receipt
//! metrics    → domain
//! config     → domain, lakefile
//! lakefile   → domain
//! audit      → receipt
//! receipt
//! domain
//! ```
//!
//! - `domain`: types and rules, pure (no I/O, no sqlx, no axum).
//! - `db`: all SQL, one file per table.
//! - `lakefile`: the data plane (find and forget in Parquet, JSON Lines, CSV and Avro bytes,
//!   one folder per format behind `lakefile::format`).
//! - `demo`, `bench`: `lethe demo` and `lethe bench …`, driving a private server.
//! - `storage`, `catalog`, `aws`: S3 / local files, Glue / Lake Formation and the table
//!   sources (`catalog::source`: what a mapper's table is), SDK setup.
//! - `jobs`: the job engine (task queue, one module per task kind, the job state machine).
//! - `governance`: Lake Formation grant plans and drift.
//! - `auth`: roles, the role matrix, token verification and minting.
//! - `config`: the settings, each declared once; `telemetry`: logging set-up.
//! - `metrics`: the process's counters and histograms, in the Prometheus text.
//! - `app`: `AppState` and the process's limits; `serve`: the HTTP server, the ops
//!   server, the health check.
//! - `api`: routes, extractors, problem documents, the OpenAPI document.
//! - `receipt`: signed, hash-chained erasure receipts (ES256 compact JWS, keys, JWKS, the
//!   offline check).
//! - `audit`: the audit trail's hash chain (canonical encoding, the walk that names the
//!   first broken row) and its signed checkpoints.
//!
//! ARCHITECTURE.md (at the repository root) walks through the layers, the task kinds,
//! the job state machine and the invariants.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod aws;
pub mod bench;
pub mod catalog;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod governance;
pub mod jobs;
pub mod lakefile;
pub mod metrics;
pub mod receipt;
pub mod serve;
pub mod storage;
pub mod telemetry;
