//! The API's errors and the one place that maps each to its HTTP status and envelope.

use http::StatusCode;
use serde_json::json;

use crate::domain::request::InvalidRequest;
use crate::dynamo::DynamoError;
use crate::fault::Fault;
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
        ApiError::of_fault(error.fault(), error.into())
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
        ApiError::of_fault(error.fault(), error.into())
    }
}

impl ApiError {
    /// The one mapping from a dependency's fault to the answer: a transient fault is 503 (retry
    /// later), a defect (misconfiguration or a bug) is 500.
    fn of_fault(fault: Fault, error: Box<dyn std::error::Error + Send + Sync>) -> Self {
        match fault {
            Fault::Transient => ApiError::Unavailable(error),
            Fault::Defect => ApiError::Internal(error),
        }
    }

    /// Logs a failed request. A 5xx carries its whole cause chain in `error_chain` and a
    /// `fault` an alarm can match: `defect` (misconfiguration or a bug; page someone) or
    /// `transient` (a dependency down or throttling; the caller retries).
    pub fn log(&self) {
        match self {
            ApiError::Internal(_) => tracing::error!(
                fault = "defect",
                error_chain = %chain(self),
                "request failed: misconfiguration or bug"
            ),
            ApiError::Unavailable(_) => tracing::error!(
                fault = "transient",
                error_chain = %chain(self),
                "request failed: dependency unavailable"
            ),
            _ => tracing::info!(status = self.status().as_u16(), "request refused"),
        }
    }

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

    /// The envelope's `status`: one of a fixed few words.
    pub(crate) fn status_word(&self) -> &'static str {
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

/// An error and every `source()` below it, outermost first: the log's JSON formatter would
/// record only the outermost.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
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

    #[test]
    fn the_chain_names_every_cause_outermost_first() {
        let error = ApiError::Internal(Box::new(DynamoError::Throttled {
            operation: "BatchWriteItem",
        }));
        assert_eq!(
            chain(&error),
            "internal error: DynamoDB BatchWriteItem left items unprocessed after 10 rounds"
        );
    }

    #[test]
    fn throttling_past_the_retries_is_unavailable_and_a_bad_item_is_internal() {
        let throttled = ApiError::from(DynamoError::Throttled {
            operation: "BatchGetItem",
        });
        assert_eq!(throttled.status(), StatusCode::SERVICE_UNAVAILABLE);
        let shape = <serde_dynamo::Error as serde::de::Error>::custom("no pk");
        let shape = ApiError::from(DynamoError::Shape(shape));
        assert_eq!(shape.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let refused = ApiError::from(QueueError::Refused {
            count: 1,
            sender_fault: false,
        });
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        let invalid = ApiError::from(QueueError::Refused {
            count: 1,
            sender_fault: true,
        });
        assert_eq!(invalid.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
