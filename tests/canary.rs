//! The real binary end to end (`secret-replicator replicate --event FILE` against moto), and the
//! canary: a secret value carrying a unique string goes through every outcome (success,
//! transform failure, conflict, AccessDenied, too large) with trace logging on, and the string
//! never shows up in stdout, stderr, the result document or a `Debug` of it.

// The SDK call futures nest deeply; the default limit (128) is too low for their layout.
#![recursion_limit = "256"]

mod common;

use common::world::World;

use common::app::*;
use common::{Fault, FaultProxy, Match, Moto, Rule};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// A string that appears nowhere but in the secret value.
fn canary() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("CANARY{}x{nanos}", std::process::id())
}

/// A source value with the canary inside, long enough for the 8× sed to cross the size limit.
fn value_with(canary: &str) -> String {
    format!(
        "postgres://app:{canary}@db.us-east-1.example.com:5432/app?pad={}",
        "x".repeat(9_000)
    )
}

static DIRS: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory for event files and the child's HOME.
fn scratch() -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("canary-test-{}-{n}", std::process::id()));
    // Another process with the same pid may have left it; start empty.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `secret-replicator replicate --event <file>` with only the variables given here (and
/// no shared AWS configuration or instance metadata to stumble on).
fn replicate_cli(event: &Value, endpoint: &str, config: &str, log: &[(&str, &str)]) -> Output {
    let dir = scratch();
    let path = dir.join("event.json");
    std::fs::write(&path, event.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_secret-replicator"))
        .arg("replicate")
        .arg("--event")
        .arg(&path)
        .env_clear()
        .env("HOME", &dir)
        .env("AWS_CONFIG_FILE", dir.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", REGION)
        .envs(common::app::function_env())
        .env("REPLICATOR_CONFIG", config)
        .envs(log.iter().copied())
        .output()
        .expect("run the secret-replicator binary");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The document the CLI printed (its last stdout line).
fn printed_doc(out: &Output) -> Value {
    let stdout = text(&out.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no output; stderr:\n{}",
            text(&out.stderr)
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("stdout is not the document ({e}): {stdout}"))
}

/// The (shortened) line of `content` that contains the canary, if any.
fn leak(content: &str, canary: &str) -> Option<String> {
    let at = content.find(canary)?;
    let from = content[..at].rfind('\n').map_or(0, |i| i + 1);
    let to = content[at..].find('\n').map_or(content.len(), |i| at + i);
    let line = &content[from..to];
    let start = at - from;
    let begin = line.floor_char_boundary(start.saturating_sub(200));
    Some(line[begin..].chars().take(400).collect())
}

fn one_destination(name: &str, extra: Value) -> String {
    let mut dest = json!({"region": "us-west-2", "name": name});
    if let (Some(d), Some(x)) = (dest.as_object_mut(), extra.as_object()) {
        d.extend(x.clone());
    }
    json!({"rules": [{"match": ["app/**"], "destinations": [dest]}]}).to_string()
}

#[tokio::test]
async fn the_binary_replicates_an_event_file_and_prints_the_document() {
    let w = World::start().await;
    let World { moto, west, .. } = &w;
    let source = w.seed("app/db", "host=db.us-east-1.example.com").await;
    let config = one_destination(
        "dr/${SECRET_NAME}",
        json!({"transforms": [{"sed": "s/us-east-1/us-west-2/g"}]}),
    );

    let out = replicate_cli(
        &put_event(&source),
        &moto.endpoint(),
        &config,
        &[("RUST_LOG", "debug")],
    );

    let doc = printed_doc(&out);
    assert!(
        out.status.success(),
        "exit {:?}: {doc}\n{}",
        out.status,
        text(&out.stderr)
    );
    assert_eq!(doc["statusCode"], 200, "{doc}");
    let r = only(&doc);
    assert_eq!(r["status"], "replicated", "{doc}");
    assert_eq!(r["destination"]["name"], "dr/app/db", "{doc}");
    assert_eq!(
        current(west, "dr/app/db").await.as_deref(),
        Some("host=db.us-west-2.example.com")
    );
    // Debug logging is on: one line per destination outcome reaches stderr.
    assert!(
        text(&out.stderr).contains("dr/app/db"),
        "{}",
        text(&out.stderr)
    );

    // Failures: exit status 1 and the document on stdout.
    let out = replicate_cli(
        &put_event(&Seeded {
            arn: format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:app/gone-AbCdEf"),
            name: "app/gone".into(),
            version: String::new(),
        }),
        &moto.endpoint(),
        &config,
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_error(&printed_doc(&out), "SourceNotFound", 404, "permanent");
    let out = replicate_cli(
        &put_event(&source),
        &moto.endpoint(),
        r#"{"rules":[{"destinations":[{"regoin":"us-west-2"}]}]}"#,
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let doc = printed_doc(&out);
    assert_error(&doc, "InvalidConfig", 400, "permanent");
    assert!(
        doc["error"]["message"].as_str().unwrap().contains("regoin"),
        "{doc}"
    );
}

#[tokio::test]
async fn the_canary_value_never_leaves_the_binary_on_any_path() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr());
    let east = sm(&moto.endpoint(), "us-east-1").await;
    let west = sm(&moto.endpoint(), "us-west-2").await;
    let canary = canary();
    let value = value_with(&canary);
    let source = seed_secret(&east, "app/db", &value).await;
    seed_secret(&west, "taken/app/db", "not ours").await;
    proxy.add_rule(Rule::new(
        Match::op("CreateSecret").body_contains("denied/app/db"),
        Fault::access_denied(),
    ));
    let paths = [
        (
            "success",
            one_destination(
                "ok/${SECRET_NAME}",
                json!({"transforms": [{"sed": "s/us-east-1/us-west-2/g"}]}),
            ),
            None,
        ),
        (
            "transform failure",
            one_destination(
                "json/${SECRET_NAME}",
                json!({"transforms": [{"json": [{"path": "$.a", "set": 1}]}]}),
            ),
            Some(("TransformFailed", 422)),
        ),
        (
            "conflict",
            one_destination("taken/${SECRET_NAME}", json!({})),
            Some(("DestinationConflict", 409)),
        ),
        (
            "access denied",
            one_destination("denied/${SECRET_NAME}", json!({})),
            Some(("AccessDenied", 403)),
        ),
        (
            "too large",
            one_destination(
                "big/${SECRET_NAME}",
                json!({"transforms": [{"sed": "s/x/xxxxxxxx/g"}]}),
            ),
            Some(("TooLarge", 413)),
        ),
    ];
    let mut leaks = Vec::new();
    for (label, config, failure) in &paths {
        for log in [
            vec![("RUST_LOG", "trace")],
            vec![("RUST_LOG", "trace"), ("AWS_LAMBDA_LOG_FORMAT", "json")],
        ] {
            let out = replicate_cli(&put_event(&source), &proxy.endpoint(), config, &log);
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            // The path really ran: trace output exists and the document says what happened.
            assert!(
                stderr.lines().count() > 10,
                "{label}: little logging:\n{stderr}"
            );
            let doc = printed_doc(&out);
            match failure {
                None => assert_eq!(only(&doc)["status"], "replicated", "{label}: {doc}"),
                Some((kind, code)) => {
                    assert_eq!(only(&doc)["error"]["kind"], *kind, "{label}: {doc}");
                    assert_eq!(only(&doc)["statusCode"], *code, "{label}: {doc}");
                }
            }
            for (stream, content) in [("stdout", &stdout), ("stderr", &stderr)] {
                if let Some(line) = leak(content, &canary) {
                    leaks.push(format!("{label} ({log:?}) {stream}: {line}"));
                }
            }
        }
    }
    assert!(leaks.is_empty(), "the canary leaked:\n{}", leaks.join("\n"));
    // The success path did replicate the value (canary included) to the destination.
    assert_eq!(
        current(&west, "ok/app/db").await,
        Some(value.replace("us-east-1", "us-west-2"))
    );
    assert!(!exists(&west, "denied/app/db").await);
    assert!(!exists(&west, "big/app/db").await);
    assert_eq!(
        current(&west, "taken/app/db").await.as_deref(),
        Some("not ours")
    );
}

/// An `io::Write` into a shared buffer, for capturing trace output in-process.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_canary_value_never_reaches_a_report_a_failure_or_a_log_line_in_process() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr());
    let east = sm(&moto.endpoint(), "us-east-1").await;
    let west = sm(&moto.endpoint(), "us-west-2").await;
    let canary = canary();
    let value = value_with(&canary);
    let source = seed_secret(&east, "app/db", &value).await;
    seed_secret(&west, "taken/app/db", "not ours").await;
    proxy.add_rule(Rule::new(
        Match::op("CreateSecret").body_contains("denied/app/db"),
        Fault::access_denied(),
    ));
    let config = json!({"rules": [{"match": ["app/**"], "destinations": [
        {"region": "us-west-2", "name": "ok/${SECRET_NAME}", "transforms": [{"sed": "s/us-east-1/us-west-2/g"}]},
        {"region": "us-west-2", "name": "json/${SECRET_NAME}", "transforms": [{"json": [{"path": "$.a", "set": 1}]}]},
        {"region": "us-west-2", "name": "taken/${SECRET_NAME}"},
        {"region": "us-west-2", "name": "denied/${SECRET_NAME}"},
        {"region": "us-west-2", "name": "big/${SECRET_NAME}", "transforms": [{"sed": "s/x/xxxxxxxx/g"}]}
    ]}]})
    .to_string();
    // This test's thread only: the tests run in parallel threads of one process.
    let logs = Capture::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = app_from(settings(&config, &[]), sdk_config(&proxy.endpoint()).await).await;

    let as_event = app.handle(&put_event(&source)).await;
    let as_manual = app.handle(&manual("app/db")).await;

    let mut outputs = vec![format!("{as_event:?}"), format!("{as_manual:?}")];
    let failure = match as_event {
        Err(f) => f,
        Ok(r) => panic!("an event with failures must fail: {}", r.to_json()),
    };
    outputs.push(failure.to_string());
    outputs.push(format!("{:?}", lambda_runtime::Diagnostic::from(failure)));
    let report = as_manual.expect("a manual invocation returns the document");
    outputs.push(report.to_json());
    outputs.push(format!("{report:#?}"));
    let doc = doc(&report);
    for (name, kind) in [
        ("json/app/db", "TransformFailed"),
        ("taken/app/db", "DestinationConflict"),
        ("denied/app/db", "AccessDenied"),
        ("big/app/db", "TooLarge"),
    ] {
        assert_eq!(result_for(&doc, name)["error"]["kind"], kind, "{doc}");
    }
    assert_eq!(
        result_for(&doc, "ok/app/db")["status"],
        "replicated",
        "{doc}"
    );
    let logged = text(&logs.0.lock().unwrap());
    assert!(logged.contains("ok/app/db"), "nothing captured:\n{logged}");
    outputs.push(logged);
    let leaks: Vec<String> = outputs
        .iter()
        .enumerate()
        .filter_map(|(i, out)| leak(out, &canary).map(|line| format!("output {i}: {line}")))
        .collect();
    assert!(leaks.is_empty(), "the canary leaked:\n{}", leaks.join("\n"));
    assert_eq!(
        current(&west, "ok/app/db").await,
        Some(value.replace("us-east-1", "us-west-2"))
    );
}
