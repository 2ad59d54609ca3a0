//! Redrive (SPEC §5): Lambda's failure records (what the on-failure queue holds), and the SQS
//! batches Lambda delivers from the template's queues: the events queue (EventBridge events, or
//! manual payloads sent to it) and, when switched on, the failure queue's redrive mapping
//! (failure records). Pure: recognising and unwrapping only; the handler decides what each
//! payload does.
//!
//! A failure record, as Lambda writes it for an asynchronous invocation that failed
//! (<https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html>):
//! `{"version": "1.0", "timestamp", "requestContext": {"requestId", "functionArn", "condition",
//! "approximateInvokeCount"}, "requestPayload": <the event>, "responseContext"?,
//! "responsePayload"?}`; an event that aged out (`EventAgeExceeded`) never ran, so it has no
//! response.

use super::read_payload;
use crate::outcome::Error;
use serde_json::Value;

/// How many failure records may wrap one another (a redrive that failed and was recorded in
/// turn); the payload inside the innermost is handled.
pub const MAX_NESTING: usize = 3;

/// Whether the payload is a Lambda failure record: `version`, `requestContext.condition` (any
/// value) and `requestPayload`.
pub fn is_failure_record(payload: &Value) -> bool {
    payload.get("version").is_some()
        && payload
            .get("requestContext")
            .and_then(|c| c.get("condition"))
            .is_some()
        && payload.get("requestPayload").is_some()
}

/// The payload a failure record carries, unwrapped through nested records to the innermost
/// (at most [`MAX_NESTING`] records); deeper is InvalidEvent.
pub fn innermost(record: &Value) -> Result<&Value, Error> {
    let mut payload = record;
    let mut depth = 0;
    while is_failure_record(payload) {
        if depth == MAX_NESTING {
            return Err(Error::InvalidEvent(format!(
                "failure records nested deeper than {MAX_NESTING} levels"
            )));
        }
        depth += 1;
        payload = &payload["requestPayload"];
    }
    Ok(payload)
}

/// Whether the payload is an SQS event: a `Records` list whose records come from `aws:sqs`.
pub fn is_sqs_event(payload: &Value) -> bool {
    payload
        .get("Records")
        .and_then(Value::as_array)
        .is_some_and(|records| {
            !records.is_empty()
                && records
                    .iter()
                    .all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
        })
}

/// Whether an SQS record comes from the function's failure queue: the queue named in its
/// `eventSourceARN` carries `FailureQueue` in its name (the template's queue is named
/// `<stack>-FailureQueue-<suffix>` by CloudFormation; letter case, `-` and `_` ignored, so
/// `failure-queue` counts too). The function is told no queue ARN, so the name is what it has.
pub fn from_failure_queue(record: &Value) -> bool {
    record
        .get("eventSourceARN")
        .and_then(Value::as_str)
        .and_then(|arn| arn.rsplit(':').next())
        .is_some_and(|name| {
            let folded: String = name
                .chars()
                .filter(|c| *c != '-' && *c != '_')
                .flat_map(char::to_lowercase)
                .collect();
            folded.contains("failurequeue")
        })
}

/// One SQS message of a batch: its id (what `batchItemFailures` names) and its body, read as a
/// payload (or why it cannot be).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub message_id: String,
    pub body: Result<Value, Error>,
}

