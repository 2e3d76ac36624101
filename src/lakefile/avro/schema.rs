//! The writer's schema, parsed from the JSON in the file's header (`avro.schema`) into
//! an arena of nodes: primitives, records, enums, arrays, maps, unions, fixed, named
//! types (full names with namespaces, as the specification resolves them) and references
//! to them, which may be recursive, and logical types.
//!
//! Invariants: every `NodeId` in a node indexes the arena; a name is defined once; a
//! logical type whose attributes are not valid is dropped (the specification says to read
//! the underlying type then); nesting is at most [`MAX_DEPTH`] deep.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Deepest nesting of schemas, and of values when decoding.
pub(crate) const MAX_DEPTH: usize = 100;

/// A node's index in [`Schema::nodes`].
pub(crate) type NodeId = usize;

/// An Avro type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Type {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Record { fields: Vec<Field> },
    Enum { symbols: Vec<String> },
    Array(NodeId),
    Map(NodeId),
    Union(Vec<NodeId>),
    Fixed { size: u64 },
}

/// A record's field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub name: String,
    pub ty: NodeId,
}

/// The logical types that change how a match column's value is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Logical {
    Decimal {
        scale: u64,
    },
    Uuid,
    Date,
    /// `time-*`, `timestamp-*` and `local-timestamp-*`: an integer in the column's unit.
    Instant,
}

/// One type of the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub ty: Type,
    pub logical: Option<Logical>,
    /// The type's encoding is always empty (`null`, `fixed` of size 0, records of such).
    pub zero: bool,
}

/// A parsed schema: its nodes and the top-level type.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub nodes: Vec<Node>,
    pub root: NodeId,
}

impl Schema {
    /// Parses the schema's JSON text.
    pub(crate) fn parse(json: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
        let mut parser = Parser::default();
        let root = parser.parse(&value, "", 0)?;
        Ok(Self {
            nodes: parser.nodes,
            root,
        })
    }

    /// The node `id` names (every id the parser made is in range).
    pub(crate) fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id)
    }
}

#[derive(Default)]
struct Parser {
    nodes: Vec<Node>,
    names: HashMap<String, NodeId>,
}

fn primitive(name: &str) -> Option<Type> {
    Some(match name {
        "null" => Type::Null,
        "boolean" => Type::Boolean,
        "int" => Type::Int,
        "long" => Type::Long,
        "float" => Type::Float,
        "double" => Type::Double,
        "bytes" => Type::Bytes,
        "string" => Type::String,
        _ => return None,
    })
}

impl Parser {
    fn push(&mut self, ty: Type) -> NodeId {
        let zero = matches!(ty, Type::Null | Type::Fixed { size: 0 });
        self.nodes.push(Node {
            ty,
            logical: None,
            zero,
        });
        self.nodes.len() - 1
    }

