//! Ownership of destinations (SPEC §8): the marker tag, adoption, conflicts, destinations
//! scheduled for deletion, and native replicas.
//!
//! Every test runs twice (SPEC §12): on the launcher answering `PrimaryRegion` as real AWS was
//! recorded (absent on a primary without replicas; module `recorded`) and on it answering it on
//! every secret as the documentation reads (module `every`). The three shapes a destination can
//! show: absent (a plain primary, `recorded`), present and equal to its own region (a primary
//! with replicas; any primary under `every`), present and different (a native replica).

// The SDK call futures nest deeply; the default limit (128) is too low for their layout.
#![recursion_limit = "256"]

mod common;

use common::world::World;

use aws_sdk_secretsmanager::types::Tag;
use common::app::*;
use common::{Fault, FaultProxy, Match, Moto, PrimaryRegion, Rule};
use serde_json::json;

/// Each named `async fn(PrimaryRegion)` as two tests, `recorded::NAME` and `every::NAME`.
macro_rules! both_shapes {
    ($($name:ident),* $(,)?) => {
        mod recorded {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::PrimaryRegion::Recorded).await
                }
            )*
        }
        mod every {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::PrimaryRegion::Every).await
                }
            )*
        }
    };
}

both_shapes!(
    an_existing_destination_without_the_marker_is_not_written,
    adopt_takes_over_an_existing_destination_and_tags_it,
    a_destination_whose_marker_names_another_source_is_never_written,
    an_owned_destination_scheduled_for_deletion_is_restored_and_written,
    an_unowned_destination_scheduled_for_deletion_is_not_restored,
    an_owned_destination_deleted_while_the_container_is_warm_is_restored_when_the_write_is_refused,
    a_fresh_container_refuses_a_destination_that_someone_else_recreated,
    an_owned_plain_primary_is_written_whatever_its_primary_region_shows,
    an_owned_primary_with_a_native_replica_is_written,
    a_native_replica_at_the_destination_is_never_written,
    an_all_run_leaves_an_owned_copy_with_a_native_replica_alone,
);

/// `PrimaryRegion` of a secret in us-west-2 that is a primary: what the launcher was told to
/// answer (`None` as recorded for a primary without replicas).
fn primary_shape(shape: PrimaryRegion, has_replicas: bool) -> Option<&'static str> {
    (shape == PrimaryRegion::Every || has_replicas).then_some("us-west-2")
}

/// Adds a native (Secrets Manager) replica of `id` in `region`, as its owner would.
async fn replicate_natively(sm: &aws_sdk_secretsmanager::Client, id: &str, region: &str) {
    sm.replicate_secret_to_regions()
        .secret_id(id)
        .add_replica_regions(
            aws_sdk_secretsmanager::types::ReplicaRegionType::builder()
                .region(region)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("ReplicateSecretToRegions {id} to {region}: {e:?}"));
}

fn west_copy(adopt: bool) -> String {
    json!({"rules": [{"match": ["app/**"], "destinations": [
        {"region": "us-west-2", "adopt": adopt}
    ]}]})
    .to_string()
}

async fn an_existing_destination_without_the_marker_is_not_written(shape: PrimaryRegion) {
    let w = World::with_primary_region(shape).await;
    let World { moto, west, .. } = &w;
    let source = w.seed("app/db", "from the source").await;
    seed_secret(west, "app/db", "someone else's").await;
    let app = w.app(&west_copy(false)).await;
    moto.reset_calls();

    let doc = failed(app.handle(&put_event(&source)).await);

    let r = only(&doc);
    assert_eq!(r["status"], "failed", "{doc}");
    assert_error(r, "DestinationConflict", 409, "permanent");
    assert_eq!(doc["statusCode"], 409, "{doc}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("adopt"),
        "{doc}"
    );
    assert!(writes(moto).is_empty(), "{:?}", writes(moto));
    assert_eq!(
        current(west, "app/db").await.as_deref(),
        Some("someone else's")
    );
    assert_eq!(versions(west, "app/db").await, 1);
    assert_eq!(tag(&describe(west, "app/db").await, MARKER), None);
}

async fn adopt_takes_over_an_existing_destination_and_tags_it(shape: PrimaryRegion) {
    let w = World::with_primary_region(shape).await;
    let World { east, west, .. } = &w;
    let source = w.seed("app/db", "from the source").await;
    seed_secret(west, "app/db", "someone else's").await;
    let app = w.app(&west_copy(true)).await;

    let doc = ok(app.handle(&put_event(&source)).await);

    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(
        current(west, "app/db").await.as_deref(),
        Some("from the source")
    );
    let d = describe(west, "app/db").await;
    assert_eq!(tag(&d, MARKER), Some(marker_of("us-east-1", "app/db")));

    // Once adopted it is owned: a fresh container without `adopt` writes it too.
    put_value(east, "app/db", "v2").await;
    let doc = ok(w
        .app(&west_copy(false))
        .await
        .handle(&put_event(&source))
        .await);
    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v2"));
}

