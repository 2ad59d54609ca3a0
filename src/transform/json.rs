//! JSON mappings: a list of `{"path": <RFC 9535 JSONPath>, <action>}` operations (SPEC §3.2).
//!
//! Each operation queries the document as the previous operations left it and changes every
//! selected node independently. Key order and number spelling survive (serde_json's
//! `preserve_order` and `arbitrary_precision`); an unchanged document is reported as unchanged
//! so the caller keeps the original bytes.

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use super::sed::Script;
use super::vars::{LoadVars, Template, Vars};
use super::{ApplyError, LoadError, Location, MAX_WORK_BYTES};

/// At most this many operations per mapping.
pub const MAX_OPS: usize = 1000;
/// At most this many bytes of mapping text.
pub const MAX_MAPPING_BYTES: usize = 256 * 1024;

/// A parsed JSON mapping.
#[derive(Debug)]
pub struct Mapping {
    ops: Vec<Op>,
}

#[derive(Debug)]
struct Op {
    path_text: String,
    path: JsonPath,
    action: Action,
    required: bool,
}

#[derive(Debug)]
enum Action {
    Set(SetValue),
    Delete,
    Replace { from: Template, to: Template },
    Sed(Script),
}

/// A `set` value: JSON, with `${NAME}` templates in its string leaves (not in keys).
#[derive(Debug)]
enum SetValue {
    /// No templates below: used as is.
    Plain(Value),
    Str(Template),
    Array(Vec<SetValue>),
    Object(Vec<(String, SetValue)>),
}

/// One step of a located path, owned so the document can be mutated after the query.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Name(String),
    Index(usize),
}

const KEYS: &str = "path, set, delete, replace, sed or required";

impl Mapping {
    /// Parses a mapping; `origin` names it in errors, which point at the operation's line.
    pub fn parse(origin: &str, text: &str, vars: &LoadVars) -> Result<Mapping, LoadError> {
        let syntax = |line: usize, col: usize, what: String| LoadError::Syntax {
            at: Location::new(origin, text, line, col),
            what,
        };
        if text.len() > MAX_MAPPING_BYTES {
            return Err(LoadError::Limit {
                at: Location::new(origin, text, 1, 1),
                what: "mapping size in bytes",
                limit: MAX_MAPPING_BYTES,
            });
        }
        let doc: Value = serde_json::from_str(text).map_err(|e| {
            let msg = e.to_string();
            let what = msg
                .rfind(" at line ")
                .map_or(msg.as_str(), |i| &msg[..i])
                .to_string();
            syntax(
                e.line().max(1),
                e.column().max(1),
                format!("invalid JSON: {what}"),
            )
        })?;
        let Value::Array(items) = doc else {
            return Err(syntax(
                1,
                1,
                "expected a JSON array of operations, like [{\"path\": \"$.host\", \"set\": \"x\"}]"
                    .to_string(),
            ));
        };
        let starts = element_starts(text);
        let mut ops = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let (line, col) = starts
                .get(i)
                .map_or((1, 1), |&offset| line_col(text, offset));
            if i == MAX_OPS {
                return Err(LoadError::Limit {
                    at: Location::new(origin, text, line, col),
                    what: "number of operations",
                    limit: MAX_OPS,
                });
            }
            let at = Location::new(origin, text, line, col);
            ops.push(parse_op(origin, i, item, &at, vars)?);
        }
        Ok(Mapping { ops })
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the mapping has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Canonical text: the operations as compact JSON, sed scripts in their canonical form.
    pub fn canonical(&self) -> String {
        let mut out = String::from("json\n");
        for op in &self.ops {
            let mut m = Map::new();
            m.insert("path".into(), Value::String(op.path_text.clone()));
            let (key, value) = match &op.action {
                Action::Set(v) => ("set", v.canonical()),
                Action::Delete => ("delete", Value::Bool(true)),
                Action::Replace { from, to } => {
                    let mut r = Map::new();
                    r.insert("from".into(), Value::String(from.canonical()));
                    r.insert("to".into(), Value::String(to.canonical()));
                    ("replace", Value::Object(r))
                }
                Action::Sed(s) => ("sed", Value::String(s.canonical())),
            };
            m.insert(key.into(), value);
            m.insert("required".into(), Value::Bool(op.required));
            out.push_str(&Value::Object(m).to_string());
            out.push('\n');
        }
        out
    }

