//! The calls the suites made, against the policies with their conditions (SPEC §11: "each call
//! the suites recorded (service, action, resource, condition context) is allowed by the scoped
//! statements with their conditions").
//!
//! The IAM-enforcing moto launcher appends one JSON line per AWS request it authorized or denied
//! to `<CARGO_TARGET_TMPDIR>/iam-calls/<test binary>-<pid>-<seq>.jsonl` (`IAM_CALLS_DIR`
//! overrides the directory). moto checks actions and resources only; here every call of the
//! function role or the destination role is decided again with the real statements and their
//! conditions:
//!
//! - the role's identity policy allows it, with the context AWS would supply
//!   (`aws:PrincipalArn` = the role ARN with its path, `aws:PrincipalAccount`,
//!   `aws:RequestedRegion`, and the call's own keys such as `sts:ExternalId`);
//! - an `sts:AssumeRole` is also allowed by the destination role's trust policy;
//! - a direct KMS call, and each KMS call Secrets Manager makes on the caller's behalf with the
//!   secret's customer-managed key (a write: `kms:GenerateDataKey`; a read: `kms:Decrypt`), is
//!   allowed by the identity policy and by the key's policy, with `kms:ViaService` =
//!   `secretsmanager.<region>.amazonaws.com` and `kms:CallerAccount`;
//! - moto did not deny it (a product call the enforcing moto refused is a finding; tests that
//!   provoke denials run as other principals, whose calls, like the admin's, are not checked).
//!
//! The two checks over real recordings are `#[ignore]`d: `scripts/test.sh` clears the directory
//! before the main run and runs them after it (`--run-ignored only`). They fail when nothing was
//! recorded. The other tests run in the normal suite, against synthetic recordings.

mod common;

use common::iam::{
    Caller, Context, Decision, Kind, Names, Policy, Request, evaluate, global_context, role_parts,
};
use common::policies::{self, DEST_ACCOUNT, DEST_ROLE_ARN, FUNCTION_ROLE_ARN, SOURCE_ACCOUNT};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where the launcher writes its recordings.
const DEFAULT_DIR: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/iam-calls/");

/// The recordings directory: `IAM_CALLS_DIR`, else [`DEFAULT_DIR`].
fn calls_dir() -> PathBuf {
    std::env::var_os("IAM_CALLS_DIR").map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from)
}

/// One recorded request, exactly as the launcher writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Call {
    /// The caller: an assumed-role session ARN, a user ARN, ...
    principal: String,
    /// The IAM role (with its path) of an assumed-role session, else null.
    principal_role: Option<String>,
    /// The caller's account.
    account: String,
    region: String,
    /// `service:Action`.
    action: String,
    /// The resource moto authorized (an ARN, or `*`).
    resource: String,
    /// The call's own condition keys (`sts:ExternalId`, `sts:RoleSessionName` of AssumeRole).
    context: Map<String, Value>,
    /// The customer-managed keys Secrets Manager uses for this call.
    kms_keys: Vec<String>,
    /// moto's decision.
    allowed: bool,
}

/// A call and where it was recorded.
#[derive(Debug, Clone)]
struct Recorded {
    at: String,
    call: Call,
}

/// Every call in the `*.jsonl` files of `dir`; `Err` lists every unreadable file or line.
fn read_calls(dir: &Path) -> Result<Vec<Recorded>, Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        vec![format!(
            "{}: {e} (no recordings: did the suites run against the IAM-enforcing moto \
             launcher?)",
            dir.display()
        )]
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut calls = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{}: {e}", f.display()));
                continue;
            }
        };
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{name}:{}", i + 1);
            match serde_json::from_str::<Call>(line) {
                Ok(call) => calls.push(Recorded { at, call }),
                Err(e) => errors.push(format!("{at}: {e}: {line}")),
            }
        }
    }
    if errors.is_empty() {
        Ok(calls)
    } else {
        Err(errors)
    }
}

/// A permission as the README names it: (role resource, statement Sid, action).
type Grant = (String, String, String);

/// The statements the checked roles hold, as the suites deploy them.
struct Roles {
    function: Policy,
    destination: Policy,
    trust: Policy,
    keys: BTreeMap<String, Option<Policy>>,
}

impl Roles {
    fn new() -> Roles {
        Roles {
            function: Policy::new("FunctionRole", Kind::Identity, &policies::function_policy()),
            destination: Policy::new(
                "DestinationRole",
                Kind::Identity,
                &policies::destination_policy(),
            ),
            trust: Policy::new(
                "DestinationRole trust policy",
                Kind::Resource,
                &policies::destination_trust(),
            ),
            keys: BTreeMap::new(),
        }
    }

