//! Many RTP streams from one test-owned UDP socket, for tests with many calls: [`RtpMany`]
//! binds a socket (inside a network namespace of the test topology, or here), sends one
//! 20 ms paced stream to each destination it is given (each stream its own SSRC, the
//! destination changeable while it runs, e.g. after a re-INVITE) and records every datagram
//! it receives: arrival time, source address, SSRC and sequence number. That record is the
//! test's capture: which relay address each stream's packets came from, and when.
//!
//! Sending is bounded: at most `max_packets` per stream, and it stops when dropped.
//! Pacing packets 20 ms apart is traffic generation, not waiting for an event.

use std::collections::HashMap;
use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::rtp::{build_packet, RtpHeader, PTIME};

/// One datagram received, as captured.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// When it arrived (read by the receiving thread).
    pub at: Instant,
    /// Its source.
    pub from: SocketAddr,
    /// Its RTP SSRC (0 if not RTP).
    pub ssrc: u32,
    /// Its RTP sequence number.
    pub seq: u16,
}

#[derive(Debug, Default)]
struct Streams {
    /// SSRC → (destination, packets sent).
    to: HashMap<u32, (SocketAddr, u16)>,
}

/// A socket sending many paced streams and capturing what it receives (see the module).
#[derive(Debug)]
pub struct RtpMany {
    sock: Arc<UdpSocket>,
    streams: Arc<Mutex<Streams>>,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Binds `addr` inside network namespace `ns` (`/var/run/netns/NS`; `None`: this namespace):
/// a short-lived thread enters it (`setns` changes only the calling thread) and binds
/// there; the socket stays in that namespace whichever thread uses it.
///
/// # Panics
/// If the namespace cannot be entered or the address bound.
#[must_use]
pub fn bind_udp_in(ns: Option<&str>, addr: SocketAddr) -> UdpSocket {
    let Some(ns) = ns else {
        return UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    };
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("setns into {path}: {e}"));
        UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr} in {path}: {e}"))
    })
    .join()
    .expect("the namespace thread")
}

impl RtpMany {
    /// Binds `addr` in namespace `ns` (see [`bind_udp_in`]) with a large receive buffer,
    /// and starts capturing; streams start with [`RtpMany::send_to`].
    ///
    /// # Panics
    /// See [`bind_udp_in`].
    #[must_use]
    pub fn bind(ns: Option<&str>, addr: SocketAddr, max_packets: u16) -> Self {
        let sock = bind_udp_in(ns, addr);
        // Thousands of packets a second arrive here: room for a stall of the capture thread
        // on a loaded machine (root may exceed rmem_max).
        let _ =
            nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBufForce, &(8 << 20));
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("set_read_timeout");
        let sock = Arc::new(sock);
        let arrivals = Arc::new(Mutex::new(Vec::with_capacity(1 << 16)));
        let streams = Arc::new(Mutex::new(Streams::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let rx = {
            let (sock, arrivals, stop) = (sock.clone(), arrivals.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        let at = Instant::now();
                        let (ssrc, seq) =
                            RtpHeader::parse(&buf[..n]).map_or((0, 0), |h| (h.ssrc, h.seq));
                        lock(&arrivals).push(Arrival {
                            at,
                            from,
                            ssrc,
                            seq,
                        });
                    }
                }
            })
        };
        let tx = {
            let (sock, streams, stop) = (sock.clone(), streams.clone(), stop.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut tick: u32 = 0;
                while !stop.load(Ordering::Relaxed) {
                    let batch: Vec<(u32, SocketAddr, u16)> = {
                        let mut s = lock(&streams);
                        s.to.iter_mut()
                            .filter(|(_, (_, n))| *n < max_packets)
                            .map(|(ssrc, (to, n))| {
                                *n += 1;
                                (*ssrc, *to, *n - 1)
                            })
                            .collect()
                    };
                    for (ssrc, to, n) in batch {
                        let mut p = build_packet(ssrc, n);
                        if n == 0 {
                            p[1] |= 0x80;
                        }
                        let _ = sock.send_to(&p, to);
                    }
                    tick += 1;
                    // Keep the 20 ms grid without drifting (a late tick is not made up).
                    let next = start + PTIME * tick;
                    match next.checked_duration_since(Instant::now()) {
                        Some(d) => std::thread::sleep(d),
                        None => tick = (start.elapsed().as_millis() / PTIME.as_millis()) as u32,
                    }
                }
            })
        };
        Self {
            sock,
            streams,
            arrivals,
            stop,
            threads: vec![rx, tx],
        }
    }

    /// The socket's address.
    ///
    /// # Panics
    /// Never once bound.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("local_addr")
    }

    /// Sends stream `ssrc` to `to` from the next tick on (starting it, or moving it: its
    /// sequence goes on).
    pub fn send_to(&self, ssrc: u32, to: SocketAddr) {
        lock(&self.streams).to.entry(ssrc).or_insert((to, 0)).0 = to;
    }

    /// Stops stream `ssrc`.
    pub fn stop_stream(&self, ssrc: u32) {
        lock(&self.streams).to.remove(&ssrc);
    }

    /// Where stream `ssrc` goes now.
    #[must_use]
    pub fn destination(&self, ssrc: u32) -> Option<SocketAddr> {
        lock(&self.streams).to.get(&ssrc).map(|(to, _)| *to)
    }

    /// The capture so far.
    #[must_use]
    pub fn arrivals(&self) -> Vec<Arrival> {
        lock(&self.arrivals).clone()
    }

    /// How many datagrams were captured so far.
    #[must_use]
    pub fn captured(&self) -> usize {
        lock(&self.arrivals).len()
    }

    /// Calls `f` with the capture so far, without copying it.
    pub fn with_arrivals<R>(&self, f: impl FnOnce(&[Arrival]) -> R) -> R {
        f(&lock(&self.arrivals))
    }

    /// Stops sending and capturing.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for RtpMany {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_sent_moved_and_captured() {
        let a = RtpMany::bind(None, "127.0.0.1:0".parse().unwrap(), 1000);
        let b = RtpMany::bind(None, "127.0.0.1:0".parse().unwrap(), 1000);
        let c = RtpMany::bind(None, "127.0.0.1:0".parse().unwrap(), 1000);
        a.send_to(7, b.addr());
        a.send_to(8, b.addr());
        let deadline = Instant::now() + Duration::from_secs(10);
        let count = |m: &RtpMany, ssrc: u32| {
            m.with_arrivals(|v| v.iter().filter(|x| x.ssrc == ssrc).count())
        };
        while count(&b, 7) < 3 || count(&b, 8) < 3 {
            assert!(Instant::now() < deadline, "streams did not arrive");
            std::thread::sleep(Duration::from_millis(10));
        }
        a.send_to(7, c.addr());
        while count(&c, 7) < 3 {
            assert!(Instant::now() < deadline, "the moved stream did not arrive");
            std::thread::sleep(Duration::from_millis(10));
        }
        let got = b.arrivals();
        assert!(got.iter().all(|x| x.from == a.addr()));
        let seqs: Vec<u16> = got.iter().filter(|x| x.ssrc == 8).map(|x| x.seq).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        assert_eq!(count(&c, 8), 0);
        assert_eq!(a.destination(7), Some(c.addr()));
    }
}
