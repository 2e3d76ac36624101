//! The catalog boundary: where tables, their schemas and partitions are described.
//! `glue` talks to the AWS Glue Data Catalog through aws-sdk-glue; tests use an
//! in-memory catalog.

pub mod glue;
pub mod lake_formation;
pub mod lake_formation_sdk;

use async_trait::async_trait;

use crate::domain::data_mapper::TableDef;

/// Why a table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("database {0:?} not found")]
    DatabaseNotFound(String),
    #[error("table {0:?} not found")]
    TableNotFound(String),
    #[error("access denied ({code})")]
    AccessDenied { code: String },
    #[error("table definition unreadable: {0}")]
    Invalid(String),
    #[error("catalog unavailable: {0}")]
    Unavailable(String),
}

/// Reads table definitions.
#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    async fn get_table(&self, database: &str, table: &str) -> Result<TableDef, CatalogError>;
    /// The names of a database's tables, following pagination.
    async fn list_tables(&self, database: &str) -> Result<Vec<String>, CatalogError>;
}

/// A fixed set of tables, for tests and local use.
#[derive(Debug, Default, Clone)]
pub struct MemoryCatalog {
    tables: std::collections::HashMap<(String, String), TableDef>,
}

impl MemoryCatalog {
    pub fn with_table(mut self, database: &str, table: &str, def: TableDef) -> Self {
        self.tables
            .insert((database.to_owned(), table.to_owned()), def);
        self
    }
}

#[async_trait]
impl Catalog for MemoryCatalog {
    async fn get_table(&self, database: &str, table: &str) -> Result<TableDef, CatalogError> {
        if !self.tables.keys().any(|(db, _)| db == database) {
            return Err(CatalogError::DatabaseNotFound(database.to_owned()));
        }
        self.tables
            .get(&(database.to_owned(), table.to_owned()))
            .cloned()
            .ok_or_else(|| CatalogError::TableNotFound(table.to_owned()))
    }

    async fn list_tables(&self, database: &str) -> Result<Vec<String>, CatalogError> {
        let mut names: Vec<String> = self
            .tables
            .keys()
            .filter(|(db, _)| db == database)
            .map(|(_, t)| t.clone())
            .collect();
        if names.is_empty() {
            return Err(CatalogError::DatabaseNotFound(database.to_owned()));
        }
        names.sort();
        Ok(names)
    }
}
