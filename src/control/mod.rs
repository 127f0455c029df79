//! The control table: tenants and their credentials, jobs and their tasks' progress, the open-jobs
//! index, a tenant's jobs, idempotency records, rate-limit windows and the operators' audit
//! records. All access to it lives here.

mod audit;
mod idempotency;
mod jobs;
mod open_jobs;
mod rate_limit;
mod receipts;
mod report;
mod tasks;
mod tenant_jobs;
mod tenants;

pub use audit::{LiftAudit, LiftOutcome, LIFT_ACTION};
pub use idempotency::{Claim, WINDOW_SECONDS as IDEMPOTENCY_WINDOW_SECONDS};
pub use jobs::{JobView, NewJob, SendClaim, SuccessError};
pub use open_jobs::OpenEntry;
pub use tasks::{Counts, OpenPage, TaskClaim, TaskLease};
pub use tenants::{generate_auth_token, Webhook};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::dynamo::{DynamoError, Item};

/// The control table.
#[derive(Clone)]
pub struct ControlStore {
    client: Client,
    table: String,
}

impl ControlStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn string(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

fn number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

impl ControlStore {
    /// Stores `item` as it is, replacing any item with its key.
    async fn put(&self, item: Item) -> Result<(), DynamoError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| DynamoError::call("PutItem", e))?;
        Ok(())
    }
}

fn key(pk: String, sk: &str) -> Item {
    Item::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}
