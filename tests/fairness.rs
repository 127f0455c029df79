//! One tenant flooding the queue and another's single-user job: how long the small job takes
//! behind the flood, against the same job on an idle queue. The test asserts that every job
//! completes, each with exactly its own users' items; the times it prints are figures for the
//! record (DESIGN §9, "Fairness"), not assertions.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use common::{TestEnv, API_KEY, AUTH_TOKEN};
use serde_json::{json, Value};

/// Tenant A's flood: two jobs of 100 users, the contract's most per request.
const FLOOD_JOBS: usize = 2;
const USERS_PER_JOB: usize = 100;
/// Invocations the event source runs at once (each takes a batch of 10 messages).
const POLLERS: usize = 4;

const SMALL_KEY: &str = "small-tenant-key";
const SMALL_TOKEN: &str = "small-tenant-token";

fn profiles(users: impl IntoIterator<Item = String>) -> String {
    let users: Vec<Value> = users
        .into_iter()
        .map(|u| json!({"userId": u, "name": format!("Name {u}"), "email": format!("{u}@example.com")}))
        .collect();
    json!({"users": users, "organizations": []}).to_string()
}

async fn start(env: &TestEnv, key: &str, token: &str, users: &[String]) -> String {
    let body = json!({"data": {"userIds": users}}).to_string();
    let (status, answer) = env
        .request(
            "POST",
            "/v2/users/data/delete",
            &[("x-velt-api-key", key), ("x-velt-auth-token", token)],
            &body,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    answer["data"]["jobId"].as_str().unwrap().to_owned()
}

async fn status(env: &TestEnv, key: &str, token: &str, job_id: &str) -> Value {
    let body = json!({"data": {"jobId": job_id}}).to_string();
    let (code, answer) = env
        .request(
            "POST",
            "/v2/users/data/delete/status",
            &[("x-velt-api-key", key), ("x-velt-auth-token", token)],
            &body,
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    answer["result"]["data"].clone()
}

/// Runs the worker as the event source would, `POLLERS` invocations at once, until the small
/// tenant's job completes; returns how long that took from its acceptance.
async fn time_small_job(env: &TestEnv, job_id: &str, accepted: Instant) -> Duration {
    let done = std::sync::atomic::AtomicBool::new(false);
    let poll = || async {
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            if env.deliver_once(&env.worker).await == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let watch = async {
        let give_up = Instant::now() + Duration::from_secs(300);
        loop {
            let job = status(env, SMALL_KEY, SMALL_TOKEN, job_id).await;
            if job["jobStatus"] == "completed" {
                done.store(true, std::sync::atomic::Ordering::Relaxed);
                return accepted.elapsed();
            }
            assert!(
                Instant::now() < give_up,
                "the small job never completed: {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let pollers = futures::future::join_all((0..POLLERS).map(|_| poll()));
    let (took, _) = tokio::join!(watch, pollers);
    took
}

#[tokio::test]
async fn a_single_user_job_completes_while_another_tenant_floods_the_queue() {
    let env = TestEnv::new().await;
    let flood_users: Vec<String> = (0..FLOOD_JOBS * USERS_PER_JOB)
        .map(|i| format!("flood-{i}"))
        .collect();
    env.seed(&env.tenant(), &profiles(flood_users.clone()))
        .await;
    let small = env.add_tenant(SMALL_KEY, SMALL_TOKEN).await;
    env.seed(&small, &profiles(["solo".into(), "solo-again".into()]))
        .await;

    // The small job on an idle queue.
    let accepted = Instant::now();
    let alone = start(&env, SMALL_KEY, SMALL_TOKEN, &["solo".into()]).await;
    let idle = time_small_job(&env, &alone, accepted).await;

    // The flood first, then the same small job for another user.
    let mut flood = Vec::new();
    for users in flood_users.chunks(USERS_PER_JOB) {
        flood.push(start(&env, API_KEY, AUTH_TOKEN, users).await);
    }
    let accepted = Instant::now();
    let behind = start(&env, SMALL_KEY, SMALL_TOKEN, &["solo-again".into()]).await;
    let loaded = time_small_job(&env, &behind, accepted).await;
    let small_job = status(&env, SMALL_KEY, SMALL_TOKEN, &behind).await;
    assert_eq!(small_job["items"]["profile"]["removed"], 1, "{small_job}");

    env.drain(&env.worker).await;
    for job in &flood {
        let job = env.status(job).await;
        assert_eq!(job["jobStatus"], "completed", "{job}");
        assert_eq!(
            job["items"]["profile"]["removed"], USERS_PER_JOB as u64,
            "{job}"
        );
    }
    println!(
        "fairness: a single-user job took {:.2} s on an idle queue and {:.2} s behind {} \
         messages of another tenant ({FLOOD_JOBS} jobs of {USERS_PER_JOB} users), {POLLERS} \
         invocations at once: {:.1}x",
        idle.as_secs_f64(),
        loaded.as_secs_f64(),
        FLOOD_JOBS * USERS_PER_JOB,
        loaded.as_secs_f64() / idle.as_secs_f64()
    );
}

/// The `MessageGroupId` of every message of the queue at `url`, delayed ones included, each
/// received and deleted.
async fn groups(env: &TestEnv, url: &str) -> Vec<Option<String>> {
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut groups = Vec::new();
    loop {
        let received = env.receive(url).await;
        if received.is_empty() {
            if env.messages_pending(url).await == 0 {
                return groups;
            }
            assert!(Instant::now() < give_up, "messages stay delayed in {url}");
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        for message in &received {
            groups.push(
                message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                    .cloned(),
            );
            env.delete_received(url, message).await;
        }
    }
}

#[tokio::test]
async fn every_task_message_carries_its_tenants_message_group() {
    // SQS fair queues tell tenants apart by MessageGroupId (DESIGN §9): the api's messages, a
    // paused task's continuation and a redriven dead letter each carry their tenant's.
    let mut env = TestEnv::new().await;
    let small = env.add_tenant(SMALL_KEY, SMALL_TOKEN).await;
    let (one, other) = (env.tenant().as_str().to_owned(), small.as_str().to_owned());
    // More than a page (100 references) of document access: a task past its deadline pauses
    // after its first page.
    let documents: Vec<Value> = (0..150)
        .map(|i| json!({"documentId": format!("d{i}"), "users": [{"userId": "ada", "accessRole": "viewer"}]}))
        .collect();
    let world = json!({"users": [{"userId": "ada", "name": "Ada", "email": "ada@example.com"}],
                       "organizations": [{"organizationId": "o", "documents": documents}]});
    env.seed(&env.tenant(), &world.to_string()).await;
    start(
        &env,
        API_KEY,
        AUTH_TOKEN,
        &["ada".to_owned(), "bob".to_owned()],
    )
    .await;
    start(&env, SMALL_KEY, SMALL_TOKEN, &["cy".to_owned()]).await;
    let mut sent = groups(&env, &env.queue_url).await;
    sent.sort();
    assert_eq!(sent, [Some(one.clone()), Some(one.clone()), Some(other)]);

    // Every invocation already past its deadline: the task pauses and sends its continuation.
    env.invocation_budget = Duration::ZERO;
    start(&env, API_KEY, AUTH_TOKEN, &["ada".to_owned()]).await;
    assert_eq!(env.deliver_once(&env.worker).await, 1);
    let continued = groups(&env, &env.queue_url).await;
    assert!(!continued.is_empty(), "no continuation was sent");
    assert!(
        continued.iter().all(|g| g.as_deref() == Some(one.as_str())),
        "{continued:?}"
    );

    // A dead letter moved back by the operator's redrive keeps its group.
    env.sqs
        .send_message()
        .queue_url(&env.dlq_url)
        .message_body(r#"{"jobId":"dead","tasks":[]}"#)
        .message_group_id(&one)
        .send()
        .await
        .unwrap();
    let queue = erasure::queue::TaskQueue::new(env.sqs.clone(), &env.queue_url);
    assert_eq!(queue.redrive(&env.dlq_url).await.unwrap(), 1);
    assert_eq!(groups(&env, &env.queue_url).await, [Some(one)]);
}
