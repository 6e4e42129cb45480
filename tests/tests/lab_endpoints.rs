//! `[lab] endpoints = true`: callbridge answers its own calls with built-in lab endpoints, so a
//! call request reaches `bridged` with RTP both ways and no SIPp at all.

use std::time::Duration;

use callbridge_tests::record::{self, is_terminal, media, media_summary};
use callbridge_tests::{Agent, Callbridge, Config, PortBlock, Workdir, CALL_DEADLINE};

#[test]
fn lab_endpoints_bridge_by_themselves() {
    let dir = Workdir::new("lab_endpoints");
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    // With lab endpoints on, callbridge itself binds lab phones at the trunk address (the
    // customer) and at every loopback agent contact: give it free ports for both.
    let nobody = PortBlock::reserve(4);
    let config = Config::new(&ports, nobody.addr(0))
        .agent(Agent::new(
            "alice",
            &format!("sip:alice@{}", nobody.addr(2)),
        ))
        .lab_endpoints(true);
    let mut cb = Callbridge::start(&dir, &config);

    let id = cb.call("+15551234567");
    let bridged = cb.wait_for_status(&id, |s| s == "bridged" || is_terminal(s), CALL_DEADLINE);
    if record::status(&bridged) != "bridged" {
        cb.fail(&format!("lab call never bridged: {bridged:#}"));
    }
    // RTP both ways through the relay while bridged (counters grow while the call runs; the
    // lab endpoints may also hang up meanwhile, so accept any record that shows it).
    let both_ways = |v: &serde_json::Value| {
        media(v, "customer", "rx_packets") > 0
            && media(v, "agent", "rx_packets") > 0
            && media(v, "customer", "tx_packets") > media(v, "customer", "announcement_packets")
            && media(v, "agent", "tx_packets") > 0
    };
    let path = format!("/v1/call-requests/{id}");
    let with_media = cb.wait_for(
        &path,
        "RTP both ways",
        |v| both_ways(v) || is_terminal(record::status(v)),
        CALL_DEADLINE,
    );
    if !both_ways(&with_media) {
        cb.fail(&format!(
            "no RTP both ways ({}): {with_media:#}",
            media_summary(&with_media)
        ));
    }
    // The lab endpoints hang up after a few seconds. There is no cancel route: a call that
    // stays up is only reported (bridged + media is what this test requires), and the harness
    // stops the server. A call that leaves `bridged` must end `completed`.
    match cb.poll_until(
        &path,
        "the lab call to end",
        |v| record::status(v) != "bridged",
        Duration::from_secs(30),
    ) {
        Ok(end) => {
            if record::status(&end) != "completed" {
                cb.fail(&format!(
                    "lab call left bridged as {:?}, not completed: {end:#}",
                    record::status(&end)
                ));
            }
        }
        Err(still) => eprintln!(
            "note: the lab call was still bridged after 30 s ({}); stopping the server",
            media_summary(&still)
        ),
    }
}
