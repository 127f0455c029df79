//! `template.yaml` (what AWS gets) and `erasure::infra` (what the code and `erasure infra create`
//! assume) describe the same tables and queues. A drift between them would only show up after a
//! deployment, so this test reads the template and compares.

use erasure::infra::{
    TableSpec, CONTROL_TABLE, DATA_TABLE, DLQ_RETENTION_SECONDS, MAX_RECEIVE_COUNT,
    VISIBILITY_TIMEOUT_SECONDS,
};
use serde_yaml::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
    let text = std::fs::read_to_string(path).expect("template.yaml is readable");
    serde_yaml::from_str(&text).expect("template.yaml is valid YAML")
}

fn resource<'a>(template: &'a Value, name: &str) -> &'a Value {
    let resource = &template["Resources"][name];
    assert!(
        resource.is_mapping(),
        "template.yaml has no resource {name}"
    );
    resource
}

fn properties<'a>(template: &'a Value, name: &str) -> &'a Value {
    &resource(template, name)["Properties"]
}

/// A number written as a YAML number or as a string ("5"), as CloudFormation accepts both.
fn number(value: &Value, what: &str) -> u64 {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or_else(|| panic!("{what} is not a plain number: {value:?}"))
}

fn string<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a plain string: {value:?}"))
}

