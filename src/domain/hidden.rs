//! Hidden files as Athena sees them: an object whose name, or any folder of its path
//! below the table or partition location it was listed under, starts with `_` or `.` is
//! not the table's data (Spark's `_temporary/` output, `_metadata` / `_common_metadata`
//! summaries, `.crc` checksums, `.hive-staging…` folders). The location's own path may
//! hold such segments: only the part below it counts. A `key=value` folder of one of the
//! table's partition keys is a partition, never hidden.

/// Whether an object is hidden; `below` is its key below the location it was listed
/// under, `partition_keys` the table's.
pub fn is_hidden(below: &str, partition_keys: &[String]) -> bool {
    let segments: Vec<&str> = below.split('/').collect();
    let last = segments.len().saturating_sub(1);
    segments.iter().enumerate().any(|(i, segment)| {
        let hidden = segment.starts_with('_') || segment.starts_with('.');
        hidden && !(i < last && is_partition_folder(segment, partition_keys))
    })
}

/// `key=value` for one of the table's partition keys (compared as Hive does, ignoring
/// ASCII case).
fn is_partition_folder(segment: &str, partition_keys: &[String]) -> bool {
    segment.split_once('=').is_some_and(|(key, _)| {
        partition_keys
            .iter()
            .any(|name| name.eq_ignore_ascii_case(key))
    })
}

/// The prefix of `key` up to and including its first `_temporary/` folder below the
/// location (`below` is the key's part below it, a suffix of `key`); None without one.
pub fn temporary_prefix<'a>(key: &'a str, below: &str) -> Option<&'a str> {
    let start = key.len().checked_sub(below.len())?;
    if !key.ends_with(below) {
        return None;
    }
    let mut offset = start;
    for segment in below.split('/') {
        let end = offset + segment.len();
        if segment == "_temporary" && end < key.len() {
            return key.get(..end + 1);
        }
        offset = end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_name_or_folder_below_the_location_starting_with_underscore_or_dot_is_hidden() {
        let dt = keys(&["dt"]);
        for below in [
            "dt=1/_temporary/0/part-0.parquet",
            "_temporary/0/_temporary/attempt_1/dt=1/part-0.parquet",
            "dt=1/_metadata",
            "_common_metadata",
            "dt=1/.part-0.parquet.crc",
            ".hive-staging_hive_2024/-ext-10000/part-0",
            // A table format's log is hidden too: find refuses the table before hiding.
            "_delta_log/00000000000000000000.json",
            ".hoodie/hoodie.properties",
        ] {
            assert!(is_hidden(below, &dt), "{below} must be hidden");
        }
    }

    #[test]
    fn data_files_partition_folders_and_default_partitions_are_not_hidden() {
        let dt = keys(&["dt"]);
        for below in [
            "part-0.parquet",
            "dt=1/part-0.parquet",
            "dt=__HIVE_DEFAULT_PARTITION__/part-0.parquet",
            "dt=1/part_0.parquet",
            "dt=1/sub/x.json.gz",
        ] {
            assert!(!is_hidden(below, &dt), "{below} is the table's data");
        }
        // A partition key whose name starts with `_` names a partition folder, not a
        // hidden one; the same folder name is hidden when it is no partition key.
        let underscored = keys(&["_tenant"]);
        assert!(!is_hidden("_tenant=acme/part-0.parquet", &underscored));
        assert!(is_hidden("_tenant=acme/part-0.parquet", &dt));
        assert!(
            is_hidden("_tenant=acme", &underscored),
            "a name, not a folder"
        );
    }

    #[test]
    fn only_the_part_below_the_location_counts() {
        // A location like s3://b/_raw/t/: its own `_raw` folder does not hide its data.
        let key = "_raw/t/dt=1/part-0.parquet";
        let below = key.strip_prefix("_raw/t/").unwrap();
        assert!(!is_hidden(below, &keys(&["dt"])));
        assert!(
            is_hidden(key, &keys(&["dt"])),
            "relative to the bucket it would be"
        );
    }

    #[test]
    fn the_temporary_prefix_is_the_key_up_to_its_first_temporary_folder() {
        let key = "t/dt=1/_temporary/0/_temporary/attempt_1/part-0.parquet";
        assert_eq!(
            temporary_prefix(key, &key["t/".len()..]),
            Some("t/dt=1/_temporary/")
        );
        // A `_temporary` folder of the location itself is not below it.
        let under = "_temporary/t/part-0.parquet";
        assert_eq!(temporary_prefix(under, "part-0.parquet"), None);
        assert_eq!(
            temporary_prefix("t/_temporary", "_temporary"),
            None,
            "a name"
        );
        assert_eq!(temporary_prefix("t/dt=1/_metadata", "dt=1/_metadata"), None);
    }
}
