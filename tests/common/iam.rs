//! A small IAM policy evaluator for the static policy tests (SPEC §11): moto enforces actions and
//! resources but evaluates almost no condition keys, so the tests evaluate the template's and
//! `iam/`'s statements here, conditions included, against probes and against the calls the suites
//! recorded.
//!
//! What it evaluates, as the IAM User Guide describes it ("IAM JSON policy elements"):
//! - `Effect`; an explicit `Deny` beats any `Allow`; nothing that allows is an implicit deny.
//! - `Action`/`NotAction`: `service:Name` patterns, case-insensitive, `*` and `?` wildcards.
//! - `Resource`/`NotResource`: case-sensitive ARN patterns. `*` and `?` stay inside one of the
//!   first five colon-separated parts, except that a `*` that ends a part may run on past the
//!   colon ("If the `*` wildcard is the last character of a resource ARN segment, it can expand
//!   to match beyond the colon boundaries"); in the resource part they match anything.
//! - `Principal`/`NotPrincipal` of resource and trust policies: `*`; `AWS` as an account id or
//!   `arn:aws:iam::ACCOUNT:root` (any principal of that account), a role ARN (that role's
//!   sessions), a user or assumed-role session ARN (that one principal); `Service`.
//! - `Condition`: `StringEquals`, `StringNotEquals`, `StringEqualsIgnoreCase`,
//!   `StringNotEqualsIgnoreCase`, `StringLike`, `StringNotLike`, `ArnEquals`, `ArnLike`,
//!   `ArnNotEquals`, `ArnNotLike` (the ARN parts compared one by one), `Bool`, `Null`; the
//!   `...IfExists` suffix; the `ForAnyValue:`/`ForAllValues:` prefixes. Operators, keys, and
//!   values within a key combine as IAM combines them: values OR (negated operators: NOR), keys
//!   and operators AND. A missing key makes a positive operator false and a negated one true;
//!   `...IfExists` makes it true; `ForAllValues` over no values is true, `ForAnyValue` false.
//!   Condition key names are case-insensitive.
//!
//! What it refuses (a parse error, never a silent true or false): numeric, date, binary and IP
//! operators, policy variables (`${...}`), `Federated`/`CanonicalUser` principals, wildcards in
//! principals other than `*`, a single-valued operator applied to a key with several values,
//! unknown statement elements.
//!
//! What it does not model: how AWS combines the decisions of different policy types
//! (identity policy, trust or key policy, permission boundaries, SCPs, session policies).
//! [`evaluate`] decides one set of policies; callers ask each policy type that applies and
//! require every one to allow, which for the suites' calls is what AWS requires (a role
//! session's calls, a cross-account `AssumeRole`, any KMS call under a key policy).
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// Identity policies have no `Principal`; resource policies (trust, key) must have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Identity,
    Resource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// A list element and its negated form (`Action`/`NotAction`, ...).
#[derive(Debug, Clone, PartialEq)]
pub enum Names<T> {
    Listed(Vec<T>),
    AllBut(Vec<T>),
}

/// A principal as a `Principal` element names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalName {
    /// `"*"` or `{"AWS": "*"}`: anyone.
    Everyone,
    /// An account id or `arn:aws:iam::ACCOUNT:root`: any principal of that account.
    Account(String),
    /// A role ARN: that role's sessions.
    Role(String),
    /// A user or an assumed-role session ARN: that principal only.
    Arn(String),
    /// A service principal (`lambda.amazonaws.com`).
    Service(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Bool,
    Null,
}

impl Op {
    fn parse(name: &str) -> Result<Op, String> {
        Ok(match name {
            "StringEquals" => Op::StringEquals,
            "StringNotEquals" => Op::StringNotEquals,
            "StringEqualsIgnoreCase" => Op::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Op::StringNotEqualsIgnoreCase,
            "StringLike" => Op::StringLike,
            "StringNotLike" => Op::StringNotLike,
            "ArnEquals" => Op::ArnEquals,
            "ArnLike" => Op::ArnLike,
            "ArnNotEquals" => Op::ArnNotEquals,
            "ArnNotLike" => Op::ArnNotLike,
            "Bool" => Op::Bool,
            "Null" => Op::Null,
            other => return Err(format!("unsupported condition operator {other}")),
        })
    }

