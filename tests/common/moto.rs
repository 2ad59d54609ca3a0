//! One moto server per test, with a parsed log of the AWS requests it received: moto corrected
//! where it differs from AWS and enforcing IAM (`tests/moto/server.py`), with the identities of
//! [`IamSetup`] (admin credentials for seeding and inspection, the function's role session for
//! the product).

use super::iam_setup::IamSetup;
use super::{Headers, Response, credential_scope, header, http_request, identify};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use std::{env, fs, process, thread};

/// Marks the harness's own requests so they are left out of [`Moto::calls`].
const INTERNAL: &str = "X-Harness-Internal";
static SEQ: AtomicUsize = AtomicUsize::new(0);

/// One AWS API call recorded by moto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Signing name (`secretsmanager`, `kms`, `sts`), else derived from the target prefix.
    pub service: String,
    /// Operation, e.g. `PutSecretValue`, `AssumeRole`.
    pub operation: String,
    /// Signing region from the SigV4 credential scope.
    pub region: Option<String>,
    /// Access key id from the SigV4 credential scope.
    pub access_key: Option<String>,
    /// Account moto attributes the call to: `x-moto-account-id` header, else resolved from the
    /// access key (keys from `AssumeRole` map to the role's account; unknown → 123456789012).
    /// Resolved when [`Moto::calls`] runs, so call it before [`Moto::reset`].
    pub account: Option<String>,
    /// Request body (lossy UTF-8): JSON for Secrets Manager/KMS, a form for STS.
    pub body: String,
}

/// A moto server on a free 127.0.0.1 port, killed (and reaped) on drop.
pub struct Moto {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    iam_log: PathBuf,
}

/// Where every server records the IAM checks it made (one JSON object per line, the format of
/// `tests/moto/server.py`), for the static policy tests: `<test binary>-<pid>-<seq>.jsonl`.
pub const IAM_CALLS_DIR: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/iam-calls/");

/// How the launcher answers `PrimaryRegion` (`MOTO_PRIMARY_REGION`, section 2 of
/// `tests/moto/server.py`, SPEC §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrimaryRegion {
    /// As real AWS was recorded answering: absent on a primary without replicas, the secret's
    /// own region on a primary with replicas, the primary's region on a replica.
    #[default]
    Recorded,
    /// On every secret, the documented reading ("the Region the secret is in").
    Every,
}

impl PrimaryRegion {
    /// Both shapes, for suites that run each test under each.
    pub const ALL: [PrimaryRegion; 2] = [PrimaryRegion::Recorded, PrimaryRegion::Every];

    fn env_value(self) -> &'static str {
        match self {
            PrimaryRegion::Recorded => "recorded",
            PrimaryRegion::Every => "every",
        }
    }
}

impl Moto {
    /// [`Moto::start_with`] the suites' identities ([`IamSetup::default`]).
    pub fn start() -> Moto {
        Moto::start_with(&IamSetup::default())
    }

    /// [`Moto::start`], answering `PrimaryRegion` in the given shape.
    pub fn start_with_primary_region(shape: PrimaryRegion) -> Moto {
        Moto::launch(&IamSetup::default(), shape)
    }

    /// Starts the launcher `tests/moto/server.py` with `$MOTO_PYTHON` (default
    /// `<CARGO_MANIFEST_DIR>/.venv/bin/python`), request recording enabled, IAM enforced for the
    /// identities of `setup`, and waits (≤ 20 s) until it answers. `PrimaryRegion` as recorded.
    pub fn start_with(setup: &IamSetup) -> Moto {
        Moto::launch(setup, PrimaryRegion::Recorded)
    }

