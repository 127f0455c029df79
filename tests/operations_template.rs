//! The operator's side of `template.yaml` matches the code: every alarm notifies the alarm
//! topic (the `AlarmTopicArn` parameter, or a topic the stack creates when it is empty); the
//! alarms on the functions' embedded metrics name the metrics and dimensions the code emits
//! (`erasure::metrics`); X-Ray is on for every function.

use erasure::metrics::{dimension, name, Function, NAMESPACE};
use serde_yaml::Value;

fn template() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn properties<'a>(template: &'a Value, name: &str) -> &'a Value {
    let resource = &template["Resources"][name];
    assert!(
        resource.is_mapping(),
        "template.yaml has no resource {name}"
    );
    &resource["Properties"]
}

/// A tagged value (`!Ref X`) as (tag, its value).
fn tagged(value: &Value) -> (String, &Value) {
    match value {
        Value::Tagged(t) => (t.tag.to_string(), &t.value),
        other => panic!("not a tagged value: {other:?}"),
    }
}

fn reference(value: &Value) -> String {
    let (tag, target) = tagged(value);
    assert_eq!(tag, "!Ref", "{value:?}");
    target.as_str().unwrap().to_owned()
}

fn alarm_names(template: &Value) -> Vec<String> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|(name, _)| name.as_str().unwrap().to_owned())
        .collect()
}

/// `!If [CreateAlarmTopic, !Ref AlarmTopic, !Ref AlarmTopicArn]`: the topic, whichever it is.
fn assert_is_the_alarm_topic(value: &Value, what: &str) {
    let (tag, arguments) = tagged(value);
    assert_eq!(tag, "!If", "{what}");
    let arguments = arguments.as_sequence().unwrap();
    assert_eq!(arguments[0].as_str(), Some("CreateAlarmTopic"), "{what}");
    assert_eq!(reference(&arguments[1]), "AlarmTopic", "{what}");
    assert_eq!(reference(&arguments[2]), "AlarmTopicArn", "{what}");
}

#[test]
fn every_alarm_notifies_the_alarm_topic_when_it_fires_and_when_it_clears() {
    let template = template();
    let alarms = alarm_names(&template);
    for expected in [
        "DeadLetterAlarm",
        "WebhookDeadLetterAlarm",
        "WorkerErrorsAlarm",
        "ApiServerErrorsAlarm",
        "OldJobsAlarm",
    ] {
        assert!(
            alarms.iter().any(|a| a == expected),
            "no {expected}: {alarms:?}"
        );
    }
    for alarm in &alarms {
        let properties = properties(&template, alarm);
        for actions in ["AlarmActions", "OKActions"] {
            let list = properties[actions]
                .as_sequence()
                .unwrap_or_else(|| panic!("{alarm} has no {actions}"));
            assert_eq!(list.len(), 1, "{alarm} {actions}");
            assert_is_the_alarm_topic(&list[0], &format!("{alarm} {actions}"));
        }
    }
}

#[test]
fn an_empty_alarm_topic_parameter_makes_the_stack_create_its_own_topic() {
    let template = template();
    let parameter = &template["Parameters"]["AlarmTopicArn"];
    assert_eq!(parameter["Type"].as_str(), Some("String"));
    assert_eq!(parameter["Default"].as_str(), Some(""));
    let (tag, arguments) = tagged(&template["Conditions"]["CreateAlarmTopic"]);
    assert_eq!(tag, "!Equals");
    let arguments = arguments.as_sequence().unwrap();
    assert_eq!(reference(&arguments[0]), "AlarmTopicArn");
    assert_eq!(arguments[1].as_str(), Some(""));
    let topic = &template["Resources"]["AlarmTopic"];
    assert_eq!(topic["Type"].as_str(), Some("AWS::SNS::Topic"));
    assert_eq!(topic["Condition"].as_str(), Some("CreateAlarmTopic"));
    assert_is_the_alarm_topic(&template["Outputs"]["AlarmTopicArn"]["Value"], "output");
}

