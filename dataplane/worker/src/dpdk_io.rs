//! The DPDK backend (feature `dpdk`): one RX and one TX queue of one port per worker, the
//! worker's [`Netstack`] for L2/L3, mbufs as packet buffers.
//!
//! ```text
//!  rx_burst: RxQueue ─┬► frames ─► owner(dst port)? ─ other worker ─► its handoff ring (Share)
//!  handoff ring ──────┘                 │ this worker / not UDP
//!                                       ▼
//!                          netstack.handle_frame ─┬─ Udp   → adj(headers), trim(padding), append(SRTP room) → rx slot
//!                                                 ├─ Reply → TX now (ARP reply, echo reply)
//!                                                 └─ Drop/Consumed → free (counted)
//!  tx_burst: slot mbuf ─► trim(len) ─► prepend(HEADROOM) ─► netstack.encap ─┬─ Ready → TxQueue
//!                                                                          └─ NeedArp/NoRoute → free (counted),
//!                                                                             who-has out (rate-limited)
//! ```
//!
//! Busy-polls: the `wait` of [`PacketIo::rx_burst`] is ignored. Time is the TSC, read once per
//! burst ([`TscClock`], at the start of `rx_burst`; [`PacketIo::now`] and `tx_burst` reuse it). Housekeeping (neighbour timers, pending who-has) runs every
//! [`HOUSEKEEPING_PERIOD`] of TSC time; port counters are read when the worker publishes its
//! stats (every `PUBLISH_PERIOD`, and at shutdown). Nothing here allocates, locks or logs per packet.
//!
//! Ports are bookkeeping only ([`PacketIo::open_port`]): the NIC delivers every UDP datagram
//! for our address to this queue, and the relay counts datagrams to unknown ports.
//!
//! **Several workers on one port** (`workers > 1`): the port gets one queue
//! pair per worker and RSS where the device has it; flow rules steer each worker's UDP ports
//! to its queue where the device accepts them (`flow`, [`crate::steer`]). Every
//! worker also checks the destination port of each frame it receives and hands frames for
//! another worker's ports to that worker's ring ([`Share`]), so a frame the device put on the
//! wrong queue still reaches the only worker that has its leg. ARP and ICMP are answered by
//! whichever worker receives them; a neighbour learned from ARP is passed to the other workers
//! (an ARP reply reaches one queue only).
//!
//! This file holds the per-worker backend ([`DpdkIo`]: the burst path, the clock, the
//! handoff between workers); `setup` configures EAL and the port and starts the workers,
//! `flow` installs the steering rules.

mod flow;
mod receive;
mod setup;

pub use setup::{eal_runtime_dir, init_eal, port_by_name};
pub(crate) use setup::{start, Resources};

use std::io;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use dpdk::{
    lcore, mbuf_ring, Burst as MBurst, Mbuf, Mempool, Port, RingConsumer, RingProducer, RxOffloads,
    RxQueue, SocketId, ThreadRegistration, TxQueue,
};
use relay::Relay;
use wire::ethernet::Address;

use crate::steer::PortOwners;
use crate::WorkerError;

use crate::io::{Burst, LaneOut, Packet, PacketIo, MAX_BURST, MIN_TX_ROOM};
use crate::l3::{Sent, L3};
use crate::netstack::TxOffload;
use crate::stats::{IoStats, PortCounters};

/// How often the backend runs its housekeeping (TSC time).
pub const HOUSEKEEPING_PERIOD: Duration = Duration::from_millis(100);

/// A packet buffer of the DPDK backend: an mbuf, or nothing (a TX slot after transmit; the
/// backend refills it in [`PacketIo::prepare_tx`]). An empty slot reads as an empty slice.
#[derive(Debug, Default)]
pub struct DpdkBuf {
    /// The mbuf; its data is the UDP payload while the buffer is in a worker's burst.
    pub mbuf: Option<Mbuf>,
    /// Set on receive when the UDP checksum was verified in software: the payload length
    /// and the sum of the payload after its first [`crate::netstack::SUM_SKIP`] bytes (see
    /// [`Ingress::Udp`]), reused on transmit when the length is unchanged (the relay edits
    /// at most the RTP fixed header in place, unless it reports `payload_rewritten`: SRTP,
    /// G.711 law conversion; then [`PacketIo::payload_rewritten`] clears this).
    pub tail_sum: Option<(usize, u32)>,
}

