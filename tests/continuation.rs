//! The `all` chain (SPEC §6) as Lambda runs it: the real binary under the fake Runtime API
//! (`tests/common/runtime.rs`), continuing itself through the fake Invoke API
//! (`tests/common/lambda.rs`, reached by `AWS_ENDPOINT_URL_LAMBDA`), against moto.
//!
//! No verdict here depends on how fast this machine is that minute. The chains are cut by work,
//! not time: `REPLICATOR_LINK_SOURCES` (a setting an operator has too) ends each link after a
//! set number of sources, and each link gets [`LINK_BUDGET`], Lambda's longest timeout, which
//! no link comes near; so the links, their counts and the cap come out the same on any machine.
//! The deadline tests (section 9) hold a destination's answer until the test ends: the only way
//! to answer before the deadline is to abandon it.

mod common;

use aws_sdk_secretsmanager::Client as Sm;
use common::Moto;
use common::app::{DEST_ACCOUNT, DEST_ROLE, EXTERNAL_ID, REGION, WRITE_OPS, dest_client, sm};
use common::lambda::{Cause, Delivery, FakeLambda};
use common::runtime::{FUNCTION_ARN, FakeRuntime};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The function process, killed on drop; what it printed on stdout (logs, EMF lines) kept in a
/// file.
struct Function {
    child: Child,
    stdout: PathBuf,
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stdout);
    }
}

impl Function {
    /// What the function printed so far.
    fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }
}

/// Starts the binary as Lambda would, with the function role's credentials, moto for every
/// service but Lambda, and the fake Invoke API for Lambda.
fn start(
    rt: &FakeRuntime,
    moto: &Moto,
    lambda: &FakeLambda,
    config: &Value,
    env: &[(&str, &str)],
) -> Function {
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stdout =
        std::env::temp_dir().join(format!("continuation-{}-{seq}.out", std::process::id()));
    let file = std::fs::File::create(&stdout).expect("stdout file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_secret-replicator"));
    command.env_clear();
    if !config.is_null() {
        command.env("REPLICATOR_CONFIG", config.to_string());
    }
    let child = command
        .env("AWS_LAMBDA_RUNTIME_API", rt.api())
        .env("AWS_LAMBDA_FUNCTION_NAME", "secret-replicator")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ENDPOINT_URL_LAMBDA", lambda.endpoint())
        .envs(common::app::function_env())
        .envs(env.iter().copied())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .expect("start the function");
    Function { child, stdout }
}

fn names(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("{prefix}{i:05}"),
                format!(r#"{{"host":"db-{i}.us-east-1.example.com","password":"pw-{i:08}"}}"#),
            )
        })
        .collect()
}

/// Creates the secrets with `parallel` requests in flight.
async fn seed(sm: &aws_sdk_secretsmanager::Client, secrets: &[(String, String)], parallel: usize) {
    use futures::StreamExt;
    futures::stream::iter(secrets)
        .map(|(n, v)| common::app::seed_secret(sm, n, v))
        .buffer_unordered(parallel)
        .collect::<Vec<_>>()
        .await;
}

/// One line per delivery, for failure messages and the log.
fn chain(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| {
            let doc = d.document();
            format!(
                "link {} {:?}#{} {}: {} {} remaining {} continued {}",
                d.link,
                d.cause,
                d.attempt,
                if d.failed() { "ERROR" } else { "ok" },
                doc["statusCode"],
                doc["summary"],
                doc["remainingCount"],
                doc["continued"]
            )
        })
        .collect()
}

