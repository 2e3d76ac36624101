//! `/v1/queue`: add subjects to erase (up to 10,000 per call, all or none), list them
//! with keyset pagination, remove them. Match ids never reach logs or audit events: the
//! audit trail names each item added or removed by its id and keyed hash (the reports'
//! HMAC), with its reference, creator and deadline.

use std::collections::{BTreeSet, HashMap};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::api::auth::{Auth, QueueAdd, QueueDelete, QueueRead};
use crate::api::error::{ApiError, AuthProblems, Problem};
use crate::api::extract::{ApiJson, ApiQuery, at_most};
use crate::api::{page_size, split_page, time_param};
use crate::app::AppState;
use crate::auth::Role;
use crate::db::data_mapper::lock_mapper_columns;
use crate::db::deletion_queue_item::{self as db, QueueFilter, QueueItem};
use crate::domain::queue::{
    MAX_ITEMS_PER_CALL, MAX_MAPPERS_PER_ITEM, MatchType, NewQueueItem, QueueItemDraft, check_casts,
    check_privileged, parse_items,
};
use crate::domain::queue_exact::check_exact_numbers;
use crate::domain::validation::FieldError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_matches, delete_matches))
        .routes(routes!(list_queue))
        .routes(routes!(queue_summary))
}

/// Operators, admins and auditors see every item; a requester only the items it created.
pub(super) fn sees_every_item(principal: &crate::auth::Principal) -> bool {
    principal
        .roles
        .iter()
        .any(|r| matches!(r, Role::Operator | Role::Admin | Role::Auditor))
}

/// The queue at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueSummary {
    /// Items queued (for a requester: the items it created).
    pub items: i64,
    /// When the oldest of them was queued; null when there are none.
    pub oldest_created_at: Option<DateTime<Utc>>,
    /// Items past their deadline.
    pub overdue: i64,
    /// Items whose deadline is within a day.
    pub due_within_day: i64,
}

/// How many items are queued, since when, and how many are (nearly) overdue.
#[utoipa::path(get, path = "/v1/queue/summary", tag = "queue", operation_id = "get_queue_summary",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The summary", body = QueueSummary),
        AuthProblems,
    ))]
async fn queue_summary(
    State(state): State<AppState>,
    auth: Auth<QueueRead>,
) -> Result<axum::Json<QueueSummary>, ApiError> {
    let principal = &auth.caller.principal;
    let creator = (!sees_every_item(principal)).then_some(principal.subject.as_str());
    let (items, oldest_created_at, overdue, due_within_day) =
        db::summary(&state.db, creator).await?;
    Ok(axum::Json(QueueSummary {
        items,
        oldest_created_at,
        overdue,
        due_within_day,
    }))
}

/// One column of a composite match.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CompositeMatchPart {
    pub column: String,
    pub value: ScalarValue,
}

/// A string or a number.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ScalarValue {
    String(String),
    Number(f64),
}

/// A subject identifier: a string or number matched against any of the mappers' columns,
/// or a list of `{column, value}` that must all match (composite; exactly one mapper).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MatchIdValue {
    Simple(ScalarValue),
    Composite(Vec<CompositeMatchPart>),
}

/// One item to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMatch {
    /// Kept as the JSON text sent (numbers with every digit) until it is checked.
    #[schema(value_type = MatchIdValue)]
    pub match_id: Box<RawValue>,
    /// Data mappers to search (at most 32); empty or absent = all.
    #[serde(default, deserialize_with = "at_most_mappers")]
    #[schema(max_items = 32)]
    pub data_mappers: Vec<String>,
    /// RFC 3339; default: received + 30 days.
    pub deadline: Option<DateTime<Utc>>,
    /// The caller's reference, e.g. a ticket id (at most 256 characters).
    pub reference: Option<String>,
}

/// Items to add, all or none.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMatchesRequest {
    /// 1 to 10,000 items.
    #[serde(deserialize_with = "at_most_items")]
    pub matches: Vec<NewMatch>,
}

