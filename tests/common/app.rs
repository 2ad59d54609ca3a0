//! Helpers for driving the product against moto: SDK configuration, an `App` built from a config
//! document, seeding and inspecting secrets in the source and destination accounts, and events
//! built from the fixtures in `tests/fixtures/events/`.

use super::Moto;
use super::policies;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_secretsmanager::Client as Sm;
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use aws_sdk_secretsmanager::primitives::Blob;
use secret_replicator::app::{App, Failure};
use secret_replicator::aws::{AwsStores, sdk_config_loader};
use secret_replicator::metrics::Metrics;
use secret_replicator::outcome::Report;
use secret_replicator::settings::{Env, Settings};
use serde_json::Value;
use std::time::Duration;

#[allow(unused_imports)]
pub use super::policies::{DEST_ROLE_ARN as DEST_ROLE, EXTERNAL_ID};

/// The account moto gives the test's own (source) credentials.
pub const ACCOUNT: &str = policies::SOURCE_ACCOUNT;
/// The destination account of cross-account tests.
pub const DEST_ACCOUNT: &str = policies::DEST_ACCOUNT;
/// The function's own region.
pub const REGION: &str = "us-east-1";
/// The marker tag of every owned destination.
pub const MARKER: &str = "secret-replicator:source";

/// The source account's admin credentials: any action on any resource, for seeding and
/// inspecting (never for the product, which runs as [`function_credentials`]).
pub fn base_credentials() -> Credentials {
    Credentials::new(
        policies::ADMIN_ACCESS_KEY_ID,
        policies::ADMIN_SECRET_ACCESS_KEY,
        None,
        None,
        "test-admin",
    )
}

/// The function's credentials: a session of the function role (`policies::FUNCTION_ROLE_ARN`,
/// named like the function), holding exactly the template's policy.
pub fn function_credentials() -> Credentials {
    Credentials::new(
        policies::FUNCTION_ACCESS_KEY_ID,
        policies::FUNCTION_SECRET_ACCESS_KEY,
        Some(policies::FUNCTION_SESSION_TOKEN.to_string()),
        None,
        "test-function",
    )
}

/// The environment that gives a spawned product binary the function's credentials.
pub fn function_env() -> [(&'static str, &'static str); 3] {
    [
        ("AWS_ACCESS_KEY_ID", policies::FUNCTION_ACCESS_KEY_ID),
        (
            "AWS_SECRET_ACCESS_KEY",
            policies::FUNCTION_SECRET_ACCESS_KEY,
        ),
        ("AWS_SESSION_TOKEN", policies::FUNCTION_SESSION_TOKEN),
    ]
}

/// The product's SDK configuration (timeouts, retry policy) pointed at `endpoint`, with the
/// function's credentials.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    sdk_config_loader()
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(function_credentials())
        .load()
        .await
}

/// The product's SDK configuration with a 5 ms initial backoff (retry tests stay fast) and,
/// optionally, a short per-attempt timeout. Still 3 attempts.
pub async fn fast_retry_sdk_config(endpoint: &str, attempt_timeout: Option<Duration>) -> SdkConfig {
    let mut timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(20));
    timeouts = match attempt_timeout {
        Some(t) => timeouts.operation_attempt_timeout(t),
        None => timeouts.operation_attempt_timeout(Duration::from_secs(5)),
    };
    sdk_config_loader()
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(function_credentials())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(50)),
        )
        .timeout_config(timeouts.build())
        .load()
        .await
}

/// The product's attempt budget (`store::sdk_config_loader`).
pub const MAX_ATTEMPTS: u32 = 3;

/// Settings from an inline config document, in `us-east-1`, plus extra variables.
pub fn settings(config: &str, extra: &[(&str, &str)]) -> Settings {
    let mut pairs = vec![("REPLICATOR_CONFIG", config), ("AWS_REGION", REGION)];
    pairs.extend_from_slice(extra);
    Settings::from_env(&Env::from_pairs(pairs)).expect("valid settings")
}

/// A fresh container: the App with its own clients, caches and ownership memory.
pub async fn app_from(settings: Settings, sdk: SdkConfig) -> App<AwsStores> {
    let stores = AwsStores::new(sdk, &settings.function_name);
    match App::new(settings, stores, Metrics::OFF).await {
        Ok(app) => app,
        Err(e) => panic!("App::new: {e}"),
    }
}

/// A fresh container with this config document, talking to `endpoint`.
pub async fn app_with(config: &str, endpoint: &str) -> App<AwsStores> {
    app_from(settings(config, &[]), sdk_config(endpoint).await).await
}

