//! The local stand-in for Lambda's SQS event source mapping and for Lambda itself: receives
//! batches from the task queue, invokes the worker (run by [`function::LocalFunction`] with the
//! template's timeout) with an `SqsEvent`, deletes the messages that did not come back in
//! `batchItemFailures`, and leaves the others to reappear after the visibility timeout (the
//! queue's redrive policy moves them to the DLQ) — also when the invocation timed out or its
//! process died, as on AWS.

pub mod function;
pub mod gateway;

use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use serde_json::{json, Value};

use function::LocalFunction;

/// Where to read from.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub queue_url: String,
    pub batch_size: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("SQS call failed")]
    Sqs(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the worker's answer is not JSON")]
    Answer(#[source] serde_json::Error),
}

fn queue_arn(queue_url: &str) -> String {
    let name = queue_url.rsplit('/').next().unwrap_or_default();
    format!("arn:aws:sqs:us-east-1:123456789012:{name}")
}

/// Polls and dispatches one batch; returns how many messages it handed to the worker.
pub async fn poll_once(
    sqs: &aws_sdk_sqs::Client,
    worker: &LocalFunction,
    config: &BridgeConfig,
) -> Result<usize, BridgeError> {
    let received = sqs
        .receive_message()
        .queue_url(&config.queue_url)
        .max_number_of_messages(config.batch_size)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| BridgeError::Sqs(e.into()))?;
    let messages = received.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(0);
    }
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn(&config.queue_url),
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    let event = json!({"Records": records}).to_string();
    let answer = match worker.invoke(event.into()).await {
        Ok(answer) => answer,
        Err(error) => {
            // As Lambda's event source mapping: the whole batch comes back after its
            // visibility timeout, and counts one receive towards the dead-letter queue.
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                messages = messages.len(),
                "worker invocation failed; the batch will be retried"
            );
            return Ok(messages.len());
        }
    };
    let response: Value = serde_json::from_slice(&answer).map_err(BridgeError::Answer)?;
    // A response without batchItemFailures fails the whole batch, as on AWS.
    let Some(failed) = batch_item_failures(&response) else {
        tracing::warn!("worker answered without batchItemFailures; the batch will be retried");
        return Ok(messages.len());
    };
    let done: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| !failed.iter().any(|f| Some(f.as_str()) == m.message_id()))
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                .build()
                .ok()
        })
        .collect();
    if !done.is_empty() {
        sqs.delete_message_batch()
            .queue_url(&config.queue_url)
            .set_entries(Some(done))
            .send()
            .await
            .map_err(|e| BridgeError::Sqs(e.into()))?;
    }
    Ok(messages.len())
}

/// The message ids a worker's answer lists as failed; `None` when it lists none at all.
fn batch_item_failures(response: &Value) -> Option<Vec<String>> {
    let items = response.get("batchItemFailures")?.as_array()?;
    Some(
        items
            .iter()
            .filter_map(|i| i.get("itemIdentifier").and_then(Value::as_str))
            .map(str::to_owned)
            .collect(),
    )
}

/// Runs the bridge until the process ends; transient errors are logged and retried.
pub async fn run(sqs: aws_sdk_sqs::Client, worker: &LocalFunction, config: BridgeConfig) {
    loop {
        if let Err(error) = poll_once(&sqs, worker, &config).await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "bridge poll failed"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
