//! The data store: all DynamoDB access to the collaboration data, through one module, so that
//! every writer keeps the reference items and honours the tombstones that erasure relies on.

pub mod export;
pub mod fixture;
pub mod synthetic;
pub mod tombstones;
pub mod tuning;

pub use tombstones::{Release, Tombstone};

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::domain::entity::{reference_key, tombstone_key, Entity, Key, Profile, TaggedContact};
use crate::domain::tenant::Tenant;
use crate::dynamo::{self, DynamoError, Item};
use crate::keys::fingerprint;
use tombstones::tombstone_covers;

/// What can go wrong in the data store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Dynamo(#[from] DynamoError),
    /// The write names a user whose data has been erased (in that scope): refused.
    #[error("user {user} has been erased; the store refuses new data for them")]
    UserErased { user: String },
    #[error("an item kept changing under a rewrite; giving up for now")]
    Contention,
    /// The write could not land within its window after the tombstone check: some of it may
    /// have landed (inside the window), the rest did not. The writer may try again.
    #[error("the write did not land within {0:?} of its tombstone check; try again")]
    WindowPassed(Duration),
    /// An erasure's ledger refused a page: the task's lease ended and another delivery took
    /// the task, so this run must stop.
    #[error("the task's lease ended and another delivery took it")]
    LeaseLost,
}

impl StoreError {
    fn erased(user_id: &str) -> Self {
        StoreError::UserErased {
            user: fingerprint(user_id),
        }
    }
}

/// The bound that closes the race between a writer and an erasure (DESIGN §3 "Writes racing
/// an erasure"). Without transactions, a tombstone check and the write it allows are two calls:
/// a writer that checked just before a job was accepted could land after the job's tasks
/// finished. So a write lands within `land_within` of its check or not at all, and a task
/// verifies its user's data gone no earlier than `verify_after` past the user's tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteWindow {
    pub land_within: Duration,
    /// Longer than `land_within`, by the slack a request the writer gave up on may still
    /// spend in flight, and the clock skew between machines.
    pub verify_after: Duration,
}

impl Default for WriteWindow {
    /// A 25-item BatchWriteItem takes milliseconds; a second covers the SDK's retries of a
    /// throttled one. Two seconds more for a request in flight and for clock skew.
    fn default() -> Self {
        Self {
            land_within: Duration::from_secs(1),
            verify_after: Duration::from_secs(3),
        }
    }
}

/// The collaboration data store in one DynamoDB table.
#[derive(Clone)]
pub struct DataStore {
    pub(crate) client: Client,
    pub(crate) table: String,
    pub(crate) tuning: tuning::Tuning,
    pub(crate) window: WriteWindow,
}

/// A write whose users were found writable at `checked_at`: it lands within the store's
/// window of that moment, or not at all ([`DataStore::check_write`]).
pub struct CheckedWrite {
    tenant: Tenant,
    entities: Vec<Entity>,
    checked_at: Instant,
}

/// Entities written per tombstone check: with their reference items, a few parallel
/// BatchWriteItems, one round trip well inside the write window.
const ENTITIES_PER_CHECK: usize = 100;

/// The DynamoDB item of an entity at its key.
pub(crate) fn entity_item(tenant: &Tenant, entity: &Entity) -> Result<Item, DynamoError> {
    let mut item: Item = serde_dynamo::to_item(entity).map_err(DynamoError::Shape)?;
    item.extend(dynamo::key_item(&entity.key(tenant)));
    Ok(item)
}

/// The reference items an entity needs, one per (user, feature) it names.
pub(crate) fn reference_keys(tenant: &Tenant, entity: &Entity) -> Vec<Key> {
    let target = entity.key(tenant);
    entity
        .references()
        .into_iter()
        .map(|(user, kind)| reference_key(tenant, user, kind, entity.organization_id(), &target))
        .collect()
}

fn reference_item(tenant: &Tenant, entity: &Entity, reference: &Key) -> Item {
    let target = entity.key(tenant);
    let mut item = dynamo::key_item(reference);
    item.insert("entity".into(), AttributeValue::S("Reference".into()));
    item.insert("targetPk".into(), AttributeValue::S(target.pk));
    item.insert("targetSk".into(), AttributeValue::S(target.sk));
    item
}

