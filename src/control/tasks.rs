//! Task items: one small item per task of a job (`JOB#<jobId>` / `TASK#<taskId>`), holding the
//! task's lease, its checkpoints and its counts. The updates a running task makes never touch
//! the job item: it is written once per task, when the task succeeds, with the task's total
//! (DESIGN §4, docs/SCALING.md).
//!
//! SQS delivers at least once: a duplicate of a message, or a retry of one whose continuation
//! is already running, would otherwise run one task twice at the same moment, and two copies
//! that read an entity before either deletes it would both count it (or each record half).
//! A copy first takes the task's lease; it records what it did and gives the lease back in one
//! update, conditioned on still holding it. A lease ends by itself at `leaseUntil`, which the holder
//! moves on between pages while it works, so a copy that died blocks the task for one lease
//! term at most.
//!
//! Each renewal is also a *checkpoint*: it adds what the run removed and rewrote since the last
//! one to the task's counts, in the same conditional update, numbered so that a repeat of it (an
//! answer lost and the call retried) is recognised and never counted twice. A run that dies
//! loses the count of what it did since its last checkpoint, not of the whole run.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{key, number, string, ControlStore, JobView};
use crate::domain::ids::JobId;
use crate::domain::job::JobStatus;
use crate::domain::task::{parse_task_id, Outcome, TaskKind};
use crate::dynamo::{self, DynamoError, Item};

/// What a job's tasks removed and rewrote, per feature.
pub type Counts = BTreeMap<TaskKind, Outcome>;

/// The sort-key prefix of a job's task items.
const TASK_PREFIX: &str = "TASK#";

pub(super) fn job_partition(job_id: &JobId) -> String {
    format!("JOB#{job_id}")
}

fn task_key(job_id: &JobId, task_id: &str) -> Item {
    key(job_partition(job_id), &format!("{TASK_PREFIX}{task_id}"))
}

/// A delivery's hold on one task of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLease {
    pub task_id: String,
    /// A random id per claim: two copies of one task never hold the same lease.
    holder: String,
    /// The checkpoints this lease has recorded on the task item.
    checkpoints: u32,
}

/// What a claim on a task found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskClaim {
    /// The task is this delivery's to run until it gives the lease back.
    Granted(TaskLease),
    /// Another delivery runs it; its lease ends at this moment (epoch ms) at the latest.
    HeldUntil(i64),
    /// The task has finished, having removed and rewritten this in all: nothing to run (its
    /// end may still be owed to the job item, see [`ControlStore::complete_task`]).
    Done(Outcome),
}

/// How a task item stands, read consistently.
enum TaskState {
    Finished(Outcome),
    Held(i64),
    Free,
}

/// What a task item says the task removed and rewrote, over all its runs.
fn task_outcome(item: &Item) -> Outcome {
    let read = |name| number(item, name).and_then(|n| u64::try_from(n).ok());
    Outcome {
        removed: read("removed").unwrap_or(0),
        rewritten: read("rewritten").unwrap_or(0),
    }
}

/// Gives `update` the values of `ADD removed :removed, rewritten :rewritten`.
fn add_outcome(update: UpdateItemFluentBuilder, outcome: Outcome) -> UpdateItemFluentBuilder {
    update
        .expression_attribute_values(":removed", AttributeValue::N(outcome.removed.to_string()))
        .expression_attribute_values(
            ":rewritten",
            AttributeValue::N(outcome.rewritten.to_string()),
        )
}

impl TaskLease {
    /// Adds to `update` the condition that this lease is still held, with no checkpoint
    /// recorded that this delivery does not know of, and the removal of it. `set` is the
    /// update's `SET` clause, if any; `outcome` is added to the task's counts.
    ///
    /// A checkpoint whose outcome is unknown (its call failed past the retries) makes this
    /// refuse rather than count the checkpoint's work a second time.
    fn release(
        &self,
        update: UpdateItemFluentBuilder,
        set: &str,
        outcome: Outcome,
    ) -> UpdateItemFluentBuilder {
        let update = update
            .update_expression(format!(
                "{set} ADD removed :removed, rewritten :rewritten \
                 REMOVE holder, leaseUntil, checkpoint"
            ))
            .condition_expression("holder = :holder AND checkpoint = :checkpoint")
            .expression_attribute_values(":holder", AttributeValue::S(self.holder.clone()))
            .expression_attribute_values(
                ":checkpoint",
                AttributeValue::N(self.checkpoints.to_string()),
            );
        add_outcome(update, outcome)
    }
}

