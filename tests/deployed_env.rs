//! Each function's binary started with exactly the environment `template.yaml` gives it — its
//! `!Ref`s resolved to this test's tables and queues, the resolved secret to a test value — plus
//! what Lambda itself sets, and nothing else (the process starts under `env -i`), through the
//! bridge's local Lambda Runtime API: the api accepts the recorded delete, the worker runs its
//! tasks to a completed job, the sweeper ends a job never fully enqueued and releases its
//! tombstone, the notifier takes an empty batch. A variable the code requires and the template
//! forgets, or one that names the wrong resource, fails here instead of after a deployment.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use common::TestEnv;
use erasure::bridge::function::{FunctionConfig, LocalFunction};
use erasure::bridge::{poll_once, BridgeConfig};
use erasure::control::{NewJob, SendClaim};
use erasure::domain::ids::{JobId, UserId};
use erasure::domain::job::JobStatus;
use erasure::keys::component;
use erasure::sweep::NOT_ENQUEUED_REASON;
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;

const EXPORT_TOKEN_KEY: &str = "export-token-key-for-tests-only-0123456789";

fn template() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// What each `!Ref` of the functions' environments names here.
fn resources(env: &TestEnv) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("DataTable", env.tables.data.clone()),
        ("ControlTable", env.tables.control.clone()),
        ("TaskQueue", env.queue_url.clone()),
        ("WebhookQueue", webhook_queue_url(env)),
        (
            "MaxReceiveCount",
            erasure::infra::MAX_RECEIVE_COUNT.to_string(),
        ),
    ])
}

fn webhook_queue_url(env: &TestEnv) -> String {
    format!("{}-webhooks", env.queue_url)
}

/// The function's `Environment.Variables`, resolved; a value the test cannot resolve fails it,
/// so a new kind of value gets looked at here.
fn template_env(template: &Yaml, function: &str, env: &TestEnv) -> Vec<(String, String)> {
    let resources = resources(env);
    let variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{function} has no Environment.Variables"));
    variables
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().unwrap().to_owned();
            let resolved = match value {
                Yaml::String(text) => text.clone(),
                Yaml::Number(number) => number.to_string(),
                Yaml::Tagged(tagged) if tagged.tag == "Ref" => {
                    let target = tagged.value.as_str().unwrap();
                    resources
                        .get(target)
                        .unwrap_or_else(|| panic!("{function}: {name} = !Ref {target}?"))
                        .clone()
                }
                Yaml::Tagged(tagged)
                    if tagged.tag == "Sub"
                        && tagged
                            .value
                            .as_str()
                            .is_some_and(|s| s.contains("resolve:secretsmanager")) =>
                {
                    EXPORT_TOKEN_KEY.to_owned()
                }
                other => panic!("{function}: {name} = {other:?}: resolve it here"),
            };
            (name, resolved)
        })
        .collect()
}

