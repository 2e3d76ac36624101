//! The end of a job after cleanup: gives each queue item an account per data mapper
//! (objects searched, objects and rows holding it, rows removed, a status), takes the
//! erased and not-found ones off the queue, keeping only a keyed hash of each in the
//! report, issues each item's receipt (`jobs::receipts`), and decides the final state
//! (the job's end then writes an audit checkpoint, `jobs::audit_checkpoint`). A
//! dry run records the accounts at the end of find (and issues no receipt). A job that
//! stops before its end (its find failed, or it was cancelled) records every item's
//! account as `kept`, with why, and issues its receipts too ([`stopped`]).

use std::collections::HashMap;

use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::job::{self as jobs, JobStats};
use crate::db::job_match::{self, AccountVersion, Holding, MapperAccount, ReportMatch};
use crate::db::{data_mapper, deletion_queue_item, job_data_mapper, job_object, server_secret};
use crate::domain::job::{EventLevel, ForgetState, JobStatus};
use crate::domain::match_id::match_hash;
use crate::jobs::lifecycle::event;
use crate::receipt::Issuer;

/// Why an item with rows in an object outside its table's partitions stays queued.
pub const OUTSIDE_PARTITIONS: &str = "rows outside the table's partitions: an object under the table location in no partition holds its rows, and Lethe never rewrites it (Athena does not read it; register its partition or move it, then run again)";

/// Why an item whose rows a version written on top of Lethe's holds stays queued.
pub const NEWER_HOLDS: &str = "a version written on top of Lethe's rewrite (by a writer that read the object before it) holds its rows: the next job rewrites it";

/// Name of the report's HMAC key in `server_secret`.
pub const REPORT_KEY: &str = "report_hmac";

/// Ends the job: records what became of each queue item, issues each item's receipt
/// (signed by `issuer`) and returns the end state.
pub async fn finalize(
    tx: &mut PgConnection,
    issuer: &Issuer,
    job_id: Uuid,
) -> sqlx::Result<JobStatus> {
    fail_unfinished_cleanups(tx, job_id).await?;
    let (leaving, matches) = record_accounts(tx, job_id, Ending::Finished).await?;
    issue_receipts(tx, issuer, job_id, &matches, false).await?;
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
               "not_found": matches.iter().filter(|(_, m)| m.status == "not_found").count()}),
    )
    .await?;
    Ok(status)
}

/// Ends a real job that stopped before cleanup was over (`why`: its find failed, or it
/// was cancelled): every item's account is recorded `kept` with `why` (none leaves the
/// queue: the next job searches again) and each item gets its receipt, which names what
/// the job did change and what still holds the rows. A dry run's stop records nothing.
pub async fn stopped(
    tx: &mut PgConnection,
    issuer: &Issuer,
    job_id: Uuid,
    why: &str,
) -> sqlx::Result<()> {
    let (leaving, matches) = record_accounts(tx, job_id, Ending::Stopped(why)).await?;
    debug_assert!(leaving.is_empty());
    issue_receipts(tx, issuer, job_id, &matches, true).await?;
    event(
        &mut *tx,
        job_id,
        EventLevel::Warning,
        "queue_updated",
        &format!(
            "0 queue item(s) taken off the queue; {} kept for the next job",
            matches.len()
        ),
        json!({"erased": 0, "kept": matches.len(), "not_found": 0}),
    )
    .await
}

/// Issues each item's receipt (`jobs::receipts`), with its event.
async fn issue_receipts(
    tx: &mut PgConnection,
    issuer: &Issuer,
    job_id: Uuid,
    matches: &[(Uuid, ReportMatch)],
    stopped: bool,
) -> sqlx::Result<()> {
    let issued = crate::jobs::receipts::issue(tx, issuer, job_id, matches, stopped).await?;
    event(
        &mut *tx,
        job_id,
        EventLevel::Info,
        "receipts_issued",
        &format!("{issued} receipt(s) issued, one per queue item"),
        json!({"receipts": issued, "kid": issuer.signer.jwk().kid}),
    )
    .await
}

