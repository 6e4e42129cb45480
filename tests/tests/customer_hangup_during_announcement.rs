//! The customer hangs up ~1 s after answering, while the announcement plays and the agent
//! rings: the agent leg is CANCELled and the call request ends `failed/customer_hung_up`.

use callbridge_tests::record::{self, is_terminal};
use callbridge_tests::{
    Agent, Callbridge, Config, PortBlock, Scenario, Sipp, Workdir, CALL_DEADLINE,
    SIPP_EXIT_DEADLINE,
};

#[test]
fn customer_hangup_cancels_the_agent_leg() {
    let dir = Workdir::new("customer_hangup_during_announcement");
    let mut customer = Sipp::uas(&dir, "customer", Scenario::HangupEarly);
    let mut agent = Sipp::uas(&dir, "agent", Scenario::NoAnswer);
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    // Default [flow]: the agent would ring for 20 s, so a CANCEL within the test comes from
    // the customer's hang-up, not from the ring timeout.
    let config = Config::new(&ports, customer.sip_addr())
        .agent(Agent::new("alice", &agent.sip_uri("alice")));
    let mut cb = Callbridge::start(&dir, &config);

    let id = cb.call("+15551234567");
    let done = cb.wait_for_status(&id, is_terminal, CALL_DEADLINE);
    eprintln!("final record: {done:#}");
    if record::status(&done) != "failed" || record::reason(&done) != Some("customer_hung_up") {
        cb.fail(&format!("expected failed/customer_hung_up, got: {done:#}"));
    }
    if record::statuses(&done).iter().any(|s| s == "bridged") {
        cb.fail(&format!(
            "the customer left before any agent answered, yet bridged: {done:#}"
        ));
    }
    customer.assert_passed(SIPP_EXIT_DEADLINE);
    agent.assert_passed(SIPP_EXIT_DEADLINE);
    assert!(
        agent.received_request("CANCEL"),
        "the agent leg was CANCELled"
    );
    if record::media(&done, "customer", "announcement_packets") == 0 {
        cb.fail(&format!(
            "the customer heard no announcement before hanging up: {done:#}"
        ));
    }
}
