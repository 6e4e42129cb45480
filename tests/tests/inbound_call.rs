//! Inbound calls: a customer dials the business's number; the trunk (SIPp's built-in UAC,
//! from the trunk's address) INVITEs callbridge at `sip:+15550001000@…`. callbridge answers,
//! plays the announcement while the call waits in the business's queue, calls the agent and
//! bridges; the caller's BYE completes the call, recorded with kind `inbound`. The same
//! INVITE to a number no business has gets 404; from an address that is not a trunk, 403.

use std::time::{Duration, Instant};

use callbridge_tests::scenario::rings;
use callbridge_tests::workdir::Workdir;
use callbridge_tests::{Agent, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions};
use serde_json::Value;

const NUMBER: &str = "+15550001000";

fn start(dir: &Workdir, trunk: std::net::SocketAddr, agent: &Sipp) -> Callbridge {
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let mut config = Config::new(&ports, trunk).agent(Agent::new("alice", &agent.sip_uri("alice")));
    config
        .business_extra
        .push(("acme".into(), format!("inbound_numbers = [\"{NUMBER}\"]")));
    Callbridge::start(dir, &config)
}

fn uac(dir: &Workdir, name: &str, cb: &Callbridge, service: &str, pause_ms: u32) -> Sipp {
    Sipp::spawn(
        dir,
        name,
        Scenario::BuiltinUac,
        &SippOptions {
            remote: Some(cb.config().sip),
            service: Some(service.into()),
            pause_ms,
            ..SippOptions::default()
        },
    )
}

fn inbound_records(cb: &Callbridge) -> Vec<Value> {
    let v = cb.get_json("/v1/records?business=acme");
    let list = v
        .as_array()
        .or_else(|| v["records"].as_array())
        .cloned()
        .unwrap_or_default();
    list.into_iter()
        .filter(|r| r["kind"] == "inbound")
        .collect()
}

#[test]
fn a_caller_to_the_business_number_is_answered_queued_and_bridged() {
    let dir = Workdir::new("inbound_call");
    // The agent answers after 1 s; the caller talks for 8 s, then hangs up.
    let mut agent = Sipp::spawn(&dir, "agent", Scenario::Answer, &rings(1000));
    let placeholder = PortBlock::reserve(1);
    // The trunk is 127.0.0.1 (SIPp's UAC sends from there).
    let cb = start(&dir, placeholder.addr(0), &agent);
    let mut caller = uac(&dir, "caller", &cb, NUMBER, 8000);
    caller.assert_passed(Duration::from_secs(60));
    agent.assert_passed(Duration::from_secs(30));
    assert!(agent.received_request("INVITE") && agent.received_request("BYE"));

    let deadline = Instant::now() + Duration::from_secs(30);
    let rec = loop {
        let done: Vec<Value> = inbound_records(&cb)
            .into_iter()
            .filter(|r| r["status"] == "completed" || r["status"] == "failed")
            .collect();
        if let Some(r) = done.into_iter().next() {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no finished inbound record: {:#}",
            cb.get_json("/v1/records?business=acme")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(rec["status"], "completed", "{rec:#}");
    let id = rec["id"].as_str().unwrap().to_owned();
    let full = cb.get_json(&format!("/v1/call-requests/{id}"));
    let statuses: Vec<String> = full["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|x| x["status"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for s in [
        "queued",
        "announcing",
        "calling_agent",
        "bridged",
        "completed",
    ] {
        assert!(
            statuses.iter().any(|x| x == s),
            "{s} missing from {statuses:?}: {full:#}"
        );
    }
}

#[test]
fn unknown_numbers_get_404_and_strangers_403() {
    let dir = Workdir::new("inbound_refused");
    let agent = Sipp::uas(&dir, "agent", Scenario::Answer);
    let placeholder = PortBlock::reserve(1);
    let cb = start(&dir, placeholder.addr(0), &agent);
    let mut wrong = uac(&dir, "wrong_number", &cb, "+15559999999", 100);
    let _ = wrong.wait_exit(Duration::from_secs(30));
    let log = wrong.messages();
    assert!(log.contains("SIP/2.0 404"), "unknown number: {log}");
    drop(wrong);

    // A trunk elsewhere (127.0.0.2): SIPp on 127.0.0.1 is not a trunk.
    let dir2 = Workdir::new("inbound_stranger");
    let cb2 = start(&dir2, "127.0.0.2:5099".parse().unwrap(), &agent);
    let mut stranger = uac(&dir2, "stranger", &cb2, NUMBER, 100);
    let _ = stranger.wait_exit(Duration::from_secs(30));
    let log = stranger.messages();
    assert!(
        log.contains("SIP/2.0 403"),
        "a caller that is not a trunk is refused: {log}"
    );
    assert!(inbound_records(&cb).is_empty() && inbound_records(&cb2).is_empty());
}
