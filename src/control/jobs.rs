//! Job records and their progress. Every update is a single-item conditional write, so a task
//! reported twice counts once and a job settles exactly once (no transactions needed).

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::get_item::builders::GetItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};

use super::tasks::{job_partition, Counts, TaskLease};
use super::{key, ControlStore};
use crate::domain::ids::{JobId, OrganizationId};
use crate::domain::job::{JobStatus, Progress};
use crate::domain::task::Outcome;
use crate::domain::task::{parse_task_id, task_id, Task, TaskKind};
use crate::domain::tenant::Tenant;
use crate::dynamo::{self, DynamoError, Item};
use crate::keys::component;

fn job_key(job_id: &JobId) -> Item {
    key(job_partition(job_id), "JOB")
}

/// One request's claim on sending a job's tasks: when it was taken, and a random id that tells
/// it from every other request's (two claims taken in the same millisecond stay two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendClaim {
    pub at_ms: i64,
    pub id: String,
}

impl SendClaim {
    pub fn new(at_ms: i64) -> Self {
        Self {
            at_ms,
            id: format!("{:016x}", rand::random::<u64>()),
        }
    }
}

/// Why a task's success was not recorded: which of its two updates failed.
#[derive(Debug, thiserror::Error)]
pub enum SuccessError {
    /// The task item could not be marked finished (the update may or may not have been applied).
    #[error("the task's item could not be marked finished")]
    Finish(#[source] DynamoError),
    /// The task item says it finished, but the job does not count it yet: the task's next
    /// delivery finds it finished and makes the job's update ([`ControlStore::complete_task`]).
    #[error("the task finished but the job could not count it")]
    Complete(#[source] DynamoError),
}

/// A job as it is created.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub job_id: JobId,
    pub tenant: Tenant,
    /// Key hashes of the users: the record never holds a raw user id.
    pub user_hashes: Vec<String>,
    pub organization_ids: Vec<OrganizationId>,
    pub tasks_count: usize,
    pub created_at_ms: i64,
    pub expires_at_s: i64,
    /// Accepted with an `Idempotency-Key`: a retry can still finish its acceptance.
    pub retryable: bool,
}

/// A job as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobView {
    pub job_id: JobId,
    pub tenant: String,
    pub status: JobStatus,
    pub tasks_count: usize,
    pub succeeded: Vec<String>,
    pub failed: Vec<String>,
    /// Key hashes of the job's users, in the order task ids number them.
    pub user_hashes: Vec<String>,
    pub organization_ids: Vec<OrganizationId>,
    pub created_at: i64,
    /// When the record expires (TTL, epoch seconds).
    pub expires_at: i64,
    pub enqueued_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub last_task_completed_time: Option<i64>,
    /// When a task last ended or paused: the sweep's measure of progress.
    pub last_progress_at: Option<i64>,
    /// Whether a retry with the job's `Idempotency-Key` can still finish its acceptance.
    pub retryable: bool,
    /// What the succeeded tasks removed and rewrote, per feature: each task's total, added
    /// once, when it succeeded. The job's counts add those of the tasks that have not
    /// ([`ControlStore::job_counts`]).
    pub succeeded_items: Counts,
    /// Why the job ended `failed` without running, when it did.
    pub failure_reason: Option<String>,
    /// When the sweep released the job's holds on its users' tombstones, once it ended
    /// `failed` without running ([`JobView::owes_tombstone_release`]).
    pub tombstones_released_at: Option<i64>,
    /// The last settlement dealt with for the tenant's webhook: its event enqueued, or found
    /// to have no webhook to go to. The job owes an announcement while this differs from
    /// `status` (DESIGN §8).
    pub announced: Option<JobStatus>,
}

/// A job's record as stored, through serde_dynamo: what `create_job` writes and `get_job`
/// reads. The per-feature counters (`removed_<kind>`, `rewritten_<kind>`) are attributes named
/// after the kind, which a task's success adds its total to; they are read apart
/// ([`counters`]).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobRecord {
    job_id: String,
    tenant: String,
    job_status: JobStatus,
    tasks_count: usize,
    /// String sets (`ADD`), absent until a task ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    succeeded_tasks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    failed_tasks: Vec<String>,
    /// A list, in the job's user order: task `t<i>.<kind>` belongs to the user at `i`.
    user_hashes: Vec<String>,
    organization_ids: Vec<String>,
    created_at: i64,
    expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enqueued_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    completed_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_task_completed_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_progress_at: Option<i64>,
    #[serde(default)]
    retryable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tombstones_released_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    announced_status: Option<JobStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    send_claimed_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    send_claim_id: Option<String>,
}

