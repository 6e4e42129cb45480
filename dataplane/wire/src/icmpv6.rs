//! ICMPv6 (RFC 4443): echo request/reply, and the neighbour discovery messages (RFC 4861)
//! the data plane answers and sends: neighbour solicitation and advertisement with their
//! link-layer address options. Other messages are carried opaquely.
//!
//! Contract: after [`Icmpv6Packet::check_len`] succeeds, no accessor panics. `check_len`
//! guarantees 4 bytes for every message, 8 for echo and 24 for NS/NA; accessors of fields a
//! message of another type may not have (`echo_ident`, `ndp_target`, ...) read missing bytes
//! as zero rather than panic. The checksum covers the whole buffer: the view's buffer must be
//! exactly the ICMPv6 message (the IPv6 payload).

use core::fmt;
use core::net::Ipv6Addr;

use crate::{checksum, ethernet, ipv6::next_header, Error, Field, Result};

/// ICMPv6 message types we name.
pub mod message {
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Router advertisement.
    pub const ROUTER_ADVERT: u8 = 134;
    /// Neighbour solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbour advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// NDP option types we name (RFC 4861 §4.6).
pub mod ndp_option {
    /// Source link-layer address.
    pub const SOURCE_LLADDR: u8 = 1;
    /// Target link-layer address.
    pub const TARGET_LLADDR: u8 = 2;
}

mod field {
    use crate::Field;
    pub(crate) const TYPE: usize = 0;
    pub(crate) const CODE: usize = 1;
    pub(crate) const CHECKSUM: Field = 2..4;
    pub(crate) const ECHO_IDENT: Field = 4..6;
    pub(crate) const ECHO_SEQNO: Field = 6..8;
    pub(crate) const NA_FLAGS: usize = 4;
    pub(crate) const NDP_TARGET: Field = 8..24;
    pub(crate) const NDP_OPTIONS: usize = 24;
}

/// The ICMPv6 header length (type, code, checksum).
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// The length of an echo header (with identifier and sequence number).
const ECHO_LEN: usize = field::ECHO_SEQNO.end;

const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;

/// A view of an ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// A big-endian u16 at `f`, zero if the buffer is too short.
fn be16_or_zero(b: &[u8], f: Field) -> u16 {
    match b.get(f) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
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

    /// Checks that the 4-byte header fits, and for echo request/reply the 8-byte echo header,
    /// for neighbour solicitation/advertisement the 24 bytes up to the end of the target.
    ///
    /// # Errors
    /// [`Error`] if the buffer is shorter.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error);
        }
        let min = match b[field::TYPE] {
            message::ECHO_REQUEST | message::ECHO_REPLY => ECHO_LEN,
            message::NEIGHBOR_SOLICIT | message::NEIGHBOR_ADVERT => field::NDP_OPTIONS,
            _ => HEADER_LEN,
        };
        if b.len() < min {
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
        be16_or_zero(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Whether the checksum over the IPv6 pseudo-header and the whole buffer is right
    /// (always true under `cfg(fuzzing)`).
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        if cfg!(fuzzing) {
            return true;
        }
        let b = self.buffer.as_ref();
        let Ok(len) = u32::try_from(b.len()) else {
            return false;
        };
        let ph = checksum::pseudo_header_v6(&src, &dst, next_header::ICMPV6, len);
        checksum::combine(&[ph, checksum::sum(b)]) == 0
    }

    /// The echo identifier (meaningful for echo request/reply; 0 if the message is shorter).
    pub fn echo_ident(&self) -> u16 {
        be16_or_zero(self.buffer.as_ref(), field::ECHO_IDENT)
    }
    /// The echo sequence number (meaningful for echo request/reply; 0 if the message is
    /// shorter).
    pub fn echo_seq_no(&self) -> u16 {
        be16_or_zero(self.buffer.as_ref(), field::ECHO_SEQNO)
    }
    /// The echo data after the 8-byte echo header (empty if the message is shorter).
    pub fn echo_data(&self) -> &[u8] {
        self.buffer.as_ref().get(ECHO_LEN..).unwrap_or(&[])
    }

    /// The target address of a neighbour solicitation/advertisement (bytes 8..24;
    /// unspecified `::` if the message is shorter).
    pub fn ndp_target(&self) -> Ipv6Addr {
        match self.buffer.as_ref().get(field::NDP_TARGET) {
            Some(t) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(t);
                Ipv6Addr::from(a)
            }
            None => Ipv6Addr::UNSPECIFIED,
        }
    }

