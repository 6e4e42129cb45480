//! `scripts/perf relay-path [--quick]`: relays compared on one real kernel path (issue 9,
//! scenario 4).
//!
//! ```text
//!  namespace cbpath-g<pid>                         namespace cbpath-r<pid>
//!  generator (core G, one UDP socket,   veth pair   relay (core R): callbridge DPDK on
//!  sendmmsg/recvmmsg, 172-byte RTP)  ◄──────────►   net_af_xdp / net_af_packet, callbridge's
//!  198.18.0.2:20000                  tx csum off    socket worker, rtpengine, or testpmd 5tswap
//!                                                   198.18.0.1
//! ```
//!
//! For each relay and each call count N, the generator sends each call's RTP to the relay's
//! A-leg address at a rising rate (steps of `--step-secs`, each tagged so leftovers of an
//! earlier step are discarded); the relay sends it from the B leg back to the generator,
//! which measures loss and latency (hdrhistogram) and reports its own core's load. Per relay:
//! `max_pps_p99_1ms` (highest rate with < 0.01 % loss and p99 ≤ 1 ms, the generator keeping
//! up), `max_pps_p99_10ms`, p50/p99/p99.9 at 50k pps and CPU per relayed packet at 50k pps
//! (socket relays: process CPU time; busy-polling callbridge: busy-pass accounting; testpmd:
//! its `--record-core-cycles`). rtpengine and testpmd are restarted, and rtpengine's calls
//! re-created through ng, for every trial.
//!
//! Known trap: on a veth the receive work of the far side runs on the *sender's* core, so the
//! generator's core saturates first (near 170-240k pps); every trial reports its load and a
//! step the generator could not send at its rate ends the climb (`limited_by`).
//!
//! `relay_path relay ...` is the callbridge relay process (see `worker_relay`).
#![forbid(unsafe_code)]

#[path = "relay_path/generator.rs"]
mod generator;
#[path = "relay_path/netns.rs"]
mod netns;
#[path = "relay_path/relays.rs"]
mod relays;
#[path = "relay_path/worker_relay.rs"]
mod worker_relay;

use std::net::SocketAddrV4;
use std::time::Duration;

use anyhow::{bail, Context as _};
use callbridge_perf::report::Report;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use generator::{Generator, Outcome, Trial};
use netns::{Path, GEN_IP};
use relays::{Running, GEN_PORT};

#[derive(Parser, Debug)]
#[command(
    about = "Relays on one veth path: callbridge (DPDK af_xdp/af_packet, socket), rtpengine, testpmd 5tswap"
)]
struct Args {
    #[command(subcommand)]
    cmd: Option<Sub>,
    /// Small and short (a smoke test: N=100, three short steps).
    #[arg(long)]
    quick: bool,
    /// Bridged call counts (the first is the headline).
    #[arg(long, value_delimiter = ',')]
    calls: Option<Vec<usize>>,
    /// Relays, in order (af_xdp, af_packet, socket, socket_raw_tx, socket_ring,
    /// socket_ring_coalesce, socket_coalesce, rtpengine, testpmd; default: all, with
    /// --quick without the socket backend's opt-in variants).
    #[arg(long, value_delimiter = ',')]
    relays: Option<Vec<String>>,
    /// Rate steps (packets per second, rising).
    #[arg(long, value_delimiter = ',')]
    rates: Option<Vec<u64>>,
    /// Seconds per step.
    #[arg(long)]
    step_secs: Option<f64>,
    /// The rate at which latency and CPU per packet are reported.
    #[arg(long, default_value_t = 50_000)]
    fixed_rate: u64,
    /// The generator's core.
    #[arg(long, default_value_t = 1)]
    gen_core: usize,
    /// The relay's core.
    #[arg(long, default_value_t = 0)]
    relay_core: usize,
    /// Run the generator thread and every relay at this SCHED_FIFO priority (the same for
    /// both) instead of the default SCHED_OTHER at nice -20: on a machine shared with other
    /// work it keeps tick-long preemptions by other processes out of the latency tail, but
    /// busy-polling relays (DPDK, testpmd) then meet the kernel's RT throttling
    /// (`kernel.sched_rt_runtime_us`: by default 50 ms of every second given back to other
    /// tasks), which puts ~50 ms stalls into their p99 (measured: p99 ≈ 42 ms at every rate).
    #[arg(long)]
    fifo: Option<u8>,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Run callbridge's worker as the relay (started by the scenario in the relay namespace).
    Relay(worker_relay::RelayArgs),
}

