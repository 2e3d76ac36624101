//! `/v1/jobs/{job_id}/events`: a job's event log, as pages or live as Server-Sent Events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::{self, Stream};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::jobs::{job_id, load};
use crate::api::auth::{Auth, JobRead};
use crate::api::error::{ApiError, AuthProblems, Problem};
use crate::api::extract::ApiQuery;
use crate::api::{IdPageQuery, page_size, split_page};
use crate::app::AppState;
use crate::db::job_event::{self as events, JobEvent};
use crate::domain::job::EventLevel;
use crate::jobs::lifecycle;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_job_events))
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
/// job ends, or for at most `LETHE_EVENT_STREAM_MAX_SECS` (then resume with
/// `Last-Event-ID`); beyond `LETHE_MAX_EVENT_STREAMS` open streams, 503 with `Retry-After`.
#[utoipa::path(get, path = "/v1/jobs/{job_id}/events", tag = "jobs", operation_id = "list_job_events",
    security(("bearer" = [])), params(("job_id" = String, Path), IdPageQuery),
    responses(
        (status = 200, description = "A page of events (or an event stream)", content(
            (JobEventPage = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many event streams open; retry", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_job_events(
    State(state): State<AppState>,
    _auth: Auth<JobRead>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<IdPageQuery>,
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
        // A bounded number of streams, each open for a bounded time: the client resumes
        // where it stopped with `Last-Event-ID`, as EventSource does by itself.
        let Some(permit) = state.limits.event_stream() else {
            return Ok(crate::api::limits::streams_busy(&state.limits));
        };
        let until = tokio::time::sleep(state.limits.event_stream_max());
        let stream = event_stream(state, id, resume.or(after))
            .take_until(until)
            .map(move |event| {
                let _held = &permit;
                event
            });
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
