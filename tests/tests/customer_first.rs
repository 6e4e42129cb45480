//! `reservation = "customer_first"` against junk requests: one business, ONE agent, five call
//! requests for customers whose phones ring and never answer, then one for a visitor who
//! answers.
//!
//! - `customer_first`: the junk customers ring with no agent reserved, so the visitor is
//!   bridged to the agent (announcement, RTP both ways) while they still ring; each junk
//!   request ends `failed/customer_no_answer` without ever touching an agent.
//! - `agent_first` (the default), the same requests: the first junk request holds the agent
//!   for its whole ring time, so the visitor waits in the queue and ends `failed/no_agent`
//!   (`queue_timeout_secs` is shorter than the ring time) without being called. This is what
//!   the customer-first order exists for.
//!
//! Customers are SIP URIs: the junk ones all go to one SIPp that rings and waits for the
//! CANCEL ([`Scenario::NoAnswer`], one call per junk request it receives), the visitor to
//! another that answers.

use std::time::{Duration, Instant};

use serde_json::Value;

use callbridge_tests::record::{self, is_terminal};
use callbridge_tests::scenario::{rings, rings_then_hangs_up, SilentAgent};
use callbridge_tests::{
    Agent, Api, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions, Workdir, CALL_DEADLINE,
    SIPP_EXIT_DEADLINE,
};

/// Junk requests per run.
const JUNK: u32 = 5;
/// Long enough that the visitor's whole call (dial, answer, agent rings 1 s, bridge) fits
/// inside a junk customer's ring on a loaded machine; the ordering is asserted on the
/// recorded event times, not on when the test happens to poll.
const CUSTOMER_RING_SECS: u32 = 20;
/// Shorter than the ring: under agent first, a request queued behind a ringing junk customer
/// gives up before the agent is released.
const QUEUE_TIMEOUT_SECS: u32 = 5;

/// callbridge for business `acme` with `reservation`, agent `alice` at `agent`. The trunk
/// (`nobody`, a reserved port) is never used: every customer is a SIP URI.
fn start(
    dir: &Workdir,
    ports: &PortBlock,
    nobody: &PortBlock,
    reservation: &str,
    agent: &str,
) -> Callbridge {
    let config = Config::new(ports, nobody.addr(0))
        .agent(Agent::new("alice", agent))
        .business_toml("acme", &format!("reservation = \"{reservation}\""))
        .with_toml(&format!(
            "[flow]\ncustomer_ring_secs = {CUSTOMER_RING_SECS}\nagent_ring_secs = 10\n\
             max_agent_attempts = 1\nqueue_timeout_secs = {QUEUE_TIMEOUT_SECS}"
        ));
    Callbridge::start(dir, &config)
}

/// The `at` of the record's first `status` event.
fn event_at(cb: &Callbridge, rec: &Value, status: &str) -> String {
    rec["events"]
        .as_array()
        .and_then(|evs| evs.iter().find(|e| e["status"] == status))
        .and_then(|e| e["at"].as_str())
        .map_or_else(
            || cb.fail(&format!("no {status} event: {rec:#}")),
            str::to_owned,
        )
}

