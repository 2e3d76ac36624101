//! Jobs: their states, the states of their objects and events, and the settings a job
//! runs with. Every state is an enum written to the database as its snake_case name
//! (`db::types` gives them their sqlx encoding); an unknown name read back is an error.

pub use super::UnknownState;

text_enum! {
    /// Where a job is. `queued → finding → forgetting → verifying → cleaning_up → completed`,
    /// or one of the failure ends; a dry run ends `completed` right after find. After find,
    /// each object goes through forget, verify and cleanup on its own: the job is
    /// `forgetting` while any object waits for its rewrite, `verifying` once every rewrite
    /// is done and some verification is not, `cleaning_up` once only deletions of old
    /// versions are left.
    pub enum JobStatus {
        Queued = "queued",
        Finding = "finding",
        Forgetting = "forgetting",
        Verifying = "verifying",
        CleaningUp = "cleaning_up",
        Completed = "completed",
        FindFailed = "find_failed",
        ForgetFailed = "forget_failed",
        ForgetPartiallyFailed = "forget_partially_failed",
        CompletedCleanupFailed = "completed_cleanup_failed",
        /// Everything searchable was erased, but some objects could not be read
        /// (archived, access denied): the items they may hold stay queued.
        CompletedNotSearchable = "completed_not_searchable",
        Cancelled = "cancelled",
        Failed = "failed",
    }
}

impl JobStatus {
    /// Still running (at most one job is, across all processes).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            JobStatus::Queued
                | JobStatus::Finding
                | JobStatus::Forgetting
                | JobStatus::Verifying
                | JobStatus::CleaningUp
        )
    }

    /// The SQL list of active states, for `status in (...)`.
    pub fn active_sql() -> String {
        Self::ALL
            .iter()
            .filter(|s| s.is_active())
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

text_enum! {
    /// Who started a job.
    pub enum JobTrigger {
        /// A caller, through `POST /v1/jobs`.
        Api = "api",
        /// The `job_schedule` cron setting.
        Schedule = "schedule",
        /// A queued item's deadline came within the configured margin.
        Deadline = "deadline",
    }
}

text_enum! {
    /// What find recorded of an object.
    pub enum ObjectStatus {
        /// It holds at least one matching row.
        Matched = "matched",
        /// It was read but could not be searched (corrupt, does not fit the mapper).
        Failed = "failed",
        /// It could not be read (archived, access or KMS denied): the items it may hold
        /// stay queued.
        NotSearchable = "not_searchable",
        /// Archived, and the mapper puts archived objects out of scope (`skip_archived`).
        Skipped = "skipped",
        /// Not the table's data: a folder or its name below the table or partition
        /// location starts with `_` or `.` (as Athena reads tables). Never searched or
        /// written; it keeps no item queued.
        Hidden = "hidden",
        /// An earlier job rewrote and verified it but did not delete its old versions
        /// (cleanup failed, or the job was cancelled or crashed before): only its cleanup
        /// runs in this job.
        Leftover = "leftover",
    }
}

text_enum! {
    /// Where an object is in forget and verify.
    pub enum ForgetState {
        /// Find recorded it; not rewritten yet (a dry run's objects stay here).
        Found = "found",
        /// The new version is uploaded; not verified yet.
        Written = "written",
        /// Its rows no longer matched when forget read it: nothing written.
        Unchanged = "unchanged",
        /// Gone, and the mapper ignores missing objects.
        Skipped = "skipped",
        /// Could not be searched or rewritten: left as it was.
        Failed = "failed",
        /// The new version passed verification.
        Verified = "verified",
        /// The new version failed verification: its old versions are kept.
        VerifyFailed = "verify_failed",
        /// A noncurrent version holding matches (find saw a newer version or a delete
        /// marker on top; or forget met a newer version of the key): never rewritten,
        /// deleted by cleanup when the mapper deletes old versions, else kept.
        OldVersion = "old_version",
    }
}

text_enum! {
    /// What cleanup did with a verified object's old versions.
    pub enum CleanupState {
        Done = "done",
        /// The mapper keeps old versions.
        Skipped = "skipped",
        Failed = "failed",
    }
}

text_enum! {
    /// Where a job's data mapper is in find.
    pub enum MapperState {
        Pending = "pending",
        /// Its objects are listed and their searches enqueued.
        Listed = "listed",
        Failed = "failed",
    }
}

text_enum! {
    /// How much an event matters.
    pub enum EventLevel {
        Info = "info",
        Warning = "warning",
        Error = "error",
    }
}

/// How the find phase of a job ends, from what its tasks and mappers left behind and how
/// many objects could not be read.
pub fn after_find(
    dry_run: bool,
    failed_mappers: u64,
    failed_tasks: u64,
    not_searchable: u64,
) -> JobStatus {
    if failed_mappers > 0 || failed_tasks > 0 {
        JobStatus::FindFailed
    } else if dry_run && not_searchable > 0 {
        JobStatus::CompletedNotSearchable
    } else if dry_run {
        JobStatus::Completed
    } else {
        JobStatus::Forgetting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_and_only_the_pipeline_states_are_active() {
        for &s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>(), Ok(s));
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(json, s.as_str());
        }
        let active: Vec<_> = JobStatus::ALL.iter().filter(|s| s.is_active()).collect();
        assert_eq!(active.len(), 5);
        assert!(!JobStatus::Completed.is_active() && !JobStatus::Cancelled.is_active());
        assert_eq!(
            JobStatus::active_sql(),
            "'queued', 'finding', 'forgetting', 'verifying', 'cleaning_up'"
        );
    }

    #[test]
    fn find_ends_failed_when_anything_failed_and_a_dry_run_completes() {
        assert_eq!(after_find(true, 0, 0, 0), JobStatus::Completed);
        assert_eq!(after_find(false, 0, 0, 0), JobStatus::Forgetting);
        assert_eq!(after_find(true, 1, 0, 0), JobStatus::FindFailed);
        assert_eq!(after_find(false, 0, 2, 0), JobStatus::FindFailed);
        assert_eq!(after_find(true, 0, 0, 3), JobStatus::CompletedNotSearchable);
        assert_eq!(after_find(false, 0, 0, 3), JobStatus::Forgetting);
    }
}
