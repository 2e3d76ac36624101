//! The match columns in one file's writer schema, and which queued matches a record is.
//!
//! Each segment of a dotted path names the field of exactly that name, else the only one
//! equal to it ignoring ASCII case (several: an error, as JSON Lines and Parquet refuse
//! it). A path may go through records and through unions of `null` and one record (a
//! null there is no value). A column the writer's schema lacks is NULL in every record:
//! it equals no id, and the file is searched on the columns it has; a file with none of
//! them is an error, as it is for Parquet.
//!
//! Invariants: lacking a column is told apart from not being able to read it — an array
//! or a map on the path, a union of several non-null types, a path through or ending on a
//! type no id is compared with, are errors, never NULL.

use crate::lakefile::match_set::{Key, KeyKind, MatchSet, Tuples};
use crate::lakefile::parquet::schema::pick_name;

use super::AvroError;
use super::schema::{NodeId, Schema, Type};
use super::values::{Conv, type_name};

/// What to read from a record's field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Want {
    /// The field's value, into this slot.
    Value { slot: usize, conv: Conv },
    /// Fields of the record the field holds.
    Record(Interest),
}

/// The fields of a record a plan reads (by field index, ascending); others are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Interest {
    pub fields: Vec<(usize, Want)>,
}

/// How the records of one file are matched.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// The root record's fields to read (None: no match column is in the file).
    pub root: Option<Interest>,
    /// How many values a record yields.
    pub slots: usize,
    /// The simple match columns the file has: their slot and kind.
    simple: Vec<(usize, KeyKind)>,
    /// The composite groups that may match: their columns' slots, and their tuples cast
    /// to those columns' kinds.
    groups: Vec<(Vec<usize>, Tuples)>,
}

/// Where a column is in the schema.
enum Resolved {
    Absent,
    Leaf {
        path: Vec<usize>,
        conv: Conv,
        kind: KeyKind,
    },
}

impl Plan {
    /// Resolves `columns` and the composite groups' columns in `schema`.
    pub(crate) fn new(
        schema: &Schema,
        columns: &[String],
        ids: &MatchSet,
    ) -> Result<Self, AvroError> {
        let mut plan = Plan::default();
        let mut paths: Vec<(Vec<usize>, Conv)> = Vec::new();
        for column in columns {
            if let Resolved::Leaf { path, conv, kind } = resolve(schema, column)? {
                plan.simple.push((slot(&mut paths, path, conv), kind));
            }
        }
        let mut present = !plan.simple.is_empty();
        for group in ids.composites() {
            let mut slots = Vec::with_capacity(group.columns.len());
            let mut kinds = Vec::with_capacity(group.columns.len());
            for column in &group.columns {
                match resolve(schema, column)? {
                    Resolved::Leaf { path, conv, kind } => {
                        slots.push(slot(&mut paths, path, conv));
                        kinds.push(Some(kind));
                    }
                    // A match column the file lacks is NULL: the group matches nothing.
                    Resolved::Absent if columns.iter().any(|m| m.eq_ignore_ascii_case(column)) => {}
                    Resolved::Absent => return Err(AvroError::MissingColumn(column.clone())),
                }
            }
            present |= !slots.is_empty();
            if slots.len() == group.columns.len() {
                plan.groups.push((slots, group.cast(&kinds)));
            }
        }
        if !present {
            return Err(AvroError::NoMatchColumn(columns.join(", ")));
        }
        let mut root = Interest::default();
        for (slot, (path, conv)) in paths.iter().enumerate() {
            insert(&mut root, path, slot, *conv);
        }
        plan.slots = paths.len();
        plan.root = Some(root);
        Ok(plan)
    }

