//! The handler: payload → request → per-source replication → result document. Everything
//! expensive (configuration, compiled transforms, SDK clients, credentials) is built once, by
//! [`build`] (the composition root `main.rs` and `cli.rs` share) and `App::new`, and shared by
//! every invocation of the container.

use crate::aws::AwsStores;
use crate::config::{self, Config, TextFetcher};
use crate::continuation::{Cursor, MAX_LINKS};
use crate::event::{self, Identity, Invocation, Work};
use crate::metrics::Metrics;
use crate::outcome::{Action, Error, ErrorKind, Outcome, Report};
use crate::replicate::backfill::{Backfill, Limits};
use crate::replicate::{ContainerState, Job, Known, Mode, Replicator, Scope, SourceResult};
use crate::settings::{ConfigSource, Settings};
use crate::store::{ReadSecrets, Stores};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::RwLock;

mod deadline;
mod redrive;
pub use deadline::Stops;
pub use redrive::{Answer, BatchResponse, ItemFailure, cannot_work};

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
            error_message: f.0.to_error_message(),
        }
    }
}

/// Reads secret text with the function's own credentials (config secret, `secret:` transforms).
pub struct OwnSecrets<'a, S: Stores>(pub &'a S);

impl<S: Stores> TextFetcher for OwnSecrets<'_, S> {
    async fn fetch_text(&self, id: &str) -> Result<String, Error> {
        // Boxed: the SDK's futures are deep, and this sits under the configuration loader's.
        let store = self.0.own(None);
        // Configuration text (a document, a script): not a replicated value.
        let value = Box::pin(store.current_value(id)).await?.value;
        String::from_utf8(value.expose_bytes().to_vec())
            .map_err(|_| Error::InvalidConfig(format!("secret {id}: not UTF-8 text")))
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
            Err(e) if e.kind() == ErrorKind::InvalidConfig => {
                metrics.config_load_failed(&e);
                return Err(e);
            }
            Err(error) => {
                tracing::error!(error = %error, "configuration not loaded; later invocations try again");
                metrics.config_load_failed(&error);
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
                    self.metrics.config_load_failed(&e);
                    Loaded::Ready {
                        config: config.clone(),
                        at: now,
                    }
                }
                (Err(error), Loaded::Failed { .. }) => {
                    tracing::error!(error = %error, "configuration still not loaded");
                    self.metrics.config_load_failed(&error);
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
    /// `deadline` and lists what it did not reach in `remaining` (no continuation: the caller
    /// is not a Lambda invocation of a known function).
    pub async fn handle_until(
        &self,
        payload: &Value,
        deadline: Option<Instant>,
    ) -> Result<Report, Failure> {
        self.handle_invoked(
            payload,
            &Invoked {
                deadline,
                function_arn: None,
            },
        )
        .await
    }

    /// Handles one Lambda invocation: an `all` link that reaches its cutoff continues by
    /// invoking `function_arn` asynchronously.
    pub async fn handle_invoked(
        &self,
        payload: &Value,
        invoked: &Invoked,
    ) -> Result<Report, Failure> {
        let request = match event::parse(payload, &self.identity) {
            Ok(r) => r,
            Err(e) => return finish(invocation_of(payload), Report::top_level(&e)),
        };
        let (report, verdict) = match self.run(&request, payload, invoked).await {
            Ok(r) => r,
            Err(e) => (Report::top_level(&e), Verdict::AsInvoked),
        };
        self.metrics.emit(&report, self.stores.take_throttled());
        match verdict {
            Verdict::AsInvoked => finish(request.invocation, report),
            Verdict::Answer => Ok(report),
            Verdict::Fail => Err(Failure(report)),
        }
    }

    async fn run(
        &self,
        request: &event::Request,
        payload: &Value,
        invoked: &Invoked,
    ) -> Result<(Report, Verdict), Error> {
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
            return Ok((skipped(source, *reason), Verdict::AsInvoked));
        }
        let config = self.config().await?;
        let replicator = Replicator {
            stores: &self.stores,
            state: &self.state,
            config: &config,
            retry: self.stores.retry_policy(),
        };
        let job = |scope| Job { mode, scope };
        let report = match &request.work {
            Work::Skip { source, reason } => skipped(source, *reason),
            Work::Replicate(secrets) => {
                // Boxed: the SDK's futures are deep; boxing keeps each one's layout apart.
                let known = Known {
                    change: Some(&request.change),
                    ..Known::default()
                };
                let runs = secrets
                    .iter()
                    .map(|s| Box::pin(replicator.source(s, region, job(Scope::Value), known)));
                let results = futures::future::join_all(runs).await;
                report_of(results, secrets.len())
            }
            Work::ReplicateWithMetadata(secret) | Work::SyncTags(secret) => {
                let scope = if matches!(request.work, Work::SyncTags(_)) {
                    Scope::Metadata
                } else {
                    Scope::Both
                };
                let known = Known {
                    change: Some(&request.change),
                    ..Known::default()
                };
                let run = replicator.source(secret, region, job(scope), known);
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
                return Box::pin(self.link(&replicator, request, payload, invoked, region)).await;
            }
        };
        Ok((report, Verdict::AsInvoked))
    }

    /// One link of an `all` chain (SPEC §6): from the cursor's name (or the first), up to the
    /// cutoff (or `REPLICATOR_LINK_SOURCES` sources); what is in flight at the abandon point is
    /// dropped and remains; then, with work left, the continuation is started before the answer.
    async fn link(
        &self,
        replicator: &Replicator<'_, S>,
        request: &event::Request,
        payload: &Value,
        invoked: &Invoked,
        region: Option<&str>,
    ) -> Result<(Report, Verdict), Error> {
        let function = &self.settings.function_name;
        let run_region = region.unwrap_or_default();
        let cursor = match &request.resume {
            None => None,
            Some(text) => Some(Cursor::decode(text, function, run_region)?),
        };
        let link = cursor.as_ref().map_or(1, |c| c.link);
        let reset = cursor
            .as_ref()
            .is_some_and(|c| c.config != replicator.config.fingerprint);
        if reset {
            tracing::warn!(
                link,
                "the configuration changed during the chain; starting again from the first name"
            );
            self.metrics.backfill_restarted();
        }
        let start_at = cursor.as_ref().filter(|_| !reset).map(|c| c.next.as_str());
        let (prior_failures, prior_kind) = cursor
            .as_ref()
            .map(|c| (c.failures, c.first_kind.clone()))
            .unwrap_or_default();
        let stops = invoked.deadline.map(|d| Stops::new(d, Instant::now()));
        let limits = Limits {
            cutoff: stops.map(|s| s.cutoff),
            abandon: stops.map(|s| s.abandon),
            // Only a link under Lambda is cut by work: the command line runs to the end.
            sources: invoked
                .function_arn
                .as_ref()
                .and(self.settings.link_sources),
        };
        let Backfill { results, remaining } =
            Box::pin(replicator.all(region, limits, request.dry_run, start_at)).await?;
        let outcomes = flatten(results);
        let own_failures = outcomes.iter().filter(|o| o.is_failure()).count() as u64;
        let own_kind = outcomes
            .iter()
            .find_map(|o| o.error.as_ref().map(|e| e.kind.as_str().to_string()));
        let next_cursor = remaining.first().map(|next| Cursor {
            next: next.clone(),
            region: run_region.to_string(),
            config: replicator.config.fingerprint.clone(),
            link: link + 1,
            failures: prior_failures + own_failures,
            first_kind: prior_kind.clone().or(own_kind.clone()),
        });
        let mut report = Report::of_all(outcomes, remaining);
        if reset {
            report.resume_reset = Some(true);
        }
        let Some(next) = next_cursor else {
            // The last link: it fails when asked to and any link failed.
            let fail_on_error = matches!(
                request.invocation,
                Invocation::Manual {
                    fail_on_error: true
                }
            );
            if link > 1 || request.resume.is_some() {
                report.continued = Some(false);
            }
            if fail_on_error && own_failures == 0 && prior_failures > 0 {
                let e = Error::EarlierLinks {
                    kind: prior_kind
                        .as_deref()
                        .and_then(crate::error::ErrorKind::from_name)
                        .unwrap_or(crate::error::ErrorKind::ServiceError),
                    count: prior_failures,
                };
                return Ok((report.with_error(&e), Verdict::Fail));
            }
            return Ok((report, Verdict::AsInvoked));
        };
        if request.dry_run {
            // A dry run never continues: the cursor is passed on by hand.
            report.continued = Some(false);
            report.resume = Some(next.encode(function));
            return Ok((report, Verdict::AsInvoked));
        }
        let Some(function_arn) = invoked.function_arn.as_deref() else {
            // Not a Lambda invocation (the CLI runs to the end): nothing to continue with.
            report.continued = Some(false);
            return Ok((report, Verdict::AsInvoked));
        };
        if link >= MAX_LINKS {
            report.continued = Some(false);
            let e = Error::BackfillIncomplete(format!(
                "the backfill chain reached its cap of {MAX_LINKS} links with {} source(s) left; the next scheduled run resumes by comparing",
                report.remaining_count.unwrap_or_default()
            ));
            tracing::warn!(link, "backfill chain cap reached");
            // Answered as the invocation asks (a Lambda error only with `failOnError`): the
            // schedule's runs reach the BackfillIncomplete alarm, not Lambda's retries and the
            // failure queue.
            return Ok((report.with_error(&e), Verdict::AsInvoked));
        }
        let resume = next.encode(function);
        let mut next_payload = payload.clone();
        if let Some(o) = next_payload.as_object_mut() {
            o.insert("resume".into(), Value::String(resume.clone()));
        }
        let next_text = next_payload.to_string();
        let invoke = self.stores.invoke_async(function_arn, &next_text);
        // Bounded like the rest of the link, so that the answer comes before the deadline; an
        // Invoke given up may still have been accepted, and a link delivered twice is harmless
        // (SPEC §6).
        let invoked_next = match stops {
            Some(s) => {
                let by = Instant::now() + s.invoke_timeout(Instant::now());
                tokio::time::timeout_at(tokio::time::Instant::from_std(by), invoke)
                    .await
                    .unwrap_or_else(|_| Err(invoke_abandoned()))
            }
            None => invoke.await,
        };
        match invoked_next {
            Ok(()) => {
                tracing::info!(link, next = link + 1, "backfill continues");
                report.continued = Some(true);
                report.resume = Some(resume);
                // Answered, never a Lambda error: a retry of this link would fork the chain.
                Ok((report, Verdict::Answer))
            }
            Err(e) => {
                tracing::error!(error = %e, "could not start the backfill's next link");
                report.continued = Some(false);
                Ok((report.with_error(&e), Verdict::Fail))
            }
        }
    }
}

