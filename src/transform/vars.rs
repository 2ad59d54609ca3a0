//! `${NAME}` variables: what is known at load, what is supplied at apply, and templates.
//!
//! The template language is deliberately tiny: `${NAME}` is a reference, `$${` is a literal
//! `${`, and any other `$` is literal text. Names are `[A-Za-z_][A-Za-z0-9_]*`. Undefined names
//! are found when a template is parsed (config load), never when it is rendered.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::ApplyError;

/// Variables every transform and name template may use; the caller decides which of them are
/// known for a given context (e.g. `DEST_SECRET_NAME` is not known inside a name template).
pub const BUILTIN_VARS: &[&str] = &[
    "SECRET_NAME",
    "DEST_SECRET_NAME",
    "SOURCE_REGION",
    "DEST_REGION",
    "SOURCE_ACCOUNT",
    "DEST_ACCOUNT",
];

/// Variable values for one (source, destination) pair at apply time.
///
/// Values are names, regions and account ids, never secret values, so `Debug` may show them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    values: BTreeMap<String, String>,
}

impl Vars {
    /// An empty set of values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or replaces) one value.
    pub fn set(&mut self, k: impl Into<String>, v: impl Into<String>) {
        self.values.insert(k.into(), v.into());
    }

    /// The value of `k`, if set.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.values.get(k).map(String::as_str)
    }

    /// All values, ordered by name (deterministic, for fingerprints).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Vars {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut vars = Vars::new();
        for (k, v) in iter {
            vars.set(k, v);
        }
        vars
    }
}

/// What is known when the config loads: which names exist at all, and the values of those
/// fixed at load (destination `variables`, regions, ...).
///
/// A pattern that uses only fixed names is compiled once at load; one that uses any other known
/// name is compiled on first use per distinct value.
#[derive(Debug, Clone, Default)]
pub struct LoadVars {
    known: BTreeSet<String>,
    fixed: Vars,
}

impl LoadVars {
    /// `known` lists the names that may be referenced; the names of `fixed` are known too.
    pub fn new(known: impl IntoIterator<Item = String>, fixed: Vars) -> Self {
        let mut known: BTreeSet<String> = known.into_iter().collect();
        known.extend(fixed.values.keys().cloned());
        Self { known, fixed }
    }

    /// [`BUILTIN_VARS`] plus the names of `fixed` (the usual set for a destination's transforms).
    pub fn with_builtins(fixed: Vars) -> Self {
        Self::new(BUILTIN_VARS.iter().map(|s| (*s).to_string()), fixed)
    }

    /// Whether `name` may be referenced.
    pub fn is_known(&self, name: &str) -> bool {
        self.known.contains(name)
    }

    /// The load-time value of `name`, if it is fixed.
    pub fn fixed(&self, name: &str) -> Option<&str> {
        self.fixed.get(name)
    }

    /// Known names, comma-separated, for error messages.
    pub(crate) fn known_list(&self) -> String {
        let names: Vec<&str> = self.known.iter().map(String::as_str).collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    }
}

/// What a `$` at some position starts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Dollar {
    /// `${NAME}`: the name and the number of chars consumed.
    Var(String, usize),
    /// `$${`: a literal `${`, 3 chars consumed.
    Escaped,
    /// A `$` that is just a `$`.
    Plain,
}

/// Why a `${...}` reference is malformed or unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateErrorKind {
    /// `${` with no closing `}` on the same line.
    #[error(
        "unterminated variable reference; expected `}}` after the name (write `$${{` for a literal `${{`)"
    )]
    Unterminated,
    /// `${}` or a name with characters outside `[A-Za-z0-9_]`.
    #[error(
        "invalid variable name {0:?}; expected letters, digits and `_`, not starting with a digit"
    )]
    BadName(String),
    /// A well-formed name that is not defined for this context.
    #[error("undefined variable ${{{name}}}; known: {known}")]
    Undefined {
        /// The name used.
        name: String,
        /// The names that are defined, comma-separated.
        known: String,
    },
}

/// A malformed or undefined reference in a template; `col` is 1-based, in chars.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {col}: {kind}")]
pub struct TemplateError {
    /// 1-based char column of the `$` that starts the reference.
    pub col: usize,
    /// What is wrong.
    pub kind: TemplateErrorKind,
}

/// Reads what the `$` at `chars[i]` starts. `chars[i]` must be `$`.
pub(crate) fn scan_dollar(chars: &[char], i: usize) -> Result<Dollar, TemplateErrorKind> {
    match (chars.get(i + 1), chars.get(i + 2)) {
        (Some('$'), Some('{')) => Ok(Dollar::Escaped),
        (Some('{'), _) => {
            let start = i + 2;
            let Some(len) = chars[start..].iter().position(|&c| c == '}') else {
                return Err(TemplateErrorKind::Unterminated);
            };
            let name: String = chars[start..start + len].iter().collect();
            if !valid_name(&name) {
                return Err(TemplateErrorKind::BadName(name));
            }
            Ok(Dollar::Var(name, len + 3))
        }
        _ => Ok(Dollar::Plain),
    }
}

