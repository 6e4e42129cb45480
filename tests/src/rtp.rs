//! A test-owned RTP endpoint: a loopback UDP socket that sends numbered G.711 packets every
//! 20 ms and records everything it receives, so tests can check the relay byte for byte.
//!
//! Pacing packets 20 ms apart is traffic generation, not waiting: nothing here sleeps to wait
//! for an event.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// RTP header length without CSRCs or extensions.
pub const HEADER_LEN: usize = 12;
/// G.711 payload of one 20 ms frame.
pub const FRAME_LEN: usize = 160;
/// Frame spacing.
pub const PTIME: Duration = Duration::from_millis(20);

/// A parsed RTP header (fixed part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Version (2).
    pub version: u8,
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Parses the fixed header; `None` if `data` is shorter than 12 bytes.
    #[must_use]
    pub fn parse(data: &[u8]) -> Option<Self> {
        if data.len() < HEADER_LEN {
            return None;
        }
        Some(Self {
            version: data[0] >> 6,
            marker: data[1] & 0x80 != 0,
            payload_type: data[1] & 0x7f,
            seq: u16::from_be_bytes([data[2], data[3]]),
            timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
        })
    }
}

/// Builds packet number `n` of stream `ssrc`: PCMA (8), seq `1000 + n`, timestamp `160 * n`,
/// a 160-byte payload unique to (`ssrc`, `n`).
#[must_use]
pub fn build_packet(ssrc: u32, n: u16) -> Vec<u8> {
    let seq = 1000u16.wrapping_add(n);
    let ts = 160u32.wrapping_mul(u32::from(n));
    let mut p = Vec::with_capacity(HEADER_LEN + FRAME_LEN);
    p.push(0x80);
    p.push(8);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&n.to_be_bytes());
    for i in 0..FRAME_LEN - 6 {
        p.push((i as u8).wrapping_mul(7) ^ (n as u8));
    }
    p
}

