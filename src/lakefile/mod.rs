//! The pure data plane: finding and forgetting subject rows in Parquet, JSON Lines, CSV and
//! Avro objects, one folder per format behind one seam ([`format`]).
//! No network I/O here: functions take readers and match sets, so the logic is tested on
//! in-memory data.

pub mod avro;
pub mod csv;
pub mod format;
pub mod found;
pub mod iceberg;
pub mod jsonl;
pub mod match_set;
pub mod parquet;
#[cfg(test)]
pub mod test_files;
