//! RTCP packets (RFC 3550 §6.4) and compound packets (§6.1).
//!
//! ```text
//!  0                   1                   2                   3
//! |V=2|P|    RC   |   PT=SR=200   |             length            |
//! |                         SSRC of sender                        |
//! ```
//!
//! `length` counts 32-bit words minus one, so one packet spans `(length + 1) * 4` bytes.
//!
//! Contract: after [`RtcpPacket::check_len`] succeeds, no accessor panics: the 4-byte common
//! header fits and the buffer holds at least `(length + 1) * 4` bytes. The sender
//! SSRC is optional (a BYE with no sources has none), so [`RtcpPacket::ssrc`] returns an
//! `Option`. [`check_compound`] validates a whole compound packet as the relay does: every
//! packet version 2, lengths tiling the buffer exactly, padding only on the last one. It does
//! not insist on SR/RR first, so reduced-size RTCP (RFC 5506) passes.

use core::fmt;

use crate::{Error, Result};

/// RTCP packet types.
pub mod packet_type {
    /// Sender report.
    pub const SR: u8 = 200;
    /// Receiver report.
    pub const RR: u8 = 201;
    /// Source description.
    pub const SDES: u8 = 202;
    /// Goodbye.
    pub const BYE: u8 = 203;
    /// Application-defined.
    pub const APP: u8 = 204;
    /// Transport-layer feedback (RFC 4585).
    pub const RTPFB: u8 = 205;
    /// Payload-specific feedback (RFC 4585).
    pub const PSFB: u8 = 206;
    /// Extended report (RFC 3611).
    pub const XR: u8 = 207;
}

mod field {
    use crate::Field;
    pub(crate) const VPRC: usize = 0;
    pub(crate) const PT: usize = 1;
    pub(crate) const LENGTH: Field = 2..4;
    pub(crate) const SSRC: Field = 4..8;
}

/// The common header length.
pub const HEADER_LEN: usize = field::LENGTH.end;

/// A view of one RTCP packet (the first in the buffer, for a compound packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RtcpPacket<T> {
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

    /// Checks that the common header fits and the buffer holds the whole packet.
    ///
    /// # Errors
    /// [`Error`] otherwise.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN || b.len() < self.packet_len() {
            return Err(Error);
        }
        if self.padding() {
            let last = b[self.packet_len() - 1];
            if last == 0 || usize::from(last) > self.packet_len() - HEADER_LEN {
                return Err(Error);
            }
        }
        Ok(())
    }

    /// Returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version (2).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VPRC] >> 6
    }
    /// The padding bit.
    pub fn padding(&self) -> bool {
        self.buffer.as_ref()[field::VPRC] & 0x20 != 0
    }
    /// The report / source count (5 bits; the FMT field for feedback packets).
    pub fn count(&self) -> u8 {
        self.buffer.as_ref()[field::VPRC] & 0x1f
    }
    /// The packet type.
    pub fn packet_type(&self) -> u8 {
        self.buffer.as_ref()[field::PT]
    }
    /// The length field (32-bit words minus one).
    pub fn length(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }
    /// This packet's length in bytes, `(length + 1) * 4`.
    pub fn packet_len(&self) -> usize {
        (usize::from(self.length()) + 1) * 4
    }
    /// The SSRC of the sender (first word after the header), if the packet has one.
    pub fn ssrc(&self) -> Option<u32> {
        if self.packet_len() < field::SSRC.end {
            return None;
        }
        let b = &self.buffer.as_ref()[field::SSRC];
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Everything after the common header up to the end of this packet (padding included).
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.packet_len()]
    }

    /// The reception report blocks of an SR or RR (RFC 3550 §6.4.1/§6.4.2): the RC blocks
    /// after the sender SSRC (and, in an SR, the 20-byte sender info). Other packet types
    /// have none; blocks that do not fit in the packet are not returned.
    pub fn report_blocks(&self) -> impl Iterator<Item = ReportBlock<'_>> {
        let start = match self.packet_type() {
            packet_type::SR => field::SSRC.end + SENDER_INFO_LEN,
            packet_type::RR => field::SSRC.end,
            _ => usize::MAX,
        };
        let end = self.packet_len();
        let buf = self.buffer.as_ref();
        let rc = usize::from(self.count());
        (0..rc).map_while(move |i| {
            let at = start.checked_add(i * REPORT_BLOCK_LEN)?;
            let block = buf.get(at..at.checked_add(REPORT_BLOCK_LEN)?)?;
            (at + REPORT_BLOCK_LEN <= end).then_some(ReportBlock(block))
        })
    }
}

