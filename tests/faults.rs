//! The error table (SPEC §7) end to end: AWS failures injected by the fault proxy in front of
//! moto, and the product's own failures (too large, transform failed, invalid event, invalid
//! config). Each asserts the kind, status code and retry class in the result document, and
//! whether the SDK retried (proxy hits). Also: one failing destination never stops another.

// The SDK call futures nest deeply; the default limit (128) is too low for their layout.
#![recursion_limit = "256"]

mod common;

use aws_sdk_secretsmanager::Client as Sm;
use common::app::*;
use common::{Fault, FaultProxy, Match, Moto, Rule};
use secret_replicator::app::{self, App, Failure};
use secret_replicator::aws::AwsStores;
use secret_replicator::metrics::Metrics;
use secret_replicator::settings::{Env, Settings};
use serde_json::{Value, json};
use std::time::Duration;

fn west_copy() -> String {
    json!({"rules": [{"match": ["app/**"], "destinations": [{"region": "us-west-2"}]}]}).to_string()
}

/// moto behind a fault proxy; the App talks to the proxy, the test to moto directly.
struct Rig {
    moto: Moto,
    proxy: FaultProxy,
    east: Sm,
    west: Sm,
    source: Seeded,
    app: App<AwsStores>,
}

async fn rig_with(config: &str, attempt_timeout: Option<Duration>) -> Rig {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr());
    let east = sm(&moto.endpoint(), "us-east-1").await;
    let west = sm(&moto.endpoint(), "us-west-2").await;
    let source = seed_secret(&east, "app/db", "v1").await;
    let sdk = fast_retry_sdk_config(&proxy.endpoint(), attempt_timeout).await;
    let app = app_from(settings(config, &[]), sdk).await;
    moto.reset_calls();
    Rig {
        moto,
        proxy,
        east,
        west,
        source,
        app,
    }
}

/// A rig whose destination `app/db` in us-west-2 already holds v1 (owned, known to the warm
/// container) while the source has moved on to v2: the next event writes PutSecretValue.
async fn replicated_rig(attempt_timeout: Option<Duration>) -> Rig {
    let rig = rig_with(&west_copy(), attempt_timeout).await;
    ok(rig.app.handle(&put_event(&rig.source)).await);
    assert_eq!(current(&rig.west, "app/db").await.as_deref(), Some("v1"));
    put_value(&rig.east, "app/db", "v2").await;
    rig.proxy.reset_counts();
    rig.moto.reset_calls();
    rig
}

/// One row of the error table, as injected on PutSecretValue.
struct Case {
    fault: Fault,
    kind: &'static str,
    status: u64,
    class: &'static str,
    /// Requests the SDK sends (1 = not retried).
    hits: usize,
    /// The AWS error code the result keeps (transport failures have none worth asserting).
    code: Option<&'static str>,
}

impl Case {
    fn new(
        fault: Fault,
        kind: &'static str,
        status: u64,
        class: &'static str,
        hits: usize,
    ) -> Case {
        Case {
            fault,
            kind,
            status,
            class,
            hits,
            code: None,
        }
    }

    fn code(self, code: &'static str) -> Case {
        Case {
            code: Some(code),
            ..self
        }
    }
}

