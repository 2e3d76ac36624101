//! The container file's framing, from bytes that arrive in chunks of any size: the header
//! (see `header`), then blocks (record count, byte size, data, sync marker). A [`Framer`]
//! holds at most the header, or one block and its sync marker, of at most `max` bytes
//! each; a larger one is an error before it is buffered.
//!
//! Invariants: the header comes out first and once, then every block in file order, each
//! with its bytes exactly as the file has them; a block whose marker is not the header's,
//! or whose count or size is negative, is an error; the input must end after a block.

use std::ops::Range;

use super::AvroError;
use super::cursor::{Cursor, Stop};
use super::header::{Header, HeaderParse, Progress};

/// One block as the file has it.
#[derive(Debug)]
pub(crate) struct Block<'a> {
    /// 1 for the file's first block.
    pub number: u64,
    pub count: u64,
    /// The whole block: count, size, data and sync marker.
    pub bytes: &'a [u8],
    /// Where the compressed records are in `bytes`.
    pub data: Range<usize>,
}

impl Block<'_> {
    /// The compressed records.
    pub(crate) fn data(&self) -> &[u8] {
        self.bytes.get(self.data.clone()).unwrap_or_default()
    }
}

/// What a [`Framer`] hands on.
pub(crate) enum Event<'a> {
    Header(&'a Header),
    Block(&'a Header, Block<'a>),
}

/// Splits a container file's bytes into its header and blocks.
pub(crate) struct Framer {
    max: usize,
    buf: Vec<u8>,
    /// The buffer's length the next parse needs.
    need: usize,
    parse: HeaderParse,
    header: Option<Header>,
    blocks: u64,
}

enum Frame {
    Need(usize),
    Done {
        len: usize,
        count: u64,
        data: Range<usize>,
    },
}

impl Framer {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            buf: Vec::new(),
            need: 0,
            parse: HeaderParse::default(),
            header: None,
            blocks: 0,
        }
    }

    /// Frames `bytes`, handing the header, then each complete block, to `on`.
    pub(crate) fn push(
        &mut self,
        mut bytes: &[u8],
        on: &mut dyn FnMut(Event<'_>) -> Result<(), AvroError>,
    ) -> Result<(), AvroError> {
        while self.header.is_none() {
            // The header's end is not known before it is parsed: take what fits the cap.
            let room = (self.max.saturating_add(1)).saturating_sub(self.buf.len());
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.buf.extend_from_slice(now);
            bytes = later;
            if self.buf.len() < self.need {
                return Ok(());
            }
            match self.parse.advance(&self.buf, self.max)? {
                Progress::Need(need) => self.need = need,
                Progress::Done(header) => {
                    on(Event::Header(&header))?;
                    self.buf.drain(..header.bytes.len());
                    self.header = Some(header);
                    self.need = 0;
                }
            }
        }
        self.push_blocks(bytes, on)
    }

    /// Frames blocks: from the buffer while it holds a partial one (topped up to what it
    /// needs, no further), else straight from `bytes`.
    fn push_blocks(
        &mut self,
        mut bytes: &[u8],
        on: &mut dyn FnMut(Event<'_>) -> Result<(), AvroError>,
    ) -> Result<(), AvroError> {
        let Some(header) = &self.header else {
            return Ok(());
        };
        loop {
            let from_buffer = !self.buf.is_empty();
            if from_buffer && self.buf.len() < self.need {
                let take = (self.need - self.buf.len()).min(bytes.len());
                let (now, later) = bytes.split_at(take);
                self.buf.extend_from_slice(now);
                bytes = later;
                if self.buf.len() < self.need {
                    return Ok(());
                }
            }
            if !from_buffer && bytes.is_empty() {
                return Ok(());
            }
            let source = if from_buffer { &self.buf[..] } else { bytes };
            match frame(source, header, self.max, self.blocks + 1)? {
                Frame::Need(need) if from_buffer => self.need = need,
                Frame::Need(need) => {
                    self.buf.extend_from_slice(bytes);
                    self.need = need;
                    return Ok(());
                }
                Frame::Done { len, count, data } => {
                    self.blocks += 1;
                    let whole = source.get(..len).unwrap_or_default();
                    let block = Block {
                        number: self.blocks,
                        count,
                        bytes: whole,
                        data,
                    };
                    on(Event::Block(header, block))?;
                    if from_buffer {
                        self.buf.drain(..len);
                        self.need = 0;
                    } else {
                        bytes = bytes.get(len..).unwrap_or_default();
                    }
                }
            }
        }
    }

    /// Fails unless the input ended after a whole block (or a header with no block).
    pub(crate) fn finish(&self) -> Result<(), AvroError> {
        if self.header.is_none() {
            return Err(AvroError::TruncatedHeader);
        }
        if !self.buf.is_empty() {
            return Err(AvroError::TruncatedBlock {
                block: self.blocks + 1,
            });
        }
        Ok(())
    }

    pub(crate) fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// How many bytes are held between pushes.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Frames the block at the start of `bytes`, or says how long `bytes` must be for it.
fn frame(bytes: &[u8], header: &Header, max: usize, number: u64) -> Result<Frame, AvroError> {
    let mut c = Cursor::new(bytes);
    let mut long = || match c.len() {
        Ok(n) => Ok(Ok(n)),
        Err(Stop::Short(need)) => Ok(Err(need)),
        Err(Stop::Bad(reason)) => Err(AvroError::CorruptBlock {
            block: number,
            reason,
        }),
    };
    let count = match long()? {
        Ok(count) => count,
        Err(need) => return Ok(Frame::Need(need)),
    };
    let size = match long()? {
        Ok(size) => size,
        Err(need) => return Ok(Frame::Need(need)),
    };
    let size = usize::try_from(size)
        .ok()
        .filter(|s| *s <= max)
        .ok_or(AvroError::BlockTooLarge { block: number, max })?;
    let start = c.pos();
    let end = start.saturating_add(size);
    let len = end.saturating_add(16);
    match bytes.get(end..len) {
        None => Ok(Frame::Need(len)),
        Some(sync) if sync != header.sync => Err(AvroError::BadSync { block: number }),
        Some(_) => Ok(Frame::Done {
            len,
            count,
            data: start..end,
        }),
    }
}
