//! The emulator the suites run on (`tests/moto/server.py`) behaves as AWS documents where moto
//! does not (SPEC §12, last paragraph), and enforces IAM with the suites' identities (SPEC §11).
//! Each test drives the running launcher through the SDK, as the product would.

// The SDK call futures nest deeply; the default limit (128) is too low for their layout.
#![recursion_limit = "256"]

mod common;

use common::world::World;

use aws_credential_types::Credentials;
use aws_sdk_secretsmanager::Client as Sm;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use common::app::*;
use common::iam_setup::IamSetup;
use common::policies::{self, DEST_ROLE_ARN, FUNCTION_ROLE_ARN, FUNCTION_SESSION_ARN};
use common::sigv4::Signer;
use common::{Moto, PrimaryRegion, Response, http_request};
use serde_json::{Value, json};

async fn sm_as(moto: &Moto, region: &str, creds: Credentials) -> Sm {
    Sm::new(&client_config(&moto.endpoint(), region, creds).await)
}

async fn sts_as(moto: &Moto, creds: Credentials) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::new(&client_config(&moto.endpoint(), REGION, creds).await)
}

async fn kms_as(moto: &Moto, region: &str, creds: Credentials) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&client_config(&moto.endpoint(), region, creds).await)
}

/// The staging labels of every version (ListSecretVersionIds with IncludeDeprecated).
async fn labels(sm: &Sm, id: &str) -> Vec<(String, Vec<String>)> {
    let out = sm
        .list_secret_version_ids()
        .secret_id(id)
        .include_deprecated(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListSecretVersionIds {id}: {e:?}"));
    out.versions()
        .iter()
        .map(|v| {
            (
                v.version_id().unwrap_or_default().to_string(),
                v.version_stages().to_vec(),
            )
        })
        .collect()
}

fn holding<'a>(labels: &'a [(String, Vec<String>)], stage: &str) -> Vec<&'a str> {
    labels
        .iter()
        .filter(|(_, s)| s.iter().any(|x| x == stage))
        .map(|(v, _)| v.as_str())
        .collect()
}

/// A Secrets Manager request signed with `creds`, sent raw (to see the wire shape of errors).
fn raw_sm(moto: &Moto, creds: (&str, &str, Option<&str>), target: &str, body: &str) -> Response {
    let target = format!("secretsmanager.{target}");
    let headers = [
        ("X-Amz-Target", target.as_str()),
        ("Content-Type", "application/x-amz-json-1.1"),
    ];
    raw(moto, creds, "secretsmanager", &headers, body)
}

/// [`raw_sm`] in another region.
fn raw_sm_in(
    moto: &Moto,
    creds: (&str, &str, Option<&str>),
    region: &str,
    target: &str,
    body: &str,
) -> Response {
    let target = format!("secretsmanager.{target}");
    let headers = [
        ("X-Amz-Target", target.as_str()),
        ("Content-Type", "application/x-amz-json-1.1"),
    ];
    raw_in(moto, creds, region, "secretsmanager", &headers, body)
}

fn raw(
    moto: &Moto,
    creds: (&str, &str, Option<&str>),
    service: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    raw_in(moto, creds, REGION, service, headers, body)
}

fn raw_in(
    moto: &Moto,
    (access_key, secret_key, session_token): (&str, &str, Option<&str>),
    region: &str,
    service: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let signer = Signer {
        access_key,
        secret_key,
        session_token,
        region,
        service,
    };
    let signed = signer.sign(
        "POST",
        &moto.addr().to_string(),
        "/",
        headers,
        body.as_bytes(),
    );
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.extend(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    http_request(moto.addr(), "POST", "/", &all, body.as_bytes()).expect("request to moto")
}

const FUNCTION: (&str, &str, Option<&str>) = (
    policies::FUNCTION_ACCESS_KEY_ID,
    policies::FUNCTION_SECRET_ACCESS_KEY,
    Some(policies::FUNCTION_SESSION_TOKEN),
);
const ADMIN: (&str, &str, Option<&str>) = (
    policies::ADMIN_ACCESS_KEY_ID,
    policies::ADMIN_SECRET_ACCESS_KEY,
    None,
);

// ---- 1. UpdateSecretVersionStage moves the current version for every later call ----------------

#[tokio::test]
async fn after_moving_awscurrent_reads_without_a_stage_and_the_next_put_follow_the_label() {
    let w = World::start().await;
    let World { east, .. } = &w;
    let a = w.seed("app/db", "v1").await.version;
    let b = put_value(east, "app/db", "v2").await;
    // A rollback: AWSCURRENT back to the first version.
    east.update_secret_version_stage()
        .secret_id("app/db")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&a)
        .remove_from_version_id(&b)
        .send()
        .await
        .unwrap();

    let read = east.get_secret_value().secret_id("app/db").send().await;
    let read = read.unwrap();
    assert_eq!(read.secret_string(), Some("v1"));
    assert_eq!(read.version_id(), Some(a.as_str()));

    let c = put_value(east, "app/db", "v3").await;
    let l = labels(east, "app/db").await;
    assert_eq!(holding(&l, "AWSCURRENT"), [c.as_str()], "{l:?}");
    assert_eq!(holding(&l, "AWSPREVIOUS"), [a.as_str()], "{l:?}");
    let read = east.get_secret_value().secret_id("app/db").send().await;
    assert_eq!(read.unwrap().secret_string(), Some("v3"));
}

