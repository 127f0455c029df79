//! The task queue: all SQS access. Tasks go out in batches of ten; entries SQS refuses are
//! retried, and a send that cannot finish is an error, never a silent loss.

use std::time::Duration;

use aws_sdk_sqs::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use futures::{stream, StreamExt, TryStreamExt};

use crate::domain::task::{Task, TaskMessage};
use crate::fault::Fault;

/// SendMessageBatch's limit.
const BATCH: usize = 10;
/// Batches in flight at once.
const CONCURRENCY: usize = 8;
/// Rounds of retrying refused entries.
const ROUNDS: u32 = 5;

/// An SQS failure, kept with its cause and classified once (see [`Fault`]).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("SQS SendMessageBatch failed")]
    Send {
        fault: Fault,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("SQS SendMessageBatch request could not be built")]
    Request(#[source] BuildError),
    #[error("SQS kept refusing {count} task(s)")]
    Refused {
        count: usize,
        /// Whether SQS blamed the request (an invalid entry) rather than itself.
        sender_fault: bool,
    },
    #[error("a task could not be encoded")]
    Encode(#[source] serde_json::Error),
}

impl QueueError {
    fn send<E>(source: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        QueueError::Send {
            fault: Fault::of(&source),
            source: Box::new(source),
        }
    }

    /// Whether retrying later can help.
    pub fn fault(&self) -> Fault {
        match self {
            QueueError::Send { fault, .. } => *fault,
            QueueError::Refused {
                sender_fault: false,
                ..
            } => Fault::Transient,
            QueueError::Refused {
                sender_fault: true, ..
            }
            | QueueError::Request(_)
            | QueueError::Encode(_) => Fault::Defect,
        }
    }
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

    /// Sends every task, one message per user. Safe to repeat: the worker skips a task the
    /// job already counts as done.
    pub async fn send_all(&self, tasks: &[Task]) -> Result<(), QueueError> {
        let bodies = TaskMessage::group(tasks)
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(QueueError::Encode)?;
        let chunks: Vec<Vec<String>> = bodies.chunks(BATCH).map(<[String]>::to_vec).collect();
        stream::iter(chunks)
            .map(|chunk| self.send_batch(chunk))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn send_batch(&self, bodies: Vec<String>) -> Result<(), QueueError> {
        let mut pending: Vec<(String, &String)> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| (i.to_string(), b))
            .collect();
        let mut sender_fault = false;
        for round in 0..ROUNDS {
            let entries = pending
                .iter()
                .map(|(id, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(id)
                        .message_body(*body)
                        .build()
                        .map_err(QueueError::Request)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(QueueError::send)?;
            let failed: Vec<&str> = output.failed().iter().map(|f| f.id()).collect();
            sender_fault = output.failed().iter().any(|f| f.sender_fault());
            pending.retain(|(id, _)| failed.contains(&id.as_str()));
            if pending.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20 << round)).await;
        }
        Err(QueueError::Refused {
            count: pending.len(),
            sender_fault,
        })
    }
}
