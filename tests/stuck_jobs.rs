//! No job stays open for ever, and none is sent twice (issue 7): the sweep ends a job whose
//! last attempts all died, and one whose acceptance never finished; concurrent retries with one
//! `Idempotency-Key` send its tasks once; a job completes only once fully enqueued; and, with
//! DynamoDB and SQS faults injected through the SDK at chosen points of the api and the worker,
//! every job ends `completed`, or the api answers 503 and leaves what the contract says.

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use common::faults::{Faults, Kind, Rule};
use common::{is_job_item, key_of, request_to, TestEnv, API_KEY, AUTH_TOKEN};
use erasure::api::Api;
use erasure::clock::now_ms;
use erasure::config::ApiConfig;
use erasure::control::{ControlStore, SendClaim};
use erasure::domain::ids::JobId;
use erasure::infra::MAX_RECEIVE_COUNT;
use erasure::queue::TaskQueue;
use erasure::store::DataStore;
use erasure::sweep::{Bounds, Sweeper, NOT_ENQUEUED_REASON};
use erasure::webhook::queue::NotificationQueue;
use erasure::worker::Worker;
use serde_json::Value;

const WORLD: &str = include_str!("fixtures/contract-example.json");
const DELETE: &str = "/v2/users/data/delete";

/// The sweep. The tenant has no webhook, so it never sends to its webhook queue (which does not
/// exist: a send would fail the job's visit).
fn sweeper(env: &TestEnv) -> Sweeper {
    let webhooks = format!("{}-webhooks", env.queue_url);
    Sweeper::new(
        env.control.clone(),
        env.data.clone(),
        NotificationQueue::new(env.sqs.clone(), webhooks),
        Bounds::for_queue(MAX_RECEIVE_COUNT),
    )
}

fn bounds() -> Bounds {
    Bounds::for_queue(MAX_RECEIVE_COUNT)
}

/// The api on clients that fail as `faults` says.
fn faulty_api(env: &TestEnv, faults: &Faults) -> Api {
    let dynamodb = faults.dynamodb(&env.dynamodb);
    Api::new(
        ControlStore::new(dynamodb.clone(), &env.tables.control),
        DataStore::new(dynamodb, &env.tables.data),
        TaskQueue::new(faults.sqs(&env.sqs), &env.queue_url),
        ApiConfig {
            tables: env.tables.clone(),
            task_queue_url: env.queue_url.clone(),
            rate_limit_per_minute: 10_000,
            job_retention_days: 30,
            export_token_key: common::export_token_key(),
            webhook_queue_url: None,
        },
    )
}

/// The worker on clients that fail as `faults` says.
fn faulty_worker(env: &TestEnv, faults: &Faults) -> Worker {
    let dynamodb = faults.dynamodb(&env.dynamodb);
    Worker::new(
        ControlStore::new(dynamodb.clone(), &env.tables.control),
        DataStore::new(dynamodb, &env.tables.data),
        TaskQueue::new(faults.sqs(&env.sqs), &env.queue_url),
        MAX_RECEIVE_COUNT,
    )
}

async fn delete_with_key(api: &Api, key: &str, body: &str) -> (u16, Value) {
    let headers = [
        ("x-velt-api-key", API_KEY),
        ("x-velt-auth-token", AUTH_TOKEN),
        ("idempotency-key", key),
    ];
    request_to(api, "POST", DELETE, &headers, body).await
}

async fn delete_without_key(api: &Api, body: &str) -> (u16, Value) {
    let headers = [
        ("x-velt-api-key", API_KEY),
        ("x-velt-auth-token", AUTH_TOKEN),
    ];
    request_to(api, "POST", DELETE, &headers, body).await
}

async fn jobs(env: &TestEnv) -> Vec<String> {
    env.scan(&env.tables.control)
        .await
        .into_iter()
        .filter(is_job_item)
        .map(|i| i["jobId"].as_s().unwrap().clone())
        .collect()
}

async fn tombstones(env: &TestEnv) -> usize {
    env.scan(&env.tables.data)
        .await
        .iter()
        .filter(|i| key_of(i).1 == "TOMBSTONE")
        .count()
}