impl AsRef<[u8]> for DpdkBuf {
    fn as_ref(&self) -> &[u8] {
        self.mbuf.as_ref().map_or(&[], Mbuf::data)
    }
}

impl AsMut<[u8]> for DpdkBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self.mbuf.as_mut().map_or(&mut [], Mbuf::data_mut)
    }
}

/// `Instant`s from the TSC: one `rdtsc` and a multiply per reading (no syscall, no vDSO).
#[derive(Debug, Clone, Copy)]
pub struct TscClock {
    base_tsc: u64,
    base: Instant,
    /// Nanoseconds per tick in 32.32 fixed point.
    ns_per_tick_q32: u128,
}

impl TscClock {
    /// A clock anchored now. Needs an initialised EAL (for the TSC frequency).
    #[must_use]
    pub fn new() -> Self {
        let hz = lcore::tsc_hz().max(1);
        Self {
            base_tsc: lcore::rdtsc(),
            base: Instant::now(),
            ns_per_tick_q32: (1_000_000_000u128 << 32) / u128::from(hz),
        }
    }

    /// The current time.
    #[inline]
    #[must_use]
    pub fn now(&self) -> Instant {
        let ticks = lcore::rdtsc().wrapping_sub(self.base_tsc);
        let ns = (u128::from(ticks) * self.ns_per_tick_q32) >> 32;
        self.base + Duration::from_nanos(ns as u64)
    }
}

impl Default for TscClock {
    fn default() -> Self {
        Self::new()
    }
}

/// One worker's DPDK backend. Build it on the worker's thread (it holds the thread's EAL
/// registration).
pub struct DpdkIo {
    rxq: RxQueue,
    txq: TxQueue,
    pool: Mempool,
    net: L3,
    offload: TxOffload,
    /// Receive checksum checks the port does (its mbufs' flags are trusted only then).
    rx_offload: RxOffloads,
    clock: TscClock,
    /// The TSC time read at the start of the last `rx_burst`: the burst's `now`, also
    /// returned by [`PacketIo::now`] and used by the following `tx_burst`.
    now: Instant,
    /// Frames from the queue (filled by `rx_burst`, drained at once).
    rxb: MBurst<MAX_BURST>,
    /// Frames received but not yet classified (the worker's burst was full).
    carry: MBurst<MAX_BURST>,
    /// Frames being transmitted.
    txb: MBurst<MAX_BURST>,
    /// The worker TX slot each `txb` entry came from.
    tx_slot: [u8; MAX_BURST],
    /// Frames the relay's fast lane forwards in this burst (see [`PacketIo::rx_burst_lane`]).
    lane_txb: MBurst<MAX_BURST>,
    /// Replies and ARP requests.
    ctl: MBurst<MAX_BURST>,
    /// Set when the port's counters are read by this worker.
    stats_port: Option<Arc<Port>>,
    backend_drops: u64,
    next_housekeeping: Instant,
    first_port: u16,
    /// Ports per media address (RTP and RTCP).
    ports_per_addr: usize,
    /// Indexed by `addr * ports_per_addr + port - first_port`.
    open: Vec<bool>,
    /// How many media addresses the port owns.
    addresses: usize,
    /// Set when several workers share the port.
    share: Option<Share>,
    _registration: Option<ThreadRegistration>,
}

/// A neighbour one worker learned from ARP or NDP, passed to the others on the same port.
pub type NeighbourNews = (IpAddr, [u8; 6]);

/// What one worker needs to share a port with others: who owns which UDP port, its handoff
/// inbox, the other workers' inboxes, and the neighbour news channels (see [`crate::steer`]).
///
/// Build one per worker with [`Share::for_workers`].
pub struct Share {
    me: usize,
    owners: PortOwners,
    inbox: RingConsumer,
    /// Index = worker; this worker's own entry is never used.
    outboxes: Vec<RingProducer>,
    /// Frames staged for each worker during one receive burst (allocated once).
    staged: Vec<MBurst<MAX_BURST>>,
    news_in: Receiver<NeighbourNews>,
    /// The other workers' news channels.
    news_out: Vec<Sender<NeighbourNews>>,
    handoff_out: u64,
    handoff_in: u64,
    handoff_drops: u64,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("me", &self.me)
            .field("owners", &self.owners)
            .field("handoff_out", &self.handoff_out)
            .field("handoff_in", &self.handoff_in)
            .field("handoff_drops", &self.handoff_drops)
            .finish_non_exhaustive()
    }
}

