//! The DPDK backend on virtual devices (feature `dpdk`; run as root, no hugepages).
//!
//! EAL initialises once per process, so this file has one test running its scenarios in
//! sequence on one EAL with two devices:
//! - `net_null0`: RX yields blank frames, TX discards. The data plane starts, takes commands,
//!   and every blank frame is counted as an L2 drop; port counters are published.
//! - `net_ring0`: a loopback (what the port sends comes back on its RX queue). With remotes on
//!   our own address (hairpin), an announcement played on leg A reaches leg B, which is
//!   bridged to C, which forwards to leg D: the whole path (prepare_tx → encap → ring →
//!   handle_frame → relay → forward → encap) runs over mbufs.
#![cfg(feature = "dpdk")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callbridge_worker::{
    Backend, Dataplane, DataplaneConfig, DpdkSettings, L2Drop, WorkerSnapshot,
};
use dp_api::{Clip, Codec, Command, DropReason, Event, LegId, LegSpec, SrcMismatch};

const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const DEADLINE: Duration = Duration::from_secs(20);

fn cfg(port: &str) -> DataplaneConfig {
    let mut s = DpdkSettings::new(vec!["net_null0".into(), "net_ring0".into()], port);
    s.no_huge_mb = Some(256);
    s.mbufs = 4095;
    s.rx_desc = 256;
    s.tx_desc = 256;
    s.extra_args = vec!["--log-level".into(), "lib.eal:warning".into()];
    DataplaneConfig {
        backend: Backend::Dpdk(s),
        ..DataplaneConfig::new(IpAddr::V4(US), 30000..=30999)
    }
}

fn spec(id: LegId, remote: Option<SocketAddr>) -> LegSpec {
    LegSpec {
        id,
        remote,
        learn_remote: false,
        src_mismatch: SrcMismatch::Drop,
        codec: Codec::Pcmu,
        media_timeout: None,
    }
}

fn us(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(US), port)
}

fn wait_for(dp: &Dataplane, what: &str, ok: impl Fn(&WorkerSnapshot) -> bool) {
    let end = Instant::now() + DEADLINE;
    loop {
        let s = dp.stats()[0];
        if ok(&s) {
            return;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}: {s:#?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn null_device_smoke() {
    let (dp, handle) = Dataplane::start(cfg("net_null0")).expect("start on net_null0");
    let a = handle.plan.allocate().unwrap();
    handle.send(Command::AddLeg(spec(a, None))).unwrap();
    let ev = handle.events().recv_timeout(DEADLINE).unwrap();
    assert!(matches!(ev, Event::LegAdded { leg } if leg == a), "{ev:?}");
    wait_for(&dp, "blank frames and port counters", |s| {
        s.io.net.rx_frames > 1000 && s.io.port.ipackets > 1000
    });
    let fin = dp.shutdown();
    let net = fin[0].io.net;
    assert_eq!(net.rx_udp, 0);
    assert_eq!(net.dropped_total(), net.rx_frames, "{net:?}");
    assert!(net.dropped(L2Drop::NotIpv4OrArp) > 0, "{net:?}");
    assert_eq!(fin[0].relay.legs, 1);
}

fn ring_loopback_relays_over_mbufs() {
    let (dp, handle) = Dataplane::start(cfg("net_ring0")).expect("start on net_ring0");
    let [a, b, c, d] = std::array::from_fn(|_| handle.plan.allocate().unwrap());
    // A plays to B; B (expecting A) is bridged to C; C sends to D; D is not bridged.
    handle
        .send(Command::AddLeg(spec(a, Some(us(b.port())))))
        .unwrap();
    handle
        .send(Command::AddLeg(spec(b, Some(us(a.port())))))
        .unwrap();
    handle
        .send(Command::AddLeg(spec(c, Some(us(d.port())))))
        .unwrap();
    handle
        .send(Command::AddLeg(spec(d, Some(us(c.port())))))
        .unwrap();
    handle.send(Command::Bridge { a: b, b: c }).unwrap();
    handle
        .send(Command::Play {
            leg: a,
            clip: Arc::new(Clip::builtin_prompt()),
            looping: true,
        })
        .unwrap();
    wait_for(&dp, "announcement relayed B→C→D", |s| {
        s.relay.announcement_packets >= 10
            && s.relay.drops.get(DropReason::NotBridged) >= 5
            && s.io.net.rx_udp >= 20
    });
    let fin = dp.shutdown();
    let s = &fin[0];
    // Every announcement went out (A→B) and came back; each one B received was forwarded
    // (C→D) and came back to D, which drops it as not bridged.
    assert!(s.relay.rx_packets >= 20, "{s:#?}");
    assert!(s.relay.tx_packets > s.relay.announcement_packets, "{s:#?}");
    assert_eq!(s.io.net.arp_pending, 0, "hairpin needs no ARP");
    assert_eq!(s.io.net.dropped_total(), 0, "{:?}", s.io.net);
    assert!(s.io.net.tx_udp >= s.io.net.rx_udp);
    assert_eq!(s.lp.tx_refused, 0);
}

/// Removes EAL's runtime directory at the end, on failure too.
struct RuntimeDir;

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if let Some(dir) = callbridge_worker::dpdk_io::eal_runtime_dir() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn dpdk_on_virtual_devices() {
    let _cleanup = RuntimeDir;
    null_device_smoke();
    ring_loopback_relays_over_mbufs();
    // A second EAL-backed start with several workers is refused with a clear error.
    let err = Dataplane::start(DataplaneConfig {
        workers: 2,
        ..cfg("net_ring0")
    })
    .unwrap_err();
    assert!(err.to_string().contains("one worker per port"), "{err}");
}
