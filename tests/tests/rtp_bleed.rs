//! "RTP Bleed" (issue 8) with the default media configuration: a third party on another
//! loopback address (127.0.0.9) sprays callbridge's whole media port range with well-formed,
//! marked RTP (one consistent stream per port) and RTCP at 2 000 packets/s from before the
//! call is placed until it has ended (at most 10 s), while a real customer and agent (test
//! sockets named in SIPp's SDP, as in `rtp_relay.rs`) talk through the relay. Then:
//! - the sprayer received nothing (no announcement, no relayed audio);
//! - nothing it sent reached either real peer;
//! - the real audio is intact both ways: the announcement is one clean stream, the agent's
//!   and the customer's packets arrive unchanged and (nearly) all, and each leg sent its
//!   peer exactly what the peer's socket saw (nothing diverted elsewhere);
//! - the refused packets are counted (`drops.src_mismatch`) on the call's legs and in
//!   `GET /v1/dataplane/stats`, and the call still completes.
//!
//! And NAT still works where it is declared: with `media.nat_window_ms`, a customer whose
//! SDP names 127.0.0.1 but who really sends from 127.0.0.2 (an address-rewriting NAT) is
//! learned within the window, and hears the announcement and the agent there.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use callbridge_tests::inject::{is_injected, SprayPlan, Sprayer};
use callbridge_tests::record::{self, media};
use callbridge_tests::rtp::{check_g711_stream, RtpHeader, RtpPeer};
use callbridge_tests::scenario::rings_then_hangs_up;
use callbridge_tests::{
    Callbridge, Config, PortBlock, Scenario, SippOptions, TwoPartyCall, POLL_INTERVAL,
};
use serde_json::Value;

const CUSTOMER_SSRC: u32 = 0xC0C0_0001;
const AGENT_SSRC: u32 = 0xA6E0_0002;
/// The attacker's address: loopback, but not the peers' 127.0.0.1.
const SPRAYER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));
const SPRAY_RATE: u32 = 2000;
const SPRAY_MAX: Duration = Duration::from_secs(10);
/// How long the data plane's published counters may take to catch up.
const STATS_DEADLINE: Duration = Duration::from_secs(30);
/// How long a finished call's final media counters may take to be stored.
const SETTLE_DEADLINE: Duration = Duration::from_secs(15);

/// True when `got` is `sent`, except perhaps for the marker bit (allowed when `marker_ok`).
fn same_packet(got: &[u8], sent: &[u8], marker_ok: bool) -> bool {
    if got.len() != sent.len() || got.len() < 12 {
        return false;
    }
    let mask = if marker_ok { 0x7f } else { 0xff };
    got[0] == sent[0] && got[1] & mask == sent[1] & mask && got[2..] == sent[2..]
}

fn src_mismatch(drops: &Value) -> u64 {
    drops["src_mismatch"].as_u64().unwrap_or(0)
}

/// `drops.src_mismatch` summed over the data plane's workers.
fn dataplane_src_mismatch(stats: &Value) -> u64 {
    stats["workers"].as_array().map_or(0, |ws| {
        ws.iter().map(|w| src_mismatch(&w["relay"]["drops"])).sum()
    })
}

