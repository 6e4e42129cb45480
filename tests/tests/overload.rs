//! Overload: shed, never collapse (issue 12). A request that cannot be carried now is refused at
//! once with `503`, `Retry-After` and a `reason`; everything that got a `202` completes.
//!
//! 1. `POST /v1/bridges` offered at about twice what `limits.max_setups_per_second` (50/s) and
//!    `limits.max_calls` (40) carry, for ~3 s from several client threads, with SIPp peers that
//!    answer at once (the agent hangs up after 1 s): every `202` ends `completed`, every other
//!    answer is `503` with `Retry-After` and `reason` `max_calls` or `max_setups_per_second`,
//!    `GET /healthz` answers `200` throughout, no call ends `internal` or `media_timeout`, the
//!    refusals are counted in `GET /v1/stats`, and the accepted set-ups stay within the bucket.
//! 2. A tiny open-file limit (`prlimit --nofile=N:N`): `check-config` warns naming
//!    `media.ports` and the figures (an error when not even one call fits), `serve` logs its
//!    descriptor budget, and bridges beyond it get `503` `descriptors`, never `Too many open
//!    files`.
//!
//! 3. Scheduled requests are durable: more than the set-up rate allows, all due at once, are
//!    all accepted (`202 scheduled`) and all dialled, paced at `max_setups_per_second`.
//! 4. An inbound INVITE beyond `limits.max_calls` gets SIP `503` with the admission's
//!    `Retry-After` (the full house's estimate, as the HTTP `503` gives), counted as a
//!    `max_calls` refusal.
//!
//! The peers carry no RTP of their own (their SDP names a socket of the test that swallows the
//! announcement), as in `churn.rs`.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use callbridge_tests::record::{self, is_terminal};
use callbridge_tests::server::bin_path;
use callbridge_tests::{
    http, Agent, Callbridge, Config, PortBlock, Scenario, SilentAgent, Sipp, SippOptions, Workdir,
    POLL_INTERVAL,
};

/// `limits.max_calls` of the first case.
const MAX_CALLS: u32 = 40;
/// `limits.max_setups_per_second` of the first case (its burst is a fifth of it).
const RATE: u32 = 50;
/// Requests offered per second: about twice what is carried.
const OFFERED_RATE: u32 = 100;
/// How long requests are offered.
const OFFER_SECS: u32 = 3;
/// Client threads sending them.
const CLIENTS: u32 = 4;
/// How long the agent talks before hanging up (ms): with 50 set-ups/s, ~50 calls would be
/// live, more than `MAX_CALLS`, so both limits refuse.
const TALK_MS: u32 = 1000;
/// Media ports: room for 100 calls, so the ports never bind before `max_calls`.
const MEDIA_PORTS: u16 = 400;
/// Deadline for every accepted call to be over, counted from the last request.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);
/// The longest a `GET /healthz` may take while the load runs before it counts as not
/// answering (generous: the machine is shared).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs callbridge's `check-config` (or anything) under `prlimit --nofile=N:N`.
fn prlimited(nofile: u32) -> Command {
    let mut c = Command::new("prlimit");
    c.arg(format!("--nofile={nofile}:{nofile}"));
    c
}

/// What one `POST /v1/bridges` got.
#[derive(Debug)]
enum Answer {
    Accepted(String),
    Refused { reason: String, retry_after: u64 },
}

fn post_bridge(cb: &Callbridge, customer: &str, agent: &str) -> Answer {
    post_bridge_at(cb.http_addr(), customer, agent).unwrap_or_else(|e| cb.fail(&e))
}

