//! Receipts: who counts an entity that more than one task can remove (a comment's reaction,
//! an annotation's view, the annotation itself, a notification between two erased users).
//!
//! Before deleting such an entity, a page claims it: a conditional update of the entity's
//! receipt (`RCPT#<group>` / `<entity component>`), which names the page's claimant unless
//! another claimant came first. Only the first claimant counts the entity; everyone deletes
//! it. The receipt outlives the entity (it expires with the job), so the count of a run that
//! died after claiming is recovered by reading its claims back: a sweep's group holds all it
//! removed, so one Query finds them (DESIGN §3, "Exact counts").

use aws_sdk_dynamodb::types::AttributeValue;

use super::{key, ControlStore};
use crate::domain::entity::Key;
use crate::dynamo::{self, DynamoError};
use crate::keys::component;

/// Claims in flight at once.
const CLAIM_CONCURRENCY: usize = 32;

fn receipt_partition(group: &str) -> String {
    format!("RCPT#{group}")
}

impl ControlStore {
    /// Claims the entities at `keys` (all of receipt group `group`) for `claimant`; returns how
    /// many are its to count: those no one else had claimed, or whose receipt had expired. A
    /// claim repeated by the same claimant (an answer lost) is its own again.
    pub async fn claim_receipts(
        &self,
        group: &str,
        keys: &[Key],
        claimant: &str,
        now_s: i64,
        expires_at_s: i64,
    ) -> Result<u64, DynamoError> {
        let partition = receipt_partition(group);
        let receipts: Vec<_> = keys
            .iter()
            .map(|entity| {
                key(
                    partition.clone(),
                    &component(&format!("{}\u{0}{}", entity.pk, entity.sk)),
                )
            })
            .collect();
        let claims = receipts.into_iter().map(|receipt| async move {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(receipt))
                .update_expression("SET claimant = :claimant, expiresAt = :expires")
                .condition_expression(
                    "attribute_not_exists(claimant) OR claimant = :claimant \
                         OR expiresAt < :now",
                )
                .expression_attribute_values(":claimant", AttributeValue::S(claimant.into()))
                .expression_attribute_values(
                    ":expires",
                    AttributeValue::N(expires_at_s.to_string()),
                )
                .expression_attribute_values(":now", AttributeValue::N(now_s.to_string()))
                .send()
                .await;
            dynamo::applied("UpdateItem", result)
        });
        let won = dynamo::settle_all(claims, CLAIM_CONCURRENCY).await?;
        Ok(won.into_iter().filter(|&won| won).count() as u64)
    }

    /// How many receipts of group `group` name `claimant`, read consistently.
    pub async fn claimed_receipts(&self, group: &str, claimant: &str) -> Result<u64, DynamoError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .filter_expression("claimant = :claimant")
            .projection_expression("pk")
            .expression_attribute_values(":pk", AttributeValue::S(receipt_partition(group)))
            .expression_attribute_values(":claimant", AttributeValue::S(claimant.into()))
            .consistent_read(true);
        Ok(dynamo::query_pages(query).await?.len() as u64)
    }
}
