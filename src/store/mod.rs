//! The data store: all DynamoDB access to the collaboration data, through one module, so that
//! every writer keeps the reference items and honours the tombstones that erasure relies on.

pub mod export;
pub mod fixture;
pub mod synthetic;
pub mod tuning;

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use futures::{stream, StreamExt, TryStreamExt};

use crate::domain::entity::{
    reference_key, Entity, Key, Profile, TaggedContact, TOMBSTONE_SORT_KEY,
};
use crate::domain::ids::{OrganizationId, UserId};
use crate::domain::tenant::Tenant;
use crate::dynamo::{self, DynamoError, Item};
use crate::keys::{component, fingerprint};

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
}

impl StoreError {
    fn erased(user_id: &str) -> Self {
        StoreError::UserErased {
            user: fingerprint(user_id),
        }
    }
}

/// The collaboration data store in one DynamoDB table.
#[derive(Clone)]
pub struct DataStore {
    pub(crate) client: Client,
    pub(crate) table: String,
    pub(crate) tuning: tuning::Tuning,
}

/// Parallel single-item writes (tombstones) in flight at once.
const UPDATE_CONCURRENCY: usize = 16;

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
        }
    }

    /// The same store, erasing with `tuning` (how much of a task runs at once).
    pub fn with_tuning(mut self, tuning: tuning::Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// Stores entities with their reference items. Refused whole, before anything is written,
    /// when any of them names a user erased in its scope. A comment's `taggedUserContacts` is
    /// derived here from its `to` and the users' records (from this batch or the store).
    pub async fn write(
        &self,
        tenant: &Tenant,
        mut entities: Vec<Entity>,
    ) -> Result<(), StoreError> {
        self.refuse_erased_users(tenant, &entities).await?;
        self.derive_tagged_contacts(tenant, &mut entities).await?;
        let mut requests = Vec::new();
        for entity in &entities {
            requests.push(dynamo::put_request(entity_item(tenant, entity)?));
            for reference in reference_keys(tenant, entity) {
                requests.push(dynamo::put_request(reference_item(
                    tenant, entity, &reference,
                )));
            }
        }
        dynamo::batch_write(&self.client, &self.table, requests).await?;
        Ok(())
    }

    /// Marks users as erased (in `organizations`, or everywhere when empty): from now on the
    /// write path refuses data naming them there. The tombstone holds only the key hash of the
    /// user. One idempotent update per user, all at once.
    pub async fn mark_erased(
        &self,
        tenant: &Tenant,
        users: &[UserId],
        organizations: &[OrganizationId],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let organization_set: Vec<String> = organizations
            .iter()
            .map(|o| component(o.as_str()))
            .collect();
        let partitions: Vec<String> = users
            .iter()
            .map(|user| tenant.user_partition(user.as_str()))
            .collect();
        stream::iter(partitions)
            .map(|pk| {
                let key = Key {
                    pk,
                    sk: TOMBSTONE_SORT_KEY.to_owned(),
                };
                let mut update = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(dynamo::key_item(&key)))
                    .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
                    .expression_attribute_values(":entity", AttributeValue::S("Tombstone".into()));
                update = if organization_set.is_empty() {
                    update
                        .update_expression(
                            "SET entity = :entity, erasedAt = :now, allOrganizations = :all",
                        )
                        .expression_attribute_values(":all", AttributeValue::Bool(true))
                } else {
                    update
                        .update_expression(
                            "SET entity = :entity, erasedAt = :now ADD organizations :orgs",
                        )
                        .expression_attribute_values(
                            ":orgs",
                            AttributeValue::Ss(organization_set.clone()),
                        )
                };
                async move {
                    update
                        .send()
                        .await
                        .map_err(|e| DynamoError::call("UpdateItem", e))
                }
            })
            .buffer_unordered(UPDATE_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    async fn refuse_erased_users(
        &self,
        tenant: &Tenant,
        entities: &[Entity],
    ) -> Result<(), StoreError> {
        let users: HashSet<&str> = entities.iter().flat_map(Entity::users).collect();
        let keys: Vec<Key> = users
            .iter()
            .map(|user| Key {
                pk: tenant.user_partition(user),
                sk: TOMBSTONE_SORT_KEY.to_owned(),
            })
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

/// Whether a tombstone forbids data in `organization` (`None`: outside any organization).
fn tombstone_covers(tombstone: &Item, organization: Option<&str>) -> bool {
    if matches!(
        tombstone.get("allOrganizations"),
        Some(AttributeValue::Bool(true))
    ) {
        return true;
    }
    match (organization, tombstone.get("organizations")) {
        (Some(org), Some(AttributeValue::Ss(orgs))) => orgs.contains(&component(org)),
        _ => false,
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