    /// Applies the mapping. `Ok(None)` = no operation changed anything.
    pub fn apply(&self, input: &str, vars: &Vars) -> Result<Option<String>, ApplyError> {
        // The parse error is dropped on purpose: it would quote part of the value.
        let mut doc: Value = serde_json::from_str(input).map_err(|_| ApplyError::NotJson)?;
        let mut changed = false;
        // Growth so far, to stop runaway edits before they use unbounded memory.
        let mut size = input.len();
        for op in &self.ops {
            let mut paths: Vec<Vec<Step>> = op
                .path
                .query_located(&doc)
                .iter()
                .map(|n| {
                    n.location()
                        .iter()
                        .map(|e| match e.as_index() {
                            Some(i) => Step::Index(i),
                            None => Step::Name(e.as_name().unwrap_or_default().to_string()),
                        })
                        .collect()
                })
                .collect();
            if paths.is_empty() {
                if op.required {
                    return Err(ApplyError::Required {
                        path: op.path_text.clone(),
                    });
                }
                continue;
            }
            // Descendants before ancestors and higher indices first, so that no edit moves or
            // removes a node a later edit of the same operation still has to find.
            paths.sort();
            paths.dedup();
            paths.reverse();
            let set = match &op.action {
                Action::Set(v) => Some(v.render(vars)?),
                _ => None,
            };
            let set_len = set.as_ref().map_or(0, |v| v.to_string().len());
            for path in &paths {
                match (&op.action, &set) {
                    (Action::Delete, _) => changed |= delete(&mut doc, path),
                    (_, Some(value)) => {
                        if let Some(node) = node_mut(&mut doc, path)
                            && node != value
                        {
                            *node = value.clone();
                            changed = true;
                            size += set_len;
                        }
                    }
                    _ => {
                        let Some(Value::String(s)) = node_mut(&mut doc, path) else {
                            continue;
                        };
                        let new = match &op.action {
                            Action::Replace { from, to } => {
                                let from = from.render(vars)?;
                                if from.is_empty() || !s.contains(&from) {
                                    None
                                } else {
                                    Some(s.replace(&from, &to.render(vars)?))
                                }
                            }
                            Action::Sed(script) => script.apply(s, vars)?,
                            _ => None,
                        };
                        if let Some(new) = new.filter(|n| n != s) {
                            size = (size + new.len()).saturating_sub(s.len());
                            *s = new;
                            changed = true;
                        }
                    }
                }
                if size > MAX_WORK_BYTES {
                    return Err(ApplyError::TooLarge { bytes: size });
                }
            }
        }
        Ok(changed.then(|| doc.to_string()))
    }
}

