//! Relay throughput of ONE DPDK worker core, compared with `dpdk-testpmd` io-forwarding.
//!
//! Set-up (one process, `--no-huge`, no PCI):
//!
//! ```text
//!   generator thread (core G)                         worker thread (core W)
//!   pre-built frames ─► net_ring0 TX q0 ─ ring 0 ─► RX q0 ─► DpdkIo ─► netstack ─► relay
//!          ▲                                                                     │ forward
//!          └── rewrite ◄─ net_ring0 RX q1 ◄─ ring 1 ─ TX q1 ◄─ encap ◄───────────┘
//! ```
//!
//! `net_ring0` gives every queue one ring used for both its RX and TX, so the worker takes
//! RX queue 0 and TX queue 1, the generator TX queue 0 and RX queue 1: two single-producer
//! single-consumer rings, no copy in the device. The generator recycles each returned mbuf
//! by writing the next pre-built frame into it (Ethernet + IPv4 + UDP + a 172-byte RTP packet,
//! 214 bytes, UDP checksum set; only the first 64 bytes once the payload is in place),
//! round-robin over all legs, so the worker sees every leg in turn. The worker runs the real [`worker::Worker`] loop over [`DpdkIo`]: L2/L3 checks
//! (IPv4 and UDP checksums verified in software: the ring device offers no offload), relay
//! lookup and rewrite, re-encapsulation (checksums in software). Reported per leg count,
//! median of `--runs` windows:
//! - wall-clock Mpps: frames the generator got back per second (the headline; bounded by the
//!   generator too, and by whatever else runs on the machine);
//! - worker capacity: frames per TSC-second spent in worker passes that received frames
//!   (what one worker core sustains when fed faster than it drains);
//! - frames per second of the worker thread's CPU time (from `/proc`).
//!
//! The final line and `--out` (default `perf/reports/latest/worker-ring.json`) give the largest leg count's
//! wall-clock median against testpmd's.
//!
//! After the relay runs, the same harness measures plain io forwarding (`--floor`: rx_burst,
//! read one byte, tx_burst) at the largest leg count: testpmd's io mode on exactly this device,
//! generator and mode, reported as the like-with-like ratio (`--no-floor-reference` skips it).
//!
//! `--interleaved` runs generator and worker on ONE core, alternating a generator step and a
//! worker pass: the worker's cost without cross-core cache traffic, with a histogram of the
//! ns per packet of each full pass, and repeatable under callgrind. See `perf/RESULTS.md`.
//!
//! Then `dpdk-testpmd` runs io forwarding between two `net_null` devices on one forwarding
//! core (`--no-huge -m 512`), its per-second `Rx-pps` summed over both ports, median taken.
//!
//! At most 32 256 legs fit one media address (each leg holds an even RTP port and the odd
//! RTCP port above it, ports 1024..=65535), so leg counts above that spread over several
//! media addresses the data plane owns (198.18.0.1, then 198.18.0.101, .102, …: as many as
//! needed, like a media node configured with `media.extra_addresses`); leg `i` is address
//! `i / 32256`, port `1024 + 2 (i mod 32256)`. The default leg counts are 1k, 10k and 100k
//! (four addresses).
//!
//! ```text
//! target/release/worker_ring   # built by scripts/perf (bench profile, --features dpdk)
//! ```
#![forbid(unsafe_code)]

#[path = "worker_ring/interleaved.rs"]
mod interleaved;
#[path = "worker_ring/legs.rs"]
mod legs;
#[path = "worker_ring/queues.rs"]
mod queues;
#[path = "worker_ring/testpmd.rs"]
mod testpmd;
#[path = "worker_ring/two_cores.rs"]
mod two_cores;

use std::process::Command as Proc;
use std::sync::{Arc, Mutex};

use anyhow::{ensure, Context};
use clap::Parser;
use dpdk::port::TxOffloads;
use dpdk::{Mempool, Port, PortConf, SocketId};
use serde_json::json;
use wire::ethernet::Address;
use worker::dpdk_io::{eal_runtime_dir, init_eal};

use crate::legs::{FRAME_LEN, RTP_LEN};
use crate::queues::{take_tx1, Queues, PORT};
use crate::testpmd::{median, testpmd};
use crate::two_cores::run;

