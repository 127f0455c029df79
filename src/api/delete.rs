//! `POST /v2/users/data/delete`: start a deletion job (`crate::accept` does the accepting),
//! or preview one with `dryRun`.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::answers::{json_body, DryRun, JobStarted, Started, SUCCESS};
use super::{Api, ApiError};
use crate::accept::{AcceptError, Acceptance, Accepted};
use crate::domain::ids::IdempotencyKey;
use crate::domain::request::{DeleteRequest, InvalidRequest};
use crate::domain::task::TaskKind;
use crate::domain::tenant::Tenant;

/// A canonical hash of what the request asks, so that a retry differing only in whitespace,
/// key order or duplicate ids still matches its `Idempotency-Key`.
fn request_hash(request: &DeleteRequest) -> String {
    let canonical = json!({
        "userIds": request.user_ids,
        "organizationIds": request.organization_ids.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

fn accepted(job: &Accepted) -> (StatusCode, Value) {
    let answer = Started {
        status: SUCCESS,
        message: "Data deletion process has been initiated.",
        data: JobStarted {
            job_id: &job.job_id,
            tasks_count: job.tasks_count,
        },
        status_code: 202,
    };
    (StatusCode::ACCEPTED, json_body(&answer))
}

impl From<AcceptError> for ApiError {
    fn from(error: AcceptError) -> Self {
        match error {
            AcceptError::IdempotencyMismatch => ApiError::IdempotencyMismatch,
            AcceptError::SendInProgress => ApiError::Unavailable(Box::new(error)),
            AcceptError::Dynamo(inner) => inner.into(),
            AcceptError::Store(inner) => inner.into(),
            AcceptError::Queue(inner) => inner.into(),
        }
    }
}

impl Api {
    pub(super) async fn delete(
        &self,
        tenant: &Tenant,
        idempotency_key: Option<IdempotencyKey>,
        request: DeleteRequest,
        now: i64,
    ) -> Result<(StatusCode, Value), ApiError> {
        if request.dry_run {
            return self.dry_run(tenant, &request).await;
        }
        let acceptance = Acceptance {
            control: &self.control,
            data: &self.data,
            queue: &self.queue,
            announcer: self.announcer.as_ref(),
            retention_days: self.config.job_retention_days,
        };
        let keyed = idempotency_key.map(|key| (key, request_hash(&request)));
        let job = acceptance
            .accept(
                tenant,
                &request,
                keyed.as_ref().map(|(key, hash)| (key, hash.as_str())),
                now,
            )
            .await?;
        tracing::info!(job_id = %job.job_id, tasks = job.tasks_count, "job accepted");
        self.metrics.job_accepted();
        Ok(accepted(&job))
    }

    /// Counts, per feature, what a real run would remove and rewrite; writes nothing.
    async fn dry_run(
        &self,
        tenant: &Tenant,
        request: &DeleteRequest,
    ) -> Result<(StatusCode, Value), ApiError> {
        let kinds: Vec<TaskKind> = TaskKind::for_scope(request.is_scoped()).collect();
        let preview =
            self.data
                .preview_job(tenant, &request.user_ids, &request.organization_ids, &kinds);
        // Bounded: what the users own decides how long counting takes, and the answer must come
        // within the api's timeout. Reads only, so stopping midway leaves nothing behind.
        let per_user = tokio::time::timeout(self.dry_run_budget, preview)
            .await
            .map_err(|_| {
                ApiError::InvalidArgument(InvalidRequest(
                    "dryRun: these users hold more than one request can count in time; \
                     preview fewer users at once"
                        .into(),
                ))
            })??;
        let mut items: BTreeMap<&'static str, u64> =
            kinds.iter().map(|k| (k.as_str(), 0)).collect();
        for (kind, outcome) in per_user.into_iter().flatten() {
            *items.entry(kind.as_str()).or_default() += outcome.removed + outcome.rewritten;
        }
        let answer = Started {
            status: SUCCESS,
            message: "Dry run: nothing was deleted.",
            data: DryRun {
                dry_run: true,
                tasks_count: kinds.len() * request.user_ids.len(),
                items,
            },
            status_code: 200,
        };
        Ok((StatusCode::OK, json_body(&answer)))
    }
}
