//! `relay-core`: the sans-IO relay's own cost per packet, no I/O (issue 9's first scenario).
//!
//! For each leg count (1k, 10k, 100k, 1M; `--quick`: 1k and 10k) builds one [`relay::Relay`]
//! with N bridged legs (leg 2k with leg 2k+1) and one pre-built 172-byte RTP packet per leg
//! (12-byte header + 160 bytes of G.711), then feeds the packets to the relay in bursts,
//! reading the clock once per burst as the worker does, in two orders:
//!
//! - `table`: the legs in table order (the hardware prefetcher streams the table);
//! - `random`: the legs in a fixed-seed shuffled order (packets still read in memory order,
//!   only the legs they hit are random), as real traffic reaches a large table.
//!
//! Each (legs, order) pair runs `--runs` times, alternating the orders; `ns_per_packet` is
//! the median, in the thread's on-CPU time (`/proc/thread-self/schedstat`; wall time where
//! that is unreadable), since on a shared machine the wall clock also counts other
//! processes' turns on the core. That clock moves by scheduler ticks (4 ms at HZ=250), so a
//! pass of 3 M packets (~100–400 ms) reads within a few per cent. Every run also records its wall-clock figure. Allocations are counted by the counting global allocator
//! (`bindings/alloc-count`) around the measured passes only: any allocation on the packet
//! path is a defect, and the binary exits non-zero after writing its report. Bytes per leg:
//! the fast-path leg table's memory divided by its legs, beside the size of the hot per-leg
//! struct. A leg count that cannot be set up (more media addresses than a
//! [`dp_api::LegId`] indexes) is reported as null with the reason.
//!
//! Under callgrind (`--toggle-collect='*Relay*handle_packet*'`), divide the instructions by
//! the `handle_packet` calls the binary prints.
//!
//! ```text
//! scripts/perf relay-core [--quick] [--legs N ...] [--packets P] [--runs R] [--order table|random|both]
//! ```
#![forbid(unsafe_code)]

mod pass;
mod setup;

use std::collections::BTreeMap;

use anyhow::ensure;
use callbridge_perf::report::{median, Report};
use clap::{Parser, ValueEnum};
use serde_json::{json, Map, Value};

#[global_allocator]
static ALLOC: alloc_count::Counting = alloc_count::Counting;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Orders {
    /// Table order only.
    Table,
    /// Random order only.
    Random,
    /// Both, alternating.
    Both,
}

#[derive(Parser, Debug)]
#[command(about = "relay-core: the relay's cost per packet over 1k..1M legs (no I/O)")]
struct Args {
    /// Small and fast (1k and 10k legs, few packets): a smoke test, not for quoting.
    #[arg(long)]
    quick: bool,
    /// Bridged leg counts (even). Default 1000, 10000, 100000, 1000000 (--quick: 1000, 10000).
    #[arg(long = "legs")]
    legs: Vec<usize>,
    /// Packets per measured pass (default 3 000 000; --quick 1 000 000). The on-CPU clock
    /// advances by scheduler ticks (4 ms here): keep passes well above 100 ms.
    #[arg(long)]
    packets: Option<u64>,
    /// Measured passes per leg count and order (default 3; --quick 1).
    #[arg(long)]
    runs: Option<usize>,
    /// Packets per burst (the clock is read once per burst).
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// First RTP port; legs beyond one address's ports spread over further addresses.
    #[arg(long, default_value_t = 1024)]
    first_port: u16,
    /// Which leg orders to measure.
    #[arg(long, value_enum, default_value_t = Orders::Both)]
    order: Orders,
    /// Random order only (the same as `--order random`).
    #[arg(long)]
    shuffled: bool,
    /// Hand the relay one packet at a time (`handle_packet_at`) instead of whole bursts
    /// (`handle_packets`).
    #[arg(long, conflicts_with = "lane")]
    per_packet: bool,
    /// Hand the relay's fast lane one packet at a time (`Relay::lane`, the DPDK worker's
    /// way) instead of whole bursts (`handle_packets`).
    #[arg(long)]
    lane: bool,
}

