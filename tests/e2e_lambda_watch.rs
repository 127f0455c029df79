//! End to end through the local Lambda stack: HTTP to `cargo lambda watch` running the `api`
//! binary, SQS (moto) to the `worker` binary run by the bridge with the template's timeout and
//! real deadlines, DynamoDB (dynalite). `make test` starts the emulators and watch (a plain
//! `cargo test` starts its own); each test makes the tables and queue named in watch's env file
//! and uses a tenant of its own.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use erasure::bridge::function::{read_env_file, FunctionConfig, LocalFunction};
use erasure::bridge::{self, BridgeConfig};
use erasure::control::ControlStore;
use erasure::domain::ids::{ApiKey, JobId};
use erasure::domain::tenant::Tenant;
use erasure::infra;
use erasure::store::fixture::Fixture;
use erasure::store::DataStore;
use serde_json::{json, Value};

/// The stack `make test` runs, with a tenant and a bridge of this test's own.
struct Stack {
    lambda: String,
    api_key: String,
    dynamodb: aws_sdk_dynamodb::Client,
    vars: HashMap<String, String>,
    worker: std::sync::Arc<LocalFunction>,
    bridge: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

impl Stack {
    async fn start(fixture_json: &str) -> Self {
        let (lambda, env_file) = common::emulators::lambda_watch();
        let env = read_env_file(&std::fs::read_to_string(env_file).expect("watch's env file"));
        let (vars, dynamodb, sqs) = common::watch_world().await;
        let queue_url = vars["TASK_QUEUE_URL"].clone();

        let api_key = format!("e2e-{}", JobId::generate());
        ControlStore::new(dynamodb.clone(), &vars["CONTROL_TABLE"])
            .put_tenant(&ApiKey::parse(&api_key).unwrap(), "e2e-token", 0)
            .await
            .unwrap();
        let data = DataStore::new(dynamodb.clone(), &vars["DATA_TABLE"]);
        let fixture = Fixture::parse(fixture_json).unwrap();
        data.load_fixture(&Tenant::from_api_key(&api_key), fixture, |_| {})
            .await
            .unwrap();

        let worker = std::sync::Arc::new(
            LocalFunction::start(FunctionConfig {
                name: "worker".into(),
                binary: concat!(env!("CARGO_MANIFEST_DIR"), "/target/debug/worker").into(),
                env,
                timeout: Duration::from_secs(infra::WORKER_TIMEOUT_SECONDS.into()),
                memory_mb: infra::WORKER_MEMORY_MB,
            })
            .await
            .unwrap(),
        );
        let bridge = tokio::spawn({
            let worker = worker.clone();
            async move {
                let config = BridgeConfig {
                    queue_url,
                    batch_size: 10,
                };
                bridge::run(sqs, &worker, config).await;
            }
        });
        Self {
            lambda,
            api_key,
            dynamodb,
            vars,
            worker,
            bridge,
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: String) -> (u16, Value) {
        let answer = self
            .http
            .post(format!("{}/lambda-url/api{path}", self.lambda))
            .header("content-type", "application/json")
            .header("x-velt-api-key", &self.api_key)
            .header("x-velt-auth-token", "e2e-token")
            .body(body)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.json().await.unwrap())
    }

    async fn status(&self, job_id: &str) -> Value {
        let body = json!({"data": {"jobId": job_id}}).to_string();
        let (status, answer) = self.post("/v2/users/data/delete/status", body).await;
        assert_eq!(status, 200, "{answer}");
        answer["result"]["data"].clone()
    }

