//! The webhook's resources in `template.yaml` match the code: the queue redrives after the
//! notifier's attempts, its visibility covers six notifier timeouts, the DLQ is watched by an
//! alarm and kept 14 days, the notifier logs to a group with a retention, and the worker
//! knows where to announce.

use erasure::infra::DLQ_RETENTION_SECONDS;
use erasure::webhook::delivery::MAX_ATTEMPTS;
use serde_yaml::Value;

fn template() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn properties<'a>(template: &'a Value, name: &str) -> &'a Value {
    &template["Resources"][name]["Properties"]
}

fn tagged(value: &Value) -> (String, String) {
    match value {
        Value::Tagged(t) => (t.tag.to_string(), t.value.as_str().unwrap().to_owned()),
        other => panic!("not a tagged value: {other:?}"),
    }
}

#[test]
fn the_webhook_queue_redrives_to_its_dlq_after_the_notifiers_attempts() {
    let template = template();
    let queue = properties(&template, "WebhookQueue");
    let redrive = &queue["RedrivePolicy"];
    assert_eq!(
        redrive["maxReceiveCount"].as_u64(),
        Some(MAX_ATTEMPTS.into())
    );
    assert_eq!(
        tagged(&redrive["deadLetterTargetArn"]),
        ("!GetAtt".into(), "WebhookDeadLetterQueue.Arn".into())
    );
    let timeout = properties(&template, "NotifierFunction")["Timeout"]
        .as_u64()
        .unwrap();
    assert_eq!(queue["VisibilityTimeout"].as_u64(), Some(6 * timeout));
    assert_eq!(
        properties(&template, "WebhookDeadLetterQueue")["MessageRetentionPeriod"].as_u64(),
        Some(DLQ_RETENTION_SECONDS.into())
    );
}

#[test]
fn an_alarm_watches_the_webhook_dead_letter_queue() {
    let template = template();
    let alarm = properties(&template, "WebhookDeadLetterAlarm");
    assert_eq!(
        tagged(&alarm["Dimensions"][0]["Value"]),
        ("!GetAtt".into(), "WebhookDeadLetterQueue.QueueName".into())
    );
    assert_eq!(alarm["Threshold"].as_u64(), Some(0));
}

#[test]
fn the_notifier_consumes_the_webhook_queue_reporting_batch_item_failures() {
    let template = template();
    let notifier = properties(&template, "NotifierFunction");
    let source = &notifier["Events"]["Notifications"]["Properties"];
    assert_eq!(
        tagged(&source["Queue"]),
        ("!GetAtt".into(), "WebhookQueue.Arn".into())
    );
    assert_eq!(
        source["FunctionResponseTypes"][0].as_str(),
        Some("ReportBatchItemFailures")
    );
    assert_eq!(
        tagged(&notifier["Environment"]["Variables"]["WEBHOOK_QUEUE_URL"]),
        ("!Ref".into(), "WebhookQueue".into())
    );
    // No WEBHOOK_ALLOW_LOOPBACK in deployment: only https to public addresses.
    assert!(notifier["Environment"]["Variables"]
        .get("WEBHOOK_ALLOW_LOOPBACK")
        .is_none());
    // Every settle point announces: the worker, the api's enqueued mark, the sweep.
    for function in ["WorkerFunction", "ApiFunction", "SweepFunction"] {
        let settler = properties(&template, function);
        assert_eq!(
            tagged(&settler["Environment"]["Variables"]["WEBHOOK_QUEUE_URL"]),
            ("!Ref".into(), "WebhookQueue".into()),
            "{function}"
        );
    }
}

#[test]
fn the_notifier_logs_to_a_group_with_a_retention_and_its_sdk_calls_fit_its_timeout() {
    let template = template();
    let group = properties(&template, "NotifierLogGroup");
    assert_eq!(
        tagged(&group["LogGroupName"]),
        ("!Sub".into(), "/aws/lambda/${NotifierFunction}".into())
    );
    assert_eq!(
        tagged(&group["RetentionInDays"]),
        ("!Ref".into(), "LogRetentionDays".into())
    );
    let limit = properties(&template, "NotifierFunction")["Timeout"]
        .as_u64()
        .unwrap();
    let timeouts = erasure::aws::notifier_timeouts();
    let operation = timeouts.operation_timeout().unwrap().as_secs();
    // A GetItem, the webhook's request (10 s at most), a ChangeMessageVisibility.
    assert!(
        2 * operation + 10 < limit,
        "{operation} s per operation, {limit} s timeout"
    );
}
