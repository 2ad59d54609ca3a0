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
