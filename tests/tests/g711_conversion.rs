//! A PCMA customer bridged to a PCMU agent: the relay converts every audio packet between
//! the laws (G.711's tables) and rewrites the payload type, so each side hears the other in
//! its own law. SIPp does the SIP (the customer answers PCMA, the agent PCMU); test-owned
//! sockets send and check the RTP byte for byte.

use std::time::{Duration, Instant};

use callbridge_tests::record::media;
use callbridge_tests::rtp::{RtpHeader, RtpPeer};
use callbridge_tests::scenario::rings_then_hangs_up;
use callbridge_tests::{PortBlock, Scenario, SippOptions, TwoPartyCall};
use relay::g711::{ALAW_TO_ULAW, ULAW_TO_ALAW};

const CUSTOMER_SSRC: u32 = 0xC0C0_0011;
const AGENT_SSRC: u32 = 0xA6E0_0012;

/// `got` is `sent` with the payload type `pt` (marker kept) and every payload octet mapped
/// through `table`.
fn converted(got: &[u8], sent: &[u8], pt: u8, table: &[u8; 256]) -> bool {
    got.len() == sent.len()
        && got.len() > 12
        && got[0] == sent[0]
        && got[1] & 0x7f == pt
        && got[2..12] == sent[2..12]
        && got[12..]
            .iter()
            .zip(&sent[12..])
            .all(|(g, s)| *g == table[usize::from(*s)])
}

#[test]
fn a_pcma_customer_and_a_pcmu_agent_hear_each_other_converted() {
    let socks = PortBlock::reserve(4);
    let mut cust_rtp = RtpPeer::bind(socks.addr(0)); // PCMA, PT 8
    let mut agent_rtp = RtpPeer::bind(socks.addr(2)).with_payload_type(0); // PCMU
    let mut t = TwoPartyCall::builder("g711_conversion")
        .customer(
            Scenario::AnswerExternalMedia,
            SippOptions {
                rtp_port: Some(socks.port(0)),
                ..SippOptions::default()
            },
        )
        .agent(
            Scenario::AnswerByeExternalMediaPcmu,
            SippOptions {
                rtp_port: Some(socks.port(2)),
                ..rings_then_hangs_up(1000, 3000)
            },
        )
        .start();
    let done = t.talk_through(
        (&mut cust_rtp, CUSTOMER_SSRC),
        (&mut agent_rtp, AGENT_SSRC),
        || {},
    );
    let want_customer = media(&done, "customer", "tx_packets") as usize;
    let want_agent = media(&done, "agent", "tx_packets") as usize;
    let deadline = Instant::now() + Duration::from_secs(5);
    while (cust_rtp.received().len() < want_customer || agent_rtp.received().len() < want_agent)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    cust_rtp.stop();
    agent_rtp.stop();

    // The agent's PCMU reaches the customer as PCMA.
    let sent_by_agent = agent_rtp.sent();
    let from_agent: Vec<Vec<u8>> = cust_rtp
        .received()
        .into_iter()
        .map(|r| r.data)
        .filter(|d| RtpHeader::parse(d).is_some_and(|h| h.ssrc == AGENT_SSRC))
        .collect();
    assert!(
        from_agent.len() >= sent_by_agent.len() * 9 / 10 && !from_agent.is_empty(),
        "the customer got {} of the agent's {} packets",
        from_agent.len(),
        sent_by_agent.len()
    );
    for got in &from_agent {
        let n = usize::from(u16::from_be_bytes([got[2], got[3]]).wrapping_sub(1000));
        let sent = &sent_by_agent[n];
        assert!(
            converted(got, sent, 8, &ULAW_TO_ALAW),
            "agent packet {n} not converted to PCMA: {:02x?} from {:02x?}",
            &got[..16],
            &sent[..16]
        );
    }
    // The customer's PCMA reaches the agent as PCMU.
    let sent_by_customer = cust_rtp.sent();
    let from_customer: Vec<Vec<u8>> = agent_rtp
        .received()
        .into_iter()
        .map(|r| r.data)
        .filter(|d| RtpHeader::parse(d).is_some_and(|h| h.ssrc == CUSTOMER_SSRC))
        .collect();
    assert!(
        !from_customer.is_empty(),
        "the agent got none of the customer's audio"
    );
    for got in &from_customer {
        let n = usize::from(u16::from_be_bytes([got[2], got[3]]).wrapping_sub(1000));
        let sent = &sent_by_customer[n];
        assert!(
            converted(got, sent, 0, &ALAW_TO_ULAW),
            "customer packet {n} not converted to PCMU"
        );
    }
}