/// Neighbour news waiting per worker before older news is dropped (ARP is rare).
const NEWS_QUEUE: usize = 256;

impl Share {
    /// One [`Share`] per worker for `owners.workers()` workers, with handoff rings of `ring_size`
    /// frames (a power of two) on `socket`. `name` prefixes the rings' DPDK names (unique per
    /// start).
    ///
    /// # Errors
    /// The ring creation error.
    pub fn for_workers(
        owners: PortOwners,
        name: &str,
        ring_size: u32,
        socket: SocketId,
    ) -> Result<Vec<Self>, dpdk::DpdkError> {
        let n = owners.workers();
        let mut producers = Vec::with_capacity(n);
        let mut consumers = Vec::with_capacity(n);
        for w in 0..n {
            let (p, c) = mbuf_ring(&format!("{name}h{w}"), ring_size, socket)?;
            producers.push(p);
            consumers.push(c);
        }
        let (news_tx, news_rx): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| crossbeam_channel::bounded::<NeighbourNews>(NEWS_QUEUE))
            .unzip();
        Ok(consumers
            .into_iter()
            .zip(news_rx)
            .enumerate()
            .map(|(me, (inbox, news_in))| Self {
                me,
                owners,
                inbox,
                outboxes: producers.clone(),
                staged: (0..n).map(|_| MBurst::new()).collect(),
                news_in,
                news_out: news_tx
                    .iter()
                    .enumerate()
                    .filter(|&(w, _)| w != me)
                    .map(|(_, t)| t.clone())
                    .collect(),
                handoff_out: 0,
                handoff_in: 0,
                handoff_drops: 0,
            })
            .collect())
    }

    /// Sends every staged frame to its owner's inbox; frames that do not fit are dropped and
    /// counted.
    fn flush(&mut self) {
        for (w, staged) in self.staged.iter_mut().enumerate() {
            if staged.is_empty() {
                continue;
            }
            let moved = self.outboxes[w].enqueue_burst(staged);
            self.handoff_out += moved as u64;
            self.handoff_drops += staged.len() as u64;
            staged.clear();
        }
    }
}

impl std::fmt::Debug for DpdkIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkIo")
            .field("rxq", &self.rxq)
            .field("txq", &self.txq)
            .field("net", &self.net.addresses())
            .field("offload", &self.offload)
            .finish_non_exhaustive()
    }
}

impl DpdkIo {
    /// A backend on queues `rxq`/`txq`, allocating announcement and control frames from
    /// `pool`, running `net` (a [`NetConfig`](crate::netstack::NetConfig) for IPv4 or a
    /// [`NetConfig6`](crate::netstack6::NetConfig6) for IPv6), for the
    /// RTP ports `ports` (bookkeeping). `offload` must only claim what the
    /// port enabled ([`Port::tx_offloads`]). Pass `stats_port` to one worker per port so its
    /// counters appear in that worker's [`IoStats`].
    #[must_use]
    pub fn new(
        rxq: RxQueue,
        txq: TxQueue,
        pool: Mempool,
        net: impl Into<L3>,
        offload: TxOffload,
        ports: RangeInclusive<u16>,
        stats_port: Option<Arc<Port>>,
    ) -> Self {
        let clock = TscClock::new();
        let first_port = ports.start() & !1;
        let n = usize::from(ports.end().saturating_sub(first_port)) + 1;
        Self {
            rxq,
            txq,
            pool,
            net: net.into(),
            offload,
            rx_offload: RxOffloads::default(),
            clock,
            now: clock.now(),
            rxb: MBurst::new(),
            carry: MBurst::new(),
            txb: MBurst::new(),
            tx_slot: [0; MAX_BURST],
            lane_txb: MBurst::new(),
            ctl: MBurst::new(),
            stats_port,
            backend_drops: 0,
            next_housekeeping: clock.now(),
            first_port,
            ports_per_addr: n,
            open: vec![false; n],
            addresses: 1,
            share: None,
            _registration: None,
        }
    }

