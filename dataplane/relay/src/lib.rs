//! The sans-IO media core of a callbridge worker: legs, bridges and announcements.
//!
//! A [`Relay`] owns every leg of one worker. It does no I/O and reads no clock: the caller
//! passes `now` and UDP payloads in, and takes verdicts, packets to send, events and the
//! next timeout out (the quinn-proto / str0m shape):
//!
//! ```text
//!   handle_command(now, Command) ─┐
//!   handle_packet_at(now, src, dst_addr, dst_port, &mut payload) ──► Verdict::{Forward{from_addr,from_port,to}, Drop(reason)}
//!   handle_datagram(now, src, dst_addr, dst_port, &mut Datagram)  ──► the same, for buffers with room (SRTP legs)
//!   handle_timeout(now)           │
//!                                 ├─► poll_transmit(now, buf) → Transmit   (announcement RTP)
//!                                 ├─► poll_event()            → dp_api::Event
//!                                 └─► poll_timeout()          → Instant    (next deadline)
//! ```
//!
//! # Invariants
//! - Legs live in a [`LegTable`] preallocated in [`Relay::new`], found by the index
//!   `(port - first) / 2`, never by search. RTP arrives on the leg's even port, RTCP on the
//!   odd port above it. A leg is three cache lines (hot fields first, see [`leg::Leg`]);
//!   its cold counters and announcement stream are boxed by `AddLeg`.
//! - The per-packet path ([`Relay::handle_packet`], [`Relay::poll_transmit`]) does not
//!   allocate, lock, log or format: events go into a ring preallocated with
//!   `event_capacity` (overflow is counted, see [`WorkerStats::events_dropped`]), timers into
//!   heaps preallocated for two entries per leg.
//! - Every drop is counted by [`DropReason`] on the receiving leg and in [`WorkerStats`]
//!   ([`DropReason::UnknownPort`] only per worker, since no leg owns the packet).
//!
//! # Relaying
//! Bridged legs relay transparently: a packet received on leg A is sent from B's local port
//! to B's remote, SSRC, sequence number and timestamp untouched. RTCP received on A's odd
//! port goes from B's odd port to B's remote port + 1.
//!
//! **Payload types.** When A's and B's negotiated [`dp_api::PayloadTypes`] differ (PCMU on
//! one, PCMA on the other, or other numbers), RTP from A is mapped for B in place (see
//! [`payload`]): audio converted µ-law ↔ A-law with the [`g711`] tables and renumbered,
//! telephone-event renumbered, anything else passed (equal laws) or dropped as
//! [`DropReason::UnmappedPayloadType`]. The length never changes. Equal types (the usual
//! case) cost one flag of the peer leg ([`leg::Leg::convert`]), tested together with its SRTP
//! flag (one branch for both).
//!
//! **The switch.** While a leg hears an announcement it receives *our* stream (our SSRC,
//! sequence and timestamp). When the announcement stops (Bridge, StopPlay or its end), the
//! leg starts receiving the peer's stream with a different SSRC. We take the RFC 3550 §5.1
//! / §8.2 option of presenting this as a **new SSRC whose first packet carries the marker
//! bit**: the first RTP packet relayed toward the leg after the switch gets M=1, so the
//! receiver's jitter buffer resynchronises at once. We do not rewrite SSRC, sequence number
//! or timestamp.
//!
//! # Latching
//! A leg accepts RTP from its remote (IP and port). Before a remote is signalled nothing is
//! accepted; the first packet accepted after it establishes the latch, which only a later
//! `SetRemote` moves. Until then the leg's [`dp_api::Latch`] may learn another port of the
//! signalled IP, or (NAT legs, within a window, after consecutive packets of one SSRC) another
//! address ([`dp_api::Event::RemoteLearned`]); see [`leg`]. RTCP is accepted from **any port
//! on the remote's IP** (NATs rarely keep RTP port + 1) and never latches. Foreign sources
//! are counted ([`DropReason::SrcMismatch`]) and follow the leg's [`dp_api::SrcMismatch`].
//! RTCP multiplexed on the RTP port (RFC 5761, second byte 192..=223) is recognised, checked
//! like RTCP and relayed to the peer's RTP port.
//!
//! # Announcements
//! See [`announce`]: 172-byte RTP packets every 20 ms by deadline, resync when more than
//! 60 ms late, waiting while the leg has no remote. While a leg plays an announcement,
//! media relayed toward it is dropped as [`DropReason::NotBridged`].
//!
//! # SRTP
//! A leg given keys by [`dp_api::Command::SetSrtp`] is an SRTP leg (see [`transcrypt`]):
//! - everything received on it (RTP on the even port, RTCP on the odd port or multiplexed)
//!   is authenticated and decrypted in place by libsrtp *first*, before the source check,
//!   latching, the media clock, counters other than `rx_*`, or relaying. A packet that fails
//!   is dropped and counted ([`DropReason::SrtpAuth`], [`DropReason::SrtpReplay`]);
//! - everything sent to it (relayed RTP and RTCP, announcement RTP) is encrypted in place
//!   last, after the marker-bit edit, growing by at most [`TRAILER_ROOM`] bytes
//!   ([`DropReason::SrtpNoRoom`] when the buffer has no such room).
//!
//! Payload-type mapping and law conversion sit in between: decrypt, convert, encrypt.
//! So an SRTP leg bridged to a plain leg transcrypts per packet, two SRTP legs re-encrypt
//! from one key to the other, and two plain legs take exactly the path above, one flag test
//! per leg more. Only [`Relay::handle_datagram`] can change a packet's length; through
//! [`Relay::handle_packet_at`] SRTP traffic is dropped as [`DropReason::SrtpNoRoom`]. The
//! relay generates no RTCP of its own. `rx_bytes` counts what arrived (SRTP), `tx_bytes`
//! what left (SRTP toward an SRTP leg).
//!
//! # Media timeout
//! [`dp_api::Event::MediaTimeout`] fires once per silence: when no RTP has arrived for
//! `media_timeout` since the last packet (or since the remote was set). The next RTP packet
//! re-arms it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Instant;

