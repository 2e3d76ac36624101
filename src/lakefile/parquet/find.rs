//! Find in one Parquet object: which row groups hold rows whose match columns equal a
//! match id, and how many rows. Reads the footer, prunes row groups with min/max
//! statistics and bloom filters, then decodes only the match columns of the row groups
//! that may match, one row group at a time (memory stays bounded by one row group's match
//! columns).
//!
//! Invariants: pruning is conservative — a row group is skipped only when statistics or a
//! bloom filter prove no id can be in it; a column whose type cannot be compared is an
//! error, never a silent miss; a match column the object lacks is NULL in it (searched on
//! the others, `parquet::schema`), and an object lacking all of them is an error.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Decimal128Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::ColumnOrder;
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::ChunkReader;

use super::prune;
use super::schema::{ObjectColumns, SchemaError};
use crate::domain::field_ids::FieldIds;
use crate::lakefile::match_set::{CompositeGroup, Exact, Key, KeyKind, MatchSet, Tuples};

/// Why an object could not be searched.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("corrupt or unreadable Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("column {column:?} has type {data_type}, which match ids cannot be compared with")]
    UnsupportedType { column: String, data_type: String },
    #[error(transparent)]
    Check(#[from] super::error::CheckError),
    #[error("the Parquet library failed on this object's bytes (a bug to report); refused")]
    Panicked,
    #[error("refused: {0}")]
    Refused(String),
    /// The footer's row counts disagree with each other or with the data: a reader that
    /// trusted them would search too few rows.
    #[error("the row counts do not add up: {0}; refused")]
    RowCount(String),
}

/// Fails unless the footer's row counts agree: every row group counts at least zero rows
/// and together they make the file's count. (apache/parquet-testing's
/// `repeated_no_annotation.parquet` says 0 rows in the file and 6 in its row group: a
/// reader trusting the file's count searches nothing.)
pub fn check_row_counts(metadata: &ParquetMetaData) -> Result<(), FindError> {
    let mut total: i64 = 0;
    for rg in 0..metadata.num_row_groups() {
        let rows = metadata.row_group(rg).num_rows();
        if rows < 0 {
            return Err(FindError::RowCount(format!(
                "row group {rg} counts {rows} rows"
            )));
        }
        total = total.saturating_add(rows);
    }
    let file = metadata.file_metadata().num_rows();
    if file != total {
        return Err(FindError::RowCount(format!(
            "the footer counts {file} rows, its row groups {total}"
        )));
    }
    Ok(())
}

/// Runs Parquet work on a file's bytes, turning a panic inside the Parquet library into
/// [`FindError::Panicked`]: that object fails with a reason, the worker carries on.
pub fn guarded<T>(work: impl FnOnce() -> Result<T, FindError>) -> Result<T, FindError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or(Err(FindError::Panicked))
}

/// What find learnt about one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindReport {
    pub rows_total: u64,
    pub rows_matched: u64,
    pub row_groups_total: usize,
    pub row_groups_pruned_by_statistics: usize,
    pub row_groups_pruned_by_bloom_filter: usize,
    /// Row groups with at least one matching row, ascending.
    pub matching_row_groups: Vec<usize>,
    /// Compressed bytes of the match-column chunks decoded (the footer not included).
    pub bytes_scanned: u64,
    /// Matching rows per queued match (its index in the match set): a row two matches
    /// name counts for both.
    pub rows_by_match: std::collections::BTreeMap<u32, u64>,
}

/// Searches one object. `columns` are dotted paths (nested struct fields), resolved as
/// [`ObjectColumns::resolve`] says. A row matches when any of the columns equals any id;
/// a column the object lacks is NULL in each row.
pub fn find<R: ChunkReader + Clone + 'static>(
    reader: R,
    columns: &[String],
    ids: &MatchSet,
) -> Result<FindReport, FindError> {
    find_with(reader, columns, ids, true)
}

/// Which row groups of an object find must read, from its footer alone.
#[derive(Debug, Clone)]
pub struct FindPlan {
    /// The match columns the object has (with their leaf indexes) and lacks.
    pub columns: ObjectColumns,
    /// Whether each composite group of the match set may match here (not when it names a
    /// match column the object lacks).
    pub live_groups: Vec<bool>,
    /// Row groups statistics cannot exclude, ascending.
    pub candidates: Vec<usize>,
    pub pruned_by_statistics: usize,
    /// Whether bloom filters may be probed (never with composites or pruning off).
    pub bloom: bool,
    /// Count the matching rows per queued match (find's per-subject account; a rewrite
    /// does not need it).
    pub attribute: bool,
}

impl FindPlan {
    /// Plans a find over an object with this footer; `columns` are found by their
    /// field-id paths when `field_ids` is given ([`ObjectColumns::resolve_by`]).
    pub fn new(
        metadata: &ParquetMetaData,
        (columns, field_ids): (&[String], Option<&FieldIds>),
        ids: &MatchSet,
    ) -> Result<Self, FindError> {
        check_row_counts(metadata)?;
        let schema = metadata.file_metadata().schema_descr();
        let columns = ObjectColumns::resolve_by(schema, columns, field_ids)?;
        // Composite matches are not used for pruning (conservative): with any, every row
        // group is read.
        let prune = ids.prunable();
        let candidates: Vec<usize> = (0..metadata.num_row_groups())
            .filter(|&rg| {
                !prune
                    || columns
                        .leaves
                        .iter()
                        .any(|&leaf| stats_may_match(metadata, rg, leaf, ids))
            })
            .collect();
        Ok(Self {
            pruned_by_statistics: metadata.num_row_groups() - candidates.len(),
            live_groups: columns.live_groups(ids),
            columns,
            candidates,
            bloom: prune,
            attribute: false,
        })
    }

