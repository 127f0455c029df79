//! The test harness: each test gets its own tables and queues on the real emulators (dynalite
//! for DynamoDB, moto for SQS; `make test`'s, or the test process's own), and drives the real
//! handlers.
#![allow(dead_code)]

pub mod emulators;
pub mod faults;
pub mod policy;
pub mod receiver;
pub mod recorder;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use erasure::api::Api;
use erasure::config::{ApiConfig, Tables};
use erasure::control::ControlStore;
use erasure::domain::entity::{Entity, Profile};
use erasure::domain::ids::ApiKey;
use erasure::domain::tenant::Tenant;
use erasure::infra;
use erasure::queue::TaskQueue;
use erasure::store::fixture::Fixture;
use erasure::store::{DataStore, StoreError};
use erasure::worker::{Delivery, Worker};
use serde_json::Value;

pub type Item = HashMap<String, AttributeValue>;

/// The bytes of a recorded event of `events/`.
pub fn recorded_event(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Test queues make a failed task visible again after this many seconds.
pub const TEST_VISIBILITY_SECONDS: u32 = 1;

pub struct TestEnv {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub tables: Tables,
    pub queue_url: String,
    pub dlq_url: String,
    pub api: Api,
    pub worker: Worker,
    pub data: DataStore,
    pub control: ControlStore,
    /// How long each simulated worker invocation may run before its tasks pause.
    pub invocation_budget: Duration,
}

pub const API_KEY: &str = "test-api-key";
pub const AUTH_TOKEN: &str = "test-auth-token";

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        erasure::domain::ids::JobId::generate().as_str()
    )
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with_rate_limit(10_000).await
    }

    pub async fn with_rate_limit(rate_limit_per_minute: u32) -> Self {
        Self::on(&emulators::dynamodb_endpoint(), rate_limit_per_minute).await
    }

    /// An environment whose tables live on the DynamoDB at `dynamodb_endpoint` (one a test
    /// started itself, to stop and restart it).
    pub async fn on(dynamodb_endpoint: &str, rate_limit_per_minute: u32) -> Self {
        let sqs_endpoint = emulators::sqs_endpoint();
        let (dynamodb, sqs) = infra::emulator_clients(dynamodb_endpoint, &sqs_endpoint).await;
        let tables = Tables {
            data: unique("data"),
            control: unique("control"),
        };
        infra::ensure_table(&dynamodb, &tables.data, &infra::DATA_TABLE)
            .await
            .unwrap();
        infra::ensure_table(&dynamodb, &tables.control, &infra::CONTROL_TABLE)
            .await
            .unwrap();
        let queues = infra::ensure_queues(&sqs, &unique("tasks"), TEST_VISIBILITY_SECONDS)
            .await
            .unwrap();
        let control = ControlStore::new(dynamodb.clone(), &tables.control);
        let data = DataStore::new(dynamodb.clone(), &tables.data);
        control
            .put_tenant(&ApiKey::parse(API_KEY).unwrap(), AUTH_TOKEN, 0)
            .await
            .unwrap();
        let api_config = ApiConfig {
            tables: tables.clone(),
            task_queue_url: queues.task_queue_url.clone(),
            rate_limit_per_minute,
            job_retention_days: 30,
            export_token_key: export_token_key(),
            webhook_queue_url: None,
        };
        let api = Api::new(
            control.clone(),
            data.clone(),
            TaskQueue::new(sqs.clone(), &queues.task_queue_url),
            api_config,
        );
        let worker = Worker::new(
            control.clone(),
            data.clone(),
            TaskQueue::new(sqs.clone(), &queues.task_queue_url),
            infra::MAX_RECEIVE_COUNT,
        );
        Self {
            dynamodb,
            sqs,
            tables,
            queue_url: queues.task_queue_url,
            dlq_url: queues.dead_letter_queue_url,
            api,
            worker,
            data,
            control,
            invocation_budget: Duration::from_secs(600),
        }
    }

    /// Whether the store accepts new data naming `user` (a profile, outside any organization);
    /// `false` when a tombstone refuses it.
    pub async fn accepts_data_for(&self, user: &str) -> bool {
        let profile = Entity::Profile(Profile {
            user_id: user.to_owned(),
            name: "Someone New".into(),
            email: "someone.new@example.test".into(),
            photo_url: None,
        });
        match self.data.write(&self.tenant(), vec![profile]).await {
            Ok(()) => true,
            Err(StoreError::UserErased { .. }) => false,
            Err(other) => panic!("writing a profile: {other}"),
        }
    }

    pub fn tenant(&self) -> Tenant {
        Tenant::from_api_key(API_KEY)
    }

    /// Another tenant, with its own key and token.
    pub async fn add_tenant(&self, api_key: &str, token: &str) -> Tenant {
        self.control
            .put_tenant(&ApiKey::parse(api_key).unwrap(), token, 0)
            .await
            .unwrap();
        Tenant::from_api_key(api_key)
    }

    pub async fn seed(&self, tenant: &Tenant, fixture_json: &str) {
        let fixture = Fixture::parse(fixture_json).unwrap();
        self.data
            .load_fixture(tenant, fixture, |_| {})
            .await
            .unwrap();
    }

    /// A worker of this environment's queue and tables whose store is `data` (another tuning
    /// or write window).
    pub fn worker_with(&self, data: DataStore) -> Worker {
        Worker::new(
            self.control.clone(),
            data,
            TaskQueue::new(self.sqs.clone(), &self.queue_url),
            infra::MAX_RECEIVE_COUNT,
        )
    }

    /// A worker on a table that does not exist: every task it runs fails.
    pub fn broken_worker(&self) -> Worker {
        Worker::new(
            self.control.clone(),
            DataStore::new(self.dynamodb.clone(), "no-such-table"),
            TaskQueue::new(self.sqs.clone(), &self.queue_url),
            infra::MAX_RECEIVE_COUNT,
        )
    }

    /// Sends a request through the real handler, with the tenant's credentials.
    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.request(
            "POST",
            path,
            &[
                ("x-velt-api-key", API_KEY),
                ("x-velt-auth-token", AUTH_TOKEN),
            ],
            body,
        )
        .await
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        request_to(&self.api, method, path, headers, body).await
    }

    pub async fn start_job(&self, body: &str) -> String {
        let (status, answer) = self.post("/v2/users/data/delete", body).await;
        assert_eq!(status, 202, "{answer}");
        answer["data"]["jobId"].as_str().unwrap().to_owned()
    }

    pub async fn status(&self, job_id: &str) -> Value {
        let (status, answer) = self
            .post(
                "/v2/users/data/delete/status",
                &format!(r#"{{"data":{{"jobId":"{job_id}"}}}}"#),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        answer["result"]["data"].clone()
    }

    /// Does one round of what Lambda's event source mapping does: receive a batch, run the
    /// worker, delete what succeeded. Returns the number of messages received.
    pub async fn deliver_once(&self, worker: &Worker) -> usize {
        let messages = self.receive(&self.queue_url).await;
        let deliveries: Vec<Delivery> = messages
            .iter()
            .map(|m| Delivery {
                message_id: m.message_id().unwrap().to_owned(),
                body: m.body().unwrap().to_owned(),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap(),
            })
            .collect();
        let failed = worker.handle(deliveries, self.deadline()).await;
        for m in &messages {
            if !failed.iter().any(|f| Some(f.as_str()) == m.message_id()) {
                self.delete_received(&self.queue_url, m).await;
            }
        }
        messages.len()
    }

    /// Up to 10 messages of the queue at `url`, received with their system attributes.
    pub async fn receive(&self, url: &str) -> Vec<Message> {
        self.sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    }

    /// Runs a task message through the worker as its first delivery, which must succeed, and
    /// deletes it from the task queue, as the event source does.
    pub async fn deliver_first(&self, message: &Message) {
        let delivery = Delivery {
            message_id: message.message_id().unwrap().to_owned(),
            body: message.body().unwrap().to_owned(),
            receive_count: 1,
        };
        assert!(self
            .worker
            .handle(vec![delivery], self.deadline())
            .await
            .is_empty());
        self.delete_received(&self.queue_url, message).await;
    }

    /// Deletes a message received from the queue at `url`.
    ///
    /// A message held past its visibility timeout may have been received again meanwhile (by
    /// another poller): its old receipt handle no longer deletes it. SQS answers that call with
    /// success and leaves the message to its new receiver; moto refuses the handle, which means
    /// the same here.
    pub async fn delete_received(&self, url: &str, message: &Message) {
        let deleted = self
            .sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(message.receipt_handle().unwrap())
            .send()
            .await;
        if let Err(error) = deleted {
            let code = aws_sdk_sqs::error::ProvideErrorMetadata::code(&error);
            assert_eq!(code, Some("ReceiptHandleIsInvalid"), "{error:?}");
        }
    }

    /// Sends every message of the dead-letter queue back to the task queue, as an operator's
    /// redrive does; returns how many.
    pub async fn redrive(&self) -> usize {
        let dead = self.receive(&self.dlq_url).await;
        for m in &dead {
            self.sqs
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(m.body().unwrap())
                .send()
                .await
                .unwrap();
        }
        dead.len()
    }

    /// Registers `url` as the tenant's webhook, with the test secret `whsec_test`.
    pub async fn set_webhook(&self, url: &str) {
        self.control
            .set_webhook(&ApiKey::parse(API_KEY).unwrap(), url, "whsec_test")
            .await
            .unwrap();
    }

    /// The deadline the worker is given: far away, unless a test shortened it.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.invocation_budget
    }

    /// Delivers until the queue is empty: nothing to receive, nothing in flight and nothing
    /// delayed (a continuation, or a copy of a task waiting for another's lease to end).
    pub async fn drain(&self, worker: &Worker) {
        let give_up = Instant::now() + Duration::from_secs(180);
        let mut idle_rounds = 0;
        while idle_rounds < 3 {
            assert!(Instant::now() < give_up, "the task queue never drained");
            if self.deliver_once(worker).await > 0 {
                idle_rounds = 0;
            } else if self.messages_pending(&self.queue_url).await > 0 {
                tokio::time::sleep(Duration::from_millis(600)).await;
            } else {
                idle_rounds += 1;
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
        }
    }

    /// Messages in the queue, received or not, delayed ones included.
    pub async fn messages_pending(&self, url: &str) -> usize {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(
                aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed,
            )
            .send()
            .await
            .unwrap();
        let delayed = attributes
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            })
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        delayed + self.queue_depth(url).await
    }

    pub async fn queue_depth(&self, url: &str) -> usize {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let get = |name| {
            attributes
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
        };
        get(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + get(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    }

    /// Deletes one item of the data table behind the store's back, as a crash or a fix would.
    pub async fn delete_data_item(&self, key: &erasure::domain::entity::Key) {
        self.dynamodb
            .delete_item()
            .table_name(&self.tables.data)
            .key("pk", AttributeValue::S(key.pk.clone()))
            .key("sk", AttributeValue::S(key.sk.clone()))
            .send()
            .await
            .unwrap();
    }

    /// Every item of a table, by full scan (tests only: the service never scans).
    pub async fn scan(&self, table: &str) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return items,
            }
        }
    }
}

