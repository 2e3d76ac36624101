//! An object's bytes fetched piecewise (footer, bloom filters, match-column chunks), served
//! to the Parquet reader as one file. Reading a range that was not fetched is an error,
//! never a silent gap.

use std::ops::Range;

use bytes::{Buf, Bytes};
use parquet::errors::{ParquetError, Result};
use parquet::file::reader::{ChunkReader, Length};

/// Fetched ranges of an object of `len` bytes.
#[derive(Debug, Clone, Default)]
pub struct SparseObject {
    len: u64,
    ranges: Vec<(u64, Bytes)>,
}

impl SparseObject {
    pub fn new(len: u64) -> Self {
        Self {
            len,
            ranges: Vec::new(),
        }
    }

    /// Adds bytes fetched at `start`.
    pub fn insert(&mut self, start: u64, bytes: Bytes) {
        self.ranges.push((start, bytes));
        self.ranges.sort_by_key(|(s, _)| *s);
    }

    /// Whether `range` was fetched.
    pub fn has(&self, range: &Range<u64>) -> bool {
        self.slice(range.start, (range.end - range.start) as usize)
            .is_some()
    }

    /// Bytes held in memory.
    pub fn held(&self) -> u64 {
        self.ranges.iter().map(|(_, b)| b.len() as u64).sum()
    }

    fn slice(&self, start: u64, len: usize) -> Option<Bytes> {
        self.ranges.iter().find_map(|(s, b)| {
            let end = s + b.len() as u64;
            (start >= *s && start + len as u64 <= end)
                .then(|| b.slice((start - s) as usize..(start - s) as usize + len))
        })
    }
}

impl Length for SparseObject {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for SparseObject {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> Result<Self::T> {
        self.ranges
            .iter()
            .find(|(s, b)| start >= *s && start < s + b.len() as u64)
            .map(|(s, b)| b.slice((start - s) as usize..).reader())
            .ok_or_else(|| ParquetError::General(format!("byte {start} was not fetched")))
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes> {
        self.slice(start, length).ok_or_else(|| {
            ParquetError::General(format!("bytes {start}..+{length} were not fetched"))
        })
    }
}

/// The footer length from an object's last 8 bytes (`len` LE + `PAR1`).
pub fn footer_len(tail: &[u8]) -> Result<u64> {
    let n = tail.len();
    if n >= 8 && &tail[n - 4..] == b"PARE" {
        return Err(ParquetError::General(
            "Parquet modular encryption (encrypted footer): Lethe cannot read or rewrite encrypted objects"
                .to_owned(),
        ));
    }
    if n < 8 || &tail[n - 4..] != b"PAR1" {
        return Err(ParquetError::General(
            "not a Parquet object (no PAR1 footer)".to_owned(),
        ));
    }
    let len = u32::from_le_bytes([tail[n - 8], tail[n - 7], tail[n - 6], tail[n - 5]]);
    Ok(u64::from(len) + 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn serves_fetched_ranges_and_refuses_gaps() {
        let mut obj = SparseObject::new(100);
        obj.insert(90, Bytes::from_static(b"0123456789"));
        obj.insert(10, Bytes::from_static(b"abcdef"));
        assert_eq!(&obj.get_bytes(92, 3).unwrap()[..], b"234");
        assert!(obj.get_bytes(95, 10).is_err());
        assert!(obj.get_bytes(0, 1).is_err());
        let mut s = String::new();
        obj.get_read(12).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "cdef");
        assert!(obj.has(&(10..16)) && !obj.has(&(10..17)));
        assert_eq!(obj.held(), 16);
    }

    #[test]
    fn footer_lengths_need_the_magic() {
        let mut tail = 300u32.to_le_bytes().to_vec();
        tail.extend_from_slice(b"PAR1");
        assert_eq!(footer_len(&tail).unwrap(), 308);
        assert!(footer_len(b"xxxxPAR2").is_err());
        assert!(footer_len(b"PAR1").is_err());
    }
}
