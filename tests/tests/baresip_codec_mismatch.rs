//! The customer's trunk answers PCMA only; the agent's softphone (baresip, registered over
//! TLS, SRTP) prefers PCMU, as many do. What reaches the customer must be what the customer
//! agreed to: RTP payload type 8 only.
//!
//! Found while running baresip (`tests/baresip_agent.rs`): the agent's phone may pick PCMU
//! from our offer while the customer answered PCMA only. The relay now converts between the
//! laws and rewrites the payload type (`relay::g711`, `Command::SetPayloadTypes` from each
//! leg's SDP agreement), so the customer gets PCMA whatever the phone chose.
//!
//! The customer is SIPp for SIP only (`uas_answer_bye_external_media.xml`) with its media on
//! a test-owned socket, which records everything the relay sends it.

use std::net::SocketAddr;
use std::time::Duration;

use callbridge_tests::baresip::{strip_ansi, Account, Baresip};
use callbridge_tests::certs::TestPki;
use callbridge_tests::rtp::RtpHeader;
use callbridge_tests::scenario::CUSTOMER;
use callbridge_tests::{
    Agent, Api, Callbridge, Config, PortBlock, RtpPeer, Scenario, Sipp, SippOptions, Workdir,
    STARTUP_DEADLINE,
};

#[test]
fn a_pcmu_phone_bridged_to_a_pcma_customer_sends_the_customer_pcma() {
    let dir = Workdir::new("baresip_codec_mismatch");
    let pki = TestPki::generate(&dir);
    let rtp_block = PortBlock::reserve(2);
    let mut customer_rtp = RtpPeer::bind(rtp_block.addr(0));
    let customer = Sipp::spawn(
        &dir,
        "customer",
        Scenario::AnswerByeExternalMedia,
        &SippOptions {
            hangup_ms: 4000,
            rtp_port: Some(rtp_block.port(0)),
            ..SippOptions::default()
        },
    );
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let tls = PortBlock::reserve(1).addr(0);
    let mut config = Config::new(&ports, customer.sip_addr()).agent(
        Agent::new("alice", "registered").with_toml(
            "sip_username = \"alice7\"\nsip_password = \"hunter2-long\"\nsrtp = \"required\"",
        ),
    );
    config.sip_extra_listen.push(format!("tls:{tls}"));
    config.extra.push_str(&pki.sip_tls_toml());
    config.extra.push_str(
        "[sip.registrar]\nrealm = \"callbridge.test\"\nsecret = \"0123456789abcdef0123\"\n\
         algorithms = [\"MD5\"]\n",
    );
    let mut cb = Callbridge::start(&dir, &config);
    let phone = Baresip::spawn(
        &dir,
        "baresip",
        &Account {
            user: "alice7".into(),
            password: "hunter2-long".into(),
            registrar: tls,
            ca: pki.ca.clone(),
            mediaenc: "srtp-mand".into(),
            audio_codecs: "pcmu,pcma".into(),
        },
    );
    let start = std::time::Instant::now();
    while !strip_ansi(&cb.log())
        .lines()
        .any(|l| l.contains("REGISTER answered") && l.contains("status=200"))
    {
        if start.elapsed() > STARTUP_DEADLINE {
            phone.fail("never registered");
        }
        std::thread::sleep(callbridge_tests::POLL_INTERVAL);
    }

    let id = cb.call(CUSTOMER);
    cb.wait_bridged(Api::CallRequests, &id);
    let relay: SocketAddr = customer
        .received_sdp_audio("INVITE")
        .unwrap_or_else(|| customer.fail("no SDP in callbridge's INVITE"));
    // The customer talks too (PCMA), so the relay has both directions.
    customer_rtp.start_sending(relay, 0xc0de, 150);
    let done = cb.wait_done(Api::CallRequests, &id);
    let mut customer = customer;
    customer.assert_passed(Duration::from_secs(30));
    assert_eq!(
        callbridge_tests::record::status(&done),
        "completed",
        "{done:#}"
    );
    customer_rtp.stop();

    let received = customer_rtp.received();
    let mut by_pt = std::collections::BTreeMap::<u8, usize>::new();
    for r in &received {
        if let Some(h) = RtpHeader::parse(&r.data) {
            *by_pt.entry(h.payload_type).or_default() += 1;
        }
    }
    eprintln!("RTP the customer received, by payload type: {by_pt:?}");
    assert!(!received.is_empty(), "the customer received no RTP");
    assert_eq!(
        by_pt.keys().copied().collect::<Vec<u8>>(),
        vec![8],
        "the customer answered `RTP/AVP 8 101` and must receive PCMA (8) only; \
         baresip's pipeline: {:?}",
        phone
            .log()
            .lines()
            .filter(|l| l.contains("pipeline"))
            .collect::<Vec<_>>()
    );
}
