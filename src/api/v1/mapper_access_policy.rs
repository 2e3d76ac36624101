//! `GET /v1/data_mappers/{id}/access_policy`: the IAM documents a mapper's jobs need.

use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::data_mappers::{catalog_error, not_found, path_id};
use crate::api::auth::{Auth, DataMapperRead};
use crate::api::error::{ApiError, AuthProblems, Problem};
use crate::app::AppState;
use crate::db::data_mapper::get_data_mapper;
use crate::domain::data_mapper::{CatalogRef, GlueTable, Location, PathTable};
use crate::domain::iam_policy::{
    PolicyTarget, bucket_policy, identity_policy, lethe_policy, trust_policy,
};

/// The account of an IAM ARN (`arn:aws:iam::123456789012:role/x`).
fn account_of(arn: &str) -> Option<&str> {
    let account = arn.split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_mapper_access_policy))
}

/// The policies a mapper needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct MapperAccessPolicy {
    pub data_mapper_id: String,
    /// The table's location the policies are scoped to.
    pub location: String,
    /// Identity policy of whoever makes the mapper's S3 calls: Lethe's role, or `role_arn`
    /// (then without Glue, which Lethe reads as itself).
    #[schema(value_type = Object)]
    pub iam_policy: serde_json::Value,
    /// With `role_arn`: the identity policy Lethe's own principal needs (assume the role,
    /// read the Glue table); null without one.
    #[schema(value_type = Option<Object>)]
    pub lethe_policy: Option<serde_json::Value>,
    /// With `role_arn`: the role's trust policy, letting Lethe's principal assume it (with
    /// the configured external id); null without one.
    #[schema(value_type = Option<Object>)]
    pub trust_policy: Option<serde_json::Value>,
    /// Bucket policy granting `role_arn` the same S3 access; null without `role_arn`.
    #[schema(value_type = Option<Object>)]
    pub bucket_policy: Option<serde_json::Value>,
}

/// The IAM identity policy (and bucket policy for `role_arn`) that a job on this mapper needs.
#[utoipa::path(get, path = "/v1/data_mappers/{data_mapper_id}/access_policy", tag = "data_mappers",
    operation_id = "get_data_mapper_access_policy", security(("bearer" = [])),
    params(("data_mapper_id" = String, Path)),
    responses(
        (status = 200, description = "The policies", body = MapperAccessPolicy),
        AuthProblems,
        (status = 404, description = "No such mapper", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The table is not on S3", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The Glue table cannot be read", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Catalog unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_mapper_access_policy(
    State(state): State<AppState>,
    _auth: Auth<DataMapperRead>,
    Path(id): Path<String>,
) -> Result<axum::Json<MapperAccessPolicy>, ApiError> {
    let id = path_id(&id)?;
    let mapper = get_data_mapper(&state.db, id.as_str())
        .await
        .map_err(not_found(id.as_str()))?
        .mapper;
    let (location, glue_table) = match &mapper.catalog {
        CatalogRef::Glue(GlueTable { database, table }) => {
            let def = state
                .catalog
                .get_table(database, table)
                .await
                .map_err(catalog_error)?;
            let location = def
                .location
                .ok_or_else(|| ApiError::Conflict("the Glue table has no location".to_owned()))?;
            (location, Some((database.as_str(), table.as_str())))
        }
        CatalogRef::Path(PathTable { location, .. }) => (location.clone(), None),
    };
    let Ok(Location::S3 { bucket, prefix }) = Location::parse(&location) else {
        return Err(ApiError::Conflict(
            "the mapper's table is not on S3, so it needs no AWS access policy".to_owned(),
        ));
    };
    let aws = &state.config.aws;
    // Lethe's own principal: named in trust policies, and its account owns the catalog.
    let lethe = match (&aws.principal_arn, &state.stores.roles) {
        (Some(arn), _) => Some(arn.clone()),
        (None, Some(roles)) => roles.principal().await.ok(),
        (None, None) => None,
    };
    let account = lethe.as_deref().and_then(account_of);
    let target = PolicyTarget {
        bucket: &bucket,
        prefix: &prefix,
        glue_table,
        role_arn: mapper.role_arn.as_deref(),
        region: aws.region.as_deref(),
        account,
    };
    let trust_policy = match (target.role_arn, &lethe) {
        (None, _) => None,
        (Some(_), Some(lethe)) => {
            let external_id = match &state.stores.roles {
                Some(roles) => roles.external_id(),
                None => aws.role_external_id.as_deref(),
            };
            Some(trust_policy(lethe, external_id))
        }
        (Some(_), None) => {
            return Err(ApiError::Unavailable(
                "Lethe cannot tell its own principal (STS GetCallerIdentity failed, or this server has no AWS clients); set LETHE_AWS_PRINCIPAL_ARN"
                    .to_owned(),
            ));
        }
    };
    Ok(axum::Json(MapperAccessPolicy {
        data_mapper_id: mapper.id.to_string(),
        iam_policy: identity_policy(&target),
        lethe_policy: lethe_policy(&target),
        trust_policy,
        bucket_policy: bucket_policy(&target),
        location,
    }))
}
