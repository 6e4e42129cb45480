//! DPDK end to end on virtual devices, without hugepages. EAL can be initialised only once per
//! process, so this file has a single `#[test]` that runs the scenarios in order.

use std::mem;

use callbridge_dpdk::lcore::{self, SocketId};
use callbridge_dpdk::{
    Burst, DpdkError, Eal, EalArgs, Mbuf, Mempool, Port, PortConf, PortId, RxCksum, RxQueue,
    TxQueue,
};

const FRAME_LEN: usize = 14 + 20 + 8 + 12 + 160; // Ethernet + IPv4 + UDP + RTP + 20 ms G.711

/// An Ethernet/IPv4/UDP/RTP frame whose RTP sequence number is `seq`.
fn frame(seq: u16) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((FRAME_LEN - 14) as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[127, 0, 0, 1]);
    f[30..34].copy_from_slice(&[127, 0, 0, 2]);
    f[34..36].copy_from_slice(&30000u16.to_be_bytes());
    f[36..38].copy_from_slice(&40000u16.to_be_bytes());
    f[38..40].copy_from_slice(&((FRAME_LEN - 34) as u16).to_be_bytes());
    f[42] = 0x80;
    f[44..46].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[54..].iter_mut().enumerate() {
        *b = (i as u8) ^ (seq as u8);
    }
    f
}

fn seq_of(m: &Mbuf) -> u16 {
    u16::from_be_bytes([m.data()[44], m.data()[45]])
}

fn mbuf_with(pool: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = pool.alloc().expect("pool has mbufs");
    m.append(bytes.len())
        .expect("tailroom")
        .copy_from_slice(bytes);
    m
}

#[test]
fn eal_mempool_mbuf_port_scenarios() {
    before_init();
    // Two lcores: 0 is main, 1 an EAL worker for `lcore::launch`.
    let args = EalArgs::new()
        .lcores("0-1")
        .no_huge(256)
        .no_pci()
        .unique_file_prefix()
        .log_level("lib.eal:warning")
        .vdev("net_ring0")
        .vdev("net_null0")
        .build();
    let eal = Eal::init(&args).expect("EAL init with --no-huge and virtual devices");
    eal_basics(&eal, &args);

    let pool = Mempool::new(
        "cb_test_pool",
        4095,
        32,
        Mempool::DEFAULT_DATA_ROOM,
        SocketId::ANY,
    )
    .expect("mempool");
    mempool_errors(&pool);
    mbuf_ops(&pool);
    burst_ops(&pool);
    ring_port_loopback(&pool);
    null_port(&pool);
    registered_thread(&pool);
    launched_on_worker_lcore(&pool);

    // Everything is back in the pool, so dropping the pool frees it and EAL cleans up.
    assert_eq!(pool.in_use(), 0, "mbufs leaked: {pool:?}");
    drop(pool);
    assert!(Eal::is_initialized(), "Eal still holds the guard");
    let runtime_dir = eal.runtime_dir();
    assert!(runtime_dir.ends_with(prefix_of(&args)), "{runtime_dir:?}");
    drop(eal);
    std::fs::remove_dir_all(&runtime_dir).expect("remove this test's EAL runtime dir");
    assert!(
        !Eal::is_initialized(),
        "rte_eal_cleanup ran with the last guard"
    );
    assert_eq!(Port::count(), Err(DpdkError::EalNotInitialized));
}

fn prefix_of(args: &[String]) -> &str {
    let i = args.iter().position(|a| a == "--file-prefix").unwrap();
    &args[i + 1]
}

fn before_init() {
    assert!(!Eal::is_initialized());
    assert_eq!(Port::count(), Err(DpdkError::EalNotInitialized));
    assert_eq!(
        Mempool::new("early", 63, 0, 2176, SocketId::ANY).unwrap_err(),
        DpdkError::EalNotInitialized
    );
    assert_eq!(lcore::lcore_id(), None);
    // A NUL byte is rejected before EAL is touched, so init is still possible afterwards.
    assert!(matches!(
        Eal::init(&["-l\0".to_owned()]),
        Err(DpdkError::InvalidInput { .. })
    ));
}

