use super::*;
use std::sync::{Arc, Mutex};

/// A writer into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

/// The JSON lines `f` logs under the subscriber built for `env`.
fn lines(env: &[(&str, &str)], f: impl FnOnce()) -> Vec<Value> {
    let env = Env::from_pairs(env.iter().copied());
    let buf = Buffer::default();
    let subscriber = json_subscriber(lambda_filter(&env), buf.clone()).finish();
    tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn fields_are_top_level_keys_after_timestamp_level_and_message() {
    let got = lines(&[("AWS_LAMBDA_LOG_LEVEL", "INFO")], || {
        let span = tracing::info_span!("Lambda runtime invoke", requestId = "req-1");
        let _g = span.enter();
        tracing::warn!(
            status = "failed",
            errorKind = "AccessDenied",
            durationMs = 7u64,
            ok = false,
            destination = %"222222222222:us-west-2:dr/app",
            "destination outcome"
        );
    });
    assert_eq!(got.len(), 1);
    let line = got[0].as_object().unwrap();
    let keys: Vec<&str> = line.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "timestamp",
            "level",
            "message",
            "requestId",
            "status",
            "errorKind",
            "durationMs",
            "ok",
            "destination"
        ]
    );
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["message"], "destination outcome");
    assert_eq!(line["requestId"], "req-1");
    assert_eq!(line["status"], "failed");
    assert_eq!(line["durationMs"], 7);
    assert_eq!(line["ok"], false);
    assert_eq!(line["destination"], "222222222222:us-west-2:dr/app");
    let ts = line["timestamp"].as_str().unwrap();
    assert!(crate::time::parse_rfc3339(ts).is_some(), "{ts}");
    assert!(ts.ends_with('Z'), "{ts}");
}

#[test]
fn an_absent_field_is_left_out_and_a_reserved_name_is_kept_aside() {
    let got = lines(&[], || {
        let none: Option<&str> = None;
        tracing::info!(reason = none, level = "mine", "skipped");
    });
    let line = &got[0];
    assert!(line.get("reason").is_none(), "{line}");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["field.level"], "mine");
    assert!(
        line.get("requestId").is_none(),
        "outside an invocation: {line}"
    );
}

#[test]
fn the_threshold_is_lambdas_log_level_and_info_by_default() {
    let t = |pairs: &[(&str, &str)]| LogLevel::threshold(&Env::from_pairs(pairs.iter().copied()));
    assert_eq!(t(&[]), LogLevel::Info);
    assert_eq!(t(&[("AWS_LAMBDA_LOG_LEVEL", "WARN")]), LogLevel::Warn);
    assert_eq!(t(&[("AWS_LAMBDA_LOG_LEVEL", "fatal")]), LogLevel::Fatal);
    assert_eq!(t(&[("AWS_LAMBDA_LOG_LEVEL", "loud")]), LogLevel::Info);
    // RUST_LOG filters the process's own lines, not what Lambda filters by.
    assert_eq!(t(&[("RUST_LOG", "debug")]), LogLevel::Info);
    for l in LogLevel::ALL {
        assert_eq!(LogLevel::parse(l.as_str()), Some(l));
        assert_eq!(LogLevel::parse(&l.as_str().to_lowercase()), Some(l));
    }
}

#[test]
fn the_process_filters_as_the_advanced_logging_controls_say() {
    let levels = |env: &[(&str, &str)]| -> Vec<String> {
        lines(env, || {
            tracing::trace!("t");
            tracing::debug!("d");
            tracing::info!("i");
            tracing::warn!("w");
            tracing::error!("e");
        })
        .iter()
        .map(|l| l["level"].as_str().unwrap().to_string())
        .collect()
    };
    assert_eq!(levels(&[]), ["INFO", "WARN", "ERROR"]);
    assert_eq!(
        levels(&[("AWS_LAMBDA_LOG_LEVEL", "WARN")]),
        ["WARN", "ERROR"]
    );
    assert_eq!(levels(&[("AWS_LAMBDA_LOG_LEVEL", "ERROR")]), ["ERROR"]);
    assert!(levels(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]).is_empty());
    assert_eq!(levels(&[("AWS_LAMBDA_LOG_LEVEL", "TRACE")]).len(), 5);
    // AWS_LAMBDA_LOG_LEVEL takes precedence over RUST_LOG; RUST_LOG applies without it.
    assert_eq!(
        levels(&[("AWS_LAMBDA_LOG_LEVEL", "ERROR"), ("RUST_LOG", "trace")]),
        ["ERROR"]
    );
    assert_eq!(levels(&[("RUST_LOG", "debug")]).len(), 4);
}