// ---- 2. PrimaryRegion as recorded, or on every secret -------------------------------------------

/// Creates `name` in `primary` with a native replica in `replica`.
async fn primary_with_replica(sm: &Sm, name: &str, replica: &str) {
    sm.create_secret()
        .name(name)
        .secret_string("v1")
        .add_replica_regions(
            aws_sdk_secretsmanager::types::ReplicaRegionType::builder()
                .region(replica)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateSecret {name} with a replica: {e:?}"));
}

/// The `PrimaryRegion` of `name` in DescribeSecret and in ListSecrets.
async fn primary_regions(sm: &Sm, name: &str) -> (Option<String>, Option<String>) {
    let d = describe(sm, name).await;
    let listed = sm.list_secrets().send().await.unwrap();
    let entry = listed
        .secret_list()
        .iter()
        .find(|e| e.name() == Some(name))
        .unwrap_or_else(|| panic!("{name} not listed"));
    (
        d.primary_region().map(str::to_string),
        entry.primary_region().map(str::to_string),
    )
}

#[tokio::test]
async fn a_plain_primary_has_no_primary_region_as_recorded() {
    let moto = Moto::start();
    let west = sm(&moto.endpoint(), "us-west-2").await;
    seed_secret(&west, "app/db", "v1").await;

    assert_eq!(primary_regions(&west, "app/db").await, (None, None));
    // The raw answer has no such key (not a null).
    let r = raw_sm_in(
        &moto,
        ADMIN,
        "us-west-2",
        "DescribeSecret",
        r#"{"SecretId":"app/db"}"#,
    );
    let body: Value = serde_json::from_slice(&r.body).expect("a JSON body");
    assert!(body.get("PrimaryRegion").is_none(), "{body}");
}

#[tokio::test]
async fn a_primary_with_replicas_and_its_replicas_carry_primary_region() {
    let moto = Moto::start();
    let east = sm(&moto.endpoint(), "us-east-1").await;
    let west = sm(&moto.endpoint(), "us-west-2").await;
    primary_with_replica(&east, "app/db", "us-west-2").await;

    let own = Some("us-east-1".to_string());
    assert_eq!(
        primary_regions(&east, "app/db").await,
        (own.clone(), own.clone())
    );
    assert_eq!(primary_regions(&west, "app/db").await, (own.clone(), own));
}

#[tokio::test]
async fn with_primary_region_on_every_secret_a_plain_primary_names_its_own_region() {
    let moto = Moto::start_with_primary_region(PrimaryRegion::Every);
    let east = sm(&moto.endpoint(), "us-east-1").await;
    let west = sm(&moto.endpoint(), "us-west-2").await;
    seed_secret(&west, "app/plain", "v1").await;
    primary_with_replica(&east, "app/db", "us-west-2").await;

    let west_region = Some("us-west-2".to_string());
    let east_region = Some("us-east-1".to_string());
    assert_eq!(
        primary_regions(&west, "app/plain").await,
        (west_region.clone(), west_region)
    );
    assert_eq!(
        primary_regions(&east, "app/db").await,
        (east_region.clone(), east_region.clone())
    );
    assert_eq!(
        primary_regions(&west, "app/db").await,
        (east_region.clone(), east_region)
    );
}

// ---- 3. only labelled versions in VersionIdsToStages -------------------------------------------

#[tokio::test]
async fn a_version_without_labels_is_listed_only_with_include_deprecated() {
    let w = World::start().await;
    let World { east, .. } = &w;
    let a = w.seed("app/db", "v1").await.version;
    let b = put_value(east, "app/db", "v2").await;
    let c = put_value(east, "app/db", "v3").await; // a: no label left

    let d = describe(east, "app/db").await;
    let stages = d.version_ids_to_stages().expect("VersionIdsToStages");
    assert!(!stages.contains_key(&a), "{stages:?}");
    assert_eq!(stages[&b], ["AWSPREVIOUS"]);
    assert_eq!(stages[&c], ["AWSCURRENT"]);
    let listed = east.list_secrets().send().await.unwrap();
    let listed = listed.secret_list()[0]
        .secret_versions_to_stages()
        .expect("SecretVersionsToStages");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(!listed.contains_key(&a), "{listed:?}");

    let all = labels(east, "app/db").await;
    assert!(all.iter().any(|(v, s)| *v == a && s.is_empty()), "{all:?}");
    let default = east
        .list_secret_version_ids()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = default
        .versions()
        .iter()
        .filter_map(|v| v.version_id())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(!ids.contains(&a.as_str()), "{ids:?}");
}

// ---- 4. IAM denials as AWS sends them ----------------------------------------------------------

#[tokio::test]
async fn a_secrets_manager_denial_is_a_json_access_denied_exception() {
    let w = World::start().await;
    let World { moto, .. } = &w;
    let s = w.seed("app/db", "v1").await;
    // The function's policy has no GetResourcePolicy.
    let as_function = sm_as(moto, "us-east-1", function_credentials()).await;

    let err = as_function
        .get_resource_policy()
        .secret_id("app/db")
        .send()
        .await
        .expect_err("denied");
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");

    let r = raw_sm(
        moto,
        FUNCTION,
        "GetResourcePolicy",
        r#"{"SecretId":"app/db"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.header("x-amzn-ErrorType"), Some("AccessDeniedException"));
    let body: Value = serde_json::from_slice(&r.body).expect("a JSON body");
    assert_eq!(body["__type"], "AccessDeniedException");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "User: {FUNCTION_SESSION_ARN} is not authorized to perform: \
             secretsmanager:GetResourcePolicy on resource: {}",
            s.arn
        )),
        "{message}"
    );
}

