//! Task leases: one delivery at a time runs a task, so that what it removes is counted once.
//!
//! SQS delivers at least once: a duplicate of a message, or a retry of one whose continuation
//! is already running, would otherwise run one task twice at the same moment, and two copies
//! that read an entity before either deletes it would both count it (or each record half).
//! A copy first takes the task's lease on the job item; it records what it did and gives the
//! lease back in one update, conditioned on still holding it. A lease ends by itself at
//! `until`, which the holder moves on between pages while it works, so a copy that died blocks
//! the task for one lease term at most.
//!
//! Each renewal is also a *checkpoint*: it adds what the run removed and rewrote since the last
//! one to the job's counts, in the same conditional update, numbered so that a repeat of it (an
//! answer lost and the call retried) is recognised and never counted twice. A run that dies
//! loses the count of what it did since its last checkpoint, not of the whole run.

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;

use super::jobs::add_counts;
use super::ControlStore;
use crate::domain::ids::JobId;
use crate::domain::task::{Outcome, TaskKind};
use crate::dynamo::{self, DynamoError};

/// A delivery's hold on one task of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLease {
    pub task_id: String,
    /// A random id per claim: two copies of one task never hold the same lease.
    holder: String,
    /// The checkpoints this lease has recorded on the job item.
    checkpoints: u32,
}

/// What a claim on a task found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskClaim {
    /// The task is this delivery's to run until it gives the lease back.
    Granted(TaskLease),
    /// Another delivery runs it; its lease ends at this moment (epoch ms) at the latest.
    HeldUntil(i64),
    /// The task has succeeded already: nothing to run.
    Done,
    /// The job is gone (expired): nothing to account the task to.
    Gone,
}

/// The job item's attributes holding a task's lease: its holder, its end and the number of its
/// last checkpoint.
struct LeaseNames {
    holder: String,
    until: String,
    checkpoint: String,
}

impl LeaseNames {
    fn of(task_id: &str) -> Self {
        Self {
            holder: format!("lease_{task_id}"),
            until: format!("leaseUntil_{task_id}"),
            checkpoint: format!("leaseCheckpoint_{task_id}"),
        }
    }
}

impl TaskLease {
    /// Adds to `update` the condition that this lease is still held, with no checkpoint
    /// recorded that this delivery does not know of, and the removal of it.
    /// `update_expression` is the rest of the update (without a `REMOVE` clause) and
    /// `condition` the rest of its condition.
    ///
    /// A checkpoint whose outcome is unknown (its call failed past the retries) makes this
    /// refuse rather than count the checkpoint's work a second time.
    pub(super) fn release(
        &self,
        update: UpdateItemFluentBuilder,
        update_expression: &str,
        condition: &str,
    ) -> UpdateItemFluentBuilder {
        let names = LeaseNames::of(&self.task_id);
        update
            .update_expression(format!(
                "{update_expression} REMOVE #leaseHolder, #leaseUntil, #leaseCheckpoint"
            ))
            .condition_expression(format!(
                "{condition} AND #leaseHolder = :leaseHolder \
                 AND #leaseCheckpoint = :leaseCheckpoint"
            ))
            .expression_attribute_names("#leaseHolder", names.holder)
            .expression_attribute_names("#leaseUntil", names.until)
            .expression_attribute_names("#leaseCheckpoint", names.checkpoint)
            .expression_attribute_values(":leaseHolder", AttributeValue::S(self.holder.clone()))
            .expression_attribute_values(
                ":leaseCheckpoint",
                AttributeValue::N(self.checkpoints.to_string()),
            )
    }
}

