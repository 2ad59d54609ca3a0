//! Decide (pure): what AWS holds for one destination + what the job wants → a plan of steps, the
//! status and the action to report. The ownership check, the native-replica test, the KMS
//! comparison and the action precedence exist here once. No AWS call, no clock, no I/O.

use crate::outcome::{Action, AwsError, Error, ErrorKind, SkipReason, Status};
use crate::secret::SecretValue;
use crate::store::{Description, KeyInfo};

use super::job::{Job, Mode};

/// The marker tag of every destination this function owns.
pub const MARKER_TAG: &str = "secret-replicator:source";

/// Secrets Manager's limit of user tags per secret (`aws:` tags do not count).
pub const MAX_TAGS: usize = 50;

/// The AWS managed key of Secrets Manager: DescribeSecret omits `KmsKeyId` for it.
pub const MANAGED_KEY: &str = "alias/aws/secretsmanager";

/// What was seen of a destination.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// Not looked at: found owned earlier in this container (Write mode, value only).
    Trusted,
    /// No such secret.
    Absent,
    /// DescribeSecret's answer.
    Present(Box<Description>),
}

/// What executing an earlier plan for this destination taught (a race, SPEC §7/§8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Learned {
    /// AWS said the destination exists (CreateSecret: ResourceExistsException, a name scheduled
    /// for deletion; a write it accepted or ignored): a look that finds nothing is stale.
    pub exists: bool,
    /// PutSecretValue with the token answered ResourceExistsException: the token's version
    /// holds another value (a collision).
    pub collision: bool,
    /// A write with the token was ignored: its version exists and is not current.
    pub token_exists: bool,
    /// The key was changed: the value needs a version written after the change.
    pub rekeyed: bool,
}

/// Everything decide looks at about one destination.
#[derive(Debug, Clone, PartialEq)]
pub struct DestState {
    pub seen: Seen,
    /// The configured key as kms:DescribeKey answers it (None: no key configured, or the AWS
    /// managed key, which is matched without DescribeKey).
    pub key: Option<KeyInfo>,
    /// The destination's current value, when it was read for a comparison.
    pub current_value: Option<SecretValue>,
    pub learned: Learned,
}

impl DestState {
    /// A state with nothing learned yet.
    pub fn new(seen: Seen) -> Self {
        DestState {
            seen,
            key: None,
            current_value: None,
            learned: Learned::default(),
        }
    }
}

/// What the job wants of one destination.
#[derive(Debug, Clone, Copy)]
pub struct Want<'a> {
    pub name: &'a str,
    /// The marker value naming the source (SPEC §8).
    pub marker: &'a str,
    /// The deterministic version token of this (source version, destination, chain, key).
    pub token: &'a str,
    /// The transformed value.
    pub value: &'a SecretValue,
    /// `kms_key_id` of the destination, if configured.
    pub kms_key: Option<&'a str>,
    pub adopt: bool,
    /// The source's user tags, when the destination copies tags.
    pub tags: Option<&'a [(String, String)]>,
    /// The source's description, when the destination copies it ("" for none).
    pub description: Option<&'a str>,
}

/// One call to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// CreateSecret with value, token, key, description, marker and copied tags.
    Create,
    /// RestoreSecret (the destination is scheduled for deletion).
    Restore,
    /// TagResource with the marker (adopt).
    Adopt,
    /// UpdateSecret(KmsKeyId) to the configured key.
    SetKey,
    /// PutSecretValue with the token, or with a fresh token of the same shape.
    Put { fresh: bool },
    /// UpdateSecretVersionStage: AWSCURRENT to the token's version, from where it is now.
    Label { from: Option<String> },
    /// UntagResource.
    Untag(Vec<String>),
    /// TagResource (copied tags).
    Tag(Vec<(String, String)>),
    /// UpdateSecret(Description).
    SetDescription(String),
}

impl Step {
    /// The action a failure of this step reports.
    pub fn action(&self) -> Action {
        match self {
            Step::Create => Action::Create,
            Step::Restore => Action::Restore,
            Step::Adopt | Step::Untag(_) | Step::Tag(_) => Action::Tags,
            Step::SetKey => Action::Kms,
            Step::Put { .. } => Action::Update,
            Step::Label { .. } => Action::Label,
            Step::SetDescription(_) => Action::Description,
        }
    }
}

/// The decision for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub status: Status,
    pub action: Action,
    pub reason: Option<SkipReason>,
    /// The value is written only because the key changed (its Put reports `kms`).
    pub key_only: bool,
}

impl Plan {
    /// Whether running the plan changes the destination.
    pub fn changes(&self) -> bool {
        !self.steps.is_empty()
    }

    /// The action of the first `n` steps (the ones that ran).
    pub fn action_upto(&self, n: usize) -> Action {
        action_of(&self.steps[..n.min(self.steps.len())], self.key_only)
    }

