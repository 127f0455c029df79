//! End to end through the real Lambda emulator: HTTP to `cargo lambda watch` running the `api`
//! binary, SQS (moto) to the `worker` binary through the local bridge, DynamoDB (dynalite).
//! `make test` starts the emulators and watch; this test makes the tables and queue named in
//! watch's env file, so nothing is shared with other tests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use erasure::bridge::{self, BridgeConfig};
use erasure::control::ControlStore;
use erasure::domain::ids::ApiKey;
use erasure::infra;
use erasure::store::entity::Tenant;
use erasure::store::fixture::Fixture;
use erasure::store::DataStore;
use serde_json::{json, Value};

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `make test`, which starts cargo lambda watch")
    })
}

fn env_file() -> HashMap<String, String> {
    std::fs::read_to_string(required("ERASURE_E2E_ENV_FILE"))
        .expect("the env file written by make test")
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn a_deletion_runs_end_to_end_through_cargo_lambda_watch_and_the_bridge() {
    let lambda = required("ERASURE_E2E_LAMBDA_ENDPOINT");
    let vars = env_file();
    let (dynamodb, sqs) = infra::emulator_clients(
        &vars["AWS_ENDPOINT_URL_DYNAMODB"],
        &vars["AWS_ENDPOINT_URL_SQS"],
    )
    .await;
    let queue_url = &vars["TASK_QUEUE_URL"];
    let queue_name = queue_url.rsplit('/').next().unwrap();
    infra::ensure_table(&dynamodb, &vars["DATA_TABLE"], &infra::DATA_TABLE)
        .await
        .unwrap();
    infra::ensure_table(&dynamodb, &vars["CONTROL_TABLE"], &infra::CONTROL_TABLE)
        .await
        .unwrap();
    let queues = infra::ensure_queues(&sqs, queue_name, 2).await.unwrap();
    assert_eq!(&queues.task_queue_url, queue_url);

    let api_key = format!("e2e-{}", erasure::domain::ids::JobId::generate());
    ControlStore::new(dynamodb.clone(), &vars["CONTROL_TABLE"])
        .put_tenant(&ApiKey::parse(&api_key).unwrap(), "e2e-token", 0)
        .await
        .unwrap();
    let tenant = Tenant::from_api_key(&api_key);
    let data = DataStore::new(dynamodb.clone(), &vars["DATA_TABLE"]);
    let fixture = Fixture::parse(include_str!("fixtures/contract-example.json")).unwrap();
    data.load_fixture(&tenant, fixture, |_| {}).await.unwrap();

    let bridge = tokio::spawn(bridge::run(
        sqs.clone(),
        BridgeConfig {
            queue_url: queue_url.clone(),
            lambda_endpoint: lambda.clone(),
            function: "worker".into(),
            batch_size: 10,
        },
    ));

    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{lambda}/lambda-url/api{path}"))
            .header("x-velt-api-key", &api_key)
            .header("x-velt-auth-token", "e2e-token")
            .json(&body)
            .send()
    };
    let started = post(
        "/v2/users/data/delete",
        json!({"data": {"userIds": ["u1"]}}),
    )
    .await
    .unwrap();
    assert_eq!(started.status().as_u16(), 202);
    let started: Value = started.json().await.unwrap();
    assert_eq!(started["data"]["tasksCount"], 9);
    assert_eq!(
        started["message"],
        "Data deletion process has been initiated."
    );
    let job_id = started["data"]["jobId"].as_str().unwrap().to_owned();

    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        let answer: Value = post(
            "/v2/users/data/delete/status",
            json!({"data": {"jobId": job_id}}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let data = answer["result"]["data"].clone();
        if data["isDeleteCompleted"] == true || Instant::now() > deadline {
            break data;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    bridge.abort();
    assert_eq!(status["isDeleteCompleted"], true, "{status}");
    assert_eq!(status["jobStatus"], "completed");
    assert_eq!(status["items"]["profile"]["removed"], 1);

    let unknown = post("/v2/users/nothing", json!({})).await.unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["status"], "NOT_FOUND");
}
