//! IPv6 fixed headers (RFC 8200); extension headers are not interpreted (the payload starts
//! right after the 40-byte header, whatever `next_header` says).
//!
//! Contract: after [`Ipv6Packet::check_len`] succeeds, no accessor panics: the buffer holds
//! the 40-byte header and `payload_len` bytes after it. Jumbograms (payload length 0 with a
//! hop-by-hop jumbo option, RFC 2675) are not supported: their payload reads as empty.

use core::fmt;
use core::net::Ipv6Addr;

use crate::{ethernet, Error, Field, Result};

/// Next-header values we use.
pub mod next_header {
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// The hop-by-hop options extension header.
    pub const HOP_BY_HOP: u8 = 0;
}

mod field {
    use crate::Field;
    pub(crate) const VER_TC_FLOW: Field = 0..4;
    pub(crate) const LENGTH: Field = 4..6;
    pub(crate) const NXT_HDR: usize = 6;
    pub(crate) const HOP_LIMIT: usize = 7;
    pub(crate) const SRC_ADDR: Field = 8..24;
    pub(crate) const DST_ADDR: Field = 24..40;
}

/// The IPv6 fixed header length.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// A view of an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn addr(b: &[u8], f: Field) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[f]);
    Ipv6Addr::from(a)
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer and checks it with [`Self::check_len`].
    ///
    /// # Errors
    /// See [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the 40-byte header fits and that `payload_len` bytes follow it (the
    /// buffer may be longer, e.g. Ethernet padding).
    ///
    /// # Errors
    /// [`Error`] otherwise.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < HEADER_LEN + usize::from(self.payload_len()) {
            return Err(Error);
        }
        Ok(())
    }

    /// Returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn word0(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The version field (6 for a valid packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }
    /// The traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        (self.word0() >> 20) as u8
    }
    /// The 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        self.word0() & 0x000f_ffff
    }
    /// The payload length (everything after the fixed header, extension headers included).
    pub fn payload_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::LENGTH.start], b[field::LENGTH.start + 1]])
    }
    /// The type of the header after the fixed header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }
    /// The hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(self.buffer.as_ref(), field::SRC_ADDR)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(self.buffer.as_ref(), field::DST_ADDR)
    }
    /// The payload (`40..40 + payload_len`).
    pub fn payload(&self) -> &[u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn set_word0(&mut self, v: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the version (high nibble).
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[0];
        *b = (*b & 0x0f) | (v << 4);
    }
    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, v: u8) {
        let w = (self.word0() & 0xf00f_ffff) | (u32::from(v) << 20);
        self.set_word0(w);
    }
    /// Sets the flow label (the low 20 bits of `v`).
    pub fn set_flow_label(&mut self, v: u32) {
        let w = (self.word0() & 0xfff0_0000) | (v & 0x000f_ffff);
        self.set_word0(w);
    }
    /// Sets the payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the next header.
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = v;
    }
    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }
    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }
    /// The payload, mutable (`40..40 + payload_len`).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The owned form of an IPv6 fixed header (traffic class and flow label zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source.
    pub src_addr: Ipv6Addr,
    /// Destination.
    pub dst_addr: Ipv6Addr,
    /// The header after the fixed header.
    pub next_header: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Parses a packet: it must pass `check_len` and be version 6. Traffic class and flow
    /// label are ignored.
    ///
    /// # Errors
    /// [`Error`] if the packet is truncated or not version 6.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Self> {
        p.check_len()?;
        if p.version() != 6 {
            return Err(Error);
        }
        Ok(Self {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: usize::from(p.payload_len()),
            hop_limit: p.hop_limit(),
        })
    }

    /// The header length (40).
    #[must_use]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header: version 6, traffic class 0, flow label 0. The buffer must
    /// hold at least `buffer_len()` bytes (and `payload_len` more to use `payload_mut`).
    ///
    /// # Panics
    /// If the buffer is shorter than 40 bytes, or `payload_len` exceeds `u16::MAX`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv6Packet<T>) {
        let len = u16::try_from(self.payload_len).expect("IPv6 payload_len over 65535");
        p.set_word0(0x6000_0000);
        p.set_payload_len(len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
    }
}

