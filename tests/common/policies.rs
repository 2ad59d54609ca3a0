//! The IAM policies the integration suites run under (SPEC §11), in one place: `template.yaml`'s
//! function role and `iam/destination-role.yaml`'s destination role, resolved by
//! [`super::cfn`] for the test accounts. The corrected moto enforces them (actions and scoped
//! resources; it does not evaluate conditions), and the static policy tests evaluate the same
//! documents with their conditions against the calls the suites recorded.
#![allow(dead_code)]

use super::cfn::{Stack, load_cfn, read_json, resolve_in, root, template};
use serde_json::Value;

/// The function's own account: sources, same-account destinations, configured keys.
pub const SOURCE_ACCOUNT: &str = "123456789012";
/// The cross-account destination of the suites.
pub const DEST_ACCOUNT: &str = "222233334444";
/// The function's region (the stack's `AWS::Region`).
pub const REGION: &str = "us-east-1";
/// The function's execution role as the template creates it: on the `secret-replicator/`
/// path, with a generated name.
pub const FUNCTION_ROLE_ARN: &str =
    "arn:aws:iam::123456789012:role/secret-replicator/secret-replicator-FunctionRole-TEST";
/// The destination role of `iam/destination-role.yaml` in [`DEST_ACCOUNT`].
pub const DEST_ROLE_ARN: &str = "arn:aws:iam::222233334444:role/secret-replicator-destination";
/// The external id the destination role requires (configs name it in `external_id`).
pub const EXTERNAL_ID: &str = "secret-replicator-test-external-id";

/// The template parameters of the suites' function stack. Broad enough for every name and
/// region the suites use in the source account; the actions, the statement structure and the
/// scoping of roles and keys are the template's own.
pub fn function_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ReplicatorConfigFile", "replicator.json"),
        (
            "SourceSecretArnPattern",
            "arn:aws:secretsmanager:*:123456789012:secret:*",
        ),
        (
            "DestinationSecretArnPattern",
            "arn:aws:secretsmanager:*:123456789012:secret:*",
        ),
        ("DestinationRoleArns", DEST_ROLE_ARN),
        ("KmsKeyArns", "arn:aws:kms:*:123456789012:key/*"),
        // The suites adopt same-account destinations (tests/ownership.rs); the destination
        // role keeps the default, so cross-account writes meet the marker conditions.
        ("AllowAdoption", "true"),
    ]
}

/// The parameters of the suites' destination-role stack in [`DEST_ACCOUNT`].
pub fn destination_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SourceAccountId", SOURCE_ACCOUNT),
        ("ExternalId", EXTERNAL_ID),
        // Every secret of the account, in every region (secret:*).
        ("SecretNamePrefix", ""),
        ("KmsKeyArns", "arn:aws:kms:*:222233334444:key/*"),
    ]
}

/// The function stack as CloudFormation would create it for [`function_params`].
pub fn function_stack() -> Stack {
    resolve_in(&template(), &function_params(), SOURCE_ACCOUNT, REGION)
}

/// The destination-role stack as CloudFormation would create it for [`destination_params`].
pub fn destination_stack() -> Stack {
    let t = load_cfn(&root().join("iam/destination-role.yaml"));
    resolve_in(&t, &destination_params(), DEST_ACCOUNT, REGION)
}

/// Every statement of a role resource's inline policies (`Policies[].PolicyDocument`) and of
/// the managed or standalone policies attached to it in the same stack
/// (`AWS::IAM::Policy`/`AWS::IAM::ManagedPolicy` naming it in `Roles`).
pub fn role_statements(stack: &Stack, role: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let r = stack.get(role);
    for p in r["Properties"]["Policies"].as_array().into_iter().flatten() {
        out.extend(statements(&p["PolicyDocument"]));
    }
    let reference = format!("<{role}>");
    for (_, res) in stack.resources.iter() {
        let ty = res["Type"].as_str().unwrap_or_default();
        if ty != "AWS::IAM::Policy" && ty != "AWS::IAM::ManagedPolicy" {
            continue;
        }
        let roles = res["Properties"]["Roles"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if roles.iter().any(|x| x.as_str() == Some(reference.as_str())) {
            out.extend(statements(&res["Properties"]["PolicyDocument"]));
        }
    }
    out
}

/// The trust policy (`AssumeRolePolicyDocument`) statements of a role resource.
pub fn trust_statements(stack: &Stack, role: &str) -> Vec<Value> {
    statements(&stack.get(role)["Properties"]["AssumeRolePolicyDocument"])
}

fn statements(doc: &Value) -> Vec<Value> {
    match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![doc["Statement"].clone()],
        _ => Vec::new(),
    }
}

/// The function role's identity-policy statements for the suites.
pub fn function_policy() -> Vec<Value> {
    role_statements(&function_stack(), "FunctionRole")
}

/// The destination role's identity-policy statements for the suites.
pub fn destination_policy() -> Vec<Value> {
    role_statements(&destination_stack(), "DestinationRole")
}

/// The destination role's trust-policy statements for the suites.
pub fn destination_trust() -> Vec<Value> {
    trust_statements(&destination_stack(), "DestinationRole")
}