/// The metric of a metric-math alarm's query `id`: (namespace, name, dimensions).
fn queried(alarm: &Value, id: &str) -> (String, String, Vec<(String, String)>) {
    let query = alarm["Metrics"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|q| q["Id"].as_str() == Some(id))
        .unwrap_or_else(|| panic!("no query {id}"));
    let metric = &query["MetricStat"]["Metric"];
    let dimensions = metric["Dimensions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|d| {
            let value = match &d["Value"] {
                Value::String(s) => s.clone(),
                other => reference(other),
            };
            (d["Name"].as_str().unwrap().to_owned(), value)
        })
        .collect();
    (
        metric["Namespace"].as_str().unwrap().to_owned(),
        metric["MetricName"].as_str().unwrap().to_owned(),
        dimensions,
    )
}

fn pair(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

#[test]
fn the_error_alarms_watch_the_metrics_the_functions_emit_and_their_lambda_errors() {
    let template = template();
    let worker = properties(&template, "WorkerErrorsAlarm");
    assert_eq!(
        queried(worker, "failed"),
        (
            NAMESPACE.to_owned(),
            name::TASKS_FAILED.to_owned(),
            vec![pair(dimension::FUNCTION, Function::Worker.as_str())]
        )
    );
    assert_eq!(
        queried(worker, "errors"),
        (
            "AWS/Lambda".to_owned(),
            "Errors".to_owned(),
            vec![pair("FunctionName", "WorkerFunction")]
        )
    );
    let api = properties(&template, "ApiServerErrorsAlarm");
    assert_eq!(
        queried(api, "answered"),
        (
            NAMESPACE.to_owned(),
            name::ERROR_RESPONSES.to_owned(),
            vec![
                pair(dimension::FUNCTION, Function::Api.as_str()),
                pair(dimension::STATUS_CLASS, "5xx")
            ]
        )
    );
    assert_eq!(
        queried(api, "errors").2,
        vec![pair("FunctionName", "ApiFunction")]
    );
    for alarm in [worker, api] {
        assert_eq!(alarm["Threshold"].as_u64(), Some(0));
        assert_eq!(
            alarm["ComparisonOperator"].as_str(),
            Some("GreaterThanThreshold")
        );
    }
}

#[test]
fn the_old_jobs_alarm_fires_past_an_hour_of_the_sweepers_oldest_open_job() {
    let template = template();
    let alarm = properties(&template, "OldJobsAlarm");
    assert_eq!(alarm["Namespace"].as_str(), Some(NAMESPACE));
    assert_eq!(
        alarm["MetricName"].as_str(),
        Some(name::OLDEST_OPEN_JOB_AGE)
    );
    assert_eq!(
        alarm["Dimensions"][0]["Name"].as_str(),
        Some(dimension::FUNCTION)
    );
    assert_eq!(
        alarm["Dimensions"][0]["Value"].as_str(),
        Some(Function::Sweeper.as_str())
    );
    // The metric is in seconds (erasure::metrics::Metrics::oldest_open_job).
    assert_eq!(alarm["Threshold"].as_u64(), Some(3600));
    assert_eq!(alarm["Statistic"].as_str(), Some("Maximum"));
    // The sweeper runs every 5 minutes: a period holds at least one of its reports.
    let schedule = &properties(&template, "SweepFunction")["Events"]["Every5Minutes"]["Properties"];
    assert_eq!(
        schedule["ScheduleExpression"].as_str(),
        Some("rate(5 minutes)")
    );
    assert!(alarm["Period"].as_u64().unwrap() >= 2 * 300);
}

#[test]
fn every_function_is_traced_with_x_ray() {
    let template = template();
    assert_eq!(
        template["Globals"]["Function"]["Tracing"].as_str(),
        Some("Active")
    );
    let functions: Vec<&Value> = template["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .collect();
    assert_eq!(functions.len(), 4);
    for function in functions {
        assert!(
            function["Properties"].get("Tracing").is_none(),
            "a function overrides the global tracing"
        );
    }
}
