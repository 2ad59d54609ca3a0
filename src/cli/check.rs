//! `secret-replicator check [--config FILE]` (SPEC §9): proves, from an operator's shell, that
//! every configured destination takes the writes the function will make there, before the first
//! event does: the role (trust and external id), the configured key (key policy, IAM), and
//! CreateSecret / PutSecretValue / DeleteSecret with the marker tag and that key (IAM conditions).
//!
//! Each destination gets its own probe secret, `secret-replicator/check/<run>`, whose value is a
//! fixed text that is no secret, whose marker tag says it is a check's probe (never a source's
//! copy: the function's markers are `ACCOUNT:REGION:NAME`), and which is scheduled for deletion
//! with the shortest recovery window AWS allows, 7 days
//! (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DeleteSecret.html,
//! RecoveryWindowInDays "minimum value of 7 days"): the destination role refuses a deletion
//! without recovery. The run id (time and a random part) makes a second run's names new, so a
//! probe still scheduled for deletion never collides with the next run's (creating a name
//! scheduled for deletion is InvalidRequestException, SPEC §12).

use crate::config::{Config, Role};
use crate::outcome::Error;
use crate::replicate::MARKER_TAG;
use crate::replicate::decide::is_managed_key;
use crate::secret::SecretValue;
use crate::store::{ManageSecrets, NewSecret, ResolveKeys, Stores, WriteSecrets};
use std::process::ExitCode;

/// Where the probes are created (SPEC §9).
pub const PROBE_PREFIX: &str = "secret-replicator/check/";
/// The probe's value: fixed, and no secret.
pub const PROBE_TEXT: &str = "secret-replicator check probe: not a secret";
/// The second version's value (the PutSecretValue step).
pub const PROBE_TEXT_PUT: &str = "secret-replicator check probe, written again: not a secret";
/// The recovery window of the probe's deletion: the shortest AWS allows.
pub const PROBE_RECOVERY_DAYS: i64 = 7;

/// One destination to check: the place (region, role, key) and the config labels that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub labels: Vec<String>,
    pub region: String,
    pub role: Option<Role>,
    pub kms_key_id: Option<String>,
}

/// Every distinct (region, role, key) the configuration writes to, in config order. A
/// destination without a region is in `default_region` (the function's own).
pub fn targets(config: &Config, default_region: &str) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for d in config.rules.iter().flat_map(|r| &r.destinations) {
        let region = d
            .region
            .clone()
            .unwrap_or_else(|| default_region.to_string());
        let found = out
            .iter_mut()
            .find(|t| t.region == region && t.role == d.role && t.kms_key_id == d.kms_key_id);
        match found {
            Some(t) => t.labels.push(d.label.clone()),
            None => out.push(Target {
                labels: vec![d.label.clone()],
                region,
                role: d.role.clone(),
                kms_key_id: d.kms_key_id.clone(),
            }),
        }
    }
    out
}

/// A failed step: which, and what AWS said.
#[derive(Debug)]
pub struct StepFailure {
    pub step: &'static str,
    pub error: Error,
}

impl StepFailure {
    /// AWS's error code, else the kind of the failure.
    pub fn code(&self) -> String {
        self.error
            .aws()
            .map(|a| a.code.clone())
            .unwrap_or_else(|| self.error.kind().as_str().to_string())
    }

    /// What AWS said (its messages name resources, never values), else the error.
    pub fn message(&self) -> String {
        self.error
            .aws()
            .map(|a| a.message.clone())
            .unwrap_or_else(|| self.error.to_string())
    }
}

/// The probe's name for a run and a destination index.
pub fn probe_name(run: &str, index: usize) -> String {
    format!("{PROBE_PREFIX}{run}-{index}")
}

/// The marker tag value of a check's probe.
pub fn probe_marker(run: &str) -> String {
    format!("check:{run}")
}

/// A run id: UTC seconds since the epoch and a random part (from a fresh token).
pub fn run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let random = crate::token::fresh("secret-replicator check");
    format!("{secs}-{}", &random[..8])
}

/// Runs every step against one destination; the probe created is scheduled for deletion even
/// when the write after it fails.
pub async fn check_one<S: Stores>(
    stores: &S,
    target: &Target,
    name: &str,
    marker: &str,
) -> Result<(), StepFailure> {
    let fail = |step: &'static str| move |error: Error| StepFailure { step, error };
    let store = stores
        .destination(&target.region, target.role.as_ref())
        .await
        .map_err(fail("AssumeRole"))?;
    let key = match target.kms_key_id.as_deref() {
        Some(k) if !is_managed_key(k) => Some(store.key(k).await.map_err(fail("DescribeKey"))?.arn),
        _ => None,
    };
    let value = SecretValue::text(PROBE_TEXT.to_string());
    let tags = [(MARKER_TAG.to_string(), marker.to_string())];
    store
        .create(&NewSecret {
            name,
            value: &value,
            token: &crate::token::fresh(name),
            kms_key_id: key.as_deref(),
            description: "secret-replicator check: a probe of this destination's permissions, scheduled for deletion",
            tags: &tags,
        })
        .await
        .map_err(fail("CreateSecret"))?;
    let put = store
        .put(
            name,
            &SecretValue::text(PROBE_TEXT_PUT.to_string()),
            &crate::token::fresh(name),
        )
        .await
        .map_err(fail("PutSecretValue"));
    let deleted = store
        .delete(name, PROBE_RECOVERY_DAYS)
        .await
        .map_err(fail("DeleteSecret"));
    put?;
    deleted
}

/// Checks every target; prints one line each (stdout when it passed, stderr when not) and
/// returns whether all passed.
pub async fn run<S: Stores>(stores: &S, config: &Config, default_region: &str) -> ExitCode {
    let targets = targets(config, default_region);
    if targets.is_empty() {
        eprintln!("secret-replicator: check: the configuration names no destination");
        return ExitCode::FAILURE;
    }
    let run = run_id();
    let marker = probe_marker(&run);
    let mut failed = 0usize;
    for (i, t) in targets.iter().enumerate() {
        let name = probe_name(&run, i);
        let place = format!(
            "{} ({}, {}{})",
            t.labels.join(", "),
            t.role
                .as_ref()
                .map_or("own account".to_string(), |r| format!(
                    "account {} via {}",
                    r.account, r.arn
                )),
            t.region,
            t.kms_key_id
                .as_deref()
                .map_or(String::new(), |k| format!(", key {k}"))
        );
        match check_one(stores, t, &name, &marker).await {
            Ok(()) => println!(
                "ok    {place}: {name} created, written and scheduled for deletion in {PROBE_RECOVERY_DAYS} days"
            ),
            Err(f) => {
                failed += 1;
                eprintln!(
                    "FAIL  {place}: {} failed: {}: {}",
                    f.step,
                    f.code(),
                    f.message()
                );
            }
        }
    }
    if failed == 0 {
        println!("check passed: {} destination(s)", targets.len());
        ExitCode::SUCCESS
    } else {
        eprintln!("check failed: {failed} of {} destination(s)", targets.len());
        ExitCode::FAILURE
    }
}
