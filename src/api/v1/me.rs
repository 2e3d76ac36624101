//! `GET /v1/me`: who the bearer token says the caller is, and what its roles allow (the
//! console shows only what these allow; the API enforces them on every call anyway).

use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::auth::Authenticated;
use crate::api::error::{ApiError, Problem};
use crate::app::AppState;
use crate::auth::{Action, allows};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_me))
}

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The token's `sub`.
    pub subject: String,
    /// The Lethe roles the token carries (others are ignored).
    pub roles: Vec<String>,
    /// What those roles allow, e.g. `queue_add`, `job_write`.
    pub actions: Vec<String>,
}

/// Who is calling, with which roles, allowed to do what. Any valid token, even one with
/// no Lethe role (then `roles` and `actions` are empty).
#[utoipa::path(get, path = "/v1/me", tag = "auth", operation_id = "get_me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_me(Authenticated(principal): Authenticated) -> Result<axum::Json<Me>, ApiError> {
    let actions = Action::ALL
        .into_iter()
        .filter(|a| principal.roles.iter().any(|r| allows(*r, *a)))
        .map(|a| a.as_str().to_owned())
        .collect();
    Ok(axum::Json(Me {
        roles: principal
            .roles
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
        subject: principal.subject,
        actions,
    }))
}