/// The request's items, refused while reading beyond [`MAX_ITEMS_PER_CALL`].
fn at_most_items<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<NewMatch>, D::Error> {
    let message = format!("at most {MAX_ITEMS_PER_CALL} items per call");
    at_most(d, MAX_ITEMS_PER_CALL, &message)
}

/// An item's mappers, refused while reading beyond [`MAX_MAPPERS_PER_ITEM`].
fn at_most_mappers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let message = format!("at most {MAX_MAPPERS_PER_ITEM} data mappers per item (none = all)");
    at_most(d, MAX_MAPPERS_PER_ITEM, &message)
}

/// A queued item.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueItemResponse {
    pub deletion_queue_item_id: Uuid,
    /// The match id; in listings, null for roles that may not see match ids (auditors,
    /// and requesters for items they did not create): they see `match_hash`.
    #[schema(value_type = Option<MatchIdValue>)]
    pub match_id: Value,
    /// HMAC-SHA256 of the match id (the key job reports use), in listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_hash: Option<String>,
    #[serde(rename = "type")]
    pub match_type: MatchType,
    pub data_mappers: Vec<String>,
    pub deadline: DateTime<Utc>,
    pub reference: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl From<QueueItem> for QueueItemResponse {
    fn from(item: QueueItem) -> Self {
        Self {
            deletion_queue_item_id: item.deletion_queue_item_id,
            match_id: item.match_id.to_json(),
            match_hash: None,
            match_type: item.match_id.match_type(),
            data_mappers: item.data_mappers,
            deadline: item.deadline,
            reference: item.reference,
            created_by: item.created_by,
            created_at: item.created_at,
        }
    }
}

/// The items created.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddMatchesResponse {
    pub matches: Vec<QueueItemResponse>,
}

/// The request header that makes a queue addition safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header of a retry answered from the first request's record.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The `Idempotency-Key` sent, if any: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = || {
        ApiError::BadRequest(
            "Idempotency-Key must be sent once, as 1 to 255 visible ASCII characters".to_owned(),
        )
    };
    if values.next().is_some() {
        return Err(bad());
    }
    let key = value.to_str().map_err(|_| bad())?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(key.to_owned()))
}

/// SHA-256 of what an addition asks, field by field, each length-prefixed (a match id as
/// the JSON text sent): a retry must ask exactly the same to be answered as one.
fn request_fingerprint(body: &AddMatchesRequest) -> Vec<u8> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    for m in &body.matches {
        field(m.match_id.get().as_bytes());
        field(&(m.data_mappers.len() as u64).to_le_bytes());
        for mapper in &m.data_mappers {
            field(mapper.as_bytes());
        }
        field(
            m.deadline
                .map(|d| d.to_rfc3339())
                .unwrap_or_default()
                .as_bytes(),
        );
        match &m.reference {
            Some(r) => field(format!("+{r}").as_bytes()),
            None => field(b"-"),
        }
    }
    h.finalize().to_vec()
}

/// Add items to the deletion queue, atomically. With an `Idempotency-Key`, a retry of the
/// same request (same key, same body, same caller, within 24 hours) creates nothing more:
/// it is answered 200 with the items the first one created that are still queued.
#[utoipa::path(patch, path = "/v1/queue/matches", tag = "queue", operation_id = "add_matches",
    security(("bearer" = [])), request_body = AddMatchesRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Makes the call safe to retry (after a timeout or a lost connection): 1 to 255 visible ASCII characters, unique per request of this caller, remembered at least 24 hours")),
    responses(
        (status = 200, description = "A retry of a request already done under this Idempotency-Key: nothing was added; the items it created that are still queued (header `Idempotent-Replayed: true`)", body = AddMatchesResponse),
        (status = 201, description = "Queued", body = AddMatchesResponse),
        (status = 400, description = "Malformed JSON, or a malformed Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid items; nothing was queued. A caller who may not read data mappers gets a generic message where the precise one would describe them (names, columns, types). Also: an Idempotency-Key already used for a different request", body = Problem, content_type = "application/problem+json"),
    ))]
