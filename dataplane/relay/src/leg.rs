//! One media leg: its remote, latching state, counters and announcement stream.
//!
//! # Latching
//! The rules of [`dp_api::Latch`], applied by [`Leg::check_rtp_source`]:
//! - no remote signalled yet: every source is foreign;
//! - the first RTP packet accepted since the remote was set establishes the latch
//!   ([`Leg::latched`]); from then on only the remote's exact address is accepted until the
//!   next `SetRemote` ([`Leg::set_remote`]);
//! - before that, [`LatchMode::Signalled`] and [`LatchMode::Nat`] latch onto any port of the
//!   signalled IP at once, and [`LatchMode::Nat`] onto any address within the window, after
//!   [`dp_api::LATCH_PROBATION`] consecutive packets of one SSRC ([`LatchState`]).
//!
//! The per-packet test for the established remote ([`Leg::is_latched_to`]) reads two fields
//! of line 0; everything else runs only for packets from another source.

use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use dp_api::{Latch, LegId, LegSpec, LegStats, PayloadTypes, SrcMismatch, LATCH_PROBATION};

use crate::announce::{AnnounceStream, Playback};

/// What the source check decided for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceCheck {
    /// From the remote (or accepted under [`SrcMismatch::Ignore`]).
    Accept,
    /// The leg latched onto this source just now; report [`dp_api::Event::RemoteLearned`].
    Learned,
    /// Foreign: drop it.
    Drop,
    /// Foreign, and the first one on a [`SrcMismatch::Report`] leg: drop and report.
    DropAndReport,
}

/// Packet and byte counters of one direction of a leg, kept next to the leg's other hot
/// fields (see [`Leg`]) and merged into [`LegStats`] by [`Leg::stats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// RTP packets.
    pub packets: u64,
    /// Their bytes (UDP payload).
    pub bytes: u64,
}

/// The hot part of a leg's [`dp_api::Latch`] (one byte in line 0; the NAT window lives in
/// the cold [`LatchState`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchMode {
    /// [`Latch::Off`].
    Off,
    /// [`Latch::Signalled`].
    Signalled,
    /// [`Latch::Nat`].
    Nat,
}

/// A source at a foreign address on probation for a [`LatchMode::Nat`] leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Its address.
    pub src: SocketAddr,
    /// The SSRC of its packets so far.
    pub ssrc: u32,
    /// The sequence number of its last packet.
    pub seq: u16,
    /// How many packets in a row it sent (one SSRC, sequence numbers +1).
    pub seen: u8,
}

/// The cold latching state of a leg (boxed in [`Cold`]; read and written only for packets
/// from a source other than the established remote, and by AddLeg/SetRemote).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LatchState {
    /// [`Latch::Nat`]'s window (zero for the other modes). Read-only after AddLeg.
    pub window: Duration,
    /// Until when a foreign address may be learned: the remote's signalling time plus
    /// `window` ([`LatchMode::Nat`] only; `None` before the remote is set).
    pub open_until: Option<Instant>,
    /// The foreign source on probation, if any (one at a time: another source replaces it).
    pub candidate: Option<Candidate>,
    /// Whether the one [`dp_api::Event::SrcMismatch`] has been reported (read only for
    /// foreign sources, so it lives here rather than in the leg's full line 0).
    pub mismatch_reported: bool,
}

impl LatchState {
    /// Counts one packet of `src` toward probation; `true` once it has sent
    /// [`LATCH_PROBATION`] packets in a row of one SSRC with consecutive sequence numbers.
    fn probation(&mut self, src: SocketAddr, ssrc: u32, seq: u16) -> bool {
        match &mut self.candidate {
            Some(c) if c.src == src && c.ssrc == ssrc && seq == c.seq.wrapping_add(1) => {
                c.seq = seq;
                c.seen = c.seen.saturating_add(1);
                c.seen >= LATCH_PROBATION
            }
            other => {
                *other = Some(Candidate {
                    src,
                    ssrc,
                    seq,
                    seen: 1,
                });
                LATCH_PROBATION <= 1
            }
        }
    }
}

