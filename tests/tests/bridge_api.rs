//! The set-up API (`POST /v1/bridges {"customer","agent"}`, the "TCP/IP set-up message" of
//! the patent): the same full call as `full_call.rs`, with the agent given directly as SIPp's
//! SIP URI instead of being assigned from the configured agents.

use callbridge_tests::scenario::{expect_invite_to, rings_then_hangs_up, CUSTOMER};
use callbridge_tests::{Api, Scenario, TwoPartyCall};

#[test]
fn bridge_api_calls_both_and_bridges() {
    let mut t = TwoPartyCall::builder("bridge_api")
        .agent(Scenario::AnswerBye, rings_then_hangs_up(2000, 3000))
        // A configured agent nobody should call (the bridge names its own agent): a port
        // nothing listens on.
        .unreachable_configured_agent()
        .start();

    let agent_uri = t.agent.sip_uri("agent");
    let id = t.cb.create_bridge(CUSTOMER, &agent_uri);
    t.cb.wait_bridged(Api::Bridges, &id);
    let done = t.cb.wait_done(Api::Bridges, &id);
    t.cb.expect_full_call(&done, "");

    t.expect_sipps_passed();
    expect_invite_to(&t.agent, &agent_uri);
}
