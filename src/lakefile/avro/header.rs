//! The container file's header: the magic `Obj\x01`, the metadata map (the writer's schema
//! `avro.schema`, the codec `avro.codec`, user entries) and the 16-byte sync marker,
//! parsed from the file's first bytes as they arrive. Each step (the magic, a map block's
//! count, one entry, the marker) commits whole, so a parse resumes where it stopped and
//! costs one pass however the bytes are chunked.
//!
//! Invariants: a header is at most `max` bytes (its parse fails as soon as it needs more);
//! `avro.schema` and `avro.codec` appear at most once; a codec the specification does not
//! name is an error.

use super::AvroError;
use super::codec::Codec;
use super::cursor::{Cursor, Stop};
use super::schema::Schema;

const MAGIC: &[u8; 4] = b"Obj\x01";
const BAD_MAGIC: &str = "magic";

/// A parsed header.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub schema: Schema,
    pub codec: Codec,
    pub sync: [u8; 16],
    /// The header's bytes as the file has them.
    pub bytes: Vec<u8>,
}

/// Where the header's parse stands.
#[derive(Debug, Clone, Copy, Default)]
enum Step {
    #[default]
    Magic,
    Count,
    Entries {
        left: u64,
    },
    Sync,
}

/// A header being parsed.
#[derive(Debug, Default)]
pub(crate) struct HeaderParse {
    step: Step,
    /// How far the parse has come in the file's bytes.
    pos: usize,
    metadata: Vec<(Vec<u8>, Vec<u8>)>,
}

/// How far a parse got.
pub(crate) enum Progress {
    /// The bytes must be at least this long for the parse to go on.
    Need(usize),
    Done(Header),
}

impl HeaderParse {
    /// Parses `buf` (the file's first bytes, a longer prefix each time) as far as it goes.
    pub(crate) fn advance(&mut self, buf: &[u8], max: usize) -> Result<Progress, AvroError> {
        loop {
            let mut c = Cursor::at(buf, self.pos);
            let next = match step(self.step, &mut self.metadata, &mut c) {
                Ok(next) => next,
                Err(Stop::Short(need)) if need <= max => return Ok(Progress::Need(need)),
                Err(Stop::Short(_)) => return Err(AvroError::HeaderTooLarge { max }),
                Err(Stop::Bad(BAD_MAGIC)) => return Err(AvroError::BadMagic),
                Err(Stop::Bad(reason)) => return Err(AvroError::Header(reason.into())),
            };
            self.pos = c.pos();
            match next {
                Some(next) => self.step = next,
                None => {
                    let bytes = buf.get(..self.pos).unwrap_or_default().to_vec();
                    let metadata = std::mem::take(&mut self.metadata);
                    return complete(bytes, &metadata).map(Progress::Done);
                }
            }
        }
    }
}

/// Parses one step of the header; None after the sync marker.
fn step(
    step: Step,
    metadata: &mut Vec<(Vec<u8>, Vec<u8>)>,
    c: &mut Cursor<'_>,
) -> Result<Option<Step>, Stop> {
    Ok(Some(match step {
        Step::Magic => {
            if c.take(4)? != MAGIC {
                return Err(Stop::Bad(BAD_MAGIC));
            }
            Step::Count
        }
        Step::Count => match c.long()? {
            0 => Step::Sync,
            n => {
                if n < 0 {
                    c.len()?;
                }
                Step::Entries {
                    left: n.unsigned_abs(),
                }
            }
        },
        Step::Entries { left } => {
            let key = c.bytes()?;
            let value = c.bytes()?;
            metadata.push((key.to_vec(), value.to_vec()));
            match left.saturating_sub(1) {
                0 => Step::Count,
                left => Step::Entries { left },
            }
        }
        Step::Sync => {
            c.take(16)?;
            return Ok(None);
        }
    }))
}

/// The header of `bytes` (the whole header), whose map held `metadata`.
fn complete(bytes: Vec<u8>, metadata: &[(Vec<u8>, Vec<u8>)]) -> Result<Header, AvroError> {
    let sync: [u8; 16] = bytes
        .get(bytes.len().saturating_sub(16)..)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| AvroError::Header("no sync marker".into()))?;
    let value = |key: &str| -> Result<Option<&[u8]>, AvroError> {
        let mut values = metadata.iter().filter(|(k, _)| k == key.as_bytes());
        let first = values.next().map(|(_, v)| v.as_slice());
        match values.next() {
            Some(_) => Err(AvroError::Header(format!("the metadata has {key} twice"))),
            None => Ok(first),
        }
    };
    let schema = value("avro.schema")?
        .ok_or_else(|| AvroError::Header("the metadata has no avro.schema".into()))?;
    let schema = Schema::parse(schema).map_err(AvroError::Schema)?;
    let codec = match value("avro.codec")? {
        None => Codec::Null,
        Some(name) => Codec::of_name(name).ok_or_else(|| {
            let name: String = String::from_utf8_lossy(name).chars().take(64).collect();
            AvroError::UnknownCodec(name)
        })?,
    };
    Ok(Header {
        schema,
        codec,
        sync,
        bytes,
    })
}
