//! The table-format refusals of plain tables: a table format's metadata folder
//! (`_delta_log/`, `.hoodie/`, Iceberg's `metadata/`) over any of the table's objects
//! refuses the table, whatever the catalog entry says (a catalog entry naming a format is
//! refused in `glue`). The check runs on each listed page before anything is hidden:
//! `_delta_log/` is a hidden folder.

use std::collections::{BTreeMap, HashSet};

use super::{SourceError, relative_to};
use crate::domain::data_mapper::TableFormat;
use crate::domain::projection::Projection;
use crate::storage::{ObjectMeta, Place};

/// Table-format roots whose check is remembered across pages (a projected table's).
const MAX_FORMAT_ROOTS_KEPT: usize = 1000;

/// Fails when a table format's metadata folder (`_delta_log/`, `.hoodie/`, Iceberg's
/// `metadata/`) lies among `metas` (listed under `place`) and an object of the table
/// (`of_table`) among them lies under that format table's root: its data files must not be
/// rewritten in place.
pub(super) fn refuse_table_formats(
    place: &Place,
    metas: &[ObjectMeta],
    of_table: impl Fn(&Place, &ObjectMeta) -> bool,
) -> Result<(), SourceError> {
    let mut roots = BTreeMap::new();
    // A format's old metadata (noncurrent, or behind a delete marker) is not a table.
    for meta in metas.iter().filter(|m| m.noncurrent.is_none()) {
        if let Some((format, root)) = TableFormat::locate(&meta.key) {
            roots
                .entry(root.to_owned())
                .or_insert((format, meta.key.as_str()));
        }
    }
    for (root, (format, key)) in roots {
        let holds = metas
            .iter()
            .any(|m| m.key.starts_with(root.as_str()) && of_table(place, m));
        if holds {
            return Err(SourceError::Refused(format!(
                "{} holds {key}: {}",
                place.location_of(&root),
                format.refusal()
            )));
        }
    }
    Ok(())
}

/// [`refuse_table_formats`] for one page: any format metadata fails a table that is not
/// projected (its location holds it); under a projection, each format root the page
/// shows is listed whole (once per listing, remembered in `checked`) for an object at a
/// path the projection generates.
pub(super) async fn refuse_formats_in_page(
    place: &Place,
    metas: &[ObjectMeta],
    projection: Option<&Projection>,
    checked: &mut Vec<String>,
) -> Result<(), SourceError> {
    let Some(projection) = projection else {
        return refuse_table_formats(place, metas, |_, _| true);
    };
    let of_table = |p: &Place, m: &ObjectMeta| projection.values(relative_to(p, &m.key)).is_some();
    let mut seen = HashSet::new();
    for meta in metas.iter().filter(|m| m.noncurrent.is_none()) {
        let Some((_, root)) = TableFormat::locate(&meta.key) else {
            continue;
        };
        if checked.iter().any(|c| c == root) || !seen.insert(root.to_owned()) {
            continue;
        }
        let mut next = None;
        loop {
            let mut page = place
                .store
                .list_versions_page(&place.bucket, root, next)
                .await?;
            page.objects.push(meta.clone());
            refuse_table_formats(place, &page.objects, of_table)?;
            match page.next {
                Some(token) => next = Some(token),
                None => break,
            }
        }
        if checked.len() < MAX_FORMAT_ROOTS_KEPT {
            checked.push(root.to_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::source::listing::listed_at;
    use crate::domain::data_mapper::TableDef;

    fn tenant_first() -> Projection {
        let def = TableDef {
            partition_keys: vec!["tenant".into(), "dt".into()],
            parameters: [(
                "storage.location.template".to_owned(),
                "s3://lake/${tenant}/events/${dt}/".to_owned(),
            )]
            .into(),
            ..Default::default()
        };
        Projection::of_table(&def).expect("a projection").1
    }

    fn refused(keys: &[&str], projection: Option<&Projection>) -> Option<String> {
        let of_table = |place: &Place, meta: &ObjectMeta| {
            projection.is_none_or(|p| p.values(relative_to(place, &meta.key)).is_some())
        };
        let (place, metas) = listed_at("s3://lake/", keys);
        match refuse_table_formats(&place, &metas, of_table) {
            Ok(()) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    #[test]
    fn a_table_format_at_any_depth_under_a_location_fails_the_mapper() {
        let keys = [
            "pm/plain/a.parquet",
            "pm/x/sales/a.parquet",
            "pm/x/sales/_delta_log/0.json",
        ];
        let error = refused(&keys, None).expect("refused");
        assert!(error.contains("s3://lake/pm/x/sales/"), "{error}");
        assert!(error.contains("Delta Lake"), "{error}");
        let iceberg = ["a/b/ice/data/a.parquet", "a/b/ice/metadata/1.metadata.json"];
        assert!(refused(&iceberg, None).unwrap().contains("Apache Iceberg"));
        assert_eq!(refused(&["pm/metadata/a.parquet"], None), None);
    }

    #[test]
    fn under_a_projection_only_a_format_over_the_tables_objects_fails_it() {
        let p = tenant_first();
        let own = "acme/events/2024-01-01/a.json";
        // A Delta table beside the projected one, under the same prefix: not its concern.
        let beside = [
            own,
            "acme/orders/a.parquet",
            "acme/orders/_delta_log/0.json",
        ];
        assert_eq!(refused(&beside, Some(&p)), None);
        // A Delta table whose root holds the table's objects, or a log inside a partition.
        let above = [own, "acme/_delta_log/0.json"];
        assert!(refused(&above, Some(&p)).is_some());
        let inside = [own, "acme/events/2024-01-01/_delta_log/0.json"];
        assert!(refused(&inside, Some(&p)).is_some());
    }

    #[test]
    fn a_delta_log_fails_the_mapper_though_it_is_hidden() {
        // The format check runs on the listing before anything is hidden.
        assert!(crate::domain::hidden::is_hidden("_delta_log/0.json", &[]));
        let keys = ["t/dt=1/part-0.parquet", "t/_delta_log/0.json"];
        let error = refused(&keys, None).expect("refused");
        assert!(error.contains("Delta Lake"), "{error}");
    }
}
