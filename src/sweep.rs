//! The sweep: ends every job that would otherwise stay open for ever, and announces every
//! settlement whose announcement was lost. Run on a schedule, it walks the open-jobs index (a
//! key path, no Scan) and, for each job:
//! - fully enqueued, with no task ended or paused for longer than a task can keep being retried
//!   (the redrive window): whatever killed the last attempts (a timeout, a crash, a DynamoDB
//!   error), its tasks are in the dead-letter queue; every open task is recorded as failed and
//!   the job settles `partial` (or `failed`), naming them. A redrive still completes it;
//! - not fully enqueued once no retry can finish it any more: ends `failed`, saying why, and a
//!   pass later releases its users' tombstones (its request was answered 503, which promised
//!   no cut-off): one that no other job holds goes;
//! - settled, here or by someone else (past a grace period, so as not to race them), and not
//!   announced: enqueues its event when its tenant has a webhook, and records it;
//! - settled and announced: drops it from the index, unless a settling wrote it again lately;
//! - gone (its entry was written, the job never was): drops the entry.

use crate::control::{ControlStore, JobView, OpenEntry, IDEMPOTENCY_WINDOW_SECONDS};
use crate::dynamo::DynamoError;
use crate::infra::{VISIBILITY_TIMEOUT_SECONDS, WORKER_TIMEOUT_SECONDS};
use crate::store::{DataStore, Release, StoreError};
use crate::webhook::announce::{AnnounceError, Announcer};
use crate::webhook::queue::NotificationQueue;

/// Why a job ends without running, on its status.
pub const NOT_ENQUEUED_REASON: &str = "not every task was enqueued and no retry finished \
     the job's acceptance (its request was answered 503)";

/// How long an invocation may still be at work on a job: far over the api's 10 s and the
/// worker's 120 s timeouts.
const INVOCATION_BOUND_MS: i64 = 5 * 60 * 1000;

/// How long after a settle its settler may still be announcing it: far over the two calls
/// (SendMessage, UpdateItem) that takes.
const ANNOUNCE_GRACE_MS: i64 = 60 * 1000;

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
    /// A settlement not announced this long after it settled lost its announcement (its
    /// settler died between the two, or SQS refused): the sweep sends it.
    pub unannounced_after_ms: i64,
    /// An index entry written this long ago belongs to a settling that has happened or never
    /// will (it runs within one invocation): only then may the entry go.
    pub entry_settled_after_ms: i64,
    /// A job ended unaccepted this long ago lets go of its tombstones: a lift that saw it
    /// still open (and would put its hold back, `src/lift.rs`) has ended by then.
    pub release_after_ms: i64,
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
            unfinished_retryable_after_ms: IDEMPOTENCY_WINDOW_SECONDS * 1000 + INVOCATION_BOUND_MS,
            unfinished_after_ms: INVOCATION_BOUND_MS,
            unannounced_after_ms: ANNOUNCE_GRACE_MS,
            entry_settled_after_ms: INVOCATION_BOUND_MS,
            release_after_ms: INVOCATION_BOUND_MS,
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
    /// Tombstones deleted because such a job was their only holder.
    pub tombstones_lifted: usize,
    /// Settlements whose event the sweep enqueued (its own, or ones whose announcement was
    /// lost).
    pub announced: usize,
    /// Index entries removed (settled and announced, or missing jobs).
    pub closed: usize,
    /// Age of the oldest job still open after the pass (0 when none is; a job settled by
    /// someone else during the pass may count once): what the alarm on jobs older than an hour
    /// watches.
    pub oldest_open_age_ms: i64,
}