impl ControlStore {
    /// Claims `task_id` of the job until `until_ms`, unless it has succeeded or another
    /// delivery holds a lease that has not ended by `now_ms`.
    pub async fn claim_task(
        &self,
        job_id: &JobId,
        task_id: &str,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<TaskClaim, DynamoError> {
        let names = LeaseNames::of(task_id);
        // Two rounds: a lease that ends between the refused update and the read is taken on
        // the second; one that is taken again meanwhile is someone else's.
        for _ in 0..2 {
            let lease = TaskLease {
                task_id: task_id.to_owned(),
                holder: format!("{:016x}", rand::random::<u64>()),
                checkpoints: 0,
            };
            let result = self
                .update_job(job_id)
                .update_expression("SET #holder = :holder, #until = :until, #checkpoint = :zero")
                // A retried attempt of this same claim (its first answer lost) finds the lease
                // its own: the claim is idempotent.
                .condition_expression(
                    "attribute_exists(pk) AND NOT contains(succeededTasks, :id) \
                     AND (attribute_not_exists(#until) OR #until < :now OR #holder = :holder)",
                )
                .expression_attribute_names("#holder", &names.holder)
                .expression_attribute_names("#until", &names.until)
                .expression_attribute_names("#checkpoint", &names.checkpoint)
                .expression_attribute_values(":holder", AttributeValue::S(lease.holder.clone()))
                .expression_attribute_values(":until", AttributeValue::N(until_ms.to_string()))
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
                .expression_attribute_values(":id", AttributeValue::S(task_id.to_owned()))
                .send()
                .await;
            match dynamo::applied("UpdateItem", result) {
                Ok(true) => return Ok(TaskClaim::Granted(lease)),
                Ok(false) => {}
                Err(error) => {
                    // The claim may have been applied and its answer lost: give it back, or
                    // the task would wait a whole term for a holder that never was.
                    if let Err(release) = self.give_back(job_id, &lease).await {
                        tracing::warn!(
                            error = &release as &dyn std::error::Error,
                            "could not give back a claim whose answer was lost"
                        );
                    }
                    return Err(error);
                }
            }
            let Some(found) = self.lease_state(job_id, task_id).await? else {
                return Ok(TaskClaim::Gone);
            };
            match found {
                LeaseState::Succeeded => return Ok(TaskClaim::Done),
                LeaseState::Held(until) if until >= now_ms => {
                    return Ok(TaskClaim::HeldUntil(until))
                }
                LeaseState::Held(_) | LeaseState::Free => {}
            }
        }
        // Taken and ended twice in a row: treat it as held for a moment.
        Ok(TaskClaim::HeldUntil(now_ms))
    }

    /// Gives a lease back without recording anything; a no-op unless this delivery holds it.
    async fn give_back(&self, job_id: &JobId, lease: &TaskLease) -> Result<bool, DynamoError> {
        let result = lease
            .release(self.update_job(job_id), "", "attribute_exists(pk)")
            .send()
            .await;
        dynamo::applied("UpdateItem", result)
    }

    /// Renews a lease this delivery still holds until `until_ms` and, in the same update,
    /// adds `done` (what the run did since its last checkpoint) to the job's counts of `kind`.
    /// `false` when the lease is no longer this delivery's (it ended and another delivery
    /// took the task): nothing was added.
    pub async fn checkpoint_task(
        &self,
        job_id: &JobId,
        lease: &mut TaskLease,
        kind: TaskKind,
        done: Outcome,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<bool, DynamoError> {
        let names = LeaseNames::of(&lease.task_id);
        let next = lease.checkpoints + 1;
        let result = add_counts(self.update_job(job_id), kind, done)
            .update_expression(
                "SET #until = :until, #checkpoint = :next, lastProgressAt = :now \
                 ADD #removed :removed, #rewritten :rewritten",
            )
            .condition_expression("#holder = :holder AND #checkpoint = :last")
            .expression_attribute_names("#holder", &names.holder)
            .expression_attribute_names("#until", &names.until)
            .expression_attribute_names("#checkpoint", &names.checkpoint)
            .expression_attribute_values(":holder", AttributeValue::S(lease.holder.clone()))
            .expression_attribute_values(":until", AttributeValue::N(until_ms.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":last", AttributeValue::N(lease.checkpoints.to_string()))
            .expression_attribute_values(":next", AttributeValue::N(next.to_string()))
            .send()
            .await;
        let applied = match dynamo::applied("UpdateItem", result)? {
            true => true,
            // Refused: either the lease is gone, or this very checkpoint was applied and its
            // answer lost, and the SDK's retry of it found the number already moved on.
            false => self.checkpoint_held(job_id, lease).await? == Some(next),
        };
        if applied {
            lease.checkpoints = next;
        }
        Ok(applied)
    }

    /// The number of the last checkpoint of `lease`, read consistently, if it is still held.
    async fn checkpoint_held(
        &self,
        job_id: &JobId,
        lease: &TaskLease,
    ) -> Result<Option<u32>, DynamoError> {
        let names = LeaseNames::of(&lease.task_id);
        let output = self
            .read_job(job_id)
            .projection_expression("#holder, #checkpoint")
            .expression_attribute_names("#holder", &names.holder)
            .expression_attribute_names("#checkpoint", &names.checkpoint)
            .send()
            .await
            .map_err(|e| DynamoError::call("GetItem", e))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        if item.get(&names.holder) != Some(&AttributeValue::S(lease.holder.clone())) {
            return Ok(None);
        }
        Ok(match item.get(&names.checkpoint) {
            Some(AttributeValue::N(n)) => n.parse().ok(),
            _ => None,
        })
    }

    /// The task's state on the job item, read consistently; `None` when the job is gone.
    async fn lease_state(
        &self,
        job_id: &JobId,
        task_id: &str,
    ) -> Result<Option<LeaseState>, DynamoError> {
        let until_name = LeaseNames::of(task_id).until;
        let output = self
            .read_job(job_id)
            .projection_expression("succeededTasks, #until")
            .expression_attribute_names("#until", &until_name)
            .send()
            .await
            .map_err(|e| DynamoError::call("GetItem", e))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        if let Some(AttributeValue::Ss(done)) = item.get("succeededTasks") {
            if done.iter().any(|t| t == task_id) {
                return Ok(Some(LeaseState::Succeeded));
            }
        }
        Ok(Some(match item.get(&until_name) {
            Some(AttributeValue::N(n)) => LeaseState::Held(n.parse().unwrap_or(0)),
            _ => LeaseState::Free,
        }))
    }
}

enum LeaseState {
    Succeeded,
    Held(i64),
    Free,
}
