//! One source secret: read its current value → plan each destination → transform → write
//! (owned, idempotent, AWSCURRENT on the token) → re-read the source's version and go again if
//! it moved (SPEC §5, §8). Also the other ways a destination follows its source: compare-first
//! writes for `all`, dry runs, deletion and restore, tags and description.

use crate::config::Config;
use crate::event::SecretRef;
use crate::outcome::{Action, DestinationRef, Error, Outcome, Status};
use crate::rules::{self, Planned, Source, Target};
use crate::secret::SecretValue;
use crate::store::{
    AWSCURRENT, CurrentValue, Description, NewSecret, SecretStore, Stores, Written,
};
use crate::token;
use crate::transform::{ApplyError, MAX_VALUE_BYTES};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The marker tag of every destination this function owns.
pub const MARKER_TAG: &str = "secret-replicator:source";

/// How many times a source whose current version moved during replication is replicated again.
pub const MAX_ROUNDS: usize = 3;

/// Secrets Manager's limit of tags per secret.
pub const MAX_TAGS: usize = 50;

/// Attempts at moving AWSCURRENT onto a written version when the label keeps moving under us.
pub const LABEL_ROUNDS: usize = 3;

/// Skip reasons decided here.
pub mod reason {
    pub const SOURCE_DELETED: &str = "source_deleted";
    pub const DELETE_SYNC_OFF: &str = "delete_sync_off";
    pub const TAG_SYNC_OFF: &str = "tag_sync_off";
    pub const NOT_OWNED: &str = "not_owned";
    pub const ABSENT: &str = "absent";
}

/// How destinations are brought in line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Events and manual payloads: write (the ownership check once per warm container).
    Write,
    /// `all`: look at each destination first and write only what differs.
    Compare,
    /// `dryRun`: look and report; write nothing.
    Plan,
}

/// What a source change asks of its destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub mode: Mode,
    /// Replicate the value (off for tag events).
    pub value: bool,
    /// Bring tags and description in line where the destination copies them.
    pub metadata: bool,
}

