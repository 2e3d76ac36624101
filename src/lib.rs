//! Lethe: a control plane for privacy operations on S3 data lakes.
//!
//! Dependency direction (an arrow points at what a module may use; nothing points back):
//!
//! ```text
//! main ─→ serve ─→ api ─→ app ─→ jobs ─→ lakefile, storage, catalog ─→ domain
//!                   │      │       └──→ db ─→ domain
//!                   │      └──→ auth, governance, metrics, aws, config
//!                   └──→ auth, db, domain
//! demo, bench ─→ serve, api client code, lakefile
//! ```
//!
//! - `domain`: types and rules, pure (no I/O, no sqlx, no axum).
//! - `db`: all SQL, one file per table.
//! - `lakefile`: the data plane (find and forget in Parquet / JSON Lines bytes).
//! - `storage`, `catalog`, `aws`: S3 / local files, Glue / Lake Formation, SDK setup.
//! - `jobs`: the job engine (task queue, one module per task kind, the job state machine).
//! - `governance`: Lake Formation grant plans and drift.
//! - `auth`: roles, the role matrix, token verification and minting.
//! - `app`: `AppState`; `serve`: the HTTP server, the ops server, the health check.
//! - `api`: routes, extractors, problem documents, the OpenAPI document.
//!
//! ARCHITECTURE.md (at the repository root) walks through the layers, the task kinds,
//! the job state machine and the invariants.

pub mod api;
pub mod app;
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
pub mod serve;
pub mod storage;
pub mod telemetry;
