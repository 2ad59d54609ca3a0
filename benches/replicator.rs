//! The README's performance table: `scripts/bench.sh` runs `cargo bench --bench replicator`.
//!
//! Everything is measured on this machine against a local moto server on loopback. The function
//! is the release binary itself, served by a small fake Lambda Runtime API
//! (`tests/common/runtime.rs`), so start-up, memory and latency are those of the real process:
//!
//! - start-up: process start to its first `GET /runtime/invocation/next`, median of
//!   `BENCH_STARTS` (21) starts; peak RSS (`VmHWM`) after one replication;
//! - Secrets Manager calls per replication (first write, steady state, duplicate event), counted
//!   from moto's request log;
//! - warm latency per replication over `BENCH_WARM` (500) invocations in one process, each after
//!   a source change, beside moto's floor measured in the same loop: a bare GetSecretValue, and
//!   the same three calls a steady replication makes, made bare by this harness;
//! - `all` over `BENCH_ALL` (10,000) secrets with 2 destinations (one cross-account): a backfill
//!   chain continuing itself through the fake Invoke API (`tests/common/lambda.rs`) in links of
//!   `BENCH_LINK_SECONDS` (60), a no-op repair chain (calls per secret-destination), peak RSS
//!   and its growth per 1,000 secrets, and a chain's ceiling at the template's defaults;
//! - transform throughput on the workloads of `benches/transform.rs`;
//! - the size of the release bootstrap (`BENCH_BOOTSTRAP`, default
//!   `target/lambda/secret-replicator/bootstrap`, which `scripts/bench.sh` builds).
//!
//! `BENCH_ONLY` (comma-separated: startup, warm, all, transforms, bootstrap) runs some sections;
//! `BENCH_WRAP` runs the function under a tool (`BENCH_WRAP="valgrind --tool=callgrind"`);
//! `BENCH_LOG=FILE` keeps what the function printed; `BENCH_BIN` measures another build of the
//! binary (an older commit's, for a before/after).
//!
//! The Python peer's column holds the figures quoted in the project's benchmark issue (measured
//! against the same emulator); everything else is measured by this run. Without `--bench` (as
//! `cargo test`/nextest run it) the same code runs once with tiny sizes, as a smoke test.

#[path = "cases/mod.rs"]
mod cases;
#[path = "../tests/common/mod.rs"]
mod common;

use aws_sdk_secretsmanager::Client as Sm;
use common::Moto;
use common::app::{
    DEST_ROLE, EXTERNAL_ID, REGION, dest_client, put_event, put_value, sdk_config, seed_secret, sm,
};
use common::lambda::FakeLambda;
use common::runtime::{Answer, FakeRuntime};
use secret_replicator::transform::{LoadVars, Transform, Vars};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Secrets the warm loop goes round.
const WARM_SECRETS: usize = 20;

/// Sizes of one run.
struct Plan {
    starts: usize,
    warm: usize,
    all: usize,
    transform_time: Duration,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The libtest protocol that nextest speaks: one smoke "test", no ignored ones.
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("smoke: test");
        }
        return;
    }
    let full = args.iter().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            starts: env_usize("BENCH_STARTS", 21),
            warm: env_usize("BENCH_WARM", 500),
            all: env_usize("BENCH_ALL", 10_000),
            transform_time: Duration::from_secs(2),
        }
    } else {
        Plan {
            starts: 2,
            warm: 5,
            all: 6,
            transform_time: Duration::from_millis(50),
        }
    };
    let rt = Runtime::new().expect("tokio runtime");
    let mut table = Table::default();
    eprintln!(
        "bench: {} starts, {} warm invocations, `all` over {} secrets",
        plan.starts, plan.warm, plan.all
    );
    // BENCH_ONLY=warm,transforms runs some sections only (quick looks, profiling).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let on = |section: &str| only.is_empty() || only.split(',').any(|s| s.trim() == section);
    if on("startup") {
        startup(&plan, &rt, &mut table);
    }
    if on("warm") {
        warm(&plan, &rt, &mut table);
    }
    if on("all") {
        all(&plan, &rt, &mut table);
    }
    if on("transforms") {
        transforms(&plan, &mut table);
    }
    if on("bootstrap") {
        bootstrap(&mut table);
    }
    table.print(full);
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---- the function under test -------------------------------------------------------------------

