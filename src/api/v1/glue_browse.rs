//! `/v1/glue/...`: browse the Glue catalog through Lethe (databases, tables, a table's
//! columns with their types, nested struct fields as dotted paths, and partition keys), so
//! a person writing a data mapper picks names instead of typing them.

use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::data_mappers::catalog_error;
use crate::api::auth::{Auth, CatalogRead};
use crate::api::error::{ApiError, AuthProblems, Problem};
use crate::app::AppState;
use crate::catalog::CatalogError;
use crate::domain::classification::{ColumnKind, catalog_columns};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_databases))
        .routes(routes!(list_tables))
        .routes(routes!(get_table))
}

/// The catalog's databases.
#[derive(Debug, Serialize, ToSchema)]
pub struct GlueDatabases {
    pub databases: Vec<String>,
}

/// A database's tables.
#[derive(Debug, Serialize, ToSchema)]
pub struct GlueTables {
    pub database: String,
    pub tables: Vec<String>,
}

/// One column a data mapper may name.
#[derive(Debug, Serialize, ToSchema)]
pub struct GlueColumn {
    /// Lowercased; nested struct fields are dotted paths (`contact.email`).
    pub name: String,
    /// The Glue type; null for a partition key whose type cannot be read.
    pub data_type: Option<String>,
    pub kind: ColumnKind,
}

/// A table as a data mapper sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct GlueTableInfo {
    pub database: String,
    pub table: String,
    pub location: Option<String>,
    /// `parquet` or `json` when the SerDe says so; null when Lethe cannot read the format.
    pub format: Option<String>,
    pub columns: Vec<GlueColumn>,
    pub partition_keys: Vec<GlueColumn>,
    /// Why Lethe would refuse a mapper on this table (Iceberg, Delta, Hudi), if it would.
    pub refused: Option<String>,
}

/// Browsing answers 404 for what Glue does not have, not 422 (there is no body).
fn browse_error(err: CatalogError) -> ApiError {
    match err {
        CatalogError::DatabaseNotFound(db) => {
            ApiError::NotFound(format!("Glue has no database {db:?}"))
        }
        CatalogError::TableNotFound(t) => ApiError::NotFound(format!("Glue has no table {t:?}")),
        other => catalog_error(other),
    }
}

/// List the Glue databases.
#[utoipa::path(get, path = "/v1/glue/databases", tag = "data_mappers",
    operation_id = "list_glue_databases", security(("bearer" = [])),
    responses(
        (status = 200, description = "The databases", body = GlueDatabases),
        AuthProblems,
        (status = 422, description = "Lethe may not read the catalog", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Glue unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_databases(
    State(state): State<AppState>,
    _auth: Auth<CatalogRead>,
) -> Result<axum::Json<GlueDatabases>, ApiError> {
    let mut databases = state.catalog.list_databases().await.map_err(browse_error)?;
    databases.sort();
    Ok(axum::Json(GlueDatabases { databases }))
}

/// List a Glue database's tables.
#[utoipa::path(get, path = "/v1/glue/databases/{database}/tables", tag = "data_mappers",
    operation_id = "list_glue_tables", security(("bearer" = [])),
    params(("database" = String, Path)),
    responses(
        (status = 200, description = "The tables", body = GlueTables),
        AuthProblems,
        (status = 404, description = "No such database", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Lethe may not read the catalog", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Glue unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_tables(
    State(state): State<AppState>,
    _auth: Auth<CatalogRead>,
    Path(database): Path<String>,
) -> Result<axum::Json<GlueTables>, ApiError> {
    let mut tables = state
        .catalog
        .list_tables(&database)
        .await
        .map_err(browse_error)?;
    tables.sort();
    Ok(axum::Json(GlueTables { database, tables }))
}

/// A Glue table's columns, nested fields and partition keys, with their types.
#[utoipa::path(get, path = "/v1/glue/databases/{database}/tables/{table}", tag = "data_mappers",
    operation_id = "get_glue_table", security(("bearer" = [])),
    params(("database" = String, Path), ("table" = String, Path)),
    responses(
        (status = 200, description = "The table", body = GlueTableInfo),
        AuthProblems,
        (status = 404, description = "No such database or table", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The table cannot be read", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Glue unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_table(
    State(state): State<AppState>,
    _auth: Auth<CatalogRead>,
    Path((database, table)): Path<(String, String)>,
) -> Result<axum::Json<GlueTableInfo>, ApiError> {
    let def = state
        .catalog
        .get_table(&database, &table)
        .await
        .map_err(browse_error)?;
    let (partition_keys, columns): (Vec<_>, Vec<_>) = catalog_columns(&def)
        .into_iter()
        .partition(|c| c.kind == ColumnKind::PartitionKey);
    let partition_keys = partition_keys
        .into_iter()
        .zip(def.keys())
        .map(|(c, key)| GlueColumn {
            name: c.name,
            data_type: key.ty.map(|t| t.to_string()),
            kind: c.kind,
        })
        .collect();
    Ok(axum::Json(GlueTableInfo {
        format: match def.table_format() {
            // Searched through its manifests: its data files are Parquet.
            Some(crate::domain::data_mapper::TableFormat::Iceberg) => Some("parquet".to_owned()),
            _ => def.format.map(|f| f.as_str().to_owned()),
        },
        refused: def
            .table_format()
            .filter(|f| *f != crate::domain::data_mapper::TableFormat::Iceberg)
            .map(|f| f.refusal()),
        location: def.location.clone(),
        columns: columns
            .into_iter()
            .map(|c| GlueColumn {
                name: c.name,
                data_type: c.data_type,
                kind: c.kind,
            })
            .collect(),
        partition_keys,
        database,
        table,
    }))
}
