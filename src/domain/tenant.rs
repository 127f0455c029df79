//! A tenant: the key prefix every record of one API key lives under, and its partitions.

use crate::keys::component;

/// A tenant's key prefix, from its API key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant(String);

impl Tenant {
    /// The tenant whose key prefix a record stored (see [`Tenant::as_str`]).
    pub fn from_stored(prefix: String) -> Self {
        Self(prefix)
    }

    pub fn from_api_key(api_key: &str) -> Self {
        Self(format!("T#{}", component(api_key)))
    }

    /// The partition of a user: their profile, their reference items and their tombstone.
    pub fn user_partition(&self, user_id: &str) -> String {
        self.user_partition_of_hash(&component(user_id))
    }

    /// The partition of the user whose id has the key hash `user_hash` (a job's `userHashes`).
    pub fn user_partition_of_hash(&self, user_hash: &str) -> String {
        format!("{}#U#{}", self.0, user_hash)
    }

    pub(super) fn organization_partition(&self, organization_id: &str) -> String {
        format!("{}#O#{}", self.0, component(organization_id))
    }

    pub(super) fn document_partition(&self, organization_id: &str, document_id: &str) -> String {
        format!(
            "{}#D#{}",
            self.organization_partition(organization_id),
            component(document_id)
        )
    }

    /// The key component of this tenant, for records outside the data table.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
