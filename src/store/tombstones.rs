//! Tombstones: one item per erased user (in the user's partition, keyed by the hash of their id,
//! never the id) that makes the write path refuse new data naming them (DESIGN §3, §9, §10).
//!
//! A tombstone records who holds it: `holders`, the ids of the jobs whose acceptance wrote it.
//! A job that ends `failed` because its acceptance never finished (its request was answered
//! 503, no retry came) releases its hold; a tombstone whose only holder it was goes, so the user
//! is not cut off for ever by a request that promised nothing. A tombstone written before
//! holders were recorded has none: the first acceptance that finds one marks it `heldForGood`,
//! since the jobs that wrote it are unknown, and no release ever lifts it.

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::{stream, StreamExt, TryStreamExt};

use super::{DataStore, StoreError};
use crate::domain::entity::{tombstone_key, tombstone_key_of_hash, Key};
use crate::domain::ids::{JobId, OrganizationId, UserId};
use crate::domain::tenant::Tenant;
use crate::dynamo::{self, DynamoError, Item};
use crate::keys::component;

/// Parallel single-item writes (tombstones) in flight at once.
const UPDATE_CONCURRENCY: usize = 16;

/// Reads and conditional writes a release tries before it leaves the tombstone for the next
/// sweep: each lost race means an acceptance or another release changed it in between.
const RELEASE_ATTEMPTS: usize = 4;

/// The condition an acceptance's hold needs to take the common path: a new tombstone, or one
/// that records its holders. Else it is older than holders, and is held for good.
const RECORDS_HOLDERS: &str =
    "attribute_not_exists(erasedAt) OR attribute_exists(holders) OR attribute_exists(heldForGood)";

/// What a tombstone forbids (everywhere, or in organizations by key hash), and who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub all_organizations: bool,
    pub organizations: Vec<String>,
    pub erased_at: i64,
    /// The jobs whose acceptance wrote it.
    pub holders: Vec<String>,
    /// Written before holders were recorded: no release may lift it.
    pub held_for_good: bool,
}

impl Tombstone {
    pub(super) fn of_item(item: &Item) -> Self {
        let strings = |name: &str| match item.get(name) {
            Some(AttributeValue::Ss(values)) => values.clone(),
            _ => Vec::new(),
        };
        let flag = |name: &str| matches!(item.get(name), Some(AttributeValue::Bool(true)));
        Self {
            all_organizations: flag("allOrganizations"),
            organizations: strings("organizations"),
            erased_at: match item.get("erasedAt") {
                Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
                _ => 0,
            },
            holders: strings("holders"),
            held_for_good: flag("heldForGood"),
        }
    }

    /// Whether no release may lift it: marked so, or older than holder sets (none recorded).
    fn is_held_for_good(&self) -> bool {
        self.held_for_good || self.holders.is_empty()
    }
}

/// Whether a tombstone forbids data in `organization` (`None`: outside any organization).
pub(super) fn tombstone_covers(tombstone: &Item, organization: Option<&str>) -> bool {
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

/// What a merged tombstone's `erasedAt` becomes.
#[derive(Debug, Clone, Copy)]
enum ErasedAt {
    /// The merge's time: an acceptance.
    Now,
    /// The stored one, if any: a restore of a lifted tombstone.
    KeepStored,
}

/// What a release did to one tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The job was its only holder: the tombstone is gone, the user's new data is accepted.
    Lifted,
    /// Other jobs hold it too, or it is held for good: only the job's hold went.
    Kept,
    /// The job does not hold it (released already, or never written).
    NotHeld,
}