/// The solicited-node multicast address `ff02::1:ffXX:XXXX` of `addr` (RFC 4291 §2.7.1): the
/// prefix `ff02::1:ff00:0/104` and the low 24 bits of `addr`.
#[must_use]
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let a = addr.octets();
    let mut o = [0u8; 16];
    o[0] = 0xff;
    o[1] = 0x02;
    o[11] = 0x01;
    o[12] = 0xff;
    o[13..].copy_from_slice(&a[13..]);
    Ipv6Addr::from(o)
}

/// The Ethernet address of an IPv6 multicast address: `33:33` and its last four bytes
/// (RFC 2464 §7).
#[must_use]
pub fn multicast_mac(addr: Ipv6Addr) -> ethernet::Address {
    let a = addr.octets();
    ethernet::Address([0x33, 0x33, a[12], a[13], a[14], a[15]])
}

impl<T: AsRef<[u8]>> fmt::Display for Ipv6Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.check_len().is_err() {
            return f.write_str("IPv6 (truncated)");
        }
        write!(
            f,
            "IPv6 src={} dst={} nxt={} len={} hop_limit={}",
            self.src_addr(),
            self.dst_addr(),
            self.next_header(),
            self.payload_len(),
            self.hop_limit()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udp::UdpPacket;

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    // 2001:db8::1 → 2001:db8::2, hop limit 64, UDP 40000 → 5004 with a 13-byte payload (an
    // RTP header and one odd byte). The UDP checksum 0x8143 was computed outside Rust.
    static UDP6_PACKET: [u8; 61] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x15, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x9c, 0x40, 0x13, 0x8c, 0x00,
        0x15, 0x81, 0x43, 0x80, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xa0, 0xde, 0xad, 0xbe, 0xef,
        0x55,
    ];

    /// The RFC 1071 checksum the slow way: pseudo-header bytes laid out as RFC 8200 §8.1
    /// draws them, then the upper-layer message, summed as 16-bit words in a loop.
    fn naive_checksum(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, msg: &[u8]) -> u16 {
        let mut bytes = std::vec::Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, nh]);
        bytes.extend_from_slice(msg);
        if bytes.len() % 2 == 1 {
            bytes.push(0);
        }
        let mut acc: u32 = 0;
        for w in bytes.chunks(2) {
            acc += u32::from(w[0]) << 8 | u32::from(w[1]);
        }
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn deconstruct_udp6() {
        let p = Ipv6Packet::new_checked(&UDP6_PACKET[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0);
        assert_eq!(p.payload_len(), 21);
        assert_eq!(p.next_header(), next_header::UDP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), SRC);
        assert_eq!(p.dst_addr(), DST);
        assert_eq!(p.payload(), &UDP6_PACKET[40..]);
        assert_eq!(
            Ipv6Repr::parse(&p).unwrap(),
            Ipv6Repr {
                src_addr: SRC,
                dst_addr: DST,
                next_header: next_header::UDP,
                payload_len: 21,
                hop_limit: 64
            }
        );
        let u = UdpPacket::new_checked(p.payload()).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (40000, 5004, 21));
        assert_eq!(u.checksum(), 0x8143);
        let mut zeroed = [0u8; 21];
        zeroed.copy_from_slice(p.payload());
        zeroed[6..8].fill(0);
        assert_eq!(naive_checksum(SRC, DST, next_header::UDP, &zeroed), 0x8143);
        assert!(u.verify_checksum_v6(SRC, DST));
        #[cfg(not(fuzzing))]
        assert!(!u.verify_checksum_v6(DST, DST));
    }

    #[test]
    fn construct_udp6() {
        let mut buf = [0xa5u8; 61];
        let repr = Ipv6Repr {
            src_addr: SRC,
            dst_addr: DST,
            next_header: next_header::UDP,
            payload_len: 21,
            hop_limit: 64,
        };
        let mut p = Ipv6Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        assert_eq!(repr.buffer_len(), HEADER_LEN);
        let mut u = UdpPacket::new_unchecked(p.payload_mut());
        u.set_src_port(40000);
        u.set_dst_port(5004);
        u.set_len(21);
        u.payload_mut().copy_from_slice(&UDP6_PACKET[48..]);
        u.fill_checksum_v6(SRC, DST);
        assert_eq!(buf, UDP6_PACKET);
    }

    #[test]
    fn udp6_checksums_match_the_naive_loop() {
        // Many lengths and contents, including odd lengths and addresses with high bytes.
        let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe12, 0x3456);
        let dst = Ipv6Addr::new(
            0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xfff1,
        );
        let mut buf = [0u8; 300];
        let mut x: u32 = 7;
        for len in 8..buf.len() {
            for b in &mut buf[..len] {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *b = (x >> 16) as u8;
            }
            let mut u = UdpPacket::new_unchecked(&mut buf[..len]);
            u.set_len(len as u16);
            u.fill_checksum_v6(src, dst);
            let c = u.checksum();
            assert!(u.verify_checksum_v6(src, dst), "len {len}");
            buf[6..8].fill(0);
            let n = naive_checksum(src, dst, next_header::UDP, &buf[..len]);
            assert_eq!(c, if n == 0 { 0xffff } else { n }, "len {len}");
        }
    }

    #[test]
    fn udp6_zero_checksum_is_invalid() {
        let mut b = UDP6_PACKET;
        b[46] = 0;
        b[47] = 0;
        let u = UdpPacket::new_unchecked(&b[40..]);
        #[cfg(not(fuzzing))]
        assert!(!u.verify_checksum_v6(SRC, DST));
        // ...while IPv4 treats the same zero as "no checksum".
        let a = core::net::Ipv4Addr::LOCALHOST;
        assert!(u.verify_checksum(a, a));
    }

    #[test]
    fn udp6_computed_zero_is_sent_as_ffff() {
        let mut buf = [0u8; 10];
        let mut u = UdpPacket::new_unchecked(&mut buf[..]);
        u.set_src_port(1);
        u.set_dst_port(2);
        u.set_len(10);
        // Choose the last word so that the one's-complement sum is 0xffff.
        let partial = !naive_checksum(SRC, DST, next_header::UDP, &[0, 1, 0, 2, 0, 10, 0, 0, 0, 0]);
        u.payload_mut()
            .copy_from_slice(&(0xffff - partial).to_be_bytes());
        u.fill_checksum_v6(SRC, DST);
        assert_eq!(u.checksum(), 0xffff);
        assert!(u.verify_checksum_v6(SRC, DST));
    }

    #[test]
    fn setters_round_trip() {
        let mut buf = [0u8; 40];
        let mut p = Ipv6Packet::new_unchecked(&mut buf[..]);
        p.set_version(6);
        p.set_traffic_class(0xb8);
        p.set_flow_label(0xf_edcb);
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 0xb8, 0xf_edcb)
        );
        p.set_flow_label(0xfff_ffff); // extra bits ignored
        p.set_traffic_class(0x01);
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 0x01, 0xf_ffff)
        );
        assert_eq!(buf[..4], [0x60, 0x1f, 0xff, 0xff]);
    }

    #[test]
    fn truncated_and_wrong_version() {
        assert!(Ipv6Packet::new_checked(&UDP6_PACKET[..39]).is_err());
        assert!(Ipv6Packet::new_checked(&UDP6_PACKET[..60]).is_err());
        let mut padded = [0u8; 64];
        padded[..61].copy_from_slice(&UDP6_PACKET);
        let p = Ipv6Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 21);
        let mut b = UDP6_PACKET;
        b[0] = 0x45;
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p), Err(Error));
    }

    #[test]
    fn solicited_node_and_multicast_mac() {
        let sn = solicited_node(SRC);
        assert_eq!(sn, Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 1));
        assert_eq!(
            multicast_mac(sn),
            ethernet::Address([0x33, 0x33, 0xff, 0x00, 0x00, 0x01])
        );
        let ll = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe12, 0x3456);
        assert_eq!(
            solicited_node(ll),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff12, 0x3456)
        );
        // All-nodes ff02::1 → 33:33:00:00:00:01.
        assert_eq!(
            multicast_mac(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)),
            ethernet::Address([0x33, 0x33, 0, 0, 0, 1])
        );
    }
}