async fn a_destination_whose_marker_names_another_source_is_never_written(shape: PrimaryRegion) {
    let w = World::with_primary_region(shape).await;
    let World { moto, west, .. } = &w;
    let source = w.seed("app/db", "from the source").await;
    west.create_secret()
        .name("app/db")
        .secret_string("replica of another secret")
        .tags(
            Tag::builder()
                .key(MARKER)
                .value(marker_of("us-east-1", "app/other"))
                .build(),
        )
        .send()
        .await
        .unwrap();

    for adopt in [false, true] {
        let app = w.app(&west_copy(adopt)).await;
        moto.reset_calls();
        let doc = failed(app.handle(&put_event(&source)).await);
        assert_error(only(&doc), "DestinationConflict", 409, "permanent");
        assert!(writes(moto).is_empty(), "adopt {adopt}: {:?}", writes(moto));
    }
    assert_eq!(
        current(west, "app/db").await.as_deref(),
        Some("replica of another secret")
    );
    assert_eq!(
        tag(&describe(west, "app/db").await, MARKER),
        Some(marker_of("us-east-1", "app/other"))
    );
}

async fn an_owned_destination_scheduled_for_deletion_is_restored_and_written(shape: PrimaryRegion) {
    let w = World::with_primary_region(shape).await;
    let World { moto, east, west } = &w;
    let source = w.seed("app/db", "v1").await;
    ok(w.app(&west_copy(false))
        .await
        .handle(&put_event(&source))
        .await);
    west.delete_secret()
        .secret_id("app/db")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert!(describe(west, "app/db").await.deleted_date().is_some());
    put_value(east, "app/db", "v2").await;

    let app = w.app(&west_copy(false)).await;
    moto.reset_calls();
    let doc = ok(app.handle(&put_event(&source)).await);

    assert_eq!(only(&doc)["status"], "restored", "{doc}");
    assert_eq!(only(&doc)["action"], "restore", "{doc}");
    assert_eq!(moto.count("RestoreSecret"), 1);
    assert!(describe(west, "app/db").await.deleted_date().is_none());
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v2"));
}

