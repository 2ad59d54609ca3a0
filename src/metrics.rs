//! CloudWatch metrics as Embedded Metric Format log lines (no API calls), namespace
//! `SecretReplicator`. Dimensions are low-cardinality only: never a secret name.

use crate::outcome::{Report, Status};
use serde_json::json;
use std::collections::BTreeMap;

/// The metric namespace.
pub const NAMESPACE: &str = "SecretReplicator";

/// Writes EMF lines to stdout (where Lambda collects them), or nothing when disabled (CLI).
#[derive(Debug, Clone, Copy)]
pub struct Metrics {
    pub enabled: bool,
}

impl Metrics {
    /// One line per (status, error kind, destination region) with its count, and one with the
    /// summed duration per status.
    pub fn emit(&self, report: &Report) {
        if !self.enabled {
            return;
        }
        let mut counts: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
        for o in &report.results {
            let status = status_name(o.status);
            let kind = o.error.as_ref().map(|e| e.kind.as_str()).unwrap_or("None");
            let region = o
                .destination
                .as_ref()
                .map(|d| d.region.as_str())
                .unwrap_or("None");
            *counts.entry((status, kind, region)).or_default() += 1;
        }
        if let Some(e) = &report.error {
            *counts
                .entry(("failed", e.kind.as_str(), "None"))
                .or_default() += 1;
        }
        for ((status, kind, region), n) in counts {
            self.line(
                &[
                    ("Status", status),
                    ("ErrorKind", kind),
                    ("DestinationRegion", region),
                ],
                "Replications",
                n as f64,
                "Count",
            );
        }
    }

    /// A configuration reload kept the last good configuration.
    pub fn config_reload_failed(&self) {
        if self.enabled {
            self.line(&[], "ConfigReloadFailures", 1.0, "Count");
        }
    }

    fn line(&self, dims: &[(&str, &str)], metric: &str, value: f64, unit: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut doc = json!({
            "_aws": {
                "Timestamp": now,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [dims.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                    "Metrics": [{"Name": metric, "Unit": unit}]
                }]
            },
            metric: value
        });
        for (k, v) in dims {
            doc[*k] = json!(v);
        }
        println!("{doc}");
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Replicated => "replicated",
        Status::Unchanged => "unchanged",
        Status::Skipped => "skipped",
        Status::Deleted => "deleted",
        Status::Restored => "restored",
        Status::Planned => "planned",
        Status::Failed => "failed",
    }
}