/// Everything of a leg but its hot line (boxed, allocated by AddLeg): read and written off
/// the per-packet path of the established remote, or only by packets that leave it (foreign
/// sources, SRTP, payload conversion, announcements, RTCP).
#[derive(Debug)]
pub struct Cold {
    /// Where the peer receives RTP (RTCP at `port + 1`). The hot line keeps an IPv4 copy
    /// (see [`Leg::remote`]); change it only through [`Leg::set_remote`] and latching.
    remote: Option<SocketAddr>,
    /// How the leg learns its peer's real address (see the module docs).
    pub latch_mode: LatchMode,
    /// Policy for foreign sources.
    pub src_mismatch: SrcMismatch,
    /// The media-timeout period.
    pub media_timeout: Option<Duration>,
    /// The announcement playing (or waiting for a remote), if any. The hot line keeps
    /// whether there is one: start or end one only through [`Leg::set_playback`].
    pub(crate) playback: Option<Playback>,
    /// The negotiated payload types (codec, its number, telephone-event), also used for
    /// announcements. Changed by SetRemote (codec) and SetPayloadTypes. Read per packet
    /// only when the two bridged legs' types differ ([`Leg::convert`]).
    pub types: PayloadTypes,
    /// The announcement stream identity (SSRC, seq, timestamp), kept across plays.
    pub stream: AnnounceStream,
    /// The counters other than `rx_packets`, `rx_bytes`, `tx_packets`, `tx_bytes` (the
    /// leg table's [`Flow`]s) and the jitter (see [`Leg::stats`]).
    pub stats: LegStats,
    /// Latching state for foreign sources.
    pub latch: LatchState,
}

/// The media-timeout clock of a leg (one byte of the hot line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaClock {
    /// No media timeout configured.
    Off,
    /// Configured, no timer queued (no remote yet).
    Idle,
    /// A media-timeout timer for the leg sits in the timer heap.
    Queued,
    /// The current silence has been reported; the next RTP packet re-arms the clock.
    TimedOut,
}

/// One leg: its hot line. Owned by the worker's relay.
///
/// **Layout** (`repr(C, align(64))`, one cache line, checked by a test): what every RTP
/// packet received on the leg reads and writes (the remote as an IPv4 key, the jitter, the
/// media clock, the peer, flags) and what every packet relayed toward it reads (the remote,
/// the SRTP/convert flags, the marker flag, whether it plays an announcement, its id). The
/// packet and byte counters sit apart, in the leg table's dense [`Flow`] array (two legs a
/// line); everything else is in the boxed [`Cold`] part. A relayed packet so touches the
/// two legs' hot lines and their counters.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct Leg {
    /// The rest of the leg.
    pub cold: Box<Cold>,
    /// The remote as an IPv4 key ([`v4_key`]), or 0 when there is none or it is IPv6 (then
    /// the per-packet test fails over to [`Cold::remote`]).
    remote4: u64,
    /// The media-timeout clock: the last RTP arrival (or when the clock was started), in
    /// nanoseconds since the relay's epoch plus one; 0 before the clock ever started.
    pub last_rx: u64,
    /// Interarrival jitter estimator.
    pub jitter: Jitter,
    /// The leg's id (address, port and generation).
    pub id: LegId,
    /// The bridged peer's slot index.
    pub peer: Option<u32>,
    /// Whether the latch is established: an RTP packet was accepted from the remote since
    /// it was set. Then only the remote is accepted, until SetRemote clears this.
    pub latched: bool,
    /// Whether the leg is an SRTP leg: its sessions sit in the relay's SRTP side table at
    /// the leg's slot (see [`crate::transcrypt`]). Changed only by SetSrtp; always equal to
    /// "that slot holds sessions for this leg".
    pub srtp: bool,
    /// Whether RTP relayed toward this leg from its bridged peer needs its payload type
    /// mapped (and maybe its G.711 payload converted): the two legs' [`Cold::types`] differ
    /// (see [`crate::payload`]). Read with [`Self::srtp`], per packet relayed toward the
    /// leg. Kept by Bridge, Unbridge, SetRemote and SetPayloadTypes
    /// ([`crate::bridge::refresh_conversion`]); `false` when not bridged.
    pub convert: bool,
    /// Set the marker bit on the next RTP packet relayed toward this leg (set when an
    /// announcement to it stops).
    pub mark_next: bool,
    /// Whether [`Cold::playback`] holds an announcement.
    playing: bool,
    /// The media-timeout clock's state.
    pub media: MediaClock,
}

