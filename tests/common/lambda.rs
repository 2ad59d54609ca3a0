//! A fake of the Lambda Invoke API on loopback, in front of a [`FakeRuntime`]: what an `all`
//! chain's continuation meets on AWS. The function's Lambda client reaches it through
//! `AWS_ENDPOINT_URL_LAMBDA` (the SDK's standard endpoint settings) while `AWS_ENDPOINT_URL`
//! points at moto.
//!
//! `POST /2015-03-31/functions/{name}/invocations` with `X-Amz-Invocation-Type: Event` is
//! answered 202 and its payload becomes the runtime's next invocation, with the function's ARN as
//! `invoked_function_arn`; any other invocation type is refused (400), so a synchronous
//! self-invoke would show. Every request and every delivery is recorded.
//!
//! Lambda does two things an `all` chain must survive, and the fake can do both:
//! - **async retries**: an invocation delivered asynchronously (the chain's start, a
//!   continuation) that returns a Lambda error is delivered again, up to twice (Lambda's default
//!   `MaximumRetryAttempts` of 2), read from the runtime's recorded error answers. With
//!   [`FakeLambda::fail_invokes_starting`] the Invoke that would start a link is answered 500
//!   (ServiceException) a number of times, so the link before it cannot continue, returns an
//!   error, and is retried;
//! - **duplicates** (asynchronous delivery is at least once): [`FakeLambda::duplicate`] delivers
//!   the continuation that starts a link twice.
//!
//! [`FakeLambda::hold`] keeps continuations back until [`FakeLambda::release`] (a test swaps the
//! function's configuration between links).

use super::runtime::{Answer, FUNCTION_ARN, FakeRuntime};
use super::{Framing, framing, header, parse_head};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Lambda's retries of an asynchronous invocation that returned an error (its default).
pub const ASYNC_RETRIES: u32 = 2;

/// Why an invocation was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The test started the chain (as a schedule would: asynchronously).
    Start,
    /// An accepted Invoke (a link continuing the chain).
    Continuation,
    /// The same accepted Invoke, delivered a second time.
    Duplicate,
    /// Lambda's async retry of a delivery that returned an error.
    Retry,
}

/// One invocation handed to the runtime.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub request_id: String,
    /// The link number its `resume` cursor names (1 without one).
    pub link: u32,
    /// 1 for the first delivery of a payload, 2 and 3 for Lambda's retries.
    pub attempt: u32,
    pub cause: Cause,
    pub payload: Value,
    /// The `invoked_function_arn` it was delivered with.
    pub arn: String,
    /// What the function answered, once it has.
    pub answer: Option<Answer>,
}

impl Delivery {
    /// The answer's document: the response body, or an error's `errorMessage`.
    pub fn document(&self) -> Value {
        match self.answer.as_ref().expect("answered") {
            Answer::Response { body, .. } => json(body),
            Answer::Error { body, .. } => json(
                json(body)["errorMessage"]
                    .as_str()
                    .expect("errorMessage is the document"),
            ),
            Answer::InitError { body } => panic!("init error: {body}"),
        }
    }

    /// The `errorType` of an error answer.
    pub fn error_type(&self) -> Option<String> {
        match self.answer.as_ref()? {
            Answer::Error { body, .. } => json(body)["errorType"].as_str().map(str::to_string),
            _ => None,
        }
    }

    /// Whether the function answered with a Lambda error.
    pub fn failed(&self) -> bool {
        matches!(self.answer, Some(Answer::Error { .. }))
    }
}

/// One request to the Invoke API.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    /// The function as the path names it (percent-decoded).
    pub function: String,
    pub invocation_type: String,
    /// The link its payload's cursor starts.
    pub link: Option<u32>,
    /// `X-Amzn-Trace-Id`, when sent (the SDK carries the trace lineage Lambda's recursive loop
    /// detection counts).
    pub trace_id: Option<String>,
    /// What the fake answered.
    pub status: u16,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    requests: Vec<InvokeRequest>,
    deliveries: Vec<Delivery>,
    /// Link → Invoke requests starting it still to answer 500.
    fail: BTreeMap<u32, usize>,
    /// Links whose continuation is delivered twice.
    duplicate: BTreeSet<u32>,
    hold: bool,
    held: Vec<(Value, String)>,
    /// Runtime answers the watcher has read.
    seen: usize,
}

