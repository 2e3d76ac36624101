//! The pure data plane: finding and forgetting subject rows in Parquet, JSON Lines and Avro
//! objects.
//! No network I/O here: functions take readers and match sets, so the logic is tested on
//! in-memory data.

pub mod avro;
pub mod exact;
pub mod jsonl;
pub mod key;
pub mod match_set;
pub mod parquet;
#[cfg(test)]
pub mod test_files;