/// `POST /v1/bridges`: a `201`/`202` with an id, or a `503` with `Retry-After` seconds and a
/// `reason`; anything else is an error.
fn post_bridge_at(addr: SocketAddr, customer: &str, agent: &str) -> Result<Answer, String> {
    let body = json!({ "customer": customer, "agent": agent }).to_string();
    let r = http::request(addr, "POST", "/v1/bridges", Some(&body))
        .map_err(|e| format!("POST /v1/bridges failed: {e}"))?;
    match r.status {
        201 | 202 => match r.json()["id"].as_str() {
            Some(id) => Ok(Answer::Accepted(id.to_owned())),
            None => Err(format!("a {} without an id: {}", r.status, r.body)),
        },
        503 => {
            let retry = r.header("retry-after").and_then(|v| v.parse::<u64>().ok());
            let v = r.json();
            match (retry, v["reason"].as_str()) {
                (Some(s), Some(reason)) if s >= 1 => Ok(Answer::Refused {
                    reason: reason.to_owned(),
                    retry_after: s,
                }),
                _ => Err(format!(
                    "a 503 without Retry-After seconds or a reason: {:?} {}",
                    r.headers, r.body
                )),
            }
        }
        s => Err(format!("POST /v1/bridges answered {s}: {}", r.body)),
    }
}

