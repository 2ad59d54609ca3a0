//! Configuration (SPEC §2): one model, supplied inline, from a file, from a secret, or by the
//! single-destination env shorthand. This is the only module that reads the environment.
//!
//! Loading is two steps: `Settings::from_env` decides where the document comes from (pure), and
//! `load` turns document text into a validated `Config`, compiling every transform it names.
//! Every error names the field (`rules[0].destinations[1].region`, or the env variable of the
//! shorthand) and all errors of a document are reported together.

use crate::outcome::Error;
use crate::transform::{self, Chain, LoadVars, Template, Transform, Vars};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Default for `REPLICATOR_CONFIG_TTL_SECONDS`.
pub const DEFAULT_CONFIG_TTL: Duration = Duration::from_secs(300);
/// Default for `REPLICATOR_WRITE_TPS`: half of Secrets Manager's shared 50/s write quota.
pub const DEFAULT_WRITE_TPS: u32 = 25;
/// Session name and default function name outside Lambda.
pub const DEFAULT_FUNCTION_NAME: &str = "secret-replicator";

/// A snapshot of the environment variables, so that loading is testable without touching the
/// process environment.
#[derive(Debug, Clone, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    /// The process environment (non-UTF-8 variables are ignored; none of ours can be).
    pub fn from_process() -> Self {
        Env(std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect())
    }

    /// From explicit pairs (tests, CLI overrides).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Env(pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    /// A non-empty variable.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// Set or replace a variable.
    pub fn set(&mut self, key: &str, value: &str) {
        self.0.insert(key.to_string(), value.to_string());
    }
}

/// True when the process runs under a Lambda runtime (AWS, `cargo lambda watch`).
pub fn under_lambda_runtime(env: &Env) -> bool {
    env.get("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Where the config document comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// `REPLICATOR_CONFIG`
    Inline(String),
    /// `REPLICATOR_CONFIG_FILE`
    File(String),
    /// `REPLICATOR_CONFIG_SECRET`, re-read after the TTL.
    Secret { id: String, ttl: Duration },
    /// `DEST_REGION` and friends.
    Shorthand(Shorthand),
}

/// The env shorthand for one destination.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Shorthand {
    pub region: String,
    pub name: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub kms_key_id: Option<String>,
    pub transforms: Vec<String>,
    pub matches: Vec<String>,
}

/// Process-wide settings, read once at start-up. Configuration errors are one per line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: ConfigSource,
    /// `AWS_LAMBDA_FUNCTION_NAME`: the assumed-role session name and the loop-prevention key.
    pub function_name: String,
    /// `REPLICATOR_ROLE_ARN`: the function's own role, for loop prevention.
    pub role_arn: Option<String>,
    /// `REPLICATOR_WRITE_TPS`, per destination account and region.
    pub write_tps: u32,
    /// `AWS_REGION` / `AWS_DEFAULT_REGION`, when set (the SDK's region chain decides otherwise).
    pub region: Option<String>,
    /// `REPLICATOR_CONFIG_TTL_SECONDS`: how long a configuration that reads secrets (its own
    /// document or `secret:` transforms) is kept before it is read again.
    pub config_ttl: Duration,
}

const SHORTHAND_VARS: &[&str] = &[
    "DEST_REGION",
    "DEST_SECRET_NAME",
    "DEST_ROLE_ARN",
    "DEST_EXTERNAL_ID",
    "DEST_KMS_KEY_ID",
    "TRANSFORMS",
    "SOURCE_MATCH",
];