/// (attribute name, key type) pairs of a table's KeySchema, in order.
fn key_schema(table: &Value, name: &str) -> Vec<(String, String)> {
    table["KeySchema"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{name} has no KeySchema"))
        .iter()
        .map(|key| {
            (
                string(&key["AttributeName"], "KeySchema AttributeName").to_owned(),
                string(&key["KeyType"], "KeySchema KeyType").to_owned(),
            )
        })
        .collect()
}

/// (attribute name, type) pairs of a table's AttributeDefinitions, sorted by name.
fn attribute_definitions(table: &Value, name: &str) -> Vec<(String, String)> {
    let mut definitions: Vec<(String, String)> = table["AttributeDefinitions"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{name} has no AttributeDefinitions"))
        .iter()
        .map(|attribute| {
            (
                string(&attribute["AttributeName"], "AttributeName").to_owned(),
                string(&attribute["AttributeType"], "AttributeType").to_owned(),
            )
        })
        .collect();
    definitions.sort();
    definitions
}

/// The TTL attribute a table declares, if TTL is enabled.
fn ttl_attribute(table: &Value) -> Option<String> {
    let ttl = table.get("TimeToLiveSpecification")?;
    if ttl["Enabled"].as_bool() != Some(true) {
        return None;
    }
    Some(string(&ttl["AttributeName"], "TTL AttributeName").to_owned())
}

fn assert_table_matches(name: &str, spec: &TableSpec) {
    let template = template();
    let table = properties(&template, name);
    assert_eq!(
        string(&resource(&template, name)["Type"], "Type"),
        "AWS::DynamoDB::Table",
        "{name} is a DynamoDB table"
    );
    assert_eq!(
        key_schema(table, name),
        vec![
            (spec.partition_key.to_owned(), "HASH".to_owned()),
            (spec.sort_key.to_owned(), "RANGE".to_owned()),
        ],
        "{name} key schema differs from erasure::infra"
    );
    let mut expected = vec![
        (spec.partition_key.to_owned(), "S".to_owned()),
        (spec.sort_key.to_owned(), "S".to_owned()),
    ];
    for index in spec.indexes {
        for (attribute, kind) in [index.partition_key, index.sort_key] {
            expected.push((attribute.to_owned(), kind.as_str().to_owned()));
        }
    }
    expected.sort();
    expected.dedup();
    assert_eq!(
        attribute_definitions(table, name),
        expected,
        "{name} attribute definitions differ from erasure::infra"
    );
    assert_eq!(
        ttl_attribute(table).as_deref(),
        spec.ttl_attribute,
        "{name} TTL attribute differs from erasure::infra"
    );
}

#[test]
fn the_data_table_has_the_key_schema_and_ttl_the_code_expects() {
    assert_table_matches("DataTable", &DATA_TABLE);
}

#[test]
fn the_control_table_has_the_key_schema_and_ttl_the_code_expects() {
    assert_table_matches("ControlTable", &CONTROL_TABLE);
}

/// (name, hash key, range key, projection) of each GlobalSecondaryIndexes entry.
fn indexes(table: &Value) -> Vec<(String, String, String, String)> {
    let Some(indexes) = table.get("GlobalSecondaryIndexes") else {
        return Vec::new();
    };
    indexes
        .as_sequence()
        .expect("GlobalSecondaryIndexes is a list")
        .iter()
        .map(|index| {
            let name = string(&index["IndexName"], "IndexName").to_owned();
            let keys = key_schema(index, &name);
            let [(hash, hash_type), (range, range_type)] = keys.as_slice() else {
                panic!("{name} has not a HASH and a RANGE key: {keys:?}")
            };
            assert_eq!((hash_type.as_str(), range_type.as_str()), ("HASH", "RANGE"));
            let projection = string(&index["Projection"]["ProjectionType"], "ProjectionType");
            (name, hash.clone(), range.clone(), projection.to_owned())
        })
        .collect()
}

#[test]
fn each_table_declares_exactly_the_indexes_the_code_creates_keys_only() {
    let template = template();
    for (name, spec) in [("DataTable", &DATA_TABLE), ("ControlTable", &CONTROL_TABLE)] {
        let expected: Vec<(String, String, String, String)> = spec
            .indexes
            .iter()
            .map(|index| {
                (
                    index.name.to_owned(),
                    index.partition_key.0.to_owned(),
                    index.sort_key.0.to_owned(),
                    "KEYS_ONLY".to_owned(),
                )
            })
            .collect();
        assert_eq!(
            indexes(properties(&template, name)),
            expected,
            "{name}'s GlobalSecondaryIndexes differ from erasure::infra"
        );
    }
    assert!(
        DATA_TABLE.indexes.is_empty(),
        "erasure never reads the data table by an index"
    );
}

#[test]
fn the_max_receive_count_parameter_defaults_to_the_code_constant() {
    let template = template();
    let default = &template["Parameters"]["MaxReceiveCount"]["Default"];
    assert_eq!(
        number(default, "MaxReceiveCount Default"),
        u64::from(MAX_RECEIVE_COUNT)
    );
}

#[test]
fn the_task_queue_redrives_to_the_dead_letter_queue_after_max_receive_count() {
    let template = template();
    let redrive = &properties(&template, "TaskQueue")["RedrivePolicy"];
    match &redrive["maxReceiveCount"] {
        Value::Tagged(tagged) => {
            assert_eq!(tagged.tag, "!Ref", "maxReceiveCount uses !Ref");
            assert_eq!(tagged.value.as_str(), Some("MaxReceiveCount"));
        }
        other => assert_eq!(
            number(other, "maxReceiveCount"),
            u64::from(MAX_RECEIVE_COUNT)
        ),
    }
    match &redrive["deadLetterTargetArn"] {
        Value::Tagged(tagged) => {
            assert_eq!(tagged.tag, "!GetAtt", "deadLetterTargetArn uses !GetAtt");
            assert_eq!(tagged.value.as_str(), Some("TaskDeadLetterQueue.Arn"));
        }
        other => panic!("deadLetterTargetArn should be !GetAtt TaskDeadLetterQueue.Arn: {other:?}"),
    }
}

#[test]
fn the_task_queue_visibility_timeout_is_the_code_constant_and_six_worker_timeouts() {
    let template = template();
    let visibility = number(
        &properties(&template, "TaskQueue")["VisibilityTimeout"],
        "TaskQueue VisibilityTimeout",
    );
    let worker_timeout = number(
        &properties(&template, "WorkerFunction")["Timeout"],
        "WorkerFunction Timeout",
    );
    assert_eq!(visibility, u64::from(VISIBILITY_TIMEOUT_SECONDS));
    assert!(
        visibility >= 6 * worker_timeout,
        "visibility timeout {visibility}s is under 6 x the worker timeout {worker_timeout}s"
    );
}

#[test]
fn the_dead_letter_queue_keeps_failed_tasks_as_long_as_the_code_says() {
    let template = template();
    let retention = number(
        &properties(&template, "TaskDeadLetterQueue")["MessageRetentionPeriod"],
        "TaskDeadLetterQueue MessageRetentionPeriod",
    );
    assert_eq!(retention, u64::from(DLQ_RETENTION_SECONDS));
}

#[test]
fn each_function_has_a_log_group_with_a_retention() {
    let template = template();
    for (group, function) in [
        ("ApiLogGroup", "ApiFunction"),
        ("WorkerLogGroup", "WorkerFunction"),
        ("SweepLogGroup", "SweepFunction"),
    ] {
        assert_eq!(
            string(&resource(&template, group)["Type"], "Type"),
            "AWS::Logs::LogGroup"
        );
        let log_group = properties(&template, group);
        match &log_group["LogGroupName"] {
            Value::Tagged(tagged) => {
                assert_eq!(tagged.tag, "!Sub", "{group} LogGroupName uses !Sub");
                assert_eq!(
                    tagged.value.as_str(),
                    Some(format!("/aws/lambda/${{{function}}}").as_str()),
                    "{group} is the log group Lambda writes {function}'s logs to"
                );
            }
            other => {
                panic!("{group} LogGroupName should be !Sub /aws/lambda/${{{function}}}: {other:?}")
            }
        }
        match &log_group["RetentionInDays"] {
            Value::Tagged(tagged) => {
                assert_eq!(tagged.tag, "!Ref");
                assert_eq!(tagged.value.as_str(), Some("LogRetentionDays"));
            }
            other => panic!("{group} RetentionInDays should be !Ref LogRetentionDays: {other:?}"),
        }
    }
    let default = &template["Parameters"]["LogRetentionDays"]["Default"];
    assert!(number(default, "LogRetentionDays Default") > 0);
}

/// A stuck call must end (in a 503, or a failed task SQS retries) before Lambda kills the
/// function: the SDK's operation timeout of each function fits inside its `Timeout`.
#[test]
fn the_sdk_timeouts_fit_inside_each_functions_timeout() {
    let template = template();
    for (function, timeouts) in [
        ("ApiFunction", erasure::aws::api_timeouts()),
        ("WorkerFunction", erasure::aws::worker_timeouts()),
        ("SweepFunction", erasure::aws::sweeper_timeouts()),
    ] {
        let limit = number(
            &properties(&template, function)["Timeout"],
            &format!("{function} Timeout"),
        );
        let operation = timeouts
            .operation_timeout()
            .unwrap_or_else(|| panic!("{function} has no operation timeout"));
        let attempt = timeouts
            .operation_attempt_timeout()
            .unwrap_or_else(|| panic!("{function} has no attempt timeout"));
        assert!(
            attempt < operation,
            "{function}: an attempt outlasts its operation"
        );
        // Twice over: a request or task makes calls one after another.
        assert!(
            2 * operation.as_secs() < limit,
            "{function}: an operation may take {operation:?}, its Lambda timeout is {limit} s"
        );
    }
}

/// Fairness: a large job cannot take the account's Lambda concurrency from the api. The
/// worker's SQS event source caps its concurrent executions.
#[test]
fn the_workers_concurrency_is_capped_by_its_event_source() {
    let template = template();
    let events = &properties(&template, "WorkerFunction")["Events"];
    let sqs: Vec<&Value> = events
        .as_mapping()
        .expect("WorkerFunction has Events")
        .values()
        .filter(|e| e["Type"].as_str() == Some("SQS"))
        .collect();
    assert_eq!(sqs.len(), 1, "one SQS event source");
    let cap = number(
        &sqs[0]["Properties"]["ScalingConfig"]["MaximumConcurrency"],
        "ScalingConfig MaximumConcurrency",
    );
    // SQS event sources accept 2 to 1000; a cap near the account's default 1000 caps nothing.
    assert!((2..=100).contains(&cap), "MaximumConcurrency {cap}");
}

/// The sweep runs on a schedule, its bounds come from the queue the template declares, and it
/// is told both tables (`SweeperConfig` requires them: it releases tombstones in the data
/// table).
#[test]
fn the_sweep_runs_on_a_schedule_with_the_queues_receive_count_and_both_tables() {
    let template = template();
    let sweep = properties(&template, "SweepFunction");
    let events = sweep["Events"]
        .as_mapping()
        .expect("SweepFunction has Events");
    assert!(events.values().any(
        |e| e["Type"].as_str() == Some("ScheduleV2") || e["Type"].as_str() == Some("Schedule")
    ));
    match &sweep["Environment"]["Variables"]["MAX_RECEIVE_COUNT"] {
        Value::Tagged(tagged) => assert_eq!(tagged.value.as_str(), Some("MaxReceiveCount")),
        other => panic!("MAX_RECEIVE_COUNT should be !Ref MaxReceiveCount: {other:?}"),
    }
    for (variable, table) in [
        ("CONTROL_TABLE", "ControlTable"),
        ("DATA_TABLE", "DataTable"),
    ] {
        match &sweep["Environment"]["Variables"][variable] {
            Value::Tagged(tagged) => assert_eq!(tagged.value.as_str(), Some(table)),
            other => panic!("{variable} should be !Ref {table}: {other:?}"),
        }
    }
}