    /// The identity policy of a checked role, `None` for any other principal.
    fn identity(&self, role: Option<&str>) -> Option<&Policy> {
        match role {
            Some(FUNCTION_ROLE_ARN) => Some(&self.function),
            Some(DEST_ROLE_ARN) => Some(&self.destination),
            _ => None,
        }
    }

    /// The key policy a key of the suites carries (`None`: not a key of theirs).
    fn key_policy(&mut self, key: &str) -> Option<&Policy> {
        self.keys
            .entry(key.to_string())
            .or_insert_with(|| {
                let stmts = policies::key_policy(key)?;
                Some(Policy::new(
                    &format!("key policy of {key}"),
                    Kind::Resource,
                    &stmts,
                ))
            })
            .as_ref()
    }
}

fn is_key_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6 && parts[0] == "arn" && parts[2] == "kms" && parts[5].starts_with("key/")
}

/// The KMS calls Secrets Manager makes with a secret's customer-managed key on the caller's
/// behalf: a write encrypts the new version under a fresh data key, a read decrypts it, and an
/// UpdateSecret that carries a value or a new KmsKeyId does both (the record does not say which
/// of its keys is old and which new, so both actions are asked for every key: stricter, never
/// laxer). Any other call that names keys is asked for both as well.
fn implied_kms_actions(action: &str) -> &'static [&'static str] {
    match action {
        "secretsmanager:CreateSecret" | "secretsmanager:PutSecretValue" => &["kms:GenerateDataKey"],
        "secretsmanager:GetSecretValue" => &["kms:Decrypt"],
        _ => &["kms:GenerateDataKey", "kms:Decrypt"],
    }
}

/// CreateSecret with `Tags` also needs `secretsmanager:TagResource` (the Secrets Manager API
/// reference, CreateSecret: "To add tags to the secret, you must also have
/// secretsmanager:TagResource"). IAM asks it of the secret being created, whose resource tags
/// are then the request's tags: AWS's IAM ABAC tutorial shows a `ResourceTag` condition met on
/// create by the request's own tags (documentation only: README, "AWS as documented"). So the
/// implied request carries `secretsmanager:ResourceTag/<key>` for each `aws:RequestTag/<key>` of
/// the call, beside the call's own keys.
fn implied_tag_resource(call: &Call, context: &Context) -> Option<(String, Context)> {
    if !call
        .action
        .eq_ignore_ascii_case("secretsmanager:CreateSecret")
    {
        return None;
    }
    let mut implied = context.clone();
    let mut tagged = false;
    for (key, value) in &call.context {
        let Some(tag) = key.strip_prefix("aws:RequestTag/") else {
            continue;
        };
        let value = value.as_str().unwrap_or_else(|| panic!("{key}: {value}"));
        implied = implied.with(&format!("secretsmanager:ResourceTag/{tag}"), value);
        tagged = true;
    }
    tagged.then(|| ("secretsmanager:TagResource".to_string(), implied))
}

/// The outcome over a set of recordings.
#[derive(Debug, Default)]
struct Checked {
    /// Calls of the function role and of the destination role.
    checked: BTreeMap<String, usize>,
    /// Calls that moto and the policies both refused (tests provoking a denial).
    denied_by_both: usize,
    /// Other principals' calls (admin seeding, tests that provoke denials).
    ignored: usize,
    /// One entry per call that is not allowed, with every reason.
    findings: Vec<String>,
    /// The permissions the checked calls used, directly or through Secrets Manager.
    used: BTreeSet<Grant>,
}

impl Checked {
    fn total(&self) -> usize {
        self.checked.values().sum()
    }
}

/// The statements of `policy` that `decision` names, as grants of `action`.
fn grants(policy: &Policy, decision: &Decision, action: &str) -> Vec<Grant> {
    let Decision::Allow(by) = decision else {
        return Vec::new();
    };
    by.iter()
        .flat_map(|r| {
            let s = policy.statement(r);
            let sid = s
                .sid
                .clone()
                .unwrap_or_else(|| format!("statement {}", s.index));
            s.actions_covering(action)
                .into_iter()
                .map(move |a| (policy.label.clone(), sid.clone(), a))
        })
        .collect()
}

/// The caller of `call`: a session of its role, consistent with the principal it names.
fn caller_of(call: &Call, role: &str) -> Result<Caller, String> {
    let (account, path_and_name) =
        role_parts(role).ok_or_else(|| format!("principal_role {role:?} is not a role ARN"))?;
    let name = path_and_name.rsplit('/').next().unwrap();
    let prefix = format!("arn:aws:sts::{account}:assumed-role/{name}/");
    let session = call
        .principal
        .strip_prefix(&prefix)
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .ok_or_else(|| format!("principal {} is not a session of {role}", call.principal))?;
    if call.account != account {
        return Err(format!(
            "account {} is not the account of {role}",
            call.account
        ));
    }
    Ok(Caller::session(role, session))
}