    fn negated(self) -> bool {
        matches!(
            self,
            Op::StringNotEquals
                | Op::StringNotEqualsIgnoreCase
                | Op::StringNotLike
                | Op::ArnNotEquals
                | Op::ArnNotLike
        )
    }

    /// The positive form's test of one policy value against one request value.
    fn test(self, policy: &str, request: &str) -> bool {
        match self {
            Op::StringEquals | Op::StringNotEquals => policy == request,
            Op::StringEqualsIgnoreCase | Op::StringNotEqualsIgnoreCase => {
                policy.to_lowercase() == request.to_lowercase()
            }
            Op::StringLike | Op::StringNotLike => glob(policy, request, false),
            // "The ArnEquals and ArnLike condition operators behave identically."
            Op::ArnEquals | Op::ArnLike | Op::ArnNotEquals | Op::ArnNotLike => {
                arn_like(policy, request)
            }
            Op::Bool => policy.eq_ignore_ascii_case(request),
            Op::Null => unreachable!("Null tests presence, not values"),
        }
    }
}

/// One condition key under one operator, e.g. `StringEquals` `sts:ExternalId` = `[...]`.
#[derive(Debug, Clone)]
pub struct Condition {
    /// The operator as written (`ForAnyValue:StringLikeIfExists`).
    pub operator: String,
    /// The condition key as written.
    pub key: String,
    /// The policy's values (OR).
    pub values: Vec<String>,
    set: Option<SetOp>,
    op: Op,
    if_exists: bool,
}

impl Condition {
    fn parse(operator: &str, key: &str, values: &Value) -> Result<Condition, String> {
        let (set, rest) = if let Some(r) = operator.strip_prefix("ForAnyValue:") {
            (Some(SetOp::ForAnyValue), r)
        } else if let Some(r) = operator.strip_prefix("ForAllValues:") {
            (Some(SetOp::ForAllValues), r)
        } else {
            (None, operator)
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (rest, false),
        };
        let op = Op::parse(base)?;
        if op == Op::Null && (if_exists || set.is_some()) {
            return Err(format!(
                "{operator}: Null takes no IfExists or set operator"
            ));
        }
        let values = strings(values).map_err(|e| format!("{operator} {key}: {e}"))?;
        for v in &values {
            no_variables(v)?;
            if matches!(op, Op::Bool | Op::Null) && !["true", "false"].contains(&&*v.to_lowercase())
            {
                return Err(format!("{operator} {key}: {v:?} is not true or false"));
            }
        }
        Ok(Condition {
            operator: operator.to_string(),
            key: key.to_string(),
            values,
            set,
            op,
            if_exists,
        })
    }

    /// Whether the condition holds for `context`; `Err` says why it does not.
    pub fn check(&self, context: &Context) -> Result<(), String> {
        let got = context.get(&self.key).filter(|v| !v.is_empty());
        let holds = match (self.op, self.set, got) {
            (Op::Null, _, got) => {
                let absent_wanted = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
                let present_wanted = self.values.iter().any(|v| v.eq_ignore_ascii_case("false"));
                (got.is_none() && absent_wanted) || (got.is_some() && present_wanted)
            }
            // A missing key: positive operators do not match, negated ones do.
            (_, None, None) => self.if_exists || self.op.negated(),
            (_, None, Some(vs)) => {
                assert!(
                    vs.len() == 1,
                    "{} {}: a single-valued operator on a key with {} values (use ForAnyValue: \
                     or ForAllValues:)",
                    self.operator,
                    self.key,
                    vs.len()
                );
                self.one(&vs[0])
            }
            // Set operators over no values: ForAllValues is true, ForAnyValue false.
            (_, Some(SetOp::ForAllValues), None) => true,
            (_, Some(SetOp::ForAnyValue), None) => self.if_exists,
            (_, Some(SetOp::ForAllValues), Some(vs)) => vs.iter().all(|v| self.one(v)),
            (_, Some(SetOp::ForAnyValue), Some(vs)) => vs.iter().any(|v| self.one(v)),
        };
        if holds {
            return Ok(());
        }
        let got = match got {
            None => "absent".to_string(),
            Some(vs) => format!("{vs:?}"),
        };
        Err(format!(
            "condition {} {{{:?}: {:?}}} is false: the request's {} is {got}",
            self.operator, self.key, self.values, self.key
        ))
    }

    fn one(&self, request: &str) -> bool {
        let any = self.values.iter().any(|p| self.op.test(p, request));
        if self.op.negated() { !any } else { any }
    }
}