/// The release binary serving a fake Runtime API, as Lambda would run it.
struct Function {
    child: Child,
    runtime: FakeRuntime,
    /// Process start to the first request for work.
    startup: Duration,
}

impl Function {
    fn start(endpoint: &str, config: &Value, budget: Duration) -> Function {
        Function::spawn(FakeRuntime::with_budget(budget), endpoint, config, &[])
    }

    /// The binary serving `runtime`, with `env` added (e.g. `AWS_ENDPOINT_URL_LAMBDA`).
    fn spawn(
        runtime: FakeRuntime,
        endpoint: &str,
        config: &Value,
        env: &[(&str, String)],
    ) -> Function {
        let config = config.to_string();
        let t0 = Instant::now();
        // BENCH_WRAP runs the function under a tool, e.g. `valgrind --tool=callgrind`.
        let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
        let mut argv: Vec<&str> = wrap.split_whitespace().collect();
        // BENCH_BIN measures another build (e.g. an older commit's, for a before/after).
        let bin = std::env::var("BENCH_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_secret-replicator").to_string());
        argv.push(&bin);
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs([
                ("AWS_LAMBDA_RUNTIME_API", runtime.api().as_str()),
                ("AWS_LAMBDA_FUNCTION_NAME", "secret-replicator"),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
                ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
                ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/secret-replicator"),
                ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
                // As template.yaml deploys it.
                ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
                ("AWS_REGION", REGION),
                ("AWS_DEFAULT_REGION", REGION),
                ("AWS_ENDPOINT_URL", endpoint),
                ("REPLICATOR_CONFIG", config.as_str()),
            ])
            // The write budget paces every mutating call (a one-slot bucket at
            // REPLICATOR_WRITE_TPS per destination): at the default 25/s it, not the code, sets
            // the warm loop's pace. `REPLICATOR_WRITE_TPS=50` passes through to look past it.
            .envs(
                std::env::var("REPLICATOR_WRITE_TPS")
                    .ok()
                    .map(|v| ("REPLICATOR_WRITE_TPS", v)),
            )
            .envs(common::app::function_env())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            // Logs and EMF lines are formatted and written as on Lambda, then dropped (or kept
            // in the file BENCH_LOG names).
            .stdout(log_file())
            .stderr(log_file())
            .spawn()
            .expect("spawn the release binary");
        let ready = runtime.ready(Duration::from_secs(30));
        Function {
            child,
            runtime,
            startup: ready.duration_since(t0),
        }
    }

    /// One invocation: the answer and the time from hand-out to answer.
    fn invoke(&self, event: &Value) -> (Value, Duration) {
        let t0 = Instant::now();
        let id = self.runtime.push(event);
        let answer = self.runtime.answer(&id, Duration::from_secs(900));
        let took = t0.elapsed();
        match answer {
            Answer::Response { body, .. } => (serde_json::from_str(&body).expect("JSON"), took),
            other => panic!("invocation failed: {other:?}"),
        }
    }

    /// Peak resident set size so far (`VmHWM`), in KiB.
    fn peak_rss_kib(&self) -> u64 {
        proc_status(self.child.id(), "VmHWM:")
    }

    /// User and system CPU time used so far.
    fn cpu(&self) -> (Duration, Duration) {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("read /proc/PID/stat");
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = stat.rsplit_once(')').expect("stat format").1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            let t: u64 = fields[i].parse().expect("utime/stime");
            Duration::from_millis(t * 1000 / clock_ticks())
        };
        (ticks(11), ticks(12))
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        // SIGTERM first, so a BENCH_WRAP tool can write its report; SIGKILL after 10 s.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_file() -> Stdio {
    match std::env::var_os("BENCH_LOG") {
        Some(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_or_else(|_| Stdio::null(), Stdio::from),
        None => Stdio::null(),
    }
}

fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read /proc/PID/status")
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("field in /proc/PID/status")
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on (the kernel's USER_HZ).
fn clock_ticks() -> u64 {
    100
}

fn one_destination() -> Value {
    json!({"rules": [{"match": ["one/**"], "destinations": [{
        "region": "us-west-2",
        "name": "dr/${SECRET_NAME}",
        "transforms": [{"sed": "s/us-east-1/us-west-2/g"}]
    }]}]})
}

/// A realistic secret: a small JSON document naming its region.
fn secret_value(i: usize) -> String {
    json!({
        "engine": "postgres", "host": "db-primary.us-east-1.example.internal", "port": 5432,
        "username": "app", "password": format!("pw-{i:08}-Zx8#kq"), "dbname": "orders"
    })
    .to_string()
}

fn replicated(doc: &Value) {
    let status = doc["results"][0]["status"].as_str().unwrap_or("");
    assert!(
        doc["statusCode"] == 200 && ["replicated", "unchanged"].contains(&status),
        "unexpected result: {doc}"
    );
}

// ---- start-up ----------------------------------------------------------------------------------

fn startup(plan: &Plan, rt: &Runtime, table: &mut Table) {
    let moto = Moto::start();
    let client = rt.block_on(sm(&moto.endpoint(), REGION));
    let secret = rt.block_on(seed_secret(&client, "one/app", &secret_value(0)));
    let mut starts = Vec::new();
    for _ in 0..plan.starts {
        let f = Function::start(
            &moto.endpoint(),
            &one_destination(),
            Duration::from_secs(30),
        );
        starts.push(f.startup);
    }
    let f = Function::start(
        &moto.endpoint(),
        &one_destination(),
        Duration::from_secs(30),
    );
    let (doc, _) = f.invoke(&put_event(&secret));
    replicated(&doc);
    let rss = f.peak_rss_kib();
    let s = Stats::of(&starts);
    table.row(
        "Start-up: process start → first request for work",
        format!(
            "{} median of {} (min {}, max {})",
            ms(s.p50),
            starts.len(),
            ms(s.min),
            ms(s.max)
        ),
        "< 20 ms",
        "330 ms (import)",
    );
    table.row(
        "Peak RSS after one replication",
        mib(rss),
        "< 20 MB",
        "48 MB",
    );
}

// ---- calls and warm latency --------------------------------------------------------------------

fn warm(plan: &Plan, rt: &Runtime, table: &mut Table) {
    let moto = Moto::start();
    let endpoint = moto.endpoint();
    let source = rt.block_on(sm(&endpoint, REGION));
    let secret = rt.block_on(seed_secret(&source, "one/app", &secret_value(0)));
    let f = Function::start(&endpoint, &one_destination(), Duration::from_secs(30));

    let count = |doc: &Value| {
        replicated(doc);
        let calls: Vec<String> = moto
            .calls()
            .into_iter()
            .filter(|c| c.service == "secretsmanager")
            .map(|c| c.operation)
            .collect();
        moto.reset_calls();
        calls
    };
    moto.reset_calls();
    let first = count(&f.invoke(&put_event(&secret)).0);
    rt.block_on(put_value(&source, &secret.name, &secret_value(1)));
    moto.reset_calls();
    let steady = count(&f.invoke(&put_event(&secret)).0);
    let dest = rt.block_on(sm(&endpoint, "us-west-2"));
    let before = rt.block_on(common::app::versions(&dest, "dr/one/app"));
    moto.reset_calls();
    let duplicate = count(&f.invoke(&put_event(&secret)).0);
    let new_versions = rt.block_on(common::app::versions(&dest, "dr/one/app")) - before;
    table.row(
        "Secrets Manager calls, first write (fresh container)",
        format!("{} ({})", first.len(), first.join(", ")),
        "≤ 4",
        "7–8",
    );
    table.row(
        "Secrets Manager calls, steady state",
        format!("{} ({})", steady.len(), steady.join(", ")),
        "≤ 3",
        "7–8",
    );
    table.row(
        "Duplicate event",
        format!(
            "{} calls ({}), {new_versions} new versions",
            duplicate.len(),
            duplicate.join(", ")
        ),
        "no new version",
        "new version",
    );

    // The loop: our replication and moto's floor, interleaved so that both see the same moto.
    // It goes round WARM_SECRETS secrets so that none piles up versions (moto keeps them all,
    // and DescribeSecret answers list them; AWS drops unlabelled versions).
    let mut secrets = vec![secret];
    for i in 1..WARM_SECRETS.min(plan.warm.max(1)) {
        let s = rt.block_on(seed_secret(
            &source,
            &format!("one/app-{i:02}"),
            &secret_value(i),
        ));
        replicated(&f.invoke(&put_event(&s)).0);
        secrets.push(s);
    }
    moto.stop_recording();
    let sdk = rt.block_on(sdk_config(&endpoint));
    let bare_source = Sm::new(&sdk);
    let bare_dest = Sm::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&sdk)
            .region(aws_config::Region::new("us-west-2"))
            .build(),
    );
    let events: Vec<Value> = secrets.iter().map(put_event).collect();
    let (mut ours, mut floor1, mut floor3) = (Vec::new(), Vec::new(), Vec::new());
    let cpu0 = f.cpu();
    for i in 0..plan.warm {
        let k = i % secrets.len();
        let name = &secrets[k].name;
        rt.block_on(put_value(&source, name, &secret_value(2 * i)));
        let (doc, took) = f.invoke(&events[k]);
        replicated(&doc);
        ours.push(took);
        rt.block_on(put_value(&source, name, &secret_value(2 * i + 1)));
        let (one, three) = rt.block_on(bare_calls(&bare_source, &bare_dest, name, i));
        floor1.push(one);
        floor3.push(three);
    }
    let cpu1 = f.cpu();
    // The fixed cost of an invocation (Runtime API round trip, parsing, the result document):
    // an event for a secret no rule matches is answered `skipped` without any AWS call.
    let unmatched = json!({"source": "manual", "secretId": "elsewhere/unmatched"});
    let noop: Vec<Duration> = (0..plan.warm.min(200))
        .map(|_| {
            let (doc, took) = f.invoke(&unmatched);
            assert_eq!(doc["results"][0]["status"], "skipped", "{doc}");
            took
        })
        .collect();
    let per = |now: Duration, then: Duration| {
        now.saturating_sub(then).as_secs_f64() * 1e3 / plan.warm.max(1) as f64
    };
    let (user, system) = (per(cpu1.0, cpu0.0), per(cpu1.1, cpu0.1));
    let (o, f1, f3) = (Stats::of(&ours), Stats::of(&floor1), Stats::of(&floor3));
    table.row(
        &format!(
            "Warm replication, {} invocations in one process ({} secrets in turn)",
            ours.len(),
            secrets.len()
        ),
        o.percentiles(),
        "",
        "69–85 ms",
    );
    table.row(
        "moto floor: a bare GetSecretValue",
        f1.percentiles(),
        "",
        "",
    );
    table.row(
        "moto floor: the same 3 calls, made bare",
        f3.percentiles(),
        "",
        "",
    );
    table.row(
        &format!(
            "An invocation with no AWS call (unmatched secret), {} times",
            noop.len()
        ),
        Stats::of(&noop).percentiles(),
        "",
        "",
    );
    table.row(
        "Our overhead over the 3-call floor",
        format!(
            "{} median, {} p95",
            signed_ms(o.p50, f3.p50),
            signed_ms(o.p95, f3.p95)
        ),
        "< 1 ms",
        "",
    );
    table.row(
        "Our CPU per warm replication",
        format!(
            "{:.2} ms ({user:.2} user + {system:.2} system)",
            user + system
        ),
        "",
        "~40 ms",
    );
    table.row(
        &format!(
            "Peak RSS after {} replications",
            plan.warm + secrets.len() + 2
        ),
        mib(f.peak_rss_kib()),
        "< 20 MB",
        "",
    );
}

