//! Zero-copy views of the packets callbridge's data plane touches: Ethernet, ARP, IPv4,
//! ICMPv4, IPv6, ICMPv6 (echo and neighbour discovery), UDP, RTP and RTCP.
//!
//! The design follows smoltcp's `wire` module. Every protocol has:
//! - a view `XxxPacket<T: AsRef<[u8]>>` over a borrowed (or owned) buffer, with
//!   `new_unchecked` (no checks), `check_len` (validates the length fields) and
//!   `new_checked` (both). **Contract:** once `check_len` has succeeded, no accessor panics.
//!   Getters decode big-endian; setters exist only for `T: AsMut<[u8]>` and edit in place.
//! - an owned `XxxRepr` with `parse`, `emit` and `buffer_len`, for the slow path and tests.
//!
//! Errors are the single zero-sized [`Error`], cheap enough for the per-packet path.
//! Checksum verification is skipped under `cfg(fuzzing)` so fuzzers reach deeper code.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(test)]
extern crate std;

use core::fmt;

pub mod arp;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod rtcp;
pub mod rtp;
pub mod udp;

/// A packet could not be parsed: it is too short for its headers, or a field holds a value
/// the view cannot represent. Zero-sized on purpose (smoltcp `wire::Error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Error;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("truncated or malformed packet")
    }
}

impl core::error::Error for Error {}

/// The result type of this crate.
pub type Result<T> = core::result::Result<T, Error>;

/// A byte range inside a header.
pub(crate) type Field = core::ops::Range<usize>;
/// A byte range from an offset to the end of the buffer.
pub(crate) type Rest = core::ops::RangeFrom<usize>;

/// The Internet checksum (RFC 1071) arithmetic.
pub mod checksum {
    /// Sums `data` as big-endian 16-bit words (an odd last byte is padded with zero) and
    /// folds the sum to 16 bits: the result is congruent to the word sum modulo `0xffff`
    /// (and zero only for all-zero data), which is all [`fold`] and [`combine`] need.
    ///
    /// Thirty-two bytes per step (RFC 1071 §2): the sum is independent of grouping, since a carry
    /// out of 16 bits is worth one in the one's-complement sum (`2^16 ≡ 1 mod 0xffff`), so
    /// 64-bit words are added into a 128-bit accumulator whose high half is added back at
    /// the end (`2^64 ≡ 1` too); and it is
    /// independent of byte order, so the words are loaded in native (little-endian) order and
    /// only the folded 16-bit result is byte-swapped.
    #[inline]
    #[must_use]
    pub fn sum(data: &[u8]) -> u32 {
        let acc = sum_le(data);
        // Fold 33 → 16 bits in fixed steps: < 0x2ffff, <= 0x10001, <= 0xffff.
        let mut f = (acc & 0xffff) + (acc >> 16);
        f = (f & 0xffff) + (f >> 16);
        f = (f & 0xffff) + (f >> 16);
        u32::from((f as u16).swap_bytes())
    }

