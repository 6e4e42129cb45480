//! `relay-instr`: deterministic instructions per relayed packet, counted by callgrind
//! (Debian's `valgrind`), the headline for the DPDK worker on a shared, noisy machine.
//!
//! Three figures per leg count, each from its own `valgrind --tool=callgrind` run with
//! `--toggle-collect` (only the instructions inside the toggled function and what it calls
//! are counted), the output file's `totals:` line divided by the packets relayed:
//!
//! - **worker** (`instructions_per_packet_worker`): the whole worker pass,
//!   `callbridge_worker::lcore::Worker::pass_with` (PMD rx/tx on `net_ring`, L2/L3 checks,
//!   checksums in software, relay, encapsulation, counters), from `worker_ring --interleaved`
//!   (generator and worker alternate on one thread, so nothing depends on timing) ÷ the
//!   relay's received packets;
//! - **worker_offload** (`instructions_per_packet_worker_offload`): the same with NIC checksum
//!   offload modelled (`worker_ring --assume-offload`: frames arrive with the mbuf flags a NIC
//!   sets when it verified both checksums, and leave with the checksum fields left to the NIC
//!   and the DPDK TX offload flags set);
//! - **relay** (`instructions_per_packet_relay`): the relay core alone as the DPDK worker
//!   uses it, the fast lane (`relay_core --lane`: `Relay::lane`, one `Lane::forward_v4` per
//!   packet, the full path for what it declines), with
//!   `--toggle-collect='*Relay*handle_packet*'` ÷ the packets `relay_core` handed over;
//! - **relay_burst** (`instructions_per_packet_relay_burst`): the same through the burst API
//!   `Relay::handle_packets` (its first stage prefetches the burst's legs for large tables).
//!
//! The binaries are looked up in `$PERF_BIN_DIR` (set by `scripts/perf`), else next to this
//! one. The callgrind output goes to a temporary directory removed at the end (also on error).
//! Targets (issue 9) are reported, never asserted: worker ≤ 550, worker with offload ≤ 400,
//! relay ≤ 100.
//!
//! ```text
//! scripts/perf relay-instr [--quick]
//! ```
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use callbridge_perf::report::Report;
use clap::Parser;
use serde_json::json;

/// Issue 9's targets (instructions per relayed packet).
const TARGET_WORKER: f64 = 550.0;
const TARGET_WORKER_OFFLOAD: f64 = 400.0;
const TARGET_RELAY: f64 = 100.0;

/// The function whose inclusive cost is the worker pass.
const WORKER_TOGGLE: &str = "callbridge_worker::lcore::Worker*pass_with*";
/// The relay core's per-packet entry point.
const RELAY_TOGGLE: &str = "*Relay*handle_packet*";

#[derive(Parser, Debug)]
#[command(about = "Instructions per relayed packet under callgrind (worker pass, relay core)")]
struct Args {
    /// Small and fast (1k legs, few packets; a smoke test, figures not for quoting).
    #[arg(long)]
    quick: bool,
    /// Leg counts (default 1000 and 32000; --quick: 1000).
    #[arg(long = "legs")]
    legs: Vec<usize>,
    /// Packets the worker relays per run after its warm-up (default 200000; --quick: 10000).
    #[arg(long)]
    worker_packets: Option<u64>,
    /// Packets `relay_core` measures per run (default 400000; --quick: 20000).
    #[arg(long)]
    relay_packets: Option<u64>,
    /// The valgrind to run.
    #[arg(long, default_value = "valgrind")]
    valgrind: String,
    /// Where `worker_ring` and `relay_core` are (default: $PERF_BIN_DIR, else this binary's
    /// directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let p = std::env::temp_dir().join(format!("cb-relay-instr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One callgrind-counted run.
struct Counted {
    /// Instructions inside the toggled function (the output file's totals).
    instructions: u64,
    /// Packets (the relay's received count, or the calls of the toggled function).
    packets: u64,
    seconds: f64,
}

impl Counted {
    fn per_packet(&self) -> f64 {
        self.instructions as f64 / self.packets.max(1) as f64
    }
}

/// The valgrind version (`valgrind-3.19.0`); fails loudly when valgrind is missing.
fn valgrind_version(valgrind: &str) -> anyhow::Result<String> {
    let out = Command::new(valgrind)
        .arg("--version")
        .output()
        .with_context(|| {
            format!(
                "relay-instr needs valgrind (callgrind): '{valgrind}' could not be run; \
             install it with scripts/install-test-deps (Debian package valgrind)"
            )
        })?;
    ensure!(out.status.success(), "'{valgrind} --version' failed");
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The `totals:` (else `summary:`) line of a callgrind output file: the first event (Ir).
fn callgrind_totals(text: &str) -> anyhow::Result<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with("totals:"))
        .or_else(|| text.lines().find(|l| l.starts_with("summary:")))
        .context("no totals: or summary: line in the callgrind output")?;
    let n = line
        .split_whitespace()
        .nth(1)
        .context("empty totals line")?;
    n.parse().with_context(|| format!("totals '{n}'"))
}

