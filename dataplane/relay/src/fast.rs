//! The fast lane: an IPv4 RTP packet from a leg's latched remote, relayed unchanged to a
//! plain bridged peer — what nearly every packet of a bridged call is.
//!
//! [`Relay::forward_v4`] first checks, reading only the two legs' hot lines, that the packet
//! needs nothing but counting and new headers:
//! - the RTP fixed header is the whole header (first byte `0x80`: version 2, no padding,
//!   extension or CSRC) and the packet is not RTCP multiplexed on the RTP port (RFC 5761);
//! - the receiving leg is plain, latched to exactly this source, and its media clock only
//!   needs the arrival noted ([`crate::leg::Leg::fast_rx`]);
//! - it is bridged to a plain peer with an IPv4 remote, the same payload types, no
//!   announcement playing and no marker to set ([`crate::leg::Leg::fast_tx`]).
//!
//! If any test fails nothing has changed and the caller takes the full path
//! ([`Relay::handle_datagram`]), which gives the same result for packets the lane takes (a
//! test drives both over legs in every state). Otherwise it updates the jitter, the media
//! clock and the counters exactly as the full path does and says where to send the packet.
//!
//! A backend that can send a datagram without copying it (the DPDK worker rewrites the
//! frame's headers in place) takes its packets through this lane in the receive loop and
//! hands only the rest to the full path; the packets of one burst that take the full path
//! may then leave after later ones of the lane. Only a leg changing state (latching, its
//! media clock starting, a marker after an announcement) sends a packet to the full path,
//! so two packets of one leg in one burst are reordered at most once per such change.

use std::net::SocketAddrV4;
use std::time::Instant;

use crate::leg::v4_key_of;
use crate::table::{RX, TX};
use crate::{LegTable, Relay, WorkerStats};

/// The relay's clock at one burst's arrival ([`Relay::stamp`]), given to every packet of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// In 8 kHz units since the relay's epoch (the jitter's clock).
    pub(crate) units: u32,
    /// In nanoseconds since the epoch, plus one (the media clock's).
    pub(crate) nanos: u64,
}

/// Where the fast lane sends a packet, unchanged: from our media address `from_addr` (an
/// index), port `from_port`, to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastForward {
    /// Our local media address to send from (the peer leg's).
    pub from_addr: u8,
    /// Our local port to send from (the peer leg's RTP port).
    pub from_port: u16,
    /// The peer's remote address: its four octets as they lie in memory, read as one
    /// native-endian word (`u32::from_ne_bytes(ip.octets())`), so that a backend writes it
    /// into a header and tests it against a netmask without a byte swap.
    pub to_ip: u32,
    /// The peer's remote port.
    pub to_port: u16,
}

impl FastForward {
    /// The peer's remote.
    #[must_use]
    pub fn to(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.to_ip.to_ne_bytes().into(), self.to_port)
    }
}

impl Relay {
    /// The relay's clock at `now`, for the packets of one burst.
    #[inline]
    pub fn stamp(&mut self, now: Instant) -> Stamp {
        let (units, nanos) = self.clock.stamp(now);
        Stamp { units, nanos }
    }

    /// The fast lane for the packets of one burst received at `now` (see the module docs).
    /// Its counts reach [`Self::stats`] when the lane is dropped.
    #[inline]
    pub fn lane(&mut self, now: Instant) -> Lane<'_> {
        let stamp = self.stamp(now);
        Lane {
            table: &mut self.table,
            stats: &mut self.stats,
            stamp,
            packets: 0,
            bytes: 0,
        }
    }
}

/// The fast lane over one burst ([`Relay::lane`]): borrows the relay's leg table and keeps
/// the burst's packet and byte counts in registers until dropped.
#[derive(Debug)]
pub struct Lane<'r> {
    table: &'r mut LegTable,
    stats: &'r mut WorkerStats,
    stamp: Stamp,
    packets: u64,
    bytes: u64,
}

