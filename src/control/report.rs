//! What a job's record says to its tenant: the data of the status endpoint, which the webhook
//! sends too, so both always say the same.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Counts, JobView};
use crate::domain::job::JobStatus;

/// The `data` of the status endpoint's answer (CONTRACT §1.2), and of the webhook's event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub is_delete_completed: bool,
    pub tasks_left: usize,
    pub last_task_completed_time: Option<i64>,
    pub job_status: JobStatus,
    pub tasks_count: usize,
    pub tasks_failed: usize,
    pub failed_task_ids: Vec<String>,
    pub fully_enqueued: bool,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub failure_reason: Option<String>,
    pub items: BTreeMap<&'static str, ItemCounts>,
}

/// What one feature removed and rewritten.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ItemCounts {
    pub removed: u64,
    pub rewritten: u64,
}

impl JobView {
    /// What the status endpoint says of this job, whose tasks removed and rewrote `items`
    /// ([`super::ControlStore::job_report`]).
    pub fn status_data(&self, items: &Counts) -> StatusReport {
        let progress = self.progress();
        let mut failed = self.failed.clone();
        failed.sort();
        StatusReport {
            is_delete_completed: self.status == JobStatus::Completed,
            tasks_left: progress.tasks_left(),
            last_task_completed_time: self.last_task_completed_time,
            job_status: self.status,
            tasks_count: self.tasks_count,
            tasks_failed: failed.len(),
            failed_task_ids: failed,
            fully_enqueued: self.enqueued_at.is_some(),
            created_at: self.created_at,
            completed_at: self.completed_at,
            failure_reason: self.failure_reason.clone(),
            items: items
                .iter()
                .map(|(kind, o)| {
                    let counts = ItemCounts {
                        removed: o.removed,
                        rewritten: o.rewritten,
                    };
                    (kind.as_str(), counts)
                })
                .collect(),
        }
    }
}