/// The hot line's key of an IPv4 socket address (never 0): the address's four bytes as
/// they lie in memory (no byte swap), the port above them, and a valid bit. IPv6 addresses
/// key to 1, which no remote holds.
#[inline]
#[must_use]
pub fn v4_key(a: SocketAddr) -> u64 {
    match a {
        SocketAddr::V4(v4) => v4_key_of(v4),
        SocketAddr::V6(_) => 1,
    }
}

/// [`v4_key`] of an IPv4 socket address.
#[inline(always)]
#[must_use]
pub fn v4_key_of(a: SocketAddrV4) -> u64 {
    (1 << 48) | (u64::from(a.port()) << 32) | u64::from(u32::from_ne_bytes(a.ip().octets()))
}

/// The IPv4 address of a [`v4_key`] (not 0 nor 1).
#[inline(always)]
#[must_use]
pub fn from_v4_key4(k: u64) -> SocketAddrV4 {
    SocketAddrV4::new(
        std::net::Ipv4Addr::from((k as u32).to_ne_bytes()),
        (k >> 32) as u16,
    )
}

/// The address of a [`v4_key`] (not 0 nor 1).
#[inline]
fn from_v4_key(k: u64) -> SocketAddr {
    SocketAddr::V4(from_v4_key4(k))
}

impl Leg {
    /// A new leg from its spec; `seed` seeds the announcement stream's random SSRC, sequence
    /// number and timestamp. A remote in the spec counts as signalled at `now`.
    #[must_use]
    pub fn new(spec: &LegSpec, seed: u64, now: Instant) -> Self {
        let (latch, window) = match spec.latch {
            Latch::Off => (LatchMode::Off, Duration::ZERO),
            Latch::Signalled => (LatchMode::Signalled, Duration::ZERO),
            Latch::Nat { window } => (LatchMode::Nat, window),
        };
        let mut leg = Self {
            cold: Box::new(Cold {
                remote: None,
                latch_mode: latch,
                src_mismatch: spec.src_mismatch,
                media_timeout: spec.media_timeout,
                playback: None,
                types: PayloadTypes::of(spec.codec),
                stream: AnnounceStream::new(seed),
                stats: LegStats::default(),
                latch: LatchState {
                    window,
                    ..LatchState::default()
                },
            }),
            remote4: 0,
            last_rx: 0,
            jitter: Jitter::default(),
            id: spec.id,
            peer: None,
            latched: false,
            srtp: false,
            convert: false,
            mark_next: false,
            playing: false,
            media: if spec.media_timeout.is_some() {
                MediaClock::Idle
            } else {
                MediaClock::Off
            },
        };
        if let Some(remote) = spec.remote {
            leg.set_remote(now, remote);
        }
        leg
    }

    /// The fast lane's test for an RTP packet received on this leg from the source keyed
    /// `key` ([`v4_key_of`]): a plain leg latched to exactly that source, whose media clock
    /// needs nothing but [`Self::last_rx`] set (off, or a timer already queued). Anything
    /// else takes the full path ([`crate::Relay::handle_datagram`]).
    #[inline(always)]
    #[must_use]
    pub fn fast_rx(&self, key: u64) -> bool {
        !self.srtp
            & self.latched
            & (self.remote4 == key)
            & matches!(self.media, MediaClock::Off | MediaClock::Queued)
    }

    /// The fast lane's test for a packet relayed toward this leg: its IPv4 remote's key when
    /// the packet needs nothing but new headers (a plain leg, the same payload types as its
    /// peer, no announcement, no marker to set); `None` for the full path.
    #[inline(always)]
    #[must_use]
    pub fn fast_tx(&self) -> Option<u64> {
        let plain = !(self.srtp | self.convert | self.mark_next | self.playing);
        (plain & (self.remote4 > 1)).then_some(self.remote4)
    }

