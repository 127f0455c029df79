//! The `notifier` Lambda: consumes the webhook queue, delivers each settled job's event to its
//! tenant's webhook, and reports the messages to retry (already delayed by their backoff).

use aws_lambda_events::event::sqs::SqsEvent;
use erasure::control::ControlStore;
use erasure::webhook::config::NotifierConfig;
use erasure::webhook::delivery::Notifier;
use erasure::webhook::queue::NotificationQueue;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    erasure::telemetry::init();
    let config = NotifierConfig::from_env()?;
    let aws = erasure::aws::config(erasure::aws::notifier_timeouts()).await;
    // Clients are built once per cold start and lent to every invocation.
    let notifier = Notifier::new(
        ControlStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.control_table),
        NotificationQueue::new(aws_sdk_sqs::Client::new(&aws), &config.webhook_queue_url),
        config.policy,
        config.backoff,
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let notifier = &notifier;
        async move {
            Ok::<_, Error>(erasure::webhook::lambda::handle(notifier, event.payload).await)
        }
    }))
    .await
}
