//! Deletion sync (SPEC §5 DeleteSecret): owned destinations of rules with `delete_with_source`
//! converge to the source's state at processing time. A source that is live again is replicated
//! (which restores owned destinations); a source scheduled for deletion schedules its replicas
//! with the remaining window; a source already gone (a forced delete) maps to 7 days, never to a
//! forced delete of a replica. Ownership is checked fresh, right before any delete, and rules'
//! `tags` are ignored: ownership decides.

use super::decide::{self, DeletePlan, Seen};
use super::{Job, Known, Mode, Replicator, SourceResult, log_outcome, source_of, wants};
use crate::event::{DeletionWindow, SecretRef};
use crate::outcome::{Action, Error, Outcome, SkipReason, Status};
use crate::rules::{self, Planned, Source, Target};
use crate::store::{ManageSecrets, ReadSecrets, Stores};
use std::time::{Instant, SystemTime};

impl<S: Stores> Replicator<'_, S> {
    /// Converges the destinations of a source whose deletion an event reported.
    pub async fn delete(
        &self,
        secret: &SecretRef,
        region: Option<&str>,
        account: Option<&str>,
        window: DeletionWindow,
        plan: bool,
    ) -> SourceResult {
        let config = self.config;
        // Nothing to do, and nothing to read, when no destination of this name follows deletions.
        if let Some(name) = &secret.name
            && !wants(config, name, |d| d.delete_with_source)
        {
            return SourceResult::Outcomes(vec![Outcome::skipped(
                &secret.id,
                None,
                SkipReason::DeleteSyncOff,
            )]);
        }
        let source_store = self.stores.own(region);
        let described = match source_store.describe(&secret.id).await {
            Ok(d) => d,
            Err(error) => {
                return SourceResult::Failed {
                    source: secret.id.clone(),
                    error,
                };
            }
        };
        let (arn, name, days) = match &described {
            Some(d) if !d.deleted => {
                // Restored (or never deleted) by the time we look: the copy follows the live
                // source.
                let job = Job {
                    mode: if plan { Mode::Plan } else { Mode::Write },
                    ..Job::VALUE
                };
                return Box::pin(self.source(secret, region, job, Known::default())).await;
            }
            Some(d) => (
                d.arn.clone(),
                d.name.clone(),
                window.days(SystemTime::now()),
            ),
            None => match &secret.name {
                Some(n) => (
                    secret.id.clone(),
                    n.clone(),
                    DeletionWindow::Forced.days(SystemTime::now()),
                ),
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
                SkipReason::NoMatchingRule,
            )]);
        }
        let mut source = source_of(&arn, &name, region);
        if source.account.is_empty() {
            source.account = account.unwrap_or_default().to_string();
        }
        let planned = rules::plan(config, &source, false, rules::Tags::Ignore);
        let work = planned.into_iter().map(|p| {
            let source = &source;
            async move {
                match p {
                    Planned::Done(o) => *o,
                    Planned::Write(t) if !t.dest.delete_with_source => {
                        Outcome::skipped(&source.arn, Some(t.at.clone()), SkipReason::DeleteSyncOff)
                    }
                    Planned::Write(t) => {
                        let started = Instant::now();
                        let mut o = self.delete_destination(source, &t, days, plan).await;
                        o.duration_ms = Some(started.elapsed().as_millis() as u64);
                        log_outcome(&source.name, &o);
                        o
                    }
                }
            }
        });
        SourceResult::Outcomes(futures::future::join_all(work).await)
    }

    async fn delete_destination(
        &self,
        source: &Source,
        t: &Target<'_>,
        days: i64,
        plan: bool,
    ) -> Outcome {
        let at = Some(t.at.clone());
        let fail = |action, e: Error| Outcome::failed(&source.arn, at.clone(), action, &e);
        let store = match self
            .stores
            .destination(&t.at.region, t.dest.role.as_ref())
            .await
        {
            Ok(s) => s,
            Err(e) => return fail(Action::Delete, e),
        };
        // Fresh, right before the delete: never delete what this source does not own.
        let seen = match store.describe(&t.at.name).await {
            Ok(Some(d)) => Seen::Present(Box::new(d)),
            Ok(None) => Seen::Absent,
            Err(e) => return fail(Action::Delete, e),
        };
        let marker = crate::token::marker_value(&source.account, &source.region, &source.name);
        match decide::decide_delete(&seen, &marker, plan) {
            DeletePlan::Skip(reason) => Outcome::skipped(&source.arn, at, reason),
            DeletePlan::Unchanged => Outcome::ok(&source.arn, at, Status::Unchanged, Action::None),
            DeletePlan::Planned => Outcome {
                would_change: Some(true),
                ..Outcome::ok(&source.arn, at, Status::Planned, Action::Delete)
            },
            DeletePlan::Delete => {
                let delete = || store.delete(&t.at.name, days);
                match super::execute::paced(self.state, &t.at, self.retry, delete).await {
                    Ok(()) => {
                        self.state.set_owned(&t.at, false);
                        Outcome::ok(&source.arn, at, Status::Deleted, Action::Delete)
                    }
                    Err(e) => fail(Action::Delete, e),
                }
            }
        }
    }
}
