//! The mapper's match columns in one Parquet object's schema, as Athena reads them. Each
//! segment of a dotted path names the field of exactly that name, else the only one equal
//! to it ignoring case. A match column the object lacks (added to the table, or a field
//! to a struct, after the object was written) is NULL in each of its rows, so it equals
//! no id: the object is searched on the match columns it has, and fails only when it has
//! none of them.
//!
//! Invariants: lacking a column is told apart from not being able to read it — several
//! fields equal to a segment ignoring case (none exactly), a path through a value, a list
//! or a map, and a path ending on a group are errors, never NULL; a composite part naming
//! a column that is no match column (a partition key kept as a data part) is never NULL.

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use parquet::basic::{ConvertedType, LogicalType, Repetition};
use parquet::schema::types::{SchemaDescriptor, Type};

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
    /// The match columns it lacks: NULL in each of its rows.
    pub absent: Vec<String>,
}

impl ObjectColumns {
    /// Resolves `columns` (dotted paths) in an object's schema; fails when the object has
    /// none of them, or when one cannot be read (see the module invariants).
    pub fn resolve(schema: &SchemaDescriptor, columns: &[String]) -> Result<Self, SchemaError> {
        let mut out = Self::default();
        for column in columns {
            match leaf_of(schema, column)? {
                Some(leaf) => {
                    out.present.push(column.clone());
                    out.leaves.push(leaf);
                }
                None => out.absent.push(column.clone()),
            }
        }
        if out.present.is_empty() {
            return Err(SchemaError::NoMatchColumn(columns.join(", ")));
        }
        Ok(out)
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

/// The leaf index of a dotted path, None when the object lacks it (a segment names no
/// field of a struct it reaches).
fn leaf_of(schema: &SchemaDescriptor, column: &str) -> Result<Option<usize>, SchemaError> {
    let shape = |reason: String| SchemaError::Shape {
        column: column.to_owned(),
        reason,
    };
    let mut node = schema.root_schema();
    let mut parts: Vec<&str> = Vec::new();
    for segment in column.split('.') {
        if !parts.is_empty() && !is_struct(node) {
            return Err(shape(format!(
                "{:?} is not a struct here ({})",
                node.name(),
                describe(node)
            )));
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
    if node.is_group() {
        return Err(shape(format!("it names {}, not a value", describe(node))));
    }
    (0..schema.num_columns())
        .find(|i| schema.column(*i).path().parts() == parts.as_slice())
        .map(Some)
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
    let mut segments = path.split('.');
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
