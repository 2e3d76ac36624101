//! The metrics of an Iceberg data file (a manifest entry's record count, sizes, value /
//! null / NaN counts and lower / upper bounds), computed from its Parquet footer as
//! Iceberg's own writers do (pyiceberg's `data_file_statistics_from_parquet_metadata`,
//! Java's `ParquetUtil.footerMetrics`), under the table's metrics mode: the property
//! `write.metadata.metrics.default` (default `truncate(16)`) and per column
//! `write.metadata.metrics.column.<dotted name>`.
//!
//! Invariants: a bound is written only when it is certain. A field whose statistics are
//! missing in one row group, whose min/max are absent while it holds values, deprecated
//! (signed byte order) for byte arrays, NaN, of a physical type its Iceberg type does not
//! allow, or of an unexpected length gets no bound (and, for missing statistics, no null
//! count): a reader treats a missing bound as unknown, a wrong one would make it skip rows.
//! A leaf without a Parquet field id, or with one the schema lacks, gets no metrics. Only
//! top-level fields get bounds (pyiceberg's rule: a field inside a struct, list or map
//! keeps at most its counts), which also keeps fewer row values in manifests.
//!
//! Equal to pyiceberg 0.12's metrics for the files its writer and pyarrow write (tests).
//! Where they would differ, on purpose: an upper bound's truncation drops the code points
//! (bytes) after the incremented one, as Java does (pyiceberg keeps them; both are upper
//! bounds); the uncertain cases above give no bound where pyiceberg keeps the other row
//! groups' (or raises, on a type mismatch); "nested" is a field's place in the schema, not
//! a `.` in its name; NaN counts come from Parquet's `nan_count` when every row group has
//! one (pyiceberg writes none). Not done, as pyiceberg: Java's defaults of `none` beyond
//! the first 100 columns (`write.metadata.metrics.max-inferred-column-defaults`) and
//! `truncate(16)` at least for sort-order columns.

mod bounds;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData, RowGroupMetaData};
use parquet::file::statistics::Statistics;
use serde_json::Value as Json;

use self::bounds::{Primitive, Stat, chunk_bounds, serialize, widen};
use super::IcebergSchema;

/// The table property naming the metrics mode of every column without its own.
pub const DEFAULT_MODE_PROPERTY: &str = "write.metadata.metrics.default";
/// The prefix of the per-column metrics mode property (followed by the dotted name).
pub const COLUMN_MODE_PREFIX: &str = "write.metadata.metrics.column.";

/// The metrics of one data file, keyed by Iceberg field id, as a manifest entry holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataFileMetrics {
    pub record_count: i64,
    pub file_size_in_bytes: i64,
    /// Compressed bytes of each field's column chunks.
    pub column_sizes: BTreeMap<i32, i64>,
    pub value_counts: BTreeMap<i32, i64>,
    pub null_value_counts: BTreeMap<i32, i64>,
    /// Only where every row group's statistics carry a NaN count (Parquet's optional
    /// `nan_count`): unknown is absent, never zero.
    pub nan_value_counts: BTreeMap<i32, i64>,
    /// Iceberg's binary single-value serialization of each bound.
    pub lower_bounds: BTreeMap<i32, Vec<u8>>,
    pub upper_bounds: BTreeMap<i32, Vec<u8>>,
    /// Where each row group starts, ascending.
    pub split_offsets: Vec<i64>,
}

/// How much a column's metrics tell (Iceberg's `MetricsModes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsMode {
    /// Only the column's size.
    None,
    /// Sizes, value and null counts.
    Counts,
    /// Counts and bounds, strings and binaries truncated to this many characters / bytes.
    Truncate(usize),
    /// Counts and exact bounds.
    Full,
}

impl MetricsMode {
    /// Parses a mode as Iceberg does (case-insensitive, surrounding space ignored).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mode = text.trim().to_ascii_lowercase();
        let width = mode
            .strip_prefix("truncate(")
            .and_then(|rest| rest.strip_suffix(')'))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        match (mode.as_str(), width) {
            ("none", _) => Ok(Self::None),
            ("counts", _) => Ok(Self::Counts),
            ("full", _) => Ok(Self::Full),
            (_, Some(n)) => match n.parse::<usize>() {
                Ok(n) if n > 0 => Ok(Self::Truncate(n)),
                _ => Err(format!(
                    "the metrics mode {text:?} has no valid truncation length"
                )),
            },
            _ => Err(format!(
                "the metrics mode {text:?} is not an Iceberg metrics mode"
            )),
        }
    }
}

/// What is collected for one field id.
#[derive(Debug, Clone, Copy)]
struct Plan {
    primitive: Primitive,
    mode: MetricsMode,
}

