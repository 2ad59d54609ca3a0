//! The real binary as a Lambda function under a fake Runtime API against moto, for the tests
//! that read what it prints (metric lines, log lines).

use serde_json::Value;

/// Runs the real binary as a Lambda function against moto: one replication that succeeds,
/// one that fails (an unowned destination: DestinationConflict), and a config reload that
/// fails (ConfigLoadFailures, Reason=Invalid), with Lambda's log level `level`
/// (`AWS_LAMBDA_LOG_LEVEL`). Returns its stdout lines.
pub fn real_run_at(level: &str) -> Vec<String> {
    use super::Moto;
    use super::app::{put_event, seed_secret, sm};
    use super::runtime::{Answer, FakeRuntime};
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    let moto = Moto::start();
    let endpoint = moto.endpoint();
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let (ok, conflict, source) = tokio.block_on(async {
        let source = sm(&endpoint, "us-east-1").await;
        let dest = sm(&endpoint, "us-west-2").await;
        let config = r#"{"rules":[{"match":["app/**"],"destinations":[{"region":"us-west-2","name":"dr/${SECRET_NAME}"}]}]}"#;
        seed_secret(&source, "replicator/config", config).await;
        let ok = seed_secret(&source, "app/ok", "postgres://db.us-east-1.example.com/app").await;
        let conflict = seed_secret(&source, "app/conflict", "x").await;
        // Someone else's secret where the copy would go: not owned, so never written (409).
        seed_secret(&dest, "dr/app/conflict", "theirs").await;
        (ok, conflict, source)
    });

    let account = super::app::ACCOUNT;
    let rt = FakeRuntime::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_secret-replicator"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", rt.api())
        .env("AWS_LAMBDA_FUNCTION_NAME", "secret-replicator")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/secret-replicator")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", level)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .envs(super::app::function_env())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "REPLICATOR_ROLE_ARN",
            format!("arn:aws:iam::{account}:role/replicator"),
        )
        .env("REPLICATOR_CONFIG_SECRET", "replicator/config")
        .env("REPLICATOR_CONFIG_TTL_SECONDS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run the secret-replicator binary");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let invoke = |event: Value| rt.answer(&rt.push(&event), Duration::from_secs(60));

    let first = invoke(put_event(&ok));
    let second = invoke(put_event(&conflict));
    // An invalid document in the config secret: the reload keeps the last good one.
    tokio.block_on(async {
        source
            .put_secret_value()
            .secret_id("replicator/config")
            .secret_string("{not json")
            .send()
            .await
            .expect("update the config secret");
    });
    std::thread::sleep(Duration::from_millis(1100));
    let third = invoke(put_event(&ok));

    // The memory setting's evidence: peak resident memory of the function process.
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        && let Some(peak) = status.lines().find(|l| l.starts_with("VmHWM"))
    {
        eprintln!("deploy: function process peak memory ({peak})");
    }
    let _ = child.kill();
    let _ = child.wait();
    let lines = reader.join().unwrap();
    let output = lines.join("\n");
    assert!(
        matches!(&first, Answer::Response { .. }),
        "{first:?}\n{output}"
    );
    match &second {
        Answer::Error { body, .. } => {
            let doc: Value = serde_json::from_str(body).expect("error body is JSON");
            assert_eq!(doc["errorType"], "DestinationConflict", "{body}");
        }
        other => panic!("{other:?}\n{output}"),
    }
    assert!(
        matches!(&third, Answer::Response { .. }),
        "{third:?}\n{output}"
    );
    lines
}