/// The values of these secrets (BatchGetSecretValue, 20 a call).
async fn values(sm: &Sm, names: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for chunk in names.chunks(20) {
        let page = sm
            .batch_get_secret_value()
            .set_secret_id_list(Some(chunk.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("BatchGetSecretValue: {e:?}"));
        for v in page.secret_values() {
            out.insert(
                v.name().unwrap_or_default().to_string(),
                v.secret_string().unwrap_or_default().to_string(),
            );
        }
    }
    out
}

/// Every secret ListSecrets returns, with its labelled versions.
async fn listing(sm: &Sm) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut next: Option<String> = None;
    loop {
        let page = sm
            .list_secrets()
            .max_results(100)
            .set_next_token(next.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListSecrets: {e:?}"));
        for s in page.secret_list() {
            let versions = s
                .secret_versions_to_stages()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            out.insert(s.name().unwrap_or_default().to_string(), versions);
        }
        next = page
            .next_token()
            .map(str::to_string)
            .filter(|t| !t.is_empty());
        if next.is_none() {
            return out;
        }
    }
}

/// Requests moto answered with a 500 (its own errors, which the SDK retries).
fn moto_errors(moto: &Moto) -> usize {
    moto.log()
        .lines()
        .filter(|l| l.contains("\" 500 -"))
        .count()
}

/// The Secrets Manager writes moto recorded, by destination (account, region, name): the
/// operations and the version tokens they carried.
fn writes_by_destination(moto: &Moto) -> BTreeMap<(String, String, String), Vec<(String, String)>> {
    let mut out: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for c in moto.calls() {
        if c.service != "secretsmanager" || !WRITE_OPS.contains(&c.operation.as_str()) {
            continue;
        }
        let body: Value = serde_json::from_str(&c.body).unwrap_or_default();
        let name = body["Name"]
            .as_str()
            .or(body["SecretId"].as_str())
            .unwrap_or_default()
            .to_string();
        let token = body["ClientRequestToken"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        out.entry((
            c.account.unwrap_or_default(),
            c.region.unwrap_or_default(),
            name,
        ))
        .or_default()
        .push((c.operation, token));
    }
    out
}

/// Two destinations, one in another account through its role; each rewrites the region.
fn two_destinations(pattern: &str) -> Value {
    json!({"rules": [{"match": [pattern], "destinations": [
        {"region": "us-west-2", "name": "dr/${SECRET_NAME}",
         "transforms": [{"sed": "s/us-east-1/us-west-2/g"}]},
        {"region": "eu-west-1", "account_role_arn": DEST_ROLE, "external_id": EXTERNAL_ID,
         "transforms": [{"sed": "s/us-east-1/eu-west-1/g"}]}
    ]}]})
}

/// Every source has both copies, each equal to the transformed source, each with one version
/// (the one it was created with), written by one token.
async fn assert_copies(moto: &Moto, secrets: &[(String, String)]) {
    let ep = moto.endpoint();
    let west = sm(&ep, "us-west-2").await;
    let eu = dest_client(&ep, DEST_ACCOUNT, "eu-west-1").await;
    let west_names: Vec<String> = secrets.iter().map(|(n, _)| format!("dr/{n}")).collect();
    let eu_names: Vec<String> = secrets.iter().map(|(n, _)| n.clone()).collect();
    let (west_values, eu_values) =
        futures::join!(values(&west, &west_names), values(&eu, &eu_names));
    for (name, value) in secrets {
        assert_eq!(
            west_values.get(&format!("dr/{name}")),
            Some(&value.replace("us-east-1", "us-west-2")),
            "dr/{name} in us-west-2"
        );
        assert_eq!(
            eu_values.get(name),
            Some(&value.replace("us-east-1", "eu-west-1")),
            "{name} in eu-west-1 of {DEST_ACCOUNT}"
        );
    }
    let (west_list, eu_list) = futures::join!(listing(&west), listing(&eu));
    assert_eq!(west_list.len(), secrets.len(), "copies in us-west-2");
    assert_eq!(eu_list.len(), secrets.len(), "copies in eu-west-1");
    for (name, versions) in west_list.iter().chain(eu_list.iter()) {
        assert_eq!(versions.len(), 1, "{name}: {versions:?}");
    }
}

/// Asserts every write to a destination carried one token: no destination got a second version
/// for its one source version. CreateSecret calls repeated by the SDK after a moto 500 are the
/// only repeats allowed (moto's store is not thread-safe under concurrent creates).
fn assert_one_token_per_destination(moto: &Moto, destinations: usize) {
    let writes = writes_by_destination(moto);
    assert_eq!(writes.len(), destinations, "destinations written");
    let mut repeated = 0;
    for (at, w) in &writes {
        let tokens: BTreeSet<&str> = w.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(tokens.len(), 1, "{at:?}: {w:?}");
        assert!(
            w.iter()
                .all(|(op, _)| op == "CreateSecret" || op == "PutSecretValue"),
            "{at:?}: {w:?}"
        );
        repeated += w.len() - 1;
    }
    let errors = moto_errors(moto);
    assert!(
        repeated <= errors,
        "{repeated} writes repeated, {errors} moto errors"
    );
}

/// The time each link is given: Lambda's longest timeout (900 s), so that a link ends by its
/// work limit, never by its deadline, however slow the machine.
const LINK_BUDGET: Duration = Duration::from_secs(900);

/// How long a test waits for a chain to end before it gives up: a guard against a hang, far
/// beyond what any chain here needs.
const CHAIN_GUARD: Duration = Duration::from_secs(1800);

// ---- 1. a backfill of 2,000 secrets × 2 destinations completes by itself ----------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_of_2000_secrets_to_2_destinations_completes_by_itself_within_12_links() {
    const N: usize = 2000;
    // 200 sources a link: 10 links, whatever the machine's speed.
    const PER_LINK: usize = 200;
    let t0 = Instant::now();
    let moto = Moto::start();
    let ep = moto.endpoint();
    let east = sm(&ep, REGION).await;
    let secrets = names("app/s-", N);
    moto.stop_recording();
    let t = Instant::now();
    seed(&east, &secrets, 32).await;
    let seeding = t.elapsed();
    moto.reset_calls();
    moto.start_recording();

    let rt = FakeRuntime::with_budget(LINK_BUDGET);
    let lambda = FakeLambda::start(&rt);
    let _f = start(
        &rt,
        &moto,
        &lambda,
        &two_destinations("app/**"),
        &[
            ("REPLICATOR_WRITE_TPS", "50"),
            ("REPLICATOR_CONCURRENCY", "1"),
            ("REPLICATOR_LINK_SOURCES", "200"),
        ],
    );
    let t = Instant::now();
    lambda.invoke(&json!({"source": "manual", "all": true}));
    let deliveries = lambda.wait_idle(CHAIN_GUARD);
    let backfill = t.elapsed();
    let lines = chain(&deliveries);
    eprintln!("{lines:#?}");

    // A chain of links 1..=10, each delivered once, none failing, each answered before its
    // deadline; all but the last continued, each with 200 sources × 2 copies done.
    let k = deliveries.len();
    assert_eq!(k, N.div_ceil(PER_LINK), "{lines:#?}");
    let mut replicated = 0;
    for (i, d) in deliveries.iter().enumerate() {
        assert_eq!(d.link as usize, i + 1, "{lines:#?}");
        assert_eq!(
            d.cause,
            if i == 0 {
                Cause::Start
            } else {
                Cause::Continuation
            }
        );
        assert_eq!(d.arn, FUNCTION_ARN);
        assert!(!d.failed(), "{lines:#?}");
        assert!(!rt.timed_out(&d.request_id), "{lines:#?}");
        let doc = d.document();
        assert_eq!(doc["statusCode"], 200, "{doc:.2000}");
        let last = i + 1 == k;
        assert_eq!(doc["continued"], json!(!last), "{lines:#?}");
        assert_eq!(doc["resume"].is_string(), !last, "{lines:#?}");
        assert_eq!(doc["remainingCount"], N - PER_LINK * (i + 1), "{lines:#?}");
        assert_eq!(
            doc["summary"],
            json!({"replicated": 2 * PER_LINK}),
            "only replicated: {lines:#?}"
        );
        replicated += doc["summary"]["replicated"].as_u64().unwrap_or(0);
    }
    assert_eq!(replicated as usize, 2 * N, "{lines:#?}");
    // Every continuation was one asynchronous Invoke of the function's own ARN.
    let requests = lambda.requests();
    assert_eq!(requests.len(), k - 1, "{requests:#?}");
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(
            (
                r.function.as_str(),
                r.invocation_type.as_str(),
                r.link,
                r.status
            ),
            (FUNCTION_ARN, "Event", Some(i as u32 + 2), 202)
        );
    }
    let mut ops: BTreeMap<String, usize> = BTreeMap::new();
    for c in moto.calls() {
        *ops.entry(format!(
            "{} {} {}",
            c.service,
            c.operation,
            c.region.clone().unwrap_or_default()
        ))
        .or_default() += 1;
    }
    eprintln!("calls during the chain: {ops:?}");
    assert_one_token_per_destination(&moto, 2 * N);
    let t = Instant::now();
    assert_copies(&moto, &secrets).await;
    let checking = t.elapsed();

    // A fresh chain of a function without the work limit finds everything in line: one link,
    // no write (its own runtime: a stopped function's pending `next` would take the event).
    moto.reset_calls();
    let rt = FakeRuntime::with_budget(LINK_BUDGET);
    let lambda = FakeLambda::start(&rt);
    let _f = start(
        &rt,
        &moto,
        &lambda,
        &two_destinations("app/**"),
        &[
            ("REPLICATOR_WRITE_TPS", "50"),
            ("REPLICATOR_CONCURRENCY", "1"),
        ],
    );
    let t = Instant::now();
    lambda.invoke(&json!({"source": "manual", "all": true}));
    let all = lambda.wait_idle(CHAIN_GUARD);
    let second = t.elapsed();
    assert_eq!(all.len(), 1, "{:#?}", chain(&all));
    let doc = all[0].document();
    assert_eq!(doc["summary"], json!({"unchanged": 2 * N}), "{doc:.2000}");
    assert_eq!(doc["remainingCount"], 0);
    assert_eq!(doc["results"], json!([]));
    assert!(doc.get("continued").is_none(), "{doc:.2000}");
    assert!(writes_by_destination(&moto).is_empty());
    assert!(lambda.requests().is_empty(), "no Invoke");
    eprintln!(
        "2,000 × 2 backfill: seeding {seeding:?}, chain of {k} links {backfill:?} (write-budget floor {} s), checking {checking:?}, second chain {second:?}, test {:?}",
        N / 50,
        t0.elapsed()
    );
}

