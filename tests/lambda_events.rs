//! Every recorded event in `events/` through its Lambda adapter, parsed from its file as the
//! runtime parses an invocation (serde_json from the raw bytes into the handler's event type),
//! against dynalite and moto: the api's events each get their status and the contract's shape,
//! whatever their body and header bytes; the worker's batches their partial batch response.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::sqs::SqsEvent;
use common::TestEnv;
use erasure::api::lambda::{answer, HttpApiEvent};
use erasure::worker::lambda as worker_lambda;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;

/// What each api event must get.
enum Expect {
    /// The 202 of a new job of this many tasks.
    Accepted(usize),
    /// The error envelope with this HTTP status and status word.
    Refused(u16, &'static str),
}

const API_EVENTS: [(&str, Expect); 14] = [
    ("api-delete.json", Expect::Accepted(16)),
    ("api-delete-base64.json", Expect::Accepted(16)),
    // Content type is not policed: a JSON body is read as JSON.
    ("api-delete-text-plain.json", Expect::Accepted(9)),
    (
        "api-delete-invalid.json",
        Expect::Refused(400, "INVALID_ARGUMENT"),
    ),
    (
        "api-delete-non-utf8-base64.json",
        Expect::Refused(400, "INVALID_ARGUMENT"),
    ),
    (
        "api-delete-octet-stream.json",
        Expect::Refused(400, "INVALID_ARGUMENT"),
    ),
    (
        "api-delete-bad-base64.json",
        Expect::Refused(400, "INVALID_ARGUMENT"),
    ),
    (
        "api-delete-empty-body.json",
        Expect::Refused(400, "INVALID_ARGUMENT"),
    ),
    (
        "api-delete-obs-text-token.json",
        Expect::Refused(401, "UNAUTHENTICATED"),
    ),
    (
        "api-delete-idempotency-key-non-ascii.json",
        Expect::Refused(400, "INVALID_ARGUMENT"),
    ),
    (
        "api-delete-control-char-header.json",
        Expect::Refused(400, "INVALID_ARGUMENT"),
    ),
    (
        "api-delete-wrong-method.json",
        Expect::Refused(405, "INVALID_ARGUMENT"),
    ),
    ("api-unknown-route.json", Expect::Refused(404, "NOT_FOUND")),
    ("api-status.json", Expect::Refused(404, "NOT_FOUND")),
];

const WORKER_EVENTS: [&str; 2] = ["worker-sqs.json", "worker-sqs-odd-records.json"];

/// The job id the recorded worker events name; tests put a real job's id in its place.
const RECORDED_JOB_ID: &str = "AAAAAAAAAAAAAAAAAAAA";

/// The API key and token the recorded events carry (those of `make run`'s tenant).
async fn env_with_recorded_tenant() -> TestEnv {
    let env = TestEnv::new().await;
    env.add_tenant("local-api-key", "local-auth-token").await;
    env
}

async fn run_api_event(env: &TestEnv, name: &str) -> (u16, Value) {
    let event: HttpApiEvent = serde_json::from_slice(&common::recorded_event(name)).unwrap();
    let response = answer(&env.api, event).await;
    // What API Gateway (and cargo lambda watch) read back from the function.
    let response: ApiGatewayV2httpResponse =
        serde_json::from_value(serde_json::to_value(&response).unwrap()).unwrap();
    assert_eq!(
        response.headers["content-type"], "application/json",
        "{name}"
    );
    assert!(!response.is_base64_encoded, "{name}");
    let Some(Body::Text(body)) = response.body else {
        panic!("{name}: no text body");
    };
    let body: Value = serde_json::from_str(&body).unwrap();
    (u16::try_from(response.status_code).unwrap(), body)
}

#[test]
fn every_event_file_has_an_expectation() {
    let files: BTreeSet<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("events"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
    let expected: BTreeSet<String> = API_EVENTS
        .iter()
        .map(|(name, _)| *name)
        .chain(WORKER_EVENTS)
        .map(str::to_owned)
        .collect();
    assert_eq!(files, expected);
}

#[tokio::test]
async fn every_api_event_gets_its_status_in_the_contracts_shape() {
    let env = env_with_recorded_tenant().await;
    for (name, expect) in &API_EVENTS {
        let (status, body) = run_api_event(&env, name).await;
        match *expect {
            Expect::Accepted(tasks) => {
                assert_eq!(status, 202, "{name}: {body}");
                assert_eq!(body["status"], "success", "{name}");
                assert_eq!(body["statusCode"], 202, "{name}");
                assert_eq!(body["data"]["tasksCount"], tasks, "{name}");
                let job_id = body["data"]["jobId"].as_str().unwrap();
                assert!(
                    job_id.len() == 20 && job_id.chars().all(|c| c.is_ascii_alphanumeric()),
                    "{name}: {job_id}"
                );
            }
            Expect::Refused(code, word) => {
                assert_eq!(status, code, "{name}: {body}");
                let error = body["error"].as_object().unwrap();
                assert_eq!(body.as_object().unwrap().len(), 1, "{name}: {body}");
                assert_eq!(error.len(), 2, "{name}: {body}");
                assert_eq!(error["status"], word, "{name}");
                assert!(!error["message"].as_str().unwrap().is_empty(), "{name}");
            }
        }
    }
}

#[tokio::test]
async fn refusals_name_what_was_wrong() {
    let env = env_with_recorded_tenant().await;
    let message = |body: Value| body["error"]["message"].as_str().unwrap().to_owned();
    let (_, body) = run_api_event(&env, "api-delete-bad-base64.json").await;
    assert!(message(body).contains("base64"));
    for name in [
        "api-delete-idempotency-key-non-ascii.json",
        "api-delete-control-char-header.json",
    ] {
        let (_, body) = run_api_event(&env, name).await;
        assert!(message(body).contains("Idempotency-Key"), "{name}");
    }
    // Nothing refused left anything behind: no job, no tombstone.
    assert!(env.scan(&env.tables.data).await.is_empty());
}

#[test]
fn the_recorded_events_are_api_gateway_events_and_the_stock_types_refuse_what_ours_take() {
    // Each event parses as the stock API Gateway type too: the files are real events' shapes.
    for (name, _) in &API_EVENTS {
        let parsed =
            serde_json::from_slice::<ApiGatewayV2httpRequest>(&common::recorded_event(name));
        // A control character in a header fails the stock type: the runtime would report an
        // error and API Gateway answer its own 500. Ours reads it (400, above).
        assert_eq!(
            parsed.is_ok(),
            *name != "api-delete-control-char-header.json",
            "{name}"
        );
    }
    // And the stock decoding of a body flagged base64 that is not panics (lambda_http calls it).
    let panicked = std::panic::catch_unwind(|| Body::from_maybe_encoded(true, "{\"data\":{}}"));
    assert!(panicked.is_err());
}

#[tokio::test]
async fn the_recorded_sqs_batch_runs_through_the_worker_adapter_to_a_completed_job() {
    let env = TestEnv::new().await;
    let world = include_str!("fixtures/contract-example.json")
        .replace("\"u1\"", "\"ada\"")
        .replace("\"u2\"", "\"grace\"")
        .replace("{{u1}}", "{{ada}}")
        .replace("{{u2}}", "{{grace}}");
    env.seed(&env.tenant(), &world).await;
    let job_id = env
        .start_job(r#"{"data":{"userIds":["ada","grace"]}}"#)
        .await;
    let event = String::from_utf8(common::recorded_event("worker-sqs.json"))
        .unwrap()
        .replace(RECORDED_JOB_ID, &job_id);
    let event: LambdaEvent<SqsEvent> =
        LambdaEvent::new(serde_json::from_str(&event).unwrap(), Context::default());

    let response = worker_lambda::handle(&env.worker, event.payload, env.deadline()).await;

    assert!(response.batch_item_failures.is_empty());
    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");
    assert_eq!(status["tasksLeft"], 0);
}

#[tokio::test]
async fn odd_records_fail_alone_and_are_the_only_ones_reported() {
    let env = TestEnv::new().await;
    let job_id = env.start_job(r#"{"data":{"userIds":["ada"]}}"#).await;
    let event = String::from_utf8(common::recorded_event("worker-sqs-odd-records.json"))
        .unwrap()
        .replace(RECORDED_JOB_ID, &job_id);
    let event: LambdaEvent<SqsEvent> =
        LambdaEvent::new(serde_json::from_str(&event).unwrap(), Context::default());

    let response = worker_lambda::handle(&env.worker, event.payload, env.deadline()).await;

    // Not a task message: reported, by id (the record without one by an empty id, which makes
    // Lambda retry the batch). The task of an unknown job is dropped; ada's profile task runs.
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["garbage-receive-count", ""]);
    let status = env.status(&job_id).await;
    assert_eq!(status["tasksLeft"], 8, "{status}");
    assert_eq!(status["tasksFailed"], 0, "{status}");
}
