//! The std UDP socket backend: one non-blocking socket per RTP and per RTCP port, found
//! readable through epoll, drained with `recvmmsg` and written with `sendmmsg` (nix's safe
//! wrappers, so this crate stays `#![forbid(unsafe_code)]`).
//!
//! Transmit batching. A relayed burst usually holds one packet per leg (each leg's peer
//! sends every 20 ms), so sending from each leg's own socket costs one system call per
//! packet. Two remedies, both per burst:
//! - packets are grouped by source socket over the whole burst (not only consecutive runs),
//!   so whatever shares a socket leaves in one `sendmmsg`;
//! - opt-in ([`SocketIo::with_raw_tx`]), where the process may open a raw IPv4 socket
//!   (`IPPROTO_RAW`, `CAP_NET_RAW`): every IPv4 packet of the burst leaves through it in ONE
//!   `sendmmsg`, each message carrying its own IPv4 and UDP header (source: the leg's
//!   address and port; UDP checksum computed here; the kernel fills the IPv4 checksum,
//!   length and id). Off by default: on the relay-path benchmark (perf/RESULTS.md) bursts
//!   mostly hold one packet and it saved nothing measurable. `UDP_SEGMENT` (GSO) is not used:
//!   it needs several equal-sized packets to ONE destination from one socket, which a relay
//!   burst rarely holds.
//!
//! Receive. By default each readable socket costs a `recvmmsg`. Opt-in
//! ([`SocketIo::with_rx_ring`], `CAP_NET_RAW`): one `AF_PACKET` receive ring per worker
//! (`ring_rx`) takes the worker's IPv4 media packets, read from shared memory without a
//! system call per packet; the ports' sockets stay bound but drop what the ring took. IPv6
//! media addresses (and IPv4 datagrams longer than a ring frame) stay on the sockets.
//!
//! Wake coalescing. Opt-in ([`SocketIo::with_coalesce`]): after a wait that brought only a
//! few packets (fewer than a burst), the next wait first sleeps up to the bound (never past
//! the wait the worker asked for, so timers stay on time) and then takes whatever arrived
//! meanwhile in one pass: at 50k pps a bound of 100 µs turns about one wake per packet into
//! one per five to eight. An idle worker still blocks (a wait that found nothing ends the
//! coalescing).
//!
//! Idle behaviour: when a pass receives nothing, the worker passes a `wait` and this backend
//! sleeps in `epoll_wait` until a socket is readable or the wait (at most a few ms) expires,
//! so an idle worker does not spin a core on a shared machine. The DPDK backend busy-polls
//! instead, as DPDK lcores do.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{MultiHeaders, SockaddrStorage};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::io::{Burst, Packet, PacketIo, BUF_LEN, MAX_BURST};
use crate::stats::IoStats;

mod raw_tx;
mod ring_rx;
mod sock;
#[cfg(test)]
mod tests;
use raw_tx::RawTx;
use ring_rx::RingRx;

/// A packet of this backend.
type Pkt = Packet<Box<[u8]>>;

/// The socket backend of one worker. Not `Send` (nix's preallocated message headers hold raw
/// pointers): build it on the worker's thread.
pub struct SocketIo {
    /// The media addresses (index = [`Packet::local_addr`]).
    addresses: Vec<IpAddr>,
    first: u16,
    /// Ports (RTP and RTCP) per address.
    n: usize,
    /// Indexed by `addr * n + port - first` (RTP and RTCP alike).
    sockets: Vec<Option<UdpSocket>>,
    epoll: Epoll,
    events: Vec<EpollEvent>,
    /// Sockets (keys: `addr << 16 | port`) epoll reported readable that still have to be
    /// drained.
    ready: Vec<u32>,
    /// Sockets that filled a whole receive call and may hold more (scratch, reused).
    again: Vec<u32>,
    /// Per socket slot: whether its port is in `ready` (so the queue never holds a port
    /// twice and never grows beyond one entry per socket).
    queued: Vec<bool>,
    rx_hdrs: MultiHeaders<SockaddrStorage>,
    tx_hdrs: MultiHeaders<SockaddrStorage>,
    open_legs: usize,
    /// Wakes `epoll_wait` at the exact end of a wait that is not a whole number of
    /// milliseconds (epoll's own timeout has millisecond resolution, which would send a
    /// timer-driven packet, e.g. the announcement's, up to 1 ms late).
    timer: TimerFd,
    /// The raw IPv4 sender (`None`: not permitted, or turned off).
    raw: Option<RawTx>,
    /// Scratch: `(socket slot, index)` of the burst's packets, sorted to group by socket.
    order: Vec<(u32, u8)>,
    /// The receive ring (`None`: off, the default, or no IPv4 media address).
    ring: Option<RingRx>,
    /// Passes that did not ask epoll since it last was (with the ring on, a pass that is
    /// not allowed to wait asks it only every [`RING_EPOLL_EVERY`] passes).
    unpolled: u32,
    /// The coalescing bound (zero: off, the default).
    coalesce: Duration,
    /// Whether the last wait brought a few packets (then the next wait coalesces).
    sparse: bool,
}

