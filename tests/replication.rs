//! Replication against moto: renames, other regions, other accounts, binary values, transforms
//! with per-destination variables, and the destination's KMS key.

// The SDK call futures nest deeply; the default limit (128) is too low for their layout.
#![recursion_limit = "256"]

mod common;

use common::Moto;
use common::app::*;
use common::world::World;
use secret_replicator::settings::{Env, Settings};
use secret_replicator::token::is_replicator_token;
use serde_json::{Value, json};

const VALUE: &str = r#"{"host":"db.us-east-1.example.com","env":"prod-east","port":5432}"#;

#[tokio::test]
async fn a_secret_is_copied_under_a_new_name_in_its_region_and_under_its_own_name_in_another_region()
 {
    let w = World::start().await;
    let World { east, west, .. } = &w;
    let source = w.seed("app/db", VALUE).await;
    let config = json!({"rules": [{"match": ["app/**"], "destinations": [
        {"name": "copy/${SECRET_NAME}"},
        {"region": "us-west-2"}
    ]}]})
    .to_string();
    let app = w.app(&config).await;

    let doc = ok(app.handle(&put_event(&source)).await);

    assert_eq!(doc["statusCode"], 200, "{doc}");
    assert_eq!(doc["remaining"], json!([]), "{doc}");
    for (client, region, name) in [
        (&east, "us-east-1", "copy/app/db"),
        (&west, "us-west-2", "app/db"),
    ] {
        let r = result_for(&doc, name);
        assert_eq!(r["status"], "replicated", "{r}");
        assert_eq!(r["action"], "create", "{r}");
        assert_eq!(r["destination"]["region"], region, "{r}");
        assert_eq!(r["destination"]["account"], ACCOUNT, "{r}");
        assert_eq!(
            current(client, name).await.as_deref(),
            Some(VALUE),
            "{region} {name}"
        );
        assert_eq!(r["versionId"], current_version(client, name).await.as_str());
        assert!(r["durationMs"].is_u64(), "{r}");
        // The version is a replicator token: UUID-shaped, recognisable (SPEC §8).
        let version = r["versionId"].as_str().unwrap();
        assert_eq!(version.len(), 36, "{version}");
        assert!(is_replicator_token(version), "{version}");
        let d = describe(client, name).await;
        assert_eq!(
            tag(&d, MARKER),
            Some(marker_of("us-east-1", "app/db")),
            "{name}"
        );
        let description = d.description().unwrap_or_default();
        assert!(
            description.contains("app/db"),
            "description: {description:?}"
        );
    }
    // The source itself is untouched.
    assert_eq!(versions(east, "app/db").await, 1);
    assert_eq!(current(east, "app/db").await.as_deref(), Some(VALUE));
}

#[tokio::test]
async fn all_puts_a_hand_edited_cross_account_copy_back_by_moving_its_label() {
    let w = World::start().await;
    let World { moto, .. } = &w;
    let source = w.seed("app/db", VALUE).await;
    let config = json!({"rules": [{"match": ["app/**"], "destinations": [{
        "region": "eu-west-1",
        "account_role_arn": DEST_ROLE,
        "external_id": EXTERNAL_ID,
        "name": "xacct/${SECRET_NAME}"
    }]}]})
    .to_string();
    let app = w.app(&config).await;
    ok(app.handle(&put_event(&source)).await);
    let dest = dest_client(&moto.endpoint(), DEST_ACCOUNT, "eu-west-1").await;
    // Someone edits the copy by hand in the destination account.
    put_value(&dest, "xacct/app/db", "tampered").await;
    moto.reset_calls();

    let doc = ok(app.handle(&manual_all()).await);

    let r = only(&doc);
    assert_eq!(r["status"], "replicated", "{doc}");
    // The replicator's version is still there: AWSCURRENT moves back to it, no new version.
    assert_eq!(r["action"], "label", "{doc}");
    // Through the destination role: the compare read, and the label move.
    assert_eq!(
        moto.count("GetSecretValue"),
        2,
        "the source's and the copy's"
    );
    assert_eq!(moto.count("UpdateSecretVersionStage"), 1);
    assert_eq!(moto.count("PutSecretValue"), 0);
    assert_eq!(current(&dest, "xacct/app/db").await.as_deref(), Some(VALUE));
}

