//! The deployment artefacts against the code: `template.yaml` and `iam/`.
//!
//! - The EventBridge rules' patterns (evaluated here: the matching subset the template uses)
//!   accept every event the function acts on and reject what it skips, in both event-source
//!   modes, and exactly one mode's rule exists for any parameter value.
//! - Every alarm watches a metric the code emits, with the dimensions it emits: the EMF lines
//!   of a real run (the release binary under a fake Lambda Runtime API, against moto) and of
//!   `metrics::report_lines`.
//!
//! The template is resolved for concrete parameter values by a small CloudFormation evaluator
//! (conditions, `Fn::If`, `Ref`, `Fn::Sub`, `AWS::NoValue`), so that what is checked is what
//! CloudFormation would create. The IAM policies of the template and of `iam/` are checked in
//! `tests/iam_policies.rs` (statically, conditions included) and `tests/iam_recorded.rs` (against
//! the calls the suites made).

mod common;

use common::cfn::{
    ACCOUNT, MAXIMAL, MINIMAL, Stack, files, read_json, resolve, root, scalar_string, scenarios,
    template,
};
use secret_replicator::event::{self, Identity, Work};
use secret_replicator::logging::LogLevel;
use secret_replicator::metrics::{self, CATALOGUE, NAMESPACE};
use secret_replicator::outcome::{
    Action, AwsError, DestinationRef, Error, ErrorKind, Outcome, Report, SkipReason, Status,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

// ---- (0) the function resource -----------------------------------------------------------

#[test]
fn the_function_is_arm64_al2023_built_by_cargo_lambda_and_told_its_role() {
    let t = template();
    let raw = &t["Resources"]["Function"];
    assert_eq!(raw["Type"], "AWS::Serverless::Function");
    assert_eq!(raw["Metadata"]["BuildMethod"], "rust-cargolambda");
    assert_eq!(
        raw["Properties"]["Environment"]["Variables"]["REPLICATOR_ROLE_ARN"],
        json!({"Fn::GetAtt": ["FunctionRole", "Arn"]})
    );

    for (name, stack) in scenarios() {
        let f = &stack.get("Function")["Properties"];
        assert_eq!(f["Runtime"], "provided.al2023", "{name}");
        assert_eq!(f["Architectures"], json!(["arm64"]), "{name}");
        assert_eq!(f["Handler"], "bootstrap", "{name}");
        let memory = f["MemorySize"].as_u64().unwrap();
        let timeout: u64 = scalar_string(&f["Timeout"]).parse().unwrap();
        assert!((128..=512).contains(&memory), "{name}: memory {memory}");
        assert!((30..=900).contains(&timeout), "{name}: timeout {timeout}");
        assert_eq!(f["Role"], "<FunctionRole.Arn>");
        // Advanced logging controls: JSON logs, level from a parameter.
        assert_eq!(f["LoggingConfig"]["LogFormat"], "JSON");
        assert_eq!(f["LoggingConfig"]["LogGroup"], "<LogGroup>");
        assert!(
            stack.get("LogGroup")["Properties"]["RetentionInDays"].is_string()
                || stack.get("LogGroup")["Properties"]["RetentionInDays"].is_number()
        );

        // The environment is the SPEC §2 interface, nothing else.
        let vars = f["Environment"]["Variables"].as_object().unwrap();
        let spec: BTreeSet<&str> = [
            "REPLICATOR_CONFIG",
            "REPLICATOR_CONFIG_FILE",
            "REPLICATOR_CONFIG_SECRET",
            "REPLICATOR_CONFIG_TTL_SECONDS",
            "REPLICATOR_ROLE_ARN",
            "REPLICATOR_WRITE_TPS",
            "REPLICATOR_CONCURRENCY",
            "DEST_REGION",
            "DEST_SECRET_NAME",
            "DEST_ROLE_ARN",
            "DEST_EXTERNAL_ID",
            "DEST_KMS_KEY_ID",
            "TRANSFORMS",
            "SOURCE_MATCH",
        ]
        .into();
        for k in vars.keys() {
            assert!(spec.contains(k.as_str()), "{name}: unknown variable {k}");
        }
        for k in [
            "DEST_REGION",
            "DEST_SECRET_NAME",
            "DEST_ROLE_ARN",
            "DEST_EXTERNAL_ID",
            "DEST_KMS_KEY_ID",
            "TRANSFORMS",
            "SOURCE_MATCH",
            "REPLICATOR_CONFIG_SECRET",
        ] {
            assert!(vars.contains_key(k), "{name}: {k} not settable");
        }
        // Exactly one configuration source is non-empty (the code treats empty as unset).
        let set: Vec<&str> = [
            "DEST_REGION",
            "REPLICATOR_CONFIG_SECRET",
            "REPLICATOR_CONFIG_FILE",
        ]
        .into_iter()
        .filter(|k| vars.get(*k).is_some_and(|v| v.as_str() != Some("")))
        .collect();
        assert_eq!(set.len(), 1, "{name}: configuration sources {set:?}");

        // Failed async invocations: retried twice, then to the encrypted queue.
        let invoke = &f["EventInvokeConfig"];
        assert_eq!(invoke["MaximumRetryAttempts"], 2, "{name}");
        let age = invoke["MaximumEventAgeInSeconds"].as_u64().unwrap();
        assert!((60..=21600).contains(&age));
        assert_eq!(invoke["DestinationConfig"]["OnFailure"]["Type"], "SQS");
        assert_eq!(
            invoke["DestinationConfig"]["OnFailure"]["Destination"],
            "<FailureQueue.Arn>"
        );
        let queue = &stack.get("FailureQueue")["Properties"];
        assert!(
            queue["SqsManagedSseEnabled"] == true || queue.get("KmsMasterKeyId").is_some(),
            "{name}: failure queue not encrypted"
        );
    }
}

#[test]
fn the_rules_refuse_zero_or_two_configuration_sources() {
    let t = template();
    for bad in [
        vec![],
        vec![
            ("DestRegion", "us-west-2"),
            ("ReplicatorConfigSecret", "cfg"),
        ],
        vec![
            ("ReplicatorConfigSecret", "cfg"),
            ("ReplicatorConfigFile", "x.json"),
        ],
    ] {
        let r = std::panic::catch_unwind(|| resolve(&t, &bad));
        assert!(r.is_err(), "{bad:?} accepted");
    }
}

#[test]
fn reserved_concurrency_and_schedule_follow_their_parameters() {
    let t = template();
    let s = resolve(&t, MINIMAL);
    assert_eq!(
        s.get("Function")["Properties"]["ReservedConcurrentExecutions"],
        "2"
    );
    let env = |s: &Stack| s.get("Function")["Properties"]["Environment"]["Variables"].clone();
    // Each container takes its share of the function-wide budget (SPEC §2): the containers are
    // counted by the reservation...
    assert_eq!(env(&s)["REPLICATOR_CONCURRENCY"], "2");
    assert_eq!(env(&s)["REPLICATOR_WRITE_TPS"], "25");
    // The repair schedule is on by default (SPEC §6), without failOnError; its Timeout is a
    // parameter (300 s by default) and the function may invoke itself, ARN and ARN:*, in a
    // policy of its own.
    let rule = &s.get("BackfillScheduleRule")["Properties"];
    assert_eq!(rule["ScheduleExpression"], "rate(1 day)");
    let input: Value = serde_json::from_str(rule["Targets"][0]["Input"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"source": "manual", "all": true}));
    assert_eq!(s.get("Function")["Properties"]["Timeout"], "300");
    let continuation = &s.get("ContinuationPolicy")["Properties"];
    assert_eq!(continuation["Roles"], json!(["<FunctionRole>"]));
    assert_eq!(
        continuation["PolicyDocument"]["Statement"][0]["Resource"],
        json!(["<Function.Arn>", "<Function.Arn>:*"])
    );
    assert!(
        !s.get("FunctionRole")["Properties"]["Policies"]
            .to_string()
            .contains("lambda:InvokeFunction"),
        "inline in the role it would be a cycle"
    );
    let no_schedule = resolve(&t, &[("DestRegion", "us-west-2"), ("BackfillSchedule", "")]);
    assert!(!no_schedule.resources.contains_key("BackfillScheduleRule"));
    let s = resolve(&t, MAXIMAL);
    assert!(
        s.get("Function")["Properties"]
            .get("ReservedConcurrentExecutions")
            .is_none()
    );
    // ...or, without one, by the operator's promise.
    assert_eq!(env(&s)["REPLICATOR_CONCURRENCY"], "10");
    let s = resolve(
        &t,
        &[
            ("DestRegion", "us-west-2"),
            ("ReservedConcurrency", "0"),
            ("MaxConcurrency", "4"),
        ],
    );
    assert_eq!(env(&s)["REPLICATOR_CONCURRENCY"], "4");
    // The settings the template passes are ones the function accepts.
    for stack in [resolve(&t, MINIMAL), resolve(&t, MAXIMAL)] {
        let vars = env(&stack);
        let pairs: Vec<(&str, &str)> = vec![
            ("DEST_REGION", "us-west-2"),
            (
                "REPLICATOR_WRITE_TPS",
                vars["REPLICATOR_WRITE_TPS"].as_str().unwrap(),
            ),
            (
                "REPLICATOR_CONCURRENCY",
                vars["REPLICATOR_CONCURRENCY"].as_str().unwrap(),
            ),
        ];
        let settings = secret_replicator::settings::Settings::from_env(
            &secret_replicator::settings::Env::from_pairs(pairs),
        )
        .expect("the template's settings are valid");
        assert!(settings.write_tps / f64::from(settings.concurrency) <= 25.0);
    }
    let s = resolve(&t, MAXIMAL);
    let rule = &s.get("BackfillScheduleRule")["Properties"];
    assert_eq!(rule["ScheduleExpression"], "rate(1 day)");
    assert_eq!(rule["Targets"][0]["Arn"], "<Function.Arn>");
    assert!(s.resources.contains_key("BackfillSchedulePermission"));
    assert!(s.resources.contains_key("AlarmEmailSubscription"));
}

