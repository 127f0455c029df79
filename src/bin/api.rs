//! The `api` Lambda: the HTTP endpoints behind API Gateway.

use erasure::api::Api;
use erasure::config::ApiConfig;
use erasure::control::ControlStore;
use erasure::queue::TaskQueue;
use erasure::store::DataStore;
use lambda_http::{service_fn, Body, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    erasure::telemetry::init(true);
    let config = ApiConfig::from_env()?;
    let aws = erasure::aws::config(erasure::aws::api_timeouts()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    // Clients are built once per cold start and lent to every invocation.
    let api = Api::new(
        ControlStore::new(dynamodb.clone(), &config.tables.control),
        DataStore::new(dynamodb, &config.tables.data),
        TaskQueue::new(aws_sdk_sqs::Client::new(&aws), &config.task_queue_url),
        config,
    );
    lambda_http::run(service_fn(|request: Request| {
        let api = &api;
        async move {
            let (parts, body) = request.into_parts();
            // API Gateway's base64 bodies arrive already decoded as `Body::Binary`.
            let body = match body {
                Body::Empty => Vec::new(),
                Body::Text(text) => text.into_bytes(),
                Body::Binary(bytes) => bytes,
                _ => Vec::new(),
            };
            let response = api.handle(http::Request::from_parts(parts, body)).await;
            Ok::<_, Error>(response.map(Body::Text))
        }
    }))
    .await
}
