//! S3 (or any S3-compatible server) through aws-sdk-s3.
//!
//! Every request waits for a slot of its bucket's concurrency limit (`limit`), held while
//! it runs (SDK retries included), and reports each attempt to it; a method holds one slot
//! at a time (its requests run one after another) and never calls another method that
//! takes one, so a limit of 1 cannot deadlock.

pub mod limit;
mod retention;

use std::sync::Arc;

use std::ops::Range;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use bytes::Bytes;

use crate::domain::retention::{LifecycleRule, ReplicationRule, VersionLock};

use super::{
    Fetched, ListPage, Noncurrent, ObjectAttributes, ObjectMeta, ObjectStore, Precondition,
    StorageError, VersionMeta, Written,
};

/// Sets every kept attribute of an object on a PutObject or CreateMultipartUpload builder
/// (two SDK types with the same setters).
macro_rules! with_attributes {
    ($builder:expr, $a:expr) => {{
        use aws_sdk_s3::types::{ServerSideEncryption, StorageClass};
        let a: &ObjectAttributes = $a;
        $builder
            .set_content_type(a.content_type.clone())
            .set_content_encoding(a.content_encoding.clone())
            .set_content_disposition(a.content_disposition.clone())
            .set_content_language(a.content_language.clone())
            .set_cache_control(a.cache_control.clone())
            .set_metadata(Some(a.metadata.clone()))
            .set_tagging(a.tagging.clone())
            .set_storage_class(a.storage_class.as_deref().map(StorageClass::from))
            .set_server_side_encryption(
                a.server_side_encryption
                    .as_deref()
                    .map(ServerSideEncryption::from),
            )
            .set_ssekms_key_id(a.sse_kms_key_id.clone())
            .set_bucket_key_enabled(a.bucket_key_enabled)
    }};
}

/// Part size of multipart uploads (S3's minimum is 5 MiB); memory holds one part.
const PART_SIZE: usize = 16 * 1024 * 1024;

/// An S3 object store.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    /// Keys per listing page (S3's maximum is 1000).
    pub page_size: i32,
    /// Requests in flight per bucket (shared with the process's other S3 stores).
    limits: Arc<limit::BucketLimits>,
}

impl S3Store {
    pub fn new(sdk: &aws_config::SdkConfig, force_path_style: bool) -> Self {
        Self::with_metrics(sdk, force_path_style, Default::default())
    }

    /// A client whose calls are counted in `metrics`.
    pub fn with_metrics(
        sdk: &aws_config::SdkConfig,
        force_path_style: bool,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self::from_builder(
            aws_sdk_s3::config::Builder::from(sdk).force_path_style(force_path_style),
            metrics,
        )
    }

    /// A client whose calls are signed with `credentials` (kept and refreshed by the
    /// SDK's identity cache) and counted in `metrics`.
    pub fn with_credentials(
        sdk: &aws_config::SdkConfig,
        force_path_style: bool,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
        credentials: impl aws_credential_types::provider::ProvideCredentials + 'static,
    ) -> Self {
        Self::from_builder(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(force_path_style)
                .credentials_provider(credentials),
            metrics,
        )
    }

    /// This store with its requests held to `limits` (shared with other stores).
    pub fn with_limits(mut self, limits: Arc<limit::BucketLimits>) -> Self {
        self.limits = limits;
        self
    }

    fn from_builder(
        builder: aws_sdk_s3::config::Builder,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Self {
        let config = builder
            .interceptor(crate::aws::CallMetrics(metrics.clone()))
            .build();
        let max = crate::config::DEFAULT_S3_MAX_CONCURRENCY_PER_BUCKET;
        Self {
            client: aws_sdk_s3::Client::from_conf(config),
            page_size: 1000,
            limits: Arc::new(limit::BucketLimits::new(max, metrics)),
        }
    }
}

impl S3Store {
    /// HeadObject on the current version, or on `version` when given.
    async fn head_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<aws_sdk_s3::operation::head_object::HeadObjectOutput, StorageError> {
        let permit = self.limits.enter(bucket).await;
        self.client
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version.map(str::to_owned))
            .customize()
            .interceptor(permit.signal())
            .send()
            .await
            .map_err(storage_error)
    }