// ---- (a) event patterns ------------------------------------------------------------------

/// EventBridge content filtering, the subset this template may use: exact values (strings,
/// numbers, booleans, null), arrays as OR, nested objects, `$or`, `prefix`, `suffix`,
/// `anything-but` (value, list or prefix), `exists`, `equals-ignore-case`. Array fields in the
/// event match when any element matches. Anything else fails the test, so the evaluator stays
/// honest about what it checked.
fn pattern_matches(pattern: &Value, event: &Value) -> bool {
    let pattern = pattern.as_object().expect("a pattern is an object");
    pattern.iter().all(|(key, want)| {
        if key == "$or" {
            let alternatives = want.as_array().expect("$or takes an array");
            assert!(alternatives.len() >= 2, "$or needs two alternatives");
            return alternatives.iter().any(|p| pattern_matches(p, event));
        }
        let got = event.get(key).filter(|v| !v.is_null() || want.is_array());
        match want {
            Value::Object(_) => {
                let empty = json!({});
                let inner = match got {
                    Some(v @ Value::Object(_)) => v,
                    Some(_) => return false,
                    None => &empty,
                };
                pattern_matches(want, inner)
            }
            Value::Array(matchers) => {
                assert!(!matchers.is_empty(), "empty matcher list for {key}");
                matchers.iter().any(|m| leaf_matches(m, got))
            }
            other => panic!("pattern value for {key} must be an array or object: {other}"),
        }
    })
}