// ---- shared set-up of the shorter chains ----------------------------------------------------------

/// moto with `n` secrets `app/s-NNNNN` in the source region, a fake runtime giving each
/// invocation [`LINK_BUDGET`], the fake Invoke API in front of it, and the function running
/// `config` at 50 writes/s for one container, `per_link` sources a link (`None`: no limit).
struct Chain {
    moto: Moto,
    rt: FakeRuntime,
    lambda: FakeLambda,
    function: Function,
    secrets: Vec<(String, String)>,
}

async fn chain_of(
    n: usize,
    per_link: Option<usize>,
    config: &Value,
    env: &[(&str, &str)],
) -> Chain {
    let moto = Moto::start();
    let east = sm(&moto.endpoint(), REGION).await;
    let secrets = names("app/s-", n);
    moto.stop_recording();
    seed(&east, &secrets, 32).await;
    moto.reset_calls();
    moto.start_recording();
    let rt = FakeRuntime::with_budget(LINK_BUDGET);
    let lambda = FakeLambda::start(&rt);
    let per_link = per_link.map(|p| p.to_string());
    let mut all_env = vec![
        ("REPLICATOR_WRITE_TPS", "50"),
        ("REPLICATOR_CONCURRENCY", "1"),
    ];
    if let Some(p) = &per_link {
        all_env.push(("REPLICATOR_LINK_SOURCES", p.as_str()));
    }
    all_env.extend_from_slice(env);
    let function = start(&rt, &moto, &lambda, config, &all_env);
    Chain {
        moto,
        rt,
        lambda,
        function,
        secrets,
    }
}

/// One destination in us-west-2 (`dr/<name>`, the region rewritten).
fn west_only(pattern: &str) -> Value {
    json!({"rules": [{"match": [pattern], "destinations": [
        {"region": "us-west-2", "name": "dr/${SECRET_NAME}",
         "transforms": [{"sed": "s/us-east-1/us-west-2/g"}]}
    ]}]})
}

