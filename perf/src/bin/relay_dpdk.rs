//! `scripts/perf relay-dpdk [--quick]`: the relay's Mpps per worker core between two DPDK
//! processes joined like a NIC and a host, and `dpdk-testpmd` on exactly that harness.
//!
//! ```text
//!   generator process (core G)                      forwarder process (core R)
//!   net_memif0 role=server ── memif socket ──► net_memif0 role=client
//!   frames for N legs, stamped  ◄── shared-memory rings ──  our relay: callbridge_worker::Worker
//!   (TSC), counted back                                     over DpdkIo, N legs bridged in pairs
//!                                                           or dpdk-testpmd io / 5tswap
//! ```
//!
//! `net_memif` is DPDK's shared-memory packet interface (the one VPP speaks). In copy mode
//! it needs no hugepages (`--no-huge` works: its rings and buffers live in memfd shared
//! memory the client creates and passes over the Unix socket), each side copies frames
//! between its mbufs and the shared buffers, like a NIC's DMA. Each process runs EAL with
//! its own `--file-prefix`, on its own core.
//!
//! For each leg count, three forwarders take the host's place in turn, each with a fresh
//! generator (same code, same frames, same closed loop of `--inflight` frames):
//! 1. our relay (`--role relay`): the real worker loop with N legs added through dp_api
//!    commands; it reports the TSC time of its passes that received frames, which gives the
//!    worker's capacity (frames per second of busy passes, leaving out passes longer than
//!    100 us: those were preempted by other processes) beside the wall-clock rate;
//! 2. `dpdk-testpmd --forward-mode=io` (receive, send back unchanged);
//! 3. `dpdk-testpmd --forward-mode=5tswap` (swaps MAC, IP addresses and UDP ports: the
//!    closest thing in testpmd to a relay's rewrite), the like-for-like reference.
//!
//! The generator counts every frame that comes back (the relay rewrites it toward the peer
//! leg, 5tswap back toward its sender, io not at all) and the time since it sent it (the
//! timestamp is in the RTP payload, which no forwarder touches): per-packet latency through
//! the forwarder and both memif copies, with `--inflight` frames queued at most.
//!
//! The headline (`mpps_per_core`, the ratio) is the wall-clock median at 10k legs (at the
//! largest leg count measured when 10k is not among them). Targets (issue 9), reported, not
//! asserted: ≥ 10 Mpps per worker core at 10k legs, ≥ 70 % of testpmd 5tswap.

#![forbid(unsafe_code)]

#[path = "relay_dpdk/gen.rs"]
mod gen;
#[path = "relay_dpdk/host.rs"]
mod host;
#[path = "relay_dpdk/procs.rs"]
mod procs;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use callbridge_perf::dpdkgen as g;
use callbridge_perf::report::{median, Report};
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};

use procs::{Proc, TempDir};

/// The memif device's name in every process.
pub const MEMIF_DEV: &str = "net_memif0";

#[derive(Parser, Debug, Clone)]
#[command(about = "Relay Mpps per worker core over net_memif vs dpdk-testpmd io and 5tswap")]
pub struct Args {
    /// Small and quick: 1k legs, 3 windows of 2 s (a smoke test).
    #[arg(long)]
    quick: bool,
    /// Bridged leg counts (even; default 1000 10000 100000, --quick 1000).
    #[arg(long = "legs", num_args = 1..)]
    legs: Vec<usize>,
    /// Measurement windows per trial (one generator and one forwarder process; default 3).
    #[arg(long)]
    runs: Option<usize>,
    /// Rounds per leg count: each runs the relay, testpmd io and testpmd 5tswap in turn
    /// (default 3, --quick 1). Medians are over all windows of all rounds.
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds per window.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Seconds of warm-up before the windows.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Frames in flight at most (closed loop).
    #[arg(long, default_value_t = 256)]
    inflight: u32,
    /// The relay worker's burst size.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// The generator's core.
    #[arg(long, default_value_t = 0)]
    generator_core: usize,
    /// The relay's (and testpmd's forwarding lcore's) core.
    #[arg(long, default_value_t = 1)]
    relay_core: usize,
    /// Run the generator and the forwarder (ours and testpmd alike) SCHED_FIFO at this
    /// priority (chrt), so that other processes on a shared machine do not preempt them;
    /// the kernel's RT throttling still leaves others 5 % of each core. Off by default.
    #[arg(long)]
    fifo: Option<u8>,
    /// dpdk-testpmd.
    #[arg(long, default_value = "/usr/bin/dpdk-testpmd")]
    testpmd: String,
    /// Which process this is (the orchestrator starts the others).
    #[arg(long, value_enum, default_value_t = Role::Orchestrate, hide = true)]
    role: Role,
    /// The memif socket (gen, relay).
    #[arg(long, hide = true)]
    socket: Option<String>,
    /// The EAL file prefix (gen, relay).
    #[arg(long, hide = true)]
    file_prefix: Option<String>,
}

