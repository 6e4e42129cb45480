//! The L3 a DPDK port runs: the IPv4 [`Netstack`] or the IPv6 [`Netstack6`] (one family per
//! data plane, as all media addresses share `media.address`'s family). One `match` per frame
//! picks the family; everything after it is the family's own code.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use wire::ethernet::Address;

use crate::netstack::{
    udp_dst_port, Encap, Ingress, NetConfig, NetStats, Netstack, RxOffload, TxOffload,
    ARP_FRAME_LEN, HEADROOM,
};
use crate::netstack6::{udp_dst_port6, NetConfig6, Netstack6, HEADROOM6, NDP_FRAME_LEN};

/// The port's L3. One per worker, built once and never moved on the per-packet path, so the
/// size difference between the variants costs nothing (boxing would add an indirection per
/// frame).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum L3 {
    /// IPv4: ARP, ICMP echo, UDP.
    V4(Netstack),
    /// IPv6: NDP, ICMPv6 echo, UDP.
    V6(Netstack6),
}

impl From<NetConfig> for L3 {
    fn from(c: NetConfig) -> Self {
        Self::V4(Netstack::new(c))
    }
}

impl From<NetConfig6> for L3 {
    fn from(c: NetConfig6) -> Self {
        Self::V6(Netstack6::new(c))
    }
}

/// The outcome of [`L3::encap`], family-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Headers written; send it.
    Ready,
    /// The next hop is being resolved (a request is queued); the datagram was dropped.
    NeedNeighbour,
    /// Dropped: no route, a bad buffer, or a peer of the other family (counted).
    Dropped,
}

impl L3 {
    /// Bytes of headers in front of a UDP payload.
    #[inline]
    #[must_use]
    pub fn headroom(&self) -> usize {
        match self {
            Self::V4(_) => HEADROOM,
            Self::V6(_) => HEADROOM6,
        }
    }

    /// The length of an ARP request / neighbour solicitation frame.
    #[must_use]
    pub fn request_len(&self) -> usize {
        match self {
            Self::V4(_) => ARP_FRAME_LEN,
            Self::V6(_) => NDP_FRAME_LEN,
        }
    }

    /// Whether this is IPv4 (checksum offload flags apply to IPv4 frames only).
    #[must_use]
    pub fn is_v4(&self) -> bool {
        matches!(self, Self::V4(_))
    }

    /// Our addresses, index = media address.
    #[must_use]
    pub fn addresses(&self) -> Vec<IpAddr> {
        match self {
            Self::V4(n) => n.addresses().iter().map(|&a| IpAddr::V4(a)).collect(),
            Self::V6(n) => n.addresses().iter().map(|&a| IpAddr::V6(a)).collect(),
        }
    }

