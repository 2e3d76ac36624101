//! Lake Formation grants as plain data, their normalisation, and the plan: the diff
//! between the declared grants and the ones Lake Formation holds.
//!
//! Normal form: one [`Grant`] per (principal, table, target, grant option) with a set of
//! permissions. `SELECT` on a `Table` resource and `SELECT` on `TableWithColumns` +
//! `ColumnWildcard {}` are the same grant (`all_columns`); column order never matters.
//! Only `SELECT` and `DESCRIBE` are governed; other permissions are left alone, and so is
//! `IAM_ALLOWED_PRINCIPALS` (reported by the enforcement preflight instead).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::access_policy::IAM_ALLOWED_PRINCIPALS;

/// A Lake Formation resource, as the API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LfResource {
    Table {
        database: String,
        name: String,
    },
    TableWildcard {
        database: String,
    },
    TableWithColumns {
        database: String,
        name: String,
        columns: LfColumns,
    },
    /// Any other resource kind (database, data location, …): not governed here.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LfColumns {
    Names(Vec<String>),
    Wildcard { excluded: Vec<String> },
}

/// One `PrincipalResourcePermissions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LfPermission {
    pub principal: String,
    pub resource: LfResource,
    pub permissions: Vec<String>,
    pub grantable: Vec<String>,
}

/// What a grant covers on its table.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// The table itself (DESCRIBE).
    Table,
    /// Every table of the database (`TableWildcard`); only seen as drift.
    AllTables,
    /// `ColumnWildcard {}`.
    AllColumns,
    /// An explicit column allow-list.
    Columns { columns: BTreeSet<String> },
    /// `ColumnWildcard` with exclusions; never declared, only seen as drift.
    AllColumnsExcept { excluded: BTreeSet<String> },
}

/// A normalised grant.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub principal: String,
    pub database: String,
    /// `*` for `all_tables`.
    pub table: String,
    pub target: Target,
    pub permissions: BTreeSet<String>,
    pub grant_option: bool,
}

impl Grant {
    /// The resource to grant this with.
    pub fn resource(&self) -> LfResource {
        let (database, name) = (self.database.clone(), self.table.clone());
        match &self.target {
            Target::Table => LfResource::Table { database, name },
            Target::AllTables => LfResource::TableWildcard { database },
            Target::AllColumns => LfResource::TableWithColumns {
                database,
                name,
                columns: LfColumns::Wildcard { excluded: vec![] },
            },
            Target::Columns { columns } => LfResource::TableWithColumns {
                database,
                name,
                columns: LfColumns::Names(columns.iter().cloned().collect()),
            },
            Target::AllColumnsExcept { excluded } => LfResource::TableWithColumns {
                database,
                name,
                columns: LfColumns::Wildcard {
                    excluded: excluded.iter().cloned().collect(),
                },
            },
        }
    }

    /// The permission entry that grants (or revokes) exactly this on `resource`.
    pub fn to_lf(&self, resource: LfResource) -> LfPermission {
        let permissions: Vec<String> = self.permissions.iter().cloned().collect();
        LfPermission {
            principal: self.principal.clone(),
            resource,
            grantable: if self.grant_option {
                permissions.clone()
            } else {
                vec![]
            },
            permissions,
        }
    }
}

const GOVERNED: [&str; 2] = ["SELECT", "DESCRIBE"];

/// Splits one Lake Formation entry into normalised grants (governed permissions only).
pub fn normalize(raw: &LfPermission) -> Vec<Grant> {
    let lower = |s: &str| s.to_ascii_lowercase();
    let (database, table, select_target, other_target) = match &raw.resource {
        LfResource::Table { database, name } => (
            lower(database),
            lower(name),
            Target::AllColumns,
            Target::Table,
        ),
        LfResource::TableWildcard { database } => (
            lower(database),
            "*".to_owned(),
            Target::AllTables,
            Target::AllTables,
        ),
        LfResource::TableWithColumns {
            database,
            name,
            columns,
        } => {
            let target = match columns {
                LfColumns::Names(names) => Target::Columns {
                    columns: names.iter().map(|c| lower(c)).collect(),
                },
                LfColumns::Wildcard { excluded } if excluded.is_empty() => Target::AllColumns,
                LfColumns::Wildcard { excluded } => Target::AllColumnsExcept {
                    excluded: excluded.iter().map(|c| lower(c)).collect(),
                },
            };
            (lower(database), lower(name), target.clone(), target)
        }
        LfResource::Other => return vec![],
    };
    let mut groups: BTreeMap<(Target, bool), BTreeSet<String>> = BTreeMap::new();
    for p in raw
        .permissions
        .iter()
        .filter(|p| GOVERNED.contains(&p.as_str()))
    {
        let target = if p == "SELECT" {
            select_target.clone()
        } else {
            other_target.clone()
        };
        let option = raw.grantable.contains(p);
        groups
            .entry((target, option))
            .or_default()
            .insert(p.clone());
    }
    groups
        .into_iter()
        .map(|((target, grant_option), permissions)| Grant {
            principal: raw.principal.clone(),
            database: database.clone(),
            table: table.clone(),
            target,
            permissions,
            grant_option,
        })
        .collect()
}