impl std::fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIo")
            .field("addresses", &self.addresses)
            .field("first", &self.first)
            .field("open_legs", &self.open_legs)
            .field("raw_tx", &self.raw.is_some())
            .field("rx_ring", &self.ring.is_some())
            .field("coalesce", &self.coalesce)
            .finish_non_exhaustive()
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// The epoll key of the wake-up timer (socket keys are at most `0x00ff_ffff`).
const TIMER_KEY: u32 = u32::MAX;

/// The epoll key of the receive ring.
const RING_KEY: u32 = u32::MAX - 1;

/// With the ring on, a pass that may not wait asks epoll (the sockets the ring does not
/// serve, the timer) once in this many passes; a pass that may wait always does.
const RING_EPOLL_EVERY: u32 = 8;

/// The longest coalescing bound [`SocketIo::with_coalesce`] takes.
pub const MAX_COALESCE: Duration = Duration::from_millis(1);

/// The longest single wait (epoll's timeout is passed as a `u8` of milliseconds).
const MAX_WAIT: Duration = Duration::from_millis(250);

/// The key of one socket: media address index and port.
fn key(addr: u8, port: u16) -> u32 {
    (u32::from(addr) << 16) | u32::from(port)
}

fn unkey(k: u32) -> (u8, u16) {
    ((k >> 16) as u8, k as u16)
}

impl SocketIo {
    /// A backend binding on `address` for the even RTP `ports` of one worker (each RTCP port
    /// is the odd port above).
    ///
    /// # Errors
    /// If epoll cannot be created.
    pub fn new(address: IpAddr, ports: RangeInclusive<u16>) -> io::Result<Self> {
        Self::with_addresses(vec![address], ports)
    }

