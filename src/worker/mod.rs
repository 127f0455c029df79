//! The worker: runs a batch of tasks concurrently and reports only the failed ones, so SQS
//! retries exactly those. A task's last allowed attempt records its failure on the job, so the
//! job ends `partial` instead of hanging while the message moves to the dead-letter queue.
//! A task still working when the invocation nears its deadline pauses between pages and sends
//! itself again as a continuation, so a user with any amount of data never hits the timeout.

pub mod lambda;
pub mod ledger;

use std::time::{Duration, Instant};

use futures::future::join_all;
use tracing::Instrument;

use crate::clock::now_ms;
use crate::control::{ControlStore, JobView, SuccessError, TaskClaim, TaskLease};
use crate::domain::ids::JobId;
use crate::domain::job::JobStatus;
use crate::domain::task::{Outcome, Task, TaskMessage};
use crate::domain::tenant::Tenant;
use crate::dynamo::DynamoError;
use crate::erase::Scope;
use crate::features::deleter;
use crate::keys::fingerprint;
use crate::metrics::{Function, Metrics};
use crate::queue::TaskQueue;
use crate::store::{DataStore, StoreError};
use crate::webhook::announce::Announcer;
use crate::webhook::queue::NotificationQueue;
use ledger::TaskLedger;

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
    #[error("message is not a task message")]
    Malformed(#[source] serde_json::Error),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    #[error("{0} reference(s) still left after erasing; will retry")]
    NotVerified(usize),
    #[error("the task's lease ended and another delivery took it")]
    LeaseLost,
}

impl From<StoreError> for TaskError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::LeaseLost => TaskError::LeaseLost,
            other => TaskError::Store(other),
        }
    }
}

/// How long a task's lease lasts, and how often a running task renews it (between passes).
#[derive(Debug, Clone, Copy)]
pub struct LeaseTiming {
    /// From the claim or the last renewal. A copy that died blocks its task for this long at
    /// most: its retry comes back once the lease has ended.
    pub term: Duration,
    /// The pages in flight at a renewal, and the clocks' skew, must fit in what is left of the
    /// term.
    pub renewal: Duration,
}

impl Default for LeaseTiming {
    /// 30 s and 10 s: 20 s left against pages that take tens of milliseconds and calls cut at
    /// 6 s (`aws::worker_timeouts`).
    fn default() -> Self {
        Self {
            term: Duration::from_secs(30),
            renewal: Duration::from_secs(10),
        }
    }
}

impl LeaseTiming {
    fn end(&self, now_ms: i64) -> i64 {
        now_ms + self.term.as_millis() as i64
    }
}

/// One run of a task under its lease: what its passes need.
struct Run<'a> {
    job: &'a JobView,
    task: &'a Task,
    tenant: Tenant,
    /// When the delivery was received (epoch ms).
    received_ms: i64,
    /// When the run pauses, between pages.
    deadline: Instant,
}

impl Run<'_> {
    /// What the run erases: its user's feature, in the job's tenant and organizations.
    fn scope(&self) -> Scope<'_> {
        Scope {
            tenant: &self.tenant,
            user: &self.task.user_id,
            deleter: deleter(self.task.kind),
            organizations: &self.job.organization_ids,
        }
    }
}

/// How a task's run ended, when it did not fail.
enum TaskEnd {
    Done,
    /// Stopped with work left: goes on in a continuation, from position `at` of the job's
    /// scope, sent with `delay` (the deadline came: none; the final verification must wait
    /// for the write window to close, and the invocation cannot wait that long: the rest of it).
    Paused {
        at: usize,
        delay: Duration,
    },
}

/// The latest moment a job's tombstones can have been written: before its enqueued mark, and
/// before any of its messages was sent, so before this one was received (`received_ms`).
fn tombstones_written_by(job: &JobView, received_ms: i64) -> i64 {
    job.enqueued_at
        .map_or(received_ms, |enqueued| enqueued.min(received_ms))
}