/// The job item's counters of `kind`: what its tasks removed, and what they rewrote.
fn counter_names(kind: TaskKind) -> (String, String) {
    (format!("removed_{kind}"), format!("rewritten_{kind}"))
}

/// Gives `update` the names and values of `ADD #removed :removed, #rewritten :rewritten`,
/// which adds `outcome` to the job's counters of `kind`.
fn add_counts(
    update: UpdateItemFluentBuilder,
    kind: TaskKind,
    outcome: Outcome,
) -> UpdateItemFluentBuilder {
    let (removed, rewritten) = counter_names(kind);
    update
        .expression_attribute_names("#removed", removed)
        .expression_attribute_names("#rewritten", rewritten)
        .expression_attribute_values(":removed", AttributeValue::N(outcome.removed.to_string()))
        .expression_attribute_values(
            ":rewritten",
            AttributeValue::N(outcome.rewritten.to_string()),
        )
}

/// The per-feature counters of a job's item.
fn counters(item: &Item) -> Counts {
    let number = |name: String| match item.get(&name) {
        Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
        _ => None,
    };
    TaskKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let (removed, rewritten) = counter_names(kind);
            let (removed, rewritten) = (number(removed), number(rewritten));
            (removed.is_some() || rewritten.is_some()).then(|| {
                let outcome = Outcome {
                    removed: removed.unwrap_or(0),
                    rewritten: rewritten.unwrap_or(0),
                };
                (kind, outcome)
            })
        })
        .collect()
}

impl JobView {
    pub fn progress(&self) -> Progress {
        Progress {
            tasks_count: self.tasks_count,
            succeeded: self.succeeded.len(),
            failed: self.failed.len(),
        }
    }

    /// Whether `task` is one of this job's: its id names the user's place in the job and its
    /// kind. A queue message is not trusted to say whom to erase: anything else is dropped.
    pub fn owns(&self, task: &Task) -> bool {
        parse_task_id(&task.task_id).is_some_and(|(index, kind)| {
            kind == task.kind
                && self.user_hashes.get(index) == Some(&component(task.user_id.as_str()))
        })
    }

    /// Every task id of the job, as `plan_tasks` made them.
    pub fn task_ids(&self) -> Vec<String> {
        let kinds: Vec<TaskKind> = TaskKind::for_scope(!self.organization_ids.is_empty()).collect();
        (0..self.user_hashes.len())
            .flat_map(|index| kinds.iter().map(move |kind| task_id(index, *kind)))
            .collect()
    }

    /// Whether the job has reached a final status.
    pub fn is_settled(&self) -> bool {
        !matches!(self.status, JobStatus::Queued | JobStatus::Running)
    }

    /// Whether the job has settled and its tenant's webhook has not been dealt with for this
    /// settlement yet.
    pub fn owes_announcement(&self) -> bool {
        self.is_settled() && self.announced != Some(self.status)
    }

    /// Whether the job ended `failed` because its acceptance never finished, and still holds
    /// its users' tombstones: its request was answered 503, which promised no cut-off, so the
    /// sweep releases them (a tombstone another job holds too stays).
    pub fn owes_tombstone_release(&self) -> bool {
        self.status == JobStatus::Failed
            && self.failure_reason.is_some()
            && self.tombstones_released_at.is_none()
    }

    pub fn belongs_to(&self, tenant: &Tenant) -> bool {
        self.tenant == tenant.as_str()
    }

    /// The tenant whose job this is.
    pub fn tenant(&self) -> Tenant {
        Tenant::from_stored(self.tenant.clone())
    }

    fn parse(item: &Item) -> Option<Self> {
        let record: JobRecord = match serde_dynamo::from_item(item.clone()) {
            Ok(record) => record,
            Err(error) => {
                tracing::error!(
                    error = &error as &dyn std::error::Error,
                    "a job record that does not parse"
                );
                return None;
            }
        };
        Some(Self {
            job_id: JobId::parse(&record.job_id).ok()?,
            tenant: record.tenant,
            status: record.job_status,
            tasks_count: record.tasks_count,
            succeeded: record.succeeded_tasks,
            failed: record.failed_tasks,
            user_hashes: record.user_hashes,
            organization_ids: record
                .organization_ids
                .into_iter()
                .filter_map(|o| OrganizationId::parse(o).ok())
                .collect(),
            created_at: record.created_at,
            expires_at: record.expires_at,
            enqueued_at: record.enqueued_at,
            completed_at: record.completed_at,
            last_task_completed_time: record.last_task_completed_time,
            last_progress_at: record.last_progress_at,
            retryable: record.retryable,
            failure_reason: record.failure_reason,
            tombstones_released_at: record.tombstones_released_at,
            succeeded_items: counters(item),
            announced: record.announced_status,
        })
    }
}

