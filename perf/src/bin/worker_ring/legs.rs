//! The legs of the benchmark and what their peers send: ports, addresses, pre-built frames,
//! and the worker set up with every leg bridged.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use dp_api::{Codec, Command, Latch, LegId, LegSpec, SrcMismatch};
use dpdk::{Mempool, Port, RxOffloads, RxQueue, ThreadRegistration, TxQueue};
use relay::{Relay, RelayConfig};
use wire::ethernet::{ethertype, Address, EthernetFrame};
use wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use wire::rtp::RtpRepr;
use wire::udp::{UdpPacket, UdpRepr};
use worker::dpdk_io::DpdkIo;
use worker::netstack::{NetConfig, TxOffload};
use worker::Worker;

use crate::queues::PORT;

pub(crate) const FIRST_PORT: u16 = 1024;
/// Legs per media address.
pub(crate) const PER_ADDR: usize = (65536 - FIRST_PORT as usize) / 2;
pub(crate) const MAX_LEGS: usize = PER_ADDR * dp_api::MAX_ADDRESSES;
pub(crate) const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub(crate) const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
pub(crate) const GW_MAC: Address = Address([0x02, 0xcb, 0, 0, 0, 0xfe]);
pub(crate) const RTP_LEN: usize = 172;
pub(crate) const FRAME_LEN: usize = 14 + 20 + 8 + RTP_LEN;
pub(crate) const GEN_BURST: usize = 32;
/// What the generator rewrites in a returned frame: headers up to and including the RTP
/// header (54 bytes) fit one cache line; the RTP payload comes back as it was sent, since
/// relaying never touches it, so the UDP checksum of the pre-built frame still holds.
pub(crate) const HEADER_COPY: usize = 64;

pub(crate) fn remote(i: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)),
        40000,
    )
}

pub(crate) fn leg_port(i: usize) -> u16 {
    FIRST_PORT + 2 * (i % PER_ADDR) as u16
}

/// Leg `i`'s media address index.
pub(crate) fn leg_addr(i: usize) -> u8 {
    (i / PER_ADDR) as u8
}

/// Media address `a`: ours (`US`) for 0, then 198.18.0.101, .102, …
pub(crate) fn addr_ip(a: u8) -> Ipv4Addr {
    if a == 0 {
        US
    } else {
        Ipv4Addr::new(198, 18, 0, 100 + a)
    }
}

/// The media addresses `legs` legs need.
pub(crate) fn addresses_for(legs: usize) -> usize {
    legs.div_ceil(PER_ADDR).max(1)
}

pub(crate) fn leg_id(i: usize) -> LegId {
    LegId::at(leg_addr(i), leg_port(i), 1)
}

/// The frame leg `i`'s peer sends: gateway MAC → our MAC, remote → us.
pub(crate) fn frame(i: usize, our_mac: Address) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst_addr(our_mac);
    eth.set_src_addr(GW_MAC);
    eth.set_ethertype(ethertype::IPV4);
    let IpAddr::V4(src) = remote(i).ip() else {
        unreachable!("remotes are IPv4")
    };
    let us = addr_ip(leg_addr(i));
    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    Ipv4Repr {
        src_addr: src,
        dst_addr: us,
        next_header: protocol::UDP,
        payload_len: 8 + RTP_LEN,
        hop_limit: 64,
    }
    .emit(&mut ip);
    let mut rtp = [0u8; RTP_LEN];
    RtpRepr::simple(
        8,
        i as u16,
        160 * i as u32,
        0x1000_0000 + i as u32,
        &[0xd5; 160],
    )
    .emit(&mut rtp);
    UdpRepr {
        src_port: remote(i).port(),
        dst_port: leg_port(i),
        payload_len: RTP_LEN,
    }
    .emit(
        &mut UdpPacket::new_unchecked(ip.payload_mut()),
        src,
        us,
        &rtp,
    );
    f
}

/// The worker: the real [`Worker`] loop over [`DpdkIo`] with `legs` bridged legs (pairs),
/// the gateway's MAC pre-loaded. Returns it with the command sender and event receiver,
/// which must stay alive (a closed command queue stops the worker).
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub(crate) fn build_worker(
    rxq: RxQueue,
    txq: TxQueue,
    pool: Mempool,
    our_mac: Address,
    offload: TxOffload,
    legs: usize,
    burst: usize,
    stop: Arc<AtomicBool>,
    reg: Option<ThreadRegistration>,
) -> anyhow::Result<(
    Worker<DpdkIo>,
    crossbeam_channel::Sender<Command>,
    crossbeam_channel::Receiver<dp_api::Event>,
)> {
    let last = FIRST_PORT + (2 * legs.min(PER_ADDR) - 1) as u16;
    let addresses = addresses_for(legs);
    let extra: Vec<IpAddr> = (1..addresses)
        .map(|a| IpAddr::V4(addr_ip(a as u8)))
        .collect();
    let net = NetConfig {
        mac: our_mac,
        ip: US,
        prefix_len: 24,
        gateway: Some(GW),
    };
    // With offload modelled (`--assume-offload`), the worker trusts the receive checksum
    // flags the generator sets, as on a port that enabled receive checksum offload.
    let rx_offloads = if offload.udp_checksum {
        RxOffloads {
            ipv4_cksum: true,
            udp_cksum: true,
        }
    } else {
        PORT.lock()
            .expect("port")
            .as_ref()
            .map(Port::rx_offloads)
            .unwrap_or_default()
    };
    let mut io = DpdkIo::new(rxq, txq, pool, net, offload, FIRST_PORT..=last, None)
        .with_extra_addresses(&extra)
        .with_rx_offloads(rx_offloads)
        .with_registration(reg);
    let t0 = io.clock().now();
    io.insert_neighbour(t0, IpAddr::V4(GW), GW_MAC);
    let mut cfg = RelayConfig::new(FIRST_PORT..=last, 1 << 16);
    cfg.seed = 7;
    cfg.addresses = addresses;
    let (cmd_tx, cmd_rx) = crossbeam_channel::bounded(16);
    let (ev_tx, ev_rx) = crossbeam_channel::bounded(1 << 16);
    let mut w = Worker::new(0, io, Relay::new(cfg), cmd_rx, ev_tx, burst, stop);
    for i in 0..legs {
        let id = leg_id(i);
        w.handle_command(
            t0,
            Command::AddLeg(LegSpec {
                id,
                remote: Some(remote(i)),
                latch: Latch::Off,
                src_mismatch: SrcMismatch::Drop,
                codec: Codec::Pcma,
                media_timeout: Some(Duration::from_secs(30)),
            }),
        );
        if i % 2 == 1 {
            let a = leg_id(i - 1);
            w.handle_command(t0, Command::Bridge { a, b: id });
        }
        while ev_rx.try_recv().is_ok() {}
    }
    let legs_up = w.relay().stats().legs;
    ensure!(legs_up == legs, "only {legs_up} of {legs} legs");
    Ok((w, cmd_tx, ev_rx))
}
