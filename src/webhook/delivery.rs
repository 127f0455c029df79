//! The notifier: delivers each event of the webhook queue to its tenant's webhook, signed. A
//! receiver that refuses or cannot be reached gets the event again later, after an exponential
//! delay with jitter set on the message itself (ChangeMessageVisibility), until the queue's
//! redrive policy moves it to the dead-letter queue. The job never waits for any of this.

use std::time::Duration;

use futures::future::join_all;
use rand::Rng;
use reqwest::header::{CONTENT_TYPE, USER_AGENT};

use super::event::Notification;
use super::queue::NotificationQueue;
use super::signing;
use super::url_policy::{UrlError, UrlPolicy, WebhookUrl};
use crate::clock::now_ms;
use crate::control::ControlStore;
use crate::domain::tenant::Tenant;
use crate::dynamo::DynamoError;

/// The header that repeats the event's id, for receivers that dedupe before parsing.
pub const EVENT_ID_HEADER: &str = "Erasure-Event-Id";
/// A receiver must answer within this; the notifier's Lambda timeout (30 s) fits a batch of them
/// in parallel.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// One message of a batch, as the notifier needs it.
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    pub message_id: String,
    /// What ChangeMessageVisibility names the message by.
    pub receipt_handle: String,
    pub body: String,
    /// SQS's `ApproximateReceiveCount`: 1 on the first attempt.
    pub receive_count: u32,
}

/// The delay before the next attempt: `base · 2^(attempt−1)`, capped, with jitter.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base_seconds: u32,
    pub cap_seconds: u32,
}

/// Attempts before the webhook queue moves an event to its dead-letter queue (the template's
/// `maxReceiveCount`): with [`DEPLOYED_BACKOFF`], about two to four hours of retries.
pub const MAX_ATTEMPTS: u32 = 20;

/// The deployed backoff: 30 s doubling to at most 15 minutes.
pub const DEPLOYED_BACKOFF: Backoff = Backoff {
    base_seconds: 30,
    cap_seconds: 900,
};

impl Backoff {
    /// The longest delay after attempt `receive_count` failed: the capped exponential.
    fn ceiling(&self, receive_count: u32) -> u32 {
        let exponent = receive_count.saturating_sub(1).min(20);
        self.base_seconds
            .saturating_mul(1 << exponent)
            .min(self.cap_seconds)
    }

    /// After attempt `receive_count` failed: a delay drawn from [d/2, d], d the ceiling, so
    /// receivers coming back up are not hit by every sender at once.
    pub fn delay_seconds(&self, receive_count: u32) -> u32 {
        let full = self.ceiling(receive_count);
        rand::rng().random_range(full / 2..=full)
    }
}

