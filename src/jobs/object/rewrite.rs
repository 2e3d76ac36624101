//! The local half of a forget: rewriting a downloaded object to a new file without the
//! matching records, as its format says (`lakefile::format::Records::rewrite`: each
//! format's rewrite and its full read-back against the source before anything may be
//! uploaded). Every write error fails the rewrite, the final flush's too. The new file is
//! written within a [`Reservation`] of the worker's temporary space. Both files are
//! hashed (SHA-256 of every byte, the receipts' evidence) without a pass of their own:
//! the rewrite as it is written (what is uploaded), the version read as the download
//! streamed it in (read from the file only when the store did not hash it), so no
//! second read of the store is needed.

use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::db::job_object::ObjectUpdate;
use crate::lakefile::format::{Matching, Records, Rewritten};
use crate::receipt::jws::hex;
use crate::storage::Fetched;

use super::temp::{BoundedWriter, Reservation};

/// What a rewrite of one object came to.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub rows_before: u64,
    pub rows_removed: u64,
    row_groups_rewritten: usize,
    row_groups_copied: usize,
    /// Lowercase hex SHA-256 of the source (the version read) and of the rewrite.
    pub sha256_before: String,
    pub sha256_after: String,
}

impl Figures {
    /// The object's update recording this rewrite of `fetched` (the version rewritten;
    /// the version find read stays recorded apart).
    pub fn update<'a>(&'a self, fetched: &'a Fetched, size_after: i64) -> ObjectUpdate<'a> {
        ObjectUpdate {
            read_version_id: fetched.version_id.as_deref(),
            rows_total: Some(self.rows_before as i64),
            rows_removed: Some(self.rows_removed as i64),
            rows_after: Some((self.rows_before - self.rows_removed) as i64),
            size_after: Some(size_after),
            row_groups_rewritten: Some(self.row_groups_rewritten as i32),
            row_groups_copied: Some(self.row_groups_copied as i32),
            sha256_before: Some(&self.sha256_before),
            sha256_after: Some(&self.sha256_after),
            ..ObjectUpdate::default()
        }
    }
}

impl From<Rewritten> for Figures {
    fn from(r: Rewritten) -> Self {
        Self {
            rows_before: r.records_before,
            rows_removed: r.records_removed,
            row_groups_rewritten: r.groups_rewritten,
            row_groups_copied: r.groups_copied,
            ..Self::default()
        }
    }
}

/// Rewrites `src` (the object at `key`; with the SHA-256 of its bytes when the download
/// computed it) to `dst` without the matching records (all of them when `m.every_row`),
/// each byte of `dst` reserved in `space` first ("temporary space exhausted" when
/// refused). The rewrite's SHA-256 is taken from the bytes as they are written, the
/// source's read from the file only when the download did not compute it.
pub fn rewrite(
    records: &Records,
    key: &str,
    (src, src_sha256): (&Path, Option<&str>),
    (dst, space): (&Path, &mut Reservation),
    m: Matching<'_>,
) -> Result<Figures, String> {
    let file = std::fs::File::create(dst).map_err(|e| e.to_string())?;
    let mut written = Sha256::new();
    let out = Hashing {
        inner: BoundedWriter::new(file, space),
        sha: &mut written,
    };
    let figures = records
        .rewrite(key, src, (out, dst), m)
        .map(Figures::from)?;
    let sha256_before = match src_sha256 {
        Some(known) => known.to_owned(),
        None => sha256_file(src).map_err(|e| format!("cannot hash {}: {e}", src.display()))?,
    };
    Ok(Figures {
        sha256_before,
        sha256_after: hex(&written.finalize()),
        ..figures
    })
}

