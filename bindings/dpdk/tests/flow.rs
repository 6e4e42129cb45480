//! rte_flow UDP-port steering and RSS on a TAP port (`net_tap`) in a network namespace this
//! test creates for itself. EAL can be initialised only once per process, so this file has a
//! single `#[test]`. Needs root and `/dev/net/tun`.
//!
//! The test thread enters a fresh network namespace (`unshare(CLONE_NEWNET)`) before EAL init;
//! the TAP interface EAL creates, the `ip`/`tc` commands it runs and its UDP socket all live
//! there, and the kernel removes the namespace (and the interface) when the process exits.
//!
//! TAP implements `rte_flow` rules as tc flower filters with a skbedit action under a multiq
//! qdisc on the kernel interface. On a kernel without `sch_multiq`, `cls_flower` and
//! `act_skbedit` the PMD disables rte_flow at probe time: then this test checks that
//! `flow_create` fails with a [`DpdkError::Flow`] saying so, prints a loud notice that the
//! steering itself was not exercised, and still checks everything else (validation, RSS, both
//! queues receiving). Set `CALLBRIDGE_REQUIRE_TAP_FLOW=1` to make that case a failure.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use callbridge_dpdk::lcore::SocketId;
use callbridge_dpdk::{
    sys, Burst, DpdkError, Eal, EalArgs, Mempool, Port, PortConf, PortId, RxQueue, UdpSteer,
};

const OUR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 9, 2);
const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 9, 1);
const STEERED: u16 = 41000;
const OTHER: u16 = 41002;
const N: usize = 20;

/// Runs `prog args`, panicking with its stderr on failure; returns stdout.
fn run(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog} {args:?}: {e} (is iproute2 installed?)"));
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn steer(port: u16, mask: u16, queue: u16) -> UdpSteer {
    UdpSteer {
        dst_ip: OUR_IP,
        port,
        mask,
        queue,
    }
}

/// The destination port of an Ethernet/IPv4/UDP frame; `None` for anything else (IPv6 router
/// solicitations, …).
fn udp_dst_port(frame: &[u8]) -> Option<u16> {
    if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
        return None;
    }
    let udp = 14 + usize::from(frame[14] & 0x0f) * 4;
    let port = frame.get(udp + 2..udp + 4)?;
    Some(u16::from_be_bytes([port[0], port[1]]))
}

/// Kernel options TAP's rte_flow needs that this kernel's config says are not set (empty if
/// all are there, or if the config cannot be read).
fn missing_kernel_options() -> Vec<&'static str> {
    let Ok(gz) = std::fs::read("/proc/config.gz") else {
        return Vec::new();
    };
    // zcat, to avoid a gzip dependency for one diagnostic.
    let Ok(mut child) = Command::new("zcat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    else {
        return Vec::new();
    };
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&gz);
    });
    let mut config = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut config);
    let _ = writer.join();
    let _ = child.wait();
    [
        "CONFIG_NET_SCH_MULTIQ",
        "CONFIG_NET_CLS_FLOWER",
        "CONFIG_NET_ACT_SKBEDIT",
    ]
    .into_iter()
    .filter(|opt| {
        !config
            .lines()
            .any(|l| l == format!("{opt}=y") || l == format!("{opt}=m"))
    })
    .collect()
}

/// Sends `N` datagrams to each of `ports` and collects on which queues they arrive: for each
/// port, `queue -> count`. Waits (deadline loop) until all `N * ports.len()` are in.
fn send_and_collect(
    sock: &UdpSocket,
    ports: &[u16],
    queues: &mut [RxQueue],
) -> BTreeMap<u16, BTreeMap<u16, usize>> {
    for _ in 0..N {
        for &p in ports {
            sock.send_to(b"callbridge flow test", SocketAddrV4::new(OUR_IP, p))
                .expect("send_to over the tap interface");
        }
    }
    let mut seen: BTreeMap<u16, BTreeMap<u16, usize>> = BTreeMap::new();
    let mut burst = Burst::<32>::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let total = |s: &BTreeMap<u16, BTreeMap<u16, usize>>| {
        s.values().flat_map(BTreeMap::values).sum::<usize>()
    };
    while total(&seen) < N * ports.len() && Instant::now() < deadline {
        for rx in queues.iter_mut() {
            rx.rx_burst(&mut burst);
            for m in burst.iter() {
                if let Some(p) = udp_dst_port(m.data()) {
                    *seen.entry(p).or_default().entry(rx.queue_id()).or_default() += 1;
                }
            }
            burst.clear();
        }
    }
    for &p in ports {
        let got: usize = seen.get(&p).map_or(0, |q| q.values().sum());
        assert_eq!(
            got, N,
            "datagrams to port {p} received (by queue: {seen:?})"
        );
    }
    seen
}

