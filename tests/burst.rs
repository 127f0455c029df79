//! A burst of concurrent requests (200, 16 at a time) against the api under `cargo lambda watch`: every answer is
//! a 202 or a 429 in the envelope, each accepted job is stored once and its tasks sent once,
//! and concurrent retries with one `Idempotency-Key` make one job. Nothing consumes the task
//! queue while this runs (test binaries run one after another), so its growth is the count.

mod common;

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use erasure::control::ControlStore;
use erasure::domain::ids::{ApiKey, JobId};
use erasure::domain::tenant::Tenant;
use futures::future::join_all;
use futures::{stream, StreamExt};
use serde_json::Value;

const BURST: usize = 200;
/// Requests in flight at once: `cargo lambda watch` runs one function instance, which takes
/// one invocation at a time; more only wait in its router.
const IN_FLIGHT: usize = 16;
const RETRIES: usize = 20;

async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attributes = attributes.attributes().unwrap();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .map(|name| attributes[name].parse::<usize>().unwrap())
    .sum()
}

/// The job records of `tenant` in the control table.
async fn jobs_of(dynamodb: &aws_sdk_dynamodb::Client, table: &str, tenant: &Tenant) -> Vec<String> {
    dynamodb
        .scan()
        .table_name(table)
        .filter_expression("tenant = :t AND begins_with(pk, :job)")
        .expression_attribute_values(":t", AttributeValue::S(tenant.as_str().to_owned()))
        .expression_attribute_values(":job", AttributeValue::S("JOB#".into()))
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
        .into_iter()
        .map(|item| item["jobId"].as_s().unwrap().clone())
        .collect()
}

#[tokio::test]
async fn a_burst_of_concurrent_requests_stores_each_job_once_and_sends_its_tasks_once() {
    let (lambda, _) = common::emulators::lambda_watch();
    let (vars, dynamodb, sqs) = common::watch_world().await;
    let queue_url = &vars["TASK_QUEUE_URL"];
    let api_key = format!("burst-{}", JobId::generate());
    ControlStore::new(dynamodb.clone(), &vars["CONTROL_TABLE"])
        .put_tenant(&ApiKey::parse(&api_key).unwrap(), "burst-token", 0)
        .await
        .unwrap();
    let before = queue_depth(&sqs, queue_url).await;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let post = |body: String, key: Option<&'static str>| {
        let mut request = http
            .post(format!("{lambda}/lambda-url/api/v2/users/data/delete"))
            .header("content-type", "application/json")
            .header("x-velt-api-key", &api_key)
            .header("x-velt-auth-token", "burst-token")
            .body(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        async move {
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap())
        }
    };

    let answers: Vec<(u16, Value)> = stream::iter(0..BURST)
        .map(|i| post(format!(r#"{{"data":{{"userIds":["b{i}"]}}}}"#), None))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let mut accepted = Vec::new();
    for (status, answer) in &answers {
        match status {
            202 => accepted.push(answer["data"]["jobId"].as_str().unwrap().to_owned()),
            429 => assert_eq!(answer["error"]["status"], "RESOURCE_EXHAUSTED"),
            other => panic!("{other}: {answer}"),
        }
    }
    assert!(!accepted.is_empty());
    let distinct: HashSet<&String> = accepted.iter().collect();
    assert_eq!(
        distinct.len(),
        accepted.len(),
        "a job id was answered twice"
    );
    let tenant = Tenant::from_api_key(&api_key);
    let mut stored = jobs_of(&dynamodb, &vars["CONTROL_TABLE"], &tenant).await;
    stored.sort();
    accepted.sort();
    assert_eq!(
        stored, accepted,
        "each accepted job stored once, and no other"
    );
    // One user per job: one message each.
    assert_eq!(queue_depth(&sqs, queue_url).await - before, accepted.len());

    // Concurrent retries of one request with one key: one job, its two messages sent once.
    let retries = join_all((0..RETRIES).map(|_| {
        post(
            r#"{"data":{"userIds":["r1","r2"]}}"#.to_owned(),
            Some("burst-retry"),
        )
    }))
    .await;
    let mut ids = HashSet::new();
    for (status, answer) in &retries {
        match status {
            202 => {
                ids.insert(answer["data"]["jobId"].as_str().unwrap().to_owned());
            }
            // A retry that found another still sending answers 503; the caller retries.
            503 | 429 => assert!(answer["error"]["status"].is_string(), "{answer}"),
            other => panic!("{other}: {answer}"),
        }
    }
    assert_eq!(ids.len(), 1, "{retries:?}");
    assert_eq!(
        jobs_of(&dynamodb, &vars["CONTROL_TABLE"], &tenant)
            .await
            .len(),
        accepted.len() + 1
    );
    assert_eq!(
        queue_depth(&sqs, queue_url).await - before,
        accepted.len() + 2
    );
    println!(
        "burst: {BURST} concurrent requests, {} accepted, {} refused with 429; {RETRIES} concurrent retries made 1 job",
        accepted.len(),
        BURST - accepted.len()
    );
    // Best effort: the end-to-end tests' bridges need not run these jobs.
    let _ = sqs.purge_queue().queue_url(queue_url).send().await;
}
