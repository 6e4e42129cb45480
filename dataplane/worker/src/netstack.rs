//! A sans-IO L2/L3 for one IPv4 address on one Ethernet port: what a kernel-bypass backend
//! needs so the relay sees UDP payloads and peers see a well-behaved host.
//!
//! - **Ingress** ([`Netstack::handle_frame`]): classifies one Ethernet frame, in place.
//!   UDP for our address becomes [`Ingress::Udp`] (the payload's byte range and the source);
//!   ARP who-has for our address and ICMP echo requests to us are rewritten in place into the
//!   reply ([`Ingress::Reply`]); ARP replies to us only teach the neighbour cache
//!   ([`Ingress::Consumed`]); everything else is [`Ingress::Drop`] with an [`L2Drop`] reason,
//!   counted in [`NetStats`].
//! - **Egress** ([`Netstack::encap`]): writes Ethernet/IPv4/UDP headers into the first
//!   [`HEADROOM`] bytes of a buffer whose tail is the UDP payload. The next hop is the
//!   destination when on-link, else the gateway; its MAC comes from the neighbour cache. A
//!   miss returns [`Encap::NeedArp`] (the caller drops and counts, or queues) and queues the
//!   target for [`Netstack::poll_arp_request`], which emits who-has requests rate-limited to
//!   one per [`ARP_RETRY`] per target. Frames to our own address get our own MAC (hairpin).
//!
//! No I/O, no clock, no allocation after [`Netstack::new`]: frames are `&mut [u8]` and time is
//! the `now` the caller passes (the worker reads the TSC once per burst), so everything here
//! is tested on byte vectors and fake time.
//!
//! The neighbour cache is a fixed set-associative table ([`NEIGHBOUR_BUCKETS`] buckets of
//! [`NEIGHBOUR_WAYS`] entries, keyed by IPv4 address). Entries live [`NEIGHBOUR_TTL`] after
//! they were last learned; an entry used within [`REFRESH_BEFORE`] of its expiry is re-asked
//! (still used meanwhile), so a busy next hop never goes unresolved. Targets waiting for a
//! request sit in a fixed ring of [`PENDING_TARGETS`].

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use wire::arp::{self, ArpPacket, ArpRepr, Operation};
use wire::checksum;
use wire::ethernet::{self, ethertype, Address, EthernetFrame};
use wire::icmpv4::{message, Icmpv4Packet};
use wire::ipv4::{self, protocol, Ipv4Packet};
use wire::udp::{self, UdpPacket};

use crate::neighbour::{LearnedLog, Neighbours};

/// The bytes [`Netstack::encap`] writes in front of a UDP payload: Ethernet (14), IPv4
/// without options (20), UDP (8).
pub const HEADROOM: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;
/// The length of an ARP frame we emit (Ethernet + ARP, unpadded; NICs pad to 60).
pub const ARP_FRAME_LEN: usize = ethernet::HEADER_LEN + arp::PACKET_LEN;
/// How long a learned neighbour is trusted.
pub const NEIGHBOUR_TTL: Duration = Duration::from_secs(300);
/// A neighbour used this close to its expiry is asked again (and still used).
pub const REFRESH_BEFORE: Duration = Duration::from_secs(30);
/// At most one who-has per target per this period.
pub const ARP_RETRY: Duration = Duration::from_secs(1);
/// An unresolved target nobody has asked for during this long stops being asked about.
pub const PENDING_IDLE: Duration = Duration::from_secs(5);
/// Buckets of the neighbour cache (a power of two).
pub const NEIGHBOUR_BUCKETS: usize = 256;
/// Entries per bucket.
pub const NEIGHBOUR_WAYS: usize = 4;
/// Targets that can wait for a who-has at once; more misses are still answered `NeedArp`
/// and picked up on a later miss.
pub const PENDING_TARGETS: usize = 32;
/// The payload bytes (an RTP fixed header, which the relay may rewrite) left out of
/// [`Ingress::Udp`]'s `tail_sum`.
pub const SUM_SKIP: usize = 12;
/// The TTL of the packets we originate.
pub const DEFAULT_TTL: u8 = 64;
/// Neighbours learned from ARP kept for [`Netstack::take_learned`] (when sharing is on).
pub const LEARNED_LOG: usize = 16;