impl Job {
    /// A value event (PutSecretValue, rotation...): the value only.
    pub const VALUE: Job = Job {
        mode: Mode::Write,
        value: true,
        metadata: false,
    };
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

/// Whether some destination of a rule matching `name` has the property.
fn wants(
    config: &Config,
    name: &str,
    property: impl Fn(&crate::config::Destination) -> bool,
) -> bool {
    config
        .rules
        .iter()
        .filter(|r| r.matches(name))
        .flat_map(|r| &r.destinations)
        .any(property)
}

/// Replicates one source to every destination its rules name.
pub async fn replicate_source<S: Stores>(
    stores: &S,
    shared: &Shared,
    config: &Config,
    secret: &SecretRef,
    region: Option<&str>,
    job: Job,
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
    // A tag event for a secret whose destinations copy no metadata: nothing to read.
    if !job.value
        && secret
            .name
            .as_deref()
            .is_some_and(|n| !wants(config, n, |d| d.copy_tags || d.copy_description))
    {
        return SourceResult::Outcomes(vec![Outcome::skipped(
            &secret.id,
            None,
            reason::TAG_SYNC_OFF,
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
        let source = source_of(&current.arn, &current.name, region);
        let meta = if job.metadata || job.value {
            match metadata_needed(config, &source, job) {
                true => match source_store.describe(&current.arn).await {
                    Ok(d) => d.map(|d| SourceMeta::of(&d)),
                    Err(error) => {
                        return SourceResult::Failed {
                            source: secret.id.clone(),
                            error,
                        };
                    }
                },
                false => None,
            }
        } else {
            None
        };
        let input = Input {
            source: &source,
            current: &current,
            meta: meta.as_ref(),
        };
        outcomes = replicate_version(stores, shared, config, &input, job).await;
        let wrote = job.mode != Mode::Plan
            && outcomes
                .iter()
                .any(|o| o.status == Status::Replicated && o.version_id.is_some());
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

fn source_of(arn: &str, name: &str, region: Option<&str>) -> Source {
    Source {
        region: rules::arn_region(arn)
            .or(region)
            .unwrap_or_default()
            .to_string(),
        account: rules::arn_account(arn).unwrap_or_default().to_string(),
        arn: arn.to_string(),
        name: name.to_string(),
    }
}

/// Whether some destination of this source needs the source's tags or description.
fn metadata_needed(config: &Config, source: &Source, job: Job) -> bool {
    wants(config, &source.name, |d| d.copy_tags || d.copy_description)
        && (job.metadata || job.mode != Mode::Plan)
}

/// The source's tags and description, for destinations that copy them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMeta {
    /// User tags only: never `aws:*`, never `secret-replicator:*`.
    pub tags: Vec<(String, String)>,
    pub description: Option<String>,
}

impl SourceMeta {
    fn of(d: &Description) -> Self {
        SourceMeta {
            tags: user_tags(&d.tags),
            description: d.description.clone(),
        }
    }
}

fn user_tags(tags: &[(String, String)]) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = tags
        .iter()
        .filter(|(k, _)| !k.starts_with("aws:") && !k.starts_with("secret-replicator:"))
        .cloned()
        .collect();
    t.sort();
    t
}

/// What every destination of one source version starts from.
struct Input<'a> {
    source: &'a Source,
    current: &'a CurrentValue,
    meta: Option<&'a SourceMeta>,
}

/// Writes one source version to all its destinations, concurrently.
async fn replicate_version<S: Stores>(
    stores: &S,
    shared: &Shared,
    config: &Config,
    input: &Input<'_>,
    job: Job,
) -> Vec<Outcome> {
    let source = input.source;
    let is_replica = token::is_replicator_token(&input.current.version_id);
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
                if !(job.value || target.dest.copy_tags || target.dest.copy_description) {
                    return Outcome::skipped(
                        &source.arn,
                        Some(target.at.clone()),
                        reason::TAG_SYNC_OFF,
                    );
                }
                let started = Instant::now();
                let mut outcome = match destination(stores, shared, input, &target, job).await {
                    Ok(done) => Outcome {
                        version_id: done.version_id,
                        bytes: Some(done.bytes),
                        size: (job.mode == Mode::Plan).then_some(done.bytes),
                        would_change: done.would_change,
                        reason: done.reason.map(str::to_string),
                        ..Outcome::ok(
                            &source.arn,
                            Some(target.at.clone()),
                            done.status,
                            done.action,
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

/// What was (or, in a dry run, would be) done to one destination.
struct Done {
    status: Status,
    action: Action,
    version_id: Option<String>,
    would_change: Option<bool>,
    bytes: usize,
    /// Why, for a skip.
    reason: Option<&'static str>,
}

async fn destination<S: Stores>(
    stores: &S,
    shared: &Shared,
    input: &Input<'_>,
    target: &Target<'_>,
    job: Job,
) -> Result<Done, Failure> {
    let value = transformed(target, &input.current.value).map_err(|e| (Action::None, e))?;
    let token = token::derive(&token::TokenInput {
        source_arn: &input.source.arn,
        source_version: &input.current.version_id,
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
        source: input.source,
        meta: input.meta,
        target,
        value: &value,
    };
    let mut done = match (job.mode, job.value) {
        (Mode::Write, true) => {
            let written = w.write(&token).await?;
            if job.metadata && (target.dest.copy_tags || target.dest.copy_description) {
                // UpdateSecret: the description and tags follow too.
                w.metadata_only(false).await?;
            }
            written
        }
        (_, true) => w.compare(&token, job.mode == Mode::Plan).await?,
        (mode, false) => w.metadata_only(mode == Mode::Plan).await?,
    };
    done.bytes = value.len();
    Ok(done)
}

/// Writes one value to one destination.
struct Writer<'a, T: SecretStore> {
    store: &'a T,
    shared: &'a Shared,
    source: &'a Source,
    meta: Option<&'a SourceMeta>,
    target: &'a Target<'a>,
    value: &'a SecretValue,
}

enum Ready {
    /// CreateSecret made it, value included.
    Created(Written),
    /// It exists and is ours (re-keyed if it needed it); `restored` if it was scheduled for
    /// deletion and has been restored.
    Owned { restored: bool },
}

/// What the ownership check found wrong with an existing destination, short of a conflict.
#[derive(Default)]
struct Repairs {
    adopt: bool,
    restore: bool,
    kms: bool,
}

impl Repairs {
    fn any(&self) -> bool {
        self.adopt || self.restore || self.kms
    }
}

fn done(status: Status, action: Action, version_id: Option<String>) -> Done {
    Done {
        status,
        action,
        version_id,
        would_change: None,
        bytes: 0,
        reason: None,
    }
}

impl<T: SecretStore> Writer<'_, T> {
    fn name(&self) -> &str {
        &self.target.at.name
    }

    fn marker(&self) -> String {
        token::marker_value(&self.source.account, &self.source.region, &self.source.name)
    }

    async fn limit(&self) {
        self.shared
            .limiter
            .acquire(&self.target.at.account, &self.target.at.region)
            .await;
    }

    /// Event mode: write, trusting the ownership found earlier in this container.
    async fn write(&self, token: &str) -> Result<Done, Failure> {
        let at = &self.target.at;
        let mut restored = false;
        if !self.shared.is_owned(at)
            && let Some(created) = self.own(token, &mut restored).await?
        {
            return Ok(created);
        }
        self.limit().await;
        let written = match self.store.put(self.name(), self.value, token).await {
            Ok(w) => w,
            // Deleted, or scheduled for deletion, since we last looked: look again, fresh.
            Err(e)
                if e.is_aws("ResourceNotFoundException") || e.is_aws("InvalidRequestException") =>
            {
                self.shared.set_owned(at, false);
                if let Some(created) = self.own(token, &mut restored).await? {
                    return Ok(created);
                }
                self.limit().await;
                self.put_resolving_collision(token).await?
            }
            Err(e) if e.is_aws("ResourceExistsException") => self.collision(token).await?,
            Err(e) => return Err((Action::Update, e)),
        };
        let (action, version) = self.land_current(written).await?;
        if restored {
            // RestoreSecret (or a copy deleted behind our back): report the restore.
            return Ok(done(Status::Restored, Action::Restore, Some(version)));
        }
        Ok(done(Status::Replicated, action, Some(version)))
    }

    /// The ownership check, remembered for the container; `Some` when it created the
    /// destination (value included), and `restored` set when it restored it.
    async fn own(&self, token: &str, restored: &mut bool) -> Result<Option<Done>, Failure> {
        let ready = self.ready(token).await?;
        self.shared.set_owned(&self.target.at, true);
        Ok(match ready {
            Ready::Created(w) => Some(done(Status::Replicated, Action::Create, Some(w.version_id))),
            Ready::Owned { restored: r } => {
                *restored |= r;
                None
            }
        })
    }

    /// AWSCURRENT on the written version. If the version already existed and is not current
    /// (a hand edit or a source rollback moved AWSCURRENT away since it was written), put it
    /// back on the token.
    async fn land_current(&self, written: Written) -> Result<(Action, String), Failure> {
        if written.stages.iter().any(|s| s == AWSCURRENT) {
            return Ok((Action::Update, written.version_id));
        }
        let from = self
            .store
            .describe(self.name())
            .await
            .map_err(|e| (Action::Label, e))?
            .and_then(|d| d.current_version);
        self.move_current(&written.version_id, from.as_deref())
            .await?;
        Ok((Action::Label, written.version_id))
    }

    /// UpdateSecretVersionStage, naming the version seen holding AWSCURRENT. When the label is
    /// no longer there (InvalidParameterException: another invocation moved it, or this call's
    /// own first attempt did and its answer was lost before the SDK retried), look again: done
    /// if the label is already on `to`, otherwise move it from where it is now, for at most
    /// [`LABEL_ROUNDS`] rounds.
    async fn move_current(&self, to: &str, from: Option<&str>) -> Result<(), Failure> {
        let mut from = from.map(str::to_string);
        let mut round = 1;
        loop {
            self.limit().await;
            match self
                .store
                .make_current(self.name(), to, from.as_deref())
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if e.is_aws("InvalidParameterException") && round < LABEL_ROUNDS => {
                    round += 1;
                    from = self
                        .store
                        .describe(self.name())
                        .await
                        .map_err(|e| (Action::Label, e))?
                        .and_then(|d| d.current_version);
                    if from.as_deref() == Some(to) {
                        return Ok(());
                    }
                }
                Err(e) => return Err((Action::Label, e)),
            }
        }
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

    /// `all` and dry runs: look at the destination, then write only what differs (or, in a
    /// dry run, report what would be written).
    async fn compare(&self, token: &str, plan: bool) -> Result<Done, Failure> {
        let at = &self.target.at;
        let Some(d) = self
            .store
            .describe(self.name())
            .await
            .map_err(|e| (Action::None, e))?
        else {
            if plan {
                return Ok(Done {
                    would_change: Some(true),
                    ..done(Status::Planned, Action::Create, None)
                });
            }
            return match self.create(token).await {
                Ok(w) => {
                    self.shared.set_owned(at, true);
                    Ok(done(Status::Replicated, Action::Create, Some(w.version_id)))
                }
                // Created meanwhile by another invocation: the ownership check decides.
                Err((_, e)) if e.is_aws("ResourceExistsException") => {
                    self.shared.set_owned(at, false);
                    self.write(token).await
                }
                Err(f) => Err(f),
            };
        };
        let repairs = self.check(&d).await?;
        // Is the value there already? The token's version being current says so without
        // reading the value; otherwise compare bytes.
        let has_token = d.version_ids.iter().any(|v| v == token);
        let value_state = if d.current_version.as_deref() == Some(token) {
            ValueState::Same
        } else if d.deleted {
            ValueState::Different
        } else {
            match self.store.current_value(self.name()).await {
                Ok(v) if &v.value == self.value => ValueState::Same,
                Ok(_) | Err(_) if has_token => ValueState::Label,
                Ok(_) => ValueState::Different,
                Err(e) if e.is_aws("ResourceNotFoundException") => ValueState::Different,
                Err(e) => return Err((Action::None, e)),
            }
        };
        let meta_changes = self.metadata_changes(&d);
        if plan {
            let action = if repairs.restore {
                Action::Restore
            } else if value_state == ValueState::Different {
                Action::Update
            } else if value_state == ValueState::Label {
                Action::Label
            } else if repairs.kms {
                Action::Kms
            } else if repairs.adopt || meta_changes.tags() {
                Action::Tags
            } else if meta_changes.description.is_some() {
                Action::Description
            } else {
                Action::None
            };
            return Ok(Done {
                would_change: Some(action != Action::None),
                ..done(Status::Planned, action, None)
            });
        }
        if !repairs.any() && value_state == ValueState::Same && meta_changes.is_empty() {
            self.shared.set_owned(at, true);
            return Ok(done(
                Status::Unchanged,
                Action::None,
                d.current_version.clone(),
            ));
        }
        self.repair(&repairs).await?;
        self.shared.set_owned(at, true);
        let (status, mut action, version) = match value_state {
            ValueState::Same => (Status::Unchanged, Action::None, d.current_version.clone()),
            ValueState::Label => {
                self.move_current(token, d.current_version.as_deref())
                    .await?;
                (Status::Replicated, Action::Label, Some(token.to_string()))
            }
            ValueState::Different => {
                let w = self.write(token).await?;
                (w.status, w.action, w.version_id)
            }
        };
        if let Some(a) = self.apply_metadata(&meta_changes).await?
            && action == Action::None
        {
            action = a;
        }
        if repairs.any() && action == Action::None {
            action = if repairs.restore {
                Action::Restore
            } else if repairs.kms {
                Action::Kms
            } else {
                Action::Tags
            };
        }
        let status = if status == Status::Unchanged && action != Action::None {
            Status::Replicated
        } else {
            status
        };
        Ok(done(status, action, version))
    }

    /// Tag and description events: bring the metadata in line, leave the value alone.
    async fn metadata_only(&self, plan: bool) -> Result<Done, Failure> {
        let Some(d) = self
            .store
            .describe(self.name())
            .await
            .map_err(|e| (Action::None, e))?
        else {
            return Ok(Done {
                would_change: plan.then_some(false),
                reason: Some(reason::ABSENT),
                ..done(Status::Skipped, Action::None, None)
            });
        };
        if self.owner(&d).map_err(|e| (Action::None, e))? != Owner::Us {
            return Err((
                Action::Tags,
                Error::DestinationConflict(format!(
                    "{} is not managed by this source; its tags are left alone",
                    self.name()
                )),
            ));
        }
        let changes = self.metadata_changes(&d);
        if plan {
            let action = changes.action();
            return Ok(Done {
                would_change: Some(action != Action::None),
                ..done(Status::Planned, action, None)
            });
        }
        match self.apply_metadata(&changes).await? {
            Some(action) => Ok(done(Status::Replicated, action, None)),
            None => Ok(done(Status::Unchanged, Action::None, None)),
        }
    }

    /// Tag and description differences between the source and this destination, for what the
    /// destination copies. Marker tags are never touched.
    fn metadata_changes(&self, d: &Description) -> MetaChanges {
        let mut changes = MetaChanges::default();
        let Some(meta) = self.meta else {
            return changes;
        };
        if self.target.dest.copy_tags {
            let have = user_tags(&d.tags);
            changes.set = meta
                .tags
                .iter()
                .filter(|t| !have.contains(t))
                .cloned()
                .collect();
            changes.remove = have
                .iter()
                .filter(|(k, _)| !meta.tags.iter().any(|(mk, _)| mk == k))
                .map(|(k, _)| k.clone())
                .collect();
            changes.total = meta.tags.len() + d.tags.len() - have.len();
        }
        if self.target.dest.copy_description {
            let want = meta.description.clone().unwrap_or_default();
            if d.description.clone().unwrap_or_default() != want {
                changes.description = Some(want);
            }
        }
        changes
    }

    async fn apply_metadata(&self, c: &MetaChanges) -> Result<Option<Action>, Failure> {
        let mut action = None;
        if c.tags() {
            if c.total > MAX_TAGS {
                return Err((
                    Action::Tags,
                    Error::Aws(crate::outcome::AwsError {
                        kind: crate::outcome::ErrorKind::AwsClientError,
                        service: "secretsmanager",
                        operation: "TagResource",
                        code: "TooManyTags".into(),
                        message: format!(
                            "{} would carry {} tags; Secrets Manager allows {MAX_TAGS}",
                            self.name(),
                            c.total
                        ),
                    }),
                ));
            }
            if !c.remove.is_empty() {
                self.limit().await;
                self.store
                    .untag(self.name(), &c.remove)
                    .await
                    .map_err(|e| (Action::Tags, e))?;
            }
            if !c.set.is_empty() {
                self.limit().await;
                self.store
                    .tag(self.name(), &c.set)
                    .await
                    .map_err(|e| (Action::Tags, e))?;
            }
            action = Some(Action::Tags);
        }
        if let Some(desc) = &c.description {
            self.limit().await;
            self.store
                .set_description(self.name(), desc)
                .await
                .map_err(|e| (Action::Description, e))?;
            action = action.or(Some(Action::Description));
        }
        Ok(action)
    }

    /// The ownership check (once per destination per warm container): create when absent;
    /// refuse what is not ours unless `adopt`; restore ours if scheduled for deletion; bring
    /// its KMS key to the configured one.
    async fn ready(&self, token: &str) -> Result<Ready, Failure> {
        let mut described = self
            .store
            .describe(self.name())
            .await
            .map_err(|e| (Action::None, e))?;
        if described.is_none() {
            match self.create(token).await {
                Ok(w) => return Ok(Ready::Created(w)),
                // Another invocation created it first: check whose it is, then write.
                Err((_, e)) if e.is_aws("ResourceExistsException") => {
                    described = self
                        .store
                        .describe(self.name())
                        .await
                        .map_err(|e| (Action::None, e))?;
                }
                Err(f) => return Err(f),
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
        let repairs = self.check(&d).await?;
        self.repair(&repairs).await?;
        Ok(Ready::Owned {
            restored: repairs.restore,
        })
    }

    /// CreateSecret with value, token, KMS key, description and tags in one call.
    async fn create(&self, token: &str) -> Result<Written, Failure> {
        let dest = self.target.dest;
        let mut tags = vec![(MARKER_TAG.to_string(), self.marker())];
        let mut description = format!(
            "Replica of {} ({} in {}), written by secret-replicator",
            self.source.name, self.source.account, self.source.region
        );
        if let Some(meta) = self.meta {
            if dest.copy_tags {
                tags.extend(meta.tags.iter().cloned());
            }
            if dest.copy_description {
                description = meta.description.clone().unwrap_or_default();
            }
        }
        self.limit().await;
        self.store
            .create(&NewSecret {
                name: self.name(),
                value: self.value,
                token,
                kms_key_id: dest.kms_key_id.as_deref(),
                description: &description,
                tags: &tags,
            })
            .await
            .map_err(|e| (Action::Create, e))
    }

    fn owner(&self, d: &Description) -> Result<Owner, Error> {
        if let Some(service) = &d.owning_service {
            return Err(Error::DestinationConflict(format!(
                "{} is managed by {service}",
                self.name()
            )));
        }
        if let Some(primary) = &d.primary_region {
            return Err(Error::DestinationConflict(format!(
                "{} is a native Secrets Manager replica of a secret in {primary}",
                self.name()
            )));
        }
        Ok(match d.tag(MARKER_TAG) {
            Some(m) if m == self.marker() => Owner::Us,
            Some(_) => Owner::Other,
            None => Owner::Nobody,
        })
    }

    /// Decides whether an existing destination may be written and what it needs first. Reads
    /// only (kms:DescribeKey to compare keys).
    async fn check(&self, d: &Description) -> Result<Repairs, Failure> {
        let dest = self.target.dest;
        let conflict = |msg: String| (Action::None, Error::DestinationConflict(msg));
        let mut repairs = Repairs::default();
        match self.owner(d).map_err(|e| (Action::None, e))? {
            Owner::Us => {}
            Owner::Other => {
                return Err(conflict(format!(
                    "{} is the replica of another source (its {MARKER_TAG} tag names a different secret)",
                    self.name()
                )));
            }
            Owner::Nobody if dest.adopt => repairs.adopt = true,
            Owner::Nobody => {
                return Err(conflict(format!(
                    "{} exists and is not managed by secret-replicator (no {MARKER_TAG} tag); set \"adopt\": true to take it over",
                    self.name()
                )));
            }
        }
        repairs.restore = d.deleted;
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
            repairs.kms = have_arn.as_deref() != Some(want_arn.as_str());
        }
        Ok(repairs)
    }

    async fn repair(&self, r: &Repairs) -> Result<(), Failure> {
        if r.adopt {
            self.limit().await;
            self.store
                .tag(self.name(), &[(MARKER_TAG.to_string(), self.marker())])
                .await
                .map_err(|e| (Action::Tags, e))?;
            tracing::info!(destination = %self.name(), "adopted existing secret");
        }
        if r.restore {
            self.limit().await;
            self.store
                .restore(self.name())
                .await
                .map_err(|e| (Action::Restore, e))?;
            tracing::info!(destination = %self.name(), "restored destination scheduled for deletion");
        }
        if r.kms
            && let Some(want) = &self.target.dest.kms_key_id
        {
            {
                self.limit().await;
                self.store
                    .set_kms_key(self.name(), want)
                    .await
                    .map_err(|e| (Action::Kms, e))?;
                tracing::info!(destination = %self.name(), "moved destination to the configured KMS key");
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Us,
    Other,
    Nobody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueState {
    Same,
    Label,
    Different,
}

#[derive(Debug, Default)]
struct MetaChanges {
    set: Vec<(String, String)>,
    remove: Vec<String>,
    /// Tags the destination would carry afterwards (marker included).
    total: usize,
    description: Option<String>,
}

impl MetaChanges {
    fn tags(&self) -> bool {
        !self.set.is_empty() || !self.remove.is_empty()
    }

    fn is_empty(&self) -> bool {
        !self.tags() && self.description.is_none()
    }

    fn action(&self) -> Action {
        if self.tags() {
            Action::Tags
        } else if self.description.is_some() {
            Action::Description
        } else {
            Action::None
        }
    }
}

/// Deletion sync (SPEC §5 DeleteSecret): converge owned destinations of rules with
/// `delete_with_source` to the source's state at processing time. A source that is live again
/// is replicated (which restores owned destinations); a source scheduled for deletion schedules
/// its replicas with the remaining window (at least 7 days); a source already gone (a forced
/// delete) maps to 7 days, never to a forced delete of a replica.
pub async fn delete_source<S: Stores>(
    stores: &S,
    shared: &Shared,
    config: &Config,
    secret: &SecretRef,
    region: Option<&str>,
    account: Option<&str>,
    plan: bool,
) -> SourceResult {
    // Nothing to do, and nothing to read, when no destination of this name follows deletions.
    if let Some(name) = &secret.name
        && !wants(config, name, |d| d.delete_with_source)
    {
        return SourceResult::Outcomes(vec![Outcome::skipped(
            &secret.id,
            None,
            reason::DELETE_SYNC_OFF,
        )]);
    }
    let source_store = stores.own(region);
    let described = match source_store.describe(&secret.id).await {
        Ok(d) => d,
        Err(error) => {
            return SourceResult::Failed {
                source: secret.id.clone(),
                error,
            };
        }
    };
    let (arn, name, window) = match &described {
        Some(d) if !d.deleted => {
            // Restored (or never deleted) by the time we look: the copy follows the live source.
            let job = Job {
                mode: if plan { Mode::Plan } else { Mode::Write },
                ..Job::VALUE
            };
            return Box::pin(replicate_source(
                stores, shared, config, secret, region, job,
            ))
            .await;
        }
        Some(d) => (d.arn.clone(), d.name.clone(), window_days(d.deletion_date)),
        None => match &secret.name {
            Some(n) => (secret.id.clone(), n.clone(), 7),
            None => {
                return SourceResult::Failed {
                    source: secret.id.clone(),
                    error: Error::SourceNotFound(format!(
                        "{}: gone, and the event does not name it",
                        secret.id
                    )),
                };
            }
        },
    };
    if !config.matches_any(&name) {
        return SourceResult::Outcomes(vec![Outcome::skipped(
            &arn,
            None,
            rules::reason::NO_MATCHING_RULE,
        )]);
    }
    let mut source = source_of(&arn, &name, region);
    if source.account.is_empty() {
        source.account = account.unwrap_or_default().to_string();
    }
    let planned = rules::plan(config, &source, false);
    let work = planned.into_iter().map(|p| {
        let source = &source;
        async move {
            match p {
                Planned::Done(o) => *o,
                Planned::Write(t) if !t.dest.delete_with_source => {
                    Outcome::skipped(&source.arn, Some(t.at.clone()), reason::DELETE_SYNC_OFF)
                }
                Planned::Write(t) => {
                    let started = Instant::now();
                    let mut o = delete_destination(stores, shared, source, &t, window, plan).await;
                    o.duration_ms = Some(started.elapsed().as_millis() as u64);
                    log_outcome(&source.name, &o);
                    o
                }
            }
        }
    });
    SourceResult::Outcomes(futures::future::join_all(work).await)
}

/// Days left until a scheduled deletion, at least 7 and at most 30 (DeleteSecret's range).
fn window_days(at: Option<std::time::SystemTime>) -> i64 {
    let secs = at
        .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs.div_ceil(86_400) as i64).clamp(7, 30)
}

async fn delete_destination<S: Stores>(
    stores: &S,
    shared: &Shared,
    source: &Source,
    t: &Target<'_>,
    window: i64,
    plan: bool,
) -> Outcome {
    let at = Some(t.at.clone());
    let fail = |action, e: Error| Outcome::failed(&source.arn, at.clone(), action, &e);
    let store = match stores.destination(&t.at.region, t.dest.role.as_ref()).await {
        Ok(s) => s,
        Err(e) => return fail(Action::Delete, e),
    };
    // Fresh, right before the delete: never delete what this source does not own.
    let d = match store.describe(&t.at.name).await {
        Ok(Some(d)) => d,
        Ok(None) => return Outcome::skipped(&source.arn, at, reason::ABSENT),
        Err(e) => return fail(Action::Delete, e),
    };
    let marker = token::marker_value(&source.account, &source.region, &source.name);
    if d.tag(MARKER_TAG) != Some(marker.as_str()) {
        return Outcome::skipped(&source.arn, at, reason::NOT_OWNED);
    }
    if d.deleted {
        return Outcome::ok(&source.arn, at, Status::Unchanged, Action::None);
    }
    if plan {
        return Outcome {
            would_change: Some(true),
            ..Outcome::ok(&source.arn, at, Status::Planned, Action::Delete)
        };
    }
    shared.limiter.acquire(&t.at.account, &t.at.region).await;
    match store.delete(&t.at.name, window).await {
        Ok(()) => {
            shared.set_owned(&t.at, false);
            Outcome::ok(&source.arn, at, Status::Deleted, Action::Delete)
        }
        Err(e) => fail(Action::Delete, e),
    }
}

#[cfg(test)]
mod tests;
