//! Job records and their progress. Every update is a single-item conditional write, so a task
//! reported twice counts once and a job settles exactly once (no transactions needed).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{key, number, string, string_set, ControlStore};
use crate::domain::ids::{JobId, OrganizationId};
use crate::domain::job::{JobStatus, Progress};
use crate::domain::task::{parse_task_id, Task, TaskKind};
use crate::dynamo::{DynamoError, Item};
use crate::keys::component;
use crate::store::entity::Tenant;
use crate::store::erase::Outcome;

fn job_key(job_id: &JobId) -> Item {
    key(format!("JOB#{job_id}"), "JOB")
}

fn is_conditional<E: ProvideErrorMetadata>(error: &SdkError<E>) -> bool {
    error.code() == Some("ConditionalCheckFailedException")
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
    pub enqueued_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub last_task_completed_time: Option<i64>,
    /// Per feature: items removed and rewritten.
    pub items: BTreeMap<TaskKind, Outcome>,
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

    pub fn belongs_to(&self, tenant: &Tenant) -> bool {
        self.tenant == tenant.as_str()
    }

    fn parse(item: &Item) -> Option<Self> {
        let status = match string(item, "jobStatus")?.as_str() {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "completed" => JobStatus::Completed,
            "partial" => JobStatus::Partial,
            "failed" => JobStatus::Failed,
            _ => return None,
        };
        let items = TaskKind::ALL
            .into_iter()
            .filter_map(|kind| {
                let removed = number(item, &format!("removed_{kind}"));
                let rewritten = number(item, &format!("rewritten_{kind}"));
                (removed.is_some() || rewritten.is_some()).then(|| {
                    let outcome = Outcome {
                        removed: removed.unwrap_or(0) as u64,
                        rewritten: rewritten.unwrap_or(0) as u64,
                    };
                    (kind, outcome)
                })
            })
            .collect();
        Some(Self {
            job_id: JobId::parse(&string(item, "jobId")?).ok()?,
            tenant: string(item, "tenant")?,
            status,
            tasks_count: number(item, "tasksCount")? as usize,
            succeeded: string_set(item, "succeededTasks"),
            failed: string_set(item, "failedTasks"),
            user_hashes: string_set(item, "userHashes"),
            organization_ids: string_set(item, "organizationIds")
                .into_iter()
                .filter_map(|o| OrganizationId::parse(o).ok())
                .collect(),
            created_at: number(item, "createdAt")?,
            enqueued_at: number(item, "enqueuedAt"),
            completed_at: number(item, "completedAt"),
            last_task_completed_time: number(item, "lastTaskCompletedTime"),
            items,
        })
    }
}

