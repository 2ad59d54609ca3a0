//! Redrive (SPEC §5): failure records handled again, and SQS batches of them answered with
//! `batchItemFailures` only. A redrive never invokes the function (a record of an `all` run is
//! acknowledged, not re-run; nothing continues), so it cannot loop through the queue.

use super::{App, Failure, Invoked, Stops, finish, invocation_of};
use crate::event::redrive;
use crate::event::{self, Invocation};
use crate::outcome::{Error, Outcome, Report, SkipReason};
use crate::store::Stores;
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::time::Instant;

/// What the function answers Lambda: the result document, or, to an SQS batch, only the
/// messages that failed.
#[derive(Debug)]
pub enum Answer {
    Document(Report),
    Batch(BatchResponse),
}

impl Serialize for Answer {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        match self {
            Answer::Document(report) => report.serialize(s),
            Answer::Batch(batch) => batch.serialize(s),
        }
    }
}

impl Answer {
    /// The answer as compact JSON.
    pub fn to_json(&self) -> String {
        match self {
            Answer::Document(report) => report.to_json(),
            Answer::Batch(batch) => {
                serde_json::to_string(batch).unwrap_or_else(|_| "{\"batchItemFailures\":[]}".into())
            }
        }
    }
}

/// Lambda's partial batch response for SQS (`ReportBatchItemFailures`): the messages to leave
/// on the queue; every other message of the batch is deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

impl BatchResponse {
    fn of(ids: impl IntoIterator<Item = String>) -> Self {
        BatchResponse {
            batch_item_failures: ids
                .into_iter()
                .map(|item_identifier| ItemFailure { item_identifier })
                .collect(),
        }
    }

    /// Every message of the batch failed (the function cannot work: an invalid or unreadable
    /// configuration, or an event it cannot read).
    pub fn all_of(event: &Value) -> Self {
        let ids = event
            .get("Records")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("messageId").and_then(Value::as_str))
            .map(str::to_string);
        BatchResponse::of(ids)
    }
}

/// The answer to a redrive record of an `all` payload: acknowledged, not re-run (the repair
/// schedule covers it).
fn all_not_redriven() -> Report {
    tracing::info!("a failure record of an `all` run is acknowledged, not re-run");
    Report::from_results(
        vec![Outcome::skipped("all", None, SkipReason::AllNotRedriven)],
        vec![],
    )
}

/// Whether the payload runs `all`.
fn is_all(payload: &Value) -> bool {
    event::is_manual(payload) && payload.get("all").and_then(Value::as_bool) == Some(true)
}

impl<S: Stores> App<S> {
    /// Answers one Lambda invocation, whatever it carries: an SQS batch of failure records, a
    /// failure record, or an event or manual payload.
    pub async fn answer(&self, payload: &Value, invoked: &Invoked) -> Result<Answer, Failure> {
        if redrive::is_sqs_event(payload) {
            return Ok(Answer::Batch(self.batch(payload, invoked).await));
        }
        if redrive::is_failure_record(payload) {
            return self.redrive(payload, invoked).await.map(Answer::Document);
        }
        self.handle_invoked(payload, invoked)
            .await
            .map(Answer::Document)
    }

    /// One failure record: the payload inside it handled as if it had just arrived (the source
    /// is read again), answered as that payload's invocation asks. Never continues.
    pub async fn redrive(&self, record: &Value, invoked: &Invoked) -> Result<Report, Failure> {
        let inner = match redrive::innermost(record) {
            Ok(p) => p,
            Err(e) => return finish(Invocation::Event, Report::top_level(&e)),
        };
        if is_all(inner) {
            let report = all_not_redriven();
            self.metrics.emit(&report, 0);
            return finish(invocation_of(inner), report);
        }
        // No function ARN: whatever the payload, nothing invokes the function again.
        let invoked = Invoked {
            deadline: invoked.deadline,
            function_arn: None,
        };
        self.handle_invoked(inner, &invoked).await
    }

    /// An SQS batch (SPEC §5): each message handled in turn, a failure record redriven and any
    /// other body (an EventBridge event from the events queue, a manual payload) handled as the
    /// payload it is; the messages that failed (any failed result or top-level error, whatever
    /// `failOnError` says; a body that cannot be read; a message not started before the cutoff,
    /// or still in flight at the abandon point) are listed.
    async fn batch(&self, event: &Value, invoked: &Invoked) -> BatchResponse {
        let messages = match redrive::messages(event) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "SQS event not readable; every message stays on the queue");
                return BatchResponse::all_of(event);
            }
        };
        // As for `all`: stop starting records at the deadline less max(1 s, 10%), and drop the
        // one in flight halfway through that margin (SPEC §11), so that the batch is answered
        // before its deadline and SQS delivers the unfinished messages again.
        let stops = invoked.deadline.map(|d| Stops::new(d, Instant::now()));
        let mut failed = Vec::new();
        for m in messages {
            if stops.is_some_and(|s| Instant::now() >= s.cutoff) {
                tracing::warn!(message_id = %m.message_id, "not started before the cutoff; left on the queue");
                failed.push(m.message_id);
                continue;
            }
            let report = match &m.body {
                Err(e) => {
                    let report = Report::top_level(e);
                    self.metrics.emit(&report, 0);
                    report
                }
                Ok(body) => {
                    let run = Box::pin(self.message(body, invoked));
                    let done = match stops {
                        Some(s) => {
                            tokio::time::timeout_at(tokio::time::Instant::from_std(s.abandon), run)
                                .await
                                .ok()
                        }
                        None => Some(run.await),
                    };
                    match done {
                        Some(Ok(report) | Err(Failure(report))) => report,
                        None => {
                            // A write dropped mid-call may have happened: the redelivered
                            // record repeats it with the same version token (SPEC §8).
                            tracing::warn!(message_id = %m.message_id, "still in flight at the deadline; abandoned and left on the queue");
                            failed.push(m.message_id);
                            continue;
                        }
                    }
                }
            };
            let fails = report.error.is_some() || report.first_failure().is_some();
            tracing::info!(
                message_id = %m.message_id,
                status_code = report.status_code,
                failed = fails,
                document = %report.to_json(),
                "SQS message handled"
            );
            if fails {
                failed.push(m.message_id);
            }
        }
        BatchResponse::of(failed)
    }
}

impl<S: Stores> App<S> {
    /// One SQS message's body: a failure record is redriven (never continues); anything else is
    /// handled as if it had been invoked with it, an `all` payload included (it continues as a
    /// scheduled run does: the queue's message is then done, and the chain goes on by itself).
    async fn message(&self, body: &Value, invoked: &Invoked) -> Result<Report, Failure> {
        if redrive::is_failure_record(body) {
            self.redrive(body, invoked).await
        } else {
            self.handle_invoked(body, invoked).await
        }
    }
}

/// The answer of a container that cannot work (an invalid configuration): an SQS batch lists
/// every message; anything else gets the InvalidConfig document as its invocation asks.
pub fn cannot_work(error: &Error, payload: &Value) -> Result<Answer, Failure> {
    if redrive::is_sqs_event(payload) {
        return Ok(Answer::Batch(BatchResponse::all_of(payload)));
    }
    let inner = if redrive::is_failure_record(payload) {
        redrive::innermost(payload).unwrap_or(payload)
    } else {
        payload
    };
    finish(invocation_of(inner), Report::top_level(error)).map(Answer::Document)
}
