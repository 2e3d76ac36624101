//! The mapper's match columns in one Parquet object's schema, as Athena reads them. Each
//! segment of a dotted path names the field of exactly that name, else the only one equal
//! to it ignoring case. A match column the object lacks (added to the table, or a field
//! to a struct, after the object was written) is NULL in each of its rows, so it equals
//! no id: the object is searched on the match columns it has, and fails only when it has
//! none of them.
//!
//! A table format's match columns (Apache Iceberg: `domain::field_ids`) are found by field
//! id instead: each segment is the field carrying that id, whatever the object names it
//! (a column renamed since the object was written is still found); an id the object
//! lacks is a column added later, NULL as above. An object whose schema carries no field
//! ids is read by name, unless the column was renamed in the table's history: then it
//! fails (by name it would read as NULL, a silent miss).
//!
//! Invariants: lacking a column is told apart from not being able to read it — several
//! fields equal to a segment ignoring case (none exactly), a path through a value, a list
//! or a map, and a path ending on a group are errors, never NULL; a composite part naming
//! a column that is no match column (a partition key kept as a data part) is never NULL.

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use parquet::basic::{ConvertedType, LogicalType, Repetition};
use parquet::schema::types::{SchemaDescriptor, Type};

use crate::domain::field_ids::FieldIds;
use crate::lakefile::match_set::MatchSet;

/// Why the match columns cannot be read from an object's schema (see the module
/// invariants); find carries it as `SchemaError::Schema`.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the object has no column {0:?}")]
    MissingColumn(String),
    /// Each match column is missing (a lacking one is NULL, so some must be there).
    #[error("the object has none of the match columns ({0})")]
    NoMatchColumn(String),
    /// A match column the object has but cannot be read as one: its path goes through a
    /// value, a list or a map, or ends on a group (never taken for a missing column).
    #[error("match column {column:?} does not fit the object's schema: {reason}")]
    Shape { column: String, reason: String },
    #[error(
        "match column {0:?} names no column exactly, and several columns whose names differ from it only in case; refused (which one Athena reads is not certain)"
    )]
    AmbiguousColumn(String),
    /// Columns are found by field id, and this one's was not recorded.
    #[error(
        "match column {0:?} has no field id recorded for its table: refused (found by name it could be missed)"
    )]
    NoFieldId(String),
    /// The object carries no field ids and the column was renamed in the table's history.
    #[error(
        "the object's schema carries no field ids, and match column {0:?} was renamed in the table's history: found by name it would read as NULL in the data files written before the rename; refused"
    )]
    RenamedWithoutIds(String),
}

/// Which of `names` a path segment names: the one equal to it, else the only one equal
/// to it ignoring ASCII case; an error when several are and none is exactly it.
pub(crate) fn pick_name<'n>(
    names: impl IntoIterator<Item = &'n str>,
    segment: &str,
) -> Result<Option<usize>, ()> {
    let mut folded = None;
    let mut several = false;
    for (i, name) in names.into_iter().enumerate() {
        if name == segment {
            return Ok(Some(i));
        }
        if name.eq_ignore_ascii_case(segment) {
            several |= folded.is_some();
            folded = Some(i);
        }
    }
    if several { Err(()) } else { Ok(folded) }
}

/// The mapper's match columns as one object holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectColumns {
    /// The match columns the object has, as the mapper names them.
    pub present: Vec<String>,
    /// Their leaf indexes, aligned with `present`.
    pub leaves: Vec<usize>,
    /// Their paths as the object names them (another name than the mapper's for a column
    /// found by field id), aligned with `present`.
    pub paths: Vec<Vec<String>>,
    /// The match columns it lacks: NULL in each of its rows.
    pub absent: Vec<String>,
}

impl ObjectColumns {
    /// Resolves `columns` (dotted paths) in an object's schema; fails when the object has
    /// none of them, or when one cannot be read (see the module invariants).
    pub fn resolve(schema: &SchemaDescriptor, columns: &[String]) -> Result<Self, SchemaError> {
        Self::resolve_by(schema, columns, None)
    }

