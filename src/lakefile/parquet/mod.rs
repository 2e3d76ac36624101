//! Apache Parquet: find by footer, statistics, bloom filters and the match columns' pages;
//! forget row group by row group (untouched groups copied as compressed bytes); the full
//! pre-upload check of the rewrite against the source.

pub mod check;
pub mod columns;
pub mod compare;
pub mod error;
pub mod find;
pub mod forget;
pub mod local;
pub mod prune;
pub mod rewrite;
pub mod schema;
pub mod sparse;