    /// Whether one of the first `n` steps restored the destination.
    pub fn restores_upto(&self, n: usize) -> bool {
        self.steps[..n.min(self.steps.len())].contains(&Step::Restore)
    }
}

/// Who a destination belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Its marker names this source.
    Us,
    /// No marker, and the destination may be adopted.
    Adoptable,
}

/// The ownership check (SPEC §8): a destination is written only when its marker names this
/// source, or it has none and `adopt` is set. Secrets managed by another service and native
/// replicas are never written.
pub fn owner(d: &Description, want: &Want<'_>) -> Result<Owner, Error> {
    let conflict = |msg: String| Err(Error::DestinationConflict(msg));
    if let Some(service) = &d.owning_service {
        return conflict(format!("{} is managed by {service}", want.name));
    }
    if d.is_native_replica() {
        return conflict(format!(
            "{} is a native Secrets Manager replica of a secret in {}",
            want.name,
            d.primary_region.as_deref().unwrap_or("another region")
        ));
    }
    match d.tag(MARKER_TAG) {
        Some(m) if m == want.marker => Ok(Owner::Us),
        Some(_) => conflict(format!(
            "{} is the replica of another source (its {MARKER_TAG} tag names a different secret)",
            want.name
        )),
        None if want.adopt => Ok(Owner::Adoptable),
        None => conflict(format!(
            "{} exists and is not managed by secret-replicator (no {MARKER_TAG} tag); set \"adopt\": true to take it over",
            want.name
        )),
    }
}

/// Whether a key id names the AWS managed key.
pub fn is_managed_key(key: &str) -> bool {
    key == MANAGED_KEY || key.ends_with(":alias/aws/secretsmanager")
}

/// Whether the destination's key (`have`, as DescribeSecret or ListSecrets answers it: a key
/// id, a key ARN, an alias ARN; None for the AWS managed key) is the configured one (SPEC §8).
/// `resolved` is the configured key as DescribeKey answers it; the destination's own key is
/// never looked up. The managed key is matched without DescribeKey.
pub fn key_matches(configured: &str, resolved: Option<&KeyInfo>, have: Option<&str>) -> bool {
    if is_managed_key(configured) {
        return have.is_none_or(is_managed_key);
    }
    let Some(have) = have else {
        return false;
    };
    if have == configured {
        return true;
    }
    let Some(key) = resolved else {
        return false;
    };
    if have == key.arn || have == key.key_id {
        return true;
    }
    // Configured by alias: DescribeSecret may answer the alias ARN, the console the name.
    let Some(alias) = crate::arn::kms_alias(configured) else {
        return false;
    };
    let prefix = key.arn.rsplit_once(':').map(|(p, _)| p).unwrap_or_default();
    have == alias || have == format!("{prefix}:{alias}")
}

/// User tags: never `aws:*`, never `secret-replicator:*`; sorted.
pub fn user_tags(tags: &[(String, String)]) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = tags
        .iter()
        .filter(|(k, _)| !k.starts_with("aws:") && !k.starts_with("secret-replicator:"))
        .cloned()
        .collect();
    t.sort();
    t
}

/// The tags a secret is charged for against the limit of 50 (`aws:` tags are not).
pub fn counted_tags<'a>(tags: impl IntoIterator<Item = &'a (String, String)>) -> usize {
    tags.into_iter()
        .filter(|(k, _)| !k.starts_with("aws:"))
        .count()
}

/// The error of a write that would leave a secret with more than 50 user tags.
pub fn too_many_tags(name: &str, operation: &'static str, count: usize) -> Error {
    Error::Aws(AwsError {
        kind: ErrorKind::AwsClientError,
        service: "secretsmanager",
        operation,
        code: "TooManyTags".into(),
        message: format!(
            "{name} would carry {count} tags; Secrets Manager allows {MAX_TAGS} (aws: tags excluded)"
        ),
    })
}

/// The tag and description steps that bring `d` in line with what the destination copies.
/// Marker tags are never touched.
fn metadata_steps(d: &Description, want: &Want<'_>, steps: &mut Vec<Step>) -> Result<(), Error> {
    if let Some(source) = want.tags {
        let have = user_tags(&d.tags);
        let set: Vec<(String, String)> = source
            .iter()
            .filter(|t| !have.contains(t))
            .cloned()
            .collect();
        let remove: Vec<String> = have
            .iter()
            .filter(|(k, _)| !source.iter().any(|(sk, _)| sk == k))
            .map(|(k, _)| k.clone())
            .collect();
        let after = counted_tags(&d.tags) - remove.len()
            + set
                .iter()
                .filter(|(k, _)| !have.iter().any(|(hk, _)| hk == k))
                .count();
        if after > MAX_TAGS {
            return Err(too_many_tags(want.name, "TagResource", after));
        }
        if !remove.is_empty() {
            steps.push(Step::Untag(remove));
        }
        if !set.is_empty() {
            steps.push(Step::Tag(set));
        }
    }
    if let Some(want_desc) = want.description
        && d.description.as_deref().unwrap_or_default() != want_desc
    {
        steps.push(Step::SetDescription(want_desc.to_string()));
    }
    Ok(())
}

