//! The `sweeper` Lambda: run on a schedule, ends the jobs that would otherwise stay open for ever
//! and announces settlements whose announcement was lost (`erasure::sweep`).

use erasure::config::SweeperConfig;
use erasure::control::ControlStore;
use erasure::metrics::{Function, Metrics};
use erasure::store::DataStore;
use erasure::sweep::{Bounds, Sweeper};
use erasure::webhook::queue::NotificationQueue;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    erasure::telemetry::init();
    let config = SweeperConfig::from_env()?;
    let aws = erasure::aws::config(erasure::aws::sweeper_timeouts()).await;
    // Clients are built once per cold start and lent to every invocation.
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let sweeper = Sweeper::new(
        ControlStore::new(dynamodb.clone(), &config.control_table),
        DataStore::new(dynamodb, &config.data_table),
        NotificationQueue::new(aws_sdk_sqs::Client::new(&aws), &config.webhook_queue_url),
        Bounds::for_queue(config.max_receive_count),
    );
    let metrics = Metrics::stdout(Function::Sweeper);
    // The scheduled event carries nothing the sweep needs.
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| {
        let (sweeper, metrics) = (&sweeper, &metrics);
        async move {
            let report = sweeper.sweep(erasure::clock::now_ms()).await?;
            metrics.oldest_open_job(report.oldest_open_age_ms);
            Ok::<_, Error>(serde_json::json!({
                "open": report.open,
                "stalled": report.stalled,
                "unfinished": report.unfinished,
                "tombstonesLifted": report.tombstones_lifted,
                "announced": report.announced,
                "closed": report.closed,
                "oldestOpenAgeMs": report.oldest_open_age_ms,
            }))
        }
    }))
    .await
}