    /// Owns the further media addresses `extra` (media address 1, 2, …) on this port too
    /// (see [`Netstack::with_extra_addresses`]). Call once, at construction.
    #[must_use]
    pub fn with_extra_addresses(mut self, extra: &[IpAddr]) -> Self {
        self.net.add_addresses(extra);
        self.addresses = self.net.addresses().len();
        self.open = vec![false; self.ports_per_addr * self.addresses];
        self
    }

    /// Shares the port with other workers: frames for ports another worker owns are handed to
    /// it, frames handed to this worker are taken from its inbox, and neighbours learned from
    /// ARP are passed on (see [`Share`]).
    #[must_use]
    pub fn with_share(mut self, share: Share) -> Self {
        self.net.set_share_learned(true);
        self.share = Some(share);
        self
    }

    /// Takes the neighbours other workers learned and passes on those this one learned.
    fn exchange_news(&mut self, now: Instant) {
        let Some(sh) = self.share.as_mut() else {
            return;
        };
        while let Ok((ip, mac)) = sh.news_in.try_recv() {
            self.net.insert_neighbour(now, ip, Address(mac));
        }
        while let Some((ip, mac)) = self.net.take_learned() {
            for tx in &sh.news_out {
                // Full: that worker is far behind; it will ask ARP itself.
                let _ = tx.try_send((ip, mac.0));
            }
        }
    }

    /// Keeps the worker thread's EAL registration alive as long as the backend.
    #[must_use]
    pub fn with_registration(mut self, reg: Option<ThreadRegistration>) -> Self {
        self._registration = reg;
        self
    }

    /// Trusts the receive checksum verdicts in the mbufs' offload flags for the checks the
    /// port enabled ([`Port::rx_offloads`]): a datagram the device marked good is not summed
    /// again (its checksum is still reused on transmit, derived in O(1)); anything else
    /// (unknown, bad, "none") is verified in software. Without this call everything is.
    #[must_use]
    pub fn with_rx_offloads(mut self, rx: RxOffloads) -> Self {
        self.rx_offload = rx;
        self
    }

    /// The L2/L3 layer.
    #[must_use]
    pub fn l3(&self) -> &L3 {
        &self.net
    }

    /// Pre-loads a neighbour (benchmarks, static next hops).
    pub fn insert_neighbour(&mut self, now: Instant, ip: IpAddr, mac: Address) {
        self.net.insert_neighbour(now, ip, mac);
    }

    /// The backend's clock.
    #[must_use]
    pub fn clock(&self) -> TscClock {
        self.clock
    }

    fn housekeeping(&mut self, now: Instant) {
        if now < self.next_housekeeping {
            return;
        }
        self.next_housekeeping = now + HOUSEKEEPING_PERIOD;
        self.net.handle_timeout(now);
        self.send_arp_requests(now);
    }

    /// The port's counters now (when this worker reports them).
    fn port_counters(&self) -> PortCounters {
        let Some(Ok(s)) = self.stats_port.as_ref().map(|p| p.stats()) else {
            return PortCounters::default();
        };
        PortCounters {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }

    /// Emits every due who-has.
    fn send_arp_requests(&mut self, now: Instant) {
        while !self.ctl.is_full() {
            let Some(mut m) = self.pool.alloc() else {
                self.backend_drops += 1;
                break;
            };
            let Some(buf) = m.append(self.net.request_len()) else {
                break;
            };
            if self.net.poll_request(now, buf).is_none() {
                break;
            }
            if self.ctl.push(m).is_err() {
                break;
            }
        }
        self.flush_ctl();
    }

    fn flush_ctl(&mut self) {
        if self.ctl.is_empty() {
            return;
        }
        self.txq.tx_burst(&mut self.ctl);
        self.backend_drops += self.ctl.len() as u64;
        self.ctl.clear();
    }

    fn slot(&self, addr: u8, port: u16) -> Option<usize> {
        let i = usize::from(port.checked_sub(self.first_port)?);
        let a = usize::from(addr);
        (i < self.ports_per_addr && a < self.addresses).then_some(a * self.ports_per_addr + i)
    }
}

impl PacketIo for DpdkIo {
    type Buf = DpdkBuf;

    fn new_buf(&self) -> DpdkBuf {
        DpdkBuf::default()
    }

    fn now(&self) -> Instant {
        self.now
    }