    /// A backend binding the same `ports` on each of `addresses` (media address index `i`
    /// is `addresses[i]`).
    ///
    /// # Errors
    /// If epoll cannot be created, or `addresses` is empty.
    pub fn with_addresses(addresses: Vec<IpAddr>, ports: RangeInclusive<u16>) -> io::Result<Self> {
        if addresses.is_empty() || addresses.len() > usize::from(u8::MAX) + 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} media addresses", addresses.len()),
            ));
        }
        let first = ports.start() & !1;
        let last = ports.end() | 1;
        let n = usize::from(last.saturating_sub(first)) + 1;
        let total = n * addresses.len();
        let mut sockets = Vec::with_capacity(total);
        sockets.resize_with(total, || None);
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io::Error::from)?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        epoll
            .add(
                timer.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, u64::from(TIMER_KEY)),
            )
            .map_err(io::Error::from)?;
        Ok(Self {
            addresses,
            first,
            n,
            sockets,
            epoll,
            timer,
            events: vec![EpollEvent::empty(); MAX_BURST],
            ready: Vec::with_capacity(total + MAX_BURST),
            again: Vec::with_capacity(total + MAX_BURST),
            queued: vec![false; total],
            rx_hdrs: MultiHeaders::preallocate(MAX_BURST, None),
            tx_hdrs: MultiHeaders::preallocate(MAX_BURST, None),
            open_legs: 0,
            raw: None,
            order: Vec::with_capacity(MAX_BURST),
            ring: None,
            unpolled: 0,
            coalesce: Duration::ZERO,
            sparse: false,
        })
    }

    /// Turns the raw IPv4 sender on, failing when the process may not open one (see
    /// [`Self::with_raw_tx`], which stays on the sockets instead).
    ///
    /// # Errors
    /// If the raw socket cannot be opened (`EPERM` without `CAP_NET_RAW`).
    pub fn try_raw_tx(mut self) -> io::Result<Self> {
        if self.raw.is_none() {
            self.raw = Some(RawTx::try_open()?);
        }
        Ok(self)
    }

    /// Turns the `AF_PACKET` receive ring on (off by default) for this worker's IPv4 media
    /// addresses and ports; does nothing when none of the addresses is IPv4. Call it before
    /// opening ports (ports already open get the socket filter too).
    ///
    /// # Errors
    /// If the ring cannot be opened (`EPERM` without `CAP_NET_RAW`) or registered.
    pub fn with_rx_ring(mut self, on: bool) -> io::Result<Self> {
        if let Some(r) = self.ring.take() {
            let _ = self.epoll.delete(r.ring().as_fd());
        }
        if !on {
            for (i, s) in self.sockets.iter().enumerate() {
                if let Some(s) = s {
                    if self.addresses[i / self.n].is_ipv4() {
                        let _ = packet_ring::Filter::accept_all().attach(s.as_fd());
                    }
                }
            }
            return Ok(self);
        }
        let last = self.first + (self.n as u16 - 1);
        let Some(ring) = RingRx::open(&self.addresses, self.first, last)? else {
            return Ok(self);
        };
        self.epoll
            .add(
                ring.ring().as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, u64::from(RING_KEY)),
            )
            .map_err(io::Error::from)?;
        for (i, s) in self.sockets.iter().enumerate() {
            if let Some(s) = s {
                if self.addresses[i / self.n].is_ipv4() {
                    ring_rx::socket_filter().attach(s.as_fd())?;
                }
            }
        }
        self.ring = Some(ring);
        Ok(self)
    }

    /// Whether the receive ring is on.
    #[must_use]
    pub fn rx_ring(&self) -> bool {
        self.ring.is_some()
    }

    /// Sets the wake-coalescing bound (zero, the default: off; at most [`MAX_COALESCE`]).
    /// Sets the calling thread's timer slack to 1 µs when on, so the coalescing sleep ends
    /// when asked (the default slack is 50 µs): build the backend on its worker's thread.
    #[must_use]
    pub fn with_coalesce(mut self, bound: Duration) -> Self {
        self.coalesce = bound.min(MAX_COALESCE);
        if !self.coalesce.is_zero() {
            let _ = nix::sys::prctl::set_timerslack(1000);
        }
        self
    }

    /// The wake-coalescing bound (zero: off).
    #[must_use]
    pub fn coalesce(&self) -> Duration {
        self.coalesce
    }

    /// Turns the raw IPv4 sender on (when the process may open one; otherwise the backend
    /// stays on its sockets, see [`Self::raw_tx`]) or off (the default).
    #[must_use]
    pub fn with_raw_tx(mut self, on: bool) -> Self {
        self.raw = if on {
            self.raw.take().or_else(RawTx::open)
        } else {
            None
        };
        self
    }

    /// Whether IPv4 packets leave through the raw sender (one `sendmmsg` per burst).
    #[must_use]
    pub fn raw_tx(&self) -> bool {
        self.raw.is_some()
    }

    fn slot(&self, addr: u8, port: u16) -> Option<usize> {
        let i = usize::from(port.checked_sub(self.first)?);
        let a = usize::from(addr);
        (i < self.n && a < self.addresses.len()).then_some(a * self.n + i)
    }

    fn enqueue(&mut self, k: u32) {
        let (addr, port) = unkey(k);
        if let Some(s) = self.slot(addr, port) {
            if !self.queued[s] {
                self.queued[s] = true;
                self.ready.push(k);
            }
        }
    }

    fn bind(&self, addr: u8, port: u16) -> io::Result<UdpSocket> {
        let ip = self.addresses.get(usize::from(addr)).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no media address #{addr}"),
            )
        })?;
        let s = UdpSocket::bind(SocketAddr::new(*ip, port))?;
        s.set_nonblocking(true)?;
        if self.ring.is_some() && ip.is_ipv4() {
            // The ring takes this port's packets: the socket keeps only what it cannot.
            ring_rx::socket_filter().attach(s.as_fd())?;
        }
        self.epoll
            .add(
                s.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, u64::from(key(addr, port))),
            )
            .map_err(io::Error::from)?;
        Ok(s)
    }
}