#[tokio::test]
async fn a_cross_account_copy_is_written_with_the_assumed_role_into_the_destination_account_only() {
    let w = World::start().await;
    let World { moto, .. } = &w;
    let source = w.seed("app/db", VALUE).await;
    let config = json!({"rules": [{"match": ["app/**"], "destinations": [{
        "region": "eu-west-1",
        "account_role_arn": DEST_ROLE,
        "external_id": EXTERNAL_ID,
        "name": "xacct/${SECRET_NAME}"
    }]}]})
    .to_string();
    let app = w.app(&config).await;
    moto.reset_calls();

    let doc = ok(app.handle(&put_event(&source)).await);
    let calls = moto.calls();

    let r = only(&doc);
    assert_eq!(r["status"], "replicated", "{doc}");
    assert_eq!(r["destination"]["account"], DEST_ACCOUNT, "{doc}");
    let dest = dest_client(&moto.endpoint(), DEST_ACCOUNT, "eu-west-1").await;
    assert_eq!(current(&dest, "xacct/app/db").await.as_deref(), Some(VALUE));
    let d = describe(&dest, "xacct/app/db").await;
    assert!(
        d.arn().unwrap().contains(&format!(":{DEST_ACCOUNT}:")),
        "{:?}",
        d.arn()
    );
    assert_eq!(tag(&d, MARKER), Some(marker_of("us-east-1", "app/db")));
    // Not in the source's account.
    let own_eu = sm(&moto.endpoint(), "eu-west-1").await;
    assert!(!exists(&own_eu, "xacct/app/db").await);
    // The write came with the assumed role's credentials, in the destination account, and the
    // session is named after the function (loop prevention in the destination account).
    let create = calls
        .iter()
        .find(|c| c.operation == "CreateSecret")
        .expect("a CreateSecret");
    assert_eq!(create.account.as_deref(), Some(DEST_ACCOUNT));
    assert_eq!(create.region.as_deref(), Some("eu-west-1"));
    let assume: Vec<_> = calls
        .iter()
        .filter(|c| c.operation == "AssumeRole")
        .collect();
    assert_eq!(assume.len(), 1, "one AssumeRole per role: {assume:?}");
    assert!(
        assume[0].body.contains("RoleSessionName=secret-replicator"),
        "{}",
        assume[0].body
    );
    assert!(
        assume[0]
            .body
            .contains(&format!("ExternalId={EXTERNAL_ID}")),
        "{}",
        assume[0].body
    );
    assert!(
        assume[0]
            .body
            .contains("arn%3Aaws%3Aiam%3A%3A222233334444%3Arole%2Fsecret-replicator-destination"),
        "{}",
        assume[0].body
    );
    // The source's read and re-read used the function's own credentials.
    for c in calls.iter().filter(|c| c.operation == "GetSecretValue") {
        assert_eq!(c.account.as_deref(), Some(ACCOUNT), "{c:?}");
    }
}

#[tokio::test]
async fn a_second_event_reuses_the_assumed_role_session() {
    let w = World::start().await;
    let World { moto, east, .. } = &w;
    let source = w.seed("app/db", "v1").await;
    let config = json!({"rules": [{"destinations": [
        {"region": "us-west-2", "account_role_arn": DEST_ROLE, "external_id": EXTERNAL_ID},
        {"region": "eu-west-1", "account_role_arn": DEST_ROLE, "external_id": EXTERNAL_ID}
    ]}]})
    .to_string();
    let app = w.app(&config).await;
    ok(app.handle(&put_event(&source)).await);
    put_value(east, "app/db", "v2").await;
    ok(app.handle(&put_event(&source)).await);

    // One session for both regions and both invocations (counted before the test assumes the
    // role itself to look).
    assert_eq!(moto.count("AssumeRole"), 1);
    for region in ["us-west-2", "eu-west-1"] {
        let dest = dest_client(&moto.endpoint(), DEST_ACCOUNT, region).await;
        assert_eq!(
            current(&dest, "app/db").await.as_deref(),
            Some("v2"),
            "{region}"
        );
    }
}

