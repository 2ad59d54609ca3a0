//! Events (SPEC §5, §6): EventBridge deliveries of CloudTrail API calls, CloudTrail service
//! events, the native "Secret Label Updated" event, and the manual payload, turned into a
//! `Request`. Pure: no AWS calls, no configuration beyond the loop-prevention identity.

use crate::outcome::{Error, SkipReason};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime};

pub mod redrive;

/// Who this function is, for recognising events its own writes caused.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `AWS_LAMBDA_FUNCTION_NAME`: the session name of every role this function assumes.
    pub function_name: String,
    /// `REPLICATOR_ROLE_ARN`, when set: the session issuer must match it too.
    pub role_arn: Option<String>,
}

/// A secret named by an event or payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// What to call Secrets Manager with: a name, a full ARN or a partial ARN.
    pub id: String,
    /// The friendly name, when the event says it for sure (SPEC §4); otherwise the source read
    /// supplies it.
    pub name: Option<String>,
}

/// How the invocation reached us; it decides how failures are returned (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invocation {
    /// EventBridge: any failure fails the invocation, so Lambda's retries and DLQ see it.
    Event,
    /// The manual payload: the document is returned unless `failOnError`.
    Manual { fail_on_error: bool },
}

impl Invocation {
    /// Whether a report with failures must be returned as a Lambda error.
    pub fn fails_on_error(self) -> bool {
        match self {
            Invocation::Event => true,
            Invocation::Manual { fail_on_error } => fail_on_error,
        }
    }
}

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Replicate the current value of each secret.
    Replicate(Vec<SecretRef>),
    /// UpdateSecret: the value, and the description and tags where destinations copy them.
    ReplicateWithMetadata(SecretRef),
    /// TagResource / UntagResource: tags where destinations copy them.
    SyncTags(SecretRef),
    /// DeleteSecret: follow the source's deletion where destinations ask for it, with the
    /// recovery window the event tells.
    Delete(SecretRef, DeletionWindow),
    /// The manual `all`: every source secret some rule matches.
    All,
    /// Nothing to do: `source` names the secret (or event), `reason` says why.
    Skip { source: String, reason: SkipReason },
}

/// How long a source's deletion leaves (SPEC §5 DeleteSecret), as the event tells it; turned
/// into the destination's recovery window at processing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionWindow {
    /// `responseElements.deletionDate`: when the source will be deleted.
    At(SystemTime),
    /// `requestParameters.recoveryWindowInDays` (30 when absent), counted from `eventTime`.
    After {
        days: i64,
        since: Option<SystemTime>,
    },
    /// `forceDeleteWithoutRecovery`: the source is gone; a replica gets the shortest window,
    /// never a forced delete.
    Forced,
    /// No event tells (a listing cannot): the longest window.
    Unknown,
}

/// The recovery windows DeleteSecret accepts.
pub const MIN_WINDOW_DAYS: i64 = 7;
pub const MAX_WINDOW_DAYS: i64 = 30;

impl DeletionWindow {
    /// The destination's recovery window at `now`: the days left, rounded up, within [7, 30].
    pub fn days(&self, now: SystemTime) -> i64 {
        let left = |until: SystemTime| {
            let secs = until.duration_since(now).map(|d| d.as_secs()).unwrap_or(0);
            secs.div_ceil(86_400) as i64
        };
        let days = match *self {
            DeletionWindow::At(at) => left(at),
            DeletionWindow::After { days, since } => match since {
                Some(t) => left(t + Duration::from_secs(days.max(0) as u64 * 86_400)),
                None => days,
            },
            DeletionWindow::Forced => MIN_WINDOW_DAYS,
            DeletionWindow::Unknown => MAX_WINDOW_DAYS,
        };
        days.clamp(MIN_WINDOW_DAYS, MAX_WINDOW_DAYS)
    }
}

/// A parsed invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub invocation: Invocation,
    pub work: Work,
    /// The source region (the event's region, or the manual payload's `region`); None = the
    /// function's own region.
    pub region: Option<String>,
    /// The source account, when the event says it.
    pub account: Option<String>,
    /// `dryRun`: compute and report, write nothing.
    pub dry_run: bool,
    /// `resume`: where an `all` chain's link starts (checked by the handler, which knows the
    /// function and region the cursor must belong to).
    pub resume: Option<String>,
    /// What the triggering event says about its change, for the source read (SPEC §5): never
    /// what to replicate, only how to tell a stale first read. Empty for manual payloads.
    pub change: Change,
}

