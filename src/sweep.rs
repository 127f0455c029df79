//! The sweep: ends every job that would otherwise stay open for ever. Run on a schedule, it
//! walks the open-jobs index (a key path, no Scan) and, for each job:
//! - settled: drops it from the index;
//! - fully enqueued, with no task ended or paused for longer than a task can keep being retried
//!   (the redrive window): whatever killed the last attempts (a timeout, a crash, a DynamoDB
//!   error), its tasks are in the dead-letter queue; every open task is recorded as failed and
//!   the job settles `partial` (or `failed`), naming them. A redrive still completes it;
//! - not fully enqueued once no retry can finish it any more: ends `failed`, saying why;
//! - gone (its entry was written, the job never was): drops the entry.

use crate::control::{ControlStore, JobView, OpenEntry, IDEMPOTENCY_WINDOW_SECONDS};
use crate::dynamo::DynamoError;
use crate::infra::{VISIBILITY_TIMEOUT_SECONDS, WORKER_TIMEOUT_SECONDS};

/// Why a job ends without running, on its status.
pub const NOT_ENQUEUED_REASON: &str = "not every task was enqueued and no retry finished \
     the job's acceptance (its request was answered 503)";

/// How long an api request may still be at work on a job: far over the api's 10 s timeout.
const REQUEST_BOUND_MS: i64 = 5 * 60 * 1000;

/// When the sweep acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// A fully enqueued job with no progress for this long has its open tasks in the DLQ.
    pub stalled_after_ms: i64,
    /// A job not fully enqueued, accepted with an `Idempotency-Key`, can be finished by a
    /// retry for this long (the key's window, and a request's length).
    pub unfinished_retryable_after_ms: i64,
    /// A job not fully enqueued, accepted without a key: no retry can reach it, so only the
    /// request that made it can still finish it.
    pub unfinished_after_ms: i64,
}

impl Bounds {
    /// The bounds for a task queue whose redrive policy allows `max_receive_count` receives.
    /// Each receive may hold a message for a visibility timeout; the last one may run for a
    /// whole invocation besides.
    pub fn for_queue(max_receive_count: u32) -> Self {
        let redrive_window_s = i64::from(max_receive_count) * i64::from(VISIBILITY_TIMEOUT_SECONDS)
            + i64::from(WORKER_TIMEOUT_SECONDS);
        Self {
            stalled_after_ms: redrive_window_s * 1000,
            unfinished_retryable_after_ms: IDEMPOTENCY_WINDOW_SECONDS * 1000 + REQUEST_BOUND_MS,
            unfinished_after_ms: REQUEST_BOUND_MS,
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Open jobs looked at.
    pub open: usize,
    /// Jobs ended `partial`/`failed` for want of progress.
    pub stalled: usize,
    /// Jobs ended `failed` because their acceptance never finished.
    pub unfinished: usize,
    /// Index entries removed (settled or missing jobs).
    pub closed: usize,
}

/// The sweep's capabilities.
#[derive(Clone)]
pub struct Sweeper {
    control: ControlStore,
    bounds: Bounds,
}

impl Sweeper {
    pub fn new(control: ControlStore, bounds: Bounds) -> Self {
        Self { control, bounds }
    }

    /// One pass over the open jobs, as of `now_ms`. A job that fails to be handled is logged
    /// and left for the next pass; the others go on.
    pub async fn sweep(&self, now_ms: i64) -> Result<Report, DynamoError> {
        let mut report = Report::default();
        for entry in self.control.open_jobs().await? {
            report.open += 1;
            if let Err(error) = self.visit(&entry, now_ms, &mut report).await {
                tracing::error!(job_id = %entry.job_id, error = &error as &dyn std::error::Error, "could not sweep the job; next pass");
            }
        }
        tracing::info!(
            open = report.open,
            stalled = report.stalled,
            unfinished = report.unfinished,
            closed = report.closed,
            "sweep done"
        );
        Ok(report)
    }

    async fn visit(
        &self,
        entry: &OpenEntry,
        now_ms: i64,
        report: &mut Report,
    ) -> Result<(), DynamoError> {
        let Some(job) = self.control.get_job(&entry.job_id).await? else {
            // The entry is written before its job: wait until the request that wrote it is
            // surely over, then the job will never come.
            if now_ms - entry.created_at > self.bounds.unfinished_after_ms {
                self.control.close_open_entry(&entry.job_id).await?;
                report.closed += 1;
            }
            return Ok(());
        };
        if !job.is_settled() {
            self.end_if_stuck(&job, now_ms, report).await?;
        }
        // Read again: ending a job takes a conditional write that may have lost a race.
        let settled = match self.control.get_job(&entry.job_id).await? {
            Some(job) => job.is_settled(),
            None => true,
        };
        if settled {
            self.control.close_open_entry(&entry.job_id).await?;
            report.closed += 1;
        }
        Ok(())
    }

    async fn end_if_stuck(
        &self,
        job: &JobView,
        now_ms: i64,
        report: &mut Report,
    ) -> Result<(), DynamoError> {
        match job.enqueued_at {
            None => {
                let bound = if job.retryable {
                    self.bounds.unfinished_retryable_after_ms
                } else {
                    self.bounds.unfinished_after_ms
                };
                if now_ms - job.created_at > bound
                    && self
                        .control
                        .fail_unaccepted(&job.job_id, NOT_ENQUEUED_REASON, now_ms)
                        .await?
                {
                    tracing::warn!(job_id = %job.job_id, "job never fully enqueued ended failed");
                    report.unfinished += 1;
                }
            }
            Some(enqueued_at) => {
                let last = job.last_progress_at.unwrap_or(enqueued_at).max(enqueued_at);
                if now_ms - last > self.bounds.stalled_after_ms {
                    self.control.end_stalled(job, now_ms).await?;
                    tracing::warn!(job_id = %job.job_id, "job without progress past the redrive window ended");
                    report.stalled += 1;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_stalled_only_after_every_receive_of_its_tasks_could_have_timed_out() {
        let bounds = Bounds::for_queue(5);
        assert_eq!(bounds.stalled_after_ms, (5 * 720 + 120) * 1000);
        assert!(bounds.unfinished_retryable_after_ms > IDEMPOTENCY_WINDOW_SECONDS * 1000);
        assert!(
            bounds.unfinished_after_ms > 10_000,
            "longer than an api request"
        );
    }
}
