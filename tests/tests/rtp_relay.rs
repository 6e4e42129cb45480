//! RTP through the relay, checked byte for byte on test-owned sockets (SIPp does the SIP only;
//! its SDP answers name our sockets):
//! - before the bridge the customer receives the announcement: one well-formed 20 ms G.711
//!   stream (marker on the first packet, seq +1, timestamp +160, one SSRC) from the relay's
//!   customer-leg address;
//! - once bridged, every packet the agent sends reaches the customer unchanged (header and
//!   payload; only the marker bit may be set on the first relayed packet), from the relay's
//!   customer-leg address, and every packet the customer sends reaches the agent unchanged,
//!   from the relay's agent-leg address;
//! - the call's media counters agree with what the sockets saw.

use std::time::{Duration, Instant};

use callbridge_tests::record::{self, media};
use callbridge_tests::rtp::{check_g711_stream, RtpHeader, RtpPeer};
use callbridge_tests::scenario::rings_then_hangs_up;
use callbridge_tests::{PortBlock, Scenario, SippOptions, TwoPartyCall};

const CUSTOMER_SSRC: u32 = 0xC0C0_0001;
const AGENT_SSRC: u32 = 0xA6E0_0002;

/// True when `got` is `sent`, except perhaps for the marker bit (allowed when `marker_ok`).
fn same_packet(got: &[u8], sent: &[u8], marker_ok: bool) -> bool {
    if got.len() != sent.len() || got.len() < 12 {
        return false;
    }
    let mask = if marker_ok { 0x7f } else { 0xff };
    got[0] == sent[0] && got[1] & mask == sent[1] & mask && got[2..] == sent[2..]
}

