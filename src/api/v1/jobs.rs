//! `/v1/jobs`: start a job over a snapshot of the deletion queue, follow it (stats,
//! events — also as Server-Sent Events — and the objects find recorded), cancel it.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::api::auth::{Auth, JobRead, JobWrite};
use crate::api::error::{ApiError, Problem};
use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::{page_size, split_page};
use crate::app::AppState;
use crate::db::job::{self as db, CreateJobError, JobRecord, JobStats, NewJob};
use crate::db::job_event::{self as events, JobEvent};
use crate::db::job_match::ReportMatch;
use crate::db::job_object::{self as objects, JobObject};
use crate::domain::job::{EventLevel, JobStatus, JobTrigger, ObjectStatus};
use crate::domain::settings::JobSettings;
use crate::jobs::advance::create_job;
use crate::jobs::lifecycle::{self, CancelError};
use crate::jobs::report::{self, ReportObject};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_job, list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(list_job_events))
        .routes(routes!(list_job_objects))
        .routes(routes!(cancel_job))
        .routes(routes!(get_job_report))
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

fn job_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("no job {raw:?}")))
}

async fn load(state: &AppState, id: Uuid) -> Result<JobRecord, ApiError> {
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
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed", body = Problem, content_type = "application/problem+json"),
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
        created_by: &auth.caller.principal.subject,
    };
    let job_id = create_job(&state.db, &new).await.map_err(|e| match e {
        CreateJobError::AlreadyRunning => ApiError::Conflict(
            "a job is already running; wait for it to end or cancel it".to_owned(),
        ),
        CreateJobError::NothingQueued => ApiError::field(
            "data_mappers",
            "no queued item applies to these data mappers (the queue is empty)",
        ),
        CreateJobError::Db(e) => e.into(),
    })?;
    auth.caller
        .audit(
            &state.db,
            "job.start",
            "job",
            Some(&job_id.to_string()),
            json!({"dry_run": body.dry_run}),
        )
        .await?;
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
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed", body = Problem, content_type = "application/problem+json"),
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
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed", body = Problem, content_type = "application/problem+json"),
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

/// Cancel a running job: its pending tasks never run.
#[utoipa::path(post, path = "/v1/jobs/{job_id}/cancel", tag = "jobs", operation_id = "cancel_job",
    security(("bearer" = [])), params(("job_id" = String, Path)),
    responses(
        (status = 200, description = "Cancelled", body = JobResponse),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job already ended", body = Problem, content_type = "application/problem+json"),
    ))]
async fn cancel_job(
    State(state): State<AppState>,
    auth: Auth<JobWrite>,
    Path(id): Path<String>,
) -> Result<axum::Json<JobResponse>, ApiError> {
    let id = job_id(&id)?;
    lifecycle::cancel(&state.db, id, &auth.caller.principal.subject)
        .await
        .map_err(|e| match e {
            CancelError::NotFound => ApiError::NotFound(format!("no job {id}")),
            CancelError::Ended(status) => {
                ApiError::Conflict(format!("the job already ended ({status})"))
            }
            CancelError::Db(e) => e.into(),
        })?;
    auth.caller
        .audit(
            &state.db,
            "job.cancel",
            "job",
            Some(&id.to_string()),
            json!({}),
        )
        .await?;
    Ok(axum::Json(load(&state, id).await?.into()))
}

/// Event listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListEventsQuery {
    /// 1 to 1000, default 100.
    pub page_size: Option<u32>,
    /// `next_start` of the previous page.
    pub start_at: Option<i64>,
}

/// One event of a job's log.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobEventResponse {
    pub job_event_id: i64,
    pub level: EventLevel,
    /// Stable kind, e.g. `mapper_listed`, `object_skipped`, `object_failed`, `job_finished`.
    pub kind: String,
    pub message: String,
    /// Keys, counts and other facts; never match ids or row data.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl From<JobEvent> for JobEventResponse {
    fn from(e: JobEvent) -> Self {
        Self {
            job_event_id: e.job_event_id,
            level: e.level,
            kind: e.kind,
            message: e.message,
            details: e.details,
            created_at: e.created_at,
        }
    }
}

/// A page of a job's events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobEventPage {
    pub events: Vec<JobEventResponse>,
    /// Pass as `start_at` for the next page; null when there are no more events yet.
    pub next_start: Option<i64>,
}

