//! Rolling out to many accounts (README "Rolling out to many accounts", SPEC §11):
//!
//! - `iam/destination-role.yaml`, the StackSet every destination account gets: its trust names
//!   the source account and requires the external id and a role on the `secret-replicator/`
//!   path there; it allows no action on `*` but `secretsmanager:ListSecrets`; it grants what
//!   `iam/destination-role-policy.json` grants.
//! - `template.yaml`'s function role is on that path, with a generated name, and allows no
//!   action on `*` but `secretsmanager:ListSecrets`.
//! - Every `sts:AssumeRole` trust under `iam/` requires `sts:ExternalId`.
//! - The example configurations under `examples/` pass the built binary's `validate`.
//!
//! Static, apart from the `validate` runs (a local process, no network).

mod common;

use common::cfn::{Stack, files, load_cfn, read_json, resolve_in, root, scenarios, template};
use common::iam::{Caller, Context, Kind, Policy, Request, action_matches, evaluate};
use common::policies::{role_statements, trust_statements};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const SOURCE: &str = "111111111111";
const DEST: &str = "222222222222";
const EXTERNAL_ID: &str = "4f1c0b6e9d2a7c3b5e8f0a1b";
const PATH_PATTERN: &str = "arn:aws:iam::111111111111:role/secret-replicator/*";

fn stackset_template() -> Value {
    load_cfn(&root().join("iam/destination-role.yaml"))
}

/// The StackSet's stack in [`DEST`] (us-west-2), with and without configured keys, with and
/// without a name prefix.
fn stackset_stacks() -> Vec<(String, Stack)> {
    let t = stackset_template();
    let mut out = Vec::new();
    for keys in ["", "arn:aws:kms:us-west-2:222222222222:key/k-1"] {
        for prefix in ["", "dr/"] {
            let params = [
                ("SourceAccountId", SOURCE),
                ("ExternalId", EXTERNAL_ID),
                ("KmsKeyArns", keys),
                ("SecretNamePrefix", prefix),
            ];
            out.push((
                format!(
                    "iam/destination-role.yaml [KmsKeyArns={keys:?}, SecretNamePrefix={prefix:?}]"
                ),
                resolve_in(&t, &params, DEST, "us-west-2"),
            ));
        }
    }
    out
}

/// A JSON value that may be one string or a list of them.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .unwrap_or_else(|| panic!("not a string: {x}"))
                    .to_string()
            })
            .collect(),
        Value::Null => Vec::new(),
        other => panic!("not a string or list: {other}"),
    }
}

fn statements(doc: &Value) -> Vec<Value> {
    match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![doc["Statement"].clone()],
        _ => Vec::new(),
    }
}

/// Every Allow statement of `statements` that allows an action on `"*"` other than
/// `secretsmanager:ListSecrets` (or uses NotAction/NotResource, which allow more than they
/// name).
fn star_findings(at: &str, statements: &[Value]) -> Vec<String> {
    let mut wrong = Vec::new();
    for s in statements {
        if s["Effect"] != "Allow" {
            continue;
        }
        if s.get("NotAction").is_some() || s.get("NotResource").is_some() {
            wrong.push(format!("{at}: NotAction/NotResource: {s}"));
            continue;
        }
        if !strings(&s["Resource"]).iter().any(|r| r == "*") {
            continue;
        }
        let actions = strings(&s["Action"]);
        if actions != ["secretsmanager:ListSecrets"] {
            wrong.push(format!("{at}: {actions:?} on \"*\": {s}"));
        }
    }
    wrong
}

// ---- the StackSet's destination role ---------------------------------------------------------

