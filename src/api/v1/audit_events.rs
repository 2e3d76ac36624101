//! `/v1/audit_events`: who changed what, newest first (auditors and admins).

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::auth::{AuditRead, Auth};
use crate::api::error::{ApiError, AuthProblems, Problem};
use crate::api::extract::ApiQuery;
use crate::api::{page_size, split_page, time_param};
use crate::app::AppState;
use crate::db::audit_event::{self as db, AuditEvent, AuditFilter};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_events))
}

/// Listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAuditQuery {
    /// 1 to 1000, default 100.
    pub page_size: Option<u32>,
    /// `next_start` of the previous page.
    pub start_at: Option<i64>,
    /// Only events by this token subject.
    pub actor: Option<String>,
    /// Only this action, e.g. `queue.add`.
    pub action: Option<String>,
    /// Only events at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
}

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventResponse {
    pub audit_event_id: i64,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    /// The id the server gave the request (its `x-request-id` response header).
    pub request_id: Option<String>,
    /// The `x-request-id` the client sent, if any (recorded, never trusted as the id).
    pub client_request_id: Option<String>,
    /// Ids, counts and before/after values; never match ids.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl From<AuditEvent> for AuditEventResponse {
    fn from(e: AuditEvent) -> Self {
        Self {
            audit_event_id: e.audit_event_id,
            actor: e.actor,
            action: e.action,
            target_type: e.target_type,
            target_id: e.target_id,
            request_id: e.request_id,
            client_request_id: e.client_request_id,
            details: e.details,
            created_at: e.created_at,
        }
    }
}

/// A page of audit events.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventPage {
    pub audit_events: Vec<AuditEventResponse>,
    /// Pass as `start_at` for the next page; null on the last page.
    pub next_start: Option<i64>,
}

/// List audit events, newest first.
#[utoipa::path(get, path = "/v1/audit_events", tag = "audit", operation_id = "list_audit_events",
    security(("bearer" = [])), params(ListAuditQuery),
    responses(
        (status = 200, description = "A page", body = AuditEventPage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ))]
async fn list_audit_events(
    State(state): State<AppState>,
    _auth: Auth<AuditRead>,
    ApiQuery(query): ApiQuery<ListAuditQuery>,
) -> Result<axum::Json<AuditEventPage>, ApiError> {
    let limit = page_size(query.page_size)?;
    let filter = AuditFilter {
        actor: query.actor,
        action: query.action,
        since: time_param("since", query.since)?,
        start_at: query.start_at,
    };
    let rows = db::list_audit_events(&state.db, &filter, limit + 1).await?;
    let (rows, next) = split_page(rows, limit, |e| e.audit_event_id);
    Ok(axum::Json(AuditEventPage {
        audit_events: rows.into_iter().map(Into::into).collect(),
        next_start: next,
    }))
}
