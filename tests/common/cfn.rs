//! A small CloudFormation evaluator for the tests: loads `template.yaml` and `iam/*.yaml` (short
//! tags in their long form) and resolves them for concrete parameter values (conditions, `Fn::If`,
//! `Ref`, `Fn::Sub`, `Fn::Join`, `Fn::Split`, `Fn::Select`, `Fn::FindInMap`, `AWS::NoValue`,
//! rules), so that what a
//! test checks is what CloudFormation would create.
#![allow(dead_code)]

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

// ---- loading ---------------------------------------------------------------------------------

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A CloudFormation YAML document as JSON, short tags in their long form
/// (`!Ref X` → `{"Ref": "X"}`, `!GetAtt A.B` → `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` →
/// `{"Fn::Sub": s}`, ...).
pub fn load_cfn(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let yaml: serde_norway::Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_to_json(yaml)
}

pub fn yaml_to_json(v: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::from_str(&n.to_string()).expect("YAML number"),
        Y::String(s) => Value::String(s),
        Y::Sequence(s) => Value::Array(s.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let k = match k {
                        Y::String(s) => s,
                        other => serde_norway::to_string(&other).unwrap().trim().to_string(),
                    };
                    (k, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let value = yaml_to_json(t.value);
            match tag {
                "Ref" => json!({ "Ref": value }),
                "Condition" => json!({ "Condition": value }),
                "GetAtt" => match value {
                    Value::String(s) => {
                        let (res, attr) = s.split_once('.').expect("!GetAtt Resource.Attribute");
                        json!({ "Fn::GetAtt": [res, attr] })
                    }
                    other => json!({ "Fn::GetAtt": other }),
                },
                other => json!({ format!("Fn::{other}"): value }),
            }
        }
    }
}