/// How a job ends, for its accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending<'a> {
    /// Cleanup is over: each item gets the status its accounts give.
    Finished,
    /// A dry run's find is over: rows found are `matched`.
    DryRun,
    /// The job stopped before its end (find failed, cancelled): every account not kept
    /// already is kept with this reason, so no item leaves the queue.
    Stopped(&'a str),
}

/// What the job knows per mapper and per (mapper, match), for the accounts.
struct Ledger {
    /// Mapper → (its find failed, objects searched).
    mappers: HashMap<String, (bool, i64)>,
    all_mappers: Vec<String>,
    /// Mapper → why its items are kept (failed / unreadable objects, failed cleanups).
    problems: HashMap<String, String>,
    /// (mapper, match hash) → what the mapper's objects and versions hold of it.
    holdings: HashMap<(String, String), Holding>,
    /// (mapper, match hash) → the versions holding its rows that cleanup kept.
    kept: HashMap<(String, String), Vec<AccountVersion>>,
}

/// Records every queue item's account (`job_match`) and returns the items that leave
/// the queue (erased, retained or not found; none unless `Finished`) and each item's
/// account.
pub async fn record_accounts(
    tx: &mut PgConnection,
    job_id: Uuid,
    ending: Ending<'_>,
) -> sqlx::Result<(Vec<Uuid>, Vec<(Uuid, ReportMatch)>)> {
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
            .map(|h| ((h.data_mapper_id.clone(), h.match_hash.clone()), h))
            .collect(),
        kept: job_match::kept_versions(&mut *tx, job_id)
            .await?
            .into_iter()
            .map(|(m, h, versions)| ((m, h), versions.0))
            .collect(),
    };
    let key = server_secret::get_or_create(&mut *tx, REPORT_KEY, random_key).await?;
    let items = jobs::queue_snapshot(&mut *tx, job_id).await?;
    let mut leaving = Vec::new();
    let mut matches = Vec::with_capacity(items.len());
    let mut ids = Vec::with_capacity(items.len());
    for (id, match_id, named) in items {
        ids.push(id);
        let hash = match_hash(&key, &match_id);
        let (status, accounts) = ledger.account(&hash, named, ending);
        if ending == Ending::Finished
            && matches!(
                status,
                MatchStatus::Erased | MatchStatus::Retained | MatchStatus::NotFound
            )
        {
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
    Ok((leaving, ids.into_iter().zip(matches).collect()))
}

/// What became of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchStatus {
    Erased,
    /// Removed from every current version; old versions Lethe may not delete hold it.
    Retained,
    NotFound,
    Kept,
    /// A dry run found rows (nothing written).
    Matched,
}

