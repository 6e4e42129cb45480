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

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command as Proc, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use clap::Parser;
use dp_api::{Codec, Command, Latch, LegId, LegSpec, SrcMismatch};
use dpdk::port::TxOffloads;
use dpdk::{
    lcore, Burst as MBurst, Mempool, Port, PortConf, RxQueue, SocketId, ThreadRegistration, TxQueue,
};
use hdrhistogram::Histogram;
use relay::{Relay, RelayConfig};
use serde_json::json;
use wire::ethernet::{ethertype, Address, EthernetFrame};
use wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use wire::rtp::RtpRepr;
use wire::udp::{UdpPacket, UdpRepr};
use worker::dpdk_io::{eal_runtime_dir, init_eal, DpdkIo};
use worker::netstack::{NetConfig, TxOffload};
use worker::{PacketIo, SharedStats, Worker, WorkerSnapshot};

#[derive(Parser, Debug, Clone)]
#[command(about = "Relay Mpps of one DPDK worker core vs dpdk-testpmd io forwarding")]
struct Args {
    /// Bridged leg counts to measure (even; more than 32256 spread over several media
    /// addresses, at most 16 x 32256).
    #[arg(long = "legs", default_values_t = [1000usize, 10000, 100000])]
    legs: Vec<usize>,
    /// Measurement windows per leg count (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Frames in flight (the generator tops up to this many mbufs out of the pool). Real
    /// NICs DMA into the last-level cache; a small working set models that better than
    /// filling both 1024-slot rings.
    #[arg(long, default_value_t = 256)]
    inflight: u32,
    /// Model a NIC with checksum offload: frames arrive with UDP checksum 0 (RFC 768 "no
    /// checksum", so nothing is verified in software, as after a NIC's `L4_CKSUM_GOOD`) and
    /// leave with IPv4/UDP checksums left to the device (net_ring computes none; the
    /// generator overwrites those headers anyway). A what-if, reported separately.
    #[arg(long)]
    assume_offload: bool,
    /// Measure the harness floor instead of the relay: the worker thread moves frames from
    /// ring 0 to ring 1 reading one byte of each, no netstack, no relay.
    #[arg(long)]
    floor: bool,
    /// Run the generator and the worker interleaved on ONE core (one thread: a generator step,
    /// then one worker pass). The worker's TSC time per packet is then measured without a
    /// second core's interference (cache lines moving between cores, a sibling busy with
    /// other work), and the run is repeatable under `valgrind --tool=callgrind`. The
    /// wall-clock rate is then that of generator + worker sharing the core.
    #[arg(long)]
    interleaved: bool,
    /// Seconds per window.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Worker burst size.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// The worker's core.
    #[arg(long, default_value_t = 0)]
    worker_core: usize,
    /// The generator's core.
    #[arg(long, default_value_t = 1)]
    generator_core: usize,
    /// dpdk-testpmd to compare with.
    #[arg(long, default_value = "/usr/bin/dpdk-testpmd")]
    testpmd: String,
    /// Seconds of testpmd forwarding.
    #[arg(long, default_value_t = 8)]
    testpmd_seconds: u64,
    /// Skip the like-with-like reference: io forwarding (`--floor`) on the same net_ring
    /// device, fed by the same generator, in the same mode, after the relay runs.
    #[arg(long)]
    no_floor_reference: bool,
    /// Skip testpmd.
    #[arg(long)]
    no_testpmd: bool,
    /// Where to write the JSON report.
    #[arg(long, default_value = "perf/reports/latest/worker-ring.json")]
    out: String,
}

const FIRST_PORT: u16 = 1024;
/// Legs per media address.
const PER_ADDR: usize = (65536 - FIRST_PORT as usize) / 2;
const MAX_LEGS: usize = PER_ADDR * dp_api::MAX_ADDRESSES;
const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
const GW_MAC: Address = Address([0x02, 0xcb, 0, 0, 0, 0xfe]);
const RTP_LEN: usize = 172;
const FRAME_LEN: usize = 14 + 20 + 8 + RTP_LEN;
const GEN_BURST: usize = 32;
/// What the generator rewrites in a returned frame: headers up to and including the RTP
/// header (54 bytes) fit one cache line; the RTP payload comes back as it was sent, since
/// relaying never touches it, so the UDP checksum of the pre-built frame still holds.
const HEADER_COPY: usize = 64;

