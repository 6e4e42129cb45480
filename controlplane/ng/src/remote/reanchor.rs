//! Re-anchoring a dead node's pairs on another node: what each leg was told (a shadow of the
//! B2BUA's commands), the choice of a node, and the replay.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use dp_api::{Clip, Command, Event, LegId, LegSpec, PayloadTypes, SrtpKeys};

use super::{lock, Job, LegEntry, NgMedia};

/// What the B2BUA told one leg, as it stands now.
#[derive(Debug, Default, Clone)]
pub(super) struct Shadow {
    /// `AddLeg`, with later `SetRemote`s applied.
    spec: Option<LegSpec>,
    types: Option<PayloadTypes>,
    srtp: Option<SrtpKeys>,
    /// The leg it is bridged with.
    bridged: Option<LegId>,
    /// The announcement playing (clip, looping).
    pub(super) playing: Option<(Arc<Clip>, bool)>,
    removed: bool,
}

/// Records `cmd` (local leg ids) in the shadows.
pub(super) fn note(shadow: &mut HashMap<LegId, Shadow>, cmd: &Command) {
    match cmd {
        Command::AddLeg(spec) => {
            let s = shadow.entry(spec.id).or_default();
            s.spec = Some(spec.clone());
            s.removed = false;
        }
        Command::SetRemote { leg, remote, codec } => {
            let s = shadow.entry(*leg).or_default();
            if let Some(spec) = &mut s.spec {
                spec.remote = Some(*remote);
                spec.codec = *codec;
            }
            // The relay resets the payload types to the new codec's defaults only when they
            // name another codec (`SetPayloadTypes` comes before the `SetRemote` of the same
            // codec, which keeps them).
            if s.types.is_some_and(|t| t.codec != *codec) {
                s.types = None;
            }
        }
        Command::SetPayloadTypes { leg, types } => {
            shadow.entry(*leg).or_default().types = Some(*types);
        }
        Command::SetSrtp { leg, keys } => {
            shadow.entry(*leg).or_default().srtp.clone_from(keys);
        }
        Command::Bridge { a, b } => {
            for (x, y) in [(*a, *b), (*b, *a)] {
                let s = shadow.entry(x).or_default();
                s.bridged = Some(y);
                // A bridge stops announcements.
                s.playing = None;
            }
        }
        Command::Unbridge { leg } => {
            let other = shadow.get_mut(leg).and_then(|s| s.bridged.take());
            if let Some(o) = other.and_then(|o| shadow.get_mut(&o)) {
                o.bridged = None;
            }
        }
        Command::Play { leg, clip, looping } => {
            shadow.entry(*leg).or_default().playing = Some((clip.clone(), *looping));
        }
        Command::StopPlay { leg } => {
            shadow.entry(*leg).or_default().playing = None;
        }
        Command::RemoveLeg { leg } => {
            shadow.entry(*leg).or_default().removed = true;
        }
        Command::QueryStats { .. } | Command::Shutdown => {}
    }
}

