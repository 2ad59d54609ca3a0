//! Fault-injecting HTTP/1.1 reverse proxy: makes "AWS" answer the way moto can't
//! (AccessDenied, throttling, 5xx, connection resets, lost responses, delays, and the stale
//! reads of an eventually consistent service: [`FaultProxy::stale_reads`]). Every injected
//! fault and every stale answer is logged ([`FaultProxy::fault_log`]), and so is every 5xx that
//! moto itself answered ([`FaultProxy::upstream_errors`]), so that a test can tell which
//! failures it caused.

use super::{
    Framing, Headers, bad, chunk_size, credential_scope, framing, header, identify, parse_head,
    status_of,
};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// What to do with a matching request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// AWS JSON-protocol error (Secrets Manager, KMS).
    JsonError {
        status: u16,
        code: String,
        message: String,
    },
    /// awsQuery error (STS).
    QueryError {
        status: u16,
        code: String,
        message: String,
    },
    /// Close the client connection abruptly (RST via `SO_LINGER` 0), no response.
    Reset,
    /// Forward the request (so it takes effect upstream), then reset the client connection
    /// instead of answering: a lost response. The client's retry repeats a request that
    /// already happened.
    ResetAfterForward,
    /// Forward normally and try no later rule: exempts the matching requests from the rules
    /// added after this one, and from stale answers ([`FaultProxy::stale_reads`]). Not a fault
    /// (not counted, not logged).
    Pass,
    /// Wait, then answer as if no rule had matched (forwarded, or a stale answer).
    Delay(Duration),
    /// Bare status with an empty body (e.g. 503).
    Status(u16),
}