/// Which process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Runs the scenario, starting the processes below.
    Orchestrate,
    /// The generator.
    Gen,
    /// Our relay.
    Relay,
}

/// What takes the host's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fwd {
    Relay,
    TestpmdIo,
    Testpmd5tswap,
}

impl Fwd {
    fn name(self) -> &'static str {
        match self {
            Self::Relay => "relay",
            Self::TestpmdIo => "testpmd-io",
            Self::Testpmd5tswap => "testpmd-5tswap",
        }
    }
}

/// Pins the calling thread to `core` (a warning if it cannot).
pub fn pin(core: usize, who: &str) {
    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        eprintln!("relay_dpdk: could not pin the {who} to core {core}");
    }
}

/// Puts the calling thread in SCHED_FIFO at `prio` (`chrt -f -p`), or back in SCHED_OTHER for
/// `None`; does nothing unless `--fifo` was given (`enabled`). A warning if it fails.
pub fn sched_fifo(prio: Option<u8>, enabled: Option<u8>) {
    if enabled.is_none() {
        return;
    }
    let Some(tid) = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    else {
        eprintln!("relay_dpdk: no /proc/thread-self");
        return;
    };
    let mut c = Command::new("chrt");
    match prio {
        Some(p) => c.args(["-f", "-p", &p.to_string(), &tid]),
        None => c.args(["-o", "-p", "0", &tid]),
    };
    if !c.status().is_ok_and(|s| s.success()) {
        eprintln!("relay_dpdk: chrt on thread {tid} failed");
    }
}

/// The memif device spec for `role` on `socket`.
pub fn memif_vdev(role: &str, socket: &str) -> String {
    let mac = if role == "client" {
        g::RELAY_MAC
    } else {
        g::GW_MAC
    };
    format!("{MEMIF_DEV},role={role},socket={socket},socket-abstract=no,mac={mac}")
}

/// Runs `f` inside EAL for one process of the harness: core `core`, no hugepages, the memif
/// device in `role` (`server`: the generator; `client`: the relay or testpmd's place) on
/// `socket`, its own `--file-prefix`; the EAL runtime directory is removed after.
pub(crate) fn with_memif_eal(
    core: usize,
    role: &str,
    socket: &str,
    prefix: String,
    f: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let eal = vec![
        "-l".to_string(),
        core.to_string(),
        "--no-huge".into(),
        "-m".into(),
        "512".into(),
        "--no-pci".into(),
        "--vdev".into(),
        memif_vdev(role, socket),
        "--file-prefix".into(),
        prefix,
        "--log-level".into(),
        "lib.eal:warning".into(),
    ];
    worker::dpdk_io::init_eal(&eal).context("EAL init (is the memif PMD installed?)")?;
    let r = f();
    if let Some(dir) = worker::dpdk_io::eal_runtime_dir() {
        let _ = std::fs::remove_dir_all(dir);
    }
    r
}

