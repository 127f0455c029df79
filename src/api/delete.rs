//! `POST /v2/users/data/delete`: start a deletion job (or preview one with `dryRun`).
//!
//! Before the 202: the users' tombstones (access is cut), the job record, every task sent.
//! Nothing proportional to the users' data runs here. A failure midway answers 503 and leaves a
//! job marked as not fully enqueued; a retry with the same `Idempotency-Key` finishes it.

use std::collections::{BTreeMap, HashSet};

use futures::{stream, StreamExt, TryStreamExt};
use http::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{Api, ApiError};
use crate::control::{Claim, NewJob};
use crate::domain::ids::{IdempotencyKey, JobId};
use crate::domain::request::{parse_delete, DeleteRequest};
use crate::domain::task::{plan_tasks, TaskKind};
use crate::features::deleter;
use crate::keys::component;
use crate::store::entity::Tenant;
use crate::store::erase::Outcome;

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
        self.data
            .mark_erased(tenant, &request.user_ids, &request.organization_ids, now)
            .await?;
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
        };
        self.control.create_job(&job).await?;
        self.queue.send_all(&tasks).await?;
        self.control.mark_enqueued(&job_id, super::now_ms()).await?;
        tracing::info!(job_id = %job_id, tasks = tasks.len(), "job accepted");
        Ok(accepted(&job_id, tasks.len()))
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