/// Polls the bridges until every one is terminal; returns their final records.
fn wait_all_final(cb: &mut Callbridge, mut pending: Vec<String>) -> Vec<Value> {
    let start = Instant::now();
    let mut done = Vec::with_capacity(pending.len());
    loop {
        let mut still = Vec::new();
        for id in pending {
            let r = cb.bridge(&id);
            if is_terminal(record::status(&r)) {
                done.push(r);
            } else {
                still.push((id, r));
            }
        }
        if still.is_empty() {
            return done;
        }
        if cb.try_wait().is_some() {
            cb.fail("callbridge exited while the accepted calls were running");
        }
        if start.elapsed() > SETTLE_DEADLINE {
            let (id, r) = &still[0];
            cb.fail(&format!(
                "{} accepted calls not over after {SETTLE_DEADLINE:?}, e.g. {id}: {r:#}",
                still.len()
            ));
        }
        pending = still.into_iter().map(|(id, _)| id).collect();
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The records that did not end `completed`, as lines.
fn not_completed(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .filter(|r| record::status(r) != "completed")
        .map(|r| {
            format!(
                "{} {}/{} {:?}",
                r["id"],
                record::status(r),
                record::reason(r).unwrap_or("-"),
                record::statuses(r)
            )
        })
        .collect()
}

/// The first two cases' lab: a socket of the test that swallows the peers' announcement
/// (their SDP names it), a SIP address nobody answers (the trunk and alice's URI: the peers
/// are the test's own), and callbridge's ports, `media_ports` of them for media.
struct SinkLab {
    sink_ports: PortBlock,
    _sink: UdpSocket,
    _nobody: PortBlock,
    _ports: PortBlock,
}

impl SinkLab {
    /// A peer's options: `calls` calls, hanging up after `hangup_ms`, its SDP naming the sink.
    fn peer(&self, calls: u32, hangup_ms: u32) -> SippOptions {
        SippOptions {
            calls,
            hangup_ms,
            rtp_port: Some(self.sink_ports.port(0)),
            timeout_secs: Some(120),
            ..SippOptions::default()
        }
    }
}

/// A [`SinkLab`] and the config of a node in it (agent alice at the address nobody answers).
fn sink_lab(media_ports: u16) -> (SinkLab, Config) {
    let sink_ports = PortBlock::reserve(2);
    let sink = UdpSocket::bind(sink_ports.addr(0))
        .unwrap_or_else(|e| panic!("cannot bind {}: {e}", sink_ports.addr(0)));
    let nobody = PortBlock::reserve(2);
    let ports = PortBlock::reserve(2 + media_ports);
    let mut config = Config::new(&ports, nobody.addr(0)).agent(Agent::new(
        "alice",
        &format!("sip:alice@{}", nobody.addr(0)),
    ));
    config.media_ports = (ports.port(2), ports.last());
    let lab = SinkLab {
        sink_ports,
        _sink: sink,
        _nobody: nobody,
        _ports: ports,
    };
    (lab, config)
}

#[test]
fn offered_twice_the_carried_rate_sheds_with_503_and_completes_what_it_accepts() {
    let dir = Workdir::new("overload");
    let (lab, config) = sink_lab(MEDIA_PORTS);
    let config = config.with_toml(&format!(
        "[limits]\nmax_calls = {MAX_CALLS}\nmax_setups_per_second = {RATE}"
    ));
    let mut cb = Callbridge::start(&dir, &config);

    let offered = OFFERED_RATE * OFFER_SECS;
    let peer = |name: &str, scenario, hangup_ms| {
        Sipp::spawn(&dir, name, scenario, &lab.peer(offered, hangup_ms))
    };
    let customer = peer("customer", Scenario::AnswerExternalMedia, 0);
    let agent = peer("agent", Scenario::AnswerByeExternalMedia, TALK_MS);

    // The API keeps answering: /healthz every 50 ms while the load runs.
    let stop = Arc::new(AtomicBool::new(false));
    let health_checks = Arc::new(AtomicU64::new(0));
    let health = {
        let (stop, n, addr) = (stop.clone(), health_checks.clone(), cb.http_addr());
        std::thread::spawn(move || -> Result<(), String> {
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = http::request(addr, "GET", "/healthz", None)?;
                if r.status != 200 {
                    return Err(format!("GET /healthz answered {}: {}", r.status, r.body));
                }
                if t.elapsed() > HEALTH_TIMEOUT {
                    return Err(format!("GET /healthz took {:?}", t.elapsed()));
                }
                n.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(())
        })
    };

    // Offer: CLIENTS threads, each paced by deadline at OFFERED_RATE / CLIENTS.
    let answers = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let (addr, customer_at, agent_at) = (cb.http_addr(), customer.sip_addr(), agent.sip_addr());
    let errors: Vec<String> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let answers = answers.clone();
                s.spawn(move || -> Result<(), String> {
                    let per = OFFERED_RATE / CLIENTS;
                    for i in 0..per * OFFER_SECS {
                        let due = start
                            + Duration::from_secs(u64::from(i)) / per
                            + Duration::from_millis(u64::from(c) * 1000 / u64::from(OFFERED_RATE));
                        if let Some(ahead) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(ahead);
                        }
                        let n = c * 10_000 + i;
                        let a = post_bridge_at(
                            addr,
                            &format!("sip:c{n}@{customer_at}"),
                            &format!("sip:a{n}@{agent_at}"),
                        )?;
                        answers.lock().unwrap().push(a);
                    }
                    Ok(())
                })
            })
            .collect();
        threads
            .into_iter()
            .filter_map(|t| t.join().expect("client thread").err())
            .collect()
    });
    if let Some(e) = errors.first() {
        cb.fail(e);
    }
    let offer_time = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    if let Err(e) = health.join().expect("health thread") {
        cb.fail(&format!("the API stopped answering under load: {e}"));
    }

    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let mut accepted = Vec::new();
    let mut refused = std::collections::BTreeMap::<String, u64>::new();
    for a in &answers {
        match a {
            Answer::Accepted(id) => accepted.push(id.clone()),
            Answer::Refused {
                reason,
                retry_after,
            } => {
                if !["max_calls", "max_setups_per_second"].contains(&reason.as_str()) {
                    cb.fail(&format!(
                        "refused for {reason:?}; expected max_calls or max_setups_per_second"
                    ));
                }
                assert!(*retry_after <= 10, "Retry-After {retry_after} s");
                *refused.entry(reason.clone()).or_default() += 1;
            }
        }
    }
    let n_refused: u64 = refused.values().sum();
    eprintln!(
        "offered {} in {offer_time:?}: {} accepted, refused {refused:?}; {} health checks",
        answers.len(),
        accepted.len(),
        health_checks.load(Ordering::Relaxed)
    );
    assert_eq!(answers.len() as u32, offered);
    if accepted.is_empty() || n_refused == 0 {
        cb.fail(&format!(
            "at twice the carried rate some requests must be accepted and some refused: {} accepted, {refused:?}",
            accepted.len()
        ));
    }
    // The bucket's guarantee: no more set-ups than its burst plus RATE per second.
    let most = u64::from(RATE / 5) + (offer_time.as_secs_f64() * f64::from(RATE)).ceil() as u64 + 1;
    if accepted.len() as u64 > most {
        cb.fail(&format!(
            "{} accepted in {offer_time:?}: more than max_setups_per_second = {RATE} lets through ({most})",
            accepted.len()
        ));
    }

    // Every accepted call completes; none failed for lack of resources.
    let records = wait_all_final(&mut cb, accepted.clone());
    let bad = not_completed(&records);
    if !bad.is_empty() {
        cb.fail(&format!(
            "{} of {} accepted calls did not complete; first ones:\n{}",
            bad.len(),
            records.len(),
            bad[..bad.len().min(10)].join("\n")
        ));
    }
    // The refusals are counted by reason.
    let stats = cb.get_json("/v1/stats");
    for (reason, n) in &refused {
        if stats["refused"][reason].as_u64() != Some(*n) {
            cb.fail(&format!(
                "GET /v1/stats counts {} refusals for {reason}, the client saw {n}: {stats:#}",
                stats["refused"][reason]
            ));
        }
    }
    let log = cb.log();
    assert!(
        !log.contains("Too many open files"),
        "the process ran out of descriptors"
    );
}

