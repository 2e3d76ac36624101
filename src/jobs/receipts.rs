//! Issuing a job's receipts: one per queue item, in the transaction that ends the job
//! (`finalize`), from the accounts the report records and the objects find and forget
//! recorded — nothing is searched or counted again. Appended under the chain's lock, each
//! naming the SHA-256 of the one before; a rerun issues only what is missing (the
//! `(job_id, item)` key refuses a second receipt of an item).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::job::{self as jobs, ItemRequest};
use crate::db::job_data_mapper::{self, Reads, TableCommit};
use crate::db::job_match::{self, ReportMatch, SubjectObject};
use crate::db::job_object;
use crate::db::receipt::{self as db, NewReceipt};
use crate::db::setting;
use crate::domain::settings::Backup;
use crate::receipt::Issuer;
use crate::receipt::jws::{self, sha256_hex};
use crate::receipt::payload::{
    Changed, Deleted, Payload, Reread, RereadVersion, Residue, Searched, Snapshots, VERSION,
};

/// What the job recorded that its receipts state, beyond each item's account.
struct Evidence {
    requests: HashMap<Uuid, ItemRequest>,
    /// By match hash.
    objects: HashMap<String, Vec<SubjectObject>>,
    /// By mapper.
    commits: HashMap<String, TableCommit>,
    /// By mapper: its catalog reference at job start.
    tables: HashMap<String, serde_json::Value>,
    /// By mapper: the hidden objects find recorded (a bucket, one key, how many).
    hidden: HashMap<String, (String, String, i64)>,
    /// By mapper: what its find read.
    reads: HashMap<String, Reads>,
    /// The backups the operator declares (settings).
    backups: Vec<Backup>,
    /// By mapper: the locations (`s3://bucket/key`) of the job's objects.
    data_files: HashMap<String, HashSet<String>>,
}

impl Evidence {
    async fn load(tx: &mut PgConnection, job_id: Uuid) -> sqlx::Result<Self> {
        let mut objects: HashMap<String, Vec<SubjectObject>> = HashMap::new();
        let mut data_files: HashMap<String, HashSet<String>> = HashMap::new();
        for o in job_match::subject_objects(&mut *tx, job_id).await? {
            data_files
                .entry(o.data_mapper_id.clone())
                .or_default()
                .insert(format!("s3://{}/{}", o.bucket, o.key));
            objects.entry(o.match_hash.clone()).or_default().push(o);
        }
        Ok(Self {
            requests: jobs::item_requests(&mut *tx, job_id)
                .await?
                .into_iter()
                .map(|r| (r.deletion_queue_item_id, r))
                .collect(),
            objects,
            commits: job_data_mapper::table_commits(&mut *tx, job_id)
                .await?
                .into_iter()
                .collect(),
            tables: job_data_mapper::catalogs(&mut *tx, job_id)
                .await?
                .into_iter()
                .collect(),
            hidden: job_object::hidden_counts(&mut *tx, job_id)
                .await?
                .into_iter()
                .map(|(m, bucket, key, n)| (m, (bucket, key, n)))
                .collect(),
            reads: job_data_mapper::reads(&mut *tx, job_id)
                .await?
                .into_iter()
                .collect(),
            backups: setting::get_settings(&mut *tx).await?.backups.0,
            data_files,
        })
    }
}

