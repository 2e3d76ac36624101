//! The AWS Glue Data Catalog through aws-sdk-glue.

use async_trait::async_trait;
use aws_sdk_glue::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_glue::operation::get_table::GetTableError;

use super::{Catalog, CatalogError, CommitError, paginate};
use crate::domain::data_mapper::{TableDef, infer_format};
use crate::domain::hive_type::HiveType;
use crate::domain::partition::Partition;

/// Glue-backed catalog.
#[derive(Debug, Clone)]
pub struct GlueCatalog {
    client: aws_sdk_glue::Client,
}

impl GlueCatalog {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self::with_metrics(sdk, Default::default())
    }

    /// A client whose calls are counted in `metrics`.
    pub fn with_metrics(
        sdk: &aws_config::SdkConfig,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Self {
        let config = aws_sdk_glue::config::Builder::from(sdk)
            .interceptor(crate::aws::CallMetrics(metrics))
            .build();
        Self {
            client: aws_sdk_glue::Client::from_conf(config),
        }
    }
}

impl GlueCatalog {
    /// The table as `GetTable` gives it.
    async fn fetch_table(
        &self,
        database: &str,
        table: &str,
    ) -> Result<aws_sdk_glue::types::Table, CatalogError> {
        let output = self
            .client
            .get_table()
            .database_name(database)
            .name(table)
            .send()
            .await
            .map_err(|e| get_table_error(e, database, table))?;
        output
            .table
            .ok_or_else(|| CatalogError::Invalid("GetTable returned no table".to_owned()))
    }
}

#[async_trait]
impl Catalog for GlueCatalog {
    /// `GetTable`, then `UpdateTable` with the whole entry as read (storage descriptor,
    /// partition keys, type, every parameter) but the metadata locations, conditioned on
    /// the version read (`VersionId`: real Glue refuses a stale one with
    /// `ConcurrentModificationException`). The location is compared first too, so a
    /// catalog that ignores `VersionId` (moto) still never overwrites a newer commit it
    /// can see.
    async fn commit_iceberg(
        &self,
        database: &str,
        table: &str,
        (expected, new): (&str, &str),
    ) -> Result<(), CommitError> {
        let current = self.fetch_table(database, table).await?;
        let mut parameters = current.parameters().cloned().unwrap_or_default();
        let now = parameters
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("metadata_location"))
            .map(|(_, v)| v.clone());
        if now.as_deref() != Some(expected) {
            return Err(CommitError::Moved { current: now });
        }
        parameters.retain(|k, _| {
            !k.eq_ignore_ascii_case("metadata_location")
                && !k.eq_ignore_ascii_case("previous_metadata_location")
        });
        parameters.insert("metadata_location".into(), new.to_owned());
        parameters.insert("previous_metadata_location".into(), expected.to_owned());
        let input = aws_sdk_glue::types::TableInput::builder()
            .name(current.name())
            .set_description(current.description().map(str::to_owned))
            .set_owner(current.owner().map(str::to_owned))
            .set_retention(Some(current.retention()).filter(|r| *r != 0))
            .set_storage_descriptor(current.storage_descriptor().cloned())
            .set_partition_keys(Some(current.partition_keys().to_vec()).filter(|k| !k.is_empty()))
            .set_table_type(current.table_type().map(str::to_owned))
            .set_parameters(Some(parameters))
            .build()
            .map_err(|e| CatalogError::Invalid(e.to_string()))?;
        let update = self
            .client
            .update_table()
            .database_name(database)
            .table_input(input)
            .set_version_id(current.version_id().map(str::to_owned))
            .skip_archive(true)
            .send()
            .await;
        match update {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConcurrentModificationException") => {
                Err(CommitError::Moved { current: None })
            }
            Err(e) => Err(glue_error(e, CatalogError::TableNotFound(table.to_owned())).into()),
        }
    }

    async fn get_table(&self, database: &str, table: &str) -> Result<TableDef, CatalogError> {
        let table = self.fetch_table(database, table).await?;
        let sd = table.storage_descriptor.as_ref();
        let columns = sd
            .map(|sd| sd.columns())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let ty = HiveType::parse(c.r#type().unwrap_or("string"))
                    .map_err(|e| CatalogError::Invalid(format!("column {:?}: {e}", c.name())))?;
                Ok((c.name().to_owned(), ty))
            })
            .collect::<Result<Vec<_>, CatalogError>>()?;
        let keys = table.partition_keys();
        let parameters = table
            .parameters()
            .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let serde = sd.and_then(|sd| sd.serde_info());
        Ok(TableDef {
            serde_library: serde
                .and_then(|s| s.serialization_library())
                .map(str::to_owned),
            serde_parameters: serde
                .and_then(|s| s.parameters())
                .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            location: sd.and_then(|sd| sd.location()).map(str::to_owned),
            columns,
            partition_keys: keys.iter().map(|k| k.name().to_owned()).collect(),
            partition_types: keys
                .iter()
                .map(|k| HiveType::parse(k.r#type().unwrap_or("string")).ok())
                .collect(),
            format: infer_format(
                sd.and_then(|sd| sd.input_format()),
                sd.and_then(|sd| sd.serde_info())
                    .and_then(|s| s.serialization_library()),
            ),
            input_format: sd.and_then(|sd| sd.input_format()).map(str::to_owned),
            parameters,
        })
    }

    async fn list_databases(&self) -> Result<Vec<String>, CatalogError> {
        paginate(|token| async move {
            let out = self
                .client
                .get_databases()
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| glue_error(e, CatalogError::Unavailable("no catalog".to_owned())))?;
            let page = out
                .database_list()
                .iter()
                .map(|d| d.name().to_owned())
                .collect();
            Ok((page, out.next_token().map(str::to_owned)))
        })
        .await
    }

    async fn list_tables(&self, database: &str) -> Result<Vec<String>, CatalogError> {
        list_tables_impl(&self.client, database).await
    }

    async fn list_partitions(
        &self,
        database: &str,
        table: &str,
    ) -> Result<Vec<Partition>, CatalogError> {
        paginate(|token| async move {
            let out = self
                .client
                .get_partitions()
                .database_name(database)
                .table_name(table)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| glue_error(e, CatalogError::TableNotFound(table.to_owned())))?;
            let page = out
                .partitions()
                .iter()
                .map(|p| {
                    let sd = p.storage_descriptor();
                    let serde = sd.and_then(|sd| sd.serde_info()).map(|s| {
                        let library = s.serialization_library().map(str::to_owned);
                        let parameters = s
                            .parameters()
                            .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                            .unwrap_or_default();
                        (library, parameters)
                    });
                    Partition {
                        values: p.values().to_vec(),
                        location: sd
                            .and_then(|sd| sd.location())
                            .unwrap_or_default()
                            .to_owned(),
                        serde,
                    }
                })
                .collect();
            Ok((page, out.next_token().map(str::to_owned)))
        })
        .await
    }
}

