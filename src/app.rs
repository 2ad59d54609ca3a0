//! The handler: payload → request → per-source replication → result document. Everything
//! expensive (configuration, compiled transforms, SDK clients, credentials) is built once in
//! `App::new` and shared by every invocation of the container.

use crate::config::{self, Config, ConfigSource, Settings, TextFetcher};
use crate::event::SecretRef;
use crate::event::{self, Identity, Invocation, Work};
use crate::metrics::Metrics;
use crate::outcome::{Error, Outcome, Report};
use crate::replicate::{self, Job, Mode, Shared, SourceResult};
use crate::secret::SecretValue;
use crate::store::{SecretStore, Stores};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::RwLock;

/// A failed invocation: Lambda reports `errorType` = the first failure's kind and
/// `errorMessage` = the document.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.to_json())]
pub struct Failure(pub Report);

impl From<Failure> for lambda_runtime::Diagnostic {
    fn from(f: Failure) -> Self {
        lambda_runtime::Diagnostic {
            error_type: f
                .0
                .first_failure()
                .map(|k| k.as_str())
                .unwrap_or("Error")
                .to_string(),
            error_message: f.0.to_json(),
        }
    }
}

/// Reads secret text with the function's own credentials (config secret, `secret:` transforms).
pub struct OwnSecrets<'a, S: Stores>(pub &'a S);

impl<S: Stores> TextFetcher for OwnSecrets<'_, S> {
    async fn fetch_text(&self, id: &str) -> Result<String, Error> {
        // Boxed: the SDK's futures are deep, and this sits under the configuration loader's.
        let store = self.0.own(None);
        match Box::pin(store.current_value(id)).await?.value {
            SecretValue::String(s) => Ok(s),
            SecretValue::Binary(b) => String::from_utf8(b)
                .map_err(|_| Error::InvalidConfig(format!("secret {id}: not UTF-8 text"))),
        }
    }
}

struct Loaded {
    config: Arc<Config>,
    at: Instant,
}

/// Everything an invocation needs, built once per container.
pub struct App<S: Stores> {
    settings: Settings,
    identity: Identity,
    stores: S,
    shared: Shared,
    config: RwLock<Loaded>,
    metrics: Metrics,
}

impl<S: Stores> App<S> {
    /// Loads and validates the configuration (every transform compiled) and keeps the clients.
    pub async fn new(settings: Settings, stores: S, metrics: Metrics) -> Result<Self, Error> {
        let config = config::load(&settings, &OwnSecrets(&stores)).await?;
        Ok(App {
            identity: Identity {
                function_name: settings.function_name.clone(),
                role_arn: settings.role_arn.clone(),
            },
            shared: Shared::new(settings.write_tps),
            config: RwLock::new(Loaded {
                config: Arc::new(config),
                at: Instant::now(),
            }),
            settings,
            stores,
            metrics,
        })
    }

    /// The configuration. One that reads secrets (`REPLICATOR_CONFIG_SECRET`, `secret:`
    /// transforms) is re-read once its TTL has passed; a reload that fails keeps the last good
    /// configuration.
    async fn config(&self) -> Arc<Config> {
        let ttl = self.settings.config_ttl;
        {
            let loaded = self.config.read().await;
            let reads_secrets = matches!(self.settings.source, ConfigSource::Secret { .. })
                || loaded.config.reads_secrets;
            if !reads_secrets || loaded.at.elapsed() < ttl {
                return loaded.config.clone();
            }
        }
        let mut loaded = self.config.write().await;
        if loaded.at.elapsed() >= ttl {
            match config::load(&self.settings, &OwnSecrets(&self.stores)).await {
                Ok(c) => loaded.config = Arc::new(c),
                Err(e) => {
                    tracing::error!(error = %e, "configuration reload failed; keeping the last good configuration");
                    self.metrics.config_reload_failed();
                }
            }
            loaded.at = Instant::now();
        }
        loaded.config.clone()
    }

    /// Handles one invocation payload.
    pub async fn handle(&self, payload: &Value) -> Result<Report, Failure> {
        self.handle_until(payload, None).await
    }

