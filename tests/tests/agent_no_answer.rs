//! The only agent never answers: after `agent_ring_secs` the agent leg is CANCELled, there is
//! no further attempt (`max_agent_attempts = 1`), the customer gets BYE and the call request
//! ends `failed/agent_no_answer`.

use std::time::Instant;

use callbridge_tests::record::is_terminal;
use callbridge_tests::scenario::{expect_request, CUSTOMER};
use callbridge_tests::{Api, Flow, Scenario, SippOptions, TwoPartyCall, CALL_DEADLINE};

#[test]
fn unanswered_agent_is_cancelled_and_the_call_fails() {
    let mut t = TwoPartyCall::builder("agent_no_answer")
        .agent(Scenario::NoAnswer, SippOptions::default())
        .flow(Flow {
            customer_ring_secs: 30,
            agent_ring_secs: 2,
            max_agent_attempts: 1,
        })
        .start();

    let id = t.cb.call(CUSTOMER);
    t.cb.wait_for_status(
        &id,
        |s| s == "calling_agent" || is_terminal(s),
        CALL_DEADLINE,
    );
    let ringing_since = Instant::now();
    let done = t.cb.wait_done(Api::CallRequests, &id);
    t.cb.expect_failed(&done, "agent_no_answer");
    t.cb.expect_path(
        &done,
        &["calling_customer", "announcing", "calling_agent", "failed"],
    );
    t.cb.expect_never(
        &done,
        &["bridged"],
        "nobody answered, yet the call was bridged",
    );
    // agent_ring_secs = 2: the CANCEL cannot have come much earlier than that.
    let rang = ringing_since.elapsed();
    assert!(
        rang.as_millis() >= 1500,
        "agent leg given up after only {rang:?}"
    );

    t.expect_sipps_passed();
    expect_request(&t.agent, "CANCEL", "the agent leg CANCELled");
    expect_request(&t.customer, "BYE", "the customer hung up on");
    t.cb.expect_announcement(&done, 1, "while the agent rang");
}
