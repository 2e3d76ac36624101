//! The records of one block, decoded by the writer's schema: each record's byte span in
//! the block's (decompressed) data, and the queued matches it is.
//!
//! Every byte is decoded, the fields no match column needs too, so a record's span is
//! where the specification says it ends, and a block whose records do not fill its data
//! exactly is an error. Varints are at most ten bytes, every length is checked against the
//! bytes left, values nest at most [`MAX_DEPTH`] deep, and a count of items that encode to
//! nothing (`null`) is not looped over; nothing here allocates by a length the file gives.

use std::ops::Range;

use crate::lakefile::match_set::{Key, MatchSet};

use super::AvroError;
use super::columns::{Interest, Plan, Want};
use super::cursor::{Cursor, Stop};
use super::schema::{Field, MAX_DEPTH, NodeId, Schema, Type};
use super::values;

const TOO_DEEP: &str = "its values nest deeper than 100";

/// The records of one block, read one at a time.
pub(crate) struct Records<'a> {
    schema: &'a Schema,
    plan: Option<&'a Plan>,
    ids: &'a MatchSet,
    cur: Cursor<'a>,
    left: u64,
    block: u64,
    number: u64,
    slots: Vec<Option<Key>>,
}

impl<'a> Records<'a> {
    /// The `count` records of block `block` in `data` (decompressed), matched by `plan`
    /// (None: none is matched). A block of a schema whose records encode to nothing holds
    /// at most `max` records.
    pub(crate) fn new(
        schema: &'a Schema,
        (plan, ids): (Option<&'a Plan>, &'a MatchSet),
        data: &'a [u8],
        (block, count): (u64, u64),
        max: usize,
    ) -> Result<Self, AvroError> {
        let empty = schema.node(schema.root).is_some_and(|n| n.zero);
        let most = if empty { max } else { data.len() };
        if count > u64::try_from(most).unwrap_or(u64::MAX) {
            return Err(AvroError::CorruptBlock {
                block,
                reason: "it counts more records than its data holds",
            });
        }
        Ok(Self {
            schema,
            plan,
            ids,
            cur: Cursor::new(data),
            left: count,
            block,
            number: 0,
            slots: vec![None; plan.map_or(0, |p| p.slots)],
        })
    }

    /// The number of the record read last (from 1).
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// The next record's span in the data, its matches in `owners` (cleared first); None
    /// after the last record, when the data must end too.
    pub(crate) fn next(
        &mut self,
        owners: &mut Vec<u32>,
    ) -> Result<Option<Range<usize>>, AvroError> {
        owners.clear();
        if self.left == 0 {
            if !self.cur.is_empty() {
                return Err(AvroError::CorruptBlock {
                    block: self.block,
                    reason: "it has bytes after its last record",
                });
            }
            return Ok(None);
        }
        self.left -= 1;
        self.number += 1;
        let start = self.cur.pos();
        self.slots.iter_mut().for_each(|s| *s = None);
        let root = self.schema.root;
        let interest = self.plan.and_then(|p| p.root.as_ref());
        let read = match (interest, self.schema.node(root).map(|n| &n.ty)) {
            (Some(interest), Some(Type::Record { fields })) => record(
                self.schema,
                fields,
                interest,
                &mut self.cur,
                &mut self.slots,
                1,
            ),
            _ => skip(self.schema, root, &mut self.cur, 1),
        };
        read.map_err(|stop| AvroError::CorruptRecord {
            block: self.block,
            record: self.number,
            reason: match stop {
                Stop::Bad(reason) => reason,
                Stop::Short(_) => "it runs past the end of its block",
            },
        })?;
        if let Some(plan) = self.plan {
            plan.owners(&self.slots, self.ids, owners);
        }
        Ok(Some(start..self.cur.pos()))
    }
}

fn node_type(schema: &Schema, id: NodeId) -> Result<&Type, Stop> {
    schema
        .node(id)
        .map(|n| &n.ty)
        .ok_or(Stop::Bad("the schema is broken"))
}

/// The branch a union's value takes.
fn branch(c: &mut Cursor<'_>, branches: &[NodeId]) -> Result<NodeId, Stop> {
    let index = usize::try_from(c.long()?).ok();
    index
        .and_then(|i| branches.get(i).copied())
        .ok_or(Stop::Bad("a union branch is out of range"))
}

