//! What keeps or copies an object version beyond Lethe's own deletes: a bucket's lifecycle
//! rules (when S3 itself expires a noncurrent version), its replication rules (a copy in
//! another bucket), and a version's object lock (a delete S3 refuses).
//!
//! Invariants: every answer errs towards "the rows may still be there". A rule Lethe cannot
//! fully evaluate (a tag filter, a count of newer versions) still counts, as a "not before"
//! date or a "may be replicated"; a lock with an unknown mode still blocks.

use chrono::{DateTime, Duration, Utc};

/// One rule of a bucket's lifecycle configuration, as far as noncurrent versions go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleRule {
    pub id: Option<String>,
    /// `Status: Enabled`.
    pub enabled: bool,
    /// The filter's key prefix (None or empty: every key).
    pub prefix: Option<String>,
    /// `ObjectSizeGreaterThan`: the rule applies to versions strictly larger.
    pub size_greater_than: Option<u64>,
    /// `ObjectSizeLessThan`: the rule applies to versions strictly smaller.
    pub size_less_than: Option<u64>,
    /// The filter names tags: whether a version is covered depends on its tags.
    pub has_tag_filter: bool,
    /// `NoncurrentVersionExpiration.NoncurrentDays` (None: the rule expires no
    /// noncurrent version).
    pub noncurrent_days: Option<i32>,
    /// `NoncurrentVersionExpiration.NewerNoncurrentVersions`: that many newer noncurrent
    /// versions are kept whatever their age.
    pub newer_noncurrent_versions: Option<i32>,
}

/// When S3 expires a noncurrent version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// The moment the version becomes eligible (S3 removes it asynchronously after).
    pub at: DateTime<Utc>,
    /// False: "not before" (a tag filter or a count of newer versions may keep it longer,
    /// or for good).
    pub certain: bool,
    /// The id of the rule that gives this date.
    pub rule: Option<String>,
}

impl LifecycleRule {
    /// Whether the rule's filter takes in a version of `key` of `size` bytes (tags
    /// aside: a tag filter is judged by the caller as uncertain).
    fn covers(&self, key: &str, size: u64) -> bool {
        self.enabled
            && key_has_prefix(key, self.prefix.as_deref())
            && self.size_greater_than.is_none_or(|min| size > min)
            && self.size_less_than.is_none_or(|max| size < max)
    }

    /// This rule's expiry of a version noncurrent since `since`, if the rule covers it.
    fn expiry(&self, key: &str, size: u64, since: DateTime<Utc>) -> Option<Expiry> {
        let days = self.noncurrent_days.filter(|d| *d >= 0)?;
        if !self.covers(key, size) {
            return None;
        }
        let due = since.checked_add_signed(Duration::try_days(i64::from(days))?)?;
        Some(Expiry {
            at: next_midnight(due)?,
            certain: !self.has_tag_filter && self.newer_noncurrent_versions.is_none(),
            rule: self.id.clone(),
        })
    }
}

/// S3's rounding of a lifecycle date: the next day's midnight UTC (a moment exactly at
/// midnight goes to the next one too: the later date is the safe claim).
fn next_midnight(at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(at.date_naive().succ_opt()?.and_hms_opt(0, 0, 0)?.and_utc())
}

/// Whether `key` lies under a rule's prefix (None or empty: every key).
fn key_has_prefix(key: &str, prefix: Option<&str>) -> bool {
    prefix.is_none_or(|p| key.starts_with(p))
}

/// When a version of `key` (`size` bytes) that became noncurrent at `noncurrent_since`
/// expires by the bucket's lifecycle `rules` (S3's `NoncurrentVersionExpiration`: that
/// many days after, rounded up to midnight UTC). Only enabled rules whose filter covers
/// the version count; with several, the earliest certain date wins, else the earliest
/// "not before" one. None: no rule ever expires it.
pub fn noncurrent_expiry(
    rules: &[LifecycleRule],
    key: &str,
    size: u64,
    noncurrent_since: DateTime<Utc>,
) -> Option<Expiry> {
    let expiries = rules
        .iter()
        .filter_map(|r| r.expiry(key, size, noncurrent_since));
    let (certain, uncertain): (Vec<Expiry>, Vec<Expiry>) = expiries.partition(|e| e.certain);
    let earliest = |all: Vec<Expiry>| all.into_iter().min_by_key(|e| e.at);
    earliest(certain).or_else(|| earliest(uncertain))
}

/// One rule of a bucket's replication configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationRule {
    pub id: Option<String>,
    /// `Status: Enabled`.
    pub enabled: bool,
    /// The filter's key prefix (None or empty: every key).
    pub prefix: Option<String>,
    /// The filter names tags: whether a version is replicated depends on its tags.
    pub has_tag_filter: bool,
    /// The destination bucket's name (S3 gives an ARN: see [`bucket_of_arn`]).
    pub destination_bucket: String,
}

