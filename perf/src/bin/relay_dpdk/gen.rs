//! The generator process (`relay_dpdk --role gen`): the NIC side of the memif link.
//!
//! EAL on one core with the memif device as the server (`role=server`: it creates the
//! socket the relay or testpmd connects to). Closed loop: at most `--inflight` frames are out
//! at a time; each returned frame is counted, its send timestamp (TSC, same core) read into
//! the latency histogram, and it is recycled as the next leg's frame (header line rewritten,
//! new timestamp), round-robin over all legs. When nothing has come back for 100 ms, what is
//! out counts as lost and frees its in-flight slots (frames are only late when a process is
//! descheduled: the memif rings hold 1024 frames, more than are ever in flight).
//!
//! Protocol: prints `listening` once the device exists; waits for `go` on stdin; waits for
//! the link; warms up; then for each window prints `window-start I` and
//! `window-end I MPPS FRAMES`; finally `result {json}` (windows, latency percentiles in ns, counts).

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use callbridge_perf::dpdkgen::{self as g, Templates, FRAME_LEN, HEADER_LEN};
use dpdk::{lcore, Burst, Mempool, RxQueue, TxQueue};
use hdrhistogram::Histogram;
use serde_json::json;

use crate::{pin, Args};

const BURST: usize = 32;

/// Runs the generator process to its end.
pub(crate) fn main(args: &Args) -> anyhow::Result<()> {
    let socket = args.socket.as_deref().context("--socket")?;
    let legs = args.legs.first().copied().context("--legs")?;
    let prefix = args.file_prefix.clone().context("--file-prefix")?;
    crate::with_memif_eal(args.generator_core, "server", socket, prefix, || {
        pin(args.generator_core, "generator");
        run(args, legs)
    })
}

