//! One run with the generator and the worker interleaved on one core (`--interleaved`).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use dp_api::Command;
use dpdk::{lcore, Burst as MBurst, Mempool, RxQueue, ThreadRegistration, TxQueue};
use hdrhistogram::Histogram;
use wire::ethernet::Address;
use worker::dpdk_io::DpdkIo;
use worker::netstack::TxOffload;
use worker::{PacketIo, SharedStats, Worker, WorkerSnapshot};

use crate::legs::{build_worker, frame, FRAME_LEN};
use crate::queues::{drain, take_rx0, take_tx1, Generator, Queues, INTERLEAVED_QUEUES};
use crate::two_cores::{pin, RunResult};
use crate::Args;

/// What forwards in an interleaved run: the real worker, or the harness floor.
pub(crate) enum Forwarder {
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
/// The longest a `--packets` window may last.
const MAX_WINDOW: Duration = Duration::from_secs(600);

pub(crate) fn run_interleaved(
    args: &Args,
    legs: usize,
    pool: &Mempool,
    our_mac: Address,
    queues: &Arc<Mutex<Queues>>,
) -> anyhow::Result<RunResult> {
    let frames: Arc<Vec<[u8; FRAME_LEN]>> =
        Arc::new((0..legs).map(|i| frame(i, our_mac)).collect());
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
    let (runs, seconds, inflight, packets) = (args.runs, args.seconds, args.inflight, args.packets);
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
            let mut g = Generator::new(gtx, grx, pool, frames, inflight, offload.udp_checksum);
            let hz = lcore::tsc_hz().max(1) as f64;
            if packets.is_some() {
                // Warm-up by count: every leg seen at least once.
                let warm = (legs as u64).max(5_000);
                let mut steps = 0u64;
                while g.back < warm {
                    g.step()?;
                    fwd.pass();
                    steps += 1;
                    anyhow::ensure!(
                        steps < 100 * warm,
                        "warm-up: only {} frames came back",
                        g.back
                    );
                }
            } else {
                let warm = Instant::now() + Duration::from_millis(500);
                while Instant::now() < warm {
                    for _ in 0..64 {
                        g.step()?;
                        fwd.pass();
                    }
                }
            }
            let mut samples =
                Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).context("histogram")?;
            let (mut mpps, mut mpps_busy) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                let (t0, back0) = (Instant::now(), g.back);
                let end = t0 + Duration::from_secs_f64(seconds);
                let (mut busy, mut pkts) = (0u64, 0u64);
                let done = |g: &Generator| match packets {
                    // Bounded in time too, should frames stop coming back.
                    Some(n) => g.back - back0 >= n || t0.elapsed() > MAX_WINDOW,
                    None => Instant::now() >= end,
                };
                while !done(&g) {
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
            // The counters as they are now (the shared ones are published periodically).
            let mut exact = WorkerSnapshot::default();
            if let Forwarder::Relay { w, .. } = &mut fwd {
                w.close_all();
                exact = WorkerSnapshot {
                    relay: w.relay().stats(),
                    lp: w.stats(),
                    io: w.io().io_stats(),
                };
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
                worker: exact,
            })
        })
        .context("spawn interleaved worker")?;
    let mut r = t
        .join()
        .map_err(|_| anyhow::anyhow!("interleaved worker panicked"))??;
    if r.worker == WorkerSnapshot::default() {
        r.worker = shared.load();
    }
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
