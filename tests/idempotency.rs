//! Duplicates, retries, late and out-of-order events, repairs, and the Secrets Manager call
//! budget per replication (SPEC §5, §8).

// The SDK call futures nest deeply; the default limit (128) is too low for their layout.
#![recursion_limit = "256"]

mod common;

use common::Moto;
use common::app::*;
use common::world::World;
use serde_json::{Value, json};

fn west_copy() -> String {
    json!({"rules": [{"match": ["app/**"], "destinations": [{"region": "us-west-2"}]}]}).to_string()
}

/// A PutSecretValue event naming the version it created, as CloudTrail reports it.
fn put_event_for_version(source: &Seeded, version: &str) -> Value {
    let mut e = put_event(source);
    e["detail"]["requestParameters"]["clientRequestToken"] = Value::String(version.to_string());
    e
}

#[tokio::test]
async fn a_duplicate_event_writes_no_new_version() {
    let w = World::start().await;
    let World { west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let app = w.app(&west_copy()).await;
    let event = put_event(&source);

    let first = ok(app.handle(&event).await);
    let second = ok(app.handle(&event).await);

    assert_eq!(versions(west, "app/db").await, 1);
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v1"));
    // Both name the same (deterministic) version.
    assert_eq!(only(&first)["versionId"], only(&second)["versionId"]);
    assert_eq!(only(&second)["status"], "replicated", "{second}");
}

#[tokio::test]
async fn a_retried_invocation_in_a_fresh_container_writes_no_new_version() {
    let w = World::start().await;
    let World { east, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    put_value(east, "app/db", "v2").await;
    let event = put_event(&source);

    ok(w.app(&west_copy()).await.handle(&event).await);
    // Lambda's async retry may land in another container: no shared memory, same token.
    let retry = ok(w.app(&west_copy()).await.handle(&event).await);

    assert_eq!(only(&retry)["status"], "replicated", "{retry}");
    assert_eq!(versions(west, "app/db").await, 1);
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v2"));
    assert_eq!(versions(east, "app/db").await, 2);
}

#[tokio::test]
async fn a_cross_account_duplicate_writes_no_new_version() {
    let w = World::start().await;
    let World { moto, east, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let config = json!({"rules": [{"destinations": [
        {"region": "us-east-1", "account_role_arn": DEST_ROLE, "external_id": EXTERNAL_ID}
    ]}]})
    .to_string();
    let event = put_event(&source);
    ok(w.app(&config).await.handle(&event).await);
    ok(w.app(&config).await.handle(&event).await);

    let dest = dest_client(&moto.endpoint(), DEST_ACCOUNT, "us-east-1").await;
    assert_eq!(versions(&dest, "app/db").await, 1);
    assert_eq!(current(&dest, "app/db").await.as_deref(), Some("v1"));
    // Same name, same region, other account: the source is untouched.
    assert_eq!(versions(east, "app/db").await, 1);
}

#[tokio::test]
async fn a_replication_stays_within_the_secrets_manager_call_budget() {
    let w = World::start().await;
    let World { moto, east, west } = &w;
    let source = w.seed("app/db", "v1").await;
    let app = w.app(&west_copy()).await;
    let event = put_event(&source);

    // First write to a new destination: read, ownership check, CreateSecret, re-read.
    moto.reset_calls();
    ok(app.handle(&event).await);
    let first = sm_ops(moto);

    // Steady state: a new source value in a warm container.
    put_value(east, "app/db", "v2").await;
    moto.reset_calls();
    ok(app.handle(&event).await);
    let steady = sm_ops(moto);

    // A duplicate of that event.
    moto.reset_calls();
    ok(app.handle(&event).await);
    let duplicate = sm_ops(moto);

    // First write to an existing, owned destination from a fresh container.
    put_value(east, "app/db", "v3").await;
    let fresh = w.app(&west_copy()).await;
    moto.reset_calls();
    ok(fresh.handle(&event).await);
    let cold = sm_ops(moto);

    eprintln!(
        "call budget: first write to a new destination: {} {first:?}",
        first.len()
    );
    eprintln!("call budget: steady state: {} {steady:?}", steady.len());
    eprintln!(
        "call budget: duplicate event: {} {duplicate:?}",
        duplicate.len()
    );
    eprintln!(
        "call budget: first write from a fresh container: {} {cold:?}",
        cold.len()
    );
    assert!(first.len() <= 4, "first write: {first:?}");
    assert!(steady.len() <= 3, "steady state: {steady:?}");
    assert!(duplicate.len() <= 3, "duplicate: {duplicate:?}");
    assert!(cold.len() <= 4, "fresh container: {cold:?}");
    // CreateSecret carries the value: no separate PutSecretValue or TagResource on create.
    assert_eq!(
        first.iter().filter(|o| *o == "CreateSecret").count(),
        1,
        "{first:?}"
    );
    assert!(
        !first
            .iter()
            .any(|o| o == "PutSecretValue" || o == "TagResource"),
        "{first:?}"
    );
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v3"));
    // The source is always read at AWSCURRENT, asked for explicitly (SPEC §5).
    let reads: Vec<_> = moto
        .calls()
        .into_iter()
        .filter(|c| c.operation == "GetSecretValue")
        .collect();
    assert!(!reads.is_empty());
    for read in &reads {
        let body: Value = serde_json::from_str(&read.body).unwrap();
        assert_eq!(body["VersionStage"], "AWSCURRENT", "{body}");
        assert!(body.get("VersionId").is_none(), "{body}");
    }
    // No KMS or STS calls for a same-account destination without a key.
    let other: Vec<_> = moto
        .calls()
        .into_iter()
        .filter(|c| c.service != "secretsmanager")
        .collect();
    assert!(other.is_empty(), "{other:?}");
}

#[tokio::test]
async fn events_delivered_out_of_order_leave_the_destination_at_the_current_value() {
    let w = World::start().await;
    let World { east, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let v2 = put_value(east, "app/db", "v2").await;
    let app = w.app(&west_copy()).await;
    let event_v1 = put_event_for_version(&source, &source.version);
    let event_v2 = put_event_for_version(&source, &v2);

    ok(app.handle(&event_v2).await);
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v2"));
    ok(app.handle(&event_v1).await);
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v2"));
    assert_eq!(versions(west, "app/db").await, 1);
}

#[tokio::test]
async fn a_late_event_for_an_older_version_does_not_roll_the_destination_back() {
    let w = World::start().await;
    let World { east, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let app = w.app(&west_copy()).await;
    ok(app
        .handle(&put_event_for_version(&source, &source.version))
        .await);
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v1"));

    let v2 = put_value(east, "app/db", "v2").await;
    let v3 = put_value(east, "app/db", "v3").await;
    ok(app.handle(&put_event_for_version(&source, &v3)).await);
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v3"));
    // The v2 event arrives last, from a fresh container too.
    let late = put_event_for_version(&source, &v2);
    ok(app.handle(&late).await);
    ok(w.app(&west_copy()).await.handle(&late).await);

    assert_eq!(current(west, "app/db").await.as_deref(), Some("v3"));
    assert_eq!(
        versions(west, "app/db").await,
        2,
        "v1 and v3 were written, v2 never"
    );
}

#[tokio::test]
async fn a_hand_edited_destination_is_repaired_by_the_next_event_for_the_unchanged_source() {
    let w = World::start().await;
    let World { west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let app = w.app(&west_copy()).await;
    ok(app.handle(&put_event(&source)).await);
    put_value(west, "app/db", "edited by hand").await;

    let doc = ok(app.handle(&put_event(&source)).await);

    let r = only(&doc);
    assert_eq!(r["status"], "replicated", "{doc}");
    assert_eq!(r["action"], "label", "{doc}");
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v1"));
    // AWSCURRENT went back to the replicator's version; nothing new was written.
    assert_eq!(versions(west, "app/db").await, 2);
    assert_eq!(
        r["versionId"],
        current_version(west, "app/db").await.as_str()
    );
}

#[tokio::test]
async fn a_source_rollback_is_repaired_by_the_next_event() {
    let w = World::start().await;
    let World { east, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let app = w.app(&west_copy()).await;
    ok(app.handle(&put_event(&source)).await);
    let v2 = put_value(east, "app/db", "v2").await;
    ok(app.handle(&put_event(&source)).await);
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v2"));

    // Roll the source back: AWSCURRENT moves to v1 again.
    east.update_secret_version_stage()
        .secret_id("app/db")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&source.version)
        .remove_from_version_id(&v2)
        .send()
        .await
        .expect("rollback");
    assert_eq!(current(east, "app/db").await.as_deref(), Some("v1"));
    let mut rollback = event(fixture::UPDATE_STAGE, &source);
    rollback["detail"]["requestParameters"]["moveToVersionId"] = json!(source.version);
    rollback["detail"]["requestParameters"]["removeFromVersionId"] = json!(v2);
    let doc = ok(app.handle(&rollback).await);

    let r = only(&doc);
    assert_eq!(r["status"], "replicated", "{doc}");
    assert_eq!(r["action"], "label", "{doc}");
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v1"));
    assert_eq!(versions(west, "app/db").await, 2);
}

#[tokio::test]
async fn a_changed_transform_writes_a_new_version_for_an_unchanged_source() {
    let w = World::start().await;
    let World { west, .. } = &w;
    let source = w.seed("app/db", "env=ENV").await;
    let with_env = |env: &str| {
        json!({"rules": [{"destinations": [{
            "region": "us-west-2",
            "transforms": [{"sed": "s/ENV/${ENV}/"}],
            "variables": {"ENV": env}
        }]}]})
        .to_string()
    };
    let event = put_event(&source);
    ok(w.app(&with_env("blue")).await.handle(&event).await);
    assert_eq!(current(west, "app/db").await.as_deref(), Some("env=blue"));

    // A new deployment with another variable value: the same event rewrites the copy.
    let doc = ok(w.app(&with_env("green")).await.handle(&event).await);

    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(current(west, "app/db").await.as_deref(), Some("env=green"));
    assert_eq!(versions(west, "app/db").await, 2);
    // And replaying it again writes nothing new.
    ok(w.app(&with_env("green")).await.handle(&event).await);
    assert_eq!(versions(west, "app/db").await, 2);
}

#[tokio::test]
async fn concurrent_invocations_converge_on_the_source_current_value() {
    use common::{Fault, FaultProxy, Match, Rule};
    use std::time::Duration;
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr());
    let east = sm(&moto.endpoint(), "us-east-1").await;
    let west = sm(&moto.endpoint(), "us-west-2").await;
    let source = seed_secret(&east, "app/db", "value-one").await;
    // The slow invocation's CreateSecret (carrying the old value) arrives late.
    proxy.add_rule(Rule::new(
        Match::op("CreateSecret").body_contains("value-one"),
        Fault::Delay(Duration::from_millis(1500)),
    ));
    let slow = app_from(
        settings(&west_copy(), &[]),
        sdk_config(&proxy.endpoint()).await,
    )
    .await;
    let fast = app_with(&west_copy(), &moto.endpoint()).await;
    let event = put_event(&source);

    let (slow_doc, fast_doc) = tokio::join!(slow.handle(&event), async {
        // The source changes once the slow invocation's create (with the old value) has
        // reached the proxy and is held there: that order is the case under test, and waiting
        // for it, rather than sleeping a guess, makes it the order on any machine.
        let guard = std::time::Instant::now() + Duration::from_secs(60);
        while proxy.hits("CreateSecret") == 0 {
            assert!(
                std::time::Instant::now() < guard,
                "the slow create never came"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        put_value(&east, "app/db", "value-two").await;
        fast.handle(&event).await
    });

    let (slow_doc, fast_doc) = (ok(slow_doc), ok(fast_doc));
    assert_eq!(
        proxy.faults("CreateSecret"),
        1,
        "the slow create was delayed"
    );
    assert_eq!(only(&fast_doc)["status"], "replicated", "{fast_doc}");
    assert_eq!(only(&slow_doc)["status"], "replicated", "{slow_doc}");
    // Whatever the interleaving, the copy ends at the source's current value.
    assert_eq!(current(&west, "app/db").await.as_deref(), Some("value-two"));
    assert_eq!(
        tag(&describe(&west, "app/db").await, MARKER),
        Some(marker_of("us-east-1", "app/db"))
    );
}

#[tokio::test]
async fn a_token_already_used_with_another_value_is_resolved_with_a_fresh_token() {
    use aws_sdk_secretsmanager::types::Tag;
    let w = World::start().await;
    let World { west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let event = put_event(&source);
    let first = ok(w.app(&west_copy()).await.handle(&event).await);
    let token = only(&first)["versionId"].as_str().unwrap().to_string();
    // Recreate the (owned) destination with that token holding another value.
    west.delete_secret()
        .secret_id("app/db")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    west.create_secret()
        .name("app/db")
        .secret_string("something else")
        .client_request_token(&token)
        .tags(
            Tag::builder()
                .key(MARKER)
                .value(marker_of("us-east-1", "app/db"))
                .build(),
        )
        .send()
        .await
        .unwrap();

    let doc = ok(w.app(&west_copy()).await.handle(&event).await);

    let r = only(&doc);
    assert_eq!(r["status"], "replicated", "{doc}");
    let fresh = r["versionId"].as_str().unwrap();
    assert_ne!(fresh, token);
    assert!(
        secret_replicator::token::is_replicator_token(fresh),
        "{fresh}"
    );
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v1"));
    assert_eq!(current_version(west, "app/db").await, fresh);
}

// The stale first read (SPEC §5): a PutSecretValue or CreateSecret record names the version it
// made (`requestParameters.clientRequestToken`); the first source read is checked against it.
// The fault proxy answers reads from before a write (its eventual-consistency mode), with a
// window far longer than any test, so no verdict depends on how fast the machine is.

/// moto behind the proxy, a source `app/db` at v1 read once through the proxy (so the proxy can
/// answer that read again later), the App talking to the proxy.
struct Stale {
    moto: Moto,
    proxy: common::FaultProxy,
    /// Admin client through the proxy: its writes open the proxy's stale windows.
    east: aws_sdk_secretsmanager::Client,
    west: aws_sdk_secretsmanager::Client,
    source: Seeded,
    app: secret_replicator::app::App<secret_replicator::aws::AwsStores>,
}

async fn stale_rig() -> Stale {
    let moto = Moto::start();
    let proxy = common::FaultProxy::start(moto.addr());
    let east = sm(&proxy.endpoint(), "us-east-1").await;
    let west = sm(&moto.endpoint(), "us-west-2").await;
    let source = seed_secret(&east, "app/db", "v1").await;
    assert_eq!(current(&east, "app/db").await.as_deref(), Some("v1"));
    let sdk = fast_retry_sdk_config(&proxy.endpoint(), None).await;
    let app = app_from(settings(&west_copy(), &[]), sdk).await;
    Stale {
        moto,
        proxy,
        east,
        west,
        source,
        app,
    }
}

/// The proxy answers every read of a secret written from now on with its state from before the
/// write, for far longer than the test runs.
fn reads_stay_stale(proxy: &common::FaultProxy) {
    proxy.stale_reads(1.0, std::time::Duration::from_secs(3600), 11);
}

/// The record of a call made just now (the guard is armed only by events under 15 minutes old).
fn just_now(mut e: Value) -> Value {
    let now = secret_replicator::time::format_rfc3339(std::time::SystemTime::now());
    e["detail"]["eventTime"] = Value::String(now.clone());
    e["time"] = Value::String(now);
    e
}

#[tokio::test]
async fn a_first_read_that_answers_the_previous_version_never_writes_it() {
    let r = stale_rig().await;
    reads_stay_stale(&r.proxy);
    // Reads by VersionId are fresh: only the first read, by stage, lags.
    r.proxy.add_rule(common::Rule::new(
        common::Match::op("GetSecretValue").body_contains("\"VersionId\""),
        common::Fault::Pass,
    ));
    let v2 = put_value(&r.east, "app/db", "v2").await;
    r.moto.reset_calls();

    let doc = ok(r
        .app
        .handle(&just_now(put_event_for_version(&r.source, &v2)))
        .await);

    assert_eq!(doc["statusCode"], 200, "{doc}");
    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert!(
        r.proxy.faults("GetSecretValue") >= 1,
        "the first read was answered stale"
    );
    assert_eq!(current(&r.west, "app/db").await.as_deref(), Some("v2"));
    // One version only: v1 was never written, not even for a moment.
    assert_eq!(versions(&r.west, "app/db").await, 1);
    assert_eq!(writes(&r.moto), ["CreateSecret"]);
}

#[tokio::test]
async fn a_version_no_read_shows_yet_is_retriable_and_nothing_is_written() {
    let r = stale_rig().await;
    reads_stay_stale(&r.proxy);
    let v2 = put_value(&r.east, "app/db", "v2").await;

    let doc = failed(
        r.app
            .handle(&just_now(put_event_for_version(&r.source, &v2)))
            .await,
    );

    assert_eq!(doc["statusCode"], 502, "{doc}");
    assert_eq!(doc["retryClass"], "retriable", "{doc}");
    assert!(!exists(&r.west, "app/db").await, "nothing written");
}

#[tokio::test]
async fn a_put_processed_after_a_rollback_replicates_the_rolled_back_value() {
    let r = stale_rig().await;
    let v2 = put_value(&r.east, "app/db", "v2").await;
    // Rolled back before the put's event is processed.
    r.east
        .update_secret_version_stage()
        .secret_id("app/db")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&r.source.version)
        .remove_from_version_id(&v2)
        .send()
        .await
        .expect("roll back");

    let doc = ok(r
        .app
        .handle(&just_now(put_event_for_version(&r.source, &v2)))
        .await);

    assert_eq!(doc["statusCode"], 200, "{doc}");
    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(current(&r.west, "app/db").await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn a_duplicate_record_of_an_idempotent_put_replicates() {
    let r = stale_rig().await;
    let token = "0f0e0d0c-0b0a-4909-8807-060504030201";
    for _ in 0..2 {
        // A retried PutSecretValue with the same token and value: AWS ignores the second.
        r.east
            .put_secret_value()
            .secret_id("app/db")
            .secret_string("v2")
            .client_request_token(token)
            .send()
            .await
            .expect("idempotent put");
    }
    let event = just_now(put_event_for_version(&r.source, token));

    let first = ok(r.app.handle(&event).await);
    let second = ok(r.app.handle(&event).await);

    assert_eq!(only(&first)["status"], "replicated", "{first}");
    assert_eq!(second["statusCode"], 200, "{second}");
    assert_eq!(only(&second)["status"], "replicated", "{second}");
    assert_eq!(current(&r.west, "app/db").await.as_deref(), Some("v2"));
    assert_eq!(versions(&r.west, "app/db").await, 1);
}

#[tokio::test]
async fn a_rotation_whose_version_was_created_a_minute_before_the_event_replicates() {
    let r = stale_rig().await;
    // Rotation's first step made v2 (AWSPENDING), its last moved AWSCURRENT; the service event
    // comes after both: its eventTime is a minute after the version's CreatedDate.
    let v2 = put_value(&r.east, "app/db", "rotated").await;
    let mut e = event(common::app::fixture::ROTATION_SUCCEEDED, &r.source);
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    let later = secret_replicator::time::format_rfc3339(later);
    e["detail"]["eventTime"] = Value::String(later.clone());
    e["time"] = Value::String(later);

    let doc = ok(r.app.handle(&e).await);

    assert_eq!(doc["statusCode"], 200, "{doc}");
    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(current(&r.west, "app/db").await.as_deref(), Some("rotated"));
    assert_eq!(current_version(&r.east, "app/db").await, v2);
}
