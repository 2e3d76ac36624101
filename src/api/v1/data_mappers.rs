//! `/v1/data_mappers`: create or replace, read, list, delete. Glue-backed mappers are
//! checked against the Glue table on every write.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::auth::{Auth, DataMapperRead, DataMapperWrite};
use crate::api::error::{ApiError, AuthProblems, Problem};
use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::{page_size, split_page};
use crate::app::AppState;
use crate::catalog::CatalogError;
use crate::db::data_mapper as db;
use crate::db::deletion_queue_item::any_item_names_mapper;
use crate::domain::data_mapper::role_allowed;
use crate::domain::data_mapper::{
    CatalogRef, DataMapper, DataMapperDraft, DataMapperId, FindEngine, Format, GlueTable,
    TableFormat, check_against_table, column_types,
};
use crate::storage::RoleSession;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            put_data_mapper,
            get_data_mapper,
            delete_data_mapper
        ))
        .routes(routes!(list_data_mappers))
}

/// A data mapper as sent on create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutDataMapperRequest {
    /// Optional; must equal the id in the path when given.
    pub data_mapper_id: Option<String>,
    pub catalog: CatalogRef,
    pub format: Format,
    /// Match columns; dotted paths reach nested struct / object fields.
    pub columns: Vec<String>,
    /// Partition keys a composite match may name.
    #[serde(default)]
    pub partition_keys: Vec<String>,
    /// IAM role assumed for S3 access.
    pub role_arn: Option<String>,
    /// Delete the older versions of rewritten objects (default true).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub delete_old_versions: bool,
    /// Skip objects that vanished between find and forget (default false).
    #[serde(default)]
    pub ignore_object_not_found: bool,
    /// Rewrite objects in buckets whose versioning is not enabled (default false: such
    /// objects fail with "bucket versioning is not enabled"). The rewrite then replaces
    /// the only copy of the object, after the full pre-upload check.
    #[serde(default)]
    pub allow_unversioned: bool,
    /// Treat archived objects (GLACIER, DEEP_ARCHIVE, Intelligent-Tiering archive tiers)
    /// as out of scope (default false: they are `not_searchable` and keep the items they
    /// may hold queued). The report lists them either way.
    #[serde(default)]
    pub skip_archived: bool,
    /// Apache Iceberg: let the purge expire the snapshots a tag or a branch other than
    /// `main` keeps when they still hold erased rows, removing those references (default
    /// false: nothing is expired and the subjects are `kept`, the tag named).
    #[serde(default)]
    pub expire_tagged_snapshots: bool,
    /// Let the scheduler start a real job over this mapper on its own when a queued
    /// item's deadline comes near (default false: an operator starts jobs; the scheduler
    /// raises an alert instead). A scheduled (`job_schedule`) job is an operator's decision
    /// and covers every mapper.
    #[serde(default)]
    pub automatic_jobs: bool,
    #[serde(default)]
    pub find_engine: FindEngine,
}

fn yes() -> bool {
    true
}

