//! The manual `all` run (SPEC §6): backfill and repair by listing. The sources are listed once
//! (with those scheduled for deletion) and every destination (account, region) once, filtered on
//! the marker tag key; a source is read and its destinations written only where the listings
//! disagree with what the configuration asks (a destination missing, its AWSCURRENT not the
//! expected token, its key, tags, description or deletion state off). A no-op run over N sources
//! holding R replicas costs about (N + R) / 100 calls.
//!
//! Sources are processed in ascending byte order of name, from a starting name (a continuation's
//! cursor); the run stops starting new sources at the cutoff (or after its work limit), drops
//! what is still in flight at the abandon point, and lists what it did not finish.

use super::decide::{MARKER_TAG, is_managed_key, key_matches, user_tags};
use super::{Job, Known, Mode, Replicator, Scope, SourceResult, source_of};
use crate::config::Role;
use crate::event::{DeletionWindow, SecretRef};
use crate::outcome::{Action, DestinationRef, Error, Outcome, SkipReason, Status};
use crate::rules::{self, Planned};
use crate::store::{KeyInfo, ListFilter, Listed, ReadSecrets, ResolveKeys, Stores};
use crate::token;
use futures::StreamExt;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

/// Sources worked on at once (writes are paced by the write budget).
pub const ALL_CONCURRENCY: usize = 8;

/// Where an `all` run stops (none of them: it runs to the end, as the command line does).
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// No source starts from here on.
    pub cutoff: Option<Instant>,
    /// Listings and sources still in flight are dropped here (SPEC §11: every in-flight call
    /// is bounded by the deadline).
    pub abandon: Option<Instant>,
    /// The most sources the run starts (`REPLICATOR_LINK_SOURCES`); the rest remain.
    pub sources: Option<usize>,
}

/// `work`'s output, or `None` when `by` came first (the work is dropped, cancelling its calls).
async fn until<F: std::future::Future>(by: Option<Instant>, work: F) -> Option<F::Output> {
    match by {
        Some(by) => tokio::time::timeout_at(tokio::time::Instant::from_std(by), work)
            .await
            .ok(),
        None => Some(work.await),
    }
}

/// A call dropped at the abandon point: a timeout (retriable), answered before the deadline.
fn abandoned(service: &'static str, operation: &'static str) -> Error {
    Error::Aws(crate::outcome::AwsError {
        kind: crate::outcome::ErrorKind::Timeout,
        service,
        operation,
        code: "Timeout".into(),
        message: "still in flight at the invocation's deadline; abandoned".into(),
    })
}

/// What an `all` run did.
#[derive(Debug)]
pub struct Backfill {
    pub results: Vec<SourceResult>,
    /// Names not reached before the cutoff, in order.
    pub remaining: Vec<String>,
}

/// One destination (account, region) as its listing shows it: the replicas by name.
#[derive(Debug, Default)]
struct DestListing {
    by_name: HashMap<String, Listed>,
    /// Configured keys resolved in that account and region.
    keys: HashMap<String, KeyInfo>,
}

type DestKey = (String, String);