    /// The queued matches a record is (its values in `slots`), each once, into `out`.
    pub(crate) fn owners(&self, slots: &[Option<Key>], ids: &MatchSet, out: &mut Vec<u32>) {
        for (slot, kind) in &self.simple {
            if let Some(Some(key)) = slots.get(*slot) {
                out.extend_from_slice(ids.owners_of(key, Some(*kind)));
            }
        }
        for (group, tuples) in &self.groups {
            let tuple: Option<Vec<Key>> = group
                .iter()
                .map(|s| slots.get(*s).cloned().flatten())
                .collect();
            if let Some(found) = tuple.and_then(|t| tuples.get(&t)) {
                out.extend_from_slice(found);
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

/// The slot of a field path, shared by the columns that resolve to it.
fn slot(paths: &mut Vec<(Vec<usize>, Conv)>, path: Vec<usize>, conv: Conv) -> usize {
    match paths.iter().position(|(p, _)| *p == path) {
        Some(slot) => slot,
        None => {
            paths.push((path, conv));
            paths.len() - 1
        }
    }
}

/// Adds a field path to the fields to read, keeping them in field order.
fn insert(interest: &mut Interest, path: &[usize], slot: usize, conv: Conv) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let at = match interest.fields.binary_search_by_key(first, |(i, _)| *i) {
        Ok(at) => at,
        Err(at) => {
            let want = if rest.is_empty() {
                Want::Value { slot, conv }
            } else {
                Want::Record(Interest::default())
            };
            interest.fields.insert(at, (*first, want));
            at
        }
    };
    if let Some((_, Want::Record(inner))) = interest.fields.get_mut(at) {
        insert(inner, rest, slot, conv);
    }
}

/// Where `column` is in the schema: the field indexes on its path and how its value reads.
fn resolve(schema: &Schema, column: &str) -> Result<Resolved, AvroError> {
    let shape = |reason: String| AvroError::Column {
        column: column.to_owned(),
        reason,
    };
    let mut id = schema.root;
    let mut path = Vec::new();
    for segment in column.split('.') {
        let record = non_null(schema, id).map_err(shape)?;
        let fields = match schema.node(record).map(|n| &n.ty) {
            Some(Type::Record { fields }) => fields,
            Some(ty) => {
                let name = type_name(ty);
                return Err(shape(format!("a value of type {name} is on its path")));
            }
            None => return Err(shape("the schema is broken".into())),
        };
        let found = pick_name(fields.iter().map(|f| f.name.as_str()), segment)
            .map_err(|()| AvroError::AmbiguousColumn(column.to_owned()))?;
        let Some(field) = found.and_then(|i| fields.get(i).map(|f| (i, f.ty))) else {
            return Ok(Resolved::Absent);
        };
        path.push(field.0);
        id = field.1;
    }
    let leaf = non_null(schema, id).map_err(shape)?;
    let node = schema
        .node(leaf)
        .ok_or_else(|| shape("the schema is broken".into()))?;
    let (conv, kind) = Conv::of(node).map_err(|ty| AvroError::UnsupportedType {
        column: column.to_owned(),
        avro_type: ty,
    })?;
    Ok(Resolved::Leaf { path, conv, kind })
}

/// The type a value of `id` has where it is not null: `id` itself, or the one branch of a
/// union besides `null`. Arrays, maps and wider unions are refused.
fn non_null(schema: &Schema, id: NodeId) -> Result<NodeId, String> {
    let ty = |id: NodeId| schema.node(id).map(|n| &n.ty);
    let id = match ty(id) {
        Some(Type::Union(branches)) => {
            let mut others = branches.iter().filter(|b| ty(**b) != Some(&Type::Null));
            match (others.next(), others.next()) {
                (Some(branch), None) => *branch,
                (None, _) => return Err("it is always null".into()),
                (Some(_), Some(_)) => return Err("a union of several types is on its path".into()),
            }
        }
        _ => id,
    };
    match ty(id) {
        Some(Type::Array(_)) => Err("an array is on its path (arrays are not searched)".into()),
        Some(Type::Map(_)) => Err("a map is on its path (maps are not searched)".into()),
        Some(Type::Union(_)) => Err("a union of several types is on its path".into()),
        _ => Ok(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(fields: serde_json::Value) -> Schema {
        let json = json!({"type": "record", "name": "r", "fields": fields});
        Schema::parse(json.to_string().as_bytes()).unwrap()
    }

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn paths_go_through_records_and_nullable_records_by_name_then_by_case() {
        let s = schema(json!([
            {"name": "id", "type": "long"},
            {"name": "Contact", "type": ["null", {"type": "record", "name": "c", "fields": [
                {"name": "Email", "type": ["null", "string"]},
                {"name": "email", "type": "string"}]}]}]));
        let ids = MatchSet::from_values(&[json!(1)]);
        let plan = Plan::new(&s, &cols(&["ID", "contact.email", "contact.Email"]), &ids).unwrap();
        assert_eq!(plan.slots, 3);
        let root = plan.root.unwrap();
        assert_eq!(root.fields.len(), 2);
        assert_eq!(
            root.fields[0],
            (
                0,
                Want::Value {
                    slot: 0,
                    conv: Conv::Long
                }
            )
        );
        let Want::Record(contact) = &root.fields[1].1 else {
            panic!()
        };
        // Each name exactly; "eMail" is both ignoring case.
        assert_eq!(contact.fields[0].0, 0);
        assert_eq!(contact.fields[1].0, 1);
        let ambiguous = Plan::new(&s, &cols(&["contact.eMail"]), &ids).unwrap_err();
        assert!(matches!(ambiguous, AvroError::AmbiguousColumn(c) if c == "contact.eMail"));
    }

    #[test]
    fn a_missing_column_is_null_but_a_file_with_none_is_an_error() {
        let s = schema(json!([{"name": "id", "type": "int"}]));
        let ids = MatchSet::from_values(&[json!(1)]);
        let plan = Plan::new(&s, &cols(&["email", "id", "contact.phone"]), &ids).unwrap();
        assert_eq!(plan.simple.len(), 1);
        let none = Plan::new(&s, &cols(&["email", "phone"]), &ids).unwrap_err();
        assert!(matches!(none, AvroError::NoMatchColumn(c) if c == "email, phone"));
        // A composite part naming a match column the file lacks: the group is dead.
        let pair = MatchSet::default().with_composites(&[json!([
            {"column": "id", "value": 1}, {"column": "email", "value": "a"}])]);
        let plan = Plan::new(&s, &cols(&["id", "email"]), &pair).unwrap();
        assert!(plan.groups.is_empty());
        let unknown = Plan::new(&s, &cols(&["id"]), &pair).unwrap_err();
        assert!(matches!(unknown, AvroError::MissingColumn(c) if c == "email"));
    }

    #[test]
    fn arrays_maps_wide_unions_and_uncomparable_types_are_loud_errors() {
        let s = schema(json!([
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "attrs", "type": ["null", {"type": "map", "values": "string"}]},
            {"name": "either", "type": ["null", "string", "long"]},
            {"name": "flag", "type": "boolean"},
            {"name": "raw", "type": "bytes"},
            {"name": "hash", "type": {"type": "fixed", "name": "h", "size": 4}},
            {"name": "nothing", "type": "null"},
            {"name": "nulls", "type": ["null"]},
            {"name": "n", "type": "int"}]));
        let ids = MatchSet::from_values(&[json!(1)]);
        for (column, kind) in [
            ("tags", "array"),
            ("attrs", "map"),
            ("either", "union"),
            ("n.x", "type int"),
            ("nulls", "always null"),
        ] {
            let err = Plan::new(&s, &cols(&[column]), &ids).unwrap_err();
            assert!(
                matches!(&err, AvroError::Column { column: c, reason } if c == column && reason.contains(kind)),
                "{column}: {err}"
            );
        }
        for (column, ty) in [
            ("flag", "boolean"),
            ("raw", "bytes"),
            ("hash", "fixed"),
            ("nothing", "null"),
        ] {
            let err = Plan::new(&s, &cols(&[column]), &ids).unwrap_err();
            assert!(
                matches!(&err, AvroError::UnsupportedType { column: c, avro_type } if c == column && avro_type == ty),
                "{column}: {err}"
            );
        }
    }
}
