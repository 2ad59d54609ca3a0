//! Monitoring as deployed against what the code emits: every alarm watches a metric the code
//! emits with the dimensions it emits (the EMF lines of a real run of the binary under a fake
//! Lambda Runtime API against moto, and of `metrics::report_lines`); every metric line survives
//! Lambda's log-level filter at each level the template offers; the dashboard shows published
//! metrics and every alarm.
//!
//! The template is resolved for concrete parameter values by a small CloudFormation evaluator
//! (`tests/common/cfn.rs`: conditions, `Fn::If`, `Ref`, `Fn::Sub`, `AWS::NoValue`), so that what is
//! checked is what CloudFormation would create.

mod common;

use common::cfn::{ACCOUNT, Stack, scalar_string, scenarios};
use secret_replicator::logging::LogLevel;
use secret_replicator::metrics::{self, CATALOGUE, NAMESPACE};
use secret_replicator::outcome::{
    Action, AwsError, DestinationRef, Error, ErrorKind, Outcome, Report, SkipReason, Status,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

// ---- (b) alarms vs. emitted metrics --------------------------------------------------------

/// (namespace, metric, dimension name → value) of one EMF-published metric.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Published {
    namespace: String,
    metric: String,
    unit: String,
    dimensions: BTreeMap<String, String>,
}