/// What an event records about the change it reports, beyond which secret (SPEC §5). The source
/// read uses it to tell a stale first read (eventual consistency, SPEC §12) from a source that
/// moved on; what is replicated is always the source's current value read at processing time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// When the call happened: CloudTrail's `detail.eventTime`, else EventBridge's `time`.
    pub at: Option<SystemTime>,
    /// The version the call made current, when the record names it:
    /// `requestParameters.clientRequestToken` of PutSecretValue and CreateSecret (the API makes
    /// the token the new version's VersionId, and SDKs always send one) and `moveToVersionId` of
    /// UpdateSecretVersionStage. RotationSucceeded names none: its version was created by the
    /// rotation's first step, before the event.
    pub version: Option<String>,
    /// The call was CreateSecret: a read right after it may not find the secret, or its first
    /// version, yet.
    pub created: bool,
}

/// An event older than this never arms the stale-read guard (redrives, late retries): by then
/// the version it names may long be superseded, and reads have long converged (SPEC §5).
pub const GUARD_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// A CreateSecret event younger than this has its "no secret" or "no current version" reads
/// read again (bounded) before they count (SPEC §5).
pub const YOUNG_CREATE: Duration = Duration::from_secs(60);

impl Change {
    /// The version the first source read is checked against, at processing time `now`: only
    /// for an event that names one and is at most [`GUARD_MAX_AGE`] old. An event without a
    /// time arms nothing (its age is unknown).
    pub fn guard(&self, now: SystemTime) -> Option<&str> {
        let at = self.at?;
        let age = now.duration_since(at).unwrap_or(Duration::ZERO);
        (age <= GUARD_MAX_AGE)
            .then_some(self.version.as_deref())
            .flatten()
    }

    /// A CreateSecret event less than [`YOUNG_CREATE`] old at `now`.
    pub fn young_create(&self, now: SystemTime) -> bool {
        self.created
            && self
                .at
                .is_some_and(|at| now.duration_since(at).unwrap_or(Duration::ZERO) < YOUNG_CREATE)
    }
}

/// The manual payload (SPEC §6). Strict: a typo is an InvalidEvent, not a silent no-op.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Manual {
    #[allow(dead_code)]
    source: String,
    secret_id: Option<String>,
    secret_ids: Option<Vec<String>>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    fail_on_error: bool,
    region: Option<String>,
    /// The cursor of an `all` chain's next link (SPEC §6).
    resume: Option<String>,
}

/// How deep a payload's arrays and objects may nest. No event or manual payload of SPEC §5/§6
/// comes near it (CloudTrail events nest about 5 levels); serde_json's own recursion limit is 128
/// and reports "recursion limit exceeded", which reads like a parser fault, so depth is checked
/// first and reported as what it is.
pub const MAX_DEPTH: usize = 64;

/// Parses the raw text of an invocation payload: a payload nested deeper than [`MAX_DEPTH`] is
/// an InvalidEvent that names the limit, never "not valid JSON".
pub fn read_payload(text: &str) -> Result<Value, Error> {
    if let Some(at) = too_deep(text.as_bytes(), MAX_DEPTH) {
        return Err(Error::InvalidEvent(format!(
            "the payload nests arrays/objects deeper than the limit of {MAX_DEPTH} levels (at byte {at})"
        )));
    }
    serde_json::from_str(text).map_err(|e| {
        Error::InvalidEvent(format!(
            "the payload is not valid JSON at line {}, column {}: {}",
            e.line(),
            e.column(),
            category(&e)
        ))
    })
}

/// The kind of a JSON syntax error, without serde_json's text (which may quote input).
fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "read error",
    }
}

