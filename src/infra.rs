//! The shapes of the tables and queues, in one place: `erasure infra create` builds them locally and
//! a test checks that `template.yaml` declares the same.

use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

/// Partition key attribute of both tables.
pub const PARTITION_KEY: &str = "pk";
/// Sort key attribute of both tables.
pub const SORT_KEY: &str = "sk";
/// The control table's TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expiresAt";
/// Receives before SQS moves a task to the dead-letter queue; the worker reads the same number
/// (`MAX_RECEIVE_COUNT`) to know a task's last attempt.
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// The worker function's timeout (`WorkerFunction.Timeout` in the template); the local bridge
/// gives the worker the same.
pub const WORKER_TIMEOUT_SECONDS: u32 = 120;
/// How long a received task stays invisible on AWS: six times the worker's timeout.
pub const VISIBILITY_TIMEOUT_SECONDS: u32 = 6 * WORKER_TIMEOUT_SECONDS;
/// The api function's timeout and memory (`ApiFunction` in the template).
pub const API_TIMEOUT_SECONDS: u32 = 10;
pub const API_MEMORY_MB: u32 = 256;
/// The worker function's memory (`WorkerFunction.MemorySize` in the template).
pub const WORKER_MEMORY_MB: u32 = 1024;
/// How long a failed task is kept in the dead-letter queue (14 days, the SQS maximum).
pub const DLQ_RETENTION_SECONDS: u32 = 1_209_600;

/// A table's key schema, indexes and TTL: what must match between the code and
/// `template.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub partition_key: &'static str,
    pub sort_key: &'static str,
    pub ttl_attribute: Option<&'static str>,
    pub indexes: &'static [IndexSpec],
}

/// A key attribute's DynamoDB type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeType {
    S,
    N,
}

impl AttributeType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeType::S => "S",
            AttributeType::N => "N",
        }
    }
}