/// A Secrets Manager client of the source account in `region` (admin credentials).
pub async fn sm(endpoint: &str, region: &str) -> Sm {
    client_with(endpoint, region, base_credentials()).await
}

async fn client_with(endpoint: &str, region: &str, creds: Credentials) -> Sm {
    Sm::new(&client_config(endpoint, region, creds).await)
}

/// A plain SDK configuration (the SDK's defaults, not the product's) with these credentials.
pub async fn client_config(endpoint: &str, region: &str, creds: Credentials) -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()))
        .credentials_provider(creds)
        .load()
        .await
}

/// Admin credentials in `account` (one of `policies::ADMIN_ACCOUNTS`): AssumeRole on its
/// `policies::admin_role_arn`.
pub async fn account_credentials(endpoint: &str, account: &str) -> Credentials {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(base_credentials())
        .load()
        .await;
    let out = aws_sdk_sts::Client::new(&conf)
        .assume_role()
        .role_arn(policies::admin_role_arn(account))
        .role_session_name("test-inspector")
        .send()
        .await
        .expect("AssumeRole for the test");
    let c = out.credentials().expect("credentials");
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "test-assumed",
    )
}

/// A Secrets Manager client in another account (the destination's), in `region` (admin).
pub async fn dest_client(endpoint: &str, account: &str, region: &str) -> Sm {
    client_with(
        endpoint,
        region,
        account_credentials(endpoint, account).await,
    )
    .await
}

/// A KMS client of the source account in `region` (admin credentials).
pub async fn kms(endpoint: &str, region: &str) -> aws_sdk_kms::Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()))
        .credentials_provider(base_credentials())
        .load()
        .await;
    aws_sdk_kms::Client::new(&conf)
}

/// A secret as created.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub arn: String,
    pub name: String,
    pub version: String,
}

/// CreateSecret with a string value.
pub async fn seed_secret(sm: &Sm, name: &str, value: &str) -> Seeded {
    let out = sm
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("seed {name}: {e:?}"));
    Seeded {
        arn: out.arn().expect("arn").to_string(),
        name: name.to_string(),
        version: out.version_id().expect("version").to_string(),
    }
}

/// CreateSecret with a binary value.
pub async fn seed_binary(sm: &Sm, name: &str, value: &[u8]) -> Seeded {
    let out = sm
        .create_secret()
        .name(name)
        .secret_binary(Blob::new(value.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("seed {name}: {e:?}"));
    Seeded {
        arn: out.arn().expect("arn").to_string(),
        name: name.to_string(),
        version: out.version_id().expect("version").to_string(),
    }
}

/// PutSecretValue (becomes AWSCURRENT); returns the new version id.
pub async fn put_value(sm: &Sm, id: &str, value: &str) -> String {
    sm.put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {id}: {e:?}"))
        .version_id()
        .expect("version")
        .to_string()
}

/// The AWSCURRENT string value (asked for by stage explicitly, as the product does), or None
/// when the secret does not exist.
pub async fn current(sm: &Sm, id: &str) -> Option<String> {
    match sm
        .get_secret_value()
        .secret_id(id)
        .version_stage("AWSCURRENT")
        .send()
        .await
    {
        Ok(out) => Some(out.secret_string().expect("a string secret").to_string()),
        Err(e) if is_not_found(&e) => None,
        Err(e) => panic!("GetSecretValue {id}: {e:?}"),
    }
}

/// The AWSCURRENT version id and binary value.
pub async fn current_binary(sm: &Sm, id: &str) -> Vec<u8> {
    let out = sm
        .get_secret_value()
        .secret_id(id)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetSecretValue {id}: {e:?}"));
    assert!(out.secret_string().is_none(), "{id} should be binary");
    out.secret_binary().expect("SecretBinary").as_ref().to_vec()
}

/// The AWSCURRENT version id.
pub async fn current_version(sm: &Sm, id: &str) -> String {
    sm.get_secret_value()
        .secret_id(id)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetSecretValue {id}: {e:?}"))
        .version_id()
        .expect("version")
        .to_string()
}

fn is_not_found<E: aws_sdk_secretsmanager::error::ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ResourceNotFoundException")
}