/// Issues the receipt of each of the job's items (`(item, its account)`) that has none
/// yet; returns how many it issued. `stopped`: the job stopped before its end (find
/// failed, cancelled), so what it found and had not finished still holds the rows.
pub async fn issue(
    tx: &mut PgConnection,
    issuer: &Issuer,
    job_id: Uuid,
    accounts: &[(Uuid, ReportMatch)],
    stopped: bool,
) -> sqlx::Result<usize> {
    let evidence = Evidence::load(tx, job_id).await?;
    db::lock_chain(tx).await?;
    let done: HashSet<Uuid> = db::issued_items(&mut *tx, job_id)
        .await?
        .into_iter()
        .collect();
    let (mut seq, mut prev) = match db::head(&mut *tx).await? {
        Some((seq, jws)) => (seq, Some(sha256_hex(&jws))),
        None => (0, None),
    };
    let jwk = issuer.signer.jwk();
    db::record_key(&mut *tx, jwk).await?;
    let mut todo: Vec<&(Uuid, ReportMatch)> = accounts
        .iter()
        .filter(|(id, _)| !done.contains(id))
        .collect();
    todo.sort_by_key(|(id, _)| *id);
    let mut rows = Vec::with_capacity(todo.len());
    for (item_id, account) in todo {
        let Some(request) = evidence.requests.get(item_id) else {
            continue;
        };
        seq += 1;
        let payload = Payload {
            seq,
            prev: prev.clone(),
            issuer: issuer.name.clone(),
            job_id,
            ..statement(request, account, &evidence, stopped)
        };
        let body = serde_json::to_vec(&payload).map_err(|e| sqlx::Error::Encode(e.into()))?;
        let compact = jws::sign(issuer.signer.as_ref(), &body)
            .await
            .map_err(|e| sqlx::Error::Encode(e.into()))?;
        prev = Some(sha256_hex(&compact));
        rows.push(NewReceipt {
            seq,
            prev_hash: payload.prev,
            receipt_id: payload.receipt_id,
            job_id,
            deletion_queue_item_id: *item_id,
            match_hash: payload.match_hash,
            reference: payload.reference,
            jws: compact,
            kid: jwk.kid.clone(),
            issued_at: payload.issued_at,
        });
    }
    db::insert_many(&mut *tx, &rows).await?;
    Ok(rows.len())
}

/// What one item's receipt states (the chain's fields and the issuer left to the caller).
fn statement(
    request: &ItemRequest,
    account: &ReportMatch,
    evidence: &Evidence,
    stopped: bool,
) -> Payload {
    let objects = evidence
        .objects
        .get(&account.match_hash)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let issued_at = chrono::Utc::now();
    let reasons: Vec<String> = account
        .accounts
        .iter()
        .filter_map(|a| Some(format!("{}: {}", a.data_mapper_id, a.reason.as_ref()?)))
        .collect();
    Payload {
        v: VERSION,
        receipt_id: Uuid::now_v7(),
        seq: 0,
        prev: None,
        issued_at,
        issuer: String::new(),
        lethe_version: env!("CARGO_PKG_VERSION").to_owned(),
        job_id: Uuid::nil(),
        item_id: request.deletion_queue_item_id,
        match_hash: account.match_hash.clone(),
        reference: request.reference.clone(),
        requested_at: request.created_at,
        deadline: request.deadline,
        status: account.status.clone(),
        reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
        searched: searched(account, evidence),
        changed: objects
            .iter()
            .filter(|o| !o.noncurrent)
            .map(|o| Changed {
                data_mapper_id: o.data_mapper_id.clone(),
                bucket: o.bucket.clone(),
                key: o.key.clone(),
                key_after: o.new_key.clone(),
                version_before: o.version_before.clone(),
                version_after: o.version_after.clone(),
                sha256_before: o.sha256_before.clone(),
                sha256_after: o.sha256_after.clone(),
                rows: o.rows,
                rows_before: o.rows_before,
                rows_after: o.rows_after,
                outcome: o.forget_state.clone(),
            })
            .collect(),
        verified: Some(reread(objects)),
        deleted: objects
            .iter()
            .flat_map(|o| {
                o.versions_deleted.iter().map(|v| Deleted {
                    bucket: o.bucket.clone(),
                    key: o.key.clone(),
                    version_id: v.clone(),
                })
            })
            .chain(table_files_deleted(account, evidence))
            .collect(),
        residue: residue(account, objects, evidence)
            .into_iter()
            .chain(unfinished(objects, stopped, |m| {
                evidence.commits.contains_key(m)
            }))
            .chain(backups(account, &evidence.backups, issued_at))
            .fold(Vec::new(), |mut all: Vec<Residue>, r| {
                // A version cleanup kept (with its end) is not listed again as unfinished.
                // (A bucket without versions: `null` there, none here.)
                let version = |r: &Residue| r.version_id.clone().filter(|v| v != "null");
                let again = |k: &Residue| {
                    k.kind == "version_kept"
                        && (&k.bucket, &k.key, version(k)) == (&r.bucket, &r.key, version(&r))
                };
                if !(r.kind == "not_erased" && all.iter().any(again)) {
                    all.push(r);
                }
                all
            }),
    }
}

