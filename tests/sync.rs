//! Keeping copies right over time (SPEC §5 DeleteSecret/RestoreSecret/TagResource, §6 `all`,
//! `dryRun`, `failOnError`, §8): the backfill of pre-existing secrets and the repair of drifted
//! copies, runs that write nothing when nothing differs, dry runs, deletion and restore following
//! the source, tags and description following the source, and `all` stopping before its deadline.
//! Everything is read back from moto; write calls are counted from moto's request log.

// The SDK call futures nest deeply; the default limit (128) is too low for their layout.
#![recursion_limit = "256"]

mod common;

use aws_sdk_secretsmanager::Client as Sm;
use common::Moto;
use common::app::*;
use common::world::World;
use secret_replicator::app::{App, Failure};
use secret_replicator::aws::AwsStores;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// `app/**` to us-west-2 under its own name, host names rewritten.
fn west_copy() -> String {
    json!({"rules": [{"match": ["app/**"], "destinations": [
        {"region": "us-west-2", "transforms": [{"sed": "s/us-east-1/us-west-2/g"}]}
    ]}]})
    .to_string()
}

fn west(v: &str) -> String {
    v.replace("us-east-1", "us-west-2")
}

/// A CloudTrail event for `secret` built from `fixture`, with another event name, request
/// parameters and response elements.
fn cloudtrail(fixture: &str, secret: &Seeded, name: &str, params: Value, response: Value) -> Value {
    let mut e = event(fixture, secret);
    e["detail"]["eventName"] = json!(name);
    e["detail"]["requestParameters"] = params;
    e["detail"]["responseElements"] = response;
    e
}

/// A DeleteSecret event as CloudTrail records it now, for a source scheduled for deletion in
/// `days` days: the request's window, the response's deletion date (CloudTrail's date form).
fn delete_event_in(secret: &Seeded, days: u64) -> Value {
    let mut e = event(fixture::DELETE_OLD_ARN_CASING, secret);
    let now = SystemTime::now();
    e["detail"]["eventTime"] = json!(rfc3339(now));
    e["detail"]["requestParameters"]["recoveryWindowInDays"] = json!(days);
    e["detail"]["responseElements"]["deletionDate"] =
        json!(cloudtrail_date(now + Duration::from_secs(days * 86_400)));
    e
}

/// A DeleteSecret event for a source scheduled with the fixture's 7-day window.
fn delete_event(secret: &Seeded) -> Value {
    delete_event_in(secret, 7)
}

fn civil(t: SystemTime) -> (i64, u32, u32, u64) {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs % 86_400)
}

fn rfc3339(t: SystemTime) -> String {
    let (y, m, d, s) = civil(t);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// `Nov 27, 2026, 9:15:02 AM`, with the narrow no-break space newer CloudTrail renderings use.
fn cloudtrail_date(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d, s) = civil(t);
    let h = s / 3600;
    let (h12, ampm) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!(
        "{} {d}, {y}, {h12}:{:02}:{:02}\u{202f}{ampm}",
        MONTHS[m as usize - 1],
        s % 3600 / 60,
        s % 60
    )
}

fn restore_event(secret: &Seeded) -> Value {
    cloudtrail(
        fixture::DELETE_OLD_ARN_CASING,
        secret,
        "RestoreSecret",
        json!({"secretId": secret.name}),
        json!({"aRN": secret.arn, "name": secret.name}),
    )
}

fn tag_event(secret: &Seeded, tags: &[(&str, &str)]) -> Value {
    let tags: Vec<Value> = tags
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    cloudtrail(
        fixture::PUT,
        secret,
        "TagResource",
        json!({"secretId": secret.name, "tags": tags}),
        Value::Null,
    )
}

fn untag_event(secret: &Seeded, keys: &[&str]) -> Value {
    cloudtrail(
        fixture::PUT,
        secret,
        "UntagResource",
        json!({"secretId": secret.name, "tagKeys": keys}),
        Value::Null,
    )
}

fn update_event(secret: &Seeded, params: Value) -> Value {
    cloudtrail(
        fixture::PUT,
        secret,
        "UpdateSecret",
        params,
        json!({"arn": secret.arn, "name": secret.name}),
    )
}

/// The statuses of a document's results, counted.
fn statuses(doc: &Value) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in doc["results"].as_array().expect("results") {
        let key = format!(
            "{}/{}",
            r["status"].as_str().unwrap_or("?"),
            r["action"].as_str().unwrap_or("?")
        );
        *m.entry(key).or_default() += 1;
    }
    m
}

/// Seconds from now to a described secret's DeletedDate (None when not scheduled).
fn deleted_in(
    d: &aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput,
) -> Option<i64> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    d.deleted_date().map(|t| t.secs() - now)
}

const DAY: i64 = 86_400;

/// Requests moto answered with a 500 (its own errors, which the SDK retries).
fn moto_errors(moto: &Moto) -> usize {
    moto.log()
        .lines()
        .filter(|l| l.contains("\" 500 -"))
        .count()
}

