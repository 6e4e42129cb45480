//! The plan's own rules (split, generations, addresses) and the reuse rules of issue 7:
//! a pair whose leg reached a worker comes back only once that worker retired the leg, the
//! `RemoveLeg` the control plane lost is sent by the plan, and stale ids are refused.

use std::net::SocketAddr;

use crossbeam_channel::{bounded, Receiver};

use super::*;
use crate::{Codec, DataplaneHandle, Latch, LegSpec, SrcMismatch, WorkerLink};

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
    let l = LegId::at(31, 65534, 2047);
    assert_eq!((l.addr(), l.port(), l.generation()), (31, 65534, 2047));
    assert_eq!(LegId::new(30000, 7), LegId::at(0, 30000, 7));
    // Out-of-range parts wrap instead of spilling into the neighbour field.
    let w = LegId::at(32, 30000, 2048);
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

/// A handle over `plan` with one worker whose queue holds `queue` commands; the receiver
/// plays the worker.
fn handle(plan: PortPlan, queue: usize) -> (DataplaneHandle, Receiver<Command>) {
    let (tx, rx) = bounded(queue);
    let (_ev_tx, ev_rx) = bounded(1);
    let h = DataplaneHandle::new(plan, vec![WorkerLink { commands: tx }], ev_rx);
    (h, rx)
}

fn add(leg: LegId) -> Command {
    Command::AddLeg(LegSpec {
        id: leg,
        remote: None,
        latch: Latch::Off,
        src_mismatch: SrcMismatch::Drop,
        codec: Codec::Pcmu,
        media_timeout: None,
    })
}

