//! CloudWatch metrics as Embedded Metric Format log lines (no API calls), namespace
//! `SecretReplicator` (SPEC §10). Dimensions are low-cardinality only (status, error kind,
//! destination region, trigger, reason): never a secret name, never a value.
//!
//! Every metric this module can emit, with its unit and dimension sets, is listed in
//! [`CATALOGUE`]; `template.yaml`'s alarms and dashboard use only these (`tests/alarms.rs` and
//! `tests/observability.rs` prove it by parsing the lines the function prints).
//!
//! | metric | unit | dimension sets | from |
//! |---|---|---|---|
//! | `Replications` | Count | `[Status]`, `[Status, DestinationRegion]` | every result (a top-level error counts as one `failed`) |
//! | `Failures` | Count | `[]`, `[ErrorKind]`, `[ErrorKind, DestinationRegion]` | every failed result, and a top-level error |
//! | `ReplicationLatency` | Milliseconds | `[]`, `[DestinationRegion]` | `Outcome::duration_ms` |
//! | `ReplicationLag` | Milliseconds | `[Trigger]`, `[Trigger, DestinationRegion]` | `Outcome::lag_ms`: the source version's `CreatedDate` to the write's success |
//! | `TransformedBytes` | Bytes | `[]`, `[DestinationRegion]` | `Outcome::bytes` (the size written, never the value) |
//! | `ThrottledAttempts` | Count | `[]` | AWS call attempts answered with throttling (the SDK retries them), counted by `aws::interceptors::ThrottleCounter` |
//! | `BackfillRemaining` | Count | `[]` | the `remainingCount` of an `all` invocation |
//! | `BackfillRestarts` | Count | `[]` | an `all` chain restarted under a new configuration |
//! | `ConfigLoadFailures` | Count | `[Reason]` | a configuration load (the first or a reload) that failed: `Invalid` (read, and invalid) or `Unreadable` (the read failed) |
//!
//! The `[DestinationRegion]` sets appear only on lines about a destination; `[]` is the
//! dimensionless total an alarm can watch.
//!
//! Lambda drops a JSON line below the function's log level, and files a line as INFO unless it
//! has a valid `level` and an RFC 3339 `timestamp` (`logging.rs`). Every line here therefore
//! carries `level` = the threshold in force and `timestamp`, so no log level drops a metric.

use crate::logging::LogLevel;
use crate::outcome::{Error, ErrorKind, Outcome, Report, Status, Trigger};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The metric namespace.
pub const NAMESPACE: &str = "SecretReplicator";

/// Metric names.
pub mod name {
    /// Results, by status (and destination region).
    pub const REPLICATIONS: &str = "Replications";
    /// Failed results and top-level errors, in total, by error kind (and destination region).
    pub const FAILURES: &str = "Failures";
    /// Time spent on one destination, from the result's `durationMs`.
    pub const LATENCY: &str = "ReplicationLatency";
    /// From the creation of the source version written to the destination write's success:
    /// the recovery point an operator watches.
    pub const LAG: &str = "ReplicationLag";
    /// Size of the transformed value written (or planned), in bytes.
    pub const TRANSFORMED_BYTES: &str = "TransformedBytes";
    /// AWS call attempts answered with throttling (each one retried by the SDK while attempts
    /// remain; the ones that run out surface as `Failures` with `ErrorKind` `Throttled`).
    pub const THROTTLED_ATTEMPTS: &str = "ThrottledAttempts";
    /// Sources an `all` invocation did not reach (its `remainingCount`).
    pub const BACKFILL_REMAINING: &str = "BackfillRemaining";
    /// `all` chains that restarted from the first name because the configuration changed.
    pub const BACKFILL_RESTARTS: &str = "BackfillRestarts";
    /// Configuration loads that failed, the first one included.
    pub const CONFIG_LOAD_FAILURES: &str = "ConfigLoadFailures";
}

