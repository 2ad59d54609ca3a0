//! The README's CloudWatch Logs Insights queries, run over the lines a real run prints.
//!
//! A small evaluator of the subset the README uses
//! (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/CWL_QuerySyntax.html):
//! `fields a, b`, `filter` with `=`, `!=`, `in [..]`, `ispresent(x)`, `not`, `and`, `or`,
//! `stats count() | pct(x, n) by a, b`, and `sort` (ignored: order does not change what matches).
//! `@timestamp` is the line's `timestamp`. A query that matches nothing, or that names a field no
//! matched line has, fails the test: the README would be showing a query that finds nothing.

mod common;

use common::real_run::real_run_at;
use serde_json::{Map, Value};

/// The README's ```logs-insights blocks.
fn readme_queries() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim()) {
            (None, "```logs-insights") => current = Some(String::new()),
            (Some(q), "```") => {
                out.push(std::mem::take(q));
                current = None;
            }
            (Some(q), l) => {
                q.push_str(l);
                q.push('\n');
            }
            _ => {}
        }
    }
    out
}

fn field<'a>(line: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let name = if name == "@timestamp" {
        "timestamp"
    } else {
        name
    };
    line.get(name).filter(|v| !v.is_null())
}

fn literal(s: &str) -> Value {
    let s = s.trim();
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

/// One condition of a `filter`: `a or b`, `a and b`, `not a`, `ispresent(x)`, `x = v`,
/// `x != v`, `x in [..]`.
fn holds(cond: &str, line: &Map<String, Value>) -> bool {
    let cond = cond.trim();
    if let Some((a, b)) = cond.split_once(" or ") {
        return holds(a, line) || holds(b, line);
    }
    if let Some((a, b)) = cond.split_once(" and ") {
        return holds(a, line) && holds(b, line);
    }
    if let Some(rest) = cond.strip_prefix("not ") {
        return !holds(rest, line);
    }
    if let Some(inner) = cond
        .strip_prefix("ispresent(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return field(line, inner.trim()).is_some();
    }
    if let Some((name, list)) = cond.split_once(" in ") {
        let Value::Array(items) = literal(list) else {
            panic!("not a list: {list}");
        };
        return field(line, name.trim()).is_some_and(|v| items.contains(v));
    }
    if let Some((name, value)) = cond.split_once("!=") {
        return field(line, name.trim()) != Some(&literal(value));
    }
    if let Some((name, value)) = cond.split_once('=') {
        return field(line, name.trim()) == Some(&literal(value));
    }
    panic!("the evaluator does not know {cond:?}");
}

/// Runs `query` over `lines`; the rows it yields (matched lines, or stats groups).
fn run(query: &str, lines: &[Map<String, Value>]) -> Vec<Map<String, Value>> {
    let mut rows: Vec<Map<String, Value>> = lines.to_vec();
    for command in query.split('|').map(str::trim).filter(|c| !c.is_empty()) {
        let (verb, rest) = command
            .split_once(char::is_whitespace)
            .unwrap_or((command, ""));
        match verb {
            "filter" => rows.retain(|l| holds(rest, l)),
            "fields" => {
                for name in rest.split(',').map(str::trim) {
                    assert!(
                        rows.iter().any(|l| field(l, name).is_some()),
                        "{query}: no matched line has {name}"
                    );
                }
            }
            "sort" => {}
            "stats" => {
                let (agg, by) = rest.split_once(" by ").unwrap_or((rest, ""));
                let keys: Vec<&str> = by
                    .split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .collect();
                for k in &keys {
                    assert!(
                        rows.iter().any(|l| field(l, k).is_some()),
                        "{query}: no matched line has {k}"
                    );
                }
                if let Some(args) = agg
                    .trim()
                    .strip_prefix("pct(")
                    .and_then(|a| a.strip_suffix(')'))
                {
                    let (name, _) = args.split_once(',').expect("pct(field, n)");
                    assert!(
                        rows.iter()
                            .any(|l| field(l, name.trim()).is_some_and(Value::is_number)),
                        "{query}: no numeric {name}"
                    );
                } else {
                    assert_eq!(agg.trim(), "count()", "{query}");
                }
                let mut groups: Vec<Map<String, Value>> = Vec::new();
                for l in &rows {
                    let mut g = Map::new();
                    for k in &keys {
                        g.insert((*k).into(), field(l, k).cloned().unwrap_or(Value::Null));
                    }
                    if !groups.contains(&g) {
                        groups.push(g);
                    }
                }
                rows = groups;
            }
            other => panic!("the evaluator does not know {other:?} in {query}"),
        }
    }
    rows
}

#[test]
fn the_evaluator_filters_as_logs_insights_does() {
    let lines: Vec<Map<String, Value>> = [
        r#"{"status":"failed","level":"WARN","error_kind":"AccessDenied"}"#,
        r#"{"status":"replicated","level":"INFO","lag_ms":12}"#,
        r#"{"level":"WARN","_aws":{}}"#,
    ]
    .iter()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    assert_eq!(run("filter status = \"failed\"", &lines).len(), 1);
    assert_eq!(run("filter status = \"Failed\"", &lines).len(), 0);
    assert_eq!(
        run("filter level in [\"WARN\"] and not ispresent(_aws)", &lines).len(),
        1
    );
    assert_eq!(
        run("filter ispresent(status) | stats count() by status", &lines).len(),
        2
    );
    assert_eq!(run("filter status != \"failed\"", &lines).len(), 2);
}

#[test]
fn every_readme_query_finds_lines_of_a_real_run() {
    let queries = readme_queries();
    assert!(queries.len() >= 4, "{queries:?}");
    let lines: Vec<Map<String, Value>> = real_run_at("INFO")
        .iter()
        .filter_map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        })
        .collect();
    // The outcome lines name the values the result document uses, at top level.
    assert!(
        lines
            .iter()
            .any(|l| l.get("status") == Some(&Value::from("failed")))
    );
    assert!(lines.iter().all(|l| !l.contains_key("fields")));
    for q in &queries {
        let rows = run(q, &lines);
        assert!(!rows.is_empty(), "the README query matches nothing:\n{q}");
    }
    // No value reaches a log line.
    for l in &lines {
        let text = Value::Object(l.clone()).to_string();
        assert!(!text.contains("postgres://"), "{text}");
    }
}
