//! The functions' CloudWatch metrics, as CloudWatch would read them: every Embedded Metric
//! Format line the worker, the api and the sweep emit during real jobs (dynalite and moto) is
//! parsed, each metric declared with its unit under the `Erasure` namespace, each dimension a
//! word from a fixed set, the counts adding up to what the job reports — and no user id, job
//! id, tenant or API key anywhere in them. Without the metrics, none of these lines exist.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{request_to, Buffer, TestEnv, API_KEY, AUTH_TOKEN};
use erasure::api::Api;
use erasure::config::ApiConfig;
use erasure::infra::MAX_RECEIVE_COUNT;
use erasure::keys::{component, fingerprint};
use erasure::metrics::{Function, Metrics, NAMESPACE};
use erasure::queue::TaskQueue;
use erasure::sweep::{Bounds, Sweeper};
use erasure::webhook::queue::NotificationQueue;
use serde_json::Value;

const WORLD: &str = include_str!("fixtures/contract-example.json");
// Ids that no number, timestamp or word of a metric line could contain by chance.
const ADA: &str = "ada-lovelace-0001";
const GRACE: &str = "grace-hopper-0002";
const HEAVY: &str = "heavy-user-0003";
const DELETE: &str = "/v2/users/data/delete";

/// Every metric the code emits, with its unit, and the dimension values each may carry.
fn unit_of(metric: &str) -> &'static str {
    match metric {
        "TasksDone" | "TasksFailed" | "TasksPaused" | "ItemsRemoved" | "ItemsRewritten"
        | "JobsAccepted" | "ErrorResponses" => "Count",
        "TaskDuration" | "JobAgeAtCompletion" => "Milliseconds",
        "OldestOpenJobAge" => "Seconds",
        other => panic!("an undeclared metric {other}"),
    }
}

fn allowed_values(dimension: &str) -> BTreeSet<&'static str> {
    match dimension {
        "Function" => ["api", "worker", "sweeper"].into(),
        "Feature" => erasure::domain::task::TaskKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect(),
        "JobStatus" => ["completed", "partial", "failed"].into(),
        "StatusClass" => ["4xx", "5xx"].into(),
        "StatusWord" => [
            "INVALID_ARGUMENT",
            "UNAUTHENTICATED",
            "NOT_FOUND",
            "RESOURCE_EXHAUSTED",
            "UNAVAILABLE",
            "INTERNAL",
        ]
        .into(),
        other => panic!("an undeclared dimension {other}"),
    }
}

/// A writer the metrics go to, and what they wrote.
fn capture(function: Function) -> (Metrics, Buffer) {
    let buffer = Buffer::default();
    let writer: Arc<Mutex<dyn std::io::Write + Send>> = Arc::new(Mutex::new(buffer.clone()));
    (Metrics::to_writer(function, writer), buffer)
}

/// The lines as CloudWatch reads them, checked against the EMF specification's rules: every
/// declared metric has a numeric value, every dimension of every set a value from its list.
fn parse(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            let line: Value = serde_json::from_str(line).expect("one JSON object a line");
            let directive = &line["_aws"];
            assert!(directive["Timestamp"].is_i64(), "{line}");
            let specs = directive["CloudWatchMetrics"].as_array().unwrap();
            assert_eq!(specs.len(), 1, "{line}");
            let spec = &specs[0];
            assert_eq!(spec["Namespace"], NAMESPACE);
            for set in spec["Dimensions"].as_array().unwrap() {
                let set = set.as_array().unwrap();
                assert_eq!(set[0], "Function", "Function leads every set: {line}");
                for dimension in set {
                    let dimension = dimension.as_str().unwrap();
                    let value = line[dimension].as_str().unwrap_or_else(|| {
                        panic!("dimension {dimension} has no string value: {line}")
                    });
                    assert!(
                        allowed_values(dimension).contains(value),
                        "{dimension}={value}: {line}"
                    );
                }
            }
            for metric in spec["Metrics"].as_array().unwrap() {
                let name = metric["Name"].as_str().unwrap();
                assert_eq!(metric["Unit"], unit_of(name), "{line}");
                assert!(line[name].as_f64().is_some_and(|v| v >= 0.0), "{line}");
            }
            line
        })
        .collect()
}

/// Sum of `metric` over the lines that carry it, by the value of `dimension`.
fn sum_by(lines: &[Value], metric: &str, dimension: &str) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for line in lines.iter().filter(|l| l.get(metric).is_some()) {
        let key = line[dimension].as_str().unwrap_or("").to_owned();
        *sums.entry(key).or_insert(0.0) += line[metric].as_f64().unwrap();
    }
    sums
}

