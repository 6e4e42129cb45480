//! The IPv6 twin of [`crate::netstack`]: what a DPDK worker needs to own IPv6 media addresses
//! on its port. Sans-IO, like the IPv4 one; same counters ([`NetStats`]: the ARP fields count
//! NDP) and drop reasons ([`L2Drop`]).
//!
//! - **NDP** (RFC 4861): a neighbour solicitation for one of our addresses (unicast, or to its
//!   solicited-node multicast group) is answered in place with a solicited, override
//!   advertisement carrying our MAC, and teaches the cache the asker's link-layer address; a
//!   DAD probe (unspecified source) is answered to all-nodes. Advertisements teach the cache
//!   (always for solicited ones and known neighbours). Unresolved next hops are asked with a
//!   solicitation to their solicited-node group ([`Netstack6::poll_ns`], rate-limited by the
//!   shared [`Neighbours`] cache). NDP messages must arrive with hop limit 255.
//! - **ICMPv6 echo** to our addresses is answered in place.
//! - **UDP** to our addresses is delivered (the checksum is mandatory in IPv6: zero is a bad
//!   checksum); the payload sum is kept for transmit, as in IPv4.
//! - Everything else is dropped and counted: other EtherTypes, extension headers (fragments
//!   as `fragment`), router advertisements and other ICMPv6.
//!
//! Transmit ([`Netstack6::encap_from`]) writes Ethernet + IPv6 + UDP headers into the
//! [`HEADROOM6`] bytes before the payload, UDP checksum in software.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Instant;

use wire::checksum;
use wire::ethernet::{self, ethertype, Address, EthernetFrame};
use wire::icmpv6::{message, ndp_option, Icmpv6Packet, NeighborAdvert, NeighborSolicit};
use wire::ipv6::{self, next_header, Ipv6Packet, Ipv6Repr};
use wire::udp::{self, UdpPacket};

use crate::neighbour::{LearnedLog, Neighbours};
use crate::netstack::{
    udp_checksum, Encap, Ingress, L2Drop, NetStats, RxOffload, DEFAULT_TTL, SUM_SKIP,
};

/// Bytes in front of a UDP payload: Ethernet + IPv6 + UDP headers.
pub const HEADROOM6: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + udp::HEADER_LEN;
/// A neighbour solicitation or advertisement frame with a link-layer address option.
pub const NDP_FRAME_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + NeighborSolicit::LEN;
/// NDP messages are only accepted with (and sent with) this hop limit (RFC 4861 §7.1).
const NDP_HOP_LIMIT: u8 = 255;
/// Expedited forwarding (DSCP 46) in the traffic class, as the IPv4 side marks media.
const TRAFFIC_CLASS_EF: u8 = 46 << 2;
/// ff02::1, all nodes.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// What the IPv6 layer knows about its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig6 {
    /// Our MAC (the port's).
    pub mac: Address,
    /// Our first IPv6 address (media address 0).
    pub ip: Ipv6Addr,
    /// The on-link prefix length (0..=128).
    pub prefix_len: u8,
    /// The next hop for destinations off-link; `None` = only on-link destinations reachable.
    pub gateway: Option<Ipv6Addr>,
}

impl NetConfig6 {
    fn mask(&self) -> u128 {
        match self.prefix_len {
            0 => 0,
            p => u128::MAX << (128 - u32::from(p.min(128))),
        }
    }
}

/// The IPv6 layer of one worker's port. See the module docs.
#[derive(Debug)]
pub struct Netstack6 {
    cfg: NetConfig6,
    /// Our addresses (index = media address).
    ips: Vec<Ipv6Addr>,
    /// Their solicited-node groups, same index.
    groups: Vec<Ipv6Addr>,
    neigh: Neighbours<Ipv6Addr>,
    stats: NetStats,
    mask: u128,
    net: u128,
    learned: LearnedLog<Ipv6Addr>,
}

