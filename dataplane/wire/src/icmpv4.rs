//! ICMPv4 (RFC 792): echo request/reply with their checksum; other messages are carried
//! opaquely (type, code, checksum, the 4-byte rest-of-header and the data).
//!
//! Contract: after [`Icmpv4Packet::check_len`] succeeds, no accessor panics: the buffer holds
//! the 8-byte header. The checksum covers the whole buffer (the view's buffer must be exactly
//! the ICMP message, i.e. the IPv4 payload).

use core::fmt;

use crate::{checksum, Error, Field, Result};

mod field {
    use crate::{Field, Rest};
    pub(crate) const TYPE: usize = 0;
    pub(crate) const CODE: usize = 1;
    pub(crate) const CHECKSUM: Field = 2..4;
    pub(crate) const ECHO_IDENT: Field = 4..6;
    pub(crate) const ECHO_SEQNO: Field = 6..8;
    pub(crate) const DATA: Rest = 8..;
}

/// The ICMPv4 header length (type, code, checksum, 4 bytes of rest-of-header).
pub const HEADER_LEN: usize = field::DATA.start;

/// ICMPv4 message types we name.
pub mod message {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DST_UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
}

/// A view of an ICMPv4 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn be16(b: &[u8], f: Field) -> u16 {
    u16::from_be_bytes([b[f.start], b[f.start + 1]])
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
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

    /// Checks that the 8-byte header fits.
    ///
    /// # Errors
    /// [`Error`] if the buffer is shorter.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// The message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The echo identifier (meaningful for echo request/reply).
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_IDENT)
    }
    /// The echo sequence number (meaningful for echo request/reply).
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }
    /// The data after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// Whether the checksum over the whole message is right (always true under
    /// `cfg(fuzzing)`). RFC 792: "the 16-bit one's complement of the one's complement sum of
    /// the ICMP message starting with the ICMP Type".
    pub fn verify_checksum(&self) -> bool {
        if cfg!(fuzzing) {
            return true;
        }
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    fn put16(&mut self, f: Field, v: u16) {
        self.buffer.as_mut()[f].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the message type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    /// Sets the message code.
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.put16(field::CHECKSUM, v);
    }
    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, v: u16) {
        self.put16(field::ECHO_IDENT, v);
    }
    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, v: u16) {
        self.put16(field::ECHO_SEQNO, v);
    }
    /// The data, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }
    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = !checksum::fold(checksum::sum(self.buffer.as_ref()));
        self.set_checksum(c);
    }
}

/// The owned form of the ICMPv4 messages we build: echo request and reply. The echo data is
/// not owned; `emit` takes it as a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr {
    /// Echo request (type 8, code 0).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Length of the echo data.
        data_len: usize,
    },
    /// Echo reply (type 0, code 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Length of the echo data.
        data_len: usize,
    },
}

impl Icmpv4Repr {
    /// Parses an echo request or reply and verifies its checksum.
    ///
    /// # Errors
    /// [`Error`] if truncated, the checksum is wrong, or it is another message type (or a
    /// non-zero code).
    pub fn parse<T: AsRef<[u8]>>(p: &Icmpv4Packet<T>) -> Result<Self> {
        p.check_len()?;
        if !p.verify_checksum() || p.msg_code() != 0 {
            return Err(Error);
        }
        let (ident, seq_no, data_len) = (p.echo_ident(), p.echo_seq_no(), p.data().len());
        match p.msg_type() {
            message::ECHO_REQUEST => Ok(Self::EchoRequest {
                ident,
                seq_no,
                data_len,
            }),
            message::ECHO_REPLY => Ok(Self::EchoReply {
                ident,
                seq_no,
                data_len,
            }),
            _ => Err(Error),
        }
    }

    /// Header plus data length.
    #[must_use]
    pub const fn buffer_len(&self) -> usize {
        match self {
            Self::EchoRequest { data_len, .. } | Self::EchoReply { data_len, .. } => {
                HEADER_LEN + *data_len
            }
        }
    }

