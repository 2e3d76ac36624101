//! Why a CSV object could not be searched, rewritten or checked. Errors name record and
//! line numbers and columns, never a value nor an id.

/// Why a CSV object could not be read, rewritten or checked.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("cannot read the object: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot read the {which} back: {error}")]
    Read {
        which: &'static str,
        error: std::io::Error,
    },
    #[error("record too long: record {record} is longer than {max} bytes")]
    RecordTooLong { record: u64, max: usize },
    #[error("header line {line} is longer than {max} bytes")]
    HeaderTooLong { line: u64, max: usize },
    #[error(
        "record {record} opens a quoted field the object never closes; refused (where its rows end is not certain)"
    )]
    Unterminated { record: u64 },
    #[error("record {record}: {reason}")]
    Unreadable { record: u64, reason: &'static str },
    #[error("match column {column:?} is not one of the {count} columns the table reads; refused")]
    UnknownColumn { column: String, count: usize },
    #[error(
        "the header names the match column {column:?} more than once; refused (which one a reader takes is not certain)"
    )]
    DuplicateColumn { column: String },
    #[error(
        "match column {column:?} is of type {glue_type}, which Lethe does not compare ids with; refused"
    )]
    UnsupportedColumn { column: String, glue_type: String },
    #[error("the columns are named by a header line, and the object has none before record 1")]
    NoHeader,
    #[error("the scan failed earlier")]
    Failed,
    #[error("the rewrite's header line {line} is not the source's byte for byte")]
    HeaderDiffers { line: u64 },
    #[error("the rewrite does not keep the source's byte-order mark as it is")]
    MarkDiffers,
    #[error("the rewrite ends before record {record} of the source, which it must keep")]
    Short { record: u64 },
    #[error(
        "record {record} of the rewrite is not record {source_record} of the source byte for byte"
    )]
    Differs { record: u64, source_record: u64 },
    #[error("the rewrite has more records than the {kept} it must keep")]
    Long { kept: u64 },
    #[error("record {record} of the rewrite matches")]
    Matches { record: u64 },
    #[error("{what}: the rewrite reported {reported}, the read-back counts {counted}")]
    Count {
        what: &'static str,
        reported: u64,
        counted: u64,
    },
}

impl CsvError {
    /// Recovers an error that travelled through an `io::Error` (a [`super::Scanner`]
    /// behind a streaming decompressor); any other I/O error is [`CsvError::Io`].
    pub fn from_io(err: std::io::Error) -> Self {
        if err.get_ref().is_some_and(|e| e.is::<CsvError>()) {
            if let Some(Ok(inner)) = err.into_inner().map(|e| e.downcast::<CsvError>()) {
                return *inner;
            }
            return CsvError::Failed;
        }
        CsvError::Io(err)
    }
}
