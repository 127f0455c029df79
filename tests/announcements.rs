//! Every settlement is announced at least once (issue 9), against dynalite and moto: a worker
//! that settles a job and then cannot enqueue its event (SQS refuses, as when it dies in
//! between) leaves it to the sweep, which sends it once; the sweep announces the jobs it ends
//! itself, and a `partial` job redriven to `completed` gets both events even when the redrive's
//! enqueue is lost; the api's enqueued mark announces the job it settles; a settlement already
//! announced is not sent again; a tenant without a webhook costs the sweep one read per
//! settlement, not one per pass.
//!
//! Each test was checked to fail with one part of the change switched off: with neither the
//! sweep nor the api announcing (as before issue 9), all but the fourth (which then passes
//! trivially: nothing sends again); without the re-listing of a job that settles anew, the
//! second's redrive half; without the settler's record, the first, third and fourth (the sweep
//! sends again); without the sweep's record of "nothing to send", the fifth (it reads the
//! tenant every pass).

mod common;

use common::faults::{Faults, Kind, Rule};
use common::recorder::Recorder;
use common::{is_job_item, key_of, request_to, unique, TestEnv, API_KEY, AUTH_TOKEN};
use erasure::api::Api;
use erasure::clock::now_ms;
use erasure::config::ApiConfig;
use erasure::control::ControlStore;
use erasure::domain::ids::JobId;
use erasure::infra::{self, MAX_RECEIVE_COUNT};
use erasure::queue::TaskQueue;
use erasure::store::DataStore;
use erasure::sweep::{Bounds, Sweeper};
use erasure::webhook::event::Notification;
use erasure::webhook::queue::NotificationQueue;
use erasure::worker::Worker;
use serde_json::Value;

const WORLD: &str = include_str!("fixtures/contract-example.json");
const MINUTE_MS: i64 = 60 * 1000;

/// A webhook queue of this test's own, and the tenant's webhook registered (nothing receives:
/// the events are read from the queue).
async fn webhook_queue(env: &TestEnv) -> String {
    env.set_webhook("http://127.0.0.1:9/hook").await;
    infra::ensure_queues(&env.sqs, &unique("webhooks"), 1)
        .await
        .unwrap()
        .task_queue_url
}

/// The ids of the events waiting on the webhook queue, taken off it.
async fn take_events(env: &TestEnv, queue_url: &str) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let messages = env.receive(queue_url).await;
        if messages.is_empty() {
            ids.sort();
            return ids;
        }
        for m in messages {
            let notification: Notification = serde_json::from_str(m.body().unwrap()).unwrap();
            ids.push(notification.event.id);
            env.delete_received(queue_url, &m).await;
        }
    }
}

fn sweeper(env: &TestEnv, queue_url: &str) -> Sweeper {
    Sweeper::new(
        env.control.clone(),
        env.data.clone(),
        NotificationQueue::new(env.sqs.clone(), queue_url),
        Bounds::for_queue(MAX_RECEIVE_COUNT),
    )
}

/// A worker that announces on `queue_url` through an SQS client whose every SendMessage is
/// refused past the SDK's retries: the settle is written, its event never enqueued, as when
/// the worker dies between the two. (Continuations go by SendMessageBatch, untouched.)
async fn worker_that_loses_its_announcements(env: &TestEnv, queue_url: &str) -> (Worker, Faults) {
    let faults = Faults::start().await;
    faults.add(Rule::new("SendMessage", "", Kind::ServerError));
    let worker = env
        .worker
        .clone()
        .with_notifications(NotificationQueue::new(faults.sqs(&env.sqs), queue_url));
    (worker, faults)
}

async fn open_entries(env: &TestEnv, job_id: &str) -> usize {
    env.scan(&env.tables.control)
        .await
        .iter()
        .filter(|i| key_of(i).0.starts_with("OPEN#") && key_of(i).1 == format!("JOB#{job_id}"))
        .count()
}

#[tokio::test]
async fn a_settlement_whose_enqueue_was_lost_is_announced_by_the_sweep_once() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), WORLD).await;
    let webhooks = webhook_queue(&env).await;
    let (worker, faults) = worker_that_loses_its_announcements(&env, &webhooks).await;
    let job = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    env.drain(&worker).await;
    assert_eq!(env.status(&job).await["jobStatus"], "completed");
    assert!(faults.injected() > 0, "the worker tried to announce");
    assert!(take_events(&env, &webhooks).await.is_empty());

    // Not while the worker may still be announcing it; the job stays listed meanwhile.
    let sweeper = sweeper(&env, &webhooks);
    let report = sweeper.sweep(now_ms()).await.unwrap();
    assert_eq!((report.announced, report.closed), (0, 0), "{report:?}");
    assert_eq!(open_entries(&env, &job).await, 1);

    let report = sweeper.sweep(now_ms() + 2 * MINUTE_MS).await.unwrap();
    assert_eq!(report.announced, 1, "{report:?}");
    assert_eq!(
        take_events(&env, &webhooks).await,
        [format!("{job}.completed")]
    );
    // Announced: later passes send nothing more, and the entry goes.
    let report = sweeper.sweep(now_ms() + 10 * MINUTE_MS).await.unwrap();
    assert_eq!((report.announced, report.closed), (0, 1), "{report:?}");
    let report = sweeper.sweep(now_ms() + 20 * MINUTE_MS).await.unwrap();
    assert_eq!(report.open, 0, "{report:?}");
    assert!(take_events(&env, &webhooks).await.is_empty());
}

