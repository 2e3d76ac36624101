//! The job's counters: one `bigint` column of `job` each, declared once.

use serde::{Deserialize, Serialize};

/// Declares [`JobStats`] from one list: the struct (one `bigint` column of `job` per
/// counter, same name), [`STAT_COLUMNS`], [`JobStats::values`] and [`JobStats::add`].
macro_rules! job_stats {
    ($($(#[$doc:meta])* $field:ident,)+) => {
        /// The job's counters, each a column of `job` incremented in the transaction that
        /// records the work it counts (a task's record is fenced by its lease, so a rerun
        /// never counts twice).
        #[derive(
            Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, Serialize, Deserialize,
            utoipa::ToSchema,
        )]
        pub struct JobStats {
            $($(#[$doc])* pub $field: i64,)+
        }

        /// The counter columns, in declaration order.
        pub const STAT_COLUMNS: &[&str] = &[$(stringify!($field),)+];

        impl JobStats {
            /// The counters in [`STAT_COLUMNS`] order.
            pub fn values(&self) -> Vec<i64> {
                vec![$(self.$field,)+]
            }

            /// Adds `other` to these counters.
            pub fn add(&mut self, other: &JobStats) {
                $(self.$field += other.$field;)+
            }
        }
    };
}

job_stats! {
    /// Partitions the catalog (or the path layout) listed.
    partitions_listed,
    /// Partitions skipped because no queued match can live in them.
    partitions_pruned,
    /// Objects listed in the partitions searched (their current versions).
    objects_listed,
    /// Noncurrent versions listed there (below a newer version or a delete marker):
    /// searched like current ones.
    old_versions_listed,
    /// Objects not searched: markers, hidden files (a `_` or `.` folder or name below the
    /// table location, `_temporary/` output among them), empty or archived objects.
    objects_skipped,
    /// Objects searched (footer read at least).
    objects_scanned,
    /// Objects whose every row group statistics or bloom filters excluded.
    objects_pruned,
    /// Objects that could be read but not searched (corrupt, wrong schema).
    objects_failed,
    /// Objects that could not be read at all (archived, access or KMS denied): the items
    /// they may hold stay queued.
    objects_not_searchable,
    /// Objects holding at least one matching row (current versions: each is rewritten).
    objects_matched,
    /// Noncurrent versions holding at least one matching row (each is deleted by
    /// cleanup, or kept and named in the accounts of the subjects it holds).
    old_versions_matched,
    /// Bytes of match columns decoded.
    bytes_scanned,
    row_groups_scanned,
    row_groups_pruned,
    rows_matched,
    /// Objects written again without the matching rows.
    objects_rewritten,
    /// Objects whose rows no longer matched when forget read them (nothing written).
    objects_unchanged,
    /// Objects forget could not rewrite (left as they were).
    objects_forget_failed,
    /// Rewritten objects whose new version passed verification.
    objects_verified,
    /// Rewritten objects whose new version failed verification (old version kept).
    objects_verify_failed,
    /// Rows erased.
    rows_removed,
    /// Bytes of the new versions.
    bytes_written,
    /// Old object versions deleted by cleanup.
    versions_deleted,
    /// Objects whose old versions could not all be deleted.
    cleanup_failures,
    /// Queue items erased and taken off the queue.
    matches_erased,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_and_serialize_under_their_column_names() {
        let one = JobStats {
            partitions_listed: 1,
            matches_erased: 2,
            ..JobStats::default()
        };
        let mut sum = one.clone();
        sum.add(&one);
        assert_eq!(sum.values().len(), STAT_COLUMNS.len());
        assert_eq!(STAT_COLUMNS.len(), 25);
        assert_eq!(sum.values()[0], 2);
        assert_eq!(*sum.values().last().unwrap(), 4);
        assert_eq!(STAT_COLUMNS[0], "partitions_listed");
        let json = serde_json::to_value(&sum).unwrap();
        for column in STAT_COLUMNS {
            assert!(json.get(column).is_some(), "{column}");
        }
    }
}