/// Open-file limit of the second case. Fixed use measured at start is ~20 (a test config
/// without lab phones), 256 are kept for connections: about (340 − 20 − 256) / 4 = 16 calls.
/// `check-config` estimates 64 fixed: (340 − 64 − 256) / 4 = 5 calls.
const TINY_NOFILE: u32 = 340;
/// Media ports of the second case: 50 calls, far more than the limit carries.
const TINY_MEDIA_PORTS: u16 = 200;
/// Bridges asked for at once in the second case (held until the test ends).
const TINY_BRIDGES: u32 = 40;

#[test]
fn a_tiny_open_file_limit_is_reported_and_refuses_with_503_descriptors() {
    let dir = Workdir::new("overload_nofile");
    let (lab, config) = sink_lab(TINY_MEDIA_PORTS);
    let path = dir.write("callbridge.toml", &config.render());

    // check-config: a warning naming media.ports with the figures; ok.
    let out = prlimited(TINY_NOFILE)
        .arg(bin_path())
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run prlimit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check-config: {stderr}");
    assert!(
        stderr.contains("warning:")
            && stderr.contains("media.ports")
            && stderr.contains("holds 50 calls")
            && stderr.contains(&format!("open-file limit {TINY_NOFILE}")),
        "check-config must warn about the descriptor budget: {stderr}"
    );
    // Not even one call: an error.
    let out = prlimited(200)
        .arg(bin_path())
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run prlimit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "check-config: {stderr}");
    assert!(
        stderr.contains("media.ports") && stderr.contains("not even one call"),
        "{stderr}"
    );

    // serve under the limit: it logs the budget, and refuses beyond it with 503 descriptors.
    let mut cmd = prlimited(TINY_NOFILE);
    cmd.arg(bin_path()).arg("serve").arg("--config").arg(&path);
    let mut cb = Callbridge::start_command(&dir, &config, path.clone(), cmd);
    let log = cb.log();
    assert!(
        log.contains("admission limits") && log.contains("bound_by=\"descriptors\""),
        "serve must log its descriptor budget: {log}"
    );

    let opts = |hangup_ms| lab.peer(TINY_BRIDGES, hangup_ms);
    let customer = Sipp::spawn(&dir, "customer", Scenario::AnswerExternalMedia, &opts(0));
    // The agent hangs up after 5 s: the accepted calls are all live while the rest is asked.
    let agent = Sipp::spawn(&dir, "agent", Scenario::AnswerByeExternalMedia, &opts(5000));
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..TINY_BRIDGES {
        match post_bridge(
            &cb,
            &customer.sip_uri(&format!("c{i}")),
            &agent.sip_uri(&format!("a{i}")),
        ) {
            Answer::Accepted(id) => accepted.push(id),
            Answer::Refused { reason, .. } if reason == "descriptors" => refused += 1,
            Answer::Refused { reason, .. } => {
                cb.fail(&format!("refused for {reason:?}, expected descriptors"))
            }
        }
    }
    eprintln!(
        "{} accepted, {refused} refused (descriptors)",
        accepted.len()
    );
    if accepted.is_empty() || refused == 0 {
        cb.fail(&format!(
            "under a {TINY_NOFILE}-descriptor limit some bridges fit and the rest are refused: {} accepted, {refused} refused",
            accepted.len()
        ));
    }
    let health = cb.get("/healthz");
    assert_eq!(health.status, 200, "{}", health.body);
    let records = wait_all_final(&mut cb, accepted);
    let bad = not_completed(&records);
    if !bad.is_empty() {
        cb.fail(&format!(
            "{} accepted calls did not complete:\n{}",
            bad.len(),
            bad.join("\n")
        ));
    }
    let log = cb.log();
    if log.contains("Too many open files") {
        cb.fail("the process ran out of descriptors");
    }
}

