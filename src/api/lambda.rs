//! The `api` Lambda's adapter: an API Gateway HTTP API event (payload 2.0) in, a plain
//! `http::Request` through `Api::handle`, API Gateway's response out. Whatever the event's body
//! and header bytes, the answer is the contract's envelope.
//!
//! The event is read into a type of our own rather than lambda_http's: its conversion panics on
//! a body flagged base64 that is not (and on a `host` or `x-forwarded-proto` header that does not
//! make a URL), and its event type refuses a header value HTTP cannot carry. Either way the
//! handler never runs and API Gateway answers its own 500, outside the contract.

use std::collections::HashMap;

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body;
use base64::Engine;
use http::header::{HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Response, Uri};
use serde::Deserialize;

use super::{Api, ApiError};
use crate::domain::request::InvalidRequest;

/// An API Gateway HTTP API event, as far as the api reads it. Every field may be missing or
/// null and every header is a plain string, so that no event fails to parse before the handler.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpApiEvent {
    #[serde(default)]
    raw_path: Option<String>,
    #[serde(default)]
    headers: Option<HashMap<String, String>>,
    #[serde(default)]
    request_context: Option<RequestContext>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct RequestContext {
    #[serde(default)]
    http: Option<HttpDescription>,
}

#[derive(Debug, Default, Deserialize)]
struct HttpDescription {
    #[serde(default)]
    method: Option<String>,
}

/// What makes an event unfit to become an HTTP request.
#[derive(Debug, thiserror::Error)]
enum EventError {
    #[error("body is flagged base64 but is not base64")]
    Base64(#[source] base64::DecodeError),
    #[error("path is not a URI path")]
    Path(#[source] http::uri::InvalidUri),
    #[error("method is not an HTTP method")]
    Method(#[source] http::method::InvalidMethod),
}

impl From<EventError> for ApiError {
    fn from(error: EventError) -> Self {
        match error {
            EventError::Base64(_) => ApiError::InvalidArgument(InvalidRequest(
                "body must be JSON; it is flagged base64 but does not decode".into(),
            )),
            // No route has such a path.
            EventError::Path(_) => ApiError::NotFound("no such route"),
            EventError::Method(_) => ApiError::MethodNotAllowed,
        }
    }
}

/// Answers one API Gateway event: the contract's envelope whatever the event holds.
pub async fn answer(api: &Api, event: HttpApiEvent) -> ApiGatewayV2httpResponse {
    let response = match into_request(event) {
        Ok(request) => api.handle(request).await,
        Err(error) => {
            tracing::info!(
                error = &error as &dyn std::error::Error,
                "event is not an HTTP request"
            );
            api.refuse(&error.into())
        }
    };
    into_gateway_response(response)
}

fn into_request(event: HttpApiEvent) -> Result<Request<Vec<u8>>, EventError> {
    // API Gateway base64-encodes bodies it does not take for text; either way the bytes are
    // what the caller sent, and the parser decides whether they are JSON.
    let body = match event.body {
        None => Vec::new(),
        Some(body) if event.is_base64_encoded.unwrap_or(false) => {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(EventError::Base64)?
        }
        Some(body) => body.into_bytes(),
    };
    let path = event.raw_path.unwrap_or_else(|| "/".to_owned());
    let path = PathAndQuery::try_from(path.as_str()).map_err(EventError::Path)?;
    let method = event
        .request_context
        .and_then(|context| context.http)
        .and_then(|http| http.method)
        .unwrap_or_default();
    let method = Method::from_bytes(method.as_bytes()).map_err(EventError::Method)?;
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = Uri::from(path);
    *request.headers_mut() = headers(event.headers.unwrap_or_default());
    Ok(request)
}

/// The event's headers as HTTP headers. A character HTTP cannot carry (a control character)
/// becomes U+FFFD: the header stays present but unreadable, so an `Idempotency-Key` holding one
/// is refused rather than ignored, and a credential holding one never matches. A name HTTP
/// cannot carry is not one the api reads, and is left out.
fn headers(raw: HashMap<String, String>) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(raw.len());
    for (name, value) in raw {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        let value = value.replace(|c: char| c.is_control() && c != '\t', "\u{FFFD}");
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(name, value);
        }
    }
    headers
}

fn into_gateway_response(response: Response<String>) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut gateway = ApiGatewayV2httpResponse::default();
    gateway.status_code = i64::from(parts.status.as_u16());
    gateway.headers = parts.headers;
    gateway.body = Some(Body::Text(body));
    gateway.is_base64_encoded = false;
    gateway
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> HttpApiEvent {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn an_event_without_a_method_is_refused_not_a_panic() {
        let error = into_request(HttpApiEvent::default()).unwrap_err();
        assert!(matches!(error, EventError::Method(_)), "{error:?}");
    }

    #[test]
    fn a_control_character_leaves_its_header_present_but_unreadable() {
        let request = into_request(event(serde_json::json!({
            "rawPath": "/v2/users/data/delete",
            "requestContext": {"http": {"method": "POST"}},
            "headers": {"Idempotency-Key": "key\u{1}1", "bad name": "x", "x-tab": "a\tb"},
        })))
        .unwrap();
        let key = &request.headers()["idempotency-key"];
        assert!(key.to_str().is_err(), "{key:?}");
        assert_eq!(key.as_bytes(), "key\u{FFFD}1".as_bytes());
        assert_eq!(request.headers()["x-tab"], "a\tb");
        assert_eq!(request.headers().len(), 2, "the unnamed header is left out");
    }

    #[test]
    fn a_path_that_is_not_a_uri_path_is_an_unknown_route() {
        let error = into_request(event(serde_json::json!({
            "rawPath": "/v2/users/data/delete with space",
            "requestContext": {"http": {"method": "POST"}},
        })))
        .unwrap_err();
        assert!(matches!(error, EventError::Path(_)), "{error:?}");
        assert_eq!(ApiError::from(error).status(), http::StatusCode::NOT_FOUND);
    }

    #[test]
    fn the_response_is_text_with_its_status_and_headers() {
        let response = Response::builder()
            .status(418)
            .header("content-type", "application/json")
            .body("{}".to_owned())
            .unwrap();
        let gateway = into_gateway_response(response);
        assert_eq!(gateway.status_code, 418);
        assert_eq!(gateway.headers["content-type"], "application/json");
        assert_eq!(gateway.body, Some(Body::Text("{}".into())));
        assert!(!gateway.is_base64_encoded);
    }
}
