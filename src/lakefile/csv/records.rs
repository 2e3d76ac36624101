//! Framing: a CSV object's bytes cut into its units, in order: the byte-order mark that
//! may open it, its header lines, its records, each with its own line ending. Lines end
//! at `\n`, `\r\n` or a lone `\r` (a `\r` at the end of the bytes so far waits for the
//! next byte). A LazySimple record is one line; an OpenCSV record runs on while a quoted
//! field is open at a line's end by the writer's rules (a quote opens a field only at
//! its start; see `written`).
//!
//! Memory holds the unit being read (at most `max` bytes, its final line ending not
//! counted; a longer one is an error as soon as it passes the cap) and the chunk being
//! framed.

use std::io::BufRead;

use super::dialect::Dialect;
use super::error::CsvError;
use super::fields::{Fields, Quoting};
use super::row::quoting;
use super::written::{Written, continues, tokenize_written};

/// The UTF-8 byte-order mark, which line readers skip at the start of an object.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Bytes framed at a time: what memory holds beyond the unit being read.
pub const CHUNK: usize = 64 * 1024;

/// What a unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// The UTF-8 byte-order mark opening the object.
    Mark,
    /// Header line `n` (from 1).
    Header(u64),
    /// Record `n` (from 1).
    Record(u64),
}

/// A unit's place in the framer's buffer, until the next push.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub kind: UnitKind,
    start: usize,
    /// Where its final line ending starts.
    body_end: usize,
    end: usize,
}

/// What framing yields next.
pub enum Next {
    Unit(Span),
    /// More bytes are needed (or [`Framer::finish`]).
    More,
    End,
}

/// Cuts pushed bytes into units.
pub struct Framer {
    buf: Vec<u8>,
    /// The unit being read starts here; the physical line being read at `line_start`;
    /// no line ending lies in `line_start..scanned`.
    start: usize,
    line_start: usize,
    scanned: usize,
    quoting: Option<Quoting>,
    /// The writer's rules' state at `line_start` (OpenCSV).
    state: Written,
    max: usize,
    headers: u64,
    headers_read: u64,
    records: u64,
    mark_checked: bool,
    eof: bool,
}

