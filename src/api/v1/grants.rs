//! Reconciliation of Lake Formation grants with the access policies: plan, apply, the
//! latest drift, and the enforcement preflight.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::auth::{Auth, Caller, GovernanceRead, GovernanceWrite};
use crate::api::error::{ApiError, AuthProblems, Problem};
use crate::api::extract::ApiJson;
use crate::app::AppState;
use crate::catalog::lake_formation::{BatchLog, Outcome};
use crate::db::audit_event::{NewAuditEvent, insert_audit_event};
use crate::domain::grants::{Grant, HeldGrant, Plan};
use crate::governance::{EnforcementIssue, GovernanceError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(plan_grants))
        .routes(routes!(apply_grants))
        .routes(routes!(get_drift))
        .routes(routes!(get_enforcement))
}

fn unavailable(e: GovernanceError) -> ApiError {
    match e {
        GovernanceError::Db(e) => e.into(),
        other => {
            tracing::warn!(error = %other, "grant reconciliation failed");
            ApiError::Unavailable(other.to_string())
        }
    }
}

/// The normalised diff between the declaration and Lake Formation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantPlan {
    pub to_grant: Vec<Grant>,
    /// Held grants to revoke: declared no more, or made outside Lethe (drift).
    pub to_revoke: Vec<Grant>,
    #[serde(default)]
    pub unchanged: Vec<Grant>,
    /// What would keep the grants from working as declared, and skipped declarations.
    #[serde(default)]
    pub warnings: Vec<String>,
}

fn to_view(plan: &Plan, warnings: Vec<String>) -> GrantPlan {
    GrantPlan {
        to_grant: plan.to_grant.clone(),
        to_revoke: plan.to_revoke.iter().map(|h| h.grant.clone()).collect(),
        unchanged: plan.unchanged.clone(),
        warnings,
    }
}

/// Compare the declared grants with Lake Formation's. Changes nothing.
#[utoipa::path(post, path = "/v1/access_policies/plan", tag = "governance",
    operation_id = "plan_grants", security(("bearer" = [])),
    responses(
        (status = 200, description = "The plan", body = GrantPlan),
        AuthProblems,
        (status = 503, description = "Glue or Lake Formation unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn plan_grants(
    State(state): State<AppState>,
    _auth: Auth<GovernanceRead>,
) -> Result<axum::Json<GrantPlan>, ApiError> {
    let report = state.governance().plan().await.map_err(unavailable)?;
    Ok(axum::Json(to_view(&report.plan, report.warnings)))
}

/// What to apply: `{}` recomputes the plan and applies all of it; `{"plan": …}` applies
/// only the entries of a reviewed plan that a fresh plan still contains.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    pub plan: Option<GrantPlan>,
}

/// The result of one grant or revoke.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplyOutcome {
    /// `grant` or `revoke`.
    pub action: String,
    pub grant: Grant,
    /// Lake Formation's error code and message; null when done.
    pub error: Option<String>,
}

/// What apply did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplyResponse {
    pub outcomes: Vec<ApplyOutcome>,
    /// Entries of the reviewed plan that a fresh plan no longer has (not applied).
    pub skipped_stale: Vec<Grant>,
    pub failed: usize,
    pub warnings: Vec<String>,
}

