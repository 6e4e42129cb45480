//! Byte-vector tests of the L2/L3 layer on fake time.

use super::*;
use crate::neighbour::NeighbourAddr;
use wire::icmpv4::Icmpv4Repr;
use wire::ipv4::Ipv4Repr;
use wire::udp::UdpRepr;

const OUR_MAC: Address = Address([0x02, 0xcb, 0, 0, 0, 1]);
const PEER_MAC: Address = Address([0x02, 0xcb, 0, 0, 0, 2]);
const GW_MAC: Address = Address([0x02, 0xcb, 0, 0, 0, 0xfe]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const GW_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
const FAR_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

fn cfg() -> NetConfig {
    NetConfig {
        mac: OUR_MAC,
        ip: OUR_IP,
        prefix_len: 24,
        gateway: Some(GW_IP),
    }
}

pub(super) fn stack() -> (Netstack, Instant) {
    (Netstack::new(cfg()), Instant::now())
}

/// who-has 198.18.0.1 tell 198.18.0.2, broadcast, padded to 60 bytes as on the wire.
fn who_has_us() -> Vec<u8> {
    let mut f = vec![
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0xcb, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0xcb, 0x00, 0x00, 0x00, 0x02, 198, 18, 0, 2, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 198, 18, 0, 1,
    ];
    f.resize(60, 0);
    f
}

const ARP_REPLY_TO_PEER: [u8; 42] = [
    0x02, 0xcb, 0x00, 0x00, 0x00, 0x02, 0x02, 0xcb, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, //
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, //
    0x02, 0xcb, 0x00, 0x00, 0x00, 0x01, 198, 18, 0, 1, //
    0x02, 0xcb, 0x00, 0x00, 0x00, 0x02, 198, 18, 0, 2,
];

fn arp_frame(op: Operation, sha: Address, spa: Ipv4Addr, tha: Address, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0u8; ARP_FRAME_LEN];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst_addr(if op == Operation::Request {
        Address::BROADCAST
    } else {
        tha
    });
    eth.set_src_addr(sha);
    eth.set_ethertype(ethertype::ARP);
    ArpRepr {
        operation: op,
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: tha,
        target_protocol_addr: tpa,
    }
    .emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    f
}

/// An Ethernet/IPv4 frame from the peer to us carrying `l4` as protocol `proto`.
fn ip_frame(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + l4.len()];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst_addr(OUR_MAC);
    eth.set_src_addr(PEER_MAC);
    eth.set_ethertype(ethertype::IPV4);
    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    Ipv4Repr {
        src_addr: PEER_IP,
        dst_addr: OUR_IP,
        next_header: proto,
        payload_len: l4.len(),
        hop_limit: 64,
    }
    .emit(&mut ip);
    ip.payload_mut().copy_from_slice(l4);
    f
}

pub(super) fn udp_frame(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; udp::HEADER_LEN + payload.len()];
    UdpRepr {
        src_port,
        dst_port,
        payload_len: payload.len(),
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut l4[..]),
        PEER_IP,
        OUR_IP,
        payload,
    );
    ip_frame(protocol::UDP, &l4)
}

fn echo_request(data: &[u8]) -> Vec<u8> {
    let repr = Icmpv4Repr::EchoRequest {
        ident: 0x4242,
        seq_no: 7,
        data_len: data.len(),
    };
    let mut l4 = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut l4[..]), data);
    ip_frame(protocol::ICMP, &l4)
}

/// Teaches the stack `ip` is at `mac` (an ARP reply to us).
fn teach(s: &mut Netstack, now: Instant, ip: Ipv4Addr, mac: Address) {
    let mut f = arp_frame(Operation::Reply, mac, ip, OUR_MAC, OUR_IP);
    assert_eq!(s.handle_frame(now, &mut f), Ingress::Consumed);
}

