//! The DPDK backend against the Linux stack (feature `dpdk`; run as root, no hugepages).
//!
//! A veth pair: our end is driven by DPDK through `net_af_packet0,iface=<ours>` with address
//! 198.18.0.1/24; the far end sits in a network namespace this test creates, with
//! 198.18.0.2/24. From the namespace, `ping` must work (our netstack answers ARP and echo)
//! and the kernel must have resolved our MAC; then two UDP sockets in the namespace act as
//! two RTP peers of two bridged legs, and RTP must be relayed both ways.
//!
//! Names are unique per run (`cbv0p<pid>`, `cbv1p<pid>`, `cbns<pid>`), and a guard deletes
//! exactly those on the way out, on failure too. No other address or link is touched.
#![cfg(feature = "dpdk")]

mod common;

use common::Net;

use std::net::{IpAddr, Ipv4Addr};

use callbridge_worker::{Backend, Dataplane, DataplaneConfig};

const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PACKETS: u32 = 50;

#[test]
fn dpdk_af_packet_answers_arp_and_ping_and_relays_rtp() {
    common::require_root_and_tools();
    let net = Net::create();
    let s = common::af_packet_settings(&net, 1, 4095, 24);
    let cfg = DataplaneConfig {
        backend: Backend::Dpdk(s),
        ..DataplaneConfig::new(IpAddr::V4(US), 30000..=30999)
    };
    let (dp, handle) = Dataplane::start(cfg).expect("start on af_packet");

    // Ping: ARP resolution and ICMP echo through our netstack.
    common::ping_and_check_neighbour(&net, &[], "198.18.0.1", &dp.stats());

    // Two bridged legs, each with a peer socket in the namespace.
    common::relay_between_two_peers(
        &net,
        &dp,
        &handle,
        IpAddr::V4(US),
        IpAddr::V4(PEER),
        PACKETS,
    );
    let fin = dp.shutdown();
    let w = &fin[0];
    let n = u64::from(PACKETS);
    assert_eq!(w.relay.rx_packets, 2 * n, "{w:#?}");
    assert_eq!(w.relay.tx_packets, 2 * n, "{w:#?}");
    assert!(w.io.net.arp_replies >= 1, "{:?}", w.io.net);
    assert!(w.io.net.echo_replies >= 3, "{:?}", w.io.net);
    assert_eq!(w.io.net.arp_pending, 0, "peer MAC learned from its who-has");
    assert!(w.io.port.ipackets >= 2 * n + 4, "{:?}", w.io.port);
    assert!(w.io.port.opackets >= 2 * n + 4, "{:?}", w.io.port);
    drop(net);
}
