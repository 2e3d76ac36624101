//! `/v1/settings`: read and replace the operator-tunable settings.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::auth::{Auth, SettingsRead, SettingsWrite};
use crate::api::error::{ApiError, AuthProblems, Problem};
use crate::api::extract::ApiJson;
use crate::app::AppState;
use crate::db::setting::{self as db, SettingsRecord};
use crate::domain::settings::{Backup, Settings};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, put_settings))
}

/// The settings to store; every field is required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSettingsRequest {
    /// Parallel find tasks per job, 1 to 256.
    pub find_concurrency: i32,
    /// Objects at least this large are written with multipart upload (5 MiB to 5 GiB).
    pub multipart_threshold_bytes: i64,
    /// How long job reports are kept, 1 to 3650 days.
    pub report_retention_days: i32,
    /// Cron expression (5 fields, or 6 with seconds; UTC) starting jobs; null = none.
    /// Required (send null explicitly), so a replace never clears a schedule by omission.
    #[serde(deserialize_with = "required_nullable")]
    #[schema(required = true)]
    pub job_schedule: Option<String>,
    /// Backups of the lake Lethe cannot erase (an AWS Backup vault, say), named as
    /// residue in every receipt with the date each ends; at most 64. Omitted (or null):
    /// the declared backups stay as they are; `[]` declares none.
    #[serde(default)]
    pub backups: Option<Vec<Backup>>,
}

fn required_nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::deserialize(d)
}

/// The current settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsResponse {
    pub find_concurrency: i32,
    pub multipart_threshold_bytes: i64,
    pub report_retention_days: i32,
    pub job_schedule: Option<String>,
    /// The backups declared.
    pub backups: Vec<Backup>,
    /// Who changed them last; null while they are the defaults.
    pub updated_by: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl From<SettingsRecord> for SettingsResponse {
    fn from(r: SettingsRecord) -> Self {
        Self {
            find_concurrency: r.find_concurrency,
            multipart_threshold_bytes: r.multipart_threshold_bytes,
            report_retention_days: r.report_retention_days,
            job_schedule: r.job_schedule,
            backups: r.backups.0,
            updated_by: r.updated_by,
            updated_at: r.updated_at,
        }
    }
}

/// Read the settings.
#[utoipa::path(get, path = "/v1/settings", tag = "settings", operation_id = "get_settings",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The settings", body = SettingsResponse),
        AuthProblems,
    ))]
async fn get_settings(
    State(state): State<AppState>,
    _auth: Auth<SettingsRead>,
) -> Result<axum::Json<SettingsResponse>, ApiError> {
    Ok(axum::Json(db::get_settings(&state.db).await?.into()))
}

/// Replace the settings.
#[utoipa::path(put, path = "/v1/settings", tag = "settings", operation_id = "put_settings",
    security(("bearer" = [])), request_body = PutSettingsRequest,
    responses(
        (status = 200, description = "Stored", body = SettingsResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ))]
async fn put_settings(
    State(state): State<AppState>,
    auth: Auth<SettingsWrite>,
    ApiJson(body): ApiJson<PutSettingsRequest>,
) -> Result<axum::Json<SettingsResponse>, ApiError> {
    let mut tx = state.db.begin().await?;
    let stored = db::lock_settings(&mut *tx).await?;
    let settings = Settings {
        find_concurrency: body.find_concurrency,
        multipart_threshold_bytes: body.multipart_threshold_bytes,
        report_retention_days: body.report_retention_days,
        job_schedule: body.job_schedule,
        backups: body.backups.unwrap_or_else(|| stored.backups.0.clone()),
    }
    .validate()
    .map_err(ApiError::Validation)?;
    let before = SettingsResponse::from(stored);
    let record = db::update_settings(&mut *tx, &settings, &auth.caller.principal.subject).await?;
    let after = SettingsResponse::from(record);
    auth.caller
        .audit(
            &mut *tx,
            "settings.update",
            "settings",
            None,
            json!({"before": before, "after": &after}),
        )
        .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}
