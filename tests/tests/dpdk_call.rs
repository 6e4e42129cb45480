//! The whole click-to-call of `full_call.rs` with the media bridged through the DPDK backend
//! (`media.backend = "dpdk"`, `net_af_packet` on a veth pair, no hugepages). Needs root and a
//! callbridge built with `--features dpdk` (see `callbridge_tests::dpdk`); never skips.
//!
//! SIPp runs in a network namespace: SIP over the kernel (198.18.1.2 ↔ callbridge's
//! `sip.listen` on 198.18.1.1), RTP from 198.18.0.2 to the relay's 198.18.0.1, which only
//! DPDK answers (ARP, ICMP echo and UDP through callbridge's own netstack).

use callbridge_tests::dpdk::{DpdkLab, MEDIA_ADDR, MEDIA_PEER, SIP_PEER};
use callbridge_tests::scenario::{expect_request, rings_then_hangs_up};
use callbridge_tests::{Scenario, TwoPartyCall};

#[test]
fn dpdk_full_call_relays_media_through_the_dpdk_port() {
    // Declared first, dropped last: callbridge and SIPp are gone before their links are.
    let lab = DpdkLab::create();
    let mut t = TwoPartyCall::builder("dpdk_call")
        // Ring 2 s (the customer hears the announcement meanwhile), talk 3 s, hang up.
        .agent(Scenario::AnswerBye, rings_then_hangs_up(2000, 3000))
        .dpdk(&lab)
        .start();
    assert_eq!(t.customer.sip_addr().ip(), SIP_PEER);

    // ARP and ICMP echo answered by our netstack on the DPDK port.
    let ping = lab.ping(MEDIA_ADDR);
    if !ping.status.success() {
        t.cb.fail(&format!(
            "ping -c 3 -W 5 {MEDIA_ADDR} from {} ({MEDIA_PEER}) failed ({}): {}{}",
            lab.ns(),
            ping.status,
            String::from_utf8_lossy(&ping.stdout),
            String::from_utf8_lossy(&ping.stderr)
        ));
    }
    let neigh = lab.exec(&["ip", "neigh", "show", &MEDIA_ADDR.to_string()]);
    let neigh = String::from_utf8_lossy(&neigh.stdout).into_owned();
    let mac = lab.media_mac();
    if !neigh.contains(&mac) {
        t.cb.fail(&format!(
            "the namespace's neighbour entry for {MEDIA_ADDR} ({neigh:?}) lacks the DPDK port's MAC {mac}"
        ));
    }

    t.expect_full_call_with_two_second_ring();

    t.expect_sipps_passed();
    // Both legs' SDP named the DPDK address as the relay's media address.
    for (name, sipp) in [("customer", &t.customer), ("agent", &t.agent)] {
        match sipp.received_sdp_audio("INVITE") {
            Some(a) if a.ip() == MEDIA_ADDR => {}
            other => sipp.fail(&format!(
                "{name}: the INVITE's SDP names {other:?}, expected the DPDK address {MEDIA_ADDR}"
            )),
        }
    }
    expect_request(
        &t.customer,
        "BYE",
        "the customer hung up on after the agent left",
    );
}
