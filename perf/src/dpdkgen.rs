//! The traffic the DPDK scenarios send: 172-byte RTP (G.711, 20 ms) in Ethernet + IPv4 + UDP,
//! 214-byte frames, one per bridged leg, and the legs' addressing.
//!
//! Leg `i` is bridged with leg `i ^ 1`. Its remote peer is `10.x.y.z:40000` (`x.y.z` = `i`),
//! its local port `1024 + 2 (i mod 32256)` on media address `i / 32256` (198.18.0.1, then
//! 198.18.0.101, .102, …: at most 32 256 legs fit one address, each holding an even RTP port
//! and the odd RTCP port above it). The relay's side is reached through a gateway
//! ([`GW`], [`GW_MAC`]) pre-loaded as a neighbour.
//!
//! A generator keeps one 64-byte header line per leg ([`Templates`]): everything up to and
//! including the RTP header plus the first payload bytes, where it writes a send timestamp
//! ([`stamp`], at [`STAMP_OFF`]). The rest of the payload is the same for every leg and never
//! touched by a relay or by testpmd, so a returned frame can be recycled by rewriting only its
//! header line. The template's UDP checksum is computed with a zero stamp; [`stamp`] patches
//! it incrementally (RFC 1624), so the relay's software checksum check still passes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use dp_api::LegId;
use wire::ethernet::{ethertype, Address, EthernetFrame};
use wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use wire::rtp::RtpRepr;
use wire::udp::{UdpPacket, UdpRepr};

/// The first leg's local port.
pub const FIRST_PORT: u16 = 1024;
/// Legs per media address.
pub const PER_ADDR: usize = (65536 - FIRST_PORT as usize) / 2;
/// The most legs the addressing scheme gives.
pub const MAX_LEGS: usize = PER_ADDR * dp_api::MAX_ADDRESSES;
/// The relay's first media address.
pub const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The gateway every remote peer is reached through.
pub const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
/// The gateway's MAC (the generator's side of the link).
pub const GW_MAC: Address = Address([0x02, 0xcb, 0, 0, 0, 0xfe]);
/// The relay's (or testpmd's) MAC, given to its virtual device.
pub const RELAY_MAC: Address = Address([0x02, 0xcb, 0, 0, 0, 0x01]);
/// The RTP packet: 12-byte header + 160 bytes of G.711.
pub const RTP_LEN: usize = 172;
/// The whole frame.
pub const FRAME_LEN: usize = 14 + 20 + 8 + RTP_LEN;
/// The per-leg header line a generator rewrites in a recycled frame.
pub const HEADER_LEN: usize = 64;
/// Where the 8-byte send timestamp goes: the first RTP payload bytes.
pub const STAMP_OFF: usize = 14 + 20 + 8 + 12;
/// The UDP checksum field.
const UDP_CSUM_OFF: usize = 14 + 20 + 6;
/// The remote peers' UDP port.
pub const REMOTE_PORT: u16 = 40000;

/// Leg `i`'s remote peer.
#[must_use]
pub fn remote(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(remote_ip(i)), REMOTE_PORT)
}

fn remote_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)
}

/// Leg `i`'s local port.
#[must_use]
pub fn leg_port(i: usize) -> u16 {
    FIRST_PORT + 2 * (i % PER_ADDR) as u16
}

/// Leg `i`'s media address index.
#[must_use]
pub fn leg_addr(i: usize) -> u8 {
    (i / PER_ADDR) as u8
}

/// Media address `a`: [`US`] for 0, then 198.18.0.101, .102, …
#[must_use]
pub fn addr_ip(a: u8) -> Ipv4Addr {
    if a == 0 {
        US
    } else {
        Ipv4Addr::new(198, 18, 0, 100 + a)
    }
}

/// The media addresses `legs` legs need.
#[must_use]
pub fn addresses_for(legs: usize) -> usize {
    legs.div_ceil(PER_ADDR).max(1)
}

/// Leg `i`'s id.
#[must_use]
pub fn leg_id(i: usize) -> LegId {
    LegId::at(leg_addr(i), leg_port(i), 1)
}

/// The last local port `legs` legs use on the first media address (RTCP port included).
#[must_use]
pub fn last_port(legs: usize) -> u16 {
    FIRST_PORT + (2 * legs.clamp(1, PER_ADDR) - 1) as u16
}