impl DataStore {
    /// Marks users as erased (in `organizations`, or everywhere when empty) on behalf of job
    /// `holder`: from now on the write path refuses data naming them there. The tombstone holds
    /// only the key hash of the user. One idempotent update per user, all at once; a second
    /// only for a tombstone older than holder sets, which is marked held for good.
    pub async fn mark_erased(
        &self,
        tenant: &Tenant,
        users: &[UserId],
        organizations: &[OrganizationId],
        holder: &JobId,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let hold = Tombstone {
            all_organizations: organizations.is_empty(),
            organizations: organizations
                .iter()
                .map(|o| component(o.as_str()))
                .collect(),
            erased_at: now_ms,
            holders: vec![holder.to_string()],
            held_for_good: false,
        };
        stream::iter(users)
            .map(|user| {
                let key = tombstone_key(tenant, user.as_str());
                let hold = &hold;
                async move {
                    let first = self
                        .merge(&key, hold, ErasedAt::Now)
                        .condition_expression(RECORDS_HOLDERS)
                        .send()
                        .await;
                    match first {
                        Ok(_) => Ok(()),
                        Err(error) if dynamo::is_conditional_check_failed(&error) => {
                            let for_good = Tombstone {
                                held_for_good: true,
                                ..hold.clone()
                            };
                            self.merge(&key, &for_good, ErasedAt::Now)
                                .send()
                                .await
                                .map(drop)
                                .map_err(|e| DynamoError::call("UpdateItem", e))
                        }
                        Err(error) => Err(DynamoError::call("UpdateItem", error)),
                    }
                }
            })
            .buffer_unordered(UPDATE_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// The update that merges `tombstone` (its scope, its holders, its mark) into whatever
    /// tombstone is at `key`: nothing the stored one forbids or records is lost.
    fn merge(
        &self,
        key: &Key,
        tombstone: &Tombstone,
        erased_at: ErasedAt,
    ) -> UpdateItemFluentBuilder {
        let mut set = vec!["entity = :entity"];
        set.push(match erased_at {
            ErasedAt::Now => "erasedAt = :at",
            ErasedAt::KeepStored => "erasedAt = if_not_exists(erasedAt, :at)",
        });
        let mut add = Vec::new();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(dynamo::key_item(key)))
            .expression_attribute_values(":entity", AttributeValue::S("Tombstone".into()))
            .expression_attribute_values(":at", AttributeValue::N(tombstone.erased_at.to_string()));
        if tombstone.all_organizations {
            set.push("allOrganizations = :true");
        }
        if tombstone.held_for_good {
            set.push("heldForGood = :true");
        }
        if tombstone.all_organizations || tombstone.held_for_good {
            update = update.expression_attribute_values(":true", AttributeValue::Bool(true));
        }
        for (name, values) in [
            ("organizations", &tombstone.organizations),
            ("holders", &tombstone.holders),
        ] {
            if !values.is_empty() {
                add.push(name);
                update = update.expression_attribute_values(
                    format!(":{name}"),
                    AttributeValue::Ss(values.clone()),
                );
            }
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !add.is_empty() {
            let adds: Vec<String> = add.iter().map(|name| format!("{name} :{name}")).collect();
            expression.push_str(&format!(" ADD {}", adds.join(", ")));
        }
        update.update_expression(expression)
    }

    /// Releases job `holder`'s hold on the tombstones of the users with these key hashes (a
    /// job's `userHashes`) in `tenant`: each one the job alone holds is deleted, the others
    /// only lose the job. Safe to repeat. Each tombstone is read (consistently) and then
    /// changed on the condition that it is still as read, so an acceptance that adds a holder
    /// in between is never lifted.
    pub async fn release_tombstones(
        &self,
        tenant: &Tenant,
        user_hashes: &[String],
        holder: &JobId,
    ) -> Result<Vec<Release>, StoreError> {
        stream::iter(user_hashes)
            .map(|hash| self.release(tombstone_key_of_hash(tenant, hash), holder))
            .buffer_unordered(UPDATE_CONCURRENCY)
            .try_collect()
            .await
    }

    async fn release(&self, key: Key, holder: &JobId) -> Result<Release, StoreError> {
        let job = AttributeValue::S(holder.to_string());
        for _ in 0..RELEASE_ATTEMPTS {
            let read = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(dynamo::key_item(&key)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| DynamoError::call("GetItem", e))?;
            let Some(tombstone) = read.item.as_ref().map(Tombstone::of_item) else {
                return Ok(Release::NotHeld);
            };
            if !tombstone.holders.contains(&holder.to_string()) {
                return Ok(Release::NotHeld);
            }
            let one = AttributeValue::N("1".into());
            let (result, release) = if tombstone.holders.len() == 1 && !tombstone.held_for_good {
                let delete = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(dynamo::key_item(&key)))
                    .condition_expression(
                        "contains(holders, :job) AND size(holders) = :one \
                         AND attribute_not_exists(heldForGood)",
                    )
                    .expression_attribute_values(":job", job.clone())
                    .expression_attribute_values(":one", one)
                    .send()
                    .await;
                (dynamo::applied("DeleteItem", delete)?, Release::Lifted)
            } else {
                // Never empties the set unless the tombstone is held for good: an empty set
                // is no attribute, and would read as a tombstone older than holder sets.
                let update = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(dynamo::key_item(&key)))
                    .update_expression("DELETE holders :holder")
                    .condition_expression(
                        "contains(holders, :job) AND \
                         (size(holders) > :one OR attribute_exists(heldForGood))",
                    )
                    .expression_attribute_values(":job", job.clone())
                    .expression_attribute_values(":one", one)
                    .expression_attribute_values(
                        ":holder",
                        AttributeValue::Ss(vec![holder.to_string()]),
                    )
                    .send()
                    .await;
                (dynamo::applied("UpdateItem", update)?, Release::Kept)
            };
            if result {
                return Ok(release);
            }
        }
        Err(StoreError::Contention)
    }

