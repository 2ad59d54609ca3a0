//! One source secret: read its current value → plan each destination → transform → write
//! (owned, idempotent, AWSCURRENT on the token) → re-read the source's version and go again if
//! it moved (SPEC §5, §8).

use crate::config::Config;
use crate::event::SecretRef;
use crate::outcome::{Action, DestinationRef, Error, Outcome, Status};
use crate::rules::{self, Planned, Source, Target};
use crate::secret::SecretValue;
use crate::store::{AWSCURRENT, CurrentValue, NewSecret, SecretStore, Stores, Written};
use crate::token;
use crate::transform::{ApplyError, MAX_VALUE_BYTES};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The marker tag of every destination this function owns.
pub const MARKER_TAG: &str = "secret-replicator:source";

/// How many times a source whose current version moved during replication is replicated again.
pub const MAX_ROUNDS: usize = 3;

/// Skip reasons decided here.
pub mod reason {
    pub const SOURCE_DELETED: &str = "source_deleted";
}

/// Per-container state shared by invocations: which destinations were found owned, and the
/// write rate limiter.
#[derive(Debug)]
pub struct Shared {
    owned: Mutex<HashSet<DestinationRef>>,
    limiter: WriteLimiter,
}

impl Shared {
    /// `write_tps` writes per second per destination account and region.
    pub fn new(write_tps: u32) -> Self {
        Shared {
            owned: Mutex::new(HashSet::new()),
            limiter: WriteLimiter::new(write_tps),
        }
    }

    fn is_owned(&self, at: &DestinationRef) -> bool {
        self.owned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(at)
    }

    fn set_owned(&self, at: &DestinationRef, owned: bool) {
        let mut set = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        if owned {
            set.insert(at.clone());
        } else {
            set.remove(at);
        }
    }
}

/// Spaces writes per (account, region) so that a burst stays under Secrets Manager's shared
/// write quota: up to `tps` writes at once, then `1/tps` apart (a GCRA token bucket).
#[derive(Debug)]
pub struct WriteLimiter {
    interval: Duration,
    burst: Duration,
    next: Mutex<HashMap<(String, String), Instant>>,
}

impl WriteLimiter {
    /// A limiter allowing `tps` writes per second (at least 1).
    pub fn new(tps: u32) -> Self {
        let tps = tps.max(1);
        let interval = Duration::from_secs(1) / tps;
        WriteLimiter {
            interval,
            burst: interval * (tps - 1),
            next: Mutex::new(HashMap::new()),
        }
    }

    /// How long the caller must wait before writing (and books the slot).
    fn reserve(&self, account: &str, region: &str) -> Duration {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let tat = next
            .entry((account.to_string(), region.to_string()))
            .or_insert(now);
        let start = (*tat).max(now);
        *tat = start + self.interval;
        (start.saturating_duration_since(now)).saturating_sub(self.burst)
    }