pub fn template() -> Value {
    load_cfn(&root().join("template.yaml"))
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

// ---- the parameter sets the deploy and policy checks resolve template.yaml under -------------

/// The smallest valid stack: the shorthand with a destination region.
pub const MINIMAL: &[(&str, &str)] = &[("DestRegion", "us-west-2")];
/// The shorthand into another account, with two approved destination roles.
pub const CROSS_ACCOUNT: &[(&str, &str)] = &[
    ("DestRegion", "us-west-2"),
    (
        "DestRoleArn",
        "arn:aws:iam::222222222222:role/secret-replicator-destination",
    ),
    ("DestExternalId", "4f1c0b6e9d2a7c3b5e8f"),
    (
        "DestinationRoleArns",
        "arn:aws:iam::222222222222:role/secret-replicator-destination,arn:aws:iam::333333333333:role/secret-replicator-destination",
    ),
];
/// Every optional part on: a config secret, narrowed reads, same-account writes in two
/// regions, a destination role, a key, a schedule, a larger events cap, an alarm
/// e-mail.
pub const MAXIMAL: &[(&str, &str)] = &[
    ("ReplicatorConfigSecret", "secret-replicator/config"),
    ("EventSource", "SecretLabelUpdated"),
    (
        "SourceSecretArnPattern",
        "arn:aws:secretsmanager:us-east-1:111111111111:secret:app/*",
    ),
    (
        "DestinationSecretArnPattern",
        "arn:aws:secretsmanager:us-west-2:111111111111:secret:dr/app/*,arn:aws:secretsmanager:eu-west-1:111111111111:secret:dr/app/*",
    ),
    (
        "DestinationRoleArns",
        "arn:aws:iam::222222222222:role/secret-replicator-destination",
    ),
    (
        "KmsKeyArns",
        "arn:aws:kms:us-west-2:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    ),
    ("BackfillSchedule", "rate(1 day)"),
    ("MaxConcurrency", "10"),
    ("AlarmEmail", "oncall@example.com"),
];

/// `template.yaml` resolved under each parameter set the checks run under: a minimal one, a
/// cross-account one, a maximal one, and a config file (in [`ACCOUNT`], [`REGION`]).
pub fn scenarios() -> Vec<(&'static str, Stack)> {
    let t = template();
    vec![
        ("minimal", resolve(&t, MINIMAL)),
        ("cross-account", resolve(&t, CROSS_ACCOUNT)),
        ("maximal", resolve(&t, MAXIMAL)),
        (
            "config-file",
            resolve(&t, &[("ReplicatorConfigFile", "/opt/replicator.json")]),
        ),
    ]
}

// ---- a small CloudFormation evaluator --------------------------------------------------------

pub const ACCOUNT: &str = "111111111111";
pub const REGION: &str = "us-east-1";

/// A template resolved for one set of parameter values: the resources CloudFormation would
/// create, with conditions decided and intrinsics replaced by values. Attributes of resources
/// (`Fn::GetAtt`) become `<Resource.Attribute>` and `Ref`s to resources `<Resource>`.
pub struct Stack {
    pub resources: BTreeMap<String, Value>,
    pub outputs: Map<String, Value>,
}

struct Evaluator<'a> {
    template: &'a Value,
    params: BTreeMap<String, Value>,
    conditions: BTreeMap<String, bool>,
}

/// Resolves `template` with `overrides` on top of the parameters' defaults, in [`ACCOUNT`] and
/// [`REGION`].
pub fn resolve(template: &Value, overrides: &[(&str, &str)]) -> Stack {
    resolve_in(template, overrides, ACCOUNT, REGION)
}

/// Resolves `template` as a stack in `account` and `region` (the pseudo parameters).
pub fn resolve_in(
    template: &Value,
    overrides: &[(&str, &str)],
    account: &str,
    region: &str,
) -> Stack {
    let mut params = BTreeMap::new();
    let declared = template["Parameters"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (name, p) in &declared {
        let raw = overrides
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| (*v).to_string())
            .or_else(|| p.get("Default").map(scalar_string))
            .unwrap_or_else(|| panic!("parameter {name} has no default and no value"));
        if let Some(allowed) = p.get("AllowedValues").and_then(Value::as_array) {
            assert!(
                allowed.iter().any(|a| scalar_string(a) == raw),
                "{name}={raw:?} not in AllowedValues"
            );
        }
        let value = if p["Type"] == "CommaDelimitedList" {
            Value::Array(raw.split(',').map(|s| json!(s.trim())).collect())
        } else {
            Value::String(raw)
        };
        params.insert(name.clone(), value);
    }
    for (k, _) in overrides {
        assert!(declared.contains_key(*k), "no parameter {k}");
    }
    let pseudo = [
        ("AWS::AccountId", account),
        ("AWS::Region", region),
        ("AWS::Partition", "aws"),
        ("AWS::URLSuffix", "amazonaws.com"),
        ("AWS::StackName", "secret-replicator"),
    ];
    for (k, v) in pseudo {
        params.insert(k.to_string(), json!(v));
    }
    let mut ev = Evaluator {
        template,
        params,
        conditions: BTreeMap::new(),
    };
    let names: Vec<String> = template["Conditions"]
        .as_object()
        .map(|c| c.keys().cloned().collect())
        .unwrap_or_default();
    for name in names {
        let value = ev.condition(&name);
        ev.conditions.insert(name, value);
    }
    // Rules: CloudFormation refuses to create a stack whose assertions fail.
    if let Some(rules) = template["Rules"].as_object() {
        for (name, rule) in rules {
            let applies = rule.get("RuleCondition").is_none_or(|c| ev.truth(c));
            if !applies {
                continue;
            }
            for a in rule["Assertions"].as_array().unwrap() {
                assert!(
                    ev.truth(&a["Assert"]),
                    "rule {name} rejects the parameters {overrides:?}"
                );
            }
        }
    }
    let mut resources = BTreeMap::new();
    for (name, r) in template["Resources"].as_object().expect("Resources") {
        if let Some(c) = r.get("Condition").and_then(Value::as_str)
            && !ev.conditions[c]
        {
            continue;
        }
        if let Some(v) = ev.eval(r) {
            resources.insert(name.clone(), v);
        }
    }
    let mut outputs = Map::new();
    for (name, o) in template["Outputs"].as_object().cloned().unwrap_or_default() {
        if let Some(v) = ev.eval(&o) {
            outputs.insert(name, v);
        }
    }
    Stack { resources, outputs }
}

pub fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Evaluator<'_> {
    fn condition(&mut self, name: &str) -> bool {
        if let Some(v) = self.conditions.get(name) {
            return *v;
        }
        let def = self.template["Conditions"]
            .get(name)
            .unwrap_or_else(|| panic!("no condition {name}"))
            .clone();
        let v = self.truth(&def);
        self.conditions.insert(name.to_string(), v);
        v
    }

    fn truth(&mut self, v: &Value) -> bool {
        let (k, arg) = single(v).unwrap_or_else(|| panic!("not a condition: {v}"));
        match k {
            "Condition" => self.condition(arg.as_str().unwrap()),
            "Fn::Equals" => {
                let a = arg.as_array().unwrap();
                let l = self.eval(&a[0]).unwrap();
                let r = self.eval(&a[1]).unwrap();
                scalar_string(&l) == scalar_string(&r)
            }
            "Fn::Not" => !self.truth(&arg[0]),
            "Fn::And" => arg.as_array().unwrap().iter().all(|c| self.truth(c)),
            "Fn::Or" => arg.as_array().unwrap().iter().any(|c| self.truth(c)),
            other => panic!("unsupported condition function {other}"),
        }
    }

    /// None = `AWS::NoValue` (the property or list element disappears).
    fn eval(&mut self, v: &Value) -> Option<Value> {
        if let Some((k, arg)) = single(v) {
            match k {
                "Ref" => {
                    let name = arg.as_str().unwrap();
                    if name == "AWS::NoValue" {
                        return None;
                    }
                    if let Some(p) = self.params.get(name) {
                        return Some(p.clone());
                    }
                    assert!(
                        self.template["Resources"].get(name).is_some(),
                        "Ref to unknown {name}"
                    );
                    return Some(json!(format!("<{name}>")));
                }
                "Fn::GetAtt" => {
                    let a = arg.as_array().unwrap();
                    let (res, attr) = (a[0].as_str().unwrap(), a[1].as_str().unwrap());
                    assert!(
                        self.template["Resources"].get(res).is_some(),
                        "GetAtt of unknown {res}"
                    );
                    return Some(json!(format!("<{res}.{attr}>")));
                }
                "Fn::If" => {
                    let a = arg.as_array().unwrap();
                    let c = self.condition(a[0].as_str().unwrap());
                    return self.eval(&a[if c { 1 } else { 2 }]);
                }
                "Fn::Sub" => {
                    let (text, vars) = match arg {
                        Value::String(s) => (s.clone(), Map::new()),
                        Value::Array(a) => (
                            a[0].as_str().unwrap().to_string(),
                            a[1].as_object().unwrap().clone(),
                        ),
                        _ => panic!("Fn::Sub {arg}"),
                    };
                    return Some(json!(self.sub(&text, &vars)));
                }
                "Fn::Join" => {
                    let a = arg.as_array().unwrap();
                    let sep = a[0].as_str().unwrap();
                    let list = self.eval(&a[1]).unwrap();
                    let parts: Vec<String> =
                        list.as_array().unwrap().iter().map(scalar_string).collect();
                    return Some(json!(parts.join(sep)));
                }
                "Fn::Split" => {
                    let a = arg.as_array().unwrap();
                    let sep = a[0].as_str().unwrap();
                    let s = scalar_string(&self.eval(&a[1]).unwrap());
                    return Some(json!(s.split(sep).collect::<Vec<_>>()));
                }
                "Fn::Select" => {
                    let a = arg.as_array().unwrap();
                    let i: usize = scalar_string(&a[0]).parse().unwrap();
                    let list = self.eval(&a[1]).unwrap();
                    return Some(list[i].clone());
                }
                "Fn::FindInMap" => {
                    let a = arg.as_array().unwrap();
                    assert_eq!(a.len(), 3, "Fn::FindInMap [map, key, key]: {arg}");
                    let keys: Vec<String> = a
                        .iter()
                        .map(|x| scalar_string(&self.eval(x).unwrap()))
                        .collect();
                    let v = &self.template["Mappings"][&keys[0]][&keys[1]][&keys[2]];
                    assert!(!v.is_null(), "Fn::FindInMap {keys:?}: no such entry");
                    return Some(v.clone());
                }
                _ if k.starts_with("Fn::") => panic!("unsupported intrinsic {k}"),
                _ => {}
            }
        }
        Some(match v {
            Value::Array(a) => Value::Array(a.iter().filter_map(|x| self.eval(x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .filter_map(|(k, x)| self.eval(x).map(|x| (k.clone(), x)))
                    .collect(),
            ),
            other => other.clone(),
        })
    }

    fn sub(&mut self, text: &str, vars: &Map<String, Value>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            if let Some(stripped) = after.strip_prefix('!') {
                out.push_str("${");
                rest = stripped;
                continue;
            }
            let end = after.find('}').expect("unterminated ${ in Fn::Sub");
            let name = &after[..end];
            let value = if let Some(v) = vars.get(name) {
                scalar_string(&self.eval(v).unwrap())
            } else if let Some(p) = self.params.get(name) {
                assert!(p.is_string(), "Fn::Sub of a list parameter {name}");
                scalar_string(p)
            } else if let Some((res, attr)) = name.split_once('.') {
                assert!(self.template["Resources"].get(res).is_some(), "${{{name}}}");
                format!("<{res}.{attr}>")
            } else {
                assert!(
                    self.template["Resources"].get(name).is_some(),
                    "${{{name}}}"
                );
                format!("<{name}>")
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// `{"Key": arg}` with one key.
pub fn single(v: &Value) -> Option<(&str, &Value)> {
    let o = v.as_object()?;
    if o.len() != 1 {
        return None;
    }
    let (k, arg) = o.iter().next()?;
    (k == "Ref" || k == "Condition" || k.starts_with("Fn::")).then_some((k.as_str(), arg))
}

impl Stack {
    pub fn of_type(&self, ty: &str) -> Vec<(&str, &Value)> {
        self.resources
            .iter()
            .filter(|(_, r)| r["Type"] == ty)
            .map(|(n, r)| (n.as_str(), r))
            .collect()
    }

    pub fn get(&self, name: &str) -> &Value {
        self.resources
            .get(name)
            .unwrap_or_else(|| panic!("no resource {name}"))
    }
}
