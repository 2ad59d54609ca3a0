//! Execute: run a plan's steps in order, each mutating call through the write budget and
//! retried (paced) when AWS asks to slow down or fails transiently. An answer that shows the
//! world is not what was decided on (a race: the destination vanished, was scheduled for
//! deletion, was created meanwhile, the label moved, the token was ignored) stops the run with
//! what it taught, so that the caller observes once more and decides again.

use super::decide::{Learned, MARKER_TAG, Plan, Step, Want};
use super::state::ContainerState;
use crate::outcome::{Action, DestinationRef, Error};
use crate::outcome::{is_retriable, is_throttle};
use crate::store::{ManageSecrets, NewSecret, RetryPolicy, WriteSecrets};
use crate::token;
use std::future::Future;
use std::time::Duration;

/// The wait before attempt `n + 1` (n ≥ 1): exponential, with jitter.
fn backoff(retry: &RetryPolicy, n: u32) -> Duration {
    let base = retry
        .initial_backoff
        .saturating_mul(1 << n.saturating_sub(1).min(16))
        .min(retry.max_backoff);
    base.mul_f64(jitter())
}

/// A number in [0.5, 1) that differs from call to call (no cryptographic quality needed).
fn jitter() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let mut x = SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ nanos;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    0.5 + (x >> 11) as f64 / (1u64 << 53) as f64 / 2.0
}

/// What a CreateSecret carries besides the value.
#[derive(Debug, Clone)]
pub struct CreateSpec {
    pub description: String,
    /// The marker tag and the copied tags.
    pub tags: Vec<(String, String)>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// Every step done; `version` holds AWSCURRENT when a value step ran.
    Done { version: Option<String> },
    /// A race after `completed` steps: `learned` says what the answer showed; `observe` whether
    /// the destination must be looked at again before deciding (a collision needs no new look).
    Raced {
        completed: usize,
        learned: Learned,
        observe: bool,
    },
    /// A write to a destination whose ownership was cached was denied after `completed` steps
    /// (SPEC §11): the destination is looked at once more before `error` is reported.
    Denied {
        completed: usize,
        learned: Learned,
        action: Action,
        error: Error,
    },
}

/// Runs the steps of plans for one destination.
pub struct Executor<'a, S> {
    pub store: &'a S,
    pub state: &'a ContainerState,
    pub at: &'a DestinationRef,
    pub want: &'a Want<'a>,
    pub create: &'a CreateSpec,
    pub retry: RetryPolicy,
}

type Failure = (Action, Error);

/// One mutating call to a destination: a slot of the write budget per attempt; a throttle slows
/// the destination down; retriable failures (never a quota) are tried again with backoff.
pub async fn paced<T, F, Fut>(
    state: &ContainerState,
    at: &DestinationRef,
    retry: RetryPolicy,
    f: F,
) -> Result<T, Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let (account, region) = (&at.account, &at.region);
    let mut attempt = 1;
    loop {
        state.budget.acquire(account, region).await;
        match f().await {
            Err(e) => {
                if is_throttle(&e) {
                    state.budget.throttled(account, region);
                }
                if attempt >= retry.attempts || !is_retriable(&e) {
                    return Err(e);
                }
                tokio::time::sleep(backoff(&retry, attempt)).await;
                attempt += 1;
            }
            ok => return ok,
        }
    }
}