fn assert_no_id(text: &str, ids: &[&str]) {
    for id in ids {
        assert!(!text.contains(id), "{id} in the metrics:\n{text}");
    }
}

/// One user owning more than a page of document access, so that a pass pauses.
fn heavy_world() -> String {
    let documents: Vec<Value> = (0..120)
        .map(|i| serde_json::json!({"documentId": format!("heavy-d{i}"), "users": [{"userId": HEAVY, "accessRole": "editor"}]}))
        .collect();
    serde_json::json!({"organizations": [{"organizationId": "heavy-org", "documents": documents}]})
        .to_string()
}

#[tokio::test]
async fn the_worker_measures_tasks_items_durations_and_the_age_of_the_jobs_it_settles() {
    let mut env = TestEnv::new().await;
    let world = WORLD.replace("u1", ADA).replace("u2", GRACE);
    env.seed(&env.tenant(), &world).await;
    env.seed(&env.tenant(), &heavy_world()).await;
    let (metrics, buffer) = capture(Function::Worker);
    let worker = env.worker.clone().with_metrics(metrics.clone());
    let broken = env.broken_worker().with_metrics(metrics);

    let job = env
        .start_job(&format!(r#"{{"data":{{"userIds":["{ADA}","{GRACE}"]}}}}"#))
        .await;
    env.deliver_once(&broken).await;
    env.drain(&worker).await;
    let status = env.status(&job).await;
    assert_eq!(status["jobStatus"], "completed", "{status}");
    // A task past the invocation's deadline pauses between pages.
    env.invocation_budget = Duration::ZERO;
    let heavy = env
        .start_job(&format!(r#"{{"data":{{"userIds":["{HEAVY}"]}}}}"#))
        .await;
    for _ in 0..100 {
        if env.status(&heavy).await["jobStatus"] == "completed" {
            break;
        }
        // A continuation may wait out the write window (a delayed message).
        if env.deliver_once(&worker).await == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(env.status(&heavy).await["jobStatus"], "completed");

    let text = buffer.text();
    let lines = parse(&text);
    // 18 tasks of the first job and 9 of the heavy one, each done once.
    let done = sum_by(&lines, "TasksDone", "Feature");
    assert_eq!(done.values().sum::<f64>(), 27.0, "{done:?}");
    assert_eq!(done.len(), 9, "one series per feature: {done:?}");
    // The broken worker's attempts failed: each of them counted, by feature.
    let failed = sum_by(&lines, "TasksFailed", "Feature");
    assert_eq!(failed.values().sum::<f64>(), 18.0, "{failed:?}");
    assert!(sum_by(&lines, "TasksPaused", "Feature")["access"] >= 1.0);
    // The items add up to what the jobs report, feature by feature.
    let removed = sum_by(&lines, "ItemsRemoved", "Feature");
    let heavy_status = env.status(&heavy).await;
    for (feature, count) in &removed {
        let reported = status["items"][feature]["removed"].as_f64().unwrap_or(0.0)
            + heavy_status["items"][feature]["removed"]
                .as_f64()
                .unwrap_or(0.0);
        assert_eq!(*count, reported, "{feature}");
    }
    let rewritten = sum_by(&lines, "ItemsRewritten", "Feature");
    assert_eq!(
        rewritten["mentions"],
        status["items"]["mentions"]["rewritten"].as_f64().unwrap()
    );
    assert!(lines
        .iter()
        .filter(|l| l.get("TaskDuration").is_some())
        .all(|l| l["Feature"].is_string()));
    // Each job settled once, by the task that settled it.
    let ages = sum_by(&lines, "JobAgeAtCompletion", "JobStatus");
    assert_eq!(ages.keys().collect::<Vec<_>>(), ["completed"]);
    let settled = lines
        .iter()
        .filter(|l| l.get("JobAgeAtCompletion").is_some())
        .count();
    assert_eq!(settled, 2);

    let tenant = env.tenant();
    assert_no_id(
        &text,
        &[
            ADA,
            GRACE,
            HEAVY,
            &job,
            &heavy,
            API_KEY,
            tenant.as_str(),
            &component(ADA),
            &fingerprint(ADA),
        ],
    );
}

#[tokio::test]
async fn the_api_counts_accepted_jobs_and_its_error_answers_by_class_and_word() {
    let env = TestEnv::new().await;
    let (metrics, buffer) = capture(Function::Api);
    let api = env.api.clone().with_metrics(metrics.clone());
    let credentials = [
        ("x-velt-api-key", API_KEY),
        ("x-velt-auth-token", AUTH_TOKEN),
    ];
    let user = format!(r#"{{"data":{{"userIds":["{ADA}"]}}}}"#);

    let (status, answer) = request_to(&api, "POST", DELETE, &credentials, &user).await;
    assert_eq!(status, 202, "{answer}");
    let job = answer["data"]["jobId"].as_str().unwrap().to_owned();
    let dry = format!(r#"{{"data":{{"userIds":["{GRACE}"],"dryRun":true}}}}"#);
    assert_eq!(
        request_to(&api, "POST", DELETE, &credentials, &dry).await.0,
        200
    );
    let wrong = [("x-velt-api-key", API_KEY), ("x-velt-auth-token", "wrong")];
    assert_eq!(request_to(&api, "POST", DELETE, &wrong, &user).await.0, 401);
    let bad = format!(r#"{{"data":{{"userIds":["{ADA}",""]}}}}"#);
    assert_eq!(
        request_to(&api, "POST", DELETE, &credentials, &bad).await.0,
        400
    );
    assert_eq!(
        request_to(&api, "POST", "/nowhere", &credentials, "{}")
            .await
            .0,
        404
    );
    // A queue that does not exist: the job cannot be sent, a 5xx.
    let missing_queue = format!("{}-missing", env.queue_url);
    let broken = Api::new(
        env.control.clone(),
        env.data.clone(),
        TaskQueue::new(env.sqs.clone(), &missing_queue),
        ApiConfig {
            tables: env.tables.clone(),
            task_queue_url: missing_queue.clone(),
            rate_limit_per_minute: 10_000,
            job_retention_days: 30,
            export_token_key: common::export_token_key(),
            webhook_queue_url: None,
        },
    )
    .with_metrics(metrics);
    let (status, _) = request_to(&broken, "POST", DELETE, &credentials, &user).await;
    assert!(status >= 500);

    let text = buffer.text();
    let lines = parse(&text);
    assert_eq!(sum_by(&lines, "JobsAccepted", "Function")["api"], 1.0);
    let by_class = sum_by(&lines, "ErrorResponses", "StatusClass");
    assert_eq!(by_class["4xx"], 3.0, "{by_class:?}");
    assert_eq!(by_class["5xx"], 1.0, "{by_class:?}");
    let by_word = sum_by(&lines, "ErrorResponses", "StatusWord");
    assert_eq!(by_word["UNAUTHENTICATED"], 1.0);
    assert_eq!(by_word["INVALID_ARGUMENT"], 1.0);
    assert_eq!(by_word["NOT_FOUND"], 1.0);
    assert_no_id(
        &text,
        &[
            ADA,
            GRACE,
            &job,
            API_KEY,
            env.tenant().as_str(),
            &component(ADA),
        ],
    );
}

#[tokio::test]
async fn the_sweep_reports_the_age_of_the_oldest_open_job_until_it_is_ended() {
    let env = TestEnv::new().await;
    let job = env
        .start_job(&format!(r#"{{"data":{{"userIds":["{ADA}"]}}}}"#))
        .await;
    // The tenant has no webhook: the sweep never sends to this queue, which does not exist.
    let webhooks = NotificationQueue::new(env.sqs.clone(), format!("{}-webhooks", env.queue_url));
    let sweeper = Sweeper::new(
        env.control.clone(),
        env.data.clone(),
        webhooks,
        Bounds::for_queue(MAX_RECEIVE_COUNT),
    );
    let (metrics, buffer) = capture(Function::Sweeper);

    // Ten minutes on, its tasks never run: open, and not yet stalled.
    let now = erasure::clock::now_ms();
    let report = sweeper.sweep(now + 10 * 60 * 1000).await.unwrap();
    assert!(
        (10 * 60 * 1000..11 * 60 * 1000).contains(&report.oldest_open_age_ms),
        "{report:?}"
    );
    metrics.oldest_open_job(report.oldest_open_age_ms);
    // Two days on, the sweep ends it: nothing is open any more.
    let report = sweeper.sweep(now + 48 * 60 * 60 * 1000).await.unwrap();
    assert_eq!(report.stalled, 1);
    assert_eq!(env.status(&job).await["jobStatus"], "failed");
    assert_eq!(report.oldest_open_age_ms, 0, "{report:?}");
    metrics.oldest_open_job(report.oldest_open_age_ms);

    let text = buffer.text();
    let lines = parse(&text);
    let ages: Vec<f64> = lines
        .iter()
        .map(|l| l["OldestOpenJobAge"].as_f64().unwrap())
        .collect();
    assert!((600.0..660.0).contains(&ages[0]), "seconds: {ages:?}");
    assert_eq!(ages[1], 0.0);
    assert_no_id(&text, &[ADA, &job]);
}
