//! Version 1 of the REST API: one file per resource.

pub mod access_policies;
pub mod audit_events;
pub mod catalog_columns;
pub mod data_mappers;
pub mod glue_browse;
pub mod grants;
pub mod job_events;
pub mod job_objects;
pub mod jobs;
pub mod mapper_access_policy;
pub mod me;
pub mod queue;
pub mod receipts;
pub mod settings;

use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

/// Every `/v1` route; the queue's add and delete take bodies of up to `queue_body` bytes
/// (10,000 matches), every other route the server's default limit.
pub fn router_with(queue_body: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(data_mappers::router())
        .merge(mapper_access_policy::router())
        .merge(queue::router().layer(axum::extract::DefaultBodyLimit::max(queue_body)))
        .merge(settings::router())
        .merge(audit_events::router())
        .merge(catalog_columns::router())
        .merge(grants::router())
        .merge(access_policies::router())
        .merge(jobs::router())
        .merge(receipts::router())
        .merge(job_events::router())
        .merge(job_objects::router())
        .merge(me::router())
        .merge(glue_browse::router())
}