/// The bucket a version of `key` may have been copied to by `rules`: the destination of
/// the first enabled rule whose prefix covers the key (a tag filter counts as covering:
/// "may be replicated"). None: no rule copies it.
pub fn replicated_to(rules: &[ReplicationRule], key: &str) -> Option<String> {
    rules
        .iter()
        .find(|r| r.enabled && key_has_prefix(key, r.prefix.as_deref()))
        .map(|r| r.destination_bucket.clone())
}

/// The bucket name in an S3 bucket ARN (`arn:aws:s3:::bucket`, any partition); anything
/// else is taken as a name already.
pub fn bucket_of_arn(arn: &str) -> String {
    match arn
        .strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":::"))
    {
        Some((_, bucket)) => bucket.to_owned(),
        None => arn.to_owned(),
    }
}

/// A version's object lock, as S3 reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionLock {
    /// A legal hold is on.
    pub legal_hold: bool,
    /// An event hold is on (it protects the version until released, and for a set
    /// duration after).
    pub event_hold: bool,
    /// Retention mode: `COMPLIANCE` or `GOVERNANCE`.
    pub mode: Option<String>,
    /// The retention's end.
    pub retain_until: Option<DateTime<Utc>>,
}

/// Why S3 refuses to delete a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteBlock {
    /// A legal hold: no end date, until someone lifts it.
    LegalHold,
    /// An event hold: no end date while it is on.
    EventHold,
    /// Retention (COMPLIANCE, or GOVERNANCE, which Lethe never bypasses) until `until`.
    Retention { mode: String, until: DateTime<Utc> },
}

impl DeleteBlock {
    /// When the block ends by itself (None: a legal hold, until lifted).
    pub fn until(&self) -> Option<DateTime<Utc>> {
        match self {
            DeleteBlock::LegalHold | DeleteBlock::EventHold => None,
            DeleteBlock::Retention { until, .. } => Some(*until),
        }
    }
}

impl std::fmt::Display for DeleteBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeleteBlock::LegalHold => f.write_str("a legal hold is on (no end date)"),
            DeleteBlock::EventHold => f.write_str("an event hold is on (no end date)"),
            DeleteBlock::Retention { mode, until } => write!(
                f,
                "object lock retention ({mode}) until {}",
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }
}