#[tokio::test]
async fn every_aws_failure_of_a_write_is_reported_with_the_kind_code_and_retry_class_of_the_table()
{
    let rig = replicated_rig(None).await;
    let max = MAX_ATTEMPTS as usize;
    // (fault on PutSecretValue, expected kind / status / retry class / SDK attempts / AWS code)
    let table = [
        Case::new(Fault::access_denied(), "AccessDenied", 403, "permanent", 1)
            .code("AccessDeniedException"),
        Case::new(Fault::throttling(), "Throttled", 429, "retriable", max)
            .code("ThrottlingException"),
        Case::new(
            Fault::json_error(400, "LimitExceededException", "Too many versions"),
            "Throttled",
            429,
            "retriable",
            1,
        )
        .code("LimitExceededException"),
        Case::new(
            Fault::internal_error(),
            "ServiceError",
            502,
            "retriable",
            max,
        )
        .code("InternalServiceError"),
        Case::new(Fault::Status(503), "ServiceError", 502, "retriable", max),
        Case::new(Fault::Reset, "Timeout", 504, "retriable", max),
        Case::new(
            Fault::json_error(400, "EncryptionFailure", "KMS key is disabled"),
            "KmsUnavailable",
            424,
            "permanent",
            1,
        )
        .code("EncryptionFailure"),
        Case::new(
            Fault::json_error(400, "DecryptionFailure", "cannot decrypt"),
            "KmsUnavailable",
            424,
            "permanent",
            1,
        )
        .code("DecryptionFailure"),
        Case::new(
            Fault::json_error(400, "InvalidParameterException", "bad parameter"),
            "AwsClientError",
            400,
            "permanent",
            1,
        )
        .code("InvalidParameterException"),
    ];
    let mut mismatches = Vec::new();
    for Case {
        fault,
        kind,
        status,
        class,
        hits,
        code,
    } in table
    {
        let label = format!("{fault:?}");
        rig.proxy.clear_rules();
        rig.proxy.reset_counts();
        rig.proxy
            .add_rule(Rule::new(Match::op("PutSecretValue"), fault));
        let doc = failed(rig.app.handle(&put_event(&rig.source)).await);
        let r = only(&doc);
        let got = (
            r["status"].clone(),
            r["error"]["kind"].clone(),
            r["statusCode"].clone(),
            r["retryClass"].clone(),
            rig.proxy.hits("PutSecretValue"),
            code.and(r["error"].get("code").cloned()),
            doc["statusCode"].clone(),
        );
        let want = (
            json!("failed"),
            json!(kind),
            json!(status),
            json!(class),
            hits,
            code.map(|c| json!(c)),
            json!(status),
        );
        eprintln!("{label}: hits {}", got.4);
        if got != want {
            mismatches.push(format!(
                "{label}:\n  got  {got:?}\n  want {want:?}\n  doc  {doc}"
            ));
        }
    }
    rig.proxy.clear_rules();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // Nothing got through.
    assert_eq!(rig.moto.count("PutSecretValue"), 0);
    assert_eq!(current(&rig.west, "app/db").await.as_deref(), Some("v1"));
    // And with the faults gone, the same App replicates again.
    ok(rig.app.handle(&put_event(&rig.source)).await);
    assert_eq!(current(&rig.west, "app/db").await.as_deref(), Some("v2"));
}

#[tokio::test]
async fn a_failed_event_invocation_is_a_lambda_error_typed_by_the_first_failure() {
    let rig = replicated_rig(None).await;
    rig.proxy.add_rule(Rule::new(
        Match::op("PutSecretValue"),
        Fault::access_denied(),
    ));

    let failure = match rig.app.handle(&put_event(&rig.source)).await {
        Err(f) => f,
        Ok(r) => panic!("should fail: {}", r.to_json()),
    };
    let document = failure.0.to_json();
    let diagnostic = lambda_runtime::Diagnostic::from(failure);

    assert_eq!(diagnostic.error_type, "AccessDenied");
    assert_eq!(diagnostic.error_message, document);
    let doc: Value = serde_json::from_str(&diagnostic.error_message).unwrap();
    assert_error(only(&doc), "AccessDenied", 403, "permanent");
    assert_eq!(only(&doc)["action"], "update", "{doc}");
}

#[tokio::test]
async fn transient_failures_followed_by_success_are_retried_within_the_invocation() {
    let rig = replicated_rig(None).await;
    for (fault, value) in [
        (Fault::throttling(), "v2"),
        (Fault::internal_error(), "v3"),
        (Fault::Reset, "v4"),
    ] {
        if value != "v2" {
            put_value(&rig.east, "app/db", value).await;
        }
        rig.proxy.clear_rules();
        rig.proxy.reset_counts();
        rig.proxy
            .add_rule(Rule::new(Match::op("PutSecretValue"), fault.clone()).times(1));

        let doc = ok(rig.app.handle(&put_event(&rig.source)).await);

        assert_eq!(only(&doc)["status"], "replicated", "{fault:?}: {doc}");
        assert_eq!(rig.proxy.hits("PutSecretValue"), 2, "{fault:?}");
        assert_eq!(current(&rig.west, "app/db").await.as_deref(), Some(value));
    }
}

