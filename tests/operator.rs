//! The operator's commands, run as the operator runs them (the `erasure` binary against the
//! emulators): a job whose tasks all died ends `failed`, `erasure status` says so, `erasure
//! redrive` moves its dead letters back, and the job then completes.

mod common;

use std::process::Command;

use common::TestEnv;

const WORLD: &str = include_str!("fixtures/contract-example.json");

/// Runs the `erasure` binary with the test's tables and queues; returns its standard output.
fn erasure(env: &TestEnv, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_erasure"))
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
        .env("TASK_QUEUE_URL", &env.queue_url)
        .env("TASK_DEAD_LETTER_QUEUE_URL", &env.dlq_url)
        .output()
        .expect("the erasure binary runs");
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
