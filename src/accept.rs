//! Accepting a deletion job: everything between a valid request and its 202, as one operation
//! over the control table, the data table and the task queue (the HTTP handler only translates).
//!
//! What a 202 promises, in the order it is made durable (DESIGN §4 "Accepting a job"):
//! 1. the job record, not fully enqueued, holding this request's send claim, and its open-jobs
//!    entry — written at once, so the one sequential step costs one round trip;
//! 2. the users' tombstones (access is cut before any 202; never without a job to show for it);
//! 3. every task, sent once per acceptance (the claim);
//! 4. the enqueued mark; a job whose tasks all ended before it settles there, and is announced.
//!
//! A failure midway answers 503 and leaves at most a job marked not fully enqueued: a retry with
//! the same `Idempotency-Key` finishes it, and the sweep (`src/sweep.rs`) ends it `failed` once no
//! retry can.

use crate::clock::now_ms;
use crate::control::{Claim, ControlStore, NewJob, SendClaim};
use crate::domain::ids::{IdempotencyKey, JobId};
use crate::domain::request::DeleteRequest;
use crate::domain::task::plan_tasks;
use crate::domain::tenant::Tenant;
use crate::dynamo::DynamoError;
use crate::keys::component;
use crate::queue::{QueueError, TaskQueue};
use crate::store::{DataStore, StoreError};
use crate::webhook::announce::Announcer;

/// A send claim older than this belongs to a request that died: the api's Lambda timeout is
/// 10 s, so its holder can no longer be at work.
const SEND_CLAIM_STALE_MS: i64 = 15_000;
/// How long a concurrent retry waits for the request sending the job's tasks: 20 × 100 ms,
/// well inside the api's timeout.
const ENQUEUE_POLLS: u32 = 20;
const ENQUEUE_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Why a job could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("the Idempotency-Key was used with a different body")]
    IdempotencyMismatch,
    #[error("another request with this Idempotency-Key is still sending the job's tasks")]
    SendInProgress,
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// A job accepted: every task sent, the job marked fully enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub job_id: JobId,
    pub tasks_count: usize,
}

/// The stores and the queue a job's acceptance writes to.
pub struct Acceptance<'a> {
    pub control: &'a ControlStore,
    pub data: &'a DataStore,
    pub queue: &'a TaskQueue,
    /// Where a job the enqueued mark settles is announced; none, the sweep announces it.
    pub announcer: Option<&'a Announcer>,
    /// How long the job's record is kept (its TTL).
    pub retention_days: u32,
}

impl Acceptance<'_> {
    /// Accepts `request` of `tenant`, once per `idempotency_key` when there is one.
    /// `request_hash` is what the key must keep meaning (a canonical hash of the request).
    pub async fn accept(
        &self,
        tenant: &Tenant,
        request: &DeleteRequest,
        idempotency_key: Option<(&IdempotencyKey, &str)>,
        now: i64,
    ) -> Result<Accepted, AcceptError> {
        let mut job_id = JobId::generate();
        if let Some((key, request_hash)) = idempotency_key {
            match self
                .control
                .claim_idempotency_key(tenant, key, request_hash, &job_id, now)
                .await?
            {
                Claim::New => {}
                Claim::Mismatch => return Err(AcceptError::IdempotencyMismatch),
                Claim::Existing(existing) => {
                    if let Some(job) = self.control.get_job(&existing).await? {
                        if job.enqueued_at.is_some() {
                            return Ok(Accepted {
                                job_id: existing,
                                tasks_count: job.tasks_count,
                            });
                        }
                    }
                    job_id = existing;
                }
            }
        }
        let tasks = plan_tasks(&job_id, &request.user_ids, request.is_scoped());
        let retention_s = i64::from(self.retention_days) * 24 * 60 * 60;
        let job = NewJob {
            job_id: job_id.clone(),
            tenant: tenant.clone(),
            user_hashes: request
                .user_ids
                .iter()
                .map(|u| component(u.as_str()))
                .collect(),
            organization_ids: request.organization_ids.clone(),
            tasks_count: tasks.len(),
            created_at_ms: now,
            expires_at_s: now / 1000 + retention_s,
            retryable: idempotency_key.is_some(),
        };
        // A new job is written holding this request's send claim: no separate claim call.
        // A retry finds the job written (`created` is false) and claims it below.
        let claim = SendClaim::new(now_ms());
        let created = match self.control.create_job(&job, &claim).await {
            Ok(created) => created,
            Err(error) => {
                // The job may have been stored, claim and all, and only the answer lost.
                self.release_claim(&job_id, &claim).await;
                return Err(error.into());
            }
        };
        if let Err(error) = self
            .data
            .mark_erased(
                tenant,
                &request.user_ids,
                &request.organization_ids,
                &job_id,
                now,
            )
            .await
        {
            if created {
                self.release_claim(&job_id, &claim).await;
            }
            return Err(error.into());
        }
        let claimed = created || self.claim(&job_id, &claim).await?;
        if !claimed {
            // Another request (a concurrent retry) is sending, or has sent, these tasks.
            self.await_enqueued(&job_id).await?;
            return Ok(Accepted {
                job_id,
                tasks_count: tasks.len(),
            });
        }
        if let Err(error) = self.queue.send_all(tenant, &tasks).await {
            self.release_claim(&job_id, &claim).await;
            return Err(error.into());
        }
        match self.control.mark_enqueued(&job_id, now_ms()).await {
            // Every task had ended before the mark: the mark settled the job.
            Ok(Some(settled)) => {
                if let Some(announcer) = self.announcer {
                    announcer.announce(&settled, now_ms()).await;
                }
            }
            Ok(None) => {}
            Err(error) => {
                self.release_claim(&job_id, &claim).await;
                return Err(error.into());
            }
        }
        Ok(Accepted {
            job_id,
            tasks_count: tasks.len(),
        })
    }

    /// Claims the send of a job written by an earlier request.
    async fn claim(&self, job_id: &JobId, claim: &SendClaim) -> Result<bool, AcceptError> {
        match self
            .control
            .claim_send(job_id, claim, claim.at_ms - SEND_CLAIM_STALE_MS)
            .await
        {
            Ok(claimed) => Ok(claimed),
            Err(error) => {
                // The claim may have been stored and only its answer lost.
                self.release_claim(job_id, claim).await;
                Err(error.into())
            }
        }
    }

    /// Lets a retry send at once rather than wait for this request's claim to go stale.
    async fn release_claim(&self, job_id: &JobId, claim: &SendClaim) {
        if let Err(error) = self.control.release_send(job_id, claim).await {
            tracing::warn!(job_id = %job_id, error = &error as &dyn std::error::Error, "could not release the send claim");
        }
    }

    /// Waits a little for the request that holds the send claim to mark the job enqueued;
    /// `SendInProgress` if it does not in time (the caller retries; the job says it is not
    /// fully enqueued).
    async fn await_enqueued(&self, job_id: &JobId) -> Result<(), AcceptError> {
        for _ in 0..ENQUEUE_POLLS {
            tokio::time::sleep(ENQUEUE_POLL_INTERVAL).await;
            if self
                .control
                .get_job(job_id)
                .await?
                .is_some_and(|job| job.enqueued_at.is_some())
            {
                return Ok(());
            }
        }
        Err(AcceptError::SendInProgress)
    }
}
