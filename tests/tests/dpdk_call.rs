//! The whole click-to-call of `full_call.rs` with the media bridged through the DPDK backend
//! (`media.backend = "dpdk"`, `net_af_packet` on a veth pair, no hugepages). Needs root and a
//! callbridge built with `--features dpdk` (see `callbridge_tests::dpdk`); never skips.
//!
//! SIPp runs in a network namespace: SIP over the kernel (198.18.1.2 ↔ callbridge's
//! `sip.listen` on 198.18.1.1), RTP from 198.18.0.2 to the relay's 198.18.0.1, which only
//! DPDK answers (ARP, ICMP echo and UDP through callbridge's own netstack).

use callbridge_tests::dpdk::{self, DpdkLab, MEDIA_ADDR, MEDIA_PEER, SIP_PEER};
use callbridge_tests::record::{self, check_full_call_media, is_terminal, passes_through};
use callbridge_tests::{
    Agent, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions, Workdir, CALL_DEADLINE,
    SIPP_EXIT_DEADLINE,
};

#[test]
fn dpdk_full_call_relays_media_through_the_dpdk_port() {
    // Declared first, dropped last: callbridge and SIPp are gone before their links are.
    let lab = DpdkLab::create();
    let dir = Workdir::new("dpdk_call");
    let mut customer = Sipp::spawn(
        &dir,
        "customer",
        Scenario::Answer,
        &lab.sipp_options(SippOptions::default()),
    );
    let mut agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        // Ring 2 s (the customer hears the announcement meanwhile), talk 3 s, hang up.
        &lab.sipp_options(SippOptions {
            ring_ms: 2000,
            hangup_ms: 3000,
            ..SippOptions::default()
        }),
    );
    assert_eq!(customer.sip_addr().ip(), SIP_PEER);
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let config = lab.callbridge_config(
        Config::new(&ports, customer.sip_addr())
            .agent(Agent::new("alice", &agent.sip_uri("alice"))),
    );
    let bin = dpdk::bin_path();
    dpdk::require_dpdk_build(&bin, &dir, &config);
    let mut cb = Callbridge::start_bin(&dir, &config, &bin);

    // ARP and ICMP echo answered by our netstack on the DPDK port.
    let ping = lab.ping(MEDIA_ADDR);
    if !ping.status.success() {
        cb.fail(&format!(
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
        cb.fail(&format!(
            "the namespace's neighbour entry for {MEDIA_ADDR} ({neigh:?}) lacks the DPDK port's MAC {mac}"
        ));
    }

    let id = cb.call("+15551234567");
    let bridged = cb.wait_for_status(&id, |s| s == "bridged" || is_terminal(s), CALL_DEADLINE);
    if record::status(&bridged) != "bridged" {
        cb.fail(&format!("call request never bridged: {bridged:#}"));
    }
    let done = cb.wait_for_status(&id, is_terminal, CALL_DEADLINE);
    eprintln!("final record: {done:#}");
    if record::status(&done) != "completed" {
        cb.fail(&format!("expected completed, got: {done:#}"));
    }
    let path = [
        "calling_customer",
        "announcing",
        "calling_agent",
        "bridged",
        "completed",
    ];
    if !passes_through(&done, &path) {
        cb.fail(&format!(
            "events {:?} do not pass through {path:?}: {done:#}",
            record::statuses(&done)
        ));
    }
    assert_eq!(done["business"], "acme", "{done:#}");
    // announcement_packets > 0 and RTP both ways: customer and agent rx/tx.
    if let Err(e) = check_full_call_media(&done) {
        cb.fail(&e);
    }
    let ann = record::media(&done, "customer", "announcement_packets");
    if ann < 50 {
        cb.fail(&format!(
            "only {ann} announcement packets during a 2 s agent ring: {done:#}"
        ));
    }
    if record::media(&done, "customer", "tx_packets") <= ann
        || record::media(&done, "agent", "tx_packets") == 0
    {
        cb.fail(&format!("no RTP relayed: {}", record::media_summary(&done)));
    }

    agent.assert_passed(SIPP_EXIT_DEADLINE);
    customer.assert_passed(SIPP_EXIT_DEADLINE);
    // Both legs' SDP named the DPDK address as the relay's media address.
    for (name, sipp) in [("customer", &customer), ("agent", &agent)] {
        match sipp.received_sdp_audio("INVITE") {
            Some(a) if a.ip() == MEDIA_ADDR => {}
            other => sipp.fail(&format!(
                "{name}: the INVITE's SDP names {other:?}, expected the DPDK address {MEDIA_ADDR}"
            )),
        }
    }
    assert!(
        customer.received_request("BYE"),
        "the customer was hung up on after the agent left"
    );
}
