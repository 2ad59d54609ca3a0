//! The result document (SPEC §7): one `Outcome` per source × destination, the `Report` that
//! gathers them, and the status code it answers with. Its errors are `crate::error`'s, named
//! here too because every result carries one.

pub use crate::error::{AwsError, Error, ErrorBody, ErrorKind, RetryClass, classify, codes};
pub use crate::error::{is_retriable, is_throttle};
use serde::Serialize;

/// `status` of one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Replicated,
    Unchanged,
    Skipped,
    Deleted,
    Restored,
    Planned,
    Failed,
}

impl Status {
    /// The name in the result document, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Replicated => "replicated",
            Status::Unchanged => "unchanged",
            Status::Skipped => "skipped",
            Status::Deleted => "deleted",
            Status::Restored => "restored",
            Status::Planned => "planned",
            Status::Failed => "failed",
        }
    }
}

/// `action` of one result: what was (or would be) done to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Label,
    Kms,
    Tags,
    Description,
    Delete,
    Restore,
    None,
}

/// Why a result (or a whole event) was skipped: the `reason` of a `skipped` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The CloudTrail event records a call that failed (`detail.errorCode`).
    CallFailed,
    /// The event was caused by this function's own writes (loop prevention).
    SelfCaused,
    /// The event does not make a version current (AWSPENDING, a label other than AWSCURRENT).
    NotCurrent,
    /// The event changes nothing this function follows.
    NotAValueChange,
    /// The secret exists but has no current value yet (created without one).
    NoValue,
    /// No rule matches the secret (by name, or by tags).
    NoMatchingRule,
    /// The source's current version was written by a replicator and the rule does not chain.
    Replica,
    /// The destination would itself be a source of some rule in the same account and region.
    Loop,
    /// Another rule already writes this destination.
    DuplicateDestination,
    /// The source is scheduled for deletion.
    SourceDeleted,
    /// The destination does not follow deletions (`delete_with_source` off).
    DeleteSyncOff,
    /// The destination copies neither tags nor description.
    TagSyncOff,
    /// The destination is not owned by this source (never deleted).
    NotOwned,
    /// The destination does not exist.
    Absent,
    /// A failure record of an `all` run: acknowledged, not re-run (the repair schedule covers
    /// it).
    AllNotRedriven,
}

impl SkipReason {
    /// The name in the result document and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::CallFailed => "call_failed",
            SkipReason::SelfCaused => "self_caused",
            SkipReason::NotCurrent => "not_current",
            SkipReason::NotAValueChange => "not_a_value_change",
            SkipReason::NoValue => "no_value",
            SkipReason::NoMatchingRule => "no_matching_rule",
            SkipReason::Replica => "replica",
            SkipReason::Loop => "loop",
            SkipReason::DuplicateDestination => "duplicate_destination",
            SkipReason::SourceDeleted => "source_deleted",
            SkipReason::DeleteSyncOff => "delete_sync_off",
            SkipReason::TagSyncOff => "tag_sync_off",
            SkipReason::NotOwned => "not_owned",
            SkipReason::Absent => "absent",
            SkipReason::AllNotRedriven => "all_not_redriven",
        }
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Action {
    /// The name in the result document and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Label => "label",
            Action::Kms => "kms",
            Action::Tags => "tags",
            Action::Description => "description",
            Action::Delete => "delete",
            Action::Restore => "restore",
            Action::None => "none",
        }
    }

    /// Which action a result reports when several things were done to one destination: the
    /// one that says most about it (restore, create, update, label, kms, tags, description).
    pub fn rank(self) -> u8 {
        match self {
            Action::Delete => 9,
            Action::Restore => 8,
            Action::Create => 7,
            Action::Update => 6,
            Action::Label => 5,
            Action::Kms => 4,
            Action::Tags => 3,
            Action::Description => 2,
            Action::None => 0,
        }
    }

    /// The more telling of two actions.
    pub fn max(self, other: Action) -> Action {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

/// Where a result went.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Hash)]
pub struct DestinationRef {
    pub region: String,
    pub account: String,
    pub name: String,
}

/// One line of `results`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<DestinationRef>,
    pub status: Status,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<SkipReason>,
    pub status_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_class: Option<RetryClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Box<ErrorBody>>,
    /// Dry runs: the transformed value's size in bytes (a size, never a hash of the value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    /// Dry runs: whether the destination would change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_change: Option<bool>,
    /// Size of the value written (for metrics; a size, never the value).
    #[serde(skip)]
    pub bytes: Option<usize>,
    /// Replication lag of a value written (for metrics and logs, not in the document):
    /// milliseconds from the creation of the source version (`CreatedDate`) to the success of
    /// the write that made it current in the destination. `None` when nothing was written.
    #[serde(skip)]
    pub lag_ms: Option<u64>,
}