impl SocketIo {
    /// Receives from the ring (if on) into `rx`'s slots from `from` on.
    /// While sockets wait in the queue the ring takes at most half the burst, so a flood
    /// through the ring cannot starve them.
    fn ring_recv(&mut self, rx: &mut Burst<Box<[u8]>>, from: usize) -> usize {
        let Some(ring) = self.ring.as_mut() else {
            return 0;
        };
        let cap = rx.capacity();
        let end = if self.ready.is_empty() {
            cap
        } else {
            cap.div_ceil(2)
        };
        let (sockets, first, per) = (&self.sockets, self.first, self.n);
        ring.recv(&mut rx.slots_mut()[from..end.max(from)], |addr, port| {
            port.checked_sub(first).is_some_and(|i| {
                let i = usize::from(addr) * per + usize::from(i);
                sockets.get(i).is_some_and(Option::is_some)
            })
        })
    }

    /// One `epoll_wait`, blocking up to `wait` (`None` or zero: not at all); queues the
    /// readable sockets and reads an expired timer.
    fn poll_epoll(&mut self, wait: Option<Duration>) {
        let timeout = match wait {
            Some(w) if !w.is_zero() => {
                let w = w.min(MAX_WAIT);
                // epoll waits whole milliseconds: a wait with a fraction of one is ended at
                // its exact end by the timer (one timerfd_settime per idle pass, never per
                // packet), epoll's timeout (rounded up) only backs it up.
                if w.subsec_nanos() % 1_000_000 != 0 {
                    let _ = self.timer.set(
                        Expiration::OneShot(TimeSpec::from_duration(w)),
                        TimerSetTimeFlags::empty(),
                    );
                }
                EpollTimeout::from(w.as_micros().div_ceil(1000) as u8)
            }
            _ => EpollTimeout::ZERO,
        };
        // EINTR and friends: treat as "nothing ready"; the next pass looks again.
        let ev = self
            .epoll
            .wait(&mut self.events, timeout)
            .unwrap_or_default();
        for k in 0..ev {
            match self.events[k].data() as u32 {
                // Expired: read it so it stops being readable (non-blocking).
                TIMER_KEY => {
                    let _ = self.timer.wait();
                }
                // The ring is read after every epoll_wait anyway.
                RING_KEY => {}
                key => self.enqueue(key),
            }
        }
    }
}

impl PacketIo for SocketIo {
    type Buf = Box<[u8]>;

    fn new_buf(&self) -> Self::Buf {
        vec![0; BUF_LEN].into_boxed_slice()
    }