    /// Uploads `from` in parts and completes the upload under `precondition`, under
    /// `permit`.
    async fn upload_parts(
        &self,
        permit: &limit::Permit,
        bucket: &str,
        key: &str,
        upload_id: &str,
        from: &std::path::Path,
        precondition: Precondition<'_>,
    ) -> Result<Written, StorageError> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        use tokio::io::AsyncReadExt;
        let mut file = tokio::fs::File::open(from)
            .await
            .map_err(|e| StorageError::Other(e.to_string()))?;
        let mut parts = Vec::new();
        for number in 1.. {
            let mut buf = Vec::with_capacity(PART_SIZE);
            (&mut file)
                .take(PART_SIZE as u64)
                .read_to_end(&mut buf)
                .await
                .map_err(|e| StorageError::Other(e.to_string()))?;
            if buf.is_empty() {
                break;
            }
            let part = self
                .client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(buf.into())
                .customize()
                .interceptor(permit.signal())
                .send()
                .await
                .map_err(storage_error)?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .build(),
            );
        }
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .set_if_match(if_match(precondition))
            .set_if_none_match(if_none_match(precondition))
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .customize()
            .interceptor(permit.signal())
            .send()
            .await
            .map_err(storage_error)?;
        Ok(Written {
            version_id: out.version_id().map(str::to_owned),
            etag: out.e_tag().map(str::to_owned),
        })
    }
}

fn storage_error<E>(err: SdkError<E>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(failed) = assume_role_failure(&err as &(dyn std::error::Error + 'static)) {
        let reason = failed.to_string();
        return if failed.transient {
            StorageError::Unavailable(reason)
        } else {
            StorageError::AccessDenied { code: reason }
        };
    }
    let status = err.raw_response().map(|r| r.status().as_u16());
    match (err.code(), status) {
        (Some("PreconditionFailed"), _) | (_, Some(412)) => StorageError::PreconditionFailed,
        (Some(code @ "ConditionalRequestConflict"), _) => {
            StorageError::Unavailable(code.to_owned())
        }
        (Some("NoSuchKey" | "NoSuchVersion" | "NoSuchBucket" | "NotFound"), _) | (_, Some(404)) => {
            StorageError::NotFound
        }
        // KMS.* : the object's key denies us; InvalidObjectState: the object is archived.
        (Some(code), _) if code.starts_with("KMS.") || code == "InvalidObjectState" => {
            StorageError::AccessDenied {
                code: code.to_owned(),
            }
        }
        (Some(code @ ("AccessDenied" | "AllAccessDisabled" | "InvalidAccessKeyId")), _) => {
            StorageError::AccessDenied {
                code: code.to_owned(),
            }
        }
        (_, Some(403)) => StorageError::AccessDenied {
            code: "403".to_owned(),
        },
        (
            Some(code @ ("SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable")),
            _,
        ) => StorageError::Unavailable(code.to_owned()),
        (_, Some(s)) if s >= 500 => StorageError::Unavailable(s.to_string()),
        (None, None) => StorageError::Unavailable("connection failed".to_owned()),
        (code, _) => StorageError::Other(code.unwrap_or("unknown").to_owned()),
    }
}

/// Writes `body` to `file`, hashing its bytes on the way (no second pass over the file):
/// its size and lowercase hex SHA-256. A full disk is this machine's failure (the
/// object's, not S3's: no retry); any other error is the body's read.
async fn stream_to(
    mut body: aws_sdk_s3::primitives::ByteStream,
    file: &mut tokio::fs::File,
) -> Result<(u64, String), StorageError> {
    use sha2::Digest;
    use tokio::io::AsyncWriteExt;
    let (mut size, mut sha) = (0u64, sha2::Sha256::new());
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| StorageError::Unavailable(e.to_string()))?;
        file.write_all(&chunk).await.map_err(|e| {
            if super::disk_full(&e) {
                local_error(e)
            } else {
                StorageError::Unavailable(e.to_string())
            }
        })?;
        sha.update(&chunk);
        size += chunk.len() as u64;
    }
    let hex = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((size, hex))
}