/// Number of versions of a secret (ListSecretVersionIds).
pub async fn versions(sm: &Sm, id: &str) -> usize {
    sm.list_secret_version_ids()
        .secret_id(id)
        .include_deprecated(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ListSecretVersionIds {id}: {e:?}"))
        .versions()
        .len()
}

/// DescribeSecret.
pub async fn describe(sm: &Sm, id: &str) -> DescribeSecretOutput {
    sm.describe_secret()
        .secret_id(id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeSecret {id}: {e:?}"))
}

/// Whether a secret of this name exists (DescribeSecret).
pub async fn exists(sm: &Sm, id: &str) -> bool {
    match sm.describe_secret().secret_id(id).send().await {
        Ok(_) => true,
        Err(e) if is_not_found(&e) => false,
        Err(e) => panic!("DescribeSecret {id}: {e:?}"),
    }
}

/// The value of one tag of a described secret.
pub fn tag(d: &DescribeSecretOutput, key: &str) -> Option<String> {
    d.tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
        .map(str::to_string)
}

/// The marker value naming a source secret of the test account.
pub fn marker_of(region: &str, name: &str) -> String {
    format!("{ACCOUNT}:{region}:{name}")
}

// ---- events ------------------------------------------------------------------------------------

/// The fixtures (as EventBridge delivers them; they name `prod/payments/db` in 111122223333).
pub mod fixture {
    pub const CREATE: &str = include_str!("../fixtures/events/cloudtrail-create-secret.json");
    pub const DELETE_OLD_ARN_CASING: &str =
        include_str!("../fixtures/events/cloudtrail-delete-secret-old-arn-casing.json");
    pub const PUT_FAILED: &str =
        include_str!("../fixtures/events/cloudtrail-put-secret-value-failed.json");
    pub const PUT_PENDING: &str =
        include_str!("../fixtures/events/cloudtrail-put-secret-value-pending.json");
    pub const PUT: &str = include_str!("../fixtures/events/cloudtrail-put-secret-value.json");
    pub const UPDATE_STAGE: &str =
        include_str!("../fixtures/events/cloudtrail-update-secret-version-stage.json");
    pub const LABEL_UPDATED: &str =
        include_str!("../fixtures/events/native-secret-label-updated.json");
    pub const ROTATION_SUCCEEDED: &str =
        include_str!("../fixtures/events/service-rotation-succeeded.json");
}

const TEMPLATE_ARN: &str =
    "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/payments/db-Xy12Zq";
const TEMPLATE_NAME: &str = "prod/payments/db";

/// A fixture rewritten to name a real secret: the template ARN becomes `secret.arn`, the
/// template name `secret.name`, and the event's region the secret's region.
pub fn event(fixture: &str, secret: &Seeded) -> Value {
    let mut v: Value = serde_json::from_str(fixture).expect("fixture is JSON");
    rewrite(&mut v, secret);
    let region = secret
        .arn
        .split(':')
        .nth(3)
        .expect("ARN region")
        .to_string();
    v["region"] = Value::String(region.clone());
    if v["detail"].get("awsRegion").is_some() {
        v["detail"]["awsRegion"] = Value::String(region);
    }
    v
}

fn rewrite(v: &mut Value, secret: &Seeded) {
    match v {
        Value::String(s) if s == TEMPLATE_ARN => *s = secret.arn.clone(),
        Value::String(s) if s == TEMPLATE_NAME => *s = secret.name.clone(),
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, secret)),
        Value::Object(o) => o.values_mut().for_each(|x| rewrite(x, secret)),
        _ => {}
    }
}

/// A PutSecretValue CloudTrail event for the secret (secretId = its name).
pub fn put_event(secret: &Seeded) -> Value {
    event(fixture::PUT, secret)
}

/// `{"source": "manual", "secretId": id}`.
pub fn manual(id: &str) -> Value {
    serde_json::json!({"source": "manual", "secretId": id})
}

// ---- results -----------------------------------------------------------------------------------

/// The document of an invocation that must succeed.
pub fn ok(r: Result<Report, Failure>) -> Value {
    match r {
        Ok(report) => doc(&report),
        Err(Failure(report)) => panic!("invocation failed: {}", report.to_json()),
    }
}

/// The document of an invocation that must fail (a Lambda error).
pub fn failed(r: Result<Report, Failure>) -> Value {
    match r {
        Err(Failure(report)) => doc(&report),
        Ok(report) => panic!("invocation should have failed: {}", report.to_json()),
    }
}

/// The document as JSON, as Lambda would return it.
pub fn doc(report: &Report) -> Value {
    serde_json::from_str(&report.to_json()).expect("the document is JSON")
}

/// The one result of a document.
pub fn only(doc: &Value) -> &Value {
    let results = doc["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "one result expected: {doc}");
    &results[0]
}

/// The result for the destination of this name.
pub fn result_for<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["destination"]["name"] == name)
        .unwrap_or_else(|| panic!("no result for {name}: {doc}"))
}

