//! A fixed one-minute window per tenant: one conditional counter update per request.

use aws_sdk_dynamodb::types::AttributeValue;

use super::{key, ControlStore};
use crate::domain::tenant::Tenant;
use crate::dynamo::{self, DynamoError};

impl ControlStore {
    /// Counts a request of `tenant`; `false` when the tenant already made `limit` this minute.
    pub async fn admit(
        &self,
        tenant: &Tenant,
        limit: u32,
        now_ms: i64,
    ) -> Result<bool, DynamoError> {
        let minute = now_ms / 60_000;
        let expires_at = (minute + 2) * 60;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                format!("RATE#{}#{minute}", tenant.as_str()),
                "RATE",
            )))
            .update_expression("ADD hits :one SET expiresAt = :expires")
            .condition_expression("attribute_not_exists(hits) OR hits < :limit")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .expression_attribute_values(":expires", AttributeValue::N(expires_at.to_string()))
            .send()
            .await;
        dynamo::applied("UpdateItem", result)
    }
}
