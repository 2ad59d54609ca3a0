//! Process settings (SPEC §2): the environment read once at start-up, pure and testable. This
//! is the only module that reads the environment; where the configuration document comes from
//! is decided here, what it says is `config`'s business.

use crate::outcome::Error;
use std::collections::HashMap;
use std::time::Duration;

/// Default for `REPLICATOR_CONFIG_TTL_SECONDS`.
pub const DEFAULT_CONFIG_TTL: Duration = Duration::from_secs(300);
/// Default for `REPLICATOR_WRITE_TPS`: half of Secrets Manager's shared 50/s write quota.
pub const DEFAULT_WRITE_TPS: f64 = 25.0;
/// Secrets Manager's shared quota for PutSecretValue, UpdateSecret and UpdateSecretVersionStage
/// per account and region: the most `REPLICATOR_WRITE_TPS` may be.
pub const MAX_WRITE_TPS: f64 = 50.0;
/// Default for `REPLICATOR_CONCURRENCY`: one container.
pub const DEFAULT_CONCURRENCY: u32 = 1;
/// The most containers `REPLICATOR_CONCURRENCY` may promise.
pub const MAX_CONCURRENCY: u32 = 1000;
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
    /// `REPLICATOR_CONFIG_SECRET`, re-read after [`Settings::config_ttl`].
    Secret { id: String },
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
    /// `REPLICATOR_WRITE_TPS`: mutating calls per second per destination account and region,
    /// for the whole function (all containers together).
    pub write_tps: f64,
    /// `REPLICATOR_CONCURRENCY`: the most containers that can run at once; each takes
    /// `write_tps / concurrency`.
    pub concurrency: u32,
    /// `AWS_REGION` / `AWS_DEFAULT_REGION`, when set (the SDK's region chain decides otherwise).
    pub region: Option<String>,
    /// `REPLICATOR_CONFIG_TTL_SECONDS`: how long a configuration that reads secrets (its own
    /// document or `secret:` transforms) is kept before it is read again.
    pub config_ttl: Duration,
    /// `REPLICATOR_LINK_SOURCES`: the most sources one `all` link under Lambda starts before it
    /// continues (unset: the deadline alone ends a link).
    pub link_sources: Option<usize>,
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
            Some(v) => match v.trim().parse::<f64>() {
                Ok(n) if n > 0.0 && n <= MAX_WRITE_TPS => n,
                _ => {
                    errors.push(format!(
                        "REPLICATOR_WRITE_TPS: expected a number greater than 0 and at most 50 (mutating calls per second per destination account and region, for all containers together), got {v:?}"
                    ));
                    DEFAULT_WRITE_TPS
                }
            },
        };
        let concurrency = match env.get("REPLICATOR_CONCURRENCY") {
            None => DEFAULT_CONCURRENCY,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => n,
                _ => {
                    errors.push(format!(
                        "REPLICATOR_CONCURRENCY: expected a whole number from 1 to 1000 (the most containers that run at once), got {v:?}"
                    ));
                    DEFAULT_CONCURRENCY
                }
            },
        };
        // A link cut by work rather than time: an operator sees a chain continue on a small
        // estate (the continuation's Invoke permission, the alarms) without waiting out a
        // timeout, and every link's document stays small; the cut does not depend on how fast
        // the link ran.
        let link_sources = match env.get("REPLICATOR_LINK_SOURCES") {
            None => None,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    errors.push(format!(
                        "REPLICATOR_LINK_SOURCES: expected a whole number > 0 (the most sources one `all` link starts before it continues), got {v:?}"
                    ));
                    None
                }
            },
        };
        let role_arn = env.get("REPLICATOR_ROLE_ARN").map(str::to_string);
        if let Some(arn) = role_arn
            .as_deref()
            .filter(|a| crate::arn::role_account(a).is_none())
        {
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
                    Some(ConfigSource::Secret { id: id.to_string() })
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
                concurrency,
                config_ttl: ttl,
                link_sources,
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

#[cfg(test)]
mod tests;
