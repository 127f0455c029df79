//! The IAM roles of `template.yaml` are exactly what the code needs. dynalite and moto enforce no
//! IAM, so the real `Api`, `Worker`, `Notifier` and `Sweeper` run here on clients that record every call (action, table
//! or queue, partition keys), through every path that reaches AWS; then each function's recorded
//! calls are checked against its role both ways: a call the role does not allow would be
//! AccessDenied once deployed, and a permission no call used is more than the code needs.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::faults::{Faults, Kind, Rule};
use common::policy::{self, disagreements, statements, ResourceCall};
use common::receiver::Receiver;
use common::recorder::Recorder;
use common::{request_to, TestEnv, API_KEY, AUTH_TOKEN};
use erasure::api::Api;
use erasure::config::ApiConfig;
use erasure::control::{ControlStore, TaskClaim};
use erasure::domain::entity::{reference_key, Key};
use erasure::domain::ids::{JobId, UserId};
use erasure::domain::task::{plan_tasks, TaskKind};
use erasure::erase::Intent;
use erasure::infra::MAX_RECEIVE_COUNT;
use erasure::queue::TaskQueue;
use erasure::store::DataStore;
use erasure::webhook::delivery::{Backoff, Notifier, WebhookDelivery};
use erasure::webhook::event::Notification;
use erasure::webhook::queue::NotificationQueue;
use erasure::webhook::url_policy::UrlPolicy;
use erasure::worker::{Delivery, Worker};
use serde_json::Value;

const RICH_WORLD: &str = include_str!("fixtures/world-rich.json");
const CREDENTIALS: [(&str, &str); 2] = [
    ("x-velt-api-key", API_KEY),
    ("x-velt-auth-token", AUTH_TOKEN),
];
const DELETE: &str = "/v2/users/data/delete";
const STATUS: &str = "/v2/users/data/delete/status";

/// The template's logical resource behind a table name or queue URL of this test.
fn logical_resource(env: &TestEnv, name: &str) -> String {
    if name == env.tables.data {
        "DataTable".into()
    } else if name == env.tables.control {
        "ControlTable".into()
    } else if name.starts_with(&webhook_queue_url(env)) {
        "WebhookQueue".into()
    } else if name.starts_with(&env.queue_url) {
        // The task queue, or the missing stand-in for it that makes sending fail.
        "TaskQueue".into()
    } else {
        panic!("a call named {name}, which is none of the template's resources")
    }
}

/// This test's webhook queue (made by [`ensure_webhook_queue`]).
fn webhook_queue_url(env: &TestEnv) -> String {
    format!("{}-webhooks", env.queue_url)
}

async fn ensure_webhook_queue(env: &TestEnv) {
    let name = webhook_queue_url(env)
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let queues = erasure::infra::ensure_queues(&env.sqs, &name, 1)
        .await
        .unwrap();
    assert_eq!(queues.task_queue_url, webhook_queue_url(env));
}

fn recorded(env: &TestEnv, recorder: &Recorder) -> Vec<ResourceCall> {
    policy::to_resources(&recorder.calls(), |name| logical_resource(env, name))
}

fn assert_role_fits(function: &str, calls: &[ResourceCall]) {
    let problems = disagreements(function, &statements(&policy::template(), function), calls);
    let mut used: Vec<String> = calls
        .iter()
        .map(|c| format!("{} on {}", c.action, c.resource))
        .collect();
    used.sort();
    used.dedup();
    assert!(
        problems.is_empty(),
        "template.yaml and the code disagree:\n  {}\n{function} used: {}",
        problems.join("\n  "),
        used.join(", ")
    );
}