impl<S: WriteSecrets + ManageSecrets> Executor<'_, S> {
    async fn paced<T, F, Fut>(&self, f: F) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        paced(self.state, self.at, self.retry, f).await
    }

    /// A write step failed with `e`. An AccessDeniedException on a destination whose ownership
    /// this container cached is looked into before it is reported (SPEC §11): the destination
    /// role allows writes only where the marker tag exists
    /// (`secretsmanager:ResourceTag/secret-replicator:source`, `iam/destination-role.yaml`), so
    /// the secret may have changed hands since it was found owned: deleted (its name free
    /// again), or its marker removed or replaced. The cached ownership is forgotten and the
    /// destination observed once more with DescribeSecret and decided again: absent → create;
    /// no marker or another marker → DestinationConflict (409); still ours → this AccessDenied,
    /// without writing again.
    fn refused(
        &self,
        e: Error,
        step: &Step,
        completed: usize,
        learned: Learned,
    ) -> Result<Ran, Failure> {
        if !(e.is_aws("AccessDeniedException") && self.state.is_owned(self.at)) {
            return Err((step.action(), e));
        }
        self.state.set_owned(self.at, false);
        tracing::warn!(destination = %self.name(),
            "a write to a destination cached as owned was denied; looking at it again");
        Ok(Ran::Denied {
            completed,
            learned: Learned {
                rekeyed: learned.rekeyed,
                ..Learned::default()
            },
            action: step.action(),
            error: e,
        })
    }

    fn name(&self) -> &str {
        self.want.name
    }

    /// Runs the plan's steps in order.
    pub async fn run(&self, plan: &Plan, mut learned: Learned) -> Result<Ran, Failure> {
        let mut version = None;
        for (completed, step) in plan.steps.iter().enumerate() {
            let raced = |learned: Learned, observe: bool| {
                Ok(Ran::Raced {
                    completed,
                    learned,
                    observe,
                })
            };
            let fail = |e: Error| (step.action(), e);
            match step {
                Step::Create => {
                    let new = NewSecret {
                        name: self.name(),
                        value: self.want.value,
                        token: self.want.token,
                        kms_key_id: self.want.kms_key,
                        description: &self.create.description,
                        tags: &self.create.tags,
                    };
                    match self.paced(|| self.store.create(&new)).await {
                        Ok(w) => version = Some(w.version_id),
                        // Created meanwhile (another invocation won the race, or a lost answer's
                        // retry), or a name scheduled for deletion: whose is it?
                        Err(e)
                            if e.is_aws("ResourceExistsException")
                                || e.is_aws("InvalidRequestException") =>
                        {
                            learned.exists = true;
                            return raced(learned, true);
                        }
                        Err(e) => return Err(fail(e)),
                    }
                }
                Step::Restore => {
                    if let Err(e) = self.paced(|| self.store.restore(self.name())).await {
                        return self.refused(e, step, completed, learned);
                    }
                    tracing::info!(destination = %self.name(), "restored destination scheduled for deletion");
                }
                Step::Adopt => {
                    let marker = [(MARKER_TAG.to_string(), self.want.marker.to_string())];
                    if let Err(e) = self.paced(|| self.store.tag(self.name(), &marker)).await {
                        return self.refused(e, step, completed, learned);
                    }
                    tracing::info!(destination = %self.name(), "adopted existing secret");
                }
                Step::SetKey => {
                    if let Some(key) = self.want.kms_key {
                        if let Err(e) = self
                            .paced(|| self.store.set_kms_key(self.name(), key))
                            .await
                        {
                            return self.refused(e, step, completed, learned);
                        }
                        learned.rekeyed = true;
                        tracing::info!(destination = %self.name(), "moved destination to the configured KMS key");
                    }
                }
                Step::Put { fresh } => {
                    let token = if *fresh {
                        let t = token::fresh(self.want.token);
                        if learned.collision {
                            tracing::warn!(event = "token_collision", destination = %self.name(),
                                token = self.want.token, fresh = %t,
                                "version token already used with another value; writing with a fresh token");
                        }
                        t
                    } else {
                        self.want.token.to_string()
                    };
                    match self
                        .paced(|| self.store.put(self.name(), self.want.value, &token))
                        .await
                    {
                        Ok(w) if w.is_current() => version = Some(w.version_id),
                        // The token's version existed: the write was ignored.
                        Ok(_) => {
                            learned.exists = true;
                            learned.token_exists = true;
                            return raced(learned, true);
                        }
                        Err(e) if e.is_aws("ResourceExistsException") => {
                            learned.exists = true;
                            learned.collision = true;
                            return raced(learned, false);
                        }
                        // Deleted since we last looked.
                        Err(e) if e.is_aws("ResourceNotFoundException") => {
                            self.state.set_owned(self.at, false);
                            learned = Learned {
                                rekeyed: learned.rekeyed,
                                ..Learned::default()
                            };
                            return raced(learned, true);
                        }
                        // Scheduled for deletion (or turned into something we may not write)
                        // since we last looked.
                        Err(e) if e.is_aws("InvalidRequestException") => {
                            self.state.set_owned(self.at, false);
                            learned.exists = true;
                            return raced(learned, true);
                        }
                        Err(e) => return self.refused(e, step, completed, learned),
                    }
                }
                Step::Label { from } => {
                    match self
                        .paced(|| {
                            self.store
                                .make_current(self.name(), self.want.token, from.as_deref())
                        })
                        .await
                    {
                        Ok(()) => version = Some(self.want.token.to_string()),
                        // The label is no longer where we saw it: another invocation moved it,
                        // or this call's own first attempt did and its answer was lost.
                        Err(e) if e.is_aws("InvalidParameterException") => {
                            learned.token_exists = true;
                            return raced(learned, true);
                        }
                        Err(e) => return self.refused(e, step, completed, learned),
                    }
                }
                Step::Untag(keys) => {
                    if let Err(e) = self.paced(|| self.store.untag(self.name(), keys)).await {
                        return self.refused(e, step, completed, learned);
                    }
                }
                Step::Tag(tags) => {
                    if let Err(e) = self.paced(|| self.store.tag(self.name(), tags)).await {
                        return self.refused(e, step, completed, learned);
                    }
                }
                Step::SetDescription(d) => {
                    if let Err(e) = self
                        .paced(|| self.store.set_description(self.name(), d))
                        .await
                    {
                        return self.refused(e, step, completed, learned);
                    }
                }
            }
        }
        Ok(Ran::Done { version })
    }
}