impl NgMedia {
    /// The node new pairs come from: healthy with pairs pooled, fresh ones (answered within
    /// `stale_after`) first, then the least loaded; never `except`.
    pub(super) fn pick(&self, except: Option<usize>) -> Option<usize> {
        let stale = u64::try_from(self.inner.cfg.stale_after.as_millis()).unwrap_or(u64::MAX);
        let now = self.inner.now_ms();
        self.inner
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| {
                Some(*i) != except && n.healthy.load(Ordering::Acquire) && !lock(&n.pool).is_empty()
            })
            .min_by_key(|(_, n)| {
                let silent = now.saturating_sub(n.last_ok.load(Ordering::Acquire));
                (silent > stale, n.live.load(Ordering::Relaxed))
            })
            .map(|(i, _)| i)
    }

    /// Moves every pair of `dead` that is in use to other nodes; returns how many moved, how
    /// many wait for a pair (another node is healthy but had too few pooled: it allocates
    /// more at once and [`NgMedia::reanchor_pending`] moves them) and the legs that cannot be
    /// moved (no other healthy node).
    pub(super) fn reanchor_all(&self, dead: usize) -> (usize, usize, Vec<LegId>) {
        let mut pairs: HashMap<LegId, Vec<(LegId, LegEntry)>> = HashMap::new();
        {
            let t = lock(&self.inner.table);
            for (l, e) in t.legs.iter().filter(|(_, e)| e.node == dead) {
                pairs.entry(e.first).or_default().push((*l, *e));
            }
        }
        let (mut moved, mut lost) = (0, Vec::new());
        let mut waiting = Vec::new();
        for (_, mut legs) in pairs {
            // The pair's first leg (the customer's) first.
            legs.sort_by_key(|(_, e)| e.remote != e.first);
            if legs.len() != 2 {
                lost.extend(legs.iter().map(|(l, _)| *l));
                continue;
            }
            let pair = [legs[0].0, legs[1].0];
            if self.reanchor(dead, pair) {
                moved += 1;
            } else if self.other_healthy(dead) {
                waiting.push((dead, pair));
            } else {
                lost.extend(pair);
            }
        }
        let n = waiting.len();
        if n > 0 {
            lock(&self.inner.pending).extend(waiting);
            self.wake_refills();
        }
        (moved, n, lost)
    }

    /// Whether a node other than `except` answers.
    fn other_healthy(&self, except: usize) -> bool {
        self.inner
            .nodes
            .iter()
            .enumerate()
            .any(|(i, n)| i != except && n.healthy.load(Ordering::Acquire))
    }

    /// Wakes every healthy node's refill task (pairs are wanted now).
    fn wake_refills(&self) {
        for n in &self.inner.nodes {
            if n.healthy.load(Ordering::Acquire) {
                n.refill.notify_one();
            }
        }
    }

    /// Pairs waiting to be re-anchored (their refill tasks allocate this many more).
    pub(super) fn pending_len(&self) -> usize {
        lock(&self.inner.pending).len()
    }

    /// Moves the pairs waiting for one, as far as the pools go; a pair whose call ended
    /// meanwhile (its legs released) is dropped from the list.
    pub(super) fn reanchor_pending(&self) {
        let waiting = std::mem::take(&mut *lock(&self.inner.pending));
        if waiting.is_empty() {
            return;
        }
        let (mut moved, mut still) = (0, Vec::new());
        for (dead, pair) in waiting {
            let live = {
                let t = lock(&self.inner.table);
                pair.iter()
                    .all(|l| t.legs.get(l).is_some_and(|e| e.node == dead))
            };
            if !live {
                continue;
            }
            if self.reanchor(dead, pair) {
                moved += 1;
            } else {
                still.push((dead, pair));
            }
        }
        let left = still.len();
        lock(&self.inner.pending).extend(still);
        tracing::info!(
            moved_pairs = moved,
            waiting_pairs = left,
            "pairs waiting for a node re-anchored"
        );
    }

    /// Pairs waiting to move when no node is healthy any more: given up, their legs
    /// returned (their calls get [`Event::CommandFailed`]).
    pub(super) fn fail_pending_without_target(&self) -> Vec<LegId> {
        if self
            .inner
            .nodes
            .iter()
            .any(|n| n.healthy.load(Ordering::Acquire))
        {
            return Vec::new();
        }
        std::mem::take(&mut *lock(&self.inner.pending))
            .into_iter()
            .flat_map(|(_, pair)| pair)
            .collect()
    }

    /// Moves one pair (local ids, the first leg first) to another node; `false` when no
    /// other node has a pair.
    fn reanchor(&self, dead: usize, legs: [LegId; 2]) -> bool {
        let Some(target) = self.pick(Some(dead)) else {
            return false;
        };
        let slot = &self.inner.nodes[target];
        let Some(pair) = lock(&slot.pool).pop_front() else {
            return false;
        };
        slot.refill.notify_one();
        let mut t = lock(&self.inner.table);
        for (local, remote) in [(legs[0], pair.a), (legs[1], pair.b)] {
            let Some(e) = t.legs.get_mut(&local) else {
                continue;
            };
            let old = e.remote;
            if old == e.first {
                lock(&self.inner.nodes[dead].orphans).push(old);
            }
            *e = LegEntry {
                node: target,
                remote,
                address: pair.address,
                first: pair.a,
            };
            t.by_remote.remove(&(dead, old));
            t.by_remote.insert((target, remote), local);
        }
        self.inner.nodes[dead].live.fetch_sub(1, Ordering::Relaxed);
        slot.live.fetch_add(1, Ordering::Relaxed);
        let remote = |l: LegId| if l == legs[0] { pair.a } else { pair.b };
        let mut cmds = Vec::new();
        let mut tell = Vec::new();
        for l in legs {
            let Some(s) = t.shadow.get(&l) else { continue };
            if s.removed {
                continue;
            }
            let Some(spec) = &s.spec else { continue };
            cmds.push(Command::AddLeg(LegSpec {
                id: remote(l),
                ..spec.clone()
            }));
            if let Some(types) = s.types {
                cmds.push(Command::SetPayloadTypes {
                    leg: remote(l),
                    types,
                });
            }
            if let Some(keys) = &s.srtp {
                cmds.push(Command::SetSrtp {
                    leg: remote(l),
                    keys: Some(keys.clone()),
                });
            }
            if let Some(to) = t.routes.get(&l) {
                tell.push((l, to.clone()));
            }
        }
        let bridged = t.shadow.get(&legs[0]).and_then(|s| s.bridged) == Some(legs[1]);
        if bridged {
            cmds.push(Command::Bridge {
                a: pair.a,
                b: pair.b,
            });
        }
        for l in legs {
            if let Some((clip, looping)) = t.shadow.get(&l).and_then(|s| s.playing.clone()) {
                cmds.push(Command::Play {
                    leg: remote(l),
                    clip,
                    looping,
                });
            }
        }
        drop(t);
        tracing::info!(
            from = %self.inner.nodes[dead].addr,
            to = %slot.addr,
            legs = ?legs,
            commands = cmds.len(),
            "pair re-anchored"
        );
        for c in cmds {
            let _ = slot.jobs.send(Job::Cmd(c));
        }
        for (leg, to) in tell {
            let _ = to.send(Event::Moved { leg });
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dp_api::{Codec, Latch, SrcMismatch};

    #[test]
    fn payload_types_set_before_the_remote_of_their_codec_are_kept() {
        // As the B2BUA does on an answer: the leg added as PCMU, the peer's PCMA with
        // telephone-event 101, then SetRemote PCMA. The relay keeps the types; so must the
        // shadow, or a re-anchored leg loses the peer's DTMF numbering.
        let leg = LegId::new(20000, 1);
        let mut shadow = HashMap::new();
        note(
            &mut shadow,
            &Command::AddLeg(LegSpec {
                id: leg,
                remote: None,
                latch: Latch::Off,
                src_mismatch: SrcMismatch::Drop,
                codec: Codec::Pcmu,
                media_timeout: None,
            }),
        );
        let types = PayloadTypes {
            codec: Codec::Pcma,
            audio: 8,
            telephone_event: Some(101),
        };
        note(&mut shadow, &Command::SetPayloadTypes { leg, types });
        let remote = "127.0.0.1:40000".parse().unwrap();
        note(
            &mut shadow,
            &Command::SetRemote {
                leg,
                remote,
                codec: Codec::Pcma,
            },
        );
        let s = &shadow[&leg];
        assert_eq!(s.types, Some(types));
        let spec = s.spec.as_ref().unwrap();
        assert_eq!((spec.remote, spec.codec), (Some(remote), Codec::Pcma));
        // A SetRemote of another codec resets them, as the relay does.
        note(
            &mut shadow,
            &Command::SetRemote {
                leg,
                remote,
                codec: Codec::Pcmu,
            },
        );
        assert_eq!(shadow[&leg].types, None);
    }
}
