//! The erasure engine: follows a user's reference items of one feature, in the job's scope, and
//! carries out what the feature's deleter decides for each entity they lead to. It sits above
//! the store (whose table it reads and writes) and the features (whose decisions it runs).
//!
//! Every step is idempotent and ordered so that a crash at any point leaves something in the
//! user's partition that leads a retry back to what is left: the user's own reference stays
//! until the entity it leads to is dealt with, and a *sweep marker* stays until the annotation
//! a removed comment leaves behind has been looked at (see [`DataStore::erase_until`]).
//!
//! What a task removes is counted page by page through a [`Ledger`]: each page's [`Intent`] is
//! written down before the page writes anything and closed with the page's count, so that a
//! run that dies in the middle of a page leaves what its retry needs to count that page's work
//! ([`DataStore::recover`]); a contested entity is counted by whoever claims it first.
//!
//! Calls per entity stay near the floor of a plain BatchWriteItem loop: one Query and one
//! consistent BatchGetItem per page of 100 references, 25-item BatchWriteItems for the deletes,
//! and no read per removed entity. A comment's reactions and the annotation it may leave empty
//! are found by one Query per annotation, once per scope, after the pages (not one per comment).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::FuturesUnordered;
use futures::{stream, StreamExt, TryStreamExt};
use serde::de::Error as _;
use sha2::{Digest, Sha256};

use crate::domain::entity::{
    annotation_of_comment_key, reference_kind_prefix, reference_prefix, Entity, Key,
};

use crate::domain::ids::{OrganizationId, UserId};
use crate::domain::task::{Outcome, TaskKind};
use crate::domain::tenant::Tenant;
use crate::dynamo::{self, DynamoError, Item};
use crate::features::{deleter, Deleter, Effect};
use crate::keys::component;
use crate::store::{entity_item, reference_keys, DataStore, StoreError};

/// References read and dealt with at a time (BatchGetItem's limit).
const PAGE: i32 = 100;
/// Subtree reads (dry runs) and annotation sweeps in flight at once.
const READ_CONCURRENCY: usize = 16;
/// Rewrites in flight at once.
const REWRITE_CONCURRENCY: usize = 16;
/// Attempts at a rewrite that keeps meeting a concurrent writer.
const REWRITE_ATTEMPTS: u32 = 20;
/// Annotations swept between two looks at the deadline.
const SWEEP_CHUNK: usize = 64;
/// The `entity` attribute of a sweep marker.
const SWEEP_MARKER: &str = "Sweep";

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

/// What a pass has removed and rewritten so far: every page adds its count once it is closed.
#[derive(Default)]
struct Tally {
    removed: AtomicU64,
    rewritten: AtomicU64,
}

impl Tally {
    fn outcome(&self) -> Outcome {
        Outcome {
            removed: self.removed.load(Ordering::Relaxed),
            rewritten: self.rewritten.load(Ordering::Relaxed),
        }
    }

    fn add(&self, outcome: Outcome) {
        self.removed.fetch_add(outcome.removed, Ordering::Relaxed);
        self.rewritten
            .fetch_add(outcome.rewritten, Ordering::Relaxed);
    }
}

/// What a page (of references, or an annotation's sweep) is about to remove and rewrite,
/// written down by a [`Ledger`] before the page writes anything: the evidence that lets a
/// retry count the work of a run that died before it closed the page ([`DataStore::recover`]).
/// Small by design (a page of 100 references is 2–4 KB at most): it sits on the task's item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intent {
    /// The sort keys of the first and last of the user's references the page deals with. They
    /// are deleted only once the page is closed, so a recovery reads them again.
    pub references: Option<(String, String)>,
    /// The [`short_hash`]es of the entities the page removes in batches. Only this task
    /// removes them, so one that is gone when its reference is still there was removed by it.
    pub removals: BTreeSet<Vec<u8>>,
    /// The [`short_hash`]es of the entities the page rewrites.
    pub rewrites: BTreeSet<Vec<u8>>,
    /// The [`receipt_group`]s of the contested entities the page claims.
    pub groups: BTreeSet<String>,
}

impl Intent {
    pub fn is_empty(&self) -> bool {
        self.removals.is_empty() && self.rewrites.is_empty() && self.groups.is_empty()
    }
}

