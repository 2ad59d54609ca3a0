//! Which events replicate and which are skipped, and loop prevention (SPEC §5): failed calls,
//! the function's own writes, replicas of another deployment, same-region copies that a rule
//! matches, pending rotation steps, events that change no value, and every event shape that
//! does replicate.

// The SDK call futures nest deeply; the default limit (128) is too low for their layout.
#![recursion_limit = "256"]

mod common;

use common::app::*;
use common::world::World;
use serde_json::{Value, json};

fn west_copy() -> String {
    json!({"rules": [{"match": ["app/**"], "destinations": [{"region": "us-west-2"}]}]}).to_string()
}

/// Asserts a document is one skip with this reason and no destination.
fn assert_skipped(doc: &Value, reason: &str) {
    let r = only(doc);
    assert_eq!(r["status"], "skipped", "{doc}");
    assert_eq!(r["reason"], reason, "{doc}");
    assert!(r.get("destination").is_none(), "{doc}");
    assert_eq!(doc["statusCode"], 200, "{doc}");
}

/// An event whose caller is an assumed-role session `session` of role `role`.
/// The fixture event for a seeded source is skipped with `reason` without any AWS call, and
/// nothing is written.
async fn skipped_without_reading(fixture: &str, reason: &str) {
    let w = World::start().await;
    let World { moto, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let app = w.app(&west_copy()).await;
    moto.reset_calls();

    let doc = ok(app.handle(&event(fixture, &source)).await);

    assert_skipped(&doc, reason);
    assert!(moto.calls().is_empty(), "{:?}", moto.calls());
    assert!(!exists(west, "app/db").await);
}

fn caused_by(source: &Seeded, role: &str, session: &str) -> Value {
    let mut e = put_event(source);
    e["detail"]["userIdentity"] = json!({
        "type": "AssumedRole",
        "principalId": format!("AROAEXAMPLEID:{session}"),
        "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"),
        "accountId": ACCOUNT,
        "sessionContext": {"sessionIssuer": {
            "type": "Role",
            "arn": format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
            "accountId": ACCOUNT,
            "userName": role
        }}
    });
    e
}

#[tokio::test]
async fn a_failed_call_is_skipped_without_reading_anything() {
    skipped_without_reading(fixture::PUT_FAILED, "call_failed").await;
}

#[tokio::test]
async fn an_event_caused_by_the_function_itself_is_skipped() {
    let w = World::start().await;
    let World { moto, east, west } = &w;
    let source = w.seed("app/db", "v1").await;
    let sdk = sdk_config(&moto.endpoint()).await;
    let app = app_from(
        settings(
            &west_copy(),
            &[("AWS_LAMBDA_FUNCTION_NAME", "prod-replicator")],
        ),
        sdk,
    )
    .await;
    moto.reset_calls();

    let doc = ok(app
        .handle(&caused_by(&source, "any-role", "prod-replicator"))
        .await);

    assert_skipped(&doc, "self_caused");
    assert!(moto.calls().is_empty(), "{:?}", moto.calls());
    assert!(!exists(west, "app/db").await);

    // Another session of the same role, or a user session, is not the function.
    let doc = ok(app.handle(&caused_by(&source, "any-role", "jdoe")).await);
    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    // Nor is a non-AssumedRole identity whose name happens to match.
    let mut by_user = put_event(&source);
    by_user["detail"]["userIdentity"] = json!({
        "type": "IAMUser",
        "arn": format!("arn:aws:iam::{ACCOUNT}:user/prod-replicator"),
        "accountId": ACCOUNT
    });
    put_value(east, "app/db", "v2").await;
    let doc = ok(app.handle(&by_user).await);
    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v2"));
}

