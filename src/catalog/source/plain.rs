//! Plain tables: files under prefixes, no table format over them. Their locations are
//! listed page by page and each object finds its partition from its key (its layout);
//! their objects are rewritten in place, so they refuse a table format's operations.
//!
//! Only the table's own objects are listed as its: a projected table's are those at the
//! paths its projection generates (`domain::projection`); an object of a partitioned
//! table in no partition is the table's but marked never to be rewritten.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;

use super::formats::refuse_formats_in_page;
use super::{ListAt, SourceError, SourcePage, TableObject, TableSource, relative_to};
use crate::domain::data_mapper::PathTable;
use crate::domain::hidden::{is_hidden, temporary_prefix};
use crate::domain::partition::{PartitionKey, values_from_path};
use crate::domain::prefix::dir_prefix;
use crate::domain::projection::Projection;
use crate::storage::{ObjectMeta, Place, Stores, skip_reason};

/// A plain table: its locations, its partition keys and how a listed object is placed.
#[derive(Debug)]
pub struct PlainTable {
    /// Listed one after the other, page by page; none inside another.
    pub(super) locations: Vec<String>,
    pub(super) keys: Vec<PartitionKey>,
    pub(super) layout: Layout,
    /// Warnings about how the table is listed (events).
    pub(super) notes: Vec<(&'static str, String)>,
}

/// How a listed object finds its partition.
#[derive(Debug)]
pub(super) enum Layout {
    /// Unpartitioned: every object in the one partition of no values.
    Unpartitioned,
    /// A `path` table: the `key=value` segments below the location.
    Path { names: Vec<String> },
    /// A projected Glue table: the paths its projection generates; any other object under
    /// its prefix is not the table's.
    Projected(Projection),
    /// A partitioned Glue table: an object in a registered partition's folder takes its
    /// values (`homes`: bucket, folder, values; longest folder first), any other its
    /// path's `key=value` values (a partition the crawler has not registered yet), else it
    /// is in no partition.
    Registered {
        names: Vec<String>,
        homes: Vec<(String, String, Vec<String>)>,
        table_place: Option<(String, String)>,
        registered: BTreeSet<Vec<String>>,
    },
}

impl PlainTable {
    /// A `path` table: its location, partitioned by the `key=value` folders of its keys.
    pub fn path(table: &PathTable) -> Self {
        let names = table.partition_keys.clone();
        Self {
            locations: vec![table.location.clone()],
            keys: PartitionKey::untyped(&names),
            layout: Layout::Path { names },
            notes: Vec::new(),
        }
    }

    /// Places one page's objects listed under `place` in their partitions; objects that
    /// are not the table's are named apart, and those found in partitions by their path
    /// or in none are counted.
    pub fn place(&self, place: &Arc<Place>, metas: Vec<ObjectMeta>) -> SourcePage {
        let mut page = SourcePage {
            objects: Vec::with_capacity(metas.len()),
            ..SourcePage::default()
        };
        let prefix = dir_prefix(&place.prefix);
        for meta in metas {
            match &self.layout {
                Layout::Unpartitioned => {
                    let below = below_start(&meta.key, &prefix);
                    page.objects
                        .push(placed(place, meta, Some(vec![]), below, &[]));
                }
                Layout::Path { names } => {
                    let below = below_start(&meta.key, &prefix);
                    let values = values_from_path(&meta.key[below..], names);
                    page.objects.push(placed(place, meta, values, below, names));
                }
                Layout::Projected(projection) => {
                    match projection.split(relative_to(place, &meta.key)) {
                        Some((values, name)) => {
                            let below = meta.key.len() - name.len();
                            page.objects
                                .push(placed(place, meta, Some(values), below, &[]));
                        }
                        None if meta.noncurrent.is_some() => {}
                        None => page.not_the_tables.push(meta.key),
                    }
                }
                Layout::Registered { .. } => self.place_registered(place, meta, &prefix, &mut page),
            }
        }
        page
    }

