//! Lake Formation grants: the [`LakeFormation`] boundary (aws-sdk-lakeformation in
//! production, a fake in unit tests) and the logic on top of it that real Lake Formation
//! needs and the emulator does not show: `ListPermissions` pagination, batches of at most
//! 20 entries with per-entry failures, retries of `ConcurrentModificationException` with
//! exponential backoff, and "No permissions revoked" counted as done.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::grants::{Grant, LfPermission, LfResource, Plan};

/// Lake Formation's batch limit.
pub const BATCH_SIZE: usize = 20;
const MAX_ATTEMPTS: u32 = 5;

/// An error from Lake Formation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct LfError {
    pub code: String,
    pub message: String,
}

impl LfError {
    fn is_concurrent_modification(&self) -> bool {
        self.code == "ConcurrentModificationException"
    }
    /// Real Lake Formation's answer to revoking a grant that is not there.
    fn is_nothing_revoked(&self) -> bool {
        self.code == "InvalidInputException" && self.message.contains("No permissions revoked")
    }
}

/// One failed entry of a batch call, by entry id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    pub id: String,
    pub error: LfError,
}

/// The Lake Formation calls Lethe makes.
#[async_trait]
pub trait LakeFormation: Send + Sync + 'static {
    /// One page of table-level permissions (`ResourceType = TABLE`).
    async fn list_permissions_page(
        &self,
        next_token: Option<String>,
    ) -> Result<(Vec<LfPermission>, Option<String>), LfError>;
    async fn batch_grant(
        &self,
        entries: &[(String, LfPermission)],
    ) -> Result<Vec<EntryFailure>, LfError>;
    async fn batch_revoke(
        &self,
        entries: &[(String, LfPermission)],
    ) -> Result<Vec<EntryFailure>, LfError>;
    /// A single grant (used for grants with grant option).
    async fn grant(&self, entry: &LfPermission) -> Result<(), LfError>;
    /// S3 locations registered with Lake Formation (`arn:aws:s3:::bucket/prefix`).
    async fn registered_locations(&self) -> Result<Vec<String>, LfError>;
    /// Principals the data lake settings give permissions on every new table.
    async fn default_table_principals(&self) -> Result<Vec<String>, LfError>;
}

/// An in-memory Lake Formation for tests and local runs: grants are held as given,
/// revoking a missing grant answers "No permissions revoked" as the real service does.
#[derive(Debug, Default)]
pub struct MemoryLakeFormation {
    pub held: std::sync::Mutex<Vec<LfPermission>>,
}

impl MemoryLakeFormation {
    fn held(&self) -> std::sync::MutexGuard<'_, Vec<LfPermission>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl LakeFormation for MemoryLakeFormation {
    async fn list_permissions_page(
        &self,
        _next_token: Option<String>,
    ) -> Result<(Vec<LfPermission>, Option<String>), LfError> {
        Ok((self.held().clone(), None))
    }
    async fn batch_grant(
        &self,
        entries: &[(String, LfPermission)],
    ) -> Result<Vec<EntryFailure>, LfError> {
        for (_, p) in entries {
            self.grant(p).await?;
        }
        Ok(vec![])
    }
    async fn batch_revoke(
        &self,
        entries: &[(String, LfPermission)],
    ) -> Result<Vec<EntryFailure>, LfError> {
        let mut held = self.held();
        let mut failures = Vec::new();
        for (id, p) in entries {
            match held
                .iter()
                .position(|h| h.principal == p.principal && h.resource == p.resource)
            {
                Some(i) => {
                    held.remove(i);
                }
                None => failures.push(EntryFailure {
                    id: id.clone(),
                    error: LfError {
                        code: "InvalidInputException".to_owned(),
                        message: "No permissions revoked".to_owned(),
                    },
                }),
            }
        }
        Ok(failures)
    }
    async fn grant(&self, entry: &LfPermission) -> Result<(), LfError> {
        self.held().push(entry.clone());
        Ok(())
    }
    async fn registered_locations(&self) -> Result<Vec<String>, LfError> {
        Ok(vec![])
    }
    async fn default_table_principals(&self) -> Result<Vec<String>, LfError> {
        Ok(vec![])
    }
}

