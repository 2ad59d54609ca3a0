//! A fake Lambda Runtime API on loopback: hands events to the real binary (running with
//! `AWS_LAMBDA_RUNTIME_API` pointing here) and records what it answers. Enough of the API for
//! the runtime client: `/runtime/invocation/next` (long-poll), `.../response`, `.../error`,
//! `/runtime/init/error`. Each invocation carries the deadline of the runtime's budget and the
//! function ARN it was pushed with (`Lambda-Runtime-Invoked-Function-Arn`, which the runtime
//! client hands the handler as `invoked_function_arn`). As on Lambda, an invocation whose
//! deadline passes before its answer has timed out ([`FakeRuntime::timed_out`]): Lambda stops
//! the environment ("Task timed out after N seconds") and whatever it would have posted is lost.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the function posted for an invocation (or for init).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Response {
        request_id: String,
        body: String,
    },
    Error {
        request_id: String,
        error_type: String,
        body: String,
    },
    InitError {
        body: String,
    },
}

/// The function ARN invocations carry unless pushed with another ([`FakeRuntime::push_as`]): the
/// suites' function in their source account and region.
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:secret-replicator";

#[derive(Default)]
struct State {
    /// (request id, event, invoked function ARN).
    events: VecDeque<(String, String, String)>,
    answers: Vec<Answer>,
    /// When the first `/next` arrived (the function finished init).
    first_next: Option<Instant>,
    next_id: u64,
    /// Time each invocation is given (the `lambda-runtime-deadline-ms` header).
    budget: Duration,
    /// Request id → the deadline it was handed out with (epoch milliseconds).
    deadlines: HashMap<String, u128>,
    /// Requests answered after their deadline.
    late: HashSet<String>,
}

/// The fake Runtime API. Clones share it (the fake Invoke API pushes into it).
#[derive(Clone)]
pub struct FakeRuntime {
    addr: SocketAddr,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl FakeRuntime {
    /// Listens on a free loopback port; serves connections on background threads. Each
    /// invocation gets 30 s.
    pub fn start() -> FakeRuntime {
        FakeRuntime::with_budget(Duration::from_secs(30))
    }

    /// Like [`FakeRuntime::start`], with `budget` from hand-out to deadline per invocation.
    pub fn with_budget(budget: Duration) -> FakeRuntime {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake runtime");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new((
            Mutex::new(State {
                budget,
                ..State::default()
            }),
            Condvar::new(),
        ));
        let st = state.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { break };
                let st = st.clone();
                thread::spawn(move || serve(conn, st));
            }
        });
        FakeRuntime { addr, state }
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn api(&self) -> String {
        self.addr.to_string()
    }

    /// Queues an event; returns its request id.
    pub fn push(&self, event: &serde_json::Value) -> String {
        self.push_as(event, FUNCTION_ARN)
    }

    /// Queues an event invoked through `function_arn`; returns its request id.
    pub fn push_as(&self, event: &serde_json::Value, function_arn: &str) -> String {
        self.push_raw_as(&event.to_string(), function_arn)
    }

    /// Queues a payload as raw text (one serde_json could not build, such as one nested past
    /// its recursion limit); returns its request id.
    pub fn push_raw(&self, body: &str) -> String {
        self.push_raw_as(body, FUNCTION_ARN)
    }

    /// [`FakeRuntime::push_raw`] invoked through `function_arn`.
    pub fn push_raw_as(&self, body: &str, function_arn: &str) -> String {
        let (lock, cv) = &*self.state;
        let mut s = lock.lock().unwrap();
        s.next_id += 1;
        let id = format!("req-{}", s.next_id);
        s.events
            .push_back((id.clone(), body.to_string(), function_arn.to_string()));
        cv.notify_all();
        id
    }

    /// The time from hand-out to deadline of the invocations handed out from now on.
    pub fn set_budget(&self, budget: Duration) {
        self.state.0.lock().unwrap().budget = budget;
    }

    /// Every answer so far, in the order they came.
    pub fn answers(&self) -> Vec<Answer> {
        self.state.0.lock().unwrap().answers.clone()
    }

    /// The answers after the first `seen`, waiting up to `timeout` for at least one.
    pub fn answers_after(&self, seen: usize, timeout: Duration) -> Vec<Answer> {
        let (lock, cv) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut s = lock.lock().unwrap();
        loop {
            if s.answers.len() > seen {
                return s.answers[seen..].to_vec();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Vec::new();
            }
            s = cv.wait_timeout(s, left).unwrap().0;
        }
    }

    /// Waits for the answer to one request (or an init error).
    pub fn answer(&self, request_id: &str, timeout: Duration) -> Answer {
        let (lock, cv) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut s = lock.lock().unwrap();
        loop {
            if let Some(a) = s.answers.iter().find(|a| match a {
                Answer::Response { request_id: r, .. } | Answer::Error { request_id: r, .. } => {
                    r == request_id
                }
                Answer::InitError { .. } => true,
            }) {
                return a.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no answer to {request_id} within {timeout:?}"
            );
            s = cv.wait_timeout(s, left).unwrap().0;
        }
    }

    /// Whether the invocation timed out, as Lambda decides it: handed out, and its deadline
    /// passed before its answer came (or with no answer yet). Lambda's verdict, not a measure
    /// of speed: it compares the answer with the deadline the function itself was given.
    pub fn timed_out(&self, request_id: &str) -> bool {
        let s = self.state.0.lock().unwrap();
        if s.late.contains(request_id) {
            return true;
        }
        let answered = s.answers.iter().any(|a| match a {
            Answer::Response { request_id: r, .. } | Answer::Error { request_id: r, .. } => {
                r == request_id
            }
            Answer::InitError { .. } => false,
        });
        !answered && s.deadlines.get(request_id).is_some_and(|d| epoch_ms() > *d)
    }

    /// Waits until the function asks for its first event (init done); returns when that was.
    pub fn ready(&self, timeout: Duration) -> Instant {
        let (lock, cv) = &*self.state;
        let deadline = Instant::now() + timeout;
        let mut s = lock.lock().unwrap();
        loop {
            if let Some(t) = s.first_next {
                return t;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the function never asked for an event");
            s = cv.wait_timeout(s, left).unwrap().0;
        }
    }
}