/// moto's floor: a bare GetSecretValue, and the steady replication's three calls
/// (GetSecretValue, PutSecretValue, DescribeSecret) made bare.
async fn bare_calls(source: &Sm, dest: &Sm, name: &str, i: usize) -> (Duration, Duration) {
    let t0 = Instant::now();
    let got = source
        .get_secret_value()
        .secret_id(name)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("bare GetSecretValue");
    let one = t0.elapsed();
    let value = got
        .secret_string()
        .unwrap_or_default()
        .replace("us-east-1", "us-west-2");
    dest.put_secret_value()
        .secret_id(format!("dr/{name}"))
        .secret_string(value)
        .client_request_token(format!("bench-floor-{i:08}-00000000000000000000"))
        .send()
        .await
        .expect("bare PutSecretValue");
    source
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .expect("bare DescribeSecret");
    (one, t0.elapsed())
}

// ---- all ---------------------------------------------------------------------------------------

/// Writes a mutating Secrets Manager call makes.
const WRITES: [&str; 4] = [
    "CreateSecret",
    "PutSecretValue",
    "UpdateSecret",
    "UpdateSecretVersionStage",
];

/// What one chain did: its links, wall time, and moto's calls during it.
struct ChainRun {
    links: usize,
    /// Sources left when the chain ended (at its cap), 0 when it finished.
    remaining: u64,
    took: Duration,
    summary: BTreeMap<String, u64>,
    sm_calls: usize,
    writes: usize,
    lists: usize,
}

