//! The per-packet fast path: [`Relay::handle_packet`], [`Relay::handle_packet_at`] and
//! [`Relay::handle_datagram`] (RTP and RTCP: source check, latching, relaying; payload
//! mapping and SRTP out of line), and [`Relay::handle_tx_refused_at`]. Nothing here
//! allocates, locks, logs or formats (see the crate docs).

use std::net::SocketAddr;
use std::time::Instant;

use dp_api::{DropReason, Event};
use wire::rtp::RtpPacket;

use crate::fast::{self, Stamp};
use crate::leg::{Flow, Leg, MediaClock, SourceCheck};
use crate::table::{RX, TX};
use crate::{payload, Datagram, Relay, Verdict, WorkerStats};

/// Packets per stage of [`Relay::handle_packets`] (a burst is handled in chunks of this
/// many: the first stage loads their legs, the second handles them).
const STAGE: usize = 32;

/// One received packet of a burst handed to [`Relay::handle_packets`]: the caller's own
/// packet type (an mbuf, a pre-built buffer), read and given its verdict in place.
pub trait BurstPacket {
    /// The local media address (an index) and port it arrived on.
    fn dst(&self) -> (u8, u16);
    /// Where it came from.
    fn src(&self) -> SocketAddr;
    /// The UDP payload, edited in place when forwarded (its length does not change: plain
    /// legs, as [`Relay::handle_packet_at`]).
    fn payload_mut(&mut self) -> &mut [u8];
    /// Takes the relay's verdict for it.
    fn set_verdict(&mut self, v: Verdict);
}

impl Relay {
    #[inline]
    fn drop_on(&mut self, idx: usize, reason: DropReason) -> Verdict {
        if let Some(l) = self.table.get_mut(idx) {
            l.cold.stats.drops.add(reason);
        }
        self.stats.drops.add(reason);
        Verdict::Drop(reason)
    }

    /// Handles one received UDP payload addressed to our `dst_port` on the first media
    /// address: [`Self::handle_packet_at`] with address 0.
    #[inline]
    pub fn handle_packet(
        &mut self,
        now: Instant,
        src: SocketAddr,
        dst_port: u16,
        payload: &mut [u8],
    ) -> Verdict {
        self.handle_packet_at(now, src, 0, dst_port, payload)
    }

    /// Handles a burst of received packets, vector-style: first every packet's leg, its
    /// peer and both legs' counters are asked for ([`crate::LegTable::prefetch`]), so that
    /// the burst's cache misses overlap, then each packet takes the fast lane
    /// ([`crate::Lane`]) or goes through
    /// [`Self::handle_packet_at`] and gets its verdict. Same results as calling
    /// [`Self::handle_packet_at`] for each in turn. Never inlined: one call per burst, and
    /// profilers (callgrind's `--toggle-collect='*Relay*handle_packet*'`) see the relay's
    /// own cost.
    #[inline(never)]
    pub fn handle_packets<P: BurstPacket>(&mut self, now: Instant, burst: &mut [P]) {
        let stamp = self.clock.stamp(now);
        let st = Stamp {
            units: stamp.0,
            nanos: stamp.1,
        };
        let (mut fast_packets, mut fast_bytes) = (0, 0);
        for chunk in burst.chunks_mut(STAGE) {
            // Stage 1: each packet's slot (RTP ports only; anything else takes the full
            // path below) and its leg's line and counters asked for; then, once those are
            // on their way, the bridged peers' (each leg's line names its peer).
            let mut slots = [u32::MAX; STAGE];
            for (slot, p) in slots.iter_mut().zip(chunk.iter()) {
                let (addr, port) = p.dst();
                if port & 1 == 0 {
                    if let Some(i) = self.table.index_of_local(addr, port) {
                        *slot = i as u32;
                        self.table.prefetch(i);
                    }
                }
            }
            for &slot in &slots[..chunk.len()] {
                if slot != u32::MAX {
                    self.table.prefetch_peer(slot as usize);
                }
            }
            // Stage 2: the packets, in order: the fast lane, else the full path.
            for (&slot, p) in slots.iter().zip(chunk.iter_mut()) {
                let src = p.src();
                if slot != u32::MAX {
                    if let SocketAddr::V4(src4) = src {
                        let rtp = p.payload_mut();
                        let len = rtp.len() as u64;
                        if let Some(f) =
                            fast::forward_at(&mut self.table, st, slot as usize, src4, rtp)
                        {
                            fast_packets += 1;
                            fast_bytes += len;
                            p.set_verdict(Verdict::Forward {
                                from_addr: f.from_addr,
                                from_port: f.from_port,
                                to: SocketAddr::V4(f.to()),
                            });
                            continue;
                        }
                    }
                }
                let payload = p.payload_mut();
                let v = if slot != u32::MAX && !is_muxed_rtcp(payload) {
                    let len = payload.len();
                    self.stats.rx_packets += 1;
                    self.stats.rx_bytes += len as u64;
                    let mut d = Datagram {
                        buf: payload,
                        len,
                        payload_rewritten: false,
                    };
                    self.rtp::<false>(now, stamp, slot as usize, src, &mut d)
                } else {
                    let (addr, port) = p.dst();
                    self.handle_packet_at(now, src, addr, port, p.payload_mut())
                };
                p.set_verdict(v);
            }
        }
        fast::count(&mut self.stats, fast_packets, fast_bytes);
    }