/// The byte offset where nesting first exceeds `limit`, scanning outside strings only (a
/// bracket inside a string is data). Linear, no recursion, no allocation.
pub fn too_deep(text: &[u8], limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in text.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Turns an invocation payload into a request.
pub fn parse(payload: &Value, me: &Identity) -> Result<Request, Error> {
    parse_unbounded(payload, me).map_err(|e| match e {
        Error::InvalidEvent(m) => Error::InvalidEvent(bounded(m)),
        other => other,
    })
}

/// The most bytes of a rejection message: serde's messages quote field names and values, and a
/// hostile payload can make those megabytes long.
pub const MAX_MESSAGE: usize = 512;

fn bounded(mut message: String) -> String {
    const MARK: &str = "… (truncated)";
    if message.len() > MAX_MESSAGE {
        // The mark counts toward the limit (cargo fuzz found 527-byte messages when it did not).
        let mut end = MAX_MESSAGE - MARK.len();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str(MARK);
    }
    message
}

fn parse_unbounded(payload: &Value, me: &Identity) -> Result<Request, Error> {
    let obj = payload
        .as_object()
        .ok_or_else(|| Error::InvalidEvent("the payload is not a JSON object".into()))?;
    match obj.get("source").and_then(Value::as_str) {
        Some("manual") => parse_manual(payload),
        Some("aws.secretsmanager") => parse_eventbridge(payload, me),
        Some(other) => Err(Error::InvalidEvent(format!(
            "unsupported source {other:?} (expected aws.secretsmanager or manual)"
        ))),
        None => Err(Error::InvalidEvent(
            "no \"source\" field: expected an EventBridge event or {\"source\": \"manual\", ...}"
                .into(),
        )),
    }
}

/// True when the payload is the manual one (decides how an InvalidEvent is returned).
pub fn is_manual(payload: &Value) -> bool {
    payload.get("source").and_then(Value::as_str) == Some("manual")
}

/// The manual payload's field of the wrong type, named (serde's message does not say which).
fn mistyped_field(payload: &Value) -> Option<String> {
    let fields = payload.as_object()?;
    fields.iter().find_map(|(key, v)| {
        let expected = match key.as_str() {
            "source" | "secretId" | "region" | "resume" => "a string",
            "all" | "dryRun" | "failOnError" => "true or false",
            "secretIds" => "a list of strings",
            _ => return None,
        };
        let fits = match expected {
            "a string" => v.is_string() || (v.is_null() && key != "source"),
            "true or false" => v.is_boolean(),
            _ => v.is_null() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        };
        (!fits).then(|| format!("manual payload: {key:?} must be {expected}"))
    })
}

fn parse_manual(payload: &Value) -> Result<Request, Error> {
    let m = Manual::deserialize(payload).map_err(|e| {
        Error::InvalidEvent(
            mistyped_field(payload).unwrap_or_else(|| format!("manual payload: {e}")),
        )
    })?;
    let mut ids: Vec<String> = m.secret_id.into_iter().collect();
    ids.extend(m.secret_ids.unwrap_or_default());
    let request = |work| Request {
        invocation: Invocation::Manual {
            fail_on_error: m.fail_on_error,
        },
        work,
        region: m.region.clone(),
        account: None,
        dry_run: m.dry_run,
        resume: m.resume.clone(),
        change: Change::default(),
    };
    if m.resume.is_some() && !m.all {
        return Err(Error::InvalidEvent(
            "manual payload: \"resume\" continues an \"all\" run; it needs \"all\": true".into(),
        ));
    }
    match (m.all, ids.is_empty()) {
        (true, true) => return Ok(request(Work::All)),
        (true, false) => {
            return Err(Error::InvalidEvent(
                "manual payload: \"all\" replaces \"secretId\"/\"secretIds\"; give one or the other".into(),
            ));
        }
        (false, true) => {
            return Err(Error::InvalidEvent(
                "manual payload: give \"secretId\", \"secretIds\" or \"all\": true".into(),
            ));
        }
        (false, false) => {}
    }
    if let Some(bad) = ids.iter().find(|i| i.trim().is_empty()) {
        return Err(Error::InvalidEvent(format!(
            "manual payload: empty secret id {bad:?}"
        )));
    }
    let refs = ids
        .into_iter()
        .map(|id| SecretRef {
            name: name_from_id(&id),
            id,
        })
        .collect();
    Ok(request(Work::Replicate(refs)))
}

fn parse_eventbridge(payload: &Value, me: &Identity) -> Result<Request, Error> {
    // Read in place: the payload is not cloned (it can carry large CloudTrail details).
    let ev = EventBridgeEvent::<Map<String, Value>>::deserialize(payload)
        .map_err(|e| Error::InvalidEvent(format!("EventBridge event: {e}")))?;
    let detail = &ev.detail;
    let detail_type = ev.detail_type.as_str();
    let region = ev
        .region
        .clone()
        .filter(|r| !r.is_empty())
        .or_else(|| str_field(detail, "awsRegion").map(str::to_string));
    let account = ev.account.clone().filter(|a| !a.is_empty());
    let at = str_field(detail, "eventTime")
        .and_then(crate::time::parse_rfc3339)
        .or_else(|| ev.time.map(SystemTime::from));
    let request_with = |work, change| Request {
        invocation: Invocation::Event,
        work,
        region: region.clone(),
        account: account.clone(),
        dry_run: false,
        resume: None,
        change,
    };
    let at_only = Change {
        at,
        ..Change::default()
    };
    let request = |work| request_with(work, at_only.clone());
    match detail_type {
        "Secret Label Updated" => {
            let id = ev
                .resources
                .as_ref()
                .and_then(|r| r.first())
                .map(String::as_str)
                .filter(|r| !r.is_empty())
                .or_else(|| str_field(detail, "name"))
                .ok_or_else(|| {
                    Error::InvalidEvent("Secret Label Updated without resources[0]".into())
                })?;
            let secret = SecretRef {
                id: id.to_string(),
                name: str_field(detail, "name")
                    .map(str::to_string)
                    .or_else(|| crate::arn::secret_name_if_full(id)),
            };
            if str_field(detail, "labelUpdated") == Some("AWSCURRENT") {
                Ok(request(Work::Replicate(vec![secret])))
            } else {
                Ok(request(skip(&secret, SkipReason::NotCurrent)))
            }
        }
        "AWS API Call via CloudTrail" | "AWS Service Event via CloudTrail" => {
            let event_name = str_field(detail, "eventName").ok_or_else(|| {
                Error::InvalidEvent("CloudTrail event without detail.eventName".into())
            })?;
            let secret = cloudtrail_secret(detail);
            let label = secret
                .as_ref()
                .map(|s| s.id.clone())
                .unwrap_or_else(|| event_name.to_string());
            let skip_with = |reason| Work::Skip {
                source: label.clone(),
                reason,
            };
            if detail.get("errorCode").is_some_and(|v| !v.is_null()) {
                return Ok(request(skip_with(SkipReason::CallFailed)));
            }
            if caused_by_me(detail, me) {
                return Ok(request(skip_with(SkipReason::SelfCaused)));
            }
            let params = detail.get("requestParameters").and_then(Value::as_object);
            let param = |key| params.and_then(|p| str_field(p, key)).map(str::to_string);
            // The version the call made current, for the stale-read guard (SPEC §5). Nothing
            // here decides *whether* to replicate: `responseElements` is `null` or `{"arn"}` in
            // real records, and whether a CreateSecret made a version is the source read's to say.
            let change = match event_name {
                "PutSecretValue" => Change {
                    version: param("clientRequestToken"),
                    ..at_only.clone()
                },
                "CreateSecret" => Change {
                    version: param("clientRequestToken"),
                    created: true,
                    ..at_only.clone()
                },
                "UpdateSecretVersionStage" => Change {
                    version: param("moveToVersionId"),
                    ..at_only.clone()
                },
                _ => at_only.clone(),
            };
            let work = match event_name {
                "CreateSecret" | "RotationSucceeded" | "RestoreSecret" => {
                    replicate(secret, event_name)?
                }
                "UpdateSecret" => Work::ReplicateWithMetadata(named(secret, event_name)?),
                "PutSecretValue" => {
                    let stages = params.and_then(|p| p.get("versionStages"));
                    let current = match stages.and_then(Value::as_array) {
                        None => true,
                        Some(s) => s.iter().any(|v| v.as_str() == Some("AWSCURRENT")),
                    };
                    if current {
                        replicate(secret, event_name)?
                    } else {
                        skip_with(SkipReason::NotCurrent)
                    }
                }
                "UpdateSecretVersionStage" => {
                    let stage = params.and_then(|p| str_field(p, "versionStage"));
                    let moved_to = params.and_then(|p| str_field(p, "moveToVersionId"));
                    if stage == Some("AWSCURRENT") && moved_to.is_some() {
                        replicate(secret, event_name)?
                    } else {
                        skip_with(SkipReason::NotCurrent)
                    }
                }
                "DeleteSecret" => Work::Delete(named(secret, event_name)?, deletion_window(detail)),
                "TagResource" | "UntagResource" => Work::SyncTags(named(secret, event_name)?),
                _ => skip_with(SkipReason::NotAValueChange),
            };
            Ok(request_with(work, change))
        }
        _ => Ok(request(Work::Skip {
            source: detail_type.to_string(),
            reason: SkipReason::NotAValueChange,
        })),
    }
}

fn replicate(secret: Option<SecretRef>, event_name: &str) -> Result<Work, Error> {
    named(secret, event_name).map(|s| Work::Replicate(vec![s]))
}

fn named(secret: Option<SecretRef>, event_name: &str) -> Result<SecretRef, Error> {
    secret.ok_or_else(|| Error::InvalidEvent(format!("{event_name} event that names no secret")))
}

fn skip(secret: &SecretRef, reason: SkipReason) -> Work {
    Work::Skip {
        source: secret.id.clone(),
        reason,
    }
}

/// The secret of a CloudTrail event: which id to call with, and its name when certain.
fn cloudtrail_secret(detail: &Map<String, Value>) -> Option<SecretRef> {
    let params = detail.get("requestParameters").and_then(Value::as_object);
    let response = detail.get("responseElements").and_then(Value::as_object);
    // Before February 2024 some events spelled `arn` as `aRN`: match the key case-insensitively.
    let response_arn = response.and_then(|r| {
        r.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("arn"))
            .and_then(|(_, v)| v.as_str())
    });
    let secret_id = params.and_then(|p| str_field(p, "secretId"));
    let create_name = params.and_then(|p| str_field(p, "name"));
    let service_id = detail
        .get("additionalEventData")
        .and_then(Value::as_object)
        .and_then(|a| str_field(a, "SecretId"))
        .or_else(|| {
            detail
                .get("serviceEventDetails")
                .and_then(Value::as_object)
                .and_then(|a| str_field(a, "secretId").or_else(|| str_field(a, "SecretId")))
        });
    let response_name = response.and_then(|r| str_field(r, "name"));

    // Call with the full ARN when the response gives one: it names exactly this secret.
    let id = response_arn
        .or(secret_id)
        .or(create_name)
        .or(service_id)?
        .to_string();
    let name = create_name
        .or(response_name)
        .map(str::to_string)
        .or_else(|| secret_id.and_then(name_from_id))
        .or_else(|| response_arn.and_then(crate::arn::secret_name_if_full))
        // A service event's `SecretId` is written by AWS: a full ARN, whose fixed suffix may be
        // dropped (SPEC §4).
        .or_else(|| {
            service_id
                .and_then(|id| name_from_id(id).or_else(|| crate::arn::secret_name_if_full(id)))
        });
    Some(SecretRef { id, name })
}