/// The sender info of an SR (NTP and RTP timestamps, packet and octet counts).
pub const SENDER_INFO_LEN: usize = 20;
/// One reception report block.
pub const REPORT_BLOCK_LEN: usize = 24;

/// One reception report block (RFC 3550 §6.4.1): what a receiver says about one source it
/// hears. Always [`REPORT_BLOCK_LEN`] bytes, so no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock<'a>(&'a [u8]);

impl ReportBlock<'_> {
    fn word(&self, at: usize) -> u32 {
        u32::from_be_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]])
    }
    /// The source the block is about.
    #[must_use]
    pub fn ssrc(&self) -> u32 {
        self.word(0)
    }
    /// Fraction of packets lost since the previous report, in 1/256.
    #[must_use]
    pub fn fraction_lost(&self) -> u8 {
        self.0[4]
    }
    /// Cumulative packets lost (24-bit signed: duplicates can make it negative).
    #[must_use]
    pub fn cumulative_lost(&self) -> i32 {
        let raw = self.word(4) & 0x00ff_ffff;
        // Sign-extend 24 bits.
        ((raw << 8) as i32) >> 8
    }
    /// Extended highest sequence number received.
    #[must_use]
    pub fn highest_seq(&self) -> u32 {
        self.word(8)
    }
    /// Interarrival jitter, in timestamp units.
    #[must_use]
    pub fn jitter(&self) -> u32 {
        self.word(12)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RtcpPacket<T> {
    /// Sets version 2, padding and count.
    pub fn set_first_byte(&mut self, padding: bool, count: u8) {
        self.buffer.as_mut()[field::VPRC] = (2 << 6) | (u8::from(padding) << 5) | (count & 0x1f);
    }
    /// Sets the packet type.
    pub fn set_packet_type(&mut self, pt: u8) {
        self.buffer.as_mut()[field::PT] = pt;
    }
    /// Sets the length field.
    pub fn set_length(&mut self, words_minus_one: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&words_minus_one.to_be_bytes());
    }
    /// Sets the sender SSRC.
    ///
    /// # Panics
    /// If the buffer is shorter than 8 bytes.
    pub fn set_ssrc(&mut self, ssrc: u32) {
        self.buffer.as_mut()[field::SSRC].copy_from_slice(&ssrc.to_be_bytes());
    }
}

/// Iterates the packets of a compound RTCP packet. Yields `Err` once (and then stops) when a
/// packet does not fit.
#[derive(Debug, Clone)]
pub struct CompoundIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

/// Iterates the packets of a compound RTCP packet.
#[must_use]
pub fn iter_compound(buf: &[u8]) -> CompoundIter<'_> {
    CompoundIter {
        rest: buf,
        failed: false,
    }
}

impl<'a> Iterator for CompoundIter<'a> {
    type Item = Result<RtcpPacket<&'a [u8]>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let p = RtcpPacket::new_unchecked(self.rest);
        if p.check_len().is_err() {
            self.failed = true;
            return Some(Err(Error));
        }
        let (this, rest) = self.rest.split_at(p.packet_len());
        self.rest = rest;
        Some(Ok(RtcpPacket::new_unchecked(this)))
    }
}

/// Validates a compound packet (RFC 3550 A.2, without the SR/RR-first rule): non-empty, every
/// packet version 2 and fully present, lengths tiling the buffer exactly, the P bit only on
/// the last packet. Returns the number of packets.
///
/// # Errors
/// [`Error`] if any check fails.
pub fn check_compound(buf: &[u8]) -> Result<usize> {
    if buf.is_empty() {
        return Err(Error);
    }
    let mut n = 0;
    let mut padded = false;
    for p in iter_compound(buf) {
        let p = p?;
        if p.version() != 2 || padded {
            return Err(Error);
        }
        padded = p.padding();
        n += 1;
    }
    Ok(n)
}