    /// Stage 1 of [`Self::handle_packets`] alone, for callers that hand packets over one at
    /// a time ([`Self::handle_datagram`]): asks the cache for the legs (and their peers and
    /// counters) of packets about to arrive on these local (address, port)s, so that their
    /// cache misses overlap. Prefetches only; no state changes.
    pub fn touch_legs(&self, dsts: impl Iterator<Item = (u8, u16)> + Clone) {
        for (addr, port) in dsts.clone() {
            if let Some(i) = self.table.index_of_local(addr, port) {
                self.table.prefetch(i);
            }
        }
        for (addr, port) in dsts {
            if let Some(i) = self.table.index_of_local(addr, port) {
                self.table.prefetch_peer(i);
            }
        }
    }

    /// Handles one received UDP payload addressed to our media address `dst_addr` (an index),
    /// port `dst_port`, editing it in place when it is forwarded (marker bit after the
    /// switch; payload type and G.711 law between legs whose payload types differ, which
    /// keeps the length). See the crate docs for the rules.
    ///
    /// The payload fills the slice, so its length cannot change here: this suits plain legs.
    /// A packet received on an SRTP leg, or relayed toward one, is dropped as
    /// [`DropReason::SrtpNoRoom`]; backends use [`Self::handle_datagram`].
    pub fn handle_packet_at(
        &mut self,
        now: Instant,
        src: SocketAddr,
        dst_addr: u8,
        dst_port: u16,
        payload: &mut [u8],
    ) -> Verdict {
        let len = payload.len();
        let mut d = Datagram {
            buf: payload,
            len,
            payload_rewritten: false,
        };
        self.packet::<false>(now, src, dst_addr, dst_port, &mut d)
    }

