//! `lethe bench …`: benchmarks that print numbers (never timed tests).

pub mod find;
pub mod lake;
pub mod queue;
