//! `GET /metrics`: the call service's figures ([`service::Service::register_metrics`]) and
//! the data plane's per-worker counters, in the OpenMetrics text format (prometheus-client).
//!
//! The data plane pays nothing per packet for this: each worker already publishes a snapshot
//! of its counters ([`worker::Dataplane::stats`], the same as `GET /v1/dataplane/stats`); a
//! scrape reads the snapshots into a fresh registry. Labels: `worker` is the worker's index,
//! `direction` is `rx` or `tx`, `reason` comes from the fixed drop-reason sets.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use worker::WorkerSnapshot;

/// The content type of [`render`]'s text (prometheus-client's OpenMetrics encoder).
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabel {
    worker: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    worker: String,
    direction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    worker: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    worker: String,
    kind: &'static str,
}

/// The whole exposition: the service's families, then the data plane's (`dpdk`: the DPDK
/// port and L2 counters too).
pub(crate) fn render(svc: &service::Service, workers: &[WorkerSnapshot], dpdk: bool) -> String {
    let mut reg = Registry::default();
    svc.register_metrics(&mut reg);
    register_dataplane(&mut reg, workers, dpdk);
    encode(&reg)
}

fn encode(reg: &Registry) -> String {
    let mut out = String::with_capacity(16 * 1024);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, reg) {
        // Writing into a String does not fail; keep what was written, well terminated.
        tracing::warn!(error = %e, "encoding metrics");
        out.push_str("# EOF\n");
    }
    out
}

/// A family of counters per `(worker, labels)` filled from the snapshots.
struct Counters<L> {
    family: Family<L, Counter>,
}

impl<L> Counters<L>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    fn new() -> Self {
        Self {
            family: Family::default(),
        }
    }

    fn add(&self, labels: L, n: u64) {
        self.family.get_or_create(&labels).inc_by(n);
    }

    fn register(self, reg: &mut Registry, name: &str, help: &str) {
        reg.register(name, help, self.family);
    }
}

/// Per-worker histograms of how late announcement frames went out against their 20 ms
/// deadlines (the pacing error), from the counts the workers publish.
#[derive(Debug)]
struct Lateness(Vec<WorkerHistogram>);

/// One worker's histogram: `(labels, sum, count, [(upper bound, count in bucket)])`.
type WorkerHistogram = (WorkerLabel, f64, u64, Vec<(f64, u64)>);

impl Lateness {
    fn from_snapshots(workers: &[WorkerSnapshot]) -> Self {
        let rows = workers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let r = &s.relay;
                let buckets: Vec<(f64, u64)> = relay::ANNOUNCEMENT_LATE_BOUNDS_US
                    .iter()
                    .map(|&us| us as f64 / 1e6)
                    .chain(std::iter::once(f64::MAX)) // +Inf
                    .zip(r.announcement_late.iter().copied())
                    .collect();
                let count = r.announcement_late.iter().sum();
                let sum = r.announcement_late_us as f64 / 1e6;
                let label = WorkerLabel {
                    worker: i.to_string(),
                };
                (label, sum, count, buckets)
            })
            .collect();
        Self(rows)
    }
}

impl Collector for Lateness {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut m = encoder.encode_descriptor(
            "callbridge_announcement_lateness_seconds",
            "How late each announcement frame went out against its 20 ms deadline (the pacing error), per worker",
            None,
            MetricType::Histogram,
        )?;
        for (label, sum, count, buckets) in &self.0 {
            m.encode_family(label)?
                .encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
        }
        Ok(())
    }
}