fn remote(i: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)),
        40000,
    )
}

fn leg_port(i: usize) -> u16 {
    FIRST_PORT + 2 * (i % PER_ADDR) as u16
}

/// Leg `i`'s media address index.
fn leg_addr(i: usize) -> u8 {
    (i / PER_ADDR) as u8
}

/// Media address `a`: ours (`US`) for 0, then 198.18.0.101, .102, …
fn addr_ip(a: u8) -> Ipv4Addr {
    if a == 0 {
        US
    } else {
        Ipv4Addr::new(198, 18, 0, 100 + a)
    }
}

/// The media addresses `legs` legs need.
fn addresses_for(legs: usize) -> usize {
    legs.div_ceil(PER_ADDR).max(1)
}

fn leg_id(i: usize) -> LegId {
    LegId::at(leg_addr(i), leg_port(i), 1)
}

/// The frame leg `i`'s peer sends: gateway MAC → our MAC, remote → us.
fn frame(i: usize, our_mac: Address, no_udp_checksum: bool) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst_addr(our_mac);
    eth.set_src_addr(GW_MAC);
    eth.set_ethertype(ethertype::IPV4);
    let IpAddr::V4(src) = remote(i).ip() else {
        unreachable!("remotes are IPv4")
    };
    let us = addr_ip(leg_addr(i));
    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    Ipv4Repr {
        src_addr: src,
        dst_addr: us,
        next_header: protocol::UDP,
        payload_len: 8 + RTP_LEN,
        hop_limit: 64,
    }
    .emit(&mut ip);
    let mut rtp = [0u8; RTP_LEN];
    RtpRepr::simple(
        8,
        i as u16,
        160 * i as u32,
        0x1000_0000 + i as u32,
        &[0xd5; 160],
    )
    .emit(&mut rtp);
    UdpRepr {
        src_port: remote(i).port(),
        dst_port: leg_port(i),
        payload_len: RTP_LEN,
    }
    .emit(
        &mut UdpPacket::new_unchecked(ip.payload_mut()),
        src,
        us,
        &rtp,
    );
    if no_udp_checksum {
        f[40..42].fill(0);
    }
    f
}

fn pin(core: usize, who: &str) {
    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        eprintln!("worker_ring: could not pin the {who} to core {core}");
    }
}

struct RunResult {
    legs: usize,
    /// Per window: forwarded frames per wall-clock second.
    mpps: Vec<f64>,
    /// Per window: forwarded frames per second of the worker thread's CPU time (what one
    /// core does when the machine also runs other things; busy polling counts as CPU).
    mpps_cpu: Vec<f64>,
    /// Per window: frames per second of TSC time spent in worker passes that received
    /// frames: the worker core's capacity when fed faster than it drains.
    mpps_busy: Vec<f64>,
    samples: Histogram<u64>,
    /// What `samples` holds.
    sample_label: &'static str,
    worker: WorkerSnapshot,
}

/// The worker: the real [`Worker`] loop over [`DpdkIo`] with `legs` bridged legs (pairs),
/// the gateway's MAC pre-loaded. Returns it with the command sender and event receiver,
/// which must stay alive (a closed command queue stops the worker).
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn build_worker(
    rxq: RxQueue,
    txq: TxQueue,
    pool: Mempool,
    our_mac: Address,
    offload: TxOffload,
    legs: usize,
    burst: usize,
    stop: Arc<AtomicBool>,
    reg: Option<ThreadRegistration>,
) -> anyhow::Result<(
    Worker<DpdkIo>,
    crossbeam_channel::Sender<Command>,
    crossbeam_channel::Receiver<dp_api::Event>,
)> {
    let last = FIRST_PORT + (2 * legs.min(PER_ADDR) - 1) as u16;
    let addresses = addresses_for(legs);
    let extra: Vec<IpAddr> = (1..addresses)
        .map(|a| IpAddr::V4(addr_ip(a as u8)))
        .collect();
    let net = NetConfig {
        mac: our_mac,
        ip: US,
        prefix_len: 24,
        gateway: Some(GW),
    };
    let rx_offloads = PORT
        .lock()
        .expect("port")
        .as_ref()
        .map(Port::rx_offloads)
        .unwrap_or_default();
    let mut io = DpdkIo::new(rxq, txq, pool, net, offload, FIRST_PORT..=last, None)
        .with_extra_addresses(&extra)
        .with_rx_offloads(rx_offloads)
        .with_registration(reg);
    let t0 = io.clock().now();
    io.insert_neighbour(t0, IpAddr::V4(GW), GW_MAC);
    let mut cfg = RelayConfig::new(FIRST_PORT..=last, 1 << 16);
    cfg.seed = 7;
    cfg.addresses = addresses;
    let (cmd_tx, cmd_rx) = crossbeam_channel::bounded(16);
    let (ev_tx, ev_rx) = crossbeam_channel::bounded(1 << 16);
    let mut w = Worker::new(0, io, Relay::new(cfg), cmd_rx, ev_tx, burst, stop);
    for i in 0..legs {
        let id = leg_id(i);
        w.handle_command(
            t0,
            Command::AddLeg(LegSpec {
                id,
                remote: Some(remote(i)),
                latch: Latch::Off,
                src_mismatch: SrcMismatch::Drop,
                codec: Codec::Pcma,
                media_timeout: Some(Duration::from_secs(30)),
            }),
        );
        if i % 2 == 1 {
            let a = leg_id(i - 1);
            w.handle_command(t0, Command::Bridge { a, b: id });
        }
        while ev_rx.try_recv().is_ok() {}
    }
    let legs_up = w.relay().stats().legs;
    ensure!(legs_up == legs, "only {legs_up} of {legs} legs");
    Ok((w, cmd_tx, ev_rx))
}

