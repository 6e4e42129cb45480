//! Hold and resume across the bridge: the agent (SIPp) puts the bridged call on hold with a
//! re-INVITE saying `a=sendonly`; callbridge answers it `recvonly` and re-INVITEs the customer
//! (SIPp) with `a=sendonly` (the held side's direction passed on); the resume (`a=sendrecv`)
//! travels the same way; the agent's BYE then completes the call. Each SIPp checks the
//! directions it receives (an `ereg` with `check_it`), so a wrong one fails its scenario.

use callbridge_tests::scenario::CUSTOMER;
use callbridge_tests::{Api, Scenario, SippOptions, TwoPartyCall};

#[test]
fn an_agents_hold_and_resume_reach_the_customer() {
    let mut t = TwoPartyCall::builder("hold")
        .customer(Scenario::AnswerHeld, SippOptions::default())
        .agent(Scenario::HoldResumeBye, SippOptions::default())
        .start();
    let id = t.cb.call(CUSTOMER);
    t.cb.wait_bridged(Api::CallRequests, &id);
    let done = t.cb.wait_done(Api::CallRequests, &id);
    assert_eq!(done["status"], "completed", "{done:#}");
    t.expect_sipps_passed();
    let log = t.customer.messages();
    assert!(
        log.matches("a=sendonly").count() >= 1 && log.contains("a=sendrecv"),
        "the customer was re-INVITEd on hold, then resumed:\n{log}"
    );
    let log = t.cb.log();
    assert!(log.contains("re-offer"), "callbridge logged the re-offers");
}
