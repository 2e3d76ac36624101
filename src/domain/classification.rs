//! PII classification of catalog columns, and the fail-closed rule that decides which
//! columns a non-PII role may read.
//!
//! Invariants: a column with no classification is `unclassified` and is treated as PII;
//! nested fields inherit their parent's classification unless classified themselves; a
//! top-level column (Lake Formation grants whole top-level columns) is readable by non-PII
//! roles only when it is `non_pii` and none of its nested fields is `pii` or `unclassified`
//! by explicit classification. Names compare lowercased, as Glue stores them.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::data_mapper::TableDef;
use super::hive_type::HiveType;

/// A column's classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    Pii,
    NonPii,
    Unclassified,
}

impl Classification {
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Pii => "pii",
            Classification::NonPii => "non_pii",
            Classification::Unclassified => "unclassified",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pii" => Some(Classification::Pii),
            "non_pii" => Some(Classification::NonPii),
            "unclassified" => Some(Classification::Unclassified),
            _ => None,
        }
    }
}

/// What kind of column a catalog column is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    Column,
    PartitionKey,
    NestedField,
}

/// A column of the catalog table, flattened: nested struct fields appear as dotted paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogColumn {
    /// Lowercased name or dotted path.
    pub name: String,
    pub data_type: Option<String>,
    pub kind: ColumnKind,
}

/// A stored classification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classified {
    pub classification: Classification,
    pub category: Option<String>,
}

/// Every column of the table: data columns, their nested struct fields, partition keys.
pub fn catalog_columns(table: &TableDef) -> Vec<CatalogColumn> {
    let mut out = Vec::new();
    for (name, ty) in &table.columns {
        flatten(&name.to_ascii_lowercase(), ty, ColumnKind::Column, &mut out);
    }
    for key in &table.partition_keys {
        out.push(CatalogColumn {
            name: key.to_ascii_lowercase(),
            data_type: None,
            kind: ColumnKind::PartitionKey,
        });
    }
    out
}

fn flatten(name: &str, ty: &HiveType, kind: ColumnKind, out: &mut Vec<CatalogColumn>) {
    out.push(CatalogColumn {
        name: name.to_owned(),
        data_type: Some(ty.to_string()),
        kind,
    });
    if let HiveType::Struct(fields) = ty {
        for (field, field_ty) in fields {
            let path = format!("{name}.{}", field.to_ascii_lowercase());
            flatten(&path, field_ty, ColumnKind::NestedField, out);
        }
    }
}

/// The effective classification of a column: its own, else its nearest classified
/// ancestor's (marked inherited), else `unclassified`.
pub fn effective(
    name: &str,
    stored: &HashMap<String, Classified>,
) -> (Classification, Option<String>, bool) {
    if let Some(c) = stored.get(name) {
        return (c.classification, c.category.clone(), false);
    }
    let mut path = name;
    while let Some((parent, _)) = path.rsplit_once('.') {
        if let Some(c) = stored.get(parent) {
            return (c.classification, None, true);
        }
        path = parent;
    }
    (Classification::Unclassified, None, false)
}

/// The top-level columns (and partition keys) a non-PII role may read.
pub fn non_pii_columns(
    columns: &[CatalogColumn],
    stored: &HashMap<String, Classified>,
) -> BTreeSet<String> {
    columns
        .iter()
        .filter(|c| c.kind != ColumnKind::NestedField)
        .filter(|c| effective(&c.name, stored).0 == Classification::NonPii)
        .filter(|c| {
            let prefix = format!("{}.", c.name);
            !stored.iter().any(|(path, cl)| {
                path.starts_with(&prefix) && cl.classification != Classification::NonPii
            })
        })
        .map(|c| c.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableDef {
        TableDef {
            location: Some("s3://b/t/".into()),
            columns: vec![
                ("Customer_ID".into(), HiveType::parse("bigint").unwrap()),
                ("email".into(), HiveType::parse("string").unwrap()),
                (
                    "address".into(),
                    HiveType::parse("struct<city:string,street:string>").unwrap(),
                ),
                ("ssn".into(), HiveType::parse("string").unwrap()),
            ],
            partition_keys: vec!["country".into()],
            format: None,
            ..Default::default()
        }
    }

    fn stored(pairs: &[(&str, Classification)]) -> HashMap<String, Classified> {
        pairs
            .iter()
            .map(|(n, c)| {
                (
                    n.to_string(),
                    Classified {
                        classification: *c,
                        category: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn columns_are_flattened_lowercased_with_partition_keys() {
        let names: Vec<String> = catalog_columns(&table())
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "customer_id",
                "email",
                "address",
                "address.city",
                "address.street",
                "ssn",
                "country"
            ]
        );
    }

    #[test]
    fn unclassified_columns_are_never_non_pii_and_nested_fields_inherit() {
        use Classification::*;
        let s = stored(&[
            ("customer_id", NonPii),
            ("email", Pii),
            ("address", NonPii),
            ("country", NonPii),
        ]);
        let cols = catalog_columns(&table());
        let granted = non_pii_columns(&cols, &s);
        assert_eq!(
            granted,
            BTreeSet::from(["customer_id".into(), "address".into(), "country".into()])
        );
        assert_eq!(effective("address.city", &s), (NonPii, None, true));
        assert_eq!(effective("ssn", &s).0, Unclassified);
    }

    #[test]
    fn a_pii_nested_field_hides_its_whole_top_level_column() {
        use Classification::*;
        let s = stored(&[("address", NonPii), ("address.street", Pii)]);
        assert!(non_pii_columns(&catalog_columns(&table()), &s).is_empty());
        let s = stored(&[("address", NonPii), ("address.street", Unclassified)]);
        assert!(non_pii_columns(&catalog_columns(&table()), &s).is_empty());
    }
}