    /// The report before any row group is read.
    pub fn report(&self, metadata: &ParquetMetaData) -> FindReport {
        FindReport {
            row_groups_total: metadata.num_row_groups(),
            rows_total: metadata.file_metadata().num_rows().max(0) as u64,
            row_groups_pruned_by_statistics: self.pruned_by_statistics,
            ..FindReport::default()
        }
    }

    /// The composite groups of `ids` that may match a row of this object.
    fn live_groups<'a>(&'a self, ids: &'a MatchSet) -> impl Iterator<Item = &'a CompositeGroup> {
        ids.composites()
            .iter()
            .zip(&self.live_groups)
            .filter_map(|(group, live)| live.then_some(group))
    }

    /// The byte ranges searching row group `rg` reads: the match-column chunks and those
    /// of their bloom filters whose length the footer gives (others are not probed).
    pub fn ranges(&self, metadata: &ParquetMetaData, rg: usize) -> Vec<std::ops::Range<u64>> {
        let group = metadata.row_group(rg);
        let mut ranges = Vec::new();
        for &leaf in &self.columns.leaves {
            let column = group.column(leaf);
            let (start, len) = column.byte_range();
            ranges.push(start..start.saturating_add(len));
            if let (true, Some(offset), Some(len)) = (
                self.bloom,
                column.bloom_filter_offset(),
                column.bloom_filter_length(),
            ) {
                let offset = offset.max(0) as u64;
                ranges.push(offset..offset.saturating_add(len.max(0) as u64));
            }
        }
        ranges
    }

    /// Whether row group `rg`'s bloom filters prove no id is in any match column. A
    /// filter of unknown length or that cannot be read proves nothing.
    fn bloom_excludes<R: ChunkReader>(
        &self,
        reader: &R,
        metadata: &ParquetMetaData,
        rg: usize,
        ids: &MatchSet,
    ) -> bool {
        if !self.bloom {
            return false;
        }
        let group = metadata.row_group(rg);
        self.columns.leaves.iter().all(|&leaf| {
            let column = group.column(leaf);
            !stats_may_match(metadata, rg, leaf, ids)
                || column.bloom_filter_length().is_some()
                    && matches!(
                        Sbbf::read_from_column_chunk(column, reader),
                        Ok(Some(bloom)) if !prune::bloom_may_match(&bloom, column.column_descr(), ids)
                    )
        })
    }
}

/// [`find`], probing bloom filters only when `bloom` is true.
pub fn find_with<R: ChunkReader + Clone + 'static>(
    reader: R,
    columns: &[String],
    ids: &MatchSet,
    bloom: bool,
) -> Result<FindReport, FindError> {
    let metadata = Arc::new(ParquetMetaDataReader::new().parse_and_finish(&reader)?);
    let mut plan = FindPlan::new(&metadata, (columns, None), ids)?;
    plan.attribute = true;
    plan.bloom &= bloom;
    let mut report = plan.report(&metadata);
    if plan.candidates.is_empty() || ids.is_empty() {
        return Ok(report);
    }
    let arrow_meta = arrow_metadata(metadata.clone())?;
    for &rg in &plan.candidates {
        let part = find_in_row_group(reader.clone(), &metadata, &arrow_meta, &plan, rg, ids)?;
        report.add(rg, &part);
    }
    Ok(report)
}

/// What searching one row group found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowGroupFind {
    PrunedByBloomFilter,
    /// Decoded: whether each row matches, the compressed bytes decoded, and the matching
    /// rows per queued match.
    Searched {
        hits: Vec<bool>,
        bytes: u64,
        by_match: RowsByMatch,
    },
}

impl FindReport {
    /// Adds one row group's outcome.
    pub fn add(&mut self, rg: usize, part: &RowGroupFind) {
        match part {
            RowGroupFind::PrunedByBloomFilter => self.row_groups_pruned_by_bloom_filter += 1,
            RowGroupFind::Searched {
                hits,
                bytes,
                by_match,
            } => {
                self.bytes_scanned += bytes;
                for (owner, rows) in by_match {
                    *self.rows_by_match.entry(*owner).or_default() += rows;
                }
                let matched = hits.iter().filter(|h| **h).count() as u64;
                if matched > 0 {
                    self.rows_matched += matched;
                    self.matching_row_groups.push(rg);
                }
            }
        }
    }
}

