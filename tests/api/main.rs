//! API tests through the real router, and end-to-end tests through a real listener,
//! Postgres and the AWS emulator. One test binary, so the AWS SDK is linked once.

mod common;

mod auth_matrix;
mod connections;
mod console;
mod data_mappers;
mod deploy;
mod e2e_api_kill;
mod e2e_avro;
mod e2e_csv;
mod e2e_disk;
mod e2e_exact;
mod e2e_faults;
mod e2e_find;
mod e2e_glue;
mod e2e_governance;
mod e2e_hidden;
mod e2e_iceberg;
mod e2e_jobs;
mod e2e_retention;
mod e2e_roles;
mod e2e_rollback;
mod e2e_schema;
mod e2e_scope;
mod e2e_serde;
mod e2e_storage;
mod e2e_throttle;
mod e2e_versions;
mod e2e_versions_races;
mod e2e_writers;
mod errors;
mod governance;
mod headers;
mod iceberg;
mod jobs;
mod lake;
mod limits;
mod memory;
mod openapi;
mod pg_cluster;
mod queue;
mod queue_audit;
mod queue_retry;
mod readback;
mod settings_audit;