/// The memif port, configured (not started) with one queue pair and no offloads, over a new
/// pool of `mbufs`. Destructure it in this field order so the queues go first and the pool
/// last.
pub(crate) struct MemifPort {
    pub(crate) pool: dpdk::Mempool,
    pub(crate) port: dpdk::Port,
    pub(crate) rxq: dpdk::RxQueue,
    pub(crate) txq: dpdk::TxQueue,
}

/// Opens [`MemifPort`] with a pool named `pool_name`.
pub(crate) fn memif_port(pool_name: &str, mbufs: u32) -> anyhow::Result<MemifPort> {
    let port_id = dpdk::Port::by_name(MEMIF_DEV).context("memif port")?;
    let pool = dpdk::Mempool::new(
        pool_name,
        mbufs,
        256,
        dpdk::Mempool::DEFAULT_DATA_ROOM,
        dpdk::SocketId::ANY,
    )
    .context("mempool")?;
    let conf = dpdk::PortConf {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 1024,
        tx_desc: 1024,
        offloads: dpdk::port::TxOffloads {
            ipv4_cksum: false,
            udp_cksum: false,
        },
        rss: false,
    };
    let port = dpdk::Port::configure(port_id, conf, &pool).context("configure memif")?;
    let (rxq, txq) = (port.rx_queue(0)?, port.tx_queue(0)?);
    Ok(MemifPort {
        pool,
        port,
        rxq,
        txq,
    })
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.legs.is_empty() {
        args.legs = if args.quick {
            vec![1000]
        } else {
            vec![1000, 10_000, 100_000]
        };
    }
    if args.quick {
        args.warmup = args.warmup.min(0.5);
    }
    match args.role {
        Role::Gen => gen::main(&args),
        Role::Relay => host::main(&args),
        Role::Orchestrate => orchestrate(&args),
    }
}

/// One trial's figures.
struct Trial {
    mpps: Vec<f64>,
    /// Frames back per second of the forwarder process's CPU time (user + system).
    mpps_cpu: Vec<f64>,
    /// Frames per second of busy passes not preempted (shorter than 100 us).
    capacity: Vec<f64>,
    /// Frames per second of all busy passes (preempted ones included).
    capacity_raw: Vec<f64>,
    result: Value,
    relay_final: Option<Value>,
}