/// A grant Lake Formation holds, with the resource it is held on (revokes name it exactly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldGrant {
    pub grant: Grant,
    pub resource: LfResource,
}

/// The diff between declared and held grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub to_grant: Vec<Grant>,
    pub to_revoke: Vec<HeldGrant>,
    pub unchanged: Vec<Grant>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.to_grant.is_empty() && self.to_revoke.is_empty()
    }
}

/// Plans the changes that make the governed tables' grants equal `desired`. `governed`
/// are the (database, table) pairs under management.
pub fn plan(
    desired: &BTreeSet<Grant>,
    held: &[LfPermission],
    governed: &BTreeSet<(String, String)>,
) -> Plan {
    let governed_dbs: BTreeSet<&str> = governed.iter().map(|(db, _)| db.as_str()).collect();
    let mut plan = Plan::default();
    let mut matched: BTreeSet<&Grant> = BTreeSet::new();
    for raw in held
        .iter()
        .filter(|r| r.principal != IAM_ALLOWED_PRINCIPALS)
    {
        for grant in normalize(raw) {
            let in_scope = if grant.table == "*" {
                governed_dbs.contains(grant.database.as_str())
            } else {
                governed.contains(&(grant.database.clone(), grant.table.clone()))
            };
            if !in_scope {
                continue;
            }
            match desired.get(&grant) {
                Some(d) if matched.insert(d) => plan.unchanged.push(grant),
                _ => plan.to_revoke.push(HeldGrant {
                    grant,
                    resource: raw.resource.clone(),
                }),
            }
        }
    }
    plan.to_grant = desired
        .iter()
        .filter(|d| !matched.contains(d))
        .cloned()
        .collect();
    plan
}

/// A policy with its tables resolved to concrete (database, table) pairs.
#[derive(Debug, Clone)]
pub struct ResolvedPolicy {
    pub principal: String,
    pub tables: Vec<(String, String)>,
    pub access: super::access_policy::Access,
    pub permissions: Vec<String>,
    pub grant_option: bool,
}