use dp_api::{
    Clip, Command, CommandError, DropCounters, DropReason, Event, LegId, LegSpec, LegStats,
    PayloadTypes,
};
use wire::rtp::RtpPacket;

pub mod announce;
pub mod bridge;
pub mod g711;
pub mod leg;
pub mod payload;
pub mod table;
pub mod transcrypt;

#[cfg(test)]
mod tests;

use announce::{emit_frame, Playback, Rng};
use leg::{Leg, SourceCheck};
pub use table::LegTable;
use transcrypt::SrtpTable;
pub use transcrypt::TRAILER_ROOM;

/// How a worker's relay is set up.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The even RTP ports this worker owns (inclusive; RTCP uses each port + 1).
    pub ports: RangeInclusive<u16>,
    /// How many events the ring holds before dropping (and counting) new ones.
    pub event_capacity: usize,
    /// Seeds the announcement SSRC/sequence/timestamp generator (mixed with each leg id).
    pub seed: u64,
    /// How many media addresses carry `ports` ([`LegId::addr`] indexes them); at least 1.
    pub addresses: usize,
}

impl RelayConfig {
    /// A config for one media address with a fixed seed (deterministic; workers pass a
    /// time-derived seed).
    #[must_use]
    pub fn new(ports: RangeInclusive<u16>, event_capacity: usize) -> Self {
        Self {
            ports,
            event_capacity,
            seed: 0x0ca1_1b41_d9e5_eed5,
            addresses: 1,
        }
    }
}

/// What to do with one received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the (possibly edited) payload from our local address `from_addr`, port
    /// `from_port`, to `to`.
    Forward {
        /// Our local media address to send from (an index; the peer leg's address).
        from_addr: u8,
        /// Our local port to send from (the peer leg's RTP port, or RTCP port for RTCP).
        from_port: u16,
        /// The destination.
        to: SocketAddr,
    },
    /// Drop it; already counted.
    Drop(DropReason),
}

/// A packet the relay generated, written into the caller's buffer by
/// [`Relay::poll_transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Our local media address to send from (an index).
    pub from_addr: u8,
    /// Our local port to send from.
    pub from_port: u16,
    /// The destination.
    pub to: SocketAddr,
    /// Bytes written at the start of the buffer.
    pub len: usize,
}

/// A received UDP payload in a buffer with room after it, for [`Relay::handle_datagram`]:
/// the payload is `buf[..len]`. The relay updates `len` and `payload_rewritten` in place.
#[derive(Debug)]
pub struct Datagram<'a> {
    /// The buffer: the payload, then room (at least [`TRAILER_ROOM`] bytes for packets
    /// relayed toward SRTP legs).
    pub buf: &'a mut [u8],
    /// The payload's length; after a [`Verdict::Forward`], the length to send.
    pub len: usize,
    /// Set when the relay decrypted or encrypted the packet (an SRTP leg on either side) or
    /// converted its G.711 law (legs on different laws, see [`payload`]): then bytes past
    /// the RTP fixed header changed, and a checksum kept over them from receive time (the
    /// DPDK backend's `tail_sum`) is stale. Otherwise the relay edited at most the 12-byte
    /// RTP fixed header (marker bit, payload type).
    pub payload_rewritten: bool,
}