fn eal_basics(eal: &Eal, args: &[String]) {
    assert!(Eal::is_initialized());
    assert_eq!(eal.args(), args);
    assert_eq!(
        Eal::init(args).unwrap_err(),
        DpdkError::EalAlreadyInitialized
    );
    assert_eq!(
        lcore::lcore_id(),
        Some(0),
        "the init thread is the main lcore"
    );
    assert_eq!(eal.main_lcore(), 0);
    assert_eq!(eal.lcore_count(), 2);
    assert_eq!(eal.lcores(), vec![0, 1]);
    assert!(lcore::tsc_hz() > 0, "TSC calibrated");
    let t0 = lcore::rdtsc();
    assert!(lcore::rdtsc() >= t0);
    let _ = lcore::socket_id();
    // Both plugin PMDs registered their devices.
    assert_eq!(Port::count(), Ok(2));
}

fn mempool_errors(pool: &Mempool) {
    assert_eq!(pool.name(), "cb_test_pool");
    assert_eq!(pool.capacity(), 4095);
    assert_eq!(pool.available(), 4095);
    assert_eq!(pool.in_use(), 0);
    assert!(matches!(
        Mempool::new("cb_test_pool", 63, 0, 2176, SocketId::ANY),
        Err(DpdkError::AlreadyExists {
            call: "rte_pktmbuf_pool_create",
            ..
        })
    ));
    assert!(matches!(
        Mempool::new(
            "a_name_that_is_far_too_long_for_dpdk",
            63,
            0,
            2176,
            SocketId::ANY
        ),
        Err(DpdkError::InvalidInput { .. })
    ));
    assert!(matches!(
        Mempool::new("cb_bad_cache", 63, 4096, 2176, SocketId::ANY),
        Err(DpdkError::InvalidArgument { .. })
    ));
}

/// The Rust-side field accessors (read from the bindgen layout) agree with DPDK's own
/// inline functions (through the C shim).
fn agrees_with_c(m: &Mbuf) {
    let p = m.as_ptr();
    // SAFETY: m owns a valid mbuf; these calls only read it.
    unsafe {
        use callbridge_dpdk::sys;
        assert_eq!(m.len(), usize::from(sys::_rte_pktmbuf_data_len(p)));
        assert_eq!(m.pkt_len(), sys::_rte_pktmbuf_pkt_len(p) as usize);
        assert_eq!(m.headroom(), usize::from(sys::_rte_pktmbuf_headroom(p)));
        assert_eq!(m.tailroom(), usize::from(sys::_rte_pktmbuf_tailroom(p)));
        assert_eq!(m.segments(), sys::_rte_pktmbuf_nb_segs(p));
        assert_eq!(m.ol_flags(), sys::_rte_mbuf_ol_flags(p));
        assert_eq!(
            m.data().as_ptr(),
            sys::_rte_pktmbuf_mtod(p).cast::<u8>().cast_const()
        );
    }
}