impl DataStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            tuning: tuning::Tuning::default(),
            window: WriteWindow::default(),
        }
    }

    /// The same store, erasing with `tuning` (how much of a task runs at once).
    pub fn with_tuning(mut self, tuning: tuning::Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// The same store, closing the write race with `window` instead of the default.
    pub fn with_write_window(mut self, window: WriteWindow) -> Self {
        self.window = window;
        self
    }

    pub fn write_window(&self) -> WriteWindow {
        self.window
    }

    /// Stores entities with their reference items. Refused whole, before anything is written,
    /// when any of them names a user erased in its scope. A comment's `taggedUserContacts` is
    /// derived here from its `to` and the users' records (from this batch or the store).
    pub async fn write(&self, tenant: &Tenant, entities: Vec<Entity>) -> Result<(), StoreError> {
        // Groups small enough to land well inside the window, each checked just before it goes.
        for group in entities.chunks(ENTITIES_PER_CHECK) {
            self.check_write(tenant, group.to_vec())
                .await?
                .land(self)
                .await?;
        }
        Ok(())
    }

    /// The first half of a write: refuses it if it names an erased user, and fills in what the
    /// store derives. What it returns must [`CheckedWrite::land`] within the window.
    pub async fn check_write(
        &self,
        tenant: &Tenant,
        mut entities: Vec<Entity>,
    ) -> Result<CheckedWrite, StoreError> {
        let checked_at = Instant::now();
        self.refuse_erased_users(tenant, &entities).await?;
        self.derive_tagged_contacts(tenant, &mut entities).await?;
        Ok(CheckedWrite {
            tenant: tenant.clone(),
            entities,
            checked_at,
        })
    }

    async fn refuse_erased_users(
        &self,
        tenant: &Tenant,
        entities: &[Entity],
    ) -> Result<(), StoreError> {
        let users: HashSet<&str> = entities.iter().flat_map(Entity::users).collect();
        let keys: Vec<Key> = users
            .iter()
            .map(|user| tombstone_key(tenant, user))
            .collect();
        let tombstones: HashMap<String, Item> =
            dynamo::batch_get(&self.client, &self.table, &keys, true)
                .await?
                .into_iter()
                .filter_map(|item| dynamo::item_key(&item).map(|k| (k.pk, item)))
                .collect();
        if tombstones.is_empty() {
            return Ok(());
        }
        for entity in entities {
            for user in entity.users() {
                let Some(tombstone) = tombstones.get(&tenant.user_partition(user)) else {
                    continue;
                };
                if tombstone_covers(tombstone, entity.organization_id()) {
                    return Err(StoreError::erased(user));
                }
            }
        }
        Ok(())
    }

    async fn derive_tagged_contacts(
        &self,
        tenant: &Tenant,
        entities: &mut [Entity],
    ) -> Result<(), StoreError> {
        let mut profiles: HashMap<String, Profile> = entities
            .iter()
            .filter_map(|e| match e {
                Entity::Profile(p) => Some((p.user_id.clone(), p.clone())),
                _ => None,
            })
            .collect();
        let missing: Vec<Key> = entities
            .iter()
            .filter_map(|e| match e {
                Entity::Comment(c) => Some(&c.to),
                _ => None,
            })
            .flatten()
            .filter(|user| !profiles.contains_key(*user))
            .map(|user| Key {
                pk: tenant.user_partition(user),
                sk: "PROFILE".to_owned(),
            })
            .collect();
        if !missing.is_empty() {
            for item in dynamo::batch_get(&self.client, &self.table, &missing, false).await? {
                if let Entity::Profile(p) =
                    serde_dynamo::from_item(item).map_err(DynamoError::Shape)?
                {
                    profiles.insert(p.user_id.clone(), p);
                }
            }
        }
        for entity in entities {
            if let Entity::Comment(comment) = entity {
                comment.tagged_user_contacts = comment
                    .to
                    .iter()
                    .map(|user| {
                        let profile = profiles.get(user);
                        TaggedContact {
                            user_id: user.clone(),
                            name: profile.map(|p| p.name.clone()),
                            email: profile.map(|p| p.email.clone()),
                        }
                    })
                    .collect();
            }
        }
        Ok(())
    }
}

impl CheckedWrite {
    /// Writes the entities and their reference items, all within the window of the check:
    /// a call still unanswered when it closes is abandoned and the write fails; what landed,
    /// landed inside the window. A task that could have missed it verifies after the window
    /// (`WriteWindow::verify_after`). The reference items go first, so that a write cut short
    /// (the window, a crash) never leaves an entity its users' erasure cannot find.
    pub async fn land(self, store: &DataStore) -> Result<(), StoreError> {
        let mut references = Vec::new();
        let mut entities = Vec::new();
        for entity in &self.entities {
            entities.push(dynamo::put_request(entity_item(&self.tenant, entity)?));
            for reference in reference_keys(&self.tenant, entity) {
                references.push(dynamo::put_request(reference_item(
                    &self.tenant,
                    entity,
                    &reference,
                )));
            }
        }
        let within = store.window.land_within;
        let closes = self.checked_at + within;
        if Instant::now() >= closes {
            return Err(StoreError::WindowPassed(within));
        }
        let landing = async {
            dynamo::batch_write(&store.client, &store.table, references).await?;
            dynamo::batch_write(&store.client, &store.table, entities).await
        };
        tokio::time::timeout_at(closes.into(), landing)
            .await
            .map_err(|_| StoreError::WindowPassed(within))??;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::entity::Comment;

    #[test]
    fn entities_round_trip_through_dynamodb_items() {
        let c = Entity::Comment(Comment {
            organization_id: "o".into(),
            document_id: "d".into(),
            annotation_id: "a".into(),
            comment_id: "c".into(),
            from: "a".into(),
            text: "{{b}}".into(),
            to: vec!["b".into()],
            tagged_user_contacts: vec![],
        });
        let item = entity_item(&Tenant::from_api_key("k"), &c).unwrap();
        assert!(item.contains_key("entity"));
        let back: Entity = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back, c);
    }
}