/// Searches row group `rg` (a candidate of `plan`): its bloom filters, then its match
/// columns. Reads only [`FindPlan::ranges`] of `rg`. With [`FindPlan::attribute`],
/// counts the matching rows per queued match (find's per-subject account).
pub fn find_in_row_group<R: ChunkReader + Clone + 'static>(
    reader: R,
    metadata: &ParquetMetaData,
    arrow_meta: &ArrowReaderMetadata,
    plan: &FindPlan,
    rg: usize,
    ids: &MatchSet,
) -> Result<RowGroupFind, FindError> {
    if plan.bloom_excludes(&reader, metadata, rg, ids) {
        return Ok(RowGroupFind::PrunedByBloomFilter);
    }
    let mask = ProjectionMask::leaves(
        metadata.file_metadata().schema_descr(),
        plan.columns.leaves.iter().copied(),
    );
    let (hits, by_match) = hits_in_row_group(reader, arrow_meta, mask, rg, plan, ids)?;
    let group = metadata.row_group(rg);
    // Every row the footer promises is decoded, and no more.
    if hits.len() as i64 != group.num_rows() {
        return Err(FindError::RowCount(format!(
            "row group {rg} decodes to {} rows, its footer counts {}",
            hits.len(),
            group.num_rows()
        )));
    }
    let bytes = plan
        .columns
        .leaves
        .iter()
        .map(|&l| group.column(l).compressed_size().max(0) as u64)
        .sum();
    Ok(RowGroupFind::Searched {
        hits,
        bytes,
        by_match,
    })
}

/// The field with its (nested) UTF-8 strings read as string views.
pub(crate) fn as_view(field: &arrow_schema::FieldRef) -> arrow_schema::FieldRef {
    let data_type = match field.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
        DataType::Struct(children) => DataType::Struct(children.iter().map(as_view).collect()),
        other => other.clone(),
    };
    Arc::new(field.as_ref().clone().with_data_type(data_type))
}

/// The Arrow view of an object's schema for reading match columns, strings as views (no
/// copy of the string bytes, which dominate scan time).
pub(crate) fn arrow_metadata(
    metadata: Arc<parquet::file::metadata::ParquetMetaData>,
) -> Result<ArrowReaderMetadata, FindError> {
    let plain = ArrowReaderMetadata::try_new(metadata.clone(), ArrowReaderOptions::new())?;
    let viewed = Schema::new_with_metadata(
        plain
            .schema()
            .fields()
            .iter()
            .map(as_view)
            .collect::<Vec<_>>(),
        plain.schema().metadata().clone(),
    );
    Ok(ArrowReaderMetadata::try_new(
        metadata,
        ArrowReaderOptions::new().with_schema(Arc::new(viewed)),
    )
    .unwrap_or(plain))
}

/// Matching rows per queued match (its index in the match set), ascending by index.
pub type RowsByMatch = Vec<(u32, u64)>;

/// Whether each row of row group `rg` matches, from its match columns (`mask`), and the
/// matching rows per queued match (with [`FindPlan::attribute`]).
fn hits_in_row_group<R: ChunkReader + 'static>(
    reader: R,
    meta: &ArrowReaderMetadata,
    mask: ProjectionMask,
    rg: usize,
    plan: &FindPlan,
    ids: &MatchSet,
) -> Result<(Vec<bool>, RowsByMatch), FindError> {
    let batches = ParquetRecordBatchReaderBuilder::new_with_metadata(reader, meta.clone())
        .with_projection(mask)
        .with_row_groups(vec![rg])
        .with_batch_size(8192)
        .build()?;
    let mut hits = Vec::new();
    let mut by_match: HashMap<u32, u64> = HashMap::new();
    for batch in batches {
        let batch = batch?;
        let batch_hits = row_hits(&batch, plan, ids)?;
        if plan.attribute && batch_hits.contains(&true) {
            count_owners(&batch, plan, ids, &batch_hits, &mut by_match)?;
        }
        hits.extend(batch_hits);
    }
    let mut by_match: Vec<(u32, u64)> = by_match.into_iter().collect();
    by_match.sort_unstable();
    Ok((hits, by_match))
}

