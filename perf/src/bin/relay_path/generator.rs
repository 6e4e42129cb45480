//! The traffic generator: one thread, in the generator's namespace (`setns`), pinned to its
//! own core, one UDP socket. Each trial sends 172-byte RTP round-robin over the calls' relay
//! addresses at a fixed rate (`sendmmsg`, up to 64 per call), drains what comes back
//! (`recvmmsg`), and measures loss and latency. Every packet carries the trial's tag and its
//! send time, so leftovers of an earlier trial are counted apart and never as this one's.

use std::fs::File;
use std::io::IoSliceMut;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use crossbeam_channel::{bounded, Receiver, Sender};
use hdrhistogram::Histogram;
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{
    recvmmsg, sendmmsg, setsockopt, sockopt, ControlMessage, MsgFlags, MultiHeaders, SockaddrIn,
};
use serde_json::{json, Value};

/// RTP packet size (G.711, 20 ms: 12-byte header + 160 bytes).
pub(crate) const RTP_LEN: usize = 172;
const BATCH: usize = 64;
const MAGIC: [u8; 4] = *b"CBrp";

/// One trial: `rate` packets per second for `secs` to `targets` (round-robin), then up to
/// `drain` waiting for the rest.
#[derive(Debug, Clone)]
pub(crate) struct Trial {
    /// Distinguishes this trial's packets from any earlier one's.
    pub(crate) tag: u32,
    /// Packets per second.
    pub(crate) rate: u64,
    /// Sending time.
    pub(crate) secs: f64,
    /// How long to wait for stragglers after sending stops.
    pub(crate) drain: Duration,
    /// Each call's relay address (the A leg's port).
    pub(crate) targets: Arc<Vec<SocketAddrV4>>,
}

/// What one trial measured.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// The trial's tag.
    pub(crate) tag: u32,
    /// Asked rate.
    pub(crate) rate: u64,
    /// Packets sent.
    pub(crate) sent: u64,
    /// This trial's packets received back.
    pub(crate) received: u64,
    /// Packets of earlier trials received (discarded).
    pub(crate) stale: u64,
    /// Packets the kernel refused to send (counted neither as sent nor as lost).
    pub(crate) send_refused: u64,
    /// Sent per second of sending time.
    pub(crate) sent_pps: f64,
    /// Fraction of the sending time the generator's core spent in send/receive work.
    pub(crate) load: f64,
    /// Latency histogram (µs).
    pub(crate) hist: Histogram<u64>,
}

impl Outcome {
    /// Lost packets (percent of sent).
    #[must_use]
    pub(crate) fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            return 100.0;
        }
        100.0 * self.sent.saturating_sub(self.received) as f64 / self.sent as f64
    }

    /// Latency at quantile `q` in µs (`None` if nothing came back).
    #[must_use]
    pub(crate) fn us(&self, q: f64) -> Option<u64> {
        (!self.hist.is_empty()).then(|| self.hist.value_at_quantile(q))
    }

    /// The trial as JSON.
    #[must_use]
    pub(crate) fn json(&self) -> Value {
        json!({
            "tag": self.tag,
            "rate_pps": self.rate,
            "sent": self.sent,
            "received": self.received,
            "stale_discarded": self.stale,
            "send_refused": self.send_refused,
            "sent_pps": self.sent_pps.round(),
            "loss_pct": self.loss_pct(),
            "p50_us": self.us(0.5),
            "p99_us": self.us(0.99),
            "p999_us": self.us(0.999),
            "max_us": (!self.hist.is_empty()).then(|| self.hist.max()),
            "generator_core_load": (self.load * 1000.0).round() / 1000.0,
        })
    }
}

/// The generator thread's handle.
#[derive(Debug)]
pub(crate) struct Generator {
    trials: Sender<Trial>,
    outcomes: Receiver<anyhow::Result<Outcome>>,
    /// The generator's socket address.
    pub(crate) local: SocketAddrV4,
}

