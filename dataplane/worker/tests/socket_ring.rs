//! The socket backend with its opt-in receive ring, raw sender and wake coalescing
//! (`DataplaneConfig::socket`), relaying real UDP over loopback: IPv4 legs (through the
//! ring), IPv6 legs on the same worker (through their sockets: the ring takes IPv4 only), and
//! an IPv4 datagram longer than a ring frame (through its socket). Needs `CAP_NET_RAW` (tests
//! run as root here); without it the start fails, naming the option.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callbridge_worker::{Dataplane, DataplaneConfig, SocketOptions};
use dp_api::{Clip, Codec, Command, Event, Latch, LegId, LegSpec, SrcMismatch};

const LO4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LO6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
const DEADLINE: Duration = Duration::from_secs(10);

fn spec(id: LegId, remote: SocketAddr) -> LegSpec {
    LegSpec {
        id,
        remote: Some(remote),
        latch: Latch::Off,
        src_mismatch: SrcMismatch::Drop,
        codec: Codec::Pcmu,
        media_timeout: None,
    }
}

fn peer(ip: IpAddr) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

fn recv(s: &UdpSocket, deadline: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let end = Instant::now() + deadline;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            return Some((buf[..n].to_vec(), from));
        }
    }
    None
}

fn wait_event(handle: &dp_api::DataplaneHandle, pred: impl Fn(&Event) -> bool) {
    let end = Instant::now() + DEADLINE;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let ev = handle.events().recv_timeout(left).expect("event in time");
        if pred(&ev) {
            return;
        }
    }
}

/// An RTP packet of `len` bytes (version 2, PCMU).
fn rtp(seq: u16, len: usize) -> Vec<u8> {
    let mut v = vec![0xd5u8; len];
    v[..12].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd]);
    v[2..4].copy_from_slice(&seq.to_be_bytes());
    v[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    v
}

/// Two bridged legs on `ip`; returns the peers (customer, agent) and the relay's addresses
/// for them.
fn bridge(
    handle: &dp_api::DataplaneHandle,
    ip: IpAddr,
) -> ((UdpSocket, SocketAddr), (UdpSocket, SocketAddr)) {
    let (c, g) = (peer(ip), peer(ip));
    let a = handle.plan.allocate().unwrap();
    let b = handle.plan.allocate().unwrap();
    handle
        .send(Command::AddLeg(spec(a, c.local_addr().unwrap())))
        .unwrap();
    handle
        .send(Command::AddLeg(spec(b, g.local_addr().unwrap())))
        .unwrap();
    handle.send(Command::Bridge { a, b }).unwrap();
    wait_event(handle, |e| *e == Event::LegAdded { leg: b });
    (
        (c, SocketAddr::new(ip, a.port())),
        (g, SocketAddr::new(ip, b.port())),
    )
}

#[test]
fn ring_relays_ipv4_and_leaves_ipv6_and_long_datagrams_to_the_sockets() {
    let base = 38000 + (std::process::id() % 500) as u16 * 8;
    let mut cfg = DataplaneConfig::new(LO4, base..=base + 3);
    cfg.extra_addresses = vec![LO6];
    cfg.socket = SocketOptions {
        raw_tx: true,
        rx_ring: true,
        coalesce: Duration::from_micros(100),
    };
    let (dp, handle) = Dataplane::start(cfg).expect("start (needs CAP_NET_RAW)");
    let ((c4, r_c4), (g4, r_g4)) = bridge(&handle, LO4);
    let ((c6, r_c6), (g6, r_g6)) = bridge(&handle, LO6);

    for round in 0..20u16 {
        // IPv4 both ways, through the ring and the raw sender.
        g4.send_to(&rtp(round, 172), r_g4).unwrap();
        let (d, from) = recv(&c4, DEADLINE).expect("IPv4 agent → customer");
        assert_eq!((d, from), (rtp(round, 172), r_c4));
        c4.send_to(&rtp(round, 172), r_c4).unwrap();
        let (d, from) = recv(&g4, DEADLINE).expect("IPv4 customer → agent");
        assert_eq!((d, from), (rtp(round, 172), r_g4));
        // IPv6 on the same worker, through the sockets.
        g6.send_to(&rtp(round, 172), r_g6).unwrap();
        let (d, from) = recv(&c6, DEADLINE).expect("IPv6 agent → customer");
        assert_eq!((d, from), (rtp(round, 172), r_c6));
        c6.send_to(&rtp(round, 172), r_c6).unwrap();
        let (d, from) = recv(&g6, DEADLINE).expect("IPv6 customer → agent");
        assert_eq!((d, from), (rtp(round, 172), r_g6));
    }
    // Longer than a ring frame holds: the ring leaves it, the port's socket takes it.
    let long = rtp(100, 2000);
    g4.send_to(&long, r_g4).unwrap();
    let (d, from) = recv(&c4, DEADLINE).expect("a long IPv4 datagram");
    assert_eq!((d.len(), from), (2000, r_c4));
    // A stranger's packet is the relay's to drop (not relayed), whichever path brought it.
    peer(LO4).send_to(&rtp(1, 172), r_c4).unwrap();
    assert!(recv(&g4, Duration::from_millis(300)).is_none());

    let fin = dp.shutdown();
    let s = &fin[0];
    assert_eq!(s.relay.rx_packets, 20 * 4 + 2, "{s:#?}");
    assert_eq!(s.io.backend_drops, 0, "{s:#?}");
    // The ports are free again.
    for r in [r_c4, r_g4, r_c6, r_g6] {
        UdpSocket::bind(r).expect("released at shutdown");
    }
}

#[test]
fn announcement_keeps_its_pace_with_coalescing_and_the_ring() {
    let base = 42000 + (std::process::id() % 500) as u16 * 4;
    let mut cfg = DataplaneConfig::new(LO4, base..=base + 1);
    cfg.socket = SocketOptions {
        raw_tx: false,
        rx_ring: true,
        coalesce: Duration::from_micros(200),
    };
    let (dp, handle) = Dataplane::start(cfg).expect("start (needs CAP_NET_RAW)");
    let c = peer(LO4);
    let a = handle.plan.allocate().unwrap();
    handle
        .send(Command::AddLeg(spec(a, c.local_addr().unwrap())))
        .unwrap();
    handle
        .send(Command::Play {
            leg: a,
            clip: Arc::new(Clip::builtin_prompt()),
            looping: true,
        })
        .unwrap();
    recv(&c, DEADLINE).expect("the announcement starts");
    let start = Instant::now();
    let mut count = 0;
    while start.elapsed() < Duration::from_secs(1) {
        if recv(&c, Duration::from_millis(100)).is_some() {
            count += 1;
        }
    }
    assert!(
        (25..=60).contains(&count),
        "about 50 packets/s, got {count}"
    );
    dp.shutdown();
}