    /// [`Self::handle_packet_at`] for a payload in a buffer with room after it: SRTP legs
    /// transcrypt in place ([`dp_api::Command::SetSrtp`]). A packet received on an SRTP leg
    /// shrinks by its trailer; one relayed toward an SRTP leg grows by at most
    /// [`crate::TRAILER_ROOM`] bytes, which must fit in `d.buf` ([`DropReason::SrtpNoRoom`]
    /// otherwise). On [`Verdict::Forward`], send `d.buf[..d.len]`. Between two plain legs
    /// `d.len` never changes, `d.payload_rewritten` stays `false`, and this is exactly
    /// [`Self::handle_packet_at`].
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        src: SocketAddr,
        dst_addr: u8,
        dst_port: u16,
        d: &mut Datagram<'_>,
    ) -> Verdict {
        d.len = d.len.min(d.buf.len());
        self.packet::<true>(now, src, dst_addr, dst_port, d)
    }

    /// The packet path (`d.len <= d.buf.len()`); `RESIZE` says whether the caller can take
    /// a changed length.
    #[inline(always)]
    fn packet<const RESIZE: bool>(
        &mut self,
        now: Instant,
        src: SocketAddr,
        dst_addr: u8,
        dst_port: u16,
        d: &mut Datagram<'_>,
    ) -> Verdict {
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += d.len as u64;
        match self.table.index_of_local(dst_addr, dst_port) {
            Some(idx) if dst_port & 1 == 0 && !is_muxed_rtcp(&d.buf[..d.len]) => {
                let stamp = self.clock.stamp(now);
                self.rtp::<RESIZE>(now, stamp, idx, src, d)
            }
            Some(idx) => self.rtcp::<RESIZE>(idx, src, d, dst_port & 1 == 1),
            None => self.unknown_port(),
        }
    }

    #[cold]
    fn unknown_port(&mut self) -> Verdict {
        self.stats.drops.add(DropReason::UnknownPort);
        Verdict::Drop(DropReason::UnknownPort)
    }

    /// RTP on the even port of the leg in slot `idx`; `(arrival, nanos)` is `now` on the
    /// relay's clock (8 kHz units for the jitter, nanoseconds for the media clock).
    #[inline(always)]
    fn rtp<const RESIZE: bool>(
        &mut self,
        now: Instant,
        (arrival, nanos): (u32, u64),
        idx: usize,
        src: SocketAddr,
        d: &mut Datagram<'_>,
    ) -> Verdict {
        let rx_len = d.len as u64;
        let Some((l, f)) = self.table.with_flows_mut(idx) else {
            return self.unknown_port();
        };
        f[RX].packets += 1;
        f[RX].bytes += rx_len;
        // An SRTP leg authenticates (and decrypts) before anything else trusts the packet:
        // a packet that fails never latches, never restarts the media clock, never leaves.
        // (libsrtp checks the header's CSRC and extension lengths itself; the RTP checks
        // below then see the plain packet, whose padding count is no longer hidden behind
        // the authentication tag.)
        let l = if l.srtp {
            // Without RESIZE the caller cannot take the new length (nor `d` escape).
            if !RESIZE {
                return self.drop_on(idx, DropReason::SrtpNoRoom);
            }
            match self.srtp_unprotect(idx, false, d) {
                Ok(l) => l,
                Err(v) => return v,
            }
        } else {
            l
        };
        let (ts, ssrc) = match RtpPacket::new_checked(&d.buf[..d.len]) {
            Ok(p) if p.version() == wire::rtp::VERSION => (p.timestamp(), p.ssrc()),
            _ => return self.drop_on(idx, DropReason::Malformed),
        };
        let l = if l.is_latched_to(src) {
            l
        } else {
            match self.rtp_source_slow(now, idx, src, &d.buf[..d.len]) {
                Ok(l) => l,
                Err(v) => return v,
            }
        };
        l.jitter.update(arrival, ts, ssrc);
        // The media-timeout clock restarts (start_media_clock, inline for the usual case of
        // a timer already queued or no timeout configured).
        l.last_rx = nanos;
        let peer = l.peer;
        if matches!(l.media, MediaClock::Idle | MediaClock::TimedOut) {
            self.start_media_clock(now, idx);
        }

        let Some(pidx) = peer.map(|p| p as usize) else {
            return self.drop_on(idx, DropReason::NotBridged);
        };
        let Some((p, pf)) = self.table.with_flows_mut(pidx) else {
            return self.drop_on(idx, DropReason::NotBridged);
        };
        if p.is_playing() {
            return self.drop_on(idx, DropReason::NotBridged);
        }
        let Some(to) = p.remote() else {
            return self.drop_on(idx, DropReason::PeerNoRemote);
        };
        // One test for both out-of-line cases (an SRTP peer, payload types that differ).
        if p.srtp | p.convert {
            // The datagram's parts, not `d`: handing `d` itself out of line would make
            // `handle_packet_at` keep it in memory for every packet.
            let (v, len, rewritten) =
                self.rtp_forward_slow::<RESIZE>(idx, pidx, to, &mut *d.buf, d.len);
            d.len = len;
            d.payload_rewritten |= rewritten;
            return v;
        }
        forward_plain(p, &mut pf[TX], &mut self.stats, to, d)
    }

    /// The end of [`Self::rtp`] toward a peer leg (slot `pidx`) that is an SRTP leg or
    /// whose payload types differ from the receiving leg's ([`Leg::convert`]): first map the
    /// payload type and convert the G.711 law ([`payload::map_packet`]; a packet without a
    /// counterpart is dropped and counted on `idx`), then the marker edit, and encryption
    /// last toward an SRTP peer ([`Self::rtp_forward_srtp`]). Takes the datagram
    /// `buf[..len]` and returns the verdict, the new length and whether bytes past the fixed
    /// header changed. Out of line, so that the plain path stays as it was.
    #[inline(never)]
    fn rtp_forward_slow<const RESIZE: bool>(
        &mut self,
        idx: usize,
        pidx: usize,
        to: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> (Verdict, usize, bool) {
        let mut d = Datagram::new(buf, len);
        let v = self.rtp_forward_slow_datagram::<RESIZE>(idx, pidx, to, &mut d);
        (v, d.len, d.payload_rewritten)
    }

    #[inline(always)]
    fn rtp_forward_slow_datagram<const RESIZE: bool>(
        &mut self,
        idx: usize,
        pidx: usize,
        to: SocketAddr,
        d: &mut Datagram<'_>,
    ) -> Verdict {
        let Some(p) = self.table.get(pidx) else {
            return self.drop_on(idx, DropReason::NotBridged);
        };
        // Without RESIZE the caller cannot take the new length.
        if p.srtp && !RESIZE {
            return self.drop_on(idx, DropReason::SrtpNoRoom);
        }
        if p.convert {
            let (Some(rx_leg), Some(tx_leg)) = (self.table.get(idx), self.table.get(pidx)) else {
                return self.drop_on(idx, DropReason::NotBridged);
            };
            match payload::map_packet(&rx_leg.cold.types, &tx_leg.cold.types, &mut d.buf[..d.len]) {
                Ok(rewritten) => d.payload_rewritten |= rewritten,
                Err(r) => return self.drop_on(idx, r),
            }
        }
        let Some((p, pf)) = self.table.with_flows_mut(pidx) else {
            return self.drop_on(idx, DropReason::NotBridged);
        };
        if p.srtp {
            return self.rtp_forward_srtp(idx, pidx, to, d);
        }
        forward_plain(p, &mut pf[TX], &mut self.stats, to, d)
    }

    /// The end of [`Self::rtp`] toward an SRTP peer (slot `pidx`, remote `to`): the marker
    /// edit, then encryption last (the header is authenticated), then the counters. A
    /// packet that cannot be encrypted is counted on the receiving leg `idx`, and a pending
    /// marker waits for the next packet. Out of line, so that the plain path stays as it was.
    #[inline(never)]
    fn rtp_forward_srtp(
        &mut self,
        idx: usize,
        pidx: usize,
        to: SocketAddr,
        d: &mut Datagram<'_>,
    ) -> Verdict {
        let Some(p) = self.table.get_mut(pidx) else {
            return self.drop_on(idx, DropReason::NotBridged);
        };
        if p.mark_next {
            RtpPacket::new_unchecked(&mut d.buf[..d.len]).set_marker(true);
        }
        match self.srtp.protect(pidx, false, d.buf, d.len) {
            Ok(n) => (d.len, d.payload_rewritten) = (n, true),
            Err(r) => return self.drop_on(idx, r),
        }
        p.mark_next = false;
        let sent = d.len as u64;
        let from = p.id;
        if let Some(f) = self.table.flows_mut(pidx) {
            f[TX].packets += 1;
            f[TX].bytes += sent;
        }
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += sent;
        Verdict::Forward {
            from_addr: from.addr(),
            from_port: from.port(),
            to,
        }
    }

    /// Unprotects an SRTP (`rtcp = false`) or SRTCP packet received on the SRTP leg in slot
    /// `idx` in place, setting `d.len` to the plain length; a failure is counted on the leg.
    #[inline(never)]
    fn srtp_unprotect(
        &mut self,
        idx: usize,
        rtcp: bool,
        d: &mut Datagram<'_>,
    ) -> Result<&mut Leg, Verdict> {
        match self.srtp.unprotect(idx, rtcp, d.buf, d.len) {
            Ok(n) => (d.len, d.payload_rewritten) = (n, true),
            Err(r) => return Err(self.drop_on(idx, r)),
        }
        match self.table.get_mut(idx) {
            Some(l) => Ok(l),
            None => Err(Verdict::Drop(DropReason::UnknownPort)),
        }
    }

    /// RTP from a source other than the leg's established remote (a checked RTP packet):
    /// the latching rules ([`Leg::check_rtp_source`]), then accept (the first packet from
    /// the signalled address), latch (report, maybe start a waiting announcement, go on) or
    /// refuse (count, maybe report).
    #[cold]
    #[inline(never)]
    fn rtp_source_slow(
        &mut self,
        now: Instant,
        idx: usize,
        src: SocketAddr,
        payload: &[u8],
    ) -> Result<&mut Leg, Verdict> {
        let p = RtpPacket::new_unchecked(payload);
        let (ssrc, seq) = (p.ssrc(), p.sequence_number());
        let check = self
            .table
            .get_mut(idx)
            .map(|l| (l.check_rtp_source(now, src, ssrc, seq), l.id));
        let (check, leg) = match check {
            Some((c, id)) => (c, Some(id)),
            None => (SourceCheck::Drop, None),
        };
        match (check, leg) {
            (_, None) => return Err(self.unknown_port()),
            (SourceCheck::Accept, _) => {}
            (SourceCheck::Learned, Some(leg)) => {
                self.events.push(Event::RemoteLearned { leg, remote: src });
                self.schedule_waiting_playback(now, idx);
            }
            (SourceCheck::Drop, _) => return Err(self.drop_on(idx, DropReason::SrcMismatch)),
            (SourceCheck::DropAndReport, Some(leg)) => {
                self.events.push(Event::SrcMismatch { leg, from: src });
                return Err(self.drop_on(idx, DropReason::SrcMismatch));
            }
        }
        match self.table.get_mut(idx) {
            Some(l) => Ok(l),
            None => Err(Verdict::Drop(DropReason::UnknownPort)),
        }
    }

    /// RTCP on the odd port (`odd_port`), or multiplexed on the RTP port.
    #[inline]
    fn rtcp<const RESIZE: bool>(
        &mut self,
        idx: usize,
        src: SocketAddr,
        d: &mut Datagram<'_>,
        odd_port: bool,
    ) -> Verdict {
        let Some(l) = self.table.get_mut(idx) else {
            return self.unknown_port();
        };
        l.cold.stats.rx_rtcp += 1;
        // SRTCP is authenticated before it is parsed, checked against its source or relayed.
        let l = if l.srtp {
            if !RESIZE {
                return self.drop_on(idx, DropReason::SrtpNoRoom);
            }
            match self.srtp_unprotect(idx, true, d) {
                Ok(l) => l,
                Err(v) => return v,
            }
        } else {
            l
        };
        let payload = &d.buf[..d.len];
        if wire::rtcp::check_compound(payload).is_err() {
            return self.drop_on(idx, DropReason::Malformed);
        }
        match l.check_rtcp_source(src) {
            SourceCheck::Accept | SourceCheck::Learned => {}
            SourceCheck::Drop => return self.drop_on(idx, DropReason::SrcMismatch),
            SourceCheck::DropAndReport => {
                let leg = l.id;
                self.events.push(Event::SrcMismatch { leg, from: src });
                return self.drop_on(idx, DropReason::SrcMismatch);
            }
        }
        // The peer's reception report about what we send it (RTCP path only: a few packets
        // a minute per leg).
        let report = wire::rtcp::iter_compound(payload).flatten().find_map(|p| {
            p.report_blocks()
                .next()
                .map(|b| (b.fraction_lost(), b.cumulative_lost()))
        });
        if let Some((fraction, cumulative)) = report {
            l.cold.stats.peer_reports = l.cold.stats.peer_reports.saturating_add(1);
            l.cold.stats.peer_fraction_lost = fraction;
            l.cold.stats.peer_cumulative_lost = cumulative;
        }
        let Some(pidx) = l.peer.map(|p| p as usize) else {
            return self.drop_on(idx, DropReason::NotBridged);
        };
        let Some(p) = self.table.get_mut(pidx) else {
            return self.drop_on(idx, DropReason::NotBridged);
        };
        if p.is_playing() {
            return self.drop_on(idx, DropReason::NotBridged);
        }
        let to = if odd_port {
            p.remote_rtcp()
        } else {
            p.remote()
        };
        let Some(to) = to else {
            return self.drop_on(idx, DropReason::PeerNoRemote);
        };
        if p.srtp {
            if !RESIZE {
                return self.drop_on(idx, DropReason::SrtpNoRoom);
            }
            match self.srtp.protect(pidx, true, d.buf, d.len) {
                Ok(n) => (d.len, d.payload_rewritten) = (n, true),
                Err(r) => return self.drop_on(idx, r),
            }
        }
        p.cold.stats.tx_rtcp += 1;
        let from = p.id;
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += d.len as u64;
        Verdict::Forward {
            from_addr: from.addr(),
            from_port: from.port() + u16::from(odd_port),
            to,
        }
    }

    /// [`Self::handle_tx_refused_at`] on the first media address.
    pub fn handle_tx_refused(&mut self, from_port: u16, len: usize) {
        self.handle_tx_refused_at(0, from_port, len);
    }

    /// The worker could not send a forwarded or generated packet (its TX queue refused it):
    /// count [`DropReason::TxFull`] on the leg owning `from_addr`/`from_port` and take the
    /// packet back out of its tx counters.
    pub fn handle_tx_refused_at(&mut self, from_addr: u8, from_port: u16, len: usize) {
        self.stats.drops.add(DropReason::TxFull);
        self.stats.tx_packets = self.stats.tx_packets.saturating_sub(1);
        self.stats.tx_bytes = self.stats.tx_bytes.saturating_sub(len as u64);
        let Some((l, f)) = self
            .table
            .index_of_local(from_addr, from_port)
            .and_then(|i| self.table.with_flows_mut(i))
        else {
            return;
        };
        l.cold.stats.drops.add(DropReason::TxFull);
        if from_port & 1 == 1 {
            l.cold.stats.tx_rtcp = l.cold.stats.tx_rtcp.saturating_sub(1);
        } else {
            let tx = &mut f[TX];
            tx.packets = tx.packets.saturating_sub(1);
            tx.bytes = tx.bytes.saturating_sub(len as u64);
        }
    }
}

/// The end of the RTP path toward a plain peer leg `p` (remote `to`): the marker edit after
/// the switch, the counters, the verdict.
#[inline(always)]
fn forward_plain(
    p: &mut Leg,
    tx: &mut Flow,
    stats: &mut WorkerStats,
    to: SocketAddr,
    d: &mut Datagram<'_>,
) -> Verdict {
    if p.mark_next {
        p.mark_next = false;
        RtpPacket::new_unchecked(&mut d.buf[..d.len]).set_marker(true);
    }
    let sent = d.len as u64;
    tx.packets += 1;
    tx.bytes += sent;
    let from = p.id;
    stats.tx_packets += 1;
    stats.tx_bytes += sent;
    Verdict::Forward {
        from_addr: from.addr(),
        from_port: from.port(),
        to,
    }
}

/// Whether an RTP-port payload is RTCP multiplexed on it (RFC 5761 §4: second byte
/// 192..=223).
#[inline]
fn is_muxed_rtcp(payload: &[u8]) -> bool {
    matches!(payload.get(1), Some(192..=223))
}
