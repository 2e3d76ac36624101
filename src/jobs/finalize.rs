//! The end of a job after cleanup: gives each queue item an account per data mapper
//! (objects searched, objects and rows holding it, rows removed, a status), takes the
//! erased and not-found ones off the queue, keeping only a keyed hash of each in the
//! report, and decides the final state. A dry run records the accounts at the end of find.

use std::collections::{HashMap, HashSet};

use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::job::{self as jobs, JobStats};
use crate::db::job_match::{self, MapperAccount, ReportMatch};
use crate::db::{data_mapper, deletion_queue_item, job_data_mapper, job_object, server_secret};
use crate::domain::job::{EventLevel, ForgetState, JobStatus};
use crate::jobs::lifecycle::event;

/// Why an item with rows in an object outside its table's partitions stays queued.
pub const OUTSIDE_PARTITIONS: &str = "rows outside the table's partitions: an object under the table location in no partition holds its rows, and Lethe never rewrites it (Athena does not read it; register its partition or move it, then run again)";

/// Name of the report's HMAC key in `server_secret`.
pub const REPORT_KEY: &str = "report_hmac";

/// Ends the job: records what became of each queue item and returns the end state.
pub async fn finalize(tx: &mut PgConnection, job_id: Uuid) -> sqlx::Result<JobStatus> {
    fail_unfinished_cleanups(tx, job_id).await?;
    let (leaving, matches) = record_accounts(tx, job_id, false).await?;
    let erased: Vec<Uuid> = leaving;
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
            "{} queue item(s) erased or not found and taken off the queue; {kept} kept for the next job",
            erased.len(),
        ),
        json!({"erased": erased.len(), "kept": kept,
               "not_found": matches.iter().filter(|m| m.status == "not_found").count()}),
    )
    .await?;
    Ok(status)
}

/// What the job knows per mapper and per (mapper, match), for the accounts.
struct Ledger {
    /// Mapper → (its find failed, objects searched).
    mappers: HashMap<String, (bool, i64)>,
    all_mappers: Vec<String>,
    /// Mapper → why its items are kept (failed / unreadable objects, failed cleanups).
    problems: HashMap<String, String>,
    /// (mapper, match hash) → (objects, rows, rows removed, a cleanup of them failed).
    holdings: HashMap<(String, String), (i64, i64, i64, bool)>,
    /// (mapper, match hash) with rows in objects outside the table's partitions.
    outside: HashSet<(String, String)>,
}

/// Records every queue item's account (`job_match`) and returns the items that leave
/// the queue (erased or not found; none for a dry run) and the matches recorded.
pub async fn record_accounts(
    tx: &mut PgConnection,
    job_id: Uuid,
    dry_run: bool,
) -> sqlx::Result<(Vec<Uuid>, Vec<ReportMatch>)> {
    let mut problems = HashMap::new();
    for (mapper, failed, unreadable, cleanup) in
        job_object::failure_counts(&mut *tx, job_id).await?
    {
        let mut why = Vec::new();
        if failed > 0 {
            why.push(format!("{failed} object(s) failed"));
        }
        if unreadable > 0 {
            why.push(format!("{unreadable} object(s) not searchable"));
        }
        if cleanup > 0 {
            why.push(format!(
                "{cleanup} object(s) kept old versions (cleanup failed)"
            ));
        }
        problems.insert(mapper, why.join(", "));
    }
    let ledger = Ledger {
        mappers: job_data_mapper::searched(&mut *tx, job_id)
            .await?
            .into_iter()
            .map(|(m, failed, searched)| (m, (failed, searched)))
            .collect(),
        all_mappers: data_mapper::list_ids(&mut *tx).await?,
        problems,
        holdings: job_match::holdings(&mut *tx, job_id)
            .await?
            .into_iter()
            .map(|(m, h, objects, rows, removed, cleanup)| {
                ((m, h), (objects, rows, removed, cleanup))
            })
            .collect(),
        outside: job_object::outside_holdings(&mut *tx, job_id)
            .await?
            .into_iter()
            .collect(),
    };
    let key = server_secret::get_or_create(&mut *tx, REPORT_KEY, random_key).await?;
    let items = jobs::queue_snapshot(&mut *tx, job_id).await?;
    let mut leaving = Vec::new();
    let mut matches = Vec::with_capacity(items.len());
    for (id, match_id, named) in items {
        let hash = match_hash(&key, &match_id);
        let (status, accounts) = ledger.account(&hash, named, dry_run);
        if matches!(status, MatchStatus::Erased | MatchStatus::NotFound) {
            leaving.push(id);
        }
        let mut applies: Vec<String> = accounts
            .iter()
            .filter(|a| ledger.mappers.contains_key(&a.data_mapper_id))
            .map(|a| a.data_mapper_id.clone())
            .collect();
        applies.sort();
        matches.push(ReportMatch {
            match_hash: hash,
            data_mappers: applies,
            status: status.as_str().to_owned(),
            accounts: sqlx::types::Json(accounts),
        });
    }
    job_match::insert_many(&mut *tx, job_id, &matches).await?;
    Ok((leaving, matches))
}

/// What became of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchStatus {
    Erased,
    NotFound,
    Kept,
    /// A dry run found rows (nothing written).
    Matched,
}

impl MatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchStatus::Erased => "erased",
            MatchStatus::NotFound => "not_found",
            MatchStatus::Kept => "kept",
            MatchStatus::Matched => "matched",
        }
    }
}