impl ControlStore {
    /// An update of a task's item.
    fn update_task(&self, job_id: &JobId, task_id: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(task_key(job_id, task_id)))
    }

    /// A task's item, read consistently (under 1 KB: read whole).
    async fn read_task(&self, job_id: &JobId, task_id: &str) -> Result<Option<Item>, DynamoError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(task_key(job_id, task_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::call("GetItem", e))?;
        Ok(output.item)
    }

    /// Claims `task_id` of the job until `until_ms`, unless it has finished or another
    /// delivery holds a lease that has not ended by `now_ms`. The task item is created by its
    /// first claim and expires with the job (`expires_at_s`).
    pub async fn claim_task(
        &self,
        job_id: &JobId,
        task_id: &str,
        until_ms: i64,
        now_ms: i64,
        expires_at_s: i64,
    ) -> Result<TaskClaim, DynamoError> {
        // Two rounds: a lease that ends between the refused update and the read is taken on
        // the second; one that is taken again meanwhile is someone else's.
        for _ in 0..2 {
            let lease = TaskLease {
                task_id: task_id.to_owned(),
                holder: format!("{:016x}", rand::random::<u64>()),
                checkpoints: 0,
            };
            let result = self
                .update_task(job_id, task_id)
                .update_expression(
                    "SET holder = :holder, leaseUntil = :until, checkpoint = :zero, \
                     expiresAt = if_not_exists(expiresAt, :expires)",
                )
                // A retried attempt of this same claim (its first answer lost) finds the lease
                // its own: the claim is idempotent.
                .condition_expression(
                    "attribute_not_exists(finishedBy) \
                     AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now OR holder = :holder)",
                )
                .expression_attribute_values(":holder", AttributeValue::S(lease.holder.clone()))
                .expression_attribute_values(":until", AttributeValue::N(until_ms.to_string()))
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
                .expression_attribute_values(
                    ":expires",
                    AttributeValue::N(expires_at_s.to_string()),
                )
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
            match self.task_state(job_id, task_id).await? {
                TaskState::Finished(total) => return Ok(TaskClaim::Done(total)),
                TaskState::Held(until) if until >= now_ms => {
                    return Ok(TaskClaim::HeldUntil(until))
                }
                TaskState::Held(_) | TaskState::Free => {}
            }
        }
        // Taken and ended twice in a row: treat it as held for a moment.
        Ok(TaskClaim::HeldUntil(now_ms))
    }

    /// Gives a lease back without recording anything; a no-op unless this delivery holds it.
    async fn give_back(&self, job_id: &JobId, lease: &TaskLease) -> Result<bool, DynamoError> {
        let update = self.update_task(job_id, &lease.task_id);
        let result = lease.release(update, "", Outcome::default()).send().await;
        dynamo::applied("UpdateItem", result)
    }

    /// Renews a lease this delivery still holds until `until_ms` and, in the same update,
    /// adds `done` (what the run did since its last checkpoint) to the task's counts.
    /// `false` when the lease is no longer this delivery's (it ended and another delivery
    /// took the task): nothing was added.
    pub async fn checkpoint_task(
        &self,
        job_id: &JobId,
        lease: &mut TaskLease,
        done: Outcome,
        until_ms: i64,
    ) -> Result<bool, DynamoError> {
        let next = lease.checkpoints + 1;
        let update = self
            .update_task(job_id, &lease.task_id)
            .update_expression(
                "SET leaseUntil = :until, checkpoint = :next \
                 ADD removed :removed, rewritten :rewritten",
            )
            .condition_expression("holder = :holder AND checkpoint = :last")
            .expression_attribute_values(":holder", AttributeValue::S(lease.holder.clone()))
            .expression_attribute_values(":until", AttributeValue::N(until_ms.to_string()))
            .expression_attribute_values(":last", AttributeValue::N(lease.checkpoints.to_string()))
            .expression_attribute_values(":next", AttributeValue::N(next.to_string()));
        let result = add_outcome(update, done).send().await;
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

    /// Adds what a run did since its last checkpoint to the task's counts and gives its lease
    /// back: the task goes on in a continuation, or in a retry if the run failed. `false` when
    /// the lease was no longer this delivery's (it outlived it), and nothing was added.
    pub(super) async fn release_task(
        &self,
        job_id: &JobId,
        lease: &TaskLease,
        outcome: Outcome,
    ) -> Result<bool, DynamoError> {
        let update = self.update_task(job_id, &lease.task_id);
        let result = lease.release(update, "", outcome).send().await;
        dynamo::applied("UpdateItem", result)
    }

    /// Marks the task finished, adding what the run did since its last checkpoint and giving
    /// its lease back, in one update conditioned on the lease; returns what the task removed and
    /// rewrote over all its runs. `None` when the lease was no longer this delivery's. A repeat
    /// of this very update (its answer lost) is recognised as applied: the item names this lease
    /// as the one that finished it.
    pub(super) async fn finish_task(
        &self,
        job_id: &JobId,
        lease: &TaskLease,
        outcome: Outcome,
    ) -> Result<Option<Outcome>, DynamoError> {
        let update = self.update_task(job_id, &lease.task_id);
        let result = lease
            .release(update, "SET finishedBy = :holder", outcome)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                return Ok(Some(
                    output.attributes.as_ref().map_or(outcome, task_outcome),
                ))
            }
            Err(error) if dynamo::is_conditional_check_failed(&error) => {}
            Err(error) => return Err(DynamoError::call("UpdateItem", error)),
        }
        Ok(self
            .read_task(job_id, &lease.task_id)
            .await?
            .filter(|item| string(item, "finishedBy").as_deref() == Some(&lease.holder))
            .map(|item| task_outcome(&item)))
    }

    /// The number of the last checkpoint of `lease`, read consistently, if it is still held.
    async fn checkpoint_held(
        &self,
        job_id: &JobId,
        lease: &TaskLease,
    ) -> Result<Option<u32>, DynamoError> {
        let Some(item) = self.read_task(job_id, &lease.task_id).await? else {
            return Ok(None);
        };
        if string(&item, "holder").as_deref() != Some(&lease.holder) {
            return Ok(None);
        }
        Ok(number(&item, "checkpoint").and_then(|n| u32::try_from(n).ok()))
    }

    /// The task's state, read consistently.
    async fn task_state(&self, job_id: &JobId, task_id: &str) -> Result<TaskState, DynamoError> {
        let Some(item) = self.read_task(job_id, task_id).await? else {
            return Ok(TaskState::Free);
        };
        if item.contains_key("finishedBy") {
            return Ok(TaskState::Finished(task_outcome(&item)));
        }
        Ok(match number(&item, "leaseUntil") {
            Some(until) => TaskState::Held(until),
            None => TaskState::Free,
        })
    }

    /// What the job's tasks removed and rewrote, per feature: the succeeded tasks' totals on the
    /// job item and, while some task of a running or ended job has not succeeded, what the
    /// others' items count so far, read consistently in one Query of the job's task items (a
    /// 1 MB page holds ~7,000). A task that succeeds between the job's read and this Query is
    /// counted once: from its item, since the job read does not list it as succeeded.
    pub async fn job_counts(&self, job: &JobView) -> Result<Counts, DynamoError> {
        let mut counts = job.succeeded_items.clone();
        // A queued job has no task items yet: the first delivery marks it running first.
        if job.succeeded.len() >= job.tasks_count || job.status == JobStatus::Queued {
            return Ok(counts);
        }
        let items = dynamo::query_all(
            &self.client,
            &self.table,
            &job_partition(&job.job_id),
            TASK_PREFIX,
            true,
        )
        .await?;
        for item in &items {
            let Some(task_id) =
                string(item, "sk").and_then(|sk| sk.strip_prefix(TASK_PREFIX).map(str::to_owned))
            else {
                continue;
            };
            if job.succeeded.contains(&task_id) {
                continue;
            }
            if let Some((_, kind)) = parse_task_id(&task_id) {
                *counts.entry(kind).or_default() += task_outcome(item);
            }
        }
        Ok(counts)
    }
}
