//! Proves the test harness (moto + fault proxy) works without the product.

// The SDK call futures nest deeply; the default limit (128) is too low for their layout.
#![recursion_limit = "256"]

mod common;

use common::policies;
use common::sigv4::Signer;
use common::{
    Fault, FaultProxy, Match, Moto, Response, Rule, encode_request, http_request, read_response,
};
use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Signs a request as the source account's admin (the IAM-enforcing moto checks signatures).
fn signed(
    addr: SocketAddr,
    service: &str,
    path: &str,
    headers: &[(&'static str, &'static str)],
    body: &[u8],
) -> Vec<(String, String)> {
    let signer = Signer {
        access_key: policies::ADMIN_ACCESS_KEY_ID,
        secret_key: policies::ADMIN_SECRET_ACCESS_KEY,
        session_token: None,
        region: "us-east-1",
        service,
    };
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.extend(signer.sign("POST", &addr.to_string(), path, headers, body));
    all
}

fn send(addr: SocketAddr, headers: &[(String, String)], body: &[u8]) -> io::Result<Response> {
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    http_request(addr, "POST", "/", &refs, body)
}

fn sm_headers(target: &'static str) -> [(&'static str, &'static str); 2] {
    [
        ("X-Amz-Target", target),
        ("Content-Type", "application/x-amz-json-1.1"),
    ]
}

fn list_secrets(addr: SocketAddr, body: &str) -> io::Result<Response> {
    let headers = sm_headers("secretsmanager.ListSecrets");
    let all = signed(addr, "secretsmanager", "/", &headers, body.as_bytes());
    send(addr, &all, body.as_bytes())
}

/// The AssumeRole form for the destination account's admin role.
fn assume_role_body() -> String {
    let role = policies::admin_role_arn(policies::DEST_ACCOUNT)
        .replace(':', "%3A")
        .replace('/', "%2F");
    format!("Action=AssumeRole&Version=2011-06-15&RoleArn={role}&RoleSessionName=t")
}

fn assume_role(addr: SocketAddr) -> Response {
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    let body = assume_role_body();
    let all = signed(addr, "sts", "/", &headers, body.as_bytes());
    send(addr, &all, body.as_bytes()).expect("AssumeRole through proxy")
}

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).expect("JSON body")
}