fn leaf_matches(matcher: &Value, got: Option<&Value>) -> bool {
    if let Some(Value::Array(items)) = got {
        if let Some(op) = matcher.get("exists") {
            return op.as_bool().unwrap() != items.is_empty();
        }
        return items.iter().any(|i| leaf_matches(matcher, Some(i)));
    }
    match matcher {
        Value::Object(op) => {
            assert_eq!(op.len(), 1, "one operator per matcher: {matcher}");
            let (name, arg) = op.iter().next().unwrap();
            match name.as_str() {
                "exists" => {
                    let present = got.is_some_and(|v| !v.is_object());
                    present == arg.as_bool().expect("exists takes a boolean")
                }
                "prefix" => got
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.starts_with(arg.as_str().unwrap())),
                "suffix" => got
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.ends_with(arg.as_str().unwrap())),
                "equals-ignore-case" => got
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.eq_ignore_ascii_case(arg.as_str().unwrap())),
                "anything-but" => {
                    let Some(v) = got.filter(|v| !v.is_object()) else {
                        return false;
                    };
                    match arg {
                        Value::Array(list) => !list.contains(v),
                        Value::Object(inner) => {
                            let p = inner["prefix"].as_str().expect("anything-but prefix");
                            !v.as_str().is_some_and(|s| s.starts_with(p))
                        }
                        single => v != single,
                    }
                }
                other => panic!("unsupported EventBridge operator {other}"),
            }
        }
        Value::Array(_) => panic!("nested array in a matcher list"),
        literal => got == Some(literal),
    }
}