    fn parse(&mut self, value: &Value, space: &str, depth: usize) -> Result<NodeId, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH}"));
        }
        match value {
            Value::String(name) => self.reference(name, space),
            Value::Array(branches) => {
                let mut ids = Vec::with_capacity(branches.len());
                for branch in branches {
                    ids.push(self.parse(branch, space, depth + 1)?);
                }
                if ids.is_empty() {
                    return Err("a union has no branch".into());
                }
                Ok(self.push(Type::Union(ids)))
            }
            Value::Object(object) => self.object(object, space, depth),
            _ => Err("a schema is a name, an array or an object".into()),
        }
    }

    /// A primitive's name, or a named type defined before (or being defined: recursion).
    fn reference(&mut self, name: &str, space: &str) -> Result<NodeId, String> {
        if let Some(ty) = primitive(name) {
            return Ok(self.push(ty));
        }
        let qualified = (!name.contains('.') && !space.is_empty())
            .then(|| self.names.get(&format!("{space}.{name}")).copied())
            .flatten();
        qualified
            .or_else(|| self.names.get(name).copied())
            .ok_or_else(|| format!("it names an undefined type {name:?}"))
    }

    fn object(
        &mut self,
        object: &Map<String, Value>,
        space: &str,
        depth: usize,
    ) -> Result<NodeId, String> {
        let ty = object
            .get("type")
            .ok_or("a schema object has no \"type\"")?;
        let Value::String(kind) = ty else {
            // `{"type": {...}}` or `{"type": [...]}`: the inner schema.
            return self.parse(ty, space, depth + 1);
        };
        let id = match kind.as_str() {
            "record" | "error" => self.record(object, space, depth)?,
            "enum" => {
                let symbols = object
                    .get("symbols")
                    .and_then(Value::as_array)
                    .ok_or("an enum has no symbols")?
                    .iter()
                    .map(|s| s.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("an enum symbol is not a string")?;
                self.define(object, space, Type::Enum { symbols })?.0
            }
            "array" | "map" => {
                let inner = object
                    .get(if kind == "array" { "items" } else { "values" })
                    .ok_or_else(|| format!("a {kind} has no item type"))?;
                let inner = self.parse(inner, space, depth + 1)?;
                self.push(if kind == "array" {
                    Type::Array(inner)
                } else {
                    Type::Map(inner)
                })
            }
            "fixed" => {
                let size = object
                    .get("size")
                    .and_then(Value::as_u64)
                    .ok_or("a fixed has no size")?;
                self.define(object, space, Type::Fixed { size })?.0
            }
            // A primitive with attributes, or a named type referred to by `type`.
            name => match primitive(name) {
                Some(ty) => self.push(ty),
                None => return self.reference(name, space),
            },
        };
        let logical = object.get("logicalType").and_then(Value::as_str);
        if let (Some(logical), Some(node)) = (logical, self.nodes.get_mut(id)) {
            node.logical = logical_type(logical, object, &node.ty);
        }
        Ok(id)
    }

    /// Defines a named type; returns its node and its namespace (for the names inside).
    fn define(
        &mut self,
        object: &Map<String, Value>,
        space: &str,
        ty: Type,
    ) -> Result<(NodeId, String), String> {
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .ok_or("a named type has no name")?;
        let (full, inner) = match name.rsplit_once('.') {
            Some((ns, _)) => (name.to_owned(), ns.to_owned()),
            None => {
                let ns = match object.get("namespace") {
                    Some(Value::String(ns)) => ns.as_str(),
                    None | Some(Value::Null) => space,
                    Some(_) => return Err("a namespace is not a string".into()),
                };
                let full = if ns.is_empty() {
                    name.to_owned()
                } else {
                    format!("{ns}.{name}")
                };
                (full, ns.to_owned())
            }
        };
        if self.names.contains_key(&full) {
            return Err(format!("it defines {full:?} twice"));
        }
        let id = self.push(ty);
        self.names.insert(full, id);
        Ok((id, inner))
    }

    fn record(
        &mut self,
        object: &Map<String, Value>,
        space: &str,
        depth: usize,
    ) -> Result<NodeId, String> {
        let (id, inner) = self.define(object, space, Type::Record { fields: Vec::new() })?;
        let list = object
            .get("fields")
            .and_then(Value::as_array)
            .ok_or("a record has no fields")?;
        let mut fields: Vec<Field> = Vec::with_capacity(list.len());
        for field in list {
            let name = field
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a field has no name")?;
            if fields.iter().any(|f| f.name == name) {
                return Err(format!("a record has two fields named {name:?}"));
            }
            let ty = field.get("type").ok_or("a field has no type")?;
            let ty = self.parse(ty, &inner, depth + 1)?;
            fields.push(Field {
                name: name.to_owned(),
                ty,
            });
        }
        // Every field is complete here; an enclosing record being defined counts as not
        // empty (it could only be reached again through a union or a collection).
        let zero = fields
            .iter()
            .all(|f| self.nodes.get(f.ty).is_some_and(|n| n.zero));
        if let Some(node) = self.nodes.get_mut(id) {
            node.ty = Type::Record { fields };
            node.zero = zero;
        }
        Ok(id)
    }
}

