//! The one log line per destination outcome (SPEC §10): queried fields as top-level keys with
//! the values the result document uses; never a value.

use super::Mode;
use crate::outcome::{Outcome, RetryClass, SkipReason};

/// One log line per destination outcome (SPEC §10), its queried fields top-level keys of the
/// JSON line (`logging`) with the values the result document uses: `status`, `action`,
/// `reason`, `error_kind`, `source` (the name; `source_arn` as in the document), `destination`
/// (the name), `region` and `account` (the destination's), `duration_ms`, `lag_ms` and
/// `trigger` (a write), `status_code`, `retry_class`, `error_code` (AWS's), `error` (the
/// message, which names resources, never a value). Failures log at WARN, the rest at INFO.
pub fn log_outcome(source_name: &str, o: &Outcome) {
    log_outcome_in(source_name, o, None);
}

/// [`log_outcome`] of a destination job: a write's line says which run it belongs to
/// (`trigger`: `all` for an `all` run, `event` otherwise, as the `ReplicationLag` metric).
pub(crate) fn log_outcome_in(source_name: &str, o: &Outcome, mode: Option<Mode>) {
    let d = o.destination.as_ref();
    let destination = d.map(|d| d.name.as_str());
    let region = d.map(|d| d.region.as_str());
    let account = d.map(|d| d.account.as_str());
    let status = o.status.as_str();
    let action = o.action.as_str();
    let reason = o.reason.map(SkipReason::as_str);
    let trigger = o
        .lag_ms
        .and(mode)
        .map(|m| if m == Mode::Compare { "all" } else { "event" });
    match &o.error {
        Some(e) => tracing::warn!(
            source = source_name,
            source_arn = %o.source,
            destination,
            region,
            account,
            status,
            action,
            status_code = o.status_code,
            retry_class = o.retry_class.map(|c| match c {
                RetryClass::Permanent => "permanent",
                RetryClass::Retriable => "retriable",
            }),
            error_kind = e.kind.as_str(),
            error_code = e.code.as_deref(),
            error = %e.message,
            duration_ms = o.duration_ms,
            "destination outcome"
        ),
        None => tracing::info!(
            source = source_name,
            source_arn = %o.source,
            destination,
            region,
            account,
            status,
            action,
            reason,
            status_code = o.status_code,
            duration_ms = o.duration_ms,
            lag_ms = o.lag_ms,
            trigger,
            version_id = o.version_id.as_deref(),
            "destination outcome"
        ),
    }
}
