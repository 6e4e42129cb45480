//! Port and leg reuse under churn (issue 7), on fake time: the control plane's handle
//! ([`DataplaneHandle`], [`dp_api::PortPlan`]) and one worker over `MemIo`, driven pass by
//! pass the way `calls.rs` drives a call.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use dp_api::{Clip, Codec, Command, DataplaneHandle, DpError, Event, LegId, PortPlan, WorkerLink};
use relay::{Relay, RelayConfig};

use super::spec;
use crate::{MemIo, MemPeer, Worker};

/// A handle on one worker whose command queue holds `queue` commands, over `pairs` port pairs.
struct Lab {
    handle: DataplaneHandle,
    worker: Worker<MemIo>,
    peer: MemPeer,
    t0: Instant,
    ms: u64,
}

impl Lab {
    fn new(pairs: u16, queue: usize) -> Self {
        let plan = PortPlan::new(20000..=20000 + 2 * pairs - 1, 1).unwrap();
        let (cmd_tx, cmd_rx) = bounded(queue);
        let (ev_tx, ev_rx) = bounded(256);
        let (io, peer) = MemIo::new();
        let relay = Relay::new(RelayConfig::new(plan.slice(0), 256));
        let flag = Arc::new(AtomicBool::new(false));
        let worker = Worker::new(0, io, relay, cmd_rx, ev_tx, 8, flag).with_retired(plan.retired());
        let handle = DataplaneHandle::new(plan, vec![WorkerLink { commands: cmd_tx }], ev_rx);
        Self {
            handle,
            worker,
            peer,
            t0: Instant::now(),
            ms: 0,
        }
    }

    /// One worker pass, 1 ms after the previous one.
    fn pass(&mut self) {
        self.ms += 1;
        let now = self.t0 + Duration::from_millis(self.ms);
        self.worker.pass(None, move || now);
    }

    fn events(&self) -> Vec<Event> {
        self.handle.events().try_iter().collect()
    }

    /// `calls.rs::allocate_legs`: two legs on one worker.
    fn allocate(&self) -> (LegId, LegId) {
        let plan = &self.handle.plan;
        let a = plan.allocate().unwrap();
        let b = plan.allocate_on(0).unwrap();
        (a, b)
    }

    /// What a bridge call sends until it is bridged (click_to_call + calls.rs): both legs
    /// added, the first stats tick, the customer answered and announced to, the agent
    /// answered and bridged. Returns the send results.
    fn set_up(&self, (a, b): (LegId, LegId)) -> Vec<Result<(), DpError>> {
        let remote = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        [
            Command::AddLeg(spec(a, None)),
            Command::AddLeg(spec(b, None)),
            Command::QueryStats { leg: a },
            Command::QueryStats { leg: b },
            Command::SetRemote {
                leg: a,
                remote: remote(40000),
                codec: Codec::Pcma,
            },
            Command::Play {
                leg: a,
                clip: Arc::new(Clip::builtin_prompt()),
                looping: true,
            },
            Command::SetRemote {
                leg: b,
                remote: remote(50000),
                codec: Codec::Pcma,
            },
            Command::Bridge { a, b },
        ]
        .into_iter()
        .map(|c| self.handle.send(c))
        .collect()
    }

    /// The end of a call: RemoveLeg for both legs (the send results). `calls.rs` releases
    /// the ports after `LegRemoved`, or after its 2 s final-stats timeout ([`Self::release`]).
    fn tear_down(&self, (a, b): (LegId, LegId)) -> Vec<Result<(), DpError>> {
        [a, b]
            .map(|leg| self.handle.send(Command::RemoveLeg { leg }))
            .to_vec()
    }

    fn release(&self, (a, b): (LegId, LegId)) {
        self.handle.plan.release(a);
        self.handle.plan.release(b);
    }

    fn failed(&self) -> u64 {
        self.worker.relay().stats().commands_failed
    }
}

