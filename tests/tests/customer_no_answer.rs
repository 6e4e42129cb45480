//! The customer's phone rings past `customer_ring_secs`: the customer leg is CANCELled, no
//! agent is called, and the call request ends `failed/customer_no_answer`.

use callbridge_tests::scenario::{expect_request, CUSTOMER};
use callbridge_tests::{Api, CustomerOnlyCall, Flow, Scenario, SIPP_EXIT_DEADLINE};

#[test]
fn unanswered_customer_is_cancelled() {
    let flow = Flow {
        customer_ring_secs: 2,
        agent_ring_secs: 20,
        max_agent_attempts: 3,
    };
    let mut t = CustomerOnlyCall::start("customer_no_answer", Scenario::NoAnswer, Some(flow));

    let id = t.cb.call(CUSTOMER);
    let done = t.cb.wait_done(Api::CallRequests, &id);
    t.cb.expect_failed(&done, "customer_no_answer");
    t.customer.assert_passed(SIPP_EXIT_DEADLINE);
    expect_request(&t.customer, "CANCEL", "the customer leg CANCELled");
    t.agent.expect_untouched(&t.cb);
}
