//! UDP datagrams (RFC 768) with the IPv4 and IPv6 (RFC 8200 §8.1) pseudo-header checksums.
//!
//! Contract: after [`UdpPacket::check_len`] succeeds, no accessor panics: the buffer holds
//! the 8-byte header and the `length` field covers the header and fits in the buffer.

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::{checksum, ipv4::protocol, ipv6::next_header, Error, Field, Result};

mod field {
    use crate::Field;
    pub(crate) const SRC_PORT: Field = 0..2;
    pub(crate) const DST_PORT: Field = 2..4;
    pub(crate) const LENGTH: Field = 4..6;
    pub(crate) const CHECKSUM: Field = 6..8;
}

/// The UDP header length.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8], f: Field) -> u16 {
    u16::from_be_bytes([b[f.start], b[f.start + 1]])
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
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

    /// Checks that the header fits and that `length` is within `HEADER_LEN..=buffer.len()`.
    ///
    /// # Errors
    /// [`Error`] otherwise.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN || field_len > len {
            return Err(Error);
        }
        Ok(())
    }

    /// Returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// The length field (header plus payload).
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }
    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Verifies the checksum against the IPv4 pseudo-header.
    ///
    /// RFC 768: "An all zero transmitted checksum value means that the transmitter generated
    /// no checksum", so a zero checksum always verifies. Always true under `cfg(fuzzing)`.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if cfg!(fuzzing) || self.checksum() == 0 {
            return true;
        }
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        let ph = checksum::pseudo_header_v4(src.octets(), dst.octets(), protocol::UDP, len);
        checksum::combine(&[ph, checksum::sum(data)]) == 0
    }

    /// Verifies the checksum against the IPv6 pseudo-header (RFC 8200 §8.1).
    ///
    /// Over IPv6 the checksum is mandatory: a zero checksum field is invalid (RFC 8200 §8.1:
    /// "IPv6 receivers must discard UDP packets containing a zero checksum"). Always true
    /// under `cfg(fuzzing)`.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        if cfg!(fuzzing) {
            return true;
        }
        if self.checksum() == 0 {
            return false;
        }
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        let ph = checksum::pseudo_header_v6(&src, &dst, next_header::UDP, u32::from(len));
        checksum::combine(&[ph, checksum::sum(data)]) == 0
    }

    /// The payload (`HEADER_LEN..length`).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    fn put16(&mut self, f: Field, v: u16) {
        self.buffer.as_mut()[f].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the source port.
    pub fn set_src_port(&mut self, v: u16) {
        self.put16(field::SRC_PORT, v);
    }
    /// Sets the destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        self.put16(field::DST_PORT, v);
    }
    /// Sets the length field.
    pub fn set_len(&mut self, v: u16) {
        self.put16(field::LENGTH, v);
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.put16(field::CHECKSUM, v);
    }

    /// Computes and stores the checksum over the pseudo-header, header and payload.
    ///
    /// RFC 768: "If the computed checksum is zero, it is transmitted as all ones", since a
    /// transmitted zero means "no checksum".
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let ph = checksum::pseudo_header_v4(src.octets(), dst.octets(), protocol::UDP, len);
        let c = checksum::combine(&[ph, checksum::sum(&self.buffer.as_ref()[..usize::from(len)])]);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// Computes and stores the checksum over the IPv6 pseudo-header, header and payload; a
    /// computed zero is sent as `0xffff` (RFC 8200 §8.1).
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let len = self.len();
        let ph = checksum::pseudo_header_v6(&src, &dst, next_header::UDP, u32::from(len));
        let c = checksum::combine(&[ph, checksum::sum(&self.buffer.as_ref()[..usize::from(len)])]);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The owned form of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length.
    pub payload_len: usize,
}

impl UdpRepr {
    /// Parses a datagram and verifies its checksum; port 0 as destination is malformed.
    ///
    /// # Errors
    /// [`Error`] if truncated, bad checksum, or destination port 0.
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>, src: Ipv4Addr, dst: Ipv4Addr) -> Result<Self> {
        p.check_len()?;
        if p.dst_port() == 0 || !p.verify_checksum(src, dst) {
            return Err(Error);
        }
        Ok(Self {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: usize::from(p.len()) - HEADER_LEN,
        })
    }

    /// Header plus payload length.
    #[must_use]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header, copies `payload` in and fills the checksum.
    ///
    /// # Panics
    /// If the buffer is shorter than `buffer_len()` or `payload.len() != payload_len`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
    ) {
        assert_eq!(payload.len(), self.payload_len);
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(self.buffer_len() as u16);
        p.payload_mut().copy_from_slice(payload);
        p.fill_checksum(src, dst);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for UdpPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.check_len().is_err() {
            return f.write_str("UDP (truncated)");
        }
        write!(
            f,
            "UDP src={} dst={} len={}",
            self.src_port(),
            self.dst_port(),
            self.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);

    static PACKET_BYTES: [u8; 12] = [
        0xbf, 0x00, 0x00, 0x35, 0x00, 0x0c, 0x12, 0x4d, 0xaa, 0x00, 0x00, 0xff,
    ];
    static PAYLOAD: [u8; 4] = [0xaa, 0x00, 0x00, 0xff];

    #[test]
    fn deconstruct() {
        let p = UdpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(p.src_port(), 48896);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 12);
        assert_eq!(p.checksum(), 0x124d);
        assert_eq!(p.payload(), &PAYLOAD);
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn construct() {
        let mut buf = [0xffu8; 12];
        let repr = UdpRepr {
            src_port: 48896,
            dst_port: 53,
            payload_len: 4,
        };
        repr.emit(
            &mut UdpPacket::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            &PAYLOAD,
        );
        assert_eq!(buf, PACKET_BYTES);
        assert_eq!(
            UdpRepr::parse(&UdpPacket::new_unchecked(&buf[..]), SRC, DST).unwrap(),
            repr
        );
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut b = PACKET_BYTES;
        b[6] = 0;
        b[7] = 0;
        assert!(UdpPacket::new_unchecked(&b[..]).verify_checksum(SRC, DST));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the payload so that the one's-complement sum is 0xffff: the checksum
        // would compute to 0 and must be sent as 0xffff.
        let mut buf = [0u8; 10];
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_len(10);
        let ph = checksum::pseudo_header_v4(SRC.octets(), DST.octets(), protocol::UDP, 10);
        let partial = checksum::fold(ph + checksum::sum(&[0, 1, 0, 2, 0, 10, 0, 0]));
        let filler = 0xffff - partial;
        p.payload_mut().copy_from_slice(&filler.to_be_bytes());
        p.fill_checksum(SRC, DST);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn bad_checksum_and_lengths() {
        let mut b = PACKET_BYTES;
        b[8] ^= 0x01;
        #[cfg(not(fuzzing))]
        assert!(!UdpPacket::new_unchecked(&b[..]).verify_checksum(SRC, DST));
        assert!(UdpPacket::new_checked(&PACKET_BYTES[..7]).is_err());
        assert!(UdpPacket::new_checked(&PACKET_BYTES[..11]).is_err());
        let mut b = PACKET_BYTES;
        b[5] = 4; // length < header
        assert!(UdpPacket::new_checked(&b[..]).is_err());
    }
}