impl Fault {
    /// JSON-protocol error: `{"__type":code,"message":message}` plus `x-amzn-ErrorType`.
    pub fn json_error(status: u16, code: &str, message: &str) -> Fault {
        Fault::JsonError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
    /// awsQuery (STS) `<ErrorResponse>` XML error.
    pub fn query_error(status: u16, code: &str, message: &str) -> Fault {
        Fault::QueryError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
    /// Secrets Manager / KMS `AccessDeniedException` (400).
    pub fn access_denied() -> Fault {
        let msg = "User: arn:aws:sts::123456789012:assumed-role/replicator/test is not authorized to perform this operation because no identity-based policy allows it";
        Fault::json_error(400, "AccessDeniedException", msg)
    }
    /// STS `AccessDenied` (403).
    pub fn sts_access_denied() -> Fault {
        let msg = "User: arn:aws:sts::123456789012:assumed-role/replicator/test is not authorized to perform: sts:AssumeRole";
        Fault::query_error(403, "AccessDenied", msg)
    }
    /// `ThrottlingException` (400, "Rate exceeded").
    pub fn throttling() -> Fault {
        Fault::json_error(400, "ThrottlingException", "Rate exceeded")
    }
    /// Secrets Manager `InternalServiceError` (500).
    pub fn internal_error() -> Fault {
        Fault::json_error(
            500,
            "InternalServiceError",
            "We encountered an internal error. Please try again.",
        )
    }

    /// A short name for logs: the AWS error code, `HTTP <status>`, `Reset`,
    /// `ResetAfterForward`, `Delay` or `Pass`.
    pub fn name(&self) -> String {
        match self {
            Fault::JsonError { code, .. } | Fault::QueryError { code, .. } => code.clone(),
            Fault::Status(status) => format!("HTTP {status}"),
            Fault::Reset => "Reset".into(),
            Fault::ResetAfterForward => "ResetAfterForward".into(),
            Fault::Delay(_) => "Delay".into(),
            Fault::Pass => "Pass".into(),
        }
    }

    /// Wire response for the error kinds.
    fn response(&self) -> Vec<u8> {
        let id = request_id();
        let (status, mut headers, body) = match self {
            Fault::JsonError {
                status,
                code,
                message,
            } => {
                let body = serde_json::json!({ "__type": code, "message": message }).to_string();
                let h = vec![
                    h("x-amzn-ErrorType", code),
                    h("Content-Type", "application/x-amz-json-1.1"),
                ];
                (*status, h, body)
            }
            Fault::QueryError {
                status,
                code,
                message,
            } => {
                let kind = if *status >= 500 { "Receiver" } else { "Sender" };
                let body = format!(
                    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>{kind}</Type>\
                     <Code>{}</Code><Message>{}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>",
                    xml_escape(code),
                    xml_escape(message)
                );
                (*status, vec![h("Content-Type", "text/xml")], body)
            }
            Fault::Status(status) => (*status, vec![], String::new()),
            Fault::Reset | Fault::ResetAfterForward | Fault::Delay(_) | Fault::Pass => {
                unreachable!("not a response fault")
            }
        };
        headers.push(h("x-amzn-RequestId", &id));
        encode(
            &format!("HTTP/1.1 {status} Injected Fault"),
            &headers,
            body.as_bytes(),
        )
    }
}

/// Which requests a [`Rule`] applies to.
#[derive(Debug, Clone, Default)]
pub struct Match {
    op: Option<String>,
    service: Option<String>,
    body: Vec<String>,
    headers: Vec<(String, String)>,
}

impl Match {
    /// Every request.
    pub fn any() -> Match {
        Match::default()
    }
    /// Requests for operation `op` (e.g. `"PutSecretValue"`, `"AssumeRole"`).
    pub fn op(op: &str) -> Match {
        Match {
            op: Some(op.into()),
            ..Match::default()
        }
    }
    /// Requests to service `svc` (SigV4 signing name: `"secretsmanager"`, `"kms"`, `"sts"`).
    pub fn service(svc: &str) -> Match {
        Match {
            service: Some(svc.into()),
            ..Match::default()
        }
    }
    /// Additionally require the raw body to contain `s` (STS form bodies are percent-encoded).
    pub fn body_contains(mut self, s: &str) -> Match {
        self.body.push(s.into());
        self
    }
    /// Additionally require header `name` (case-insensitive) to contain `s`: e.g. the SDK's
    /// `x-amz-user-agent`, which carries `app/<name>` for a client built with an app name, to
    /// tell a test's own client from the function's.
    pub fn header_contains(mut self, name: &str, s: &str) -> Match {
        self.headers.push((name.into(), s.into()));
        self
    }
    fn matches(&self, req: &Request<'_>) -> bool {
        let body = req.body;
        self.op.as_ref().is_none_or(|o| o == req.op)
            && self.service.as_ref().is_none_or(|s| s == req.service)
            && self
                .headers
                .iter()
                .all(|(k, n)| header(req.headers, k).is_some_and(|v| v.contains(n.as_str())))
            && self
                .body
                .iter()
                .all(|n| n.is_empty() || body.windows(n.len()).any(|w| w == n.as_bytes()))
    }
}

/// A [`Match`] → [`Fault`] rule; rules are tried in insertion order, the first that fires wins.
#[derive(Debug, Clone)]
pub struct Rule {
    matcher: Match,
    fault: Fault,
    remaining: Option<usize>,
    probability: f64,
    rng: u64,
}

impl Rule {
    /// Applies `fault` to every matching request.
    pub fn new(matcher: Match, fault: Fault) -> Rule {
        Rule {
            matcher,
            fault,
            remaining: None,
            probability: 1.0,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }
    /// Fires for the first `n` matching requests only, then lets them pass.
    pub fn times(mut self, n: usize) -> Rule {
        self.remaining = Some(n);
        self
    }
    /// Fires for each matching request with probability `p` (deterministic xorshift PRNG);
    /// when it does not fire, later rules are tried.
    pub fn probability(mut self, p: f64) -> Rule {
        self.probability = p;
        self
    }
    /// Seeds the PRNG used by [`Rule::probability`].
    pub fn seed(mut self, seed: u64) -> Rule {
        self.rng = seed.max(1);
        self
    }
    fn fire(&mut self, req: &Request<'_>) -> Option<Fault> {
        if self.remaining == Some(0) || !self.matcher.matches(req) {
            return None;
        }
        if self.probability < 1.0 {
            self.rng = xorshift(self.rng);
            if (self.rng >> 11) as f64 / (1u64 << 53) as f64 >= self.probability {
                return None;
            }
        }
        self.remaining = self.remaining.map(|n| n - 1);
        Some(self.fault.clone())
    }
}

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// A request id for an answer the proxy makes up (UUID-shaped, recognisably the proxy's).
fn request_id() -> String {
    let n = REQUEST_IDS.fetch_add(1, Ordering::Relaxed);
    format!(
        "{n:08x}-fa17-4bad-8000-{:012x}",
        xorshift(n + 1) & 0xffff_ffff_ffff
    )
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^ (x << 17)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn h(k: &str, v: &str) -> (String, String) {
    (k.into(), v.into())
}

/// One request the proxy did something about: an injected fault or a stale answer
/// ([`FaultProxy::fault_log`]), or a 5xx answer of the upstream that it passed on
/// ([`FaultProxy::upstream_errors`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// Signing name (`secretsmanager`, `sts`, ...).
    pub service: String,
    /// Operation, e.g. `PutSecretValue`.
    pub op: String,
    /// Signing region from the SigV4 credential scope (empty if unsigned).
    pub region: String,
    /// [`Fault::name`] of the injected fault; [`STALE`] for a stale answer; for an upstream
    /// error, `HTTP <status>`.
    pub fault: String,
    /// Request body (lossy UTF-8).
    pub body: String,
    /// For a stale answer: what the proxy answered instead of asking upstream.
    pub stale: Option<StaleAnswer>,
}

/// The [`Logged::fault`] of a stale answer.
pub const STALE: &str = "Stale";

/// What a stale read was answered ([`FaultProxy::stale_reads`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleAnswer {
    /// The secret as the proxy identifies it: `<account>:<region>:<name>`, or
    /// `<account>:<region>:*` for the region's listing (ListSecrets).
    pub secret: String,
    /// Status of the answer served (200, or 400 for an error).
    pub status: u16,
    /// Body of the answer served (lossy UTF-8): an earlier answer to the same request, or a
    /// `ResourceNotFoundException` from before the secret (or version) was created.
    pub body: String,
    /// How long before the read the write was that made this answer stale.
    pub since_write: Duration,
}

impl StaleAnswer {
    /// A top-level string field of the answer served (`VersionId`, `__type`, ...).
    pub fn field(&self, key: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        v.get(key)?.as_str().map(str::to_string)
    }
}

/// What the proxy needs to know of a request to decide about it.
struct Request<'a> {
    service: &'a str,
    op: &'a str,
    region: &'a str,
    /// Access key of the SigV4 credential scope (empty if unsigned).
    key: &'a str,
    headers: &'a [(String, String)],
    body: &'a [u8],
}

#[derive(Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    /// op → (hits, faults)
    counts: Mutex<HashMap<String, (usize, usize)>>,
    faults: Mutex<Vec<Logged>>,
    upstream_errors: Mutex<Vec<Logged>>,
    memory: Mutex<Memory>,
    trace: Mutex<Vec<Traced>>,
}