impl ControlStore {
    /// An update of the job's record.
    pub(super) fn update_job(&self, job_id: &JobId) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(job_key(job_id)))
    }

    /// A consistent read of the job's record.
    pub(super) fn read_job(&self, job_id: &JobId) -> GetItemFluentBuilder {
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(job_key(job_id)))
            .consistent_read(true)
    }

    /// Stores a new job holding `claim` (its tasks are this request's to send); `false` when a
    /// job with this id exists already (an idempotent retry), which is left as it is.
    ///
    /// The job's entry in the open-jobs index is written at the same time (and again by every
    /// retry), so the acceptance pays one round trip for both. The request goes on only when
    /// both are stored, so a job with tombstones or tasks always has its entry. What a failure
    /// can leave: an entry without a job (the sweep removes it), or a job without an entry that
    /// holds nothing — no tombstone, no task — and whose id no caller has (it answered 503).
    pub async fn create_job(&self, job: &NewJob, claim: &SendClaim) -> Result<bool, DynamoError> {
        let (entry, created) = futures::join!(
            self.put_open_entry(&job.job_id, job.created_at_ms, job.expires_at_s),
            self.put_job(job, claim)
        );
        entry?;
        created
    }

    async fn put_job(&self, job: &NewJob, claim: &SendClaim) -> Result<bool, DynamoError> {
        let record = JobRecord {
            job_id: job.job_id.as_str().to_owned(),
            tenant: job.tenant.as_str().to_owned(),
            job_status: JobStatus::Queued,
            tasks_count: job.tasks_count,
            succeeded_tasks: Vec::new(),
            failed_tasks: Vec::new(),
            user_hashes: job.user_hashes.clone(),
            organization_ids: job
                .organization_ids
                .iter()
                .map(|o| o.as_str().to_owned())
                .collect(),
            created_at: job.created_at_ms,
            expires_at: job.expires_at_s,
            enqueued_at: None,
            completed_at: None,
            last_task_completed_time: None,
            last_progress_at: None,
            retryable: job.retryable,
            failure_reason: None,
            tombstones_released_at: None,
            announced_status: None,
            send_claimed_at: Some(claim.at_ms),
            send_claim_id: Some(claim.id.clone()),
        };
        let mut item: Item = serde_dynamo::to_item(&record).map_err(DynamoError::Shape)?;
        item.extend(job_key(&job.job_id));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        dynamo::applied("PutItem", put)
    }

    pub async fn get_job(&self, job_id: &JobId) -> Result<Option<JobView>, DynamoError> {
        let output = self
            .read_job(job_id)
            .send()
            .await
            .map_err(|e| DynamoError::call("GetItem", e))?;
        Ok(output.item.as_ref().and_then(JobView::parse))
    }

    /// The job, read consistently, with what its tasks removed and rewrote
    /// ([`ControlStore::job_counts`]).
    pub async fn job_report(
        &self,
        job_id: &JobId,
    ) -> Result<Option<(JobView, Counts)>, DynamoError> {
        let Some(job) = self.get_job(job_id).await? else {
            return Ok(None);
        };
        let counts = self.job_counts(&job).await?;
        Ok(Some((job, counts)))
    }

    /// Claims the sending of the job's tasks for one request, so that concurrent retries with
    /// one `Idempotency-Key` send them once. `false` while another request's claim is fresh or
    /// once the job is fully enqueued. A claim older than `stale_before` belongs to a request
    /// that died (the api's timeout is far shorter), so it can be taken over. A request finding
    /// its own claim (stored by `create_job` whose answer was lost) holds it still.
    pub async fn claim_send(
        &self,
        job_id: &JobId,
        claim: &SendClaim,
        stale_before_ms: i64,
    ) -> Result<bool, DynamoError> {
        let result = self
            .update_job(job_id)
            .update_expression("SET sendClaimedAt = :now, sendClaimId = :id")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(enqueuedAt) AND \
                 (attribute_not_exists(sendClaimedAt) OR sendClaimedAt < :stale \
                  OR sendClaimId = :id)",
            )
            .expression_attribute_values(":now", AttributeValue::N(claim.at_ms.to_string()))
            .expression_attribute_values(":id", AttributeValue::S(claim.id.clone()))
            .expression_attribute_values(":stale", AttributeValue::N(stale_before_ms.to_string()))
            .send()
            .await;
        dynamo::applied("UpdateItem", result)
    }

    /// Gives up `claim` when its sending failed, so that a retry can send at once instead of
    /// waiting for the claim to go stale.
    pub async fn release_send(&self, job_id: &JobId, claim: &SendClaim) -> Result<(), DynamoError> {
        let result = self
            .update_job(job_id)
            .update_expression("REMOVE sendClaimedAt, sendClaimId")
            .condition_expression("sendClaimId = :mine")
            .expression_attribute_values(":mine", AttributeValue::S(claim.id.clone()))
            .send()
            .await;
        dynamo::applied("UpdateItem", result).map(drop)
    }

    /// Records that every task of the job has been sent. A job whose tasks all succeeded
    /// before this mark completes now: it could not while not fully enqueued. Returns the job
    /// as this call settled it, when it did.
    pub async fn mark_enqueued(
        &self,
        job_id: &JobId,
        now_ms: i64,
    ) -> Result<Option<JobView>, DynamoError> {
        let result = self
            .update_job(job_id)
            .update_expression("SET enqueuedAt = if_not_exists(enqueuedAt, :now)")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Err(error) if dynamo::is_conditional_check_failed(&error) => {
                Err(DynamoError::call("UpdateItem", error))
            }
            other => self.settle_after(other, now_ms).await,
        }
    }

    /// Moves a queued job to running (a no-op in any other state).
    pub async fn mark_running(&self, job_id: &JobId) -> Result<(), DynamoError> {
        let result = self
            .update_job(job_id)
            .update_expression("SET jobStatus = :running")
            .condition_expression("jobStatus = :queued")
            .expression_attribute_values(":running", AttributeValue::S("running".into()))
            .expression_attribute_values(":queued", AttributeValue::S("queued".into()))
            .send()
            .await;
        dynamo::applied("UpdateItem", result).map(drop)
    }

    /// Records a task's success: its item is marked finished, giving the lease back (refused,
    /// `None`, if this delivery no longer holds it); then the job counts the task as succeeded,
    /// with the task's total, which its closed pages added up on its item
    /// ([`ControlStore::complete_task`]). Returns the job as this call settled it, when it did.
    pub async fn record_success(
        &self,
        job_id: &JobId,
        lease: &TaskLease,
        kind: TaskKind,
        now_ms: i64,
    ) -> Result<Option<JobView>, SuccessError> {
        let finished = self.finish_task(job_id, lease).await;
        let Some(total) = finished.map_err(SuccessError::Finish)? else {
            return Ok(None);
        };
        self.complete_task(job_id, &lease.task_id, kind, total, now_ms)
            .await
            .map_err(SuccessError::Complete)
    }

    /// Adds a finished task to the job's succeeded tasks and its `total` (what all its runs
    /// removed and rewrote, from its item) to the job's counters, once: a repeat is ignored. A
    /// task that had been recorded as failed (then redriven) moves to the succeeded set. The
    /// job item's one update per task. Also called for a task whose item says it finished while
    /// the job does not count it yet (a run that died between the two updates). Returns the job
    /// as this call settled it, when it did (see [`ControlStore::settle`]).
    pub async fn complete_task(
        &self,
        job_id: &JobId,
        task_id: &str,
        kind: TaskKind,
        total: Outcome,
        now_ms: i64,
    ) -> Result<Option<JobView>, DynamoError> {
        let update = self
            .update_job(job_id)
            .update_expression(
                "SET lastTaskCompletedTime = :now, lastProgressAt = :now \
                 ADD succeededTasks :task, #removed :removed, #rewritten :rewritten \
                 DELETE failedTasks :task",
            )
            .condition_expression("attribute_exists(pk) AND NOT contains(succeededTasks, :id)");
        let result = add_counts(update, kind, total)
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":task", AttributeValue::Ss(vec![task_id.to_owned()]))
            .expression_attribute_values(":id", AttributeValue::S(task_id.to_owned()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        self.settle_after(result, now_ms).await
    }

    /// Gives a task's lease back after a run that paused or failed (what it did is on the
    /// task's item already, page by page): the task goes on in a continuation, or in a retry.
    /// The job item records the moment (`lastProgressAt`, the sweep's measure of progress for
    /// a task that takes many invocations). `false` when the lease was no longer this
    /// delivery's (it outlived it).
    pub async fn record_progress(
        &self,
        job_id: &JobId,
        lease: &TaskLease,
        now_ms: i64,
    ) -> Result<bool, DynamoError> {
        if !self.release_task(job_id, lease).await? {
            return Ok(false);
        }
        let result = self
            .update_job(job_id)
            .update_expression("SET lastProgressAt = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .send()
            .await;
        dynamo::applied("UpdateItem", result)?;
        Ok(true)
    }

    /// Records a task's final failure, once, unless it has succeeded. Returns the job as this
    /// call settled it, when it did.
    pub async fn record_failure(
        &self,
        job_id: &JobId,
        task_id: &str,
        now_ms: i64,
    ) -> Result<Option<JobView>, DynamoError> {
        let result = self
            .update_job(job_id)
            .update_expression(
                "SET lastTaskCompletedTime = :now, lastProgressAt = :now ADD failedTasks :task",
            )
            .condition_expression(
                "attribute_exists(pk) AND NOT contains(succeededTasks, :id) \
                 AND NOT contains(failedTasks, :id)",
            )
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":task", AttributeValue::Ss(vec![task_id.to_owned()]))
            .expression_attribute_values(":id", AttributeValue::S(task_id.to_owned()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        self.settle_after(result, now_ms).await
    }

    /// Ends a job that made no progress for longer than a task can keep retrying: every task
    /// that has not ended is recorded as failed (whatever killed its attempts) and the job
    /// settles `partial` or `failed`. Refused if the job moved since `job` was read, so a task
    /// ending meanwhile is never counted as failed. A redrive of the dead letters still
    /// completes it: a success moves its task from failed to succeeded. Returns the job as this
    /// call settled it, when it did.
    pub async fn end_stalled(
        &self,
        job: &JobView,
        now_ms: i64,
    ) -> Result<Option<JobView>, DynamoError> {
        let open: Vec<String> = job
            .task_ids()
            .into_iter()
            .filter(|id| !job.succeeded.contains(id) && !job.failed.contains(id))
            .collect();
        if open.is_empty() {
            return self.settle(job, now_ms).await;
        }
        let progress_guard = match job.last_progress_at {
            Some(_) => "lastProgressAt = :seen",
            None => "attribute_not_exists(lastProgressAt)",
        };
        let mut update = self
            .update_job(&job.job_id)
            .update_expression("SET lastTaskCompletedTime = :now ADD failedTasks :open")
            .condition_expression(format!(
                "jobStatus IN (:queued, :running) AND attribute_exists(enqueuedAt) AND {progress_guard}"
            ))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":open", AttributeValue::Ss(open))
            .expression_attribute_values(":queued", AttributeValue::S(JobStatus::Queued.as_str().into()))
            .expression_attribute_values(
                ":running",
                AttributeValue::S(JobStatus::Running.as_str().into()),
            )
            .return_values(ReturnValue::AllNew);
        if let Some(seen) = job.last_progress_at {
            update =
                update.expression_attribute_values(":seen", AttributeValue::N(seen.to_string()));
        }
        self.settle_after(update.send().await, now_ms).await
    }

    /// Ends `failed`, with `reason`, a job whose acceptance never finished (not every task was
    /// sent) and that no retry can finish any more. Refused (`None`) if it got enqueued
    /// meanwhile; else the job as it ended.
    pub async fn fail_unaccepted(
        &self,
        job_id: &JobId,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<JobView>, DynamoError> {
        let result = self
            .update_job(job_id)
            .update_expression(
                "SET jobStatus = :failed, failureReason = :reason, completedAt = :now",
            )
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(enqueuedAt) AND \
                 jobStatus IN (:queued, :running)",
            )
            .expression_attribute_values(
                ":failed",
                AttributeValue::S(JobStatus::Failed.as_str().into()),
            )
            .expression_attribute_values(":reason", AttributeValue::S(reason.to_owned()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(
                ":queued",
                AttributeValue::S(JobStatus::Queued.as_str().into()),
            )
            .expression_attribute_values(
                ":running",
                AttributeValue::S(JobStatus::Running.as_str().into()),
            )
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.attributes.as_ref().and_then(JobView::parse)),
            Err(error) if dynamo::is_conditional_check_failed(&error) => Ok(None),
            Err(error) => Err(DynamoError::call("UpdateItem", error)),
        }
    }

    /// Records that the job's holds on its users' tombstones are released.
    pub async fn record_tombstones_released(
        &self,
        job_id: &JobId,
        now_ms: i64,
    ) -> Result<(), DynamoError> {
        let result = self
            .update_job(job_id)
            .update_expression("SET tombstonesReleasedAt = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .send()
            .await;
        dynamo::applied("UpdateItem", result).map(drop)
    }

    /// Records that `status`, the job's current settlement, has been dealt with for the
    /// tenant's webhook (its event enqueued, or no webhook to send it to). A no-op once the job
    /// has moved on to another status: that settlement is owed its own announcement.
    pub async fn record_announced(
        &self,
        job_id: &JobId,
        status: JobStatus,
    ) -> Result<(), DynamoError> {
        let result = self
            .update_job(job_id)
            .update_expression("SET announcedStatus = :status")
            .condition_expression("jobStatus = :status")
            .expression_attribute_values(":status", AttributeValue::S(status.as_str().into()))
            .send()
            .await;
        dynamo::applied("UpdateItem", result).map(drop)
    }

    async fn settle_after(
        &self,
        result: Result<UpdateItemOutput, SdkError<UpdateItemError>>,
        now_ms: i64,
    ) -> Result<Option<JobView>, DynamoError> {
        let output = match result {
            Ok(output) => output,
            Err(error) if dynamo::is_conditional_check_failed(&error) => return Ok(None),
            Err(error) => return Err(DynamoError::call("UpdateItem", error)),
        };
        let Some(job) = output.attributes.as_ref().and_then(JobView::parse) else {
            return Ok(None);
        };
        self.settle(&job, now_ms).await
    }

    /// Sets the final status the job's counts imply, exactly once for that snapshot: the
    /// condition pins the counts it was derived from and refuses a repeat. Returns the job as
    /// settled when this call's update won, so that exactly one caller announces it. Also called
    /// with a snapshot read back, when an earlier settling step may have been lost (a crash or a
    /// DynamoDB error between a task's record and its settling).
    pub async fn settle(&self, job: &JobView, now_ms: i64) -> Result<Option<JobView>, DynamoError> {
        let progress = job.progress();
        let Some(status) = progress.settled_status() else {
            return Ok(None);
        };
        if status == job.status {
            return Ok(None);
        }
        if status == JobStatus::Completed && job.enqueued_at.is_none() {
            // Not every task is known to be sent: the enqueued mark settles it (CONTRACT §1.3:
            // such a job is never reported complete).
            return Ok(None);
        }
        if job.is_settled() {
            // Settling anew (a redrive): the sweep may have removed the job's index entry once
            // the earlier settlement was announced. Listed again first, so that this settlement
            // is found and announced even if its caller dies right after it. A snapshot still
            // `queued`/`running` needs none: only a settlement implied by these same counts can
            // happen before this update, and it would refuse this one.
            self.put_open_entry(&job.job_id, now_ms, job.expires_at)
                .await?;
        }
        let failed_guard = if progress.failed == 0 {
            "attribute_not_exists(failedTasks)"
        } else {
            "size(failedTasks) = :failed"
        };
        let mut update = self
            .update_job(&job.job_id)
            .update_expression("SET jobStatus = :status, completedAt = :now")
            .condition_expression(format!(
                "jobStatus <> :status AND tasksCount = :count AND {failed_guard} AND \
                 (size(succeededTasks) = :succeeded OR (attribute_not_exists(succeededTasks) AND :succeeded = :zero))"
            ))
            .expression_attribute_values(":status", AttributeValue::S(status.as_str().into()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":count", AttributeValue::N(progress.tasks_count.to_string()))
            .expression_attribute_values(
                ":succeeded",
                AttributeValue::N(progress.succeeded.to_string()),
            )
            .expression_attribute_values(":zero", AttributeValue::N("0".into()));
        if progress.failed > 0 {
            update = update.expression_attribute_values(
                ":failed",
                AttributeValue::N(progress.failed.to_string()),
            );
        }
        match update.send().await {
            Ok(_) => Ok(Some(JobView {
                status,
                completed_at: Some(now_ms),
                ..job.clone()
            })),
            Err(error) if dynamo::is_conditional_check_failed(&error) => Ok(None),
            Err(error) => Err(DynamoError::call("UpdateItem", error)),
        }
    }
}
