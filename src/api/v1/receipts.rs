//! Erasure receipts: `GET /v1/receipts/keys` (the JWKS, without authentication),
//! `GET /v1/jobs/{job_id}/receipts`, `GET /v1/receipts?reference=…|match_hash=…` and
//! `POST /v1/receipts/lookup` (a match id, hashed here as the queue and reports hash it):
//! one compact JWS per line, in chain order, streamed page by page.
//!
//! Who reads which: a job's receipts, readers of jobs (operators, auditors); a subject's,
//! operators and auditors all of them, a requester only those of the items it created
//! (others' are left out, as if there were none: an empty list, never a 403 or 404 that
//! would tell them apart). A looked-up match id is never logged or stored.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;
use serde::Deserialize;
use serde_json::value::RawValue;
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::jobs::{job_id, load};
use super::queue::{MatchIdValue, report_key, sees_every_item};
use crate::api::auth::{Auth, Caller, JobRead, QueueRead};
use crate::api::error::{ApiError, AuthProblems, Problem};
use crate::api::extract::{ApiJson, ApiQuery};
use crate::app::AppState;
use crate::db::receipt::{self as db, Filter};
use crate::domain::match_id::{MatchType, match_hash};
use crate::domain::queue::parse_lookup;
use crate::domain::queue_exact::check_exact_number;
use crate::domain::validation::FieldError;
use crate::receipt::Jwks;

/// Receipts read per page of a stream.
const PAGE: i64 = 1000;

/// The media type of a list of receipts: one compact JWS per line.
const RECEIPTS_TYPE: &str = "text/plain; charset=utf-8";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(receipt_keys))
        .routes(routes!(job_receipts))
        .routes(routes!(find_receipts))
        .routes(routes!(lookup_receipts))
}

/// Whose receipts `caller` may read: every one (None), or those of the items it created.
fn readable_by(caller: &Caller) -> Option<String> {
    let principal = &caller.principal;
    (!sees_every_item(principal)).then(|| principal.subject.clone())
}

/// The public keys receipts are signed with, current and retired, as a JWKS (RFC 7517).
/// Needs no token: anyone holding a receipt may check it.
#[utoipa::path(get, path = "/v1/receipts/keys", tag = "receipts", operation_id = "receipt_keys",
    responses((status = 200, description = "The JWKS", body = Jwks)))]
async fn receipt_keys(State(state): State<AppState>) -> Result<axum::Json<Jwks>, ApiError> {
    let mut keys = db::keys(&state.db).await?;
    let current = state.receipts.signer.jwk();
    if !keys.iter().any(|k| k.kid == current.kid) {
        keys.push(current.clone());
    }
    Ok(axum::Json(Jwks { keys }))
}

/// A job's receipts, one per queue item it processed, issued when it ended: one compact
/// JWS per line, in chain order. They outlive the job's report.
#[utoipa::path(get, path = "/v1/jobs/{job_id}/receipts", tag = "receipts", operation_id = "job_receipts",
    security(("bearer" = [])), params(("job_id" = String, Path)),
    responses(
        (status = 200, description = "One compact JWS per line", body = String, content_type = "text/plain"),
        AuthProblems,
        (status = 404, description = "No such job, and no receipt of it", body = Problem, content_type = "application/problem+json"),
    ))]
async fn job_receipts(
    State(state): State<AppState>,
    _auth: Auth<JobRead>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let filter = Filter::Job(id);
    if db::page(&state.db, &filter, 0, 1).await?.is_empty() {
        load(&state, id).await?;
    }
    Ok(lines(state.db.clone(), filter, None))
}

/// Which receipts: exactly one of the two.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReceiptQuery {
    /// The queue item's reference (ticket id).
    pub reference: Option<String>,
    /// The keyed hash of the match id (64 lowercase hex digits), as reports name it.
    pub match_hash: Option<String>,
}

/// The receipts of a reference or a match hash, every job's, in chain order: one
/// compact JWS per line (none: an empty body). Operators and auditors read every
/// receipt; a requester those of the items it created (of others: an empty body).
#[utoipa::path(get, path = "/v1/receipts", tag = "receipts", operation_id = "find_receipts",
    security(("bearer" = [])), params(ReceiptQuery),
    responses(
        (status = 200, description = "One compact JWS per line", body = String, content_type = "text/plain"),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 422, description = "Not exactly one of reference and match_hash, or a malformed hash", body = Problem, content_type = "application/problem+json"),
    ))]
