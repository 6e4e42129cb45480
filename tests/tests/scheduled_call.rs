//! A call request with a `contact_time` in the near future is accepted as `scheduled` and the
//! customer is called only once that time has come; one further ahead than
//! `limits.max_schedule_days` (default 30) is refused with `422` naming `contact_time`.

use std::time::{Duration, Instant};

use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use callbridge_tests::scenario::CUSTOMER;
use callbridge_tests::{Api, CustomerOnlyCall, Scenario, CALL_DEADLINE, SIPP_EXIT_DEADLINE};

#[test]
fn future_contact_time_defers_the_call() {
    // A busy customer ends the call quickly once it is placed.
    let mut t = CustomerOnlyCall::start("scheduled_call", Scenario::Busy, None);
    let cb = &mut t.cb;

    // Beyond the horizon (default 30 days): refused, naming the field; nothing is stored.
    for far in [
        "9999-12-31T00:00:00Z".to_owned(),
        (OffsetDateTime::now_utc() + Duration::from_secs(31 * 86_400))
            .format(&Rfc3339)
            .unwrap(),
    ] {
        let r = cb.post(
            "/v1/call-requests",
            &json!({"business": "acme", "customer": CUSTOMER, "contact_time": far}),
        );
        if r.status != 422 || r.json()["field"] != "contact_time" {
            cb.fail(&format!(
                "contact_time {far}: expected 422 naming contact_time, got {} {}",
                r.status, r.body
            ));
        }
    }

    let delay = Duration::from_secs(3);
    let contact_time = (OffsetDateTime::now_utc() + delay)
        .format(&Rfc3339)
        .unwrap();
    let posted = Instant::now();
    let r = cb.post(
        "/v1/call-requests",
        &json!({"business": "acme", "customer": CUSTOMER, "contact_time": contact_time}),
    );
    if r.status != 202 || r.json()["status"] != "scheduled" {
        cb.fail(&format!(
            "contact_time {contact_time}: expected 202 {{\"status\": \"scheduled\"}}, got {} {}",
            r.status, r.body
        ));
    }
    let id = r.json()["id"].as_str().unwrap().to_string();

    let calling = cb.wait_for_status(&id, |s| s != "scheduled", CALL_DEADLINE);
    let waited = posted.elapsed();
    // Polling adds up to 100 ms; clocks are the same machine's. Allow 300 ms of slack.
    if waited + Duration::from_millis(300) < delay {
        cb.fail(&format!(
            "the call left `scheduled` after {waited:?}, before its contact_time ({delay:?}): {calling:#}"
        ));
    }
    let done = cb.wait_done(Api::CallRequests, &id);
    cb.expect_failed(&done, "customer_busy");
    cb.expect_path(&done, &["scheduled", "calling_customer", "failed"]);
    t.customer.assert_passed(SIPP_EXIT_DEADLINE);
}