/// The traffic source: keeps ring 0 fed and recycles each frame that comes back on ring 1
/// by rewriting its header line with the next leg's pre-built frame (round-robin over legs).
struct Generator {
    tx: TxQueue,
    rx: RxQueue,
    b: MBurst<GEN_BURST>,
    pool: Mempool,
    frames: Arc<Vec<[u8; FRAME_LEN]>>,
    inflight: u32,
    next: usize,
    /// Frames that came back (forwarded by the worker).
    back: u64,
}

impl Generator {
    fn new(
        tx: TxQueue,
        rx: RxQueue,
        pool: Mempool,
        frames: Arc<Vec<[u8; FRAME_LEN]>>,
        inflight: u32,
    ) -> Self {
        Self {
            tx,
            rx,
            b: MBurst::new(),
            pool,
            frames,
            inflight,
            next: 0,
            back: 0,
        }
    }

    /// One step: take back what returned (or, when nothing did, allocate up to `inflight`
    /// frames), rewrite them, send them. Returns how many came back.
    fn step(&mut self) -> anyhow::Result<usize> {
        let had = self.b.len();
        let got = self.rx.rx_burst(&mut self.b);
        let fresh = got == 0;
        if got > 0 {
            self.back += got as u64;
        } else {
            while !self.b.is_full() && self.pool.in_use() < self.inflight {
                let Some(m) = self.pool.alloc() else { break };
                if self.b.push(m).is_err() {
                    break;
                }
            }
        }
        let n = self.frames.len();
        for m in &mut self.b.as_mut_slice()[had..] {
            m.reset();
            let d = m.append(FRAME_LEN).context("mbuf room")?;
            let f = &self.frames[self.next];
            if fresh {
                d.copy_from_slice(f);
            } else {
                d[..HEADER_COPY].copy_from_slice(&f[..HEADER_COPY]);
            }
            self.next += 1;
            if self.next == n {
                self.next = 0;
            }
        }
        self.tx.tx_burst(&mut self.b);
        Ok(got)
    }

    /// Frees what it holds and gives the queues back.
    fn finish(mut self) -> (TxQueue, RxQueue) {
        self.b.clear();
        (self.tx, self.rx)
    }
}

/// Queue handles shared between runs (each run's threads take and return them).
struct Queues {
    rx0: Option<RxQueue>,
    tx0: Option<TxQueue>,
    rx1: Option<RxQueue>,
    tx1: Option<TxQueue>,
}

fn drain(q: &mut RxQueue) {
    let mut b = MBurst::<64>::new();
    while q.rx_burst(&mut b) > 0 {
        b.clear();
    }
}