impl Outcome {
    /// A successful (or skipped, or planned) result.
    pub fn ok(
        source: impl Into<String>,
        destination: Option<DestinationRef>,
        status: Status,
        action: Action,
    ) -> Self {
        Outcome {
            source: source.into(),
            destination,
            status,
            action,
            reason: None,
            status_code: 200,
            version_id: None,
            duration_ms: None,
            retry_class: None,
            error: None,
            size: None,
            would_change: None,
            bytes: None,
            lag_ms: None,
        }
    }

    /// A skip, with its reason.
    pub fn skipped(
        source: impl Into<String>,
        destination: Option<DestinationRef>,
        reason: SkipReason,
    ) -> Self {
        Outcome {
            reason: Some(reason),
            ..Outcome::ok(source, destination, Status::Skipped, Action::None)
        }
    }

    /// A failure of one destination (or of the source before destinations were known).
    pub fn failed(
        source: impl Into<String>,
        destination: Option<DestinationRef>,
        action: Action,
        error: &Error,
    ) -> Self {
        Outcome {
            status_code: error.status_code(),
            retry_class: Some(error.retry_class()),
            error: Some(Box::new(error.body())),
            ..Outcome::ok(source, destination, Status::Failed, action)
        }
    }

    /// True for `failed`.
    pub fn is_failure(&self) -> bool {
        self.status == Status::Failed
    }
}

/// How many results an `all` document lists, and how many names of `remaining` (SPEC §6).
pub const MAX_LISTED: usize = 1000;

/// The most a Lambda error message may carry, so that a failure record always fits its queue.
pub const MAX_ERROR_MESSAGE: usize = 200 * 1024;

/// What caused an invocation's writes: the `Trigger` dimension of `ReplicationLag`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum Trigger {
    /// An event, a redriven failure record, a manual invocation naming secrets.
    #[default]
    Event,
    /// An `all` run (backfill or repair): its lag is the age of the secret's current version.
    All,
}

impl Trigger {
    /// The dimension value.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Event => "event",
            Trigger::All => "all",
        }
    }
}

/// The document every invocation produces.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub status_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_class: Option<RetryClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Box<ErrorBody>>,
    pub results: Vec<Outcome>,
    pub remaining: Vec<String>,
    /// `all`: every result counted by status (`unchanged` and `skipped` are counted, not listed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Box<std::collections::BTreeMap<&'static str, u64>>>,
    /// `all`: how many sources were not reached (`remaining` lists at most the first 1,000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_count: Option<usize>,
    /// `all`: whether this link started the next one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continued: Option<bool>,
    /// `all`: the cursor the next link starts from (or to pass on by hand after a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    /// `all`: a cursor from an earlier configuration restarted the chain from the first name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_reset: Option<bool>,
    /// What caused the writes (metrics only).
    #[serde(skip)]
    pub trigger: Trigger,
    /// `all`: the results counted in `summary` but not listed (`unchanged`, `skipped`, and any
    /// past the first 1,000), so that metrics count every result (metrics only).
    #[serde(skip)]
    pub unlisted: Option<Box<Vec<Outcome>>>,
}

/// The top-level `statusCode` of SPEC §7 for these results (and a top-level error beside them).
fn status_code_of(results: &[Outcome], beside: Option<u16>) -> u16 {
    let mut codes: Vec<u16> = results
        .iter()
        .filter(|o| o.is_failure())
        .map(|o| o.status_code)
        .collect();
    codes.extend(beside);
    match codes.first() {
        None => 200,
        Some(first) => {
            let same = codes.iter().all(|c| c == first);
            let failed_results = results.iter().filter(|o| o.is_failure()).count();
            if failed_results < results.len() && failed_results > 0 || !same {
                207
            } else {
                *first
            }
        }
    }
}

impl Report {
    /// A report of per-destination results; the top-level code follows SPEC §7.
    pub fn from_results(results: Vec<Outcome>, remaining: Vec<String>) -> Self {
        Report {
            status_code: status_code_of(&results, None),
            retry_class: None,
            error: None,
            results,
            remaining,
            summary: None,
            remaining_count: None,
            continued: None,
            resume: None,
            resume_reset: None,
            trigger: Trigger::Event,
            unlisted: None,
        }
    }

