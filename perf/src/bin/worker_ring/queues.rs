//! The traffic source and the queue handles the runs share.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use dpdk::{Burst as MBurst, Mempool, Port, RxCksum, RxQueue, TxQueue};

use crate::legs::{FRAME_LEN, GEN_BURST, HEADER_COPY};

/// The traffic source: keeps ring 0 fed and recycles each frame that comes back on ring 1
/// by rewriting its header line with the next leg's pre-built frame (round-robin over legs).
pub(crate) struct Generator {
    tx: TxQueue,
    rx: RxQueue,
    b: MBurst<GEN_BURST>,
    pool: Mempool,
    frames: Arc<Vec<[u8; FRAME_LEN]>>,
    inflight: u32,
    next: usize,
    /// Frames that came back (forwarded by the worker).
    pub(crate) back: u64,
    /// Set the mbufs' receive checksum flags to "good" (a NIC with receive checksum
    /// offload; `--assume-offload`).
    rx_cksum_good: bool,
}

impl Generator {
    pub(crate) fn new(
        tx: TxQueue,
        rx: RxQueue,
        pool: Mempool,
        frames: Arc<Vec<[u8; FRAME_LEN]>>,
        inflight: u32,
        rx_cksum_good: bool,
    ) -> Self {
        Self {
            rx_cksum_good,
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
    pub(crate) fn step(&mut self) -> anyhow::Result<usize> {
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
            if self.rx_cksum_good {
                m.set_rx_cksum(RxCksum::Good, RxCksum::Good);
            }
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
    pub(crate) fn finish(mut self) -> (TxQueue, RxQueue) {
        self.b.clear();
        (self.tx, self.rx)
    }
}

/// Queue handles shared between runs (each run's threads take and return them).
pub(crate) struct Queues {
    pub(crate) rx0: Option<RxQueue>,
    pub(crate) tx0: Option<TxQueue>,
    pub(crate) rx1: Option<RxQueue>,
    pub(crate) tx1: Option<TxQueue>,
}

pub(crate) fn drain(q: &mut RxQueue) {
    let mut b = MBurst::<64>::new();
    while q.rx_burst(&mut b) > 0 {
        b.clear();
    }
}

/// Queue handles an interleaved run's thread hands back (generator TX/RX, and the floor's).
#[allow(clippy::type_complexity)]
pub(crate) static INTERLEAVED_QUEUES: Mutex<
    Option<(TxQueue, RxQueue, Option<(RxQueue, TxQueue)>)>,
> = Mutex::new(None);

/// The worker's RX queue 0 handle, retaken from the port after the worker dropped it.
pub(crate) fn take_rx0() -> anyhow::Result<RxQueue> {
    PORT.lock()
        .expect("port")
        .as_ref()
        .context("port")?
        .rx_queue(0)
        .context("rx queue 0")
}

/// The worker's TX queue 1 handle, retaken likewise.
pub(crate) fn take_tx1() -> anyhow::Result<TxQueue> {
    PORT.lock()
        .expect("port")
        .as_ref()
        .context("port")?
        .tx_queue(1)
        .context("tx queue 1")
}

pub(crate) static PORT: Mutex<Option<Port>> = Mutex::new(None);