/// Loss bar (percent).
const MAX_LOSS_PCT: f64 = 0.01;

fn main() {
    let args = Args::parse();
    let res = match &args.cmd {
        Some(Sub::Relay(r)) => worker_relay::run(r),
        None => scenario(&args),
    };
    if let Err(e) = res {
        eprintln!("relay-path: error: {e:#}");
        std::process::exit(1);
    }
}

/// One step's verdicts.
fn passes(o: &Outcome, p99_limit_us: u64) -> bool {
    o.loss_pct() < MAX_LOSS_PCT && o.us(0.99).is_some_and(|p| p <= p99_limit_us)
}

/// The generator could not send at the asked rate: the step says nothing about the relay.
fn generator_bound(o: &Outcome) -> bool {
    o.sent_pps < 0.97 * o.rate as f64
}

struct Plan {
    rates: Vec<u64>,
    step: f64,
    fixed: u64,
    relay_core: usize,
    gen_core: usize,
}

fn check_tools(relays: &[String]) -> anyhow::Result<()> {
    let mut need = vec!["ip", "ethtool", "taskset", "kill", "chrt", "renice", "nice"];
    if relays.iter().any(|r| r == "rtpengine") {
        need.push("rtpengine");
    }
    if relays.iter().any(|r| r == "testpmd") {
        need.push("dpdk-testpmd");
    }
    for t in need {
        let ok = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            bail!("{t} is missing (scripts/install-test-deps installs it)");
        }
    }
    if !nix::unistd::Uid::effective().is_root() {
        bail!("needs root (network namespaces, veth, AF_XDP)");
    }
    Ok(())
}

