//! One run with the generator and the worker on two cores of their own.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use dpdk::{lcore, Burst as MBurst, Mempool};
use hdrhistogram::Histogram;
use wire::ethernet::Address;
use worker::dpdk_io::DpdkIo;
use worker::netstack::TxOffload;
use worker::{PacketIo, SharedStats, WorkerSnapshot};

use crate::interleaved::run_interleaved;
use crate::legs::{build_worker, frame, FRAME_LEN, MAX_LEGS};
use crate::queues::{drain, take_rx0, Generator, Queues};
use crate::Args;

pub(crate) fn pin(core: usize, who: &str) {
    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        eprintln!("worker_ring: could not pin the {who} to core {core}");
    }
}

pub(crate) struct RunResult {
    pub(crate) legs: usize,
    /// Per window: forwarded frames per wall-clock second.
    pub(crate) mpps: Vec<f64>,
    /// Per window: forwarded frames per second of the worker thread's CPU time (what one
    /// core does when the machine also runs other things; busy polling counts as CPU).
    pub(crate) mpps_cpu: Vec<f64>,
    /// Per window: frames per second of TSC time spent in worker passes that received
    /// frames: the worker core's capacity when fed faster than it drains.
    pub(crate) mpps_busy: Vec<f64>,
    pub(crate) samples: Histogram<u64>,
    /// What `samples` holds.
    pub(crate) sample_label: &'static str,
    pub(crate) worker: WorkerSnapshot,
}

pub(crate) fn run(
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
    let frames: Arc<Vec<[u8; FRAME_LEN]>> =
        Arc::new((0..legs).map(|i| frame(i, our_mac)).collect());
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
            let mut g = Generator::new(gtx, grx, g_pool, g_frames, inflight, offload.udp_checksum);
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

/// A thread's user+system CPU time from `/proc/<pid>/task/<tid>/stat` (USER_HZ = 100).
pub(crate) fn cpu_seconds(stat: &str) -> Option<f64> {
    let s = std::fs::read_to_string(stat).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm) ": state is field 3, utime 14, stime 15 → indexes 11 and 12 here.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}