impl Generator {
    /// Starts the thread: enters `netns` (a `/var/run/netns/<name>` path), pins to `core`,
    /// binds `local`.
    ///
    /// # Errors
    /// If the thread cannot enter the namespace or bind.
    pub(crate) fn start(netns: PathBuf, core: usize, local: SocketAddrV4) -> anyhow::Result<Self> {
        let (ttx, trx) = bounded::<Trial>(1);
        let (otx, orx) = bounded(1);
        let (ready_tx, ready_rx) = bounded::<anyhow::Result<()>>(1);
        std::thread::Builder::new()
            .name("relay-path-gen".into())
            .spawn(move || {
                let sock = match open(&netns, core, local) {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let epoch = Instant::now();
                while let Ok(t) = trx.recv() {
                    if otx.send(run(&sock, epoch, &t)).is_err() {
                        break;
                    }
                }
            })?;
        ready_rx.recv().context("generator thread died")??;
        Ok(Self {
            trials: ttx,
            outcomes: orx,
            local,
        })
    }

    /// Runs one trial (blocking).
    ///
    /// # Errors
    /// If the generator failed.
    pub(crate) fn trial(&self, t: Trial) -> anyhow::Result<Outcome> {
        self.trials.send(t).context("generator gone")?;
        self.outcomes.recv().context("generator gone")?
    }
}

fn open(netns: &PathBuf, core: usize, local: SocketAddrV4) -> anyhow::Result<UdpSocket> {
    let f = File::open(netns).with_context(|| format!("opening {}", netns.display()))?;
    setns(&f, CloneFlags::CLONE_NEWNET).context("setns into the generator's namespace")?;
    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        bail!("could not pin the generator to core {core}");
    }
    let tid = nix::unistd::gettid().to_string();
    crate::netns::set_priority(&tid)?;
    let sock = UdpSocket::bind(SocketAddr::V4(local))
        .with_context(|| format!("generator bind {local}"))?;
    sock.set_nonblocking(true)?;
    let _ = setsockopt(&sock, sockopt::RcvBufForce, &(16 << 20));
    let _ = setsockopt(&sock, sockopt::SndBufForce, &(4 << 20));
    Ok(sock)
}