/// Decides every call of the checked roles.
fn check(calls: &[Recorded]) -> Checked {
    let mut roles = Roles::new();
    let mut out = Checked::default();
    for rec in calls {
        let call = &rec.call;
        let Some(identity) = roles.identity(call.principal_role.as_deref()).cloned() else {
            out.ignored += 1;
            continue;
        };
        let role = call.principal_role.clone().unwrap();
        *out.checked.entry(identity.label.clone()).or_default() += 1;
        let mut problems = Vec::new();
        match caller_of(call, &role) {
            Err(e) => problems.push(e),
            Ok(caller) => {
                let context = global_context(&caller, &call.region)
                    .merge(&Context::from_json(&Value::Object(call.context.clone())));
                let direct = Request {
                    caller: caller.clone(),
                    action: call.action.clone(),
                    resource: call.resource.clone(),
                    context: context.clone(),
                };
                // "No permissions are required to perform this operation" (STS API reference).
                if !call.action.eq_ignore_ascii_case("sts:GetCallerIdentity") {
                    decide(
                        &mut roles,
                        &identity,
                        &direct,
                        "",
                        &mut problems,
                        &mut out.used,
                    );
                }
                if let Some(implied) = implied_tag_resource(call, &context) {
                    decide(
                        &mut roles,
                        &identity,
                        &Request {
                            caller: caller.clone(),
                            action: implied.0,
                            resource: call.resource.clone(),
                            context: implied.1,
                        },
                        "implied secretsmanager:TagResource (CreateSecret with tags)",
                        &mut problems,
                        &mut out.used,
                    );
                }
                if call.action.eq_ignore_ascii_case("sts:AssumeRole") {
                    if call.resource == DEST_ROLE_ARN {
                        let d = evaluate(&[&roles.trust], &direct);
                        if !d.allowed() {
                            problems.push(format!("{}: {d}", roles.trust.label));
                        }
                    } else {
                        problems.push(format!("no trust policy known for {}", call.resource));
                    }
                }
                let caller_account = caller.account.clone().unwrap();
                for key in &call.kms_keys {
                    for action in implied_kms_actions(&call.action) {
                        let implied = Request {
                            caller: caller.clone(),
                            action: action.to_string(),
                            resource: key.clone(),
                            context: global_context(&caller, &call.region)
                                .with(
                                    "kms:ViaService",
                                    &format!("secretsmanager.{}.amazonaws.com", call.region),
                                )
                                .with("kms:CallerAccount", &caller_account),
                        };
                        let what = format!("implied {action} on {key} (through Secrets Manager)");
                        decide(
                            &mut roles,
                            &identity,
                            &implied,
                            &what,
                            &mut problems,
                            &mut out.used,
                        );
                    }
                }
            }
        }
        if !call.allowed {
            if problems.is_empty() {
                // moto and the policies disagree: a product call the policies allow was refused.
                problems.push("the IAM-enforcing moto denied it".to_string());
            } else {
                // Denied by both: a test provoking a denial (say, an action the role lacks) saw
                // the refusal it asked for.
                out.denied_by_both += 1;
                continue;
            }
        }
        if !problems.is_empty() {
            let mut f = format!(
                "{}: {} {} on {} in {}:",
                rec.at, call.principal, call.action, call.resource, call.region
            );
            for p in problems {
                let _ = write!(f, "\n    - {p}");
            }
            out.findings.push(f);
        }
    }
    out
}

/// Asks the identity policy and, for a KMS key, the key's policy; records what was used.
fn decide(
    roles: &mut Roles,
    identity: &Policy,
    request: &Request,
    what: &str,
    problems: &mut Vec<String>,
    used: &mut BTreeSet<Grant>,
) {
    let prefix = if what.is_empty() {
        String::new()
    } else {
        format!("{what}: ")
    };
    let d = evaluate(&[identity], request);
    if d.allowed() {
        used.extend(grants(identity, &d, &request.action));
    } else {
        problems.push(format!("{prefix}{} identity policy: {d}", identity.label));
    }
    if !request.action.to_ascii_lowercase().starts_with("kms:") {
        return;
    }
    if !is_key_arn(&request.resource) {
        problems.push(format!(
            "{prefix}{} is not a key ARN: no key policy to ask",
            request.resource
        ));
        return;
    }
    match roles.key_policy(&request.resource) {
        None => problems.push(format!(
            "{prefix}no key policy known for {} (a key outside the suites' accounts)",
            request.resource
        )),
        Some(kp) => {
            let d = evaluate(&[kp], request);
            if !d.allowed() {
                problems.push(format!("{prefix}{d}"));
            }
        }
    }
}

