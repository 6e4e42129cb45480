//! Command handling: [`Relay::handle_command`] carries out a [`Command`] (AddLeg, SetRemote,
//! SetPayloadTypes, SetSrtp, Bridge, Unbridge, Play, StopPlay, QueryStats, RemoveLeg) and
//! reports failures as [`Event::CommandFailed`]. Never on the per-packet path.

use std::sync::Arc;
use std::time::Instant;

use dp_api::{Clip, Command, CommandError, Event, LegId, PayloadTypes};

use crate::announce::Playback;
use crate::leg::Leg;
use crate::{bridge, Relay};

impl Relay {
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
                    if l.cold.types.codec != codec {
                        l.cold.types = PayloadTypes::of(codec);
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
                    l.cold.types = PayloadTypes {
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
                if let Some(stats) = self.table.stats(idx) {
                    self.events.push(Event::Stats { leg, stats });
                }
            }
            Command::RemoveLeg { leg } => {
                let idx = self.find(leg)?;
                bridge::unlink(&mut self.table, idx);
                self.srtp.clear(idx);
                let stats = self.table.stats(idx);
                if let (Some(_), Some(stats)) = (self.table.remove(leg), stats) {
                    self.events.push(Event::LegRemoved { leg, stats });
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
        l.set_playback(Some(Playback::new(clip, looping)));
        self.schedule_waiting_playback(now, idx);
    }
}
