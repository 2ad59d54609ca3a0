//! Transform references of a destination (SPEC §3): `path.sed`, `path.json`, `secret:<id>`,
//! inline `{"sed": ...}` / `{"json": [...]}`, compiled at load; and the destination's
//! fingerprint for the version token.

use super::TextFetcher;
use crate::transform::{self, LoadVars, Transform};
use serde_json::Value;
use std::collections::BTreeMap;

/// The destination part of the version token: engine format, each transform's canonical text
/// (the contents of `secret:` references included), the destination's variable values, and the
/// configured KMS key (a key change writes a new version, SPEC §8). Empty for a destination
/// with neither transforms nor key.
pub(super) fn fingerprint(
    canonical: &[String],
    variables: &BTreeMap<String, String>,
    kms_key_id: Option<&str>,
) -> String {
    let mut s = String::new();
    if !canonical.is_empty() {
        s = format!("format={};", transform::FORMAT_VERSION);
        for c in canonical {
            s.push_str(&format!("{}:{};", c.len(), c));
        }
        for (k, v) in variables {
            s.push_str(&format!("{}={}:{};", k, v.len(), v));
        }
    }
    if let Some(k) = kms_key_id {
        s.push_str(&format!("kms={}:{};", k.len(), k));
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