    fn open_port(&mut self, addr: u8, rtp_port: u16) -> io::Result<()> {
        let Some(i) = self.slot(addr, rtp_port) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("port {rtp_port} of media address #{addr} is outside this worker's range"),
            ));
        };
        if std::mem::replace(&mut self.open[i], true) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("port {rtp_port} already open"),
            ));
        }
        Ok(())
    }

    fn close_port(&mut self, addr: u8, rtp_port: u16) {
        if let Some(i) = self.slot(addr, rtp_port) {
            self.open[i] = false;
        }
    }

    fn rx_burst(&mut self, rx: &mut Burst<DpdkBuf>, _wait: Option<Duration>) -> usize {
        self.receive(rx, None).0
    }

    fn rx_burst_lane(
        &mut self,
        rx: &mut Burst<DpdkBuf>,
        _wait: Option<Duration>,
        relay: &mut Relay,
    ) -> (usize, LaneOut) {
        self.receive(rx, Some(relay))
    }

    fn payload_rewritten(&self, buf: &mut DpdkBuf) {
        buf.tail_sum = None;
    }

    fn prepare_tx(&mut self, buf: &mut DpdkBuf) -> bool {
        buf.tail_sum = None;
        let m = match &mut buf.mbuf {
            Some(m) => m,
            None => match self.pool.alloc() {
                Some(m) => buf.mbuf.insert(m),
                None => {
                    self.backend_drops += 1;
                    return false;
                }
            },
        };
        m.reset();
        m.append(MIN_TX_ROOM).is_some()
    }

    fn io_stats(&self) -> IoStats {
        let (handoff_out, handoff_in, handoff_drops) = self.share.as_ref().map_or((0, 0, 0), |s| {
            (s.handoff_out, s.handoff_in, s.handoff_drops)
        });
        IoStats {
            net: self.net.stats(),
            port: self.port_counters(),
            backend_drops: self.backend_drops,
            handoff_out,
            handoff_in,
            handoff_drops,
        }
    }

    fn tx_burst(
        &mut self,
        tx: &mut Burst<DpdkBuf>,
        refused: &mut dyn FnMut(&Packet<DpdkBuf>),
    ) -> usize {
        let now = self.now;
        let mut need_arp = false;
        let cksum = self.net.is_v4() && (self.offload.ipv4_checksum || self.offload.udp_checksum);
        let headroom = self.net.headroom();
        for (i, p) in tx.packets_mut().iter_mut().enumerate() {
            let tail_sum = p.buf.tail_sum.take().filter(|t| t.0 == p.len).map(|t| t.1);
            let Some(mut m) = p.buf.mbuf.take() else {
                continue;
            };
            let dst = p.peer;
            // The payload sent (the slot's length), with the headers' room in front.
            let Some(frame) = m.prepend_keep(headroom, p.len) else {
                self.backend_drops += 1;
                continue;
            };
            match self.net.encap(
                now,
                p.local_addr,
                dst,
                p.local_port,
                frame,
                self.offload,
                tail_sum,
            ) {
                Sent::Ready => {
                    if cksum {
                        m.set_tx_offload(
                            self.offload.ipv4_checksum,
                            self.offload.udp_checksum,
                            wire::ethernet::HEADER_LEN as u16,
                            wire::ipv4::HEADER_LEN as u16,
                        );
                    }
                    self.tx_slot[self.txb.len()] = i as u8;
                    if self.txb.push(m).is_err() {
                        self.backend_drops += 1;
                    }
                }
                Sent::NeedNeighbour => need_arp = true,
                Sent::Dropped => {}
            }
        }
        let sent = self.txq.tx_burst(&mut self.txb);
        if !self.txb.is_empty() {
            let pkts = tx.packets();
            for k in 0..self.txb.len() {
                refused(&pkts[usize::from(self.tx_slot[sent + k])]);
            }
            self.txb.clear();
        }
        if need_arp {
            self.send_arp_requests(now);
        }
        sent
    }
}

/// Frames each worker's handoff inbox holds (a power of two).
pub const HANDOFF_RING: u32 = 2048;

/// A setup step's failure as [`WorkerError::Dpdk`].
fn fail(step: &str, e: impl std::fmt::Display) -> WorkerError {
    WorkerError::Dpdk(format!("{step}: {e}"))
}
