//! How a failed AWS call is classified, in one place: a transient fault that a later retry can
//! get past (throttling, timeouts, connection failures, 5xx), or a defect that no retry will fix
//! (access denied, a missing table or queue, a malformed request: misconfiguration or a bug).

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// What a failure means for whoever asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The dependency is down, slow or throttling: retry later (the api answers 503).
    Transient,
    /// Misconfiguration or a bug: retrying the same call fails the same way (the api answers 500
    /// and logs it for an alarm).
    Defect,
}

impl Fault {
    /// The class of an SDK error, after the SDK's own retries gave up on it.
    pub fn of<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Self {
        match error {
            SdkError::ConstructionFailure(_) => Fault::Defect,
            SdkError::TimeoutError(_) => Fault::Transient,
            // A "user" connector error is a request the client could not send as configured
            // (an invalid endpoint, say); io errors and timeouts are the network's.
            SdkError::DispatchFailure(failure) if failure.is_user() => Fault::Defect,
            SdkError::DispatchFailure(_) => Fault::Transient,
            SdkError::ResponseError(response) => {
                Self::of_response(response.raw().status().as_u16(), None)
            }
            SdkError::ServiceError(service) => {
                Self::of_response(service.raw().status().as_u16(), error.code())
            }
            // A variant added by a newer SDK: assume the dependency, not the code, is at fault.
            _ => Fault::Transient,
        }
    }

    /// The class of an answer by its HTTP status and AWS error code. The code lists are the
    /// ones the SDK's retry classifier uses, so "retry later" means the same here as there.
    fn of_response(status: u16, code: Option<&str>) -> Self {
        let retryable_code =
            code.is_some_and(|c| THROTTLING_ERRORS.contains(&c) || TRANSIENT_ERRORS.contains(&c));
        if retryable_code || status == 429 || status >= 500 {
            Fault::Transient
        } else {
            Fault::Defect
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::result::{ConnectorError, ServiceError};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    /// A service error as DynamoDB or SQS would send it.
    fn service_error(status: u16, code: &str) -> SdkError<ErrorMetadata, HttpResponse> {
        let response = HttpResponse::new(
            StatusCode::try_from(status).expect("a valid status"),
            SdkBody::empty(),
        );
        let metadata = ErrorMetadata::builder().code(code).build();
        SdkError::ServiceError(
            ServiceError::builder()
                .source(metadata)
                .raw(response)
                .build(),
        )
    }

    fn connector_error(error: ConnectorError) -> SdkError<ErrorMetadata, HttpResponse> {
        SdkError::dispatch_failure(error)
    }

    #[test]
    fn misconfiguration_and_bugs_are_defects() {
        for code in [
            "AccessDeniedException",
            "ResourceNotFoundException",
            "ValidationException",
            "UnrecognizedClientException",
            "AWS.SimpleQueueService.NonExistentQueue",
            "ConditionalCheckFailedException",
        ] {
            assert_eq!(
                Fault::of(&service_error(400, code)),
                Fault::Defect,
                "{code}"
            );
        }
        assert_eq!(
            Fault::of(&service_error(403, "AccessDenied")),
            Fault::Defect
        );
    }

    #[test]
    fn throttling_is_transient_whatever_its_status() {
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
            "RequestThrottled",
        ] {
            assert_eq!(
                Fault::of(&service_error(400, code)),
                Fault::Transient,
                "{code}"
            );
        }
        assert_eq!(
            Fault::of(&service_error(429, "SomethingNew")),
            Fault::Transient
        );
    }

    #[test]
    fn server_errors_are_transient() {
        assert_eq!(
            Fault::of(&service_error(500, "InternalServerError")),
            Fault::Transient
        );
        assert_eq!(
            Fault::of(&service_error(503, "ServiceUnavailable")),
            Fault::Transient
        );
    }

    #[test]
    fn timeouts_and_connection_failures_are_transient() {
        assert_eq!(
            Fault::of(&SdkError::<ErrorMetadata, HttpResponse>::timeout_error(
                "operation timed out"
            )),
            Fault::Transient
        );
        assert_eq!(
            Fault::of(&connector_error(ConnectorError::io(
                "connection refused".into()
            ))),
            Fault::Transient
        );
        assert_eq!(
            Fault::of(&connector_error(ConnectorError::timeout(
                "connect timed out".into()
            ))),
            Fault::Transient
        );
    }

    #[test]
    fn a_request_that_cannot_be_built_or_sent_as_configured_is_a_defect() {
        assert_eq!(
            Fault::of(
                &SdkError::<ErrorMetadata, HttpResponse>::construction_failure("missing field")
            ),
            Fault::Defect
        );
        assert_eq!(
            Fault::of(&connector_error(ConnectorError::user(
                "invalid endpoint".into()
            ))),
            Fault::Defect
        );
    }
}