/// Starts an `all` chain as the schedule does (through the fake Invoke API) and waits for its
/// end; asserts nothing failed (a chain capped at 12 links reports what it left).
fn chain_run(moto: &Moto, lambda: &FakeLambda) -> ChainRun {
    moto.reset_calls();
    let before = lambda.deliveries().len();
    let t0 = Instant::now();
    lambda.invoke(&json!({"source": "manual", "all": true}));
    let deliveries = lambda.wait_idle(Duration::from_secs(7200));
    let took = t0.elapsed();
    let mine = &deliveries[before..];
    let mut summary: BTreeMap<String, u64> = BTreeMap::new();
    for d in mine {
        assert!(!d.failed(), "a link failed: {:.2000}", d.document());
        let doc = d.document();
        let kind = doc["error"]["kind"].as_str();
        assert!(
            kind.is_none() || kind == Some("BackfillIncomplete"),
            "`all` failed: {doc:.2000}"
        );
        for (k, v) in doc["summary"].as_object().into_iter().flatten() {
            *summary.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
        }
    }
    let last = mine.last().expect("a link").document();
    let remaining = last["remainingCount"].as_u64().unwrap_or(0);
    assert!(!summary.contains_key("failed"), "{summary:?}");
    let calls = moto.calls();
    let sm: Vec<_> = calls
        .iter()
        .filter(|c| c.service == "secretsmanager")
        .collect();
    ChainRun {
        links: mine.len(),
        remaining,
        took,
        summary,
        sm_calls: sm.len(),
        writes: sm
            .iter()
            .filter(|c| WRITES.contains(&c.operation.as_str()))
            .count(),
        lists: sm.iter().filter(|c| c.operation == "ListSecrets").count(),
    }
}

fn summary_text(summary: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = summary.iter().map(|(k, v)| format!("{v} {k}")).collect();
    parts.join(", ")
}

/// The template's defaults: (Timeout s, WriteTps, the containers sharing it: the
/// REPLICATOR_CONCURRENCY the default stack computes from its caps).
fn template_defaults() -> (f64, f64, f64) {
    let t = common::cfn::template();
    let default = |p: &str| {
        let v = &t["Parameters"][p]["Default"];
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or_else(|| panic!("template parameter {p} has no numeric default"))
    };
    let stack = common::cfn::resolve(&t, common::cfn::MINIMAL);
    let containers = common::cfn::scalar_string(
        &stack.get("Function")["Properties"]["Environment"]["Variables"]["REPLICATOR_CONCURRENCY"],
    )
    .parse()
    .unwrap_or_else(|e| panic!("REPLICATOR_CONCURRENCY of the default stack: {e}"));
    (default("Timeout"), default("WriteTps"), containers)
}