/// One statement of a policy.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sid: Option<String>,
    /// Position in its policy (0-based): names statements without a `Sid`.
    pub index: usize,
    pub effect: Effect,
    pub actions: Names<String>,
    /// `None`: no `Resource` element (trust policies).
    pub resources: Option<Names<String>>,
    /// `None`: no `Principal` element (identity policies).
    pub principals: Option<Names<PrincipalName>>,
    pub conditions: Vec<Condition>,
    /// The statement as written.
    pub raw: Value,
}

impl Statement {
    fn parse(kind: Kind, index: usize, v: &Value) -> Result<Statement, String> {
        let o = v
            .as_object()
            .ok_or_else(|| format!("statement {index} is not an object: {v}"))?;
        for k in o.keys() {
            let known = [
                "Sid",
                "Effect",
                "Action",
                "NotAction",
                "Resource",
                "NotResource",
                "Principal",
                "NotPrincipal",
                "Condition",
            ];
            if !known.contains(&k.as_str()) {
                return Err(format!("statement {index}: unknown element {k}"));
            }
        }
        let sid = o.get("Sid").map(|s| match s {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let at = match &sid {
            Some(s) => format!("statement {s}"),
            None => format!("statement {index}"),
        };
        let effect = match o.get("Effect").and_then(Value::as_str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            other => return Err(format!("{at}: Effect {other:?}")),
        };
        let actions = names(o, "Action", "NotAction")
            .map_err(|e| format!("{at}: {e}"))?
            .ok_or_else(|| format!("{at}: no Action or NotAction"))?;
        let resources = names(o, "Resource", "NotResource").map_err(|e| format!("{at}: {e}"))?;
        if let Some(Names::Listed(r) | Names::AllBut(r)) = &resources {
            for p in r {
                no_variables(p).map_err(|e| format!("{at}: {e}"))?;
            }
        }
        let principals = match (o.get("Principal"), o.get("NotPrincipal")) {
            (Some(_), Some(_)) => return Err(format!("{at}: both Principal and NotPrincipal")),
            (Some(p), None) => Some(Names::Listed(
                principal(p).map_err(|e| format!("{at}: {e}"))?,
            )),
            (None, Some(p)) => Some(Names::AllBut(
                principal(p).map_err(|e| format!("{at}: {e}"))?,
            )),
            (None, None) => None,
        };
        match kind {
            Kind::Identity if principals.is_some() => {
                return Err(format!("{at}: a Principal in an identity policy"));
            }
            Kind::Identity if resources.is_none() => {
                return Err(format!("{at}: no Resource or NotResource"));
            }
            Kind::Resource if principals.is_none() => {
                return Err(format!("{at}: no Principal or NotPrincipal"));
            }
            _ => {}
        }
        let mut conditions = Vec::new();
        match o.get("Condition") {
            None => {}
            Some(Value::Object(ops)) => {
                for (operator, keys) in ops {
                    let keys = keys
                        .as_object()
                        .ok_or_else(|| format!("{at}: Condition {operator} is not an object"))?;
                    for (key, values) in keys {
                        conditions.push(
                            Condition::parse(operator, key, values)
                                .map_err(|e| format!("{at}: {e}"))?,
                        );
                    }
                }
            }
            Some(other) => return Err(format!("{at}: Condition {other}")),
        }
        Ok(Statement {
            sid,
            index,
            effect,
            actions,
            resources,
            principals,
            conditions,
            raw: v.clone(),
        })
    }

    /// Whether the statement's `Action`/`NotAction` covers `action`.
    pub fn covers_action(&self, action: &str) -> bool {
        match &self.actions {
            Names::Listed(a) => a.iter().any(|p| action_matches(p, action)),
            Names::AllBut(a) => !a.iter().any(|p| action_matches(p, action)),
        }
    }

    /// Whether the statement's `Resource`/`NotResource` covers `resource` (no element: any).
    pub fn covers_resource(&self, resource: &str) -> bool {
        match &self.resources {
            None => true,
            Some(Names::Listed(r)) => r.iter().any(|p| resource_matches(p, resource)),
            Some(Names::AllBut(r)) => !r.iter().any(|p| resource_matches(p, resource)),
        }
    }

    /// Whether the statement's `Principal`/`NotPrincipal` covers `caller` (no element: any).
    pub fn covers_principal(&self, caller: &Caller) -> bool {
        match &self.principals {
            None => true,
            Some(Names::Listed(p)) => p.iter().any(|p| caller.is(p)),
            Some(Names::AllBut(p)) => !p.iter().any(|p| caller.is(p)),
        }
    }

    /// The statement's action patterns that cover `action` (its own spelling).
    pub fn actions_covering(&self, action: &str) -> Vec<String> {
        match &self.actions {
            Names::Listed(a) => a
                .iter()
                .filter(|p| action_matches(p, action))
                .cloned()
                .collect(),
            Names::AllBut(_) => vec![format!("NotAction covering {action}")],
        }
    }

    /// Whether the statement applies to `request`; `Err(None)`: not its action,
    /// `Err(Some(why))`: its action, but something else does not match.
    fn applies(&self, request: &Request) -> Result<(), Option<String>> {
        if !self.covers_action(&request.action) {
            return Err(None);
        }
        if !self.covers_resource(&request.resource) {
            let r = match &self.resources {
                Some(Names::Listed(r)) => format!("Resource {r:?}"),
                Some(Names::AllBut(r)) => format!("NotResource {r:?}"),
                None => unreachable!(),
            };
            return Err(Some(format!("{r} does not cover {}", request.resource)));
        }
        if !self.covers_principal(&request.caller) {
            let p = match &self.principals {
                Some(Names::Listed(p)) => format!("Principal {p:?}"),
                Some(Names::AllBut(p)) => format!("NotPrincipal {p:?}"),
                None => unreachable!(),
            };
            return Err(Some(format!("{p} does not cover {}", request.caller.arn)));
        }
        let failed: Vec<String> = self
            .conditions
            .iter()
            .filter_map(|c| c.check(&request.context).err())
            .collect();
        if !failed.is_empty() {
            return Err(Some(failed.join("; ")));
        }
        Ok(())
    }
}

/// A policy: its statements and where they come from.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where the policy comes from, for messages (`function role policy`).
    pub label: String,
    pub kind: Kind,
    pub statements: Vec<Statement>,
}

impl Policy {
    /// Parses statements; the error names the statement and the element it cannot evaluate.
    pub fn parse(label: &str, kind: Kind, statements: &[Value]) -> Result<Policy, String> {
        let statements = statements
            .iter()
            .enumerate()
            .map(|(i, s)| Statement::parse(kind, i, s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{label}: {e}"))?;
        Ok(Policy {
            label: label.to_string(),
            kind,
            statements,
        })
    }

    /// [`Policy::parse`], panicking on an error (the policies under test must be evaluable).
    pub fn new(label: &str, kind: Kind, statements: &[Value]) -> Policy {
        Policy::parse(label, kind, statements).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A whole policy document (`{"Version": ..., "Statement": ...}`).
    pub fn document(label: &str, kind: Kind, doc: &Value) -> Policy {
        let statements = match &doc["Statement"] {
            Value::Array(a) => a.clone(),
            s @ Value::Object(_) => vec![s.clone()],
            other => panic!("{label}: Statement {other}"),
        };
        Policy::new(label, kind, &statements)
    }

    /// The statement a [`StatementRef`] names.
    pub fn statement(&self, r: &StatementRef) -> &Statement {
        assert_eq!(r.policy, self.label, "{r} is not from {}", self.label);
        &self.statements[r.index]
    }

    fn reference(&self, s: &Statement) -> StatementRef {
        StatementRef {
            policy: self.label.clone(),
            sid: s.sid.clone(),
            index: s.index,
        }
    }
}

/// Who makes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The principal's ARN (an assumed-role session ARN for a role session), or the service name.
    pub arn: String,
    /// The role, with its path, when the caller is a role session.
    pub role: Option<String>,
    /// The caller's account (none for a service principal).
    pub account: Option<String>,
    /// The service principal (`lambda.amazonaws.com`) when a service calls.
    pub service: Option<String>,
}

impl Caller {
    /// A session of `role_arn` (with its path): its ARN is
    /// `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION` (the path is not part of it).
    pub fn session(role_arn: &str, session: &str) -> Caller {
        let (account, path_and_name) =
            role_parts(role_arn).unwrap_or_else(|| panic!("{role_arn:?} is not an IAM role ARN"));
        let name = path_and_name.rsplit('/').next().unwrap();
        Caller {
            arn: format!("arn:aws:sts::{account}:assumed-role/{name}/{session}"),
            role: Some(role_arn.to_string()),
            account: Some(account.to_string()),
            service: None,
        }
    }

    /// An IAM user (`arn:aws:iam::ACCOUNT:user/NAME`).
    pub fn user(arn: &str) -> Caller {
        Caller {
            arn: arn.to_string(),
            role: None,
            account: Some(arn_account(arn).unwrap_or_else(|| panic!("{arn:?}"))),
            service: None,
        }
    }

    /// A service principal.
    pub fn service(name: &str) -> Caller {
        Caller {
            arn: name.to_string(),
            role: None,
            account: None,
            service: Some(name.to_string()),
        }
    }

    /// `aws:PrincipalArn`: the role ARN (with its path) for a role session, else the ARN.
    pub fn principal_arn(&self) -> Option<&str> {
        match (&self.service, &self.role) {
            (Some(_), _) => None,
            (None, Some(role)) => Some(role),
            (None, None) => Some(&self.arn),
        }
    }

    fn is(&self, p: &PrincipalName) -> bool {
        match p {
            PrincipalName::Everyone => true,
            PrincipalName::Account(a) => self.service.is_none() && self.account.as_ref() == Some(a),
            PrincipalName::Role(r) => self.role.as_ref() == Some(r),
            PrincipalName::Arn(a) => &self.arn == a,
            PrincipalName::Service(s) => self.service.as_ref() == Some(s),
        }
    }
}

/// The request context: condition keys (case-insensitive names) and their values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    keys: BTreeMap<String, (String, Vec<String>)>,
}

impl Context {
    pub fn new() -> Context {
        Context::default()
    }