/// Every (role, Sid, action) the two roles' identity policies grant.
fn granted() -> BTreeSet<Grant> {
    let roles = Roles::new();
    let mut out = BTreeSet::new();
    for p in [&roles.function, &roles.destination] {
        for s in p
            .statements
            .iter()
            .filter(|s| s.effect == common::iam::Effect::Allow)
        {
            let Names::Listed(actions) = &s.actions else {
                panic!("{}: NotAction cannot be listed", p.label);
            };
            let sid = s
                .sid
                .clone()
                .unwrap_or_else(|| format!("statement {}", s.index));
            for a in actions {
                out.insert((p.label.clone(), sid.clone(), a.clone()));
            }
        }
    }
    out
}

/// The README section that lists the permissions no test exercises.
const README_SECTION: &str = "#### Permissions no test exercises";

/// The (role, Sid, action) of each line of [`README_SECTION`]: the first three code spans of
/// each `- ` line.
fn readme_unexercised() -> BTreeSet<Grant> {
    let text = std::fs::read_to_string(common::cfn::root().join("README.md")).unwrap();
    let mut lines = text.lines().skip_while(|l| l.trim() != README_SECTION);
    assert!(
        lines.next().is_some(),
        "README.md has no {README_SECTION:?} section"
    );
    let mut out = BTreeSet::new();
    for line in lines.take_while(|l| !l.starts_with('#')) {
        let Some(item) = line.strip_prefix("- ") else {
            continue;
        };
        let spans: Vec<&str> = item.split('`').skip(1).step_by(2).collect();
        assert!(
            spans.len() >= 3,
            "README {README_SECTION}: {line:?} does not name `role` `Sid` `action`"
        );
        let grant = (spans[0].into(), spans[1].into(), spans[2].into());
        assert!(out.insert(grant), "README {README_SECTION}: {line:?} twice");
    }
    out
}

/// Reads the recordings and refuses to pass vacuously.
fn real_recordings() -> Checked {
    let dir = calls_dir();
    let calls = read_calls(&dir).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    let checked = check(&calls);
    eprintln!(
        "{}: {} calls: {:?} checked, {} of other principals ignored",
        dir.display(),
        calls.len(),
        checked.checked,
        checked.ignored
    );
    assert!(
        checked.total() > 0,
        "no recorded calls of {FUNCTION_ROLE_ARN} or {DEST_ROLE_ARN} in {} ({} calls in all): \
         the check must not pass vacuously; run the suites against the IAM-enforcing moto \
         launcher first (scripts/test.sh does)",
        dir.display(),
        calls.len()
    );
    checked
}

#[test]
#[ignore = "needs the recordings of a full suite run: scripts/test.sh runs it after the main run"]
fn every_recorded_call_of_the_function_and_destination_roles_is_allowed_with_its_conditions() {
    let checked = real_recordings();
    assert!(
        checked.findings.is_empty(),
        "{} of {} calls are not allowed by the policies with their conditions:\n{}",
        checked.findings.len(),
        checked.total(),
        checked.findings.join("\n")
    );
}

#[test]
#[ignore = "needs the recordings of a full suite run: scripts/test.sh runs it after the main run"]
fn the_readme_lists_exactly_the_permissions_no_recorded_call_used() {
    let checked = real_recordings();
    let unused: BTreeSet<Grant> = granted().difference(&checked.used).cloned().collect();
    let listed = readme_unexercised();
    let line = |(role, sid, action): &Grant| format!("- `{role}` `{sid}` `{action}`");
    let missing: Vec<String> = unused.difference(&listed).map(line).collect();
    let stale: Vec<String> = listed.difference(&unused).map(line).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README.md {README_SECTION:?} is out of date.\n\
         Granted, used by no recorded call, and not listed (add the line, with why it is \
         granted):\n{}\nListed, but used by a recorded call or not granted (remove the line):\n{}",
        missing.join("\n"),
        stale.join("\n")
    );
}

// ---- the check itself, against synthetic recordings ------------------------------------------

/// A fresh directory of its own for one test (never the launcher's), removed when the test
/// passes and kept for a look when it fails.
struct Scratch(PathBuf);

