//! The template's queues (SPEC §5, §7, §11), resolved by the small CloudFormation evaluator of
//! `tests/common/cfn.rs`: the events queue, always on, partial-batch, capped, allowed exactly
//! what it needs, with a dead-letter queue of raw events and its alarm; the mapping from the
//! failure queue is off by default and, when on, partial-batch, bounded and allowed exactly what
//! it needs; each queue's visibility outlasts a batch; records that fail again on 5 receives reach
//! a dead-letter queue with an alarm; a record Lambda cannot deliver raises an alarm too.

mod common;

use common::cfn::{Stack, resolve, scenarios, template};
use common::policies::role_statements;
use serde_json::{Value, json};

const ON: &[(&str, &str)] = &[("DestRegion", "us-west-2"), ("RedriveFailureQueue", "true")];

/// The function role's statements that name an SQS action other than SendMessage, on the
/// failure queue.
fn sqs_reads(stack: &Stack) -> Vec<Value> {
    sqs_reads_of(stack, "<FailureQueue.Arn>")
}

/// The function role's statements that name an SQS action other than SendMessage on `queue`.
fn sqs_reads_of(stack: &Stack, queue: &str) -> Vec<Value> {
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
            }) && s["Resource"] == queue
        })
        .collect()
}

#[test]
fn the_redrive_mapping_is_off_by_default_and_reads_nothing() {
    let t = template();
    assert_eq!(t["Parameters"]["RedriveFailureQueue"]["Default"], "false");
    for (label, stack) in scenarios() {
        assert!(
            !stack
                .of_type("AWS::Lambda::EventSourceMapping")
                .iter()
                .any(|(_, m)| m["Properties"]["EventSourceArn"] == "<FailureQueue.Arn>"),
            "{label}: no mapping of the failure queue unless switched on"
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
    let mappings: Vec<_> = stack
        .of_type("AWS::Lambda::EventSourceMapping")
        .into_iter()
        .filter(|(_, m)| m["Properties"]["EventSourceArn"] == "<FailureQueue.Arn>")
        .collect();
    assert_eq!(mappings.len(), 1, "one mapping of the failure queue");
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
        json!({"deadLetterTargetArn": "<FailureDeadLetterQueue.Arn>", "maxReceiveCount": 5})
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

// ---- the events queue ------------------------------------------------------------------------

fn number(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn every_queue_a_mapping_reads_outlasts_a_batch_and_dead_letters_after_at_least_5_receives() {
    let t = template();
    let longest = number(&t["Parameters"]["Timeout"]["MaxValue"]);
    for (label, stack) in scenarios()
        .into_iter()
        .chain([("redrive on", resolve(&t, ON))])
    {
        let mappings = stack.of_type("AWS::Lambda::EventSourceMapping");
        assert!(!mappings.is_empty(), "{label}: the events queue's mapping");
        for (name, m) in mappings {
            let arn = m["Properties"]["EventSourceArn"].as_str().expect("an ARN");
            let queue = arn
                .strip_prefix('<')
                .and_then(|a| a.strip_suffix(".Arn>"))
                .unwrap_or_else(|| panic!("{label} {name}: {arn}"));
            let q = &stack.get(queue)["Properties"];
            // AWS: visibility at least 6 x the function timeout, for any timeout allowed.
            let visibility = number(&q["VisibilityTimeout"]);
            assert!(visibility >= 6 * longest, "{label} {queue}: {visibility}");
            assert!(visibility <= 43_200, "SQS allows at most 12 hours");
            let redrive = &q["RedrivePolicy"];
            assert!(
                number(&redrive["maxReceiveCount"]) >= 5,
                "{label} {queue}: {redrive}"
            );
            let dlq = redrive["deadLetterTargetArn"]
                .as_str()
                .and_then(|a| a.strip_prefix('<'))
                .and_then(|a| a.strip_suffix(".Arn>"))
                .unwrap_or_else(|| panic!("{label} {queue}: {redrive}"));
            let d = &stack.get(dlq)["Properties"];
            assert_eq!(d["SqsManagedSseEnabled"], true, "{label} {dlq}");
            assert_eq!(q["SqsManagedSseEnabled"], true, "{label} {queue}");
            // A moved message keeps its first enqueue time: the DLQ must keep it longer.
            let kept = |v: &Value| if v.is_null() { 345_600 } else { number(v) };
            assert!(
                kept(&d["MessageRetentionPeriod"]) >= kept(&q["MessageRetentionPeriod"]),
                "{label} {dlq}"
            );
            let (_, alarm) = stack
                .of_type("AWS::CloudWatch::Alarm")
                .into_iter()
                .find(|(_, a)| {
                    a["Properties"]["Dimensions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|d| d["Value"] == format!("<{dlq}.QueueName>"))
                })
                .unwrap_or_else(|| panic!("{label}: no alarm on {dlq}"));
            assert_eq!(
                alarm["Properties"]["MetricName"],
                "ApproximateNumberOfMessagesVisible"
            );
            assert_eq!(alarm["Properties"]["AlarmActions"], json!(["<AlarmTopic>"]));
            // Answered with batchItemFailures, and capped.
            let p = &m["Properties"];
            assert!(
                p["FunctionResponseTypes"]
                    .as_array()
                    .is_some_and(|t| t.contains(&json!("ReportBatchItemFailures"))),
                "{label} {name}"
            );
            let cap = number(&p["ScalingConfig"]["MaximumConcurrency"]);
            assert!((2..=1000).contains(&cap), "{label} {name}: {cap}");
            assert!(number(&p["BatchSize"]) <= 10, "{label} {name}");
        }
    }
}

#[test]
fn the_events_queue_is_the_rule_s_target_and_the_function_may_read_only_it_besides() {
    for (label, stack) in scenarios() {
        let m = &stack.get("EventsQueueMapping")["Properties"];
        assert_eq!(m["EventSourceArn"], "<EventsQueue.Arn>", "{label}");
        assert_eq!(m["FunctionName"], "<Function>", "{label}");
        let reads = sqs_reads_of(&stack, "<EventsQueue.Arn>");
        assert_eq!(reads.len(), 1, "{label}: {reads:?}");
        let mut actions: Vec<&str> = reads[0]["Action"]
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
            ],
            "{label}"
        );
        // The dead-letter queue of raw events is read by no mapping (a person moves its
        // messages back with start-message-move-task).
        assert!(
            sqs_reads_of(&stack, "<EventsDeadLetterQueue.Arn>").is_empty(),
            "{label}"
        );
        assert!(
            stack.outputs.contains_key("EventsDeadLetterQueueArn"),
            "{label}"
        );
        assert!(stack.outputs.contains_key("EventsQueueArn"), "{label}");
    }
}
