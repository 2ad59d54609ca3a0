//! The EventBridge rules' patterns (evaluated here: the matching subset the template uses) accept
//! every event the function acts on and reject what it skips, in both event-source modes, and
//! exactly one mode's rule exists for any parameter value.
//!
//! The template is resolved for concrete parameter values by a small CloudFormation evaluator
//! (`tests/common/cfn.rs`: conditions, `Fn::If`, `Ref`, `Fn::Sub`, `AWS::NoValue`), so that what is
//! checked is what CloudFormation would create.

mod common;

use common::cfn::{ACCOUNT, Stack, files, read_json, resolve, root, template};
use secret_replicator::event::{self, Identity, Work};
use secret_replicator::outcome::SkipReason;
use serde_json::{Value, json};

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
        // Events go through the events queue (SPEC §2, §7), never straight to the function.
        assert_eq!(props["Targets"][0]["Arn"], "<EventsQueue.Arn>");
        // The event itself is the message body (no target input), so the function recognises
        // it and the events DLQ holds raw events.
        for input in ["Input", "InputPath", "InputTransformer"] {
            assert!(props["Targets"][0].get(input).is_none(), "{mode}: {input}");
        }
        assert_ne!(props["State"], "DISABLED");
        // EventBridge may send to the queue for exactly this rule (SPEC §11).
        let rule_arn = json!(format!("<{name}.Arn>"));
        let policy = &stack.get("EventsQueuePolicy")["Properties"];
        assert_eq!(policy["Queues"], json!(["<EventsQueue>"]));
        let statements = policy["PolicyDocument"]["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 1, "{mode}: {statements:?}");
        let st = &statements[0];
        assert_eq!(st["Effect"], "Allow");
        assert_eq!(st["Principal"], json!({"Service": "events.amazonaws.com"}));
        assert_eq!(st["Action"], "sqs:SendMessage");
        assert_eq!(st["Resource"], "<EventsQueue.Arn>");
        assert_eq!(
            st["Condition"],
            json!({"ArnEquals": {"aws:SourceArn": rule_arn}}),
            "{mode}"
        );
        assert!(
            !stack
                .of_type("AWS::Lambda::Permission")
                .iter()
                .any(|(_, p)| p["Properties"]["SourceArn"] == rule_arn),
            "{mode}: the rule no longer invokes the function"
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