#[tokio::test]
async fn with_replicator_role_arn_only_sessions_issued_by_that_role_are_the_function() {
    let w = World::start().await;
    let World { moto, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/replicator-role");
    let app = app_from(
        settings(&west_copy(), &[("REPLICATOR_ROLE_ARN", &role_arn)]),
        sdk_config(&moto.endpoint()).await,
    )
    .await;

    // The function's role, the function's session name: our own write.
    let doc = ok(app
        .handle(&caused_by(&source, "replicator-role", "secret-replicator"))
        .await);
    assert_skipped(&doc, "self_caused");
    assert!(!exists(west, "app/db").await);

    // Someone else's role that happens to use the same session name is a real change.
    let doc = ok(app
        .handle(&caused_by(&source, "deploy-role", "secret-replicator"))
        .await);
    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn two_deployments_replicating_towards_each_other_do_not_ping_pong() {
    let w = World::start().await;
    let World { moto, east, west } = &w;
    let source = w.seed("app/db", "v1").await;
    let to_west = w.app(&west_copy()).await;
    let to_east_config =
        json!({"rules": [{"match": ["app/**"], "destinations": [{"region": "us-east-1"}]}]})
            .to_string();
    let to_east = app_from(
        settings(&to_east_config, &[("AWS_REGION", "us-west-2")]),
        sdk_config(&moto.endpoint()).await,
    )
    .await;

    // Hop 1: east → west.
    let doc = ok(to_west.handle(&put_event(&source)).await);
    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    let copy = Seeded {
        arn: describe(west, "app/db").await.arn().unwrap().to_string(),
        name: "app/db".into(),
        version: current_version(west, "app/db").await,
    };
    // Hop 2: the copy's own events reach the other deployment. Secret Label Updated carries no
    // caller identity, so only the version token can tell that this is a replica.
    moto.reset_calls();
    let doc = ok(to_east.handle(&event(fixture::LABEL_UPDATED, &copy)).await);
    assert_skipped(&doc, "replica");
    assert_eq!(only(&doc)["source"], copy.arn.as_str(), "{doc}");
    let doc = ok(to_east.handle(&event(fixture::CREATE, &copy)).await);
    assert_skipped(&doc, "replica");
    assert!(writes(moto).is_empty(), "{:?}", writes(moto));

    // And once more the other way: a duplicate of the original event.
    ok(to_west.handle(&put_event(&source)).await);
    assert_eq!(versions(east, "app/db").await, 1);
    assert_eq!(versions(west, "app/db").await, 1);
    assert_eq!(current(east, "app/db").await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn a_replica_is_replicated_further_when_the_rule_chains() {
    let w = World::start().await;
    let World { moto, west, .. } = &w;
    let eu = sm(&moto.endpoint(), "eu-west-1").await;
    let source = w.seed("app/db", "v1").await;
    ok(w.app(&west_copy()).await.handle(&put_event(&source)).await);
    let chain =
        json!({"rules": [{"chain": true, "destinations": [{"region": "eu-west-1"}]}]}).to_string();
    let onward = app_from(
        settings(&chain, &[("AWS_REGION", "us-west-2")]),
        sdk_config(&moto.endpoint()).await,
    )
    .await;
    let copy = Seeded {
        arn: describe(west, "app/db").await.arn().unwrap().to_string(),
        name: "app/db".into(),
        version: String::new(),
    };

    let doc = ok(onward.handle(&event(fixture::LABEL_UPDATED, &copy)).await);

    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(current(&eu, "app/db").await.as_deref(), Some("v1"));
    let d = describe(&eu, "app/db").await;
    assert_eq!(tag(&d, MARKER), Some(marker_of("us-west-2", "app/db")));
}

#[tokio::test]
async fn a_same_region_destination_that_a_rule_matches_is_skipped_as_a_loop() {
    let w = World::start().await;
    let World { east, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let config = json!({"rules": [{"match": ["app/**"], "destinations": [
        {"name": "app/copy/${SECRET_NAME}"},
        {"name": "backup/${SECRET_NAME}"}
    ]}]})
    .to_string();
    let app = w.app(&config).await;

    let doc = ok(app.handle(&put_event(&source)).await);

    let looped = result_for(&doc, "app/copy/app/db");
    assert_eq!(looped["status"], "skipped", "{doc}");
    assert_eq!(looped["reason"], "loop", "{doc}");
    assert!(!exists(east, "app/copy/app/db").await);
    // The other destination, outside the rule's match, is written.
    assert_eq!(result_for(&doc, "backup/app/db")["status"], "replicated");
    assert_eq!(current(east, "backup/app/db").await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn a_pending_only_put_secret_value_is_skipped() {
    skipped_without_reading(fixture::PUT_PENDING, "not_current").await;
}

#[tokio::test]
async fn a_put_secret_value_that_stages_awscurrent_explicitly_replicates() {
    let w = World::start().await;
    let World { west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let app = w.app(&west_copy()).await;
    let mut e = event(fixture::PUT_PENDING, &source);
    e["detail"]["requestParameters"]["versionStages"] = json!(["AWSCURRENT", "blue"]);

    let doc = ok(app.handle(&e).await);

    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn events_that_change_no_value_are_skipped_without_any_call() {
    let w = World::start().await;
    let World { moto, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let app = w.app(&west_copy()).await;
    moto.reset_calls();

    for event_name in [
        "GetSecretValue",
        "DescribeSecret",
        "ListSecretVersionIds",
        "GetResourcePolicy",
        "RotateSecret",
    ] {
        let mut e = put_event(&source);
        e["detail"]["eventName"] = json!(event_name);
        let doc = ok(app.handle(&e).await);
        assert_eq!(only(&doc)["status"], "skipped", "{event_name}: {doc}");
        assert_eq!(
            only(&doc)["reason"],
            "not_a_value_change",
            "{event_name}: {doc}"
        );
    }
    // UpdateSecretVersionStage that moves another label, or removes AWSCURRENT only.
    let mut e = event(fixture::UPDATE_STAGE, &source);
    e["detail"]["requestParameters"]["versionStage"] = json!("AWSPENDING");
    assert_skipped(&ok(app.handle(&e).await), "not_current");
    let mut e = event(fixture::UPDATE_STAGE, &source);
    e["detail"]["requestParameters"]
        .as_object_mut()
        .unwrap()
        .remove("moveToVersionId");
    assert_skipped(&ok(app.handle(&e).await), "not_current");

    assert!(moto.calls().is_empty(), "{:?}", moto.calls());
    assert!(!exists(west, "app/db").await);
}

#[tokio::test]
async fn tag_events_write_nothing_where_no_destination_copies_tags() {
    let w = World::start().await;
    let World { moto, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let app = w.app(&west_copy()).await;
    moto.reset_calls();

    for event_name in ["TagResource", "UntagResource"] {
        let mut e = put_event(&source);
        e["detail"]["eventName"] = json!(event_name);
        let doc = ok(app.handle(&e).await);
        for r in doc["results"].as_array().unwrap() {
            assert_eq!(r["status"], "skipped", "{event_name}: {doc}");
            assert_eq!(r["reason"], "tag_sync_off", "{event_name}: {doc}");
        }
    }
    assert!(writes(moto).is_empty(), "{:?}", writes(moto));
    assert!(!exists(west, "app/db").await);
}

#[tokio::test]
async fn a_delete_event_leaves_the_copy_alone_without_delete_with_source() {
    let w = World::start().await;
    let World { moto, east, west } = &w;
    let source = w.seed("app/db", "v1").await;
    let app = w.app(&west_copy()).await;
    ok(app.handle(&put_event(&source)).await);
    east.delete_secret()
        .secret_id("app/db")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    moto.reset_calls();

    // The old `aRN` spelling names the secret.
    let doc = ok(app
        .handle(&event(fixture::DELETE_OLD_ARN_CASING, &source))
        .await);

    for r in doc["results"].as_array().unwrap() {
        assert_eq!(r["status"], "skipped", "{doc}");
        assert_eq!(r["reason"], "delete_sync_off", "{doc}");
        assert_eq!(r["source"], source.arn.as_str(), "{doc}");
    }
    assert!(writes(moto).is_empty(), "{:?}", writes(moto));
    let d = describe(west, "app/db").await;
    assert!(d.deleted_date().is_none());
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn a_secret_no_rule_matches_is_skipped_without_being_read() {
    let w = World::start().await;
    let World { moto, .. } = &w;
    let source = w.seed("other/db", "v1").await;
    let app = w.app(&west_copy()).await;
    moto.reset_calls();

    let doc = ok(app.handle(&put_event(&source)).await);

    assert_skipped(&doc, "no_matching_rule");
    assert!(moto.calls().is_empty(), "{:?}", moto.calls());
}

#[tokio::test]
async fn secret_label_updated_replicates_for_awscurrent_and_skips_other_labels() {
    let w = World::start().await;
    let World { west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let app = w.app(&west_copy()).await;

    let mut other_label = event(fixture::LABEL_UPDATED, &source);
    other_label["detail"]["labelUpdated"] = json!("AWSPENDING");
    assert_skipped(&ok(app.handle(&other_label).await), "not_current");
    assert!(!exists(west, "app/db").await);

    let doc = ok(app.handle(&event(fixture::LABEL_UPDATED, &source)).await);
    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn rotation_succeeded_replicates_the_rotated_value() {
    let w = World::start().await;
    let World { east, west, .. } = &w;
    let source = w.seed("app/db", "before rotation").await;
    // What a rotation function does: stage AWSPENDING, then move AWSCURRENT to it.
    let pending = east
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("after rotation")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_string();
    east.update_secret_version_stage()
        .secret_id("app/db")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&pending)
        .remove_from_version_id(&source.version)
        .send()
        .await
        .unwrap();
    let app = w.app(&west_copy()).await;

    let doc = ok(app
        .handle(&event(fixture::ROTATION_SUCCEEDED, &source))
        .await);

    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(
        current(west, "app/db").await.as_deref(),
        Some("after rotation")
    );
}

#[tokio::test]
async fn update_secret_version_stage_to_awscurrent_replicates() {
    let w = World::start().await;
    let World { east, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let v2 = put_value(east, "app/db", "v2").await;
    let app = w.app(&west_copy()).await;
    let mut e = event(fixture::UPDATE_STAGE, &source);
    e["detail"]["requestParameters"]["moveToVersionId"] = json!(v2);
    e["detail"]["requestParameters"]["removeFromVersionId"] = json!(source.version);

    let doc = ok(app.handle(&e).await);

    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v2"));
}

#[tokio::test]
async fn an_event_with_the_old_arn_key_casing_replicates() {
    let w = World::start().await;
    let World { west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let app = w.app(&west_copy()).await;
    // Only `responseElements.aRN` names the secret.
    let mut e = put_event(&source);
    e["detail"]["requestParameters"] = json!({"clientRequestToken": source.version});
    e["detail"]["responseElements"] = json!({"aRN": source.arn});

    let doc = ok(app.handle(&e).await);

    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn a_create_secret_event_replicates_the_new_secret() {
    let w = World::start().await;
    let World { west, .. } = &w;
    let source = w.seed("app/new", "fresh").await;
    let app = w.app(&west_copy()).await;

    let doc = ok(app.handle(&event(fixture::CREATE, &source)).await);

    let r = only(&doc);
    assert_eq!(r["status"], "replicated", "{doc}");
    assert_eq!(r["action"], "create", "{doc}");
    assert_eq!(current(west, "app/new").await.as_deref(), Some("fresh"));
}

#[tokio::test]
async fn a_manual_payload_naming_secrets_by_arn_and_by_name_replicates_each() {
    let w = World::start().await;
    let World { west, .. } = &w;
    let a = w.seed("app/a", "a1").await;
    w.seed("app/b", "b1").await;
    let app = w.app(&west_copy()).await;
    let payload = json!({"source": "manual", "secretIds": [a.arn, "app/b"]});

    let doc = ok(app.handle(&payload).await);

    assert_eq!(doc["statusCode"], 200, "{doc}");
    assert_eq!(doc["results"].as_array().unwrap().len(), 2, "{doc}");
    assert_eq!(current(west, "app/a").await.as_deref(), Some("a1"));
    assert_eq!(current(west, "app/b").await.as_deref(), Some("b1"));
}

#[tokio::test]
async fn the_same_destination_named_by_two_rules_is_written_once() {
    let w = World::start().await;
    let World { moto, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let config = json!({"rules": [
        {"match": ["app/**"], "destinations": [{"region": "us-west-2"}]},
        {"match": ["**"], "destinations": [{"region": "us-west-2"}, {"region": "eu-west-1"}]}
    ]})
    .to_string();
    let app = w.app(&config).await;
    moto.reset_calls();

    let doc = ok(app.handle(&put_event(&source)).await);

    let statuses: Vec<(&str, &str)> = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["destination"]["region"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("us-west-2", "replicated"),
            ("us-west-2", "skipped"),
            ("eu-west-1", "replicated")
        ],
        "{doc}"
    );
    assert_eq!(
        doc["results"][1]["reason"], "duplicate_destination",
        "{doc}"
    );
    assert_eq!(doc["statusCode"], 200, "{doc}");
    assert_eq!(moto.count("CreateSecret"), 2);
    assert_eq!(versions(west, "app/db").await, 1);
}

#[tokio::test]
async fn an_event_for_a_source_scheduled_for_deletion_writes_nothing() {
    let w = World::start().await;
    let World { moto, east, west } = &w;
    let source = w.seed("app/db", "v1").await;
    east.delete_secret()
        .secret_id("app/db")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    let app = w.app(&west_copy()).await;
    moto.reset_calls();

    let doc = ok(app.handle(&put_event(&source)).await);

    assert_eq!(only(&doc)["status"], "skipped", "{doc}");
    assert!(writes(moto).is_empty(), "{:?}", writes(moto));
    assert!(!exists(west, "app/db").await);
}

#[tokio::test]
async fn an_update_secret_event_replicates_the_new_value() {
    let w = World::start().await;
    let World { east, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    east.update_secret()
        .secret_id("app/db")
        .secret_string("v2")
        .send()
        .await
        .unwrap();
    let app = w.app(&west_copy()).await;
    let mut e = put_event(&source);
    e["detail"]["eventName"] = json!("UpdateSecret");

    let doc = ok(app.handle(&e).await);

    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v2"));
}

#[tokio::test]
async fn a_restore_event_restores_the_owned_copy_and_replicates() {
    let w = World::start().await;
    let World { east, west, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    ok(w.app(&west_copy()).await.handle(&put_event(&source)).await);
    for client in [&east, &west] {
        client
            .delete_secret()
            .secret_id("app/db")
            .recovery_window_in_days(7)
            .send()
            .await
            .unwrap();
    }
    east.restore_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    let mut restored = put_event(&source);
    restored["detail"]["eventName"] = json!("RestoreSecret");

    let doc = ok(w.app(&west_copy()).await.handle(&restored).await);

    assert_ne!(only(&doc)["status"], "failed", "{doc}");
    assert!(describe(west, "app/db").await.deleted_date().is_none());
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn a_rotation_or_tag_event_naming_by_arn_a_secret_no_rule_matches_makes_no_call() {
    let w = World::start().await;
    let World { moto, .. } = &w;
    // An RDS-managed secret, rotated every 7 days, that no rule wants (`west_copy` is `app/**`).
    let rds = w.seed("other/rds-creds", "pw").await;
    let app = w.app(&west_copy()).await;
    moto.reset_calls();

    // RotationSucceeded carries only the full ARN (additionalEventData.SecretId).
    let doc = ok(app.handle(&event(fixture::ROTATION_SUCCEEDED, &rds)).await);
    assert_skipped(&doc, "no_matching_rule");
    // A tag event given the full ARN, or a partial ARN (no suffix), as secretId.
    let partial = rds.arn[..rds.arn.len() - 7].to_string();
    for id in [rds.arn.clone(), partial] {
        let mut e = put_event(&rds);
        e["detail"]["eventName"] = json!("TagResource");
        e["detail"]["requestParameters"] = json!({"secretId": id, "tags": []});
        e["detail"]["responseElements"] = Value::Null;
        assert_skipped(&ok(app.handle(&e).await), "no_matching_rule");
    }

    assert!(moto.calls().is_empty(), "{:?}", moto.calls());
}