#[tokio::test]
async fn a_response_slower_than_the_attempt_timeout_is_a_retriable_504_timeout() {
    let rig = replicated_rig(Some(Duration::from_secs(1))).await;
    rig.proxy.add_rule(Rule::new(
        Match::op("PutSecretValue"),
        Fault::Delay(Duration::from_secs(3)),
    ));

    let doc = failed(rig.app.handle(&put_event(&rig.source)).await);

    assert_error(only(&doc), "Timeout", 504, "retriable");
    assert_eq!(rig.proxy.hits("PutSecretValue"), MAX_ATTEMPTS as usize);
}

#[tokio::test]
async fn sts_access_denied_on_assume_role_is_a_permanent_403() {
    let config = json!({"rules": [{"destinations": [
        {"region": "us-west-2", "account_role_arn": DEST_ROLE, "external_id": EXTERNAL_ID}
    ]}]})
    .to_string();
    let rig = rig_with(&config, None).await;
    rig.proxy.add_rule(Rule::new(
        Match::op("AssumeRole"),
        Fault::sts_access_denied(),
    ));

    let doc = failed(rig.app.handle(&put_event(&rig.source)).await);

    let r = only(&doc);
    assert_error(r, "AccessDenied", 403, "permanent");
    assert_eq!(r["error"]["code"], "AccessDenied", "{doc}");
    assert_eq!(r["destination"]["account"], DEST_ACCOUNT, "{doc}");
    assert_eq!(rig.proxy.hits("AssumeRole"), 1);
    assert!(writes(&rig.moto).is_empty(), "{:?}", writes(&rig.moto));
}

#[tokio::test]
async fn sts_throttling_on_assume_role_is_retried_then_a_retriable_429() {
    let config = json!({"rules": [{"destinations": [
        {"region": "us-west-2", "account_role_arn": DEST_ROLE, "external_id": EXTERNAL_ID}
    ]}]})
    .to_string();
    let rig = rig_with(&config, None).await;
    rig.proxy.add_rule(Rule::new(
        Match::op("AssumeRole"),
        Fault::query_error(400, "Throttling", "Rate exceeded"),
    ));

    let doc = failed(rig.app.handle(&put_event(&rig.source)).await);

    assert_error(only(&doc), "Throttled", 429, "retriable");
    assert_eq!(rig.proxy.hits("AssumeRole"), MAX_ATTEMPTS as usize);

    // Once STS answers again, the next invocation assumes the role and writes.
    rig.proxy.clear_rules();
    let doc = ok(rig.app.handle(&put_event(&rig.source)).await);
    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
}

#[tokio::test]
async fn a_missing_source_is_a_top_level_404_with_no_results() {
    let rig = rig_with(&west_copy(), None).await;
    let missing = Seeded {
        arn: format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/missing-AbCdEf"),
        name: "app/missing".into(),
        version: String::new(),
    };

    // An event: a Lambda error.
    let doc = failed(rig.app.handle(&put_event(&missing)).await);
    assert_error(&doc, "SourceNotFound", 404, "permanent");
    assert_eq!(doc["results"], json!([]), "{doc}");
    // The manual payload: the document.
    let doc = ok(rig.app.handle(&manual("app/missing")).await);
    assert_error(&doc, "SourceNotFound", 404, "permanent");
    assert_eq!(doc["results"], json!([]), "{doc}");
    // ResourceNotFoundException on the read of a secret that exists (deleted meanwhile).
    rig.proxy.reset_counts();
    rig.proxy.add_rule(Rule::new(
        Match::op("GetSecretValue"),
        Fault::json_error(
            400,
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        ),
    ));
    let doc = failed(rig.app.handle(&put_event(&rig.source)).await);
    assert_error(&doc, "SourceNotFound", 404, "permanent");
    assert_eq!(doc["results"], json!([]), "{doc}");
    assert_eq!(rig.proxy.hits("GetSecretValue"), 1, "never retried");
    assert!(writes(&rig.moto).is_empty());
}

