//! The customer hangs up while bridged: the agent gets BYE and the call request ends
//! `completed` (the mirror image of `full_call.rs`, where the agent hangs up).

use callbridge_tests::scenario::{expect_request, rings, rings_then_hangs_up, CUSTOMER};
use callbridge_tests::{Api, Scenario, TwoPartyCall};

#[test]
fn customer_bye_while_bridged_completes_the_call() {
    // The agent answers after 1 s; the customer hangs up 4 s after answering, i.e. ~3 s into
    // the bridged call.
    let mut t = TwoPartyCall::builder("customer_hangs_up_while_bridged")
        .customer(Scenario::AnswerBye, rings_then_hangs_up(0, 4000))
        .agent(Scenario::Answer, rings(1000))
        .start();

    let id = t.cb.call(CUSTOMER);
    t.cb.wait_bridged(Api::CallRequests, &id);
    let done = t.cb.wait_done(Api::CallRequests, &id);
    t.cb.expect_full_call(&done, "");

    t.expect_sipps_passed();
    expect_request(&t.agent, "BYE", "the agent got BYE after the customer left");
}
