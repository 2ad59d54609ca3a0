//! The operator CLI (SPEC §9) as a user runs it: exit codes scripts can rely on (0 success,
//! 1 failure, 2 usage) and located error text.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_secret-replicator"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run the binary");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn transform_prints_the_rewritten_value() {
    let out = run(
        &[
            "transform",
            "--transform",
            "sedfiles/us-east-1-to-us-west-2.sed",
        ],
        "postgres://db.us-east-1.rds.amazonaws.com:5432/app in us-east-1a\n",
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "postgres://db.us-west-2.rds.amazonaws.com:5432/app in us-east-1a\n"
    );
}

#[test]
fn transform_chains_references_and_takes_variables() {
    let out = run(
        &[
            "transform",
            "--transform",
            r#"{"json":[{"path":"$.host","set":"db.${DEST_REGION}.internal"}]}"#,
            "--transform",
            r#"{"sed":"s/internal/example/"}"#,
            "--var",
            "DEST_REGION=us-west-2",
        ],
        r#"{"host":"db.us-east-1.internal","port":5432}"#,
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        r#"{"host":"db.us-west-2.example","port":5432}"#
    );
}

#[test]
fn transform_errors_are_located_and_never_quote_the_value() {
    let out = run(
        &["transform", "--transform", r#"{"sed":"s/a/b/q"}"#],
        "abc",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "secret-replicator: inline:1:7: unknown flag `q`; expected g, i, I, m, M or a number, then `;`, `#` or end of line in `s/a/b/q`"
    );

    let out = run(
        &["transform", "--transform", "sedfiles/db-connection.json"],
        "canary-not-json-7f3a",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("not valid JSON"), "{err}");
    assert!(!err.contains("canary-not-json-7f3a"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["transform"][..],
        &["frobnicate"],
        &["replicate"],
        &["validate", "--nope", "x"],
    ] {
        let out = run(args, "", &[]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stderr).contains("usage:"));
    }
}

#[test]
fn validate_accepts_a_good_config_and_counts_it() {
    let out = run(
        &["validate", "--config", "tests/fixtures/config/valid.json"],
        "",
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "valid: 1 rule(s), 2 destination(s)"
    );
}

#[test]
fn validate_reports_every_error_with_its_location() {
    let out = run(
        &["validate", "--config", "tests/fixtures/config/invalid.json"],
        "",
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for want in [
        "rules[0].destinations[0].region: expected an AWS region such as us-west-2, got \"us-west-2x\"",
        "rules[0].destinations[0].transforms[0]: inline:1:7: unknown flag `q`",
        "rules[0].destinations[1].account_role_arn: expected an IAM role ARN",
        "rules[0].destinations[1].name:",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error: ")).count(),
        4,
        "{err}"
    );
}

#[test]
fn validate_warns_about_loops_but_accepts_the_config() {
    let out = run(
        &["validate", "--config", "tests/fixtures/config/loop.json"],
        "",
        &[("AWS_REGION", "us-east-1")],
    );
    assert_eq!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: rules[0].destinations[0]: in the source's own account and region"),
        "{err}"
    );
}

#[test]
fn validate_reads_the_configuration_from_the_environment() {
    let out = run(
        &["validate"],
        "",
        &[
            ("DEST_REGION", "us-west-2"),
            ("TRANSFORMS", "sedfiles/nope.sed"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("TRANSFORMS[0]: cannot read sedfiles/nope.sed"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        &["validate"],
        "",
        &[("REPLICATOR_CONFIG", "{}"), ("DEST_REGION", "us-west-2")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("exactly one source"));
}

#[test]
fn replicate_reports_a_deeply_nested_event_as_too_deep_with_the_limit() {
    let dir = std::env::temp_dir().join(format!("sr-cli-deep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("deep.json");
    // Past serde_json's own recursion limit (128), which would say "recursion limit exceeded".
    std::fs::write(
        &path,
        format!("{}{}", "{\"a\":".repeat(300), "}".repeat(300)),
    )
    .expect("write the event");
    let out = run(
        &["replicate", "--event", path.to_str().expect("utf-8 path")],
        "",
        &[],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("deeper than the limit of 64"), "{err}");
    assert!(!err.contains("recursion limit"), "{err}");
}
