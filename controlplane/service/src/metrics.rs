//! The call service's Prometheus figures (`GET /metrics`, rendered by the `callbridge`
//! crate with the data plane's).
//!
//! Two kinds:
//! * kept as they happen, in [`CallMetrics`] (prometheus-client counters and histograms,
//!   relaxed atomics): status changes by business, failures by reason, set-up times, observed
//!   waits, and each media leg's quality when its call ends;
//! * read at scrape time from what the service already keeps ([`Service::register_metrics`]):
//!   live calls, queue lengths, estimated waits, calls in progress, agents by presence,
//!   refusals, and the SIP endpoint's counters ([`sip_families`]).
//!
//! Labels are bounded: business and agent ids come from the directory, statuses and reasons
//! from fixed sets; never a call id, number or address. Label values are escaped here
//! ([`esc`]): prometheus-client writes them as given.

use std::time::{Duration, Instant};

use dp_api::LegStats;
use flows::Status;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::{lock, Presence, Service};

mod sip_families;

/// `business` and `status`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    business: String,
    status: String,
}

/// `business` and `reason`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    business: String,
    reason: String,
}

/// One label `name=value` (the name chosen per family).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StageLabel {
    stage: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BusinessLabel {
    business: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RoleLabel {
    role: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PresenceLabels {
    business: String,
    presence: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn setup_histogram() -> Histogram {
    Histogram::new([
        0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0,
    ])
}

fn wait_histogram() -> Histogram {
    Histogram::new([1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0])
}

fn loss_histogram() -> Histogram {
    Histogram::new([0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5])
}

fn jitter_histogram() -> Histogram {
    Histogram::new([0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2])
}

fn mos_histogram() -> Histogram {
    Histogram::new([1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.2, 4.4, 4.6])
}

/// The figures kept as calls go (cheap to update: atomics behind a short-held family lock).
#[derive(Debug)]
pub(crate) struct CallMetrics {
    requests: Family<StatusLabels, Counter>,
    failures: Family<ReasonLabels, Counter>,
    setup: HistogramFamily<StageLabel>,
    waits: HistogramFamily<BusinessLabel>,
    loss: HistogramFamily<RoleLabel>,
    jitter: HistogramFamily<RoleLabel>,
    mos: HistogramFamily<RoleLabel>,
}

impl Default for CallMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            failures: Family::default(),
            setup: Family::new_with_constructor(setup_histogram),
            waits: Family::new_with_constructor(wait_histogram),
            loss: Family::new_with_constructor(loss_histogram),
            jitter: Family::new_with_constructor(jitter_histogram),
            mos: Family::new_with_constructor(mos_histogram),
        }
    }
}