/// The fake Invoke API. Dropping it stops its threads.
pub struct FakeLambda {
    addr: SocketAddr,
    runtime: FakeRuntime,
    state: Arc<(Mutex<State>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl FakeLambda {
    /// Listens on a free loopback port and delivers into `runtime`.
    pub fn start(runtime: &FakeRuntime) -> FakeLambda {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake Lambda");
        let addr = listener.local_addr().expect("local addr");
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (state, runtime) = (state.clone(), runtime.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { break };
                    let (state, runtime) = (state.clone(), runtime.clone());
                    thread::spawn(move || serve(conn, &state, &runtime));
                }
            });
        }
        {
            let (state, runtime, stop) = (state.clone(), runtime.clone(), stop.clone());
            thread::spawn(move || watch(&state, &runtime, &stop));
        }
        FakeLambda {
            addr,
            runtime: runtime.clone(),
            state,
            stop,
        }
    }

    /// The value for `AWS_ENDPOINT_URL_LAMBDA`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts a chain as a schedule does: an asynchronous invocation (retried on error).
    pub fn invoke(&self, payload: &Value) -> String {
        let mut s = self.state.0.lock().unwrap();
        deliver(
            &mut s,
            &self.runtime,
            payload,
            FUNCTION_ARN,
            Cause::Start,
            1,
        )
    }

    /// The next `requests` Invoke requests that would start link `link` are answered 500.
    pub fn fail_invokes_starting(&self, link: u32, requests: usize) {
        self.state.0.lock().unwrap().fail.insert(link, requests);
    }

    /// The (first accepted) continuation that starts `link` is delivered twice.
    pub fn duplicate(&self, link: u32) {
        self.state.0.lock().unwrap().duplicate.insert(link);
    }

    /// Accepted continuations are kept back from now on.
    pub fn hold(&self) {
        self.state.0.lock().unwrap().hold = true;
    }

    /// Delivers what was kept back and stops holding.
    pub fn release(&self) {
        let (lock, cv) = &*self.state;
        let mut s = lock.lock().unwrap();
        s.hold = false;
        for (payload, arn) in std::mem::take(&mut s.held) {
            deliver(
                &mut s,
                &self.runtime,
                &payload,
                &arn,
                Cause::Continuation,
                1,
            );
        }
        cv.notify_all();
    }

    /// Waits until `n` continuations are held back.
    pub fn wait_held(&self, n: usize, timeout: Duration) {
        let (lock, cv) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut s = lock.lock().unwrap();
        while s.held.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no continuation held within {timeout:?}");
            s = cv.wait_timeout(s, left).unwrap().0;
        }
    }

    /// Every Invoke request so far.
    pub fn requests(&self) -> Vec<InvokeRequest> {
        self.state.0.lock().unwrap().requests.clone()
    }

    /// Every delivery so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.0.lock().unwrap().deliveries.clone()
    }

    /// Waits until every delivery has its answer and no retry is pending: the chain has ended
    /// (or, while holding, paused). Returns the deliveries in order.
    pub fn wait_idle(&self, timeout: Duration) -> Vec<Delivery> {
        let (lock, cv) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut s = lock.lock().unwrap();
        loop {
            if !s.deliveries.is_empty() && s.deliveries.iter().all(|d| d.answer.is_some()) {
                return s.deliveries.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the chain did not end within {timeout:?}: {:?}",
                s.deliveries
                    .iter()
                    .map(|d| (d.link, d.cause, d.answer.is_some()))
                    .collect::<Vec<_>>()
            );
            s = cv.wait_timeout(s, left).unwrap().0;
        }
    }
}

impl Drop for FakeLambda {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s:.300}"))
}

/// The link number a payload's `resume` cursor starts (1 without one). The cursor is opaque to
/// callers; the fake reads it only to know where the chain is (`v1.<base64url JSON>.<tag>`,
/// `"l"` the link number).
pub fn link_of(payload: &Value) -> u32 {
    let Some(cursor) = payload.get("resume").and_then(Value::as_str) else {
        return 1;
    };
    cursor_field(cursor, "l")
        .and_then(|v| v.as_u64())
        .map_or(0, |l| l as u32)
}

/// One field of a cursor's JSON body, if the cursor has the shape a link writes.
pub fn cursor_field(cursor: &str, field: &str) -> Option<Value> {
    let body = cursor.split('.').nth(1)?;
    let bytes = unbase64url(body)?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get(field).cloned()
}

