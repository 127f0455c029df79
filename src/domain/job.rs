//! The job state machine: `queued` → `running` → `completed` | `partial` | `failed`.

use serde::{Deserialize, Serialize};

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Partial,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Partial => "partial",
            JobStatus::Failed => "failed",
        }
    }
}

/// The task counts a job's status is derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub tasks_count: usize,
    pub succeeded: usize,
    pub failed: usize,
}

impl Progress {
    /// The final status these counts imply, or `None` while tasks are still open. A task that
    /// failed and later succeeded (a redrive) counts as succeeded only.
    pub fn settled_status(self) -> Option<JobStatus> {
        if self.succeeded >= self.tasks_count {
            Some(JobStatus::Completed)
        } else if self.succeeded + self.failed < self.tasks_count {
            None
        } else if self.succeeded == 0 {
            Some(JobStatus::Failed)
        } else {
            Some(JobStatus::Partial)
        }
    }

    /// Tasks that have not succeeded, failed ones included.
    pub fn tasks_left(self) -> usize {
        self.tasks_count.saturating_sub(self.succeeded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(tasks_count: usize, succeeded: usize, failed: usize) -> Progress {
        Progress {
            tasks_count,
            succeeded,
            failed,
        }
    }

    #[test]
    fn a_job_settles_only_when_every_task_has_ended() {
        assert_eq!(progress(3, 2, 0).settled_status(), None);
        assert_eq!(progress(3, 1, 1).settled_status(), None);
        assert_eq!(
            progress(3, 3, 0).settled_status(),
            Some(JobStatus::Completed)
        );
        assert_eq!(progress(3, 2, 1).settled_status(), Some(JobStatus::Partial));
        assert_eq!(progress(3, 0, 3).settled_status(), Some(JobStatus::Failed));
    }

    #[test]
    fn failed_tasks_are_still_left() {
        assert_eq!(progress(3, 2, 1).tasks_left(), 1);
        assert_eq!(progress(3, 3, 0).tasks_left(), 0);
    }
}
