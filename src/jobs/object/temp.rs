//! The temporary space of a worker process: where forget and rollback put the version
//! they download and its rewrite (`LETHE_TEMP_DIR`, else the OS temporary directory), and
//! how many bytes of such files the process may hold at once (`LETHE_TEMP_MAX_BYTES`,
//! shared by all its workers).
//!
//! Invariants: a [`Reservation`] holds bytes of the budget until it is dropped; a
//! [`BoundedWriter`] writes a byte only after reserving it, so a rewrite never holds more
//! than its reservation; running out (the budget, or the disk itself: `ENOSPC`, a quota)
//! is an error that says "temporary space exhausted", and fails that object only: its
//! directory (and every file in it) is removed when the attempt ends.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::storage::{NO_TEMP_SPACE, disk_full};

/// The temporary space of one process.
#[derive(Debug, Default)]
pub struct TempSpace {
    /// None: the OS temporary directory.
    dir: Option<PathBuf>,
    /// None: no budget.
    max: Option<u64>,
    used: Mutex<u64>,
}

/// Why bytes could not be reserved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{NO_TEMP_SPACE}: {needed} more byte(s) needed, {left} of LETHE_TEMP_MAX_BYTES={total} left"
)]
pub struct Exhausted {
    pub needed: u64,
    pub left: u64,
    pub total: u64,
}

impl TempSpace {
    /// As configured (`LETHE_TEMP_DIR`, `LETHE_TEMP_MAX_BYTES`).
    pub fn of(jobs: &crate::config::JobsConfig) -> Self {
        Self::new(jobs.temp_dir.clone(), jobs.temp_max_bytes)
    }

    pub fn new(dir: Option<PathBuf>, max: Option<u64>) -> Self {
        Self {
            dir,
            max,
            used: Mutex::new(0),
        }
    }

    fn used(&self) -> std::sync::MutexGuard<'_, u64> {
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes reserved now, by every worker of the process.
    pub fn in_use(&self) -> u64 {
        *self.used()
    }

    /// A fresh directory for one attempt's files, removed (with them) when dropped.
    pub fn dir(&self) -> std::io::Result<tempfile::TempDir> {
        let builder = tempfile::Builder::new().prefix("lethe-").to_owned();
        match &self.dir {
            Some(dir) => builder.tempdir_in(dir),
            None => builder.tempdir(),
        }
    }

    /// Reserves `bytes` of the budget (always granted without one).
    pub fn reserve(self: &Arc<Self>, bytes: u64) -> Result<Reservation, Exhausted> {
        self.take(bytes)?;
        Ok(Reservation {
            space: self.clone(),
            bytes,
        })
    }

    fn take(&self, bytes: u64) -> Result<(), Exhausted> {
        let mut used = self.used();
        if let Some(total) = self.max {
            let left = total.saturating_sub(*used);
            if bytes > left {
                return Err(Exhausted {
                    needed: bytes,
                    left,
                    total,
                });
            }
        }
        *used = used.saturating_add(bytes);
        Ok(())
    }

    /// Whether `bytes` could ever be reserved (the whole budget is at least that).
    pub fn could_hold(&self, bytes: u64) -> bool {
        self.max.is_none_or(|total| bytes <= total)
    }
}

/// Bytes of the budget held for one attempt's file, given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    space: Arc<TempSpace>,
    bytes: u64,
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Holds `more` bytes more.
    pub fn grow(&mut self, more: u64) -> Result<(), Exhausted> {
        self.space.take(more)?;
        self.bytes += more;
        Ok(())
    }

    /// Holds at least `bytes` in all.
    pub fn grow_to(&mut self, bytes: u64) -> Result<(), Exhausted> {
        self.grow(bytes.saturating_sub(self.bytes))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut used = self.space.used();
        *used = used.saturating_sub(self.bytes);
    }
}