fn scratch(name: &str) -> Scratch {
    let dir = PathBuf::from(concat!(
        env!("CARGO_TARGET_TMPDIR"),
        "/iam-recorded-selftest"
    ))
    .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn write_jsonl(dir: &Path, file: &str, calls: &[Value]) {
    let text: String = calls.iter().map(|c| format!("{c}\n")).collect();
    std::fs::write(dir.join(file), text).unwrap();
}

const FN_SESSION: &str =
    "arn:aws:sts::123456789012:assumed-role/secret-replicator-FunctionRole-TEST/secret-replicator";
const DEST_SESSION: &str =
    "arn:aws:sts::222233334444:assumed-role/secret-replicator-destination/secret-replicator";
const SOURCE_KEY: &str =
    "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const DEST_KEY: &str =
    "arn:aws:kms:eu-west-1:222233334444:key/0987dcba-09fe-87dc-65ba-ab0987654321";

/// A call of the function role.
fn by_function(region: &str, action: &str, resource: &str) -> Value {
    json!({
        "principal": FN_SESSION, "principal_role": FUNCTION_ROLE_ARN, "account": SOURCE_ACCOUNT,
        "region": region, "action": action, "resource": resource,
        "context": {}, "kms_keys": [], "allowed": true
    })
}

/// A call of the destination role.
fn by_destination(region: &str, action: &str, resource: &str) -> Value {
    json!({
        "principal": DEST_SESSION, "principal_role": DEST_ROLE_ARN, "account": DEST_ACCOUNT,
        "region": region, "action": action, "resource": resource,
        "context": {}, "kms_keys": [], "allowed": true
    })
}

fn with(mut call: Value, key: &str, value: Value) -> Value {
    call[key] = value;
    call
}

/// The marker tag's value the replicator writes (`<account>:<region>:<name>` of the source).
const MARKER: &str = "123456789012:us-east-1:app/db";

/// A call on a secret that carries the marker tag, as the launcher records it
/// (`secretsmanager:ResourceTag/secret-replicator:source`).
fn marked(call: Value) -> Value {
    let mut call = call;
    call["context"]["secretsmanager:ResourceTag/secret-replicator:source"] = json!(MARKER);
    call
}

/// A CreateSecret that carries the marker tag in its request, as the launcher records it.
fn creating(call: Value) -> Value {
    let mut call = call;
    call["context"]["aws:RequestTag/secret-replicator:source"] = json!(MARKER);
    call["context"]["aws:TagKeys"] = json!(["secret-replicator:source"]);
    call
}

fn assume_role(external_id: Option<&str>) -> Value {
    let mut context = json!({"sts:RoleSessionName": "secret-replicator"});
    if let Some(id) = external_id {
        context["sts:ExternalId"] = json!(id);
    }
    with(
        by_function("us-east-1", "sts:AssumeRole", DEST_ROLE_ARN),
        "context",
        context,
    )
}

/// What a cross-account replication with a customer-managed key, a same-account one and a
/// backfill look like in the recordings, with admin seeding and a test's own denied principal.
fn realistic() -> Vec<(&'static str, Vec<Value>)> {
    let src = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf";
    let west = "arn:aws:secretsmanager:us-west-2:123456789012:secret:dr/app/db-GhIjKl";
    let xacct = "arn:aws:secretsmanager:eu-west-1:222233334444:secret:xacct/app/db-MnOpQr";
    let admin = json!({
        "principal": "arn:aws:iam::123456789012:user/admin", "principal_role": null,
        "account": SOURCE_ACCOUNT, "region": "us-east-1", "action": "secretsmanager:CreateSecret",
        "resource": src, "context": {}, "kms_keys": [], "allowed": true
    });
    let provoked = json!({
        "principal": "arn:aws:sts::123456789012:assumed-role/no-writes/test",
        "principal_role": "arn:aws:iam::123456789012:role/no-writes", "account": SOURCE_ACCOUNT,
        "region": "us-west-2", "action": "secretsmanager:PutSecretValue", "resource": west,
        "context": {}, "kms_keys": [], "allowed": false
    });
    vec![
        (
            "replication-4242-0.jsonl",
            vec![
                admin,
                by_function("us-east-1", "secretsmanager:GetSecretValue", src),
                by_function("us-west-2", "kms:DescribeKey", SOURCE_KEY),
                by_function("us-west-2", "secretsmanager:DescribeSecret", west),
                with(
                    creating(by_function(
                        "us-west-2",
                        "secretsmanager:CreateSecret",
                        west,
                    )),
                    "kms_keys",
                    json!([SOURCE_KEY]),
                ),
                by_function("us-east-1", "secretsmanager:DescribeSecret", src),
                with(
                    marked(by_function(
                        "us-west-2",
                        "secretsmanager:GetSecretValue",
                        west,
                    )),
                    "kms_keys",
                    json!([SOURCE_KEY]),
                ),
                with(
                    marked(by_function(
                        "us-west-2",
                        "secretsmanager:UpdateSecret",
                        west,
                    )),
                    "kms_keys",
                    json!([SOURCE_KEY]),
                ),
                provoked,
            ],
        ),
        (
            "replication-4242-1.jsonl",
            vec![
                assume_role(Some(policies::EXTERNAL_ID)),
                by_destination("eu-west-1", "secretsmanager:DescribeSecret", xacct),
                by_destination("eu-west-1", "kms:DescribeKey", DEST_KEY),
                with(
                    creating(by_destination(
                        "eu-west-1",
                        "secretsmanager:CreateSecret",
                        xacct,
                    )),
                    "kms_keys",
                    json!([DEST_KEY]),
                ),
                with(
                    marked(by_destination(
                        "eu-west-1",
                        "secretsmanager:PutSecretValue",
                        xacct,
                    )),
                    "kms_keys",
                    json!([DEST_KEY]),
                ),
            ],
        ),
        (
            "sync-4343-0.jsonl",
            vec![
                by_function("us-east-1", "secretsmanager:ListSecrets", "*"),
                by_function("us-west-2", "secretsmanager:ListSecrets", "*"),
                marked(by_function("us-west-2", "secretsmanager:TagResource", west)),
                with(
                    marked(by_function(
                        "us-west-2",
                        "secretsmanager:DeleteSecret",
                        west,
                    )),
                    "context",
                    json!({
                        "secretsmanager:ResourceTag/secret-replicator:source": MARKER,
                        "secretsmanager:ForceDeleteWithoutRecovery": "false"
                    }),
                ),
                by_function("us-east-1", "sts:GetCallerIdentity", "*"),
            ],
        ),
    ]
}

fn recordings(name: &str, files: &[(&str, Vec<Value>)]) -> Vec<Recorded> {
    let dir = scratch(name);
    for (f, calls) in files {
        write_jsonl(&dir, f, calls);
    }
    // A file of another kind in the directory is not a recording.
    std::fs::write(dir.join("launcher.lock"), "").unwrap();
    read_calls(&dir).unwrap_or_else(|e| panic!("{}", e.join("\n")))
}

fn grant(role: &str, sid: &str, action: &str) -> Grant {
    (role.into(), sid.into(), action.into())
}

#[test]
fn realistic_recordings_are_allowed_and_say_which_permissions_they_used() {
    let calls = recordings("realistic", &realistic());
    assert_eq!(calls.len(), 19);
    assert_eq!(calls[0].at, "replication-4242-0.jsonl:1");
    let checked = check(&calls);
    assert!(
        checked.findings.is_empty(),
        "{}",
        checked.findings.join("\n")
    );
    assert_eq!(
        checked.checked,
        BTreeMap::from([("DestinationRole".into(), 4), ("FunctionRole".into(), 13)])
    );
    assert_eq!(checked.ignored, 2, "the admin and the test's own role");
    for g in [
        grant(
            "FunctionRole",
            "ReadSources",
            "secretsmanager:GetSecretValue",
        ),
        // Both statements that allow a call are credited with it.
        grant(
            "FunctionRole",
            "TagRestoreReadSameAccountForAdoption",
            "secretsmanager:GetSecretValue",
        ),
        grant(
            "FunctionRole",
            "CreateSameAccountOnlyMarked",
            "secretsmanager:CreateSecret",
        ),
        grant(
            "FunctionRole",
            "ListSourcesForBackfill",
            "secretsmanager:ListSecrets",
        ),
        grant("FunctionRole", "DescribeConfiguredKeys", "kms:DescribeKey"),
        grant(
            "FunctionRole",
            "KmsOnlyThroughSecretsManager",
            "kms:GenerateDataKey",
        ),
        grant(
            "FunctionRole",
            "KmsOnlyThroughSecretsManager",
            "kms:Decrypt",
        ),
        grant(
            "FunctionRole",
            "AssumeApprovedDestinationRoles",
            "sts:AssumeRole",
        ),
        grant(
            "DestinationRole",
            "CreateOnlyMarked",
            "secretsmanager:CreateSecret",
        ),
        // CreateSecret with tags also needs TagResource, which the marker-conditioned
        // statement grants (the request's tags are the new secret's).
        grant(
            "DestinationRole",
            "TagRestoreReadOnlyMarked",
            "secretsmanager:TagResource",
        ),
        grant(
            "DestinationRole",
            "WriteOnlyMarked",
            "secretsmanager:PutSecretValue",
        ),
        grant(
            "DestinationRole",
            "KmsOnlyThroughSecretsManager",
            "kms:GenerateDataKey",
        ),
    ] {
        assert!(
            checked.used.contains(&g),
            "{g:?} not used: {:?}",
            checked.used
        );
    }
    let unused: BTreeSet<Grant> = granted().difference(&checked.used).cloned().collect();
    for g in [
        grant("FunctionRole", "FailureQueue", "sqs:SendMessage"),
        grant("FunctionRole", "Logs", "logs:PutLogEvents"),
        grant(
            "FunctionRole",
            "KmsOnlyThroughSecretsManager",
            "kms:Encrypt",
        ),
        grant(
            "DestinationRole",
            "KmsOnlyThroughSecretsManager",
            "kms:Decrypt",
        ),
    ] {
        assert!(unused.contains(&g), "{g:?}");
    }
}

#[test]
fn a_call_the_policies_do_not_allow_is_a_finding_that_names_the_statement_and_condition() {
    let foreign_key = "arn:aws:kms:us-west-2:999999999999:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "DescribeKey on a key outside KmsKeyArns",
            by_function("us-west-2", "kms:DescribeKey", foreign_key),
            &[
                "FunctionRole identity policy: implicitly denied",
                "FunctionRole [DescribeConfiguredKeys]: Resource",
                "does not cover arn:aws:kms:us-west-2:999999999999:key/",
                "no key policy known for arn:aws:kms:us-west-2:999999999999",
            ],
        ),
        (
            "AssumeRole without the external id",
            assume_role(None),
            &[
                "DestinationRole trust policy: implicitly denied",
                "[SecretReplicatorFunctionOnly]: condition StringEquals {\"sts:ExternalId\"",
                "the request's sts:ExternalId is absent",
            ],
        ),
        (
            "AssumeRole with another external id",
            assume_role(Some("guessed-external-id-0000")),
            &["the request's sts:ExternalId is [\"guessed-external-id-0000\"]"],
        ),
        (
            "a KMS data call of the function's own, not through Secrets Manager",
            by_function("us-west-2", "kms:Decrypt", SOURCE_KEY),
            &[
                "FunctionRole [KmsOnlyThroughSecretsManager]: condition StringLike \
                 {\"kms:ViaService\": [\"secretsmanager.*.amazonaws.com\"]} is false: the \
                 request's kms:ViaService is absent",
            ],
        ),
        (
            "a destination write under a key of another account",
            with(
                by_destination(
                    "eu-west-1",
                    "secretsmanager:PutSecretValue",
                    "arn:aws:secretsmanager:eu-west-1:222233334444:secret:x-AbCdEf",
                ),
                "kms_keys",
                json!([SOURCE_KEY]),
            ),
            &[
                "implied kms:GenerateDataKey on arn:aws:kms:us-west-2:123456789012:key/",
                "DestinationRole identity policy: implicitly denied",
                "DestinationRole [KmsOnlyThroughSecretsManager]: Resource",
            ],
        ),
        (
            "a write by the function into another account without the role",
            by_function(
                "eu-west-1",
                "secretsmanager:PutSecretValue",
                "arn:aws:secretsmanager:eu-west-1:222233334444:secret:x-AbCdEf",
            ),
            &["FunctionRole [WriteSameAccountOnlyMarked]: Resource"],
        ),
        (
            "a destination write to a secret without the marker",
            by_destination(
                "eu-west-1",
                "secretsmanager:PutSecretValue",
                "arn:aws:secretsmanager:eu-west-1:222233334444:secret:x-AbCdEf",
            ),
            &[
                "DestinationRole [WriteOnlyMarked]: condition Null",
                "the request's secretsmanager:ResourceTag/secret-replicator:source is absent",
            ],
        ),
        (
            "a destination create without the marker in its request",
            by_destination(
                "eu-west-1",
                "secretsmanager:CreateSecret",
                "arn:aws:secretsmanager:eu-west-1:222233334444:secret:x-AbCdEf",
            ),
            &["DestinationRole [CreateOnlyMarked]: condition Null"],
        ),
        (
            "a destination TagResource that only requests the marker",
            creating(by_destination(
                "eu-west-1",
                "secretsmanager:TagResource",
                "arn:aws:secretsmanager:eu-west-1:222233334444:secret:x-AbCdEf",
            )),
            &["DestinationRole [TagRestoreReadOnlyMarked]: condition Null"],
        ),
        (
            "a forced deletion of a marked destination",
            with(
                marked(by_destination(
                    "eu-west-1",
                    "secretsmanager:DeleteSecret",
                    "arn:aws:secretsmanager:eu-west-1:222233334444:secret:x-AbCdEf",
                )),
                "context",
                json!({
                    "secretsmanager:ResourceTag/secret-replicator:source": MARKER,
                    "secretsmanager:ForceDeleteWithoutRecovery": "true"
                }),
            ),
            &["DestinationRole [DeleteOnlyMarkedWithRecovery]: condition BoolIfExists"],
        ),
        (
            "AssumeRole into a role nobody approved",
            with(
                assume_role(Some(policies::EXTERNAL_ID)),
                "resource",
                json!("arn:aws:iam::222233334444:role/admin"),
            ),
            &[
                "FunctionRole [AssumeApprovedDestinationRoles]: Resource",
                "no trust policy known for arn:aws:iam::222233334444:role/admin",
            ],
        ),
        (
            "a product call the enforcing moto denied",
            with(
                by_function(
                    "us-east-1",
                    "secretsmanager:GetSecretValue",
                    "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf",
                ),
                "allowed",
                json!(false),
            ),
            &["the IAM-enforcing moto denied it"],
        ),
        (
            "a principal that is not a session of its principal_role",
            with(
                by_function("us-east-1", "secretsmanager:ListSecrets", "*"),
                "principal",
                json!("arn:aws:sts::123456789012:assumed-role/other/secret-replicator"),
            ),
            &["is not a session of arn:aws:iam::123456789012:role/secret-replicator/"],
        ),
    ];
    for (what, bad, expected) in cases {
        let mut files = realistic();
        files.push(("bad-1-0.jsonl", vec![bad]));
        let checked = check(&recordings("bad", &files));
        assert_eq!(checked.findings.len(), 1, "{what}: {:#?}", checked.findings);
        let f = &checked.findings[0];
        assert!(f.starts_with("bad-1-0.jsonl:1: "), "{what}: {f}");
        for e in expected {
            assert!(f.contains(e), "{what}: {e:?} not in\n{f}");
        }
    }
}

