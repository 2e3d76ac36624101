//! The object-store boundary: `s3` (aws-sdk-s3, any S3-compatible endpoint) and `file`
//! (a local lake, the embedded default). Listing is paginated; reads are ranged, so find
//! fetches only footers and match columns.

pub mod file;
pub mod s3;

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;

use crate::domain::retention::{LifecycleRule, ReplicationRule, VersionLock};

/// One object (version) as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub storage_class: Option<String>,
    /// Intelligent-Tiering's archive tier (`ARCHIVE_ACCESS`, `DEEP_ARCHIVE_ACCESS`), from a
    /// HEAD.
    pub archive_status: Option<String>,
    /// The restore state of an archived object (`x-amz-restore`), from a HEAD.
    pub restore: Option<String>,
    /// Set for a version that is not the key's current one (a newer version or a delete
    /// marker is on top): listed by [`ObjectStore::list_versions_page`].
    pub noncurrent: Option<Noncurrent>,
}

/// What a listing of versions tells of a noncurrent version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noncurrent {
    /// When it stopped being current (its successor's last-modified time), when known:
    /// lifecycle rules count their `NoncurrentDays` from it.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// The key's current version is a delete marker (the key is not listed any more).
    pub behind_delete_marker: bool,
}

impl ObjectMeta {
    /// Why the object cannot be read now: archived (Glacier Flexible Retrieval, Deep
    /// Archive, an Intelligent-Tiering archive tier) and not restored.
    pub fn archived(&self) -> Option<String> {
        if restore_completed(self.restore.as_deref()) {
            return None;
        }
        match (
            self.storage_class.as_deref(),
            self.archive_status.as_deref(),
        ) {
            (Some(class @ ("GLACIER" | "DEEP_ARCHIVE")), _) => Some(format!("archived in {class}")),
            (_, Some(tier @ ("ARCHIVE_ACCESS" | "DEEP_ARCHIVE_ACCESS"))) => {
                Some(format!("archived in the Intelligent-Tiering {tier} tier"))
            }
            _ => None,
        }
    }
}

/// Whether an `x-amz-restore` header tells a completed restore (`ongoing-request="false"`):
/// the archived object can be read until its expiry date.
pub fn restore_completed(restore: Option<&str>) -> bool {
    restore.is_some_and(|r| r.replace(' ', "").contains("ongoing-request=\"false\""))
}

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object not found")]
    NotFound,
    #[error("access denied ({code})")]
    AccessDenied { code: String },
    /// Throttling, timeouts, 5xx: worth retrying.
    #[error("storage unavailable ({0})")]
    Unavailable(String),
    /// `If-Match` failed: someone wrote the object since it was read.
    #[error("the object changed since it was read (precondition failed)")]
    PreconditionFailed,
    #[error("storage error: {0}")]
    Other(String),
}

/// How a failure for want of temporary space (a budget or a disk that is full) begins.
pub const NO_TEMP_SPACE: &str = "temporary space exhausted";

/// Whether an I/O error says the disk (or a quota on it) is full.
pub fn disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// What a rewrite keeps of an object: headers, user metadata, tags, storage class and
/// server-side encryption.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectAttributes {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub metadata: std::collections::HashMap<String, String>,
    /// URL-encoded `k=v&k2=v2`, as the `x-amz-tagging` header takes it.
    pub tagging: Option<String>,
    pub storage_class: Option<String>,
    /// `AES256` (SSE-S3), `aws:kms` or `aws:kms:dsse`.
    pub server_side_encryption: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub bucket_key_enabled: Option<bool>,
}

/// An object version read to a local file.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub size: u64,
    pub attributes: ObjectAttributes,
    /// The restore state of an archived version (`x-amz-restore`): a GLACIER or
    /// DEEP_ARCHIVE version can only be read while restored.
    pub restore: Option<String>,
    /// Lowercase hex SHA-256 of the bytes written to the file, when the store hashed
    /// them as they streamed in.
    pub sha256: Option<String>,
}

/// A version written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub version_id: Option<String>,
    pub etag: Option<String>,
}

/// One version of a key (delete markers are not listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionMeta {
    pub version_id: String,
}

/// What a write requires of the key it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition<'a> {
    /// The current version has this etag (a rewrite in place, never over another
    /// writer's version).
    Match(&'a str),
    /// The key holds no object (a new file: never over anything).
    Absent,
}

