//! The worker: runs a batch of tasks concurrently and reports only the failed ones, so SQS
//! retries exactly those. A task's last allowed attempt records its failure on the job, so the
//! job ends `partial` instead of hanging while the message moves to the dead-letter queue.
//! A task still working when the invocation nears its deadline pauses between pages and sends
//! itself again as a continuation, so a user with any amount of data never hits the timeout.

use std::time::Instant;

use futures::future::join_all;

use crate::api::now_ms;
use crate::control::ControlStore;
use crate::domain::job::JobStatus;
use crate::domain::task::Task;
use crate::dynamo::DynamoError;
use crate::features::deleter;
use crate::keys::fingerprint;
use crate::queue::{QueueError, TaskQueue};
use crate::store::entity::Tenant;
use crate::store::{DataStore, StoreError};

/// One message of a batch, as the worker needs it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: String,
    pub body: String,
    /// SQS's `ApproximateReceiveCount`: 1 on the first attempt.
    pub receive_count: u32,
}

#[derive(Debug, thiserror::Error)]
enum TaskError {
    #[error("message is not a task")]
    Malformed(#[source] serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    #[error("{0} reference(s) still left after erasing; will retry")]
    NotVerified(usize),
    #[error("could not send the task's continuation")]
    Continuation(#[from] QueueError),
}

/// The worker's capabilities, built once per cold start.
#[derive(Clone)]
pub struct Worker {
    control: ControlStore,
    data: DataStore,
    /// Where continuations of paused tasks go.
    queue: TaskQueue,
    max_receive_count: u32,
}

impl Worker {
    pub fn new(
        control: ControlStore,
        data: DataStore,
        queue: TaskQueue,
        max_receive_count: u32,
    ) -> Self {
        Self {
            control,
            data,
            queue,
            max_receive_count,
        }
    }

    /// Runs every delivery, pausing tasks still at work at `deadline`; returns the message ids
    /// of those that failed.
    pub async fn handle(&self, deliveries: Vec<Delivery>, deadline: Instant) -> Vec<String> {
        let results = join_all(deliveries.iter().map(|d| self.run(d, deadline))).await;
        deliveries
            .into_iter()
            .zip(results)
            .filter_map(|(delivery, ok)| (!ok).then_some(delivery.message_id))
            .collect()
    }

    async fn run(&self, delivery: &Delivery, deadline: Instant) -> bool {
        let task = match serde_json::from_str::<Task>(&delivery.body) {
            Ok(task) => task,
            Err(error) => {
                let error = TaskError::Malformed(error);
                tracing::error!(message_id = %delivery.message_id, error = &error as &dyn std::error::Error, "task failed");
                return false;
            }
        };
        let span = tracing::info_span!("task", job_id = %task.job_id, task_id = %task.task_id, user = %fingerprint(task.user_id.as_str()));
        let _entered = span.enter();
        match self.run_task(&task, deadline).await {
            Ok(()) => true,
            Err(error) => {
                let last = delivery.receive_count >= self.max_receive_count;
                tracing::error!(
                    attempt = delivery.receive_count,
                    last,
                    error = &error as &dyn std::error::Error,
                    "task failed"
                );
                if last {
                    if let Err(error) = self
                        .control
                        .record_failure(&task.job_id, &task.task_id, now_ms())
                        .await
                    {
                        tracing::error!(
                            error = &error as &dyn std::error::Error,
                            "could not record the failure"
                        );
                    }
                }
                false
            }
        }
    }

    async fn run_task(&self, task: &Task, deadline: Instant) -> Result<(), TaskError> {
        let Some(job) = self.control.get_job(&task.job_id).await? else {
            // The job expired or never existed: nothing to account the task to, and no
            // scope to erase in. Dropping it is the only safe answer.
            tracing::warn!("task of an unknown job dropped");
            return Ok(());
        };
        if job.succeeded.contains(&task.task_id) {
            tracing::info!("task already done; duplicate delivery acknowledged");
            return Ok(());
        }
        if job.status == JobStatus::Queued {
            self.control.mark_running(&job.job_id).await?;
        }
        let tenant = Tenant::from_stored(job.tenant.clone());
        let deleter = deleter(task.kind);
        let pass = self
            .data
            .erase_until(
                &tenant,
                &task.user_id,
                deleter,
                &job.organization_ids,
                Some(deadline),
            )
            .await?;
        let outcome = pass.outcome;
        if !pass.complete {
            // Sent before this delivery is acknowledged: a crash in between runs the task
            // twice, which is harmless; losing it is not possible.
            self.queue.send_all(std::slice::from_ref(task)).await?;
            self.control
                .record_progress(&task.job_id, task.kind, outcome)
                .await?;
            tracing::info!(
                removed = outcome.removed,
                rewritten = outcome.rewritten,
                "task paused at the deadline; continuation sent"
            );
            return Ok(());
        }
        let remaining = self
            .data
            .remaining_references(&tenant, &task.user_id, deleter, &job.organization_ids)
            .await?;
        if remaining > 0 {
            return Err(TaskError::NotVerified(remaining));
        }
        self.control
            .record_success(&task.job_id, &task.task_id, task.kind, outcome, now_ms())
            .await?;
        tracing::info!(
            removed = outcome.removed,
            rewritten = outcome.rewritten,
            "task done and verified"
        );
        Ok(())
    }
}