    /// Waits for a write slot.
    pub async fn acquire(&self, account: &str, region: &str) {
        let wait = self.reserve(account, region);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// What happened to one source.
#[derive(Debug)]
pub enum SourceResult {
    /// One outcome per destination (or one skip without destination).
    Outcomes(Vec<Outcome>),
    /// The source could not be read; no destination is known.
    Failed { source: String, error: Error },
}

/// Replicates one source to every destination its rules name.
pub async fn replicate_source<S: Stores>(
    stores: &S,
    shared: &Shared,
    config: &Config,
    secret: &SecretRef,
    region: Option<&str>,
) -> SourceResult {
    // An event that names the secret lets us skip secrets no rule wants before reading them
    // (the function may not even be allowed to read them).
    if secret
        .name
        .as_deref()
        .is_some_and(|n| !config.matches_any(n))
    {
        return SourceResult::Outcomes(vec![Outcome::skipped(
            &secret.id,
            None,
            rules::reason::NO_MATCHING_RULE,
        )]);
    }
    let source_store = stores.own(region);
    let mut outcomes = Vec::new();
    let mut id = secret.id.clone();
    for round in 1..=MAX_ROUNDS {
        let current = match source_store.current_value(&id).await {
            Ok(c) => c,
            Err(e) if e.is_aws("ResourceNotFoundException") => {
                return SourceResult::Failed {
                    source: secret.id.clone(),
                    error: Error::SourceNotFound(match e.aws() {
                        Some(a) => format!("{}: {}", secret.id, a.message),
                        None => secret.id.clone(),
                    }),
                };
            }
            // Secrets Manager refuses to read a secret scheduled for deletion: nothing to copy.
            Err(e) if e.is_aws("InvalidRequestException") => {
                return SourceResult::Outcomes(vec![Outcome::skipped(
                    &secret.id,
                    None,
                    reason::SOURCE_DELETED,
                )]);
            }
            Err(error) => {
                return SourceResult::Failed {
                    source: secret.id.clone(),
                    error,
                };
            }
        };
        id = current.arn.clone();
        let source = Source {
            region: rules::arn_region(&current.arn)
                .or(region)
                .unwrap_or_default()
                .to_string(),
            account: rules::arn_account(&current.arn)
                .unwrap_or_default()
                .to_string(),
            arn: current.arn.clone(),
            name: current.name.clone(),
        };
        outcomes = replicate_version(stores, shared, config, &source, &current).await;
        let wrote = outcomes.iter().any(|o| o.status == Status::Replicated);
        if !wrote || round == MAX_ROUNDS {
            break;
        }
        // Events arrive late and concurrently: if the source moved while we wrote, the copy
        // must follow it now, not when (or if) the next event arrives.
        match source_store.describe(&current.arn).await {
            Ok(Some(d)) if d.current_version.as_deref() != Some(current.version_id.as_str()) => {
                tracing::info!(source = %current.name, round, "source version moved during replication; going again");
            }
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(source = %current.name, error = %e, "could not re-read the source version");
                break;
            }
        }
    }
    SourceResult::Outcomes(outcomes)
}

/// Writes one source version to all its destinations, concurrently.
async fn replicate_version<S: Stores>(
    stores: &S,
    shared: &Shared,
    config: &Config,
    source: &Source,
    current: &CurrentValue,
) -> Vec<Outcome> {
    let is_replica = token::is_replicator_token(&current.version_id);
    let planned = rules::plan(config, source, is_replica);
    if planned.is_empty() {
        return vec![Outcome::skipped(
            &source.arn,
            None,
            rules::reason::NO_MATCHING_RULE,
        )];
    }
    let all_replica_skips = planned.iter().all(
        |p| matches!(p, Planned::Done(o) if o.reason.as_deref() == Some(rules::reason::REPLICA)),
    );
    if all_replica_skips {
        // A replica's own events: one skip, no destination (SPEC §7).
        return vec![Outcome::skipped(&source.arn, None, rules::reason::REPLICA)];
    }
    let work = planned.into_iter().map(|p| async move {
        match p {
            Planned::Done(o) => *o,
            Planned::Write(target) => {
                let started = Instant::now();
                let mut outcome =
                    match write_destination(stores, shared, source, current, &target).await {
                        Ok((action, written, bytes)) => Outcome {
                            version_id: Some(written.version_id),
                            bytes: Some(bytes),
                            ..Outcome::ok(
                                &source.arn,
                                Some(target.at.clone()),
                                Status::Replicated,
                                action,
                            )
                        },
                        Err((action, e)) => {
                            Outcome::failed(&source.arn, Some(target.at.clone()), action, &e)
                        }
                    };
                outcome.duration_ms = Some(started.elapsed().as_millis() as u64);
                log_outcome(&source.name, &outcome);
                outcome
            }
        }
    });
    futures::future::join_all(work).await
}

fn log_outcome(source_name: &str, o: &Outcome) {
    let dest = o
        .destination
        .as_ref()
        .map(|d| format!("{}:{}:{}", d.account, d.region, d.name))
        .unwrap_or_default();
    let kind = o.error.as_ref().map(|e| e.kind.as_str()).unwrap_or("");
    if o.is_failure() {
        tracing::warn!(source = source_name, destination = %dest, status = ?o.status, action = ?o.action,
            duration_ms = o.duration_ms, error_kind = kind,
            error = o.error.as_ref().map(|e| e.message.as_str()).unwrap_or(""), "destination outcome");
    } else {
        tracing::info!(source = source_name, destination = %dest, status = ?o.status, action = ?o.action,
            duration_ms = o.duration_ms, version_id = o.version_id.as_deref().unwrap_or(""), "destination outcome");
    }
}

/// The value a destination gets: the transform chain's output, within Secrets Manager's size.
fn transformed(target: &Target<'_>, value: &SecretValue) -> Result<SecretValue, Error> {
    let out = match value {
        SecretValue::Binary(b) => {
            if !target.dest.transforms.is_empty() {
                return Err(Error::TransformFailed(
                    "the source is a binary secret (SecretBinary); transforms apply to SecretString only".into(),
                ));
            }
            SecretValue::Binary(b.clone())
        }
        SecretValue::String(s) => match target.dest.transforms.apply(s, &target.vars) {
            Ok(None) => SecretValue::String(s.clone()),
            Ok(Some(t)) => SecretValue::String(t),
            Err(ApplyError::TooLarge { bytes }) => return Err(Error::TooLarge(bytes)),
            Err(e) => return Err(Error::TransformFailed(e.to_string())),
        },
    };
    if out.len() > MAX_VALUE_BYTES {
        return Err(Error::TooLarge(out.len()));
    }
    Ok(out)
}

type Failure = (Action, Error);

async fn write_destination<S: Stores>(
    stores: &S,
    shared: &Shared,
    source: &Source,
    current: &CurrentValue,
    target: &Target<'_>,
) -> Result<(Action, Written, usize), Failure> {
    let value = transformed(target, &current.value).map_err(|e| (Action::None, e))?;
    let token = token::derive(&token::TokenInput {
        source_arn: &source.arn,
        source_version: &current.version_id,
        dest_account: &target.at.account,
        dest_region: &target.at.region,
        dest_name: &target.at.name,
        transform_fingerprint: &target.dest.fingerprint,
    });
    let store = stores
        .destination(&target.at.region, target.dest.role.as_ref())
        .await
        .map_err(|e| (Action::None, e))?;
    let w = Writer {
        store: &store,
        shared,
        source,
        target,
        value: &value,
    };
    let (action, written) = w.write(&token).await?;
    Ok((action, written, value.len()))
}

/// Writes one value to one destination.
struct Writer<'a, T: SecretStore> {
    store: &'a T,
    shared: &'a Shared,
    source: &'a Source,
    target: &'a Target<'a>,
    value: &'a SecretValue,
}