#[tokio::test]
async fn a_binary_secret_is_replicated_byte_for_byte() {
    let w = World::start().await;
    let World { east, west, .. } = &w;
    // Every byte value, including ones that are not valid UTF-8 on their own.
    let bytes: Vec<u8> = (0..=255u8).chain([0xff, 0xfe, 0x00, 0xc3, 0x28]).collect();
    let source = seed_binary(east, "app/cert", &bytes).await;
    let config = json!({"rules": [{"destinations": [
        {"region": "us-west-2"},
        {"region": "us-west-2", "name": "sed/${SECRET_NAME}", "transforms": [{"sed": "s/a/b/"}]}
    ]}]})
    .to_string();
    let app = w.app(&config).await;

    let doc = failed(app.handle(&put_event(&source)).await);

    assert_eq!(
        result_for(&doc, "app/cert")["status"],
        "replicated",
        "{doc}"
    );
    assert_eq!(current_binary(west, "app/cert").await, bytes);
    // A transform on a binary secret is an error, not silent corruption.
    let r = result_for(&doc, "sed/app/cert");
    assert_error(r, "TransformFailed", 422, "permanent");
    assert!(!exists(west, "sed/app/cert").await);
    assert_eq!(doc["statusCode"], 207);
}

#[tokio::test]
async fn each_destination_gets_its_own_transforms_and_variables() {
    let w = World::start().await;
    let World { moto, east, west } = &w;
    let eu = sm(&moto.endpoint(), "eu-west-1").await;
    let source = w.seed("app/db", VALUE).await;
    let config = json!({"rules": [{"match": ["app/**"], "destinations": [
        {
            "region": "us-west-2",
            "name": "sed/${SECRET_NAME}",
            "transforms": [{"sed": "s/us-east-1/us-west-2/g"}, {"sed": "s/prod-east/${ENV}/"}],
            "variables": {"ENV": "prod-west"}
        },
        {
            "region": "eu-west-1",
            "name": "json/${SECRET_NAME}",
            "transforms": [{"json": [
                {"path": "$.host", "set": "db.${DEST_REGION}.${DOMAIN}"},
                {"path": "$.env", "set": "${ENV}"}
            ]}],
            "variables": {"ENV": "dr", "DOMAIN": "internal.example"}
        }
    ]}]})
    .to_string();
    let app = w.app(&config).await;

    let doc = ok(app.handle(&put_event(&source)).await);

    assert_eq!(doc["statusCode"], 200, "{doc}");
    // sed keeps the text as it was, apart from the substitutions.
    assert_eq!(
        current(west, "sed/app/db").await.as_deref(),
        Some(r#"{"host":"db.us-west-2.example.com","env":"prod-west","port":5432}"#)
    );
    // The mapping keeps key order and number spelling.
    assert_eq!(
        current(&eu, "json/app/db").await.as_deref(),
        Some(r#"{"host":"db.eu-west-1.internal.example","env":"dr","port":5432}"#)
    );
    assert_eq!(current(east, "app/db").await.as_deref(), Some(VALUE));
}

#[tokio::test]
async fn a_bundled_sed_file_rewrites_the_copy() {
    let w = World::start().await;
    let World { east, west, .. } = &w;
    let source = seed_secret(
        east,
        "app/url",
        "postgres://db.us-east-1.rds.amazonaws.com/app",
    )
    .await;
    // Relative paths resolve against the working directory: the package root under cargo test.
    let config = json!({"rules": [{"destinations": [{
        "region": "us-west-2",
        "transforms": ["sedfiles/us-east-1-to-us-west-2.sed"]
    }]}]})
    .to_string();
    let app = w.app(&config).await;

    ok(app.handle(&put_event(&source)).await);

    let copy = current(west, "app/url").await.expect("copied");
    assert!(copy.contains("us-west-2"), "{copy}");
    assert!(!copy.contains("us-east-1"), "{copy}");
}

/// Creates a KMS key in `region` with an alias; returns the key ARN.
async fn key_with_alias(kms: &aws_sdk_kms::Client, alias: &str) -> String {
    let key = kms.create_key().send().await.expect("CreateKey");
    let meta = key.key_metadata().expect("metadata");
    kms.create_alias()
        .alias_name(alias)
        .target_key_id(meta.key_id())
        .send()
        .await
        .expect("CreateAlias");
    meta.arn().expect("key ARN").to_string()
}

/// The ARN of the key a destination is encrypted with, resolved through kms:DescribeKey.
async fn key_of(
    sm: &aws_sdk_secretsmanager::Client,
    kms: &aws_sdk_kms::Client,
    id: &str,
) -> String {
    let d = describe(sm, id).await;
    let key = d.kms_key_id().expect("the destination names a key");
    kms.describe_key()
        .key_id(key)
        .send()
        .await
        .expect("DescribeKey")
        .key_metadata()
        .and_then(|m| m.arn())
        .expect("key ARN")
        .to_string()
}

#[tokio::test]
async fn a_new_destination_is_encrypted_with_the_configured_key() {
    let w = World::start().await;
    let World { moto, west, .. } = &w;
    let kms_west = kms(&moto.endpoint(), "us-west-2").await;
    let key = key_with_alias(&kms_west, "alias/dr-secrets").await;
    let source = w.seed("app/db", "v1").await;
    let config = json!({"rules": [{"destinations": [
        {"region": "us-west-2", "kms_key_id": "alias/dr-secrets"}
    ]}]})
    .to_string();
    let app = w.app(&config).await;
    moto.reset_calls();

    let doc = ok(app.handle(&put_event(&source)).await);

    assert_eq!(only(&doc)["action"], "create", "{doc}");
    // One CreateSecret carries the value, the key, the description and the marker tag.
    let calls = moto.calls();
    let ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert!(
        !ops.contains(&"TagResource") && !ops.contains(&"UpdateSecret"),
        "{ops:?}"
    );
    let create = calls
        .iter()
        .find(|c| c.operation == "CreateSecret")
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&create.body).unwrap();
    assert_eq!(body["KmsKeyId"], "alias/dr-secrets", "{body}");
    assert!(body["Description"].is_string(), "{body}");
    assert!(body["SecretString"].is_string(), "{body}");
    assert_eq!(body["Tags"][0]["Key"], MARKER, "{body}");
    assert_eq!(key_of(west, &kms_west, "app/db").await, key);
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v1"));
}

#[tokio::test]
async fn a_destination_on_the_default_key_is_moved_to_a_newly_configured_key() {
    let w = World::start().await;
    let World { moto, west, .. } = &w;
    let kms_west = kms(&moto.endpoint(), "us-west-2").await;
    let key = key_with_alias(&kms_west, "alias/dr-secrets").await;
    let source = w.seed("app/db", "v1").await;
    let without_key = json!({"rules": [{"destinations": [{"region": "us-west-2"}]}]}).to_string();
    ok(w.app(&without_key).await.handle(&put_event(&source)).await);
    assert!(describe(west, "app/db").await.kms_key_id().is_none());

    let with_key = json!({"rules": [{"destinations": [
        {"region": "us-west-2", "kms_key_id": "alias/dr-secrets"}
    ]}]})
    .to_string();
    moto.reset_calls();
    ok(w.app(&with_key).await.handle(&put_event(&source)).await);

    assert_eq!(moto.count("UpdateSecret"), 1);
    assert_eq!(key_of(west, &kms_west, "app/db").await, key);
    // SPEC §8: AWS keeps existing versions decryptable with the old key; a new version makes
    // the current value readable with the configured key alone. UpdateSecret carried no value.
    assert_eq!(versions(west, "app/db").await, 2);
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v1"));
    assert_update_secret_carries_only_the_key(moto);
}

/// Every UpdateSecret the function sent carried a KmsKeyId and no value.
fn assert_update_secret_carries_only_the_key(moto: &Moto) {
    for c in moto
        .calls()
        .iter()
        .filter(|c| c.operation == "UpdateSecret")
    {
        let body: Value = serde_json::from_str(&c.body).unwrap();
        assert!(body.get("KmsKeyId").is_some(), "{body}");
        assert!(
            body.get("SecretString").is_none() && body.get("SecretBinary").is_none(),
            "{body}"
        );
    }
}

#[tokio::test]
async fn changing_the_configured_key_moves_the_existing_destination_to_the_new_key() {
    let w = World::start().await;
    let World { moto, west, .. } = &w;
    let kms_west = kms(&moto.endpoint(), "us-west-2").await;
    let old_key = key_with_alias(&kms_west, "alias/old").await;
    let new_key = key_with_alias(&kms_west, "alias/new").await;
    let source = w.seed("app/db", "v1").await;
    let with_key = |key: &str| {
        json!({"rules": [{"destinations": [{"region": "us-west-2", "kms_key_id": key}]}]})
            .to_string()
    };
    let first = w.app(&with_key("alias/old")).await;
    ok(first.handle(&put_event(&source)).await);
    assert_eq!(key_of(west, &kms_west, "app/db").await, old_key);

    // A new deployment (a fresh container) with another key, named by its ARN this time.
    let second = w.app(&with_key(&new_key)).await;
    moto.reset_calls();
    let doc = ok(second.handle(&put_event(&source)).await);

    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(key_of(west, &kms_west, "app/db").await, new_key);
    assert_eq!(moto.count("UpdateSecret"), 1);
    assert_update_secret_carries_only_the_key(moto);
    // SPEC §8: re-keying writes a new version (the same value) after UpdateSecret(KmsKeyId).
    assert_eq!(versions(west, "app/db").await, 2);
    assert_eq!(current(west, "app/db").await.as_deref(), Some("v1"));

    // Warm container: the key is not checked again. Fresh container with the same key (given as
    // an alias): resolved to the same ARN, nothing to fix.
    moto.reset_calls();
    ok(second.handle(&put_event(&source)).await);
    let third = w.app(&with_key("alias/new")).await;
    ok(third.handle(&put_event(&source)).await);
    assert_eq!(moto.count("UpdateSecret"), 0);
    assert_eq!(key_of(west, &kms_west, "app/db").await, new_key);
}

#[tokio::test]
async fn a_destination_without_a_region_is_written_in_the_region_of_the_event_source() {
    let moto = Moto::start();
    let eu = sm(&moto.endpoint(), "eu-west-1").await;
    // The function runs in us-east-1; the secret and its event are in eu-west-1.
    let source = seed_secret(&eu, "app/db", "from eu").await;
    let config =
        json!({"rules": [{"destinations": [{"account_role_arn": DEST_ROLE, "external_id": EXTERNAL_ID}]}]})
            .to_string();
    let app = app_with(&config, &moto.endpoint()).await;

    let doc = ok(app.handle(&put_event(&source)).await);

    let r = only(&doc);
    assert_eq!(r["destination"]["region"], "eu-west-1", "{doc}");
    let dest = dest_client(&moto.endpoint(), DEST_ACCOUNT, "eu-west-1").await;
    assert_eq!(current(&dest, "app/db").await.as_deref(), Some("from eu"));
    assert_eq!(
        tag(&describe(&dest, "app/db").await, MARKER),
        Some(marker_of("eu-west-1", "app/db"))
    );
    // A manual payload names the source region the same way.
    put_value(&eu, "app/db", "v2").await;
    let payload = json!({"source": "manual", "secretId": "app/db", "region": "eu-west-1"});
    ok(app.handle(&payload).await);
    assert_eq!(current(&dest, "app/db").await.as_deref(), Some("v2"));
}

#[tokio::test]
async fn built_in_variables_name_both_ends_and_variable_values_are_data_not_syntax() {
    let w = World::start().await;
    let World { moto, .. } = &w;
    let source = w.seed("app/db", "ACCOUNT REGION NAME FROM a.b axb").await;
    let config = json!({"rules": [{"destinations": [{
        "region": "eu-west-1",
        "account_role_arn": DEST_ROLE,
        "external_id": EXTERNAL_ID,
        "name": "${SOURCE_ACCOUNT}/${SOURCE_REGION}/${SECRET_NAME}",
        "transforms": [{"sed": concat!(
            "s/ACCOUNT/${DEST_ACCOUNT}/; s/REGION/${DEST_REGION}/; s/NAME/${DEST_SECRET_NAME}/;",
            " s/FROM/${SOURCE_ACCOUNT}@${SOURCE_REGION}/; s/${DOT}/${AMP}/g"
        )}],
        "variables": {"DOT": "a.b", "AMP": "&\\1"}
    }]}]})
    .to_string();
    let app = w.app(&config).await;

    let doc = ok(app.handle(&put_event(&source)).await);

    let name = format!("{ACCOUNT}/us-east-1/app/db");
    assert_eq!(only(&doc)["destination"]["name"], name.as_str(), "{doc}");
    let dest = dest_client(&moto.endpoint(), DEST_ACCOUNT, "eu-west-1").await;
    // `a.b` matched literally (not `axb`), and `&\1` was inserted literally.
    assert_eq!(
        current(&dest, &name).await,
        Some(format!(
            "{DEST_ACCOUNT} eu-west-1 {name} {ACCOUNT}@us-east-1 &\\1 axb"
        ))
    );
}

#[tokio::test]
async fn a_secret_with_a_very_long_name_is_owned_through_a_hashed_marker() {
    use sha2::{Digest, Sha256};
    let w = World::start().await;
    let World { east, west, .. } = &w;
    let name = format!("app/{}", "n".repeat(296));
    let source = w.seed(&name, "v1").await;
    let config = json!({"rules": [{"destinations": [{"region": "us-west-2"}]}]}).to_string();
    ok(w.app(&config).await.handle(&put_event(&source)).await);

    let marker = tag(&describe(west, &name).await, MARKER).expect("marker");
    let full = marker_of("us-east-1", &name);
    let digest: String = Sha256::digest(full.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(marker, digest);
    // A fresh container recognises it as its own.
    put_value(east, &name, "v2").await;
    let doc = ok(w.app(&config).await.handle(&put_event(&source)).await);
    assert_eq!(only(&doc)["status"], "replicated", "{doc}");
    assert_eq!(current(west, &name).await.as_deref(), Some("v2"));
}

#[tokio::test]
async fn the_single_destination_shorthand_replicates_like_the_document() {
    let w = World::start().await;
    let World { moto, west, .. } = &w;
    let source = w.seed("app/url", "https://api.us-east-1.example.com").await;
    let other = w.seed("other/url", "https://x.us-east-1.example.com").await;
    let env = Env::from_pairs([
        ("AWS_REGION", "us-east-1"),
        ("DEST_REGION", "us-west-2"),
        ("DEST_SECRET_NAME", "dr/${SECRET_NAME}"),
        ("TRANSFORMS", "sedfiles/us-east-1-to-us-west-2.sed"),
        ("SOURCE_MATCH", "app/**"),
    ]);
    let settings = Settings::from_env(&env).expect("shorthand settings");
    let app = app_from(settings, sdk_config(&moto.endpoint()).await).await;

    ok(app.handle(&put_event(&source)).await);
    let skipped = ok(app.handle(&put_event(&other)).await);

    assert_eq!(
        current(west, "dr/app/url").await.as_deref(),
        Some("https://api.us-west-2.example.com")
    );
    assert_eq!(only(&skipped)["reason"], "no_matching_rule", "{skipped}");
    assert!(!exists(west, "dr/other/url").await);
}

#[tokio::test]
async fn the_shorthand_accepts_an_inline_sed_transform_among_its_references() {
    // SPEC §2: TRANSFORMS is a comma-separated list of transform references (§3), and a
    // reference may be inline `{"sed": "..."}`.
    let w = World::start().await;
    let World { moto, west, .. } = &w;
    let source = w.seed("app/url", "https://api.us-east-1.example.com").await;
    let env = Env::from_pairs([
        ("AWS_REGION", "us-east-1"),
        ("DEST_REGION", "us-west-2"),
        (
            "TRANSFORMS",
            r#"sedfiles/us-east-1-to-us-west-2.sed,{"sed": "s/api/api-dr/"}"#,
        ),
    ]);
    let settings = Settings::from_env(&env).expect("shorthand settings");
    let app = app_from(settings, sdk_config(&moto.endpoint()).await).await;

    ok(app.handle(&put_event(&source)).await);

    assert_eq!(
        current(west, "app/url").await.as_deref(),
        Some("https://api-dr.us-west-2.example.com")
    );
}