/// Sends a request through `api`, the real handler, and reads its JSON answer.
pub async fn request_to(
    api: &Api,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let mut request = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = api
        .handle(request.body(body.as_bytes().to_vec()).unwrap())
        .await;
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
    let status = response.status().as_u16();
    (status, serde_json::from_str(response.body()).unwrap())
}

/// The `(pk, sk)` of an item.
pub fn key_of(item: &Item) -> (String, String) {
    let s = |n: &str| item[n].as_s().unwrap().clone();
    (s("pk"), s("sk"))
}

/// A DynamoDB client like `client` that also runs `interceptor` on every call.
pub fn intercepted(
    client: &aws_sdk_dynamodb::Client,
    interceptor: impl aws_sdk_dynamodb::config::Intercept + 'static,
) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        client
            .config()
            .to_builder()
            .interceptor(interceptor)
            .build(),
    )
}

/// Whether a control-table item is a job's own item (not one of its task items).
pub fn is_job_item(item: &Item) -> bool {
    let (pk, sk) = key_of(item);
    pk.starts_with("JOB#") && sk == "JOB"
}

/// The `entity` attribute of an item.
pub fn entity_of(item: &Item) -> &str {
    item.get("entity")
        .and_then(|v| v.as_s().ok())
        .map_or("", String::as_str)
}

