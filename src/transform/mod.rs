//! The transform engine: sed scripts and JSON mappings that rewrite a secret value.
//!
//! Everything here is pure: transforms are parsed and validated when the config loads
//! ([`Transform::sed`], [`Transform::json`]) and applied per secret ([`Transform::apply`]).
//! Errors never carry the value being transformed; load errors quote the script line instead
//! (scripts are config, not secrets).

pub mod json;
pub mod sed;
pub mod vars;

use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

pub use vars::{BUILTIN_VARS, LoadVars, Template, TemplateError, Vars};

/// Bumped whenever the engine's output for some input could change (part of version tokens).
pub const FORMAT_VERSION: u32 = 1;

/// Largest value Secrets Manager stores; a larger transformed value is [`ApplyError::TooLarge`].
pub const MAX_VALUE_BYTES: usize = 65_536;

/// Largest intermediate value a transform may build. A command like `s/x*/&&&&/g` repeated can
/// grow a value exponentially; stopping at 16 × the final limit bounds memory and time.
pub const MAX_WORK_BYTES: usize = 16 * MAX_VALUE_BYTES;

/// Where in a script or mapping a load error is: origin, 1-based line and char column, and the
/// text of that line (quoted in messages; shortened when long).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// File path, `inline`, `secret:<id>`, or `<origin>[<op>].sed` for a script in a mapping.
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in chars.
    pub col: usize,
    /// The line's text (trimmed, at most about 120 chars around the column).
    pub text: String,
}

impl Location {
    /// A location in `source`, whose line `line` (1-based) is quoted.
    pub(crate) fn new(origin: &str, source: &str, line: usize, col: usize) -> Self {
        let text = source.lines().nth(line.saturating_sub(1)).unwrap_or("");
        Location {
            origin: origin.to_string(),
            line,
            col,
            text: excerpt(text, col),
        }
    }
}

/// The line around `col`, trimmed and cut to a readable length.
fn excerpt(line: &str, col: usize) -> String {
    const WIDTH: usize = 120;
    let line = line.trim_end_matches('\r');
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= WIDTH {
        return line.trim().to_string();
    }
    let start = col.saturating_sub(WIDTH / 3).min(chars.len() - WIDTH);
    let mut s = String::new();
    if start > 0 {
        s.push('…');
    }
    s.extend(&chars[start..start + WIDTH]);
    if start + WIDTH < chars.len() {
        s.push('…');
    }
    s
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.origin, self.line, self.col)
    }
}

/// A script or mapping that cannot be loaded. Display:
/// `<origin>:<line>:<col>: <what is wrong / expected> in `<line text>``.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The text does not follow the grammar (sed syntax, mapping shape).
    #[error("{at}: {what} in `{}`", .at.text)]
    Syntax {
        /// Where.
        at: Location,
        /// What was expected or is wrong.
        what: String,
    },
    /// A malformed or undefined `${NAME}`.
    #[error("{at}: {kind} in `{}`", .at.text)]
    Variable {
        /// Where (the `$`).
        at: Location,
        /// The problem.
        kind: vars::TemplateErrorKind,
    },
    /// The regex does not compile (syntax, or over the size limit).
    #[error("{at}: invalid regex: {reason} in `{}`", .at.text)]
    Regex {
        /// Where (the regex, or the offending char when the regex crate says).
        at: Location,
        /// The regex crate's explanation, on one line.
        reason: String,
    },
    /// The script or mapping exceeds a documented limit.
    #[error("{at}: {what} exceeds the limit of {limit} in `{}`", .at.text)]
    Limit {
        /// Where.
        at: Location,
        /// What is counted.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
}

impl LoadError {
    /// Where the error is.
    pub fn location(&self) -> &Location {
        match self {
            LoadError::Syntax { at, .. }
            | LoadError::Variable { at, .. }
            | LoadError::Regex { at, .. }
            | LoadError::Limit { at, .. } => at,
        }
    }
}