fn orchestrate(args: &Args) -> anyhow::Result<()> {
    procs::check_prerequisites(&args.testpmd)?;
    let runs = args.runs.unwrap_or(3);
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 });
    if runs == 0 || rounds == 0 || args.seconds <= 0.0 {
        bail!("--runs, --rounds and --seconds must be positive");
    }
    for &l in &args.legs {
        if !(2..=g::MAX_LEGS).contains(&l) || l % 2 == 1 {
            bail!("--legs {l}: legs must be even, 2..={}", g::MAX_LEGS);
        }
    }
    let tmp = TempDir::new()?;
    let mut report = Report::new(
        "relay-dpdk",
        json!({
            "legs": args.legs, "runs": runs, "rounds": rounds, "seconds": args.seconds, "warmup": args.warmup,
            "inflight": args.inflight, "burst": args.burst,
            "generator_core": args.generator_core, "relay_core": args.relay_core,
            "frame_len": g::FRAME_LEN, "rtp_len": g::RTP_LEN,
            "harness": "two DPDK processes over net_memif (copy mode, --no-huge), generator = memif server, forwarder = memif client",
            "testpmd": args.testpmd,
            "sched_fifo_priority": args.fifo,
        }),
    );
    report.quick(args.quick);
    println!(
        "relay-dpdk: generator on core {}, forwarder on core {}, net_memif copy mode, {}-byte \
         frames, {} in flight, {rounds} rounds of {runs} x {} s windows per leg count and forwarder",
        args.generator_core,
        args.relay_core,
        g::FRAME_LEN,
        args.inflight,
        args.seconds
    );
    let mut a = args.clone();
    a.runs = Some(runs);
    let mut per_legs = Vec::new();
    let mut k = 0;
    let fwds = [Fwd::Relay, Fwd::TestpmdIo, Fwd::Testpmd5tswap];
    for &legs in &args.legs {
        // Rounds alternate the forwarders, so that each sees the machine's load as it varies.
        let mut acc: Vec<Acc> = fwds.iter().map(|_| Acc::default()).collect();
        for round in 0..rounds {
            for (fwd, acc) in fwds.iter().copied().zip(acc.iter_mut()) {
                k += 1;
                let t = trial(&a, &tmp.0, legs, fwd, k)
                    .with_context(|| format!("{} at {legs} legs", fwd.name()))?;
                let lat = &t.result["latency_ns"];
                println!(
                    "{legs:>6} legs {:<15} round {round}: {} Mpps, per CPU-s {}{} | latency p50 {:.1} p99 {:.1} us | lost {} | load {}",
                    fwd.name(),
                    fmt_list(&t.mpps),
                    fmt_list(&t.mpps_cpu),
                    if t.capacity.is_empty() {
                        String::new()
                    } else {
                        format!(", busy-pass capacity {}", fmt_list(&t.capacity))
                    },
                    lat["p50"].as_f64().unwrap_or(0.0) / 1e3,
                    lat["p99"].as_f64().unwrap_or(0.0) / 1e3,
                    t.result["lost"],
                    loadavg(),
                );
                report.run(json!({
                    "legs": legs,
                    "forwarder": fwd.name(),
                    "round": round,
                    "loadavg": loadavg(),
                    "mpps_windows": t.mpps,
                    "mpps_median": median(&t.mpps),
                    "mpps_per_forwarder_cpu_second_windows": t.mpps_cpu,
                    "worker_capacity_mpps_windows": t.capacity,
                    "worker_capacity_with_preempted_passes_mpps_windows": t.capacity_raw,
                    "generator": t.result,
                    "relay_counters": t.relay_final,
                }));
                acc.add(&t);
            }
        }
        let mut row = json!({"legs": legs});
        for (fwd, acc) in fwds.iter().zip(&acc) {
            let key = match fwd {
                Fwd::Relay => "relay",
                Fwd::TestpmdIo => "testpmd_io",
                Fwd::Testpmd5tswap => "testpmd_5tswap",
            };
            row[format!("{key}_mpps")] = json!(median(&acc.mpps));
            row[format!("{key}_mpps_per_cpu_second")] = json!(median(&acc.mpps_cpu));
            row[format!("{key}_latency_ns")] = acc.latency();
            if *fwd == Fwd::Relay {
                row["worker_capacity_mpps"] = json!(median(&acc.capacity));
                row["worker_capacity_with_preempted_passes_mpps"] =
                    json!(median(&acc.capacity_raw));
            }
        }
        let (r, t5) = (
            row["relay_mpps"].as_f64(),
            row["testpmd_5tswap_mpps"].as_f64(),
        );
        if let (Some(r), Some(t5)) = (r, t5) {
            row["ratio_vs_testpmd_5tswap"] = json!(r / t5);
        }
        let (rc, t5c) = (
            row["relay_mpps_per_cpu_second"].as_f64(),
            row["testpmd_5tswap_mpps_per_cpu_second"].as_f64(),
        );
        if let (Some(r), Some(t5)) = (rc, t5c) {
            row["ratio_vs_testpmd_5tswap_per_cpu_second"] = json!(r / t5);
        }
        if let (Some(r), Some(io)) = (r, row["testpmd_io_mpps"].as_f64()) {
            row["ratio_vs_testpmd_io"] = json!(r / io);
        }
        println!(
            "{legs:>6} legs, medians of {} windows: relay {:.2} Mpps (busy-pass capacity {:.2}), testpmd io {:.2}, 5tswap {:.2}; relay/5tswap {:.2} wall-clock, {:.2} per CPU-second",
            rounds * runs,
            row["relay_mpps"].as_f64().unwrap_or(f64::NAN),
            row["worker_capacity_mpps"].as_f64().unwrap_or(f64::NAN),
            row["testpmd_io_mpps"].as_f64().unwrap_or(f64::NAN),
            row["testpmd_5tswap_mpps"].as_f64().unwrap_or(f64::NAN),
                row["ratio_vs_testpmd_5tswap"].as_f64().unwrap_or(f64::NAN),
                row["ratio_vs_testpmd_5tswap_per_cpu_second"].as_f64().unwrap_or(f64::NAN),
            );
        per_legs.push(row);
    }
    drop(tmp);
    headline(&mut report, &per_legs)
}

