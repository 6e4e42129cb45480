//! RTP fixed header (RFC 3550 §5.1), CSRC list, header extension (§5.3.1) and padding.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers ...         |
//! ```
//!
//! Contract: after [`RtpPacket::check_len`] succeeds, no accessor panics: the fixed header,
//! the CSRC list and the extension (if any) fit, and the padding count (if P is set) is at
//! least one and leaves room for the header. `check_len` does **not** check the version;
//! call [`RtpPacket::version`] (the relay does, and drops anything but 2).

use core::fmt;
use core::ops::Range;

use crate::{Error, Field, Result};

mod field {
    use crate::Field;
    pub(crate) const VPXCC: usize = 0;
    pub(crate) const MPT: usize = 1;
    pub(crate) const SEQ: Field = 2..4;
    pub(crate) const TIMESTAMP: Field = 4..8;
    pub(crate) const SSRC: Field = 8..12;
    pub(crate) const CSRC_START: usize = 12;
}

/// The fixed header length (no CSRCs, no extension).
pub const HEADER_LEN: usize = field::CSRC_START;

/// The RTP version this crate speaks.
pub const VERSION: u8 = 2;

/// A view of an RTP packet (the UDP payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RtpPacket<T> {
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

    /// Checks that the fixed header, CSRCs and extension fit, and that the padding count is
    /// sane.
    ///
    /// # Errors
    /// [`Error`] otherwise.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error);
        }
        let mut hl = HEADER_LEN + 4 * usize::from(self.csrc_count());
        if self.extension() {
            if b.len() < hl + 4 {
                return Err(Error);
            }
            let words = usize::from(u16::from_be_bytes([b[hl + 2], b[hl + 3]]));
            hl += 4 + 4 * words;
        }
        if b.len() < hl {
            return Err(Error);
        }
        if self.padding() {
            let pad = usize::from(b[b.len() - 1]);
            if pad == 0 || b.len() - hl < pad {
                return Err(Error);
            }
        }
        Ok(())
    }

    /// Returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (2 for RTP).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VPXCC] >> 6
    }
    /// The padding bit.
    pub fn padding(&self) -> bool {
        self.buffer.as_ref()[field::VPXCC] & 0x20 != 0
    }
    /// The extension bit.
    pub fn extension(&self) -> bool {
        self.buffer.as_ref()[field::VPXCC] & 0x10 != 0
    }
    /// The number of CSRCs.
    pub fn csrc_count(&self) -> u8 {
        self.buffer.as_ref()[field::VPXCC] & 0x0f
    }
    /// The marker bit.
    pub fn marker(&self) -> bool {
        self.buffer.as_ref()[field::MPT] & 0x80 != 0
    }
    /// The payload type.
    pub fn payload_type(&self) -> u8 {
        self.buffer.as_ref()[field::MPT] & 0x7f
    }
    /// The sequence number.
    pub fn sequence_number(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::SEQ];
        u16::from_be_bytes([b[0], b[1]])
    }
    /// The timestamp.
    pub fn timestamp(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::TIMESTAMP];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    /// The synchronization source.
    pub fn ssrc(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::SSRC];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    /// The `i`th CSRC.
    ///
    /// # Panics
    /// If `i >= csrc_count()`.
    pub fn csrc(&self, i: usize) -> u32 {
        assert!(i < usize::from(self.csrc_count()));
        let o = field::CSRC_START + 4 * i;
        let b = &self.buffer.as_ref()[o..o + 4];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    fn extension_start(&self) -> usize {
        HEADER_LEN + 4 * usize::from(self.csrc_count())
    }

    /// The extension's profile-defined 16 bits and its data, if the X bit is set.
    pub fn extension_data(&self) -> Option<(u16, &[u8])> {
        if !self.extension() {
            return None;
        }
        let b = self.buffer.as_ref();
        let s = self.extension_start();
        let profile = u16::from_be_bytes([b[s], b[s + 1]]);
        let words = usize::from(u16::from_be_bytes([b[s + 2], b[s + 3]]));
        Some((profile, &b[s + 4..s + 4 + 4 * words]))
    }

    /// The header length including CSRCs and the extension.
    pub fn header_len(&self) -> usize {
        let s = self.extension_start();
        match self.extension_data() {
            Some((_, d)) => s + 4 + d.len(),
            None => s,
        }
    }

    /// The number of padding bytes at the end (0 without the P bit).
    pub fn padding_len(&self) -> usize {
        if self.padding() {
            let b = self.buffer.as_ref();
            usize::from(b[b.len() - 1])
        } else {
            0
        }
    }

    /// Where the payload lies in the buffer.
    pub fn payload_range(&self) -> Range<usize> {
        self.header_len()..self.buffer.as_ref().len() - self.padding_len()
    }

    /// The payload (without header and padding).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.payload_range()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RtpPacket<T> {
    fn put(&mut self, f: Field, v: &[u8]) {
        self.buffer.as_mut()[f].copy_from_slice(v);
    }
    /// Sets version 2, padding, extension and CSRC count in the first byte.
    pub fn set_first_byte(&mut self, padding: bool, extension: bool, csrc_count: u8) {
        self.buffer.as_mut()[field::VPXCC] = (VERSION << 6)
            | (u8::from(padding) << 5)
            | (u8::from(extension) << 4)
            | (csrc_count & 0x0f);
    }
    /// Sets the marker bit.
    pub fn set_marker(&mut self, m: bool) {
        let b = &mut self.buffer.as_mut()[field::MPT];
        *b = (*b & 0x7f) | (u8::from(m) << 7);
    }
    /// Sets the payload type (7 bits).
    pub fn set_payload_type(&mut self, pt: u8) {
        let b = &mut self.buffer.as_mut()[field::MPT];
        *b = (*b & 0x80) | (pt & 0x7f);
    }
    /// Sets the sequence number.
    pub fn set_sequence_number(&mut self, v: u16) {
        self.put(field::SEQ, &v.to_be_bytes());
    }
    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, v: u32) {
        self.put(field::TIMESTAMP, &v.to_be_bytes());
    }
    /// Sets the SSRC.
    pub fn set_ssrc(&mut self, v: u32) {
        self.put(field::SSRC, &v.to_be_bytes());
    }
    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let r = self.payload_range();
        &mut self.buffer.as_mut()[r]
    }
}