// ---- 1. backfill ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_backfills_200_existing_secrets_and_a_second_run_writes_nothing() {
    let w = World::start().await;
    let World {
        moto,
        east,
        west: west_sm,
    } = &w;
    let ep = moto.endpoint();
    let eu = sm(&ep, "eu-west-1").await;
    let config = json!({"rules": [
        {"name": "apps", "match": ["app/**"], "destinations": [
            {"region": "us-west-2", "transforms": [{"sed": "s/us-east-1/us-west-2/g"}]},
            {"name": "copy/${SECRET_NAME}"}
        ]},
        {"name": "dbs", "match": ["db/**"], "destinations": [
            {"region": "eu-west-1", "name": "dr/${SECRET_NAME}",
             "transforms": [{"sed": "s/us-east-1/eu-west-1/g"}]},
            {"name": "backup/${SECRET_NAME}"}
        ]}
    ]})
    .to_string();

    let t = Instant::now();
    let mut wanted: Vec<(String, String)> = Vec::new();
    for i in 0..100 {
        wanted.push((
            format!("app/svc-{i:03}"),
            format!(r#"{{"url":"https://svc-{i:03}.us-east-1.example.com","password":"pw-{i}"}}"#),
        ));
        wanted.push((
            format!("db/cluster-{i:03}"),
            format!("postgres://cluster-{i:03}.us-east-1.rds.amazonaws.com:5432/db?pw=x{i}"),
        ));
    }
    let seeded = seed_many(east, &wanted).await;
    // Not sources: no rule matches; a replica (marker tag) whose name a rule matches; a secret
    // scheduled for deletion.
    seed_secret(east, "other/thing", "not matched").await;
    seed_tagged(
        east,
        "app/replica-from-elsewhere",
        "a copy",
        None,
        &[(MARKER, "999999999999:eu-central-1:app/x")],
    )
    .await;
    seed_secret(east, "app/doomed", "going away").await;
    east.delete_secret()
        .secret_id("app/doomed")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    eprintln!("seeded 203 secrets in {:?}", t.elapsed());

    let app = app_with(&config, &ep).await;
    moto.reset_calls();
    let t = Instant::now();
    let doc = ok(app.handle(&manual_all()).await);
    let backfill = t.elapsed();
    eprintln!("backfill of 200 secrets x 2 destinations: {backfill:?}");

    assert_eq!(doc["statusCode"], 200, "{:?}", statuses(&doc));
    assert_eq!(doc["remaining"], json!([]));
    let results = doc["results"].as_array().unwrap();
    assert_eq!(results.len(), 400, "{:?}", statuses(&doc));
    assert!(
        results
            .iter()
            .all(|r| r["status"] == "replicated" && r["action"] == "create"),
        "{:?}",
        statuses(&doc)
    );
    let text = doc.to_string();
    for not_a_source in ["other/thing", "app/replica-from-elsewhere", "app/doomed"] {
        assert!(
            !text.contains(not_a_source),
            "{not_a_source} was treated as a source"
        );
    }
    let calls = moto.calls();
    // One CreateSecret per destination and no other write. moto's secret store is not
    // thread-safe: a concurrent CreateSecret in the same region now and then fails with a 500
    // ("dictionary changed size during iteration"), which the SDK retries; such a retry is the
    // only extra call allowed.
    let mut creates: BTreeMap<String, usize> = BTreeMap::new();
    for c in calls.iter().filter(|c| c.operation == "CreateSecret") {
        let body: Value = serde_json::from_str(&c.body).unwrap();
        let at = format!("{}:{}", c.region.as_deref().unwrap_or("?"), body["Name"]);
        *creates.entry(at).or_default() += 1;
    }
    assert_eq!(creates.len(), 400, "destinations created");
    let retried: usize = creates.values().map(|n| n - 1).sum();
    assert!(
        retried <= moto_errors(moto),
        "{retried} CreateSecret calls repeated, {} moto errors: {:?}",
        moto_errors(moto),
        creates.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    if retried > 0 {
        eprintln!("{retried} CreateSecret calls retried by the SDK after a moto 500");
    }
    let other_writes: Vec<_> = calls
        .iter()
        .filter(|c| c.operation != "CreateSecret" && WRITE_OPS.contains(&c.operation.as_str()))
        .map(|c| c.operation.clone())
        .collect();
    assert!(other_writes.is_empty(), "{other_writes:?}");
    for c in &calls {
        for skipped in ["app/replica-from-elsewhere", "app/doomed"] {
            assert!(
                !body_names(&c.body, skipped),
                "{} touched {skipped}: {}",
                c.operation,
                c.body
            );
        }
    }

    // Every destination exists.
    let mut west_names = list_names(west_sm).await;
    west_names.sort();
    let want_west: Vec<String> = (0..100).map(|i| format!("app/svc-{i:03}")).collect();
    assert_eq!(west_names, want_west);
    let eu_names = list_names(&eu).await;
    assert_eq!(eu_names.len(), 100);
    assert!(eu_names.iter().all(|n| n.starts_with("dr/db/cluster-")));
    let east_names = list_names(east).await;
    let copies = east_names
        .iter()
        .filter(|n| n.starts_with("copy/app/svc-"))
        .count();
    let backups = east_names
        .iter()
        .filter(|n| n.starts_with("backup/db/cluster-"))
        .count();
    assert_eq!((copies, backups), (100, 100));
    assert!(!east_names.iter().any(|n| n.starts_with("copy/app/replica")));
    assert!(
        !list_names(west_sm)
            .await
            .iter()
            .any(|n| n.contains("doomed"))
    );

    // A sample, read back.
    for i in [0usize, 41, 99] {
        let (app_name, app_value) = &wanted[2 * i];
        let (db_name, db_value) = &wanted[2 * i + 1];
        assert_eq!(
            current(west_sm, app_name).await,
            Some(west(app_value)),
            "{app_name}"
        );
        assert_eq!(
            current(east, &format!("copy/{app_name}")).await.as_ref(),
            Some(app_value)
        );
        assert_eq!(
            current(&eu, &format!("dr/{db_name}")).await,
            Some(db_value.replace("us-east-1", "eu-west-1"))
        );
        assert_eq!(
            current(east, &format!("backup/{db_name}")).await.as_ref(),
            Some(db_value)
        );
        assert_eq!(
            tag(&describe(west_sm, app_name).await, MARKER),
            Some(marker_of(REGION, app_name))
        );
    }
    assert_eq!(seeded.len(), 200);

    // A scheduled run in a fresh container: reads only.
    let app = app_with(&config, &ep).await;
    moto.reset_calls();
    let t = Instant::now();
    let doc = ok(app.handle(&manual_all()).await);
    let noop = t.elapsed();
    let calls = moto.calls();
    let writes: Vec<_> = calls
        .iter()
        .filter(|c| WRITE_OPS.contains(&c.operation.as_str()))
        .map(|c| c.operation.clone())
        .collect();
    assert!(writes.is_empty(), "{} writes: {writes:?}", writes.len());
    assert_eq!(doc["statusCode"], 200);
    // An `all` document counts unchanged results instead of listing them (SPEC §6).
    // The source scheduled for deletion (its copies do not follow deletes) is skipped.
    assert_eq!(
        doc["summary"],
        json!({"skipped": 1, "unchanged": 400}),
        "{doc}"
    );
    assert_eq!(doc["results"], json!([]), "{doc}");
    assert_eq!(doc["remainingCount"], 0);
    // Compared by listing: the sources once, each destination (account, region) once, 100 a
    // page; no source read, no describe (SPEC §6).
    let sm_calls: Vec<&str> = calls
        .iter()
        .filter(|c| c.service == "secretsmanager")
        .map(|c| c.operation.as_str())
        .collect();
    assert!(
        sm_calls.iter().all(|op| *op == "ListSecrets"),
        "{sm_calls:?}"
    );
    // 203 sources: 3 pages; 4 destinations of 100 replicas: a page each; a listing may end on
    // an empty page.
    assert!(
        sm_calls.len() <= (3 + 1) + 4 * (1 + 1),
        "{} listing calls",
        sm_calls.len()
    );
    let mut per_op: BTreeMap<String, usize> = BTreeMap::new();
    for c in &calls {
        *per_op
            .entry(format!("{}:{}", c.service, c.operation))
            .or_default() += 1;
    }
    eprintln!(
        "no-op all run: {:?}, {} calls, {:.2} read calls per source secret, 0 writes; {per_op:?}",
        noop,
        calls.len(),
        calls.len() as f64 / 200.0
    );
    // Versions: each copy has exactly the one version it was created with.
    assert_eq!(versions(west_sm, "app/svc-007").await, 1);
    assert_eq!(versions(&eu, "dr/db/cluster-007").await, 1);
}

// ---- 2. drift -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_creates_what_the_listing_lacks_without_describing_it_and_never_takes_a_stranger() {
    let w = World::start().await;
    let World {
        moto,
        east,
        west: west_sm,
    } = &w;
    let ep = moto.endpoint();
    let fresh = seed_secret(east, "app/fresh", "db.us-east-1.example.com").await;
    let taken = seed_secret(east, "app/taken", "mq.us-east-1.example.com").await;
    // Someone else's secret where the copy would go: no marker, so the filtered listing does
    // not show it, and the create meets it.
    seed_secret(west_sm, "app/taken", "theirs").await;
    let app = app_with(&west_copy(), &ep).await;
    moto.reset_calls();
    let doc = app.handle(&manual_all()).await;
    let doc = match doc {
        Ok(r) | Err(Failure(r)) => serde_json::from_str::<Value>(&r.to_json()).unwrap(),
    };
    let r = results_of(&doc, &fresh);
    assert_eq!(
        (r[0]["status"].as_str(), r[0]["action"].as_str()),
        (Some("replicated"), Some("create")),
        "{doc}"
    );
    let r = results_of(&doc, &taken);
    assert_eq!(r[0]["status"], "failed", "{doc}");
    assert_eq!(r[0]["error"]["kind"], "DestinationConflict", "{doc}");
    assert_eq!(r[0]["statusCode"], 409, "{doc}");
    assert_eq!(
        current(west_sm, "app/taken").await.as_deref(),
        Some("theirs")
    );
    // The missing copies were created from the listing alone: no DescribeSecret of a
    // destination before its CreateSecret; only the refused one is described (ownership).
    let described: Vec<String> = moto
        .calls()
        .into_iter()
        .filter(|c| c.operation == "DescribeSecret" && c.region.as_deref() == Some("us-west-2"))
        .map(|c| c.body)
        .collect();
    assert_eq!(described.len(), 1, "{described:?}");
    assert!(described[0].contains("app/taken"), "{described:?}");
}