/// Every table-level permission, following `NextToken`.
pub async fn list_all(lf: &dyn LakeFormation) -> Result<Vec<LfPermission>, LfError> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let (page, next) = retry(
            || lf.list_permissions_page(token.clone()),
            Duration::from_millis(100),
        )
        .await?;
        all.extend(page);
        match next {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok(all),
        }
    }
}

/// Whether an entry was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub grant: Grant,
    /// `grant` or `revoke`.
    pub action: &'static str,
    pub error: Option<LfError>,
}

/// Where an apply records what it did as it goes: each batch's outcomes are handed over
/// as soon as Lake Formation answered for them, before the next batch starts, so what an
/// apply cut short (a request timeout, a crash) had already changed is on record.
#[async_trait]
pub trait BatchLog: Send + Sync {
    type Error: Send;
    /// Records one batch's outcomes; an error stops the apply before the next batch.
    async fn record(&self, outcomes: &[Outcome]) -> Result<(), Self::Error>;
}

/// Executes a plan: revokes first (a changed column set is revoked before the new one is
/// granted, since Lake Formation merges column grants), then grants. Returns one outcome
/// per entry; a failed entry does not stop the others. Each batch (a grant with grant
/// option is a batch of one) goes to `log` once applied; a failure to record it stops
/// the apply there.
pub async fn apply<L: BatchLog + ?Sized>(
    lf: &dyn LakeFormation,
    plan: &Plan,
    base_delay: Duration,
    log: &L,
) -> Result<Vec<Outcome>, L::Error> {
    let mut outcomes = Vec::new();
    let revokes: Vec<(Grant, LfPermission)> = plan
        .to_revoke
        .iter()
        .map(|h| (h.grant.clone(), h.grant.to_lf(h.resource.clone())))
        .collect();
    for chunk in revokes.chunks(BATCH_SIZE) {
        let batch = run_batch(lf, chunk, "revoke", base_delay).await;
        log.record(&batch).await?;
        outcomes.extend(batch);
    }
    let (single, batched): (Vec<&Grant>, Vec<&Grant>) =
        plan.to_grant.iter().partition(|g| g.grant_option);
    let grants: Vec<(Grant, LfPermission)> = batched
        .into_iter()
        .map(|g| (g.clone(), g.to_lf(g.resource())))
        .collect();
    for chunk in grants.chunks(BATCH_SIZE) {
        let batch = run_batch(lf, chunk, "grant", base_delay).await;
        log.record(&batch).await?;
        outcomes.extend(batch);
    }
    // BatchGrantPermissions may drop PermissionsWithGrantOption (the emulator does), so
    // grants with grant option go one by one.
    for g in single {
        let entry = g.to_lf(g.resource());
        let result = retry(|| lf.grant(&entry), base_delay).await;
        let batch = [Outcome {
            grant: g.clone(),
            action: "grant",
            error: result.err(),
        }];
        log.record(&batch).await?;
        outcomes.extend(batch);
    }
    Ok(outcomes)
}

/// A [`BatchLog`] that keeps nothing (tools and tests that audit elsewhere).
pub struct NoLog;

#[async_trait]
impl BatchLog for NoLog {
    type Error = std::convert::Infallible;
    async fn record(&self, _: &[Outcome]) -> Result<(), Self::Error> {
        Ok(())
    }
}