#[tokio::test]
async fn a_kms_denial_is_a_json_access_denied_exception() {
    let moto = Moto::start();
    let as_function = kms_as(&moto, "us-east-1", function_credentials()).await;
    let err = as_function.create_key().send().await.expect_err("denied");
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");
}

#[tokio::test]
async fn an_sts_denial_keeps_the_query_protocol_shape() {
    let moto = Moto::start();
    // The destination role trusts the function's role only.
    let as_admin = sts_as(&moto, base_credentials()).await;
    let err = as_admin
        .assume_role()
        .role_arn(DEST_ROLE_ARN)
        .role_session_name("intruder")
        .external_id(EXTERNAL_ID)
        .send()
        .await
        .expect_err("denied");
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");

    let role = DEST_ROLE_ARN.replace(':', "%3A").replace('/', "%2F");
    let body = format!("Action=AssumeRole&Version=2011-06-15&RoleArn={role}&RoleSessionName=x1");
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = raw(&moto, ADMIN, "sts", &headers, &body);
    assert_eq!(r.status, 403, "{}", r.text());
    let text = r.text();
    assert!(
        text.starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>AccessDenied</Code>"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "is not authorized to perform: sts:AssumeRole on resource: {DEST_ROLE_ARN}"
        )),
        "{text}"
    );
    assert!(text.contains("<RequestId>"), "{text}");
}

// ---- 5. resources: secrets and keys ------------------------------------------------------------