fn serve(conn: TcpStream, state: Arc<(Mutex<State>, Condvar)>) {
    let Ok(write_half) = conn.try_clone() else {
        return;
    };
    let mut out = write_half;
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut len = 0usize;
        let mut error_type = String::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                if k == "content-length" {
                    len = v.trim().parse().unwrap_or(0);
                } else if k == "lambda-runtime-function-error-type" {
                    error_type = v.trim().to_string();
                }
            }
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).to_string();
        let (lock, cv) = &*state;
        let reply = if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let mut s = lock.lock().unwrap();
            s.first_next.get_or_insert_with(Instant::now);
            cv.notify_all();
            let (id, event, arn) = loop {
                if let Some(e) = s.events.pop_front() {
                    break e;
                }
                s = cv.wait(s).unwrap();
            };
            let deadline = epoch_ms() + s.budget.as_millis();
            s.deadlines.insert(id.clone(), deadline);
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: {id}\r\nlambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: {arn}\r\nlambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\ncontent-length: {}\r\n\r\n{event}",
                event.len()
            )
        } else if method == "POST" {
            let mut s = lock.lock().unwrap();
            let segs: Vec<&str> = path.split('/').collect();
            let now = epoch_ms();
            let answer = if path.ends_with("/runtime/init/error") {
                Answer::InitError { body }
            } else if path.ends_with("/response") {
                Answer::Response {
                    request_id: segs[segs.len() - 2].to_string(),
                    body,
                }
            } else {
                Answer::Error {
                    request_id: segs[segs.len() - 2].to_string(),
                    error_type,
                    body,
                }
            };
            if let Answer::Response { request_id, .. } | Answer::Error { request_id, .. } = &answer
                && s.deadlines.get(request_id).is_some_and(|d| now > *d)
            {
                let id = request_id.clone();
                s.late.insert(id);
            }
            s.answers.push(answer);
            cv.notify_all();
            "HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}".to_string()
        } else {
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_string()
        };
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn epoch_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}