    /// The neighbour advertisement flags `(router, solicited, override)` (all false if the
    /// message is shorter than 5 bytes).
    pub fn na_flags(&self) -> (bool, bool, bool) {
        let f = self
            .buffer
            .as_ref()
            .get(field::NA_FLAGS)
            .copied()
            .unwrap_or(0);
        (
            f & NA_ROUTER != 0,
            f & NA_SOLICITED != 0,
            f & NA_OVERRIDE != 0,
        )
    }

    /// The link-layer address option of kind `kind` ([`ndp_option::SOURCE_LLADDR`] or
    /// [`ndp_option::TARGET_LLADDR`]) among the NDP options after byte 24, if present and
    /// well-formed (option length 1, i.e. 8 bytes with a 6-byte MAC); the first such option
    /// wins. A malformed option list (an option of length 0, or one running past the end)
    /// gives `None`, as does a matching option of another length. Never panics.
    pub fn ndp_lladdr_option(&self, kind: u8) -> Option<ethernet::Address> {
        let b = self.buffer.as_ref();
        let mut opts = b.get(field::NDP_OPTIONS..)?;
        while let [ty, units, ..] = *opts {
            let len = usize::from(units) * 8;
            if len == 0 || len > opts.len() {
                return None;
            }
            if ty == kind {
                return match opts.get(2..8) {
                    Some(m) if len == 8 => {
                        let mut mac = [0u8; 6];
                        mac.copy_from_slice(m);
                        Some(ethernet::Address(mac))
                    }
                    _ => None,
                };
            }
            opts = &opts[len..];
        }
        None
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
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
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the echo identifier.
    ///
    /// # Panics
    /// If the buffer is shorter than 8 bytes.
    pub fn set_echo_ident(&mut self, v: u16) {
        self.buffer.as_mut()[field::ECHO_IDENT].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the echo sequence number.
    ///
    /// # Panics
    /// If the buffer is shorter than 8 bytes.
    pub fn set_echo_seq_no(&mut self, v: u16) {
        self.buffer.as_mut()[field::ECHO_SEQNO].copy_from_slice(&v.to_be_bytes());
    }
    /// Computes and stores the checksum over the IPv6 pseudo-header and the whole buffer.
    ///
    /// # Panics
    /// If the buffer is shorter than 4 bytes or longer than `u32::MAX`.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let len = u32::try_from(b.len()).expect("ICMPv6 message over 4 GiB");
        let ph = checksum::pseudo_header_v6(&src, &dst, next_header::ICMPV6, len);
        let c = checksum::combine(&[ph, checksum::sum(b)]);
        self.set_checksum(c);
    }
}

fn emit_ndp(buf: &mut [u8], ty: u8, flags: u8, target: Ipv6Addr, opt: u8, mac: ethernet::Address) {
    let b = &mut buf[..NeighborAdvert::LEN];
    b[field::TYPE] = ty;
    b[field::CODE] = 0;
    b[field::CHECKSUM].fill(0);
    b[4..8].copy_from_slice(&[flags, 0, 0, 0]);
    b[field::NDP_TARGET].copy_from_slice(&target.octets());
    b[24] = opt;
    b[25] = 1;
    b[26..32].copy_from_slice(&mac.0);
}

/// A neighbour advertisement (RFC 4861 §4.4) with a target link-layer address option:
/// 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborAdvert {
    /// The router flag.
    pub router: bool,
    /// The solicited flag (set in answers to a solicitation).
    pub solicited: bool,
    /// The override flag.
    pub override_: bool,
    /// The address being advertised.
    pub target: Ipv6Addr,
    /// The link-layer address of `target`.
    pub target_lladdr: ethernet::Address,
}

impl NeighborAdvert {
    /// The message length: 24 bytes and one 8-byte option.
    pub const LEN: usize = 32;

    /// Writes type 136, code 0, the flags, the target and option 2 (length 1, the MAC) into
    /// `buf[..32]`; the checksum is left 0 (fill it with [`Icmpv6Packet::fill_checksum`] over
    /// exactly the 32 bytes).
    ///
    /// # Panics
    /// If `buf` is shorter than 32 bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        let flags = if self.router { NA_ROUTER } else { 0 }
            | if self.solicited { NA_SOLICITED } else { 0 }
            | if self.override_ { NA_OVERRIDE } else { 0 };
        emit_ndp(
            buf,
            message::NEIGHBOR_ADVERT,
            flags,
            self.target,
            ndp_option::TARGET_LLADDR,
            self.target_lladdr,
        );
    }
}

/// A neighbour solicitation (RFC 4861 §4.3) with a source link-layer address option:
/// 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborSolicit {
    /// The address being resolved.
    pub target: Ipv6Addr,
    /// The sender's link-layer address.
    pub source_lladdr: ethernet::Address,
}

