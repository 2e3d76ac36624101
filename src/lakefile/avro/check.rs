//! The read-back of an Avro rewrite before its upload: both files are read in full, in one
//! pass over each, every block decompressed and every record decoded. The rewrite must be
//! exactly what forget writes:
//!
//! - its header is the source's, byte for byte (schema, codec, metadata, sync marker);
//! - each source block without a match is the rewrite's next block, byte for byte;
//! - each source block with matches and kept records is the rewrite's next block, whose
//!   records are the kept ones, in order, each record's encoded bytes identical;
//! - a source block whose every record matches has no block in the rewrite, and nothing
//!   follows the rewrite's last block;
//! - no record of the rewrite matches, and the counts are the ones the rewrite reported.
//!
//! Whether a record matches is decided by the decoder find and forget use. Errors name
//! block and record numbers (from 1), never values.

use std::io::Read;

use crate::lakefile::match_set::MatchSet;

use super::AvroError;
use super::columns::Plan;
use super::decode::Records;
use super::frames::{Frames, Owned};
use super::header::Header;

/// What the rewrite said it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// Records in the source, as forget counted them.
    pub records_before: u64,
    /// Records forget left out.
    pub records_removed: u64,
    /// Every record goes: the rewrite is the header alone.
    pub every_row: bool,
}

/// An error reading the rewrite, told apart from one reading the source.
fn in_rewrite(error: AvroError) -> AvroError {
    AvroError::InRewrite(Box::new(error))
}

/// The two files being compared.
struct Pair<S, R> {
    source: Frames<S>,
    rewrite: Frames<R>,
    max: usize,
    every_row: bool,
    rewrite_blocks: u64,
}

/// Checks that `rewrite` is `source` without exactly its matching records (see the module
/// docs), and that the rewrite's figures are the ones counted.
pub fn check(
    source: impl Read,
    rewrite: impl Read,
    columns: &[String],
    ids: &MatchSet,
    expected: Expected,
    max_block: usize,
) -> Result<(), AvroError> {
    let mut pair = Pair {
        source: Frames::new(source, max_block),
        rewrite: Frames::new(rewrite, max_block),
        max: max_block,
        every_row: expected.every_row,
        rewrite_blocks: 0,
    };
    pair.source.next()?;
    pair.rewrite.next().map_err(in_rewrite)?;
    let (Some(header), Some(other)) = (pair.source.header(), pair.rewrite.header()) else {
        return Err(AvroError::TruncatedHeader);
    };
    if header.bytes != other.bytes {
        return Err(AvroError::HeaderDiffers);
    }
    // Every record of the rewrite is asked whether it matches, whatever `every_row` says.
    let plan = Plan::new(&header.schema, columns, ids);
    let plan = match (plan, expected.every_row) {
        (Ok(plan), _) => Some(plan),
        (Err(_), true) => None,
        (Err(e), false) => return Err(e),
    };
    let (mut before, mut removed) = (0u64, 0u64);
    while let Some(block) = pair.source.next()? {
        let (count, gone) = pair.block(&block, plan.as_ref(), ids)?;
        before += count;
        removed += gone;
    }
    if pair.rewrite.next().map_err(in_rewrite)?.is_some() {
        return Err(AvroError::RewriteLong);
    }
    for (what, reported, counted) in [
        ("records before", expected.records_before, before),
        ("records removed", expected.records_removed, removed),
    ] {
        if reported != counted {
            return Err(AvroError::Count {
                what,
                reported,
                counted,
            });
        }
    }
    Ok(())
}

impl<S: Read, R: Read> Pair<S, R> {
    /// Checks one source block against the rewrite; its record count and how many go.
    fn block(
        &mut self,
        block: &Owned,
        plan: Option<&Plan>,
        ids: &MatchSet,
    ) -> Result<(u64, u64), AvroError> {
        let header = self.source.header().ok_or(AvroError::TruncatedHeader)?;
        let Owned::Block { number, count, .. } = *block else {
            return Ok((0, 0));
        };
        let data = header.codec.decompress(block.data(), self.max, number)?;
        let mut records = Records::new(
            &header.schema,
            (plan, ids),
            &data,
            (number, count),
            self.max,
        )?;
        let mut owners = Vec::new();
        let mut removed = 0;
        while records.next(&mut owners)?.is_some() {
            removed += u64::from(self.every_row || !owners.is_empty());
        }
        if removed == count {
            return Ok((count, removed));
        }
        let next = self.rewrite.next().map_err(in_rewrite)?;
        let next = next.ok_or(AvroError::RewriteShort { block: number })?;
        self.rewrite_blocks += 1;
        if removed == 0 {
            if next.bytes() != block.bytes() {
                return Err(AvroError::BlockDiffers { block: number });
            }
            return Ok((count, 0));
        }
        let header = self.rewrite.header().ok_or(AvroError::TruncatedHeader)?;
        let kept = Kept {
            header,
            plan,
            ids,
            max: self.max,
            block: number,
            rewrite_block: self.rewrite_blocks,
        };
        kept.compare(&data, count, &next)?;
        Ok((count, removed))
    }
}

/// A rewritten block, compared with the kept records of its source block.
struct Kept<'a> {
    header: &'a Header,
    plan: Option<&'a Plan>,
    ids: &'a MatchSet,
    max: usize,
    block: u64,
    rewrite_block: u64,
}

impl Kept<'_> {
    fn compare(&self, data: &[u8], count: u64, next: &Owned) -> Result<(), AvroError> {
        let Owned::Block {
            count: out_count, ..
        } = *next
        else {
            return Err(AvroError::RewriteShort { block: self.block });
        };
        let header = self.header;
        let out_data = header
            .codec
            .decompress(next.data(), self.max, self.rewrite_block)
            .map_err(in_rewrite)?;
        let matcher = (self.plan, self.ids);
        let mut source =
            Records::new(&header.schema, matcher, data, (self.block, count), self.max)?;
        let mut rewrite = Records::new(
            &header.schema,
            matcher,
            &out_data,
            (self.rewrite_block, out_count),
            self.max,
        )
        .map_err(in_rewrite)?;
        let (mut owners, mut out_owners) = (Vec::new(), Vec::new());
        let mut record = 0u64;
        while let Some(span) = source.next(&mut owners)? {
            record += 1;
            if !owners.is_empty() {
                continue;
            }
            let differs = AvroError::RecordDiffers {
                block: self.block,
                record,
            };
            let out = rewrite.next(&mut out_owners).map_err(in_rewrite)?;
            let out = out.ok_or(differs)?;
            if data.get(span) != out_data.get(out) {
                return Err(AvroError::RecordDiffers {
                    block: self.block,
                    record,
                });
            }
            if !out_owners.is_empty() {
                return Err(AvroError::Matches {
                    block: self.rewrite_block,
                    record: rewrite.number(),
                });
            }
        }
        if rewrite.next(&mut out_owners).map_err(in_rewrite)?.is_some() {
            return Err(AvroError::BlockLong { block: self.block });
        }
        Ok(())
    }
}
