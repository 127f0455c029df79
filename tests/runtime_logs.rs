//! The real `lambda_runtime`, at level trace, against a stand-in for the Lambda Runtime API on
//! 127.0.0.1 that hands it one recorded API Gateway event: through a plain trace subscriber the
//! runtime logs the raw event, auth token included; through the subscriber the binaries install,
//! it does not, while the handler's own trace line is there.
//!
//! One test in its own binary: it sets the Lambda environment variables the runtime reads.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::Buffer;
use erasure::telemetry::LogSettings;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const EVENT: &str = include_str!("../events/api-delete.json");
const TOKEN: &str = "local-auth-token";

/// One HTTP/1.1 connection of the runtime: the first `/next` gets the event, later ones wait
/// forever; anything else (the handler's response) is acknowledged and reported on `done`.
async fn runtime_api_connection(
    mut stream: TcpStream,
    served: Arc<AtomicBool>,
    done: mpsc::UnboundedSender<()>,
) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await.unwrap() == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    if head
        .split_whitespace()
        .nth(1)
        .unwrap()
        .ends_with("/invocation/next")
    {
        if served.swap(true, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
             lambda-runtime-aws-request-id: request-1\r\n\
             lambda-runtime-deadline-ms: 4102444800000\r\n\
             lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:api\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{EVENT}",
            EVENT.len()
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
    } else {
        stream
            .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let _ = done.send(());
    }
}

/// Runs the runtime until it has answered the one event, with `subscriber` as the default;
/// returns what was logged.
async fn run_runtime_once(
    subscriber: Box<dyn tracing::Subscriber + Send + Sync>,
    buffer: Buffer,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    std::env::set_var(
        "AWS_LAMBDA_RUNTIME_API",
        listener.local_addr().unwrap().to_string(),
    );
    let (done, mut answered) = mpsc::unbounded_channel();
    let served = Arc::new(AtomicBool::new(false));
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(runtime_api_connection(stream, served.clone(), done.clone()));
        }
    });
    let guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::spawn(lambda_runtime::run(service_fn(
        |_event: LambdaEvent<Value>| async {
            tracing::trace!(target: "erasure::api", "handler ran");
            Ok::<_, Error>(serde_json::json!({"statusCode": 202}))
        },
    )));
    answered.recv().await.unwrap();
    runtime.abort();
    server.abort();
    drop(guard);
    buffer.text()
}

#[tokio::test]
async fn the_runtime_logs_the_raw_event_only_without_the_binaries_subscriber() {
    for (name, value) in [
        ("AWS_LAMBDA_FUNCTION_NAME", "api"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    ] {
        std::env::set_var(name, value);
    }
    assert!(EVENT.contains(TOKEN));

    let buffer = Buffer::default();
    let writer = buffer.clone();
    let plain = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(move || writer.clone())
        .finish();
    let logs = run_runtime_once(Box::new(plain), buffer).await;
    assert!(
        logs.contains("raw JSON event received from Lambda"),
        "{logs}"
    );
    assert!(logs.contains(TOKEN), "the control run shows the leak");

    let buffer = Buffer::default();
    let writer = buffer.clone();
    let settings = LogSettings {
        level: Some("trace".into()),
        ..LogSettings::default()
    };
    let ours = erasure::telemetry::subscriber(&settings, move || writer.clone());
    let logs = run_runtime_once(ours, buffer).await;
    assert!(logs.contains("handler ran"), "{logs}");
    assert!(!logs.contains("raw JSON event"), "{logs}");
    assert!(!logs.contains(TOKEN), "{logs}");
}
