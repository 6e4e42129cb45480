//! The data plane's per-worker counters as JSON, for `GET /v1/dataplane/stats`, and the
//! one-line summary logged when it stops.

use serde_json::{json, Map, Value};
use worker::WorkerSnapshot;

/// `{"workers": [{"worker": i, "relay": {...}, "loop": {...}, "io": {...}}]}`.
pub(crate) fn to_json(snapshots: &[WorkerSnapshot]) -> Value {
    let workers: Vec<Value> = snapshots
        .iter()
        .enumerate()
        .map(|(i, s)| worker_json(i, s))
        .collect();
    json!({ "workers": workers })
}

/// The totals over every worker, readable in one log line: packets and bytes received and
/// relayed, announcement packets, drops (with the three commonest reasons), events lost.
pub(crate) fn summary(snapshots: &[WorkerSnapshot]) -> String {
    let mut drops = vec![0u64; dp_api::DropReason::ALL.len()];
    let (mut rx, mut rxb, mut tx, mut txb, mut ann, mut lost) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for s in snapshots {
        let r = &s.relay;
        rx += r.rx_packets;
        rxb += r.rx_bytes;
        tx += r.tx_packets;
        txb += r.tx_bytes;
        ann += r.announcement_packets;
        lost += r.events_dropped;
        for (k, d) in dp_api::DropReason::ALL.iter().enumerate() {
            drops[k] += r.drops.get(*d);
        }
    }
    let mut top: Vec<(u64, &str)> = dp_api::DropReason::ALL
        .iter()
        .zip(&drops)
        .filter(|(_, n)| **n > 0)
        .map(|(d, n)| (*n, d.as_str()))
        .collect();
    top.sort_unstable_by(|a, b| b.cmp(a));
    let reasons: Vec<String> = top
        .iter()
        .take(3)
        .map(|(n, r)| format!("{r} {n}"))
        .collect();
    format!(
        "{} workers: received {rx} packets ({rxb} bytes), sent {tx} ({txb} bytes, {ann} of them \
         announcement), dropped {}{}, events lost {lost}",
        snapshots.len(),
        drops.iter().sum::<u64>(),
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        }
    )
}

fn worker_json(i: usize, s: &WorkerSnapshot) -> Value {
    let r = &s.relay;
    let relay_drops: Map<String, Value> = dp_api::DropReason::ALL
        .iter()
        .map(|d| (d.as_str().to_owned(), json!(r.drops.get(*d))))
        .collect();
    let n = &s.io.net;
    let l2_drops: Map<String, Value> = worker::L2Drop::ALL
        .iter()
        .map(|d| (d.name().to_owned(), json!(n.dropped(*d))))
        .collect();
    let p = &s.io.port;
    json!({
        "worker": i,
        "relay": {
            "legs": r.legs,
            "rx_packets": r.rx_packets,
            "rx_bytes": r.rx_bytes,
            "tx_packets": r.tx_packets,
            "tx_bytes": r.tx_bytes,
            "announcement_packets": r.announcement_packets,
            "announcement_resyncs": r.announcement_resyncs,
            "drops": relay_drops,
            "events_dropped": r.events_dropped,
            "commands_failed": r.commands_failed,
        },
        "loop": {
            "passes": s.lp.passes,
            "idle_waits": s.lp.idle_waits,
            "commands": s.lp.commands,
            "events_sent": s.lp.events_sent,
            "events_dropped": s.lp.events_dropped,
            "tx_refused": s.lp.tx_refused,
            "rx_bursts": s.lp.rx_bursts,
            "rx_burst_packets": s.lp.rx_burst_packets,
            "rx_full_bursts": s.lp.rx_full_bursts,
            "rx_burst_fill_avg": average(s.lp.rx_burst_packets, s.lp.rx_bursts),
            "tx_bursts": s.lp.tx_bursts,
            "tx_burst_packets": s.lp.tx_burst_packets,
            "tx_burst_fill_avg": average(s.lp.tx_burst_packets, s.lp.tx_bursts),
        },
        "io": {
            "net": {
                "rx_frames": n.rx_frames,
                "rx_udp": n.rx_udp,
                "tx_udp": n.tx_udp,
                "arp_replies": n.arp_replies,
                "arp_requests": n.arp_requests,
                "arp_learned": n.arp_learned,
                "arp_pending": n.arp_pending,
                "echo_replies": n.echo_replies,
                "no_route": n.no_route,
                "too_big": n.too_big,
                "drops": l2_drops,
            },
            "port": {
                "ipackets": p.ipackets,
                "opackets": p.opackets,
                "ibytes": p.ibytes,
                "obytes": p.obytes,
                "imissed": p.imissed,
                "ierrors": p.ierrors,
                "oerrors": p.oerrors,
                "rx_nombuf": p.rx_nombuf,
            },
            "backend_drops": s.io.backend_drops,
            "handoff": {
                "out": s.io.handoff_out,
                "in": s.io.handoff_in,
                "drops": s.io.handoff_drops,
            },
        },
    })
}

/// `total / count` with two decimals, 0 when nothing was counted.
fn average(total: u64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        (total as f64 / count as f64 * 100.0).round() / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stop_summary_is_one_short_line_of_totals() {
        let mut a = WorkerSnapshot::default();
        a.relay.rx_packets = 10;
        a.relay.tx_packets = 9;
        a.relay.drops.add(dp_api::DropReason::NotBridged);
        let mut b = a;
        b.relay.drops.add(dp_api::DropReason::NotBridged);
        b.relay.announcement_packets = 4;
        let line = summary(&[a, b]);
        assert!(line.starts_with("2 workers: received 20 packets"), "{line}");
        assert!(line.contains("4 of them announcement"), "{line}");
        assert!(line.contains("dropped 3 (not_bridged 3)"), "{line}");
        assert!(line.len() < 300, "{line}");
    }

    #[test]
    fn every_counter_group_is_present() {
        let mut s = WorkerSnapshot::default();
        s.relay.rx_packets = 7;
        s.relay.drops.add(dp_api::DropReason::SrcMismatch);
        s.io.handoff_out = 3;
        s.io.handoff_in = 4;
        s.io.handoff_drops = 5;
        let v = to_json(&[s, WorkerSnapshot::default()]);
        let w = &v["workers"];
        assert_eq!(w.as_array().map(Vec::len), Some(2));
        assert_eq!(w[0]["relay"]["rx_packets"], 7);
        assert_eq!(w[0]["relay"]["drops"]["src_mismatch"], 1);
        assert_eq!(w[1]["worker"], 1);
        assert!(w[0]["io"]["net"]["drops"]
            .as_object()
            .is_some_and(|m| !m.is_empty()));
        assert!(w[0]["io"]["port"]["ipackets"].is_u64());
        let h = &w[0]["io"]["handoff"];
        assert_eq!(
            (&h["out"], &h["in"], &h["drops"]),
            (&json!(3), &json!(4), &json!(5))
        );
        assert!(w[0]["loop"]["passes"].is_u64());
        assert_eq!(w[0]["loop"]["rx_burst_fill_avg"], 0.0);
        assert_eq!(average(45, 2), 22.5);
    }
}
