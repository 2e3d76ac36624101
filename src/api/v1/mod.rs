//! Version 1 of the REST API: one file per resource.

pub mod audit_events;
pub mod data_mappers;
pub mod mapper_access_policy;
pub mod queue;
pub mod settings;

use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(data_mappers::router())
        .merge(mapper_access_policy::router())
        .merge(queue::router())
        .merge(settings::router())
        .merge(audit_events::router())
}