/// Counts, per queued match, the matching rows of a batch that it names (a row named
/// by several matches counts once for each).
fn count_owners(
    batch: &RecordBatch,
    plan: &FindPlan,
    ids: &MatchSet,
    hits: &[bool],
    counts: &mut HashMap<u32, u64>,
) -> Result<(), FindError> {
    // Keys are read for the matching rows only (a one-row slice each: no copy).
    let key_at = |array: &ArrayRef, column: &str, row: usize| -> Result<Option<Key>, FindError> {
        Ok(keys_of(&array.slice(row, 1), column)?.pop().flatten())
    };
    let simple = plan
        .columns
        .present
        .iter()
        .map(|c| plan.columns.array_of(batch, c).map(|a| (a, c)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut groups = Vec::new();
    for group in plan.live_groups(ids) {
        let (arrays, cast) = group_columns(batch, &plan.columns, group)?;
        groups.push((arrays, &group.columns, cast));
    }
    let mut owners: Vec<u32> = Vec::new();
    for (row, _) in hits.iter().enumerate().filter(|(_, h)| **h) {
        owners.clear();
        for (array, column) in &simple {
            if let Some(key) = key_at(array, column, row)? {
                owners.extend_from_slice(ids.owners_of(&key, key_kind(array.data_type())));
            }
        }
        for (arrays, columns, tuples) in &groups {
            let tuple = arrays
                .iter()
                .zip(columns.iter())
                .map(|(a, c)| key_at(a, c, row))
                .collect::<Result<Option<Vec<Key>>, _>>()?;
            if let Some(found) = tuple.and_then(|t| tuples.get(&t)) {
                owners.extend_from_slice(found);
            }
        }
        owners.sort_unstable();
        owners.dedup();
        for owner in &owners {
            *counts.entry(*owner).or_default() += 1;
        }
    }
    Ok(())
}

/// Which rows of a batch of `plan`'s match columns match: any column the object has
/// equals a simple id, or the columns of a composite group that may match here form one
/// of its tuples.
pub fn row_hits(
    batch: &RecordBatch,
    plan: &FindPlan,
    ids: &MatchSet,
) -> Result<Vec<bool>, FindError> {
    let mut hits = vec![false; batch.num_rows()];
    for column in &plan.columns.present {
        let array = plan.columns.array_of(batch, column)?;
        mark_matches(&array, column, ids, &mut hits)?;
    }
    for group in plan.live_groups(ids) {
        let (arrays, cast) = group_columns(batch, &plan.columns, group)?;
        let keys = arrays
            .iter()
            .zip(&group.columns)
            .map(|(a, c)| keys_of(a, c))
            .collect::<Result<Vec<_>, _>>()?;
        for (row, hit) in hits.iter_mut().enumerate().filter(|(_, h)| !**h) {
            let tuple: Option<Vec<Key>> = keys.iter().map(|k| k[row].clone()).collect();
            *hit = tuple.is_some_and(|t| cast.contains_key(&t));
        }
    }
    Ok(hits)
}

/// A composite group's columns in a batch, and its tuples with each part cast to its
/// column's type in this file (`"42"` for an int column).
fn group_columns(
    batch: &RecordBatch,
    columns: &ObjectColumns,
    group: &CompositeGroup,
) -> Result<(Vec<ArrayRef>, Tuples), FindError> {
    let arrays = group
        .columns
        .iter()
        .map(|c| columns.array_of(batch, c))
        .collect::<Result<Vec<_>, _>>()?;
    let kinds: Vec<Option<KeyKind>> = arrays.iter().map(|a| key_kind(a.data_type())).collect();
    let cast = group.cast(&kinds);
    Ok((arrays, cast))
}

/// Sets `hits[row]` for rows whose value is a match id.
fn mark_matches(
    array: &ArrayRef,
    column: &str,
    ids: &MatchSet,
    hits: &mut [bool],
) -> Result<(), FindError> {
    match array.data_type() {
        DataType::Dictionary(_, value) => {
            let plain = arrow_cast::cast(array, value)?;
            mark_matches(&plain, column, ids, hits)
        }
        t if is_text(t) && ids.has_strings() => mark_text(array, ids, hits),
        t if is_number(t) && ids.has_numbers() => mark_numbers(array, ids, hits),
        // No id of the column's kind: nothing can match.
        t if is_text(t) || is_number(t) => Ok(()),
        other => Err(FindError::UnsupportedType {
            column: column.to_owned(),
            data_type: other.to_string(),
        }),
    }
}

/// A string type, or binary (strings written without an annotation).
fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
    )
}

/// An integer, floating point or decimal type.
fn is_number(data_type: &DataType) -> bool {
    data_type.is_integer()
        || matches!(
            data_type,
            DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..)
        )
}

/// Sets `hits[row]` for each row whose value is there and `is_id`.
fn mark_rows<T>(
    values: impl IntoIterator<Item = Option<T>>,
    hits: &mut [bool],
    is_id: impl Fn(T) -> bool,
) {
    for (hit, value) in hits.iter_mut().zip(values) {
        if value.is_some_and(&is_id) {
            *hit = true;
        }
    }
}

/// [`mark_matches`] for a text or binary column.
fn mark_text(array: &ArrayRef, ids: &MatchSet, hits: &mut [bool]) -> Result<(), FindError> {
    let is_id = |s: &str| ids.contains_str(s);
    match array.data_type() {
        DataType::Utf8 => mark_rows(array.as_string::<i32>(), hits, is_id),
        DataType::LargeUtf8 => mark_rows(array.as_string::<i64>(), hits, is_id),
        DataType::Utf8View => mark_rows(array.as_string_view(), hits, is_id),
        // Strings written without an annotation (old Hive, Impala): compared as text.
        _ => {
            let bytes = arrow_cast::cast(array, &DataType::Binary)?;
            let text = bytes
                .as_binary::<i32>()
                .iter()
                .map(|v| v.and_then(|b| std::str::from_utf8(b).ok()));
            mark_rows(text, hits, is_id);
        }
    }
    Ok(())
}

/// [`mark_matches`] for an integer, floating point or decimal column.
fn mark_numbers(array: &ArrayRef, ids: &MatchSet, hits: &mut [bool]) -> Result<(), FindError> {
    use arrow_array::types::{Float32Type, Float64Type, Int64Type, UInt64Type};
    match array.data_type() {
        DataType::UInt64 => {
            let values = array.as_primitive::<UInt64Type>();
            mark_rows(values, hits, |u| ids.contains_uint(u));
        }
        // A `float` column compares the ids cast to `float` (half floats widen exactly).
        DataType::Float16 | DataType::Float32 => {
            let floats = arrow_cast::cast(array, &DataType::Float32)?;
            mark_rows(floats.as_primitive::<Float32Type>(), hits, |f| {
                ids.contains_f32(f)
            });
        }
        DataType::Float64 => {
            let floats = array.as_primitive::<Float64Type>();
            mark_rows(floats, hits, |f| ids.contains_f64(f));
        }
        DataType::Decimal128(_, scale) => {
            let wanted = ids.decimals(*scale);
            let values = array.as_primitive::<Decimal128Type>();
            mark_rows(values, hits, |d| wanted.contains(&d));
        }
        _ => {
            let ints = arrow_cast::cast(array, &DataType::Int64)?;
            mark_rows(ints.as_primitive::<Int64Type>(), hits, |i| {
                ids.contains_int(i)
            });
        }
    }
    Ok(())
}

