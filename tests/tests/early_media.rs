//! Early media from the agent: with `agent_early_media = true`, the agent's 183 with SDP
//! bridges the legs at once, so the customer hears the agent's side (its ringback) before the
//! agent answers, instead of the announcement; the 200 then completes the bridge as usual.

use std::time::{Duration, Instant};

use callbridge_tests::record;
use callbridge_tests::rtp::{RtpHeader, RtpPeer};
use callbridge_tests::scenario::{rings_then_hangs_up, CUSTOMER};
use callbridge_tests::{Api, PortBlock, Scenario, SippOptions, TwoPartyCall};

const AGENT_SSRC: u32 = 0xEA71_0001;

#[test]
fn the_customer_hears_the_agents_ringback_before_the_answer() {
    let socks = PortBlock::reserve(4);
    let cust_rtp = RtpPeer::bind(socks.addr(0));
    let mut agent_rtp = RtpPeer::bind(socks.addr(2));
    let mut t = TwoPartyCall::builder("early_media")
        .customer(
            Scenario::AnswerExternalMedia,
            SippOptions {
                rtp_port: Some(socks.port(0)),
                ..SippOptions::default()
            },
        )
        // 183 at once, 200 after 4 s, BYE 1 s later.
        .agent(
            Scenario::EarlyMediaAnswerBye,
            SippOptions {
                rtp_port: Some(socks.port(2)),
                ..rings_then_hangs_up(4000, 1000)
            },
        )
        .business_toml("agent_early_media = true")
        .start();
    let id = t.cb.call(CUSTOMER);
    t.cb.wait_for_status(
        &id,
        |s| s == "calling_agent" || record::is_terminal(s),
        Duration::from_secs(30),
    );
    // The agent's phone sends its ringback as soon as its 183 is out.
    let deadline = Instant::now() + Duration::from_secs(20);
    let relay_agent = loop {
        if let Some(a) = t.agent.received_sdp_audio("INVITE") {
            break a;
        }
        assert!(Instant::now() < deadline, "the agent got no INVITE");
        std::thread::sleep(Duration::from_millis(20));
    };
    agent_rtp.start_sending(relay_agent, AGENT_SSRC, 150);
    let deadline = Instant::now() + Duration::from_secs(10);
    while cust_rtp
        .received()
        .iter()
        .filter(|r| RtpHeader::parse(&r.data).is_some_and(|h| h.ssrc == AGENT_SSRC))
        .count()
        < 10
    {
        assert!(
            Instant::now() < deadline,
            "the agent's early media never reached the customer"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let now = t.cb.call_request(&id);
    assert_eq!(
        now["status"], "calling_agent",
        "early media flowed before the agent answered: {now:#}"
    );
    t.cb.wait_bridged(Api::CallRequests, &id);
    let done = t.cb.wait_done(Api::CallRequests, &id);
    assert_eq!(done["status"], "completed", "{done:#}");
    t.expect_sipps_passed();
}