#[test]
fn who_has_us_gets_the_exact_reply_and_teaches_the_cache() {
    let (mut s, now) = stack();
    let mut f = who_has_us();
    assert_eq!(s.handle_frame(now, &mut f), Ingress::Reply { len: 42 });
    assert_eq!(f[..42], ARP_REPLY_TO_PEER);
    assert_eq!(s.neighbour(now, PEER_IP), Some(PEER_MAC));
    assert_eq!(s.stats().arp_replies, 1);
    assert_eq!(s.stats().arp_learned, 1);
}

#[test]
fn ping_gets_an_echo_reply_with_the_right_checksum() {
    let (mut s, now) = stack();
    let data: Vec<u8> = (0u8..56).collect();
    let mut f = echo_request(&data);
    let len = f.len();
    assert_eq!(s.handle_frame(now, &mut f), Ingress::Reply { len });

    let eth = EthernetFrame::new_checked(&f[..len]).unwrap();
    assert_eq!(eth.dst_addr(), PEER_MAC);
    assert_eq!(eth.src_addr(), OUR_MAC);
    assert_eq!(eth.ethertype(), ethertype::IPV4);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let ip_repr = Ipv4Repr::parse(&ip).unwrap();
    assert_eq!((ip_repr.src_addr, ip_repr.dst_addr), (OUR_IP, PEER_IP));
    assert_eq!(ip_repr.next_header, protocol::ICMP);
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    assert_eq!(
        Icmpv4Repr::parse(&icmp).unwrap(),
        Icmpv4Repr::EchoReply {
            ident: 0x4242,
            seq_no: 7,
            data_len: 56
        }
    );
    assert_eq!(icmp.data(), &data[..]);
    // The incremental update equals a full recomputation.
    let mut copy = ip.payload().to_vec();
    let mut p = Icmpv4Packet::new_unchecked(&mut copy[..]);
    p.fill_checksum();
    assert_eq!(p.checksum(), icmp.checksum());
    assert_eq!(s.stats().echo_replies, 1);
}