/// The logical type `name` on a node of type `ty`, when its attributes are valid.
fn logical_type(name: &str, object: &Map<String, Value>, ty: &Type) -> Option<Logical> {
    Some(match (name, ty) {
        ("decimal", Type::Bytes | Type::Fixed { .. }) => {
            let precision = object.get("precision")?.as_u64()?;
            let scale = match object.get("scale") {
                None => 0,
                Some(scale) => scale.as_u64()?,
            };
            if precision == 0 || scale > precision {
                return None;
            }
            Logical::Decimal { scale }
        }
        ("uuid", Type::String | Type::Fixed { size: 16 }) => Logical::Uuid,
        ("date", Type::Int) => Logical::Date,
        ("time-millis", Type::Int) => Logical::Instant,
        (
            "time-micros"
            | "timestamp-millis"
            | "timestamp-micros"
            | "timestamp-nanos"
            | "local-timestamp-millis"
            | "local-timestamp-micros"
            | "local-timestamp-nanos",
            Type::Long,
        ) => Logical::Instant,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Schema, String> {
        Schema::parse(json.as_bytes())
    }

    fn record_fields(schema: &Schema, id: NodeId) -> Vec<(String, NodeId)> {
        match &schema.nodes[id].ty {
            Type::Record { fields } => fields.iter().map(|f| (f.name.clone(), f.ty)).collect(),
            other => panic!("not a record: {other:?}"),
        }
    }

    #[test]
    fn named_types_resolve_through_namespaces_and_may_recurse() {
        let schema = parse(
            r#"{"type": "record", "name": "Node", "namespace": "a.b", "fields": [
                {"name": "value", "type": "long"},
                {"name": "next", "type": ["null", "Node"]},
                {"name": "addr", "type": {"type": "record", "name": "x.Addr", "fields": [
                    {"name": "zip", "type": {"type": "fixed", "name": "Zip", "size": 5}}]}},
                {"name": "zip2", "type": "x.Zip"},
                {"name": "again", "type": "a.b.Node"}]}"#,
        )
        .unwrap();
        let fields = record_fields(&schema, schema.root);
        let Type::Union(branches) = &schema.nodes[fields[1].1].ty else {
            panic!()
        };
        assert_eq!(branches[1], schema.root, "Node refers to itself");
        assert_eq!(fields[4].1, schema.root);
        let addr = record_fields(&schema, fields[2].1);
        assert_eq!(addr[0].1, fields[3].1, "Zip is x.Zip, in Addr's namespace");
        assert!(!schema.nodes[schema.root].zero);
    }

    #[test]
    fn invalid_logical_types_fall_back_to_their_underlying_type() {
        let schema = parse(
            r#"{"type": "record", "name": "r", "fields": [
                {"name": "a", "type": {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}},
                {"name": "b", "type": {"type": "bytes", "logicalType": "decimal", "precision": 2, "scale": 4}},
                {"name": "c", "type": {"type": "string", "logicalType": "date"}},
                {"name": "d", "type": {"type": "fixed", "name": "u", "size": 16, "logicalType": "uuid"}},
                {"name": "e", "type": {"type": "long", "logicalType": "timestamp-micros"}},
                {"name": "f", "type": {"type": "int", "logicalType": "something-new"}}]}"#,
        )
        .unwrap();
        let logical: Vec<Option<Logical>> = record_fields(&schema, schema.root)
            .iter()
            .map(|(_, id)| schema.nodes[*id].logical)
            .collect();
        assert_eq!(
            logical,
            [
                Some(Logical::Decimal { scale: 2 }),
                None,
                None,
                Some(Logical::Uuid),
                Some(Logical::Instant),
                None
            ]
        );
    }

    #[test]
    fn bad_schemas_are_errors_never_panics() {
        for bad in [
            "",
            "[]",
            "42",
            r#"{"type": "record", "name": "r"}"#,
            r#"{"type": "record", "name": "r", "fields": [{"name": "a", "type": "Nope"}]}"#,
            r#"{"type": "record", "name": "r", "fields": [{"name": "a", "type": "int"}, {"name": "a", "type": "int"}]}"#,
            r#"["int", {"type": "fixed", "name": "f", "size": 1}, {"type": "fixed", "name": "f", "size": 2}]"#,
            r#"{"type": "enum", "name": "e", "symbols": [1]}"#,
            r#"{"type": "fixed", "name": "f", "size": -1}"#,
            r#"{"type": "array"}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let deep = format!("{}\"int\"{}", "[".repeat(150), "]".repeat(150));
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn types_that_encode_to_nothing_are_known() {
        let schema = parse(
            r#"{"type": "record", "name": "r", "fields": [
                {"name": "a", "type": "null"},
                {"name": "b", "type": {"type": "fixed", "name": "f", "size": 0}},
                {"name": "c", "type": {"type": "record", "name": "s", "fields": []}}]}"#,
        )
        .unwrap();
        assert!(schema.nodes[schema.root].zero);
        let schema = parse(
            r#"{"type": "record", "name": "r", "fields": [{"name": "a", "type": ["null"]}]}"#,
        )
        .unwrap();
        assert!(
            !schema.nodes[schema.root].zero,
            "a union has its branch index"
        );
    }
}