    fn open_port(&mut self, addr: u8, rtp_port: u16) -> io::Result<()> {
        let (Some(i), Some(j)) = (
            self.slot(addr, rtp_port),
            self.slot(addr, rtp_port.wrapping_add(1)),
        ) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("port {rtp_port} of media address #{addr} outside the worker's range"),
            ));
        };
        if self.sockets[i].is_some() || self.sockets[j].is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("port {rtp_port} already open"),
            ));
        }
        let rtp = self.bind(addr, rtp_port)?;
        let rtcp = match self.bind(addr, rtp_port + 1) {
            Ok(s) => s,
            Err(e) => {
                let _ = self.epoll.delete(rtp.as_fd());
                return Err(e);
            }
        };
        self.sockets[i] = Some(rtp);
        self.sockets[j] = Some(rtcp);
        self.open_legs += 1;
        Ok(())
    }

    fn close_port(&mut self, addr: u8, rtp_port: u16) {
        let mut closed = false;
        for port in [rtp_port, rtp_port.wrapping_add(1)] {
            if let Some(s) = self.slot(addr, port).and_then(|i| self.sockets[i].take()) {
                let _ = self.epoll.delete(s.as_fd());
                closed = true;
            }
        }
        if closed {
            self.open_legs -= 1;
        }
    }

    fn rx_burst(&mut self, rx: &mut Burst<Self::Buf>, wait: Option<Duration>) -> usize {
        let cap = rx.capacity();
        // The ring first: no system call.
        let mut n = self.ring_recv(rx, 0);
        let may_wait = wait.is_some_and(|w| !w.is_zero());
        let mut wait = wait;
        if n == 0 && may_wait && self.sparse && !self.coalesce.is_zero() && self.ready.is_empty() {
            // Coalesce: the last wait brought a few packets, so rather than waking for the
            // next one, sleep a little (never past the worker's wait) and take them all.
            std::thread::sleep(self.coalesce.min(wait.unwrap_or_default()));
            n = self.ring_recv(rx, 0);
            // Then look without waiting: with the ring on, epoll only every few passes (or
            // at once when the ring brought nothing); without it, always.
            wait = if n > 0 { None } else { Some(Duration::ZERO) };
        }
        // Ask epoll every burst without the ring (so a flooded socket cannot starve the
        // others); with it, on every pass that may wait and every few others.
        let ask = self.ring.is_none() || wait.is_some() || {
            self.unpolled += 1;
            self.unpolled >= RING_EPOLL_EVERY
        };
        if ask {
            self.unpolled = 0;
            self.poll_epoll(if n == 0 && self.ready.is_empty() {
                wait
            } else {
                None
            });
            if n == 0 {
                // What woke a wait may have been the ring.
                n = self.ring_recv(rx, 0);
            }
        }
        // Serve the queue in FIFO order; a socket that filled its share goes to the back.
        let mut i = 0;
        while i < self.ready.len() && n < cap {
            let k = self.ready[i];
            i += 1;
            let (addr, port) = unkey(k);
            if let Some(s) = self.slot(addr, port) {
                self.queued[s] = false;
            }
            let (got, more) = self.recv_from(k, &mut rx.slots_mut()[n..]);
            n += got;
            if more {
                self.again.push(k);
            }
        }
        self.ready.drain(..i);
        for j in 0..self.again.len() {
            let k = self.again[j];
            self.enqueue(k);
        }
        self.again.clear();
        rx.set_len(n);
        if may_wait {
            self.sparse = n > 0 && n < cap;
        }
        n
    }

    fn io_stats(&self) -> IoStats {
        let mut st = IoStats::default();
        if let Some(r) = &self.ring {
            st.backend_drops = r.drops;
            st.port.imissed = r.overflows();
        }
        st
    }

    fn tx_burst(
        &mut self,
        tx: &mut Burst<Self::Buf>,
        refused: &mut dyn FnMut(&Packet<Self::Buf>),
    ) -> usize {
        let pkts = tx.packets();
        let mut sent = 0;
        // Group by source socket over the whole burst (stable: each socket's packets keep
        // their order). Packets of closed ports are refused here.
        self.order.clear();
        for (i, p) in pkts.iter().enumerate() {
            match self.slot(p.local_addr, p.local_port) {
                Some(s) if self.sockets[s].is_some() => self.order.push((s as u32, i as u8)),
                _ => refused(p),
            }
        }
        if let Some(raw) = self.raw.as_mut() {
            sent += raw.send(pkts, &self.order, &self.addresses, refused);
            // What the raw sender cannot take (IPv6) goes through the sockets below.
            let addresses = &self.addresses;
            self.order.retain(|&(_, i)| {
                let p = &pkts[usize::from(i)];
                !RawTx::takes(addresses, p)
            });
        }
        if self.order.is_empty() {
            return sent;
        }
        self.order.sort_unstable();
        let mut order = std::mem::take(&mut self.order);
        // One socket's packets, gathered on the stack (no allocation per burst).
        let mut run: [&Pkt; MAX_BURST] = [&pkts[usize::from(order[0].1)]; MAX_BURST];
        let mut start = 0;
        while start < order.len() {
            let slot = order[start].0;
            let end = order[start..]
                .iter()
                .position(|&(s, _)| s != slot)
                .map_or(order.len(), |o| start + o);
            for (slot, &(_, i)) in run.iter_mut().zip(&order[start..end]) {
                *slot = &pkts[usize::from(i)];
            }
            sent += self.send_run(&run[..end - start], refused);
            start = end;
        }
        order.clear();
        self.order = order;
        sent
    }
}