/// The action a plan reports: the most telling of its steps', where a Put made only because
/// the key changed reports `kms`.
fn action_of(steps: &[Step], put_for_key_only: bool) -> Action {
    steps.iter().fold(Action::None, |acc, s| {
        let a = match s {
            Step::Put { .. } if put_for_key_only => Action::Kms,
            other => other.action(),
        };
        acc.max(a)
    })
}

/// Decides what to do with one destination.
///
/// Errors are the destination's own failures found without writing: a destination this source
/// does not own (409), too many tags.
pub fn decide(state: &DestState, want: &Want<'_>, job: Job) -> Result<Plan, Error> {
    let learned = state.learned;
    let mut steps = Vec::new();
    let mut key_only = false;
    match &state.seen {
        Seen::Trusted => {
            steps.push(Step::Put {
                fresh: learned.collision,
            });
        }
        Seen::Absent if job.value() => steps.push(Step::Create),
        Seen::Absent => {
            return Ok(Plan {
                steps,
                status: Status::Skipped,
                action: Action::None,
                reason: Some(SkipReason::Absent),
                key_only: false,
            });
        }
        Seen::Present(d) => {
            let owner = owner(d, want)?;
            if !job.value() && owner != Owner::Us {
                return Err(Error::DestinationConflict(format!(
                    "{} is not managed by this source; its tags are left alone",
                    want.name
                )));
            }
            // Restore first: AWS refuses every other write to a secret scheduled for deletion.
            if d.deleted {
                steps.push(Step::Restore);
            }
            if owner == Owner::Adoptable {
                steps.push(Step::Adopt);
            }
            let rekey = want
                .kms_key
                .is_some_and(|k| !key_matches(k, state.key.as_ref(), d.kms_key_id.as_deref()));
            if rekey {
                steps.push(Step::SetKey);
            }
            if job.value() {
                let has_token =
                    learned.token_exists || d.version_ids.iter().any(|v| v == want.token);
                let current_is_token = d.current_version.as_deref() == Some(want.token);
                let equal_bytes = state.current_value.as_ref() == Some(want.value);
                if rekey || learned.rekeyed {
                    // AWS re-encrypts the labelled versions under the new key but keeps every
                    // version decryptable with the old one: only a new version is readable with
                    // the configured key alone. The token's version exists already when it is
                    // current or listed: a fresh token of the same shape writes a new one.
                    steps.push(Step::Put {
                        fresh: has_token || learned.collision,
                    });
                    key_only = current_is_token || equal_bytes;
                } else if learned.collision {
                    steps.push(Step::Put { fresh: true });
                } else if current_is_token && (job.mode != Mode::Write || learned.token_exists) {
                    // In sync. Write mode still puts (below) until a put showed the token's
                    // version: only the write can tell that the token holds this very value.
                } else if equal_bytes {
                    // Equal bytes under another version (written by someone else, or after a
                    // key change): in sync, no label move.
                } else if has_token && (job.mode != Mode::Write || learned.token_exists) {
                    // The token's version exists but is not current: a hand edit or a source
                    // rollback moved AWSCURRENT away since; put it back, from where it is.
                    steps.push(Step::Label {
                        from: d.current_version.clone(),
                    });
                } else {
                    steps.push(Step::Put { fresh: false });
                }
            }
            if job.metadata() {
                metadata_steps(d, want, &mut steps)?;
            }
        }
    }
    let action = action_of(&steps, key_only);
    let status = if job.mode == Mode::Plan {
        Status::Planned
    } else if steps.is_empty() {
        Status::Unchanged
    } else if steps.contains(&Step::Restore) {
        Status::Restored
    } else {
        Status::Replicated
    };
    Ok(Plan {
        steps,
        status,
        action,
        reason: None,
        key_only,
    })
}

/// What a deletion does to one destination (SPEC §5 DeleteSecret): only an owned destination
/// is ever deleted, and a destination already scheduled is left alone.
pub fn decide_delete(seen: &Seen, marker: &str, plan_only: bool) -> DeletePlan {
    match seen {
        Seen::Absent | Seen::Trusted => DeletePlan::Skip(SkipReason::Absent),
        Seen::Present(d) if d.tag(MARKER_TAG) != Some(marker) => {
            DeletePlan::Skip(SkipReason::NotOwned)
        }
        Seen::Present(d) if d.deleted => DeletePlan::Unchanged,
        Seen::Present(_) if plan_only => DeletePlan::Planned,
        Seen::Present(_) => DeletePlan::Delete,
    }
}

/// The decision of a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletePlan {
    Skip(SkipReason),
    Unchanged,
    Planned,
    Delete,
}

#[cfg(test)]
mod tests;
