//! The first agent does not answer: its leg is CANCELled after `agent_ring_secs` and the next
//! agent is called, who answers; the call is bridged to that agent and completes.

use serde_json::json;

use callbridge_tests::scenario::{expect_request, rings_then_hangs_up, CUSTOMER};
use callbridge_tests::{Api, Flow, Scenario, SippOptions, TwoPartyCall};

#[test]
fn next_agent_is_tried_after_a_ring_timeout() {
    // alice (the agent SIPp) never answers; bob answers after 0.5 s.
    let mut t = TwoPartyCall::builder("agent_retry")
        .agent(Scenario::NoAnswer, SippOptions::default())
        .extra_agent("bob", Scenario::AnswerBye, rings_then_hangs_up(500, 3000))
        .flow(Flow {
            customer_ring_secs: 30,
            agent_ring_secs: 2,
            max_agent_attempts: 3,
        })
        .start();

    // alice first (preferred), so the retry has to go to bob.
    let id = t.cb.create_call_request(&json!({
        "business": "acme", "customer": CUSTOMER, "preferred_agent": "alice"
    }));
    let done = t.cb.wait_done(Api::CallRequests, &id);
    if done["agent"] != "bob" {
        t.cb.fail(&format!("expected completed with agent bob, got: {done:#}"));
    }
    t.cb.expect_full_call(&done, "");

    t.expect_sipps_passed();
    expect_request(&t.agent, "CANCEL", "alice's leg CANCELled");
}