/// Why a job could not be swept; it is left for the next pass.
#[derive(Debug, thiserror::Error)]
enum SweepError {
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    #[error(transparent)]
    Announce(#[from] AnnounceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The sweep's capabilities.
#[derive(Clone)]
pub struct Sweeper {
    control: ControlStore,
    data: DataStore,
    announcer: Announcer,
    bounds: Bounds,
}

impl Sweeper {
    /// A sweep that announces on `notifications` the settlements it makes and those whose
    /// announcement was lost, and releases in `data` the tombstones of the jobs it ends unaccepted.
    pub fn new(
        control: ControlStore,
        data: DataStore,
        notifications: NotificationQueue,
        bounds: Bounds,
    ) -> Self {
        Self {
            announcer: Announcer::new(control.clone(), notifications),
            control,
            data,
            bounds,
        }
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
            tombstones_lifted = report.tombstones_lifted,
            announced = report.announced,
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
    ) -> Result<(), SweepError> {
        let Some(job) = self.control.get_job(&entry.job_id).await? else {
            // The entry is written before its job: wait until the request that wrote it is
            // surely over, then the job will never come.
            if now_ms - entry.opened_at > self.bounds.unfinished_after_ms
                && self.control.close_open_entry(entry).await?
            {
                report.closed += 1;
            }
            return Ok(());
        };
        let job = if job.is_settled() {
            if job.owes_announcement()
                && now_ms - job.completed_at.unwrap_or(0) <= self.bounds.unannounced_after_ms
            {
                // Its settler may still be announcing it.
                return Ok(());
            }
            job
        } else {
            match self.end_if_stuck(&job, now_ms, report).await? {
                Some(settled) => settled,
                // Still open, or settled meanwhile by someone else, who announces it.
                None => {
                    report.oldest_open_age_ms =
                        report.oldest_open_age_ms.max(now_ms - job.created_at);
                    return Ok(());
                }
            }
        };
        // The entry stays until the job's tombstones are released.
        let mut releasing = job.owes_tombstone_release();
        if releasing && now_ms - job.completed_at.unwrap_or(0) > self.bounds.release_after_ms {
            self.release_tombstones(&job, now_ms, report).await?;
            releasing = false;
        }
        if job.owes_announcement() {
            self.announce(&job, now_ms, report).await?;
        }
        if !releasing
            && now_ms - entry.opened_at > self.bounds.entry_settled_after_ms
            && self.control.close_open_entry(entry).await?
        {
            report.closed += 1;
        }
        Ok(())
    }

    /// Releases the holds of `job`, ended `failed` unaccepted, on its users' tombstones, then
    /// records that it did; its index entry stays until then, so a pass that fails midway is
    /// finished by the next one (a release is safe to repeat).
    async fn release_tombstones(
        &self,
        job: &JobView,
        now_ms: i64,
        report: &mut Report,
    ) -> Result<(), SweepError> {
        let tenant = job.tenant();
        let releases = self
            .data
            .release_tombstones(&tenant, &job.user_hashes, &job.job_id)
            .await?;
        let count = |release| releases.iter().filter(|r| **r == release).count();
        let (lifted, kept) = (count(Release::Lifted), count(Release::Kept));
        self.control
            .record_tombstones_released(&job.job_id, now_ms)
            .await?;
        tracing::warn!(job_id = %job.job_id, lifted, kept, "tombstones of a job never accepted released");
        report.tombstones_lifted += lifted;
        Ok(())
    }

    /// Deals with `job`'s settlement for its tenant's webhook: enqueues its event when the
    /// tenant has one; records it either way, so that a tenant without a webhook costs one
    /// tenant read per settlement, not one per pass.
    async fn announce(
        &self,
        job: &JobView,
        now_ms: i64,
        report: &mut Report,
    ) -> Result<(), SweepError> {
        let tenant = job.tenant();
        if self.control.has_webhook(&tenant).await? {
            self.announcer.send(job, now_ms).await?;
            tracing::warn!(job_id = %job.job_id, status = job.status.as_str(), "settlement announced by the sweep");
            report.announced += 1;
        } else {
            self.control
                .record_announced(&job.job_id, job.status)
                .await?;
        }
        Ok(())
    }

    /// Ends `job` if it is stuck; returns it as this call settled it, when it did.
    async fn end_if_stuck(
        &self,
        job: &JobView,
        now_ms: i64,
        report: &mut Report,
    ) -> Result<Option<JobView>, DynamoError> {
        match job.enqueued_at {
            None => {
                let bound = if job.retryable {
                    self.bounds.unfinished_retryable_after_ms
                } else {
                    self.bounds.unfinished_after_ms
                };
                if now_ms - job.created_at <= bound {
                    return Ok(None);
                }
                let ended = self
                    .control
                    .fail_unaccepted(&job.job_id, NOT_ENQUEUED_REASON, now_ms)
                    .await?;
                if ended.is_some() {
                    tracing::warn!(job_id = %job.job_id, "job never fully enqueued ended failed");
                    report.unfinished += 1;
                }
                Ok(ended)
            }
            Some(enqueued_at) => {
                let last = job.last_progress_at.unwrap_or(enqueued_at).max(enqueued_at);
                if now_ms - last <= self.bounds.stalled_after_ms {
                    return Ok(None);
                }
                let ended = self.control.end_stalled(job, now_ms).await?;
                if ended.is_some() {
                    tracing::warn!(job_id = %job.job_id, "job without progress past the redrive window ended");
                    report.stalled += 1;
                }
                Ok(ended)
            }
        }
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

    #[test]
    fn an_entry_goes_only_once_any_settling_that_wrote_it_is_over() {
        let bounds = Bounds::for_queue(5);
        // The worker's invocation is the longest that settles a job.
        assert!(bounds.entry_settled_after_ms > i64::from(WORKER_TIMEOUT_SECONDS) * 1000);
        // A lift is a few round trips; it gets far more before a failed job lets go.
        assert!(bounds.release_after_ms >= 60_000);
        // The sweep leaves a settler a minute to announce (two calls) before it sends.
        assert!(bounds.unannounced_after_ms >= 60_000);
    }
}
