//! Idempotency records: an `Idempotency-Key` binds to one body and one job for 24 hours.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::{key, ControlStore};
use crate::domain::ids::{IdempotencyKey, JobId};
use crate::domain::tenant::Tenant;
use crate::dynamo::{self, DynamoError, Item};
use crate::keys::component;

/// How long a key stays bound.
pub const WINDOW_SECONDS: i64 = 24 * 60 * 60;

/// An idempotency record as stored: the body's hash, its job, and when the binding ends (TTL).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdempotencyRecord {
    body_hash: String,
    job_id: String,
    expires_at: i64,
}

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is now bound to this body and the proposed job.
    New,
    /// The key was bound to this body already, for this job.
    Existing(JobId),
    /// The key was bound to another body.
    Mismatch,
}

impl ControlStore {
    /// Binds `key` to `body_hash` and `job_id` unless it is bound (and not expired) already.
    pub async fn claim_idempotency_key(
        &self,
        tenant: &Tenant,
        idempotency_key: &IdempotencyKey,
        body_hash: &str,
        job_id: &JobId,
        now_ms: i64,
    ) -> Result<Claim, DynamoError> {
        let now = now_ms / 1000;
        let item_key = key(
            format!(
                "IDEM#{}#{}",
                tenant.as_str(),
                component(idempotency_key.as_str())
            ),
            "IDEM",
        );
        let record = IdempotencyRecord {
            body_hash: body_hash.to_owned(),
            job_id: job_id.as_str().to_owned(),
            expires_at: now + WINDOW_SECONDS,
        };
        let mut item: Item = serde_dynamo::to_item(&record).map_err(DynamoError::Shape)?;
        item.extend(item_key.clone());
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // TTL deletes lazily, so an expired record still present counts as absent.
            .condition_expression("attribute_not_exists(pk) OR expiresAt < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(Claim::New),
            Err(error) if dynamo::is_conditional_check_failed(&error) => {}
            Err(error) => return Err(DynamoError::call("PutItem", error)),
        }
        let existing = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::call("GetItem", e))?
            .item
            .unwrap_or_default();
        // Gone meanwhile (TTL) or unreadable: not this body's key to use.
        let Ok(existing) = serde_dynamo::from_item::<_, IdempotencyRecord>(existing) else {
            return Ok(Claim::Mismatch);
        };
        Ok(
            match (
                existing.body_hash == body_hash,
                JobId::parse(&existing.job_id),
            ) {
                (true, Ok(job)) if existing.expires_at >= now => Claim::Existing(job),
                _ => Claim::Mismatch,
            },
        )
    }
}
