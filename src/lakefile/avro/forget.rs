//! Forget in one Avro object: the header and every block without a match are copied byte
//! for byte; a block with matches is written again from its kept records' own encoded
//! bytes (never decoded to values and encoded again), compressed with the file's codec,
//! under the file's sync marker; a block left with no record goes. Memory holds one block
//! (compressed and decompressed) and the kept records of it.

use std::io::{Read, Write};
use std::ops::Range;

use crate::lakefile::match_set::MatchSet;

use super::AvroError;
use super::columns::Plan;
use super::cursor::put_long;
use super::decode::Records;
use super::frames::{Frames, Owned};
use super::header::Header;

/// What a rewrite did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forgot {
    /// Records in the source.
    pub records_before: u64,
    /// Records left out of the rewrite.
    pub records_removed: u64,
    /// Blocks in the source.
    pub blocks_before: u64,
    /// Blocks with matches: written again without them, or dropped.
    pub blocks_rewritten: u64,
    /// Blocks copied byte for byte.
    pub blocks_copied: u64,
    /// Rewritten blocks left with no record, hence dropped.
    pub blocks_dropped: u64,
}

/// Streams the container file `input` to `out` without its matching records (every record
/// when `every_row`: the header alone stays). A header or block larger than `max_block`
/// bytes, compressed or not, fails the rewrite.
pub fn forget(
    input: impl Read,
    mut out: impl Write,
    columns: &[String],
    ids: &MatchSet,
    every_row: bool,
    max_block: usize,
) -> Result<Forgot, AvroError> {
    let mut frames = Frames::new(input, max_block);
    let mut report = Forgot::default();
    let mut plan = None;
    while let Some(frame) = frames.next()? {
        let header = frames.header().ok_or(AvroError::TruncatedHeader)?;
        let Owned::Block { number, count, .. } = &frame else {
            out.write_all(&header.bytes)?;
            if !every_row {
                plan = Some(Plan::new(&header.schema, columns, ids)?);
            }
            continue;
        };
        report.blocks_before += 1;
        report.records_before += count;
        let data = header.codec.decompress(frame.data(), max_block, *number)?;
        let matcher = (plan.as_ref(), ids);
        let records = Records::new(&header.schema, matcher, &data, (*number, *count), max_block)?;
        let (kept, removed) = kept(records, every_row)?;
        report.records_removed += removed;
        if removed == 0 {
            out.write_all(frame.bytes())?;
            report.blocks_copied += 1;
            continue;
        }
        report.blocks_rewritten += 1;
        if removed == *count {
            report.blocks_dropped += 1;
            continue;
        }
        write_block(&mut out, header, (count - removed, &kept), &data)?;
    }
    out.flush()?;
    Ok(report)
}

/// The spans of a block's kept records (adjacent ones joined), and how many records go.
fn kept(mut records: Records<'_>, every_row: bool) -> Result<(Vec<Range<usize>>, u64), AvroError> {
    let mut kept: Vec<Range<usize>> = Vec::new();
    let mut removed = 0;
    let mut owners = Vec::new();
    while let Some(span) = records.next(&mut owners)? {
        if every_row || !owners.is_empty() {
            removed += 1;
            continue;
        }
        match kept.last_mut() {
            Some(last) if last.end == span.start => last.end = span.end,
            _ if span.is_empty() => {}
            _ => kept.push(span),
        }
    }
    Ok((kept, removed))
}

/// Writes a block of `count` records: the `kept` spans of `data`, compressed.
fn write_block(
    out: &mut impl Write,
    header: &Header,
    (count, kept): (u64, &[Range<usize>]),
    data: &[u8],
) -> Result<(), AvroError> {
    let mut records = Vec::with_capacity(kept.iter().map(|r| r.len()).sum());
    for span in kept {
        records.extend_from_slice(data.get(span.clone()).unwrap_or_default());
    }
    let compressed = header.codec.compress(&records)?;
    let mut head = Vec::with_capacity(20);
    put_long(&mut head, i64::try_from(count).unwrap_or(i64::MAX));
    put_long(
        &mut head,
        i64::try_from(compressed.len()).unwrap_or(i64::MAX),
    );
    out.write_all(&head)?;
    out.write_all(&compressed)?;
    out.write_all(&header.sync)?;
    Ok(())
}
