//! Byte-level tests of the IPv6 layer: frames built with `wire`'s views and emitters.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant};

use super::*;

const OUR_MAC: Address = Address([0x02, 0xcb, 0, 0, 0, 1]);
const PEER_MAC: Address = Address([0x02, 0xcb, 0, 0, 0, 2]);
const GW_MAC: Address = Address([0x02, 0xcb, 0, 0, 0, 0xfe]);
const US: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const US2: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 3);
const PEER: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
const GW: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xfe);
const FAR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);

fn stack() -> (Netstack6, Instant) {
    let mut s = Netstack6::new(NetConfig6 {
        mac: OUR_MAC,
        ip: US,
        prefix_len: 64,
        gateway: Some(GW),
    });
    s.add_addresses(&[US2]);
    (s, Instant::now())
}

/// An Ethernet/IPv6 frame carrying `l4` as `nh`.
fn frame(dst_mac: Address, src: Ipv6Addr, dst: Ipv6Addr, nh: u8, hops: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + ipv6::HEADER_LEN + l4.len()];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst_addr(dst_mac);
    eth.set_src_addr(PEER_MAC);
    eth.set_ethertype(ethertype::IPV6);
    let mut ip = Ipv6Packet::new_unchecked(eth.payload_mut());
    Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: nh,
        payload_len: l4.len(),
        hop_limit: hops,
    }
    .emit(&mut ip);
    ip.payload_mut().copy_from_slice(l4);
    f
}

fn ns_from_peer(target: Ipv6Addr, src: Ipv6Addr, hops: u8) -> Vec<u8> {
    let mut l4 = [0u8; NeighborSolicit::LEN];
    NeighborSolicit {
        target,
        source_lladdr: PEER_MAC,
    }
    .emit(&mut l4);
    let group = ipv6::solicited_node(target);
    Icmpv6Packet::new_unchecked(&mut l4[..]).fill_checksum(src, group);
    frame(
        ipv6::multicast_mac(group),
        src,
        group,
        next_header::ICMPV6,
        hops,
        &l4,
    )
}

fn udp_to(dst: Ipv6Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; udp::HEADER_LEN + payload.len()];
    let mut u = UdpPacket::new_unchecked(&mut l4[..]);
    u.set_src_port(40000);
    u.set_dst_port(dport);
    u.set_len((udp::HEADER_LEN + payload.len()) as u16);
    u.payload_mut().copy_from_slice(payload);
    u.fill_checksum_v6(PEER, dst);
    frame(OUR_MAC, PEER, dst, next_header::UDP, 64, &l4)
}

fn parse_ip(f: &[u8]) -> Ipv6Packet<&[u8]> {
    Ipv6Packet::new_checked(&f[ethernet::HEADER_LEN..]).unwrap()
}

#[test]
fn neighbour_solicitation_for_each_of_our_addresses_gets_an_advertisement() {
    let (mut s, now) = stack();
    for target in [US, US2] {
        let mut f = ns_from_peer(target, PEER, 255);
        assert_eq!(
            s.handle_frame_with(now, &mut f, RxOffload::default()),
            Ingress::Reply { len: NDP_FRAME_LEN }
        );
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr()), (PEER_MAC, OUR_MAC));
        let ip = parse_ip(&f);
        assert_eq!(
            (ip.src_addr(), ip.dst_addr(), ip.hop_limit()),
            (target, PEER, 255)
        );
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), message::NEIGHBOR_ADVERT);
        assert!(icmp.verify_checksum(target, PEER));
        assert_eq!(icmp.ndp_target(), target);
        assert_eq!(icmp.na_flags(), (false, true, true));
        assert_eq!(
            icmp.ndp_lladdr_option(ndp_option::TARGET_LLADDR),
            Some(OUR_MAC)
        );
    }
    // The asker was learned from its source link-layer address.
    assert_eq!(s.neighbour(now, PEER), Some(PEER_MAC));
    assert_eq!(s.stats().arp_replies, 2);
}

