//! The job engine. `tasks` is the Postgres work queue every process shares; `lifecycle`
//! creates, advances and cancels jobs; `find_phase` holds the find tasks over `find`
//! (ranged reads of one object); `runtime` runs workers and the scheduler.

pub mod find;
pub mod find_phase;
pub mod forget_phase;
pub mod lifecycle;
pub mod runtime;
pub mod tasks;

pub use find_phase::Engine;
