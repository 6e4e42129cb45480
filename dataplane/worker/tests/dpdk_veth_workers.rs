//! Two DPDK workers on one port against the Linux stack (feature `dpdk`; root, no hugepages).
//!
//! A veth pair as in `dpdk_veth.rs`, but DPDK drives our end through
//! `net_af_packet0,iface=<ours>,qpairs=2`: two RX/TX queue pairs, one per worker. The kernel
//! spreads received frames over the two AF_PACKET sockets by flow hash (PACKET_FANOUT_HASH),
//! which knows nothing of which worker owns which port, and af_packet has no flow rules: every
//! datagram that lands on the wrong worker must be handed to its owner. From the namespace,
//! `ping` must work (either worker answers ARP and echo, and the neighbour one worker learns
//! reaches the other); then sixteen legs, eight bridged pairs split between the workers, each
//! with its own peer socket (sixteen flows, so both queues carry traffic for both workers),
//! must relay RTP both ways, every packet counted by the worker that owns its leg.
//!
//! The data plane also owns a second media address, 198.18.0.3, and the port range is small
//! (eight RTP/RTCP pairs, four per worker), so half the legs sit on 198.18.0.1 and half on
//! 198.18.0.3 (the relay's own tests cover a bridge joining legs on different addresses): ARP
//! and ping must work for both, and each leg's packets must come from its own address and port.
#![cfg(feature = "dpdk")]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use callbridge_worker::{Backend, Dataplane, DataplaneConfig, Steering};
use common::{spec, Net};
use dp_api::{Command, LegId};

const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const US2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PAIRS: u16 = 8;
const PACKETS: u32 = 30;

/// Peer sockets on 198.18.0.2, two per bridged pair (ports 41000 + 4i and 41002 + 4i), each
/// sending `n` RTP packets to its leg and counting what comes back from that leg's address
/// and port. Arguments: n, then the pairs' legs `ip:port` (`a0 b0 a1 b1 ...`).
const PEERS_PY: &str = r#"
import socket, sys, time, select
n = int(sys.argv[1])
legs = [(p.split(":")[0], int(p.split(":")[1])) for p in sys.argv[2:]]
socks, want, got = [], {}, {}
for i in range(0, len(legs), 2):
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("198.18.0.2", 41000 + 2 * i))
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(("198.18.0.2", 41002 + 2 * i))
    # a talks to leg legs[i]; what b sends to legs[i+1] comes back to a from legs[i].
    want[a] = legs[i]; want[b] = legs[i + 1]
    socks += [a, b]
for s in socks: got[s] = 0
bad = 0
def rtp(seq, ssrc):
    return bytes([0x80, 0]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big") + ssrc.to_bytes(4, "big") + b"\xd5" * 160
def drain(timeout):
    global bad
    r, _, _ = select.select(socks, [], [], timeout)
    for s in r:
        data, src = s.recvfrom(2048)
        if src == want[s] and len(data) == 172 and data[0] == 0x80:
            got[s] += 1
        else:
            bad += 1
for k in range(n):
    for j, s in enumerate(socks):
        s.sendto(rtp(k, 0x1000 + j), want[s])
    drain(0.002)
end = time.time() + 15
while min(got.values()) < n and time.time() < end:
    drain(0.1)
print("received=%d min=%d bad=%d" % (sum(got.values()), min(got.values()), bad))
"#;

#[test]
fn two_workers_share_an_af_packet_port_by_handoff() {
    common::require_root_and_tools();
    let net = Net::create();
    let mut s = common::af_packet_settings(&net, 2, 8191, 24);
    s.steering = Steering::Auto;
    let cfg = DataplaneConfig {
        backend: Backend::Dpdk(s),
        workers: 2,
        extra_addresses: vec![IpAddr::V4(US2)],
        ..DataplaneConfig::new(IpAddr::V4(US), 30000..=30015)
    };
    let (dp, handle) = Dataplane::start(cfg).expect("two workers on af_packet qpairs=2");
    assert_eq!(dp.workers(), 2);

    for ip in ["198.18.0.1", "198.18.0.3"] {
        common::ping_and_check_neighbour(&net, &[], ip, &dp.stats());
    }

    // Eight bridged pairs, alternating between the workers; each worker's first two pairs
    // fill its ports on 198.18.0.1, the next two take 198.18.0.3.
    let ip_of = |leg: LegId| if leg.addr() == 0 { US } else { US2 };
    let mut ports = Vec::new();
    let mut on_second = 0;
    for i in 0..PAIRS {
        let w = usize::from(i % 2);
        let a = handle.plan.allocate_on(w).unwrap();
        let b = handle.plan.allocate_on(w).unwrap();
        let peer_a = SocketAddr::new(IpAddr::V4(PEER), 41000 + 4 * i);
        let peer_b = SocketAddr::new(IpAddr::V4(PEER), 41002 + 4 * i);
        handle.send(Command::AddLeg(spec(a, peer_a))).unwrap();
        handle.send(Command::AddLeg(spec(b, peer_b))).unwrap();
        handle.send(Command::Bridge { a, b }).unwrap();
        on_second += usize::from(a.addr() == 1) + usize::from(b.addr() == 1);
        ports.extend([
            format!("{}:{}", ip_of(a), a.port()),
            format!("{}:{}", ip_of(b), b.port()),
        ]);
    }
    assert_eq!(
        on_second,
        usize::from(PAIRS),
        "half the legs on the second address"
    );
    assert_eq!(handle.plan.free_pairs(), 0);
    common::wait_legs_added(&handle, usize::from(2 * PAIRS));
    let n = PACKETS.to_string();
    let mut args = vec!["/usr/bin/python3", "-c", PEERS_PY, n.as_str()];
    args.extend(ports.iter().map(String::as_str));
    let out = net.exec(&args);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "RTP peers failed: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let legs = u32::from(2 * PAIRS);
    assert_eq!(
        report.trim(),
        format!("received={} min={PACKETS} bad=0", legs * PACKETS),
        "{:#?}",
        dp.stats()
    );
    let fin = dp.shutdown();
    let per_worker = u64::from(PAIRS) * u64::from(PACKETS); // 4 pairs x 2 legs x n
    for (w, s) in fin.iter().enumerate() {
        // Each worker relayed exactly its own legs' packets, whichever queue they came in on.
        assert_eq!(s.relay.rx_packets, per_worker, "worker {w}: {s:#?}");
        assert_eq!(s.relay.tx_packets, per_worker, "worker {w}: {s:#?}");
        assert_eq!(s.relay.legs, usize::from(PAIRS), "worker {w}");
        assert_eq!(s.io.handoff_drops, 0, "worker {w}: {:?}", s.io);
        assert_eq!(
            s.io.net.arp_pending, 0,
            "worker {w} resolved the peer: {:?}",
            s.io.net
        );
    }
    // Sixteen flows hashed over two queues: some land on the other worker (the chance that
    // none does is 2^-16) and are handed over; every handed-off frame arrives.
    let out: u64 = fin.iter().map(|s| s.io.handoff_out).sum();
    let inn: u64 = fin.iter().map(|s| s.io.handoff_in).sum();
    assert!(out > 0, "no frame was handed off: {fin:#?}");
    assert_eq!(out, inn, "{fin:#?}");
    // Both queues received (the kernel spread the flows).
    assert!(
        fin.iter().all(|s| s.io.net.rx_udp + s.io.handoff_out > 0),
        "{fin:#?}"
    );
    drop(net);
}