/// A page of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    /// Pass back to get the next page; None on the last.
    pub next: Option<String>,
}

/// Reads a lake's objects.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// One page of the objects under `prefix`.
    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        next: Option<String>,
    ) -> Result<ListPage, StorageError>;
    /// One page of every version under `prefix`: current ones as [`Self::list_page`]
    /// gives them, then noncurrent ones (also those of keys whose current version is a
    /// delete marker) with [`ObjectMeta::noncurrent`] set; delete markers are not listed.
    /// A store that keeps no versions lists its objects.
    async fn list_versions_page(
        &self,
        bucket: &str,
        prefix: &str,
        next: Option<String>,
    ) -> Result<ListPage, StorageError> {
        self.list_page(bucket, prefix, next).await
    }
    /// The object's current version: size, etag, version id (None when unversioned).
    async fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta, StorageError>;
    /// `range` of an object's bytes (of `version_id` when given).
    async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        range: Range<u64>,
    ) -> Result<Bytes, StorageError>;
    /// Streams a version (the current one when None) to the file `to`.
    async fn download(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        to: &std::path::Path,
    ) -> Result<Fetched, StorageError>;
    /// Writes `from` as the new current version of `key`, only if `precondition` holds
    /// (else [`StorageError::PreconditionFailed`]): the current version's etag is the one
    /// given (`If-Match`), or the key has no object yet (`If-None-Match: *`). Objects of at
    /// least `multipart_threshold` bytes go up in parts (the completion carries it).
    async fn upload(
        &self,
        bucket: &str,
        key: &str,
        from: &std::path::Path,
        precondition: Precondition<'_>,
        attributes: &ObjectAttributes,
        multipart_threshold: u64,
    ) -> Result<Written, StorageError>;
    /// The current version and its user metadata (`x-amz-meta-*`; empty where the store
    /// has none), from one request so both describe the same version.
    async fn head_with_metadata(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(ObjectMeta, std::collections::HashMap<String, String>), StorageError> {
        Ok((
            self.head(bucket, key).await?,
            std::collections::HashMap::new(),
        ))
    }
    /// The size of one version of `key` (None when the store cannot tell, e.g. it keeps
    /// no versions).
    async fn version_size(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<u64>, StorageError> {
        let _ = (bucket, key, version_id);
        Ok(None)
    }
    /// The bucket's lifecycle rules (empty when it has none, or the store keeps no
    /// versions).
    async fn lifecycle_rules(&self, bucket: &str) -> Result<Vec<LifecycleRule>, StorageError> {
        let _ = bucket;
        Ok(Vec::new())
    }
    /// The bucket's replication rules (empty when it replicates nothing).
    async fn replication_rules(&self, bucket: &str) -> Result<Vec<ReplicationRule>, StorageError> {
        let _ = bucket;
        Ok(Vec::new())
    }
    /// The object lock of one version of `key` (none where the store has no locks).
    async fn version_lock(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<VersionLock, StorageError> {
        let _ = (bucket, key, version_id);
        Ok(VersionLock::default())
    }
    /// The versions of exactly `key`, newest first (empty when the store has none).
    async fn list_versions(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<VersionMeta>, StorageError>;
    /// Deletes one version for good.
    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<(), StorageError>;
}

/// The store behind each kind of location: S3 (any S3-compatible endpoint) and local files.
#[derive(Clone)]
pub struct Stores {
    pub s3: std::sync::Arc<dyn ObjectStore>,
    pub file: std::sync::Arc<dyn ObjectStore>,
    /// The canonical directory local lakes are confined to; None: `file://` refused.
    pub file_root: Option<std::path::PathBuf>,
    /// How S3 stores for a mapper's `role_arn` are made; None: roles are refused.
    pub roles: Option<std::sync::Arc<Roles>>,
}

/// Makes (and keeps) one S3 store per assumed role and session.
pub struct Roles {
    sdk: aws_config::SdkConfig,
    force_path_style: bool,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    config: crate::config::AwsConfig,
    principal: tokio::sync::OnceCell<String>,
    /// The per-bucket S3 limits every store of the process shares.
    limits: std::sync::Arc<s3::limit::BucketLimits>,
    stores: std::sync::Mutex<
        std::collections::HashMap<(String, RoleSession), std::sync::Arc<dyn ObjectStore>>,
    >,
}

/// Stores kept per (role, session) before the cache is emptied (each holds a client and
/// its cached credentials; a job names its session, so this bounds concurrent jobs' roles).
const MAX_ROLE_STORES: usize = 256;

impl Roles {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        force_path_style: bool,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
        config: &crate::config::AwsConfig,
        limits: std::sync::Arc<s3::limit::BucketLimits>,
    ) -> Self {
        Self {
            sdk: sdk.clone(),
            force_path_style,
            metrics,
            config: config.clone(),
            principal: Default::default(),
            limits,
            stores: Default::default(),
        }
    }

    /// Lethe's own principal, as trust policies name it: configured, else asked of STS
    /// once (`GetCallerIdentity`) and kept.
    pub async fn principal(&self) -> Result<String, String> {
        if let Some(arn) = &self.config.principal_arn {
            return Ok(arn.clone());
        }
        self.principal
            .get_or_try_init(|| crate::aws::caller_principal(&self.sdk, self.metrics.clone()))
            .await
            .cloned()
    }

    /// The external id passed with every `AssumeRole`.
    pub fn external_id(&self) -> Option<&str> {
        self.config.role_external_id.as_deref()
    }

    /// The S3 store whose calls are signed with `role_arn`'s credentials, in sessions
    /// of `session`.
    fn store(&self, role_arn: &str, session: &RoleSession) -> std::sync::Arc<dyn ObjectStore> {
        let mut stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        let key = (role_arn.to_owned(), session.clone());
        if let Some(store) = stores.get(&key) {
            return store.clone();
        }
        if stores.len() >= MAX_ROLE_STORES {
            stores.clear();
        }
        let provider = crate::aws::AssumedRole::new(
            &self.sdk,
            self.metrics.clone(),
            role_arn,
            &session.name,
            session.source_identity.as_deref(),
            &session.tags,
            &self.config,
        );
        let store: std::sync::Arc<dyn ObjectStore> = std::sync::Arc::new(
            s3::S3Store::with_credentials(
                &self.sdk,
                self.force_path_style,
                self.metrics.clone(),
                provider,
            )
            .with_limits(self.limits.clone()),
        );
        stores.insert(key, store.clone());
        store
    }
}

/// Who an assumed role's session is for: its name, the person it acts for
/// (`SourceIdentity`: the lake account's CloudTrail names them, and it stays with the
/// session), and its session tags (`lethe:mapper`, `lethe:job`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleSession {
    pub name: String,
    pub source_identity: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// Where a table's objects live: the store, the bucket, and the key prefix.
#[derive(Clone)]
pub struct Place {
    /// `s3` or `file`.
    pub scheme: &'static str,
    pub store: std::sync::Arc<dyn ObjectStore>,
    pub bucket: String,
    pub prefix: String,
}

impl Place {
    /// A key prefix of this place as a location (`s3://bucket/prefix`, `file:///prefix`).
    pub fn location_of(&self, prefix: &str) -> String {
        match self.scheme {
            "file" => format!("file:///{prefix}"),
            scheme => format!("{scheme}://{}/{prefix}", self.bucket),
        }
    }
}

impl Stores {
    /// S3 through `sdk`; no local lake (`file://` locations are refused until
    /// [`Stores::with_local_root`]).
    pub fn new(sdk: &aws_config::SdkConfig, force_path_style: bool) -> Self {
        Self::with_metrics(sdk, force_path_style, Default::default())
    }

    /// Local lakes confined to `root` (canonicalised: `file://` locations must lie in
    /// it, and no read or write follows a symlink out of it); None refuses them.
    pub fn with_local_root(mut self, root: Option<&std::path::Path>) -> Result<Self, StorageError> {
        self.file_root = match root {
            Some(root) => {
                let root = std::fs::canonicalize(root).map_err(|e| {
                    StorageError::Other(format!("the local lake root {}: {e}", root.display()))
                })?;
                self.file = std::sync::Arc::new(file::FileStore::new(root.clone()));
                Some(root)
            }
            None => None,
        };
        Ok(self)
    }

    /// As [`Stores::new`], counting S3 calls in `metrics`.
    pub fn with_metrics(
        sdk: &aws_config::SdkConfig,
        force_path_style: bool,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self::with_roles(sdk, force_path_style, metrics, &Default::default())
    }

    /// As [`Stores::with_metrics`]; mappers' roles are assumed as `config` says (external
    /// id, session length).
    pub fn with_roles(
        sdk: &aws_config::SdkConfig,
        force_path_style: bool,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
        config: &crate::config::AwsConfig,
    ) -> Self {
        let limits = std::sync::Arc::new(s3::limit::BucketLimits::new(
            config.s3_max_concurrency_per_bucket,
            metrics.clone(),
        ));
        Self {
            s3: std::sync::Arc::new(
                s3::S3Store::with_metrics(sdk, force_path_style, metrics.clone())
                    .with_limits(limits.clone()),
            ),
            file: std::sync::Arc::new(file::FileStore::new("/nonexistent-lethe-local-lake")),
            file_root: None,
            roles: Some(std::sync::Arc::new(Roles::new(
                sdk,
                force_path_style,
                metrics,
                config,
                limits,
            ))),
        }
    }

    /// These stores as a mapper sees them: with a `role_arn`, S3 calls are signed with
    /// the role's credentials (STS `AssumeRole`, sessions named `session`); local files
    /// are the same. Refused when this server cannot assume roles.
    pub fn for_role(
        &self,
        role_arn: Option<&str>,
        session: &RoleSession,
    ) -> Result<Stores, StorageError> {
        let Some(role_arn) = role_arn else {
            return Ok(self.clone());
        };
        let roles = self.roles.as_ref().ok_or_else(|| {
            StorageError::Other(format!(
                "the mapper's role {role_arn} cannot be assumed: this server has no AWS clients"
            ))
        })?;
        // Checked again at every use: a mapper saved before the list changed.
        if !crate::domain::data_mapper::role_allowed(&roles.config.allowed_role_arns, role_arn) {
            return Err(StorageError::AccessDenied {
                code: format!("{role_arn} is not in LETHE_ALLOWED_ROLE_ARNS"),
            });
        }
        Ok(Stores {
            s3: roles.store(role_arn, session),
            ..self.clone()
        })
    }

    /// The store of a location's scheme: local files for `file`, else S3.
    pub fn of_scheme(&self, scheme: &str) -> std::sync::Arc<dyn ObjectStore> {
        match scheme {
            "file" => self.file.clone(),
            _ => self.s3.clone(),
        }
    }

    /// Local files, and an S3 client with no endpoint or credentials configured (for tests
    /// and tools that never reach S3).
    pub fn offline() -> Self {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        Self {
            roles: None,
            ..Self::new(&sdk, true)
        }
    }

    /// A `file://` path as a prefix under the local lake root: refused without a root,
    /// with `.` or `..`, outside the root, or leading out of it through a symlink (at the
    /// location or above it: `AccessDenied`). Checked when a mapper is saved and again at
    /// every listing.
    fn local_prefix(&self, path: &str) -> Result<String, StorageError> {
        let root = self.file_root.as_ref().ok_or_else(|| {
            StorageError::Other(
                "file:// locations are refused: this server has no LETHE_LOCAL_LAKE_ROOT"
                    .to_owned(),
            )
        })?;
        if path.split('/').any(|s| s == ".." || s == ".") {
            return Err(StorageError::Other(format!(
                "file://{path}: . and .. are not allowed in a local location"
            )));
        }
        let outside = || {
            StorageError::Other(format!(
                "file://{path} is outside the local lake root {}",
                root.display()
            ))
        };
        let given = std::path::Path::new(path);
        let relative = match given.strip_prefix(root) {
            Ok(relative) => relative.to_path_buf(),
            // The root may be reached through a symlinked parent (`/tmp` → `/private/tmp`).
            Err(_) => std::fs::canonicalize(given)
                .map_err(|_| outside())?
                .strip_prefix(root)
                .map_err(|_| outside())?
                .to_path_buf(),
        };
        // A symlink at the location, or at a folder on its way, must not lead out.
        match file::resolves_inside(root, &root.join(&relative)) {
            Ok(true) => {}
            Ok(false) => {
                return Err(StorageError::AccessDenied {
                    code: format!(
                        "file://{path} leads out of the local lake root {} through a symlink",
                        root.display()
                    ),
                });
            }
            Err(e) => return Err(StorageError::Other(format!("file://{path}: {e}"))),
        }
        Ok(relative.to_string_lossy().into_owned())
    }

    /// The store, bucket and prefix of an `s3://` or `file://` location.
    pub fn place(&self, location: &str) -> Result<Place, StorageError> {
        use crate::domain::data_mapper::Location;
        match Location::parse(location).map_err(StorageError::Other)? {
            Location::S3 { bucket, prefix } => Ok(Place {
                scheme: "s3",
                store: self.s3.clone(),
                bucket,
                prefix,
            }),
            Location::File { path } => Ok(Place {
                scheme: "file",
                store: self.file.clone(),
                bucket: String::new(),
                prefix: self.local_prefix(&path)?,
            }),
        }
    }
}

/// Every object under `prefix`, following pagination (every version, noncurrent ones
/// included, when `versions`).
pub async fn list_all(
    store: &dyn ObjectStore,
    bucket: &str,
    prefix: &str,
    versions: bool,
) -> Result<Vec<ObjectMeta>, StorageError> {
    let mut all = Vec::new();
    let mut next = None;
    loop {
        let page = if versions {
            store.list_versions_page(bucket, prefix, next).await?
        } else {
            store.list_page(bucket, prefix, next).await?
        };
        all.extend(page.objects);
        match page.next {
            Some(token) => next = Some(token),
            None => return Ok(all),
        }
    }
}

/// Why find skips an object, if it does: markers and empty objects (they hold no rows).
/// Hidden files (`_temporary/` output among them) are judged by their path below the
/// table location: `domain::hidden`.
pub fn skip_reason(object: &ObjectMeta) -> Option<&'static str> {
    let name = object.key.rsplit('/').next().unwrap_or_default();
    if name == "_SUCCESS" || name.ends_with("_$folder$") || object.key.ends_with('/') {
        Some("marker")
    } else if object.size == 0 {
        Some("empty")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str, size: u64, class: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            key: key.into(),
            size,
            etag: None,
            version_id: None,
            storage_class: class.map(str::to_owned),
            archive_status: None,
            restore: None,
            noncurrent: None,
        }
    }

    #[test]
    fn archived_objects_are_told_by_class_or_tier_until_restored() {
        let glacier = object("t/a", 10, Some("GLACIER"));
        assert_eq!(glacier.archived().as_deref(), Some("archived in GLACIER"));
        let restoring = ObjectMeta {
            restore: Some("ongoing-request=\"true\"".into()),
            ..glacier.clone()
        };
        assert!(restoring.archived().is_some());
        let restored = ObjectMeta {
            restore: Some(
                "ongoing-request=\"false\", expiry-date=\"Fri, 21 Dec 2012 00:00:00 GMT\"".into(),
            ),
            ..glacier
        };
        assert_eq!(restored.archived(), None);
        let tiered = ObjectMeta {
            archive_status: Some("DEEP_ARCHIVE_ACCESS".into()),
            ..object("t/a", 10, Some("INTELLIGENT_TIERING"))
        };
        assert!(tiered.archived().unwrap().contains("DEEP_ARCHIVE_ACCESS"));
        assert_eq!(object("t/a", 10, Some("GLACIER_IR")).archived(), None);
        assert_eq!(
            object("t/a", 10, Some("INTELLIGENT_TIERING")).archived(),
            None
        );
    }

    #[test]
    fn markers_and_empty_objects_are_skipped_archived_and_hidden_ones_are_not() {
        assert_eq!(
            skip_reason(&object("t/dt=1/_SUCCESS", 0, None)),
            Some("marker")
        );
        assert_eq!(
            skip_reason(&object("t/_temporary/0/part-0.parquet", 10, None)),
            None,
            "hidden files are judged below the table location, not skipped by name"
        );
        assert_eq!(
            skip_reason(&object("t/part-0.parquet", 0, None)),
            Some("empty")
        );
        assert_eq!(
            skip_reason(&object("t/part-0.parquet", 10, Some("DEEP_ARCHIVE"))),
            None,
            "archived objects are searched or reported not searchable, never skipped"
        );
        assert_eq!(
            skip_reason(&object("t/part-0.parquet", 10, Some("STANDARD_IA"))),
            None
        );
        assert_eq!(
            skip_reason(&object("t/dt=1/part-0.json.gz", 10, None)),
            None
        );
    }
}