async fn open_entries(env: &TestEnv) -> usize {
    env.scan(&env.tables.control)
        .await
        .iter()
        .filter(|i| key_of(i).0.starts_with("OPEN#"))
        .count()
}

/// Runs the worker on the messages of users in `alive`; a message of any other user is
/// received and never answered, as when its invocation timed out or crashed, until SQS has
/// moved it to the dead-letter queue.
async fn deliver_while_others_die(env: &TestEnv, alive: &[&str]) {
    for _ in 0..40 {
        for m in &env.receive(&env.queue_url).await {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            if alive.contains(&body["userId"].as_str().unwrap()) {
                env.deliver_first(m).await;
            } // else died: no answer, no delete
        }
        if env.queue_depth(&env.queue_url).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    panic!("the dying messages never reached the dead-letter queue");
}

#[tokio::test]
async fn a_job_whose_last_attempts_all_died_ends_partial_naming_its_tasks_and_a_redrive_completes_it(
) {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), WORLD).await;
    let job_id = env.start_job(r#"{"data":{"userIds":["u1","u2"]}}"#).await;
    deliver_while_others_die(&env, &["u2"]).await;
    assert_eq!(env.queue_depth(&env.dlq_url).await, 1);
    let status = env.status(&job_id).await;
    // Nothing recorded the deaths: without the sweep the job stays here for ever.
    assert_eq!(status["jobStatus"], "running", "{status}");
    assert_eq!(status["tasksFailed"], 0);

    // Not before every attempt could have timed out.
    let report = sweeper(&env).sweep(now_ms()).await.unwrap();
    assert_eq!(report.stalled, 0);
    assert_eq!(env.status(&job_id).await["jobStatus"], "running");

    let later = now_ms() + bounds().stalled_after_ms + 1;
    let report = sweeper(&env).sweep(later).await.unwrap();
    assert_eq!((report.stalled, report.closed), (1, 1), "{report:?}");
    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "partial", "{status}");
    assert_eq!(status["isDeleteCompleted"], false);
    let failed: Vec<&str> = status["failedTaskIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), 9, "{status}");
    assert!(
        failed.iter().all(|t| t.starts_with("t0.")),
        "u1's tasks: {failed:?}"
    );
    assert_eq!(
        open_entries(&env).await,
        0,
        "a settled job leaves the index"
    );

    assert!(env.redrive().await > 0);
    env.drain(&env.worker).await;
    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");
    assert_eq!(status["tasksFailed"], 0);
}

#[tokio::test]
async fn twenty_concurrent_retries_with_one_key_send_the_tasks_once() {
    let env = TestEnv::new().await;
    let body = r#"{"data":{"userIds":["u1","u2"]}}"#;
    let answers =
        futures::future::join_all((0..20).map(|_| delete_with_key(&env.api, "concurrent", body)))
            .await;
    for (status, answer) in &answers {
        assert_eq!(*status, 202, "{answer}");
        assert_eq!(answer, &answers[0].1);
    }
    assert_eq!(
        env.queue_depth(&env.queue_url).await,
        2,
        "one message per user, once"
    );
    assert_eq!(jobs(&env).await.len(), 1);
}

#[tokio::test]
async fn a_send_claim_left_by_a_request_that_died_is_taken_over_by_a_retry() {
    let env = TestEnv::new().await;
    let body = r#"{"data":{"userIds":["u1"]}}"#;
    // The first request dies after claiming the send: its tasks never go.
    let faults = Faults::start().await;
    faults.add(Rule::new("SendMessageBatch", "", Kind::Throttling));
    let (status, _) = delete_with_key(&faulty_api(&env, &faults), "died", body).await;
    assert_eq!(status, 503);
    let job_id = JobId::parse(&jobs(&env).await[0]).unwrap();
    // As if it had died holding the claim (a 503 releases it): a fresh claim is respected...
    assert!(env
        .control
        .claim_send(&job_id, &SendClaim::new(now_ms()), 0)
        .await
        .unwrap());
    let (status, answer) = delete_with_key(&env.api, "died", body).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(env.queue_depth(&env.queue_url).await, 0);
    // ...and one older than any request can live is taken over.
    let stale = now_ms() - 60_000;
    env.dynamodb
        .update_item()
        .table_name(&env.tables.control)
        .key("pk", AttributeValue::S(format!("JOB#{job_id}")))
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("JOB".into()),
        )
        .update_expression("SET sendClaimedAt = :old")
        .expression_attribute_values(
            ":old",
            aws_sdk_dynamodb::types::AttributeValue::N(stale.to_string()),
        )
        .send()
        .await
        .unwrap();
    let (status, answer) = delete_with_key(&env.api, "died", body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(env.queue_depth(&env.queue_url).await, 1);
    assert_eq!(env.status(job_id.as_str()).await["fullyEnqueued"], true);
}