#[test]
fn moto_and_fault_proxy() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr());

    // Pass-through.
    let r = list_secrets(proxy.addr(), "{}").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(json(&r)["SecretList"].is_array());

    // times(1): one AWS-shaped AccessDenied, then pass-through again.
    proxy.add_rule(Rule::new(Match::op("ListSecrets"), Fault::access_denied()).times(1));
    let r = list_secrets(proxy.addr(), "{}").unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-amzn-ErrorType"), Some("AccessDeniedException"));
    assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.1"));
    assert!(r.header("x-amzn-RequestId").is_some());
    assert_eq!(json(&r)["__type"], "AccessDeniedException");
    assert_eq!(list_secrets(proxy.addr(), "{}").unwrap().status, 200);

    // Body match: only requests mentioning dr/app are throttled.
    proxy.add_rule(Rule::new(
        Match::op("ListSecrets").body_contains("dr/app"),
        Fault::throttling(),
    ));
    let r = list_secrets(
        proxy.addr(),
        r#"{"Filters":[{"Key":"name","Values":["dr/app"]}]}"#,
    )
    .unwrap();
    assert_eq!(
        (r.status, json(&r)["message"].as_str()),
        (400, Some("Rate exceeded"))
    );
    proxy.clear_rules();

    // Keep-alive: two requests on one client connection, plus a 503 on the same connection.
    proxy.add_rule(Rule::new(Match::op("DescribeSecret"), Fault::Status(503)));
    let mut conn = TcpStream::connect(proxy.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    for target in [
        "secretsmanager.ListSecrets",
        "secretsmanager.DescribeSecret",
        "secretsmanager.ListSecrets",
    ] {
        let all = signed(
            proxy.addr(),
            "secretsmanager",
            "/",
            &sm_headers(target),
            b"{}",
        );
        let headers: Vec<(&str, &str)> =
            all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        conn.write_all(&encode_request(
            proxy.addr(),
            "POST",
            "/",
            &headers,
            b"{}",
            false,
        ))
        .unwrap();
        let r = read_response(&mut reader).unwrap();
        let want = if target.ends_with("DescribeSecret") {
            503
        } else {
            200
        };
        assert_eq!(r.status, want, "{target}: {}", r.text());
    }
    drop((conn, reader));

    // STS: awsQuery-shaped AccessDenied once, then a real AssumeRole into the destination account.
    proxy.add_rule(Rule::new(Match::op("AssumeRole"), Fault::sts_access_denied()).times(1));
    let r = assume_role(proxy.addr());
    assert_eq!(r.status, 403);
    assert!(
        r.text().contains("<Code>AccessDenied</Code>") && r.text().contains("<Type>Sender</Type>")
    );
    let r = assume_role(proxy.addr());
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let key = text
        .split("<AccessKeyId>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap();
    assert_eq!(moto.account_of(key), policies::DEST_ACCOUNT);
    assert_eq!(
        moto.account_of(policies::ADMIN_ACCESS_KEY_ID),
        policies::SOURCE_ACCOUNT
    );

    // Counters: proxy sees everything, moto only what passed through.
    assert_eq!(
        (proxy.hits("ListSecrets"), proxy.faults("ListSecrets")),
        (6, 2)
    );
    assert_eq!(
        (proxy.hits("AssumeRole"), proxy.faults("AssumeRole")),
        (2, 1)
    );
    assert_eq!(
        (proxy.hits("DescribeSecret"), proxy.faults("DescribeSecret")),
        (1, 1)
    );
    assert_eq!(moto.count("ListSecrets"), 4);
    assert_eq!(moto.count("DescribeSecret"), 0);
    assert_eq!(moto.count_service("sts"), 1);
    let calls = moto.calls();
    let sts = calls.iter().find(|c| c.operation == "AssumeRole").unwrap();
    assert_eq!(sts.service, "sts");
    assert_eq!(sts.region.as_deref(), Some("us-east-1"));
    assert_eq!(sts.account.as_deref(), Some("123456789012"));
    assert!(sts.body.contains("RoleSessionName=t"));
    proxy.reset_counts();
    moto.reset_calls();
    assert!(moto.calls().is_empty());
    assert_eq!(proxy.hits("ListSecrets"), 0);

    // Reset: connection closed without a response.
    proxy.add_rule(Rule::new(Match::any(), Fault::Reset).times(1));
    assert!(list_secrets(proxy.addr(), "{}").is_err());

    // Delay, then forwarded.
    proxy.add_rule(Rule::new(Match::any(), Fault::Delay(Duration::from_millis(300))).times(1));
    let t = Instant::now();
    assert_eq!(list_secrets(proxy.addr(), "{}").unwrap().status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    // Probability: deterministic for a given seed.
    proxy.clear_rules();
    proxy.add_rule(
        Rule::new(Match::op("ListSecrets"), Fault::internal_error())
            .probability(0.5)
            .seed(7),
    );
    let statuses: Vec<u16> = (0..12)
        .map(|_| list_secrets(proxy.addr(), "{}").unwrap().status)
        .collect();
    let faulted = statuses.iter().filter(|&&s| s == 500).count();
    assert!(faulted > 0 && faulted < 12, "{statuses:?}");
    assert_eq!(moto.count("ListSecrets"), 1 + 12 - faulted); // Delay + unfaulted (Reset never reached moto)

    // Drop kills moto.
    let addr = moto.addr();
    moto.reset();
    drop(proxy);
    drop(moto);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
}

/// The proxy also works from inside an async test (its runtime is on its own thread).
#[tokio::test]
async fn proxy_from_async_test() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr());
    proxy.add_rule(Rule::new(Match::service("secretsmanager"), Fault::throttling()).times(1));
    let addr = proxy.addr();
    let statuses = tokio::task::spawn_blocking(move || {
        (0..2)
            .map(|_| list_secrets(addr, "{}").unwrap().status)
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(statuses, [400, 200]);
    assert_eq!(moto.count_service("secretsmanager"), 1);
}

/// The error code of a failed SDK call.
fn code<E: aws_sdk_secretsmanager::error::ProvideErrorMetadata>(e: &E) -> Option<String> {
    e.code().map(str::to_string)
}

/// Eventual-consistency mode: right after a write, a read of that secret can answer the state
/// from before it (the same read's last answer, or ResourceNotFoundException before it was
/// created), whether it names the secret by name, partial ARN or full ARN; each stale answer is
/// logged; after the window, reads are fresh.
#[tokio::test]
async fn stale_reads_right_after_a_write_then_fresh_after_the_window() {
    use aws_sdk_secretsmanager::Client;
    // The reads that must land inside a window are a handful of loopback calls: 5 s holds
    // them even on a machine busy enough to take a second for one (1 s did not always); the
    // waits past a window are lower bounds, right on any machine.
    const WINDOW: Duration = Duration::from_secs(5);
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.addr());
    proxy.stale_reads(1.0, WINDOW, 7);
    let sm = common::app::sm(&proxy.endpoint(), "us-east-1").await;
    let listed = |sm: Client| async move {
        let out = sm.list_secrets().send().await.expect("ListSecrets");
        let names = out.secret_list().iter().filter_map(|s| s.name());
        names.map(str::to_string).collect::<Vec<_>>()
    };
    let value = |sm: Client, id: String| async move {
        let out = sm.get_secret_value().secret_id(id).send().await;
        out.map(|o| {
            (
                o.version_id().unwrap().to_string(),
                o.secret_string().unwrap().to_string(),
            )
        })
    };
    let current_of = |sm: Client, id: String| async move {
        let out = sm.describe_secret().secret_id(id).send().await;
        out.map(|d| {
            let stages = d.version_ids_to_stages().cloned().unwrap_or_default();
            let current = stages
                .iter()
                .find(|(_, s)| s.iter().any(|s| s == "AWSCURRENT"));
            (current.map(|(v, _)| v.clone()), stages.len())
        })
    };
    assert!(listed(sm.clone()).await.is_empty());

    // Created: right after, not found yet (by name or by the ARN just returned), not listed.
    let created = sm.create_secret().name("ec/a").secret_string("v1");
    let created = created.send().await.expect("CreateSecret");
    let arn = created.arn().unwrap().to_string();
    let v1 = created.version_id().unwrap().to_string();
    let e = value(sm.clone(), "ec/a".into()).await.unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("ResourceNotFoundException"));
    let e = current_of(sm.clone(), arn.clone()).await.unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("ResourceNotFoundException"));
    assert!(listed(sm.clone()).await.is_empty(), "a stale listing");
    assert_eq!(
        moto.count("GetSecretValue") + moto.count("DescribeSecret"),
        0
    );

    // After the window: fresh, and remembered.
    tokio::time::sleep(WINDOW).await;
    let fresh = (v1.clone(), "v1".to_string());
    assert_eq!(value(sm.clone(), "ec/a".into()).await.unwrap(), fresh);
    assert_eq!(
        current_of(sm.clone(), "ec/a".into()).await.unwrap(),
        (Some(v1.clone()), 1)
    );
    assert_eq!(listed(sm.clone()).await, ["ec/a"]);

    // A new version: right after, every way of naming the secret reads the old one, the new
    // version is not found, and the listing is the old one.
    proxy.clear_logs();
    let put = sm.put_secret_value().secret_id("ec/a").secret_string("v2");
    let v2 = put.send().await.expect("PutSecretValue");
    let v2 = v2.version_id().unwrap().to_string();
    let partial = arn[..arn.len() - 7].to_string();
    for id in ["ec/a", &arn, &partial] {
        let read = value(sm.clone(), id.into()).await;
        assert_eq!(read.unwrap(), fresh, "{id}");
    }
    assert_eq!(
        current_of(sm.clone(), partial.clone()).await.unwrap(),
        (Some(v1.clone()), 1)
    );
    let by_version = sm.get_secret_value().secret_id(&arn).version_id(&v2);
    let e = by_version.send().await.unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("ResourceNotFoundException"));
    let log = proxy.fault_log();
    assert_eq!(log.len(), 5, "{log:#?}");
    for f in &log {
        assert_eq!(f.fault, common::proxy::STALE, "{f:?}");
        let stale = f.stale.as_ref().expect("what the stale answer was");
        assert!(stale.since_write < WINDOW, "{f:?}");
        assert_eq!(stale.secret, "123456789012:us-east-1:ec/a");
    }
    assert_eq!(log[0].stale.as_ref().unwrap().field("VersionId"), Some(v1));
    assert_eq!(
        log[4].stale.as_ref().unwrap().field("__type").as_deref(),
        Some("ResourceNotFoundException")
    );
    // Counted as faults: these four and the not-found one after the create.
    assert_eq!(proxy.faults("GetSecretValue"), 5);

    // After the window: fresh.
    tokio::time::sleep(WINDOW).await;
    let fresh = (v2.clone(), "v2".to_string());
    assert_eq!(value(sm.clone(), arn.clone()).await.unwrap(), fresh);
    assert_eq!(
        current_of(sm.clone(), "ec/a".into()).await.unwrap().0,
        Some(v2)
    );
    assert_eq!(proxy.fault_log().len(), 5);

    // Switched off: a read right after a write is fresh.
    proxy.stale_reads(0.0, WINDOW, 7);
    let put = sm.put_secret_value().secret_id("ec/a").secret_string("v3");
    put.send().await.expect("PutSecretValue");
    assert_eq!(value(sm.clone(), "ec/a".into()).await.unwrap().1, "v3");
    assert_eq!(proxy.fault_log().len(), 5);

    // Requests a Pass rule exempts are never stale; the others still are.
    tokio::time::sleep(WINDOW).await;
    // v3 AWSCURRENT, v2 AWSPREVIOUS; v1 lost its label and is no longer listed (SPEC §12).
    assert_eq!(current_of(sm.clone(), "ec/a".into()).await.unwrap().1, 2);
    proxy.stale_reads(1.0, WINDOW, 7);
    proxy.add_rule(Rule::new(Match::op("GetSecretValue"), Fault::Pass));
    let put = sm.put_secret_value().secret_id("ec/a").secret_string("v4");
    let put_version = put
        .send()
        .await
        .expect("PutSecretValue")
        .version_id()
        .unwrap()
        .to_string();
    assert_eq!(value(sm.clone(), "ec/a".into()).await.unwrap().1, "v4");
    let described = current_of(sm.clone(), "ec/a".into()).await.unwrap();
    assert_eq!(described.1, 2, "the listing from before v4");
    assert_ne!(
        described.0.as_deref(),
        Some(put_version.as_str()),
        "the listing from before v4"
    );
    assert_eq!(proxy.fault_log().len(), 6);
}