impl Settings {
    /// Reads and checks the settings. Errors name the variable.
    pub fn from_env(env: &Env) -> Result<Settings, Error> {
        let mut errors = Vec::new();
        let shorthand_set: Vec<&str> = SHORTHAND_VARS
            .iter()
            .copied()
            .filter(|k| env.get(k).is_some())
            .collect();
        let mut sources: Vec<&str> = [
            "REPLICATOR_CONFIG",
            "REPLICATOR_CONFIG_FILE",
            "REPLICATOR_CONFIG_SECRET",
        ]
        .into_iter()
        .filter(|k| env.get(k).is_some())
        .collect();
        if !shorthand_set.is_empty() {
            sources.push("DEST_REGION (shorthand)");
        }
        let ttl = match env.get("REPLICATOR_CONFIG_TTL_SECONDS") {
            None => DEFAULT_CONFIG_TTL,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_secs(n),
                _ => {
                    errors.push(format!(
                        "REPLICATOR_CONFIG_TTL_SECONDS: expected a whole number of seconds > 0, got {v:?}"
                    ));
                    DEFAULT_CONFIG_TTL
                }
            },
        };
        let write_tps = match env.get("REPLICATOR_WRITE_TPS") {
            None => DEFAULT_WRITE_TPS,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if (1..=50).contains(&n) => n,
                _ => {
                    errors.push(format!(
                        "REPLICATOR_WRITE_TPS: expected a whole number from 1 to 50, got {v:?}"
                    ));
                    DEFAULT_WRITE_TPS
                }
            },
        };
        let role_arn = env.get("REPLICATOR_ROLE_ARN").map(str::to_string);
        if let Some(arn) = role_arn.as_deref().filter(|a| role_account(a).is_none()) {
            errors.push(format!(
                "REPLICATOR_ROLE_ARN: expected an IAM role ARN (arn:aws:iam::123456789012:role/name), got {arn:?}"
            ));
        }
        let source = match sources.as_slice() {
            [] => {
                errors.push(
                    "configuration: none given; set one of REPLICATOR_CONFIG, REPLICATOR_CONFIG_FILE, \
                     REPLICATOR_CONFIG_SECRET, or DEST_REGION (shorthand)"
                        .to_string(),
                );
                None
            }
            [_] => {
                if let Some(doc) = env.get("REPLICATOR_CONFIG") {
                    Some(ConfigSource::Inline(doc.to_string()))
                } else if let Some(path) = env.get("REPLICATOR_CONFIG_FILE") {
                    Some(ConfigSource::File(path.to_string()))
                } else if let Some(id) = env.get("REPLICATOR_CONFIG_SECRET") {
                    Some(ConfigSource::Secret {
                        id: id.to_string(),
                        ttl,
                    })
                } else if let Some(region) = env.get("DEST_REGION") {
                    Some(ConfigSource::Shorthand(Shorthand {
                        region: region.trim().to_string(),
                        name: env.get("DEST_SECRET_NAME").map(str::to_string),
                        role_arn: env.get("DEST_ROLE_ARN").map(str::to_string),
                        external_id: env.get("DEST_EXTERNAL_ID").map(str::to_string),
                        kms_key_id: env.get("DEST_KMS_KEY_ID").map(str::to_string),
                        transforms: split_list(env.get("TRANSFORMS")),
                        matches: split_list(env.get("SOURCE_MATCH")),
                    }))
                } else {
                    errors.push(format!(
                        "DEST_REGION: required for the shorthand configuration ({} set)",
                        shorthand_set.join(", ")
                    ));
                    None
                }
            }
            many => {
                errors.push(format!(
                    "configuration: exactly one source allowed, got {}",
                    many.join(" and ")
                ));
                None
            }
        };
        match (source, errors.is_empty()) {
            (Some(source), true) => Ok(Settings {
                source,
                function_name: env
                    .get("AWS_LAMBDA_FUNCTION_NAME")
                    .unwrap_or(DEFAULT_FUNCTION_NAME)
                    .to_string(),
                role_arn,
                write_tps,
                config_ttl: ttl,
                region: env
                    .get("AWS_REGION")
                    .or_else(|| env.get("AWS_DEFAULT_REGION"))
                    .map(str::to_string),
            }),
            _ => Err(Error::InvalidConfig(errors.join("\n"))),
        }
    }
}

/// Splits a comma-separated list, keeping commas inside `{...}`, `[...]` and quotes (an
/// inline `{"sed": "s/a,b/c/"}` in `TRANSFORMS` stays one item).
fn split_list(v: Option<&str>) -> Vec<String> {
    let Some(s) = v else { return Vec::new() };
    let (mut items, mut cur) = (Vec::new(), String::new());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in s.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '{' | '[' if !quoted => depth += 1,
            '}' | ']' if !quoted => depth = depth.saturating_sub(1),
            ',' if !quoted && depth == 0 => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    items.push(cur);
    items
        .iter()
        .map(|i| i.trim())
        .filter(|i| !i.is_empty())
        .map(str::to_string)
        .collect()
}

/// An IAM role to assume in a destination account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Role {
    pub arn: String,
    pub account: String,
    pub external_id: Option<String>,
}

