//! The business's side of a call, black-box:
//!
//! - **Webhooks**: a receiver in this test stands in for the business's CRM. Every status
//!   change reaches it as a signed POST (HMAC-SHA256 over `t.body` with the business's
//!   secret, verified here); the first delivery is answered 500 and retried until it is
//!   delivered; the delivery log shows it.
//! - **Retries**: a customer who is busy is called again after `retry.spacing_secs`, until
//!   `retry.attempts` are used; meanwhile the request is `scheduled` with the reason.
//! - **Presence**: an agent set `away` gets no call; set `available`, it takes the waiting one.
//!   Its token is needed (401 without, 403 with another agent's).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callbridge_tests::http::request_with_headers;
use callbridge_tests::record::is_terminal;
use callbridge_tests::{
    Agent, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions, Workdir, CALL_DEADLINE,
};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "whsec-0123456789abcdef";

/// One POST the receiver got: its headers (lower-case names) and body.
#[derive(Debug, Clone)]
struct Delivery {
    headers: HashMap<String, String>,
    body: String,
}

/// A minimal HTTP/1.1 receiver: answers 500 to the first request, 204 to the others.
fn receiver() -> (SocketAddr, Arc<Mutex<Vec<Delivery>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook receiver");
    let addr = listener.local_addr().unwrap();
    let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut headers = HashMap::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let first = {
                let mut all = g.lock().unwrap();
                all.push(Delivery {
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                all.len() == 1
            };
            let status = if first {
                "500 Internal Server Error"
            } else {
                "204 No Content"
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (addr, got)
}

/// Verifies `X-Callbridge-Signature: t=…,v1=…` as the README tells a business to.
fn verify(d: &Delivery) -> bool {
    let Some(sig) = d.headers.get("x-callbridge-signature") else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in sig.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = Some(x.to_owned()),
            Some(("v1", x)) => v1 = Some(x.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", d.body).as_bytes());
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    want == v1
}

fn wait_until<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn webhooks_are_signed_retried_and_logged_and_busy_customers_are_called_again() {
    let dir = Workdir::new("webhooks_retry");
    let (hook, got) = receiver();
    // Busy twice: the first attempt and the retry.
    let mut customer = Sipp::spawn(
        &dir,
        "customer",
        Scenario::Busy,
        &SippOptions {
            calls: 2,
            ..SippOptions::default()
        },
    );
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let nobody = PortBlock::reserve(2);
    let config = Config::new(&ports, customer.sip_addr())
        .agent(Agent::new(
            "alice",
            &format!("sip:alice@{}", nobody.addr(0)),
        ))
        .business_toml(
            "acme",
            &format!(
                "webhook_url = \"http://{hook}/hooks/callbridge\"\nwebhook_secret = \"{SECRET}\"\n\
                 [business.retry]\nattempts = 2\nspacing_secs = 1"
            ),
        );
    let mut cb = Callbridge::start(&dir, &config);
    let id = cb.call("+15551234567");
    let done = cb.wait_for_status(&id, is_terminal, CALL_DEADLINE);
    let statuses: Vec<(String, Option<String>)> = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["status"].as_str().unwrap().to_owned(),
                e["reason"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let names: Vec<&str> = statuses.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        names,
        ["queued", "calling_customer", "scheduled", "queued", "calling_customer", "failed"],
        "busy once, due again after 1 s (queued for an agent), busy again, no attempts left: {done:#}"
    );
    assert_eq!(
        statuses[2].1.as_deref(),
        Some("customer_busy"),
        "scheduled says why"
    );
    assert_eq!(done["reason"], "customer_busy");
    assert_eq!(done["attempts"], 2);

    // Every status change reached the receiver, signed; the first after a 500 and a retry.
    let deliveries = wait_until("six delivered webhooks", Duration::from_secs(30), || {
        let all = got.lock().unwrap().clone();
        let ok: Vec<Value> = all
            .iter()
            .skip(1)
            .map(|d| serde_json::from_str::<Value>(&d.body).unwrap())
            .collect();
        (ok.len() >= 6).then_some(all)
    });
    for d in &deliveries {
        assert!(verify(d), "bad signature on {:?}", d);
        assert!(d.headers.contains_key("x-callbridge-delivery"));
    }
    let first = &deliveries[0];
    let again = deliveries
        .iter()
        .skip(1)
        .find(|d| d.headers["x-callbridge-delivery"] == first.headers["x-callbridge-delivery"]);
    let again = again
        .unwrap_or_else(|| panic!("the delivery answered 500 was never retried: {deliveries:#?}"));
    assert_eq!(again.body, first.body, "a retry sends the same body");
    let mut seen: Vec<String> = Vec::new();
    for d in deliveries.iter().skip(1) {
        let v: Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(v["type"], "call.status");
        assert_eq!(v["id"], id.as_str());
        assert_eq!(v["business"], "acme");
        seen.push(v["status"].as_str().unwrap().to_owned());
    }
    for s in ["queued", "calling_customer", "scheduled", "failed"] {
        assert!(seen.iter().any(|x| x == s), "no webhook for {s}: {seen:?}");
    }
    let log = cb.get_json(&format!("/v1/call-requests/{id}/webhooks"));
    let items = log.as_array().unwrap();
    assert_eq!(items.len(), 6, "one per status change: {log:#}");
    assert_eq!(items[0]["attempts"], 2, "{log:#}");
    assert_eq!(items[0]["last_status"], 204);
    assert!(items.iter().all(|i| i["delivered"].is_string()), "{log:#}");
    drop(cb);
    customer.assert_passed(callbridge_tests::SIPP_EXIT_DEADLINE);
}

#[test]
fn presence_decides_who_is_called_and_needs_the_agents_token() {
    let dir = Workdir::new("presence");
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let lab = PortBlock::reserve(4);
    let config = Config::new(&ports, lab.addr(0))
        .agent(
            Agent::new("alice", &format!("sip:alice@{}", lab.addr(2)))
                .with_toml("token = \"alice-token-0123456789\""),
        )
        .agent(
            Agent::new("bob", &format!("sip:bob@{}", lab.addr(2)))
                .with_toml("token = \"bob-token-0123456789ab\""),
        )
        .lab_endpoints(true);
    let mut cb = Callbridge::start(&dir, &config);
    let http = cb.http_addr();
    let put = |agent: &str, token: Option<&str>, presence: &str| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        request_with_headers(
            http,
            "PUT",
            &format!("/v1/agents/{agent}/presence"),
            &headers,
            Some(&json!({ "presence": presence }).to_string()),
        )
        .unwrap()
    };
    assert_eq!(put("alice", None, "away").status, 401, "no token");
    assert_eq!(
        put("alice", Some("bob-token-0123456789ab"), "away").status,
        403,
        "bob's token"
    );
    let r = put("alice", Some("alice-token-0123456789"), "on_call");
    assert_eq!(r.status, 422, "{}", r.body);
    for (agent, token) in [
        ("alice", "alice-token-0123456789"),
        ("bob", "bob-token-0123456789ab"),
    ] {
        let r = put(agent, Some(token), "away");
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["presence"], "away");
    }
    let me = request_with_headers(
        http,
        "GET",
        "/v1/agent/me",
        &[("Authorization", "Bearer bob-token-0123456789ab")],
        None,
    )
    .unwrap();
    assert_eq!(me.json()["id"], "bob");
    assert_eq!(me.json()["presence"], "away");

    // Nobody available: the request waits in the queue, with its position.
    let id = cb.call("+15551230000");
    let queued = cb.wait_for(
        &format!("/v1/call-requests/{id}"),
        "the request waiting in the queue with its position",
        |v| v["status"] == "queued" && v["queue_position"] == 1,
        CALL_DEADLINE,
    );
    // No agent is working for the business: the wait cannot be estimated.
    assert!(queued["estimated_wait_s"].is_null(), "{queued:#}");
    // Bob becomes available: he takes it at once.
    assert_eq!(
        put("bob", Some("bob-token-0123456789ab"), "available").status,
        200
    );
    let bridged = cb.wait_for_status(&id, |s| s == "bridged" || is_terminal(s), CALL_DEADLINE);
    assert_eq!(bridged["status"], "bridged", "{bridged:#}");
    assert_eq!(bridged["agent"], "bob");
    let on_call = request_with_headers(
        http,
        "GET",
        "/v1/agents/bob/presence",
        &[("Authorization", "Bearer bob-token-0123456789ab")],
        None,
    )
    .unwrap();
    assert_eq!(on_call.json()["presence"], "on_call");
}
