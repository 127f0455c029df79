//! `POST /v2/users/data/delete`: start a deletion job (or preview one with `dryRun`).
//!
//! Before the 202: the job record (not fully enqueued), the users' tombstones (access is cut),
//! every task sent once (a claim on the job), the enqueued mark. Nothing proportional to the
//! users' data runs here. A failure midway answers 503 and leaves at most a job marked as not
//! fully enqueued; a retry with the same `Idempotency-Key` finishes it, and the sweep
//! (`crate::sweep`) ends it `failed` once no retry can.

use std::collections::{BTreeMap, HashSet};

use futures::{stream, StreamExt, TryStreamExt};
use http::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{Api, ApiError};
use crate::clock::now_ms;
use crate::control::{Claim, NewJob};
use crate::domain::ids::{IdempotencyKey, JobId};
use crate::domain::request::{parse_delete, DeleteRequest};
use crate::domain::task::Outcome;
use crate::domain::task::{plan_tasks, TaskKind};
use crate::domain::tenant::Tenant;
use crate::features::deleter;
use crate::keys::component;

/// A send claim older than this belongs to a request that died: the api's Lambda timeout is
/// 10 s, so its holder can no longer be at work.
const SEND_CLAIM_STALE_MS: i64 = 15_000;
/// How long a concurrent retry waits for the request sending the job's tasks: 20 × 100 ms,
/// well inside the api's timeout.
const ENQUEUE_POLLS: u32 = 20;
const ENQUEUE_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// A concurrent retry found the job's tasks still being sent by another request.
#[derive(Debug, thiserror::Error)]
#[error("another request with this Idempotency-Key is still sending the job's tasks")]
struct SendInProgress;

/// Users previewed at once during a dry run.
const PREVIEW_CONCURRENCY: usize = 16;

/// A canonical hash of what the request asks, so that a retry differing only in whitespace,
/// key order or duplicate ids still matches its `Idempotency-Key`.
fn request_hash(request: &DeleteRequest) -> String {
    let canonical = json!({
        "userIds": request.user_ids,
        "organizationIds": request.organization_ids.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

fn accepted(job_id: &JobId, tasks_count: usize) -> (StatusCode, Value) {
    (
        StatusCode::ACCEPTED,
        json!({
            "status": "success",
            "message": "Data deletion process has been initiated.",
            "data": {"jobId": job_id, "tasksCount": tasks_count},
            "statusCode": 202,
        }),
    )
}

impl Api {
    pub(super) async fn delete(
        &self,
        tenant: &Tenant,
        idempotency_key: Option<IdempotencyKey>,
        body: &[u8],
        now: i64,
    ) -> Result<(StatusCode, Value), ApiError> {
        let request = parse_delete(body)?;
        if request.dry_run {
            return self.dry_run(tenant, &request).await;
        }
        let mut job_id = JobId::generate();
        if let Some(key) = &idempotency_key {
            match self
                .control
                .claim_idempotency_key(tenant, key, &request_hash(&request), &job_id, now)
                .await?
            {
                Claim::New => {}
                Claim::Mismatch => return Err(ApiError::IdempotencyMismatch),
                Claim::Existing(existing) => {
                    if let Some(job) = self.control.get_job(&existing).await? {
                        if job.enqueued_at.is_some() {
                            return Ok(accepted(&existing, job.tasks_count));
                        }
                    }
                    job_id = existing;
                }
            }
        }
        let tasks = plan_tasks(&job_id, &request.user_ids, request.is_scoped());
        let retention_s = i64::from(self.config.job_retention_days) * 24 * 60 * 60;
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
        // The job first, not fully enqueued: the durable intent a retry finishes, and what the
        // sweep ends should no retry come. Then the tombstones (before any 202, so access is cut
        // when it returns), then the tasks, then the enqueued mark.
        self.control.create_job(&job).await?;
        self.data
            .mark_erased(tenant, &request.user_ids, &request.organization_ids, now)
            .await?;
        let claimed_at = now_ms();
        let claimed = match self
            .control
            .claim_send(&job_id, claimed_at, claimed_at - SEND_CLAIM_STALE_MS)
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                // The claim may have been stored and only its answer lost.
                self.release_claim(&job_id, claimed_at).await;
                return Err(error.into());
            }
        };
        if !claimed {
            // Another request (a concurrent retry) is sending, or has sent, these tasks.
            self.await_enqueued(&job_id).await?;
            return Ok(accepted(&job_id, tasks.len()));
        }
        if let Err(error) = self.queue.send_all(&tasks).await {
            self.release_claim(&job_id, claimed_at).await;
            return Err(error.into());
        }
        if let Err(error) = self.control.mark_enqueued(&job_id, now_ms()).await {
            self.release_claim(&job_id, claimed_at).await;
            return Err(error.into());
        }
        tracing::info!(job_id = %job_id, tasks = tasks.len(), "job accepted");
        Ok(accepted(&job_id, tasks.len()))
    }

    /// Lets a retry send at once rather than wait for this request's claim to go stale.
    async fn release_claim(&self, job_id: &JobId, claimed_at: i64) {
        if let Err(error) = self.control.release_send(job_id, claimed_at).await {
            tracing::warn!(job_id = %job_id, error = &error as &dyn std::error::Error, "could not release the send claim");
        }
    }

    /// Waits a little for the request that holds the send claim to mark the job enqueued; a
    /// 503 if it does not in time (the caller retries; the job says it is not fully enqueued).
    async fn await_enqueued(&self, job_id: &JobId) -> Result<(), ApiError> {
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
        Err(ApiError::Unavailable(Box::new(SendInProgress)))
    }

    /// Counts, per feature, what a real run would remove and rewrite; writes nothing.
    async fn dry_run(
        &self,
        tenant: &Tenant,
        request: &DeleteRequest,
    ) -> Result<(StatusCode, Value), ApiError> {
        let kinds: Vec<TaskKind> = TaskKind::for_scope(request.is_scoped()).collect();
        // Users are previewed at once; one user's features in task order, sharing what they
        // counted, so an entity two features reach is counted once.
        let per_user: Vec<Vec<(TaskKind, Outcome)>> = stream::iter(request.user_ids.clone())
            .map(|user| {
                let data = self.data.clone();
                let tenant = tenant.clone();
                let organizations = request.organization_ids.clone();
                let kinds = kinds.clone();
                async move {
                    let mut counted = HashSet::new();
                    let mut outcomes = Vec::with_capacity(kinds.len());
                    for kind in kinds {
                        let outcome = data
                            .preview(&tenant, &user, deleter(kind), &organizations, &mut counted)
                            .await?;
                        outcomes.push((kind, outcome));
                    }
                    Ok::<_, ApiError>(outcomes)
                }
            })
            .buffer_unordered(PREVIEW_CONCURRENCY)
            .try_collect()
            .await?;
        let outcomes = per_user.into_iter().flatten();
        let mut items: BTreeMap<&str, u64> = kinds.iter().map(|k| (k.as_str(), 0)).collect();
        for (kind, outcome) in outcomes {
            *items.entry(kind.as_str()).or_default() += outcome.removed + outcome.rewritten;
        }
        Ok((
            StatusCode::OK,
            json!({
                "status": "success",
                "message": "Dry run: nothing was deleted.",
                "data": {
                    "dryRun": true,
                    "tasksCount": kinds.len() * request.user_ids.len(),
                    "items": items,
                },
                "statusCode": 200,
            }),
        ))
    }
}
