//! Port allocation: which worker owns which ports, which (address, port) pairs are free, and
//! when a released pair may be handed out again.
//!
//! # Reuse
//! A pair is handed out again only once the worker owning it has really removed the pair's
//! previous leg, whatever the control plane does: release before `LegRemoved` arrived (or
//! after giving up waiting for it), a `RemoveLeg` lost to a full queue, or none sent at all.
//!
//! ```text
//!          allocate               release (no AddLeg went out for the id)
//!   Free ────────────► Held(id) ──────────────────────────────────────────► Free
//!    ▲                    │ AddLeg(id) queued (DataplaneHandle::send)
//!    │                    ▼
//!    │               Held(id), added ──release──► Draining(id) ──the worker retired id──┐
//!    │                                  (release queues RemoveLeg(id) if nobody did;      │
//!    │                                   a full queue is retried by later plan calls)     │
//!    └────────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! - The worker marks a leg retired in [`RetiredLegs`] once the leg is out of its table and
//!   its port closed, or when its AddLeg failed: one atomic per pair, written by the owning
//!   worker on commands (never per packet), read by the plan.
//! - Free pairs are queued first in, first out (per address; the first address with a free
//!   pair is used, so legs fill the first address first), so a released pair comes back only
//!   after every other free pair of its worker and address: late packets for an old leg meet
//!   no leg, and an id (address, port, generation) recurs only after
//!   [`crate::GENERATIONS`] full lifecycles of its pair, each one confirmed by the worker.
//! - [`crate::DataplaneHandle::send`] refuses commands naming an id the plan no longer holds
//!   ([`DpError::StaleLeg`]), so nothing sent for an old generation reaches a worker.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crossbeam_channel::{Sender, TrySendError};

use crate::{Command, DpError, LegId};

/// Which leg each port pair's worker last let go of. Written by the worker owning the pair
/// when a leg leaves its table (`RemoveLeg`, after the port is closed) or never enters it (a
/// failed `AddLeg`); read by the [`PortPlan`] before it hands the pair out again.
///
/// One atomic per address and pair, shared by the plan and every worker (each writes only its
/// own pairs); touched on commands, never per packet.
#[derive(Debug)]
pub struct RetiredLegs {
    first: u16,
    pairs: usize,
    addresses: usize,
    /// Per address and pair (`addr * pairs + (port - first) / 2`): the raw id of the last
    /// leg retired since the pair was handed out, or [`NO_LEG`].
    last: Box<[AtomicU32]>,
}

/// No leg has this id: its port (65535) is odd.
const NO_LEG: u32 = u32::MAX;

impl RetiredLegs {
    fn new(first: u16, pairs: usize, addresses: usize) -> Self {
        Self {
            first,
            pairs,
            addresses,
            last: (0..pairs * addresses)
                .map(|_| AtomicU32::new(NO_LEG))
                .collect(),
        }
    }

    fn index(&self, leg: LegId) -> Option<usize> {
        let pair = usize::from(leg.port().checked_sub(self.first)?) / 2;
        let addr = usize::from(leg.addr());
        (leg.port() & 1 == 0 && pair < self.pairs && addr < self.addresses)
            .then_some(addr * self.pairs + pair)
    }

    /// Records that `leg` is not in its worker's table and its ports are closed. Only the
    /// worker owning the leg's port calls this; ids outside the plan are ignored.
    pub fn retire(&self, leg: LegId) {
        if let Some(i) = self.index(leg) {
            self.last[i].store(leg.0, Ordering::Release);
        }
    }

    /// Whether the worker has retired exactly `leg` (generation included) since the plan
    /// handed it out.
    #[must_use]
    pub fn is_retired(&self, leg: LegId) -> bool {
        self.index(leg)
            .is_some_and(|i| self.last[i].load(Ordering::Acquire) == leg.0)
    }

    /// A new id for pair `i` is handed out: what was retired before no longer counts.
    fn forget(&self, i: usize) {
        self.last[i].store(NO_LEG, Ordering::Release);
    }
}

