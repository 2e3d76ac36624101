//! The frames of a container file pulled from a reader (forget and check read files; find
//! is written to): a [`Framer`] fed 64 KiB reads, its frames copied out one at a time.
//! Memory holds one read and the frames it completed (at most one block beyond the read).

use std::collections::VecDeque;
use std::io::Read;
use std::ops::Range;

use super::AvroError;
use super::container::{Event, Framer};
use super::header::Header;

/// A frame, owned.
pub(crate) enum Owned {
    Header,
    Block {
        number: u64,
        count: u64,
        bytes: Vec<u8>,
        data: Range<usize>,
    },
}

impl Owned {
    /// The whole block as the file has it.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Owned::Header => &[],
            Owned::Block { bytes, .. } => bytes,
        }
    }

    /// The block's compressed records.
    pub(crate) fn data(&self) -> &[u8] {
        match self {
            Owned::Header => &[],
            Owned::Block { bytes, data, .. } => bytes.get(data.clone()).unwrap_or_default(),
        }
    }
}

/// The frames of a container file read from `input`.
pub(crate) struct Frames<R> {
    input: R,
    framer: Framer,
    queue: VecDeque<Owned>,
    chunk: Vec<u8>,
    done: bool,
}

impl<R: Read> Frames<R> {
    pub(crate) fn new(input: R, max: usize) -> Self {
        Self {
            input,
            framer: Framer::new(max),
            queue: VecDeque::new(),
            chunk: vec![0; 64 << 10],
            done: false,
        }
    }

    /// The next frame (the header first); None after the last block.
    pub(crate) fn next(&mut self) -> Result<Option<Owned>, AvroError> {
        loop {
            if let Some(frame) = self.queue.pop_front() {
                return Ok(Some(frame));
            }
            if self.done {
                return Ok(None);
            }
            let n = loop {
                match self.input.read(&mut self.chunk) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(AvroError::Io(e)),
                }
            };
            if n == 0 {
                self.framer.finish()?;
                self.done = true;
                continue;
            }
            let Self {
                framer,
                queue,
                chunk,
                ..
            } = self;
            framer.push(chunk.get(..n).unwrap_or_default(), &mut |event| {
                queue.push_back(match event {
                    Event::Header(_) => Owned::Header,
                    Event::Block(_, b) => Owned::Block {
                        number: b.number,
                        count: b.count,
                        bytes: b.bytes.to_vec(),
                        data: b.data,
                    },
                });
                Ok(())
            })?;
        }
    }

    /// The header, once read.
    pub(crate) fn header(&self) -> Option<&Header> {
        self.framer.header()
    }
}