#[test]
fn dad_probe_is_defended_to_all_nodes_and_teaches_nothing() {
    let (mut s, now) = stack();
    let mut f = ns_from_peer(US, Ipv6Addr::UNSPECIFIED, 255);
    assert!(matches!(
        s.handle_frame_with(now, &mut f, RxOffload::default()),
        Ingress::Reply { .. }
    ));
    let ip = parse_ip(&f);
    assert_eq!(ip.dst_addr(), ALL_NODES);
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(icmp.na_flags(), (false, false, true));
    assert!(icmp.verify_checksum(US, ALL_NODES));
    assert_eq!(s.neighbour(now, Ipv6Addr::UNSPECIFIED), None);
}

#[test]
fn ndp_is_only_accepted_with_hop_limit_255_and_for_our_targets() {
    let (mut s, now) = stack();
    let mut f = ns_from_peer(US, PEER, 64);
    assert_eq!(
        s.handle_frame_with(now, &mut f, RxOffload::default()),
        Ingress::Drop(L2Drop::ArpOther)
    );
    let mut f = ns_from_peer(FAR, PEER, 255);
    // Another node's solicited-node group: not for us at all.
    assert_eq!(
        s.handle_frame_with(now, &mut f, RxOffload::default()),
        Ingress::Drop(L2Drop::NotForUs)
    );
    assert_eq!(s.neighbour(now, PEER), None);
}

#[test]
fn advertisements_teach_the_cache_and_resolve_waiting_next_hops() {
    let (mut s, now) = stack();
    let dst = SocketAddrV6::new(PEER, 40000, 0, 0);
    let mut buf = vec![0u8; HEADROOM6 + 20];
    assert_eq!(
        s.encap_from(now, 0, dst, 30000, &mut buf, None),
        Encap::NeedArp { next_hop: PEER }
    );
    // The solicitation goes to the peer's solicited-node group, from our first address.
    let mut ns = vec![0u8; NDP_FRAME_LEN];
    assert_eq!(s.poll_ns(now, &mut ns), Some(NDP_FRAME_LEN));
    let group = ipv6::solicited_node(PEER);
    let eth = EthernetFrame::new_checked(&ns[..]).unwrap();
    assert_eq!(eth.dst_addr(), ipv6::multicast_mac(group));
    let ip = parse_ip(&ns);
    assert_eq!(
        (ip.src_addr(), ip.dst_addr(), ip.hop_limit()),
        (US, group, 255)
    );
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum(US, group));
    assert_eq!(icmp.ndp_target(), PEER);
    assert_eq!(
        icmp.ndp_lladdr_option(ndp_option::SOURCE_LLADDR),
        Some(OUR_MAC)
    );
    // Rate-limited: not asked again at once.
    assert_eq!(s.poll_ns(now, &mut ns), None);
    // The answer.
    let mut l4 = [0u8; NeighborAdvert::LEN];
    NeighborAdvert {
        router: false,
        solicited: true,
        override_: true,
        target: PEER,
        target_lladdr: PEER_MAC,
    }
    .emit(&mut l4);
    Icmpv6Packet::new_unchecked(&mut l4[..]).fill_checksum(PEER, US);
    let mut f = frame(OUR_MAC, PEER, US, next_header::ICMPV6, 255, &l4);
    assert_eq!(
        s.handle_frame_with(now, &mut f, RxOffload::default()),
        Ingress::Consumed
    );
    assert_eq!(s.neighbour(now, PEER), Some(PEER_MAC));
    assert!(matches!(
        s.encap_from(now, 0, dst, 30000, &mut buf, None),
        Encap::Ready { .. }
    ));
    // Off-link goes to the gateway; unknown until it answers.
    let far = SocketAddrV6::new(FAR, 40000, 0, 0);
    assert_eq!(
        s.encap_from(now, 0, far, 30000, &mut buf, None),
        Encap::NeedArp { next_hop: GW }
    );
    s.insert_neighbour(now, GW, GW_MAC);
    assert!(matches!(
        s.encap_from(now, 0, far, 30000, &mut buf, None),
        Encap::Ready { .. }
    ));
    assert_eq!(&buf[..6], &GW_MAC.0);
    // Entries expire.
    let later = now + crate::netstack::NEIGHBOUR_TTL + Duration::from_secs(1);
    assert_eq!(s.neighbour(later, PEER), None);
}