#[tokio::test]
async fn a_policy_scoped_to_a_name_prefix_allows_exactly_those_secrets() {
    let scoped = vec![json!({
        "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
        "Resource": "arn:aws:secretsmanager:*:123456789012:secret:app/*"
    })];
    let moto = Moto::start_with(&IamSetup::with_function_policy(scoped));
    let east = sm(&moto.endpoint(), "us-east-1").await;
    let app = seed_secret(&east, "app/x", "in").await;
    seed_secret(&east, "other/x", "out").await;
    let as_function = sm_as(&moto, "us-east-1", function_credentials()).await;

    for id in ["app/x", app.arn.as_str()] {
        let read = as_function.get_secret_value().secret_id(id).send().await;
        assert_eq!(read.unwrap().secret_string(), Some("in"));
    }
    // A name nothing has, inside the scope: allowed, and so not found.
    let missing = as_function
        .describe_secret()
        .secret_id("app/missing")
        .send()
        .await;
    assert_eq!(
        missing.expect_err("missing").code(),
        Some("ResourceNotFoundException")
    );
    for id in ["other/x", "other/missing"] {
        let err = as_function
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .expect_err("outside the scope");
        assert_eq!(err.code(), Some("AccessDeniedException"), "{id}: {err:?}");
    }
    // ListSecrets takes no resource: "*" matches no scoped statement.
    let err = as_function.list_secrets().send().await.expect_err("*");
    assert_eq!(err.code(), Some("AccessDeniedException"));

    // What the log says about the checks.
    let calls = moto.iam_calls();
    let denied: Vec<&Value> = calls
        .iter()
        .filter(|c| c["allowed"] == false && c["action"] == "secretsmanager:GetSecretValue")
        .collect();
    assert_eq!(denied.len(), 2, "{calls:?}");
    assert!(
        denied[0]["resource"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:secretsmanager:us-east-1:123456789012:secret:other/x-"),
        "{:?}",
        denied[0]
    );
    assert_eq!(
        denied[1]["resource"],
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:other/missing-??????"
    );
    assert_eq!(denied[0]["principal"], FUNCTION_SESSION_ARN);
    assert_eq!(denied[0]["principal_role"], FUNCTION_ROLE_ARN);
    assert_eq!(denied[0]["account"], ACCOUNT);
    assert_eq!(denied[0]["region"], "us-east-1");
    assert_eq!(denied[0]["context"], json!({}));
}

#[tokio::test]
async fn describe_key_is_allowed_on_the_configured_keys_only() {
    let setup = IamSetup::with_function_policy(policies::function_policy_with(&[(
        "KmsKeyArns",
        "arn:aws:kms:us-west-2:123456789012:key/*",
    )]));
    let moto = Moto::start_with(&setup);
    let inside = kms(&moto.endpoint(), "us-west-2").await;
    let outside = kms(&moto.endpoint(), "us-east-1").await;
    let key_in = inside.create_key().send().await.unwrap();
    let key_in = key_in.key_metadata().unwrap();
    inside
        .create_alias()
        .alias_name("alias/dr")
        .target_key_id(key_in.key_id())
        .send()
        .await
        .unwrap();
    let key_out = outside.create_key().send().await.unwrap();
    let key_out = key_out.key_metadata().unwrap().arn().unwrap().to_string();

    let west = kms_as(&moto, "us-west-2", function_credentials()).await;
    for id in [key_in.key_id(), key_in.arn().unwrap(), "alias/dr"] {
        let d = west.describe_key().key_id(id).send().await;
        assert_eq!(
            d.unwrap().key_metadata().unwrap().arn(),
            key_in.arn(),
            "{id}"
        );
    }
    let east = kms_as(&moto, "us-east-1", function_credentials()).await;
    let err = east
        .describe_key()
        .key_id(&key_out)
        .send()
        .await
        .expect_err("a key outside KmsKeyArns");
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");
    // A key that does not exist has no key policy to be allowed by: not found, as on AWS.
    let err = west
        .describe_key()
        .key_id("alias/nothing")
        .send()
        .await
        .expect_err("no such alias");
    assert_eq!(err.code(), Some("NotFoundException"), "{err:?}");
}

#[tokio::test]
async fn the_log_names_the_customer_managed_keys_a_secrets_manager_call_uses() {
    let moto = Moto::start();
    let keys = kms(&moto.endpoint(), "us-east-1").await;
    let key = keys.create_key().send().await.unwrap();
    let key = key.key_metadata().unwrap();
    keys.create_alias()
        .alias_name("alias/app")
        .target_key_id(key.key_id())
        .send()
        .await
        .unwrap();
    let east = sm(&moto.endpoint(), "us-east-1").await;
    east.create_secret()
        .name("app/keyed")
        .secret_string("v")
        .kms_key_id("alias/app")
        .send()
        .await
        .unwrap();
    seed_secret(&east, "app/default", "v").await;
    let as_function = sm_as(&moto, "us-east-1", function_credentials()).await;
    as_function
        .get_secret_value()
        .secret_id("app/keyed")
        .send()
        .await
        .unwrap();
    as_function
        .get_secret_value()
        .secret_id("app/default")
        .send()
        .await
        .unwrap();

    let calls = moto.iam_calls();
    let of = |action: &str, name: &str| -> Value {
        calls
            .iter()
            .find(|c| c["action"] == action && c["resource"].as_str().unwrap().contains(name))
            .cloned()
            .unwrap_or_else(|| panic!("no {action} on {name}: {calls:?}"))
    };
    let key_arn = json!([key.arn().unwrap()]);
    assert_eq!(
        of("secretsmanager:CreateSecret", "app/keyed")["kms_keys"],
        key_arn
    );
    assert_eq!(
        of("secretsmanager:GetSecretValue", "app/keyed")["kms_keys"],
        key_arn
    );
    assert_eq!(
        of("secretsmanager:GetSecretValue", "app/default")["kms_keys"],
        json!([])
    );
    let admin = of("secretsmanager:CreateSecret", "app/default");
    assert_eq!(admin["principal"], policies::ADMIN_USER_ARN);
    assert_eq!(admin["principal_role"], Value::Null);
    assert!(calls.iter().all(|c| c["allowed"] == true), "{calls:?}");
}

// ---- 6. principals in trust policies -----------------------------------------------------------

#[tokio::test]
async fn a_role_principal_matches_its_sessions_and_an_account_root_matches_that_account() {
    let moto = Moto::start();
    // The destination role trusts the function's role: its session may assume it.
    let as_function = sts_as(&moto, function_credentials()).await;
    let out = as_function
        .assume_role()
        .role_arn(DEST_ROLE_ARN)
        .role_session_name("secret-replicator")
        .external_id(EXTERNAL_ID)
        .send()
        .await
        .expect("the function's session is trusted");
    assert_eq!(
        out.assumed_role_user().unwrap().arn(),
        "arn:aws:sts::222233334444:assumed-role/secret-replicator-destination/secret-replicator"
    );
    // The trust's conditions are evaluated (the launcher keeps them): without the external id,
    // or with another one, the same session is refused.
    for external_id in [None, Some("not-the-id")] {
        let denied = as_function
            .assume_role()
            .role_arn(DEST_ROLE_ARN)
            .role_session_name("secret-replicator")
            .set_external_id(external_id.map(str::to_string))
            .send()
            .await;
        assert_eq!(
            denied.expect_err("the external id is required").code(),
            Some("AccessDenied"),
            "{external_id:?}"
        );
    }
    // Another principal of the same account is not that role.
    let as_admin = sts_as(&moto, base_credentials()).await;
    let denied = as_admin
        .assume_role()
        .role_arn(DEST_ROLE_ARN)
        .role_session_name("admin")
        .external_id(EXTERNAL_ID)
        .send()
        .await;
    assert_eq!(
        denied.expect_err("not trusted").code(),
        Some("AccessDenied")
    );

    // role/admin trusts arn:aws:iam::123456789012:root: a user of that account ...
    let dest_admin = policies::admin_role_arn(DEST_ACCOUNT);
    as_admin
        .assume_role()
        .role_arn(&dest_admin)
        .role_session_name("user")
        .send()
        .await
        .expect("a user of the trusted account");
    // ... and a role session of that account ...
    let source_session = account_credentials(&moto.endpoint(), ACCOUNT).await;
    sts_as(&moto, source_session)
        .await
        .assume_role()
        .role_arn(&dest_admin)
        .role_session_name("session")
        .send()
        .await
        .expect("a role session of the trusted account");
    // ... but no principal of another account.
    let dest_session = account_credentials(&moto.endpoint(), DEST_ACCOUNT).await;
    let denied = sts_as(&moto, dest_session)
        .await
        .assume_role()
        .role_arn(policies::admin_role_arn(ACCOUNT))
        .role_session_name("other")
        .send()
        .await;
    assert_eq!(
        denied.expect_err("another account").code(),
        Some("AccessDenied")
    );

    let assumes: Vec<Value> = moto
        .iam_calls()
        .into_iter()
        .filter(|c| c["action"] == "sts:AssumeRole")
        .collect();
    assert_eq!(
        assumes[0]["context"],
        json!({"sts:ExternalId": EXTERNAL_ID, "sts:RoleSessionName": "secret-replicator"})
    );
    assert_eq!(assumes[0]["resource"], DEST_ROLE_ARN);
    assert_eq!(assumes[0]["principal_role"], FUNCTION_ROLE_ARN);
    // After the two refused attempts without the right external id and the admin's refusal.
    assert_eq!(
        assumes[1]["context"],
        json!({"sts:RoleSessionName": "secret-replicator"})
    );
    assert_eq!(
        assumes[4]["context"],
        json!({"sts:RoleSessionName": "user"})
    );
}

// ---- 7. writes to a secret scheduled for deletion ----------------------------------------------

#[tokio::test]
async fn writes_to_a_secret_scheduled_for_deletion_are_invalid_requests() {
    let w = World::start().await;
    let World { east, .. } = &w;
    let s = w.seed("app/db", "v1").await;
    let b = put_value(east, "app/db", "v2").await;
    east.delete_secret()
        .secret_id("app/db")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();

    let tag = aws_sdk_secretsmanager::types::Tag::builder()
        .key("k")
        .value("v")
        .build();
    let codes = [
        (
            "PutSecretValue",
            east.put_secret_value()
                .secret_id("app/db")
                .secret_string("v3")
                .send()
                .await
                .err()
                .and_then(|e| e.code().map(str::to_string)),
        ),
        (
            "UpdateSecret",
            east.update_secret()
                .secret_id("app/db")
                .description("d")
                .send()
                .await
                .err()
                .and_then(|e| e.code().map(str::to_string)),
        ),
        (
            "UpdateSecretVersionStage",
            east.update_secret_version_stage()
                .secret_id("app/db")
                .version_stage("AWSCURRENT")
                .move_to_version_id(&s.version)
                .remove_from_version_id(&b)
                .send()
                .await
                .err()
                .and_then(|e| e.code().map(str::to_string)),
        ),
        (
            "TagResource",
            east.tag_resource()
                .secret_id("app/db")
                .tags(tag)
                .send()
                .await
                .err()
                .and_then(|e| e.code().map(str::to_string)),
        ),
        (
            "UntagResource",
            east.untag_resource()
                .secret_id("app/db")
                .tag_keys("k")
                .send()
                .await
                .err()
                .and_then(|e| e.code().map(str::to_string)),
        ),
        (
            "CreateSecret",
            east.create_secret()
                .name("app/db")
                .secret_string("again")
                .send()
                .await
                .err()
                .and_then(|e| e.code().map(str::to_string)),
        ),
    ];
    for (op, code) in codes {
        assert_eq!(code.as_deref(), Some("InvalidRequestException"), "{op}");
    }
    // Nothing was written, and once restored the secret takes writes again.
    east.restore_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(current(east, "app/db").await.as_deref(), Some("v2"));
    put_value(east, "app/db", "v3").await;
}

/// The error of a raw Secrets Manager request: status, `__type`, and the body's keys.
fn json_error(r: &Response) -> (u16, String, Value) {
    let body: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not a JSON error ({e}): {}", r.text()));
    let ty = body["__type"].as_str().unwrap_or_default().to_string();
    (r.status, ty, body)
}

#[tokio::test]
async fn creating_a_name_scheduled_for_deletion_answers_as_recorded() {
    let w = World::start().await;
    let World { moto, east, .. } = &w;
    w.seed("app/db", "v1").await;
    east.delete_secret()
        .secret_id("app/db")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();

    // localstack test_exp_raised_on_creation_of_secret_scheduled_for_deletion, `invalid_req_ex`.
    let r = raw_sm(
        moto,
        ADMIN,
        "CreateSecret",
        r#"{"Name":"app/db","SecretString":"again","ClientRequestToken":"11111111-2222-4333-8444-555555555555"}"#,
    );
    let (status, ty, body) = json_error(&r);
    assert_eq!(
        (status, ty.as_str()),
        (400, "InvalidRequestException"),
        "{body}"
    );
    assert_eq!(
        body["Message"],
        "You can't create this secret because a secret with this name is already scheduled for deletion."
    );
}

#[tokio::test]
async fn tagging_or_untagging_a_secret_scheduled_for_deletion_is_an_invalid_request() {
    let w = World::start().await;
    let World { moto, east, .. } = &w;
    east.create_secret()
        .name("app/db")
        .secret_string("v1")
        .tags(
            aws_sdk_secretsmanager::types::Tag::builder()
                .key("initial-tag")
                .value("initial-value")
                .build(),
        )
        .send()
        .await
        .unwrap();
    east.delete_secret()
        .secret_id("app/db")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();

    // localstack test_tag_untag_resource_on_deleted_secret.
    for (op, body) in [
        (
            "TagResource",
            r#"{"SecretId":"app/db","Tags":[{"Key":"new-tag","Value":"new-value"}]}"#,
        ),
        (
            "UntagResource",
            r#"{"SecretId":"app/db","TagKeys":["initial-tag"]}"#,
        ),
    ] {
        let (status, ty, body) = json_error(&raw_sm(moto, ADMIN, op, body));
        assert_eq!(
            (status, ty.as_str()),
            (400, "InvalidRequestException"),
            "{op}: {body}"
        );
        assert!(body["Message"].is_string(), "{op}: {body}");
    }
    // Nothing changed: the tags are those of the creation.
    let d = describe(east, "app/db").await;
    assert_eq!(tags_of(&d), pairs(&[("initial-tag", "initial-value")]));
}

// ---- 8. a plain PutSecretValue drops AWSPENDING from the version it demotes -------------------

#[tokio::test]
async fn a_plain_put_leaves_the_demoted_version_only_awsprevious() {
    let w = World::start().await;
    let World { east, .. } = &w;
    // The steps of localstack's test_update_secret_version_stages_current_pending.
    let v1 = w.seed("app/db", "S1").await.version;
    let v2 = east
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("S2")
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
        .move_to_version_id(&v2)
        .remove_from_version_id(&v1)
        .send()
        .await
        .unwrap();
    let l = labels(east, "app/db").await;
    assert_eq!(holding(&l, "AWSCURRENT"), [v2.as_str()], "{l:?}");
    assert_eq!(holding(&l, "AWSPENDING"), [v2.as_str()], "{l:?}");

    let v3 = put_value(east, "app/db", "S3").await;

    let l = labels(east, "app/db").await;
    let stages_of = |v: &str| -> Vec<String> {
        l.iter()
            .find(|(id, _)| id == v)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    };
    assert_eq!(stages_of(&v2), ["AWSPREVIOUS"], "{l:?}");
    assert_eq!(stages_of(&v3), ["AWSCURRENT"], "{l:?}");
    assert!(stages_of(&v1).is_empty(), "{l:?}");
}

// ---- 9. Secrets Manager errors carry `Message` (KMS: `message`) --------------------------------

#[tokio::test]
async fn secrets_manager_errors_carry_message_with_400_and_kms_errors_message() {
    let w = World::start().await;
    let World { moto, .. } = &w;
    let s = w.seed("app/db", "v1").await;

    // localstack test_secret_not_found, `get_secret_value_not_found_ex`.
    let (status, ty, body) = json_error(&raw_sm(
        moto,
        ADMIN,
        "GetSecretValue",
        r#"{"SecretId":"app/missing"}"#,
    ));
    assert_eq!(
        (status, ty.as_str()),
        (400, "ResourceNotFoundException"),
        "{body}"
    );
    assert_eq!(
        body["Message"],
        "Secrets Manager can't find the specified secret."
    );
    assert!(body.get("message").is_none(), "{body}");

    // localstack test_get_secret_value_errors, `mismatch_version_id_and_stage`.
    let mismatch = format!(
        r#"{{"SecretId":"app/db","VersionId":"{}","VersionStage":"AWSPREVIOUS"}}"#,
        s.version
    );
    let (status, ty, body) = json_error(&raw_sm(moto, ADMIN, "GetSecretValue", &mismatch));
    assert_eq!(
        (status, ty.as_str()),
        (400, "InvalidRequestException"),
        "{body}"
    );
    assert_eq!(
        body["Message"],
        "You provided a VersionStage that is not associated to the provided VersionId."
    );

    // The SDK reads the message either way.
    let east = sm(&moto.endpoint(), "us-east-1").await;
    let err = east
        .get_secret_value()
        .secret_id("app/missing")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    assert_eq!(
        err.message(),
        Some("Secrets Manager can't find the specified secret.")
    );

    // KMS keeps `message`.
    let headers = [
        ("X-Amz-Target", "TrentService.DescribeKey"),
        ("Content-Type", "application/x-amz-json-1.1"),
    ];
    let r = raw(moto, ADMIN, "kms", &headers, r#"{"KeyId":"alias/nothing"}"#);
    let (status, ty, body) = json_error(&r);
    assert_eq!((status, ty.as_str()), (400, "NotFoundException"), "{body}");
    assert!(body["message"].is_string(), "{body}");
}

// ---- enforcement reaches the product -----------------------------------------------------------

/// The function policy with one action taken out of every statement.
fn without(action: &str) -> Vec<Value> {
    policies::function_policy_without(action)
}

#[tokio::test]
async fn a_function_policy_without_create_secret_fails_the_first_write_with_access_denied() {
    let moto = Moto::start_with(&IamSetup::with_function_policy(without(
        "secretsmanager:CreateSecret",
    )));
    let east = sm(&moto.endpoint(), "us-east-1").await;
    let source = seed_secret(&east, "app/db", "v1").await;
    let config = json!({"rules": [{"destinations": [{"region": "us-west-2"}]}]}).to_string();
    let app = app_with(&config, &moto.endpoint()).await;

    let doc = failed(app.handle(&put_event(&source)).await);
    assert_error(only(&doc), "AccessDenied", 403, "permanent");
    let west = sm(&moto.endpoint(), "us-west-2").await;
    assert!(!exists(&west, "app/db").await);
}

#[tokio::test]
async fn a_function_policy_without_put_secret_value_fails_an_update_with_access_denied() {
    let moto = Moto::start_with(&IamSetup::with_function_policy(without(
        "secretsmanager:PutSecretValue",
    )));
    let east = sm(&moto.endpoint(), "us-east-1").await;
    let source = seed_secret(&east, "app/db", "v1").await;
    let config = json!({"rules": [{"destinations": [{"region": "us-west-2"}]}]}).to_string();
    let app = app_with(&config, &moto.endpoint()).await;
    // The first copy is a CreateSecret, which the policy still allows.
    let doc = ok(app.handle(&put_event(&source)).await);
    assert_eq!(only(&doc)["action"], "create", "{doc}");

    put_value(&east, "app/db", "v2").await;
    let doc = failed(app.handle(&put_event(&source)).await);
    assert_error(only(&doc), "AccessDenied", 403, "permanent");
    let west = sm(&moto.endpoint(), "us-west-2").await;
    assert_eq!(current(&west, "app/db").await.as_deref(), Some("v1"));
    let denied: Vec<Value> = moto
        .iam_calls()
        .into_iter()
        .filter(|c| c["allowed"] == false)
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["action"], "secretsmanager:PutSecretValue");
    assert_eq!(denied[0]["principal"], FUNCTION_SESSION_ARN);
}

#[tokio::test]
async fn a_destination_outside_the_scoped_pattern_is_denied_and_one_inside_is_written() {
    let setup = IamSetup::with_function_policy(policies::function_policy_with(&[(
        "DestinationSecretArnPattern",
        "arn:aws:secretsmanager:*:123456789012:secret:dr/*",
    )]));
    let moto = Moto::start_with(&setup);
    let east = sm(&moto.endpoint(), "us-east-1").await;
    let source = seed_secret(&east, "app/db", "v1").await;
    let config = json!({"rules": [{"destinations": [
        {"region": "us-west-2", "name": "dr/${SECRET_NAME}"},
        {"region": "us-west-2", "name": "elsewhere/${SECRET_NAME}"}
    ]}]})
    .to_string();
    let app = app_with(&config, &moto.endpoint()).await;

    let doc = failed(app.handle(&put_event(&source)).await);
    assert_eq!(doc["statusCode"], 207, "{doc}");
    let inside = result_for(&doc, "dr/app/db");
    assert_eq!(inside["status"], "replicated", "{doc}");
    assert_error(
        result_for(&doc, "elsewhere/app/db"),
        "AccessDenied",
        403,
        "permanent",
    );
    let west = sm(&moto.endpoint(), "us-west-2").await;
    assert_eq!(current(&west, "dr/app/db").await.as_deref(), Some("v1"));
    assert!(!exists(&west, "elsewhere/app/db").await);
}

// ---- the harness -------------------------------------------------------------------------------

#[tokio::test]
async fn the_identities_survive_a_reset_and_enforcement_stays_on() {
    let w = World::start().await;
    let World { moto, east, .. } = &w;
    w.seed("app/db", "v1").await;
    moto.reset();

    // Everything is gone but the identities: seeding, reading as the function, and a denial.
    assert!(!exists(east, "app/db").await);
    w.seed("app/db", "v2").await;
    let as_function = sm_as(moto, "us-east-1", function_credentials()).await;
    let read = as_function
        .get_secret_value()
        .secret_id("app/db")
        .send()
        .await;
    assert_eq!(read.unwrap().secret_string(), Some("v2"));
    let err = as_function
        .get_resource_policy()
        .secret_id("app/db")
        .send()
        .await
        .expect_err("still enforced");
    assert_eq!(err.code(), Some("AccessDeniedException"));
    let dest = dest_client(&moto.endpoint(), DEST_ACCOUNT, "us-east-1").await;
    assert!(!exists(&dest, "app/db").await);
    assert_eq!(
        moto.account_of(policies::FUNCTION_ACCESS_KEY_ID),
        policies::SOURCE_ACCOUNT
    );
}