impl VersionLock {
    /// Why a delete of the version is refused at `now`, if it is: a hold first (it
    /// outlasts any retention), then retention whose end is after `now`, whatever its
    /// mode.
    pub fn delete_blocked(&self, now: DateTime<Utc>) -> Option<DeleteBlock> {
        if self.legal_hold {
            return Some(DeleteBlock::LegalHold);
        }
        if self.event_hold {
            return Some(DeleteBlock::EventHold);
        }
        let until = self.retain_until.filter(|until| *until > now)?;
        Some(DeleteBlock::Retention {
            mode: self
                .mode
                .clone()
                .unwrap_or_else(|| "unknown mode".to_owned()),
            until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn rule(id: &str, days: i32) -> LifecycleRule {
        LifecycleRule {
            id: Some(id.into()),
            enabled: true,
            noncurrent_days: Some(days),
            ..LifecycleRule::default()
        }
    }

    #[test]
    fn a_noncurrent_version_expires_its_days_later_rounded_up_to_midnight_utc() {
        // AWS's own example: noncurrent at 10:30 on Jan 15, 3 days: Jan 19, 00:00 UTC.
        let e = noncurrent_expiry(&[rule("r", 3)], "t/a", 10, at("2014-01-15T10:30:00Z"));
        assert_eq!(
            e,
            Some(Expiry {
                at: at("2014-01-19T00:00:00Z"),
                certain: true,
                rule: Some("r".into()),
            })
        );
        let late = noncurrent_expiry(&[rule("r", 30)], "t/a", 10, at("2024-02-28T23:59:59Z"));
        assert_eq!(late.unwrap().at, at("2024-03-30T00:00:00Z"));
    }

    #[test]
    fn only_enabled_rules_whose_filter_covers_the_version_count() {
        let since = at("2024-01-01T12:00:00Z");
        let disabled = LifecycleRule {
            enabled: false,
            ..rule("off", 1)
        };
        let prefixed = LifecycleRule {
            prefix: Some("logs/".into()),
            ..rule("logs", 2)
        };
        let big = LifecycleRule {
            size_greater_than: Some(100),
            ..rule("big", 3)
        };
        let small = LifecycleRule {
            size_less_than: Some(100),
            ..rule("small", 4)
        };
        let no_expiry = LifecycleRule {
            noncurrent_days: None,
            ..rule("transition only", 0)
        };
        let rules = [disabled, prefixed, big, small, no_expiry];
        let id = |key, size| noncurrent_expiry(&rules, key, size, since).and_then(|e| e.rule);
        assert_eq!(id("logs/a", 50).as_deref(), Some("logs"));
        assert_eq!(id("t/a", 101).as_deref(), Some("big"));
        assert_eq!(id("t/a", 99).as_deref(), Some("small"));
        assert_eq!(
            id("t/a", 100),
            None,
            "neither bound takes in exactly 100 bytes"
        );
        assert_eq!(noncurrent_expiry(&rules[..1], "t/a", 1, since), None);
        assert_eq!(noncurrent_expiry(&[], "t/a", 1, since), None);
    }

    #[test]
    fn tag_filters_and_kept_newer_versions_make_the_date_a_not_before() {
        let since = at("2024-01-01T12:00:00Z");
        let tagged = LifecycleRule {
            has_tag_filter: true,
            ..rule("tagged", 1)
        };
        let keeps_newer = LifecycleRule {
            newer_noncurrent_versions: Some(2),
            ..rule("keeps", 1)
        };
        for r in [tagged, keeps_newer] {
            let e = noncurrent_expiry(std::slice::from_ref(&r), "t/a", 1, since).unwrap();
            assert!(!e.certain, "{r:?}");
            assert_eq!(e.at, at("2024-01-03T00:00:00Z"));
        }
    }

    #[test]
    fn the_earliest_certain_date_wins_over_earlier_uncertain_ones() {
        let since = at("2024-01-01T12:00:00Z");
        let uncertain_soon = LifecycleRule {
            has_tag_filter: true,
            ..rule("tagged", 1)
        };
        let rules = [
            uncertain_soon.clone(),
            rule("later", 30),
            rule("sooner", 10),
        ];
        let e = noncurrent_expiry(&rules, "t/a", 1, since).unwrap();
        assert_eq!((e.rule.as_deref(), e.certain), (Some("sooner"), true));
        assert_eq!(e.at, at("2024-01-12T00:00:00Z"));
        let later_tagged = LifecycleRule {
            has_tag_filter: true,
            ..rule("tagged later", 5)
        };
        let e = noncurrent_expiry(&[later_tagged, uncertain_soon], "t/a", 1, since).unwrap();
        assert_eq!((e.rule.as_deref(), e.certain), (Some("tagged"), false));
    }

    #[test]
    fn replication_names_the_first_enabled_rule_covering_the_key() {
        let r = |id: &str, enabled, prefix: Option<&str>, tags, dest: &str| ReplicationRule {
            id: Some(id.into()),
            enabled,
            prefix: prefix.map(str::to_owned),
            has_tag_filter: tags,
            destination_bucket: dest.into(),
        };
        let rules = [
            r("off", false, None, false, "never"),
            r("logs", true, Some("logs/"), false, "log-copy"),
            r("tagged", true, Some("t/"), true, "maybe-copy"),
            r("all", true, Some(""), false, "full-copy"),
        ];
        assert_eq!(replicated_to(&rules, "logs/a").as_deref(), Some("log-copy"));
        assert_eq!(replicated_to(&rules, "t/a").as_deref(), Some("maybe-copy"));
        assert_eq!(replicated_to(&rules, "x/a").as_deref(), Some("full-copy"));
        assert_eq!(replicated_to(&rules[..2], "x/a"), None);
        assert_eq!(replicated_to(&[], "x/a"), None);
    }

    #[test]
    fn a_destination_arn_gives_its_bucket_name() {
        assert_eq!(bucket_of_arn("arn:aws:s3:::lake-copy"), "lake-copy");
        assert_eq!(bucket_of_arn("arn:aws-cn:s3:::lake-copy"), "lake-copy");
        assert_eq!(bucket_of_arn("lake-copy"), "lake-copy");
    }

    #[test]
    fn a_legal_hold_or_unexpired_retention_of_any_mode_blocks_a_delete() {
        let now = at("2024-06-01T00:00:00Z");
        assert_eq!(VersionLock::default().delete_blocked(now), None);
        let hold = VersionLock {
            legal_hold: true,
            event_hold: false,
            mode: Some("GOVERNANCE".into()),
            retain_until: Some(at("2024-01-01T00:00:00Z")),
        };
        assert_eq!(hold.delete_blocked(now), Some(DeleteBlock::LegalHold));
        assert_eq!(DeleteBlock::LegalHold.until(), None);
        let event = VersionLock {
            event_hold: true,
            ..VersionLock::default()
        };
        assert_eq!(event.delete_blocked(now), Some(DeleteBlock::EventHold));
        assert_eq!(DeleteBlock::EventHold.until(), None);
        for mode in ["GOVERNANCE", "COMPLIANCE"] {
            let lock = VersionLock {
                mode: Some(mode.into()),
                retain_until: Some(at("2030-01-01T00:00:00Z")),
                ..VersionLock::default()
            };
            let block = lock.delete_blocked(now).unwrap();
            assert_eq!(block.until(), Some(at("2030-01-01T00:00:00Z")));
            assert_eq!(
                block.to_string(),
                format!("object lock retention ({mode}) until 2030-01-01T00:00:00Z")
            );
            let expired = VersionLock {
                retain_until: Some(now),
                ..lock
            };
            assert_eq!(
                expired.delete_blocked(now),
                None,
                "retention ends at its date"
            );
        }
    }
}