fn run(
    args: &Args,
    legs: usize,
    pool: &Mempool,
    our_mac: Address,
    queues: &Arc<Mutex<Queues>>,
) -> anyhow::Result<RunResult> {
    ensure!(
        (2..=MAX_LEGS).contains(&legs) && legs & 1 == 0,
        "legs must be even, 2..={MAX_LEGS}"
    );
    if args.interleaved {
        return run_interleaved(args, legs, pool, our_mac, queues);
    }
    let frames: Arc<Vec<[u8; FRAME_LEN]>> = Arc::new(
        (0..legs)
            .map(|i| frame(i, our_mac, args.assume_offload))
            .collect(),
    );
    let stop_worker = Arc::new(AtomicBool::new(false));
    let stop_gen = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let shared = Arc::new(SharedStats::default());
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<anyhow::Result<String>>(1);

    // The worker: the real loop over DpdkIo.
    let (rxq, txq) = {
        let mut q = queues.lock().expect("queues");
        (q.rx0.take().context("rx0")?, q.tx1.take().context("tx1")?)
    };
    let (w_pool, w_stop, w_shared) = (pool.clone(), stop_worker.clone(), shared.clone());
    let busy_ticks = Arc::new(AtomicU64::new(0));
    let busy_pkts = Arc::new(AtomicU64::new(0));
    let (w_busy, w_pkts) = (busy_ticks.clone(), busy_pkts.clone());
    let (burst, worker_core, floor) = (args.burst, args.worker_core, args.floor);
    let offload = TxOffload {
        ipv4_checksum: args.assume_offload,
        udp_checksum: args.assume_offload,
    };
    let worker = std::thread::Builder::new()
        .name("cb-perf-worker".into())
        .spawn(move || -> anyhow::Result<()> {
            pin(worker_core, "worker");
            let reg = lcore::register_thread().context("register worker thread")?;
            if floor {
                // The harness floor: frames go straight from ring 0 to ring 1, their header
                // line read once (as any forwarder must), nothing else.
                let (mut rxq, mut txq) = (rxq, txq);
                let mut b = MBurst::<32>::new();
                let task = std::fs::read_link("/proc/thread-self")
                    .map(|p| format!("/proc/{}/stat", p.display()))
                    .unwrap_or_default();
                let _ = ready_tx.send(Ok(task));
                let (mut busy, mut pkts, mut touched) = (0u64, 0u64, 0u8);
                while !w_stop.load(Ordering::Relaxed) {
                    let t = lcore::rdtsc();
                    let n = rxq.rx_burst(&mut b);
                    for m in b.iter() {
                        touched ^= m.data().first().copied().unwrap_or(0);
                    }
                    txq.tx_burst(&mut b);
                    b.clear();
                    if n > 0 {
                        busy += lcore::rdtsc() - t;
                        pkts += n as u64;
                        w_busy.store(busy, Ordering::Relaxed);
                        w_pkts.store(pkts, Ordering::Relaxed);
                    }
                }
                std::hint::black_box(touched);
                drop(reg);
                return Ok(());
            }
            let built = build_worker(rxq, txq, w_pool, our_mac, offload, legs, burst, w_stop, reg);
            let (mut w, cmd_tx, ev_rx) = match built {
                Ok((w, c, e)) => (w.with_shared_stats(w_shared), c, e),
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Ok(());
                }
            };
            let task = std::fs::read_link("/proc/thread-self")
                .map(|p| format!("/proc/{}/stat", p.display()))
                .unwrap_or_default();
            let _ = ready_tx.send(Ok(task));
            // The loop of `Worker::run`, plus TSC accounting of the passes that moved packets
            // (cmd_tx stays alive: a closed command queue would stop the worker).
            let (mut busy, mut pkts, mut passes) = (0u64, 0u64, 0u32);
            while !w.stopping() {
                let t = lcore::rdtsc();
                let p = w.pass_with(None, DpdkIo::now);
                if p.rx > 0 {
                    busy += lcore::rdtsc() - t;
                    pkts += p.rx as u64;
                }
                passes = passes.wrapping_add(1);
                if passes & 0x3ff == 0 {
                    w_busy.store(busy, Ordering::Relaxed);
                    w_pkts.store(pkts, Ordering::Relaxed);
                }
            }
            w.close_all();
            drop(cmd_tx);
            drop(ev_rx);
            drop(w);
            Ok(())
        })
        .context("spawn worker")?;
    let worker_stat = ready_rx.recv().context("worker died during set-up")??;

    // The generator: keeps ring 0 full, recycles what comes back on ring 1.
    let (gtx, grx) = {
        let mut q = queues.lock().expect("queues");
        (q.tx0.take().context("tx0")?, q.rx1.take().context("rx1")?)
    };
    let (g_pool, g_stop, g_received, g_queues, g_frames) = (
        pool.clone(),
        stop_gen.clone(),
        received.clone(),
        queues.clone(),
        frames.clone(),
    );
    let (generator_core, inflight) = (args.generator_core, args.inflight);
    let generator = std::thread::Builder::new()
        .name("cb-perf-gen".into())
        .spawn(move || -> anyhow::Result<()> {
            pin(generator_core, "generator");
            let _reg = lcore::register_thread().context("register generator thread")?;
            let mut g = Generator::new(gtx, grx, g_pool, g_frames, inflight);
            while !g_stop.load(Ordering::Relaxed) {
                if g.step()? > 0 {
                    g_received.store(g.back, Ordering::Relaxed);
                }
            }
            let (gtx, grx) = g.finish();
            let mut q = g_queues.lock().expect("queues");
            q.tx0 = Some(gtx);
            q.rx1 = Some(grx);
            Ok(())
        })
        .context("spawn generator")?;

    // Warm up, then measure `runs` windows, sampling every 100 ms.
    std::thread::sleep(Duration::from_millis(500));
    let mut samples = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).context("histogram")?;
    let mut mpps = Vec::with_capacity(args.runs);
    let mut mpps_cpu = Vec::with_capacity(args.runs);
    let mut mpps_busy = Vec::with_capacity(args.runs);
    let hz = lcore::tsc_hz() as f64;
    for _ in 0..args.runs {
        let c0 = cpu_seconds(&worker_stat);
        let (b0, p0) = (
            busy_ticks.load(Ordering::Relaxed),
            busy_pkts.load(Ordering::Relaxed),
        );
        let (t0, r0) = (Instant::now(), received.load(Ordering::Relaxed));
        let end = t0 + Duration::from_secs_f64(args.seconds);
        let (mut ts, mut rs) = (t0, r0);
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
            let (t, r) = (Instant::now(), received.load(Ordering::Relaxed));
            let kpps = (r - rs) as f64 / t.duration_since(ts).as_secs_f64() / 1e3;
            samples.saturating_record((kpps as u64).max(1));
            (ts, rs) = (t, r);
        }
        let (t1, r1) = (Instant::now(), received.load(Ordering::Relaxed));
        let c1 = cpu_seconds(&worker_stat);
        let (b1, p1) = (
            busy_ticks.load(Ordering::Relaxed),
            busy_pkts.load(Ordering::Relaxed),
        );
        if b1 > b0 && hz > 0.0 {
            mpps_busy.push((p1 - p0) as f64 / ((b1 - b0) as f64 / hz) / 1e6);
        }
        mpps.push((r1 - r0) as f64 / t1.duration_since(t0).as_secs_f64() / 1e6);
        if let (Some(c0), Some(c1)) = (c0, c1) {
            if c1 > c0 {
                mpps_cpu.push((r1 - r0) as f64 / (c1 - c0) / 1e6);
            }
        }
    }
    // Worker first, so the generator still drains what it sends last.
    stop_worker.store(true, Ordering::Relaxed);
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("worker panicked"))??;
    stop_gen.store(true, Ordering::Relaxed);
    generator
        .join()
        .map_err(|_| anyhow::anyhow!("generator panicked"))??;
    // The worker's queues are free again: empty both rings for the next run.
    {
        let mut q = queues.lock().expect("queues");
        let mut rx0 = take_rx0()?;
        drain(&mut rx0);
        if let Some(rx1) = q.rx1.as_mut() {
            drain(rx1);
        }
        q.rx0 = Some(rx0);
    }
    Ok(RunResult {
        legs,
        mpps,
        mpps_cpu,
        mpps_busy,
        samples,
        sample_label: "kpps/100ms",
        worker: shared.load(),
    })
}

