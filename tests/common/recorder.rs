//! A recording SDK interceptor: every request a client sends, as the IAM action it needs, the
//! table or queue it names and, for DynamoDB, the partition keys it touches (what a
//! `dynamodb:LeadingKeys` condition sees). Registered on test clients only.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use serde_json::Value;

/// One AWS request as IAM sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    /// `dynamodb:UpdateItem`, `sqs:SendMessage`, ...
    pub action: String,
    /// The table name or queue URL the request names.
    pub resource: String,
    /// The partition key values the request touches (DynamoDB only; empty when unknown).
    pub leading_keys: Vec<String>,
}

/// Collects every call of the clients it is registered on (attempts included: a retried call
/// needs the same permission).
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Call>>>);

impl Recorder {
    pub fn calls(&self) -> Vec<Call> {
        let mut calls = self.0.lock().unwrap().clone();
        calls.sort();
        calls.dedup();
        calls
    }

    /// A DynamoDB client like `client` that records its calls here.
    pub fn dynamodb(&self, client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
        super::intercepted(client, self.clone())
    }

    /// An SQS client like `client` that records its calls here.
    pub fn sqs(&self, client: &aws_sdk_sqs::Client) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::from_conf(
            client
                .config()
                .to_builder()
                .interceptor(self.clone())
                .build(),
        )
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "PermissionRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let metadata = cfg
            .load::<Metadata>()
            .ok_or("the request carries no operation metadata")?;
        let body = context
            .request()
            .body()
            .bytes()
            .ok_or("the request body is a stream")?;
        let body: Value = serde_json::from_slice(body)?;
        let calls = match metadata.service() {
            "DynamoDB" => dynamodb_calls(metadata.name(), &body),
            "SQS" => vec![sqs_call(metadata.name(), &body)?],
            other => return Err(format!("unexpected service {other}").into()),
        };
        self.0.lock().unwrap().extend(calls);
        Ok(())
    }
}

/// One call per table the request names (a batch may name several).
fn dynamodb_calls(operation: &str, body: &Value) -> Vec<Call> {
    let action = format!("dynamodb:{operation}");
    if let Some(table) = body["TableName"].as_str() {
        let mut keys: Vec<String> = [&body["Key"]["pk"]["S"], &body["Item"]["pk"]["S"]]
            .into_iter()
            .filter_map(|pk| pk.as_str().map(str::to_owned))
            .collect();
        keys.extend(query_partition(body));
        return vec![call(action, table, keys)];
    }
    let Some(tables) = body["RequestItems"].as_object() else {
        return vec![call(action, "<no table named>", Vec::new())];
    };
    tables
        .iter()
        .map(|(table, requests)| {
            // BatchGetItem: {"Keys": [...]}; BatchWriteItem: [{"PutRequest": {"Item"}}, ...].
            let keys = match requests {
                Value::Object(get) => get["Keys"].as_array().cloned().unwrap_or_default(),
                Value::Array(writes) => writes
                    .iter()
                    .map(|w| {
                        let put = &w["PutRequest"]["Item"];
                        if put.is_null() {
                            w["DeleteRequest"]["Key"].clone()
                        } else {
                            put.clone()
                        }
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let keys = keys
                .iter()
                .filter_map(|k| k["pk"]["S"].as_str().map(str::to_owned))
                .collect();
            call(action.clone(), table, keys)
        })
        .collect()
}

/// The partition a `Query` reads: the value bound to `pk` in its key condition.
fn query_partition(body: &Value) -> Option<String> {
    let condition = body["KeyConditionExpression"].as_str()?;
    let placeholder = condition
        .split(" AND ")
        .find_map(|part| part.trim().strip_prefix("pk = "))?;
    body["ExpressionAttributeValues"][placeholder.trim()]["S"]
        .as_str()
        .map(str::to_owned)
}

/// SQS authorizes a batch operation with the single operation's action.
fn sqs_call(operation: &str, body: &Value) -> Result<Call, BoxError> {
    let action = operation.strip_suffix("Batch").unwrap_or(operation);
    let queue = body["QueueUrl"]
        .as_str()
        .ok_or_else(|| format!("SQS {operation} names no QueueUrl"))?;
    Ok(call(format!("sqs:{action}"), queue, Vec::new()))
}

fn call(action: String, resource: &str, mut leading_keys: Vec<String>) -> Call {
    leading_keys.sort();
    leading_keys.dedup();
    Call {
        action,
        resource: resource.to_owned(),
        leading_keys,
    }
}
