//! The mapper's match columns as Iceberg field ids: each dotted path of the table's
//! current schema (segments compared ignoring ASCII case, as Glue and Athena name
//! columns) becomes the path of field ids from its top-level field down to the value, so
//! every data file is searched by ids whatever it names the column (`parquet::schema`).
//! Each column also says whether its name changed in the table's history (a data file
//! without field ids can then not be read by name).
//!
//! Refused with a reason: a column the current schema lacks, a path through a list or a
//! map, a path ending on a struct, list or map, a field id beyond 32 bits.

use crate::domain::field_ids::{FieldIds, FieldPath};

use super::{IcebergSchema, SchemaField, TableMetadata};

/// What a schema field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Value,
    Struct,
    /// A list or a map: its values are not one per row.
    Repeated,
}

/// A field reachable from the schema's top through structs.
#[derive(Debug, Clone)]
struct Reachable {
    ids: Vec<i64>,
    path: String,
    kind: Kind,
}

/// Structs nested deeper than this are not walked.
const MAX_DEPTH: usize = 100;

/// Every field of `schema` reachable through structs, with its id path and dotted path.
fn reachable(schema: &IcebergSchema) -> Vec<Reachable> {
    fn walk(fields: &[SchemaField], above: &Reachable, out: &mut Vec<Reachable>, depth: usize) {
        for f in fields {
            let mut ids = above.ids.clone();
            ids.push(f.id);
            let path = match above.path.as_str() {
                "" => f.name.clone(),
                parent => format!("{parent}.{}", f.name),
            };
            let kind = match f.ty.get("type").and_then(|t| t.as_str()) {
                None => Kind::Value,
                Some("struct") => Kind::Struct,
                Some(_) => Kind::Repeated,
            };
            let here = Reachable { ids, path, kind };
            let nested = f.ty.get("fields").cloned();
            if let (Kind::Struct, Some(nested), true) = (kind, nested, depth < MAX_DEPTH) {
                let nested: Vec<SchemaField> = serde_json::from_value(nested).unwrap_or_default();
                walk(&nested, &here, out, depth + 1);
            }
            out.push(here);
        }
    }
    let top = Reachable {
        ids: Vec::new(),
        path: String::new(),
        kind: Kind::Struct,
    };
    let mut out = Vec::new();
    walk(&schema.fields, &top, &mut out, 0);
    out
}

/// Each of `columns`' field-id path in the table's current schema, and whether any
/// schema of its history named that field otherwise; Err: why a column cannot be searched.
pub fn field_ids(metadata: &TableMetadata, columns: &[String]) -> Result<FieldIds, String> {
    let current = reachable(metadata.current_schema()?);
    let history: Vec<Reachable> = metadata
        .schemas
        .iter()
        .chain(metadata.schema.as_ref())
        .flat_map(reachable)
        .collect();
    let mut out = FieldIds::new();
    for column in columns {
        let field = find(&current, column)?;
        let leaf = field.ids.last().copied();
        let renamed = history
            .iter()
            .any(|old| old.ids.last().copied() == leaf && !old.path.eq_ignore_ascii_case(column));
        let ids = field
            .ids
            .iter()
            .map(|id| i32::try_from(*id))
            .collect::<Result<Vec<i32>, _>>()
            .map_err(|_| format!("match column {column:?} has a field id beyond 32 bits"))?;
        out.insert(column.clone(), FieldPath { ids, renamed });
    }
    Ok(out)
}

/// The value field `column` names in the current schema.
fn find<'a>(current: &'a [Reachable], column: &str) -> Result<&'a Reachable, String> {
    let Some(field) = current.iter().find(|f| f.path.eq_ignore_ascii_case(column)) else {
        let through = current.iter().find(|f| {
            f.kind == Kind::Repeated
                && column
                    .get(..f.path.len() + 1)
                    .is_some_and(|p| p.eq_ignore_ascii_case(&format!("{}.", f.path)))
        });
        return Err(match through {
            Some(f) => format!(
                "match column {column:?} goes through {:?}, a list or a map: searching inside lists and maps is not built",
                f.path
            ),
            None => format!("match column {column:?} is not in the table's current Iceberg schema"),
        });
    };
    match field.kind {
        Kind::Value => Ok(field),
        Kind::Struct => Err(format!(
            "match column {column:?} names a struct, not a value"
        )),
        Kind::Repeated => Err(format!(
            "match column {column:?} names a list or a map, not a value"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Schema 0: id, email, contact{phone}, tags (a list); schema 1 (current): email
    /// renamed to mail, contact to info.
    fn metadata() -> TableMetadata {
        let m = br#"{"format-version": 2, "location": "s3://b/t", "current-schema-id": 1,
            "schemas": [
              {"schema-id": 0, "type": "struct", "fields": [
                {"id": 1, "name": "id", "required": true, "type": "long"},
                {"id": 2, "name": "email", "required": false, "type": "string"},
                {"id": 3, "name": "contact", "required": false, "type": {"type": "struct", "fields": [
                  {"id": 4, "name": "phone", "required": false, "type": "string"}]}}]},
              {"schema-id": 1, "type": "struct", "fields": [
                {"id": 1, "name": "id", "required": true, "type": "long"},
                {"id": 2, "name": "mail", "required": false, "type": "string"},
                {"id": 3, "name": "info", "required": false, "type": {"type": "struct", "fields": [
                  {"id": 4, "name": "phone", "required": false, "type": "string"}]}},
                {"id": 5, "name": "tags", "required": false, "type": {"type": "list",
                  "element-id": 6, "element": {"type": "struct", "fields": [
                    {"id": 7, "name": "v", "required": false, "type": "string"}]},
                  "element-required": false}}]}]}"#;
        TableMetadata::parse(m).unwrap()
    }

    fn path(ids: &[i32], renamed: bool) -> FieldPath {
        FieldPath {
            ids: ids.to_vec(),
            renamed,
        }
    }

    #[test]
    fn match_columns_become_field_id_paths_of_the_current_schema_and_say_if_renamed() {
        let m = metadata();
        let columns: Vec<String> = ["ID", "mail", "info.phone"].map(String::from).to_vec();
        let ids = field_ids(&m, &columns).unwrap();
        assert_eq!(ids["ID"], path(&[1], false));
        assert_eq!(ids["mail"], path(&[2], true), "was email");
        assert_eq!(ids["info.phone"], path(&[3, 4], true), "was contact.phone");
    }

    #[test]
    fn a_column_the_current_schema_lacks_or_through_a_list_or_naming_a_group_is_refused() {
        let m = metadata();
        let refused = |c: &str| field_ids(&m, &[c.to_owned()]).unwrap_err();
        let gone = refused("email");
        assert!(gone.contains("not in the table's current"), "{gone}");
        let list = refused("tags.v");
        assert!(list.contains("a list or a map"), "{list}");
        assert!(refused("info").contains("names a struct"));
        assert!(refused("tags").contains("names a list or a map"));
    }
}
