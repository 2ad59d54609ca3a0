//! Configuration (SPEC §2): one model, supplied inline, from a file, from a secret, or by the
//! single-destination env shorthand.
//!
//! Loading is two steps: `settings::Settings::from_env` decides where the document comes from
//! (pure), and `load` turns document text into a validated `Config`, compiling every transform
//! it names.
//! Every error names the field (`rules[0].destinations[1].region`, or the env variable of the
//! shorthand) and all errors of a document are reported together.

use crate::outcome::Error;
use crate::settings::{ConfigSource, Settings, Shorthand};
use crate::transform::{Chain, Template};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;

/// An IAM role to assume in a destination account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// `tags`: every key the source must carry, with its value (None for `*`: any value).
    pub tags: Vec<(String, Option<String>)>,
    pub destinations: Vec<Destination>,
}

impl Rule {
    /// Whether this rule replicates the secret with this (friendly) name. A rule with `tags`
    /// also needs [`Rule::tags_match`].
    pub fn matches(&self, name: &str) -> bool {
        self.matches.is_match(name) && !self.excludes.is_match(name)
    }

    /// Whether the rule selects its sources by tag (SPEC §2 `tags`).
    pub fn has_tags(&self) -> bool {
        !self.tags.is_empty()
    }

    /// Whether a source with these tags carries every tag the rule asks for.
    pub fn tags_match(&self, tags: &[(String, String)]) -> bool {
        self.tags.iter().all(|(key, want)| {
            tags.iter()
                .any(|(k, v)| k == key && want.as_ref().is_none_or(|w| w == v))
        })
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
    /// A digest of the document and every destination's transforms and key: an `all` chain
    /// that sees it change restarts from the first name (SPEC §6).
    pub fingerprint: String,
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

/// Notes whether a load read any secret, and the first read that failed retriably (throttled,
/// timed out, 5xx): that makes the configuration unreadable for now, not invalid (SPEC §10).
/// A permanent failure (no such secret, access denied) is a configuration error.
struct Recording<'a, F> {
    inner: &'a F,
    used: std::sync::atomic::AtomicBool,
    failed: std::sync::Mutex<Option<Error>>,
}

impl<F: TextFetcher> TextFetcher for Recording<'_, F> {
    async fn fetch_text(&self, id: &str) -> Result<String, Error> {
        self.used.store(true, std::sync::atomic::Ordering::Relaxed);
        let r = self.inner.fetch_text(id).await;
        if let Err(e @ Error::Aws(_)) = &r
            && e.retry_class() == crate::outcome::RetryClass::Retriable
        {
            self.failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| unreadable(&format!("secret:{id}"), e));
        }
        r
    }
}

/// A secret the configuration needs could not be read: the AWS error (its kind and retry class
/// kept), its message naming what was being read.
pub fn unreadable(what: &str, e: &Error) -> Error {
    match e {
        Error::Aws(a) => Error::Aws(crate::outcome::AwsError {
            message: format!("cannot read {what}: {}", a.message),
            ..a.clone()
        }),
        other => other.clone(),
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
    #[serde(default)]
    tags: BTreeMap<String, String>,
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
    // Depth first, as for payloads: serde_json's own limit would say "recursion limit exceeded".
    if let Some(at) = crate::event::too_deep(text.as_bytes(), crate::event::MAX_DEPTH) {
        return Err(Error::InvalidConfig(format!(
            "config document: nests arrays/objects deeper than the limit of {} levels (at byte {at})",
            crate::event::MAX_DEPTH
        )));
    }
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
    build(raw, Naming::Document, fetcher, text).await
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
            tags: BTreeMap::new(),
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
    build(raw, Naming::Shorthand, fetcher, &format!("{s:?}")).await
}

/// Loads the configuration named by the settings.
pub async fn load(settings: &Settings, fetcher: &impl TextFetcher) -> Result<Config, Error> {
    match &settings.source {
        ConfigSource::Inline(doc) => load_document(doc, fetcher).await.map_err(|e| match e {
            e @ Error::InvalidConfig(_) => prefixed("REPLICATOR_CONFIG", &e),
            other => other,
        }),
        ConfigSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::InvalidConfig(format!("REPLICATOR_CONFIG_FILE: cannot read {path}: {e}"))
            })?;
            load_document(&text, fetcher).await.map_err(|e| match e {
                e @ Error::InvalidConfig(_) => prefixed(path, &e),
                other => other,
            })
        }
        ConfigSource::Secret { id, .. } => {
            let text = fetcher.fetch_text(id).await.map_err(|e| {
                if e.retry_class() == crate::outcome::RetryClass::Retriable {
                    unreadable(&format!("REPLICATOR_CONFIG_SECRET {id}"), &e)
                } else {
                    Error::InvalidConfig(format!("REPLICATOR_CONFIG_SECRET: cannot read {id}: {e}"))
                }
            })?;
            load_document(&text, fetcher).await.map_err(|e| match e {
                e @ Error::InvalidConfig(_) => prefixed(&format!("secret {id}"), &e),
                other => other,
            })
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
    canonical: &str,
) -> Result<Config, Error> {
    let mut errors = Vec::new();
    let recording = Recording {
        inner: fetcher,
        used: std::sync::atomic::AtomicBool::new(false),
        failed: std::sync::Mutex::new(None),
    };
    let fetcher = &recording;
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
        let tags = rule_tags(&rr.tags, &naming.field(&rpath, "tags"), &mut errors);
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
                tags,
                destinations,
            });
        }
    }
    let failed = recording
        .failed
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(e) = failed {
        // Read again later: the document may well be valid once its secrets can be read.
        return Err(e);
    }
    if errors.is_empty() {
        let reads_secrets = recording.used.load(std::sync::atomic::Ordering::Relaxed);
        let fingerprint = config_fingerprint(canonical, &rules);
        Ok(Config {
            rules,
            reads_secrets,
            fingerprint,
        })
    } else {
        Err(Error::InvalidConfig(errors.join("\n")))
    }
}

/// The configuration's fingerprint: its text and each destination's transforms (with the
/// contents of `secret:` references) and key.
fn config_fingerprint(canonical: &str, rules: &[Rule]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update((canonical.len() as u64).to_be_bytes());
    h.update(canonical.as_bytes());
    for d in rules.iter().flat_map(|r| &r.destinations) {
        h.update((d.fingerprint.len() as u64).to_be_bytes());
        h.update(d.fingerprint.as_bytes());
    }
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A rule's `tags`: keys as Secrets Manager allows them (1 to 128 characters), values up to 256,
/// `*` for any value.
fn rule_tags(
    raw: &BTreeMap<String, String>,
    field: &str,
    errors: &mut Vec<String>,
) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for (k, v) in raw {
        if k.is_empty() || k.chars().count() > 128 {
            errors.push(format!(
                "{field}: a tag key is 1 to 128 characters, got {k:?}"
            ));
        } else if k.starts_with("aws:") {
            errors.push(format!(
                "{field}.{k}: aws: tags are reserved to AWS and cannot select sources"
            ));
        } else if v.chars().count() > 256 {
            errors.push(format!(
                "{field}.{k}: a tag value is at most 256 characters"
            ));
        } else {
            out.push((k.clone(), (v != "*").then(|| v.clone())));
        }
    }
    out
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

mod destination;
use destination::destination;
mod transforms;
pub use transforms::load_transform;

#[cfg(test)]
mod tests;