/// The worker's capabilities, built once per cold start.
#[derive(Clone)]
pub struct Worker {
    control: ControlStore,
    data: DataStore,
    /// Where continuations of paused tasks go.
    queue: TaskQueue,
    max_receive_count: u32,
    /// Where a job that settles is announced (its tenant's webhook); none, the sweep announces
    /// it.
    announcer: Option<Announcer>,
    metrics: Metrics,
    lease_timing: LeaseTiming,
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
            announcer: None,
            metrics: Metrics::stdout(Function::Worker),
            lease_timing: LeaseTiming::default(),
        }
    }

    /// Leases of `timing` instead of the default 30 s renewed every 10 s.
    pub fn with_lease_timing(mut self, timing: LeaseTiming) -> Self {
        self.lease_timing = timing;
        self
    }

    /// Sends this worker's metrics to `metrics` instead of standard output.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Announces every job this worker settles on `queue`.
    pub fn with_notifications(mut self, queue: NotificationQueue) -> Self {
        self.announcer = Some(Announcer::new(self.control.clone(), queue));
        self
    }

    /// Measures a job this worker just settled and announces it. Never fails the task: the
    /// job has ended whatever happens to its announcement, and one that does not complete is
    /// the sweep's.
    async fn announce(&self, settled: Option<JobView>) {
        let Some(job) = settled else {
            return;
        };
        let settled_at = job.completed_at.unwrap_or_else(now_ms);
        self.metrics
            .job_settled(job.status, settled_at - job.created_at);
        if let Some(announcer) = &self.announcer {
            announcer.announce(&job, now_ms()).await;
        }
    }

    /// Runs every delivery, pausing tasks still at work at `deadline`; returns the message ids
    /// of those that failed.
    pub async fn handle(&self, deliveries: Vec<Delivery>, deadline: Instant) -> Vec<String> {
        let results = join_all(deliveries.iter().map(|d| self.run_message(d, deadline))).await;
        deliveries
            .into_iter()
            .zip(results)
            .filter_map(|(delivery, ok)| (!ok).then_some(delivery.message_id))
            .collect()
    }

    /// Runs a message's tasks concurrently; true when none of them failed. Paused tasks go on in
    /// one continuation message; on the last attempt, each failed task is recorded on the job.
    async fn run_message(&self, delivery: &Delivery, deadline: Instant) -> bool {
        let received_ms = now_ms();
        let message = match serde_json::from_str::<TaskMessage>(&delivery.body) {
            Ok(message) => message,
            Err(error) => {
                let error = TaskError::Malformed(error);
                tracing::error!(message_id = %delivery.message_id, error = &error as &dyn std::error::Error, "message failed");
                return false;
            }
        };
        let job = match self.control.get_job(&message.job_id).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                // The job expired or never existed: nothing to account the tasks to, and no
                // scope to erase in. Dropping them is the only safe answer.
                tracing::warn!(job_id = %message.job_id, "tasks of an unknown job dropped");
                return true;
            }
            Err(error) => {
                tracing::error!(job_id = %message.job_id, error = &error as &dyn std::error::Error, "could not read the job");
                return false;
            }
        };
        if job.failure_reason.is_some() {
            // Its acceptance never finished and no retry can finish it: the job was never
            // promised, so its late tasks erase nothing.
            tracing::warn!(job_id = %job.job_id, "tasks of a job that was never accepted dropped");
            return true;
        }
        if job.status == JobStatus::Queued {
            if let Err(error) = self.control.mark_running(&job.job_id).await {
                tracing::error!(job_id = %job.job_id, error = &error as &dyn std::error::Error, "could not mark the job running");
                return false;
            }
        }
        let (tasks, foreign): (Vec<Task>, Vec<Task>) =
            message.tasks().into_iter().partition(|task| job.owns(task));
        for task in &foreign {
            // Only the users the job was accepted for are erased, whatever a message says.
            tracing::warn!(job_id = %task.job_id, task_id = %task.task_id, user = %fingerprint(task.user_id.as_str()), "a task the job does not hold dropped");
        }
        let ends = join_all(tasks.iter().map(|task| {
            let span = tracing::info_span!("task", job_id = %task.job_id, task_id = %task.task_id, user = %fingerprint(task.user_id.as_str()));
            self.run_task(&job, task, delivery.receive_count, received_ms, deadline)
                .instrument(span)
        }))
        .await;
        let last = delivery.receive_count >= self.max_receive_count;
        let mut failed: Vec<&Task> = Vec::new();
        let mut paused: Vec<Task> = Vec::new();
        let mut delay = Duration::ZERO;
        for (task, end) in tasks.iter().zip(ends) {
            match end {
                Ok(TaskEnd::Done) => {}
                Ok(TaskEnd::Paused { at, delay: wait }) => {
                    paused.push(task.continued_at(at));
                    delay = delay.max(wait);
                }
                Err(error) => {
                    tracing::error!(job_id = %task.job_id, task_id = %task.task_id, attempt = delivery.receive_count, last, error = &error as &dyn std::error::Error, "task failed");
                    self.metrics.task_failed(task.kind);
                    failed.push(task);
                }
            }
        }
        let redelivered = tasks.iter().any(|t| job.succeeded.contains(&t.task_id));
        if redelivered && failed.is_empty() && paused.is_empty() && !job.is_settled() {
            // A task of this message had succeeded before, so an earlier attempt failed after
            // recording it: perhaps in the job's settling step (a DynamoDB error). Settle from a
            // fresh read; a no-op when tasks are still open or it has settled meanwhile.
            if let Err(error) = self.settle_from_fresh_read(&job.job_id).await {
                tracing::error!(job_id = %job.job_id, error = &error as &dyn std::error::Error, "could not settle the job");
                return false;
            }
        }
        if !paused.is_empty() {
            // Sent before this delivery is acknowledged: a crash in between runs the tasks
            // twice, which is harmless; losing them is not possible.
            let tenant = job.tenant();
            if let Err(error) = self.queue.send_all_after(&tenant, &paused, delay).await {
                tracing::error!(job_id = %job.job_id, error = &error as &dyn std::error::Error, "could not send the continuation");
                failed.extend(&paused);
            }
        }
        if last {
            for task in &failed {
                match self
                    .control
                    .record_failure(&task.job_id, &task.task_id, now_ms())
                    .await
                {
                    Ok(settled) => self.announce(settled).await,
                    Err(error) => tracing::error!(
                        error = &error as &dyn std::error::Error,
                        "could not record the failure"
                    ),
                }
            }
        }
        failed.is_empty()
    }

    async fn settle_from_fresh_read(&self, job_id: &JobId) -> Result<(), DynamoError> {
        if let Some(job) = self.control.get_job(job_id).await? {
            if !job.is_settled() {
                let settled = self.control.settle(&job, now_ms()).await?;
                self.announce(settled).await;
            }
        }
        Ok(())
    }

    /// Runs one task under its lease; what it removed is recorded, with the lease given back,
    /// however its run ends: done, paused or failed.
    async fn run_task(
        &self,
        job: &JobView,
        task: &Task,
        receive_count: u32,
        received_ms: i64,
        deadline: Instant,
    ) -> Result<TaskEnd, TaskError> {
        if job.succeeded.contains(&task.task_id) {
            tracing::info!("task already done; repeated delivery acknowledged");
            return Ok(TaskEnd::Done);
        }
        // A redelivery (an attempt failed or died) goes through the whole scope again: the
        // failure may have been the final check finding references in a part of the scope the
        // continuation had already passed. Finished organizations cost one empty Query each.
        let from = if receive_count > 1 { 0 } else { task.resume_at };
        let now = now_ms();
        let lease = match self
            .control
            .claim_task(
                &task.job_id,
                &task.task_id,
                self.lease_timing.end(now),
                now,
                job.expires_at,
            )
            .await?
        {
            TaskClaim::Granted(lease) => lease,
            TaskClaim::Done(total) => {
                // Its item says it finished; the job may not count it yet if the run that
                // finished it died before the job's update (a no-op if it does).
                let settled = self
                    .control
                    .complete_task(&task.job_id, &task.task_id, task.kind, total, now)
                    .await?;
                self.announce(settled).await;
                tracing::info!("task already done; repeated delivery acknowledged");
                return Ok(TaskEnd::Done);
            }
            TaskClaim::HeldUntil(held_until) => {
                // Another delivery runs the task. It may have died, its lease not ended yet:
                // this copy comes back once the lease has ended, and runs only if it must.
                let wait = u64::try_from(held_until - now).unwrap_or(0) + 1_000;
                tracing::info!(wait_ms = wait, "task held by another delivery; deferred");
                return Ok(TaskEnd::Paused {
                    at: from,
                    delay: Duration::from_millis(wait),
                });
            }
        };
        let started = Instant::now();
        let run = Run {
            job,
            task,
            tenant: job.tenant(),
            received_ms,
            deadline,
        };
        let ledger = TaskLedger::new(&self.control, &task.job_id, &lease, job.expires_at);
        let mut outcome = Outcome::default();
        let end = match self.recover(&run, &lease).await {
            Ok(recovered) => {
                outcome += recovered;
                self.erase_task(&run, from, &ledger, &mut outcome).await
            }
            Err(error) => Err(error),
        };
        let now = now_ms();
        match end {
            Ok(TaskEnd::Done) => {
                let recorded = self
                    .control
                    .record_success(&task.job_id, &lease, task.kind, now)
                    .await;
                let settled = match recorded {
                    Ok(settled) => settled,
                    Err(SuccessError::Finish(error)) => {
                        // Give the lease back, so that the retry that records the success
                        // finds no lease held (the counts are on the task's item already).
                        if let Err(error) = self.record_progress(task, &lease, now).await {
                            tracing::error!(
                                error = &error as &dyn std::error::Error,
                                "could not give back a verified run's lease"
                            );
                        }
                        return Err(error.into());
                    }
                    // The task's item holds its end and its total; the retry finds it finished
                    // and completes it on the job.
                    Err(SuccessError::Complete(error)) => return Err(error.into()),
                };
                self.metrics
                    .task_done(task.kind, outcome, started.elapsed());
                self.announce(settled).await;
                tracing::info!(
                    removed = outcome.removed,
                    rewritten = outcome.rewritten,
                    "task done and verified"
                );
            }
            Ok(TaskEnd::Paused { at, .. }) => {
                self.record_progress(task, &lease, now).await?;
                self.metrics
                    .task_paused(task.kind, outcome, started.elapsed());
                tracing::info!(
                    removed = outcome.removed,
                    rewritten = outcome.rewritten,
                    resume_at = at,
                    "task paused"
                );
            }
            Err(_) => {
                // The pages the run closed are counted on the task's item; one it left open
                // is counted by the next claim. The run's own error is the one to report.
                if let Err(error) = self.record_progress(task, &lease, now).await {
                    tracing::error!(
                        error = &error as &dyn std::error::Error,
                        "could not give back a failed run's lease"
                    );
                }
            }
        }
        end
    }

    /// Counts and closes the pages a run that held the task before this lease left open;
    /// returns what they had done.
    async fn recover(&self, run: &Run<'_>, lease: &TaskLease) -> Result<Outcome, TaskError> {
        if lease.inherited.is_empty() {
            return Ok(Outcome::default());
        }
        let done = ledger::recover_inherited(
            &self.control,
            &self.data,
            &run.task.job_id,
            lease,
            run.scope(),
        )
        .await?;
        tracing::info!(
            pages = lease.inherited.len(),
            removed = done.removed,
            rewritten = done.rewritten,
            "counted the pages a run that died left open"
        );
        Ok(done)
    }

    async fn record_progress(
        &self,
        task: &Task,
        lease: &TaskLease,
        now: i64,
    ) -> Result<(), DynamoError> {
        if !self
            .control
            .record_progress(&task.job_id, lease, now)
            .await?
        {
            tracing::warn!("the task's lease ended before its run did");
        }
        Ok(())
    }

    /// Erases a task's scope from position `from` and, once through it, verifies it after the
    /// write window has closed, adding what its passes removed and rewrote to `outcome`.
    async fn erase_task(
        &self,
        run: &Run<'_>,
        from: usize,
        ledger: &TaskLedger<'_>,
        outcome: &mut Outcome,
    ) -> Result<TaskEnd, TaskError> {
        let paused_at = |at| TaskEnd::Paused {
            at,
            delay: Duration::ZERO,
        };
        if let Some(at) = self.erase_scope(run, from, ledger, outcome).await? {
            return Ok(paused_at(at));
        }
        // A writer that checked the tombstone just before it was written lands within the
        // write window of its check: look once more after the window has closed.
        let window = self.data.write_window();
        let verify_at = tombstones_written_by(run.job, run.received_ms)
            + window.verify_after.as_millis() as i64;
        let wait = Duration::from_millis(u64::try_from(verify_at - now_ms()).unwrap_or(0));
        if !wait.is_zero() {
            if Instant::now() + wait >= run.deadline {
                tracing::info!("task waits for the write window in a continuation");
                return Ok(TaskEnd::Paused { at: 0, delay: wait });
            }
            tokio::time::sleep(wait).await;
            if let Some(at) = self.erase_scope(run, 0, ledger, outcome).await? {
                return Ok(paused_at(at));
            }
        }
        let remaining = self
            .data
            .remaining_references(
                &run.tenant,
                &run.task.user_id,
                deleter(run.task.kind),
                &run.job.organization_ids,
            )
            .await?;
        if remaining > 0 {
            return Err(TaskError::NotVerified(remaining));
        }
        Ok(TaskEnd::Done)
    }

    /// Passes over the task's scope from position `from` until its end (`None`) or the
    /// invocation's deadline (where to resume), each page recorded in `ledger`, renewing the
    /// lease between passes.
    async fn erase_scope(
        &self,
        run: &Run<'_>,
        mut from: usize,
        ledger: &TaskLedger<'_>,
        outcome: &mut Outcome,
    ) -> Result<Option<usize>, TaskError> {
        loop {
            let renew_at = Instant::now() + self.lease_timing.renewal;
            let pass = self
                .data
                .erase_recorded(run.scope(), from, Some(run.deadline.min(renew_at)), ledger)
                .await?;
            *outcome += pass.outcome;
            let Some(at) = pass.resume_at else {
                return Ok(None);
            };
            if Instant::now() >= run.deadline {
                return Ok(Some(at));
            }
            let until = self.lease_timing.end(now_ms());
            if !self
                .control
                .renew_task(&run.task.job_id, ledger.lease(), until)
                .await?
            {
                return Err(TaskError::LeaseLost);
            }
            from = at;
        }
    }
}
