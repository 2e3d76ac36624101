//! The catalog boundary: where tables, their schemas and partitions are described.
//! `glue` talks to the AWS Glue Data Catalog through aws-sdk-glue; tests use an
//! in-memory catalog. `source` is the table-source seam: what a data mapper's table is
//! (its objects and their partitions) and how a table format commits a rewrite.

pub mod glue;
pub mod lake_formation;
pub mod lake_formation_sdk;
pub mod source;

use async_trait::async_trait;

use crate::domain::data_mapper::TableDef;
use crate::domain::partition::Partition;

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

/// Why an Iceberg table's catalog entry was not moved to a new metadata file.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The entry no longer points at the metadata Lethe read (another writer committed):
    /// nothing changed; the caller plans again on the table as it is now.
    #[error("the table's metadata moved since it was read (now {current:?})")]
    Moved { current: Option<String> },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Reads table definitions.
#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// Points an Iceberg table's entry at the metadata file `new`, only if it points at
    /// `expected` now (what the commit was built from); `expected` becomes its
    /// `previous_metadata_location`, as Iceberg's own Glue catalog records it.
    async fn commit_iceberg(
        &self,
        database: &str,
        table: &str,
        (expected, new): (&str, &str),
    ) -> Result<(), CommitError>;
    async fn get_table(&self, database: &str, table: &str) -> Result<TableDef, CatalogError>;
    /// The names of the catalog's databases, following pagination.
    async fn list_databases(&self) -> Result<Vec<String>, CatalogError>;
    /// The names of a database's tables, following pagination.
    async fn list_tables(&self, database: &str) -> Result<Vec<String>, CatalogError>;
    /// Every partition of a table, following pagination.
    async fn list_partitions(
        &self,
        database: &str,
        table: &str,
    ) -> Result<Vec<Partition>, CatalogError>;
}

/// Collects every page of a paginated call: `fetch(token)` returns a page and the next
/// token; an empty or missing token ends it.
pub async fn paginate<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, CatalogError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>), CatalogError>>,
{
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let (page, next) = fetch(token).await?;
        all.extend(page);
        match next {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(all),
        }
    }
}

/// A fixed set of tables, for tests and local use.
#[derive(Debug, Default, Clone)]
pub struct MemoryCatalog {
    tables: std::collections::HashMap<(String, String), TableDef>,
    partitions: std::collections::HashMap<(String, String), Vec<Partition>>,
}

impl MemoryCatalog {
    pub fn with_partitions(
        mut self,
        database: &str,
        table: &str,
        partitions: Vec<Partition>,
    ) -> Self {
        self.partitions
            .insert((database.to_owned(), table.to_owned()), partitions);
        self
    }

    pub fn with_table(mut self, database: &str, table: &str, def: TableDef) -> Self {
        self.tables
            .insert((database.to_owned(), table.to_owned()), def);
        self
    }
}

#[async_trait]
impl Catalog for MemoryCatalog {
    /// A fixed set of tables takes no commit.
    async fn commit_iceberg(
        &self,
        _database: &str,
        _table: &str,
        _locations: (&str, &str),
    ) -> Result<(), CommitError> {
        Err(CommitError::Catalog(CatalogError::Unavailable(
            "the in-memory catalog takes no commits".into(),
        )))
    }

    async fn get_table(&self, database: &str, table: &str) -> Result<TableDef, CatalogError> {
        if !self.tables.keys().any(|(db, _)| db == database) {
            return Err(CatalogError::DatabaseNotFound(database.to_owned()));
        }
        self.tables
            .get(&(database.to_owned(), table.to_owned()))
            .cloned()
            .ok_or_else(|| CatalogError::TableNotFound(table.to_owned()))
    }

    async fn list_databases(&self) -> Result<Vec<String>, CatalogError> {
        let names: std::collections::BTreeSet<String> =
            self.tables.keys().map(|(db, _)| db.clone()).collect();
        Ok(names.into_iter().collect())
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

    async fn list_partitions(
        &self,
        database: &str,
        table: &str,
    ) -> Result<Vec<Partition>, CatalogError> {
        self.get_table(database, table).await?;
        Ok(self
            .partitions
            .get(&(database.to_owned(), table.to_owned()))
            .cloned()
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paginate_follows_next_tokens_until_the_last_page() {
        let pages = [
            (vec![1, 2], Some("a".to_owned())),
            (vec![3], Some("b".to_owned())),
            (vec![4, 5], None),
        ];
        let mut seen = Vec::new();
        let all = paginate(|token| {
            seen.push(token.clone());
            let i = match token.as_deref() {
                None => 0,
                Some("a") => 1,
                _ => 2,
            };
            let page = pages[i].clone();
            async move { Ok::<_, CatalogError>(page) }
        })
        .await
        .unwrap();
        assert_eq!(all, [1, 2, 3, 4, 5]);
        assert_eq!(seen, [None, Some("a".to_owned()), Some("b".to_owned())]);
    }

    #[tokio::test]
    async fn an_empty_next_token_ends_pagination_and_errors_stop_it() {
        let all = paginate(|_| async { Ok::<_, CatalogError>((vec![1], Some(String::new()))) })
            .await
            .unwrap();
        assert_eq!(all, [1]);
        let err = paginate::<i32, _, _>(|_| async {
            Err(CatalogError::Unavailable("ThrottlingException".into()))
        })
        .await;
        assert!(matches!(err, Err(CatalogError::Unavailable(_))));
    }
}