/// The plan of every primitive field of the schema (through structs, lists and maps).
fn plan(
    schema: &IcebergSchema,
    properties: &BTreeMap<String, String>,
) -> Result<BTreeMap<i32, Plan>, String> {
    let default = match properties.get(DEFAULT_MODE_PROPERTY) {
        Some(mode) => MetricsMode::parse(mode)?,
        None => MetricsMode::Truncate(16),
    };
    let mut planner = Planner {
        properties,
        default,
        out: BTreeMap::new(),
    };
    for field in &schema.fields {
        planner.walk(field.id, &field.name, &field.ty, true, 0)?;
    }
    Ok(planner.out)
}

struct Planner<'a> {
    properties: &'a BTreeMap<String, String>,
    default: MetricsMode,
    out: BTreeMap<i32, Plan>,
}

impl Planner<'_> {
    fn walk(
        &mut self,
        id: i64,
        path: &str,
        ty: &Json,
        top: bool,
        depth: usize,
    ) -> Result<(), String> {
        if depth > 100 {
            return Ok(());
        }
        let Some(nested) = ty.as_object() else {
            let primitive = Primitive::parse(ty.as_str().unwrap_or_default());
            return self.leaf(id, path, primitive, top);
        };
        let child = |key: &str| nested.get(key).unwrap_or(&Json::Null);
        match child("type").as_str() {
            Some("struct") => {
                let fields = child("fields").as_array().map_or(&[][..], Vec::as_slice);
                for f in fields {
                    let (Some(id), Some(name)) = (f["id"].as_i64(), f["name"].as_str()) else {
                        continue;
                    };
                    self.walk(id, &format!("{path}.{name}"), &f["type"], false, depth + 1)?;
                }
            }
            Some("list") => {
                let id = child("element-id").as_i64().unwrap_or(-1);
                self.walk(
                    id,
                    &format!("{path}.element"),
                    child("element"),
                    false,
                    depth + 1,
                )?;
            }
            Some("map") => {
                let key = child("key-id").as_i64().unwrap_or(-1);
                self.walk(key, &format!("{path}.key"), child("key"), false, depth + 1)?;
                let value = child("value-id").as_i64().unwrap_or(-1);
                self.walk(
                    value,
                    &format!("{path}.value"),
                    child("value"),
                    false,
                    depth + 1,
                )?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The mode of one primitive field: its own property or the default, then truncation
    /// only for strings and binaries, and no bounds below the top level.
    fn leaf(&mut self, id: i64, path: &str, primitive: Primitive, top: bool) -> Result<(), String> {
        let Ok(id) = i32::try_from(id) else {
            return Ok(());
        };
        let own = self
            .properties
            .get(&format!("{COLUMN_MODE_PREFIX}{path}"))
            .filter(|m| !m.is_empty());
        let mut mode = match own {
            Some(mode) => MetricsMode::parse(mode)?,
            None => self.default,
        };
        if matches!(mode, MetricsMode::Truncate(_))
            && !matches!(primitive, Primitive::String | Primitive::Binary)
        {
            mode = MetricsMode::Full;
        }
        if !top && matches!(mode, MetricsMode::Truncate(_) | MetricsMode::Full) {
            mode = MetricsMode::Counts;
        }
        self.out.insert(id, Plan { primitive, mode });
        Ok(())
    }
}

/// One field's metrics, summed over its column chunks.
struct Acc {
    size: i64,
    values: i64,
    /// `None` once a chunk lacked the count.
    nulls: Option<i64>,
    nans: Option<i64>,
    /// `None` once a bound became unknown; `Some(None)` while every chunk was all null.
    bounds: Option<Option<(Stat, Stat)>>,
}

impl Acc {
    fn new() -> Self {
        Self {
            size: 0,
            values: 0,
            nulls: Some(0),
            nans: Some(0),
            bounds: Some(None),
        }
    }

    fn add(&mut self, chunk: &ColumnChunkMetaData, plan: Plan) {
        self.size = self.size.saturating_add(chunk.compressed_size());
        if plan.mode == MetricsMode::None {
            return;
        }
        self.values = self.values.saturating_add(chunk.num_values());
        let Some(stats) = chunk.statistics() else {
            (self.nulls, self.nans, self.bounds) = (None, None, None);
            return;
        };
        self.nulls = sum(self.nulls, stats.null_count_opt());
        self.nans = sum(self.nans, stats.nan_count_opt());
        if plan.mode == MetricsMode::Counts {
            return;
        }
        if stats.min_bytes_opt().is_none()
            && stats.max_bytes_opt().is_none()
            && holds_no_bound(stats, chunk.num_values())
        {
            return;
        }
        let chunk_bounds = chunk_bounds(stats, chunk.column_descr(), plan.primitive);
        self.bounds = match (self.bounds.take(), chunk_bounds) {
            (Some(None), Some(b)) => Some(Some(b)),
            (Some(Some((lo, hi))), Some((l, h))) => widen(lo, hi, l, h),
            _ => None,
        };
    }
}

/// Whether a chunk without min and max holds only values no bound covers: nulls, or for
/// floats NaNs (Arrow C++ and parquet-mr write no min/max for a chunk of NaNs and nulls,
/// and most footers carry no NaN count: then a float chunk is taken as one, as pyiceberg
/// and Java's `footerMetrics` take it). Any other chunk without min/max makes the bounds
/// unknown.
fn holds_no_bound(stats: &Statistics, values: i64) -> bool {
    let values = u64::try_from(values).unwrap_or(u64::MAX);
    let nulls = stats.null_count_opt();
    if nulls == Some(values) {
        return true;
    }
    let float = matches!(stats, Statistics::Float(_) | Statistics::Double(_));
    match (nulls, stats.nan_count_opt()) {
        (Some(nulls), Some(nans)) => float && nulls.checked_add(nans) == Some(values),
        (_, None) => float,
        (None, Some(_)) => false,
    }
}

fn sum(total: Option<i64>, count: Option<u64>) -> Option<i64> {
    total?.checked_add(i64::try_from(count?).ok()?)
}

/// Where a row group starts: its first column's dictionary page when that comes first.
fn split_offset(row_group: &RowGroupMetaData) -> Option<i64> {
    let first = row_group.columns().first()?;
    let data = first.data_page_offset();
    Some(match first.dictionary_page_offset() {
        Some(dict) if dict > 0 && dict < data => dict,
        _ => data,
    })
}

/// Computes a Parquet data file's metrics for its manifest entry, from its footer, under
/// the table's metrics mode (`properties`), by the field ids of the file's leaves and the
/// types of `schema` (the table's current schema). Fails only on a metrics mode property
/// Iceberg would not parse.
pub fn data_file_metrics(
    footer: &ParquetMetaData,
    file_size: u64,
    schema: &IcebergSchema,
    properties: &BTreeMap<String, String>,
) -> Result<DataFileMetrics, String> {
    let plans = plan(schema, properties)?;
    let mut accs: BTreeMap<i32, (Plan, Acc)> = BTreeMap::new();
    for row_group in footer.row_groups() {
        for chunk in row_group.columns() {
            let info = chunk.column_descr().self_type().get_basic_info();
            let Some(plan) = info.has_id().then(|| plans.get(&info.id())).flatten() else {
                continue;
            };
            let (_, acc) = accs.entry(info.id()).or_insert((*plan, Acc::new()));
            acc.add(chunk, *plan);
        }
    }
    let mut metrics = DataFileMetrics {
        record_count: footer.file_metadata().num_rows(),
        file_size_in_bytes: i64::try_from(file_size).map_err(|_| "the file is too large")?,
        split_offsets: footer
            .row_groups()
            .iter()
            .filter_map(split_offset)
            .collect(),
        ..DataFileMetrics::default()
    };
    metrics.split_offsets.sort_unstable();
    for (id, (plan, acc)) in accs {
        collect(&mut metrics, id, plan, acc);
    }
    Ok(metrics)
}

/// Moves one field's sums into the metrics, as far as its mode lets them.
fn collect(metrics: &mut DataFileMetrics, id: i32, plan: Plan, acc: Acc) {
    metrics.column_sizes.insert(id, acc.size);
    if plan.mode == MetricsMode::None {
        return;
    }
    metrics.value_counts.insert(id, acc.values);
    if let Some(nulls) = acc.nulls {
        metrics.null_value_counts.insert(id, nulls);
    }
    if let (Some(nans), Primitive::Float | Primitive::Double) = (acc.nans, plan.primitive) {
        metrics.nan_value_counts.insert(id, nans);
    }
    let Some(Some((lo, hi))) = acc.bounds else {
        return;
    };
    let width = match plan.mode {
        MetricsMode::Truncate(n) => Some(n),
        MetricsMode::Full => None,
        MetricsMode::None | MetricsMode::Counts => return,
    };
    if let Some(lo) = serialize(plan.primitive, &lo, width, false) {
        metrics.lower_bounds.insert(id, lo);
    }
    if let Some(hi) = serialize(plan.primitive, &hi, width, true) {
        metrics.upper_bounds.insert(id, hi);
    }
}