fn mbuf_ops(pool: &Mempool) {
    let mut m = pool.alloc().expect("alloc");
    assert!(pool.owns(&m));
    assert_eq!(pool.in_use(), 1);
    assert!(m.is_empty());
    assert_eq!(m.headroom(), 128);
    assert_eq!(m.tailroom(), 2048);
    assert_eq!(m.segments(), 1);
    agrees_with_c(&m);
    assert_eq!(m.rx_l4_cksum(), callbridge_dpdk::RxCksum::Unknown);
    assert_eq!(m.rx_ip_cksum(), callbridge_dpdk::RxCksum::Unknown);

    let f = frame(7);
    m.append(f.len()).unwrap().copy_from_slice(&f);
    agrees_with_c(&m);
    assert_eq!(m.len(), FRAME_LEN);
    assert_eq!(m.pkt_len(), FRAME_LEN);
    assert_eq!(m.data(), &f[..]);
    assert_eq!(seq_of(&m), 7);

    // Edit in place through data_mut: the bytes the next reader sees change.
    m.data_mut()[44..46].copy_from_slice(&9u16.to_be_bytes());
    assert_eq!(seq_of(&m), 9);
    assert_eq!(AsRef::<[u8]>::as_ref(&m), m.data());

    // Too much growth is refused without change.
    assert!(m.append(m.tailroom() + 1).is_none());
    assert!(m.prepend(129).is_none());
    assert!(m.trim(FRAME_LEN + 1).is_none());
    assert!(m.adj(FRAME_LEN + 1).is_none());
    assert_eq!(m.len(), FRAME_LEN);

    // Prepend a VLAN-sized gap, then strip it again; strip Ethernet with adj; trim the tail.
    m.prepend(4).unwrap().copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(m.len(), FRAME_LEN + 4);
    assert_eq!(&m.data()[..4], &[1, 2, 3, 4]);
    agrees_with_c(&m);
    assert_eq!(m.adj(4).unwrap().len(), FRAME_LEN);
    agrees_with_c(&m);
    assert_eq!(m.data()[12..14], [0x08, 0x00]);
    let ip = m.adj(14).unwrap();
    assert_eq!(ip[0], 0x45);
    let rest = m.trim(160).unwrap();
    assert_eq!(rest.len(), FRAME_LEN - 14 - 160);
    assert_eq!(m.headroom(), 128 + 14);
    agrees_with_c(&m);

    // Checksum offload flags and header lengths.
    const TX_IPV4: u64 = 1 << 55;
    const TX_IP_CKSUM: u64 = 1 << 54;
    const TX_UDP_CKSUM: u64 = 3 << 52;
    m.set_tx_offload(true, true, 14, 20);
    assert_eq!(
        m.ol_flags() & (TX_IPV4 | TX_IP_CKSUM | TX_UDP_CKSUM),
        TX_IPV4 | TX_IP_CKSUM | TX_UDP_CKSUM
    );
    assert_eq!(m.header_lens(), (14, 20));
    m.set_tx_offload(false, true, 18, 24);
    assert_eq!(
        m.ol_flags() & (TX_IPV4 | TX_IP_CKSUM | TX_UDP_CKSUM),
        TX_IPV4 | TX_UDP_CKSUM
    );
    assert_eq!(m.header_lens(), (18, 24));
    m.set_tx_offload(false, false, 0, 0);
    assert_eq!(m.ol_flags() & (TX_IPV4 | TX_IP_CKSUM | TX_UDP_CKSUM), 0);
    // l2_len has 7 bits: 128 panics (the assert guards the raw bit-field write).
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let too_long = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        m.set_tx_offload(true, false, 128, 20);
    }));
    std::panic::set_hook(hook);
    assert!(too_long.is_err());

    // Receive checksum verdicts, as a device sets them.
    m.set_rx_cksum(RxCksum::Good, RxCksum::Good);
    assert_eq!(
        (m.rx_ip_cksum(), m.rx_l4_cksum()),
        (RxCksum::Good, RxCksum::Good)
    );
    m.set_rx_cksum(RxCksum::Bad, RxCksum::None);
    assert_eq!(
        (m.rx_ip_cksum(), m.rx_l4_cksum()),
        (RxCksum::Bad, RxCksum::None)
    );
    m.set_rx_cksum(RxCksum::Unknown, RxCksum::Bad);
    assert_eq!(
        (m.rx_ip_cksum(), m.rx_l4_cksum()),
        (RxCksum::Unknown, RxCksum::Bad)
    );
    m.set_rx_cksum(RxCksum::Unknown, RxCksum::Unknown);

    // narrow = adj + trim in one step; prepend_keep = trim + prepend in one step.
    let (len0, room0) = (m.len(), m.headroom());
    assert!(!m.narrow(2, len0, 0));
    assert!(!m.narrow(len0 + 1, 0, 0));
    assert_eq!((m.len(), m.headroom()), (len0, room0));
    let want = m.data()[3..3 + 10].to_vec();
    let tail0 = m.tailroom();
    assert!(m.narrow(3, 10, 7));
    assert_eq!(m.len(), 17);
    assert_eq!(&m.data()[..10], &want[..]);
    assert_eq!(m.headroom(), room0 + 3);
    assert_eq!(m.tailroom(), tail0 + len0 - 3 - 17);
    agrees_with_c(&m);
    assert!(m.narrow(0, 10, 0));
    assert_eq!(m.data(), &want[..]);
    // All the room there is, when less than asked.
    let tail1 = m.tailroom();
    assert!(m.narrow(0, 10, tail1 + 100));
    assert_eq!((m.len(), m.tailroom()), (10 + tail1, 0));
    assert!(m.narrow(0, 10, 0));
    agrees_with_c(&m);
    assert!(m.prepend_keep(4, 11).is_none());
    assert!(m.prepend_keep(room0 + 4, 10).is_none());
    assert_eq!(m.len(), 10);
    let f = m.prepend_keep(4, 6).unwrap();
    assert_eq!(f.len(), 10);
    assert_eq!(&f[4..], &want[..6]);
    assert_eq!(m.headroom(), room0 - 1);
    agrees_with_c(&m);

    m.reset();
    assert!(m.is_empty());
    assert_eq!(m.headroom(), 128);
    agrees_with_c(&m);
    m.prefetch();
    m.prefetch_header();

    // into_raw / from_raw round trip keeps ownership exactly once.
    let raw = m.into_raw();
    assert_eq!(pool.in_use(), 1);
    // SAFETY: raw came from into_raw just above and nothing else owns it.
    let m = unsafe { Mbuf::from_raw(raw) };

    // Mbufs move between threads.
    let back = std::thread::spawn(move || {
        let mut m = m;
        m.append(3).unwrap().copy_from_slice(b"abc");
        m
    })
    .join()
    .unwrap();
    assert_eq!(back.data(), b"abc");
    drop(back);
    assert_eq!(pool.in_use(), 0);

    // alloc_bulk: all or nothing.
    let mut slots: [Option<Mbuf>; 8] = Default::default();
    pool.alloc_bulk(&mut slots).unwrap();
    assert!(slots.iter().all(Option::is_some));
    assert_eq!(pool.in_use(), 8);
    let mut huge: Vec<Option<Mbuf>> = (0..5000).map(|_| None).collect();
    assert_eq!(pool.alloc_bulk(&mut huge), Err(DpdkError::PoolExhausted));
    assert!(huge.iter().all(Option::is_none));
    assert_eq!(pool.in_use(), 8);
    drop(slots);
    assert_eq!(pool.in_use(), 0);
}