/// Dimension names.
pub mod dim {
    /// `replicated`, `unchanged`, `skipped`, `deleted`, `restored`, `planned`, `failed`.
    pub const STATUS: &str = "Status";
    /// The error kinds of SPEC §7 (`AccessDenied`, `Throttled`, ...).
    pub const ERROR_KIND: &str = "ErrorKind";
    /// The destination's region (`us-west-2`).
    pub const DESTINATION_REGION: &str = "DestinationRegion";
    /// `event` (events, redrives, manual invocations naming secrets) or `all`.
    pub const TRIGGER: &str = "Trigger";
    /// Why a configuration load failed: `Invalid` or `Unreadable`.
    pub const REASON: &str = "Reason";
}

/// The values of the `Reason` dimension of `ConfigLoadFailures`.
pub mod reason {
    /// The document (or a `secret:` transform) was read and is invalid.
    pub const INVALID: &str = "Invalid";
    /// Reading it failed (throttled, timed out, 5xx, not found, denied): tried again later.
    pub const UNREADABLE: &str = "Unreadable";
}

/// One metric the code emits: name, unit and every dimension set it is published under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: &'static str,
    pub unit: &'static str,
    pub dimension_sets: &'static [&'static [&'static str]],
}

/// Every metric this module emits.
pub const CATALOGUE: &[MetricSpec] = &[
    MetricSpec {
        name: name::REPLICATIONS,
        unit: "Count",
        dimension_sets: &[&[dim::STATUS], &[dim::STATUS, dim::DESTINATION_REGION]],
    },
    MetricSpec {
        name: name::FAILURES,
        unit: "Count",
        dimension_sets: &[
            &[],
            &[dim::ERROR_KIND],
            &[dim::ERROR_KIND, dim::DESTINATION_REGION],
        ],
    },
    MetricSpec {
        name: name::LATENCY,
        unit: "Milliseconds",
        dimension_sets: &[&[], &[dim::DESTINATION_REGION]],
    },
    MetricSpec {
        name: name::LAG,
        unit: "Milliseconds",
        dimension_sets: &[&[dim::TRIGGER], &[dim::TRIGGER, dim::DESTINATION_REGION]],
    },
    MetricSpec {
        name: name::TRANSFORMED_BYTES,
        unit: "Bytes",
        dimension_sets: &[&[], &[dim::DESTINATION_REGION]],
    },
    MetricSpec {
        name: name::THROTTLED_ATTEMPTS,
        unit: "Count",
        dimension_sets: &[&[]],
    },
    MetricSpec {
        name: name::BACKFILL_REMAINING,
        unit: "Count",
        dimension_sets: &[&[]],
    },
    MetricSpec {
        name: name::BACKFILL_RESTARTS,
        unit: "Count",
        dimension_sets: &[&[]],
    },
    MetricSpec {
        name: name::CONFIG_LOAD_FAILURES,
        unit: "Count",
        dimension_sets: &[&[dim::REASON]],
    },
];

/// EMF allows at most 100 values per metric in one document.
const MAX_VALUES: usize = 100;

/// When a line was written and the log level it carries (the threshold in force).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Milliseconds since the epoch (EMF's `Timestamp`; `timestamp` is the same instant).
    pub ms: u64,
    pub level: LogLevel,
}

impl Stamp {
    /// Now, at `level`.
    pub fn now(level: LogLevel) -> Stamp {
        Stamp {
            ms: now_ms(),
            level,
        }
    }
}

/// Writes EMF lines to stdout (where Lambda collects them), or nothing when disabled (CLI).
#[derive(Debug, Clone, Copy)]
pub struct Metrics {
    pub enabled: bool,
    /// The log level Lambda filters by (`AWS_LAMBDA_LOG_LEVEL`): every line carries it.
    pub level: LogLevel,
}

impl Metrics {
    /// No metric lines (the CLI, tests).
    pub const OFF: Metrics = Metrics {
        enabled: false,
        level: LogLevel::Info,
    };