/// One destination of a rule, validated and with its transforms compiled.
#[derive(Debug)]
pub struct Destination {
    /// `rules[0].destinations[1]`, for logs and errors.
    pub label: String,
    /// None = the source's region.
    pub region: Option<String>,
    /// None = the function's own account and credentials.
    pub role: Option<Role>,
    pub name: Template,
    pub kms_key_id: Option<String>,
    pub transforms: Chain,
    pub variables: BTreeMap<String, String>,
    pub copy_tags: bool,
    pub copy_description: bool,
    pub delete_with_source: bool,
    pub adopt: bool,
    /// Canonical text of the transform chain and the variable values: an input of the version
    /// token, so that a config change writes a new version and a replay writes none.
    pub fingerprint: String,
}

/// One rule: which sources, and where they go.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    patterns: Vec<String>,
    matches: GlobSet,
    excludes: GlobSet,
    /// Replicate sources that are themselves replicas.
    pub chain: bool,
    pub destinations: Vec<Destination>,
}

impl Rule {
    /// Whether this rule replicates the secret with this (friendly) name.
    pub fn matches(&self, name: &str) -> bool {
        self.matches.is_match(name) && !self.excludes.is_match(name)
    }

    /// One example name per `match` pattern that the rule matches (for `validate`'s loop
    /// warnings): wildcards replaced by plain segments.
    pub fn samples(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| {
                let mut out = String::new();
                let mut chars = p.chars().peekable();
                while let Some(c) = chars.next() {
                    match c {
                        '*' if chars.peek() == Some(&'*') => {
                            chars.next();
                            out.push_str("x/y");
                        }
                        '*' | '?' => out.push('x'),
                        '[' => {
                            let class: String = chars.by_ref().take_while(|&c| c != ']').collect();
                            out.push(
                                class
                                    .chars()
                                    .find(|c| *c != '!' && *c != '^')
                                    .unwrap_or('x'),
                            );
                        }
                        '\\' => out.extend(chars.next()),
                        c => out.push(c),
                    }
                }
                out.replace("//", "/")
            })
            .filter(|s| self.matches(s))
            .collect()
    }
}

/// The validated configuration.
#[derive(Debug, Default)]
pub struct Config {
    pub rules: Vec<Rule>,
    /// Whether some transform is a `secret:` reference (re-read with the configuration's TTL).
    pub reads_secrets: bool,
}

impl Config {
    /// Whether any rule matches this secret name.
    pub fn matches_any(&self, name: &str) -> bool {
        self.rules.iter().any(|r| r.matches(name))
    }
}

/// Fetches the text of a secret (`REPLICATOR_CONFIG_SECRET`, `secret:<id>` transforms).
pub trait TextFetcher: Send + Sync {
    fn fetch_text(&self, id: &str) -> impl Future<Output = Result<String, Error>> + Send;
}

/// Notes whether a load read any secret.
struct Counting<'a, F> {
    inner: &'a F,
    used: &'a std::sync::atomic::AtomicBool,
}

impl<F: TextFetcher> TextFetcher for Counting<'_, F> {
    async fn fetch_text(&self, id: &str) -> Result<String, Error> {
        self.used.store(true, std::sync::atomic::Ordering::Relaxed);
        self.inner.fetch_text(id).await
    }
}

/// A fetcher for configurations that name no secret.
pub struct NoFetcher;

impl TextFetcher for NoFetcher {
    async fn fetch_text(&self, id: &str) -> Result<String, Error> {
        Err(Error::InvalidConfig(format!(
            "secret:{id}: secret references cannot be read here"
        )))
    }
}

// ---- the document, as written ----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    #[serde(rename = "match")]
    matches: Option<Vec<String>>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    chain: bool,
    destinations: Vec<RawDestination>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDestination {
    region: Option<String>,
    account_role_arn: Option<String>,
    external_id: Option<String>,
    name: Option<String>,
    kms_key_id: Option<String>,
    #[serde(default)]
    transforms: Vec<Value>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    copy_tags: bool,
    #[serde(default)]
    copy_description: bool,
    #[serde(default)]
    delete_with_source: bool,
    #[serde(default)]
    adopt: bool,
}

/// Names fields in messages: document paths, or the env variables of the shorthand.
#[derive(Clone, Copy)]
enum Naming {
    Document,
    Shorthand,
}

