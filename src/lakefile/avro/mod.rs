//! Avro object container files: find ([`Scanner`]), forget ([`forget`]) and the full
//! read-back before upload ([`check`]), byte-exact.
//!
//! A container file is a header — the magic `Obj\x01`, a metadata map holding the writer's
//! schema (`avro.schema`), its codec (`avro.codec`, `null` when absent) and any user
//! metadata, and a 16-byte sync marker — then blocks, each a record count, a byte size,
//! that many bytes of records compressed with the file's codec, and the sync marker again.
//! Forget copies the header and every block without a match byte for byte; a block with
//! matches is written again from its kept records' own encoded bytes (never decoded to
//! values and encoded again), compressed with the file's codec, under the same marker; a
//! block left with no record goes. Codecs: `null`, `deflate` (raw), `snappy` (raw, with the
//! big-endian CRC-32 of the records, checked), `zstandard`, `bzip2`, `xz`; another name is
//! an error.
//!
//! Records are read by this module's own decoder, driven by the writer's schema (parsed
//! from its JSON: primitives, records, enums, arrays, maps, unions, fixed, named types and
//! references by full name, logical types). It decodes every byte of every record, so each
//! record's span is exact, and it is built to meet hostile bytes: varints are at most ten
//! bytes, every length is checked against the bytes left before anything is taken, values
//! and schemas nest at most 100 deep, and nothing is allocated by a length the file gives.
//! A header, a block, and a block's decompressed records are each at most `max_block`
//! bytes (decompression stops once past it); a block of a schema whose records encode to
//! nothing (records of nulls) holds at most `max_block` records.
//!
//! Match columns are dotted paths into nested records (`contact.email`). Each segment
//! names the field of exactly that name, else the only field equal to it ignoring ASCII
//! case (several: an error). The path may cross unions of `null` and one record (a null
//! there is no value), and may end on a union of `null` and one type. A column the
//! writer's schema lacks is NULL in every record (no match), as a Parquet column the file
//! lacks is; a file with none of the match columns is an error. An array or a map on the
//! path, a union of several non-null types, or a type ids are not compared with is an
//! error, never NULL.
//!
//! Values compare by the column's type, exactly, never through a float unless the column
//! is one (an id is cast to the column's type as `domain::key` casts it for Parquet):
//!
//! | Avro type of the column | compared as | the value |
//! | --- | --- | --- |
//! | `int`, `long` | integer | the number |
//! | `time-millis`, `time-micros`, `timestamp-{millis,micros,nanos}`, `local-timestamp-{millis,micros,nanos}` | integer | the integer the file stores, in the column's unit (`1704067200000` is 2024-01-01T00:00:00Z in a `timestamp-millis` column); a date-time text never matches |
//! | `string` (`uuid` on a string too) | text | the string as written |
//! | `enum` | text | the symbol |
//! | `uuid` on `fixed(16)` | text | lowercase, hyphenated 8-4-4-4-12 |
//! | `date` | text | `YYYY-MM-DD` (years past 9999 or before 0 with their sign); an integer id never matches, as `CAST('19723' AS date)` fails |
//! | `decimal` on `bytes` or `fixed` | decimal at the schema's scale | big-endian two's complement, exact at any width up to 128 bytes (wider: an error); scale at most 127 |
//! | `float` / `double` | float / double | the id rounded once to `f32` / `f64`; NaN matches nothing |
//! | `boolean`, `bytes`, `fixed` (no logical type), `null`, records, arrays, maps | — | an error when named as a match column |
//!
//! A logical type whose attributes are not valid (a decimal whose scale exceeds its
//! precision) is read as its underlying type, as the specification says. A string that
//! is not UTF-8 equals no id. Errors name blocks and records by number (from 1, records
//! within their block), never a value, an id or a field's content.

pub mod check;
mod codec;
mod columns;
mod container;
mod cursor;
pub mod datum;
mod decode;
pub mod find;
pub mod forget;
mod frames;
mod header;
mod schema;
mod values;
pub mod write;

