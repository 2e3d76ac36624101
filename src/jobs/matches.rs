//! The match sets a task searches with: the job's queued match ids for one data mapper,
//! reduced per partition when a composite names a partition key, cached per worker
//! (loading 100k ids once per task would dominate a task's cost).

use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use uuid::Uuid;

use crate::db::job_data_mapper::{self as mappers, MapperSnapshot, TableReading};
use crate::domain::data_mapper::{CatalogRef, Format, TableDef};
use crate::domain::hive_type::field_at_path;
use crate::domain::json_serde::JsonSerde;
use crate::domain::match_id::{MatchId, Part, Scalar};
use crate::domain::partition::{PartitionKey, reduce_composite};
use crate::lakefile::format::{Records, TableSettings};
use crate::lakefile::match_set::MatchSet;

/// The job's match ids for one mapper.
pub struct Matches {
    pub simple: Vec<Scalar>,
    pub composites: Vec<Vec<Part>>,
}

/// The queued match ids of the job that apply to `mapper`.
pub async fn load_matches(db: &PgPool, job_id: Uuid, mapper: &str) -> sqlx::Result<Matches> {
    let mut m = Matches {
        simple: Vec::new(),
        composites: Vec::new(),
    };
    for id in mappers::match_ids(db, job_id, mapper).await? {
        match id {
            MatchId::Composite(parts) => m.composites.push(parts),
            MatchId::Simple(value) => m.simple.push(value),
        }
    }
    Ok(m)
}

/// Match sets per partition: composite matches on partition keys reduce to their data
/// parts (or to "every row") inside a partition.
pub struct PartitionSets {
    simple: Vec<Scalar>,
    composites: Vec<Vec<Part>>,
    table_partition_keys: Vec<PartitionKey>,
    matchable: Vec<String>,
    base: Arc<MatchSet>,
    /// Some composite names a partition key.
    by_partition: bool,
    /// Declared types of the match columns (JSON Lines mappers: how a line's value is
    /// read before it is compared).
    declared: Vec<(String, String)>,
    /// The Glue table's JSON SerDe rules (which keys a column is read from).
    serde: Option<JsonSerde>,
    /// How the mapper's objects are read (Err: why they cannot be, exactly).
    records: Result<Records, String>,
}

impl PartitionSets {
    pub fn new(
        m: Matches,
        table_partition_keys: Vec<PartitionKey>,
        matchable: Vec<String>,
        declared: Vec<(String, String)>,
        serde: Option<JsonSerde>,
        records: Result<Records, String>,
    ) -> Self {
        let by_partition = m.composites.iter().flatten().any(|p| {
            matchable.iter().any(|k| k.eq_ignore_ascii_case(&p.column))
                && table_partition_keys
                    .iter()
                    .any(|k| k.name.eq_ignore_ascii_case(&p.column))
        });
        let first = m.simple.len() as u32;
        let base = Arc::new(
            MatchSet::from_ids(&m.simple)
                .with_composites_owned(
                    m.composites
                        .iter()
                        .enumerate()
                        .map(|(j, c)| (first + j as u32, c.as_slice())),
                )
                .with_declared(declared.iter().map(|(c, t)| (c.as_str(), t.as_str())))
                .with_serde(serde.clone()),
        );
        Self {
            declared,
            serde,
            simple: m.simple,
            composites: m.composites,
            table_partition_keys,
            matchable,
            base,
            by_partition,
            records,
        }
    }

    /// How the mapper's objects are read; Err: why they cannot be read exactly.
    pub fn records(&self) -> Result<&Records, String> {
        self.records.as_ref().map_err(Clone::clone)
    }

