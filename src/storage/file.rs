//! A local lake: `file:///root/…` locations. The bucket is ignored; keys are paths under
//! the root. Listing walks the tree in key order and pages by `page_size` keys.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{ListPage, ObjectMeta, ObjectStore, StorageError};

/// The extended-attribute namespace of an object's user metadata on a local disk (what
/// S3 keeps as `x-amz-meta-*`).
const METADATA_XATTR: &str = "user.lethe.meta.";

/// Sets each metadata entry as a user extended attribute of `path`. A file system without
/// user extended attributes keeps none (as before they were kept): a rerun after a crash
/// then cannot recognise its own write, and counts the object unchanged.
fn write_metadata(
    path: &Path,
    metadata: &std::collections::HashMap<String, String>,
) -> std::io::Result<()> {
    for (name, value) in metadata {
        match xattr::set(path, format!("{METADATA_XATTR}{name}"), value.as_bytes()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The metadata [`write_metadata`] set on `path` (none where the file system keeps none).
fn read_metadata(path: &Path) -> std::io::Result<std::collections::HashMap<String, String>> {
    let mut metadata = std::collections::HashMap::new();
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(metadata),
        Err(e) => return Err(e),
    };
    for name in names {
        let Some(key) = name.to_str().and_then(|n| n.strip_prefix(METADATA_XATTR)) else {
            continue;
        };
        if let Some(value) = xattr::get(path, &name)?
            && let Ok(value) = String::from_utf8(value)
        {
            metadata.insert(key.to_owned(), value);
        }
    }
    Ok(metadata)
}

/// Objects are files under `root`.
#[derive(Debug, Clone)]
pub struct FileStore {
    pub root: PathBuf,
    pub page_size: usize,
}

impl FileStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            page_size: 1000,
        }
    }

    /// The file of `key`, refused when the key or a symlink on its way leads out of the
    /// root (the real path is checked; a missing file is `NotFound`).
    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        if key.split('/').any(|p| p == ".." || p == ".") {
            return Err(StorageError::Other("key escapes the lake root".to_owned()));
        }
        let path = self.root.join(key);
        if !resolves_inside(&self.root, &path).map_err(io_error)? {
            return Err(outside_root());
        }
        Ok(path)
    }
}

/// The error of a path that leads out of the local lake root.
pub(super) fn outside_root() -> StorageError {
    StorageError::AccessDenied {
        code: "outside the local lake root".to_owned(),
    }
}

/// Whether `path` lies in `root` once every symlink on its way is followed: the deepest
/// part of it that exists is resolved (so a symlink at the path itself, or at any
/// directory above it, counts) and must lie in the resolved root.
pub(super) fn resolves_inside(root: &Path, path: &Path) -> std::io::Result<bool> {
    let mut existing = path;
    // `symlink_metadata`, not `exists`: a dangling symlink is a part that exists.
    while existing.symlink_metadata().is_err() {
        match existing.parent() {
            Some(parent) => existing = parent,
            None => break,
        }
    }
    let real = match std::fs::canonicalize(existing) {
        Ok(real) => real,
        // A dangling symlink leads nowhere we can tell: not inside.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(real.starts_with(std::fs::canonicalize(root)?))
}

fn io_error(e: std::io::Error) -> StorageError {
    match e.kind() {
        std::io::ErrorKind::NotFound => StorageError::NotFound,
        std::io::ErrorKind::PermissionDenied => StorageError::AccessDenied {
            code: "EACCES".to_owned(),
        },
        _ if super::disk_full(&e) => StorageError::Other(format!(
            "{}: the disk under the temporary directory is full ({e})",
            super::NO_TEMP_SPACE
        )),
        _ => StorageError::Other(e.to_string()),
    }
}

/// Where a local listing stands: the keys it wants (`prefix`, after `after`) and the
/// objects found so far, at most `limit`.
struct Walk<'a> {
    root: &'a Path,
    prefix: &'a str,
    after: Option<&'a str>,
    limit: usize,
    out: Vec<ObjectMeta>,
}