/// One datagram received by an [`RtpPeer`].
#[derive(Debug, Clone)]
pub struct Received {
    /// Its source.
    pub from: SocketAddr,
    /// Its bytes.
    pub data: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

/// A UDP socket on loopback that records what it receives (in a thread) and can send a paced
/// stream (in another). Threads stop when it is dropped.
#[derive(Debug)]
pub struct RtpPeer {
    sock: Arc<UdpSocket>,
    received: Arc<Mutex<Vec<Received>>>,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    payload_type: u8,
}

impl RtpPeer {
    /// Binds `addr` and starts recording.
    ///
    /// # Panics
    /// If the socket cannot be bound.
    #[must_use]
    pub fn bind(addr: SocketAddr) -> Self {
        let sock = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind RTP peer {addr}: {e}"));
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("set_read_timeout");
        let sock = Arc::new(sock);
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let rx = {
            let (sock, received, stop) = (sock.clone(), received.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        let r = Received {
                            from,
                            data: buf[..n].to_vec(),
                            at: Instant::now(),
                        };
                        received
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(r);
                    }
                }
            })
        };
        Self {
            sock,
            received,
            sent: Arc::default(),
            stop,
            threads: vec![rx],
            payload_type: 8,
        }
    }

    /// Sends with this payload type (default 8, PCMA; 0 for a PCMU peer).
    #[must_use]
    pub const fn with_payload_type(mut self, pt: u8) -> Self {
        self.payload_type = pt;
        self
    }

    /// The local address.
    ///
    /// # Panics
    /// If the socket has no local address (cannot happen once bound).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().expect("local_addr")
    }

    /// Starts sending `count` packets of stream `ssrc` ([`build_packet`]) to `to`, one every
    /// [`PTIME`], from this socket.
    pub fn start_sending(&mut self, to: SocketAddr, ssrc: u32, count: u16) {
        let pt = self.payload_type;
        let (sock, sent, stop) = (self.sock.clone(), self.sent.clone(), self.stop.clone());
        self.threads.push(std::thread::spawn(move || {
            let start = Instant::now();
            for n in 0..count {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let mut p = build_packet(ssrc, n);
                p[1] = pt;
                if sock.send_to(&p, to).is_ok() {
                    sent.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(p);
                }
                // Keep the 20 ms grid without drifting.
                let next = start + PTIME * (u32::from(n) + 1);
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
        }));
    }

    /// Everything received so far.
    #[must_use]
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Everything sent so far.
    #[must_use]
    pub fn sent(&self) -> Vec<Vec<u8>> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops the threads (sending and receiving) and waits for them.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for RtpPeer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Checks that `packets` form one well-formed 20 ms G.711 stream: version 2, payload type 0
/// or 8, one SSRC, sequence numbers +1 and timestamps +160 from packet to packet, 160-byte
/// payloads, marker bit on the first packet.
///
/// # Errors
/// The first rule broken, with the packet index.
pub fn check_g711_stream(packets: &[&[u8]]) -> Result<(), String> {
    let mut prev: Option<RtpHeader> = None;
    for (i, p) in packets.iter().enumerate() {
        let h =
            RtpHeader::parse(p).ok_or_else(|| format!("packet {i}: {} bytes, not RTP", p.len()))?;
        if h.version != 2 {
            return Err(format!("packet {i}: version {}", h.version));
        }
        if h.payload_type != 0 && h.payload_type != 8 {
            return Err(format!(
                "packet {i}: payload type {} is not G.711",
                h.payload_type
            ));
        }
        if p.len() != HEADER_LEN + FRAME_LEN {
            return Err(format!(
                "packet {i}: {} bytes, expected {}",
                p.len(),
                HEADER_LEN + FRAME_LEN
            ));
        }
        match prev {
            None => {
                if !h.marker {
                    return Err("packet 0: no marker bit on the first packet".into());
                }
            }
            Some(q) => {
                if h.ssrc != q.ssrc {
                    return Err(format!(
                        "packet {i}: SSRC {:#x} after {:#x}",
                        h.ssrc, q.ssrc
                    ));
                }
                if h.seq != q.seq.wrapping_add(1) {
                    return Err(format!("packet {i}: seq {} after {}", h.seq, q.seq));
                }
                if h.timestamp != q.timestamp.wrapping_add(160) {
                    return Err(format!(
                        "packet {i}: timestamp {} after {}",
                        h.timestamp, q.timestamp
                    ));
                }
            }
        }
        prev = Some(h);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packets_parse_and_differ() {
        let a = build_packet(0x1122_3344, 0);
        let b = build_packet(0x1122_3344, 1);
        assert_eq!(a.len(), HEADER_LEN + FRAME_LEN);
        let h = RtpHeader::parse(&b).unwrap();
        assert_eq!(
            h,
            RtpHeader {
                version: 2,
                marker: false,
                payload_type: 8,
                seq: 1001,
                timestamp: 160,
                ssrc: 0x1122_3344
            }
        );
        assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
        assert_ne!(
            build_packet(1, 5)[HEADER_LEN..],
            build_packet(2, 5)[HEADER_LEN..]
        );
    }

    #[test]
    fn stream_check() {
        let mut pkts: Vec<Vec<u8>> = (0..5).map(|n| build_packet(7, n)).collect();
        pkts[0][1] |= 0x80;
        let refs: Vec<&[u8]> = pkts.iter().map(Vec::as_slice).collect();
        assert_eq!(check_g711_stream(&refs), Ok(()));
        let mut gap = refs.clone();
        gap.remove(2);
        assert!(check_g711_stream(&gap)
            .unwrap_err()
            .contains("seq 1003 after 1001"));
        let no_marker: Vec<&[u8]> = refs[1..].to_vec();
        assert!(check_g711_stream(&no_marker)
            .unwrap_err()
            .contains("marker"));
    }

    #[test]
    fn peers_exchange_packets() {
        let block = crate::PortBlock::reserve(4);
        let mut a = RtpPeer::bind(block.addr(0));
        let b = RtpPeer::bind(block.addr(2));
        a.start_sending(b.addr(), 9, 3);
        let deadline = Instant::now() + Duration::from_secs(10);
        while b.received().len() < 3 {
            assert!(Instant::now() < deadline, "packets did not arrive");
            std::thread::sleep(Duration::from_millis(10));
        }
        let got = b.received();
        assert_eq!(got[0].from, a.addr());
        assert_eq!(
            got.iter().map(|r| r.data.clone()).collect::<Vec<_>>(),
            a.sent()
        );
    }
}
