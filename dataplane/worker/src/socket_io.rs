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
//! Idle behaviour: when a pass receives nothing, the worker passes a `wait` and this backend
//! sleeps in `epoll_wait` until a socket is readable or the wait (at most a few ms) expires,
//! so an idle worker does not spin a core on a shared machine. The DPDK backend busy-polls
//! instead, as DPDK lcores do.

use std::borrow::Borrow;
use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::io::{Burst, Packet, PacketIo, BUF_LEN, MAX_BURST};

mod raw_tx;
use raw_tx::RawTx;

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
}

impl std::fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIo")
            .field("addresses", &self.addresses)
            .field("first", &self.first)
            .field("open_legs", &self.open_legs)
            .field("raw_tx", &self.raw.is_some())
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
        })
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
        self.epoll
            .add(
                s.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, u64::from(key(addr, port))),
            )
            .map_err(io::Error::from)?;
        Ok(s)
    }

    /// Receives into `slots` from one socket; returns how many packets, and whether the
    /// socket may hold more.
    fn recv_from(&mut self, k: u32, slots: &mut [Pkt]) -> (usize, bool) {
        let (addr, port) = unkey(k);
        let Some(i) = self.slot(addr, port) else {
            return (0, false);
        };
        let Some(sock) = self.sockets[i].as_ref() else {
            return (0, false);
        };
        let fd = sock.as_raw_fd();
        let want = slots.len().min(MAX_BURST);
        let mut meta = [(0usize, None::<SocketAddr>, false); MAX_BURST];
        let got = {
            let mut it = slots.iter_mut();
            let mut iovs: [[IoSliceMut<'_>; 1]; MAX_BURST] = std::array::from_fn(|_| {
                [IoSliceMut::new(
                    it.next().map_or(&mut [][..], |p| &mut p.buf[..]),
                )]
            });
            match recvmmsg(
                fd,
                &mut self.rx_hdrs,
                iovs.iter_mut().take(want),
                MsgFlags::MSG_DONTWAIT,
                None,
            ) {
                Ok(res) => {
                    let mut k = 0;
                    for m in res {
                        meta[k] = (
                            m.bytes,
                            m.address.as_ref().and_then(to_std),
                            m.flags.contains(MsgFlags::MSG_TRUNC),
                        );
                        k += 1;
                    }
                    k
                }
                Err(_) => 0,
            }
        };
        // Compact: skip truncated datagrams and ones without a usable source.
        let mut n = 0;
        for (k, &(len, src, trunc)) in meta.iter().enumerate().take(got) {
            let Some(src) = src else { continue };
            if trunc || len > BUF_LEN {
                continue;
            }
            if n != k {
                slots.swap(n, k);
            }
            let s = &mut slots[n];
            s.len = len;
            s.peer = src;
            s.local_port = port;
            s.local_addr = addr;
            n += 1;
        }
        (n, got == want)
    }

    /// Sends a run of packets that share a source port. Returns how many were sent;
    /// refused ones go to `refused`.
    fn send_run<P: Borrow<Pkt>>(&mut self, run: &[P], refused: &mut dyn FnMut(&Pkt)) -> usize {
        let (addr, port) = (run[0].borrow().local_addr, run[0].borrow().local_port);
        let Some(sock) = self.slot(addr, port).and_then(|i| self.sockets[i].as_ref()) else {
            run.iter().for_each(|p| refused(p.borrow()));
            return 0;
        };
        if let [one] = run {
            let one = one.borrow();
            // The common case (one packet per leg per burst): a plain sendto, without
            // building sendmmsg's header arrays.
            return loop {
                match sock.send_to(one.payload(), one.peer) {
                    Ok(_) => break 1,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        refused(one);
                        break 0;
                    }
                }
            };
        }
        let fd = sock.as_raw_fd();
        let mut done = 0;
        let mut sent_total = 0;
        while done < run.len() {
            let rest = &run[done..];
            let k = rest.len().min(MAX_BURST);
            let mut it = rest.iter();
            let iovs: [[IoSlice<'_>; 1]; MAX_BURST] = std::array::from_fn(|_| {
                [IoSlice::new(
                    it.next().map_or(&[][..], |p| p.borrow().payload()),
                )]
            });
            let addrs: [Option<SockaddrStorage>; MAX_BURST] = std::array::from_fn(|i| {
                rest.get(i).map(|p| SockaddrStorage::from(p.borrow().peer))
            });
            let cmsgs: [ControlMessage<'_>; 0] = [];
            match sendmmsg(
                fd,
                &mut self.tx_hdrs,
                iovs.iter().take(k),
                &addrs[..k],
                cmsgs,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(res) => {
                    let sent = res.count();
                    if sent == 0 {
                        refused(rest[0].borrow());
                        done += 1;
                    } else {
                        done += sent;
                        sent_total += sent;
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => {
                    // The first message failed (full buffer, unreachable address, …):
                    // refuse it and carry on with the rest.
                    refused(rest[0].borrow());
                    done += 1;
                }
            }
        }
        sent_total
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
        // Ask epoll every burst (so a flooded socket cannot starve the others); wait only
        // when nothing is queued from earlier bursts.
        let timeout = match wait {
            _ if !self.ready.is_empty() => EpollTimeout::ZERO,
            Some(w) if w.is_zero() => EpollTimeout::ZERO,
            Some(w) => {
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
            None => EpollTimeout::ZERO,
        };
        // EINTR and friends: treat as "nothing ready"; the next pass looks again.
        let ev = self
            .epoll
            .wait(&mut self.events, timeout)
            .unwrap_or_default();
        for k in 0..ev {
            let key = self.events[k].data() as u32;
            if key == TIMER_KEY {
                // Expired: read it so it stops being readable (non-blocking).
                let _ = self.timer.wait();
                continue;
            }
            self.enqueue(key);
        }
        // Serve the queue in FIFO order; a socket that filled its share goes to the back.
        let mut n = 0;
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
        n
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

impl SocketIo {}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Instant;

    use super::*;

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A backend with two legs open on free loopback ports.
    fn io_with_two_legs() -> (SocketIo, u16, u16) {
        for k in 0..200u16 {
            let base = 40000 + (std::process::id() % 100) as u16 * 100 + k * 4;
            let mut io = SocketIo::new(LO, base..=base + 2).unwrap();
            if io.open_port(0, base).is_ok() && io.open_port(0, base + 2).is_ok() {
                return (io, base, base + 2);
            }
        }
        panic!("no free loopback ports");
    }

    #[test]
    fn sub_millisecond_wait_ends_on_the_timer_and_leaves_nothing_behind() {
        let (mut io, p1, _) = io_with_two_legs();
        let mut rx = Burst::new(8, || io.new_buf());
        for _ in 0..3 {
            let start = std::time::Instant::now();
            assert_eq!(io.rx_burst(&mut rx, Some(Duration::from_micros(300))), 0);
            // Never shorter than asked (no upper bound here: timing belongs in perf/).
            assert!(
                start.elapsed() >= Duration::from_micros(300),
                "{:?}",
                start.elapsed()
            );
            // The expired timer was read: the next look sees nothing at all.
            assert_eq!(io.rx_burst(&mut rx, None), 0);
            assert!(io.ready.is_empty());
        }
        // A packet still wakes a sub-millisecond wait and is received.
        let peer = UdpSocket::bind((LO, 0)).unwrap();
        peer.send_to(&[0x80, 0, 0, 1], (LO, p1)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut got = 0;
        while got == 0 && std::time::Instant::now() < deadline {
            got = io.rx_burst(&mut rx, Some(Duration::from_micros(700)));
        }
        assert_eq!(got, 1);
    }

    #[test]
    fn flooded_socket_does_not_starve_others() {
        let (mut io, p1, p2) = io_with_two_legs();
        let peer = UdpSocket::bind((LO, 0)).unwrap();
        for k in 0..200u8 {
            peer.send_to(&[0x80, 0, 0, k], (LO, p1)).unwrap();
        }
        let mut rx = Burst::new(8, || io.new_buf());
        let (mut flood, mut other_at) = (0, None);
        let end = Instant::now() + Duration::from_secs(10);
        let mut bursts = 0;
        while (flood < 200 || other_at.is_none()) && Instant::now() < end {
            if bursts == 1 && flood == 8 {
                // The quiet socket becomes readable while the flood is being drained
                // (loopback delivers during send_to).
                peer.send_to(b"other", (LO, p2)).unwrap();
            }
            let n = io.rx_burst(&mut rx, Some(Duration::from_millis(2)));
            if n > 0 {
                bursts += 1;
            }
            for p in rx.packets() {
                assert_eq!(p.peer, peer.local_addr().unwrap());
                if p.local_port == p2 {
                    assert_eq!(p.payload(), b"other");
                    other_at.get_or_insert(bursts);
                } else {
                    assert_eq!(p.local_port, p1);
                    assert_eq!(p.payload(), &[0x80, 0, 0, flood as u8], "in order");
                    flood += 1;
                }
            }
        }
        assert_eq!(flood, 200);
        let at = other_at.expect("the quiet socket was served");
        assert!(at <= 3, "served in burst {at}, not after the flood");
        assert!(flood == 200);
    }

    #[test]
    fn tx_burst_sends_from_each_leg_port_and_refuses_closed_ones() {
        tx_burst_case(true);
    }

    #[test]
    fn tx_burst_without_the_raw_sender() {
        tx_burst_case(false);
    }

    fn tx_burst_case(raw: bool) {
        let (io, p1, p2) = io_with_two_legs();
        let mut io = io.with_raw_tx(raw);
        let peer = UdpSocket::bind((LO, 0)).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let to = peer.local_addr().unwrap();
        let mut tx = Burst::new(8, || io.new_buf());
        // Runs: p1 ×3 (sendmmsg), p1+1 ×1 (sendto), p2 ×1, an unopened port ×2.
        for (port, byte) in [
            (p1, 1u8),
            (p1, 5),
            (p1, 6),
            (p1 + 1, 2),
            (p2, 3),
            (p2 + 10, 4),
            (p2 + 10, 7),
        ] {
            let slot = tx.next_free().unwrap();
            slot.buf[0] = byte;
            slot.len = 1;
            slot.peer = to;
            slot.local_port = port;
            tx.commit();
        }
        let mut refused = Vec::new();
        let sent = io.tx_burst(&mut tx, &mut |p| refused.push(p.local_port));
        assert_eq!(sent, 5);
        assert_eq!(refused, vec![p2 + 10, p2 + 10]);
        let mut buf = [0u8; 16];
        let mut got = Vec::new();
        for _ in 0..5 {
            let (n, from) = peer.recv_from(&mut buf).unwrap();
            got.push((buf[..n].to_vec(), from.port()));
        }
        got.sort();
        assert_eq!(
            got,
            vec![
                (vec![1], p1),
                (vec![2], p1 + 1),
                (vec![3], p2),
                (vec![5], p1),
                (vec![6], p1)
            ]
        );
        io.close_port(0, p1);
        let mut refused = 0;
        tx.clear();
        let slot = tx.next_free().unwrap();
        slot.len = 1;
        slot.peer = to;
        slot.local_port = p1;
        tx.commit();
        assert_eq!(io.tx_burst(&mut tx, &mut |_| refused += 1), 0);
        assert_eq!(refused, 1);
        // The closed port can be bound by someone else now.
        UdpSocket::bind((LO, p1)).expect("closed");
    }
}

#[cfg(test)]
mod address_tests {
    use std::net::{IpAddr, Ipv4Addr, UdpSocket};
    use std::time::{Duration, Instant};

    use super::*;

    const LO1: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    const LO2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

    /// The same port on two media addresses is two sockets: received packets say which
    /// address they came in on, and packets leave from the address they name.
    #[test]
    fn same_port_on_two_addresses() {
        let (mut io, port) = (0..200u16)
            .find_map(|k| {
                let base = 45000 + (std::process::id() % 50) as u16 * 100 + k * 2;
                let mut io = SocketIo::with_addresses(vec![LO1, LO2], base..=base).ok()?;
                (io.open_port(0, base).is_ok() && io.open_port(1, base).is_ok())
                    .then_some((io, base))
            })
            .expect("a free port on 127.0.0.1 and 127.0.0.2");
        assert!(io.open_port(2, port).is_err(), "no third address");
        let peer = UdpSocket::bind((LO1, 0)).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        peer.send_to(b"one", (LO1, port)).unwrap();
        peer.send_to(b"two", (LO2, port)).unwrap();
        let mut rx = Burst::new(8, || io.new_buf());
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(10);
        while got.len() < 2 && Instant::now() < end {
            io.rx_burst(&mut rx, Some(Duration::from_millis(5)));
            for p in rx.packets() {
                got.push((p.payload().to_vec(), p.local_addr, p.local_port));
            }
        }
        got.sort();
        assert_eq!(
            got,
            vec![(b"one".to_vec(), 0, port), (b"two".to_vec(), 1, port)]
        );
        let mut tx = Burst::new(8, || io.new_buf());
        for (addr, byte) in [(1u8, 2u8), (0, 1), (1, 3)] {
            let slot = tx.next_free().unwrap();
            slot.buf[0] = byte;
            slot.len = 1;
            slot.peer = peer.local_addr().unwrap();
            slot.local_port = port;
            slot.local_addr = addr;
            tx.commit();
        }
        assert_eq!(io.tx_burst(&mut tx, &mut |_| panic!("refused")), 3);
        let mut from = Vec::new();
        let mut buf = [0u8; 8];
        for _ in 0..3 {
            let (n, src) = peer.recv_from(&mut buf).unwrap();
            from.push((buf[..n].to_vec(), src));
        }
        from.sort();
        let at = |ip| SocketAddr::new(ip, port);
        assert_eq!(
            from,
            vec![(vec![1], at(LO1)), (vec![2], at(LO2)), (vec![3], at(LO2))]
        );
        io.close_port(1, port);
        // Address 1's port is free again; address 0's is still ours.
        UdpSocket::bind((LO2, port)).expect("closed on 127.0.0.2");
        assert!(UdpSocket::bind((LO1, port)).is_err());
    }
}