/// How an invocation came: its deadline and, under Lambda, the function's own ARN.
#[derive(Debug, Clone, Default)]
pub struct Invoked {
    pub deadline: Option<Instant>,
    pub function_arn: Option<String>,
}

/// The continuation's Invoke, given up at its stop: retriable, like the SDK's own timeout.
fn invoke_abandoned() -> Error {
    Error::Aws(crate::outcome::AwsError {
        kind: ErrorKind::Timeout,
        service: "lambda",
        operation: "Invoke",
        code: "Timeout".into(),
        message: "not answered before the link's deadline".into(),
    })
}

/// How a report is answered.
enum Verdict {
    /// By the invocation's kind (SPEC §7).
    AsInvoked,
    /// As a document, whatever failed (a link that continued).
    Answer,
    /// As a Lambda error, whatever the kind.
    Fail,
}

fn flatten(results: Vec<SourceResult>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for r in results {
        match r {
            SourceResult::Outcomes(o) => outcomes.extend(o),
            SourceResult::Failed { source, error } => {
                tracing::warn!(source = %source, error = %error, "source read failed");
                outcomes.push(Outcome::failed(source, None, Action::None, &error));
            }
        }
    }
    outcomes
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

/// The answer to a payload whose raw text could not be read as JSON (too deep, or not JSON):
/// an InvalidEvent, failed like an event (nothing in it can say it is manual).
pub fn unreadable_payload(error: &Error) -> Result<Report, Failure> {
    finish(Invocation::Event, Report::top_level(error))
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