/// The whole frame leg `i`'s peer sends to the relay at `relay_mac`, timestamp zero.
#[must_use]
pub fn frame(i: usize, relay_mac: Address) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst_addr(relay_mac);
    eth.set_src_addr(GW_MAC);
    eth.set_ethertype(ethertype::IPV4);
    let src = remote_ip(i);
    let us = addr_ip(leg_addr(i));
    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    Ipv4Repr {
        src_addr: src,
        dst_addr: us,
        next_header: protocol::UDP,
        payload_len: 8 + RTP_LEN,
        hop_limit: 64,
    }
    .emit(&mut ip);
    // The first 8 payload bytes are the timestamp (zero here), the rest A-law silence.
    let mut payload = [0xd5u8; RTP_LEN - 12];
    payload[..8].fill(0);
    let mut rtp = [0u8; RTP_LEN];
    RtpRepr::simple(
        8,
        i as u16,
        160 * i as u32,
        0x1000_0000 + i as u32,
        &payload,
    )
    .emit(&mut rtp);
    UdpRepr {
        src_port: REMOTE_PORT,
        dst_port: leg_port(i),
        payload_len: RTP_LEN,
    }
    .emit(
        &mut UdpPacket::new_unchecked(ip.payload_mut()),
        src,
        us,
        &rtp,
    );
    f
}

/// Every leg's header line and the shared rest of the frame.
#[derive(Debug, Clone)]
pub struct Templates {
    /// Leg `i`'s first [`HEADER_LEN`] bytes (timestamp zero).
    pub headers: Vec<[u8; HEADER_LEN]>,
    /// Bytes [`HEADER_LEN`].. of every frame.
    pub tail: [u8; FRAME_LEN - HEADER_LEN],
}

impl Templates {
    /// The frames of `legs` legs addressed to `relay_mac`.
    #[must_use]
    pub fn new(legs: usize, relay_mac: Address) -> Self {
        let mut tail = [0u8; FRAME_LEN - HEADER_LEN];
        let headers = (0..legs)
            .map(|i| {
                let f = frame(i, relay_mac);
                tail.copy_from_slice(&f[HEADER_LEN..]);
                let mut h = [0u8; HEADER_LEN];
                h.copy_from_slice(&f[..HEADER_LEN]);
                h
            })
            .collect();
        Self { headers, tail }
    }

    /// Legs.
    #[must_use]
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// No legs.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }
}

/// Writes `ts` at [`STAMP_OFF`] of a frame built from a template (zero stamp there) and
/// patches its UDP checksum so it stays valid.
///
/// # Panics
/// If `frame` is shorter than [`HEADER_LEN`].
#[inline]
pub fn stamp(frame: &mut [u8], ts: u64) {
    let b = ts.to_be_bytes();
    frame[STAMP_OFF..STAMP_OFF + 8].copy_from_slice(&b);
    let old = u16::from_be_bytes([frame[UDP_CSUM_OFF], frame[UDP_CSUM_OFF + 1]]);
    // RFC 1624: HC' = ~(~HC + ~m + m'); the old words m are zero, so HC' = ~(~HC + m').
    let mut sum = u32::from(!old);
    for w in b.chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let mut c = !(sum as u16);
    if c == 0 {
        // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
        c = 0xffff;
    }
    frame[UDP_CSUM_OFF..UDP_CSUM_OFF + 2].copy_from_slice(&c.to_be_bytes());
}

/// The send timestamp of a returned frame (0 if it is too short to hold one).
#[inline]
#[must_use]
pub fn read_stamp(frame: &[u8]) -> u64 {
    frame
        .get(STAMP_OFF..STAMP_OFF + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_ok(f: &[u8], i: usize) -> bool {
        let udp = UdpPacket::new_checked(&f[34..]).unwrap();
        udp.verify_checksum(remote_ip(i), addr_ip(leg_addr(i)))
    }

    #[test]
    fn stamped_frames_keep_a_valid_udp_checksum() {
        let t = Templates::new(70_000, RELAY_MAC);
        for i in [0usize, 1, 2, 999, 32_255, 32_256, 69_999] {
            let mut f = [0u8; FRAME_LEN];
            f[..HEADER_LEN].copy_from_slice(&t.headers[i]);
            f[HEADER_LEN..].copy_from_slice(&t.tail);
            assert!(udp_ok(&f, i), "template {i}");
            for ts in [0u64, 1, 0xffff, 0x1234_5678_9abc_def0, u64::MAX, 42 << 40] {
                let mut g = f;
                stamp(&mut g, ts);
                assert_eq!(read_stamp(&g), ts);
                assert!(udp_ok(&g, i), "leg {i} stamp {ts:#x}");
            }
        }
        assert_eq!(frame(5, RELAY_MAC).len(), 214);
    }

    #[test]
    fn addressing() {
        assert_eq!(leg_port(0), 1024);
        assert_eq!(leg_port(PER_ADDR), 1024);
        assert_eq!(leg_addr(PER_ADDR), 1);
        assert_eq!(addr_ip(1), Ipv4Addr::new(198, 18, 0, 101));
        assert_eq!(addresses_for(100_000), 4);
        assert_eq!(last_port(1000), 1024 + 1999);
    }
}
