//! An in-process UDP impairment proxy: the kernels here have no netem, so tests put this
//! between a SIP peer and callbridge to lose, delay, reorder and duplicate datagrams.
//!
//! ```text
//!  downstream peer ──► [ Link "upstream"   : loss, delay+jitter, reorder, duplicate ] ──► upstream
//!  (e.g. callbridge) ◄── [ Link "downstream" : loss, delay+jitter, reorder, duplicate ] ◄── (e.g. SIPp)
//!                         one loopback socket: both peers see the proxy's address as the other's
//! ```
//!
//! The proxy has one socket. A datagram from the `upstream` address goes to the downstream
//! peer; any other datagram comes from the downstream peer (configured, or learned from the
//! first such datagram) and goes to `upstream`. So each peer sees the proxy as the other one
//! and answers to it; in-dialog SIP requests cross it too as long as the peers' Contacts name
//! the proxy (see `tests/sipp/*_via_proxy.xml`).
//!
//! [`Link`] is the impairment of one direction and does no I/O (the layout of str0m's netem
//! and smoltcp's fault injector): `handle_datagram(now, bytes)` in, `poll_transmit(now)` out,
//! `poll_timeout()` for the next release. Its decisions depend only on the seed and on the
//! order of the datagrams handed to it, never on the clock: every datagram draws the same
//! number of random values, so a seed reproduces the same losses, duplicates, holds and jitter.
//! [`Proxy`] drives two links with one thread and one socket; dropping it stops the thread
//! (it wakes at least every [`TICK`]) and closes the socket.
//!
//! Per datagram, in this order: counted `in` (and `repeated` if the same bytes came before:
//! the peers' own retransmissions); lost with probability `loss` (`dropped`); else released at
//! `now + delay + uniform(0..=jitter)`, a second copy with probability `duplicate`
//! (`duplicated`); with probability `reorder` (and none already held) it is held back and
//! released right after the next datagram (`reordered`), or after `hold_max` if none follows.
//! `out` counts datagrams handed out (sent).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest the proxy thread blocks in `recv_from`: how late a stop or a due release can be.
pub const TICK: Duration = Duration::from_millis(5);
/// Datagrams received per pass of the proxy loop before due releases are sent again.
const RECV_BURST: usize = 64;
/// Distinct payload hashes remembered per direction for the `repeated` counter.
const SEEN_MAX: usize = 1 << 16;
/// Largest datagram forwarded (larger ones are truncated by `recv_from`, as by any UDP peer).
const MAX_DATAGRAM: usize = 65_535;

/// What one direction does to its datagrams. Probabilities are in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Fixed delay added to every datagram.
    pub delay: Duration,
    /// Up to this much more delay, uniformly distributed (seeded).
    pub jitter: Duration,
    /// Probability that a datagram is held back and released after the next one.
    pub reorder: f64,
    /// The longest a held datagram waits for a next one before it is released anyway.
    pub hold_max: Duration,
    /// Probability that a datagram is sent twice.
    pub duplicate: f64,
}

impl Impairment {
    /// Everything passes at once, in order.
    pub const NONE: Self = Self {
        loss: 0.0,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        reorder: 0.0,
        hold_max: Duration::from_millis(200),
        duplicate: 0.0,
    };

    /// Only loss, with probability `p`.
    #[must_use]
    pub const fn loss(p: f64) -> Self {
        Self {
            loss: p,
            ..Self::NONE
        }
    }
}

impl Default for Impairment {
    fn default() -> Self {
        Self::NONE
    }
}

/// One direction's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams received from the sending side.
    pub received: u64,
    /// Of those, datagrams whose exact bytes were received before (the sender's retransmissions).
    pub repeated: u64,
    /// Datagrams lost on purpose.
    pub dropped: u64,
    /// Datagrams sent twice.
    pub duplicated: u64,
    /// Held datagrams that a later one overtook.
    pub reordered: u64,
    /// Datagrams handed out (sent to the other side), copies included.
    pub sent: u64,
}

impl std::fmt::Display for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "in {} (repeated {}), dropped {}, duplicated {}, reordered {}, out {}",
            self.received, self.repeated, self.dropped, self.duplicated, self.reordered, self.sent
        )
    }
}

