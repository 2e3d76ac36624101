//! `lethe bench …`: benchmarks that print numbers (never timed tests).

pub mod find;
pub mod forget;
pub mod lake;
pub mod queue;
