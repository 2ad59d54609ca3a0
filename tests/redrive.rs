//! Redrive (SPEC §5): Lambda failure records, and SQS batches of them from the failure queue.
//! First through the handler on the in-memory Secrets Manager with the fixtures of
//! `tests/fixtures/events`; then through the real binary under the fake Runtime API against
//! moto, where Lambda's view (a response, never an error, for an SQS batch) shows.

mod common;

use secret_replicator::app::{Answer, App, Failure, Invoked, cannot_work};
use secret_replicator::metrics::Metrics;
use secret_replicator::outcome::Error;
use secret_replicator::settings::{Env, Settings};
use secret_replicator::store::memory::MemoryStores;
use serde_json::{Value, json};

const ACCOUNT: &str = "111122223333";
const NAME: &str = "prod/payments/db";
const COPY: &str = "dr/prod/payments/db";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/events/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
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

fn config() -> String {
    json!({"rules": [{"match": ["prod/**"], "destinations": [
        {"region": "us-west-2", "name": "dr/${SECRET_NAME}"}
    ]}]})
    .to_string()
}

async fn app(s: &MemoryStores) -> App<MemoryStores> {
    let config = config();
    let settings = Settings::from_env(&Env::from_pairs([
        ("REPLICATOR_CONFIG", config.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_LAMBDA_FUNCTION_NAME", "secret-replicator"),
    ]))
    .expect("settings");
    App::new(settings, s.clone(), Metrics::OFF)
        .await
        .expect("app")
}

/// Lambda's view of an invocation: an error or not, and the answer's JSON.
fn view(r: Result<Answer, Failure>) -> (bool, Value) {
    let (ok, json) = match r {
        Ok(a) => (true, a.to_json()),
        Err(Failure(report)) => (false, report.to_json()),
    };
    (ok, serde_json::from_str(&json).expect("JSON"))
}

/// The invocation as Lambda makes it: a function ARN, so that only redrive's own rule keeps it
/// from continuing.
fn invoked() -> Invoked {
    Invoked {
        deadline: None,
        function_arn: Some(format!(
            "arn:aws:lambda:us-east-1:{ACCOUNT}:function:secret-replicator"
        )),
    }
}

/// A failure record around `payload`, as Lambda writes it when retries are exhausted.
fn record(payload: Value) -> Value {
    let mut r = fixture("lambda-failure-record");
    r["requestPayload"] = payload;
    r
}

fn sqs(bodies: &[(&str, String)]) -> Value {
    let template = fixture("sqs-failure-queue-batch")["Records"][0].clone();
    let records: Vec<Value> = bodies
        .iter()
        .map(|(id, body)| {
            let mut r = template.clone();
            r["messageId"] = json!(id);
            r["body"] = json!(body);
            r
        })
        .collect();
    json!({ "Records": records })
}

fn failed_ids(answer: &Value) -> Vec<String> {
    let object = answer.as_object().expect("an object");
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        ["batchItemFailures"],
        "an SQS answer holds batchItemFailures only: {answer}"
    );
    answer["batchItemFailures"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|f| {
            assert_eq!(f.as_object().map(|o| o.len()), Some(1), "{f}");
            f["itemIdentifier"].as_str().expect("an id").to_string()
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_failure_record_replicates_the_current_value_read_again() {
    let s = world();
    let a = app(&s).await;
    // The source moved on after the event that failed: the redrive writes the current value.
    s.seed(
        "us-east-1",
        NAME,
        "7d2b9c3f-4e5a-4b6c-8d9e-0f1a2b3c4d5e",
        "a newer value",
    );
    for fixture_name in [
        "lambda-failure-record",
        "lambda-failure-record-event-age-exceeded",
    ] {
        let (ok, d) = view(a.answer(&fixture(fixture_name), &invoked()).await);
        assert!(ok, "{fixture_name}: {d}");
        assert_eq!(d["statusCode"], 200, "{fixture_name}: {d}");
        let status = d["results"][0]["status"].as_str().unwrap_or_default();
        assert!(
            ["replicated", "unchanged"].contains(&status),
            "{fixture_name}: {d}"
        );
        assert_eq!(
            s.value(ACCOUNT, "us-west-2", COPY).as_deref(),
            Some("a newer value")
        );
    }
    assert!(
        !s.calls().iter().any(|c| c.starts_with("Invoke")),
        "{:?}",
        s.calls()
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_redrive_of_an_event_fails_like_the_event() {
    let s = world();
    let a = app(&s).await;
    let mut event = fixture("cloudtrail-put-secret-value");
    event["detail"]["requestParameters"]["secretId"] = json!("prod/payments/missing");
    event["detail"]["responseElements"] = Value::Null;
    let (ok, d) = view(a.answer(&record(event), &invoked()).await);
    assert!(!ok, "an event's redrive fails as the event would: {d}");
    assert_eq!(d["error"]["kind"], "SourceNotFound", "{d}");
    // A manual payload answers its document, as when it first came.
    let (ok, d) = view(
        a.answer(
            &record(json!({"source": "manual", "secretId": "prod/payments/missing"})),
            &invoked(),
        )
        .await,
    );
    assert!(ok, "{d}");
    assert_eq!(d["error"]["kind"], "SourceNotFound", "{d}");
}

#[tokio::test(start_paused = true)]
async fn nested_records_are_unwrapped_to_three_levels_and_no_further() {
    let s = world();
    let a = app(&s).await;
    let mut payload = fixture("cloudtrail-put-secret-value");
    for levels in 1..=3 {
        payload = record(payload);
        let (ok, d) = view(a.answer(&payload, &invoked()).await);
        assert!(ok, "{levels} levels: {d}");
        assert_eq!(d["statusCode"], 200, "{levels} levels: {d}");
    }
    let (ok, d) = view(a.answer(&record(payload), &invoked()).await);
    assert!(!ok, "{d}");
    assert_eq!(d["error"]["kind"], "InvalidEvent", "{d}");
    assert!(
        d["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nested deeper than 3"),
        "{d}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_record_of_an_all_run_is_acknowledged_and_nothing_runs_or_continues() {
    let s = world();
    let a = app(&s).await;
    for payload in [
        json!({"source": "manual", "all": true}),
        json!({"source": "manual", "all": true, "failOnError": true}),
        json!({"source": "manual", "all": true, "dryRun": true}),
        fixture("sqs-failure-queue-batch")["Records"][1]["body"]
            .as_str()
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
            .expect("the fixture's `all` record")["requestPayload"]
            .clone(),
    ] {
        let (ok, d) = view(a.answer(&record(payload.clone()), &invoked()).await);
        assert!(ok, "{payload}: {d}");
        assert_eq!(d["statusCode"], 200);
        assert_eq!(d["results"][0]["status"], "skipped", "{d}");
        assert_eq!(d["results"][0]["reason"], "all_not_redriven", "{d}");
    }
    assert!(
        s.calls().is_empty(),
        "no AWS call, no Invoke: {:?}",
        s.calls()
    );
}

#[tokio::test(start_paused = true)]
async fn an_sqs_batch_answers_only_the_messages_that_failed() {
    let s = world();
    let a = app(&s).await;
    let batch = fixture("sqs-failure-queue-batch");
    let ids: Vec<String> = batch["Records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["messageId"].as_str().expect("id").to_string())
        .collect();
    // The fixture: a failed PutSecretValue event (replicates now), an `all` run's record
    // (acknowledged), and a body that is not a failure record in the failure queue (fails: that
    // queue holds failure records only, SPEC §5).
    let (ok, answer) = view(a.answer(&batch, &invoked()).await);
    assert!(ok, "never a Lambda error: {answer}");
    assert_eq!(failed_ids(&answer), [ids[2].clone()]);
    assert_eq!(
        s.value(ACCOUNT, "us-west-2", COPY).as_deref(),
        Some("the value")
    );

    // A record whose payload fails, whatever failOnError says; a malformed body; and one that
    // succeeds.
    let missing = |fail_on_error: bool| {
        record(json!({"source": "manual", "secretId": "prod/payments/missing", "failOnError": fail_on_error}))
            .to_string()
    };
    let good = fixture("lambda-failure-record").to_string();
    let batch = sqs(&[
        ("m-missing", missing(false)),
        ("m-missing-foe", missing(true)),
        ("m-good", good),
        ("m-not-json", "{not json".into()),
        (
            "m-too-deep",
            format!("{}{}", "[".repeat(80), "]".repeat(80)),
        ),
    ]);
    let (ok, answer) = view(a.answer(&batch, &invoked()).await);
    assert!(ok, "{answer}");
    assert_eq!(
        failed_ids(&answer),
        ["m-missing", "m-missing-foe", "m-not-json", "m-too-deep"]
    );
    // Nothing failed: an empty list (Lambda deletes the whole batch).
    let batch = sqs(&[("m-1", fixture("lambda-failure-record").to_string())]);
    let (_, answer) = view(a.answer(&batch, &invoked()).await);
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    assert!(!s.calls().iter().any(|c| c.starts_with("Invoke")));
}

#[tokio::test(start_paused = true)]
async fn an_sqs_batch_lists_every_message_when_the_configuration_cannot_be_used() {
    // An invalid configuration (the container answers every invocation with it).
    let batch = fixture("sqs-failure-queue-batch");
    let all: Vec<String> = batch["Records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["messageId"].as_str().expect("id").to_string())
        .collect();
    let invalid = Error::InvalidConfig("REPLICATOR_CONFIG: rules: expected a list".into());
    let (ok, answer) = view(cannot_work(&invalid, &batch));
    assert!(ok, "{answer}");
    assert_eq!(failed_ids(&answer), all);
    // A failure record alone answers as its payload would (an event: a Lambda error).
    let (ok, d) = view(cannot_work(&invalid, &fixture("lambda-failure-record")));
    assert!(!ok);
    assert_eq!(d["error"]["kind"], "InvalidConfig", "{d}");

    // A configuration secret that cannot be read yet (throttled): every message stays too.
    let s = world();
    s.seed(
        "us-east-1",
        "replicator/config",
        "00000000-0000-4000-8000-00000000c0f1",
        &config(),
    );
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
    .expect("settings");
    let a = App::new(settings, s.clone(), Metrics::OFF)
        .await
        .expect("a retriable read is not an invalid configuration");
    let one = sqs(&[
        ("m-a", fixture("lambda-failure-record").to_string()),
        ("m-b", fixture("lambda-failure-record").to_string()),
    ]);
    let (ok, answer) = view(a.answer(&one, &invoked()).await);
    assert!(ok, "{answer}");
    // The first message meets the throttled read; the second, the read retried and answered.
    assert_eq!(failed_ids(&answer), ["m-a"]);
}

#[tokio::test(start_paused = true)]
async fn messages_not_started_before_the_cutoff_stay_on_the_queue() {
    let s = world();
    let a = app(&s).await;
    let batch = sqs(&[
        ("m-1", fixture("lambda-failure-record").to_string()),
        ("m-2", fixture("lambda-failure-record").to_string()),
    ]);
    // A deadline already inside the reserved margin: nothing is started.
    let late = Invoked {
        deadline: Some(std::time::Instant::now() + std::time::Duration::from_millis(500)),
        function_arn: invoked().function_arn,
    };
    let (ok, answer) = view(a.answer(&batch, &late).await);
    assert!(ok);
    assert_eq!(failed_ids(&answer), ["m-1", "m-2"]);
    assert!(s.value(ACCOUNT, "us-west-2", COPY).is_none());
}

// ---- the events queue (SPEC §5, §7 "Event invocations") -----------------------------------------
//
// `sqs-events-queue-batch.json`: the SQS envelope of AWS's "Example Amazon SQS message event
// (standard queue)" (Lambda Developer Guide, "Using Lambda with Amazon SQS",
// https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html: its first two message ids,
// receipt handle, SenderId and md5OfBody), the queue ARN renamed to the template's events queue;
// its bodies are the real-shaped EventBridge events of `tests/fixtures/events/` (copies of
// `/work/shared/events/`, whose README says where each shape comes from) as EventBridge writes a
// matched event to an SQS target: the event itself, as the body's JSON text.

/// The events-queue batch with each body's secret renamed (`None`: left as recorded).
fn events_batch(names: [Option<&str>; 3]) -> Value {
    let mut batch = fixture("sqs-events-queue-batch");
    for (i, name) in names.into_iter().enumerate() {
        let Some(name) = name else { continue };
        let record = &mut batch["Records"][i];
        let text = record["body"].as_str().expect("a body").to_string();
        let body = text.replace("prod/payments/db", name);
        record["body"] = json!(body);
    }
    batch
}

fn message_ids(batch: &Value) -> Vec<String> {
    batch["Records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["messageId"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn an_events_queue_batch_of_real_events_is_handled_as_events() {
    let s = world();
    let a = app(&s).await;
    let batch = events_batch([None, None, None]);
    let (ok, answer) = view(a.answer(&batch, &invoked()).await);
    assert!(ok, "never a Lambda error: {answer}");
    assert_eq!(failed_ids(&answer), Vec::<String>::new());
    assert_eq!(
        s.value(ACCOUNT, "us-west-2", COPY).as_deref(),
        Some("the value")
    );
}

#[tokio::test(start_paused = true)]
async fn an_events_queue_batch_lists_exactly_the_event_whose_destination_failed() {
    let s = world();
    for name in ["prod/payments/cache", "prod/payments/api"] {
        s.seed(
            "us-east-1",
            name,
            "00000000-0000-4000-8000-0000000000a1",
            name,
        );
    }
    // Someone else's secret where the second event's copy would go: DestinationConflict.
    s.seed(
        "us-west-2",
        "dr/prod/payments/cache",
        "00000000-0000-4000-8000-0000000000b1",
        "not ours",
    );
    let a = app(&s).await;
    let batch = events_batch([None, Some("prod/payments/cache"), Some("prod/payments/api")]);
    let ids = message_ids(&batch);
    let (ok, answer) = view(a.answer(&batch, &invoked()).await);
    assert!(ok, "never a Lambda error: {answer}");
    assert_eq!(failed_ids(&answer), [ids[1].clone()]);
    assert_eq!(
        s.value(ACCOUNT, "us-west-2", COPY).as_deref(),
        Some("the value")
    );
    assert_eq!(
        s.value(ACCOUNT, "us-west-2", "dr/prod/payments/api")
            .as_deref(),
        Some("prod/payments/api")
    );
    assert_eq!(
        s.value(ACCOUNT, "us-west-2", "dr/prod/payments/cache")
            .as_deref(),
        Some("not ours")
    );
}

#[tokio::test(start_paused = true)]
async fn an_events_queue_batch_lists_every_message_under_an_invalid_configuration() {
    let batch = fixture("sqs-events-queue-batch");
    let invalid = Error::InvalidConfig("REPLICATOR_CONFIG: rules: expected a list".into());
    let (ok, answer) = view(cannot_work(&invalid, &batch));
    assert!(ok, "{answer}");
    assert_eq!(failed_ids(&answer), message_ids(&batch));
}

#[tokio::test(start_paused = true)]
async fn a_manual_payload_in_an_events_queue_message_runs_and_fails_only_its_message() {
    let s = world();
    let a = app(&s).await;
    let template = fixture("sqs-events-queue-batch")["Records"][0].clone();
    let mut ok_record = template.clone();
    ok_record["messageId"] = json!("m-manual");
    ok_record["body"] = json!(fixture("manual-one").to_string());
    let mut bad = template;
    bad["messageId"] = json!("m-manual-missing");
    bad["body"] =
        json!(json!({"source": "manual", "secretId": "prod/payments/missing"}).to_string());
    let batch = json!({"Records": [ok_record, bad]});
    let (ok, answer) = view(a.answer(&batch, &invoked()).await);
    assert!(ok, "{answer}");
    assert_eq!(failed_ids(&answer), ["m-manual-missing"]);
    assert_eq!(
        s.value(ACCOUNT, "us-west-2", COPY).as_deref(),
        Some("the value")
    );
}

// ---- through the real binary -------------------------------------------------------------------

mod binary {
    use super::common::Moto;
    use super::common::app::{REGION, put_event, seed_secret, sm};
    use super::common::runtime::{Answer, FakeRuntime};
    use super::{failed_ids, fixture};
    use serde_json::{Value, json};
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    struct Function(Child);

    impl Drop for Function {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// The function against `endpoint` (moto, or the fault proxy in front of it).
    fn start(rt: &FakeRuntime, endpoint: &str, config: &str) -> Function {
        let child = Command::new(env!("CARGO_BIN_EXE_secret-replicator"))
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", rt.api())
            .env("AWS_LAMBDA_FUNCTION_NAME", "secret-replicator")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_REGION", REGION)
            .env("AWS_ENDPOINT_URL", endpoint)
            // Nothing may invoke Lambda during a redrive: an Invoke would meet a closed port.
            .env("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9")
            .envs(super::common::app::function_env())
            .env("REPLICATOR_CONFIG", config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the function");
        Function(child)
    }

    fn response(rt: &FakeRuntime, payload: &Value) -> Value {
        let id = rt.push(payload);
        match rt.answer(&id, Duration::from_secs(30)) {
            Answer::Response { body, .. } => serde_json::from_str(&body).expect("JSON"),
            other => panic!("an SQS batch is answered, never failed: {other:?}"),
        }
    }

    const CONFIG: &str = r#"{"rules":[{"match":["app/**"],"destinations":[{"region":"us-west-2","name":"dr/${SECRET_NAME}"}]}]}"#;

    #[tokio::test(flavor = "multi_thread")]
    async fn lambda_gets_batch_item_failures_only_and_never_an_error() {
        let moto = Moto::start();
        let source = sm(&moto.endpoint(), REGION).await;
        let secret = seed_secret(&source, "app/db", "value-1").await;
        let rt = FakeRuntime::start();
        let _f = start(&rt, &moto.endpoint(), CONFIG);

        let mut record = fixture("lambda-failure-record");
        record["requestPayload"] = put_event(&secret);
        let mut missing = put_event(&secret);
        missing["detail"]["requestParameters"]["secretId"] = json!("app/missing");
        missing["detail"]["responseElements"] = Value::Null;
        let mut failing = fixture("lambda-failure-record");
        failing["requestPayload"] = missing;
        let mut all = fixture("lambda-failure-record");
        all["requestPayload"] = json!({"source": "manual", "all": true});
        let batch = super::sqs(&[
            ("m-ok", record.to_string()),
            ("m-fails", failing.to_string()),
            ("m-all", all.to_string()),
            ("m-garbage", "{}".into()),
        ]);
        let answer = response(&rt, &batch);
        assert_eq!(failed_ids(&answer), ["m-fails", "m-garbage"]);
        let west = sm(&moto.endpoint(), "us-west-2").await;
        assert_eq!(
            super::common::app::current(&west, "dr/app/db")
                .await
                .as_deref(),
            Some("value-1")
        );

        // A failure record on its own is handled as its payload: here an event, replicated.
        let id = rt.push(&record);
        match rt.answer(&id, Duration::from_secs(30)) {
            Answer::Response { body, .. } => {
                let doc: Value = serde_json::from_str(&body).expect("JSON");
                let status = doc["results"][0]["status"].as_str().unwrap_or_default();
                // The same version again: an idempotent write, or none.
                assert!(["replicated", "unchanged"].contains(&status), "{doc}");
                assert_eq!(doc["statusCode"], 200, "{doc}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// An events-queue message carrying `body`, as Lambda delivers it from the events queue.
    fn queued(id: &str, body: &Value) -> Value {
        let mut r = fixture("sqs-events-queue-batch")["Records"][0].clone();
        r["messageId"] = json!(id);
        r["body"] = json!(body.to_string());
        r
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_events_queue_batch_fails_only_the_event_whose_destination_failed() {
        let moto = Moto::start();
        let source = sm(&moto.endpoint(), REGION).await;
        let a = seed_secret(&source, "app/a", "value-a").await;
        let b = seed_secret(&source, "app/b", "value-b").await;
        let c = seed_secret(&source, "app/c", "value-c").await;
        let west = sm(&moto.endpoint(), "us-west-2").await;
        // Someone else's secret where app/b's copy would go: DestinationConflict, 409.
        seed_secret(&west, "dr/app/b", "not ours").await;
        let rt = FakeRuntime::start();
        let _f = start(&rt, &moto.endpoint(), CONFIG);

        let batch = json!({"Records": [
            queued("m-a", &put_event(&a)),
            queued("m-b", &put_event(&b)),
            queued("m-c", &put_event(&c)),
            queued("m-manual", &json!({"source": "manual", "secretId": "app/a"})),
        ]});
        let answer = response(&rt, &batch);
        assert_eq!(failed_ids(&answer), ["m-b"]);
        for (name, value) in [
            ("dr/app/a", "value-a"),
            ("dr/app/c", "value-c"),
            ("dr/app/b", "not ours"),
        ] {
            assert_eq!(
                super::common::app::current(&west, name).await.as_deref(),
                Some(value),
                "{name}"
            );
        }

        // The direct (asynchronous) path is unchanged: the same failing event invoked on its
        // own is a Lambda error, for Lambda's retries and the on-failure destination.
        let id = rt.push(&put_event(&b));
        match rt.answer(&id, Duration::from_secs(30)) {
            Answer::Error { body, .. } => {
                let error: Value = serde_json::from_str(&body).expect("JSON");
                assert_eq!(error["errorType"], "DestinationConflict", "{body}");
            }
            other => panic!("a failed event invoked directly is an error: {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_invalid_configuration_still_answers_an_sqs_batch() {
        let moto = Moto::start();
        let rt = FakeRuntime::start();
        let _f = start(&rt, &moto.endpoint(), r#"{"rules": 1}"#);
        for queue in ["sqs-failure-queue-batch", "sqs-events-queue-batch"] {
            let batch = fixture(queue);
            let answer = response(&rt, &batch);
            assert_eq!(failed_ids(&answer), super::message_ids(&batch), "{queue}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_batch_meeting_a_destination_that_never_answers_is_answered_before_its_deadline() {
        use super::common::{Fault, FaultProxy, Match, Rule};
        let moto = Moto::start();
        let source = sm(&moto.endpoint(), REGION).await;
        let a = seed_secret(&source, "app/a", "value-a").await;
        let b = seed_secret(&source, "app/b", "value-b").await;
        let c = seed_secret(&source, "app/c", "value-c").await;
        // Every call about app/b's copy is held until the test ends (the proxy drops it): the
        // only way to answer before the deadline is to abandon it.
        let proxy = FaultProxy::start(moto.addr());
        proxy.add_rule(Rule::new(
            Match::any()
                .header_contains("authorization", "/us-west-2/")
                .body_contains("dr/app/b"),
            Fault::Delay(Duration::from_secs(24 * 3600)),
        ));
        // Shorter than the SDK's per-attempt timeout (5 s), so that the held call cannot end
        // as the SDK's own timeout first; the reserved margin is 1 s.
        let rt = FakeRuntime::with_budget(Duration::from_secs(4));
        let _f = start(&rt, &proxy.endpoint(), CONFIG);
        let record = |secret: &super::common::app::Seeded| {
            let mut r = fixture("lambda-failure-record");
            r["requestPayload"] = put_event(secret);
            r.to_string()
        };
        let batch = super::sqs(&[
            ("m-a", record(&a)),
            ("m-b", record(&b)),
            ("m-c", record(&c)),
        ]);
        let id = rt.push(&batch);
        let answer = match rt.answer(&id, Duration::from_secs(60)) {
            Answer::Response { body, .. } => serde_json::from_str::<Value>(&body).expect("JSON"),
            other => panic!("an SQS batch is answered, never failed: {other:?}"),
        };
        assert!(!rt.timed_out(&id), "answered after the deadline: {answer}");
        assert!(
            proxy.fault_log().iter().any(|f| f.fault == "Delay"),
            "the held destination was reached"
        );
        // m-b never finished: abandoned, left on the queue; m-c came after the cutoff: not
        // started, left on the queue. m-a is listed only if it had not finished either (it
        // was in flight at the abandon point), and is copied otherwise.
        let failed = failed_ids(&answer);
        let west = sm(&moto.endpoint(), "us-west-2").await;
        let copy = |name: &'static str| super::common::app::current(&west, name);
        match failed.as_slice() {
            [b, c] if b == "m-b" && c == "m-c" => {
                assert_eq!(copy("dr/app/a").await.as_deref(), Some("value-a"));
            }
            [a, b, c] if a == "m-a" && b == "m-b" && c == "m-c" => {}
            other => panic!("{other:?}: {answer}"),
        }
        assert_eq!(copy("dr/app/b").await, None, "the held call never landed");
        assert_eq!(copy("dr/app/c").await, None, "m-c was never started");
    }
}
