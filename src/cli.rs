//! The operator command line (SPEC §9): the same binary outside a Lambda runtime.
//!
//! Exit codes: 0 success; 1 the work failed (a failed replication, an invalid config, a
//! transform error); 2 a usage error.

use crate::aws::AwsStores;
use crate::config::{self, Config, NoFetcher, TextFetcher};
use crate::metrics::Metrics;
use crate::settings::{self, ConfigSource, Env, Settings};
use crate::transform::{self, LoadVars, Vars};
use std::io::Read;
use std::process::ExitCode;

pub mod check;

const USAGE: &str = "\
usage:
  secret-replicator replicate --event FILE
      run one invocation locally against the configured AWS endpoint; prints the result document
  secret-replicator transform --transform REF [--var K=V ...] < value
      print the transformed value (REF: path.sed, path.json, secret:<id>, or inline JSON such as
      '{\"sed\": \"s/a/b/g\"}')
  secret-replicator plan [--secret ID ...| --all] [--region R] [--json]
      what a replication would do (a dry run: nothing is written); a table, or the document
  secret-replicator validate [--config FILE]
      load and compile the configuration (default: from the environment) and every transform
      it names; report every error and loop risk
  secret-replicator check [--config FILE]
      before the first event: for each destination, assume its role (with the external id),
      describe its configured key, create a probe secret under secret-replicator/check/ with the
      marker tag and that key, write it, and schedule its deletion (7 days); exit 0 only when
      every destination passes, else name the step and AWS's error code

The configuration comes from the environment (REPLICATOR_CONFIG, REPLICATOR_CONFIG_FILE,
REPLICATOR_CONFIG_SECRET or DEST_REGION...), AWS endpoints from the standard SDK chain.";

/// A command line, parsed: what [`run`] executes. Parsing is pure (no I/O, no AWS), so that
/// any argument vector can be fuzzed (`fuzz/fuzz_targets/cli_args.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    /// `replicate --event FILE`.
    Replicate {
        event: String,
    },
    /// `transform --transform REF ... [--var K=V ...]`.
    Transform {
        refs: Vec<String>,
        vars: Vec<(String, String)>,
    },
    /// `plan`: the dry-run payload it sends, and whether to print the document.
    Plan {
        payload: serde_json::Value,
        json: bool,
    },
    /// `validate [--config FILE]`.
    Validate {
        config: Option<String>,
    },
    /// `check [--config FILE]`.
    Check {
        config: Option<String>,
    },
}

/// A usage error: exit code 2, with this message above the usage text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub String);

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, Usage> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(Usage("no command".into()));
    };
    match cmd.as_str() {
        "replicate" => {
            let f = flags(rest, &["--event"])?;
            let event =
                one(&f, "--event").ok_or_else(|| Usage("replicate needs --event FILE".into()))?;
            Ok(Command::Replicate { event })
        }
        "transform" => {
            let f = flags(rest, &["--transform", "--var"])?;
            let refs: Vec<String> = f
                .iter()
                .filter(|(k, _)| k == "--transform")
                .map(|(_, v)| v.clone())
                .collect();
            if refs.is_empty() {
                return Err(Usage("transform needs --transform REF".into()));
            }
            let vars = f
                .iter()
                .filter(|(k, _)| k == "--var")
                .map(|(_, kv)| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| Usage(format!("--var {kv:?}: expected NAME=VALUE")))
                })
                .collect::<Result<_, _>>()?;
            Ok(Command::Transform { refs, vars })
        }
        "validate" => {
            let f = flags(rest, &["--config"])?;
            Ok(Command::Validate {
                config: one(&f, "--config"),
            })
        }
        "check" => {
            let f = flags(rest, &["--config"])?;
            Ok(Command::Check {
                config: one(&f, "--config"),
            })
        }
        "plan" => plan_args(rest),
        "-h" | "--help" | "help" => Ok(Command::Help),
        other => Err(Usage(format!("unknown command {other:?}"))),
    }
}