#[tokio::test]
async fn a_failed_enqueued_mark_keeps_the_job_from_completing_until_a_retry_marks_it() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), WORLD).await;
    let body = r#"{"data":{"userIds":["u1"]}}"#;
    let faults = Faults::start().await;
    faults.add(Rule::new(
        "UpdateItem",
        "if_not_exists(enqueuedAt",
        Kind::ServerError,
    ));
    let (status, answer) = delete_with_key(&faulty_api(&env, &faults), "mark", body).await;
    assert_eq!(status, 503, "{answer}");
    let job_id = jobs(&env).await[0].clone();
    env.drain(&env.worker).await;
    let status = env.status(&job_id).await;
    assert_eq!(status["tasksLeft"], 0, "every task ran: {status}");
    assert_eq!(status["fullyEnqueued"], false);
    assert_eq!(status["isDeleteCompleted"], false, "{status}");
    assert_ne!(status["jobStatus"], "completed");

    let (status, answer) = delete_with_key(&env.api, "mark", body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["data"]["jobId"], job_id.as_str());
    let status = env.status(&job_id).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");
    assert_eq!(status["fullyEnqueued"], true);
}

#[tokio::test]
async fn a_job_never_fully_enqueued_whose_caller_never_retries_ends_failed_saying_why() {
    let env = TestEnv::new().await;
    let faults = Faults::start().await;
    faults.add(Rule::new("SendMessageBatch", "", Kind::ServerError));
    let api = faulty_api(&env, &faults);
    let (status, _) = delete_with_key(&api, "gave-up", r#"{"data":{"userIds":["u1"]}}"#).await;
    assert_eq!(status, 503);
    let (status, _) = delete_without_key(&api, r#"{"data":{"userIds":["u2"]}}"#).await;
    assert_eq!(status, 503);
    let ids = jobs(&env).await;
    assert_eq!(ids.len(), 2);
    for id in &ids {
        let status = env.status(id).await;
        assert_eq!(
            (
                status["jobStatus"].as_str(),
                status["fullyEnqueued"].as_bool()
            ),
            (Some("queued"), Some(false))
        );
    }
    // Their tombstones went before the tasks: both users are cut off.
    assert!(!env.accepts_data_for("u1").await);
    assert!(!env.accepts_data_for("u2").await);
    // While a retry with the key can still finish it, the keyed job stays; the other cannot be
    // finished by anyone once its request is over. Ended, and a pass later, it no longer cuts
    // its user off: the 503 promised nothing.
    let now = now_ms();
    let report = sweeper(&env)
        .sweep(now + bounds().unfinished_after_ms + 1)
        .await
        .unwrap();
    assert_eq!(
        (report.unfinished, report.tombstones_lifted),
        (1, 0),
        "{report:?}"
    );
    assert!(
        !env.accepts_data_for("u2").await,
        "released only a pass later"
    );
    let retryable_ended = now + bounds().unfinished_retryable_after_ms + 1;
    let report = sweeper(&env).sweep(retryable_ended).await.unwrap();
    assert_eq!(
        (report.unfinished, report.tombstones_lifted),
        (1, 1),
        "{report:?}"
    );
    assert!(env.accepts_data_for("u2").await);
    assert!(!env.accepts_data_for("u1").await);
    let report = sweeper(&env)
        .sweep(retryable_ended + bounds().release_after_ms + 1)
        .await
        .unwrap();
    assert_eq!(
        (report.unfinished, report.tombstones_lifted),
        (0, 1),
        "{report:?}"
    );
    assert!(env.accepts_data_for("u1").await);
    for id in &ids {
        let status = env.status(id).await;
        assert_eq!(status["jobStatus"], "failed", "{status}");
        assert_eq!(status["isDeleteCompleted"], false);
        assert_eq!(status["failureReason"], NOT_ENQUEUED_REASON);
    }
    assert_eq!(open_entries(&env).await, 0);
}

/// A job that ends `failed` unaccepted lifts only the tombstones it alone holds: one that a
/// completed erasure holds too, or one written before tombstones recorded their holders (whose
/// jobs are unknown), keeps refusing the user's data. A second pass changes nothing.
#[tokio::test]
async fn a_job_never_accepted_lifts_only_the_tombstones_no_other_erasure_holds() {
    let env = TestEnv::new().await;
    let done = env.start_job(r#"{"data":{"userIds":["erased"]}}"#).await;
    env.drain(&env.worker).await;
    assert_eq!(env.status(&done).await["jobStatus"], "completed");
    // A tombstone as acceptances wrote them before holder sets.
    env.dynamodb
        .put_item()
        .table_name(&env.tables.data)
        .item(
            "pk",
            AttributeValue::S(env.tenant().user_partition("erased-before")),
        )
        .item("sk", AttributeValue::S("TOMBSTONE".into()))
        .item("entity", AttributeValue::S("Tombstone".into()))
        .item("erasedAt", AttributeValue::N(now_ms().to_string()))
        .item("allOrganizations", AttributeValue::Bool(true))
        .send()
        .await
        .unwrap();

    let faults = Faults::start().await;
    faults.add(Rule::new("SendMessageBatch", "", Kind::ServerError));
    let body = r#"{"data":{"userIds":["erased","erased-before","alone"]}}"#;
    let (status, _) = delete_without_key(&faulty_api(&env, &faults), body).await;
    assert_eq!(status, 503);
    for user in ["erased", "erased-before", "alone"] {
        assert!(!env.accepts_data_for(user).await, "{user} is cut off");
    }

    let ended = now_ms() + bounds().unfinished_after_ms + 1;
    let report = sweeper(&env).sweep(ended).await.unwrap();
    assert_eq!(
        (report.unfinished, report.tombstones_lifted),
        (1, 0),
        "{report:?}"
    );
    let released = ended + bounds().release_after_ms + 1;
    let report = sweeper(&env).sweep(released).await.unwrap();
    assert_eq!(
        (report.unfinished, report.tombstones_lifted),
        (0, 1),
        "{report:?}"
    );
    assert!(env.accepts_data_for("alone").await);
    assert!(
        !env.accepts_data_for("erased").await,
        "the completed job's hold stays"
    );
    assert!(
        !env.accepts_data_for("erased-before").await,
        "an older tombstone stays"
    );
    let report = sweeper(&env).sweep(released).await.unwrap();
    assert_eq!(
        (report.unfinished, report.tombstones_lifted),
        (0, 0),
        "{report:?}"
    );
    assert_eq!(tombstones(&env).await, 2);
    assert_eq!(open_entries(&env).await, 0);
}

/// The api with one fault at each point of the acceptance path: a 503 in the envelope that
/// leaves at most a job not fully enqueued (never reported complete), which a retry with the
/// same key finishes; the job then runs to completion.
#[tokio::test]
async fn faults_anywhere_in_the_acceptance_path_answer_503_and_a_retry_finishes_the_job() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), WORLD).await;
    let faults = Faults::start().await;
    let api = faulty_api(&env, &faults);
    let points = [
        ("PutItem", "IDEM#", Kind::Throttling),
        ("PutItem", "OPEN#", Kind::ServerError),
        ("PutItem", "\"JOB\"", Kind::Timeout),
        ("UpdateItem", "TOMBSTONE", Kind::Throttling),
        // The job's write holds the send claim: a lost answer leaves a job claimed by a
        // request that answered 503, which must release it for the retry.
        ("PutItem", "\"JOB\"", Kind::ServerError),
        ("PutItem", "\"JOB\"", Kind::LostAnswer),
        ("SendMessageBatch", "", Kind::LostAnswer),
        ("SendMessageBatch", "", Kind::Throttling),
        ("SendMessageBatch", "", Kind::Timeout),
        ("UpdateItem", "if_not_exists(enqueuedAt", Kind::Timeout),
    ];
    for (n, (operation, needle, kind)) in points.into_iter().enumerate() {
        faults.clear();
        faults.add(Rule::new(operation, needle, kind));
        let key = format!("fault-{n}");
        let body = format!(r#"{{"data":{{"userIds":["u1","user-{n}"]}}}}"#);
        let before = jobs(&env).await.len();
        let tombstones_before = tombstones(&env).await;
        let (status, answer) = delete_with_key(&api, &key, &body).await;
        assert_eq!(status, 503, "{operation} {needle} {kind:?}: {answer}");
        assert_eq!(answer["error"]["status"], "UNAVAILABLE");
        let after = jobs(&env).await;
        assert!(after.len() <= before + 1);
        // No user is cut off without a job that says so.
        if tombstones(&env).await > tombstones_before {
            assert_eq!(
                after.len(),
                before + 1,
                "{operation} {needle}: tombstones, no job"
            );
        }
        for id in &after[..] {
            let status = env.status(id).await;
            if status["fullyEnqueued"] == false {
                assert_eq!(status["isDeleteCompleted"], false);
            }
        }
        let (status, answer) = delete_with_key(&env.api, &key, &body).await;
        assert_eq!(
            status, 202,
            "retry after {operation} {needle} {kind:?}: {answer}"
        );
        let job_id = answer["data"]["jobId"].as_str().unwrap().to_owned();
        assert_eq!(jobs(&env).await.len(), before + 1, "one job per acceptance");
        env.drain(&env.worker).await;
        let status = env.status(&job_id).await;
        assert_eq!(
            status["jobStatus"], "completed",
            "after {operation} {needle}: {status}"
        );
        assert_eq!(status["fullyEnqueued"], true);
    }
    assert!(faults.injected() > 0);
    assert!(tombstones(&env).await >= 2);
}

/// The worker with transient faults at each of its calls, some absorbed by the SDK's retries
/// and some past them (the message comes back): every job still ends `completed`.
#[tokio::test]
async fn faults_anywhere_in_the_worker_still_end_every_job_completed() {
    let points = [
        ("GetItem", "JOB#", Kind::Throttling, 3),
        ("UpdateItem", "jobStatus = :running", Kind::ServerError, 3),
        ("Query", "REF#", Kind::Throttling, 2),
        ("Query", "REF#", Kind::Timeout, 3),
        ("BatchGetItem", "", Kind::ServerError, 3),
        ("BatchWriteItem", "", Kind::Throttling, 6),
        // A contested entity's claim, a page's open and its close, each past the SDK's retries.
        ("UpdateItem", "claimant", Kind::ServerError, 3),
        ("UpdateItem", "SET #page", Kind::ServerError, 3),
        ("UpdateItem", "ADD removed", Kind::Throttling, 3),
        ("UpdateItem", "succeededTasks", Kind::Throttling, 3),
        // The settling step after a task's success: lost once, the redelivery settles.
        ("UpdateItem", "completedAt", Kind::ServerError, 3),
        ("UpdateItem", "succeededTasks", Kind::LostAnswer, 3),
    ];
    for (operation, needle, kind, count) in points {
        // A fresh world each time, so that every call of the erasure has work to do.
        let env = TestEnv::new().await;
        env.seed(&env.tenant(), WORLD).await;
        let faults = Faults::start().await;
        let worker = faulty_worker(&env, &faults);
        faults.add(Rule::new(operation, needle, kind).times(count));
        let job_id = env.start_job(r#"{"data":{"userIds":["u1","u2"]}}"#).await;
        env.drain(&worker).await;
        let status = env.status(&job_id).await;
        assert_eq!(
            status["jobStatus"], "completed",
            "{operation} {needle} {kind:?} x{count}: {status}"
        );
        assert_eq!(env.queue_depth(&env.dlq_url).await, 0);
        assert!(
            faults.injected() > 0,
            "{operation} {needle}: no fault was injected"
        );
    }
}
