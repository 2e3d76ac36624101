//! What a streamed search found in one object, whatever the format (JSON Lines, CSV,
//! Avro): the seam (`format`) hands it to the job engine as it is.

use std::collections::BTreeMap;

/// What a search found in one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// Records in the object (a CSV header line is not one).
    pub records_total: u64,
    /// Records that are at least one queued match (every record when `every_row`).
    pub records_matched: u64,
    /// Matching records per queued match (its index in the job's list): a record that is
    /// several matches counts once for each.
    pub rows_by_match: BTreeMap<u32, u64>,
}

impl Found {
    /// Counts one record that is the queued matches `owners` (none: no match).
    pub fn count(&mut self, owners: &[u32]) {
        self.records_total += 1;
        if !owners.is_empty() {
            self.records_matched += 1;
        }
        for owner in owners {
            *self.rows_by_match.entry(*owner).or_default() += 1;
        }
    }
}
