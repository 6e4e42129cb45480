//! The only agent never answers: after `agent_ring_secs` the agent leg is CANCELled, there is
//! no further attempt (`max_agent_attempts = 1`), the customer gets BYE and the call request
//! ends `failed/agent_no_answer`.

use std::time::Instant;

use callbridge_tests::record::{self, is_terminal, passes_through};
use callbridge_tests::{
    Agent, Callbridge, Config, Flow, PortBlock, Scenario, Sipp, Workdir, CALL_DEADLINE,
    SIPP_EXIT_DEADLINE,
};

#[test]
fn unanswered_agent_is_cancelled_and_the_call_fails() {
    let dir = Workdir::new("agent_no_answer");
    let mut customer = Sipp::uas(&dir, "customer", Scenario::Answer);
    let mut agent = Sipp::uas(&dir, "agent", Scenario::NoAnswer);
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let config = Config::new(&ports, customer.sip_addr())
        .agent(Agent::new("alice", &agent.sip_uri("alice")))
        .flow(Flow {
            customer_ring_secs: 30,
            agent_ring_secs: 2,
            max_agent_attempts: 1,
        });
    let mut cb = Callbridge::start(&dir, &config);

    let id = cb.call("+15551234567");
    cb.wait_for_status(
        &id,
        |s| s == "calling_agent" || is_terminal(s),
        CALL_DEADLINE,
    );
    let ringing_since = Instant::now();
    let done = cb.wait_for_status(&id, is_terminal, CALL_DEADLINE);
    eprintln!("final record: {done:#}");
    if record::status(&done) != "failed" || record::reason(&done) != Some("agent_no_answer") {
        cb.fail(&format!("expected failed/agent_no_answer, got: {done:#}"));
    }
    if !passes_through(
        &done,
        &["calling_customer", "announcing", "calling_agent", "failed"],
    ) {
        cb.fail(&format!(
            "unexpected status path {:?}: {done:#}",
            record::statuses(&done)
        ));
    }
    if record::statuses(&done).iter().any(|s| s == "bridged") {
        cb.fail(&format!(
            "nobody answered, yet the call was bridged: {done:#}"
        ));
    }
    // agent_ring_secs = 2: the CANCEL cannot have come much earlier than that.
    let rang = ringing_since.elapsed();
    assert!(
        rang.as_millis() >= 1500,
        "agent leg given up after only {rang:?}"
    );

    agent.assert_passed(SIPP_EXIT_DEADLINE);
    assert!(
        agent.received_request("CANCEL"),
        "the agent leg was CANCELled"
    );
    customer.assert_passed(SIPP_EXIT_DEADLINE);
    assert!(customer.received_request("BYE"), "the customer got BYE");
    if record::media(&done, "customer", "announcement_packets") == 0 {
        cb.fail(&format!(
            "the customer heard no announcement while the agent rang: {done:#}"
        ));
    }
}
