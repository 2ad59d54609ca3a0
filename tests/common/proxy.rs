//! Fault-injecting HTTP/1.1 reverse proxy: makes "AWS" answer the way moto can't
//! (AccessDenied, throttling, 5xx, connection resets, lost responses, delays). Every injected
//! fault is logged ([`FaultProxy::fault_log`]), and so is every 5xx that moto itself answered
//! ([`FaultProxy::upstream_errors`]), so that a test can tell which failures it caused.

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
use std::time::Duration;
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
    /// added after this one. Not a fault (not counted, not logged).
    Pass,
    /// Wait, then forward normally.
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
        let n = REQUEST_IDS.fetch_add(1, Ordering::Relaxed);
        let id = format!(
            "{n:08x}-fa17-4bad-8000-{:012x}",
            xorshift(n + 1) & 0xffff_ffff_ffff
        );
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
    fn matches(&self, service: &str, op: &str, body: &[u8]) -> bool {
        self.op.as_ref().is_none_or(|o| o == op)
            && self.service.as_ref().is_none_or(|s| s == service)
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
    fn fire(&mut self, service: &str, op: &str, body: &[u8]) -> Option<Fault> {
        if self.remaining == Some(0) || !self.matcher.matches(service, op, body) {
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

/// One request the proxy did something about: an injected fault ([`FaultProxy::fault_log`])
/// or a 5xx answer of the upstream that it passed on ([`FaultProxy::upstream_errors`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// Signing name (`secretsmanager`, `sts`, ...).
    pub service: String,
    /// Operation, e.g. `PutSecretValue`.
    pub op: String,
    /// Signing region from the SigV4 credential scope (empty if unsigned).
    pub region: String,
    /// [`Fault::name`] of the injected fault; for an upstream error, `HTTP <status>`.
    pub fault: String,
    /// Request body (lossy UTF-8).
    pub body: String,
}

#[derive(Default)]
struct Shared {
    rules: Mutex<Vec<Rule>>,
    /// op → (hits, faults)
    counts: Mutex<HashMap<String, (usize, usize)>>,
    faults: Mutex<Vec<Logged>>,
    upstream_errors: Mutex<Vec<Logged>>,
}

impl Shared {
    fn decide(&self, service: &str, op: &str, region: &str, body: &[u8]) -> Option<Fault> {
        let fault = self
            .rules
            .lock()
            .unwrap()
            .iter_mut()
            .find_map(|r| r.fire(service, op, body))
            .filter(|f| !matches!(f, Fault::Pass));
        let mut counts = self.counts.lock().unwrap();
        let c = counts.entry(op.to_string()).or_default();
        c.0 += 1;
        c.1 += usize::from(fault.is_some());
        if let Some(f) = &fault {
            self.faults
                .lock()
                .unwrap()
                .push(logged(service, op, region, f.name(), body));
        }
        fault
    }

    /// Forwards, logging a 5xx answer (moto's own, or the proxy's 502/504 when moto failed).
    async fn forward(
        &self,
        upstream: SocketAddr,
        req: &Message,
        (service, op, region): (&str, &str, &str),
    ) -> Vec<u8> {
        let (status, resp) = forward(upstream, req).await;
        if status >= 500 {
            let entry = logged(service, op, region, format!("HTTP {status}"), &req.body);
            self.upstream_errors.lock().unwrap().push(entry);
        }
        resp
    }
}

fn logged(service: &str, op: &str, region: &str, fault: String, body: &[u8]) -> Logged {
    Logged {
        service: service.into(),
        op: op.into(),
        region: region.into(),
        fault,
        body: String::from_utf8_lossy(body).into_owned(),
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

    /// Empties [`FaultProxy::fault_log`] and [`FaultProxy::upstream_errors`].
    pub fn clear_logs(&self) {
        self.shared.faults.lock().unwrap().clear();
        self.shared.upstream_errors.lock().unwrap().clear();
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
    while let Ok(Some(req)) = read_message(&mut conn, false).await {
        let path = req.start.split(' ').nth(1).unwrap_or("/");
        let (service, op) = identify(&req.headers, path, &req.body);
        let region = credential_scope(&req.headers).map_or(String::new(), |s| s.region);
        let what = (service.as_str(), op.as_str(), region.as_str());
        let resp = match shared.decide(&service, &op, &region, &req.body) {
            Some(Fault::Reset) => {
                let _ = conn.get_ref().set_zero_linger();
                return;
            }
            Some(Fault::ResetAfterForward) => {
                shared.forward(upstream, &req, what).await;
                let _ = conn.get_ref().set_zero_linger();
                return;
            }
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                shared.forward(upstream, &req, what).await
            }
            Some(fault) => fault.response(),
            None => shared.forward(upstream, &req, what).await,
        };
        let close =
            header(&req.headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if conn.get_mut().write_all(&resp).await.is_err() || close {
            return;
        }
    }
}

/// Forwards on a fresh upstream connection; a 502 if upstream fails, a 504 if it takes > 60 s.
/// Returns the status and the encoded response.
async fn forward(upstream: SocketAddr, req: &Message) -> (u16, Vec<u8>) {
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
    match tokio::time::timeout(Duration::from_secs(60), attempt).await {
        Ok(Ok(resp)) => (
            status_of(&resp.start).unwrap_or(502),
            encode(&resp.start, &strip_hop_by_hop(&resp.headers), &resp.body),
        ),
        Ok(Err(e)) => (
            502,
            encode(
                "HTTP/1.1 502 Bad Gateway",
                &[],
                format!("fault proxy: {e}").as_bytes(),
            ),
        ),
        Err(_) => (
            504,
            encode(
                "HTTP/1.1 504 Gateway Timeout",
                &[],
                b"fault proxy: upstream timeout",
            ),
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
