//! Task items: one small item per task of a job (`JOB#<jobId>` / `TASK#<taskId>`), holding the
//! task's lease, its open pages and its counts. The updates a running task makes never touch
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
//! The task item also holds the *open pages* of the run that holds the lease: each page's
//! [`Intent`] is stored before the page writes anything, and removed, in the same update that
//! adds the page's count, once its writes are done. A run that dies leaves its open pages; the
//! next claim takes them over ([`TaskLease::inherited`]) and the worker counts them from what
//! is left (DESIGN §3, "Exact counts"), so a run's death costs no count.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{key, number, string, ControlStore, JobView};
use crate::domain::ids::JobId;
use crate::domain::job::JobStatus;
use crate::domain::task::{parse_task_id, Outcome, TaskKind};
use crate::dynamo::{self, DynamoError, Item};
use crate::erase::Intent;

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

/// The attribute-name prefix of a task item's open pages.
const PAGE_PREFIX: &str = "page_";

/// A delivery's hold on one task of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLease {
    pub task_id: String,
    /// A random id per claim: two copies of one task never hold the same lease.
    holder: String,
    /// The pages a run that held the task before left open: it died before closing them.
    pub inherited: Vec<OpenPage>,
}

/// A page a run opened on the task item and has not closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPage {
    /// Its attribute on the task item, and the claimant its contested entities were claimed
    /// by (unique: it holds its lease's random id).
    pub name: String,
    pub intent: Intent,
}

impl TaskLease {
    /// The name of this lease's page number `page`.
    pub fn page_name(&self, page: u32) -> String {
        format!("{PAGE_PREFIX}{}_{page}", self.holder)
    }
}

/// An intent as a task item's attribute: a map of the page's reference range and its sets
/// (empty sets are left out: DynamoDB stores none).
fn intent_value(intent: &Intent) -> AttributeValue {
    let mut map = HashMap::new();
    if let Some((first, last)) = &intent.references {
        map.insert("first".to_owned(), AttributeValue::S(first.clone()));
        map.insert("last".to_owned(), AttributeValue::S(last.clone()));
    }
    let blobs = |set: &BTreeSet<Vec<u8>>| {
        AttributeValue::Bs(set.iter().map(|h| Blob::new(h.clone())).collect())
    };
    if !intent.removals.is_empty() {
        map.insert("removals".to_owned(), blobs(&intent.removals));
    }
    if !intent.rewrites.is_empty() {
        map.insert("rewrites".to_owned(), blobs(&intent.rewrites));
    }
    if !intent.groups.is_empty() {
        map.insert(
            "groups".to_owned(),
            AttributeValue::Ss(intent.groups.iter().cloned().collect()),
        );
    }
    AttributeValue::M(map)
}

/// The intent an attribute holds ([`intent_value`]).
fn parse_intent(value: &AttributeValue) -> Option<Intent> {
    let map = value.as_m().ok()?;
    let text = |name: &str| map.get(name).and_then(|v| v.as_s().ok()).cloned();
    let blobs = |name: &str| {
        map.get(name)
            .and_then(|v| v.as_bs().ok())
            .map(|set| set.iter().map(|b| b.as_ref().to_vec()).collect())
            .unwrap_or_default()
    };
    Some(Intent {
        references: text("first").zip(text("last")),
        removals: blobs("removals"),
        rewrites: blobs("rewrites"),
        groups: map
            .get("groups")
            .and_then(|v| v.as_ss().ok())
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default(),
    })
}