/// One forwarder's windows and latencies over the rounds at one leg count.
#[derive(Default)]
struct Acc {
    mpps: Vec<f64>,
    mpps_cpu: Vec<f64>,
    capacity: Vec<f64>,
    capacity_raw: Vec<f64>,
    /// Per trial: p50, p90, p99, p99.9 in ns.
    lat: Vec<[f64; 4]>,
}

impl Acc {
    fn add(&mut self, t: &Trial) {
        self.mpps.extend(&t.mpps);
        self.mpps_cpu.extend(&t.mpps_cpu);
        self.capacity.extend(&t.capacity);
        self.capacity_raw.extend(&t.capacity_raw);
        let l = &t.result["latency_ns"];
        let q = |k: &str| l[k].as_f64().unwrap_or(f64::NAN);
        self.lat.push([q("p50"), q("p90"), q("p99"), q("p99_9")]);
    }

    /// The median over trials of each percentile.
    fn latency(&self) -> Value {
        let m = |i: usize| median(&self.lat.iter().map(|l| l[i]).collect::<Vec<_>>());
        json!({"p50": m(0), "p90": m(1), "p99": m(2), "p99_9": m(3),
               "note": "ns from send to back at the generator (both memif copies, the forwarder, queueing of up to `inflight` frames); median over rounds"})
    }
}

/// The load average (1, 5, 15 min).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn fmt_list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sets the contract keys from the 10k-leg row (or the largest) and prints the last line.
fn headline(report: &mut Report, per_legs: &[Value]) -> anyhow::Result<()> {
    let head = per_legs
        .iter()
        .find(|r| r["legs"] == 10_000)
        .or_else(|| per_legs.iter().max_by_key(|r| r["legs"].as_u64()))
        .context("no leg counts")?;
    let f = |k: &str| head[k].as_f64();
    let (mpps, t5, io, ratio) = (
        f("relay_mpps"),
        f("testpmd_5tswap_mpps"),
        f("testpmd_io_mpps"),
        f("ratio_vs_testpmd_5tswap"),
    );
    report
        .set("legs", head["legs"].clone())
        .set("mpps_per_core", mpps)
        .set("worker_capacity_mpps", head["worker_capacity_mpps"].clone())
        .set("testpmd_io_mpps", io)
        .set("testpmd_5tswap_mpps", t5)
        .set("ratio_vs_testpmd_5tswap", ratio)
        .set("ratio_vs_testpmd_io", head["ratio_vs_testpmd_io"].clone())
        .set(
            "mpps_per_cpu_second",
            head["relay_mpps_per_cpu_second"].clone(),
        )
        .set(
            "ratio_vs_testpmd_5tswap_per_cpu_second",
            head["ratio_vs_testpmd_5tswap_per_cpu_second"].clone(),
        )
        .set("latency_ns", head["relay_latency_ns"].clone())
        .set("per_legs", Value::Array(per_legs.to_vec()))
        .set(
            "targets",
            json!({
                "mpps_per_core_min": 10.0,
                "ratio_vs_testpmd_5tswap_min": 0.7,
                "mpps_per_core_met": mpps.map(|m| m >= 10.0),
                "ratio_vs_testpmd_5tswap_met": ratio.map(|r| r >= 0.7),
            }),
        );
    let legs = head["legs"].as_u64().unwrap_or(0);
    let legs = if legs % 1000 == 0 {
        format!("{}k", legs / 1000)
    } else {
        legs.to_string()
    };
    let line = format!(
        "{:.2} Mpps/core at {legs} legs, {:.2} of testpmd 5tswap ({:.2} Mpps; io {:.2}); \
         targets >= 10 Mpps/core, >= 0.70",
        mpps.unwrap_or(f64::NAN),
        ratio.unwrap_or(f64::NAN),
        t5.unwrap_or(f64::NAN),
        io.unwrap_or(f64::NAN),
    );
    report.finish(&line)?;
    Ok(())
}