    fn launch(setup: &IamSetup, shape: PrimaryRegion) -> Moto {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let python = env::var_os("MOTO_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".venv/bin/python"));
        let launcher = root.join("tests/moto/server.py");
        let hint = "run scripts/test.sh or create .venv with moto[server] (or set MOTO_PYTHON)";
        assert!(
            python.exists(),
            "the venv's python not found at {}: {hint}",
            python.display()
        );
        // A server with policies other than the real ones (a test provoking a denial) records
        // elsewhere: the static check of the recorded calls is about the real policies.
        let calls_dir = if setup.to_json() == IamSetup::default().to_json() {
            IAM_CALLS_DIR.to_string()
        } else {
            concat!(env!("CARGO_TARGET_TMPDIR"), "/iam-calls-other-policies/").to_string()
        };
        let setup = serde_json::to_string_pretty(&setup.to_json()).expect("setup JSON");
        fs::create_dir_all(&calls_dir).expect("create the iam-calls dir");
        let mut last_log = String::new();
        for _ in 0..5 {
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            let dir = env::temp_dir().join(format!("moto-harness-{}-{seq}", process::id()));
            // A directory left by an earlier process with the same pid (pids wrap at 32768 and
            // failed runs keep theirs) would hand over its stale `port` file.
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create moto temp dir");
            fs::write(dir.join("iam-setup.json"), &setup).expect("write the IAM setup");
            let iam_log = Path::new(&calls_dir).join(format!(
                "{}-{}-{seq}.jsonl",
                test_binary(),
                process::id()
            ));
            let log = fs::File::create(dir.join("moto.log")).expect("create moto log");
            // Port 0: the server binds a free port itself and names it in `port` once it
            // listens (a port picked here could be taken by another test's server first).
            let child = Command::new(&python)
                .arg(&launcher)
                .args(["-H", "127.0.0.1", "-p", "0"])
                .env("MOTO_PORT_FILE", dir.join("port"))
                .env("MOTO_ENABLE_RECORDING", "True")
                .env("MOTO_RECORDER_FILEPATH", dir.join("recording.jsonl"))
                .env("MOTO_IAM_SETUP", dir.join("iam-setup.json"))
                .env("MOTO_IAM_LOG", &iam_log)
                .env("MOTO_PRIMARY_REGION", shape.env_value())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup moto log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}; {hint}", python.display()));
            let mut moto = Moto {
                child,
                addr: (Ipv4Addr::LOCALHOST, 0).into(),
                dir,
                iam_log,
            };
            if moto.wait_ready() {
                moto.post_ok("/moto-api/recorder/start-recording");
                return moto;
            }
            last_log = moto.log();
        }
        panic!("the moto launcher failed to start 5 times; last log:\n{last_log}");
    }