async fn add_matches(
    State(state): State<AppState>,
    auth: Auth<QueueAdd>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AddMatchesRequest>,
) -> Result<(StatusCode, HeaderMap, axum::Json<AddMatchesResponse>), ApiError> {
    let key = idempotency_key(&headers)?;
    // Numbers are checked on their text, before any is read (and rounded).
    check_exact_numbers(body.matches.iter().map(|m| &*m.match_id)).map_err(ApiError::Validation)?;
    let principal = auth.caller.principal.subject.clone();
    let mut tx = state.db.begin().await?;
    if let Some(key) = &key {
        let fingerprint = request_fingerprint(&body);
        if let Some(rows) = earlier_addition(&mut tx, &principal, key, &fingerprint).await? {
            tx.rollback().await?;
            tracing::info!(count = rows.len(), "answered a retried queue addition");
            let mut replayed = HeaderMap::new();
            replayed.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            return Ok((StatusCode::OK, replayed, added(rows)));
        }
    }
    let items = checked_items(&mut tx, &state, &auth.caller.principal.roles, body).await?;
    let rows = db::insert_queue_items(&mut *tx, &items, &principal).await?;
    if let Some(key) = &key {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.deletion_queue_item_id).collect();
        db::record_add_key(&mut *tx, &principal, key, &ids).await?;
    }
    let report_key = report_key(&mut tx).await?;
    auth.caller
        .audit(
            &mut *tx,
            "queue.add",
            "deletion_queue",
            None,
            json!({"count": rows.len(), "items": audited_items(&report_key, &rows)}),
        )
        .await?;
    tx.commit().await?;
    tracing::info!(count = rows.len(), "queued matches");
    Ok((StatusCode::CREATED, HeaderMap::new(), added(rows)))
}

/// The response body naming `rows`.
fn added(rows: Vec<QueueItem>) -> axum::Json<AddMatchesResponse> {
    axum::Json(AddMatchesResponse {
        matches: rows.into_iter().map(Into::into).collect(),
    })
}

/// Claims the `Idempotency-Key` for this transaction; when a request under it was done
/// before, the items it created that are still queued (locked), or a 422 when that
/// request asked something else.
async fn earlier_addition(
    tx: &mut sqlx::PgConnection,
    principal: &str,
    key: &str,
    fingerprint: &[u8],
) -> Result<Option<Vec<QueueItem>>, ApiError> {
    match db::claim_add_key(tx, principal, key, fingerprint).await? {
        db::AddKey::Fresh => Ok(None),
        db::AddKey::Done {
            request_sha256,
            item_ids,
        } => {
            if request_sha256 != fingerprint {
                return Err(ApiError::field(
                    "Idempotency-Key",
                    "already used for a different request; send a new key",
                ));
            }
            Ok(Some(db::lock_queue_items(&mut *tx, &item_ids).await?))
        }
    }
}

