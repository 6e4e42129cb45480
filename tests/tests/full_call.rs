//! The whole click-to-call: customer (via the trunk) answers, hears the announcement while the
//! agent rings for ~2 s, the agent answers, both are bridged with RTP both ways through the
//! relay, the agent hangs up, the customer gets BYE and the call request ends `completed`.

use callbridge_tests::scenario::{expect_invite_to, expect_request, rings_then_hangs_up, CUSTOMER};
use callbridge_tests::{Scenario, TwoPartyCall};

#[test]
fn full_call_announces_then_bridges_then_completes() {
    let mut t = TwoPartyCall::builder("full_call")
        // Ring 2 s (the customer hears the announcement meanwhile), talk 3 s, hang up.
        .agent(Scenario::AnswerBye, rings_then_hangs_up(2000, 3000))
        .start();

    t.expect_full_call_with_two_second_ring();

    t.expect_sipps_passed();
    // E.164 customers go to the trunk as sip:+NUMBER@host:port.
    expect_invite_to(
        &t.customer,
        &format!("sip:{CUSTOMER}@{}", t.customer.sip_addr()),
    );
    expect_request(
        &t.customer,
        "BYE",
        "the customer hung up on after the agent left",
    );
}
