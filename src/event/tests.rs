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
        "create-null" => {
            include_str!("../../tests/fixtures/events/cloudtrail-create-secret-null-response.json")
        }
        "create-aRN" => {
            include_str!("../../tests/fixtures/events/cloudtrail-create-secret-old-arn-casing.json")
        }
        "create-synthetic-version-id" => include_str!(
            "../../tests/fixtures/events/cloudtrail-create-secret-synthetic-version-id.json"
        ),
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

fn skip(source: &str, reason: SkipReason) -> Work {
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
        // A service event's SecretId is a full ARN AWS wrote: its suffix drops (SPEC §4).
        ("rotation", replicate(&[(ARN, Some("prod/payments/db"))])),
        ("failed", skip("prod/payments/db", SkipReason::CallFailed)),
        ("pending", skip(ARN, SkipReason::NotCurrent)),
        (
            "delete",
            Work::Delete(
                SecretRef {
                    id: ARN.into(),
                    name: Some("prod/payments/db".into()),
                },
                // The fixture's responseElements.deletionDate, "Nov 27, 2026, 9:15:02 AM".
                DeletionWindow::At(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_770_902),
                ),
            ),
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
            reason: SkipReason::NotCurrent,
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
            reason: SkipReason::NotCurrent,
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
            reason: SkipReason::NotCurrent,
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
                    reason: SkipReason::NotAValueChange,
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
            reason: SkipReason::SelfCaused,
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
                reason: SkipReason::SelfCaused,
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
            reason: SkipReason::CallFailed,
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
fn a_long_rejection_is_cut_to_the_limit_mark_included() {
    // A source name of 600 bytes is quoted in the message: cut, with the mark, within 512.
    for len in [MAX_MESSAGE - 40, MAX_MESSAGE, 600, 5000] {
        let name = "é".repeat(len / 2);
        let payload = json!({"source": name, "detail-type": "x", "detail": {}});
        let Err(Error::InvalidEvent(m)) = parse(&payload, &me()) else {
            panic!("expected InvalidEvent");
        };
        assert!(m.len() <= MAX_MESSAGE, "{len}: {} bytes", m.len());
    }
    let m = bounded("x".repeat(2000));
    assert_eq!(m.len(), MAX_MESSAGE);
    assert!(m.ends_with("… (truncated)"));
}

#[test]
fn a_manual_field_of_the_wrong_type_is_named() {
    let cases = [
        (
            json!({"source": "manual", "secretId": 5}),
            "\"secretId\" must be a string",
        ),
        (
            json!({"source": "manual", "all": true, "resume": 42}),
            "\"resume\" must be a string",
        ),
        (
            json!({"source": "manual", "all": "yes"}),
            "\"all\" must be true or false",
        ),
        (
            json!({"source": "manual", "all": true, "dryRun": 1}),
            "\"dryRun\" must be true or false",
        ),
        (
            json!({"source": "manual", "secretIds": ["a", 1]}),
            "\"secretIds\" must be a list of strings",
        ),
        (
            json!({"source": "manual", "all": true, "region": ["x"]}),
            "\"region\" must be a string",
        ),
    ];
    for (payload, expected) in cases {
        let Err(Error::InvalidEvent(m)) = parse(&payload, &me()) else {
            panic!("{payload}: expected InvalidEvent");
        };
        assert_eq!(m, format!("manual payload: {expected}"), "{payload}");
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
    let name = crate::arn::secret_name_if_full;
    assert_eq!(name(ARN).as_deref(), Some("prod/payments/db"));
    assert_eq!(
        name("arn:aws:secretsmanager:us-east-1:1:secret:a:b-AbCdEf").as_deref(),
        Some("a:b")
    );
    assert_eq!(name("arn:aws:secretsmanager:us-east-1:1:secret:abc"), None);
    assert_eq!(name("not-an-arn"), None);
    assert_eq!(name_from_id("app/db").as_deref(), Some("app/db"));
    assert_eq!(name_from_id(ARN), None);
}

#[test]
fn every_recorded_create_secret_shape_replicates_and_a_response_version_id_is_ignored() {
    // Whether a CreateSecret made a version is the source read's to say (SPEC §5): real records
    // carry `responseElements` null, `{"arn"}` or `{"aRN"}`, and none carries a `versionId`.
    let by_name = replicate(&[("prod/payments/db", Some("prod/payments/db"))]);
    let by_arn = replicate(&[(ARN, Some("prod/payments/db"))]);
    for (fixture, want) in [
        ("create", &by_arn),
        ("create-null", &by_name),
        ("create-aRN", &by_arn),
        ("create-synthetic-version-id", &by_arn),
    ] {
        let r = parse(&self::fixture(fixture), &me()).unwrap();
        assert_eq!(&r.work, want, "{fixture}");
        // The stale-read guard is armed from the request's token, never from the response.
        assert_eq!(
            r.change.version.as_deref(),
            Some("6c1a8b2e-3d4f-4a5b-9c8d-7e6f5a4b3c2d"),
            "{fixture}"
        );
        assert!(r.change.created, "{fixture}");
    }
    // The synthetic versionId decides nothing: removing it changes nothing.
    let mut without = fixture("create-synthetic-version-id");
    without["detail"]["responseElements"]
        .as_object_mut()
        .unwrap()
        .remove("versionId");
    assert_eq!(
        parse(&without, &me()).unwrap(),
        parse(&fixture("create-synthetic-version-id"), &me()).unwrap()
    );
}

#[test]
fn the_change_an_event_reports_comes_from_its_record() {
    let at = crate::time::parse_rfc3339("2026-11-20T09:15:02Z");
    let put = parse(&fixture("put"), &me()).unwrap().change;
    assert_eq!(
        put,
        Change {
            at,
            version: Some("0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d".into()),
            created: false,
        }
    );
    // UpdateSecretVersionStage names the version it made current.
    let stage = parse(&fixture("stage"), &me()).unwrap().change;
    assert_eq!(
        stage.version.as_deref(),
        Some("1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e")
    );
    // RotationSucceeded names none (its version predates the event); manual payloads neither.
    let rotation = parse(&fixture("rotation"), &me()).unwrap().change;
    assert_eq!(rotation.version, None);
    assert!(rotation.at.is_some());
    assert_eq!(
        parse(&fixture("manual"), &me()).unwrap().change,
        Change::default()
    );
    // A record without eventTime falls back to EventBridge's `time`.
    let mut e = fixture("put");
    e["detail"].as_object_mut().unwrap().remove("eventTime");
    assert_eq!(
        parse(&e, &me()).unwrap().change.at,
        crate::time::parse_rfc3339("2026-11-20T09:15:03Z")
    );
}

#[test]
fn the_guard_is_armed_only_by_a_named_version_at_most_fifteen_minutes_old() {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let change = Change {
        at: Some(at),
        version: Some("v2".into()),
        created: false,
    };
    assert_eq!(change.guard(at), Some("v2"));
    assert_eq!(change.guard(at + GUARD_MAX_AGE), Some("v2"));
    assert_eq!(
        change.guard(at + GUARD_MAX_AGE + Duration::from_secs(1)),
        None
    );
    // A clock behind the event's time counts as age zero.
    assert_eq!(change.guard(at - Duration::from_secs(5)), Some("v2"));
    assert_eq!(
        Change {
            at: None,
            ..change.clone()
        }
        .guard(at),
        None
    );
    assert_eq!(
        Change {
            version: None,
            ..change.clone()
        }
        .guard(at),
        None
    );
    // Young creates: under a minute, CreateSecret only.
    let create = Change {
        created: true,
        ..change.clone()
    };
    assert!(create.young_create(at + Duration::from_secs(59)));
    assert!(!create.young_create(at + YOUNG_CREATE));
    assert!(!change.young_create(at));
}

#[test]
fn rotation_ids_come_from_service_event_details_too() {
    let mut e = fixture("rotation");
    e["detail"]
        .as_object_mut()
        .unwrap()
        .remove("additionalEventData");
    e["detail"]["serviceEventDetails"] = json!({"secretId": ARN});
    // AWS writes the full ARN there: its fixed suffix drops to give the name (SPEC §4), so a
    // rotation of a secret no rule matches is skipped before any read.
    assert_eq!(work_of(&e), replicate(&[(ARN, Some("prod/payments/db"))]));
}

fn delete_with(params: Value, response: Value) -> DeletionWindow {
    let mut e = fixture("delete");
    e["detail"]["requestParameters"] = params;
    e["detail"]["responseElements"] = response;
    match work_of(&e) {
        Work::Delete(_, w) => w,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_deletion_window_comes_from_the_event() {
    use std::time::{Duration, UNIX_EPOCH};
    let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
    let id = json!({"secretId": "prod/payments/db"});
    let cases = [
        (
            json!({"secretId": "x", "recoveryWindowInDays": 7}),
            json!({"arn": ARN, "deletionDate": "Nov 27, 2026, 9:15:02 AM"}),
            DeletionWindow::At(at(1_795_770_902)),
        ),
        (
            id.clone(),
            json!({"arn": ARN, "deletionDate": "Nov 27, 2026 9:15:02\u{202f}PM"}),
            DeletionWindow::At(at(1_795_770_902 + 12 * 3600)),
        ),
        (
            id.clone(),
            json!({"arn": ARN, "deletionDate": "2026-11-27T09:15:02Z"}),
            DeletionWindow::At(at(1_795_770_902)),
        ),
        // Unreadable or missing date: the request's window (30 when absent) from eventTime.
        (
            json!({"secretId": "x", "recoveryWindowInDays": 10}),
            json!({"arn": ARN, "deletionDate": "soon"}),
            DeletionWindow::After {
                days: 10,
                since: crate::time::parse_rfc3339("2026-11-20T09:15:02Z"),
            },
        ),
        (
            id.clone(),
            Value::Null,
            DeletionWindow::After {
                days: 30,
                since: crate::time::parse_rfc3339("2026-11-20T09:15:02Z"),
            },
        ),
        (
            json!({"secretId": "x", "forceDeleteWithoutRecovery": true}),
            json!({"arn": ARN, "deletionDate": "Nov 20, 2026, 9:15:02 AM"}),
            DeletionWindow::Forced,
        ),
    ];
    for (params, response, want) in cases {
        assert_eq!(
            delete_with(params.clone(), response.clone()),
            want,
            "{params} {response}"
        );
    }
}

#[test]
fn the_window_is_what_is_left_rounded_up_within_7_and_30_days() {
    use std::time::Duration;
    let now = std::time::SystemTime::now();
    let in_days = |d: u64| now + Duration::from_secs(d * 86_400 - 60);
    let cases = [
        (DeletionWindow::At(in_days(20)), 20),
        (DeletionWindow::At(in_days(2)), 7),
        (DeletionWindow::At(in_days(40)), 30),
        (DeletionWindow::At(now - Duration::from_secs(5)), 7),
        (
            DeletionWindow::After {
                days: 30,
                since: Some(now - Duration::from_secs(3 * 86_400)),
            },
            27,
        ),
        (
            DeletionWindow::After {
                days: 7,
                since: None,
            },
            7,
        ),
        (DeletionWindow::Forced, 7),
        (DeletionWindow::Unknown, 30),
    ];
    for (w, want) in cases {
        assert_eq!(w.days(now), want, "{w:?}");
    }
}

// Hostile payloads (issue 14): whatever reaches the function from outside either parses or is a
// small InvalidEvent; never a panic, never another kind. Each payload kind is one strategy in
// `payload()`, so a new kind (failure records, SQS batches) is one more arm.
mod hostile {
    use super::*;
    use proptest::prelude::*;

    const FIXTURES: &[&str] = &[
        "create",
        "delete",
        "failed",
        "pending",
        "put",
        "stage",
        "label",
        "rotation",
        "manual",
        "manual-all",
    ];

    /// Arbitrary JSON, bounded in depth and breadth.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-zA-Z0-9:/*_.-]{0,12}".prop_map(Value::String),
            prop_oneof![
                Just("AWSCURRENT"),
                Just("AWSPENDING"),
                Just("manual"),
                Just("aws.secretsmanager"),
                Just("AssumedRole"),
                Just(ARN),
            ]
            .prop_map(|s| Value::String(s.into())),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec(("[a-zA-Z]{1,10}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    /// Every object path (keys only) inside a document, so a mutation can target any field.
    fn paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if let Value::Object(m) = v {
            for (k, child) in m {
                prefix.push(k.clone());
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
    }

    /// A valid document with one field replaced by arbitrary JSON, or removed.
    fn mutated() -> impl Strategy<Value = Value> {
        (
            proptest::sample::select(FIXTURES),
            any::<proptest::sample::Index>(),
            proptest::option::of(json()),
        )
            .prop_map(|(name, index, replacement)| {
                let mut doc = fixture(name);
                let mut all = Vec::new();
                paths(&doc, &mut Vec::new(), &mut all);
                if all.is_empty() {
                    return doc;
                }
                let path = &all[index.index(all.len())];
                let mut node = &mut doc;
                for key in &path[..path.len() - 1] {
                    node = &mut node[key.as_str()];
                }
                if let Value::Object(m) = node {
                    let last = &path[path.len() - 1];
                    match replacement {
                        Some(v) => {
                            m.insert(last.clone(), v);
                        }
                        None => {
                            m.shift_remove(last);
                        }
                    }
                }
                doc
            })
    }

    /// Manual payloads built from their own keys, cursors included.
    fn manual() -> impl Strategy<Value = Value> {
        proptest::collection::vec(
            (
                proptest::sample::select(
                    &[
                        "secretId",
                        "secretIds",
                        "all",
                        "dryRun",
                        "failOnError",
                        "region",
                        "resume",
                        "bogus",
                    ][..],
                ),
                json(),
            ),
            0..5,
        )
        .prop_map(|kv| {
            let mut m: Map<String, Value> =
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            m.insert("source".into(), json!("manual"));
            Value::Object(m)
        })
    }

    fn payload() -> impl Strategy<Value = Value> {
        prop_oneof![mutated(), manual(), json()]
    }

    fn assert_located_invalid_event(r: Result<Request, Error>) -> Result<(), TestCaseError> {
        if let Err(e) = r {
            let Error::InvalidEvent(message) = &e else {
                return Err(TestCaseError::fail(format!("not InvalidEvent: {e:?}")));
            };
            prop_assert!(!message.is_empty());
            prop_assert!(
                message.len() < 1024,
                "rejection too long: {} bytes",
                message.len()
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_payload_parses_or_is_a_small_invalid_event(p in payload()) {
            assert_located_invalid_event(parse(&p, &me()))?;
        }

        #[test]
        fn any_payload_text_reads_or_is_a_small_invalid_event(p in payload(), cut in any::<proptest::sample::Index>()) {
            let text = p.to_string();
            let cut = cut.index(text.len() + 1);
            let text = text.get(..cut).unwrap_or(&text);
            match read_payload(text) {
                Ok(v) => assert_located_invalid_event(parse(&v, &me()))?,
                Err(Error::InvalidEvent(m)) => prop_assert!(m.len() < 256),
                Err(e) => return Err(TestCaseError::fail(format!("not InvalidEvent: {e:?}"))),
            }
        }

        #[test]
        fn nesting_past_the_limit_is_reported_as_too_deep(depth in (MAX_DEPTH + 1)..5000, object in any::<bool>()) {
            let (open, close) = if object { ("{\"a\":", "}") } else { ("[", "]") };
            let text = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            match read_payload(&text) {
                Err(Error::InvalidEvent(m)) => {
                    prop_assert!(m.contains("deeper than the limit of 64"), "{m}");
                }
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            }
        }
    }

    #[test]
    fn a_huge_unknown_key_gives_a_small_rejection() {
        let mut payload = json!({"source": "manual"});
        payload["k".repeat(1 << 20).as_str()] = json!(1);
        let Err(Error::InvalidEvent(m)) = parse(&payload, &me()) else {
            panic!("expected InvalidEvent");
        };
        assert!(m.len() <= MAX_MESSAGE + 20, "{} bytes", m.len());
    }

    #[test]
    fn nesting_at_the_limit_is_read() {
        let text = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(read_payload(&text).is_ok());
    }

    #[test]
    fn brackets_inside_strings_do_not_count_as_nesting() {
        let text = format!("{{\"a\": \"{}\\\"{}\"}}", "[".repeat(500), "{".repeat(500));
        assert!(read_payload(&text).is_ok());
    }

    #[test]
    fn a_syntax_error_is_located_and_does_not_quote_the_input() {
        let Err(Error::InvalidEvent(m)) = read_payload("{\"secretId\": s3cr3t}") else {
            panic!("expected InvalidEvent");
        };
        assert!(m.contains("line 1, column"), "{m}");
        assert!(!m.contains("s3cr3t"), "{m}");
    }
}