/// The UDP destination port of an unfragmented IPv4/UDP frame to one of `ips`, read straight
/// from the frame without checking anything else (no checksum, no length): enough to pick the
/// worker that owns the port. `None` for anything else (ARP, ICMP, fragments, other
/// addresses), which the receiving worker handles itself.
#[inline]
#[must_use]
pub fn udp_dst_port(frame: &[u8], ips: &[Ipv4Addr]) -> Option<u16> {
    const L3: usize = ethernet::HEADER_LEN;
    let h = frame.get(..L3 + ipv4::HEADER_LEN)?;
    if h[12..14] != [0x08, 0x00] || h[L3] >> 4 != 4 || h[L3 + 9] != protocol::UDP {
        return None;
    }
    // More-fragments flag or a fragment offset: only the first fragment has ports.
    if u16::from_be_bytes([h[L3 + 6], h[L3 + 7]]) & 0x3fff != 0
        || !ips.iter().any(|ip| h[L3 + 16..L3 + 20] == ip.octets())
    {
        return None;
    }
    let l4 = L3 + usize::from(h[L3] & 0x0f) * 4;
    let p = frame.get(l4 + 2..l4 + 4)?;
    Some(u16::from_be_bytes([p[0], p[1]]))
}

/// The UDP checksum of a datagram we send (both IP families): `ph` the pseudo-header sum,
/// then the UDP header's words (checksum zero) and the payload — its first [`SUM_SKIP`] bytes
/// afresh and the rest from `tail_sum` (an [`Ingress::Udp`]'s, when the payload after them is
/// unchanged), or all of it. A computed zero is sent as all ones (RFC 768).
#[inline]
#[must_use]
pub(crate) fn udp_checksum(
    ph: u32,
    src_port: u16,
    dst_port: u16,
    udp_len: usize,
    payload: &[u8],
    tail_sum: Option<u32>,
) -> u16 {
    let hdr_sum = u32::from(src_port) + u32::from(dst_port) + udp_len as u32;
    let c = match tail_sum {
        Some(tail) => {
            let split = SUM_SKIP.min(payload.len());
            checksum::combine(&[ph, hdr_sum, checksum::sum(&payload[..split]), tail])
        }
        None => checksum::combine(&[ph, hdr_sum, checksum::sum(payload)]),
    };
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// What the L2/L3 layer knows about its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    /// Our MAC (the port's).
    pub mac: Address,
    /// Our IPv4 address (the media address).
    pub ip: Ipv4Addr,
    /// The on-link prefix length (0..=32).
    pub prefix_len: u8,
    /// The next hop for destinations off-link; `None` = only on-link destinations reachable.
    pub gateway: Option<Ipv4Addr>,
}

impl NetConfig {
    /// The netmask as a `u32`.
    #[must_use]
    pub fn mask(&self) -> u32 {
        match self.prefix_len {
            0 => 0,
            p => u32::MAX << (32 - u32::from(p.min(32))),
        }
    }

    /// Whether `dst` is on our link.
    #[must_use]
    pub fn on_link(&self, dst: Ipv4Addr) -> bool {
        let m = self.mask();
        u32::from(dst) & m == u32::from(self.ip) & m
    }
}

#[cfg(any(feature = "dpdk", test))]
pub(crate) use fast::LaneFrame;
pub use types::{Encap, Ingress, L2Drop, NetStats, RxOffload, TxOffload};

