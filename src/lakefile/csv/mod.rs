//! CSV and other delimited text: records found, forgotten and checked byte for byte, read
//! as the Glue table's SerDe reads them (Athena's readers, which follow Hive's) or as a
//! path mapper declares them ([`Dialect`]). Callers hand in decompressed bytes.
//!
//! Records. Athena and Hive read a text table through a line reader first: a line ends at
//! `\n`, `\r\n` or a lone `\r`; a UTF-8 byte-order mark opening the object is not data;
//! the table's header lines (`skip.header.line.count`) are physical lines. Only then does
//! the SerDe split a line into fields. So:
//!
//! - LazySimpleSerDe: a record is one physical line, always. An escape byte
//!   (`escape.delim`) before a line ending does not join lines (the line reader has split
//!   them already); it only keeps a delimiter from splitting a field.
//! - OpenCSVSerde: a quoted field may hold a line ending. A CSV reader (pandas, Python's
//!   `csv`, Spark) reads such a record as one row; Athena reads each of its lines as a
//!   row of its own (Athena documents that this SerDe does not support embedded line
//!   breaks). Lethe keeps the writer's record whole: a record ends at the first line
//!   ending outside a quoted field, by the writer's rules with the table's quote and
//!   escape (a quote opens a field only at its start, so a stray quote inside a field,
//!   `O"Brien`, never joins lines, though opencsv would read it as opening one). The
//!   record is kept or removed whole, never in part. It matches when any reading of it
//!   does: opencsv's (Hive's and Athena's parser), the writer's, and, when it spans
//!   lines, each line read alone as Athena reads it. No row any of these readers shows
//!   the subject in survives, and no record is cut in two; the price is that a line
//!   Athena reads as a row of its own goes with the record it belongs to. A quoted field
//!   still open at the end of the object is an error (where its rows end is not
//!   certain), as is a record longer than `max_record` bytes.
//!
//! Fields are taken by position: missing trailing fields are NULL, extra ones ignored.
//! How a field compares with the queued ids is the column's declared Glue type read as
//! Athena reads it (see `value`); the SerDe's null text never equals an id.
//!
//! Every kept record, header line and byte-order mark is copied byte for byte with its
//! own line ending (whichever it is, or none for a last line without one); the read-back
//! ([`check`]) re-frames both files and compares them record by record. Errors and logs
//! name record numbers and columns, never values nor ids.

mod check;
mod dialect;
mod error;
mod fields;
mod find;
mod forget;
mod records;
mod row;
mod value;
#[cfg(test)]
mod writers;
mod written;

pub use check::{Expected, check};
pub use dialect::{Dialect, DialectKind, LAZY_SIMPLE, OPEN_CSV};
pub use error::CsvError;
pub use find::{DEFAULT_MAX_RECORD_BYTES, Found, Scanner, find};
pub use forget::{Forgot, forget};