    /// Where the peer receives RTP (RTCP at `port + 1`), if known.
    #[inline]
    #[must_use]
    pub fn remote(&self) -> Option<SocketAddr> {
        if self.remote4 > 1 {
            Some(from_v4_key(self.remote4))
        } else {
            self.cold.remote
        }
    }

    fn put_remote(&mut self, remote: SocketAddr) {
        self.cold.remote = Some(remote);
        self.remote4 = match remote {
            SocketAddr::V4(_) => v4_key(remote),
            SocketAddr::V6(_) => 0,
        };
    }

    /// The announcement playing (or waiting for a remote), if any.
    #[must_use]
    pub fn playback(&self) -> Option<&Playback> {
        self.cold.playback.as_ref()
    }

    /// The announcement, mutable (to advance it; [`Self::set_playback`] starts or ends one).
    pub fn playback_mut(&mut self) -> Option<&mut Playback> {
        self.cold.playback.as_mut()
    }

    /// Starts (`Some`) or ends (`None`) an announcement; returns the one that played.
    pub fn set_playback(&mut self, pb: Option<Playback>) -> Option<Playback> {
        self.playing = pb.is_some();
        std::mem::replace(&mut self.cold.playback, pb)
    }

    /// Whether an announcement plays (or waits for a remote): one flag of the hot line.
    #[inline]
    #[must_use]
    pub fn is_playing(&self) -> bool {
        self.playing
    }

    /// The remote is signalled (AddLeg or SetRemote) at `now`: it replaces any latch, and
    /// latching starts again (a [`LatchMode::Nat`] window opens).
    pub fn set_remote(&mut self, now: Instant, remote: SocketAddr) {
        self.put_remote(remote);
        self.latched = false;
        let l = &mut self.cold.latch;
        l.candidate = None;
        l.open_until = (self.cold.latch_mode == LatchMode::Nat).then(|| now + l.window);
    }

    /// The leg's counters: [`Cold::stats`] with the hot counters (`flows`: received, sent,
    /// from the leg table) and the jitter (in microseconds) filled in.
    #[must_use]
    pub fn stats(&self, flows: &[Flow; 2]) -> LegStats {
        let [rx, tx] = *flows;
        LegStats {
            rx_packets: rx.packets,
            rx_bytes: rx.bytes,
            tx_packets: tx.packets,
            tx_bytes: tx.bytes,
            jitter_us: self.jitter.micros(),
            max_jitter_us: self.jitter.max_micros(),
            ..self.cold.stats
        }
    }

    /// Whether RTP from `src` comes from the established remote: the per-packet test. When
    /// it does not, ask [`Self::check_rtp_source`].
    #[inline]
    #[must_use]
    pub fn is_latched_to(&self, src: SocketAddr) -> bool {
        self.latched && self.remote4 == v4_key(src)
    }

    /// Decides whether an RTP packet from `src` (SSRC `ssrc`, sequence number `seq`), which
    /// [`Self::is_latched_to`] did not accept, is acceptable, latching if the rules allow
    /// (see the module docs). Refusals follow [`SrcMismatch`].
    pub fn check_rtp_source(
        &mut self,
        now: Instant,
        src: SocketAddr,
        ssrc: u32,
        seq: u16,
    ) -> SourceCheck {
        let Some(remote) = self.cold.remote else {
            return self.foreign();
        };
        if src == remote {
            // The signalled address itself: establishes the latch, moves nothing.
            self.establish(src);
            return SourceCheck::Accept;
        }
        if self.latched || self.cold.latch_mode == LatchMode::Off {
            return self.foreign();
        }
        if src.ip() == remote.ip() {
            self.establish(src);
            return SourceCheck::Learned;
        }
        let nat = self.cold.latch_mode == LatchMode::Nat;
        let l = &mut self.cold.latch;
        if nat && l.open_until.is_some_and(|t| now < t) && l.probation(src, ssrc, seq) {
            self.establish(src);
            return SourceCheck::Learned;
        }
        self.foreign()
    }

    fn establish(&mut self, src: SocketAddr) {
        self.put_remote(src);
        self.latched = true;
        self.cold.latch.candidate = None;
    }

