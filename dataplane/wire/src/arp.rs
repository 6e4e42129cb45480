//! ARP (RFC 826) for Ethernet hardware addresses and IPv4 protocol addresses.
//!
//! Contract: after [`ArpPacket::check_len`] succeeds, no accessor panics: the buffer holds the
//! whole 28-byte Ethernet/IPv4 packet. Other hardware/protocol types are not represented by
//! this view: [`ArpRepr::parse`] refuses them.

use core::fmt;
use core::net::Ipv4Addr;

use crate::ethernet::{ethertype, Address};
use crate::{Error, Field, Result};

mod field {
    use crate::Field;
    pub(crate) const HTYPE: Field = 0..2;
    pub(crate) const PTYPE: Field = 2..4;
    pub(crate) const HLEN: usize = 4;
    pub(crate) const PLEN: usize = 5;
    pub(crate) const OPER: Field = 6..8;
    pub(crate) const SHA: Field = 8..14;
    pub(crate) const SPA: Field = 14..18;
    pub(crate) const THA: Field = 18..24;
    pub(crate) const TPA: Field = 24..28;
}

/// The length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;

/// The hardware type of Ethernet (RFC 826 `ares_hrd$Ethernet`).
pub const HTYPE_ETHERNET: u16 = 1;

/// ARP operation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `ares_op$REQUEST` (1): who has `target_protocol_addr`?
    Request,
    /// `ares_op$REPLY` (2).
    Reply,
    /// Anything else (RARP and friends).
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(v: u16) -> Self {
        match v {
            1 => Self::Request,
            2 => Self::Reply,
            o => Self::Unknown(o),
        }
    }
}

impl From<Operation> for u16 {
    fn from(o: Operation) -> Self {
        match o {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(v) => v,
        }
    }
}

/// A view of an ARP packet (Ethernet/IPv4 layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8], f: Field) -> u16 {
    u16::from_be_bytes([b[f.start], b[f.start + 1]])
}

fn mac(b: &[u8], f: Field) -> Address {
    let mut a = [0; 6];
    a.copy_from_slice(&b[f]);
    Address(a)
}

fn ip(b: &[u8], f: Field) -> Ipv4Addr {
    let b = &b[f];
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
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

    /// Checks that the buffer holds a whole Ethernet/IPv4 ARP packet ([`PACKET_LEN`] bytes;
    /// trailing padding is allowed).
    ///
    /// # Errors
    /// [`Error`] if it is shorter.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE)
    }
    /// Protocol type (an EtherType; 0x0800 = IPv4).
    pub fn protocol_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE)
    }
    /// Hardware address length (6 for Ethernet).
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    /// Protocol address length (4 for IPv4).
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    /// The operation.
    pub fn operation(&self) -> Operation {
        be16(self.buffer.as_ref(), field::OPER).into()
    }
    /// Sender hardware address.
    pub fn source_hardware_addr(&self) -> Address {
        mac(self.buffer.as_ref(), field::SHA)
    }
    /// Sender protocol address.
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        ip(self.buffer.as_ref(), field::SPA)
    }
    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> Address {
        mac(self.buffer.as_ref(), field::THA)
    }
    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        ip(self.buffer.as_ref(), field::TPA)
    }
    /// Whether the fixed fields say Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4).
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.hardware_type() == HTYPE_ETHERNET
            && self.protocol_type() == ethertype::IPV4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    fn put16(&mut self, f: Field, v: u16) {
        self.buffer.as_mut()[f].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, v: u16) {
        self.put16(field::HTYPE, v);
    }
    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, v: u16) {
        self.put16(field::PTYPE, v);
    }
    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }
    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }
    /// Sets the operation.
    pub fn set_operation(&mut self, o: Operation) {
        self.put16(field::OPER, o.into());
    }
    /// Sets the sender hardware address.
    pub fn set_source_hardware_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&a.0);
    }
    /// Sets the sender protocol address.
    pub fn set_source_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&a.octets());
    }
    /// Sets the target hardware address.
    pub fn set_target_hardware_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&a.0);
    }
    /// Sets the target protocol address.
    pub fn set_target_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&a.octets());
    }
}

