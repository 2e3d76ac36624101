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

/// Reads from an offset onwards.
pub struct SliceReader {
    file: Arc<File>,
    pos: u64,
}

impl Read for SliceReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl ChunkReader for SharedFile {
    type T = SliceReader;

    fn get_read(&self, start: u64) -> Result<Self::T> {
        Ok(SliceReader {
            file: self.file.clone(),
            pos: start,
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

/// The rows the Parquet file at `path` holds, as its footer says.
pub fn row_count(path: &Path) -> std::result::Result<u64, String> {
    let reader = SharedFile::open(path).map_err(|e| e.to_string())?;
    let read = super::find::guarded(|| {
        Ok(parquet::file::metadata::ParquetMetaDataReader::new().parse_and_finish(&reader)?)
    });
    let meta = read.map_err(|e| e.to_string())?;
    Ok(meta.file_metadata().num_rows().max(0) as u64)
}