fn burst_ops(pool: &Mempool) {
    let mut b = Burst::<4>::new();
    assert!(b.is_empty() && b.capacity() == 4);
    for s in 0..4 {
        b.push(mbuf_with(pool, &frame(s))).unwrap();
    }
    assert!(b.is_full());
    let extra = mbuf_with(pool, &frame(99));
    let extra = b.push(extra).unwrap_err();
    assert_eq!(seq_of(&extra), 99);
    drop(extra);
    assert_eq!(b.iter().map(seq_of).collect::<Vec<_>>(), [0, 1, 2, 3]);

    // Swap a buffer in and out without copying the payload.
    let mut other = mbuf_with(pool, &frame(50));
    mem::swap(&mut b.as_mut_slice()[1], &mut other);
    assert_eq!(seq_of(&other), 1);
    drop(other);

    assert_eq!(b.iter().map(seq_of).collect::<Vec<_>>(), [0, 50, 2, 3]);
    b.retain(|m| seq_of(m) & 1 == 0);
    assert_eq!(b.iter().map(seq_of).collect::<Vec<_>>(), [0, 50, 2]);
    assert_eq!(pool.in_use(), 3);
    let popped = b.pop().unwrap();
    assert_eq!(seq_of(&popped), 2);
    let mut out = Vec::new();
    b.drain_into(|m| out.push(seq_of(&m)));
    assert!(b.is_empty());
    assert_eq!(out, [0, 50]);
    drop(popped);

    for s in 0..3 {
        b.push(mbuf_with(pool, &frame(s))).unwrap();
    }
    b.clear();
    assert!(b.is_empty());
    b.push(mbuf_with(pool, &frame(1))).unwrap();
    drop(b); // frees what it holds
    assert_eq!(pool.in_use(), 0);
}

