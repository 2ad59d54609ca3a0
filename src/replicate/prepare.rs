//! Everything about one destination that needs no AWS call, computed for every destination of
//! a source before its first write (STYLE habit 5): the transformed value (within Secrets
//! Manager's limits), the version token, the marker, what a create carries.

use super::decide::{DestState, MARKER_TAG, MAX_TAGS, Plan, Want, counted_tags, too_many_tags};
use super::execute::CreateSpec;
use super::{Job, SourceMeta, copies_metadata, log_outcome, log_outcome_in};
use crate::outcome::{Action, Error, Outcome, SkipReason};
use crate::rules::{Source, Target};
use crate::secret::SecretValue;
use crate::store::CurrentValue;
use crate::token;
use crate::transform::{ApplyError, MAX_VALUE_BYTES};
use secrecy::ExposeSecret;
use std::time::{Instant, SystemTime};

/// One destination with everything computed before any call: the value, the token, what a
/// create carries.
pub(super) struct Prepared<'c> {
    pub(super) source_arn: String,
    pub(super) target: Target<'c>,
    pub(super) job: Job,
    pub(super) value: SecretValue,
    pub(super) token: String,
    pub(super) marker: String,
    pub(super) create: CreateSpec,
    pub(super) tags: Option<Vec<(String, String)>>,
    pub(super) description: Option<String>,
    pub(super) source_name: String,
    /// When the source version was created (`CreatedDate`), for the replication lag.
    pub(super) source_created: Option<SystemTime>,
}

impl Prepared<'_> {
    pub(super) fn want(&self) -> Want<'_> {
        Want {
            name: &self.target.at.name,
            marker: &self.marker,
            token: &self.token,
            value: &self.value,
            kms_key: self.target.dest.kms_key_id.as_deref(),
            adopt: self.target.dest.adopt,
            tags: self.tags.as_deref(),
            description: self.description.as_deref(),
        }
    }

    pub(super) fn failed(&self, started: Instant, action: Action, e: &Error) -> Outcome {
        let o = Outcome::failed(&self.source_arn, Some(self.target.at.clone()), action, e);
        self.finish(o, started)
    }

    pub(super) fn finish(&self, mut o: Outcome, started: Instant) -> Outcome {
        o.duration_ms = Some(started.elapsed().as_millis() as u64);
        log_outcome_in(&self.source_name, &o, Some(self.job.mode));
        o
    }

    /// The replication lag of a write that just succeeded: from the source version's
    /// creation to now (0 when the clocks disagree; none when AWS gave no `CreatedDate`).
    pub(super) fn lag_ms(&self) -> Option<u64> {
        let created = self.source_created?;
        Some(
            SystemTime::now()
                .duration_since(created)
                .map_or(0, |d| d.as_millis() as u64),
        )
    }
}

/// A destination observed and decided, ready to execute.
pub(super) struct Decided<'p, T> {
    pub(super) p: Prepared<'p>,
    pub(super) store: T,
    pub(super) state: DestState,
    pub(super) plan: Plan,
    pub(super) started: Instant,
}

/// Computes one destination's value and token; a failure is its outcome.
pub(super) fn prepare<'c>(
    source: &Source,
    current: &CurrentValue,
    meta: Option<&SourceMeta>,
    target: Target<'c>,
    job: Job,
) -> Result<Prepared<'c>, Box<Outcome>> {
    let started = Instant::now();
    let dest = target.dest;
    let job = job.for_destination(target.tag_rule);
    let fail = |action, e: &Error| {
        let mut o = Outcome::failed(&source.arn, Some(target.at.clone()), action, e);
        o.duration_ms = Some(started.elapsed().as_millis() as u64);
        log_outcome(&source.name, &o);
        Box::new(o)
    };
    if !job.value() && !copies_metadata(dest) {
        return Err(Box::new(Outcome::skipped(
            &source.arn,
            Some(target.at.clone()),
            SkipReason::TagSyncOff,
        )));
    }
    let value = transformed(&target, &current.value).map_err(|e| fail(Action::None, &e))?;
    let token = token::derive(&token::TokenInput {
        source_arn: &source.arn,
        source_version: &current.version_id,
        dest_account: &target.at.account,
        dest_region: &target.at.region,
        dest_name: &target.at.name,
        transform_fingerprint: &dest.fingerprint,
    });
    let marker = token::marker_value(&source.account, &source.region, &source.name);
    let tags = meta.filter(|_| dest.copy_tags).map(|m| m.user_tags.clone());
    let description = meta
        .filter(|_| dest.copy_description)
        .map(|m| m.description.clone().unwrap_or_default());
    let mut create_tags = vec![(MARKER_TAG.to_string(), marker.clone())];
    create_tags.extend(tags.iter().flatten().cloned());
    if counted_tags(&create_tags) > MAX_TAGS {
        let e = too_many_tags(&target.at.name, "CreateSecret", counted_tags(&create_tags));
        return Err(fail(Action::Create, &e));
    }
    let create = CreateSpec {
        description: description.clone().unwrap_or_else(|| {
            format!(
                "Replica of {} ({} in {}), written by secret-replicator",
                source.name, source.account, source.region
            )
        }),
        tags: create_tags,
    };
    Ok(Prepared {
        source_arn: source.arn.clone(),
        job,
        value,
        token,
        marker,
        create,
        tags,
        description,
        source_name: source.name.clone(),
        source_created: current.created,
        target,
    })
}

/// The value a destination gets: the transform chain's output, within Secrets Manager's size,
/// never empty (SecretString and SecretBinary have a minimum length of 1).
pub(super) fn transformed(target: &Target<'_>, value: &SecretValue) -> Result<SecretValue, Error> {
    let out = match value {
        SecretValue::Binary(_) => {
            if !target.dest.transforms.is_empty() {
                return Err(Error::TransformFailed(
                    "the source is a binary secret (SecretBinary); transforms apply to SecretString only".into(),
                ));
            }
            value.clone()
        }
        SecretValue::String(s) => match target
            .dest
            .transforms
            .apply(s.expose_secret(), &target.vars)
        {
            Ok(None) => value.clone(),
            Ok(Some(t)) => SecretValue::text(t),
            Err(ApplyError::TooLarge { bytes }) => return Err(Error::TooLarge(bytes)),
            Err(e) => return Err(Error::TransformFailed(e.to_string())),
        },
    };
    if out.is_empty() {
        return Err(Error::TransformFailed(
            "the transformed value is empty; Secrets Manager requires at least 1 character".into(),
        ));
    }
    if out.len() > MAX_VALUE_BYTES {
        return Err(Error::TooLarge(out.len()));
    }
    Ok(out)
}