/// The suites' role that uses the customer-managed keys of `account` through Secrets Manager:
/// the function role in [`SOURCE_ACCOUNT`], the destination role in [`DEST_ACCOUNT`].
pub fn key_user(account: &str) -> Option<&'static str> {
    match account {
        SOURCE_ACCOUNT => Some(FUNCTION_ROLE_ARN),
        DEST_ACCOUNT => Some(DEST_ROLE_ARN),
        _ => None,
    }
}

/// The key policy of `iam/kms-key-policy-snippet.json` as the suites' keys would carry it: its
/// example account, region and destination role replaced by the key's account and region and
/// by [`key_user`] of that account. `None` for a key outside the suites' accounts.
pub fn key_policy(key_arn: &str) -> Option<Vec<Value>> {
    let parts: Vec<&str> = key_arn.splitn(6, ':').collect();
    assert!(
        parts.len() == 6 && parts[2] == "kms" && parts[5].starts_with("key/"),
        "{key_arn:?} is not a KMS key ARN"
    );
    let (region, account) = (parts[3], parts[4]);
    let user = key_user(account)?;
    let snippet = read_json(&root().join("iam/kms-key-policy-snippet.json"));
    let resolved = replace_strings(&snippet, &|s: &str| {
        if s == EXAMPLE_DEST_ROLE {
            user.to_string()
        } else {
            s.replace(EXAMPLE_DEST_ACCOUNT, account)
                .replace(EXAMPLE_DEST_REGION, region)
        }
    });
    Some(statements(&resolved))
}

/// The example values of the standalone documents under `iam/`.
const EXAMPLE_DEST_ACCOUNT: &str = "222222222222";
const EXAMPLE_DEST_REGION: &str = "us-west-2";
const EXAMPLE_DEST_ROLE: &str = "arn:aws:iam::222222222222:role/secret-replicator-destination";

fn replace_strings(v: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::String(s) => Value::String(f(s)),
        Value::Array(a) => Value::Array(a.iter().map(|x| replace_strings(x, f)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (f(k), replace_strings(x, f)))
                .collect(),
        ),
        other => other.clone(),
    }
}

// ---- identities of the IAM-enforcing moto (tests/moto/server.py) -------------------------------

/// The source account's admin user (seeding and inspection): the credentials
/// `app::base_credentials` returns.
pub const ADMIN_USER_ARN: &str = "arn:aws:iam::123456789012:user/admin";
/// Its access key id.
pub const ADMIN_ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
/// Its secret access key.
pub const ADMIN_SECRET_ACCESS_KEY: &str = "secret";
/// Every account the suites seed or inspect. Each has the role [`admin_role_arn`] (any action on
/// any resource), which the source account's admin user may assume.
pub const ADMIN_ACCOUNTS: [&str; 2] = [SOURCE_ACCOUNT, DEST_ACCOUNT];

/// The admin role of an account in [`ADMIN_ACCOUNTS`] (`app::account_credentials` assumes it).
pub fn admin_role_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:role/admin")
}

/// The session name of the function's role session, as on Lambda (the function's name).
pub const FUNCTION_SESSION_NAME: &str = "secret-replicator";
/// The principal moto resolves the function's credentials to: a session of [`FUNCTION_ROLE_ARN`].
pub const FUNCTION_SESSION_ARN: &str =
    "arn:aws:sts::123456789012:assumed-role/secret-replicator-FunctionRole-TEST/secret-replicator";
/// The function session's access key id (pre-made in moto's STS backend, never expires).
pub const FUNCTION_ACCESS_KEY_ID: &str = "ASIAFUNCTIONSESSION1";
/// The function session's secret access key.
pub const FUNCTION_SECRET_ACCESS_KEY: &str = "function-session-secret";
/// The function session's token.
pub const FUNCTION_SESSION_TOKEN: &str = "function-session-token";

/// Any action on any resource.
pub fn admin_policy() -> Vec<Value> {
    vec![serde_json::json!({"Effect": "Allow", "Action": "*", "Resource": "*"})]
}

/// The function role's statements for the suites' parameters with some of them replaced
/// (e.g. a narrower `DestinationSecretArnPattern`).
pub fn function_policy_with(overrides: &[(&str, &str)]) -> Vec<Value> {
    let mut params: Vec<(&str, &str)> = function_params();
    for &(k, v) in overrides {
        match params.iter_mut().find(|(name, _)| *name == k) {
            Some(p) => p.1 = v,
            None => params.push((k, v)),
        }
    }
    role_statements(
        &resolve_in(&template(), &params, SOURCE_ACCOUNT, REGION),
        "FunctionRole",
    )
}

/// The function role's trust policy (the template's: Lambda may assume it).
pub fn function_trust() -> Vec<Value> {
    trust_statements(&function_stack(), "FunctionRole")
}

/// The function policy with one action taken out of every statement (a statement left with no
/// action is dropped: IAM refuses an empty `Action`). `Action` may be a string or a list.
pub fn function_policy_without(action: &str) -> Vec<serde_json::Value> {
    function_policy()
        .into_iter()
        .filter_map(|mut s| {
            match &mut s["Action"] {
                serde_json::Value::String(a) if a == action => return None,
                serde_json::Value::Array(actions) => {
                    actions.retain(|a| a != action);
                    if actions.is_empty() {
                        return None;
                    }
                }
                _ => {}
            }
            Some(s)
        })
        .collect()
}