    /// An `all` document (SPEC §6): every status counted in `summary`; `unchanged` and
    /// `skipped` results counted, not listed; at most 1,000 results and 1,000 remaining names.
    pub fn of_all(results: Vec<Outcome>, remaining: Vec<String>) -> Self {
        let mut summary = std::collections::BTreeMap::new();
        for o in &results {
            *summary.entry(o.status.as_str()).or_insert(0) += 1;
        }
        let status_code = status_code_of(&results, None);
        let remaining_count = remaining.len();
        let (mut listed, mut unlisted): (Vec<Outcome>, Vec<Outcome>) = results
            .into_iter()
            .partition(|o| !matches!(o.status, Status::Unchanged | Status::Skipped));
        if listed.len() > MAX_LISTED {
            unlisted.extend(listed.drain(MAX_LISTED..));
        }
        let mut remaining = remaining;
        remaining.truncate(MAX_LISTED);
        Report {
            summary: Some(Box::new(summary)),
            remaining_count: Some(remaining_count),
            status_code,
            trigger: Trigger::All,
            unlisted: (!unlisted.is_empty()).then(|| Box::new(unlisted)),
            ..Report::from_results(listed, remaining)
        }
    }

    /// A failure before any destination was known (InvalidEvent, InvalidConfig, SourceNotFound).
    pub fn top_level(error: &Error) -> Self {
        Report {
            status_code: error.status_code(),
            retry_class: Some(error.retry_class()),
            error: Some(Box::new(error.body())),
            ..Report::from_results(Vec::new(), Vec::new())
        }
    }

    /// A top-level error beside the results (BackfillIncomplete, a continuation that could not
    /// start): the top-level code counts it with the failed results (SPEC §7).
    pub fn with_error(mut self, error: &Error) -> Self {
        self.status_code = status_code_of(&self.results, Some(error.status_code()));
        if self.results.iter().all(|o| !o.is_failure()) {
            self.status_code = error.status_code();
        }
        self.retry_class = Some(error.retry_class());
        self.error = Some(Box::new(error.body()));
        self
    }

    /// Every result, listed or not (what metrics count).
    pub fn all_results(&self) -> impl Iterator<Item = &Outcome> {
        self.results
            .iter()
            .chain(self.unlisted.iter().flat_map(|u| u.iter()))
    }

    /// The first failure's kind, if anything failed (Lambda's `errorType`). A BackfillIncomplete
    /// beside failed results yields to the first failed result's kind.
    pub fn first_failure(&self) -> Option<ErrorKind> {
        let first_result = self
            .results
            .iter()
            .find_map(|o| o.error.as_ref().map(|e| e.kind));
        match &self.error {
            Some(e) if e.kind == ErrorKind::BackfillIncomplete => first_result.or(Some(e.kind)),
            Some(e) => Some(e.kind),
            None => first_result,
        }
    }

    /// The document as compact JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain strings and numbers cannot fail; fall back to a minimal document
        // rather than panic if it ever did.
        serde_json::to_string(self)
            .unwrap_or_else(|_| format!("{{\"statusCode\":{}}}", self.status_code))
    }

    /// The document as a Lambda error message: at most `MAX_ERROR_MESSAGE` bytes, keeping the
    /// top-level fields and the first failed results (the rest counted in `summary`).
    pub fn to_error_message(&self) -> String {
        let full = self.to_json();
        if full.len() <= MAX_ERROR_MESSAGE {
            return full;
        }
        let mut short = self.clone();
        short.results.retain(Outcome::is_failure);
        short.remaining.clear();
        let mut summary = short.summary.clone().unwrap_or_else(|| {
            let mut m = std::collections::BTreeMap::new();
            for o in &self.results {
                *m.entry(o.status.as_str()).or_insert(0) += 1;
            }
            Box::new(m)
        });
        summary.entry("omitted").or_insert(0);
        short.summary = Some(summary);
        loop {
            let json = short.to_json();
            if json.len() <= MAX_ERROR_MESSAGE || short.results.is_empty() {
                return json;
            }
            let keep = short.results.len() / 2;
            let dropped = (short.results.len() - keep) as u64;
            short.results.truncate(keep);
            if let Some(m) = short.summary.as_mut() {
                *m.entry("omitted").or_insert(0) += dropped;
            }
        }
    }
}

#[cfg(test)]
mod tests;