/// Whether `ip` is link-local (fe80::/10): always on-link.
fn link_local(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

impl Netstack6 {
    /// A layer for `cfg` with an empty neighbour cache.
    #[must_use]
    pub fn new(cfg: NetConfig6) -> Self {
        let mask = cfg.mask();
        Self {
            cfg,
            ips: vec![cfg.ip],
            groups: vec![ipv6::solicited_node(cfg.ip)],
            neigh: Neighbours::new(),
            stats: NetStats::default(),
            mask,
            net: u128::from(cfg.ip) & mask,
            learned: LearnedLog::new(),
        }
    }

    /// Owns `extra` too (media addresses 1, 2, …, after `cfg.ip`), on the same link.
    pub fn add_addresses(&mut self, extra: &[Ipv6Addr]) {
        for &ip in extra {
            self.ips.push(ip);
            self.groups.push(ipv6::solicited_node(ip));
        }
    }

    /// Our addresses (index = media address).
    #[must_use]
    pub fn addresses(&self) -> &[Ipv6Addr] {
        &self.ips
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &NetConfig6 {
        &self.cfg
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// As [`crate::Netstack::set_share_learned`].
    pub fn set_share_learned(&mut self, on: bool) {
        self.learned.set_on(on);
    }

    /// As [`crate::Netstack::take_learned`].
    pub fn take_learned(&mut self) -> Option<(Ipv6Addr, Address)> {
        self.learned.take()
    }

    #[inline]
    fn addr_index(&self, ip: Ipv6Addr) -> Option<u8> {
        if ip == self.cfg.ip {
            return Some(0);
        }
        self.ips[1..]
            .iter()
            .position(|&a| a == ip)
            .map(|i| (i + 1) as u8)
    }

    fn drop(&mut self, r: L2Drop) -> Ingress<SocketAddrV6> {
        self.stats.drops[r.index()] += 1;
        Ingress::Drop(r)
    }

    fn learn(&mut self, now: Instant, ip: Ipv6Addr, mac: Address, log: bool) {
        self.neigh.learn(now, ip, mac);
        self.stats.arp_learned += 1;
        if log {
            self.learned.push(ip, mac);
        }
    }

    /// Puts a neighbour into the cache (expires like a learned one). Not logged for sharing.
    pub fn insert_neighbour(&mut self, now: Instant, ip: Ipv6Addr, mac: Address) {
        self.learn(now, ip, mac, false);
    }

    /// The MAC cached for `ip`, if resolved and not expired.
    #[must_use]
    pub fn neighbour(&self, now: Instant, ip: Ipv6Addr) -> Option<Address> {
        self.neigh.get(now, ip)
    }

    /// The next hop for `dst`: itself when on-link (our prefix, or link-local), else the
    /// gateway.
    #[must_use]
    pub fn next_hop(&self, dst: Ipv6Addr) -> Option<Ipv6Addr> {
        if u128::from(dst) & self.mask == self.net || link_local(dst) {
            Some(dst)
        } else {
            self.cfg.gateway
        }
    }

    /// Classifies one received Ethernet frame; see [`Ingress`]. Replies are written into
    /// `frame` in place (never longer than the frame).
    pub fn handle_frame_with(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        rx: RxOffload,
    ) -> Ingress<SocketAddrV6> {
        self.stats.rx_frames += 1;
        let Ok(eth) = EthernetFrame::new_checked(&*frame) else {
            return self.drop(L2Drop::Truncated);
        };
        if eth.ethertype() != ethertype::IPV6 {
            return self.drop(L2Drop::NotIpv4OrArp);
        }
        let dst_mac = eth.dst_addr();
        // Unicast to us, or IPv6 multicast (33:33:…; the IPv6 destination decides below).
        if dst_mac != self.cfg.mac && dst_mac.0[..2] != [0x33, 0x33] {
            return self.drop(L2Drop::NotForUs);
        }
        let l3 = ethernet::HEADER_LEN;
        let Ok(ip) = Ipv6Packet::new_checked(&frame[l3..]) else {
            return self.drop(L2Drop::Truncated);
        };
        if ip.version() != 6 {
            return self.drop(L2Drop::NotIpv4OrArp);
        }
        let (src, dst, hops) = (ip.src_addr(), ip.dst_addr(), ip.hop_limit());
        let pl = usize::from(ip.payload_len());
        let nh = ip.next_header();
        let ours = self.addr_index(dst);
        let group = dst == ALL_NODES || self.groups.contains(&dst);
        if ours.is_none() && !group {
            return self.drop(L2Drop::NotForUs);
        }
        let l4 = l3 + ipv6::HEADER_LEN;
        match nh {
            next_header::UDP => {
                let Some(dst_addr) = ours else {
                    return self.drop(L2Drop::NotForUs);
                };
                self.handle_udp(frame, l4, pl, src, dst, dst_addr, rx)
            }
            next_header::ICMPV6 => self.handle_icmp(now, frame, l4, pl, src, dst, hops, ours),
            44 => self.drop(L2Drop::Fragment),
            _ => self.drop(L2Drop::OtherProtocol),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_udp(
        &mut self,
        frame: &[u8],
        l4: usize,
        pl: usize,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        dst_addr: u8,
        rx: RxOffload,
    ) -> Ingress<SocketAddrV6> {
        let Ok(u) = UdpPacket::new_checked(&frame[l4..l4 + pl]) else {
            return self.drop(L2Drop::Truncated);
        };
        let (sport, dport, udp_len) = (u.src_port(), u.dst_port(), usize::from(u.len()));
        if u.checksum() == 0 {
            // Mandatory in IPv6 (RFC 8200 §8.1).
            return self.drop(L2Drop::BadUdpChecksum);
        }
        let data = &frame[l4..l4 + udp_len];
        let split = (udp::HEADER_LEN + SUM_SKIP).min(udp_len);
        let ph = checksum::pseudo_header_v6(&src, &dst, next_header::UDP, udp_len as u32);
        let head = ph + checksum::sum(&data[..split]);
        let tail_sum = if rx.udp_checksum_good {
            u32::from(!checksum::fold(head))
        } else {
            let tail = checksum::sum(&data[split..]);
            if checksum::combine(&[head, tail]) != 0 {
                return self.drop(L2Drop::BadUdpChecksum);
            }
            tail
        };
        self.stats.rx_udp += 1;
        Ingress::Udp {
            src: SocketAddrV6::new(src, sport, 0, 0),
            dst_port: dport,
            dst_addr,
            payload: l4 + udp::HEADER_LEN..l4 + udp_len,
            tail_sum: Some(tail_sum),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_icmp(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        l4: usize,
        pl: usize,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hops: u8,
        ours: Option<u8>,
    ) -> Ingress<SocketAddrV6> {
        let Ok(icmp) = Icmpv6Packet::new_checked(&frame[l4..l4 + pl]) else {
            return self.drop(L2Drop::Truncated);
        };
        if !icmp.verify_checksum(src, dst) {
            return self.drop(L2Drop::BadIcmpChecksum);
        }
        match icmp.msg_type() {
            message::ECHO_REQUEST if ours.is_some() && icmp.msg_code() == 0 => {
                self.echo_reply(frame, l4, pl, src, dst)
            }
            message::NEIGHBOR_SOLICIT if hops == NDP_HOP_LIMIT && icmp.msg_code() == 0 => {
                let target = icmp.ndp_target();
                let slla = icmp.ndp_lladdr_option(ndp_option::SOURCE_LLADDR);
                self.solicitation(now, frame, src, target, slla)
            }
            message::NEIGHBOR_ADVERT if hops == NDP_HOP_LIMIT && icmp.msg_code() == 0 => {
                let target = icmp.ndp_target();
                let (_, solicited, _) = icmp.na_flags();
                let tlla = icmp.ndp_lladdr_option(ndp_option::TARGET_LLADDR);
                if let Some(mac) = tlla.filter(|m| m.0[0] & 1 == 0 && *m != Address([0; 6])) {
                    if self.addr_index(target).is_none() && (solicited || self.neigh.knows(target))
                    {
                        self.learn(now, target, mac, true);
                    }
                }
                Ingress::Consumed
            }
            message::NEIGHBOR_SOLICIT | message::NEIGHBOR_ADVERT => self.drop(L2Drop::ArpOther),
            _ => self.drop(L2Drop::IcmpOther),
        }
    }

    /// Echo reply in place: swap MACs and addresses, type 128 → 129, checksum afresh.
    fn echo_reply(
        &mut self,
        frame: &mut [u8],
        l4: usize,
        pl: usize,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Ingress<SocketAddrV6> {
        let len = l4 + pl;
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..len]);
        let peer_mac = eth.src_addr();
        eth.set_dst_addr(peer_mac);
        eth.set_src_addr(self.cfg.mac);
        let mut ip = Ipv6Packet::new_unchecked(eth.payload_mut());
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.set_hop_limit(DEFAULT_TTL);
        let mut icmp = Icmpv6Packet::new_unchecked(ip.payload_mut());
        icmp.set_msg_type(message::ECHO_REPLY);
        icmp.fill_checksum(dst, src);
        self.stats.echo_replies += 1;
        Ingress::Reply { len }
    }

    /// A neighbour solicitation: answer it if it asks for one of our addresses.
    fn solicitation(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        src: Ipv6Addr,
        target: Ipv6Addr,
        slla: Option<Address>,
    ) -> Ingress<SocketAddrV6> {
        if self.addr_index(target).is_none() {
            return self.drop(L2Drop::ArpOther);
        }
        let dad = src.is_unspecified();
        if let Some(mac) = slla {
            let learnable = !dad
                && mac.0[0] & 1 == 0
                && mac != Address([0; 6])
                && self.addr_index(src).is_none();
            if learnable {
                self.learn(now, src, mac, true);
            }
        }
        if frame.len() < NDP_FRAME_LEN {
            // A solicitation without the option, too short to hold our answer in place:
            // only DAD probes omit it; their answer goes to all-nodes anyway.
            return self.drop(L2Drop::ArpOther);
        }
        let peer_mac = EthernetFrame::new_unchecked(&*frame).src_addr();
        let (to_ip, to_mac) = if dad {
            (ALL_NODES, ipv6::multicast_mac(ALL_NODES))
        } else {
            (src, slla.unwrap_or(peer_mac))
        };
        let f = &mut frame[..NDP_FRAME_LEN];
        let mut eth = EthernetFrame::new_unchecked(&mut *f);
        eth.set_dst_addr(to_mac);
        eth.set_src_addr(self.cfg.mac);
        eth.set_ethertype(ethertype::IPV6);
        let mut ip = Ipv6Packet::new_unchecked(eth.payload_mut());
        Ipv6Repr {
            src_addr: target,
            dst_addr: to_ip,
            next_header: next_header::ICMPV6,
            payload_len: NeighborAdvert::LEN,
            hop_limit: NDP_HOP_LIMIT,
        }
        .emit(&mut ip);
        let icmp = &mut ip.payload_mut()[..NeighborAdvert::LEN];
        NeighborAdvert {
            router: false,
            solicited: !dad,
            override_: true,
            target,
            target_lladdr: self.cfg.mac,
        }
        .emit(icmp);
        Icmpv6Packet::new_unchecked(icmp).fill_checksum(target, to_ip);
        self.stats.arp_replies += 1;
        Ingress::Reply { len: NDP_FRAME_LEN }
    }

    /// Resolves `next_hop`'s MAC (our own addresses: our MAC, hairpin).
    #[inline]
    fn resolve(&mut self, now: Instant, next_hop: Ipv6Addr) -> Option<Address> {
        if let Some(mac) = self.neigh.resolve_fast(now, next_hop) {
            return Some(mac);
        }
        if self.addr_index(next_hop).is_some() {
            return Some(self.cfg.mac);
        }
        self.neigh.resolve(now, next_hop)
    }

    /// Writes Ethernet/IPv6/UDP headers into `buf[..HEADROOM6]` for the payload
    /// `buf[HEADROOM6..]`, from `src_port` on our address number `src_addr` to `dst`; the UDP
    /// checksum in software, reusing `tail_sum` (an [`Ingress::Udp`]'s) when given (see
    /// [`crate::Netstack::encap_with`]).
    pub fn encap_from(
        &mut self,
        now: Instant,
        src_addr: u8,
        dst: SocketAddrV6,
        src_port: u16,
        buf: &mut [u8],
        tail_sum: Option<u32>,
    ) -> Encap<Ipv6Addr> {
        let udp_len = buf.len().wrapping_sub(HEADROOM6 - udp::HEADER_LEN);
        let Some(&src) = self.ips.get(usize::from(src_addr)) else {
            self.stats.too_big += 1;
            return Encap::BadBuffer;
        };
        if buf.len() < HEADROOM6 || udp_len > usize::from(u16::MAX) {
            self.stats.too_big += 1;
            return Encap::BadBuffer;
        }
        let Some(next_hop) = self.next_hop(*dst.ip()) else {
            self.stats.no_route += 1;
            return Encap::NoRoute;
        };
        let Some(mac) = self.resolve(now, next_hop) else {
            self.stats.arp_pending += 1;
            return Encap::NeedArp { next_hop };
        };
        let len = buf.len();
        let (hdr, payload) = buf.split_at_mut(HEADROOM6);
        let mut eth = EthernetFrame::new_unchecked(&mut hdr[..]);
        eth.set_dst_addr(mac);
        eth.set_src_addr(self.cfg.mac);
        eth.set_ethertype(ethertype::IPV6);
        let mut ip = Ipv6Packet::new_unchecked(eth.payload_mut());
        Ipv6Repr {
            src_addr: src,
            dst_addr: *dst.ip(),
            next_header: next_header::UDP,
            payload_len: udp_len,
            hop_limit: DEFAULT_TTL,
        }
        .emit(&mut ip);
        ip.set_traffic_class(TRAFFIC_CLASS_EF);
        let u = &mut hdr[ethernet::HEADER_LEN + ipv6::HEADER_LEN..];
        u[0..2].copy_from_slice(&src_port.to_be_bytes());
        u[2..4].copy_from_slice(&dst.port().to_be_bytes());
        u[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        u[6..8].fill(0);
        let ph = checksum::pseudo_header_v6(&src, dst.ip(), next_header::UDP, udp_len as u32);
        let c = udp_checksum(ph, src_port, dst.port(), udp_len, payload, tail_sum);
        u[6..8].copy_from_slice(&c.to_be_bytes());
        self.stats.tx_udp += 1;
        Encap::Ready { len }
    }

    /// Writes the next due neighbour solicitation into `buf` (to the target's solicited-node
    /// group, from our first address, with our link-layer address) and returns its length
    /// ([`NDP_FRAME_LEN`]); `None` when none is due or `buf` is too short.
    #[must_use]
    pub fn poll_ns(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if buf.len() < NDP_FRAME_LEN {
            return None;
        }
        let target = self.neigh.poll_due(now)?;
        let group = ipv6::solicited_node(target);
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..NDP_FRAME_LEN]);
        eth.set_dst_addr(ipv6::multicast_mac(group));
        eth.set_src_addr(self.cfg.mac);
        eth.set_ethertype(ethertype::IPV6);
        let mut ip = Ipv6Packet::new_unchecked(eth.payload_mut());
        Ipv6Repr {
            src_addr: self.cfg.ip,
            dst_addr: group,
            next_header: next_header::ICMPV6,
            payload_len: NeighborSolicit::LEN,
            hop_limit: NDP_HOP_LIMIT,
        }
        .emit(&mut ip);
        let icmp = &mut ip.payload_mut()[..NeighborSolicit::LEN];
        NeighborSolicit {
            target,
            source_lladdr: self.cfg.mac,
        }
        .emit(icmp);
        Icmpv6Packet::new_unchecked(icmp).fill_checksum(self.cfg.ip, group);
        self.stats.arp_requests += 1;
        Some(NDP_FRAME_LEN)
    }

    /// Housekeeping: re-asks wanted neighbours, forgets idle ones.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.neigh.handle_timeout(now);
    }
}

/// The UDP destination port of an IPv6/UDP frame to one of `ips` (no extension headers),
/// read straight from the frame: enough to pick the worker owning the port (see
/// [`crate::netstack::udp_dst_port`]).
#[inline]
#[must_use]
pub fn udp_dst_port6(frame: &[u8], ips: &[Ipv6Addr]) -> Option<u16> {
    const L3: usize = ethernet::HEADER_LEN;
    let h = frame.get(..L3 + ipv6::HEADER_LEN + udp::HEADER_LEN)?;
    if h[12..14] != [0x86, 0xdd] || h[L3] >> 4 != 6 || h[L3 + 6] != next_header::UDP {
        return None;
    }
    if !ips.iter().any(|ip| h[L3 + 24..L3 + 40] == ip.octets()) {
        return None;
    }
    let l4 = L3 + ipv6::HEADER_LEN;
    Some(u16::from_be_bytes([h[l4 + 2], h[l4 + 3]]))
}

#[cfg(test)]
mod tests;
