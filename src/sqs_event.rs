//! SQS event plumbing the queue consumers share: a record's receive count, and the partial
//! batch response naming only the failed messages, so that SQS retries exactly those.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};

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