/// The messages of an SQS event, in order; each body is read with the payload's own depth
/// limit. A record without a `messageId` cannot be reported
/// failed (SQS would redeliver it anyway once its visibility timeout ends), so it is
/// InvalidEvent for the batch.
///
/// Each queue holds one kind of body (SPEC §5). Lambda's on-failure destination writes failure
/// records to the failure queue; EventBridge sends the matched event itself as the message body
/// to an SQS target that sets no `Input`, `InputPath` or `InputTransformer` (EventBridge user
/// guide, "Transforming target input"), and the template's rules set none. So a failure record
/// (its three fields, [`is_failure_record`]) is redriven, and any other JSON object is a payload
/// handled as if it had been invoked with it (an EventBridge event, or a manual payload an
/// operator sent to the events queue); its parser refuses what is neither. A message from the
/// failure queue ([`from_failure_queue`], by the record's `eventSourceARN`) must be a failure
/// record: anything else there fails. An SQS event inside a message is refused here: a message is
/// one payload, never a batch.
pub fn messages(event: &Value) -> Result<Vec<Message>, Error> {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::InvalidEvent("SQS event: no \"Records\" list".into()))?;
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let message_id = r
                .get("messageId")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| {
                    Error::InvalidEvent(format!("SQS event: record {i} has no \"messageId\""))
                })?
                .to_string();
            let body = match r.get("body").and_then(Value::as_str) {
                None => Err(Error::InvalidEvent(format!(
                    "SQS message {i}: no \"body\" text"
                ))),
                Some(text) => read_payload(text).and_then(|v| {
                    if from_failure_queue(r) && !is_failure_record(&v) {
                        Err(Error::InvalidEvent(format!(
                            "SQS message {i}: a message of the failure queue must be a Lambda \
                             failure record (version, requestContext, requestPayload)"
                        )))
                    } else if is_sqs_event(&v) {
                        Err(Error::InvalidEvent(format!(
                            "SQS message {i}: the body is an SQS event, not one payload"
                        )))
                    } else if v.is_object() {
                        Ok(v)
                    } else {
                        Err(Error::InvalidEvent(format!(
                            "SQS message {i}: the body is not a JSON object (an event, a manual \
                             payload or a Lambda failure record)"
                        )))
                    }
                }),
            };
            Ok(Message { message_id, body })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_failure_queue_holds_failure_records_only() {
        let from = |arn: &str| json!({"eventSourceARN": arn});
        for name in [
            "secret-replicator-FailureQueue-AbCdEf123456",
            "replicator-failure-queue",
            "replicator_failure_queue",
        ] {
            assert!(
                from_failure_queue(&from(&format!("arn:aws:sqs:us-east-1:111122223333:{name}"))),
                "{name}"
            );
        }
        for name in ["secret-replicator-EventsQueue-Gh7Jk9Lm2Np4", "failures", ""] {
            assert!(
                !from_failure_queue(&from(&format!("arn:aws:sqs:us-east-1:111122223333:{name}"))),
                "{name}"
            );
        }
        assert!(!from_failure_queue(&json!({})));
        // A manual payload is a message of the events queue, never of the failure queue.
        let manual = json!({"source": "manual", "secretId": "a"}).to_string();
        let batch = |queue: &str| {
            json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": manual,
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:111122223333:{queue}")}]})
        };
        let events = messages(&batch("secret-replicator-EventsQueue-X")).unwrap();
        assert!(events[0].body.is_ok());
        let failures = messages(&batch("secret-replicator-FailureQueue-X")).unwrap();
        assert!(
            matches!(&failures[0].body, Err(Error::InvalidEvent(m)) if m.contains("failure record"))
        );
    }

    fn record(payload: Value) -> Value {
        json!({
            "version": "1.0",
            "timestamp": "2026-12-03T10:00:00.000Z",
            "requestContext": {
                "requestId": "e4b46cbf-b738-4c2b-8880-a18cdf61200e",
                "functionArn": "arn:aws:lambda:us-east-1:111111111111:function:secret-replicator:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3
            },
            "requestPayload": payload,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorType": "Throttled", "errorMessage": "{}"}
        })
    }

    #[test]
    fn a_record_is_recognised_by_its_three_fields() {
        let manual = json!({"source": "manual", "secretId": "a"});
        assert!(is_failure_record(&record(manual.clone())));
        let mut aged = record(manual.clone());
        aged["requestContext"]["condition"] = json!("EventAgeExceeded");
        aged.as_object_mut().map(|o| {
            o.remove("responseContext");
            o.remove("responsePayload")
        });
        assert!(is_failure_record(&aged), "no response: it never ran");
        for missing in ["version", "requestPayload"] {
            let mut r = record(manual.clone());
            r.as_object_mut().map(|o| o.remove(missing));
            assert!(!is_failure_record(&r), "without {missing}");
        }
        let mut r = record(manual.clone());
        r["requestContext"] = json!({"requestId": "x"});
        assert!(!is_failure_record(&r), "without a condition");
        assert!(!is_failure_record(&manual));
    }

    #[test]
    fn nested_records_unwrap_to_the_innermost_payload_up_to_three_levels() {
        let inner = json!({"source": "manual", "secretId": "a"});
        let mut r = inner.clone();
        for levels in 1..=MAX_NESTING {
            r = record(r);
            assert_eq!(innermost(&r).unwrap(), &inner, "{levels} levels");
        }
        let err = innermost(&record(r)).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidEvent(m) if m.contains("deeper than 3")),
            "{err:?}"
        );
        assert_eq!(innermost(&inner).unwrap(), &inner, "not a record: itself");
    }

    #[test]
    fn an_sqs_event_is_recognised_by_its_records_source() {
        let sqs = json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": "{}"}]});
        assert!(is_sqs_event(&sqs));
        assert!(!is_sqs_event(&json!({"Records": []})));
        assert!(!is_sqs_event(
            &json!({"Records": [{"eventSource": "aws:sns"}]})
        ));
        assert!(!is_sqs_event(
            &json!({"Records": [{"eventSource": "aws:sqs"}, {"eventSource": "aws:s3"}]})
        ));
        assert!(!is_sqs_event(&json!({"source": "manual"})));
    }

    #[test]
    fn messages_carry_their_id_and_the_record_or_why_not() {
        let good = record(json!({"source": "manual", "secretId": "a"})).to_string();
        let event = json!({"Records": [
            {"eventSource": "aws:sqs", "messageId": "m1", "body": good},
            {"eventSource": "aws:sqs", "messageId": "m2", "body": "[1, 2]"},
            {"eventSource": "aws:sqs", "messageId": "m3", "body": "not json"},
            {"eventSource": "aws:sqs", "messageId": "m4"},
            {"eventSource": "aws:sqs", "messageId": "m5", "body": format!("{}{}", "[".repeat(100), "]".repeat(100))},
        ]});
        let m = messages(&event).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].message_id, "m1");
        assert!(m[0].body.is_ok());
        for (i, expected) in [
            (1, "not a JSON object"),
            (2, "not valid JSON"),
            (3, "no \"body\""),
            (4, "deeper than the limit"),
        ] {
            let Err(Error::InvalidEvent(why)) = &m[i].body else {
                panic!("message {i}: {:?}", m[i].body);
            };
            assert!(why.contains(expected), "message {i}: {why}");
        }
        // An EventBridge event or a manual payload is a body like a failure record; a batch
        // inside a message is not.
        let event = json!({"version": "0", "detail-type": "Secret Label Updated", "source": "aws.secretsmanager", "detail": {}}).to_string();
        let manual = json!({"source": "manual", "secretId": "a"}).to_string();
        let inner =
            json!({"Records": [{"eventSource": "aws:sqs", "messageId": "x", "body": manual}]})
                .to_string();
        let m = messages(&json!({"Records": [
            {"eventSource": "aws:sqs", "messageId": "e", "body": event},
            {"eventSource": "aws:sqs", "messageId": "m", "body": manual},
            {"eventSource": "aws:sqs", "messageId": "b", "body": inner},
        ]}))
        .unwrap();
        assert!(m[0].body.as_ref().is_ok_and(|v| !is_failure_record(v)));
        assert!(m[1].body.is_ok());
        assert!(
            matches!(&m[2].body, Err(Error::InvalidEvent(w)) if w.contains("an SQS event")),
            "{:?}",
            m[2].body
        );
        let no_id = json!({"Records": [{"eventSource": "aws:sqs", "body": good}]});
        assert!(matches!(messages(&no_id), Err(Error::InvalidEvent(m)) if m.contains("messageId")));
    }
}