/// `all` at estate size (SPEC §6): a backfill of `BENCH_ALL` (10,000) secrets × 2 destinations
/// that continues itself through the fake Invoke API, links of `BENCH_LINK_SECONDS` (300, the
/// template's default timeout), at
/// `REPLICATOR_WRITE_TPS=50` for one container; then a no-op repair chain; then a second
/// process over the first 1,000 secrets, for how memory grows with the estate.
fn all(plan: &Plan, rt: &Runtime, table: &mut Table) {
    const TPS: f64 = 50.0;
    let moto = Moto::start();
    let endpoint = moto.endpoint();
    let source = rt.block_on(sm(&endpoint, REGION));
    let seeding = Instant::now();
    moto.stop_recording();
    rt.block_on(async {
        use futures::StreamExt;
        futures::stream::iter(0..plan.all)
            .map(|i| {
                let source = &source;
                async move {
                    seed_secret(source, &format!("bulk/app-{i:05}"), &secret_value(i)).await;
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
    });
    moto.start_recording();
    eprintln!(
        "bench: seeded {} secrets in {:.1?}",
        plan.all,
        seeding.elapsed()
    );
    let config = |pattern: &str| {
        json!({"rules": [{"match": [pattern], "destinations": [
            {"region": "us-west-2", "name": "dr/${SECRET_NAME}",
             "transforms": [{"sed": "s/us-east-1/us-west-2/g"}]},
            {"region": "eu-west-1", "account_role_arn": DEST_ROLE, "external_id": EXTERNAL_ID,
             "name": "${SECRET_NAME}",
             "transforms": [{"sed": "s/us-east-1/eu-west-1/g"}]}
        ]}]})
    };
    let link = Duration::from_secs(env_usize("BENCH_LINK_SECONDS", 300) as u64);
    let env = [
        ("REPLICATOR_WRITE_TPS", "50".to_string()),
        ("REPLICATOR_CONCURRENCY", "1".to_string()),
    ];
    let spawn = |pattern: &str| {
        let runtime = FakeRuntime::with_budget(link);
        let lambda = FakeLambda::start(&runtime);
        let mut env = env.to_vec();
        env.push(("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint()));
        let f = Function::spawn(runtime, &endpoint, &config(pattern), &env);
        (f, lambda)
    };
    let n = plan.all;
    let pairs = 2 * n;
    let (f, lambda) = spawn("bulk/**");

    let backfill = chain_run(&moto, &lambda);
    let floor = n as f64 / TPS;
    let capped = if backfill.remaining > 0 {
        // As the next scheduled run would: a second chain compares and goes on.
        let rest = chain_run(&moto, &lambda);
        format!(
            "; capped at 12 links with {} left, which a second chain finished in {} link(s), {}",
            backfill.remaining,
            rest.links,
            secs(rest.took)
        )
    } else {
        String::new()
    };
    table.row(
        &format!(
            "`all` backfill, {n} secrets × 2 destinations, links of {}",
            secs(link)
        ),
        format!(
            "{} in {} links ({:.2}× the write-budget floor of {:.0} s: {n} writes per destination at 50/s){capped}; {}; {} writes, {:.2} SM calls per secret-destination",
            secs(backfill.took),
            backfill.links,
            backfill.took.as_secs_f64() / floor,
            floor,
            summary_text(&backfill.summary),
            backfill.writes,
            backfill.sm_calls as f64 / pairs as f64
        ),
        "≤ 12 links",
        "",
    );
    // What moto itself takes per write at this size: sequential creates in a region of their
    // own (the function's writes to one destination are paced one at a time).
    let probe: Vec<Duration> = rt.block_on(async {
        let scratch = sm(&endpoint, "ap-south-1").await;
        let mut out = Vec::new();
        for i in 0..100 {
            let t = Instant::now();
            seed_secret(&scratch, &format!("probe/{i:03}"), "v").await;
            out.push(t.elapsed());
        }
        out
    });
    let probe = Stats::of(&probe);
    table.row(
        &format!("moto floor: one CreateSecret with {} secrets stored", 3 * n),
        format!(
            "{} (at most {:.0} creates/s one at a time)",
            probe.percentiles(),
            1.0 / probe.p50.as_secs_f64()
        ),
        "",
        "",
    );
    let repair = chain_run(&moto, &lambda);
    table.row(
        &format!("`all` no-op repair, {n} secrets × 2 destinations"),
        format!(
            "{} in {} link(s); {}; {} writes, {} SM calls ({} ListSecrets): {:.4} per secret-destination",
            secs(repair.took),
            repair.links,
            summary_text(&repair.summary),
            repair.writes,
            repair.sm_calls,
            repair.lists,
            repair.sm_calls as f64 / pairs as f64
        ),
        "≤ 0.02 calls per secret-destination, 0 writes",
        "",
    );
    let big = f.peak_rss_kib();
    drop(f);
    drop(lambda);

    // The same repair over the first tenth (at most 1,000), in a fresh process.
    let small_n = (n / 10).clamp(1, 1000);
    let digits = format!("{:05}", small_n - 1);
    let pattern = if small_n == 1000 && n >= 1000 {
        format!("bulk/app-{}***", &digits[..2])
    } else {
        "bulk/app-0000*".to_string()
    };
    let (f, lambda) = spawn(&pattern);
    let small = chain_run(&moto, &lambda);
    let small_rss = f.peak_rss_kib();
    let small_n = small.summary.values().sum::<u64>() as usize / 2;
    let growth = if n > small_n {
        (big as f64 - small_rss as f64) / ((n - small_n) as f64 / 1000.0)
    } else {
        0.0
    };
    table.row(
        &format!("Peak RSS of the {n} × 2 process (backfill chain, then repair)"),
        format!(
            "{} ({} for a fresh process listing the same estate and repairing {small_n} of them: {:+.2} MB per 1,000 secrets)",
            mib(big),
            mib(small_rss),
            growth / 1024.0
        ),
        "< 64 MB",
        "",
    );
    let (timeout, tps, containers) = template_defaults();
    let ceiling = 12.0 * 0.9 * timeout * (tps / containers);
    table.row(
        "One chain's ceiling at the template's defaults",
        format!(
            "12 links × 0.9 × {timeout:.0} s × ({tps:.0} ÷ {containers:.0}) writes/s = {ceiling:.0} writes per destination (less listing time)"
        ),
        "",
        "",
    );
    // Spot-check the copies.
    let copy = rt.block_on(async {
        let dest = dest_client(&endpoint, common::app::DEST_ACCOUNT, "eu-west-1").await;
        common::app::current(&dest, "bulk/app-00000").await
    });
    assert_eq!(
        copy,
        Some(secret_value(0).replace("us-east-1", "eu-west-1"))
    );
}

// ---- transforms --------------------------------------------------------------------------------

fn transforms(plan: &Plan, table: &mut Table) {
    let lv = LoadVars::with_builtins(Vars::new());
    let vars = cases::vars();
    let sed = Transform::sed("bench", cases::SCRIPT, &lv).expect("script loads");
    let json = Transform::json("bench", cases::MAPPING, &lv).expect("mapping loads");
    // Python's `re` on the same rules and inputs (benches/python_transform.py, run by
    // scripts/bench.sh), and the peer's own figures as the benchmark issue quotes them.
    let python: Value = std::env::var("BENCH_PYTHON")
        .ok()
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or(Value::Null);
    let cases: [(&str, &Transform, String, &str, Option<f64>); 3] = [
        (
            "Transform: sed, 10 commands, 4 KB",
            &sed,
            cases::value(4 * 1024),
            "sed_4k",
            Some(0.24e-3),
        ),
        (
            "Transform: sed, 10 commands, 64 KB",
            &sed,
            cases::value(64 * 1024),
            "sed_64k",
            Some(1.3e-3),
        ),
        (
            "Transform: JSON mapping, 10 operations, 4 KB",
            &json,
            cases::document(),
            "",
            None,
        ),
    ];
    for (label, t, input, key, peer) in cases {
        assert!(t.apply(&input, &vars).expect("applies").is_some());
        let per = time_per_call(plan.transform_time, || {
            black_box(t.apply(black_box(&input), &vars).expect("applies"));
        });
        let mbps = input.len() as f64 / per / 1e6;
        let mut result = format!("{} ({mbps:.0} MB/s)", us(per));
        let mut against = Vec::new();
        if let Some(py) = python[key].as_f64() {
            result.push_str(&format!(", {:.1}× Python `re`", py / per));
            against.push(format!("Python `re`, same rules: {}", us(py)));
        }
        if let Some(p) = peer {
            result.push_str(&format!(", {:.1}× the peer's figure", p / per));
            against.push(format!("peer's figure: {}", us(p)));
        }
        if peer.is_none() {
            against.push("JSON mode off by default".into());
        }
        table.row(label, result, "≥ 10× the peer", &against.join("; "));
    }
}

/// Median time of one call, over batches filling `budget`.
fn time_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    let t0 = Instant::now();
    let mut n = 0u32;
    while t0.elapsed() < budget / 20 || n < 3 {
        f();
        n += 1;
    }
    let batch = (n / 3).max(1);
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget || samples.len() < 5 {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        samples.push(t.elapsed().as_secs_f64() / f64::from(batch));
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

// ---- bootstrap ---------------------------------------------------------------------------------

fn bootstrap(table: &mut Table) {
    let path = std::env::var("BENCH_BOOTSTRAP").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/lambda/secret-replicator/bootstrap"
        )
        .into()
    });
    let result = match std::fs::metadata(&path) {
        Ok(m) => format!("{:.1} MB ({} bytes)", m.len() as f64 / 1e6, m.len()),
        Err(_) => format!("not built ({path}; scripts/bench.sh builds it)"),
    };
    table.row(
        "Release bootstrap (`cargo lambda build --release --arm64`)",
        result,
        "",
        "",
    );
}

// ---- numbers and the table ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Stats {
    min: Duration,
    p50: Duration,
    p95: Duration,
    p99: Duration,
    max: Duration,
}

impl Stats {
    fn of(samples: &[Duration]) -> Stats {
        let mut s = samples.to_vec();
        s.sort();
        let at = |q: f64| s[((s.len() as f64 * q).ceil() as usize).clamp(1, s.len()) - 1];
        Stats {
            min: s[0],
            p50: at(0.5),
            p95: at(0.95),
            p99: at(0.99),
            max: s[s.len() - 1],
        }
    }

    fn percentiles(&self) -> String {
        format!(
            "{} median, {} p95, {} p99",
            ms(self.p50),
            ms(self.p95),
            ms(self.p99)
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn signed_ms(a: Duration, b: Duration) -> String {
    format!("{:+.2} ms", (a.as_secs_f64() - b.as_secs_f64()) * 1e3)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn us(seconds: f64) -> String {
    format!("{:.1} µs", seconds * 1e6)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

#[derive(Default)]
struct Table {
    rows: Vec<[String; 4]>,
}

impl Table {
    fn row(&mut self, what: &str, result: impl Into<String>, target: &str, peer: &str) {
        let row = [
            what.to_string(),
            result.into(),
            target.to_string(),
            peer.to_string(),
        ];
        eprintln!("bench: {} = {}", row[0], row[1]);
        self.rows.push(row);
    }

    fn print(&self, full: bool) {
        if !full {
            println!("(smoke run with tiny sizes; `cargo bench --bench replicator` measures)");
        }
        println!("| measure | result | target | Python peer |");
        println!("|---|---|---|---|");
        for [a, b, c, d] in &self.rows {
            println!("| {a} | {b} | {c} | {d} |");
        }
    }
}