    /// Metric lines on stdout, stamped with the threshold `level`.
    pub fn stdout(level: LogLevel) -> Metrics {
        Metrics {
            enabled: true,
            level,
        }
    }

    fn print(&self, lines: impl IntoIterator<Item = String>) {
        for line in lines {
            println!("{line}");
        }
    }

    /// Prints the lines of [`report_lines`] and of [`throttle_lines`] (`throttled`: the
    /// attempts answered with throttling during the invocation).
    pub fn emit(&self, report: &Report, throttled: u64) {
        if !self.enabled {
            return;
        }
        let stamp = Stamp::now(self.level);
        self.print(
            report_lines(report, stamp)
                .into_iter()
                .chain(throttle_lines(stamp, throttled)),
        );
    }

    /// An `all` chain restarted from the first name under a new configuration.
    pub fn backfill_restarted(&self) {
        if self.enabled {
            self.print([backfill_restart_line(Stamp::now(self.level))]);
        }
    }

    /// A configuration load failed with `error` (invalid, or unreadable).
    pub fn config_load_failed(&self, error: &Error) {
        if self.enabled {
            self.print([config_load_failed_line(
                Stamp::now(self.level),
                config_failure_reason(error),
            )]);
        }
    }
}

/// The `Reason` of a failed configuration load: `Invalid` when the document was read and is
/// invalid, `Unreadable` when reading it failed.
pub fn config_failure_reason(error: &Error) -> &'static str {
    if error.kind() == ErrorKind::InvalidConfig {
        reason::INVALID
    } else {
        reason::UNREADABLE
    }
}

/// The EMF lines describing one invocation's result document (every result, listed or not):
/// - `Replications` per (status, destination region): one line per distinct pair;
/// - `Failures` per (error kind, destination region);
/// - `ReplicationLatency` and `TransformedBytes` per destination region, as value arrays;
/// - `ReplicationLag` per destination region, under the report's trigger;
/// - `BackfillRemaining` for an `all` document.
///
/// Results without a destination (a skipped event, a source that could not be read) carry no
/// `DestinationRegion` and are published only under the sets without it.
pub fn report_lines(report: &Report, stamp: Stamp) -> Vec<String> {
    let mut statuses: BTreeMap<(&str, Option<&str>), u64> = BTreeMap::new();
    let mut failures: BTreeMap<(&str, Option<&str>), u64> = BTreeMap::new();
    let mut sizes: BTreeMap<Option<&str>, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
    let mut lags: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for o in report.all_results() {
        let region = region_of(o);
        *statuses.entry((status_name(o.status), region)).or_default() += 1;
        if let Some(e) = &o.error {
            *failures.entry((e.kind.as_str(), region)).or_default() += 1;
        }
        let (latency, bytes) = sizes.entry(region).or_default();
        if let Some(ms) = o.duration_ms {
            latency.push(ms);
        }
        if let Some(b) = o.bytes {
            bytes.push(b as u64);
        }
        if let (Some(lag), Some(r)) = (o.lag_ms, region) {
            lags.entry(r).or_default().push(lag);
        }
    }
    if let Some(e) = &report.error {
        *statuses
            .entry((status_name(Status::Failed), None))
            .or_default() += 1;
        *failures.entry((e.kind.as_str(), None)).or_default() += 1;
    }

    let mut lines = Vec::new();
    for ((status, region), n) in statuses {
        let mut dims = vec![(dim::STATUS, status)];
        let mut sets: Vec<Vec<&str>> = vec![vec![dim::STATUS]];
        if let Some(r) = region {
            dims.push((dim::DESTINATION_REGION, r));
            sets.push(vec![dim::STATUS, dim::DESTINATION_REGION]);
        }
        lines.push(document(
            stamp,
            &dims,
            &sets,
            &[(name::REPLICATIONS, "Count", json!(n))],
        ));
    }
    for ((kind, region), n) in failures {
        let mut dims = vec![(dim::ERROR_KIND, kind)];
        let mut sets: Vec<Vec<&str>> = vec![vec![], vec![dim::ERROR_KIND]];
        if let Some(r) = region {
            dims.push((dim::DESTINATION_REGION, r));
            sets.push(vec![dim::ERROR_KIND, dim::DESTINATION_REGION]);
        }
        lines.push(document(
            stamp,
            &dims,
            &sets,
            &[(name::FAILURES, "Count", json!(n))],
        ));
    }
    for (region, (latency, bytes)) in sizes {
        let mut dims = Vec::new();
        let mut sets: Vec<Vec<&str>> = vec![vec![]];
        if let Some(r) = region {
            dims.push((dim::DESTINATION_REGION, r));
            sets.push(vec![dim::DESTINATION_REGION]);
        }
        let series = [
            (name::LATENCY, "Milliseconds", latency.as_slice()),
            (name::TRANSFORMED_BYTES, "Bytes", bytes.as_slice()),
        ];
        lines.extend(value_documents(stamp, &dims, &sets, &series));
    }
    let trigger = report.trigger.as_str();
    for (region, lag) in lags {
        let dims = [(dim::TRIGGER, trigger), (dim::DESTINATION_REGION, region)];
        let sets = [
            vec![dim::TRIGGER],
            vec![dim::TRIGGER, dim::DESTINATION_REGION],
        ];
        let series = [(name::LAG, "Milliseconds", lag.as_slice())];
        lines.extend(value_documents(stamp, &dims, &sets, &series));
    }
    if let (Trigger::All, Some(n)) = (report.trigger, report.remaining_count) {
        lines.push(document(
            stamp,
            &[],
            &[vec![]],
            &[(name::BACKFILL_REMAINING, "Count", json!(n))],
        ));
    }
    lines
}