impl<S: Stores> Replicator<'_, S> {
    /// Every matched source secret (replicas left out unless a rule chains), compared by
    /// listing, from `start_at` on, within `limits`.
    pub async fn all(
        &self,
        region: Option<&str>,
        limits: Limits,
        dry_run: bool,
        start_at: Option<&str>,
    ) -> Result<Backfill, Error> {
        let config = self.config;
        let own = self.stores.own(region);
        let listing = own.list(ListFilter {
            include_deleted: true,
            tag_key: None,
        });
        // Without the sources' names nothing can be reported as remaining: a listing still in
        // flight at the abandon point is a timeout, answered before the deadline.
        let Some(listed) = until(limits.abandon, listing).await else {
            return Err(abandoned("secretsmanager", "ListSecrets"));
        };
        let mut sources: Vec<Listed> = listed?
            .into_iter()
            .filter(|s| {
                let chains = config.rules.iter().any(|r| r.matches(&s.name) && r.chain);
                config.matches_any(&s.name) && (s.tag(MARKER_TAG).is_none() || chains)
            })
            .filter(|s| start_at.is_none_or(|start| s.name.as_bytes() >= start.as_bytes()))
            .collect();
        sources.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        // Past the link's work limit: not started, in order after the rest.
        let deferred: Vec<String> = sources
            .split_off(limits.sources.unwrap_or(usize::MAX).min(sources.len()))
            .into_iter()
            .map(|s| s.name)
            .collect();
        let names: Vec<String> = sources.iter().map(|s| s.name.clone()).collect();
        let run_region = region
            .map(str::to_string)
            .or_else(|| {
                sources
                    .first()
                    .and_then(|s| crate::arn::region(&s.arn).map(str::to_string))
            })
            .unwrap_or_default();
        let own_account = sources
            .first()
            .and_then(|s| crate::arn::account(&s.arn))
            .unwrap_or_default()
            .to_string();
        let Some(listings) = until(
            limits.abandon,
            self.list_destinations(&run_region, &own_account),
        )
        .await
        else {
            // A destination (its listing, its AssumeRole) that does not answer in time: the
            // link reaches no source and continues with all of them.
            tracing::warn!(
                "the destinations' listing was still in flight at the deadline; every source remains"
            );
            return Ok(Backfill {
                results: Vec::new(),
                remaining: names.into_iter().chain(deferred).collect(),
            });
        };
        let listings = listings?;
        let mode = if dry_run { Mode::Plan } else { Mode::Compare };
        let cutoff = limits.cutoff;
        let mut runs = futures::stream::iter(sources)
            .map(|s| {
                let listings = &listings;
                async move {
                    if cutoff.is_some_and(|c| Instant::now() >= c) {
                        return Err(s.name);
                    }
                    Ok(Box::pin(self.repair(s, region, mode, listings)).await)
                }
            })
            .buffered(ALL_CONCURRENCY);
        let mut results = Vec::new();
        let mut remaining = Vec::new();
        // In order of name: what is done before the first source still in flight is reported;
        // from that source on, everything remains (the cursor names the first of them).
        loop {
            match until(limits.abandon, runs.next()).await {
                Some(Some(Ok(r))) => results.push(r),
                Some(Some(Err(name))) => remaining.push(name),
                Some(None) => break,
                None => {
                    let reached = results.len() + remaining.len();
                    tracing::warn!(
                        in_flight = names.len() - reached,
                        "sources still in flight at the deadline are abandoned and remain"
                    );
                    remaining.extend(names[reached..].iter().cloned());
                    break;
                }
            }
        }
        remaining.extend(deferred);
        Ok(Backfill { results, remaining })
    }

    /// Lists every destination (account, region) the configuration writes to, once, filtered
    /// on the marker tag key, and resolves the keys configured there.
    async fn list_destinations(
        &self,
        run_region: &str,
        own_account: &str,
    ) -> Result<HashMap<DestKey, DestListing>, Error> {
        let mut wanted: BTreeSet<(Option<Role>, String)> = BTreeSet::new();
        let mut keys: HashMap<(Option<Role>, String), BTreeSet<String>> = HashMap::new();
        for d in self.config.rules.iter().flat_map(|r| &r.destinations) {
            let region = d.region.clone().unwrap_or_else(|| run_region.to_string());
            wanted.insert((d.role.clone(), region.clone()));
            if let Some(k) = d.kms_key_id.as_ref().filter(|k| !is_managed_key(k)) {
                keys.entry((d.role.clone(), region))
                    .or_default()
                    .insert(k.clone());
            }
        }
        let mut out = HashMap::new();
        for (role, region) in wanted {
            let store = self.stores.destination(&region, role.as_ref()).await?;
            let listed = store
                .list(ListFilter {
                    include_deleted: true,
                    tag_key: Some(MARKER_TAG),
                })
                .await?;
            let mut listing = DestListing {
                by_name: listed.into_iter().map(|l| (l.name.clone(), l)).collect(),
                keys: HashMap::new(),
            };
            for k in keys
                .get(&(role.clone(), region.clone()))
                .into_iter()
                .flatten()
            {
                // A key that cannot be resolved leaves its destinations to the full comparison,
                // which reports the failure.
                if let Ok(info) = store.key(k).await {
                    listing.keys.insert(k.clone(), info);
                }
            }
            let account = role
                .as_ref()
                .map(|r| r.account.clone())
                .unwrap_or_else(|| own_account.to_string());
            out.insert((account, region), listing);
        }
        Ok(out)
    }

    /// One listed source: unchanged where the listings agree, read and written where not.
    async fn repair(
        &self,
        s: Listed,
        region: Option<&str>,
        mode: Mode,
        listings: &HashMap<DestKey, DestListing>,
    ) -> SourceResult {
        let secret = SecretRef {
            id: s.arn.clone(),
            name: Some(s.name.clone()),
        };
        let mut source = source_of(&s.arn, &s.name, region);
        source.tags = Some(s.tags.clone());
        if s.deleted {
            // Deletion converges only where destinations follow it and the listing shows an
            // owned copy not yet scheduled; the fresh ownership check before any delete is the
            // deletion path's own.
            let marker = token::marker_value(&source.account, &source.region, &source.name);
            let pending = rules::plan(self.config, &source, false, rules::Tags::Ignore)
                .iter()
                .any(|p| match p {
                    Planned::Write(t) => {
                        t.dest.delete_with_source
                            && listed(listings, &t.at).is_some_and(|l| {
                                l.tag(MARKER_TAG) == Some(marker.as_str()) && !l.deleted
                            })
                    }
                    Planned::Done(_) => false,
                });
            if !pending {
                return SourceResult::Outcomes(vec![Outcome::skipped(
                    &s.arn,
                    None,
                    SkipReason::SourceDeleted,
                )]);
            }
            // A listing cannot tell the remaining window: the longest (SPEC §6).
            return self
                .delete(
                    &secret,
                    region,
                    None,
                    DeletionWindow::Unknown,
                    mode == Mode::Plan,
                )
                .await;
        }
        let Some(version) = s.current_version.as_deref() else {
            return SourceResult::Outcomes(vec![Outcome::skipped(
                &s.arn,
                None,
                SkipReason::NoValue,
            )]);
        };
        let is_replica = token::is_replicator_token(version);
        let marker = token::marker_value(&source.account, &source.region, &source.name);
        let planned = rules::plan(self.config, &source, is_replica, rules::Tags::Filter);
        let mut differing = HashSet::new();
        let mut absent = HashSet::new();
        let mut in_sync = Vec::new();
        for p in &planned {
            let Planned::Write(t) = p else { continue };
            let expected = token::derive(&token::TokenInput {
                source_arn: &source.arn,
                source_version: version,
                dest_account: &t.at.account,
                dest_region: &t.at.region,
                dest_name: &t.at.name,
                transform_fingerprint: &t.dest.fingerprint,
            });
            let listing = listings.get(&(t.at.account.clone(), t.at.region.clone()));
            if listing.is_some_and(|l| !l.by_name.contains_key(&t.at.name)) {
                absent.insert(t.at.clone());
            }
            let agrees = listing
                .and_then(|l| l.by_name.get(&t.at.name).map(|d| (l, d)))
                .is_some_and(|(l, d)| {
                    let key_ok = t
                        .dest
                        .kms_key_id
                        .as_deref()
                        .is_none_or(|k| key_matches(k, l.keys.get(k), d.kms_key_id.as_deref()));
                    let tags_ok = !t.dest.copy_tags || user_tags(&d.tags) == user_tags(&s.tags);
                    let description_ok = !t.dest.copy_description
                        || d.description.as_deref().unwrap_or_default()
                            == s.description.as_deref().unwrap_or_default();
                    d.tag(MARKER_TAG) == Some(marker.as_str())
                        && !d.deleted
                        && !d.is_native_replica()
                        && d.current_version.as_deref() == Some(expected.as_str())
                        && key_ok
                        && tags_ok
                        && description_ok
                });
            if agrees {
                in_sync.push((t.at.clone(), expected));
            } else {
                differing.insert(t.at.clone());
            }
        }
        // A dry run reports every destination's transformed size: one source read (no
        // destination call) when the listing says the copies are in line.
        let mut sizes: HashMap<DestinationRef, usize> = HashMap::new();
        if mode == Mode::Plan
            && !in_sync.is_empty()
            && let Ok(current) = self.stores.own(region).current_value(&s.arn).await
        {
            for p in &planned {
                if let Planned::Write(t) = p
                    && let Ok(v) = super::prepare::transformed(t, &current.value)
                {
                    sizes.insert(t.at.clone(), v.len());
                }
            }
        }
        let unchanged = |at: DestinationRef, version: String| {
            if mode == Mode::Plan {
                Outcome {
                    would_change: Some(false),
                    version_id: Some(version),
                    size: sizes.get(&at).copied(),
                    ..Outcome::ok(&s.arn, Some(at), Status::Planned, Action::None)
                }
            } else {
                Outcome {
                    version_id: Some(version),
                    ..Outcome::ok(&s.arn, Some(at), Status::Unchanged, Action::None)
                }
            }
        };
        if differing.is_empty() {
            let mut outcomes: Vec<Outcome> = planned
                .into_iter()
                .filter_map(|p| match p {
                    Planned::Done(o) => Some(*o),
                    Planned::Write(_) => None,
                })
                .collect();
            if in_sync.is_empty() {
                // No destination to write: one skip without destination (SPEC §7).
                let reason = if !outcomes.is_empty()
                    && outcomes
                        .iter()
                        .all(|o| o.reason == Some(SkipReason::Replica))
                {
                    Some(SkipReason::Replica)
                } else if outcomes.is_empty() {
                    Some(SkipReason::NoMatchingRule)
                } else {
                    None
                };
                if let Some(reason) = reason {
                    outcomes = vec![Outcome::skipped(&s.arn, None, reason)];
                }
            }
            outcomes.extend(in_sync.into_iter().map(|(at, v)| unchanged(at, v)));
            return SourceResult::Outcomes(outcomes);
        }
        let job = Job {
            mode,
            scope: Scope::Both,
        };
        let known = Known {
            tags: Some(&s.tags),
            only: Some(&differing),
            absent: Some(&absent),
            change: None,
        };
        match self.source(&secret, region, job, known).await {
            SourceResult::Outcomes(mut o) => {
                o.extend(in_sync.into_iter().map(|(at, v)| unchanged(at, v)));
                SourceResult::Outcomes(o)
            }
            failed => failed,
        }
    }
}

fn listed<'l>(
    listings: &'l HashMap<DestKey, DestListing>,
    at: &DestinationRef,
) -> Option<&'l Listed> {
    listings
        .get(&(at.account.clone(), at.region.clone()))
        .and_then(|l| l.by_name.get(&at.name))
}