/// The copies in us-west-2 that exist are equal to their transformed source, each with one
/// version; returns how many exist.
async fn assert_west_copies(moto: &Moto, secrets: &[(String, String)]) -> usize {
    let west = sm(&moto.endpoint(), "us-west-2").await;
    let list = listing(&west).await;
    for (name, versions) in list.iter().filter(|(n, _)| n.starts_with("dr/app/")) {
        assert_eq!(versions.len(), 1, "{name}: {versions:?}");
    }
    // Only the copies of these sources (a test may have seeded other secrets there).
    let names: Vec<String> = list
        .keys()
        .filter(|n| n.starts_with("dr/app/"))
        .cloned()
        .collect();
    let got = values(&west, &names).await;
    let sources: BTreeMap<String, &String> = secrets
        .iter()
        .map(|(n, v)| (format!("dr/{n}"), v))
        .collect();
    for (name, value) in &got {
        let source = sources
            .get(name)
            .unwrap_or_else(|| panic!("{name}: no source"));
        assert_eq!(value, &source.replace("us-east-1", "us-west-2"), "{name}");
    }
    got.len()
}

/// Every destination written was written with one token (no second version for one source
/// version), whatever repeated the writes.
fn assert_one_token_each(moto: &Moto) -> usize {
    let writes = writes_by_destination(moto);
    for (at, w) in &writes {
        let tokens: BTreeSet<&str> = w.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(tokens.len(), 1, "{at:?}: {w:?}");
    }
    writes.len()
}

fn error_kind(doc: &Value) -> &str {
    doc["error"]["kind"].as_str().unwrap_or_default()
}

// ---- 2. a chain that cannot finish stops at its cap --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_too_long_for_12_links_reaches_the_cap_and_ends_with_backfill_incomplete() {
    // 20 sources a link: 12 links reach 240 of 300.
    let c = chain_of(300, Some(20), &west_only("app/**"), &[]).await;
    c.lambda.invoke(&json!({"source": "manual", "all": true}));
    let deliveries = c.lambda.wait_idle(CHAIN_GUARD);
    let lines = chain(&deliveries);
    eprintln!("{lines:#?}");
    assert_eq!(deliveries.len(), 12, "{lines:#?}");
    let mut replicated = 0;
    for (i, d) in deliveries.iter().enumerate() {
        assert_eq!(d.link as usize, i + 1, "{lines:#?}");
        assert!(!d.failed(), "no link answers a Lambda error: {lines:#?}");
        assert!(!c.rt.timed_out(&d.request_id), "{lines:#?}");
        let doc = d.document();
        assert_eq!(doc["summary"], json!({"replicated": 20}), "{lines:#?}");
        replicated += doc["summary"]["replicated"].as_u64().unwrap_or(0);
        if i < 11 {
            assert_eq!(doc["continued"], true, "{lines:#?}");
            assert!(doc.get("error").is_none(), "{doc:.2000}");
        }
    }
    let last = deliveries[11].document();
    assert_eq!(last["statusCode"], 503, "{last:.2000}");
    assert_eq!(error_kind(&last), "BackfillIncomplete", "{last:.2000}");
    assert_eq!(last["retryClass"], "retriable");
    assert_eq!(last["continued"], false);
    assert!(last.get("resume").is_none(), "{last:.2000}");
    let remaining = last["remainingCount"].as_u64().expect("remainingCount");
    assert_eq!(remaining, 300 - 12 * 20, "{lines:#?}");
    assert_eq!(replicated + remaining, 300, "{lines:#?}");
    assert_eq!(
        last["remaining"].as_array().map(Vec::len),
        Some(remaining.min(1000) as usize)
    );
    // No 13th link was asked for.
    let requests = c.lambda.requests();
    assert_eq!(requests.len(), 11, "{requests:#?}");
    assert!(requests.iter().all(|r| r.link <= Some(12)));
    // What was written is right, once each.
    assert_eq!(assert_one_token_each(&c.moto), replicated as usize);
    assert_eq!(
        assert_west_copies(&c.moto, &c.secrets).await,
        replicated as usize
    );
    // The cap's metrics: Failures by ErrorKind=BackfillIncomplete (the alarm's), and the
    // BackfillRemaining of the last link.
    let out = c.function.output();
    assert!(
        out.lines().any(|l| l.contains("\"_aws\"")
            && l.contains("\"ErrorKind\":\"BackfillIncomplete\"")
            && l.contains("\"Failures\"")),
        "no Failures line with ErrorKind BackfillIncomplete"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("\"BackfillRemaining\"") && l.contains(&format!(":{remaining}"))),
        "no BackfillRemaining {remaining} line"
    );
}

