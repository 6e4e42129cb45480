//! Unit tests of the socket backend.

mod basics {
    use std::net::Ipv4Addr;
    use std::time::Instant;

    use super::super::*;

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

mod addresses {
    use std::net::{IpAddr, Ipv4Addr, UdpSocket};
    use std::time::{Duration, Instant};

    use super::super::*;

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

mod ring {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
    use std::time::{Duration, Instant};

    use super::super::*;

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const LO6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

    fn drain(io: &mut SocketIo, want: usize) -> Vec<(Vec<u8>, u8, u16)> {
        let mut rx = Burst::new(8, || io.new_buf());
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(10);
        while got.len() < want && Instant::now() < end {
            io.rx_burst(&mut rx, Some(Duration::from_millis(5)));
            for p in rx.packets() {
                got.push((p.payload().to_vec(), p.local_addr, p.local_port));
            }
        }
        got
    }

    /// The ring takes the IPv4 port's packets (its socket's copy is dropped by the socket
    /// filter), leaves an IPv6 port and an IPv4 datagram longer than a frame to the sockets,
    /// and drops (counting) a packet to a closed port of the range.
    #[test]
    fn ring_takes_ipv4_and_leaves_the_rest_to_the_sockets() {
        let (mut io, port) = (0..200u16)
            .find_map(|k| {
                let base = 46000 + (std::process::id() % 50) as u16 * 100 + k * 4;
                let io = SocketIo::with_addresses(vec![LO, LO6], base..=base + 3).ok()?;
                let mut io = io.with_rx_ring(true).expect("ring (needs CAP_NET_RAW)");
                (io.open_port(0, base).is_ok() && io.open_port(1, base).is_ok())
                    .then_some((io, base))
            })
            .expect("free ports");
        assert!(io.rx_ring());
        let p4 = UdpSocket::bind((LO, 0)).unwrap();
        let p6 = UdpSocket::bind((LO6, 0)).unwrap();
        p4.send_to(b"ring", (LO, port)).unwrap();
        p6.send_to(b"six", (LO6, port)).unwrap();
        p4.send_to(&[7u8; 2000], (LO, port + 1)).unwrap();
        p4.send_to(b"closed", (LO, port + 2)).unwrap();
        let mut got: Vec<(usize, u8, u16)> = drain(&mut io, 3)
            .into_iter()
            .map(|(d, a, p)| (d.len(), a, p))
            .collect();
        got.sort_unstable();
        // "ring" (4 bytes, IPv4, through the ring), "six" (IPv6), 2000 bytes (IPv4 socket).
        assert_eq!(got, vec![(3, 1, port), (4, 0, port), (2000, 0, port + 1)]);
        // The IPv4 RTP socket's copy was filtered out: nothing waits in it.
        let s = io.sockets[io.slot(0, port).unwrap()].as_ref().unwrap();
        let mut b = [0u8; 8];
        assert!(s.recv_from(&mut b).is_err());
        assert!(
            io.ring.as_ref().unwrap().drops >= 1,
            "the closed port's packet"
        );
        // Off again: the socket takes its packets itself.
        let mut io = io.with_rx_ring(false).unwrap();
        assert!(!io.rx_ring());
        p4.send_to(b"sock", (LO, port)).unwrap();
        assert_eq!(drain(&mut io, 1), vec![(b"sock".to_vec(), 0, port)]);
    }

    /// Coalescing: a wait after a sparse one sleeps first, so packets sent meanwhile arrive
    /// together; a wait that found nothing ends it (the next blocks as usual).
    #[test]
    fn coalescing_gathers_what_arrives_during_the_sleep() {
        let (io, port) = (0..200u16)
            .find_map(|k| {
                let base = 47000 + (std::process::id() % 50) as u16 * 100 + k * 2;
                let mut io = SocketIo::new(LO, base..=base + 1).ok()?;
                io.open_port(0, base).is_ok().then_some((io, base))
            })
            .expect("free ports");
        let mut io = io.with_coalesce(Duration::from_secs(1));
        assert_eq!(io.coalesce(), MAX_COALESCE, "clamped");
        let mut rx = Burst::new(8, || io.new_buf());
        let p = UdpSocket::bind((LO, 0)).unwrap();
        p.send_to(b"first", (LO, port)).unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        while io.rx_burst(&mut rx, Some(Duration::from_millis(5))) == 0 && Instant::now() < end {}
        assert!(io.sparse);
        // Three more are already waiting: the next wait still sleeps the bound first, then
        // takes all three in one pass.
        for _ in 0..3 {
            p.send_to(b"more", (LO, port)).unwrap();
        }
        let started = Instant::now();
        let n = io.rx_burst(&mut rx, Some(Duration::from_millis(200)));
        assert!(started.elapsed() >= MAX_COALESCE);
        assert_eq!(n, 3, "gathered in one pass");
        // Nothing more: this wait sleeps, finds nothing and ends the coalescing.
        assert_eq!(io.rx_burst(&mut rx, Some(Duration::from_millis(100))), 0);
        assert!(!io.sparse);
    }
}

mod ring_fairness {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
    use std::time::{Duration, Instant};

    use super::super::*;

    /// A flood through the ring does not starve a socket (here IPv6) the ring does not serve.
    #[test]
    fn ring_flood_does_not_starve_the_sockets() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let (mut io, port) = (0..200u16)
            .find_map(|k| {
                let base = 48000 + (std::process::id() % 50) as u16 * 100 + k * 2;
                let io = SocketIo::with_addresses(vec![lo, lo6], base..=base + 1).ok()?;
                let mut io = io.with_rx_ring(true).expect("ring (needs CAP_NET_RAW)");
                (io.open_port(0, base).is_ok() && io.open_port(1, base).is_ok())
                    .then_some((io, base))
            })
            .expect("free ports");
        let p4 = UdpSocket::bind((lo, 0)).unwrap();
        for k in 0..200u8 {
            p4.send_to(&[k], (lo, port)).unwrap();
        }
        UdpSocket::bind((lo6, 0))
            .unwrap()
            .send_to(b"six", (lo6, port))
            .unwrap();
        let mut rx = Burst::new(8, || io.new_buf());
        let (mut flood, mut six_at, mut bursts) = (0, None, 0);
        let end = Instant::now() + Duration::from_secs(10);
        while (flood < 200 || six_at.is_none()) && Instant::now() < end {
            if io.rx_burst(&mut rx, Some(Duration::from_millis(2))) > 0 {
                bursts += 1;
            }
            for p in rx.packets() {
                if p.local_addr == 1 {
                    six_at.get_or_insert(bursts);
                } else {
                    assert_eq!(p.payload(), &[flood as u8], "in order");
                    flood += 1;
                }
            }
        }
        assert_eq!(flood, 200);
        let at = six_at.expect("the IPv6 socket was served");
        assert!(at <= 3, "served in burst {at}, not after the flood");
    }
}
