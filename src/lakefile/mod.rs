//! The pure data plane: matching subject ids in Parquet (and later JSON Lines) objects.
//! No network I/O here: functions take readers and match sets, so the logic is tested on
//! in-memory data.

pub mod jsonl_find;
pub mod local;
pub mod match_set;
pub mod parquet_find;
pub mod sparse;