/// Value arrays under one set of dimensions, split so that no document holds more than 100
/// values of a metric.
fn value_documents(
    stamp: Stamp,
    dims: &[(&str, &str)],
    sets: &[Vec<&str>],
    series: &[(&str, &str, &[u64])],
) -> Vec<String> {
    let longest = series.iter().map(|(_, _, v)| v.len()).max().unwrap_or(0);
    (0..longest.div_ceil(MAX_VALUES))
        .map(|i| {
            let mut metrics = Vec::new();
            for (metric, unit, values) in series {
                let chunk: Vec<u64> = values
                    .iter()
                    .skip(i * MAX_VALUES)
                    .take(MAX_VALUES)
                    .copied()
                    .collect();
                match chunk.as_slice() {
                    [] => {}
                    [one] => metrics.push((*metric, *unit, json!(one))),
                    _ => metrics.push((*metric, *unit, json!(chunk))),
                }
            }
            document(stamp, dims, sets, &metrics)
        })
        .collect()
}

/// `ConfigLoadFailures` = 1 with its `Reason` (`Invalid` or `Unreadable`).
pub fn config_load_failed_line(stamp: Stamp, reason: &str) -> String {
    document(
        stamp,
        &[(dim::REASON, reason)],
        &[vec![dim::REASON]],
        &[(name::CONFIG_LOAD_FAILURES, "Count", json!(1))],
    )
}

/// `BackfillRestarts` 1, dimensionless.
pub fn backfill_restart_line(stamp: Stamp) -> String {
    document(
        stamp,
        &[],
        &[vec![]],
        &[(name::BACKFILL_RESTARTS, "Count", json!(1))],
    )
}

/// `ThrottledAttempts` (`n`, taken from `aws::interceptors::ThrottleCounter`) as one line; none when nothing
/// was throttled.
pub fn throttle_lines(stamp: Stamp, n: u64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    vec![document(
        stamp,
        &[],
        &[vec![]],
        &[(name::THROTTLED_ATTEMPTS, "Count", json!(n))],
    )]
}

