//! CloudWatch metrics as Embedded Metric Format (EMF) lines on standard output: Lambda sends
//! stdout to the function's log group and CloudWatch Logs turns each such line into metrics —
//! no `PutMetricData` call, no permission, no latency on the request path.
//!
//! Dimensions are low-cardinality by type: every dimension value is a `&'static str` (a
//! function, a feature, a job status, a status word or class), so no user, tenant or job id
//! can become one, and a line carries nothing but its dimensions and numbers.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::clock::now_ms;
use crate::domain::job::JobStatus;
use crate::domain::task::{Outcome, TaskKind};

/// The metrics' CloudWatch namespace.
pub const NAMESPACE: &str = "Erasure";

/// Metric names, shared with the template's alarms (`tests/operations_template.rs`).
pub mod name {
    /// A task verified done (worker; per feature).
    pub const TASKS_DONE: &str = "TasksDone";
    /// An attempt of a task that failed; it is retried until its last receive (worker).
    pub const TASKS_FAILED: &str = "TasksFailed";
    /// A task that paused at the invocation's deadline and goes on in a continuation (worker).
    pub const TASKS_PAUSED: &str = "TasksPaused";
    /// Items a task's pass removed (worker; per feature).
    pub const ITEMS_REMOVED: &str = "ItemsRemoved";
    /// Items a task's pass rewrote (worker; per feature).
    pub const ITEMS_REWRITTEN: &str = "ItemsRewritten";
    /// How long a task's pass took, to its end or its pause (worker; per feature).
    pub const TASK_DURATION: &str = "TaskDuration";
    /// From a job's acceptance to its settling, by the status it settled in (worker).
    pub const JOB_AGE_AT_COMPLETION: &str = "JobAgeAtCompletion";
    /// A 202 of the delete endpoint: a job accepted, its tasks sent (api). A replay with the
    /// same `Idempotency-Key` answers 202 again and counts again.
    pub const JOBS_ACCEPTED: &str = "JobsAccepted";
    /// An answer of 4xx or 5xx (api), by status class and by the envelope's status word.
    pub const ERROR_RESPONSES: &str = "ErrorResponses";
    /// Age of the oldest job still open at a sweep; 0 when none is (sweeper).
    pub const OLDEST_OPEN_JOB_AGE: &str = "OldestOpenJobAge";
}

/// Dimension names.
pub mod dimension {
    pub const FUNCTION: &str = "Function";
    pub const FEATURE: &str = "Feature";
    pub const JOB_STATUS: &str = "JobStatus";
    pub const STATUS_CLASS: &str = "StatusClass";
    pub const STATUS_WORD: &str = "StatusWord";
}

/// The function a metric comes from: the `Function` dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Api,
    Worker,
    Sweeper,
}

impl Function {
    pub fn as_str(self) -> &'static str {
        match self {
            Function::Api => "api",
            Function::Worker => "worker",
            Function::Sweeper => "sweeper",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
        }
    }
}

/// Where the lines go.
#[derive(Clone)]
enum Sink {
    Stdout,
    Writer(Arc<Mutex<dyn Write + Send>>),
}

/// One function's metrics.
#[derive(Clone)]
pub struct Metrics {
    function: Function,
    sink: Sink,
}

impl Metrics {
    /// Lines to standard output, where Lambda picks them up.
    pub fn stdout(function: Function) -> Self {
        Self {
            function,
            sink: Sink::Stdout,
        }
    }

    /// Lines to `writer` (a test reads them back).
    pub fn to_writer(function: Function, writer: Arc<Mutex<dyn Write + Send>>) -> Self {
        Self {
            function,
            sink: Sink::Writer(writer),
        }
    }

    /// A task verified done, with what its last pass removed and rewrote and how long it took.
    pub fn task_done(&self, kind: TaskKind, outcome: Outcome, took: Duration) {
        self.task_pass(kind, outcome, took, name::TASKS_DONE);
    }

    /// A task paused at the deadline: what its pass did, and how long it took.
    pub fn task_paused(&self, kind: TaskKind, outcome: Outcome, took: Duration) {
        self.task_pass(kind, outcome, took, name::TASKS_PAUSED);
    }

    fn task_pass(&self, kind: TaskKind, outcome: Outcome, took: Duration, counter: &'static str) {
        self.emit(
            &[&[dimension::FEATURE], &[]],
            &[(dimension::FEATURE, kind.as_str())],
            &[
                (counter, Unit::Count, 1.0),
                (name::ITEMS_REMOVED, Unit::Count, outcome.removed as f64),
                (name::ITEMS_REWRITTEN, Unit::Count, outcome.rewritten as f64),
                (
                    name::TASK_DURATION,
                    Unit::Milliseconds,
                    took.as_secs_f64() * 1000.0,
                ),
            ],
        );
    }

