//! Per-worker counters published for the control plane without locks.
//!
//! Each worker owns its [`relay::WorkerStats`] and [`LoopStats`]; every
//! [`PUBLISH_PERIOD`] (of the worker's clock) it copies them into a [`SharedStats`] of relaxed
//! atomics, which [`crate::Dataplane::stats`] reads. Values are therefore up to one period
//! old, and a snapshot is not atomic across fields (each counter is exact on its own).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dp_api::{DropCounters, DropReason};
use relay::WorkerStats;

use crate::lcore::LoopStats;

/// How often workers publish their counters.
pub const PUBLISH_PERIOD: Duration = Duration::from_millis(100);

const RELAY_FIELDS: usize = 9;
const LOOP_FIELDS: usize = 6;
const FIELDS: usize = RELAY_FIELDS + DropReason::COUNT + LOOP_FIELDS;

/// One worker's counters as the control plane sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerSnapshot {
    /// The relay's counters (packets, drops by reason, events dropped from its ring).
    pub relay: WorkerStats,
    /// The loop's counters (passes, idle waits, event-queue drops, TX refusals).
    pub lp: LoopStats,
}

/// The atomics one worker publishes into (written by the worker, read by anyone).
#[derive(Debug, Default)]
pub struct SharedStats {
    fields: [AtomicU64; FIELDS],
}

impl SharedStats {
    /// Stores a snapshot (relaxed; called by the worker).
    pub fn publish(&self, relay: &WorkerStats, lp: &LoopStats) {
        let r = [
            relay.legs as u64,
            relay.rx_packets,
            relay.rx_bytes,
            relay.tx_packets,
            relay.tx_bytes,
            relay.announcement_packets,
            relay.announcement_resyncs,
            relay.events_dropped,
            relay.commands_failed,
        ];
        let l = [
            lp.passes,
            lp.idle_waits,
            lp.commands,
            lp.events_sent,
            lp.events_dropped,
            lp.tx_refused,
        ];
        let all = r.iter().chain(relay.drops.0.iter()).chain(l.iter());
        for (f, v) in self.fields.iter().zip(all) {
            f.store(*v, Ordering::Relaxed);
        }
    }

    /// Reads the last published snapshot.
    #[must_use]
    pub fn load(&self) -> WorkerSnapshot {
        let v: [u64; FIELDS] = std::array::from_fn(|i| self.fields[i].load(Ordering::Relaxed));
        let mut drops = DropCounters::default();
        drops
            .0
            .copy_from_slice(&v[RELAY_FIELDS..RELAY_FIELDS + DropReason::COUNT]);
        let l = &v[RELAY_FIELDS + DropReason::COUNT..];
        WorkerSnapshot {
            relay: WorkerStats {
                legs: v[0] as usize,
                rx_packets: v[1],
                rx_bytes: v[2],
                tx_packets: v[3],
                tx_bytes: v[4],
                announcement_packets: v[5],
                announcement_resyncs: v[6],
                events_dropped: v[7],
                commands_failed: v[8],
                drops,
            },
            lp: LoopStats {
                passes: l[0],
                idle_waits: l[1],
                commands: l[2],
                events_sent: l[3],
                events_dropped: l[4],
                tx_refused: l[5],
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_load_round_trip() {
        let mut relay = WorkerStats {
            legs: 3,
            rx_packets: 1,
            rx_bytes: 2,
            tx_packets: 4,
            ..WorkerStats::default()
        };
        relay.tx_bytes = 5;
        relay.announcement_packets = 6;
        relay.announcement_resyncs = 7;
        relay.events_dropped = 8;
        relay.commands_failed = 9;
        for (i, r) in DropReason::ALL.iter().enumerate() {
            for _ in 0..=i {
                relay.drops.add(*r);
            }
        }
        let lp = LoopStats {
            passes: 10,
            idle_waits: 11,
            commands: 12,
            events_sent: 13,
            events_dropped: 14,
            tx_refused: 15,
        };
        let s = SharedStats::default();
        assert_eq!(s.load(), WorkerSnapshot::default());
        s.publish(&relay, &lp);
        assert_eq!(s.load(), WorkerSnapshot { relay, lp });
    }
}