#[test]
fn the_stackset_trusts_the_source_accounts_secret_replicator_path_with_the_external_id() {
    let t = stackset_template();
    let p = &t["Parameters"];
    assert_eq!(p["ExternalId"]["NoEcho"], true, "ExternalId is NoEcho");
    assert_eq!(p["RoleName"]["Default"], "secret-replicator-destination");
    assert!(
        p["SourceAccountId"].is_object(),
        "a SourceAccountId parameter"
    );
    for name in p.as_object().unwrap().keys() {
        assert!(
            [
                "SourceAccountId",
                "ExternalId",
                "RoleName",
                "KmsKeyArns",
                "SecretNamePrefix",
                "AllowAdoption",
                "ManageResourcePolicies",
                "ManageReplicaRegions"
            ]
            .contains(&name.as_str()),
            "unexpected parameter {name}"
        );
    }
    for (at, stack) in stackset_stacks() {
        let roles = stack.of_type("AWS::IAM::Role");
        assert_eq!(roles.len(), 1, "{at}: one role");
        let trust = trust_statements(&stack, "DestinationRole");
        assert!(!trust.is_empty(), "{at}: a trust policy");
        for s in &trust {
            assert_eq!(s["Effect"], "Allow", "{at}: {s}");
            assert_eq!(strings(&s["Action"]), ["sts:AssumeRole"], "{at}: {s}");
            assert_eq!(
                strings(&s["Principal"]["AWS"]),
                [format!("arn:aws:iam::{SOURCE}:root")],
                "{at}: the source account is the principal: {s}"
            );
            assert_eq!(
                s["Principal"].as_object().unwrap().len(),
                1,
                "{at}: AWS principals only: {s}"
            );
            let c = &s["Condition"];
            assert_eq!(
                strings(&c["StringEquals"]["sts:ExternalId"]),
                [EXTERNAL_ID],
                "{at}: StringEquals sts:ExternalId: {s}"
            );
            assert_eq!(
                strings(&c["ArnLike"]["aws:PrincipalArn"]),
                [PATH_PATTERN],
                "{at}: ArnLike aws:PrincipalArn on the path: {s}"
            );
        }
        // By evaluation: the function role (also a replacement of it, with another generated
        // name) gets in with the external id; nothing else does.
        let policy = Policy::new(&at, Kind::Resource, &trust);
        let role = stack.get("DestinationRole");
        assert_eq!(
            role["Properties"]["RoleName"],
            "secret-replicator-destination"
        );
        let target = "arn:aws:iam::222222222222:role/secret-replicator-destination";
        let ask = |caller: &Caller, id: Option<&str>| {
            let mut context = common::iam::global_context(caller, "us-east-1");
            if let Some(id) = id {
                context = context.merge(&Context::new().with("sts:ExternalId", id));
            }
            evaluate(
                &[&policy],
                &Request {
                    caller: caller.clone(),
                    action: "sts:AssumeRole".into(),
                    resource: target.into(),
                    context,
                },
            )
        };
        let function = Caller::session(
            "arn:aws:iam::111111111111:role/secret-replicator/secret-replicator-FunctionRole-AbC123",
            "replicate",
        );
        let replaced = Caller::session(
            "arn:aws:iam::111111111111:role/secret-replicator/secret-replicator-FunctionRole-XyZ789",
            "replicate",
        );
        for caller in [&function, &replaced] {
            let got = ask(caller, Some(EXTERNAL_ID));
            assert!(got.allowed(), "{at}: {}: {got}", caller.arn);
            for id in [None, Some("not-the-external-id-at-all")] {
                let got = ask(caller, id);
                assert!(!got.allowed(), "{at}: {} with {id:?}: {got}", caller.arn);
            }
        }
        for intruder in [
            Caller::session("arn:aws:iam::111111111111:role/admin", "x"),
            Caller::session(
                "arn:aws:iam::111111111111:role/other/secret-replicator",
                "x",
            ),
            Caller::user("arn:aws:iam::111111111111:user/secret-replicator"),
            Caller::session(
                "arn:aws:iam::999999999999:role/secret-replicator/secret-replicator-FunctionRole-AbC123",
                "x",
            ),
        ] {
            let got = ask(&intruder, Some(EXTERNAL_ID));
            assert!(!got.allowed(), "{at}: {}: {got}", intruder.arn);
        }
    }
}