/// Like [`scan_dollar`], and also checks that a referenced name is known.
pub(crate) fn scan_known(
    chars: &[char],
    i: usize,
    vars: &LoadVars,
) -> Result<Dollar, TemplateErrorKind> {
    let d = scan_dollar(chars, i)?;
    if let Dollar::Var(name, _) = &d
        && !vars.is_known(name)
    {
        return Err(TemplateErrorKind::Undefined {
            name: name.clone(),
            known: vars.known_list(),
        });
    }
    Ok(d)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Lit(String),
    Var(String),
}

/// A parsed `${NAME}` template (destination names, JSON `set`/`replace` strings).
///
/// Parse once at load ([`Template::parse`]); render per secret ([`Template::render`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`, rejecting malformed references and names `vars` does not know.
    pub fn parse(text: &str, vars: &LoadVars) -> Result<Template, TemplateError> {
        let chars: Vec<char> = text.chars().collect();
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] != '$' {
                lit.push(chars[i]);
                i += 1;
                continue;
            }
            match scan_known(&chars, i, vars).map_err(|kind| TemplateError { col: i + 1, kind })? {
                Dollar::Var(name, len) => {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Var(name));
                    i += len;
                }
                Dollar::Escaped => {
                    lit.push_str("${");
                    i += 3;
                }
                Dollar::Plain => {
                    lit.push('$');
                    i += 1;
                }
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    /// Renders with `vars`; a name known at load but missing now is an error (a caller bug).
    pub fn render(&self, vars: &Vars) -> Result<String, ApplyError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var(name) => out.push_str(lookup(vars, name)?),
            }
        }
        Ok(out)
    }

    /// Whether the template has no variable references (renders to the same text always).
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// Replaces references to names fixed at load by their values.
    pub(crate) fn resolve_fixed(&self, vars: &LoadVars) -> Template {
        let mut parts: Vec<Part> = Vec::new();
        for part in &self.parts {
            let part = match part {
                Part::Var(n) => match vars.fixed(n) {
                    Some(v) => Part::Lit(v.to_string()),
                    None => part.clone(),
                },
                Part::Lit(_) => part.clone(),
            };
            match (parts.last_mut(), part) {
                (Some(Part::Lit(prev)), Part::Lit(s)) => prev.push_str(&s),
                (_, part) => parts.push(part),
            }
        }
        Template { parts }
    }

    /// The template as text again, with `$${` for literal `${` (so it round-trips).
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(&s.replace("${", "$${")),
                Part::Var(n) => {
                    out.push_str("${");
                    out.push_str(n);
                    out.push('}');
                }
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// The apply-time value of `name`.
pub(crate) fn lookup<'v>(vars: &'v Vars, name: &str) -> Result<&'v str, ApplyError> {
    vars.get(name).ok_or_else(|| ApplyError::MissingVariable {
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load() -> LoadVars {
        LoadVars::with_builtins([("ENV", "prod")].into_iter().collect())
    }

    #[test]
    fn template_expands_variables_and_keeps_other_dollars() {
        let t = Template::parse("db-${ENV}.${DEST_REGION}.x$y$$z$${a}", &load()).unwrap();
        let vars: Vars = [("ENV", "prod"), ("DEST_REGION", "us-west-2")]
            .into_iter()
            .collect();
        assert_eq!(t.render(&vars).unwrap(), "db-prod.us-west-2.x$y$$z${a}");
        assert_eq!(t.canonical(), "db-${ENV}.${DEST_REGION}.x$y$$z$${a}");
    }

    #[test]
    fn template_errors_name_the_column_and_problem() {
        let cases = [
            (
                "ab${NOPE}",
                "column 3: undefined variable ${NOPE}; known: DEST_ACCOUNT, DEST_REGION, DEST_SECRET_NAME, ENV, SECRET_NAME, SOURCE_ACCOUNT, SOURCE_REGION",
            ),
            (
                "${ENV",
                "column 1: unterminated variable reference; expected `}` after the name (write `$${` for a literal `${`)",
            ),
            (
                "x${}",
                "column 2: invalid variable name \"\"; expected letters, digits and `_`, not starting with a digit",
            ),
            (
                "${1A}",
                "column 1: invalid variable name \"1A\"; expected letters, digits and `_`, not starting with a digit",
            ),
        ];
        for (text, want) in cases {
            let err = Template::parse(text, &load()).unwrap_err();
            assert_eq!(err.to_string(), want, "for {text:?}");
        }
    }

    #[test]
    fn resolve_fixed_substitutes_only_fixed_names() {
        let t = Template::parse("${ENV}/${SECRET_NAME}", &load())
            .unwrap()
            .resolve_fixed(&load());
        assert_eq!(t.canonical(), "prod/${SECRET_NAME}");
        assert!(!t.is_literal());
    }

    #[test]
    fn render_reports_a_missing_variable_by_name() {
        let t = Template::parse("${SECRET_NAME}", &load()).unwrap();
        let err = t.render(&Vars::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "variable ${SECRET_NAME} has no value at apply time"
        );
    }
}