async fn run_batch(
    lf: &dyn LakeFormation,
    chunk: &[(Grant, LfPermission)],
    action: &'static str,
    base_delay: Duration,
) -> Vec<Outcome> {
    let mut pending: Vec<(String, &Grant, &LfPermission)> = chunk
        .iter()
        .enumerate()
        .map(|(i, (g, p))| (i.to_string(), g, p))
        .collect();
    let mut outcomes = Vec::new();
    for attempt in 0..MAX_ATTEMPTS {
        let entries: Vec<(String, LfPermission)> = pending
            .iter()
            .map(|(id, _, p)| (id.clone(), (*p).clone()))
            .collect();
        let result = if action == "grant" {
            lf.batch_grant(&entries).await
        } else {
            lf.batch_revoke(&entries).await
        };
        let failures = match result {
            Ok(failures) => failures,
            Err(e) if e.is_concurrent_modification() && attempt + 1 < MAX_ATTEMPTS => {
                tokio::time::sleep(base_delay * 2u32.pow(attempt)).await;
                continue;
            }
            Err(e) => pending
                .iter()
                .map(|(id, _, _)| EntryFailure {
                    id: id.clone(),
                    error: e.clone(),
                })
                .collect(),
        };
        let mut retry_next = Vec::new();
        for (id, grant, perm) in pending {
            let failure = failures
                .iter()
                .find(|f| f.id == id)
                .map(|f| f.error.clone());
            match failure {
                Some(e) if e.is_concurrent_modification() && attempt + 1 < MAX_ATTEMPTS => {
                    retry_next.push((id, grant, perm))
                }
                Some(e) if action == "revoke" && e.is_nothing_revoked() => outcomes.push(Outcome {
                    grant: grant.clone(),
                    action,
                    error: None,
                }),
                error => outcomes.push(Outcome {
                    grant: grant.clone(),
                    action,
                    error,
                }),
            }
        }
        if retry_next.is_empty() {
            return outcomes;
        }
        pending = retry_next;
        tokio::time::sleep(base_delay * 2u32.pow(attempt)).await;
    }
    outcomes
}

