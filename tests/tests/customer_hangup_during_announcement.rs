//! The customer hangs up ~1 s after answering, while the announcement plays and the agent
//! rings: the agent leg is CANCELled and the call request ends `failed/customer_hung_up`.

use callbridge_tests::scenario::{expect_request, CUSTOMER};
use callbridge_tests::{Api, Scenario, SippOptions, TwoPartyCall};

#[test]
fn customer_hangup_cancels_the_agent_leg() {
    // Default [flow]: the agent would ring for 20 s, so a CANCEL within the test comes from
    // the customer's hang-up, not from the ring timeout.
    let mut t = TwoPartyCall::builder("customer_hangup_during_announcement")
        .customer(Scenario::HangupEarly, SippOptions::default())
        .agent(Scenario::NoAnswer, SippOptions::default())
        .start();

    let id = t.cb.call(CUSTOMER);
    let done = t.cb.wait_done(Api::CallRequests, &id);
    t.cb.expect_failed(&done, "customer_hung_up");
    t.cb.expect_never(
        &done,
        &["bridged"],
        "the customer left before any agent answered, yet bridged",
    );

    t.expect_sipps_passed();
    expect_request(&t.agent, "CANCEL", "the agent leg CANCELled");
    t.cb.expect_announcement(&done, 1, "before the customer hung up");
}