/// splitmix64: small, seedable, good enough to decide the fate of datagrams.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[0, max]`.
    fn up_to(&mut self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        let r = self.next_u64();
        Duration::from_nanos(if nanos == u64::MAX {
            r
        } else {
            r % (nanos + 1)
        })
    }
}

/// One direction of impairment, sans I/O: datagrams in, datagrams out at their release time.
#[derive(Debug)]
pub struct Link {
    imp: Impairment,
    rng: Rng,
    /// Scheduled datagrams: (release time, arrival order, bytes); earliest first.
    queue: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>,
    /// The held-back datagram and when it is released if nothing follows.
    held: Option<(Instant, Vec<u8>)>,
    order: u64,
    seen: HashSet<u64>,
    counters: Counters,
}

impl Link {
    /// A link applying `imp`, its random decisions seeded with `seed`.
    #[must_use]
    pub fn new(imp: Impairment, seed: u64) -> Self {
        Self {
            imp,
            rng: Rng(seed),
            queue: BinaryHeap::new(),
            held: None,
            order: 0,
            seen: HashSet::new(),
            counters: Counters::default(),
        }
    }

    /// The counters so far.
    #[must_use]
    pub const fn counters(&self) -> Counters {
        self.counters
    }

    /// A datagram arrived at `now`.
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8]) {
        self.counters.received += 1;
        let mut h = DefaultHasher::new();
        data.hash(&mut h);
        let hash = h.finish();
        if self.seen.contains(&hash) {
            self.counters.repeated += 1;
        } else if self.seen.len() < SEEN_MAX {
            self.seen.insert(hash);
        }
        // Always the same five draws, so later decisions do not depend on earlier outcomes.
        let lose = self.rng.unit() < self.imp.loss;
        let dup = self.rng.unit() < self.imp.duplicate;
        let hold = self.rng.unit() < self.imp.reorder;
        let jitter = (
            self.rng.up_to(self.imp.jitter),
            self.rng.up_to(self.imp.jitter),
        );
        if lose {
            self.counters.dropped += 1;
            return;
        }
        let release = now + self.imp.delay + jitter.0;
        if dup {
            self.counters.duplicated += 1;
            self.schedule(now + self.imp.delay + jitter.1, data.to_vec());
        }
        if let Some((_, held)) = self.held.take() {
            // This one overtakes the held one, which follows right after it.
            self.schedule(release, data.to_vec());
            self.schedule(release, held);
            self.counters.reordered += 1;
        } else if hold {
            self.held = Some((release + self.imp.hold_max, data.to_vec()));
        } else {
            self.schedule(release, data.to_vec());
        }
    }

    fn schedule(&mut self, at: Instant, data: Vec<u8>) {
        self.order += 1;
        self.queue.push(Reverse((at, self.order, data)));
    }

    /// The next datagram due at `now`, if any.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.held.as_ref().is_some_and(|(at, _)| *at <= now) {
            if let Some((at, data)) = self.held.take() {
                self.schedule(at, data);
            }
        }
        if self
            .queue
            .peek()
            .is_some_and(|Reverse((at, _, _))| *at <= now)
        {
            let Reverse((_, _, data)) = self.queue.pop()?;
            self.counters.sent += 1;
            return Some(data);
        }
        None
    }

    /// When [`Link::poll_transmit`] has something next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let queued = self.queue.peek().map(|Reverse((at, _, _))| *at);
        let held = self.held.as_ref().map(|(at, _)| *at);
        queued.into_iter().chain(held).min()
    }
}

/// A [`Proxy`]'s socket, bound but not yet forwarding: its address can be handed to a peer
/// (e.g. written into SIPp's Contact) before the upstream address is known.
#[derive(Debug)]
pub struct ProxySocket {
    socket: UdpSocket,
    local: SocketAddr,
}

