//! The template's redrive path (SPEC §5, §11), resolved by the small CloudFormation evaluator of
//! `tests/common/cfn.rs`: the mapping from the failure queue is off by default and, when on,
//! partial-batch, bounded and allowed exactly what it needs; the queue's visibility outlasts a
//! batch; records that fail again reach a dead-letter queue with an alarm; a record Lambda cannot
//! deliver raises an alarm too.

mod common;

use common::cfn::{Stack, resolve, scenarios, template};
use common::policies::role_statements;
use serde_json::{Value, json};

const ON: &[(&str, &str)] = &[("DestRegion", "us-west-2"), ("RedriveFailureQueue", "true")];

/// The function role's statements that name an SQS action other than SendMessage.
fn sqs_reads(stack: &Stack) -> Vec<Value> {
    role_statements(stack, "FunctionRole")
        .into_iter()
        .filter(|s| {
            let actions = match &s["Action"] {
                Value::Array(a) => a.clone(),
                one => vec![one.clone()],
            };
            actions.iter().any(|a| {
                a.as_str()
                    .is_some_and(|a| a.starts_with("sqs:") && a != "sqs:SendMessage")
            })
        })
        .collect()
}

#[test]
fn the_redrive_mapping_is_off_by_default_and_reads_nothing() {
    let t = template();
    assert_eq!(t["Parameters"]["RedriveFailureQueue"]["Default"], "false");
    for (label, stack) in scenarios() {
        assert!(
            stack.of_type("AWS::Lambda::EventSourceMapping").is_empty(),
            "{label}: no mapping unless switched on"
        );
        assert!(
            sqs_reads(&stack).is_empty(),
            "{label}: {:?}",
            sqs_reads(&stack)
        );
    }
}

#[test]
fn when_on_the_mapping_reports_batch_item_failures_in_small_bounded_batches() {
    let stack = resolve(&template(), ON);
    let mappings = stack.of_type("AWS::Lambda::EventSourceMapping");
    assert_eq!(mappings.len(), 1, "one mapping");
    let p = &mappings[0].1["Properties"];
    assert_eq!(p["EventSourceArn"], "<FailureQueue.Arn>");
    assert_eq!(p["FunctionName"], "<Function>");
    assert!(
        p["FunctionResponseTypes"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("ReportBatchItemFailures"))),
        "partial batch responses: {p}"
    );
    let batch = p["BatchSize"]
        .as_u64()
        .or_else(|| p["BatchSize"].as_str()?.parse().ok());
    assert!(
        batch.is_some_and(|b| (1..=10).contains(&b)),
        "BatchSize ≤ 10: {p}"
    );
    assert_eq!(p["ScalingConfig"]["MaximumConcurrency"], 2, "{p}");
    assert!(p.get("MaximumBatchingWindowInSeconds").is_none(), "{p}");
}

#[test]
fn when_on_the_role_may_receive_delete_and_read_attributes_of_the_failure_queue_only() {
    let stack = resolve(&template(), ON);
    let reads = sqs_reads(&stack);
    assert_eq!(reads.len(), 1, "{reads:?}");
    let s = &reads[0];
    assert_eq!(s["Effect"], "Allow");
    let mut actions: Vec<&str> = s["Action"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage"
        ]
    );
    assert_eq!(s["Resource"], "<FailureQueue.Arn>", "{s}");
}

#[test]
fn the_failure_queue_outlasts_a_batch_and_hands_repeated_failures_to_a_dead_letter_queue() {
    let t = template();
    let stack = resolve(&t, ON);
    let q = &stack.get("FailureQueue")["Properties"];
    let number = |v: &Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or_else(|| panic!("not a number: {v}"))
    };
    // AWS: at least six times the function timeout, for any timeout the parameter allows.
    let visibility = number(&q["VisibilityTimeout"]);
    let longest = number(&t["Parameters"]["Timeout"]["MaxValue"]);
    let default = number(&t["Parameters"]["Timeout"]["Default"]);
    assert!(visibility >= 6 * longest, "{visibility} < 6 x {longest}");
    assert!(visibility >= 6 * default);
    assert!(visibility <= 43_200, "SQS allows at most 12 hours");
    assert_eq!(
        q["RedrivePolicy"],
        json!({"deadLetterTargetArn": "<FailureDeadLetterQueue.Arn>", "maxReceiveCount": 3})
    );
    let dlq = &stack.get("FailureDeadLetterQueue")["Properties"];
    assert_eq!(dlq["SqsManagedSseEnabled"], true);
    assert!(number(&dlq["MessageRetentionPeriod"]) >= number(&q["MessageRetentionPeriod"]));
}

/// The alarm resource watching `metric` in `namespace`.
fn alarm<'a>(stack: &'a Stack, namespace: &str, metric: &str) -> (&'a str, &'a Value) {
    let found: Vec<_> = stack
        .of_type("AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, a)| {
            a["Properties"]["Namespace"] == namespace && a["Properties"]["MetricName"] == metric
        })
        .collect();
    assert!(!found.is_empty(), "no alarm on {namespace} {metric}");
    found[0]
}

#[test]
fn the_dead_letter_queue_and_undeliverable_records_raise_alarms() {
    for (label, stack) in scenarios()
        .into_iter()
        .chain([("redrive on", resolve(&template(), ON))])
    {
        let dlq = stack
            .of_type("AWS::CloudWatch::Alarm")
            .into_iter()
            .find(|(_, a)| {
                a["Properties"]["Dimensions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|d| d["Value"] == "<FailureDeadLetterQueue.QueueName>")
            })
            .unwrap_or_else(|| panic!("{label}: no alarm on the dead-letter queue"));
        let p = &dlq.1["Properties"];
        assert_eq!(
            p["MetricName"], "ApproximateNumberOfMessagesVisible",
            "{label}"
        );
        assert_eq!(p["AlarmActions"], json!(["<AlarmTopic>"]), "{label}");

        let (_, delivery) = alarm(&stack, "AWS/Lambda", "DestinationDeliveryFailures");
        let p = &delivery["Properties"];
        assert_eq!(
            p["Dimensions"],
            json!([{"Name": "FunctionName", "Value": "<Function>"}]),
            "{label}"
        );
        assert_eq!(p["ComparisonOperator"], "GreaterThanOrEqualToThreshold");
        assert_eq!(p["Threshold"], 1);
        assert_eq!(p["AlarmActions"], json!(["<AlarmTopic>"]), "{label}");
    }
}