/// The owned (borrowing the payload) form of an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpRepr<'a> {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
    /// CSRC list: the first `csrc_count` entries are used.
    pub csrcs: [u32; 15],
    /// How many CSRCs.
    pub csrc_count: u8,
    /// Header extension (profile bits, data whose length is a multiple of 4).
    pub extension: Option<(u16, &'a [u8])>,
    /// The payload.
    pub payload: &'a [u8],
    /// Padding bytes to append (0 = no P bit).
    pub padding: u8,
}

impl<'a> RtpRepr<'a> {
    /// A plain packet without CSRCs, extension or padding.
    #[must_use]
    pub const fn simple(
        payload_type: u8,
        sequence_number: u16,
        timestamp: u32,
        ssrc: u32,
        payload: &'a [u8],
    ) -> Self {
        Self {
            marker: false,
            payload_type,
            sequence_number,
            timestamp,
            ssrc,
            csrcs: [0; 15],
            csrc_count: 0,
            extension: None,
            payload,
            padding: 0,
        }
    }

    /// Parses a version-2 packet.
    ///
    /// # Errors
    /// [`Error`] if truncated or not version 2.
    pub fn parse(p: &RtpPacket<&'a [u8]>) -> Result<Self> {
        p.check_len()?;
        if p.version() != VERSION {
            return Err(Error);
        }
        let mut csrcs = [0; 15];
        for (i, c) in csrcs
            .iter_mut()
            .enumerate()
            .take(usize::from(p.csrc_count()))
        {
            *c = p.csrc(i);
        }
        let buf: &'a [u8] = p.buffer;
        let ext = if p.extension() {
            let s = HEADER_LEN + 4 * usize::from(p.csrc_count());
            let words = usize::from(u16::from_be_bytes([buf[s + 2], buf[s + 3]]));
            Some((
                u16::from_be_bytes([buf[s], buf[s + 1]]),
                &buf[s + 4..s + 4 + 4 * words],
            ))
        } else {
            None
        };
        Ok(Self {
            marker: p.marker(),
            payload_type: p.payload_type(),
            sequence_number: p.sequence_number(),
            timestamp: p.timestamp(),
            ssrc: p.ssrc(),
            csrcs,
            csrc_count: p.csrc_count(),
            extension: ext,
            payload: &buf[p.payload_range()],
            padding: p.padding_len() as u8,
        })
    }