    /// Decides whether an RTCP packet from `src` is acceptable.
    ///
    /// Our choice: RTCP is accepted from **any port on the remote's IP**, because NATs often
    /// map the RTCP port to something other than RTP port + 1. RTCP never latches.
    #[inline]
    pub fn check_rtcp_source(&mut self, src: SocketAddr) -> SourceCheck {
        match self.remote() {
            Some(r) if r.ip() == src.ip() => SourceCheck::Accept,
            _ => self.foreign(),
        }
    }

    fn foreign(&mut self) -> SourceCheck {
        match self.cold.src_mismatch {
            SrcMismatch::Ignore => SourceCheck::Accept,
            SrcMismatch::Drop => SourceCheck::Drop,
            SrcMismatch::Report if !self.cold.latch.mismatch_reported => {
                self.cold.latch.mismatch_reported = true;
                SourceCheck::DropAndReport
            }
            SrcMismatch::Report => SourceCheck::Drop,
        }
    }

    /// The remote's RTCP address (`port + 1`).
    #[must_use]
    pub fn remote_rtcp(&self) -> Option<SocketAddr> {
        self.remote().map(|mut r| {
            r.set_port(r.port().wrapping_add(1));
            r
        })
    }

    /// When the media timeout fires, if armed (not reported yet), with `epoch` the relay's
    /// clock base ([`Self::last_rx`] counts from it).
    #[must_use]
    pub fn media_deadline(&self, epoch: Instant) -> Option<Instant> {
        match (self.cold.media_timeout, self.last_rx, self.media) {
            (Some(t), last, MediaClock::Idle | MediaClock::Queued) if last > 0 => {
                Some(epoch + Duration::from_nanos(last - 1) + t)
            }
            _ => None,
        }
    }
}

/// RFC 3550 appendix A.8 interarrival jitter at an 8 kHz clock, kept in the RFC's integer
/// form (`jitter * 16`, in timestamp units).
///
/// Fed with arrival times already in 8 kHz timestamp units (the relay converts its clock
/// once per distinct `now`, see [`arrival_units`]), so an update is a few integer adds,
/// shifts and compares: no division, no float, no `Instant` arithmetic.
#[derive(Debug, Default, Clone, Copy)]
pub struct Jitter {
    last_transit: i32,
    last_ssrc: u32,
    j16: u32,
    max_j16: u32,
    primed: bool,
}

/// Timestamp units per second of the jitter clock.
pub const JITTER_RATE: u64 = 8000;

/// Nanoseconds per jitter-clock unit (`1e9 / JITTER_RATE`).
const NS_PER_UNIT: u32 = 125_000;

/// An elapsed time as a count of 8 kHz jitter-clock units, wrapping at 2³² (~6.2 days;
/// the jitter only uses differences, which survive the wrap).
#[inline]
#[must_use]
pub fn arrival_units(elapsed: Duration) -> u32 {
    (elapsed.as_secs().wrapping_mul(JITTER_RATE) as u32)
        .wrapping_add(elapsed.subsec_nanos() / NS_PER_UNIT)
}

impl Jitter {
    /// Feeds one accepted RTP packet that arrived at `arrival` (8 kHz units on any fixed
    /// base, see [`arrival_units`]) carrying RTP timestamp `rtp_ts` from `ssrc`.
    #[inline(always)]
    pub fn update(&mut self, arrival: u32, rtp_ts: u32, ssrc: u32) {
        let transit = arrival.wrapping_sub(rtp_ts) as i32;
        if ssrc == self.last_ssrc && self.primed {
            let d = transit.wrapping_sub(self.last_transit).unsigned_abs();
            // J += (|D| - J) / 16, in the ×16 fixed point of A.8:
            // J16 += |D| - (J16 + 8) / 16 (never negative; saturates at u32::MAX).
            let j = u64::from(self.j16);
            let j = (j - ((j + 8) >> 4) + u64::from(d)).min(u64::from(u32::MAX)) as u32;
            self.j16 = j;
            self.max_j16 = self.max_j16.max(j);
        } else {
            // A new source restarts the estimate (the value carries on, as receivers do).
            self.last_ssrc = ssrc;
            self.primed = true;
        }
        self.last_transit = transit;
    }

