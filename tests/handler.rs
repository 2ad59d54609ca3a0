//! The handler on the in-memory Secrets Manager, no moto: the fixtures of `tests/fixtures/events`
//! as EventBridge delivers them, through `App::handle`, with the documents they produce.

use secret_replicator::app::{App, Failure};
use secret_replicator::metrics::Metrics;
use secret_replicator::outcome::Report;
use secret_replicator::settings::{Env, Settings};
use secret_replicator::store::memory::MemoryStores;
use serde_json::{Value, json};

const ACCOUNT: &str = "111122223333";
const NAME: &str = "prod/payments/db";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/events/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn settings(extra: &[(&str, &str)]) -> Settings {
    let config = json!({"rules": [{"match": ["prod/**"], "destinations": [
        {"region": "us-west-2", "name": "dr/${SECRET_NAME}", "delete_with_source": true}
    ]}]})
    .to_string();
    let mut pairs = vec![
        ("REPLICATOR_CONFIG", config.as_str()),
        ("AWS_REGION", "us-east-1"),
    ];
    pairs.extend_from_slice(extra);
    Settings::from_env(&Env::from_pairs(pairs)).unwrap()
}

async fn app(stores: &MemoryStores, extra: &[(&str, &str)]) -> App<MemoryStores> {
    App::new(settings(extra), stores.clone(), Metrics::OFF)
        .await
        .unwrap()
}

fn doc(r: Result<Report, Failure>) -> (bool, Value) {
    let (ok, report) = match r {
        Ok(r) => (true, r),
        Err(Failure(r)) => (false, r),
    };
    (ok, serde_json::from_str(&report.to_json()).unwrap())
}

fn world() -> MemoryStores {
    let s = MemoryStores::new(ACCOUNT, "us-east-1");
    s.seed(
        "us-east-1",
        NAME,
        "6c1a8b2e-3d4f-4a5b-9c8d-7e6f5a4b3c2d",
        "the value",
    );
    s
}

#[tokio::test(start_paused = true)]
async fn every_fixture_gets_the_document_of_the_spec() {
    // (fixture, invocation succeeds, status of the one result, action or reason)
    let cases = [
        ("cloudtrail-put-secret-value", true, "replicated", "create"),
        ("cloudtrail-create-secret", true, "replicated", "create"),
        (
            "cloudtrail-update-secret-version-stage",
            true,
            "replicated",
            "create",
        ),
        ("native-secret-label-updated", true, "replicated", "create"),
        ("service-rotation-succeeded", true, "replicated", "create"),
        (
            "cloudtrail-put-secret-value-pending",
            true,
            "skipped",
            "not_current",
        ),
        (
            "cloudtrail-put-secret-value-failed",
            true,
            "skipped",
            "call_failed",
        ),
        ("manual-one", true, "replicated", "create"),
    ];
    for (name, want_ok, status, detail) in cases {
        let s = world();
        let (ok, d) = doc(app(&s, &[]).await.handle(&fixture(name)).await);
        assert_eq!(ok, want_ok, "{name}: {d}");
        let r = &d["results"][0];
        assert_eq!(r["status"], status, "{name}: {d}");
        let got = if status == "skipped" {
            &r["reason"]
        } else {
            &r["action"]
        };
        assert_eq!(got, detail, "{name}: {d}");
        if status == "replicated" {
            assert_eq!(
                s.value(ACCOUNT, "us-west-2", "dr/prod/payments/db")
                    .as_deref(),
                Some("the value"),
                "{name}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_delete_event_schedules_the_owned_copy_with_the_remaining_window() {
    let s = world();
    let a = app(&s, &[]).await;
    doc(a.handle(&fixture("cloudtrail-put-secret-value")).await);
    s.edit(ACCOUNT, "us-east-1", NAME, |d| d.deleted = true);
    let (ok, d) = doc(a
        .handle(&fixture("cloudtrail-delete-secret-old-arn-casing"))
        .await);
    assert!(ok, "{d}");
    assert_eq!(d["results"][0]["status"], "deleted", "{d}");
    let copy = s
        .secret(ACCOUNT, "us-west-2", "dr/prod/payments/db")
        .unwrap();
    assert!(copy.deleted);
}

#[tokio::test(start_paused = true)]
async fn malformed_payloads_are_invalid_event_and_fail_event_invocations() {
    let s = world();
    let a = app(&s, &[]).await;
    for payload in [
        json!([1, 2]),
        json!({"source": "aws.s3"}),
        json!({"source": "manual"}),
    ] {
        let (ok, d) = doc(a.handle(&payload).await);
        assert_eq!(d["error"]["kind"], "InvalidEvent", "{payload}: {d}");
        assert_eq!(d["statusCode"], 400);
        // A manual payload returns the document; anything else is an event and fails.
        assert_eq!(
            ok,
            payload.get("source") == Some(&json!("manual")),
            "{payload}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_config_secret_that_cannot_be_read_yet_is_retried_by_the_next_invocations() {
    let s = world();
    let config = json!({"rules": [{"match": ["prod/**"], "destinations": [
        {"region": "us-west-2", "name": "dr/${SECRET_NAME}"}
    ]}]})
    .to_string();
    s.seed(
        "us-east-1",
        "replicator/config",
        "00000000-0000-4000-8000-00000000c0f1",
        &config,
    );
    // Throttled at start-up and at the first invocation.
    s.fail(
        "GetSecretValue",
        "replicator/config",
        "ThrottlingException",
        2,
    );
    let settings = Settings::from_env(&Env::from_pairs([
        ("REPLICATOR_CONFIG_SECRET", "replicator/config"),
        ("AWS_REGION", "us-east-1"),
    ]))
    .unwrap();
    let a = App::new(settings, s.clone(), Metrics::OFF)
        .await
        .expect("a read that failed retriably is not an invalid configuration");
    let (ok, d) = doc(a.handle(&fixture("cloudtrail-put-secret-value")).await);
    assert!(
        !ok,
        "an event invocation fails so that Lambda retries it: {d}"
    );
    assert_eq!(d["error"]["kind"], "Throttled", "{d}");
    assert_eq!(d["retryClass"], "retriable");
    assert_eq!(d["statusCode"], 429);
    // The next invocation reads it and replicates.
    let (ok, d) = doc(a.handle(&fixture("cloudtrail-put-secret-value")).await);
    assert!(ok, "{d}");
    assert_eq!(d["results"][0]["status"], "replicated", "{d}");
}

#[tokio::test(start_paused = true)]
async fn an_invalid_config_document_is_still_invalid_config() {
    let s = world();
    s.seed(
        "us-east-1",
        "replicator/config",
        "00000000-0000-4000-8000-00000000c0f2",
        "{\"rules\": 1}",
    );
    let settings = Settings::from_env(&Env::from_pairs([
        ("REPLICATOR_CONFIG_SECRET", "replicator/config"),
        ("AWS_REGION", "us-east-1"),
    ]))
    .unwrap();
    let e = App::new(settings, s.clone(), Metrics::OFF)
        .await
        .err()
        .expect("invalid");
    assert_eq!(
        e.kind(),
        secret_replicator::outcome::ErrorKind::InvalidConfig
    );
}