impl<'a> Datagram<'a> {
    /// A payload of `len` bytes at the start of `buf` (clamped to `buf.len()`).
    #[must_use]
    pub fn new(buf: &'a mut [u8], len: usize) -> Self {
        let len = len.min(buf.len());
        Self {
            buf,
            len,
            payload_rewritten: false,
        }
    }
}

/// Per-worker counters. Owned by the relay; copied out by [`Relay::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Live legs.
    pub legs: usize,
    /// Packets (RTP and RTCP) handed to [`Relay::handle_packet`].
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Packets forwarded (RTP and RTCP).
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Announcement packets generated.
    pub announcement_packets: u64,
    /// Announcement resynchronisations after a stall.
    pub announcement_resyncs: u64,
    /// Drops by reason, all legs plus unknown ports.
    pub drops: DropCounters,
    /// Events lost because the ring was full.
    pub events_dropped: u64,
    /// Commands that failed.
    pub commands_failed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Instant,
    idx: usize,
    leg: LegId,
}

/// The bounded event ring.
#[derive(Debug)]
struct EventRing {
    q: VecDeque<Event>,
    cap: usize,
    dropped: u64,
}

impl EventRing {
    #[inline]
    fn push(&mut self, ev: Event) {
        if self.q.len() >= self.cap {
            self.dropped += 1;
        } else {
            self.q.push_back(ev);
        }
    }
}

/// The media core of one worker. See the crate docs.
#[derive(Debug)]
pub struct Relay {
    table: LegTable,
    /// The SRTP legs' sessions, by leg slot (see [`transcrypt`]).
    srtp: SrtpTable,
    seed: u64,
    ann_timers: BinaryHeap<Reverse<Timer>>,
    media_timers: BinaryHeap<Reverse<Timer>>,
    events: EventRing,
    stats: WorkerStats,
    clock: Clock,
}

/// The relay's per-packet clock: `now` converted to jitter-clock units once per distinct
/// `now` (the worker passes one `now` per burst), so the per-packet path compares two
/// words instead of subtracting `Instant`s.
#[derive(Debug, Default)]
struct Clock {
    /// The base of the jitter clock: the first `now` the relay saw.
    epoch: Option<Instant>,
    /// The `now` that `units` belongs to.
    at: Option<Instant>,
    /// `at - epoch` in 8 kHz units (wrapping).
    units: u32,
}

impl Clock {
    /// `now` in 8 kHz units since the epoch (0 for instants before it).
    #[inline]
    fn units(&mut self, now: Instant) -> u32 {
        if self.at != Some(now) {
            self.convert(now);
        }
        self.units
    }

    #[inline(never)]
    fn convert(&mut self, now: Instant) {
        let epoch = *self.epoch.get_or_insert(now);
        self.units = leg::arrival_units(now.saturating_duration_since(epoch));
        self.at = Some(now);
    }
}

impl Relay {
    /// Creates a relay and preallocates its leg table, timer heaps and event ring.
    #[must_use]
    pub fn new(cfg: RelayConfig) -> Self {
        let table = LegTable::with_addresses(&cfg.ports, cfg.addresses);
        let n = table.capacity();
        Self {
            table,
            srtp: SrtpTable::new(n),
            seed: cfg.seed,
            ann_timers: BinaryHeap::with_capacity(2 * n + 16),
            media_timers: BinaryHeap::with_capacity(2 * n + 16),
            events: EventRing {
                q: VecDeque::with_capacity(cfg.event_capacity),
                cap: cfg.event_capacity,
                dropped: 0,
            },
            stats: WorkerStats::default(),
            clock: Clock::default(),
        }
    }

    /// The leg table (read-only), e.g. to list open ports.
    #[must_use]
    pub fn table(&self) -> &LegTable {
        &self.table
    }

    /// Whether [`Command::AddLeg`] with this spec would succeed; the worker asks before it
    /// opens sockets.
    ///
    /// # Errors
    /// [`CommandError::PortOutOfRange`] or [`CommandError::PortInUse`].
    pub fn check_add(&self, spec: &LegSpec) -> Result<(), CommandError> {
        self.table.check_insert(spec.id).map(|_| ())
    }