/// How the media port range is split between workers, and which pairs are free. See the
/// module docs for when a released pair comes back.
///
/// RTP uses even ports, RTCP the odd port above. Worker `i` owns a contiguous slice of the
/// range, so a leg's port names its worker without a lookup table.
#[derive(Debug)]
pub struct PortPlan {
    first: u16,
    /// Port pairs per address.
    pairs: usize,
    /// How many media addresses carry the same port range.
    addresses: usize,
    /// Per worker: the inclusive range of even RTP ports it owns (on every address).
    slices: Vec<RangeInclusive<u16>>,
    /// Written by the workers, read here.
    retired: Arc<RetiredLegs>,
    /// Per worker, its command queue, for the `RemoveLeg`s the plan sends itself (set by
    /// [`crate::DataplaneHandle::new`]; empty for a plan without workers).
    links: Vec<Sender<Command>>,
    /// Owned by the control plane; touched only on leg set-up and tear-down and by
    /// [`crate::DataplaneHandle::send`].
    state: Mutex<PlanState>,
}

#[derive(Debug)]
struct PlanState {
    /// Per worker and address, the free even ports, the longest free first.
    free: Vec<Vec<VecDeque<u16>>>,
    /// Per worker, released legs the worker may still hold.
    draining: Vec<Vec<LegId>>,
    /// Per address and pair, indexed like [`RetiredLegs`].
    slots: Vec<Slot>,
}

impl PlanState {
    fn free_on(&self, w: usize) -> usize {
        self.free[w].iter().map(VecDeque::len).sum()
    }

    /// The longest-free pair of worker `w` on the first address that has one.
    fn pop_free(&mut self, w: usize) -> Option<(u8, u16)> {
        self.free[w]
            .iter_mut()
            .enumerate()
            .find_map(|(a, q)| Some((a as u8, q.pop_front()?)))
    }

    fn push_free(&mut self, w: usize, leg: LegId) {
        self.free[w][usize::from(leg.addr())].push_back(leg.port());
    }
}

/// One address and pair.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The generation of the id last handed out.
    generation: u16,
    status: Status,
    /// An `AddLeg` for the current id went into the worker's queue.
    added: bool,
    /// So did a `RemoveLeg`.
    removing: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Status {
    /// On its worker's free queue.
    #[default]
    Free,
    /// Handed out, not released.
    Held,
    /// Released; free once the worker has retired the id.
    Draining,
}

impl PortPlan {
    /// Splits `ports` (inclusive) between `workers` workers.
    ///
    /// # Errors
    /// [`DpError::BadRange`] if the range holds fewer than one RTP/RTCP pair per worker.
    pub fn new(ports: RangeInclusive<u16>, workers: usize) -> Result<Self, DpError> {
        Self::with_addresses(ports, workers, 1)
    }

    /// Splits `ports` (inclusive) between `workers` workers on each of `addresses` media
    /// addresses: worker `w` owns the same slice of ports on every address, so a port still
    /// names its worker, and the legs a plan can hold grow with the addresses (one address
    /// holds at most ~32 000 RTP/RTCP pairs).
    ///
    /// # Errors
    /// [`DpError::BadRange`] if the range holds fewer than one RTP/RTCP pair per worker, or
    /// `addresses` is not in `1..=MAX_ADDRESSES`.
    pub fn with_addresses(
        ports: RangeInclusive<u16>,
        workers: usize,
        addresses: usize,
    ) -> Result<Self, DpError> {
        if !(1..=crate::MAX_ADDRESSES).contains(&addresses) {
            return Err(DpError::BadRange(format!(
                "{addresses} media addresses (1..={})",
                crate::MAX_ADDRESSES
            )));
        }
        let first = ports.start().saturating_add(ports.start() % 2);
        let last = *ports.end();
        if workers == 0 || last < first + 1 {
            return Err(DpError::BadRange(format!(
                "{}-{}",
                ports.start(),
                ports.end()
            )));
        }
        let pairs = usize::from((last - first).div_ceil(2));
        if pairs < workers {
            return Err(DpError::BadRange(format!(
                "{}-{} has {pairs} port pairs for {workers} workers",
                ports.start(),
                ports.end()
            )));
        }
        let per = pairs / workers;
        let mut slices = Vec::with_capacity(workers);
        let mut free = Vec::with_capacity(workers);
        for w in 0..workers {
            let lo = first + (w * per * 2) as u16;
            let n = if w + 1 == workers {
                pairs - w * per
            } else {
                per
            };
            let hi = lo + ((n - 1) * 2) as u16;
            slices.push(lo..=hi);
            // Lowest port first.
            free.push(
                (0..addresses)
                    .map(|_| (0..n).map(|i| lo + (i * 2) as u16).collect())
                    .collect(),
            );
        }
        Ok(Self {
            first,
            pairs,
            addresses,
            slices,
            retired: Arc::new(RetiredLegs::new(first, pairs, addresses)),
            links: Vec::new(),
            state: Mutex::new(PlanState {
                free,
                draining: vec![Vec::new(); workers],
                slots: vec![Slot::default(); pairs * addresses],
            }),
        })
    }