/// One EMF document: `level` and `timestamp` for Lambda's log filter, `dims` the dimension
/// values (root members), `sets` the dimension sets every metric in it is published under,
/// `metrics` (name, unit, value or value array).
fn document(
    stamp: Stamp,
    dims: &[(&str, &str)],
    sets: &[Vec<&str>],
    metrics: &[(&str, &str, Value)],
) -> String {
    let mut doc = Map::new();
    doc.insert("level".into(), json!(stamp.level.as_str()));
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(stamp.ms);
    doc.insert("timestamp".into(), json!(crate::time::format_rfc3339(at)));
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": stamp.ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": sets,
                "Metrics": metrics
                    .iter()
                    .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
                    .collect::<Vec<_>>(),
            }]
        }),
    );
    for (k, v) in dims {
        doc.insert((*k).into(), json!(v));
    }
    for (name, _, value) in metrics {
        doc.insert((*name).into(), value.clone());
    }
    Value::Object(doc).to_string()
}

fn region_of(o: &Outcome) -> Option<&str> {
    o.destination.as_ref().map(|d| d.region.as_str())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The status's name in the result document (and the `Status` dimension).
pub fn status_name(s: Status) -> &'static str {
    s.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Action, AwsError, DestinationRef, Error, ErrorKind};
    use std::collections::BTreeSet;

    fn dest(region: &str, name: &str) -> Option<DestinationRef> {
        Some(DestinationRef {
            region: region.into(),
            account: "222222222222".into(),
            name: name.into(),
        })
    }

    fn aws(kind: ErrorKind) -> Error {
        Error::Aws(AwsError {
            kind,
            service: "secretsmanager",
            operation: "PutSecretValue",
            code: "X".into(),
            message: "m".into(),
        })
    }

    fn replicated(region: &str, name: &str, ms: u64, bytes: usize) -> Outcome {
        let mut o = Outcome::ok(
            "arn:src",
            dest(region, name),
            Status::Replicated,
            Action::Update,
        );
        o.duration_ms = Some(ms);
        o.bytes = Some(bytes);
        o.lag_ms = Some(ms * 10);
        o
    }

    fn at(ms: u64) -> Stamp {
        Stamp {
            ms,
            level: LogLevel::Info,
        }
    }

    fn parse(lines: &[String]) -> Vec<Value> {
        lines
            .iter()
            .map(|l| {
                assert!(!l.contains('\n'), "one line per document: {l}");
                serde_json::from_str(l).expect("EMF line is JSON")
            })
            .collect()
    }

    /// Checks the EMF rules every document must satisfy, returns (metric, dimension set) pairs.
    fn validate(doc: &Value) -> Vec<(String, Vec<String>)> {
        let aws = &doc["_aws"];
        let ms = aws["Timestamp"].as_u64().expect("Timestamp");
        // Lambda's log filter: a valid level and an RFC 3339 timestamp (the same instant).
        assert!(
            LogLevel::parse(doc["level"].as_str().expect("level")).is_some(),
            "{doc}"
        );
        let ts = doc["timestamp"].as_str().expect("timestamp");
        let parsed = crate::time::parse_rfc3339(ts).expect("RFC 3339 timestamp");
        assert_eq!(
            parsed
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            ms / 1000,
            "{doc}"
        );
        let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
        let mut out = Vec::new();
        for d in directives {
            assert_eq!(d["Namespace"], NAMESPACE);
            let sets = d["Dimensions"].as_array().expect("dimension sets");
            assert!(!sets.is_empty());
            for m in d["Metrics"].as_array().expect("metrics") {
                let name = m["Name"].as_str().unwrap();
                let spec = CATALOGUE
                    .iter()
                    .find(|s| s.name == name)
                    .unwrap_or_else(|| panic!("{name} not in CATALOGUE"));
                assert_eq!(m["Unit"], spec.unit, "{name}");
                let value = &doc[name];
                match value {
                    Value::Number(_) => {}
                    Value::Array(a) => {
                        assert!(!a.is_empty() && a.len() <= MAX_VALUES);
                        assert!(a.iter().all(Value::is_number));
                    }
                    _ => panic!("{name}: value {value}"),
                }
                for set in sets {
                    let set: Vec<String> = set
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|k| k.as_str().unwrap().to_string())
                        .collect();
                    for k in &set {
                        assert!(doc[k].is_string(), "dimension {k} has no value in {doc}");
                    }
                    assert!(
                        spec.dimension_sets
                            .iter()
                            .any(|s| s.iter().copied().eq(set.iter().map(String::as_str))),
                        "{name} under undeclared dimensions {set:?}"
                    );
                    out.push((name.to_string(), set));
                }
            }
        }
        out
    }

    fn sum(docs: &[Value], metric: &str, dims: &[(&str, &str)]) -> f64 {
        docs.iter()
            .filter(|d| d.get(metric).is_some())
            .filter(|d| dims.iter().all(|(k, v)| d[*k] == *v))
            .map(|d| match &d[metric] {
                Value::Array(a) => a.iter().map(|v| v.as_f64().unwrap()).sum(),
                v => v.as_f64().unwrap(),
            })
            .sum()
    }

    #[test]
    fn a_mixed_report_counts_statuses_failures_latency_and_size() {
        let mut failed = Outcome::failed(
            "arn:src",
            dest("eu-west-1", "dr/app/db"),
            Action::Update,
            &aws(ErrorKind::AccessDenied),
        );
        failed.duration_ms = Some(7);
        let report = Report::from_results(
            vec![
                replicated("us-west-2", "dr/app/db", 14, 120),
                replicated("us-west-2", "dr/app/other", 20, 80),
                failed,
                Outcome::skipped("arn:src", None, crate::outcome::SkipReason::Replica),
            ],
            vec![],
        );
        let docs = parse(&report_lines(&report, at(1_700_000_000_000)));
        for d in &docs {
            validate(d);
        }
        assert_eq!(
            sum(
                &docs,
                name::REPLICATIONS,
                &[("Status", "replicated"), ("DestinationRegion", "us-west-2")]
            ),
            2.0
        );
        assert_eq!(sum(&docs, name::REPLICATIONS, &[("Status", "failed")]), 1.0);
        assert_eq!(
            sum(&docs, name::REPLICATIONS, &[("Status", "skipped")]),
            1.0
        );
        assert_eq!(sum(&docs, name::FAILURES, &[]), 1.0);
        assert_eq!(
            sum(
                &docs,
                name::FAILURES,
                &[
                    ("ErrorKind", "AccessDenied"),
                    ("DestinationRegion", "eu-west-1")
                ]
            ),
            1.0
        );
        assert_eq!(sum(&docs, name::LATENCY, &[]), 41.0);
        assert_eq!(
            sum(&docs, name::LATENCY, &[("DestinationRegion", "us-west-2")]),
            34.0
        );
        assert_eq!(sum(&docs, name::TRANSFORMED_BYTES, &[]), 200.0);
        assert!(
            docs.iter()
                .all(|d| d["_aws"]["Timestamp"] == 1_700_000_000_000u64)
        );
    }

    #[test]
    fn no_secret_name_or_account_reaches_a_metric() {
        let report = Report::from_results(
            vec![replicated("us-west-2", "dr/very/secret-name", 3, 10)],
            vec![],
        );
        for line in report_lines(&report, at(0)) {
            assert!(!line.contains("secret-name"), "{line}");
            assert!(!line.contains("arn:src"), "{line}");
            assert!(!line.contains("222222222222"), "{line}");
        }
    }

    #[test]
    fn a_top_level_error_is_a_failure_without_region() {
        let report = Report::top_level(&Error::SourceNotFound("app/db".into()));
        let docs = parse(&report_lines(&report, at(0)));
        let pairs: BTreeSet<_> = docs.iter().flat_map(validate).collect();
        assert!(pairs.contains(&(name::FAILURES.to_string(), vec![])));
        assert!(pairs.contains(&(name::FAILURES.to_string(), vec!["ErrorKind".to_string()])));
        assert!(
            !pairs
                .iter()
                .any(|(_, set)| set.iter().any(|k| k == "DestinationRegion"))
        );
        assert_eq!(
            sum(&docs, name::FAILURES, &[("ErrorKind", "SourceNotFound")]),
            1.0
        );
        assert_eq!(sum(&docs, name::REPLICATIONS, &[("Status", "failed")]), 1.0);
        assert!(
            !report_lines(&report, at(0))
                .iter()
                .any(|l| l.contains("app/db"))
        );
    }

    #[test]
    fn more_than_100_values_are_split_across_documents() {
        let results = (0..250)
            .map(|i| replicated("us-west-2", &format!("n{i}"), i, 1))
            .collect();
        let report = Report::from_results(results, vec![]);
        let docs = parse(&report_lines(&report, at(0)));
        for d in &docs {
            validate(d);
        }
        let latency_docs = docs
            .iter()
            .filter(|d| d.get(name::LATENCY).is_some())
            .count();
        assert_eq!(latency_docs, 3);
        assert_eq!(sum(&docs, name::LATENCY, &[]), (0..250).sum::<u64>() as f64);
        assert_eq!(sum(&docs, name::TRANSFORMED_BYTES, &[]), 250.0);
    }

    #[test]
    fn an_empty_report_emits_nothing() {
        assert!(
            report_lines(
                &Report::from_results(vec![], vec![]),
                Stamp::now(LogLevel::Info)
            )
            .is_empty()
        );
    }

    #[test]
    fn config_load_lines_carry_their_reason_and_throttle_lines_are_dimensionless() {
        let doc = &parse(&[config_load_failed_line(at(5), reason::INVALID)])[0];
        assert_eq!(
            validate(doc),
            vec![(
                name::CONFIG_LOAD_FAILURES.to_string(),
                vec![dim::REASON.to_string()]
            )]
        );
        assert_eq!(doc[name::CONFIG_LOAD_FAILURES], 1);
        assert_eq!(doc[dim::REASON], "Invalid");

        let counter = crate::aws::interceptors::ThrottleCounter::default();
        counter.clone().record();
        counter.record();
        let docs = parse(&throttle_lines(at(5), counter.take()));
        assert_eq!(counter.take(), 0);
        assert_eq!(docs.len(), 1);
        assert_eq!(
            validate(&docs[0]),
            vec![(name::THROTTLED_ATTEMPTS.to_string(), vec![])]
        );
        assert_eq!(docs[0][name::THROTTLED_ATTEMPTS].as_u64(), Some(2));
        assert!(throttle_lines(at(5), 0).is_empty());
    }

    #[test]
    fn every_catalogued_metric_is_emitted_somewhere() {
        let mut failed = Outcome::failed(
            "s",
            dest("us-west-2", "d"),
            Action::Update,
            &aws(ErrorKind::Throttled),
        );
        failed.duration_ms = Some(1);
        let report = Report::from_results(vec![replicated("us-west-2", "d", 1, 1), failed], vec![]);
        let mut lines = report_lines(&report, at(0));
        lines.extend(report_lines(
            &Report::of_all(vec![], vec!["n".into()]),
            at(0),
        ));
        lines.extend(throttle_lines(at(0), 1));
        lines.push(config_load_failed_line(at(0), reason::INVALID));
        lines.push(backfill_restart_line(at(0)));
        let emitted: BTreeSet<_> = parse(&lines).iter().flat_map(validate).collect();
        for spec in CATALOGUE {
            for set in spec.dimension_sets {
                let set: Vec<String> = set.iter().map(|s| s.to_string()).collect();
                assert!(
                    emitted.contains(&(spec.name.to_string(), set.clone())),
                    "{} {set:?} never emitted",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn lag_is_published_under_the_reports_trigger_per_destination_region() {
        let results = vec![
            replicated("us-west-2", "a", 1, 1),
            replicated("us-west-2", "b", 2, 1),
            replicated("eu-west-1", "c", 3, 1),
            Outcome::ok(
                "arn:src",
                dest("eu-west-1", "d"),
                Status::Unchanged,
                Action::None,
            ),
        ];
        let event = Report::from_results(results.clone(), vec![]);
        let docs = parse(&report_lines(&event, at(0)));
        for d in &docs {
            validate(d);
        }
        assert_eq!(sum(&docs, name::LAG, &[("Trigger", "event")]), 60.0);
        assert_eq!(
            sum(
                &docs,
                name::LAG,
                &[("Trigger", "event"), ("DestinationRegion", "us-west-2")]
            ),
            30.0
        );
        assert_eq!(sum(&docs, name::LAG, &[("Trigger", "all")]), 0.0);
        assert!(
            docs.iter()
                .all(|d| d.get(name::BACKFILL_REMAINING).is_none())
        );

        let all = Report::of_all(results, vec!["x".into(), "y".into()]);
        let docs = parse(&report_lines(&all, at(0)));
        assert_eq!(sum(&docs, name::LAG, &[("Trigger", "all")]), 60.0);
        assert_eq!(sum(&docs, name::LAG, &[("Trigger", "event")]), 0.0);
        assert_eq!(sum(&docs, name::BACKFILL_REMAINING, &[]), 2.0);
    }

    #[test]
    fn an_all_report_counts_the_results_it_does_not_list() {
        let mut results: Vec<Outcome> = (0..1500)
            .map(|i| replicated("us-west-2", &format!("n{i}"), 1, 1))
            .collect();
        results.push(Outcome::ok(
            "arn:src",
            dest("us-west-2", "same"),
            Status::Unchanged,
            Action::None,
        ));
        let report = Report::of_all(results, vec![]);
        assert_eq!(report.results.len(), crate::outcome::MAX_LISTED);
        let docs = parse(&report_lines(&report, at(0)));
        assert_eq!(
            sum(&docs, name::REPLICATIONS, &[("Status", "replicated")]),
            1500.0
        );
        assert_eq!(
            sum(&docs, name::REPLICATIONS, &[("Status", "unchanged")]),
            1.0
        );
        assert_eq!(sum(&docs, name::BACKFILL_REMAINING, &[]), 0.0);
        assert!(
            docs.iter()
                .any(|d| d.get(name::BACKFILL_REMAINING).is_some()),
            "a finished backfill reports 0 remaining"
        );
    }

    #[test]
    fn every_line_carries_the_threshold_in_force() {
        let report = Report::from_results(vec![replicated("us-west-2", "d", 1, 1)], vec![]);
        for level in LogLevel::ALL {
            let stamp = Stamp {
                ms: 1_795_770_902_123,
                level,
            };
            let mut lines = report_lines(&report, stamp);
            lines.extend(throttle_lines(stamp, 1));
            lines.push(backfill_restart_line(stamp));
            lines.push(config_load_failed_line(stamp, reason::UNREADABLE));
            for d in parse(&lines) {
                validate(&d);
                assert_eq!(d["level"], level.as_str());
                assert_eq!(d["timestamp"], "2026-11-27T09:15:02.123Z");
            }
        }
    }

    #[test]
    fn a_config_failure_is_invalid_only_when_the_document_was_read() {
        assert_eq!(
            config_failure_reason(&Error::InvalidConfig("x".into())),
            "Invalid"
        );
        assert_eq!(
            config_failure_reason(&aws(ErrorKind::Throttled)),
            "Unreadable"
        );
        assert_eq!(
            config_failure_reason(&Error::SourceNotFound("cfg".into())),
            "Unreadable"
        );
    }
}