#[test]
fn the_pattern_matcher_itself() {
    let p = json!({"a": ["x", {"prefix": "pre"}], "b": {"c": [{"exists": false}]}, "n": [1]});
    assert!(pattern_matches(&p, &json!({"a": "x", "n": 1})));
    assert!(pattern_matches(
        &p,
        &json!({"a": "prefix", "n": 1, "b": {}})
    ));
    assert!(pattern_matches(&p, &json!({"a": ["y", "x"], "n": 1})));
    assert!(!pattern_matches(&p, &json!({"a": "y", "n": 1})));
    assert!(!pattern_matches(
        &p,
        &json!({"a": "x", "n": 1, "b": {"c": "v"}})
    ));
    assert!(!pattern_matches(&p, &json!({"a": "x", "n": 2})));
    assert!(!pattern_matches(&p, &json!({"n": 1})));
    let or = json!({"$or": [{"a": ["1"]}, {"b": [{"exists": true}]}]});
    assert!(pattern_matches(&or, &json!({"a": "1"})));
    assert!(pattern_matches(&or, &json!({"b": "z"})));
    assert!(!pattern_matches(&or, &json!({"a": "2"})));
    let ab = json!({"a": [{"anything-but": ["x", "y"]}]});
    assert!(pattern_matches(&ab, &json!({"a": "z"})));
    assert!(!pattern_matches(&ab, &json!({"a": "x"})));
    assert!(!pattern_matches(&ab, &json!({})));
}

/// The event rules (those with an EventPattern) of a resolved stack.
fn event_rules(stack: &Stack) -> Vec<(&str, &Value)> {
    stack
        .of_type("AWS::Events::Rule")
        .into_iter()
        .filter(|(_, r)| r["Properties"].get("EventPattern").is_some())
        .map(|(n, r)| (n, &r["Properties"]["EventPattern"]))
        .collect()
}

fn fixtures() -> Vec<(String, Value)> {
    files(&root().join("tests/fixtures/events"), "json")
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read_json(&p),
            )
        })
        .collect()
}

fn fixture(name: &str) -> Value {
    read_json(&root().join("tests/fixtures/events").join(name))
}

/// A CloudTrail API-call event for `event_name` with these request parameters.
fn api_call(event_name: &str, params: Value) -> Value {
    let mut e = fixture("cloudtrail-put-secret-value.json");
    e["detail"]["eventName"] = json!(event_name);
    e["detail"]["requestParameters"] = params;
    e
}

