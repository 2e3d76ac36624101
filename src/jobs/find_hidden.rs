//! The hidden objects of a mapper's listing (`domain::hidden`: a `_` or `.` folder or
//! name below the table or partition location): not the table's data, never searched or
//! written, keeping no item queued. `find.mapper` records the first
//! [`MAX_HIDDEN_RECORDED`] of them as report rows with find status `hidden` (page by page)
//! and counts them all in its `mapper_listed` event; each `_temporary/` folder among them
//! (a failed or unfinished Spark / Hadoop write: a full copy of personal data) gets a
//! warning event when the listing ends.
//! Events carry keys and counts, never row data or match ids.

use std::collections::BTreeMap;

use serde_json::json;
use uuid::Uuid;

use crate::db::job_object::{self as objects, JobObject};
use crate::domain::job::{EventLevel, ObjectStatus};
use crate::domain::partition::PartitionKey;
use crate::jobs::lifecycle::event;
use crate::storage::{ObjectMeta, Place};

/// Hidden objects recorded as report rows, per mapper (the rest are counted).
pub const MAX_HIDDEN_RECORDED: usize = 1000;
/// `_temporary/` folders named in warning events, per mapper (the rest are counted).
pub const MAX_TEMPORARY_EVENTS: usize = 100;

/// A hidden object's report row reason.
pub const HIDDEN: &str = "hidden: a folder or the name below the table or partition location starts with `_` or `.`; not the table's data (Athena does not read it), never searched or written";

/// The hidden objects of one page of a mapper's listing.
#[derive(Default)]
pub struct HiddenObjects {
    /// Every hidden object listed.
    pub count: usize,
    /// Report rows recorded by earlier pages (the cap counts them).
    pub recorded_before: usize,
    recorded: Vec<JobObject>,
    /// Each `_temporary/` folder (its location) and the hidden objects under it.
    pub temporaries: BTreeMap<String, usize>,
}

impl HiddenObjects {
    /// The hidden objects of a page after pages that recorded `recorded_before` rows.
    pub fn after(recorded_before: usize) -> Self {
        Self {
            recorded_before,
            ..Self::default()
        }
    }

    /// Adds a hidden object listed under `place` (in the partition `values` of `keys`),
    /// under the `_temporary/` folder `temporary` (a key prefix) if any.
    pub fn add(
        &mut self,
        place: &Place,
        keys: &[PartitionKey],
        meta: ObjectMeta,
        values: Option<Vec<String>>,
        temporary: Option<&str>,
    ) {
        self.count += 1;
        if let Some(prefix) = temporary {
            *self
                .temporaries
                .entry(place.location_of(prefix))
                .or_default() += 1;
        }
        if self.recorded_before + self.recorded.len() >= MAX_HIDDEN_RECORDED {
            return;
        }
        self.recorded.push(JobObject {
            version_id: meta.version_id,
            etag: meta.etag,
            size_bytes: meta.size as i64,
            partition_keys: Some(keys.iter().map(|k| k.name.clone()).collect()),
            partition_types: Some(
                keys.iter()
                    .map(|k| k.ty.as_ref().map(ToString::to_string).unwrap_or_default())
                    .collect(),
            ),
            partition_values: values,
            error: Some(HIDDEN.to_owned()),
            // The mapper's id is set when recorded.
            ..JobObject::found("", &place.bucket, &meta.key, ObjectStatus::Hidden)
        });
    }

    /// Report rows of this page.
    pub fn recorded(&self) -> usize {
        self.recorded.len()
    }

    /// Records the page's report rows.
    pub async fn record(
        &self,
        tx: &mut sqlx::PgConnection,
        job_id: Uuid,
        mapper: &str,
    ) -> sqlx::Result<()> {
        for row in &self.recorded {
            let row = JobObject {
                data_mapper_id: mapper.to_owned(),
                ..row.clone()
            };
            objects::insert(&mut *tx, job_id, &row).await?;
        }
        Ok(())
    }

    /// Records a warning per `_temporary/` folder of the whole listing (the first
    /// [`MAX_TEMPORARY_EVENTS`]).
    pub async fn record_temporaries(
        tx: &mut sqlx::PgConnection,
        job_id: Uuid,
        mapper: &str,
        temporaries: &BTreeMap<String, usize>,
    ) -> sqlx::Result<()> {
        for (prefix, objects) in temporaries.iter().take(MAX_TEMPORARY_EVENTS) {
            event(
                &mut *tx,
                job_id,
                EventLevel::Warning,
                "temporary_output",
                &format!(
                    "{prefix} holds {objects} object(s) a failed or unfinished write left (Spark / Hadoop `_temporary/`): a copy of the table's data this job did not search or touch, which may hold the personal data of the subjects it erases; delete it once its writer is gone"
                ),
                json!({"data_mapper_id": mapper, "prefix": prefix, "objects": objects}),
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(key: &str) -> ObjectMeta {
        ObjectMeta {
            key: key.into(),
            size: 10,
            etag: Some("\"e\"".into()),
            version_id: Some("v1".into()),
            storage_class: None,
            archive_status: None,
            restore: None,
            noncurrent: None,
        }
    }

    #[test]
    fn hidden_objects_are_all_counted_the_first_ones_recorded_and_temporaries_told_once() {
        let place = crate::storage::Stores::offline()
            .place("s3://lake/t/")
            .expect("an s3 place");
        let keys = PartitionKey::untyped(&["dt".to_owned()]);
        let mut hidden = HiddenObjects::default();
        let total = MAX_HIDDEN_RECORDED + 7;
        for n in 0..total {
            let key = format!("t/dt=1/_temporary/0/part-{n}.parquet");
            let values = Some(vec!["1".to_owned()]);
            hidden.add(
                &place,
                &keys,
                meta(&key),
                values,
                Some("t/dt=1/_temporary/"),
            );
        }
        hidden.add(&place, &keys, meta("t/_common_metadata"), None, None);
        assert_eq!(hidden.count, total + 1);
        assert_eq!(hidden.recorded(), MAX_HIDDEN_RECORDED);
        assert_eq!(hidden.temporaries.len(), 1);
        let (prefix, objects) = hidden.temporaries.iter().next().expect("one folder");
        assert_eq!(prefix, "s3://lake/t/dt=1/_temporary/");
        assert_eq!(*objects, total);
        let row = &hidden.recorded[0];
        assert_eq!(row.status, ObjectStatus::Hidden);
        assert_eq!(row.version_id.as_deref(), Some("v1"));
        assert_eq!(row.partition_values, Some(vec!["1".to_owned()]));
    }
}