/// What forwards in an interleaved run: the real worker, or the harness floor.
enum Forwarder {
    Relay {
        w: Box<Worker<DpdkIo>>,
        _cmd: crossbeam_channel::Sender<Command>,
        _ev: crossbeam_channel::Receiver<dp_api::Event>,
    },
    Floor {
        rx: RxQueue,
        tx: TxQueue,
        b: Box<MBurst<32>>,
        _reg: Option<ThreadRegistration>,
    },
}

impl Forwarder {
    /// One pass; returns the frames received.
    #[inline]
    fn pass(&mut self) -> usize {
        match self {
            Self::Relay { w, .. } => w.pass_with(None, DpdkIo::now).rx,
            Self::Floor { rx, tx, b, .. } => {
                let n = rx.rx_burst(&mut **b);
                let mut touched = 0u8;
                for m in b.iter() {
                    touched ^= m.data().first().copied().unwrap_or(0);
                }
                std::hint::black_box(touched);
                tx.tx_burst(&mut **b);
                b.clear();
                n
            }
        }
    }
}

/// [`run`] with generator and worker interleaved on one core (`--interleaved`).
fn run_interleaved(
    args: &Args,
    legs: usize,
    pool: &Mempool,
    our_mac: Address,
    queues: &Arc<Mutex<Queues>>,
) -> anyhow::Result<RunResult> {
    let frames: Arc<Vec<[u8; FRAME_LEN]>> = Arc::new(
        (0..legs)
            .map(|i| frame(i, our_mac, args.assume_offload))
            .collect(),
    );
    let (rxq, txq, gtx, grx) = {
        let mut q = queues.lock().expect("queues");
        (
            q.rx0.take().context("rx0")?,
            q.tx1.take().context("tx1")?,
            q.tx0.take().context("tx0")?,
            q.rx1.take().context("rx1")?,
        )
    };
    let offload = TxOffload {
        ipv4_checksum: args.assume_offload,
        udp_checksum: args.assume_offload,
    };
    let (pool, burst, core, floor) = (pool.clone(), args.burst, args.worker_core, args.floor);
    let (runs, seconds, inflight) = (args.runs, args.seconds, args.inflight);
    let shared = Arc::new(SharedStats::default());
    let w_shared = shared.clone();
    let t = std::thread::Builder::new()
        .name("cb-perf-worker".into())
        .spawn(move || -> anyhow::Result<RunResult> {
            pin(core, "interleaved generator and worker");
            let reg = lcore::register_thread().context("register worker thread")?;
            let mut fwd = if floor {
                Forwarder::Floor {
                    rx: rxq,
                    tx: txq,
                    b: Box::new(MBurst::new()),
                    _reg: reg,
                }
            } else {
                let stop = Arc::new(AtomicBool::new(false));
                let (w, cmd, ev) = build_worker(
                    rxq,
                    txq,
                    pool.clone(),
                    our_mac,
                    offload,
                    legs,
                    burst,
                    stop,
                    reg,
                )?;
                Forwarder::Relay {
                    w: Box::new(w.with_shared_stats(w_shared)),
                    _cmd: cmd,
                    _ev: ev,
                }
            };
            let mut g = Generator::new(gtx, grx, pool, frames, inflight);
            let hz = lcore::tsc_hz().max(1) as f64;
            let warm = Instant::now() + Duration::from_millis(500);
            while Instant::now() < warm {
                for _ in 0..64 {
                    g.step()?;
                    fwd.pass();
                }
            }
            let mut samples =
                Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).context("histogram")?;
            let (mut mpps, mut mpps_busy) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                let (t0, back0) = (Instant::now(), g.back);
                let end = t0 + Duration::from_secs_f64(seconds);
                let (mut busy, mut pkts) = (0u64, 0u64);
                while Instant::now() < end {
                    for _ in 0..64 {
                        g.step()?;
                        let t = lcore::rdtsc();
                        let n = fwd.pass();
                        let dt = lcore::rdtsc().wrapping_sub(t);
                        if n > 0 {
                            busy += dt;
                            pkts += n as u64;
                            if n == burst {
                                let ns = dt as f64 * 1e9 / hz / n as f64;
                                samples.saturating_record((ns as u64).max(1));
                            }
                        }
                    }
                }
                let secs = t0.elapsed().as_secs_f64();
                mpps.push((g.back - back0) as f64 / secs / 1e6);
                if busy > 0 {
                    mpps_busy.push(pkts as f64 / (busy as f64 / hz) / 1e6);
                }
            }
            // Let the last frames come back, then give the generator's queues back (the
            // worker's are retaken from the port).
            for _ in 0..64 {
                g.step()?;
                fwd.pass();
            }
            if let Forwarder::Relay { w, .. } = &mut fwd {
                w.close_all();
            }
            let floor_queues = match fwd {
                Forwarder::Floor { rx, tx, .. } => Some((rx, tx)),
                Forwarder::Relay { .. } => None,
            };
            let (gtx, grx) = g.finish();
            INTERLEAVED_QUEUES
                .lock()
                .expect("queues")
                .replace((gtx, grx, floor_queues));
            Ok(RunResult {
                legs,
                mpps,
                mpps_cpu: Vec::new(),
                mpps_busy,
                samples,
                sample_label: "ns/pkt/pass",
                worker: WorkerSnapshot::default(),
            })
        })
        .context("spawn interleaved worker")?;
    let mut r = t
        .join()
        .map_err(|_| anyhow::anyhow!("interleaved worker panicked"))??;
    r.worker = shared.load();
    let (gtx, grx, fq) = INTERLEAVED_QUEUES
        .lock()
        .expect("queues")
        .take()
        .context("queues back")?;
    let mut q = queues.lock().expect("queues");
    q.tx0 = Some(gtx);
    q.rx1 = Some(grx);
    let (mut rx0, tx1) = match fq {
        Some((rx, tx)) => (rx, tx),
        None => (take_rx0()?, take_tx1()?),
    };
    drain(&mut rx0);
    if let Some(rx1) = q.rx1.as_mut() {
        drain(rx1);
    }
    q.rx0 = Some(rx0);
    q.tx1 = Some(tx1);
    Ok(r)
}

