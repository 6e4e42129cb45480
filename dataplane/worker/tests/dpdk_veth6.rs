//! IPv6 media on the DPDK backend against the Linux stack (feature `dpdk`; run as root, no
//! hugepages).
//!
//! A veth pair: our end is driven by DPDK through `net_af_packet0,iface=<ours>` with address
//! 2001:2::1/64 (RFC 5180's benchmarking prefix) and no kernel address (the kernel's IPv6 is
//! off on it); the far end sits in a network namespace this test creates, with 2001:2::2/64
//! (`nodad`). From the namespace, `ping -6` must work (our netstack answers the neighbour
//! solicitation and the ICMPv6 echo) and the kernel must have resolved our MAC; then two UDP
//! sockets in the namespace act as two RTP peers of two bridged legs, and RTP must be relayed
//! both ways over IPv6.
//!
//! Names are unique per run (`cbv0p<pid>`, `cbv1p<pid>`, `cbns<pid>`), and a guard deletes
//! exactly those on the way out, on failure too. No other address or link is touched.
#![cfg(feature = "dpdk")]

mod common;

use common::{spec, Net};

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use callbridge_worker::{Backend, Dataplane, DataplaneConfig, DpdkSettings};
use dp_api::Command;

const US: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const PEER: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
const PEER_CIDR: &str = "2001:2::2/64";
const PACKETS: u32 = 50;

/// Two RTP peers on [2001:2::2]:40000 and :40002 sending `n` packets each to our legs and
/// counting what comes back, from which address (an IPv6 `recvfrom` gives a 4-tuple: host,
/// port, flow info, scope id; host and port are compared). Prints one line of numbers.
const PEERS_PY: &str = r#"
import socket, sys, time, select
us, pa, pb, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s1 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s1.bind(("2001:2::2", 40000))
s2 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s2.bind(("2001:2::2", 40002))
def rtp(seq, ssrc):
    return bytes([0x80, 0]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big") + ssrc.to_bytes(4, "big") + b"\xd5" * 160
got = {s1: 0, s2: 0}
bad = 0
want_from = {s1: (us, pa), s2: (us, pb)}
def drain(timeout):
    global bad
    r, _, _ = select.select([s1, s2], [], [], timeout)
    for s in r:
        data, src = s.recvfrom(2048)
        if src[:2] == want_from[s] and len(data) == 172 and data[0] >> 6 == 2:
            got[s] += 1
        else:
            bad += 1
            print("bad datagram from %r: %d bytes" % (src, len(data)), file=sys.stderr)
for i in range(n):
    s1.sendto(rtp(i, 0x1111), (us, pa))
    s2.sendto(rtp(i, 0x2222), (us, pb))
    drain(0.005)
end = time.time() + 10
while (got[s1] < n or got[s2] < n) and time.time() < end:
    drain(0.1)
print("a_to_b=%d b_to_a=%d bad=%d" % (got[s2], got[s1], bad))
"#;

#[test]
fn dpdk_af_packet_answers_ndp_and_ping6_and_relays_rtp_over_ipv6() {
    common::require_ipv6();
    let net = Net::create();
    net.add_ipv6(PEER_CIDR);
    let mut s = DpdkSettings::new(
        vec![format!("net_af_packet0,iface={}", net.ours)],
        "net_af_packet0",
    );
    s.no_huge_mb = Some(256);
    s.mbufs = 4095;
    s.rx_desc = 256;
    s.tx_desc = 256;
    s.prefix_len = 64;
    s.extra_args = vec!["--log-level".into(), "lib.eal:warning".into()];
    let cfg = DataplaneConfig {
        backend: Backend::Dpdk(s),
        ..DataplaneConfig::new(IpAddr::V6(US), 30000..=30999)
    };
    let (dp, handle) = Dataplane::start(cfg).expect("start on af_packet with an IPv6 address");

    // Ping: neighbour discovery and ICMPv6 echo through our netstack.
    let us = US.to_string();
    common::ping_and_check_neighbour(&net, &["-6"], &us, &dp.stats());

    // Two bridged legs, each with a peer socket in the namespace.
    let a = handle.plan.allocate().unwrap();
    let b = handle.plan.allocate().unwrap();
    let peer_a = SocketAddr::new(IpAddr::V6(PEER), 40000);
    let peer_b = SocketAddr::new(IpAddr::V6(PEER), 40002);
    handle.send(Command::AddLeg(spec(a, peer_a))).unwrap();
    handle.send(Command::AddLeg(spec(b, peer_b))).unwrap();
    handle.send(Command::Bridge { a, b }).unwrap();
    common::wait_legs_added(&handle, 2);
    let out = net.exec(&[
        "/usr/bin/python3",
        "-c",
        PEERS_PY,
        &us,
        &a.port().to_string(),
        &b.port().to_string(),
        &PACKETS.to_string(),
    ]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "RTP peers failed: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        report.trim(),
        format!("a_to_b={PACKETS} b_to_a={PACKETS} bad=0"),
        "{}\n{:#?}",
        String::from_utf8_lossy(&out.stderr),
        dp.stats()
    );
    let fin = dp.shutdown();
    let w = &fin[0];
    let n = u64::from(PACKETS);
    assert_eq!(w.relay.rx_packets, 2 * n, "{w:#?}");
    assert_eq!(w.relay.tx_packets, 2 * n, "{w:#?}");
    // The NDP counters reuse the ARP fields: `arp_replies` counts neighbour advertisements.
    assert!(w.io.net.arp_replies >= 1, "{:?}", w.io.net);
    assert!(w.io.net.echo_replies >= 3, "{:?}", w.io.net);
    assert_eq!(
        w.io.net.arp_pending, 0,
        "peer MAC learned from its neighbour solicitation: {:?}",
        w.io.net
    );
    assert!(w.io.port.ipackets >= 2 * n + 4, "{:?}", w.io.port);
    assert!(w.io.port.opackets >= 2 * n + 4, "{:?}", w.io.port);
    drop(net);
}