fn stamp(buf: &mut [u8; RTP_LEN], call: usize, seq: u64, tag: u32, t_ns: u64) {
    buf[0] = 0x80;
    buf[1] = 8; // PCMA
    buf[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
    buf[4..8].copy_from_slice(&((seq as u32).wrapping_mul(160)).to_be_bytes());
    buf[8..12].copy_from_slice(&(call as u32).to_be_bytes());
    buf[12..16].copy_from_slice(&MAGIC);
    buf[16..20].copy_from_slice(&tag.to_be_bytes());
    buf[20..28].copy_from_slice(&t_ns.to_be_bytes());
}

fn run(sock: &UdpSocket, epoch: Instant, t: &Trial) -> anyhow::Result<Outcome> {
    if t.targets.is_empty() {
        bail!("no targets");
    }
    let fd = sock.as_raw_fd();
    let addrs: Vec<SockaddrIn> = t.targets.iter().map(|a| SockaddrIn::from(*a)).collect();
    let mut txh = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    let mut rxh = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    let mut txb = vec![[0u8; RTP_LEN]; BATCH];
    let mut rxb = vec![[0u8; 256]; BATCH];
    let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
    let (mut sent, mut received, mut stale, mut refused) = (0u64, 0u64, 0u64, 0u64);
    let mut next_call = 0usize;
    let mut busy = Duration::ZERO;
    let start = Instant::now();
    let send_for = Duration::from_secs_f64(t.secs);
    let mut seq = 0u64;
    let recv_all = |rxb: &mut Vec<[u8; 256]>,
                    rxh: &mut MultiHeaders<SockaddrIn>,
                    received: &mut u64,
                    stale: &mut u64,
                    hist: &mut Histogram<u64>|
     -> usize {
        let mut total = 0;
        loop {
            let mut lens = [0usize; BATCH];
            let got = {
                let mut iovs: Vec<[IoSliceMut<'_>; 1]> = rxb
                    .iter_mut()
                    .map(|b| [IoSliceMut::new(&mut b[..])])
                    .collect();
                match recvmmsg(fd, rxh, iovs.iter_mut(), MsgFlags::MSG_DONTWAIT, None) {
                    Ok(res) => {
                        let mut k = 0;
                        for m in res {
                            lens[k] = m.bytes;
                            k += 1;
                        }
                        k
                    }
                    Err(_) => 0,
                }
            };
            if got == 0 {
                return total;
            }
            let now_ns = epoch.elapsed().as_nanos() as u64;
            for (b, &len) in rxb.iter().zip(&lens).take(got) {
                if len < 28 || b[12..16] != MAGIC {
                    *stale += 1;
                    continue;
                }
                if u32::from_be_bytes([b[16], b[17], b[18], b[19]]) != t.tag {
                    *stale += 1;
                    continue;
                }
                let ts = u64::from_be_bytes(b[20..28].try_into().unwrap_or_default());
                let us = now_ns.saturating_sub(ts) / 1000;
                let _ = hist.record(us.clamp(1, 120_000_000));
                *received += 1;
            }
            total += got;
            if got < BATCH {
                return total;
            }
        }
    };
    loop {
        let t0 = Instant::now();
        let el = t0.duration_since(start);
        if el >= send_for {
            break;
        }
        let due = (el.as_secs_f64() * t.rate as f64) as u64;
        let mut did = 0;
        let want = due.saturating_sub(sent + refused).min(BATCH as u64) as usize;
        if want > 0 {
            let now_ns = epoch.elapsed().as_nanos() as u64;
            let mut dst = Vec::with_capacity(want);
            for b in txb.iter_mut().take(want) {
                stamp(b, next_call, seq, t.tag, now_ns);
                seq += 1;
                dst.push(Some(addrs[next_call]));
                next_call = (next_call + 1) % addrs.len();
            }
            let iovs: Vec<[std::io::IoSlice<'_>; 1]> = txb
                .iter()
                .take(want)
                .map(|b| [std::io::IoSlice::new(&b[..])])
                .collect();
            let cm: [ControlMessage<'_>; 0] = [];
            let n = match sendmmsg(fd, &mut txh, iovs.iter(), &dst, cm, MsgFlags::MSG_DONTWAIT) {
                Ok(r) => r.count(),
                Err(_) => 0,
            };
            sent += n as u64;
            // A full socket buffer: the rest of this batch is not sent (and not lost).
            refused += (want - n) as u64;
            did += want;
        }
        did += recv_all(&mut rxb, &mut rxh, &mut received, &mut stale, &mut hist);
        if did > 0 {
            busy += t0.elapsed();
        } else {
            // Idle: leave the core to the kernel's own threads (softirq, RCU) when the next
            // packet is not due for a while, instead of spinning (at SCHED_FIFO a spinning
            // generator would starve them). Receive timestamps may be late by up to the nap.
            let next = (sent + refused + 1) as f64 / t.rate as f64;
            let gap = next - el.as_secs_f64();
            if gap > 30e-6 {
                std::thread::sleep(Duration::from_secs_f64((gap - 10e-6).min(40e-6)));
            }
        }
    }
    let send_time = start.elapsed();
    let end = Instant::now() + t.drain;
    while Instant::now() < end && received < sent {
        if recv_all(&mut rxb, &mut rxh, &mut received, &mut stale, &mut hist) == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    Ok(Outcome {
        tag: t.tag,
        rate: t.rate,
        sent,
        received,
        stale,
        send_refused: refused,
        sent_pps: sent as f64 / send_time.as_secs_f64(),
        load: busy.as_secs_f64() / send_time.as_secs_f64(),
        hist,
    })
}
