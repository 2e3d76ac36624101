//! `setting`: the single row of operator-tunable settings.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgExecutor};

use crate::domain::settings::{Backup, Settings};

/// The settings with who changed them last.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SettingsRecord {
    pub find_concurrency: i32,
    pub multipart_threshold_bytes: i64,
    pub report_retention_days: i32,
    pub job_schedule: Option<String>,
    /// The backups the operator declares.
    pub backups: sqlx::types::Json<Vec<Backup>>,
    pub updated_by: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl SettingsRecord {
    pub fn settings(&self) -> Settings {
        Settings {
            find_concurrency: self.find_concurrency,
            multipart_threshold_bytes: self.multipart_threshold_bytes,
            report_retention_days: self.report_retention_days,
            job_schedule: self.job_schedule.clone(),
            backups: self.backups.0.clone(),
        }
    }
}

const COLUMNS: &str = "find_concurrency, multipart_threshold_bytes, \
    report_retention_days, job_schedule, backups, updated_by, updated_at";

pub async fn get_settings(db: impl PgExecutor<'_>) -> sqlx::Result<SettingsRecord> {
    sqlx::query_as(AssertSqlSafe(format!("select {COLUMNS} from setting")))
        .fetch_one(db)
        .await
}

/// The settings, locked until the transaction ends (an audit's "before").
pub async fn lock_settings(db: impl PgExecutor<'_>) -> sqlx::Result<SettingsRecord> {
    sqlx::query_as(AssertSqlSafe(format!(
        "select {COLUMNS} from setting for update"
    )))
    .fetch_one(db)
    .await
}

pub async fn update_settings(
    db: impl PgExecutor<'_>,
    settings: &Settings,
    actor: &str,
) -> sqlx::Result<SettingsRecord> {
    sqlx::query_as(AssertSqlSafe(format!(
        r#"update setting set find_concurrency = $1,
               multipart_threshold_bytes = $2, report_retention_days = $3, job_schedule = $4,
               backups = $6, updated_by = $5, updated_at = now()
           returning {COLUMNS}"#
    )))
    .bind(settings.find_concurrency)
    .bind(settings.multipart_threshold_bytes)
    .bind(settings.report_retention_days)
    .bind(&settings.job_schedule)
    .bind(actor)
    .bind(sqlx::types::Json(&settings.backups))
    .fetch_one(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn defaults_exist_and_updates_persist(pool: sqlx::PgPool) {
        let defaults = get_settings(&pool).await.unwrap();
        assert_eq!(
            defaults.settings(),
            Settings::default(),
            "one set of defaults"
        );
        assert!(defaults.updated_by.is_none());
        let wanted = Settings {
            job_schedule: Some("0 3 * * *".into()),
            find_concurrency: 2,
            backups: vec![Backup {
                name: "lake-daily".into(),
                retention_days: 35,
                description: None,
            }],
            ..defaults.settings()
        };
        let updated = update_settings(&pool, &wanted, "alice").await.unwrap();
        assert_eq!(updated.settings(), wanted);
        assert_eq!(
            get_settings(&pool).await.unwrap().updated_by.as_deref(),
            Some("alice")
        );
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn the_database_refuses_out_of_range_values(pool: sqlx::PgPool) {
        let bad = Settings {
            find_concurrency: 0,
            ..get_settings(&pool).await.unwrap().settings()
        };
        let err = update_settings(&pool, &bad, "alice").await.unwrap_err();
        assert!(crate::db::is_constraint(
            &err,
            "setting_find_concurrency_range"
        ));
    }
}
