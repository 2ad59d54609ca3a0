//! `secret-replicator check [--config FILE]` (SPEC §9) as an operator runs it, through the real
//! binary against the IAM-enforcing moto: every destination passes on a good setup (probes
//! created under `secret-replicator/check/` with the marker and the configured key, written, and
//! scheduled for deletion in 7 days; a second run passes too), and each failure names its step
//! and AWS's code: a refused AssumeRole, an unknown key, a refused CreateSecret.

// The SDK call futures nest deeply; the default limit (128) is too low for their layout.
#![recursion_limit = "256"]

mod common;

use aws_sdk_secretsmanager::Client as Sm;
use common::Moto;
use common::app::*;
use common::iam_setup::IamSetup;
use common::policies::{self, DEST_ROLE_ARN, EXTERNAL_ID};
use serde_json::{Value, json};
use std::process::{Command, Output, Stdio};

/// Runs `check --config FILE` with only what an operator's shell would set: the endpoint, the
/// region, and credentials that may assume the destination role (the function role's session:
/// the destination role trusts `role/secret-replicator/*` of the source account).
fn check(moto: &Moto, test: &str, config: &Value) -> Output {
    let path = format!("{}/check-{test}.json", env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(&path, config.to_string()).expect("write the config");
    Command::new(env!("CARGO_BIN_EXE_secret-replicator"))
        .args(["check", "--config", &path])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_REGION", REGION)
        .envs(function_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run the binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The probes in one account and region (scheduled for deletion included), described.
async fn probes(
    sm: &Sm,
) -> Vec<aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput> {
    let listed = sm
        .list_secrets()
        .include_planned_deletion(true)
        .send()
        .await
        .expect("ListSecrets");
    let mut out = Vec::new();
    for e in listed.secret_list() {
        let name = e.name().unwrap_or_default();
        if name.starts_with("secret-replicator/check/") {
            out.push(describe(sm, name).await);
        }
    }
    out
}

/// A customer-managed key in the destination account, in us-west-2.
async fn dest_key(moto: &Moto) -> String {
    let creds = account_credentials(&moto.endpoint(), DEST_ACCOUNT).await;
    let kms = aws_sdk_kms::Client::new(&client_config(&moto.endpoint(), "us-west-2", creds).await);
    let key = kms.create_key().send().await.expect("CreateKey");
    key.key_metadata()
        .and_then(|m| m.arn())
        .expect("a key ARN")
        .to_string()
}

fn cross_account(external_id: &str, key: Option<&str>) -> Value {
    let mut d = json!({
        "region": "us-west-2",
        "account_role_arn": DEST_ROLE_ARN,
        "external_id": external_id,
    });
    if let Some(k) = key {
        d["kms_key_id"] = json!(k);
    }
    d
}

#[tokio::test]
async fn check_passes_on_a_good_setup_and_again_on_a_second_run() {
    let moto = Moto::start();
    let key = dest_key(&moto).await;
    let config = json!({"rules": [{"match": ["app/**"], "destinations": [
        {"region": "us-west-2"},
        cross_account(EXTERNAL_ID, Some(&key)),
    ]}]});

    let out = check(&moto, "good", &config);

    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        2,
        "{stdout}"
    );
    assert!(
        stdout.contains("check passed: 2 destination(s)"),
        "{stdout}"
    );

    let own = sm(&moto.endpoint(), "us-west-2").await;
    let dest = dest_client(&moto.endpoint(), DEST_ACCOUNT, "us-west-2").await;
    for (sm, want_key) in [(&own, None), (&dest, Some(key.as_str()))] {
        let p = probes(sm).await;
        assert_eq!(p.len(), 1, "{p:?}");
        let d = &p[0];
        assert!(d.deleted_date().is_some(), "scheduled for deletion: {d:?}");
        let marker = tag(d, MARKER).expect("the marker tag");
        assert!(marker.starts_with("check:"), "a probe's marker: {marker}");
        assert_eq!(d.kms_key_id(), want_key, "{d:?}");
        // Created, then written: two versions.
        assert_eq!(d.version_ids_to_stages().map(|v| v.len()), Some(2), "{d:?}");
    }
    // The deletions have a recovery window of 7 days, never a forced delete.
    let deletes: Vec<String> = moto
        .calls()
        .into_iter()
        .filter(|c| c.operation == "DeleteSecret")
        .map(|c| c.body)
        .collect();
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    for body in &deletes {
        let b: Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(b["RecoveryWindowInDays"], 7, "{body}");
        assert!(b.get("ForceDeleteWithoutRecovery").is_none(), "{body}");
    }
    // No probe value is a secret, and none is printed.
    assert!(!stdout.contains("probe: not a secret"), "{stdout}");

    // A second run does not trip over the first run's probes (still scheduled for deletion).
    let again = check(&moto, "good-again", &config);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(probes(&own).await.len(), 2);
    assert_eq!(probes(&dest).await.len(), 2);
}

#[tokio::test]
async fn a_refused_assume_role_names_the_step_and_access_denied() {
    let moto = Moto::start();
    let config = json!({"rules": [{"destinations": [
        cross_account("not-the-external-id", None),
        {"region": "us-west-2", "account_role_arn": "arn:aws:iam::222233334444:role/no-such-role",
         "external_id": EXTERNAL_ID},
        {"region": "us-west-2"},
    ]}]});

    let out = check(&moto, "assume", &config);

    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    let fails: Vec<&str> = stderr.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), 2, "{stderr}");
    assert!(
        fails[0].contains("rules[0].destinations[0]")
            && fails[0].contains("AssumeRole failed: AccessDenied:"),
        "{stderr}"
    );
    assert!(
        fails[1].contains("rules[0].destinations[1]")
            && fails[1].contains("AssumeRole failed: AccessDenied:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("check failed: 2 of 3 destination(s)"),
        "{stderr}"
    );
    // The destination that could be checked was, and nothing was written in the other account.
    assert!(
        text(&out.stdout).contains("ok    rules[0].destinations[2]"),
        "{}",
        text(&out.stdout)
    );
    let dest = dest_client(&moto.endpoint(), DEST_ACCOUNT, "us-west-2").await;
    assert!(probes(&dest).await.is_empty());
}

#[tokio::test]
async fn an_unknown_key_names_describe_key_and_not_found() {
    let moto = Moto::start();
    let config = json!({"rules": [{"destinations": [
        cross_account(EXTERNAL_ID, Some("alias/no-such-key")),
    ]}]});

    let out = check(&moto, "key", &config);

    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("DescribeKey failed: NotFoundException:"),
        "{stderr}"
    );
    let dest = dest_client(&moto.endpoint(), DEST_ACCOUNT, "us-west-2").await;
    assert!(probes(&dest).await.is_empty(), "no probe without its key");
}

#[tokio::test]
async fn a_refused_create_names_create_secret_and_access_denied() {
    let without_create = policies::function_policy_without("secretsmanager:CreateSecret");
    let moto = Moto::start_with(&IamSetup::with_function_policy(without_create));
    let config = json!({"rules": [{"destinations": [{"region": "us-west-2"}]}]});

    let out = check(&moto, "create", &config);

    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("CreateSecret failed: AccessDeniedException:"),
        "{stderr}"
    );
    let own = sm(&moto.endpoint(), "us-west-2").await;
    assert!(probes(&own).await.is_empty());
}

#[test]
fn help_lists_check() {
    let out = Command::new(env!("CARGO_BIN_EXE_secret-replicator"))
        .arg("--help")
        .env_clear()
        .output()
        .expect("run the binary");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("secret-replicator check [--config FILE]"),
        "{}",
        text(&out.stdout)
    );
}