/// The L2/L3 state of one worker's port. See the module docs.
#[derive(Debug)]
pub struct Netstack {
    cfg: NetConfig,
    /// The ARP cache.
    neigh: Neighbours<Ipv4Addr>,
    stats: NetStats,
    /// Our addresses: `cfg.ip`, then the extra media addresses (index = media address).
    ips: Vec<Ipv4Addr>,
    /// Per address: what every datagram sent from it shares.
    tx_src: Vec<TxSrc>,
    /// `cfg.mask()` and our network (`ip & mask`), for the per-packet on-link test, both
    /// in memory order (an address's octets read as one native word: no byte swap).
    mask: u32,
    net: u32,
    /// Neighbours learned from ARP, for other workers ([`Self::take_learned`]).
    learned: LearnedLog<Ipv4Addr>,
}

/// Ethernet + IPv4 header bytes of [`Netstack`]'s transmit template.
const TEMPLATE_LEN: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN;

/// What every datagram sent from one of our addresses shares.
#[derive(Debug, Clone)]
struct TxSrc {
    /// The Ethernet and IPv4 header bytes (destination MAC, total length, checksum and
    /// destination address left zero): copied, then patched.
    template: [u8; TEMPLATE_LEN],
    /// The one's-complement sum of `template`'s IPv4 header words.
    ip_sum: u32,
    /// The one's-complement sum of the address's two words (pseudo-header source).
    addr_sum: u32,
    /// The address's octets read as one little-endian word (the fast lane's incremental
    /// UDP checksum, which reads every word so).
    #[cfg_attr(not(any(feature = "dpdk", test)), allow(dead_code))]
    addr_le: u32,
}

impl TxSrc {
    fn new(mac: Address, ip: Ipv4Addr) -> Self {
        let (template, ip_sum) = tx_template(mac, ip);
        Self {
            template,
            ip_sum,
            addr_sum: addr_sum(ip),
            addr_le: u32::from_le_bytes(ip.octets()),
        }
    }
}

/// The sum of an IPv4 address's two 16-bit words.
#[inline]
fn addr_sum(a: Ipv4Addr) -> u32 {
    let o = a.octets();
    u32::from(u16::from_be_bytes([o[0], o[1]])) + u32::from(u16::from_be_bytes([o[2], o[3]]))
}

/// The constant part of every frame we send and its IPv4 header sum.
fn tx_template(mac: Address, src: Ipv4Addr) -> ([u8; TEMPLATE_LEN], u32) {
    let mut t = [0u8; TEMPLATE_LEN];
    let mut eth = EthernetFrame::new_unchecked(&mut t[..]);
    eth.set_src_addr(mac);
    eth.set_ethertype(ethertype::IPV4);
    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.set_version(4);
    ip.set_header_len(ipv4::HEADER_LEN as u8);
    ip.set_dscp_ecn(46, 0); // EF, RFC 4594 telephony
    ip.set_ident(0);
    ip.set_flags_frag(true, false, 0);
    ip.set_hop_limit(DEFAULT_TTL);
    ip.set_next_header(protocol::UDP);
    ip.set_src_addr(src);
    let sum = checksum::sum(&t[ethernet::HEADER_LEN..]);
    (t, sum)
}

impl Netstack {
    /// A layer for `cfg` with an empty neighbour cache (allocated here, once).
    #[must_use]
    pub fn new(cfg: NetConfig) -> Self {
        Self {
            cfg,
            neigh: Neighbours::new(),
            stats: NetStats::default(),
            ips: vec![cfg.ip],
            tx_src: vec![TxSrc::new(cfg.mac, cfg.ip)],
            mask: u32::from_ne_bytes(cfg.mask().to_be_bytes()),
            net: u32::from_ne_bytes((u32::from(cfg.ip) & cfg.mask()).to_be_bytes()),
            learned: LearnedLog::new(),
        }
    }

    /// Logs every neighbour learned from ARP for [`Self::take_learned`], so that a worker can
    /// pass it to the other workers on the same port (an ARP reply reaches only one of them).
    /// Entries put in with [`Self::insert_neighbour`] are not logged.
    pub fn set_share_learned(&mut self, on: bool) {
        self.learned.set_on(on);
    }