    /// The header length (fixed, CSRCs, extension).
    #[must_use]
    pub fn header_len(&self) -> usize {
        HEADER_LEN
            + 4 * usize::from(self.csrc_count)
            + self.extension.map_or(0, |(_, d)| 4 + d.len())
    }

    /// The whole packet length.
    #[must_use]
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len() + usize::from(self.padding)
    }

    /// Writes the packet into `buf[..buffer_len()]`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`Self::buffer_len`], or the extension data is not a multiple
    /// of 4 bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        let total = self.buffer_len();
        let buf = &mut buf[..total];
        let mut p = RtpPacket::new_unchecked(&mut *buf);
        p.set_first_byte(self.padding > 0, self.extension.is_some(), self.csrc_count);
        p.buffer[field::MPT] = 0;
        p.set_marker(self.marker);
        p.set_payload_type(self.payload_type);
        p.set_sequence_number(self.sequence_number);
        p.set_timestamp(self.timestamp);
        p.set_ssrc(self.ssrc);
        let mut o = HEADER_LEN;
        for c in &self.csrcs[..usize::from(self.csrc_count)] {
            buf[o..o + 4].copy_from_slice(&c.to_be_bytes());
            o += 4;
        }
        if let Some((profile, data)) = self.extension {
            assert!(
                data.len() & 3 == 0,
                "RTP extension must be whole 32-bit words"
            );
            buf[o..o + 2].copy_from_slice(&profile.to_be_bytes());
            buf[o + 2..o + 4].copy_from_slice(&((data.len() / 4) as u16).to_be_bytes());
            buf[o + 4..o + 4 + data.len()].copy_from_slice(data);
            o += 4 + data.len();
        }
        buf[o..o + self.payload.len()].copy_from_slice(self.payload);
        o += self.payload.len();
        if self.padding > 0 {
            buf[o..total].fill(0);
            buf[total - 1] = self.padding;
        }
    }
}