/// Where a pass writes down what it is about to do and records what it did, page by page; and
/// who counts an entity more than one task can remove (DESIGN §3 "Exact counts").
///
/// A page is opened (its [`Intent`] stored) before any of its writes, its contested entities
/// are claimed before they are deleted, and it is closed with its count once its writes are
/// done and before the user's references it dealt with are deleted. Whatever a run that dies
/// leaves open, the next run of the task recovers: the intent says what to look at.
pub trait Ledger: Sync {
    /// Whether [`Ledger::claim`] deletes what it claims, so that the engine need not.
    const CLAIM_DELETES: bool = false;

    /// Stores `intent`; returns the page's number, under which it claims and is closed.
    fn open(&self, intent: Intent) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Claims the contested entities at `keys`, all of receipt group `group`, for page `page`,
    /// before they are deleted; returns how many the page counts (those no one claimed first).
    fn claim(
        &self,
        page: u32,
        group: &str,
        keys: &[Key],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Records what page `page` removed and rewrote, and drops its intent, in one step.
    fn close(
        &self,
        page: u32,
        done: Outcome,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The ledger of [`DataStore::erase`] and [`DataStore::erase_until`]: writes nothing down, and
/// counts a contested entity when its delete finds it (`ReturnValues: ALL_OLD`). Exact under
/// concurrency; a crash loses the count of the pages in flight.
struct NoLedger<'a>(&'a DataStore);

impl Ledger for NoLedger<'_> {
    const CLAIM_DELETES: bool = true;

    async fn open(&self, _intent: Intent) -> Result<u32, StoreError> {
        Ok(0)
    }

    async fn claim(&self, _page: u32, _group: &str, keys: &[Key]) -> Result<u64, StoreError> {
        let found = AtomicU64::new(0);
        dynamo::delete_each_counting(&self.0.client, &self.0.table, keys.to_vec(), &found).await?;
        Ok(found.into_inner())
    }

    async fn close(&self, _page: u32, _done: Outcome) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A short hash of an entity's key, to find it among a page's references again: 8 bytes,
/// compared only with the hundred or so targets of one page.
pub fn short_hash(key: &Key) -> Vec<u8> {
    let digest = Sha256::digest(format!("{}\u{0}{}", key.pk, key.sk).as_bytes());
    digest[..8].to_vec()
}

/// The receipt group of a contested entity: its annotation, for the annotation and what lies
/// under it (a comment's reaction, a view), so that a sweep claims everything it removes in
/// one group; else the entity's own key (a notification). A key component (hex).
pub fn receipt_group(key: &Key) -> String {
    let sk = match key.sk.strip_prefix("ANN#") {
        Some(rest) => format!("ANN#{}", rest.split('#').next().unwrap_or_default()),
        None => key.sk.clone(),
    };
    component(&format!("receipt\u{0}{}\u{0}{sk}", key.pk))
}

/// Whose erasure a pass does: one user's feature in a tenant, within a job's organizations.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub tenant: &'a Tenant,
    pub user: &'a UserId,
    pub deleter: &'a dyn Deleter,
    pub organizations: &'a [OrganizationId],
}

/// A reference item, read; or a sweep marker, whose target is an annotation to sweep.
struct Reference {
    key: Key,
    target: Key,
    marker: bool,
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
        marker: string("entity").as_deref() == Some(SWEEP_MARKER),
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

/// Whether more than one task can reach this entity to remove it, so that only a delete that
/// finds it may count it: an entity that goes with its parent (a comment's reaction, an
/// annotation's view, the annotation itself, which every comment author's task may sweep), or
/// one that several users' tasks remove (a notification to one user from another). Every other
/// entity is removed by exactly one task — the one of the single user whose reference says
/// `Remove` — so the task's consistent read of it is its count, and it goes in a batch.
fn contested(entity: &Entity) -> bool {
    if matches!(
        entity,
        Entity::Annotation(_) | Entity::View(_) | Entity::CommentReaction(_)
    ) {
        return true;
    }
    let removers = entity
        .references()
        .into_iter()
        .filter(|(user, kind)| {
            UserId::parse(*user)
                .is_ok_and(|u| matches!(deleter(*kind).effect(entity, &u), Effect::Remove))
        })
        .count();
    removers > 1
}

/// The sweep marker of `annotation` among the references whose key is `reference`: it sorts in
/// the same scope (so the same task, in the same organization, finds it) and differs from
/// every reference key (its hash covers a tag no target key has).
fn sweep_marker(reference: &Key, annotation: &Key) -> Key {
    // A reference's sort key is `REF#<kind>#<scope>#<hash>`: the marker keeps all but the hash.
    let scope_end = reference
        .sk
        .rmatch_indices('#')
        .next()
        .map_or(reference.sk.len(), |(i, _)| i + 1);
    Key {
        pk: reference.pk.clone(),
        sk: format!(
            "{}{}",
            &reference.sk[..scope_end],
            component(&format!(
                "sweep\u{0}{}\u{0}{}",
                annotation.pk, annotation.sk
            ))
        ),
    }
}

fn marker_item(marker: &Key, annotation: &Key) -> Item {
    let mut item = dynamo::key_item(marker);
    item.insert("entity".into(), AttributeValue::S(SWEEP_MARKER.into()));
    item.insert("targetPk".into(), AttributeValue::S(annotation.pk.clone()));
    item.insert("targetSk".into(), AttributeValue::S(annotation.sk.clone()));
    item
}

/// What a page of references is about to do: its first and last reference, the targets it
/// removes in batches and rewrites, and the receipt groups of its contested removals.
fn page_intent(plan: &PagePlan) -> Intent {
    let mut intent = Intent {
        references: plan
            .own_references
            .first()
            .zip(plan.own_references.last())
            .map(|(first, last)| (first.sk.clone(), last.sk.clone())),
        ..Intent::default()
    };
    for removal in &plan.removals {
        if contested(&removal.entity) {
            intent.groups.insert(receipt_group(&removal.key));
        } else {
            intent.removals.insert(short_hash(&removal.key));
        }
    }
    intent
        .rewrites
        .extend(plan.rewrites.iter().map(|(key, _)| short_hash(key)));
    intent
}

/// An entity to rewrite: its key, the version read, and the references (the user's own, of
/// the page) that the rewrite leaves for its page to delete after its close.
struct Rewrite<'a> {
    key: Key,
    version: Option<u64>,
    keep_for_last: &'a HashSet<&'a Key>,
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
    /// Annotations to sweep, each with the marker to store first: of the comments the page
    /// removes, and of comments already gone (a crash, or a delete behind the store's back).
    sweeps: Vec<(Key, Key)>,
    /// Markers an earlier pass stored, met among the references: their annotations to sweep.
    met: Vec<(Key, Key)>,
}

/// The annotations a scope's pass must sweep before it moves on: each has a durable marker.
#[derive(Default)]
struct Sweeps {
    marked: Mutex<HashMap<Key, Key>>,
}

impl Sweeps {
    fn unmarked(&self, wanted: &[(Key, Key)]) -> Vec<(Key, Key)> {
        let marked = self.marked.lock().unwrap_or_else(|p| p.into_inner());
        let mut fresh: Vec<(Key, Key)> = wanted
            .iter()
            .filter(|(annotation, _)| !marked.contains_key(annotation))
            .cloned()
            .collect();
        fresh.sort();
        fresh.dedup();
        fresh
    }