    /// Waits for the job to settle (at most `limit`); returns its last status.
    async fn settled(&self, job_id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.status(job_id).await;
            let settled = ["completed", "partial", "failed"]
                .contains(&status["jobStatus"].as_str().unwrap_or_default());
            if settled || Instant::now() > deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Every data item of this test's tenant that carries `needle` in any string attribute.
    async fn items_naming(&self, needle: &str) -> Vec<HashMap<String, AttributeValue>> {
        let tenant_prefix = format!("{}#", Tenant::from_api_key(&self.api_key).as_str());
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .scan()
                .table_name(&self.vars["DATA_TABLE"])
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            for item in page.items.unwrap_or_default() {
                let ours = item["pk"].as_s().unwrap().starts_with(&tenant_prefix);
                if ours && format!("{item:?}").contains(needle) {
                    found.push(item);
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return found,
            }
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.bridge.abort();
    }
}

#[tokio::test]
async fn the_velt_example_request_verbatim_completes_through_cargo_lambda_watch_and_the_bridge() {
    let stack = Stack::start(include_str!("../fixtures/demo.json")).await;
    let example = include_str!("../fixtures/velt-example-request.json");
    let (status, started) = stack
        .post("/v2/users/data/delete", example.to_owned())
        .await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(
        started["message"],
        "Data deletion process has been initiated."
    );
    assert_eq!(
        started["data"]["tasksCount"], 16,
        "2 users × 8 scoped tasks"
    );
    let job_id = started["data"]["jobId"].as_str().unwrap().to_owned();

    let status = stack.settled(&job_id, Duration::from_secs(120)).await;
    assert_eq!(status["isDeleteCompleted"], true, "{status}");
    assert_eq!(status["tasksLeft"], 0);
    assert!(status["items"]["comments"]["removed"].as_u64().unwrap() > 0);
    // Nothing names either user any more, apart from their profiles, which live outside
    // organizations and so outside a scoped job.
    for user in ["yourUserId1", "yourUserId2"] {
        let left = stack.items_naming(user).await;
        assert!(
            left.iter()
                .all(|i| i["entity"].as_s().unwrap() == "Profile"),
            "{user} is still named by {left:?}"
        );
    }
    assert!(!stack.items_naming("ada").await.is_empty());

    let (status, unknown) = stack.post("/v2/users/nothing", "{}".into()).await;
    assert_eq!(status, 404);
    assert_eq!(unknown["error"]["status"], "NOT_FOUND");
}

/// A user with enough data that the worker is still at work when it is killed.
fn heavy_world() -> String {
    let documents: Vec<Value> = (0..400)
        .map(|i| {
            json!({
                "documentId": format!("d{i}"),
                "users": [{"userId": "heavy", "accessRole": "editor"},
                          {"userId": "bystander", "accessRole": "viewer"}],
                "contacts": ["heavy", "bystander"],
                "commentAnnotations": [{
                    "annotationId": "a", "viewedBy": ["heavy", "bystander"],
                    "comments": [
                        {"commentId": "c1", "from": "heavy", "text": "{{bystander}} look", "to": ["bystander"]},
                        {"commentId": "c2", "from": "bystander", "text": "{{heavy}} ok", "to": ["heavy"]}]
                }],
                "reactions": [{"reactionId": "r", "emoji": "👍", "userId": "heavy"}],
            })
        })
        .collect();
    json!({
        "users": [{"userId": "heavy", "name": "Hattie Heavy", "email": "hattie@example.com"},
                  {"userId": "bystander", "name": "Bea Bystander", "email": "bea@example.com"}],
        "organizations": [{"organizationId": "o", "documents": documents}],
    })
    .to_string()
}

#[tokio::test]
async fn a_worker_killed_mid_invocation_is_replaced_and_the_job_completes_with_exact_counts() {
    let stack = Stack::start(&heavy_world()).await;
    let (status, dry) = stack
        .post(
            "/v2/users/data/delete",
            json!({"data": {"userIds": ["heavy"], "dryRun": true}}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    let (status, started) = stack
        .post(
            "/v2/users/data/delete",
            json!({"data": {"userIds": ["heavy"]}}).to_string(),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let job_id = started["data"]["jobId"].as_str().unwrap().to_owned();

    // Kill the worker's process while it works, three times; each time the bridge sees the
    // invocation die, leaves the batch to come back, and starts a new process. The killed
    // tasks' leases hold them for one term (30 s): their retries come back after it.
    let mut kills = 0;
    let give_up = Instant::now() + Duration::from_secs(150);
    while kills < 3 && Instant::now() < give_up {
        if stack.status(&job_id).await["jobStatus"] == "running" && stack.worker.busy() {
            tokio::time::sleep(Duration::from_millis(150)).await;
            if let Some(pid) = stack.worker.pid().filter(|_| stack.worker.busy()) {
                let killed = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status()
                    .unwrap();
                assert!(killed.success());
                kills += 1;
                // Let the next process start and take the batch again.
                tokio::time::sleep(Duration::from_secs(3)).await;
                continue;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kills, 3, "the worker was never seen at work");
    assert!(
        stack.worker.crashes() >= 1,
        "no kill landed during an invocation"
    );

    let status = stack.settled(&job_id, Duration::from_secs(150)).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");
    let left = stack.items_naming("heavy").await;
    assert!(left.is_empty(), "{} items still name the user", left.len());
    // The pages a killed run left open are counted by the retries that take its tasks over
    // (DESIGN §3, "Exact counts"): every feature counts exactly what the dry run found.
    let (mut counted, mut there) = (0, 0);
    for (feature, want) in dry["data"]["items"].as_object().unwrap() {
        let want = want.as_u64().unwrap();
        let got = &status["items"][feature];
        let got = got["removed"].as_u64().unwrap() + got["rewritten"].as_u64().unwrap();
        assert_eq!(
            got, want,
            "{feature}: counted {got} of {want} through three kills"
        );
        (counted, there) = (counted + got, there + want);
    }
    eprintln!("counted {counted} of {there} items through three kills");
    // The bystander keeps every grant, contact entry, view and comment of theirs.
    let theirs = stack.items_naming("bystander").await;
    let count = |entity: &str| {
        theirs
            .iter()
            .filter(|i| i["entity"].as_s().unwrap() == entity)
            .count()
    };
    assert_eq!(count("DocumentAccess"), 400);
    assert_eq!(count("Contact"), 400);
    assert_eq!(count("View"), 400);
    assert_eq!(count("Comment"), 400);
}