/// One generator and one forwarder on a fresh memif socket.
fn trial(args: &Args, tmp: &Path, legs: usize, fwd: Fwd, k: usize) -> anyhow::Result<Trial> {
    let runs = args.runs.unwrap_or(1);
    let me = std::process::id();
    let socket = tmp.join(format!("memif-{k}.sock"));
    let sock = socket.to_string_lossy().into_owned();
    let exe = std::env::current_exe().context("own path")?;
    let common = |c: &mut Command, role: &str, prefix: &str| {
        c.args([
            "--role",
            role,
            "--legs",
            &legs.to_string(),
            "--socket",
            &sock,
        ])
        .args(["--file-prefix", prefix])
        .args(["--generator-core", &args.generator_core.to_string()])
        .args(["--relay-core", &args.relay_core.to_string()])
        .args([
            "--runs",
            &runs.to_string(),
            "--seconds",
            &args.seconds.to_string(),
        ])
        .args(["--warmup", &args.warmup.to_string()])
        .args(args.fifo.map(|p| format!("--fifo={p}")))
        .args([
            "--inflight",
            &args.inflight.to_string(),
            "--burst",
            &args.burst.to_string(),
        ]);
    };
    // With --fifo, our generator and relay put only their polling thread in SCHED_FIFO
    // (see `sched_fifo`); testpmd runs wholly under `chrt -f` (chrt execs, and testpmd
    // inherits the policy through `timeout`), its forwarding lcore then being the only busy one.
    let start = |prog: &Path| -> Command {
        match args.fifo {
            Some(p) => {
                let mut c = Command::new("chrt");
                c.args(["-f", &p.to_string()]).arg(prog);
                c
            }
            None => Command::new(prog),
        }
    };
    let gp = format!("cbrdg{me}x{k}");
    let mut c = Command::new(&exe);
    common(&mut c, "gen", &gp);
    let mut gen = Proc::spawn("generator", c, tmp.join(format!("gen-{k}.err")), &gp)?;
    gen.expect("listening", Duration::from_secs(30), |_| {})?;
    if !socket.exists() {
        bail!("the generator did not create {}", socket.display());
    }
    let budget = (args.warmup + runs as f64 * args.seconds) as u64 + 90;
    let fp = format!("cbrdf{me}x{k}");
    let mut fwd_p = match fwd {
        Fwd::Relay => {
            let mut c = Command::new(&exe);
            common(&mut c, "relay", &fp);
            Proc::spawn("relay", c, tmp.join(format!("relay-{k}.err")), &fp)?
        }
        Fwd::TestpmdIo | Fwd::Testpmd5tswap => {
            let mode = if fwd == Fwd::TestpmdIo {
                "io"
            } else {
                "5tswap"
            };
            let mut c = start(Path::new("timeout"));
            c.args([
                "-k",
                "5",
                "--signal=INT",
                &budget.to_string(),
                &args.testpmd,
            ])
            .args([
                "-l",
                &format!("{},{}", args.generator_core, args.relay_core),
            ])
            .args(["--main-lcore", &args.generator_core.to_string()])
            .args(["--no-huge", "-m", "512", "--no-pci", "--file-prefix", &fp])
            .args(["--vdev", &memif_vdev("client", &sock)])
            .args(["--log-level", "lib.eal:warning", "--"])
            .arg(format!("--forward-mode={mode}"))
            .args(["--nb-cores=1", "--burst=32", "--total-num-mbufs=16384"])
            .args(["--stats-period", "1"]);
            Proc::spawn(fwd.name(), c, tmp.join(format!("testpmd-{k}.err")), &fp)?
        }
    };
    let mut hz = 0.0;
    if fwd == Fwd::Relay {
        let l = fwd_p.expect("ready", Duration::from_secs(120), |_| {})?;
        hz = l
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .context("relay's TSC rate")?;
    }
    // The forwarder's process (testpmd runs under `timeout`: its only child).
    let fwd_pid = match fwd {
        Fwd::Relay => Some(fwd_p.pid()),
        _ => child_of(fwd_p.pid()),
    };
    gen.say("go")?;
    // Read the generator's windows; snapshot the relay's busy counters at their edges.
    let latest = |p: &Proc| -> Option<[u64; 4]> {
        let mut last = None;
        while let Ok(l) = p.lines.try_recv() {
            let mut w = l.split_whitespace();
            if w.next() == Some("stats") {
                let v: Vec<u64> = w.filter_map(|s| s.parse().ok()).collect();
                if let Ok(a) = <[u64; 4]>::try_from(v) {
                    last = Some(a);
                }
            }
        }
        last
    };
    let (mut mpps, mut capacity, mut capacity_raw) = (Vec::new(), Vec::new(), Vec::new());
    let mut mpps_cpu = Vec::new();
    let mut at_start = None;
    let mut cpu_start = None;
    let mut last_stats = None;
    let result = loop {
        let l = gen.next_line(Duration::from_secs(budget))?;
        if fwd == Fwd::Relay {
            if let Some(s) = latest(&fwd_p) {
                last_stats = Some(s);
            }
        }
        let mut w = l.split_whitespace();
        match w.next() {
            Some("window-start") => {
                at_start = last_stats;
                cpu_start = fwd_pid.and_then(cpu_ticks);
            }
            Some("window-end") => {
                let m: f64 = w
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .context("window-end")?;
                mpps.push(m);
                let frames: Option<f64> = w.next().and_then(|s| s.parse().ok());
                if let (Some(c0), Some(c1), Some(n)) =
                    (cpu_start, fwd_pid.and_then(cpu_ticks), frames)
                {
                    if c1 > c0 {
                        mpps_cpu.push(n / ((c1 - c0) as f64 / CLK_TCK) / 1e6);
                    }
                }
                if let (Some(s0), Some(s1)) = (at_start, last_stats) {
                    let d: Vec<f64> = (0..4).map(|i| s1[i].saturating_sub(s0[i]) as f64).collect();
                    if d[0] > 0.0 && hz > 0.0 {
                        capacity_raw.push(d[1] / (d[0] / hz) / 1e6);
                    }
                    if d[0] > d[2] && hz > 0.0 {
                        capacity.push((d[1] - d[3]) / ((d[0] - d[2]) / hz) / 1e6);
                    }
                }
            }
            Some("result") => {
                let j = l.split_once(' ').map_or("", |x| x.1);
                break serde_json::from_str::<Value>(j).context("generator result")?;
            }
            _ => {}
        }
    };
    gen.finish(Duration::from_secs(10));
    let relay_final = match fwd {
        Fwd::Relay => {
            fwd_p.close_stdin();
            let l = fwd_p.expect("final", Duration::from_secs(15), |_| {}).ok();
            fwd_p.finish(Duration::from_secs(5));
            l.and_then(|l| serde_json::from_str(l.split_once(' ')?.1).ok())
        }
        _ => {
            fwd_p.interrupt();
            fwd_p.finish(Duration::from_secs(10));
            None
        }
    };
    drop(fwd_p);
    drop(gen);
    let _ = std::fs::remove_file(&socket);
    Ok(Trial {
        mpps,
        mpps_cpu,
        capacity,
        capacity_raw,
        result,
        relay_final,
    })
}

/// `USER_HZ`: the unit of `/proc/<pid>/stat` CPU times (100 on Linux).
const CLK_TCK: f64 = 100.0;

/// A process's user + system CPU time in `USER_HZ` ticks (all its threads).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm) ": state is field 3, utime 14, stime 15 -> indexes 11 and 12 here.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The first child of `pid` (testpmd under `timeout`).
fn child_of(pid: u32) -> Option<u32> {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let c = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        if let Some(c) = c.split_whitespace().next().and_then(|s| s.parse().ok()) {
            return Some(c);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