enum Ready {
    /// CreateSecret made it, value included.
    Created(Written),
    /// It exists and is ours (restored and re-keyed if it needed it).
    Owned,
}

impl<T: SecretStore> Writer<'_, T> {
    fn name(&self) -> &str {
        &self.target.at.name
    }

    async fn limit(&self) {
        self.shared
            .limiter
            .acquire(&self.target.at.account, &self.target.at.region)
            .await;
    }

    async fn write(&self, token: &str) -> Result<(Action, Written), Failure> {
        let at = &self.target.at;
        if !self.shared.is_owned(at) {
            match self.ready(token).await? {
                Ready::Created(w) => {
                    self.shared.set_owned(at, true);
                    return Ok((Action::Create, w));
                }
                Ready::Owned => self.shared.set_owned(at, true),
            }
        }
        self.limit().await;
        let written = match self.store.put(self.name(), self.value, token).await {
            Ok(w) => w,
            // Deleted, or scheduled for deletion, since we last looked: look again, fresh.
            Err(e)
                if e.is_aws("ResourceNotFoundException") || e.is_aws("InvalidRequestException") =>
            {
                self.shared.set_owned(at, false);
                match self.ready(token).await? {
                    Ready::Created(w) => {
                        self.shared.set_owned(at, true);
                        return Ok((Action::Create, w));
                    }
                    Ready::Owned => self.shared.set_owned(at, true),
                }
                self.limit().await;
                self.put_resolving_collision(token).await?
            }
            Err(e) if e.is_aws("ResourceExistsException") => self.collision(token).await?,
            Err(e) => return Err((Action::Update, e)),
        };
        if written.stages.iter().any(|s| s == AWSCURRENT) {
            return Ok((Action::Update, written));
        }
        // The version already existed and is not current: a hand edit or a source rollback
        // moved AWSCURRENT away since it was written. Put it back on the token.
        let from = self
            .store
            .describe(self.name())
            .await
            .map_err(|e| (Action::Label, e))?
            .and_then(|d| d.current_version);
        self.limit().await;
        self.store
            .make_current(self.name(), &written.version_id, from.as_deref())
            .await
            .map_err(|e| (Action::Label, e))?;
        Ok((
            Action::Label,
            Written {
                stages: vec![AWSCURRENT.to_string()],
                ..written
            },
        ))
    }

    async fn put_resolving_collision(&self, token: &str) -> Result<Written, Failure> {
        match self.store.put(self.name(), self.value, token).await {
            Ok(w) => Ok(w),
            Err(e) if e.is_aws("ResourceExistsException") => self.collision(token).await,
            Err(e) => Err((Action::Update, e)),
        }
    }

    /// The token's version exists with another value (it can only be that: same token, same
    /// value is an idempotent no-op). Write with a fresh token of the same recognisable shape.
    async fn collision(&self, token: &str) -> Result<Written, Failure> {
        let fresh = token::fresh(token);
        tracing::warn!(event = "token_collision", destination = %self.name(), token, fresh = %fresh,
            "version token already used with another value; writing with a fresh token");
        self.limit().await;
        self.store
            .put(self.name(), self.value, &fresh)
            .await
            .map_err(|e| (Action::Update, e))
    }

    /// The ownership check (once per destination per warm container): create when absent;
    /// refuse what is not ours unless `adopt`; restore ours if scheduled for deletion; bring
    /// its KMS key to the configured one.
    async fn ready(&self, token: &str) -> Result<Ready, Failure> {
        let dest = self.target.dest;
        let marker =
            token::marker_value(&self.source.account, &self.source.region, &self.source.name);
        let mut described = self
            .store
            .describe(self.name())
            .await
            .map_err(|e| (Action::None, e))?;
        if described.is_none() {
            let description = format!(
                "Replica of {} ({} in {}), written by secret-replicator",
                self.source.name, self.source.account, self.source.region
            );
            let tags = vec![(MARKER_TAG.to_string(), marker.clone())];
            self.limit().await;
            let created = self
                .store
                .create(&NewSecret {
                    name: self.name(),
                    value: self.value,
                    token,
                    kms_key_id: dest.kms_key_id.as_deref(),
                    description: &description,
                    tags: &tags,
                })
                .await;
            match created {
                Ok(w) => return Ok(Ready::Created(w)),
                // Another invocation created it first: check whose it is, then write.
                Err(e) if e.is_aws("ResourceExistsException") => {
                    described = self
                        .store
                        .describe(self.name())
                        .await
                        .map_err(|e| (Action::None, e))?;
                }
                Err(e) => return Err((Action::Create, e)),
            }
        }
        let Some(d) = described else {
            return Err((
                Action::Create,
                Error::DestinationConflict(format!(
                    "{} was reported to exist and then not found",
                    self.name()
                )),
            ));
        };
        let conflict = |msg: String| (Action::None, Error::DestinationConflict(msg));
        if let Some(service) = &d.owning_service {
            return Err(conflict(format!("{} is managed by {service}", self.name())));
        }
        if let Some(primary) = &d.primary_region {
            return Err(conflict(format!(
                "{} is a native Secrets Manager replica of a secret in {primary}",
                self.name()
            )));
        }
        match d.tag(MARKER_TAG) {
            Some(m) if m == marker => {}
            Some(_) => {
                return Err(conflict(format!(
                    "{} is the replica of another source (its {MARKER_TAG} tag names a different secret)",
                    self.name()
                )));
            }
            None if dest.adopt => {
                self.limit().await;
                self.store
                    .tag(self.name(), &[(MARKER_TAG.to_string(), marker.clone())])
                    .await
                    .map_err(|e| (Action::Tags, e))?;
                tracing::info!(destination = %self.name(), "adopted existing secret");
            }
            None => {
                return Err(conflict(format!(
                    "{} exists and is not managed by secret-replicator (no {MARKER_TAG} tag); set \"adopt\": true to take it over",
                    self.name()
                )));
            }
        }
        if d.deleted {
            self.limit().await;
            self.store
                .restore(self.name())
                .await
                .map_err(|e| (Action::Restore, e))?;
            tracing::info!(destination = %self.name(), "restored destination scheduled for deletion");
        }
        if let Some(want) = &dest.kms_key_id {
            let want_arn = self
                .store
                .key_arn(want)
                .await
                .map_err(|e| (Action::Kms, e))?;
            let have_arn = match &d.kms_key_id {
                Some(have) => Some(
                    self.store
                        .key_arn(have)
                        .await
                        .map_err(|e| (Action::Kms, e))?,
                ),
                None => None,
            };
            if have_arn.as_deref() != Some(want_arn.as_str()) {
                self.limit().await;
                self.store
                    .set_kms_key(self.name(), want)
                    .await
                    .map_err(|e| (Action::Kms, e))?;
                tracing::info!(destination = %self.name(), "moved destination to the configured KMS key");
            }
        }
        Ok(Ready::Owned)
    }
}

#[cfg(test)]
mod tests;
