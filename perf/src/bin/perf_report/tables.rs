//! The report's tables: each scenario's headline figures against issue 9's targets.

use std::fmt::Write as _;

use serde_json::Value;

/// How a figure compares with its target.
#[derive(Clone, Copy)]
pub(crate) enum Target {
    /// At most this.
    AtMost(f64),
    /// At least this.
    AtLeast(f64),
    /// No target: reported for reading.
    None,
}

impl Target {
    fn describe(self) -> String {
        match self {
            Self::AtMost(t) => format!("≤ {}", fmt_num(t)),
            Self::AtLeast(t) => format!("≥ {}", fmt_num(t)),
            Self::None => String::new(),
        }
    }

    fn verdict(self, v: Option<f64>) -> &'static str {
        match (self, v) {
            (Self::None, _) => "",
            (_, None) => "not measured",
            (Self::AtMost(t), Some(v)) if v <= t => "met",
            (Self::AtLeast(t), Some(v)) if v >= t => "met",
            _ => "missed",
        }
    }
}

/// A number for a table: integers without decimals, small numbers with up to three
/// significant decimals.
pub(crate) fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The line under each scenario's heading: commit, date, machine, load, quick.
pub(crate) fn provenance(doc: &Value) -> String {
    let m = &doc["machine"];
    format!(
        "commit `{}`, {}, {} ({} logical cores{}), load average {}{}",
        doc["commit"].as_str().unwrap_or("?"),
        doc["date"].as_str().unwrap_or("?"),
        m["cpu"].as_str().unwrap_or("?"),
        m["logical_cores"],
        if m["virtualized"].as_bool() == Some(true) {
            ", virtualized"
        } else {
            ""
        },
        m["loadavg"].as_str().unwrap_or("?"),
        if doc["quick"].as_bool() == Some(true) {
            "; **--quick run: a smoke test, not figures to quote**"
        } else {
            ""
        }
    )
}

struct Table {
    md: String,
}

impl Table {
    fn new() -> Self {
        Self {
            md: String::from("| figure | value | target | |\n|---|---:|---|---|\n"),
        }
    }

    fn row(&mut self, name: &str, v: Option<f64>, unit: &str, target: Target) {
        let value = v.map_or_else(|| "—".to_owned(), |v| format!("{} {unit}", fmt_num(v)));
        let _ = writeln!(
            self.md,
            "| {name} | {} | {} | {} |",
            value.trim(),
            target.describe(),
            target.verdict(v)
        );
    }
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// The table and a one-line headline for `scenario`.
pub(crate) fn scenario(scenario: &str, doc: &Value) -> (String, String) {
    let mut t = Table::new();
    let headline = match scenario {
        "relay-core" => relay_core(&mut t, doc),
        "relay-instr" => {
            let w = num(&doc["instructions_per_packet_worker"]);
            let o = num(&doc["instructions_per_packet_worker_offload"]);
            let r = num(&doc["instructions_per_packet_relay"]);
            t.row(
                "worker pass, instructions/packet",
                w,
                "",
                Target::AtMost(550.0),
            );
            t.row(
                "worker pass with checksum offload",
                o,
                "",
                Target::AtMost(400.0),
            );
            t.row("relay core alone", r, "", Target::AtMost(100.0));
            format!(
                "worker {} instr/pkt, {} with offload, relay {}",
                opt(w),
                opt(o),
                opt(r)
            )
        }
        "relay-dpdk" => {
            let m = num(&doc["mpps_per_core"]);
            let r = num(&doc["ratio_vs_testpmd_5tswap"]);
            t.row(
                &format!("relay Mpps per worker core ({} legs)", doc["legs"]),
                m,
                "Mpps",
                Target::AtLeast(10.0),
            );
            t.row(
                "testpmd io",
                num(&doc["testpmd_io_mpps"]),
                "Mpps",
                Target::None,
            );
            t.row(
                "testpmd 5tswap",
                num(&doc["testpmd_5tswap_mpps"]),
                "Mpps",
                Target::None,
            );
            t.row("relay / testpmd 5tswap", r, "", Target::AtLeast(0.7));
            format!("{} Mpps/core, {} of testpmd 5tswap", opt(m), opt(r))
        }
        "relay-path" => relay_path(&mut t, doc),
        "cps" => {
            let c = num(&doc["max_cps_zero_failures"]);
            t.row(
                "set-ups/s with 0 failures",
                c,
                "/s",
                Target::AtLeast(1000.0),
            );
            t.row("set-up p99", num(&doc["setup_p99_ms"]), "ms", Target::None);
            t.row(
                "RSS per call",
                num(&doc["rss_bytes_per_call"]),
                "B",
                Target::None,
            );
            format!(
                "{} set-ups/s, p99 {} ms",
                opt(c),
                opt(num(&doc["setup_p99_ms"]))
            )
        }
        "announce" => {
            let v = &doc["max_streams_p99_under_1ms"];
            match v {
                Value::Object(per) => {
                    for (backend, n) in per {
                        t.row(
                            &format!("streams with pacing p99 < 1 ms ({backend})"),
                            num(n),
                            "",
                            Target::None,
                        );
                    }
                }
                other => t.row(
                    "streams with pacing p99 < 1 ms",
                    num(other),
                    "",
                    Target::None,
                ),
            }
            format!("{v} streams with pacing p99 < 1 ms")
        }
        _ => String::new(),
    };
    (t.md, headline)
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), fmt_num)
}