/// Starts a job over u1 and u2 and runs only u2's message: u1's died on every attempt. Returns
/// the job and u1's message, as the dead-letter queue would hold it.
async fn job_whose_u1_died(env: &TestEnv) -> (String, String) {
    let job = env.start_job(r#"{"data":{"userIds":["u1","u2"]}}"#).await;
    let messages = env.receive(&env.queue_url).await;
    assert_eq!(messages.len(), 2);
    let mut dead = None;
    for m in &messages {
        let body = m.body().unwrap().to_owned();
        let user: Value = serde_json::from_str(&body).unwrap();
        if user["userId"] == "u1" {
            dead = Some(body);
            env.delete_received(&env.queue_url, m).await;
        } else {
            env.deliver_first(m).await;
        }
    }
    (job, dead.unwrap())
}

#[tokio::test]
async fn a_job_the_sweep_ends_partial_is_announced_and_so_is_its_redrive_to_completed() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), WORLD).await;
    let webhooks = webhook_queue(&env).await;
    let (job, dead) = job_whose_u1_died(&env).await;
    let bounds = Bounds::for_queue(MAX_RECEIVE_COUNT);

    let report = sweeper(&env, &webhooks)
        .sweep(now_ms() + bounds.stalled_after_ms + 1)
        .await
        .unwrap();
    assert_eq!(
        (report.stalled, report.announced, report.closed),
        (1, 1, 1),
        "{report:?}"
    );
    assert_eq!(env.status(&job).await["jobStatus"], "partial");
    assert_eq!(
        take_events(&env, &webhooks).await,
        [format!("{job}.partial")]
    );
    assert_eq!(
        open_entries(&env, &job).await,
        0,
        "announced, the entry went"
    );

    // The redrive completes the job; the worker's own announcement is lost.
    let (worker, faults) = worker_that_loses_its_announcements(&env, &webhooks).await;
    env.sqs
        .send_message()
        .queue_url(&env.queue_url)
        .message_body(dead)
        .send()
        .await
        .unwrap();
    env.drain(&worker).await;
    assert_eq!(env.status(&job).await["jobStatus"], "completed");
    assert!(faults.injected() > 0);
    assert_eq!(
        open_entries(&env, &job).await,
        1,
        "settling anew listed the job again"
    );
    let report = sweeper(&env, &webhooks)
        .sweep(now_ms() + 2 * MINUTE_MS)
        .await
        .unwrap();
    assert_eq!(report.announced, 1, "{report:?}");
    assert_eq!(
        take_events(&env, &webhooks).await,
        [format!("{job}.completed")]
    );
}

/// The api on an SQS client of its own for the webhook queue, and a DynamoDB client that
/// refuses the enqueued mark (past the SDK's retries) while `faults` says so.
fn api_whose_mark_fails(env: &TestEnv, faults: &Faults, webhooks: &str) -> Api {
    let dynamodb = faults.dynamodb(&env.dynamodb);
    Api::new(
        ControlStore::new(dynamodb.clone(), &env.tables.control),
        DataStore::new(dynamodb, &env.tables.data),
        TaskQueue::new(env.sqs.clone(), &env.queue_url),
        ApiConfig {
            tables: env.tables.clone(),
            task_queue_url: env.queue_url.clone(),
            rate_limit_per_minute: 10_000,
            job_retention_days: 30,
            export_token_key: common::export_token_key(),
            webhook_queue_url: Some(webhooks.to_owned()),
        },
    )
    .with_notifications(NotificationQueue::new(env.sqs.clone(), webhooks))
}

