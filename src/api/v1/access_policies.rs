//! `/v1/access_policies`: the declared Lake Formation grants (create or replace, read,
//! list, delete). Reconciliation (plan, apply, drift, enforcement) is in `grants.rs`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::data_mappers::catalog_error;
use crate::api::auth::{Auth, GovernanceRead, GovernanceWrite};
use crate::api::error::{ApiError, AuthProblems, Problem};
use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::{page_size, split_page};
use crate::app::AppState;
use crate::db::access_policy::{self as db, AccessPolicyRecord};
use crate::domain::access_policy::{Access, AccessPolicy, TableRef};
use crate::domain::validation::Errors;
use crate::governance::top_level_columns;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            put_access_policy,
            get_access_policy,
            delete_access_policy
        ))
        .routes(routes!(list_access_policies))
}

/// A policy as sent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutAccessPolicyRequest {
    /// IAM role or user ARN, or a 12-digit account id.
    pub principal: String,
    pub tables: Vec<TableRef>,
    /// `all_columns`, `non_pii_columns`, or `{"columns": [..]}`.
    pub access: Access,
    /// `SELECT` and/or `DESCRIBE`.
    pub permissions: Vec<String>,
    #[serde(default)]
    pub grant_option: bool,
}

/// A stored policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessPolicyResponse {
    pub name: String,
    pub principal: String,
    pub tables: Vec<TableRef>,
    pub access: Access,
    pub permissions: Vec<String>,
    pub grant_option: bool,
    pub created_by: String,
    pub updated_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<AccessPolicyRecord> for AccessPolicyResponse {
    fn from(r: AccessPolicyRecord) -> Self {
        let p = r.policy;
        Self {
            name: p.name,
            principal: p.principal,
            tables: p.tables,
            access: p.access,
            permissions: p.permissions,
            grant_option: p.grant_option,
            created_by: r.created_by,
            updated_by: r.updated_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Checks the policy's tables and explicit columns against Glue.
async fn check_catalog(state: &AppState, p: &AccessPolicy) -> Result<(), ApiError> {
    let mut errors = Errors::new();
    for (i, t) in p.tables.iter().enumerate() {
        let result = if t.table == "*" {
            state.catalog.list_tables(&t.database).await.map(|_| ())
        } else {
            state
                .catalog
                .get_table(&t.database, &t.table)
                .await
                .map(|def| {
                    if let Access::Columns(explicit) = &p.access {
                        let have = top_level_columns(&def);
                        for (j, c) in explicit.columns.iter().enumerate() {
                            if !have.contains(c) {
                                errors.add(
                                    format!("access.columns[{j}]"),
                                    format!("{}.{} has no column {c:?}", t.database, t.table),
                                );
                            }
                        }
                    }
                })
        };
        if let Err(e) = result {
            match catalog_error(e) {
                ApiError::Validation(v) => {
                    let field = if v[0].field == "catalog.database" {
                        "database"
                    } else {
                        "table"
                    };
                    errors.add(format!("tables[{i}].{field}"), v[0].message.clone());
                }
                other => return Err(other),
            }
        }
    }
    errors.finish(()).map_err(ApiError::Validation)
}

/// Create or replace an access policy.
#[utoipa::path(put, path = "/v1/access_policies/{name}", tag = "governance",
    operation_id = "put_access_policy", security(("bearer" = [])),
    params(("name" = String, Path, description = "Slug: a-z, 0-9, '-', '_'")),
    request_body = PutAccessPolicyRequest,
    responses(
        (status = 200, description = "Replaced", body = AccessPolicyResponse),
        (status = 201, description = "Created", body = AccessPolicyResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or Glue disagrees", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Glue unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn put_access_policy(
    State(state): State<AppState>,
    auth: Auth<GovernanceWrite>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PutAccessPolicyRequest>,
) -> Result<(StatusCode, axum::Json<AccessPolicyResponse>), ApiError> {
    let policy = AccessPolicy {
        name,
        principal: body.principal,
        tables: body.tables,
        access: body.access,
        permissions: body.permissions,
        grant_option: body.grant_option,
    }
    .validate()
    .map_err(ApiError::Validation)?;
    check_catalog(&state, &policy).await?;
    let mut tx = state.db.begin().await?;
    let before = db::lock_access_policy(&mut *tx, &policy.name).await?;
    let (record, created) =
        db::upsert_access_policy(&mut *tx, &policy, &auth.caller.principal.subject).await?;
    let response = AccessPolicyResponse::from(record);
    let action = if created {
        "access_policy.create"
    } else {
        "access_policy.replace"
    };
    auth.caller
        .audit(
            &mut *tx,
            action,
            "access_policy",
            Some(&policy.name),
            json!({
                "before": before.map(AccessPolicyResponse::from),
                "after": &response,
            }),
        )
        .await?;
    tx.commit().await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(response)))
}

fn not_found(name: &str) -> impl FnOnce(sqlx::Error) -> ApiError + '_ {
    move |e| match e {
        sqlx::Error::RowNotFound => ApiError::NotFound(format!("no access policy {name:?}")),
        other => other.into(),
    }
}

fn path_name(raw: &str) -> Result<&str, ApiError> {
    crate::domain::data_mapper::DataMapperId::parse(raw)
        .map(|_| raw)
        .map_err(|_| ApiError::NotFound(format!("no access policy {raw:?}")))
}

/// Read an access policy.
#[utoipa::path(get, path = "/v1/access_policies/{name}", tag = "governance",
    operation_id = "get_access_policy", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The policy", body = AccessPolicyResponse),
        AuthProblems,
        (status = 404, description = "No such policy", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_access_policy(
    State(state): State<AppState>,
    _auth: Auth<GovernanceRead>,
    Path(name): Path<String>,
) -> Result<axum::Json<AccessPolicyResponse>, ApiError> {
    let name = path_name(&name)?;
    let record = db::get_access_policy(&state.db, name)
        .await
        .map_err(not_found(name))?;
    Ok(axum::Json(record.into()))
}

/// Delete an access policy (its grants are revoked by the next apply).
#[utoipa::path(delete, path = "/v1/access_policies/{name}", tag = "governance",
    operation_id = "delete_access_policy", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        AuthProblems,
        (status = 404, description = "No such policy", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_access_policy(
    State(state): State<AppState>,
    auth: Auth<GovernanceWrite>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = path_name(&name)?;
    let mut tx = state.db.begin().await?;
    let Some(before) = db::lock_access_policy(&mut *tx, name).await? else {
        return Err(ApiError::NotFound(format!("no access policy {name:?}")));
    };
    if !db::delete_access_policy(&mut *tx, name).await? {
        return Err(ApiError::NotFound(format!("no access policy {name:?}")));
    }
    auth.caller
        .audit(
            &mut *tx,
            "access_policy.delete",
            "access_policy",
            Some(name),
            json!({"before": AccessPolicyResponse::from(before)}),
        )
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pagination parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAccessPoliciesQuery {
    /// 1 to 1000, default 100.
    pub page_size: Option<u32>,
    /// `next_start` of the previous page.
    pub start_at: Option<String>,
}

/// A page of access policies.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessPolicyPage {
    pub access_policies: Vec<AccessPolicyResponse>,
    /// Pass as `start_at` for the next page; null on the last page.
    pub next_start: Option<String>,
}

/// List access policies in name order.
#[utoipa::path(get, path = "/v1/access_policies", tag = "governance",
    operation_id = "list_access_policies", security(("bearer" = [])),
    params(ListAccessPoliciesQuery),
    responses(
        (status = 200, description = "A page", body = AccessPolicyPage),
        (status = 400, description = "Bad query", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
    ))]
async fn list_access_policies(
    State(state): State<AppState>,
    _auth: Auth<GovernanceRead>,
    ApiQuery(query): ApiQuery<ListAccessPoliciesQuery>,
) -> Result<axum::Json<AccessPolicyPage>, ApiError> {
    let limit = page_size(query.page_size)?;
    let rows =
        db::list_access_policies(&state.db, query.start_at.as_deref(), Some(limit + 1)).await?;
    let (rows, next) = split_page(rows, limit, |r| r.policy.name.clone());
    Ok(axum::Json(AccessPolicyPage {
        access_policies: rows.into_iter().map(Into::into).collect(),
        next_start: next,
    }))
}