impl Naming {
    fn field(self, path: &str, field: &str) -> String {
        match self {
            Naming::Document => format!("{path}.{field}"),
            Naming::Shorthand => match field {
                "region" => "DEST_REGION".into(),
                "name" => "DEST_SECRET_NAME".into(),
                "account_role_arn" => "DEST_ROLE_ARN".into(),
                "external_id" => "DEST_EXTERNAL_ID".into(),
                "kms_key_id" => "DEST_KMS_KEY_ID".into(),
                "match" => "SOURCE_MATCH".into(),
                f if f.starts_with("transforms") => {
                    format!("TRANSFORMS{}", f.trim_start_matches("transforms"))
                }
                other => other.to_string(),
            },
        }
    }
}

/// Parses and validates a document, reading `.sed`/`.json` files relative to the working
/// directory and `secret:` references through `fetcher`.
pub async fn load_document(text: &str, fetcher: &impl TextFetcher) -> Result<Config, Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let raw: RawConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            Error::InvalidConfig(format!("config document: {inner}"))
        } else {
            Error::InvalidConfig(format!("{path}: {inner}"))
        }
    })?;
    build(raw, Naming::Document, fetcher).await
}

/// The shorthand, compiled to one rule.
pub async fn load_shorthand(s: &Shorthand, fetcher: &impl TextFetcher) -> Result<Config, Error> {
    let raw = RawConfig {
        rules: vec![RawRule {
            name: Some("shorthand".into()),
            matches: if s.matches.is_empty() {
                None
            } else {
                Some(s.matches.clone())
            },
            exclude: vec![],
            chain: false,
            destinations: vec![RawDestination {
                region: Some(s.region.clone()),
                account_role_arn: s.role_arn.clone(),
                external_id: s.external_id.clone(),
                name: s.name.clone(),
                kms_key_id: s.kms_key_id.clone(),
                // An item that is a JSON object is an inline transform; the rest are references.
                transforms: s
                    .transforms
                    .iter()
                    .map(|t| match serde_json::from_str::<Value>(t) {
                        Ok(v @ Value::Object(_)) => v,
                        _ => Value::String(t.clone()),
                    })
                    .collect(),
                ..RawDestination::default()
            }],
        }],
    };
    build(raw, Naming::Shorthand, fetcher).await
}

/// Loads the configuration named by the settings.
pub async fn load(settings: &Settings, fetcher: &impl TextFetcher) -> Result<Config, Error> {
    match &settings.source {
        ConfigSource::Inline(doc) => load_document(doc, fetcher)
            .await
            .map_err(|e| prefixed("REPLICATOR_CONFIG", &e)),
        ConfigSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::InvalidConfig(format!("REPLICATOR_CONFIG_FILE: cannot read {path}: {e}"))
            })?;
            load_document(&text, fetcher)
                .await
                .map_err(|e| prefixed(path, &e))
        }
        ConfigSource::Secret { id, .. } => {
            let text = fetcher.fetch_text(id).await.map_err(|e| {
                Error::InvalidConfig(format!("REPLICATOR_CONFIG_SECRET: cannot read {id}: {e}"))
            })?;
            load_document(&text, fetcher)
                .await
                .map_err(|e| prefixed(&format!("secret {id}"), &e))
        }
        ConfigSource::Shorthand(s) => load_shorthand(s, fetcher).await,
    }
}