/// A writer that hashes every byte its inner writer accepted.
struct Hashing<'h, W> {
    inner: W,
    sha: &'h mut Sha256,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        let accepted = buf
            .get(..n)
            .ok_or_else(|| std::io::Error::other("a writer accepted more bytes than given"))?;
        self.sha.update(accepted);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Lowercase hex SHA-256 of every byte of the file at `path`, read in 1 MiB blocks.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut block)?;
        if n == 0 {
            break;
        }
        hasher.update(&block[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use flate2::read::MultiGzDecoder;
    use flate2::write::GzEncoder;

    use crate::lakefile::match_set::MatchSet;

    use std::sync::Arc;

    use serde_json::json;

    use super::super::temp::TempSpace;
    use super::*;

    const SOURCE: &str = "{\"id\": 1}\n\n{\"id\": 2, \"x\": \"b\"}\n{\"id\": 3}\n";

    fn opts<'a>(columns: &'a [String], ids: &'a MatchSet, every_row: bool) -> Matching<'a> {
        Matching {
            columns,
            ids,
            every_row,
            max_record: crate::lakefile::jsonl::find::DEFAULT_MAX_LINE_BYTES,
            field_ids: None,
            drop_rows: &[],
        }
    }

    fn columns() -> Vec<String> {
        vec!["id".to_owned()]
    }

    fn ids() -> MatchSet {
        MatchSet::from_values(&[json!(1)])
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_gzip_rewrite_is_read_back_and_holds_exactly_the_kept_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("s"), dir.path().join("d"));
        std::fs::write(&src, gzip(SOURCE)).unwrap();
        let f = rewrite(
            &Records::JsonLines,
            "t/a.json.gz",
            (&src, None),
            (&dst, &mut unbounded()),
            opts(&columns(), &ids(), false),
        )
        .unwrap();
        assert_eq!((f.rows_before, f.rows_removed), (3, 1));
        let mut text = String::new();
        MultiGzDecoder::new(std::fs::File::open(&dst).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "\n{\"id\": 2, \"x\": \"b\"}\n{\"id\": 3}\n");
        // Every row gone: an empty (valid) gzip.
        let f = rewrite(
            &Records::JsonLines,
            "t/a.json.gz",
            (&src, None),
            (&dst, &mut unbounded()),
            opts(&columns(), &ids(), true),
        )
        .unwrap();
        assert_eq!((f.rows_before, f.rows_removed), (3, 3));
        let mut text = String::new();
        MultiGzDecoder::new(std::fs::File::open(&dst).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "");
    }

    #[test]
    fn a_rewrite_names_the_sha256_of_the_version_read_and_of_the_file_to_upload() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("s"), dir.path().join("d"));
        std::fs::write(&src, b"abc").unwrap();
        // FIPS 180-2's test vector.
        assert_eq!(
            sha256_file(&src).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let source = gzip(SOURCE);
        std::fs::write(&src, &source).unwrap();
        let f = rewrite(
            &Records::JsonLines,
            "t/a.json.gz",
            (&src, None),
            (&dst, &mut unbounded()),
            opts(&columns(), &ids(), false),
        )
        .unwrap();
        let digest = |bytes: &[u8]| hex(&Sha256::digest(bytes));
        assert_eq!(f.sha256_before, digest(&source));
        assert_eq!(f.sha256_after, digest(&std::fs::read(&dst).unwrap()));
        assert_ne!(f.sha256_before, f.sha256_after);
        // The hash the download computed is the one stated: the source is not read again.
        let streamed = "0".repeat(64);
        let f = rewrite(
            &Records::JsonLines,
            "t/a.json.gz",
            (&src, Some(&streamed)),
            (&dst, &mut unbounded()),
            opts(&columns(), &ids(), false),
        )
        .unwrap();
        assert_eq!(f.sha256_before, streamed);
        assert_eq!(f.sha256_after, digest(&std::fs::read(&dst).unwrap()));
    }

    /// `/dev/full` takes the file but refuses every write (ENOSPC): nothing is produced
    /// to upload, and the object fails.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_rewrite_whose_final_write_fails_produces_nothing_to_upload() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("s");
        for (key, bytes) in [
            ("t/a.json.gz", gzip(SOURCE)),
            ("t/a.json", SOURCE.as_bytes().to_vec()),
        ] {
            std::fs::write(&src, bytes).unwrap();
            let full = Path::new("/dev/full");
            let err = rewrite(
                &Records::JsonLines,
                key,
                (&src, None),
                (full, &mut unbounded()),
                opts(&columns(), &ids(), false),
            )
            .unwrap_err();
            // A real ENOSPC reads as the budget's refusal does.
            assert!(err.contains("temporary space exhausted"), "{key}: {err}");
        }
    }

    fn unbounded() -> Reservation {
        Arc::new(TempSpace::default()).reserve(0).unwrap()
    }

    /// A Parquet object of `rows` rows with ids 0.., `per_group` rows per row group.
    fn parquet(rows: i64, per_group: usize) -> Vec<u8> {
        use arrow_array::{ArrayRef, Int64Array, RecordBatch};
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
        let batch = RecordBatch::try_from_iter([("id", ids)]).unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(per_group))
            .build();
        let mut out = Vec::new();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        out
    }

    #[test]
    fn a_rewrite_beyond_the_temporary_budget_fails_saying_so_and_gives_its_space_back() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("s"), dir.path().join("d"));
        let source = parquet(20_000, 5_000);
        std::fs::write(&src, &source).unwrap();
        let size = source.len() as u64;
        // Room for the download, not for its rewrite.
        let space = Arc::new(TempSpace::new(None, Some(size + size / 4)));
        let held = space.reserve(size).unwrap();
        let mut output = space.reserve(0).unwrap();
        for (format, key, file) in [
            (Records::Parquet, "t/a.parquet", &src),
            (Records::JsonLines, "t/a.json", &src),
        ] {
            if format == Records::JsonLines {
                let lines: String = (0..20_000).map(|i| format!("{{\"id\": {i}}}\n")).collect();
                std::fs::write(file, lines).unwrap();
            }
            let err = rewrite(
                &format,
                key,
                (file, None),
                (&dst, &mut output),
                opts(&columns(), &ids(), false),
            )
            .unwrap_err();
            assert!(err.contains("temporary space exhausted"), "{key}: {err}");
            assert!(output.bytes() <= size / 4, "{key}: never beyond the budget");
            let written = std::fs::metadata(&dst).unwrap().len();
            assert!(written <= size / 4, "{key}: {written} bytes written");
        }
        drop((held, output));
        assert_eq!(space.in_use(), 0);
        // With the budget for it, the same rewrite goes through.
        let space = Arc::new(TempSpace::new(None, Some(4 * size)));
        std::fs::write(&src, &source).unwrap();
        let f = rewrite(
            &Records::Parquet,
            "t/a.parquet",
            (&src, None),
            (&dst, &mut space.reserve(0).unwrap()),
            opts(&columns(), &ids(), false),
        )
        .unwrap();
        // The Parquet rewrite's hash, taken as it was written, is that of the file.
        assert_eq!(
            f.sha256_after,
            hex(&Sha256::digest(std::fs::read(&dst).unwrap()))
        );
        assert_eq!((f.rows_before, f.rows_removed), (20_000, 1));
    }
}
