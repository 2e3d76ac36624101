//! What a receipt states: the chain (`seq`, `prev`), who issued it, the subject (by keyed
//! hash only) and its request, the outcome, and the evidence per data mapper and object.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The payload's version.
pub const VERSION: u32 = 1;

/// A receipt's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Payload {
    /// `1`
    pub v: u32,
    pub receipt_id: Uuid,
    /// Position in the deployment's chain: 1, 2, 3, … without gaps.
    pub seq: i64,
    /// Lowercase hex SHA-256 of the compact JWS of receipt `seq - 1` (null for seq 1).
    pub prev: Option<String>,
    pub issued_at: DateTime<Utc>,
    /// The deployment (`LETHE_DEPLOYMENT_NAME`).
    pub issuer: String,
    pub lethe_version: String,
    pub job_id: Uuid,
    /// The queue item accounted for.
    pub item_id: Uuid,
    /// HMAC-SHA256 of the match id under the deployment's report key, hex: the same hash
    /// the job's report names. Never the match id.
    pub match_hash: String,
    /// The item's reference (ticket id), when it had one.
    pub reference: Option<String>,
    /// When the item was queued, and its deadline.
    pub requested_at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    /// `erased`, `retained`, `not_found` or `kept` (the report's status).
    pub status: String,
    /// Why it is kept (each mapper's reason, joined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Per data mapper the item applies to: what was searched and found.
    pub searched: Vec<Searched>,
    /// Per current object holding the subject's rows: the version rewritten and the one
    /// written, and whether the new one was re-read and found clean.
    pub changed: Vec<Changed>,
    /// Verify's re-read of each version written for the subject that found no match
    /// left (absent from receipts issued before it was stated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<Reread>,
    /// Object versions holding the subject's rows that cleanup deleted.
    pub deleted: Vec<Deleted>,
    /// Where the subject's rows still are, or may be, as far as Lethe knows.
    pub residue: Vec<Residue>,
}

/// One data mapper's search, for one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Searched {
    pub data_mapper_id: String,
    /// Where the mapper's table is described, as the job read it: `{"provider": "glue",
    /// "database", "table"}` or `{"provider": "path", "location", …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<serde_json::Value>,
    /// Objects the mapper's find searched (all of them, not only those holding it).
    pub objects_searched: i64,
    /// Object versions find read in full for the search (current and noncurrent; a
    /// version listed but not read — archived, gone, denied — is not counted), of them
    /// the noncurrent ones, and the bytes its reads fetched from the store (a Parquet
    /// footer and the column chunks it needed; every byte of a JSON Lines, CSV or Avro
    /// object). Verify's re-reads are in `verified`, not here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions_searched: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent_versions_searched: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_read: Option<i64>,
    /// Current objects holding its rows, those rows, and the rows removed.
    pub objects: i64,
    pub rows: i64,
    pub rows_removed: i64,
    /// Noncurrent versions holding its rows.
    pub old_versions: i64,
    /// The mapper's account: `erased`, `retained`, `not_found` or `kept`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A table format's table (Apache Iceberg): the snapshots before and after the job's
    /// commit, and those its purge expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<Snapshots>,
}

/// The Iceberg snapshots of a mapper's table around the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Snapshots {
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub expired: Vec<i64>,
}

/// A current object that held the subject's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Changed {
    pub data_mapper_id: String,
    pub bucket: String,
    pub key: String,
    /// Where the rewrite went when it is a new file (an Iceberg data file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_after: Option<String>,
    pub version_before: Option<String>,
    pub version_after: Option<String>,
    /// Lowercase hex SHA-256 of every byte of `version_before` (as forget downloaded it)
    /// and of `version_after` (at `key_after` when set; as forget uploaded it): a plain
    /// GET of each version gives the same hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_after: Option<String>,
    /// The subject's rows find counted in `version_before`.
    pub rows: i64,
    /// The object's rows in `version_before` and, re-read by verify, in `version_after`.
    pub rows_before: Option<i64>,
    pub rows_after: Option<i64>,
    /// The object's forget outcome: `verified` (rewritten, re-read, no match left),
    /// `unchanged`, `failed`, `verify_failed` (rolled back), `skipped`, …
    pub outcome: String,
}