    /// [`ObjectColumns::resolve`], finding each column by its field-id path in
    /// `field_ids` when given (see the module documentation), else by name.
    pub fn resolve_by(
        schema: &SchemaDescriptor,
        columns: &[String],
        field_ids: Option<&FieldIds>,
    ) -> Result<Self, SchemaError> {
        let mut out = Self::default();
        let carries_ids = carries_field_ids(schema);
        for column in columns {
            let found = match field_ids {
                None => leaf_of(schema, column)?,
                Some(field_ids) => {
                    let path = field_ids
                        .get(column)
                        .ok_or_else(|| SchemaError::NoFieldId(column.clone()))?;
                    match (carries_ids, path.renamed) {
                        (true, _) => leaf_by_ids(schema, column, &path.ids)?,
                        (false, false) => leaf_of(schema, column)?,
                        (false, true) => {
                            return Err(SchemaError::RenamedWithoutIds(column.clone()));
                        }
                    }
                }
            };
            match found {
                Some((leaf, path)) => {
                    out.present.push(column.clone());
                    out.leaves.push(leaf);
                    out.paths.push(path);
                }
                None => out.absent.push(column.clone()),
            }
        }
        if out.present.is_empty() {
            return Err(SchemaError::NoMatchColumn(columns.join(", ")));
        }
        Ok(out)
    }

    /// The array of a match column (or of a composite part's column) in a batch of the
    /// object's match columns: a match column the object has by its path in the object,
    /// any other column by name.
    pub(crate) fn array_of(
        &self,
        batch: &RecordBatch,
        column: &str,
    ) -> Result<ArrayRef, SchemaError> {
        let at = self.present.iter().zip(&self.paths);
        match at.into_iter().find(|(m, _)| m.eq_ignore_ascii_case(column)) {
            Some((_, path)) => column_at_segments(batch, column, path.iter().map(String::as_str)),
            None => column_at_path(batch, column),
        }
    }

    /// Whether each composite group of `ids` may match a row of this object: not when it
    /// names a match column the object lacks (that part is NULL, and NULL equals nothing).
    pub fn live_groups(&self, ids: &MatchSet) -> Vec<bool> {
        ids.composites()
            .iter()
            .map(|group| !group.columns.iter().any(|c| self.lacks(c)))
            .collect()
    }

    /// Whether a composite part's column (a lowercased path) is a match column this
    /// object lacks. A part naming no match column is looked up as it is (and fails the
    /// object when the object does not have it).
    fn lacks(&self, column: &str) -> bool {
        let names = |list: &[String]| list.iter().any(|m| m.eq_ignore_ascii_case(column));
        names(&self.absent) && !names(&self.present)
    }
}

/// A leaf index and its path as the object names it.
type Leaf = Option<(usize, Vec<String>)>;

/// The leaf index of a dotted path, None when the object lacks it (a segment names no
/// field of a struct it reaches).
fn leaf_of(schema: &SchemaDescriptor, column: &str) -> Result<Leaf, SchemaError> {
    let mut node = schema.root_schema();
    let mut parts: Vec<&str> = Vec::new();
    for segment in column.split('.') {
        if !parts.is_empty() {
            must_be_struct(node, column)?;
        }
        let fields = node.get_fields();
        let Some(i) = pick_name(fields.iter().map(|f| f.name()), segment)
            .map_err(|()| SchemaError::AmbiguousColumn(column.to_owned()))?
        else {
            return Ok(None);
        };
        node = &fields[i];
        parts.push(node.name());
    }
    leaf_index(schema, column, node, &parts)
}

/// The leaf index of a path of field ids, None when the object lacks one of them (a field
/// added since the object was written).
fn leaf_by_ids(schema: &SchemaDescriptor, column: &str, ids: &[i32]) -> Result<Leaf, SchemaError> {
    let shape = |reason: &str| SchemaError::Shape {
        column: column.to_owned(),
        reason: reason.to_owned(),
    };
    if ids.is_empty() {
        return Err(shape("it has no field id"));
    }
    let mut node = schema.root_schema();
    let mut parts: Vec<&str> = Vec::new();
    for id in ids {
        if !parts.is_empty() {
            must_be_struct(node, column)?;
        }
        // A struct whose fields carry no ids (top-level ones do) cannot be read by id:
        // taking its field for absent would be a silent miss.
        if !node
            .get_fields()
            .iter()
            .any(|f| f.get_basic_info().has_id())
        {
            return Err(shape(&format!(
                "the fields of {:?} carry no field ids",
                node.name()
            )));
        }
        let mut carrying = node.get_fields().iter().filter(|f| {
            let info = f.get_basic_info();
            info.has_id() && info.id() == *id
        });
        let Some(field) = carrying.next() else {
            return Ok(None);
        };
        if carrying.next().is_some() {
            return Err(shape(&format!("several fields carry its field id {id}")));
        }
        node = field;
        parts.push(node.name());
    }
    leaf_index(schema, column, node, &parts)
}

