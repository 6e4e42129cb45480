//! `GET /metrics` after a whole bridged call (SIPp customer behind the trunk, SIPp agent):
//! the exposition parses as OpenMetrics text (every sample's family declared, label values
//! well quoted, `# EOF` last) and carries real figures: the completed request, the INVITEs
//! sent, the relay's packets, the set-up histogram, the configured agent's presence.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use callbridge_tests::dpdk::DpdkLab;
use callbridge_tests::scenario::{rings_then_hangs_up, CUSTOMER};
use callbridge_tests::{Scenario, TwoPartyCall};

/// Label (name, value) pairs, values unescaped.
type Labels = Vec<(String, String)>;

/// One sample line: `name{label="value",…} value`.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

/// A parsed exposition: the declared families' types and the samples.
#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `{a="x",b="y\"z"}` → pairs, unescaping `\\`, `\"`, `\n`; returns the rest of the line.
fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let mut rest = s.strip_prefix('{').ok_or("no {")?;
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut chars = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("unquoted label value")?
            .char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, '\n') => return Err("raw line feed in a label value".into()),
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        let after = &rest[eq + 1..][1 + end + 1..];
        labels.push((name.to_owned(), value));
        rest = after.strip_prefix(',').unwrap_or(after);
    }
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        v => v.parse().map_err(|e| format!("bad value {v:?}: {e}")),
    }
}

/// The family a sample belongs to: its name, or without a suffix its type allows.
fn family_of<'a>(types: &HashMap<String, String>, name: &'a str) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for (suffix, allowed) in [
        ("_total", &["counter"][..]),
        ("_created", &["counter", "histogram"][..]),
        ("_count", &["histogram", "summary"][..]),
        ("_sum", &["histogram", "summary"][..]),
        ("_bucket", &["histogram"][..]),
    ] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types
                .get(base)
                .is_some_and(|t| allowed.contains(&t.as_str()))
            {
                return Some(base);
            }
        }
    }
    None
}

fn parse(text: &str) -> Result<Exposition, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("does not end with # EOF")?;
    let mut e = Exposition::default();
    for (n, line) in body.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !is_name(name) {
                return Err(err("bad family name".into()));
            }
            match kind {
                "TYPE" => {
                    let t = parts.next().unwrap_or("");
                    if ![
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "info",
                        "stateset",
                        "unknown",
                    ]
                    .contains(&t)
                    {
                        return Err(err(format!("bad type {t:?}")));
                    }
                    if e.types.insert(name.to_owned(), t.to_owned()).is_some() {
                        return Err(err("family declared twice".into()));
                    }
                }
                "HELP" | "UNIT" => {}
                _ => return Err(err("unknown metadata".into())),
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name) {
            return Err(err("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(err)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let value = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space before the value".into()))?;
        let value = parse_value(value).map_err(err)?;
        if family_of(&e.types, name).is_none() {
            return Err(err("sample of an undeclared family".into()));
        }
        e.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(e)
}

impl Exposition {
    /// Samples called `name` whose labels include every `(label, value)` of `with`.
    fn matching<'a>(
        &'a self,
        name: &'a str,
        with: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name
                && with
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    /// The sum of [`Self::matching`] (0 when none).
    fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.matching(name, with).map(|s| s.value).sum()
    }

    fn has(&self, name: &str, with: &[(&str, &str)]) -> bool {
        self.matching(name, with).next().is_some()
    }
}