/// A file writer that reserves each byte before writing it; a refusal (or a full disk)
/// is an error of kind `StorageFull` saying "temporary space exhausted".
pub struct BoundedWriter<'a, W> {
    inner: W,
    space: &'a mut Reservation,
    written: u64,
}

impl<'a, W: Write> BoundedWriter<'a, W> {
    /// Writes to `inner` within `space` (bytes it already holds are used first).
    pub fn new(inner: W, space: &'a mut Reservation) -> Self {
        Self {
            inner,
            space,
            written: 0,
        }
    }
}

/// A disk error as the rewrite reports it: "temporary space exhausted" when the disk (or a
/// quota) is full, else as it is.
fn disk_error(e: std::io::Error) -> std::io::Error {
    if disk_full(&e) {
        let message =
            format!("{NO_TEMP_SPACE}: the disk under the temporary directory is full ({e})");
        std::io::Error::new(std::io::ErrorKind::StorageFull, message)
    } else {
        e
    }
}

impl<W: Write> Write for BoundedWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let after = self.written + buf.len() as u64;
        if after > self.space.bytes() {
            self.space
                .grow_to(after)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::StorageFull, e))?;
        }
        let n = self.inner.write(buf).map_err(disk_error)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().map_err(disk_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_one_budget_and_give_it_back_when_dropped() {
        let space = Arc::new(TempSpace::new(None, Some(100)));
        let a = space.reserve(60).unwrap();
        let err = space.reserve(50).unwrap_err();
        assert_eq!(
            err,
            Exhausted {
                needed: 50,
                left: 40,
                total: 100
            }
        );
        assert!(err.to_string().starts_with("temporary space exhausted"));
        assert!(space.could_hold(100) && !space.could_hold(101));
        drop(a);
        assert_eq!(space.in_use(), 0);
        let mut b = space.reserve(50).unwrap();
        b.grow_to(30).unwrap();
        assert_eq!(b.bytes(), 50, "grow_to never shrinks");
        assert!(b.grow_to(101).is_err());
        assert_eq!(space.in_use(), 50, "a refused growth holds nothing more");
        let unbounded = Arc::new(TempSpace::default());
        assert!(unbounded.reserve(u64::MAX / 2).is_ok());
    }

    #[test]
    fn a_writer_past_the_budget_fails_with_temporary_space_exhausted_and_writes_nothing_more() {
        let space = Arc::new(TempSpace::new(None, Some(10)));
        let mut held = space.reserve(4).unwrap();
        let mut out = Vec::new();
        let mut w = BoundedWriter::new(&mut out, &mut held);
        w.write_all(b"123456").unwrap();
        let err = w.write_all(b"12345").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
        assert!(
            err.to_string().contains("temporary space exhausted"),
            "{err}"
        );
        assert_eq!(out, b"123456");
        assert_eq!(held.bytes(), 6);
        drop(held);
        assert_eq!(space.in_use(), 0);
    }

    /// A disk that is full.
    struct FullDisk;

    impl Write for FullDisk {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::from_raw_os_error(28))
        }
    }

    #[test]
    fn a_full_disk_reads_as_temporary_space_exhausted() {
        let space = Arc::new(TempSpace::default());
        let mut held = space.reserve(0).unwrap();
        let mut w = BoundedWriter::new(FullDisk, &mut held);
        for err in [w.write_all(b"x").unwrap_err(), w.flush().unwrap_err()] {
            assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
            assert!(
                err.to_string()
                    .starts_with("temporary space exhausted: the disk"),
                "{err}"
            );
        }
    }

    #[test]
    fn attempt_directories_are_made_in_the_configured_directory_and_removed_with_their_files() {
        let root = tempfile::tempdir().unwrap();
        let space = TempSpace::new(Some(root.path().to_owned()), None);
        let dir = space.dir().unwrap();
        assert_eq!(dir.path().parent(), Some(root.path()));
        std::fs::write(dir.path().join("source"), b"bytes").unwrap();
        drop(dir);
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }
}