fn parse_op(
    origin: &str,
    i: usize,
    item: Value,
    at: &Location,
    vars: &LoadVars,
) -> Result<Op, LoadError> {
    let err = |what: String| LoadError::Syntax {
        at: at.clone(),
        what: format!("operation {i}: {what}"),
    };
    let var_err = |e: super::TemplateError| LoadError::Variable {
        at: at.clone(),
        kind: e.kind,
    };
    let Value::Object(fields) = item else {
        return Err(err(
            "expected an object like {\"path\": \"$.host\", \"set\": \"x\"}".to_string(),
        ));
    };
    let mut path = None;
    let mut required = false;
    let mut actions: Vec<(&'static str, Action)> = Vec::new();
    for (key, value) in fields {
        match key.as_str() {
            "path" => {
                let Value::String(p) = value else {
                    return Err(err("\"path\" must be a string".to_string()));
                };
                let parsed = JsonPath::parse(&p).map_err(|e| {
                    // The parser's message spans lines; errors here are one line each.
                    let detail = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
                    err(format!(
                        "invalid JSONPath {p:?}: {detail}; expected an RFC 9535 query such as \"$.host\" or \"$.items[*].url\""
                    ))
                })?;
                path = Some((p, parsed));
            }
            "required" => {
                let Value::Bool(b) = value else {
                    return Err(err("\"required\" must be true or false".to_string()));
                };
                required = b;
            }
            "set" => actions.push((
                "set",
                Action::Set(SetValue::parse(&value, vars).map_err(var_err)?),
            )),
            "delete" => {
                if value != Value::Bool(true) {
                    return Err(err("\"delete\" must be true".to_string()));
                }
                actions.push(("delete", Action::Delete));
            }
            "replace" => {
                let shape = || {
                    err(
                        "\"replace\" must be {\"from\": \"non-empty text\", \"to\": \"text\"}"
                            .to_string(),
                    )
                };
                let Value::Object(r) = value else {
                    return Err(shape());
                };
                if r.len() != 2 {
                    return Err(shape());
                }
                let (Some(Value::String(from)), Some(Value::String(to))) =
                    (r.get("from"), r.get("to"))
                else {
                    return Err(shape());
                };
                if from.is_empty() {
                    return Err(shape());
                }
                let from = Template::parse(from, vars)
                    .map_err(var_err)?
                    .resolve_fixed(vars);
                let to = Template::parse(to, vars)
                    .map_err(var_err)?
                    .resolve_fixed(vars);
                actions.push(("replace", Action::Replace { from, to }));
            }
            "sed" => {
                let Value::String(script) = value else {
                    return Err(err(
                        "\"sed\" must be a string holding a sed script".to_string()
                    ));
                };
                let script = Script::parse(&format!("{origin}[{i}].sed"), &script, vars)?;
                actions.push(("sed", Action::Sed(script)));
            }
            other => return Err(err(format!("unknown key {other:?}; expected {KEYS}"))),
        }
    }
    let Some((path_text, path)) = path else {
        return Err(err("missing \"path\"".to_string()));
    };
    if actions.len() != 1 {
        let found: Vec<&str> = actions.iter().map(|(k, _)| *k).collect();
        return Err(err(format!(
            "expected exactly one of set, delete, replace or sed; found {}",
            if found.is_empty() {
                "none".to_string()
            } else {
                found.join(" and ")
            }
        )));
    }
    let Some((_, action)) = actions.pop() else {
        return Err(err("missing action".to_string()));
    };
    if matches!(action, Action::Delete) && path_text.trim() == "$" {
        return Err(err("cannot delete the whole document (\"$\")".to_string()));
    }
    Ok(Op {
        path_text,
        path,
        action,
        required,
    })
}

impl SetValue {
    fn parse(value: &Value, vars: &LoadVars) -> Result<SetValue, super::TemplateError> {
        let parsed = match value {
            Value::String(s) => {
                let t = Template::parse(s, vars)?.resolve_fixed(vars);
                match t.is_literal() {
                    true => {
                        SetValue::Plain(Value::String(t.render(&Vars::new()).unwrap_or_default()))
                    }
                    false => SetValue::Str(t),
                }
            }
            Value::Array(items) => SetValue::Array(
                items
                    .iter()
                    .map(|v| SetValue::parse(v, vars))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => SetValue::Object(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), SetValue::parse(v, vars)?)))
                    .collect::<Result<_, _>>()?,
            ),
            other => SetValue::Plain(other.clone()),
        };
        Ok(parsed.fold())
    }

    /// A container whose leaves are all plain becomes one plain value.
    fn fold(self) -> SetValue {
        match self {
            SetValue::Array(items) if items.iter().all(|v| matches!(v, SetValue::Plain(_))) => {
                SetValue::Plain(Value::Array(
                    items
                        .into_iter()
                        .filter_map(|v| match v {
                            SetValue::Plain(v) => Some(v),
                            _ => None,
                        })
                        .collect(),
                ))
            }
            SetValue::Object(items)
                if items.iter().all(|(_, v)| matches!(v, SetValue::Plain(_))) =>
            {
                SetValue::Plain(Value::Object(
                    items
                        .into_iter()
                        .filter_map(|(k, v)| match v {
                            SetValue::Plain(v) => Some((k, v)),
                            _ => None,
                        })
                        .collect(),
                ))
            }
            other => other,
        }
    }

    fn render(&self, vars: &Vars) -> Result<Value, ApplyError> {
        Ok(match self {
            SetValue::Plain(v) => v.clone(),
            SetValue::Str(t) => Value::String(t.render(vars)?),
            SetValue::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| v.render(vars))
                    .collect::<Result<_, _>>()?,
            ),
            SetValue::Object(items) => Value::Object(
                items
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.render(vars)?)))
                    .collect::<Result<_, ApplyError>>()?,
            ),
        })
    }

    /// The value with string leaves in template form (`$${` for a literal `${`).
    fn canonical(&self) -> Value {
        match self {
            SetValue::Plain(v) => escape_templates(v),
            SetValue::Str(t) => Value::String(t.canonical()),
            SetValue::Array(items) => Value::Array(items.iter().map(SetValue::canonical).collect()),
            SetValue::Object(items) => Value::Object(
                items
                    .iter()
                    .map(|(k, v)| (k.clone(), v.canonical()))
                    .collect(),
            ),
        }
    }
}

/// Literal strings in canonical form: a literal `${` is written `$${`, as the user would.
fn escape_templates(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("${", "$${")),
        Value::Array(items) => Value::Array(items.iter().map(escape_templates).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), escape_templates(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn node_mut<'v>(doc: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    path.iter().try_fold(doc, |node, step| match (node, step) {
        (Value::Object(m), Step::Name(k)) => m.get_mut(k),
        (Value::Array(a), Step::Index(i)) => a.get_mut(*i),
        _ => None,
    })
}

/// Removes the node at `path`; the root cannot be removed (rejected at load when written `$`).
fn delete(doc: &mut Value, path: &[Step]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    match (node_mut(doc, parent), last) {
        // `shift_remove` keeps the order of the remaining keys.
        (Some(Value::Object(m)), Step::Name(k)) => m.shift_remove(k).is_some(),
        (Some(Value::Array(a)), Step::Index(i)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

/// Byte offsets where each element of the top-level array starts (input is valid JSON).
fn element_starts(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut depth, mut in_str, mut escaped, mut expect) = (0usize, false, false, false);
    for (i, c) in text.bytes().enumerate() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        }
        if depth == 1 && expect && c != b']' {
            out.push(i);
            expect = false;
        }
        match c {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth == 1 {
                    expect = true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => expect = true,
            _ => {}
        }
    }
    out
}

/// 1-based line and char column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests;
