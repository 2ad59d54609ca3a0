//! One source secret → its destinations (SPEC §5, §8). Read the source's current value →
//! rules name the destinations → every transform and token computed (pure) → each destination
//! observed and decided → the plans executed concurrently; a race means observe once more and
//! decide again → re-read the source's version and go again if it moved.
//!
//! `observe` (what AWS holds) → `decide` (pure: the plan, the status, the action) → `execute`
//! (the steps, paced by the write budget). A dry run is decide without execute. Deletion
//! (`delete`) and the `all` run (`backfill`) are built from the same three.

pub mod backfill;
pub mod decide;
pub mod delete;
pub mod execute;
pub mod job;
mod log;
pub mod observe;
mod prepare;
pub mod state;

pub use decide::{MARKER_TAG, MAX_TAGS};
pub use job::{Job, Mode, Scope};
pub use log::log_outcome;
pub(crate) use log::log_outcome_in;
pub use state::ContainerState;

use crate::config::{Config, Destination};
use crate::event::{Change, SecretRef};
use crate::outcome::{Action, DestinationRef, Error, Outcome, SkipReason, Status};
use crate::rules::{self, Planned, Source};
use crate::store::{CurrentValue, Description, ReadSecrets, RetryPolicy, Stores};
use crate::token;
use decide::{DestState, Learned, Plan, Seen, Step, Want, user_tags};
use execute::{Executor, Ran};
use prepare::{Decided, Prepared, prepare};
use std::time::{Duration, Instant};

/// How many times a source whose current version moved during replication is replicated again.
pub const MAX_ROUNDS: usize = 3;

/// How many times one destination is observed and decided again after races (a label that keeps
/// moving, a create/describe contradiction) before the destination fails, retriable.
pub const MAX_RACES: usize = 3;

/// Re-reads of an answer that does not show a write yet (eventual consistency, SPEC §12).
pub const STALE_READS: usize = 3;

/// The first backoff before reading again after a contradiction; it doubles each time.
pub const STALE_BACKOFF: Duration = Duration::from_millis(100);

/// The waits before each re-read of a young CreateSecret's source that is not readable yet:
/// about 10 s in all (SPEC §5), then the read's answer counts (`no_value` or SourceNotFound).
pub const YOUNG_CREATE_BACKOFF: [Duration; 7] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(2),
    Duration::from_secs(2),
    Duration::from_secs(2),
];

/// What happened to one source.
#[derive(Debug)]
pub enum SourceResult {
    /// One outcome per destination (or one skip without destination).
    Outcomes(Vec<Outcome>),
    /// The source could not be read; no destination is known.
    Failed { source: String, error: Error },
}

/// The source's tags and description (DescribeSecret, or the ListSecrets entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMeta {
    /// Every tag (rules with `tags` filter on them).
    pub tags: Vec<(String, String)>,
    /// User tags only: never `aws:*`, never `secret-replicator:*` (copied to destinations).
    pub user_tags: Vec<(String, String)>,
    pub description: Option<String>,
}

impl SourceMeta {
    fn of(d: &Description) -> Self {
        SourceMeta {
            tags: d.tags.clone(),
            user_tags: user_tags(&d.tags),
            description: d.description.clone(),
        }
    }
}

/// What is known about a source before it is read (from a listing).
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    /// Its tags, when a listing gave them.
    pub tags: Option<&'a [(String, String)]>,
    /// Only these destinations (the ones a listing found out of line); the others are left
    /// out of the results.
    pub only: Option<&'a std::collections::HashSet<DestinationRef>>,
    /// Of those, the ones the listing did not show at all: unless planning, they are created
    /// without a DescribeSecret first (SPEC §6: a missing destination is created, and a
    /// ResourceExistsException falls back to the ownership check). First round only.
    pub absent: Option<&'a std::collections::HashSet<DestinationRef>>,
    /// What the triggering event says about its change (SPEC §5): the version the first source
    /// read is checked against, and whether a young CreateSecret's secret may not be readable
    /// yet. None for `all` and manual payloads. First round only.
    pub change: Option<&'a Change>,
}

/// Replicates sources: the clients, the container's state, the configuration.
pub struct Replicator<'a, S: Stores> {
    pub stores: &'a S,
    pub state: &'a ContainerState,
    pub config: &'a Config,
    /// How writes are retried (the SDK's policy for reads).
    pub retry: RetryPolicy,
}

/// Whether some destination of a rule matching `name` has the property.
fn wants(config: &Config, name: &str, property: impl Fn(&Destination) -> bool) -> bool {
    config
        .rules
        .iter()
        .filter(|r| r.matches(name))
        .flat_map(|r| &r.destinations)
        .any(property)
}