#[cfg(test)]
mod interop;
#[cfg(test)]
mod tests;

pub use check::{Expected, check};
pub use codec::Codec;
pub use find::{Found, Scanner};
pub use forget::{Forgot, forget};

/// Largest header or block read unless the caller says otherwise.
pub const DEFAULT_MAX_BLOCK: usize = 64 * 1024 * 1024;

/// Why an Avro object could not be searched, rewritten or checked.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    #[error("cannot read or write the object: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an Avro object container file (its first bytes are not Avro's magic)")]
    BadMagic,
    #[error("the file ends inside its header")]
    TruncatedHeader,
    #[error("the file ends inside block {block}")]
    TruncatedBlock { block: u64 },
    #[error("the header is larger than {max} bytes")]
    HeaderTooLarge { max: usize },
    #[error("the header is not valid: {0}")]
    Header(String),
    #[error("the writer's schema cannot be read: {0}")]
    Schema(String),
    #[error("the file's codec {0:?} is not one the Avro specification names")]
    UnknownCodec(String),
    #[error("block {block} is larger than {max} bytes")]
    BlockTooLarge { block: u64, max: usize },
    #[error("block {block} decompresses to more than {max} bytes")]
    InflatesTooLarge { block: u64, max: usize },
    #[error("block {block} does not end with the file's sync marker")]
    BadSync { block: u64 },
    #[error("block {block} is corrupt: {reason}")]
    CorruptBlock { block: u64, reason: &'static str },
    #[error("record {record} of block {block} is corrupt: {reason}")]
    CorruptRecord {
        block: u64,
        record: u64,
        reason: &'static str,
    },
    #[error("block {block}: the CRC of its snappy data does not match its records")]
    Crc { block: u64 },
    #[error("match column {column:?} does not fit the file's schema: {reason}")]
    Column { column: String, reason: String },
    #[error(
        "match column {0:?} names no field exactly, and several fields whose names differ from it only in case; refused (which one Athena reads is not certain)"
    )]
    AmbiguousColumn(String),
    #[error("the file has no column {0:?}")]
    MissingColumn(String),
    #[error("the file has none of the match columns ({0})")]
    NoMatchColumn(String),
    #[error("column {column:?} has Avro type {avro_type}, which match ids cannot be compared with")]
    UnsupportedType { column: String, avro_type: String },
    #[error("the scan failed before (an earlier error stopped it)")]
    Failed,
    #[error("the rewrite's header is not the source's byte for byte")]
    HeaderDiffers,
    #[error("the rewrite ends before the records it must keep of source block {block}")]
    RewriteShort { block: u64 },
    #[error("the rewrite has blocks after the last one it must have")]
    RewriteLong,
    #[error(
        "the rewrite's block for source block {block}, which has no match, is not that block byte for byte"
    )]
    BlockDiffers { block: u64 },
    #[error(
        "record {record} of source block {block} is kept, and the rewrite does not have it byte for byte in its place"
    )]
    RecordDiffers { block: u64, record: u64 },
    #[error("the rewrite's block for source block {block} has more records than the source keeps")]
    BlockLong { block: u64 },
    #[error("record {record} of the rewrite's block {block} matches")]
    Matches { block: u64, record: u64 },
    #[error("{what}: the rewrite reported {reported}, the read-back counts {counted}")]
    Count {
        what: &'static str,
        reported: u64,
        counted: u64,
    },
    #[error("the rewrite: {0}")]
    InRewrite(Box<AvroError>),
    #[error("a value cannot be written: {0}")]
    Encode(String),
}

impl AvroError {
    /// Recovers an error that travelled through an `io::Error` (a [`Scanner`]'s writes).
    pub fn from_io(error: std::io::Error) -> Self {
        if !error.get_ref().is_some_and(|inner| inner.is::<AvroError>()) {
            return AvroError::Io(error);
        }
        match error
            .into_inner()
            .map(|inner| inner.downcast::<AvroError>())
        {
            Some(Ok(avro)) => *avro,
            _ => AvroError::Failed,
        }
    }
}