    fn insert(&self, done: impl IntoIterator<Item = (Key, Key)>) {
        self.marked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(done);
    }

    fn into_sorted(self) -> Vec<(Key, Key)> {
        let mut all: Vec<(Key, Key)> = self
            .marked
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .collect();
        all.sort();
        all
    }
}

/// Users previewed at once during a dry run.
const PREVIEW_CONCURRENCY: usize = 16;

impl DataStore {
    /// What a job of `users` would do, per user and feature, writing nothing: the dry run.
    /// Users are previewed at once; one user's features in task order, sharing what they
    /// counted, so that an entity two features reach is counted once, as the job counts it.
    pub async fn preview_job(
        &self,
        tenant: &Tenant,
        users: &[UserId],
        organizations: &[OrganizationId],
        kinds: &[TaskKind],
    ) -> Result<Vec<Vec<(TaskKind, Outcome)>>, StoreError> {
        stream::iter(users)
            .map(|user| async move {
                let mut counted = HashSet::new();
                let mut outcomes = Vec::with_capacity(kinds.len());
                for &kind in kinds {
                    let outcome = self
                        .preview(tenant, user, deleter(kind), organizations, &mut counted)
                        .await?;
                    outcomes.push((kind, outcome));
                }
                Ok::<_, StoreError>(outcomes)
            })
            .buffer_unordered(PREVIEW_CONCURRENCY)
            .try_collect()
            .await
    }

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
    /// `deadline` has passed. Writes no page down: see [`DataStore::erase_recorded`].
    pub async fn erase_until(
        &self,
        tenant: &Tenant,
        user: &UserId,
        deleter: &dyn Deleter,
        organizations: &[OrganizationId],
        from: usize,
        deadline: Option<Instant>,
    ) -> Result<Pass, StoreError> {
        let scope = Scope {
            tenant,
            user,
            deleter,
            organizations,
        };
        self.erase_recorded(scope, from, deadline, &NoLedger(self))
            .await
    }

