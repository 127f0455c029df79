//! Tenants: an API key and the hash of its auth token, compared in constant time.

use aws_sdk_dynamodb::types::AttributeValue;
use rand::distr::{Alphanumeric, SampleString};
use subtle::ConstantTimeEq;

use super::{key, string, ControlStore};
use crate::domain::ids::ApiKey;
use crate::dynamo::DynamoError;
use crate::keys::{component, secret_hash};
use crate::store::entity::Tenant;

fn tenant_key(api_key: &ApiKey) -> crate::dynamo::Item {
    key(format!("TENANT#{}", component(api_key.as_str())), "TENANT")
}

/// A new strong auth token: 40 alphanumerics (about 238 bits).
pub fn generate_auth_token() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 40)
}

impl ControlStore {
    /// Creates the tenant, or gives it a new token: only the token's hash is stored.
    pub async fn put_tenant(
        &self,
        api_key: &ApiKey,
        auth_token: &str,
        now_ms: i64,
    ) -> Result<(), DynamoError> {
        let mut item = tenant_key(api_key);
        item.insert(
            "tokenHash".into(),
            AttributeValue::S(secret_hash(auth_token)),
        );
        item.insert("createdAt".into(), AttributeValue::N(now_ms.to_string()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| DynamoError::call("PutItem", e))?;
        Ok(())
    }

    /// Revokes the tenant's key; returns whether it existed.
    pub async fn revoke_tenant(&self, api_key: &ApiKey) -> Result<bool, DynamoError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(tenant_key(api_key)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| DynamoError::call("DeleteItem", e))?;
        Ok(output.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// The tenant of `api_key` when `auth_token` is its token; `None` for an unknown key or a
    /// wrong token alike, after the same constant-time comparison.
    pub async fn authenticate(
        &self,
        api_key: &ApiKey,
        auth_token: &str,
    ) -> Result<Option<Tenant>, DynamoError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(tenant_key(api_key)))
            .send()
            .await
            .map_err(|e| DynamoError::call("GetItem", e))?;
        let stored = output
            .item
            .as_ref()
            .and_then(|item| string(item, "tokenHash"));
        let presented = secret_hash(auth_token);
        let expected = stored
            .clone()
            .unwrap_or_else(|| "0".repeat(presented.len()));
        let matches: bool = presented.as_bytes().ct_eq(expected.as_bytes()).into();
        Ok((matches && stored.is_some()).then(|| Tenant::from_api_key(api_key.as_str())))
    }
}
