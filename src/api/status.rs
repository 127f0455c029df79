//! `POST /v2/users/data/delete/status`: where a job stands, with the evidence of its tasks.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::{json, Value};

use super::{Api, ApiError};
use crate::domain::job::JobStatus;
use crate::domain::request::parse_status;
use crate::store::entity::Tenant;

impl Api {
    pub(super) async fn status(
        &self,
        tenant: &Tenant,
        body: &[u8],
    ) -> Result<(StatusCode, Value), ApiError> {
        let request = parse_status(body)?;
        // Another tenant's job answers exactly like a job that does not exist.
        let job = match self.control.get_job(&request.job_id).await? {
            Some(job) if job.belongs_to(tenant) => job,
            _ => return Err(ApiError::NotFound("job not found")),
        };
        let progress = job.progress();
        let items: BTreeMap<&str, Value> = job
            .items
            .iter()
            .map(|(kind, o)| {
                (
                    kind.as_str(),
                    json!({"removed": o.removed, "rewritten": o.rewritten}),
                )
            })
            .collect();
        let mut failed = job.failed.clone();
        failed.sort();
        Ok((
            StatusCode::OK,
            json!({"result": {
                "status": "success",
                "message": "Data fetched successfully.",
                "data": {
                    "isDeleteCompleted": job.status == JobStatus::Completed,
                    "tasksLeft": progress.tasks_left(),
                    "lastTaskCompletedTime": job.last_task_completed_time,
                    "jobStatus": job.status.as_str(),
                    "tasksCount": job.tasks_count,
                    "tasksFailed": failed.len(),
                    "failedTaskIds": failed,
                    "fullyEnqueued": job.enqueued_at.is_some(),
                    "createdAt": job.created_at,
                    "completedAt": job.completed_at,
                    "failureReason": job.failure_reason,
                    "items": items,
                },
            }}),
        ))
    }
}
