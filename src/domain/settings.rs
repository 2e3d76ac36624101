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
}

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
        errors.finish(self)
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
}
