//! The first agent does not answer: its leg is CANCELled after `agent_ring_secs` and the next
//! agent is called, who answers; the call is bridged to that agent and completes.

use serde_json::json;

use callbridge_tests::record::{self, check_full_call_media, is_terminal, passes_through};
use callbridge_tests::{
    Agent, Callbridge, Config, Flow, PortBlock, Scenario, Sipp, SippOptions, Workdir,
    CALL_DEADLINE, SIPP_EXIT_DEADLINE,
};

#[test]
fn next_agent_is_tried_after_a_ring_timeout() {
    let dir = Workdir::new("agent_retry");
    let mut customer = Sipp::uas(&dir, "customer", Scenario::Answer);
    let mut alice = Sipp::uas(&dir, "alice", Scenario::NoAnswer);
    let mut bob = Sipp::spawn(
        &dir,
        "bob",
        Scenario::AnswerBye,
        &SippOptions {
            ring_ms: 500,
            hangup_ms: 3000,
            ..SippOptions::default()
        },
    );
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let config = Config::new(&ports, customer.sip_addr())
        .agent(Agent::new("alice", &alice.sip_uri("alice")))
        .agent(Agent::new("bob", &bob.sip_uri("bob")))
        .flow(Flow {
            customer_ring_secs: 30,
            agent_ring_secs: 2,
            max_agent_attempts: 3,
        });
    let mut cb = Callbridge::start(&dir, &config);

    // alice first (preferred), so the retry has to go to bob.
    let id = cb.create_call_request(&json!({
        "business": "acme", "customer": "+15551234567", "preferred_agent": "alice"
    }));
    let done = cb.wait_for_status(&id, is_terminal, CALL_DEADLINE);
    eprintln!("final record: {done:#}");
    if record::status(&done) != "completed" || done["agent"] != "bob" {
        cb.fail(&format!("expected completed with agent bob, got: {done:#}"));
    }
    if !passes_through(
        &done,
        &[
            "calling_customer",
            "announcing",
            "calling_agent",
            "bridged",
            "completed",
        ],
    ) {
        cb.fail(&format!(
            "unexpected status path {:?}: {done:#}",
            record::statuses(&done)
        ));
    }
    if let Err(e) = check_full_call_media(&done) {
        cb.fail(&e);
    }
    alice.assert_passed(SIPP_EXIT_DEADLINE);
    assert!(
        alice.received_request("CANCEL"),
        "alice's leg was CANCELled"
    );
    bob.assert_passed(SIPP_EXIT_DEADLINE);
    customer.assert_passed(SIPP_EXIT_DEADLINE);
}
