//! The erasure engine: follows a user's reference items of one feature, in the job's scope, and
//! carries out what the feature's deleter decides for each entity they lead to.
//!
//! Every step is idempotent and ordered so that a crash at any point leaves the user's own
//! reference in place until the entity it leads to is dealt with: a retry finds it again.
//! The order for a removal is: the other users' references to the entity and to the entities
//! under it, then the entities under it, then the entity, then the user's own reference.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::FuturesUnordered;
use futures::{stream, StreamExt, TryStreamExt};
use serde::de::Error as _;

use super::entity::{
    annotation_of_comment_key, reference_kind_prefix, reference_prefix, Entity, Key, Tenant,
};
use super::{entity_item, reference_keys, DataStore, StoreError};
use crate::domain::ids::{OrganizationId, UserId};
use crate::domain::task::TaskKind;
use crate::dynamo::{self, DynamoError, Item};
use crate::features::{Deleter, Effect};

/// References read and dealt with at a time (BatchGetItem's limit).
const PAGE: i32 = 100;
/// Pages of one task dealt with at once.
const PAGES_IN_FLIGHT: usize = 4;
/// Subtree reads and annotation sweeps in flight at once.
const READ_CONCURRENCY: usize = 16;
/// Rewrites in flight at once.
const REWRITE_CONCURRENCY: usize = 16;
/// Attempts at a rewrite that keeps meeting a concurrent writer.
const REWRITE_ATTEMPTS: u32 = 20;

/// What erasing (or previewing) one feature of one user did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub removed: u64,
    pub rewritten: u64,
}

impl std::ops::AddAssign for Outcome {
    fn add_assign(&mut self, other: Self) {
        self.removed += other.removed;
        self.rewritten += other.rewritten;
    }
}

/// How far one pass of erasure got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub outcome: Outcome,
    /// `None` when the pass went through its whole scope; otherwise it stopped at its
    /// deadline, and the next pass starts at this position of the scope (see
    /// [`DataStore::erase_until`]).
    pub resume_at: Option<usize>,
}

impl Pass {
    pub fn complete(&self) -> bool {
        self.resume_at.is_none()
    }
}

/// A reference item, read.
struct Reference {
    key: Key,
    target: Key,
}

fn parse_reference(item: &Item) -> Option<Reference> {
    let string = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    };
    Some(Reference {
        key: dynamo::item_key(item)?,
        target: Key {
            pk: string("targetPk")?,
            sk: string("targetSk")?,
        },
    })
}

/// An entity as read, with the version its rewrites are conditioned on.
struct Stored {
    entity: Entity,
    version: Option<u64>,
}

fn parse_stored(item: Item) -> Result<(Key, Stored), DynamoError> {
    let version = match item.get("version") {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    };
    let key = dynamo::item_key(&item)
        .ok_or_else(|| DynamoError::Shape(serde_dynamo::Error::custom("item without a key")))?;
    let entity = serde_dynamo::from_item(item).map_err(DynamoError::Shape)?;
    Ok((key, Stored { entity, version }))
}

/// The sort-key prefixes of a user's references of one feature in a scope.
fn scope_prefixes(deleter: &dyn Deleter, organizations: &[OrganizationId]) -> Vec<String> {
    if organizations.is_empty() {
        vec![reference_kind_prefix(deleter.kind())]
    } else {
        organizations
            .iter()
            .map(|o| reference_prefix(deleter.kind(), Some(o.as_str())))
            .collect()
    }
}

/// An entity to remove, with the entities under it.
struct Removal {
    key: Key,
    entity: Entity,
    children: Vec<(Key, Entity)>,
}

/// What one page of references comes to, before anything is written.
#[derive(Default)]
struct PagePlan {
    removals: Vec<Removal>,
    /// Entities to rewrite: key, the version read, the new entity.
    rewrites: Vec<(Key, Option<u64>)>,
    /// The user's own references of the page, which go last.
    own_references: Vec<Key>,
    /// Annotations of comments already gone (a crashed earlier attempt removed them): still to
    /// be swept if they have no comment left.
    unswept: Vec<Key>,
}

impl DataStore {
    /// Erases one feature of `user` within `organizations` (all when empty), to the end.
    pub async fn erase(
        &self,
        tenant: &Tenant,
        user: &UserId,
        deleter: &dyn Deleter,
        organizations: &[OrganizationId],
    ) -> Result<Outcome, StoreError> {
        let pass = self
            .erase_until(tenant, user, deleter, organizations, 0, None)
            .await?;
        Ok(pass.outcome)
    }