fn unbase64url(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in s.bytes() {
        acc = (acc << 6) | ALPHABET.iter().position(|a| *a == c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn deliver(
    s: &mut State,
    runtime: &FakeRuntime,
    payload: &Value,
    arn: &str,
    cause: Cause,
    attempt: u32,
) -> String {
    let request_id = runtime.push_as(payload, arn);
    s.deliveries.push(Delivery {
        request_id: request_id.clone(),
        link: link_of(payload),
        attempt,
        cause,
        payload: payload.clone(),
        arn: arn.to_string(),
        answer: None,
    });
    request_id
}

/// Reads the runtime's answers as they come; an error answer to an asynchronous delivery is
/// delivered again, up to [`ASYNC_RETRIES`] times (at once: Lambda waits a minute or two).
fn watch(state: &(Mutex<State>, Condvar), runtime: &FakeRuntime, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let seen = state.0.lock().unwrap().seen;
        let new = runtime.answers_after(seen, Duration::from_millis(200));
        if new.is_empty() {
            continue;
        }
        let (lock, cv) = state;
        let mut s = lock.lock().unwrap();
        s.seen += new.len();
        for answer in new {
            let id = match &answer {
                Answer::Response { request_id, .. } | Answer::Error { request_id, .. } => {
                    request_id.clone()
                }
                Answer::InitError { .. } => continue,
            };
            let Some(i) = s.deliveries.iter().position(|d| d.request_id == id) else {
                continue;
            };
            s.deliveries[i].answer = Some(answer.clone());
            let d = s.deliveries[i].clone();
            if matches!(answer, Answer::Error { .. }) && d.attempt <= ASYNC_RETRIES {
                deliver(
                    &mut s,
                    runtime,
                    &d.payload,
                    &d.arn,
                    Cause::Retry,
                    d.attempt + 1,
                );
            }
        }
        cv.notify_all();
    }
}

/// One HTTP/1.1 request: method, path, headers, body.
type Request = (String, String, Vec<(String, String)>, Vec<u8>);

fn read_request(r: &mut impl BufRead, out: &mut TcpStream) -> Option<Request> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        match line.trim_end() {
            "" if lines.is_empty() => continue,
            "" => break,
            l => lines.push(l.to_string()),
        }
    }
    let (start, headers) = parse_head(lines).ok()?;
    let mut parts = start.split(' ');
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    if header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").ok()?;
    }
    let mut body = Vec::new();
    match framing(&headers, None) {
        Framing::Length(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body).ok()?;
        }
        Framing::Chunked => loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = super::chunk_size(&size).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        },
        Framing::Eof => return None,
    }
    Some((method, path, headers, body))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve(conn: TcpStream, state: &(Mutex<State>, Condvar), runtime: &FakeRuntime) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    while let Some((method, path, headers, body)) = read_request(&mut reader, &mut out) {
        let function = path
            .strip_prefix("/2015-03-31/functions/")
            .and_then(|rest| rest.split('?').next())
            .and_then(|rest| rest.strip_suffix("/invocations"))
            .map(percent_decode);
        let (status, reason, error) = match (method.as_str(), function) {
            ("POST", Some(function)) => invoke(state, runtime, &function, &headers, &body),
            _ => (
                404,
                "Not Found",
                Some(("ResourceNotFoundException", "not an Invoke")),
            ),
        };
        let reply = match error {
            None => format!(
                "HTTP/1.1 {status} {reason}\r\nx-amzn-RequestId: fake-{}\r\ncontent-length: 0\r\n\r\n",
                state.0.lock().unwrap().requests.len()
            ),
            Some((code, message)) => {
                let body = format!(r#"{{"Type":"Service","message":"{message}"}}"#);
                format!(
                    "HTTP/1.1 {status} {reason}\r\nx-amzn-ErrorType: {code}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
            }
        };
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// One Invoke: accepted (and delivered, held or duplicated), refused or failed by a knob.
fn invoke(
    state: &(Mutex<State>, Condvar),
    runtime: &FakeRuntime,
    function: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, &'static str, Option<(&'static str, &'static str)>) {
    let invocation_type = header(headers, "x-amz-invocation-type")
        .unwrap_or("RequestResponse")
        .to_string();
    let payload: Option<Value> = serde_json::from_slice(body).ok();
    let link = payload.as_ref().map(link_of);
    let (lock, cv) = state;
    let mut s = lock.lock().unwrap();
    let failing = link.and_then(|l| s.fail.get_mut(&l)).filter(|n| **n > 0);
    let (status, reason, error) = if invocation_type != "Event" {
        (
            400,
            "Bad Request",
            Some((
                "InvalidRequestContentException",
                "this fake takes asynchronous invocations only",
            )),
        )
    } else if let Some(n) = failing {
        *n -= 1;
        (
            500,
            "Internal Server Error",
            Some(("ServiceException", "injected by the fake Invoke API")),
        )
    } else if payload.is_none() {
        (
            400,
            "Bad Request",
            Some(("InvalidRequestContentException", "the payload is not JSON")),
        )
    } else {
        (202, "Accepted", None)
    };
    s.requests.push(InvokeRequest {
        function: function.to_string(),
        invocation_type,
        link,
        trace_id: header(headers, "x-amzn-trace-id").map(str::to_string),
        status,
        at: Instant::now(),
    });
    if status == 202 {
        let payload = payload.expect("checked");
        let arn = if function.starts_with("arn:") {
            function.to_string()
        } else {
            FUNCTION_ARN.to_string()
        };
        let link = link.unwrap_or(0);
        if s.hold {
            s.held.push((payload, arn));
        } else {
            deliver(&mut s, runtime, &payload, &arn, Cause::Continuation, 1);
            if s.duplicate.remove(&link) {
                deliver(&mut s, runtime, &payload, &arn, Cause::Duplicate, 1);
            }
        }
    }
    cv.notify_all();
    (status, reason, error)
}