#[test]
fn echo_request_to_us_gets_a_reply_from_the_address_it_was_sent_to() {
    let (mut s, now) = stack();
    let mut l4 = vec![0u8; 8 + 5];
    l4[0] = message::ECHO_REQUEST;
    l4[4..6].copy_from_slice(&0x4242u16.to_be_bytes());
    l4[6..8].copy_from_slice(&7u16.to_be_bytes());
    l4[8..].copy_from_slice(b"hello");
    Icmpv6Packet::new_unchecked(&mut l4[..]).fill_checksum(PEER, US2);
    let mut f = frame(OUR_MAC, PEER, US2, next_header::ICMPV6, 64, &l4);
    let n = f.len();
    assert_eq!(
        s.handle_frame_with(now, &mut f, RxOffload::default()),
        Ingress::Reply { len: n }
    );
    let ip = parse_ip(&f);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (US2, PEER));
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(icmp.msg_type(), message::ECHO_REPLY);
    assert!(icmp.verify_checksum(US2, PEER));
    assert_eq!(
        (icmp.echo_ident(), icmp.echo_seq_no(), icmp.echo_data()),
        (0x4242, 7, &b"hello"[..])
    );
    assert_eq!(s.stats().echo_replies, 1);
}

#[test]
fn udp_is_delivered_with_its_address_and_sent_back_with_a_valid_checksum() {
    let (mut s, now) = stack();
    s.insert_neighbour(now, PEER, PEER_MAC);
    let payload = [
        0x80u8, 0, 0, 1, 0, 0, 0, 160, 0xca, 0xfe, 0xba, 0xbe, 1, 2, 3, 4, 5,
    ];
    let mut f = udp_to(US2, 30002, &payload);
    f.resize(f.len().max(60), 0);
    let Ingress::Udp {
        src,
        dst_port,
        dst_addr,
        payload: r,
        tail_sum,
    } = s.handle_frame_with(now, &mut f, RxOffload::default())
    else {
        panic!("not delivered");
    };
    assert_eq!(src, SocketAddrV6::new(PEER, 40000, 0, 0));
    assert_eq!((dst_port, dst_addr), (30002, 1));
    assert_eq!(&f[r.clone()], &payload);
    assert_eq!(udp_dst_port6(&f, s.addresses()), Some(30002));
    assert_eq!(udp_dst_port6(&f, &[US]), None);
    // Relay it back from address 1, reusing the received sum (first bytes edited).
    let mut out = vec![0u8; HEADROOM6 + payload.len()];
    out[HEADROOM6..].copy_from_slice(&payload);
    out[HEADROOM6 + 1] |= 0x80; // the relay may set the marker bit
    assert!(matches!(
        s.encap_from(now, 1, src, 30002, &mut out, tail_sum),
        Encap::Ready { .. }
    ));
    let ip = parse_ip(&out);
    assert_eq!(
        (ip.src_addr(), ip.dst_addr(), ip.next_header()),
        (US2, PEER, next_header::UDP)
    );
    assert_eq!(ip.traffic_class(), 46 << 2);
    let u = UdpPacket::new_checked(ip.payload()).unwrap();
    assert!(u.verify_checksum_v6(US2, PEER));
    assert_eq!((u.src_port(), u.dst_port()), (30002, 40000));
    // And without a reused sum.
    assert!(matches!(
        s.encap_from(now, 0, src, 30000, &mut out, None),
        Encap::Ready { .. }
    ));
    let ip = parse_ip(&out);
    assert!(UdpPacket::new_checked(ip.payload())
        .unwrap()
        .verify_checksum_v6(US, PEER));
    assert_eq!(
        s.encap_from(now, 2, src, 30000, &mut out, None),
        Encap::BadBuffer
    );
}