// ---- 3. Lambda's retries and duplicate deliveries -----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_duplicate_deliveries_do_not_fork_the_chain_beyond_its_cap() {
    let c = chain_of(300, Some(20), &west_only("app/**"), &[]).await;
    // Link 2 cannot start link 3 (every attempt of the SDK answered 500): it answers a Lambda
    // error, and Lambda retries it. Link 5 is delivered twice.
    c.lambda
        .fail_invokes_starting(3, common::app::MAX_ATTEMPTS as usize);
    c.lambda.duplicate(5);
    c.lambda.invoke(&json!({"source": "manual", "all": true}));
    let deliveries = c.lambda.wait_idle(CHAIN_GUARD);
    let lines = chain(&deliveries);
    eprintln!("{lines:#?}");
    let mut per_link: BTreeMap<u32, Vec<&Delivery>> = BTreeMap::new();
    for d in &deliveries {
        per_link.entry(d.link).or_default().push(d);
    }
    assert_eq!(
        per_link.keys().copied().collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>(),
        "links 1..=12 and no further: {lines:#?}"
    );
    for (link, ds) in &per_link {
        let expected = match link {
            2 => 2,
            l if *l >= 5 => 2,
            _ => 1,
        };
        assert_eq!(ds.len(), expected, "link {link}: {lines:#?}");
    }
    // The one Lambda error: link 2's first attempt, which could not continue; its retry did.
    let failed: Vec<&Delivery> = deliveries.iter().filter(|d| d.failed()).collect();
    assert_eq!(failed.len(), 1, "{lines:#?}");
    assert_eq!((failed[0].link, failed[0].attempt), (2, 1));
    assert_eq!(failed[0].document()["continued"], false);
    assert_eq!(failed[0].error_type().as_deref(), Some("ServiceError"));
    let retry = per_link[&2]
        .iter()
        .find(|d| d.cause == Cause::Retry)
        .expect("a retry");
    assert_eq!(retry.document()["continued"], true);
    // Both copies of the chain end at the cap, neither continuing.
    for d in &per_link[&12] {
        let doc = d.document();
        assert_eq!(error_kind(&doc), "BackfillIncomplete", "{doc:.2000}");
        assert_eq!(doc["continued"], false);
    }
    let requests = c.lambda.requests();
    assert!(
        requests.iter().all(|r| r.link.is_some_and(|l| l <= 12)),
        "{requests:#?}"
    );
    // However often a source was handled, its copy has one version, written with one token.
    let written = assert_one_token_each(&c.moto);
    assert_eq!(assert_west_copies(&c.moto, &c.secrets).await, written);
}

// ---- 4. resume values that are not this function's ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_resume_values_are_invalid_event_and_start_nothing() {
    use secret_replicator::continuation::Cursor;
    let c = chain_of(3, None, &west_only("app/**"), &[]).await;
    let cursor = |function: &str, region: &str| {
        Cursor {
            next: "app/s-00001".into(),
            region: region.into(),
            config: "0".repeat(16),
            link: 2,
            failures: 0,
            first_kind: None,
        }
        .encode(function)
    };
    let ours = cursor("secret-replicator", REGION);
    let mut altered = ours.clone().into_bytes();
    let at = altered.len() / 2;
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("ascii");
    let too_long = format!("v1.{}.{}", "A".repeat(5000), "0".repeat(32));
    let cases = [
        (
            "garbage",
            json!({"source": "manual", "all": true, "resume": "not a cursor"}),
        ),
        (
            "not a string",
            json!({"source": "manual", "all": true, "resume": 42}),
        ),
        (
            "another function's",
            json!({"source": "manual", "all": true, "resume": cursor("other-function", REGION)}),
        ),
        (
            "another region's",
            json!({"source": "manual", "all": true, "resume": cursor("secret-replicator", "eu-west-1")}),
        ),
        (
            "altered",
            json!({"source": "manual", "all": true, "resume": altered}),
        ),
        (
            "too long",
            json!({"source": "manual", "all": true, "resume": too_long}),
        ),
        (
            "without all",
            json!({"source": "manual", "secretId": "app/s-00001", "resume": ours}),
        ),
    ];
    for (what, payload) in &cases {
        let id = c.rt.push(payload);
        let answer = c.rt.answer(&id, CHAIN_GUARD);
        let common::runtime::Answer::Response { body, .. } = &answer else {
            panic!("{what}: a manual payload answers its document: {answer:?}");
        };
        let doc: Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(doc["statusCode"], 400, "{what}: {doc}");
        assert_eq!(error_kind(&doc), "InvalidEvent", "{what}: {doc}");
        assert!(
            doc["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("resume"),
            "{what}: {doc}"
        );
        assert!(doc["error"]["message"].as_str().unwrap_or_default().len() <= 512);
    }
    // With failOnError, the same is a Lambda error of that kind.
    let id =
        c.rt.push(&json!({"source": "manual", "all": true, "failOnError": true, "resume": "x"}));
    match c.rt.answer(&id, CHAIN_GUARD) {
        common::runtime::Answer::Error {
            error_type, body, ..
        } => {
            let body: Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!(body["errorType"], "InvalidEvent", "{error_type} {body}");
        }
        other => panic!("{other:?}"),
    }
    // The cursor that is ours goes on from its name.
    let id =
        c.rt.push(&json!({"source": "manual", "all": true, "resume": ours}));
    let common::runtime::Answer::Response { body, .. } = c.rt.answer(&id, CHAIN_GUARD) else {
        panic!("not answered");
    };
    let doc: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["statusCode"], 200, "{doc}");
    // A cursor of another configuration fingerprint restarts from the first name.
    assert_eq!(doc["resumeReset"], true, "{doc}");
    assert_eq!(doc["summary"]["replicated"], 3, "{doc}");
    assert!(c.lambda.requests().is_empty(), "nothing continued");
    assert!(writes_by_destination(&c.moto).len() == 3);
}