/// An error of the local file a download writes: "temporary space exhausted" when the disk
/// is full.
fn local_error(e: std::io::Error) -> StorageError {
    if super::disk_full(&e) {
        StorageError::Other(format!(
            "{}: the disk under the temporary directory is full ({e})",
            super::NO_TEMP_SPACE
        ))
    } else {
        StorageError::Other(e.to_string())
    }
}

/// The failed `AssumeRole` behind an error, if that is why the call could not be signed.
fn assume_role_failure<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a crate::aws::AssumeRoleFailed> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(failed) = e.downcast_ref::<crate::aws::AssumeRoleFailed>() {
            return Some(failed);
        }
        cause = e.source();
    }
    None
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        next: Option<String>,
    ) -> Result<ListPage, StorageError> {
        let permit = self.limits.enter(bucket).await;
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(self.page_size)
            .set_continuation_token(next)
            .customize()
            .interceptor(permit.signal())
            .send()
            .await
            .map_err(storage_error)?;
        let objects = out
            .contents()
            .iter()
            .map(|o| ObjectMeta {
                key: o.key().unwrap_or_default().to_owned(),
                size: o.size().unwrap_or(0).max(0) as u64,
                etag: o.e_tag().map(str::to_owned),
                version_id: None,
                storage_class: o.storage_class().map(|c| c.as_str().to_owned()),
                archive_status: None,
                restore: None,
                noncurrent: None,
            })
            .collect();
        let next = if out.is_truncated().unwrap_or(false) {
            out.next_continuation_token().map(str::to_owned)
        } else {
            None
        };
        Ok(ListPage { objects, next })
    }

    async fn list_versions_page(
        &self,
        bucket: &str,
        prefix: &str,
        next: Option<String>,
    ) -> Result<ListPage, StorageError> {
        let mut at = match next.as_deref() {
            Some(token) => serde_json::from_str::<VersionsToken>(token)
                .map_err(|e| StorageError::Other(format!("bad listing token: {e}")))?,
            None => VersionsToken::default(),
        };
        let permit = self.limits.enter(bucket).await;
        let out = self
            .client
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(self.page_size)
            .set_key_marker(at.key_marker.take())
            .set_version_id_marker(at.version_marker.take())
            .customize()
            .interceptor(permit.signal())
            .send()
            .await
            .map_err(storage_error)?;
        let objects = versions_in_order(&out, &mut at);
        let next = if out.is_truncated().unwrap_or(false) {
            at.key_marker = out.next_key_marker().map(str::to_owned);
            at.version_marker = out.next_version_id_marker().map(str::to_owned);
            Some(serde_json::to_string(&at).map_err(|e| StorageError::Other(e.to_string()))?)
        } else {
            None
        };
        Ok(ListPage { objects, next })
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta, StorageError> {
        Ok(self.head_with_metadata(bucket, key).await?.0)
    }

    async fn head_with_metadata(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(ObjectMeta, std::collections::HashMap<String, String>), StorageError> {
        let out = self.head_object(bucket, key, None).await?;
        let meta = ObjectMeta {
            key: key.to_owned(),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            etag: out.e_tag().map(str::to_owned),
            // None on unversioned buckets; "null" (a valid id to read) for objects written
            // before versioning was enabled.
            version_id: out.version_id().map(str::to_owned),
            storage_class: out.storage_class().map(|c| c.as_str().to_owned()),
            archive_status: out.archive_status().map(|s| s.as_str().to_owned()),
            restore: out.restore().map(str::to_owned),
            noncurrent: None,
        };
        Ok((meta, out.metadata().cloned().unwrap_or_default()))
    }

    async fn download(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        to: &std::path::Path,
    ) -> Result<Fetched, StorageError> {
        // Held until the body is in the file.
        let permit = self.limits.enter(bucket).await;
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .customize()
            .interceptor(permit.signal())
            .send()
            .await
            .map_err(storage_error)?;
        let version = out.version_id().map(str::to_owned);
        let tags = self
            .client
            .get_object_tagging()
            .bucket(bucket)
            .key(key)
            .set_version_id(version.clone())
            .customize()
            .interceptor(permit.signal())
            .send()
            .await
            .map_err(storage_error)?;
        let tagging = (!tags.tag_set().is_empty()).then(|| {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for tag in tags.tag_set() {
                form.append_pair(tag.key(), tag.value());
            }
            form.finish()
        });
        let attributes = ObjectAttributes {
            content_type: out.content_type().map(str::to_owned),
            content_encoding: out.content_encoding().map(str::to_owned),
            content_disposition: out.content_disposition().map(str::to_owned),
            content_language: out.content_language().map(str::to_owned),
            cache_control: out.cache_control().map(str::to_owned),
            metadata: out.metadata().cloned().unwrap_or_default(),
            tagging,
            storage_class: out.storage_class().map(|c| c.as_str().to_owned()),
            server_side_encryption: out.server_side_encryption().map(|e| e.as_str().to_owned()),
            sse_kms_key_id: out.ssekms_key_id().map(str::to_owned),
            bucket_key_enabled: out.bucket_key_enabled(),
        };
        let etag = out.e_tag().map(str::to_owned);
        let restore = out.restore().map(str::to_owned);
        let mut file = tokio::fs::File::create(to).await.map_err(local_error)?;
        let (size, sha256) = stream_to(out.body, &mut file).await?;
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(local_error)?;
        Ok(Fetched {
            version_id: version,
            etag,
            size,
            attributes,
            restore,
            sha256: Some(sha256),
        })
    }

    async fn upload(
        &self,
        bucket: &str,
        key: &str,
        from: &std::path::Path,
        precondition: Precondition<'_>,
        a: &ObjectAttributes,
        multipart_threshold: u64,
    ) -> Result<Written, StorageError> {
        let size = tokio::fs::metadata(from)
            .await
            .map_err(|e| StorageError::Other(e.to_string()))?
            .len();
        let permit = self.limits.enter(bucket).await;
        if size < multipart_threshold {
            let body = aws_sdk_s3::primitives::ByteStream::from_path(from)
                .await
                .map_err(|e| StorageError::Other(e.to_string()))?;
            let put = self
                .client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(body)
                .set_if_match(if_match(precondition))
                .set_if_none_match(if_none_match(precondition));
            let out = with_attributes!(put, a)
                .customize()
                .interceptor(permit.signal())
                .send()
                .await
                .map_err(storage_error)?;
            return Ok(Written {
                version_id: out.version_id().map(str::to_owned),
                etag: out.e_tag().map(str::to_owned),
            });
        }
        let create = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key);
        let upload = with_attributes!(create, a)
            .customize()
            .interceptor(permit.signal())
            .send()
            .await
            .map_err(storage_error)?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let result = self
            .upload_parts(&permit, bucket, key, &upload_id, from, precondition)
            .await;
        if result.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .customize()
                .interceptor(permit.signal())
                .send()
                .await;
        }
        result
    }

    async fn version_size(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<u64>, StorageError> {
        let out = self.head_object(bucket, key, Some(version_id)).await?;
        Ok(out.content_length().map(|n| n.max(0) as u64))
    }

    async fn lifecycle_rules(&self, bucket: &str) -> Result<Vec<LifecycleRule>, StorageError> {
        let permit = self.limits.enter(bucket).await;
        retention::lifecycle_rules(&self.client, &permit, bucket).await
    }

    async fn replication_rules(&self, bucket: &str) -> Result<Vec<ReplicationRule>, StorageError> {
        let permit = self.limits.enter(bucket).await;
        retention::replication_rules(&self.client, &permit, bucket).await
    }

    async fn version_lock(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<VersionLock, StorageError> {
        let out = self.head_object(bucket, key, Some(version_id)).await?;
        Ok(retention::version_lock(&out))
    }

    async fn list_versions(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<VersionMeta>, StorageError> {
        let mut all = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        let permit = self.limits.enter(bucket).await;
        loop {
            let out = self
                .client
                .list_object_versions()
                .bucket(bucket)
                .prefix(key)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .customize()
                .interceptor(permit.signal())
                .send()
                .await
                .map_err(storage_error)?;
            all.extend(
                out.versions()
                    .iter()
                    .filter(|v| v.key() == Some(key))
                    .filter_map(|v| v.version_id())
                    .map(|id| VersionMeta {
                        version_id: id.to_owned(),
                    }),
            );
            if !out.is_truncated().unwrap_or(false) {
                return Ok(all);
            }
            key_marker = out.next_key_marker().map(str::to_owned);
            version_marker = out.next_version_id_marker().map(str::to_owned);
        }
    }

    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<(), StorageError> {
        let permit = self.limits.enter(bucket).await;
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .version_id(version_id)
            .customize()
            .interceptor(permit.signal())
            .send()
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        range: Range<u64>,
    ) -> Result<Bytes, StorageError> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        // Held until the body is read.
        let permit = self.limits.enter(bucket).await;
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .customize()
            .interceptor(permit.signal())
            .send()
            .await
            .map_err(storage_error)?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        Ok(body.into_bytes())
    }
}

/// Where a listing of versions is: S3's markers, and the newest entry (version or delete
/// marker) of the last key seen, whose successor may be on the next page.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct VersionsToken {
    key_marker: Option<String>,
    version_marker: Option<String>,
    /// The last entry seen: its key, its last-modified time, whether it was a delete
    /// marker current for its key.
    last: Option<(String, Option<chrono::DateTime<chrono::Utc>>, bool)>,
}