#[test]
fn unreadable_recordings_fail_with_their_place_and_none_at_all_is_not_a_pass() {
    let dir = scratch("malformed");
    let good = by_function("us-east-1", "secretsmanager:ListSecrets", "*");
    let renamed = json!({"principal": FN_SESSION, "role": FUNCTION_ROLE_ARN});
    std::fs::write(
        dir.join("x-1-0.jsonl"),
        format!("{good}\n\nnot json\n{renamed}\n"),
    )
    .unwrap();
    let errors = read_calls(&dir).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].starts_with("x-1-0.jsonl:3: "), "{}", errors[0]);
    assert!(
        errors[1].starts_with("x-1-0.jsonl:4: ") && errors[1].contains("unknown field `role`"),
        "{}",
        errors[1]
    );
    // No directory: an error, not zero calls.
    let missing = dir.join("missing");
    let e = read_calls(&missing).unwrap_err();
    assert!(e[0].contains("IAM-enforcing moto launcher"), "{e:?}");
    // Only other principals' calls: nothing was checked.
    let dir = scratch("admin-only");
    write_jsonl(&dir, "a-1-0.jsonl", &realistic()[0].1[..1]);
    let checked = check(&read_calls(&dir).unwrap());
    assert_eq!((checked.total(), checked.ignored), (0, 1));
}

