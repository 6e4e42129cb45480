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

use common::Net;

use std::net::{IpAddr, Ipv6Addr};

use callbridge_worker::{Backend, Dataplane, DataplaneConfig};

const US: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const PEER: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
const PEER_CIDR: &str = "2001:2::2/64";
const PACKETS: u32 = 50;

#[test]
fn dpdk_af_packet_answers_ndp_and_ping6_and_relays_rtp_over_ipv6() {
    common::require_ipv6();
    let net = Net::create();
    net.add_ipv6(PEER_CIDR);
    let s = common::af_packet_settings(&net, 1, 4095, 64);
    let cfg = DataplaneConfig {
        backend: Backend::Dpdk(s),
        ..DataplaneConfig::new(IpAddr::V6(US), 30000..=30999)
    };
    let (dp, handle) = Dataplane::start(cfg).expect("start on af_packet with an IPv6 address");

    // Ping: neighbour discovery and ICMPv6 echo through our netstack.
    let us = US.to_string();
    common::ping_and_check_neighbour(&net, &["-6"], &us, &dp.stats());

    // Two bridged legs, each with a peer socket in the namespace.
    common::relay_between_two_peers(
        &net,
        &dp,
        &handle,
        IpAddr::V6(US),
        IpAddr::V6(PEER),
        PACKETS,
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