/// A transform that cannot be applied to a value. Messages never contain the value or any part
/// of it; paths and variable names are config and may appear.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// A JSON mapping got a value that is not JSON.
    #[error("the value is not valid JSON, so a JSON mapping cannot apply")]
    NotJson,
    /// The output (or an intermediate result) is over the limit.
    #[error("the transformed value is {bytes} bytes or more; the limit is {MAX_VALUE_BYTES}")]
    TooLarge {
        /// Size reached (a lower bound when work stopped early).
        bytes: usize,
    },
    /// A `"required": true` path selected nothing.
    #[error("required path {path} selected nothing")]
    Required {
        /// The JSONPath.
        path: String,
    },
    /// A variable known at load has no value now (a caller bug, reported rather than guessed).
    #[error("variable ${{{name}}} has no value at apply time")]
    MissingVariable {
        /// The name.
        name: String,
    },
    /// A pattern with per-secret variables failed to compile after substitution.
    #[error("{at}: the regex does not compile once its variables are substituted: {reason}")]
    Regex {
        /// `origin:line:col` of the command.
        at: String,
        /// Why (no pattern text: it holds variable values).
        reason: &'static str,
    },
}

/// One transform: a sed script or a JSON mapping.
#[derive(Debug)]
pub enum Transform {
    /// A sed script (SPEC §3.1).
    Sed(sed::Script),
    /// A JSON mapping (SPEC §3.2).
    Json(json::Mapping),
}

impl Transform {
    /// Parses a sed script; `origin` (file path, `inline`, `secret:<id>`) names it in errors.
    pub fn sed(origin: &str, script: &str, vars: &LoadVars) -> Result<Self, LoadError> {
        sed::Script::parse(origin, script, vars).map(Transform::Sed)
    }

    /// Parses a JSON mapping; `origin` names it in errors.
    pub fn json(origin: &str, mapping: &str, vars: &LoadVars) -> Result<Self, LoadError> {
        json::Mapping::parse(origin, mapping, vars).map(Transform::Json)
    }

    /// Canonical text of the transform, for the chain fingerprint. Comments and layout do not
    /// appear; everything that steers behaviour does (variable *names* of per-secret variables,
    /// the values of variables fixed at load). The caller hashes the apply-time variable values
    /// alongside, as SPEC §8 requires.
    pub fn canonical(&self) -> String {
        match self {
            Transform::Sed(s) => s.canonical(),
            Transform::Json(m) => m.canonical(),
        }
    }

    /// Applies the transform. `Ok(None)` means the output would be byte-identical to `input`.
    pub fn apply(&self, input: &str, vars: &Vars) -> Result<Option<String>, ApplyError> {
        match self {
            Transform::Sed(s) => s.apply(input, vars),
            Transform::Json(m) => m.apply(input, vars),
        }
    }
}

/// An ordered list of transforms; each gets the previous one's output.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    items: Vec<Arc<Transform>>,
}

impl Chain {
    /// A chain of `items`, applied in order.
    pub fn new(items: Vec<Arc<Transform>>) -> Self {
        Chain { items }
    }

    /// Whether the chain has no transforms (the value is copied as is).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Number of transforms.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Applies every transform in order. `Ok(None)` = output byte-identical to `input`.
    /// A changed output over [`MAX_VALUE_BYTES`] is [`ApplyError::TooLarge`].
    pub fn apply(&self, input: &str, vars: &Vars) -> Result<Option<String>, ApplyError> {
        // Every intermediate value is wiped when the next step replaces it (or on an error).
        let mut current: Option<Zeroizing<String>> = None;
        for t in &self.items {
            let step = t.apply(current.as_deref().map_or(input, String::as_str), vars)?;
            if let Some(out) = step {
                current = Some(Zeroizing::new(out));
            }
        }
        match current {
            Some(out) if out.as_str() == input => Ok(None),
            Some(out) if out.len() > MAX_VALUE_BYTES => {
                Err(ApplyError::TooLarge { bytes: out.len() })
            }
            // Handed on by moving the buffer out: the caller wraps it as a secret.
            Some(mut out) => Ok(Some(std::mem::take(&mut *out))),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