// ---- 5. a configuration change between links ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_change_mid_chain_restarts_from_the_first_name() {
    let moto = Moto::start();
    let ep = moto.endpoint();
    let east = sm(&ep, REGION).await;
    let secrets = names("app/s-", 300);
    seed(&east, &secrets, 32).await;
    let first = west_only("app/**");
    common::app::seed_secret(&east, "replicator/config", &first.to_string()).await;
    let rt = FakeRuntime::with_budget(LINK_BUDGET);
    let lambda = FakeLambda::start(&rt);
    let function = start(
        &rt,
        &moto,
        &lambda,
        &Value::Null,
        &[
            ("REPLICATOR_WRITE_TPS", "50"),
            ("REPLICATOR_CONCURRENCY", "1"),
            ("REPLICATOR_LINK_SOURCES", "50"),
            ("REPLICATOR_CONFIG_SECRET", "replicator/config"),
            ("REPLICATOR_CONFIG_TTL_SECONDS", "1"),
        ],
    );
    lambda.hold();
    lambda.invoke(&json!({"source": "manual", "all": true}));
    lambda.wait_held(1, CHAIN_GUARD);
    let link1 = lambda.wait_idle(CHAIN_GUARD);
    assert_eq!(
        link1[0].document()["summary"],
        json!({"replicated": 50}),
        "{:#?}",
        chain(&link1)
    );
    // The configuration changes (another transform): every copy is due again. The function
    // reads it again once its TTL (1 s) has passed: the sleep outlasts it (a lower bound, not
    // a race).
    let second = json!({"rules": [{"match": ["app/**"], "destinations": [
        {"region": "us-west-2", "name": "dr/${SECRET_NAME}",
         "transforms": [{"sed": "s/us-east-1/us-west-2/g;s/db-/database-/g"}]}
    ]}]});
    east.put_secret_value()
        .secret_id("replicator/config")
        .secret_string(second.to_string())
        .send()
        .await
        .expect("new config");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    lambda.release();
    let deliveries = lambda.wait_idle(CHAIN_GUARD);
    let lines = chain(&deliveries);
    eprintln!("{lines:#?}");
    // Link 1, then the restarted chain: 300 sources, 50 a link.
    assert_eq!(deliveries.len(), 1 + 6, "{lines:#?}");
    let link2 = deliveries[1].document();
    assert_eq!(link2["resumeReset"], true, "{link2:.2000}");
    for d in &deliveries[2..] {
        assert!(d.document().get("resumeReset").is_none(), "{lines:#?}");
    }
    assert!(deliveries.iter().all(|d| !d.failed()), "{lines:#?}");
    let after: u64 = deliveries[1..]
        .iter()
        .map(|d| d.document()["summary"]["replicated"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        after, 300,
        "the restarted chain rewrote every copy: {lines:#?}"
    );
    let west = sm(&ep, "us-west-2").await;
    let names: Vec<String> = secrets.iter().map(|(n, _)| format!("dr/{n}")).collect();
    let got = values(&west, &names).await;
    for (name, value) in &secrets {
        assert_eq!(
            got.get(&format!("dr/{name}")),
            Some(
                &value
                    .replace("us-east-1", "us-west-2")
                    .replace("db-", "database-")
            ),
            "{name}"
        );
    }
    assert!(
        function
            .output()
            .lines()
            .any(|l| l.contains("\"BackfillRestarts\"")),
        "no BackfillRestarts metric"
    );
}

// ---- 6. dry runs never continue ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_never_continues_and_hands_its_cursor_back() {
    let c = chain_of(300, Some(100), &west_only("app/**"), &[]).await;
    c.lambda
        .invoke(&json!({"source": "manual", "all": true, "dryRun": true}));
    let d = c.lambda.wait_idle(CHAIN_GUARD);
    assert_eq!(d.len(), 1);
    let doc = d[0].document();
    assert_eq!(doc["statusCode"], 200, "{doc:.2000}");
    assert_eq!(doc["continued"], false, "{doc:.2000}");
    let resume = doc["resume"]
        .as_str()
        .expect("the cursor to pass on")
        .to_string();
    let remaining = doc["remainingCount"].as_u64().expect("remainingCount");
    assert_eq!(remaining, 200, "{doc:.2000}");
    let planned = doc["summary"]["planned"].as_u64().unwrap_or(0);
    assert_eq!(planned, 100, "{doc:.2000}");
    let next = common::lambda::cursor_field(&resume, "n").expect("a cursor");
    assert_eq!(doc["remaining"][0], next);
    assert!(c.lambda.requests().is_empty(), "a dry run invokes nothing");
    // Passed on by hand, it goes on from there, and still does not continue.
    c.lambda
        .invoke(&json!({"source": "manual", "all": true, "dryRun": true, "resume": resume}));
    let d = c.lambda.wait_idle(CHAIN_GUARD);
    assert_eq!(d.len(), 2);
    let doc2 = d[1].document();
    assert_eq!(doc2["continued"], false, "{doc2:.2000}");
    assert!(doc2.get("resumeReset").is_none());
    let next = next.as_str().expect("name");
    for r in doc2["results"].as_array().expect("results") {
        let source = r["source"].as_str().unwrap_or_default();
        let name = source.rsplit(":secret:").next().unwrap_or_default();
        assert!(name >= next, "{name} before {next}");
    }
    assert_eq!(doc2["remainingCount"], 100, "{doc2:.2000}");
    assert_eq!(doc2["summary"]["planned"], 100, "{doc2:.2000}");
    assert!(c.lambda.requests().is_empty());
    assert!(
        writes_by_destination(&c.moto).is_empty(),
        "a dry run writes nothing"
    );
}

