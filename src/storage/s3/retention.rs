//! A bucket's lifecycle and replication rules and a version's object lock, read through
//! aws-sdk-s3 into `domain::retention` values. A bucket without a lifecycle or replication
//! configuration has no rules (S3 answers those with an error, not an empty list).

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::types::{
    ExpirationStatus, ObjectLockEventHold, ObjectLockLegalHoldStatus, ReplicationRuleStatus,
};

use super::storage_error;
use crate::domain::retention::{LifecycleRule, ReplicationRule, VersionLock, bucket_of_arn};
use crate::storage::StorageError;

/// A call's answer; None when S3 says the configuration asked for does not exist (its
/// error code `absent`), which must not be read as a missing bucket.
fn unless_absent<T, E>(
    result: Result<T, SdkError<E>>,
    absent: &str,
) -> Result<Option<T>, StorageError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) if e.code() == Some(absent) => Ok(None),
        Err(e) => Err(storage_error(e)),
    }
}

/// `GetBucketLifecycleConfiguration`.
pub(super) async fn lifecycle_rules(
    client: &aws_sdk_s3::Client,
    permit: &super::limit::Permit,
    bucket: &str,
) -> Result<Vec<LifecycleRule>, StorageError> {
    let out = client
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .customize()
        .interceptor(permit.signal())
        .send()
        .await;
    let rules = unless_absent(out, "NoSuchLifecycleConfiguration")?;
    Ok(rules
        .map(|out| out.rules().iter().map(lifecycle_rule).collect())
        .unwrap_or_default())
}

/// `GetBucketReplication`.
pub(super) async fn replication_rules(
    client: &aws_sdk_s3::Client,
    permit: &super::limit::Permit,
    bucket: &str,
) -> Result<Vec<ReplicationRule>, StorageError> {
    let out = client
        .get_bucket_replication()
        .bucket(bucket)
        .customize()
        .interceptor(permit.signal())
        .send()
        .await;
    let config = unless_absent(out, "ReplicationConfigurationNotFoundError")?;
    Ok(config
        .as_ref()
        .and_then(|out| out.replication_configuration())
        .map(|c| c.rules().iter().filter_map(replication_rule).collect())
        .unwrap_or_default())
}

/// A size bound of a filter (S3 never sends a negative one).
fn size_bound(bytes: Option<i64>) -> Option<u64> {
    bytes.map(|n| n.max(0) as u64)
}

/// One lifecycle rule: its prefix from the filter, its `And`, or the rule itself (the
/// deprecated form).
fn lifecycle_rule(rule: &aws_sdk_s3::types::LifecycleRule) -> LifecycleRule {
    let filter = rule.filter();
    let and = filter.and_then(|f| f.and());
    // A rule-level prefix is deprecated, yet buckets configured the old way still have it.
    #[allow(deprecated)]
    let prefix = (filter.and_then(|f| f.prefix()))
        .or_else(|| and.and_then(|a| a.prefix()))
        .or_else(|| rule.prefix());
    let greater = (filter.and_then(|f| f.object_size_greater_than()))
        .or_else(|| and.and_then(|a| a.object_size_greater_than()));
    let less = (filter.and_then(|f| f.object_size_less_than()))
        .or_else(|| and.and_then(|a| a.object_size_less_than()));
    let expiration = rule.noncurrent_version_expiration();
    LifecycleRule {
        id: rule.id().map(str::to_owned),
        enabled: *rule.status() == ExpirationStatus::Enabled,
        prefix: prefix.map(str::to_owned),
        size_greater_than: size_bound(greater),
        size_less_than: size_bound(less),
        has_tag_filter: filter.and_then(|f| f.tag()).is_some()
            || and.is_some_and(|a| !a.tags().is_empty()),
        noncurrent_days: expiration.and_then(|e| e.noncurrent_days()),
        newer_noncurrent_versions: expiration.and_then(|e| e.newer_noncurrent_versions()),
    }
}

/// One replication rule (None without a destination: it copies nowhere).
fn replication_rule(rule: &aws_sdk_s3::types::ReplicationRule) -> Option<ReplicationRule> {
    let filter = rule.filter();
    let and = filter.and_then(|f| f.and());
    // A rule-level prefix is deprecated, yet buckets configured the old way still have it.
    #[allow(deprecated)]
    let prefix = (filter.and_then(|f| f.prefix()))
        .or_else(|| and.and_then(|a| a.prefix()))
        .or_else(|| rule.prefix());
    Some(ReplicationRule {
        id: rule.id().map(str::to_owned),
        enabled: *rule.status() == ReplicationRuleStatus::Enabled,
        prefix: prefix.map(str::to_owned),
        has_tag_filter: filter.and_then(|f| f.tag()).is_some()
            || and.is_some_and(|a| !a.tags().is_empty()),
        destination_bucket: bucket_of_arn(rule.destination()?.bucket()),
    })
}

