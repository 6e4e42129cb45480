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
//! - `net_ring0` again with all four legs SRTP: the same path encrypted and decrypted per
//!   hop in the mbufs (trailer room, checksums after transcrypting).
//! - `net_ring0` with two workers (one ring per queue pair, each worker's TX comes back on its
//!   own RX): worker 0 plays an announcement to a port worker 1 owns, so every frame arrives
//!   at the wrong worker and must be handed off; worker 1 relays it on. `net_ring` has no
//!   flow rules: `steering = "flow"` is refused with a clear error, `"auto"` falls back to
//!   handoff.
#![cfg(feature = "dpdk")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callbridge_worker::{
    Backend, Dataplane, DataplaneConfig, DpdkSettings, L2Drop, Steering, WorkerSnapshot,
};
use dp_api::{Clip, Codec, Command, DropReason, Event, Latch, LegId, LegSpec, SrcMismatch};

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
        latch: Latch::Off,
        src_mismatch: SrcMismatch::Drop,
        codec: Codec::Pcmu,
        media_timeout: None,
    }
}

fn us(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(US), port)
}

fn wait_for(dp: &Dataplane, what: &str, ok: impl Fn(&WorkerSnapshot) -> bool) {
    wait_for_all(dp, what, |s| ok(&s[0]));
}

fn wait_for_all(dp: &Dataplane, what: &str, ok: impl Fn(&[WorkerSnapshot]) -> bool) {
    let end = Instant::now() + DEADLINE;
    loop {
        let s = dp.stats();
        if ok(&s) {
            return;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}: {s:#?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn two_workers(steering: Steering) -> DataplaneConfig {
    let mut c = cfg("net_ring0");
    c.workers = 2;
    if let Backend::Dpdk(s) = &mut c.backend {
        s.steering = steering;
    }
    c
}

fn ring_two_workers_hand_off() {
    // net_ring has no flow rules: required flow steering is refused, naming the setting.
    let err = Dataplane::start(two_workers(Steering::Flow)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("flow steering") && msg.contains("refuses"),
        "{msg}"
    );
    let (dp, handle) = Dataplane::start(two_workers(Steering::Auto)).expect("two workers");
    assert_eq!(dp.workers(), 2);
    let a = handle.plan.allocate_on(0).unwrap();
    let [b, c, d] = std::array::from_fn(|_| handle.plan.allocate_on(1).unwrap());
    // A (worker 0) plays to B (worker 1); B is bridged to C, which sends to D (not bridged).
    for (leg, remote) in [(a, b), (b, a), (c, d), (d, c)] {
        handle
            .send(Command::AddLeg(spec(leg, Some(us(remote.port())))))
            .unwrap();
    }
    handle.send(Command::Bridge { a: b, b: c }).unwrap();
    handle
        .send(Command::Play {
            leg: a,
            clip: Arc::new(Clip::builtin_prompt()),
            looping: true,
        })
        .unwrap();
    wait_for_all(
        &dp,
        "announcement handed off to worker 1 and relayed",
        |s| {
            s[0].io.handoff_out >= 10
                && s[1].io.handoff_in >= 10
                && s[1].relay.drops.get(DropReason::NotBridged) >= 10
        },
    );
    let fin = dp.shutdown();
    let (w0, w1) = (&fin[0], &fin[1]);
    assert!(w0.relay.announcement_packets >= 10, "{w0:#?}");
    // Worker 0 relays nothing: every frame for worker 1's legs was handed off. (A frame an
    // earlier scenario of this process left in net_ring0's rings, which outlive a data plane,
    // may reach a worker-0 port without a leg: counted there as unknown_port. Seen in 4 of 20
    // runs before this check allowed it.)
    assert_eq!(
        w0.relay.rx_packets,
        w0.relay.drops.get(DropReason::UnknownPort),
        "worker 0 owns no port the frames go to: {w0:#?}"
    );
    assert_eq!(
        w0.relay.tx_packets, w0.relay.announcement_packets,
        "worker 0 forwarded a frame: {w0:#?}"
    );
    assert!(
        w0.io.handoff_out <= w0.relay.announcement_packets,
        "{w0:#?}"
    );
    assert!(w1.io.handoff_in <= w0.io.handoff_out, "{w1:#?}");
    assert_eq!(w0.io.handoff_drops, 0, "{w0:#?}");
    assert_eq!(
        w1.io.handoff_out, 0,
        "worker 1 receives only its own ports: {w1:#?}"
    );
    // Everything B received was forwarded by C to D, came back on worker 1's own queue.
    assert!(w1.relay.rx_packets >= 2 * 10, "{w1:#?}");
    assert!(w1.relay.tx_packets >= 10, "{w1:#?}");
    assert_eq!(w0.io.net.dropped_total() + w1.io.net.dropped_total(), 0);
    assert_eq!(w1.relay.legs, 3);
    assert_eq!(w0.relay.legs, 1);
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

/// As [`ring_loopback_relays_over_mbufs`] with every hop encrypted: A plays to B with A's
/// send key, B decrypts (B's receive key) and is bridged to C, C encrypts toward D with its
/// own key, and D decrypts and drops the packet as not bridged. B→C keeps the packet's
/// length (−10 +10 bytes) while changing every payload byte, so a partial UDP checksum kept
/// from receive time would be wrong and D's netstack would drop the frames.
fn ring_loopback_transcrypts_over_mbufs() {
    use dp_api::{SrtpKey, SrtpKeys};
    use srtp::{MasterKey, Suite};
    let key = |b: u8| SrtpKey {
        suite: Suite::AesCm128HmacSha1_80,
        key: MasterKey::new([b; MasterKey::LEN]),
    };
    let (dp, handle) = Dataplane::start(cfg("net_ring0")).expect("start on net_ring0");
    let [a, b, c, d] = std::array::from_fn(|_| handle.plan.allocate().unwrap());
    for (leg, remote, recv, send) in [(a, b, 0, 1), (b, a, 1, 0), (c, d, 0, 3), (d, c, 3, 0)] {
        handle
            .send(Command::AddLeg(spec(leg, Some(us(remote.port())))))
            .unwrap();
        handle
            .send(Command::SetSrtp {
                leg,
                keys: Some(SrtpKeys {
                    recv: key(recv),
                    send: key(send),
                }),
            })
            .unwrap();
    }
    handle.send(Command::Bridge { a: b, b: c }).unwrap();
    handle
        .send(Command::Play {
            leg: a,
            clip: Arc::new(Clip::builtin_prompt()),
            looping: true,
        })
        .unwrap();
    wait_for(&dp, "announcement transcrypted B→C→D", |s| {
        s.relay.announcement_packets >= 10 && s.relay.drops.get(DropReason::NotBridged) >= 5
    });
    let fin = dp.shutdown();
    let s = &fin[0];
    for r in [
        DropReason::SrtpAuth,
        DropReason::SrtpReplay,
        DropReason::SrtpNoRoom,
        DropReason::SrtpFailed,
    ] {
        assert_eq!(s.relay.drops.get(r), 0, "{r:?}: {s:#?}");
    }
    assert_eq!(
        s.io.net.dropped_total(),
        0,
        "checksums hold: {:?}",
        s.io.net
    );
    assert!(s.relay.tx_packets > s.relay.announcement_packets, "{s:#?}");
    assert_eq!(s.io.backend_drops, 0, "{s:#?}");
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
    ring_loopback_transcrypts_over_mbufs();
    ring_two_workers_hand_off();
}