/// The calls recorded to functions whose name contains every one of `parts` (callgrind's
/// `cfn=` / `calls=` pairs; names may be compressed as `(id) name`, defined once).
fn callgrind_calls(text: &str, parts: &[&str]) -> u64 {
    let mut names = std::collections::HashMap::<String, String>::new();
    let mut resolve = |spec: &str| -> String {
        let spec = spec.trim();
        if let Some(rest) = spec.strip_prefix('(') {
            if let Some((id, name)) = rest.split_once(')') {
                let name = name.trim();
                if name.is_empty() {
                    return names.get(id).cloned().unwrap_or_default();
                }
                names.insert(id.to_owned(), name.to_owned());
                return name.to_owned();
            }
        }
        spec.to_owned()
    };
    let mut total = 0;
    let mut target_matches = false;
    for l in text.lines() {
        if let Some(spec) = l.strip_prefix("fn=") {
            resolve(spec);
        } else if let Some(spec) = l.strip_prefix("cfn=") {
            let name = resolve(spec);
            target_matches = parts.iter().all(|p| name.contains(p));
        } else if let Some(rest) = l.strip_prefix("calls=") {
            if target_matches {
                total += rest
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            target_matches = false;
        }
    }
    total
}

/// Runs `bin args` under callgrind with `toggle`; returns the output file's text and the
/// program's stdout.
fn callgrind(
    valgrind: &str,
    toggle: &str,
    out: &Path,
    bin: &Path,
    args: &[String],
    env_out: &Path,
) -> anyhow::Result<(String, String, f64)> {
    let t = Instant::now();
    let o = Command::new(valgrind)
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(format!("--toggle-collect={toggle}"))
        .arg("--dump-instr=no")
        .arg(bin)
        .args(args)
        // The benchmarks' own reports go to the temporary directory, not perf/reports/latest.
        .env(callbridge_perf::report::OUT_DIR_ENV, env_out)
        .output()
        .with_context(|| format!("running {valgrind} on {}", bin.display()))?;
    let secs = t.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    if !o.status.success() {
        bail!(
            "{} under callgrind failed ({}):\n{}\n{}",
            bin.display(),
            o.status,
            stdout,
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let text = std::fs::read_to_string(out)
        .with_context(|| format!("reading callgrind output {}", out.display()))?;
    Ok((text, stdout, secs))
}

/// The worker pass of `worker_ring --interleaved` (with `--assume-offload` when `offload`).
fn worker(
    a: &Args,
    bin_dir: &Path,
    tmp: &Path,
    legs: usize,
    packets: u64,
    offload: bool,
) -> anyhow::Result<Counted> {
    let bin = bin_dir.join("worker_ring");
    ensure!(
        bin.exists(),
        "{} not built (scripts/perf builds it with --features dpdk; DPDK installed?)",
        bin.display()
    );
    let tag = if offload { "offload" } else { "software" };
    let out = tmp.join(format!("worker-{legs}-{tag}.out"));
    let report_dir = tmp.join(format!("worker-{legs}-{tag}"));
    let mut args: Vec<String> = [
        "--interleaved",
        "--legs",
        &legs.to_string(),
        "--runs",
        "1",
        "--packets",
        &packets.to_string(),
        "--no-testpmd",
        "--no-floor-reference",
        "--out",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.push(report_dir.join("worker-ring.json").display().to_string());
    if offload {
        args.push("--assume-offload".into());
    }
    let (text, stdout, seconds) =
        callgrind(&a.valgrind, WORKER_TOGGLE, &out, &bin, &args, &report_dir)?;
    let instructions = callgrind_totals(&text)?;
    // "worker: relay rx N tx M drops D | ..."
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("worker: relay rx"))
        .context("worker_ring printed no 'worker: relay rx' line")?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let rx: u64 = f.get(3).context("rx count")?.parse().context("rx count")?;
    let drops: u64 = f.get(7).and_then(|s| s.parse().ok()).unwrap_or(0);
    ensure!(rx > 0, "the worker relayed nothing: {line}");
    ensure!(drops == 0, "the worker dropped packets: {line}");
    Ok(Counted {
        instructions,
        packets: rx,
        seconds,
    })
}

/// The relay core alone: `relay_core`'s `handle_packet` calls, through the fast lane
/// (`lane`, the DPDK worker's way) or the burst API.
fn relay(
    a: &Args,
    bin_dir: &Path,
    tmp: &Path,
    legs: usize,
    packets: u64,
    lane: bool,
) -> anyhow::Result<Counted> {
    let bin = bin_dir.join("relay_core");
    ensure!(bin.exists(), "{} not built", bin.display());
    let tag = if lane { "lane" } else { "burst" };
    let out = tmp.join(format!("relay-{legs}-{tag}.out"));
    let mut args: Vec<String> = [
        "--legs",
        &legs.to_string(),
        "--packets",
        &packets.to_string(),
        "--first-port",
        "1024",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    if lane {
        args.push("--lane".into());
    }
    let (text, stdout, seconds) = callgrind(&a.valgrind, RELAY_TOGGLE, &out, &bin, &args, tmp)?;
    let instructions = callgrind_totals(&text)?;
    // relay_core hands packets over in bursts (`handle_packets`) and prints how many packets
    // the relay handled in all: divide by that. Without the line (an older relay_core), the
    // calls of the toggled function are the packets.
    let calls = packets_handled(&stdout)
        .unwrap_or_else(|| callgrind_calls(&text, &["Relay", "handle_packet"]));
    ensure!(
        calls > 0,
        "no calls to {RELAY_TOGGLE} recorded in {}",
        out.display()
    );
    Ok(Counted {
        instructions,
        packets: calls,
        seconds,
    })
}

/// The `handle_packet calls: N` line `relay_core` prints (packets handed to the relay).
fn packets_handled(stdout: &str) -> Option<u64> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("handle_packet calls:"))
        .and_then(|n| n.trim().parse().ok())
}

fn bin_dir(a: &Args) -> anyhow::Result<PathBuf> {
    if let Some(d) = &a.bin_dir {
        return Ok(d.clone());
    }
    if let Some(d) = std::env::var_os("PERF_BIN_DIR") {
        return Ok(PathBuf::from(d));
    }
    let exe = std::env::current_exe().context("current_exe")?;
    Ok(exe.parent().context("binary directory")?.to_path_buf())
}

fn verdict(v: f64, target: f64) -> &'static str {
    if v <= target {
        "met"
    } else {
        "missed"
    }
}

fn main() -> anyhow::Result<()> {
    let mut a = Args::parse();
    let quick = a.quick || std::env::var_os("PERF_QUICK").is_some_and(|v| v == "1");
    a.quick = quick;
    if a.legs.is_empty() {
        a.legs = if quick { vec![1000] } else { vec![1000, 32000] };
    }
    let worker_packets = a
        .worker_packets
        .unwrap_or(if quick { 10_000 } else { 200_000 });
    let relay_packets = a
        .relay_packets
        .unwrap_or(if quick { 20_000 } else { 400_000 });
    let version = valgrind_version(&a.valgrind)?;
    let bins = bin_dir(&a)?;
    let tmp = TempDir::new()?;
    println!(
        "relay-instr: {version}, legs {:?}, {worker_packets} worker packets, {relay_packets} relay packets, binaries in {}",
        a.legs,
        bins.display()
    );
    let mut report = Report::new(
        "relay-instr",
        json!({
            "legs": a.legs,
            "worker_packets": worker_packets,
            "relay_packets": relay_packets,
            "worker_command": format!(
                "valgrind --tool=callgrind --toggle-collect='{WORKER_TOGGLE}' worker_ring \
                 --interleaved --legs N --runs 1 --packets {worker_packets} --no-testpmd \
                 --no-floor-reference [--assume-offload]; instructions / relay rx"
            ),
            "relay_command": format!(
                "valgrind --tool=callgrind --toggle-collect='{RELAY_TOGGLE}' relay_core \
                 --legs N --packets {relay_packets} --first-port 1024 [--lane]; instructions / handle_packet calls"
            ),
        }),
    );
    report.quick(quick);
    let mut head: Option<(f64, f64, f64, f64)> = None;
    for &legs in &a.legs {
        // The three runs at once (each is one thread; the counts do not depend on timing).
        let (w, wo, r, rb) = std::thread::scope(|s| {
            let (a, bins, tmp) = (&a, &bins, &tmp.0);
            let w = s.spawn(move || worker(a, bins, tmp, legs, worker_packets, false));
            let wo = s.spawn(move || worker(a, bins, tmp, legs, worker_packets, true));
            let r = s.spawn(move || relay(a, bins, tmp, legs, relay_packets, true));
            let rb = s.spawn(move || relay(a, bins, tmp, legs, relay_packets, false));
            let join = |h: std::thread::ScopedJoinHandle<'_, anyhow::Result<Counted>>| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a callgrind run panicked"))?
            };
            anyhow::Ok((join(w)?, join(wo)?, join(r)?, join(rb)?))
        })?;
        println!(
            "{legs} legs: worker {:.1} instr/pkt ({} / {} pkts, {:.0} s), with offload {:.1} \
             ({} / {}, {:.0} s), relay core {:.1} ({} / {} calls, {:.0} s; burst API {:.1})",
            w.per_packet(),
            w.instructions,
            w.packets,
            w.seconds,
            wo.per_packet(),
            wo.instructions,
            wo.packets,
            wo.seconds,
            r.per_packet(),
            r.instructions,
            r.packets,
            r.seconds,
            rb.per_packet()
        );
        report.run(json!({
            "legs": legs,
            "instructions_per_packet_worker": w.per_packet(),
            "instructions_per_packet_worker_offload": wo.per_packet(),
            "instructions_per_packet_relay": r.per_packet(),
            "instructions_per_packet_relay_burst": rb.per_packet(),
            "worker": {"instructions": w.instructions, "packets": w.packets},
            "worker_offload": {"instructions": wo.instructions, "packets": wo.packets},
            "relay": {"instructions": r.instructions, "calls": r.packets},
            "relay_burst": {"instructions": rb.instructions, "calls": rb.packets},
        }));
        // The headline is the smallest leg count (1k: the figure perf/RESULTS.md tracks).
        if head.is_none() {
            head = Some((
                w.per_packet(),
                wo.per_packet(),
                r.per_packet(),
                rb.per_packet(),
            ));
        }
    }
    let (w, wo, r, rb) = head.context("no leg counts")?;
    report
        .set("instructions_per_packet_worker", w)
        .set("instructions_per_packet_worker_offload", wo)
        .set("instructions_per_packet_relay", r)
        .set("instructions_per_packet_relay_burst", rb)
        .set("headline_legs", a.legs[0])
        .set(
            "targets",
            json!({
                "instructions_per_packet_worker": TARGET_WORKER,
                "instructions_per_packet_worker_offload": TARGET_WORKER_OFFLOAD,
                "instructions_per_packet_relay": TARGET_RELAY,
            }),
        )
        .set(
            "target_verdicts",
            json!({
                "instructions_per_packet_worker": verdict(w, TARGET_WORKER),
                "instructions_per_packet_worker_offload": verdict(wo, TARGET_WORKER_OFFLOAD),
                "instructions_per_packet_relay": verdict(r, TARGET_RELAY),
            }),
        )
        .set("valgrind_version", version);
    report.finish(&format!(
        "worker {w:.0} instr/pkt (target <= {TARGET_WORKER:.0}), {wo:.0} with offload \
         (<= {TARGET_WORKER_OFFLOAD:.0}), relay {r:.0} (<= {TARGET_RELAY:.0}; burst API {rb:.0})"
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_from_relay_core_output() {
        assert_eq!(
            packets_handled("x\n\nhandle_packet calls: 1200000\n"),
            Some(1_200_000)
        );
        assert_eq!(packets_handled("nothing"), None);
    }

    #[test]
    fn totals_and_calls() {
        let text =
            "events: Ir\nfn=(1) main\ncfn=(2) relay::Relay::handle_packet_at\ncalls=600 0\n0 5\n\
                    fn=(2)\n0 10\ncfn=(2)\ncalls=4 0\n0 1\nsummary: 999\ntotals: 1234\n";
        assert_eq!(callgrind_totals(text).unwrap(), 1234);
        assert_eq!(callgrind_calls(text, &["Relay", "handle_packet"]), 604);
    }
}
