//! The voice-over-IP form: the customer is a SIP URI (`sip:cust@127.0.0.1:PORT`), reached
//! directly instead of through the trunk; otherwise the same full call as `full_call.rs`.

use callbridge_tests::scenario::{expect_invite_to, rings_then_hangs_up};
use callbridge_tests::{Api, Scenario, TwoPartyCall};

#[test]
fn sip_uri_customer_is_called_directly() {
    let mut t = TwoPartyCall::builder("sip_uri_customer")
        .agent(Scenario::AnswerBye, rings_then_hangs_up(1000, 3000))
        // The trunk is a port nothing listens on: the customer must not be reached through it.
        .unreachable_trunk()
        .start();

    let customer_uri = t.customer.sip_uri("cust");
    let id = t.cb.call(&customer_uri);
    let done = t.cb.wait_done(Api::CallRequests, &id);
    t.cb.expect_full_call(&done, "");

    t.expect_sipps_passed();
    expect_invite_to(&t.customer, &customer_uri);
}
