//! S3 (or any S3-compatible server) through aws-sdk-s3.

use std::ops::Range;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use bytes::Bytes;

use super::{ListPage, ObjectMeta, ObjectStore, StorageError};

/// An S3 object store.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    /// Keys per listing page (S3's maximum is 1000).
    pub page_size: i32,
}

impl S3Store {
    pub fn new(sdk: &aws_config::SdkConfig, force_path_style: bool) -> Self {
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(force_path_style)
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(config),
            page_size: 1000,
        }
    }
}

fn storage_error<E: ProvideErrorMetadata + std::fmt::Debug>(err: SdkError<E>) -> StorageError {
    let status = err.raw_response().map(|r| r.status().as_u16());
    match (err.code(), status) {
        (Some("NoSuchKey" | "NoSuchVersion" | "NoSuchBucket" | "NotFound"), _) | (_, Some(404)) => {
            StorageError::NotFound
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

#[async_trait]
impl ObjectStore for S3Store {
    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        next: Option<String>,
    ) -> Result<ListPage, StorageError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(self.page_size)
            .set_continuation_token(next)
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
            })
            .collect();
        let next = if out.is_truncated().unwrap_or(false) {
            out.next_continuation_token().map(str::to_owned)
        } else {
            None
        };
        Ok(ListPage { objects, next })
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta, StorageError> {
        let out = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(storage_error)?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            etag: out.e_tag().map(str::to_owned),
            // None on unversioned buckets; "null" (a valid id to read) for objects written
            // before versioning was enabled.
            version_id: out.version_id().map(str::to_owned),
            storage_class: out.storage_class().map(|c| c.as_str().to_owned()),
        })
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
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .range(format!("bytes={}-{}", range.start, range.end - 1))
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