/// Asserts the kind, status code and retry class of a failed result (or of a top-level error).
pub fn assert_error(r: &Value, kind: &str, status: u64, retry: &str) {
    assert_eq!(r["error"]["kind"], kind, "{r}");
    assert_eq!(r["statusCode"], status, "{r}");
    assert_eq!(r["retryClass"], retry, "{r}");
}

/// The Secrets Manager operations moto recorded since the last `reset_calls`.
pub fn sm_ops(moto: &Moto) -> Vec<String> {
    moto.calls()
        .into_iter()
        .filter(|c| c.service == "secretsmanager")
        .map(|c| c.operation)
        .collect()
}

/// The write operations (anything that changes a secret) moto recorded.
pub fn writes(moto: &Moto) -> Vec<String> {
    const WRITES: [&str; 7] = [
        "CreateSecret",
        "PutSecretValue",
        "UpdateSecret",
        "UpdateSecretVersionStage",
        "TagResource",
        "RestoreSecret",
        "DeleteSecret",
    ];
    sm_ops(moto)
        .into_iter()
        .filter(|op| WRITES.contains(&op.as_str()))
        .collect()
}

// ---- keeping copies right over time (tests/sync.rs, tests/plan_cli.rs) -------------------------

/// Every operation that changes a secret, `UntagResource` included.
pub const WRITE_OPS: [&str; 8] = [
    "CreateSecret",
    "PutSecretValue",
    "UpdateSecret",
    "UpdateSecretVersionStage",
    "TagResource",
    "UntagResource",
    "RestoreSecret",
    "DeleteSecret",
];

/// The Secrets Manager write calls ([`WRITE_OPS`]) moto recorded, with their bodies.
pub fn write_calls(moto: &Moto) -> Vec<super::Call> {
    moto.calls()
        .into_iter()
        .filter(|c| c.service == "secretsmanager" && WRITE_OPS.contains(&c.operation.as_str()))
        .collect()
}

/// Whether a recorded request body names the secret `name` (as a name, or inside an ARN).
pub fn body_names(body: &str, name: &str) -> bool {
    body.contains(&format!("\"{name}\"")) || body.contains(&format!(":secret:{name}-"))
}

/// Creates many string secrets concurrently (25 at a time), in order.
pub async fn seed_many(sm: &Sm, secrets: &[(String, String)]) -> Vec<Seeded> {
    let mut out = Vec::with_capacity(secrets.len());
    for chunk in secrets.chunks(25) {
        let seeds = chunk.iter().map(|(n, v)| seed_secret(sm, n, v));
        out.extend(futures::future::join_all(seeds).await);
    }
    out
}

/// CreateSecret with a description and tags.
pub async fn seed_tagged(
    sm: &Sm,
    name: &str,
    value: &str,
    description: Option<&str>,
    tags: &[(&str, &str)],
) -> Seeded {
    let tags = tags
        .iter()
        .map(|(k, v)| {
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(*k)
                .value(*v)
                .build()
        })
        .collect();
    let out = sm
        .create_secret()
        .name(name)
        .secret_string(value)
        .set_description(description.map(str::to_string))
        .set_tags(Some(tags))
        .send()
        .await
        .unwrap_or_else(|e| panic!("seed {name}: {e:?}"));
    Seeded {
        arn: out.arn().expect("arn").to_string(),
        name: name.to_string(),
        version: out.version_id().expect("version").to_string(),
    }
}

/// The names of every secret ListSecrets returns in the client's region (all pages).
pub async fn list_names(sm: &Sm) -> Vec<String> {
    let mut names = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = sm
            .list_secrets()
            .max_results(100)
            .set_next_token(next.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListSecrets: {e:?}"));
        names.extend(
            page.secret_list()
                .iter()
                .filter_map(|s| s.name().map(str::to_string)),
        );
        next = page
            .next_token()
            .map(str::to_string)
            .filter(|t| !t.is_empty());
        if next.is_none() {
            return names;
        }
    }
}

/// Every tag of a described secret, sorted.
pub fn tags_of(d: &DescribeSecretOutput) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = d
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect();
    t.sort();
    t
}

/// `(key, value)` pairs as owned strings, sorted (to compare with [`tags_of`]).
pub fn pairs(tags: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    t.sort();
    t
}

/// The manual `all` payload.
pub fn manual_all() -> Value {
    serde_json::json!({"source": "manual", "all": true})
}

/// The results of a document whose `source` is this secret (its ARN or its name).
pub fn results_of<'a>(doc: &'a Value, source: &Seeded) -> Vec<&'a Value> {
    doc["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["source"] == source.arn.as_str() || r["source"] == source.name.as_str())
        .collect()
}