/// One request the proxy served, in the order it finished with them ([`FaultProxy::trace`]):
/// a timeline for failure messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traced {
    /// When the proxy finished with it (answered or reset), since the first proxy started.
    pub at: Duration,
    /// Signing name (`secretsmanager`, `sts`, ...).
    pub service: String,
    /// Operation, e.g. `PutSecretValue`.
    pub op: String,
    /// Signing region (empty if unsigned).
    pub region: String,
    /// Request body (lossy UTF-8).
    pub body: String,
    /// What the proxy did besides forwarding: a [`Fault::name`], [`STALE`], `Delay, Stale`, or
    /// empty.
    pub fault: String,
    /// Status of the answer upstream gave (the client did not get it after a
    /// `ResetAfterForward`) or of the stale answer; `None` for a reset or an injected error.
    pub status: Option<u16>,
    /// Body of that answer (lossy UTF-8).
    pub answer: String,
}

/// The start of [`Traced::at`].
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Shared {
    /// The first rule that fires, [`Fault::Pass`] included (counted and logged only when it is
    /// a fault).
    fn decide(&self, req: &Request<'_>) -> Option<Fault> {
        let fault = self
            .rules
            .lock()
            .unwrap()
            .iter_mut()
            .find_map(|r| r.fire(req));
        let faulted = fault.as_ref().filter(|f| !matches!(f, Fault::Pass));
        self.count(req.op, faulted.is_some(), true);
        if let Some(f) = faulted {
            self.faults
                .lock()
                .unwrap()
                .push(logged(req, f.name(), None));
        }
        fault
    }

    fn count(&self, op: &str, fault: bool, hit: bool) {
        let mut counts = self.counts.lock().unwrap();
        let c = counts.entry(op.to_string()).or_default();
        c.0 += usize::from(hit);
        c.1 += usize::from(fault);
    }

    /// What a request that no rule faulted gets: a stale answer (eventual-consistency mode;
    /// `true`), else the upstream's.
    async fn answer(
        &self,
        upstream: SocketAddr,
        msg: &Message,
        req: &Request<'_>,
    ) -> (Reply, bool) {
        let stale = self.memory.lock().unwrap().stale(req);
        match stale {
            Some((reply, stale)) => {
                self.count(req.op, true, false);
                self.faults
                    .lock()
                    .unwrap()
                    .push(logged(req, STALE.into(), Some(stale)));
                (reply, true)
            }
            None => (self.forward(upstream, msg, req).await, false),
        }
    }

    fn trace(&self, req: &Request<'_>, fault: &str, reply: Option<&Reply>) {
        let entry = Traced {
            at: epoch().elapsed(),
            service: req.service.into(),
            op: req.op.into(),
            region: req.region.into(),
            body: String::from_utf8_lossy(req.body).into_owned(),
            fault: fault.into(),
            status: reply.map(|r| r.status),
            answer: reply.map_or(String::new(), |r| {
                String::from_utf8_lossy(&r.body).into_owned()
            }),
        };
        self.trace.lock().unwrap().push(entry);
    }

    /// Forwards, logging a 5xx answer (moto's own, or the proxy's 502/504 when moto failed),
    /// and remembering what the answer says of the secret (eventual-consistency mode).
    async fn forward(&self, upstream: SocketAddr, msg: &Message, req: &Request<'_>) -> Reply {
        let before = self.memory.lock().unwrap().before(req);
        let reply = forward(upstream, msg).await;
        if reply.status >= 500 {
            let entry = logged(req, format!("HTTP {}", reply.status), None);
            self.upstream_errors.lock().unwrap().push(entry);
        }
        self.memory.lock().unwrap().after(req, before, &reply);
        reply
    }
}

fn logged(req: &Request<'_>, fault: String, stale: Option<StaleAnswer>) -> Logged {
    Logged {
        service: req.service.into(),
        op: req.op.into(),
        region: req.region.into(),
        fault,
        body: String::from_utf8_lossy(req.body).into_owned(),
        stale,
    }
}

// ---- eventual consistency ----------------------------------------------------------------------

