//! The control plane's handle on the data plane: port allocation, command routing, events.

use std::ops::RangeInclusive;
use std::sync::Mutex;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::{Command, Event, LegId};

/// Why the control plane could not talk to the data plane.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpError {
    /// Every port pair of the range (or of the chosen worker) is in use.
    #[error("no free media port")]
    NoFreePort,
    /// The worker's command queue is full; the command was not sent.
    #[error("worker {0} command queue is full")]
    QueueFull(usize),
    /// The worker has stopped.
    #[error("worker {0} has stopped")]
    WorkerGone(usize),
    /// The leg's port is not in any worker's range.
    #[error("leg {0} belongs to no worker")]
    NoWorker(LegId),
    /// The port range is unusable.
    #[error("bad port range {0}")]
    BadRange(String),
}

/// How the media port range is split between workers, and which pairs are free.
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
    /// Owned by the control plane; touched only on leg set-up and tear-down.
    state: Mutex<PlanState>,
}

#[derive(Debug)]
struct PlanState {
    /// Per worker, the free (address index, even port)s (LIFO free list).
    free: Vec<Vec<(u8, u16)>>,
    /// Generation per address and pair, indexed by `addr * pairs + (port - first) / 2`.
    generation: Vec<u16>,
    /// Whether each address and pair (same index) is on a free list.
    is_free: Vec<bool>,
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
            // Reversed so that pop() hands out the first address's lowest port first.
            free.push(
                (0..addresses)
                    .rev()
                    .flat_map(|a| (0..n).rev().map(move |i| (a as u8, lo + (i * 2) as u16)))
                    .collect(),
            );
        }
        Ok(Self {
            first,
            pairs,
            addresses,
            slices,
            state: Mutex::new(PlanState {
                free,
                generation: vec![0; pairs * addresses],
                is_free: vec![true; pairs * addresses],
            }),
        })
    }

    /// How many media addresses the plan spreads legs over.
    #[must_use]
    pub fn addresses(&self) -> usize {
        self.addresses
    }

    fn gen_index(&self, addr: u8, port: u16) -> usize {
        usize::from(addr) * self.pairs + usize::from((port - self.first) / 2)
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
    /// [`DpError::NoFreePort`] when the whole range is in use.
    pub fn allocate(&self) -> Result<LegId, DpError> {
        let w = {
            let st = self.lock();
            (0..st.free.len())
                .max_by_key(|&w| st.free[w].len())
                .unwrap_or(0)
        };
        self.allocate_on(w)
    }

    /// Allocates a leg on worker `w` (legs that will be bridged must share a worker).
    ///
    /// # Errors
    /// [`DpError::NoFreePort`] when the worker's slice is in use.
    pub fn allocate_on(&self, w: usize) -> Result<LegId, DpError> {
        let mut st = self.lock();
        let (addr, port) = st
            .free
            .get_mut(w)
            .and_then(Vec::pop)
            .ok_or(DpError::NoFreePort)?;
        let idx = self.gen_index(addr, port);
        st.generation[idx] = (st.generation[idx] + 1) % crate::GENERATIONS;
        st.is_free[idx] = false;
        Ok(LegId::at(addr, port, st.generation[idx]))
    }

    /// Returns a leg's port to the free list. Releasing a stale id (older generation) is a
    /// no-op.
    pub fn release(&self, leg: LegId) {
        let (addr, port) = (leg.addr(), leg.port());
        let Some(w) = self.worker_of_port(port) else {
            return;
        };
        if usize::from(addr) >= self.addresses {
            return;
        }
        let idx = self.gen_index(addr, port);
        let mut st = self.lock();
        // A stale id (older generation) or a second release is a no-op.
        if st.generation[idx] == leg.generation() && !st.is_free[idx] {
            st.is_free[idx] = true;
            st.free[w].push((addr, port));
        }
    }

    /// Free pairs in total.
    #[must_use]
    pub fn free_pairs(&self) -> usize {
        self.lock().free.iter().map(Vec::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PlanState> {
        // The state holds no invariant a panicking holder could break half-way.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One worker as seen from the control plane.
#[derive(Debug, Clone)]
pub struct WorkerLink {
    /// The worker's bounded command queue.
    pub commands: Sender<Command>,
}

/// The control plane's handle: routes each [`Command`] to the worker owning its leg.
#[derive(Debug)]
pub struct DataplaneHandle {
    /// Port allocation (owned by the control plane).
    pub plan: PortPlan,
    workers: Vec<WorkerLink>,
    events: Receiver<Event>,
}

impl DataplaneHandle {
    /// Assembles a handle; `workers[i]` owns `plan.slice(i)`.
    #[must_use]
    pub fn new(plan: PortPlan, workers: Vec<WorkerLink>, events: Receiver<Event>) -> Self {
        Self {
            plan,
            workers,
            events,
        }
    }

    /// Sends a command to the worker owning its leg, or to every worker for
    /// [`Command::Shutdown`]. Never blocks.
    ///
    /// # Errors
    /// [`DpError::QueueFull`] or [`DpError::WorkerGone`] from the queue, [`DpError::NoWorker`]
    /// for a port outside the range.
    pub fn send(&self, cmd: Command) -> Result<(), DpError> {
        match cmd.leg() {
            Some(leg) => {
                let w = self
                    .plan
                    .worker_of_port(leg.port())
                    .ok_or(DpError::NoWorker(leg))?;
                Self::try_send(w, &self.workers[w], cmd)
            }
            None => {
                for (w, link) in self.workers.iter().enumerate() {
                    Self::try_send(w, link, cmd.clone())?;
                }
                Ok(())
            }
        }
    }

    fn try_send(w: usize, link: &WorkerLink, cmd: Command) -> Result<(), DpError> {
        link.commands.try_send(cmd).map_err(|e| match e {
            TrySendError::Full(_) => DpError::QueueFull(w),
            TrySendError::Disconnected(_) => DpError::WorkerGone(w),
        })
    }

    /// The one queue all workers report on.
    #[must_use]
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_splits_even_ports_between_workers() {
        let plan = PortPlan::new(20000..=20011, 2).unwrap();
        assert_eq!(plan.slice(0), 20000..=20004);
        assert_eq!(plan.slice(1), 20006..=20010);
        assert_eq!(plan.worker_of_port(20007), Some(1));
        assert_eq!(plan.worker_of_port(20012), None);
    }

    #[test]
    fn odd_start_rounds_up() {
        let plan = PortPlan::new(20001..=20004, 1).unwrap();
        assert_eq!(plan.slice(0), 20002..=20002);
    }

    #[test]
    fn allocate_release_bumps_generation() {
        let plan = PortPlan::new(20000..=20003, 1).unwrap();
        let a = plan.allocate().unwrap();
        let b = plan.allocate().unwrap();
        assert_eq!((a.port(), b.port()), (20000, 20002));
        assert_eq!(plan.allocate(), Err(DpError::NoFreePort));
        plan.release(a);
        plan.release(a); // double release is harmless
        assert_eq!(plan.free_pairs(), 1);
        let c = plan.allocate().unwrap();
        assert_eq!(c.port(), 20000);
        assert_ne!(c, a);
        plan.release(a); // stale id: no effect
        assert_eq!(plan.free_pairs(), 0);
    }

    #[test]
    fn several_addresses_multiply_the_legs_and_keep_ports_to_workers() {
        let plan = PortPlan::with_addresses(20000..=20007, 2, 3).unwrap();
        assert_eq!(plan.addresses(), 3);
        assert_eq!(plan.slice(0), 20000..=20002);
        assert_eq!(plan.free_pairs(), 12);
        let mut seen = std::collections::HashSet::new();
        for w in [0, 1] {
            for _ in 0..6 {
                let leg = plan.allocate_on(w).unwrap();
                assert_eq!(plan.worker_of_port(leg.port()), Some(w));
                assert!(usize::from(leg.addr()) < 3);
                assert!(seen.insert((leg.addr(), leg.port())), "{leg} twice");
            }
            assert_eq!(plan.allocate_on(w), Err(DpError::NoFreePort));
        }
        // First address first, lowest port first.
        let plan = PortPlan::with_addresses(20000..=20003, 1, 2).unwrap();
        let ids: Vec<_> = (0..4).map(|_| plan.allocate().unwrap()).collect();
        let got: Vec<_> = ids.iter().map(|l| (l.addr(), l.port())).collect();
        assert_eq!(got, [(0, 20000), (0, 20002), (1, 20000), (1, 20002)]);
        assert_eq!(ids[2].to_string(), "leg1/20000.1");
        assert_eq!(ids[0].to_string(), "leg20000.1");
        plan.release(ids[2]);
        plan.release(ids[2]);
        assert_eq!(plan.free_pairs(), 1);
        let again = plan.allocate().unwrap();
        assert_eq!(
            (again.addr(), again.port(), again.generation()),
            (1, 20000, 2)
        );
        plan.release(ids[2]); // stale
        assert_eq!(plan.free_pairs(), 0);
        assert!(PortPlan::with_addresses(20000..=20003, 1, 0).is_err());
        assert!(PortPlan::with_addresses(20000..=20003, 1, crate::MAX_ADDRESSES + 1).is_err());
    }

    #[test]
    fn leg_id_fields_round_trip() {
        let l = LegId::at(15, 65534, 4095);
        assert_eq!((l.addr(), l.port(), l.generation()), (15, 65534, 4095));
        assert_eq!(LegId::new(30000, 7), LegId::at(0, 30000, 7));
        // Out-of-range parts wrap instead of spilling into the neighbour field.
        let w = LegId::at(16, 30000, 4096);
        assert_eq!((w.addr(), w.port(), w.generation()), (0, 30000, 0));
        // The generation counter wraps at GENERATIONS.
        let plan = PortPlan::new(20000..=20001, 1).unwrap();
        let mut last = plan.allocate().unwrap();
        for _ in 0..crate::GENERATIONS {
            plan.release(last);
            last = plan.allocate().unwrap();
        }
        assert_eq!(last.generation(), 1);
    }

    #[test]
    fn too_small_range_is_an_error() {
        assert!(PortPlan::new(20000..=20000, 1).is_err());
        assert!(PortPlan::new(20000..=20003, 3).is_err());
    }
}