/// The files other than the job's data files that the purge of a table holding the
/// item's rows deleted, every version: manifests (their column bounds may hold its ids),
/// manifest lists, metadata files that listed an expired snapshot, and retired position
/// delete files. The old data files are each object's own `versions_deleted`.
fn table_files_deleted(account: &ReportMatch, evidence: &Evidence) -> Vec<Deleted> {
    let mut out = Vec::new();
    for a in account
        .accounts
        .iter()
        .filter(|a| a.objects + a.old_versions > 0)
    {
        let Some(purge) = evidence
            .commits
            .get(&a.data_mapper_id)
            .and_then(|c| c.purge.as_ref())
            .filter(|p| p.step == "done")
        else {
            continue;
        };
        let data = evidence.data_files.get(&a.data_mapper_id);
        for f in &purge.deleting {
            if data.is_some_and(|d| d.contains(&f.file)) {
                continue;
            }
            let Some((bucket, key)) = f.file.strip_prefix("s3://").and_then(|l| l.split_once('/'))
            else {
                continue;
            };
            out.extend(f.versions.iter().map(|v| Deleted {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                version_id: v.clone(),
            }));
        }
    }
    out
}

/// Verify's re-reads of the versions written over the item's rows that passed.
fn reread(objects: &[SubjectObject]) -> Reread {
    let versions: Vec<RereadVersion> = objects
        .iter()
        .filter(|o| !o.noncurrent && o.forget_state == "verified")
        .filter_map(|o| {
            Some(RereadVersion {
                data_mapper_id: o.data_mapper_id.clone(),
                bucket: o.bucket.clone(),
                key: o.new_key.clone().unwrap_or_else(|| o.key.clone()),
                version_id: o.version_after.clone(),
                rows: o.verified_rows?,
                size_bytes: o.verified_bytes?,
                at: o.verified_at?,
            })
        })
        .collect();
    Reread {
        objects: versions.len() as i64,
        rows: versions.iter().map(|v| v.rows).sum(),
        versions,
    }
}

/// Per mapper the item applies to: its account, and its table's snapshots (Iceberg).
fn searched(account: &ReportMatch, evidence: &Evidence) -> Vec<Searched> {
    account
        .accounts
        .iter()
        .map(|a| (a, evidence.reads.get(&a.data_mapper_id)))
        .map(|(a, reads)| Searched {
            data_mapper_id: a.data_mapper_id.clone(),
            table: evidence.tables.get(&a.data_mapper_id).cloned(),
            objects_searched: a.objects_searched,
            versions_searched: reads.map(|r| r.versions),
            noncurrent_versions_searched: reads.map(|r| r.noncurrent),
            bytes_read: reads.map(|r| r.bytes),
            objects: a.objects,
            rows: a.rows,
            rows_removed: a.rows_removed,
            old_versions: a.old_versions,
            status: a.status.clone(),
            reason: a.reason.clone(),
            snapshots: evidence.commits.get(&a.data_mapper_id).map(|c| Snapshots {
                before: c.snapshot_before,
                after: c.snapshot_after,
                expired: c
                    .purge
                    .as_ref()
                    .map(|p| p.expired.clone())
                    .unwrap_or_default(),
            }),
        })
        .collect()
}

/// Where the item's rows still are or may be: the versions cleanup kept (with the date
/// each ends), the replicas of objects holding them, the Iceberg snapshots a tag or branch
/// keeps on a table holding them, and the hidden objects of each mapper it applies to.
fn residue(account: &ReportMatch, objects: &[SubjectObject], evidence: &Evidence) -> Vec<Residue> {
    let mut out: Vec<Residue> = Vec::new();
    for a in account.accounts.iter() {
        out.extend(a.versions_kept.iter().map(|k| Residue {
            kind: "version_kept".into(),
            name: None,
            bucket: Some(k.bucket.clone()),
            key: Some(k.key.clone()),
            version_id: Some(k.version.version_id.clone()),
            snapshot_id: None,
            reason: k.version.reason.clone(),
            until: k.version.until,
            not_before: k.version.not_before,
        }));
        out.extend(evidence.hidden.get(&a.data_mapper_id).map(|(bucket, key, n)| Residue {
            kind: "hidden".into(),
            name: None,
            bucket: Some(bucket.clone()),
            key: Some(key.clone()),
            version_id: None,
            snapshot_id: None,
            reason: format!(
                "{n} object(s) below the table location of data mapper {} are not its data (a `_` or `.` name) and were not searched: they may hold copies",
                a.data_mapper_id
            ),
            until: None,
            not_before: false,
        }));
        let held = evidence
            .commits
            .get(&a.data_mapper_id)
            .and_then(|c| c.purge.as_ref())
            .filter(|_| a.objects + a.old_versions > 0);
        out.extend(held.into_iter().flat_map(|p| &p.held).map(|h| Residue {
            kind: "snapshot_held".into(),
            name: None,
            bucket: None,
            key: None,
            version_id: None,
            snapshot_id: Some(h.snapshot_id),
            reason: format!(
                "kept by {} of data mapper {}",
                h.reference, a.data_mapper_id
            ),
            until: None,
            not_before: false,
        }));
    }
    let mut replicas: Vec<&str> = objects
        .iter()
        .filter_map(|o| o.replicated_to.as_deref())
        .collect();
    replicas.sort();
    replicas.dedup();
    out.extend(replicas.into_iter().map(|bucket| Residue {
        kind: "replica".into(),
        name: None,
        bucket: Some(bucket.to_owned()),
        key: None,
        version_id: None,
        snapshot_id: None,
        reason: "a replication rule copies objects holding its rows to this bucket; deleting old versions is not replicated".into(),
        until: None,
        not_before: false,
    }));
    out
}