/// Reads of one secret whose answers the proxy remembers.
const SECRET_READS: [&str; 3] = ["GetSecretValue", "DescribeSecret", "ListSecretVersionIds"];
/// The region-wide read: a page of it answers for every secret, so every write changes it.
const LISTING: &str = "ListSecrets";
/// Writes that change what the reads of a secret (and the region's listing) answer.
const WRITES: [&str; 10] = [
    "CreateSecret",
    "PutSecretValue",
    "UpdateSecret",
    "UpdateSecretVersionStage",
    "TagResource",
    "UntagResource",
    "DeleteSecret",
    "RestoreSecret",
    "RotateSecret",
    "CancelRotateSecret",
];

/// The eventual-consistency switch ([`FaultProxy::stale_reads`]).
struct StaleMode {
    share: f64,
    window: Duration,
    rng: u64,
}

/// What the proxy remembers of the service's answers, per secret, so that it can answer a read
/// made shortly after a write with the state from before it.
#[derive(Default)]
struct Memory {
    mode: Option<StaleMode>,
    /// Access key → account: from AssumeRole answers, and from answers to requests by name
    /// (a secret named without an ARN is the caller's own).
    accounts: HashMap<String, String>,
    /// Full ARN (as AWS returned it, with its 7-character suffix) → name.
    arns: HashMap<String, String>,
    subjects: HashMap<Subject, Seen>,
}

/// A secret (`secret` = its name), or the listing of an account and region (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Subject {
    account: String,
    region: String,
    secret: Option<String>,
}

impl Subject {
    fn listing(&self) -> Subject {
        Subject {
            secret: None,
            ..self.clone()
        }
    }
    fn label(&self) -> String {
        let name = self.secret.as_deref().unwrap_or("*");
        format!("{}:{}:{name}", self.account, self.region)
    }
}

/// One subject's reads, by request (operation and parameters other than the secret id).
#[derive(Default)]
struct Seen {
    /// Writes that succeeded: a read that a write overtook is not remembered (it may show
    /// either state).
    writes: u64,
    /// When the secret was created through the proxy: before that, every read of it answered
    /// ResourceNotFoundException.
    created: Option<Instant>,
    reads: HashMap<String, Known>,
}

/// The answers to one read of one subject.
#[derive(Default)]
struct Known {
    /// The last answer since the last write: the current state.
    fresh: Option<Reply>,
    /// The last answer before the last write that changed it, and when that write was.
    stale: Option<(Reply, Instant)>,
}

/// What [`Memory::before`] noted of a request, for [`Memory::after`].
enum Before {
    Read {
        subject: Subject,
        read: String,
        writes: u64,
    },
    Write,
    Other,
}

fn json_body(body: &[u8]) -> Option<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_slice(body).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The request's parameters without the secret id: which read of a subject it is.
fn read_key(op: &str, mut params: serde_json::Map<String, serde_json::Value>) -> String {
    params.remove("SecretId");
    format!("{op} {}", serde_json::Value::Object(params))
}

fn secret_id(op: &str, params: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let key = if op == "CreateSecret" {
        "Name"
    } else {
        "SecretId"
    };
    params.get(key)?.as_str().map(str::to_string)
}

/// `arn:<partition>:secretsmanager:<region>:<account>:secret:<rest>` → (region, account, rest).
fn split_arn(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.splitn(7, ':').collect();
    match parts[..] {
        ["arn", _, "secretsmanager", region, account, "secret", rest] => {
            Some((region, account, rest))
        }
        _ => None,
    }
}

/// Whether an upstream answer says something about the secret's state (and so may be served
/// again, stale): a success, or a not-found or invalid-request (deleted) error (AWS answers them
/// with 400, moto a not-found with 404).
fn is_state(reply: &Reply) -> bool {
    reply.status == 200
        || ((400..500).contains(&reply.status)
            && json_body(&reply.body)
                .and_then(|m| m.get("__type")?.as_str().map(str::to_string))
                .is_some_and(|t| {
                    t.ends_with("ResourceNotFoundException")
                        || t.ends_with("InvalidRequestException")
                }))
}

/// What AWS answers a read of a secret (or version) that does not exist.
fn not_found() -> Reply {
    let body = serde_json::json!({
        "__type": "ResourceNotFoundException",
        "message": "Secrets Manager can't find the specified secret."
    });
    Reply {
        status: 400,
        start: "HTTP/1.1 400 Bad Request".into(),
        headers: vec![
            h("x-amzn-ErrorType", "ResourceNotFoundException"),
            h("Content-Type", "application/x-amz-json-1.1"),
        ],
        body: body.to_string().into_bytes(),
    }
}

impl Memory {
    /// The account of an access key, as far as the proxy has learned it.
    fn account(&self, key: &str) -> String {
        self.accounts
            .get(key)
            .cloned()
            .unwrap_or_else(|| format!("key:{key}"))
    }

    /// The secret a request names. A full ARN that AWS returned names the secret of its `Name`;
    /// any other ARN is taken as a partial one (its resource part is the name: a suffix is never
    /// stripped by guessing); a name is the caller's own secret in the signing region.
    fn subject(&self, req: &Request<'_>, id: &str) -> Subject {
        if let Some((region, account, rest)) = split_arn(id) {
            let name = self.arns.get(id).map_or(rest, String::as_str);
            return Subject {
                account: account.into(),
                region: region.into(),
                secret: Some(name.into()),
            };
        }
        Subject {
            account: self.account(req.key),
            region: req.region.into(),
            secret: Some(id.into()),
        }
    }

