//! The task queue: all SQS access. Tasks go out in batches of ten; entries SQS refuses are
//! retried, and a send that cannot finish is an error, never a silent loss.

use std::time::Duration;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;

use crate::domain::task::Task;

/// SendMessageBatch's limit.
const BATCH: usize = 10;
/// Rounds of retrying refused entries.
const ROUNDS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("SQS SendMessageBatch failed")]
    Send(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("SQS kept refusing {0} task(s)")]
    Refused(usize),
    #[error("a task could not be encoded")]
    Encode(#[source] serde_json::Error),
}

/// Where tasks are sent.
#[derive(Clone)]
pub struct TaskQueue {
    client: Client,
    url: String,
}

impl TaskQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// Sends every task. Safe to repeat: the worker treats a task it has seen as done.
    pub async fn send_all(&self, tasks: &[Task]) -> Result<(), QueueError> {
        let bodies = tasks
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(QueueError::Encode)?;
        let sends = bodies.chunks(BATCH).map(|chunk| self.send_batch(chunk));
        futures::future::try_join_all(sends).await?;
        Ok(())
    }

    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError> {
        let mut pending: Vec<(String, &String)> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| (i.to_string(), b))
            .collect();
        for round in 0..ROUNDS {
            let entries = pending
                .iter()
                .map(|(id, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(id)
                        .message_body(*body)
                        .build()
                        .map_err(|e| QueueError::Send(e.into()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| QueueError::Send(e.into()))?;
            let failed: Vec<&str> = output.failed().iter().map(|f| f.id()).collect();
            pending.retain(|(id, _)| failed.contains(&id.as_str()));
            if pending.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20 << round)).await;
        }
        Err(QueueError::Refused(pending.len()))
    }
}