    /// Erases `scope` from position `from` (the index of an organization in its list; 0 when
    /// unscoped), stopping between pages once `deadline` has passed, each page opened and
    /// closed in `ledger`. Work done is never undone: the references dealt with are gone.
    ///
    /// Each position (one organization's references) is read page by page, several pages
    /// dealt with at once; then the annotations its removed comments may have left empty are
    /// swept, once each. Before a page deletes the user's reference to a comment, a sweep
    /// marker for the comment's annotation is stored among the user's references; the sweep
    /// deletes it last. So a pass that stops (deadline or crash) before its sweep leaves the
    /// markers for the next pass, which meets them in the same range and sweeps them.
    ///
    /// Every pass makes progress, whatever the deadline: it stops only after a page that held
    /// references (markers alone do not count: they are swept first) or after a chunk of
    /// sweeps, and a position it reports is past every organization it finished. So a chain
    /// of passes, each resuming where the last stopped, always reaches the end, even when
    /// every deadline has already passed.
    pub async fn erase_recorded<L: Ledger>(
        &self,
        scope: Scope<'_>,
        from: usize,
        deadline: Option<Instant>,
        ledger: &L,
    ) -> Result<Pass, StoreError> {
        let tally = Tally::default();
        let resume_at = self
            .erase_into(&scope, from, deadline, ledger, &tally)
            .await?;
        Ok(Pass {
            outcome: tally.outcome(),
            resume_at,
        })
    }