    /// Waits until this server has named its port and answers; `false` if it exited.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            if self.addr.port() == 0 {
                match fs::read_to_string(self.dir.join("port")).map(|p| p.trim().parse()) {
                    Ok(Ok(port)) => self.addr.set_port(port),
                    _ => {
                        thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                }
            }
            // reset-recording creates the recording file: the recorder is up.
            let reset = http_request(
                self.addr,
                "POST",
                "/moto-api/recorder/reset-recording",
                &[],
                b"",
            );
            if reset.is_ok_and(|r| r.status == 200) && self.dir.join("recording.jsonl").exists() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the moto launcher did not answer within 20 s (port {}); log:\n{}",
            self.addr.port(),
            self.log()
        );
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The file this server records its IAM checks in (`MOTO_IAM_LOG`).
    pub fn iam_log(&self) -> &Path {
        &self.iam_log
    }

    /// The IAM checks recorded so far, in order (one object per authorized or denied request:
    /// principal, principal_role, account, region, action, resource, context, kms_keys, allowed).
    pub fn iam_calls(&self) -> Vec<serde_json::Value> {
        let text = fs::read_to_string(&self.iam_log).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("an IAM log line is JSON"))
            .collect()
    }

    /// moto's stdout/stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("moto.log")).unwrap_or_default()
    }

    /// Sends a raw request to moto (marked internal: not in [`Moto::calls`]); panics on I/O error.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut all = vec![(INTERNAL, "1")];
        all.extend_from_slice(headers);
        http_request(self.addr, method, path, &all, body)
            .unwrap_or_else(|e| panic!("moto request {method} {path} failed: {e}"))
    }

    fn post_ok(&self, path: &str) -> Response {
        let r = self.request("POST", path, &[], b"");
        assert_eq!(r.status, 200, "POST {path}: {}", r.text());
        r
    }

    /// Wipes all moto state (`POST /moto-api/reset`). Does not clear the request log.
    pub fn reset(&self) {
        self.post_ok("/moto-api/reset");
    }

    /// Stops recording requests (a timing run then measures moto without its recorder).
    pub fn stop_recording(&self) {
        self.post_ok("/moto-api/recorder/stop-recording");
    }

    /// Starts recording requests again.
    pub fn start_recording(&self) {
        self.post_ok("/moto-api/recorder/start-recording");
    }

    /// Clears the request log.
    pub fn reset_calls(&self) {
        self.post_ok("/moto-api/recorder/reset-recording");
    }

    /// AWS calls received since start / the last [`Moto::reset_calls`], in order
    /// (moto-api and harness-internal requests excluded).
    pub fn calls(&self) -> Vec<Call> {
        let r = self.request("GET", "/moto-api/recorder/download-recording", &[], b"");
        assert_eq!(r.status, 200, "download recording: {}", r.text());
        let text = r.text();
        let mut accounts: HashMap<String, String> = HashMap::new();
        let mut calls = Vec::new();
        // A stream of JSON objects, not strictly lines: concurrent large requests can
        // interleave moto's separate `json` and `"\n"` writes.
        for entry in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>() {
            let entry = entry.expect("moto recording is a stream of JSON objects");
            let url = entry["url"].as_str().unwrap_or_default();
            let path = url
                .split_once("://")
                .map_or(url, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
            let headers: Headers = entry["headers"]
                .as_object()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            if path.starts_with("/moto-api") || header(&headers, INTERNAL).is_some() {
                continue;
            }
            let raw = entry["body"].as_str().unwrap_or_default();
            let body = if entry["body_encoded"].as_bool() == Some(true) {
                b64decode(raw)
            } else {
                raw.into()
            };
            let (service, operation) = identify(&headers, path, &body);
            let scope = credential_scope(&headers);
            let account = header(&headers, "x-moto-account-id")
                .map(str::to_string)
                .or_else(|| {
                    let key = &scope.as_ref()?.access_key;
                    Some(
                        accounts
                            .entry(key.clone())
                            .or_insert_with(|| self.account_of(key))
                            .clone(),
                    )
                });
            calls.push(Call {
                service,
                operation,
                region: scope.as_ref().map(|s| s.region.clone()),
                access_key: scope.map(|s| s.access_key),
                account,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        calls
    }

    /// Number of recorded calls of operation `op` (e.g. `"PutSecretValue"`).
    pub fn count(&self, op: &str) -> usize {
        self.calls().iter().filter(|c| c.operation == op).count()
    }

    /// Number of recorded calls to service `svc` (e.g. `"kms"`).
    pub fn count_service(&self, svc: &str) -> usize {
        self.calls().iter().filter(|c| c.service == svc).count()
    }

    /// The account moto attributes `access_key` to (via an internal `sts:GetCallerIdentity`).
    pub fn account_of(&self, access_key: &str) -> String {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={access_key}/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=x"
        );
        let form = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Authorization", auth.as_str()),
        ];
        let r = self.request(
            "POST",
            "/",
            &form,
            b"Action=GetCallerIdentity&Version=2011-06-15",
        );
        let text = r.text();
        let account = text
            .split("<Account>")
            .nth(1)
            .and_then(|s| s.split("</Account>").next());
        account
            .unwrap_or_else(|| panic!("GetCallerIdentity for {access_key}: {text}"))
            .to_string()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("moto log and recording kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The running test binary's name without cargo's hash suffix (`replication-0123abcd…` →
/// `replication`).
fn test_binary() -> String {
    let exe = env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unknown".into());
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name.to_string()
        }
        _ => stem,
    }
}

/// Standard base64 decoding (moto stores request bodies base64-encoded).
fn b64decode(s: &str) -> Vec<u8> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