fn scenario(a: &Args) -> anyhow::Result<()> {
    let calls = a.calls.clone().unwrap_or(if a.quick {
        vec![100]
    } else {
        vec![1000, 10000]
    });
    let relays: Vec<String> = a.relays.clone().unwrap_or_else(|| {
        relays::ALL
            .iter()
            .filter(|r| !(a.quick && r.starts_with("socket_")))
            .map(|s| (*s).to_owned())
            .collect()
    });
    let mut rates = a.rates.clone().unwrap_or_else(|| {
        if a.quick {
            vec![10_000, 50_000, 100_000]
        } else {
            // Up to 500k pps; a relay's climb ends at its first failed step, and the
            // whole trial at the step the generator's core cannot send.
            (1..=20).map(|k| k * 25_000).collect()
        }
    });
    if !rates.contains(&a.fixed_rate) {
        rates.push(a.fixed_rate);
    }
    rates.sort_unstable();
    let plan = Plan {
        rates,
        step: a.step_secs.unwrap_or(if a.quick { 1.0 } else { 3.0 }),
        fixed: a.fixed_rate,
        relay_core: a.relay_core,
        gen_core: a.gen_core,
    };
    for r in &relays {
        if !relays::ALL.contains(&r.as_str()) {
            bail!("unknown relay {r:?} (one of {:?})", relays::ALL);
        }
    }
    check_tools(&relays)?;
    // Interrupted (Ctrl-C, timeout): remove the namespaces and kill the relays first.
    let signals = {
        use nix::sys::signal::{SigSet, Signal};
        let mut s = SigSet::empty();
        for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            s.add(sig);
        }
        s
    };
    signals.thread_block()?;
    std::thread::spawn(move || {
        if let Ok(sig) = signals.wait() {
            eprintln!("relay-path: {sig}: cleaning up");
            netns::clean_up();
            std::process::exit(1);
        }
    });
    let _ = netns::FIFO.set(a.fifo);
    raise_fd_limit();
    let mut report = Report::new(
        "relay-path",
        json!({
            "calls": calls, "relays": relays, "rates_pps": plan.rates, "step_secs": plan.step,
            "fixed_rate_pps": plan.fixed, "rtp_bytes": generator::RTP_LEN,
            "generator_core": plan.gen_core, "relay_core": plan.relay_core,
            "priority": a.fifo.map_or_else(|| "SCHED_OTHER nice -20".to_owned(), |p| format!("SCHED_FIFO {p}")),
            "sched_rt_runtime_us": std::fs::read_to_string("/proc/sys/kernel/sched_rt_runtime_us").map(|s| s.trim().to_owned()).unwrap_or_default(),
            "loss_bar_pct": MAX_LOSS_PCT, "load_average": load_average(),
        }),
    );
    report.quick(a.quick);
    let path = Path::create().context("creating the namespaces and the veth pair")?;
    let gen = Generator::start(
        path.gen_ns_path(),
        plan.gen_core,
        SocketAddrV4::new(GEN_IP, GEN_PORT),
    )?;
    eprintln!(
        "relay-path: generator {} on {} <-> {} (namespaces {}, {}); relays {relays:?}, calls {calls:?}",
        gen.local,
        path.gen_dev, path.relay_dev, path.gen_ns, path.relay_ns
    );
    let mut tag = 0u32;
    let mut results: Vec<Value> = Vec::new();
    let mut failures = Vec::new();
    for &n in &calls {
        for r in &relays {
            eprintln!("relay-path: {r}, {n} calls");
            match measure(r, n, &plan, &path, &gen, &mut tag, &mut report) {
                Ok(v) => results.push(v),
                Err(e) => {
                    eprintln!("relay-path: {r} with {n} calls FAILED: {e:#}");
                    failures.push(format!("{r} ({n} calls): {e:#}"));
                    results.push(json!({"name": r, "calls": n, "error": format!("{e:#}"),
                        "max_pps_p99_1ms": null, "max_pps_p99_10ms": null,
                        "cpu_ns_per_packet_at_50k": null, "p99_us_at_50k": null}));
                }
            }
        }
    }
    drop(path);
    let headline_calls = calls[0];
    let at = |name: &str| {
        results
            .iter()
            .find(|v| v["name"] == name && v["calls"] == headline_calls)
            .cloned()
            .unwrap_or(Value::Null)
    };
    // `relays`: one entry per relay at the headline call count, the others under `by_calls`.
    let mut entries = Vec::new();
    for r in &relays {
        let mut e = at(r);
        let by: serde_json::Map<String, Value> = results
            .iter()
            .filter(|v| v["name"] == r.as_str())
            .map(|v| (v["calls"].to_string(), v.clone()))
            .collect();
        e["by_calls"] = Value::Object(by);
        entries.push(e);
    }
    let ratio = |num: &str, den: &str| -> Value {
        let (x, y) = (&at(num)["max_pps_p99_1ms"], &at(den)["max_pps_p99_1ms"]);
        match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) if y > 0.0 => json!((x / y * 100.0).round() / 100.0),
            _ => Value::Null,
        }
    };
    let why = |num: &str, den: &str| -> Value {
        let mut r = Vec::new();
        for n in [num, den] {
            let v = at(n);
            if v.is_null() {
                r.push(format!("{n} not run"));
            } else if let Some(e) = v["error"].as_str() {
                r.push(format!("{n} failed: {e}"));
            } else if v["max_pps_p99_1ms"].as_u64().unwrap_or(0) == 0 {
                r.push(format!("{n} met p99 <= 1 ms at no step"));
            }
        }
        if r.is_empty() {
            Value::Null
        } else {
            json!(r.join("; "))
        }
    };
    let ratios = json!({
        "dpdk_vs_rtpengine": ratio("af_xdp", "rtpengine"),
        "socket_vs_rtpengine": ratio("socket", "rtpengine"),
        "dpdk_vs_testpmd": ratio("af_xdp", "testpmd"),
        "af_packet_vs_rtpengine": ratio("af_packet", "rtpengine"),
        "calls": headline_calls,
        "null_reasons": {
            "dpdk_vs_rtpengine": why("af_xdp", "rtpengine"),
            "socket_vs_rtpengine": why("socket", "rtpengine"),
            "dpdk_vs_testpmd": why("af_xdp", "testpmd"),
        },
    });
    let cpu = |n: &str| at(n)["cpu_ns_per_packet_at_50k"].as_f64();
    let socket_cpu_ratio = match (cpu("socket"), cpu("rtpengine")) {
        (Some(s), Some(r)) if r > 0.0 => Some(s / r),
        _ => None,
    };
    let socket_variants: serde_json::Map<String, Value> = relays::ALL
        .iter()
        .filter(|n| n.starts_with("socket_"))
        .filter_map(|n| {
            let r = cpu("rtpengine").filter(|r| *r > 0.0)?;
            Some((
                n.to_string(),
                json!((cpu(n)? / r * 1000.0).round() / 1000.0),
            ))
        })
        .collect();
    let met = |v: &Value, min: f64| v.as_f64().map(|x| x >= min);
    report.set(
        "targets",
        json!({
            "dpdk_vs_rtpengine >= 2": met(&ratios["dpdk_vs_rtpengine"], 2.0),
            "dpdk_vs_testpmd >= 0.9": met(&ratios["dpdk_vs_testpmd"], 0.9),
            "socket_vs_rtpengine >= 1.5": met(&ratios["socket_vs_rtpengine"], 1.5),
            "socket_cpu_vs_rtpengine <= 0.5": socket_cpu_ratio.map(|x| x <= 0.5),
            "socket_cpu_vs_rtpengine": socket_cpu_ratio.map(|x| (x * 1000.0).round() / 1000.0),
            // The socket backend with its opt-in options (media.socket_*), same run.
            "socket_variants_cpu_vs_rtpengine": socket_variants,
        }),
    );
    report.set("relays", Value::Array(entries));
    report.set("ratios", ratios.clone());
    report.set("load_average_after", load_average());
    let k = |name: &str| -> String {
        let v = at(name);
        match v["max_pps_p99_1ms"].as_u64() {
            Some(x) => format!("{}k", (x as f64 / 1000.0).round()),
            None if v.is_null() => "not run".into(),
            None => "FAILED".into(),
        }
    };
    let x = |r: &Value| {
        r.as_f64()
            .map_or(String::new(), |r| format!(" ({r:.1}x rtpengine)"))
    };
    let headline = format!(
        "af_xdp {} pps{}, af_packet {}, socket {}{}, rtpengine {}, testpmd {} (p99 <= 1 ms, {} calls)",
        k("af_xdp"),
        x(&ratios["dpdk_vs_rtpengine"]),
        k("af_packet"),
        k("socket"),
        x(&ratios["socket_vs_rtpengine"]).replace(" rtpengine", ""),
        k("rtpengine"),
        k("testpmd"),
        headline_calls
    );
    report.finish(&headline)?;
    if !failures.is_empty() {
        bail!(
            "relays that could not be measured: {}",
            failures.join(" | ")
        );
    }
    Ok(())
}

