//! `template.yaml`'s function resource against the code: architecture, runtime and build, the
//! environment it is told (its role, the write budget, the configuration source), the rule that
//! exactly one configuration source is given, and concurrency and the repair schedule following
//! their parameters.
//!
//! The template is resolved for concrete parameter values by a small CloudFormation evaluator
//! (`tests/common/cfn.rs`: conditions, `Fn::If`, `Ref`, `Fn::Sub`, `AWS::NoValue`), so that what is
//! checked is what CloudFormation would create.

mod common;

use common::cfn::{MAXIMAL, MINIMAL, Stack, resolve, scalar_string, scenarios, template};
use serde_json::{Value, json};
use std::collections::BTreeSet;

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
fn nothing_is_reserved_and_the_schedule_follows_its_parameter() {
    let t = template();
    assert!(
        t["Parameters"].get("ReservedConcurrency").is_none(),
        "no reservation parameter: a reservation can fail in a new account (SPEC §11)"
    );
    for (name, s) in scenarios() {
        let f = &s.get("Function")["Properties"];
        // Omitted, never 0 (which stops every invocation).
        assert!(f.get("ReservedConcurrentExecutions").is_none(), "{name}");
        // Lambda writes START and REPORT at INFO (SPEC §10).
        assert_eq!(f["LoggingConfig"]["SystemLogLevel"], "INFO", "{name}");
    }
    let s = resolve(&t, MINIMAL);
    let env = |s: &Stack| s.get("Function")["Properties"]["Environment"]["Variables"].clone();
    assert_eq!(env(&s)["REPLICATOR_WRITE_TPS"], "25");
    // The repair schedule is on by default (SPEC §6), without failOnError, invoking the
    // function directly (asynchronously); its Timeout is a parameter (300 s by default) and the
    // function may invoke itself, ARN and ARN:*, in a policy of its own.
    let rule = &s.get("BackfillScheduleRule")["Properties"];
    assert_eq!(rule["ScheduleExpression"], "rate(1 day)");
    assert_eq!(rule["Targets"][0]["Arn"], "<Function.Arn>");
    let input: Value = serde_json::from_str(rule["Targets"][0]["Input"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"source": "manual", "all": true}));
    assert!(s.resources.contains_key("BackfillSchedulePermission"));
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
}

/// The number a resolved property holds (CloudFormation passes numbers as text too).
fn number(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The most containers that can run at once, counted from the resolved stack itself (SPEC §2):
/// every SQS mapping's MaximumConcurrency, plus one per scheduled rule that starts an `all`
/// chain.
fn containers_by_caps(stack: &Stack) -> u64 {
    let mappings: u64 = stack
        .of_type("AWS::Lambda::EventSourceMapping")
        .iter()
        .map(|(name, m)| {
            let cap = &m["Properties"]["ScalingConfig"]["MaximumConcurrency"];
            assert!(!cap.is_null(), "{name}: a mapping without a cap");
            number(cap)
        })
        .sum();
    let chains = stack
        .of_type("AWS::Events::Rule")
        .iter()
        .filter(|(_, r)| r["Properties"].get("ScheduleExpression").is_some())
        .flat_map(|(_, r)| {
            r["Properties"]["Targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|target| {
            target["Input"]
                .as_str()
                .is_some_and(|i| serde_json::from_str::<Value>(i).is_ok_and(|p| p["all"] == true))
        })
        .count() as u64;
    mappings + chains
}

#[test]
fn the_events_mapping_caps_concurrency_and_replicator_concurrency_adds_up_every_cap() {
    let t = template();
    // The default: events cap 5 + the daily repair chain = 6; the redrive mapping is off.
    let s = resolve(&t, MINIMAL);
    let mapping = &s.get("EventsQueueMapping")["Properties"];
    assert_eq!(mapping["EventSourceArn"], "<EventsQueue.Arn>");
    assert_eq!(number(&mapping["ScalingConfig"]["MaximumConcurrency"]), 5);
    let env = |s: &Stack| s.get("Function")["Properties"]["Environment"]["Variables"].clone();
    assert_eq!(env(&s)["REPLICATOR_CONCURRENCY"], "6");

    // Every cap the parameter offers, with the redrive mapping and the schedule on and off: the
    // value the function is told is the sum of the caps the stack holds.
    let caps: Vec<String> = t["Parameters"]["MaxConcurrency"]["AllowedValues"]
        .as_array()
        .expect("MaxConcurrency is a list (the template adds by lookup)")
        .iter()
        .map(scalar_string)
        .collect();
    assert!(caps.contains(&scalar_string(
        &t["Parameters"]["MaxConcurrency"]["Default"]
    )));
    for cap in &caps {
        let c: u64 = cap.parse().unwrap();
        // SQS mappings accept 2..=1000; the sum must stay a valid REPLICATOR_CONCURRENCY.
        assert!((2..=1000).contains(&c), "{cap}");
        for redrive in ["false", "true"] {
            for schedule in ["rate(1 day)", ""] {
                let params = [
                    ("DestRegion", "us-west-2"),
                    ("MaxConcurrency", cap.as_str()),
                    ("RedriveFailureQueue", redrive),
                    ("BackfillSchedule", schedule),
                ];
                let s = resolve(&t, &params);
                let told = number(&env(&s)["REPLICATOR_CONCURRENCY"]);
                let expected =
                    c + if redrive == "true" { 2 } else { 0 } + u64::from(!schedule.is_empty());
                assert_eq!(told, expected, "{params:?}");
                assert_eq!(told, containers_by_caps(&s), "{params:?}");
                assert!(told <= 1000, "{params:?}");
                let settings = secret_replicator::settings::Settings::from_env(
                    &secret_replicator::settings::Env::from_pairs([
                        ("DEST_REGION", "us-west-2"),
                        ("REPLICATOR_CONCURRENCY", told.to_string().as_str()),
                        ("REPLICATOR_WRITE_TPS", "25"),
                    ]),
                )
                .expect("the template's settings are valid");
                assert_eq!(u64::from(settings.concurrency), told);
            }
        }
    }
}

#[test]
fn the_maximal_stack_keeps_its_schedule_and_alarm_mail() {
    let t = template();
    let s = resolve(&t, MAXIMAL);
    let rule = &s.get("BackfillScheduleRule")["Properties"];
    assert_eq!(rule["ScheduleExpression"], "rate(1 day)");
    assert_eq!(rule["Targets"][0]["Arn"], "<Function.Arn>");
    assert!(s.resources.contains_key("BackfillSchedulePermission"));
    assert!(s.resources.contains_key("AlarmEmailSubscription"));
}
