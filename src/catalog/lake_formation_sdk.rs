//! [`LakeFormation`] through aws-sdk-lakeformation.

use async_trait::async_trait;
use aws_sdk_lakeformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lakeformation::types::{
    BatchPermissionsRequestEntry, ColumnWildcard, DataLakePrincipal, DataLakeResourceType,
    Permission, Resource, TableResource, TableWildcard, TableWithColumnsResource,
};

use super::lake_formation::{EntryFailure, LakeFormation, LfError};
use crate::domain::grants::{LfColumns, LfPermission, LfResource};

/// Lake Formation through the AWS SDK.
#[derive(Debug, Clone)]
pub struct SdkLakeFormation {
    client: aws_sdk_lakeformation::Client,
}

impl SdkLakeFormation {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self::with_metrics(sdk, Default::default())
    }

    /// A client whose calls are counted in `metrics`.
    pub fn with_metrics(
        sdk: &aws_config::SdkConfig,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Self {
        let config = aws_sdk_lakeformation::config::Builder::from(sdk)
            .interceptor(crate::aws::CallMetrics(metrics))
            .build();
        Self {
            client: aws_sdk_lakeformation::Client::from_conf(config),
        }
    }
}

fn sdk_error<E: ProvideErrorMetadata>(err: SdkError<E>) -> LfError {
    LfError {
        code: err.code().unwrap_or("Unavailable").to_owned(),
        message: err
            .message()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{err}")),
    }
}

fn build_error(err: impl std::fmt::Display) -> LfError {
    LfError {
        code: "InvalidRequest".to_owned(),
        message: err.to_string(),
    }
}

fn to_resource(r: &LfResource) -> Result<Resource, LfError> {
    let resource = match r {
        LfResource::Table { database, name } => Resource::builder().table(
            TableResource::builder()
                .database_name(database)
                .name(name)
                .build()
                .map_err(build_error)?,
        ),
        LfResource::TableWildcard { database } => Resource::builder().table(
            TableResource::builder()
                .database_name(database)
                .table_wildcard(TableWildcard::builder().build())
                .build()
                .map_err(build_error)?,
        ),
        LfResource::TableWithColumns {
            database,
            name,
            columns,
        } => {
            let mut b = TableWithColumnsResource::builder()
                .database_name(database)
                .name(name);
            b = match columns {
                LfColumns::Names(names) => b.set_column_names(Some(names.clone())),
                LfColumns::Wildcard { excluded } => b.column_wildcard(
                    ColumnWildcard::builder()
                        .set_excluded_column_names((!excluded.is_empty()).then(|| excluded.clone()))
                        .build(),
                ),
            };
            Resource::builder().table_with_columns(b.build().map_err(build_error)?)
        }
        LfResource::Other => return Err(build_error("cannot address this resource")),
    };
    Ok(resource.build())
}

fn from_resource(r: Option<&Resource>) -> LfResource {
    let Some(r) = r else {
        return LfResource::Other;
    };
    if let Some(t) = r.table() {
        return match (t.name(), t.table_wildcard()) {
            (Some(name), _) => LfResource::Table {
                database: t.database_name().to_owned(),
                name: name.to_owned(),
            },
            (None, _) => LfResource::TableWildcard {
                database: t.database_name().to_owned(),
            },
        };
    }
    if let Some(t) = r.table_with_columns() {
        let columns = match t.column_wildcard() {
            Some(w) => LfColumns::Wildcard {
                excluded: w.excluded_column_names().to_vec(),
            },
            None => LfColumns::Names(t.column_names().to_vec()),
        };
        return LfResource::TableWithColumns {
            database: t.database_name().to_owned(),
            name: t.name().to_owned(),
            columns,
        };
    }
    LfResource::Other
}

fn principal(id: &str) -> DataLakePrincipal {
    DataLakePrincipal::builder()
        .data_lake_principal_identifier(id)
        .build()
}

