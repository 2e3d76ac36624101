//! `/v1/jobs/{job_id}/objects` and `/v1/jobs/{job_id}/report`: what a job found and did.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::jobs::{JobResponse, job_id, load};
use crate::api::auth::{Auth, JobRead};
use crate::api::error::{ApiError, AuthProblems, Problem};
use crate::api::extract::ApiQuery;
use crate::api::{IdPageQuery, page_size, split_page};
use crate::app::AppState;
use crate::db::job_match::ReportMatch;
use crate::db::job_object::{self as objects, JobObject};
use crate::domain::job::ObjectStatus;
use crate::jobs::report::{self, ReportObject, ReportTable};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_job_objects))
        .routes(routes!(get_job_report))
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
    /// Not its key's current version when find listed it (a newer version or a delete
    /// marker on top): never rewritten, deleted by cleanup or kept.
    pub noncurrent: bool,
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
            noncurrent: o.noncurrent,
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
    security(("bearer" = [])), params(("job_id" = String, Path), IdPageQuery),
    responses(
        (status = 200, description = "A page", body = JobObjectPage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_job_objects(
    State(state): State<AppState>,
    _auth: Auth<JobRead>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<IdPageQuery>,
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
    /// What the job did to each table format's table (the Iceberg snapshot it committed,
    /// the snapshots its purge expired and the files it deleted).
    pub tables: Vec<ReportTable>,
    pub objects: Vec<ReportObject>,
    pub matches: Vec<ReportMatch>,
}

/// The job's report, streamed page by page from the database (any size in bounded memory).
/// At most `LETHE_MAX_REPORT_STREAMS` reports stream at once (all callers together);
/// beyond, 503 with `Retry-After`.
#[utoipa::path(get, path = "/v1/jobs/{job_id}/report", tag = "jobs", operation_id = "get_job_report",
    security(("bearer" = [])), params(("job_id" = String, Path)),
    responses(
        (status = 200, description = "The report", body = JobReport),
        AuthProblems,
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many reports streaming; retry", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_job_report(
    State(state): State<AppState>,
    _auth: Auth<JobRead>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let job = JobResponse::from(load(&state, id).await?);
    let job = serde_json::to_string(&job).map_err(|e| ApiError::Internal(e.into()))?;
    // Held by the body until it is sent or the client goes away.
    let Some(permit) = state.limits.report_stream() else {
        return Ok(crate::api::limits::reports_busy(&state.limits));
    };
    let body = report::stream(state.db.clone(), id, job).map(move |chunk| {
        let _held = &permit;
        chunk
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}
