//! The handler: payload → request → per-source replication → result document. Everything
//! expensive (configuration, compiled transforms, SDK clients, credentials) is built once, by
//! [`build`] (the composition root `main.rs` and `cli.rs` share) and `App::new`, and shared by
//! every invocation of the container.

use crate::aws::AwsStores;
use crate::config::{self, Config, TextFetcher};
use crate::event::{self, Identity, Invocation, Work};
use crate::metrics::Metrics;
use crate::outcome::{Action, Error, ErrorKind, Outcome, Report};
use crate::replicate::backfill::Backfill;
use crate::replicate::{ContainerState, Job, Known, Mode, Replicator, Scope, SourceResult};
use crate::secret::SecretValue;
use crate::settings::{ConfigSource, Settings};
use crate::store::{ReadSecrets, Stores};
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

/// The configuration as last loaded.
enum Loaded {
    Ready {
        config: Arc<Config>,
        at: Instant,
    },
    /// Never loaded: `error` says why (a read that failed retriably, tried again by the next
    /// invocation; or, after such a retry, an invalid document, read again after the TTL).
    Failed {
        error: Error,
        at: Instant,
    },
}

/// Builds the function for the process: the AWS configuration from the standard chains, the
/// clients, then the [`App`]. `Err` only for a configuration that is invalid as written.
pub async fn build(settings: Settings, metrics: Metrics) -> Result<App<AwsStores>, Error> {
    let stores = AwsStores::new(crate::aws::sdk_config().await, &settings.function_name);
    App::new(settings, stores, metrics).await
}

/// Everything an invocation needs, built once per container.
pub struct App<S: Stores> {
    settings: Settings,
    identity: Identity,
    stores: S,
    state: ContainerState,
    config: RwLock<Loaded>,
    metrics: Metrics,
}

impl<S: Stores> App<S> {
    /// Loads and validates the configuration (every transform compiled) and keeps the clients.
    /// An invalid configuration is an error (the container answers InvalidConfig); one whose
    /// secrets could not be read yet (throttled, timed out, 5xx: SPEC §10) is tried again by
    /// the next invocations, which answer the read's retriable error meanwhile.
    pub async fn new(settings: Settings, stores: S, metrics: Metrics) -> Result<Self, Error> {
        let loaded = match config::load(&settings, &OwnSecrets(&stores)).await {
            Ok(c) => Loaded::Ready {
                config: Arc::new(c),
                at: Instant::now(),
            },
            Err(e) if e.kind() == ErrorKind::InvalidConfig => return Err(e),
            Err(error) => {
                tracing::error!(error = %error, "configuration not loaded; later invocations try again");
                metrics.config_reload_failed();
                Loaded::Failed {
                    error,
                    at: Instant::now(),
                }
            }
        };
        Ok(App {
            identity: Identity {
                function_name: settings.function_name.clone(),
                role_arn: settings.role_arn.clone(),
            },
            state: ContainerState::new(settings.write_tps, settings.concurrency),
            config: RwLock::new(loaded),
            settings,
            stores,
            metrics,
        })
    }