fn ring_port_loopback(pool: &Mempool) {
    let id = Port::by_name("net_ring0").expect("net_ring0 registered");
    assert!(matches!(
        Port::by_name("net_nope0"),
        Err(DpdkError::NoDevice { .. })
    ));
    assert_eq!(id.name().unwrap(), "net_ring0");
    let info = id.dev_info().unwrap();
    assert_eq!(info.driver_name, "net_ring");
    assert!(info.max_rx_queues >= 1 && info.max_tx_queues >= 1);
    assert!(matches!(
        PortId(31).dev_info(),
        Err(DpdkError::NoDevice { .. })
    ));

    // Too many queues is refused before DPDK is called.
    let bad = PortConf {
        rx_queues: info.max_rx_queues + 1,
        ..PortConf::default()
    };
    assert!(matches!(
        Port::configure(id, bad, pool),
        Err(DpdkError::InvalidInput {
            what: "rx_queues",
            ..
        })
    ));

    let mut port = Port::configure(id, PortConf::default(), pool).expect("configure net_ring0");
    assert_eq!(port.id(), id);
    assert!(
        matches!(Port::configure(id, PortConf::default(), pool), Err(DpdkError::PortInUse { port }) if port == id.0)
    );
    // net_ring offers no checksum offloads, so none were enabled although requested.
    assert!(!info.tx_ipv4_cksum && !info.tx_udp_cksum);
    assert_eq!(port.tx_offloads(), Default::default());
    // RX checksum checks are enabled exactly as far as the device offers them.
    let rx = port.rx_offloads();
    assert_eq!(
        rx.udp_cksum,
        info.rx_offload_capa & u64::from(callbridge_dpdk::sys::_RTE_ETH_RX_OFFLOAD_UDP_CKSUM) != 0
    );
    assert_eq!(
        rx.ipv4_cksum,
        info.rx_offload_capa & u64::from(callbridge_dpdk::sys::_RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) != 0
    );
    let _ = port.socket_id().unwrap();
    let _ = port.mac_addr().unwrap();

    port.start().unwrap();
    assert!(port.is_started());
    assert!(
        port.link().unwrap().up,
        "net_ring links are up once started"
    );
    port.promiscuous(true).unwrap();
    assert!(port.is_promiscuous());
    assert_eq!(port.stats().unwrap(), Default::default());

    let mut rx: RxQueue = port.rx_queue(0).unwrap();
    let mut tx: TxQueue = port.tx_queue(0).unwrap();
    assert!(matches!(
        port.rx_queue(0),
        Err(DpdkError::QueueInUse { queue: 0, .. })
    ));
    assert!(matches!(
        port.tx_queue(1),
        Err(DpdkError::InvalidInput { what: "queue", .. })
    ));
    assert_eq!(port.stop(), Err(DpdkError::QueuesInUse { port: id.0 }));

    // TX a burst of 32 frames: net_ring's TX queue i is its RX queue i, so they come back.
    let mut out = Burst::<32>::new();
    for s in 0..32 {
        out.push(mbuf_with(pool, &frame(s))).unwrap();
    }
    assert_eq!(tx.tx_burst(&mut out), 32);
    assert!(out.is_empty(), "everything sent leaves the burst");
    assert_eq!(pool.in_use(), 32, "the driver owns them now, none freed");

    // Queue handles are Send: receive on another thread, as a worker would.
    let (rx_back, got) = std::thread::spawn(move || {
        let mut burst = Burst::<32>::new();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while got.len() < 32 && std::time::Instant::now() < deadline {
            rx.rx_burst(&mut burst);
            for m in burst.iter_mut() {
                m.prefetch();
                got.push((seq_of(m), m.data().to_vec()));
            }
            burst.clear();
        }
        (rx, got)
    })
    .join()
    .unwrap();
    let mut rx = rx_back;
    assert_eq!(got.len(), 32);
    for (s, (seq, bytes)) in got.iter().enumerate() {
        assert_eq!(*seq, s as u16, "order kept");
        assert_eq!(bytes[..], frame(s as u16)[..], "bytes kept");
    }
    assert_eq!(pool.in_use(), 0);
    let st = port.stats().unwrap();
    assert_eq!((st.opackets, st.ipackets), (32, 32));
    // net_ring (DPDK 22.11) counts packets only; the byte counters stay 0.
    assert_eq!((st.obytes, st.ibytes), (0, 0));
    assert_eq!(
        (st.oerrors, st.ierrors, st.imissed, st.rx_nombuf),
        (0, 0, 0, 0)
    );

    // Fill the ring until TX refuses: the refused mbufs stay in the burst, at the front,
    // in order, and nothing is freed behind the caller's back.
    let mut sent = 0usize;
    let mut next = 0u16;
    let refused = loop {
        while !out.is_full() {
            out.push(mbuf_with(pool, &frame(next))).unwrap();
            next += 1;
        }
        let n = tx.tx_burst(&mut out);
        sent += n;
        if n < 32 {
            break out.len();
        }
        assert!(sent < 4000, "net_ring never refused");
    };
    assert_eq!(refused, 32 - (sent % 32));
    assert_eq!(
        seq_of(&out.as_slice()[0]) as usize,
        sent,
        "first refused is the next in order"
    );
    assert_eq!(pool.in_use() as usize, sent + refused);
    out.clear(); // the caller frees what TX refused
    assert_eq!(pool.in_use() as usize, sent);

    // Drain it all back.
    let mut burst = Burst::<32>::new();
    let mut received = 0usize;
    loop {
        let n = rx.rx_burst(&mut burst);
        if n == 0 {
            break;
        }
        assert_eq!(seq_of(&burst.as_slice()[0]) as usize, received);
        received += n;
        burst.clear();
    }
    assert_eq!(received, sent);
    assert_eq!(pool.in_use(), 0);
    port.reset_stats().unwrap();
    assert_eq!(port.stats().unwrap().opackets, 0);

    drop((rx, tx));
    port.stop().unwrap();
    assert!(!port.is_started());
    assert_eq!(bursts_on_stopped(&port, pool), (0, 0));
    drop(port);
    // The port can be configured again once its Port is gone.
    let again = Port::configure(id, PortConf::default(), pool).expect("reconfigure");
    drop(again);
}

