//! `/v1/jobs`: start a job over a snapshot of the deletion queue, follow it, cancel it.
//! Its events (also as Server-Sent Events) are `job_events`; its objects and report,
//! `job_objects`. Those two use this file's `load` and `job_id`; this file names neither.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::api::auth::{Auth, JobRead, JobWrite};
use crate::api::error::{ApiError, AuthProblems, Problem};
use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::{page_size, split_page};
use crate::app::AppState;
use crate::db::job::{self as db, CreateJobError, JobRecord, JobStats, NewJob};
use crate::domain::job::{JobStatus, JobTrigger};
use crate::domain::settings::JobSettings;
use crate::jobs::advance::create_job;
use crate::jobs::lifecycle::{self, CancelError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_job, list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
}

/// What to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartJobRequest {
    /// Stop after find and report what would be erased. Default false.
    #[serde(default)]
    pub dry_run: bool,
    /// Only these data mappers (default: every mapper the queued items apply to).
    #[serde(default)]
    pub data_mappers: Vec<String>,
}

/// A job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobResponse {
    pub job_id: Uuid,
    pub status: JobStatus,
    pub dry_run: bool,
    /// The data mappers the job searches.
    pub data_mappers: Vec<String>,
    /// The subset the caller asked for (empty = all).
    pub requested_data_mappers: Vec<String>,
    /// Queue items in the job's snapshot of the queue.
    pub queue_items: i64,
    pub trigger: JobTrigger,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The settings in force when the job was created.
    pub settings: JobSettings,
    pub stats: JobStats,
}

impl From<JobRecord> for JobResponse {
    fn from(j: JobRecord) -> Self {
        Self {
            job_id: j.job_id,
            status: j.status,
            trigger: j.trigger,
            dry_run: j.dry_run,
            data_mappers: j.data_mappers,
            requested_data_mappers: j.requested_data_mappers,
            queue_items: j.queue_items,
            created_by: j.created_by,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            settings: j.settings.0,
            stats: j.stats,
        }
    }
}

pub(super) fn job_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("no job {raw:?}")))
}

pub(super) async fn load(state: &AppState, id: Uuid) -> Result<JobRecord, ApiError> {
    db::get_job(&state.db, id).await.map_err(|e| match e {
        sqlx::Error::RowNotFound => ApiError::NotFound(format!("no job {id}")),
        other => other.into(),
    })
}

/// Start a job over the current queue (operators, admins). Returns at once; follow it
/// with `GET /v1/jobs/{job_id}` or its events.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", operation_id = "start_job",
    security(("bearer" = [])), request_body = StartJobRequest,
    responses(
        (status = 202, description = "Started", body = JobResponse),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 409, description = "A job is already running", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Nothing queued, unknown data mapper, or forget requested", body = Problem, content_type = "application/problem+json"),
    ))]
async fn start_job(
    State(state): State<AppState>,
    auth: Auth<JobWrite>,
    ApiJson(body): ApiJson<StartJobRequest>,
) -> Result<(StatusCode, axum::Json<JobResponse>), ApiError> {
    let known = crate::db::data_mapper::lock_mapper_columns(&state.db, &body.data_mappers).await?;
    for (i, name) in body.data_mappers.iter().enumerate() {
        if !known.iter().any(|(id, _)| id == name) {
            return Err(ApiError::field(
                format!("data_mappers[{i}]"),
                format!("no data mapper {name:?}"),
            ));
        }
    }
    let settings = crate::db::setting::get_settings(&state.db)
        .await?
        .settings();
    let new = NewJob {
        dry_run: body.dry_run,
        data_mappers: &body.data_mappers,
        settings: JobSettings::from(&settings),
        trigger: JobTrigger::Api,
        actor: auth.caller.actor(),
        deadline_before: None,
        cause: serde_json::Value::Null,
    };
    let job_id = create_job(&state.db, &state.receipts, &new)
        .await
        .map_err(|e| match e {
            CreateJobError::AlreadyRunning => ApiError::Conflict(
                "a job is already running; wait for it to end or cancel it".to_owned(),
            ),
            CreateJobError::Settling => ApiError::Conflict(
                "a cancelled job still has a task running; its items' receipts are issued when it ends, then a job may start"
                    .to_owned(),
            ),
            CreateJobError::NothingQueued => ApiError::field(
                "data_mappers",
                "no queued item applies to these data mappers (the queue is empty)",
            ),
            CreateJobError::Db(e) => e.into(),
        })?;
    let job = load(&state, job_id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(job.into())))
}

/// Listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListJobsQuery {
    /// 1 to 1000, default 100.
    pub page_size: Option<u32>,
    /// `next_start` of the previous page.
    pub start_at: Option<Uuid>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub jobs: Vec<JobResponse>,
    /// Pass as `start_at` for the next page; null on the last page.
    pub next_start: Option<Uuid>,
}

/// List jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", operation_id = "list_jobs",
    security(("bearer" = [])), params(ListJobsQuery),
    responses(
        (status = 200, description = "A page", body = JobPage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ))]
async fn list_jobs(
    State(state): State<AppState>,
    _auth: Auth<JobRead>,
    ApiQuery(query): ApiQuery<ListJobsQuery>,
) -> Result<axum::Json<JobPage>, ApiError> {
    let limit = page_size(query.page_size)?;
    let rows = db::list_jobs(&state.db, query.start_at, limit + 1).await?;
    let (rows, next) = split_page(rows, limit, |j| j.job_id);
    Ok(axum::Json(JobPage {
        jobs: rows.into_iter().map(Into::into).collect(),
        next_start: next,
    }))
}

/// Get a job: status, timestamps, settings snapshot and stats.
#[utoipa::path(get, path = "/v1/jobs/{job_id}", tag = "jobs", operation_id = "get_job",
    security(("bearer" = [])), params(("job_id" = String, Path)),
    responses(
        (status = 200, description = "The job", body = JobResponse),
        AuthProblems,
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_job(
    State(state): State<AppState>,
    _auth: Auth<JobRead>,
    Path(id): Path<String>,
) -> Result<axum::Json<JobResponse>, ApiError> {
    let job = load(&state, job_id(&id)?).await?;
    Ok(axum::Json(job.into()))
}

/// Cancel a running job: its pending tasks never run; a real job's items stay queued, each
/// with a `kept` receipt (issued once no task of the job is running).
#[utoipa::path(post, path = "/v1/jobs/{job_id}/cancel", tag = "jobs", operation_id = "cancel_job",
    security(("bearer" = [])), params(("job_id" = String, Path)),
    responses(
        (status = 200, description = "Cancelled", body = JobResponse),
        AuthProblems,
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job already ended", body = Problem, content_type = "application/problem+json"),
    ))]
async fn cancel_job(
    State(state): State<AppState>,
    auth: Auth<JobWrite>,
    Path(id): Path<String>,
) -> Result<axum::Json<JobResponse>, ApiError> {
    let id = job_id(&id)?;
    lifecycle::cancel(&state.db, &state.receipts, id, auth.caller.actor())
        .await
        .map_err(|e| match e {
            CancelError::NotFound => ApiError::NotFound(format!("no job {id}")),
            CancelError::Ended(status) => {
                ApiError::Conflict(format!("the job already ended ({status})"))
            }
            CancelError::Db(e) => e.into(),
        })?;
    // The cancel is done; its receipts follow at once when no task of the job is running
    // (else after the last one, or at the supervisor's next tick, which also retries).
    if let Err(e) = crate::jobs::advance::settle(&state.db, &state.receipts, id).await {
        tracing::warn!(job.id = %id, error = %e, "the cancelled job's receipts are left for the supervisor");
    }
    Ok(axum::Json(load(&state, id).await?.into()))
}
