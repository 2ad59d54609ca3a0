use super::*;
use serde_json::json;

const ARN: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/payments/db-Xy12Zq";

fn me() -> Identity {
    Identity {
        function_name: "secret-replicator".into(),
        role_arn: None,
    }
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "create" => include_str!("../../tests/fixtures/events/cloudtrail-create-secret.json"),
        "delete" => {
            include_str!("../../tests/fixtures/events/cloudtrail-delete-secret-old-arn-casing.json")
        }
        "failed" => {
            include_str!("../../tests/fixtures/events/cloudtrail-put-secret-value-failed.json")
        }
        "pending" => {
            include_str!("../../tests/fixtures/events/cloudtrail-put-secret-value-pending.json")
        }
        "put" => include_str!("../../tests/fixtures/events/cloudtrail-put-secret-value.json"),
        "stage" => {
            include_str!("../../tests/fixtures/events/cloudtrail-update-secret-version-stage.json")
        }
        "label" => include_str!("../../tests/fixtures/events/native-secret-label-updated.json"),
        "rotation" => include_str!("../../tests/fixtures/events/service-rotation-succeeded.json"),
        "manual" => include_str!("../../tests/fixtures/events/manual-one.json"),
        "manual-all" => include_str!("../../tests/fixtures/events/manual-all-dry-run.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

fn replicate(ids: &[(&str, Option<&str>)]) -> Work {
    Work::Replicate(
        ids.iter()
            .map(|(id, name)| SecretRef {
                id: id.to_string(),
                name: name.map(str::to_string),
            })
            .collect(),
    )
}

fn skip(source: &str, reason: &'static str) -> Work {
    Work::Skip {
        source: source.to_string(),
        reason,
    }
}

fn work_of(v: &Value) -> Work {
    parse(v, &me()).unwrap().work
}

#[test]
fn every_fixture_maps_to_the_action_of_the_spec_table() {
    let cases: Vec<(&str, Work)> = vec![
        // The response's full ARN is what we call with; the request names the secret.
        ("create", replicate(&[(ARN, Some("prod/payments/db"))])),
        ("put", replicate(&[(ARN, Some("prod/payments/db"))])),
        ("stage", replicate(&[(ARN, Some("prod/payments/db"))])),
        ("label", replicate(&[(ARN, Some("prod/payments/db"))])),
        // A service event's ARN is not from responseElements: the source read names it.
        ("rotation", replicate(&[(ARN, None)])),
        ("failed", skip("prod/payments/db", reason::CALL_FAILED)),
        ("pending", skip(ARN, reason::NOT_CURRENT)),
        (
            "delete",
            Work::Delete(SecretRef {
                id: ARN.into(),
                name: Some("prod/payments/db".into()),
            }),
        ),
        (
            "manual",
            replicate(&[("prod/payments/db", Some("prod/payments/db"))]),
        ),
    ];
    for (name, want) in cases {
        assert_eq!(work_of(&fixture(name)), want, "fixture {name}");
    }
}

#[test]
fn invocation_kind_decides_how_failures_are_returned() {
    assert_eq!(
        parse(&fixture("put"), &me()).unwrap().invocation,
        Invocation::Event
    );
    assert!(Invocation::Event.fails_on_error());
    let manual = parse(&fixture("manual"), &me()).unwrap().invocation;
    assert_eq!(
        manual,
        Invocation::Manual {
            fail_on_error: false
        }
    );
    assert!(!manual.fails_on_error());
    let strict = parse(
        &json!({"source":"manual","secretId":"a","failOnError":true}),
        &me(),
    )
    .unwrap();
    assert!(strict.invocation.fails_on_error());
}

#[test]
fn the_event_region_is_the_source_region() {
    assert_eq!(
        parse(&fixture("put"), &me()).unwrap().region.as_deref(),
        Some("us-east-1")
    );
    let manual = parse(
        &json!({"source":"manual","secretId":"a","region":"eu-west-1"}),
        &me(),
    )
    .unwrap();
    assert_eq!(manual.region.as_deref(), Some("eu-west-1"));
}

#[test]
fn the_old_arn_spelling_is_found_case_insensitively() {
    let mut e = fixture("put");
    let response = e["detail"]["responseElements"].as_object_mut().unwrap();
    let arn = response.remove("arn").unwrap();
    response.insert("aRN".into(), arn);
    e["detail"]["requestParameters"]["secretId"] = json!(ARN);
    // With only ARNs in the event, the name comes from the response ARN minus its suffix.
    assert_eq!(work_of(&e), replicate(&[(ARN, Some("prod/payments/db"))]));
}

#[test]
fn a_partial_arn_is_never_stripped_by_guessing() {
    let mut e = fixture("put");
    let partial = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/payments/db-abcdef";
    e["detail"]["requestParameters"]["secretId"] = json!(partial);
    e["detail"]["responseElements"] = Value::Null;
    assert_eq!(work_of(&e), replicate(&[(partial, None)]));
}

#[test]
fn put_secret_value_replicates_only_when_the_value_becomes_current() {
    let mut e = fixture("put");
    for (stages, replicates) in [
        (json!(["AWSCURRENT"]), true),
        (json!(["AWSPENDING", "AWSCURRENT"]), true),
        (json!(["AWSPENDING"]), false),
        (json!(["custom"]), false),
        (Value::Null, true),
    ] {
        e["detail"]["requestParameters"]["versionStages"] = stages.clone();
        let work = work_of(&e);
        assert_eq!(
            matches!(work, Work::Replicate(_)),
            replicates,
            "{stages}: {work:?}"
        );
    }
}

#[test]
fn update_secret_version_stage_replicates_only_an_awscurrent_move() {
    let mut e = fixture("stage");
    e["detail"]["requestParameters"]["versionStage"] = json!("AWSPREVIOUS");
    assert!(matches!(
        work_of(&e),
        Work::Skip {
            reason: reason::NOT_CURRENT,
            ..
        }
    ));
    let mut e = fixture("stage");
    e["detail"]["requestParameters"]
        .as_object_mut()
        .unwrap()
        .remove("moveToVersionId");
    assert!(matches!(
        work_of(&e),
        Work::Skip {
            reason: reason::NOT_CURRENT,
            ..
        }
    ));
}

#[test]
fn a_label_other_than_awscurrent_is_skipped() {
    let mut e = fixture("label");
    e["detail"]["labelUpdated"] = json!("AWSPENDING");
    assert!(matches!(
        work_of(&e),
        Work::Skip {
            reason: reason::NOT_CURRENT,
            ..
        }
    ));
}

#[test]
fn events_that_change_no_value_are_skipped() {
    for name in [
        "GetSecretValue",
        "DescribeSecret",
        "ListSecrets",
        "ValidateResourcePolicy",
    ] {
        let mut e = fixture("put");
        e["detail"]["eventName"] = json!(name);
        assert!(
            matches!(
                work_of(&e),
                Work::Skip {
                    reason: reason::NOT_A_VALUE_CHANGE,
                    ..
                }
            ),
            "{name}"
        );
    }
    for name in ["TagResource", "UntagResource"] {
        let mut e = fixture("put");
        e["detail"]["eventName"] = json!(name);
        assert!(matches!(work_of(&e), Work::SyncTags(_)), "{name}");
    }
    let mut e = fixture("put");
    e["detail"]["eventName"] = json!("UpdateSecret");
    assert!(matches!(work_of(&e), Work::ReplicateWithMetadata(_)));
    let mut e = fixture("put");
    e["detail"]["eventName"] = json!("RestoreSecret");
    assert!(matches!(work_of(&e), Work::Replicate(_)));
}

#[test]
fn events_caused_by_this_function_are_skipped() {
    let mut e = fixture("put");
    e["detail"]["userIdentity"]["arn"] =
        json!("arn:aws:sts::222233334444:assumed-role/dest-role/secret-replicator");
    assert!(matches!(
        work_of(&e),
        Work::Skip {
            reason: reason::SELF_CAUSED,
            ..
        }
    ));

    // With the function's role known, the issuer must match as well.
    let issuer = "arn:aws:iam::111122223333:role/platform-admin";
    let with_role = |role: &str| Identity {
        function_name: "secret-replicator".into(),
        role_arn: Some(role.to_string()),
    };
    let skipped = |id: &Identity| {
        matches!(
            parse(&e, id).unwrap().work,
            Work::Skip {
                reason: reason::SELF_CAUSED,
                ..
            }
        )
    };
    assert!(skipped(&with_role(issuer)));
    assert!(!skipped(&with_role("arn:aws:iam::111122223333:role/other")));

    // Another session name, or an IAM user, is somebody else.
    let mut other = fixture("put");
    other["detail"]["userIdentity"]["arn"] =
        json!("arn:aws:sts::111122223333:assumed-role/platform-admin/secret-replicator-2");
    assert!(matches!(work_of(&other), Work::Replicate(_)));
    let mut user = e.clone();
    user["detail"]["userIdentity"]["type"] = json!("IAMUser");
    assert!(matches!(work_of(&user), Work::Replicate(_)));
}

#[test]
fn an_error_code_means_the_call_failed_and_is_skipped() {
    let mut e = fixture("create");
    e["detail"]["errorCode"] = json!("ResourceExistsException");
    assert!(matches!(
        work_of(&e),
        Work::Skip {
            reason: reason::CALL_FAILED,
            ..
        }
    ));
    // A null errorCode is no error.
    e["detail"]["errorCode"] = Value::Null;
    assert!(matches!(work_of(&e), Work::Replicate(_)));
}

#[test]
fn manual_payloads_name_one_or_several_secrets() {
    let p = json!({"source":"manual","secretIds":["a/b", ARN]});
    assert_eq!(work_of(&p), replicate(&[("a/b", Some("a/b")), (ARN, None)]));
    let both = json!({"source":"manual","secretId":"x","secretIds":["y"]});
    assert_eq!(
        work_of(&both),
        replicate(&[("x", Some("x")), ("y", Some("y"))])
    );
}

#[test]
fn malformed_payloads_are_invalid_events() {
    let cases = [
        json!("just a string"),
        json!({"foo": 1}),
        json!({"source": "aws.s3", "detail-type": "x", "detail": {}}),
        json!({"source": "aws.secretsmanager", "detail": {}}),
        json!({"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail"}),
        json!({"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail", "detail": {"eventName": "PutSecretValue"}}),
        json!({"source": "manual"}),
        json!({"source": "manual", "secretID": "typo"}),
        json!({"source": "manual", "secretIds": []}),
        json!({"source": "manual", "secretId": ""}),
        json!({"source": "manual", "secretId": 5}),
    ];
    for c in cases {
        let err = parse(&c, &me()).unwrap_err();
        assert_eq!(err.kind(), crate::outcome::ErrorKind::InvalidEvent, "{c}");
    }
}

#[test]
fn all_and_dry_run_are_manual_options() {
    let r = parse(&fixture("manual-all"), &me()).unwrap();
    assert_eq!(r.work, Work::All);
    assert!(r.dry_run);
    let r = parse(
        &json!({"source":"manual","secretId":"a","dryRun":true}),
        &me(),
    )
    .unwrap();
    assert!(r.dry_run && matches!(r.work, Work::Replicate(_)));
    let both = parse(&json!({"source":"manual","secretId":"a","all":true}), &me());
    assert!(both.is_err());
}

#[test]
fn names_come_only_from_full_response_arns() {
    assert_eq!(name_from_full_arn(ARN).as_deref(), Some("prod/payments/db"));
    assert_eq!(
        name_from_full_arn("arn:aws:secretsmanager:us-east-1:1:secret:a:b-AbCdEf").as_deref(),
        Some("a:b")
    );
    assert_eq!(
        name_from_full_arn("arn:aws:secretsmanager:us-east-1:1:secret:abc"),
        None
    );
    assert_eq!(name_from_full_arn("not-an-arn"), None);
    assert_eq!(name_from_id("app/db").as_deref(), Some("app/db"));
    assert_eq!(name_from_id(ARN), None);
}