/// Runs a CLI command; returns the process exit code.
pub async fn run(env: Env, args: Vec<String>) -> ExitCode {
    init_logging(&env);
    let result = match parse(&args) {
        Err(usage) => Err(usage),
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        // Boxed: the futures are deep, and each command runs once.
        Ok(Command::Replicate { event }) => Box::pin(replicate(env, &event)).await,
        Ok(Command::Transform { refs, vars }) => Box::pin(transform_cmd(refs, vars)).await,
        Ok(Command::Validate { config }) => Box::pin(validate(env, config)).await,
        Ok(Command::Plan { payload, json }) => Box::pin(plan(env, payload, json)).await,
        Ok(Command::Check { config }) => Box::pin(check_cmd(env, config)).await,
    };
    match result {
        Ok(code) => code,
        Err(Usage(_)) if args.is_empty() => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
        Err(Usage(msg)) => {
            eprintln!("secret-replicator: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(env: &Env) {
    let filter = tracing_subscriber::EnvFilter::new(
        env.get("RUST_LOG")
            .or_else(|| env.get("AWS_LAMBDA_LOG_LEVEL"))
            .unwrap_or("warn"),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if env
        .get("AWS_LAMBDA_LOG_FORMAT")
        .is_some_and(|f| f.eq_ignore_ascii_case("json"))
    {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Pulls `--flag VALUE` pairs out of the arguments.
fn flags(args: &[String], known: &[&str]) -> Result<Vec<(String, String)>, Usage> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if !known.contains(&a.as_str()) {
            return Err(Usage(format!("unexpected argument {a:?}")));
        }
        let v = it
            .next()
            .ok_or_else(|| Usage(format!("{a} needs a value")))?;
        out.push((a.clone(), v.clone()));
    }
    Ok(out)
}

fn one(flags: &[(String, String)], name: &str) -> Option<String> {
    flags
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

async fn replicate(env: Env, path: &str) -> Result<ExitCode, Usage> {
    let payload: serde_json::Value = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| crate::event::read_payload(&t).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("secret-replicator: cannot read event {path}: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let (report, ok) = match invoke(env, &payload).await {
        Ok(r) => r,
        Err(report) => (report, false),
    };
    println!("{}", report.to_json());
    Ok(exit(ok))
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One local invocation with the configuration from the environment: the report, and whether
/// nothing failed. `Err` carries the report of a configuration that could not load.
async fn invoke(
    env: Env,
    payload: &serde_json::Value,
) -> Result<(crate::outcome::Report, bool), crate::outcome::Report> {
    let settings = Settings::from_env(&env).map_err(|e| crate::outcome::Report::top_level(&e))?;
    let app = crate::app::build(settings, Metrics::OFF)
        .await
        .map_err(|e| crate::outcome::Report::top_level(&e))?;
    // A failure record (one message of the failure queue) is redriven as under Lambda.
    let answer = if crate::event::redrive::is_failure_record(payload) {
        app.redrive(payload, &crate::app::Invoked::default()).await
    } else {
        app.handle(payload).await
    };
    Ok(match answer {
        Ok(r) => {
            let ok = r.first_failure().is_none();
            (r, ok)
        }
        Err(f) => (f.0, false),
    })
}

async fn plan(env: Env, payload: serde_json::Value, json: bool) -> Result<ExitCode, Usage> {
    let (report, ok) = match invoke(env, &payload).await {
        Ok(r) => r,
        Err(report) => (report, false),
    };
    if json {
        println!("{}", report.to_json());
    } else {
        print!("{}", table(&report));
    }
    Ok(exit(ok))
}

/// `plan`'s arguments: the dry-run payload, and `--json`.
fn plan_args(args: &[String]) -> Result<Command, Usage> {
    let mut secrets = Vec::new();
    let (mut all, mut json, mut region) = (false, false, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--all" => all = true,
            "--json" => json = true,
            "--secret" | "--region" => {
                let v = it
                    .next()
                    .ok_or_else(|| Usage(format!("{a} needs a value")))?
                    .clone();
                if a == "--secret" {
                    secrets.push(v);
                } else {
                    region = Some(v);
                }
            }
            other => return Err(Usage(format!("unexpected argument {other:?}"))),
        }
    }
    let mut payload = match (all, secrets.is_empty()) {
        (true, true) => serde_json::json!({"source": "manual", "all": true, "dryRun": true}),
        (false, false) => {
            serde_json::json!({"source": "manual", "secretIds": secrets, "dryRun": true})
        }
        _ => return Err(Usage("plan needs --secret ID (repeatable) or --all".into())),
    };
    if let Some(r) = region {
        payload["region"] = serde_json::Value::String(r);
    }
    Ok(Command::Plan { payload, json })
}

/// The plan as a readable table.
pub fn table(report: &crate::outcome::Report) -> String {
    let mut rows = vec![[
        "SOURCE".to_string(),
        "DESTINATION".to_string(),
        "STATUS".to_string(),
        "ACTION".to_string(),
        "SIZE".to_string(),
        "CHANGE".to_string(),
        "NOTE".to_string(),
    ]];
    if let Some(e) = &report.error {
        rows.push([
            "-".into(),
            "-".into(),
            "failed".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            format!("{}: {}", e.kind.as_str(), e.message),
        ]);
    }
    for o in &report.results {
        let v = serde_json::to_value(o).unwrap_or_default();
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("-").to_string();
        let source = o
            .source
            .rsplit_once(":secret:")
            .map(|(_, n)| n)
            .unwrap_or(&o.source);
        // Full ARNs end in a 7-character suffix; show the name.
        let source = match source.len().checked_sub(7).map(|i| source.split_at(i)) {
            Some((name, suffix)) if o.source.starts_with("arn:") && suffix.starts_with('-') => {
                name.to_string()
            }
            _ => source.to_string(),
        };
        rows.push([
            source,
            o.destination
                .as_ref()
                .map(|d| format!("{}:{}:{}", d.account, d.region, d.name))
                .unwrap_or_else(|| "-".into()),
            text("status"),
            text("action"),
            o.size.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            match o.would_change {
                Some(true) => "yes".into(),
                Some(false) => "no".into(),
                None => "-".into(),
            },
            o.error
                .as_ref()
                .map(|e| format!("{}: {}", e.kind.as_str(), e.message))
                .or_else(|| o.reason.map(|r| r.as_str().to_string()))
                .unwrap_or_default(),
        ]);
    }
    for r in &report.remaining {
        rows.push([
            r.clone(),
            "-".into(),
            "remaining".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "not reached before the deadline".into(),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

async fn transform_cmd(refs: Vec<String>, pairs: Vec<(String, String)>) -> Result<ExitCode, Usage> {
    let mut vars = Vars::new();
    for (k, v) in &pairs {
        vars.set(k, v);
    }
    let known: Vec<String> = transform::BUILTIN_VARS
        .iter()
        .map(|s| s.to_string())
        .chain(vars.iter().map(|(k, _)| k.to_string()))
        .collect();
    let load_vars = LoadVars::new(known, vars.clone());
    let needs_aws = refs.iter().any(|r| r.starts_with("secret:"));
    let mut chain = Vec::new();
    for r in &refs {
        let reference = if r.trim_start().starts_with('{') {
            match serde_json::from_str(r) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("secret-replicator: --transform {r}: not valid JSON: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            }
        } else {
            serde_json::Value::String(r.clone())
        };
        let loaded = if needs_aws {
            let stores = own_stores().await;
            config::load_transform(&reference, &load_vars, &crate::app::OwnSecrets(&stores)).await
        } else {
            config::load_transform(&reference, &load_vars, &NoFetcher).await
        };
        match loaded {
            Ok(t) => chain.push(std::sync::Arc::new(t)),
            Err(msg) => {
                eprintln!("secret-replicator: {msg}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    // The value and its transformed form are wiped when done (the operator asked to see the
    // output: it is printed, nothing else is).
    let mut input = zeroize::Zeroizing::new(String::new());
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("secret-replicator: cannot read the value from standard input: {e}");
        return Ok(ExitCode::FAILURE);
    }
    match transform::Chain::new(chain).apply(&input, &vars) {
        Ok(out) => {
            let out = out.map(zeroize::Zeroizing::new);
            print!("{}", out.as_deref().map_or(input.as_str(), String::as_str));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("secret-replicator: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The configuration `validate` and `check` work on: the file named, else the environment's.
async fn load_config(env: &Env, config_path: Option<String>) -> Result<Config, String> {
    match config_path {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => with_fetcher(text.contains("secret:"), |fetcher| async move {
                config::load_document(&text, &fetcher).await
            })
            .await
            .map_err(|e| config::prefixed(&path, &e).to_string()),
            Err(e) => Err(format!("{path}: cannot read: {e}")),
        },
        None => match Settings::from_env(env) {
            Ok(settings) => {
                let aws = matches!(settings.source, ConfigSource::Secret { .. });
                with_fetcher(aws, |fetcher| async move {
                    config::load(&settings, &fetcher).await
                })
                .await
                .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        },
    }
}

async fn validate(env: Env, config_path: Option<String>) -> Result<ExitCode, Usage> {
    match load_config(&env, config_path).await {
        Ok(config) => {
            let region = env
                .get("AWS_REGION")
                .or_else(|| env.get("AWS_DEFAULT_REGION"));
            for w in loop_warnings(&config, region) {
                eprintln!("warning: {w}");
            }
            let destinations: usize = config.rules.iter().map(|r| r.destinations.len()).sum();
            println!(
                "valid: {} rule(s), {destinations} destination(s)",
                config.rules.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(msg) => {
            for line in msg.lines() {
                eprintln!("error: {line}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `check`: the configuration as `validate` loads it, then each destination probed with the
/// operator's credentials ([`check::run`]).
async fn check_cmd(env: Env, config_path: Option<String>) -> Result<ExitCode, Usage> {
    let config = match load_config(&env, config_path).await {
        Ok(c) => c,
        Err(msg) => {
            for line in msg.lines() {
                eprintln!("error: {line}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let sdk = crate::aws::sdk_config().await;
    // The SDK's region chain (AWS_REGION, AWS_DEFAULT_REGION, the profile), as the function's.
    let Some(region) = sdk.region().map(|r| r.to_string()) else {
        eprintln!(
            "secret-replicator: check: no AWS region (set AWS_REGION): destinations without a region are in the function's"
        );
        return Ok(ExitCode::FAILURE);
    };
    let stores = AwsStores::new(sdk, settings::DEFAULT_FUNCTION_NAME);
    Ok(check::run(&stores, &config, &region).await)
}

/// Runs `f` with a fetcher that can read secrets only when the configuration names one (so
/// that validating a plain document needs no AWS access).
async fn with_fetcher<F, Fut>(aws: bool, f: F) -> Result<Config, crate::outcome::Error>
where
    F: FnOnce(Fetcher) -> Fut,
    Fut: std::future::Future<Output = Result<Config, crate::outcome::Error>>,
{
    if aws {
        f(Fetcher::Aws(Box::new(own_stores().await))).await
    } else {
        f(Fetcher::None).await
    }
}

/// Clients with the operator's own credentials, from the standard AWS chains.
async fn own_stores() -> AwsStores {
    AwsStores::new(
        crate::aws::sdk_config().await,
        settings::DEFAULT_FUNCTION_NAME,
    )
}

/// Either no secret access or the function's own credentials.
enum Fetcher {
    None,
    Aws(Box<AwsStores>),
}

impl TextFetcher for Fetcher {
    async fn fetch_text(&self, id: &str) -> Result<String, crate::outcome::Error> {
        match self {
            Fetcher::None => NoFetcher.fetch_text(id).await,
            Fetcher::Aws(stores) => crate::app::OwnSecrets(stores.as_ref()).fetch_text(id).await,
        }
    }
}

/// Destinations in the source's own account and region whose name some rule would match: each
/// replication would feed itself (the function skips them with reason `loop`).
pub fn loop_warnings(config: &Config, region: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for rule in &config.rules {
        for d in &rule.destinations {
            let same_place =
                d.role.is_none() && d.region.as_deref().is_none_or(|r| Some(r) == region);
            if !same_place {
                continue;
            }
            for sample in rule.samples() {
                let mut vars = Vars::new();
                for (k, v) in &d.variables {
                    vars.set(k.clone(), v.clone());
                }
                let r = region.unwrap_or("us-east-1");
                vars.set("SECRET_NAME", sample.clone());
                vars.set("SOURCE_REGION", r);
                vars.set("DEST_REGION", d.region.as_deref().unwrap_or(r));
                vars.set("SOURCE_ACCOUNT", "123456789012");
                vars.set("DEST_ACCOUNT", "123456789012");
                if let Ok(name) = d.name.render(&vars)
                    && config.matches_any(&name)
                {
                    out.push(format!(
                        "{}: in the source's own account and region, a copy of {sample:?} would be named {name:?}, which rule {:?} matches: it would replicate itself (skipped as a loop at run time)",
                        d.label, rule.name
                    ));
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arg() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("--event".to_string()),
            Just("--config".to_string()),
            Just("--transform".to_string()),
            Just("--var".to_string()),
            Just("--secret".to_string()),
            Just("--all".to_string()),
            Just("--json".to_string()),
            ".{0,16}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        // Issue 14: any argument list parses into known `--flag VALUE` pairs or is a usage
        // error naming one argument; never a panic.
        #[test]
        fn any_arguments_parse_or_are_a_small_usage_error(args in proptest::collection::vec(arg(), 0..8)) {
            let known = ["--event", "--config", "--transform", "--var", "--secret"];
            match flags(&args, &known) {
                Ok(pairs) => {
                    prop_assert_eq!(pairs.len() * 2, args.len());
                    prop_assert!(pairs.iter().all(|(k, _)| known.contains(&k.as_str())));
                }
                Err(Usage(m)) => prop_assert!(!m.is_empty() && m.len() < 256, "{}", m),
            }
        }

        // Whole command lines: a command, or a usage error of bounded size; never a panic.
        #[test]
        fn any_command_line_parses_or_is_a_usage_error(
            cmd in prop_oneof![
                Just("replicate".to_string()),
                Just("transform".to_string()),
                Just("plan".to_string()),
                Just("validate".to_string()),
                Just("check".to_string()),
                Just("help".to_string()),
                ".{0,8}",
            ],
            args in proptest::collection::vec(arg(), 0..8),
        ) {
            let mut line = vec![cmd];
            line.extend(args);
            if let Err(Usage(m)) = parse(&line) {
                prop_assert!(!m.is_empty() && m.len() < 512, "{}", m);
            }
        }
    }

    fn line(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn command_lines_parse_into_their_commands() {
        use serde_json::json;
        let cases: [(&[&str], Result<Command, &str>); 15] = [
            (
                &["replicate", "--event", "e.json"],
                Ok(Command::Replicate {
                    event: "e.json".into(),
                }),
            ),
            (&["replicate"], Err("replicate needs --event FILE")),
            (&["replicate", "--event"], Err("--event needs a value")),
            (
                &["transform", "--transform", "a.sed", "--var", "K=V=W"],
                Ok(Command::Transform {
                    refs: vec!["a.sed".into()],
                    vars: vec![("K".into(), "V=W".into())],
                }),
            ),
            (
                &["transform", "--var", "K=V"],
                Err("transform needs --transform REF"),
            ),
            (
                &["transform", "--transform", "a.sed", "--var", "K"],
                Err("--var \"K\": expected NAME=VALUE"),
            ),
            (&["validate"], Ok(Command::Validate { config: None })),
            (
                &["validate", "--config", "c.json"],
                Ok(Command::Validate {
                    config: Some("c.json".into()),
                }),
            ),
            (
                &["plan", "--all", "--region", "eu-west-1", "--json"],
                Ok(Command::Plan {
                    payload: json!({"source": "manual", "all": true, "dryRun": true, "region": "eu-west-1"}),
                    json: true,
                }),
            ),
            (
                &["plan", "--all", "--secret", "x"],
                Err("plan needs --secret ID (repeatable) or --all"),
            ),
            (&["plan", "--bogus"], Err("unexpected argument \"--bogus\"")),
            (&["check"], Ok(Command::Check { config: None })),
            (
                &["check", "--config", "c.json"],
                Ok(Command::Check {
                    config: Some("c.json".into()),
                }),
            ),
            (
                &["check", "--secret", "x"],
                Err("unexpected argument \"--secret\""),
            ),
            (&["deploy"], Err("unknown command \"deploy\"")),
        ];
        for (args, expected) in cases {
            let got = parse(&line(args));
            match expected {
                Ok(c) => assert_eq!(got, Ok(c), "{args:?}"),
                Err(m) => assert_eq!(got, Err(Usage(m.into())), "{args:?}"),
            }
        }
        assert_eq!(parse(&line(&["--help"])), Ok(Command::Help));
        assert_eq!(parse(&[]), Err(Usage("no command".into())));
    }
}
