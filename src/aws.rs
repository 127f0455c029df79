//! AWS SDK set-up for the binaries: the SDK config from the environment, with timeouts chosen so
//! that a stuck dependency ends in an error well inside the function's own timeout.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;

/// The api's timeouts. Its Lambda timeout is 10 s and a request makes a handful of calls one after
/// another. A DynamoDB or SQS call answers in milliseconds, so 2 s per attempt is a hundred times
/// its normal latency; 4 s per operation leaves room for a retry (the standard strategy waits up
/// to 1 s before the second attempt) and makes a stuck dependency answer 503 after about 4 s, well
/// inside the 10 s. Connecting inside a region takes milliseconds: 1 s is plenty.
pub fn api_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(4))
        .build()
}

/// The worker's timeouts. Its Lambda timeout is 120 s and tasks pause 15 s before the deadline
/// (`SAFETY_MARGIN` in `bin/worker.rs`), after which recording the pause takes two calls: 6 s
/// per operation lets both finish inside those 15 s. An attempt gets 3 s (a 100-item batch read
/// or a 25-item batch write takes tens of ms), so an operation has time for two or three attempts.
pub fn worker_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(6))
        .build()
}

/// The notifier's timeouts. Its Lambda timeout is 30 s; before a webhook's request (at most
/// 10 s) it makes one GetItem, and after a refusal one ChangeMessageVisibility: 4 s per
/// operation keeps both well inside.
pub fn notifier_timeouts() -> TimeoutConfig {
    api_timeouts()
}

/// The sweeper's timeouts. Its Lambda timeout is 60 s; a pass makes a few calls per open job,
/// one after another, each answered in milliseconds. A stuck call ends its job's visit (the next
/// pass retries it) after 6 s, as for the worker.
pub fn sweeper_timeouts() -> TimeoutConfig {
    worker_timeouts()
}

/// The operator CLI's timeouts: nothing waits on it but the operator, so only a stuck attempt
/// is cut (and retried), never a long seed.
pub fn cli_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(30))
        .build()
}

/// An SDK config from the environment (honours `AWS_ENDPOINT_URL_DYNAMODB`/`_SQS` locally) with
/// `timeouts`.
pub async fn config(timeouts: TimeoutConfig) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await
}