/// A label value as the exposition format needs it: `\`, `"` and line feeds escaped.
#[must_use]
pub(crate) fn esc(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn business_label(b: Option<&flows::BusinessId>) -> String {
    b.map_or_else(String::new, |b| esc(b.as_str()))
}

impl CallMetrics {
    /// A request reached `status` (`failed` with its `reason`). Bridges have no business:
    /// their label is empty.
    pub(crate) fn status(
        &self,
        business: Option<&flows::BusinessId>,
        status: &str,
        reason: Option<&str>,
    ) {
        let business = business_label(business);
        if status == "failed" {
            self.failures
                .get_or_create(&ReasonLabels {
                    business: business.clone(),
                    reason: esc(reason.unwrap_or("unknown")),
                })
                .inc();
        }
        self.requests
            .get_or_create(&StatusLabels {
                business,
                status: esc(status),
            })
            .inc();
    }

    /// An agent was handed to a call `waited` after its attempt started.
    pub(crate) fn waited(&self, business: Option<&flows::BusinessId>, waited: Duration) {
        self.waits
            .get_or_create(&BusinessLabel {
                business: business_label(business),
            })
            .observe(waited.as_secs_f64());
    }

    /// A media leg's final counters (`role`: `customer` or `agent`).
    pub(crate) fn leg_ended(&self, role: &'static str, s: &LegStats) {
        let Some((loss_pct, _r, mos)) = crate::quality(s) else {
            return; // the leg received nothing: no quality to speak of
        };
        let label = RoleLabel { role };
        if let Some(l) = loss_pct {
            self.loss.get_or_create(&label).observe(l / 100.0);
        }
        self.jitter
            .get_or_create(&label)
            .observe(f64::from(s.max_jitter_us) / 1e6);
        self.mos.get_or_create(&label).observe(mos);
    }

    fn register(&self, reg: &mut Registry) {
        reg.register(
            "callbridge_call_requests",
            "Call requests and bridges that reached a status (every status change counts once)",
            self.requests.clone(),
        );
        reg.register(
            "callbridge_call_failures",
            "Calls that failed, by failure reason",
            self.failures.clone(),
        );
        reg.register(
            "callbridge_call_setup_seconds",
            "Time from the start of a call attempt (the request claimed to be dialled) to the customer answering (stage customer_answered) and to customer and agent bridged (stage bridged)",
            self.setup.clone(),
        );
        reg.register(
            "callbridge_queue_wait_seconds",
            "Observed wait from the start of a call attempt until an agent was handed to it",
            self.waits.clone(),
        );
        reg.register(
            "callbridge_leg_loss_ratio",
            "Per media leg at call end: the fraction lost the peer last reported in RTCP (legs with reports only)",
            self.loss.clone(),
        );
        reg.register(
            "callbridge_leg_jitter_seconds",
            "Per media leg at call end: the largest interarrival jitter seen",
            self.jitter.clone(),
        );
        reg.register(
            "callbridge_leg_mos",
            "Per media leg at call end: the E-model MOS estimate (G.711)",
            self.mos.clone(),
        );
    }
}

/// One call attempt's set-up clock: observes `customer_answered` at the first status past
/// `calling_customer` (announcing, calling_agent or bridged) and `bridged` at bridged, both
/// measured from when the attempt started (its request claimed, or the bridge accepted).
#[derive(Debug)]
pub(crate) struct SetupClock {
    started: Instant,
    answered: bool,
    bridged: bool,
}

impl SetupClock {
    pub(crate) fn start() -> Self {
        Self {
            started: Instant::now(),
            answered: false,
            bridged: false,
        }
    }

    /// Since the attempt started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub(crate) fn on_status(&mut self, status: Status, m: &CallMetrics) {
        let answered = matches!(
            status,
            Status::Announcing | Status::CallingAgent | Status::Bridged
        );
        let secs = self.started.elapsed().as_secs_f64();
        if answered && !self.answered {
            self.answered = true;
            m.setup
                .get_or_create(&StageLabel {
                    stage: "customer_answered",
                })
                .observe(secs);
        }
        if status == Status::Bridged && !self.bridged {
            self.bridged = true;
            m.setup
                .get_or_create(&StageLabel { stage: "bridged" })
                .observe(secs);
        }
    }
}

const PRESENCES: [Presence; 5] = [
    Presence::Available,
    Presence::OnCall,
    Presence::WrapUp,
    Presence::Away,
    Presence::Offline,
];