    /// The jitter in microseconds.
    #[must_use]
    pub fn micros(&self) -> u32 {
        Self::to_us(self.j16)
    }

    /// The largest jitter seen, in microseconds.
    #[must_use]
    pub fn max_micros(&self) -> u32 {
        Self::to_us(self.max_j16)
    }

    fn to_us(j16: u32) -> u32 {
        (u64::from(j16) * 1_000_000 / (16 * JITTER_RATE)).min(u64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dp_api::Codec;

    /// 8 kHz units of `ms` milliseconds.
    fn at_ms(ms: u64) -> u32 {
        arrival_units(Duration::from_millis(ms))
    }

    #[test]
    fn the_leg_is_one_cache_line() {
        use std::mem::{align_of, size_of};
        assert_eq!(align_of::<Leg>(), 64);
        assert_eq!(size_of::<Leg>(), 64);
        assert_eq!(size_of::<Option<Leg>>(), size_of::<Leg>());
    }

    #[test]
    fn remote_keys_round_trip_and_v6_fails_over_to_cold() {
        let spec = LegSpec {
            id: LegId::new(20000, 1),
            remote: Some("192.0.2.7:40000".parse().unwrap()),
            latch: Latch::Off,
            src_mismatch: SrcMismatch::Drop,
            codec: Codec::Pcmu,
            media_timeout: None,
        };
        let now = Instant::now();
        let mut l = Leg::new(&spec, 1, now);
        assert_eq!(l.remote(), spec.remote);
        assert!(!l.is_latched_to(spec.remote.unwrap()));
        l.latched = true;
        assert!(l.is_latched_to(spec.remote.unwrap()));
        assert!(!l.is_latched_to("192.0.2.7:40001".parse().unwrap()));
        let v6: SocketAddr = "[2001:db8::7]:40000".parse().unwrap();
        l.set_remote(now, v6);
        assert_eq!(l.remote(), Some(v6));
        assert_eq!(
            l.remote_rtcp(),
            Some("[2001:db8::7]:40001".parse().unwrap())
        );
        l.latched = true;
        // Never by the hot key: the slow path compares the full address.
        assert!(!l.is_latched_to(v6));
        assert_eq!(l.check_rtp_source(now, v6, 1, 1), SourceCheck::Accept);
        let v4: SocketAddr = "0.0.0.0:0".parse().unwrap();
        l.set_remote(now, v4);
        assert_eq!(l.remote(), Some(v4));
    }

    #[test]
    fn stats_merge_hot_counters_and_jitter() {
        let spec = LegSpec {
            id: LegId::new(20000, 1),
            remote: None,
            latch: Latch::Off,
            src_mismatch: SrcMismatch::Drop,
            codec: Codec::Pcmu,
            media_timeout: None,
        };
        let mut l = Leg::new(&spec, 1, Instant::now());
        let flows = [
            Flow {
                packets: 3,
                bytes: 516,
            },
            Flow {
                packets: 2,
                bytes: 344,
            },
        ];
        l.cold.stats.rx_rtcp = 1;
        l.jitter.update(0, 0, 5);
        l.jitter.update(40, 0, 5); // D = 40 units: J = 2.5 units = 312 µs
        let s = l.stats(&flows);
        assert_eq!((s.rx_packets, s.rx_bytes, s.rx_rtcp), (3, 516, 1));
        assert_eq!((s.tx_packets, s.tx_bytes), (2, 344));
        assert_eq!((s.jitter_us, s.max_jitter_us), (312, 312));
    }

    #[test]
    fn jitter_zero_for_perfect_pacing_and_a8_step() {
        let mut j = Jitter::default();
        for k in 0..50u32 {
            j.update(at_ms(20 * u64::from(k)), 1000 + 160 * k, 7);
        }
        assert_eq!(j.micros(), 0);
        // One packet 5 ms late: D = 40 units, J = 40/16 = 2.5 units = 312 µs.
        j.update(at_ms(20 * 50 + 5), 1000 + 160 * 50, 7);
        assert_eq!(j.micros(), 312);
        assert_eq!(j.max_micros(), 312);
    }

    #[test]
    fn jitter_survives_timestamp_wrap() {
        let mut j = Jitter::default();
        for k in 0..10u32 {
            j.update(
                at_ms(20 * u64::from(k)),
                (u32::MAX - 800).wrapping_add(160 * k),
                1,
            );
        }
        assert_eq!(j.micros(), 0);
    }

    #[test]
    fn jitter_survives_arrival_clock_wrap() {
        // The arrival counter wraps at 2^32 units (~6.2 days); differences carry on.
        let start = Duration::from_secs((1u64 << 32) / JITTER_RATE) - Duration::from_millis(60);
        let mut j = Jitter::default();
        for k in 0..10u32 {
            let t = start + Duration::from_millis(20 * u64::from(k));
            j.update(arrival_units(t), 160 * k, 1);
        }
        assert_eq!(j.micros(), 0);
    }

    #[test]
    fn arrival_units_is_the_8khz_floor() {
        assert_eq!(arrival_units(Duration::ZERO), 0);
        assert_eq!(arrival_units(Duration::from_nanos(124_999)), 0);
        assert_eq!(arrival_units(Duration::from_nanos(125_000)), 1);
        assert_eq!(arrival_units(Duration::from_millis(20)), 160);
        assert_eq!(
            arrival_units(Duration::new(3, 999_999_999)),
            3 * 8000 + 7999
        );
        // Same as the plain floor(ns * 8000 / 1e9) below the wrap.
        for ns in [1u64, 999, 125_001, 7_654_321_987, 86_400_000_000_123] {
            let exact = (u128::from(ns) * 8000 / 1_000_000_000) as u32;
            assert_eq!(arrival_units(Duration::from_nanos(ns)), exact, "{ns}");
        }
    }

    /// Appendix A.8 literally (floating point, `J += (|D| - J) / 16`), against which the
    /// integer form must stay within rounding.
    #[test]
    fn jitter_tracks_the_floating_point_a8_estimator() {
        let mut j = Jitter::default();
        let mut jf = 0.0f64;
        let mut last: Option<i64> = None;
        let mut x = 0x2545_f491_4f6c_dd1du64; // xorshift: deterministic arrival noise
        let mut t_us = 0u64;
        for k in 0..5000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // 20 ms pacing plus 0..8 ms of noise, every 64th packet 60 ms late.
            let late = if k % 64 == 63 { 60_000 } else { x % 8000 };
            t_us += 20_000;
            let arrive = t_us + late;
            let ts = 160 * k;
            let a = arrival_units(Duration::from_micros(arrive));
            j.update(a, ts, 9);
            let transit = i64::from(a) - i64::from(ts);
            if let Some(prev) = last {
                let d = (transit - prev).abs() as f64;
                jf += (d - jf) / 16.0;
            }
            last = Some(transit);
            let want_us = jf * 1e6 / JITTER_RATE as f64;
            let got_us = f64::from(j.micros());
            assert!(
                (got_us - want_us).abs() <= 130.0,
                "packet {k}: integer {got_us} µs vs A.8 {want_us:.1} µs"
            );
        }
        assert!(j.micros() > 0 && j.max_micros() >= j.micros());
    }

    #[test]
    fn new_ssrc_restarts_without_a_jump() {
        let mut j = Jitter::default();
        for k in 0..10u32 {
            j.update(at_ms(20 * u64::from(k)), 160 * k, 1);
        }
        // Another source with an unrelated timestamp base: no D against the old one.
        j.update(at_ms(200), 0x7000_0000, 2);
        j.update(at_ms(220), 0x7000_0000 + 160, 2);
        assert_eq!(j.micros(), 0);
    }

    #[test]
    fn jitter_saturates_instead_of_wrapping() {
        let mut j = Jitter::default();
        j.update(0, 0, 1);
        for k in 1..200u32 {
            // Transit alternates by 2^31: |D| is the largest it can be.
            j.update(if k % 2 == 0 { 0 } else { 1 << 31 }, 0, 1);
        }
        assert_eq!(j.j16, u32::MAX);
        assert_eq!(j.max_j16, u32::MAX);
    }
}
