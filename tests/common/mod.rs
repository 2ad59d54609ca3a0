//! Integration-test harness: a per-test moto server ([`Moto`]) with a parsed request log,
//! and a fault-injecting HTTP/1.1 reverse proxy ([`FaultProxy`]) to put in front of it.
//! Everything listens on 127.0.0.1 only.
#![allow(dead_code)]

pub mod app;
pub mod cfn;
pub mod iam;
pub mod iam_setup;
pub mod lambda;
pub mod moto;
pub mod policies;
pub mod proxy;
pub mod real_run;
pub mod runtime;
pub mod sigv4;
pub mod world;

// Re-exports for the tests; not every test uses every one.
#[allow(unused_imports)]
pub use moto::{Call, Moto, PrimaryRegion};
#[allow(unused_imports)]
pub use proxy::{Fault, FaultProxy, Match, Rule};

use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Header list in wire order; names keep their original case.
pub type Headers = Vec<(String, String)>;

/// A complete HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: Headers,
    /// Response body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// Case-insensitive header lookup.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
    /// Body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Case-insensitive header lookup.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the response.
/// Connect timeout 5 s, read/write timeouts 30 s.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(&encode_request(addr, method, path, headers, body, true))?;
    read_response(&mut io::BufReader::new(stream))
}

/// Serialises a request with `Host` and `Content-Length` (and `Connection: close` if `close`).
pub fn encode_request(
    host: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if close {
        head.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Reads one response from a (possibly keep-alive) connection: Content-Length, chunked,
/// or read-until-EOF framing.
pub fn read_response(r: &mut impl BufRead) -> io::Result<Response> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        match line.trim_end() {
            "" => break,
            l => lines.push(l.to_string()),
        }
    }
    let (start, headers) = parse_head(lines)?;
    let status = status_of(&start)?;
    let mut body = Vec::new();
    match framing(&headers, Some(status)) {
        Framing::Length(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body)?;
        }
        Framing::Chunked => loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = chunk_size(&size)?;
            if n == 0 {
                // Skip trailers up to the blank line.
                while r.read_line(&mut size)? > 0 && !size.ends_with("\r\n\r\n") {}
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..n]);
        },
        Framing::Eof => {
            r.read_to_end(&mut body)?;
        }
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

pub(crate) fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed HTTP: {what}"),
    )
}

/// Splits header lines into the start line and `(name, value)` pairs.
pub(crate) fn parse_head(mut lines: Vec<String>) -> io::Result<(String, Headers)> {
    if lines.is_empty() {
        return Err(bad("empty head"));
    }
    let start = lines.remove(0);
    let headers = lines
        .iter()
        .map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect::<Option<Headers>>()
        .ok_or_else(|| bad("header line"))?;
    Ok((start, headers))
}

pub(crate) fn status_of(start: &str) -> io::Result<u16> {
    start
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))
}

pub(crate) fn chunk_size(line: &str) -> io::Result<usize> {
    let hex = line.trim().split(';').next().unwrap_or("");
    usize::from_str_radix(hex, 16).map_err(|_| bad("chunk size"))
}

/// How a message body is delimited.
pub(crate) enum Framing {
    Length(usize),
    Chunked,
    Eof,
}

/// Body framing; `status` is `None` for requests (no framing headers means no body).
pub(crate) fn framing(headers: &[(String, String)], status: Option<u16>) -> Framing {
    if status.is_some_and(|s| s < 200 || s == 204 || s == 304) {
        Framing::Length(0)
    } else if header(headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        Framing::Chunked
    } else if let Some(n) = header(headers, "content-length").and_then(|v| v.parse().ok()) {
        Framing::Length(n)
    } else if status.is_some() {
        Framing::Eof
    } else {
        Framing::Length(0)
    }
}

/// SigV4 credential scope of a request (`Credential=AKID/date/region/service/aws4_request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Access key id that signed the request.
    pub access_key: String,
    /// Signing region.
    pub region: String,
    /// Signing name (`secretsmanager`, `kms`, `sts`, ...).
    pub service: String,
}

/// Parses the SigV4 credential scope from the `Authorization` header.
pub fn credential_scope(headers: &[(String, String)]) -> Option<Scope> {
    let auth = header(headers, "authorization")?;
    let cred = auth.split("Credential=").nth(1)?.split([',', ' ']).next()?;
    let mut parts = cred.split('/');
    let access_key = parts.next()?.to_string();
    let _date = parts.next()?;
    let (region, service) = (parts.next()?.to_string(), parts.next()?.to_string());
    Some(Scope {
        access_key,
        region,
        service,
    })
}

/// Identifies an AWS request as `(service, operation)`: the operation from `X-Amz-Target`
/// (JSON protocols) or the `Action=` form/query parameter (awsQuery, e.g. STS); the service
/// from the SigV4 credential scope, else from the target prefix (`TrentService` → `kms`).
pub fn identify(headers: &[(String, String)], path: &str, body: &[u8]) -> (String, String) {
    let (prefix_service, op) = match header(headers, "x-amz-target").and_then(|t| t.split_once('.'))
    {
        Some((prefix, op)) => {
            let svc = match prefix {
                "TrentService" => "kms".to_string(),
                p if p.starts_with("AWSSecurityTokenService") => "sts".to_string(),
                p => p.to_ascii_lowercase(),
            };
            (svc, op.to_string())
        }
        None => {
            let query = path.split_once('?').map_or("", |(_, q)| q);
            let op = form_param(&String::from_utf8_lossy(body), "Action")
                .or_else(|| form_param(query, "Action"));
            (String::new(), op.unwrap_or_default())
        }
    };
    let service = credential_scope(headers).map_or(prefix_service, |s| s.service);
    (service, op)
}

/// Value of `key` in an `a=b&c=d` string (not percent-decoded).
pub fn form_param(s: &str, key: &str) -> Option<String> {
    s.split('&').find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    })
}