/// The grants the policies declare. `non_pii` gives each table's non-PII columns (see
/// `classification::non_pii_columns`). Several policies for one principal and table merge:
/// `all_columns` absorbs column lists, column lists union. A table with no non-PII
/// column yields no SELECT grant for `non_pii_columns` (a warning says so).
pub fn desired(
    policies: &[ResolvedPolicy],
    non_pii: &BTreeMap<(String, String), BTreeSet<String>>,
) -> (BTreeSet<Grant>, Vec<String>) {
    use super::access_policy::{Access, AccessLevel};
    type Key = (String, String, String, bool);
    let mut select: BTreeMap<Key, Option<BTreeSet<String>>> = BTreeMap::new();
    let mut describe: BTreeSet<Key> = BTreeSet::new();
    let mut warnings = Vec::new();
    for p in policies {
        for (db, table) in &p.tables {
            let key = (
                p.principal.clone(),
                db.clone(),
                table.clone(),
                p.grant_option,
            );
            if p.permissions.iter().any(|x| x == "DESCRIBE") {
                describe.insert(key.clone());
            }
            if !p.permissions.iter().any(|x| x == "SELECT") {
                continue;
            }
            let columns = match &p.access {
                Access::Level(AccessLevel::AllColumns) => None,
                Access::Level(AccessLevel::NonPiiColumns) => Some(
                    non_pii
                        .get(&(db.clone(), table.clone()))
                        .cloned()
                        .unwrap_or_default(),
                ),
                Access::Columns(c) => Some(c.columns.iter().cloned().collect()),
            };
            let entry = select.entry(key).or_insert_with(|| Some(BTreeSet::new()));
            match (entry.as_mut(), columns) {
                (_, None) => *entry = None,
                (Some(acc), Some(cols)) => acc.extend(cols),
                (None, Some(_)) => {}
            }
        }
    }
    let mut grants = BTreeSet::new();
    for ((principal, database, table, grant_option), columns) in select {
        let target = match columns {
            None => Target::AllColumns,
            Some(c) if c.is_empty() => {
                warnings.push(format!(
                    "{database}.{table} has no non_pii column, so {principal} gets no SELECT on it"
                ));
                continue;
            }
            Some(columns) => Target::Columns { columns },
        };
        grants.insert(Grant {
            principal,
            database,
            table,
            target,
            permissions: BTreeSet::from(["SELECT".to_owned()]),
            grant_option,
        });
    }
    for (principal, database, table, grant_option) in describe {
        grants.insert(Grant {
            principal,
            database,
            table,
            target: Target::Table,
            permissions: BTreeSet::from(["DESCRIBE".to_owned()]),
            grant_option,
        });
    }
    (grants, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    fn cols(c: &[&str]) -> BTreeSet<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    fn grant(principal: &str, target: Target, p: &[&str]) -> Grant {
        Grant {
            principal: principal.into(),
            database: "lake".into(),
            table: "customers".into(),
            target,
            permissions: perms(p).into_iter().collect(),
            grant_option: false,
        }
    }

    fn governed() -> BTreeSet<(String, String)> {
        BTreeSet::from([("lake".to_owned(), "customers".to_owned())])
    }

    #[test]
    fn select_on_a_table_equals_select_on_the_column_wildcard() {
        let on_table = LfPermission {
            principal: "p".into(),
            resource: LfResource::Table {
                database: "Lake".into(),
                name: "Customers".into(),
            },
            permissions: perms(&["SELECT", "DESCRIBE", "ALTER"]),
            grantable: vec![],
        };
        let on_wildcard = LfPermission {
            principal: "p".into(),
            resource: LfResource::TableWithColumns {
                database: "lake".into(),
                name: "customers".into(),
                columns: LfColumns::Wildcard { excluded: vec![] },
            },
            permissions: perms(&["SELECT"]),
            grantable: vec![],
        };
        assert_eq!(
            normalize(&on_table),
            [
                grant("p", Target::Table, &["DESCRIBE"]),
                grant("p", Target::AllColumns, &["SELECT"])
            ]
        );
        assert_eq!(
            normalize(&on_wildcard),
            [grant("p", Target::AllColumns, &["SELECT"])]
        );
    }

    #[test]
    fn column_order_and_case_do_not_matter_and_grant_options_split() {
        let raw = LfPermission {
            principal: "p".into(),
            resource: LfResource::TableWithColumns {
                database: "lake".into(),
                name: "customers".into(),
                columns: LfColumns::Names(perms(&["Country", "customer_id"])),
            },
            permissions: perms(&["SELECT"]),
            grantable: perms(&["SELECT"]),
        };
        let mut expected = grant(
            "p",
            Target::Columns {
                columns: cols(&["customer_id", "country"]),
            },
            &["SELECT"],
        );
        expected.grant_option = true;
        assert_eq!(normalize(&raw), [expected]);
    }

    #[test]
    fn plan_keeps_matches_grants_missing_and_revokes_drift_in_scope_only() {
        let analyst = grant(
            "analyst",
            Target::Columns {
                columns: cols(&["a", "b"]),
            },
            &["SELECT"],
        );
        let admin = grant("admin", Target::AllColumns, &["SELECT"]);
        let desired = BTreeSet::from([analyst.clone(), admin.clone()]);
        let held = vec![
            analyst.to_lf(analyst.resource()),
            // Granted outside Lethe: drift.
            grant("intruder", Target::AllColumns, &["SELECT"]).to_lf(LfResource::Table {
                database: "lake".into(),
                name: "customers".into(),
            }),
            // IAM_ALLOWED_PRINCIPALS and ungoverned tables are out of scope.
            LfPermission {
                principal: IAM_ALLOWED_PRINCIPALS.into(),
                resource: LfResource::Table {
                    database: "lake".into(),
                    name: "customers".into(),
                },
                permissions: perms(&["ALL"]),
                grantable: vec![],
            },
            LfPermission {
                principal: "analyst".into(),
                resource: LfResource::Table {
                    database: "lake".into(),
                    name: "other".into(),
                },
                permissions: perms(&["SELECT"]),
                grantable: vec![],
            },
        ];
        let plan = plan(&desired, &held, &governed());
        assert_eq!(plan.unchanged, [analyst]);
        assert_eq!(plan.to_grant, [admin]);
        assert_eq!(plan.to_revoke.len(), 1);
        assert_eq!(plan.to_revoke[0].grant.principal, "intruder");
        assert_eq!(
            plan.to_revoke[0].resource,
            LfResource::Table {
                database: "lake".into(),
                name: "customers".into()
            }
        );
    }

    #[test]
    fn a_changed_column_set_is_a_revoke_and_a_grant() {
        let old = grant(
            "analyst",
            Target::Columns {
                columns: cols(&["a"]),
            },
            &["SELECT"],
        );
        let new = grant(
            "analyst",
            Target::Columns {
                columns: cols(&["a", "b"]),
            },
            &["SELECT"],
        );
        let plan = plan(
            &BTreeSet::from([new.clone()]),
            &[old.to_lf(old.resource())],
            &governed(),
        );
        assert_eq!(plan.to_grant, [new]);
        assert_eq!(plan.to_revoke[0].grant, old);
        assert!(plan.unchanged.is_empty());
    }

    #[test]
    fn desired_grants_merge_policies_and_never_grant_zero_columns() {
        use crate::domain::access_policy::{Access, AccessLevel, ExplicitColumns};
        let policy = |principal: &str, access: Access, permissions: &[&str]| ResolvedPolicy {
            principal: principal.into(),
            tables: vec![
                ("lake".into(), "customers".into()),
                ("lake".into(), "empty".into()),
            ],
            access,
            permissions: perms(permissions),
            grant_option: false,
        };
        let non_pii = BTreeMap::from([
            (
                ("lake".to_owned(), "customers".to_owned()),
                cols(&["a", "b"]),
            ),
            (("lake".to_owned(), "empty".to_owned()), cols(&[])),
        ]);
        let (grants, warnings) = desired(
            &[
                policy(
                    "analyst",
                    Access::Level(AccessLevel::NonPiiColumns),
                    &["SELECT", "DESCRIBE"],
                ),
                policy(
                    "analyst",
                    Access::Columns(ExplicitColumns {
                        columns: vec!["c".into()],
                    }),
                    &["SELECT"],
                ),
                policy(
                    "admin",
                    Access::Level(AccessLevel::NonPiiColumns),
                    &["SELECT"],
                ),
                policy("admin", Access::Level(AccessLevel::AllColumns), &["SELECT"]),
            ],
            &non_pii,
        );
        let customers: Vec<&Grant> = grants.iter().filter(|g| g.table == "customers").collect();
        assert_eq!(
            customers,
            [
                &grant("admin", Target::AllColumns, &["SELECT"]),
                &grant("analyst", Target::Table, &["DESCRIBE"]),
                &grant(
                    "analyst",
                    Target::Columns {
                        columns: cols(&["a", "b", "c"])
                    },
                    &["SELECT"]
                ),
            ]
        );
        let empty: Vec<&Grant> = grants.iter().filter(|g| g.table == "empty").collect();
        assert_eq!(empty.len(), 3, "{empty:?}"); // admin all, analyst describe + explicit c
        assert_eq!(warnings.len(), 0);
        let (_, warnings) = desired(
            &[policy(
                "analyst",
                Access::Level(AccessLevel::NonPiiColumns),
                &["SELECT"],
            )],
            &non_pii,
        );
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn table_wildcard_grants_in_a_governed_database_are_drift() {
        let raw = LfPermission {
            principal: "p".into(),
            resource: LfResource::TableWildcard {
                database: "lake".into(),
            },
            permissions: perms(&["SELECT"]),
            grantable: vec![],
        };
        let plan = plan(&BTreeSet::new(), &[raw], &governed());
        assert_eq!(plan.to_revoke.len(), 1);
        assert_eq!(plan.to_revoke[0].grant.target, Target::AllTables);
    }
}