    /// Learns full ARNs, and the caller's account, from an answer.
    fn learn(&mut self, req: &Request<'_>, by_name: bool, reply: &Reply) {
        if req.service == "sts" && req.op == "AssumeRole" && reply.status == 200 {
            let text = String::from_utf8_lossy(&reply.body);
            let between = |a: &str, b: &str| {
                let rest = text.split(a).nth(1)?;
                rest.split(b).next().map(str::to_string)
            };
            let key = between("<AccessKeyId>", "</AccessKeyId>");
            let arn = between("<Arn>", "</Arn>");
            let account = arn.as_deref().and_then(|a| a.split(':').nth(4));
            if let (Some(key), Some(account)) = (key, account) {
                self.learn_account(&key, account);
            }
            return;
        }
        let Some(body) = json_body(&reply.body) else {
            return;
        };
        let listed = body.get("SecretList").and_then(|l| l.as_array());
        let entries = listed
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_object())
            .chain(std::iter::once(&body));
        for e in entries {
            let (Some(arn), Some(name)) = (
                e.get("ARN").and_then(|v| v.as_str()),
                e.get("Name").and_then(|v| v.as_str()),
            ) else {
                continue;
            };
            if let Some((_, account, _)) = split_arn(arn) {
                if by_name && !req.key.is_empty() {
                    self.learn_account(req.key, account);
                }
                self.arns.insert(arn.into(), name.into());
            }
        }
    }

    /// Learns that `key` is of `account`: what was remembered under the key alone (before its
    /// account was known) now belongs to the account.
    fn learn_account(&mut self, key: &str, account: &str) {
        if self.accounts.get(key).is_some_and(|a| a == account) {
            return;
        }
        self.accounts.insert(key.into(), account.into());
        let unknown = format!("key:{key}");
        let moved: Vec<Subject> = self
            .subjects
            .keys()
            .filter(|s| s.account == unknown)
            .cloned()
            .collect();
        for old in moved {
            let seen = self.subjects.remove(&old).unwrap_or_default();
            let new = Subject {
                account: account.into(),
                ..old
            };
            let into = self.subjects.entry(new).or_default();
            for (read, known) in seen.reads {
                into.reads.entry(read).or_insert(known);
            }
        }
    }

    /// A subject noted before its caller's account was known, under that account if it is now.
    fn resolve(&self, subject: Subject) -> Subject {
        match subject.account.strip_prefix("key:") {
            Some(key) if self.accounts.contains_key(key) => Subject {
                account: self.account(key),
                ..subject
            },
            _ => subject,
        }
    }

    /// Before forwarding: which read of which subject this is, and how many writes it had.
    fn before(&self, req: &Request<'_>) -> Before {
        if req.service != "secretsmanager" {
            return Before::Other;
        }
        if WRITES.contains(&req.op) {
            return Before::Write;
        }
        let Some(params) = json_body(req.body) else {
            return Before::Other;
        };
        let subject = if req.op == LISTING {
            Subject {
                account: self.account(req.key),
                region: req.region.into(),
                secret: None,
            }
        } else if SECRET_READS.contains(&req.op) {
            match secret_id(req.op, &params) {
                Some(id) => self.subject(req, &id),
                None => return Before::Other,
            }
        } else {
            return Before::Other;
        };
        let writes = self.subjects.get(&subject).map_or(0, |s| s.writes);
        Before::Read {
            subject,
            read: read_key(req.op, params),
            writes,
        }
    }

    /// After forwarding: remember a read's answer as the current state (unless a write overtook
    /// it), or turn a successful write's subject's current answers into stale ones.
    fn after(&mut self, req: &Request<'_>, before: Before, reply: &Reply) {
        let params = json_body(req.body);
        let id = params.as_ref().and_then(|p| secret_id(req.op, p));
        let by_name = req.op == LISTING || id.as_deref().is_some_and(|i| split_arn(i).is_none());
        self.learn(req, by_name, reply);
        match before {
            Before::Read {
                subject,
                read,
                writes,
            } => {
                if !is_state(reply) {
                    return;
                }
                let subject = self.resolve(subject);
                let seen = self.subjects.entry(subject).or_default();
                if seen.writes == writes {
                    seen.reads.entry(read).or_default().fresh = Some(reply.clone());
                }
            }
            Before::Write if (200..300).contains(&reply.status) => {
                let answered = json_body(&reply.body);
                let field = |k: &str| {
                    answered
                        .as_ref()
                        .and_then(|m| m.get(k)?.as_str().map(str::to_string))
                };
                // The answer's ARN names the secret exactly; the request's id may not.
                let Some(id) = field("ARN").or(id) else {
                    return;
                };
                let subject = self.subject(req, &id);
                let now = Instant::now();
                self.wrote(&subject.listing(), now);
                self.wrote(&subject, now);
                let seen = self.subjects.entry(subject).or_default();
                if req.op == "CreateSecret" {
                    // Before it, the secret did not exist: every read of it answered so.
                    seen.created = Some(now);
                    for known in seen.reads.values_mut() {
                        known.fresh = None;
                        known.stale = Some((not_found(), now));
                    }
                } else if let Some(version) = field("VersionId") {
                    // A read of the version just created may not find it yet.
                    let mut read = serde_json::Map::new();
                    read.insert("VersionId".into(), version.into());
                    let read = read_key("GetSecretValue", read);
                    seen.reads.entry(read).or_default().stale = Some((not_found(), now));
                }
            }
            Before::Write | Before::Other => {}
        }
    }

    /// A write to `subject` succeeded at `now`: what was current is now stale.
    fn wrote(&mut self, subject: &Subject, now: Instant) {
        let seen = self.subjects.entry(subject.clone()).or_default();
        seen.writes += 1;
        for known in seen.reads.values_mut() {
            if let Some(fresh) = known.fresh.take() {
                known.stale = Some((fresh, now));
            }
        }
    }

    /// In eventual-consistency mode, a read inside the window of a write to its subject is, with
    /// the configured probability, answered with what the same read answered before that write.
    fn stale(&mut self, req: &Request<'_>) -> Option<(Reply, StaleAnswer)> {
        let window = self.mode.as_ref()?.window;
        let Before::Read { subject, read, .. } = self.before(req) else {
            return None;
        };
        let now = Instant::now();
        let seen = self.subjects.get(&subject)?;
        let open = |t: &Instant| now < *t + window;
        let known = seen.reads.get(&read).and_then(|k| k.stale.clone());
        let absent = match subject.secret {
            Some(_) => seen.created.map(|t| (not_found(), t)),
            None => None,
        };
        // The most recent state that a write within the window replaced.
        let (reply, written) = [known, absent]
            .into_iter()
            .flatten()
            .filter(|(_, t)| open(t))
            .max_by_key(|(_, t)| *t)?;
        let mode = self.mode.as_mut()?;
        mode.rng = xorshift(mode.rng);
        if (mode.rng >> 11) as f64 / (1u64 << 53) as f64 >= mode.share {
            return None;
        }
        let stale = StaleAnswer {
            secret: subject.label(),
            status: reply.status,
            body: String::from_utf8_lossy(&reply.body).into_owned(),
            since_write: now - written,
        };
        Some((reply, stale))
    }
}