impl ControlStore {
    /// An update of the job's record.
    fn update_job(&self, job_id: &JobId) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(job_key(job_id)))
    }

    /// Stores a new job; `false` when a job with this id exists already (an idempotent retry),
    /// which is left as it is.
    pub async fn create_job(&self, job: &NewJob) -> Result<bool, DynamoError> {
        let mut item = job_key(&job.job_id);
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let n = |v: i64| AttributeValue::N(v.to_string());
        item.insert("jobId".into(), s(job.job_id.as_str()));
        item.insert("tenant".into(), s(job.tenant.as_str()));
        item.insert("jobStatus".into(), s(JobStatus::Queued.as_str()));
        item.insert("tasksCount".into(), n(job.tasks_count as i64));
        // A list, in the job's user order: task `t<i>.<kind>` belongs to the user at `i`.
        item.insert(
            "userHashes".into(),
            AttributeValue::L(job.user_hashes.iter().map(|h| s(h)).collect()),
        );
        item.insert(
            "organizationIds".into(),
            AttributeValue::L(job.organization_ids.iter().map(|o| s(o.as_str())).collect()),
        );
        item.insert("createdAt".into(), n(job.created_at_ms));
        item.insert("expiresAt".into(), n(job.expires_at_s));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                Ok(false)
            }
            Err(error) => Err(DynamoError::call("PutItem", error)),
        }
    }

    pub async fn get_job(&self, job_id: &JobId) -> Result<Option<JobView>, DynamoError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(job_key(job_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::call("GetItem", e))?;
        Ok(output.item.as_ref().and_then(JobView::parse))
    }

    /// Records that every task of the job has been sent.
    pub async fn mark_enqueued(&self, job_id: &JobId, now_ms: i64) -> Result<(), DynamoError> {
        self.update_job(job_id)
            .update_expression("SET enqueuedAt = if_not_exists(enqueuedAt, :now)")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .send()
            .await
            .map_err(|e| DynamoError::call("UpdateItem", e))?;
        Ok(())
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
        match result {
            Ok(_) => Ok(()),
            Err(error) if is_conditional(&error) => Ok(()),
            Err(error) => Err(DynamoError::call("UpdateItem", error)),
        }
    }

    /// Records a task's success with what it removed and rewritten, once: a repeat is ignored.
    /// A task that had been recorded as failed (then redriven) moves to the succeeded set.
    /// Returns the job as this call settled it, when it did (see [`ControlStore::settle`]).
    pub async fn record_success(
        &self,
        job_id: &JobId,
        task_id: &str,
        kind: TaskKind,
        outcome: Outcome,
        now_ms: i64,
    ) -> Result<Option<JobView>, DynamoError> {
        let result = self
            .update_job(job_id)
            .update_expression(
                "SET lastTaskCompletedTime = :now \
                 ADD succeededTasks :task, #removed :removed, #rewritten :rewritten \
                 DELETE failedTasks :task",
            )
            .condition_expression("attribute_exists(pk) AND NOT contains(succeededTasks, :id)")
            .expression_attribute_names("#removed", format!("removed_{kind}"))
            .expression_attribute_names("#rewritten", format!("rewritten_{kind}"))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":task", AttributeValue::Ss(vec![task_id.to_owned()]))
            .expression_attribute_values(":id", AttributeValue::S(task_id.to_owned()))
            .expression_attribute_values(":removed", AttributeValue::N(outcome.removed.to_string()))
            .expression_attribute_values(
                ":rewritten",
                AttributeValue::N(outcome.rewritten.to_string()),
            )
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        self.settle_after(result, now_ms).await
    }

    /// Adds what a paused task's pass removed and rewrote; the task goes on in a continuation.
    pub async fn record_progress(
        &self,
        job_id: &JobId,
        kind: TaskKind,
        outcome: Outcome,
    ) -> Result<(), DynamoError> {
        self.update_job(job_id)
            .update_expression("ADD #removed :removed, #rewritten :rewritten")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#removed", format!("removed_{kind}"))
            .expression_attribute_names("#rewritten", format!("rewritten_{kind}"))
            .expression_attribute_values(":removed", AttributeValue::N(outcome.removed.to_string()))
            .expression_attribute_values(
                ":rewritten",
                AttributeValue::N(outcome.rewritten.to_string()),
            )
            .send()
            .await
            .map_err(|e| DynamoError::call("UpdateItem", e))?;
        Ok(())
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
            .update_expression("SET lastTaskCompletedTime = :now ADD failedTasks :task")
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

    async fn settle_after(
        &self,
        result: Result<UpdateItemOutput, SdkError<UpdateItemError>>,
        now_ms: i64,
    ) -> Result<Option<JobView>, DynamoError> {
        let output = match result {
            Ok(output) => output,
            Err(error) if is_conditional(&error) => return Ok(None),
            Err(error) => return Err(DynamoError::call("UpdateItem", error)),
        };
        let Some(job) = output.attributes.as_ref().and_then(JobView::parse) else {
            return Ok(None);
        };
        self.settle(&job, now_ms).await
    }

    /// Sets the final status the job's counts imply, exactly once for that snapshot: the
    /// condition pins the counts it was derived from and refuses a repeat. Returns the job as
    /// settled when this call's update won, so that exactly one caller announces it.
    async fn settle(&self, job: &JobView, now_ms: i64) -> Result<Option<JobView>, DynamoError> {
        let progress = job.progress();
        let Some(status) = progress.settled_status() else {
            return Ok(None);
        };
        if status == job.status {
            return Ok(None);
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
            Err(error) if is_conditional(&error) => Ok(None),
            Err(error) => Err(DynamoError::call("UpdateItem", error)),
        }
    }
}
