//! `DELETE /v1/call-requests/{id}` on live calls: a customer still ringing gets CANCEL, a
//! bridged call gets BYE on both legs; both end `cancelled`. Cancelling again is 409, an
//! unknown id 404.

use std::time::Instant;

use callbridge_tests::record::{self, is_terminal};
use callbridge_tests::scenario::{expect_request, CUSTOMER};
use callbridge_tests::{
    Api, Callbridge, CustomerOnlyCall, Flow, Scenario, Sipp, TwoPartyCall, CALL_DEADLINE,
    POLL_INTERVAL, SIPP_EXIT_DEADLINE,
};

/// Waits until `sipp`'s message log holds `needle` (e.g. it sent its 180).
fn wait_logged(sipp: &Sipp, needle: &str) {
    let start = Instant::now();
    while !sipp.messages().contains(needle) {
        if start.elapsed() > CALL_DEADLINE {
            sipp.fail(&format!("never logged {needle:?}"));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// `DELETE` the call: 200 and status `cancelled`; a second one is 409, an unknown id 404.
fn cancel(cb: &Callbridge, id: &str) -> serde_json::Value {
    let path = format!("/v1/call-requests/{id}");
    let r = cb.request("DELETE", &path, None);
    if r.status != 200 {
        cb.fail(&format!("DELETE {path} answered {} {}", r.status, r.body));
    }
    let v = r.json();
    if record::status(&v) != "cancelled" {
        cb.fail(&format!("DELETE {path} did not cancel: {v:#}"));
    }
    let again = cb.request("DELETE", &path, None);
    let body = again.json();
    if again.status != 409 || body["error"] != "call already ended" {
        cb.fail(&format!("second DELETE answered {} {body}", again.status));
    }
    let unknown = cb.request("DELETE", "/v1/call-requests/c_doesnotexist", None);
    if unknown.status != 404 || unknown.json()["field"] != "id" {
        cb.fail(&format!(
            "unknown id answered {} {}",
            unknown.status, unknown.body
        ));
    }
    v
}

#[test]
fn a_ringing_customer_is_cancelled() {
    // The customer would ring for a minute: only the DELETE ends it.
    let flow = Flow {
        customer_ring_secs: 55,
        agent_ring_secs: 20,
        max_agent_attempts: 3,
    };
    let mut t = CustomerOnlyCall::start("cancel_ringing", Scenario::NoAnswer, Some(flow));
    let id = t.cb.call(CUSTOMER);
    let ringing = t.cb.wait_for_status(
        &id,
        |s| s == "calling_customer" || is_terminal(s),
        CALL_DEADLINE,
    );
    if record::status(&ringing) != "calling_customer" {
        t.cb.fail(&format!("never rang: {ringing:#}"));
    }
    // Ringing: SIPp answered the INVITE with its 180.
    wait_logged(&t.customer, "SIP/2.0 180");
    let v = cancel(&t.cb, &id);
    t.cb.expect_never(&v, &["announcing", "bridged"], "cancelled while ringing");
    // uas_noanswer.xml passes only after CANCEL (200) and its 487.
    t.customer.assert_passed(SIPP_EXIT_DEADLINE);
    expect_request(&t.customer, "CANCEL", "the ringing customer CANCELled");
    t.agent.expect_untouched(&t.cb);
    let done = t.cb.call_request(&id);
    assert_eq!(record::status(&done), "cancelled", "{done:#}");
}

#[test]
fn a_bridged_call_is_hung_up_on_both_sides() {
    // Both answer and wait for a BYE (uas_answer.xml).
    let mut t = TwoPartyCall::builder("cancel_bridged").start();
    let id = t.cb.call(CUSTOMER);
    t.cb.wait_bridged(Api::CallRequests, &id);
    let live = t.cb.get_json("/v1/calls");
    if !live
        .as_array()
        .is_some_and(|l| l.iter().any(|c| c["id"] == id.as_str()))
    {
        t.cb.fail(&format!("GET /v1/calls does not list {id}: {live:#}"));
    }
    let v = cancel(&t.cb, &id);
    t.cb.expect_path(&v, &["calling_customer", "bridged", "cancelled"]);
    t.expect_sipps_passed();
    expect_request(&t.customer, "BYE", "the customer hung up by the DELETE");
    expect_request(&t.agent, "BYE", "the agent hung up by the DELETE");
    let live = t.cb.get_json("/v1/calls");
    assert_eq!(live, serde_json::json!([]), "no live call left");
}
