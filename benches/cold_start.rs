//! `cargo bench --bench cold_start` (or `make bench`, which builds the release zips first): for
//! each Lambda function of `template.yaml`, the size of its `bootstrap.zip` and its init
//! duration — from the process's start to its first `GET /2018-06-01/runtime/invocation/next`
//! against a local Runtime API, the span Lambda reports as "Init Duration" — median and p99 of
//! `ERASURE_BENCH_COLD_STARTS` starts (default 20). Prints figures and asserts nothing about them.
//!
//! Reads the functions from `ERASURE_BENCH_LAMBDA_DIR` (default `target/lambda`), as
//! `cargo lambda build --release` leaves them: `<function>/bootstrap.zip` and
//! `<function>/bootstrap`. Each process gets only the environment the template gives its
//! function (local table names and queue URLs) and Lambda's own variables; every AWS endpoint
//! points at a loopback port that counts the connections made to it, so a function that called
//! AWS during init would show in the last column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use serde_yaml::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// An init slower than this is reported as a failure to start.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() {
    let dir = PathBuf::from(
        std::env::var("ERASURE_BENCH_LAMBDA_DIR").unwrap_or_else(|_| "target/lambda".into()),
    );
    let starts: usize = std::env::var("ERASURE_BENCH_COLD_STARTS")
        .ok()
        .map(|n| n.parse().expect("ERASURE_BENCH_COLD_STARTS is a number"))
        .unwrap_or(20);
    let functions = template_functions(Path::new("template.yaml"));

    let (arrivals, mut arrived) = mpsc::unbounded_channel();
    let runtime_api = serve_runtime_api(arrivals).await;
    let aws_connections = Arc::new(AtomicUsize::new(0));
    let aws = count_connections(aws_connections.clone()).await;

    println!(
        "\nCold start: release bootstrap per function, {starts} starts each \
         (init = process start to its first `next`)\n"
    );
    println!(
        "| function | bootstrap.zip | bootstrap | init p50 | init p99 | AWS connections during init |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, variables) in functions {
        let zip = file_size(&dir.join(&name).join("bootstrap.zip"));
        let binary = dir.join(&name).join("bootstrap");
        let environment = lambda_environment(&name, &variables, runtime_api, aws);
        aws_connections.store(0, Ordering::SeqCst);
        let mut samples = Vec::with_capacity(starts);
        for _ in 0..starts {
            samples.push(init_duration(&binary, &environment, &mut arrived).await);
        }
        samples.sort();
        println!(
            "| {name} | {:.2} MiB | {:.2} MiB | {:.1} ms | {:.1} ms | {} |",
            mib(zip),
            mib(file_size(&binary)),
            ms(quantile(&samples, 0.5)),
            ms(quantile(&samples, 0.99)),
            aws_connections.load(Ordering::SeqCst),
        );
    }
}

/// The functions built by cargo-lambda (`BuildProperties: Binary`) and the names of the
/// environment variables the template gives each.
fn template_functions(template: &Path) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(template).expect("template.yaml at the repository root");
    let template: Value = serde_yaml::from_str(&text).expect("template.yaml is YAML");
    let resources = template["Resources"]
        .as_mapping()
        .expect("template.yaml has Resources");
    resources
        .values()
        .filter(|resource| resource["Metadata"]["BuildMethod"] == "rust-cargolambda")
        .map(|resource| {
            let binary = resource["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .expect("each cargo-lambda function names its Binary");
            let variables = resource["Properties"]["Environment"]["Variables"]
                .as_mapping()
                .map(|vars| {
                    vars.keys()
                        .filter_map(|key| key.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            (binary.to_owned(), variables)
        })
        .collect()
}

/// What Lambda sets for a function (as deployed: JSON logs at INFO), the template's variables
/// with local values, and the AWS settings of a local run, every endpoint on `aws`.
fn lambda_environment(
    function: &str,
    variables: &[String],
    runtime_api: std::net::SocketAddr,
    aws: std::net::SocketAddr,
) -> Vec<(String, String)> {
    let endpoint = format!("http://{aws}");
    let queue = |name: &str| format!("{endpoint}/123456789012/{name}");
    let mut environment: Vec<(String, String)> = variables
        .iter()
        .map(|name| {
            let value = match name.as_str() {
                "DATA_TABLE" => "bench-data".to_owned(),
                "CONTROL_TABLE" => "bench-control".to_owned(),
                "TASK_QUEUE_URL" => queue("bench-tasks"),
                "WEBHOOK_QUEUE_URL" => queue("bench-webhooks"),
                "MAX_RECEIVE_COUNT" => "5".to_owned(),
                "EXPORT_TOKEN_KEY" => "bench-export-token-key-of-at-least-32-bytes".to_owned(),
                other => panic!("the cold-start bench has no local value for {other}"),
            };
            (name.clone(), value)
        })
        .collect();
    let fixed = [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_ENDPOINT_URL", endpoint.clone()),
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoint.clone()),
        ("AWS_ENDPOINT_URL_SQS", endpoint),
    ];
    environment.extend(fixed.map(|(k, v)| (k.to_owned(), v)));
    environment
}

/// Starts the function once, with nothing of this process's environment, and times it to its
/// first `next`; then kills it.
async fn init_duration(
    binary: &Path,
    environment: &[(String, String)],
    arrived: &mut mpsc::UnboundedReceiver<Instant>,
) -> Duration {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(environment.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let first_next = tokio::select! {
        at = tokio::time::timeout(INIT_TIMEOUT, arrived.recv()) => Some(at),
        _ = child.wait() => None,
    };
    let Some(first_next) = first_next else {
        let output = child
            .wait_with_output()
            .await
            .expect("the function's stderr");
        panic!(
            "{} exited during init ({}): {}",
            binary.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let at = first_next
        .unwrap_or_else(|_| panic!("{} did not ask for an invocation", binary.display()))
        .expect("the runtime API runs");
    child.kill().await.expect("the function's process ends");
    at.duration_since(started)
}

/// A Runtime API that only notes when a process asks for its first invocation, and never
/// gives it one.
async fn serve_runtime_api(arrivals: mpsc::UnboundedSender<Instant>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let address = listener.local_addr().expect("a bound port");
    let routes = Router::new().route(
        "/2018-06-01/runtime/invocation/next",
        get(move || {
            let _ = arrivals.send(Instant::now());
            std::future::pending::<()>()
        }),
    );
    tokio::spawn(async move { axum::serve(listener, routes).await });
    address
}

/// A loopback port standing for every AWS endpoint: it counts connections and closes them.
async fn count_connections(count: Arc<AtomicUsize>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let address = listener.local_addr().expect("a bound port");
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    address
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run `make bench`, which builds it)",
                path.display()
            )
        })
        .len()
}

/// The `q` quantile (nearest rank) of sorted values.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