    /// Handles one invocation payload; long work (`all`) stops starting new secrets before
    /// `deadline` and lists what it did not reach in `remaining`.
    pub async fn handle_until(
        &self,
        payload: &Value,
        deadline: Option<Instant>,
    ) -> Result<Report, Failure> {
        let request = match event::parse(payload, &self.identity) {
            Ok(r) => r,
            Err(e) => return finish(invocation_of(payload), Report::top_level(&e)),
        };
        let region = request
            .region
            .as_deref()
            .or(self.settings.region.as_deref());
        let report = match &request.work {
            Work::Skip { source, reason } => {
                tracing::info!(source = %source, reason, "skipped");
                Report::from_results(vec![Outcome::skipped(source, None, reason)], vec![])
            }
            Work::Replicate(secrets) => {
                let config = self.config().await;
                let job = Job {
                    mode: mode(&request),
                    ..Job::VALUE
                };
                let runs = secrets.iter().map(|s| {
                    // Boxed: the SDK's futures are deep; boxing keeps each one's layout apart.
                    Box::pin(replicate::replicate_source(
                        &self.stores,
                        &self.shared,
                        &config,
                        s,
                        region,
                        job,
                    ))
                });
                let results = futures::future::join_all(runs).await;
                report_of(results, secrets.len())
            }
            Work::ReplicateWithMetadata(secret) | Work::SyncTags(secret) => {
                let config = self.config().await;
                let job = Job {
                    mode: mode(&request),
                    value: matches!(request.work, Work::ReplicateWithMetadata(_)),
                    metadata: true,
                };
                let result = Box::pin(replicate::replicate_source(
                    &self.stores,
                    &self.shared,
                    &config,
                    secret,
                    region,
                    job,
                ))
                .await;
                report_of(vec![result], 1)
            }
            Work::Delete(secret) => {
                let config = self.config().await;
                let result = Box::pin(replicate::delete_source(
                    &self.stores,
                    &self.shared,
                    &config,
                    secret,
                    region,
                    request.account.as_deref(),
                    request.dry_run,
                ))
                .await;
                report_of(vec![result], 1)
            }
            Work::All => {
                let config = self.config().await;
                Box::pin(self.all(&config, region, deadline, request.dry_run)).await
            }
        };
        self.metrics.emit(&report, self.stores.take_throttled());
        finish(request.invocation, report)
    }
}

fn mode(request: &event::Request) -> Mode {
    if request.dry_run {
        Mode::Plan
    } else {
        Mode::Write
    }
}

/// Secrets read at once by `all` (writes are paced by the rate limiter).
pub const ALL_CONCURRENCY: usize = 8;

impl<S: Stores> App<S> {
    /// Every source secret some rule matches (ListSecrets), replicas (marker tag) and secrets
    /// scheduled for deletion left out; each destination compared first and written only where
    /// it differs. Stops starting new secrets at the deadline minus max(1 s, 10% of the time
    /// left at the start), so that it answers in time; the rest goes to `remaining`.
    async fn all(
        &self,
        config: &Config,
        region: Option<&str>,
        deadline: Option<Instant>,
        dry_run: bool,
    ) -> Report {
        use futures::StreamExt;
        let started = Instant::now();
        let cutoff = deadline.map(|d| {
            let left = d.saturating_duration_since(started);
            d.checked_sub(std::cmp::max(std::time::Duration::from_secs(1), left / 10))
                .unwrap_or(started)
        });
        let listed = match self.stores.own(region).list().await {
            Ok(l) => l,
            Err(e) => return Report::top_level(&e),
        };
        let candidates: Vec<_> = listed
            .into_iter()
            .filter(|s| {
                !s.deleted
                    && !s.tags.iter().any(|(k, _)| k == replicate::MARKER_TAG)
                    && config.matches_any(&s.name)
            })
            .collect();
        let job = Job {
            mode: if dry_run { Mode::Plan } else { Mode::Compare },
            value: true,
            metadata: true,
        };
        let runs = futures::stream::iter(candidates).map(|s| async move {
            if cutoff.is_some_and(|c| Instant::now() >= c) {
                return Err(s.name);
            }
            let secret = SecretRef {
                id: s.arn,
                name: Some(s.name),
            };
            Ok(Box::pin(replicate::replicate_source(
                &self.stores,
                &self.shared,
                config,
                &secret,
                region,
                job,
            ))
            .await)
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
                "all: stopped before the deadline; the next run picks up the rest"
            );
        }
        let mut report = report_of(results, usize::MAX);
        report.remaining = remaining;
        report
    }
}

fn report_of(results: Vec<SourceResult>, sources: usize) -> Report {
    let mut outcomes = Vec::new();
    for r in results {
        match r {
            SourceResult::Outcomes(o) => outcomes.extend(o),
            // One source that cannot be read is a top-level failure; in a list, its own line.
            SourceResult::Failed { error, .. } if sources == 1 => {
                tracing::warn!(error = %error, "source read failed");
                return Report::top_level(&error);
            }
            SourceResult::Failed { source, error } => {
                tracing::warn!(source = %source, error = %error, "source read failed");
                outcomes.push(Outcome::failed(
                    source,
                    None,
                    crate::outcome::Action::None,
                    &error,
                ));
            }
        }
    }
    Report::from_results(outcomes, vec![])
}

fn finish(invocation: Invocation, report: Report) -> Result<Report, Failure> {
    if invocation.fails_on_error() && report.first_failure().is_some() {
        Err(Failure(report))
    } else {
        Ok(report)
    }
}

/// The answer of a container whose configuration is invalid: every invocation gets the
/// InvalidConfig document (an error for events and `failOnError`, the document otherwise), so
/// the caller sees why instead of a bare timeout.
pub fn invalid_config(error: &Error, payload: &Value) -> Result<Report, Failure> {
    finish(invocation_of(payload), Report::top_level(error))
}

/// How a payload that could not be parsed (or not served) was invoked: a manual payload that
/// asks for `failOnError` fails like an event even when the rest of it is wrong.
fn invocation_of(payload: &Value) -> Invocation {
    if event::is_manual(payload) {
        Invocation::Manual {
            fail_on_error: payload.get("failOnError").and_then(Value::as_bool) == Some(true),
        }
    } else {
        Invocation::Event
    }
}
