//! The task queue: all SQS access. Tasks go out in batches of ten; entries SQS refuses are
//! retried, and a send that cannot finish is an error, never a silent loss. Every message
//! carries its tenant as its `MessageGroupId`, by which SQS fair queues keep one tenant's
//! backlog from delaying the others' (DESIGN §9).

use std::time::Duration;

use aws_sdk_sqs::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use futures::{stream, StreamExt, TryStreamExt};

use crate::domain::task::{Task, TaskMessage};
use crate::domain::tenant::Tenant;
use crate::fault::Fault;

/// SendMessageBatch's limit.
const BATCH: usize = 10;
/// Batches in flight at once.
const CONCURRENCY: usize = 8;
/// Rounds of retrying refused entries.
const ROUNDS: u32 = 5;
/// SQS's longest message delay.
const MAX_DELAY_SECONDS: i32 = 900;

/// An SQS failure, kept with its cause and classified once (see [`Fault`]).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("SQS SendMessageBatch failed")]
    Send {
        fault: Fault,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("an SQS batch request could not be built")]
    Request(#[source] BuildError),
    #[error("SQS kept refusing {count} task(s)")]
    Refused {
        count: usize,
        /// Whether SQS blamed the request (an invalid entry) rather than itself.
        sender_fault: bool,
    },
    #[error("a task could not be encoded")]
    Encode(#[source] serde_json::Error),
    #[error("SQS {operation} failed")]
    Call {
        operation: &'static str,
        fault: Fault,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
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

    fn call<E>(operation: &'static str, source: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        QueueError::Call {
            operation,
            fault: Fault::of(&source),
            source: Box::new(source),
        }
    }

    /// Whether retrying later can help.
    pub fn fault(&self) -> Fault {
        match self {
            QueueError::Send { fault, .. } | QueueError::Call { fault, .. } => *fault,
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

/// A message to send: its body and its group (the tenant).
type Outgoing = (String, Option<String>);

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

    /// Sends every task of `tenant`'s job, one message per user. Safe to repeat: the worker
    /// skips a task the job already counts as done.
    pub async fn send_all(&self, tenant: &Tenant, tasks: &[Task]) -> Result<(), QueueError> {
        self.send_all_after(tenant, tasks, Duration::ZERO).await
    }

    /// Sends `tasks` like [`TaskQueue::send_all`], each message invisible for `delay` first
    /// (SQS's `DelaySeconds`, rounded up, at most 15 minutes).
    pub async fn send_all_after(
        &self,
        tenant: &Tenant,
        tasks: &[Task],
        delay: Duration,
    ) -> Result<(), QueueError> {
        let delay_seconds = i32::try_from(delay.as_millis().div_ceil(1000))
            .unwrap_or(MAX_DELAY_SECONDS)
            .min(MAX_DELAY_SECONDS);
        let group = Some(tenant.as_str().to_owned());
        let messages = TaskMessage::group(tasks)
            .iter()
            .map(|message| Ok((serde_json::to_string(message)?, group.clone())))
            .collect::<Result<Vec<_>, _>>()
            .map_err(QueueError::Encode)?;
        let chunks: Vec<Vec<Outgoing>> = messages.chunks(BATCH).map(<[_]>::to_vec).collect();
        stream::iter(chunks)
            .map(|chunk| self.send_batch(chunk, delay_seconds))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn send_batch(
        &self,
        messages: Vec<Outgoing>,
        delay_seconds: i32,
    ) -> Result<(), QueueError> {
        let mut pending: Vec<(String, &Outgoing)> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (i.to_string(), m))
            .collect();
        let mut sender_fault = false;
        for round in 0..ROUNDS {
            let entries = pending
                .iter()
                .map(|(id, (body, group))| {
                    SendMessageBatchRequestEntry::builder()
                        .id(id)
                        .message_body(body)
                        .set_message_group_id(group.clone())
                        .set_delay_seconds((delay_seconds > 0).then_some(delay_seconds))
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

    /// Moves every message of `dead_letter_url` back to this queue, with its group, as SQS's
    /// own redrive (StartMessageMoveTask) does on AWS; returns how many moved. Each batch is sent before it
    /// is deleted from the dead-letter queue, so a crash in between duplicates tasks (harmless:
    /// the worker skips what the job counts as done) and never loses one.
    pub async fn redrive(&self, dead_letter_url: &str) -> Result<usize, QueueError> {
        let mut moved = 0;
        loop {
            let received = self
                .client
                .receive_message()
                .queue_url(dead_letter_url)
                .max_number_of_messages(BATCH as i32)
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(|e| QueueError::call("ReceiveMessage", e))?;
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(moved);
            }
            let outgoing = messages
                .iter()
                .map(|m| {
                    let group = m
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                        .cloned();
                    (m.body().unwrap_or_default().to_owned(), group)
                })
                .collect();
            self.send_batch(outgoing, 0).await?;
            let entries = messages
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                        .build()
                        .map_err(QueueError::Request)
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.client
                .delete_message_batch()
                .queue_url(dead_letter_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| QueueError::call("DeleteMessageBatch", e))?;
            moved += messages.len();
        }
    }
}