/// The real `Api` on clients like `dynamodb` and the test's SQS client that record into
/// `recorder`, announcing the jobs it settles.
fn recording_api(
    env: &TestEnv,
    recorder: &Recorder,
    dynamodb: &aws_sdk_dynamodb::Client,
    queue_url: &str,
    rate_limit: u32,
) -> Api {
    let dynamodb = recorder.dynamodb(dynamodb);
    Api::new(
        ControlStore::new(dynamodb.clone(), &env.tables.control),
        DataStore::new(dynamodb, &env.tables.data),
        TaskQueue::new(recorder.sqs(&env.sqs), queue_url),
        ApiConfig {
            tables: env.tables.clone(),
            task_queue_url: queue_url.to_owned(),
            rate_limit_per_minute: rate_limit,
            job_retention_days: 30,
            export_token_key: erasure::config::ExportTokenKey::parse(
                "export-token-key-for-tests-only-0123456789",
            )
            .unwrap(),
            webhook_queue_url: Some(webhook_queue_url(env)),
        },
    )
    .with_notifications(NotificationQueue::new(
        recorder.sqs(&env.sqs),
        webhook_queue_url(env),
    ))
}

/// The real `Worker` on clients that record into `recorder`, announcing the jobs it settles.
fn recording_worker(env: &TestEnv, recorder: &Recorder) -> Worker {
    let dynamodb = recorder.dynamodb(&env.dynamodb);
    Worker::new(
        ControlStore::new(dynamodb.clone(), &env.tables.control),
        DataStore::new(dynamodb, &env.tables.data),
        TaskQueue::new(recorder.sqs(&env.sqs), &env.queue_url),
        MAX_RECEIVE_COUNT,
    )
    .with_notifications(NotificationQueue::new(
        recorder.sqs(&env.sqs),
        webhook_queue_url(env),
    ))
}

async fn post(api: &Api, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    request_to(api, "POST", path, headers, body).await
}

fn with_key(key: &str) -> Vec<(&str, &str)> {
    let mut headers = CREDENTIALS.to_vec();
    headers.push(("idempotency-key", key));
    headers
}