fn copies_metadata(d: &Destination) -> bool {
    d.copy_tags || d.copy_description
}

/// Sleeps before reading again after a contradiction (`n` ≥ 1).
async fn stale_backoff(n: usize) {
    tokio::time::sleep(STALE_BACKOFF * (1 << (n.saturating_sub(1)).min(6)) as u32).await;
}

impl<S: Stores> Replicator<'_, S> {
    /// Replicates one source to every destination its rules name.
    pub async fn source(
        &self,
        secret: &SecretRef,
        region: Option<&str>,
        job: Job,
        known: Known<'_>,
    ) -> SourceResult {
        let config = self.config;
        // Skip, before reading, secrets no rule could want (the function may not even be allowed
        // to read them): by the name the event gives, or, for an ARN of unknown shape (a
        // RotationSucceeded, a tag event given an ARN), by every name it may stand for.
        let candidates = match &secret.name {
            Some(name) => vec![name.clone()],
            None => crate::arn::possible_secret_names(&secret.id),
        };
        if !candidates.is_empty() {
            if !candidates.iter().any(|n| config.matches_any(n)) {
                return skip(&secret.id, SkipReason::NoMatchingRule);
            }
            // A tag event for a secret whose destinations copy no metadata and whose rules do not
            // select by tag: nothing to read.
            let tag_work = |name: &String| {
                config.rules.iter().any(|r| r.matches(name) && r.has_tags())
                    || wants(config, name, copies_metadata)
            };
            if !job.value() && !candidates.iter().any(tag_work) {
                return skip(&secret.id, SkipReason::TagSyncOff);
            }
        }
        let source_store = self.stores.own(region);
        let mut outcomes = Vec::new();
        let mut id = secret.id.clone();
        let mut expected: Option<String> = None;
        for round in 1..=MAX_ROUNDS {
            let change = if round == 1 { known.change } else { None };
            let current = match self
                .read(&source_store, &id, secret, expected.as_deref(), change)
                .await
            {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(done) => return done,
            };
            id = current.arn.clone();
            let mut source = source_of(&current.arn, &current.name, region);
            let needs_tags = known.tags.is_none()
                && config
                    .rules
                    .iter()
                    .any(|r| r.matches(&source.name) && r.has_tags());
            let needs_meta = wants(config, &source.name, copies_metadata)
                && (job.metadata() || job.mode != Mode::Plan);
            let meta = if needs_tags || needs_meta {
                match source_store.describe(&current.arn).await {
                    Ok(d) => d.map(|d| SourceMeta::of(&d)),
                    Err(error) => {
                        return SourceResult::Failed {
                            source: secret.id.clone(),
                            error,
                        };
                    }
                }
            } else {
                None
            };
            source.tags = known
                .tags
                .map(<[_]>::to_vec)
                .or_else(|| meta.as_ref().map(|m| m.tags.clone()));
            // After a write the listing is out of date: later rounds look again.
            let absent = if round == 1 { known.absent } else { None };
            outcomes = self
                .version(&source, &current, meta.as_ref(), job, known.only, absent)
                .await;
            let wrote = job.mode != Mode::Plan
                && outcomes
                    .iter()
                    .any(|o| o.status == Status::Replicated && o.version_id.is_some());
            if !wrote || round == MAX_ROUNDS {
                break;
            }
            // Events arrive late and concurrently: if the source moved while we wrote, the copy
            // must follow it now, not when (or if) the next event arrives.
            match self.moved(&source_store, &current).await {
                Some(next) => {
                    tracing::info!(source = %current.name, round, "source version moved during replication; going again");
                    expected = Some(next);
                }
                None => break,
            }
        }
        SourceResult::Outcomes(outcomes)
    }

    /// Reads the source's current value. `expected`: the version a re-read said is current now
    /// (a later round); a read that does not show it yet is stale and read again, bounded.
    /// `change`: what the event says (first round only): the stale-read guard and the young
    /// CreateSecret's re-reads (SPEC §5). `Ok(None)` ends the rounds.
    async fn read(
        &self,
        store: &S::Store,
        id: &str,
        secret: &SecretRef,
        expected: Option<&str>,
        change: Option<&Change>,
    ) -> Result<Option<CurrentValue>, SourceResult> {
        let now = std::time::SystemTime::now();
        let guard = change.and_then(|c| c.guard(now));
        let young_create = change.is_some_and(|c| c.young_create(now));
        let failed = |error| SourceResult::Failed {
            source: secret.id.clone(),
            error,
        };
        let mut stale = 0;
        let mut unseen = 0;
        loop {
            let current = match store.current_value(id).await {
                Ok(c) => c,
                Err(e) if e.is_aws("ResourceNotFoundException") => {
                    // Right after CreateSecret the secret, or its first version, may not be
                    // readable yet (reads are eventually consistent): look again before
                    // calling it missing or valueless.
                    if young_create && let Some(wait) = YOUNG_CREATE_BACKOFF.get(unseen) {
                        unseen += 1;
                        tokio::time::sleep(*wait).await;
                        continue;
                    }
                    return Err(self.missing(store, secret, e).await);
                }
                // Secrets Manager refuses to read a secret scheduled for deletion: nothing to copy.
                Err(e) if e.is_aws("InvalidRequestException") => {
                    return Err(skip(&secret.id, SkipReason::SourceDeleted));
                }
                Err(error) => return Err(failed(error)),
            };
            if let Some(want) = expected
                && current.version_id != want
            {
                stale += 1;
                if stale > STALE_READS {
                    tracing::warn!(source = %current.name, "the source read keeps answering an older version than its description; stopping");
                    return Ok(None);
                }
                stale_backoff(stale).await;
                continue;
            }
            let Some(token) = guard.filter(|t| *t != current.version_id) else {
                // No guard, or the read shows the event's version: fresh, no extra call.
                return Ok(Some(current));
            };
            // The read does not show the event's version: either it is stale, or the source
            // moved on since (a later write, a rollback). The version itself tells which.
            match store.version(&current.arn, token).await {
                // It holds AWSCURRENT: the first read was stale; copy the event's version.
                Ok(Some(v)) if v.current => return Ok(Some(v.value)),
                // It exists without AWSCURRENT: the source moved on; copy what is current.
                Ok(Some(_)) => return Ok(Some(current)),
                // Not visible yet: the read is stale. Never copy the older value as current.
                Ok(None) => {
                    stale += 1;
                    if stale > STALE_READS {
                        return Err(failed(Error::Inconsistent(format!(
                            "{}: the source does not show the event's version yet; retry later",
                            secret.id
                        ))));
                    }
                    stale_backoff(stale).await;
                }
                Err(error) => return Err(failed(error)),
            }
        }
    }

    /// GetSecretValue said ResourceNotFoundException: a secret that exists without a current
    /// value (created without one) is skipped (`no_value`); a missing one is SourceNotFound.
    async fn missing(&self, store: &S::Store, secret: &SecretRef, e: Error) -> SourceResult {
        match store.describe(&secret.id).await {
            Ok(Some(d)) if !d.deleted && d.current_version.is_none() => {
                skip(&d.arn, SkipReason::NoValue)
            }
            Ok(Some(d)) if d.deleted => skip(&d.arn, SkipReason::SourceDeleted),
            _ => SourceResult::Failed {
                source: secret.id.clone(),
                error: Error::SourceNotFound(match e.aws() {
                    Some(a) => format!("{}: {}", secret.id, a.message),
                    None => secret.id.clone(),
                }),
            },
        }
    }

    /// Re-reads the source's version after a write (SPEC §5). `Some(version)`: it moved (a newer
    /// version, or a rollback to an older one, holds AWSCURRENT). A re-read that does not list
    /// the version just read at all is stale: read again after a backoff, bounded, and never
    /// take it as a move.
    async fn moved(&self, store: &S::Store, read: &CurrentValue) -> Option<String> {
        for n in 0..=STALE_READS {
            if n > 0 {
                stale_backoff(n).await;
            }
            let d = match store.describe(&read.arn).await {
                Ok(Some(d)) => d,
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(source = %read.name, error = %e, "could not re-read the source version");
                    return None;
                }
            };
            let listed = d.version_ids.contains(&read.version_id);
            match d.current_version {
                Some(c) if c == read.version_id => return None,
                Some(c) if listed => return Some(c),
                _ => continue,
            }
        }
        tracing::warn!(source = %read.name, "the source's description does not show the version just read; not going again");
        None
    }

    /// Writes one source version to all its destinations. Every transform and token first
    /// (pure), then every destination observed and decided, then the plans executed.
    async fn version(
        &self,
        source: &Source,
        current: &CurrentValue,
        meta: Option<&SourceMeta>,
        job: Job,
        only: Option<&std::collections::HashSet<DestinationRef>>,
        absent: Option<&std::collections::HashSet<DestinationRef>>,
    ) -> Vec<Outcome> {
        let is_replica = token::is_replicator_token(&current.version_id);
        let mut planned = rules::plan(self.config, source, is_replica, rules::Tags::Filter);
        if let Some(only) = only {
            planned.retain(|p| match p {
                Planned::Write(t) => only.contains(&t.at),
                Planned::Done(_) => false,
            });
            if planned.is_empty() {
                return Vec::new();
            }
        }
        if planned.is_empty() {
            return vec![Outcome::skipped(
                &source.arn,
                None,
                SkipReason::NoMatchingRule,
            )];
        }
        let all_replica_skips = planned
            .iter()
            .all(|p| matches!(p, Planned::Done(o) if o.reason == Some(SkipReason::Replica)));
        if all_replica_skips {
            // A replica's own events: one skip, no destination (SPEC §7).
            return vec![Outcome::skipped(&source.arn, None, SkipReason::Replica)];
        }
        let prepared: Vec<Result<Prepared<'_>, Box<Outcome>>> = planned
            .into_iter()
            .map(|p| match p {
                Planned::Done(o) => Err(o),
                Planned::Write(target) => prepare(source, current, meta, *target, job),
            })
            .collect();
        let decided = futures::future::join_all(prepared.into_iter().map(|p| async move {
            match p {
                Ok(p) => {
                    let listed_absent = absent.is_some_and(|a| a.contains(&p.target.at));
                    self.decide(p, listed_absent).await
                }
                Err(o) => Err(*o),
            }
        }))
        .await;
        let outcomes = decided.into_iter().map(|d| async move {
            match d {
                Ok(d) => self.execute(source, d).await,
                Err(o) => o,
            }
        });
        futures::future::join_all(outcomes).await
    }

    /// Observe and decide one destination. `listed_absent`: a listing just showed it missing.
    async fn decide<'p>(
        &self,
        p: Prepared<'p>,
        listed_absent: bool,
    ) -> Result<Decided<'p, S::Store>, Outcome> {
        let started = Instant::now();
        let store = match self
            .stores
            .destination(&p.target.at.region, p.target.dest.role.as_ref())
            .await
        {
            Ok(s) => s,
            Err(e) => return Err(p.failed(started, Action::None, &e)),
        };
        let want = p.want();
        let trusted = self.state.is_owned(&p.target.at);
        let state = if listed_absent && p.job.mode != Mode::Plan && !trusted {
            DestState::new(Seen::Absent)
        } else {
            match observe::observe(&store, &want, p.job, trusted, Learned::default()).await {
                Ok(s) => s,
                Err((action, e)) => return Err(p.failed(started, action, &e)),
            }
        };
        let plan = match decide::decide(&state, &want, p.job) {
            Ok(plan) => plan,
            Err(e) => {
                let action = if p.job.value() {
                    Action::None
                } else {
                    Action::Tags
                };
                return Err(p.failed(started, action, &e));
            }
        };
        Ok(Decided {
            p,
            store,
            state,
            plan,
            started,
        })
    }

    /// Runs one destination's plan; after a race, observes once more and decides again.
    async fn execute(&self, source: &Source, d: Decided<'_, S::Store>) -> Outcome {
        let Decided {
            p,
            store,
            mut state,
            mut plan,
            started,
        } = d;
        let want = p.want();
        // `wrote`: a step that makes this source version current in the destination (create,
        // put, label) succeeded; the outcome then carries the replication lag.
        let done = |status, action, version: Option<String>, plan: &Plan, wrote: bool| {
            let mut o = Outcome {
                version_id: version,
                bytes: Some(p.value.len()),
                reason: plan.reason,
                lag_ms: if wrote { p.lag_ms() } else { None },
                ..Outcome::ok(&source.arn, Some(p.target.at.clone()), status, action)
            };
            if p.job.mode == Mode::Plan {
                o.size = Some(p.value.len());
                o.would_change = Some(plan.changes());
            }
            p.finish(o, started)
        };
        if p.job.mode == Mode::Plan || !plan.changes() {
            if plan.status != Status::Skipped && p.job.mode != Mode::Plan {
                self.state.set_owned(&p.target.at, true);
            }
            return done(
                plan.status,
                plan.action,
                current_version(&state),
                &plan,
                false,
            );
        }
        let exec = Executor {
            store: &store,
            state: self.state,
            at: &p.target.at,
            want: &want,
            create: &p.create,
            retry: self.retry,
        };
        // What the steps that ran did, over every round.
        let (mut did, mut restored, mut wrote) = (Action::None, false, false);
        let status = |did: Action, restored: bool| {
            if restored {
                Status::Restored
            } else if did == Action::None {
                Status::Unchanged
            } else {
                Status::Replicated
            }
        };
        for race in 0..=MAX_RACES {
            let (completed, learned, observe, denied) = match exec.run(&plan, state.learned).await {
                Ok(Ran::Done { version }) => {
                    self.state.set_owned(&p.target.at, true);
                    did = did.max(plan.action_upto(plan.steps.len()));
                    restored |= plan.restores_upto(plan.steps.len());
                    // `version` is set when a value step ran (`Ran::Done`).
                    wrote |= version.is_some();
                    let version = version.or_else(|| current_version(&state));
                    return done(status(did, restored), did, version, &plan, wrote);
                }
                Ok(Ran::Raced {
                    completed,
                    learned,
                    observe,
                }) => (completed, learned, observe, None),
                Ok(Ran::Denied {
                    completed,
                    learned,
                    action,
                    error,
                }) => (completed, learned, true, Some((action, error))),
                Err((a, e)) => return p.failed(started, a, &e),
            };
            did = did.max(plan.action_upto(completed));
            restored |= plan.restores_upto(completed);
            wrote |= plan.steps[..completed.min(plan.steps.len())]
                .iter()
                .any(|s| matches!(s, Step::Create | Step::Put { .. } | Step::Label { .. }));
            // A create or a label move whose answer was lost (or that another
            // invocation made at once) counts when the destination shows its effect.
            let raced_step = plan.steps.get(completed).cloned();
            if race == MAX_RACES {
                break;
            }
            if observe {
                // A race that repeats may be a stale read: give it a moment.
                if race > 0 {
                    stale_backoff(race).await;
                }
                match self.observe_again(&store, &want, p.job, learned).await {
                    Ok(s) => state = s,
                    Err((a, e)) => return p.failed(started, did.max(a), &e),
                }
            } else {
                state.learned = learned;
            }
            plan = match decide::decide(&state, &want, p.job) {
                Ok(next) => next,
                Err(e) => return p.failed(started, did, &e),
            };
            // A denied write to a destination that is still ours (not absent: nothing to
            // create) is reported as it was denied, without writing again (SPEC §11).
            if let Some((action, error)) = denied
                && plan.changes()
                && !plan.steps.iter().any(|s| matches!(s, Step::Create))
            {
                return p.failed(started, did.max(action), &error);
            }
            if !plan.changes() {
                self.state.set_owned(&p.target.at, true);
                let version = current_version(&state);
                if version.as_deref() == Some(want.token)
                    && let Some(step @ (Step::Create | Step::Label { .. })) = raced_step
                {
                    did = did.max(step.action());
                    wrote = true;
                }
                return done(status(did, restored), did, version, &plan, wrote);
            }
        }
        let last = plan.steps.first().map(|s| s.action()).unwrap_or(did);
        let e = Error::Inconsistent(format!(
            "{}: the destination kept changing under this write ({MAX_RACES} rounds); retry later",
            p.target.at.name
        ));
        p.failed(started, last, &e)
    }

    /// Looks at a destination again after a race. An answer that contradicts what AWS just said
    /// (not found right after "exists", or after a write it accepted) is eventual consistency:
    /// read again after a short backoff; if it persists, the destination fails retriable (502).
    async fn observe_again(
        &self,
        store: &S::Store,
        want: &Want<'_>,
        job: Job,
        learned: Learned,
    ) -> Result<DestState, (Action, Error)> {
        for n in 0..=STALE_READS {
            if n > 0 {
                stale_backoff(n).await;
            }
            let state = observe::observe(store, want, job, false, learned).await?;
            if !(learned.exists && state.seen == Seen::Absent) {
                return Ok(state);
            }
        }
        Err((
            Action::None,
            Error::Inconsistent(format!(
                "Secrets Manager reported {} as existing, then not found; retry later",
                want.name
            )),
        ))
    }
}

fn current_version(state: &DestState) -> Option<String> {
    match &state.seen {
        Seen::Present(d) => d.current_version.clone(),
        _ => None,
    }
}

fn skip(source: &str, reason: SkipReason) -> SourceResult {
    SourceResult::Outcomes(vec![Outcome::skipped(source, None, reason)])
}

/// The source as read, with its region and account from its ARN.
pub fn source_of(arn: &str, name: &str, region: Option<&str>) -> Source {
    Source {
        region: crate::arn::region(arn)
            .or(region)
            .unwrap_or_default()
            .to_string(),
        account: crate::arn::account(arn).unwrap_or_default().to_string(),
        arn: arn.to_string(),
        name: name.to_string(),
        tags: None,
    }
}

#[cfg(test)]
mod tests;