#[tokio::test]
async fn all_repairs_a_hand_edited_copy_and_a_missed_event_and_leaves_the_rest_alone() {
    let w = World::start().await;
    let World {
        moto,
        east,
        west: west_sm,
    } = &w;
    let ep = moto.endpoint();
    let edited = seed_secret(east, "app/edited", "db.us-east-1.example.com").await;
    let missed = seed_secret(east, "app/missed", "cache.us-east-1.example.com").await;
    let untouched = seed_secret(east, "app/untouched", "mq.us-east-1.example.com").await;
    let gone = seed_secret(east, "app/gone", "s3.us-east-1.example.com").await;
    let app = app_with(&west_copy(), &ep).await;
    ok(app.handle(&manual_all()).await);
    assert_eq!(
        current(west_sm, "app/edited").await.as_deref(),
        Some("db.us-west-2.example.com")
    );

    // By hand, no event reaches the function: the copy is edited; the source changes.
    put_value(west_sm, "app/edited", "tampered").await;
    put_value(east, "app/missed", "cache2.us-east-1.example.com").await;
    west_sm
        .delete_secret()
        .secret_id("app/gone")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let untouched_versions = versions(west_sm, "app/untouched").await;
    moto.reset_calls();

    let doc = ok(app.handle(&manual_all()).await);

    assert_eq!(doc["statusCode"], 200, "{doc}");
    let r = results_of(&doc, &edited);
    assert_eq!(r.len(), 1, "{doc}");
    assert_eq!(r[0]["status"], "replicated", "{doc}");
    assert!(
        r[0]["action"] == "update" || r[0]["action"] == "label",
        "{doc}"
    );
    let r = results_of(&doc, &missed);
    assert_eq!(
        (r[0]["status"].as_str(), r[0]["action"].as_str()),
        (Some("replicated"), Some("update")),
        "{doc}"
    );
    let r = results_of(&doc, &gone);
    assert_eq!(
        (r[0]["status"].as_str(), r[0]["action"].as_str()),
        (Some("replicated"), Some("create")),
        "{doc}"
    );
    // The copy in line is counted, not listed (SPEC §6).
    assert!(results_of(&doc, &untouched).is_empty(), "{doc}");
    assert_eq!(doc["summary"]["unchanged"], 1, "{doc}");
    assert_eq!(doc["summary"]["replicated"], 3, "{doc}");

    assert_eq!(
        current(west_sm, "app/edited").await.as_deref(),
        Some("db.us-west-2.example.com")
    );
    assert_eq!(
        current(west_sm, "app/missed").await.as_deref(),
        Some("cache2.us-west-2.example.com")
    );
    assert_eq!(
        current(west_sm, "app/untouched").await.as_deref(),
        Some("mq.us-west-2.example.com")
    );
    assert_eq!(
        current(west_sm, "app/gone").await.as_deref(),
        Some("s3.us-west-2.example.com")
    );
    // The edited copy got its replicated version back as AWSCURRENT (no new version needed).
    assert!(versions(west_sm, "app/edited").await <= 3);
    assert_eq!(versions(west_sm, "app/untouched").await, untouched_versions);
    let writes = write_calls(moto);
    assert!(!writes.is_empty());
    for w in &writes {
        assert!(
            !body_names(&w.body, "app/untouched"),
            "the untouched copy was written: {} {}",
            w.operation,
            w.body
        );
    }
    eprintln!(
        "drift repair writes: {:?}",
        writes.iter().map(|c| &c.operation).collect::<Vec<_>>()
    );

    // Now everything is in line: the next run writes nothing.
    moto.reset_calls();
    let doc = ok(app.handle(&manual_all()).await);
    assert!(write_calls(moto).is_empty(), "{doc}");
    assert_eq!(statuses(&doc), BTreeMap::new(), "{doc}");
    assert_eq!(doc["summary"], json!({"unchanged": 4}));
}

// ---- 3. dry runs ----------------------------------------------------------------------------

