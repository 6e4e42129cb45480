//! Honest failure reasons for callees that cannot be reached (issue 12): an ICMP port
//! unreachable (read from the SIP socket's error queue) or a host name that does not resolve
//! fails the call at once as `customer_unreachable` / `agent_unreachable`, instead of ringing
//! out the ring time or ending `internal`.
//!
//! The dead ports are [`PortBlock`]s: free when handed out, never bound by anyone (the block
//! stays reserved for the test's lifetime, so no other test of this process binds it).

use std::time::{Duration, Instant};

use callbridge_tests::record::is_terminal;
use callbridge_tests::scenario::SilentAgent;
use callbridge_tests::{
    Agent, Api, Callbridge, Config, Flow, PortBlock, Scenario, SippOptions, TwoPartyCall, Workdir,
};
use serde_json::json;

/// Generous: the point is that the call ends long before the 60 s ring time.
const DEADLINE: Duration = Duration::from_secs(30);
/// What "at once" must beat, with room for a loaded machine.
const AT_ONCE: Duration = Duration::from_secs(20);

/// A `[flow]` whose ring times a call must never wait out here.
fn long_rings(max_agent_attempts: u32) -> Flow {
    Flow {
        customer_ring_secs: 60,
        agent_ring_secs: 60,
        max_agent_attempts,
    }
}

/// Callbridge with a silent agent `alice` (must never be called) and a trunk at a dead port.
struct CustomerOnly {
    cb: Callbridge,
    agent: SilentAgent,
    _dead: PortBlock,
    _ports: PortBlock,
    _dir: Workdir,
}

fn customer_only(test: &str, sip_extra: &str) -> CustomerOnly {
    let dir = Workdir::new(test);
    let agent = SilentAgent::bind();
    let dead = PortBlock::reserve(2);
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let mut config = Config::new(&ports, dead.addr(0))
        .agent(Agent::new("alice", &agent.sip_uri("alice")))
        .flow(long_rings(3));
    config.sip_extra = sip_extra.to_owned();
    let cb = Callbridge::start(&dir, &config);
    CustomerOnly {
        cb,
        agent,
        _dead: dead,
        _ports: ports,
        _dir: dir,
    }
}

/// Waits for the request's end; fails unless it is `failed/<reason>` within [`AT_ONCE`].
fn expect_failed_at_once(cb: &mut Callbridge, id: &str, reason: &str, started: Instant) {
    let done = cb.wait_for_status(id, is_terminal, DEADLINE);
    let took = started.elapsed();
    eprintln!("final record after {took:?}: {done:#}");
    cb.expect_failed(&done, reason);
    if took > AT_ONCE {
        cb.fail(&format!(
            "failed/{reason} only after {took:?}: the ring time was waited out"
        ));
    }
    cb.expect_never(&done, &["bridged"], "nobody was reached, yet bridged");
}

fn expect_no_internal(cb: &Callbridge) {
    let log = cb.log();
    if log.contains("failed/internal") || log.contains("call failed: internal") {
        cb.fail("an unreachable callee was logged as an internal failure");
    }
}

#[test]
fn a_customer_at_a_dead_port_is_unreachable_at_once() {
    let mut t = customer_only("unreachable_customer_port", "");
    let dead = PortBlock::reserve(2);
    let uri = format!("sip:cust@{}", dead.addr(0));
    let started = Instant::now();
    let id = t.cb.call(&uri);
    expect_failed_at_once(&mut t.cb, &id, "customer_unreachable", started);
    t.agent.expect_untouched(&t.cb);
    expect_no_internal(&t.cb);
    if !t.cb.log().contains("port unreachable") {
        t.cb.fail("the log does not say why (ICMP port unreachable)");
    }
}

#[test]
fn a_customer_host_name_that_does_not_resolve_is_unreachable_at_once() {
    // `.invalid` (RFC 2606/6761) is answered "no such name" by callbridge itself; the name
    // servers are a dead loopback port besides, so no query could leave the machine anyway.
    let dns = PortBlock::reserve(2);
    let mut t = customer_only(
        "unreachable_customer_dns",
        &format!("dns_servers = [\"{}\"]\n", dns.addr(0)),
    );
    let started = Instant::now();
    // Accepted at submit (flows and the dialler share one rule: host names are targets) …
    let id = t.cb.call("sip:cust@nobody.invalid");
    // … and fails as unreachable, not internal.
    expect_failed_at_once(&mut t.cb, &id, "customer_unreachable", started);
    t.agent.expect_untouched(&t.cb);
    expect_no_internal(&t.cb);
}

#[test]
fn the_only_agent_at_a_dead_port_is_agent_unreachable_at_once() {
    let mut t = TwoPartyCall::builder("unreachable_agent_port")
        .unreachable_configured_agent()
        .flow(long_rings(1))
        .start();
    let started = Instant::now();
    let id = t.cb.call(callbridge_tests::scenario::CUSTOMER);
    expect_failed_at_once(&mut t.cb, &id, "agent_unreachable", started);
    let done = t.cb.wait_done(Api::CallRequests, &id);
    t.cb.expect_path(
        &done,
        &["calling_customer", "announcing", "calling_agent", "failed"],
    );
    expect_no_internal(&t.cb);
}

#[test]
fn an_unreachable_agent_is_skipped_for_the_next_one() {
    // alice (preferred, so tried first) is at a dead port; bob answers: the call is
    // bridged with bob at once, as if alice had not answered (and alice is set away).
    let mut t = TwoPartyCall::builder("unreachable_agent_next")
        .agent_ids(["alice".to_owned()])
        .unreachable_configured_agent()
        .extra_agent(
            "bob",
            Scenario::AnswerBye,
            callbridge_tests::scenario::rings_then_hangs_up(500, 1000),
        )
        .customer(Scenario::Answer, SippOptions::default())
        .flow(long_rings(3))
        .start();
    let started = Instant::now();
    let id = t.cb.create_call_request(&json!({
        "business": "acme",
        "customer": callbridge_tests::scenario::CUSTOMER,
        "preferred_agent": "alice",
    }));
    let bridged = t.cb.wait_bridged(Api::CallRequests, &id);
    let took = started.elapsed();
    if took > AT_ONCE {
        t.cb.fail(&format!("bridged with the next agent only after {took:?}"));
    }
    if bridged["agent"] != "bob" {
        t.cb.fail(&format!("expected agent bob, got: {bridged:#}"));
    }
    let done = t.cb.wait_done(Api::CallRequests, &id);
    if done["status"] != "completed" {
        t.cb.fail(&format!("expected completed, got: {done:#}"));
    }
    let log = t.cb.log();
    if !log.contains("agent unreachable: set away") {
        t.cb.fail("alice was not set away as unreachable");
    }
    expect_no_internal(&t.cb);
}
