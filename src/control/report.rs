//! What a job's record says to its tenant: the data of the status endpoint, which the webhook
//! sends too, so both always say the same.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::JobView;
use crate::domain::job::JobStatus;

impl JobView {
    /// The `data` of the status endpoint's answer (CONTRACT §1.2).
    pub fn status_data(&self) -> Value {
        let progress = self.progress();
        let items: BTreeMap<&str, Value> = self
            .items
            .iter()
            .map(|(kind, o)| {
                (
                    kind.as_str(),
                    json!({"removed": o.removed, "rewritten": o.rewritten}),
                )
            })
            .collect();
        let mut failed = self.failed.clone();
        failed.sort();
        json!({
            "isDeleteCompleted": self.status == JobStatus::Completed,
            "tasksLeft": progress.tasks_left(),
            "lastTaskCompletedTime": self.last_task_completed_time,
            "jobStatus": self.status.as_str(),
            "tasksCount": self.tasks_count,
            "tasksFailed": failed.len(),
            "failedTaskIds": failed,
            "fullyEnqueued": self.enqueued_at.is_some(),
            "createdAt": self.created_at,
            "completedAt": self.completed_at,
            "failureReason": self.failure_reason,
            "items": items,
        })
    }
}