/// Asserts a document carries no value and nothing that looks like a hash of one.
fn assert_no_value_or_hash(doc: &Value, values: &[&str]) {
    let text = doc.to_string();
    for v in values {
        assert!(!text.contains(v), "the document quotes a value: {text}");
    }
    for r in doc["results"].as_array().unwrap() {
        for k in r.as_object().unwrap().keys() {
            let k = k.to_ascii_lowercase();
            assert!(
                !k.contains("hash") && !k.contains("sha") && !k.contains("digest"),
                "{k} in {r}"
            );
        }
    }
    // No 64-hex-digit (SHA-256) run anywhere.
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
        assert!(run < 64, "a hash-like string in {text}");
    }
}

#[tokio::test]
async fn dry_runs_report_the_plan_and_change_nothing() {
    let w = World::start().await;
    let World {
        moto,
        east,
        west: west_sm,
    } = &w;
    let ep = moto.endpoint();
    let config = json!({"rules": [{"match": ["app/**"], "destinations": [
        {"region": "us-west-2", "transforms": [{"sed": "s/-primary/-replica-west/g"}]}
    ]}]})
    .to_string();
    let fresh = seed_secret(east, "app/fresh", "host=db-primary;pw=s3cr3t-fresh").await;
    let same = seed_secret(east, "app/same", "host=cache-primary;pw=s3cr3t-same").await;
    let drift = seed_secret(east, "app/drift", "host=mq-primary;pw=s3cr3t-drift").await;
    let app = app_with(&config, &ep).await;
    ok(app.handle(&manual("app/same")).await);
    ok(app.handle(&manual("app/drift")).await);
    put_value(west_sm, "app/drift", "edited by hand").await;
    let before = (
        versions(east, "app/fresh").await,
        versions(west_sm, "app/same").await,
        versions(west_sm, "app/drift").await,
    );
    moto.reset_calls();

    let doc = ok(app
        .handle(&json!({"source": "manual", "all": true, "dryRun": true}))
        .await);

    assert!(write_calls(moto).is_empty(), "{:?}", write_calls(moto));
    assert_eq!(doc["statusCode"], 200, "{doc}");
    assert_eq!(doc["results"].as_array().unwrap().len(), 3, "{doc}");
    let size = |v: &str| v.replace("-primary", "-replica-west").len();
    let r = results_of(&doc, &fresh)[0];
    assert_eq!(r["status"], "planned", "{r}");
    assert_eq!(r["action"], "create", "{r}");
    assert_eq!(r["wouldChange"], true, "{r}");
    assert_eq!(r["size"], size("host=db-primary;pw=s3cr3t-fresh"), "{r}");
    assert_eq!(r["destination"]["name"], "app/fresh", "{r}");
    let r = results_of(&doc, &same)[0];
    assert_eq!(r["status"], "planned", "{r}");
    assert_eq!(r["action"], "none", "{r}");
    assert_eq!(r["wouldChange"], false, "{r}");
    assert_eq!(r["size"], size("host=cache-primary;pw=s3cr3t-same"), "{r}");
    let r = results_of(&doc, &drift)[0];
    assert_eq!(r["status"], "planned", "{r}");
    assert!(r["action"] == "update" || r["action"] == "label", "{r}");
    assert_eq!(r["wouldChange"], true, "{r}");
    assert_eq!(r["size"], size("host=mq-primary;pw=s3cr3t-drift"), "{r}");
    assert_no_value_or_hash(&doc, &["s3cr3t", "edited by hand", "replica-west"]);

    // One secret, by id.
    let doc = ok(app
        .handle(&json!({"source": "manual", "secretId": "app/fresh", "dryRun": true}))
        .await);
    let r = only(&doc);
    assert_eq!(r["status"], "planned", "{doc}");
    assert_eq!(r["action"], "create", "{doc}");
    assert_eq!(r["wouldChange"], true, "{doc}");
    assert_eq!(r["size"], size("host=db-primary;pw=s3cr3t-fresh"), "{doc}");
    assert_no_value_or_hash(&doc, &["s3cr3t", "replica-west"]);
    let doc = ok(app
        .handle(&json!({"source": "manual", "secretId": "app/same", "dryRun": true}))
        .await);
    assert_eq!(only(&doc)["status"], "planned", "{doc}");
    assert_eq!(only(&doc)["wouldChange"], false, "{doc}");

    assert!(write_calls(moto).is_empty(), "{:?}", write_calls(moto));
    assert!(!exists(west_sm, "app/fresh").await);
    assert_eq!(
        (
            versions(east, "app/fresh").await,
            versions(west_sm, "app/same").await,
            versions(west_sm, "app/drift").await,
        ),
        before
    );
    assert_eq!(
        current(west_sm, "app/drift").await.as_deref(),
        Some("edited by hand")
    );
}

// ---- 4. deletion and restore ----------------------------------------------------------------

/// `app/**` to us-west-2: the copy follows deletes; `keep/` does not; `handoff/` follows deletes
/// but its marker is removed by hand later; `foreign/` exists unmanaged.
fn deletion_config() -> String {
    json!({"rules": [{"match": ["app/**"], "destinations": [
        {"region": "us-west-2", "delete_with_source": true,
         "transforms": [{"sed": "s/us-east-1/us-west-2/g"}]},
        {"region": "us-west-2", "name": "keep/${SECRET_NAME}"},
        {"region": "us-west-2", "name": "handoff/${SECRET_NAME}", "delete_with_source": true},
        {"region": "us-west-2", "name": "foreign/${SECRET_NAME}", "delete_with_source": true}
    ]}]})
    .to_string()
}