/// Runs one of this binary's ignored tests in a child process with `IAM_CALLS_DIR=dir`.
fn run_ignored(test: &str, dir: &Path) -> (bool, String) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("IAM_CALLS_DIR", dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_recorded_checks_fail_without_recordings_and_on_a_call_the_policies_do_not_allow() {
    let empty = scratch("empty");
    for test in [
        "every_recorded_call_of_the_function_and_destination_roles_is_allowed_with_its_conditions",
        "the_readme_lists_exactly_the_permissions_no_recorded_call_used",
    ] {
        let (ok, text) = run_ignored(test, &empty);
        assert!(!ok, "{test} passed on an empty directory:\n{text}");
        assert!(text.contains("1 failed"), "{test} did not run:\n{text}");
        assert!(text.contains("must not pass vacuously"), "{text}");
    }
    let dir = scratch("denied");
    let mut files = realistic();
    files.push(("bad-1-0.jsonl", vec![assume_role(None)]));
    for (f, calls) in &files {
        write_jsonl(&dir, f, calls);
    }
    let (ok, text) = run_ignored(
        "every_recorded_call_of_the_function_and_destination_roles_is_allowed_with_its_conditions",
        &dir,
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("1 of 18 calls are not allowed") && text.contains("bad-1-0.jsonl:1"),
        "{text}"
    );
    let (ok, text) = run_ignored(
        "every_recorded_call_of_the_function_and_destination_roles_is_allowed_with_its_conditions",
        &{
            let good = scratch("good");
            for (f, calls) in realistic() {
                write_jsonl(&good, f, &calls);
            }
            good
        },
    );
    assert!(ok, "{text}");
}

#[test]
fn implied_kms_calls_follow_the_secrets_manager_operation() {
    assert_eq!(
        implied_kms_actions("secretsmanager:CreateSecret"),
        ["kms:GenerateDataKey"]
    );
    assert_eq!(
        implied_kms_actions("secretsmanager:PutSecretValue"),
        ["kms:GenerateDataKey"]
    );
    assert_eq!(
        implied_kms_actions("secretsmanager:GetSecretValue"),
        ["kms:Decrypt"]
    );
    assert_eq!(
        implied_kms_actions("secretsmanager:UpdateSecret"),
        ["kms:GenerateDataKey", "kms:Decrypt"]
    );
}

#[test]
fn the_readme_names_only_permissions_the_policies_grant() {
    let listed = readme_unexercised();
    assert!(
        !listed.is_empty(),
        "README {README_SECTION:?} lists nothing"
    );
    let granted = granted();
    let unknown: Vec<&Grant> = listed.difference(&granted).collect();
    assert!(
        unknown.is_empty(),
        "README {README_SECTION:?} names permissions the suites' policies do not grant: \
         {unknown:#?}"
    );
}