/// Whether an object's schema carries field ids (any top-level field does).
fn carries_field_ids(schema: &SchemaDescriptor) -> bool {
    schema
        .root_schema()
        .get_fields()
        .iter()
        .any(|f| f.get_basic_info().has_id())
}

/// Fails unless `node`, a path of `column` goes through, is a plain struct.
fn must_be_struct(node: &Type, column: &str) -> Result<(), SchemaError> {
    if is_struct(node) {
        return Ok(());
    }
    Err(SchemaError::Shape {
        column: column.to_owned(),
        reason: format!(
            "{:?} is not a struct here ({})",
            node.name(),
            describe(node)
        ),
    })
}

/// The leaf index of `node`, reached by `parts`; an error when it is a group.
fn leaf_index(
    schema: &SchemaDescriptor,
    column: &str,
    node: &Type,
    parts: &[&str],
) -> Result<Leaf, SchemaError> {
    if node.is_group() {
        return Err(SchemaError::Shape {
            column: column.to_owned(),
            reason: format!("it names {}, not a value", describe(node)),
        });
    }
    (0..schema.num_columns())
        .find(|i| schema.column(*i).path().parts() == parts)
        .map(|leaf| Some((leaf, parts.iter().map(|p| (*p).to_owned()).collect())))
        .ok_or_else(|| SchemaError::MissingColumn(column.to_owned()))
}

/// Whether a schema node is a plain struct (a group that is neither repeated nor a list
/// or map).
fn is_struct(node: &Type) -> bool {
    let info = node.get_basic_info();
    node.is_group()
        && (!info.has_repetition() || info.repetition() != Repetition::REPEATED)
        && !matches!(
            info.logical_type_ref(),
            Some(LogicalType::List | LogicalType::Map)
        )
        && !matches!(
            info.converted_type(),
            ConvertedType::LIST | ConvertedType::MAP | ConvertedType::MAP_KEY_VALUE
        )
}

/// What kind of node this is, for an error message.
fn describe(node: &Type) -> &'static str {
    match (node.is_group(), is_struct(node)) {
        (false, _) => "a value",
        (true, true) => "a struct",
        (true, false) => "a list, a map or a repeated group",
    }
}

/// The array of a dotted path in a batch of the object's match columns, descending struct
/// columns, each segment resolved by [`pick_name`].
pub(crate) fn column_at_path(batch: &RecordBatch, path: &str) -> Result<ArrayRef, SchemaError> {
    column_at_segments(batch, path, path.split('.'))
}

