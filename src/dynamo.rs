//! DynamoDB plumbing shared by the data store and the control table: batched writes and reads
//! that finish their unprocessed remainder, and paged prefix queries.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, ReturnValue, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use futures::{stream, StreamExt, TryStreamExt};

use crate::domain::entity::Key;
use crate::fault::Fault;

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// BatchWriteItem's limit.
const WRITE_BATCH: usize = 25;
/// BatchGetItem's limit.
const GET_BATCH: usize = 100;
/// Batches in flight at once per call.
const CONCURRENCY: usize = 8;
/// Single-item deletes in flight at once per call.
const DELETE_CONCURRENCY: usize = 32;
/// Rounds of retrying unprocessed items before giving up (throttling past the retries).
const UNPROCESSED_ROUNDS: u32 = 10;

/// A DynamoDB call that failed, kept with its cause and classified once (see [`Fault`]).
#[derive(Debug, thiserror::Error)]
pub enum DynamoError {
    #[error("DynamoDB {operation} failed")]
    Call {
        operation: &'static str,
        fault: Fault,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("DynamoDB {operation} request could not be built")]
    Request {
        operation: &'static str,
        #[source]
        source: BuildError,
    },
    #[error("DynamoDB {operation} left items unprocessed after {UNPROCESSED_ROUNDS} rounds")]
    Throttled { operation: &'static str },
    #[error("an item of the table does not have the expected shape")]
    Shape(#[source] serde_dynamo::Error),
}

impl DynamoError {
    /// A failed call, classified from the SDK's error.
    pub fn call<E>(operation: &'static str, source: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        DynamoError::Call {
            operation,
            fault: Fault::of(&source),
            source: Box::new(source),
        }
    }

    /// Whether retrying later can help.
    pub fn fault(&self) -> Fault {
        match self {
            DynamoError::Call { fault, .. } => *fault,
            // Unprocessed items are DynamoDB's way of throttling a batch.
            DynamoError::Throttled { .. } => Fault::Transient,
            DynamoError::Request { .. } | DynamoError::Shape(_) => Fault::Defect,
        }
    }
}

/// Whether a call failed only because its condition did not hold: an expected outcome of a
/// conditional write (a repeat, a lost race), never an error.
pub fn is_conditional_check_failed<E: ProvideErrorMetadata>(
    error: &aws_sdk_dynamodb::error::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool {
    error.code() == Some("ConditionalCheckFailedException")
}

/// Whether a conditional write applied: `Ok(false)` when only its condition failed, the error
/// for any other failure.
pub fn applied<T, E>(
    operation: &'static str,
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<bool, DynamoError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(error) if is_conditional_check_failed(&error) => Ok(false),
        Err(error) => Err(DynamoError::call(operation, error)),
    }
}

pub fn key_item(key: &Key) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(key.pk.clone())),
        ("sk".to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

pub fn item_key(item: &Item) -> Option<Key> {
    match (item.get("pk"), item.get("sk")) {
        (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => Some(Key {
            pk: pk.clone(),
            sk: sk.clone(),
        }),
        _ => None,
    }
}

pub fn put_request(item: Item) -> WriteRequest {
    WriteRequest::builder()
        .put_request(
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .expect("item is set"),
        )
        .build()
}

pub fn delete_request(key: &Key) -> WriteRequest {
    WriteRequest::builder()
        .delete_request(
            DeleteRequest::builder()
                .set_key(Some(key_item(key)))
                .build()
                .expect("key is set"),
        )
        .build()
}

/// Waits before retrying unprocessed items: exponential, with jitter (half to all of it), so the tasks a
/// throttled partition slowed down do not all come back at the same moment.
async fn backoff(round: u32) {
    let ceiling = 10u64 << round.min(7);
    let wait = rand::random_range(ceiling / 2..=ceiling);
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

/// Writes every request, 25 to a batch, several batches at once, retrying what DynamoDB leaves
/// unprocessed. Puts and deletes are idempotent, so a retry of the whole call is safe too.
pub async fn batch_write(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
) -> Result<(), DynamoError> {
    batch_write_counting(client, table, requests, &AtomicU64::new(0)).await
}

/// Runs `calls`, `limit` at once, each to its end even when another fails, and returns their
/// results (in the order they ended), or the first error after: none is dropped in the
/// middle, so what the others applied is known (and counted by those that count).
pub async fn settle_all<T, E>(
    calls: impl IntoIterator<Item = impl Future<Output = Result<T, E>>>,
    limit: usize,
) -> Result<Vec<T>, E> {
    stream::iter(calls)
        .buffer_unordered(limit)
        .collect::<Vec<Result<T, E>>>()
        .await
        .into_iter()
        .collect()
}

/// Writes like [`batch_write`], adding to `applied` each request as DynamoDB takes it. Every
/// batch is sent and waited for even when another fails, so that what was applied is counted
/// (a batch dropped in the middle of its call may or may not have been); the first error is
/// returned after.
pub async fn batch_write_counting(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
    applied: &AtomicU64,
) -> Result<(), DynamoError> {
    let chunks: Vec<Vec<WriteRequest>> = requests
        .chunks(WRITE_BATCH)
        .map(<[WriteRequest]>::to_vec)
        .collect();
    settle_all(
        chunks
            .into_iter()
            .map(|chunk| write_chunk(client, table, chunk, applied)),
        CONCURRENCY,
    )
    .await
    .map(drop)
}

async fn write_chunk(
    client: &Client,
    table: &str,
    mut chunk: Vec<WriteRequest>,
    applied: &AtomicU64,
) -> Result<(), DynamoError> {
    for round in 0..UNPROCESSED_ROUNDS {
        let sent = chunk.len();
        let output = client
            .batch_write_item()
            .request_items(table, chunk)
            .send()
            .await
            .map_err(|e| DynamoError::call("BatchWriteItem", e))?;
        chunk = output
            .unprocessed_items
            .and_then(|mut u| u.remove(table))
            .unwrap_or_default();
        applied.fetch_add((sent - chunk.len()) as u64, Ordering::Relaxed);
        if chunk.is_empty() {
            return Ok(());
        }
        backoff(round).await;
    }
    Err(DynamoError::Throttled {
        operation: "BatchWriteItem",
    })
}

/// Deletes every item at `keys` with single `DeleteItem` calls, several at once, adding to
/// `found` each that existed (`ReturnValues: ALL_OLD`), so concurrent deleters count an item
/// once. Every delete is waited for even when another fails; the first error is returned after.
pub async fn delete_each_counting(
    client: &Client,
    table: &str,
    keys: Vec<Key>,
    found: &AtomicU64,
) -> Result<(), DynamoError> {
    let deletes = keys.into_iter().map(|key| async move {
        let output = client
            .delete_item()
            .table_name(table)
            .set_key(Some(key_item(&key)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| DynamoError::call("DeleteItem", e))?;
        if output.attributes.is_some_and(|a| !a.is_empty()) {
            found.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    settle_all(deletes, DELETE_CONCURRENCY).await.map(drop)
}

/// Reads the items at `keys` (missing ones are simply absent from the answer), 100 to a batch.
/// `consistent` asks for strongly consistent reads.
pub async fn batch_get(
    client: &Client,
    table: &str,
    keys: &[Key],
    consistent: bool,
) -> Result<Vec<Item>, DynamoError> {
    let mut unique: Vec<&Key> = keys.iter().collect();
    unique.sort();
    unique.dedup();
    let chunks: Vec<Vec<Item>> = unique
        .chunks(GET_BATCH)
        .map(|c| c.iter().map(|k| key_item(k)).collect())
        .collect();
    let pages: Vec<Vec<Item>> = stream::iter(chunks)
        .map(|chunk| get_chunk(client, table, chunk, consistent))
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(pages.into_iter().flatten().collect())
}

async fn get_chunk(
    client: &Client,
    table: &str,
    mut keys: Vec<Item>,
    consistent: bool,
) -> Result<Vec<Item>, DynamoError> {
    let mut items = Vec::with_capacity(keys.len());
    for round in 0..UNPROCESSED_ROUNDS {
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(consistent)
            .build()
            .map_err(|source| DynamoError::Request {
                operation: "BatchGetItem",
                source,
            })?;
        let mut output = client
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|e| DynamoError::call("BatchGetItem", e))?;
        items.extend(
            output
                .responses
                .as_mut()
                .and_then(|r| r.remove(table))
                .unwrap_or_default(),
        );
        keys = output
            .unprocessed_keys
            .and_then(|mut u| u.remove(table))
            .map(|k| k.keys)
            .unwrap_or_default();
        if keys.is_empty() {
            return Ok(items);
        }
        backoff(round).await;
    }
    Err(DynamoError::Throttled {
        operation: "BatchGetItem",
    })
}

/// One page of a `begins_with` query on the sort key, and where the next page starts.
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<Item>,
}

/// Queries one page of `pk`'s items whose sort key starts with `prefix`.
pub async fn query_prefix(
    client: &Client,
    table: &str,
    pk: &str,
    prefix: &str,
    limit: i32,
    start: Option<Item>,
    consistent: bool,
) -> Result<Page, DynamoError> {
    let output = client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
        .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
        .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
        .limit(limit)
        .consistent_read(consistent)
        .set_exclusive_start_key(start)
        .send()
        .await
        .map_err(|e| DynamoError::call("Query", e))?;
    Ok(Page {
        items: output.items.unwrap_or_default(),
        next: output.last_evaluated_key.filter(|k| !k.is_empty()),
    })
}

/// Every item `query` finds, page after page.
pub async fn query_pages(query: QueryFluentBuilder) -> Result<Vec<Item>, DynamoError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = query
            .clone()
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| DynamoError::call("Query", e))?;
        items.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(items),
        }
    }
}

/// Every item of `pk` whose sort key lies between `first` and `last`, both included.
pub async fn query_between(
    client: &Client,
    table: &str,
    pk: &str,
    (first, last): (&str, &str),
    consistent: bool,
) -> Result<Vec<Item>, DynamoError> {
    let query = client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
        .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
        .expression_attribute_values(":first", AttributeValue::S(first.to_owned()))
        .expression_attribute_values(":last", AttributeValue::S(last.to_owned()))
        .consistent_read(consistent);
    query_pages(query).await
}

/// Every item of `pk` whose sort key starts with `prefix`.
pub async fn query_all(
    client: &Client,
    table: &str,
    pk: &str,
    prefix: &str,
    consistent: bool,
) -> Result<Vec<Item>, DynamoError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = query_prefix(client, table, pk, prefix, 1000, start, consistent).await?;
        items.extend(page.items);
        match page.next {
            Some(next) => start = Some(next),
            None => return Ok(items),
        }
    }
}
