//! The webhook queue: whoever settles a job enqueues its event (`announce`); the notifier
//! delays a message it could not deliver (its backoff). All the webhook's SQS access is here.

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::event::Notification;
use crate::fault::Fault;

/// The longest delay SQS allows a message's visibility (12 hours).
pub const MAX_VISIBILITY_SECONDS: u32 = 43_200;

/// An SQS failure on the webhook queue, kept with its cause and classified once.
#[derive(Debug, thiserror::Error)]
pub enum WebhookQueueError {
    #[error("SQS {operation} on the webhook queue failed")]
    Call {
        operation: &'static str,
        fault: Fault,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("a notification could not be encoded")]
    Encode(#[source] serde_json::Error),
}

impl WebhookQueueError {
    fn call<E>(operation: &'static str, source: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        WebhookQueueError::Call {
            operation,
            fault: Fault::of(&source),
            source: Box::new(source),
        }
    }
}

/// Where notifications go.
#[derive(Clone)]
pub struct NotificationQueue {
    client: Client,
    url: String,
}

impl NotificationQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub async fn send(&self, notification: &Notification) -> Result<(), WebhookQueueError> {
        let body = serde_json::to_string(notification).map_err(WebhookQueueError::Encode)?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| WebhookQueueError::call("SendMessage", e))?;
        Ok(())
    }

    /// Makes a received message visible again in `seconds` (capped at SQS's maximum).
    pub async fn retry_in(
        &self,
        receipt_handle: &str,
        seconds: u32,
    ) -> Result<(), WebhookQueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds.min(MAX_VISIBILITY_SECONDS) as i32)
            .send()
            .await
            .map_err(|e| WebhookQueueError::call("ChangeMessageVisibility", e))?;
        Ok(())
    }
}
