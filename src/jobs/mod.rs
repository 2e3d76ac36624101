//! The job engine. `tasks` is the Postgres work queue every process shares; find, forget,
//! verify and cleanup run as its tasks.

pub mod find;
pub mod tasks;
