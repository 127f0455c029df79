//! Operators' audit records: who lifted which user's tombstone, when, why, and how it ended.
//! Kept (no TTL) under the tenant's audit partition; the user appears only as the key hash
//! jobs use (`keys::component`), never as the raw id.

use serde::{Deserialize, Serialize};

use super::{key, ControlStore};
use crate::dynamo::DynamoError;

/// How a lift ended (or that it began: a lift that dies midway leaves `started`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LiftOutcome {
    Started,
    /// The tombstone is gone: new data for the user is accepted.
    Lifted,
    /// There was no tombstone to lift.
    Absent,
    /// Refused: an open job names the user.
    Refused,
    /// A job naming the user was accepted during the lift: the tombstone was put back.
    Restored,
}

/// One lift of a tombstone. `at` (not `createdAt`): the record stays out of the sparse
/// `JobsByTenant` index, which only job items may enter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiftAudit {
    pub action: String,
    /// The tenant's key prefix (a hash of its API key).
    pub tenant: String,
    /// `keys::component` of the user id, as job records name users.
    pub user_hash: String,
    /// Who asked (`--operator`).
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the lift began, epoch milliseconds.
    pub at: i64,
    pub outcome: LiftOutcome,
    /// The jobs that held the tombstone (refused) or were accepted during the lift (restored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<String>,
}

/// The `action` of a tombstone lift's record.
pub const LIFT_ACTION: &str = "tombstone.lift";

impl ControlStore {
    /// Stores the record, or its new state (one item per lift: same tenant, time and user).
    pub async fn put_lift_audit(&self, audit: &LiftAudit) -> Result<(), DynamoError> {
        let mut item: crate::dynamo::Item =
            serde_dynamo::to_item(audit).map_err(DynamoError::Shape)?;
        item.extend(key(
            format!("AUDIT#{}", audit.tenant),
            &format!("LIFT#{}#{}", audit.at, audit.user_hash),
        ));
        self.put(item).await
    }
}