impl MatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchStatus::Erased => "erased",
            MatchStatus::Retained => "retained",
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
        ending: Ending<'_>,
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
            .map(|m| self.mapper_account(m, hash, ending))
            .unzip();
        // Kept wins over retained, over rows found (erased / matched), over not found.
        let status = [
            MatchStatus::Kept,
            MatchStatus::Retained,
            MatchStatus::Erased,
            MatchStatus::Matched,
        ]
        .into_iter()
        .find(|s| statuses.contains(s))
        .unwrap_or(MatchStatus::NotFound);
        (status, accounts)
    }

    fn mapper_account(
        &self,
        mapper: String,
        hash: &str,
        ending: Ending<'_>,
    ) -> (MatchStatus, MapperAccount) {
        let at = (mapper.clone(), hash.to_owned());
        let h = self.holdings.get(&at).cloned().unwrap_or_default();
        let versions_kept = self.kept.get(&at).cloned().unwrap_or_default();
        let mut account = MapperAccount {
            objects: h.objects,
            rows: h.rows,
            rows_removed: h.rows_removed,
            old_versions: h.old_versions,
            ..MapperAccount::default()
        };
        let kept = match self.mappers.get(&mapper) {
            None => Some("the data mapper was not searched by this job".to_owned()),
            Some((true, _)) => Some("find failed for the data mapper".to_owned()),
            Some((false, searched)) => {
                account.objects_searched = *searched;
                kept_reason(&h, &versions_kept).or_else(|| {
                    self.problems
                        .get(&mapper)
                        .map(|why| format!("{why}: they may hold its rows"))
                })
            }
        };
        // A stopped job erased nothing for good: whatever else its accounts say.
        let kept = match ending {
            Ending::Stopped(why) => kept.or_else(|| Some(why.to_owned())),
            _ => kept,
        };
        let found = h.objects + h.old_versions > 0;
        let status = match (&kept, found, ending == Ending::DryRun) {
            (Some(_), _, _) => MatchStatus::Kept,
            (None, false, _) => MatchStatus::NotFound,
            (None, _, true) => MatchStatus::Matched,
            (None, _, false) if !versions_kept.is_empty() => MatchStatus::Retained,
            (None, _, false) => MatchStatus::Erased,
        };
        account.status = status.as_str().to_owned();
        account.reason = kept;
        account.data_mapper_id = mapper;
        account.versions_kept = versions_kept;
        (status, account)
    }
}

