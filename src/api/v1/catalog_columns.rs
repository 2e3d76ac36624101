//! `/v1/catalog/{database}/{table}/…`: a Glue table's columns with their PII
//! classification, and setting classifications.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::data_mappers::catalog_error;
use crate::api::auth::{Auth, GovernanceRead, GovernanceWrite};
use crate::api::error::{ApiError, AuthProblems, Problem};
use crate::api::extract::ApiJson;
use crate::app::AppState;
use crate::db::column_classification::{get_classifications, upsert_classifications};
use crate::domain::classification::{
    CatalogColumn, Classification, Classified, ColumnKind, catalog_columns, effective,
};
use crate::domain::validation::Errors;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_columns))
        .routes(routes!(put_classifications))
}

/// A column with its classification.
#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnView {
    /// Lowercased name; nested struct fields are dotted paths.
    pub name: String,
    /// Glue type; null for partition keys.
    pub data_type: Option<String>,
    pub kind: ColumnKind,
    pub classification: Classification,
    pub category: Option<String>,
    /// True when a nested field takes its parent's classification.
    pub inherited: bool,
}

/// A classification kept for a column Glue no longer has.
#[derive(Debug, Serialize, ToSchema)]
pub struct VanishedColumn {
    pub name: String,
    pub classification: Classification,
    pub category: Option<String>,
}

/// A table's columns.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableColumns {
    pub database: String,
    pub table: String,
    pub columns: Vec<ColumnView>,
    /// Classified columns that vanished from Glue (kept, reported).
    pub vanished_columns: Vec<VanishedColumn>,
}

async fn load(
    state: &AppState,
    database: &str,
    table: &str,
) -> Result<(Vec<CatalogColumn>, HashMap<String, Classified>), ApiError> {
    let def = state
        .catalog
        .get_table(database, table)
        .await
        .map_err(|e| match catalog_error(e) {
            ApiError::Validation(errors) => ApiError::NotFound(errors[0].message.clone()),
            other => other,
        })?;
    let stored = get_classifications(&state.db, database, table).await?;
    Ok((catalog_columns(&def), stored))
}

fn view(
    database: String,
    table: String,
    columns: Vec<CatalogColumn>,
    stored: HashMap<String, Classified>,
) -> TableColumns {
    let names: BTreeSet<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let mut vanished: Vec<VanishedColumn> = stored
        .iter()
        .filter(|(name, _)| !names.contains(name.as_str()))
        .map(|(name, c)| VanishedColumn {
            name: name.clone(),
            classification: c.classification,
            category: c.category.clone(),
        })
        .collect();
    vanished.sort_by(|a, b| a.name.cmp(&b.name));
    let columns = columns
        .into_iter()
        .map(|c| {
            let (classification, category, inherited) = effective(&c.name, &stored);
            ColumnView {
                name: c.name,
                data_type: c.data_type,
                kind: c.kind,
                classification,
                category,
                inherited,
            }
        })
        .collect();
    TableColumns {
        database,
        table,
        columns,
        vanished_columns: vanished,
    }
}

/// A table's columns (incl. partition keys and nested fields) with their classification.
#[utoipa::path(get, path = "/v1/catalog/{database}/{table}/columns", tag = "governance",
    operation_id = "list_table_columns", security(("bearer" = [])),
    params(("database" = String, Path), ("table" = String, Path)),
    responses(
        (status = 200, description = "The columns", body = TableColumns),
        AuthProblems,
        (status = 404, description = "No such table in Glue", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Glue unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_columns(
    State(state): State<AppState>,
    _auth: Auth<GovernanceRead>,
    Path((database, table)): Path<(String, String)>,
) -> Result<axum::Json<TableColumns>, ApiError> {
    let (database, table) = (database.to_ascii_lowercase(), table.to_ascii_lowercase());
    let (columns, stored) = load(&state, &database, &table).await?;
    Ok(axum::Json(view(database, table, columns, stored)))
}

/// One column's classification.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnClassification {
    /// Column name, partition key, or dotted path of a nested field.
    pub name: String,
    pub classification: Classification,
    /// Free text, e.g. `contact.email` (at most 256 characters).
    pub category: Option<String>,
}

/// Classifications to set; columns not listed keep theirs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutClassificationsRequest {
    pub columns: Vec<ColumnClassification>,
}

/// Classify columns as `pii`, `non_pii` or `unclassified`.
#[utoipa::path(put, path = "/v1/catalog/{database}/{table}/classifications", tag = "governance",
    operation_id = "put_classifications", security(("bearer" = [])),
    params(("database" = String, Path), ("table" = String, Path)),
    request_body = PutClassificationsRequest,
    responses(
        (status = 200, description = "The columns after the change", body = TableColumns),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 404, description = "No such table in Glue", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown columns or invalid fields", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Glue unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn put_classifications(
    State(state): State<AppState>,
    auth: Auth<GovernanceWrite>,
    Path((database, table)): Path<(String, String)>,
    ApiJson(body): ApiJson<PutClassificationsRequest>,
) -> Result<axum::Json<TableColumns>, ApiError> {
    let (database, table) = (database.to_ascii_lowercase(), table.to_ascii_lowercase());
    let (columns, _) = load(&state, &database, &table).await?;
    let known: BTreeSet<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let mut errors = Errors::new();
    if body.columns.is_empty() {
        errors.add("columns", "must name at least one column");
    }
    let mut changes: Vec<(String, Classified)> = Vec::new();
    for (i, c) in body.columns.into_iter().enumerate() {
        let name = c.name.to_ascii_lowercase();
        if !known.contains(name.as_str()) {
            errors.add(
                format!("columns[{i}].name"),
                format!("{database}.{table} has no column {name:?}"),
            );
        } else if changes.iter().any(|(n, _)| *n == name) {
            errors.add(format!("columns[{i}].name"), "duplicate column");
        }
        if c.category
            .as_ref()
            .is_some_and(|cat| cat.chars().count() > 256)
        {
            errors.add(
                format!("columns[{i}].category"),
                "must be at most 256 characters",
            );
        }
        changes.push((
            name,
            Classified {
                classification: c.classification,
                category: c.category,
            },
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors.into_vec()));
    }
    let mut tx = state.db.begin().await?;
    let before = get_classifications(&mut *tx, &database, &table).await?;
    let columns_changed: Vec<serde_json::Value> = changes
        .iter()
        .map(|(name, after)| {
            json!({
                "column": name,
                "before": before.get(&name.to_lowercase()),
                "after": after,
            })
        })
        .collect();
    upsert_classifications(
        &mut *tx,
        &database,
        &table,
        &changes,
        &auth.caller.principal.subject,
    )
    .await?;
    let target = format!("{database}.{table}");
    auth.caller
        .audit(
            &mut *tx,
            "classification.update",
            "table",
            Some(&target),
            json!({"columns": columns_changed}),
        )
        .await?;
    tx.commit().await?;
    let stored = get_classifications(&state.db, &database, &table).await?;
    Ok(axum::Json(view(database, table, columns, stored)))
}
