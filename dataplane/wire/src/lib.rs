//! Zero-copy views of the packets callbridge's data plane touches: Ethernet, IPv4, UDP, RTP
//! and RTCP.
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

pub mod ethernet;
pub mod ipv4;
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
    /// Sums `data` as big-endian 16-bit words (an odd last byte is padded with zero) without
    /// folding the carries.
    #[must_use]
    pub fn sum(data: &[u8]) -> u32 {
        let mut acc: u32 = 0;
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
        }
        if let [b] = chunks.remainder() {
            acc = acc.wrapping_add(u32::from(*b) << 8);
        }
        acc
    }

    /// Folds a 32-bit accumulator into 16 bits (end-around carry).
    #[must_use]
    pub fn fold(mut acc: u32) -> u16 {
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    /// The one's complement of the folded sum of several accumulators.
    #[must_use]
    pub fn combine(parts: &[u32]) -> u16 {
        let mut acc: u64 = 0;
        for p in parts {
            acc += u64::from(*p);
        }
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    /// The IPv4 pseudo-header sum (RFC 768) for a UDP datagram of `udp_len` bytes.
    #[must_use]
    pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], protocol: u8, udp_len: u16) -> u32 {
        sum(&src) + sum(&dst) + u32::from(protocol) + u32::from(udp_len)
    }
}