impl ProxySocket {
    /// Binds `127.0.0.1:0` (an ephemeral port, outside the test harness's port blocks).
    ///
    /// # Panics
    /// If the socket cannot be bound.
    #[must_use]
    pub fn bind() -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("impairment proxy: cannot bind 127.0.0.1:0: {e}"));
        let local = socket
            .local_addr()
            .unwrap_or_else(|e| panic!("impairment proxy: no local address: {e}"));
        Self { socket, local }
    }

    /// The proxy's address: what both peers send to.
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Starts forwarding: datagrams from `upstream` go to the downstream peer (`downstream`,
    /// or the first other sender), all others to `upstream`; `to_upstream` and
    /// `to_downstream` impair each direction, seeded from `seed`.
    ///
    /// # Panics
    /// If the socket cannot be configured or the thread cannot be spawned.
    #[must_use]
    pub fn start(
        self,
        upstream: SocketAddr,
        downstream: Option<SocketAddr>,
        to_upstream: Impairment,
        to_downstream: Impairment,
        seed: u64,
    ) -> Proxy {
        self.socket
            .set_read_timeout(Some(TICK))
            .unwrap_or_else(|e| panic!("impairment proxy: set_read_timeout: {e}"));
        let links = Arc::new(Mutex::new(Links {
            to_upstream: Link::new(to_upstream, seed),
            to_downstream: Link::new(to_downstream, seed ^ 0x5851_f42d_4c95_7f2d),
            downstream,
            unroutable: 0,
            send_errors: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (links, stop) = (Arc::clone(&links), Arc::clone(&stop));
            let socket = self.socket;
            std::thread::Builder::new()
                .name(format!("impair-{}", self.local.port()))
                .spawn(move || run(&socket, upstream, &links, &stop))
                .unwrap_or_else(|e| panic!("impairment proxy: cannot spawn its thread: {e}"))
        };
        Proxy {
            local: self.local,
            upstream,
            links,
            stop,
            thread: Some(thread),
        }
    }
}

/// Both directions and the routing state, shared by the proxy thread and its handle.
#[derive(Debug)]
struct Links {
    to_upstream: Link,
    to_downstream: Link,
    downstream: Option<SocketAddr>,
    /// Datagrams from upstream before any downstream peer was known.
    unroutable: u64,
    send_errors: u64,
}

/// A running impairment proxy; its thread stops and its socket closes when it is dropped.
#[derive(Debug)]
pub struct Proxy {
    local: SocketAddr,
    upstream: SocketAddr,
    links: Arc<Mutex<Links>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A snapshot of a [`Proxy`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyCounters {
    /// Downstream peer → upstream.
    pub to_upstream: Counters,
    /// Upstream → downstream peer.
    pub to_downstream: Counters,
    /// Datagrams from upstream dropped because no downstream peer was known yet.
    pub unroutable: u64,
    /// `send_to` failures (e.g. ICMP port unreachable reported on the socket).
    pub send_errors: u64,
}

impl Proxy {
    /// Binds a [`ProxySocket`] and starts it (see [`ProxySocket::start`]).
    ///
    /// # Panics
    /// See [`ProxySocket::bind`] and [`ProxySocket::start`].
    #[must_use]
    pub fn start(
        upstream: SocketAddr,
        downstream: Option<SocketAddr>,
        to_upstream: Impairment,
        to_downstream: Impairment,
        seed: u64,
    ) -> Self {
        ProxySocket::bind().start(upstream, downstream, to_upstream, to_downstream, seed)
    }

    /// The proxy's address.
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The upstream address.
    #[must_use]
    pub const fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The downstream peer, once configured or learned.
    #[must_use]
    pub fn downstream(&self) -> Option<SocketAddr> {
        lock(&self.links).downstream
    }

    /// The counters so far.
    #[must_use]
    pub fn counters(&self) -> ProxyCounters {
        let l = lock(&self.links);
        ProxyCounters {
            to_upstream: l.to_upstream.counters(),
            to_downstream: l.to_downstream.counters(),
            unroutable: l.unroutable,
            send_errors: l.send_errors,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The proxy thread: until `stop`, send what is due, then wait up to [`TICK`] (or the next
/// release) for datagrams and hand up to [`RECV_BURST`] of them to their link.
fn run(socket: &UdpSocket, upstream: SocketAddr, links: &Mutex<Links>, stop: &AtomicBool) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::Relaxed) {
        let wait = {
            let mut l = lock(links);
            flush(socket, upstream, &mut l, Instant::now());
            let next = [l.to_upstream.poll_timeout(), l.to_downstream.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            next.map_or(TICK, |at| {
                at.saturating_duration_since(Instant::now())
                    .clamp(Duration::from_millis(1), TICK)
            })
        };
        // A zero timeout would mean "block forever"; the clamp above keeps it >= 1 ms.
        let _ = socket.set_read_timeout(Some(wait));
        for i in 0..RECV_BURST {
            // Nothing (more) to read, or an ICMP error from an earlier send: next pass.
            let Ok((n, src)) = socket.recv_from(&mut buf) else {
                break;
            };
            if i == 0 {
                // The rest of this burst must not wait: only what is already queued.
                let _ = socket.set_nonblocking(true);
            }
            let mut l = lock(links);
            let now = Instant::now();
            if src == upstream {
                if l.downstream.is_some() {
                    l.to_downstream.handle_datagram(now, &buf[..n]);
                } else {
                    l.unroutable += 1;
                }
            } else {
                l.downstream.get_or_insert(src);
                l.to_upstream.handle_datagram(now, &buf[..n]);
            }
        }
        let _ = socket.set_nonblocking(false);
    }
}

/// Sends every datagram due at `now` in both directions.
fn flush(socket: &UdpSocket, upstream: SocketAddr, l: &mut Links, now: Instant) {
    while let Some(d) = l.to_upstream.poll_transmit(now) {
        if socket.send_to(&d, upstream).is_err() {
            l.send_errors += 1;
        }
    }
    let Some(down) = l.downstream else { return };
    while let Some(d) = l.to_downstream.poll_transmit(now) {
        if socket.send_to(&d, down).is_err() {
            l.send_errors += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram carrying its sequence number.
    fn dgram(i: u32) -> [u8; 4] {
        i.to_be_bytes()
    }

    fn seq(d: &[u8]) -> u32 {
        u32::from_be_bytes(d[..4].try_into().unwrap())
    }

    /// Feeds `n` numbered datagrams 1 ms apart into a link and drains it; returns what came out.
    fn through(link: &mut Link, n: u32) -> Vec<u32> {
        let t0 = Instant::now();
        let mut out = Vec::new();
        for i in 0..n {
            let now = t0 + Duration::from_millis(u64::from(i));
            link.handle_datagram(now, &dgram(i));
            while let Some(d) = link.poll_transmit(now) {
                out.push(seq(&d));
            }
        }
        let end = t0 + Duration::from_secs(3600);
        while let Some(d) = link.poll_transmit(end) {
            out.push(seq(&d));
        }
        assert_eq!(link.poll_timeout(), None, "drained");
        out
    }

    #[test]
    fn link_without_impairment_passes_everything_in_order() {
        let mut link = Link::new(Impairment::NONE, 1);
        assert_eq!(through(&mut link, 500), (0..500).collect::<Vec<_>>());
        let c = link.counters();
        assert_eq!(
            (c.received, c.sent, c.dropped, c.repeated),
            (500, 500, 0, 0)
        );
    }

    #[test]
    fn link_loss_is_seeded_and_near_its_rate() {
        let run = |seed| through(&mut Link::new(Impairment::loss(0.2), seed), 10_000);
        let a = run(7);
        assert_eq!(a, run(7), "same seed, same losses");
        assert_ne!(a, run(8), "another seed, other losses");
        let lost = 10_000 - a.len();
        assert!(
            (1_800..=2_200).contains(&lost),
            "lost {lost} of 10000 at 20 %"
        );
        assert!(a.windows(2).all(|w| w[0] < w[1]), "loss alone keeps order");
    }

    #[test]
    fn link_duplicates_and_reorders_and_counts_it() {
        let imp = Impairment {
            duplicate: 0.1,
            reorder: 0.1,
            ..Impairment::NONE
        };
        let mut link = Link::new(imp, 3);
        let out = through(&mut link, 2_000);
        let c = link.counters();
        assert!(c.duplicated > 100 && c.reordered > 100, "{c}");
        assert_eq!(c.sent, c.received - c.dropped + c.duplicated, "{c}");
        assert_eq!(out.len() as u64, c.sent);
        let inversions = out.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(
            inversions as u64 >= c.reordered,
            "{inversions} inversions, {c}"
        );
        let mut distinct = out.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 2_000, "nothing lost");
    }

    #[test]
    fn link_releases_a_held_datagram_after_hold_max() {
        let imp = Impairment {
            reorder: 1.0,
            hold_max: Duration::from_millis(50),
            ..Impairment::NONE
        };
        let mut link = Link::new(imp, 1);
        let t0 = Instant::now();
        link.handle_datagram(t0, &dgram(1));
        assert_eq!(link.poll_transmit(t0), None, "held");
        assert_eq!(link.poll_timeout(), Some(t0 + Duration::from_millis(50)));
        assert_eq!(link.poll_transmit(t0 + Duration::from_millis(49)), None);
        let d = link.poll_transmit(t0 + Duration::from_millis(50));
        assert_eq!(d.as_deref().map(seq), Some(1));
        assert_eq!(
            link.counters().reordered,
            0,
            "released alone, not overtaken"
        );
    }

    #[test]
    fn link_delays_by_delay_plus_jitter() {
        let imp = Impairment {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            ..Impairment::NONE
        };
        let mut link = Link::new(imp, 5);
        let t0 = Instant::now();
        for i in 0..100 {
            link.handle_datagram(t0, &dgram(i));
        }
        assert_eq!(link.poll_transmit(t0 + Duration::from_millis(19)), None);
        let mut n = 0;
        while link.poll_transmit(t0 + Duration::from_millis(30)).is_some() {
            n += 1;
        }
        assert_eq!(n, 100);
    }

    #[test]
    fn link_counts_repeated_payloads() {
        let mut link = Link::new(Impairment::NONE, 1);
        let now = Instant::now();
        for d in [dgram(1), dgram(2), dgram(1), dgram(1)] {
            link.handle_datagram(now, &d);
        }
        assert_eq!(link.counters().repeated, 2);
    }

    /// The two peers of a proxy on loopback: `down` talks to the proxy, `up` is its upstream.
    struct Lab {
        proxy: Proxy,
        down: UdpSocket,
        up: UdpSocket,
    }

    const DEADLINE: Duration = Duration::from_secs(10);

    impl Lab {
        fn new(to_up: Impairment, to_down: Impairment, seed: u64) -> Self {
            let bind = || {
                let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                s
            };
            let (down, up) = (bind(), bind());
            let proxy = Proxy::start(up.local_addr().unwrap(), None, to_up, to_down, seed);
            Self { proxy, down, up }
        }

        /// Sends `n` numbered datagrams from `from` through the proxy in batches of 50 (so no
        /// socket buffer overflows), each batch waiting until the proxy has received it and
        /// `to` has received everything the proxy sent; returns the sequence numbers `to`
        /// received, in arrival order.
        fn send(&self, from: &UdpSocket, to: &UdpSocket, upward: bool, n: u32) -> Vec<u32> {
            let direction = |c: ProxyCounters| {
                if upward {
                    c.to_upstream
                } else {
                    c.to_downstream
                }
            };
            let base = direction(self.proxy.counters());
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            let mut sent = 0;
            for batch in (0..n).collect::<Vec<_>>().chunks(50) {
                for &i in batch {
                    from.send_to(&dgram(i), self.proxy.local_addr()).unwrap();
                }
                sent += batch.len() as u64;
                let start = Instant::now();
                loop {
                    let idle = {
                        let l = lock(&self.proxy.links);
                        let link = if upward {
                            &l.to_upstream
                        } else {
                            &l.to_downstream
                        };
                        link.poll_timeout().is_none()
                    };
                    let c = direction(self.proxy.counters());
                    if idle
                        && c.received - base.received == sent
                        && c.sent - base.sent == got.len() as u64
                    {
                        break;
                    }
                    if let Ok((len, _)) = to.recv_from(&mut buf) {
                        got.push(seq(&buf[..len]));
                    }
                    assert!(start.elapsed() < DEADLINE, "batch not through: {c}");
                }
            }
            got
        }
    }

    #[test]
    fn proxy_without_impairment_forwards_both_ways_in_order() {
        let lab = Lab::new(Impairment::NONE, Impairment::NONE, 1);
        let up = lab.send(&lab.down, &lab.up, true, 200);
        assert_eq!(up, (0..200).collect::<Vec<_>>());
        assert_eq!(lab.proxy.downstream(), Some(lab.down.local_addr().unwrap()));
        let down = lab.send(&lab.up, &lab.down, false, 200);
        assert_eq!(down, (0..200).collect::<Vec<_>>());
        let c = lab.proxy.counters();
        assert_eq!((c.to_upstream.sent, c.to_downstream.sent), (200, 200));
        assert_eq!((c.unroutable, c.send_errors), (0, 0));
    }

    #[test]
    fn proxy_loss_is_within_bounds_and_reproducible() {
        let run = |seed| {
            let lab = Lab::new(Impairment::loss(0.2), Impairment::loss(0.2), seed);
            let up = lab.send(&lab.down, &lab.up, true, 1_000);
            let down = lab.send(&lab.up, &lab.down, false, 1_000);
            (up, down, lab.proxy.counters())
        };
        let (up, down, c) = run(42);
        for (dir, got, c) in [("up", &up, c.to_upstream), ("down", &down, c.to_downstream)] {
            let lost = 1_000 - got.len();
            assert!(
                (120..=280).contains(&lost),
                "{dir}: lost {lost} of 1000 at 20 %"
            );
            assert_eq!(c.dropped as usize, lost, "{dir}: {c}");
            assert!(got.windows(2).all(|w| w[0] < w[1]), "{dir}: order kept");
        }
        let again = run(42);
        assert_eq!(
            (&again.0, &again.1),
            (&up, &down),
            "same seed, same datagrams lost"
        );
    }

    #[test]
    fn proxy_duplicates_and_reorders() {
        let imp = Impairment {
            duplicate: 0.2,
            reorder: 0.2,
            hold_max: Duration::from_millis(20),
            ..Impairment::NONE
        };
        let lab = Lab::new(imp, Impairment::NONE, 9);
        let got = lab.send(&lab.down, &lab.up, true, 500);
        let c = lab.proxy.counters().to_upstream;
        assert!(c.duplicated > 0 && c.reordered > 0, "{c}");
        assert_eq!(got.len() as u64, c.sent, "{c}");
        assert_eq!(c.sent, 500 + c.duplicated, "{c}");
        assert!(
            got.windows(2).any(|w| w[1] < w[0]),
            "some datagram arrived late"
        );
        let mut distinct = got.clone();
        distinct.sort_unstable();
        let all = distinct.len();
        distinct.dedup();
        assert!(
            distinct.len() == 500 && all > 500,
            "every datagram, some twice"
        );
    }

    #[test]
    fn proxy_delays() {
        let imp = Impairment {
            delay: Duration::from_millis(40),
            ..Impairment::NONE
        };
        let lab = Lab::new(imp, Impairment::NONE, 1);
        let t0 = Instant::now();
        lab.down.send_to(&dgram(1), lab.proxy.local_addr()).unwrap();
        let mut buf = [0u8; 16];
        let start = Instant::now();
        loop {
            if let Ok((n, _)) = lab.up.recv_from(&mut buf) {
                assert_eq!(seq(&buf[..n]), 1);
                break;
            }
            assert!(start.elapsed() < DEADLINE, "delayed datagram never came");
        }
        assert!(
            t0.elapsed() >= Duration::from_millis(40),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn dropping_the_proxy_stops_it_and_frees_its_port() {
        let up = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let proxy = Proxy::start(
            up.local_addr().unwrap(),
            None,
            Impairment::NONE,
            Impairment::NONE,
            1,
        );
        let addr = proxy.local_addr();
        let start = Instant::now();
        drop(proxy);
        assert!(start.elapsed() < Duration::from_secs(2), "stopped promptly");
        UdpSocket::bind(addr).expect("the proxy's socket is closed");
    }
}