/// A plain id is the name; an ARN says nothing certain (it may be partial).
fn name_from_id(id: &str) -> Option<String> {
    (!id.starts_with("arn:")).then(|| id.to_string())
}

/// An event caused by this function: an assumed-role session named after the function, and,
/// when the function's role is known, issued by that role.
fn caused_by_me(detail: &Map<String, Value>, me: &Identity) -> bool {
    let Some(user) = detail.get("userIdentity").and_then(Value::as_object) else {
        return false;
    };
    if str_field(user, "type") != Some("AssumedRole") {
        return false;
    }
    let session = str_field(user, "arn").and_then(|a| a.rsplit('/').next());
    if session != Some(me.function_name.as_str()) {
        return false;
    }
    match &me.role_arn {
        None => true,
        Some(role) => {
            user.get("sessionContext")
                .and_then(|c| c.get("sessionIssuer"))
                .and_then(|i| i.get("arn"))
                .and_then(Value::as_str)
                == Some(role.as_str())
        }
    }
}

/// The recovery window a DeleteSecret event tells: `responseElements.deletionDate` (RFC 3339,
/// or CloudTrail's `MMM d, yyyy[,] h:mm:ss a`), else `requestParameters.recoveryWindowInDays`
/// (30 when absent) from `eventTime`; a forced delete is `Forced`.
fn deletion_window(detail: &Map<String, Value>) -> DeletionWindow {
    let params = detail.get("requestParameters").and_then(Value::as_object);
    let forced = params
        .and_then(|p| p.get("forceDeleteWithoutRecovery"))
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
    if forced {
        return DeletionWindow::Forced;
    }
    let date = detail
        .get("responseElements")
        .and_then(Value::as_object)
        .and_then(|r| str_field(r, "deletionDate"))
        .and_then(|d| crate::time::parse_rfc3339(d).or_else(|| crate::time::parse_cloudtrail(d)));
    if let Some(at) = date {
        return DeletionWindow::At(at);
    }
    let days = params
        .and_then(|p| p.get("recoveryWindowInDays"))
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.trim().parse().ok()))
        .unwrap_or(MAX_WINDOW_DAYS);
    let since = str_field(detail, "eventTime").and_then(crate::time::parse_rfc3339);
    DeletionWindow::After { days, since }
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests;