impl Walk<'_> {
    /// Walks `dir` in key order, entering only the directories that can hold a wanted key
    /// and stopping at `limit` objects: a page costs the directories on its way, not the
    /// whole tree.
    fn dir(&mut self, dir: &Path) -> std::io::Result<()> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let file_type = entry.file_type()?;
            // Symlinks are not followed (they could lead out of the root).
            if file_type.is_symlink() {
                continue;
            }
            let path = entry.path();
            let key = path
                .strip_prefix(self.root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            // A directory's keys all start with `key/`: sorting by that puts the entries
            // in the order of their keys.
            let sort = if file_type.is_dir() {
                format!("{key}/")
            } else {
                key
            };
            entries.push((sort, file_type.is_dir(), path));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, is_dir, path) in entries {
            if self.out.len() >= self.limit {
                return Ok(());
            }
            if is_dir {
                let disjoint = !key.starts_with(self.prefix) && !self.prefix.starts_with(&key);
                let passed = self
                    .after
                    .is_some_and(|after| after >= key.as_str() && !after.starts_with(&key));
                if !disjoint && !passed {
                    self.dir(&path)?;
                }
                continue;
            }
            if !key.starts_with(self.prefix) || self.after.is_some_and(|a| key.as_str() <= a) {
                continue;
            }
            let meta = std::fs::metadata(&path)?;
            self.out.push(ObjectMeta {
                key,
                size: meta.len(),
                etag: None,
                version_id: None,
                storage_class: None,
                archive_status: None,
                restore: None,
                noncurrent: None,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for FileStore {
    async fn list_page(
        &self,
        _bucket: &str,
        prefix: &str,
        next: Option<String>,
    ) -> Result<ListPage, StorageError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        let page_size = self.page_size.max(1);
        tokio::task::spawn_blocking(move || {
            // Walk only the directory part of the prefix; keys are filtered by the whole.
            let dir = root.join(prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or(""));
            // The walk skips symlinks below `dir`; `dir` itself (or a directory above it)
            // may be one, and must not lead out of the root.
            if prefix.split('/').any(|p| p == ".." || p == ".")
                || !resolves_inside(&root, &dir).map_err(io_error)?
            {
                return Err(outside_root());
            }
            let mut walk = Walk {
                root: &root,
                prefix: &prefix,
                after: next.as_deref(),
                // One more than a page tells whether another page follows.
                limit: page_size + 1,
                out: Vec::new(),
            };
            match walk.dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(e)),
            }
            let mut objects = walk.out;
            let more = objects.len() > page_size;
            objects.truncate(page_size);
            let next = more
                .then(|| objects.last().map(|o| o.key.clone()))
                .flatten();
            Ok(ListPage { objects, next })
        })
        .await
        .map_err(|e| StorageError::Other(e.to_string()))?
    }

    async fn head_with_metadata(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(ObjectMeta, std::collections::HashMap<String, String>), StorageError> {
        let meta = self.head(bucket, key).await?;
        let path = self.path(key)?;
        let metadata = tokio::task::spawn_blocking(move || read_metadata(&path))
            .await
            .map_err(|e| StorageError::Other(e.to_string()))?
            .map_err(io_error)?;
        Ok((meta, metadata))
    }

    async fn head(&self, _bucket: &str, key: &str) -> Result<ObjectMeta, StorageError> {
        let path = self.path(key)?;
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || {
            let meta = std::fs::metadata(&path).map_err(io_error)?;
            if meta.is_dir() {
                return Err(StorageError::NotFound);
            }
            // No versions on a local disk: the etag is the modification time and size, so
            // a rewrite in place changes it.
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            Ok(ObjectMeta {
                key,
                size: meta.len(),
                etag: Some(format!("\"{modified:x}-{:x}\"", meta.len())),
                version_id: None,
                storage_class: None,
                archive_status: None,
                restore: None,
                noncurrent: None,
            })
        })
        .await
        .map_err(|e| StorageError::Other(e.to_string()))?
    }

    async fn download(
        &self,
        bucket: &str,
        key: &str,
        _version_id: Option<&str>,
        to: &Path,
    ) -> Result<super::Fetched, StorageError> {
        let meta = self.head(bucket, key).await?;
        let from = self.path(key)?;
        let to = to.to_path_buf();
        tokio::task::spawn_blocking(move || std::fs::copy(from, to).map_err(io_error))
            .await
            .map_err(|e| StorageError::Other(e.to_string()))??;
        Ok(super::Fetched {
            version_id: None,
            etag: meta.etag,
            size: meta.size,
            attributes: super::ObjectAttributes::default(),
            restore: None,
            sha256: None,
        })
    }

    async fn upload(
        &self,
        bucket: &str,
        key: &str,
        from: &Path,
        precondition: super::Precondition<'_>,
        attributes: &super::ObjectAttributes,
        _multipart_threshold: u64,
    ) -> Result<super::Written, StorageError> {
        // Compare, then replace by rename (atomic for readers; a local lake has one writer).
        let current = match self.head(bucket, key).await {
            Ok(current) => Some(current),
            Err(StorageError::NotFound) => None,
            Err(e) => return Err(e),
        };
        let holds = match precondition {
            super::Precondition::Match(etag) => {
                current.is_some_and(|c| c.etag.as_deref() == Some(etag))
            }
            super::Precondition::Absent => current.is_none(),
        };
        if !holds {
            return Err(StorageError::PreconditionFailed);
        }
        let target = self.path(key)?;
        let temp = target.with_extension(format!("lethe-{}", uuid::Uuid::new_v4().simple()));
        let from = from.to_path_buf();
        let metadata = attributes.metadata.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = temp.parent() {
                std::fs::create_dir_all(dir).map_err(io_error)?;
            }
            std::fs::copy(&from, &temp).map_err(io_error)?;
            // The metadata goes on the file before it takes the key's place: whoever sees
            // the new file sees its metadata (Lethe's marker, by which a rerun after a
            // crash recognises its own write).
            if let Err(e) = write_metadata(&temp, &metadata) {
                let _ = std::fs::remove_file(&temp);
                return Err(io_error(e));
            }
            std::fs::rename(&temp, &target).map_err(io_error)
        })
        .await
        .map_err(|e| StorageError::Other(e.to_string()))??;
        let written = self.head(bucket, key).await?;
        Ok(super::Written {
            version_id: None,
            etag: written.etag,
        })
    }

    async fn list_versions(
        &self,
        _bucket: &str,
        _key: &str,
    ) -> Result<Vec<super::VersionMeta>, StorageError> {
        Ok(Vec::new())
    }

    async fn delete_version(
        &self,
        _bucket: &str,
        key: &str,
        _version_id: &str,
    ) -> Result<(), StorageError> {
        Err(StorageError::Other(format!(
            "{key}: local files have no versions"
        )))
    }

    async fn get_range(
        &self,
        _bucket: &str,
        key: &str,
        _version_id: Option<&str>,
        range: Range<u64>,
    ) -> Result<Bytes, StorageError> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&path).map_err(io_error)?;
            file.seek(SeekFrom::Start(range.start)).map_err(io_error)?;
            let mut buf = Vec::with_capacity((range.end - range.start) as usize);
            file.take(range.end - range.start)
                .read_to_end(&mut buf)
                .map_err(io_error)?;
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(|e| StorageError::Other(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key under `root` with `prefix`, sorted: what a listing must give.
    fn every_key(root: &Path, prefix: &str) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else {
                    let key = path.strip_prefix(root).unwrap().to_string_lossy();
                    out.push(key.into_owned());
                }
            }
        }
        let mut out = Vec::new();
        walk(root, root, &mut out);
        out.retain(|k| k.starts_with(prefix));
        out.sort();
        out
    }

    async fn pages(store: &FileStore, prefix: &str) -> (Vec<String>, usize) {
        let (mut keys, mut pages, mut next) = (Vec::new(), 0, None);
        loop {
            let page = store.list_page("b", prefix, next).await.unwrap();
            pages += 1;
            assert!(page.objects.len() <= store.page_size);
            keys.extend(page.objects.into_iter().map(|o| o.key));
            match page.next {
                Some(token) => next = Some(token),
                None => return (keys, pages),
            }
        }
    }

    #[tokio::test]
    async fn pages_follow_key_order_where_names_sort_around_the_slash() {
        let root = std::env::temp_dir().join(format!("lethe-file-pages-{}", uuid::Uuid::new_v4()));
        // `x-1` sorts before `x/…` ('-' < '/'), `ab` after `a/…`, `t2` is beside `t/`.
        for key in [
            "t/x-1", "t/x/a", "t/x/b/c", "t/x0", "t/a/z", "t/ab", "t/a-", "t2/q", "t/", "u",
        ] {
            let path = root.join(key);
            if key.ends_with('/') {
                std::fs::create_dir_all(&path).unwrap();
                continue;
            }
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "1").unwrap();
        }
        for page_size in 1..=4 {
            let store = FileStore {
                root: root.clone(),
                page_size,
            };
            for prefix in ["t/", "t", "t/x", "t/a", ""] {
                let (keys, _) = pages(&store, prefix).await;
                assert_eq!(keys, every_key(&root, prefix), "{prefix:?} by {page_size}");
            }
        }
        std::fs::remove_dir_all(root).unwrap();
    }

    /// A write under `Precondition::Absent` lands only where no file is (a new data file
    /// next to the old one, never over it); under `Match`, only over the etag given.
    #[tokio::test]
    async fn a_new_file_is_written_only_where_none_is() {
        use super::super::{ObjectAttributes, Precondition};
        let root = tempfile::tempdir().unwrap();
        let store = FileStore::new(root.path().to_path_buf());
        let source = root.path().join("source");
        std::fs::write(&source, "rewrite").unwrap();
        let put = |key: &'static str, p: Precondition<'static>| {
            let (store, source) = (&store, &source);
            async move {
                let attributes = ObjectAttributes::default();
                store
                    .upload("b", key, source, p, &attributes, u64::MAX)
                    .await
            }
        };
        put("t/new.parquet", Precondition::Absent).await.unwrap();
        assert_eq!(
            std::fs::read(root.path().join("t/new.parquet")).unwrap(),
            b"rewrite"
        );
        let again = put("t/new.parquet", Precondition::Absent).await;
        assert!(
            matches!(again, Err(StorageError::PreconditionFailed)),
            "{again:?}"
        );
        let missing = put("t/none.parquet", Precondition::Match("\"x\"")).await;
        assert!(
            matches!(missing, Err(StorageError::PreconditionFailed)),
            "{missing:?}"
        );
        assert!(!root.path().join("t/none.parquet").exists());
    }

    /// The metadata of a write (Lethe's marker) is read back from the file that took the
    /// key's place, and a plain file has none.
    #[tokio::test]
    async fn an_uploads_metadata_is_kept_with_the_file_and_read_back() {
        let root = std::env::temp_dir().join(format!("lethe-file-meta-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(root.join("t")).unwrap();
        std::fs::write(root.join("t/a.parquet"), "old").unwrap();
        let store = FileStore::new(root.clone());
        let (before, metadata) = store.head_with_metadata("b", "t/a.parquet").await.unwrap();
        assert!(metadata.is_empty(), "{metadata:?}");
        let source = root.join("rewrite");
        std::fs::write(&source, "new bytes").unwrap();
        let mut attributes = super::super::ObjectAttributes::default();
        attributes
            .metadata
            .insert("lethe-job-object".into(), "job/7".into());
        store
            .upload(
                "b",
                "t/a.parquet",
                &source,
                super::super::Precondition::Match(before.etag.as_deref().unwrap()),
                &attributes,
                u64::MAX,
            )
            .await
            .unwrap();
        let (after, metadata) = store.head_with_metadata("b", "t/a.parquet").await.unwrap();
        assert_eq!(after.size, 9);
        assert_eq!(
            std::fs::read(root.join("t/a.parquet")).unwrap(),
            b"new bytes"
        );
        // Where the file system keeps user extended attributes (tmpfs, ext4, xfs, btrfs).
        let supported = xattr::list(root.join("t/a.parquet")).is_ok();
        if supported {
            assert_eq!(
                metadata.get("lethe-job-object").map(String::as_str),
                Some("job/7")
            );
            assert_eq!(metadata.len(), 1, "{metadata:?}");
        }
        // No temporary file is left beside it.
        let left: Vec<_> = std::fs::read_dir(root.join("t")).unwrap().collect();
        assert_eq!(left.len(), 1);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn a_hundred_thousand_local_objects_list_in_pages_each_once_in_order() {
        let root = std::env::temp_dir().join(format!("lethe-file-100k-{}", uuid::Uuid::new_v4()));
        for d in 0..500 {
            let dir = root.join(format!("t/dt={d}"));
            std::fs::create_dir_all(&dir).unwrap();
            for f in 0..200 {
                std::fs::write(dir.join(format!("part-{f}.json")), "").unwrap();
            }
        }
        let store = FileStore::new(root.clone());
        let (keys, pages) = pages(&store, "t/").await;
        assert_eq!(keys.len(), 100_000);
        assert_eq!(pages, 100);
        assert_eq!(keys, every_key(&root, "t/"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn lists_in_key_order_by_pages_and_reads_ranges() {
        let root = std::env::temp_dir().join(format!("lethe-file-store-{}", uuid::Uuid::new_v4()));
        for (key, body) in [
            ("t/dt=2/b.json", "bb"),
            ("t/dt=1/a.json", "0123456789"),
            ("t/dt=1/_SUCCESS", ""),
            ("other/x", "x"),
        ] {
            let path = root.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        let store = FileStore {
            root: root.clone(),
            page_size: 2,
        };
        let all = super::super::list_all(&store, "ignored", "t/", false)
            .await
            .unwrap();
        let keys: Vec<&str> = all.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["t/dt=1/_SUCCESS", "t/dt=1/a.json", "t/dt=2/b.json"]);
        assert_eq!(all[1].size, 10);
        let first = store.list_page("b", "t/", None).await.unwrap();
        assert_eq!(first.objects.len(), 2);
        assert!(first.next.is_some());
        assert_eq!(
            store
                .get_range("b", "t/dt=1/a.json", None, 2..5)
                .await
                .unwrap(),
            Bytes::from_static(b"234")
        );
        let head = store.head("b", "t/dt=1/a.json").await.unwrap();
        assert_eq!((head.size, head.version_id), (10, None));
        assert!(head.etag.is_some());
        assert!(matches!(
            store.head("b", "t/missing").await,
            Err(StorageError::NotFound)
        ));
        assert!(matches!(
            store.get_range("b", "t/missing", None, 0..1).await,
            Err(StorageError::NotFound)
        ));
        assert!(
            store
                .get_range("b", "../etc/passwd", None, 0..1)
                .await
                .is_err()
        );
        assert!(
            store
                .list_page("b", "nothing/", None)
                .await
                .unwrap()
                .objects
                .is_empty()
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[tokio::test]
    async fn symlinks_out_of_the_root_are_neither_listed_nor_followed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.json"), b"{\"a\": 1}\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("t")).unwrap();
        std::fs::write(root.path().join("t/ok.json"), b"{\"a\": 2}\n").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.json"),
            root.path().join("t/link.json"),
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("t/dir")).unwrap();
        let store = FileStore::new(root.path());
        let listed = super::super::list_all(&store, "", "t/", false)
            .await
            .unwrap();
        let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["t/ok.json"]);
        for key in ["t/link.json", "t/dir/secret.json", "t/../../etc/passwd"] {
            let err = store.head("", key).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    StorageError::AccessDenied { .. } | StorageError::Other(_)
                ),
                "{key}: {err}"
            );
            assert!(store.get_range("", key, None, 0..4).await.is_err(), "{key}");
        }
        assert!(store.head("", "t/ok.json").await.is_ok());
    }

    #[tokio::test]
    async fn listing_under_a_symlink_out_of_the_root_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("sub")).unwrap();
        std::fs::write(outside.path().join("sub/secret.json"), b"{}\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("t")).unwrap();
        std::fs::write(root.path().join("t/ok.json"), b"{}\n").unwrap();
        // At the listed folder, and at a folder above it.
        std::os::unix::fs::symlink(outside.path(), root.path().join("t/link")).unwrap();
        std::fs::create_dir(root.path().join("t/inner")).unwrap();
        std::os::unix::fs::symlink(root.path().join("t"), root.path().join("t/inner/back"))
            .unwrap();
        let store = FileStore::new(root.path());
        for prefix in ["t/link/", "t/link/sub/", "t/../", "t/link/sub/secret"] {
            let err = store.list_page("", prefix, None).await.unwrap_err();
            assert!(
                matches!(&err, StorageError::AccessDenied { code } if code.contains("outside")),
                "{prefix}: {err}"
            );
        }
        // A symlink that stays inside the root is followed; a missing folder lists nothing.
        let inside = store.list_page("", "t/inner/back/", None).await.unwrap();
        let keys: Vec<&str> = inside.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["t/inner/back/ok.json"]);
        assert!(
            store
                .list_page("", "t/none/", None)
                .await
                .unwrap()
                .objects
                .is_empty()
        );
        let listed = store.list_page("", "t/", None).await.unwrap();
        assert_eq!(listed.objects.len(), 1);
    }
}