    /// A leg's counters, if it exists.
    #[must_use]
    pub fn leg_stats(&self, id: LegId) -> Option<LegStats> {
        self.table
            .find(id)
            .and_then(|i| self.table.get(i))
            .map(snapshot)
    }

    /// The per-worker counters.
    #[must_use]
    pub fn stats(&self) -> WorkerStats {
        let mut s = self.stats;
        s.legs = self.table.len();
        s.events_dropped = self.events.dropped;
        s
    }

    /// Reports a command failure (also used by the worker for I/O failures).
    pub fn report_failure(&mut self, leg: Option<LegId>, error: CommandError) {
        self.stats.commands_failed += 1;
        self.events.push(Event::CommandFailed { leg, error });
    }

    /// Carries out a command. Failures become [`Event::CommandFailed`]. `Shutdown` is the
    /// worker's business and ignored here.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        let leg_of = cmd.leg();
        if let Err(e) = self.command(now, cmd) {
            self.report_failure(leg_of, e);
        }
    }

    fn find(&self, id: LegId) -> Result<usize, CommandError> {
        self.table.find(id).ok_or(CommandError::UnknownLeg)
    }

    fn command(&mut self, now: Instant, cmd: Command) -> Result<(), CommandError> {
        match cmd {
            Command::AddLeg(spec) => {
                let seed = self.seed ^ u64::from(spec.id.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let idx = self.table.insert(Leg::new(&spec, seed, now))?;
                self.srtp.clear(idx);
                if spec.remote.is_some() {
                    self.start_media_clock(now, idx);
                }
                self.events.push(Event::LegAdded { leg: spec.id });
            }
            Command::SetRemote { leg, remote, codec } => {
                let idx = self.find(leg)?;
                if let Some(l) = self.table.get_mut(idx) {
                    l.set_remote(now, remote);
                    if l.types.codec != codec {
                        l.types = PayloadTypes::of(codec);
                    }
                }
                bridge::refresh_conversion(&mut self.table, idx);
                self.start_media_clock(now, idx);
                self.schedule_waiting_playback(now, idx);
            }
            Command::SetPayloadTypes { leg, types } => {
                let idx = self.find(leg)?;
                if let Some(l) = self.table.get_mut(idx) {
                    // Payload types are seven bits on the wire.
                    l.types = PayloadTypes {
                        audio: types.audio & 0x7f,
                        telephone_event: types.telephone_event.map(|t| t & 0x7f),
                        ..types
                    };
                }
                bridge::refresh_conversion(&mut self.table, idx);
            }
            Command::SetSrtp { leg, keys } => {
                let idx = self.find(leg)?;
                let on = keys.is_some();
                self.srtp.set(idx, leg, keys)?;
                if let Some(l) = self.table.get_mut(idx) {
                    l.srtp = on;
                }
            }
            Command::Bridge { a, b } => {
                let ia = self.find(a)?;
                if self.table.index_of(b).is_none() {
                    return Err(CommandError::CrossWorker);
                }
                let ib = self.find(b)?;
                bridge::link(&mut self.table, ia, ib);
            }
            Command::Unbridge { leg } => {
                let idx = self.find(leg)?;
                bridge::unlink(&mut self.table, idx);
            }
            Command::Play { leg, clip, looping } => {
                let idx = self.find(leg)?;
                self.play(now, idx, clip, looping);
            }
            Command::StopPlay { leg } => {
                let idx = self.find(leg)?;
                if let Some(l) = self.table.get_mut(idx) {
                    bridge::stop_playback(l);
                }
            }
            Command::QueryStats { leg } => {
                let idx = self.find(leg)?;
                if let Some(l) = self.table.get(idx) {
                    let stats = snapshot(l);
                    self.events.push(Event::Stats { leg, stats });
                }
            }
            Command::RemoveLeg { leg } => {
                let idx = self.find(leg)?;
                bridge::unlink(&mut self.table, idx);
                self.srtp.clear(idx);
                if let Some(l) = self.table.remove(leg) {
                    self.events.push(Event::LegRemoved {
                        leg,
                        stats: snapshot(&l),
                    });
                }
            }
            Command::Shutdown => {}
        }
        Ok(())
    }

    fn play(&mut self, now: Instant, idx: usize, clip: Arc<Clip>, looping: bool) {
        let Some(l) = self.table.get_mut(idx) else {
            return;
        };
        if clip.frames() == 0 {
            bridge::stop_playback(l);
            let leg = l.id;
            self.events.push(Event::PlayDone { leg });
            return;
        }
        l.playback = Some(Playback::new(clip, looping));
        self.schedule_waiting_playback(now, idx);
    }

    /// Starts a playback that waits for a remote, if the leg now has one.
    fn schedule_waiting_playback(&mut self, now: Instant, idx: usize) {
        let Some(l) = self.table.get_mut(idx) else {
            return;
        };
        if l.remote.is_none() {
            return;
        }
        let leg = l.id;
        if let Some(pb) = l.playback.as_mut() {
            if pb.next.is_none() {
                pb.next = Some(now);
                self.ann_timers.push(Reverse(Timer { at: now, idx, leg }));
            }
        }
    }

    /// (Re)starts the media-timeout clock at `now`.
    fn start_media_clock(&mut self, now: Instant, idx: usize) {
        let Some(l) = self.table.get_mut(idx) else {
            return;
        };
        l.last_rx = Some(now);
        l.timed_out = false;
        if let (Some(t), false) = (l.media_timeout, l.media_timer_queued) {
            l.media_timer_queued = true;
            let leg = l.id;
            self.media_timers.push(Reverse(Timer {
                at: now + t,
                idx,
                leg,
            }));
        }
    }

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
    /// [`TRAILER_ROOM`] bytes, which must fit in `d.buf` ([`DropReason::SrtpNoRoom`]
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
                self.rtp::<RESIZE>(now, idx, src, d)
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

    #[inline]
    fn rtp<const RESIZE: bool>(
        &mut self,
        now: Instant,
        idx: usize,
        src: SocketAddr,
        d: &mut Datagram<'_>,
    ) -> Verdict {
        let rx_len = d.len as u64;
        let arrival = self.clock.units(now);
        let Some(l) = self.table.get_mut(idx) else {
            return self.unknown_port();
        };
        l.rx.packets += 1;
        l.rx.bytes += rx_len;
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
        l.last_rx = Some(now);
        l.timed_out = false;
        let peer = l.peer;
        if l.media_timeout.is_some() && !l.media_timer_queued {
            self.start_media_clock(now, idx);
        }

        let Some(pidx) = peer.map(|p| p as usize) else {
            return self.drop_on(idx, DropReason::NotBridged);
        };
        let Some(p) = self.table.get_mut(pidx) else {
            return self.drop_on(idx, DropReason::NotBridged);
        };
        if p.playback.is_some() {
            return self.drop_on(idx, DropReason::NotBridged);
        }
        let Some(to) = p.remote else {
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
        forward_plain(p, &mut self.stats, to, d)
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
            match payload::map_packet(&rx_leg.types, &tx_leg.types, &mut d.buf[..d.len]) {
                Ok(rewritten) => d.payload_rewritten |= rewritten,
                Err(r) => return self.drop_on(idx, r),
            }
        }
        let Some(p) = self.table.get_mut(pidx) else {
            return self.drop_on(idx, DropReason::NotBridged);
        };
        if p.srtp {
            return self.rtp_forward_srtp(idx, pidx, to, d);
        }
        forward_plain(p, &mut self.stats, to, d)
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
        p.tx.packets += 1;
        p.tx.bytes += sent;
        let from = p.id;
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
        if p.playback.is_some() {
            return self.drop_on(idx, DropReason::NotBridged);
        }
        let to = if odd_port { p.remote_rtcp() } else { p.remote };
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
        let Some(l) = self
            .table
            .index_of_local(from_addr, from_port)
            .and_then(|i| self.table.get_mut(i))
        else {
            return;
        };
        l.cold.stats.drops.add(DropReason::TxFull);
        if from_port & 1 == 1 {
            l.cold.stats.tx_rtcp = l.cold.stats.tx_rtcp.saturating_sub(1);
        } else {
            l.tx.packets = l.tx.packets.saturating_sub(1);
            l.tx.bytes = l.tx.bytes.saturating_sub(len as u64);
        }
    }

    /// Writes the next due announcement packet into `buf` (at least
    /// [`announce::PACKET_LEN`] bytes; [`TRAILER_ROOM`] more for SRTP legs, whose packets are
    /// encrypted, else the packet is dropped as [`DropReason::SrtpNoRoom`]). Call until it
    /// returns `None`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`announce::PACKET_LEN`] and a packet is due.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        while let Some(&Reverse(t)) = self.ann_timers.peek() {
            if t.at > now {
                return None;
            }
            self.ann_timers.pop();
            let Some(l) = self.table.get_mut(t.idx) else {
                continue;
            };
            if l.id != t.leg {
                continue;
            }
            let Some(to) = l.remote else { continue };
            let Some(pb) = l.playback.as_mut() else {
                continue;
            };
            if pb.next != Some(t.at) {
                continue;
            }
            let e = emit_frame(&mut l.stream, pb, l.types, now, buf);
            let next = pb.next;
            // An SRTP leg hears the announcement encrypted with its send key.
            let sent = if l.srtp {
                self.srtp.protect(t.idx, false, buf, e.len)
            } else {
                Ok(e.len)
            };
            match sent {
                Ok(len) => {
                    l.tx.packets += 1;
                    l.tx.bytes += len as u64;
                    l.cold.stats.announcement_packets += 1;
                    self.stats.announcement_packets += 1;
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += len as u64;
                }
                Err(r) => {
                    l.cold.stats.drops.add(r);
                    self.stats.drops.add(r);
                }
            }
            if e.resynced {
                self.stats.announcement_resyncs += 1;
            }
            if e.finished {
                l.playback = None;
                l.mark_next = true;
                let leg = l.id;
                self.events.push(Event::PlayDone { leg });
            } else if let Some(at) = next {
                self.ann_timers.push(Reverse(Timer {
                    at,
                    idx: t.idx,
                    leg: t.leg,
                }));
            }
            let Ok(len) = sent else {
                // Not sent (counted); the playback goes on with the next frame.
                continue;
            };
            return Some(Transmit {
                from_addr: t.leg.addr(),
                from_port: t.leg.port(),
                to,
                len,
            });
        }
        None
    }

    /// Takes the next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.q.pop_front()
    }

    /// The earliest instant at which [`Self::poll_transmit`] or [`Self::handle_timeout`]
    /// has work (it may be early, never late).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let a = self.ann_timers.peek().map(|r| r.0.at);
        let m = self.media_timers.peek().map(|r| r.0.at);
        match (a, m) {
            (Some(a), Some(m)) => Some(a.min(m)),
            (a, m) => a.or(m),
        }
    }

    /// Runs the media-timeout checks that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse(t)) = self.media_timers.peek() {
            if t.at > now {
                return;
            }
            self.media_timers.pop();
            let Some(l) = self.table.get_mut(t.idx) else {
                continue;
            };
            if l.id != t.leg {
                continue;
            }
            l.media_timer_queued = false;
            match l.media_deadline() {
                Some(d) if d <= now => {
                    l.timed_out = true;
                    let leg = l.id;
                    self.events.push(Event::MediaTimeout { leg });
                }
                Some(d) => {
                    l.media_timer_queued = true;
                    self.media_timers.push(Reverse(Timer {
                        at: d,
                        idx: t.idx,
                        leg: t.leg,
                    }));
                }
                None => {}
            }
        }
    }
}