#[tokio::test]
async fn a_deleted_source_schedules_only_owned_copies_that_follow_deletes() {
    let w = World::start().await;
    let World {
        moto,
        east,
        west: west_sm,
    } = &w;
    let ep = moto.endpoint();
    let source = seed_secret(east, "app/db", "db.us-east-1.internal").await;
    seed_secret(west_sm, "foreign/app/db", "someone else's").await;
    let app = app_with(&deletion_config(), &ep).await;
    let doc = ok(app.handle(&manual("app/db")).await);
    assert_eq!(result_for(&doc, "app/db")["status"], "replicated", "{doc}");
    assert_eq!(
        result_for(&doc, "foreign/app/db")["statusCode"],
        409,
        "{doc}"
    );
    // An operator takes over handoff/ (removes the marker) after the function cached it as owned.
    west_sm
        .untag_resource()
        .secret_id("handoff/app/db")
        .tag_keys(MARKER)
        .send()
        .await
        .unwrap();

    east.delete_secret()
        .secret_id("app/db")
        .recovery_window_in_days(10)
        .send()
        .await
        .unwrap();
    let source_deleted_in = deleted_in(&describe(east, "app/db").await).expect("scheduled");
    moto.reset_calls();

    let doc = ok(app.handle(&delete_event_in(&source, 10)).await);

    assert_eq!(doc["statusCode"], 200, "{doc}");
    let r = result_for(&doc, "app/db");
    assert_eq!(
        (r["status"].as_str(), r["action"].as_str()),
        (Some("deleted"), Some("delete")),
        "{doc}"
    );
    let r = result_for(&doc, "keep/app/db");
    assert_eq!(
        (r["status"].as_str(), r["reason"].as_str()),
        (Some("skipped"), Some("delete_sync_off")),
        "{doc}"
    );
    for unmanaged in ["handoff/app/db", "foreign/app/db"] {
        let r = result_for(&doc, unmanaged);
        assert_eq!(
            (r["status"].as_str(), r["reason"].as_str()),
            (Some("skipped"), Some("not_owned")),
            "{doc}"
        );
    }

    let copy_deleted_in =
        deleted_in(&describe(west_sm, "app/db").await).expect("the copy is scheduled for deletion");
    assert!(
        (copy_deleted_in - source_deleted_in).abs() < DAY,
        "the copy's window ({copy_deleted_in} s) is the source's remaining window ({source_deleted_in} s)"
    );
    for live in ["keep/app/db", "handoff/app/db", "foreign/app/db"] {
        assert_eq!(deleted_in(&describe(west_sm, live).await), None, "{live}");
    }
    assert_eq!(
        current(west_sm, "foreign/app/db").await.as_deref(),
        Some("someone else's")
    );
    let writes = write_calls(moto);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].operation, "DeleteSecret");
    assert_eq!(writes[0].region.as_deref(), Some("us-west-2"));
    let body: Value = serde_json::from_str(&writes[0].body).unwrap();
    assert_eq!(body["SecretId"], "app/db", "{body}");
    assert_eq!(body["RecoveryWindowInDays"], 10, "{body}");
    assert!(
        body.get("ForceDeleteWithoutRecovery")
            .is_none_or(|f| f == false),
        "{body}"
    );

    // The same event again (EventBridge delivers at least once): nothing more to do.
    moto.reset_calls();
    let doc = ok(app.handle(&delete_event(&source)).await);
    assert!(write_calls(moto).is_empty(), "{doc}");
    assert_ne!(result_for(&doc, "app/db")["status"], "failed", "{doc}");
}

#[tokio::test]
async fn a_forced_source_delete_still_gives_the_copy_a_recovery_window() {
    let w = World::start().await;
    let World {
        moto,
        east,
        west: west_sm,
    } = &w;
    let ep = moto.endpoint();
    let config = json!({"rules": [{"match": ["app/**"], "destinations": [
        {"region": "us-west-2", "delete_with_source": true}
    ]}]})
    .to_string();
    let source = seed_secret(east, "app/db", "v1").await;
    let app = app_with(&config, &ep).await;
    ok(app.handle(&manual("app/db")).await);
    east.delete_secret()
        .secret_id("app/db")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    assert!(!exists(east, "app/db").await);
    let mut e = delete_event(&source);
    e["detail"]["requestParameters"] =
        json!({"secretId": "app/db", "forceDeleteWithoutRecovery": true});
    moto.reset_calls();

    let doc = ok(app.handle(&e).await);

    let r = only(&doc);
    assert_eq!(r["status"], "deleted", "{doc}");
    assert!(
        exists(west_sm, "app/db").await,
        "the copy was deleted outright"
    );
    let left = deleted_in(&describe(west_sm, "app/db").await).expect("scheduled for deletion");
    assert!((6 * DAY..=7 * DAY + 60).contains(&left), "{left} s");
    let writes = write_calls(moto);
    assert_eq!(writes.len(), 1, "{writes:?}");
    let body: Value = serde_json::from_str(&writes[0].body).unwrap();
    assert_eq!(body["RecoveryWindowInDays"], 7, "{body}");
    assert!(
        body.get("ForceDeleteWithoutRecovery")
            .is_none_or(|f| f == false),
        "{body}"
    );
}

/// `app/db` in us-east-1, replicated once to us-west-2 by an App whose copy follows deletes.
struct Followed {
    moto: Moto,
    ep: String,
    east: Sm,
    west_sm: Sm,
    source: Seeded,
    app: App<AwsStores>,
}

async fn followed() -> Followed {
    let World {
        moto,
        east,
        west: west_sm,
    } = World::start().await;
    let ep = moto.endpoint();
    let source = seed_secret(&east, "app/db", "v1.us-east-1").await;
    let app = app_with(&follow_deletes(), &ep).await;
    ok(app.handle(&manual("app/db")).await);
    Followed {
        moto,
        ep,
        east,
        west_sm,
        source,
        app,
    }
}

/// DeleteSecret on `app/db` with a 7-day recovery window.
async fn schedule_deletion(sm: &Sm) {
    sm.delete_secret()
        .secret_id("app/db")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
}

/// RestoreSecret on `app/db`.
async fn restore(sm: &Sm) {
    sm.restore_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
}

fn follow_deletes() -> String {
    json!({"rules": [{"match": ["app/**"], "destinations": [
        {"region": "us-west-2", "delete_with_source": true,
         "transforms": [{"sed": "s/us-east-1/us-west-2/g"}]}
    ]}]})
    .to_string()
}

#[tokio::test]
async fn a_restored_source_restores_its_copy_with_the_current_value() {
    let Followed {
        moto,
        ep,
        east,
        west_sm,
        source,
        app,
    } = followed().await;
    schedule_deletion(&east).await;
    let doc = ok(app.handle(&delete_event(&source)).await);
    assert_eq!(only(&doc)["status"], "deleted", "{doc}");
    assert!(deleted_in(&describe(&west_sm, "app/db").await).is_some());

    restore(&east).await;
    // A value written after the restore whose own event is lost.
    put_value(&east, "app/db", "v2.us-east-1").await;
    moto.reset_calls();

    // A fresh container, as a later event usually gets.
    let app = app_with(&follow_deletes(), &ep).await;
    let doc = ok(app.handle(&restore_event(&source)).await);

    let r = only(&doc);
    assert!(
        r["status"] == "restored" || r["status"] == "replicated",
        "{doc}"
    );
    let d = describe(&west_sm, "app/db").await;
    assert_eq!(
        deleted_in(&d),
        None,
        "the copy is still scheduled for deletion"
    );
    assert_eq!(
        current(&west_sm, "app/db").await.as_deref(),
        Some("v2.us-west-2")
    );
    let ops: Vec<String> = write_calls(&moto)
        .into_iter()
        .map(|c| c.operation)
        .collect();
    assert!(ops.contains(&"RestoreSecret".to_string()), "{ops:?}");
    assert!(!ops.contains(&"DeleteSecret".to_string()), "{ops:?}");
    eprintln!("restore event: {} -> writes {ops:?}", r["status"]);
}