impl NeighborSolicit {
    /// The message length: 24 bytes and one 8-byte option.
    pub const LEN: usize = 32;

    /// Writes type 135, code 0, reserved 0, the target and option 1 (length 1, the MAC) into
    /// `buf[..32]`; the checksum is left 0 (fill it with [`Icmpv6Packet::fill_checksum`] over
    /// exactly the 32 bytes).
    ///
    /// # Panics
    /// If `buf` is shorter than 32 bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        emit_ndp(
            buf,
            message::NEIGHBOR_SOLICIT,
            0,
            self.target,
            ndp_option::SOURCE_LLADDR,
            self.source_lladdr,
        );
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Icmpv6Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.check_len().is_err() {
            return f.write_str("ICMPv6 (truncated)");
        }
        match self.msg_type() {
            t @ (message::ECHO_REQUEST | message::ECHO_REPLY) => write!(
                f,
                "ICMPv6 echo {} ident={} seq={} len={}",
                if t == message::ECHO_REQUEST {
                    "request"
                } else {
                    "reply"
                },
                self.echo_ident(),
                self.echo_seq_no(),
                self.echo_data().len()
            ),
            message::NEIGHBOR_SOLICIT => write!(f, "ICMPv6 NS target={}", self.ndp_target()),
            message::NEIGHBOR_ADVERT => write!(f, "ICMPv6 NA target={}", self.ndp_target()),
            t => write!(f, "ICMPv6 type={t} code={}", self.msg_code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv6::{self, Ipv6Packet};

    const A1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const A2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    const LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe12, 0x3456);
    const MAC: ethernet::Address = ethernet::Address([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    // 2001:db8::1 → 2001:db8::2: echo request ident 0x1234 seq 1, data "abcd"; checksum
    // 0x4d48 computed outside Rust.
    static ECHO_REQUEST: [u8; 52] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x3a, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x80, 0x00, 0x4d, 0x48, 0x12,
        0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64,
    ];

    // A neighbour solicitation shaped as Linux sends it for address resolution: from its
    // link-local fe80::5054:ff:fe12:3456 to the solicited-node group of the target
    // 2001:db8::1 (ff02::1:ff00:1), hop limit 255, with a source link-layer address option
    // 52:54:00:12:34:56. Checksum 0x42ea computed outside Rust.
    static NEIGHBOR_SOLICIT: [u8; 72] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0x01, 0x87, 0x00, 0x42, 0xea, 0x00,
        0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x01, 0x01, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
    ];

    #[test]
    fn echo_request_fields() {
        let ip = Ipv6Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(ip.next_header(), ipv6::next_header::ICMPV6);
        let p = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(p.msg_type(), message::ECHO_REQUEST);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0x4d48);
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x1234, 1));
        assert_eq!(p.echo_data(), b"abcd");
        assert!(p.verify_checksum(A1, A2));
        #[cfg(not(fuzzing))]
        assert!(!p.verify_checksum(A2, A2));
    }

    #[test]
    fn echo_reply_in_place() {
        // What netstack6 does: flip the type, refill the checksum with swapped addresses.
        let mut b = ECHO_REQUEST;
        let mut p = Icmpv6Packet::new_checked(&mut b[40..]).unwrap();
        p.set_msg_type(message::ECHO_REPLY);
        p.fill_checksum(A2, A1);
        assert!(p.verify_checksum(A2, A1));
        // Type +1 (0x0100 in the first word) lowers the checksum by 0x0100.
        assert_eq!(p.checksum(), 0x4c48);
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x1234, 1));
    }

    #[test]
    fn neighbor_solicit_as_linux_sends_it() {
        let ip = Ipv6Packet::new_checked(&NEIGHBOR_SOLICIT[..]).unwrap();
        assert_eq!(ip.hop_limit(), 255);
        assert_eq!(ip.src_addr(), LL);
        assert_eq!(ip.dst_addr(), ipv6::solicited_node(A1));
        let p = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(p.msg_type(), message::NEIGHBOR_SOLICIT);
        assert!(p.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert_eq!(p.ndp_target(), A1);
        assert_eq!(p.ndp_lladdr_option(ndp_option::SOURCE_LLADDR), Some(MAC));
        assert_eq!(p.ndp_lladdr_option(ndp_option::TARGET_LLADDR), None);
        // And we build the same bytes.
        let mut out = [0xeeu8; 32];
        NeighborSolicit {
            target: A1,
            source_lladdr: MAC,
        }
        .emit(&mut out);
        let mut q = Icmpv6Packet::new_unchecked(&mut out[..]);
        q.fill_checksum(LL, ipv6::solicited_node(A1));
        assert_eq!(out[..], NEIGHBOR_SOLICIT[40..]);
    }

    #[test]
    fn neighbor_advert_emit_parses_back() {
        let na = NeighborAdvert {
            router: false,
            solicited: true,
            override_: true,
            target: A1,
            target_lladdr: MAC,
        };
        let mut buf = [0xeeu8; NeighborAdvert::LEN];
        na.emit(&mut buf);
        assert_eq!(buf[2..4], [0, 0]);
        let mut p = Icmpv6Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum(A1, LL);
        assert!(p.verify_checksum(A1, LL));
        assert_eq!(p.msg_type(), message::NEIGHBOR_ADVERT);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.na_flags(), (false, true, true));
        assert_eq!(p.ndp_target(), A1);
        assert_eq!(p.ndp_lladdr_option(ndp_option::TARGET_LLADDR), Some(MAC));
        assert_eq!(p.ndp_lladdr_option(ndp_option::SOURCE_LLADDR), None);
        assert_eq!(buf[4..8], [0x60, 0, 0, 0]);
        assert_eq!(buf[24..26], [2, 1]);
        for (r, s, o) in [
            (true, false, false),
            (false, false, true),
            (true, true, true),
        ] {
            NeighborAdvert {
                router: r,
                solicited: s,
                override_: o,
                ..na
            }
            .emit(&mut buf);
            assert_eq!(Icmpv6Packet::new_unchecked(&buf[..]).na_flags(), (r, s, o));
        }
    }

    #[test]
    fn options_are_walked_and_malformed_ones_refused() {
        let mut b = [0u8; 56];
        b[..32].copy_from_slice(&NEIGHBOR_SOLICIT[40..]);
        // An unknown 16-byte option first, then the target lladdr option.
        b[24] = 14;
        b[25] = 2;
        b[40] = 2;
        b[41] = 1;
        b[42..48].copy_from_slice(&MAC.0);
        let p = Icmpv6Packet::new_unchecked(&b[..48]);
        assert_eq!(p.ndp_lladdr_option(2), Some(MAC));
        assert_eq!(p.ndp_lladdr_option(1), None);
        // Length 0 stops the walk.
        let mut z = b;
        z[25] = 0;
        assert_eq!(
            Icmpv6Packet::new_unchecked(&z[..48]).ndp_lladdr_option(2),
            None
        );
        // An option running past the end.
        assert_eq!(
            Icmpv6Packet::new_unchecked(&b[..47]).ndp_lladdr_option(2),
            None
        );
        assert_eq!(
            Icmpv6Packet::new_unchecked(&b[..39]).ndp_lladdr_option(2),
            None
        );
        // A matching option of the wrong length (16 bytes).
        let mut w = b;
        w[24] = 2;
        assert_eq!(
            Icmpv6Packet::new_unchecked(&w[..48]).ndp_lladdr_option(2),
            None
        );
        // No options at all, or a buffer shorter than the fixed part.
        assert_eq!(
            Icmpv6Packet::new_unchecked(&b[..24]).ndp_lladdr_option(1),
            None
        );
        assert_eq!(
            Icmpv6Packet::new_unchecked(&b[..10]).ndp_lladdr_option(1),
            None
        );
        // One trailing byte (no room for type and length) is ignored.
        let mut t = [0xffu8; 33];
        t[..32].copy_from_slice(&NEIGHBOR_SOLICIT[40..]);
        let p = Icmpv6Packet::new_unchecked(&t[..]);
        assert_eq!(p.ndp_lladdr_option(1), Some(MAC));
        assert_eq!(p.ndp_lladdr_option(2), None);
    }

    #[test]
    fn truncated_messages_are_refused() {
        let ns = &NEIGHBOR_SOLICIT[40..];
        assert!(Icmpv6Packet::new_checked(&ns[..23]).is_err());
        assert!(Icmpv6Packet::new_checked(&ns[..24]).is_ok());
        let echo = &ECHO_REQUEST[40..];
        assert!(Icmpv6Packet::new_checked(&echo[..7]).is_err());
        assert!(Icmpv6Packet::new_checked(&echo[..8]).is_ok());
        assert!(Icmpv6Packet::new_checked(&echo[..3]).is_err());
        // Another type needs only 4 bytes; the echo/NDP accessors then read zeros.
        let p = Icmpv6Packet::new_checked(&[1u8, 0, 0, 0][..]).unwrap();
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0, 0));
        assert_eq!(p.ndp_target(), Ipv6Addr::UNSPECIFIED);
        assert_eq!(p.na_flags(), (false, false, false));
        assert!(p.echo_data().is_empty());
    }
}
