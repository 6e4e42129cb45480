//! The relay's own clockwork: the media-timeout clock and the announcement schedule
//! (timer heaps), [`Relay::poll_transmit`] (announcement RTP), [`Relay::poll_timeout`] and
//! [`Relay::handle_timeout`]. Commands start the clocks; the packet path restarts the media
//! clock here only when no timer is queued for the leg.

use std::cmp::Reverse;
use std::time::Instant;

use dp_api::Event;

use crate::announce::emit_frame;
use crate::leg::MediaClock;
use crate::table::TX;
use crate::{Relay, Timer, Transmit};

impl Relay {
    /// Starts a playback that waits for a remote, if the leg now has one.
    pub(super) fn schedule_waiting_playback(&mut self, now: Instant, idx: usize) {
        let Some(l) = self.table.get_mut(idx) else {
            return;
        };
        if l.remote().is_none() {
            return;
        }
        let leg = l.id;
        if let Some(pb) = l.playback_mut() {
            if pb.next.is_none() {
                pb.next = Some(now);
                self.ann_timers.push(Reverse(Timer { at: now, idx, leg }));
            }
        }
    }

    /// (Re)starts the media-timeout clock at `now`.
    pub(super) fn start_media_clock(&mut self, now: Instant, idx: usize) {
        let (_, nanos) = self.clock.stamp(now);
        let Some(l) = self.table.get_mut(idx) else {
            return;
        };
        l.last_rx = nanos;
        if l.media == MediaClock::TimedOut {
            l.media = MediaClock::Idle;
        }
        if let (Some(t), MediaClock::Idle) = (l.cold.media_timeout, l.media) {
            l.media = MediaClock::Queued;
            let leg = l.id;
            self.media_timers.push(Reverse(Timer {
                at: now + t,
                idx,
                leg,
            }));
        }
    }

    /// Writes the next due announcement packet into `buf` (at least
    /// [`crate::announce::PACKET_LEN`] bytes; [`crate::TRAILER_ROOM`] more for SRTP legs,
    /// whose packets are encrypted, else the packet is dropped as
    /// [`dp_api::DropReason::SrtpNoRoom`]). Call until it returns `None`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`crate::announce::PACKET_LEN`] and a packet is due.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        while let Some(&Reverse(t)) = self.ann_timers.peek() {
            if t.at > now {
                return None;
            }
            self.ann_timers.pop();
            let Some((l, f)) = self.table.with_flows_mut(t.idx) else {
                continue;
            };
            if l.id != t.leg {
                continue;
            }
            let Some(to) = l.remote() else { continue };
            let cold = &mut *l.cold;
            let Some(pb) = cold.playback.as_mut() else {
                continue;
            };
            if pb.next != Some(t.at) {
                continue;
            }
            let e = emit_frame(&mut cold.stream, pb, cold.types, now, buf);
            let next = pb.next;
            // An SRTP leg hears the announcement encrypted with its send key.
            let sent = if l.srtp {
                self.srtp.protect(t.idx, false, buf, e.len)
            } else {
                Ok(e.len)
            };
            match sent {
                Ok(len) => {
                    f[TX].packets += 1;
                    f[TX].bytes += len as u64;
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
            self.stats.note_announcement_late(e.late);
            if e.finished {
                l.set_playback(None);
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
        let epoch = self.clock.epoch(now);
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
            if l.media == MediaClock::Queued {
                l.media = MediaClock::Idle;
            }
            match l.media_deadline(epoch) {
                Some(d) if d <= now => {
                    l.media = MediaClock::TimedOut;
                    let leg = l.id;
                    self.events.push(Event::MediaTimeout { leg });
                }
                Some(d) => {
                    l.media = MediaClock::Queued;
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