#[test]
fn udp_to_us_yields_payload_range_and_source() {
    let (mut s, now) = stack();
    let payload = [0x80u8, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
    let mut f = udp_frame(40000, 30000, &payload);
    f.resize(f.len().max(60), 0); // Ethernet padding must not leak into the payload
    match s.handle_frame(now, &mut f) {
        Ingress::Udp {
            src,
            dst_port,
            dst_addr,
            payload: r,
            tail_sum,
        } => {
            assert_eq!(dst_addr, 0);
            assert!(tail_sum.is_some(), "checksum verified in software");
            assert_eq!(src, SocketAddrV4::new(PEER_IP, 40000));
            assert_eq!(dst_port, 30000);
            assert_eq!(r, 42..50);
            assert_eq!(&f[r], &payload);
        }
        other => panic!("unexpected {other:?}"),
    }
    // A zero checksum means "none" (RFC 768).
    let mut f = udp_frame(40000, 30000, &payload);
    f[40] = 0;
    f[41] = 0;
    assert!(matches!(s.handle_frame(now, &mut f), Ingress::Udp { .. }));
    assert_eq!(s.stats().rx_udp, 2);
}

#[test]
fn udp_with_ip_options_is_delivered() {
    let (mut s, now) = stack();
    let mut f = udp_frame(1, 2, b"hello");
    // Insert a 4-byte option (NOP×3 + EOL) after the IPv4 header.
    f.splice(34..34, [1u8, 1, 1, 0]);
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.set_header_len(24);
    let tl = ip.total_len();
    ip.set_total_len(tl + 4);
    ip.fill_checksum();
    match s.handle_frame(now, &mut f) {
        Ingress::Udp { payload, .. } => assert_eq!(&f[payload], b"hello"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn offloaded_good_checksum_is_trusted() {
    let (mut s, now) = stack();
    let mut f = udp_frame(1, 2, b"x");
    f[41] ^= 0x55;
    assert_eq!(
        s.handle_frame(now, &mut f.clone()),
        Ingress::Drop(L2Drop::BadUdpChecksum)
    );
    let good = RxOffload {
        udp_checksum_good: true,
        ..RxOffload::default()
    };
    assert!(matches!(
        s.handle_frame_with(now, &mut f, good),
        Ingress::Udp { .. }
    ));
}

#[test]
fn drop_reasons_are_classified_and_counted() {
    let (mut s, now) = stack();
    let base = udp_frame(1, 2, b"payload");
    let mut cases: Vec<(Vec<u8>, L2Drop)> = Vec::new();

    let mut f = base.clone();
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 9]); // another MAC
    cases.push((f, L2Drop::NotForUs));
    let mut f = base.clone();
    f[0..6].copy_from_slice(&Address::BROADCAST.0); // IPv4 to broadcast MAC
    cases.push((f, L2Drop::NotForUs));
    let mut f = base.clone();
    f[33] = 9; // dst 198.18.0.9, checksum fixed
    Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    cases.push((f, L2Drop::NotForUs));
    let mut f = base.clone();
    f[24] ^= 1; // IP checksum
    cases.push((f, L2Drop::BadIpChecksum));
    let mut f = base.clone();
    f[48] ^= 1; // payload byte: UDP checksum
    cases.push((f, L2Drop::BadUdpChecksum));
    let mut f = base.clone();
    Ipv4Packet::new_unchecked(&mut f[14..]).set_flags_frag(false, true, 0);
    Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    cases.push((f, L2Drop::Fragment));
    let mut f = base.clone();
    Ipv4Packet::new_unchecked(&mut f[14..]).set_flags_frag(false, false, 64);
    Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    cases.push((f, L2Drop::Fragment));
    cases.push((base[..13].to_vec(), L2Drop::Truncated));
    cases.push((base[..30].to_vec(), L2Drop::Truncated));
    let mut f = base.clone();
    f[38..40].copy_from_slice(&100u16.to_be_bytes()); // UDP length beyond the datagram
    cases.push((f, L2Drop::Truncated));
    let mut f = base.clone();
    f[12..14].copy_from_slice(&ethertype::IPV6.to_be_bytes());
    cases.push((f, L2Drop::NotIpv4OrArp));
    let mut f = base.clone();
    f[14] = 0x65; // version 6, IHL 5
    cases.push((f, L2Drop::NotIpv4OrArp));
    let mut f = ip_frame(protocol::TCP, &[0u8; 20]);
    f.truncate(54);
    cases.push((f, L2Drop::OtherProtocol));
    cases.push((
        arp_frame(
            Operation::Request,
            PEER_MAC,
            PEER_IP,
            Address([0; 6]),
            Ipv4Addr::new(198, 18, 0, 3),
        ),
        L2Drop::ArpOther,
    ));
    let mut f = echo_request(b"abcd");
    f[34] = message::TIME_EXCEEDED;
    Icmpv4Packet::new_unchecked(&mut f[34..]).fill_checksum();
    cases.push((f, L2Drop::IcmpOther));
    let mut f = echo_request(b"abcd");
    f[43] ^= 1;
    cases.push((f, L2Drop::BadIcmpChecksum));
    let mut f = echo_request(b"abcd");
    f.splice(34..34, [1u8, 1, 1, 0]);
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.set_header_len(24);
    ip.set_total_len(ip.total_len() + 4);
    ip.fill_checksum();
    cases.push((f, L2Drop::IpOptionsUnsupported));

    let mut expect = [0u64; L2Drop::COUNT];
    for (i, (mut f, reason)) in cases.into_iter().enumerate() {
        assert_eq!(
            s.handle_frame(now, &mut f),
            Ingress::Drop(reason),
            "case {i}"
        );
        expect[reason.index()] += 1;
    }
    assert_eq!(s.stats().drops, expect);
    assert_eq!(s.stats().rx_udp, 0);
}

fn parse_back(f: &[u8], dst: SocketAddrV4, src_port: u16, payload: &[u8], mac: Address) {
    let eth = EthernetFrame::new_checked(f).unwrap();
    assert_eq!(eth.dst_addr(), mac);
    assert_eq!(eth.src_addr(), OUR_MAC);
    assert_eq!(eth.ethertype(), ethertype::IPV4);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let ip_repr = Ipv4Repr::parse(&ip).unwrap(); // verifies the header checksum
    assert_eq!(ip_repr.src_addr, OUR_IP);
    assert_eq!(ip_repr.dst_addr, *dst.ip());
    assert_eq!(ip_repr.hop_limit, DEFAULT_TTL);
    let u = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_ne!(u.checksum(), 0);
    let repr = UdpRepr::parse(&u, OUR_IP, *dst.ip()).unwrap(); // verifies the checksum
    assert_eq!(repr.src_port, src_port);
    assert_eq!(repr.dst_port, dst.port());
    assert_eq!(u.payload(), payload);
}

#[test]
fn encap_writes_headers_that_parse_back() {
    let (mut s, now) = stack();
    teach(&mut s, now, PEER_IP, PEER_MAC);
    teach(&mut s, now, GW_IP, GW_MAC);
    let payload: Vec<u8> = (0..160u32).map(|i| i as u8).collect();
    for (dst, mac) in [
        (SocketAddrV4::new(PEER_IP, 5004), PEER_MAC),
        (SocketAddrV4::new(FAR_IP, 7078), GW_MAC),
    ] {
        let mut buf = vec![0xeeu8; HEADROOM];
        buf.extend_from_slice(&payload);
        let len = buf.len();
        assert_eq!(
            s.encap(now, dst, 30000, &mut buf, TxOffload::default()),
            Encap::Ready { len }
        );
        parse_back(&buf, dst, 30000, &payload, mac);
    }
    assert_eq!(s.stats().tx_udp, 2);
}

#[test]
fn encap_with_offload_leaves_the_checksums_to_the_device() {
    let (mut s, now) = stack();
    teach(&mut s, now, PEER_IP, PEER_MAC);
    let dst = SocketAddrV4::new(PEER_IP, 5004);
    let mut buf = vec![0u8; HEADROOM + 12];
    let off = TxOffload {
        ipv4_checksum: true,
        udp_checksum: true,
    };
    assert!(matches!(
        s.encap(now, dst, 30000, &mut buf, off),
        Encap::Ready { .. }
    ));
    let ip = Ipv4Packet::new_unchecked(&buf[14..]);
    assert_eq!(ip.checksum(), 0);
    let ph = checksum::pseudo_header_v4(OUR_IP.octets(), PEER_IP.octets(), protocol::UDP, 20);
    let u = UdpPacket::new_unchecked(&buf[34..]);
    assert_eq!(u.checksum(), checksum::fold(ph));
    // What the device does: the full sum with the pseudo-header seed → a valid datagram.
    let mut copy = buf.clone();
    Ipv4Packet::new_unchecked(&mut copy[14..]).fill_checksum();
    UdpPacket::new_unchecked(&mut copy[34..]).fill_checksum(OUR_IP, PEER_IP);
    parse_back(&copy, dst, 30000, &[0; 12], PEER_MAC);
}

#[test]
fn encap_refuses_bad_buffers_and_unroutable_destinations() {
    let mut s = Netstack::new(NetConfig {
        gateway: None,
        ..cfg()
    });
    let now = Instant::now();
    let mut short = [0u8; HEADROOM - 1];
    let dst = SocketAddrV4::new(PEER_IP, 1);
    assert_eq!(
        s.encap(now, dst, 2, &mut short, TxOffload::default()),
        Encap::BadBuffer
    );
    let mut buf = [0u8; HEADROOM + 4];
    let far = SocketAddrV4::new(FAR_IP, 1);
    assert_eq!(
        s.encap(now, far, 2, &mut buf, TxOffload::default()),
        Encap::NoRoute
    );
    assert_eq!((s.stats().too_big, s.stats().no_route), (1, 1));
}

fn expect_who_has(f: &[u8], target: Ipv4Addr) {
    let eth = EthernetFrame::new_checked(f).unwrap();
    assert_eq!(eth.dst_addr(), Address::BROADCAST);
    assert_eq!(eth.src_addr(), OUR_MAC);
    assert_eq!(eth.ethertype(), ethertype::ARP);
    let repr = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
    assert_eq!(
        repr,
        ArpRepr {
            operation: Operation::Request,
            source_hardware_addr: OUR_MAC,
            source_protocol_addr: OUR_IP,
            target_hardware_addr: Address([0; 6]),
            target_protocol_addr: target,
        }
    );
}

#[test]
fn miss_asks_once_per_second_and_the_reply_resolves() {
    let (mut s, t0) = stack();
    let dst = SocketAddrV4::new(FAR_IP, 9000);
    let mut buf = [0u8; HEADROOM + 20];
    let mut req = [0u8; 64];
    let off = TxOffload::default();
    assert_eq!(
        s.encap(t0, dst, 1, &mut buf, off),
        Encap::NeedArp { next_hop: GW_IP }
    );
    assert_eq!(s.poll_arp_request(t0, &mut req), Some(ARP_FRAME_LEN));
    expect_who_has(&req[..ARP_FRAME_LEN], GW_IP);
    assert_eq!(s.poll_arp_request(t0, &mut req), None);

    // More misses within the second: still NeedArp, no new request.
    for ms in [1, 500, 999] {
        let t = t0 + Duration::from_millis(ms);
        assert!(matches!(
            s.encap(t, dst, 1, &mut buf, off),
            Encap::NeedArp { .. }
        ));
        assert_eq!(s.poll_arp_request(t, &mut req), None, "at {ms} ms");
    }
    // After a second the next miss asks again.
    let t1 = t0 + ARP_RETRY;
    assert!(matches!(
        s.encap(t1, dst, 1, &mut buf, off),
        Encap::NeedArp { .. }
    ));
    assert_eq!(s.poll_arp_request(t1, &mut req), Some(ARP_FRAME_LEN));
    expect_who_has(&req[..ARP_FRAME_LEN], GW_IP);
    assert_eq!(s.stats().arp_requests, 2);
    assert_eq!(s.stats().arp_pending, 5);

    // The gateway answers: the next packet goes out.
    teach(&mut s, t1, GW_IP, GW_MAC);
    assert!(matches!(
        s.encap(t1, dst, 1, &mut buf, off),
        Encap::Ready { .. }
    ));
    parse_back(&buf, dst, 1, &[0; 20], GW_MAC);
    assert_eq!(s.poll_arp_request(t1 + ARP_RETRY, &mut req), None);
}

#[test]
fn housekeeping_re_asks_pending_targets_then_forgets_them() {
    let (mut s, t0) = stack();
    let mut buf = [0u8; HEADROOM];
    let mut req = [0u8; 64];
    let dst = SocketAddrV4::new(PEER_IP, 9);
    let _ = s.encap(t0, dst, 1, &mut buf, TxOffload::default());
    assert!(s.poll_arp_request(t0, &mut req).is_some());
    s.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(
        s.poll_arp_request(t0 + Duration::from_millis(500), &mut req),
        None
    );
    let t1 = t0 + ARP_RETRY;
    s.handle_timeout(t1);
    assert!(s.poll_arp_request(t1, &mut req).is_some());
    // Nobody wants it any more: after PENDING_IDLE it is forgotten, no more requests.
    let t2 = t0 + PENDING_IDLE;
    s.handle_timeout(t2);
    assert_eq!(s.poll_arp_request(t2, &mut req), None);
    assert_eq!(s.stats().arp_requests, 2);
}

#[test]
fn entries_refresh_before_expiry_and_expire_after_ttl() {
    let (mut s, t0) = stack();
    teach(&mut s, t0, PEER_IP, PEER_MAC);
    let dst = SocketAddrV4::new(PEER_IP, 9);
    let mut buf = [0u8; HEADROOM];
    let mut req = [0u8; 64];
    let off = TxOffload::default();
    // Early in its life: used, nothing asked.
    let t = t0 + Duration::from_secs(100);
    assert!(matches!(
        s.encap(t, dst, 1, &mut buf, off),
        Encap::Ready { .. }
    ));
    assert_eq!(s.poll_arp_request(t, &mut req), None);
    // Within REFRESH_BEFORE of expiry: still used, and asked again.
    let t = t0 + NEIGHBOUR_TTL - REFRESH_BEFORE + Duration::from_secs(1);
    assert!(matches!(
        s.encap(t, dst, 1, &mut buf, off),
        Encap::Ready { .. }
    ));
    assert_eq!(s.poll_arp_request(t, &mut req), Some(ARP_FRAME_LEN));
    expect_who_has(&req[..ARP_FRAME_LEN], PEER_IP);
    // No answer: at the TTL the entry is gone.
    let t = t0 + NEIGHBOUR_TTL;
    assert_eq!(s.neighbour(t, PEER_IP), None);
    assert_eq!(
        s.encap(t, dst, 1, &mut buf, off),
        Encap::NeedArp { next_hop: PEER_IP }
    );
    // An answer renews it for another TTL.
    teach(&mut s, t, PEER_IP, PEER_MAC);
    assert_eq!(
        s.neighbour(t + NEIGHBOUR_TTL - Duration::from_secs(1), PEER_IP),
        Some(PEER_MAC)
    );
}

#[test]
fn unsolicited_arp_only_updates_known_entries() {
    let (mut s, now) = stack();
    // A gratuitous ARP from an unknown host is not learned …
    let mut f = arp_frame(
        Operation::Request,
        PEER_MAC,
        PEER_IP,
        Address([0; 6]),
        PEER_IP,
    );
    assert_eq!(s.handle_frame(now, &mut f), Ingress::Drop(L2Drop::ArpOther));
    assert_eq!(s.neighbour(now, PEER_IP), None);
    // … but updates a known one (RFC 826 merge).
    teach(&mut s, now, PEER_IP, PEER_MAC);
    let new_mac = Address([0x02, 0xcb, 0, 0, 0, 0x22]);
    let mut f = arp_frame(
        Operation::Request,
        new_mac,
        PEER_IP,
        Address([0; 6]),
        PEER_IP,
    );
    assert_eq!(s.handle_frame(now, &mut f), Ingress::Drop(L2Drop::ArpOther));
    assert_eq!(s.neighbour(now, PEER_IP), Some(new_mac));
}

#[test]
fn a_full_bucket_evicts_the_entry_expiring_first() {
    let (mut s, t0) = stack();
    // Find NEIGHBOUR_WAYS + 1 on-link addresses sharing a bucket.
    let b = PEER_IP.bucket();
    let same: Vec<Ipv4Addr> = (1..=u32::from(u16::MAX))
        .map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i))
        .filter(|ip| ip.bucket() == b && *ip != OUR_IP)
        .take(NEIGHBOUR_WAYS + 1)
        .collect();
    for (k, ip) in same.iter().enumerate() {
        teach(&mut s, t0 + Duration::from_secs(k as u64), *ip, PEER_MAC);
    }
    let t = t0 + Duration::from_secs(10);
    assert_eq!(s.neighbour(t, same[0]), None, "oldest evicted");
    for ip in &same[1..] {
        assert_eq!(s.neighbour(t, *ip), Some(PEER_MAC));
    }
}