#[tokio::test]
async fn a_restore_event_that_restores_the_copy_reports_restored() {
    let Followed {
        moto,
        ep: _,
        east,
        west_sm,
        source,
        app,
    } = followed().await;
    schedule_deletion(&east).await;
    ok(app.handle(&delete_event(&source)).await);
    restore(&east).await;
    moto.reset_calls();

    let doc = ok(app.handle(&restore_event(&source)).await);

    assert_eq!(deleted_in(&describe(&west_sm, "app/db").await), None);
    assert_eq!(
        versions(&west_sm, "app/db").await,
        1,
        "the value did not change"
    );
    // SPEC §5/§7: RestoreSecret restores the copy; the result says so (status `restored`,
    // action `restore`), as a DeleteSecret event's says `deleted`/`delete`.
    let r = only(&doc);
    assert_eq!(
        (r["status"].as_str(), r["action"].as_str()),
        (Some("restored"), Some("restore")),
        "{doc}"
    );
}

#[tokio::test]
async fn a_delete_event_arriving_after_the_source_was_restored_leaves_the_copy_live() {
    let Followed {
        moto,
        ep: _,
        east,
        west_sm,
        source,
        app,
    } = followed().await;
    schedule_deletion(&east).await;
    restore(&east).await;
    moto.reset_calls();

    // The DeleteSecret event is processed only now, after the restore.
    let doc = ok(app.handle(&delete_event(&source)).await);

    let r = only(&doc);
    assert_ne!(r["status"], "deleted", "{doc}");
    assert_ne!(r["status"], "failed", "{doc}");
    assert_eq!(deleted_in(&describe(&west_sm, "app/db").await), None);
    assert_eq!(
        current(&west_sm, "app/db").await.as_deref(),
        Some("v1.us-west-2")
    );
    let ops: Vec<String> = write_calls(&moto)
        .into_iter()
        .map(|c| c.operation)
        .collect();
    assert!(!ops.contains(&"DeleteSecret".to_string()), "{ops:?}");
}

#[tokio::test]
async fn a_redelivered_delete_event_after_the_restore_brings_the_copy_back() {
    let Followed {
        moto: _moto,
        ep: _,
        east,
        west_sm,
        source,
        app,
    } = followed().await;
    schedule_deletion(&east).await;
    let doc = ok(app.handle(&delete_event(&source)).await);
    assert_eq!(only(&doc)["status"], "deleted", "{doc}");
    // The source is restored; its RestoreSecret event is lost, but the DeleteSecret event is
    // delivered a second time.
    restore(&east).await;

    let doc = ok(app.handle(&delete_event(&source)).await);

    assert_ne!(only(&doc)["status"], "failed", "{doc}");
    assert_eq!(
        deleted_in(&describe(&west_sm, "app/db").await),
        None,
        "the copy follows the live source: {doc}"
    );
    assert_eq!(
        current(&west_sm, "app/db").await.as_deref(),
        Some("v1.us-west-2")
    );
}

#[tokio::test]
async fn a_late_restore_event_after_the_source_was_deleted_again_leaves_the_copy_scheduled() {
    let Followed {
        moto,
        ep: _,
        east,
        west_sm,
        source,
        app,
    } = followed().await;
    let delete = || async {
        schedule_deletion(&east).await;
    };
    delete().await;
    let doc = ok(app.handle(&delete_event(&source)).await);
    assert_eq!(only(&doc)["status"], "deleted", "{doc}");
    // Restored, then deleted again; its second DeleteSecret event was already handled (the copy
    // is still scheduled), and only now does the RestoreSecret event arrive.
    restore(&east).await;
    delete().await;
    moto.reset_calls();

    let doc = ok(app.handle(&restore_event(&source)).await);

    assert_ne!(only(&doc)["status"], "failed", "{doc}");
    assert!(
        deleted_in(&describe(&west_sm, "app/db").await).is_some(),
        "the copy follows the source, which is scheduled for deletion: {doc}"
    );
    let ops: Vec<String> = write_calls(&moto)
        .into_iter()
        .map(|c| c.operation)
        .collect();
    assert!(ops.is_empty(), "{ops:?}");
}

// ---- 5. tags and description ----------------------------------------------------------------

fn metadata_config() -> String {
    json!({"rules": [{"match": ["app/**"], "destinations": [
        {"region": "us-west-2", "copy_tags": true, "copy_description": true},
        {"region": "us-west-2", "name": "plain/${SECRET_NAME}"}
    ]}]})
    .to_string()
}