    /// The set to search an object of this partition with, and the matches (their index
    /// in [`PartitionSets::value_of`]) every row of it is: none unless a composite names
    /// only partition keys of this partition.
    pub fn for_partition(&self, values: Option<&[String]>) -> (Arc<MatchSet>, Vec<u32>) {
        if !self.by_partition {
            return (self.base.clone(), Vec::new());
        }
        let first = self.simple.len() as u32;
        let reduced: Vec<(u32, Vec<Part>)> = self
            .composites
            .iter()
            .enumerate()
            .filter_map(|(j, c)| {
                reduce_composite(values, &self.table_partition_keys, &self.matchable, c)
                    .map(|parts| (first + j as u32, parts))
            })
            .collect();
        let every_row = reduced
            .iter()
            .filter(|(_, c)| c.is_empty())
            .map(|(owner, _)| *owner)
            .collect();
        let set = MatchSet::from_ids(&self.simple)
            .with_composites_owned(reduced.iter().map(|(owner, c)| (*owner, c.as_slice())))
            .with_declared(self.declared.iter().map(|(c, t)| (c.as_str(), t.as_str())))
            .with_serde(self.serde.clone());
        (Arc::new(set), every_row)
    }

    /// The queued match a match-set index stands for.
    pub fn value_of(&self, owner: u32) -> Option<MatchId> {
        let i = owner as usize;
        match self.simple.get(i) {
            Some(simple) => Some(MatchId::Simple(simple.clone())),
            None => Some(MatchId::Composite(
                self.composites
                    .get(i.checked_sub(self.simple.len())?)?
                    .clone(),
            )),
        }
    }
}

/// How a job mapper's objects are read: its format with the table settings find read
/// (a `path` mapper's are its own).
pub fn records_of(snapshot: &MapperSnapshot) -> Result<Records, String> {
    records_for(
        snapshot.format,
        snapshot.read_at_find.as_ref(),
        &snapshot.catalog,
    )
}

/// How objects of `format` are read on a table read as `reading` (None: no catalog
/// reading) described by `catalog`; Err: why they cannot be read exactly.
pub fn records_for(
    format: Format,
    reading: Option<&TableReading>,
    catalog: &CatalogRef,
) -> Result<Records, String> {
    let settings = TableSettings {
        serde_library: reading.and_then(|r| r.serde_library.as_deref()),
        serde_parameters: reading.map(|r| &r.serde_parameters),
        columns: reading.map_or(&[], |r| r.table_columns.as_slice()),
        path: match catalog {
            CatalogRef::Path(path) => Some(path),
            CatalogRef::Glue(_) => None,
        },
    };
    Records::new(format, &settings)
}

/// The declared types a mapper's values are read by, when its format reads by them (text
/// formats): the column types as find read the table (else as the mapper was written).
fn declared_types(snapshot: &MapperSnapshot, records: Option<&Records>) -> Vec<(String, String)> {
    if !records.is_some_and(Records::reads_declared_types) {
        return Vec::new();
    }
    let types = match &snapshot.read_at_find {
        Some(reading) => &reading.column_types,
        None => &snapshot.column_types,
    };
    types.iter().map(|(c, t)| (c.clone(), t.clone())).collect()
}

/// The SerDe rules a JSON Lines mapper's lines are read by, as find read its table (None
/// for other SerDes).
fn json_serde(snapshot: &MapperSnapshot) -> Option<JsonSerde> {
    snapshot.read_at_find.as_ref()?.serde.clone()
}

/// How a JSON Lines mapper's Glue table is read now: its match columns' types and its
/// SerDe's key rules.
pub fn table_reading(columns: &[String], table: &TableDef) -> TableReading {
    let column_types = columns
        .iter()
        .filter_map(|c| {
            let path: Vec<String> = c.split('.').map(str::to_owned).collect();
            let ty = field_at_path(&table.columns, &path).ok()?;
            Some((c.clone(), ty.to_string()))
        })
        .collect();
    // The SerDe's parameters with the table's own (`skip.header.line.count` is a table
    // property), the SerDe's winning.
    let mut serde_parameters = table.parameters.clone();
    serde_parameters.extend(table.serde_parameters.clone());
    TableReading {
        column_types,
        serde: JsonSerde::of_table(table.serde_library.as_deref(), &table.serde_parameters),
        serde_library: table.serde_library.clone(),
        serde_parameters,
        table_columns: table
            .columns
            .iter()
            .map(|(name, ty)| (name.clone(), ty.to_string()))
            .collect(),
        table_format: table.table_format().map(|f| f.name().to_owned()),
        metadata_location: table.metadata_location().map(str::to_owned),
        // The table source's, once it is resolved (`jobs::find_mapper`).
        field_ids: Default::default(),
    }
}

