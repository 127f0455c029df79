//! Logging set-up shared by the binaries. Lambda steers it as it steers the runtime's own
//! subscriber (`AWS_LAMBDA_LOG_FORMAT`, `AWS_LAMBDA_LOG_LEVEL`, then `RUST_LOG`); whatever level
//! is asked, the dependencies that log payloads are held at `info`. Ids and secrets are never
//! logged raw: code logs `keys::fingerprint` of them.

use std::str::FromStr;

use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Targets whose debug and trace lines carry payloads, held at `info` whatever level is asked
/// (a target covers its modules, and any target it is a prefix of).
pub const PAYLOAD_TARGETS: [&str; 4] = [
    // `layers::api_response`, trace: "raw JSON event received from Lambda", the whole event:
    // API Gateway requests with their `x-velt-auth-token`, SQS records with raw user ids.
    // `requests`, trace: the metadata prelude (status, headers) of a streamed response.
    "lambda_runtime",
    // The Runtime API client under it; held with it in case it starts logging what it carries.
    "lambda_runtime_api_client",
    // `client::orchestrator`, trace: every DynamoDB and SQS request and response with its body
    // (items, task messages: raw user ids, emails, names) and the parsed output; debug: errors
    // with the raw response.
    "aws_smithy_runtime",
    // `http_request::sign`, trace: the request being signed, body included.
    "aws_sigv4",
];

/// The level the runtime's subscriber takes when nothing says otherwise.
const DEFAULT_LEVEL: &str = "INFO";

/// The logging variables, read once at cold start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// `AWS_LAMBDA_LOG_FORMAT` (the function's log format): `JSON` (any case) logs JSON lines,
    /// anything else text.
    pub format: Option<String>,
    /// `AWS_LAMBDA_LOG_LEVEL` (the function's application log level).
    pub level: Option<String>,
    /// `RUST_LOG`: `EnvFilter` directives.
    pub rust_log: Option<String>,
}

impl LogSettings {
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok();
        Self {
            format: var("AWS_LAMBDA_LOG_FORMAT"),
            level: var("AWS_LAMBDA_LOG_LEVEL"),
            rust_log: var("RUST_LOG"),
        }
    }

    /// The filter exactly as `lambda_runtime::tracing::init_default_subscriber` builds it:
    /// `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, read as one level gives the default directive;
    /// `RUST_LOG`'s directives, when it has any, replace that default.
    fn filter(&self) -> EnvFilter {
        let level = self.level.as_deref().or(self.rust_log.as_deref());
        let level =
            LevelFilter::from_str(level.unwrap_or(DEFAULT_LEVEL)).unwrap_or(LevelFilter::INFO);
        EnvFilter::builder()
            .with_default_directive(level.into())
            .parse_lossy(self.rust_log.as_deref().unwrap_or_default())
    }

    fn json(&self) -> bool {
        self.format
            .as_deref()
            .is_some_and(|format| format.eq_ignore_ascii_case("json"))
    }
}

/// Lowers `PAYLOAD_TARGETS` to `info` at most. A filter of its own beside the level's filter,
/// since a directive in that one would also raise them when less than `info` is asked.
fn payload_caps() -> Targets {
    PAYLOAD_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |caps, target| caps.with_target(*target, LevelFilter::INFO),
    )
}

/// The subscriber the binaries install, writing to `writer`: the runtime's format (no time,
/// which CloudWatch adds; no target) but without colour codes, which CloudWatch shows as text;
/// the runtime's filter; and the payload caps.
pub fn subscriber<W>(settings: &LogSettings, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(false)
        .without_time()
        .with_env_filter(settings.filter())
        .with_writer(writer);
    if settings.json() {
        Box::new(builder.json().finish().with(payload_caps()))
    } else {
        Box::new(builder.finish().with(payload_caps()))
    }
}

/// Starts logging for a Lambda function: to stdout, as the runtime's subscriber does.
pub fn init() {
    subscriber(&LogSettings::from_env(), std::io::stdout).init();
}