// ---- 7. failOnError fails the last link only -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_error_fails_only_the_last_link_with_the_first_failure_kind() {
    // 303 sources, 100 a link: 4 links.
    let c = chain_of(300, Some(100), &west_only("**"), &[]).await;
    // Three sources sorted first whose copies would land on someone else's secrets.
    let east = sm(&c.moto.endpoint(), REGION).await;
    let west = sm(&c.moto.endpoint(), "us-west-2").await;
    for i in 0..3 {
        common::app::seed_secret(&east, &format!("aa/{i}"), "v").await;
        common::app::seed_secret(&west, &format!("dr/aa/{i}"), "theirs").await;
    }
    c.moto.reset_calls();
    c.lambda
        .invoke(&json!({"source": "manual", "all": true, "failOnError": true}));
    let deliveries = c.lambda.wait_idle(CHAIN_GUARD);
    let lines = chain(&deliveries);
    eprintln!("{lines:#?}");
    // The links of the chain; Lambda's retries of the failed last link come after it.
    let links: Vec<&Delivery> = deliveries
        .iter()
        .filter(|d| d.cause != Cause::Retry)
        .collect();
    let k = links.len();
    assert_eq!(k, 4, "{lines:#?}");
    let first = deliveries[0].document();
    assert!(
        !deliveries[0].failed(),
        "a link that continued answers: {lines:#?}"
    );
    assert_eq!(first["continued"], true);
    assert_eq!(first["statusCode"], 207, "{first:.2000}");
    let failed: Vec<&Value> = first["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 3, "{first:.2000}");
    for d in &links[1..k - 1] {
        assert!(!d.failed(), "{lines:#?}");
    }
    let last = links[k - 1];
    assert_eq!(last.link as usize, k);
    assert!(last.failed(), "the last link fails: {lines:#?}");
    assert_eq!(last.error_type().as_deref(), Some("DestinationConflict"));
    let doc = last.document();
    assert_eq!(error_kind(&doc), "DestinationConflict", "{doc:.2000}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("3 destination(s)"),
        "{doc:.2000}"
    );
    // Lambda retries the failed last link (twice); nothing is left, so no retry continues,
    // and each fails the same way.
    let retries: Vec<&Delivery> = deliveries
        .iter()
        .filter(|d| d.cause == Cause::Retry)
        .collect();
    assert_eq!(retries.len(), 2, "{lines:#?}");
    for r in retries {
        assert_eq!(r.link as usize, k);
        assert_eq!(
            r.error_type().as_deref(),
            Some("DestinationConflict"),
            "{lines:#?}"
        );
    }
    assert_eq!(c.lambda.requests().len(), k - 1, "no retry continued");
    assert_eq!(assert_west_copies(&c.moto, &c.secrets).await, 300);
}

// ---- 8. a failure document always fits a failure record --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_error_message_is_capped_at_200_kb() {
    // Every copy fails (an empty value is TransformFailed): 1,500 failed results.
    let config = json!({"rules": [{"match": ["app/**"], "destinations": [
        {"region": "us-west-2", "name": "dr/a-long-prefix-to-make-the-results-longer/${SECRET_NAME}",
         "transforms": [{"sed": "s/.*//"}]}
    ]}]});
    // No work limit: one link of 1,500 failures.
    let c = chain_of(1500, None, &config, &[]).await;
    c.lambda
        .invoke(&json!({"source": "manual", "all": true, "failOnError": true}));
    let d = c.lambda.wait_idle(CHAIN_GUARD);
    let last = d.last().expect("a delivery");
    assert!(last.failed(), "{:#?}", chain(&d));
    let common::runtime::Answer::Error { body, .. } = last.answer.as_ref().expect("answer") else {
        unreachable!()
    };
    let body: Value = serde_json::from_str(body).expect("JSON");
    let message = body["errorMessage"].as_str().expect("errorMessage");
    assert!(message.len() <= 200 * 1024, "{} bytes", message.len());
    let doc: Value = serde_json::from_str(message).expect("the message is a whole document");
    assert_eq!(doc["summary"]["failed"], 1500, "{doc:.1000}");
    assert!(
        doc["summary"]["omitted"].as_u64().unwrap_or(0) > 0,
        "{doc:.1000}"
    );
    assert_eq!(body["errorType"], "TransformFailed");
    let listed = doc["results"].as_array().expect("results");
    assert!(!listed.is_empty() && listed.iter().all(|r| r["status"] == "failed"));
    assert!(writes_by_destination(&c.moto).is_empty());
}

// ---- 9. a destination that never answers: the link continues before its deadline ---------------

/// Never, as far as a test can tell: the proxy holds the answer until the test ends (it drops
/// it with the proxy), so the only way to answer before the deadline is to abandon the call.
const HELD: Duration = Duration::from_secs(24 * 3600);

/// Each link's timeout in the deadline tests: shorter than the SDK's per-attempt timeout (5 s),
/// so that a held call cannot end as the SDK's own timeout first; the reserved margin is then
/// 1 s, of which the last half second is for the Invoke (milliseconds on loopback) and the
/// answer.
const SHORT_BUDGET: Duration = Duration::from_secs(4);

/// moto with `n` sources behind the fault proxy, the function (two destinations, the second in
/// eu-west-1 through its role) talking to the proxy, each link given [`SHORT_BUDGET`], and
/// continuations held back (the test looks at link 1 first).
struct Held {
    moto: Moto,
    proxy: common::FaultProxy,
    rt: FakeRuntime,
    lambda: FakeLambda,
    _function: Function,
    secrets: Vec<(String, String)>,
}