    /// Removes the user's tombstone (every scope) and returns what it covered, or `None` when
    /// there was none. Only the `lift` module calls this: it checks first that no open job holds
    /// the tombstone, and puts it back if one was accepted meanwhile.
    pub async fn lift_tombstone(
        &self,
        tenant: &Tenant,
        user: &UserId,
    ) -> Result<Option<Tombstone>, StoreError> {
        let key = tombstone_key(tenant, user.as_str());
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(dynamo::key_item(&key)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| DynamoError::call("DeleteItem", e))?;
        Ok(output.attributes.as_ref().map(Tombstone::of_item))
    }

    /// Puts back what a lifted tombstone covered, and who held it, merged with whatever
    /// tombstone the user has now (a job accepted since may have written one): nothing it
    /// forbids is forgotten, and no release of the newer job lifts the older holds.
    pub async fn restore_tombstone(
        &self,
        tenant: &Tenant,
        user: &UserId,
        tombstone: &Tombstone,
    ) -> Result<(), StoreError> {
        let key = tombstone_key(tenant, user.as_str());
        let restored = Tombstone {
            held_for_good: tombstone.is_held_for_good(),
            ..tombstone.clone()
        };
        self.merge(&key, &restored, ErasedAt::KeepStored)
            .send()
            .await
            .map_err(|e| DynamoError::call("UpdateItem", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(attributes: &[(&str, AttributeValue)]) -> Item {
        attributes
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect()
    }

    #[test]
    fn only_a_tombstone_that_records_its_holders_can_be_released() {
        let erased = ("erasedAt", AttributeValue::N("7".into()));
        let holders = ("holders", AttributeValue::Ss(vec!["job".into()]));
        let held = Tombstone::of_item(&item(&[erased.clone(), holders.clone()]));
        assert_eq!(
            (held.holders.as_slice(), held.erased_at),
            (&["job".to_owned()][..], 7)
        );
        assert!(!held.is_held_for_good());
        // Older than holder sets: whoever wrote it is unknown.
        assert!(Tombstone::of_item(&item(std::slice::from_ref(&erased))).is_held_for_good());
        let marked = ("heldForGood", AttributeValue::Bool(true));
        assert!(Tombstone::of_item(&item(&[erased, holders, marked])).is_held_for_good());
    }
}
