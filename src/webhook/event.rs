//! The event a settled job announces: as it travels on the webhook queue, and the body the
//! receiver gets. Its id is derived from the job and the status it settled in, so every copy
//! of one settlement (a duplicate enqueue, a retried delivery) carries the same id and a
//! receiver dedupes on it; a job that settles `partial` and, after a redrive, `completed`
//! announces two events.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::control::{Counts, JobView};
use crate::domain::ids::JobId;
use crate::domain::job::JobStatus;

/// The event's `type`.
pub const JOB_SETTLED: &str = "job.settled";

/// The body POSTed to the webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobEvent {
    /// `<jobId>.<status>`: the same for every copy of one settlement.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// When the job settled, epoch milliseconds.
    pub created_at: i64,
    /// The status endpoint's `data`, plus `jobId`.
    pub data: Value,
}

/// A message of the webhook queue: the event, and whose webhook it goes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// The job's tenant as stored (its key prefix, no raw API key).
    pub tenant: String,
    pub event: JobEvent,
}

/// The id of the event of `job_id` settling in `status`.
pub fn event_id(job_id: &JobId, status: JobStatus) -> String {
    format!("{job_id}.{}", status.as_str())
}

impl Notification {
    /// The notification of `job` as it just settled (its status and `completedAt` set), whose
    /// tasks removed and rewrote `items`.
    pub fn of(job: &JobView, items: &Counts, now_ms: i64) -> Self {
        let mut data = serde_json::to_value(job.status_data(items)).expect("a status serializes");
        if let Value::Object(fields) = &mut data {
            fields.insert("jobId".into(), Value::String(job.job_id.to_string()));
        }
        Self {
            tenant: job.tenant.clone(),
            event: JobEvent {
                id: event_id(&job.job_id, job.status),
                kind: JOB_SETTLED.into(),
                created_at: job.completed_at.unwrap_or(now_ms),
                data,
            },
        }
    }
}
