//! A job's report, streamed page by page from the database (any size in bounded memory):
//! `{"job": …, "tables": [...], "objects": [...], "matches": [...]}`. A database error mid-stream ends
//! the body with an error (the connection is reset before the chunked body completes),
//! so a client never takes a truncated report for a whole one.

use bytes::Bytes;
use futures_util::stream::{self, Stream, StreamExt};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::job_object::{self as objects, JobObject};
use crate::db::{job_data_mapper, job_match};
use crate::domain::job::{CleanupState, ForgetState, ObjectStatus};

/// Objects or matches read per page.
const PAGE: i64 = 1000;

/// Why a report stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("reading the report failed: {0}")]
    Db(#[from] sqlx::Error),
    #[error("encoding the report failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// What the job did to a table format's table (Apache Iceberg): the snapshot it committed
/// and what its purge expired and deleted.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportTable {
    pub data_mapper_id: String,
    #[serde(flatten)]
    pub commit: crate::db::job_data_mapper::TableCommit,
}

/// One object in a job's report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportObject {
    pub data_mapper_id: String,
    pub bucket: String,
    pub key: String,
    /// The version find searched. A noncurrent one (`noncurrent`) is never rewritten;
    /// when another writer wrote the key between find and forget, the version rewritten
    /// (`version_id_before`) is a newer one and this one is an old version.
    pub version_id_searched: Option<String>,
    /// Not its key's current version when find listed it (a newer version or a delete
    /// marker on top): status `old_version`, deleted by cleanup or kept.
    pub noncurrent: bool,
    /// The version rewritten.
    pub version_id_before: Option<String>,
    pub etag_before: Option<String>,
    pub version_id_after: Option<String>,
    /// Where the rewrite went when it is a new file (a table format's data file, e.g.
    /// Apache Iceberg's, is never rewritten in place); absent: over `key` itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_after: Option<String>,
    pub etag_after: Option<String>,
    /// A rewrite that failed verification and was rolled back (`verify_failed`): the
    /// version id of the copy of `version_id_before` that is current again.
    pub rollback_version_id: Option<String>,
    pub rows_before: Option<i64>,
    /// Rows holding at least one match, as find counted them (a row two matches name
    /// counts once; also in a dry run: its blast radius per object).
    pub rows_matched: i64,
    /// Rows the rewrite left out: the matching ones, and in an Apache Iceberg data file
    /// also those its table's position delete files deleted (still in the old file).
    pub rows_removed: Option<i64>,
    pub rows_after: Option<i64>,
    /// An Apache Iceberg data file's: the table's position delete files whose rows the
    /// rewrite left out too (the new snapshot drops those that only named replaced files).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub position_deletes_applied: Vec<String>,
    pub bytes_before: i64,
    pub bytes_after: Option<i64>,
    pub row_groups_rewritten: Option<i32>,
    pub row_groups_copied: Option<i32>,
    /// Old versions cleanup deleted.
    pub versions_deleted: Vec<String>,
    /// Versions holding (or possibly holding) matching rows that cleanup did not delete,
    /// each with the reason and the date it ends when known.
    pub versions_kept: Vec<crate::db::job_object::KeptVersion>,
    /// `found` (dry run), `verified`, `unchanged` (no row matched any more), `skipped`,
    /// `failed`, `verify_failed` (old versions kept; rolled back when `rollback_version_id`
    /// is set), `written` (not verified yet), `old_version` (a noncurrent version holding
    /// matches: never rewritten, deleted by cleanup or kept).
    pub status: ForgetState,
    /// `done`, `skipped` (the mapper keeps old versions), `failed`; null before cleanup.
    pub cleanup: Option<CleanupState>,
    pub error: Option<String>,
    /// What find made of it: `matched`, `failed`, `not_searchable` (archived, access or
    /// KMS denied: the items it may hold stay queued), `skipped` (archived, out of the
    /// mapper's scope), `hidden` (a `_` or `.` folder or name below the table location:
    /// not the table's data, never searched or written), `leftover` (old versions an
    /// earlier job left, deleted now).
    pub find_status: ObjectStatus,
    /// The rows each match (by keyed hash) has in it, as find counted them.
    pub matches: Vec<ObjectMatch>,
}

/// The rows one match has in one object.
#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectMatch {
    pub match_hash: String,
    pub rows: i64,
}

impl From<JobObject> for ReportObject {
    fn from(o: JobObject) -> Self {
        let deleted = matches!(
            o.cleanup_state,
            Some(CleanupState::Done | CleanupState::Failed)
        );
        Self {
            data_mapper_id: o.data_mapper_id,
            bucket: o.bucket,
            key: o.key,
            version_id_before: o.read_version_id.or_else(|| o.version_id.clone()),
            version_id_searched: o.version_id,
            noncurrent: o.noncurrent,
            etag_before: o.etag,
            version_id_after: o.new_version_id,
            key_after: o.new_key,
            etag_after: o.new_etag,
            rollback_version_id: o.rollback_version_id,
            rows_before: o.rows_total,
            rows_matched: o.rows_matched,
            rows_removed: o.rows_removed,
            rows_after: o.rows_after,
            position_deletes_applied: o.deletes_applied,
            bytes_before: o.size_bytes,
            bytes_after: o.size_after,
            row_groups_rewritten: o.row_groups_rewritten,
            row_groups_copied: o.row_groups_copied,
            versions_deleted: if deleted {
                o.versions_deleted
            } else {
                Vec::new()
            },
            versions_kept: o.versions_kept.0,
            status: o.forget_state,
            cleanup: o.cleanup_state,
            error: o.error.or(o.forget_error),
            find_status: o.status,
            matches: Vec::new(),
        }
    }
}

