//! The webhook's guarantees against real dynalite and moto: each settlement is announced by
//! exactly one caller (also when two race), `partial` then `completed` are two events, a lost
//! enqueue never fails the job, and the URL policy holds again at send time.

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::{unique, TestEnv, API_KEY};
use erasure::control::{ControlStore, Counts, JobView, TaskClaim};
use erasure::domain::ids::{ApiKey, JobId};
use erasure::domain::job::JobStatus;
use erasure::domain::task::TaskKind;
use erasure::infra;
use erasure::webhook::delivery::{Backoff, Notifier, WebhookDelivery};
use erasure::webhook::event::{event_id, Notification};
use erasure::webhook::queue::NotificationQueue;
use erasure::webhook::url_policy::UrlPolicy;

const WORLD: &str = include_str!("fixtures/world-small.json");
const DEPLOYED: UrlPolicy = UrlPolicy {
    allow_loopback: false,
};

fn task_ids() -> Vec<String> {
    TaskKind::ALL
        .iter()
        .map(|kind| format!("t0.{kind}"))
        .collect()
}

/// Runs a task as the worker does, doing nothing: claims it, then records its success. `None`
/// when another copy holds it or it is done (the copy is dropped), or when the record did not
/// settle the job.
async fn succeed(
    control: &ControlStore,
    job: &JobId,
    task: &str,
    kind: TaskKind,
    now: i64,
) -> Option<JobView> {
    match control
        .claim_task(job, task, now + 30_000, now, now / 1000 + 86_400)
        .await
        .unwrap()
    {
        TaskClaim::Granted(lease) => control
            .record_success(job, &lease, kind, now)
            .await
            .unwrap(),
        _ => None,
    }
}

#[tokio::test]
async fn each_settlement_is_returned_to_exactly_one_caller_even_when_two_race() {
    let env = TestEnv::new().await;
    let job = JobId::parse(&env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await).unwrap();
    let ids = task_ids();
    let (first, last_two) = ids.split_at(ids.len() - 2);
    let success = |task: &str| {
        let (control, job, task) = (env.control.clone(), job.clone(), task.to_owned());
        async move {
            let kind = TaskKind::ALL
                .into_iter()
                .find(|k| task.ends_with(k.as_str()))
                .unwrap();
            succeed(&control, &job, &task, kind, 1).await
        }
    };
    for task in first {
        assert_eq!(success(task).await, None, "{task} does not end the job");
    }
    // The last two tasks end at once, one of them delivered twice: one call settles.
    let (a, b, c) = tokio::join!(
        success(&last_two[0]),
        success(&last_two[1]),
        success(&last_two[1])
    );
    let settled: Vec<_> = [a, b, c].into_iter().flatten().collect();
    assert_eq!(settled.len(), 1, "exactly one caller announces the job");
    assert_eq!(settled[0].status, JobStatus::Completed);
    assert_eq!(settled[0].completed_at, Some(1));
    let last = &last_two[1];
    assert_eq!(
        success(last).await,
        None,
        "a later repeat announces nothing"
    );
}

#[tokio::test]
async fn a_partial_job_redriven_to_completed_announces_two_events() {
    let env = TestEnv::new().await;
    let job = JobId::parse(&env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await).unwrap();
    let ids = task_ids();
    let (last, first) = ids.split_last().unwrap();
    for (task, kind) in first.iter().zip(TaskKind::ALL) {
        succeed(&env.control, &job, task, kind, 1).await;
    }
    let partial = env.control.record_failure(&job, last, 2).await.unwrap();
    let partial = partial.expect("the final failure settles the job partial");
    assert_eq!(partial.status, JobStatus::Partial);
    assert_eq!(
        env.control.record_failure(&job, last, 3).await.unwrap(),
        None
    );
    let kind = TaskKind::ALL[TaskKind::ALL.len() - 1];
    let completed = succeed(&env.control, &job, last, kind, 4)
        .await
        .expect("the redriven task completes the job");
    let (one, two) = (
        Notification::of(&partial, &Counts::new(), 0).event,
        Notification::of(&completed, &Counts::new(), 0).event,
    );
    assert_eq!(one.id, event_id(&job, JobStatus::Partial));
    assert_eq!(two.id, event_id(&job, JobStatus::Completed));
    assert_ne!(one.id, two.id);
    assert_eq!(one.data["jobStatus"], "partial");
    assert_eq!(two.data["jobStatus"], "completed");
    assert_eq!((one.created_at, two.created_at), (2, 4));
}

