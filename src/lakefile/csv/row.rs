//! Which queued matches a record is: the match columns resolved to positions and readers
//! once ([`Plan`]), then each reading of a record looked up among the simple ids and the
//! composite tuples. LazySimple has one reading. OpenCSV has the record as opencsv
//! reads it (Hive's and Athena's parser, across lines), as the writer's rules read it
//! (pandas, Python's `csv`), and, when it spans lines, each line alone as Athena reads
//! it: the record matches when any of them does, so no reader sees the subject in a
//! row that stays.

use crate::lakefile::match_set::{Key, MatchSet, Tuples, tuple_owners};

use super::dialect::{Dialect, DialectKind};
use super::error::CsvError;
use super::fields::{Fields, Quoting, line_fields, lines, record_fields, split_simple, unescaped};
use super::value::Reader;
use super::written::written_fields;

/// A column read from its position.
#[derive(Debug, Clone)]
struct Slot {
    index: usize,
    reader: Reader,
}

/// A composite group: its columns' slots (in the group's column order) and its tuples
/// cast to those columns' kinds.
#[derive(Debug)]
struct Group {
    slots: Vec<Slot>,
    tuples: Tuples,
}

/// The match columns and composite groups resolved against a table's columns.
#[derive(Debug)]
pub struct Plan {
    simple: Vec<Slot>,
    groups: Vec<Group>,
    /// Fields read from each record (the last position any slot reads, plus one).
    needed: usize,
    /// The table's column count (where the last column takes the rest of the line).
    width: usize,
}

impl Plan {
    /// Resolves the mapper's match columns and the composite groups' columns against the
    /// column `names` (lowercase, by position). A column not there, or named twice, is
    /// an error, as is one of a type no id is compared with.
    pub fn resolve(
        dialect: &Dialect,
        names: &[String],
        columns: &[String],
        ids: &MatchSet,
    ) -> Result<Plan, CsvError> {
        let slot = |column: &str| slot(dialect, names, column);
        let mut simple: Vec<Slot> = Vec::new();
        for column in columns {
            let s = slot(column)?;
            if !simple.iter().any(|o| o.index == s.index) {
                simple.push(s);
            }
        }
        let mut groups = Vec::new();
        for group in ids.composites() {
            let slots = group
                .columns
                .iter()
                .map(|c| slot(c))
                .collect::<Result<Vec<_>, _>>()?;
            let kinds: Vec<_> = slots.iter().map(|s| Some(s.reader.kind())).collect();
            let tuples = group.cast(&kinds);
            groups.push(Group { slots, tuples });
        }
        let needed = simple
            .iter()
            .chain(groups.iter().flat_map(|g| &g.slots))
            .map(|s| s.index + 1)
            .max()
            .unwrap_or(0);
        Ok(Plan {
            simple,
            groups,
            needed,
            width: names.len(),
        })
    }
}

/// The slot of a column: its one position among `names`, its reader by its type.
fn slot(dialect: &Dialect, names: &[String], column: &str) -> Result<Slot, CsvError> {
    let wanted = column.to_lowercase();
    let mut at = names.iter().enumerate().filter(|(_, n)| **n == wanted);
    let (index, _) = at.next().ok_or_else(|| CsvError::UnknownColumn {
        column: column.to_owned(),
        count: names.len(),
    })?;
    if at.next().is_some() {
        return Err(CsvError::DuplicateColumn {
            column: column.to_owned(),
        });
    }
    let glue_type = dialect.type_at(index);
    let reader = Reader::of(dialect.kind, glue_type).map_err(|()| CsvError::UnsupportedColumn {
        column: column.to_owned(),
        glue_type: glue_type.unwrap_or_default().to_owned(),
    })?;
    Ok(Slot { index, reader })
}

