//! `secret-replicator plan` (SPEC §9) as an operator runs it against moto: a readable table by
//! default, the result document with `--json`, and never a write.

// The SDK call futures nest deeply; the default limit (128) is too low for their layout.
#![recursion_limit = "256"]

mod common;

use common::Moto;
use common::app::*;
use serde_json::{Value, json};
use std::process::{Command, Output, Stdio};

fn config() -> String {
    json!({"rules": [{"match": ["app/**"], "destinations": [
        {"region": "us-west-2", "transforms": [{"sed": "s/-primary/-replica-west/g"}]}
    ]}]})
    .to_string()
}

/// Runs the binary with only the variables an operator would set (nothing from this process).
fn run(moto: &Moto, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secret-replicator"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_REGION", REGION)
        .envs(common::app::function_env())
        .env("REPLICATOR_CONFIG", config())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run the binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn size(v: &str) -> usize {
    v.replace("-primary", "-replica-west").len()
}

const FRESH: &str = "host=db-primary;pw=s3cr3t-fresh";
const SAME: &str = "host=cache-primary;pw=s3cr3t-same";
const DRIFT: &str = "host=mq-primary;pw=s3cr3t-drift";

/// Three sources: one never replicated, one in line, one whose copy was edited by hand.
async fn setup(moto: &Moto) -> (Sm3, [usize; 3]) {
    let ep = moto.endpoint();
    let east = sm(&ep, "us-east-1").await;
    let west = sm(&ep, "us-west-2").await;
    seed_secret(&east, "app/fresh", FRESH).await;
    seed_secret(&east, "app/same", SAME).await;
    seed_secret(&east, "app/drift", DRIFT).await;
    let app = app_with(&config(), &ep).await;
    ok(app.handle(&manual("app/same")).await);
    ok(app.handle(&manual("app/drift")).await);
    put_value(&west, "app/drift", "edited by hand").await;
    let counts = [
        versions(&east, "app/fresh").await,
        versions(&west, "app/same").await,
        versions(&west, "app/drift").await,
    ];
    moto.reset_calls();
    (Sm3 { east, west }, counts)
}

struct Sm3 {
    east: aws_sdk_secretsmanager::Client,
    west: aws_sdk_secretsmanager::Client,
}

async fn assert_nothing_changed(moto: &Moto, c: &Sm3, before: [usize; 3]) {
    let writes = write_calls(moto);
    assert!(writes.is_empty(), "plan wrote: {writes:?}");
    assert!(!exists(&c.west, "app/fresh").await);
    assert_eq!(
        [
            versions(&c.east, "app/fresh").await,
            versions(&c.west, "app/same").await,
            versions(&c.west, "app/drift").await,
        ],
        before
    );
    assert_eq!(
        current(&c.west, "app/drift").await.as_deref(),
        Some("edited by hand")
    );
}

#[tokio::test]
async fn plan_all_prints_a_table_and_writes_nothing() {
    let moto = Moto::start();
    let (clients, before) = setup(&moto).await;

    let out = run(&moto, &["plan", "--all"]);

    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "SOURCE",
            "DESTINATION",
            "STATUS",
            "ACTION",
            "SIZE",
            "CHANGE",
            "NOTE"
        ],
        "{stdout}"
    );
    assert_eq!(
        lines.len(),
        4,
        "a header and one row per destination:\n{stdout}"
    );
    let row = |name: &str| -> Vec<&str> {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{stdout}"))
            .split_whitespace()
            .collect()
    };
    let dest = |name: &str| format!("{ACCOUNT}:us-west-2:{name}");
    assert_eq!(
        row("app/fresh"),
        [
            "app/fresh",
            &dest("app/fresh"),
            "planned",
            "create",
            &size(FRESH).to_string(),
            "yes"
        ]
    );
    assert_eq!(
        row("app/same"),
        [
            "app/same",
            &dest("app/same"),
            "planned",
            "none",
            &size(SAME).to_string(),
            "no"
        ]
    );
    let drift = row("app/drift");
    assert_eq!(drift[2], "planned", "{stdout}");
    assert!(drift[3] == "update" || drift[3] == "label", "{stdout}");
    assert_eq!(drift[4], size(DRIFT).to_string(), "{stdout}");
    assert_eq!(drift[5], "yes", "{stdout}");
    let all = format!("{stdout}{}", text(&out.stderr));
    for secret in ["s3cr3t", "edited by hand", "replica-west"] {
        assert!(!all.contains(secret), "the output quotes a value:\n{all}");
    }

    assert_nothing_changed(&moto, &clients, before).await;
}

#[tokio::test]
async fn plan_one_secret_as_json_prints_the_document_and_writes_nothing() {
    let moto = Moto::start();
    let (clients, before) = setup(&moto).await;

    let out = run(&moto, &["plan", "--secret", "app/fresh", "--json"]);

    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let doc: Value = serde_json::from_str(text(&out.stdout).trim()).expect("one JSON document");
    assert_eq!(doc["statusCode"], 200, "{doc}");
    let r = only(&doc);
    assert_eq!(r["status"], "planned", "{doc}");
    assert_eq!(r["action"], "create", "{doc}");
    assert_eq!(r["wouldChange"], true, "{doc}");
    assert_eq!(r["size"], size(FRESH), "{doc}");
    assert_eq!(
        r["destination"],
        json!({"region": "us-west-2", "account": ACCOUNT, "name": "app/fresh"}),
        "{doc}"
    );
    assert!(!doc.to_string().contains("s3cr3t"), "{doc}");

    let out = run(&moto, &["plan", "--secret", "app/drift", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_str(text(&out.stdout).trim()).expect("one JSON document");
    assert_eq!(only(&doc)["wouldChange"], true, "{doc}");

    assert_nothing_changed(&moto, &clients, before).await;
}

#[test]
fn plan_without_a_target_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_secret-replicator"))
        .arg("plan")
        .env_clear()
        .env("REPLICATOR_CONFIG", config())
        .env("AWS_REGION", REGION)
        .output()
        .expect("run the binary");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--secret"),
        "{}",
        text(&out.stderr)
    );
}