impl Framer {
    pub fn new(dialect: &Dialect, max: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            line_start: 0,
            scanned: 0,
            quoting: quoting(dialect),
            state: Written::default(),
            max,
            headers: dialect.header_lines,
            headers_read: 0,
            records: 0,
            mark_checked: false,
            eof: false,
        }
    }

    /// Adds bytes (at most [`CHUNK`] at a time keeps memory bounded); the units already
    /// yielded are dropped.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.line_start -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// No more bytes will come.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// A unit's bytes, line ending included.
    pub fn bytes(&self, span: &Span) -> &[u8] {
        self.buf.get(span.start..span.end).unwrap_or_default()
    }

    /// A unit's bytes without its final line ending.
    pub fn body(&self, span: &Span) -> &[u8] {
        self.buf.get(span.start..span.body_end).unwrap_or_default()
    }

    /// The next complete unit, if the bytes so far hold one.
    pub fn next_unit(&mut self) -> Result<Next, CsvError> {
        if !self.mark_checked {
            let head = self.buf.get(self.start..).unwrap_or_default();
            if head.len() < BOM.len() && !self.eof {
                return Ok(Next::More);
            }
            self.mark_checked = true;
            if head.starts_with(BOM) {
                let end = self.start + BOM.len();
                return Ok(Next::Unit(self.take(UnitKind::Mark, end, end)));
            }
        }
        loop {
            let rest = self.buf.get(self.scanned..).unwrap_or_default();
            let Some(at) = rest.iter().position(|b| matches!(b, b'\n' | b'\r')) else {
                self.scanned = self.buf.len();
                if !self.eof {
                    return self.more();
                }
                if self.line_start < self.buf.len()
                    && let Some(span) = self.line(self.buf.len(), self.buf.len())?
                {
                    return Ok(Next::Unit(span));
                }
                if self.start < self.buf.len() {
                    return Err(CsvError::Unterminated {
                        record: self.records + 1,
                    });
                }
                return Ok(Next::End);
            };
            let at = self.scanned + at;
            let end = match (self.buf.get(at), self.buf.get(at + 1)) {
                (Some(b'\r'), Some(b'\n')) => at + 2,
                (Some(b'\r'), None) if !self.eof => {
                    self.scanned = at;
                    return self.more();
                }
                _ => at + 1,
            };
            if let Some(span) = self.line(at, end)? {
                return Ok(Next::Unit(span));
            }
        }
    }

    /// A physical line ends at `at` (its ending runs to `end`): a header line, the end of
    /// a record, or (inside an open quoted field) one more line of it.
    fn line(&mut self, at: usize, end: usize) -> Result<Option<Span>, CsvError> {
        let length = at - self.start;
        if self.headers_read < self.headers {
            self.headers_read += 1;
            if length > self.max {
                return Err(CsvError::HeaderTooLong {
                    line: self.headers_read,
                    max: self.max,
                });
            }
            return Ok(Some(self.take(
                UnitKind::Header(self.headers_read),
                at,
                end,
            )));
        }
        if length > self.max {
            return Err(self.too_long());
        }
        if let Some(q) = self.quoting {
            let line = self.buf.get(self.line_start..at).unwrap_or_default();
            let text = String::from_utf8_lossy(line);
            tokenize_written(&text, q, &mut self.state, &mut Fields::new(0));
            if continues(self.state) {
                self.line_start = end;
                self.scanned = end;
                return Ok(None);
            }
            self.state = Written::default();
        }
        self.records += 1;
        Ok(Some(self.take(UnitKind::Record(self.records), at, end)))
    }

    fn take(&mut self, kind: UnitKind, body_end: usize, end: usize) -> Span {
        let span = Span {
            kind,
            start: self.start,
            body_end,
            end,
        };
        self.start = end;
        self.line_start = end;
        self.scanned = end;
        span
    }

    fn too_long(&self) -> CsvError {
        match self.headers_read < self.headers {
            true => CsvError::HeaderTooLong {
                line: self.headers_read + 1,
                max: self.max,
            },
            false => CsvError::RecordTooLong {
                record: self.records + 1,
                max: self.max,
            },
        }
    }

    /// More bytes are needed; an error when the unit being read is already too long.
    fn more(&self) -> Result<Next, CsvError> {
        // A `\r` waiting for its next byte is a line ending, not counted.
        let waiting = usize::from(self.scanned < self.buf.len());
        match self.buf.len() - self.start - waiting > self.max {
            true => Err(self.too_long()),
            false => Ok(Next::More),
        }
    }
}

/// Frames a reader's bytes, one unit at a time.
pub struct UnitReader<R> {
    input: R,
    pub framer: Framer,
    /// Which file a read error is about (None: the object, [`CsvError::Io`]).
    which: Option<&'static str>,
}

impl<R: BufRead> UnitReader<R> {
    pub fn new(input: R, dialect: &Dialect, max: usize, which: Option<&'static str>) -> Self {
        Self {
            input,
            framer: Framer::new(dialect, max),
            which,
        }
    }

    /// The next unit, None at the end.
    pub fn next(&mut self) -> Result<Option<Span>, CsvError> {
        loop {
            match self.framer.next_unit()? {
                Next::Unit(span) => return Ok(Some(span)),
                Next::End => return Ok(None),
                Next::More => {}
            }
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    return Err(match self.which {
                        Some(which) => CsvError::Read { which, error },
                        None => CsvError::Io(error),
                    });
                }
            };
            if chunk.is_empty() {
                self.framer.finish();
                continue;
            }
            let n = chunk.len().min(CHUNK);
            self.framer.push(&chunk[..n]);
            self.input.consume(n);
        }
    }
}

#[cfg(test)]
impl Framer {
    /// Bytes held between pushes (tests bound memory with it).
    pub fn bytes_held(&self) -> usize {
        self.buf.len() - self.start
    }
}
