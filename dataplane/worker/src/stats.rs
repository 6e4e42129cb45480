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
use crate::netstack::{L2Drop, NetStats};

/// How often workers publish their counters.
pub const PUBLISH_PERIOD: Duration = Duration::from_millis(100);

const RELAY_FIELDS: usize = 10 + relay::ANNOUNCEMENT_LATE_BUCKETS;
const LOOP_FIELDS: usize = 11;
const NET_FIELDS: usize = 10;
const PORT_FIELDS: usize = 8;
const IO_FIELDS: usize = NET_FIELDS + L2Drop::COUNT + PORT_FIELDS + 1 + HANDOFF_FIELDS;
const HANDOFF_FIELDS: usize = 3;
const FIELDS: usize = RELAY_FIELDS + DropReason::COUNT + LOOP_FIELDS + IO_FIELDS;

/// A port's hardware counters (`rte_eth_stats`), as the DPDK backend last read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the NIC dropped because the RX queue was full (worker too slow).
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// RX mbuf allocation failures (mempool too small).
    pub rx_nombuf: u64,
}

/// A backend's own counters: zero for the socket and in-memory backends; the DPDK backend's
/// L2/L3 layer ([`NetStats`]) and its port's counters (read on the housekeeping period,
/// by worker 0 only since they are per port).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// The L2/L3 layer's counters.
    pub net: NetStats,
    /// The port's counters.
    pub port: PortCounters,
    /// Packets dropped by the backend itself (e.g. no mbuf for a reply, non-IPv4 peer).
    pub backend_drops: u64,
    /// Several workers on one DPDK port: frames this worker received for a port another
    /// worker owns and passed to it (see [`crate::steer`]).
    pub handoff_out: u64,
    /// Frames other workers passed to this one.
    pub handoff_in: u64,
    /// Frames dropped because the owner's handoff ring was full.
    pub handoff_drops: u64,
}

/// One worker's counters as the control plane sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerSnapshot {
    /// The relay's counters (packets, drops by reason, events dropped from its ring).
    pub relay: WorkerStats,
    /// The loop's counters (passes, idle waits, event-queue drops, TX refusals).
    pub lp: LoopStats,
    /// The backend's counters (DPDK: L2/L3 drops, port counters).
    pub io: IoStats,
}

/// The atomics one worker publishes into (written by the worker, read by anyone).
#[derive(Debug)]
pub struct SharedStats {
    fields: [AtomicU64; FIELDS],
}

impl Default for SharedStats {
    fn default() -> Self {
        Self {
            fields: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl SharedStats {
    /// Stores a snapshot (relaxed; called by the worker).
    pub fn publish(&self, relay: &WorkerStats, lp: &LoopStats, io: &IoStats) {
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
            relay.announcement_late_us,
        ];
        let r = r.iter().chain(relay.announcement_late.iter());
        let l = [
            lp.passes,
            lp.idle_waits,
            lp.commands,
            lp.events_sent,
            lp.events_dropped,
            lp.tx_refused,
            lp.rx_bursts,
            lp.rx_burst_packets,
            lp.rx_full_bursts,
            lp.tx_bursts,
            lp.tx_burst_packets,
        ];
        let n = &io.net;
        let net = [
            n.rx_frames,
            n.rx_udp,
            n.arp_replies,
            n.echo_replies,
            n.arp_requests,
            n.arp_learned,
            n.arp_pending,
            n.no_route,
            n.too_big,
            n.tx_udp,
        ];
        let p = &io.port;
        let port = [
            p.ipackets,
            p.opackets,
            p.ibytes,
            p.obytes,
            p.imissed,
            p.ierrors,
            p.oerrors,
            p.rx_nombuf,
        ];
        let backend = [
            io.backend_drops,
            io.handoff_out,
            io.handoff_in,
            io.handoff_drops,
        ];
        let all = r
            .chain(relay.drops.0.iter())
            .chain(l.iter())
            .chain(net.iter())
            .chain(n.drops.iter())
            .chain(port.iter())
            .chain(backend.iter());
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
        let n = &l[LOOP_FIELDS..];
        let mut l2 = [0u64; L2Drop::COUNT];
        l2.copy_from_slice(&n[NET_FIELDS..NET_FIELDS + L2Drop::COUNT]);
        let p = &n[NET_FIELDS + L2Drop::COUNT..];
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
                announcement_late_us: v[9],
                announcement_late: std::array::from_fn(|i| v[10 + i]),
                drops,
            },
            lp: LoopStats {
                passes: l[0],
                idle_waits: l[1],
                commands: l[2],
                events_sent: l[3],
                events_dropped: l[4],
                tx_refused: l[5],
                rx_bursts: l[6],
                rx_burst_packets: l[7],
                rx_full_bursts: l[8],
                tx_bursts: l[9],
                tx_burst_packets: l[10],
            },
            io: IoStats {
                net: NetStats {
                    rx_frames: n[0],
                    rx_udp: n[1],
                    arp_replies: n[2],
                    echo_replies: n[3],
                    arp_requests: n[4],
                    arp_learned: n[5],
                    arp_pending: n[6],
                    no_route: n[7],
                    too_big: n[8],
                    tx_udp: n[9],
                    drops: l2,
                },
                port: PortCounters {
                    ipackets: p[0],
                    opackets: p[1],
                    ibytes: p[2],
                    obytes: p[3],
                    imissed: p[4],
                    ierrors: p[5],
                    oerrors: p[6],
                    rx_nombuf: p[7],
                },
                backend_drops: p[8],
                handoff_out: p[9],
                handoff_in: p[10],
                handoff_drops: p[11],
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
        relay.note_announcement_late(std::time::Duration::from_micros(1_500));
        relay.note_announcement_late(std::time::Duration::from_millis(70));
        assert_eq!(relay.announcement_late, [0, 1, 0, 0, 0, 1]);
        assert_eq!(relay.announcement_late_us, 71_500);
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
            rx_bursts: 16,
            rx_burst_packets: 17,
            rx_full_bursts: 18,
            tx_bursts: 19,
            tx_burst_packets: 20,
        };
        let mut io = IoStats::default();
        let mut k = 100;
        let mut next = || {
            k += 1;
            k
        };
        io.net = NetStats {
            rx_frames: next(),
            rx_udp: next(),
            arp_replies: next(),
            echo_replies: next(),
            arp_requests: next(),
            arp_learned: next(),
            arp_pending: next(),
            no_route: next(),
            too_big: next(),
            tx_udp: next(),
            drops: std::array::from_fn(|i| 1000 + i as u64),
        };
        io.port = PortCounters {
            ipackets: next(),
            opackets: next(),
            ibytes: next(),
            obytes: next(),
            imissed: next(),
            ierrors: next(),
            oerrors: next(),
            rx_nombuf: next(),
        };
        io.backend_drops = next();
        io.handoff_out = next();
        io.handoff_in = next();
        io.handoff_drops = next();
        let s = SharedStats::default();
        assert_eq!(s.load(), WorkerSnapshot::default());
        s.publish(&relay, &lp, &io);
        assert_eq!(s.load(), WorkerSnapshot { relay, lp, io });
    }
}