/// Verify's re-reads for one subject: every version written for it that was read again
/// after the rewrite and found to hold no matching row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reread {
    /// Versions re-read and found clean, and the rows counted in them.
    pub objects: i64,
    pub rows: i64,
    pub versions: Vec<RereadVersion>,
}

/// One version verify re-read and found to hold no matching row (a version with any
/// fails verification and is not listed): the rows it counted (equal to the rows before
/// minus those removed) and its size as the store holds it (equal to the size uploaded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RereadVersion {
    pub data_mapper_id: String,
    pub bucket: String,
    /// The key read: `key_after` when the rewrite went to a new file, else `key`.
    pub key: String,
    pub version_id: Option<String>,
    pub rows: i64,
    pub size_bytes: i64,
    /// When the re-read ended.
    pub at: DateTime<Utc>,
}

/// An object version cleanup deleted (or, for an Iceberg table, its purge: old data files,
/// manifests, manifest lists, metadata files, retired delete files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deleted {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
}

/// A place that still holds, or may hold, the subject's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Residue {
    /// `version_kept` (an old version cleanup did not delete: retention, a lifecycle rule,
    /// Object Lock), `replica` (a bucket a replication rule copies the object to),
    /// `snapshot_held` (an Iceberg snapshot a tag or branch keeps, still referencing a
    /// data file that held rows of the job's subjects), `hidden` (objects below the
    /// table location Athena does not read — `_temporary/`, `.spark-staging` … — that
    /// were not searched and may hold copies: `key` names one of them), `backup` (a
    /// backup the operator declares in the settings: `name` names it, `until` is the
    /// job's end — or the end of the last version kept — plus its retention; none while
    /// the subject is `kept`, its rows perhaps still in the lake), `not_erased` (a version
    /// holding the subject's rows that the job left as it was: a current version it did
    /// not rewrite — forget failed or never ran, or outside the table's partitions —, a
    /// rewrite that failed its check and the copy put back on top, and the versions read
    /// or found as old versions that cleanup did not delete, because it failed or never
    /// ran).
    pub kind: String,
    /// A declared backup's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<i64>,
    pub reason: String,
    /// When it ends, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// `until` is a lower bound only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_before: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receipt issued before `verified`, the hashes, the reads and `name` were stated.
    const OLDER: &str = r#"{"v": 1, "receipt_id": "0193a000-0000-7000-8000-000000000000",
        "seq": 1, "prev": null, "issued_at": "2026-12-07T06:00:00Z", "issuer": "lethe",
        "lethe_version": "0.1.0", "job_id": "0193a000-0000-7000-8000-000000000001",
        "item_id": "0193a000-0000-7000-8000-000000000002", "match_hash": "ab",
        "reference": null, "requested_at": "2026-12-01T00:00:00Z",
        "deadline": "2026-12-31T00:00:00Z", "status": "erased",
        "searched": [{"data_mapper_id": "m", "objects_searched": 2, "objects": 1,
                      "rows": 1, "rows_removed": 1, "old_versions": 0, "status": "erased"}],
        "changed": [{"data_mapper_id": "m", "bucket": "b", "key": "k",
                     "version_before": "v0", "version_after": "v1", "rows": 1,
                     "rows_before": 2, "rows_after": 1, "outcome": "verified"}],
        "deleted": [], "residue": [{"kind": "hidden", "key": "k/_x", "reason": "r"}]}"#;

    #[test]
    fn an_older_receipt_still_reads_and_reads_back_as_it_was() {
        let p: Payload = serde_json::from_str(OLDER).unwrap();
        assert_eq!(p.verified, None);
        assert_eq!(
            (&p.changed[0].sha256_before, &p.changed[0].sha256_after),
            (&None, &None)
        );
        assert_eq!(p.searched[0].bytes_read, None);
        assert_eq!(p.residue[0].name, None);
        // Absent fields stay absent: what was signed re-encodes without them.
        let again: serde_json::Value = serde_json::to_value(&p).unwrap();
        let older: serde_json::Value = serde_json::from_str(OLDER).unwrap();
        assert_eq!(again, older);
    }
}