    /// An attempt of a task that failed.
    pub fn task_failed(&self, kind: TaskKind) {
        self.emit(
            &[&[dimension::FEATURE], &[]],
            &[(dimension::FEATURE, kind.as_str())],
            &[(name::TASKS_FAILED, Unit::Count, 1.0)],
        );
    }

    /// A job settled in `status`, `age_ms` after it was accepted.
    pub fn job_settled(&self, status: JobStatus, age_ms: i64) {
        self.emit(
            &[&[dimension::JOB_STATUS], &[]],
            &[(dimension::JOB_STATUS, status.as_str())],
            &[(
                name::JOB_AGE_AT_COMPLETION,
                Unit::Milliseconds,
                age_ms.max(0) as f64,
            )],
        );
    }

    /// A job accepted (a 202).
    pub fn job_accepted(&self) {
        self.emit(&[&[]], &[], &[(name::JOBS_ACCEPTED, Unit::Count, 1.0)]);
    }

    /// An answer with `status`, and the envelope's status word (`INVALID_ARGUMENT`,
    /// `UNAVAILABLE`, …). Nothing for a status under 400.
    pub fn response(&self, status: u16, word: &'static str) {
        let class = match status {
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => return,
        };
        self.emit(
            &[&[dimension::STATUS_CLASS], &[dimension::STATUS_WORD]],
            &[
                (dimension::STATUS_CLASS, class),
                (dimension::STATUS_WORD, word),
            ],
            &[(name::ERROR_RESPONSES, Unit::Count, 1.0)],
        );
    }

    /// The age of the oldest job still open (0 when none is).
    pub fn oldest_open_job(&self, age_ms: i64) {
        self.emit(
            &[&[]],
            &[],
            &[(
                name::OLDEST_OPEN_JOB_AGE,
                Unit::Seconds,
                age_ms.max(0) as f64 / 1000.0,
            )],
        );
    }

    /// One EMF line: each dimension set gets `Function` first; `values` are the metrics.
    fn emit(
        &self,
        sets: &[&[&'static str]],
        dimensions: &[(&'static str, &'static str)],
        values: &[(&'static str, Unit, f64)],
    ) {
        let line = self.line(sets, dimensions, values, now_ms()).to_string();
        match &self.sink {
            // `println!`, not a locked write: a test's harness captures it.
            Sink::Stdout => println!("{line}"),
            Sink::Writer(writer) => {
                if let Ok(mut writer) = writer.lock() {
                    // A metric is never worth failing the work it measures.
                    let _ = writeln!(writer, "{line}");
                }
            }
        }
    }

    fn line(
        &self,
        sets: &[&[&'static str]],
        dimensions: &[(&'static str, &'static str)],
        values: &[(&'static str, Unit, f64)],
        timestamp_ms: i64,
    ) -> Value {
        let sets: Vec<Vec<&str>> = sets
            .iter()
            .map(|set| {
                std::iter::once(dimension::FUNCTION)
                    .chain(set.iter().copied())
                    .collect()
            })
            .collect();
        let definitions: Vec<Value> = values
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let mut line = Map::new();
        line.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": sets,
                    "Metrics": definitions,
                }],
            }),
        );
        line.insert(dimension::FUNCTION.into(), self.function.as_str().into());
        for (name, value) in dimensions {
            line.insert((*name).into(), (*value).into());
        }
        for (name, _, value) in values {
            line.insert((*name).into(), json!(value));
        }
        Value::Object(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(emit: impl FnOnce(&Metrics)) -> Vec<Value> {
        let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
        emit(&Metrics::to_writer(Function::Worker, buffer.clone()));
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_line_declares_every_metric_it_carries_under_every_dimension_set() {
        let lines = captured(|m| {
            m.task_done(
                TaskKind::Comments,
                Outcome {
                    removed: 3,
                    rewritten: 1,
                },
                Duration::from_millis(250),
            )
        });
        let [line] = lines.as_slice() else {
            panic!("{lines:?}")
        };
        let spec = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], NAMESPACE);
        assert_eq!(
            spec["Dimensions"],
            json!([["Function", "Feature"], ["Function"]])
        );
        for metric in spec["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(line[name].is_number(), "{name} has no value: {line}");
        }
        assert_eq!(line["Function"], "worker");
        assert_eq!(line["Feature"], "comments");
        assert_eq!(line["ItemsRemoved"], 3.0);
        assert_eq!(line["TaskDuration"], 250.0);
        assert!(line["_aws"]["Timestamp"].is_i64());
    }

    #[test]
    fn only_error_answers_are_counted_by_class_and_word() {
        let lines = captured(|m| {
            m.response(202, "success");
            m.response(429, "RESOURCE_EXHAUSTED");
            m.response(503, "UNAVAILABLE");
        });
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (&lines[0]["StatusClass"], &lines[0]["StatusWord"]),
            (&json!("4xx"), &json!("RESOURCE_EXHAUSTED"))
        );
        assert_eq!(lines[1]["StatusClass"], "5xx");
    }
}
