//! A local file as a Parquet [`ChunkReader`] that is cheap to clone (positional reads on a
//! shared handle), so footer, bloom filters and column chunks are read without copying
//! the file into memory.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parquet::errors::{ParquetError, Result};
use parquet::file::reader::{ChunkReader, Length};

/// A shared, read-only file.
#[derive(Debug, Clone)]
pub struct SharedFile {
    file: Arc<File>,
    len: u64,
}

impl SharedFile {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            file: Arc::new(file),
            len,
        })
    }
}

impl Length for SharedFile {
    fn len(&self) -> u64 {
        self.len
    }
}

/// Bytes a [`SliceReader`] reads ahead: copying a column chunk verbatim goes through
/// `io::copy`'s 8 KiB buffer, and one read per 8 KiB made copying untouched row groups
/// the larger part of a rewrite.
const READ_AHEAD: usize = 1 << 20;

/// Reads from an offset onwards, a mebibyte at a time.
pub struct SliceReader {
    file: Arc<File>,
    /// File offset of `buf[0]`.
    pos: u64,
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out.
    at: usize,
}

impl Read for SliceReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.buf.len() {
            self.pos += self.buf.len() as u64;
            self.buf.clear();
            self.at = 0;
            // Large reads go straight through; small ones are served from the read-ahead.
            if out.len() >= READ_AHEAD {
                let n = self.file.read_at(out, self.pos)?;
                self.pos += n as u64;
                return Ok(n);
            }
            self.buf.resize(READ_AHEAD, 0);
            let n = self.file.read_at(&mut self.buf, self.pos)?;
            self.buf.truncate(n);
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl ChunkReader for SharedFile {
    type T = SliceReader;

    fn get_read(&self, start: u64) -> Result<Self::T> {
        Ok(SliceReader {
            file: self.file.clone(),
            pos: start,
            buf: Vec::new(),
            at: 0,
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes> {
        let mut buf = vec![0; length];
        self.file
            .read_exact_at(&mut buf, start)
            .map_err(|e| ParquetError::External(Box::new(e)))?;
        Ok(Bytes::from(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_readers_return_the_exact_bytes_whatever_the_read_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3 * READ_AHEAD + 12_345)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let file = SharedFile::open(&path).unwrap();
        for (start, sizes) in [
            (0_u64, vec![8192]),
            (100, vec![7, 8192, READ_AHEAD + 3, 1, 65_536]),
            (READ_AHEAD as u64 - 5, vec![2 * READ_AHEAD, 10]),
        ] {
            let mut reader = file.get_read(start).unwrap();
            let mut got = Vec::new();
            for size in sizes.iter().cycle() {
                let mut buf = vec![0; *size];
                let n = reader.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got.len(), data.len() - start as usize, "from {start}");
            assert!(got == data[start as usize..], "bytes from {start}");
        }
        let mut taken = Vec::new();
        std::io::copy(&mut file.get_read(10).unwrap().take(20_000), &mut taken).unwrap();
        assert_eq!(taken, &data[10..20_010]);
        assert_eq!(file.get_bytes(5, 3).unwrap().as_ref(), &data[5..8]);
    }
}
