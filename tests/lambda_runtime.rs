//! The real binary under a (fake) Lambda Runtime API: what Lambda itself would see. Event
//! invocations that fail come back as Lambda errors typed by the first failure's kind, with the
//! document as the message; manual ones return the document; an invalid configuration answers
//! every invocation instead of crashing the container.

mod common;

use common::Moto;
use common::app::{REGION, manual, put_event, seed_secret, sm};
use common::runtime::{Answer, FakeRuntime};
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CONFIG: &str = r#"{"rules":[{"match":["app/**"],"destinations":[{"region":"us-west-2","name":"dr/${SECRET_NAME}"}]}]}"#;

struct Function(Child);

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(rt: &FakeRuntime, moto: &Moto, config: &str) -> Function {
    let child = Command::new(env!("CARGO_BIN_EXE_secret-replicator"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", rt.api())
        .env("AWS_LAMBDA_FUNCTION_NAME", "secret-replicator")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .envs(common::app::function_env())
        .env("REPLICATOR_CONFIG", config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the function");
    Function(child)
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn events_and_manual_payloads_are_answered_as_lambda_expects() {
    let moto = Moto::start();
    let source = sm(&moto.endpoint(), REGION).await;
    let secret = seed_secret(&source, "app/db", "value-1").await;
    let rt = FakeRuntime::start();
    let _f = start(&rt, &moto, CONFIG);

    // A successful event: the document as the response.
    let id = rt.push(&put_event(&secret));
    match rt.answer(&id, Duration::from_secs(30)) {
        Answer::Response { body, .. } => {
            let doc = json(&body);
            assert_eq!(doc["statusCode"], 200, "{doc}");
            assert_eq!(doc["results"][0]["status"], "replicated");
        }
        other => panic!("{other:?}"),
    }

    // A failing event: a Lambda error typed by the kind, the document as the message.
    let mut missing = put_event(&secret);
    missing["detail"]["requestParameters"]["secretId"] = "app/missing".into();
    missing["detail"]["responseElements"] = Value::Null;
    let id = rt.push(&missing);
    match rt.answer(&id, Duration::from_secs(30)) {
        Answer::Error { body, .. } => {
            let err = json(&body);
            assert_eq!(err["errorType"], "SourceNotFound", "{err}");
            let doc = json(
                err["errorMessage"]
                    .as_str()
                    .expect("message is the document"),
            );
            assert_eq!(doc["statusCode"], 404);
            assert_eq!(doc["error"]["kind"], "SourceNotFound");
            assert_eq!(doc["results"], serde_json::json!([]));
        }
        other => panic!("{other:?}"),
    }

    // The same failure from a manual payload is a document, not an error...
    let id = rt.push(&manual("app/missing"));
    match rt.answer(&id, Duration::from_secs(30)) {
        Answer::Response { body, .. } => assert_eq!(json(&body)["statusCode"], 404),
        other => panic!("{other:?}"),
    }
    // ...unless it asks to fail.
    let id = rt.push(
        &serde_json::json!({"source": "manual", "secretId": "app/missing", "failOnError": true}),
    );
    assert!(matches!(
        rt.answer(&id, Duration::from_secs(30)),
        Answer::Error { .. }
    ));

    // A malformed event is InvalidEvent.
    let id = rt.push(&serde_json::json!({"hello": "world"}));
    match rt.answer(&id, Duration::from_secs(30)) {
        Answer::Error { body, .. } => assert_eq!(json(&body)["errorType"], "InvalidEvent"),
        other => panic!("{other:?}"),
    }

    // A payload nested past serde_json's recursion limit (128) reaches the handler raw and is
    // an InvalidEvent that names the depth limit, not a runtime deserialisation failure.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let id = rt.push_raw(&deep);
    match rt.answer(&id, Duration::from_secs(30)) {
        Answer::Error { body, .. } => {
            let err = json(&body);
            assert_eq!(err["errorType"], "InvalidEvent", "{err}");
            let doc = json(err["errorMessage"].as_str().expect("the document"));
            assert_eq!(doc["statusCode"], 400);
            let message = doc["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("deeper than the limit of 64"), "{doc}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_configuration_answers_every_invocation_instead_of_crashing() {
    let moto = Moto::start();
    let rt = FakeRuntime::start();
    let mut f = start(
        &rt,
        &moto,
        r#"{"rules":[{"destinations":[{"regoin":"us-west-2"}]}]}"#,
    );
    rt.ready(Duration::from_secs(30));

    for _ in 0..2 {
        let id = rt.push(&serde_json::json!({"source": "aws.secretsmanager", "detail-type": "Secret Label Updated", "resources": ["x"], "detail": {"labelUpdated": "AWSCURRENT"}}));
        match rt.answer(&id, Duration::from_secs(30)) {
            Answer::Error { body, .. } => {
                let err = json(&body);
                assert_eq!(err["errorType"], "InvalidConfig", "{err}");
                let doc = json(err["errorMessage"].as_str().unwrap());
                assert!(
                    doc["error"]["message"].as_str().unwrap().contains("regoin"),
                    "the message names the field: {doc}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    let id = rt.push(&manual("app/db"));
    match rt.answer(&id, Duration::from_secs(30)) {
        Answer::Response { body, .. } => {
            let doc = json(&body);
            assert_eq!(doc["statusCode"], 400);
            assert_eq!(doc["error"]["kind"], "InvalidConfig");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        f.0.try_wait().unwrap().is_none(),
        "the container keeps serving"
    );
}