/// Bursts on a stopped port do nothing (and do not reach DPDK's error-logging dummies).
fn bursts_on_stopped(port: &Port, pool: &Mempool) -> (usize, usize) {
    let mut rx = port.rx_queue(0).unwrap();
    let mut tx = port.tx_queue(0).unwrap();
    let mut b = Burst::<8>::new();
    let got = rx.rx_burst(&mut b);
    b.push(mbuf_with(pool, &frame(1))).unwrap();
    let sent = tx.tx_burst(&mut b);
    assert_eq!(b.len(), 1, "refused mbufs stay with the caller");
    (got, sent)
}

fn null_port(pool: &Mempool) {
    let id = Port::by_name("net_null0").expect("net_null0 registered");
    assert_eq!(id.dev_info().unwrap().driver_name, "net_null");
    let conf = PortConf {
        rx_desc: 256,
        tx_desc: 256,
        ..PortConf::default()
    };
    let mut port = Port::configure(id, conf, pool).unwrap();
    port.start().unwrap();
    {
        let mut tx = port.tx_queue(0).unwrap();
        let mut rx = port.rx_queue(0).unwrap();
        let mut out = Burst::<16>::new();
        for s in 0..16 {
            out.push(mbuf_with(pool, &frame(s))).unwrap();
        }
        assert_eq!(tx.tx_burst(&mut out), 16, "net_null takes everything");
        assert_eq!(pool.in_use(), 0, "net_null frees what it sent");
        // net_null's RX invents packets from the pool.
        let mut inb = Burst::<16>::new();
        assert_eq!(rx.rx_burst(&mut inb), 16);
        assert!(inb.iter().all(|m| !m.is_empty() && pool.owns(m)));
        // A full burst has no room: rx_burst receives nothing and touches nothing.
        assert_eq!(rx.rx_burst(&mut inb), 0);
        inb.clear();
        let st = port.stats().unwrap();
        assert_eq!((st.opackets, st.ipackets), (16, 16));
    }
    port.stop().unwrap();
    assert_eq!(pool.in_use(), 0);
}

