//! One media leg: its remote, latching state, counters and announcement stream.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dp_api::{Codec, LegId, LegSpec, LegStats, SrcMismatch};

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

/// One leg. Owned by the worker's relay; `id`, `learn_remote`, `src_mismatch` and
/// `media_timeout` are read-only after AddLeg, `remote` and `codec` change through
/// SetRemote (or latching), the rest is per-packet state.
#[derive(Debug)]
pub struct Leg {
    /// The leg's id (port and generation).
    pub id: LegId,
    /// Where the peer receives RTP (RTCP at `port + 1`).
    pub remote: Option<SocketAddr>,
    /// Latch onto the first RTP source.
    pub learn_remote: bool,
    /// Whether latching has happened (it happens at most once).
    pub learned: bool,
    /// Policy for foreign sources.
    pub src_mismatch: SrcMismatch,
    /// Whether the one [`dp_api::Event::SrcMismatch`] has been reported.
    pub mismatch_reported: bool,
    /// The codec for announcements.
    pub codec: Codec,
    /// The media-timeout period.
    pub media_timeout: Option<Duration>,
    /// The media-timeout clock: the last RTP arrival, or when the remote was set.
    pub last_rx: Option<Instant>,
    /// Whether the current silence has been reported (re-armed by the next RTP packet).
    pub timed_out: bool,
    /// Whether a media-timeout timer for this leg sits in the timer heap.
    pub media_timer_queued: bool,
    /// The bridged peer's slot index.
    pub peer: Option<usize>,
    /// Set the marker bit on the next RTP packet relayed toward this leg (set when an
    /// announcement to it stops).
    pub mark_next: bool,
    /// The announcement stream identity (SSRC, seq, timestamp), kept across plays.
    pub stream: AnnounceStream,
    /// The announcement playing (or waiting for a remote), if any.
    pub playback: Option<Playback>,
    /// Interarrival jitter estimator.
    pub jitter: Jitter,
    /// Counters.
    pub stats: LegStats,
}

impl Leg {
    /// A new leg from its spec; `seed` seeds the announcement stream's random SSRC, sequence
    /// number and timestamp.
    #[must_use]
    pub fn new(spec: &LegSpec, seed: u64) -> Self {
        Self {
            id: spec.id,
            remote: spec.remote,
            learn_remote: spec.learn_remote,
            learned: false,
            src_mismatch: spec.src_mismatch,
            mismatch_reported: false,
            codec: spec.codec,
            media_timeout: spec.media_timeout,
            last_rx: None,
            timed_out: false,
            media_timer_queued: false,
            peer: None,
            mark_next: false,
            stream: AnnounceStream::new(seed),
            playback: None,
            jitter: Jitter::default(),
            stats: LegStats::default(),
        }
    }

    /// Decides whether an RTP packet from `src` is acceptable, latching if the leg learns.
    ///
    /// Latching: with `learn_remote`, the first RTP packet's source becomes the remote (once).
    /// Otherwise a packet is the remote's when IP and port match. With no remote and no
    /// learning, every source is foreign.
    #[inline]
    pub fn check_rtp_source(&mut self, src: SocketAddr) -> SourceCheck {
        if self.learn_remote && !self.learned {
            self.learned = true;
            self.remote = Some(src);
            return SourceCheck::Learned;
        }
        if self.remote == Some(src) {
            return SourceCheck::Accept;
        }
        self.foreign()
    }

    /// Decides whether an RTCP packet from `src` is acceptable.
    ///
    /// Our choice: RTCP is accepted from **any port on the remote's IP**, because NATs often
    /// map the RTCP port to something other than RTP port + 1. RTCP never latches.
    #[inline]
    pub fn check_rtcp_source(&mut self, src: SocketAddr) -> SourceCheck {
        match self.remote {
            Some(r) if r.ip() == src.ip() => SourceCheck::Accept,
            _ => self.foreign(),
        }
    }

    fn foreign(&mut self) -> SourceCheck {
        match self.src_mismatch {
            SrcMismatch::Ignore => SourceCheck::Accept,
            SrcMismatch::Drop => SourceCheck::Drop,
            SrcMismatch::Report if !self.mismatch_reported => {
                self.mismatch_reported = true;
                SourceCheck::DropAndReport
            }
            SrcMismatch::Report => SourceCheck::Drop,
        }
    }

    /// The remote's RTCP address (`port + 1`).
    #[must_use]
    pub fn remote_rtcp(&self) -> Option<SocketAddr> {
        self.remote.map(|mut r| {
            r.set_port(r.port().wrapping_add(1));
            r
        })
    }

    /// When the media timeout fires, if armed.
    #[must_use]
    pub fn media_deadline(&self) -> Option<Instant> {
        match (self.media_timeout, self.last_rx, self.timed_out) {
            (Some(t), Some(last), false) => Some(last + t),
            _ => None,
        }
    }
}

/// RFC 3550 appendix A.8 interarrival jitter at an 8 kHz clock, kept in the RFC's integer
/// form (`jitter * 16`, in timestamp units).
#[derive(Debug, Default, Clone, Copy)]
pub struct Jitter {
    base: Option<Instant>,
    last_transit: i32,
    last_ssrc: u32,
    primed: bool,
    j16: u32,
    max_j16: u32,
}

/// Timestamp units per second of the jitter clock.
const JITTER_RATE: u64 = 8000;

impl Jitter {
    /// Feeds one accepted RTP packet.
    #[inline]
    pub fn update(&mut self, now: Instant, rtp_ts: u32, ssrc: u32) {
        let base = *self.base.get_or_insert(now);
        let us = now.saturating_duration_since(base).as_micros() as u64;
        let arrival = (us * JITTER_RATE / 1_000_000) as u32;
        let transit = arrival.wrapping_sub(rtp_ts) as i32;
        if self.primed && ssrc == self.last_ssrc {
            let d = transit.wrapping_sub(self.last_transit).unsigned_abs();
            // J += (|D| - J) / 16, in the ×16 fixed point of A.8.
            let j = i64::from(self.j16) + i64::from(d) - ((i64::from(self.j16) + 8) >> 4);
            self.j16 = j.clamp(0, i64::from(u32::MAX)) as u32;
            self.max_j16 = self.max_j16.max(self.j16);
        } else if ssrc != self.last_ssrc {
            // A new source restarts the estimate (the value carries on, as receivers do).
            self.last_ssrc = ssrc;
        }
        self.primed = true;
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

    #[test]
    fn jitter_zero_for_perfect_pacing_and_a8_step() {
        let t0 = Instant::now();
        let mut j = Jitter::default();
        for k in 0..50u32 {
            j.update(
                t0 + Duration::from_millis(20 * u64::from(k)),
                1000 + 160 * k,
                7,
            );
        }
        assert_eq!(j.micros(), 0);
        // One packet 5 ms late: D = 40 units, J = 40/16 = 2.5 units = 312 µs.
        j.update(t0 + Duration::from_millis(20 * 50 + 5), 1000 + 160 * 50, 7);
        assert_eq!(j.micros(), 312);
        assert_eq!(j.max_micros(), 312);
    }

    #[test]
    fn jitter_survives_timestamp_wrap() {
        let t0 = Instant::now();
        let mut j = Jitter::default();
        for k in 0..10u32 {
            j.update(
                t0 + Duration::from_millis(20 * u64::from(k)),
                (u32::MAX - 800).wrapping_add(160 * k),
                1,
            );
        }
        assert_eq!(j.micros(), 0);
    }
}
