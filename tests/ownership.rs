//! Ownership of destinations (SPEC §8): the marker tag, adoption, conflicts, and destinations
//! scheduled for deletion.

// The SDK call futures nest deeply; the default limit (128) is too low for their layout.
#![recursion_limit = "256"]

mod common;

use common::world::World;

use aws_sdk_secretsmanager::types::Tag;
use common::app::*;
use common::{Fault, FaultProxy, Match, Moto, Rule};
use serde_json::json;

fn west_copy(adopt: bool) -> String {
    json!({"rules": [{"match": ["app/**"], "destinations": [
        {"region": "us-west-2", "adopt": adopt}
    ]}]})
    .to_string()
}

#[tokio::test]
async fn an_existing_destination_without_the_marker_is_not_written() {
    let w = World::start().await;
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

#[tokio::test]
async fn adopt_takes_over_an_existing_destination_and_tags_it() {
    let w = World::start().await;
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

#[tokio::test]
async fn a_destination_whose_marker_names_another_source_is_never_written() {
    let w = World::start().await;
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

#[tokio::test]
async fn an_owned_destination_scheduled_for_deletion_is_restored_and_written() {
    let w = World::start().await;
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

#[tokio::test]
async fn an_unowned_destination_scheduled_for_deletion_is_not_restored() {
    let w = World::start().await;
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

#[tokio::test]
async fn an_owned_destination_deleted_while_the_container_is_warm_is_restored_when_the_write_is_refused()
 {
    let moto = Moto::start();
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

#[tokio::test]
async fn a_fresh_container_refuses_a_destination_that_someone_else_recreated() {
    let w = World::start().await;
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
