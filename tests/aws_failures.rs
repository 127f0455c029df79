//! How the api answers when AWS fails: a misconfiguration (a table that does not exist) is a
//! 500 logged as a defect with its whole cause chain; a dependency that refuses connections or
//! accepts them and never answers is a 503, within the api's SDK timeouts.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{request_to, unique, Buffer, API_KEY, AUTH_TOKEN};
use erasure::api::Api;
use erasure::config::{ApiConfig, Tables};
use erasure::control::ControlStore;
use erasure::infra;
use erasure::queue::TaskQueue;
use erasure::store::DataStore;
use serde_json::{json, Value};

/// The api on these clients, with tables and a queue of these names.
fn api_on(dynamodb: aws_sdk_dynamodb::Client, sqs: aws_sdk_sqs::Client, tables: Tables) -> Api {
    let queue_url = "http://127.0.0.1:1/123456789012/never-reached".to_owned();
    Api::new(
        ControlStore::new(dynamodb.clone(), &tables.control),
        DataStore::new(dynamodb, &tables.data),
        TaskQueue::new(sqs, &queue_url),
        ApiConfig {
            tables,
            task_queue_url: queue_url,
            rate_limit_per_minute: 600,
            job_retention_days: 30,
            export_token_key: erasure::config::ExportTokenKey::parse(
                "export-token-key-for-tests-only-0123456789",
            )
            .unwrap(),
            webhook_queue_url: None,
        },
    )
}

fn missing_tables() -> Tables {
    Tables {
        data: unique("missing-data"),
        control: unique("missing-control"),
    }
}

/// An address on which nothing listens: connecting is refused.
async fn closed_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}")
}

/// A delete request with valid credentials: its first call is the tenant's GetItem.
async fn delete(api: &Api) -> (u16, Value) {
    let headers = [
        ("x-velt-api-key", API_KEY),
        ("x-velt-auth-token", AUTH_TOKEN),
    ];
    let body = r#"{"data":{"userIds":["u1"]}}"#;
    // Generous, only so that a regression hangs no test run; speed is not asserted.
    tokio::time::timeout(
        Duration::from_secs(60),
        request_to(api, "POST", "/v2/users/data/delete", &headers, body),
    )
    .await
    .expect("the api answers")
}

/// Runs `api`'s delete with the api's JSON log lines captured.
async fn delete_logged(api: &Api) -> ((u16, Value), Vec<Value>) {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("erasure=info"))
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let answer = {
        let _guard = tracing::subscriber::set_default(subscriber);
        delete(api).await
    };
    let text = buffer.text();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (answer, lines)
}

fn failure_log(lines: &[Value]) -> &Value {
    lines
        .iter()
        .find(|l| l["fields"]["fault"].is_string())
        .unwrap_or_else(|| panic!("no failure logged: {lines:?}"))
}

#[tokio::test]
async fn a_table_that_does_not_exist_is_a_defect_answered_500_and_logged_with_its_chain() {
    let dynamodb_endpoint = common::emulators::dynamodb_endpoint();
    let (dynamodb, sqs) =
        infra::emulator_clients(&dynamodb_endpoint, &closed_endpoint().await).await;
    let api = api_on(dynamodb, sqs, missing_tables());

    let ((status, body), logs) = delete_logged(&api).await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        json!({"error": {"message": "internal error", "status": "INTERNAL"}})
    );
    let log = failure_log(&logs);
    assert_eq!(log["level"], "ERROR");
    assert_eq!(log["fields"]["fault"], "defect");
    assert_eq!(
        log["fields"]["message"],
        "request failed: misconfiguration or bug"
    );
    let chain = log["fields"]["error_chain"].as_str().unwrap();
    assert!(
        chain.starts_with("internal error: DynamoDB GetItem failed: ")
            && chain.contains("ResourceNotFoundException"),
        "the chain reaches DynamoDB's own error: {chain}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_and_answered_503() {
    let endpoint = closed_endpoint().await;
    let (dynamodb, sqs) = infra::emulator_clients(&endpoint, &endpoint).await;
    let api = api_on(dynamodb, sqs, missing_tables());

    let ((status, body), logs) = delete_logged(&api).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["status"], "UNAVAILABLE");
    let log = failure_log(&logs);
    assert_eq!(log["fields"]["fault"], "transient");
    assert!(
        log["fields"]["error_chain"]
            .as_str()
            .unwrap()
            .contains("dispatch failure"),
        "{log}"
    );
}

#[tokio::test]
async fn a_dependency_that_accepts_and_never_answers_is_answered_503_within_the_sdk_timeouts() {
    // Accepts every connection and keeps it open without a byte in return, as a frozen
    // DynamoDB would.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = held.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            holder.lock().unwrap().push(socket);
        }
    });
    let (dynamodb, sqs) = infra::emulator_clients_with_timeouts(
        &endpoint,
        &closed_endpoint().await,
        erasure::aws::api_timeouts(),
    )
    .await;
    let api = api_on(dynamodb, sqs, missing_tables());

    let (status, body) = delete(&api).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["status"], "UNAVAILABLE");
    assert!(
        !held.lock().unwrap().is_empty(),
        "the api reached the frozen endpoint"
    );
}