/// The data plane's families: relay packets, bytes and drops, legs, announcements, bursts,
/// hand-offs, and with `dpdk` the port and L2/L3 counters.
fn register_dataplane(reg: &mut Registry, workers: &[WorkerSnapshot], dpdk: bool) {
    let packets = Counters::<DirectionLabels>::new();
    let bytes = Counters::<DirectionLabels>::new();
    let drops = Counters::<ReasonLabels>::new();
    let announce = Counters::<KindLabels>::new();
    let bursts = Counters::<KindLabels>::new();
    let handoffs = Counters::<DirectionLabels>::new();
    let loops = Counters::<KindLabels>::new();
    let port_packets = Counters::<DirectionLabels>::new();
    let port_bytes = Counters::<DirectionLabels>::new();
    let port_errors = Counters::<KindLabels>::new();
    let net = Counters::<KindLabels>::new();
    let legs = Family::<WorkerLabel, Gauge>::default();
    reg.register_collector(Box::new(Lateness::from_snapshots(workers)));
    let mut total_legs: i64 = 0;
    for (i, s) in workers.iter().enumerate() {
        let w = i.to_string();
        let dir = |direction| DirectionLabels {
            worker: w.clone(),
            direction,
        };
        let kind = |kind| KindLabels {
            worker: w.clone(),
            kind,
        };
        let reason = |reason: &str| ReasonLabels {
            worker: w.clone(),
            reason: reason.to_owned(),
        };
        let r = &s.relay;
        packets.add(dir("rx"), r.rx_packets);
        packets.add(dir("tx"), r.tx_packets);
        bytes.add(dir("rx"), r.rx_bytes);
        bytes.add(dir("tx"), r.tx_bytes);
        for d in dp_api::DropReason::ALL {
            drops.add(reason(d.as_str()), r.drops.get(d));
        }
        drops.add(reason("tx_refused"), s.lp.tx_refused);
        drops.add(reason("handoff_ring_full"), s.io.handoff_drops);
        drops.add(reason("backend"), s.io.backend_drops);
        if dpdk {
            for d in worker::L2Drop::ALL {
                drops.add(reason(&format!("l2_{}", d.name())), s.io.net.dropped(d));
            }
        }
        let n = i64::try_from(r.legs).unwrap_or(i64::MAX);
        legs.get_or_create(&WorkerLabel { worker: w.clone() })
            .set(n);
        total_legs = total_legs.saturating_add(n);
        announce.add(kind("packets"), r.announcement_packets);
        announce.add(kind("resyncs"), r.announcement_resyncs);
        let lp = &s.lp;
        bursts.add(kind("rx_bursts"), lp.rx_bursts);
        bursts.add(kind("rx_packets"), lp.rx_burst_packets);
        bursts.add(kind("rx_full_bursts"), lp.rx_full_bursts);
        bursts.add(kind("tx_bursts"), lp.tx_bursts);
        bursts.add(kind("tx_packets"), lp.tx_burst_packets);
        handoffs.add(dir("out"), s.io.handoff_out);
        handoffs.add(dir("in"), s.io.handoff_in);
        loops.add(kind("passes"), lp.passes);
        loops.add(kind("idle_waits"), lp.idle_waits);
        loops.add(kind("commands"), lp.commands);
        loops.add(kind("commands_failed"), r.commands_failed);
        loops.add(kind("events_sent"), lp.events_sent);
        loops.add(
            kind("events_dropped"),
            lp.events_dropped.max(r.events_dropped),
        );
        if dpdk {
            let p = &s.io.port;
            port_packets.add(dir("rx"), p.ipackets);
            port_packets.add(dir("tx"), p.opackets);
            port_bytes.add(dir("rx"), p.ibytes);
            port_bytes.add(dir("tx"), p.obytes);
            port_errors.add(kind("imissed"), p.imissed);
            port_errors.add(kind("ierrors"), p.ierrors);
            port_errors.add(kind("oerrors"), p.oerrors);
            port_errors.add(kind("rx_nombuf"), p.rx_nombuf);
            let nt = &s.io.net;
            net.add(kind("rx_frames"), nt.rx_frames);
            net.add(kind("rx_udp"), nt.rx_udp);
            net.add(kind("tx_udp"), nt.tx_udp);
            net.add(kind("arp_replies"), nt.arp_replies);
            net.add(kind("arp_requests"), nt.arp_requests);
            net.add(kind("arp_learned"), nt.arp_learned);
            net.add(kind("arp_pending"), nt.arp_pending);
            net.add(kind("echo_replies"), nt.echo_replies);
            net.add(kind("no_route"), nt.no_route);
            net.add(kind("too_big"), nt.too_big);
        }
    }
    packets.register(
        reg,
        "callbridge_relay_packets",
        "RTP/RTCP packets the relay received (rx) and sent (tx), per worker",
    );
    bytes.register(
        reg,
        "callbridge_relay_bytes",
        "UDP payload bytes the relay received (rx) and sent (tx), per worker",
    );
    drops.register(
        reg,
        "callbridge_relay_drops",
        "Packets dropped per worker by reason (the relay's reasons; tx_refused: the backend refused to send; handoff_ring_full; backend; l2_*: the DPDK netstack's)",
    );
    reg.register(
        "callbridge_relay_legs",
        "Media legs a worker relays now",
        legs,
    );
    let active_legs: Gauge = Gauge::default();
    active_legs.set(total_legs);
    reg.register(
        "callbridge_active_legs",
        "Media legs relayed now (all workers)",
        active_legs,
    );
    announce.register(
        reg,
        "callbridge_announcement",
        "Announcement packets sent (kind packets) and pacing resynchronisations (kind resyncs: the worker fell behind the 20 ms deadlines and skipped ahead)",
    );
    bursts.register(
        reg,
        "callbridge_worker_bursts",
        "Receive/transmit bursts and the packets in them (burst fill = rx_packets / rx_bursts); rx_full_bursts filled the whole burst array",
    );
    handoffs.register(
        reg,
        "callbridge_worker_handoffs",
        "Frames handed to the worker owning their port (out) and received from other workers (in)",
    );
    loops.register(
        reg,
        "callbridge_worker_loop",
        "The worker loop's passes, idle waits, commands and events",
    );
    if dpdk {
        port_packets.register(
            reg,
            "callbridge_dpdk_port_packets",
            "DPDK port packets received (rx) and sent (tx), per worker",
        );
        port_bytes.register(
            reg,
            "callbridge_dpdk_port_bytes",
            "DPDK port bytes received (rx) and sent (tx), per worker",
        );
        port_errors.register(
            reg,
            "callbridge_dpdk_port_errors",
            "DPDK port errors per worker: imissed, ierrors, oerrors, rx_nombuf",
        );
        net.register(
            reg,
            "callbridge_dpdk_net",
            "The DPDK netstack's frames, UDP datagrams, ARP and ICMP counters, per worker",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_families_carry_the_snapshots() {
        let mut s = WorkerSnapshot::default();
        s.relay.rx_packets = 7;
        s.relay.tx_packets = 5;
        s.relay.legs = 2;
        s.relay.drops.add(dp_api::DropReason::SrcMismatch);
        s.io.port.ipackets = 11;
        s.lp.rx_bursts = 3;
        s.relay
            .note_announcement_late(std::time::Duration::from_micros(1_500));
        let mut reg = Registry::default();
        register_dataplane(&mut reg, &[s, WorkerSnapshot::default()], false);
        let t = encode(&reg);
        assert!(
            t.contains("callbridge_relay_packets_total{worker=\"0\",direction=\"rx\"} 7"),
            "{t}"
        );
        assert!(
            t.contains("callbridge_relay_packets_total{worker=\"1\",direction=\"tx\"} 0"),
            "{t}"
        );
        assert!(
            t.contains("callbridge_relay_drops_total{worker=\"0\",reason=\"src_mismatch\"} 1"),
            "{t}"
        );
        assert!(t.contains("callbridge_active_legs 2"), "{t}");
        assert!(
            t.contains("callbridge_worker_bursts_total{worker=\"0\",kind=\"rx_bursts\"} 3"),
            "{t}"
        );
        assert!(
            !t.contains("dpdk"),
            "no DPDK families without the backend: {t}"
        );
        assert!(t.ends_with("# EOF\n"));
        for line in [
            "callbridge_announcement_lateness_seconds_bucket{le=\"0.002\",worker=\"0\"} 1",
            "callbridge_announcement_lateness_seconds_bucket{le=\"+Inf\",worker=\"0\"} 1",
            "callbridge_announcement_lateness_seconds_count{worker=\"1\"} 0",
        ] {
            assert!(t.contains(line), "{line} in {t}");
        }
        let mut reg = Registry::default();
        register_dataplane(&mut reg, &[s], true);
        let t = encode(&reg);
        assert!(
            t.contains("callbridge_dpdk_port_packets_total{worker=\"0\",direction=\"rx\"} 11"),
            "{t}"
        );
        assert!(t.contains("reason=\"l2_"), "{t}");
    }
}