/// Reads past one value of type `id`, checking it.
fn skip(schema: &Schema, id: NodeId, c: &mut Cursor<'_>, depth: usize) -> Result<(), Stop> {
    if depth > MAX_DEPTH {
        return Err(Stop::Bad(TOO_DEEP));
    }
    match node_type(schema, id)? {
        Type::Null => {}
        Type::Boolean => {
            c.boolean()?;
        }
        Type::Int => {
            c.int()?;
        }
        Type::Long => {
            c.long()?;
        }
        Type::Float => {
            c.float()?;
        }
        Type::Double => {
            c.double()?;
        }
        Type::Bytes | Type::String => {
            c.bytes()?;
        }
        Type::Fixed { size } => {
            c.take(*size)?;
        }
        Type::Enum { symbols } => {
            let index = usize::try_from(c.int()?).ok();
            if index.is_none_or(|i| i >= symbols.len()) {
                return Err(Stop::Bad("an enum index is out of range"));
            }
        }
        Type::Record { fields } => {
            for field in fields {
                skip(schema, field.ty, c, depth + 1)?;
            }
        }
        Type::Array(items) => {
            let empty = schema.node(*items).is_some_and(|n| n.zero);
            blocks(c, empty, |c| skip(schema, *items, c, depth + 1))?;
        }
        Type::Map(values) => blocks(c, false, |c| {
            c.bytes()?;
            skip(schema, *values, c, depth + 1)
        })?,
        Type::Union(branches) => {
            let chosen = branch(c, branches)?;
            skip(schema, chosen, c, depth + 1)?;
        }
    }
    Ok(())
}

/// Reads an array's or a map's blocks of items; items that encode to nothing (`empty`)
/// are counted, not looped over.
pub(super) fn blocks(
    c: &mut Cursor<'_>,
    empty: bool,
    mut item: impl FnMut(&mut Cursor<'_>) -> Result<(), Stop>,
) -> Result<(), Stop> {
    loop {
        let count = c.long()?;
        if count == 0 {
            return Ok(());
        }
        let size = if count < 0 { Some(c.len()?) } else { None };
        let start = c.pos();
        if !empty {
            for _ in 0..count.unsigned_abs() {
                item(c)?;
            }
        }
        if size.is_some_and(|size| u64::try_from(c.pos() - start).ok() != Some(size)) {
            return Err(Stop::Bad(
                "a block of items does not have its stated byte size",
            ));
        }
    }
}

/// Reads a record's fields, the ones `interest` names into `slots`.
fn record(
    schema: &Schema,
    fields: &[Field],
    interest: &Interest,
    c: &mut Cursor<'_>,
    slots: &mut [Option<Key>],
    depth: usize,
) -> Result<(), Stop> {
    if depth > MAX_DEPTH {
        return Err(Stop::Bad(TOO_DEEP));
    }
    let mut wants = interest.fields.iter().peekable();
    for (i, field) in fields.iter().enumerate() {
        match wants.next_if(|(j, _)| *j == i) {
            Some((_, want)) => wanted(schema, field.ty, want, c, slots, depth + 1)?,
            None => skip(schema, field.ty, c, depth + 1)?,
        }
    }
    Ok(())
}

/// Reads a field a match column goes through or ends on (a null there is no value).
fn wanted(
    schema: &Schema,
    id: NodeId,
    want: &Want,
    c: &mut Cursor<'_>,
    slots: &mut [Option<Key>],
    depth: usize,
) -> Result<(), Stop> {
    let mut id = id;
    if let Type::Union(branches) = node_type(schema, id)? {
        id = branch(c, branches)?;
    }
    let node = schema.node(id).ok_or(Stop::Bad("the schema is broken"))?;
    match (want, &node.ty) {
        (_, Type::Null) => {}
        (Want::Value { slot, conv }, _) => {
            let key = values::read(c, *conv, node)?;
            if let Some(slot) = slots.get_mut(*slot) {
                *slot = key;
            }
        }
        (Want::Record(inner), Type::Record { fields }) => {
            record(schema, fields, inner, c, slots, depth)?;
        }
        (Want::Record(_), _) => return Err(Stop::Bad("a match column's path changed type")),
    }
    Ok(())
}