#[test]
fn drops_are_classified() {
    let (mut s, now) = stack();
    let rx = RxOffload::default();
    // Zero UDP checksum: invalid in IPv6.
    let mut f = udp_to(US, 30000, b"x");
    let c = ethernet::HEADER_LEN + ipv6::HEADER_LEN + 6;
    f[c..c + 2].fill(0);
    assert_eq!(
        s.handle_frame_with(now, &mut f, rx),
        Ingress::Drop(L2Drop::BadUdpChecksum)
    );
    // Corrupted payload.
    let mut f = udp_to(US, 30000, b"xyz");
    let n = f.len();
    f[n - 1] ^= 1;
    assert_eq!(
        s.handle_frame_with(now, &mut f, rx),
        Ingress::Drop(L2Drop::BadUdpChecksum)
    );
    // Not our address.
    let mut f = udp_to(FAR, 30000, b"x");
    assert_eq!(
        s.handle_frame_with(now, &mut f, rx),
        Ingress::Drop(L2Drop::NotForUs)
    );
    // Another unicast MAC.
    let mut f = udp_to(US, 30000, b"x");
    f[..6].copy_from_slice(&GW_MAC.0);
    assert_eq!(
        s.handle_frame_with(now, &mut f, rx),
        Ingress::Drop(L2Drop::NotForUs)
    );
    // IPv4 on an IPv6 port.
    let mut f = udp_to(US, 30000, b"x");
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    assert_eq!(
        s.handle_frame_with(now, &mut f, rx),
        Ingress::Drop(L2Drop::NotIpv4OrArp)
    );
    // A fragment header.
    let mut f = frame(OUR_MAC, PEER, US, 44, 64, &[17, 0, 0, 1, 0, 0, 0, 1]);
    assert_eq!(
        s.handle_frame_with(now, &mut f, rx),
        Ingress::Drop(L2Drop::Fragment)
    );
    // A router advertisement to all nodes.
    let mut l4 = vec![0u8; 16];
    l4[0] = message::ROUTER_ADVERT;
    Icmpv6Packet::new_unchecked(&mut l4[..]).fill_checksum(PEER, ALL_NODES);
    let mut f = frame(
        ipv6::multicast_mac(ALL_NODES),
        PEER,
        ALL_NODES,
        next_header::ICMPV6,
        255,
        &l4,
    );
    assert_eq!(
        s.handle_frame_with(now, &mut f, rx),
        Ingress::Drop(L2Drop::IcmpOther)
    );
    // Truncated.
    let mut f = udp_to(US, 30000, b"x")[..30].to_vec();
    assert_eq!(
        s.handle_frame_with(now, &mut f, rx),
        Ingress::Drop(L2Drop::Truncated)
    );
    assert_eq!(s.stats().dropped_total(), 8);
}

#[test]
fn learned_neighbours_are_logged_for_other_workers_only_when_sharing() {
    let (mut s, now) = stack();
    let mut f = ns_from_peer(US, PEER, 255);
    let _ = s.handle_frame_with(now, &mut f, RxOffload::default());
    assert_eq!(s.take_learned(), None);
    s.set_share_learned(true);
    let mut f = ns_from_peer(US, PEER, 255);
    let _ = s.handle_frame_with(now, &mut f, RxOffload::default());
    s.insert_neighbour(now, GW, GW_MAC);
    assert_eq!(s.take_learned(), Some((PEER, PEER_MAC)));
    assert_eq!(s.take_learned(), None);
}