fn run(args: &Args, legs: usize) -> anyhow::Result<()> {
    let crate::MemifPort {
        pool,
        mut port,
        rxq,
        txq,
    } = crate::memif_port("cbgen", 16383)?;
    port.start().context("start memif")?;
    let templates = Templates::new(legs, g::RELAY_MAC);
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    ensure!(line.trim() == "go", "expected 'go' on stdin, got {line:?}");

    let deadline = Instant::now() + Duration::from_secs(30);
    while !port.link().is_ok_and(|l| l.up) {
        if Instant::now() > deadline {
            bail!("memif link did not come up within 30 s (did the relay/testpmd connect?)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let hz = lcore::tsc_hz().max(1);
    let mut gen = Gen::new(rxq, txq, pool, templates, args.inflight, hz)?;
    // Wait for the first frame back (the forwarder may still be starting its loop).
    let first = Instant::now() + Duration::from_secs(10);
    while gen.back == 0 {
        if Instant::now() > first {
            bail!("no frame came back within 10 s of the link coming up");
        }
        gen.step();
    }
    crate::sched_fifo(args.fifo, args.fifo);
    run_for(&mut gen, Duration::from_secs_f64(args.warmup));
    gen.hist.reset();
    let (sent0, back0, lost0, bad0) = (gen.sent, gen.back, gen.lost, gen.bad);
    let mut windows = Vec::new();
    for w in 0..args.runs.unwrap_or(1) {
        writeln!(out, "window-start {w}")?;
        out.flush()?;
        let (t0, b0) = (Instant::now(), gen.back);
        run_for(&mut gen, Duration::from_secs_f64(args.seconds));
        let mpps = (gen.back - b0) as f64 / t0.elapsed().as_secs_f64() / 1e6;
        windows.push(mpps);
        writeln!(out, "window-end {w} {mpps} {}", gen.back - b0)?;
        out.flush()?;
    }
    // Let what is in flight come back.
    run_for(&mut gen, Duration::from_millis(20));
    crate::sched_fifo(None, args.fifo);
    let ns = |q: f64| gen.hist.value_at_quantile(q) as f64 * 1e9 / hz as f64;
    let res = json!({
        "mpps_windows": windows,
        "latency_ns": {
            "p50": ns(0.5), "p90": ns(0.9), "p99": ns(0.99), "p99_9": ns(0.999),
            "max": gen.hist.max() as f64 * 1e9 / hz as f64,
            "mean": gen.hist.mean() * 1e9 / hz as f64,
            "samples": gen.hist.len(),
        },
        "sent": gen.sent - sent0,
        "back": gen.back - back0,
        "lost": gen.lost - lost0,
        "bad_frames": gen.bad - bad0,
        "inflight": args.inflight,
    });
    writeln!(out, "result {res}")?;
    out.flush()?;
    Ok(())
}

fn run_for(gen: &mut Gen, d: Duration) {
    let end = lcore::rdtsc() + (d.as_secs_f64() * gen.hz as f64) as u64;
    while lcore::rdtsc() < end {
        for _ in 0..64 {
            gen.step();
        }
    }
}

/// The closed-loop traffic source.
struct Gen {
    rx: RxQueue,
    tx: TxQueue,
    pool: Mempool,
    b: Box<Burst<BURST>>,
    t: Templates,
    inflight: u64,
    next: usize,
    hz: u64,
    /// Latency in TSC ticks (send → back).
    hist: Histogram<u64>,
    sent: u64,
    back: u64,
    /// Frames given up on (not back within the loss timeout).
    lost: u64,
    /// Returned frames of the wrong length.
    bad: u64,
    last_rx: u64,
    loss_ticks: u64,
}

impl Gen {
    fn new(
        rx: RxQueue,
        tx: TxQueue,
        pool: Mempool,
        t: Templates,
        inflight: u32,
        hz: u64,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            rx,
            tx,
            pool,
            b: Box::new(Burst::new()),
            t,
            inflight: u64::from(inflight),
            next: 0,
            hz,
            hist: Histogram::new_with_bounds(1, hz.saturating_mul(10).max(2), 3)
                .context("histogram")?,
            sent: 0,
            back: 0,
            lost: 0,
            bad: 0,
            last_rx: lcore::rdtsc(),
            loss_ticks: hz / 10,
        })
    }

    /// One step: take back what returned, top up to the in-flight limit, (re)write and stamp
    /// the new frames, send.
    #[inline]
    fn step(&mut self) {
        let had = self.b.len();
        let got = self.rx.rx_burst(&mut *self.b);
        let now = lcore::rdtsc();
        if got > 0 {
            self.last_rx = now;
            self.back += got as u64;
            for m in &self.b.as_slice()[had..] {
                let d = m.data();
                if d.len() != FRAME_LEN {
                    self.bad += 1;
                }
                let ts = g::read_stamp(d);
                self.hist.saturating_record(now.wrapping_sub(ts).max(1));
            }
        }
        let out = self.sent.saturating_sub(self.back + self.lost);
        if got == 0 && out > 0 && now.wrapping_sub(self.last_rx) > self.loss_ticks {
            // Nothing back for 100 ms: what is out is lost.
            self.lost += out;
            self.last_rx = now;
        }
        let out = self.sent.saturating_sub(self.back + self.lost);
        let recycled = self.b.len();
        while !self.b.is_full() && out + (self.b.len() as u64) < self.inflight {
            let Some(m) = self.pool.alloc() else { break };
            if self.b.push(m).is_err() {
                break;
            }
        }
        let n = self.t.len();
        for (k, m) in self.b.as_mut_slice()[had..].iter_mut().enumerate() {
            let fresh = k + had >= recycled;
            m.reset();
            let Some(d) = m.append(FRAME_LEN) else {
                continue;
            };
            d[..HEADER_LEN].copy_from_slice(&self.t.headers[self.next]);
            if fresh {
                d[HEADER_LEN..].copy_from_slice(&self.t.tail);
            }
            g::stamp(d, now);
            self.next += 1;
            if self.next == n {
                self.next = 0;
            }
        }
        self.sent += self.tx.tx_burst(&mut *self.b) as u64;
    }
}