    /// Owns the further media addresses `extra` too; addresses of the other family are
    /// ignored (the data plane refuses mixed families before this).
    pub fn add_addresses(&mut self, extra: &[IpAddr]) {
        match self {
            Self::V4(n) => {
                let v: Vec<_> = extra
                    .iter()
                    .filter_map(|a| match a {
                        IpAddr::V4(a) => Some(*a),
                        IpAddr::V6(_) => None,
                    })
                    .collect();
                n.add_addresses(&v);
            }
            Self::V6(n) => {
                let v: Vec<_> = extra
                    .iter()
                    .filter_map(|a| match a {
                        IpAddr::V6(a) => Some(*a),
                        IpAddr::V4(_) => None,
                    })
                    .collect();
                n.add_addresses(&v);
            }
        }
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> NetStats {
        match self {
            Self::V4(n) => n.stats(),
            Self::V6(n) => n.stats(),
        }
    }

    /// The UDP destination port of a frame to one of our addresses (see
    /// [`udp_dst_port`]), for steering between workers.
    #[inline]
    #[must_use]
    pub fn peek_port(&self, frame: &[u8]) -> Option<u16> {
        match self {
            Self::V4(n) => udp_dst_port(frame, n.addresses()),
            Self::V6(n) => udp_dst_port6(frame, n.addresses()),
        }
    }

    /// Classifies a received frame.
    #[inline]
    pub fn handle_frame(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        rx: RxOffload,
    ) -> Ingress<SocketAddr> {
        match self {
            Self::V4(n) => n.handle_frame_with(now, frame, rx).map_src(SocketAddr::V4),
            Self::V6(n) => n.handle_frame_with(now, frame, rx).map_src(SocketAddr::V6),
        }
    }

    /// Encapsulates a datagram from our media address `src_addr`, port `src_port`, to `dst`
    /// in `buf` (headers in its first [`Self::headroom`] bytes).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn encap(
        &mut self,
        now: Instant,
        src_addr: u8,
        dst: SocketAddr,
        src_port: u16,
        buf: &mut [u8],
        offload: TxOffload,
        tail_sum: Option<u32>,
    ) -> Sent {
        match (self, dst) {
            (Self::V4(n), SocketAddr::V4(d)) => {
                match n.encap_from(now, src_addr, d, src_port, buf, offload, tail_sum) {
                    Encap::Ready { .. } => Sent::Ready,
                    Encap::NeedArp { .. } => Sent::NeedNeighbour,
                    Encap::NoRoute | Encap::BadBuffer => Sent::Dropped,
                }
            }
            (Self::V6(n), SocketAddr::V6(d)) => {
                match n.encap_from(now, src_addr, d, src_port, buf, tail_sum) {
                    Encap::Ready { .. } => Sent::Ready,
                    Encap::NeedArp { .. } => Sent::NeedNeighbour,
                    Encap::NoRoute | Encap::BadBuffer => Sent::Dropped,
                }
            }
            _ => Sent::Dropped,
        }
    }

    /// The IPv4 stack, for the relay's fast lane ([`crate::netstack::Netstack::lane_frame`]
    /// and its helpers; IPv6 frames take the full path).
    #[cfg(feature = "dpdk")]
    #[inline(always)]
    pub(crate) fn v4(&self) -> Option<&Netstack> {
        match self {
            Self::V4(n) => Some(n),
            Self::V6(_) => None,
        }
    }

    /// [`Self::v4`], mutable.
    #[cfg(feature = "dpdk")]
    #[inline(always)]
    pub(crate) fn v4_mut(&mut self) -> Option<&mut Netstack> {
        match self {
            Self::V4(n) => Some(n),
            Self::V6(_) => None,
        }
    }

    /// Writes the next due ARP request / neighbour solicitation into `buf`.
    pub fn poll_request(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        match self {
            Self::V4(n) => n.poll_arp_request(now, buf),
            Self::V6(n) => n.poll_ns(now, buf),
        }
    }

    /// Housekeeping.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            Self::V4(n) => n.handle_timeout(now),
            Self::V6(n) => n.handle_timeout(now),
        }
    }

    /// See [`Netstack::set_share_learned`].
    pub fn set_share_learned(&mut self, on: bool) {
        match self {
            Self::V4(n) => n.set_share_learned(on),
            Self::V6(n) => n.set_share_learned(on),
        }
    }

    /// See [`Netstack::take_learned`].
    pub fn take_learned(&mut self) -> Option<(IpAddr, Address)> {
        match self {
            Self::V4(n) => n.take_learned().map(|(a, m)| (IpAddr::V4(a), m)),
            Self::V6(n) => n.take_learned().map(|(a, m)| (IpAddr::V6(a), m)),
        }
    }

    /// Puts a neighbour into the cache (one of the other family is ignored).
    pub fn insert_neighbour(&mut self, now: Instant, ip: IpAddr, mac: Address) {
        match (self, ip) {
            (Self::V4(n), IpAddr::V4(a)) => n.insert_neighbour(now, a, mac),
            (Self::V6(n), IpAddr::V6(a)) => n.insert_neighbour(now, a, mac),
            _ => {}
        }
    }
}