/// What the worker received, as short names.
fn received(rx: &Receiver<Command>) -> Vec<String> {
    rx.try_iter()
        .map(|c| match c {
            Command::AddLeg(s) => format!("add {}", s.id),
            Command::RemoveLeg { leg } => format!("remove {leg}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn released_pairs_come_back_oldest_first() {
    // Before issue 7 the free list was LIFO: one call at a time got the same two ports
    // every time, so a hot pair's 12-bit generation wrapped after 4096 calls.
    let plan = PortPlan::new(20000..=20007, 1).unwrap();
    let mut ports = Vec::new();
    for _ in 0..8 {
        let leg = plan.allocate().unwrap();
        ports.push(leg.port());
        plan.release(leg);
    }
    assert_eq!(
        ports,
        [20000, 20002, 20004, 20006, 20000, 20002, 20004, 20006]
    );
    // Per address: legs still fill the first address before the next.
    let plan = PortPlan::with_addresses(20000..=20003, 1, 2).unwrap();
    let a = plan.allocate().unwrap();
    plan.release(a);
    let got: Vec<_> = (0..4)
        .map(|_| plan.allocate().map(|l| (l.addr(), l.port())).unwrap())
        .collect();
    assert_eq!(got, [(0, 20002), (0, 20000), (1, 20000), (1, 20002)]);
}

#[test]
fn an_added_leg_comes_back_only_once_its_worker_retired_it() {
    let (h, worker) = handle(PortPlan::new(20000..=20003, 1).unwrap(), 8);
    let a = h.plan.allocate().unwrap();
    let b = h.plan.allocate().unwrap();
    h.send(add(a)).unwrap();
    h.send(Command::RemoveLeg { leg: a }).unwrap();
    // Released before the worker removed it (calls.rs after its final-stats timeout).
    h.plan.release(a);
    assert_eq!(h.plan.free_pairs(), 0);
    assert_eq!(h.plan.allocate(), Err(DpError::NoFreePort));
    // b never reached a worker: free at once.
    h.plan.release(b);
    assert_eq!(h.plan.allocate().map(|l| l.port()), Ok(20002));
    // The worker removes a.
    h.plan.retired().retire(a);
    let again = h.plan.allocate().unwrap();
    assert_eq!((again.port(), again.generation()), (20000, 2));
    assert_eq!(received(&worker), ["add leg20000.1", "remove leg20000.1"]);
}

#[test]
fn the_plan_sends_the_remove_leg_the_control_plane_lost() {
    let (h, worker) = handle(PortPlan::new(20000..=20003, 1).unwrap(), 1);
    let a = h.plan.allocate().unwrap();
    h.send(add(a)).unwrap();
    // The worker is behind: the RemoveLeg does not fit, and the caller gives up on it.
    assert_eq!(
        h.send(Command::RemoveLeg { leg: a }),
        Err(DpError::QueueFull(0))
    );
    h.plan.release(a); // still full: owed
    assert_eq!(received(&worker), ["add leg20000.1"]);
    // The next plan call sends it, once.
    let b = h.plan.allocate().unwrap();
    assert_eq!(b.port(), 20002);
    h.plan.release(b);
    assert_eq!(h.plan.free_pairs(), 1);
    assert_eq!(received(&worker), ["remove leg20000.1"]);
    h.plan.retired().retire(a);
    assert_eq!(h.plan.free_pairs(), 2);
    assert!(received(&worker).is_empty());
}

#[test]
fn release_without_any_remove_leg_removes_it() {
    let (h, worker) = handle(PortPlan::new(20000..=20001, 1).unwrap(), 8);
    let a = h.plan.allocate().unwrap();
    h.send(add(a)).unwrap();
    h.plan.release(a);
    assert_eq!(received(&worker), ["add leg20000.1", "remove leg20000.1"]);
    // A RemoveLeg after release is not sent again; one for a free pair is stale.
    assert_eq!(h.send(Command::RemoveLeg { leg: a }), Ok(()));
    assert!(received(&worker).is_empty());
    h.plan.retired().retire(a);
    assert_eq!(h.plan.free_pairs(), 1);
    assert_eq!(
        h.send(Command::RemoveLeg { leg: a }),
        Err(DpError::StaleLeg(a))
    );
}

#[test]
fn commands_for_legs_not_held_never_reach_a_worker() {
    let (h, worker) = handle(PortPlan::new(20000..=20003, 1).unwrap(), 16);
    let old = h.plan.allocate().unwrap();
    let peer = h.plan.allocate().unwrap();
    // Never added: free at once, and its AddLeg can no longer go out.
    h.plan.release(old);
    assert_eq!(h.send(add(old)), Err(DpError::StaleLeg(old)));
    let new = h.plan.allocate().unwrap();
    assert_eq!((new.port(), new.generation()), (old.port(), 2));
    h.send(add(new)).unwrap();
    h.send(add(peer)).unwrap();
    let remote: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let stale = [
        Command::QueryStats { leg: old },
        Command::SetRemote {
            leg: old,
            remote,
            codec: Codec::Pcmu,
        },
        Command::StopPlay { leg: old },
        Command::Unbridge { leg: old },
        Command::Bridge { a: old, b: peer },
        Command::Bridge { a: peer, b: old },
        Command::RemoveLeg { leg: old },
    ];
    for cmd in stale {
        assert_eq!(h.send(cmd.clone()), Err(DpError::StaleLeg(old)), "{cmd:?}");
    }
    // After its RemoveLeg a leg takes no other command, and a second RemoveLeg is not sent.
    h.send(Command::RemoveLeg { leg: new }).unwrap();
    assert_eq!(
        h.send(Command::QueryStats { leg: new }),
        Err(DpError::StaleLeg(new))
    );
    assert_eq!(h.send(Command::RemoveLeg { leg: new }), Ok(()));
    assert_eq!(
        received(&worker),
        ["add leg20000.2", "add leg20002.1", "remove leg20000.2"]
    );
    let odd = LegId::new(20001, 1);
    assert_eq!(
        h.send(Command::QueryStats { leg: odd }),
        Err(DpError::NoWorker(odd))
    );
}

#[test]
fn a_failed_add_leg_frees_the_pair_at_release() {
    let (h, _worker) = handle(PortPlan::new(20000..=20001, 1).unwrap(), 8);
    let a = h.plan.allocate().unwrap();
    h.send(add(a)).unwrap();
    // The worker could not open the port: it retires the leg it never held.
    h.plan.retired().retire(a);
    h.plan.release(a);
    assert_eq!(h.plan.free_pairs(), 1);
}

#[test]
fn a_wrapped_generation_needs_its_own_retirement() {
    // One pair: X.1 added and retired, then 4095 ids never added, then X.1 again (the
    // 12-bit generation wrapped). The old retirement of X.1 must not free the new X.1.
    let (h, _worker) = handle(PortPlan::new(20000..=20001, 1).unwrap(), 8);
    let x = h.plan.allocate().unwrap();
    h.send(add(x)).unwrap();
    h.send(Command::RemoveLeg { leg: x }).unwrap();
    h.plan.retired().retire(x);
    h.plan.release(x);
    let mut leg = h.plan.allocate().unwrap();
    for _ in 1..crate::GENERATIONS - 1 {
        h.plan.release(leg);
        leg = h.plan.allocate().unwrap();
    }
    h.plan.release(leg);
    let again = h.plan.allocate().unwrap();
    assert_eq!(again, x);
    assert!(!h.plan.retired().is_retired(x));
    h.send(add(again)).unwrap();
    h.plan.release(again);
    assert_eq!(h.plan.free_pairs(), 0, "the worker still holds the new X.1");
}

#[test]
fn retired_legs_ignore_ids_outside_the_plan() {
    let r = RetiredLegs::new(20000, 2, 1);
    for leg in [
        LegId::new(19998, 1),
        LegId::new(20001, 1),
        LegId::new(20004, 1),
        LegId::at(1, 20000, 1),
    ] {
        r.retire(leg);
        assert!(!r.is_retired(leg), "{leg}");
    }
    r.retire(LegId::new(20002, 3));
    assert!(r.is_retired(LegId::new(20002, 3)));
    assert!(!r.is_retired(LegId::new(20002, 2)));
}