    /// The oldest neighbour learned from ARP and not taken yet (see
    /// [`Self::set_share_learned`]). At most [`LEARNED_LOG`] are kept; more between two takes
    /// are not logged (the other workers then ask themselves).
    pub fn take_learned(&mut self) -> Option<(Ipv4Addr, Address)> {
        self.learned.take()
    }

    /// Owns `extra` too (media addresses 1, 2, …, after `cfg.ip`): answers ARP and ping for
    /// them, accepts UDP to them ([`Ingress::Udp::dst_addr`]) and sends from them
    /// ([`Self::encap_from`]). They share the port, its MAC and its link (`prefix_len`,
    /// `gateway`).
    #[must_use]
    pub fn with_extra_addresses(mut self, extra: &[Ipv4Addr]) -> Self {
        self.add_addresses(extra);
        self
    }

    /// [`Self::with_extra_addresses`] in place (appended after the addresses it has).
    pub fn add_addresses(&mut self, extra: &[Ipv4Addr]) {
        for &ip in extra {
            self.ips.push(ip);
            self.tx_src.push(TxSrc::new(self.cfg.mac, ip));
        }
    }

    /// Our addresses (index = media address; 0 is `cfg.ip`).
    #[must_use]
    pub fn addresses(&self) -> &[Ipv4Addr] {
        &self.ips
    }

    /// The index of `ip` among our addresses.
    #[inline(always)]
    fn addr_index(&self, ip: Ipv4Addr) -> Option<u8> {
        if ip == self.cfg.ip {
            return Some(0);
        }
        self.extra_addr_index(ip)
    }

