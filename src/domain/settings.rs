//! Operator-tunable settings and their bounds.

use serde::{Deserialize, Serialize};

use super::validation::{Errors, FieldError};

/// S3's smallest multipart part; below it multipart upload is impossible.
pub const MIN_MULTIPART_THRESHOLD: i64 = 5 * 1024 * 1024;
/// S3's largest single PUT.
pub const MAX_MULTIPART_THRESHOLD: i64 = 5 * 1024 * 1024 * 1024;

/// The settings every job snapshots when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub find_concurrency: i32,
    pub multipart_threshold_bytes: i64,
    pub report_retention_days: i32,
    /// Cron expression (5 fields, or 6 with seconds), evaluated in UTC.
    pub job_schedule: Option<String>,
    /// Backups of the lake the operator declares (receipts name each as residue).
    pub backups: Vec<Backup>,
}

/// A backup of the lake Lethe cannot see or erase, as the operator declares it ("AWS
/// Backup vault lake-daily, 35 days"): a copy of the subject's rows may be kept in it for
/// `retention_days` after they left the lake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// 1 to 128 characters, unique among the backups, no control character.
    pub name: String,
    /// How long the backup keeps a copy, 1 to 36,500 days.
    pub retention_days: i32,
    /// Up to 1,024 characters, no control character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Backups declared at most.
pub const MAX_BACKUPS: usize = 64;
/// A backup's longest retention: 100 years.
pub const MAX_BACKUP_RETENTION_DAYS: i32 = 36_500;

/// Job reports (each subject's account) are kept at least this long: a month, the time a
/// controller has to answer an erasure request.
pub const MIN_REPORT_RETENTION_DAYS: i32 = 30;

impl Default for Settings {
    /// The defaults (the `setting` row's column defaults are the same; a test checks).
    fn default() -> Self {
        Self {
            find_concurrency: 8,
            multipart_threshold_bytes: 100 * 1024 * 1024,
            report_retention_days: 90,
            job_schedule: None,
            backups: Vec::new(),
        }
    }
}

/// The settings a job runs with: a copy of the settings when it was created. A field
/// missing from an older snapshot reads as its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct JobSettings {
    /// Objects searched at once per find task (and partitions listed at once).
    #[schema(required = true)]
    pub find_concurrency: i32,
    /// Objects at least this large are written with multipart upload.
    #[schema(required = true)]
    pub multipart_threshold_bytes: i64,
    #[schema(required = true)]
    pub report_retention_days: i32,
    pub job_schedule: Option<String>,
}

impl From<&Settings> for JobSettings {
    fn from(s: &Settings) -> Self {
        Self {
            find_concurrency: s.find_concurrency,
            multipart_threshold_bytes: s.multipart_threshold_bytes,
            report_retention_days: s.report_retention_days,
            job_schedule: s.job_schedule.clone(),
        }
    }
}

impl Default for JobSettings {
    fn default() -> Self {
        Self::from(&Settings::default())
    }
}

impl JobSettings {
    /// `find_concurrency` within its bounds.
    pub fn find_concurrency(&self) -> usize {
        self.find_concurrency.clamp(1, 256) as usize
    }

    /// `multipart_threshold_bytes`, never below S3's smallest part.
    pub fn multipart_threshold(&self) -> u64 {
        self.multipart_threshold_bytes.max(MIN_MULTIPART_THRESHOLD) as u64
    }
}

impl Settings {
    /// Checks bounds and the cron expression, naming each bad field.
    pub fn validate(self) -> Result<Self, Vec<FieldError>> {
        let mut errors = Errors::new();
        if !(1..=256).contains(&self.find_concurrency) {
            errors.add("find_concurrency", "must be between 1 and 256");
        }
        if !(MIN_MULTIPART_THRESHOLD..=MAX_MULTIPART_THRESHOLD)
            .contains(&self.multipart_threshold_bytes)
        {
            errors.add(
                "multipart_threshold_bytes",
                format!("must be between {MIN_MULTIPART_THRESHOLD} (5 MiB) and {MAX_MULTIPART_THRESHOLD} (5 GiB)"),
            );
        }
        if !(MIN_REPORT_RETENTION_DAYS..=3650).contains(&self.report_retention_days) {
            errors.add(
                "report_retention_days",
                format!("must be between {MIN_REPORT_RETENTION_DAYS} and 3650"),
            );
        }
        if let Some(expr) = &self.job_schedule
            && let Err(message) = parse_cron(expr)
        {
            errors.add("job_schedule", message);
        }
        check_backups(&self.backups, &mut errors);
        errors.finish(self)
    }
}

