//! A call request with a `contact_time` in the near future is accepted as `scheduled` and the
//! customer is called only once that time has come.

use std::time::{Duration, Instant};

use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use callbridge_tests::record::{self, is_terminal, passes_through};
use callbridge_tests::{
    Agent, Callbridge, Config, PortBlock, Scenario, Sipp, Workdir, CALL_DEADLINE,
    SIPP_EXIT_DEADLINE,
};

#[test]
fn future_contact_time_defers_the_call() {
    let dir = Workdir::new("scheduled_call");
    // A busy customer ends the call quickly once it is placed.
    let mut customer = Sipp::uas(&dir, "customer", Scenario::Busy);
    let agent_ports = PortBlock::reserve(2);
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let config = Config::new(&ports, customer.sip_addr()).agent(Agent::new(
        "alice",
        &format!("sip:alice@{}", agent_ports.addr(0)),
    ));
    let mut cb = Callbridge::start(&dir, &config);

    let delay = Duration::from_secs(3);
    let contact_time = (OffsetDateTime::now_utc() + delay)
        .format(&Rfc3339)
        .unwrap();
    let posted = Instant::now();
    let r = cb.post(
        "/v1/call-requests",
        &json!({"business": "acme", "customer": "+15551234567", "contact_time": contact_time}),
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
    let done = cb.wait_for_status(&id, is_terminal, CALL_DEADLINE);
    eprintln!("final record: {done:#}");
    if record::reason(&done) != Some("customer_busy") {
        cb.fail(&format!(
            "expected failed/customer_busy once placed, got: {done:#}"
        ));
    }
    if !passes_through(&done, &["scheduled", "calling_customer", "failed"]) {
        cb.fail(&format!(
            "unexpected status path {:?}: {done:#}",
            record::statuses(&done)
        ));
    }
    customer.assert_passed(SIPP_EXIT_DEADLINE);
}
