//! The operator's commands, run as the operator runs them (the `erasure` binary against the
//! emulators): a job whose tasks all died ends `failed`, `erasure status` says so, `erasure
//! redrive` moves its dead letters back, and the job then completes; `erasure jobs` lists a
//! tenant's jobs from the sparse index.

mod common;

use std::process::{Command, Output};

use common::{TestEnv, API_KEY};

const WORLD: &str = include_str!("fixtures/contract-example.json");
// Ids that no hash, job id or timestamp could contain by chance.
const ADA: &str = "ada-lovelace-0001";
const GRACE: &str = "grace-hopper-0002";

/// Runs the `erasure` binary with the test's tables and queues.
fn run(env: &TestEnv, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_erasure"))
        .args(args)
        .env(
            "AWS_ENDPOINT_URL_DYNAMODB",
            common::emulators::dynamodb_endpoint(),
        )
        .env("AWS_ENDPOINT_URL_SQS", common::emulators::sqs_endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("CONTROL_TABLE", &env.tables.control)
        .env("DATA_TABLE", &env.tables.data)
        .env("TASK_QUEUE_URL", &env.queue_url)
        .env("TASK_DEAD_LETTER_QUEUE_URL", &env.dlq_url)
        .env("RUST_LOG", "info")
        .output()
        .expect("the erasure binary runs")
}

/// Runs the `erasure` binary, which must succeed; returns its standard output.
fn erasure(env: &TestEnv, args: &[&str]) -> String {
    let output = run(env, args);
    assert!(
        output.status.success(),
        "erasure {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn a_job_failed_by_dead_letters_completes_after_erasure_redrive() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), WORLD).await;
    let job_id = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    // Every attempt fails until the message moves to the dead-letter queue (SQS moves it on
    // the receive after the last allowed one).
    let broken = env.broken_worker();
    for _ in 0..30 {
        if env.queue_depth(&env.dlq_url).await == 1 {
            break;
        }
        env.deliver_once(&broken).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let status = erasure(&env, &["status", &job_id]);
    assert!(status.starts_with("failed: 0/9 tasks done"), "{status}");
    assert!(status.ends_with("failed: t0.access t0.profile t0.contacts t0.mentions t0.comments t0.reactions t0.notifications t0.recordings t0.views\n"), "{status}");
    assert_eq!(env.queue_depth(&env.dlq_url).await, 1);

    let moved = erasure(&env, &["redrive"]);
    assert_eq!(moved.trim(), "moved 1 message(s) back to the task queue");
    assert_eq!(env.queue_depth(&env.dlq_url).await, 0);
    env.drain(&env.worker).await;

    let watched = erasure(&env, &["status", &job_id, "--watch"]);
    assert!(watched.is_empty(), "the bar draws on stderr: {watched}");
    let status = erasure(&env, &["status", &job_id]);
    assert!(status.starts_with("completed: 9/9 tasks done"), "{status}");
    assert_eq!(env.status(&job_id).await["isDeleteCompleted"], true);
}

/// The world with its two users renamed to ids nothing else contains.
fn world() -> String {
    WORLD.replace("u1", ADA).replace("u2", GRACE)
}

#[tokio::test]
async fn erasure_jobs_lists_a_tenants_jobs_newest_first_filtered_by_status_and_age() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), &world()).await;
    let done = env
        .start_job(&format!(r#"{{"data":{{"userIds":["{ADA}"]}}}}"#))
        .await;
    env.drain(&env.worker).await;
    let queued = env
        .start_job(&format!(r#"{{"data":{{"userIds":["{GRACE}"]}}}}"#))
        .await;
    // Another tenant's job is not listed.
    env.add_tenant("other-key", "other-token").await;

    let listed = erasure(&env, &["jobs", "--tenant", API_KEY]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with(&format!("{queued}  queued")),
        "{listed}"
    );
    assert!(lines[0].contains("9/9 tasks left"), "{listed}");
    assert!(lines[0].contains("completed -"), "{listed}");
    assert!(
        lines[1].starts_with(&format!("{done}  completed")),
        "{listed}"
    );
    assert!(lines[1].contains("0/9 tasks left"), "{listed}");
    assert!(lines[1].contains("created 20"), "RFC 3339 times: {listed}");

    let completed = erasure(
        &env,
        &["jobs", "--tenant", API_KEY, "--status", "completed"],
    );
    assert_eq!(completed.lines().count(), 1, "{completed}");
    assert!(completed.starts_with(&done));
    let partial = erasure(&env, &["jobs", "--tenant", API_KEY, "--status", "partial"]);
    assert!(partial.is_empty(), "{partial}");
    let recent = erasure(&env, &["jobs", "--tenant", API_KEY, "--since", "1h"]);
    assert_eq!(recent.lines().count(), 2, "{recent}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let none = erasure(&env, &["jobs", "--tenant", API_KEY, "--since", "1s"]);
    assert!(none.is_empty(), "{none}");
    assert!(erasure(&env, &["jobs", "--tenant", "other-key"]).is_empty());
    let refused = run(&env, &["jobs", "--tenant", API_KEY, "--since", "7 days"]);
    assert!(!refused.status.success());

    // Sparse: the index holds the two jobs and nothing else of the control table (tenants,
    // open-jobs entries, idempotency and rate records, audit records).
    let indexed = env
        .dynamodb
        .scan()
        .table_name(&env.tables.control)
        .index_name(erasure::infra::JOBS_BY_TENANT.name)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let mut keys: Vec<String> = indexed
        .iter()
        .map(|item| item["pk"].as_s().unwrap().clone())
        .collect();
    keys.sort();
    let mut expected = vec![format!("JOB#{done}"), format!("JOB#{queued}")];
    expected.sort();
    assert_eq!(keys, expected);
}