/// Every (metric, dimension set) an EMF line publishes, with the dimension values.
fn published(lines: &[String]) -> BTreeSet<Published> {
    let mut out = BTreeSet::new();
    for line in lines {
        let Ok(doc) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(directives) = doc["_aws"]["CloudWatchMetrics"].as_array() else {
            continue;
        };
        assert!(doc["_aws"]["Timestamp"].is_u64(), "{line}");
        for d in directives {
            for set in d["Dimensions"].as_array().unwrap() {
                let dims: BTreeMap<String, String> = set
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| {
                        let k = k.as_str().unwrap();
                        let v = doc[k].as_str().unwrap_or_else(|| panic!("{k} in {line}"));
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                for m in d["Metrics"].as_array().unwrap() {
                    let name = m["Name"].as_str().unwrap();
                    assert!(doc.get(name).is_some(), "{name} has no value in {line}");
                    out.insert(Published {
                        namespace: d["Namespace"].as_str().unwrap().to_string(),
                        metric: name.to_string(),
                        unit: m["Unit"].as_str().unwrap_or("None").to_string(),
                        dimensions: dims.clone(),
                    });
                }
            }
        }
    }
    out
}

fn alarms(stack: &Stack) -> Vec<(&str, &Value)> {
    stack
        .of_type("AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(n, a)| (n, &a["Properties"]))
        .collect()
}

fn alarm_dimensions(alarm: &Value) -> BTreeMap<String, String> {
    alarm
        .get("Dimensions")
        .and_then(Value::as_array)
        .map(|ds| {
            ds.iter()
                .map(|d| {
                    (
                        d["Name"].as_str().unwrap().to_string(),
                        scalar_string(&d["Value"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every alarm of the template: custom-namespace ones watch exactly a metric in `emitted`;
/// AWS ones watch this stack's function or queue. All notify the topic.
fn check_alarms(emitted: &BTreeSet<Published>) {
    for (scenario, stack) in scenarios() {
        let all = alarms(&stack);
        let mut custom = 0;
        for (name, a) in &all {
            assert!(
                a.get("Metrics").is_none(),
                "{name}: metric-math alarms are not checked; use MetricName"
            );
            let ns = a["Namespace"].as_str().unwrap();
            let metric = a["MetricName"].as_str().unwrap();
            let dims = alarm_dimensions(a);
            assert_eq!(a["AlarmActions"], json!(["<AlarmTopic>"]), "{name}");
            // A Number parameter reaches the template as a string, as CloudFormation passes it.
            let threshold = a["Threshold"]
                .as_f64()
                .or_else(|| a["Threshold"].as_str().and_then(|t| t.parse().ok()));
            assert!(threshold.is_some(), "{name}: {}", a["Threshold"]);
            match ns {
                NAMESPACE => {
                    custom += 1;
                    let hit = emitted
                        .iter()
                        .find(|p| p.namespace == ns && p.metric == metric && p.dimensions == dims);
                    let hit = hit.unwrap_or_else(|| {
                        panic!(
                            "{scenario}: alarm {name} watches {metric} {dims:?}, which the code never emits; \
                             emitted: {emitted:#?}"
                        )
                    });
                    if let Some(unit) = a.get("Unit") {
                        assert_eq!(unit, hit.unit.as_str(), "{name}");
                    }
                }
                "AWS/Lambda" => {
                    assert!(
                        [
                            "Errors",
                            "Throttles",
                            "RecursiveInvocationsDropped",
                            "DestinationDeliveryFailures"
                        ]
                        .contains(&metric),
                        "{name}: {metric}"
                    );
                    assert_eq!(
                        dims,
                        BTreeMap::from([("FunctionName".into(), "<Function>".into())]),
                        "{name}"
                    );
                }
                "AWS/SQS" => {
                    assert!(
                        [
                            "ApproximateNumberOfMessagesVisible",
                            "ApproximateAgeOfOldestMessage"
                        ]
                        .contains(&metric),
                        "{name}: {metric}"
                    );
                    // The failure queue, the dead-letter queue behind its redrive, or the
                    // events queue's dead-letter queue.
                    assert!(
                        [
                            BTreeMap::from([(
                                "QueueName".into(),
                                "<FailureQueue.QueueName>".into()
                            )]),
                            BTreeMap::from([(
                                "QueueName".into(),
                                "<FailureDeadLetterQueue.QueueName>".into()
                            )]),
                            BTreeMap::from([(
                                "QueueName".into(),
                                "<EventsDeadLetterQueue.QueueName>".into()
                            )]),
                        ]
                        .contains(&dims),
                        "{name}: {dims:?}"
                    );
                }
                other => panic!("{name}: unexpected namespace {other}"),
            }
        }
        // The alarms the issue asks for.
        let watches = |ns: &str, m: &str| {
            all.iter()
                .any(|(_, a)| a["Namespace"] == ns && a["MetricName"] == m)
        };
        assert!(watches(NAMESPACE, metrics::name::FAILURES), "{scenario}");
        assert!(watches("AWS/SQS", "ApproximateNumberOfMessagesVisible"));
        assert!(watches("AWS/Lambda", "Errors"));
        assert!(watches("AWS/Lambda", "Throttles"));
        // The backfill chain caps itself below Lambda's recursion detection, which stays on.
        assert!(watches("AWS/Lambda", "RecursiveInvocationsDropped"));
        assert!(custom >= 1);
        let topic = stack.get("AlarmTopic");
        assert_eq!(topic["Type"], "AWS::SNS::Topic");
    }
}

fn dest(region: &str) -> Option<DestinationRef> {
    Some(DestinationRef {
        region: region.into(),
        account: ACCOUNT.into(),
        name: "dr/app/db".into(),
    })
}

/// A report with every status and a few error kinds, built through the public API.
fn sample_report() -> Report {
    let mut ok = Outcome::ok(
        "arn:src",
        dest("us-west-2"),
        Status::Replicated,
        Action::Update,
    );
    ok.duration_ms = Some(12);
    ok.bytes = Some(64);
    ok.lag_ms = Some(1_200);
    let mut results = vec![ok];
    for s in [
        Status::Unchanged,
        Status::Deleted,
        Status::Restored,
        Status::Planned,
    ] {
        results.push(Outcome::ok("arn:src", dest("eu-west-1"), s, Action::None));
    }
    results.push(Outcome::skipped("arn:src", None, SkipReason::Replica));
    for kind in [ErrorKind::AccessDenied, ErrorKind::Throttled] {
        let e = Error::Aws(AwsError {
            kind,
            service: "secretsmanager",
            operation: "PutSecretValue",
            code: "X".into(),
            message: "m".into(),
        });
        results.push(Outcome::failed(
            "arn:src",
            dest("us-west-2"),
            Action::Update,
            &e,
        ));
    }
    Report::from_results(results, vec![])
}

#[test]
fn alarms_watch_metrics_in_the_catalogue_and_in_report_lines() {
    let stamp = metrics::Stamp {
        ms: 1,
        level: LogLevel::Info,
    };
    let mut lines = metrics::report_lines(&sample_report(), stamp);
    lines.extend(metrics::report_lines(
        &Report::top_level(&Error::InvalidConfig("x".into())),
        stamp,
    ));
    lines.push(metrics::config_load_failed_line(
        stamp,
        metrics::reason::INVALID,
    ));
    lines.extend(metrics::report_lines(&capped_chain(), stamp));
    let emitted = published(&lines);
    // What the lines publish is what the catalogue declares.
    for p in &emitted {
        assert_eq!(p.namespace, NAMESPACE);
        let spec = CATALOGUE
            .iter()
            .find(|s| s.name == p.metric)
            .unwrap_or_else(|| panic!("{} not catalogued", p.metric));
        assert_eq!(spec.unit, p.unit);
        let keys: Vec<&str> = p.dimensions.keys().map(String::as_str).collect();
        assert!(
            spec.dimension_sets.iter().any(|s| {
                let mut s = s.to_vec();
                s.sort();
                s == keys
            }),
            "{} {keys:?} not catalogued",
            p.metric
        );
    }
    check_alarms(&emitted);
}

// ---- (b, real run): the binary under a fake Lambda Runtime API -----------------------------

fn real_run() -> Vec<String> {
    real_run_at("INFO")
}

use common::real_run::real_run_at;

/// The level Lambda files a line under, by the two rules of
/// https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html:
/// a JSON line with a valid `level` and a valid `timestamp` is filed at that level; any other
/// line (not JSON, no level, an invalid level, no or an invalid timestamp) is filed as INFO.
fn lambda_files_at(line: &str) -> LogLevel {
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(line) else {
        return LogLevel::Info;
    };
    let level = doc
        .get("level")
        .and_then(Value::as_str)
        .and_then(LogLevel::parse);
    let stamped = doc
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(secret_replicator::time::parse_rfc3339)
        .is_some();
    match level {
        Some(l) if stamped => l,
        _ => LogLevel::Info,
    }
}

/// Lambda sends a line when its level is the threshold's or less detailed.
fn lambda_keeps(line: &str, threshold: LogLevel) -> bool {
    lambda_files_at(line) >= threshold
}

#[test]
fn lambdas_filter_as_imitated_drops_unlevelled_lines_above_info() {
    // The imitation has teeth: the lines the function used to print are dropped from WARN up.
    let unlevelled = r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[]},"Failures":1}"#;
    let unstamped = r#"{"level":"ERROR","_aws":{"Timestamp":1,"CloudWatchMetrics":[]}}"#;
    for line in [unlevelled, unstamped, "plain text"] {
        assert!(lambda_keeps(line, LogLevel::Info), "{line}");
        assert!(!lambda_keeps(line, LogLevel::Warn), "{line}");
        assert!(!lambda_keeps(line, LogLevel::Fatal), "{line}");
    }
    let stamped = r#"{"level":"ERROR","timestamp":"2026-12-03T10:00:00.000Z"}"#;
    assert!(lambda_keeps(stamped, LogLevel::Error));
    assert!(!lambda_keeps(stamped, LogLevel::Fatal));
}

#[test]
fn every_metric_line_survives_lambdas_filter_at_every_level_the_template_offers() {
    let offered = template_log_levels();
    assert_eq!(offered.len(), LogLevel::ALL.len(), "{offered:?}");
    for level in offered {
        let threshold = LogLevel::parse(&level).unwrap_or_else(|| panic!("{level}"));
        let lines = real_run_at(&level);
        let metric_lines: Vec<&String> = lines.iter().filter(|l| l.contains("\"_aws\"")).collect();
        let emitted = published(&lines);
        for metric in [
            metrics::name::REPLICATIONS,
            metrics::name::FAILURES,
            metrics::name::CONFIG_LOAD_FAILURES,
        ] {
            assert!(
                emitted.iter().any(|p| p.metric == metric),
                "{level}: no {metric} line"
            );
        }
        for line in &metric_lines {
            assert!(
                lambda_keeps(line, threshold),
                "{level}: Lambda would drop {line}"
            );
        }
        // `cargo nextest run --test alarms --no-capture` prints the count per level.
        eprintln!(
            "LogLevel {level}: {} metric lines, all kept by Lambda's filter",
            metric_lines.len()
        );
    }
}

/// The `AllowedValues` of the template's `LogLevel` parameter.
fn template_log_levels() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml"))
        .expect("read template.yaml");
    let line = text
        .lines()
        .skip_while(|l| l.trim() != "LogLevel:")
        .find(|l| l.trim_start().starts_with("AllowedValues:"))
        .expect("LogLevel AllowedValues");
    line.split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(inner, _)| inner.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn alarms_watch_metrics_that_a_real_run_emits() {
    let lines = real_run();
    let emitted = published(&lines);
    assert!(
        !emitted.is_empty(),
        "no EMF line on stdout; output:\n{}",
        lines.join("\n")
    );
    let has = |metric: &str, dims: &[(&str, &str)]| {
        emitted.iter().any(|p| {
            p.metric == metric
                && dims
                    .iter()
                    .all(|(k, v)| p.dimensions.get(*k).is_some_and(|x| x == v))
        })
    };
    assert!(has(
        metrics::name::REPLICATIONS,
        &[("Status", "replicated"), ("DestinationRegion", "us-west-2")]
    ));
    assert!(has(
        metrics::name::FAILURES,
        &[("ErrorKind", "DestinationConflict")]
    ));
    assert!(has(metrics::name::LATENCY, &[]));
    assert!(has(
        metrics::name::CONFIG_LOAD_FAILURES,
        &[("Reason", "Invalid")]
    ));
    // No secret name (nor the value) reaches a metric line.
    for line in lines.iter().filter(|l| l.contains("\"_aws\"")) {
        for secret in ["app/ok", "app/conflict", "dr/app", "postgres://"] {
            assert!(!line.contains(secret), "{line}");
        }
    }
    // A capped backfill chain needs 12 links (tests/continuation.rs runs one through the binary
    // and finds this line in its output); its document's lines stand in for it here.
    let mut emitted = emitted;
    emitted.extend(published(&metrics::report_lines(
        &capped_chain(),
        metrics::Stamp {
            ms: 1,
            level: LogLevel::Info,
        },
    )));
    check_alarms(&emitted);
}

/// The last link of a chain that reached its cap: a BackfillIncomplete beside its results.
fn capped_chain() -> Report {
    Report::of_all(vec![], vec!["app/next".into()]).with_error(&Error::BackfillIncomplete(
        "the backfill chain reached its cap of 12 links with 1 source(s) left".into(),
    ))
}

/// The dashboard's body as CloudFormation would render it (substitutions replaced by
/// placeholders) and the template's alarm resource names.
fn dashboard_and_alarms() -> (Value, Vec<String>) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml"))
        .expect("read template.yaml");
    let start = text
        .find("DashboardBody: !Sub |\n")
        .expect("a dashboard body")
        + "DashboardBody: !Sub |\n".len();
    let body: String = text[start..]
        .lines()
        .take_while(|l| l.starts_with("        ") || l.trim().is_empty())
        .map(|l| l.get(8..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rendered = String::new();
    let mut rest = body.as_str();
    while let Some(i) = rest.find("${") {
        rendered.push_str(&rest[..i]);
        let end = rest[i..].find('}').expect("closed substitution") + i;
        let var = &rest[i + 2..end];
        rendered.push_str(if var == "ReplicationLagAlarmMs" {
            "300000"
        } else {
            &rest[i..=end]
        });
        rest = &rest[end + 1..];
    }
    rendered.push_str(rest);
    let doc: Value = serde_json::from_str(&rendered).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
    let alarms = text
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.strip_suffix(':'))
        .filter(|n| n.ends_with("Alarm") && !n.starts_with(' '))
        .map(str::to_string)
        .collect();
    (doc, alarms)
}

#[test]
fn the_dashboard_shows_what_the_code_emits_and_every_alarm() {
    let (doc, alarms) = dashboard_and_alarms();
    let widgets = doc["widgets"].as_array().expect("widgets");
    let mut shown = BTreeSet::new();
    for w in widgets {
        for m in w["properties"]["metrics"].as_array().into_iter().flatten() {
            let parts = m.as_array().expect("a metric row");
            if let Some(expr) = parts[0]["expression"].as_str() {
                // SEARCH('{SecretReplicator,Dim} MetricName="Name"', ...)
                let (schema, after) = expr
                    .split_once("{SecretReplicator,")
                    .and_then(|(_, a)| a.split_once('}'))
                    .expect("a SecretReplicator search");
                let name = after
                    .split_once("MetricName=\"")
                    .and_then(|(_, a)| a.split_once('"'))
                    .map(|(n, _)| n)
                    .expect("a metric name");
                let spec = CATALOGUE.iter().find(|s| s.name == name).expect(name);
                assert!(
                    spec.dimension_sets.iter().any(|set| set == &[schema]),
                    "{name} is never published under [{schema}]"
                );
                shown.insert(name.to_string());
                continue;
            }
            let strings: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
            if strings[0] != NAMESPACE {
                continue;
            }
            let name = strings[1];
            let dims: Vec<&str> = strings[2..].chunks(2).map(|kv| kv[0]).collect();
            let spec = CATALOGUE.iter().find(|s| s.name == name).expect(name);
            assert!(
                spec.dimension_sets.contains(&dims.as_slice()),
                "{name} is never published under {dims:?}"
            );
            shown.insert(name.to_string());
        }
    }
    for wanted in [
        metrics::name::REPLICATIONS,
        metrics::name::FAILURES,
        metrics::name::LAG,
        metrics::name::THROTTLED_ATTEMPTS,
        metrics::name::BACKFILL_REMAINING,
    ] {
        assert!(
            shown.contains(wanted),
            "the dashboard lacks {wanted}: {shown:?}"
        );
    }
    let listed = widgets
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| {
            w["properties"]["alarms"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect::<Vec<_>>();
    assert!(!alarms.is_empty());
    for a in &alarms {
        assert!(
            listed.contains(&json!(format!("${{{a}.Arn}}"))),
            "the dashboard's alarm widget lacks {a}"
        );
    }
}