    /// How many media addresses the plan spreads legs over.
    #[must_use]
    pub fn addresses(&self) -> usize {
        self.addresses
    }

    /// What the workers write when they let go of a leg; hand it to every worker.
    #[must_use]
    pub fn retired(&self) -> Arc<RetiredLegs> {
        self.retired.clone()
    }

    /// Gives the plan the workers' command queues (index = worker), for the `RemoveLeg`s it
    /// sends itself.
    pub(crate) fn attach(&mut self, links: Vec<Sender<Command>>) {
        self.links = links;
    }

    fn gen_index(&self, addr: u8, port: u16) -> usize {
        usize::from(addr) * self.pairs + usize::from((port - self.first) / 2)
    }

    /// The worker and slot index of a leg, if the plan covers it.
    fn locate(&self, leg: LegId) -> Option<(usize, usize)> {
        let idx = self.retired.index(leg)?;
        Some((self.worker_of_port(leg.port())?, idx))
    }

    /// How many workers share the range.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.slices.len()
    }

    /// The even RTP ports worker `w` owns.
    #[must_use]
    pub fn slice(&self, w: usize) -> RangeInclusive<u16> {
        self.slices[w].clone()
    }

    /// The worker owning a port.
    #[must_use]
    pub fn worker_of_port(&self, port: u16) -> Option<usize> {
        self.slices.iter().position(|s| s.contains(&(port & !1)))
    }

    /// Allocates a leg on the worker with the most free ports.
    ///
    /// # Errors
    /// [`DpError::NoFreePort`] when the whole range is in use (or still draining).
    pub fn allocate(&self) -> Result<LegId, DpError> {
        let mut st = self.lock();
        for w in 0..self.workers() {
            self.tidy(&mut st, w);
        }
        let w = (0..st.free.len())
            .max_by_key(|&w| st.free_on(w))
            .unwrap_or(0);
        self.take(&mut st, w)
    }

    /// Allocates a leg on worker `w` (legs that will be bridged must share a worker).
    ///
    /// # Errors
    /// [`DpError::NoFreePort`] when the worker's slice is in use (or still draining).
    pub fn allocate_on(&self, w: usize) -> Result<LegId, DpError> {
        let mut st = self.lock();
        if w >= self.workers() {
            return Err(DpError::NoFreePort);
        }
        self.tidy(&mut st, w);
        self.take(&mut st, w)
    }

    fn take(&self, st: &mut PlanState, w: usize) -> Result<LegId, DpError> {
        let (addr, port) = st.pop_free(w).ok_or(DpError::NoFreePort)?;
        let idx = self.gen_index(addr, port);
        let generation = (st.slots[idx].generation + 1) % crate::GENERATIONS;
        st.slots[idx] = Slot {
            generation,
            status: Status::Held,
            added: false,
            removing: false,
        };
        self.retired.forget(idx);
        Ok(LegId::at(addr, port, generation))
    }

    /// Gives a leg back. Its pair is free again at once if no `AddLeg` for it was sent;
    /// otherwise once its worker has removed it (the plan sends the `RemoveLeg` itself if
    /// none was sent). Releasing a stale id (older generation) or releasing twice is a
    /// no-op.
    pub fn release(&self, leg: LegId) {
        let Some((w, idx)) = self.locate(leg) else {
            return;
        };
        let mut st = self.lock();
        let slot = &mut st.slots[idx];
        if slot.generation != leg.generation() || slot.status != Status::Held {
            return;
        }
        if !slot.added || self.retired.is_retired(leg) {
            slot.status = Status::Free;
            st.push_free(w, leg);
        } else {
            slot.status = Status::Draining;
            st.draining[w].push(leg);
            self.send_owed_removals(&mut st, w);
        }
    }

    /// Free pairs in total (draining ones not counted).
    #[must_use]
    pub fn free_pairs(&self) -> usize {
        let mut st = self.lock();
        for w in 0..self.workers() {
            self.tidy(&mut st, w);
        }
        (0..self.workers()).map(|w| st.free_on(w)).sum()
    }

    /// Sends the `RemoveLeg`s released legs of worker `w` still lack, then frees the pairs
    /// whose legs the worker has retired.
    fn tidy(&self, st: &mut PlanState, w: usize) {
        self.send_owed_removals(st, w);
        let PlanState {
            free,
            draining,
            slots,
        } = st;
        draining[w].retain(|&leg| {
            if !self.retired.is_retired(leg) {
                return true;
            }
            slots[self.gen_index(leg.addr(), leg.port())].status = Status::Free;
            free[w][usize::from(leg.addr())].push_back(leg.port());
            false
        });
    }

    /// `RemoveLeg` for every draining leg of worker `w` none was queued for, until the queue
    /// is full (the rest are sent by a later plan call).
    fn send_owed_removals(&self, st: &mut PlanState, w: usize) {
        let Some(link) = self.links.get(w) else {
            return;
        };
        for i in 0..st.draining[w].len() {
            let leg = st.draining[w][i];
            let idx = self.gen_index(leg.addr(), leg.port());
            if st.slots[idx].removing {
                continue;
            }
            if link.try_send(Command::RemoveLeg { leg }).is_err() {
                return;
            }
            st.slots[idx].removing = true;
        }
    }

    /// Sends a command for worker `w`'s legs through `link`, under the plan's lock: first
    /// the `RemoveLeg`s the plan owes the worker, then `cmd` if every leg it names is held
    /// (for `RemoveLeg`: held or draining; a second `RemoveLeg` is not sent), recording
    /// `AddLeg` and `RemoveLeg`.
    ///
    /// # Errors
    /// [`DpError::StaleLeg`] for an id the plan does not hold, [`DpError::NoWorker`] for one
    /// it does not cover, or the queue's error.
    pub(crate) fn send(&self, w: usize, cmd: Command) -> Result<(), DpError> {
        let mut st = self.lock();
        self.tidy(&mut st, w);
        let held = |leg: LegId, draining_ok: bool| -> Result<usize, DpError> {
            let (_, idx) = self.locate(leg).ok_or(DpError::NoWorker(leg))?;
            let s = &st.slots[idx];
            let ok = s.generation == leg.generation()
                && match s.status {
                    Status::Held => draining_ok || !s.removing,
                    Status::Draining => draining_ok,
                    Status::Free => false,
                };
            if ok {
                Ok(idx)
            } else {
                Err(DpError::StaleLeg(leg))
            }
        };
        let mark = match &cmd {
            Command::AddLeg(spec) => Some((held(spec.id, false)?, false)),
            Command::RemoveLeg { leg } => {
                let idx = held(*leg, true)?;
                if st.slots[idx].removing {
                    return Ok(());
                }
                Some((idx, true))
            }
            Command::Bridge { a, b } => {
                held(*a, false)?;
                held(*b, false)?;
                None
            }
            other => {
                if let Some(leg) = other.leg() {
                    held(leg, false)?;
                }
                None
            }
        };
        let link = self.links.get(w).ok_or(DpError::WorkerGone(w))?;
        link.try_send(cmd).map_err(|e| match e {
            TrySendError::Full(_) => DpError::QueueFull(w),
            TrySendError::Disconnected(_) => DpError::WorkerGone(w),
        })?;
        match mark {
            Some((idx, false)) => st.slots[idx].added = true,
            Some((idx, true)) => st.slots[idx].removing = true,
            None => {}
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, PlanState> {
        // The state holds no invariant a panicking holder could break half-way.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
