//! Lethe: a control plane for privacy operations on S3 data lakes.
//!
//! Dependency direction: `domain` ← `db`, `catalog` ← `api` ← `app` / `main`.

pub mod api;
pub mod app;
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
pub mod storage;
pub mod telemetry;