const ORDERS: [&str; 2] = ["table", "random"];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        (1..=64).contains(&args.burst),
        "burst must be 1..=64 (a worker's burst)"
    );
    let quick = args.quick || std::env::var_os("PERF_QUICK").is_some_and(|v| v == "1");
    let legs = if args.legs.is_empty() {
        if quick {
            vec![1000, 10_000]
        } else {
            vec![1000, 10_000, 100_000, 1_000_000]
        }
    } else {
        args.legs.clone()
    };
    let packets = args
        .packets
        .unwrap_or(if quick { 1_000_000 } else { 3_000_000 });
    let runs = args.runs.unwrap_or(if quick { 1 } else { 3 }).max(1);
    let orders: Vec<&str> = match (args.order, args.shuffled) {
        (_, true) | (Orders::Random, _) => vec!["random"],
        (Orders::Table, _) => vec!["table"],
        (Orders::Both, _) => ORDERS.to_vec(),
    };
    let api = if args.per_packet {
        pass::Api::PerPacket
    } else if args.lane {
        pass::Api::Lane
    } else {
        pass::Api::Burst
    };
    let mut report = Report::new(
        "relay-core",
        json!({
            "legs": legs, "packets_per_pass": packets, "runs": runs, "burst": args.burst,
            "first_port": args.first_port, "orders": orders, "api": api.name(),
            "packet_bytes": 172, "bridges": "leg 2k with leg 2k+1",
        }),
    );
    report.quick(quick);
    println!(
        "relay_core: one core, no I/O, 172-byte RTP, burst {}, {packets} packets per pass, \
         {runs} runs, orders {orders:?}, api {}",
        args.burst,
        api.name()
    );

    // ns per packet by order, then by leg count.
    let mut ns: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut bytes_by_legs = Map::new();
    let mut bytes_per_leg = None;
    let (mut allocs, mut measured, mut calls) = (0u64, 0u64, 0u64);
    for &n in &legs {
        if let Some(why) = setup::unsupported(n, args.first_port) {
            println!("\n{n} legs: not measured: {why}");
            for o in &orders {
                ns.entry(o).or_default().insert(n.to_string(), Value::Null);
            }
            report.run(json!({"legs": n, "skipped": why}));
            continue;
        }
        let mut s = setup::setup(n, args.first_port)?;
        let table = pass::fast_path_bytes(&s.relay);
        let per_leg = table as f64 / n as f64;
        bytes_per_leg = Some(per_leg);
        bytes_by_legs.insert(n.to_string(), json!(per_leg));
        let mut shuffled = s.packets.clone();
        setup::shuffle(&mut shuffled);
        let mut by_order: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let huge = anon_huge_kb();
        println!(
            "\n{n} bridged legs: fast-path table {:.1} MB = {per_leg:.1} B/leg (hot struct {} B), \
             relay heap {:.1} B/leg, process memory in transparent huge pages {}",
            table as f64 / 1e6,
            pass::hot_struct_bytes(),
            s.relay_heap_bytes as f64 / n as f64,
            huge.map_or("unknown".to_owned(), |k| format!(
                "{:.1} MB",
                k as f64 / 1e3
            ))
        );
        report.run(json!({"legs": n, "anon_huge_pages_kb": huge}));
        for run in 0..runs {
            for &o in &orders {
                let pk = if o == "random" {
                    &mut shuffled
                } else {
                    &mut s.packets
                };
                // Warm caches and branch predictors: one sweep of every leg (uncounted).
                let warm = (n as u64).max(100_000);
                calls += pass::run(&mut s.relay, pk, warm, args.burst, api)?.packets;
                let r =
                    alloc_count::count_in(|| pass::run(&mut s.relay, pk, packets, args.burst, api));
                let m = r.value?;
                calls += m.packets;
                allocs += r.allocations;
                measured += m.packets;
                let wall_ns = m.elapsed.as_nanos() as f64 / m.packets as f64;
                let cpu_ns = m.on_cpu.map(|d| d.as_nanos() as f64 / m.packets as f64);
                // The thread's CPU time when the kernel reports it: other tenants' time on
                // the core does not count against the relay.
                let ns_pp = cpu_ns.unwrap_or(wall_ns);
                by_order.entry(o).or_default().push(ns_pp);
                println!(
                    "  run {run} {o:<6} {ns_pp:>7.1} ns/packet on CPU ({wall_ns:.1} wall), {:>6.2} Mpps, {} allocations",
                    1e3 / ns_pp,
                    r.allocations
                );
                report.run(json!({
                    "legs": n, "order": o, "run": run, "packets": m.packets,
                    "ns_per_packet": ns_pp, "wall_ns_per_packet": wall_ns,
                    "cpu_ns_per_packet": cpu_ns, "mpps": 1e3 / ns_pp,
                    "allocations": r.allocations,
                }));
            }
        }
        let st = s.relay.stats();
        ensure!(st.drops.total() == 0, "unexpected drops: {:?}", st.drops);
        for (o, v) in by_order {
            let m = median(&v);
            println!("  median {o:<6} {:>7.1} ns/packet", m.unwrap_or(f64::NAN));
            ns.entry(o).or_default().insert(n.to_string(), json!(m));
        }
    }
    println!("\nhandle_packet calls: {calls}");

    let get = |o: &str, n: usize| {
        ns.get(o)
            .and_then(|m| m.get(&n.to_string()))
            .and_then(Value::as_f64)
    };
    let allocs_pp = allocs as f64 / measured.max(1) as f64;
    // The issue's target: 100k legs in random order <= 1.5x 1k legs in table order. --quick
    // has no 100k; it reports the largest random leg count it ran instead.
    let big = if legs.contains(&100_000) {
        Some(100_000)
    } else {
        legs.iter().copied().filter(|&n| n > 1000).max()
    };
    let ratio = big.and_then(|b| {
        Some((
            b,
            get("random", b)?,
            get("random", b)? / get("table", 1000)?,
        ))
    });
    report.set(
        "ns_per_packet",
        Value::Object(
            ns.iter()
                .map(|(k, v)| ((*k).to_owned(), Value::Object(v.clone())))
                .collect(),
        ),
    );
    report.set("bytes_per_leg", json!(bytes_per_leg));
    report.set("bytes_per_leg_by_legs", Value::Object(bytes_by_legs));
    report.set("hot_struct_bytes", json!(pass::hot_struct_bytes()));
    report.set("allocations_per_packet", json!(allocs_pp));
    report.set("allocations", json!(allocs));
    report.set("handle_packet_calls", json!(calls));
    report.set(
        "targets",
        json!({
            "random_100k_vs_table_1k": {
                "target": "<= 1.5",
                "legs": big,
                "measured": ratio.map(|r| r.2),
                "met": ratio.map(|r| big == Some(100_000) && r.2 <= 1.5),
            },
            "allocations_per_packet": {"target": 0, "measured": allocs_pp, "met": allocs == 0},
        }),
    );
    let head_ratio = match ratio {
        Some((b, r_ns, r)) => format!(
            "{}k random {r_ns:.0} ns = {r:.2}x 1k table{}",
            b / 1000,
            if b == 100_000 {
                " (target <= 1.5x)".to_owned()
            } else {
                " (quick; the target is 100k random <= 1.5x)".to_owned()
            }
        ),
        None => "no random/table pair to compare".to_owned(),
    };
    report.finish(&format!(
        "{head_ratio}, {allocs_pp:.0} allocs/packet, {:.0} B/leg table, {} B/leg hot",
        bytes_per_leg.unwrap_or(f64::NAN),
        pass::hot_struct_bytes()
    ))?;
    ensure!(
        allocs == 0,
        "DEFECT: the relay allocated {allocs} times in {measured} handled packets (must be 0)"
    );
    Ok(())
}

/// The process's memory backed by transparent huge pages (`AnonHugePages` of
/// `/proc/self/smaps_rollup`, kB): whether the leg table got the 2 MiB pages it asks for.
fn anon_huge_kb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
