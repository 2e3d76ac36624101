//! Access policies: the declared state of Lake Formation column grants. A policy gives a
//! principal some permissions on some tables, over all columns, the non-PII columns, or
//! an explicit column list.

use serde::{Deserialize, Serialize};

use super::validation::{Errors, FieldError};

/// Permissions a policy may grant.
pub const PERMISSIONS: [&str; 2] = ["SELECT", "DESCRIBE"];
/// The Lake Formation principal that stands for plain IAM access control.
pub const IAM_ALLOWED_PRINCIPALS: &str = "IAM_ALLOWED_PRINCIPALS";

/// A table, or every table of a database (`"table": "*"`).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct TableRef {
    pub database: String,
    /// A table name, or `*` for every table of the database.
    pub table: String,
}

/// Which columns the principal may read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Access {
    /// `all_columns` or `non_pii_columns`.
    Level(AccessLevel),
    /// An explicit list of top-level columns.
    Columns(ExplicitColumns),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessLevel {
    AllColumns,
    NonPiiColumns,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplicitColumns {
    pub columns: Vec<String>,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    pub name: String,
    pub principal: String,
    pub tables: Vec<TableRef>,
    pub access: Access,
    pub permissions: Vec<String>,
    pub grant_option: bool,
}

impl AccessPolicy {
    /// Checks everything that needs no catalog; lowercases table and column names.
    pub fn validate(mut self) -> Result<Self, Vec<FieldError>> {
        let mut errors = Errors::new();
        if super::data_mapper::DataMapperId::parse(&self.name).is_err() {
            errors.add("name", "must be 1-63 characters of a-z, 0-9, '-' or '_'");
        }
        if !is_principal(&self.principal) {
            errors.add(
                "principal",
                "must be an IAM role or user ARN, or a 12-digit account id",
            );
        }
        if self.tables.is_empty() {
            errors.add("tables", "must name at least one table");
        }
        for (i, t) in self.tables.iter_mut().enumerate() {
            t.database = t.database.to_ascii_lowercase();
            t.table = t.table.to_ascii_lowercase();
            if t.database.trim().is_empty() || t.database.contains('*') {
                errors.add(format!("tables[{i}].database"), "must be a database name");
            }
            if t.table.trim().is_empty() || (t.table.contains('*') && t.table != "*") {
                errors.add(format!("tables[{i}].table"), "must be a table name or *");
            }
        }
        if let Access::Columns(c) = &mut self.access {
            if c.columns.is_empty() {
                errors.add("access.columns", "must name at least one column");
            }
            for (i, col) in c.columns.iter_mut().enumerate() {
                *col = col.to_ascii_lowercase();
                if col.trim().is_empty() || col.contains('.') {
                    errors.add(
                        format!("access.columns[{i}]"),
                        "must be a top-level column name",
                    );
                }
            }
        }
        if self.permissions.is_empty() {
            errors.add("permissions", "must hold SELECT and/or DESCRIBE");
        }
        for (i, p) in self.permissions.iter().enumerate() {
            if !PERMISSIONS.contains(&p.as_str()) {
                errors.add(format!("permissions[{i}]"), "must be SELECT or DESCRIBE");
            } else if self.permissions[..i].contains(p) {
                errors.add(format!("permissions[{i}]"), "duplicate permission");
            }
        }
        errors.finish(self)
    }
}

fn is_principal(p: &str) -> bool {
    if p.len() == 12 && p.chars().all(|c| c.is_ascii_digit()) {
        return true;
    }
    let parts: Vec<&str> = p.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
        && account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())
        && (resource.strip_prefix("role/").or_else(|| resource.strip_prefix("user/")))
            .is_some_and(|n| !n.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AccessPolicy {
        AccessPolicy {
            name: "analysts".into(),
            principal: "arn:aws:iam::123456789012:role/NonPIIAnalyst".into(),
            tables: vec![TableRef {
                database: "Lake".into(),
                table: "*".into(),
            }],
            access: Access::Level(AccessLevel::NonPiiColumns),
            permissions: vec!["SELECT".into()],
            grant_option: false,
        }
    }

    #[test]
    fn valid_policies_are_lowercased() {
        let p = policy().validate().unwrap();
        assert_eq!(p.tables[0].database, "lake");
        let account = AccessPolicy {
            principal: "123456789012".into(),
            ..policy()
        };
        assert!(account.validate().is_ok());
    }

    #[test]
    fn invalid_fields_are_named() {
        let bad = AccessPolicy {
            name: "Bad Name".into(),
            principal: "someone".into(),
            tables: vec![TableRef {
                database: "".into(),
                table: "cust*".into(),
            }],
            access: Access::Columns(ExplicitColumns {
                columns: vec!["a.b".into()],
            }),
            permissions: vec!["SELECT".into(), "DROP".into(), "SELECT".into()],
            grant_option: false,
        };
        let fields: Vec<String> = bad
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "name",
                "principal",
                "tables[0].database",
                "tables[0].table",
                "access.columns[0]",
                "permissions[1]",
                "permissions[2]"
            ]
        );
    }
}
