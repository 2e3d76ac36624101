//! Find in one Avro object: a [`Scanner`] is fed the container file's bytes in any
//! chunks (it is a `Write`, so it can sit behind a download), frames them, decompresses
//! each block and decodes its records, and counts the records whose match columns equal a
//! queued match. Memory holds the header or one block (compressed, at most `max_block`
//! bytes, and decompressed, at most `max_block` bytes too).

use crate::lakefile::match_set::MatchSet;

use super::AvroError;
use super::columns::Plan;
use super::container::{Block, Event, Framer};
use super::decode::Records;
use super::header::Header;

pub use crate::lakefile::found::Found;

/// A push-based scanner of one container file: write its bytes, then [`Scanner::finish`].
/// After an error every write fails, and so does `finish`.
pub struct Scanner<'a> {
    columns: &'a [String],
    ids: &'a MatchSet,
    max_block: usize,
    framer: Framer,
    plan: Option<Plan>,
    found: Found,
    failed: bool,
}

impl<'a> Scanner<'a> {
    /// A scanner matching `columns` (dotted paths) against `ids`, refusing a header or a
    /// block (compressed or not) larger than `max_block` bytes.
    pub fn new(columns: &'a [String], ids: &'a MatchSet, max_block: usize) -> Self {
        Self {
            columns,
            ids,
            max_block,
            framer: Framer::new(max_block),
            plan: None,
            found: Found::default(),
            failed: false,
        }
    }

    /// Scans `bytes`, the next part of the file.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), AvroError> {
        if self.failed {
            return Err(AvroError::Failed);
        }
        let Self {
            columns,
            ids,
            max_block,
            framer,
            plan,
            found,
            ..
        } = self;
        let result = framer.push(bytes, &mut |event| match event {
            Event::Header(header) => {
                *plan = Some(Plan::new(&header.schema, columns, ids)?);
                Ok(())
            }
            Event::Block(header, block) => {
                let plan = plan.as_ref().ok_or(AvroError::Failed)?;
                scan_block(header, &block, (plan, ids), *max_block, found)
            }
        });
        self.failed = result.is_err();
        result
    }

    /// How many bytes of the file are held between writes.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.framer.buffered()
    }

    /// The report, once the whole file was written; an error if it ended early.
    pub fn finish(self) -> Result<Found, AvroError> {
        if self.failed {
            return Err(AvroError::Failed);
        }
        self.framer.finish()?;
        Ok(self.found)
    }
}

/// Counts a block's records and its matching ones.
fn scan_block(
    header: &Header,
    block: &Block<'_>,
    (plan, ids): (&Plan, &MatchSet),
    max: usize,
    found: &mut Found,
) -> Result<(), AvroError> {
    let data = header.codec.decompress(block.data(), max, block.number)?;
    let mut records = Records::new(
        &header.schema,
        (Some(plan), ids),
        &data,
        (block.number, block.count),
        max,
    )?;
    let mut owners = Vec::new();
    while records.next(&mut owners)?.is_some() {
        found.count(&owners);
    }
    Ok(())
}

impl std::io::Write for Scanner<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