/// How a column's values compare with queued keys (None: as they are).
fn key_kind(data_type: &DataType) -> Option<KeyKind> {
    match data_type {
        DataType::Dictionary(_, value) => key_kind(value),
        t if is_text(t) => Some(KeyKind::Text),
        DataType::Decimal128(_, scale) => Some(KeyKind::Decimal(*scale)),
        t if t.is_integer() => Some(KeyKind::Int),
        DataType::Float16 | DataType::Float32 => Some(KeyKind::Float),
        DataType::Float64 => Some(KeyKind::Double),
        _ => None,
    }
}

/// Every row's value as a comparable key (None for nulls).
fn keys_of(array: &ArrayRef, column: &str) -> Result<Vec<Option<Key>>, FindError> {
    use arrow_array::types::{Float32Type, Float64Type, Int64Type, UInt64Type};
    use arrow_cast::cast;
    let keys = match array.data_type() {
        DataType::Dictionary(_, value) => return keys_of(&cast(array, value)?, column),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = cast(array, &DataType::Utf8)?;
            text.as_string::<i32>()
                .iter()
                .map(|v| v.map(|s| Key::Str(s.to_owned())))
                .collect()
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let bytes = cast(array, &DataType::Binary)?;
            bytes
                .as_binary::<i32>()
                .iter()
                .map(|v| {
                    v.and_then(|b| std::str::from_utf8(b).ok())
                        .map(|s| Key::Str(s.to_owned()))
                })
                .collect()
        }
        DataType::UInt64 => array
            .as_primitive::<UInt64Type>()
            .iter()
            .map(|v| v.map(|u| Key::Num(Exact::from_u64(u))))
            .collect(),
        t if t.is_integer() => {
            let ints = cast(array, &DataType::Int64)?;
            ints.as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(|i| Key::Num(Exact::from_i64(i))))
                .collect()
        }
        DataType::Decimal128(_, scale) => array
            .as_primitive::<Decimal128Type>()
            .iter()
            .map(|v| v.map(|d| Key::Num(Exact::from_unscaled(d, *scale))))
            .collect(),
        DataType::Float16 | DataType::Float32 => {
            let floats = cast(array, &DataType::Float32)?;
            floats
                .as_primitive::<Float32Type>()
                .iter()
                .map(|v| v.and_then(Key::f32))
                .collect()
        }
        DataType::Float64 => array
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.and_then(Key::f64))
            .collect(),
        other => {
            return Err(FindError::UnsupportedType {
                column: column.to_owned(),
                data_type: other.to_string(),
            });
        }
    };
    Ok(keys)
}