/// The versions holding the item's rows that the job left as they were, each named by
/// key and version: a current version it never rewrote (forget failed; the job stopped
/// first; outside the table's partitions), a version written in its place that failed its
/// check (and the copy put back on top), and the versions forget or find read — or found
/// as old versions — that cleanup did not delete: its cleanup failed, or the job stopped
/// before it ran. Versions cleanup kept on purpose are `version_kept` (not repeated); a
/// version overwritten in place in a bucket without versioning is gone.
fn unfinished(
    objects: &[SubjectObject],
    stopped: bool,
    table_format: impl Fn(&str) -> bool,
) -> Vec<Residue> {
    let mut out = Vec::new();
    for o in objects {
        let named = |key: &str, version: Option<&String>, reason: &str| Residue {
            kind: "not_erased".into(),
            name: None,
            bucket: Some(o.bucket.clone()),
            key: Some(key.to_owned()),
            version_id: version.cloned(),
            snapshot_id: None,
            reason: reason.to_owned(),
            until: None,
            not_before: false,
        };
        // The versions read: find's, and forget's when another writer's replaced it.
        let mut read: Vec<Option<&String>> = vec![o.version_found.as_ref()];
        if o.version_before.is_some() && o.version_before != o.version_found {
            read.push(o.version_before.as_ref());
        }
        let deleted = |v: Option<&String>| v.is_some_and(|v| o.versions_deleted.contains(v));
        // Cleanup deletes the versions read (or finds them gone); kept ones it lists.
        let cleanup_left = match o.cleanup_state.as_deref() {
            Some("done") => false,
            Some("failed") => true,
            _ => stopped,
        };
        let (versions, reason): (Vec<Option<&String>>, &str) = match o.forget_state.as_str() {
            "found" | "failed" => (
                read,
                "this version holds its rows: it was not rewritten (its forget failed, or the job stopped first)",
            ),
            "skipped" if o.outside_partitions => (
                read,
                "this version holds its rows: it lies outside the table's partitions and is never rewritten",
            ),
            "old_version" if cleanup_left => (
                vec![o.version_found.as_ref()],
                "this version holds its rows: only cleanup deletes it, and it did not run or failed",
            ),
            // A failed check keeps the old versions (cleanup never runs for it).
            "written" | "verified" | "verify_failed"
                if cleanup_left || o.forget_state == "verify_failed" =>
            {
                // Overwritten in place where the bucket keeps no versions: gone. (A table
                // format's rewrite is a new file; the old one stays until the purge.)
                // (In a bucket with versioning, a `null` version from before it was turned
                // on stays beside the new version.)
                let unversioned = |v: Option<&String>| v.is_none_or(|v| v == "null");
                let in_place = o.new_key.is_none()
                    && !table_format(&o.data_mapper_id)
                    && read.iter().all(|v| unversioned(*v))
                    && unversioned(o.version_after.as_ref());
                let versions = if in_place { Vec::new() } else { read };
                (
                    versions,
                    "the version rewritten still holds its rows: only cleanup deletes it, and it did not run or failed",
                )
            }
            _ => (Vec::new(), ""),
        };
        for v in versions.into_iter().filter(|v| !deleted(*v)) {
            out.push(named(&o.key, v, reason));
        }
        if o.forget_state == "verify_failed" {
            let key = o.new_key.as_deref().unwrap_or(&o.key);
            out.push(named(
                key,
                o.version_after.as_ref(),
                "the version written in its place failed its check: it may hold its rows",
            ));
            if o.rollback_version_id.is_some() {
                out.push(named(
                    &o.key,
                    o.rollback_version_id.as_ref(),
                    "the copy of the version read that a failed check put back on top holds its rows",
                ));
            }
        }
    }
    let mut seen = HashSet::new();
    out.retain(|r| seen.insert((r.key.clone(), r.version_id.clone())));
    out
}

