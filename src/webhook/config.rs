//! The `notifier` function's configuration, read from the environment at cold start.

use super::delivery::{Backoff, DEPLOYED_BACKOFF};
use super::url_policy::UrlPolicy;
use crate::config::{number_or, required, ConfigError};

/// The `notifier` function's configuration.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// `CONTROL_TABLE`: where tenants' webhooks are registered.
    pub control_table: String,
    /// `WEBHOOK_QUEUE_URL`: the queue the notifier consumes and delays retries on.
    pub webhook_queue_url: String,
    /// `WEBHOOK_ALLOW_LOOPBACK`: `true` only where the stack runs locally (plain http to
    /// loopback receivers); anything else is the deployed policy.
    pub policy: UrlPolicy,
    /// `WEBHOOK_BACKOFF_BASE_SECONDS` (default 30, doubling to at most 900): the delay after a
    /// failed first attempt; the local stack and the tests make it short.
    pub backoff: Backoff,
}

impl NotifierConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            control_table: required("CONTROL_TABLE")?,
            webhook_queue_url: required("WEBHOOK_QUEUE_URL")?,
            policy: UrlPolicy::from_env(),
            backoff: Backoff {
                base_seconds: number_or(
                    "WEBHOOK_BACKOFF_BASE_SECONDS",
                    DEPLOYED_BACKOFF.base_seconds,
                )?,
                cap_seconds: DEPLOYED_BACKOFF.cap_seconds,
            },
        })
    }
}