/// Retries a call while Lake Formation reports a concurrent modification.
async fn retry<T, F, Fut>(mut call: F, base_delay: Duration) -> Result<T, LfError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, LfError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if e.is_concurrent_modification() && attempt + 1 < MAX_ATTEMPTS => {
                tokio::time::sleep(base_delay * 2u32.pow(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The resource's table, for reporting.
pub fn resource_table(resource: &LfResource) -> Option<(&str, &str)> {
    match resource {
        LfResource::Table { database, name }
        | LfResource::TableWithColumns { database, name, .. } => Some((database, name)),
        LfResource::TableWildcard { database } => Some((database, "*")),
        LfResource::Other => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grants::{HeldGrant, Target};
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    /// A Lake Formation that pages, merges nothing, and misbehaves on request.
    #[derive(Default)]
    struct FakeLf {
        /// Holds the grants; the fake adds paging and misbehaviour on top.
        memory: MemoryLakeFormation,
        page_size: usize,
        /// Whole-call ConcurrentModificationExceptions still to throw.
        busy_calls: Mutex<u32>,
        /// Entry ids that fail once with ConcurrentModificationException.
        flaky_ids: Mutex<Vec<String>>,
        /// Principals whose grants fail permanently.
        denied: Vec<String>,
        calls: Mutex<Vec<String>>,
    }

    impl FakeLf {
        fn busy(&self) -> Result<(), LfError> {
            let mut busy = self.busy_calls.lock().unwrap();
            if *busy > 0 {
                *busy -= 1;
                return Err(LfError {
                    code: "ConcurrentModificationException".into(),
                    message: "busy".into(),
                });
            }
            Ok(())
        }
    }

    #[async_trait]
    impl LakeFormation for FakeLf {
        async fn list_permissions_page(
            &self,
            token: Option<String>,
        ) -> Result<(Vec<LfPermission>, Option<String>), LfError> {
            self.calls.lock().unwrap().push(format!("list {token:?}"));
            let held = self.memory.held();
            let start: usize = token.map(|t| t.parse().unwrap()).unwrap_or(0);
            let end = (start + self.page_size).min(held.len());
            let next = (end < held.len()).then(|| end.to_string());
            Ok((held[start..end].to_vec(), next))
        }
        async fn batch_grant(
            &self,
            entries: &[(String, LfPermission)],
        ) -> Result<Vec<EntryFailure>, LfError> {
            self.busy()?;
            self.calls
                .lock()
                .unwrap()
                .push(format!("batch_grant {}", entries.len()));
            let mut failures = Vec::new();
            for (id, p) in entries {
                let mut flaky = self.flaky_ids.lock().unwrap();
                if let Some(i) = flaky.iter().position(|f| f == id) {
                    flaky.remove(i);
                    failures.push(EntryFailure {
                        id: id.clone(),
                        error: LfError {
                            code: "ConcurrentModificationException".into(),
                            message: "retry".into(),
                        },
                    });
                } else if self.denied.contains(&p.principal) {
                    failures.push(EntryFailure {
                        id: id.clone(),
                        error: LfError {
                            code: "AccessDeniedException".into(),
                            message: "no".into(),
                        },
                    });
                } else {
                    self.memory.held().push(p.clone());
                }
            }
            Ok(failures)
        }
        async fn batch_revoke(
            &self,
            entries: &[(String, LfPermission)],
        ) -> Result<Vec<EntryFailure>, LfError> {
            self.busy()?;
            self.calls
                .lock()
                .unwrap()
                .push(format!("batch_revoke {}", entries.len()));
            self.memory.batch_revoke(entries).await
        }
        async fn grant(&self, entry: &LfPermission) -> Result<(), LfError> {
            self.busy()?;
            self.calls.lock().unwrap().push("grant".into());
            self.memory.held().push(entry.clone());
            Ok(())
        }
        async fn registered_locations(&self) -> Result<Vec<String>, LfError> {
            Ok(vec![])
        }
        async fn default_table_principals(&self) -> Result<Vec<String>, LfError> {
            Ok(vec![])
        }
    }

    fn grant(principal: &str, table: &str) -> Grant {
        Grant {
            principal: principal.into(),
            database: "lake".into(),
            table: table.into(),
            target: Target::Columns {
                columns: BTreeSet::from(["a".to_owned()]),
            },
            permissions: BTreeSet::from(["SELECT".to_owned()]),
            grant_option: false,
        }
    }

    const NO_DELAY: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn listing_follows_next_token_through_every_page() {
        let lf = FakeLf {
            page_size: 2,
            ..Default::default()
        };
        for i in 0..5 {
            let g = grant(&format!("p{i}"), "t");
            lf.memory.held().push(g.to_lf(g.resource()));
        }
        let all = list_all(&lf).await.unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(lf.calls.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn grants_are_batched_by_twenty_and_grant_options_go_singly() {
        let lf = FakeLf {
            page_size: 100,
            ..Default::default()
        };
        let mut to_grant: Vec<Grant> = (0..45).map(|i| grant(&format!("p{i}"), "t")).collect();
        to_grant[0].grant_option = true;
        let outcomes = apply(
            &lf,
            &Plan {
                to_grant,
                ..Default::default()
            },
            NO_DELAY,
            &NoLog,
        )
        .await
        .unwrap();
        assert_eq!(outcomes.len(), 45);
        assert!(outcomes.iter().all(|o| o.error.is_none()));
        assert_eq!(
            *lf.calls.lock().unwrap(),
            ["batch_grant 20", "batch_grant 20", "batch_grant 4", "grant"]
        );
    }

    /// Keeps the batches it is given; refuses the `fail_at`th (0-based).
    #[derive(Default)]
    struct Kept {
        batches: std::sync::Mutex<Vec<Vec<String>>>,
        fail_at: Option<usize>,
    }

    #[async_trait]
    impl BatchLog for Kept {
        type Error = String;
        async fn record(&self, outcomes: &[Outcome]) -> Result<(), String> {
            let mut batches = self.batches.lock().unwrap();
            if Some(batches.len()) == self.fail_at {
                return Err("the audit trail is unavailable".to_owned());
            }
            batches.push(outcomes.iter().map(|o| o.grant.principal.clone()).collect());
            Ok(())
        }
    }

    #[tokio::test]
    async fn each_batch_is_logged_once_applied_and_a_failed_log_stops_the_apply() {
        let plan = Plan {
            to_grant: (0..45).map(|i| grant(&format!("p{i}"), "t")).collect(),
            ..Default::default()
        };
        let lf = FakeLf {
            page_size: 100,
            ..Default::default()
        };
        let kept = Kept::default();
        apply(&lf, &plan, NO_DELAY, &kept).await.unwrap();
        let sizes: Vec<usize> = kept.batches.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, [20, 20, 5]);
        // The log refuses the second batch: the third is never sent to Lake Formation.
        let lf = FakeLf {
            page_size: 100,
            ..Default::default()
        };
        let kept = Kept {
            fail_at: Some(1),
            ..Default::default()
        };
        let err = apply(&lf, &plan, NO_DELAY, &kept).await.unwrap_err();
        assert_eq!(err, "the audit trail is unavailable");
        assert_eq!(kept.batches.lock().unwrap()[0][0], "p0");
        assert_eq!(kept.batches.lock().unwrap().len(), 1);
        assert_eq!(
            *lf.calls.lock().unwrap(),
            ["batch_grant 20", "batch_grant 20"]
        );
        assert_eq!(lf.memory.held().len(), 40);
    }

    #[tokio::test]
    async fn revoking_what_is_already_gone_counts_as_done_and_revokes_run_first() {
        let lf = FakeLf {
            page_size: 100,
            ..Default::default()
        };
        let present = grant("present", "t");
        lf.memory.held().push(present.to_lf(present.resource()));
        let gone = grant("gone", "t");
        let plan = Plan {
            to_revoke: vec![
                HeldGrant {
                    resource: present.resource(),
                    grant: present.clone(),
                },
                HeldGrant {
                    resource: gone.resource(),
                    grant: gone.clone(),
                },
            ],
            to_grant: vec![grant("new", "t")],
            unchanged: vec![],
        };
        let outcomes = apply(&lf, &plan, NO_DELAY, &NoLog).await.unwrap();
        assert!(outcomes.iter().all(|o| o.error.is_none()), "{outcomes:?}");
        assert_eq!(
            outcomes.iter().map(|o| o.action).collect::<Vec<_>>(),
            ["revoke", "revoke", "grant"]
        );
        assert_eq!(lf.memory.held().len(), 1);
    }

    #[tokio::test]
    async fn concurrent_modifications_are_retried_whole_and_per_entry() {
        let lf = FakeLf {
            page_size: 100,
            ..Default::default()
        };
        *lf.busy_calls.lock().unwrap() = 2;
        lf.flaky_ids.lock().unwrap().push("1".into());
        let to_grant = vec![grant("a", "t"), grant("b", "t"), grant("c", "t")];
        let outcomes = apply(
            &lf,
            &Plan {
                to_grant,
                ..Default::default()
            },
            NO_DELAY,
            &NoLog,
        )
        .await
        .unwrap();
        assert!(outcomes.iter().all(|o| o.error.is_none()), "{outcomes:?}");
        assert_eq!(lf.memory.held().len(), 3);
        assert_eq!(
            *lf.calls.lock().unwrap(),
            ["batch_grant 3", "batch_grant 1"]
        );
    }

    #[tokio::test]
    async fn per_entry_failures_are_reported_without_stopping_the_rest() {
        let lf = FakeLf {
            page_size: 100,
            denied: vec!["b".into()],
            ..Default::default()
        };
        let to_grant = vec![grant("a", "t"), grant("b", "t"), grant("c", "t")];
        let outcomes = apply(
            &lf,
            &Plan {
                to_grant,
                ..Default::default()
            },
            NO_DELAY,
            &NoLog,
        )
        .await
        .unwrap();
        let failed: Vec<&str> = outcomes
            .iter()
            .filter(|o| o.error.is_some())
            .map(|o| o.grant.principal.as_str())
            .collect();
        assert_eq!(failed, ["b"]);
        assert_eq!(
            outcomes
                .iter()
                .find(|o| o.error.is_some())
                .unwrap()
                .error
                .as_ref()
                .unwrap()
                .code,
            "AccessDeniedException"
        );
        assert_eq!(lf.memory.held().len(), 2);
    }

    #[tokio::test]
    async fn a_lasting_concurrent_modification_gives_up_with_the_error() {
        let lf = FakeLf {
            page_size: 100,
            ..Default::default()
        };
        *lf.busy_calls.lock().unwrap() = 100;
        let outcomes = apply(
            &lf,
            &Plan {
                to_grant: vec![grant("a", "t")],
                ..Default::default()
            },
            NO_DELAY,
            &NoLog,
        )
        .await
        .unwrap();
        assert_eq!(
            outcomes[0].error.as_ref().unwrap().code,
            "ConcurrentModificationException"
        );
    }
}