/// Make Lake Formation's grants equal the declaration: revokes, then grants.
#[utoipa::path(post, path = "/v1/access_policies/apply", tag = "governance",
    operation_id = "apply_grants", security(("bearer" = [])), request_body = ApplyRequest,
    responses(
        (status = 200, description = "Applied; see each outcome", body = ApplyResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        AuthProblems,
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid plan", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Glue or Lake Formation unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn apply_grants(
    State(state): State<AppState>,
    auth: Auth<GovernanceWrite>,
    ApiJson(body): ApiJson<ApplyRequest>,
) -> Result<axum::Json<ApplyResponse>, ApiError> {
    let reviewed = body.plan.map(GrantPlan::into_plan);
    // Lake Formation is outside our transaction: the intent is recorded (and committed)
    // before any grant changes, each batch's outcomes as soon as it is applied.
    let intent = json!({
        "reviewed_plan": reviewed.is_some(),
        "to_grant": reviewed.as_ref().map(|p| p.to_grant.len()),
        "to_revoke": reviewed.as_ref().map(|p| p.to_revoke.len()),
    });
    audit_apply(&state, &auth.caller, "started", intent).await?;
    let log = AuditBatches {
        db: &state.db,
        caller: &auth.caller,
    };
    let applied = state.governance().apply(reviewed.as_ref(), &log).await;
    let (outcomes, stale, report) = match applied.map_err(unavailable) {
        Ok(applied) => applied,
        Err(e) => {
            // The outcome of the attempt: what was reached before it stopped is in Lake
            // Formation, so the failure is recorded too.
            let error = json!({"error": e.to_string()});
            audit_apply(&state, &auth.caller, "failed", error).await?;
            return Err(e);
        }
    };
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    let applied = outcomes.len() - failed;
    let done = json!({"applied": applied, "failed": failed, "skipped_stale": stale});
    audit_apply(&state, &auth.caller, "finished", done).await?;
    tracing::info!(applied, failed, "grants applied");
    Ok(axum::Json(ApplyResponse {
        outcomes: outcomes.into_iter().map(ApplyOutcome::from).collect(),
        skipped_stale: stale,
        failed,
        warnings: report.warnings,
    }))
}

impl GrantPlan {
    /// The reviewed plan as the domain's: its revokes as held grants.
    fn into_plan(self) -> Plan {
        Plan {
            to_grant: self.to_grant,
            to_revoke: self
                .to_revoke
                .into_iter()
                .map(|grant| HeldGrant {
                    resource: grant.resource(),
                    grant,
                })
                .collect(),
            unchanged: vec![],
        }
    }
}

impl From<Outcome> for ApplyOutcome {
    fn from(o: Outcome) -> Self {
        ApplyOutcome {
            action: o.action.to_owned(),
            grant: o.grant,
            error: o.error.map(|e| e.to_string()),
        }
    }
}

/// Records a step of an apply (`lake_formation.apply_<step>`) in the audit trail.
async fn audit_apply(
    state: &AppState,
    caller: &Caller,
    step: &str,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    let action = format!("lake_formation.apply_{step}");
    caller
        .audit(&state.db, &action, "lake_formation", None, details)
        .await
}

/// The audit trail of an apply, batch by batch: each batch's grants and revokes are
/// recorded (in their own transaction) as soon as Lake Formation answered for them, so an
/// apply cut short by the request timeout leaves on record what it had changed.
struct AuditBatches<'a> {
    db: &'a sqlx::PgPool,
    caller: &'a Caller,
}

#[async_trait::async_trait]
impl BatchLog for AuditBatches<'_> {
    type Error = sqlx::Error;
    async fn record(&self, outcomes: &[Outcome]) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        for o in outcomes {
            let target = format!(
                "{} {}.{}",
                o.grant.principal, o.grant.database, o.grant.table
            );
            let action = format!("lake_formation.{}", o.action);
            let event = NewAuditEvent {
                actor: &self.caller.principal.subject,
                action: &action,
                target_type: "lake_formation_grant",
                target_id: Some(&target),
                request_id: self.caller.request_id.as_deref(),
                client_request_id: self.caller.client_request_id.as_deref(),
                details: json!({"grant": o.grant, "error": o.error.as_ref().map(ToString::to_string)}),
            };
            insert_audit_event(&mut *tx, event).await?;
        }
        tx.commit().await
    }
}

/// The latest drift check.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftResponse {
    pub checked_at: DateTime<Utc>,
    /// Grants to add plus grants to revoke.
    pub drifted_grants: i32,
    /// The plan found then: `to_grant`, `to_revoke`, `warnings`.
    #[schema(value_type = Object)]
    pub drift: serde_json::Value,
    /// Why the check failed, when it did.
    pub error: Option<String>,
}

/// The latest reconciliation result (the reconciler runs every
/// `LETHE_GRANT_RECONCILE_INTERVAL_SECS`).
#[utoipa::path(get, path = "/v1/access_policies/drift", tag = "governance",
    operation_id = "get_grant_drift", security(("bearer" = [])),
    responses(
        (status = 200, description = "The latest check", body = DriftResponse),
        AuthProblems,
        (status = 404, description = "No check has run yet", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_drift(
    State(state): State<AppState>,
    _auth: Auth<GovernanceRead>,
) -> Result<axum::Json<DriftResponse>, ApiError> {
    let record = crate::db::access_policy::latest_drift(&state.db)
        .await?
        .ok_or_else(|| ApiError::NotFound("no drift check has run yet".to_owned()))?;
    Ok(axum::Json(DriftResponse {
        checked_at: record.created_at,
        drifted_grants: record.drifted_grants,
        drift: record.drift,
        error: record.error,
    }))
}

/// Governed tables where declared column grants would not be enforced.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnforcementResponse {
    pub issues: Vec<EnforcementIssue>,
}

/// Preflight: `IAM_ALLOWED_PRINCIPALS` still holding permissions on governed tables,
/// unregistered data locations, default permissions for new tables.
#[utoipa::path(get, path = "/v1/access_policies/enforcement", tag = "governance",
    operation_id = "get_grant_enforcement", security(("bearer" = [])),
    responses(
        (status = 200, description = "The issues (empty when enforcement is sound)", body = EnforcementResponse),
        AuthProblems,
        (status = 503, description = "Glue or Lake Formation unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_enforcement(
    State(state): State<AppState>,
    _auth: Auth<GovernanceRead>,
) -> Result<axum::Json<EnforcementResponse>, ApiError> {
    let issues = state
        .governance()
        .enforcement()
        .await
        .map_err(unavailable)?;
    Ok(axum::Json(EnforcementResponse { issues }))
}