/// HTTP/1.1 reverse proxy on a free 127.0.0.1 port, on its own tokio runtime/thread
/// (usable from sync and async tests). Stopped on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (e.g. `moto.addr()`).
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        epoch();
        let listener =
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind fault proxy");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Shared::default());
        let (stop, mut stopped) = oneshot::channel::<()>();
        let state = shared.clone();
        let thread = thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio listener");
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            accepted = listener.accept() => match accepted {
                                Ok((conn, _)) => drop(tokio::spawn(serve(conn, upstream, state.clone()))),
                                // e.g. EMFILE under load: back off instead of spinning.
                                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                            }
                        }
                    }
                });
            })
            .expect("spawn proxy thread");
        FaultProxy {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` — point the SDK clients here.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Appends a rule (evaluated after the existing ones).
    pub fn add_rule(&self, rule: Rule) {
        self.shared.rules.lock().unwrap().push(rule);
    }

    /// Removes all rules.
    pub fn clear_rules(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// Requests seen for operation `op`, faulted or not.
    pub fn hits(&self, op: &str) -> usize {
        self.counts(op).0
    }

    /// Requests for `op` that got a fault (including [`Fault::Delay`]).
    pub fn faults(&self, op: &str) -> usize {
        self.counts(op).1
    }

    fn counts(&self, op: &str) -> (usize, usize) {
        let counts = self.shared.counts.lock().unwrap();
        counts.get(op).copied().unwrap_or_default()
    }

    /// Zeroes [`FaultProxy::hits`] and [`FaultProxy::faults`].
    pub fn reset_counts(&self) {
        self.shared.counts.lock().unwrap().clear();
    }

    /// Every fault injected so far (a [`Fault::Delay`] included, [`Fault::Pass`] not), in
    /// order.
    pub fn fault_log(&self) -> Vec<Logged> {
        self.shared.faults.lock().unwrap().clone()
    }

    /// Every 5xx answer the proxy forwarded from upstream (or made up because upstream failed:
    /// 502, 504), in order. Not injected faults: moto's own.
    pub fn upstream_errors(&self) -> Vec<Logged> {
        self.shared.upstream_errors.lock().unwrap().clone()
    }

    /// Every request served so far, with what the proxy did and what was answered, in the
    /// order the proxy finished with them.
    pub fn trace(&self) -> Vec<Traced> {
        self.shared.trace.lock().unwrap().clone()
    }

    /// Empties [`FaultProxy::fault_log`], [`FaultProxy::upstream_errors`] and
    /// [`FaultProxy::trace`].
    pub fn clear_logs(&self) {
        self.shared.faults.lock().unwrap().clear();
        self.shared.upstream_errors.lock().unwrap().clear();
        self.shared.trace.lock().unwrap().clear();
    }

    /// Adds the "chaos mix" for every request: about `share` of all requests (0..1) get one of
    /// seven faults, in equal parts: throttling, an internal error (500), a bare 503, a
    /// connection reset, a lost response ([`Fault::ResetAfterForward`]), and a delay of 50 ms or
    /// 250 ms (then forwarded). The two errors speak the service's protocol: JSON
    /// `ThrottlingException` / `InternalServiceError` for Secrets Manager and KMS, awsQuery
    /// `Throttling` / `InternalFailure` for STS. Deterministic for a given `seed` and request
    /// order. Appended after the existing rules, which keep precedence.
    pub fn chaos(&self, share: f64, seed: u64) {
        type Kind = fn(&str) -> Fault;
        let kinds: [Kind; 7] = [
            |svc| match svc {
                "sts" => Fault::query_error(400, "Throttling", "Rate exceeded"),
                _ => Fault::throttling(),
            },
            |svc| match svc {
                "sts" => Fault::query_error(500, "InternalFailure", "Internal failure"),
                _ => Fault::internal_error(),
            },
            |_| Fault::Status(503),
            |_| Fault::Reset,
            |_| Fault::ResetAfterForward,
            |_| Fault::Delay(Duration::from_millis(50)),
            |_| Fault::Delay(Duration::from_millis(250)),
        ];
        let each = share.clamp(0.0, 1.0) / kinds.len() as f64;
        for (i, kind) in kinds.into_iter().enumerate() {
            // Rules fire in order: the i-th applicable rule sees only the requests no earlier
            // rule took, so its own probability is its share of what is left.
            let left = 1.0 - each * i as f64;
            let p = if left > 0.0 { each / left } else { 0.0 };
            let seed = |n: u64| splitmix(seed ^ (8 * i as u64 + n).wrapping_mul(0x9E37_79B9));
            if i < 2 {
                // Protocol-specific errors: one rule per service.
                for (n, svc) in ["secretsmanager", "kms", "sts"].into_iter().enumerate() {
                    let rule = Rule::new(Match::service(svc), kind(svc));
                    self.add_rule(rule.probability(p).seed(seed(n as u64 + 1)));
                }
            } else {
                let rule = Rule::new(Match::any(), kind(""));
                self.add_rule(rule.probability(p).seed(seed(0)));
            }
        }
    }
}

impl FaultProxy {
    /// Eventual-consistency mode (SPEC §12: "every Secrets Manager operation is eventually
    /// consistent"; "ListSecrets might not reflect changes from the last five minutes").
    ///
    /// The proxy always remembers, per secret, the last answer to each read (GetSecretValue,
    /// DescribeSecret, ListSecretVersionIds; per request parameters, e.g. `VersionStage`), and
    /// per account and region the last answer to each ListSecrets request (each page). A secret
    /// is identified by account, region and name: a name, a partial ARN, and a full ARN that
    /// AWS returned (its 7-character suffix stripped by the `Name` AWS returned with it) name
    /// the same secret. When a write succeeds (CreateSecret, PutSecretValue, UpdateSecret,
    /// UpdateSecretVersionStage, Tag/UntagResource, DeleteSecret, RestoreSecret, Rotate/
    /// CancelRotateSecret; a lost response counts: the write happened), what was current
    /// becomes the state from before the write, for `window`. In that window, each read of that
    /// secret (or a listing of its region) is, with probability `share`, answered from that
    /// state instead of being forwarded: the last answer the same read got before the write;
    /// `ResourceNotFoundException` when the write created the secret (or, for GetSecretValue by
    /// `VersionId`, the version). Two writes in a row do not stretch a state's window: a state
    /// is served at most `window` after the write that replaced it. A read no earlier answer
    /// exists for is forwarded. Every stale answer is logged in [`FaultProxy::fault_log`]
    /// (fault [`STALE`], with [`Logged::stale`]) and counted in [`FaultProxy::faults`].
    ///
    /// Requests exempted with [`Fault::Pass`] are never answered stale (their writes still
    /// open windows). Deterministic for a given `seed` and request order. `share` 0 (or a zero
    /// window) switches the mode off; the proxy keeps remembering.
    pub fn stale_reads(&self, share: f64, window: Duration, seed: u64) {
        let on = share > 0.0 && !window.is_zero();
        self.shared.memory.lock().unwrap().mode = on.then(|| StaleMode {
            share: share.min(1.0),
            window,
            rng: splitmix(seed ^ 0x57A1_E000).max(1),
        });
    }
}

/// SplitMix64: spreads nearby seeds apart (xorshift needs non-trivial state).
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A parsed HTTP/1.1 message (body de-chunked).
struct Message {
    start: String,
    headers: Headers,
    body: Vec<u8>,
}

/// Serves one client connection (keep-alive) until it closes or asks to.
async fn serve(conn: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let _ = conn.set_nodelay(true);
    let mut conn = BufReader::new(conn);
    while let Ok(Some(msg)) = read_message(&mut conn, false).await {
        let path = msg.start.split(' ').nth(1).unwrap_or("/");
        let (service, op) = identify(&msg.headers, path, &msg.body);
        let scope = credential_scope(&msg.headers);
        let (region, key) = scope.map(|s| (s.region, s.access_key)).unwrap_or_default();
        let req = Request {
            service: &service,
            op: &op,
            region: &region,
            key: &key,
            headers: &msg.headers,
            body: &msg.body,
        };
        let answered = |(reply, stale): (Reply, bool), delayed: bool| {
            let fault = match (delayed, stale) {
                (true, true) => "Delay, Stale",
                (true, false) => "Delay",
                (false, true) => STALE,
                (false, false) => "",
            };
            shared.trace(&req, fault, Some(&reply));
            match stale {
                true => reply.encode_fresh_id(),
                false => reply.encode(),
            }
        };
        let resp = match shared.decide(&req) {
            Some(Fault::Reset) => {
                shared.trace(&req, "Reset", None);
                let _ = conn.get_ref().set_zero_linger();
                return;
            }
            Some(Fault::ResetAfterForward) => {
                let reply = shared.forward(upstream, &msg, &req).await;
                shared.trace(&req, "ResetAfterForward", Some(&reply));
                let _ = conn.get_ref().set_zero_linger();
                return;
            }
            Some(Fault::Pass) => {
                let reply = shared.forward(upstream, &msg, &req).await;
                answered((reply, false), false)
            }
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                answered(shared.answer(upstream, &msg, &req).await, true)
            }
            Some(fault) => {
                shared.trace(&req, &fault.name(), None);
                fault.response()
            }
            None => answered(shared.answer(upstream, &msg, &req).await, false),
        };
        let close =
            header(&msg.headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if conn.get_mut().write_all(&resp).await.is_err() || close {
            return;
        }
    }
}

/// An upstream answer (or the proxy's own 502/504 when upstream failed).
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    start: String,
    headers: Headers,
    body: Vec<u8>,
}

impl Reply {
    fn encode(&self) -> Vec<u8> {
        encode(&self.start, &self.headers, &self.body)
    }

    /// The same answer under a new request id (an answer served again is another response).
    fn encode_fresh_id(&self) -> Vec<u8> {
        let mut headers: Headers = self
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("x-amzn-RequestId"))
            .cloned()
            .collect();
        headers.push(h("x-amzn-RequestId", &request_id()));
        encode(&self.start, &headers, &self.body)
    }
}

/// Forwards on a fresh upstream connection; a 502 if upstream fails, a 504 if it takes > 60 s.
async fn forward(upstream: SocketAddr, req: &Message) -> Reply {
    let attempt = async {
        let mut up = BufReader::new(TcpStream::connect(upstream).await?);
        let mut headers = strip_hop_by_hop(&req.headers);
        headers.push(h("Connection", "close"));
        up.get_mut()
            .write_all(&encode(&req.start, &headers, &req.body))
            .await?;
        read_message(&mut up, true)
            .await?
            .ok_or_else(|| bad("upstream closed without response"))
    };
    let failed = |status: u16, start: &str, body: Vec<u8>| Reply {
        status,
        start: start.into(),
        headers: vec![],
        body,
    };
    match tokio::time::timeout(Duration::from_secs(60), attempt).await {
        Ok(Ok(resp)) => Reply {
            status: status_of(&resp.start).unwrap_or(502),
            headers: strip_hop_by_hop(&resp.headers),
            start: resp.start,
            body: resp.body,
        },
        Ok(Err(e)) => failed(
            502,
            "HTTP/1.1 502 Bad Gateway",
            format!("fault proxy: {e}").into_bytes(),
        ),
        Err(_) => failed(
            504,
            "HTTP/1.1 504 Gateway Timeout",
            b"fault proxy: upstream timeout".to_vec(),
        ),
    }
}

fn strip_hop_by_hop(headers: &[(String, String)]) -> Headers {
    const HOP: [&str; 7] = [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "expect",
        "te",
        "upgrade",
    ];
    headers
        .iter()
        .filter(|(k, _)| !HOP.iter().any(|h| k.eq_ignore_ascii_case(h)))
        .cloned()
        .collect()
}

/// Start line + headers + `Content-Length` + body.
fn encode(start: &str, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{start}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Reads one message; `Ok(None)` on a clean EOF before any byte. Answers `Expect: 100-continue`.
async fn read_message(r: &mut BufReader<TcpStream>, response: bool) -> io::Result<Option<Message>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return if lines.is_empty() {
                Ok(None)
            } else {
                Err(bad("truncated head"))
            };
        }
        match line.trim_end() {
            "" if lines.is_empty() => continue,
            "" => break,
            l => lines.push(l.to_string()),
        }
    }
    let (start, headers) = parse_head(lines)?;
    let status = if response {
        Some(status_of(&start)?)
    } else {
        None
    };
    if !response
        && header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        r.get_mut()
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await?;
    }
    let mut body = Vec::new();
    match framing(&headers, status) {
        Framing::Length(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body).await?;
        }
        Framing::Chunked => loop {
            let mut size = String::new();
            r.read_line(&mut size).await?;
            let n = chunk_size(&size)?;
            if n == 0 {
                // Skip trailers up to the blank line.
                loop {
                    size.clear();
                    if r.read_line(&mut size).await? == 0 || size.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).await?;
            body.extend_from_slice(&chunk[..n]);
        },
        Framing::Eof => {
            r.read_to_end(&mut body).await?;
        }
    }
    Ok(Some(Message {
        start,
        headers,
        body,
    }))
}
