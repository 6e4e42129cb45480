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
//!   odd port above it. A leg is one cache line (see [`leg::Leg`]), its packet and byte
//!   counters sit in a dense array beside the slots, the rest is boxed by `AddLeg`.
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
use std::time::Instant;

use dp_api::{CommandError, DropCounters, DropReason, Event, LegId, LegSpec, LegStats};

pub mod announce;
pub mod bridge;
pub mod g711;
pub mod leg;
pub mod payload;
pub mod table;
pub mod transcrypt;

mod command;
mod fast;
mod packet;
mod timer;

#[cfg(test)]
mod tests;

use announce::Rng;
pub use fast::{FastForward, Lane, Stamp, PREFETCH_FROM_LEGS};
pub use packet::BurstPacket;
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
    /// Announcement frames' pacing error: the sum of how late each went out (µs).
    pub announcement_late_us: u64,
    /// Announcement frames by how late they went out: per bucket of
    /// [`ANNOUNCEMENT_LATE_BOUNDS_US`] (not cumulative), the last beyond the largest bound.
    pub announcement_late: [u64; ANNOUNCEMENT_LATE_BUCKETS],
    /// Drops by reason, all legs plus unknown ports.
    pub drops: DropCounters,
    /// Events lost because the ring was full.
    pub events_dropped: u64,
    /// Commands that failed.
    pub commands_failed: u64,
}

/// Upper bounds (µs) of the announcement lateness buckets ([`WorkerStats::announcement_late`]).
pub const ANNOUNCEMENT_LATE_BOUNDS_US: [u64; 5] = [1_000, 2_000, 5_000, 10_000, 20_000];
/// The number of lateness buckets: one per bound plus one beyond.
pub const ANNOUNCEMENT_LATE_BUCKETS: usize = ANNOUNCEMENT_LATE_BOUNDS_US.len() + 1;

impl WorkerStats {
    /// Counts an announcement frame that went out `late` after its deadline (once per
    /// announcement frame, every 20 ms per playing leg: not on the relay's packet path).
    pub fn note_announcement_late(&mut self, late: std::time::Duration) {
        let us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        self.announcement_late_us = self.announcement_late_us.saturating_add(us);
        let i = ANNOUNCEMENT_LATE_BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(ANNOUNCEMENT_LATE_BOUNDS_US.len());
        self.announcement_late[i] += 1;
    }
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
    /// `at - epoch` in nanoseconds, plus one (the media clock's [`leg::Leg::last_rx`]).
    nanos: u64,
}

impl Clock {
    /// `now` in 8 kHz units since the epoch (0 for instants before it), and in nanoseconds
    /// since the epoch plus one.
    #[inline]
    fn stamp(&mut self, now: Instant) -> (u32, u64) {
        if self.at != Some(now) {
            self.convert(now);
        }
        (self.units, self.nanos)
    }

    /// The epoch: the first instant the relay saw (set now if none yet).
    fn epoch(&mut self, now: Instant) -> Instant {
        *self.epoch.get_or_insert(now)
    }

    #[inline(never)]
    fn convert(&mut self, now: Instant) {
        let epoch = *self.epoch.get_or_insert(now);
        let since = now.saturating_duration_since(epoch);
        self.units = leg::arrival_units(since);
        self.nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX - 1) + 1;
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

    /// Whether [`dp_api::Command::AddLeg`] with this spec would succeed; the worker asks
    /// before it opens sockets.
    ///
    /// # Errors
    /// [`CommandError::PortOutOfRange`] or [`CommandError::PortInUse`].
    pub fn check_add(&self, spec: &LegSpec) -> Result<(), CommandError> {
        self.table.check_insert(spec.id).map(|_| ())
    }

    /// A leg's counters, if it exists.
    #[must_use]
    pub fn leg_stats(&self, id: LegId) -> Option<LegStats> {
        self.table.find(id).and_then(|i| self.table.stats(i))
    }

    /// The per-worker counters.
    #[must_use]
    pub fn stats(&self) -> WorkerStats {
        let mut s = self.stats;
        s.legs = self.table.len();
        s.events_dropped = self.events.dropped;
        s
    }

    /// Takes the next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.q.pop_front()
    }
}

/// A fresh per-relay seed from a caller-supplied entropy value (e.g. the worker index and
/// the start time); mixing keeps neighbouring inputs far apart.
#[must_use]
pub fn seed_from(entropy: u64) -> u64 {
    Rng::new(entropy).next_u64()
}