/// Events beyond the fixtures: each kind SPEC §5 names, and read-only calls.
fn variants() -> Vec<(String, Value)> {
    let id = json!({"secretId": "prod/payments/db"});
    let mut v: Vec<(String, Value)> = Vec::new();
    for name in [
        "UpdateSecret",
        "RestoreSecret",
        "DeleteSecret",
        "TagResource",
        "UntagResource",
        // Read-only and other calls that change no value.
        "GetSecretValue",
        "DescribeSecret",
        "ListSecrets",
        "ListSecretVersionIds",
        "GetResourcePolicy",
        "BatchGetSecretValue",
        "GetRandomPassword",
        "RotateSecret",
        "CancelRotateSecret",
        "PutResourcePolicy",
        "ValidateResourcePolicy",
        "ReplicateSecretToRegions",
    ] {
        v.push((format!("api {name}"), api_call(name, id.clone())));
    }
    let mut read = api_call("GetSecretValue", id.clone());
    read["detail"]["readOnly"] = json!(true);
    v.push(("api GetSecretValue readOnly".into(), read));
    v.push((
        "api PutSecretValue AWSCURRENT".into(),
        api_call(
            "PutSecretValue",
            json!({"secretId": "prod/payments/db", "versionStages": ["AWSCURRENT", "custom"]}),
        ),
    ));
    v.push((
        "api PutSecretValue custom label only".into(),
        api_call(
            "PutSecretValue",
            json!({"secretId": "prod/payments/db", "versionStages": ["custom"]}),
        ),
    ));
    v.push((
        "api UpdateSecretVersionStage AWSPENDING".into(),
        api_call(
            "UpdateSecretVersionStage",
            json!({"secretId": "prod/payments/db", "versionStage": "AWSPENDING", "moveToVersionId": "v2"}),
        ),
    ));
    v.push((
        "api UpdateSecretVersionStage removes AWSCURRENT only".into(),
        api_call(
            "UpdateSecretVersionStage",
            json!({"secretId": "prod/payments/db", "versionStage": "AWSCURRENT", "removeFromVersionId": "v1"}),
        ),
    ));
    let mut failed_create = fixture("cloudtrail-create-secret.json");
    failed_create["detail"]["errorCode"] = json!("ResourceExistsException");
    v.push(("api CreateSecret failed".into(), failed_create));
    for name in ["RotationFailed", "RotationStarted", "RotationAbandoned"] {
        let mut e = fixture("service-rotation-succeeded.json");
        e["detail"]["eventName"] = json!(name);
        v.push((format!("service {name}"), e));
    }
    let mut pending = fixture("native-secret-label-updated.json");
    pending["detail"]["labelUpdated"] = json!("AWSPENDING");
    v.push(("label AWSPENDING".into(), pending));
    let mut kms = fixture("cloudtrail-put-secret-value.json");
    kms["source"] = json!("aws.kms");
    kms["detail"]["eventSource"] = json!("kms.amazonaws.com");
    v.push(("other service".into(), kms));
    let mut console = fixture("cloudtrail-put-secret-value.json");
    console["detail-type"] = json!("AWS Console Action via CloudTrail");
    v.push(("console action".into(), console));
    v
}

/// What the function does with an event: Some(true) = acts (replicates, or may act depending
/// on the configuration: deletes, tags), Some(false) = skips whatever the configuration,
/// None = not an EventBridge event.
fn function_acts(e: &Value) -> Option<bool> {
    let me = Identity {
        function_name: "secret-replicator".into(),
        role_arn: Some(format!("arn:aws:iam::{ACCOUNT}:role/replicator")),
    };
    if event::is_manual(e) {
        return None;
    }
    match event::parse(e, &me) {
        Ok(r) => Some(match r.work {
            // Skips that no configuration changes; other skips (loop prevention) and every
            // kind of work (replicate, tags, delete, ...) need the event delivered.
            Work::Skip { reason, .. } => ![
                SkipReason::CallFailed,
                SkipReason::NotCurrent,
                SkipReason::NotAValueChange,
            ]
            .contains(&reason),
            _ => true,
        }),
        // InvalidEvent: the rule must not deliver it either.
        Err(_) => Some(false),
    }
}

