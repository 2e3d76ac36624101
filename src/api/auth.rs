//! Bearer-token authentication and role-based authorisation over HTTP (tokens, roles
//! and the role matrix are `crate::auth`). Handlers declare what they need with
//! the [`Auth<P>`] extractor, which runs before the body is read, so an unauthorised
//! caller learns nothing about the request's validity.

use std::marker::PhantomData;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use serde_json::Value;
use sqlx::PgExecutor;

use super::error::ApiError;
pub use crate::auth::{
    Action, Authenticator, Principal, Role, Unauthenticated, allows, mint_hs256, read_jwks,
};
use crate::db::audit_event::{NewAuditEvent, insert_audit_event};

/// The authenticated caller of one request, with its request id for the audit trail.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The server's id of this request.
    pub request_id: Option<String>,
    /// The id the client sent, recorded beside the server's.
    pub client_request_id: Option<String>,
}

impl Caller {
    /// The caller as the audit trail names it (for changes audited below the API).
    pub fn actor(&self) -> crate::db::audit_event::Actor<'_> {
        crate::db::audit_event::Actor {
            subject: &self.principal.subject,
            request_id: self.request_id.as_deref(),
            client_request_id: self.client_request_id.as_deref(),
        }
    }

    /// Records an audit event in the caller's transaction. Never pass match ids here.
    pub async fn audit(
        &self,
        db: impl PgExecutor<'_>,
        action: &str,
        target_type: &str,
        target_id: Option<&str>,
        details: Value,
    ) -> Result<(), ApiError> {
        insert_audit_event(
            db,
            NewAuditEvent {
                actor: &self.principal.subject,
                action,
                target_type,
                target_id,
                request_id: self.request_id.as_deref(),
                client_request_id: self.client_request_id.as_deref(),
                details,
            },
        )
        .await?;
        Ok(())
    }
}

/// A policy marker for [`Auth`].
pub trait Policy {
    const ACTION: Action;
}

macro_rules! policies {
    ($($name:ident),*) => {$(
        #[doc = concat!("Requires [`Action::", stringify!($name), "`].")]
        pub struct $name;
        impl Policy for $name {
            const ACTION: Action = Action::$name;
        }
    )*};
}
policies!(
    DataMapperRead,
    DataMapperWrite,
    QueueRead,
    QueueAdd,
    QueueDelete,
    SettingsRead,
    SettingsWrite,
    AuditRead,
    AuditChainRead,
    GovernanceRead,
    GovernanceWrite,
    JobRead,
    JobWrite,
    CatalogRead
);

/// Extractor: any caller with a valid token, whatever its roles (`GET /v1/me`).
pub struct Authenticated(pub Principal);

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    std::sync::Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authenticator = std::sync::Arc::<Authenticator>::from_ref(state);
        Ok(Authenticated(bearer(parts, &authenticator)?))
    }
}

/// The verified principal of the request's bearer token.
fn bearer(parts: &Parts, authenticator: &Authenticator) -> Result<Principal, ApiError> {
    let token = bearer_token(&parts.headers)?;
    authenticator
        .verify(token)
        .map_err(|e| ApiError::Unauthorized(e.0))
}

/// The token of an `Authorization: Bearer` header (401 without one).
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing bearer token".to_owned()))?;
    header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| ApiError::Unauthorized("expected Authorization: Bearer <token>".to_owned()))
}

/// Extractor: an authenticated caller allowed to perform `P::ACTION`.
pub struct Auth<P> {
    pub caller: Caller,
    _policy: PhantomData<P>,
}

impl<P, S> FromRequestParts<S> for Auth<P>
where
    P: Policy,
    S: Send + Sync,
    std::sync::Arc<Authenticator>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let authenticator = std::sync::Arc::<Authenticator>::from_ref(state);
        let principal = bearer(parts, &authenticator)?;
        if !principal.roles.iter().any(|r| allows(*r, P::ACTION)) {
            return Err(ApiError::Forbidden);
        }
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let client_request_id = parts
            .extensions
            .get::<crate::api::ClientRequestId>()
            .map(|c| c.0.clone());
        Ok(Auth {
            caller: Caller {
                principal,
                request_id,
                client_request_id,
            },
            _policy: PhantomData,
        })
    }
}