fn registered_thread(pool: &Mempool) {
    let pool = pool.clone();
    std::thread::spawn(move || {
        assert_eq!(
            lcore::lcore_id(),
            None,
            "a plain std thread is unknown to EAL"
        );
        let reg = lcore::register_thread()
            .unwrap()
            .expect("a new registration");
        let id = reg.lcore_id();
        assert_eq!(lcore::lcore_id(), Some(id));
        assert_ne!(id, 0, "lcore 0 is the main lcore");
        // With an lcore id the per-lcore cache is used; alloc/free work the same.
        let m = mbuf_with(&pool, b"cached");
        assert_eq!(m.data(), b"cached");
        drop(m);
        drop(reg);
        assert_eq!(lcore::lcore_id(), None);
    })
    .join()
    .unwrap();
    // The main lcore needs no registration.
    assert!(lcore::register_thread().unwrap().is_none());
}

fn launched_on_worker_lcore(pool: &Mempool) {
    let p = pool.clone();
    let job = lcore::launch(1, move || {
        let m = mbuf_with(&p, b"from lcore 1");
        (lcore::lcore_id(), m)
    })
    .expect("launch on lcore 1");
    assert_eq!(job.lcore_id(), 1);
    let (id, m) = job.join().expect("joined on main").expect("no panic");
    assert_eq!(id, Some(1));
    assert_eq!(
        m.data(),
        b"from lcore 1",
        "the mbuf came back across lcores"
    );
    drop(m);

    // A panic on the lcore comes back as the join result, like std threads.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let panicked = lcore::launch(1, || -> u8 { panic!("worker failed") })
        .unwrap()
        .join()
        .unwrap();
    std::panic::set_hook(hook);
    assert_eq!(
        *panicked.unwrap_err().downcast::<&str>().unwrap(),
        "worker failed"
    );

    // The lcore is idle again and can be reused; the main lcore cannot be a target.
    assert_eq!(lcore::launch(1, || 7).unwrap().join().unwrap().unwrap(), 7);
    assert!(matches!(
        lcore::launch(0, || ()),
        Err(DpdkError::InvalidInput { what: "lcore", .. })
    ));
    assert!(matches!(
        lcore::launch(5, || ()),
        Err(DpdkError::InvalidInput { what: "lcore", .. })
    ));
    // A busy lcore refuses a second job until joined.
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let long = lcore::launch(1, move || go_rx.recv().is_ok()).unwrap();
    assert!(matches!(
        lcore::launch(1, || false),
        Err(DpdkError::Busy { .. })
    ));
    go_tx.send(()).unwrap();
    assert!(long.join().unwrap().unwrap());
    // Only the main lcore may launch.
    let off_main = std::thread::spawn(|| lcore::launch(1, || ()).map(|_| ()))
        .join()
        .unwrap();
    assert!(matches!(
        off_main,
        Err(DpdkError::InvalidInput { what: "thread", .. })
    ));
}