async fn find_receipts(
    State(state): State<AppState>,
    auth: Auth<QueueRead>,
    ApiQuery(query): ApiQuery<ReceiptQuery>,
) -> Result<Response, ApiError> {
    let invalid = |field: &str, message: &str| {
        ApiError::Validation(vec![FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
            about_mappers: false,
        }])
    };
    let filter = match (query.reference, query.match_hash) {
        (Some(r), None) if !r.is_empty() && r.chars().count() <= 256 => Filter::Reference(r),
        (Some(_), None) => return Err(invalid("reference", "1 to 256 characters")),
        (None, Some(h))
            if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Filter::MatchHash(h)
        }
        (None, Some(_)) => return Err(invalid("match_hash", "64 lowercase hex digits")),
        _ => {
            return Err(invalid(
                "reference",
                "give exactly one of reference and match_hash",
            ));
        }
    };
    Ok(lines(state.db.clone(), filter, readable_by(&auth.caller)))
}

/// A subject to look up by its match id.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// The match id as it was queued: a string, a number, or a list of `{column, value}`
    /// (a composite, in the order queued). Kept as the JSON text sent until it is checked.
    #[schema(value_type = MatchIdValue)]
    pub match_id: Box<RawValue>,
    /// `simple` or `composite`; when given, it must be the match id's.
    pub match_type: Option<MatchType>,
}

/// The receipts of the subject a match id names, every job's, in chain order: one compact
/// JWS per line (none: an empty body). The server computes the id's keyed hash as the
/// queue and reports do; the id is neither logged nor kept. Operators and auditors read
/// every receipt; a requester those of the items it created (of others: an empty body).
#[utoipa::path(post, path = "/v1/receipts/lookup", tag = "receipts", operation_id = "lookup_receipts",
    security(("bearer" = [])), request_body = LookupRequest,
    responses(
        (status = 200, description = "One compact JWS per line", body = String, content_type = "text/plain"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a match id the queue takes (a missing or unknown field, an empty string, an inexact number, a malformed composite), or a match_type that is not the id's", body = Problem, content_type = "application/problem+json"),
    ))]
async fn lookup_receipts(
    State(state): State<AppState>,
    auth: Auth<QueueRead>,
    ApiJson(body): ApiJson<LookupRequest>,
) -> Result<Response, ApiError> {
    // Numbers are checked on their text, before any is read (and rounded), as the queue does.
    check_exact_number(&body.match_id, "match_id").map_err(ApiError::Validation)?;
    let match_id = parse_lookup(&body.match_id, body.match_type).map_err(ApiError::Validation)?;
    let mut conn = state.db.acquire().await?;
    let stored = crate::db::deletion_queue_item::as_stored(&mut *conn, &match_id).await?;
    let hash = match_hash(&report_key(&mut conn).await?, &stored);
    drop(conn);
    Ok(lines(
        state.db.clone(),
        Filter::MatchHash(hash),
        readable_by(&auth.caller),
    ))
}

/// The receipts `filter` selects (of the items `created_by` created, when given), one per
/// line, read a page at a time.
fn lines(db: PgPool, filter: Filter, created_by: Option<String>) -> Response {
    jws_lines(PAGE, "receipts", move |after| {
        let (db, filter, created_by) = (db.clone(), filter.clone(), created_by.clone());
        async move { db::page_of(&db, &filter, created_by.as_deref(), after, PAGE).await }
    })
}

/// A `text/plain` body of one compact JWS per line, read `page` rows at a time:
/// `fetch(after)` returns the rows `(position, jws)` after `after`, in order. A database
/// error mid-stream ends the body with an error (the client sees a reset, not a short
/// list). Receipts and the audit chain's checkpoints are served so.
pub(super) fn jws_lines<F, Fut>(page: i64, what: &'static str, fetch: F) -> Response
where
    F: Fn(i64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = sqlx::Result<Vec<(i64, String)>>> + Send + 'static,
{
    let body = stream::unfold(
        (fetch, 0_i64, false),
        move |(fetch, after, done)| async move {
            if done {
                return None;
            }
            match fetch(after).await {
                Ok(rows) => {
                    let done = rows.len() < page as usize;
                    let (last, _) = rows.last()?;
                    let after = *last;
                    let text: String = rows.iter().map(|(_, jws)| format!("{jws}\n")).collect();
                    Some((Ok(Bytes::from(text)), (fetch, after, done)))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading {what} failed mid-stream");
                    Some((Err(e), (fetch, after, true)))
                }
            }
        },
    );
    (
        [(header::CONTENT_TYPE, RECEIPTS_TYPE)],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}
