//! The `notifier` Lambda's adapter: an SQS event of the webhook queue in, deliveries through
//! `Notifier::handle`, the partial batch response out (only the messages to retry).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use super::delivery::{Notifier, WebhookDelivery};
use crate::sqs_event::{batch_response, receive_count};

pub async fn handle(notifier: &Notifier, event: SqsEvent) -> SqsBatchResponse {
    batch_response(notifier.handle(deliveries(event)).await)
}

fn deliveries(event: SqsEvent) -> Vec<WebhookDelivery> {
    event
        .records
        .into_iter()
        .map(|record| WebhookDelivery {
            receive_count: receive_count(&record.attributes),
            message_id: record.message_id.unwrap_or_default(),
            receipt_handle: record.receipt_handle.unwrap_or_default(),
            body: record.body.unwrap_or_default(),
        })
        .collect()
}