#[tokio::test]
async fn a_notification_that_cannot_be_enqueued_never_fails_the_job() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), WORLD).await;
    let missing = format!("{}-missing", env.queue_url);
    let worker = env
        .worker
        .clone()
        .with_notifications(NotificationQueue::new(env.sqs.clone(), missing));
    let job = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    env.drain(&worker).await;
    assert_eq!(env.status(&job).await["jobStatus"], "completed");
    assert_eq!(env.queue_depth(&env.dlq_url).await, 0, "no task failed");
}

/// A notification of a fresh job, received from `queue_url` as the event source would.
async fn delivery(env: &TestEnv, queue_url: &str) -> WebhookDelivery {
    let job_id = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    let job = env
        .control
        .get_job(&JobId::parse(&job_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let queue = NotificationQueue::new(env.sqs.clone(), queue_url);
    queue
        .send(&Notification::of(&job, &Counts::new(), 0))
        .await
        .unwrap();
    let message = env.receive(queue_url).await.pop().unwrap();
    WebhookDelivery {
        message_id: message.message_id().unwrap().to_owned(),
        receipt_handle: message.receipt_handle().unwrap().to_owned(),
        body: message.body().unwrap().to_owned(),
        receive_count: 1,
    }
}

#[tokio::test]
async fn a_stored_url_to_a_private_address_is_refused_at_send_time() {
    let env = TestEnv::new().await;
    let receiver = Receiver::start(0).await;
    let webhooks = infra::ensure_queues(&env.sqs, &unique("webhooks"), 1)
        .await
        .unwrap();
    let notifier = |policy| {
        Notifier::new(
            env.control.clone(),
            NotificationQueue::new(env.sqs.clone(), &webhooks.task_queue_url),
            policy,
            Backoff {
                base_seconds: 0,
                cap_seconds: 0,
            },
        )
    };
    let api_key = ApiKey::parse(API_KEY).unwrap();
    // Registered when loopback was allowed, or re-pointed since (a name that now resolves
    // to loopback: DNS rebinding): the deployed notifier sends nothing to either.
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    for url in [
        receiver.url.clone(),
        format!("https://localhost:{port}/hook"),
        format!("https://127.0.0.1:{port}/hook"),
    ] {
        env.control
            .set_webhook(&api_key, &url, "whsec_test")
            .await
            .unwrap();
        let failed = notifier(DEPLOYED)
            .handle(vec![delivery(&env, &webhooks.task_queue_url).await])
            .await;
        assert!(failed.is_empty(), "{url}: dropped, not retried");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.received().is_empty(), "a request reached loopback");

    // The same receiver, allowed where the stack runs locally: the check is what stopped it.
    env.control
        .set_webhook(&api_key, &receiver.url, "whsec_test")
        .await
        .unwrap();
    let local = UrlPolicy {
        allow_loopback: true,
    };
    let failed = notifier(local)
        .handle(vec![delivery(&env, &webhooks.task_queue_url).await])
        .await;
    assert!(failed.is_empty());
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn a_tenant_without_a_webhook_is_sent_nothing() {
    let env = TestEnv::new().await;
    let webhooks = infra::ensure_queues(&env.sqs, &unique("webhooks"), 1)
        .await
        .unwrap();
    let notifier = Notifier::new(
        env.control.clone(),
        NotificationQueue::new(env.sqs.clone(), &webhooks.task_queue_url),
        DEPLOYED,
        Backoff {
            base_seconds: 0,
            cap_seconds: 0,
        },
    );
    let failed = notifier
        .handle(vec![delivery(&env, &webhooks.task_queue_url).await])
        .await;
    assert!(failed.is_empty());
}