#[test]
fn relay_forwards_rtp_byte_for_byte() {
    let socks = PortBlock::reserve(4);
    let mut cust_rtp = RtpPeer::bind(socks.addr(0));
    let mut agent_rtp = RtpPeer::bind(socks.addr(2));
    let mut t = TwoPartyCall::builder("rtp_relay")
        .customer(
            Scenario::AnswerExternalMedia,
            SippOptions {
                rtp_port: Some(socks.port(0)),
                ..SippOptions::default()
            },
        )
        // Ring 1.5 s (announcement), then 3 s bridged; we send 2 s of agent audio.
        .agent(
            Scenario::AnswerByeExternalMedia,
            SippOptions {
                rtp_port: Some(socks.port(2)),
                ..rings_then_hangs_up(1500, 3000)
            },
        )
        .start();
    let done = t.talk_through(
        (&mut cust_rtp, CUSTOMER_SSRC),
        (&mut agent_rtp, AGENT_SSRC),
        || {},
    );
    let relay_customer = t
        .customer
        .received_sdp_audio("INVITE")
        .expect("SDP audio address");
    let relay_agent = t
        .agent
        .received_sdp_audio("INVITE")
        .expect("SDP audio address");
    let cb = &t.cb;
    // Let in-flight datagrams land: wait (bounded) until the sockets have seen as many packets
    // as the relay says it sent them.
    let want_customer = media(&done, "customer", "tx_packets") as usize;
    let want_agent = media(&done, "agent", "tx_packets") as usize;
    let drain_deadline = Instant::now() + Duration::from_secs(5);
    while (cust_rtp.received().len() < want_customer || agent_rtp.received().len() < want_agent)
        && Instant::now() < drain_deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    cust_rtp.stop();
    agent_rtp.stop();

    let at_customer = cust_rtp.received();
    let at_agent = agent_rtp.received();
    let agent_sent = agent_rtp.sent();
    let customer_sent = cust_rtp.sent();
    let summary = format!(
        "customer socket got {} packets, agent socket got {}; customer sent {}, agent sent {}; counters {}",
        at_customer.len(),
        at_agent.len(),
        customer_sent.len(),
        agent_sent.len(),
        record::media_summary(&done)
    );

    // Everything arrives from the relay's leg address (symmetric RTP).
    if let Some(r) = at_customer.iter().find(|r| r.from != relay_customer) {
        cb.fail(&format!(
            "customer got a packet from {} instead of {relay_customer}; {summary}",
            r.from
        ));
    }
    if let Some(r) = at_agent.iter().find(|r| r.from != relay_agent) {
        cb.fail(&format!(
            "agent got a packet from {} instead of {relay_agent}; {summary}",
            r.from
        ));
    }

    // Customer side: announcement first, then the agent's stream.
    let ssrc = |d: &[u8]| RtpHeader::parse(d).map(|h| h.ssrc);
    let first_relayed = at_customer
        .iter()
        .position(|r| ssrc(&r.data) == Some(AGENT_SSRC));
    let Some(first_relayed) = first_relayed else {
        cb.fail(&format!("no agent RTP reached the customer; {summary}"));
    };
    let announcement: Vec<&[u8]> = at_customer[..first_relayed]
        .iter()
        .map(|r| r.data.as_slice())
        .collect();
    if announcement.len() < 25 {
        cb.fail(&format!(
            "only {} announcement packets before the bridge (1.5 s of ringing); {summary}",
            announcement.len()
        ));
    }
    if let Err(e) = check_g711_stream(&announcement) {
        cb.fail(&format!("announcement stream: {e}; {summary}"));
    }
    let relayed_to_customer: Vec<&[u8]> = at_customer[first_relayed..]
        .iter()
        .map(|r| r.data.as_slice())
        .filter(|d| ssrc(d) == Some(AGENT_SSRC))
        .collect();
    for (i, got) in relayed_to_customer.iter().enumerate() {
        let n = usize::from(RtpHeader::parse(got).map_or(0, |h| h.seq.wrapping_sub(1000)));
        let Some(sent) = agent_sent.get(n) else {
            cb.fail(&format!(
                "customer got agent packet #{n} that was never sent; {summary}"
            ));
        };
        if !same_packet(got, sent, i == 0) {
            cb.fail(&format!("agent packet #{n} changed on its way to the customer:\nsent {sent:02x?}\ngot  {got:02x?}"));
        }
    }
    if relayed_to_customer.len() * 10 < agent_sent.len() * 9 {
        cb.fail(&format!(
            "{} of {} agent packets reached the customer; {summary}",
            relayed_to_customer.len(),
            agent_sent.len()
        ));
    }
    if let Some(h) = relayed_to_customer
        .first()
        .and_then(|d| RtpHeader::parse(d))
    {
        if !h.marker {
            eprintln!("note: the first relayed packet after the switch carries no marker bit");
        }
    }

    // Agent side: only the customer's stream, unchanged.
    let mut relayed_to_agent = 0usize;
    for (i, r) in at_agent.iter().enumerate() {
        let Some(h) = RtpHeader::parse(&r.data) else {
            cb.fail(&format!("agent got a non-RTP datagram {:02x?}", r.data));
        };
        if h.ssrc != CUSTOMER_SSRC {
            cb.fail(&format!(
                "agent got a packet of SSRC {:#x} (not the customer's); {summary}",
                h.ssrc
            ));
        }
        let n = usize::from(h.seq.wrapping_sub(1000));
        let Some(sent) = customer_sent.get(n) else {
            cb.fail(&format!(
                "agent got customer packet #{n} that was never sent; {summary}"
            ));
        };
        if !same_packet(&r.data, sent, i == 0) {
            cb.fail(&format!("customer packet #{n} changed on its way to the agent:\nsent {sent:02x?}\ngot  {:02x?}", r.data));
        }
        relayed_to_agent += 1;
    }
    if relayed_to_agent < 50 {
        cb.fail(&format!(
            "only {relayed_to_agent} customer packets reached the agent in ~3 s bridged; {summary}"
        ));
    }

    // The counters agree with the wire.
    let checks = [
        (
            "customer.announcement_packets",
            media(&done, "customer", "announcement_packets"),
            announcement.len(),
        ),
        (
            "customer.tx_packets",
            media(&done, "customer", "tx_packets"),
            at_customer.len(),
        ),
        (
            "agent.tx_packets",
            media(&done, "agent", "tx_packets"),
            at_agent.len(),
        ),
        (
            "agent.rx_packets",
            media(&done, "agent", "rx_packets"),
            relayed_to_customer.len(),
        ),
        (
            "customer.rx_packets",
            media(&done, "customer", "rx_packets"),
            relayed_to_agent,
        ),
    ];
    for (name, counter, seen) in checks {
        if counter < seen as u64 {
            cb.fail(&format!(
                "media.{name} = {counter}, but the sockets saw {seen}; {summary}"
            ));
        }
    }
}