#[tokio::test]
async fn tags_and_description_follow_the_source_and_the_marker_survives() {
    let w = World::start().await;
    let World {
        moto,
        east,
        west: west_sm,
    } = &w;
    let ep = moto.endpoint();
    let source = seed_tagged(
        east,
        "app/db",
        "v1",
        Some("Payments database"),
        &[
            ("team", "payments"),
            ("env", "prod"),
            ("aws:cloudformation:stack-name", "payments"),
        ],
    )
    .await;
    let marker = (MARKER.to_string(), marker_of(REGION, "app/db"));
    let app = app_with(&metadata_config(), &ep).await;

    // Create: user tags and description copied; aws:* never.
    let doc = ok(app.handle(&event(fixture::CREATE, &source)).await);
    assert_eq!(result_for(&doc, "app/db")["action"], "create", "{doc}");
    let d = describe(west_sm, "app/db").await;
    let mut want = pairs(&[("team", "payments"), ("env", "prod")]);
    want.push(marker.clone());
    want.sort();
    assert_eq!(tags_of(&d), want);
    assert_eq!(d.description(), Some("Payments database"));
    let plain = describe(west_sm, "plain/app/db").await;
    assert_eq!(tags_of(&plain), vec![marker.clone()]);
    assert_ne!(plain.description(), Some("Payments database"));

    // TagResource: one tag changed, one added.
    east.tag_resource()
        .secret_id("app/db")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("team")
                .value("platform")
                .build(),
        )
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("owner")
                .value("alice")
                .build(),
        )
        .send()
        .await
        .unwrap();
    moto.reset_calls();
    let doc = ok(app
        .handle(&tag_event(
            &source,
            &[("team", "platform"), ("owner", "alice")],
        ))
        .await);
    let r = result_for(&doc, "app/db");
    assert_eq!(
        (r["status"].as_str(), r["action"].as_str()),
        (Some("replicated"), Some("tags")),
        "{doc}"
    );
    let r = result_for(&doc, "plain/app/db");
    assert_eq!(
        (r["status"].as_str(), r["reason"].as_str()),
        (Some("skipped"), Some("tag_sync_off")),
        "{doc}"
    );
    let mut want = pairs(&[("team", "platform"), ("env", "prod"), ("owner", "alice")]);
    want.push(marker.clone());
    want.sort();
    assert_eq!(tags_of(&describe(west_sm, "app/db").await), want);
    assert_eq!(
        tags_of(&describe(west_sm, "plain/app/db").await),
        vec![marker.clone()]
    );
    let writes = write_calls(moto);
    assert!(
        writes
            .iter()
            .all(|w| w.operation == "TagResource" && body_names(&w.body, "app/db")),
        "{writes:?}"
    );
    // The value was not rewritten.
    assert_eq!(versions(west_sm, "app/db").await, 1);

    // UntagResource: the tag goes; the marker stays.
    east.untag_resource()
        .secret_id("app/db")
        .tag_keys("env")
        .send()
        .await
        .unwrap();
    let doc = ok(app.handle(&untag_event(&source, &["env"])).await);
    assert_eq!(result_for(&doc, "app/db")["action"], "tags", "{doc}");
    let mut want = pairs(&[("team", "platform"), ("owner", "alice")]);
    want.push(marker.clone());
    want.sort();
    assert_eq!(tags_of(&describe(west_sm, "app/db").await), want);

    // An UntagResource naming the marker key itself (on the source) never removes ours.
    let doc = ok(app.handle(&untag_event(&source, &[MARKER])).await);
    assert_ne!(result_for(&doc, "app/db")["status"], "failed", "{doc}");
    assert_eq!(
        tag(&describe(west_sm, "app/db").await, MARKER),
        Some(marker.1.clone())
    );

    // UpdateSecret with a new description.
    east.update_secret()
        .secret_id("app/db")
        .description("Payments database (v2 schema)")
        .send()
        .await
        .unwrap();
    moto.reset_calls();
    let doc = ok(app
        .handle(&update_event(
            &source,
            json!({"secretId": "app/db", "description": "Payments database (v2 schema)"}),
        ))
        .await);
    let r = result_for(&doc, "app/db");
    assert_eq!(r["status"], "replicated", "{doc}");
    eprintln!("UpdateSecret (description only) -> {r}");
    assert_eq!(
        versions(west_sm, "app/db").await,
        1,
        "no new version for a description"
    );
    assert_eq!(
        describe(west_sm, "app/db").await.description(),
        Some("Payments database (v2 schema)"),
        "UpdateSecret's new description did not reach the copy: {doc}"
    );
    assert_ne!(
        describe(west_sm, "plain/app/db").await.description(),
        Some("Payments database (v2 schema)")
    );
    let d = describe(west_sm, "app/db").await;
    assert_eq!(tag(&d, MARKER), Some(marker.1.clone()));
    assert!(!tags_of(&d).iter().any(|(k, _)| k.starts_with("aws:")));
    assert_eq!(current(west_sm, "app/db").await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn all_brings_tags_and_description_in_line() {
    let w = World::start().await;
    let World {
        moto,
        east,
        west: west_sm,
    } = &w;
    let ep = moto.endpoint();
    seed_tagged(
        east,
        "app/db",
        "v1",
        Some("first"),
        &[("team", "payments"), ("env", "prod")],
    )
    .await;
    let marker = (MARKER.to_string(), marker_of(REGION, "app/db"));
    let app = app_with(&metadata_config(), &ep).await;
    ok(app.handle(&manual_all()).await);

    // Changed by hand; no event reaches the function.
    east.tag_resource()
        .secret_id("app/db")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("cost-center")
                .value("42")
                .build(),
        )
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("aws:created-by")
                .value("console")
                .build(),
        )
        .send()
        .await
        .unwrap();
    east.untag_resource()
        .secret_id("app/db")
        .tag_keys("env")
        .send()
        .await
        .unwrap();
    east.update_secret()
        .secret_id("app/db")
        .description("second")
        .send()
        .await
        .unwrap();
    // And a tag added to the copy by hand, that the source does not have.
    west_sm
        .tag_resource()
        .secret_id("app/db")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("stray")
                .value("x")
                .build(),
        )
        .send()
        .await
        .unwrap();
    moto.reset_calls();

    let doc = ok(app.handle(&manual_all()).await);

    let r = result_for(&doc, "app/db");
    assert_eq!(r["status"], "replicated", "{doc}");
    assert!(
        r["action"] == "tags" || r["action"] == "description",
        "{doc}"
    );
    // The copy without metadata sync is in line: counted, not listed (SPEC §6).
    assert_eq!(doc["summary"]["unchanged"], 1, "{doc}");
    let d = describe(west_sm, "app/db").await;
    let mut want = pairs(&[("team", "payments"), ("cost-center", "42")]);
    want.push(marker.clone());
    want.sort();
    assert_eq!(tags_of(&d), want);
    assert_eq!(d.description(), Some("second"));
    assert_eq!(versions(west_sm, "app/db").await, 1);
    assert!(
        write_calls(moto)
            .iter()
            .all(|w| !body_names(&w.body, "plain/app/db")),
        "{:?}",
        write_calls(moto)
    );

    moto.reset_calls();
    let doc = ok(app.handle(&manual_all()).await);
    assert!(write_calls(moto).is_empty(), "{doc}");
    assert_eq!(statuses(&doc), BTreeMap::new(), "{doc}");
    assert_eq!(doc["summary"], json!({"unchanged": 2}));
}

#[tokio::test]
async fn without_copy_tags_a_tag_event_changes_nothing() {
    let w = World::start().await;
    let World {
        moto,
        east,
        west: west_sm,
    } = &w;
    let ep = moto.endpoint();
    let source = seed_tagged(east, "app/db", "v1", None, &[("team", "payments")]).await;
    let app = app_with(&west_copy(), &ep).await;
    ok(app.handle(&manual("app/db")).await);
    let before = tags_of(&describe(west_sm, "app/db").await);
    assert_eq!(
        before,
        vec![(MARKER.to_string(), marker_of(REGION, "app/db"))]
    );
    east.tag_resource()
        .secret_id("app/db")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("owner")
                .value("alice")
                .build(),
        )
        .send()
        .await
        .unwrap();
    moto.reset_calls();

    let doc = ok(app.handle(&tag_event(&source, &[("owner", "alice")])).await);

    let r = only(&doc);
    assert_eq!(
        (r["status"].as_str(), r["reason"].as_str()),
        (Some("skipped"), Some("tag_sync_off")),
        "{doc}"
    );
    assert!(write_calls(moto).is_empty(), "{:?}", write_calls(moto));
    assert_eq!(tags_of(&describe(west_sm, "app/db").await), before);
}

