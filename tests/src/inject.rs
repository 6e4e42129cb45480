//! An attacker for the "RTP Bleed" tests: a [`Sprayer`] sends well-formed, marked RTP to
//! every even port and RTCP to every odd port of a media port range from its own loopback
//! address, at a fixed rate for a bounded time, and records whatever comes back.
//!
//! Each port gets its own stream (one SSRC, sequence numbers +1, timestamps +160), so a relay
//! that latches onto any source showing a consistent stream would take it. Every injected
//! packet carries [`MARK`] at the start of its payload (RTP) and an SSRC in
//! [`SSRC_BASE`]`..`, so tests can recognise it wherever it lands.
//!
//! Pacing the packets is traffic generation, not waiting: nothing here sleeps to wait for an
//! event.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::rtp::{Received, FRAME_LEN, HEADER_LEN};

/// The first bytes of every injected RTP payload.
pub const MARK: &[u8; 8] = b"INJECTED";
/// Injected SSRCs are `SSRC_BASE + port`.
pub const SSRC_BASE: u32 = 0xB1EE_0000;

/// Whether `data` looks like an injected packet: an RTP/RTCP packet with an injected SSRC,
/// or the mark anywhere in it.
#[must_use]
pub fn is_injected(data: &[u8]) -> bool {
    let ssrc_at = |i: usize| {
        data.get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let is_rtcp = matches!(data.get(1), Some(200..=204));
    let ssrc = if is_rtcp { ssrc_at(4) } else { ssrc_at(8) };
    ssrc.is_some_and(|s| s >> 16 == SSRC_BASE >> 16) || data.windows(MARK.len()).any(|w| w == MARK)
}

/// How a [`Sprayer`] sprays.
#[derive(Debug, Clone)]
pub struct SprayPlan {
    /// The address to send from (any free port on it), e.g. `127.0.0.9`.
    pub from: IpAddr,
    /// The address sprayed.
    pub target: IpAddr,
    /// The ports sprayed, in turn (RTP to even ports, RTCP to odd ports).
    pub ports: RangeInclusive<u16>,
    /// Packets per second over all ports.
    pub rate: u32,
    /// Stop after this long at the latest.
    pub max_duration: Duration,
}

/// A running sprayer; stops when [`Sprayer::stop`] is called, its time is up, or it is
/// dropped.
#[derive(Debug)]
pub struct Sprayer {
    sock: Arc<UdpSocket>,
    sent: Arc<AtomicU64>,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// Packets sent per pacing step.
const STEP: Duration = Duration::from_millis(10);

impl Sprayer {
    /// Binds `plan.from` (any port) and starts spraying and recording.
    ///
    /// # Panics
    /// If the socket cannot be bound.
    #[must_use]
    pub fn start(plan: SprayPlan) -> Self {
        let sock = UdpSocket::bind((plan.from, 0))
            .unwrap_or_else(|e| panic!("bind sprayer on {}: {e}", plan.from));
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("set_read_timeout");
        let sock = Arc::new(sock);
        let sent = Arc::new(AtomicU64::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let rx = {
            let (sock, received, stop) = (sock.clone(), received.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        received
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(Received {
                                from,
                                data: buf[..n].to_vec(),
                                at: Instant::now(),
                            });
                    }
                }
            })
        };
        let tx = {
            let (sock, sent, stop) = (sock.clone(), sent.clone(), stop.clone());
            std::thread::spawn(move || spray(&sock, &plan, &sent, &stop))
        };
        Self {
            sock,
            sent,
            received,
            stop,
            threads: vec![rx, tx],
        }
    }

    /// The local address it sprays from.
    ///
    /// # Panics
    /// If the socket has no local address (cannot happen once bound).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("local_addr")
    }

    /// Packets sent so far.
    #[must_use]
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Everything received so far.
    #[must_use]
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops spraying and recording and waits for the threads.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Sprayer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spray(sock: &UdpSocket, plan: &SprayPlan, sent: &AtomicU64, stop: &AtomicBool) {
    let ports: Vec<u16> = plan.ports.clone().collect();
    if ports.is_empty() {
        return;
    }
    // Per port: the next sequence number of its stream.
    let mut seq: Vec<u16> = vec![0; ports.len()];
    let per_step = (u64::from(plan.rate) * STEP.as_millis() as u64 / 1000).max(1);
    let start = Instant::now();
    let mut next_port = 0usize;
    let mut step = 0u32;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < plan.max_duration {
        for _ in 0..per_step {
            let i = next_port;
            next_port = (next_port + 1) % ports.len();
            let port = ports[i];
            let ssrc = SSRC_BASE + u32::from(port);
            let pkt = if port.is_multiple_of(2) {
                rtp_packet(ssrc, seq[i])
            } else {
                rtcp_receiver_report(ssrc)
            };
            seq[i] = seq[i].wrapping_add(1);
            // Errors (e.g. ICMP port unreachable reported on a later send) do not matter.
            if sock
                .send_to(&pkt, SocketAddr::new(plan.target, port))
                .is_ok()
            {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        step += 1;
        let next = start + STEP * step;
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
}

/// An injected RTP packet: PCMU, marker clear, `seq`, timestamp `160 * seq`, payload
/// [`MARK`] then filler.
fn rtp_packet(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(HEADER_LEN + FRAME_LEN);
    p.extend_from_slice(&[0x80, 0]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(160u32.wrapping_mul(u32::from(seq))).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(MARK);
    p.resize(HEADER_LEN + FRAME_LEN, 0xff);
    p
}

/// An RTCP receiver report with one report block (about a made-up source) from `ssrc`.
fn rtcp_receiver_report(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&ssrc.wrapping_add(1).to_be_bytes());
    p.extend_from_slice(&[0u8; 20]);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn injected_packets_are_recognised_and_real_ones_are_not() {
        assert!(is_injected(&rtp_packet(SSRC_BASE + 20000, 7)));
        assert!(is_injected(&rtcp_receiver_report(SSRC_BASE + 20001)));
        assert_eq!(rtcp_receiver_report(1).len(), 32);
        assert!(!is_injected(&crate::rtp::build_packet(0xC0C0_0001, 3)));
    }

    #[test]
    fn sprays_every_port_at_the_rate_and_stops_in_time() {
        // A block whose four ports we can really bind: a port free when the block was handed
        // out may be taken by another process before we bind it, so try a few blocks.
        let (block, sinks) = (0..20)
            .find_map(|_| {
                let block = crate::PortBlock::reserve(4);
                let sinks: Option<Vec<UdpSocket>> = (0..4)
                    .map(|i| UdpSocket::bind(block.addr(i)).ok())
                    .collect();
                sinks.map(|s| (block, s))
            })
            .expect("no block of 4 free loopback ports in 20 tries");
        let mut s = Sprayer::start(SprayPlan {
            from: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)),
            target: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports: block.first()..=block.first() + 3,
            rate: 400,
            max_duration: Duration::from_millis(300),
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s.threads[1].is_finished() {
            assert!(Instant::now() < deadline, "sprayer did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
        s.stop();
        // 400/s for 0.3 s: ~120 packets, a multiple of the 4 ports per 10 ms step.
        assert!((40..=200).contains(&s.sent()), "sent {}", s.sent());
        let mut buf = [0u8; 2048];
        for (i, sink) in sinks.iter().enumerate() {
            sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let (n, from) = sink.recv_from(&mut buf).expect("every port sprayed");
            assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)));
            assert!(is_injected(&buf[..n]), "port {i}");
        }
        assert!(s.received().is_empty());
    }
}