/// Checks the declared backups, naming each bad field (`backups[2].retention_days`).
fn check_backups(backups: &[Backup], errors: &mut Errors) {
    if backups.len() > MAX_BACKUPS {
        errors.add("backups", format!("at most {MAX_BACKUPS} backups"));
        return;
    }
    let text_ok =
        |t: &str, max: usize| t.chars().count() <= max && !t.chars().any(char::is_control);
    let mut names = std::collections::HashSet::new();
    for (i, b) in backups.iter().enumerate() {
        if b.name.trim().is_empty() || !text_ok(&b.name, 128) {
            errors.add(
                format!("backups[{i}].name"),
                "must be 1 to 128 characters, not blank, without control characters",
            );
        } else if !names.insert(b.name.as_str()) {
            errors.add(format!("backups[{i}].name"), "names another backup already");
        }
        if !(1..=MAX_BACKUP_RETENTION_DAYS).contains(&b.retention_days) {
            errors.add(
                format!("backups[{i}].retention_days"),
                format!("must be between 1 and {MAX_BACKUP_RETENTION_DAYS}"),
            );
        }
        if b.description.as_deref().is_some_and(|d| !text_ok(d, 1024)) {
            errors.add(
                format!("backups[{i}].description"),
                "must be at most 1024 characters, without control characters",
            );
        }
    }
}

/// Parses a cron expression: 5 fields (minute precision) or 6 (with seconds first).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    let fields = expr.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "must be a cron expression of 5 fields (or 6 with seconds), got {fields}"
        ));
    }
    croner::Cron::new(expr)
        .with_seconds_optional()
        .parse()
        .map_err(|e| format!("invalid cron expression: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            find_concurrency: 8,
            multipart_threshold_bytes: 100 * 1024 * 1024,
            report_retention_days: 90,
            job_schedule: Some("0 3 * * *".into()),
            backups: vec![backup("lake-daily", 35)],
        }
    }

    fn backup(name: &str, days: i32) -> Backup {
        Backup {
            name: name.into(),
            retention_days: days,
            description: Some("AWS Backup vault".into()),
        }
    }

    #[test]
    fn sane_settings_are_valid() {
        assert!(settings().validate().is_ok());
        assert!(
            Settings {
                job_schedule: None,
                ..settings()
            }
            .validate()
            .is_ok()
        );
        assert!(
            Settings {
                job_schedule: Some("*/30 0 3 * * MON".into()),
                ..settings()
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn out_of_range_values_and_bad_cron_are_named() {
        let errors = Settings {
            find_concurrency: 0,
            multipart_threshold_bytes: 1024,
            report_retention_days: 0,
            job_schedule: Some("every day".into()),
            backups: Vec::new(),
        }
        .validate()
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "find_concurrency",
                "multipart_threshold_bytes",
                "report_retention_days",
                "job_schedule"
            ]
        );
        let bad_field = Settings {
            job_schedule: Some("61 * * * *".into()),
            ..settings()
        }
        .validate();
        assert!(bad_field.is_err());
    }

    #[test]
    fn bad_backups_are_named_by_index_and_field() {
        let long = "x".repeat(129);
        let errors = Settings {
            backups: vec![
                backup("lake-daily", 35),
                backup("lake-daily", 7),
                backup(" ", 0),
                backup(&long, 36_501),
                Backup {
                    description: Some("two\nlines".into()),
                    ..backup("vault\u{7}", 1)
                },
            ],
            ..settings()
        }
        .validate()
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "backups[1].name",
                "backups[2].name",
                "backups[2].retention_days",
                "backups[3].name",
                "backups[3].retention_days",
                "backups[4].name",
                "backups[4].description",
            ]
        );
        let many = Settings {
            backups: (0..=MAX_BACKUPS)
                .map(|i| backup(&format!("b{i}"), 1))
                .collect(),
            ..settings()
        };
        assert_eq!(many.validate().unwrap_err()[0].field, "backups");
        // The bounds themselves are accepted.
        let edges = Settings {
            backups: vec![
                backup(&"y".repeat(128), 1),
                backup("z", MAX_BACKUP_RETENTION_DAYS),
            ],
            ..settings()
        };
        assert!(edges.validate().is_ok());
    }
}