#[test]
fn udp_steering_and_rss_on_tap() {
    // Checked before anything else so a missing device fails with a clear message.
    assert!(
        std::path::Path::new("/dev/net/tun").exists(),
        "net_tap needs /dev/net/tun (the tun driver); it is missing on this machine"
    );
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare(CLONE_NEWNET): this test needs root");
    run("ip", &["link", "set", "lo", "up"]);
    // TAP sets up its qdisc at probe time: load the modules first where that is possible.
    let modprobe = Command::new("modprobe")
        .args(["-a", "sch_multiq", "cls_flower", "act_skbedit"])
        .output();

    let iface = format!("cbtap{}", std::process::id());
    let args = EalArgs::for_tests()
        .vdev(&format!("net_tap0,iface={iface}"))
        .vdev("net_ring0")
        .build();
    let eal = Eal::init(&args).expect("EAL init with a net_tap vdev");
    let pool = Mempool::new(
        "cb_flow_pool",
        4095,
        32,
        Mempool::DEFAULT_DATA_ROOM,
        SocketId::ANY,
    )
    .expect("mempool");

    let id = Port::by_name("net_tap0").expect("net_tap0 probed");
    let info = id.dev_info().unwrap();
    assert_eq!(info.driver_name, "net_tap");
    rss(id, &pool);

    let conf = PortConf {
        rx_queues: 2,
        tx_queues: 2,
        rss: true,
        ..PortConf::default()
    };
    let mut port = Port::configure(id, conf, &pool).expect("configure net_tap0 with 2 queues");
    assert!(port.rss_enabled(), "TAP offers IP/UDP RSS hashing");

    // Validation works before start …
    port.flow_validate(&steer(STEERED, 0xffff, 1))
        .expect("validate before start");
    port.start().expect("start net_tap0");
    let mac = port.mac_addr().unwrap().to_string();
    run(
        "ip",
        &["addr", "add", &format!("{KERNEL_IP}/24"), "dev", &iface],
    );
    run("ip", &["link", "set", &iface, "up"]);
    run(
        "ip",
        &[
            "neigh",
            "replace",
            &OUR_IP.to_string(),
            "lladdr",
            &mac,
            "dev",
            &iface,
        ],
    );

    // … and after.
    port.flow_validate(&steer(STEERED, 0xffff, 1))
        .expect("validate an exact port match to queue 1");
    // A queue the port does not have: refused, with the PMD's words.
    let err = port.flow_validate(&steer(STEERED, 0xffff, 2)).unwrap_err();
    eprintln!("TAP on a rule to queue 2 of 2: {err}");
    assert!(
        matches!(&err, DpdkError::Flow { call: "rte_flow_validate", errno, message }
            if *errno != 0 && !message.is_empty()),
        "{err:?}"
    );
    // TAP's validation does not check its port-mask limit (only create does; see below).
    let masked = port.flow_validate(&steer(STEERED, 0xfffe, 1));
    eprintln!("TAP validate with port mask 0xfffe: {masked:?}");

    let mut queues = [port.rx_queue(0).unwrap(), port.rx_queue(1).unwrap()];
    let sock = UdpSocket::bind(SocketAddrV4::new(KERNEL_IP, 0)).expect("bind 198.18.9.1");

    let qdisc = run("tc", &["qdisc", "show", "dev", &iface]);
    if qdisc.contains("multiq") {
        steering(&port, &sock, &mut queues);
    } else {
        // TAP could not set up its multiq qdisc, so it disabled rte_flow.
        let missing = missing_kernel_options();
        let modprobe = match &modprobe {
            Ok(out) if out.status.success() => "modprobe succeeded".to_owned(),
            Ok(out) => format!("modprobe: {}", String::from_utf8_lossy(&out.stderr).trim()),
            Err(e) => format!("modprobe not available ({e})"),
        };
        let err = port
            .flow_create(&steer(STEERED, 0xffff, 1))
            .expect_err("TAP without a multiq qdisc cannot create rules");
        let why = format!(
            "TAP rte_flow is disabled on this kernel (no multiq qdisc on {iface}: {}; kernel \
             config lacks {missing:?}; {modprobe}); flow_create said: {err}",
            qdisc.trim().replace('\n', "; ")
        );
        assert!(
            matches!(&err, DpdkError::Flow { call: "rte_flow_create", message, .. } if !message.is_empty()),
            "{why}"
        );
        assert!(
            std::env::var_os("CALLBRIDGE_REQUIRE_TAP_FLOW").is_none(),
            "CALLBRIDGE_REQUIRE_TAP_FLOW is set: {why}"
        );
        eprintln!(
            "\n*** NOTICE: UDP steering by rte_flow NOT exercised on this machine ***\n*** {why} ***\n"
        );
        // Without rules both flows are still received, each on the queue the kernel's tun
        // flow hash picks.
        let seen = send_and_collect(&sock, &[STEERED, OTHER], &mut queues);
        eprintln!("received without rules (port -> queue -> count): {seen:?}");
    }

    drop(queues);
    drop(port);
    run("ip", &["link", "del", &iface]);
    // The stopped (not closed) TAP port still holds RX mbufs, so the pool, and with it EAL,
    // is leaked on drop rather than freed (see the crate docs); the process ends next.
    drop(pool);
    let runtime_dir = eal.runtime_dir();
    drop(eal);
    std::fs::remove_dir_all(&runtime_dir).expect("remove this test's EAL runtime dir");
}

