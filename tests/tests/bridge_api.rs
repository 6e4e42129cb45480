//! The set-up API (`POST /v1/bridges {"customer","agent"}`, the "TCP/IP set-up message" of
//! the patent): the same full call as `full_call.rs`, with the agent given directly as SIPp's
//! SIP URI instead of being assigned from the configured agents.

use callbridge_tests::record::{self, check_full_call_media, is_terminal, passes_through};
use callbridge_tests::{
    Agent, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions, Workdir, CALL_DEADLINE,
    SIPP_EXIT_DEADLINE,
};

#[test]
fn bridge_api_calls_both_and_bridges() {
    let dir = Workdir::new("bridge_api");
    let mut customer = Sipp::uas(&dir, "customer", Scenario::Answer);
    let mut agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &SippOptions {
            ring_ms: 2000,
            hangup_ms: 3000,
            ..SippOptions::default()
        },
    );
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    // A configured agent nobody should call (the bridge names its own agent): a port nothing
    // listens on.
    let unused = PortBlock::reserve(2);
    let config = Config::new(&ports, customer.sip_addr()).agent(Agent::new(
        "alice",
        &format!("sip:alice@{}", unused.addr(0)),
    ));
    let mut cb = Callbridge::start(&dir, &config);

    let id = cb.create_bridge("+15551234567", &agent.sip_uri("agent"));
    let bridged =
        cb.wait_for_bridge_status(&id, |s| s == "bridged" || is_terminal(s), CALL_DEADLINE);
    if record::status(&bridged) != "bridged" {
        cb.fail(&format!("bridge never bridged: {bridged:#}"));
    }
    let done = cb.wait_for_bridge_status(&id, is_terminal, CALL_DEADLINE);
    eprintln!("final record: {done:#}");
    if record::status(&done) != "completed" {
        cb.fail(&format!("expected completed, got: {done:#}"));
    }
    let path = [
        "calling_customer",
        "announcing",
        "calling_agent",
        "bridged",
        "completed",
    ];
    if !passes_through(&done, &path) {
        cb.fail(&format!(
            "events {:?} do not pass through {path:?}: {done:#}",
            record::statuses(&done)
        ));
    }
    if let Err(e) = check_full_call_media(&done) {
        cb.fail(&e);
    }

    agent.assert_passed(SIPP_EXIT_DEADLINE);
    customer.assert_passed(SIPP_EXIT_DEADLINE);
    let agent_ruri = format!("INVITE {} SIP/2.0", agent.sip_uri("agent"));
    assert!(
        agent.messages().contains(&agent_ruri),
        "agent INVITE has Request-URI {agent_ruri}"
    );
}