/// A job mapper's match sets and definition, keyed by (job, mapper).
type Cached = ((Uuid, String), Arc<PartitionSets>, Arc<MapperSnapshot>);

/// The match sets of the last few job/mappers this worker used.
#[derive(Default)]
pub struct SetCache(Mutex<Vec<Cached>>);

/// Job/mappers a [`SetCache`] keeps (each may hold many ids).
const CACHED: usize = 4;

impl SetCache {
    /// The match sets and definition of `mapper` in the job; `table_keys` are the table's
    /// partition keys (the order of the objects' partition values).
    pub async fn get(
        &self,
        db: &PgPool,
        job_id: Uuid,
        mapper: &str,
        table_keys: &[PartitionKey],
    ) -> sqlx::Result<(Arc<PartitionSets>, Arc<MapperSnapshot>)> {
        let key = (job_id, mapper.to_owned());
        if let Ok(cache) = self.0.lock()
            && let Some((_, sets, snapshot)) = cache.iter().find(|(k, _, _)| *k == key)
        {
            return Ok((sets.clone(), snapshot.clone()));
        }
        let snapshot = mappers::get(db, job_id, mapper).await?;
        let matches = load_matches(db, job_id, mapper).await?;
        let records = records_of(&snapshot);
        let sets = Arc::new(PartitionSets::new(
            matches,
            table_keys.to_vec(),
            snapshot.partition_keys.clone(),
            declared_types(&snapshot, records.as_ref().ok()),
            json_serde(&snapshot),
            records,
        ));
        let snapshot = Arc::new(snapshot);
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() == CACHED {
                cache.remove(0);
            }
            cache.push((key, sets.clone(), snapshot.clone()));
        }
        Ok((sets, snapshot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::hive_type::HiveType;
    use crate::domain::json_serde::OPENX;

    #[test]
    fn a_json_table_is_read_with_the_types_and_serde_it_has_at_find_time() {
        let table = TableDef {
            columns: vec![
                ("customer_id".into(), HiveType::parse("bigint").unwrap()),
                ("user".into(), HiveType::parse("struct<id:int>").unwrap()),
            ],
            serde_library: Some(OPENX.into()),
            serde_parameters: [("mapping.customer_id".into(), "CustomerID".into())].into(),
            ..Default::default()
        };
        let columns = ["customer_id", "user.id", "dropped"].map(String::from);
        let reading = table_reading(&columns, &table);
        assert_eq!(
            reading.column_types,
            [
                ("customer_id".to_owned(), "bigint".to_owned()),
                ("user.id".to_owned(), "int".to_owned())
            ]
            .into(),
            "a column the table no longer has is untyped"
        );
        let serde = reading.serde.clone().expect("the OpenX rules");
        assert_eq!(serde.mapping["customer_id"], "CustomerID");

        // The mapper row's types (written earlier) give way to the ones find read.
        let snapshot: MapperSnapshot = serde_json::from_value(serde_json::json!({
            "catalog": {"provider": "glue", "database": "d", "table": "t"},
            "format": "json", "columns": columns, "partition_keys": [],
            "ignore_object_not_found": false, "delete_old_versions": true,
            "column_types": {"customer_id": "string"},
            "read_at_find": reading,
        }))
        .unwrap();
        let records = records_of(&snapshot).unwrap();
        assert!(
            declared_types(&snapshot, Some(&records))
                .contains(&("customer_id".into(), "bigint".into()))
        );
        assert_eq!(json_serde(&snapshot), Some(serde));
        // A snapshot from before find read the table keeps the mapper row's types.
        let mut older = snapshot;
        older.read_at_find = None;
        assert_eq!(
            declared_types(&older, Some(&records)),
            [("customer_id".to_owned(), "string".to_owned())]
        );
        assert_eq!(json_serde(&older), None);
        // A Parquet mapper's files carry their own types.
        older.format = crate::domain::data_mapper::Format::Parquet;
        let parquet = records_of(&older).unwrap();
        assert!(declared_types(&older, Some(&parquet)).is_empty());
    }
}