    /// Sets a single-valued key.
    pub fn with(self, key: &str, value: &str) -> Context {
        self.with_values(key, &[value])
    }

    /// Sets a multivalued key (`aws:TagKeys`); `&[]` is a key with no values.
    pub fn with_values(mut self, key: &str, values: &[&str]) -> Context {
        self.keys.insert(
            key.to_lowercase(),
            (
                key.to_string(),
                values.iter().map(|v| v.to_string()).collect(),
            ),
        );
        self
    }

    /// Every key of a JSON object (`{"sts:ExternalId": "x", "aws:TagKeys": ["a", "b"]}`).
    pub fn from_json(v: &Value) -> Context {
        let mut c = Context::new();
        for (k, v) in v.as_object().unwrap_or_else(|| panic!("context {v}")) {
            let vs = strings(v).unwrap_or_else(|_| match v {
                Value::Array(a) if a.is_empty() => Vec::new(),
                other => panic!("context {k}: {other}"),
            });
            c.keys.insert(k.to_lowercase(), (k.clone(), vs));
        }
        c
    }

    /// Adds every key of `other`, replacing keys of the same name.
    pub fn merge(mut self, other: &Context) -> Context {
        for (k, v) in &other.keys {
            self.keys.insert(k.clone(), v.clone());
        }
        self
    }

    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.keys
            .get(&key.to_lowercase())
            .map(|(_, v)| v.as_slice())
    }
}

/// The global keys AWS puts in every request of `caller` in `region`: `aws:PrincipalArn`,
/// `aws:PrincipalAccount`, `aws:RequestedRegion`.
pub fn global_context(caller: &Caller, region: &str) -> Context {
    let mut c = Context::new().with("aws:RequestedRegion", region);
    if let Some(arn) = caller.principal_arn() {
        c = c.with("aws:PrincipalArn", arn);
    }
    if let Some(account) = &caller.account {
        c = c.with("aws:PrincipalAccount", account);
    }
    c
}

/// One request to decide.
#[derive(Debug, Clone)]
pub struct Request {
    pub caller: Caller,
    pub action: String,
    pub resource: String,
    pub context: Context,
}

/// Names a statement of a policy: `function role policy [ReadSources]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StatementRef {
    pub policy: String,
    pub sid: Option<String>,
    pub index: usize,
}