    /// The configuration. One that reads secrets (`REPLICATOR_CONFIG_SECRET`, `secret:`
    /// transforms) is re-read once its TTL has passed; a reload that fails keeps the last good
    /// configuration. One never loaded is tried again now (a read failure), or after the TTL
    /// (an invalid document).
    async fn config(&self) -> Result<Arc<Config>, Error> {
        let ttl = self.settings.config_ttl;
        {
            let loaded = self.config.read().await;
            match &*loaded {
                Loaded::Ready { config, at } => {
                    if !(reads_secrets(&self.settings) || config.reads_secrets)
                        || at.elapsed() < ttl
                    {
                        return Ok(config.clone());
                    }
                }
                Loaded::Failed { error, at }
                    if error.kind() == ErrorKind::InvalidConfig && at.elapsed() < ttl =>
                {
                    return Err(error.clone());
                }
                Loaded::Failed { .. } => {}
            }
        }
        let mut loaded = self.config.write().await;
        let due = match &*loaded {
            Loaded::Ready { at, .. } => at.elapsed() >= ttl,
            Loaded::Failed { error, at } => {
                error.kind() != ErrorKind::InvalidConfig || at.elapsed() >= ttl
            }
        };
        if due {
            let result = config::load(&self.settings, &OwnSecrets(&self.stores)).await;
            let now = Instant::now();
            *loaded = match (result, &*loaded) {
                (Ok(c), _) => Loaded::Ready {
                    config: Arc::new(c),
                    at: now,
                },
                (Err(e), Loaded::Ready { config, .. }) => {
                    tracing::error!(error = %e, "configuration reload failed; keeping the last good configuration");
                    self.metrics.config_reload_failed();
                    Loaded::Ready {
                        config: config.clone(),
                        at: now,
                    }
                }
                (Err(error), Loaded::Failed { .. }) => {
                    tracing::error!(error = %error, "configuration still not loaded");
                    self.metrics.config_reload_failed();
                    Loaded::Failed { error, at: now }
                }
            };
        }
        match &*loaded {
            Loaded::Ready { config, .. } => Ok(config.clone()),
            Loaded::Failed { error, .. } => Err(error.clone()),
        }
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
        let report = match self.run(&request, deadline).await {
            Ok(report) => report,
            Err(e) => Report::top_level(&e),
        };
        self.metrics.emit(&report, self.stores.take_throttled());
        finish(request.invocation, report)
    }

    async fn run(
        &self,
        request: &event::Request,
        deadline: Option<Instant>,
    ) -> Result<Report, Error> {
        let region = request
            .region
            .as_deref()
            .or(self.settings.region.as_deref());
        let mode = if request.dry_run {
            Mode::Plan
        } else {
            Mode::Write
        };
        if let Work::Skip { source, reason } = &request.work {
            return Ok(skipped(source, *reason));
        }
        let config = self.config().await?;
        let replicator = Replicator {
            stores: &self.stores,
            state: &self.state,
            config: &config,
            retry: self.stores.retry_policy(),
        };
        let job = |scope| Job { mode, scope };
        Ok(match &request.work {
            Work::Skip { source, reason } => skipped(source, *reason),
            Work::Replicate(secrets) => {
                // Boxed: the SDK's futures are deep; boxing keeps each one's layout apart.
                let runs = secrets.iter().map(|s| {
                    Box::pin(replicator.source(s, region, job(Scope::Value), Known::default()))
                });
                let results = futures::future::join_all(runs).await;
                report_of(results, secrets.len())
            }
            Work::ReplicateWithMetadata(secret) | Work::SyncTags(secret) => {
                let scope = if matches!(request.work, Work::SyncTags(_)) {
                    Scope::Metadata
                } else {
                    Scope::Both
                };
                let run = replicator.source(secret, region, job(scope), Known::default());
                report_of(vec![Box::pin(run).await], 1)
            }
            Work::Delete(secret, window) => {
                let result = Box::pin(replicator.delete(
                    secret,
                    region,
                    request.account.as_deref(),
                    *window,
                    request.dry_run,
                ))
                .await;
                report_of(vec![result], 1)
            }
            Work::All => {
                let Backfill { results, remaining } =
                    Box::pin(replicator.all(region, deadline, request.dry_run)).await?;
                let mut report = report_of(results, usize::MAX);
                report.remaining = remaining;
                report
            }
        })
    }
}

/// An event that asks for nothing: one skipped result, no destination.
fn skipped(source: &str, reason: crate::outcome::SkipReason) -> Report {
    tracing::info!(source = %source, reason = reason.as_str(), "skipped");
    Report::from_results(vec![Outcome::skipped(source, None, reason)], vec![])
}

/// Whether the configuration reads secrets when it loads (its document, or may name
/// `secret:` transforms through one).
fn reads_secrets(settings: &Settings) -> bool {
    matches!(settings.source, ConfigSource::Secret { .. })
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
                outcomes.push(Outcome::failed(source, None, Action::None, &error));
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
