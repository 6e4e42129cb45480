//! The types of [`Netstack`](super::Netstack)'s interface: what a received frame becomes
//! ([`Ingress`], [`L2Drop`]), what encapsulation returns ([`Encap`]), the checksum offloads
//! ([`TxOffload`], [`RxOffload`]) and the counters ([`NetStats`]).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;

/// Why a frame was not delivered. Counted per worker in [`NetStats::drops`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum L2Drop {
    /// EtherType neither IPv4 nor ARP (IPv6, LLDP, VLAN-tagged, …), or IP version not 4.
    NotIpv4OrArp,
    /// Not addressed to us: another unicast MAC, or an IPv4 destination other than ours.
    NotForUs,
    /// The IPv4 header checksum is wrong.
    BadIpChecksum,
    /// The UDP checksum is wrong.
    BadUdpChecksum,
    /// The ICMP checksum is wrong.
    BadIcmpChecksum,
    /// An IPv4 fragment (we do not reassemble; RTP is never fragmented).
    Fragment,
    /// An ICMP echo request with IPv4 options (UDP with options is delivered).
    IpOptionsUnsupported,
    /// Shorter than its headers or length fields say.
    Truncated,
    /// ARP that is not a request for our address nor a reply to us, or not Ethernet/IPv4.
    ArpOther,
    /// ICMP other than echo request.
    IcmpOther,
    /// IPv4 carrying neither UDP nor ICMP.
    OtherProtocol,
}

impl L2Drop {
    /// How many reasons there are.
    pub const COUNT: usize = 11;
    /// Every reason, in counter order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::NotIpv4OrArp,
        Self::NotForUs,
        Self::BadIpChecksum,
        Self::BadUdpChecksum,
        Self::BadIcmpChecksum,
        Self::Fragment,
        Self::IpOptionsUnsupported,
        Self::Truncated,
        Self::ArpOther,
        Self::IcmpOther,
        Self::OtherProtocol,
    ];

    /// The counter index.
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short snake_case name for metrics.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::NotIpv4OrArp => "not_ipv4_or_arp",
            Self::NotForUs => "not_for_us",
            Self::BadIpChecksum => "bad_ip_checksum",
            Self::BadUdpChecksum => "bad_udp_checksum",
            Self::BadIcmpChecksum => "bad_icmp_checksum",
            Self::Fragment => "fragment",
            Self::IpOptionsUnsupported => "ip_options_unsupported",
            Self::Truncated => "truncated",
            Self::ArpOther => "arp_other",
            Self::IcmpOther => "icmp_other",
            Self::OtherProtocol => "other_protocol",
        }
    }
}

/// What to do with a received frame (`S`: the sender's address type, `SocketAddrV4` here,
/// `SocketAddrV6` for [`crate::netstack6`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingress<S = SocketAddrV4> {
    /// A UDP datagram for us: `frame[payload]` is the UDP payload.
    Udp {
        /// The sender.
        src: S,
        /// Our port it was sent to.
        dst_port: u16,
        /// Our address it was sent to (an index into [`Netstack::addresses`](super::Netstack::addresses)).
        dst_addr: u8,
        /// The payload's byte range in the frame.
        payload: Range<usize>,
        /// When the UDP checksum was verified in software: the partial one's-complement sum
        /// ([`wire::checksum::sum`]) of the payload after its first [`SUM_SKIP`](super::SUM_SKIP) bytes, for
        /// [`Netstack::encap_with`](super::Netstack::encap_with) to reuse if only those first bytes change.
        tail_sum: Option<u32>,
    },
    /// The frame was rewritten in place into a reply (ARP reply, ICMP echo reply):
    /// transmit `frame[..len]`.
    Reply {
        /// The reply's length.
        len: usize,
    },
    /// Handled (an ARP reply taught the cache); nothing to deliver or send.
    Consumed,
    /// Dropped for this reason (already counted).
    Drop(L2Drop),
}