fn permissions(names: &[String]) -> Option<Vec<Permission>> {
    Some(names.iter().map(|p| Permission::from(p.as_str())).collect())
}

fn entries(
    entries: &[(String, LfPermission)],
) -> Result<Vec<BatchPermissionsRequestEntry>, LfError> {
    entries
        .iter()
        .map(|(id, p)| {
            BatchPermissionsRequestEntry::builder()
                .id(id)
                .principal(principal(&p.principal))
                .resource(to_resource(&p.resource)?)
                .set_permissions(permissions(&p.permissions))
                .set_permissions_with_grant_option(permissions(&p.grantable))
                .build()
                .map_err(build_error)
        })
        .collect()
}

fn failures(
    list: &[aws_sdk_lakeformation::types::BatchPermissionsFailureEntry],
) -> Vec<EntryFailure> {
    list.iter()
        .map(|f| EntryFailure {
            id: f
                .request_entry()
                .map(|e| e.id().to_owned())
                .unwrap_or_default(),
            error: LfError {
                code: f
                    .error()
                    .and_then(|e| e.error_code())
                    .unwrap_or("Unknown")
                    .to_owned(),
                message: f
                    .error()
                    .and_then(|e| e.error_message())
                    .unwrap_or_default()
                    .to_owned(),
            },
        })
        .collect()
}

#[async_trait]
impl LakeFormation for SdkLakeFormation {
    async fn list_permissions_page(
        &self,
        next_token: Option<String>,
    ) -> Result<(Vec<LfPermission>, Option<String>), LfError> {
        let out = self
            .client
            .list_permissions()
            .resource_type(DataLakeResourceType::Table)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(sdk_error)?;
        let page = out
            .principal_resource_permissions()
            .iter()
            .map(|p| LfPermission {
                principal: p
                    .principal()
                    .and_then(|x| x.data_lake_principal_identifier())
                    .unwrap_or_default()
                    .to_owned(),
                resource: from_resource(p.resource()),
                permissions: p
                    .permissions()
                    .iter()
                    .map(|x| x.as_str().to_owned())
                    .collect(),
                grantable: p
                    .permissions_with_grant_option()
                    .iter()
                    .map(|x| x.as_str().to_owned())
                    .collect(),
            })
            .collect();
        Ok((page, out.next_token().map(str::to_owned)))
    }

    async fn batch_grant(
        &self,
        list: &[(String, LfPermission)],
    ) -> Result<Vec<EntryFailure>, LfError> {
        let out = self
            .client
            .batch_grant_permissions()
            .set_entries(Some(entries(list)?))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(failures(out.failures()))
    }

    async fn batch_revoke(
        &self,
        list: &[(String, LfPermission)],
    ) -> Result<Vec<EntryFailure>, LfError> {
        let out = self
            .client
            .batch_revoke_permissions()
            .set_entries(Some(entries(list)?))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(failures(out.failures()))
    }

    async fn grant(&self, entry: &LfPermission) -> Result<(), LfError> {
        self.client
            .grant_permissions()
            .principal(principal(&entry.principal))
            .resource(to_resource(&entry.resource)?)
            .set_permissions(permissions(&entry.permissions))
            .set_permissions_with_grant_option(permissions(&entry.grantable))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn registered_locations(&self) -> Result<Vec<String>, LfError> {
        let mut all = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_resources()
                .set_next_token(token)
                .send()
                .await
                .map_err(sdk_error)?;
            all.extend(
                out.resource_info_list()
                    .iter()
                    .filter_map(|r| r.resource_arn().map(str::to_owned)),
            );
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(all),
            }
        }
    }

    async fn default_table_principals(&self) -> Result<Vec<String>, LfError> {
        let out = self
            .client
            .get_data_lake_settings()
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(out
            .data_lake_settings()
            .map(|s| {
                s.create_table_default_permissions()
                    .iter()
                    .filter_map(|p| {
                        p.principal()
                            .and_then(|x| x.data_lake_principal_identifier())
                    })
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }
}
