//! The full check's error, shared by the check (`check`), its Arrow comparison
//! (`compare`) and find, whose `FindError` carries it.

/// The output differs from the source minus the removed rows, or cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("full check failed: {0}")]
pub struct CheckError(pub String);

impl From<parquet::errors::ParquetError> for CheckError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        CheckError(format!("unreadable: {e}"))
    }
}