/// The call's record once its media counters account for what the `peers`' sockets saw
/// (each `tx_packets` at least what the socket got and at most two more: see the check
/// below), or after a generous deadline. The final counters are stored shortly after the
/// status turns terminal; until then the record shows the last periodic snapshot, and
/// datagrams may still be in flight.
fn settled(cb: &mut Callbridge, id: &str, peers: &[(&str, &RtpPeer)]) -> Value {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    loop {
        let rec = cb.call_request(id);
        let ok = peers.iter().all(|(who, peer)| {
            let counter = media(&rec, who, "tx_packets");
            let seen = peer.received().len() as u64;
            counter >= seen && counter <= seen + 2
        });
        if ok || Instant::now() > deadline {
            return rec;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[test]
fn a_sprayer_on_another_address_gets_nothing_and_diverts_nothing() {
    let socks = PortBlock::reserve(4);
    let mut cust_rtp = RtpPeer::bind(socks.addr(0));
    let mut agent_rtp = RtpPeer::bind(socks.addr(2));
    let mut t = TwoPartyCall::builder("rtp_bleed")
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
    // The media range exactly as the lab configured it.
    let (first, last) = Config::new(t.ports(), socks.addr(0)).media_ports;
    let mut sprayer = Sprayer::start(SprayPlan {
        from: SPRAYER,
        target: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ports: first..=last,
        rate: SPRAY_RATE,
        max_duration: SPRAY_MAX,
    });
    // Set-up under spray: the legs exist before either party's SDP is known.
    let mut sprayed_at_bridge = 0;
    let done = t.talk_through(
        (&mut cust_rtp, CUSTOMER_SSRC),
        (&mut agent_rtp, AGENT_SSRC),
        || sprayed_at_bridge = sprayer.sent(),
    );
    sprayer.stop();
    let sprayed = sprayer.sent();
    let id = done["id"].as_str().expect("the record's id").to_owned();
    let relay_customer = t
        .customer
        .received_sdp_audio("INVITE")
        .expect("SDP audio address");
    let relay_agent = t
        .agent
        .received_sdp_audio("INVITE")
        .expect("SDP audio address");
    let cb = &mut t.cb;
    let done = settled(cb, &id, &[("customer", &cust_rtp), ("agent", &agent_rtp)]);
    cust_rtp.stop();
    agent_rtp.stop();

    let at_customer = cust_rtp.received();
    let at_agent = agent_rtp.received();
    let at_sprayer = sprayer.received();
    let agent_sent = agent_rtp.sent();
    let customer_sent = cust_rtp.sent();
    let summary = format!(
        "sprayer sent {sprayed} ({sprayed_at_bridge} before the bridge) and got {}; customer \
         socket got {} packets, agent socket got {}; customer sent {}, agent sent {}; counters {}",
        at_sprayer.len(),
        at_customer.len(),
        at_agent.len(),
        customer_sent.len(),
        agent_sent.len(),
        record::media_summary(&done)
    );
    eprintln!("{summary}");

    // The spray really covered set-up and the bridged call.
    if sprayed_at_bridge < u64::from(SPRAY_RATE) / 2 || sprayed <= sprayed_at_bridge {
        cb.fail(&format!(
            "the sprayer did not run through set-up and the bridged call; {summary}"
        ));
    }
    // Nothing came back to the sprayer.
    if let Some(r) = at_sprayer.first() {
        cb.fail(&format!(
            "the sprayer received {} packets, the first from {}: {:02x?}; {summary}",
            at_sprayer.len(),
            r.from,
            &r.data[..r.data.len().min(32)]
        ));
    }
    // Nothing it sent reached a real peer, and everything came from the relay's leg.
    for (who, got, relay) in [
        ("customer", &at_customer, relay_customer),
        ("agent", &at_agent, relay_agent),
    ] {
        if let Some(r) = got.iter().find(|r| is_injected(&r.data)) {
            cb.fail(&format!(
                "an injected packet reached the {who}: {:02x?}; {summary}",
                &r.data[..r.data.len().min(32)]
            ));
        }
        if let Some(r) = got.iter().find(|r| r.from != relay) {
            cb.fail(&format!(
                "the {who} got a packet from {} instead of {relay}; {summary}",
                r.from
            ));
        }
    }
    // Each leg sent its peer what the peer's socket saw: nothing went elsewhere. (A packet
    // or two may be counted as sent and then refused by the worker's socket when the leg's
    // removal closes it: the final counters were already taken then.)
    for (who, got) in [("customer", &at_customer), ("agent", &at_agent)] {
        let counter = media(&done, who, "tx_packets");
        let seen = got.len() as u64;
        if counter < seen || counter > seen + 2 {
            cb.fail(&format!(
                "media.{who}.tx_packets = {counter} but the {who}'s socket saw {}; {summary}",
                got.len()
            ));
        }
    }

    // The customer heard the announcement, then the agent's stream, unchanged.
    let ssrc = |d: &[u8]| RtpHeader::parse(d).map(|h| h.ssrc);
    let Some(first_relayed) = at_customer
        .iter()
        .position(|r| ssrc(&r.data) == Some(AGENT_SSRC))
    else {
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
    let relayed_to_customer = &at_customer[first_relayed..];
    for (i, r) in relayed_to_customer.iter().enumerate() {
        let h = RtpHeader::parse(&r.data);
        if h.map(|h| h.ssrc) != Some(AGENT_SSRC) {
            cb.fail(&format!(
                "after the bridge the customer got {:02x?}, not the agent's stream; {summary}",
                &r.data[..r.data.len().min(32)]
            ));
        }
        let n = usize::from(h.map_or(0, |h| h.seq.wrapping_sub(1000)));
        let Some(sent) = agent_sent.get(n) else {
            cb.fail(&format!(
                "customer got agent packet #{n} that was never sent; {summary}"
            ));
        };
        if !same_packet(&r.data, sent, i == 0) {
            cb.fail(&format!(
                "agent packet #{n} changed on its way to the customer; {summary}"
            ));
        }
    }
    if relayed_to_customer.len() * 10 < agent_sent.len() * 9 {
        cb.fail(&format!(
            "{} of {} agent packets reached the customer; {summary}",
            relayed_to_customer.len(),
            agent_sent.len()
        ));
    }
    // The agent heard only the customer's stream, unchanged.
    for (i, r) in at_agent.iter().enumerate() {
        let Some(h) = RtpHeader::parse(&r.data).filter(|h| h.ssrc == CUSTOMER_SSRC) else {
            cb.fail(&format!(
                "the agent got {:02x?}, not the customer's stream; {summary}",
                &r.data[..r.data.len().min(32)]
            ));
        };
        let n = usize::from(h.seq.wrapping_sub(1000));
        let Some(sent) = customer_sent.get(n) else {
            cb.fail(&format!(
                "agent got customer packet #{n} that was never sent; {summary}"
            ));
        };
        if !same_packet(&r.data, sent, i == 0) {
            cb.fail(&format!(
                "customer packet #{n} changed on its way to the agent; {summary}"
            ));
        }
    }
    if at_agent.len() < 50 {
        cb.fail(&format!(
            "only {} customer packets reached the agent in ~3 s bridged; {summary}",
            at_agent.len()
        ));
    }

    // The refusals are counted on both legs and in the data plane's counters.
    let on_legs: Vec<u64> = ["customer", "agent"]
        .iter()
        .map(|p| src_mismatch(&done["media"][p]["drops"]))
        .collect();
    if on_legs.contains(&0) {
        cb.fail(&format!(
            "drops.src_mismatch on the legs (customer, agent) = {on_legs:?}: the sprayer's \
             packets to the legs' ports were not counted; {done:#}"
        ));
    }
    let total: u64 = on_legs.iter().sum();
    if let Err(stats) = cb.poll_until(
        "/v1/dataplane/stats",
        "the refused packets counted",
        |v| dataplane_src_mismatch(v) >= total,
        STATS_DEADLINE,
    ) {
        cb.fail(&format!(
            "GET /v1/dataplane/stats counts fewer src_mismatch drops than the call's legs \
             ({total}): {stats:#}"
        ));
    }
}

#[test]
fn a_nat_leg_learns_its_nat_address_within_the_window() {
    let socks = PortBlock::reserve(4);
    // The SDP says 127.0.0.1 (SIPp's address); the customer's media really comes from the
    // NAT's public side, 127.0.0.2.
    let natted = std::net::SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), socks.port(0));
    let mut cust_rtp = RtpPeer::bind(natted);
    let mut agent_rtp = RtpPeer::bind(socks.addr(2));
    let mut t = TwoPartyCall::builder("rtp_bleed_nat")
        .media_toml("nat_window_ms = 5000")
        .customer(
            Scenario::AnswerExternalMedia,
            SippOptions {
                rtp_port: Some(socks.port(0)),
                ..SippOptions::default()
            },
        )
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
    let id = done["id"].as_str().expect("the record's id").to_owned();
    let cb = &mut t.cb;
    // (The customer leg's counters also count the announcement packets sent to the SDP
    // address before the NAT's was learned.)
    let done = settled(cb, &id, &[("agent", &agent_rtp)]);
    cust_rtp.stop();
    agent_rtp.stop();
    let at_customer = cust_rtp.received();
    let at_agent = agent_rtp.received();
    let agent_sent = agent_rtp.sent();
    let summary = format!(
        "the customer's NAT socket got {} packets, the agent's {}; agent sent {}; counters {}",
        at_customer.len(),
        at_agent.len(),
        agent_sent.len(),
        record::media_summary(&done)
    );
    eprintln!("{summary}");
    let ssrc = |d: &[u8]| RtpHeader::parse(d).map(|h| h.ssrc);
    let announcement = at_customer
        .iter()
        .take_while(|r| ssrc(&r.data) != Some(AGENT_SSRC))
        .count();
    let from_agent = at_customer
        .iter()
        .filter(|r| ssrc(&r.data) == Some(AGENT_SSRC))
        .count();
    if announcement < 25 || from_agent * 10 < agent_sent.len() * 9 {
        cb.fail(&format!(
            "the NAT address was not learned in time: {announcement} announcement packets and \
             {from_agent} agent packets reached it; {summary}"
        ));
    }
    if at_agent.len() < 50
        || at_agent
            .iter()
            .any(|r| ssrc(&r.data) != Some(CUSTOMER_SSRC))
    {
        cb.fail(&format!(
            "the agent did not hear (only) the customer; {summary}"
        ));
    }
    // The packet on probation was refused and counted.
    if src_mismatch(&done["media"]["customer"]["drops"]) == 0 {
        cb.fail(&format!(
            "no refused packet counted on the customer leg (probation): {done:#}"
        ));
    }
}
