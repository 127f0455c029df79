//! The `worker` Lambda's adapter: an SQS event in, deliveries through `Worker::handle`, and the
//! partial batch response out, naming only the failed messages so that SQS retries exactly those.

use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use super::{Delivery, Worker};
use crate::sqs_event::{batch_response, receive_count};

/// Runs one batch; tasks still at work at `deadline` pause and go on in a continuation.
pub async fn handle(worker: &Worker, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
    batch_response(worker.handle(deliveries(event), deadline).await)
}

/// The batch's records as the worker reads them.
pub fn deliveries(event: SqsEvent) -> Vec<Delivery> {
    event
        .records
        .into_iter()
        .map(|record| Delivery {
            // A record without an id cannot come from SQS. If one failed, its empty id in the
            // response makes Lambda retry the whole batch: repeated work, never lost work.
            message_id: record.message_id.unwrap_or_default(),
            body: record.body.unwrap_or_default(),
            receive_count: receive_count(&record.attributes),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::{Context, LambdaEvent};

    fn event(json: &str) -> LambdaEvent<SqsEvent> {
        LambdaEvent::new(serde_json::from_str(json).unwrap(), Context::default())
    }

    #[test]
    fn the_recorded_batch_becomes_its_deliveries_in_order() {
        let event = event(include_str!("../../events/worker-sqs.json"));
        let deliveries = deliveries(event.payload);
        let ids: Vec<&str> = deliveries.iter().map(|d| d.message_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "059f36b4-87a3-44ab-83d2-661975830a7d",
                "2e1424d4-f796-459a-8184-9c92662be6da"
            ]
        );
        assert!(deliveries.iter().all(|d| d.receive_count == 1));
        assert!(deliveries[0].body.contains(r#""userId":"ada""#));
    }

    #[test]
    fn a_missing_or_unreadable_receive_count_counts_as_the_first_attempt() {
        let event = event(include_str!("../../events/worker-sqs-odd-records.json"));
        let counts: Vec<(String, u32)> = deliveries(event.payload)
            .into_iter()
            .map(|d| (d.message_id, d.receive_count))
            .collect();
        assert_eq!(
            counts,
            [
                ("no-receive-count".to_owned(), 1),
                ("garbage-receive-count".to_owned(), 1),
                ("fifth-receive".to_owned(), 5),
                (String::new(), 2),
            ]
        );
    }
}