    /// Writes the message with `data` and fills the checksum. The view's buffer must be
    /// exactly `buffer_len()` bytes long (the checksum covers all of it).
    ///
    /// # Panics
    /// If the buffer length is not `buffer_len()` or `data.len()` is not the repr's `data_len`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Icmpv4Packet<T>, data: &[u8]) {
        assert_eq!(p.buffer.as_ref().len(), self.buffer_len());
        let (ty, ident, seq_no, data_len) = match *self {
            Self::EchoRequest {
                ident,
                seq_no,
                data_len,
            } => (message::ECHO_REQUEST, ident, seq_no, data_len),
            Self::EchoReply {
                ident,
                seq_no,
                data_len,
            } => (message::ECHO_REPLY, ident, seq_no, data_len),
        };
        assert_eq!(data.len(), data_len);
        p.set_msg_type(ty);
        p.set_msg_code(0);
        p.set_echo_ident(ident);
        p.set_echo_seq_no(seq_no);
        p.data_mut().copy_from_slice(data);
        p.fill_checksum();
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Icmpv4Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.check_len().is_err() {
            return f.write_str("ICMPv4 (truncated)");
        }
        match self.msg_type() {
            message::ECHO_REQUEST | message::ECHO_REPLY => write!(
                f,
                "ICMPv4 echo {} ident={} seq={} len={}",
                if self.msg_type() == message::ECHO_REQUEST {
                    "request"
                } else {
                    "reply"
                },
                self.echo_ident(),
                self.echo_seq_no(),
                self.data().len()
            ),
            t => write!(f, "ICMPv4 type={t} code={}", self.msg_code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // smoltcp's echo request vector: ident 0x1234, seq 0xabcd, 4 data bytes.
    static ECHO_PACKET_BYTES: [u8; 12] = [
        0x08, 0x00, 0x8e, 0xfe, 0x12, 0x34, 0xab, 0xcd, 0xaa, 0x00, 0x00, 0xff,
    ];
    static ECHO_DATA_BYTES: [u8; 4] = [0xaa, 0x00, 0x00, 0xff];
    // The matching reply: only the type changes, so the checksum rises by 0x0800.
    static REPLY_PACKET_BYTES: [u8; 12] = [
        0x00, 0x00, 0x96, 0xfe, 0x12, 0x34, 0xab, 0xcd, 0xaa, 0x00, 0x00, 0xff,
    ];

    #[test]
    fn deconstruct() {
        let p = Icmpv4Packet::new_checked(&ECHO_PACKET_BYTES[..]).unwrap();
        assert_eq!(p.msg_type(), message::ECHO_REQUEST);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0x8efe);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 0xabcd);
        assert_eq!(p.data(), &ECHO_DATA_BYTES);
        assert!(p.verify_checksum());
        assert_eq!(
            Icmpv4Repr::parse(&p).unwrap(),
            Icmpv4Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 0xabcd,
                data_len: 4
            }
        );
    }

    #[test]
    fn construct_request_and_reply() {
        let mut buf = [0u8; 12];
        Icmpv4Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 0xabcd,
            data_len: 4,
        }
        .emit(
            &mut Icmpv4Packet::new_unchecked(&mut buf[..]),
            &ECHO_DATA_BYTES,
        );
        assert_eq!(buf, ECHO_PACKET_BYTES);
        let reply = Icmpv4Repr::EchoReply {
            ident: 0x1234,
            seq_no: 0xabcd,
            data_len: 4,
        };
        reply.emit(
            &mut Icmpv4Packet::new_unchecked(&mut buf[..]),
            &ECHO_DATA_BYTES,
        );
        assert_eq!(buf, REPLY_PACKET_BYTES);
        assert_eq!(
            Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(&buf[..])).unwrap(),
            reply
        );
    }

    #[test]
    fn bad_checksum_truncated_and_other_types() {
        assert_eq!(
            Icmpv4Packet::new_checked(&ECHO_PACKET_BYTES[..7]),
            Err(Error)
        );
        let mut b = ECHO_PACKET_BYTES;
        b[9] ^= 0x10;
        #[cfg(not(fuzzing))]
        assert_eq!(
            Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(&b[..])),
            Err(Error)
        );
        let mut b = ECHO_PACKET_BYTES;
        b[0] = message::DST_UNREACHABLE;
        let mut p = Icmpv4Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(Icmpv4Repr::parse(&p), Err(Error));
    }
}
