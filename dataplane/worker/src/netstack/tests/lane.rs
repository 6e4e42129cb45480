//! The fast lane ([`Netstack::lane_frame`]) turns a received frame into exactly the frame
//! the full path ([`Netstack::encap_from`]) writes for the relayed datagram, checksums
//! included, and declines what it must.

use super::*;
use dp_api::{Codec, Command, Latch, LegId, LegSpec, SrcMismatch};
use relay::{Relay, RelayConfig};

/// Where the UDP header starts in a frame.
const L4: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
const AGENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
const AGENT_MAC: Address = Address([0x02, 0xcb, 0, 0, 0, 3]);

fn spec(port: u16, remote: SocketAddrV4) -> LegSpec {
    LegSpec {
        id: LegId::new(port, 1),
        remote: Some(remote.into()),
        latch: Latch::Off,
        src_mismatch: SrcMismatch::Drop,
        codec: Codec::Pcmu,
        media_timeout: None,
    }
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut v = vec![0x80, 0];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&(160 * u32::from(seq)).to_be_bytes());
    v.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    v.extend((0..160).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seq as u8)));
    v
}

/// A relay with the customer (the peer, port 20000) bridged to the agent (20002), both
/// latched by a first packet on the full path.
fn bridged(now: Instant) -> Relay {
    let mut r = Relay::new(RelayConfig::new(20000..=20003, 64));
    let customer = SocketAddrV4::new(PEER_IP, 40000);
    let agent = SocketAddrV4::new(AGENT_IP, 50000);
    r.handle_command(now, Command::AddLeg(spec(20000, customer)));
    r.handle_command(now, Command::AddLeg(spec(20002, agent)));
    r.handle_command(
        now,
        Command::Bridge {
            a: LegId::new(20000, 1),
            b: LegId::new(20002, 1),
        },
    );
    r.handle_packet_at(now, customer.into(), 0, 20000, &mut rtp(0));
    r.handle_packet_at(now, agent.into(), 0, 20002, &mut rtp(0));
    r
}

fn stack_and_relay() -> (Netstack, Instant, Relay) {
    let (mut s, now) = stack();
    teach(&mut s, now, AGENT_IP, AGENT_MAC);
    teach(&mut s, now, PEER_IP, PEER_MAC);
    let r = bridged(now);
    (s, now, r)
}

/// What the full path sends for `payload` relayed to the agent.
fn expected(s: &mut Netstack, now: Instant, payload: &[u8], tx: TxOffload) -> Vec<u8> {
    let mut f = vec![0u8; HEADROOM + payload.len()];
    f[HEADROOM..].copy_from_slice(payload);
    let agent = SocketAddrV4::new(AGENT_IP, 50000);
    let e = s.encap_from(now, 0, agent, 20002, &mut f, tx, None);
    assert_eq!(e, Encap::Ready { len: f.len() });
    f
}

/// The lane for `frame` without any offload.
fn plain(s: &mut Netstack, now: Instant, frame: &mut [u8], relay: &mut Relay) -> LaneFrame {
    s.lane_frame(
        now,
        frame,
        RxOffload::default(),
        TxOffload::default(),
        &mut relay.lane(now),
    )
}

#[test]
fn the_lane_writes_the_frame_the_full_path_writes() {
    let offloads = [
        (false, TxOffload::default()),
        (
            true,
            TxOffload {
                ipv4_checksum: true,
                udp_checksum: true,
            },
        ),
        (
            false,
            TxOffload {
                ipv4_checksum: true,
                udp_checksum: false,
            },
        ),
    ];
    for (rx_good, tx) in offloads {
        let (mut s, now, mut relay) = stack_and_relay();
        let rx = RxOffload {
            udp_checksum_good: rx_good,
            ipv4_checksum_good: rx_good,
            tail_sum_unused: false,
        };
        for seq in 1..40 {
            let payload = rtp(seq);
            let want = expected(&mut s, now, &payload, tx);
            let mut frame = udp_frame(40000, 20000, &payload);
            // Ethernet padding on some frames: not part of what is sent.
            if seq % 3 == 0 {
                frame.extend_from_slice(&[0xee; 6]);
            }
            let got = s.lane_frame(now, &mut frame, rx, tx, &mut relay.lane(now));
            assert_eq!(got, LaneFrame::Ready { len: want.len() }, "seq {seq}");
            assert_eq!(&frame[..want.len()], &want[..], "seq {seq}, {tx:?}");
        }
        let leg = relay.leg_stats(LegId::new(20002, 1)).unwrap();
        // 39 through the lane, after the latching packet on the full path.
        assert_eq!(leg.tx_packets, 40);
    }
}

#[test]
fn a_datagram_without_checksum_leaves_without_one() {
    let (mut s, now, mut relay) = stack_and_relay();
    let payload = rtp(1);
    let mut want = expected(&mut s, now, &payload, TxOffload::default());
    want[L4 + 6..L4 + 8].copy_from_slice(&[0, 0]);
    let mut frame = udp_frame(40000, 20000, &payload);
    frame[L4 + 6..L4 + 8].copy_from_slice(&[0, 0]);
    let got = plain(&mut s, now, &mut frame, &mut relay);
    assert_eq!(got, LaneFrame::Ready { len: want.len() });
    assert_eq!(&frame[..want.len()], &want[..]);
}

#[test]
fn the_lane_declines_without_counting() {
    let (mut s, now, mut relay) = stack_and_relay();
    let before = (s.stats(), relay.stats());
    let mut cases = Vec::new();
    // A corrupt payload (bad UDP checksum), an unknown port, a stranger, RTCP.
    let mut bad = udp_frame(40000, 20000, &rtp(1));
    *bad.last_mut().unwrap() ^= 0x40;
    cases.push(bad);
    cases.push(udp_frame(40000, 20010, &rtp(2)));
    cases.push(udp_frame(40002, 20000, &rtp(3)));
    cases.push(udp_frame(40001, 20001, &[0x80, 201, 0, 1, 0, 0, 0, 1]));
    for mut f in cases {
        let copy = f.clone();
        let got = plain(&mut s, now, &mut f, &mut relay);
        assert_eq!(got, LaneFrame::Declined);
        assert_eq!(f, copy, "a declined frame is left as it came");
    }
    assert_eq!((s.stats(), relay.stats()), before);
}

#[test]
fn an_unresolved_next_hop_is_relayed_but_not_sent() {
    let (mut s, now) = stack();
    teach(&mut s, now, PEER_IP, PEER_MAC);
    let mut relay = bridged(now);
    let mut f = udp_frame(40000, 20000, &rtp(1));
    let got = plain(&mut s, now, &mut f, &mut relay);
    assert_eq!(got, LaneFrame::Unsent { need_arp: true });
    assert_eq!(s.stats().arp_pending, 1);
    // The who-has for the agent is queued, as the full path would queue it.
    let mut buf = [0u8; 64];
    assert!(s.poll_arp_request(now, &mut buf).is_some());
}