impl<T: AsRef<[u8]>> fmt::Display for RtpPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.check_len().is_err() {
            return f.write_str("RTP (truncated)");
        }
        write!(
            f,
            "RTP v={} pt={} m={} seq={} ts={} ssrc={:08x} cc={} payload={}",
            self.version(),
            self.payload_type(),
            u8::from(self.marker()),
            self.sequence_number(),
            self.timestamp(),
            self.ssrc(),
            self.csrc_count(),
            self.payload_range().len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // V=2, M=1, PT=0, seq 0x1234, ts 0xdeadbeef, ssrc 0x01020304, payload 4 bytes.
    static SIMPLE: [u8; 16] = [
        0x80, 0x80, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0xff, 0xfe, 0xfd,
        0xfc,
    ];

    // V=2, P=1, X=1, CC=1, PT=8, seq 1, ts 160, ssrc 0xcafebabe, csrc 0x11223344,
    // extension profile 0xbede with one word, payload 2 bytes, padding 2 bytes.
    static FULL: [u8; 32] = [
        0xb1, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0xa0, 0xca, 0xfe, 0xba, 0xbe, 0x11, 0x22, 0x33,
        0x44, 0xbe, 0xde, 0x00, 0x01, 0x10, 0x20, 0x30, 0x40, 0x55, 0x66, 0x00, 0x02, //
        // (4 more bytes of payload then padding: see below)
        0x00, 0x00, 0x00, 0x00,
    ];

    fn full_fixed() -> [u8; 32] {
        // Payload 0x55 0x66 0x00 0x02 0x00 0x00 then 2 padding bytes (0x00, 0x02).
        let mut b = FULL;
        b[30] = 0x00;
        b[31] = 0x02;
        b
    }

    #[test]
    fn deconstruct_simple() {
        let p = RtpPacket::new_checked(&SIMPLE[..]).unwrap();
        assert_eq!(p.version(), 2);
        assert!(!p.padding());
        assert!(!p.extension());
        assert_eq!(p.csrc_count(), 0);
        assert!(p.marker());
        assert_eq!(p.payload_type(), 0);
        assert_eq!(p.sequence_number(), 0x1234);
        assert_eq!(p.timestamp(), 0xdead_beef);
        assert_eq!(p.ssrc(), 0x0102_0304);
        assert_eq!(p.header_len(), 12);
        assert_eq!(p.payload_range(), 12..16);
        assert_eq!(p.payload(), &[0xff, 0xfe, 0xfd, 0xfc]);
    }

    #[test]
    fn construct_simple() {
        let mut repr = RtpRepr::simple(
            0,
            0x1234,
            0xdead_beef,
            0x0102_0304,
            &[0xff, 0xfe, 0xfd, 0xfc],
        );
        repr.marker = true;
        assert_eq!(repr.buffer_len(), 16);
        let mut buf = [0xaau8; 16];
        repr.emit(&mut buf);
        assert_eq!(buf, SIMPLE);
        let p = RtpPacket::new_unchecked(&buf[..]);
        assert_eq!(RtpRepr::parse(&p).unwrap(), repr);
    }

    #[test]
    fn deconstruct_full() {
        let b = full_fixed();
        let p = RtpPacket::new_checked(&b[..]).unwrap();
        assert!(p.padding() && p.extension());
        assert_eq!(p.csrc_count(), 1);
        assert_eq!(p.csrc(0), 0x1122_3344);
        assert_eq!(p.payload_type(), 8);
        assert!(!p.marker());
        assert_eq!(
            p.extension_data(),
            Some((0xbede, &[0x10, 0x20, 0x30, 0x40][..]))
        );
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.padding_len(), 2);
        assert_eq!(p.payload(), &[0x55, 0x66, 0x00, 0x02, 0x00, 0x00]);
    }

    #[test]
    fn construct_full() {
        let mut csrcs = [0; 15];
        csrcs[0] = 0x1122_3344;
        let repr = RtpRepr {
            marker: false,
            payload_type: 8,
            sequence_number: 1,
            timestamp: 160,
            ssrc: 0xcafe_babe,
            csrcs,
            csrc_count: 1,
            extension: Some((0xbede, &[0x10, 0x20, 0x30, 0x40])),
            payload: &[0x55, 0x66, 0x00, 0x02, 0x00, 0x00],
            padding: 2,
        };
        let mut buf = [0xaau8; 32];
        repr.emit(&mut buf);
        assert_eq!(buf, full_fixed());
        let p = RtpPacket::new_unchecked(&buf[..]);
        assert_eq!(RtpRepr::parse(&p).unwrap(), repr);
    }

    #[test]
    fn setters_edit_in_place() {
        let mut b = SIMPLE;
        let mut p = RtpPacket::new_checked(&mut b[..]).unwrap();
        p.set_marker(false);
        p.set_payload_type(8);
        p.set_sequence_number(7);
        p.set_timestamp(1);
        p.set_ssrc(2);
        assert!(!p.marker());
        assert_eq!(
            (
                p.payload_type(),
                p.sequence_number(),
                p.timestamp(),
                p.ssrc()
            ),
            (8, 7, 1, 2)
        );
        p.set_marker(true);
        assert!(p.marker());
        assert_eq!(p.payload_type(), 8);
        assert_eq!(&b[12..], &SIMPLE[12..]);
    }

    #[test]
    fn truncated_and_malformed() {
        assert!(RtpPacket::new_checked(&SIMPLE[..11]).is_err());
        let b = full_fixed();
        assert!(RtpPacket::new_checked(&b[..15]).is_err()); // CSRC cut
        assert!(RtpPacket::new_checked(&b[..19]).is_err()); // extension header cut
        assert!(RtpPacket::new_checked(&b[..23]).is_err()); // extension data cut
        let mut z = b;
        z[31] = 0; // padding count 0
        assert!(RtpPacket::new_checked(&z[..]).is_err());
        let mut big = b;
        big[31] = 9; // padding eats the header
        assert!(RtpPacket::new_checked(&big[..]).is_err());
        let mut v1 = SIMPLE;
        v1[0] = 0x40;
        let p = RtpPacket::new_checked(&v1[..]).unwrap();
        assert_eq!(p.version(), 1);
        assert_eq!(RtpRepr::parse(&p), Err(Error));
    }
}