/// The versions of one page (delete markers left out), each noncurrent one with the time
/// it stopped being current: the last-modified time of the entry just newer for its key.
/// S3 lists each key's entries newest first, versions and delete markers apart.
fn versions_in_order(
    out: &aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput,
    at: &mut VersionsToken,
) -> Vec<ObjectMeta> {
    let time = |t: Option<&aws_sdk_s3::primitives::DateTime>| {
        t.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
    };
    // (key, not latest, last modified, version; None for a delete marker)
    let mut entries = Vec::new();
    for v in out.versions() {
        let meta = ObjectMeta {
            key: v.key().unwrap_or_default().to_owned(),
            size: v.size().unwrap_or(0).max(0) as u64,
            etag: v.e_tag().map(str::to_owned),
            version_id: v.version_id().map(str::to_owned),
            storage_class: v.storage_class().map(|c| c.as_str().to_owned()),
            archive_status: None,
            restore: None,
            noncurrent: None,
        };
        let key = v.key().unwrap_or_default();
        entries.push((
            key,
            !v.is_latest().unwrap_or(false),
            time(v.last_modified()),
            Some(meta),
        ));
    }
    for m in out.delete_markers() {
        let key = m.key().unwrap_or_default();
        entries.push((
            key,
            !m.is_latest().unwrap_or(false),
            time(m.last_modified()),
            None,
        ));
    }
    // Each key's entries: the current one first, then the newest first (stable: S3's
    // own order among equal times).
    entries.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| b.2.cmp(&a.2)));
    let mut objects = Vec::with_capacity(entries.len());
    for (key, not_latest, modified, meta) in entries {
        let successor = at.last.take().filter(|(k, _, _)| k == key);
        let behind_marker = match &successor {
            Some((_, _, behind)) => *behind,
            None => meta.is_none() && !not_latest,
        };
        at.last = Some((key.to_owned(), modified, behind_marker));
        let Some(mut meta) = meta else { continue };
        if let Some((_, since, _)) = successor {
            meta.noncurrent = Some(Noncurrent {
                since,
                behind_delete_marker: behind_marker,
            });
        }
        objects.push(meta);
    }
    objects
}