/// The owned form of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// The operation.
    pub operation: Operation,
    /// Sender MAC.
    pub source_hardware_addr: Address,
    /// Sender IPv4.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in a request).
    pub target_hardware_addr: Address,
    /// Target IPv4.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Parses an Ethernet/IPv4 ARP packet.
    ///
    /// # Errors
    /// [`Error`] if truncated or not Ethernet/IPv4.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<Self> {
        p.check_len()?;
        if !p.is_ethernet_ipv4() {
            return Err(Error);
        }
        Ok(Self {
            operation: p.operation(),
            source_hardware_addr: p.source_hardware_addr(),
            source_protocol_addr: p.source_protocol_addr(),
            target_hardware_addr: p.target_hardware_addr(),
            target_protocol_addr: p.target_protocol_addr(),
        })
    }

    /// The packet length ([`PACKET_LEN`]).
    #[must_use]
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet.
    ///
    /// # Panics
    /// If the buffer is shorter than [`PACKET_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut ArpPacket<T>) {
        p.set_hardware_type(HTYPE_ETHERNET);
        p.set_protocol_type(ethertype::IPV4);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(self.operation);
        p.set_source_hardware_addr(self.source_hardware_addr);
        p.set_source_protocol_addr(self.source_protocol_addr);
        p.set_target_hardware_addr(self.target_hardware_addr);
        p.set_target_protocol_addr(self.target_protocol_addr);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for ArpPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.check_len().is_err() {
            return f.write_str("ARP (truncated)");
        }
        write!(
            f,
            "ARP op={:?} sha={} spa={} tha={} tpa={}",
            self.operation(),
            self.source_hardware_addr(),
            self.source_protocol_addr(),
            self.target_hardware_addr(),
            self.target_protocol_addr()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A who-has 10.0.0.1 tell 10.0.0.2 from 02:00:00:00:00:02.
    static REQUEST_BYTES: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0a,
        0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01,
    ];

    fn request_repr() -> ArpRepr {
        ArpRepr {
            operation: Operation::Request,
            source_hardware_addr: Address([2, 0, 0, 0, 0, 2]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
            target_hardware_addr: Address([0; 6]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
        }
    }

    #[test]
    fn deconstruct() {
        let p = ArpPacket::new_checked(&REQUEST_BYTES[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), 0x0800);
        assert_eq!(p.hardware_len(), 6);
        assert_eq!(p.protocol_len(), 4);
        assert_eq!(p.operation(), Operation::Request);
        assert_eq!(p.source_hardware_addr(), Address([2, 0, 0, 0, 0, 2]));
        assert_eq!(p.source_protocol_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.target_hardware_addr(), Address([0; 6]));
        assert_eq!(p.target_protocol_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(ArpRepr::parse(&p).unwrap(), request_repr());
    }

    #[test]
    fn construct() {
        let mut buf = [0xa5u8; 28];
        request_repr().emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REQUEST_BYTES);
    }

    #[test]
    fn reply_round_trip() {
        let repr = ArpRepr {
            operation: Operation::Reply,
            source_hardware_addr: Address([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
            target_hardware_addr: Address([2, 0, 0, 0, 0, 2]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
        };
        let mut buf = [0u8; 28];
        repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[6..8], &[0, 2]);
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_unchecked(&buf[..])).unwrap(),
            repr
        );
    }

    #[test]
    fn truncated_and_foreign_types() {
        assert_eq!(ArpPacket::new_checked(&REQUEST_BYTES[..27]), Err(Error));
        let mut b = REQUEST_BYTES;
        b[3] = 0xdd; // ptype 0x08dd
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_unchecked(&b[..])),
            Err(Error)
        );
        let mut b = REQUEST_BYTES;
        b[7] = 3; // RARP request
        assert_eq!(
            ArpPacket::new_unchecked(&b[..]).operation(),
            Operation::Unknown(3)
        );
    }
}