/// Names the document in front of each of its errors (one per line).
pub fn prefixed(origin: &str, e: &Error) -> Error {
    Error::InvalidConfig(
        e.to_string()
            .lines()
            .map(|l| format!("{origin}: {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

async fn build(
    raw: RawConfig,
    naming: Naming,
    fetcher: &impl TextFetcher,
) -> Result<Config, Error> {
    let mut errors = Vec::new();
    let reads_secrets = std::sync::atomic::AtomicBool::new(false);
    let fetcher = &Counting {
        inner: fetcher,
        used: &reads_secrets,
    };
    let mut rules = Vec::new();
    for (ri, rr) in raw.rules.into_iter().enumerate() {
        let rpath = format!("rules[{ri}]");
        let matches = rr.matches.unwrap_or_else(|| vec!["**".to_string()]);
        let match_set = globs(&matches, &naming.field(&rpath, "match"), &mut errors);
        let matches_text = matches;
        let exclude_set = globs(&rr.exclude, &naming.field(&rpath, "exclude"), &mut errors);
        if rr.destinations.is_empty() {
            errors.push(format!(
                "{}: at least one destination is required",
                naming.field(&rpath, "destinations")
            ));
        }
        let mut destinations = Vec::new();
        for (di, rd) in rr.destinations.into_iter().enumerate() {
            let dpath = format!("{rpath}.destinations[{di}]");
            if let Some(d) = destination(rd, &dpath, naming, fetcher, &mut errors).await {
                destinations.push(d);
            }
        }
        if let (Some(matches), Some(excludes)) = (match_set, exclude_set) {
            rules.push(Rule {
                name: rr.name.unwrap_or_else(|| format!("rule[{ri}]")),
                patterns: matches_text,
                matches,
                excludes,
                chain: rr.chain,
                destinations,
            });
        }
    }
    if errors.is_empty() {
        let reads_secrets = reads_secrets.load(std::sync::atomic::Ordering::Relaxed);
        Ok(Config {
            rules,
            reads_secrets,
        })
    } else {
        Err(Error::InvalidConfig(errors.join("\n")))
    }
}

fn globs(patterns: &[String], field: &str, errors: &mut Vec<String>) -> Option<GlobSet> {
    let mut set = GlobSetBuilder::new();
    let mut ok = true;
    for (i, p) in patterns.iter().enumerate() {
        // `*` and `?` stay inside one `/` segment; `**` crosses segments; case-sensitive.
        match GlobBuilder::new(p)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
        {
            Ok(g) => {
                set.add(g);
            }
            Err(e) => {
                ok = false;
                errors.push(format!("{field}[{i}]: invalid glob {p:?}: {}", e.kind()));
            }
        }
    }
    match set.build() {
        Ok(s) if ok => Some(s),
        Ok(_) => None,
        Err(e) => {
            errors.push(format!("{field}: {e}"));
            None
        }
    }
}

async fn destination(
    rd: RawDestination,
    path: &str,
    naming: Naming,
    fetcher: &impl TextFetcher,
    errors: &mut Vec<String>,
) -> Option<Destination> {
    let before = errors.len();
    let f = |field: &str| naming.field(path, field);
    if let Some(r) = rd.region.as_deref().filter(|r| !valid_region(r)) {
        errors.push(format!(
            "{}: expected an AWS region such as us-west-2, got {r:?}",
            f("region")
        ));
    }
    let role = match &rd.account_role_arn {
        None => {
            if rd.external_id.is_some() {
                errors.push(format!(
                    "{}: only meaningful with account_role_arn",
                    f("external_id")
                ));
            }
            None
        }
        Some(arn) => match role_account(arn) {
            None => {
                errors.push(format!(
                    "{}: expected an IAM role ARN (arn:aws:iam::123456789012:role/name), got {arn:?}",
                    f("account_role_arn")
                ));
                None
            }
            Some(account) => Some(Role {
                arn: arn.clone(),
                account,
                external_id: rd.external_id.clone(),
            }),
        },
    };
    if let Some(x) = &rd.external_id {
        let ok = (2..=1224).contains(&x.len())
            && x.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c));
        if !ok {
            errors.push(format!(
                "{}: 2 to 1224 characters of letters, digits and +=,.@:/-_",
                f("external_id")
            ));
        }
    }
    if rd
        .kms_key_id
        .as_deref()
        .is_some_and(|k| k.trim().is_empty())
    {
        errors.push(format!("{}: must not be empty", f("kms_key_id")));
    }
    for k in rd.variables.keys() {
        let well_formed = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed {
            errors.push(format!(
                "{}.{k}: variable names are letters, digits and _",
                f("variables")
            ));
        } else if transform::BUILTIN_VARS.contains(&k.as_str()) {
            errors.push(format!(
                "{}.{k}: shadows a built-in variable",
                f("variables")
            ));
        }
    }

    // Names known to templates: built-ins plus this destination's variables; a name template
    // cannot use DEST_SECRET_NAME (it defines it).
    let user_vars: Vars = rd.variables.iter().fold(Vars::new(), |mut v, (k, val)| {
        v.set(k.clone(), val.clone());
        v
    });
    let mut fixed = user_vars.clone();
    if let Some(r) = &rd.region {
        fixed.set("DEST_REGION", r.clone());
    }
    let all_names: Vec<String> = transform::BUILTIN_VARS
        .iter()
        .map(|s| s.to_string())
        .chain(rd.variables.keys().cloned())
        .collect();
    let name_vars = LoadVars::new(
        all_names
            .iter()
            .filter(|n| n.as_str() != "DEST_SECRET_NAME")
            .cloned(),
        fixed.clone(),
    );
    let name_text = rd
        .name
        .clone()
        .unwrap_or_else(|| "${SECRET_NAME}".to_string());
    let name = match Template::parse(&name_text, &name_vars) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(format!("{}: {e}", f("name")));
            None
        }
    };
    let load_vars = LoadVars::new(all_names, fixed);
    let mut items = Vec::new();
    let mut canonical = Vec::new();
    for (ti, reference) in rd.transforms.iter().enumerate() {
        let field = f(&format!("transforms[{ti}]"));
        match load_transform(reference, &load_vars, fetcher).await {
            Ok(t) => {
                canonical.push(t.canonical());
                items.push(Arc::new(t));
            }
            Err(msg) => errors.push(format!("{field}: {msg}")),
        }
    }
    if errors.len() > before {
        return None;
    }
    let name = name?;
    let fingerprint = fingerprint(&canonical, &rd.variables);
    Some(Destination {
        label: path.to_string(),
        region: rd.region,
        role,
        name,
        kms_key_id: rd.kms_key_id,
        transforms: Chain::new(items),
        variables: rd.variables,
        copy_tags: rd.copy_tags,
        copy_description: rd.copy_description,
        delete_with_source: rd.delete_with_source,
        adopt: rd.adopt,
        fingerprint,
    })
}