    /// [`sum`] before its last folds and its byte swap: the one's-complement sum of `data`'s
    /// 16-bit words read little-endian (so a big-endian wire word counts byte-swapped, which
    /// the sum's byte-order independence allows, RFC 1071 §2(B)), below `2^33`, so that
    /// other words read the same way can be added before one fold or one [`sums_to_zero`]
    /// test.
    #[inline]
    #[must_use]
    pub fn sum_le(data: &[u8]) -> u64 {
        #[inline(always)]
        fn add(a: u64, b: u64) -> u64 {
            let (s, carry) = a.overflowing_add(b);
            // With a carry, s <= 2^64 - 2, so adding it back cannot overflow.
            s + u64::from(carry)
        }
        #[inline(always)]
        fn word(c: &[u8]) -> u64 {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        }
        // A 128-bit accumulator: each 64-bit word is one add and one add-with-carry into
        // the high half (the carries, worth 2^64 ≡ 1 each, are folded in at the end).
        let mut wide: u128 = 0;
        let mut chunks = data.chunks_exact(32);
        for c in &mut chunks {
            wide += u128::from(word(&c[0..8]));
            wide += u128::from(word(&c[8..16]));
            wide += u128::from(word(&c[16..24]));
            wide += u128::from(word(&c[24..32]));
        }
        // The last 0..=31 bytes: up to three 8-byte words, then at most one 4-, 2- and
        // 1-byte piece, each loaded as little-endian words (an odd last byte is a word's low
        // byte: its high byte once swapped); the small pieces add up to less than 2^33.
        let mut rest = chunks.remainder();
        while rest.len() >= 8 {
            wide += u128::from(word(&rest[..8]));
            rest = &rest[8..];
        }
        let mut small = 0u64;
        if rest.len() >= 4 {
            small += u64::from(u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]));
            rest = &rest[4..];
        }
        if rest.len() >= 2 {
            small += u64::from(u16::from_le_bytes([rest[0], rest[1]]));
            rest = &rest[2..];
        }
        if let [x] = rest {
            small += u64::from(*x);
        }
        let (lo, hi) = (wide as u64, (wide >> 64) as u64);
        let acc = add(add(lo, hi), small);
        // 64 → 33 bits.
        (acc >> 32) + (acc & 0xffff_ffff)
    }

    /// [`sum_le`] of a fixed-size block (`N / 4` 32-bit loads into a 64-bit accumulator,
    /// which cannot overflow; not folded: below `2^38` for a block under 64 bytes).
    #[inline(always)]
    #[must_use]
    pub fn sum_fixed_le<const N: usize>(data: &[u8; N]) -> u64 {
        let mut acc = 0u64;
        let mut i = 0;
        while i + 4 <= N {
            acc += u64::from(u32::from_le_bytes([
                data[i],
                data[i + 1],
                data[i + 2],
                data[i + 3],
            ]));
            i += 4;
        }
        if i + 2 <= N {
            acc += u64::from(u16::from_le_bytes([data[i], data[i + 1]]));
            i += 2;
        }
        if i < N {
            acc += u64::from(data[i]);
        }
        acc
    }

    /// Whether an unfolded one's-complement sum ([`sum_le`], [`sum_fixed_le`], plus other
    /// words) of data that is not all zero is "zero", i.e. folds to `0xffff`: what a header
    /// or datagram with a correct checksum sums to. One multiply and compare (a
    /// divisibility test by `0xffff`, since `2^16 ≡ 1`), no folding.
    #[inline(always)]
    #[must_use]
    pub fn sums_to_zero(acc: u64) -> bool {
        acc.is_multiple_of(0xffff)
    }

    /// [`sum`] of a fixed-size block (a header, the start of a payload): the same result,
    /// without the loop and the remainder's branches (a known `N` unrolls into `N / 4`
    /// 32-bit loads added into a 64-bit accumulator, which cannot overflow).
    #[inline(always)]
    #[must_use]
    pub fn sum_fixed<const N: usize>(data: &[u8; N]) -> u32 {
        let acc = sum_fixed_le(data);
        let mut f = (acc >> 32) + (acc & 0xffff_ffff);
        f = (f & 0xffff) + (f >> 16);
        f = (f & 0xffff) + (f >> 16);
        f = (f & 0xffff) + (f >> 16);
        u32::from((f as u16).swap_bytes())
    }

    /// Folds a 32-bit accumulator into 16 bits (end-around carry).
    #[must_use]
    #[inline]
    pub fn fold(acc: u32) -> u16 {
        // Fixed steps, no loop: <= 0x1fffe, <= 0x10000, <= 0xffff.
        let mut f = (acc & 0xffff) + (acc >> 16);
        f = (f & 0xffff) + (f >> 16);
        f = (f & 0xffff) + (f >> 16);
        f as u16
    }

    /// The one's complement of the folded sum of several accumulators.
    #[must_use]
    #[inline]
    pub fn combine(parts: &[u32]) -> u16 {
        let mut acc: u64 = 0;
        for p in parts {
            acc += u64::from(*p);
        }
        // 64 → 32 bits (< 2^33 for fewer than 2^32 parts), then the fixed 16-bit folds.
        let mut f = (acc >> 32) + (acc & 0xffff_ffff);
        f = (f & 0xffff) + (f >> 16);
        f = (f & 0xffff) + (f >> 16);
        f = (f & 0xffff) + (f >> 16);
        !(f as u16)
    }

    /// The IPv4 pseudo-header sum (RFC 768) for a UDP datagram of `udp_len` bytes.
    #[must_use]
    pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], protocol: u8, udp_len: u16) -> u32 {
        sum(&src) + sum(&dst) + u32::from(protocol) + u32::from(udp_len)
    }

    /// The IPv6 pseudo-header sum (RFC 8200 §8.1): source, destination, the 32-bit
    /// upper-layer length and the next header, in the same form as [`sum`] (add it to the
    /// message's [`sum`] with [`combine`] or [`fold`]).
    #[must_use]
    pub fn pseudo_header_v6(
        src: &core::net::Ipv6Addr,
        dst: &core::net::Ipv6Addr,
        next_header: u8,
        upper_len: u32,
    ) -> u32 {
        // Each `sum` is at most 0xffff, so the total stays far below 2^32.
        sum(&src.octets())
            + sum(&dst.octets())
            + (upper_len >> 16)
            + (upper_len & 0xffff)
            + u32::from(next_header)
    }
}