#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("message is not a notification")]
    Malformed(#[source] serde_json::Error),
    #[error("could not read the tenant's webhook")]
    Tenant(#[source] DynamoError),
    #[error("the webhook URL is refused now")]
    Url(#[source] UrlError),
    #[error("the HTTP client could not be built")]
    Client(#[source] reqwest::Error),
    #[error("the webhook could not be reached")]
    Unreachable(#[source] reqwest::Error),
    #[error("the webhook answered HTTP {0}")]
    Refused(u16),
}

impl DeliveryError {
    /// Whether a later attempt may succeed. A URL that now resolves to a forbidden address is
    /// not retried: the request is never sent, and that is not going to change by waiting.
    fn retry(&self) -> bool {
        match self {
            DeliveryError::Url(error) => error.is_transient(),
            _ => true,
        }
    }
}

/// The notifier's capabilities, built once per cold start.
#[derive(Clone)]
pub struct Notifier {
    control: ControlStore,
    queue: NotificationQueue,
    policy: UrlPolicy,
    backoff: Backoff,
}

impl Notifier {
    pub fn new(
        control: ControlStore,
        queue: NotificationQueue,
        policy: UrlPolicy,
        backoff: Backoff,
    ) -> Self {
        Self {
            control,
            queue,
            policy,
            backoff,
        }
    }

    /// Delivers every message; returns the ids of those to retry, each already delayed.
    pub async fn handle(&self, deliveries: Vec<WebhookDelivery>) -> Vec<String> {
        let results = join_all(deliveries.iter().map(|d| self.run(d))).await;
        deliveries
            .into_iter()
            .zip(results)
            .filter_map(|(delivery, ok)| (!ok).then_some(delivery.message_id))
            .collect()
    }

    /// True when the message is done with: delivered, or nothing to deliver it to.
    async fn run(&self, delivery: &WebhookDelivery) -> bool {
        let attempt = delivery.receive_count;
        let error = match self.deliver(delivery).await {
            Ok(()) => return true,
            Err(error) => error,
        };
        if !error.retry() {
            tracing::warn!(message_id = %delivery.message_id, attempt, error = &error as &dyn std::error::Error, "notification dropped");
            return true;
        }
        let delay = self.backoff.delay_seconds(attempt);
        tracing::warn!(message_id = %delivery.message_id, attempt, retry_in_s = delay, error = &error as &dyn std::error::Error, "notification not delivered; will retry");
        if let Err(error) = self.queue.retry_in(&delivery.receipt_handle, delay).await {
            // The message still comes back, after the queue's visibility timeout.
            tracing::error!(message_id = %delivery.message_id, error = &error as &dyn std::error::Error, "could not delay the retry");
        }
        false
    }

    async fn deliver(&self, delivery: &WebhookDelivery) -> Result<(), DeliveryError> {
        let notification: Notification =
            serde_json::from_str(&delivery.body).map_err(DeliveryError::Malformed)?;
        let event = &notification.event;
        let tenant = Tenant::from_stored(notification.tenant.clone());
        let Some(webhook) = self
            .control
            .webhook(&tenant)
            .await
            .map_err(DeliveryError::Tenant)?
        else {
            tracing::info!(event_id = %event.id, "the tenant has no webhook; nothing to send");
            return Ok(());
        };
        // Checked again at send time, and the request goes to exactly the addresses checked.
        let url = WebhookUrl::parse(&webhook.url, self.policy).map_err(DeliveryError::Url)?;
        let addresses = url.resolve(self.policy).await.map_err(DeliveryError::Url)?;
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .resolve_to_addrs(url.host(), &addresses)
            .build()
            .map_err(DeliveryError::Client)?;
        // The event was encoded by the worker; re-encoding the parsed value gives the same
        // bytes on every attempt, and those bytes are what is signed.
        let body = serde_json::to_vec(event).map_err(DeliveryError::Malformed)?;
        let signature = signing::header_value(webhook.secret(), now_ms() / 1000, &body);
        let response = client
            .post(url.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, "erasure-webhook/1")
            .header(signing::HEADER, signature)
            .header(EVENT_ID_HEADER, &event.id)
            .body(body)
            .send()
            .await
            .map_err(DeliveryError::Unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(DeliveryError::Refused(status.as_u16()));
        }
        tracing::info!(
            event_id = %event.id,
            host = url.host(),
            attempt = delivery.receive_count,
            status = status.as_u16(),
            since_settled_ms = now_ms() - event.created_at,
            "notification delivered"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_per_attempt_within_jitter_and_cap() {
        let backoff = Backoff {
            base_seconds: 30,
            cap_seconds: 900,
        };
        for _ in 0..100 {
            assert!((15..=30).contains(&backoff.delay_seconds(1)));
            assert!((30..=60).contains(&backoff.delay_seconds(2)));
            assert!((240..=480).contains(&backoff.delay_seconds(5)));
            assert!((450..=900).contains(&backoff.delay_seconds(6)));
            assert!((450..=900).contains(&backoff.delay_seconds(500)));
        }
    }

    #[test]
    fn the_deployed_retries_outlast_an_hour_of_downtime() {
        // Every jitter at its lowest: the time from the first attempt to the last.
        let shortest: u32 = (1..MAX_ATTEMPTS)
            .map(|n| DEPLOYED_BACKOFF.ceiling(n) / 2)
            .sum();
        assert!(shortest > 3600, "{shortest} s");
    }
}