impl Service {
    /// Registers the service's figures into `reg`: those kept as calls go, and gauges and
    /// counters read now from the directory, the ACD, the limiters, the refusals and the
    /// SIP endpoint. Called once per scrape with a fresh registry.
    pub fn register_metrics(&self, reg: &mut Registry) {
        let i = self.inner();
        i.metrics.register(reg);
        let active: Gauge = Gauge::default();
        active.set(i64::try_from(lock(&i.live).len()).unwrap_or(i64::MAX));
        reg.register(
            "callbridge_active_calls",
            "Calls running now (dialling, announcing, ringing the agent or bridged)",
            active,
        );
        let dir = i.dir();
        let queued = Family::<BusinessLabel, Gauge>::default();
        let in_progress = Family::<BusinessLabel, Gauge>::default();
        let estimated =
            Family::<BusinessLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let agents = Family::<PresenceLabels, Gauge>::default();
        {
            let acd = lock(&i.acd);
            for b in &dir.businesses {
                let label = BusinessLabel {
                    business: esc(b.id.as_str()),
                };
                let len = acd.queue_len(&b.id);
                queued
                    .get_or_create(&label)
                    .set(i64::try_from(len).unwrap_or(i64::MAX));
                let running = i.limiter(&b.id).map_or(0, |l| lock(&l).active_calls(&b.id));
                in_progress.get_or_create(&label).set(i64::from(running));
                if let Some(w) = acd.estimated_wait(&b.id, len) {
                    estimated.get_or_create(&label).set(w.as_secs_f64());
                }
                for p in PRESENCES {
                    let n = dir
                        .agents
                        .iter()
                        .filter(|a| a.businesses.contains(&b.id))
                        .filter(|a| acd.presence(&a.id) == Some(p))
                        .count();
                    agents
                        .get_or_create(&PresenceLabels {
                            business: esc(b.id.as_str()),
                            presence: p.as_str(),
                        })
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
        }
        reg.register(
            "callbridge_queue_length",
            "Requests waiting in a business's queue for an agent",
            queued,
        );
        if let Some(cluster) = self.cluster_queued() {
            let family = Family::<BusinessLabel, Gauge>::default();
            for b in &dir.businesses {
                let n = cluster.get(b.id.as_str()).copied().unwrap_or(0);
                family
                    .get_or_create(&BusinessLabel {
                        business: esc(b.id.as_str()),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            reg.register(
                "callbridge_queue_length_cluster",
                "Requests queued for a business on every node sharing the store (status queued in the store; read at most once a second)",
                family,
            );
        }
        reg.register(
            "callbridge_calls_in_progress",
            "Calls counted against a business's concurrency limit (accepted to be dialled now, or running)",
            in_progress,
        );
        reg.register(
            "callbridge_queue_estimated_wait_seconds",
            "The wait a request joining the queue now is estimated to have (absent while no agent works for the business or nothing was handled yet)",
            estimated,
        );
        reg.register(
            "callbridge_agents",
            "Agents serving a business, by presence",
            agents,
        );
        let refused = Family::<KindLabel, Counter>::default();
        for (kind, n) in i.refusals.snapshot() {
            refused
                .get_or_create(&KindLabel { kind: esc(kind) })
                .inc_by(n);
        }
        reg.register(
            "callbridge_call_requests_refused",
            "Call requests refused before they were accepted, by kind",
            refused,
        );
        sip_families::register(i.b2b.sip(), reg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    fn text(m: &CallMetrics) -> String {
        let mut reg = Registry::default();
        m.register(&mut reg);
        let mut s = String::new();
        encode(&mut s, &reg).unwrap();
        s
    }

    #[test]
    fn statuses_failures_and_setup_are_encoded() {
        let m = CallMetrics::default();
        let b = flows::BusinessId::new("acme".to_owned()).unwrap();
        m.status(Some(&b), "queued", None);
        m.status(Some(&b), "completed", None);
        m.status(None, "failed", Some("customer_busy"));
        let mut clock = SetupClock::start();
        clock.on_status(Status::CallingCustomer, &m);
        clock.on_status(Status::Announcing, &m);
        clock.on_status(Status::CallingAgent, &m);
        clock.on_status(Status::Bridged, &m);
        clock.on_status(Status::Bridged, &m);
        m.waited(Some(&b), Duration::from_secs(2));
        let s = text(&m);
        assert!(
            s.contains("callbridge_call_requests_total{business=\"acme\",status=\"completed\"} 1"),
            "{s}"
        );
        assert!(
            s.contains("callbridge_call_failures_total{business=\"\",reason=\"customer_busy\"} 1"),
            "{s}"
        );
        assert!(
            s.contains("callbridge_call_setup_seconds_count{stage=\"customer_answered\"} 1"),
            "{s}"
        );
        assert!(
            s.contains("callbridge_call_setup_seconds_count{stage=\"bridged\"} 1"),
            "{s}"
        );
        assert!(
            s.contains("callbridge_queue_wait_seconds_sum{business=\"acme\"} 2.0"),
            "{s}"
        );
        assert!(s.contains("# TYPE callbridge_leg_mos histogram"), "{s}");
    }

    #[test]
    fn leg_quality_goes_to_histograms() {
        let m = CallMetrics::default();
        let s = LegStats {
            rx_packets: 500,
            rx_bytes: 80_000,
            max_jitter_us: 4_000,
            peer_reports: 2,
            peer_fraction_lost: 26,
            ..LegStats::default()
        };
        m.leg_ended("customer", &s);
        m.leg_ended("agent", &LegStats::default()); // nothing received: not observed
        let t = text(&m);
        assert!(
            t.contains("callbridge_leg_mos_count{role=\"customer\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("callbridge_leg_jitter_seconds_sum{role=\"customer\"} 0.004"),
            "{t}"
        );
        assert!(
            t.contains("callbridge_leg_loss_ratio_count{role=\"customer\"} 1"),
            "{t}"
        );
        assert!(!t.contains("role=\"agent\""), "{t}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let m = CallMetrics::default();
        m.status(None, "failed", Some("x\"y"));
        let s = text(&m);
        assert!(s.contains("reason=\"x\\\"y\""), "{s}");
    }
}