#[cfg(test)]
mod contract_tests {
    //! The view contract: once `check_len` passes, no accessor panics. Exercised on random
    //! buffers (deterministic xorshift) plus mutations of valid packets.

    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn buffers(mut f: impl FnMut(&[u8])) {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut buf = [0u8; 96];
        for round in 0..200_000 {
            let len = (rng.next() % 96) as usize;
            for b in &mut buf[..len] {
                *b = rng.next() as u8;
            }
            // Bias towards plausible first bytes so deeper paths are reached.
            if len > 0 && round % 2 == 0 {
                buf[0] = 0x80 | (buf[0] & 0x3f);
            }
            if len > 3 && round % 3 == 0 {
                buf[2] = 0;
                buf[3] &= 0x0f;
            }
            f(&buf[..len]);
        }
    }

    #[test]
    fn fold_and_combine_match_the_looping_fold() {
        fn slow(mut acc: u64) -> u16 {
            while acc >> 16 != 0 {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            acc as u16
        }
        let mut rng = Rng(0x005e_ed0f_f01d);
        let edge = [
            0u32,
            1,
            0xfffe,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0xffff_0000,
            u32::MAX,
        ];
        for i in 0..100_000 {
            let a = if i < edge.len() {
                edge[i]
            } else {
                rng.next() as u32
            };
            assert_eq!(checksum::fold(a), slow(u64::from(a)), "fold {a:#x}");
            let mut buf = [0u32; 6];
            for (k, p) in buf.iter_mut().enumerate() {
                *p = if i % 3 == 0 {
                    edge[(k + i) % edge.len()]
                } else {
                    rng.next() as u32
                };
            }
            let parts = &buf[..i % 7];
            let total: u64 = parts.iter().map(|&p| u64::from(p)).sum();
            assert_eq!(checksum::combine(parts), !slow(total), "combine {parts:x?}");
        }
    }

    #[test]
    fn little_endian_sums_test_zero_like_the_folded_ones() {
        use super::checksum::{fold, sum, sum_fixed_le, sum_le, sums_to_zero};
        let mut x = 0x1234_5678_9abc_def0u64;
        for len in [20usize, 21, 27, 28, 64, 172, 188, 1500] {
            for _ in 0..200 {
                let mut buf = [0u8; 1500];
                for b in &mut buf[..len] {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = x as u8;
                }
                let d = &mut buf[..len];
                // Half the time, make the first word the checksum of the rest.
                if x & 1 == 0 {
                    d[0] = 0;
                    d[1] = 0;
                    let c = !fold(sum(d));
                    d[..2].copy_from_slice(&c.to_be_bytes());
                }
                let folded_zero = fold(sum(d)) == 0xffff;
                assert_eq!(sums_to_zero(sum_le(d)), folded_zero, "len {len}");
                // A word added in either domain: the same test.
                let w = 0x0011u16;
                let be = fold(sum(d) + u32::from(w)) == 0xffff;
                let le = sums_to_zero(sum_le(d) + u64::from(w.swap_bytes()));
                assert_eq!(le, be);
            }
        }
        let h: [u8; 21] = core::array::from_fn(|i| (i * 37 + 5) as u8);
        assert_eq!(sum_fixed_le(&h) % 0xffff, sum_le(&h) % 0xffff);
    }

    #[test]
    fn wide_checksum_sum_folds_like_the_16_bit_one() {
        fn naive(data: &[u8]) -> u16 {
            let mut acc: u64 = 0;
            for c in data.chunks(2) {
                acc += u64::from(c[0]) << 8 | u64::from(*c.get(1).unwrap_or(&0));
            }
            while acc >> 16 != 0 {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            acc as u16
        }
        let mut rng = Rng(0x0bad_cafe_dead_beef);
        let mut buf = [0u8; 1600];
        for round in 0..20_000 {
            let len = (rng.next() % 1600) as usize;
            let fill = round % 4;
            for b in &mut buf[..len] {
                *b = match fill {
                    0 => 0xff,
                    1 => 0,
                    _ => rng.next() as u8,
                };
            }
            let d = &buf[..len];
            assert_eq!(
                checksum::fold(checksum::sum(d)),
                naive(d),
                "len {len} fill {fill}"
            );
        }
    }

    #[test]
    fn sum_fixed_matches_sum() {
        let mut rng = Rng(0x5eed_0ff1_ed00_0001);
        for _ in 0..2000 {
            let mut b = [0u8; 23];
            for x in &mut b {
                *x = rng.next() as u8;
            }
            assert_eq!(checksum::sum_fixed(&b), checksum::sum(&b));
            let h: &[u8; 20] = b.first_chunk().unwrap();
            assert_eq!(checksum::sum_fixed(h), checksum::sum(h));
            let h: &[u8; 12] = b.first_chunk().unwrap();
            assert_eq!(checksum::sum_fixed(h), checksum::sum(h));
            let h: &[u8; 6] = b.first_chunk().unwrap();
            assert_eq!(checksum::sum_fixed(h), checksum::sum(h));
        }
        assert_eq!(
            checksum::sum_fixed(&[0xffu8; 20]),
            checksum::sum(&[0xffu8; 20])
        );
        assert_eq!(checksum::sum_fixed(&[0u8; 12]), 0);
    }

    #[test]
    fn pseudo_header_v6_matches_the_naive_layout() {
        // RFC 8200 §8.1 drawn as bytes (src, dst, 32-bit length, 3 zero bytes, next header),
        // summed as 16-bit words; lengths above 16 bits exercise the upper length word.
        let src = core::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0xffff, 0xffff, 0xffff, 0xffff);
        let dst = core::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 1);
        for (len, nh) in [
            (0u32, 58u8),
            (8, 17),
            (0xffff, 17),
            (0x1_0000, 58),
            (u32::MAX, 0xff),
        ] {
            let mut bytes = [0u8; 40];
            bytes[..16].copy_from_slice(&src.octets());
            bytes[16..32].copy_from_slice(&dst.octets());
            bytes[32..36].copy_from_slice(&len.to_be_bytes());
            bytes[39] = nh;
            let mut acc: u64 = 0;
            for w in bytes.chunks(2) {
                acc += u64::from(w[0]) << 8 | u64::from(w[1]);
            }
            let ph = checksum::pseudo_header_v6(&src, &dst, nh, len);
            assert_eq!(
                checksum::combine(&[ph]),
                checksum::combine(&[acc as u32]),
                "{len}"
            );
            assert_eq!(
                checksum::combine(&[ph]),
                checksum::combine(&[checksum::sum(&bytes)])
            );
        }
    }

