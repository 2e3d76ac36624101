//! The end of a job after cleanup: takes the items every mapper of which succeeded off
//! the queue, keeping only a keyed hash of each in the report, and decides the final
//! state.

use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::job::{self as jobs, JobStats};
use crate::db::job_match::{self, ReportMatch};
use crate::db::{data_mapper, deletion_queue_item, job_data_mapper, job_object, server_secret};
use crate::domain::job::{EventLevel, ForgetState, JobStatus};
use crate::jobs::lifecycle::event;

/// Name of the report's HMAC key in `server_secret`.
pub const REPORT_KEY: &str = "report_hmac";

/// Ends the job: records what became of each queue item and returns the end state.
pub async fn finalize(tx: &mut PgConnection, job_id: Uuid) -> sqlx::Result<JobStatus> {
    fail_unfinished_cleanups(tx, job_id).await?;
    let failed_mappers = job_object::mappers_with_failures(&mut *tx, job_id).await?;
    let job_mappers = job_data_mapper::list(&mut *tx, job_id).await?;
    let all_mappers = data_mapper::list_ids(&mut *tx).await?;
    let key = server_secret::get_or_create(&mut *tx, REPORT_KEY, random_key).await?;
    let items = jobs::queue_snapshot(&mut *tx, job_id).await?;
    let mut erased = Vec::new();
    let mut matches = Vec::with_capacity(items.len());
    for (id, match_id, named) in items {
        let (ok, applies) = account(named, &job_mappers, &all_mappers, &failed_mappers);
        if ok {
            erased.push(id);
        }
        matches.push(ReportMatch {
            match_hash: match_hash(&key, &match_id),
            data_mappers: applies,
            status: if ok { "erased" } else { "kept" }.to_owned(),
        });
    }
    job_match::insert_many(&mut *tx, job_id, &matches).await?;
    deletion_queue_item::delete_queue_items(&mut *tx, &erased).await?;
    let stats = JobStats {
        matches_erased: erased.len() as i64,
        ..Default::default()
    };
    jobs::add_stats(&mut *tx, job_id, &stats).await?;
    let counts = job_object::forget_state_counts(&mut *tx, job_id).await?;
    let get = |s: ForgetState| counts.get(&s).copied().unwrap_or(0);
    let failed = get(ForgetState::Failed) + get(ForgetState::VerifyFailed);
    let done = get(ForgetState::Verified) + get(ForgetState::Unchanged) + get(ForgetState::Skipped);
    let cleanup_failed = job_object::count_cleanup_failed(&mut *tx, job_id).await?;
    let not_searchable = job_object::count_not_searchable(&mut *tx, job_id).await?;
    let status = end_state(failed, done, cleanup_failed, not_searchable);
    let kept = matches.len() - erased.len();
    event(
        &mut *tx,
        job_id,
        if failed > 0 {
            EventLevel::Error
        } else {
            EventLevel::Info
        },
        "queue_updated",
        &format!(
            "{} queue item(s) erased and taken off the queue; {kept} kept for the next job",
            erased.len(),
        ),
        json!({"erased": erased.len(), "kept": kept}),
    )
    .await?;
    Ok(status)
}

/// A verified object whose cleanup task failed for good still holds its old versions:
/// its cleanup failed (counted, with an event), so the job cannot end plain `completed`.
async fn fail_unfinished_cleanups(tx: &mut PgConnection, job_id: Uuid) -> sqlx::Result<()> {
    let unfinished = job_object::fail_unfinished_cleanups(&mut *tx, job_id).await? as i64;
    if unfinished == 0 {
        return Ok(());
    }
    let stats = JobStats {
        cleanup_failures: unfinished,
        ..Default::default()
    };
    jobs::add_stats(&mut *tx, job_id, &stats).await?;
    event(
        &mut *tx,
        job_id,
        EventLevel::Error,
        "cleanup_failed",
        &format!("{unfinished} object(s) keep their old versions: their cleanup task failed"),
        json!({"objects": unfinished}),
    )
    .await
}

/// Whether a queue item is erased (every mapper it applies to was searched by this job
/// and none failed), and the job's mappers it applies to. An item naming no mapper
/// applies to every mapper, searched by this job or not.
fn account(
    named: Vec<String>,
    job_mappers: &[String],
    all_mappers: &[String],
    failed_mappers: &[String],
) -> (bool, Vec<String>) {
    let applies: Vec<String> = if named.is_empty() {
        all_mappers.iter().chain(job_mappers).cloned().collect()
    } else {
        named
    };
    let ok = applies
        .iter()
        .all(|m| job_mappers.contains(m) && !failed_mappers.contains(m));
    let mut applies: Vec<String> = applies
        .into_iter()
        .filter(|m| job_mappers.contains(m))
        .collect();
    applies.sort();
    applies.dedup();
    (ok, applies)
}

/// The end state from the objects that failed, that are done, whose cleanup failed, and
/// that could not be read (which keep items queued: they outrank a failed cleanup).
pub fn end_state(failed: i64, done: i64, cleanup_failed: i64, not_searchable: i64) -> JobStatus {
    match (failed, done, cleanup_failed, not_searchable) {
        (0, _, 0, 0) => JobStatus::Completed,
        (0, _, _, 1..) => JobStatus::CompletedNotSearchable,
        (0, _, _, _) => JobStatus::CompletedCleanupFailed,
        (_, 0, _, _) => JobStatus::ForgetFailed,
        _ => JobStatus::ForgetPartiallyFailed,
    }
}

fn random_key() -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    while key.len() < 64 {
        key.extend_from_slice(Uuid::new_v4().as_bytes());
    }
    key
}

/// HMAC-SHA256 of a match id's JSON text, hex: the report's only trace of it.
pub fn match_hash(key: &[u8], match_id: &serde_json::Value) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(match_id.to_string().as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_erased_only_when_every_mapper_it_applies_to_was_searched_without_failure() {
        let s = |v: &[&str]| v.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        let (job, all) = (s(&["a", "b"]), s(&["a", "b", "c"]));
        assert_eq!(
            account(s(&["b", "a"]), &job, &all, &[]),
            (true, s(&["a", "b"]))
        );
        assert_eq!(
            account(s(&["a"]), &job, &all, &s(&["a"])),
            (false, s(&["a"]))
        );
        // Naming no mapper means every mapper, and `c` was not searched.
        assert_eq!(account(vec![], &job, &all, &[]), (false, s(&["a", "b"])));
        assert_eq!(
            account(vec![], &job, &s(&["a", "b"]), &[]),
            (true, s(&["a", "b"]))
        );
    }

    #[test]
    fn the_end_state_names_what_failed() {
        assert_eq!(end_state(0, 3, 0, 0), JobStatus::Completed);
        assert_eq!(end_state(0, 0, 0, 0), JobStatus::Completed);
        assert_eq!(end_state(0, 3, 1, 0), JobStatus::CompletedCleanupFailed);
        assert_eq!(end_state(0, 3, 1, 2), JobStatus::CompletedNotSearchable);
        assert_eq!(end_state(0, 0, 0, 1), JobStatus::CompletedNotSearchable);
        assert_eq!(end_state(2, 0, 0, 1), JobStatus::ForgetFailed);
        assert_eq!(end_state(2, 1, 0, 0), JobStatus::ForgetPartiallyFailed);
    }
}