/// Where the stream is: objects from a cursor, then matches after a hash.
enum Part {
    Objects(Option<i64>),
    Matches(String),
}

/// The report's body: `job` is the job's JSON, then every object and every match.
pub fn stream(
    db: PgPool,
    job_id: Uuid,
    job: String,
) -> impl Stream<Item = Result<Bytes, ReportError>> {
    let tables_db = db.clone();
    let chunks = stream::unfold(Some(Part::Objects(None)), move |part| {
        let db = db.clone();
        async move {
            let part = part?;
            match next_chunk(&db, job_id, part).await {
                Ok((chunk, next)) => Some((Ok(Bytes::from(chunk)), next)),
                Err(e) => {
                    tracing::error!(job.id = %job_id, error = %e, "report stream failed");
                    Some((Err(e), None))
                }
            }
        }
    });
    let head = async move {
        let tables: Vec<ReportTable> = job_data_mapper::table_commits(&tables_db, job_id)
            .await?
            .into_iter()
            .map(|(data_mapper_id, commit)| ReportTable {
                data_mapper_id,
                commit,
            })
            .collect();
        let tables = serde_json::to_string(&tables)?;
        Ok(Bytes::from(format!(
            "{{\"job\":{job},\"tables\":{tables},\"objects\":["
        )))
    };
    stream::once(head).chain(chunks)
}

/// The next chunk of JSON text, and where to go on (None: the body is complete).
async fn next_chunk(
    db: &PgPool,
    job_id: Uuid,
    part: Part,
) -> Result<(String, Option<Part>), ReportError> {
    let mut out = String::new();
    match part {
        Part::Objects(cursor) => {
            let rows = objects::list(db, job_id, cursor, PAGE + 1).await?;
            let next = rows.get(PAGE as usize).map(|o| o.job_object_id);
            let ids: Vec<i64> = rows.iter().map(|o| o.job_object_id).collect();
            let mut per_object = job_match::object_matches(db, job_id, &ids).await?;
            for (i, o) in rows.into_iter().take(PAGE as usize).enumerate() {
                if cursor.is_some() || i > 0 {
                    out.push(',');
                }
                let id = o.job_object_id;
                let mut object = ReportObject::from(o);
                object.matches = per_object
                    .remove(&id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(match_hash, rows)| ObjectMatch { match_hash, rows })
                    .collect();
                out.push_str(&serde_json::to_string(&object)?);
            }
            Ok(match next {
                Some(n) => (out, Some(Part::Objects(Some(n)))),
                None => (out + "],\"matches\":[", Some(Part::Matches(String::new()))),
            })
        }
        Part::Matches(after) => {
            let rows = job_match::list(db, job_id, &after, PAGE).await?;
            for (i, m) in rows.iter().enumerate() {
                if !after.is_empty() || i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(m)?);
            }
            Ok(match rows.last() {
                Some(last) if rows.len() as i64 == PAGE => {
                    (out, Some(Part::Matches(last.match_hash.clone())))
                }
                _ => (out + "]}", None),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::job_object::{JobObject, insert};
    use crate::domain::job::ObjectStatus;

    async fn collect(
        db: PgPool,
        job_id: Uuid,
        close_after_head: bool,
    ) -> Vec<Result<Bytes, ReportError>> {
        let body = stream(db.clone(), job_id, "{}".to_owned());
        futures_util::pin_mut!(body);
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            out.push(chunk);
            if close_after_head && out.len() == 1 {
                db.close().await;
            }
        }
        out
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_whole_report_is_valid_json_and_a_failed_read_ends_the_body_with_an_error(
        db: PgPool,
    ) {
        let job_id = crate::db::job::tests::a_job(&db).await;
        for n in 0..3 {
            let o = JobObject::found("m", "b", &format!("k{n}"), ObjectStatus::Matched);
            insert(&db, job_id, &o).await.unwrap();
        }
        let whole = collect(db.clone(), job_id, false).await;
        let text: String = whole
            .into_iter()
            .map(|c| String::from_utf8(c.unwrap().to_vec()).unwrap())
            .collect();
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(report["objects"].as_array().unwrap().len(), 3);
        assert_eq!(report["objects"][2]["key"], "k2");

        let cut = collect(db, job_id, true).await;
        assert!(cut[0].is_ok(), "the head was sent");
        assert!(
            matches!(cut.last(), Some(Err(ReportError::Db(_)))),
            "the body ends with an error, not a truncated 200"
        );
    }
}