/// The transform part of the version token: engine format, each transform's canonical text (the
/// contents of `secret:` references included), and the destination's variable values.
fn fingerprint(canonical: &[String], variables: &BTreeMap<String, String>) -> String {
    if canonical.is_empty() {
        return String::new();
    }
    let mut s = format!("format={};", transform::FORMAT_VERSION);
    for c in canonical {
        s.push_str(&format!("{}:{};", c.len(), c));
    }
    for (k, v) in variables {
        s.push_str(&format!("{}={}:{};", k, v.len(), v));
    }
    s
}

/// Resolves one transform reference: `path.sed`, `path.json`, `secret:<id>`, `{"sed": ...}`,
/// `{"json": [...]}`.
pub async fn load_transform(
    reference: &Value,
    vars: &LoadVars,
    fetcher: &impl TextFetcher,
) -> Result<Transform, String> {
    match reference {
        Value::String(r) if r.starts_with("secret:") => {
            let id = &r["secret:".len()..];
            if id.is_empty() {
                return Err("secret: needs a secret id".into());
            }
            let text = fetcher.fetch_text(id).await.map_err(|e| e.to_string())?;
            // A secret holds a JSON mapping when it is a JSON array, a sed script otherwise.
            if text.trim_start().starts_with('[') {
                Transform::json(r, &text, vars).map_err(|e| e.to_string())
            } else {
                Transform::sed(r, &text, vars).map_err(|e| e.to_string())
            }
        }
        Value::String(path) if path.ends_with(".sed") || path.ends_with(".json") => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {path}: {e}"))?;
            if path.ends_with(".sed") {
                Transform::sed(path, &text, vars).map_err(|e| e.to_string())
            } else {
                Transform::json(path, &text, vars).map_err(|e| e.to_string())
            }
        }
        Value::String(other) => Err(format!(
            "{other:?}: expected a path ending in .sed or .json, secret:<id>, {{\"sed\": ...}} or {{\"json\": [...]}}"
        )),
        Value::Object(map) if map.len() == 1 => match map.iter().next() {
            Some((k, Value::String(script))) if k == "sed" => {
                Transform::sed("inline", script, vars).map_err(|e| e.to_string())
            }
            Some((k, v @ Value::Array(_))) if k == "json" => {
                Transform::json("inline", &v.to_string(), vars).map_err(|e| e.to_string())
            }
            _ => Err("expected {\"sed\": \"script\"} or {\"json\": [operations]}".into()),
        },
        _ => Err(
            "expected a path ending in .sed or .json, secret:<id>, {\"sed\": ...} or {\"json\": [...]}"
                .into(),
        ),
    }
}

fn valid_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts.iter().all(|p| !p.is_empty())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
}

/// The account of an IAM role ARN, or None when it is not one.
pub fn role_account(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" || !parts[1].starts_with("aws") || parts[2] != "iam" {
        return None;
    }
    let account = parts[4];
    let resource = parts[5];
    let name_ok = resource.strip_prefix("role/").is_some_and(|n| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
    });
    (account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()) && name_ok)
        .then(|| account.to_string())
}

#[cfg(test)]
mod tests;
