//! Types and rules of Lethe's domain. No axum, no sqlx, no AWS here: everything in this
//! module is pure and unit-tested on in-memory values.

pub mod access_policy;
pub mod classification;
pub mod data_mapper;
pub mod grants;
pub mod hive_type;
pub mod iam_policy;
pub mod job;
pub mod partition;
pub mod queue;
pub mod settings;
pub mod validation;