    /// Erases like [`DataStore::erase`], from position `from` of the scope (the index of an
    /// organization in `organizations`; 0 when unscoped), stopping between pages once
    /// `deadline` has passed. Work done is never undone: the references dealt with are gone.
    ///
    /// Every pass makes progress, whatever the deadline: it stops only after a page that held
    /// references, and a position it reports is past every organization it finished. So a
    /// chain of passes, each resuming where the last stopped, always reaches the end, even
    /// when every deadline has already passed (an organization with nothing left costs one
    /// empty Query and is never read again by the chain).
    pub async fn erase_until(
        &self,
        tenant: &Tenant,
        user: &UserId,
        deleter: &dyn Deleter,
        organizations: &[OrganizationId],
        from: usize,
        deadline: Option<Instant>,
    ) -> Result<Pass, StoreError> {
        let mut outcome = Outcome::default();
        let mut pages_with_work = 0;
        let mut resume_at = None;
        let pk = tenant.user_partition(user.as_str());
        // Pages are read one after another (each starts where the last ended) and dealt with
        // several at once: their references are distinct, and every write is idempotent.
        let mut in_flight = FuturesUnordered::new();
        let prefixes = scope_prefixes(deleter, organizations);
        'prefixes: for (position, prefix) in prefixes.iter().enumerate().skip(from) {
            let mut start = None;
            loop {
                if pages_with_work > 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                    // The pages of this prefix read so far are dealt with before the pass
                    // returns, so resuming at the prefix's start skips nothing.
                    resume_at = Some(position);
                    break 'prefixes;
                }
                let (references, next) = self.next_references(&pk, prefix, start).await?;
                if !references.is_empty() {
                    pages_with_work += 1;
                    in_flight.push(async move {
                        let plan = self.plan_page(user, deleter, references).await?;
                        self.carry_out(tenant, user, deleter, plan).await
                    });
                }
                while in_flight.len() >= PAGES_IN_FLIGHT {
                    if let Some(done) = in_flight.next().await {
                        outcome += done?;
                    }
                }
                match next {
                    Some(next) => start = Some(next),
                    None => break,
                }
            }
        }
        while let Some(done) = in_flight.next().await {
            outcome += done?;
        }
        Ok(Pass { outcome, resume_at })
    }

    /// Counts what [`DataStore::erase`] would remove and rewrite, changing nothing.
    /// `counted` carries the entities earlier previews of the same user already counted as
    /// removed: two features can reach one entity (a user's own view on an annotation that
    /// the removal of their comment empties), and each entity is counted once, by the first.
    pub async fn preview(
        &self,
        tenant: &Tenant,
        user: &UserId,
        deleter: &dyn Deleter,
        organizations: &[OrganizationId],
        counted: &mut HashSet<Key>,
    ) -> Result<Outcome, StoreError> {
        let mut outcome = Outcome::default();
        let pk = tenant.user_partition(user.as_str());
        for prefix in scope_prefixes(deleter, organizations) {
            let mut start = None;
            loop {
                let (plan, next) = self.next_plan(user, deleter, &pk, &prefix, start).await?;
                outcome.rewritten += plan.rewrites.len() as u64;
                let mut annotations = BTreeSet::new();
                for removal in &plan.removals {
                    let keys = std::iter::once(&removal.key)
                        .chain(removal.children.iter().map(|(k, _)| k));
                    for key in keys {
                        if counted.insert(key.clone()) {
                            outcome.removed += 1;
                        }
                    }
                    annotations.extend(removal.entity.parent_annotation(tenant));
                }
                for annotation in annotations {
                    let under = self.entities_under(&annotation).await?;
                    let comments_left = under
                        .iter()
                        .any(|(k, e)| matches!(e, Entity::Comment(_)) && !counted.contains(k));
                    if !comments_left && counted.insert(annotation) {
                        for (key, _) in under {
                            if counted.insert(key) {
                                outcome.removed += 1;
                            }
                        }
                        outcome.removed += 1;
                    }
                }
                match next {
                    Some(next) => start = Some(next),
                    None => break,
                }
            }
        }
        Ok(outcome)
    }

    /// How many of the user's references of this feature are left in the scope, read
    /// consistently: zero is the evidence that the feature's erasure is complete.
    pub async fn remaining_references(
        &self,
        tenant: &Tenant,
        user: &UserId,
        deleter: &dyn Deleter,
        organizations: &[OrganizationId],
    ) -> Result<usize, StoreError> {
        let pk = tenant.user_partition(user.as_str());
        let mut remaining = 0;
        for prefix in scope_prefixes(deleter, organizations) {
            let page = dynamo::query_prefix(&self.client, &self.table, &pk, &prefix, 1, None, true)
                .await?;
            remaining += page.items.len();
        }
        Ok(remaining)
    }

    /// Reads one page of references under `prefix`; returns where the next page starts.
    async fn next_references(
        &self,
        pk: &str,
        prefix: &str,
        start: Option<Item>,
    ) -> Result<(Vec<Reference>, Option<Item>), StoreError> {
        let page =
            dynamo::query_prefix(&self.client, &self.table, pk, prefix, PAGE, start, false).await?;
        let references = page.items.iter().filter_map(parse_reference).collect();
        Ok((references, page.next))
    }

    /// Reads one page of references under `prefix` and plans it; returns where the next
    /// page starts.
    async fn next_plan(
        &self,
        user: &UserId,
        deleter: &dyn Deleter,
        pk: &str,
        prefix: &str,
        start: Option<Item>,
    ) -> Result<(PagePlan, Option<Item>), StoreError> {
        let (references, next) = self.next_references(pk, prefix, start).await?;
        let plan = self.plan_page(user, deleter, references).await?;
        Ok((plan, next))
    }

    async fn plan_page(
        &self,
        user: &UserId,
        deleter: &dyn Deleter,
        references: Vec<Reference>,
    ) -> Result<PagePlan, StoreError> {
        let targets: Vec<Key> = references.iter().map(|r| r.target.clone()).collect();
        let mut stored: HashMap<Key, Stored> = HashMap::new();
        for item in dynamo::batch_get(&self.client, &self.table, &targets, false).await? {
            let (key, entity) = parse_stored(item)?;
            stored.insert(key, entity);
        }
        let mut plan = PagePlan::default();
        let mut removals = Vec::new();
        for reference in references {
            plan.own_references.push(reference.key);
            let Some(target) = stored.remove(&reference.target) else {
                // Only the comments feature removes comments, so only its retry sweeps.
                if deleter.kind() == TaskKind::Comments {
                    plan.unswept
                        .extend(annotation_of_comment_key(&reference.target));
                }
                continue;
            };
            match deleter.effect(&target.entity, user) {
                Effect::Keep => {}
                Effect::Rewrite(_) => plan.rewrites.push((reference.target, target.version)),
                Effect::Remove => removals.push((reference.target, target.entity)),
            }
        }
        // The subtrees of a page's removals are read at once, not one after another.
        plan.removals = stream::iter(removals)
            .map(|(key, entity)| async move {
                let children = if entity.has_children() {
                    self.entities_under(&key).await?
                } else {
                    Vec::new()
                };
                Ok::<_, StoreError>(Removal {
                    key,
                    entity,
                    children,
                })
            })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(plan)
    }

    /// The entities that sort under `parent` in its partition.
    async fn entities_under(&self, parent: &Key) -> Result<Vec<(Key, Entity)>, StoreError> {
        let prefix = format!("{}#", parent.sk);
        let items = dynamo::query_all(&self.client, &self.table, &parent.pk, &prefix, true).await?;
        items
            .into_iter()
            .map(|item| parse_stored(item).map(|(k, s)| (k, s.entity)))
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)
    }

    async fn carry_out(
        &self,
        tenant: &Tenant,
        user: &UserId,
        deleter: &dyn Deleter,
        plan: PagePlan,
    ) -> Result<Outcome, StoreError> {
        let own: HashSet<&Key> = plan.own_references.iter().collect();
        let mut outcome = Outcome::default();

        outcome.removed += self.remove(tenant, &plan.removals, &own).await?;

        let rewritten: Vec<bool> = stream::iter(&plan.rewrites)
            .map(|(key, version)| self.rewrite(tenant, user, deleter, key.clone(), *version))
            .buffer_unordered(REWRITE_CONCURRENCY)
            .try_collect()
            .await?;
        outcome.rewritten += rewritten.into_iter().filter(|r| *r).count() as u64;

        let annotations: BTreeSet<Key> = plan
            .removals
            .iter()
            .filter_map(|removal| removal.entity.parent_annotation(tenant))
            .chain(plan.unswept.iter().cloned())
            .collect();
        let swept: Vec<u64> = stream::iter(&annotations)
            .map(|annotation| self.remove_if_empty(tenant, annotation, &own))
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        outcome.removed += swept.into_iter().sum::<u64>();

        let own_deletes = plan
            .own_references
            .iter()
            .map(dynamo::delete_request)
            .collect();
        dynamo::batch_write(&self.client, &self.table, own_deletes).await?;
        Ok(outcome)
    }

    /// Removes entities and everything under them, in the crash-safe order; returns how many
    /// entities went. References in `keep_for_last` are left for the caller to delete.
    async fn remove(
        &self,
        tenant: &Tenant,
        removals: &[Removal],
        keep_for_last: &HashSet<&Key>,
    ) -> Result<u64, StoreError> {
        if removals.is_empty() {
            return Ok(0);
        }
        let mut references = Vec::new();
        let mut children = Vec::new();
        let mut targets = Vec::new();
        for removal in removals {
            for (child_key, child) in &removal.children {
                references.extend(reference_keys(tenant, child));
                children.push(child_key.clone());
            }
            references.extend(reference_keys(tenant, &removal.entity));
            targets.push(removal.key.clone());
        }
        references.retain(|r| !keep_for_last.contains(r));
        let deletes = references.iter().map(dynamo::delete_request).collect();
        dynamo::batch_write(&self.client, &self.table, deletes).await?;
        // Entities are deleted one by one, asking for what was there: two tasks can reach one
        // entity at once (a cascade and the entity's own feature), and only the one whose delete
        // found it counts it, so the job's counts are exact.
        let mut count = 0;
        for phase in [children, targets] {
            count += dynamo::delete_each_counting(&self.client, &self.table, &phase).await?;
        }
        Ok(count)
    }

    /// Removes an annotation that has no comment left, with the views under it.
    async fn remove_if_empty(
        &self,
        tenant: &Tenant,
        annotation: &Key,
        keep_for_last: &HashSet<&Key>,
    ) -> Result<u64, StoreError> {
        let under = self.entities_under(annotation).await?;
        if under.iter().any(|(_, e)| matches!(e, Entity::Comment(_))) {
            return Ok(0);
        }
        let item = dynamo::batch_get(
            &self.client,
            &self.table,
            std::slice::from_ref(annotation),
            true,
        )
        .await?;
        let Some(item) = item.into_iter().next() else {
            return Ok(0);
        };
        let (_, stored) = parse_stored(item)?;
        let removal = Removal {
            key: annotation.clone(),
            entity: stored.entity,
            children: under,
        };
        self.remove(tenant, &[removal], keep_for_last).await
    }

    /// Rewrites the entity at `key` as the deleter says, conditioned on the version read, so a
    /// concurrent rewrite (another user's task on the same comment) is never lost: on conflict
    /// it reads again and decides again. Returns whether anything was rewritten.
    async fn rewrite(
        &self,
        tenant: &Tenant,
        user: &UserId,
        deleter: &dyn Deleter,
        key: Key,
        mut version: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut current: Option<Entity> = None;
        for _ in 0..REWRITE_ATTEMPTS {
            let entity = match current.take() {
                Some(entity) => entity,
                None => {
                    let items = dynamo::batch_get(
                        &self.client,
                        &self.table,
                        std::slice::from_ref(&key),
                        true,
                    )
                    .await?;
                    let Some(item) = items.into_iter().next() else {
                        return Ok(false);
                    };
                    let (_, stored) = parse_stored(item)?;
                    version = stored.version;
                    stored.entity
                }
            };
            let Effect::Rewrite(new) = deleter.effect(&entity, user) else {
                return Ok(false);
            };
            let mut item = entity_item(tenant, &new)?;
            let next = version.unwrap_or(0) + 1;
            item.insert("version".into(), AttributeValue::N(next.to_string()));
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item));
            put = match version {
                None => put
                    .condition_expression("attribute_exists(pk) AND attribute_not_exists(version)"),
                Some(v) => put
                    .condition_expression("version = :v")
                    .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
            };
            match put.send().await {
                Ok(_) => {
                    let kept: HashSet<Key> = reference_keys(tenant, &new).into_iter().collect();
                    let gone: Vec<_> = reference_keys(tenant, &entity)
                        .into_iter()
                        .filter(|r| !kept.contains(r))
                        .map(|r| dynamo::delete_request(&r))
                        .collect();
                    dynamo::batch_write(&self.client, &self.table, gone).await?;
                    return Ok(true);
                }
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
                {
                    continue;
                }
                Err(error) => return Err(DynamoError::call("PutItem", error).into()),
            }
        }
        Err(StoreError::Contention)
    }
}
