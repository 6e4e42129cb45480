//! A PCMU leg bridged to a PCMA leg on the real socket backend (UDP on 127.0.0.1): audio
//! converted with the G.711 tables, telephone-event renumbered, comfort noise dropped.

use dp_api::PayloadTypes;
use relay::g711;

use super::*;

fn packet(pt: u8, seq: u16, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut r = RtpRepr::simple(pt, seq, u32::from(seq) * 160, 0x5eed, payload);
    r.marker = marker;
    let mut v = vec![0; r.buffer_len()];
    r.emit(&mut v);
    v
}

#[test]
fn socket_io_converts_between_a_pcmu_leg_and_a_pcma_leg() {
    // Below the ephemeral range and away from the other loopback tests' blocks.
    let base = 16000 + (std::process::id() % 500) as u16 * 40;
    let cfg = DataplaneConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), base..=base + 39);
    let (dp, handle) = Dataplane::start(cfg).unwrap();
    let (cust_rtp, _cust_rtcp) = phone();
    let (agent_rtp, _agent_rtcp) = phone();
    let a = handle.plan.allocate().unwrap();
    let b = handle.plan.allocate_on(0).unwrap();
    let relay_addr = |port: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);

    // What the control plane sends once the SDP agreement of each leg is known.
    let mut sa = spec(a, Some(cust_rtp.local_addr().unwrap()));
    sa.codec = Codec::Pcmu;
    let mut sb = spec(b, Some(agent_rtp.local_addr().unwrap()));
    sb.codec = Codec::Pcma;
    for c in [
        Command::AddLeg(sa),
        Command::AddLeg(sb),
        Command::SetPayloadTypes {
            leg: a,
            types: PayloadTypes {
                codec: Codec::Pcmu,
                audio: 0,
                telephone_event: Some(101),
            },
        },
        Command::SetPayloadTypes {
            leg: b,
            types: PayloadTypes {
                codec: Codec::Pcma,
                audio: 8,
                telephone_event: Some(96),
            },
        },
        Command::Bridge { a, b },
    ] {
        handle.send(c).unwrap();
    }
    // Commands are handled in order: once this is answered, the bridge is up.
    let stats = |leg| {
        handle.send(Command::QueryStats { leg }).unwrap();
        match wait_event(
            &handle,
            |e| matches!(e, Event::Stats { leg: l, .. } if *l == leg),
        ) {
            Event::Stats { stats, .. } => stats,
            _ => unreachable!(),
        }
    };
    stats(b);

    let codes: Vec<u8> = (0..=255).collect();
    let mut alaw = codes.clone();
    g711::ulaw_to_alaw_in_place(&mut alaw);
    let mut ulaw = codes.clone();
    g711::alaw_to_ulaw_in_place(&mut ulaw);

    // Customer (µ-law) → agent (A-law), the marker kept.
    cust_rtp
        .send_to(&packet(0, 1, true, &codes), relay_addr(a.port()))
        .unwrap();
    let (d, from) = recv(&agent_rtp, DEADLINE).expect("customer → agent");
    assert_eq!((d, from), (packet(8, 1, true, &alaw), relay_addr(b.port())));
    // Agent (A-law) → customer (µ-law).
    agent_rtp
        .send_to(&packet(8, 2, false, &codes), relay_addr(b.port()))
        .unwrap();
    let (d, from) = recv(&cust_rtp, DEADLINE).expect("agent → customer");
    assert_eq!(
        (d, from),
        (packet(0, 2, false, &ulaw), relay_addr(a.port()))
    );

    // Comfort noise cannot be converted; the DTMF event after it arrives renumbered.
    cust_rtp
        .send_to(&packet(13, 3, false, &[0x40]), relay_addr(a.port()))
        .unwrap();
    let event = [1, 0x8a, 0x00, 0xa0];
    cust_rtp
        .send_to(&packet(101, 4, true, &event), relay_addr(a.port()))
        .unwrap();
    let (d, _) = recv(&agent_rtp, DEADLINE).expect("DTMF customer → agent");
    assert_eq!(d, packet(96, 4, true, &event));

    let s = stats(a);
    assert_eq!(s.drops.get(DropReason::UnmappedPayloadType), 1, "{s:?}");
    assert_eq!((s.rx_packets, s.tx_packets), (3, 1));
    assert_eq!(stats(b).tx_packets, 2);
    dp.shutdown();
}