/// The request's items, parsed and checked against the mappers they name (which stay
/// locked, so none is deleted before the items commit), their columns' types and
/// partition keys, and the deadlines the caller's `roles` may set.
async fn checked_items(
    tx: &mut sqlx::PgConnection,
    state: &AppState,
    roles: &[Role],
    body: AddMatchesRequest,
) -> Result<Vec<NewQueueItem>, ApiError> {
    let named: Vec<String> = body
        .matches
        .iter()
        .flat_map(|m| m.data_mappers.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let columns: HashMap<String, Vec<String>> = lock_mapper_columns(&mut *tx, &named)
        .await?
        .into_iter()
        .collect();
    let drafts = body
        .matches
        .into_iter()
        .map(|m| QueueItemDraft {
            match_id: m.match_id,
            data_mappers: m.data_mappers,
            deadline: m.deadline,
            reference: m.reference,
        })
        .collect();
    // A caller who may not read the mappers is not told about them in the errors.
    let reads_mappers = roles
        .iter()
        .any(|r| crate::auth::allows(*r, crate::auth::Action::DataMapperRead));
    let invalid = |errors| validation_for(reads_mappers, errors);
    let items = parse_items(drafts, &columns, Utc::now()).map_err(invalid)?;
    let types = crate::db::data_mapper::column_types_by_mapper(&mut *tx).await?;
    check_casts(&items, &types).map_err(invalid)?;
    let keys = crate::db::data_mapper::partition_keys_of(&mut *tx, &named).await?;
    let privileged = roles
        .iter()
        .any(|r| matches!(r, Role::Operator | Role::Admin));
    let jobs = &state.config.jobs;
    let margin = chrono::Duration::hours(
        i64::try_from(jobs.deadline_margin_hours).unwrap_or(i64::MAX / 3600),
    );
    // At most 3650 days (checked with the configuration).
    let requester_min = chrono::Duration::days(jobs.requester_min_deadline_days.min(3650) as i64);
    let deadlines = (margin, requester_min);
    check_privileged(&items, &keys, Utc::now(), deadlines, privileged).map_err(invalid)?;
    Ok(items)
}

/// The 422 for these errors: as they are for a caller who may read data mappers, else
/// with a generic message where the precise one describes the mappers (names, columns,
/// types, partition keys), still naming each field.
fn validation_for(reads_mappers: bool, errors: Vec<FieldError>) -> ApiError {
    if reads_mappers {
        ApiError::Validation(errors)
    } else {
        ApiError::Validation(errors.into_iter().map(FieldError::generic).collect())
    }
}

/// Listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQueueQuery {
    /// 1 to 1000, default 100.
    pub page_size: Option<u32>,
    /// `next_start` of the previous page.
    pub start_at: Option<Uuid>,
    /// Only items that apply to this data mapper (naming it, or naming none).
    pub data_mapper: Option<String>,
    /// Only items whose deadline is before this time (RFC 3339).
    pub deadline_before: Option<DateTime<Utc>>,
}

/// A page of queued items, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuePage {
    pub matches: Vec<QueueItemResponse>,
    /// Pass as `start_at` for the next page; null on the last page.
    pub next_start: Option<Uuid>,
}

/// List the deletion queue, oldest first.
#[utoipa::path(get, path = "/v1/queue", tag = "queue", operation_id = "list_queue",
    security(("bearer" = [])), params(ListQueueQuery),
    responses(
        (status = 200, description = "A page", body = QueuePage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ))]
async fn list_queue(
    State(state): State<AppState>,
    auth: Auth<QueueRead>,
    ApiQuery(query): ApiQuery<ListQueueQuery>,
) -> Result<axum::Json<QueuePage>, ApiError> {
    let limit = page_size(query.page_size)?;
    let principal = &auth.caller.principal;
    let sees_all = sees_every_item(principal);
    let sees_ids = principal
        .roles
        .iter()
        .any(|r| matches!(r, Role::Operator | Role::Admin));
    let filter = QueueFilter {
        data_mapper: query.data_mapper,
        deadline_before: time_param("deadline_before", query.deadline_before)?,
        start_at: query.start_at,
        // A requester lists only the items it created.
        created_by: (!sees_all).then(|| principal.subject.clone()),
    };
    let rows = db::list_queue_items(&state.db, &filter, limit + 1).await?;
    let (rows, next) = split_page(rows, limit, |r| r.deletion_queue_item_id);
    let key = report_key(&mut *state.db.acquire().await?).await?;
    let matches = rows
        .into_iter()
        .map(|row| {
            let own = row.created_by == principal.subject;
            let hash = crate::domain::match_id::match_hash(&key, &row.match_id);
            let mut item = QueueItemResponse::from(row);
            item.match_hash = Some(hash);
            if !(sees_ids || own) {
                item.match_id = Value::Null;
            }
            item
        })
        .collect();
    Ok(axum::Json(QueuePage {
        matches,
        next_start: next,
    }))
}