/// Log lines captured in memory, for tests that search what was logged.
#[derive(Clone, Default)]
pub struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Buffer {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The key that seals export page tokens in tests.
pub fn export_token_key() -> erasure::config::ExportTokenKey {
    erasure::config::ExportTokenKey::parse("export-token-key-for-tests-only-0123456789").unwrap()
}

/// The tables and queues named in the env file of `cargo lambda watch` (`emulators::lambda_watch`),
/// made if missing; the variables of that file and clients for its emulators.
pub async fn watch_world() -> (
    std::collections::HashMap<String, String>,
    aws_sdk_dynamodb::Client,
    aws_sdk_sqs::Client,
) {
    let (_, env_file) = emulators::lambda_watch();
    let env_text = std::fs::read_to_string(env_file).expect("the env file of watch");
    let vars: std::collections::HashMap<String, String> =
        erasure::bridge::function::read_env_file(&env_text)
            .into_iter()
            .collect();
    let (dynamodb, sqs) = infra::emulator_clients(
        &vars["AWS_ENDPOINT_URL_DYNAMODB"],
        &vars["AWS_ENDPOINT_URL_SQS"],
    )
    .await;
    infra::ensure_table(&dynamodb, &vars["DATA_TABLE"], &infra::DATA_TABLE)
        .await
        .unwrap();
    infra::ensure_table(&dynamodb, &vars["CONTROL_TABLE"], &infra::CONTROL_TABLE)
        .await
        .unwrap();
    for url in [&vars["TASK_QUEUE_URL"], &vars["WEBHOOK_QUEUE_URL"]] {
        let name = url.rsplit('/').next().unwrap();
        let created = infra::ensure_queues(&sqs, name, 2).await.unwrap();
        assert_eq!(&created.task_queue_url, url);
    }
    (vars, dynamodb, sqs)
}