/// Scheduled requests of the third case, all due at the same moment.
const SCHEDULED: u32 = 20;
/// `limits.max_setups_per_second` of the third case (burst 1).
const SCHEDULED_RATE: u32 = 5;

/// Polls `GET {path}/{id}` until every request is terminal; returns their final records.
fn wait_all_requests_final(cb: &mut Callbridge, mut pending: Vec<String>) -> Vec<Value> {
    let start = Instant::now();
    let mut done = Vec::new();
    loop {
        let mut still = Vec::new();
        for id in pending {
            let r = cb.call_request(&id);
            if is_terminal(record::status(&r)) {
                done.push(r);
            } else {
                still.push(id);
            }
        }
        if still.is_empty() {
            return done;
        }
        if start.elapsed() > SETTLE_DEADLINE {
            cb.fail(&format!(
                "{} scheduled requests not over after {SETTLE_DEADLINE:?}, e.g. {}",
                still.len(),
                cb.call_request(&still[0])
            ));
        }
        pending = still;
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// When the record entered `status` (its event's `at`, Unix seconds).
fn entered(record: &Value, status: &str) -> Option<f64> {
    let at = record["events"]
        .as_array()?
        .iter()
        .find(|e| e["status"] == status)?["at"]
        .as_str()?;
    let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e9)
}

#[test]
fn scheduled_requests_beyond_the_set_up_rate_are_all_dialled_paced() {
    use time::format_description::well_known::Rfc3339;
    let dir = Workdir::new("overload_scheduled");
    // Busy customers end each call at once: the subject is when they are dialled.
    let customer = Sipp::spawn(
        &dir,
        "customer",
        Scenario::Busy,
        &SippOptions {
            calls: SCHEDULED,
            ..SippOptions::default()
        },
    );
    let agent = SilentAgent::bind();
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let config = Config::new(&ports, customer.sip_addr())
        .agent(Agent::new("alice", &agent.sip_uri("alice")))
        .with_toml(&format!(
            "[limits]\nper_number_per_hour = 0\nmax_setups_per_second = {SCHEDULED_RATE}"
        ));
    let mut cb = Callbridge::start(&dir, &config);
    // Far enough ahead that every POST arrives before it, on a loaded machine too.
    let contact_time = (time::OffsetDateTime::now_utc() + Duration::from_secs(6))
        .format(&Rfc3339)
        .unwrap();
    let ids: Vec<String> = (0..SCHEDULED)
        .map(|i| {
            let r = cb.post(
                "/v1/call-requests",
                &json!({"business": "acme", "customer": format!("+1555123{i:04}"), "contact_time": contact_time}),
            );
            if r.status != 202 || r.json()["status"] != "scheduled" {
                cb.fail(&format!("scheduled request {i}: {} {}", r.status, r.body));
            }
            r.json()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let records = wait_all_requests_final(&mut cb, ids);
    let mut dialled: Vec<f64> = Vec::new();
    for r in &records {
        if record::reason(r) != Some("customer_busy") {
            cb.fail(&format!(
                "every scheduled request is dialled (and finds the customer busy): {r:#}"
            ));
        }
        match entered(r, "calling_customer") {
            Some(t) => dialled.push(t),
            None => cb.fail(&format!("no calling_customer event: {r:#}")),
        }
    }
    dialled.sort_by(f64::total_cmp);
    let span = dialled[dialled.len() - 1] - dialled[0];
    eprintln!("{SCHEDULED} scheduled requests dialled over {span:.2} s");
    // The bucket holds one token, then one per 1/RATE s: the last dial is at least
    // (N - 1) / RATE after the first, less how late the first one's event was written (a
    // store write on a loaded machine: half a second allowed). Unpaced, all would be dialled
    // within a few tens of ms.
    let least = f64::from(SCHEDULED - 1) / f64::from(SCHEDULED_RATE) - 0.5;
    if span < least {
        cb.fail(&format!(
            "{SCHEDULED} dials within {span:.2} s: faster than max_setups_per_second = {SCHEDULED_RATE} ({least:.2} s at least)"
        ));
    }
}

#[test]
fn an_inbound_invite_beyond_max_calls_gets_503_with_retry_after() {
    const NUMBER: &str = "+15550001000";
    let dir = Workdir::new("overload_inbound");
    let agent = Sipp::uas(&dir, "agent", Scenario::Answer);
    // The trunk is 127.0.0.1 (SIPp's UAC sends from there); nothing listens on this port.
    let placeholder = PortBlock::reserve(1);
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let mut config = Config::new(&ports, placeholder.addr(0))
        .agent(Agent::new("alice", &agent.sip_uri("alice")))
        .with_toml("[limits]\nmax_calls = 1");
    config
        .business_extra
        .push(("acme".into(), format!("inbound_numbers = [\"{NUMBER}\"]")));
    let mut cb = Callbridge::start(&dir, &config);
    let sip = cb.config().sip;
    let caller = |name: &str, pause_ms| {
        Sipp::spawn(
            &dir,
            name,
            Scenario::BuiltinUac,
            &SippOptions {
                remote: Some(sip),
                service: Some(NUMBER.into()),
                pause_ms,
                ..SippOptions::default()
            },
        )
    };
    // The first caller holds the one slot for 8 s.
    let _first = caller("first", 8000);
    cb.wait_for(
        "/v1/stats",
        "the first inbound call to hold the slot",
        |v| v["admission"]["calls"] == 1,
        Duration::from_secs(30),
    );
    let mut second = caller("second", 100);
    let _ = second.wait_exit(Duration::from_secs(30));
    let log = second.messages();
    assert!(
        log.contains("SIP/2.0 503") && log.to_ascii_lowercase().contains("retry-after:"),
        "an INVITE beyond max_calls gets 503 with Retry-After: {log}"
    );
    // The admission's own figure (as the HTTP 503 gives), not a fixed default: a full house
    // is told 1..=10 s, 10 while fewer than two calls ended in the last 10 s (none here).
    let retry: Vec<u64> = log
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case("retry-after"))
        .filter_map(|(_, v)| v.trim().parse().ok())
        .collect();
    assert!(
        !retry.is_empty() && retry.iter().all(|s| (1..=10).contains(s)),
        "Retry-After is the admission's 1..=10 s: {retry:?} {log}"
    );
    assert_eq!(
        retry[0], 10,
        "no call ended yet: the full-house estimate is 10 s"
    );
    let stats = cb.get_json("/v1/stats");
    assert_eq!(stats["refused"]["max_calls"], 1, "{stats:#}");
}
