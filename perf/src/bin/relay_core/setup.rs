//! The relay under test: N bridged legs spread over as many media addresses as their ports
//! need, and one pre-built 172-byte RTP packet per leg.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::ensure;
use dp_api::{Codec, Command, Latch, LegId, LegSpec, SrcMismatch};
use relay::{Relay, RelayConfig};
use wire::rtp::RtpRepr;

/// One pre-built packet: what the worker would pass to the relay for it.
#[derive(Clone)]
pub(crate) struct Packet {
    pub(crate) src: SocketAddr,
    pub(crate) addr: u8,
    pub(crate) port: u16,
    pub(crate) payload: [u8; 172],
}

/// A relay with `legs` bridged legs (leg `2k` with leg `2k + 1`, neighbours in the table)
/// and one packet per leg, in table order.
pub(crate) struct Setup {
    pub(crate) relay: Relay,
    pub(crate) packets: Vec<Packet>,
    /// Heap bytes allocated by `Relay::new` and the `AddLeg`/`Bridge` commands (measured by
    /// the counting allocator).
    pub(crate) relay_heap_bytes: u64,
}

/// How `legs` legs map onto media addresses above `first_port`: (first even port, port
/// pairs per address, addresses).
pub(crate) fn layout(legs: usize, first_port: u16) -> (u16, usize, usize) {
    let first_port = first_port + first_port % 2;
    let per_addr = (65536 - usize::from(first_port)) / 2;
    (first_port, per_addr, legs.div_ceil(per_addr.max(1)))
}

/// Why `legs` legs cannot be set up, if they cannot (the caller reports that leg count as
/// null with this reason).
pub(crate) fn unsupported(legs: usize, first_port: u16) -> Option<String> {
    let (first, per_addr, addresses) = layout(legs, first_port);
    (per_addr == 0 || addresses > dp_api::MAX_ADDRESSES).then(|| {
        format!(
            "{legs} legs need {addresses} media addresses of {per_addr} port pairs above \
             port {first}; a LegId indexes at most {} addresses",
            dp_api::MAX_ADDRESSES
        )
    })
}

pub(crate) fn setup(legs: usize, first_port: u16) -> anyhow::Result<Setup> {
    ensure!(
        legs >= 2 && legs & 1 == 0,
        "legs must be even and at least 2"
    );
    if let Some(why) = unsupported(legs, first_port) {
        anyhow::bail!(why);
    }
    let (first_port, per_addr, addresses) = layout(legs, first_port);
    let id_of = |i: usize| {
        LegId::at(
            (i / per_addr) as u8,
            first_port + 2 * (i % per_addr) as u16,
            1,
        )
    };
    let heap0 = alloc_count::allocated_bytes();
    let last = u32::from(first_port) + 2 * legs.min(per_addr) as u32 - 1;
    let mut cfg = RelayConfig::new(first_port..=last as u16, 1024);
    cfg.addresses = addresses;
    let mut relay = Relay::new(cfg);
    let t0 = Instant::now();
    for i in 0..legs {
        relay.handle_command(
            t0,
            Command::AddLeg(LegSpec {
                id: id_of(i),
                remote: Some(remote_of(i)),
                latch: Latch::Off,
                src_mismatch: SrcMismatch::Drop,
                codec: Codec::Pcma,
                media_timeout: Some(Duration::from_secs(30)),
            }),
        );
        if i % 2 == 1 {
            relay.handle_command(
                t0,
                Command::Bridge {
                    a: id_of(i - 1),
                    b: id_of(i),
                },
            );
        }
    }
    let relay_heap_bytes = alloc_count::allocated_bytes() - heap0;
    while let Some(ev) = relay.poll_event() {
        ensure!(
            matches!(ev, dp_api::Event::LegAdded { .. }),
            "set-up failed: {ev:?}"
        );
    }
    let payload = [0xd5u8; 160];
    let mut packets = Vec::with_capacity(legs);
    for i in 0..legs {
        let id = id_of(i);
        let mut pkt = [0u8; 172];
        RtpRepr::simple(
            8,
            i as u16,
            160 * i as u32,
            0x1000_0000 + i as u32,
            &payload,
        )
        .emit(&mut pkt);
        packets.push(Packet {
            src: remote_of(i),
            addr: id.addr(),
            port: id.port(),
            payload: pkt,
        });
    }
    Ok(Setup {
        relay,
        packets,
        relay_heap_bytes,
    })
}

/// Leg `i`'s remote: 10.x.y.z:40000, unique per leg.
fn remote_of(i: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)),
        40000 + (i >> 24) as u16,
    )
}

/// Fisher–Yates with a fixed xorshift seed: the same order on every run.
pub(crate) fn shuffle<T>(v: &mut [T]) {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}
