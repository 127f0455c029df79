//! The API's errors and the one place that maps each to its HTTP status and envelope.

use http::StatusCode;
use serde_json::json;

use crate::domain::request::InvalidRequest;
use crate::dynamo::DynamoError;
use crate::queue::QueueError;
use crate::store::StoreError;

/// Every way a request can fail, as the contract's table lists them.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(#[from] InvalidRequest),
    #[error("missing or invalid x-velt-api-key / x-velt-auth-token")]
    Unauthenticated,
    #[error("{0}")]
    NotFound(&'static str),
    #[error("method not allowed: use POST")]
    MethodNotAllowed,
    #[error("body must be at most 64 KiB")]
    PayloadTooLarge,
    #[error("Idempotency-Key was used with a different body")]
    IdempotencyMismatch,
    #[error("rate limit exceeded: retry in a minute")]
    RateLimited,
    #[error("a dependency is unavailable: retry later")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<DynamoError> for ApiError {
    fn from(error: DynamoError) -> Self {
        match error {
            DynamoError::Shape(_) => ApiError::Internal(error.into()),
            _ => ApiError::Unavailable(error.into()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Dynamo(inner) => inner.into(),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(error: QueueError) -> Self {
        match error {
            QueueError::Encode(_) => ApiError::Internal(error.into()),
            _ => ApiError::Unavailable(error.into()),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn status_word(&self) -> &'static str {
        match self {
            ApiError::InvalidArgument(_)
            | ApiError::MethodNotAllowed
            | ApiError::PayloadTooLarge
            | ApiError::IdempotencyMismatch => "INVALID_ARGUMENT",
            ApiError::Unauthenticated => "UNAUTHENTICATED",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::RateLimited => "RESOURCE_EXHAUSTED",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    /// The contract's error envelope. Messages of 5xx errors never carry internals; the cause
    /// goes to the log, chained.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.to_string(), "status": self.status_word()}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_say_nothing_of_their_cause() {
        let error = ApiError::Internal("table erasure-data exploded".into());
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            error.body(),
            json!({"error": {"message": "internal error", "status": "INTERNAL"}})
        );
    }
}