/// One item to remove.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchRef {
    pub deletion_queue_item_id: Uuid,
}

/// Items to remove.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteMatchesRequest {
    /// 1 to 10,000 items.
    pub matches: Vec<MatchRef>,
    /// Why the items are withdrawn (at most 1,000 characters), recorded in the audit trail.
    /// Required when any of them was queued by another principal.
    #[schema(max_length = 1000)]
    pub reason: Option<String>,
}

/// Longest accepted `reason` of a delete, in characters.
const MAX_REASON_CHARS: usize = 1000;

/// Remove items from the queue. Idempotent: ids no longer queued are ignored. The audit
/// event names every item removed (id, keyed hash, reference, creator, deadline) and the
/// reason; removing items another principal queued requires one.
#[utoipa::path(delete, path = "/v1/queue/matches", tag = "queue", operation_id = "delete_matches",
    security(("bearer" = [])), request_body = DeleteMatchesRequest,
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or no `reason` for items another principal queued; nothing was removed", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_matches(
    State(state): State<AppState>,
    auth: Auth<QueueDelete>,
    ApiJson(body): ApiJson<DeleteMatchesRequest>,
) -> Result<StatusCode, ApiError> {
    if body.matches.is_empty() || body.matches.len() > MAX_ITEMS_PER_CALL {
        return Err(ApiError::field(
            "matches",
            format!("must hold 1 to {MAX_ITEMS_PER_CALL} items"),
        ));
    }
    let ids: Vec<Uuid> = body
        .matches
        .iter()
        .map(|m| m.deletion_queue_item_id)
        .collect();
    let mut tx = state.db.begin().await?;
    let items = db::lock_queue_items(&mut *tx, &ids).await?;
    let subject = &auth.caller.principal.subject;
    let others = items.iter().filter(|i| &i.created_by != subject).count();
    let reason = check_reason(body.reason.as_deref(), others)?;
    let deleted = db::delete_queue_items(&mut *tx, &ids).await?;
    let key = report_key(&mut tx).await?;
    let details = json!({
        "requested": ids.len(),
        "deleted": deleted,
        "reason": reason,
        "items": audited_items(&key, &items),
    });
    auth.caller
        .audit(&mut *tx, "queue.delete", "deletion_queue", None, details)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The reason given, trimmed: required when `others` items (queued by another principal)
/// go, refused when blank or too long.
fn check_reason(reason: Option<&str>, others: usize) -> Result<Option<&str>, ApiError> {
    match reason.map(str::trim) {
        None if others > 0 => Err(ApiError::field(
            "reason",
            format!(
                "required: {others} of these items were queued by another principal (say why they are withdrawn)"
            ),
        )),
        None => Ok(None),
        Some("") => Err(ApiError::field("reason", "must not be blank")),
        Some(r) if r.chars().count() > MAX_REASON_CHARS => Err(ApiError::field(
            "reason",
            format!("must be at most {MAX_REASON_CHARS} characters"),
        )),
        Some(r) => Ok(Some(r)),
    }
}

/// The key of the match hashes reports, listings and the audit trail show.
pub(super) async fn report_key(conn: &mut sqlx::PgConnection) -> sqlx::Result<Vec<u8>> {
    crate::db::server_secret::get_or_create(
        conn,
        crate::jobs::finalize::REPORT_KEY,
        crate::jobs::finalize::random_key,
    )
    .await
}

/// Queue items as the audit trail names them: id, keyed hash of the match id (never the
/// id), reference, creator and deadline.
fn audited_items(key: &[u8], items: &[QueueItem]) -> Vec<Value> {
    items
        .iter()
        .map(|item| {
            json!({
                "deletion_queue_item_id": item.deletion_queue_item_id,
                "match_hash": crate::domain::match_id::match_hash(key, &item.match_id),
                "reference": item.reference,
                "created_by": item.created_by,
                "deadline": item.deadline,
            })
        })
        .collect()
}