/// The array at `segments` in a batch (`path` names it in errors).
fn column_at_segments<'s>(
    batch: &RecordBatch,
    path: &str,
    mut segments: impl Iterator<Item = &'s str>,
) -> Result<ArrayRef, SchemaError> {
    let missing = || SchemaError::MissingColumn(path.to_owned());
    let ambiguous = |()| SchemaError::AmbiguousColumn(path.to_owned());
    let first = segments.next().ok_or_else(missing)?;
    let schema = batch.schema();
    let index = pick_name(schema.fields().iter().map(|f| f.name().as_str()), first)
        .map_err(ambiguous)?
        .ok_or_else(missing)?;
    let mut array = batch.column(index).clone();
    for segment in segments {
        let structs: &StructArray = array.as_struct_opt().ok_or_else(missing)?;
        let i = pick_name(structs.fields().iter().map(|f| f.name().as_str()), segment)
            .map_err(ambiguous)?
            .ok_or_else(missing)?;
        array = structs.column(i).clone();
    }
    Ok(array)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parquet::schema::parser::parse_message_type;

    use super::*;
    use crate::domain::field_ids::FieldPath;

    fn schema(text: &str) -> SchemaDescriptor {
        SchemaDescriptor::new(Arc::new(parse_message_type(text).unwrap()))
    }

    /// A file written before `email` became `mail` and `contact` became `info`, and
    /// before `age` (id 9) was added; `extra` reuses a current name under another id.
    const OLD: &str = "message table {
        required int64 id = 1;
        optional binary email (STRING) = 2;
        optional group contact = 3 { optional binary phone (STRING) = 4; }
        optional binary mail (STRING) = 8;
    }";

    fn ids(paths: &[(&str, &[i32], bool)]) -> FieldIds {
        paths
            .iter()
            .map(|(c, ids, renamed)| {
                let path = FieldPath {
                    ids: ids.to_vec(),
                    renamed: *renamed,
                };
                (c.to_string(), path)
            })
            .collect()
    }

    fn columns(names: &[&str]) -> Vec<String> {
        names.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn a_renamed_leaf_and_a_leaf_under_a_renamed_struct_are_found_by_their_ids() {
        let field_ids = ids(&[("mail", &[2], true), ("info.phone", &[3, 4], true)]);
        let cols = columns(&["mail", "info.phone"]);
        let found = ObjectColumns::resolve_by(&schema(OLD), &cols, Some(&field_ids)).unwrap();
        assert_eq!(found.present, cols, "the mapper's names are kept");
        assert_eq!(found.leaves, [1, 2]);
        assert_eq!(found.paths, [vec!["email"], vec!["contact", "phone"]]);
        // By name, `mail` is another column of this file (id 8), and `info` is none.
        let by_name = ObjectColumns::resolve(&schema(OLD), &cols).unwrap();
        assert_eq!(
            (by_name.leaves, by_name.absent),
            (vec![3], columns(&["info.phone"]))
        );
    }

    #[test]
    fn a_field_id_the_object_lacks_is_an_absent_column() {
        let field_ids = ids(&[("id", &[1], false), ("age", &[9], false)]);
        let cols = columns(&["id", "age"]);
        let found = ObjectColumns::resolve_by(&schema(OLD), &cols, Some(&field_ids)).unwrap();
        assert_eq!(
            (found.present, found.absent),
            (columns(&["id"]), columns(&["age"]))
        );
        let none = ObjectColumns::resolve_by(&schema(OLD), &cols[1..], Some(&field_ids));
        assert!(
            matches!(none, Err(SchemaError::NoMatchColumn(_))),
            "{none:?}"
        );
    }

    #[test]
    fn an_object_without_field_ids_is_read_by_name_unless_the_column_was_renamed() {
        let plain = schema("message t { required int64 id; optional binary email (STRING); }");
        let field_ids = ids(&[("id", &[1], false), ("mail", &[2], true)]);
        let kept = ObjectColumns::resolve_by(&plain, &columns(&["id"]), Some(&field_ids));
        assert_eq!(kept.unwrap().leaves, [0]);
        let renamed =
            ObjectColumns::resolve_by(&plain, &columns(&["id", "mail"]), Some(&field_ids));
        assert!(
            matches!(&renamed, Err(SchemaError::RenamedWithoutIds(c)) if c == "mail"),
            "{renamed:?}"
        );
        let unrecorded =
            ObjectColumns::resolve_by(&schema(OLD), &columns(&["x"]), Some(&field_ids));
        assert!(
            matches!(unrecorded, Err(SchemaError::NoFieldId(_))),
            "{unrecorded:?}"
        );
    }

    #[test]
    fn an_id_on_a_list_a_group_two_fields_or_a_struct_without_ids_is_refused_never_absent() {
        let odd = schema(
            "message t {
                optional group tags (LIST) = 5 { repeated group list { optional binary v (STRING) = 7; } }
                optional group contact = 3 { optional binary phone (STRING) = 4; }
                optional binary a (STRING) = 6;
                optional binary b (STRING) = 6;
                optional group s = 9 { optional binary x (STRING); }
            }",
        );
        let field_ids = ids(&[
            ("t.v", &[5, 7], false),
            ("c", &[3], false),
            ("a", &[6], false),
            ("s.x", &[9, 10], false),
        ]);
        for column in ["t.v", "c", "a", "s.x"] {
            let r = ObjectColumns::resolve_by(&odd, &columns(&[column]), Some(&field_ids));
            assert!(
                matches!(r, Err(SchemaError::Shape { .. })),
                "{column}: {r:?}"
            );
        }
    }
}
