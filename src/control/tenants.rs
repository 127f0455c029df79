//! Tenants: an API key and the hash of its auth token, compared in constant time; and the
//! tenant's webhook, if it registered one: its URL and the secret that signs its events.

use std::fmt;

use aws_sdk_dynamodb::types::AttributeValue;
use rand::distr::{Alphanumeric, SampleString};
use subtle::ConstantTimeEq;

use serde::{Deserialize, Serialize};

use super::{key, ControlStore};
use crate::domain::ids::ApiKey;
use crate::domain::tenant::Tenant;
use crate::dynamo::{self, DynamoError, Item};
use crate::keys::{component, fingerprint, secret_hash};

fn tenant_key(api_key: &ApiKey) -> crate::dynamo::Item {
    key(format!("TENANT#{}", component(api_key.as_str())), "TENANT")
}

/// The tenant record of a tenant named by its stored key prefix (`T#<hash>`), as jobs hold it.
/// A tenant's record as stored, or the part of it a projection read: every field optional, so
/// that each reader asks for (and gets) only what it needs.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TenantRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    webhook_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    webhook_secret: Option<String>,
}

impl TenantRecord {
    /// The record of `item`; one that does not parse reads as empty (no token, no webhook):
    /// refused, never trusted.
    fn of(item: &Item) -> Self {
        serde_dynamo::from_item(item.clone()).unwrap_or_default()
    }
}

fn stored_tenant_key(tenant: &Tenant) -> Option<crate::dynamo::Item> {
    let hash = tenant.as_str().strip_prefix("T#")?;
    Some(key(format!("TENANT#{hash}"), "TENANT"))
}

/// A tenant's webhook. The secret must be readable to sign, so it is stored as it is, in the
/// control table (encrypted at rest); only the notifier reads it, and it never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    secret: String,
}

impl Webhook {
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &fingerprint(&self.url))
            .field("secret", &fingerprint(&self.secret))
            .finish()
    }
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
        let record = TenantRecord {
            token_hash: Some(secret_hash(auth_token)),
            created_at: Some(now_ms),
            webhook_url: None,
            webhook_secret: None,
        };
        let mut item: Item = serde_dynamo::to_item(&record).map_err(DynamoError::Shape)?;
        item.extend(tenant_key(api_key));
        self.put(item).await
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
            // The token's hash only: the webhook secret in the same record stays unread here.
            .projection_expression("tokenHash")
            .send()
            .await
            .map_err(|e| DynamoError::call("GetItem", e))?;
        let stored = output
            .item
            .as_ref()
            .and_then(|item| TenantRecord::of(item).token_hash);
        let presented = secret_hash(auth_token);
        let expected = stored
            .clone()
            .unwrap_or_else(|| "0".repeat(presented.len()));
        let matches: bool = presented.as_bytes().ct_eq(expected.as_bytes()).into();
        Ok((matches && stored.is_some()).then(|| Tenant::from_api_key(api_key.as_str())))
    }

    /// Registers the tenant's webhook (a URL the caller has checked against the URL policy)
    /// and its signing secret; `false` when the tenant does not exist.
    pub async fn set_webhook(
        &self,
        api_key: &ApiKey,
        url: &str,
        secret: &str,
    ) -> Result<bool, DynamoError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(tenant_key(api_key)))
            .update_expression("SET webhookUrl = :url, webhookSecret = :secret")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":url", AttributeValue::S(url.to_owned()))
            .expression_attribute_values(":secret", AttributeValue::S(secret.to_owned()))
            .send()
            .await;
        dynamo::applied("UpdateItem", result)
    }

    /// Whether the tenant a job names has registered a webhook. Reads the URL only: the sweep,
    /// which asks, never needs the secret.
    pub async fn has_webhook(&self, tenant: &Tenant) -> Result<bool, DynamoError> {
        let Some(key) = stored_tenant_key(tenant) else {
            return Ok(false);
        };
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .projection_expression("webhookUrl")
            .send()
            .await
            .map_err(|e| DynamoError::call("GetItem", e))?;
        Ok(output
            .item
            .is_some_and(|item| TenantRecord::of(&item).webhook_url.is_some()))
    }

    /// The webhook of the tenant a job names, if it has one (and still exists).
    pub async fn webhook(&self, tenant: &Tenant) -> Result<Option<Webhook>, DynamoError> {
        let Some(key) = stored_tenant_key(tenant) else {
            return Ok(None);
        };
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            // Never the token's hash: the notifier needs only these two.
            .projection_expression("webhookUrl, webhookSecret")
            .send()
            .await
            .map_err(|e| DynamoError::call("GetItem", e))?;
        let record = TenantRecord::of(&output.item.unwrap_or_default());
        Ok(record
            .webhook_url
            .zip(record.webhook_secret)
            .map(|(url, secret)| Webhook { url, secret }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jobs_tenant_names_the_record_of_its_api_key() {
        let api_key = ApiKey::parse("some-key").unwrap();
        let tenant = Tenant::from_api_key(api_key.as_str());
        assert_eq!(stored_tenant_key(&tenant), Some(tenant_key(&api_key)));
    }

    #[test]
    fn a_webhooks_debug_shows_no_secret_and_no_url() {
        let webhook = Webhook {
            url: "https://hooks.example.com/t0ken".into(),
            secret: "whsec_abc".into(),
        };
        let shown = format!("{webhook:?}");
        assert!(
            !shown.contains("whsec_abc") && !shown.contains("t0ken"),
            "{shown}"
        );
    }
}
