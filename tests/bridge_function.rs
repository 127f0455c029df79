//! The bridge's local Lambda against real processes that behave as functions can: answer,
//! outlive their timeout, or die mid-invocation. Each is a small shell script speaking the
//! Lambda Runtime API with curl, so the test needs no build of its own.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use erasure::bridge::function::{FunctionConfig, InvokeError, LocalFunction};

/// A function whose process runs `body` after taking one invocation: `$ID` is the request id,
/// `$DEADLINE` the deadline it was given, `$API` the runtime API.
fn function(name: &str, body: &str, timeout: Duration) -> FunctionConfig {
    let dir = std::env::temp_dir().join(format!("erasure-fn-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("bootstrap");
    std::fs::write(
        &script,
        format!(
            r#"#!/usr/bin/env bash
set -u
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  headers=$(mktemp)
  curl -s -D "$headers" -o /dev/null "$API/invocation/next" || exit 3
  ID=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | cut -d' ' -f2 | tr -d '\r')
  DEADLINE=$(grep -i '^lambda-runtime-deadline-ms:' "$headers" | cut -d' ' -f2 | tr -d '\r')
  {body}
done
"#
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    FunctionConfig {
        name: name.into(),
        binary: script,
        env: Vec::new(),
        timeout,
        memory_mb: 128,
    }
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn an_invocation_gets_the_functions_timeout_as_its_deadline_and_its_answer_back() {
    let echo = function(
        "echo",
        r#"curl -s -X POST -d "{\"deadline\":$DEADLINE}" "$API/invocation/$ID/response" >/dev/null"#,
        Duration::from_secs(30),
    );
    let local = LocalFunction::start(echo).await.unwrap();
    for _ in 0..2 {
        let before = epoch_ms();
        let answer = local.invoke("{}".into()).await.unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        let deadline = answer["deadline"].as_u64().unwrap();
        assert!(deadline >= before + 30_000, "{deadline} vs {before}");
        assert!(deadline <= epoch_ms() + 30_000);
    }
    assert_eq!(local.crashes(), 0);
}

#[tokio::test]
async fn an_invocation_that_outlives_its_timeout_fails_and_its_process_is_replaced() {
    let stuck = function("stuck", "sleep 600", Duration::from_secs(2));
    let local = LocalFunction::start(stuck).await.unwrap();
    let first = loop {
        if let Some(pid) = local.pid() {
            break pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let error = local.invoke("{}".into()).await.unwrap_err();
    assert!(matches!(error, InvokeError::Timeout(_)), "{error}");
    let replaced = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match local.pid() {
                Some(pid) if pid != first => return pid,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .expect("a new process starts");
    assert_ne!(replaced, first);
    let error = local.invoke("{}".into()).await.unwrap_err();
    assert!(matches!(error, InvokeError::Timeout(_)), "{error}");
}

#[tokio::test]
async fn an_invocation_whose_process_dies_fails_at_once_and_the_next_one_is_served() {
    // Dies on its first invocation, answers every later one (a marker file remembers).
    let marker = std::env::temp_dir().join(format!("erasure-fn-{}-died", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let flaky = function(
        "flaky",
        &format!(
            r#"if [ ! -e {m} ]; then touch {m}; kill -9 $$; fi
  curl -s -X POST -d '"ok"' "$API/invocation/$ID/response" >/dev/null"#,
            m = marker.display()
        ),
        Duration::from_secs(60),
    );
    let local = LocalFunction::start(flaky).await.unwrap();
    let error = local.invoke("{}".into()).await.unwrap_err();
    assert!(matches!(error, InvokeError::Crashed), "{error}");
    assert_eq!(local.crashes(), 1);
    let answer = local.invoke("{}".into()).await.unwrap();
    assert_eq!(&answer[..], b"\"ok\"");
}
