//! Jobs: their states and the transitions between them.

use serde::{Deserialize, Serialize};

/// Where a job is. `queued → finding → forgetting → verifying → cleaning_up → completed`,
/// or one of the failure ends; a dry run ends `completed` right after find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Finding,
    Forgetting,
    Verifying,
    CleaningUp,
    Completed,
    FindFailed,
    ForgetFailed,
    ForgetPartiallyFailed,
    CompletedCleanupFailed,
    Cancelled,
    Failed,
}

impl JobStatus {
    pub const ALL: [JobStatus; 12] = [
        JobStatus::Queued,
        JobStatus::Finding,
        JobStatus::Forgetting,
        JobStatus::Verifying,
        JobStatus::CleaningUp,
        JobStatus::Completed,
        JobStatus::FindFailed,
        JobStatus::ForgetFailed,
        JobStatus::ForgetPartiallyFailed,
        JobStatus::CompletedCleanupFailed,
        JobStatus::Cancelled,
        JobStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Finding => "finding",
            JobStatus::Forgetting => "forgetting",
            JobStatus::Verifying => "verifying",
            JobStatus::CleaningUp => "cleaning_up",
            JobStatus::Completed => "completed",
            JobStatus::FindFailed => "find_failed",
            JobStatus::ForgetFailed => "forget_failed",
            JobStatus::ForgetPartiallyFailed => "forget_partially_failed",
            JobStatus::CompletedCleanupFailed => "completed_cleanup_failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

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
            .into_iter()
            .filter(|s| s.is_active())
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How the find phase of a job ends, from what its tasks and mappers left behind.
pub fn after_find(dry_run: bool, failed_mappers: u64, failed_tasks: u64) -> JobStatus {
    if failed_mappers > 0 || failed_tasks > 0 {
        JobStatus::FindFailed
    } else if dry_run {
        JobStatus::Completed
    } else {
        JobStatus::Forgetting
    }
}

/// Who started a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobTrigger {
    /// A caller, through `POST /v1/jobs`.
    Api,
    /// The `job_schedule` cron setting.
    Schedule,
    /// A queued item's deadline came within the configured margin.
    Deadline,
}

impl JobTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            JobTrigger::Api => "api",
            JobTrigger::Schedule => "schedule",
            JobTrigger::Deadline => "deadline",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_and_only_the_pipeline_states_are_active() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(json, s.as_str());
        }
        let active: Vec<_> = JobStatus::ALL
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        assert_eq!(active.len(), 5);
        assert!(!JobStatus::Completed.is_active() && !JobStatus::Cancelled.is_active());
        assert_eq!(
            JobStatus::active_sql(),
            "'queued', 'finding', 'forgetting', 'verifying', 'cleaning_up'"
        );
    }

    #[test]
    fn find_ends_failed_when_anything_failed_and_a_dry_run_completes() {
        assert_eq!(after_find(true, 0, 0), JobStatus::Completed);
        assert_eq!(after_find(false, 0, 0), JobStatus::Forgetting);
        assert_eq!(after_find(true, 1, 0), JobStatus::FindFailed);
        assert_eq!(after_find(false, 0, 2), JobStatus::FindFailed);
    }
}