impl<S> Ingress<S> {
    /// The same verdict with the sender's address converted.
    #[inline]
    pub fn map_src<T>(self, f: impl FnOnce(S) -> T) -> Ingress<T> {
        match self {
            Self::Udp {
                src,
                dst_port,
                dst_addr,
                payload,
                tail_sum,
            } => Ingress::Udp {
                src: f(src),
                dst_port,
                dst_addr,
                payload,
                tail_sum,
            },
            Self::Reply { len } => Ingress::Reply { len },
            Self::Consumed => Ingress::Consumed,
            Self::Drop(r) => Ingress::Drop(r),
        }
    }
}

/// The outcome of [`Netstack::encap`](super::Netstack::encap) (`A`: the next hop's address type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap<A = Ipv4Addr> {
    /// Headers written: send `buf[..len]` (`len` = the whole buffer).
    Ready {
        /// The frame length.
        len: usize,
    },
    /// The next hop's MAC is unknown; a who-has (neighbour solicitation) is queued. Counted
    /// as `arp_pending`.
    NeedArp {
        /// The next hop being resolved.
        next_hop: A,
    },
    /// Off-link destination and no gateway configured. Counted as `no_route`.
    NoRoute,
    /// The buffer is shorter than [`HEADROOM`] or the datagram exceeds 65535 bytes. Counted
    /// as `too_big` (a caller bug, never a peer's doing).
    BadBuffer,
}

/// How the device helps with checksums on transmit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxOffload {
    /// The NIC fills the IPv4 header checksum (the field is left 0).
    pub ipv4_checksum: bool,
    /// The NIC fills the UDP checksum; the field gets the pseudo-header sum, as DPDK's
    /// `RTE_MBUF_F_TX_UDP_CKSUM` requires (`rte_ipv4_phdr_cksum`).
    pub udp_checksum: bool,
}

/// What the device already checked on receive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxOffload {
    /// The NIC verified the UDP checksum as good (`RTE_MBUF_F_RX_L4_CKSUM_GOOD`): it is not
    /// summed again; [`Ingress::Udp`]'s `tail_sum` is then derived from the checksum field
    /// in O(1) (RFC 1624), so the forwarded datagram's checksum is still computed without a
    /// pass over the payload.
    pub udp_checksum_good: bool,
    /// The NIC verified the IPv4 header checksum as good (`RTE_MBUF_F_RX_IP_CKSUM_GOOD`).
    pub ipv4_checksum_good: bool,
    /// The caller will not use [`Ingress::Udp`]'s `tail_sum` (its device fills the UDP
    /// checksum on transmit): when the NIC verified the checksum, it is not derived either.
    pub tail_sum_unused: bool,
}

/// The layer's counters (owned by the worker).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames handed to [`Netstack::handle_frame`](super::Netstack::handle_frame).
    pub rx_frames: u64,
    /// UDP datagrams delivered.
    pub rx_udp: u64,
    /// ARP replies we sent.
    pub arp_replies: u64,
    /// ICMP echo replies we sent.
    pub echo_replies: u64,
    /// ARP requests we emitted.
    pub arp_requests: u64,
    /// Neighbour entries learned or refreshed.
    pub arp_learned: u64,
    /// Encapsulations refused for want of the next hop's MAC.
    pub arp_pending: u64,
    /// Encapsulations refused for want of a route.
    pub no_route: u64,
    /// Encapsulations refused for a bad buffer.
    pub too_big: u64,
    /// Frames encapsulated.
    pub tx_udp: u64,
    /// Dropped frames, indexed by [`L2Drop::index`].
    pub drops: [u64; L2Drop::COUNT],
}

impl NetStats {
    /// The count for one reason.
    #[must_use]
    pub fn dropped(&self, r: L2Drop) -> u64 {
        self.drops[r.index()]
    }
    /// All drops.
    #[must_use]
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}