/// The object lock a HeadObject reports. S3 sends these headers only to a caller allowed
/// `s3:GetObjectRetention` / `s3:GetObjectLegalHold`; a date out of chrono's range reads
/// as the end of time (still blocking).
pub(super) fn version_lock(out: &HeadObjectOutput) -> VersionLock {
    let retain_until = out.object_lock_retain_until_date().map(|d| {
        chrono::DateTime::from_timestamp(d.secs(), d.subsec_nanos())
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
    });
    VersionLock {
        legal_hold: out.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On),
        event_hold: out.object_lock_event_hold() == Some(&ObjectLockEventHold::On),
        mode: out.object_lock_mode().map(|m| m.as_str().to_owned()),
        retain_until,
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::types::{
        Destination, LifecycleRuleAndOperator, LifecycleRuleFilter, NoncurrentVersionExpiration,
        ObjectLockMode, ReplicationRuleAndOperator, ReplicationRuleFilter, Tag,
    };

    use super::*;

    fn tag() -> Tag {
        Tag::builder().key("tier").value("raw").build().unwrap()
    }

    #[test]
    fn lifecycle_rules_take_prefix_sizes_and_tags_from_the_filter_its_and_or_the_rule() {
        let and = LifecycleRuleAndOperator::builder()
            .prefix("events/")
            .tags(tag())
            .object_size_greater_than(10)
            .object_size_less_than(1000)
            .build();
        let rule = aws_sdk_s3::types::LifecycleRule::builder()
            .id("r")
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().and(and).build())
            .noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(5)
                    .newer_noncurrent_versions(2)
                    .build(),
            )
            .build()
            .unwrap();
        let expected = LifecycleRule {
            id: Some("r".into()),
            enabled: true,
            prefix: Some("events/".into()),
            size_greater_than: Some(10),
            size_less_than: Some(1000),
            has_tag_filter: true,
            noncurrent_days: Some(5),
            newer_noncurrent_versions: Some(2),
        };
        assert_eq!(lifecycle_rule(&rule), expected);

        #[allow(deprecated)]
        let legacy = aws_sdk_s3::types::LifecycleRule::builder()
            .prefix("old/")
            .status(ExpirationStatus::Disabled)
            .build()
            .unwrap();
        let read = lifecycle_rule(&legacy);
        assert_eq!(
            (read.prefix.as_deref(), read.enabled),
            (Some("old/"), false)
        );
        assert_eq!(read.noncurrent_days, None);
        let tagged = aws_sdk_s3::types::LifecycleRule::builder()
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().tag(tag()).build())
            .build()
            .unwrap();
        assert!(lifecycle_rule(&tagged).has_tag_filter);
    }

    #[test]
    fn replication_rules_take_prefix_and_tags_and_keep_the_destination_bucket_name() {
        let destination = || {
            Destination::builder()
                .bucket("arn:aws:s3:::copy")
                .build()
                .unwrap()
        };
        let and = ReplicationRuleAndOperator::builder()
            .prefix("people/")
            .tags(tag())
            .build();
        let rule = aws_sdk_s3::types::ReplicationRule::builder()
            .id("r")
            .status(ReplicationRuleStatus::Enabled)
            .filter(ReplicationRuleFilter::builder().and(and).build())
            .destination(destination())
            .build()
            .unwrap();
        let expected = ReplicationRule {
            id: Some("r".into()),
            enabled: true,
            prefix: Some("people/".into()),
            has_tag_filter: true,
            destination_bucket: "copy".into(),
        };
        assert_eq!(replication_rule(&rule), Some(expected));
        let plain = aws_sdk_s3::types::ReplicationRule::builder()
            .status(ReplicationRuleStatus::Disabled)
            .filter(ReplicationRuleFilter::builder().prefix("t/").build())
            .destination(destination())
            .build()
            .unwrap();
        let read = replication_rule(&plain).unwrap();
        assert_eq!((read.prefix.as_deref(), read.enabled), (Some("t/"), false));
        assert!(!read.has_tag_filter);
    }

    #[test]
    fn a_head_tells_holds_mode_and_retention_end() {
        let until = aws_sdk_s3::primitives::DateTime::from_secs(4_070_908_800);
        let out = HeadObjectOutput::builder()
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::Off)
            .object_lock_event_hold(ObjectLockEventHold::On)
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(until)
            .build();
        let lock = version_lock(&out);
        let expected = VersionLock {
            legal_hold: false,
            event_hold: true,
            mode: Some("COMPLIANCE".into()),
            retain_until: chrono::DateTime::from_timestamp(4_070_908_800, 0),
        };
        assert_eq!(lock, expected);
        assert_eq!(
            version_lock(&HeadObjectOutput::builder().build()),
            VersionLock::default()
        );
    }
}