/// Issue 7's failure, deterministically: a call's RemoveLegs meet a full command queue (the
/// worker is behind), `calls.rs` gives up waiting for `LegRemoved` after 2 s and releases
/// the ports anyway. The next call must not be handed a port whose old leg the worker still
/// holds: before the fix it was, its AddLeg failed with `PortInUse`, and the failure reached
/// the call only after it was bridged (`failed/internal`, 5 failed commands).
#[test]
fn ports_whose_remove_was_lost_are_not_handed_out_until_removed() {
    // Room for the set-up of a call (8 commands) and one stats tick, not for a tear-down too.
    let mut lab = Lab::new(4, 10);
    let first = lab.allocate();
    assert!(lab.set_up(first).iter().all(Result::is_ok));
    for leg in [first.0, first.1] {
        lab.handle.send(Command::QueryStats { leg }).unwrap();
    }
    // The worker is stalled: the RemoveLegs do not fit.
    assert!(lab
        .tear_down(first)
        .iter()
        .all(|r| matches!(r, Err(DpError::QueueFull(0)))));
    lab.release(first);
    lab.pass();
    lab.events();

    let second = lab.allocate();
    assert!(lab.set_up(second).iter().all(Result::is_ok));
    lab.pass();
    let failures: Vec<Event> = lab
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::CommandFailed { .. }))
        .collect();
    assert_eq!(failures, vec![], "first {first:?}, second {second:?}");
    assert_eq!(lab.failed(), 0);
    // The second call ends normally; in the end the worker holds no leg.
    assert!(lab.tear_down(second).iter().all(Result::is_ok));
    lab.release(second);
    for _ in 0..3 {
        lab.pass();
    }
    assert_eq!(lab.worker.relay().stats().legs, 0);
    assert_eq!(lab.handle.plan.free_pairs(), 4);
    assert_eq!(lab.failed(), 0);
}

/// The exact signature: only the customer leg's RemoveLeg is lost. Before the fix the
/// next call got the old customer port for its agent leg (LIFO free list), its AddLeg failed
/// with `PortInUse` in the same pass as the rest of its set-up (the worker picks commands up
/// after its idle wait, while SIP peers on loopback answer at once), so the call was
/// `bridged` before the failure reached it, and the agent leg's AddLeg, QueryStats,
/// SetRemote, Bridge and RemoveLeg made `commands_failed` 5.
#[test]
fn a_lost_customer_remove_fails_no_later_agent_leg() {
    let mut lab = Lab::new(4, 10);
    let first = lab.allocate();
    assert!(lab.set_up(first).iter().all(Result::is_ok));
    for leg in [first.0, first.1] {
        lab.handle.send(Command::QueryStats { leg }).unwrap();
    }
    let lost = lab.handle.send(Command::RemoveLeg { leg: first.0 });
    assert_eq!(lost, Err(DpError::QueueFull(0)));
    lab.pass();
    lab.handle
        .send(Command::RemoveLeg { leg: first.1 })
        .unwrap();
    lab.pass();
    lab.release(first);

    let second = lab.allocate();
    assert!(lab.set_up(second).iter().all(Result::is_ok));
    lab.pass();
    assert!(lab.tear_down(second).iter().all(Result::is_ok));
    lab.release(second);
    for _ in 0..3 {
        lab.pass();
    }
    let failed = lab
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::CommandFailed { .. }))
        .count();
    assert_eq!((failed, lab.failed()), (0, 0), "{first:?} then {second:?}");
    assert_eq!(lab.worker.relay().stats().legs, 0);
    assert_eq!(lab.handle.plan.free_pairs(), 4);
}

/// The control plane releases while its RemoveLeg still waits in the queue (calls.rs after the
/// 2 s final-stats timeout, with the worker behind): the pair is not handed out until the
/// worker has taken the RemoveLeg, then comes back with the next generation.
#[test]
fn a_pair_released_before_its_removal_waits_for_the_worker() {
    let mut lab = Lab::new(1, 8);
    let leg = lab.handle.plan.allocate().unwrap();
    lab.handle.send(Command::AddLeg(spec(leg, None))).unwrap();
    lab.pass();
    lab.handle.send(Command::RemoveLeg { leg }).unwrap();
    lab.handle.plan.release(leg);
    assert_eq!(lab.handle.plan.allocate(), Err(DpError::NoFreePort));
    lab.pass();
    let next = lab.handle.plan.allocate().unwrap();
    assert_eq!((next.port(), next.generation()), (leg.port(), 2));
    lab.handle.send(Command::AddLeg(spec(next, None))).unwrap();
    lab.pass();
    assert_eq!(
        lab.events(),
        vec![
            Event::LegAdded { leg },
            Event::LegRemoved {
                leg,
                stats: dp_api::LegStats::default()
            },
            Event::LegAdded { leg: next },
        ]
    );
    // A failed AddLeg retires its leg too: the pair is free at release.
    lab.handle.send(Command::AddLeg(spec(next, None))).unwrap();
    lab.pass();
    lab.handle.send(Command::RemoveLeg { leg: next }).unwrap();
    lab.pass();
    lab.handle.plan.release(next);
    let third = lab.handle.plan.allocate().unwrap();
    lab.peer.fail_open(third.port());
    lab.handle.send(Command::AddLeg(spec(third, None))).unwrap();
    lab.pass();
    lab.handle.plan.release(third);
    assert_eq!(lab.handle.plan.free_pairs(), 1);
}