impl fmt::Display for StatementRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sid {
            Some(s) => write!(f, "{} [{s}]", self.policy),
            None => write!(f, "{} [statement {}]", self.policy, self.index),
        }
    }
}

/// The outcome, with the statements that decided it.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Allowed by these statements (every one that applies), and denied by none.
    Allow(Vec<StatementRef>),
    /// Denied by this statement (the first `Deny` that applies), whatever allows it.
    ExplicitDeny(StatementRef),
    /// Nothing allows it; for each statement with the request's action, why it does not apply.
    ImplicitDeny(Vec<(StatementRef, String)>),
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allow(by) => {
                let by: Vec<String> = by.iter().map(|s| s.to_string()).collect();
                write!(f, "allowed by {}", by.join(", "))
            }
            Decision::ExplicitDeny(by) => write!(f, "explicitly denied by {by}"),
            Decision::ImplicitDeny(misses) if misses.is_empty() => {
                write!(f, "implicitly denied: no statement has the action")
            }
            Decision::ImplicitDeny(misses) => {
                write!(f, "implicitly denied:")?;
                for (s, why) in misses {
                    write!(f, " {s}: {why}.")?;
                }
                Ok(())
            }
        }
    }
}

/// Decides `request` under `policies` (all of one evaluation: e.g. a role's identity policies,
/// or one key policy).
pub fn evaluate(policies: &[&Policy], request: &Request) -> Decision {
    let mut allows = Vec::new();
    let mut misses = Vec::new();
    for p in policies {
        for s in &p.statements {
            match s.applies(request) {
                Ok(()) if s.effect == Effect::Deny => {
                    return Decision::ExplicitDeny(p.reference(s));
                }
                Ok(()) => allows.push(p.reference(s)),
                Err(Some(why)) if s.effect == Effect::Allow => misses.push((p.reference(s), why)),
                Err(_) => {}
            }
        }
    }
    if allows.is_empty() {
        Decision::ImplicitDeny(misses)
    } else {
        Decision::Allow(allows)
    }
}