async fn list_tables_impl(
    client: &aws_sdk_glue::Client,
    database: &str,
) -> Result<Vec<String>, CatalogError> {
    paginate(|token| async move {
        let out = client
            .get_tables()
            .database_name(database)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| glue_error(e, CatalogError::DatabaseNotFound(database.to_owned())))?;
        let page = out
            .table_list()
            .iter()
            .map(|t| t.name().to_owned())
            .collect();
        Ok((page, out.next_token().map(str::to_owned)))
    })
    .await
}

/// Maps a Glue error: `EntityNotFound` (and a malformed name) to `not_found`, access
/// denial, else unavailable.
fn glue_error<E: ProvideErrorMetadata>(err: SdkError<E>, not_found: CatalogError) -> CatalogError {
    match err.code() {
        // A name Glue refuses as malformed names nothing it has.
        Some("EntityNotFoundException" | "InvalidInputException" | "ValidationException") => {
            not_found
        }
        Some(code @ ("AccessDeniedException" | "AccessDenied")) => CatalogError::AccessDenied {
            code: code.to_owned(),
        },
        Some(code) => CatalogError::Unavailable(code.to_owned()),
        None => CatalogError::Unavailable(aws_error_kind(&err).to_owned()),
    }
}

fn get_table_error(err: SdkError<GetTableError>, database: &str, table: &str) -> CatalogError {
    // Glue answers EntityNotFound for a missing database and a missing table; its message
    // says which.
    let missing_database = matches!(err.as_service_error(),
        Some(GetTableError::EntityNotFoundException(e))
            if e.message().unwrap_or_default().to_ascii_lowercase().contains("database"));
    if missing_database {
        return CatalogError::DatabaseNotFound(database.to_owned());
    }
    glue_error(err, CatalogError::TableNotFound(table.to_owned()))
}

fn aws_error_kind<E>(err: &SdkError<E>) -> &'static str {
    match err {
        SdkError::ConstructionFailure(_) => "request construction failed",
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "connection failed",
        SdkError::ResponseError(_) => "unreadable response",
        SdkError::ServiceError(_) => "service error",
        _ => "unknown error",
    }
}
