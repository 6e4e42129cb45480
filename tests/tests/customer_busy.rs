//! The customer is busy (486): the call request fails with `customer_busy` and no agent is
//! ever called.

use callbridge_tests::scenario::CUSTOMER;
use callbridge_tests::{Api, CustomerOnlyCall, Scenario, SIPP_EXIT_DEADLINE};

#[test]
fn busy_customer_fails_the_call_request() {
    // The agent is a plain socket: nothing may arrive there.
    let mut t = CustomerOnlyCall::start("customer_busy", Scenario::Busy, None);

    let id = t.cb.call(CUSTOMER);
    let done = t.cb.wait_done(Api::CallRequests, &id);
    t.cb.expect_failed(&done, "customer_busy");
    t.cb.expect_never(
        &done,
        &["bridged", "calling_agent"],
        "a busy customer must not lead to an agent call",
    );
    t.customer.assert_passed(SIPP_EXIT_DEADLINE);
    t.agent.expect_untouched(&t.cb);
}