#[tokio::test]
async fn the_api_role_allows_exactly_the_calls_the_api_makes() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), RICH_WORLD).await;
    ensure_webhook_queue(&env).await;
    let recorder = Recorder::default();
    let api = recording_api(&env, &recorder, &env.dynamodb, &env.queue_url, 10_000);

    // A job whose tasks all end before its enqueued mark (the first mark fails): the retry's
    // mark settles it and the api announces it.
    let faults = Faults::start().await;
    faults.add(Rule::new(
        "UpdateItem",
        "if_not_exists(enqueuedAt",
        Kind::ServerError,
    ));
    let unmarked = recording_api(
        &env,
        &recorder,
        &faults.dynamodb(&env.dynamodb),
        &env.queue_url,
        10_000,
    );
    let body = r#"{"data":{"userIds":["u13"]}}"#;
    let (status, answer) = post(&unmarked, DELETE, &with_key("key-0"), body).await;
    assert_eq!(status, 503, "{answer}");
    env.drain(&env.worker).await;
    let (status, answer) = post(&api, DELETE, &with_key("key-0"), body).await;
    assert_eq!(status, 202, "{answer}");
    let marked = answer["data"]["jobId"].as_str().unwrap().to_owned();
    assert_eq!(env.status(&marked).await["jobStatus"], "completed");

    // A job without and with organizations: tombstones of both shapes, job, tasks, enqueued.
    let (status, answer) = post(&api, DELETE, &CREDENTIALS, r#"{"data":{"userIds":["u1"]}}"#).await;
    assert_eq!(status, 202, "{answer}");
    let job_id = answer["data"]["jobId"].as_str().unwrap().to_owned();
    let scoped = r#"{"data":{"userIds":["u2"],"organizationIds":["org1"]}}"#;
    assert_eq!(post(&api, DELETE, &CREDENTIALS, scoped).await.0, 202);
    // An Idempotency-Key: claimed, replayed, refused with another body.
    let body = r#"{"data":{"userIds":["u9"]}}"#;
    let (status, first) = post(&api, DELETE, &with_key("key-1"), body).await;
    assert_eq!(status, 202, "{first}");
    let (status, replay) = post(&api, DELETE, &with_key("key-1"), body).await;
    assert_eq!(
        (status, &replay["data"]["jobId"]),
        (202, &first["data"]["jobId"])
    );
    let other = r#"{"data":{"userIds":["u10"]}}"#;
    assert_eq!(post(&api, DELETE, &with_key("key-1"), other).await.0, 422);
    // A job whose tasks could not all be sent, finished by a retry with its key.
    let missing_queue = format!("{}-missing", env.queue_url);
    let broken = recording_api(&env, &recorder, &env.dynamodb, &missing_queue, 10_000);
    let body = r#"{"data":{"userIds":["u12"]}}"#;
    let (status, answer) = post(&broken, DELETE, &with_key("key-2"), body).await;
    assert!(status >= 500, "{answer}");
    let (status, answer) = post(&api, DELETE, &with_key("key-2"), body).await;
    assert_eq!(status, 202, "{answer}");
    // A dry run, a status, an unknown job, a wrong token, the rate limit.
    let dry = r#"{"data":{"userIds":["u10","u11","u#4"],"dryRun":true}}"#;
    let (status, answer) = post(&api, DELETE, &CREDENTIALS, dry).await;
    assert_eq!(status, 200, "{answer}");
    let status_body = format!(r#"{{"data":{{"jobId":"{job_id}"}}}}"#);
    assert_eq!(post(&api, STATUS, &CREDENTIALS, &status_body).await.0, 200);
    // A running job's status reads its task items too (the worker's first delivery marks it).
    env.control
        .mark_running(&JobId::parse(&job_id).unwrap())
        .await
        .unwrap();
    assert_eq!(post(&api, STATUS, &CREDENTIALS, &status_body).await.0, 200);
    let unknown = format!(r#"{{"data":{{"jobId":"{}"}}}}"#, JobId::generate());
    assert_eq!(post(&api, STATUS, &CREDENTIALS, &unknown).await.0, 404);
    // An export: the tombstone's consistent read, one Query per section, the targets.
    let export = r#"{"data":{"organizationId":"org1","userId":"u10"}}"#;
    let (status, answer) = post(&api, "/v2/users/data/get", &CREDENTIALS, export).await;
    assert_eq!(status, 200, "{answer}");
    assert!(!answer["result"]["data"]["comments"]
        .as_array()
        .unwrap()
        .is_empty());
    let wrong_token = [("x-velt-api-key", API_KEY), ("x-velt-auth-token", "wrong")];
    assert_eq!(post(&api, STATUS, &wrong_token, &status_body).await.0, 401);
    // Two requests: a minute may begin between the earlier ones and the first of these.
    let limited = recording_api(&env, &recorder, &env.dynamodb, &env.queue_url, 1);
    let first = post(&limited, STATUS, &CREDENTIALS, &status_body).await.0;
    let second = post(&limited, STATUS, &CREDENTIALS, &status_body).await.0;
    assert!(first == 429 || second == 429, "{first} {second}");

    assert_role_fits("ApiFunction", &recorded(&env, &recorder));
}

/// Makes `user`'s `views` task fail on every attempt: a reference to an item that is no entity.
/// Returns the reference, whose removal cures it.
async fn poison_views(env: &TestEnv, user: &str) -> Key {
    let poison = Key {
        pk: format!("poison-{user}"),
        sk: "poison".into(),
    };
    let reference = reference_key(&env.tenant(), user, TaskKind::Views, Some("org1"), &poison);
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let items = [
        HashMap::from([
            ("pk".to_owned(), s(&reference.pk)),
            ("sk".to_owned(), s(&reference.sk)),
            ("entity".to_owned(), s("Reference")),
            ("targetPk".to_owned(), s(&poison.pk)),
            ("targetSk".to_owned(), s(&poison.sk)),
        ]),
        HashMap::from([
            ("pk".to_owned(), s(&poison.pk)),
            ("sk".to_owned(), s(&poison.sk)),
            ("entity".to_owned(), s("NotAnEntity")),
        ]),
    ];
    for item in items {
        env.dynamodb
            .put_item()
            .table_name(&env.tables.data)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
    reference
}

/// One user owning more than a page of one feature, so that a task must pause and continue.
fn heavy_world() -> String {
    let documents: Vec<Value> = (0..150)
        .map(|i| {
            serde_json::json!({"documentId": format!("heavy-d{i}"),
                                    "users": [{"userId": "heavy", "accessRole": "editor"}]})
        })
        .collect();
    serde_json::json!({"organizations": [{"organizationId": "heavy-org", "documents": documents}]})
        .to_string()
}

fn rich_world_users() -> Vec<String> {
    let world: Value = serde_json::from_str(RICH_WORLD).unwrap();
    world["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_worker_role_allows_exactly_the_calls_the_worker_makes() {
    let mut env = TestEnv::new().await;
    env.seed(&env.tenant(), RICH_WORLD).await;
    env.seed(&env.tenant(), &heavy_world()).await;
    ensure_webhook_queue(&env).await;
    let recorder = Recorder::default();
    let worker = recording_worker(&env, &recorder);

    // A task that fails on its last attempt: its failure is recorded and the job settles.
    let poison = poison_views(&env, "victim").await;
    let job = env.start_job(r#"{"data":{"userIds":["victim"]}}"#).await;
    let message = env
        .receive(&env.queue_url)
        .await
        .pop()
        .expect("the victim's tasks are queued");
    env.delete_received(&env.queue_url, &message).await;
    let last_attempt = Delivery {
        message_id: message.message_id().unwrap().to_owned(),
        body: message.body().unwrap().to_owned(),
        receive_count: MAX_RECEIVE_COUNT,
    };
    let redriven = Delivery {
        message_id: "redriven".into(),
        receive_count: 1,
        ..last_attempt.clone()
    };
    let failed = worker.handle(vec![last_attempt], env.deadline()).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(env.status(&job).await["jobStatus"], "partial");
    // Cured and redriven: the job settles anew, listed in the open-jobs index again first.
    env.delete_data_item(&poison).await;
    assert!(worker
        .handle(vec![redriven], env.deadline())
        .await
        .is_empty());
    assert_eq!(env.status(&job).await["jobStatus"], "completed");

    // A run that died with a page open, having claimed a contested entity, made by the calls
    // a run makes: the next run counts the page from its receipt. (The receipt's entity is made
    // up, so the count it adds is not checked here: tests/exact_counts.rs checks counts.)
    let job = env.start_job(r#"{"data":{"userIds":["victim"]}}"#).await;
    let job_id = JobId::parse(&job).unwrap();
    let control = ControlStore::new(recorder.dynamodb(&env.dynamodb), &env.tables.control);
    let now = erasure::clock::now_ms();
    let TaskClaim::Granted(dead) = control
        .claim_task(&job_id, "t0.views", now, now, now / 1000 + 3_600)
        .await
        .unwrap()
    else {
        panic!("the first claim of a task is granted");
    };
    let group = "0".repeat(32);
    let intent = Intent {
        groups: [group.clone()].into(),
        ..Intent::default()
    };
    assert!(control.open_page(&job_id, &dead, 1, &intent).await.unwrap());
    let entity = Key {
        pk: "made-up".into(),
        sk: "entity".into(),
    };
    let claimed = control
        .claim_receipts(
            &group,
            &[entity],
            &dead.page_name(1),
            now / 1000,
            now / 1000 + 3_600,
        )
        .await
        .unwrap();
    assert_eq!(claimed, 1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    env.drain(&worker).await;
    assert_eq!(env.status(&job).await["jobStatus"], "completed");

    // A task past the invocation's deadline pauses, records its progress and continues.
    env.invocation_budget = Duration::ZERO;
    let job = env.start_job(r#"{"data":{"userIds":["heavy"]}}"#).await;
    for _ in 0..50 {
        if env.status(&job).await["jobStatus"] == "completed" {
            break;
        }
        if env.deliver_once(&worker).await == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let status = env.status(&job).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");
    assert_eq!(status["items"]["access"]["removed"], 150);
    env.invocation_budget = Duration::from_secs(600);

    // All nine features of every user of the rich world, each message delivered twice.
    let users = rich_world_users();
    let body = serde_json::json!({"data": {"userIds": users}}).to_string();
    let job = env.start_job(&body).await;
    let user_ids: Vec<UserId> = users.iter().map(|u| UserId::parse(u).unwrap()).collect();
    let tasks = plan_tasks(&JobId::parse(&job).unwrap(), &user_ids, false);
    TaskQueue::new(env.sqs.clone(), &env.queue_url)
        .send_all(&env.tenant(), &tasks)
        .await
        .unwrap();
    env.drain(&worker).await;
    let status = env.status(&job).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");
    for kind in TaskKind::ALL {
        let items = &status["items"][kind.as_str()];
        let touched =
            items["removed"].as_u64().unwrap_or(0) + items["rewritten"].as_u64().unwrap_or(0);
        assert!(
            touched > 0,
            "the {kind} deleter had nothing to do: {status}"
        );
    }
    assert!(
        status["items"]["mentions"]["rewritten"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );

    assert_role_fits("WorkerFunction", &recorded(&env, &recorder));
}

#[test]
fn neither_role_can_write_a_tenant_and_the_worker_cannot_read_one() {
    let template = policy::template();
    let tenant_item = |action: &str| ResourceCall {
        action: action.to_owned(),
        resource: "ControlTable".into(),
        leading_keys: vec!["TENANT#0123456789abcdef".into()],
    };
    for function in [
        "ApiFunction",
        "WorkerFunction",
        "NotifierFunction",
        "SweepFunction",
    ] {
        let statements = statements(&template, function);
        for action in [
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
        ] {
            assert!(
                !statements.iter().any(|s| s.allows(&tenant_item(action))),
                "{function} may {action} a tenant item"
            );
        }
    }
    let worker = statements(&template, "WorkerFunction");
    assert!(!worker
        .iter()
        .any(|s| s.allows(&tenant_item("dynamodb:GetItem"))));
}

/// One notification of a job of the test's tenant, received from the webhook queue.
async fn received_notification(env: &TestEnv, job_id: &str) -> WebhookDelivery {
    let job = env
        .control
        .get_job(&JobId::parse(job_id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let queue = NotificationQueue::new(env.sqs.clone(), webhook_queue_url(env));
    queue
        .send(&Notification::of(
            &job,
            &Default::default(),
            erasure::clock::now_ms(),
        ))
        .await
        .unwrap();
    let message = env
        .receive(&webhook_queue_url(env))
        .await
        .pop()
        .expect("the notification is queued");
    WebhookDelivery {
        message_id: message.message_id().unwrap().to_owned(),
        receipt_handle: message.receipt_handle().unwrap().to_owned(),
        body: message.body().unwrap().to_owned(),
        receive_count: 1,
    }
}

#[tokio::test]
async fn the_notifier_role_allows_exactly_the_calls_the_notifier_makes() {
    let env = TestEnv::new().await;
    ensure_webhook_queue(&env).await;
    let receiver = Receiver::start(1).await;
    env.set_webhook(&receiver.url).await;
    let recorder = Recorder::default();
    let notifier = Notifier::new(
        ControlStore::new(recorder.dynamodb(&env.dynamodb), &env.tables.control),
        NotificationQueue::new(recorder.sqs(&env.sqs), webhook_queue_url(&env)),
        UrlPolicy {
            allow_loopback: true,
        },
        Backoff {
            base_seconds: 0,
            cap_seconds: 0,
        },
    );
    let job = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;

    // Refused (the retry is delayed), then delivered.
    let failed = notifier
        .handle(vec![received_notification(&env, &job).await])
        .await;
    assert_eq!(failed.len(), 1);
    let failed = notifier
        .handle(vec![received_notification(&env, &job).await])
        .await;
    assert!(failed.is_empty());
    assert_eq!(receiver.received().len(), 2);

    assert_role_fits("NotifierFunction", &recorded(&env, &recorder));
}

#[test]
fn the_notifier_reads_nothing_of_the_control_table_but_tenants() {
    let template = policy::template();
    let notifier = statements(&template, "NotifierFunction");
    for leading_key in ["JOB#abc", "IDEM#abc", "RATE#abc"] {
        let call = ResourceCall {
            action: "dynamodb:GetItem".into(),
            resource: "ControlTable".into(),
            leading_keys: vec![leading_key.into()],
        };
        assert!(!notifier.iter().any(|s| s.allows(&call)), "{leading_key}");
    }
}

#[test]
fn string_like_patterns_match_as_iam_matches_them() {
    assert!(policy::like("JOB#*", "JOB#abc"));
    assert!(policy::like("JOB#*", "JOB#"));
    assert!(!policy::like("JOB#*", "TENANT#JOB#abc"));
    assert!(policy::like("RATE#?", "RATE#1"));
    assert!(!policy::like("RATE#?", "RATE#12"));
}

#[tokio::test]
async fn the_sweep_role_allows_exactly_the_calls_the_sweep_makes() {
    let env = TestEnv::new().await;
    ensure_webhook_queue(&env).await;
    env.set_webhook("http://127.0.0.1:9/hook").await;
    // A job that will stall (its tasks never run), one never fully enqueued, one completed
    // (by a worker that does not announce: the sweep does). The one never enqueued shares a
    // user with the completed one: its release deletes one tombstone and updates the other.
    let stalled = env.start_job(r#"{"data":{"userIds":["s1"]}}"#).await;
    let missing_queue = format!("{}-missing", env.queue_url);
    let broken = recording_api(
        &env,
        &Recorder::default(),
        &env.dynamodb,
        &missing_queue,
        10_000,
    );
    let (status, answer) = post(
        &broken,
        DELETE,
        &CREDENTIALS,
        r#"{"data":{"userIds":["s2","s4"]}}"#,
    )
    .await;
    assert!(status >= 500, "{answer}");
    env.sqs
        .purge_queue()
        .queue_url(&env.queue_url)
        .send()
        .await
        .unwrap();
    let done = env.start_job(r#"{"data":{"userIds":["s3","s4"]}}"#).await;
    env.drain(&env.worker).await;
    assert_eq!(env.status(&done).await["jobStatus"], "completed");

    let recorder = Recorder::default();
    let sweeper = erasure::sweep::Sweeper::new(
        ControlStore::new(recorder.dynamodb(&env.dynamodb), &env.tables.control),
        DataStore::new(recorder.dynamodb(&env.dynamodb), &env.tables.data),
        NotificationQueue::new(recorder.sqs(&env.sqs), webhook_queue_url(&env)),
        erasure::sweep::Bounds::for_queue(MAX_RECEIVE_COUNT),
    );
    let later = erasure::clock::now_ms() + 48 * 60 * 60 * 1000;
    let report = sweeper.sweep(later).await.unwrap();
    assert_eq!(
        (report.stalled, report.unfinished, report.announced),
        (1, 1, 3),
        "{report:?}"
    );
    // A pass later, the job never enqueued lets go of its users.
    let report = sweeper.sweep(later + 60 * 60 * 1000).await.unwrap();
    assert_eq!(report.tombstones_lifted, 1, "{report:?}");
    assert_eq!(env.status(&stalled).await["jobStatus"], "failed");

    assert_role_fits("SweepFunction", &recorded(&env, &recorder));
}