    /// The body of [`DataStore::erase_recorded`]: every page adds its count to `tally` once
    /// it is closed, and no page or sweep is dropped in the middle of its writes.
    async fn erase_into<L: Ledger>(
        &self,
        scope: &Scope<'_>,
        from: usize,
        deadline: Option<Instant>,
        ledger: &L,
        tally: &Tally,
    ) -> Result<Option<usize>, StoreError> {
        let Scope {
            tenant,
            user,
            deleter,
            organizations,
        } = *scope;
        let mut progressed = false;
        let past_deadline =
            |progressed: bool| progressed && deadline.is_some_and(|d| Instant::now() >= d);
        let pk = tenant.user_partition(user.as_str());
        let prefixes = scope_prefixes(deleter, organizations);
        for (position, prefix) in prefixes.iter().enumerate().skip(from) {
            let sweeps = Sweeps::default();
            let mut paused = false;
            {
                // Pages are read one after another (each starts where the last ended) and dealt
                // with several at once: their references are distinct, every write idempotent.
                // A failure stops the reading; the pages in flight still end and are counted.
                let mut in_flight = FuturesUnordered::new();
                let mut failure = None;
                let mut start = None;
                loop {
                    if past_deadline(progressed) {
                        // The pages read so far are dealt with before the pass returns, and
                        // their markers stay: resuming at the prefix's start skips nothing.
                        paused = true;
                        break;
                    }
                    let (references, next) = match self.next_references(&pk, prefix, start).await {
                        Ok(page) => page,
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    };
                    progressed |= references.iter().any(|r| !r.marker);
                    if !references.is_empty() {
                        let sweeps = &sweeps;
                        in_flight.push(async move {
                            let plan = self.plan_page(user, deleter, references, false).await?;
                            self.carry_out(tenant, user, deleter, plan, sweeps, ledger, tally)
                                .await
                        });
                    }
                    while in_flight.len() >= self.tuning.pages_in_flight {
                        if let Some(Err(error)) = in_flight.next().await {
                            failure = failure.or(Some(error));
                        }
                    }
                    match next {
                        Some(next) if failure.is_none() => start = Some(next),
                        _ => break,
                    }
                }
                while let Some(page) = in_flight.next().await {
                    if let Err(error) = page {
                        failure = failure.or(Some(error));
                    }
                }
                if let Some(error) = failure {
                    return Err(error);
                }
            }
            if paused {
                return Ok(Some(position));
            }
            for chunk in sweeps.into_sorted().chunks(SWEEP_CHUNK) {
                if past_deadline(progressed) {
                    return Ok(Some(position));
                }
                // One page for the chunk: its intent names every annotation's receipt group.
                let intent = Intent {
                    groups: chunk.iter().map(|(a, _)| receipt_group(a)).collect(),
                    ..Intent::default()
                };
                let page = ledger.open(intent).await?;
                let done = Tally::default();
                let finished = dynamo::settle_all(
                    chunk.iter().map(|(annotation, marker)| {
                        let done = &done;
                        async move {
                            let finished = self
                                .sweep(tenant, annotation, deadline, (page, ledger), done)
                                .await?;
                            Ok::<_, StoreError>(finished.then_some(marker))
                        }
                    }),
                    READ_CONCURRENCY,
                )
                .await?;
                ledger.close(page, done.outcome()).await?;
                tally.add(done.outcome());
                // The markers go last, once their sweeps are done: in batches, not one by one.
                // A sweep stopped at the deadline keeps its marker for the next pass.
                let markers: Vec<_> = finished
                    .iter()
                    .flatten()
                    .map(|marker| dynamo::delete_request(marker))
                    .collect();
                let unfinished = markers.len() < chunk.len();
                dynamo::batch_write(&self.client, &self.table, markers).await?;
                progressed = true;
                if unfinished {
                    return Ok(Some(position));
                }
            }
        }
        Ok(None)
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

    /// What a page whose run died before closing it did, found from what is left (read
    /// consistently): the targets it removed in batches that are gone while the user's
    /// references to them are still there (they go only after the page's close), and the
    /// targets it rewrote that no longer name the user. Its contested removals are counted
    /// from their claims, by the ledger that holds them.
    pub async fn recover(
        &self,
        tenant: &Tenant,
        user: &UserId,
        deleter: &dyn Deleter,
        intent: &Intent,
    ) -> Result<Outcome, StoreError> {
        let mut outcome = Outcome::default();
        let Some((first, last)) = &intent.references else {
            return Ok(outcome);
        };
        let pk = tenant.user_partition(user.as_str());
        let references =
            dynamo::query_between(&self.client, &self.table, &pk, (first, last), true).await?;
        let targets: Vec<(Key, Vec<u8>)> = references
            .iter()
            .filter_map(parse_reference)
            .filter(|reference| !reference.marker)
            .map(|reference| {
                let hash = short_hash(&reference.target);
                (reference.target, hash)
            })
            .filter(|(_, hash)| intent.removals.contains(hash) || intent.rewrites.contains(hash))
            .collect();
        let keys: Vec<Key> = targets.iter().map(|(key, _)| key.clone()).collect();
        let mut stored = HashMap::new();
        for item in dynamo::batch_get(&self.client, &self.table, &keys, true).await? {
            let (key, found) = parse_stored(item)?;
            stored.insert(key, found.entity);
        }
        for (key, hash) in &targets {
            match stored.get(key) {
                None if intent.removals.contains(hash) => outcome.removed += 1,
                Some(entity)
                    if intent.rewrites.contains(hash)
                        && matches!(deleter.effect(entity, user), Effect::Keep) =>
                {
                    outcome.rewritten += 1
                }
                _ => {}
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

    /// Reads one page of references under `prefix` and plans it as a dry run would (with the
    /// entities under each removal); returns where the next page starts.
    async fn next_plan(
        &self,
        user: &UserId,
        deleter: &dyn Deleter,
        pk: &str,
        prefix: &str,
        start: Option<Item>,
    ) -> Result<(PagePlan, Option<Item>), StoreError> {
        let (references, next) = self.next_references(pk, prefix, start).await?;
        let plan = self.plan_page(user, deleter, references, true).await?;
        Ok((plan, next))
    }

    /// Reads a page's targets (consistently: a stale read must never let a task delete its
    /// reference while the entity still names the user) and decides for each. `subtrees` reads
    /// the entities under each removal (dry runs count them); erasure leaves them to the sweep.
    async fn plan_page(
        &self,
        user: &UserId,
        deleter: &dyn Deleter,
        references: Vec<Reference>,
        subtrees: bool,
    ) -> Result<PagePlan, StoreError> {
        let mut plan = PagePlan::default();
        let (markers, references): (Vec<Reference>, Vec<Reference>) =
            references.into_iter().partition(|r| r.marker);
        plan.met = markers.into_iter().map(|m| (m.target, m.key)).collect();
        let targets: Vec<Key> = references.iter().map(|r| r.target.clone()).collect();
        let mut stored: HashMap<Key, Stored> = HashMap::new();
        for item in dynamo::batch_get(&self.client, &self.table, &targets, true).await? {
            let (key, entity) = parse_stored(item)?;
            stored.insert(key, entity);
        }
        let mut removals = Vec::new();
        for reference in references {
            let Some(target) = stored.remove(&reference.target) else {
                // Only the comments feature removes comments, so only its retry sweeps.
                if deleter.kind() == TaskKind::Comments {
                    if let Some(annotation) = annotation_of_comment_key(&reference.target) {
                        let marker = sweep_marker(&reference.key, &annotation);
                        plan.sweeps.push((annotation, marker));
                    }
                }
                plan.own_references.push(reference.key);
                continue;
            };
            match deleter.effect(&target.entity, user) {
                Effect::Keep => {}
                Effect::Rewrite(_) => plan
                    .rewrites
                    .push((reference.target.clone(), target.version)),
                Effect::Remove => {
                    let annotation = match target.entity {
                        Entity::Comment(_) => annotation_of_comment_key(&reference.target),
                        _ => None,
                    };
                    if let Some(annotation) = annotation {
                        let marker = sweep_marker(&reference.key, &annotation);
                        plan.sweeps.push((annotation, marker));
                    }
                    removals.push((reference.target.clone(), target.entity));
                }
            }
            plan.own_references.push(reference.key);
        }
        plan.removals = stream::iter(removals)
            .map(|(key, entity)| async move {
                let children = if subtrees && entity.has_children() {
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

    /// Carries out a page's plan in the crash-safe order, opened and closed in `ledger` when it
    /// removes or rewrites anything; the user's references of the page go after its close.
    #[allow(clippy::too_many_arguments)]
    async fn carry_out<L: Ledger>(
        &self,
        tenant: &Tenant,
        user: &UserId,
        deleter: &dyn Deleter,
        plan: PagePlan,
        sweeps: &Sweeps,
        ledger: &L,
        tally: &Tally,
    ) -> Result<(), StoreError> {
        let own: HashSet<&Key> = plan.own_references.iter().collect();

        // Markers first: once the user's reference to a comment is gone, its marker is what
        // leads a retry to the annotation (and the comment's reactions) left behind.
        // The page's intent is stored meanwhile: both only have to precede the removals.
        let fresh = sweeps.unmarked(&plan.sweeps);
        let puts = fresh
            .iter()
            .map(|(annotation, marker)| dynamo::put_request(marker_item(marker, annotation)))
            .collect();
        let intent = page_intent(&plan);
        let opened = async {
            match intent.is_empty() {
                true => Ok(None),
                false => ledger.open(intent).await.map(Some),
            }
        };
        let (marked, opened) =
            futures::join!(dynamo::batch_write(&self.client, &self.table, puts), opened);
        marked?;
        let opened = opened?;
        sweeps.insert(fresh);
        sweeps.insert(plan.met);

        if let Some(page) = opened {
            let done = Tally::default();
            self.remove(tenant, &plan.removals, &own, page, ledger, &done)
                .await?;
            dynamo::settle_all(
                plan.rewrites.iter().map(|(key, version)| {
                    let rewrite = Rewrite {
                        key: key.clone(),
                        version: *version,
                        keep_for_last: &own,
                    };
                    self.rewrite(tenant, user, deleter, rewrite, &done)
                }),
                REWRITE_CONCURRENCY,
            )
            .await?;
            ledger.close(page, done.outcome()).await?;
            tally.add(done.outcome());
        }

        let own_deletes = plan
            .own_references
            .iter()
            .map(dynamo::delete_request)
            .collect();
        dynamo::batch_write(&self.client, &self.table, own_deletes).await?;
        Ok(())
    }

    /// Removes entities in the crash-safe order (other users' references to them first),
    /// adding to `done` what page `page` counts. References in `keep_for_last` are left for the
    /// caller.
    ///
    /// An entity only one task can remove goes in a batch and is counted as its batch is
    /// applied (the consistent read found it, and the task's lease keeps any other copy from
    /// removing it meanwhile). One that two tasks can reach ([`contested`]) is claimed in the
    /// ledger first, and counted only by the page whose claim came first; every claimant
    /// deletes it (a delete is idempotent), so none waits on another.
    async fn remove<L: Ledger>(
        &self,
        tenant: &Tenant,
        removals: &[Removal],
        keep_for_last: &HashSet<&Key>,
        page: u32,
        ledger: &L,
        done: &Tally,
    ) -> Result<(), StoreError> {
        if removals.is_empty() {
            return Ok(());
        }
        let mut references = Vec::new();
        let mut batched = Vec::new();
        let mut claimed: BTreeMap<String, Vec<Key>> = BTreeMap::new();
        for removal in removals {
            references.extend(reference_keys(tenant, &removal.entity));
            if contested(&removal.entity) {
                claimed
                    .entry(receipt_group(&removal.key))
                    .or_default()
                    .push(removal.key.clone());
            } else {
                batched.push(dynamo::delete_request(&removal.key));
            }
        }
        references.retain(|r| !keep_for_last.contains(r));
        let deletes = references.iter().map(dynamo::delete_request).collect();
        dynamo::batch_write(&self.client, &self.table, deletes).await?;
        let won = dynamo::settle_all(
            claimed
                .iter()
                .map(|(group, keys)| ledger.claim(page, group, keys)),
            READ_CONCURRENCY,
        )
        .await?;
        done.removed
            .fetch_add(won.iter().sum::<u64>(), Ordering::Relaxed);
        let contested_deletes = match L::CLAIM_DELETES {
            true => Vec::new(),
            false => claimed
                .values()
                .flatten()
                .map(dynamo::delete_request)
                .collect(),
        };
        let (batched, contested) = futures::join!(
            dynamo::batch_write_counting(&self.client, &self.table, batched, &done.removed),
            dynamo::batch_write(&self.client, &self.table, contested_deletes),
        );
        batched?;
        contested?;
        Ok(())
    }

    /// Sweeps one annotation whose comments a task removed: the reactions of comments that are
    /// gone, and the annotation with its views once it has no comment left (its marker is the
    /// caller's to delete, after), adding to `done` what it counts: it claims what it removes
    /// under the ledger's page `claims_page`, which the caller opened for its chunk of sweeps.
    /// Returns whether the sweep finished.
    ///
    /// The annotation's subtree is one key range, read consistently `tuning.sweep_page` items
    /// at a time and dealt with page by page: the annotation first, then each comment followed
    /// by its reactions, then the views. So memory and the work between two looks at the
    /// deadline stay bounded whatever the annotation holds (200,000 views are 200 pages, not
    /// one call). Once `deadline` has passed the sweep stops after a page that removed
    /// something, unfinished; the next pass meets the marker and sweeps again from the top,
    /// where what this one removed is gone. The annotation itself goes last, after its views.
    async fn sweep<L: Ledger>(
        &self,
        tenant: &Tenant,
        annotation: &Key,
        deadline: Option<Instant>,
        (claims_page, ledger): (u32, &L),
        done: &Tally,
    ) -> Result<bool, StoreError> {
        let mut itself = None;
        let mut has_comments = false;
        // The sort-key prefix of the last comment read: the reactions under it are its own.
        let mut comment_prefix: Option<String> = None;
        let mut start = None;
        loop {
            // Hash components have a fixed length, so this prefix matches only the annotation
            // and the entities under it.
            let page = dynamo::query_prefix(
                &self.client,
                &self.table,
                &annotation.pk,
                &annotation.sk,
                self.tuning.sweep_page,
                start,
                true,
            )
            .await?;
            let mut removals = Vec::new();
            // Set at the first view the annotation keeps: views sort last, so nothing after it
            // is this sweep's to remove, and the rest of the subtree is not read.
            let mut rest_kept = false;
            for item in page.items {
                let (key, stored) = parse_stored(item)?;
                let remove = match &stored.entity {
                    _ if key == *annotation => {
                        itself = Some(stored.entity);
                        continue;
                    }
                    Entity::Comment(_) => {
                        has_comments = true;
                        comment_prefix = Some(format!("{}#", key.sk));
                        false
                    }
                    Entity::CommentReaction(_) => !comment_prefix
                        .as_deref()
                        .is_some_and(|comment| key.sk.starts_with(comment)),
                    // Views sort after every comment: by now it is known whether any is left.
                    // An annotation already gone is left as it was found, views and all.
                    Entity::View(_) if itself.is_some() && !has_comments => true,
                    Entity::View(_) => {
                        rest_kept = true;
                        break;
                    }
                    _ => false,
                };
                if remove {
                    removals.push(Removal {
                        key,
                        entity: stored.entity,
                        children: Vec::new(),
                    });
                }
            }
            self.remove(
                tenant,
                &removals,
                &HashSet::new(),
                claims_page,
                ledger,
                done,
            )
            .await?;
            if rest_kept {
                break;
            }
            match page.next {
                Some(next) => start = Some(next),
                None => break,
            }
            if !removals.is_empty() && deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
        }
        if let (Some(entity), false) = (itself, has_comments) {
            let removal = Removal {
                key: annotation.clone(),
                entity,
                children: Vec::new(),
            };
            self.remove(
                tenant,
                std::slice::from_ref(&removal),
                &HashSet::new(),
                claims_page,
                ledger,
                done,
            )
            .await?;
        }
        Ok(true)
    }

    /// Rewrites the entity at `rewrite.key` as the deleter says, conditioned on the version
    /// read, so a concurrent rewrite (another user's task on the same comment) is never lost:
    /// on conflict it reads again and decides again. Adds the rewrite to `tally` once the
    /// entity is written, then deletes the references it no longer needs but the caller's.
    async fn rewrite(
        &self,
        tenant: &Tenant,
        user: &UserId,
        deleter: &dyn Deleter,
        rewrite: Rewrite<'_>,
        tally: &Tally,
    ) -> Result<(), StoreError> {
        let Rewrite {
            key,
            mut version,
            keep_for_last,
        } = rewrite;
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
                        return Ok(());
                    };
                    let (_, stored) = parse_stored(item)?;
                    version = stored.version;
                    stored.entity
                }
            };
            let Effect::Rewrite(new) = deleter.effect(&entity, user) else {
                return Ok(());
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
                    tally.rewritten.fetch_add(1, Ordering::Relaxed);
                    let kept: HashSet<Key> = reference_keys(tenant, &new).into_iter().collect();
                    let gone: Vec<_> = reference_keys(tenant, &entity)
                        .into_iter()
                        .filter(|r| !kept.contains(r) && !keep_for_last.contains(r))
                        .map(|r| dynamo::delete_request(&r))
                        .collect();
                    dynamo::batch_write(&self.client, &self.table, gone).await?;
                    return Ok(());
                }
                Err(error) if dynamo::is_conditional_check_failed(&error) => {
                    continue;
                }
                Err(error) => return Err(DynamoError::call("PutItem", error).into()),
            }
        }
        Err(StoreError::Contention)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pk: &str, sk: &str) -> Key {
        Key {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    #[test]
    fn an_annotation_and_everything_under_it_share_one_receipt_group() {
        let annotation = receipt_group(&key("D#1", "ANN#a"));
        assert_eq!(receipt_group(&key("D#1", "ANN#a#C#c#R#r")), annotation);
        assert_eq!(receipt_group(&key("D#1", "ANN#a#V#v")), annotation);
        assert_ne!(receipt_group(&key("D#1", "ANN#b#V#v")), annotation);
        assert_ne!(receipt_group(&key("D#2", "ANN#a")), annotation);
        // Anything else is a group of its own.
        assert_ne!(
            receipt_group(&key("U#1", "NOTE#n")),
            receipt_group(&key("U#1", "NOTE#m"))
        );
    }
}