/// Whether row group `rg`'s statistics leave room for an id in leaf `leaf`.
fn stats_may_match(metadata: &ParquetMetaData, rg: usize, leaf: usize, ids: &MatchSet) -> bool {
    let group = metadata.row_group(rg);
    let column = group.column(leaf);
    let order = metadata
        .file_metadata()
        .column_orders()
        .and_then(|orders| orders.get(leaf).copied())
        .unwrap_or(ColumnOrder::UNDEFINED);
    prune::stats_may_match(
        column.column_descr(),
        order,
        column.statistics(),
        group.num_rows(),
        ids,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::types::Int32Type;
    use arrow_array::{Decimal128Array, DictionaryArray, Int64Array, StringArray, StructArray};
    use arrow_schema::{Field, Fields, Schema};
    use bytes::Bytes;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    use proptest::prelude::*;
    use serde_json::json;

    /// Writes a batch as Parquet with `rows_per_group` rows per row group.
    fn parquet(batch: &RecordBatch, rows_per_group: usize, bloom: bool) -> Bytes {
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(rows_per_group))
            .set_bloom_filter_enabled(bloom)
            .build();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
        Bytes::from(out)
    }

    fn people(n: i64) -> RecordBatch {
        let ids = Int64Array::from_iter_values(0..n);
        let emails = StringArray::from_iter_values(
            (0..n).map(|i| format!("user{}@example.com", (i * 7919) % n)),
        );
        let contact = StructArray::from(vec![(
            Arc::new(Field::new("email", DataType::Utf8, true)),
            Arc::new(emails) as ArrayRef,
        )]);
        let countries: DictionaryArray<Int32Type> = (0..n)
            .map(|i| ["fr", "de", "it"][(i % 3) as usize])
            .collect();
        let amounts = Decimal128Array::from_iter_values((0..n).map(|i| i as i128 * 100 + 34))
            .with_precision_and_scale(10, 2)
            .unwrap();
        let schema = Schema::new(vec![
            Field::new("customer_id", DataType::Int64, false),
            Field::new(
                "contact",
                DataType::Struct(Fields::from(vec![Field::new(
                    "email",
                    DataType::Utf8,
                    true,
                )])),
                true,
            ),
            Field::new("country", countries.data_type().clone(), false),
            Field::new("amount", DataType::Decimal128(10, 2), false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(ids),
                Arc::new(contact),
                Arc::new(countries),
                Arc::new(amounts),
            ],
        )
        .unwrap()
    }

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn statistics_prune_row_groups_that_cannot_hold_the_id() {
        let file = parquet(&people(4000), 1000, false);
        let report = find(
            file,
            &cols(&["customer_id"]),
            &MatchSet::from_values(&[json!(2500)]),
        )
        .unwrap();
        assert_eq!(report.row_groups_total, 4);
        assert_eq!(report.row_groups_pruned_by_statistics, 3);
        assert_eq!(report.matching_row_groups, [2]);
        assert_eq!(report.rows_matched, 1);
        assert_eq!(report.rows_total, 4000);
        assert!(report.bytes_scanned > 0);
    }

    #[test]
    fn bloom_filters_prune_where_statistics_cannot() {
        // Emails are spread over every row group, so min/max cannot exclude any.
        let ids =
            MatchSet::from_values(&[json!("user3919@example.com"), json!("nobody@example.com")]);
        let without = find(
            parquet(&people(4000), 1000, false),
            &cols(&["contact.email"]),
            &ids,
        )
        .unwrap();
        assert_eq!(
            without.row_groups_pruned_by_statistics + without.row_groups_pruned_by_bloom_filter,
            0
        );
        let with = find(
            parquet(&people(4000), 1000, true),
            &cols(&["contact.email"]),
            &ids,
        )
        .unwrap();
        assert_eq!(with.row_groups_pruned_by_bloom_filter, 3);
        assert_eq!(with.rows_matched, 1);
        assert_eq!(without.rows_matched, 1);
        assert_eq!(with.matching_row_groups, without.matching_row_groups);
    }

    #[test]
    fn any_of_several_columns_nested_dictionary_and_decimal_columns_match() {
        let file = parquet(&people(300), 100, false);
        let ids = MatchSet::from_values(&[json!("it"), json!(5), json!(12.34)]);
        let report = find(file.clone(), &cols(&["customer_id", "COUNTRY"]), &ids).unwrap();
        // 100 rows are "it" (i % 3 == 2), plus customer 5 (5 % 3 == 2, already counted).
        assert_eq!(report.rows_matched, 100);
        let amount = find(file, &cols(&["amount"]), &ids).unwrap();
        // 12.34 is row 12 (12 * 100 + 34 cents); 5 is 5.00, which no row has.
        assert_eq!(amount.rows_matched, 1);
        assert_eq!(amount.matching_row_groups, [0]);
    }

    #[test]
    fn composite_matches_need_every_column_to_equal() {
        let file = parquet(&people(300), 100, false);
        // Row 5: country "it" (5 % 3 == 2); row 6 is "fr".
        let ids = MatchSet::default().with_composites(&[
            json!([{"column": "customer_id", "value": 5}, {"column": "country", "value": "it"}]),
            json!([{"column": "customer_id", "value": 6}, {"column": "country", "value": "it"}]),
        ]);
        let report = find(file, &cols(&["customer_id", "country"]), &ids).unwrap();
        assert_eq!(report.rows_matched, 1);
        assert_eq!(report.matching_row_groups, [0]);
        assert_eq!(report.row_groups_pruned_by_statistics, 0);
    }

    #[test]
    fn matching_rows_are_counted_per_queued_match() {
        let file = parquet(&people(100), 50, false);
        // 5 and "5" name the same row; "0009" as a composite part is the int 9.
        let ids = MatchSet::from_values(&[json!(5), json!("5"), json!(70), json!("nobody")])
            .with_composites(&[json!([{"column": "customer_id", "value": "0009"}])]);
        let report = find(file, &cols(&["customer_id"]), &ids).unwrap();
        assert_eq!(report.rows_matched, 3);
        assert_eq!(
            report.rows_by_match.into_iter().collect::<Vec<_>>(),
            [(0, 1), (1, 1), (2, 1), (4, 1)]
        );
    }

    #[test]
    fn string_ids_match_numeric_columns_by_value_and_other_text_never() {
        let file = parquet(&people(100), 50, false);
        let report = find(
            file.clone(),
            &cols(&["customer_id"]),
            &MatchSet::from_values(&[json!("05")]),
        )
        .unwrap();
        assert_eq!(report.rows_matched, 1);
        let report = find(
            file.clone(),
            &cols(&["customer_id"]),
            &MatchSet::from_values(&[json!("5x"), json!("5.5")]),
        )
        .unwrap();
        assert_eq!(
            (report.rows_matched, report.row_groups_pruned_by_statistics),
            (0, 2)
        );
        let report = find(
            file,
            &cols(&["contact.email"]),
            &MatchSet::from_values(&[json!(5)]),
        )
        .unwrap();
        assert_eq!(report.rows_matched, 0);
    }

    #[test]
    fn missing_columns_and_corrupt_files_are_errors() {
        let file = parquet(&people(10), 10, false);
        let ids = MatchSet::from_values(&[json!(1)]);
        assert!(matches!(
            find(file.clone(), &cols(&["nope"]), &ids),
            Err(FindError::Schema(SchemaError::NoMatchColumn(_)))
        ));
        let mut broken = file.to_vec();
        let len = broken.len();
        broken[len - 6] ^= 0xff;
        assert!(find(Bytes::from(broken), &cols(&["customer_id"]), &ids).is_err());
        assert!(
            find(
                Bytes::from_static(b"not parquet"),
                &cols(&["customer_id"]),
                &ids
            )
            .is_err()
        );
    }

    #[test]
    fn composite_decimals_and_large_unsigned_values_match_exactly_or_not_at_all() {
        use arrow_array::{Decimal128Array, UInt64Array};
        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Decimal128(38, 17), false),
            Field::new("u", DataType::UInt64, false),
        ]));
        // 0.3 exactly, and 0.30000000000000001 (the same f64, not the same decimal).
        let d = Decimal128Array::from(vec![30_000_000_000_000_000i128, 30_000_000_000_000_001])
            .with_precision_and_scale(38, 17)
            .unwrap();
        let u = UInt64Array::from(vec![u64::MAX, u64::MAX - 1]);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(d), Arc::new(u)]).unwrap();
        let file = parquet(&batch, 10, false);
        let ids = MatchSet::default().with_composites(&[json!([
            {"column": "d", "value": 0.3}, {"column": "u", "value": u64::MAX}
        ])]);
        let report = find(file.clone(), &cols(&["d", "u"]), &ids).unwrap();
        assert_eq!(report.rows_matched, 1);
        let simple = find(
            file,
            &cols(&["u"]),
            &MatchSet::from_values(&[json!(u64::MAX - 1)]),
        )
        .unwrap();
        assert_eq!(simple.rows_matched, 1);
    }

    #[test]
    fn a_file_lacking_some_match_columns_is_searched_on_the_ones_it_has() {
        let file = parquet(&people(300), 100, false);
        // "email" is a column added later; "contact.phone" a field added to the struct.
        let columns = cols(&["email", "customer_id", "contact.phone"]);
        let ids = MatchSet::from_values(&[json!("user0@example.com"), json!(250), json!(7)]);
        let report = find(file.clone(), &columns, &ids).unwrap();
        assert_eq!(report.rows_matched, 2);
        assert_eq!(
            report.rows_by_match.into_iter().collect::<Vec<_>>(),
            [(1, 1), (2, 1)]
        );
        // Statistics of the column it has still prune (250 and 7: row groups 0 and 2).
        assert_eq!(report.row_groups_pruned_by_statistics, 1);
        let plan = FindPlan::new(
            &ParquetMetaDataReader::new()
                .parse_and_finish(&file)
                .unwrap(),
            (&columns, None),
            &ids,
        )
        .unwrap();
        assert_eq!(plan.columns.present, ["customer_id"]);
        assert_eq!(plan.columns.absent, ["email", "contact.phone"]);
    }

    #[test]
    fn a_file_with_none_of_the_match_columns_or_an_unreadable_one_fails() {
        let file = parquet(&people(10), 10, false);
        let ids = MatchSet::from_values(&[json!(1)]);
        let none = find(file.clone(), &cols(&["email", "contact.phone"]), &ids).unwrap_err();
        assert!(
            matches!(&none, FindError::Schema(SchemaError::NoMatchColumn(c)) if c == "email, contact.phone"),
            "{none}"
        );
        // A path through a value, or ending on a struct, is not a lacking column.
        for bad in ["customer_id.email", "contact"] {
            let err = find(file.clone(), &cols(&[bad, "country"]), &ids).unwrap_err();
            assert!(
                matches!(&err, FindError::Schema(SchemaError::Shape { column, .. }) if column == bad),
                "{err}"
            );
        }
        let ids_column = Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef;
        let ambiguous = file_of(vec![
            ("ID", ids_column.clone()),
            ("Id", ids_column.clone()),
            (
                "email",
                Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
            ),
        ]);
        let err = find(ambiguous, &cols(&["id", "email"]), &ids).unwrap_err();
        assert!(
            matches!(&err, FindError::Schema(SchemaError::AmbiguousColumn(c)) if c == "id"),
            "{err}"
        );
    }

    #[test]
    fn a_composite_naming_a_lacking_column_matches_no_row_of_that_file() {
        let file = parquet(&people(300), 100, false);
        let columns = cols(&["customer_id", "email"]);
        // Owners: 7 is 0; the composite on the lacking email is 1; the one on id alone 2.
        let ids = MatchSet::from_values(&[json!(7)]).with_composites(&[
            json!([{"column": "customer_id", "value": 5}, {"column": "email", "value": "user0@example.com"}]),
            json!([{"column": "customer_id", "value": 6}]),
        ]);
        let report = find(file.clone(), &columns, &ids).unwrap();
        assert_eq!(report.rows_matched, 2);
        assert_eq!(
            report.rows_by_match.into_iter().collect::<Vec<_>>(),
            [(0, 1), (2, 1)]
        );
        // A part on a column that is no match column (a partition key kept as a data
        // part) is not NULL: the object fails, as before.
        let on_key = MatchSet::default().with_composites(&[json!([
            {"column": "dt", "value": "2024-01-01"}, {"column": "customer_id", "value": 5}
        ])]);
        let err = find(file, &columns, &on_key).unwrap_err();
        assert!(
            matches!(&err, FindError::Schema(SchemaError::MissingColumn(c)) if c == "dt"),
            "{err}"
        );
    }

    /// A one-row-group file of these columns.
    fn file_of(columns: Vec<(&str, ArrayRef)>) -> Bytes {
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        parquet(&batch, 1000, false)
    }

    #[test]
    fn a_column_is_the_one_of_exactly_its_name_else_the_only_one_ignoring_case() {
        let upper = Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef;
        let lower = Arc::new(Int64Array::from(vec![3, 4, 5])) as ArrayRef;
        let file = file_of(vec![("ID", upper.clone()), ("id", lower.clone())]);
        let ids = MatchSet::from_values(&[json!(1), json!(2)]);
        let report = find(file.clone(), &cols(&["id"]), &ids).unwrap();
        assert_eq!(report.rows_matched, 0, "id is \"id\", not \"ID\"");
        let report = find(file, &cols(&["ID"]), &ids).unwrap();
        assert_eq!(report.rows_matched, 2);
        let ambiguous = file_of(vec![("ID", upper.clone()), ("Id", lower)]);
        let err = find(ambiguous, &cols(&["id"]), &ids).unwrap_err();
        assert!(
            matches!(&err, FindError::Schema(SchemaError::AmbiguousColumn(c)) if c == "id"),
            "{err}"
        );
        let only = file_of(vec![("Customer_ID", upper)]);
        assert_eq!(
            find(only, &cols(&["customer_id"]), &ids)
                .unwrap()
                .rows_matched,
            2
        );
    }

    #[test]
    fn float_columns_compare_ids_cast_to_float_and_double_columns_to_double() {
        use arrow_array::{Float32Array, Float64Array};
        let file = file_of(vec![
            (
                "f",
                Arc::new(Float32Array::from(vec![0.1f32, 0.2, -0.0])) as ArrayRef,
            ),
            (
                "d",
                Arc::new(Float64Array::from(vec![0.1f64, f64::from(0.1f32), 0.0])) as ArrayRef,
            ),
        ]);
        let ids = MatchSet::from_values(&[json!(0.1), json!(0)]);
        let f = find(file.clone(), &cols(&["f"]), &ids).unwrap();
        assert_eq!(f.rows_matched, 2, "0.1 cast to float, and 0 equal to -0.0");
        let d = find(file, &cols(&["d"]), &ids).unwrap();
        assert_eq!(d.rows_matched, 2, "the double 0.1f is not 0.1");
    }

    #[test]
    fn wide_decimals_and_integers_compare_exactly_with_text_ids() {
        let wide = Decimal128Array::from(vec![
            12_345_678_901_234_567_890_123i128,
            12_345_678_901_234_567_890_124,
        ])
        .with_precision_and_scale(38, 0)
        .unwrap();
        let ints = Int64Array::from(vec![4, 1000]);
        let file = file_of(vec![
            ("d", Arc::new(wide) as ArrayRef),
            ("i", Arc::new(ints) as ArrayRef),
        ]);
        let ids = MatchSet::from_values(&[json!("12345678901234567890123")]);
        let report = find(file.clone(), &cols(&["d"]), &ids).unwrap();
        assert_eq!(report.rows_matched, 1);
        assert_eq!(
            report.rows_by_match.into_iter().collect::<Vec<_>>(),
            [(0, 1)]
        );
        // CAST('4.0' AS bigint) and CAST('1e3' AS bigint) fail.
        let texts = MatchSet::from_values(&[json!("4.0"), json!("1e3")]);
        assert_eq!(
            find(file.clone(), &cols(&["i"]), &texts)
                .unwrap()
                .rows_matched,
            0
        );
        let exact = MatchSet::from_values(&[json!("0004")]);
        assert_eq!(find(file, &cols(&["i"]), &exact).unwrap().rows_matched, 1);
    }

    #[test]
    fn unannotated_byte_arrays_match_string_ids_as_text() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "name",
            DataType::Binary,
            true,
        )]));
        let names = arrow_array::BinaryArray::from(vec![Some(&b"ann"[..]), None, Some(b"bob")]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(names)]).unwrap();
        let report = find(
            parquet(&batch, 10, false),
            &cols(&["name"]),
            &MatchSet::from_values(&[json!("bob")]),
        )
        .unwrap();
        assert_eq!(
            (report.rows_matched, report.matching_row_groups.as_slice()),
            (1, &[0][..])
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn rows_matched_equals_a_naive_count(
            values in prop::collection::vec(0i64..200, 1..400),
            wanted in prop::collection::vec(0i64..220, 0..20),
            group in 1usize..100,
        ) {
            let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
            let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.clone()))]).unwrap();
            let ids: Vec<serde_json::Value> = wanted.iter().map(|w| json!(w)).collect();
            let report = find(parquet(&batch, group, true), &cols(&["id"]), &MatchSet::from_values(&ids)).unwrap();
            let naive = values.iter().filter(|v| wanted.contains(v)).count() as u64;
            prop_assert_eq!(report.rows_matched, naive);
            let groups: std::collections::BTreeSet<usize> = values.iter().enumerate().filter(|(_, v)| wanted.contains(v)).map(|(i, _)| i / group).collect();
            prop_assert_eq!(report.matching_row_groups, groups.into_iter().collect::<Vec<_>>());
        }
    }
}