impl Ledger {
    /// The accounts of a match (per mapper it applies to: named ones, else every mapper)
    /// and its status: kept when any account is; else erased (matched, in a dry run)
    /// when rows were found; else not found.
    fn account(
        &self,
        hash: &str,
        named: Vec<String>,
        dry_run: bool,
    ) -> (MatchStatus, Vec<MapperAccount>) {
        let mut applies = if named.is_empty() {
            let mut all: Vec<String> = self
                .all_mappers
                .iter()
                .chain(self.mappers.keys())
                .cloned()
                .collect();
            all.sort();
            all.dedup();
            all
        } else {
            named
        };
        applies.sort();
        let (statuses, accounts): (Vec<MatchStatus>, Vec<MapperAccount>) = applies
            .into_iter()
            .map(|m| self.mapper_account(m, hash, dry_run))
            .unzip();
        // Kept wins over rows found (erased / matched), which win over not found.
        let status = [MatchStatus::Kept, MatchStatus::Erased, MatchStatus::Matched]
            .into_iter()
            .find(|s| statuses.contains(s))
            .unwrap_or(MatchStatus::NotFound);
        (status, accounts)
    }

    fn mapper_account(
        &self,
        mapper: String,
        hash: &str,
        dry_run: bool,
    ) -> (MatchStatus, MapperAccount) {
        let (objects, rows, rows_removed, cleanup_failed) = self
            .holdings
            .get(&(mapper.clone(), hash.to_owned()))
            .copied()
            .unwrap_or_default();
        let mut account = MapperAccount {
            objects,
            rows,
            rows_removed,
            ..MapperAccount::default()
        };
        let kept = match self.mappers.get(&mapper) {
            None => Some("the data mapper was not searched by this job".to_owned()),
            Some((true, _)) => Some("find failed for the data mapper".to_owned()),
            Some((false, searched)) => {
                account.objects_searched = *searched;
                if cleanup_failed {
                    Some("old versions holding its rows were not deleted (cleanup failed)".into())
                } else if self.outside.contains(&(mapper.clone(), hash.to_owned())) {
                    Some(OUTSIDE_PARTITIONS.into())
                } else {
                    self.problems
                        .get(&mapper)
                        .map(|why| format!("{why}: they may hold its rows"))
                }
            }
        };
        let status = match (&kept, objects, dry_run) {
            (Some(_), _, _) => MatchStatus::Kept,
            (None, 0, _) => MatchStatus::NotFound,
            (None, _, true) => MatchStatus::Matched,
            (None, _, false) => MatchStatus::Erased,
        };
        account.status = status.as_str().to_owned();
        account.reason = kept;
        account.data_mapper_id = mapper;
        (status, account)
    }
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

pub fn random_key() -> Vec<u8> {
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

    fn ledger() -> Ledger {
        let s = |v: &str| v.to_owned();
        Ledger {
            mappers: [
                (s("a"), (false, 10)),
                (s("b"), (false, 4)),
                (s("f"), (true, 0)),
            ]
            .into(),
            all_mappers: vec![s("a"), s("b"), s("c"), s("f")],
            problems: [(s("b"), s("1 object(s) not searchable"))].into(),
            holdings: [
                ((s("a"), s("h1")), (2, 5, 5, false)),
                ((s("a"), s("h2")), (1, 1, 1, true)),
                ((s("a"), s("h3")), (1, 2, 0, false)),
            ]
            .into(),
            outside: [(s("a"), s("h3"))].into(),
        }
    }

    #[test]
    fn each_match_gets_an_account_per_mapper_and_a_status() {
        let l = ledger();
        let s = |v: &[&str]| v.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        let (status, accounts) = l.account("h1", s(&["a"]), false);
        assert_eq!(status, MatchStatus::Erased);
        assert_eq!(
            (
                accounts[0].objects_searched,
                accounts[0].objects,
                accounts[0].rows,
                accounts[0].rows_removed
            ),
            (10, 2, 5, 5)
        );
        assert_eq!(l.account("h1", s(&["a"]), true).0, MatchStatus::Matched);
        assert_eq!(l.account("h9", s(&["a"]), false).0, MatchStatus::NotFound);
        // A failed cleanup of an object holding it, an unreadable object of the mapper, a
        // failed find, a mapper this job did not search: kept, with the reason.
        let (status, accounts) = l.account("h2", s(&["a"]), false);
        assert_eq!(status, MatchStatus::Kept);
        assert!(
            accounts[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("cleanup failed")
        );
        let (status, accounts) = l.account("h1", s(&["b"]), false);
        assert_eq!(status, MatchStatus::Kept);
        assert!(
            accounts[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("not searchable")
        );
        assert_eq!(l.account("h1", s(&["f"]), false).0, MatchStatus::Kept);
        // Rows in an object outside the table's partitions: kept, in a dry run too.
        for dry_run in [false, true] {
            let (status, accounts) = l.account("h3", s(&["a"]), dry_run);
            assert_eq!(status, MatchStatus::Kept);
            assert_eq!((accounts[0].objects, accounts[0].rows), (1, 2));
            assert!(
                accounts[0]
                    .reason
                    .as_deref()
                    .unwrap()
                    .starts_with("rows outside the table's partitions")
            );
        }
        // Naming no mapper is every mapper, and `c` was not searched.
        let (status, accounts) = l.account("h1", vec![], false);
        assert_eq!(status, MatchStatus::Kept);
        assert_eq!(accounts.len(), 4);
        assert_eq!(accounts[2].data_mapper_id, "c");
        assert_eq!(accounts[2].status, "kept");
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