/// Starts logging for the operator CLI: to stderr, so that stdout carries only its answers.
pub fn init_cli() {
    subscriber(&LogSettings::from_env(), std::io::stderr).init();
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing::Level;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The log lines `settings` let through while `emit` runs.
    fn logged(settings: LogSettings, emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        tracing::subscriber::with_default(subscriber(&settings, move || writer.clone()), emit);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn level(level: &str) -> LogSettings {
        LogSettings {
            level: Some(level.into()),
            ..LogSettings::default()
        }
    }

    /// One line on each payload target, as the dependencies log them, and the crate's own.
    fn emit_payload_lines() {
        tracing::trace!(target: "lambda_runtime::layers::api_response", body = "x-velt-auth-token: s3cret", "raw JSON event received from Lambda");
        tracing::trace!(target: "lambda_runtime::requests", metadata_prelude = "s3cret");
        tracing::debug!(target: "lambda_runtime_api_client", "s3cret");
        tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", request = "s3cret", "transmitting request");
        tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", err = "s3cret", "encountered orchestrator error; continuing");
        tracing::trace!(target: "aws_sigv4::http_request::sign", request = "s3cret", "signing request");
        tracing::trace!(target: "erasure::worker", "own trace line");
        tracing::debug!(target: "erasure::worker", "own debug line");
    }

    #[test]
    fn at_trace_the_payload_lines_are_held_back_and_the_crates_own_are_not() {
        for format in [None, Some("JSON".to_owned())] {
            let settings = LogSettings {
                format,
                ..level("trace")
            };
            let logs = logged(settings, emit_payload_lines);
            assert!(logs.contains("own trace line"), "{logs}");
            assert!(logs.contains("own debug line"), "{logs}");
            assert!(!logs.contains("s3cret"), "{logs}");
            assert!(!logs.contains("raw JSON event"), "{logs}");
        }
    }

    #[test]
    fn the_same_lines_pass_a_plain_trace_filter() {
        // The control for the test above: without the caps, these lines are logged.
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let plain = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("trace"))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(plain, emit_payload_lines);
        let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.matches("s3cret").count(), 6, "{logs}");
    }

    #[test]
    fn capped_targets_still_log_at_info_and_are_never_raised() {
        let emit = || {
            tracing::warn!(target: "lambda_runtime::layers::api_response", "runtime warning");
            tracing::info!(target: "aws_smithy_runtime::client::orchestrator", "sdk info");
        };
        let logs = logged(level("trace"), emit);
        assert!(
            logs.contains("runtime warning") && logs.contains("sdk info"),
            "{logs}"
        );
        let logs = logged(level("warn"), emit);
        assert!(logs.contains("runtime warning"), "{logs}");
        assert!(
            !logs.contains("sdk info"),
            "a cap at info must not raise a warn filter"
        );
    }

    #[test]
    fn levels_are_read_as_the_runtime_reads_them() {
        let own_debug = || tracing::debug!(target: "erasure::worker", "own debug line");
        let debug_logged = |settings| logged(settings, own_debug).contains("own debug line");
        assert!(!debug_logged(LogSettings::default()), "INFO by default");
        assert!(debug_logged(level("DEBUG")));
        assert!(
            !debug_logged(level("no such level")),
            "an unknown level is INFO"
        );
        let rust_log = |directives: &str| LogSettings {
            rust_log: Some(directives.into()),
            ..LogSettings::default()
        };
        assert!(debug_logged(rust_log("debug")));
        assert!(debug_logged(rust_log("info,erasure=debug")));
        // As in the runtime, RUST_LOG's directives win over AWS_LAMBDA_LOG_LEVEL's default.
        assert!(!debug_logged(LogSettings {
            rust_log: Some("info".into()),
            ..level("DEBUG")
        }));
        assert!(debug_logged(LogSettings {
            rust_log: Some(String::new()),
            ..level("DEBUG")
        }));
    }

    #[test]
    fn json_is_chosen_by_the_log_format_in_any_case() {
        let line = |format: Option<&str>| {
            let settings = LogSettings {
                format: format.map(str::to_owned),
                ..LogSettings::default()
            };
            logged(settings, || {
                tracing::event!(Level::INFO, answer = 42, "hello")
            })
        };
        for format in ["JSON", "json"] {
            let logs = line(Some(format));
            let value: serde_json::Value = serde_json::from_str(logs.trim()).unwrap();
            assert_eq!(value["fields"]["message"], "hello");
            assert_eq!(value["fields"]["answer"], 42);
        }
        for format in [None, Some("Text")] {
            let logs = line(format);
            assert!(
                logs.contains("INFO hello answer=42"),
                "text without colour: {logs}"
            );
            assert!(serde_json::from_str::<serde_json::Value>(logs.trim()).is_err());
        }
    }
}