/// A job's events, oldest first. With `Accept: text/event-stream` they stream live
/// (Server-Sent Events, `id` = `job_event_id`, resumable with `Last-Event-ID`) until the
/// job ends.
#[utoipa::path(get, path = "/v1/jobs/{job_id}/events", tag = "jobs", operation_id = "list_job_events",
    security(("bearer" = [])), params(("job_id" = String, Path), ListEventsQuery),
    responses(
        (status = 200, description = "A page of events (or an event stream)", content(
            (JobEventPage = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_job_events(
    State(state): State<AppState>,
    _auth: Auth<JobRead>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ListEventsQuery>,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let limit = page_size(query.page_size)?;
    load(&state, id).await?;
    let after = query.start_at.map(|s| s.saturating_sub(1));
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if wants_stream {
        let resume = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        let stream = event_stream(state, id, resume.or(after));
        return Ok(Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    let rows = events::list(&state.db, id, after, limit + 1).await?;
    let (rows, next) = split_page(rows, limit, |e| e.job_event_id);
    Ok(axum::Json(JobEventPage {
        events: rows.into_iter().map(Into::into).collect(),
        next_start: next,
    })
    .into_response())
}

/// How often a live stream looks for new events.
const STREAM_POLL: Duration = Duration::from_millis(500);

/// Events after `after`, then new ones as they are written, until the job has ended and
/// every event was sent.
fn event_stream(
    state: AppState,
    job_id: Uuid,
    after: Option<i64>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let start = (after, false, std::collections::VecDeque::<Event>::new());
    stream::unfold(start, move |(mut after, mut ended, mut pending)| {
        let state = state.clone();
        async move {
            loop {
                if let Some(event) = pending.pop_front() {
                    return Some((Ok(event), (after, ended, pending)));
                }
                if ended {
                    return None;
                }
                // Read the status first: events written before the job ended are then
                // all visible to the read that follows.
                let active = lifecycle::is_active(&state.db, job_id)
                    .await
                    .unwrap_or(false);
                let rows = events::list(&state.db, job_id, after, 1000)
                    .await
                    .unwrap_or_default();
                if let Some(last) = rows.last() {
                    after = Some(last.job_event_id);
                }
                let full_page = rows.len() == 1000;
                pending.extend(rows.into_iter().map(sse_event));
                ended = !active && !full_page;
                if pending.is_empty() && !ended {
                    tokio::time::sleep(STREAM_POLL).await;
                }
            }
        }
    })
}

fn sse_event(e: JobEvent) -> Event {
    let id = e.job_event_id;
    let kind = e.kind.clone();
    let body = serde_json::to_string(&JobEventResponse::from(e)).unwrap_or_default();
    Event::default().id(id.to_string()).event(kind).data(body)
}

/// Object listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListObjectsQuery {
    /// 1 to 1000, default 100.
    pub page_size: Option<u32>,
    /// `next_start` of the previous page.
    pub start_at: Option<i64>,
}

/// An object find recorded: one holding matches, or one that could not be searched.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobObjectResponse {
    pub job_object_id: i64,
    pub data_mapper_id: String,
    pub bucket: String,
    pub key: String,
    /// The exact version find read (null when the store has no versions).
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub size_bytes: i64,
    pub status: ObjectStatus,
    pub rows_total: Option<i64>,
    pub rows_matched: i64,
    /// Row groups holding matches (Parquet; empty for JSON Lines).
    pub row_groups: Vec<i32>,
    pub error: Option<String>,
}

impl From<JobObject> for JobObjectResponse {
    fn from(o: JobObject) -> Self {
        Self {
            job_object_id: o.job_object_id,
            data_mapper_id: o.data_mapper_id,
            bucket: o.bucket,
            key: o.key,
            version_id: o.version_id,
            etag: o.etag,
            size_bytes: o.size_bytes,
            status: o.status,
            rows_total: o.rows_total,
            rows_matched: o.rows_matched,
            row_groups: o.row_groups,
            error: o.error,
        }
    }
}

/// A page of a job's recorded objects.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobObjectPage {
    pub objects: Vec<JobObjectResponse>,
    /// Pass as `start_at` for the next page; null on the last page.
    pub next_start: Option<i64>,
}

/// The objects find recorded: each object holding matches (bucket, key, version, etag,
/// matching row groups, rows matched) and each object that failed. A dry run's report.
#[utoipa::path(get, path = "/v1/jobs/{job_id}/objects", tag = "jobs", operation_id = "list_job_objects",
    security(("bearer" = [])), params(("job_id" = String, Path), ListObjectsQuery),
    responses(
        (status = 200, description = "A page", body = JobObjectPage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_job_objects(
    State(state): State<AppState>,
    _auth: Auth<JobRead>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ListObjectsQuery>,
) -> Result<axum::Json<JobObjectPage>, ApiError> {
    let id = job_id(&id)?;
    let limit = page_size(query.page_size)?;
    load(&state, id).await?;
    let rows = objects::list(&state.db, id, query.start_at, limit + 1).await?;
    let (rows, next) = split_page(rows, limit, |o| o.job_object_id);
    Ok(axum::Json(JobObjectPage {
        objects: rows.into_iter().map(Into::into).collect(),
        next_start: next,
    }))
}

/// A job's report: the job, every object it read or wrote, every match it processed.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobReport {
    pub job: JobResponse,
    pub objects: Vec<ReportObject>,
    pub matches: Vec<ReportMatch>,
}

/// The job's report, streamed page by page from the database (any size in bounded memory).
#[utoipa::path(get, path = "/v1/jobs/{job_id}/report", tag = "jobs", operation_id = "get_job_report",
    security(("bearer" = [])), params(("job_id" = String, Path)),
    responses(
        (status = 200, description = "The report", body = JobReport),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_job_report(
    State(state): State<AppState>,
    _auth: Auth<JobRead>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let job = JobResponse::from(load(&state, id).await?);
    let job = serde_json::to_string(&job).map_err(|e| ApiError::Internal(e.into()))?;
    let body = report::stream(state.db.clone(), id, job);
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}
