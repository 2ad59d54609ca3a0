//! The manual `all` run (SPEC §6): every source secret some rule matches, each destination
//! compared first and written only where it differs; it stops starting new sources before the
//! deadline and lists what it did not reach in `remaining`.

use super::{Job, Known, MARKER_TAG, Mode, Replicator, Scope, SourceResult};
use crate::event::SecretRef;
use crate::store::{ReadSecrets, Stores};
use futures::StreamExt;
use std::time::{Duration, Instant};

/// Sources read at once (writes are paced by the write budget).
pub const ALL_CONCURRENCY: usize = 8;

/// What an `all` run did.
#[derive(Debug)]
pub struct Backfill {
    pub results: Vec<SourceResult>,
    /// Names not reached before the deadline, in order.
    pub remaining: Vec<String>,
}

impl<S: Stores> Replicator<'_, S> {
    /// Every matched source secret (ListSecrets), replicas (marker tag) and secrets scheduled
    /// for deletion left out, in ascending byte order of name. Stops starting new secrets at the
    /// deadline minus max(1 s, 10% of the time left at the start).
    pub async fn all(
        &self,
        region: Option<&str>,
        deadline: Option<Instant>,
        dry_run: bool,
    ) -> Result<Backfill, crate::outcome::Error> {
        let started = Instant::now();
        let cutoff = deadline.map(|d| {
            let left = d.saturating_duration_since(started);
            d.checked_sub(std::cmp::max(Duration::from_secs(1), left / 10))
                .unwrap_or(started)
        });
        let listed = self.stores.own(region).list().await?;
        let mut candidates: Vec<_> = listed
            .into_iter()
            .filter(|s| {
                !s.deleted
                    && !s.tags.iter().any(|(k, _)| k == MARKER_TAG)
                    && self.config.matches_any(&s.name)
            })
            .collect();
        candidates.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let job = Job {
            mode: if dry_run { Mode::Plan } else { Mode::Compare },
            scope: Scope::Both,
        };
        let runs = futures::stream::iter(candidates).map(|s| async move {
            if cutoff.is_some_and(|c| Instant::now() >= c) {
                return Err(s.name);
            }
            let tags = s.tags;
            let secret = SecretRef {
                id: s.arn,
                name: Some(s.name),
            };
            let known = Known { tags: Some(&tags) };
            Ok(Box::pin(self.source(&secret, region, job, known)).await)
        });
        let done: Vec<Result<SourceResult, String>> =
            runs.buffered(ALL_CONCURRENCY).collect().await;
        let mut results = Vec::new();
        let mut remaining = Vec::new();
        for d in done {
            match d {
                Ok(r) => results.push(r),
                Err(name) => remaining.push(name),
            }
        }
        if !remaining.is_empty() {
            tracing::warn!(
                remaining = remaining.len(),
                "all: stopped before the deadline; the rest is listed in remaining"
            );
        }
        Ok(Backfill { results, remaining })
    }
}
