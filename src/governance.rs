//! PII access governance: turns the declared access policies and column classifications
//! into the grants Lake Formation must hold, plans the difference with what it holds,
//! applies plans, checks enforcement preconditions and records drift.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sqlx::PgPool;

use crate::catalog::lake_formation::{self, LakeFormation, LfError, Outcome};
use crate::catalog::{Catalog, CatalogError};
use crate::db::access_policy::{
    insert_governed_tables, list_access_policies, list_governed_tables,
};
use crate::db::column_classification::get_classifications;
use crate::domain::access_policy::{Access, IAM_ALLOWED_PRINCIPALS};
use crate::domain::classification::{ColumnKind, catalog_columns, non_pii_columns};
use crate::domain::data_mapper::Location;
use crate::domain::grants::{self, Grant, LfPermission, Plan, ResolvedPolicy};

/// Why governance could not compute or apply a plan.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    #[error("Glue: {0}")]
    Catalog(#[from] CatalogError),
    #[error("Lake Formation: {0}")]
    LakeFormation(#[from] LfError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A plan with what the planner noticed on the way.
#[derive(Debug, Clone, Default)]
pub struct PlanReport {
    pub plan: Plan,
    pub warnings: Vec<String>,
}

/// A governed table whose grants Lake Formation cannot enforce as declared.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct EnforcementIssue {
    pub database: String,
    pub table: String,
    /// `iam_allowed_principals`, `unregistered_location` or `default_table_permissions`.
    pub issue: String,
    pub detail: String,
}

/// The parts governance works with.
#[derive(Clone)]
pub struct Governance<'a> {
    pub db: &'a PgPool,
    pub catalog: &'a dyn Catalog,
    pub lf: &'a dyn LakeFormation,
}

struct Declared {
    desired: BTreeSet<Grant>,
    governed: BTreeSet<(String, String)>,
    warnings: Vec<String>,
}

/// What Glue and the classifications say of the governed tables, by (database, table).
#[derive(Default)]
struct GovernedTables {
    /// Each table's non-PII columns.
    non_pii: BTreeMap<(String, String), BTreeSet<String>>,
    /// Each table's top-level columns.
    existing: BTreeMap<(String, String), BTreeSet<String>>,
}

