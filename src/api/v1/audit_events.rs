//! `/v1/audit_events`: who changed what, newest first (auditors and admins); the hash
//! chain's head and its signed checkpoints (`/head`, `/checkpoints`: operators too, as
//! they show hashes and counts, never content).

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::auth::{AuditChainRead, AuditRead, Auth};
use crate::api::error::{ApiError, AuthProblems, Problem};
use crate::api::extract::ApiQuery;
use crate::api::{page_size, split_page, time_param};
use crate::app::AppState;
use crate::db::audit_checkpoint as db_checkpoint;
use crate::db::audit_event::{self as db, AuditEvent, AuditFilter};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit_events))
        .routes(routes!(audit_head))
        .routes(routes!(audit_checkpoints))
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

/// The head of the audit chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditHeadResponse {
    /// The last row's place in the chain (0: no audit row yet).
    pub seq: i64,
    /// The last row's hash, lowercase hex (64 zeros: no audit row yet).
    pub hash: String,
    /// The last row's id (null: no audit row yet).
    pub audit_event_id: Option<i64>,
    /// Audit rows (equal to `seq` while the chain is intact).
    pub rows: i64,
}

/// The head of the audit hash chain: compare it with a checkpoint, or note it to check the
/// chain against later (`lethe audit verify`).
#[utoipa::path(get, path = "/v1/audit_events/head", tag = "audit", operation_id = "audit_head",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The head", body = AuditHeadResponse),
        AuthProblems,
    ))]
async fn audit_head(
    State(state): State<AppState>,
    _auth: Auth<AuditChainRead>,
) -> Result<axum::Json<AuditHeadResponse>, ApiError> {
    let head = db::head(&state.db).await?;
    Ok(axum::Json(AuditHeadResponse {
        seq: head.seq,
        hash: crate::audit::chain::hex(&head.hash),
        audit_event_id: head.audit_event_id,
        rows: head.rows,
    }))
}

/// Which checkpoints.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckpointQuery {
    /// Only checkpoints written at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
}

/// Checkpoints read per page of the stream.
const CHECKPOINT_PAGE: i64 = 1000;

/// The audit chain's signed checkpoints, oldest first: one compact JWS per line (verify
/// them with `GET /v1/receipts/keys` and `lethe audit verify --checkpoint`).
#[utoipa::path(get, path = "/v1/audit_events/checkpoints", tag = "audit", operation_id = "audit_checkpoints",
    security(("bearer" = [])), params(CheckpointQuery),
    responses(
        (status = 200, description = "One compact JWS per line", body = String, content_type = "text/plain"),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ))]
async fn audit_checkpoints(
    State(state): State<AppState>,
    _auth: Auth<AuditChainRead>,
    ApiQuery(query): ApiQuery<CheckpointQuery>,
) -> Result<Response, ApiError> {
    let since = time_param("since", query.since)?;
    Ok(checkpoint_lines(state.db.clone(), since))
}

/// The checkpoints, one per line, read a page at a time.
fn checkpoint_lines(db: PgPool, since: Option<DateTime<Utc>>) -> Response {
    super::receipts::jws_lines(CHECKPOINT_PAGE, "audit checkpoints", move |after| {
        let db = db.clone();
        async move { db_checkpoint::page(&db, since, after, CHECKPOINT_PAGE).await }
    })
}