/// The end of the RTP path toward a plain peer leg `p` (remote `to`): the marker edit after
/// the switch, the counters, the verdict.
#[inline(always)]
fn forward_plain(
    p: &mut Leg,
    stats: &mut WorkerStats,
    to: SocketAddr,
    d: &mut Datagram<'_>,
) -> Verdict {
    if p.mark_next {
        p.mark_next = false;
        RtpPacket::new_unchecked(&mut d.buf[..d.len]).set_marker(true);
    }
    let sent = d.len as u64;
    p.tx.packets += 1;
    p.tx.bytes += sent;
    let from = p.id;
    stats.tx_packets += 1;
    stats.tx_bytes += sent;
    Verdict::Forward {
        from_addr: from.addr(),
        from_port: from.port(),
        to,
    }
}

fn snapshot(l: &Leg) -> LegStats {
    l.stats()
}

/// Whether an RTP-port payload is RTCP multiplexed on it (RFC 5761 §4: second byte
/// 192..=223).
#[inline]
fn is_muxed_rtcp(payload: &[u8]) -> bool {
    matches!(payload.get(1), Some(192..=223))
}

/// A fresh per-relay seed from a caller-supplied entropy value (e.g. the worker index and
/// the start time); mixing keeps neighbouring inputs far apart.
#[must_use]
pub fn seed_from(entropy: u64) -> u64 {
    Rng::new(entropy).next_u64()
}