#[test]
fn the_stackset_role_allows_nothing_on_star_but_list_secrets() {
    let mut wrong = Vec::new();
    for (at, stack) in stackset_stacks() {
        let st = role_statements(&stack, "DestinationRole");
        assert!(!st.is_empty(), "{at}: a permissions policy");
        wrong.extend(star_findings(&at, &st));
        // Secret actions on secret ARNs of its own account, KMS on keys of its own account.
        for s in &st {
            for a in strings(&s["Action"]) {
                let resources = strings(&s["Resource"]);
                let want = if a == "secretsmanager:ListSecrets" {
                    continue;
                } else if a.starts_with("secretsmanager:") {
                    format!("arn:aws:secretsmanager:*:{DEST}:secret:")
                } else if a.starts_with("kms:") {
                    "arn:aws:kms:".to_string()
                } else {
                    wrong.push(format!("{at}: unexpected action {a}"));
                    continue;
                };
                for r in &resources {
                    if !r.starts_with(&want) {
                        wrong.push(format!("{at}: {a} on {r}"));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_stackset_role_grants_what_the_standalone_destination_policy_grants() {
    let json = read_json(&root().join("iam/destination-role-policy.json"));
    let by_sid = |st: &[Value]| -> BTreeMap<String, (BTreeSet<String>, Value)> {
        st.iter()
            .map(|s| {
                let sid = s["Sid"]
                    .as_str()
                    .expect("every statement has a Sid")
                    .to_string();
                let actions = strings(&s["Action"]).into_iter().collect();
                // The condition keys (the operators differ: the example names one region,
                // the StackSet every region of the partition).
                let cond: Vec<Value> = s["Condition"]
                    .as_object()
                    .into_iter()
                    .flat_map(|c| c.values())
                    .flat_map(|kv| kv.as_object().unwrap().keys())
                    .map(|k| Value::String(k.clone()))
                    .collect();
                (sid, (actions, Value::Array(cond)))
            })
            .collect()
    };
    let want = by_sid(&statements(&json));
    let (at, stack) = stackset_stacks()
        .into_iter()
        .find(|(at, _)| at.contains("key/k-1") && at.contains("\"dr/\""))
        .unwrap();
    let got = by_sid(&role_statements(&stack, "DestinationRole"));
    assert_eq!(got, want, "{at} vs iam/destination-role-policy.json");
    // Without keys, only the DescribeKey statement (on the configured keys) is left out.
    let (_, bare) = stackset_stacks()
        .into_iter()
        .find(|(at, _)| at.contains("KmsKeyArns=\"\""))
        .unwrap();
    let sids: BTreeSet<String> = by_sid(&role_statements(&bare, "DestinationRole"))
        .into_keys()
        .collect();
    let mut expected: BTreeSet<String> = want.into_keys().collect();
    expected.remove("DescribeConfiguredKeys");
    assert_eq!(sids, expected);
    // The prefix scopes every Secrets Manager statement but the listing.
    for st in role_statements(&stack, "DestinationRole") {
        let actions = strings(&st["Action"]);
        if actions.iter().all(|a| a.starts_with("secretsmanager:"))
            && actions != ["secretsmanager:ListSecrets"]
        {
            assert_eq!(
                strings(&st["Resource"]),
                ["arn:aws:secretsmanager:*:222222222222:secret:dr/*"],
                "{st}"
            );
        }
    }
}

// ---- the function role ------------------------------------------------------------------------

#[test]
fn the_function_role_is_on_the_trusted_path_with_a_generated_name() {
    let t = template();
    let raw = &t["Resources"]["FunctionRole"];
    assert_eq!(raw["Type"], "AWS::IAM::Role");
    assert_eq!(raw["Properties"]["Path"], "/secret-replicator/");
    assert!(
        raw["Properties"].get("RoleName").is_none(),
        "a fixed RoleName collides across regions and needs CAPABILITY_NAMED_IAM"
    );
    let mut wrong = Vec::new();
    for (label, stack) in scenarios() {
        let role = stack.get("FunctionRole");
        assert_eq!(role["Properties"]["Path"], "/secret-replicator/", "{label}");
        assert!(role["Properties"].get("RoleName").is_none(), "{label}");
        let st = role_statements(&stack, "FunctionRole");
        assert!(!st.is_empty(), "{label}");
        wrong.extend(star_findings(
            &format!("template.yaml [{label}] FunctionRole"),
            &st,
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The role the StackSet trusts is this one: its path matches the trust's pattern.
    let function_arn =
        "arn:aws:iam::111111111111:role/secret-replicator/secret-replicator-FunctionRole-AbC123";
    assert!(common::iam::arn_like(PATH_PATTERN, function_arn));
}

// ---- every AssumeRole trust under iam/ -----------------------------------------------------------

#[test]
fn every_assume_role_trust_under_iam_requires_the_external_id() {
    let mut trusts: Vec<(String, Vec<Value>)> = Vec::new();
    for path in files(&root().join("iam"), "json") {
        let doc = read_json(&path);
        let st: Vec<Value> = statements(&doc)
            .into_iter()
            .filter(|s| s.get("Principal").is_some() || s.get("NotPrincipal").is_some())
            .collect();
        trusts.push((path.display().to_string(), st));
    }
    for path in files(&root().join("iam"), "yaml") {
        let t = load_cfn(&path);
        let stack = resolve_in(
            &t,
            &[("SourceAccountId", SOURCE), ("ExternalId", EXTERNAL_ID)],
            DEST,
            "us-west-2",
        );
        for (name, _) in stack.of_type("AWS::IAM::Role") {
            trusts.push((
                format!("{} {name}", path.display()),
                trust_statements(&stack, name),
            ));
        }
    }
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (at, st) in &trusts {
        for s in st {
            if s["Effect"] != "Allow" {
                continue;
            }
            if s.get("NotAction").is_some() || s.get("NotPrincipal").is_some() {
                wrong.push(format!("{at}: NotAction/NotPrincipal: {s}"));
                continue;
            }
            let assumes = strings(&s["Action"])
                .iter()
                .any(|a| action_matches(a, "sts:AssumeRole"));
            if !assumes {
                continue;
            }
            checked += 1;
            let ext = s["Condition"]["StringEquals"]["sts:ExternalId"].clone();
            let ids = strings(&ext);
            if ids.is_empty() || ids.iter().any(|id| id.len() < 16) {
                wrong.push(format!(
                    "{at}: sts:AssumeRole without StringEquals sts:ExternalId (16+ characters): {s}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        checked >= 2,
        "the trust JSON and the StackSet's role are both checked ({checked})"
    );
}

// ---- examples/ ---------------------------------------------------------------------------------

const EXAMPLES: [&str; 4] = [
    "analytics-account.json",
    "dr-region.json",
    "renamed-copy.json",
    "tag-opt-in.json",
];

#[test]
fn every_example_config_passes_validate() {
    let found: Vec<String> = files(&root().join("examples"), "json")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(found, EXAMPLES, "examples/*.json");
    for name in EXAMPLES {
        let path = format!("examples/{name}");
        // Plain documents: nothing that would make `validate` read a secret.
        let text = std::fs::read_to_string(root().join(&path)).unwrap();
        assert!(!text.contains("secret:"), "{path} names a secret");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_secret-replicator"))
            .args(["validate", "--config", &path])
            .current_dir(root())
            .env_clear()
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.starts_with("valid: "),
            "{path}: {}\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        );
    }
}

#[test]
fn the_cross_account_examples_assume_the_stacksets_role_with_an_external_id() {
    let mut accounts = BTreeSet::new();
    for name in EXAMPLES {
        let doc = read_json(&root().join("examples").join(name));
        for rule in doc["rules"].as_array().unwrap() {
            for d in rule["destinations"].as_array().unwrap() {
                let Some(arn) = d["account_role_arn"].as_str() else {
                    continue;
                };
                let account = common::iam::arn_account(arn).unwrap();
                assert_eq!(
                    arn,
                    format!("arn:aws:iam::{account}:role/secret-replicator-destination"),
                    "{name}: the StackSet's default RoleName"
                );
                assert!(
                    d["external_id"].as_str().is_some_and(|s| s.len() >= 16),
                    "{name}: an external_id"
                );
                accounts.insert(account);
            }
        }
    }
    assert_eq!(
        accounts.len(),
        2,
        "two destination accounts besides the source"
    );
}