    #[test]
    fn rtp_accessors_never_panic_after_check_len() {
        buffers(|b| {
            if let Ok(p) = rtp::RtpPacket::new_checked(b) {
                let _ = (
                    p.version(),
                    p.marker(),
                    p.payload_type(),
                    p.sequence_number(),
                );
                let _ = (p.timestamp(), p.ssrc(), p.extension_data(), p.header_len());
                let _ = (p.padding_len(), p.payload_range(), p.payload().len());
                for i in 0..usize::from(p.csrc_count()) {
                    let _ = p.csrc(i);
                }
                let _ = rtp::RtpRepr::parse(&p);
            }
        });
    }

    #[test]
    fn rtcp_iteration_never_panics() {
        buffers(|b| {
            let _ = rtcp::check_compound(b);
            for p in rtcp::iter_compound(b).flatten() {
                let _ = (
                    p.version(),
                    p.count(),
                    p.packet_type(),
                    p.ssrc(),
                    p.body().len(),
                );
                let _ = rtcp::RtcpRepr::parse(&p);
            }
        });
    }

    #[test]
    fn udp_ipv4_ethernet_accessors_never_panic_after_check_len() {
        buffers(|b| {
            if let Ok(p) = udp::UdpPacket::new_checked(b) {
                let _ = (p.src_port(), p.dst_port(), p.payload().len());
                let a = core::net::Ipv4Addr::new(10, 0, 0, 1);
                let _ = p.verify_checksum(a, a);
                let _ = udp::UdpRepr::parse(&p, a, a);
            }
            if let Ok(p) = ipv4::Ipv4Packet::new_checked(b) {
                let _ = (
                    p.src_addr(),
                    p.dst_addr(),
                    p.payload().len(),
                    p.verify_checksum(),
                );
                let _ = ipv4::Ipv4Repr::parse(&p);
            }
            if let Ok(p) = arp::ArpPacket::new_checked(b) {
                let _ = (
                    p.operation(),
                    p.source_hardware_addr(),
                    p.target_protocol_addr(),
                );
                let _ = arp::ArpRepr::parse(&p);
            }
            if let Ok(p) = icmpv4::Icmpv4Packet::new_checked(b) {
                let _ = (
                    p.msg_type(),
                    p.echo_ident(),
                    p.data().len(),
                    p.verify_checksum(),
                );
                let _ = icmpv4::Icmpv4Repr::parse(&p);
            }
            if let Ok(p) = ipv6::Ipv6Packet::new_checked(b) {
                let _ = (
                    p.version(),
                    p.traffic_class(),
                    p.flow_label(),
                    p.next_header(),
                );
                let _ = (p.hop_limit(), p.src_addr(), p.dst_addr(), p.payload().len());
                let _ = ipv6::Ipv6Repr::parse(&p);
                let a = p.src_addr();
                let _ = (ipv6::solicited_node(a), ipv6::multicast_mac(a));
            }
            if let Ok(p) = udp::UdpPacket::new_checked(b) {
                let a = core::net::Ipv6Addr::LOCALHOST;
                let _ = p.verify_checksum_v6(a, a);
            }
            if let Ok(p) = icmpv6::Icmpv6Packet::new_checked(b) {
                let a = core::net::Ipv6Addr::LOCALHOST;
                let _ = (
                    p.msg_type(),
                    p.msg_code(),
                    p.checksum(),
                    p.verify_checksum(a, a),
                );
                let _ = (p.echo_ident(), p.echo_seq_no(), p.echo_data().len());
                let _ = (p.ndp_target(), p.na_flags(), p.ndp_lladdr_option(1));
                let _ = p.ndp_lladdr_option(2);
            }
            // The same bytes behind a well-formed NS header, so the option walk sees them.
            if b.len() >= 4 {
                let mut ns = [0u8; 24 + 96];
                ns[0] = icmpv6::message::NEIGHBOR_SOLICIT;
                ns[24..24 + b.len()].copy_from_slice(b);
                let p = icmpv6::Icmpv6Packet::new_checked(&ns[..24 + b.len()]).unwrap();
                let _ = (
                    p.ndp_lladdr_option(1),
                    p.ndp_lladdr_option(2),
                    p.ndp_target(),
                );
            }
            if let Ok(f) = ethernet::EthernetFrame::new_checked(b) {
                let _ = (f.src_addr(), f.dst_addr(), f.ethertype(), f.payload().len());
            }
        });
    }
}