#[test]
fn frames_to_our_own_address_hairpin_with_our_mac() {
    let (mut s, now) = stack();
    let dst = SocketAddrV4::new(OUR_IP, 30002);
    let mut buf = vec![0u8; HEADROOM + 8];
    assert!(matches!(
        s.encap(now, dst, 30000, &mut buf, TxOffload::default()),
        Encap::Ready { .. }
    ));
    // It comes back in as a UDP datagram from us to us.
    match s.handle_frame(now, &mut buf) {
        Ingress::Udp {
            src,
            dst_port,
            payload,
            ..
        } => {
            assert_eq!(src, SocketAddrV4::new(OUR_IP, 30000));
            assert_eq!(dst_port, 30002);
            assert_eq!(payload, HEADROOM..HEADROOM + 8);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(s.poll_arp_request(now, &mut [0u8; 64]), None);
}

#[test]
fn udp_dst_port_peeks_only_unfragmented_udp_to_us() {
    let f = udp_frame(40000, 30002, b"rtp");
    assert_eq!(udp_dst_port(&f, &[OUR_IP]), Some(30002));
    assert_eq!(udp_dst_port(&f, &[PEER_IP]), None, "not our address");
    assert_eq!(
        udp_dst_port(&f[..30], &[OUR_IP]),
        None,
        "truncated IPv4 header"
    );
    assert_eq!(
        udp_dst_port(&f[..36], &[OUR_IP]),
        None,
        "truncated UDP header"
    );
    assert_eq!(udp_dst_port(&echo_request(b"x"), &[OUR_IP]), None, "ICMP");
    assert_eq!(udp_dst_port(&who_has_us(), &[OUR_IP]), None, "ARP");
    // More fragments, then a non-zero offset.
    let mut frag = f.clone();
    frag[ethernet::HEADER_LEN + 6] = 0x20;
    assert_eq!(udp_dst_port(&frag, &[OUR_IP]), None);
    frag[ethernet::HEADER_LEN + 6] = 0x00;
    frag[ethernet::HEADER_LEN + 7] = 0x10;
    assert_eq!(udp_dst_port(&frag, &[OUR_IP]), None);
    // Don't-fragment is fine.
    let mut df = f.clone();
    df[ethernet::HEADER_LEN + 6] = 0x40;
    assert_eq!(udp_dst_port(&df, &[OUR_IP]), Some(30002));
    // IPv4 options move the UDP header.
    let mut opt = f[..ethernet::HEADER_LEN + ipv4::HEADER_LEN].to_vec();
    opt.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
    opt.extend_from_slice(&f[ethernet::HEADER_LEN + ipv4::HEADER_LEN..]);
    opt[ethernet::HEADER_LEN] = 0x46;
    assert_eq!(udp_dst_port(&opt, &[OUR_IP]), Some(30002));
}

#[test]
fn learned_neighbours_are_logged_for_other_workers_only_when_sharing() {
    let (mut s, now) = stack();
    teach(&mut s, now, PEER_IP, PEER_MAC);
    assert_eq!(s.take_learned(), None, "sharing is off by default");
    s.set_share_learned(true);
    teach(&mut s, now, PEER_IP, PEER_MAC);
    teach(&mut s, now, GW_IP, GW_MAC);
    // A who-has for us from the peer teaches (and logs) it too.
    let mut f = who_has_us();
    assert!(matches!(s.handle_frame(now, &mut f), Ingress::Reply { .. }));
    // Entries put in by hand (e.g. from another worker) are not logged: no ping-pong.
    s.insert_neighbour(now, FAR_IP, GW_MAC);
    assert_eq!(s.take_learned(), Some((PEER_IP, PEER_MAC)));
    assert_eq!(s.take_learned(), Some((GW_IP, GW_MAC)));
    assert_eq!(s.take_learned(), Some((PEER_IP, PEER_MAC)));
    assert_eq!(s.take_learned(), None);
    // The log is bounded; the overflow is not logged.
    for i in 0..LEARNED_LOG + 5 {
        teach(
            &mut s,
            now,
            Ipv4Addr::new(198, 18, 0, 10 + i as u8),
            PEER_MAC,
        );
    }
    let mut n = 0;
    while s.take_learned().is_some() {
        n += 1;
    }
    assert_eq!(n, LEARNED_LOG);
}

#[test]
fn extra_addresses_answer_arp_and_ping_take_udp_and_send_from_the_right_source() {
    const EXTRA: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
    let now = Instant::now();
    let mut s = Netstack::new(cfg()).with_extra_addresses(&[EXTRA]);
    assert_eq!(s.addresses(), &[OUR_IP, EXTRA]);
    // who-has 198.18.0.3: answered from 198.18.0.3 with our MAC.
    let mut f = arp_frame(
        Operation::Request,
        PEER_MAC,
        PEER_IP,
        Address([0; 6]),
        EXTRA,
    );
    let Ingress::Reply { len } = s.handle_frame(now, &mut f) else {
        panic!("no ARP reply for the extra address");
    };
    let reply =
        ArpRepr::parse(&ArpPacket::new_checked(&f[ethernet::HEADER_LEN..len]).unwrap()).unwrap();
    assert_eq!(reply.source_protocol_addr, EXTRA);
    assert_eq!(reply.source_hardware_addr, OUR_MAC);
    assert_eq!(s.neighbour(now, PEER_IP), Some(PEER_MAC), "asker learned");
    // Ping to the extra address: the reply comes from it.
    let mut f = echo_request(b"ping");
    f[ethernet::HEADER_LEN + 16..ethernet::HEADER_LEN + 20].copy_from_slice(&EXTRA.octets());
    let ip = &mut f[ethernet::HEADER_LEN..];
    Ipv4Packet::new_unchecked(&mut *ip).fill_checksum();
    assert!(matches!(s.handle_frame(now, &mut f), Ingress::Reply { .. }));
    let ip = Ipv4Packet::new_checked(&f[ethernet::HEADER_LEN..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (EXTRA, PEER_IP));
    assert!(ip.verify_checksum());
    // UDP to the extra address: delivered with its index (checksum over its pseudo-header).
    let mut l4 = vec![0u8; udp::HEADER_LEN + 4];
    UdpRepr {
        src_port: 40000,
        dst_port: 30002,
        payload_len: 4,
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut l4[..]),
        PEER_IP,
        EXTRA,
        b"rtp!",
    );
    let mut f = ip_frame(protocol::UDP, &l4);
    f[ethernet::HEADER_LEN + 16..ethernet::HEADER_LEN + 20].copy_from_slice(&EXTRA.octets());
    Ipv4Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]).fill_checksum();
    assert_eq!(udp_dst_port(&f, s.addresses()), Some(30002));
    assert_eq!(udp_dst_port(&f, &[OUR_IP]), None);
    match s.handle_frame(now, &mut f) {
        Ingress::Udp {
            dst_addr, dst_port, ..
        } => assert_eq!((dst_addr, dst_port), (1, 30002)),
        other => panic!("unexpected {other:?}"),
    }
    // Sent from address 1: source 198.18.0.3, checksums valid.
    let dst = SocketAddrV4::new(PEER_IP, 40000);
    let mut buf = vec![0u8; HEADROOM + 4];
    buf[HEADROOM..].copy_from_slice(b"back");
    let r = s.encap_from(now, 1, dst, 30002, &mut buf, TxOffload::default(), None);
    assert!(matches!(r, Encap::Ready { .. }), "{r:?}");
    let ip = Ipv4Packet::new_checked(&buf[ethernet::HEADER_LEN..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (EXTRA, PEER_IP));
    assert!(ip.verify_checksum());
    let u = UdpPacket::new_checked(ip.payload()).unwrap();
    assert!(u.verify_checksum(EXTRA, PEER_IP));
    assert_eq!(u.src_port(), 30002);
    // An address we do not have.
    assert!(matches!(
        s.encap_from(now, 2, dst, 30002, &mut buf, TxOffload::default(), None),
        Encap::BadBuffer
    ));
    // Datagrams to a third address are not for us.
    let mut f = udp_frame(40000, 30002, b"x");
    f[ethernet::HEADER_LEN + 16..ethernet::HEADER_LEN + 20]
        .copy_from_slice(&Ipv4Addr::new(198, 18, 0, 4).octets());
    Ipv4Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]).fill_checksum();
    assert_eq!(s.handle_frame(now, &mut f), Ingress::Drop(L2Drop::NotForUs));
    // Hairpin to our own extra address needs no ARP.
    let mut buf = vec![0u8; HEADROOM + 4];
    let r = s.encap_from(
        now,
        0,
        SocketAddrV4::new(EXTRA, 30000),
        30002,
        &mut buf,
        TxOffload::default(),
        None,
    );
    assert!(matches!(r, Encap::Ready { .. }), "{r:?}");
    assert_eq!(&buf[..6], &OUR_MAC.0);
}

mod tail_sum;

mod lane;