/// Live legs from which [`Lane::prefetch_pays`]: their hot lines and counters (96 bytes a
/// leg) then outgrow a core's L2 cache (about 1 MB), and asking for a burst's legs before
/// handling it overlaps the misses; below, everything is cached and asking only costs.
pub const PREFETCH_FROM_LEGS: usize = 8192;

impl Lane<'_> {
    /// Whether asking the cache for a burst's legs first pays ([`PREFETCH_FROM_LEGS`]).
    #[inline]
    #[must_use]
    pub fn prefetch_pays(&self) -> bool {
        self.table.len() >= PREFETCH_FROM_LEGS
    }

    /// Asks the cache for the leg and counters a packet to our media address `dst_addr`
    /// (an index), port `dst_port` will touch (the first stage of a burst).
    #[inline]
    pub fn prefetch(&self, dst_addr: u8, dst_port: u16) {
        if let Some(i) = self.table.index_of_local(dst_addr, dst_port) {
            self.table.prefetch(i);
        }
    }

    /// [`Self::prefetch`] for the leg's bridged peer (reads the leg's line: ask for it
    /// first, a few packets earlier).
    #[inline]
    pub fn prefetch_peer(&self, dst_addr: u8, dst_port: u16) {
        if let Some(i) = self.table.index_of_local(dst_addr, dst_port) {
            self.table.prefetch_peer(i);
        }
    }

    /// The fast lane for an RTP packet `rtp` (the UDP payload) from `src` to our media
    /// address `dst_addr` (an index), port `dst_port`: counted and forwarded unchanged, or
    /// `None` with nothing changed, for the full path (see the module docs).
    #[inline(always)]
    pub fn forward_v4(
        &mut self,
        dst_addr: u8,
        dst_port: u16,
        src: SocketAddrV4,
        rtp: &[u8],
    ) -> Option<FastForward> {
        if dst_port & 1 != 0 {
            return None;
        }
        let idx = self.table.index_of_local(dst_addr, dst_port)?;
        let f = forward_at(self.table, self.stamp, idx, src, rtp)?;
        self.packets += 1;
        self.bytes += rtp.len() as u64;
        Some(f)
    }
}

impl Drop for Lane<'_> {
    fn drop(&mut self) {
        count(self.stats, self.packets, self.bytes);
    }
}

/// Adds `packets` relayed by the fast lane (`bytes` each way) to the worker's counters.
#[inline(always)]
pub(crate) fn count(stats: &mut WorkerStats, packets: u64, bytes: u64) {
    stats.rx_packets += packets;
    stats.rx_bytes += bytes;
    stats.tx_packets += packets;
    stats.tx_bytes += bytes;
}

/// The fast lane for the leg in slot `idx` (found from an even port); the caller counts
/// the packet in [`WorkerStats`] when it is taken ([`count`]).
#[inline(always)]
pub(crate) fn forward_at(
    table: &mut LegTable,
    stamp: Stamp,
    idx: usize,
    src: SocketAddrV4,
    rtp: &[u8],
) -> Option<FastForward> {
    let h: &[u8; wire::rtp::HEADER_LEN] = rtp.first_chunk()?;
    if h[0] != 0x80 || matches!(h[1], 192..=223) {
        return None;
    }
    let (l, fl, p, fp) = table.with_peer_mut(idx)?;
    if !l.fast_rx(v4_key_of(src)) {
        return None;
    }
    let to = p.fast_tx()?;
    // Taken: from here on, what the full path does for this packet.
    let ts = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    let ssrc = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
    let len = rtp.len() as u64;
    l.jitter.update(stamp.units, ts, ssrc);
    l.last_rx = stamp.nanos;
    fl[RX].packets += 1;
    fl[RX].bytes += len;
    fp[TX].packets += 1;
    fp[TX].bytes += len;
    Some(FastForward {
        from_addr: p.id.addr(),
        from_port: p.id.port(),
        to_ip: to as u32,
        to_port: (to >> 32) as u16,
    })
}