#[tokio::test]
async fn a_tag_event_for_a_copy_that_does_not_exist_is_skipped_with_a_reason() {
    let w = World::start().await;
    let World {
        moto,
        east,
        west: west_sm,
    } = &w;
    let ep = moto.endpoint();
    let source = seed_tagged(east, "app/db", "v1", None, &[("team", "payments")]).await;
    let app = app_with(&metadata_config(), &ep).await;
    moto.reset_calls();

    let doc = ok(app.handle(&tag_event(&source, &[("owner", "alice")])).await);

    assert!(write_calls(moto).is_empty(), "{:?}", write_calls(moto));
    assert!(!exists(west_sm, "app/db").await);
    // SPEC §7: `skipped` always carries a `reason`.
    let r = result_for(&doc, "app/db");
    assert_eq!(
        (r["status"].as_str(), r["reason"].as_str()),
        (Some("skipped"), Some("absent")),
        "{doc}"
    );
}

// ---- 6. deadline ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_stops_before_its_deadline_and_the_next_run_finishes() {
    const N: usize = 60;
    let w = World::start().await;
    let World {
        moto,
        east,
        west: west_sm,
    } = &w;
    let ep = moto.endpoint();
    let wanted: Vec<(String, String)> = (0..N)
        .map(|i| (format!("app/s-{i:03}"), format!("value {i} in us-east-1")))
        .collect();
    let seeded = seed_many(east, &wanted).await;
    let app = app_with(&west_copy(), &ep).await;
    moto.reset_calls();

    // Writes are paced at 25/s per destination region (one slot, no burst), so 60 creates take
    // well over the 0.5 s before the cutoff on any machine: the run stops starting new secrets
    // 1 s before the deadline, and leaves some. The sources in flight at the cutoff (at most 8)
    // get half a second more; one still in flight then is abandoned and remains.
    let started = Instant::now();
    let deadline = started + Duration::from_millis(1500);
    let doc = ok(app.handle_until(&manual_all(), Some(deadline)).await);
    let answered = started.elapsed();

    let remaining: Vec<String> = doc["remaining"]
        .as_array()
        .expect("remaining")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let done = doc["results"].as_array().unwrap().len();
    eprintln!(
        "deadline run: {done} done, {} remaining, answered after {answered:?} (deadline 1.5 s)",
        remaining.len()
    );
    assert!(!remaining.is_empty(), "the run did not stop early: {doc}");
    assert_eq!(done + remaining.len(), N, "{doc}");
    let calls = moto.calls();
    // Only a source abandoned in flight can remain and have been reached: one of the first 8
    // remaining (in flight at once); nothing after those was started.
    let reached = |name: &str| calls.iter().any(|c| body_names(&c.body, name));
    let in_flight = secret_replicator::replicate::backfill::ALL_CONCURRENCY;
    for (i, name) in remaining.iter().enumerate() {
        if i >= in_flight {
            assert!(!exists(west_sm, name).await, "{name} was written");
            assert!(!reached(name), "{name} is in remaining but was reached");
        }
    }
    let abandoned: Vec<&String> = remaining.iter().filter(|n| reached(n)).collect();
    for r in doc["results"].as_array().unwrap() {
        assert_eq!(r["status"], "replicated", "{r}");
    }

    // The next run, without a deadline, finishes them.
    moto.reset_calls();
    let doc = ok(app.handle(&manual_all()).await);
    assert_eq!(doc["remaining"], json!([]));
    let mut created: Vec<String> = write_calls(moto)
        .into_iter()
        .filter(|c| c.operation == "CreateSecret")
        .map(|c| serde_json::from_str::<Value>(&c.body).unwrap()["Name"].to_string())
        .collect();
    created.sort();
    created.dedup();
    // Exactly the rest, but for a copy an abandoned create had already made.
    let mut want_created: Vec<String> = remaining.iter().map(|n| json!(n).to_string()).collect();
    want_created.sort();
    let missing: Vec<&String> = want_created
        .iter()
        .filter(|n| !created.contains(n))
        .collect();
    assert!(
        created.iter().all(|n| want_created.contains(n)),
        "the next run creates only the rest: {created:?}"
    );
    let abandoned_names: Vec<String> = abandoned.iter().map(|a| json!(a).to_string()).collect();
    assert!(
        missing.iter().all(|n| abandoned_names.contains(n)),
        "the next run creates the rest: {missing:?} not created, {abandoned:?} abandoned"
    );
    let mut names = list_names(west_sm).await;
    names.sort();
    let want: Vec<String> = seeded.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, want);
    for s in seeded.iter().step_by(13) {
        assert_eq!(
            current(west_sm, &s.name).await,
            Some(west(&wanted[s.name[6..].parse::<usize>().unwrap()].1))
        );
    }
}

// ---- 7. failOnError -------------------------------------------------------------------------

#[tokio::test]
async fn fail_on_error_turns_a_failed_all_run_into_an_error() {
    let w = World::start().await;
    let World {
        moto,
        east,
        west: west_sm,
    } = &w;
    let ep = moto.endpoint();
    seed_secret(east, "app/good", "g.us-east-1").await;
    let bad = seed_secret(east, "app/bad", "b.us-east-1").await;
    seed_secret(west_sm, "app/bad", "not ours").await;
    let app = app_with(&west_copy(), &ep).await;

    let doc = ok(app.handle(&manual_all()).await);
    assert_eq!(doc["statusCode"], 207, "{doc}");
    let r = results_of(&doc, &bad)[0];
    assert_error(r, "DestinationConflict", 409, "permanent");
    assert_eq!(result_for(&doc, "app/good")["status"], "replicated");

    let res = app
        .handle(&json!({"source": "manual", "all": true, "failOnError": true}))
        .await;
    let Err(Failure(report)) = res else {
        panic!("failOnError: a failed run must be an error");
    };
    let doc = common::app::doc(&report);
    assert_eq!(doc["statusCode"], 207, "{doc}");
    assert_error(
        results_of(&doc, &bad)[0],
        "DestinationConflict",
        409,
        "permanent",
    );
    // The good copy is in line: counted, not listed (SPEC §6).
    assert_eq!(
        doc["summary"],
        json!({"failed": 1, "unchanged": 1}),
        "{doc}"
    );
    assert_eq!(
        current(west_sm, "app/bad").await.as_deref(),
        Some("not ours")
    );

    // Nothing failing: failOnError changes nothing.
    let app = app_with(
        &json!({"rules": [{"match": ["app/good"], "destinations": [{"region": "us-west-2"}]}]})
            .to_string(),
        &ep,
    )
    .await;
    let doc = ok(app
        .handle(&json!({"source": "manual", "all": true, "failOnError": true}))
        .await);
    assert_eq!(doc["statusCode"], 200, "{doc}");
}
