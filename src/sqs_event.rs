//! The `worker` Lambda's adapter: an SQS event in, deliveries through `Worker::handle`, and the
//! partial batch response out, naming only the failed messages so that SQS retries exactly those.

use std::collections::HashMap;
use std::time::Instant;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

use crate::worker::{Delivery, Worker};

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

/// SQS's `ApproximateReceiveCount`. SQS always sends a number; were it missing or unreadable,
/// taking the attempt for the first never records a task as finally failed too early: at worst
/// the job waits for its dead letter to be redriven instead of ending `partial`.
pub fn receive_count(attributes: &HashMap<String, String>) -> u32 {
    attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

/// The partial batch response: one failure per message id the worker reports.
pub fn batch_response(failed: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
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
        let event = event(include_str!("../events/worker-sqs.json"));
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
        let event = event(include_str!("../events/worker-sqs-odd-records.json"));
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

    #[test]
    fn only_the_failed_messages_are_reported() {
        let response = batch_response(vec!["m2".into(), "m5".into()]);
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"batchItemFailures": [
                {"itemIdentifier": "m2"}, {"itemIdentifier": "m5"}
            ]})
        );
        assert_eq!(
            serde_json::to_value(batch_response(Vec::new())).unwrap(),
            serde_json::json!({"batchItemFailures": []})
        );
    }
}