#[tokio::test]
async fn a_job_settled_by_the_apis_enqueued_mark_is_announced_by_the_api() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), WORLD).await;
    let webhooks = webhook_queue(&env).await;
    let faults = Faults::start().await;
    faults.add(Rule::new(
        "UpdateItem",
        "if_not_exists(enqueuedAt",
        Kind::ServerError,
    ));
    let api = api_whose_mark_fails(&env, &faults, &webhooks);
    let headers = [
        ("x-velt-api-key", API_KEY),
        ("x-velt-auth-token", AUTH_TOKEN),
        ("idempotency-key", "marked-late"),
    ];
    let body = r#"{"data":{"userIds":["u1"]}}"#;
    let delete = "/v2/users/data/delete";
    let (status, answer) = request_to(&api, "POST", delete, &headers, body).await;
    assert_eq!(status, 503, "{answer}");
    // Every task ends before the mark: the job cannot complete yet.
    env.drain(&env.worker).await;
    let job: String = env
        .scan(&env.tables.control)
        .await
        .into_iter()
        .find(is_job_item)
        .map(|i| i["jobId"].as_s().unwrap().clone())
        .unwrap();
    assert_eq!(env.status(&job).await["tasksLeft"], 0);
    assert!(take_events(&env, &webhooks).await.is_empty());

    // The retry's mark settles it, and the api announces it.
    faults.clear();
    let (status, answer) = request_to(&api, "POST", delete, &headers, body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(env.status(&job).await["jobStatus"], "completed");
    assert_eq!(
        take_events(&env, &webhooks).await,
        [format!("{job}.completed")]
    );
    // Recorded: the sweep sends nothing more.
    let report = sweeper(&env, &webhooks)
        .sweep(now_ms() + 10 * MINUTE_MS)
        .await
        .unwrap();
    assert_eq!(report.announced, 0, "{report:?}");
    assert!(take_events(&env, &webhooks).await.is_empty());
}

#[tokio::test]
async fn a_settlement_already_announced_is_not_sent_again_by_the_sweep() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), WORLD).await;
    let webhooks = webhook_queue(&env).await;
    let worker = env
        .worker
        .clone()
        .with_notifications(NotificationQueue::new(env.sqs.clone(), &webhooks));
    let job = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    env.drain(&worker).await;
    assert_eq!(
        take_events(&env, &webhooks).await,
        [format!("{job}.completed")]
    );
    let sweeper = sweeper(&env, &webhooks);
    for minutes in [2, 10, 20] {
        let report = sweeper.sweep(now_ms() + minutes * MINUTE_MS).await.unwrap();
        assert_eq!(report.announced, 0, "{minutes} min: {report:?}");
    }
    assert!(take_events(&env, &webhooks).await.is_empty());
    assert_eq!(open_entries(&env, &job).await, 0);
}

/// Whether `recorder` saw a read of a tenant record.
fn read_a_tenant(recorder: &Recorder) -> bool {
    recorder.calls().iter().any(|c| {
        c.action == "dynamodb:GetItem" && c.leading_keys.iter().any(|k| k.starts_with("TENANT#"))
    })
}

#[tokio::test]
async fn a_tenant_without_a_webhook_costs_the_sweep_one_read_per_settlement_and_no_message() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), WORLD).await;
    // A webhook queue, but no webhook registered for the tenant.
    let webhooks = infra::ensure_queues(&env.sqs, &unique("webhooks"), 1)
        .await
        .unwrap()
        .task_queue_url;
    let job = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    env.drain(&env.worker).await;
    assert_eq!(env.status(&job).await["jobStatus"], "completed");
    let recording_sweeper = |recorder: &Recorder| {
        Sweeper::new(
            ControlStore::new(recorder.dynamodb(&env.dynamodb), &env.tables.control),
            DataStore::new(recorder.dynamodb(&env.dynamodb), &env.tables.data),
            NotificationQueue::new(recorder.sqs(&env.sqs), &webhooks),
            Bounds::for_queue(MAX_RECEIVE_COUNT),
        )
    };

    // The first pass past the grace period asks once, sends nothing and records that.
    let first = Recorder::default();
    let report = recording_sweeper(&first)
        .sweep(now_ms() + 2 * MINUTE_MS)
        .await
        .unwrap();
    assert_eq!(report.announced, 0, "{report:?}");
    assert!(
        read_a_tenant(&first),
        "the sweep asked whether it has a webhook"
    );
    assert!(!first.calls().iter().any(|c| c.action == "sqs:SendMessage"));
    // Later passes never ask again: the entry goes once it is old enough, then nothing.
    for minutes in [3, 10, 20] {
        let later = Recorder::default();
        recording_sweeper(&later)
            .sweep(now_ms() + minutes * MINUTE_MS)
            .await
            .unwrap();
        assert!(
            !read_a_tenant(&later),
            "{minutes} min: the tenant read again"
        );
        assert!(!later.calls().iter().any(|c| c.action == "sqs:SendMessage"));
    }
    assert_eq!(open_entries(&env, &job).await, 0);
    assert!(take_events(&env, &webhooks).await.is_empty());
    let status = env
        .control
        .get_job(&JobId::parse(&job).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.owes_announcement());
}