/// Each declared backup, as a place that may hold copies of the item's rows taken before
/// they left the lake: until the latest of the job's end (`now`) and the end of each
/// version kept, plus the backup's retention; unknown while a kept version has no end,
/// and while the item is `kept` (its rows may still be in the lake, which the backups go
/// on copying).
fn backups(account: &ReportMatch, backups: &[Backup], now: DateTime<Utc>) -> Vec<Residue> {
    let kept = account.accounts.iter().flat_map(|a| &a.versions_kept);
    let in_lake = account.status == "kept" || account.accounts.iter().any(|a| a.status == "kept");
    let mut last = (!in_lake).then_some(now);
    let mut not_before = false;
    for k in kept {
        last = match (last, k.version.until) {
            (Some(l), Some(u)) => Some(l.max(u)),
            _ => None,
        };
        not_before |= k.version.not_before;
    }
    backups
        .iter()
        .map(|b| {
            let until = last.and_then(|l| l.checked_add_signed(TimeDelta::days(b.retention_days.into())));
            let what = b.description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
            Residue {
                kind: "backup".into(),
                bucket: None,
                name: Some(b.name.clone()),
                key: None,
                version_id: None,
                snapshot_id: None,
                reason: format!(
                    "the operator declares the backup {}{what}, kept {} day(s): copies taken before the rows left the lake stay in it",
                    b.name, b.retention_days
                ),
                until,
                not_before: not_before && until.is_some(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::job_match::MapperAccount;
    use crate::receipt::Jwks;
    use crate::receipt::verify::{Input, verify};

    /// What `unfinished` names of one object, as (key, version); mapper `t` is an
    /// Iceberg table's.
    fn left(o: SubjectObject, stopped: bool) -> Vec<(String, Option<String>)> {
        unfinished(&[o], stopped, |m| m == "t")
            .into_iter()
            .map(|r| (r.key.unwrap(), r.version_id))
            .collect()
    }

    fn v(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn every_version_left_holding_the_rows_is_named_and_none_that_is_gone() {
        let base = SubjectObject {
            bucket: "b".into(),
            key: "k".into(),
            version_found: v("v0"),
            version_before: v("v0"),
            ..SubjectObject::default()
        };
        let o = |state: &str, cleanup: Option<&str>| SubjectObject {
            forget_state: state.into(),
            cleanup_state: cleanup.map(str::to_owned),
            ..base.clone()
        };
        let k = |version: Option<String>| ("k".to_owned(), version);
        // Never rewritten: named, finished or stopped.
        for stopped in [false, true] {
            assert_eq!(left(o("failed", None), stopped), [k(v("v0"))]);
        }
        assert_eq!(left(o("found", None), true), [k(v("v0"))]);
        let outside = SubjectObject {
            outside_partitions: true,
            ..o("skipped", None)
        };
        assert_eq!(left(outside, false), [k(v("v0"))]);
        assert!(left(o("skipped", None), false).is_empty(), "gone, not ours");
        // Rewritten (an Iceberg file dropped whole has no version written): the versions
        // read until cleanup deleted them; a cleanup that failed names them too.
        let dropped = SubjectObject {
            version_after: None,
            ..o("verified", None)
        };
        assert_eq!(left(dropped.clone(), true), [k(v("v0"))]);
        assert!(left(dropped, false).is_empty(), "finished: cleanup ran");
        assert_eq!(left(o("verified", Some("failed")), false), [k(v("v0"))]);
        assert!(left(o("verified", Some("done")), true).is_empty());
        let deleted = SubjectObject {
            versions_deleted: vec!["v0".into()],
            ..o("verified", None)
        };
        assert!(left(deleted, true).is_empty());
        // Another writer's version forget read: both it and find's are named.
        let replaced = SubjectObject {
            version_before: v("v1"),
            ..o("written", None)
        };
        assert_eq!(left(replaced, true), [k(v("v0")), k(v("v1"))]);
        // An old version (also one forget met on a key find saw current).
        assert_eq!(left(o("old_version", None), true), [k(v("v0"))]);
        assert!(left(o("old_version", Some("done")), true).is_empty());
        // Forget found no row of its in the version it read: nothing held there.
        assert!(left(o("unchanged", None), true).is_empty());
        // A `null` version from before versioning was turned on stays beside the new one.
        let null_version = SubjectObject {
            version_found: v("null"),
            version_before: v("null"),
            version_after: v("v9"),
            ..o("verified", None)
        };
        assert_eq!(left(null_version, true), [k(v("null"))]);
        // Overwritten in place in a bucket without versions: the old content is gone;
        // a new Iceberg file beside it leaves the old one holding the rows.
        let unversioned = SubjectObject {
            version_found: None,
            version_before: None,
            ..o("verified", None)
        };
        assert!(left(unversioned.clone(), true).is_empty());
        let beside = SubjectObject {
            new_key: v("k-lethe-1"),
            ..unversioned.clone()
        };
        assert_eq!(left(beside, true), [k(None)]);
        // An Iceberg data file the commit dropped whole (no new file): it stays until the
        // purge deletes it.
        let dropped = SubjectObject {
            data_mapper_id: "t".into(),
            ..unversioned
        };
        assert_eq!(left(dropped, true), [k(None)]);
        // A failed check: the versions read, the version written (at its own key) and
        // the copy put back on top.
        let failed_check = SubjectObject {
            new_key: v("k2"),
            version_after: v("v2"),
            rollback_version_id: v("v3"),
            ..o("verify_failed", None)
        };
        assert_eq!(
            left(failed_check, false),
            [k(v("v0")), ("k2".to_owned(), v("v2")), k(v("v3"))]
        );
    }

    /// A queued item of `job_id` with a reference; its account (erased in mapper `m`).
    async fn item(db: &sqlx::PgPool, job_id: Uuid, n: u8) -> (Uuid, ReportMatch) {
        let id = Uuid::now_v7();
        sqlx::query(
            "insert into deletion_queue_item (deletion_queue_item_id, match_id, match_type,
                                              deadline, reference, created_by)
             values ($1, '1', 'simple', now() + interval '30 days', $2, 't')",
        )
        .bind(id)
        .bind(format!("T-{n}"))
        .execute(db)
        .await
        .unwrap();
        sqlx::query("insert into job_queue_item (job_id, deletion_queue_item_id) values ($1, $2)")
            .bind(job_id)
            .bind(id)
            .execute(db)
            .await
            .unwrap();
        let account = MapperAccount {
            data_mapper_id: "m".into(),
            objects_searched: 4,
            objects: 1,
            rows: 2,
            rows_removed: 2,
            status: "erased".into(),
            ..MapperAccount::default()
        };
        let report = ReportMatch {
            match_hash: format!("{n:064x}"),
            data_mappers: vec!["m".into()],
            status: "erased".into(),
            accounts: sqlx::types::Json(vec![account]),
        };
        (id, report)
    }

    async fn issue_once(
        db: &sqlx::PgPool,
        issuer: &Issuer,
        job_id: Uuid,
        a: &[(Uuid, ReportMatch)],
    ) -> usize {
        let mut tx = db.begin().await.unwrap();
        let n = issue(&mut tx, issuer, job_id, a, false).await.unwrap();
        tx.commit().await.unwrap();
        n
    }

    #[sqlx::test(migrator = "crate::db::MIGRATOR")]
    async fn a_rerun_issues_only_the_missing_receipts_and_the_chain_goes_on(db: sqlx::PgPool) {
        let issuer = Issuer::ephemeral("test-deployment").unwrap();
        let job_id = crate::db::job::tests::a_job(&db).await;
        let mut accounts = vec![item(&db, job_id, 1).await, item(&db, job_id, 2).await];
        assert_eq!(issue_once(&db, &issuer, job_id, &accounts).await, 2);
        assert_eq!(
            issue_once(&db, &issuer, job_id, &accounts).await,
            0,
            "no receipt twice"
        );
        accounts.push(item(&db, job_id, 3).await);
        assert_eq!(issue_once(&db, &issuer, job_id, &accounts).await, 1);
        let rows = db::page(&db, &db::Filter::Job(job_id), 0, 10)
            .await
            .unwrap();
        let inputs: Vec<Input> = rows
            .iter()
            .map(|(seq, jws)| Input {
                at: format!("seq {seq}"),
                compact: jws.clone(),
            })
            .collect();
        let keys = Jwks {
            keys: db::keys(&db).await.unwrap(),
        };
        assert_eq!(keys.keys, [issuer.signer.jwk().clone()]);
        let ok = verify(&inputs, &keys).unwrap();
        assert_eq!((ok.count, ok.first_seq, ok.last_seq), (3, 1, 3));
        let payload: Payload =
            serde_json::from_slice(&crate::receipt::jws::verify(&rows[2].1, &keys).unwrap())
                .unwrap();
        assert_eq!(payload.reference.as_deref(), Some("T-3"));
        assert_eq!(payload.issuer, "test-deployment");
        assert_eq!(payload.match_hash, format!("{:064x}", 3));
        assert_eq!(payload.searched[0].rows_removed, 2);
        assert_eq!(payload.item_id, accounts[2].0);
    }

    fn kept(until: Option<&str>, not_before: bool) -> crate::db::job_match::AccountVersion {
        crate::db::job_match::AccountVersion {
            bucket: "b".into(),
            key: "t/a.json".into(),
            version: crate::db::job_object::KeptVersion {
                version_id: "v0".into(),
                reason: "kept".into(),
                until: until.map(|u| u.parse().unwrap()),
                not_before,
                hold: until.is_none(),
            },
        }
    }

    fn account(versions_kept: Vec<crate::db::job_match::AccountVersion>) -> ReportMatch {
        ReportMatch {
            match_hash: "00".into(),
            data_mappers: vec!["m".into()],
            status: "erased".into(),
            accounts: sqlx::types::Json(vec![MapperAccount {
                data_mapper_id: "m".into(),
                versions_kept,
                ..MapperAccount::default()
            }]),
        }
    }

    #[test]
    fn a_declared_backup_ends_its_retention_after_the_job_or_the_last_version_kept() {
        let now: DateTime<Utc> = "2026-12-07T12:00:00Z".parse().unwrap();
        let declared = [
            Backup {
                name: "lake-daily".into(),
                retention_days: 35,
                description: Some("AWS Backup vault".into()),
            },
            Backup {
                name: "tape".into(),
                retention_days: 1,
                description: None,
            },
        ];
        let until = |r: &[Residue]| -> Vec<(String, Option<String>, bool)> {
            r.iter()
                .map(|r| {
                    assert_eq!(r.kind, "backup");
                    let at = r.until.map(|u| u.to_rfc3339());
                    (r.name.clone().unwrap(), at, r.not_before)
                })
                .collect()
        };
        let erased = backups(&account(vec![]), &declared, now);
        assert_eq!(
            until(&erased),
            [
                (
                    "lake-daily".into(),
                    Some("2027-01-11T12:00:00+00:00".into()),
                    false
                ),
                (
                    "tape".into(),
                    Some("2026-12-08T12:00:00+00:00".into()),
                    false
                ),
            ]
        );
        assert!(
            erased[0]
                .reason
                .contains("lake-daily (AWS Backup vault), kept 35 day(s)")
        );
        // A version kept to a later date (a lower bound): the backups may copy it until then.
        let later = vec![
            kept(Some("2026-12-31T00:00:00Z"), true),
            kept(Some("2026-12-08T00:00:00Z"), false),
        ];
        assert_eq!(
            until(&backups(&account(later), &declared[1..], now)),
            [(
                "tape".into(),
                Some("2027-01-01T00:00:00+00:00".into()),
                true
            )]
        );
        // A version kept without an end (a legal hold): no end known.
        let held = vec![kept(None, false)];
        assert_eq!(
            until(&backups(&account(held), &declared[1..], now)),
            [("tape".into(), None, false)]
        );
        assert!(backups(&account(vec![]), &[], now).is_empty());
        // A kept item (a failed rewrite, a tag): its rows may still be in the lake, which
        // the backups go on copying; no end known.
        let still = ReportMatch {
            status: "kept".into(),
            ..account(vec![])
        };
        assert_eq!(
            until(&backups(&still, &declared[1..], now)),
            [("tape".into(), None, false)]
        );
    }
}