fn relay_core(t: &mut Table, doc: &Value) -> String {
    let ns = &doc["ns_per_packet"];
    for order in ["table", "random"] {
        if let Some(m) = ns[order].as_object() {
            let mut legs: Vec<(u64, f64)> = m
                .iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_f64()?)))
                .collect();
            legs.sort_by_key(|l| l.0);
            for (n, v) in legs {
                t.row(
                    &format!("ns/packet, {n} legs, {order} order"),
                    Some(v),
                    "ns",
                    Target::None,
                );
            }
        }
    }
    let base = num(&ns["table"]["1000"]);
    let far = num(&ns["random"]["100000"]);
    let ratio = base.zip(far).map(|(b, f)| f / b);
    t.row("100k random ÷ 1k table", ratio, "×", Target::AtMost(1.5));
    t.row(
        "bytes per leg",
        num(&doc["bytes_per_leg"]),
        "B",
        Target::AtMost(256.0),
    );
    t.row(
        "allocations per packet",
        num(&doc["allocations_per_packet"]),
        "",
        Target::AtMost(0.0),
    );
    format!(
        "100k random = {}× 1k table, {} B/leg, {} allocations/packet",
        opt(ratio),
        opt(num(&doc["bytes_per_leg"])),
        opt(num(&doc["allocations_per_packet"]))
    )
}

fn relay_path(t: &mut Table, doc: &Value) -> String {
    let mut md = String::from(
        "| relay | max pps, p99 ≤ 1 ms | max pps, p99 ≤ 10 ms | p99 µs at 50k | CPU ns/packet at 50k |\n|---|---:|---:|---:|---:|\n",
    );
    for r in doc["relays"].as_array().into_iter().flatten() {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            r["name"].as_str().unwrap_or("?"),
            opt(num(&r["max_pps_p99_1ms"])),
            opt(num(&r["max_pps_p99_10ms"])),
            opt(num(&r["p99_us_at_50k"])),
            opt(num(&r["cpu_ns_per_packet_at_50k"])),
        );
    }
    md.push('\n');
    let ratios = &doc["ratios"];
    let d = num(&ratios["dpdk_vs_rtpengine"]);
    let s = num(&ratios["socket_vs_rtpengine"]);
    let p = num(&ratios["dpdk_vs_testpmd"]);
    t.row(
        "DPDK (AF_XDP) ÷ rtpengine, p99 ≤ 1 ms",
        d,
        "×",
        Target::AtLeast(2.0),
    );
    t.row(
        "socket backend ÷ rtpengine, p99 ≤ 1 ms",
        s,
        "×",
        Target::AtLeast(1.5),
    );
    t.row(
        "DPDK (AF_XDP) ÷ testpmd 5tswap",
        p,
        "×",
        Target::AtLeast(0.9),
    );
    let cpu = |name: &str| {
        doc["relays"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["name"].as_str().is_some_and(|n| n.contains(name)))
            .and_then(|r| num(&r["cpu_ns_per_packet_at_50k"]))
    };
    let cpu_ratio = cpu("socket").zip(cpu("rtpengine")).map(|(a, b)| a / b);
    t.row(
        "socket CPU/packet ÷ rtpengine's at 50k pps",
        cpu_ratio,
        "×",
        Target::AtMost(0.5),
    );
    md.push_str(&t.md);
    t.md = md;
    format!(
        "DPDK {}× rtpengine, socket {}× rtpengine, DPDK {}× testpmd",
        opt(d),
        opt(s),
        opt(p)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn verdicts() {
        assert_eq!(Target::AtMost(1.5).verdict(Some(1.4)), "met");
        assert_eq!(Target::AtMost(1.5).verdict(Some(1.6)), "missed");
        assert_eq!(Target::AtLeast(2.0).verdict(None), "not measured");
        assert_eq!(fmt_num(1234.56), "1235");
        assert_eq!(fmt_num(0.1234), "0.123");
    }

    #[test]
    fn relay_core_table_names_the_ratio() {
        let doc = json!({
            "ns_per_packet": {"table": {"1000": 20.0, "100000": 60.0}, "random": {"100000": 40.0}},
            "bytes_per_leg": 128, "allocations_per_packet": 0
        });
        let (md, head) = scenario("relay-core", &doc);
        assert!(
            md.contains("| 100k random ÷ 1k table | 2 × | ≤ 1.50 | missed |"),
            "{md}"
        );
        assert!(head.contains("= 2×"), "{head}");
    }
}
