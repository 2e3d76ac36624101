//! Types and rules of Lethe's domain. No axum, no sqlx, no AWS here: everything in this
//! module is pure and unit-tested on in-memory values.

pub mod access_policy;
pub mod data_mapper;
pub mod hive_type;
pub mod queue;
pub mod settings;
pub mod validation;
