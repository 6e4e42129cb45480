//! A leg's media counters as stored and shown, with the voice-quality estimate.

use dp_api::LegStats;
use serde_json::{json, Value};

/// Voice quality of one leg: [`LegStats::quality`] (the ITU-T G.107 E-model, simplified for
/// G.711), `(loss_pct, r_factor, mos)`; `None` for a leg that received no RTP.
#[must_use]
pub fn quality(s: &LegStats) -> Option<(Option<f64>, f64, f64)> {
    s.quality()
}

/// Media counters of one leg as stored and shown (`media.customer` / `media.agent`), with
/// the quality estimate ([`quality`]): `loss_pct` (null without RTCP reports), `r_factor`,
/// `mos`.
pub fn media_json(s: &LegStats) -> Value {
    let q = quality(s);
    let drops: serde_json::Map<String, Value> = dp_api::DropReason::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), json!(s.drops.get(*r))))
        .collect();
    json!({
        "rx_packets": s.rx_packets,
        "rx_bytes": s.rx_bytes,
        "tx_packets": s.tx_packets,
        "tx_bytes": s.tx_bytes,
        "rx_rtcp": s.rx_rtcp,
        "tx_rtcp": s.tx_rtcp,
        "announcement_packets": s.announcement_packets,
        "jitter_us": s.jitter_us,
        "max_jitter_us": s.max_jitter_us,
        "rtcp_reports": s.peer_reports,
        "cumulative_lost": (s.peer_reports > 0).then_some(s.peer_cumulative_lost),
        "loss_pct": q.and_then(|q| q.0),
        "r_factor": q.map(|q| q.1),
        "mos": q.map(|q| q.2),
        "drops": drops,
    })
}