fn mode_of(e: &Value) -> Option<&'static str> {
    match e["detail-type"].as_str()? {
        "AWS API Call via CloudTrail" | "AWS Service Event via CloudTrail" => Some("CloudTrail"),
        "Secret Label Updated" => Some("SecretLabelUpdated"),
        _ => None,
    }
}

#[test]
fn exactly_one_event_rule_exists_for_each_event_source() {
    let t = template();
    let allowed = t["Parameters"]["EventSource"]["AllowedValues"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(allowed.len(), 2);
    for mode in allowed {
        let stack = resolve(
            &t,
            &[
                ("DestRegion", "us-west-2"),
                ("EventSource", mode.as_str().unwrap()),
            ],
        );
        let rules = event_rules(&stack);
        assert_eq!(rules.len(), 1, "{mode}: event rules {rules:?}");
        let (name, _) = rules[0];
        let props = &stack.get(name)["Properties"];
        assert_eq!(props["Targets"].as_array().unwrap().len(), 1);
        assert_eq!(props["Targets"][0]["Arn"], "<Function.Arn>");
        assert_ne!(props["State"], "DISABLED");
        // EventBridge may invoke the function for exactly this rule.
        let rule_arn = json!(format!("<{name}.Arn>"));
        assert!(
            stack
                .of_type("AWS::Lambda::Permission")
                .iter()
                .any(|(_, p)| p["Properties"]["SourceArn"] == rule_arn
                    && p["Properties"]["Principal"] == "events.amazonaws.com"),
            "{mode}: no permission for {name}"
        );
    }
}

#[test]
fn the_event_pattern_accepts_what_the_function_acts_on_and_rejects_what_it_skips() {
    let t = template();
    let mut events = fixtures();
    events.extend(variants());
    for mode in ["CloudTrail", "SecretLabelUpdated"] {
        let stack = resolve(&t, &[("DestRegion", "us-west-2"), ("EventSource", mode)]);
        let rules = event_rules(&stack);
        let pattern = rules[0].1;
        let mut accepted = Vec::new();
        for (label, e) in &events {
            let Some(acts) = function_acts(e) else {
                // The manual payload never comes from the rule.
                assert!(!pattern_matches(pattern, e), "{mode}: {label} accepted");
                continue;
            };
            let want = acts && mode_of(e) == Some(mode);
            let got = pattern_matches(pattern, e);
            assert_eq!(
                got,
                want,
                "{mode}: {label}: pattern {} it, the function {}",
                if got { "accepts" } else { "rejects" },
                if acts { "acts on it" } else { "skips it" }
            );
            if got {
                accepted.push(label.clone());
            }
        }
        // Named expectations, so that a change in the parser cannot quietly empty the rule.
        let must: &[&str] = match mode {
            "CloudTrail" => &[
                "cloudtrail-create-secret.json",
                "cloudtrail-put-secret-value.json",
                "cloudtrail-update-secret-version-stage.json",
                "service-rotation-succeeded.json",
                "api UpdateSecret",
                "api RestoreSecret",
                "api DeleteSecret",
                "api TagResource",
                "api UntagResource",
                "api PutSecretValue AWSCURRENT",
            ],
            _ => &["native-secret-label-updated.json"],
        };
        for m in must {
            assert!(accepted.iter().any(|a| a == m), "{mode}: {m} rejected");
        }
        for never in [
            "cloudtrail-put-secret-value-pending.json",
            "cloudtrail-put-secret-value-failed.json",
            "api GetSecretValue",
            "api GetSecretValue readOnly",
            "api DescribeSecret",
            "api ListSecrets",
            "api BatchGetSecretValue",
            "service RotationFailed",
            "label AWSPENDING",
        ] {
            assert!(
                !accepted.iter().any(|a| a == never),
                "{mode}: {never} accepted"
            );
        }
    }
}

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
                        ["Errors", "Throttles", "RecursiveInvocationsDropped"].contains(&metric),
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
                    assert_eq!(
                        dims,
                        BTreeMap::from([("QueueName".into(), "<FailureQueue.QueueName>".into())]),
                        "{name}"
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
    check_alarms(&emitted);
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