    /// [`Self::addr_index`] among the extra addresses (out of line: most media nodes have
    /// one address).
    #[inline(never)]
    fn extra_addr_index(&self, ip: Ipv4Addr) -> Option<u8> {
        self.ips[1..]
            .iter()
            .position(|&a| a == ip)
            .map(|i| (i + 1) as u8)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    fn drop(&mut self, r: L2Drop) -> Ingress {
        self.stats.drops[r.index()] += 1;
        Ingress::Drop(r)
    }

    /// [`Self::handle_frame_with`] with no receive offload.
    pub fn handle_frame(&mut self, now: Instant, frame: &mut [u8]) -> Ingress {
        self.handle_frame_with(now, frame, RxOffload::default())
    }

    /// Classifies one received Ethernet frame; see [`Ingress`]. Replies are written into
    /// `frame` in place (never longer than the frame).
    pub fn handle_frame_with(&mut self, now: Instant, frame: &mut [u8], rx: RxOffload) -> Ingress {
        if let Some(udp) = self.rx_udp_fast(frame, rx) {
            return udp;
        }
        self.stats.rx_frames += 1;
        let Ok(eth) = EthernetFrame::new_checked(&*frame) else {
            return self.drop(L2Drop::Truncated);
        };
        let dst_mac = eth.dst_addr();
        match eth.ethertype() {
            ethertype::ARP => {
                if dst_mac != self.cfg.mac && dst_mac != Address::BROADCAST {
                    return self.drop(L2Drop::NotForUs);
                }
                self.handle_arp(now, frame)
            }
            ethertype::IPV4 => {
                if dst_mac != self.cfg.mac {
                    return self.drop(L2Drop::NotForUs);
                }
                self.handle_ipv4(frame, rx)
            }
            _ => self.drop(L2Drop::NotIpv4OrArp),
        }
    }

    fn handle_arp(&mut self, now: Instant, frame: &mut [u8]) -> Ingress {
        let Ok(p) = ArpPacket::new_checked(&frame[ethernet::HEADER_LEN..]) else {
            return self.drop(L2Drop::Truncated);
        };
        let Ok(repr) = ArpRepr::parse(&p) else {
            return self.drop(L2Drop::ArpOther);
        };
        let for_us = self.addr_index(repr.target_protocol_addr).is_some();
        // RFC 826: update the sender's entry if we have one; add it if the packet is for us.
        let sender = repr.source_protocol_addr;
        let sender_mac = repr.source_hardware_addr;
        let learnable = !sender.is_unspecified()
            && self.addr_index(sender).is_none()
            && sender_mac.0[0] & 1 == 0
            && sender_mac != Address([0; 6]);
        if learnable && (for_us || self.neigh.knows(sender)) {
            self.learn(now, sender, sender_mac);
            self.learned.push(sender, sender_mac);
        }
        match (repr.operation, for_us) {
            (Operation::Request, true) => {
                let reply = ArpRepr {
                    operation: Operation::Reply,
                    source_hardware_addr: self.cfg.mac,
                    source_protocol_addr: repr.target_protocol_addr,
                    target_hardware_addr: sender_mac,
                    target_protocol_addr: sender,
                };
                let f = &mut frame[..ARP_FRAME_LEN];
                let mut eth = EthernetFrame::new_unchecked(&mut *f);
                eth.set_dst_addr(sender_mac);
                eth.set_src_addr(self.cfg.mac);
                reply.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
                self.stats.arp_replies += 1;
                Ingress::Reply { len: ARP_FRAME_LEN }
            }
            (Operation::Reply, true) => Ingress::Consumed,
            _ => self.drop(L2Drop::ArpOther),
        }
    }

    fn handle_ipv4(&mut self, frame: &mut [u8], rx: RxOffload) -> Ingress {
        let l3 = ethernet::HEADER_LEN;
        let Ok(ip) = Ipv4Packet::new_checked(&frame[l3..]) else {
            return self.drop(L2Drop::Truncated);
        };
        if ip.version() != 4 {
            return self.drop(L2Drop::NotIpv4OrArp);
        }
        let dst = ip.dst_addr();
        let Some(dst_addr) = self.addr_index(dst) else {
            return self.drop(L2Drop::NotForUs);
        };
        if !rx.ipv4_checksum_good && !ip.verify_checksum() {
            return self.drop(L2Drop::BadIpChecksum);
        }
        if ip.more_frags() || ip.frag_offset() != 0 {
            return self.drop(L2Drop::Fragment);
        }
        let hl = usize::from(ip.header_len());
        let tl = usize::from(ip.total_len());
        let src = ip.src_addr();
        match ip.next_header() {
            protocol::UDP => {
                let l4 = l3 + hl;
                let Ok(u) = UdpPacket::new_checked(&frame[l4..l3 + tl]) else {
                    return self.drop(L2Drop::Truncated);
                };
                let (sport, dport, udp_len) = (u.src_port(), u.dst_port(), usize::from(u.len()));
                let mut tail_sum = None;
                if u.checksum() != 0 {
                    // RFC 768: the checksum covers the pseudo-header, the header and the
                    // data; summed in two parts so the tail can be reused on transmit.
                    let data = &frame[l4..l4 + udp_len];
                    let split = (udp::HEADER_LEN + SUM_SKIP).min(udp_len);
                    // Pseudo-header: source, destination (ours), protocol, UDP length.
                    let ph = addr_sum(src)
                        + self.tx_src[usize::from(dst_addr)].addr_sum
                        + u32::from(protocol::UDP)
                        + udp_len as u32;
                    let head = ph + checksum::sum(&data[..split]);
                    if rx.udp_checksum_good {
                        // The whole sum folds to 0xffff (one's-complement zero), so the tail's
                        // sum is the one's-complement negation of the rest (RFC 1624's
                        // identity): no pass over the payload.
                        tail_sum = Some(u32::from(!checksum::fold(head)));
                    } else {
                        let tail = checksum::sum(&data[split..]);
                        if checksum::combine(&[head, tail]) != 0 {
                            return self.drop(L2Drop::BadUdpChecksum);
                        }
                        tail_sum = Some(tail);
                    }
                }
                self.stats.rx_udp += 1;
                Ingress::Udp {
                    src: SocketAddrV4::new(src, sport),
                    dst_port: dport,
                    dst_addr,
                    payload: l4 + udp::HEADER_LEN..l4 + udp_len,
                    tail_sum,
                }
            }
            protocol::ICMP => {
                if hl != ipv4::HEADER_LEN {
                    return self.drop(L2Drop::IpOptionsUnsupported);
                }
                self.handle_icmp(frame, tl, dst)
            }
            _ => self.drop(L2Drop::OtherProtocol),
        }
    }

    fn handle_icmp(&mut self, frame: &mut [u8], total_len: usize, us: Ipv4Addr) -> Ingress {
        let l3 = ethernet::HEADER_LEN;
        let l4 = l3 + ipv4::HEADER_LEN;
        let Ok(icmp) = Icmpv4Packet::new_checked(&frame[l4..l3 + total_len]) else {
            return self.drop(L2Drop::Truncated);
        };
        if icmp.msg_type() != message::ECHO_REQUEST || icmp.msg_code() != 0 {
            return self.drop(L2Drop::IcmpOther);
        }
        if !icmp.verify_checksum() {
            return self.drop(L2Drop::BadIcmpChecksum);
        }
        // Echo reply: swap MACs and addresses, type 8 → 0; everything else (ident, seq,
        // data) stays, so the ICMP checksum is updated incrementally (RFC 1624):
        // HC' = ~(~HC + ~m + m') with m = 0x0800, m' = 0x0000.
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..l3 + total_len]);
        let peer_mac = eth.src_addr();
        eth.set_dst_addr(peer_mac);
        eth.set_src_addr(self.cfg.mac);
        let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
        let peer = ip.src_addr();
        ip.set_src_addr(us);
        ip.set_dst_addr(peer);
        ip.set_hop_limit(DEFAULT_TTL);
        ip.set_flags_frag(false, false, 0);
        ip.fill_checksum();
        let mut icmp = Icmpv4Packet::new_unchecked(ip.payload_mut());
        let old = icmp.checksum();
        icmp.set_msg_type(message::ECHO_REPLY);
        let sum = u32::from(!old) + u32::from(!0x0800u16);
        icmp.set_checksum(!checksum::fold(sum));
        self.stats.echo_replies += 1;
        Ingress::Reply {
            len: l3 + total_len,
        }
    }

    fn learn(&mut self, now: Instant, ip: Ipv4Addr, mac: Address) {
        self.neigh.learn(now, ip, mac);
        self.stats.arp_learned += 1;
    }

    /// Puts a neighbour into the cache as if it had just answered ARP (it expires like any
    /// learned entry unless ARP refreshes it). For benchmarks and static next hops.
    pub fn insert_neighbour(&mut self, now: Instant, ip: Ipv4Addr, mac: Address) {
        self.learn(now, ip, mac);
    }

    /// The MAC cached for `ip`, if resolved and not expired (no side effects).
    #[must_use]
    pub fn neighbour(&self, now: Instant, ip: Ipv4Addr) -> Option<Address> {
        self.neigh.get(now, ip)
    }

    /// The next hop for `dst`: itself when on-link, else the gateway.
    #[must_use]
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if u32::from_ne_bytes(dst.octets()) & self.mask == self.net {
            Some(dst)
        } else {
            self.cfg.gateway
        }
    }

    /// Resolves `next_hop`'s MAC for a packet being sent now; on a miss (or near expiry) the
    /// target is queued for a who-has. Our own addresses resolve to our MAC (hairpin: a
    /// loopback device or a hairpinning switch brings the frame back to us).
    #[inline(always)]
    fn resolve(&mut self, now: Instant, next_hop: Ipv4Addr) -> Option<Address> {
        if let Some(mac) = self.neigh.resolve_fast(now, next_hop) {
            return Some(mac);
        }
        self.resolve_slow(now, next_hop)
    }

    /// [`Self::resolve`] past the last next hop (out of line: once per next hop and refresh).
    #[inline(never)]
    fn resolve_slow(&mut self, now: Instant, next_hop: Ipv4Addr) -> Option<Address> {
        if self.addr_index(next_hop).is_some() {
            return Some(self.cfg.mac);
        }
        self.neigh.resolve(now, next_hop)
    }

    /// Writes Ethernet/IPv4/UDP headers into `buf[..HEADROOM]` for the payload
    /// `buf[HEADROOM..]`, from `src_port` on our address to `dst`. Checksums are computed in
    /// software unless `offload` says the device does them.
    pub fn encap(
        &mut self,
        now: Instant,
        dst: SocketAddrV4,
        src_port: u16,
        buf: &mut [u8],
        offload: TxOffload,
    ) -> Encap {
        self.encap_with(now, dst, src_port, buf, offload, None)
    }

    /// [`Self::encap`], reusing `tail_sum` (an [`Ingress::Udp`]'s) for the software UDP
    /// checksum: the payload after its first [`SUM_SKIP`] bytes must be exactly the bytes
    /// that sum was taken over (same length, untouched); the first bytes are summed afresh.
    pub fn encap_with(
        &mut self,
        now: Instant,
        dst: SocketAddrV4,
        src_port: u16,
        buf: &mut [u8],
        offload: TxOffload,
        tail_sum: Option<u32>,
    ) -> Encap {
        self.encap_from(now, 0, dst, src_port, buf, offload, tail_sum)
    }

    /// [`Self::encap_with`] from our address number `src_addr` ([`Self::addresses`]); an
    /// unknown index is [`Encap::BadBuffer`]. Inlined into the caller's per-packet loop
    /// (the call with seven arguments cost more than most of its body).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn encap_from(
        &mut self,
        now: Instant,
        src_addr: u8,
        dst: SocketAddrV4,
        src_port: u16,
        buf: &mut [u8],
        offload: TxOffload,
        tail_sum: Option<u32>,
    ) -> Encap {
        let si = usize::from(src_addr);
        if si >= self.tx_src.len() {
            self.stats.too_big += 1;
            return Encap::BadBuffer;
        }
        let udp_len = buf.len().wrapping_sub(HEADROOM - udp::HEADER_LEN);
        if buf.len() < HEADROOM || udp_len + ipv4::HEADER_LEN > usize::from(u16::MAX) {
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
        // Headers from the template: copy, patch the per-datagram fields; the IPv4 checksum
        // is the template's sum plus those fields (no pass over the header).
        let (hdr, payload) = buf.split_at_mut(HEADROOM);
        let Ok(hdr) = <&mut [u8; HEADROOM]>::try_from(hdr) else {
            self.stats.too_big += 1;
            return Encap::BadBuffer;
        };
        self.write_headers(hdr, si, mac.0, dst, src_port, payload, offload, tail_sum);
        self.stats.tx_udp += 1;
        Encap::Ready { len }
    }

    /// Writes the next due who-has (broadcast) into `buf` and returns its length
    /// ([`ARP_FRAME_LEN`]); `None` when no target is due or `buf` is too short. Each target
    /// is asked at most once per [`ARP_RETRY`]; targets nobody wanted for [`PENDING_IDLE`]
    /// are forgotten.
    #[must_use]
    pub fn poll_arp_request(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if buf.len() < ARP_FRAME_LEN {
            return None;
        }
        let ip = self.neigh.poll_due(now)?;
        {
            let mut eth = EthernetFrame::new_unchecked(&mut buf[..ARP_FRAME_LEN]);
            eth.set_dst_addr(Address::BROADCAST);
            eth.set_src_addr(self.cfg.mac);
            eth.set_ethertype(ethertype::ARP);
            ArpRepr {
                operation: Operation::Request,
                source_hardware_addr: self.cfg.mac,
                source_protocol_addr: self.cfg.ip,
                target_hardware_addr: Address([0; 6]),
                target_protocol_addr: ip,
            }
            .emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
            self.stats.arp_requests += 1;
        }
        Some(ARP_FRAME_LEN)
    }

    /// Re-queues who-has requests for targets still wanted whose retry period has passed
    /// (call on a housekeeping period: a target whose answer never came is asked again
    /// even if no new packet misses). Cheap: scans the cache once.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.neigh.handle_timeout(now);
    }
}

mod fast;
#[cfg(test)]
mod tests;
mod types;