#[tokio::test]
async fn failures_of_the_source_read_are_top_level_with_the_kind_of_the_table() {
    let rig = rig_with(&west_copy(), None).await;
    let max = MAX_ATTEMPTS as usize;
    let table = [
        Case::new(Fault::access_denied(), "AccessDenied", 403, "permanent", 1),
        Case::new(
            Fault::json_error(400, "DecryptionFailure", "cannot decrypt with the key"),
            "KmsUnavailable",
            424,
            "permanent",
            1,
        ),
        Case::new(
            Fault::internal_error(),
            "ServiceError",
            502,
            "retriable",
            max,
        ),
        Case::new(Fault::Reset, "Timeout", 504, "retriable", max),
    ];
    for case in table {
        rig.proxy.clear_rules();
        rig.proxy.reset_counts();
        let label = format!("{:?}", case.fault);
        rig.proxy
            .add_rule(Rule::new(Match::op("GetSecretValue"), case.fault));
        let doc = failed(rig.app.handle(&put_event(&rig.source)).await);
        assert_eq!(doc["error"]["kind"], case.kind, "{label}: {doc}");
        assert_eq!(doc["statusCode"], case.status, "{label}: {doc}");
        assert_eq!(doc["retryClass"], case.class, "{label}: {doc}");
        assert_eq!(doc["results"], json!([]), "{label}: {doc}");
        assert_eq!(rig.proxy.hits("GetSecretValue"), case.hits, "{label}");
    }
    assert!(writes(&rig.moto).is_empty(), "{:?}", writes(&rig.moto));
}

