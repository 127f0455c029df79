//! End to end, over HTTP: a job settles in the worker, its event goes through the webhook queue
//! to the real `notifier` binary (run by the bridge's local Lambda, as `make run` does), and a
//! receiver on 127.0.0.1 that refuses twice gets it on the third attempt, signed; every job
//! notifies once, however often its tasks are delivered.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::receiver::{Received, Receiver};
use common::{unique, TestEnv, API_KEY};
use erasure::bridge::function::{FunctionConfig, LocalFunction};
use erasure::bridge::{self, BridgeConfig};
use erasure::domain::ids::{ApiKey, JobId, UserId};
use erasure::domain::task::plan_tasks;
use erasure::infra;
use erasure::queue::TaskQueue;
use erasure::webhook::delivery::EVENT_ID_HEADER;
use erasure::webhook::queue::NotificationQueue;
use erasure::webhook::signing;
use serde_json::Value;

const WORLD: &str = include_str!("fixtures/world-small.json");

/// The notifier binary under the bridge, consuming `queue_url`, as `scripts/run-local.sh` runs it.
async fn start_notifier(env: &TestEnv, queue_url: &str) -> tokio::task::JoinHandle<()> {
    let vars = [
        (
            "AWS_ENDPOINT_URL_DYNAMODB",
            common::emulators::dynamodb_endpoint(),
        ),
        ("AWS_ENDPOINT_URL_SQS", common::emulators::sqs_endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "local".into()),
        ("AWS_SECRET_ACCESS_KEY", "local".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("CONTROL_TABLE", env.tables.control.clone()),
        ("WEBHOOK_QUEUE_URL", queue_url.to_owned()),
        ("WEBHOOK_ALLOW_LOOPBACK", "true".into()),
        ("WEBHOOK_BACKOFF_BASE_SECONDS", "1".into()),
        ("RUST_LOG", "info".into()),
    ];
    let notifier = LocalFunction::start(FunctionConfig {
        name: "notifier".into(),
        binary: concat!(env!("CARGO_MANIFEST_DIR"), "/target/debug/notifier").into(),
        env: vars.map(|(k, v)| (k.to_owned(), v)).to_vec(),
        timeout: Duration::from_secs(30),
        memory_mb: 256,
    })
    .await
    .unwrap();
    let sqs = env.sqs.clone();
    let config = BridgeConfig {
        queue_url: queue_url.to_owned(),
        batch_size: 10,
    };
    tokio::spawn(async move { bridge::run(sqs, &notifier, config).await })
}

fn event_id(request: &Received) -> &str {
    request.headers[EVENT_ID_HEADER].to_str().unwrap()
}

fn body(request: &Received) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

#[tokio::test]
async fn a_settled_job_is_announced_once_signed_and_retried_until_the_receiver_takes_it() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), WORLD).await;
    let receiver = Receiver::start(2).await;
    let secret = signing::generate_secret();
    assert!(env
        .control
        .set_webhook(&ApiKey::parse(API_KEY).unwrap(), &receiver.url, &secret)
        .await
        .unwrap());
    let webhooks = infra::ensure_queues(&env.sqs, &unique("webhooks"), 30)
        .await
        .unwrap();
    let worker = env
        .worker
        .clone()
        .with_notifications(NotificationQueue::new(
            env.sqs.clone(),
            &webhooks.task_queue_url,
        ));
    let bridge = start_notifier(&env, &webhooks.task_queue_url).await;

    // Job one: the receiver refuses its first two attempts.
    let first = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    env.drain(&worker).await;
    // Every task delivered again: the job is settled already and must not announce again.
    let users = [UserId::parse("u1").unwrap()];
    TaskQueue::new(env.sqs.clone(), &env.queue_url)
        .send_all(
            &env.tenant(),
            &plan_tasks(&JobId::parse(&first).unwrap(), &users, false),
        )
        .await
        .unwrap();
    env.drain(&worker).await;
    let received = receiver.wait_for_accepted(1, 60).await;
    let answers: Vec<u16> = received.iter().map(|r| r.answered).collect();
    assert_eq!(answers, [503, 503, 200], "refused twice, then taken");

    // Job two: taken at once.
    let second = env.start_job(r#"{"data":{"userIds":["u2"]}}"#).await;
    env.drain(&worker).await;
    receiver.wait_for_accepted(2, 60).await;
    // Anything more would have to come within the backoff of a few seconds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let received = receiver.received();
    bridge.abort();

    let mut per_event: HashMap<&str, Vec<&Received>> = HashMap::new();
    for request in &received {
        per_event
            .entry(event_id(request))
            .or_default()
            .push(request);
    }
    let first_id = format!("{first}.completed");
    let second_id = format!("{second}.completed");
    assert_eq!(per_event.len(), 2, "{:?}", per_event.keys());
    assert_eq!(per_event[first_id.as_str()].len(), 3);
    assert_eq!(per_event[second_id.as_str()].len(), 1);
    assert_eq!(
        received.iter().filter(|r| r.answered == 200).count(),
        2,
        "each job notifies once"
    );

    for request in &received {
        // The receiver's check: signature over "<t>.<body>", at most five minutes old.
        let header = request.headers[signing::HEADER].to_str().unwrap();
        signing::verify(&secret, header, &request.body, request.at_ms / 1000)
            .unwrap_or_else(|e| panic!("{e}: {header}"));
        assert!(
            signing::verify("whsec_wrong", header, &request.body, request.at_ms / 1000).is_err()
        );
        assert_eq!(request.headers["content-type"], "application/json");
    }
    // The retries carry the very same event.
    let copies = &per_event[first_id.as_str()];
    assert!(copies.iter().all(|r| r.body == copies[0].body));

    // The body: the event's id, type and time, and the status endpoint's data with jobId.
    for (job, id) in [(&first, &first_id), (&second, &second_id)] {
        let event = body(per_event[id.as_str()][0]);
        assert_eq!(event["id"], id.as_str());
        assert_eq!(event["type"], "job.settled");
        let mut expected = env.status(job).await;
        expected["jobId"] = Value::String(job.clone());
        assert_eq!(event["data"], expected);
        assert_eq!(event["createdAt"], expected["completedAt"]);
    }

    // Delivery figures (printed, never asserted): from the settle to each receipt.
    let settled = body(copies[0])["createdAt"].as_i64().unwrap();
    let offsets: Vec<i64> = copies.iter().map(|r| r.at_ms - settled).collect();
    let taken = per_event[second_id.as_str()][0];
    eprintln!(
        "webhook delivery: job one attempts at +{offsets:?} ms after settling (503, 503, 200); \
         job two taken at +{} ms",
        taken.at_ms - body(taken)["createdAt"].as_i64().unwrap()
    );
    assert_eq!(env.queue_depth(&webhooks.task_queue_url).await, 0);
    assert_eq!(env.queue_depth(&webhooks.dead_letter_queue_url).await, 0);
}