/// The owned form of one RTCP packet header plus its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpRepr<'a> {
    /// Report/source count or FMT.
    pub count: u8,
    /// Packet type.
    pub packet_type: u8,
    /// The body after the 4-byte header (sender SSRC first for most types); its length must
    /// be a multiple of 4. No padding.
    pub body: &'a [u8],
}

impl<'a> RtcpRepr<'a> {
    /// Parses one version-2 packet.
    ///
    /// # Errors
    /// [`Error`] if truncated, padded badly or not version 2.
    pub fn parse(p: &RtcpPacket<&'a [u8]>) -> Result<Self> {
        p.check_len()?;
        if p.version() != 2 || p.padding() {
            return Err(Error);
        }
        let buf: &'a [u8] = p.buffer;
        Ok(Self {
            count: p.count(),
            packet_type: p.packet_type(),
            body: &buf[HEADER_LEN..p.packet_len()],
        })
    }

    /// The packet length.
    #[must_use]
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.body.len()
    }

    /// Writes the packet into `buf[..buffer_len()]`.
    ///
    /// # Panics
    /// If `buf` is too short or the body is not whole 32-bit words.
    pub fn emit(&self, buf: &mut [u8]) {
        assert!(
            self.body.len() & 3 == 0,
            "RTCP body must be whole 32-bit words"
        );
        let mut p = RtcpPacket::new_unchecked(&mut buf[..self.buffer_len()]);
        p.set_first_byte(false, self.count);
        p.set_packet_type(self.packet_type);
        p.set_length((self.body.len() / 4) as u16);
        buf[HEADER_LEN..self.buffer_len()].copy_from_slice(self.body);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for RtcpPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.check_len().is_err() {
            return f.write_str("RTCP (truncated)");
        }
        write!(
            f,
            "RTCP v={} pt={} count={} len={}",
            self.version(),
            self.packet_type(),
            self.count(),
            self.packet_len()
        )?;
        if let Some(s) = self.ssrc() {
            write!(f, " ssrc={s:08x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn report_blocks_of_sr_and_rr() {
        // RR from 0x01020304 with two blocks; the second is about 0x0a0b0c0d: 25% lost,
        // cumulative -2 (duplicates), highest seq 0x00010005, jitter 40.
        let mut rr = vec![0x82, 201, 0x00, 0x0d, 1, 2, 3, 4];
        rr.extend_from_slice(&[0xaa; 4]);
        rr.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        rr.extend_from_slice(&[0x0a, 0x0b, 0x0c, 0x0d, 64, 0xff, 0xff, 0xfe]);
        rr.extend_from_slice(&[0, 1, 0, 5, 0, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0, 0]);
        let p = RtcpPacket::new_checked(&rr[..]).unwrap();
        let blocks: Vec<_> = p.report_blocks().collect();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].ssrc(), 0x0a0b_0c0d);
        assert_eq!(blocks[1].fraction_lost(), 64);
        assert_eq!(blocks[1].cumulative_lost(), -2);
        assert_eq!(blocks[1].highest_seq(), 0x0001_0005);
        assert_eq!(blocks[1].jitter(), 40);
        // SR with one block after the sender info.
        let mut sr = vec![0x81, 200, 0x00, 0x0c, 1, 2, 3, 4];
        sr.extend_from_slice(&[0; 20]);
        sr.extend_from_slice(&[9, 9, 9, 9, 3, 0, 0, 7]);
        sr.extend_from_slice(&[0; 16]);
        let p = RtcpPacket::new_checked(&sr[..]).unwrap();
        let b: Vec<_> = p.report_blocks().collect();
        assert_eq!(
            (b.len(), b[0].fraction_lost(), b[0].cumulative_lost()),
            (1, 3, 7)
        );
        // A count larger than the packet holds yields only what fits; SDES has none.
        let mut short = rr[..32].to_vec();
        short[3] = 7; // length 7 words = 32 bytes: one block
        let p = RtcpPacket::new_checked(&short[..]).unwrap();
        assert_eq!(p.report_blocks().count(), 1);
        let sdes = [0x81, 202, 0x00, 0x01, 1, 2, 3, 4];
        assert_eq!(
            RtcpPacket::new_checked(&sdes[..])
                .unwrap()
                .report_blocks()
                .count(),
            0
        );
    }

    use super::*;

    // RR with no report blocks (ssrc 0x01020304), then SDES with one CNAME "ab" chunk, then
    // a BYE with no sources.
    static COMPOUND: [u8; 28] = [
        0x80, 0xc9, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04, // RR
        0x81, 0xca, 0x00, 0x03, 0x01, 0x02, 0x03, 0x04, 0x01, 0x02, b'a', b'b', 0x00, 0x00, 0x00,
        0x00, // SDES
        0x80, 0xcb, 0x00, 0x00, // BYE, no SSRC
    ];

    #[test]
    fn deconstruct_compound() {
        assert_eq!(check_compound(&COMPOUND), Ok(3));
        let mut it = iter_compound(&COMPOUND);
        let rr = it.next().unwrap().unwrap();
        assert_eq!(rr.version(), 2);
        assert_eq!(rr.packet_type(), packet_type::RR);
        assert_eq!(rr.count(), 0);
        assert_eq!(rr.packet_len(), 8);
        assert_eq!(rr.ssrc(), Some(0x0102_0304));
        let sdes = it.next().unwrap().unwrap();
        assert_eq!(sdes.packet_type(), packet_type::SDES);
        assert_eq!(sdes.count(), 1);
        assert_eq!(sdes.body().len(), 12);
        let bye = it.next().unwrap().unwrap();
        assert_eq!(bye.packet_type(), packet_type::BYE);
        assert_eq!(bye.ssrc(), None);
        assert!(it.next().is_none());
    }

    #[test]
    fn construct() {
        let mut buf = [0u8; 28];
        RtcpRepr {
            count: 0,
            packet_type: packet_type::RR,
            body: &COMPOUND[4..8],
        }
        .emit(&mut buf[..8]);
        RtcpRepr {
            count: 1,
            packet_type: packet_type::SDES,
            body: &COMPOUND[12..24],
        }
        .emit(&mut buf[8..24]);
        RtcpRepr {
            count: 0,
            packet_type: packet_type::BYE,
            body: &[],
        }
        .emit(&mut buf[24..]);
        assert_eq!(buf, COMPOUND);
        let p = RtcpPacket::new_checked(&buf[..]).unwrap();
        let repr = RtcpRepr::parse(&p).unwrap();
        assert_eq!(repr.packet_type, packet_type::RR);
        assert_eq!(repr.body, &COMPOUND[4..8]);
        let mut sr = [0u8; 8];
        let mut p = RtcpPacket::new_unchecked(&mut sr[..]);
        p.set_first_byte(false, 0);
        p.set_packet_type(packet_type::SR);
        p.set_length(1);
        p.set_ssrc(7);
        assert_eq!(sr, [0x80, 200, 0, 1, 0, 0, 0, 7]);
    }

    #[test]
    fn malformed_compounds() {
        assert_eq!(check_compound(&[]), Err(Error));
        assert_eq!(check_compound(&COMPOUND[..27]), Err(Error)); // BYE cut
        assert_eq!(check_compound(&COMPOUND[..10]), Err(Error)); // SDES cut
        let mut v1 = COMPOUND;
        v1[8] = 0x41; // version 1 in the middle
        assert_eq!(check_compound(&v1), Err(Error));
        let mut pad = COMPOUND;
        pad[0] |= 0x20; // padding on a non-last packet (and the last byte says 4)
        pad[7] = 4;
        assert_eq!(check_compound(&pad), Err(Error));
        let mut it = iter_compound(&COMPOUND[..3]);
        assert_eq!(it.next().unwrap().unwrap_err(), Error);
        assert!(it.next().is_none());
    }
}