#[tokio::test]
async fn a_missing_secret_in_a_list_fails_its_own_line_only() {
    let rig = rig_with(&west_copy(), None).await;
    let payload = json!({"source": "manual", "secretIds": ["app/db", "app/missing"]});

    let doc = ok(rig.app.handle(&payload).await);

    assert_eq!(doc["statusCode"], 207, "{doc}");
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{doc}");
    let missing = results
        .iter()
        .find(|r| r["status"] == "failed")
        .expect("a failed line");
    assert_error(missing, "SourceNotFound", 404, "permanent");
    assert!(
        missing["source"].as_str().unwrap().contains("app/missing"),
        "{doc}"
    );
    assert_eq!(current(&rig.west, "app/db").await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn a_configured_kms_key_that_does_not_exist_is_a_424_and_changes_nothing() {
    let rig = replicated_rig(None).await;
    let config = json!({"rules": [{"destinations": [
        {"region": "us-west-2", "kms_key_id": "alias/does-not-exist"}
    ]}]})
    .to_string();
    let fresh = app_with(&config, &rig.moto.endpoint()).await;
    rig.moto.reset_calls();

    let doc = failed(fresh.handle(&put_event(&rig.source)).await);

    assert_error(only(&doc), "KmsUnavailable", 424, "permanent");
    assert!(writes(&rig.moto).is_empty(), "{:?}", writes(&rig.moto));
    assert_eq!(current(&rig.west, "app/db").await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn a_transformed_value_over_the_size_limit_is_a_413_and_is_not_written() {
    let rig = rig_with(
        &json!({"rules": [{"destinations": [
            {"region": "us-west-2", "name": "grown/${SECRET_NAME}", "transforms": [{"sed": "s/x/xxxxxxxx/g"}]},
            {"region": "us-west-2", "name": "suffixed/${SECRET_NAME}", "transforms": [{"sed": "s/$/-with-a-suffix-that-crosses-the-limit/"}]},
            {"region": "us-west-2", "name": "plain/${SECRET_NAME}"}
        ]}]})
        .to_string(),
        None,
    )
    .await;
    // 65,520 bytes: within the limit as it is, over it after either transform.
    let near_limit = "x".repeat(65_520);
    put_value(&rig.east, "app/db", &near_limit).await;
    rig.moto.reset_calls();

    let doc = failed(rig.app.handle(&put_event(&rig.source)).await);

    for name in ["grown/app/db", "suffixed/app/db"] {
        let r = result_for(&doc, name);
        assert_error(r, "TooLarge", 413, "permanent");
        assert!(!exists(&rig.west, name).await, "{name}");
    }
    assert_eq!(
        result_for(&doc, "plain/app/db")["status"],
        "replicated",
        "{doc}"
    );
    assert_eq!(
        current(&rig.west, "plain/app/db").await.as_deref(),
        Some(near_limit.as_str())
    );
    assert_eq!(doc["statusCode"], 207, "{doc}");
}

#[tokio::test]
async fn the_size_limit_counts_utf8_bytes_not_characters() {
    let rig = rig_with(
        &json!({"rules": [{"destinations": [
            {"region": "us-west-2", "transforms": [{"sed": "s/$/ééééééééééééééééééééé/"}]}
        ]}]})
        .to_string(),
        None,
    )
    .await;
    // 32,760 characters, 65,520 bytes; the transform adds 21 characters (42 bytes).
    put_value(&rig.east, "app/db", &"é".repeat(32_760)).await;

    let doc = failed(rig.app.handle(&put_event(&rig.source)).await);

    assert_error(only(&doc), "TooLarge", 413, "permanent");
    assert!(!exists(&rig.west, "app/db").await);
}

#[tokio::test]
async fn a_json_mapping_on_a_value_that_is_not_json_is_a_422() {
    let rig = rig_with(
        &json!({"rules": [{"destinations": [
            {"region": "us-west-2", "transforms": [{"json": [{"path": "$.host", "set": "x"}]}]}
        ]}]})
        .to_string(),
        None,
    )
    .await;
    put_value(&rig.east, "app/db", "host=db.us-east-1 password=hunter2").await;
    rig.moto.reset_calls();

    let doc = failed(rig.app.handle(&put_event(&rig.source)).await);

    assert_error(only(&doc), "TransformFailed", 422, "permanent");
    assert!(writes(&rig.moto).is_empty(), "{:?}", writes(&rig.moto));
    assert!(!exists(&rig.west, "app/db").await);
}

#[tokio::test]
async fn a_required_json_path_that_selects_nothing_is_a_422() {
    let rig = rig_with(
        &json!({"rules": [{"destinations": [
            {"region": "us-west-2", "transforms": [{"json": [{"path": "$.port", "set": 5433, "required": true}]}]}
        ]}]})
        .to_string(),
        None,
    )
    .await;
    put_value(&rig.east, "app/db", r#"{"host":"db"}"#).await;

    let doc = failed(rig.app.handle(&put_event(&rig.source)).await);

    assert_error(only(&doc), "TransformFailed", 422, "permanent");
    assert!(!exists(&rig.west, "app/db").await);
}

#[tokio::test]
async fn invalid_events_are_a_top_level_400_with_no_results_and_no_calls() {
    let rig = rig_with(&west_copy(), None).await;
    rig.moto.reset_calls();

    for payload in [
        json!({"foo": 1}),
        json!([1, 2, 3]),
        json!("PutSecretValue"),
        json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {}}),
        json!({"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail"}),
        json!({"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail",
               "detail": {"eventName": "PutSecretValue", "requestParameters": {}}}),
    ] {
        let doc = failed(rig.app.handle(&payload).await);
        assert_error(&doc, "InvalidEvent", 400, "permanent");
        assert_eq!(doc["results"], json!([]), "{payload}: {doc}");
    }
    // A manual payload with a typo is an InvalidEvent too, returned as the document.
    for payload in [
        json!({"source": "manual", "secretID": "app/db"}),
        json!({"source": "manual", "secretId": "app/db", "failOnErorr": true}),
        json!({"source": "manual"}),
        json!({"source": "manual", "secretId": ""}),
    ] {
        let doc = ok(rig.app.handle(&payload).await);
        assert_error(&doc, "InvalidEvent", 400, "permanent");
        assert_eq!(doc["results"], json!([]), "{payload}: {doc}");
    }
    assert!(rig.moto.calls().is_empty(), "{:?}", rig.moto.calls());
    assert!(!exists(&rig.west, "app/db").await);
}

#[tokio::test]
async fn a_scheduled_manual_payload_with_a_typo_fails_the_invocation_when_fail_on_error_is_set() {
    // A schedule sets failOnError so that failures reach Lambda's error metric and alarms
    // (SPEC §6). A typo elsewhere in its payload is such a failure: it must not come back as a
    // quiet document that no alarm sees (as an invalid configuration does not, app::cannot_work).
    let rig = rig_with(&west_copy(), None).await;
    let payload = json!({"source": "manual", "secretID": "app/db", "failOnError": true});

    let doc = failed(rig.app.handle(&payload).await);

    assert_error(&doc, "InvalidEvent", 400, "permanent");
}

#[tokio::test]
async fn a_throttled_source_read_is_retried_then_a_top_level_retriable_429() {
    let rig = rig_with(&west_copy(), None).await;
    rig.proxy
        .add_rule(Rule::new(Match::op("GetSecretValue"), Fault::throttling()));

    let doc = failed(rig.app.handle(&put_event(&rig.source)).await);

    assert_error(&doc, "Throttled", 429, "retriable");
    assert_eq!(doc["results"], json!([]), "{doc}");
    assert_eq!(rig.proxy.hits("GetSecretValue"), MAX_ATTEMPTS as usize);
    assert!(writes(&rig.moto).is_empty(), "{:?}", writes(&rig.moto));
}

#[tokio::test]
async fn an_expired_assumed_role_session_is_refreshed_once_and_the_write_retried() {
    let config = json!({"rules": [{"destinations": [
        {"region": "us-west-2", "account_role_arn": DEST_ROLE, "external_id": EXTERNAL_ID}
    ]}]})
    .to_string();
    let rig = rig_with(&config, None).await;
    ok(rig.app.handle(&put_event(&rig.source)).await);
    put_value(&rig.east, "app/db", "v2").await;
    let expired = || {
        Fault::json_error(
            400,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        )
    };
    rig.proxy.reset_counts();
    rig.proxy
        .add_rule(Rule::new(Match::op("PutSecretValue"), expired()).times(1));

    let doc = ok(rig.app.handle(&put_event(&rig.source)).await);

    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(rig.proxy.hits("AssumeRole"), 1, "refreshed once");
    assert_eq!(rig.proxy.hits("PutSecretValue"), 2);
    let dest = dest_client(&rig.moto.endpoint(), DEST_ACCOUNT, "us-west-2").await;
    assert_eq!(current(&dest, "app/db").await.as_deref(), Some("v2"));

    // Still expired after the refresh: AccessDenied, and no loop of refreshes.
    put_value(&rig.east, "app/db", "v3").await;
    rig.proxy.reset_counts();
    rig.proxy
        .add_rule(Rule::new(Match::op("PutSecretValue"), expired()));
    let doc = failed(rig.app.handle(&put_event(&rig.source)).await);
    assert_error(only(&doc), "AccessDenied", 403, "permanent");
    assert_eq!(rig.proxy.hits("AssumeRole"), 1);
    assert_eq!(rig.proxy.hits("PutSecretValue"), 2);
}

/// `App::new`'s error for a configuration document.
async fn config_error(config: &str, endpoint: &str) -> String {
    let settings = settings(config, &[]);
    let stores = AwsStores::new(sdk_config(endpoint).await, &settings.function_name);
    match App::new(settings, stores, Metrics::OFF).await {
        Ok(_) => panic!("{config} should be rejected"),
        Err(e) => {
            assert_eq!(e.kind().as_str(), "InvalidConfig", "{e}");
            e.to_string()
        }
    }
}

#[tokio::test]
async fn an_invalid_config_is_rejected_at_start_up_naming_the_field() {
    let moto = Moto::start();
    let cases = [
        (
            json!({"rules": [{"destinations": [{"regoin": "us-west-2"}]}]}),
            vec!["rules[0].destinations[0]", "regoin"],
        ),
        (
            json!({"rules": [{"destinations": [{"region": "us-west-2"}, {"region": "uswest2"}]}]}),
            vec!["rules[0].destinations[1].region", "uswest2"],
        ),
        (
            json!({"rules": [{"destinations": [{"account_role_arn": "not-an-arn"}]}]}),
            vec!["rules[0].destinations[0].account_role_arn"],
        ),
        (
            json!({"rules": [{"destinations": [{"transforms": [{"sed": "s/a/b"}]}]}]}),
            vec!["rules[0].destinations[0].transforms[0]"],
        ),
        (
            json!({"rules": [{"destinations": [{"transforms": [{"sed": "s/a/${NOPE}/"}]}]}]}),
            vec!["rules[0].destinations[0]", "NOPE"],
        ),
        (
            json!({"rules": [{"destinations": [{"name": "${UNDEFINED}/x"}]}]}),
            vec!["rules[0].destinations[0].name", "UNDEFINED"],
        ),
        (
            json!({"rules": [{"match": ["app/[oops"], "destinations": [{}]}]}),
            vec!["rules[0].match"],
        ),
        (
            json!({"rules": [{"destinations": [{"transforms": ["sedfiles/does-not-exist.sed"]}]}]}),
            vec![
                "rules[0].destinations[0].transforms[0]",
                "does-not-exist.sed",
            ],
        ),
        (json!({"rulez": []}), vec!["rulez"]),
    ];
    let mut mismatches = Vec::new();
    for (config, needles) in cases {
        let message = config_error(&config.to_string(), &moto.endpoint()).await;
        for n in needles {
            if !message.contains(n) {
                mismatches.push(format!("{config}: {message:?} does not name {n:?}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // Nothing was read or written while loading.
    assert!(moto.calls().is_empty(), "{:?}", moto.calls());
}

#[tokio::test]
async fn a_container_with_an_invalid_config_answers_every_invocation_with_the_invalid_config_document()
 {
    let moto = Moto::start();
    let message = config_error(
        &json!({"rules": [{"destinations": [{"regoin": "us-west-2"}]}]}).to_string(),
        &moto.endpoint(),
    )
    .await;
    let error = secret_replicator::outcome::Error::InvalidConfig(message);
    let source = Seeded {
        arn: format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/db-AbCdEf"),
        name: "app/db".into(),
        version: String::new(),
    };

    // What the binary answers every invocation with when its configuration is invalid
    // (main.rs: `app::cannot_work`).
    let document = |r: Result<app::Answer, Failure>| {
        r.map(|a| match a {
            app::Answer::Document(report) => report,
            other => panic!("a document, not {other:?}"),
        })
    };
    let as_event = document(app::cannot_work(&error, &put_event(&source)));
    let as_manual = document(app::cannot_work(&error, &manual("app/db")));
    let as_scheduled = document(app::cannot_work(
        &error,
        &json!({"source": "manual", "secretId": "app/db", "failOnError": true}),
    ));

    let Err(Failure(report)) = as_event else {
        panic!("an event must fail")
    };
    let doc = doc(&report);
    assert_error(&doc, "InvalidConfig", 400, "permanent");
    assert!(
        doc["error"]["message"].as_str().unwrap().contains("regoin"),
        "{doc}"
    );
    assert_error(&ok(as_manual), "InvalidConfig", 400, "permanent");
    assert_error(&failed(as_scheduled), "InvalidConfig", 400, "permanent");
}

#[test]
fn two_configuration_sources_at_once_are_an_invalid_config_naming_both() {
    let env = Env::from_pairs([
        ("REPLICATOR_CONFIG", r#"{"rules":[]}"#),
        ("DEST_REGION", "us-west-2"),
    ]);
    let e = Settings::from_env(&env).expect_err("two sources");
    let message = e.to_string();
    assert_eq!(e.kind().as_str(), "InvalidConfig");
    assert!(message.contains("REPLICATOR_CONFIG"), "{message}");
    assert!(message.contains("DEST_REGION"), "{message}");
}

// ---- partial failures ------------------------------------------------------------------------

fn good_and_bad() -> String {
    json!({"rules": [{"match": ["app/**"], "destinations": [
        {"region": "us-west-2", "name": "good/${SECRET_NAME}"},
        {"region": "us-west-2", "name": "bad/${SECRET_NAME}"}
    ]}]})
    .to_string()
}

fn assert_partial(doc: &Value) {
    assert_eq!(doc["statusCode"], 207, "{doc}");
    assert_eq!(
        result_for(doc, "good/app/db")["status"],
        "replicated",
        "{doc}"
    );
    assert_error(
        result_for(doc, "bad/app/db"),
        "AccessDenied",
        403,
        "permanent",
    );
}

#[tokio::test]
async fn one_failing_destination_does_not_stop_the_others() {
    let rig = rig_with(&good_and_bad(), None).await;
    rig.proxy.add_rule(Rule::new(
        Match::op("CreateSecret").body_contains("bad/app/db"),
        Fault::access_denied(),
    ));

    // An event: the invocation fails (so Lambda retries it), the good destination is written.
    let doc = failed(rig.app.handle(&put_event(&rig.source)).await);
    assert_partial(&doc);
    assert_eq!(
        current(&rig.west, "good/app/db").await.as_deref(),
        Some("v1")
    );
    assert!(!exists(&rig.west, "bad/app/db").await);

    // The same as a manual invocation: the document, unless failOnError.
    put_value(&rig.east, "app/db", "v2").await;
    let doc = ok(rig.app.handle(&manual("app/db")).await);
    assert_partial(&doc);
    assert_eq!(
        current(&rig.west, "good/app/db").await.as_deref(),
        Some("v2")
    );

    put_value(&rig.east, "app/db", "v3").await;
    let scheduled = json!({"source": "manual", "secretId": "app/db", "failOnError": true});
    let doc = failed(rig.app.handle(&scheduled).await);
    assert_partial(&doc);
    assert_eq!(
        current(&rig.west, "good/app/db").await.as_deref(),
        Some("v3")
    );
    assert!(!exists(&rig.west, "bad/app/db").await);
}

#[tokio::test]
async fn failures_of_different_kinds_are_207_and_of_one_kind_its_code() {
    let rig = rig_with(
        &json!({"rules": [{"match": ["app/**"], "destinations": [
            {"region": "us-west-2", "name": "denied/${SECRET_NAME}"},
            {"region": "us-west-2", "name": "json/${SECRET_NAME}", "transforms": [{"json": [{"path": "$.a", "set": 1}]}]},
            {"region": "eu-west-1", "name": "denied/${SECRET_NAME}"}
        ]}]})
        .to_string(),
        None,
    )
    .await;
    rig.proxy.add_rule(Rule::new(
        Match::op("CreateSecret").body_contains("denied/app/db"),
        Fault::access_denied(),
    ));

    let doc = failed(rig.app.handle(&put_event(&rig.source)).await);
    assert_eq!(doc["statusCode"], 207, "{doc}");
    assert!(
        doc["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "failed"),
        "{doc}"
    );

    // Both failures AccessDenied: the common code.
    let only_denied = json!({"rules": [{"match": ["app/**"], "destinations": [
        {"region": "us-west-2", "name": "denied/${SECRET_NAME}"},
        {"region": "eu-west-1", "name": "denied/${SECRET_NAME}"}
    ]}]})
    .to_string();
    let app = app_from(
        settings(&only_denied, &[]),
        fast_retry_sdk_config(&rig.proxy.endpoint(), None).await,
    )
    .await;
    let doc = failed(app.handle(&put_event(&rig.source)).await);
    assert_eq!(doc["statusCode"], 403, "{doc}");
    assert_eq!(doc["results"].as_array().unwrap().len(), 2, "{doc}");
}