/// Queue handles an interleaved run's thread hands back (generator TX/RX, and the floor's).
#[allow(clippy::type_complexity)]
static INTERLEAVED_QUEUES: Mutex<Option<(TxQueue, RxQueue, Option<(RxQueue, TxQueue)>)>> =
    Mutex::new(None);

/// The worker's RX queue 0 handle, retaken from the port after the worker dropped it.
fn take_rx0() -> anyhow::Result<RxQueue> {
    PORT.lock()
        .expect("port")
        .as_ref()
        .context("port")?
        .rx_queue(0)
        .context("rx queue 0")
}

/// The worker's TX queue 1 handle, retaken likewise.
fn take_tx1() -> anyhow::Result<TxQueue> {
    PORT.lock()
        .expect("port")
        .as_ref()
        .context("port")?
        .tx_queue(1)
        .context("tx queue 1")
}

static PORT: Mutex<Option<Port>> = Mutex::new(None);

/// A thread's user+system CPU time from `/proc/<pid>/task/<tid>/stat` (USER_HZ = 100).
fn cpu_seconds(stat: &str) -> Option<f64> {
    let s = std::fs::read_to_string(stat).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm) ": state is field 3, utime 14, stime 15 → indexes 11 and 12 here.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return 0.0;
    }
    s[s.len() / 2]
}

