//! Match columns found by a table format's field ids (Apache Iceberg): each column's path
//! of field ids in the table's current schema, which every data file written since the
//! field was added carries in its Parquet schema whatever it names the column.
//!
//! Invariant: a data file whose schema carries no field ids is read by name only for a
//! column whose name (its whole dotted path) never changed in the table's history; for a
//! renamed one such a file fails (a search by name would read the column as NULL there).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One match column's field ids, from the top-level field down to the leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldPath {
    pub ids: Vec<i32>,
    /// Whether some schema of the table's history named it otherwise (the column itself
    /// or a struct above it): a data file without field ids cannot be read by name.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub renamed: bool,
}

/// The match columns' field-id paths, keyed by the mapper's column (its dotted path).
pub type FieldIds = BTreeMap<String, FieldPath>;
