//! A fixed one-minute window per tenant and credential: one conditional counter update per
//! request, adding what the request costs.

use aws_sdk_dynamodb::types::AttributeValue;

use super::{key, ControlStore};
use crate::domain::tenant::Tenant;
use crate::dynamo::{self, DynamoError};
use crate::keys::fingerprint;

impl ControlStore {
    /// Counts a request of `cost` units presented with `tenant`'s API key and `token`; `false`
    /// when that would take the pair past `limit` units this minute. Keyed by the pair (the
    /// token as a fingerprint), so that requests with a wrong token, counted before the token
    /// is checked, fill a bucket of their own. A cost over the limit counts as the limit: a
    /// request is never refused for ever.
    pub async fn admit(
        &self,
        tenant: &Tenant,
        token: &str,
        cost: u32,
        limit: u32,
        now_ms: i64,
    ) -> Result<bool, DynamoError> {
        let cost = cost.clamp(1, limit.max(1));
        let minute = now_ms / 60_000;
        let expires_at = (minute + 2) * 60;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                format!("RATE#{}#{}#{minute}", tenant.as_str(), fingerprint(token)),
                "RATE",
            )))
            .update_expression("ADD hits :cost SET expiresAt = :expires")
            .condition_expression("attribute_not_exists(hits) OR hits <= :room")
            .expression_attribute_values(":cost", AttributeValue::N(cost.to_string()))
            .expression_attribute_values(
                ":room",
                AttributeValue::N((i64::from(limit) - i64::from(cost)).to_string()),
            )
            .expression_attribute_values(":expires", AttributeValue::N(expires_at.to_string()))
            .send()
            .await;
        dynamo::applied("UpdateItem", result)
    }
}