/// The `If-Match` header of a write under `p`.
fn if_match(p: Precondition<'_>) -> Option<String> {
    match p {
        Precondition::Match(etag) => Some(etag.to_owned()),
        Precondition::Absent => None,
    }
}

/// The `If-None-Match` header of a write under `p`.
fn if_none_match(p: Precondition<'_>) -> Option<String> {
    match p {
        Precondition::Match(_) => None,
        Precondition::Absent => Some("*".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::operation::list_object_versions::ListObjectVersionsOutput;
    use aws_sdk_s3::primitives::DateTime;
    use aws_sdk_s3::types::{DeleteMarkerEntry, ObjectVersion};

    use super::*;

    fn version(key: &str, id: &str, latest: bool, secs: i64) -> ObjectVersion {
        ObjectVersion::builder()
            .key(key)
            .version_id(id)
            .is_latest(latest)
            .size(10)
            .last_modified(DateTime::from_secs(secs))
            .build()
    }

    fn marker(key: &str, latest: bool, secs: i64) -> DeleteMarkerEntry {
        DeleteMarkerEntry::builder()
            .key(key)
            .version_id(format!("m{secs}"))
            .is_latest(latest)
            .last_modified(DateTime::from_secs(secs))
            .build()
    }

    /// (key, version, noncurrent since, behind a delete marker) of each version listed.
    fn listed(
        out: &ListObjectVersionsOutput,
        at: &mut VersionsToken,
    ) -> Vec<(String, String, Option<i64>, bool)> {
        versions_in_order(out, at)
            .into_iter()
            .map(|m| {
                let (since, behind) = m.noncurrent.map_or((None, false), |n| {
                    (n.since.map(|t| t.timestamp()), n.behind_delete_marker)
                });
                (m.key, m.version_id.unwrap_or_default(), since, behind)
            })
            .collect()
    }

    #[test]
    fn old_versions_know_when_they_stopped_being_current_across_pages() {
        // Page 1: `a` behind a delete marker (t=30) over v2 (t=20); `b` current v5 (t=50).
        let page1 = ListObjectVersionsOutput::builder()
            .versions(version("t/a", "a2", false, 20))
            .versions(version("t/b", "b5", true, 50))
            .delete_markers(marker("t/a", true, 30))
            .build();
        let mut at = VersionsToken::default();
        let s = |k: &str| k.to_owned();
        assert_eq!(
            listed(&page1, &mut at),
            [
                (s("t/a"), s("a2"), Some(30), true),
                (s("t/b"), s("b5"), None, false),
            ]
        );
        // Page 2 goes on with `a`'s older version and `b`'s: each knows its successor,
        // though it was on the page before.
        let page2 = ListObjectVersionsOutput::builder()
            .versions(version("t/b", "b4", false, 40))
            .versions(version("t/b", "b1", false, 10))
            .versions(version("t/c", "c1", true, 5))
            .build();
        assert_eq!(
            listed(&page2, &mut at),
            [
                (s("t/b"), s("b4"), Some(50), false),
                (s("t/b"), s("b1"), Some(40), false),
                (s("t/c"), s("c1"), None, false),
            ]
        );
        // The token carries where the listing is.
        let token = serde_json::to_string(&at).unwrap();
        let back: VersionsToken = serde_json::from_str(&token).unwrap();
        assert_eq!(back.last.map(|l| l.0), Some(s("t/c")));
    }
}