    /// [`Self::place`] for a partitioned Glue table without projection: a registered
    /// partition's folder, else the path's `key=value` folders, else no partition.
    fn place_registered(
        &self,
        place: &Arc<Place>,
        meta: ObjectMeta,
        prefix: &str,
        page: &mut SourcePage,
    ) {
        let Layout::Registered {
            names,
            homes,
            table_place,
            registered,
        } = &self.layout
        else {
            return;
        };
        let home = homes
            .iter()
            .find(|(b, p, _)| *b == place.bucket && meta.key.starts_with(p.as_str()));
        // Hidden is judged below the partition's location, else the table's.
        let (values, below, by_path) = match home {
            Some((_, p, values)) => (Some(values.clone()), p.len(), false),
            None => {
                let below = match table_place {
                    Some((_, p)) if meta.key.starts_with(p.as_str()) => p.len(),
                    _ => below_start(&meta.key, prefix),
                };
                (values_from_path(&meta.key[below..], names), below, true)
            }
        };
        let mut f = placed(place, meta, values, below, names);
        f.outside = f.values.is_none();
        if f.is_current_data() {
            match &f.values {
                Some(v) if by_path => {
                    page.unregistered += 1;
                    if !registered.contains(v) {
                        page.discovered.push(v.clone());
                    }
                }
                Some(_) => {}
                None => page.unplaced += 1,
            }
        }
        page.objects.push(f);
    }

    fn projection(&self) -> Option<&Projection> {
        match &self.layout {
            Layout::Projected(p) => Some(p),
            _ => None,
        }
    }
}

#[async_trait]
impl TableSource for PlainTable {
    fn locations(&self) -> &[String] {
        &self.locations
    }

    fn keys(&self) -> &[PartitionKey] {
        &self.keys
    }

    fn notes(&self) -> &[(&'static str, String)] {
        &self.notes
    }

    /// A registered table's partitions are counted from the catalog (plus those
    /// discovered by path), not per listed group.
    fn registered_partitions(&self) -> Option<usize> {
        match &self.layout {
            Layout::Registered { registered, .. } => Some(registered.len()),
            _ => None,
        }
    }

    /// Lists a page of every version under the location, refuses a table format's
    /// metadata over the table's objects (before anything is hidden), then places it.
    async fn list_page(
        &self,
        stores: &Stores,
        at: ListAt<'_>,
        checked: &mut Vec<String>,
    ) -> Result<SourcePage, SourceError> {
        let (place, listed) = super::list_versions(stores, at).await?;
        refuse_formats_in_page(&place, &listed.objects, self.projection(), checked).await?;
        let mut page = self.place(&place, listed.objects);
        page.next = listed.next;
        Ok(page)
    }
}

/// An object listed under `place`; its part below the table or partition location starts
/// at byte `below` of its key; `names` are the table's partition keys.
fn placed(
    place: &Arc<Place>,
    meta: ObjectMeta,
    values: Option<Vec<String>>,
    below: usize,
    names: &[String],
) -> TableObject {
    let rest = meta.key.get(below..).unwrap_or(&meta.key);
    let hidden = skip_reason(&meta).is_none() && is_hidden(rest, names);
    let temporary = temporary_prefix(&meta.key, rest)
        .filter(|_| hidden)
        .map(str::to_owned);
    TableObject {
        place: place.clone(),
        meta,
        values,
        outside: false,
        hidden,
        temporary,
    }
}

/// Where in `key` its part below `prefix` starts (0 when it is not under it).
fn below_start(key: &str, prefix: &str) -> usize {
    if key.starts_with(prefix) {
        prefix.len()
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::source::listing::listed_at;

    #[test]
    fn hidden_objects_are_judged_below_the_location_they_were_listed_under() {
        let keys = [
            "_raw/t/dt=1/part-0.parquet",
            "_raw/t/dt=__HIVE_DEFAULT_PARTITION__/part-0.parquet",
            "_raw/t/dt=1/_temporary/0/part-0.parquet",
            "_raw/t/dt=1/.part-0.parquet.crc",
            "_raw/t/_common_metadata",
            "_raw/t/dt=1/_SUCCESS",
        ];
        let table = PlainTable::path(&PathTable {
            location: "s3://lake/_raw/t/".into(),
            partition_keys: vec!["dt".to_owned()],
            ..path_table()
        });
        let (place, metas) = listed_at("s3://lake/_raw/t/", &keys);
        let page = table.place(&place, metas);
        let hidden: Vec<(&str, Option<&str>)> = page
            .objects
            .iter()
            .filter(|f| f.hidden)
            .map(|f| (f.meta.key.as_str(), f.temporary.as_deref()))
            .collect();
        assert_eq!(
            hidden,
            [
                (keys[2], Some("_raw/t/dt=1/_temporary/")),
                (keys[3], None),
                (keys[4], None),
            ],
            "the location's own `_raw` hides nothing; a marker is skipped, not hidden"
        );
    }

    fn path_table() -> PathTable {
        PathTable {
            location: "s3://lake/t/".into(),
            format: None,
            partition_keys: Vec::new(),
            csv: None,
        }
    }
}
