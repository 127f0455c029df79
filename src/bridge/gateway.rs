//! A local stand-in for API Gateway's HTTP API in front of the `api` function: every HTTP
//! request becomes a payload 2.0 event (its body base64-encoded, as API Gateway does for bytes
//! that are not text), the function runs under [`LocalFunction`], and its answer goes back as
//! HTTP. Unlike `cargo lambda watch`, it never answers for the function: a body or header that
//! is not UTF-8 reaches the api, which answers in the contract's envelope, as when deployed.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use base64::Engine;
use serde_json::{json, Map, Value};

use super::function::LocalFunction;

/// Serves `api` on `address` until the process ends.
pub async fn serve(address: SocketAddr, api: LocalFunction) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let routes = Router::new().fallback(forward).with_state(Arc::new(api));
    axum::serve(listener, routes).await
}

async fn forward(
    State(api): State<Arc<LocalFunction>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let event = event(&method, &uri, &headers, &body);
    match api.invoke(event.to_string().into()).await {
        Ok(answer) => response(&answer),
        Err(error) => {
            // What API Gateway answers when the integration fails: its own 500, no envelope.
            tracing::error!(
                error = &error as &dyn std::error::Error,
                "api invocation failed"
            );
            plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// The API Gateway HTTP API event (payload 2.0) for one request.
fn event(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Value {
    let mut joined: Map<String, Value> = Map::new();
    for (name, value) in headers {
        // API Gateway joins repeated headers with commas and passes bytes as Latin-1 text.
        let text: String = value.as_bytes().iter().map(|&b| char::from(b)).collect();
        match joined.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&text);
            }
            _ => {
                joined.insert(name.as_str().to_owned(), Value::String(text));
            }
        }
    }
    let (body, is_base64) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": uri.path(),
        "rawQueryString": uri.query().unwrap_or_default(),
        "headers": joined,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "stage": "$default",
            "requestId": format!("{:x}", rand::random::<u64>()),
            "http": {"method": method.as_str(), "path": uri.path(), "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": ""},
        },
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

/// The HTTP response for the function's answer (an API Gateway v2 response).
fn response(answer: &[u8]) -> Response {
    let Ok(answer) = serde_json::from_slice::<Value>(answer) else {
        return plain(StatusCode::BAD_GATEWAY, "the function's answer is not JSON");
    };
    let status = answer["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let text = answer["body"].as_str().unwrap_or_default();
    let body = if answer["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(headers) = answer["headers"].as_object() {
        for (name, value) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(name.as_str()),
                value.as_str().map(HeaderValue::from_str),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
}
