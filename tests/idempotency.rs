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
