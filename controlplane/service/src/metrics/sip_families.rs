//! The SIP endpoint's counters as Prometheus families, read at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use sip::transport::{Direction, CLASSES, METHODS};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    direction: &'static str,
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    direction: &'static str,
    class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

fn counter(n: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(n);
    c
}

fn kinds(pairs: &[(&'static str, u64)]) -> Family<KindLabel, Counter> {
    let f = Family::<KindLabel, Counter>::default();
    for &(kind, n) in pairs {
        f.get_or_create(&KindLabel { kind }).inc_by(n);
    }
    f
}

/// Registers the endpoint's messages, responses, transactions, retransmissions, parse
/// errors, connections and (with a registrar) REGISTER outcomes.
pub(super) fn register(ep: &sip::Endpoint, reg: &mut Registry) {
    let s = ep.stats();
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let messages = Family::<MethodLabels, Counter>::default();
    let responses = Family::<ClassLabels, Counter>::default();
    for dir in [Direction::Rx, Direction::Tx] {
        for (i, &method) in METHODS.iter().enumerate() {
            messages
                .get_or_create(&MethodLabels {
                    direction: dir.as_str(),
                    method,
                })
                .inc_by(s.messages.messages(dir, i));
        }
        for (i, &class) in CLASSES.iter().enumerate() {
            responses
                .get_or_create(&ClassLabels {
                    direction: dir.as_str(),
                    class,
                })
                .inc_by(s.messages.responses(dir, i));
        }
    }
    reg.register(
        "callbridge_sip_messages",
        "SIP messages received (parsed) and sent, by method; a response counts under its CSeq method; unlisted methods are \"other\"",
        messages,
    );
    reg.register(
        "callbridge_sip_responses",
        "SIP responses received and sent, by class",
        responses,
    );
    reg.register(
        "callbridge_sip_transactions",
        "SIP transactions started (kind client or server)",
        kinds(&[
            ("client", n(&s.client_transactions)),
            ("server", n(&s.server_transactions)),
        ]),
    );
    let retrans = Family::<DirectionLabel, Counter>::default();
    retrans
        .get_or_create(&DirectionLabel { direction: "rx" })
        .inc_by(n(&s.retransmissions_received));
    retrans
        .get_or_create(&DirectionLabel { direction: "tx" })
        .inc_by(n(&s.retransmissions_sent));
    reg.register(
        "callbridge_sip_retransmissions",
        "SIP retransmissions: tx = messages we sent again (Timers A/E/G, 2xx until the ACK, responses to a repeated request), rx = repeated requests received",
        retrans,
    );
    reg.register(
        "callbridge_sip_parse_errors",
        "SIP messages refused by the size limits or the parser, by kind",
        kinds(&[
            ("bad_request", n(&s.bad_requests)),
            ("too_large", n(&s.too_large)),
            ("invalid_response", n(&s.invalid_responses)),
            ("dropped", n(&s.dropped)),
        ]),
    );
    reg.register(
        "callbridge_sip_dropped",
        "SIP messages dropped or refused for policy, by kind",
        kinds(&[
            ("rate_limited", n(&s.rate_limited)),
            ("forbidden_invite", n(&s.forbidden_invites)),
            ("stray_response", n(&s.stray_responses)),
        ]),
    );
    reg.register(
        "callbridge_sip_send_errors",
        "SIP messages the OS refused to send or that had no connection",
        counter(n(&s.send_errors)),
    );
    reg.register(
        "callbridge_sip_connections",
        "TCP/TLS connection events, by kind",
        kinds(&[
            ("opened", n(&s.connections_opened)),
            ("accepted", n(&s.connections_accepted)),
            ("closed", n(&s.connections_closed)),
            ("refused", n(&s.connections_refused)),
            ("tls_failure", n(&s.tls_failures)),
        ]),
    );
    if let Some(r) = ep.registrar_stats() {
        let f = Family::<OutcomeLabel, Counter>::default();
        for (outcome, v) in [
            ("ok", r.ok),
            ("challenged", r.challenged),
            ("forbidden", r.forbidden),
            ("rejected", r.rejected),
            ("evicted", r.evicted),
        ] {
            f.get_or_create(&OutcomeLabel { outcome }).inc_by(v);
        }
        reg.register(
            "callbridge_sip_registrations",
            "REGISTER outcomes of the registrar (evicted: bindings evicted to make room)",
            f,
        );
    }
}