/// What Lambda sets on every function, and what stands in locally for the role and the
/// endpoints (the metadata service is off: nothing may leave the machine).
fn lambda_env() -> Vec<(String, String)> {
    [
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        (
            "AWS_ENDPOINT_URL_DYNAMODB",
            common::emulators::dynamodb_endpoint(),
        ),
        ("AWS_ENDPOINT_URL_SQS", common::emulators::sqs_endpoint()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// A local Lambda of `function` (the template's logical id) running `binary` with only the
/// template's and Lambda's environment: a script that starts it under `env -i`, keeping the
/// variables the bridge sets for the Runtime API.
async fn start(template: &Yaml, function: &str, binary: &str, env: &TestEnv) -> LocalFunction {
    let properties = &template["Resources"][function]["Properties"];
    let mut variables = template_env(template, function, env);
    variables.extend(lambda_env());
    let assignments: Vec<String> = variables
        .iter()
        .map(|(name, value)| format!("{name}={}", quoted(value)))
        .collect();
    let dir = std::env::temp_dir().join(format!(
        "erasure-deployed-{}-{function}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("bootstrap");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec env -i AWS_LAMBDA_RUNTIME_API=\"$AWS_LAMBDA_RUNTIME_API\" \
             AWS_LAMBDA_FUNCTION_NAME=\"$AWS_LAMBDA_FUNCTION_NAME\" \
             AWS_LAMBDA_FUNCTION_VERSION=\"$AWS_LAMBDA_FUNCTION_VERSION\" \
             AWS_LAMBDA_FUNCTION_MEMORY_SIZE=\"$AWS_LAMBDA_FUNCTION_MEMORY_SIZE\" \
             {} {}\n",
            assignments.join(" "),
            quoted(binary)
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let seconds = properties["Timeout"].as_u64().unwrap();
    let memory = properties["MemorySize"].as_u64().unwrap();
    LocalFunction::start(FunctionConfig {
        name: function.to_owned(),
        binary: script,
        env: Vec::new(),
        timeout: Duration::from_secs(seconds),
        memory_mb: u32::try_from(memory).unwrap(),
    })
    .await
    .unwrap()
}

async fn invoke(function: &LocalFunction, event: Vec<u8>) -> Value {
    let answer = function
        .invoke(event.into())
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    serde_json::from_slice(&answer).unwrap()
}

#[tokio::test]
async fn every_function_runs_on_the_environment_the_template_gives_it() {
    let env = TestEnv::new().await;
    env.add_tenant("local-api-key", "local-auth-token").await;
    let name = webhook_queue_url(&env)
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    erasure::infra::ensure_queues(&env.sqs, &name, 1)
        .await
        .unwrap();
    let template = template();
    let bin = |name: &str| -> PathBuf {
        match name {
            "api" => env!("CARGO_BIN_EXE_api").into(),
            "worker" => env!("CARGO_BIN_EXE_worker").into(),
            "sweeper" => env!("CARGO_BIN_EXE_sweeper").into(),
            _ => env!("CARGO_BIN_EXE_notifier").into(),
        }
    };
    let function = |logical: &'static str, binary: &'static str| {
        let (template, env, binary) = (&template, &env, bin(binary));
        async move { start(template, logical, binary.to_str().unwrap(), env).await }
    };

    // The api: the recorded delete, accepted (tombstones, job, tasks, webhook queue unused).
    let api = function("ApiFunction", "api").await;
    let answer = invoke(&api, common::recorded_event("api-delete.json")).await;
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    // The recorded events' tenant is not the harness's: its job is read from the store.
    let job_id = JobId::parse(body["data"]["jobId"].as_str().unwrap()).unwrap();

    // The worker: the api's messages, as the event source mapping hands them over.
    let worker = function("WorkerFunction", "worker").await;
    let source = BridgeConfig {
        queue_url: env.queue_url.clone(),
        batch_size: 10,
    };
    let mut job = None;
    for _ in 0..30 {
        poll_once(&env.sqs, &worker, &source).await.unwrap();
        job = env.control.get_job(&job_id).await.unwrap();
        if job
            .as_ref()
            .is_some_and(|job| job.status == JobStatus::Completed)
        {
            break;
        }
    }
    let job = job.expect("the api stored its job");
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    assert_eq!(worker.crashes(), 0);

    // The sweeper: a job whose acceptance stopped after its tombstone, ended failed by an
    // earlier pass long enough ago, lets its user go.
    let ghost = UserId::parse("ghost-user").unwrap();
    let unfinished = JobId::generate();
    let long_ago = erasure::clock::now_ms() - 10 * 60 * 1000;
    let job = NewJob {
        job_id: unfinished.clone(),
        tenant: env.tenant(),
        user_hashes: vec![component(ghost.as_str())],
        organization_ids: Vec::new(),
        tasks_count: 9,
        created_at_ms: long_ago,
        expires_at_s: long_ago / 1000 + 86_400,
        retryable: false,
    };
    env.control
        .create_job(&job, &SendClaim::new(long_ago))
        .await
        .unwrap();
    env.data
        .mark_erased(&env.tenant(), &[ghost], &[], &unfinished, long_ago)
        .await
        .unwrap();
    env.control
        .fail_unaccepted(&unfinished, NOT_ENQUEUED_REASON, long_ago)
        .await
        .unwrap()
        .expect("the job was open");
    assert!(!env.accepts_data_for("ghost-user").await);
    let sweeper = function("SweepFunction", "sweeper").await;
    let scheduled = json!({
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": "123456789012",
        "time": "2026-11-30T10:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/erasure-sweep"],
        "detail": "{}"
    });
    let report = invoke(&sweeper, scheduled.to_string().into_bytes()).await;
    assert_eq!(report["tombstonesLifted"], 1, "{report}");
    assert_eq!(env.status(unfinished.as_str()).await["jobStatus"], "failed");
    assert!(env.accepts_data_for("ghost-user").await);

    // The notifier: an empty batch (its deliveries run in tests/webhook_e2e.rs).
    let notifier = function("NotifierFunction", "notifier").await;
    let answer = invoke(&notifier, br#"{"Records":[]}"#.to_vec()).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    for function in [&api, &worker, &sweeper, &notifier] {
        assert_eq!(function.crashes(), 0);
    }
}