/// Posts the junk requests (`sip:junkN@` the junk SIPp) and waits until one of them rings;
/// returns their ids and the index of that one.
fn post_junk(cb: &mut Callbridge, junk: &Sipp) -> (Vec<String>, usize) {
    let ids: Vec<String> = (1..=JUNK)
        .map(|n| cb.call(&junk.sip_uri(&format!("junk{n}"))))
        .collect();
    let start = Instant::now();
    loop {
        let statuses: Vec<Value> = ids.iter().map(|id| cb.call_request(id)).collect();
        if let Some(i) = statuses
            .iter()
            .position(|r| record::status(r) == "calling_customer")
        {
            return (ids, i);
        }
        if let Some(r) = statuses.iter().find(|r| is_terminal(record::status(r))) {
            cb.fail(&format!("a junk request ended before any rang: {r:#}"));
        }
        if start.elapsed() > CALL_DEADLINE {
            cb.fail(&format!("no junk request rang: {statuses:#?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn customer_first_keeps_the_agent_free_for_the_customer_who_answers() {
    let dir = Workdir::new("customer_first");
    let mut junk = Sipp::spawn(
        &dir,
        "junk",
        Scenario::NoAnswer,
        &SippOptions {
            calls: JUNK,
            ..SippOptions::default()
        },
    );
    let mut visitor = Sipp::spawn(&dir, "visitor", Scenario::Answer, &rings(300));
    // Rings 1 s (the visitor hears the announcement), talks 3 s, hangs up.
    let mut agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &rings_then_hangs_up(1000, 3000),
    );
    let (ports, nobody) = (PortBlock::reserve(Config::BLOCK_LEN), PortBlock::reserve(1));
    let mut cb = start(
        &dir,
        &ports,
        &nobody,
        "customer_first",
        &agent.sip_uri("alice"),
    );

    let (junk_ids, _) = post_junk(&mut cb, &junk);
    // Every junk customer rings (none waits for an agent: none is needed to ring).
    for id in &junk_ids {
        let rec = cb.wait_for_status(
            id,
            |s| s == "calling_customer" || is_terminal(s),
            CALL_DEADLINE,
        );
        if record::status(&rec) != "calling_customer" {
            cb.fail(&format!("junk request {id} did not ring: {rec:#}"));
        }
    }

    let id = cb.call(&visitor.sip_uri("visitor"));
    cb.wait_bridged(Api::CallRequests, &id);
    let done = cb.wait_done(Api::CallRequests, &id);
    cb.expect_full_call(&done, "the visitor: ");
    cb.expect_announcement(&done, 25, "while the agent rang 1 s");
    if done["agent"] != "alice" {
        cb.fail(&format!("expected agent alice, got: {done:#}"));
    }
    let bridged_at = event_at(&cb, &done, "bridged");

    for jid in &junk_ids {
        let rec = cb.wait_done(Api::CallRequests, jid);
        cb.expect_failed(&rec, "customer_no_answer");
        cb.expect_never(
            &rec,
            &["announcing", "calling_agent", "bridged"],
            "a junk customer reached the agent",
        );
        if !rec["agent"].is_null() {
            cb.fail(&format!("a junk request held an agent: {rec:#}"));
        }
        // It was still ringing when the visitor was bridged.
        let ended_at = event_at(&cb, &rec, "failed");
        let rang_at = event_at(&cb, &rec, "calling_customer");
        if !(rang_at < bridged_at && bridged_at < ended_at) {
            cb.fail(&format!(
                "junk {jid} rang {rang_at}..{ended_at}, the visitor was bridged at {bridged_at}: \
                 not while it rang"
            ));
        }
    }
    junk.assert_passed(SIPP_EXIT_DEADLINE);
    visitor.assert_passed(SIPP_EXIT_DEADLINE);
    agent.assert_passed(SIPP_EXIT_DEADLINE);
}

#[test]
fn agent_first_lets_a_ringing_junk_request_hold_the_only_agent() {
    let dir = Workdir::new("customer_first_agent_first");
    // Only one junk customer is ever called: the others, and the visitor, wait for alice,
    // who stays reserved for the first one while it rings.
    let mut junk = Sipp::spawn(&dir, "junk", Scenario::NoAnswer, &SippOptions::default());
    let agent = SilentAgent::bind();
    let visitor = SilentAgent::bind();
    let (ports, nobody) = (PortBlock::reserve(Config::BLOCK_LEN), PortBlock::reserve(1));
    let mut cb = start(
        &dir,
        &ports,
        &nobody,
        "agent_first",
        &agent.sip_uri("alice"),
    );

    let (junk_ids, ringing) = post_junk(&mut cb, &junk);
    let id = cb.call(&visitor.sip_uri("visitor"));
    let done = cb.wait_done(Api::CallRequests, &id);
    cb.expect_failed(&done, "no_agent");
    cb.expect_never(
        &done,
        &["calling_customer"],
        "the visitor was called although no agent was free",
    );
    let gave_up_at = event_at(&cb, &done, "failed");

    // The ringing junk request held alice for its whole ring and ended without reaching her.
    let first = cb.wait_done(Api::CallRequests, &junk_ids[ringing]);
    cb.expect_failed(&first, "customer_no_answer");
    let ended_at = event_at(&cb, &first, "failed");
    if gave_up_at >= ended_at {
        cb.fail(&format!(
            "the visitor gave up at {gave_up_at}, after the junk call ended at {ended_at}: {first:#}"
        ));
    }
    for (i, jid) in junk_ids.iter().enumerate().filter(|(i, _)| *i != ringing) {
        let rec = cb.wait_done(Api::CallRequests, jid);
        cb.expect_failed(&rec, "no_agent");
        cb.expect_never(&rec, &["calling_customer"], &format!("junk {i} was called"));
    }
    junk.assert_passed(SIPP_EXIT_DEADLINE);
    agent.expect_untouched(&cb);
    visitor.expect_untouched(&cb);
}