/// RSS is enabled exactly when asked for, with more than one RX queue, on a device that can
/// hash IP or UDP.
fn rss(tap: PortId, pool: &Mempool) {
    let rss_bits = u64::from(sys::_RTE_ETH_RSS_IP) | u64::from(sys::_RTE_ETH_RSS_UDP);
    let one_queue = PortConf {
        rss: true,
        ..PortConf::default()
    };
    let port = Port::configure(tap, one_queue, pool).unwrap();
    assert!(!port.rss_enabled(), "one RX queue: nothing to spread over");
    drop(port);
    let not_asked = PortConf {
        rx_queues: 2,
        tx_queues: 2,
        ..PortConf::default()
    };
    let port = Port::configure(tap, not_asked, pool).unwrap();
    assert!(!port.rss_enabled(), "rss: false");
    drop(port);

    let ring = Port::by_name("net_ring0").unwrap();
    let info = ring.dev_info().unwrap();
    assert_eq!(
        info.flow_type_rss_offloads & rss_bits,
        0,
        "net_ring has no RSS"
    );
    let queues = info.max_rx_queues.min(info.max_tx_queues);
    let conf = PortConf {
        rx_queues: queues,
        tx_queues: queues,
        rss: true,
        ..PortConf::default()
    };
    let port = Port::configure(ring, conf, pool).expect("configure net_ring0 with rss: true");
    assert!(
        !port.rss_enabled(),
        "a device without RSS hashing keeps mq_mode NONE ({queues} queues)"
    );
    drop(port);
    assert_ne!(
        tap.dev_info().unwrap().flow_type_rss_offloads & rss_bits,
        0,
        "net_tap offers IP/UDP RSS"
    );
}

/// The rules steer, on a kernel where TAP has rte_flow.
fn steering(port: &Port, sock: &UdpSocket, queues: &mut [RxQueue]) {
    // TC flower matches ports exactly: a masked port is refused at creation.
    let err = port
        .flow_create(&steer(STEERED, 0xfffe, 1))
        .expect_err("TAP refuses UDP port masks other than 0xffff");
    eprintln!("TAP on port mask 0xfffe: {err}");
    assert!(
        matches!(
            err,
            DpdkError::Flow {
                call: "rte_flow_create",
                ..
            }
        ),
        "{err:?}"
    );

    let rule = port
        .flow_create(&steer(STEERED, 0xffff, 1))
        .expect("create 41000 -> queue 1");
    assert_eq!(rule.rule(), &steer(STEERED, 0xffff, 1));
    // Unmatched packets go where the tun flow hash puts them, so pin the other port too.
    let other = port
        .flow_create(&steer(OTHER, 0xffff, 0))
        .expect("create 41002 -> queue 0");
    let seen = send_and_collect(sock, &[STEERED, OTHER], queues);
    assert_eq!(seen[&STEERED], BTreeMap::from([(1, N)]), "{seen:?}");
    assert_eq!(seen[&OTHER], BTreeMap::from([(0, N)]), "{seen:?}");

    // Dropping the rule removes it: TAP refuses overlapping rules, so the same match to
    // another queue can only be created once the first is gone, and then it steers.
    drop(rule);
    let moved = port
        .flow_create(&steer(STEERED, 0xffff, 0))
        .expect("re-create 41000 -> queue 0 after the old rule was dropped");
    let seen = send_and_collect(sock, &[STEERED], queues);
    assert_eq!(seen[&STEERED], BTreeMap::from([(0, N)]), "{seen:?}");
    drop((moved, other));
}