/// The column names a header line gives (lowercase), as the dialect splits it.
pub fn header_names(dialect: &Dialect, body: &[u8]) -> Vec<String> {
    let names: Vec<String> = match quoting(dialect) {
        Some(q) => line_fields(&String::from_utf8_lossy(body), q, usize::MAX).values,
        None => split_simple(body, dialect.delimiter, dialect.escape, None, usize::MAX)
            .into_iter()
            .filter_map(|r| body.get(r))
            .map(|raw| {
                let athena = unescaped(raw, dialect.escape).into_iter().next();
                String::from_utf8_lossy(&athena.unwrap_or_default()).into_owned()
            })
            .collect(),
    };
    names.into_iter().map(|n| n.to_lowercase()).collect()
}

/// The OpenCSV rules' characters (None: LazySimple).
pub fn quoting(dialect: &Dialect) -> Option<Quoting> {
    (dialect.kind == DialectKind::OpenCsv).then(|| Quoting {
        separator: char::from(dialect.delimiter),
        quote: dialect.quote.map(char::from),
        escape: dialect.escape.map(char::from),
    })
}

/// The queued matches (indexes) a record (its bytes, without its final line ending) is,
/// each once. `record` names it in errors.
pub fn record_owners(
    dialect: &Dialect,
    plan: &Plan,
    ids: &MatchSet,
    body: &[u8],
    record: u64,
) -> Result<Vec<u32>, CsvError> {
    let mut owners = Vec::new();
    if plan.needed == 0 {
        return Ok(owners);
    }
    let unreadable = |reason| CsvError::Unreadable { record, reason };
    match quoting(dialect) {
        None => {
            let rest_from = dialect
                .last_column_takes_rest
                .then(|| plan.width.checked_sub(1))
                .flatten()
                .filter(|n| *n > 0);
            let ranges = split_simple(
                body,
                dialect.delimiter,
                dialect.escape,
                rest_from,
                plan.needed,
            );
            let null = dialect.null_text.as_deref().map(str::as_bytes);
            let field = |index: usize| {
                let raw = ranges.get(index).and_then(|r| body.get(r.clone()))?;
                (Some(raw) != null).then_some(raw)
            };
            reading_owners(plan, ids, &field, dialect.escape, &mut owners).map_err(unreadable)?;
        }
        Some(q) => {
            let text = String::from_utf8_lossy(body);
            let whole = [
                record_fields(&text, q, plan.needed),
                written_fields(&text, q, plan.needed),
            ];
            for reading in &whole {
                reading_owners(plan, ids, &text_field(reading), None, &mut owners)
                    .map_err(unreadable)?;
            }
            if lines(&text).nth(1).is_some() {
                for (line, _) in lines(&text) {
                    let alone = line_fields(line, q, plan.needed);
                    reading_owners(plan, ids, &text_field(&alone), None, &mut owners)
                        .map_err(unreadable)?;
                }
            }
        }
    }
    owners.sort_unstable();
    owners.dedup();
    Ok(owners)
}

/// An OpenCSV reading's field at a position (None: missing, so NULL).
fn text_field<'a>(fields: &'a Fields) -> impl Fn(usize) -> Option<&'a [u8]> + 'a {
    |index| fields.values.get(index).map(String::as_bytes)
}

/// Adds the matches one reading of a record is: a match column whose value is a simple
/// id, a composite group whose columns' values form one of its tuples.
fn reading_owners<'a>(
    plan: &Plan,
    ids: &MatchSet,
    field: &dyn Fn(usize) -> Option<&'a [u8]>,
    escape: Option<u8>,
    owners: &mut Vec<u32>,
) -> Result<(), &'static str> {
    let keys = |slot: &Slot| -> Result<Vec<Key>, &'static str> {
        match field(slot.index) {
            Some(raw) => slot.reader.keys(raw, escape),
            None => Ok(Vec::new()),
        }
    };
    for slot in &plan.simple {
        for key in keys(slot)? {
            owners.extend_from_slice(ids.owners_of(&key, Some(slot.reader.kind())));
        }
    }
    for group in &plan.groups {
        let mut candidates = Vec::with_capacity(group.slots.len());
        for slot in &group.slots {
            let k = keys(slot)?;
            if k.is_empty() {
                break;
            }
            candidates.push(k);
        }
        if candidates.len() == group.slots.len() {
            tuple_owners(&candidates, &group.tuples, owners);
        }
    }
    Ok(())
}