async fn an_unowned_destination_scheduled_for_deletion_is_not_restored(shape: PrimaryRegion) {
    let w = World::with_primary_region(shape).await;
    let World { moto, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    seed_secret(west, "app/db", "theirs").await;
    west.delete_secret()
        .secret_id("app/db")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    let app = w.app(&west_copy(false)).await;
    moto.reset_calls();

    let doc = failed(app.handle(&put_event(&source)).await);

    assert_error(only(&doc), "DestinationConflict", 409, "permanent");
    assert!(writes(moto).is_empty(), "{:?}", writes(moto));
    assert!(describe(west, "app/db").await.deleted_date().is_some());
}

async fn an_owned_destination_deleted_while_the_container_is_warm_is_restored_when_the_write_is_refused(
    shape: PrimaryRegion,
) {
    let moto = Moto::start_with_primary_region(shape);
    let proxy = FaultProxy::start(moto.addr());
    let east = sm(&moto.endpoint(), "us-east-1").await;
    let west = sm(&moto.endpoint(), "us-west-2").await;
    let source = seed_secret(&east, "app/db", "v1").await;
    let app = app_from(
        settings(&west_copy(false), &[]),
        sdk_config(&proxy.endpoint()).await,
    )
    .await;
    ok(app.handle(&put_event(&source)).await);
    west.delete_secret()
        .secret_id("app/db")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    put_value(&east, "app/db", "v2").await;
    // Real Secrets Manager refuses writes to a secret scheduled for deletion (moto does not).
    proxy.add_rule(
        Rule::new(
            Match::op("PutSecretValue"),
            Fault::json_error(
                400,
                "InvalidRequestException",
                "You can't perform this operation on the secret because it was marked for deletion.",
            ),
        )
        .times(1),
    );
    moto.reset_calls();

    let doc = ok(app.handle(&put_event(&source)).await);

    assert_eq!(only(&doc)["status"], "restored", "{doc}");
    assert_eq!(only(&doc)["action"], "restore", "{doc}");
    assert_eq!(moto.count("RestoreSecret"), 1);
    assert!(describe(&west, "app/db").await.deleted_date().is_none());
    assert_eq!(current(&west, "app/db").await.as_deref(), Some("v2"));
}

async fn a_fresh_container_refuses_a_destination_that_someone_else_recreated(shape: PrimaryRegion) {
    let w = World::with_primary_region(shape).await;
    let World { east, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let app = w.app(&west_copy(false)).await;
    ok(app.handle(&put_event(&source)).await);
    // Deleted for good, then someone else creates a secret of that name.
    west.delete_secret()
        .secret_id("app/db")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    seed_secret(west, "app/db", "someone else's").await;
    put_value(east, "app/db", "v2").await;

    // The ownership check runs once per warm container: the next write cannot know. A fresh
    // container checks again and refuses.
    let fresh = w.app(&west_copy(false)).await;
    let doc = failed(fresh.handle(&put_event(&source)).await);

    assert_error(only(&doc), "DestinationConflict", 409, "permanent");
    assert_eq!(
        current(west, "app/db").await.as_deref(),
        Some("someone else's")
    );
}

// ---- the three shapes of PrimaryRegion (SPEC §12) ------------------------------------------------

/// Absent (recorded) or present and equal (every): an owned plain primary is ours to write.
async fn an_owned_plain_primary_is_written_whatever_its_primary_region_shows(shape: PrimaryRegion) {
    let w = World::with_primary_region(shape).await;
    let World { east, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    ok(w.app(&west_copy(false))
        .await
        .handle(&put_event(&source))
        .await);
    assert_eq!(
        describe(west, "app/db").await.primary_region(),
        primary_shape(shape, false)
    );
    put_value(east, "app/db", "v2").await;

    let doc = ok(w
        .app(&west_copy(false))
        .await
        .handle(&put_event(&source))
        .await);

    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v2"));
}

/// Present and equal to its own region, in both shapes: a primary that has a native replica of
/// its own is still a primary, and ours.
async fn an_owned_primary_with_a_native_replica_is_written(shape: PrimaryRegion) {
    let w = World::with_primary_region(shape).await;
    let World { moto, east, west } = &w;
    let source = w.seed("app/db", "v1").await;
    ok(w.app(&west_copy(false))
        .await
        .handle(&put_event(&source))
        .await);
    replicate_natively(west, "app/db", "eu-west-1").await;
    assert_eq!(
        describe(west, "app/db").await.primary_region(),
        primary_shape(shape, true)
    );
    put_value(east, "app/db", "v2").await;

    let app = w.app(&west_copy(false)).await;
    moto.reset_calls();
    let doc = ok(app.handle(&put_event(&source)).await);

    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v2"));
    assert_eq!(writes(moto), ["PutSecretValue"], "{:?}", writes(moto));
}

/// Present and different from its own region: a native replica (here of the source itself,
/// replicated by Secrets Manager to the destination's region) is refused, `adopt` or not, and
/// never written.
async fn a_native_replica_at_the_destination_is_never_written(shape: PrimaryRegion) {
    let w = World::with_primary_region(shape).await;
    let World { moto, east, west } = &w;
    let source = w.seed("app/db", "v1").await;
    replicate_natively(east, "app/db", "us-west-2").await;
    let d = describe(west, "app/db").await;
    assert_eq!(d.primary_region(), Some("us-east-1"));
    assert!(d.arn().is_some_and(|a| a.contains(":us-west-2:")), "{d:?}");

    for adopt in [false, true] {
        let app = w.app(&west_copy(adopt)).await;
        moto.reset_calls();
        let doc = failed(app.handle(&put_event(&source)).await);
        let r = only(&doc);
        assert_error(r, "DestinationConflict", 409, "permanent");
        assert!(
            r["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("native Secrets Manager replica")),
            "{doc}"
        );
        assert!(writes(moto).is_empty(), "adopt {adopt}: {:?}", writes(moto));
    }
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v1"));
    assert_eq!(current(east, "app/db").await.as_deref(), Some("v1"));
}

/// The listing `all` compares by (SPEC §6) shows `PrimaryRegion` too: an owned copy in line
/// that has a native replica of its own is left alone, in both shapes.
async fn an_all_run_leaves_an_owned_copy_with_a_native_replica_alone(shape: PrimaryRegion) {
    let w = World::with_primary_region(shape).await;
    let World { moto, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    ok(w.app(&west_copy(false))
        .await
        .handle(&put_event(&source))
        .await);
    replicate_natively(west, "app/db", "eu-west-1").await;
    let app = w.app(&west_copy(false)).await;
    moto.reset_calls();

    let doc = ok(app.handle(&manual_all()).await);

    // An `all` document counts unchanged results instead of listing them (SPEC §6).
    assert_eq!(doc["summary"], json!({"unchanged": 1}), "{doc}");
    assert!(writes(moto).is_empty(), "{:?}", writes(moto));
}