async fn held_chain(n: usize, held: common::Match) -> Held {
    let moto = Moto::start();
    let east = sm(&moto.endpoint(), REGION).await;
    let secrets = names("app/s-", n);
    seed(&east, &secrets, 8).await;
    moto.reset_calls();
    let proxy = common::FaultProxy::start(moto.addr());
    proxy.add_rule(common::Rule::new(held, common::Fault::Delay(HELD)));
    let rt = FakeRuntime::with_budget(SHORT_BUDGET);
    let lambda = FakeLambda::start(&rt);
    let endpoint = proxy.endpoint();
    let function = start(
        &rt,
        &moto,
        &lambda,
        &two_destinations("app/**"),
        &[
            ("REPLICATOR_WRITE_TPS", "50"),
            ("REPLICATOR_CONCURRENCY", "1"),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ],
    );
    lambda.hold();
    Held {
        moto,
        proxy,
        rt,
        lambda,
        _function: function,
        secrets,
    }
}

/// Requests to eu-west-1 (the SigV4 credential scope names the region).
fn to_eu() -> common::Match {
    common::Match::any().header_contains("authorization", "/eu-west-1/")
}

/// Link 1's answer: a response (no Lambda error) posted before its deadline, which continued
/// (its continuation, started before the answer, is held).
fn first_link(h: &Held) -> Value {
    let d = h.lambda.wait_idle(CHAIN_GUARD);
    assert_eq!(d.len(), 1, "{:#?}", chain(&d));
    assert!(
        matches!(d[0].answer, Some(common::runtime::Answer::Response { .. })),
        "{:?}",
        d[0].answer
    );
    assert!(
        !h.rt.timed_out(&d[0].request_id),
        "link 1 answered after its deadline"
    );
    let doc = d[0].document();
    assert_eq!(doc["continued"], true, "{doc:.3000}");
    h.lambda.wait_held(1, CHAIN_GUARD);
    doc
}

fn remaining_names(doc: &Value) -> Vec<String> {
    doc["remaining"]
        .as_array()
        .expect("remaining")
        .iter()
        .map(|v| v.as_str().expect("a name").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_never_answers_makes_the_link_continue_before_its_deadline() {
    // Every call to eu-west-1 about app/s-00010 is held: its copy's write (or the ownership
    // check before it) never answers.
    const N: usize = 20;
    let h = held_chain(N, to_eu().body_contains("app/s-00010")).await;
    h.lambda.invoke(&json!({"source": "manual", "all": true}));
    let doc = first_link(&h);
    assert_eq!(doc["statusCode"], 200, "{doc:.3000}");
    assert_eq!(doc["continued"], true, "{doc:.3000}");
    // In order of name: what finished before app/s-00010 is reported, and from the first
    // source not finished on (app/s-00010 at the latest: it never finishes), everything
    // remains, the cursor naming the first.
    let remaining = remaining_names(&doc);
    assert!(
        remaining.contains(&"app/s-00010".to_string()),
        "{doc:.3000}"
    );
    let first = remaining[0].clone();
    let expected: Vec<String> = h
        .secrets
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| *n >= first)
        .collect();
    assert_eq!(remaining, expected, "{doc:.3000}");
    assert_eq!(doc["remainingCount"], remaining.len());
    let done = N - remaining.len();
    assert_eq!(
        doc["summary"],
        if done == 0 {
            json!({})
        } else {
            json!({"replicated": 2 * done})
        },
        "{doc:.3000}"
    );
    let resume = doc["resume"].as_str().expect("resume");
    assert_eq!(
        common::lambda::cursor_field(resume, "n"),
        Some(json!(first))
    );
    assert!(
        h.proxy.fault_log().iter().any(|f| f.fault == "Delay"),
        "the held destination was reached"
    );

    // The destination answers again: the chain goes on from the cursor and finishes. The
    // abandoned call never reached moto; had it, the repeat would carry the same token.
    h.proxy.clear_rules();
    h.rt.set_budget(LINK_BUDGET);
    h.lambda.release();
    let deliveries = h.lambda.wait_idle(CHAIN_GUARD);
    let lines = chain(&deliveries);
    let last = deliveries.last().expect("link 2").document();
    assert_eq!(deliveries.len(), 2, "{lines:#?}");
    assert_eq!(last["remainingCount"], 0, "{lines:#?}");
    assert_eq!(last["continued"], false, "{lines:#?}");
    assert_copies(&h.moto, &h.secrets).await;
    assert_one_token_per_destination(&h.moto, 2 * N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_or_an_assume_role_that_never_answers_makes_the_link_continue_with_every_source()
{
    for (what, held) in [
        (
            "ListSecrets in eu-west-1",
            common::Match::op("ListSecrets").header_contains("authorization", "/eu-west-1/"),
        ),
        ("AssumeRole", common::Match::service("sts")),
    ] {
        let h = held_chain(5, held).await;
        h.lambda.invoke(&json!({"source": "manual", "all": true}));
        let doc = first_link(&h);
        assert_eq!(doc["statusCode"], 200, "{what}: {doc:.3000}");
        assert_eq!(doc["continued"], true, "{what}: {doc:.3000}");
        let all: Vec<String> = h.secrets.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(remaining_names(&doc), all, "{what}: {doc:.3000}");
        assert_eq!(doc["summary"], json!({}), "{what}: {doc:.3000}");
        assert!(
            h.proxy.fault_log().iter().any(|f| f.fault == "Delay"),
            "{what}: the held call was made"
        );
        assert!(
            writes_by_destination(&h.moto).is_empty(),
            "{what}: nothing written"
        );
    }
}