// ---- matching ---------------------------------------------------------------------------------

/// `Action` matching: case-insensitive, `*` and `?` anywhere.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    glob(pattern, action, true)
}

/// `Resource` matching (case-sensitive): see the module documentation.
pub fn resource_matches(pattern: &str, resource: &str) -> bool {
    pattern == "*" || wild(&arn_tokens(pattern, true), resource)
}

/// `StringLike`: `*` and `?` anywhere.
pub fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t) = if ignore_case {
        (pattern.to_lowercase(), text.to_lowercase())
    } else {
        (pattern.to_string(), text.to_string())
    };
    let tokens: Vec<Tok> = p
        .chars()
        .map(|c| match c {
            '*' => Tok::Star { colon: true },
            '?' => Tok::One { colon: true },
            c => Tok::Lit(c),
        })
        .collect();
    wild(&tokens, &t)
}

/// `ArnLike`: "Each of the six colon-delimited components of the ARN is checked separately and
/// each can include multi-character match wildcards (*) or single-character match wildcards (?)".
pub fn arn_like(pattern: &str, arn: &str) -> bool {
    wild(&arn_tokens(pattern, false), arn)
}

#[derive(Debug, Clone, Copy)]
enum Tok {
    Lit(char),
    /// `?`; `colon`: may match a `:`.
    One {
        colon: bool,
    },
    /// `*`; `colon`: may run past a `:`.
    Star {
        colon: bool,
    },
}

/// The tokens of an ARN pattern: in the first five parts `*` and `?` stay inside their part,
/// except (with `expand`, the `Resource` element) a `*` that ends a part; a `*` that ends the
/// whole pattern covers the rest; in the resource part (after the fifth colon) they match
/// anything, colons included (resource ids like `secret:NAME` or `function:NAME:ALIAS`).
fn arn_tokens(pattern: &str, expand: bool) -> Vec<Tok> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut colons = 0;
    let mut out = Vec::with_capacity(chars.len());
    for (i, &c) in chars.iter().enumerate() {
        let in_resource = colons >= 5;
        out.push(match c {
            ':' => {
                colons += 1;
                Tok::Lit(':')
            }
            '*' => {
                let last = i + 1 == chars.len();
                let ends_part = chars.get(i + 1) == Some(&':');
                Tok::Star {
                    colon: in_resource || last || (expand && ends_part),
                }
            }
            '?' => Tok::One { colon: in_resource },
            c => Tok::Lit(c),
        });
    }
    out
}