/// The pages a task item holds open.
fn open_pages(item: &Item) -> Vec<OpenPage> {
    let mut pages: Vec<OpenPage> = item
        .iter()
        .filter(|(name, _)| name.starts_with(PAGE_PREFIX))
        .filter_map(|(name, value)| {
            Some(OpenPage {
                name: name.clone(),
                intent: parse_intent(value)?,
            })
        })
        .collect();
    pages.sort_by(|a, b| a.name.cmp(&b.name));
    pages
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
    /// Adds to `update` the condition that this lease is still held, and `also`, if any.
    fn held(&self, update: UpdateItemFluentBuilder, also: &str) -> UpdateItemFluentBuilder {
        let condition = match also {
            "" => "holder = :holder".to_owned(),
            also => format!("holder = :holder AND {also}"),
        };
        update
            .condition_expression(condition)
            .expression_attribute_values(":holder", AttributeValue::S(self.holder.clone()))
    }

    /// Adds to `update` the condition that this lease is still held, and the removal of it.
    /// `set` is the update's `SET` clause, if any.
    fn release(&self, update: UpdateItemFluentBuilder, set: &str) -> UpdateItemFluentBuilder {
        self.held(
            update.update_expression(format!("{set} REMOVE holder, leaseUntil")),
            "",
        )
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
    /// first claim and expires with the job (`expires_at_s`). A lease granted comes with the
    /// pages an earlier run left open ([`TaskLease::inherited`]): the claim's update returns
    /// the item as it was.
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
            let mut lease = TaskLease {
                task_id: task_id.to_owned(),
                holder: format!("{:016x}", rand::random::<u64>()),
                inherited: Vec::new(),
            };
            let result = self
                .update_task(job_id, task_id)
                .update_expression(
                    "SET holder = :holder, leaseUntil = :until, \
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
                .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
                .expression_attribute_values(
                    ":expires",
                    AttributeValue::N(expires_at_s.to_string()),
                )
                .return_values(ReturnValue::AllOld)
                .send()
                .await;
            match result {
                Ok(output) => {
                    lease.inherited = output
                        .attributes
                        .as_ref()
                        .map(open_pages)
                        .unwrap_or_default();
                    return Ok(TaskClaim::Granted(lease));
                }
                Err(error) if dynamo::is_conditional_check_failed(&error) => {}
                Err(error) => {
                    // The claim may have been applied and its answer lost: give it back, or
                    // the task would wait a whole term for a holder that never was. (Its
                    // retry reads the open pages again: they are still there.)
                    if let Err(release) = self.release_task(job_id, &lease).await {
                        tracing::warn!(
                            error = &release as &dyn std::error::Error,
                            "could not give back a claim whose answer was lost"
                        );
                    }
                    return Err(DynamoError::call("UpdateItem", error));
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

    /// Gives a lease back: the task goes on in a continuation, or in a retry if the run failed
    /// (its open pages stay for the next claim). A no-op, `false`, unless this delivery holds
    /// it (a run that outlived its lease).
    pub(super) async fn release_task(
        &self,
        job_id: &JobId,
        lease: &TaskLease,
    ) -> Result<bool, DynamoError> {
        let update = self.update_task(job_id, &lease.task_id);
        let result = lease.release(update, "").send().await;
        dynamo::applied("UpdateItem", result)
    }

    /// Renews a lease this delivery still holds until `until_ms`. `false` when the lease is no
    /// longer this delivery's (it ended and another delivery took the task).
    pub async fn renew_task(
        &self,
        job_id: &JobId,
        lease: &TaskLease,
        until_ms: i64,
    ) -> Result<bool, DynamoError> {
        let update = self
            .update_task(job_id, &lease.task_id)
            .update_expression("SET leaseUntil = :until")
            .expression_attribute_values(":until", AttributeValue::N(until_ms.to_string()));
        let result = lease.held(update, "").send().await;
        dynamo::applied("UpdateItem", result)
    }

    /// Stores the intent of the lease's page `page` on the task item, before the page writes
    /// anything. `false` when the lease is no longer this delivery's: the page must not start.
    pub async fn open_page(
        &self,
        job_id: &JobId,
        lease: &TaskLease,
        page: u32,
        intent: &Intent,
    ) -> Result<bool, DynamoError> {
        let update = self
            .update_task(job_id, &lease.task_id)
            .update_expression("SET #page = :intent")
            .expression_attribute_names("#page", lease.page_name(page))
            .expression_attribute_values(":intent", intent_value(intent));
        let result = lease.held(update, "").send().await;
        dynamo::applied("UpdateItem", result)
    }

    /// Closes open pages (`names`: the lease's own, or those it inherited): adds `done`, what
    /// they removed and rewrote, to the task's counts and removes them, in one update
    /// conditioned on the lease and on every page being still open. A repeat of this very
    /// update (its answer lost) is recognised as applied: the lease holds, the pages are gone.
    /// `false` when the lease is no longer this delivery's, and nothing was added.
    pub async fn close_pages(
        &self,
        job_id: &JobId,
        lease: &TaskLease,
        names: &[String],
        done: Outcome,
    ) -> Result<bool, DynamoError> {
        if names.is_empty() {
            return Ok(true);
        }
        let placeholders: Vec<String> = (0..names.len()).map(|i| format!("#p{i}")).collect();
        let still_open: Vec<String> = placeholders
            .iter()
            .map(|p| format!("attribute_exists({p})"))
            .collect();
        let update = self
            .update_task(job_id, &lease.task_id)
            .update_expression(format!(
                "ADD removed :removed, rewritten :rewritten REMOVE {}",
                placeholders.join(", ")
            ));
        let mut update = lease.held(update, &still_open.join(" AND "));
        for (placeholder, name) in placeholders.iter().zip(names) {
            update = update.expression_attribute_names(placeholder, name);
        }
        match dynamo::applied("UpdateItem", add_outcome(update, done).send().await)? {
            true => Ok(true),
            false => Ok(self
                .read_task(job_id, &lease.task_id)
                .await?
                .is_some_and(|item| {
                    string(&item, "holder").as_deref() == Some(&lease.holder)
                        && names.iter().all(|name| !item.contains_key(name))
                })),
        }
    }

    /// Marks the task finished, giving its lease back, in one update conditioned on the lease;
    /// returns what the task removed and rewrote over all its runs. `None` when the lease was
    /// no longer this delivery's. A repeat of this very update (its answer lost) is recognised
    /// as applied: the item names this lease as the one that finished it.
    pub(super) async fn finish_task(
        &self,
        job_id: &JobId,
        lease: &TaskLease,
    ) -> Result<Option<Outcome>, DynamoError> {
        let update = self.update_task(job_id, &lease.task_id);
        let result = lease
            .release(update, "SET finishedBy = :holder")
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => {
                return Ok(Some(
                    output
                        .attributes
                        .as_ref()
                        .map_or_else(Outcome::default, task_outcome),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_intent_reads_back_as_it_was_stored_on_the_task_item() {
        let intent = Intent {
            references: Some(("REF#a".into(), "REF#z".into())),
            removals: [vec![1; 8], vec![2; 8]].into(),
            rewrites: [vec![3; 8]].into(),
            groups: ["0".repeat(32)].into(),
        };
        let lease = TaskLease {
            task_id: "t0.views".into(),
            holder: "00000000000000ff".into(),
            inherited: Vec::new(),
        };
        let item = Item::from([
            ("holder".to_owned(), AttributeValue::S("other".into())),
            (lease.page_name(7), intent_value(&intent)),
            (lease.page_name(8), intent_value(&Intent::default())),
        ]);
        let pages = open_pages(&item);
        assert_eq!(pages.len(), 2, "{pages:?}");
        assert_eq!(pages[0].name, "page_00000000000000ff_7");
        assert_eq!(pages[0].intent, intent);
        assert_eq!(pages[1].intent, Intent::default());
    }
}
