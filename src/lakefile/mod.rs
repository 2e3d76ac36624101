//! The pure data plane: finding and forgetting subject rows in Parquet and JSON Lines objects.
//! No network I/O here: functions take readers and match sets, so the logic is tested on
//! in-memory data.

pub mod exact;
pub mod jsonl_check;
pub mod jsonl_find;
pub mod jsonl_forget;
pub mod jsonl_object;
pub mod jsonl_serde;
pub mod key;
pub mod local;
pub mod match_set;
pub mod parquet_check;
pub mod parquet_columns;
pub mod parquet_compare;
pub mod parquet_find;
pub mod parquet_forget;
pub mod parquet_rewrite;
pub mod parquet_schema;
pub mod prune;
pub mod sparse;
#[cfg(test)]
pub mod test_files;