/// A global secondary index, projecting keys only: a reader fetches the items it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: &'static str,
    pub partition_key: (&'static str, AttributeType),
    pub sort_key: (&'static str, AttributeType),
}

/// A tenant's jobs, newest first, for `erasure jobs`. Sparse: only job items carry both
/// `tenant` and `createdAt`, so nothing else is indexed, and the job's own put is the only
/// write it costs (keys only: later updates of the job change no indexed attribute).
pub const JOBS_BY_TENANT: IndexSpec = IndexSpec {
    name: "JobsByTenant",
    partition_key: ("tenant", AttributeType::S),
    sort_key: ("createdAt", AttributeType::N),
};

/// The collaboration data store: entities, per-user reference items and tombstones.
pub const DATA_TABLE: TableSpec = TableSpec {
    partition_key: PARTITION_KEY,
    sort_key: SORT_KEY,
    ttl_attribute: None,
    indexes: &[],
};

/// The control plane: tenants, jobs, idempotency records, rate-limit windows, audit records.
pub const CONTROL_TABLE: TableSpec = TableSpec {
    partition_key: PARTITION_KEY,
    sort_key: SORT_KEY,
    ttl_attribute: Some(TTL_ATTRIBUTE),
    indexes: &[JOBS_BY_TENANT],
};

/// How long a new table may take to become ACTIVE.
const TABLE_ACTIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Errors while creating local infrastructure.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("could not create table {table}")]
    Table {
        table: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("could not create queue {queue}")]
    Queue {
        queue: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Creates `name` with `spec` unless it exists already (on-demand billing, as in the template).
pub async fn ensure_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    spec: &TableSpec,
) -> Result<(), InfraError> {
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| InfraError::Table {
        table: name.to_owned(),
        source,
    };
    let attribute = |name: &str, kind: AttributeType| {
        let kind = match kind {
            AttributeType::S => ScalarAttributeType::S,
            AttributeType::N => ScalarAttributeType::N,
        };
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .map_err(|e| fail(e.into()))
    };
    let key = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(|e| fail(e.into()))
    };
    let mut create = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(spec.partition_key, AttributeType::S)?)
        .attribute_definitions(attribute(spec.sort_key, AttributeType::S)?)
        .key_schema(key(spec.partition_key, KeyType::Hash)?)
        .key_schema(key(spec.sort_key, KeyType::Range)?);
    for index in spec.indexes {
        let ((partition, partition_type), (sort, sort_type)) =
            (index.partition_key, index.sort_key);
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(index.name)
            .key_schema(key(partition, KeyType::Hash)?)
            .key_schema(key(sort, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
            .map_err(|e| fail(e.into()))?;
        create = create
            .attribute_definitions(attribute(partition, partition_type)?)
            .attribute_definitions(attribute(sort, sort_type)?)
            .global_secondary_indexes(gsi);
    }
    let existed = match create.send().await {
        Ok(_) => false,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            true
        }
        Err(error) => return Err(fail(error.into())),
    };
    // CreateTable returns while the table is still being made: items calls before it is
    // ACTIVE are refused as if it did not exist (dynalite, busy, does it too).
    let started = std::time::Instant::now();
    loop {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| fail(e.into()))?;
        let table = described.table();
        let active = table.is_some_and(|t| {
            t.table_status() == Some(&TableStatus::Active)
                && t.global_secondary_indexes()
                    .iter()
                    .all(|i| i.index_status() == Some(&IndexStatus::Active))
        });
        if active {
            break;
        }
        if started.elapsed() > TABLE_ACTIVE_WAIT {
            return Err(fail(
                format!("not ACTIVE after {TABLE_ACTIVE_WAIT:?}").into(),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if existed {
        return Ok(()); // its TTL was set when it was made
    }
    if let Some(ttl) = spec.ttl_attribute {
        let ttl = TimeToLiveSpecification::builder()
            .attribute_name(ttl)
            .enabled(true)
            .build()
            .map_err(|e| fail(e.into()))?;
        // dynalite does not implement UpdateTimeToLive; TTL only matters on AWS, where the
        // template declares it, so a refusal here is not an error.
        let _ = client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(ttl)
            .send()
            .await;
    }
    Ok(())
}

/// The queues a task queue needs: its URL and its dead-letter queue's URL.
#[derive(Debug, Clone)]
pub struct Queues {
    pub task_queue_url: String,
    pub dead_letter_queue_url: String,
}

/// Creates the task queue `name` and its dead-letter queue `name-dlq` with the redrive policy of
/// the template. `visibility_timeout` is shorter locally so that retries show up in seconds.
pub async fn ensure_queues(
    client: &aws_sdk_sqs::Client,
    name: &str,
    visibility_timeout_seconds: u32,
) -> Result<Queues, InfraError> {
    let dlq_name = format!("{name}-dlq");
    let fail = |queue: &str, source: Box<dyn std::error::Error + Send + Sync>| InfraError::Queue {
        queue: queue.to_owned(),
        source,
    };
    let dlq = client
        .create_queue()
        .queue_name(&dlq_name)
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECONDS.to_string(),
        )
        .send()
        .await
        .map_err(|e| fail(&dlq_name, e.into()))?;
    let dlq_url = dlq.queue_url().unwrap_or_default().to_owned();
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| fail(&dlq_name, e.into()))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": MAX_RECEIVE_COUNT.to_string(),
    });
    let queue = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout_seconds.to_string(),
        )
        .send()
        .await
        .map_err(|e| fail(name, e.into()))?;
    Ok(Queues {
        task_queue_url: queue.queue_url().unwrap_or_default().to_owned(),
        dead_letter_queue_url: dlq_url,
    })
}

/// SDK clients for local emulators at these endpoints, with static local credentials: what the
/// tests, the benchmark and the end-to-end run talk to. Nothing here is meant for AWS.
pub async fn emulator_clients(
    dynamodb_endpoint: &str,
    sqs_endpoint: &str,
) -> (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client) {
    emulator_clients_with_timeouts(
        dynamodb_endpoint,
        sqs_endpoint,
        TimeoutConfig::builder().build(),
    )
    .await
}

/// [`emulator_clients`] with a function's timeouts (`erasure::aws`), for tests of how the
/// function behaves when a dependency is slow or stuck. Settings left unset keep the SDK's
/// defaults.
pub async fn emulator_clients_with_timeouts(
    dynamodb_endpoint: &str,
    sqs_endpoint: &str,
    timeouts: TimeoutConfig,
) -> (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client) {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local", "local", None, None, "emulator",
        ))
        .timeout_config(timeouts)
        .load()
        .await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config)
            .endpoint_url(dynamodb_endpoint)
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&config)
            .endpoint_url(sqs_endpoint)
            .build(),
    );
    (dynamodb, sqs)
}