impl Governance<'_> {
    /// Resolves every policy against Glue and the classifications.
    async fn declared(&self) -> Result<Declared, GovernanceError> {
        let mut warnings = Vec::new();
        let (mut resolved, mut governed) = self.resolve_policies(&mut warnings).await?;
        // Tables governed before stay governed: their undeclared grants are revoked.
        governed.extend(list_governed_tables(self.db).await?);
        let tables = self.read_tables(&mut governed, &mut warnings).await?;
        // Explicit column lists keep only columns the table has (granting others fails).
        for p in &mut resolved {
            p.tables.retain(|t| governed.contains(t));
            if let Access::Columns(explicit) = &p.access {
                for t in &p.tables {
                    let have = &tables.existing[t];
                    for c in explicit.columns.iter().filter(|c| !have.contains(*c)) {
                        warnings.push(format!(
                            "{}.{} has no column {c:?}; it is not granted",
                            t.0, t.1
                        ));
                    }
                }
            }
        }
        let resolved: Vec<ResolvedPolicy> = resolved
            .into_iter()
            .flat_map(|p| split_explicit(p, &tables.existing))
            .collect();
        let (desired, more) = grants::desired(&resolved, &tables.non_pii);
        warnings.extend(more);
        Ok(Declared {
            desired,
            governed,
            warnings,
        })
    }

    /// Every policy with its tables (a `*` table is each table of the database in
    /// Glue), and the tables they govern.
    async fn resolve_policies(
        &self,
        warnings: &mut Vec<String>,
    ) -> Result<(Vec<ResolvedPolicy>, BTreeSet<(String, String)>), GovernanceError> {
        let mut resolved = Vec::new();
        let mut governed = BTreeSet::new();
        for record in list_access_policies(self.db, None, None).await? {
            let p = record.policy;
            let mut tables = Vec::new();
            for t in &p.tables {
                if t.table != "*" {
                    tables.push((t.database.clone(), t.table.clone()));
                    continue;
                }
                match self.catalog.list_tables(&t.database).await {
                    Ok(names) => tables.extend(
                        names
                            .into_iter()
                            .map(|n| (t.database.clone(), n.to_ascii_lowercase())),
                    ),
                    Err(CatalogError::DatabaseNotFound(db)) => {
                        warnings.push(format!("policy {}: Glue has no database {db:?}", p.name))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            governed.extend(tables.iter().cloned());
            resolved.push(ResolvedPolicy {
                principal: p.principal,
                tables,
                access: p.access,
                permissions: p.permissions,
                grant_option: p.grant_option,
            });
        }
        Ok((resolved, governed))
    }

    /// Each governed table's columns and non-PII columns, read from Glue and the
    /// classifications; a table Glue lacks, or whose schema Lethe cannot read, leaves
    /// `governed` with a warning (its grants are left as they are).
    async fn read_tables(
        &self,
        governed: &mut BTreeSet<(String, String)>,
        warnings: &mut Vec<String>,
    ) -> Result<GovernedTables, GovernanceError> {
        let mut tables = GovernedTables::default();
        for (db, table) in governed.clone() {
            let def = match self.catalog.get_table(&db, &table).await {
                Ok(def) => def,
                Err(CatalogError::TableNotFound(_) | CatalogError::DatabaseNotFound(_)) => {
                    warnings.push(format!(
                        "{db}.{table} is not in Glue; no grants are planned for it"
                    ));
                    governed.remove(&(db, table));
                    continue;
                }
                // One unreadable schema does not stop the plan: the table is reported and
                // its grants are left as they are.
                Err(CatalogError::Invalid(why)) => {
                    warnings.push(format!(
                        "{db}.{table} has a schema Lethe cannot read ({why}); its grants are left as they are"
                    ));
                    governed.remove(&(db, table));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let columns = catalog_columns(&def);
            let stored = get_classifications(self.db, &db, &table).await?;
            let key = (db, table);
            tables
                .non_pii
                .insert(key.clone(), non_pii_columns(&columns, &stored));
            tables.existing.insert(key, top_level_columns(&def));
        }
        Ok(tables)
    }

    /// The diff between the declaration and Lake Formation, with warnings (incl. the
    /// enforcement preflight).
    pub async fn plan(&self) -> Result<PlanReport, GovernanceError> {
        Ok(self.plan_with_scope().await?.0)
    }

    async fn plan_with_scope(
        &self,
    ) -> Result<(PlanReport, BTreeSet<(String, String)>), GovernanceError> {
        let declared = self.declared().await?;
        let held = lake_formation::list_all(self.lf).await?;
        let plan = grants::plan(&declared.desired, &held, &declared.governed);
        let mut warnings = declared.warnings;
        for issue in self.enforcement_issues(&declared.governed, &held).await? {
            warnings.push(format!(
                "{}.{}: {}",
                issue.database, issue.table, issue.detail
            ));
        }
        Ok((PlanReport { plan, warnings }, declared.governed))
    }

    /// Applies `plan` (only the entries still in a fresh plan when `reviewed` is given),
    /// handing each batch's outcomes to `log` as soon as it is applied (see
    /// [`lake_formation::BatchLog`]).
    pub async fn apply<L>(
        &self,
        reviewed: Option<&Plan>,
        log: &L,
    ) -> Result<(Vec<Outcome>, Vec<Grant>, PlanReport), GovernanceError>
    where
        L: lake_formation::BatchLog<Error = sqlx::Error> + ?Sized,
    {
        let (mut report, governed) = self.plan_with_scope().await?;
        insert_governed_tables(self.db, &governed.into_iter().collect::<Vec<_>>()).await?;
        let mut stale = Vec::new();
        if let Some(reviewed) = reviewed {
            let fresh = report.plan.clone();
            let wanted_grants: BTreeSet<&Grant> = reviewed.to_grant.iter().collect();
            let wanted_revokes: BTreeSet<&Grant> =
                reviewed.to_revoke.iter().map(|h| &h.grant).collect();
            report.plan.to_grant.retain(|g| wanted_grants.contains(g));
            report
                .plan
                .to_revoke
                .retain(|h| wanted_revokes.contains(&h.grant));
            let fresh_grants: BTreeSet<&Grant> = fresh
                .to_grant
                .iter()
                .chain(fresh.to_revoke.iter().map(|h| &h.grant))
                .collect();
            stale = reviewed
                .to_grant
                .iter()
                .chain(reviewed.to_revoke.iter().map(|h| &h.grant))
                .filter(|g| !fresh_grants.contains(g))
                .cloned()
                .collect();
        }
        let outcomes =
            lake_formation::apply(self.lf, &report.plan, Duration::from_millis(200), log).await?;
        Ok((outcomes, stale, report))
    }

    /// Governed tables where column grants would not be enforced as declared.
    pub async fn enforcement(&self) -> Result<Vec<EnforcementIssue>, GovernanceError> {
        let declared = self.declared().await?;
        let held = lake_formation::list_all(self.lf).await?;
        self.enforcement_issues(&declared.governed, &held).await
    }

    async fn enforcement_issues(
        &self,
        governed: &BTreeSet<(String, String)>,
        held: &[LfPermission],
    ) -> Result<Vec<EnforcementIssue>, GovernanceError> {
        let mut issues = Vec::new();
        let locations = self.lf.registered_locations().await?;
        let defaults = self.lf.default_table_principals().await?;
        let iam_tables: BTreeSet<(String, String)> = held
            .iter()
            .filter(|p| p.principal == IAM_ALLOWED_PRINCIPALS && !p.permissions.is_empty())
            .filter_map(|p| lake_formation::resource_table(&p.resource))
            .map(|(d, t)| (d.to_ascii_lowercase(), t.to_ascii_lowercase()))
            .collect();
        for (db, table) in governed {
            let issue = |issue: &str, detail: String| EnforcementIssue {
                database: db.clone(),
                table: table.clone(),
                issue: issue.to_owned(),
                detail,
            };
            if iam_tables.contains(&(db.clone(), table.clone()))
                || iam_tables.contains(&(db.clone(), "*".to_owned()))
            {
                issues.push(issue("iam_allowed_principals", "IAM_ALLOWED_PRINCIPALS holds permissions on this table, so column grants have no effect; revoke them".to_owned()));
            }
            if let Ok(def) = self.catalog.get_table(db, table).await
                && let Some(Ok(Location::S3 { bucket, prefix })) =
                    def.location.as_deref().map(Location::parse)
            {
                let arn = format!("arn:aws:s3:::{bucket}/{prefix}");
                let registered = locations.iter().any(|l| {
                    let l = l.trim_end_matches('/');
                    arn == l || arn.starts_with(&format!("{l}/"))
                });
                if !registered {
                    issues.push(issue("unregistered_location", format!("the data location s3://{bucket}/{prefix} is not registered with Lake Formation")));
                }
            }
        }
        if defaults.iter().any(|p| p == IAM_ALLOWED_PRINCIPALS)
            && let Some((db, table)) = governed.iter().next()
        {
            issues.push(EnforcementIssue {
                database: db.clone(),
                table: table.clone(),
                issue: "default_table_permissions".to_owned(),
                detail: "the data lake settings give IAM_ALLOWED_PRINCIPALS permissions on every new table".to_owned(),
            });
        }
        Ok(issues)
    }
}

/// A policy with an explicit column list grants, per table, only the columns it has.
fn split_explicit(
    p: ResolvedPolicy,
    existing: &BTreeMap<(String, String), BTreeSet<String>>,
) -> Vec<ResolvedPolicy> {
    let Access::Columns(explicit) = &p.access else {
        return vec![p];
    };
    p.tables
        .iter()
        .map(|t| {
            let mut columns = explicit.clone();
            columns.columns.retain(|c| existing[t].contains(c));
            ResolvedPolicy {
                tables: vec![t.clone()],
                access: Access::Columns(columns),
                ..p.clone()
            }
        })
        .collect()
}

/// Plans and records the result as the latest drift. Returns the number of drifted grants,
/// or None when the check failed (the failure is recorded too).
pub async fn record_drift(gov: &Governance<'_>) -> Result<Option<usize>, sqlx::Error> {
    // Nothing declared and nothing ever governed: no AWS calls, nothing to record.
    if list_access_policies(gov.db, None, Some(1))
        .await?
        .is_empty()
        && list_governed_tables(gov.db).await?.is_empty()
    {
        return Ok(Some(0));
    }
    match gov.plan().await {
        Ok(report) => {
            let drifted = report.plan.to_grant.len() + report.plan.to_revoke.len();
            let body = serde_json::json!({
                "to_grant": report.plan.to_grant,
                "to_revoke": report.plan.to_revoke.iter().map(|h| &h.grant).collect::<Vec<_>>(),
                "warnings": report.warnings,
            });
            crate::db::access_policy::insert_drift(
                gov.db,
                &body,
                i32::try_from(drifted).unwrap_or(i32::MAX),
                None,
            )
            .await?;
            Ok(Some(drifted))
        }
        Err(e) => {
            tracing::warn!(error = %e, "grant reconciliation failed");
            crate::db::access_policy::insert_drift(
                gov.db,
                &serde_json::json!({}),
                0,
                Some(&e.to_string()),
            )
            .await?;
            Ok(None)
        }
    }
}

/// Top-level columns of the table that exist, lowercased, for validating explicit lists.
pub fn top_level_columns(def: &crate::domain::data_mapper::TableDef) -> BTreeSet<String> {
    catalog_columns(def)
        .into_iter()
        .filter(|c| c.kind != ColumnKind::NestedField)
        .map(|c| c.name)
        .collect()
}
