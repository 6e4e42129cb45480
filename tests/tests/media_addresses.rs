//! Several media addresses: `media.ports` holds exactly two RTP/RTCP pairs on 127.0.0.1 and
//! `media.extra_addresses = ["127.0.0.2"]` adds the same two pairs there. The first call's two
//! legs fill 127.0.0.1; a second call placed while the first is bridged gets 127.0.0.2 (its
//! INVITEs carry `c=IN IP4 127.0.0.2`, and the SIPps send their RTP there); both bridge with
//! RTP both ways. A third concurrent call finds no free media port: `POST /v1/call-requests`
//! answers 503 and no call is started.
//!
//! One SIPp plays both customers (behind the trunk), another both agents (`agent0`, `agent1`
//! at one SIPp's URI). 127.0.0.2 is a loopback address on Linux without any set-up.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use callbridge_tests::record;
use callbridge_tests::scenario::{rings_then_hangs_up, CUSTOMER};
use callbridge_tests::{
    Agent, Api, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions, Workdir,
    SIPP_EXIT_DEADLINE,
};

const FIRST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const SECOND: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The relay address and port in the INVITE `sipp` received for call `id`.
fn invite_sdp(sipp: &Sipp, id: &str) -> SocketAddr {
    sipp.received_sdp_audio_with("INVITE", &format!("X-Callbridge-Call: {id}"))
        .unwrap_or_else(|| sipp.fail(&format!("no INVITE with SDP for call {id}")))
}

#[test]
fn second_call_takes_the_second_address_and_a_third_finds_no_port() {
    // Drop order (reverse of declaration): callbridge, then the SIPps, then the directory.
    let dir = Workdir::new("media_addresses");
    let mut customer = Sipp::spawn(
        &dir,
        "customer",
        Scenario::Answer,
        &SippOptions {
            calls: 2,
            ..SippOptions::default()
        },
    );
    // Ring 1 s (the customer hears the announcement), talk 10 s: the first call is still
    // bridged when the second one bridges about a second after it was placed.
    let mut agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &SippOptions {
            calls: 2,
            ..rings_then_hangs_up(1000, 10_000)
        },
    );
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let mut config = Config::new(&ports, customer.sip_addr())
        .agent(Agent::new("agent0", &agent.sip_uri("agent0")))
        .agent(Agent::new("agent1", &agent.sip_uri("agent1")))
        .extra_addresses(&[SECOND]);
    // Exactly two RTP/RTCP pairs per address: one call's two legs.
    let first_port = config.media_ports.0;
    config.media_ports = (first_port, first_port + 3);
    let mut cb = Callbridge::start(&dir, &config);

    let first = cb.call(CUSTOMER);
    cb.wait_bridged(Api::CallRequests, &first);

    let second = cb.call("+15551234568");
    // Every port pair on both addresses is taken now: the third request is refused.
    let third = cb.post(
        "/v1/call-requests",
        &serde_json::json!({ "business": "acme", "customer": "+15551234569" }),
    );
    if third.status != 503 || !third.body.contains("no free media port") {
        cb.fail(&format!(
            "a third call with every media port in use should be refused with 503 \"no free media port\", \
             got {} {:?}",
            third.status, third.body
        ));
    }
    cb.wait_bridged(Api::CallRequests, &second);
    let first_now = cb.call_request(&first);
    if record::status(&first_now) != "bridged" {
        cb.fail(&format!(
            "the first call should still be bridged while the second bridges: {first_now:#}"
        ));
    }

    for id in [&first, &second] {
        let done = cb.wait_done(Api::CallRequests, id);
        cb.expect_full_call(&done, &format!("call {id}: "));
    }
    agent.assert_passed(SIPP_EXIT_DEADLINE);
    customer.assert_passed(SIPP_EXIT_DEADLINE);

    // Each leg's SDP names its own media address; both calls use the same two port pairs.
    let pairs = [first_port, first_port + 2];
    for (id, ip) in [(&first, FIRST), (&second, SECOND)] {
        let legs = [
            ("customer", invite_sdp(&customer, id)),
            ("agent", invite_sdp(&agent, id)),
        ];
        for (who, sdp) in legs {
            if sdp.ip() != ip || !pairs.contains(&sdp.port()) {
                cb.fail(&format!(
                    "call {id}: the {who}'s INVITE offers {sdp}, expected {ip} on port {} or {}",
                    pairs[0], pairs[1]
                ));
            }
        }
        if legs[0].1 == legs[1].1 {
            cb.fail(&format!(
                "call {id}: both legs offer {}; each leg needs its own port pair",
                legs[0].1
            ));
        }
    }
    // The raw line, as SIPp saw it.
    if !customer.messages().contains("c=IN IP4 127.0.0.2") {
        customer.fail("no INVITE carried c=IN IP4 127.0.0.2");
    }
}
