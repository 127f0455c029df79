//! The `api` Lambda: the HTTP endpoints behind API Gateway.

use erasure::api::lambda::{answer, HttpApiEvent};
use erasure::api::Api;
use erasure::config::ApiConfig;
use erasure::control::ControlStore;
use erasure::queue::TaskQueue;
use erasure::store::DataStore;
use erasure::webhook::queue::NotificationQueue;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    erasure::telemetry::init();
    let config = ApiConfig::from_env()?;
    let aws = erasure::aws::config(erasure::aws::api_timeouts()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let webhook_queue_url = config.webhook_queue_url.clone();
    // Clients are built once per cold start and lent to every invocation.
    let mut api = Api::new(
        ControlStore::new(dynamodb.clone(), &config.tables.control),
        DataStore::new(dynamodb, &config.tables.data),
        TaskQueue::new(sqs.clone(), &config.task_queue_url),
        config,
    );
    if let Some(url) = webhook_queue_url {
        api = api.with_notifications(NotificationQueue::new(sqs, url));
    }
    lambda_runtime::run(service_fn(|event: LambdaEvent<HttpApiEvent>| {
        let api = &api;
        async move { Ok::<_, Error>(answer(api, event.payload).await) }
    }))
    .await
}