/// Why what a mapper's objects hold of a match keeps it queued, if anything does.
fn kept_reason(h: &Holding, versions_kept: &[AccountVersion]) -> Option<String> {
    if h.cleanup_failed {
        Some("old versions holding its rows were not deleted (cleanup failed)".into())
    } else if h.outside {
        Some(OUTSIDE_PARTITIONS.into())
    } else if h.newer_holds {
        Some(NEWER_HOLDS.into())
    } else if let Some(replica) = &h.replicated_to {
        Some(format!(
            "a replication rule copies objects holding its rows to bucket {replica}: deleting old versions is not replicated, so the replica's versions keep its rows (erase them there, e.g. with a data mapper over the replica)"
        ))
    } else {
        versions_kept.iter().find(|v| v.version.hold).map(|v| {
            let k = &v.version;
            format!(
                "{} {} version {}: {}",
                v.bucket, v.key, k.version_id, k.reason
            )
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::job_object::KeptVersion;

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
                holding("h1", (2, 5, 5, 0), |_| ()),
                holding("h2", (1, 1, 1, 0), |h| h.cleanup_failed = true),
                holding("h3", (1, 2, 0, 0), |h| h.outside = true),
                // Removed from its object; an old version of another key held it too.
                holding("h4", (1, 3, 3, 1), |_| ()),
                // Only in an old version behind a delete marker.
                holding("h5", (0, 0, 0, 1), |_| ()),
                holding("h6", (1, 1, 1, 0), |h| h.newer_holds = true),
            ]
            .into(),
            kept: [
                ((s("a"), s("h4")), vec![kept_version("v1", false)]),
                ((s("a"), s("h5")), vec![kept_version("v7", true)]),
            ]
            .into(),
        }
    }

    fn holding(
        hash: &str,
        (objects, rows, rows_removed, old_versions): (i64, i64, i64, i64),
        tweak: impl Fn(&mut Holding),
    ) -> ((String, String), Holding) {
        let mut h = Holding {
            data_mapper_id: "a".into(),
            match_hash: hash.into(),
            objects,
            rows,
            rows_removed,
            old_versions,
            ..Holding::default()
        };
        tweak(&mut h);
        (("a".into(), hash.into()), h)
    }

    fn kept_version(version_id: &str, hold: bool) -> AccountVersion {
        AccountVersion {
            bucket: "lake".into(),
            key: "t/a.json".into(),
            version: KeptVersion {
                version_id: version_id.into(),
                reason: if hold { "legal hold" } else { "keeps" }.into(),
                until: None,
                not_before: false,
                hold,
            },
        }
    }

    #[test]
    fn old_versions_make_a_match_found_and_kept_ones_make_it_retained_or_kept() {
        let l = ledger();
        let a = vec!["a".to_owned()];
        let (status, accounts) = l.account("h4", a.clone(), Ending::Finished);
        assert_eq!(status, MatchStatus::Retained);
        assert_eq!(accounts[0].versions_kept[0].version.version_id, "v1");
        let json = serde_json::to_value(&accounts[0].versions_kept[0]).unwrap();
        assert_eq!(json["version_id"], "v1", "flat: {json}");
        assert_eq!(json["bucket"], "lake");
        assert_eq!(accounts[0].old_versions, 1);
        assert_eq!(accounts[0].reason, None, "retained is no kept reason");
        // Found only in an old version, held by a legal hold: kept, with the version.
        let (status, accounts) = l.account("h5", a.clone(), Ending::Finished);
        assert_eq!(status, MatchStatus::Kept);
        assert!(accounts[0].reason.as_deref().unwrap().contains("v7"));
        assert_eq!(
            l.account("h5", a.clone(), Ending::DryRun).0,
            MatchStatus::Kept
        );
        // A newer version written on top holds it: kept.
        let (status, accounts) = l.account("h6", a.clone(), Ending::Finished);
        assert_eq!(status, MatchStatus::Kept);
        assert_eq!(accounts[0].reason.as_deref(), Some(NEWER_HOLDS));
        // Retained outranks erased across mappers; kept outranks retained.
        assert_eq!(MatchStatus::Retained.as_str(), "retained");
    }

    #[test]
    fn each_match_gets_an_account_per_mapper_and_a_status() {
        let l = ledger();
        let s = |v: &[&str]| v.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        let (status, accounts) = l.account("h1", s(&["a"]), Ending::Finished);
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
        assert_eq!(
            l.account("h1", s(&["a"]), Ending::DryRun).0,
            MatchStatus::Matched
        );
        assert_eq!(
            l.account("h9", s(&["a"]), Ending::Finished).0,
            MatchStatus::NotFound
        );
        // A failed cleanup of an object holding it, an unreadable object of the mapper, a
        // failed find, a mapper this job did not search: kept, with the reason.
        let (status, accounts) = l.account("h2", s(&["a"]), Ending::Finished);
        assert_eq!(status, MatchStatus::Kept);
        assert!(
            accounts[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("cleanup failed")
        );
        let (status, accounts) = l.account("h1", s(&["b"]), Ending::Finished);
        assert_eq!(status, MatchStatus::Kept);
        assert!(
            accounts[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("not searchable")
        );
        assert_eq!(
            l.account("h1", s(&["f"]), Ending::Finished).0,
            MatchStatus::Kept
        );
        // Rows in an object outside the table's partitions: kept, in a dry run too.
        for ending in [Ending::Finished, Ending::DryRun] {
            let (status, accounts) = l.account("h3", s(&["a"]), ending);
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
        let (status, accounts) = l.account("h1", vec![], Ending::Finished);
        assert_eq!(status, MatchStatus::Kept);
        assert_eq!(accounts.len(), 4);
        assert_eq!(accounts[2].data_mapper_id, "c");
        assert_eq!(accounts[2].status, "kept");
        // A stopped job: every account kept, its own reason first, the stop's otherwise
        // (rows found and rows not found alike), and nothing leaves the queue.
        let why = "the job was cancelled";
        for hash in ["h1", "h9"] {
            let (status, accounts) = l.account(hash, s(&["a"]), Ending::Stopped(why));
            assert_eq!(status, MatchStatus::Kept, "{hash}");
            assert_eq!(accounts[0].status, "kept");
            assert_eq!(accounts[0].reason.as_deref(), Some(why));
        }
        let (_, accounts) = l.account("h1", s(&["f"]), Ending::Stopped(why));
        assert_eq!(
            accounts[0].reason.as_deref(),
            Some("find failed for the data mapper")
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
