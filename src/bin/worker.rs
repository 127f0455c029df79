//! The `worker` Lambda: consumes the task queue and reports partial batch failures.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use erasure::config::WorkerConfig;
use erasure::control::ControlStore;
use erasure::queue::TaskQueue;
use erasure::store::tuning::Tuning;
use erasure::store::DataStore;
use erasure::webhook::queue::NotificationQueue;
use erasure::worker::lambda;
use erasure::worker::Worker;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    erasure::telemetry::init();
    let config = WorkerConfig::from_env()?;
    let aws = erasure::aws::config(erasure::aws::worker_timeouts()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    // Clients are built once per cold start and lent to every invocation.
    let mut worker = Worker::new(
        ControlStore::new(dynamodb.clone(), &config.tables.control),
        DataStore::new(dynamodb, &config.tables.data).with_tuning(Tuning::from_env()?),
        TaskQueue::new(sqs.clone(), &config.task_queue_url),
        config.max_receive_count,
    );
    if let Some(url) = &config.webhook_queue_url {
        worker = worker.with_notifications(NotificationQueue::new(sqs, url));
    }
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let worker = &worker;
        async move {
            let deadline = pause_point(event.context.deadline);
            Ok::<_, Error>(lambda::handle(worker, event.payload, deadline).await)
        }
    }))
    .await
}

/// How long before the invocation's deadline tasks stop starting new pages: a page takes well
/// under a second, and recording the pause takes two calls.
const SAFETY_MARGIN: Duration = Duration::from_secs(15);

/// When tasks should pause, from the invocation's deadline (epoch milliseconds).
fn pause_point(deadline_ms: u64) -> Instant {
    let now_ms = erasure::clock::now_ms().max(0) as u64;
    if deadline_ms <= now_ms {
        // Lambda never starts an invocation past its deadline; `cargo lambda watch` sends a
        // fixed one in 1970. Tasks still finish (each pass does a page of work and continues),
        // only in many small steps: `erasure bridge` gives the worker real deadlines.
        tracing::warn!(
            deadline_ms,
            "the invocation's deadline has already passed; tasks will go page by page"
        );
    }
    let remaining = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Instant::now() + remaining.saturating_sub(SAFETY_MARGIN)
}