/// A stored data mapper.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataMapperResponse {
    pub data_mapper_id: String,
    pub catalog: CatalogRef,
    pub format: Format,
    pub columns: Vec<String>,
    pub partition_keys: Vec<String>,
    pub role_arn: Option<String>,
    pub delete_old_versions: bool,
    pub ignore_object_not_found: bool,
    pub allow_unversioned: bool,
    pub skip_archived: bool,
    pub expire_tagged_snapshots: bool,
    pub automatic_jobs: bool,
    pub find_engine: FindEngine,
    /// The catalog types of the match columns (dotted path → Glue type), read when the
    /// mapper was written: match ids are cast to them. Empty for `path` mappers.
    pub column_types: std::collections::BTreeMap<String, String>,
    pub created_by: String,
    pub updated_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<db::DataMapperRecord> for DataMapperResponse {
    fn from(r: db::DataMapperRecord) -> Self {
        let m = r.mapper;
        Self {
            data_mapper_id: m.id.to_string(),
            catalog: m.catalog,
            format: m.format,
            columns: m.columns.iter().map(ToString::to_string).collect(),
            partition_keys: m.partition_keys,
            role_arn: m.role_arn,
            delete_old_versions: m.delete_old_versions,
            ignore_object_not_found: m.ignore_object_not_found,
            allow_unversioned: m.allow_unversioned,
            skip_archived: m.skip_archived,
            expire_tagged_snapshots: m.expire_tagged_snapshots,
            automatic_jobs: m.automatic_jobs,
            column_types: m.column_types,
            find_engine: m.find_engine,
            created_by: r.created_by,
            updated_by: r.updated_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Create or replace a data mapper.
#[utoipa::path(put, path = "/v1/data_mappers/{data_mapper_id}", tag = "data_mappers",
    operation_id = "put_data_mapper", security(("bearer" = [])),
    params(("data_mapper_id" = String, Path, description = "Slug: a-z, 0-9, '-', '_'")),
    request_body = PutDataMapperRequest,
    responses(
        (status = 200, description = "Replaced", body = DataMapperResponse),
        (status = 201, description = "Created", body = DataMapperResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or the catalog disagrees", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Catalog unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn put_data_mapper(
    State(state): State<AppState>,
    auth: Auth<DataMapperWrite>,
    Path(raw_id): Path<String>,
    ApiJson(body): ApiJson<PutDataMapperRequest>,
) -> Result<Response, ApiError> {
    let id = DataMapperId::parse(&raw_id).map_err(|m| ApiError::field("data_mapper_id", m))?;
    if body.data_mapper_id.as_ref().is_some_and(|b| *b != raw_id) {
        return Err(ApiError::field(
            "data_mapper_id",
            "must equal the id in the path",
        ));
    }
    let mut mapper = DataMapperDraft {
        catalog: body.catalog,
        format: body.format,
        columns: body.columns,
        partition_keys: body.partition_keys,
        role_arn: body.role_arn,
        delete_old_versions: body.delete_old_versions,
        ignore_object_not_found: body.ignore_object_not_found,
        allow_unversioned: body.allow_unversioned,
        skip_archived: body.skip_archived,
        expire_tagged_snapshots: body.expire_tagged_snapshots,
        automatic_jobs: body.automatic_jobs,
        find_engine: body.find_engine,
    }
    .parse(id)
    .map_err(ApiError::Validation)?;
    if let Some(arn) = &mapper.role_arn
        && !role_allowed(&state.config.aws.allowed_role_arns, arn)
    {
        return Err(ApiError::field(
            "role_arn",
            "is not among the roles this deployment allows Lethe to assume (LETHE_ALLOWED_ROLE_ARNS)",
        ));
    }
    mapper.column_types = check_catalog(&state, &mapper, &auth.caller.principal.subject).await?;

    let mut tx = state.db.begin().await?;
    let before = db::lock_data_mapper(&mut *tx, mapper.id.as_str()).await?;
    let (record, created) =
        db::upsert_data_mapper(&mut *tx, &mapper, &auth.caller.principal.subject).await?;
    let action = if created {
        "data_mapper.create"
    } else {
        "data_mapper.replace"
    };
    let response = DataMapperResponse::from(record);
    auth.caller
        .audit(
            &mut *tx,
            action,
            "data_mapper",
            Some(mapper.id.as_str()),
            json!({
                "before": before.map(DataMapperResponse::from),
                "after": &response,
            }),
        )
        .await?;
    tx.commit().await?;
    tracing::info!(data_mapper.id = %mapper.id, created, "data mapper saved");

    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/v1/data_mappers/{}", mapper.id);
    Ok((status, [(header::LOCATION, location)], axum::Json(response)).into_response())
}

/// Checks a Glue-backed mapper against its table (and returns its match columns' types);
/// a `path` mapper's location must not be a table format's (Iceberg, Delta, Hudi
/// metadata folders under it).
async fn check_catalog(
    state: &AppState,
    mapper: &DataMapper,
    caller: &str,
) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
    let (database, table) = match &mapper.catalog {
        CatalogRef::Glue(GlueTable { database, table }) => (database, table),
        CatalogRef::Path(path) => {
            let session = RoleSession {
                name: "lethe-api".to_owned(),
                source_identity: Some(caller.to_owned()),
                tags: vec![("lethe:mapper".to_owned(), mapper.id.to_string())],
            };
            let role = mapper.role_arn.as_deref();
            check_path_location(state, &path.location, role, &session).await?;
            return Ok(Default::default());
        }
    };
    let def = state
        .catalog
        .get_table(database, table)
        .await
        .map_err(catalog_error)?;
    check_against_table(mapper, &def).map_err(ApiError::Validation)?;
    Ok(column_types(mapper, &def))
}

/// Refuses a `path` location holding a table format's metadata folder. A location that
/// cannot be listed yet (no bucket, no folder) is not refused: find checks again.
async fn check_path_location(
    state: &AppState,
    location: &str,
    role_arn: Option<&str>,
    session: &RoleSession,
) -> Result<(), ApiError> {
    // Listed as the mapper's jobs will list it: as its role, when it has one.
    let place = match state
        .stores
        .for_role(role_arn, session)
        .and_then(|stores| stores.place(location))
    {
        Ok(place) => place,
        // A local location outside the local lake root (or without one) is refused.
        Err(e) if location.starts_with("file://") => {
            return Err(ApiError::field("catalog.location", e.to_string()));
        }
        Err(_) => return Ok(()),
    };
    let root = crate::domain::prefix::dir_prefix(&place.prefix);
    for (folder, _) in TableFormat::FOLDERS {
        let prefix = format!("{root}{folder}");
        let Ok(page) = place.store.list_page(&place.bucket, &prefix, None).await else {
            continue;
        };
        let found = page
            .objects
            .iter()
            .find_map(|o| TableFormat::of_key(o.key.strip_prefix(&root).unwrap_or(&o.key)));
        if let Some(format) = found {
            return Err(ApiError::field("catalog.location", format.refusal()));
        }
    }
    Ok(())
}

/// Maps a catalog failure to the field it concerns.
pub fn catalog_error(err: CatalogError) -> ApiError {
    match err {
        CatalogError::DatabaseNotFound(db) => {
            ApiError::field("catalog.database", format!("Glue has no database {db:?}"))
        }
        CatalogError::TableNotFound(t) => ApiError::field(
            "catalog.table",
            format!("Glue has no table {t:?} in this database"),
        ),
        CatalogError::AccessDenied { code } => ApiError::field(
            "catalog",
            format!("Lethe may not read this Glue table ({code}); see the mapper's access_policy"),
        ),
        CatalogError::Invalid(message) => ApiError::field("catalog.table", message),
        CatalogError::Unavailable(reason) => {
            tracing::warn!(error = %reason, "catalog unavailable");
            ApiError::Unavailable(format!("the Glue catalog is unavailable ({reason})"))
        }
    }
}

/// Read a data mapper.
#[utoipa::path(get, path = "/v1/data_mappers/{data_mapper_id}", tag = "data_mappers",
    operation_id = "get_data_mapper", security(("bearer" = [])),
    params(("data_mapper_id" = String, Path)),
    responses(
        (status = 200, description = "The mapper", body = DataMapperResponse),
        AuthProblems,
        (status = 404, description = "No such mapper", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_data_mapper(
    State(state): State<AppState>,
    _auth: Auth<DataMapperRead>,
    Path(id): Path<String>,
) -> Result<axum::Json<DataMapperResponse>, ApiError> {
    let id = path_id(&id)?;
    let record = db::get_data_mapper(&state.db, id.as_str())
        .await
        .map_err(not_found(id.as_str()))?;
    Ok(axum::Json(record.into()))
}

/// The mapper id in a path; an id that is not a slug names no mapper (404).
pub fn path_id(raw: &str) -> Result<DataMapperId, ApiError> {
    DataMapperId::parse(raw).map_err(|_| ApiError::NotFound(format!("no data mapper {raw:?}")))
}

pub fn not_found(id: &str) -> impl FnOnce(sqlx::Error) -> ApiError + '_ {
    move |err| match err {
        sqlx::Error::RowNotFound => ApiError::NotFound(format!("no data mapper {id:?}")),
        other => other.into(),
    }
}

/// Delete a data mapper. Refused while queued items name it.
#[utoipa::path(delete, path = "/v1/data_mappers/{data_mapper_id}", tag = "data_mappers",
    operation_id = "delete_data_mapper", security(("bearer" = [])),
    params(("data_mapper_id" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        AuthProblems,
        (status = 404, description = "No such mapper", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Queued items or a job use it", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_data_mapper(
    State(state): State<AppState>,
    auth: Auth<DataMapperWrite>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?.to_string();
    let mut tx = state.db.begin().await?;
    // Delete first: the row lock waits for queue additions naming this mapper to commit,
    // so the check below sees them.
    let Some(before) = db::lock_data_mapper(&mut *tx, &id).await? else {
        return Err(ApiError::NotFound(format!("no data mapper {id:?}")));
    };
    if !db::delete_data_mapper(&mut *tx, &id).await? {
        return Err(ApiError::NotFound(format!("no data mapper {id:?}")));
    }
    if any_item_names_mapper(&mut *tx, &id).await? {
        return Err(ApiError::Conflict(format!(
            "queued items name data mapper {id:?}; erase or remove them first"
        )));
    }
    if crate::db::job::mapper_in_active_job(&mut *tx, &id).await? {
        return Err(ApiError::Conflict(format!(
            "a running job searches data mapper {id:?}; wait for it to end or cancel it"
        )));
    }
    auth.caller
        .audit(
            &mut *tx,
            "data_mapper.delete",
            "data_mapper",
            Some(&id),
            json!({"before": DataMapperResponse::from(before)}),
        )
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pagination parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDataMappersQuery {
    /// 1 to 1000, default 100.
    pub page_size: Option<u32>,
    /// `next_start` of the previous page.
    pub start_at: Option<String>,
}

/// A page of data mappers.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataMapperPage {
    pub data_mappers: Vec<DataMapperResponse>,
    /// Pass as `start_at` for the next page; null on the last page.
    pub next_start: Option<String>,
}

/// List data mappers in id order.
#[utoipa::path(get, path = "/v1/data_mappers", tag = "data_mappers",
    operation_id = "list_data_mappers", security(("bearer" = [])),
    params(ListDataMappersQuery),
    responses(
        (status = 200, description = "A page", body = DataMapperPage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ))]
async fn list_data_mappers(
    State(state): State<AppState>,
    _auth: Auth<DataMapperRead>,
    ApiQuery(query): ApiQuery<ListDataMappersQuery>,
) -> Result<axum::Json<DataMapperPage>, ApiError> {
    let limit = page_size(query.page_size)?;
    let rows = db::list_data_mappers(&state.db, query.start_at.as_deref(), limit + 1).await?;
    let (rows, next) = split_page(rows, limit, |r| r.mapper.id.to_string());
    Ok(axum::Json(DataMapperPage {
        data_mappers: rows.into_iter().map(Into::into).collect(),
        next_start: next,
    }))
}