/// Runs testpmd io forwarding on two net_null ports with one forwarding core; returns the
/// median of its per-second forwarded packets (Rx-pps of both ports summed), in Mpps.
fn testpmd(args: &Args) -> anyhow::Result<f64> {
    let prefix = format!("cbtpmd{}", std::process::id());
    let cores = format!("{},{}", args.generator_core, args.worker_core);
    let mut child = Proc::new(&args.testpmd)
        .args([
            "-l",
            &cores,
            "--no-huge",
            "-m",
            "512",
            "--no-pci",
            "--vdev",
            "net_null0",
            "--vdev",
            "net_null1",
            "--file-prefix",
            &prefix,
            "--log-level",
            "lib.eal:warning",
            "--",
            "--forward-mode=io",
            "--stats-period",
            "1",
            "--nb-cores=1",
            "--burst=32",
            "--total-num-mbufs=16384",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", args.testpmd))?;
    let stdout = child.stdout.take().context("testpmd stdout")?;
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().expect("lines").push(l);
        }
    });
    std::thread::sleep(Duration::from_secs(args.testpmd_seconds));
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    let lines = lines.lock().expect("lines");
    let pps: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("Rx-pps:"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    if pps.len() < 6 {
        bail!(
            "testpmd printed too few stats ({} Rx-pps lines); its output:\n{}",
            pps.len(),
            lines.join("\n")
        );
    }
    // Two ports per period; drop the first two periods (start-up).
    let per_period: Vec<f64> = pps
        .chunks_exact(2)
        .skip(2)
        .map(|c| (c[0] + c[1]) as f64 / 1e6)
        .collect();
    Ok(median(&per_period))
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