/// Wildcard matching of `text` against `tokens` (dynamic programming, no backtracking blow-up).
fn wild(tokens: &[Tok], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    // reach[j]: the tokens so far can match exactly text[..j].
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    for t in tokens {
        let mut next = vec![false; text.len() + 1];
        match *t {
            Tok::Lit(c) => {
                for j in 0..text.len() {
                    next[j + 1] = reach[j] && text[j] == c;
                }
            }
            Tok::One { colon } => {
                for j in 0..text.len() {
                    next[j + 1] = reach[j] && (colon || text[j] != ':');
                }
            }
            Tok::Star { colon } => {
                for j in 0..=text.len() {
                    next[j] = reach[j] || (j > 0 && next[j - 1] && (colon || text[j - 1] != ':'));
                }
            }
        }
        reach = next;
    }
    reach[text.len()]
}

// ---- parsing helpers --------------------------------------------------------------------------

/// A string or a list of scalars as strings (IAM accepts `true` and numbers as values).
fn strings(v: &Value) -> Result<Vec<String>, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(_) | Value::Number(_) => Ok(v.to_string()),
        other => Err(format!("not a scalar: {other}")),
    };
    match v {
        Value::Array(a) if a.is_empty() => Err("an empty list".into()),
        Value::Array(a) => a.iter().map(scalar).collect(),
        other => Ok(vec![scalar(other)?]),
    }
}

fn no_variables(s: &str) -> Result<(), String> {
    if s.contains("${") {
        return Err(format!("policy variables are not supported: {s:?}"));
    }
    Ok(())
}

fn names(
    o: &serde_json::Map<String, Value>,
    listed: &str,
    all_but: &str,
) -> Result<Option<Names<String>>, String> {
    match (o.get(listed), o.get(all_but)) {
        (Some(_), Some(_)) => Err(format!("both {listed} and {all_but}")),
        (Some(v), None) => Ok(Some(Names::Listed(
            strings(v).map_err(|e| format!("{listed}: {e}"))?,
        ))),
        (None, Some(v)) => Ok(Some(Names::AllBut(
            strings(v).map_err(|e| format!("{all_but}: {e}"))?,
        ))),
        (None, None) => Ok(None),
    }
}

fn principal(v: &Value) -> Result<Vec<PrincipalName>, String> {
    match v {
        Value::String(s) if s == "*" => Ok(vec![PrincipalName::Everyone]),
        Value::Object(m) => {
            let mut out = Vec::new();
            for (k, v) in m {
                for s in strings(v).map_err(|e| format!("Principal {k}: {e}"))? {
                    out.push(match k.as_str() {
                        "AWS" => aws_principal(&s)?,
                        "Service" if !s.contains(['*', '?']) => PrincipalName::Service(s),
                        other => {
                            return Err(format!("unsupported principal {other}: {s:?}"));
                        }
                    });
                }
            }
            Ok(out)
        }
        other => Err(format!("Principal {other}")),
    }
}

fn aws_principal(s: &str) -> Result<PrincipalName, String> {
    if s == "*" {
        return Ok(PrincipalName::Everyone);
    }
    if s.contains(['*', '?']) {
        return Err(format!(
            "a wildcard in a principal ({s:?}) matches nothing in IAM"
        ));
    }
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(PrincipalName::Account(s.to_string()));
    }
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    if parts.len() == 6 && parts[0] == "arn" {
        match (parts[2], parts[5]) {
            ("iam", "root") => return Ok(PrincipalName::Account(parts[4].to_string())),
            ("iam", r) if r.starts_with("role/") => return Ok(PrincipalName::Role(s.to_string())),
            ("iam", r) if r.starts_with("user/") => return Ok(PrincipalName::Arn(s.to_string())),
            ("sts", r) if r.starts_with("assumed-role/") => {
                return Ok(PrincipalName::Arn(s.to_string()));
            }
            _ => {}
        }
    }
    Err(format!("unsupported AWS principal {s:?}"))
}

/// `(account, path and name)` of `arn:aws:iam::ACCOUNT:role/PATH/NAME`.
pub fn role_parts(arn: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "iam" {
        return None;
    }
    let rest = parts[5].strip_prefix("role/")?;
    Some((parts[4], rest))
}

/// The account part of an ARN, when it has one.
pub fn arn_account(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    (parts.len() == 6 && parts[0] == "arn" && !parts[4].is_empty()).then(|| parts[4].to_string())
}

/// The region part of an ARN, when it has one.
pub fn arn_region(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    (parts.len() == 6 && parts[0] == "arn" && !parts[3].is_empty()).then(|| parts[3].to_string())
}