/// Runs the rising-rate steps for one relay and call count; returns its entry.
fn measure(
    name: &str,
    calls: usize,
    plan: &Plan,
    path: &Path,
    gen: &Generator,
    tag: &mut u32,
    report: &mut Report,
) -> anyhow::Result<Value> {
    let restart = relays::restart_per_trial(name);
    let mut running: Option<Running> = None;
    let (mut max1, mut max10) = (0u64, 0u64);
    let mut fails10 = 0;
    let mut limited_by = "no step failed (the steps end here)".to_owned();
    let mut fixed: Value = Value::Null;
    let mut loads = Vec::new();
    let mut cpu_method = "";
    for &rate in &plan.rates {
        let mut r = match running.take() {
            Some(r) => r,
            None => start_warm(name, calls, plan, path, gen, tag)?,
        };
        cpu_method = r.cpu_method;
        *tag += 1;
        let before = r.cpu()?;
        let o = gen.trial(Trial {
            tag: *tag,
            rate,
            secs: plan.step,
            drain: Duration::from_millis(1500),
            targets: r.targets.clone(),
        })?;
        let after = r.cpu()?;
        let relayed = match (before.relayed, after.relayed) {
            (Some(b), Some(a)) => a.saturating_sub(b),
            _ => o.received,
        };
        let mut cpu_ns =
            (relayed > 0).then(|| after.ns.saturating_sub(before.ns) as f64 / relayed as f64);
        if restart {
            let out = r.stop(path);
            if name == "testpmd" {
                cpu_ns = relays::testpmd_cycles_per_packet(&out)
                    .zip(relays::cpu_ghz())
                    .map(|(c, ghz)| c / ghz);
            }
        } else {
            running = Some(r);
        }
        let (ok1, ok10, gb) = (passes(&o, 1000), passes(&o, 10_000), generator_bound(&o));
        let mut run = o.json();
        run["relay"] = json!(name);
        run["calls"] = json!(calls);
        run["relayed_by_relay"] = json!(relayed);
        run["cpu_ns_per_packet"] = json!(cpu_ns.map(|c| c.round()));
        // callbridge's loop counters over the trial: receive bursts (about one per wake-up
        // on the socket backend), idle waits, ring overflows.
        if let (Some(b), Some(a)) = (&before.counters, &after.counters) {
            let d = |k: &str| {
                a[k].as_u64()
                    .unwrap_or(0)
                    .saturating_sub(b[k].as_u64().unwrap_or(0))
            };
            let (bursts, pkts) = (d("rx_bursts"), d("rx_burst_packets"));
            run["relay_counters"] = json!({
                "rx_bursts": bursts,
                "rx_burst_packets": pkts,
                "packets_per_rx_burst": (bursts > 0).then(|| (pkts as f64 / bursts as f64 * 100.0).round() / 100.0),
                "idle_waits": d("idle_waits"),
                "ring_overflows": d("ring_overflows"),
            });
        }
        run["generator_bound"] = json!(gb);
        run["pass_p99_1ms"] = json!(ok1 && !gb);
        run["pass_p99_10ms"] = json!(ok10 && !gb);
        eprintln!(
            "  {name:9} {calls:6} calls {rate:7} pps: sent {:7.0}/s loss {:7.4}% p50 {:>6?} p99 {:>8?} p99.9 {:>8?} us, cpu {:>5?} ns/pkt, gen load {:.2}{}{}",
            o.sent_pps, o.loss_pct(), o.us(0.5), o.us(0.99), o.us(0.999),
            cpu_ns.map(|c| c.round() as u64), o.load, if gb { " GENERATOR-BOUND" } else { "" },
            run["relay_counters"]["packets_per_rx_burst"].as_f64().map_or(String::new(), |x| format!(", {x} pkts/rx burst"))
        );
        loads.push(json!({"rate_pps": rate, "generator_core_load": run["generator_core_load"], "sent_pps": run["sent_pps"]}));
        if rate == plan.fixed {
            fixed = json!({
                "p50_us": o.us(0.5), "p99_us": o.us(0.99), "p999_us": o.us(0.999),
                "loss_pct": o.loss_pct(), "cpu_ns": cpu_ns.map(|c| c.round()),
            });
        }
        report.run(run);
        if gb {
            limited_by = format!(
                "generator core: sent {:.0} of {rate} pps (load {:.2})",
                o.sent_pps, o.load
            );
            break;
        }
        if ok1 {
            max1 = max1.max(rate);
        }
        if ok10 {
            max10 = max10.max(rate);
            fails10 = 0;
        } else {
            fails10 += 1;
            limited_by = format!(
                "relay at {rate} pps: loss {:.3} %, p99 {:?} us",
                o.loss_pct(),
                o.us(0.99)
            );
            if fails10 >= 2 && rate >= plan.fixed {
                break;
            }
        }
    }
    if let Some(r) = running.take() {
        r.stop(path);
    }
    Ok(json!({
        "name": name,
        "calls": calls,
        "max_pps_p99_1ms": max1,
        "max_pps_p99_10ms": max10,
        "cpu_ns_per_packet_at_50k": fixed["cpu_ns"],
        "p99_us_at_50k": fixed["p99_us"],
        "p50_us_at_50k": fixed["p50_us"],
        "p999_us_at_50k": fixed["p999_us"],
        "loss_pct_at_50k": fixed["loss_pct"],
        "cpu_method": cpu_method,
        "limited_by": limited_by,
        "generator_load_per_trial": loads,
        "restarted_per_trial": restart,
    }))
}

/// Starts the relay and sends a short warm-up (ARP, caches, rtpengine's latching), whose
/// packets carry their own tag and never count.
fn start_warm(
    name: &str,
    calls: usize,
    plan: &Plan,
    path: &Path,
    gen: &Generator,
    tag: &mut u32,
) -> anyhow::Result<Running> {
    let mut r = relays::start(name, path, calls, plan.relay_core, plan.gen_core)?;
    *tag += 1;
    let w = gen.trial(Trial {
        tag: *tag,
        rate: 10_000.max(calls as u64),
        secs: 0.3_f64.max(calls as f64 / 10_000.0),
        drain: Duration::from_millis(300),
        targets: r.targets.clone(),
    })?;
    if w.received == 0 {
        let _ = r.cpu().context("after the warm-up")?;
        bail!(
            "{name}: nothing came back during the warm-up ({} sent)",
            w.sent
        );
    }
    Ok(r)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// 10k calls are 40k sockets for rtpengine and for the socket relay.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let want = 1 << 20;
        if setrlimit(Resource::RLIMIT_NOFILE, want, want).is_err() {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.max(soft), hard.max(soft));
        }
    }
}