#[test]
fn parser_accepts_openmetrics_and_refuses_broken_text() {
    let ok = "# HELP a_total x\n# TYPE a counter\na_total{b=\"q\\\"\\\\\\n\",c=\"\"} 3\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0.5\n# EOF\n";
    let e = parse(ok).unwrap();
    assert_eq!(e.sum("a_total", &[("b", "q\"\\\n")]), 3.0);
    assert_eq!(e.sum("h_count", &[]), 1.0);
    for bad in [
        "a_total 1\n# EOF\n",                              // undeclared
        "# TYPE a counter\na_total{b=\"x} 1\n# EOF\n",     // unterminated
        "# TYPE a counter\na_total{b=\"x\"}1\n# EOF\n",    // no space
        "# TYPE a counter\na_total 1\n",                   // no EOF
        "# TYPE a gauge\na_total 1\n# EOF\n",              // _total on a gauge
        "# TYPE a counter\na_total{b=\"\\x\"} 1\n# EOF\n", // bad escape
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}

/// Scrapes `/metrics` until the completed call shows and no call is live: the counters are
/// bumped as the call task publishes its final status, just after the API shows it.
fn scrape_after_call(t: &TwoPartyCall) -> (Exposition, String) {
    let start = Instant::now();
    loop {
        let res = t.cb.get("/metrics");
        assert_eq!(res.status, 200, "{}", res.body);
        let e = parse(&res.body)
            .unwrap_or_else(|m| t.cb.fail(&format!("bad exposition: {m}\n{}", res.body)));
        let completed = e.sum(
            "callbridge_call_requests_total",
            &[("business", "acme"), ("status", "completed")],
        );
        if completed >= 1.0 && e.sum("callbridge_active_calls", &[]) == 0.0 {
            return (e, res.body);
        }
        if start.elapsed() > Duration::from_secs(20) {
            t.cb.fail(&format!(
                "no completed call in /metrics after 20 s:\n{}",
                res.body
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_after_a_bridged_call() {
    let mut t = TwoPartyCall::builder("metrics")
        .agent(Scenario::AnswerBye, rings_then_hangs_up(2000, 3000))
        .start();

    // Before any call: the contract families are there, the agent's presence too.
    let res = t.cb.get("/metrics");
    assert_eq!(res.status, 200, "{}", res.body);
    let ct = res.header("content-type").unwrap_or_default().to_owned();
    assert!(
        ct.starts_with("application/openmetrics-text"),
        "content type {ct:?}"
    );
    let e = parse(&res.body)
        .unwrap_or_else(|m| t.cb.fail(&format!("bad exposition: {m}\n{}", res.body)));
    for family in [
        "callbridge_call_requests",
        "callbridge_active_calls",
        "callbridge_call_setup_seconds",
        "callbridge_sip_messages",
        "callbridge_sip_responses",
        "callbridge_relay_packets",
        "callbridge_relay_drops",
        "callbridge_agents",
    ] {
        assert!(
            e.types.contains_key(family),
            "no family {family}:\n{}",
            res.body
        );
    }

    let done = t.expect_full_call_with_two_second_ring();
    t.expect_sipps_passed();
    let id = done["id"].as_str().unwrap_or("c_").to_owned();

    let (e, text) = scrape_after_call(&t);
    // Kept beside the log for whoever reads a failure.
    t.dir.write("metrics.txt", &text);
    let check = |ok: bool, what: &str| {
        if !ok {
            t.cb.fail(&format!("{what}:\n{text}"));
        }
    };
    for status in ["queued", "calling_customer", "bridged", "completed"] {
        check(
            e.sum(
                "callbridge_call_requests_total",
                &[("business", "acme"), ("status", status)],
            ) >= 1.0,
            &format!("status {status} counted"),
        );
    }
    check(
        e.sum(
            "callbridge_sip_messages_total",
            &[("direction", "tx"), ("method", "INVITE")],
        ) >= 2.0,
        "two INVITEs sent (customer, agent)",
    );
    check(
        e.sum(
            "callbridge_sip_messages_total",
            &[("direction", "rx"), ("method", "INVITE")],
        ) >= 2.0,
        "responses to both INVITEs received",
    );
    check(
        e.sum(
            "callbridge_sip_responses_total",
            &[("direction", "rx"), ("class", "2xx")],
        ) >= 2.0,
        "2xx received",
    );
    check(
        e.sum("callbridge_sip_messages_total", &[("method", "BYE")]) >= 2.0,
        "BYEs counted",
    );
    check(
        e.sum("callbridge_sip_transactions_total", &[("kind", "client")]) >= 2.0,
        "client transactions",
    );
    check(
        e.sum("callbridge_relay_packets_total", &[("direction", "rx")]) > 0.0
            && e.sum("callbridge_relay_packets_total", &[("direction", "tx")]) > 0.0,
        "relay packets both ways",
    );
    check(
        e.sum("callbridge_relay_bytes_total", &[("direction", "tx")]) > 0.0,
        "relay bytes",
    );
    check(
        e.has(
            "callbridge_relay_drops_total",
            &[("reason", "src_mismatch")],
        ),
        "drops by reason",
    );
    check(
        e.sum("callbridge_announcement_total", &[("kind", "packets")]) >= 50.0,
        "announcement packets",
    );
    check(
        e.sum("callbridge_announcement_lateness_seconds_count", &[]) >= 50.0,
        "announcement frames' pacing error",
    );
    for stage in ["customer_answered", "bridged"] {
        check(
            e.sum("callbridge_call_setup_seconds_count", &[("stage", stage)]) >= 1.0,
            &format!("set-up histogram {stage}"),
        );
    }
    let bridged_sum = e.sum("callbridge_call_setup_seconds_sum", &[("stage", "bridged")]);
    // The agent rang for 2 s before answering: the bridge came at least that late.
    check(
        (2.0..120.0).contains(&bridged_sum),
        "bridged set-up time is 2 s .. 120 s",
    );
    check(
        e.sum(
            "callbridge_queue_wait_seconds_count",
            &[("business", "acme")],
        ) >= 1.0,
        "observed wait",
    );
    check(
        e.sum("callbridge_leg_mos_count", &[]) >= 1.0,
        "a leg's MOS at call end",
    );
    check(
        e.sum("callbridge_agents", &[("business", "acme")]) == 1.0,
        "the one configured agent counted once",
    );
    for presence in ["available", "on_call", "wrap_up", "away", "offline"] {
        check(
            e.has(
                "callbridge_agents",
                &[("business", "acme"), ("presence", presence)],
            ),
            &format!("presence {presence}"),
        );
    }
    check(
        e.has("callbridge_queue_length", &[("business", "acme")]),
        "queue length",
    );
    check(e.sum("callbridge_active_legs", &[]) == 0.0, "no leg left");
    // Bounded labels: no call id, number or address anywhere.
    check(
        !text.contains(&id) && !text.contains("127.0.0.1") && !text.contains(CUSTOMER),
        "no call id, address or number in a label",
    );
}

/// The same call through the DPDK backend (see `dpdk_call.rs`): the port's and the netstack's
/// counters are in the exposition too. Needs root and a callbridge built with `--features
/// dpdk`; never skips.
#[test]
fn metrics_with_the_dpdk_backend_carry_port_counters() {
    // Declared first, dropped last: callbridge and SIPp are gone before their links are.
    let lab = DpdkLab::create();
    let mut t = TwoPartyCall::builder("metrics_dpdk")
        .agent(Scenario::AnswerBye, rings_then_hangs_up(2000, 3000))
        .dpdk(&lab)
        .start();
    t.expect_full_call_with_ring(10, "during a 2 s agent ring");
    t.expect_sipps_passed();
    let (e, text) = scrape_after_call(&t);
    t.dir.write("metrics.txt", &text);
    let check = |ok: bool, what: &str| {
        if !ok {
            t.cb.fail(&format!("{what}:\n{text}"));
        }
    };
    for dir in ["rx", "tx"] {
        check(
            e.sum("callbridge_dpdk_port_packets_total", &[("direction", dir)]) > 0.0,
            &format!("DPDK port packets {dir}"),
        );
        check(
            e.sum("callbridge_dpdk_port_bytes_total", &[("direction", dir)]) > 0.0,
            &format!("DPDK port bytes {dir}"),
        );
        check(
            e.sum("callbridge_relay_packets_total", &[("direction", dir)]) > 0.0,
            &format!("relay packets {dir}"),
        );
    }
    check(
        e.sum("callbridge_dpdk_net_total", &[("kind", "rx_udp")]) > 0.0,
        "UDP datagrams through the DPDK netstack",
    );
    check(
        e.has("callbridge_dpdk_port_errors_total", &[("kind", "imissed")]),
        "port errors by kind",
    );
    check(
        e.has(
            "callbridge_relay_drops_total",
            &[("reason", "l2_not_for_us")],
        ),
        "L2 drops by reason",
    );
}