#[derive(Parser, Debug, Clone)]
#[command(about = "Relay Mpps of one DPDK worker core vs dpdk-testpmd io forwarding")]
pub(crate) struct Args {
    /// Bridged leg counts to measure (even; more than 32256 spread over several media
    /// addresses, at most 16 x 32256).
    #[arg(long = "legs", default_values_t = [1000usize, 10000, 100000])]
    pub(crate) legs: Vec<usize>,
    /// Measurement windows per leg count (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// Frames in flight (the generator tops up to this many mbufs out of the pool). Real
    /// NICs DMA into the last-level cache; a small working set models that better than
    /// filling both 1024-slot rings.
    #[arg(long, default_value_t = 256)]
    pub(crate) inflight: u32,
    /// Model a NIC with checksum offload: frames arrive (with their checksums set) in mbufs
    /// whose offload flags say both checksums were verified good, as a NIC with receive
    /// checksum offload reports them (`RTE_MBUF_F_RX_IP_CKSUM_GOOD`,
    /// `RTE_MBUF_F_RX_L4_CKSUM_GOOD`; the worker trusts them, as it does on a port that
    /// enabled those offloads), and leave with the IPv4 checksum left 0 and the UDP checksum
    /// field holding the pseudo-header sum, `RTE_MBUF_F_TX_IPV4 | TX_IP_CKSUM | TX_UDP_CKSUM`
    /// and `l2_len`/`l3_len` set, as DPDK requires for a NIC to fill them (net_ring computes
    /// none; the generator rewrites those headers anyway). A what-if, reported separately.
    #[arg(long)]
    pub(crate) assume_offload: bool,
    /// Measure the harness floor instead of the relay: the worker thread moves frames from
    /// ring 0 to ring 1 reading one byte of each, no netstack, no relay.
    #[arg(long)]
    pub(crate) floor: bool,
    /// Run the generator and the worker interleaved on ONE core (one thread: a generator step,
    /// then one worker pass). The worker's TSC time per packet is then measured without a
    /// second core's interference (cache lines moving between cores, a sibling busy with
    /// other work), and the run is repeatable under `valgrind --tool=callgrind`. The
    /// wall-clock rate is then that of generator + worker sharing the core.
    #[arg(long)]
    pub(crate) interleaved: bool,
    /// With `--interleaved`: end each window after this many frames came back instead of
    /// after `--seconds`, and warm up for as many frames as there are legs (at least 5 000)
    /// instead of 500 ms: a run whose work does not depend on time (`scripts/perf
    /// relay-instr` counts its instructions under callgrind).
    #[arg(long)]
    pub(crate) packets: Option<u64>,
    /// Seconds per window.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) seconds: f64,
    /// Worker burst size.
    #[arg(long, default_value_t = 32)]
    pub(crate) burst: usize,
    /// The worker's core.
    #[arg(long, default_value_t = 0)]
    pub(crate) worker_core: usize,
    /// The generator's core.
    #[arg(long, default_value_t = 1)]
    pub(crate) generator_core: usize,
    /// dpdk-testpmd to compare with.
    #[arg(long, default_value = "/usr/bin/dpdk-testpmd")]
    pub(crate) testpmd: String,
    /// Seconds of testpmd forwarding.
    #[arg(long, default_value_t = 8)]
    pub(crate) testpmd_seconds: u64,
    /// Skip the like-with-like reference: io forwarding (`--floor`) on the same net_ring
    /// device, fed by the same generator, in the same mode, after the relay runs.
    #[arg(long)]
    pub(crate) no_floor_reference: bool,
    /// Skip testpmd.
    #[arg(long)]
    pub(crate) no_testpmd: bool,
    /// Where to write the JSON report.
    #[arg(long, default_value = "perf/reports/latest/worker-ring.json")]
    pub(crate) out: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.runs >= 1 && args.seconds > 0.0,
        "runs and seconds must be positive"
    );
    let commit = Proc::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();

    // testpmd first, before our EAL holds the cores.
    let testpmd_mpps = if args.no_testpmd {
        None
    } else {
        let m = testpmd(&args)?;
        println!("testpmd io-forwarding, net_null0<->net_null1, 1 core: {m:.2} Mpps");
        Some(m)
    };

    let prefix = format!("cbperf{}", std::process::id());
    let eal = vec![
        "-l".to_string(),
        format!("{},{}", args.worker_core, args.generator_core),
        "--no-huge".into(),
        "-m".into(),
        "1024".into(),
        "--no-pci".into(),
        "--vdev".into(),
        "net_ring0".into(),
        "--file-prefix".into(),
        prefix,
        "--log-level".into(),
        "lib.eal:warning".into(),
    ];
    init_eal(&eal)?;
    let result = measure(&args, &commit, &cpu, testpmd_mpps);
    *PORT.lock().expect("port") = None;
    if let Some(dir) = eal_runtime_dir() {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn measure(args: &Args, commit: &str, cpu: &str, testpmd_mpps: Option<f64>) -> anyhow::Result<()> {
    let port_id = Port::by_name("net_ring0").context("net_ring0")?;
    let pool = Mempool::new(
        "cbperf",
        8191,
        256,
        Mempool::DEFAULT_DATA_ROOM,
        SocketId::ANY,
    )
    .context("mempool")?;
    let conf = PortConf {
        rx_queues: 2,
        tx_queues: 2,
        rx_desc: 1024,
        tx_desc: 1024,
        offloads: TxOffloads {
            ipv4_cksum: false,
            udp_cksum: false,
        },
        // Queue 0 is the worker's, queue 1 the generator's: no spreading.
        rss: false,
    };
    let mut port = Port::configure(port_id, conf, &pool).context("configure net_ring0")?;
    let our_mac = Address(port.mac_addr().context("MAC")?.0);
    let queues = Arc::new(Mutex::new(Queues {
        rx0: Some(port.rx_queue(0)?),
        tx0: Some(port.tx_queue(0)?),
        rx1: Some(port.rx_queue(1)?),
        tx1: Some(port.tx_queue(1)?),
    }));
    port.start().context("start net_ring0")?;
    *PORT.lock().expect("port") = Some(port);

    println!(
        "worker_ring: one worker core ({}), net_ring0 (RX q0 / TX q1), generator on core {}, \
         {FRAME_LEN}-byte frames (172-byte RTP), burst {}, {} in flight, {} x {} s windows, commit {}, {cpu}",
        args.worker_core,
        args.generator_core,
        args.burst,
        args.inflight,
        args.runs,
        args.seconds,
        commit.trim()
    );
    let mut results = Vec::new();
    for &legs in &args.legs {
        let r = run(args, legs, &pool, our_mac, &queues)?;
        {
            let mut q = queues.lock().expect("queues");
            if q.tx1.is_none() {
                q.tx1 = Some(take_tx1()?);
            }
        }
        let m = median(&r.mpps);
        println!();
        println!(
            "{legs} bridged legs: {m:.2} Mpps per core (windows: {}), {:.1} ns/packet",
            r.mpps
                .iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            1e3 / m
        );
        if !r.mpps_busy.is_empty() {
            println!(
                "  worker capacity (busy passes only): {:.2} Mpps, {:.1} ns/packet (windows: {})",
                median(&r.mpps_busy),
                1e3 / median(&r.mpps_busy),
                r.mpps_busy
                    .iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if !r.mpps_cpu.is_empty() {
            println!(
                "  per worker CPU-second: {:.2} Mpps (windows: {})",
                median(&r.mpps_cpu),
                r.mpps_cpu
                    .iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        println!(
            "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            r.sample_label, "AVG", "P0", "P50", "P90", "P99", "P100"
        );
        let h = &r.samples;
        println!(
            "{:<12} {:>8.0} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "forwarded",
            h.mean(),
            h.min(),
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.90),
            h.value_at_quantile(0.99),
            h.max()
        );
        let w = &r.worker;
        println!(
            "worker: relay rx {} tx {} drops {} | L2 drops {} arp_pending {} | tx refused {} | backend drops {}",
            w.relay.rx_packets,
            w.relay.tx_packets,
            w.relay.drops.total(),
            w.io.net.dropped_total(),
            w.io.net.arp_pending,
            w.lp.tx_refused,
            w.io.backend_drops
        );
        results.push(r);
    }

    // Headline: the largest leg count measured (the most cache-hostile).
    let head = results
        .iter()
        .max_by_key(|r| r.legs)
        .context("no leg counts")?;
    let mpps = median(&head.mpps);
    let ratio = testpmd_mpps.map(|t| mpps / t);

    // Like with like: io forwarding (rx_burst → tx_burst, one byte read per frame) on the
    // same device, generator, mode and leg count: what testpmd's io mode does, measured on
    // this harness.
    let floor_ref = if args.floor || args.no_floor_reference {
        None
    } else {
        let mut fa = args.clone();
        fa.floor = true;
        let f = run(&fa, head.legs, &pool, our_mac, &queues)?;
        {
            let mut q = queues.lock().expect("queues");
            if q.tx1.is_none() {
                q.tx1 = Some(take_tx1()?);
            }
        }
        let (fw, fc) = (median(&f.mpps), median(&f.mpps_busy));
        println!();
        println!(
            "io-forward reference (same net_ring harness, {} legs): {fw:.2} Mpps wall-clock, \
             {fc:.2} Mpps worker capacity; relay/io-forward: {:.2} wall-clock, {:.2} capacity",
            head.legs,
            mpps / fw,
            median(&head.mpps_busy) / fc
        );
        Some((fw, fc))
    };
    let report = json!({
        "mpps_per_core": mpps,
        "worker_capacity_mpps": median(&head.mpps_busy),
        "ns_per_packet": 1e3 / mpps,
        "testpmd_mpps": testpmd_mpps,
        "ratio_vs_testpmd": ratio,
        "io_forward_reference_mpps": floor_ref.map(|f| f.0),
        "io_forward_reference_capacity_mpps": floor_ref.map(|f| f.1),
        "ratio_vs_io_forward_reference": floor_ref.map(|f| mpps / f.0),
        "capacity_ratio_vs_io_forward_reference": floor_ref.map(|f| median(&head.mpps_busy) / f.1),
        "mode": if args.interleaved { "interleaved: generator and worker on one core" } else { "two cores: generator and worker on their own cores" },
        "legs": head.legs,
        "frame_len": FRAME_LEN,
        "rtp_len": RTP_LEN,
        "burst": args.burst,
        "inflight": args.inflight,
        "assume_offload": args.assume_offload,
        "floor_only": args.floor,
        "device": "net_ring0 (RX q0 / TX q1), no offloads",
        "testpmd_device": "net_null0 <-> net_null1, io forwarding, 1 core",
        "commit": commit.trim(),
        "cpu": cpu,
        "runs": results.iter().map(|r| json!({
            "legs": r.legs,
            "mpps_windows": r.mpps,
            "mpps_median": median(&r.mpps),
            "mpps_per_worker_cpu_second_windows": r.mpps_cpu,
            "mpps_per_worker_cpu_second_median": median(&r.mpps_cpu),
            "worker_capacity_mpps_windows": r.mpps_busy,
            "worker_capacity_mpps_median": median(&r.mpps_busy),
            "ns_per_packet": 1e3 / median(&r.mpps),
            "worker_ns_per_packet": 1e3 / median(&r.mpps_busy),
            "samples": r.sample_label,
            "samples_p50": r.samples.value_at_quantile(0.5),
            "samples_p90": r.samples.value_at_quantile(0.9),
            "samples_p99": r.samples.value_at_quantile(0.99),
            "relay_drops": r.worker.relay.drops.total(),
            "l2_drops": r.worker.io.net.dropped_total(),
            "tx_refused": r.worker.lp.tx_refused,
        })).collect::<Vec<_>>(),
    });
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", args.out))?;
    println!();
    match (testpmd_mpps, ratio) {
        (Some(t), Some(r)) => {
            println!("worker-ring: {mpps:.2} Mpps/core, {r:.2} of testpmd ({t:.2})")
        }
        _ => println!("worker-ring: {mpps:.2} Mpps/core, n/a of testpmd (n/a)"),
    }
    Ok(())
}
